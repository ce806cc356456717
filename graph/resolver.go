// Package graph is the app: the example chat schema, its generated models (graph/model) and code, its resolvers, and the executor the router and the fan-out call directly.
//
// gqlgen generates generated.go and model/models_gen.go from the schema (engine/directives.graphqls
// and graph/*.graphqls; go generate ./...); resolvers live in *.resolvers.go. Nothing here runs a
// server: Executor validates, executes and renders single operations for the WebSocket routes, the
// HTTP API and the fan-out.
//
// A subscription in a request/response world: on subscribe nothing is executed; the operation is
// validated, its topic is derived from the subscription field and its @topic arguments, and its
// filter is compiled. On fan-out the event arrives through the context and the resolver yields it
// once (engine.Yield), so nothing outlives the invocation. Where events come from is declared in
// the schema (@fromChange, @fromEvent) and read by the engine.
package graph

//go:generate go tool gqlgen generate
//go:generate go run github.com/realtime-gql/lambdaws/internal/cmd/eventtypes -config ../gqlgen.yml -out ../events.gen.yml

import (
	"fmt"
	"sync"
	"time"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/filter"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/vektah/gqlparser/v2/ast"
)

// Resolver holds the resolvers' dependencies.
type Resolver struct {
	// Tables are the typed views of the data table, one per @item type of the schema: a resolver
	// reads and writes the items of an @item type through engine.Table, e.g.
	// engine.Table[model.Message](r.Tables).
	Tables *engine.Tables
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// NewResolver returns the resolvers over the data table d. It fails when the schema's
// declarations are invalid (see Analyze).
func NewResolver(d store.Data) (*Resolver, error) {
	src, err := analyzed()
	if err != nil {
		return nil, err
	}
	return &Resolver{Tables: engine.NewTables(src, d)}, nil
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// messageKey is the key fields of a message: its room and id.
func messageKey(roomID, id string) map[string]any { return map[string]any{"roomId": roomID, "id": id} }

// Schema returns the app's schema, as gqlgen generated it.
func Schema() *ast.Schema { return NewExecutableSchema(Config{}).Schema() }

// analyzed is the app schema's routing table, analysed once.
var analyzed = sync.OnceValues(func() (*engine.Sources, error) { return Analyze(Schema()) })

// Analyze reads a schema's declarations into the engine's routing table (engine.Analyze), with
// every filter argument's input type checked by internal/filter. The error names each field or
// type that is wrong.
func Analyze(schema *ast.Schema) (*engine.Sources, error) {
	src, err := engine.Analyze(schema, engine.WithFilterSpec(filter.Check))
	if err != nil {
		return nil, fmt.Errorf("the schema's declarations:\n%w", err)
	}
	return src, nil
}
