package app_test

// The attacks of issue 9, each against the wired service behind the local runtime, each with its
// bound: the attacker is answered or refused within 1 s, the process grows by less than 50 MB
// while it lasts, and another client, served at the same time, gets its answers within 1 s.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/wstest"
	"github.com/realtime-gql/lambdaws/store"
)

const (
	attackTime   = time.Second
	attackMemory = 50 << 20
)

// bystander is another client, pinging over its own socket and querying over HTTP while an
// attack runs; it records its slowest answer.
type bystander struct {
	slowest atomic.Int64 // nanoseconds
	failed  atomic.Value // error
	stop    chan struct{}
	halt    func()
	done    sync.WaitGroup
}

func startBystander(t *testing.T, addr string) *bystander {
	t.Helper()
	c := wstest.Dial(t, "ws://"+addr+"/graphql", "graphql-transport-ws")
	c.Send(map[string]any{"type": "connection_init"})
	c.Expect("connection_ack", "")
	b := &bystander{stop: make(chan struct{})}
	var stopOnce sync.Once
	b.halt = func() { stopOnce.Do(func() { close(b.stop); b.done.Wait() }) }
	t.Cleanup(b.halt)
	b.done.Go(func() {
		for {
			select {
			case <-b.stop:
				return
			default:
			}
			start := time.Now()
			wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.C.Write(wctx, 1, []byte(`{"type":"ping"}`))
			cancel()
			if err != nil {
				b.failed.Store(err)
				return
			}
			if m, ok := c.TryNext(5 * time.Second); !ok || m.Type != "pong" {
				b.failed.Store(fmt.Errorf("ping answered %v %v", m, ok))
				return
			}
			body := strings.NewReader(`{"query":"{ __typename }"}`)
			resp, err := http.Post("http://"+addr+"/graphql", "application/json", body)
			if err != nil {
				b.failed.Store(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if d := int64(time.Since(start)); d > b.slowest.Load() {
				b.slowest.Store(d)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return b
}

// finish stops the bystander and fails the test if it was slowed past the bound or failed.
func (b *bystander) finish(t *testing.T) {
	t.Helper()
	b.halt()
	if err, _ := b.failed.Load().(error); err != nil {
		t.Fatalf("the other client failed: %v", err)
	}
	slowest := time.Duration(b.slowest.Load())
	t.Logf("the other client's slowest round trip: %v", slowest)
	if slowest > attackTime {
		t.Fatalf("the other client waited %v, want under %v", slowest, attackTime)
	}
}

// peakGrowth runs fn while sampling the heap, and returns how long fn took and how far the heap
// grew above where it started.
func peakGrowth(fn func()) (time.Duration, uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	start := time.Now()
	fn()
	took := time.Since(start)
	close(stop)
	wg.Wait()
	return took, peak.Load()
}

func checkBound(t *testing.T, what string, took time.Duration, grew uint64) {
	t.Helper()
	t.Logf("%s: %v, heap grew by %.1f MB at most", what, took, float64(grew)/(1<<20))
	if took > attackTime || grew > attackMemory {
		t.Fatalf("%s took %v and grew the heap by %d MB, want within %v and %d MB", what, took, grew>>20, attackTime, attackMemory>>20)
	}
}

// postQuery posts a GraphQL document over HTTP and returns the status and the body.
func postQuery(t *testing.T, addr, query string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	resp, err := http.Post("http://"+addr+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sameNamed(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, ` messages(roomId: "r%d") { id }`, i)
	}
	b.WriteString(" }")
	return b.String()
}

// TestAttackQueryBombsOverHTTP: the documents that took the server down are refused, each with
// the code of the limit it passes.
func TestAttackQueryBombsOverHTTP(t *testing.T) {
	d := apptest.Start(t, app.Config{})
	by := startBystander(t, d.Addr)
	for _, tc := range []struct{ name, query, code string }{
		{"379 KB: 10,000 same-named fields with different arguments", sameNamed(10000), "TOKEN_LIMIT_EXCEEDED"},
		{"100 KB of __typename", "{" + strings.Repeat(" __typename", 100_000/11) + " }", "SELECTION_LIMIT_EXCEEDED"},
		{"50 aliases of messages(last: 500)", aliases(50), "COMPLEXITY_LIMIT_EXCEEDED"},
	} {
		var status int
		var body string
		took, grew := peakGrowth(func() { status, body = postQuery(t, d.Addr, tc.query) })
		if status != http.StatusOK || !strings.Contains(body, tc.code) || strings.Contains(body, `"data"`) {
			t.Fatalf("%s: %d %.300s, want %s", tc.name, status, body, tc.code)
		}
		checkBound(t, tc.name, took, grew)
	}
	by.finish(t)
}

func aliases(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, ` m%d: messages(roomId: "r", last: 500) { id author text createdAt }`, i)
	}
	b.WriteString(" }")
	return b.String()
}

// TestAttackQueryBombOverTheSocket: a 71 KB message of same-named fields is refused with an error
// for its operation, over either subprotocol; the connection goes on.
func TestAttackQueryBombOverTheSocket(t *testing.T) {
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(proto, func(t *testing.T) {
			d := apptest.Start(t, app.Config{})
			by := startBystander(t, d.Addr)
			c := wstest.Dial(t, "ws://"+d.Addr+"/graphql", proto)
			c.Send(map[string]any{"type": "connection_init"})
			c.Expect("connection_ack", "")
			op := subscribe("bomb", sameNamed(2100))
			if proto == "graphql-ws" {
				op["type"] = "start"
			}
			frame, _ := json.Marshal(op)
			if len(frame) < 70_000 {
				t.Fatalf("frame of %d bytes", len(frame))
			}
			var m wstest.Msg
			took, grew := peakGrowth(func() {
				// API Gateway takes frames of at most 32 KB: the message goes in 16 KB frames.
				w, err := c.C.Writer(context.Background(), 1)
				if err != nil {
					t.Fatal(err)
				}
				for rest := frame; len(rest) > 0; {
					k := min(len(rest), 16<<10)
					if _, err := w.Write(rest[:k]); err != nil {
						t.Fatal(err)
					}
					rest = rest[k:]
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				m = c.Expect("error", "bomb")
			})
			if !strings.Contains(string(m.Payload), "TOKEN_LIMIT_EXCEEDED") {
				t.Fatalf("error %s", m.Payload)
			}
			checkBound(t, fmt.Sprintf("a %d KB message in 16 KB frames", len(frame)>>10), took, grew)
			// The connection goes on.
			if proto == "graphql-ws" {
				c.Send(map[string]any{"id": "q", "type": "start", "payload": map[string]any{"query": "{ __typename }"}})
				c.Expect("data", "q")
				c.Expect("complete", "q")
			} else {
				c.Send(map[string]any{"type": "ping"})
				c.Expect("pong", "")
			}
			by.finish(t)
		})
	}
}

// TestAttackLargestAllowedResult: the costliest query the complexity limit lets through, over a
// room of 500 messages of 1,000 characters, is answered within the bounds: complexity bounds a
// result while it is built.
func TestAttackLargestAllowedResult(t *testing.T) {
	d := apptest.Start(t, app.Config{})
	text := strings.Repeat("x", 1000)
	for range 500 {
		apptest.GraphQL(t, d.Addr, `mutation($t: String!) { sendMessage(roomId: "big", author: "a", text: $t) { id } }`, map[string]any{"t": text})
	}
	by := startBystander(t, d.Addr)
	// 1 + 500×(1+1+4+1) = 3501 of the 5000 allowed.
	const q = `{ messages(roomId: "big", last: 500) { id author text createdAt } }`
	var status int
	var body string
	took, grew := peakGrowth(func() { status, body = postQuery(t, d.Addr, q) })
	if status != http.StatusOK || strings.Count(body, text) != 500 {
		t.Fatalf("%d, %d texts", status, strings.Count(body, text))
	}
	checkBound(t, fmt.Sprintf("a %d KB result", len(body)>>10), took, grew)
	by.finish(t)
}

// TestAttackTooManySubscriptions: a flood of 10,000 subscribes on one socket (issue 9's) stores
// 100 (SUBSCRIPTIONS_PER_CONNECTION); every other gets an error, so one mutation costs 100 posts.
func TestAttackTooManySubscriptions(t *testing.T) {
	const n = 10_000 // issue 9's flood
	d := apptest.Start(t, app.Config{})
	by := startBystander(t, d.Addr)
	c := wstest.Dial(t, "ws://"+d.Addr+"/graphql", "graphql-transport-ws")
	c.Send(map[string]any{"type": "connection_init"})
	c.Expect("connection_ack", "")
	refused := 0
	took, grew := peakGrowth(func() {
		for i := range n {
			c.Send(subscribe(fmt.Sprint(i), `subscription { messageAdded(roomId: "flood") { id } }`))
		}
		for refused < n-100 {
			m := c.Next(10 * time.Second)
			if m.Type != "error" || !strings.Contains(string(m.Payload), "SUBSCRIPTION_LIMIT_EXCEEDED") {
				t.Fatalf("got %s", m)
			}
			refused++
		}
	})
	apptest.WaitSubscribers(t, d.Store, "messageAdded?roomId=flood", 100)
	t.Logf("%d subscribes in %v (%.0f µs each), heap grew by %.1f MB at most", n, took, float64(took.Microseconds())/n, float64(grew)/(1<<20))
	if grew > attackMemory {
		t.Fatalf("the heap grew by %d MB", grew>>20)
	}
	c.ExpectNone(100 * time.Millisecond)
	// One mutation then costs 100 posts to the flooder, not n.
	apptest.GraphQL(t, d.Addr, `mutation { sendMessage(roomId: "flood", author: "a", text: "x") { id } }`, nil)
	for i := range 100 {
		if m := c.Next(10 * time.Second); m.Type != "next" {
			t.Fatalf("post %d: got %s", i+1, m)
		}
	}
	c.ExpectNone(300 * time.Millisecond)
	by.finish(t)
}

// TestAttackPingFlood: a flood of 100,000 pings on one socket (issue 9's) costs the flooder: its frames wait (none is
// lost, none is refused), the process does not grow, and another client's round trips stay fast.
func TestAttackPingFlood(t *testing.T) {
	const n = 100_000 // issue 9's flood
	d := apptest.Start(t, app.Config{})
	by := startBystander(t, d.Addr)
	c := wstest.Dial(t, "ws://"+d.Addr+"/graphql", "graphql-transport-ws")
	c.Send(map[string]any{"type": "connection_init"}) // else the init timeout ends the flood after 3 s
	c.Expect("connection_ack", "")
	var pongs atomic.Int64
	took, grew := peakGrowth(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for pongs.Load() < n {
				if m, ok := c.TryNext(30 * time.Second); !ok || m.Type != "pong" {
					return
				}
				pongs.Add(1)
			}
		}()
		ping := []byte(`{"type":"ping"}`)
		for range n {
			c.Send(ping)
		}
		<-done
	})
	if pongs.Load() != n {
		t.Fatalf("%d pongs for %d pings", pongs.Load(), n)
	}
	t.Logf("%d pings answered in %v (%.0f µs each); heap grew by %.1f MB at most", n, took, float64(took.Microseconds())/n, float64(grew)/(1<<20))
	if grew > attackMemory {
		t.Fatalf("the heap grew by %d MB", grew>>20)
	}
	by.finish(t)
}

// stalling yields n bytes of a JSON string, then blocks until released.
type stalling struct {
	n, read int
	release chan struct{}
}

func (r *stalling) Read(p []byte) (int, error) {
	if r.read >= r.n {
		<-r.release
		return 0, errors.New("released")
	}
	k := min(len(p), r.n-r.read)
	for i := range p[:k] {
		p[i] = ' '
	}
	r.read += k
	return k, nil
}

// TestAttackLargeBody: a 10 MB body is refused (413) by its Content-Length, before it is read:
// the client has sent 64 KB of it when the answer arrives.
func TestAttackLargeBody(t *testing.T) {
	d := apptest.Start(t, app.Config{})
	by := startBystander(t, d.Addr)
	body := &stalling{n: 64 << 10, release: make(chan struct{})}
	defer close(body.release)
	req, _ := http.NewRequest(http.MethodPost, "http://"+d.Addr+"/graphql", body)
	req.ContentLength = 10 << 20
	req.Header.Set("Content-Type", "application/json")
	var status int
	took, grew := peakGrowth(func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		status = resp.StatusCode
		resp.Body.Close()
	})
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", status)
	}
	checkBound(t, "a 10 MB body", took, grew)
	by.finish(t)
}

// slowStore makes every query of the data table (the messages query) wait for its context,
// reporting when it ends.
type slowStore struct {
	store.Store
	cancelled chan error
}

func (s *slowStore) QueryItems(ctx context.Context, pk, skPrefix string, limit int, descending bool) ([]store.Item, error) {
	select {
	case <-ctx.Done():
		s.cancelled <- ctx.Err()
		return nil, ctx.Err()
	case <-time.After(20 * time.Second):
		s.cancelled <- nil
		return nil, nil
	}
}

// TestAttackWorkStopsWhenTheClientLeaves: a client that gives up on a slow query cancels the
// resolvers' context in the local runtime; the work does not go on.
func TestAttackWorkStopsWhenTheClientLeaves(t *testing.T) {
	cfg, dc := app.Config{}, app.DevConfig{Host: "127.0.0.1", Data: t.TempDir()}
	s, feed, err := app.OpenDevStore(context.Background(), cfg, dc)
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowStore{Store: s, cancelled: make(chan error, 1)}
	d := apptest.Serve(t, cfg, dc, slow, feed)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.Addr+"/graphql",
		strings.NewReader(`{"query":"{ messages(roomId: \"r\") { id } }"}`))
	req.Header.Set("Content-Type", "application/json")
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the slow query was answered")
	}
	select {
	case err := <-slow.cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the resolver ended with %v, want its context cancelled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the resolver was still running 5 s after its client left")
	}
}
