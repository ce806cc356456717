package publish

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/store"
)

// TestMatchAllocatesNothing: once an event's payload is decoded and a filter compiled (once each
// per event), matching one more candidate subscription allocates nothing.
func TestMatchAllocatesNothing(t *testing.T) {
	res, err := graph.NewResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := graph.NewExecutor(res, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := New(Config{Sources: exec})
	ev := &engine.Event{ID: "e", Field: "announcement", Topic: "announcement?roomId=r1",
		Payload: json.RawMessage(`{"id":"a1","roomId":"r1","text":"flash sale","priority":4,"at":"2026-01-02T03:04:05Z"}`)}
	d := &delivery{ev: ev, renders: map[string]*rendered{}, filters: map[string]*compiled{}}
	pass := store.Subscription{Filter: `{"or":[{"priority":{"ge":3}},{"text":{"beginsWith":"urgent"}}],"text":{"contains":"sale"}}`}
	fail := store.Subscription{Filter: `{"priority":{"between":[5,9]}}`}
	ctx := context.Background()
	if !f.pass(ctx, d, &pass) || f.pass(ctx, d, &fail) {
		t.Fatal("the filters do not match as written")
	}
	if n := testing.AllocsPerRun(1000, func() { f.pass(ctx, d, &pass); f.pass(ctx, d, &fail) }); n != 0 {
		t.Errorf("matching a candidate allocates %v times", n)
	}
}
