package graph

// Limits on what one GraphQL document may cost. They are checked on the parsed document before
// validation runs, because some validation rules cost far more than the document's size: the
// overlapping-fields rule compares same-named fields pairwise, so ten thousand of them in a 379 KB
// request took gigabytes. The parser's token limit bounds parsing; the selection and depth limits,
// counted on the syntax tree with fragments expanded, bound validation and execution; the
// complexity limit (gqlgen's, weighed by the schema's list arguments) bounds what a valid
// operation may ask for, after validation and before any resolver runs. The same limits apply to
// HTTP requests, socket operations and every render of a stored subscription.

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// Defaults of Limits.
const (
	// DefaultMaxTokens is the parser's token limit: a document of more lexical tokens is refused
	// while it is read. The introspection query GraphiQL sends has about 300.
	DefaultMaxTokens = 10_000
	// DefaultMaxSelections bounds the fields (aliases included), fragment spreads and inline
	// fragments of a document, fragments counted wherever they are spread.
	DefaultMaxSelections = 500
	// DefaultMaxDepth bounds how deeply selections nest (introspection fields excepted: the
	// validator bounds those).
	DefaultMaxDepth = 10
	// DefaultMaxComplexity bounds an operation's complexity: every field costs 1, times the
	// length of the lists it sits in (see the schema's complexity functions).
	DefaultMaxComplexity = 5_000
)

// Limits bound what one document may cost. Zero fields take the defaults.
type Limits struct {
	// MaxTokens is the parser's token limit; default DefaultMaxTokens (GRAPHQL_MAX_TOKENS).
	MaxTokens int
	// MaxSelections bounds fields, aliases and fragments; default DefaultMaxSelections
	// (GRAPHQL_MAX_SELECTIONS).
	MaxSelections int
	// MaxDepth bounds nesting; default DefaultMaxDepth (GRAPHQL_MAX_DEPTH).
	MaxDepth int
	// MaxComplexity bounds complexity; default DefaultMaxComplexity (GRAPHQL_MAX_COMPLEXITY).
	MaxComplexity int
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	l.MaxTokens = cmp.Or(l.MaxTokens, DefaultMaxTokens)
	l.MaxSelections = cmp.Or(l.MaxSelections, DefaultMaxSelections)
	l.MaxDepth = cmp.Or(l.MaxDepth, DefaultMaxDepth)
	l.MaxComplexity = cmp.Or(l.MaxComplexity, DefaultMaxComplexity)
	return l
}

// Error codes of the limits (the complexity limit uses gqlgen's own).
const (
	// CodeTooManyTokens: the document is longer than MaxTokens tokens.
	CodeTooManyTokens = "TOKEN_LIMIT_EXCEEDED"
	// CodeTooManySelections: the document selects more than MaxSelections fields and fragments.
	CodeTooManySelections = "SELECTION_LIMIT_EXCEEDED"
	// CodeTooDeep: the document nests deeper than MaxDepth.
	CodeTooDeep = "DEPTH_LIMIT_EXCEEDED"
	// CodeTooComplex: the operation's complexity is over MaxComplexity (gqlgen's code).
	CodeTooComplex = "COMPLEXITY_LIMIT_EXCEEDED"
)

// checkDocument parses query with the token limit and measures its selections and depth,
// stopping as soon as a bound is passed. It returns the first limit the document breaks, or a
// parse error; nil when the document may go on to validation.
func (l Limits) checkDocument(query string) *gqlerror.Error {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, l.MaxTokens)
	if err != nil {
		gerr, ok := err.(*gqlerror.Error)
		if !ok {
			gerr = gqlerror.Errorf("%v", err)
		}
		if strings.Contains(gerr.Message, "token limit") {
			e := gqlerror.Errorf("the document has more than %d tokens (the limit)", l.MaxTokens)
			errcode.Set(e, CodeTooManyTokens)
			return e
		}
		errcode.Set(gerr, errcode.ParseFailed)
		return gerr
	}
	m := measure{doc: doc, l: l, spread: map[string]bool{}, active: map[string]bool{}}
	for _, op := range doc.Operations {
		m.selectionSet(op.SelectionSet, 1)
	}
	for _, f := range doc.Fragments {
		if !m.spread[f.Name] { // never spread: the validator still walks it
			m.selectionSet(f.SelectionSet, 1)
		}
	}
	return m.err
}

// measure counts a document's selections and depth, fragments expanded, within the limits.
type measure struct {
	doc    *ast.QueryDocument
	l      Limits
	count  int
	spread map[string]bool // fragments spread somewhere
	active map[string]bool // fragments being expanded (a cycle is left to the validator)
	err    *gqlerror.Error
}

func (m *measure) selectionSet(set ast.SelectionSet, depth int) {
	for _, sel := range set {
		if m.err != nil {
			return
		}
		if m.count++; m.count > m.l.MaxSelections {
			m.err = gqlerror.Errorf("the document selects more than %d fields and fragments (the limit; aliases count, "+
				"and a fragment counts wherever it is spread)", m.l.MaxSelections)
			errcode.Set(m.err, CodeTooManySelections)
			return
		}
		switch sel := sel.(type) {
		case *ast.Field:
			if len(sel.SelectionSet) == 0 {
				continue
			}
			if strings.HasPrefix(sel.Name, "__") {
				m.introspection(sel.SelectionSet)
				continue
			}
			if depth+1 > m.l.MaxDepth {
				m.err = gqlerror.Errorf("the document nests selections deeper than %d levels (the limit)", m.l.MaxDepth)
				errcode.Set(m.err, CodeTooDeep)
				return
			}
			m.selectionSet(sel.SelectionSet, depth+1)
		case *ast.InlineFragment:
			m.selectionSet(sel.SelectionSet, depth)
		case *ast.FragmentSpread:
			m.spread[sel.Name] = true
			f := m.doc.Fragments.ForName(sel.Name)
			if f == nil || m.active[sel.Name] {
				continue // unknown or cyclic: the validator reports it
			}
			m.active[sel.Name] = true
			m.selectionSet(f.SelectionSet, depth)
			delete(m.active, sel.Name)
		}
	}
}

// introspection counts the selections under an introspection field, whose nesting (ofType
// { ofType { ... } }) the validator bounds with its own rule.
func (m *measure) introspection(set ast.SelectionSet) {
	saved := m.l.MaxDepth
	m.l.MaxDepth = int(^uint(0) >> 1)
	m.selectionSet(set, 0)
	m.l.MaxDepth = saved
}

// String describes the limits, for the log at start-up.
func (l Limits) String() string {
	return fmt.Sprintf("tokens %d, selections %d, depth %d, complexity %d", l.MaxTokens, l.MaxSelections, l.MaxDepth, l.MaxComplexity)
}

// maxConflictErrors is how many field conflicts the overlapping-fields rule reports. Within the
// selection limit its comparisons are bounded, but each conflict it finds becomes an error, and
// n same-named fields with different arguments conflict pairwise: 250 of them made 31,000
// errors (32 MB, and a response of megabytes). The first few say all there is to say.
const maxConflictErrors = 10

// validationRules is the validator's default rule set with the overlapping-fields rule
// reporting at most maxConflictErrors conflicts.
func validationRules() *rules.Rules {
	rs := rules.NewDefaultRules()
	orig := rules.OverlappingFieldsCanBeMergedRule
	rs.RemoveRule(orig.Name)
	rs.AddRule(orig.Name, func(observers *core.Events, addError core.AddErrFunc) {
		n := 0
		orig.RuleFunc(observers, func(options ...core.ErrorOption) {
			if n++; n <= maxConflictErrors {
				addError(options...)
			}
		})
	})
	return rs
}
