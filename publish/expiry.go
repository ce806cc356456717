package publish

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/store"
)

// maxExpiryCache bounds the distinct principals whose expiry is remembered; past it the cache
// starts again.
const maxExpiryCache = 4096

// expiryCache remembers the expiry of each distinct principal JSON, so a principal shared by
// thousands of subscriptions is decoded once, and a lookup allocates nothing.
type expiryCache struct {
	mu sync.RWMutex
	m  map[string]int64 // principal JSON → exp (Unix seconds); 0: never; -1: unreadable
}

// expired is the engine's Expired hook: a subscription's principal (internal/auth's JSON, with
// exp in Unix seconds) has expired at now. No principal (anonymous) never expires; one that
// cannot be read counts as expired, so that it is never trusted.
func (f *Fanout) expired(s *store.Subscription, now time.Time) bool {
	if len(s.Principal) == 0 {
		return false
	}
	c := &f.expiry
	c.mu.RLock()
	exp, ok := c.m[string(s.Principal)]
	c.mu.RUnlock()
	if !ok {
		exp = principalExp(s.Principal)
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxExpiryCache {
			c.m = make(map[string]int64)
		}
		c.m[string(s.Principal)] = exp
		c.mu.Unlock()
	}
	switch {
	case exp == 0:
		return false
	case exp < 0:
		return true
	}
	return now.Unix() >= exp
}

// principalExp reads a principal's exp: 0 when it has none, -1 when it cannot be read.
func principalExp(raw json.RawMessage) int64 {
	var p auth.Principal
	if err := p.UnmarshalJSON(raw); err != nil {
		return -1
	}
	if p.Expires.IsZero() {
		return 0
	}
	return p.Expires.Unix()
}
