package engine

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

//go:embed directives.graphqls
var directivesSDL string

// DeclarationsFile is the path, in this repository, of the schema file that declares @item,
// @topic, @fromChange, @fromEvent and the ChangeKind enum. gqlgen.yml lists it beside the app's
// schema:
//
//	schema:
//	  - engine/directives.graphqls
//	  - graph/*.graphqls
const DeclarationsFile = "engine/directives.graphqls"

// Declarations returns the declarations as a schema source, for loading a schema outside gqlgen
// (gqlparser.LoadSchema(engine.Declarations(), appSchema)).
func Declarations() *ast.Source {
	return &ast.Source{Name: DeclarationsFile, Input: directivesSDL}
}

type decls struct {
	directives map[string]*ast.DirectiveDefinition
	kind       *ast.Definition
}

// declarations returns the parsed declarations, to compare a schema's with.
var declarations = sync.OnceValue(func() decls {
	doc, err := parser.ParseSchema(Declarations())
	if err != nil {
		panic(fmt.Sprintf("engine: %s does not parse: %v", DeclarationsFile, err))
	}
	d := decls{directives: map[string]*ast.DirectiveDefinition{}}
	for _, dd := range doc.Directives {
		d.directives[dd.Name] = dd
	}
	d.kind = doc.Definitions.ForName(enumKind)
	return d
})
