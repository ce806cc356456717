package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
)

// fixtureWith is newFixture with other executor options.
func fixtureWith(t *testing.T, opts graph.Options) *fixture {
	t.Helper()
	f := newFixture(t)
	f.exec = newExecutor(t, f.store, opts)
	return f
}

// code is the extensions.code of a result's only error, or "" when it has none; more than one
// error fails the test.
func (r result) code(t *testing.T) string {
	t.Helper()
	switch len(r.Errors) {
	case 0:
		return ""
	case 1:
		c, _ := r.Errors[0].Extensions["code"].(string)
		return c
	}
	t.Fatalf("%d errors: %+v", len(r.Errors), r.Errors)
	return ""
}

func typenames(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: __typename", i)
	}
	b.WriteString(" }")
	return b.String()
}

// nested is a selection nested depth levels deep: { a { a { ... { b } } } } (valid GraphQL
// syntax; the schema has no such fields, so a document within the depth limit fails validation).
func nested(depth int) string {
	return strings.Repeat("{ a ", depth-1) + "{ b }" + strings.Repeat(" }", depth-1)
}

// TestLimitsAtAndOverTheBound: every limit lets its bound through and refuses one more, with its
// code and a message that names the limit.
func TestLimitsAtAndOverTheBound(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		limits     graph.Limits
		at, over   string
		atCode     string // the code of the document at the bound ("" when it runs)
		code, text string
	}{
		// { + n fields + }: n+2 tokens.
		{name: "tokens", limits: graph.Limits{MaxTokens: 100, MaxSelections: 1000},
			at: "{" + strings.Repeat(" __typename", 98) + " }", over: "{" + strings.Repeat(" __typename", 99) + " }",
			code: graph.CodeTooManyTokens, text: "more than 100 tokens"},
		{name: "selections", limits: graph.Limits{MaxSelections: 20}, at: typenames(20), over: typenames(21),
			code: graph.CodeTooManySelections, text: "more than 20 fields"},
		// A fragment counts at each spread: 2 spreads of 9 fields + 2 spreads = 20.
		{name: "selections through fragments", limits: graph.Limits{MaxSelections: 20},
			at:   `{ ...F ...F } fragment F on Query { ` + strings.Repeat("__typename ", 9) + `}`,
			over: `{ ...F ...F } fragment F on Query { ` + strings.Repeat("__typename ", 10) + `}`,
			code: graph.CodeTooManySelections, text: "more than 20 fields"},
		// A fragment never spread still counts (the validator walks it).
		{name: "selections of an unused fragment", limits: graph.Limits{MaxSelections: 20},
			at: `{ __typename } fragment F on Query { ` + strings.Repeat("__typename ", 19) + `}`, atCode: "GRAPHQL_VALIDATION_FAILED",
			over: `{ __typename } fragment F on Query { ` + strings.Repeat("__typename ", 20) + `}`,
			code: graph.CodeTooManySelections, text: "more than 20 fields"},
		{name: "depth", at: nested(graph.DefaultMaxDepth), atCode: "GRAPHQL_VALIDATION_FAILED", over: nested(graph.DefaultMaxDepth + 1),
			code: graph.CodeTooDeep, text: "deeper than 10 levels"},
		// Inline fragments and introspection do not count; a field's selection does.
		{name: "depth of a real query", limits: graph.Limits{MaxDepth: 1},
			at:   `{ ... on Query { __typename } __type(name: "Message") { fields { type { ofType { name } } } } }`,
			over: `{ messages(roomId: "r") { id } }`,
			code: graph.CodeTooDeep, text: "deeper than 1 levels"},
		// messages(last: n) { id text } costs 1 + n×(1+4); 2501 + 2496 + 3 = 5000.
		{name: "complexity", at: `{ a: messages(roomId: "r", last: 500) { id text } b: messages(roomId: "r", last: 499) { id text } __typename t2: __typename t3: __typename }`,
			over: `{ a: messages(roomId: "r", last: 500) { id text } b: messages(roomId: "r", last: 499) { id text } __typename t2: __typename t3: __typename t4: __typename }`,
			code: graph.CodeTooComplex, text: "complexity 5001, which exceeds the limit of 5000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fixtureWith(t, graph.Options{Limits: tc.limits})
			if r := f.do(t, tc.at, ""); r.code(t) != tc.atCode {
				t.Fatalf("at the bound: %+v, want code %q", r.Errors, tc.atCode)
			}
			r := f.do(t, tc.over, "")
			if r.code(t) != tc.code || !strings.Contains(r.Errors[0].Message, tc.text) || string(r.Data) != "" && string(r.Data) != "null" {
				t.Fatalf("over the bound: %+v (data %s), want %s mentioning %q", r.Errors, r.Data, tc.code, tc.text)
			}
			// A socket operation and a stored subscription meet the same limits.
			if _, errs := f.exec.Prepare(ctx, graph.Request{Query: tc.over}); len(errs) != 1 {
				t.Fatalf("Prepare over the bound: %v", errs)
			}
		})
	}
}

// TestLimitsApplyToSubscriptions: a subscribe and a render of a stored subscription are refused
// over the limits like any request.
func TestLimitsApplyToSubscriptions(t *testing.T) {
	f := fixtureWith(t, graph.Options{Limits: graph.Limits{MaxSelections: 5}})
	ctx := context.Background()
	over := `subscription { messageAdded(roomId: "r1") { id a: id b: id c: id d: id } }`
	if _, errs := f.exec.Prepare(ctx, graph.Request{Query: over}); len(errs) != 1 || errs[0].Extensions["code"] != graph.CodeTooManySelections {
		t.Fatalf("subscribe over the bound: %v", errs)
	}
	ev := &engine.Event{ID: "e1", Topic: "messageAdded?roomId=r1", Field: "messageAdded", Payload: json.RawMessage(`{"id":"1","roomId":"r1"}`)}
	r := f.exec.Render(ctx, graph.Request{Query: over}, ev)
	if r == nil || len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != graph.CodeTooManySelections {
		t.Fatalf("render over the bound: %+v", r)
	}
}

// TestIntrospectionQueryFitsTheDefaults: the introspection query GraphiQL sends passes the
// default limits (its type references nest deeper than the depth limit, which does not apply to
// introspection).
func TestIntrospectionQueryFitsTheDefaults(t *testing.T) {
	f := newFixture(t)
	if r := f.do(t, introspectionQuery, ""); len(r.Errors) != 0 || !strings.Contains(string(r.Data), `"queryType":{"name":"Query"}`) {
		t.Fatalf("introspection: %+v", r.Errors)
	}
}

// TestQueryBombsAreRefusedCheaply: the documents of issue 9 that took the server down are refused
// before validation, each within 1 s and 50 MB.
func TestQueryBombsAreRefusedCheaply(t *testing.T) {
	f := newFixture(t)
	var sameName strings.Builder // 10,000 same-named fields with different arguments: 379 KB
	sameName.WriteString("{")
	for i := range 10000 {
		fmt.Fprintf(&sameName, ` messages(roomId: "r%d") { id }`, i)
	}
	sameName.WriteString("}")
	under := sameNamedFields(700) // 8,400 tokens: under the token limit, over the selection limit
	for _, tc := range []struct{ name, query, code string }{
		{"10,000 same-named fields", sameName.String(), graph.CodeTooManyTokens},
		{"700 same-named fields with different arguments", under, graph.CodeTooManySelections},
		{"100 KB of __typename", "{" + strings.Repeat(" __typename", 100_000/11) + "}", graph.CodeTooManySelections},
		{"50 aliases of messages(last: 500)", aliases(50), graph.CodeTooComplex},
		// At the selection bound, the overlapping-fields rule runs: 250 fields conflict pairwise
		// (31,000 conflicts), of which it reports the first 10.
		{"250 same-named fields at the selection bound", sameNamedFields(250), "GRAPHQL_VALIDATION_FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			r := f.do(t, tc.query, "")
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if len(r.Errors) == 0 || len(r.Errors) > 10 {
				t.Fatalf("%d bytes: %d errors, want 1 to 10", len(tc.query), len(r.Errors))
			}
			for _, e := range r.Errors {
				if e.Extensions["code"] != tc.code {
					t.Fatalf("%d bytes: %+v, want %s", len(tc.query), e, tc.code)
				}
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes refused in %v, %d KB allocated", len(tc.query), took, alloc>>10)
			if took > time.Second || alloc > 50<<20 {
				t.Fatalf("refused in %v with %d MB allocated, want within 1 s and 50 MB", took, alloc>>20)
			}
		})
	}
}

func sameNamedFields(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, ` message(roomId: "r", id: "%d") { id }`, i)
	}
	b.WriteString("}")
	return b.String()
}

func aliases(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, ` m%d: messages(roomId: "r", last: 500) { id author text createdAt }`, i)
	}
	b.WriteString("}")
	return b.String()
}

// introspectionQuery is graphql-js's getIntrospectionQuery(), as GraphiQL sends it.
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}`

// TestConflictReportsAtAndOverTheBound: the overlapping-fields rule reports every conflict up to
// 10 and the first 10 of more (gqlparser's own rule, uncapped, counts them for comparison).
func TestConflictReportsAtAndOverTheBound(t *testing.T) {
	f := newFixture(t)
	uncapped := func(q string) int {
		doc, err := parser.ParseQuery(&ast.Source{Input: q})
		if err != nil {
			t.Fatal(err)
		}
		return len(validator.Validate(graph.Schema(), doc))
	}
	seen := map[string]bool{}
	for k := 2; k <= 8; k++ {
		q := sameNamedFields(k)
		all := uncapped(q)
		r := f.do(t, q, "")
		for _, e := range r.Errors {
			if e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" || !strings.Contains(e.Message, "conflict") {
				t.Fatalf("%d fields: %+v", k, e)
			}
		}
		if want := min(all, 10); len(r.Errors) != want {
			t.Fatalf("%d same-named fields: %d conflicts reported of %d, want %d", k, len(r.Errors), all, want)
		}
		switch {
		case all == 10:
			seen["at"] = true
		case all > 10:
			seen["over"] = true
		}
	}
	if !seen["at"] || !seen["over"] {
		t.Fatalf("the documents made no case of exactly 10 conflicts and of more (%v)", seen)
	}
}
