package fanout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/store"
)

// fakeRegistry keeps topics sorted by subscription key and pages through them by cursor, the
// way the DynamoDB backend pages a topic's index.
type fakeRegistry struct {
	mu       sync.Mutex
	topics   map[string][]store.Subscription
	pageSize int
	progress map[string]fanout.Progress
	deleted  []string

	// Faults: failPage(topic, index of the page about to be read) returning an error fails
	// that read; failProgress fails progress reads; failSave fails progress writes.
	failPage     func(topic string, page int) error
	stuckPage    func(topic string, page int) time.Duration // a read that ignores its context
	getDelay     time.Duration                              // how long Get takes
	failProgress error
	failSave     error
	// hang makes every page read and progress read or write wait for its context to end (a
	// DynamoDB that stopped answering, reached by a client that honours its context).
	hang atomic.Bool

	// beforeProgress runs in every progress read before it answers.
	beforeProgress func()
	// readCtxs are the contexts of every topic read started.
	readCtxs []context.Context

	pageReads, progressReads, saves, cursorWalks atomic.Int64
}

func newRegistry(pageSize int) *fakeRegistry {
	return &fakeRegistry{topics: map[string][]store.Subscription{}, pageSize: pageSize, progress: map[string]fanout.Progress{}}
}

func subKey(s store.Subscription) string { return s.ConnectionID + "\x00" + s.ID }

// cursor is opaque to the engine; it is the key of the last subscription of a page.
func cursor(s store.Subscription) string { return "cur:" + subKey(s) }

func (r *fakeRegistry) add(topic string, subs ...store.Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := append(r.topics[topic], subs...)
	sort.Slice(all, func(i, j int) bool { return subKey(all[i]) < subKey(all[j]) })
	r.topics[topic] = all
}

func (r *fakeRegistry) snapshot(topic, after, until string) []store.Subscription {
	r.mu.Lock()
	subs := slices.Clone(r.topics[topic])
	r.mu.Unlock()
	lo := 0
	if after != "" {
		lo = sort.Search(len(subs), func(i int) bool { return cursor(subs[i]) > after })
	}
	hi := len(subs)
	if until != "" {
		hi = sort.Search(len(subs), func(i int) bool { return cursor(subs[i]) > until })
	}
	if lo > hi {
		return nil
	}
	return subs[lo:hi]
}

func (r *fakeRegistry) TopicPages(ctx context.Context, topic, after, until string) iter.Seq2[fanout.Page, error] {
	return func(yield func(fanout.Page, error) bool) {
		r.mu.Lock()
		r.readCtxs = append(r.readCtxs, ctx)
		r.mu.Unlock()
		subs := r.snapshot(topic, after, until)
		for i := 0; ; i++ {
			if err := ctx.Err(); err != nil {
				yield(fanout.Page{}, err)
				return
			}
			if r.hang.Load() {
				<-ctx.Done()
				yield(fanout.Page{}, ctx.Err())
				return
			}
			if r.failPage != nil {
				if err := r.failPage(topic, i); err != nil {
					yield(fanout.Page{}, err)
					return
				}
			}
			if r.stuckPage != nil {
				time.Sleep(r.stuckPage(topic, i))
			}
			r.pageReads.Add(1)
			n := min(r.pageSize, len(subs))
			pg := fanout.Page{Subs: slices.Clone(subs[:n])}
			subs = subs[n:]
			if len(subs) > 0 {
				pg.Next = cursor(pg.Subs[n-1])
			}
			if !yield(pg, nil) || len(subs) == 0 {
				return
			}
		}
	}
}

func (r *fakeRegistry) TopicSubscriptions(ctx context.Context, topic string, keys []fanout.SubKey) ([]store.Subscription, error) {
	r.mu.Lock()
	delay := r.getDelay
	r.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[k.ConnectionID+"\x00"+k.ID] = true
	}
	var out []store.Subscription
	for _, s := range r.snapshot(topic, "", "") {
		if want[subKey(s)] {
			out = append(out, s)
		}
	}
	return out, nil
}

func (r *fakeRegistry) TopicCursors(ctx context.Context, topic, after, until string, every int) ([]string, error) {
	r.cursorWalks.Add(1)
	subs := r.snapshot(topic, after, until)
	var out []string
	for i := every - 1; i < len(subs)-1; i += every {
		out = append(out, cursor(subs[i]))
	}
	return out, nil
}

func (r *fakeRegistry) DeleteConnection(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted = append(r.deleted, id)
	return nil
}

func (r *fakeRegistry) FanoutProgress(ctx context.Context, keys []string) (map[string]fanout.Progress, error) {
	r.progressReads.Add(1)
	if r.beforeProgress != nil {
		r.beforeProgress()
	}
	if r.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if r.failProgress != nil {
		return nil, r.failProgress
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]fanout.Progress{}
	for _, k := range keys {
		if p, ok := r.progress[k]; ok {
			out[k] = p
		}
	}
	return out, nil
}

func (r *fakeRegistry) SaveFanoutProgress(ctx context.Context, rows []fanout.Progress) error {
	r.saves.Add(int64(len(rows)))
	if r.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if r.failSave != nil {
		return r.failSave
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range rows {
		if p.Key == "" || p.ExpiresAt.IsZero() {
			return fmt.Errorf("bad progress row %+v", p)
		}
		r.progress[p.Key] = p
	}
	return nil
}

func (r *fakeRegistry) deletedConns() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deleted)
}

// Errors the fake poster returns, classified by classify as internal/mgmt's sentinels will be.
var (
	errGone      = errors.New("mgmt: gone")
	errForbidden = errors.New("mgmt: forbidden")
	errTooLarge  = errors.New("mgmt: too large")
	errThrottled = errors.New("mgmt: throttled")
	errServer    = errors.New("mgmt: server error")
)

func classify(err error) fanout.Class {
	switch {
	case errors.Is(err, errGone):
		return fanout.ClassGone
	case errors.Is(err, errForbidden):
		return fanout.ClassForbidden
	case errors.Is(err, errTooLarge):
		return fanout.ClassTooLarge
	case errors.Is(err, errThrottled):
		return fanout.ClassThrottled
	case errors.Is(err, errServer):
		return fanout.ClassServer
	}
	return fanout.DefaultClassify(err)
}

type post struct {
	conn  string
	data  string
	start time.Time
	end   time.Time
}

// fakePoster records what it accepted. behave, when set, decides per post how long it takes and
// how it ends; a post honours its context like the real client (a cut post is not delivered).
type fakePoster struct {
	behave func(conn string, data []byte) (time.Duration, error)
	// stubborn connections' posts take their time whatever the context says.
	stubborn func(conn string) bool

	mu          sync.Mutex
	posts       []post
	starts      []time.Time
	inflight    atomic.Int32
	maxInflight atomic.Int32
}

func (p *fakePoster) Post(ctx context.Context, conn string, data []byte) error {
	start := time.Now()
	n := p.inflight.Add(1)
	defer p.inflight.Add(-1)
	for m := p.maxInflight.Load(); n > m && !p.maxInflight.CompareAndSwap(m, n); m = p.maxInflight.Load() {
	}
	p.mu.Lock()
	p.starts = append(p.starts, start)
	p.mu.Unlock()
	var err error
	p.mu.Lock()
	behave := p.behave
	p.mu.Unlock()
	if behave != nil {
		var d time.Duration
		d, err = behave(conn, data)
		if d > 0 && p.stubborn != nil && p.stubborn(conn) {
			time.Sleep(d)
		} else if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				if err == nil || errors.Is(err, errThrottled) {
					if err == nil {
						err = ctx.Err()
					}
					return err
				}
			}
		}
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.posts = append(p.posts, post{conn: conn, data: string(data), start: start, end: time.Now()})
	p.mu.Unlock()
	return nil
}

// setBehave changes the behaviour while posts may be running.
func (p *fakePoster) setBehave(b func(conn string, data []byte) (time.Duration, error)) {
	p.mu.Lock()
	p.behave = b
	p.mu.Unlock()
}

func (p *fakePoster) all() []post {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.posts)
}

// byConn lists the frames each connection received, in order.
func (p *fakePoster) byConn() map[string][]string {
	out := map[string][]string{}
	for _, q := range p.all() {
		out[q.conn] = append(out[q.conn], q.data)
	}
	return out
}

func (p *fakePoster) latestStart() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var t time.Time
	for _, s := range p.starts {
		if s.After(t) {
			t = s
		}
	}
	return t
}

// fakeRenderer returns a result naming the operation and carrying the event's payload, and
// counts renders per operation.
type fakeRenderer struct {
	mu    sync.Mutex
	calls map[string]int
	n     atomic.Int64
	// result, when set, replaces the result.
	result func(s *store.Subscription, ev *fanout.Event) json.RawMessage
}

func (r *fakeRenderer) Render(ctx context.Context, s *store.Subscription, ev *fanout.Event) json.RawMessage {
	r.n.Add(1)
	r.mu.Lock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[s.Query+"|"+s.OperationName+"|"+string(s.Variables)+"|"+string(s.Principal)]++
	r.mu.Unlock()
	if r.result != nil {
		return r.result(s, ev)
	}
	q, _ := json.Marshal(s.Query)
	return json.RawMessage(fmt.Sprintf(`{"data":{"q":%s,"ev":%s}}`, q, ev.Payload))
}

// fakeQueue keeps continuations as the JSON the SQS queue would carry.
type fakeQueue struct {
	mu   sync.Mutex
	msgs [][]byte
	sent atomic.Int64
	fail error
}

func (q *fakeQueue) Enqueue(ctx context.Context, cs []fanout.Continuation) error {
	if q.fail != nil {
		return q.fail
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range cs {
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if len(b) > fanout.MaxContinuationBytes {
			return fmt.Errorf("message of %d bytes", len(b))
		}
		q.msgs = append(q.msgs, b)
		q.sent.Add(1)
	}
	return nil
}

func (q *fakeQueue) take() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.msgs
	q.msgs = nil
	return m
}

func (q *fakeQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

// drain consumes the queue as the chunk consumer would: each message decoded and delivered with
// Continue under its own deadline; a failed one goes back, as SQS would redeliver it.
func drain(t *testing.T, e *fanout.Engine, q *fakeQueue, budget time.Duration) fanout.Stats {
	t.Helper()
	var total fanout.Stats
	for range 50 {
		msgs := q.take()
		if len(msgs) == 0 {
			return total
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, m := range msgs {
			wg.Go(func() {
				c, err := fanout.ParseContinuation(m)
				if err != nil {
					t.Errorf("queued message does not parse: %v\n%s", err, m)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), budget)
				defer cancel()
				out, st := e.Continue(ctx, c)
				mu.Lock()
				total.Add(st)
				mu.Unlock()
				if out.Status == fanout.Failed {
					q.mu.Lock()
					q.msgs = append(q.msgs, m)
					q.mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	t.Fatalf("the queue never drained")
	return total
}

// subs makes n subscriptions c00000…, operation id "1", graphql-transport-ws, one operation.
func subs(n int, prefix string) []store.Subscription {
	out := make([]store.Subscription, n)
	for i := range out {
		out[i] = store.Subscription{ConnectionID: fmt.Sprintf("%s%05d", prefix, i), ID: "1", Subprotocol: gqlws.TransportWS,
			Query: `subscription { changed { id } }`}
	}
	return out
}

func event(id, seq, topic string) fanout.Event {
	return fanout.Event{ID: id, Seq: seq, Field: "changed", Topic: topic, Payload: json.RawMessage(fmt.Sprintf(`{"id":%q}`, id))}
}

func record(id, seq string, topics ...string) fanout.Record {
	r := fanout.Record{ID: id, Seq: seq}
	for _, tp := range topics {
		r.Events = append(r.Events, event(id, seq, tp))
	}
	return r
}

type setup struct {
	reg    *fakeRegistry
	poster *fakePoster
	rend   *fakeRenderer
	queue  *fakeQueue
	cfg    fanout.Config
}

func newSetup(pageSize int) *setup {
	s := &setup{reg: newRegistry(pageSize), poster: &fakePoster{}, rend: &fakeRenderer{}, queue: &fakeQueue{}}
	s.cfg = fanout.Config{Registry: s.reg, Renderer: s.rend, Poster: s.poster, Queue: s.queue, Classify: classify,
		Concurrency: 16, PollInterval: 5 * time.Millisecond}
	return s
}

func (s *setup) engine(t testing.TB) *fanout.Engine {
	e := fanout.New(s.cfg)
	t.Cleanup(e.Close)
	return e
}

// eventIDs lists, per connection, the extensions.event.id of every frame it received.
func eventIDs(t testing.TB, p *fakePoster) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for conn, frames := range p.byConn() {
		for _, f := range frames {
			var m struct {
				Payload struct {
					Extensions struct {
						Event struct{ ID string }
					}
				}
			}
			if err := json.Unmarshal([]byte(f), &m); err != nil {
				t.Fatalf("frame %s: %v", f, err)
			}
			out[conn] = append(out[conn], m.Payload.Extensions.Event.ID)
		}
	}
	return out
}

// exactlyOnce fails unless every listed connection received event id exactly once.
func exactlyOnce(t testing.TB, p *fakePoster, ss []store.Subscription, id string) {
	t.Helper()
	got := eventIDs(t, p)
	var missing, dup []string
	for _, s := range ss {
		n := 0
		for _, e := range got[s.ConnectionID] {
			if e == id {
				n++
			}
		}
		switch {
		case n == 0:
			missing = append(missing, s.ConnectionID)
		case n > 1:
			dup = append(dup, s.ConnectionID)
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Fatalf("event %s: %d of %d subscribers missing (%s), %d duplicated (%s)", id, len(missing), len(ss),
			head(missing), len(dup), head(dup))
	}
}

func head(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], ",") + ",…"
	}
	return strings.Join(s, ",")
}
