package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/graph/model"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/store"
)

// messages is the data table's messages, as the resolvers store them (AuthorSub included).
func (f *fixture) messages() *store.Items[model.Message] {
	res, err := graph.NewResolver(f.store)
	if err != nil {
		panic(err)
	}
	return engine.Table[model.Message](res.Tables)
}

// principal builds a verified-looking principal with claims given as JSON texts.
func principal(sub string, claims ...string) auth.Principal {
	p := auth.Principal{Subject: sub}
	for i := 0; i+1 < len(claims); i += 2 {
		if p.Claims == nil {
			p.Claims = map[string]json.RawMessage{}
		}
		p.Claims[claims[i]] = json.RawMessage(claims[i+1])
	}
	return p
}

// doAs runs a request as p.
func (f *fixture) doAs(t *testing.T, p auth.Principal, query string) result {
	t.Helper()
	ctx := graph.WithPrincipal(context.Background(), p)
	op, errs := f.exec.Prepare(ctx, graph.Request{Query: query})
	var b []byte
	if errs != nil {
		b, _ = json.Marshal(f.exec.ErrorResponse(ctx, errs))
	} else {
		b, _ = json.Marshal(f.exec.Execute(ctx, op))
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return r
}

// TestAuthenticatedExecutor: with Options.Authenticated, an operation without a principal, or
// with the anonymous one, is refused before anything runs; one with a principal runs.
func TestAuthenticatedExecutor(t *testing.T) {
	f := fixtureWith(t, graph.Options{Authenticated: true})
	const q = `mutation { sendMessage(roomId: "r1", text: "hi") { author } }`
	if r := f.do(t, q, ""); r.code(t) != graph.CodeUnauthenticated {
		t.Fatalf("no principal: %+v", r.Errors)
	}
	if r := f.doAs(t, auth.Anonymous(), q); r.code(t) != graph.CodeUnauthenticated {
		t.Fatalf("anonymous: %+v", r.Errors)
	}
	if n := f.changes(t); n != 0 {
		t.Fatalf("%d writes by unauthenticated callers", n)
	}
	if r := f.doAs(t, principal("ann"), q); r.code(t) != "" || string(r.Data) != `{"sendMessage":{"author":"ann"}}` {
		t.Fatalf("authenticated: %s %+v", r.Data, r.Errors)
	}
	// A render without the subscriber's principal is refused too.
	ev := &engine.Event{ID: "e1", Topic: "messageAdded?roomId=r1", Field: "messageAdded", Payload: json.RawMessage(`{"id":"1","roomId":"r1"}`)}
	if r := f.exec.Render(context.Background(), graph.Request{Query: `subscription { messageAdded(roomId: "r1") { id } }`}, ev); r == nil ||
		len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != graph.CodeUnauthenticated {
		t.Fatalf("render without a principal: %+v", r)
	}
}

// TestAuthorFromThePrincipal: with authentication, sendMessage writes as the caller (name claim,
// else subject), refuses another author, and remembers the author's subject; without it, the
// author argument is required.
func TestAuthorFromThePrincipal(t *testing.T) {
	f := newFixture(t)
	ann := principal("user-ann", "name", `"Ann"`)
	for _, tc := range []struct {
		name  string
		p     auth.Principal
		query string
		code  string
		data  string
	}{
		{"name claim", ann, `mutation { sendMessage(roomId: "r1", text: "a") { author } }`, "", `{"sendMessage":{"author":"Ann"}}`},
		{"the same author", ann, `mutation { sendMessage(roomId: "r1", author: "Ann", text: "b") { author } }`, "", `{"sendMessage":{"author":"Ann"}}`},
		{"another author", ann, `mutation { sendMessage(roomId: "r1", author: "Bob", text: "c") { author } }`, graph.CodeForbidden, ""},
		{"no name claim: the subject", principal("user-bob"), `mutation { sendMessage(roomId: "r1", text: "d") { author } }`, "", `{"sendMessage":{"author":"user-bob"}}`},
		{"anonymous without author", auth.Anonymous(), `mutation { sendMessage(roomId: "r1", text: "e") { author } }`, graph.CodeBadUserInput, ""},
		{"anonymous with author", auth.Anonymous(), `mutation { sendMessage(roomId: "r1", author: "zed", text: "f") { author } }`, "", `{"sendMessage":{"author":"zed"}}`},
	} {
		r := f.doAs(t, tc.p, tc.query)
		if r.code(t) != tc.code || tc.data != "" && string(r.Data) != tc.data {
			t.Errorf("%s: %s %+v, want code %q data %s", tc.name, r.Data, r.Errors, tc.code, tc.data)
		}
	}
	msgs, err := f.messages().Query(context.Background(), map[string]any{"roomId": "r1"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.Text+":"+m.Author+":"+m.AuthorSub)
	}
	if want := "a:Ann:user-ann b:Ann:user-ann d:user-bob:user-bob f:zed:"; strings.Join(got, " ") != want {
		t.Fatalf("stored %v, want %s", got, want)
	}
}

// TestOnlyTheAuthorEditsAndDeletes: another principal, even one with the author's name, gets
// FORBIDDEN and changes nothing; the author may.
func TestOnlyTheAuthorEditsAndDeletes(t *testing.T) {
	f := newFixture(t)
	ann := principal("user-ann", "name", `"Ann"`)
	impostor := principal("user-other", "name", `"Ann"`)
	var sent struct{ SendMessage struct{ ID string } }
	r := f.doAs(t, ann, `mutation { sendMessage(roomId: "r1", text: "mine") { id } }`)
	if err := json.Unmarshal(r.Data, &sent); err != nil || sent.SendMessage.ID == "" {
		t.Fatalf("send: %s %+v", r.Data, r.Errors)
	}
	id := sent.SendMessage.ID
	edit := fmt.Sprintf(`mutation { editMessage(roomId: "r1", id: %q, text: "changed") { text } }`, id)
	del := fmt.Sprintf(`mutation { deleteMessage(roomId: "r1", id: %q) { id } }`, id)
	for _, q := range []string{edit, del} {
		if r := f.doAs(t, impostor, q); r.code(t) != graph.CodeForbidden || !strings.Contains(r.Errors[0].Message, "only the author") {
			t.Fatalf("another principal: %+v", r.Errors)
		}
	}
	if m, err := f.messages().Get(context.Background(), map[string]any{"roomId": "r1", "id": id}); err != nil || m.Text != "mine" {
		t.Fatalf("after refused edits: %+v %v", m, err)
	}
	// A message sent anonymously has no author subject: nobody may change it with auth on.
	anon := f.doAs(t, auth.Anonymous(), `mutation { sendMessage(roomId: "r1", author: "Ann", text: "anon") { id } }`)
	var a struct{ SendMessage struct{ ID string } }
	json.Unmarshal(anon.Data, &a)
	if r := f.doAs(t, ann, fmt.Sprintf(`mutation { deleteMessage(roomId: "r1", id: %q) { id } }`, a.SendMessage.ID)); r.code(t) != graph.CodeForbidden {
		t.Fatalf("deleting an anonymous message: %+v", r.Errors)
	}
	if r := f.doAs(t, ann, edit); r.code(t) != "" || string(r.Data) != `{"editMessage":{"text":"changed"}}` {
		t.Fatalf("the author's edit: %s %+v", r.Data, r.Errors)
	}
	if r := f.doAs(t, ann, del); r.code(t) != "" {
		t.Fatalf("the author's delete: %+v", r.Errors)
	}
	// A missing message is NOT_FOUND, not FORBIDDEN.
	if r := f.doAs(t, impostor, del); r.code(t) != graph.CodeNotFound {
		t.Fatalf("missing message: %+v", r.Errors)
	}
}

// TestRoomsClaim: a rooms claim limits reading, writing and subscribing; a claim of another shape
// allows no room; no claim allows every room.
func TestRoomsClaim(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	inR1 := principal("u1", "rooms", `["r1"]`)
	scoped := principal("u2", "rooms", `"r1 r3"`) // a space-separated string, as OAuth scopes
	broken := principal("u3", "rooms", `42`)
	free := principal("u4")
	ops := []string{
		`{ messages(roomId: "%s") { id } }`,
		`{ message(roomId: "%s", id: "x") { id } }`,
		`mutation { sendMessage(roomId: "%s", text: "t") { id } }`,
		`mutation { editMessage(roomId: "%s", id: "x", text: "t") { id } }`,
		`mutation { deleteMessage(roomId: "%s", id: "x") { id } }`,
	}
	sub := `subscription { messageAdded(roomId: "%s") { id } }`
	announcement := `subscription { announcement(roomId: "%s") { text } }`
	for _, tc := range []struct {
		p       auth.Principal
		room    string
		allowed bool
	}{
		{inR1, "r1", true}, {inR1, "r2", false}, {scoped, "r3", true}, {scoped, "r2", false},
		{broken, "r1", false}, {free, "r2", true},
	} {
		for _, q := range ops {
			r := f.doAs(t, tc.p, fmt.Sprintf(q, tc.room))
			forbidden := r.code(t) == graph.CodeForbidden
			if forbidden == tc.allowed {
				t.Errorf("%s as %s: %+v, want allowed %v", fmt.Sprintf(q, tc.room), tc.p.Subject, r.Errors, tc.allowed)
			}
		}
		for _, q := range []string{sub, announcement} {
			_, errs := f.exec.Prepare(graph.WithPrincipal(ctx, tc.p), graph.Request{Query: fmt.Sprintf(q, tc.room)})
			if denied := len(errs) == 1 && errs[0].Extensions["code"] == graph.CodeForbidden; denied == tc.allowed {
				t.Errorf("%s as %s: %v, want allowed %v", fmt.Sprintf(q, tc.room), tc.p.Subject, errs, tc.allowed)
			}
		}
	}
	if n := f.changes(t); n != 3 { // the three allowed sendMessage calls
		t.Fatalf("%d writes, want 3", n)
	}
	// A render with a principal that may not read the room is an error result, not data.
	ev := &engine.Event{ID: "e2", Topic: "messageAdded?roomId=r2", Field: "messageAdded", Payload: json.RawMessage(`{"id":"1","roomId":"r2"}`)}
	r := f.exec.Render(graph.WithPrincipal(ctx, inR1), graph.Request{Query: fmt.Sprintf(sub, "r2")}, ev)
	if r == nil || len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != graph.CodeForbidden || string(r.Data) != "" && string(r.Data) != "null" {
		t.Fatalf("render outside the claim: %+v", r)
	}
}

// TestSubscribeRuleHook: an app's own rule gets the principal and the arguments (variables
// applied) and its denial message reaches the client.
func TestSubscribeRuleHook(t *testing.T) {
	f := newFixture(t)
	var gotSub string
	var gotArgs map[string]any
	f.exec = newExecutor(t, f.store, graph.Options{SubscribeRules: map[string]graph.SubscribeRule{
		"messageEdited": func(ctx context.Context, p auth.Principal, args map[string]any) error {
			gotSub, gotArgs = p.Subject, args
			if args["roomId"] == "closed" {
				return graph.Forbidden("room %v is closed for edits", args["roomId"])
			}
			return nil
		},
	}})
	ctx := graph.WithPrincipal(context.Background(), principal("u9"))
	q := `subscription($r: ID!) { messageEdited(roomId: $r) { id } }`
	if _, errs := f.exec.Prepare(ctx, graph.Request{Query: q, Variables: json.RawMessage(`{"r":"open"}`)}); errs != nil {
		t.Fatal(errs)
	}
	if gotSub != "u9" || gotArgs["roomId"] != "open" {
		t.Fatalf("rule called with %q %v", gotSub, gotArgs)
	}
	_, errs := f.exec.Prepare(ctx, graph.Request{Query: q, Variables: json.RawMessage(`{"r":"closed"}`)})
	if len(errs) != 1 || errs[0].Message != "room closed is closed for edits" || errs[0].Extensions["code"] != graph.CodeForbidden {
		t.Fatalf("denied: %v", errs)
	}
	// A field without a rule is open.
	if _, errs := f.exec.Prepare(ctx, graph.Request{Query: `subscription { messageAdded(roomId: "closed") { id } }`}); errs != nil {
		t.Fatal(errs)
	}
}

// TestAuthorSubIsNotExposed: the author's subject is stored with the item (the model's AuthorSub)
// but is no field of Message: a query cannot select it, and a render of a stream image that
// carries it shows only what was selected.
func TestAuthorSubIsNotExposed(t *testing.T) {
	f := newFixture(t)
	ann := principal("user-ann", "name", `"Ann"`)
	if r := f.doAs(t, ann, `mutation { sendMessage(roomId: "r1", text: "a") { id authorSub } }`); r.code(t) != "GRAPHQL_VALIDATION_FAILED" {
		t.Fatalf("selecting authorSub: %s %+v", r.Data, r.Errors)
	}
	r := f.doAs(t, ann, `mutation { sendMessage(roomId: "r1", text: "a") { id } }`)
	var sent struct{ SendMessage struct{ ID string } }
	if err := json.Unmarshal(r.Data, &sent); err != nil || sent.SendMessage.ID == "" {
		t.Fatalf("send: %s %+v", r.Data, r.Errors)
	}
	// The change the stream carries holds authorSub; the event made of it renders without it.
	chs, err := f.store.ReadChanges(context.Background(), 0, 10)
	if err != nil || len(chs) != 1 {
		t.Fatalf("changes: %d %v", len(chs), err)
	}
	raw, _ := json.Marshal(chs[0])
	if !strings.Contains(string(raw), "user-ann") {
		t.Fatalf("the stored item has no authorSub: %s", raw)
	}
	ev := &engine.Event{ID: "e1", Topic: "messageAdded?roomId=r1", Field: "messageAdded",
		Payload: json.RawMessage(fmt.Sprintf(`{"id":%q,"roomId":"r1","author":"Ann","text":"a","createdAt":"2024-01-01T00:00:00Z","authorSub":"user-ann"}`, sent.SendMessage.ID))}
	out := f.exec.Render(graph.WithPrincipal(context.Background(), ann),
		graph.Request{Query: `subscription { messageAdded(roomId: "r1") { ... on Message { id author text createdAt editedAt __typename } } }`}, ev)
	b, _ := json.Marshal(out)
	if out == nil || len(out.Errors) != 0 || strings.Contains(string(b), "user-ann") || !strings.Contains(string(b), `"author":"Ann"`) {
		t.Fatalf("render: %s", b)
	}
}
