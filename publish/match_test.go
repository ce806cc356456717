package publish

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/auth"
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
	match := f.matcher(context.Background(), ev)
	pass := store.Subscription{Filter: `{"or":[{"priority":{"ge":3}},{"text":{"beginsWith":"urgent"}}],"text":{"contains":"sale"}}`}
	fail := store.Subscription{Filter: `{"priority":{"between":[5,9]}}`}
	if !match(&pass) || match(&fail) || !match(&store.Subscription{}) {
		t.Fatal("the filters do not match as written")
	}
	if n := testing.AllocsPerRun(1000, func() { match(&pass); match(&fail) }); n != 0 {
		t.Errorf("matching a candidate allocates %v times", n)
	}
}

// TestExpiryIsAuthsRule: the fan-out's expiry check, which decodes each distinct principal once,
// agrees with auth.ExpiredJSON (the rule the sweeper and the WebSocket routes apply) on every
// kind of stored principal, before, at and after its exp; and a lookup allocates nothing.
func TestExpiryIsAuthsRule(t *testing.T) {
	f := New(Config{})
	exp := time.Unix(1767225600, 0)
	for _, raw := range []string{
		``, `{}`, `null`, `{"sub":"u1"}`, `{"sub":"u1","exp":1767225600}`, `{"sub":"u1","exp":1767225600,"claims":{"rooms":["r1"]}}`,
		`{"sub":`, `{"exp":"soon"}`, `[]`,
	} {
		s := &store.Subscription{}
		if raw != "" {
			s.Principal = json.RawMessage(raw)
		}
		for _, now := range []time.Time{exp.Add(-time.Second), exp, exp.Add(time.Second)} {
			if got, want := f.expired(s, now), auth.ExpiredJSON(s.Principal, now); got != want {
				t.Errorf("%s at %v: expired %v, auth.ExpiredJSON %v", raw, now.Sub(exp), got, want)
			}
		}
	}
	s := &store.Subscription{Principal: json.RawMessage(`{"sub":"u1","exp":1767225600}`)}
	if n := testing.AllocsPerRun(1000, func() { f.expired(s, exp) }); n != 0 {
		t.Errorf("an expiry lookup allocates %v times", n)
	}
}
