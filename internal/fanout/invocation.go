package fanout

import (
	"context"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// invocation is the state one Deliver or Continue call shares between its nodes.
type invocation struct {
	e   *Engine
	log *zerolog.Logger
	// work is the context of page reads and renders: it ends at the hard deadline D−M (or when
	// the caller's context ends).
	work   context.Context
	cancel context.CancelFunc
	// posts is the context of posts: no post starts after D−M, but one in flight then has until
	// D−M+M/5 to be answered, so that a post the service is answering is not cut (and carried,
	// to be delivered twice); only a post still unanswered then is.
	posts       context.Context
	cancelPosts context.CancelFunc
	// hard is D−M, finish is D−M/2; zero without a deadline.
	hard, finish time.Time
	start        time.Time

	stopCh    chan struct{} // closed at the hard deadline: no read, no post from now on
	stopOnce  sync.Once
	abandoned atomic.Bool // set a quarter margin later: stop waiting for posts in flight
	stopAfter func() bool
	timer     *time.Timer

	mu    sync.Mutex
	nodes []*node
	ahead map[string]*reader // first pages read before the progress read answered, by event key

	fmu       sync.RWMutex
	forgotten map[string]struct{} // connections forgotten (gone or expired) in this invocation
	nForgot   atomic.Int32

	stats counters
}

func (e *Engine) begin(ctx context.Context) *invocation {
	inv := &invocation{e: e, log: zerolog.Ctx(ctx), start: time.Now(), stopCh: make(chan struct{}),
		forgotten: map[string]struct{}{}}
	m := e.cfg.Margin
	if dl, ok := ctx.Deadline(); ok {
		inv.hard, inv.finish = dl.Add(-m), dl.Add(-m/2)
		inv.work, inv.cancel = context.WithDeadline(ctx, inv.hard)
		inv.posts, inv.cancelPosts = context.WithDeadline(ctx, inv.hard.Add(m/5))
	} else {
		inv.work, inv.cancel = context.WithCancel(ctx)
		inv.posts, inv.cancelPosts = context.WithCancel(ctx)
	}
	inv.stopAfter = context.AfterFunc(inv.work, func() {
		inv.stop()
		inv.mu.Lock()
		inv.timer = time.AfterFunc(m/4, inv.abandon)
		inv.mu.Unlock()
	})
	return inv
}

// maxPrefetch bounds the topics whose first page Deliver reads beside its progress read.
const maxPrefetch = 16

// prefetch starts reading the first page of ev's topic (key is its progress key) before its
// progress row is known: for a fresh event (no row, the usual case) the first delivery then waits
// for one registry round trip instead of two. The node that delivers the event takes it over
// (claimPrefetch); one that has a row does not, and unclaimed reads are stopped (dropPrefetch).
func (inv *invocation) prefetch(key string, ev *Event) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.ahead == nil {
		inv.ahead = map[string]*reader{}
	}
	if _, ok := inv.ahead[key]; ok || len(inv.ahead) >= maxPrefetch {
		return
	}
	topic, reg := ev.Topic, inv.e.cfg.Registry
	inv.ahead[key] = startReading(inv.work, func(ctx context.Context) iter.Seq2[Page, error] {
		return reg.TopicPages(ctx, topic, "", "")
	})
}

// claimPrefetch hands over the read prefetch started for the event key, if any.
func (inv *invocation) claimPrefetch(key string) *reader {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	r := inv.ahead[key]
	delete(inv.ahead, key)
	return r
}

// dropPrefetch stops the prefetched reads of the keys, or of every key left when keys is nil.
func (inv *invocation) dropPrefetch(keys func(string) bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for k, r := range inv.ahead {
		if keys == nil || keys(k) {
			r.stop()
			delete(inv.ahead, k)
		}
	}
}

// end releases the invocation's timers. Workers still posting for it (a poster that ignores its
// context) finish on their own; their results are no longer read.
func (inv *invocation) end() {
	inv.dropPrefetch(nil)
	inv.stopAfter()
	inv.cancel()
	inv.cancelPosts()
	inv.mu.Lock()
	if inv.timer != nil {
		inv.timer.Stop()
	}
	inv.mu.Unlock()
}

// await runs wait in a goroutine and returns when it returns, or at D−M/2 if that comes first;
// false then.
func (inv *invocation) await(wait func()) bool {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	if inv.finish.IsZero() {
		<-done
		return true
	}
	t := time.NewTimer(time.Until(inv.finish))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func (inv *invocation) stop() {
	inv.stopOnce.Do(func() {
		close(inv.stopCh)
		inv.wakeAll()
	})
}

func (inv *invocation) abandon() {
	inv.abandoned.Store(true)
	inv.wakeAll()
}

func (inv *invocation) wakeAll() {
	inv.mu.Lock()
	nodes := append([]*node(nil), inv.nodes...)
	inv.mu.Unlock()
	for _, n := range nodes {
		n.wake()
	}
}

func (inv *invocation) stopped() bool {
	select {
	case <-inv.stopCh:
		return true
	default:
		return false
	}
}

// over reports whether the invocation has stopped, checking the clock too: the stop timer may
// fire a little late, and no post may start after D−M.
func (inv *invocation) over() bool {
	return inv.stopped() || (!inv.hard.IsZero() && !time.Now().Before(inv.hard))
}

func (inv *invocation) add(n *node) {
	inv.mu.Lock()
	inv.nodes = append(inv.nodes, n)
	inv.mu.Unlock()
}

// tail is the context of the work done after the hard deadline (enqueueing what is left, saving
// progress): it ends a tenth of the margin before D−M/2 (a half margin from now without a
// deadline), so that when the registry or the queue does not answer, the record's outcome (and
// its reason) is known before the engine stops waiting for it at D−M/2.
func (inv *invocation) tail() (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(inv.work)
	if !inv.finish.IsZero() {
		return context.WithDeadline(base, inv.finish.Add(-inv.e.cfg.Margin/10))
	}
	return context.WithTimeout(base, inv.e.cfg.Margin/2)
}

// forget forgets a connection once per invocation; later subscriptions of it are skipped.
func (inv *invocation) forget(connID string, fn func(context.Context, string) error, why string) {
	inv.fmu.Lock()
	_, seen := inv.forgotten[connID]
	if !seen {
		inv.forgotten[connID] = struct{}{}
		inv.nForgot.Add(1)
	}
	inv.fmu.Unlock()
	if seen || fn == nil {
		return
	}
	if err := fn(inv.work, connID); err != nil {
		inv.log.Warn().Err(err).Str("conn", connID).Str("why", why).Msg("forget connection")
	}
}

func (inv *invocation) isForgotten(connID string) bool {
	if inv.nForgot.Load() == 0 {
		return false
	}
	inv.fmu.RLock()
	_, ok := inv.forgotten[connID]
	inv.fmu.RUnlock()
	return ok
}

func (inv *invocation) expires() time.Time { return time.Now().Add(inv.e.cfg.ProgressTTL) }
