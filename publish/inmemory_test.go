package publish_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
)

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
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: r, Gateway: poster, Concurrency: 16})
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
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Gateway: poster, Concurrency: 8})
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
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Gateway: poster})
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
	// The throttled posts (429 until the poster gave up) are counted as throttled, not failed.
	if st.Gone != 4 || st.Throttled != 2 || st.Failed != 0 || st.Delivered != 2 {
		t.Fatalf("stats = %+v", st)
	}
	// A gone connection is forgotten once per invocation, not once per subscription or record;
	// its later subscriptions count as gone without a post.
	if fmt.Sprint(reg.deleted) != "[gone]" {
		t.Fatalf("deleted connections = %v, want gone once", reg.deleted)
	}
	if n := len(poster.Posts()["gone"]); n != 0 {
		t.Fatalf("the gone connection got %d posts", n)
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
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Gateway: poster})
	m := msg("r1", "m1", "a")
	edited := *m
	edited.Text = "b"
	resp, _ := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 10, stream.Insert, nil, m),
		record(t, 11, stream.Modify, m, &edited),
		record(t, 12, stream.Insert, nil, msg("r1", "m2", "later")),
	}})
	if len(resp.BatchItemFailures) != 2 || resp.BatchItemFailures[0].ItemIdentifier != "11" || resp.BatchItemFailures[1].ItemIdentifier != "12" {
		t.Fatalf("failures = %+v, want sequence 11 and the record after it", resp.BatchItemFailures)
	}
	// Record 12 is of another topic (messageAdded, not messageEdited) but of the same room, the
	// same partition: it is ordered after record 11, so it waits for it and is reported with it
	// (Lambda resumes from record 11 and brings it back). Nothing reached c0 yet.
	later := func() int {
		n := 0
		for _, p := range poster.Posts()["c0"] {
			if strings.Contains(p, "later") {
				n++
			}
		}
		return n
	}
	if later() != 0 {
		t.Fatalf("record 12 reached c0 %d times before record 11 was delivered, want not yet", later())
	}
	reg.mu.Lock()
	reg.failOn = ""
	reg.mu.Unlock()
	resp, st := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		record(t, 11, stream.Modify, m, &edited),
		record(t, 12, stream.Insert, nil, msg("r1", "m2", "later")),
	}})
	if len(resp.BatchItemFailures) != 0 || st.Skipped != 0 || later() != 1 {
		t.Fatalf("the retry: failures %+v, stats %+v, record 12 reached c0 %d times", resp.BatchItemFailures, st, later())
	}
	for i := range 10 {
		if n := len(poster.Posts()[fmt.Sprintf("c%d", i)]); n < 1 || (i >= 5 && n != 1) {
			t.Fatalf("c%d got record 11 %d times, want at least once (exactly once after the failed page)", i, n)
		}
	}
}

// TestRealClient points the real management API client (internal/mgmt's) at a server that
// answers like API Gateway (mgmttest over HTTP), so signing, paths and error decoding are
// exercised for real.
func TestRealClient(t *testing.T) {
	gw := mgmttest.New()
	gw.Drop("gone1=")
	srv := httptest.NewServer(gw)
	defer srv.Close()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	client, err := mgmt.New(mgmt.Config{Endpoint: srv.URL + "/prod", Region: cfg.Region, Credentials: cfg.Credentials})
	if err != nil {
		t.Fatal(err)
	}
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {
		sub("Ab1=", "1", gqlws.TransportWS, selIDText),
		sub("gone1=", "1", gqlws.TransportWS, selIDText),
	}}}
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Gateway: client})
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

// TestStopsBeforeTheDeadline: records of one topic, each post taking 60 ms, a 200 ms invocation
// with a 100 ms margin: no post starts after D−M (100 ms), and one in flight then is cut at
// D−M+M/5. Some records fit (one or two; fewer on a slow machine); the first that does not is
// reported, and so is every later one (they wait for it), none of them delivered; Publish answers
// before the deadline.
func TestStopsBeforeTheDeadline(t *testing.T) {
	reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: {sub("c1", "1", gqlws.TransportWS, selIDText)}}}
	poster := mgmttest.New()
	poster.Inject(func(mgmttest.Call) mgmttest.Fault { return mgmttest.Fault{Delay: 60 * time.Millisecond} })
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Gateway: poster, Margin: 100 * time.Millisecond})
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var recs []events.DynamoDBEventRecord
	for i := range 5 {
		recs = append(recs, record(t, uint64(i+1), stream.Insert, nil, msg("r1", fmt.Sprint("m", i), "x")))
	}
	start := time.Now()
	resp, st := f.Publish(ctx, events.DynamoDBEvent{Records: recs})
	if took := time.Since(start); took >= 200*time.Millisecond {
		t.Fatalf("Publish answered after %v, at or past the deadline", took)
	}
	var reported []string
	for _, fl := range resp.BatchItemFailures {
		reported = append(reported, fl.ItemIdentifier)
	}
	var want []string
	for i := st.Delivered + 1; i <= 5; i++ {
		want = append(want, fmt.Sprint(i))
	}
	if st.Delivered > 2 || fmt.Sprint(reported) != fmt.Sprint(want) || len(poster.Posts()["c1"]) != int(st.Delivered) {
		t.Fatalf("reported %v, delivered %d (%d posts): want the records after the delivered ones reported",
			reported, st.Delivered, len(poster.Posts()["c1"]))
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
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Gateway: poster, Now: func() time.Time { return now }})
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
