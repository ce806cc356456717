package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/graph/model"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/vektah/gqlparser/v2/ast"
)

type fixture struct {
	exec  *graph.Executor
	store *embedded.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "d.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &fixture{exec: newExecutor(t, s, graph.Options{}), store: s}
}

func newExecutor(t testing.TB, d store.Data, opts graph.Options) *graph.Executor {
	t.Helper()
	res, err := graph.NewResolver(d)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := graph.NewExecutor(res, opts)
	if err != nil {
		t.Fatal(err)
	}
	return exec
}

type result struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (f *fixture) do(t *testing.T, query string, vars string) result {
	t.Helper()
	ctx := context.Background()
	req := graph.Request{Query: query}
	if vars != "" {
		req.Variables = json.RawMessage(vars)
	}
	op, errs := f.exec.Prepare(ctx, req)
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

func (f *fixture) changes(t *testing.T) int {
	t.Helper()
	c, err := f.store.ReadChanges(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(c)
}

func TestMutationsAndQueries(t *testing.T) {
	f := newFixture(t)
	var ids []string
	for i := range 3 {
		r := f.do(t, `mutation($t: String!) { sendMessage(roomId: "r1", author: "ann", text: $t) { id roomId author text createdAt editedAt } }`,
			fmt.Sprintf(`{"t":"m%d"}`, i))
		if len(r.Errors) > 0 {
			t.Fatalf("sendMessage: %+v", r.Errors)
		}
		var d struct{ SendMessage model.Message }
		json.Unmarshal(r.Data, &d)
		if d.SendMessage.ID == "" || d.SendMessage.Text != fmt.Sprintf("m%d", i) || d.SendMessage.RoomID != "r1" ||
			d.SendMessage.CreatedAt.IsZero() || d.SendMessage.EditedAt != nil {
			t.Fatalf("sendMessage = %s", r.Data)
		}
		ids = append(ids, d.SendMessage.ID)
	}
	r := f.do(t, `{ messages(roomId: "r1", last: 2) { id text } }`, "")
	if want := fmt.Sprintf(`{"messages":[{"id":%q,"text":"m1"},{"id":%q,"text":"m2"}]}`, ids[1], ids[2]); string(r.Data) != want {
		t.Fatalf("messages = %s, want %s", r.Data, want)
	}
	r = f.do(t, fmt.Sprintf(`mutation { editMessage(roomId: "r1", id: %q, text: "new") { text editedAt } }`, ids[0]), "")
	if len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"text":"new"`) || strings.Contains(string(r.Data), `"editedAt":null`) {
		t.Fatalf("editMessage = %s %+v", r.Data, r.Errors)
	}
	r = f.do(t, fmt.Sprintf(`mutation { deleteMessage(roomId: "r1", id: %q) { id text } }`, ids[0]), "")
	if want := fmt.Sprintf(`{"deleteMessage":{"id":%q,"text":"new"}}`, ids[0]); string(r.Data) != want {
		t.Fatalf("deleteMessage = %s, want %s", r.Data, want)
	}
	r = f.do(t, fmt.Sprintf(`{ message(roomId: "r1", id: %q) { id } }`, ids[0]), "")
	if string(r.Data) != `{"message":null}` || len(r.Errors) != 0 {
		t.Fatalf("message(deleted) = %s %+v", r.Data, r.Errors)
	}
	if n := f.changes(t); n != 5 {
		t.Fatalf("%d change records, want 5", n)
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("é", graph.MaxTextLength+1)
	for _, tc := range []struct{ name, query, code string }{
		{"empty room", `mutation { sendMessage(roomId: "", author: "a", text: "t") { id } }`, "BAD_USER_INPUT"},
		{"blank author", `mutation { sendMessage(roomId: "r", author: "  ", text: "t") { id } }`, "BAD_USER_INPUT"},
		{"empty text", `mutation { sendMessage(roomId: "r", author: "a", text: "") { id } }`, "BAD_USER_INPUT"},
		{"long text", `mutation { sendMessage(roomId: "r", author: "a", text: "` + long + `") { id } }`, "BAD_USER_INPUT"},
		{"long author", `mutation { sendMessage(roomId: "r", author: "` + strings.Repeat("a", 101) + `", text: "t") { id } }`, "BAD_USER_INPUT"},
		{"last 0", `{ messages(roomId: "r", last: 0) { id } }`, "BAD_USER_INPUT"},
		{"last 501", `{ messages(roomId: "r", last: 501) { id } }`, "BAD_USER_INPUT"},
		{"edit empty text", `mutation { editMessage(roomId: "r", id: "x", text: "") { id } }`, "BAD_USER_INPUT"},
		{"edit missing", `mutation { editMessage(roomId: "r", id: "x", text: "t") { id } }`, "NOT_FOUND"},
		{"delete missing", `mutation { deleteMessage(roomId: "r", id: "x") { id } }`, "NOT_FOUND"},
		{"unknown field", `{ nope }`, "GRAPHQL_VALIDATION_FAILED"},
		{"parse error", `{`, "GRAPHQL_PARSE_FAILED"},
	} {
		r := f.do(t, tc.query, "")
		if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != tc.code {
			t.Errorf("%s: errors %+v, want one %s", tc.name, r.Errors, tc.code)
		}
		if strings.Contains(string(r.Data), "{\"id\"") {
			t.Errorf("%s: data %s", tc.name, r.Data)
		}
	}
	// 4,096 characters (not bytes) is allowed.
	ok := strings.Repeat("é", graph.MaxTextLength)
	if r := f.do(t, `mutation { sendMessage(roomId: "r", author: "a", text: "`+ok+`") { id } }`, ""); len(r.Errors) != 0 {
		t.Fatalf("4096 characters rejected: %+v", r.Errors)
	}
	if n := f.changes(t); n != 1 {
		t.Fatalf("%d change records, want 1: bad input must write and publish nothing", n)
	}
}

func TestSubscriptionTopic(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, tc := range []struct{ query, vars, topic string }{
		{`subscription { messageAdded(roomId: "r1") { id } }`, "", "messageAdded?roomId=r1"},
		{`subscription S($r: ID!) { x: messageEdited(roomId: $r) { id } }`, `{"r":"a b&c"}`, "messageEdited?roomId=a+b%26c"},
		{`subscription { ...F } fragment F on Subscription { messageDeleted(roomId: "r2") { text } }`, "", "messageDeleted?roomId=r2"},
		{`subscription($r: ID!) { messageAdded(roomId: $r) { id } }`, `{"r":7}`, "messageAdded?roomId=7"},
	} {
		op, errs := f.exec.Prepare(ctx, graph.Request{Query: tc.query, Variables: json.RawMessage(tc.vars)})
		if errs != nil {
			t.Fatalf("%s: %v", tc.query, errs)
		}
		if op.Kind != ast.Subscription || op.Topic != tc.topic {
			t.Errorf("%s: kind %s topic %q, want %q", tc.query, op.Kind, op.Topic, tc.topic)
		}
	}
	for _, bad := range []string{
		`subscription { messageAdded(roomId: "r1") { id } messageEdited(roomId: "r1") { id } }`,
		`subscription { messageAdded { id } }`,
		`subscription($r: ID!) { messageAdded(roomId: $r) { id } }`,                        // variable missing
		`subscription { messageAdded(roomId: "` + strings.Repeat("é", 200) + `") { id } }`, // topic over 1,024 bytes once escaped
	} {
		if _, errs := f.exec.Prepare(ctx, graph.Request{Query: bad}); errs == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	// The topic of a change equals the topic of a subscribe for the same room.
	evs, err := f.exec.Events(engine.Change{ID: "e1", Seq: "1", Item: "Message", Kind: engine.Modify,
		Value: json.RawMessage(`{"id":"1","roomId":"a b&c","author":"a","text":"t","createdAt":"2026-01-02T03:04:05Z"}`)})
	if err != nil || len(evs) != 1 || evs[0].Field != "messageEdited" || evs[0].Topic != "messageEdited?roomId=a+b%26c" {
		t.Fatalf("Events = %+v, %v", evs, err)
	}
}

func TestRender(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	payload, _ := json.Marshal(model.Message{ID: "01", RoomID: "r1", Author: "ann", Text: "hi", CreatedAt: at})
	ev := &engine.Event{ID: "ev1", Seq: "42", Topic: "messageAdded?roomId=r1", Field: "messageAdded", Payload: payload}

	r := f.exec.Render(ctx, graph.Request{Query: `subscription { messageAdded(roomId: "r1") { id text } }`}, ev)
	if b, _ := json.Marshal(r); string(b) != `{"data":{"messageAdded":{"id":"01","text":"hi"}}}` {
		t.Fatalf("render = %s", b)
	}
	r = f.exec.Render(ctx, graph.Request{Query: `subscription S($r: ID!) { m: messageAdded(roomId: $r) { author createdAt __typename } }`,
		OperationName: "S", Variables: json.RawMessage(`{"r":"r1"}`)}, ev)
	if b, _ := json.Marshal(r); string(b) != `{"data":{"m":{"author":"ann","createdAt":"2026-01-02T03:04:05Z","__typename":"Message"}}}` {
		t.Fatalf("render = %s", b)
	}
	// An external event.
	ann := &engine.Event{ID: "src a1", Topic: "announcement?roomId=r1", Field: "announcement",
		Payload: json.RawMessage(`{"id":"a1","roomId":"r1","text":"closing","priority":3,"at":"2026-01-02T03:04:05Z"}`)}
	r = f.exec.Render(ctx, graph.Request{Query: `subscription { announcement(roomId: "r1", filter: {priority: {gt: 1}}) { text priority at } }`}, ann)
	if b, _ := json.Marshal(r); string(b) != `{"data":{"announcement":{"text":"closing","priority":3,"at":"2026-01-02T03:04:05Z"}}}` {
		t.Fatalf("render of an announcement = %s", b)
	}
	// Another room or another field: nothing.
	if r := f.exec.Render(ctx, graph.Request{Query: `subscription { messageAdded(roomId: "r2") { id } }`}, ev); r != nil {
		t.Fatalf("render for another room = %+v", r)
	}
	if r := f.exec.Render(ctx, graph.Request{Query: `subscription { messageEdited(roomId: "r1") { id } }`}, ev); r != nil {
		t.Fatalf("render for another field = %+v", r)
	}
	// A stored document that no longer validates renders as an error.
	r = f.exec.Render(ctx, graph.Request{Query: `subscription { gone(roomId: "r1") { id } }`}, ev)
	if r == nil || len(r.Errors) == 0 {
		t.Fatalf("render of an invalid document = %+v", r)
	}
	// The event's identity is the fan-out engine's to add (once, to every frame): not here.
	if _, ok := r.Extensions["event"]; ok {
		t.Fatalf("an error result's extensions = %v, want no event", r.Extensions)
	}
}

// TestIntrospection: __schema and __type are served by default (GRAPHQL_INTROSPECTION unset) and
// refused with DisableIntrospection (GRAPHQL_INTROSPECTION=false).
func TestIntrospection(t *testing.T) {
	const q = `{ __schema { queryType { name } } __type(name: "Message") { name } }`
	on := newFixture(t)
	if r := on.do(t, q, ""); len(r.Errors) != 0 || string(r.Data) != `{"__schema":{"queryType":{"name":"Query"}},"__type":{"name":"Message"}}` {
		t.Fatalf("introspection by default: %+v (data %s)", r, r.Data)
	}
	off := &fixture{exec: newExecutor(t, on.store, graph.Options{DisableIntrospection: true}), store: on.store}
	r := off.do(t, q, "")
	if len(r.Errors) == 0 || strings.Contains(string(r.Data), "Query") {
		t.Fatalf("introspection disabled, yet answered: %+v (data %s)", r, r.Data)
	}
	// Ordinary queries still run, __typename included.
	if r := off.do(t, `{ __typename }`, ""); len(r.Errors) != 0 || string(r.Data) != `{"__typename":"Query"}` {
		t.Fatalf("__typename with introspection disabled: %+v (data %s)", r, r.Data)
	}
}

// TestPresentedErrors: the errors the transports show are made here, each with its code.
func TestPresentedErrors(t *testing.T) {
	for _, tc := range []struct {
		got  json.RawMessage
		want string
	}{
		{graph.ErrorsJSON(graph.InternalError()), `{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}`},
		{graph.ErrorsJSON(graph.ResultTooLarge(200000, 131072)), `{"errors":[{"message":"the result is 200000 bytes, over the 131072-byte message limit","extensions":{"code":"RESULT_TOO_LARGE"}}]}`},
		{graph.ErrorsJSON(graph.RequestError("use %s", "POST")), `{"errors":[{"message":"use POST"}]}`},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("got %s\nwant %s", tc.got, tc.want)
		}
	}
}
