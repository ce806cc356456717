package fanout

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realtime-gql/lambdaws/store"
)

// A node is the delivery of one event's range (the whole topic, a chunk, or a list of
// subscriptions) in one invocation: one reader, its pages, and the jobs it hands the workers.
type node struct {
	inv *invocation
	e   *Engine
	ev  *Event
	// key is the progress key; path the part's path below the event ("" for the event).
	key, path string
	depth     int
	// after and until bound the range (exclusive, inclusive); keys replaces the range for a
	// list part.
	after, until string
	keys         []SubKey
	prog         Progress // the row as read; zero when absent
	hasRow       bool
	waitParts    bool // wait for the parts before the node is done (records, not continuations)
	created      time.Time

	parts     int  // parts handed off, the row's and this invocation's
	planned   bool // chunking was tried
	savedDone bool // a done row was written

	// match is the event's filter test (Config.Match); nil matches every subscription.
	match func(s *store.Subscription) bool

	renders  map[uint64]*rendered // reader-only
	rendersX map[string]*rendered // reader-only, for hash collisions

	// Flow control between the reader and the workers.
	inflight atomic.Int32
	wakeAt   atomic.Int32
	waiting  atomic.Bool
	mu       sync.Mutex
	cond     sync.Cond

	// Pages read and not yet confirmed fully delivered.
	pmu       sync.Mutex
	pages     []*page
	head      int
	confirmed string // cursor after the last confirmed page
	blocked   bool   // a page with undelivered subscribers: the cursor stops before it
	saved     string // the cursor last saved

	c       nodeCounters
	tripped atomic.Bool
	logged  atomic.Int32
}

type nodeCounters struct {
	subscribers, delivered, gone, filtered, expired, tooLarge, renders atomic.Int64
	forbidden, server, other, throttled, unavailable, cut              atomic.Int64
	// Posts still throttled or unanswered when the deadline ended the poster's retries: carried
	// (not counted as failed), but they count toward telling a failing service.
	lateThrottled, lateUnavailable atomic.Int64
}

// page is one read of a topic, while its subscribers are delivered.
type page struct {
	subs     []store.Subscription
	next     string
	now      time.Time
	state    []atomic.Uint32
	left     atomic.Int32 // jobs not finished, plus one while the reader dispatches
	bad      atomic.Bool  // some subscriber was not delivered
	finished bool         // guarded by node.pmu
}

// A subscriber's state within a page.
const (
	sPending uint32 = iota // not yet taken by a worker
	sClaimed               // a worker is on it
	sOK                    // nothing more to do: delivered, gone, filtered, expired, answered too large
	sFailed                // failed for good; counted and logged, not carried
	sRetry                 // not delivered and worth carrying: not attempted, or cut by the deadline
	sDropped               // dropped by the node while pending; a worker that finds it skips it
)

type job struct {
	n *node
	p *page
	r *rendered
	i int32
}

func (inv *invocation) newNode(ev *Event, key, path string, prog Progress, hasRow bool) *node {
	n := &node{inv: inv, e: inv.e, ev: ev, key: key, path: path, prog: prog, hasRow: hasRow,
		renders: map[uint64]*rendered{}}
	n.cond.L = &n.mu
	if inv.e.cfg.Match != nil {
		n.match = inv.e.cfg.Match(inv.work, ev)
	}
	if path != "" {
		n.depth = 1
		for i := range len(path) {
			if path[i] == '/' {
				n.depth++
			}
		}
	}
	inv.add(n)
	return n
}

// run delivers the node and, for a record, waits for its parts.
func (n *node) run() Outcome {
	p := n.prog
	if p.Done && (p.Parts == 0 || !n.waitParts) {
		n.inv.stats.skipped.Add(1)
		n.savedDone = true
		return Outcome{}
	}
	n.parts = p.Parts
	if p.Until != "" {
		n.until = p.Until
	}
	if !p.Done {
		after := n.after
		if p.Cursor != "" {
			after, n.confirmed, n.saved = p.Cursor, p.Cursor, p.Cursor
		}
		if out := n.deliverOwn(after); out.Status != Done {
			return out
		}
	}
	if n.parts > 0 && n.waitParts {
		return n.waitForParts()
	}
	return Outcome{}
}

// deliverOwn delivers the node's own range, starting after the cursor after.
func (n *node) deliverOwn(after string) Outcome {
	inv, e := n.inv, n.e
	e.active.Add(1)
	dispatching := true
	endDispatch := func() {
		if dispatching {
			dispatching = false
			e.active.Add(-1)
		}
	}
	defer endDispatch()

	var (
		readErr   error
		lastNext  = after // cursor after the last page read
		rangeEnd  bool    // the own range was read to its end
		pagesRead int
		subsRead  int
	)
	if n.keys != nil {
		subs, err := e.cfg.Registry.TopicSubscriptions(inv.work, n.ev.Topic, n.keys)
		if err != nil {
			readErr = err
		} else {
			pagesRead = 1
			rangeEnd = true
			n.dispatch(Page{Subs: subs})
		}
	} else {
		broke := false
		// A prefetch exists only for an event of Deliver without a row: its range is the
		// whole topic, as the prefetch read it.
		var read iter.Seq2[Page, error]
		if r := inv.claimPrefetch(n.key); r != nil {
			read = r.pages()
		} else {
			read = readAhead(inv.work, func(ctx context.Context) iter.Seq2[Page, error] {
				return e.cfg.Registry.TopicPages(ctx, n.ev.Topic, after, n.until)
			})
		}
		for pg, err := range read {
			if err != nil {
				readErr = err
				broke = true
				break
			}
			pagesRead++
			subsRead += len(pg.Subs)
			complete := n.dispatch(pg)
			lastNext = pg.Next
			if pg.Next == "" {
				rangeEnd = true
			}
			if !complete || rangeEnd || n.tripped.Load() || inv.stopped() {
				broke = true
				break
			}
			n.saveCursor()
			if n.shouldChunk(subsRead) && n.plan(pg.Next) {
				rangeEnd = true
				broke = true
				break
			}
		}
		if !broke && readErr == nil {
			rangeEnd = true
		}
	}
	endDispatch()
	n.drain()

	if readErr != nil && inv.work.Err() != nil {
		readErr = nil // our own deadline cut the read: carry the rest
		inv.stop()
	}
	if err := n.serviceFailure(); err != nil {
		n.saveState(false)
		return failed(ReasonService, err)
	}
	if readErr != nil {
		n.saveState(false)
		return failed(ReasonRegistry, fmt.Errorf("read the subscribers of %s: %w", n.ev.Topic, readErr))
	}
	left := n.leftovers()
	if n.keys != nil && pagesRead == 0 {
		left, rangeEnd = n.keys, true // the deadline cut the read of the list: carry it whole
	}
	if rangeEnd && len(left) == 0 {
		if pagesRead > 1 || n.parts > 0 || n.path != "" || n.hasRow {
			if err := n.saveState(true); err != nil && n.path != "" {
				// The record waiting for this part cannot see it done: let the queue retry it.
				return failed(ReasonRegistry, fmt.Errorf("save the done marker of %s: %w", n.key, err))
			}
		}
		return Outcome{}
	}
	var rest *[2]string
	if !rangeEnd {
		rest = &[2]string{lastNext, n.until}
	}
	return n.carry(left, rest)
}

// readAhead yields the pages of seq, reading each next page while the caller dispatches the one
// before: the workers then post one page while the following one is read, instead of idling
// through every read (with DynamoDB a page of 100 takes about as long to read as its posts). It
// reads at most one page ahead. Every page and error of seq reaches the caller for as long as
// it reads, the error of a read cut by ctx included. When the caller stops early, the read
// ahead is cancelled and its result dropped; readAhead does not wait for it, so that a registry
// that ignores its context holds no more than its own goroutine, which ends with the read.
func readAhead(ctx context.Context, seq func(context.Context) iter.Seq2[Page, error]) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		startReading(ctx, seq).pages()(yield)
	}
}

// A reader is a readAhead whose first read started before anyone reads its pages (a prefetch):
// pages yields them once; stop cancels the read, whether or not pages ever ran.
type reader struct {
	ch     chan pageRead
	quit   chan struct{} // closed when the caller stops reading, and only then
	cancel context.CancelFunc
	once   sync.Once
}

type pageRead struct {
	pg  Page
	err error
}

// startReading starts reading seq at once, holding at most the page read and the one after it
// (see readAhead).
func startReading(ctx context.Context, seq func(context.Context) iter.Seq2[Page, error]) *reader {
	rctx, cancel := context.WithCancel(ctx)
	r := &reader{ch: make(chan pageRead), quit: make(chan struct{}), cancel: cancel} // unbuffered: the reader holds the page it read ahead
	go func() {
		defer close(r.ch)
		for pg, err := range seq(rctx) {
			// Not rctx.Done: it ends with ctx too, while the caller still reads, and an error
			// dropped here would end the sequence as a topic read to its end.
			select {
			case r.ch <- pageRead{pg, err}:
			case <-r.quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *reader) stop() {
	r.once.Do(func() {
		close(r.quit)
		r.cancel()
	})
}

func (r *reader) pages() iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		defer r.stop()
		for rd := range r.ch {
			if !yield(rd.pg, rd.err) || rd.err != nil {
				return
			}
		}
	}
}

// dispatch hands a page's subscribers to the workers; false when it stopped midway.
func (n *node) dispatch(pg Page) bool {
	inv, e := n.inv, n.e
	p := &page{subs: pg.Subs, next: pg.Next, now: e.cfg.Now(), state: make([]atomic.Uint32, len(pg.Subs))}
	p.left.Store(1)
	n.pmu.Lock()
	n.pages = append(n.pages, p)
	n.pmu.Unlock()
	n.c.subscribers.Add(int64(len(pg.Subs)))
	complete := true
	for i := range p.subs {
		if n.tripped.Load() || !n.acquire() {
			complete = false
			break
		}
		j := job{n: n, p: p, r: n.renderFor(&p.subs[i]), i: int32(i)}
		p.left.Add(1)
		select {
		case e.jobs <- j: // the usual case: a free slot, without locking the stop channel too
		default:
			select {
			case e.jobs <- j:
			case <-inv.stopCh:
				p.left.Add(-1)
				n.release()
				complete = false
			}
		}
		if !complete {
			break
		}
	}
	if !complete {
		p.bad.Store(true)
	}
	if p.left.Add(-1) == 0 {
		n.pageDone(p)
	}
	return complete
}

// acquire waits until the node may put one more job in flight; false once stopped.
func (n *node) acquire() bool {
	for {
		if n.inv.stopped() {
			return false
		}
		share := n.e.share()
		if n.inflight.Load() < share {
			n.inflight.Add(1)
			return true
		}
		// Refill as soon as one job ends: waking the reader per job costs far less than
		// leaving workers idle while posts wait on the service.
		low := share - 1
		n.mu.Lock()
		n.wakeAt.Store(low)
		n.waiting.Store(true)
		for n.inflight.Load() > low && !n.inv.stopped() {
			n.cond.Wait()
		}
		n.waiting.Store(false)
		n.mu.Unlock()
	}
}

// release ends one job of the node.
func (n *node) release() {
	if v := n.inflight.Add(-1); v <= n.wakeAt.Load() && n.waiting.Load() {
		n.mu.Lock()
		n.cond.Signal()
		n.mu.Unlock()
	}
}

// drain waits until every job of the node has finished, or the invocation gives up on them.
func (n *node) drain() {
	if n.inflight.Load() == 0 {
		return
	}
	n.mu.Lock()
	n.wakeAt.Store(0)
	n.waiting.Store(true)
	for n.inflight.Load() > 0 && !n.inv.abandoned.Load() {
		n.cond.Wait()
	}
	n.waiting.Store(false)
	n.mu.Unlock()
}

func (n *node) wake() {
	n.mu.Lock()
	n.cond.Broadcast()
	n.mu.Unlock()
}

// pageDone records that every job of a page has finished, and moves the confirmed cursor past
// every leading page whose subscribers were all delivered.
func (n *node) pageDone(p *page) {
	n.pmu.Lock()
	defer n.pmu.Unlock()
	p.finished = true
	for !n.blocked && n.head < len(n.pages) && n.pages[n.head].finished {
		hp := n.pages[n.head]
		if hp.bad.Load() {
			n.blocked = true
			return
		}
		if hp.next != "" {
			n.confirmed = hp.next
		}
		n.pages[n.head] = nil // delivered: nothing will be carried from it
		n.head++
	}
}

// leftovers lists the subscribers to carry: never attempted, cut by the deadline, or still in
// flight when the invocation gave up on them.
func (n *node) leftovers() []SubKey {
	n.pmu.Lock()
	defer n.pmu.Unlock()
	var keys []SubKey
	for _, p := range n.pages[n.head:] {
		if p == nil {
			continue
		}
		for i := range p.state {
			st := &p.state[i]
			v := st.Load()
			if v == sPending && !st.CompareAndSwap(sPending, sDropped) {
				v = st.Load()
			}
			switch v {
			case sPending, sClaimed, sRetry:
				keys = append(keys, SubKey{ConnectionID: p.subs[i].ConnectionID, ID: p.subs[i].ID})
			}
		}
	}
	return keys
}

// process is a worker's handling of one job.
func (n *node) process(j job) {
	st := &j.p.state[j.i]
	if st.CompareAndSwap(sPending, sClaimed) {
		res := n.deliver(j.p, int(j.i), j.r)
		st.Store(res)
		if res != sOK {
			j.p.bad.Store(true)
		}
	}
	if j.p.left.Add(-1) == 0 {
		n.pageDone(j.p)
	}
	n.release()
}

// tripAfter is how many posts must have come back before a failing service stops a node early.
const tripAfter = 20

// deliver checks, renders, frames and posts for one subscriber.
func (n *node) deliver(p *page, i int, r *rendered) uint32 {
	inv, e := n.inv, n.e
	s := &p.subs[i]
	if n.tripped.Load() || inv.over() {
		return sRetry
	}
	if e.cfg.Expired != nil && e.cfg.Expired(s, p.now) {
		n.c.expired.Add(1)
		inv.forget(s.ConnectionID, e.cfg.CloseExpired, "principal expired")
		return sOK
	}
	if inv.isForgotten(s.ConnectionID) {
		n.c.gone.Add(1)
		return sOK
	}
	if n.match != nil && !n.match(s) {
		n.c.filtered.Add(1)
		return sOK
	}
	payload := r.get(n, s)
	if payload == nil {
		n.c.filtered.Add(1)
		return sOK
	}
	err := n.post(s, payload)
	if err == nil {
		if r.tooBig {
			n.c.tooLarge.Add(1)
		} else {
			n.c.delivered.Add(1)
		}
		return sOK
	}
	class := e.classify(inv, err)
	if class == ClassTooLarge && !r.tooBig {
		// The service measured the message over its limit: send the error result instead.
		if err = n.post(s, r.tooLargeResult(n, len(payload))); err == nil {
			n.c.tooLarge.Add(1)
			return sOK
		}
		class = e.classify(inv, err)
		if class == ClassTooLarge {
			class = ClassOther
		}
	}
	switch class {
	case ClassDeadline:
		n.c.cut.Add(1)
		return sRetry
	case ClassGone:
		n.c.gone.Add(1)
		inv.forget(s.ConnectionID, e.cfg.Registry.DeleteConnection, "gone")
		return sOK
	case ClassThrottled, ClassUnavailable:
		// The poster retried until our deadline: carry it. It may tell before the clock does:
		// it stops as soon as its next backoff would end past the deadline.
		late := inv.over() || endedByDeadline(err)
		switch {
		case class == ClassThrottled && late:
			n.c.lateThrottled.Add(1)
		case class == ClassThrottled:
			n.c.throttled.Add(1)
		case late:
			n.c.lateUnavailable.Add(1)
		default:
			n.c.unavailable.Add(1)
		}
		n.checkTrip() // late ones count too: a service that fails every post until the deadline
		if late {
			return sRetry
		}
		n.logFailure(s, class, err)
		return sFailed
	default:
		switch class {
		case ClassForbidden:
			n.c.forbidden.Add(1)
		case ClassServer:
			n.c.server.Add(1)
		default:
			n.c.other.Add(1)
		}
		n.checkTrip()
		n.logFailure(s, class, err)
		return sFailed
	}
}

// deadlineEnded is implemented by post errors that tell whether the poster stopped retrying
// because of its context's deadline (internal/mgmt's *Error does).
type deadlineEnded interface{ RetriesEndedByDeadline() bool }

func endedByDeadline(err error) bool {
	var d deadlineEnded
	return errors.As(err, &d) && d.RetriesEndedByDeadline()
}

// classify sorts a post's error. A deadline that is not the invocation's own (the poster's
// attempt timeout) is the service being unavailable, not a reason to carry.
func (e *Engine) classify(inv *invocation, err error) Class {
	c := e.cfg.Classify(err)
	if c == ClassDeadline && inv.work.Err() == nil && !inv.over() {
		c = ClassUnavailable
	}
	return c
}

// post frames the payload for the subscriber in a pooled buffer and posts it.
func (n *node) post(s *store.Subscription, payload []byte) error {
	bp := n.e.bufs.Get().(*[]byte)
	b := appendFrame((*bp)[:0], s, payload)
	err := n.e.cfg.Poster.Post(n.inv.posts, s.ConnectionID, b)
	if cap(b) <= 2*n.e.cfg.MaxMessage {
		*bp = b[:0]
		n.e.bufs.Put(bp)
	}
	return err
}

func (n *node) failures() (failed, attempted int64) {
	c := &n.c
	failed = c.forbidden.Load() + c.server.Load() + c.other.Load() + c.throttled.Load() + c.unavailable.Load() +
		c.lateThrottled.Load() + c.lateUnavailable.Load()
	return failed, failed + c.delivered.Load() + c.gone.Load() + c.tooLarge.Load()
}

// checkTrip stops the node early once enough posts came back and most of them failed: the
// service, not the subscribers, is failing, and the rest would fail the same way.
func (n *node) checkTrip() {
	if f, a := n.failures(); a >= tripAfter && 2*f >= a {
		n.tripped.Store(true)
	}
}

// serviceFailure tells a failure of the service from subscribers' failures: at least half the
// posts that came back failed, and either at least three did or every one of several did. One
// or two refused posts among many are the subscribers' (a 403 is also what a connection id that
// never existed gets).
func (n *node) serviceFailure() error {
	f, a := n.failures()
	if f == 0 || 2*f < a || (f < 3 && (f != a || a < 2)) {
		if n.tripped.Load() && f > 0 {
			return n.serviceError(f, a)
		}
		return nil
	}
	return n.serviceError(f, a)
}

func (n *node) serviceError(f, a int64) error {
	c := &n.c
	counts := []struct {
		n   int64
		msg string
	}{
		{c.forbidden.Load(), "management API refused posts (403 ForbiddenException): check the execute-api:ManageConnections grant and WEBSOCKET_ENDPOINT (API id and stage)"},
		{c.server.Load(), "management API failing (5xx after retries): an API Gateway incident, or WEBSOCKET_ENDPOINT points at the wrong service"},
		{c.throttled.Load() + c.lateThrottled.Load(), "management API throttling (429 after retries until the deadline): the account's API Gateway request rate is exhausted"},
		{c.unavailable.Load() + c.lateUnavailable.Load(), "management API unreachable (network errors or timeouts): check WEBSOCKET_ENDPOINT and the network path"},
		{c.other.Load(), "posts failed with unclassified errors"},
	}
	best := 0
	for i := range counts {
		if counts[i].n > counts[best].n {
			best = i
		}
	}
	return fmt.Errorf("%s: %d of %d posts failed (topic %s)", counts[best].msg, f, a, n.ev.Topic)
}

// maxFailureLogs bounds the per-subscriber failure lines of one node.
const maxFailureLogs = 5

func (n *node) logFailure(s *store.Subscription, class Class, err error) {
	if n.logged.Add(1) > maxFailureLogs {
		return
	}
	n.inv.log.Warn().Err(err).Str("conn", s.ConnectionID).Str("op", s.ID).Str("event", n.ev.ID).
		Str("topic", n.ev.Topic).Str("class", class.String()).Msg("delivery failed")
}

// saveCursor persists the confirmed cursor when it moved (at most once per page).
func (n *node) saveCursor() {
	n.pmu.Lock()
	cur := n.confirmed
	n.pmu.Unlock()
	if cur == n.saved || cur == "" {
		return
	}
	if err := n.save(n.inv.work, Progress{Key: n.key, Cursor: cur, Until: n.until, Parts: n.parts}); err == nil {
		n.saved = cur
	}
}

// saveState writes the node's row: done, or the cursor to resume after. A node that never wrote
// a row and made no progress writes nothing.
func (n *node) saveState(done bool) error {
	n.pmu.Lock()
	cur := n.confirmed
	n.pmu.Unlock()
	if !done && cur == n.saved && n.parts == n.prog.Parts {
		return nil
	}
	ctx, cancel := n.inv.tail()
	defer cancel()
	row := Progress{Key: n.key, Cursor: cur, Until: n.until, Parts: n.parts, Done: done}
	if done {
		row.Cursor = ""
	}
	err := n.save(ctx, row)
	if err == nil {
		n.saved = cur
		n.savedDone = done
	}
	return err
}

func (n *node) save(ctx context.Context, row Progress) error {
	row.ExpiresAt = n.inv.expires()
	n.inv.stats.progressWrites.Add(1)
	if err := n.e.cfg.Registry.SaveFanoutProgress(ctx, []Progress{row}); err != nil {
		n.inv.log.Warn().Err(err).Str("key", n.key).Str("event", n.ev.ID).Msg("save fan-out progress")
		return err
	}
	return nil
}

func (n *node) shouldChunk(read int) bool {
	return !n.planned && n.e.cfg.Queue != nil && n.e.cfg.ChunkSize > 0 && read >= n.e.cfg.ChunkSize &&
		n.keys == nil && n.depth < MaxDepth
}

// plan splits the rest of the node's range, after cursor cur, into chunk parts and enqueues
// them; the node's own range then ends at cur. False when it could not (the node then goes on
// inline).
func (n *node) plan(cur string) bool {
	n.planned = true
	inv, e := n.inv, n.e
	bounds, err := e.cfg.Registry.TopicCursors(inv.work, n.ev.Topic, cur, n.until, e.cfg.ChunkSize)
	if err != nil {
		inv.log.Warn().Err(err).Str("event", n.ev.ID).Str("topic", n.ev.Topic).Msg("plan chunks; delivering inline")
		return false
	}
	var cs []Continuation
	prev := cur
	for _, b := range append(bounds, n.until) {
		if b == prev || (b == n.until && len(cs) > 0 && cs[len(cs)-1].Until == b) {
			continue
		}
		cs = append(cs, n.continuation(n.parts+len(cs)+1, prev, b, nil))
		prev = b
	}
	if err := n.enqueue(inv.work, cs); err != nil {
		inv.log.Warn().Err(err).Str("event", n.ev.ID).Str("topic", n.ev.Topic).Msg("enqueue chunks; delivering inline")
		return false
	}
	n.parts += len(cs)
	n.until = cur
	inv.stats.chunks.Add(int64(len(cs)))
	n.pmu.Lock()
	conf := n.confirmed
	n.pmu.Unlock()
	// Without this row a retry would plan (and enqueue) the chunks again.
	if n.save(inv.work, Progress{Key: n.key, Cursor: conf, Until: n.until, Parts: n.parts}) == nil {
		n.saved = conf
	}
	return true
}

func (n *node) continuation(part int, after, until string, keys []SubKey) Continuation {
	return Continuation{Event: *n.ev, Part: n.partName(part), After: after, Until: until, Keys: keys, Created: n.created}
}

// partName names the node's i-th part below the event.
func (n *node) partName(i int) string {
	if n.path != "" {
		return n.path + "/" + strconv.Itoa(i)
	}
	return strconv.Itoa(i)
}

func (n *node) enqueue(ctx context.Context, cs []Continuation) error {
	if err := validSizes(cs); err != nil {
		return err
	}
	return n.e.cfg.Queue.Enqueue(ctx, cs)
}

// carry hands what is left at the deadline to the queue: the listed subscribers, and the unread
// rest of the range.
func (n *node) carry(left []SubKey, rest *[2]string) Outcome {
	inv, e := n.inv, n.e
	what := fmt.Sprintf("%d subscribers", len(left))
	if rest != nil {
		what += " and the unread rest of the topic"
	}
	if e.cfg.Queue == nil || n.depth >= MaxDepth {
		n.saveState(false)
		return failed(ReasonDeadline, fmt.Errorf("deadline: %s of %s not delivered and nothing to carry them to", what, n.ev.Topic))
	}
	var cs []Continuation
	for len(left) > 0 {
		k := min(len(left), MaxKeys)
		cs = append(cs, n.continuation(n.parts+len(cs)+1, "", "", left[:k:k]))
		left = left[k:]
	}
	if rest != nil {
		cs = append(cs, n.continuation(n.parts+len(cs)+1, rest[0], rest[1], nil))
	}
	cs = splitToFit(cs, n)
	ctx, cancel := inv.tail()
	defer cancel()
	if err := n.enqueue(ctx, cs); err != nil {
		n.saveState(false)
		return failed(ReasonDeadline, fmt.Errorf("deadline: %s of %s not delivered, and the queue failed: %w", what, n.ev.Topic, err))
	}
	n.parts += len(cs)
	inv.stats.carried.Add(int64(len(cs)))
	if err := n.saveState(true); err != nil {
		// The parts are queued, but nothing records it: a retry delivers again rather than lose.
		return failed(ReasonRegistry, fmt.Errorf("carried %s of %s but could not record it: %w", what, n.ev.Topic, err))
	}
	return Outcome{Status: Carried, Err: fmt.Errorf("deadline: %s of %s carried in %d continuations", what, n.ev.Topic, len(cs))}
}

// errWaiting is why a record whose chunks are not done by the deadline fails.
var errWaiting = errors.New("chunks not done by the deadline")

// waitForParts polls the done markers of the node's parts (and of their own parts) until all are
// complete, then marks the node done.
func (n *node) waitForParts() Outcome {
	inv := n.inv
	pending := make([]string, 0, n.parts)
	for i := 1; i <= n.parts; i++ {
		pending = append(pending, n.key+"/"+strconv.Itoa(i))
	}
	delay := n.e.cfg.PollInterval
	for {
		expanded := false
		rows, err := n.e.cfg.Registry.FanoutProgress(inv.work, pending)
		if err == nil {
			next := pending[:0:0]
			for _, k := range pending {
				r, ok := rows[k]
				switch {
				case !ok || !r.Done:
					next = append(next, k)
				case r.Parts > 0:
					expanded = true
					for i := 1; i <= r.Parts; i++ {
						next = append(next, k+"/"+strconv.Itoa(i))
					}
				}
			}
			pending = next
			if len(pending) == 0 {
				if err := n.saveState(true); err != nil {
					inv.log.Warn().Err(err).Str("event", n.ev.ID).Msg("chunks done, but the record's done marker was not saved")
				}
				return Outcome{}
			}
		}
		if expanded {
			continue
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-inv.stopCh:
			t.Stop()
			return failed(ReasonWaiting, fmt.Errorf("%w: %d parts of %s pending", errWaiting, len(pending), n.ev.Topic))
		}
		delay = min(2*delay, time.Second)
	}
}

// flush adds the node's counters to the invocation's.
func (n *node) flush() {
	s, c := &n.inv.stats, &n.c
	s.subscribers.Add(c.subscribers.Load())
	s.delivered.Add(c.delivered.Load())
	s.gone.Add(c.gone.Load())
	s.filtered.Add(c.filtered.Load())
	s.expired.Add(c.expired.Load())
	s.tooLarge.Add(c.tooLarge.Load())
	s.renders.Add(c.renders.Load())
	s.failed.Add(c.forbidden.Load() + c.server.Load() + c.other.Load() + c.unavailable.Load())
	s.throttled.Add(c.throttled.Load() + c.lateThrottled.Load()) // carried, but throttled until the deadline
}
