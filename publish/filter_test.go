package publish_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/filter"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
)

// countingSources is the app's executor as publish.Sources, counting the filters it compiles.
type countingSources struct {
	publish.Sources
	compiles atomic.Int64
}

func (c *countingSources) Filter(field, key string) (*filter.Filter, error) {
	c.compiles.Add(1)
	return c.Sources.Filter(field, key)
}

// filtered is a subscription with a filter, as the socket stores it: the key Prepare made of the
// filter argument, which is also in the document.
func filtered(t *testing.T, conn, proto, flt string) store.Subscription {
	t.Helper()
	s := sub(conn, "1", proto, `subscription { messageAdded(roomId: "r1", filter: `+flt+`) { text } }`)
	op, errs := exec.Prepare(context.Background(), graphRequest(s))
	if errs != nil {
		t.Fatalf("%s: %v", flt, errs)
	}
	s.Filter = op.Filter
	return s
}

// TestFiltersMatchBeforeRender: each subscriber gets the event only if it passes the subscriber's
// filter; the payload is decoded once, each distinct filter compiled once, and only the operations
// of subscribers that pass are rendered (once per distinct operation).
func TestFiltersMatchBeforeRender(t *testing.T) {
	var subs []store.Subscription
	for i := range 100 { // many subscribers share a few filters
		flt := []string{`{author: {eq: "ann"}}`, `{author: {eq: "bob"}}`, `{text: {contains: "ell"}, not: {author: {in: ["bob"]}}}`}[i%3]
		proto := []string{gqlws.TransportWS, gqlws.LegacyWS}[i%2]
		subs = append(subs, filtered(t, fmt.Sprintf("c%03d", i), proto, flt))
	}
	subs = append(subs, sub("nofilter", "1", gqlws.TransportWS, `subscription { messageAdded(roomId: "r1") { text } }`))
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: subs}}
	poster := mgmttest.New()
	r := newRenderer()
	src := &countingSources{Sources: exec}
	f := publish.New(publish.Config{Registry: reg, Sources: src, Renderer: r, Gateway: poster})
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, stream.Insert, nil, msg("r1", "m1", "hello")), // by ann
	}})
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v", resp.BatchItemFailures)
	}
	posts := poster.Posts()
	for i := range 100 {
		conn := fmt.Sprintf("c%03d", i)
		if want := i%3 != 1; (len(posts[conn]) == 1) != want {
			t.Errorf("%s (filter %d): %d posts, want delivered=%v", conn, i%3, len(posts[conn]), want)
		}
	}
	if len(posts["nofilter"]) != 1 {
		t.Errorf("the subscriber without a filter got %v", posts["nofilter"])
	}
	if st.Delivered != 68 || st.Filtered != 33 {
		t.Errorf("delivered %d, filtered %d; want 68 and 33", st.Delivered, st.Filtered)
	}
	if n := src.compiles.Load(); n != 3 {
		t.Errorf("%d compiles for 3 distinct filters", n)
	}
	// Passing subscribers: 2 distinct filter documents × 2 subprotocols share 2 documents (the
	// framing differs, not the document) plus the unfiltered one: 3 renders; the bob filter's
	// document is never rendered.
	if n := r.n.Load(); n != 3 {
		t.Errorf("%d renders, want 3 (one per distinct operation that passed)", n)
	}
	for _, p := range posts["c001"] {
		t.Errorf("bob's subscriber got %s", p)
	}
}

// TestStoredFilterThatNoLongerCompiles: a stored filter the schema no longer accepts keeps the
// event from its subscribers (logged once), and every other subscriber still gets it.
func TestStoredFilterThatNoLongerCompiles(t *testing.T) {
	bad := sub("old", "1", gqlws.TransportWS, selIDText)
	bad.Filter = `{"mood":{"eq":"happy"}}`
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {
		bad, filtered(t, "ok", gqlws.TransportWS, `{author: {eq: "ann"}}`), sub("plain", "1", gqlws.LegacyWS, selAuthor),
	}}}
	poster := mgmttest.New()
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Gateway: poster})
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, stream.Insert, nil, msg("r1", "m1", "hello")),
	}})
	posts := poster.Posts()
	if len(resp.BatchItemFailures) != 0 || len(posts["old"]) != 0 || len(posts["ok"]) != 1 || len(posts["plain"]) != 1 {
		t.Fatalf("failures %+v, posts %v", resp.BatchItemFailures, posts)
	}
	if !strings.Contains(posts["ok"][0], `"text":"hello"`) || st.Filtered != 1 {
		t.Errorf("posts %v, stats %+v", posts, st)
	}
}

func graphRequest(s store.Subscription) graph.Request {
	return graph.Request{Query: s.Query, OperationName: s.OperationName, Variables: s.Variables}
}
