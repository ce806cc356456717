package publish

import (
	"context"
	"sync"
	"time"

	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/filter"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/rs/zerolog"
)

// maxExpiryCache bounds the distinct principals whose expiry is remembered; past it the cache
// starts again.
const maxExpiryCache = 4096

// expiryCache remembers each distinct principal JSON decoded, so a principal shared by thousands
// of subscriptions is decoded once, and a lookup allocates nothing.
type expiryCache struct {
	mu sync.RWMutex
	m  map[string]principalExpiry
}

// principalExpiry is a stored principal as the expiry rule reads it.
type principalExpiry struct {
	p          auth.Principal
	unreadable bool
}

// expired is the engine's Expired hook: auth.ExpiredJSON's rule (no principal, the anonymous
// one, never expires; one that cannot be read counts as expired, so that it is never trusted;
// any other expires at its exp), with each distinct principal decoded once.
func (f *Fanout) expired(s *store.Subscription, now time.Time) bool {
	if len(s.Principal) == 0 {
		return false
	}
	c := &f.expiry
	c.mu.RLock()
	e, ok := c.m[string(s.Principal)]
	c.mu.RUnlock()
	if !ok {
		e.unreadable = e.p.UnmarshalJSON(s.Principal) != nil
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxExpiryCache {
			c.m = make(map[string]principalExpiry)
		}
		c.m[string(s.Principal)] = e
		c.mu.Unlock()
	}
	return e.unreadable || e.p.Expired(now)
}

// compiled is one distinct stored filter, compiled for the event being delivered.
type compiled struct {
	once sync.Once
	f    *filter.Filter
	err  error
}

// match is one event's filter test (the engine's Match hook makes one per event and invocation):
// the payload is decoded once, when the first filtered subscriber comes, and each distinct filter
// compiled once; matching a candidate then allocates nothing.
type match struct {
	f       *Fanout
	log     *zerolog.Logger
	ev      *fanout.Event
	docOnce sync.Once
	doc     *filter.Doc
	docErr  error
	mu      sync.Mutex
	filters map[string]*compiled // by filter key
}

// matcher is the engine's Match hook.
func (f *Fanout) matcher(ctx context.Context, ev *fanout.Event) func(*store.Subscription) bool {
	m := &match{f: f, log: zerolog.Ctx(ctx), ev: ev, filters: map[string]*compiled{}}
	return m.pass
}

// pass reports whether the event passes the subscription's filter, matched before anything is
// rendered. A filter that no longer compiles (the schema changed since the subscription was
// stored) or a payload that cannot be matched keeps the event from the subscriber, with one log
// line per filter or event.
func (m *match) pass(s *store.Subscription) bool {
	if s.Filter == "" {
		return true
	}
	m.docOnce.Do(func() {
		if m.doc, m.docErr = filter.NewDoc(m.ev.Payload); m.docErr != nil {
			m.log.Error().Err(m.docErr).Str("event", m.ev.ID).Str("topic", m.ev.Topic).
				Msg("payload cannot be matched with filters; filtered subscribers skipped")
		}
	})
	if m.docErr != nil {
		return false
	}
	m.mu.Lock()
	c, ok := m.filters[s.Filter]
	if !ok {
		c = &compiled{}
		m.filters[s.Filter] = c
	}
	m.mu.Unlock()
	c.once.Do(func() {
		if c.f, c.err = m.f.cfg.Sources.Filter(m.ev.Field, s.Filter); c.err != nil {
			m.log.Error().Err(c.err).Str("event", m.ev.ID).Str("topic", m.ev.Topic).
				Msg("stored filter does not compile; its subscribers skipped")
		}
	})
	return c.err == nil && c.f.Match(m.doc)
}
