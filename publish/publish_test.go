package publish_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/store"
)

// fakeRegistry serves subscriptions from memory and records deleted connections.
type fakeRegistry struct {
	mu      sync.Mutex
	subs    map[string][]store.Subscription
	failOn  string // topic whose lookup fails midway
	deleted []string
}

func (r *fakeRegistry) Subscriptions(ctx context.Context, topic string) iter.Seq2[store.Subscription, error] {
	return func(yield func(store.Subscription, error) bool) {
		r.mu.Lock()
		subs := append([]store.Subscription(nil), r.subs[topic]...)
		r.mu.Unlock()
		for i, s := range subs {
			if topic == r.failOn && i == len(subs)/2 {
				yield(store.Subscription{}, errors.New("registry unreachable"))
				return
			}
			if !yield(s, nil) {
				return
			}
		}
	}
}

func (r *fakeRegistry) DeleteConnection(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted = append(r.deleted, id)
	return nil
}

// fakePoster records posts; connections in gone answer GoneException, those in broken another error.
type fakePoster struct {
	mu       sync.Mutex
	posts    map[string][]string
	gone     map[string]bool
	broken   map[string]bool
	inflight atomic.Int32
	maxSeen  atomic.Int32
	delay    time.Duration
}

func (p *fakePoster) PostToConnection(ctx context.Context, in *apigatewaymanagementapi.PostToConnectionInput, _ ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error) {
	n := p.inflight.Add(1)
	defer p.inflight.Add(-1)
	for {
		m := p.maxSeen.Load()
		if n <= m || p.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	id := *in.ConnectionId
	if p.gone[id] {
		return nil, &types.GoneException{Message: aws.String("gone")}
	}
	if p.broken[id] {
		return nil, &types.LimitExceededException{Message: aws.String("throttled")}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.posts == nil {
		p.posts = map[string][]string{}
	}
	p.posts[id] = append(p.posts[id], string(in.Data))
	return &apigatewaymanagementapi.PostToConnectionOutput{}, nil
}

// countingRenderer wraps the real executor and counts renders.
type countingRenderer struct {
	exec *graph.Executor
	n    atomic.Int64
}

func (c *countingRenderer) Render(ctx context.Context, req graph.Request, ev *graph.Event) *graphql.Response {
	c.n.Add(1)
	return c.exec.Render(ctx, req, ev)
}

func newRenderer() *countingRenderer {
	return &countingRenderer{exec: graph.NewExecutor(&graph.Resolver{}, graph.Options{})}
}

func sub(conn, id, proto, query string) store.Subscription {
	return store.Subscription{ConnectionID: conn, ID: id, Subprotocol: proto, Query: query}
}

func record(t *testing.T, seq uint64, kind store.ChangeKind, old, new *store.Message) events.DynamoDBEventRecord {
	t.Helper()
	rec, err := store.ChangeRecord(kind, item(t, old), item(t, new), seq, "arn:aws:dynamodb:us-east-1:123456789012:table/data/stream/x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Round-trip through JSON, as Lambda delivers it.
	b, _ := json.Marshal(rec)
	var out events.DynamoDBEventRecord
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// item is a message's data table item, nil for none.
func item(t testing.TB, m *store.Message) store.Item {
	t.Helper()
	if m == nil {
		return nil
	}
	it, err := store.MessageItem(*m)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func msg(room, id, text string) *store.Message {
	return &store.Message{ID: id, RoomID: room, Author: "ann", Text: text, CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

const (
	addedR1   = "messageAdded?roomId=r1"
	selIDText = `subscription { messageAdded(roomId: "r1") { id text } }`
	selAuthor = `subscription { messageAdded(roomId: "r1") { author } }`
)

func TestDeliversEachSubscriberItsOwnSelection(t *testing.T) {
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {
		sub("c1", "1", store.TransportWS, selIDText),
		sub("c2", "7", store.LegacyWS, selAuthor),
		sub("c3", "x", store.TransportWS, `subscription { messageAdded(roomId: "r2") { id } }`), // another room's document
	}}}
	poster := &fakePoster{}
	f := publish.New(publish.Config{Registry: reg, Renderer: newRenderer(), Poster: poster})
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, store.Insert, nil, msg("r1", "m1", "hello")),
	}})
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %+v", resp.BatchItemFailures)
	}
	want := map[string][]string{
		"c1": {`{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"m1","text":"hello"}}}}`},
		"c2": {`{"id":"7","type":"data","payload":{"data":{"messageAdded":{"author":"ann"}}}}`},
	}
	if fmt.Sprint(poster.posts) != fmt.Sprint(want) {
		t.Fatalf("posts = %v\nwant %v", poster.posts, want)
	}
	if st.Delivered != 2 || st.Filtered != 1 || st.Subscribers != 3 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestRendersOncePerDistinctOperation(t *testing.T) {
	var subs []store.Subscription
	for i := range 500 {
		q := selIDText
		if i%2 == 1 {
			q = selAuthor
		}
		subs = append(subs, sub(fmt.Sprintf("c%d", i), "1", store.TransportWS, q))
	}
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: subs}}
	poster := &fakePoster{}
	r := newRenderer()
	f := publish.New(publish.Config{Registry: reg, Renderer: r, Poster: poster, Concurrency: 16})
	_, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, store.Insert, nil, msg("r1", "m1", "hello")),
	}})
	if r.n.Load() != 2 || st.Renders != 2 {
		t.Fatalf("%d renders for 2 distinct operations (stats %+v)", r.n.Load(), st)
	}
	if st.Delivered != 500 || len(poster.posts) != 500 {
		t.Fatalf("delivered %d to %d connections, want 500", st.Delivered, len(poster.posts))
	}
	if m := poster.maxSeen.Load(); m > 16 {
		t.Fatalf("%d posts in flight, limit 16", m)
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	var subs []store.Subscription
	for i := range 200 {
		subs = append(subs, sub(fmt.Sprintf("c%d", i), "1", store.TransportWS, selIDText))
	}
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: subs}}
	poster := &fakePoster{delay: time.Millisecond}
	f := publish.New(publish.Config{Registry: reg, Renderer: newRenderer(), Poster: poster, Concurrency: 8})
	f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{record(t, 1, store.Insert, nil, msg("r1", "m1", "x"))}})
	if m := poster.maxSeen.Load(); m != 8 {
		t.Fatalf("max posts in flight = %d, want exactly the limit 8", m)
	}
}

func TestGoneAndFailingSubscribersNeverFailTheRecord(t *testing.T) {
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {
		sub("ok", "1", store.TransportWS, selIDText),
		sub("gone", "1", store.TransportWS, selIDText),
		sub("gone", "2", store.TransportWS, selAuthor),
		sub("throttled", "1", store.TransportWS, selIDText),
	}}}
	poster := &fakePoster{gone: map[string]bool{"gone": true}, broken: map[string]bool{"throttled": true}}
	f := publish.New(publish.Config{Registry: reg, Renderer: newRenderer(), Poster: poster})
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, store.Insert, nil, msg("r1", "m1", "a")),
		record(t, 2, store.Insert, nil, msg("r1", "m2", "b")),
	}})
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("a subscriber's failure failed the batch: %+v", resp.BatchItemFailures)
	}
	if len(poster.posts["ok"]) != 2 {
		t.Fatalf("healthy subscriber got %d messages, want 2", len(poster.posts["ok"]))
	}
	if st.Gone != 4 || st.Failed != 2 || st.Delivered != 2 {
		t.Fatalf("stats = %+v", st)
	}
	// A gone connection is forgotten once per event, not once per subscription.
	if fmt.Sprint(reg.deleted) != "[gone gone]" {
		t.Fatalf("deleted connections = %v, want gone once per record", reg.deleted)
	}
}

func TestRegistryFailureReportsTheRecordAndStops(t *testing.T) {
	var subs []store.Subscription
	for i := range 10 {
		subs = append(subs, sub(fmt.Sprintf("c%d", i), "1", store.TransportWS, `subscription { messageEdited(roomId: "r1") { text } }`))
	}
	reg := &fakeRegistry{
		subs: map[string][]store.Subscription{
			addedR1:                   {sub("c0", "a", store.TransportWS, selIDText)},
			"messageEdited?roomId=r1": subs,
		},
		failOn: "messageEdited?roomId=r1",
	}
	poster := &fakePoster{}
	f := publish.New(publish.Config{Registry: reg, Renderer: newRenderer(), Poster: poster})
	m := msg("r1", "m1", "a")
	edited := *m
	edited.Text = "b"
	resp, _ := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 10, store.Insert, nil, m),
		record(t, 11, store.Modify, m, &edited),
		record(t, 12, store.Insert, nil, msg("r1", "m2", "later")),
	}})
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "11" {
		t.Fatalf("failures = %+v, want only sequence 11", resp.BatchItemFailures)
	}
	// The record after the failed one was not delivered: it must not overtake the retry.
	for _, posts := range poster.posts {
		for _, p := range posts {
			if strings.Contains(p, "later") {
				t.Fatalf("record 12 delivered before the failed record 11: %s", p)
			}
		}
	}
}

func TestMalformedRecordIsSkippedAndTheBatchGoesOn(t *testing.T) {
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {sub("c1", "1", store.TransportWS, selIDText)}}}
	poster := &fakePoster{}
	f := publish.New(publish.Config{Registry: reg, Renderer: newRenderer(), Poster: poster})
	bad := record(t, 1, store.Insert, nil, msg("r1", "m0", "x"))
	bad.Change.NewImage = nil // INSERT without its image
	other := record(t, 2, store.Insert, nil, msg("r1", "m1", "x"))
	delete(other.Change.NewImage, "__typename") // an item of no declared type: skipped cheaply
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		bad, other, record(t, 3, store.Insert, nil, msg("r1", "m2", "fine")),
	}})
	if len(resp.BatchItemFailures) != 0 || st.Skipped != 1 || st.Delivered != 1 {
		t.Fatalf("resp %+v stats %+v", resp, st)
	}
	if len(poster.posts["c1"]) != 1 || !strings.Contains(poster.posts["c1"][0], "fine") {
		t.Fatalf("posts = %v", poster.posts)
	}
}

func TestOversizedResultBecomesAnError(t *testing.T) {
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {sub("c1", "1", store.TransportWS, selIDText)}}}
	poster := &fakePoster{}
	f := publish.New(publish.Config{Registry: reg, Renderer: newRenderer(), Poster: poster, MaxMessage: 1024})
	_, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, store.Insert, nil, msg("r1", "m1", strings.Repeat("x", 2000))),
	}})
	if st.TooLarge != 1 || len(poster.posts["c1"]) != 1 {
		t.Fatalf("stats %+v posts %v", st, poster.posts)
	}
	var m struct {
		ID, Type string
		Payload  struct {
			Errors []struct {
				Extensions map[string]string
			}
		}
	}
	json.Unmarshal([]byte(poster.posts["c1"][0]), &m)
	if m.Type != "next" || m.ID != "1" || len(m.Payload.Errors) != 1 || m.Payload.Errors[0].Extensions["code"] != "RESULT_TOO_LARGE" {
		t.Fatalf("post = %s", poster.posts["c1"][0])
	}
}

// TestRealClient points the real apigatewaymanagementapi client at a server that answers like
// API Gateway, so signing, paths and error decoding are exercised for real.
func TestRealClient(t *testing.T) {
	var mu sync.Mutex
	got := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
			t.Errorf("request not signed: %q", r.Header.Get("Authorization"))
		}
		id := strings.TrimPrefix(r.URL.EscapedPath(), "/prod/@connections/")
		if r.Method != http.MethodPost || id == r.URL.EscapedPath() {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
		}
		if strings.HasPrefix(id, "gone") {
			w.Header().Set("X-Amzn-ErrorType", "GoneException")
			w.WriteHeader(http.StatusGone)
			w.Write([]byte(`{"message":null}`))
			return
		}
		var body strings.Builder
		buf := make([]byte, 1024)
		for {
			n, err := r.Body.Read(buf)
			body.Write(buf[:n])
			if err != nil {
				break
			}
		}
		mu.Lock()
		got[id] = body.String()
		mu.Unlock()
	}))
	defer srv.Close()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	client := publish.NewClient(cfg, srv.URL+"/prod", 4)
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {
		sub("Ab1=", "1", store.TransportWS, selIDText),
		sub("gone1=", "1", store.TransportWS, selIDText),
	}}}
	f := publish.New(publish.Config{Registry: reg, Renderer: newRenderer(), Poster: client})
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, store.Insert, nil, msg("r1", "m1", "hi")),
	}})
	if len(resp.BatchItemFailures) != 0 || st.Delivered != 1 || st.Gone != 1 {
		t.Fatalf("resp %+v stats %+v", resp, st)
	}
	if got["Ab1%3D"] != `{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"m1","text":"hi"}}}}` {
		t.Fatalf("server received %v", got)
	}
	if fmt.Sprint(reg.deleted) != "[gone1=]" {
		t.Fatalf("deleted = %v", reg.deleted)
	}
}

func TestStopsBeforeTheDeadline(t *testing.T) {
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {sub("c1", "1", store.TransportWS, selIDText)}}}
	poster := &fakePoster{delay: 60 * time.Millisecond}
	f := publish.New(publish.Config{Registry: reg, Renderer: newRenderer(), Poster: poster, DeadlineMargin: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var recs []events.DynamoDBEventRecord
	for i := range 5 {
		recs = append(recs, record(t, uint64(i+1), store.Insert, nil, msg("r1", fmt.Sprint("m", i), "x")))
	}
	resp, st := f.Publish(ctx, events.DynamoDBEvent{Records: recs})
	// Some records fit before the margin (60 ms each, 200 ms budget, 100 ms margin; fewer on a
	// slow machine); the next one is reported and nothing after it is delivered.
	if st.Delivered < 1 || st.Delivered > 2 || len(resp.BatchItemFailures) != 1 ||
		resp.BatchItemFailures[0].ItemIdentifier != fmt.Sprint(st.Delivered+1) || len(poster.posts["c1"]) != int(st.Delivered) {
		t.Fatalf("failures %+v, delivered %d", resp.BatchItemFailures, st.Delivered)
	}
}
