package publish_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/http/httptest"
	"slices"
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
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/graph/model"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
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

// countingRenderer wraps the real executor and counts renders.
type countingRenderer struct {
	exec *graph.Executor
	n    atomic.Int64
}

func (c *countingRenderer) Render(ctx context.Context, req graph.Request, ev *engine.Event) *graphql.Response {
	c.n.Add(1)
	return c.exec.Render(ctx, req, ev)
}

// exec is the app's executor: the schema's routing table and filters, and the renderer.
var exec = func() *graph.Executor {
	res, err := graph.NewResolver(nil) // the resolvers under test never touch the data table
	if err != nil {
		panic(err)
	}
	e, err := graph.NewExecutor(res, graph.Options{})
	if err != nil {
		panic(err)
	}
	return e
}()

func newRenderer() *countingRenderer { return &countingRenderer{exec: exec} }

// msgType is the schema's @item type of messages.
var msgType = func() store.ItemType {
	src, err := graph.Analyze(graph.Schema())
	if err != nil {
		panic(err)
	}
	it, _ := src.Item("Message")
	return it
}()

// eventID is the eventID stream.ChangeRecord gives the record of sequence number seq.
func eventID(seq uint64) string { return fmt.Sprintf("%032x", seq) }

func sub(conn, id, proto, query string) store.Subscription {
	return store.Subscription{ConnectionID: conn, ID: id, Subprotocol: proto, Query: query}
}

func record(t *testing.T, seq uint64, kind stream.ChangeKind, old, new *model.Message) events.DynamoDBEventRecord {
	t.Helper()
	rec, err := stream.ChangeRecord(kind, item(t, old), item(t, new), seq, "arn:aws:dynamodb:us-east-1:123456789012:table/data/stream/x", time.Now())
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
func item(t testing.TB, m *model.Message) store.Item {
	t.Helper()
	if m == nil {
		return nil
	}
	it, err := msgType.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func msg(room, id, text string) *model.Message {
	return &model.Message{ID: id, RoomID: room, Author: "ann", Text: text, CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

const (
	addedR1   = "messageAdded?roomId=r1"
	selIDText = `subscription { messageAdded(roomId: "r1") { id text } }`
	selAuthor = `subscription { messageAdded(roomId: "r1") { author } }`
)

func TestDeliversEachSubscriberItsOwnSelection(t *testing.T) {
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {
		sub("c1", "1", gqlws.TransportWS, selIDText),
		sub("c2", "7", gqlws.LegacyWS, selAuthor),
		sub("c3", "x", gqlws.TransportWS, `subscription { messageAdded(roomId: "r2") { id } }`), // another room's document
	}}}
	poster := mgmttest.New()
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Poster: poster})
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, stream.Insert, nil, msg("r1", "m1", "hello")),
	}})
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %+v", resp.BatchItemFailures)
	}
	want := map[string][]string{
		"c1": {`{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"m1","text":"hello"}},"extensions":{"event":{"id":"` + eventID(1) + `","seq":"1"}}}}`},
		"c2": {`{"id":"7","type":"data","payload":{"data":{"messageAdded":{"author":"ann"}},"extensions":{"event":{"id":"` + eventID(1) + `","seq":"1"}}}}`},
	}
	if posts := poster.Posts(); fmt.Sprint(posts) != fmt.Sprint(want) {
		t.Fatalf("posts = %v\nwant %v", posts, want)
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
		subs = append(subs, sub(fmt.Sprintf("c%d", i), "1", gqlws.TransportWS, q))
	}
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: subs}}
	poster := mgmttest.New()
	r := newRenderer()
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: r, Poster: poster, Concurrency: 16})
	_, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, stream.Insert, nil, msg("r1", "m1", "hello")),
	}})
	if r.n.Load() != 2 || st.Renders != 2 {
		t.Fatalf("%d renders for 2 distinct operations (stats %+v)", r.n.Load(), st)
	}
	if posts := poster.Posts(); st.Delivered != 500 || len(posts) != 500 {
		t.Fatalf("delivered %d to %d connections, want 500", st.Delivered, len(posts))
	}
	if m := poster.MaxInFlight(); m > 16 {
		t.Fatalf("%d posts in flight, limit 16", m)
	}
}

// TestConcurrencyIsBounded: posts run concurrently, never more than the limit at once. (How many
// run at once on a loaded machine is not asserted: only that the limit holds and that posts did
// overlap.)
func TestConcurrencyIsBounded(t *testing.T) {
	var subs []store.Subscription
	for i := range 200 {
		subs = append(subs, sub(fmt.Sprintf("c%d", i), "1", gqlws.TransportWS, selIDText))
	}
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: subs}}
	poster := mgmttest.New()
	poster.Inject(func(mgmttest.Call) mgmttest.Fault { return mgmttest.Fault{Delay: time.Millisecond} })
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Poster: poster, Concurrency: 8})
	_, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{record(t, 1, stream.Insert, nil, msg("r1", "m1", "x"))}})
	if st.Delivered != 200 {
		t.Fatalf("delivered %d, want 200", st.Delivered)
	}
	if m := poster.MaxInFlight(); m > 8 || m < 2 {
		t.Fatalf("max posts in flight = %d, want between 2 and the limit 8", m)
	}
}

func TestGoneAndFailingSubscribersNeverFailTheRecord(t *testing.T) {
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {
		sub("ok", "1", gqlws.TransportWS, selIDText),
		sub("gone", "1", gqlws.TransportWS, selIDText),
		sub("gone", "2", gqlws.TransportWS, selAuthor),
		sub("throttled", "1", gqlws.TransportWS, selIDText),
	}}}
	poster := mgmttest.New()
	poster.Drop("gone")
	poster.Inject(func(c mgmttest.Call) mgmttest.Fault {
		if c.ConnectionID == "throttled" {
			return mgmttest.Fault{Status: http.StatusTooManyRequests}
		}
		return mgmttest.Fault{}
	})
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Poster: poster})
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, stream.Insert, nil, msg("r1", "m1", "a")),
		record(t, 2, stream.Insert, nil, msg("r1", "m2", "b")),
	}})
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("a subscriber's failure failed the batch: %+v", resp.BatchItemFailures)
	}
	if n := len(poster.Posts()["ok"]); n != 2 {
		t.Fatalf("healthy subscriber got %d messages, want 2", n)
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
		subs = append(subs, sub(fmt.Sprintf("c%d", i), "1", gqlws.TransportWS, `subscription { messageEdited(roomId: "r1") { text } }`))
	}
	reg := &fakeRegistry{
		subs: map[string][]store.Subscription{
			addedR1:                   {sub("c0", "a", gqlws.TransportWS, selIDText)},
			"messageEdited?roomId=r1": subs,
		},
		failOn: "messageEdited?roomId=r1",
	}
	poster := mgmttest.New()
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Poster: poster})
	m := msg("r1", "m1", "a")
	edited := *m
	edited.Text = "b"
	resp, _ := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 10, stream.Insert, nil, m),
		record(t, 11, stream.Modify, m, &edited),
		record(t, 12, stream.Insert, nil, msg("r1", "m2", "later")),
	}})
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "11" {
		t.Fatalf("failures = %+v, want only sequence 11", resp.BatchItemFailures)
	}
	// The record after the failed one was not delivered: it must not overtake the retry.
	for _, posts := range poster.Posts() {
		for _, p := range posts {
			if strings.Contains(p, "later") {
				t.Fatalf("record 12 delivered before the failed record 11: %s", p)
			}
		}
	}
}

func TestMalformedRecordIsSkippedAndTheBatchGoesOn(t *testing.T) {
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {sub("c1", "1", gqlws.TransportWS, selIDText)}}}
	poster := mgmttest.New()
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Poster: poster})
	bad := record(t, 1, stream.Insert, nil, msg("r1", "m0", "x"))
	bad.Change.NewImage = nil // INSERT without its image
	other := record(t, 2, stream.Insert, nil, msg("r1", "m1", "x"))
	delete(other.Change.NewImage, "__typename") // an item of no declared type: skipped cheaply
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		bad, other, record(t, 3, stream.Insert, nil, msg("r1", "m2", "fine")),
	}})
	if len(resp.BatchItemFailures) != 0 || st.Skipped != 1 || st.Delivered != 1 {
		t.Fatalf("resp %+v stats %+v", resp, st)
	}
	if posts := poster.Posts(); len(posts["c1"]) != 1 || !strings.Contains(posts["c1"][0], "fine") {
		t.Fatalf("posts = %v", posts)
	}
}

func TestOversizedResultBecomesAnError(t *testing.T) {
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {sub("c1", "1", gqlws.TransportWS, selIDText)}}}
	poster := mgmttest.New()
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Poster: poster, MaxMessage: 1024})
	_, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, stream.Insert, nil, msg("r1", "m1", strings.Repeat("x", 2000))),
	}})
	posts := poster.Posts()
	if st.TooLarge != 1 || len(posts["c1"]) != 1 {
		t.Fatalf("stats %+v posts %v", st, posts)
	}
	var m struct {
		ID, Type string
		Payload  struct {
			Errors []struct {
				Extensions map[string]string
			}
		}
	}
	json.Unmarshal([]byte(posts["c1"][0]), &m)
	if m.Type != "next" || m.ID != "1" || len(m.Payload.Errors) != 1 || m.Payload.Errors[0].Extensions["code"] != "RESULT_TOO_LARGE" {
		t.Fatalf("post = %s", posts["c1"][0])
	}
}

// TestRealClient points the real apigatewaymanagementapi client at a server that answers like
// API Gateway (mgmttest over HTTP), so signing, paths and error decoding are exercised for real.
func TestRealClient(t *testing.T) {
	gw := mgmttest.New()
	gw.Drop("gone1=")
	srv := httptest.NewServer(gw)
	defer srv.Close()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	client := apigatewaymanagementapi.NewFromConfig(cfg, func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String(srv.URL + "/prod")
	})
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {
		sub("Ab1=", "1", gqlws.TransportWS, selIDText),
		sub("gone1=", "1", gqlws.TransportWS, selIDText),
	}}}
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Poster: client})
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, stream.Insert, nil, msg("r1", "m1", "hi")),
	}})
	if len(resp.BatchItemFailures) != 0 || st.Delivered != 1 || st.Gone != 1 {
		t.Fatalf("resp %+v stats %+v", resp, st)
	}
	if got := gw.Posts(); fmt.Sprint(got) != `map[Ab1=:[{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"m1","text":"hi"}},"extensions":{"event":{"id":"`+eventID(1)+`","seq":"1"}}}}]]` {
		t.Fatalf("server received %v", got)
	}
	if fmt.Sprint(reg.deleted) != "[gone1=]" {
		t.Fatalf("deleted = %v", reg.deleted)
	}
}

func TestStopsBeforeTheDeadline(t *testing.T) {
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {sub("c1", "1", gqlws.TransportWS, selIDText)}}}
	poster := mgmttest.New()
	poster.Inject(func(mgmttest.Call) mgmttest.Fault { return mgmttest.Fault{Delay: 60 * time.Millisecond} })
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Poster: poster, DeadlineMargin: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var recs []events.DynamoDBEventRecord
	for i := range 5 {
		recs = append(recs, record(t, uint64(i+1), stream.Insert, nil, msg("r1", fmt.Sprint("m", i), "x")))
	}
	resp, st := f.Publish(ctx, events.DynamoDBEvent{Records: recs})
	// Some records fit before the margin (60 ms each, 200 ms budget, 100 ms margin; fewer on a
	// slow machine); the next one is reported and nothing after it is delivered.
	if st.Delivered < 1 || st.Delivered > 2 || len(resp.BatchItemFailures) != 1 ||
		resp.BatchItemFailures[0].ItemIdentifier != fmt.Sprint(st.Delivered+1) || len(poster.Posts()["c1"]) != int(st.Delivered) {
		t.Fatalf("failures %+v, delivered %d", resp.BatchItemFailures, st.Delivered)
	}
}

// TestExpiredPrincipalIsSkippedAndClosed: a subscription whose stored principal has expired gets
// nothing; it is counted, and its connection is closed and forgotten once, however many of its
// subscriptions the event reaches. Live principals and anonymous ones are delivered, each render
// run as its subscriber (the rooms claim of the principal decides).
func TestExpiredPrincipalIsSkippedAndClosed(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	principal := func(sub string, exp time.Time, claims string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"sub":%q,"exp":%d%s}`, sub, exp.Unix(), claims))
	}
	with := func(s store.Subscription, p json.RawMessage) store.Subscription { s.Principal = p; return s }
	expired := principal("old", now.Add(-time.Second), "")
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {
		with(sub("c1", "1", gqlws.TransportWS, selIDText), expired),
		with(sub("c1", "2", gqlws.TransportWS, selAuthor), expired),
		with(sub("c2", "1", gqlws.TransportWS, selIDText), principal("live", now.Add(time.Minute), "")),
		with(sub("c3", "1", gqlws.TransportWS, selIDText), principal("other-room", now.Add(time.Minute), `,"claims":{"rooms":["r9"]}`)),
		with(sub("c4", "1", gqlws.LegacyWS, selAuthor), json.RawMessage(`{"sub":`)), // unreadable: never trusted
		sub("c5", "1", gqlws.TransportWS, selIDText),                                // anonymous
	}}}
	poster := mgmttest.New()
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Poster: poster, Closer: poster, Now: func() time.Time { return now }})
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 1, stream.Insert, nil, msg("r1", "m1", "hello")),
	}})
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %+v", resp.BatchItemFailures)
	}
	posts := poster.Posts()
	for _, c := range []string{"c1", "c4"} {
		if len(posts[c]) != 0 || !poster.Closed(c) {
			t.Errorf("%s: posts %v, closed %v; want nothing and closed", c, posts[c], poster.Closed(c))
		}
	}
	if want := `{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"m1","text":"hello"}},"extensions":{"event":{"id":"` + eventID(1) + `","seq":"1"}}}}`; fmt.Sprint(posts["c2"]) != "["+want+"]" ||
		fmt.Sprint(posts["c5"]) != "["+want+"]" {
		t.Errorf("live and anonymous subscribers got %v and %v", posts["c2"], posts["c5"])
	}
	if len(posts["c3"]) != 1 || !strings.Contains(posts["c3"][0], `"code":"FORBIDDEN"`) || strings.Contains(posts["c3"][0], "hello") {
		t.Errorf("a principal outside the room got %v, want a FORBIDDEN error and no data", posts["c3"])
	}
	if st.Expired != 3 || st.Delivered != 3 {
		t.Errorf("stats %+v: want 3 expired (two of c1, c4) and 3 delivered", st)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if fmt.Sprint(slices.Sorted(slices.Values(reg.deleted))) != "[c1 c4]" {
		t.Errorf("forgotten connections %v, want c1 and c4 once each", reg.deleted)
	}
}
