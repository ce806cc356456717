package sweep_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/internal/sweep"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/realtime-gql/lambdaws/store/storetest"
)

// calls lists the connections of the gateway's calls of one kind, sorted.
func calls(g *mgmttest.Gateway, op mgmttest.Op) []string {
	var ids []string
	for _, c := range g.Calls() {
		if c.Op == op {
			ids = append(ids, c.ConnectionID)
		}
	}
	sort.Strings(ids)
	return ids
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "d.db"), embedded.Options{Now: clk.Now, PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := clk.Now()
	var principal json.RawMessage // of the next connection added
	add := func(id string, connectedAgo time.Duration, ready bool, seenAgo time.Duration) {
		at := start.Add(-connectedAgo)
		c := store.Connection{ID: id, Subprotocol: "graphql-transport-ws", State: store.StatePending, ConnectedAt: at, ExpiresAt: at.Add(2*time.Hour + 10*time.Minute)}
		if err := s.CreateConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
		if ready {
			if err := s.AcknowledgeConnection(ctx, id, store.Ack{Principal: principal, At: at.Add(time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		if seenAgo >= 0 {
			if err := s.TouchConnection(ctx, id, start.Add(-seenAgo)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutSubscription(ctx, store.Subscription{ConnectionID: id, ID: "1", Topic: "messageAdded?roomId=r",
			Subprotocol: "graphql-transport-ws", Query: "subscription { messageAdded(roomId: \"r\") { id } }", CreatedAt: at, ExpiresAt: c.ExpiresAt}, false); err != nil {
			t.Fatal(err)
		}
	}
	add("fresh", time.Minute, true, -1)                     // active recently: kept, nothing asked
	add("pending-new", time.Second, false, -1)              // waiting for init, within the timeout: kept
	add("pending-old", 10*time.Second, false, -1)           // never sent connection_init: removed
	add("old", 2*time.Hour+time.Minute, true, time.Minute)  // over the 2-hour maximum: removed
	add("idle", 30*time.Minute, true, 20*time.Minute)       // idle here and at API Gateway: removed
	add("idle-but-active", time.Hour, true, 15*time.Minute) // idle here, active at API Gateway: kept, refreshed
	add("gone", time.Hour, true, 15*time.Minute)            // API Gateway no longer knows it: removed
	principal = json.RawMessage(fmt.Sprintf(`{"sub":"ann","exp":%d}`, start.Add(-time.Second).Unix()))
	add("token-expired", time.Minute, true, -1) // active, but its token has expired: removed
	principal = json.RawMessage(fmt.Sprintf(`{"sub":"bob","exp":%d}`, start.Add(time.Minute).Unix()))
	add("token-live", time.Minute, true, -1) // its token is still valid: kept
	api := mgmttest.New()
	for id, last := range map[string]time.Time{
		"fresh": start, "pending-new": start, "pending-old": start, "old": start, "token-expired": start, "token-live": start,
		"idle": start.Add(-20 * time.Minute), "idle-but-active": start.Add(-2 * time.Minute),
	} {
		api.SetLastActive(id, last)
	}
	api.Drop("gone")
	sw := sweep.New(sweep.Config{Registry: s, Gateway: api, Now: clk.Now})
	st, err := sw.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Scanned != 9 || st.Expired != 1 || st.InitTimeout != 1 || st.Principal != 1 || st.Idle != 1 || st.Gone != 1 || st.Refreshed != 1 || st.Failed != 0 {
		t.Fatalf("stats = %+v", st)
	}
	var left []string
	for c, err := range s.Connections(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, c.ID)
	}
	sort.Strings(left)
	if want := "[fresh idle-but-active pending-new token-live]"; fmtList(left) != want {
		t.Fatalf("connections left: %v, want %s", left, want)
	}
	// Their subscriptions went with them.
	var subs []string
	for sub, err := range s.Subscriptions(ctx, "messageAdded?roomId=r") {
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub.ConnectionID)
	}
	sort.Strings(subs)
	if fmtList(subs) != "[fresh idle-but-active pending-new token-live]" {
		t.Fatalf("subscriptions left: %v", subs)
	}
	// Only connections that looked idle were looked up; removed ones were closed.
	if got := calls(api, mgmttest.Get); fmtList(got) != "[gone idle idle-but-active]" {
		t.Fatalf("GetConnection calls: %v", got)
	}
	if got := calls(api, mgmttest.Delete); fmtList(got) != "[gone idle old pending-old token-expired]" {
		t.Fatalf("DeleteConnection calls: %v", got)
	}
	// The refreshed connection carries API Gateway's activity, so the next run leaves it alone.
	c, _ := s.Connection(ctx, "idle-but-active")
	if !c.LastSeenAt.Equal(start.Add(-2 * time.Minute)) {
		t.Fatalf("refreshed LastSeenAt = %v", c.LastSeenAt)
	}
	api.TakeCalls()
	if st, err := sw.Sweep(ctx); err != nil || st.Removed() != 0 || len(api.Calls()) != 0 {
		t.Fatalf("second run: %+v %v, calls %v", st, err, api.Calls())
	}
}

func TestSweepKeepsConnectionsItCannotCheck(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "d.db"), embedded.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := clk.Now().Add(-time.Hour)
	s.CreateConnection(ctx, store.Connection{ID: "c", State: store.StateReady, ConnectedAt: at, ExpiresAt: at.Add(3 * time.Hour)})
	api := mgmttest.New()
	api.SetLastActive("c", at)
	api.Inject(mgmttest.Fail(http.StatusTooManyRequests, mgmttest.Get))
	st, err := sweep.New(sweep.Config{Registry: s, Gateway: api, Now: clk.Now}).Sweep(ctx)
	if err != nil || st.Removed() != 0 {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := s.Connection(ctx, "c"); err != nil {
		t.Fatalf("a connection was removed although API Gateway could not be asked: %v", err)
	}
}

func fmtList(v []string) string {
	out := "["
	for i, s := range v {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out + "]"
}

// staleListing lists connections as they were before their acknowledgement.
type staleListing struct {
	*embedded.Store
	before map[string]store.Connection
}

func (s staleListing) Connections(ctx context.Context) iter.Seq2[store.Connection, error] {
	return func(yield func(store.Connection, error) bool) {
		for _, c := range s.before {
			if !yield(c, nil) {
				return
			}
		}
	}
}

func TestSweepRereadsBeforeAnInitTimeout(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "d.db"), embedded.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := clk.Now().Add(-10 * time.Second)
	c := store.Connection{ID: "c", State: store.StatePending, ConnectedAt: at, ExpiresAt: at.Add(time.Hour)}
	s.CreateConnection(ctx, c)
	s.AcknowledgeConnection(ctx, "c", store.Ack{At: clk.Now()}) // acknowledged after the listing was read
	api := mgmttest.New()
	api.SetLastActive("c", clk.Now())
	st, err := sweep.New(sweep.Config{Registry: staleListing{s, map[string]store.Connection{"c": c}}, Gateway: api, Now: clk.Now}).Sweep(ctx)
	if err != nil || st.Removed() != 0 {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := s.Connection(ctx, "c"); err != nil || len(calls(api, mgmttest.Delete)) != 0 {
		t.Fatalf("an acknowledged connection was swept: %v %v", err, calls(api, mgmttest.Delete))
	}
}

// TestSweepPrintsOneMetricLine: each run prints one EMF line (namespace lambdaws, dimension
// Source=sweep) with what it did.
func TestSweepPrintsOneMetricLine(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "d.db"), embedded.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := clk.Now().Add(-3 * time.Hour)
	s.CreateConnection(ctx, store.Connection{ID: "old", State: store.StateReady, ConnectedAt: old, ExpiresAt: clk.Now().Add(time.Hour)})
	s.CreateConnection(ctx, store.Connection{ID: "new", State: store.StateReady, ConnectedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)})
	var out bytes.Buffer
	if _, err := sweep.New(sweep.Config{Registry: s, Gateway: mgmttest.New(), Now: clk.Now, Metrics: &out}).Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	var m struct {
		Source             string
		Scanned, Removed   float64
		ExpiredConnections float64
		AWS                struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
	}
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &m) != nil {
		t.Fatalf("metric output %q: want one JSON line", out.String())
	}
	if m.Source != "sweep" || m.Scanned != 2 || m.Removed != 1 || m.ExpiredConnections != 1 || len(m.AWS.CloudWatchMetrics) != 1 ||
		m.AWS.CloudWatchMetrics[0].Namespace != "lambdaws" || len(m.AWS.CloudWatchMetrics[0].Metrics) == 0 {
		t.Fatalf("metric line %s", lines[0])
	}
}
