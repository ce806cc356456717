package engine_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/realtime-gql/lambdaws/engine"
)

// BenchmarkEvents addresses one external event to the three fields it feeds (two with @topic
// arguments), the work done once per change before any subscriber is read.
func BenchmarkEvents(b *testing.B) {
	src := analyze(b, "testdata/valid/chat.graphqls")
	ch := engine.Change{ID: "e", Type: "chat.announcement",
		Value: json.RawMessage(`{"id":"a1","roomId":"lobby","text":"Maintenance at 18:00","priority":2,"at":"2026-03-01T17:00:00Z"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if evs, err := src.Events(ch); err != nil || len(evs) != 3 {
			b.Fatal(evs, err)
		}
	}
}

// BenchmarkYield decodes a payload into a model, the work done once per distinct operation.
func BenchmarkYield(b *testing.B) {
	ctx := engine.WithEvent(context.Background(), &engine.Event{ID: "e", Field: "notes",
		Payload: json.RawMessage(`{"id":"n1","count":3}`)})
	b.ReportAllocs()
	for b.Loop() {
		ch, err := engine.Yield[*note](ctx)
		if err != nil || (<-ch).ID != "n1" {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventsBaseline is the floor BenchmarkEvents is compared with: decoding the same payload's
// top level once, which any way of reading @topic fields from it has to do.
func BenchmarkEventsBaseline(b *testing.B) {
	payload := []byte(`{"id":"a1","roomId":"lobby","text":"Maintenance at 18:00","priority":2,"at":"2026-03-01T17:00:00Z"}`)
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(payload, &m); err != nil {
			b.Fatal(err)
		}
	}
}
