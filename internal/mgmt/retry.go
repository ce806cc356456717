package mgmt

import (
	"math/rand/v2"
	"time"
)

// Defaults of Retry; each applies when its field is zero.
const (
	// DefaultBase is the first backoff's ceiling. A 429 from API Gateway means its token bucket
	// (refilled at 10,000 requests/s per account and Region) is empty right now; it refills within
	// milliseconds, so the first retry should come soon.
	DefaultBase = 50 * time.Millisecond
	// DefaultCap bounds every backoff: once throttling ends, a waiting post resumes within 2 s,
	// and a 29 s budget still holds more than ten attempts.
	DefaultCap = 2 * time.Second
	// DefaultAttemptTimeout bounds one request. API Gateway answers a post in tens of
	// milliseconds (it does not wait for the client to read), so an attempt still unanswered
	// after 2 s is on a hung connection and is retried on another one.
	DefaultAttemptTimeout = 2 * time.Second
	// DefaultMargin is the time before the context's deadline at which retrying stops, left to
	// the caller to record what was not delivered and answer Lambda in time.
	DefaultMargin = time.Second
	// DefaultMaxElapsed bounds a call whose context has no deadline, as if it had one that far
	// from the first attempt: API Gateway's 29 s integration timeout, rounded up.
	DefaultMaxElapsed = 30 * time.Second
)

// Retry is a retry policy: throttling (429), server errors (5xx) and transport failures
// (timeouts, resets, refused connections) are retried with full-jitter exponential backoff for as
// long as the context's deadline allows, less Margin; 410, 403, 413 and other 4xx answers are
// never retried. There is no retry-token bucket: one call's retries never starve another's.
//
// The backoff before retry n (n = 1 after the first attempt) is drawn uniformly from
// [0, min(Cap, Base·2^(n-1))). Each attempt gets AttemptTimeout, cut short so that it never runs
// past the deadline less Margin, and no attempt starts, and no backoff is slept, past that point.
// A zero field takes its default.
type Retry struct {
	// Base is the ceiling of the first backoff, doubled at each retry; default DefaultBase.
	Base time.Duration
	// Cap bounds every backoff; default DefaultCap.
	Cap time.Duration
	// AttemptTimeout bounds each request; default DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// Margin: no attempt runs and no backoff is slept past the context's deadline less Margin;
	// default DefaultMargin. A negative Margin means none.
	Margin time.Duration
	// MaxElapsed stands in for the deadline when the context has none; default DefaultMaxElapsed.
	MaxElapsed time.Duration
	// MaxAttempts bounds the attempts; 0 (the default) means as many as the deadline allows.
	// When set it is also announced in the Amz-Sdk-Request header, as the SDK does.
	MaxAttempts int
}

// withDefaults returns r with each zero field set to its default.
func (r Retry) withDefaults() Retry {
	if r.Base <= 0 {
		r.Base = DefaultBase
	}
	if r.Cap <= 0 {
		r.Cap = DefaultCap
	}
	if r.Cap < r.Base {
		r.Cap = r.Base
	}
	if r.AttemptTimeout <= 0 {
		r.AttemptTimeout = DefaultAttemptTimeout
	}
	if r.Margin == 0 {
		r.Margin = DefaultMargin
	}
	if r.MaxElapsed <= 0 {
		r.MaxElapsed = DefaultMaxElapsed
	}
	if r.MaxAttempts < 0 {
		r.MaxAttempts = 0
	}
	return r
}

// margin is the time before the deadline at which retrying stops: Margin, none when negative.
// (A negative Margin stays negative in a policy with defaults, so that Client.Retry can be given
// back as it is.)
func (r Retry) margin() time.Duration { return max(r.Margin, 0) }

// ceiling is the upper bound of the backoff before retry n (n ≥ 1): min(Cap, Base·2^(n-1)).
func (r Retry) ceiling(n int) time.Duration {
	d := r.Base
	for i := 1; i < n && d < r.Cap; i++ {
		d *= 2
	}
	return min(d, r.Cap)
}

// fullJitter draws a backoff uniformly from [0, ceil).
func fullJitter(ceil time.Duration) time.Duration {
	if ceil <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceil)))
}
