// Package storetest is the conformance suite every store backend runs, so the backends cannot drift apart.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/store"
)

// A Backend is a store under test and its change stream.
type Backend struct {
	store.Store
	// Changes returns the stream records of the app-data writes made since its previous call, in
	// order, each as Lambda receives it: the embedded change log's records, or for DynamoDB
	// (whose stream the tests cannot read) the records stream.ChangeRecord makes of what OnChange
	// reports.
	Changes func(t *testing.T) []events.DynamoDBEventRecord
}

// Factory opens an empty store whose clock is now. The store must be closed by the factory's
// cleanup, not by the suite.
type Factory func(t *testing.T, now func() time.Time) Backend

// Clock is a settable clock for TTL tests.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Run runs the whole suite against the backend that open makes.
func Run(t *testing.T, open Factory) {
	t.Run("Connections", func(t *testing.T) { testConnections(t, open) })
	t.Run("AcknowledgeOnce", func(t *testing.T) { testAcknowledgeOnce(t, open) })
	t.Run("ConnectionTTL", func(t *testing.T) { testConnectionTTL(t, open) })
	t.Run("Subscriptions", func(t *testing.T) { testSubscriptions(t, open) })
	t.Run("ClaimIDOnce", func(t *testing.T) { testClaimIDOnce(t, open) })
	t.Run("TopicPaging", func(t *testing.T) { testTopicPaging(t, open) })
	runFanout(t, open)
	t.Run("SubscriptionTTL", func(t *testing.T) { testSubscriptionTTL(t, open) })
	t.Run("DeleteConnectionCascades", func(t *testing.T) { testDeleteCascades(t, open) })
	t.Run("TouchConnection", func(t *testing.T) { testTouch(t, open) })
	t.Run("ListConnections", func(t *testing.T) { testListConnections(t, open) })
	t.Run("ItemCreateGet", func(t *testing.T) { testItemCreateGet(t, open) })
	t.Run("ItemInvalid", func(t *testing.T) { testItemInvalid(t, open) })
	t.Run("ItemSizeBound", func(t *testing.T) { testItemSizeBound(t, open) })
	t.Run("ItemReplace", func(t *testing.T) { testItemReplace(t, open) })
	t.Run("ItemDelete", func(t *testing.T) { testItemDelete(t, open) })
	t.Run("ItemQuery", func(t *testing.T) { testItemQuery(t, open) })
	t.Run("ItemTTL", func(t *testing.T) { testItemTTL(t, open) })
	t.Run("ItemCreateOnce", func(t *testing.T) { testItemCreateOnce(t, open) })
	t.Run("TypedItems", func(t *testing.T) { testTypedItems(t, open) })
	t.Run("Timeline", func(t *testing.T) { testTimeline(t, open) })
	t.Run("PartitionsIsolated", func(t *testing.T) { testPartitionsIsolated(t, open) })
	t.Run("SubscriptionLimit", func(t *testing.T) { testSubscriptionLimit(t, open) })
	t.Run("SubscriptionLimitRace", func(t *testing.T) { testSubscriptionLimitRace(t, open) })
	t.Run("SubjectIndex", func(t *testing.T) { testSubjectIndex(t, open) })
	t.Run("SubjectLimit", func(t *testing.T) { testSubjectLimit(t, open) })
	t.Run("SubjectLimitRace", func(t *testing.T) { testSubjectLimitRace(t, open) })
	t.Run("Operations", func(t *testing.T) { testOperations(t, open) })
}

// proto is the subprotocol the records carry; the store keeps it as it is.
const proto = "graphql-transport-ws"

// ack is an anonymous acknowledgement at `at`.
func ack(at time.Time) store.Ack { return store.Ack{At: at} }

func conn(id string, now time.Time) store.Connection {
	return store.Connection{ID: id, Subprotocol: proto, State: store.StatePending,
		ConnectedAt: now, ExpiresAt: now.Add(2 * time.Hour)}
}

func sub(connID, id, topic string, now time.Time) store.Subscription {
	return store.Subscription{ConnectionID: connID, ID: id, Topic: topic, Subprotocol: proto,
		Query: "subscription { messageAdded(roomId: \"r\") { id } }", Variables: json.RawMessage(`{"a":1}`),
		CreatedAt: now, ExpiresAt: now.Add(2 * time.Hour)}
}

func testConnections(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)

	if _, err := s.Connection(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Connection(absent) = %v, want ErrNotFound", err)
	}
	c := conn("c1", clk.Now())
	if err := s.CreateConnection(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateConnection(ctx, c); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateConnection twice = %v, want ErrConflict", err)
	}
	got, err := s.Connection(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "c1" || got.Subprotocol != proto || got.State != store.StatePending ||
		!got.ConnectedAt.Equal(c.ConnectedAt) || !got.ExpiresAt.Equal(c.ExpiresAt) || len(got.Principal) != 0 {
		t.Fatalf("Connection = %+v, want %+v", got, c)
	}
	principal := json.RawMessage(`{"sub":"alice"}`)
	if err := s.AcknowledgeConnection(ctx, "c1", store.Ack{Principal: principal, At: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Connection(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.StateReady || string(got.Principal) != string(principal) || !got.AckedAt.Equal(clk.Now()) {
		t.Fatalf("after ack: %+v", got)
	}
	if err := s.AcknowledgeConnection(ctx, "c1", ack(clk.Now())); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second ack = %v, want ErrConflict", err)
	}
	if err := s.AcknowledgeConnection(ctx, "nope", ack(clk.Now())); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ack of absent = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConnection(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Connection(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Connection after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConnection(ctx, "c1"); err != nil {
		t.Fatalf("deleting an absent connection: %v", err)
	}
}

// testAcknowledgeOnce races acknowledgements: exactly one may win, as when two connection_init
// messages are handled by overlapping invocations.
func testAcknowledgeOnce(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	if err := s.CreateConnection(ctx, conn("c1", clk.Now())); err != nil {
		t.Fatal(err)
	}
	wins, conflicts := race(t, 8, store.ErrConflict, func(int) error { return s.AcknowledgeConnection(ctx, "c1", ack(clk.Now())) })
	if wins != 1 || conflicts != 7 {
		t.Fatalf("wins=%d conflicts=%d, want 1 and 7", wins, conflicts)
	}
}

func testConnectionTTL(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	c := conn("c1", clk.Now())
	c.ExpiresAt = clk.Now().Add(time.Minute)
	if err := s.CreateConnection(ctx, c); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	if _, err := s.Connection(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired Connection = %v, want ErrNotFound", err)
	}
	if err := s.AcknowledgeConnection(ctx, "c1", ack(clk.Now())); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ack of expired = %v, want ErrNotFound", err)
	}
	// An expired record does not block a new connection with the same id.
	if err := s.CreateConnection(ctx, conn("c1", clk.Now())); err != nil {
		t.Fatalf("CreateConnection over an expired one: %v", err)
	}
}

func testSubscriptions(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	now := clk.Now()
	a := sub("c1", "1", "messageAdded?roomId=r1", now)
	if err := s.PutSubscription(ctx, a, false); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSubscription(ctx, a, false); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate id = %v, want ErrConflict", err)
	}
	// The same id on another connection is another subscription.
	if err := s.PutSubscription(ctx, sub("c2", "1", "messageAdded?roomId=r1", now), false); err != nil {
		t.Fatal(err)
	}
	got := collect(t, s, "messageAdded?roomId=r1")
	if len(got) != 2 {
		t.Fatalf("topic has %d subscriptions, want 2: %+v", len(got), got)
	}
	for _, g := range got {
		if g.ConnectionID == "c1" && (g.Query != a.Query || string(g.Variables) != `{"a":1}` || g.Subprotocol != proto) {
			t.Fatalf("stored subscription = %+v, want %+v", g, a)
		}
	}
	// A subscription's filter and principal are stored with it, under its topic too.
	f := sub("c3", "1", "messageAdded?roomId=r1", now)
	f.Filter = `{"author":{"eq":"ann"},"text":{"contains":"#tag"}}`
	f.Principal = json.RawMessage(`{"sub":"u1"}`)
	if err := s.PutSubscription(ctx, f, false); err != nil {
		t.Fatal(err)
	}
	for _, g := range collect(t, s, "messageAdded?roomId=r1") {
		switch g.ConnectionID {
		case "c3":
			if g.Filter != f.Filter || string(g.Principal) != string(f.Principal) {
				t.Fatalf("stored filter %q principal %s, want %q %s", g.Filter, g.Principal, f.Filter, f.Principal)
			}
		default:
			if g.Filter != "" {
				t.Fatalf("subscription without a filter stored with %q", g.Filter)
			}
		}
	}
	if _, err := s.DeleteSubscription(ctx, "c3", "1"); err != nil {
		t.Fatal(err)
	}
	// Replacing moves the id to another topic (legacy start on a running id).
	b := sub("c1", "1", "messageEdited?roomId=r1", now)
	if err := s.PutSubscription(ctx, b, true); err != nil {
		t.Fatal(err)
	}
	if n := len(collect(t, s, "messageAdded?roomId=r1")); n != 1 {
		t.Fatalf("old topic has %d subscriptions after replace, want 1", n)
	}
	if n := len(collect(t, s, "messageEdited?roomId=r1")); n != 1 {
		t.Fatalf("new topic has %d subscriptions after replace, want 1", n)
	}
	// An operation without a topic (a query over the socket) holds its id but is in no topic.
	if err := s.PutSubscription(ctx, sub("c1", "q", "", now), false); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSubscription(ctx, sub("c1", "q", "", now), false); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate query id = %v, want ErrConflict", err)
	}
	// Both operations hold their ids: a second claim of either conflicts (and writes nothing).
	for _, id := range []string{"1", "q"} {
		if err := s.PutSubscription(ctx, sub("c1", id, "", now), false); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("claiming the active id %s again = %v, want ErrConflict", id, err)
		}
	}
	active, err := s.DeleteSubscription(ctx, "c1", "1")
	if err != nil || !active {
		t.Fatalf("DeleteSubscription = %v, %v; want true, nil", active, err)
	}
	active, err = s.DeleteSubscription(ctx, "c1", "1")
	if err != nil || active {
		t.Fatalf("DeleteSubscription again = %v, %v; want false, nil", active, err)
	}
	if n := len(collect(t, s, "messageEdited?roomId=r1")); n != 0 {
		t.Fatalf("topic has %d subscriptions after delete, want 0", n)
	}
	// Ids may be reused after completion.
	if err := s.PutSubscription(ctx, a, false); err != nil {
		t.Fatalf("reusing a completed id: %v", err)
	}
}

// race runs write(i) for each i below n at once, and counts the writes that succeeded and those
// refused with refusal; any other error fails the test.
func race(t *testing.T, n int, refusal error, write func(i int) error) (won, refused int) {
	t.Helper()
	var w, r atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			switch err := write(i); {
			case err == nil:
				w.Add(1)
			case errors.Is(err, refusal):
				r.Add(1)
			default:
				t.Errorf("write %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	return int(w.Load()), int(r.Load())
}

// testClaimIDOnce races subscribes with one id: exactly one may win.
func testClaimIDOnce(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	wins, _ := race(t, 8, store.ErrConflict, func(i int) error {
		return s.PutSubscription(ctx, sub("c1", "x", fmt.Sprintf("messageAdded?roomId=r%d", i), clk.Now()), false)
	})
	if wins != 1 {
		t.Fatalf("%d subscribes won, want 1", wins)
	}
	total := 0
	for i := range 8 {
		total += len(collect(t, s, fmt.Sprintf("messageAdded?roomId=r%d", i)))
	}
	if total != 1 {
		t.Fatalf("%d topic rows for one id, want 1", total)
	}
}

// testTopicPaging stores more subscriptions than a page in one topic, and some in neighbouring
// topics, and checks that the lookup returns exactly the topic's, every one once.
func testTopicPaging(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	const n = 250
	for i := range n {
		if err := s.PutSubscription(ctx, sub(fmt.Sprintf("c%03d", i), "1", "messageAdded?roomId=r1", clk.Now()), false); err != nil {
			t.Fatal(err)
		}
	}
	for _, other := range []string{"messageAdded?roomId=r", "messageAdded?roomId=r10", "messageEdited?roomId=r1"} {
		if err := s.PutSubscription(ctx, sub("other", other, other, clk.Now()), false); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, s, "messageAdded?roomId=r1")
	if len(got) != n {
		t.Fatalf("topic lookup returned %d, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for _, g := range got {
		if g.Topic != "messageAdded?roomId=r1" {
			t.Fatalf("lookup returned a row of topic %q", g.Topic)
		}
		if seen[g.ConnectionID] {
			t.Fatalf("connection %s returned twice", g.ConnectionID)
		}
		seen[g.ConnectionID] = true
	}
	// Stopping early is allowed.
	count := 0
	for _, err := range s.Subscriptions(ctx, "messageAdded?roomId=r1") {
		if err != nil {
			t.Fatal(err)
		}
		if count++; count == 3 {
			break
		}
	}
	// A cancelled context ends the lookup with its error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	var gotErr error
	for _, err := range s.Subscriptions(cctx, "messageAdded?roomId=r1") {
		if err != nil {
			gotErr = err
		}
	}
	if !errors.Is(gotErr, context.Canceled) {
		t.Fatalf("lookup with a cancelled context = %v, want context.Canceled", gotErr)
	}
}

func testSubscriptionTTL(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	short := sub("c1", "1", "messageAdded?roomId=r1", clk.Now())
	short.ExpiresAt = clk.Now().Add(time.Minute)
	if err := s.PutSubscription(ctx, short, false); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSubscription(ctx, sub("c2", "1", "messageAdded?roomId=r1", clk.Now()), false); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	got := collect(t, s, "messageAdded?roomId=r1")
	if len(got) != 1 || got[0].ConnectionID != "c2" {
		t.Fatalf("lookup after expiry = %+v, want only c2", got)
	}
	// An expired id may be claimed again.
	if err := s.PutSubscription(ctx, sub("c1", "1", "messageAdded?roomId=r1", clk.Now()), false); err != nil {
		t.Fatalf("claiming an expired id: %v", err)
	}
}

func testDeleteCascades(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	if err := s.CreateConnection(ctx, conn("c1", clk.Now())); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if err := s.PutSubscription(ctx, sub("c1", fmt.Sprint(i), fmt.Sprintf("messageAdded?roomId=r%d", i%3), clk.Now()), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutSubscription(ctx, sub("c2", "1", "messageAdded?roomId=r0", clk.Now()), false); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConnection(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		for _, g := range collect(t, s, fmt.Sprintf("messageAdded?roomId=r%d", i)) {
			if g.ConnectionID == "c1" {
				t.Fatalf("subscription %s of a deleted connection still in its topic", g.ID)
			}
		}
	}
	if got := collect(t, s, "messageAdded?roomId=r0"); len(got) != 1 {
		t.Fatalf("other connection's subscription: %d rows, want 1", len(got))
	}
	// None of its operations is active any more.
	for i := range 30 {
		if active, err := s.DeleteSubscription(ctx, "c1", fmt.Sprint(i)); err != nil || active {
			t.Fatalf("operation %d of a deleted connection: active %v, %v", i, active, err)
		}
	}
}

func testTouch(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	if err := s.TouchConnection(ctx, "c1", clk.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("touching an absent connection = %v, want ErrNotFound", err)
	}
	if _, err := s.Connection(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a touch created a connection: %v", err)
	}
	c := conn("c1", clk.Now())
	if err := s.CreateConnection(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Connection(ctx, "c1"); !got.LastSeenAt.IsZero() || !got.LastActive().Equal(c.ConnectedAt) {
		t.Fatalf("new connection: LastSeenAt %v LastActive %v", got.LastSeenAt, got.LastActive())
	}
	seen := clk.Now().Add(5 * time.Minute)
	if err := s.TouchConnection(ctx, "c1", seen); err != nil {
		t.Fatal(err)
	}
	if err := s.AcknowledgeConnection(ctx, "c1", ack(clk.Now().Add(time.Second))); err != nil {
		t.Fatalf("ack after a touch: %v", err)
	}
	got, err := s.Connection(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastSeenAt.Equal(seen) || !got.LastActive().Equal(seen) || got.State != store.StateReady {
		t.Fatalf("after touch and ack: %+v", got)
	}
	// An older touch does not move it back, within the same second either.
	if err := s.TouchConnection(ctx, "c1", clk.Now()); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Connection(ctx, "c1"); !got.LastSeenAt.Equal(seen) {
		t.Fatalf("an older touch moved LastSeenAt to %v", got.LastSeenAt)
	}
	later := seen.Add(550 * time.Millisecond)
	if err := s.TouchConnection(ctx, "c1", later); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchConnection(ctx, "c1", seen.Add(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Connection(ctx, "c1"); !got.LastSeenAt.Equal(later) {
		t.Fatalf("sub-second touches: LastSeenAt %v, want %v", got.LastSeenAt, later)
	}
	clk.Advance(3 * time.Hour)
	if err := s.TouchConnection(ctx, "c1", clk.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("touching an expired connection = %v, want ErrNotFound", err)
	}
}

// testListConnections lists more connections than a page, expired ones included, each once.
func testListConnections(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	const n = 230
	want := map[string]store.Connection{}
	for i := range n {
		c := conn(fmt.Sprintf("conn-%03d", i), clk.Now())
		if i%10 == 0 {
			c.ExpiresAt = clk.Now().Add(time.Minute)
		}
		if err := s.CreateConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
		want[c.ID] = c
	}
	if err := s.AcknowledgeConnection(ctx, "conn-007", ack(clk.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSubscription(ctx, sub("conn-001", "1", "messageAdded?roomId=r", clk.Now()), false); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	got := map[string]store.Connection{}
	for c, err := range s.Connections(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := got[c.ID]; dup {
			t.Fatalf("connection %s listed twice", c.ID)
		}
		got[c.ID] = c
	}
	if len(got) != n {
		t.Fatalf("listed %d connections, want %d (expired ones included)", len(got), n)
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok || !g.ConnectedAt.Equal(w.ConnectedAt) || !g.ExpiresAt.Equal(w.ExpiresAt) {
			t.Fatalf("connection %s listed as %+v, want %+v", id, g, w)
		}
	}
	if got["conn-007"].State != store.StateReady || got["conn-008"].State != store.StatePending {
		t.Fatalf("states: %s %s", got["conn-007"].State, got["conn-008"].State)
	}
	// Stopping early is allowed.
	for _, err := range s.Connections(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
}

func collect(t *testing.T, s store.Registry, topic string) []store.Subscription {
	t.Helper()
	var out []store.Subscription
	for sub, err := range s.Subscriptions(context.Background(), topic) {
		if err != nil {
			t.Fatalf("Subscriptions(%s): %v", topic, err)
		}
		out = append(out, sub)
	}
	return out
}

// limitedConn is a connection of at most max subscriptions.
func limitedConn(id string, now time.Time, max int) store.Connection {
	c := conn(id, now)
	c.MaxSubscriptions = max
	return c
}

func subscriptionsOf(t *testing.T, s store.Store, id string) int {
	t.Helper()
	c, err := s.Connection(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.Subscriptions
}

// testSubscriptionLimit: a connection's subscriptions are counted and bounded; queries, completes
// and replaces keep the count right; a connection that does not exist bounds nothing.
func testSubscriptionLimit(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	now := clk.Now()
	if err := s.CreateConnection(ctx, limitedConn("c1", now, 3)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.PutSubscription(ctx, sub("c1", fmt.Sprint(i), "messageAdded?roomId=r1", now), false); err != nil {
			t.Fatalf("subscription %d of 3: %v", i+1, err)
		}
	}
	if n := subscriptionsOf(t, s, "c1"); n != 3 {
		t.Fatalf("count %d, want 3", n)
	}
	if err := s.PutSubscription(ctx, sub("c1", "3", "messageAdded?roomId=r1", now), false); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("a fourth subscription = %v, want ErrLimit", err)
	}
	if n := len(collect(t, s, "messageAdded?roomId=r1")); n != 3 {
		t.Fatalf("topic has %d subscriptions after a refused one, want 3", n)
	}
	// A query holds an id but is no subscription.
	if err := s.PutSubscription(ctx, sub("c1", "q", "", now), false); err != nil {
		t.Fatalf("a query at the limit: %v", err)
	}
	// A legacy start replacing a subscription takes no new place.
	if err := s.PutSubscription(ctx, sub("c1", "0", "messageEdited?roomId=r1", now), true); err != nil {
		t.Fatalf("replacing at the limit: %v", err)
	}
	// A conflict takes no place either.
	if err := s.PutSubscription(ctx, sub("c1", "1", "messageAdded?roomId=r1", now), false); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a duplicate id = %v, want ErrConflict", err)
	}
	if n := subscriptionsOf(t, s, "c1"); n != 3 {
		t.Fatalf("count %d after a query, a replace and a conflict, want 3", n)
	}
	// Completing one frees its place; completing a query frees none.
	if _, err := s.DeleteSubscription(ctx, "c1", "q"); err != nil {
		t.Fatal(err)
	}
	if active, err := s.DeleteSubscription(ctx, "c1", "1"); err != nil || !active {
		t.Fatalf("complete: %v %v", active, err)
	}
	if n := subscriptionsOf(t, s, "c1"); n != 2 {
		t.Fatalf("count %d after a complete, want 2", n)
	}
	if err := s.PutSubscription(ctx, sub("c1", "4", "messageAdded?roomId=r1", now), false); err != nil {
		t.Fatalf("subscribing after a complete: %v", err)
	}
	if err := s.PutSubscription(ctx, sub("c1", "5", "messageAdded?roomId=r1", now), false); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("past the limit again = %v, want ErrLimit", err)
	}
	// A legacy start replacing a query with a subscription needs a place.
	if err := s.PutSubscription(ctx, sub("c1", "q2", "", now), false); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSubscription(ctx, sub("c1", "q2", "messageAdded?roomId=r1", now), true); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("replacing a query with a subscription at the limit = %v, want ErrLimit", err)
	}
	// Unbounded connections and absent ones accept any number.
	if err := s.CreateConnection(ctx, conn("c2", now)); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		for _, c := range []string{"c2", "absent"} {
			if err := s.PutSubscription(ctx, sub(c, fmt.Sprint(i), "messageAdded?roomId=r2", now), false); err != nil {
				t.Fatalf("%s subscription %d: %v", c, i, err)
			}
		}
	}
}

// testSubscriptionLimitRace: concurrent subscribes on one connection never pass its bound.
func testSubscriptionLimitRace(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	if err := s.CreateConnection(ctx, limitedConn("c1", clk.Now(), 5)); err != nil {
		t.Fatal(err)
	}
	wins, limited := race(t, 20, store.ErrLimit, func(i int) error {
		return s.PutSubscription(ctx, sub("c1", fmt.Sprint(i), "messageAdded?roomId=r1", clk.Now()), false)
	})
	if wins != 5 || limited != 15 {
		t.Fatalf("%d stored and %d refused, want 5 and 15", wins, limited)
	}
	if n := len(collect(t, s, "messageAdded?roomId=r1")); n != 5 {
		t.Fatalf("topic has %d subscriptions, want 5", n)
	}
	if n := subscriptionsOf(t, s, "c1"); n != 5 {
		t.Fatalf("count %d, want 5", n)
	}
}

func subjectConns(t *testing.T, s store.Store, subject string) []string {
	t.Helper()
	var ids []string
	for id, err := range s.SubjectConnections(context.Background(), subject) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// subjectAck acknowledges as subject.
func subjectAck(subject string, at time.Time, max int) store.Ack {
	return store.Ack{Principal: json.RawMessage(`{"sub":"` + subject + `"}`), Subject: subject, At: at,
		ExpiresAt: at.Add(2 * time.Hour), MaxPerSubject: max}
}

// testSubjectIndex: acknowledged connections are found by subject until they are deleted or
// expire; anonymous ones are in no index.
func testSubjectIndex(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	for _, id := range []string{"c1", "c2", "c3", "c4", "c5"} {
		c := conn(id, clk.Now())
		if id == "c4" {
			c.ExpiresAt = clk.Now().Add(time.Minute)
		}
		if err := s.CreateConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for id, subject := range map[string]string{"c1": "ann", "c2": "ann", "c3": "bob", "c5": ""} {
		if err := s.AcknowledgeConnection(ctx, id, subjectAck(subject, clk.Now(), 0)); err != nil {
			t.Fatal(err)
		}
	}
	a := subjectAck("ann", clk.Now(), 0)
	a.ExpiresAt = clk.Now().Add(time.Minute)
	if err := s.AcknowledgeConnection(ctx, "c4", a); err != nil {
		t.Fatal(err)
	}
	if got := subjectConns(t, s, "ann"); fmt.Sprint(got) != "[c1 c2 c4]" {
		t.Fatalf("ann's connections %v", got)
	}
	if c, _ := s.Connection(ctx, "c1"); c.Subject != "ann" || string(c.Principal) != `{"sub":"ann"}` {
		t.Fatalf("acknowledged connection %+v", c)
	}
	if got := subjectConns(t, s, "bob"); fmt.Sprint(got) != "[c3]" {
		t.Fatalf("bob's connections %v", got)
	}
	if got := subjectConns(t, s, ""); len(got) != 0 {
		t.Fatalf("anonymous connections indexed: %v", got)
	}
	// A second acknowledgement (refused) does not index the connection under another subject.
	if err := s.AcknowledgeConnection(ctx, "c3", subjectAck("mallory", clk.Now(), 0)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second ack = %v", err)
	}
	if got := subjectConns(t, s, "mallory"); len(got) != 0 {
		t.Fatalf("a refused ack indexed %v", got)
	}
	if err := s.DeleteConnection(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute) // c4 expires
	if got := subjectConns(t, s, "ann"); fmt.Sprint(got) != "[c2]" {
		t.Fatalf("ann's connections after a delete and an expiry: %v", got)
	}
}

// testSubjectLimit: a subject's live connections are bounded; a deleted or expired one frees its
// place; the refused connection stays pending.
func testSubjectLimit(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	for i := range 5 {
		c := conn(fmt.Sprintf("c%d", i), clk.Now())
		if i == 1 {
			c.ExpiresAt = clk.Now().Add(time.Minute)
		}
		if err := s.CreateConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"c0", "c1"} {
		a := subjectAck("ann", clk.Now(), 2)
		if id == "c1" {
			a.ExpiresAt = clk.Now().Add(time.Minute)
		}
		if err := s.AcknowledgeConnection(ctx, id, a); err != nil {
			t.Fatalf("ack %s: %v", id, err)
		}
	}
	if err := s.AcknowledgeConnection(ctx, "c2", subjectAck("ann", clk.Now(), 2)); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("a third connection of ann = %v, want ErrLimit", err)
	}
	if c, _ := s.Connection(ctx, "c2"); c.State != store.StatePending {
		t.Fatalf("refused connection is %s", c.State)
	}
	if got := subjectConns(t, s, "ann"); fmt.Sprint(got) != "[c0 c1]" {
		t.Fatalf("ann's connections %v", got)
	}
	// Another subject is counted apart.
	if err := s.AcknowledgeConnection(ctx, "c3", subjectAck("bob", clk.Now(), 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConnection(ctx, "c0"); err != nil {
		t.Fatal(err)
	}
	if err := s.AcknowledgeConnection(ctx, "c2", subjectAck("ann", clk.Now(), 2)); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	clk.Advance(2 * time.Minute) // c1 expires without being deleted
	if err := s.AcknowledgeConnection(ctx, "c4", subjectAck("ann", clk.Now(), 2)); err != nil {
		t.Fatalf("after an expiry: %v", err)
	}
	if got := subjectConns(t, s, "ann"); fmt.Sprint(got) != "[c2 c4]" {
		t.Fatalf("ann's connections %v", got)
	}
}

// testSubjectLimitRace: concurrent acknowledgements of one subject never pass its bound.
func testSubjectLimitRace(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	const n, max = 10, 3
	for i := range n {
		if err := s.CreateConnection(ctx, conn(fmt.Sprintf("c%d", i), clk.Now())); err != nil {
			t.Fatal(err)
		}
	}
	wins, limited := race(t, n, store.ErrLimit, func(i int) error {
		return s.AcknowledgeConnection(ctx, fmt.Sprintf("c%d", i), subjectAck("ann", clk.Now(), max))
	})
	if wins != max || limited != n-max {
		t.Fatalf("%d acknowledged and %d refused, want %d and %d", wins, limited, max, n-max)
	}
	if got := subjectConns(t, s, "ann"); len(got) != max {
		t.Fatalf("ann's connections %v, want %d", got, max)
	}
}

// testOperations: a connection's live operations, subscriptions and queries, and no other's.
func testOperations(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	now := clk.Now()
	for _, sb := range []store.Subscription{sub("c1", "a", "messageAdded?roomId=r1", now), sub("c1", "q", "", now),
		sub("c2", "a", "messageAdded?roomId=r1", now), sub("c10", "x", "messageAdded?roomId=r1", now)} {
		if err := s.PutSubscription(ctx, sb, false); err != nil {
			t.Fatal(err)
		}
	}
	short := sub("c1", "old", "messageAdded?roomId=r1", now)
	short.ExpiresAt = now.Add(time.Minute)
	if err := s.PutSubscription(ctx, short, false); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	var got []string
	for op, err := range s.Operations(ctx, "c1") {
		if err != nil {
			t.Fatal(err)
		}
		if op.ConnectionID != "c1" {
			t.Fatalf("an operation of %s", op.ConnectionID)
		}
		got = append(got, op.ID+"/"+op.Topic)
	}
	slices.Sort(got)
	if fmt.Sprint(got) != "[a/messageAdded?roomId=r1 q/]" {
		t.Fatalf("operations of c1: %v", got)
	}
}
