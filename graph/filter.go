package graph

import (
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/filter"
	"github.com/vektah/gqlparser/v2/ast"
)

// filterSpecs returns the filter spec of each subscription field that has a filter argument, by
// field name. Analyze has checked them.
func filterSpecs(schema *ast.Schema, src *engine.Sources) (map[string]*filter.Spec, error) {
	specs := map[string]*filter.Spec{}
	for _, f := range src.Fields() {
		if f.Filter == "" {
			continue
		}
		spec, err := filter.SpecFor(schema, f.Filter)
		if err != nil {
			return nil, err
		}
		specs[f.Name] = spec
	}
	return specs, nil
}
