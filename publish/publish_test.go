package publish_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/realtime-gql/lambdaws/internal/chunkq"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/internal/testlog"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/realtime-gql/lambdaws/store/stream"
	"github.com/rs/zerolog"
)

// env is a Fanout over an embedded store (pages of 7), posting with the real internal/mgmt
// client over HTTP to a fake management API that can inject faults.
type env struct {
	t     testing.TB
	store *embedded.Store
	reg   fanout.Registry // what the Fanout reads: the store, or a faulty wrapper of it
	gw    *mgmttest.Gateway
	url   string // the management endpoint
	rend  *countingRenderer
	logs  *testlog.Buffer
	f     *publish.Fanout
	// seen is what the Fanout saw of its posts through the env's client (none when the test
	// gives its own Gateway).
	seen *seenPosts
}

// seenPosts counts, per connection, how the posts of the Fanout ended as the Fanout and its
// client saw them.
type seenPosts struct {
	mu sync.Mutex
	// answered: posts that returned success, which the Fanout knows it delivered. unanswered:
	// requests that were sent and never answered, cut by the post's context or by the client's
	// attempt timeout (and then sent again): the service may or may not have delivered them.
	answered, unanswered map[string]int
	// refused lists the posts that ended with an answer other than success.
	refused []error
}

// seeingGateway is the Gateway the Fanout is given: the env's client, recording what it sees.
type seeingGateway struct {
	*mgmt.Client
	seen *seenPosts
}

// envRetry is the policy of the env's client: retries up to the post's own deadline.
var envRetry = mgmt.Retry{Margin: -1}

// Post is the client's Post under its policy, counting the attempts. The fake gateway injects
// no failing status here, so every attempt but a successful last one went unanswered.
func (g seeingGateway) Post(ctx context.Context, connID string, data []byte) error {
	res, err := g.Client.PostWith(ctx, connID, data, envRetry)
	g.seen.mu.Lock()
	defer g.seen.mu.Unlock()
	var me *mgmt.Error
	switch {
	case err == nil:
		g.seen.answered[connID]++
		g.seen.unanswered[connID] += res.Attempts - 1
	case errors.As(err, &me) && me.Status == 0: // the last attempt (if any was sent) had no answer
		g.seen.unanswered[connID] += me.Attempts
	default:
		g.seen.refused = append(g.seen.refused, err)
	}
	return err
}

func newEnv(t testing.TB, cfg publish.Config) *env {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "store.db"), embedded.Options{PageSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	gw := mgmttest.New()
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	e := &env{t: t, store: s, reg: s, gw: gw, url: srv.URL + "/prod", rend: newRenderer(), logs: &testlog.Buffer{}}
	if cfg.Registry != nil {
		e.reg = cfg.Registry
	} else {
		cfg.Registry = s
	}
	cfg.Renderer = e.rend
	if cfg.Sources == nil {
		cfg.Sources = exec
	}
	if cfg.Gateway == nil {
		e.seen = &seenPosts{answered: map[string]int{}, unanswered: map[string]int{}}
		cfg.Gateway = seeingGateway{e.client(16), e.seen}
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 16
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Millisecond
	}
	e.f = publish.New(cfg)
	t.Cleanup(e.f.Close)
	return e
}

// client is the real management client, signing with static credentials.
func (e *env) client(conns int) *mgmt.Client {
	c, err := mgmt.New(mgmt.Config{Endpoint: e.url, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), MaxConns: conns,
		Retry: envRetry})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// ctx is a context carrying the test's logger, with a deadline when d > 0.
func (e *env) ctx(d time.Duration) (context.Context, context.CancelFunc) {
	ctx := zerolog.New(e.logs).WithContext(context.Background())
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

func (e *env) publish(d time.Duration, recs ...events.DynamoDBEventRecord) (events.DynamoDBEventResponse, publish.Stats) {
	ctx, cancel := e.ctx(d)
	defer cancel()
	return e.f.Publish(ctx, events.DynamoDBEvent{Records: recs})
}

// subscribe stores subscriptions of one operation on the topic, for the connections.
func (e *env) subscribe(topic, query string, proto string, conns ...string) {
	e.t.Helper()
	for _, c := range conns {
		s := store.Subscription{ConnectionID: c, ID: "1", Topic: topic, Subprotocol: proto, Query: query,
			CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		if err := e.store.PutSubscription(context.Background(), s, false); err != nil {
			e.t.Fatal(err)
		}
	}
}

// eventIDs lists, per connection, extensions.event.id of every frame delivered to it.
func (e *env) eventIDs() map[string][]string {
	e.t.Helper()
	out := map[string][]string{}
	for conn, frames := range e.gw.Posts() {
		for _, f := range frames {
			var m struct {
				Payload struct {
					Extensions struct {
						Event struct{ ID, Seq string }
					}
				}
			}
			if err := json.Unmarshal([]byte(f), &m); err != nil || m.Payload.Extensions.Event.ID == "" {
				e.t.Fatalf("frame without extensions.event: %s (%v)", f, err)
			}
			out[conn] = append(out[conn], m.Payload.Extensions.Event.ID)
		}
	}
	return out
}

func conns(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%05d=", prefix, i)
	}
	return out
}

// TestDeliversEachSubscriberItsOwnSelection: every subscriber gets exactly its selection, framed
// for its subprotocol, with the change's identity in payload.extensions.event.
func TestDeliversEachSubscriberItsOwnSelection(t *testing.T) {
	e := newEnv(t, publish.Config{})
	e.subscribe(addedR1, selIDText, gqlws.TransportWS, "c1")
	e.subscribe(addedR1, selAuthor, gqlws.LegacyWS, "c2")
	e.subscribe(addedR1, `subscription { messageAdded(roomId: "r2") { id } }`, gqlws.TransportWS, "c3") // another room's document
	rec := record(t, 1, stream.Insert, nil, msg("r1", "m1", "hello"))
	resp, st := e.publish(0, rec)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %+v", resp.BatchItemFailures)
	}
	ext := fmt.Sprintf(`"extensions":{"event":{"id":%q,"seq":"1"}}`, rec.EventID)
	want := map[string][]string{
		"c1": {`{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"m1","text":"hello"}},` + ext + `}}`},
		"c2": {`{"id":"1","type":"data","payload":{"data":{"messageAdded":{"author":"ann"}},` + ext + `}}`},
	}
	if posts := e.gw.Posts(); fmt.Sprint(posts) != fmt.Sprint(want) {
		t.Fatalf("posts = %v\nwant %v", posts, want)
	}
	if st.Delivered != 2 || st.Filtered != 1 || st.Subscribers != 3 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestRendersOncePerDistinctOperationWithBoundedConcurrency(t *testing.T) {
	e := newEnv(t, publish.Config{Concurrency: 16})
	all := conns("c", 500)
	e.subscribe(addedR1, selIDText, gqlws.TransportWS, all[:250]...)
	e.subscribe(addedR1, selAuthor, gqlws.TransportWS, all[250:]...)
	e.gw.Inject(func(mgmttest.Call) mgmttest.Fault { return mgmttest.Fault{Delay: time.Millisecond} })
	_, st := e.publish(0, record(t, 1, stream.Insert, nil, msg("r1", "m1", "hello")))
	if e.rend.n.Load() != 2 || st.Renders != 2 {
		t.Fatalf("%d renders for 2 distinct operations (stats %+v)", e.rend.n.Load(), st)
	}
	if posts := e.gw.Posts(); st.Delivered != 500 || len(posts) != 500 {
		t.Fatalf("delivered %d to %d connections, want 500", st.Delivered, len(posts))
	}
	if m := e.gw.MaxInFlight(); m > 16 || m < 2 {
		t.Fatalf("%d posts in flight, want between 2 and the 16 workers", m)
	}
}

// TestSubscribersFailuresNeverFailTheRecord: a gone connection is forgotten, a post refused for
// one subscriber among many is logged, and the record is acknowledged.
func TestSubscribersFailuresNeverFailTheRecord(t *testing.T) {
	e := newEnv(t, publish.Config{})
	e.subscribe(addedR1, selIDText, gqlws.TransportWS, conns("ok", 30)...)
	e.subscribe(addedR1, selIDText, gqlws.TransportWS, "gone=", "refused=")
	if err := e.store.PutSubscription(context.Background(), store.Subscription{ConnectionID: "gone=", ID: "2", Topic: addedR1,
		Subprotocol: gqlws.TransportWS, Query: selAuthor, ExpiresAt: time.Now().Add(time.Hour)}, false); err != nil {
		t.Fatal(err)
	}
	e.gw.Drop("gone=")
	e.gw.Inject(func(c mgmttest.Call) mgmttest.Fault {
		if c.ConnectionID == "refused=" {
			return mgmttest.Fault{Status: http.StatusForbidden}
		}
		return mgmttest.Fault{}
	})
	resp, st := e.publish(0, record(t, 1, stream.Insert, nil, msg("r1", "m1", "a")), record(t, 2, stream.Insert, nil, msg("r1", "m2", "b")))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("a subscriber's failure failed the batch: %+v", resp.BatchItemFailures)
	}
	if n := len(e.gw.Posts()["ok00007="]); n != 2 {
		t.Fatalf("a healthy subscriber got %d messages, want 2", n)
	}
	if st.Delivered != 60 || st.Failed != 2 || st.Gone < 1 {
		t.Fatalf("stats = %+v", st)
	}
	got := 0
	for _, err := range e.store.Subscriptions(context.Background(), addedR1) {
		if err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != 31 {
		t.Fatalf("%d subscriptions left, want 31: the gone connection's two forgotten", got)
	}
	if l := e.logs.Lines("delivery failed", "refused="); len(l) != 2 {
		t.Fatalf("refused posts logged %d times, want once per record:\n%s", len(l), strings.Join(l, "\n"))
	}
}

// TestServiceFailureIsReportedWithOneLine: when every post is refused (403) or fails (500), the
// management API is at fault, not the subscribers: the record is reported for retry, and one log
// line says which.
func TestServiceFailureIsReportedWithOneLine(t *testing.T) {
	for _, c := range []struct {
		status int
		says   string
	}{{http.StatusForbidden, "403 ForbiddenException"}, {http.StatusInternalServerError, "5xx"}} {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			e := newEnv(t, publish.Config{})
			e.subscribe(addedR1, selIDText, gqlws.TransportWS, conns("c", 40)...)
			e.gw.Inject(mgmttest.Fail(c.status, mgmttest.Post))
			rec := record(t, 7, stream.Insert, nil, msg("r1", "m1", "a"))
			resp, st := e.publish(5*time.Second, rec)
			if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "7" {
				t.Fatalf("failures %+v, want record 7 reported (stats %+v)", resp.BatchItemFailures, st)
			}
			lines := e.logs.Lines("reported for retry", `"seq":"7"`)
			if len(lines) != 1 || !strings.Contains(lines[0], c.says) || !strings.Contains(lines[0], `"reason":"service"`) {
				t.Fatalf("want one line saying %q, got:\n%s", c.says, strings.Join(lines, "\n"))
			}
		})
	}
}

// TestThrottlingRecoversWithoutLoss: every post is throttled at first (429 on its first two
// attempts); the posts are retried with backoff within the deadline and all land.
func TestThrottlingRecoversWithoutLoss(t *testing.T) {
	e := newEnv(t, publish.Config{})
	all := conns("c", 300)
	e.subscribe(addedR1, selIDText, gqlws.TransportWS, all...)
	var mu sync.Mutex
	attempts := map[string]int{}
	e.gw.Inject(func(c mgmttest.Call) mgmttest.Fault {
		mu.Lock()
		defer mu.Unlock()
		if attempts[c.ConnectionID]++; attempts[c.ConnectionID] <= 2 {
			return mgmttest.Fault{Status: http.StatusTooManyRequests}
		}
		return mgmttest.Fault{}
	})
	resp, st := e.publish(20*time.Second, record(t, 1, stream.Insert, nil, msg("r1", "m1", "a")))
	if len(resp.BatchItemFailures) != 0 || st.Delivered != 300 || st.Throttled != 0 {
		t.Fatalf("failures %+v, stats %+v: want all 300 delivered", resp.BatchItemFailures, st)
	}
	for _, c := range all {
		if n := len(e.gw.Posts()[c]); n != 1 {
			t.Fatalf("%s got %d frames", c, n)
		}
	}
}

// faultyRegistry fails the reads of one topic from its n-th page on.
type faultyRegistry struct {
	*embedded.Store
	mu       sync.Mutex
	topic    string
	fromPage int // 0: no fault
}

func (r *faultyRegistry) set(topic string, fromPage int) {
	r.mu.Lock()
	r.topic, r.fromPage = topic, fromPage
	r.mu.Unlock()
}

func (r *faultyRegistry) TopicPages(ctx context.Context, topic, after, until string) iter.Seq2[store.Page, error] {
	r.mu.Lock()
	failTopic, from := r.topic, r.fromPage
	r.mu.Unlock()
	return func(yield func(store.Page, error) bool) {
		i := 0
		for pg, err := range r.Store.TopicPages(ctx, topic, after, until) {
			if i++; topic == failTopic && from > 0 && i >= from {
				yield(store.Page{}, errors.New("registry unreachable"))
				return
			}
			if !yield(pg, err) {
				return
			}
		}
	}
}

// TestRegistryFailureAndRetrySkipsWhatWasDelivered: the registry fails while a multi-page topic
// is read; the record is reported (one line), the next record of its topic waits (reported too),
// a record of another topic is delivered. The retry (Lambda resumes from the lowest reported
// record: all three come back) resumes after the last delivered page and skips the record that
// was done: every subscriber gets each message exactly once.
func TestRegistryFailureAndRetrySkipsWhatWasDelivered(t *testing.T) {
	s, err := embedded.Open(filepath.Join(t.TempDir(), "store.db"), embedded.Options{PageSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	faulty := &faultyRegistry{Store: s}
	e := newEnv(t, publish.Config{Registry: faulty})
	e.store = s
	r1, r2 := conns("a", 40), conns("b", 5)
	e.subscribe(addedR1, selIDText, gqlws.TransportWS, r1...)
	e.subscribe(addedR2, `subscription { messageAdded(roomId: "r2") { id } }`, gqlws.TransportWS, r2...)
	faulty.set(addedR1, 4)
	batch := []events.DynamoDBEventRecord{
		record(t, 10, stream.Insert, nil, msg("r1", "m1", "first")),
		record(t, 11, stream.Insert, nil, msg("r2", "m2", "other room")),
		record(t, 12, stream.Insert, nil, msg("r1", "m3", "second")),
	}
	resp, _ := e.publish(0, batch...)
	var reported []string
	for _, f := range resp.BatchItemFailures {
		reported = append(reported, f.ItemIdentifier)
	}
	if fmt.Sprint(reported) != "[10 12]" {
		t.Fatalf("reported %v, want [10 12]", reported)
	}
	if l := e.logs.Lines(`"seq":"10"`, `"reason":"registry"`, "reported for retry"); len(l) != 1 {
		t.Fatalf("want one line for record 10 saying registry:\n%s", e.logs.Lines())
	}
	if l := e.logs.Lines(`"seq":"12"`, `"reason":"blocked"`); len(l) != 1 {
		t.Fatalf("want one line for record 12 saying blocked:\n%s", e.logs.Lines())
	}
	delivered := e.eventIDs()
	if n := len(delivered[r1[0]]); n != 1 {
		t.Fatalf("the first page's subscriber got %d frames before the failure, want 1", n)
	}
	if n := len(delivered[r1[39]]); n != 0 {
		t.Fatalf("a subscriber after the failed page got %d frames", n)
	}
	faulty.set("", 0)
	resp, _ = e.publish(0, batch...) // the retry: from the lowest reported record, so all three
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("the retry reported %+v", resp.BatchItemFailures)
	}
	delivered = e.eventIDs()
	for _, c := range append(slices.Clone(r1), r2...) {
		ids := delivered[c]
		seen := map[string]int{}
		for _, id := range ids {
			seen[id]++
		}
		want := 2
		if strings.HasPrefix(c, "b") {
			want = 1
		}
		if len(seen) != want || len(ids) != want {
			t.Fatalf("%s received events %v: want %d distinct, each once", c, ids, want)
		}
	}
	// Per topic, in order: m1 before m3 for every subscriber of r1.
	for _, c := range r1 {
		if ids := delivered[c]; ids[0] != batch[0].EventID || ids[1] != batch[2].EventID {
			t.Fatalf("%s received %v, want record 10's event, then record 12's", c, ids)
		}
	}
}

// TestTheSameRecordTwiceReachesNobodyTwice: a batch delivered again whole (a Lambda retry after
// a timeout, or a duplicate) finds every event's done marker and posts nothing.
func TestTheSameRecordTwiceReachesNobodyTwice(t *testing.T) {
	e := newEnv(t, publish.Config{})
	e.subscribe(addedR1, selIDText, gqlws.TransportWS, conns("c", 3)...)
	e.subscribe(addedR2, `subscription { messageAdded(roomId: "r2") { id } }`, gqlws.LegacyWS, conns("d", 20)...)
	batch := []events.DynamoDBEventRecord{record(t, 1, stream.Insert, nil, msg("r1", "m1", "x")), record(t, 2, stream.Insert, nil, msg("r2", "m2", "y"))}
	e.publish(0, batch...)
	_, st := e.publish(0, batch...)
	if st.Delivered != 0 || st.Skipped != 2 {
		t.Fatalf("the second delivery: %+v, want nothing delivered and both events skipped", st.Stats)
	}
	for c, frames := range e.gw.Posts() {
		if len(frames) != 1 {
			t.Fatalf("%s got %d frames, want 1", c, len(frames))
		}
	}
}

func TestMalformedRecordIsSkippedAndTheBatchGoesOn(t *testing.T) {
	e := newEnv(t, publish.Config{})
	e.subscribe(addedR1, selIDText, gqlws.TransportWS, "c1")
	bad := record(t, 1, stream.Insert, nil, msg("r1", "m0", "x"))
	bad.Change.NewImage = nil // INSERT without its image
	other := record(t, 2, stream.Insert, nil, msg("r1", "m1", "x"))
	delete(other.Change.NewImage, "__typename") // an item of no declared type: skipped cheaply
	resp, st := e.publish(0, bad, other, record(t, 3, stream.Insert, nil, msg("r1", "m2", "fine")))
	if len(resp.BatchItemFailures) != 0 || st.Malformed != 1 || st.Delivered != 1 {
		t.Fatalf("resp %+v stats %+v", resp, st)
	}
	if posts := e.gw.Posts(); len(posts["c1"]) != 1 || !strings.Contains(posts["c1"][0], "fine") {
		t.Fatalf("posts = %v", posts)
	}
	if l := e.logs.Lines("cannot be decoded", `"seq":"1"`); len(l) != 1 {
		t.Fatalf("the malformed record was logged %d times", len(l))
	}
}

func TestOversizedResultBecomesAnError(t *testing.T) {
	e := newEnv(t, publish.Config{MaxMessage: 1024})
	e.subscribe(addedR1, selIDText, gqlws.TransportWS, "c1")
	_, st := e.publish(0, record(t, 1, stream.Insert, nil, msg("r1", "m1", strings.Repeat("x", 2000))))
	posts := e.gw.Posts()
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

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want fanout.Class
	}{
		{mgmttest.Error(mgmttest.Post, "c=", 410), fanout.ClassGone},
		{mgmttest.Error(mgmttest.Post, "c=", 403), fanout.ClassForbidden},
		{mgmttest.Error(mgmttest.Post, "c=", 413), fanout.ClassTooLarge},
		{mgmttest.Error(mgmttest.Post, "c=", 429), fanout.ClassThrottled},
		{mgmttest.Error(mgmttest.Post, "c=", 503), fanout.ClassServer},
		{mgmttest.Error(mgmttest.Post, "c=", 400), fanout.ClassOther},
		{fmt.Errorf("post: %w", mgmt.ErrUnavailable), fanout.ClassUnavailable},
		{fmt.Errorf("post: %w", mgmt.ErrDeadline), fanout.ClassDeadline},
		{context.DeadlineExceeded, fanout.ClassDeadline},
		{errors.New("what"), fanout.ClassOther},
	} {
		if got := publish.Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestExpiredPrincipalIsClosedThroughTheClient: a subscription whose stored principal has expired
// gets nothing; its connection is closed through the management API (the real client, over HTTP)
// and forgotten in the store. A principal without exp, and no principal, never expire.
func TestExpiredPrincipalIsClosedThroughTheClient(t *testing.T) {
	e := newEnv(t, publish.Config{})
	ctx := context.Background()
	for conn, principal := range map[string]string{
		"old=":  fmt.Sprintf(`{"sub":"u1","exp":%d}`, time.Now().Add(-time.Minute).Unix()),
		"new=":  fmt.Sprintf(`{"sub":"u2","exp":%d}`, time.Now().Add(time.Hour).Unix()),
		"anon=": ``,
		"bad=":  `{"exp":"soon"}`,
	} {
		if err := e.store.CreateConnection(ctx, store.Connection{ID: conn, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		s := store.Subscription{ConnectionID: conn, ID: "1", Topic: addedR1, Subprotocol: gqlws.TransportWS, Query: selIDText,
			ExpiresAt: time.Now().Add(time.Hour)}
		if principal != "" {
			s.Principal = json.RawMessage(principal)
		}
		if err := e.store.PutSubscription(ctx, s, false); err != nil {
			t.Fatal(err)
		}
	}
	_, st := e.publish(0, record(t, 1, stream.Insert, nil, msg("r1", "m1", "x")))
	posts := e.gw.Posts()
	if len(posts["new="]) != 1 || len(posts["anon="]) != 1 || len(posts["old="]) != 0 || len(posts["bad="]) != 0 || st.Expired != 2 {
		t.Fatalf("posts %v, stats %+v: want new= and anon= delivered, old= and bad= skipped as expired", posts, st.Stats)
	}
	for _, c := range []string{"old=", "bad="} {
		if !e.gw.Closed(c) {
			t.Errorf("%s was not closed through the management API", c)
		}
		if _, err := e.store.Connection(ctx, c); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s was not forgotten: %v", c, err)
		}
	}
}

// TestMetricsLinePerBatch: one EMF line per stream batch, per chunk batch, per EventBridge event,
// per SNS notification and per SQS batch of CloudEvents.
func TestMetricsLinePerBatch(t *testing.T) {
	var out testlog.Buffer
	e := newEnv(t, publish.Config{Metrics: &out})
	e.subscribe(addedR1, selIDText, gqlws.TransportWS, conns("c", 3)...)
	e.publish(0, record(t, 1, stream.Insert, nil, msg("r1", "m1", "x")))
	lines := out.Lines()
	if len(lines) != 1 {
		t.Fatalf("%d metric lines, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var m struct {
		Source     string
		Deliveries float64
		Records    float64
		AWS        struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m.Source != "stream" || m.Deliveries != 3 || m.Records != 1 || len(m.AWS.CloudWatchMetrics) != 1 ||
		m.AWS.CloudWatchMetrics[0].Namespace != "lambdaws" || fmt.Sprint(m.AWS.CloudWatchMetrics[0].Dimensions) != "[[Source]]" {
		t.Fatalf("metric line %s", lines[0])
	}
	msgs := []events.SQSMessage{{MessageId: "m1", Body: "{}", MessageAttributes: map[string]events.SQSMessageAttribute{
		chunkq.Attr: {DataType: "String", StringValue: aws.String(chunkq.Continuation)}}}}
	ctx, cancel := e.ctx(time.Second)
	defer cancel()
	e.f.HandleSQS(ctx, events.SQSEvent{Records: msgs})
	if lines := out.Lines(`"Source":"chunks"`); len(lines) != 1 {
		t.Fatalf("chunk batch: %d metric lines", len(lines))
	}
	// External events: one line per EventBridge event, SNS notification and SQS batch.
	e.f.HandleEventBridge(ctx, ebEvent("eb-1", "chat.announcement", annPayload))
	e.f.HandleSNS(ctx, snsEvent("n1", cloudEvent("ce-1", "chat.announcement", annPayload)))
	e.f.HandleSQS(ctx, events.SQSEvent{Records: []events.SQSMessage{sqsMessage("q1", cloudEvent("ce-2", "chat.announcement", annPayload)),
		sqsMessage("q2", cloudEvent("ce-3", "chat.announcement", annPayload))}})
	for source, records := range map[string]string{"eventbridge": `"Records":1`, "sns": `"Records":1`, "sqs": `"Records":2`} {
		if lines := out.Lines(`"Source":"`+source+`"`, records); len(lines) != 1 {
			t.Errorf("%s: %d metric lines with %s, want 1:\n%s", source, len(lines), records, strings.Join(out.Lines(), "\n"))
		}
	}
}
