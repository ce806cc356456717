package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/store"
)

type nopRegistry struct{}

func (nopRegistry) TopicPages(context.Context, string, string, string) iter.Seq2[Page, error] {
	return func(func(Page, error) bool) {}
}
func (nopRegistry) TopicSubscriptions(context.Context, string, []SubKey) ([]store.Subscription, error) {
	return nil, nil
}
func (nopRegistry) TopicCursors(context.Context, string, string, string, int) ([]string, error) {
	return nil, nil
}
func (nopRegistry) DeleteConnection(context.Context, string) error { return nil }
func (nopRegistry) FanoutProgress(context.Context, []string) (map[string]Progress, error) {
	return nil, nil
}
func (nopRegistry) SaveFanoutProgress(context.Context, []Progress) error { return nil }

type constRenderer struct{}

func (constRenderer) Render(context.Context, *store.Subscription, *Event) json.RawMessage {
	return json.RawMessage(`{"data":{"messageAdded":{"id":"m1","text":"hello"}}}`)
}

type countPoster struct{ n, bytes int }

func (p *countPoster) Post(_ context.Context, _ string, data []byte) error {
	p.n++
	p.bytes += len(data)
	return nil
}

// TestDeliveryAllocatesNothing: checking, matching, framing into a pooled buffer and posting one
// subscriber allocates nothing once its operation is rendered.
func TestDeliveryAllocatesNothing(t *testing.T) {
	poster := &countPoster{}
	e := New(Config{Registry: nopRegistry{}, Renderer: constRenderer{}, Poster: poster, Concurrency: 1,
		Match: func(context.Context, *Event) func(*store.Subscription) bool {
			return func(*store.Subscription) bool { return true }
		},
		Expired: func(*store.Subscription, time.Time) bool { return false }})
	defer e.Close()
	inv := e.begin(context.Background())
	defer inv.end()
	ev := &Event{ID: "e1", Seq: "1", Field: "messageAdded", Topic: "t", Payload: json.RawMessage(`{}`)}
	n := inv.newNode(ev, EventKey(ev), "", Progress{}, false)
	subs := make([]store.Subscription, 64)
	for i := range subs {
		proto := gqlws.TransportWS
		if i%2 == 1 {
			proto = gqlws.LegacyWS
		}
		subs[i] = store.Subscription{ConnectionID: fmt.Sprintf("conn%04d=", i), ID: "1", Subprotocol: proto, Query: "q"}
	}
	p := &page{subs: subs}
	r := n.renderFor(&subs[0])
	r.get(n, &subs[0]) // the one render
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		if st := n.deliver(p, i%len(subs), r); st != sOK {
			t.Fatalf("state %d", st)
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.2f allocations per delivery, want 0", allocs)
	}
	if poster.n < 1000 || n.c.delivered.Load() < 1000 {
		t.Fatalf("%d posts", poster.n)
	}
	// And the reader's side: finding the render entry of a subscriber.
	if a := testing.AllocsPerRun(1000, func() { n.renderFor(&subs[i%len(subs)]); i++ }); a != 0 {
		t.Fatalf("%.2f allocations per render lookup", a)
	}
}
