package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/filter"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// TestSubscribeFilter: a subscription's filter argument is compiled at Prepare into its canonical
// key, the same however it is written (literal or variables, any field order), and the key
// compiles back (Filter) into a filter that matches as the argument says.
func TestSubscribeFilter(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const want = `{"priority":{"gt":2},"text":{"contains":"sale"}}`
	for _, tc := range []struct{ query, vars string }{
		{`subscription { announcement(roomId: "r1", filter: {priority: {gt: 2}, text: {contains: "sale"}}) { id } }`, ""},
		{`subscription { announcement(roomId: "r1", filter: {text: {contains: "sale"}, priority: {gt: 2}}) { id } }`, ""},
		{`subscription($f: AnnouncementFilter) { announcement(roomId: "r1", filter: $f) { id } }`, `{"f":{"text":{"contains":"sale"},"priority":{"gt":2}}}`},
	} {
		op, errs := f.exec.Prepare(ctx, graph.Request{Query: tc.query, Variables: json.RawMessage(tc.vars)})
		if errs != nil {
			t.Fatalf("%s: %v", tc.query, errs)
		}
		if op.Topic != "announcement?roomId=r1" || op.Filter != want {
			t.Errorf("%s %s: topic %q filter %q, want %q", tc.query, tc.vars, op.Topic, op.Filter, want)
		}
	}
	for _, q := range []string{
		`subscription { announcement(roomId: "r1") { id } }`,
		`subscription { announcement(roomId: "r1", filter: null) { id } }`,
		`subscription { messageAdded(roomId: "r1") { id } }`,
	} {
		if op, errs := f.exec.Prepare(ctx, graph.Request{Query: q}); errs != nil || op.Filter != "" {
			t.Errorf("%s: filter %q, %v; want none", q, op.Filter, errs)
		}
	}

	flt, err := f.exec.Filter("announcement", want)
	if err != nil || flt.Key() != want {
		t.Fatalf("Filter(announcement, key) = %v, %v", flt, err)
	}
	for payload, match := range map[string]bool{
		`{"id":"a","roomId":"r1","text":"big sale","priority":3}`: true,
		`{"id":"a","roomId":"r1","text":"big sale","priority":2}`: false,
		`{"id":"a","roomId":"r1","text":"closing","priority":9}`:  false,
	} {
		doc, err := filter.NewDoc(json.RawMessage(payload))
		if err != nil {
			t.Fatal(err)
		}
		if flt.Match(doc) != match {
			t.Errorf("match(%s) = %v, want %v", payload, !match, match)
		}
	}
	if flt, err := f.exec.Filter("announcement", ""); flt != nil || err != nil {
		t.Errorf("Filter(no key) = %v, %v; want no filter", flt, err)
	}
	if _, err := f.exec.Filter("nope", want); err == nil {
		t.Error("Filter of a field without a filter argument succeeded")
	}
}

// TestSubscribeFilterRefused: a filter the schema's input type allows but that is invalid, or over
// internal/filter's bounds (the bound passes, one more is refused), is refused at Prepare with
// BAD_USER_INPUT and a message that says why.
func TestSubscribeFilterRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conds := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{author: {ne: "a%d"}}`, i)
		}
		return `{and: [` + strings.Join(parts, ", ") + `]}`
	}
	sub := func(flt string) string {
		return `subscription { messageAdded(roomId: "r1", filter: ` + flt + `) { id } }`
	}
	if _, errs := f.exec.Prepare(ctx, graph.Request{Query: sub(conds(filter.MaxConditions))}); errs != nil {
		t.Fatalf("a filter of %d conditions was refused: %v", filter.MaxConditions, errs)
	}
	for name, tc := range map[string]struct{ flt, says string }{
		"empty leaf":       {`{author: {}}`, "author"},
		"empty group":      {`{and: []}`, "and"},
		"between of one":   {`{priority: {between: [1]}}`, "between"},
		"too many":         {conds(filter.MaxConditions + 1), fmt.Sprint(filter.MaxConditions)},
		"string too long":  {`{text: {contains: "` + strings.Repeat("x", filter.MaxStringBytes+1) + `"}}`, fmt.Sprint(filter.MaxStringBytes)},
		"nested too deep":  {strings.Repeat(`{not: `, filter.MaxDepth+1) + `{author: {eq: "a"}}` + strings.Repeat(`}`, filter.MaxDepth+1), "deep"},
		"empty in element": {`{author: {in: []}}`, "in"},
	} {
		q := sub(tc.flt)
		if name == "between of one" {
			q = `subscription { announcement(roomId: "r1", filter: ` + tc.flt + `) { id } }`
		}
		_, errs := f.exec.Prepare(ctx, graph.Request{Query: q})
		if len(errs) != 1 || errs[0].Extensions["code"] != graph.CodeBadUserInput || !strings.Contains(errs[0].Message, tc.says) {
			t.Errorf("%s: errors %v, want one BAD_USER_INPUT saying %q", name, errs, tc.says)
		}
	}
}

// TestNewExecutorRefusesInvalidSchema: a schema whose declarations are wrong is refused when the
// executor is made (at start-up), with an error that names the field.
func TestNewExecutorRefusesInvalidSchema(t *testing.T) {
	schema, gerr := gqlparser.LoadSchema(engine.Declarations(), &ast.Source{Name: "bad.graphqls", Input: `
type Message @item(pk: "room#{roomId}", sk: "msg#{id}") { id: ID!, roomId: ID! }
type Query { x: Int }
type Subscription {
  messageAdded(roomId: ID! @topic): Message! @fromChange(type: "Mesage", on: [INSERT])
  note(room: ID! @topic): Message! @fromEvent(type: "note")
}`})
	if gerr != nil {
		t.Fatal(gerr)
	}
	es := &graphql.ExecutableSchemaMock{SchemaFunc: func() *ast.Schema { return schema }}
	res, err := graph.NewResolver(newFixture(t).store)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := graph.NewExecutor(res, graph.Options{Schema: es})
	if exec != nil || err == nil {
		t.Fatal("NewExecutor accepted a schema with invalid declarations")
	}
	for _, want := range []string{
		`Subscription.messageAdded: @fromChange(type: "Mesage"): no @item type "Mesage"`,
		`Subscription.note: argument room: @topic: Message has no field room to match it with`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
