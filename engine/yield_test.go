package engine_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/engine/internal/testapp"
)

type note struct {
	ID    string `json:"id"`
	Count int    `json:"count"`
}

func drain[T any](t *testing.T, ch <-chan T) []T {
	t.Helper()
	var out []T
	for v := range ch { // ends only if the channel is closed
		out = append(out, v)
	}
	return out
}

func TestYieldOutsideARender(t *testing.T) {
	ch, err := engine.Yield[*note](context.Background())
	if err != nil || len(drain(t, ch)) != 0 {
		t.Fatalf("Yield without an event: %v", err)
	}
	ch, err = engine.Yield[*note](engine.WithEvent(context.Background(), nil))
	if err != nil || len(drain(t, ch)) != 0 {
		t.Fatalf("Yield with a nil event: %v", err)
	}
}

func TestYieldDecodesThePayloadOnce(t *testing.T) {
	ev := &engine.Event{ID: "e1", Field: "notes", Topic: "notes", Payload: json.RawMessage(`{"id":"n1","count":3,"extra":true}`)}
	ctx := engine.WithEvent(context.Background(), ev)
	if got, ok := engine.EventFrom(ctx); !ok || got != ev {
		t.Fatalf("EventFrom = %v, %v", got, ok)
	}
	ptrs, err := engine.Yield[*note](ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(t, ptrs); len(got) != 1 || *got[0] != (note{ID: "n1", Count: 3}) {
		t.Errorf("Yield[*note] sent %+v", got)
	}
	vals, err := engine.Yield[note](ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(t, vals); len(got) != 1 || got[0] != (note{ID: "n1", Count: 3}) {
		t.Errorf("Yield[note] sent %+v", got)
	}
}

func TestYieldDecodeError(t *testing.T) {
	ctx := engine.WithEvent(context.Background(), &engine.Event{ID: "e9", Field: "notes", Payload: json.RawMessage(`{"id":"n1","count":"three"}`)})
	ch, err := engine.Yield[*note](ctx)
	if err == nil || ch != nil {
		t.Fatalf("Yield of an undecodable payload = %v, %v", ch, err)
	}
	for _, want := range []string{`event "e9"`, "notes", "*engine_test.note", "count"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "three") {
		t.Errorf("error %q shows the payload", err)
	}
}

// render runs a subscription in gqlgen's executor against one event (nil: as at subscribe time)
// and returns every response it gives before its stream ends.
func render(t *testing.T, exec *executor.Executor, query, vars string, ev *engine.Event) []string {
	t.Helper()
	ctx := graphql.StartOperationTrace(context.Background())
	params := &graphql.RawParams{Query: query}
	if vars != "" {
		params.Variables = decodeJSON(t, vars)
	}
	opCtx, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		t.Fatalf("%s: %v", query, errs)
	}
	if ev != nil {
		ctx = engine.WithEvent(ctx, ev)
	}
	h, ctx := exec.DispatchOperation(ctx, opCtx)
	var out []string
	for range 3 {
		resp := h(ctx)
		if resp == nil {
			return out
		}
		b, _ := json.Marshal(resp)
		out = append(out, string(b))
	}
	t.Fatalf("%s: the stream did not end after %v", query, out)
	return nil
}

// TestYieldInGqlgen runs the whole path on a gqlgen app whose resolvers are engine.Yield: the
// generated schema includes the declarations, Analyze reads them, a change becomes events, and
// each event renders for exactly the subscriptions of its field and topic.
func TestYieldInGqlgen(t *testing.T) {
	es := testapp.NewExecutableSchema(testapp.Config{Resolvers: &testapp.Resolver{}})
	src, err := engine.Analyze(es.Schema())
	if err != nil {
		t.Fatalf("Analyze(the generated schema): %v", err)
	}
	exec := executor.New(es)

	evs, err := src.Events(engine.Change{ID: "s1", Seq: "7", Item: "Message", Kind: engine.Insert,
		Value: json.RawMessage(`{"__typename":"Message","id":"m1","roomId":"r1","text":"hi"}`)})
	if err != nil || len(evs) != 1 || evs[0].Topic != "messageAdded?roomId=r1" {
		t.Fatalf("Events = %+v, %v", evs, err)
	}
	added := &evs[0]
	const sub = `subscription($r: ID!) { messageAdded(roomId: $r) { id text } }`
	for _, tc := range []struct {
		name, query, vars string
		ev                *engine.Event
		want              []string
	}{
		{"its field and topic", sub, `{"r":"r1"}`, added, []string{`{"data":{"messageAdded":{"id":"m1","text":"hi"}}}`}},
		{"literal argument", `subscription { m: messageAdded(roomId: "r1") { text } }`, "", added, []string{`{"data":{"m":{"text":"hi"}}}`}},
		{"another topic", sub, `{"r":"r2"}`, added, nil},
		{"another field", `subscription { messageRemoved(roomId: "r1") { id } }`, "", added, nil},
		{"at subscribe time", sub, `{"r":"r1"}`, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := render(t, exec, tc.query, tc.vars, tc.ev)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("responses:\n got %q\nwant %q", got, tc.want)
			}
		})
	}

	t.Run("enum and int topics from variables and payload", func(t *testing.T) {
		evs, err := src.Events(engine.Change{ID: "eb1", Type: "test.alert", Value: json.RawMessage(`{"id":"a1","level":"HIGH","count":3,"text":"disk"}`)})
		if err != nil || len(evs) != 1 {
			t.Fatalf("Events = %+v, %v", evs, err)
		}
		q := `subscription($l: Level!, $c: Int) { alert(level: $l, count: $c) { id level count } }`
		want := `{"data":{"alert":{"id":"a1","level":"HIGH","count":3}}}`
		if got := render(t, exec, q, `{"l":"HIGH","c":3}`, &evs[0]); len(got) != 1 || got[0] != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if got := render(t, exec, `subscription { alert(level: HIGH, count: 3) { id level count } }`, "", &evs[0]); len(got) != 1 || got[0] != want {
			t.Errorf("literals: got %q, want %q", got, want)
		}
		if got := render(t, exec, q, `{"l":"HIGH"}`, &evs[0]); len(got) != 0 {
			t.Errorf("a subscription without count got %q", got)
		}
	})

	t.Run("a payload that does not decode is an error result", func(t *testing.T) {
		evs, err := src.Events(engine.Change{ID: "eb2", Type: "test.alert", Value: json.RawMessage(`{"id":"a2","level":"LOW","count":null,"text":5}`)})
		if err != nil || len(evs) != 1 {
			t.Fatalf("Events = %+v, %v", evs, err)
		}
		got := render(t, exec, `subscription { alert(level: LOW) { id } }`, "", &evs[0])
		if len(got) != 1 || !strings.Contains(got[0], `"errors"`) || !strings.Contains(got[0], `event \"eb2\"`) {
			t.Errorf("got %q, want one error result naming the event", got)
		}
	})
}
