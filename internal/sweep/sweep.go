// Package sweep removes stale connections on a schedule, so nothing needs a timer per connection.
//
// Each run lists every connection record and removes, with its subscriptions, each one that
//
//   - is older than the maximum connection duration (API Gateway closes at 2 hours) or expired;
//   - is still waiting for connection_init after the init timeout (the lazy check on the next
//     message cannot catch a client that sends nothing);
//   - has a principal whose token has expired (it receives nothing more: the fan-out skips it, and
//     its next message closes it; this closes the ones that stay silent);
//   - has been idle longer than the idle timeout (API Gateway closes at 10 minutes), as confirmed
//     by the management API: a connection whose record looks idle is looked up (GetConnection); if
//     it is gone, or API Gateway also saw nothing for that long, it is removed, otherwise its
//     activity is recorded and it stays.
//
// Removing closes the socket through the management API (a gone one is fine), then deletes the
// records. $disconnect is best effort on AWS: this is what catches the ones that never arrive.
// The management API is Config.Gateway (Get, Delete), which internal/mgmt's client satisfies: the
// binary's one client, shared with the fan-out and the WebSocket routes.
package sweep

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/emf"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// Registry is the part of the store the sweeper uses.
type Registry interface {
	Connections(ctx context.Context) iter.Seq2[store.Connection, error]
	Connection(ctx context.Context, id string) (store.Connection, error)
	TouchConnection(ctx context.Context, id string, at time.Time) error
	DeleteConnection(ctx context.Context, id string) error
}

// Gateway is the part of API Gateway's management API the sweeper uses: looking a connection up
// and closing it. *mgmt.Client satisfies it; a connection API Gateway no longer knows fails with
// an error matching mgmt.ErrGone.
type Gateway interface {
	// Get describes a connection (GetConnection); a zero LastActiveAt means none was reported.
	Get(ctx context.Context, connID string) (mgmt.Info, error)
	// Delete closes a connection (DeleteConnection).
	Delete(ctx context.Context, connID string) error
}

// Config holds the Sweeper's dependencies and limits.
type Config struct {
	Registry Registry
	Gateway  Gateway
	// InitTimeout is how long a connection may wait for connection_init; default
	// facts.InitTimeout.
	InitTimeout time.Duration
	// IdleTimeout is API Gateway's idle timeout; default facts.IdleTimeout.
	IdleTimeout time.Duration
	// MaxDuration is API Gateway's maximum connection duration; default facts.MaxDuration.
	MaxDuration time.Duration
	// Concurrency bounds management API calls in flight; default 16.
	Concurrency int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Metrics receives one EMF line per run (namespace Namespace, dimension Source=sweep); nil
	// prints none.
	Metrics io.Writer
	// Namespace is the metrics' CloudWatch namespace; default emf.Namespace.
	Namespace string
}

// Sweeper removes stale connections.
type Sweeper struct {
	cfg Config
}

// New returns a Sweeper.
func New(cfg Config) *Sweeper {
	cfg.InitTimeout = cmp.Or(cfg.InitTimeout, facts.InitTimeout)
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, facts.IdleTimeout)
	cfg.MaxDuration = cmp.Or(cfg.MaxDuration, facts.MaxDuration)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 16)
	cfg.Namespace = cmp.Or(cfg.Namespace, emf.Namespace)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sweeper{cfg: cfg}
}

// Stats counts what one run did.
type Stats struct {
	Scanned     int
	Expired     int64 // past the maximum duration or the TTL
	InitTimeout int64
	Principal   int64 // their principal's token expired
	Idle        int64 // idle per API Gateway too
	Gone        int64 // API Gateway no longer knew them
	Refreshed   int64 // looked idle here, but API Gateway saw activity
	Failed      int64
}

// Removed is the number of connections removed.
func (st Stats) Removed() int64 {
	return st.Expired + st.InitTimeout + st.Principal + st.Idle + st.Gone
}

// Metrics are the run's EMF metrics; took is how long it ran.
func (st Stats) Metrics(took time.Duration) []emf.Metric {
	return []emf.Metric{
		{Name: "Scanned", Unit: "Count", Value: float64(st.Scanned)},
		{Name: "Removed", Unit: "Count", Value: float64(st.Removed())},
		{Name: "ExpiredConnections", Unit: "Count", Value: float64(st.Expired)},
		{Name: "InitTimeout", Unit: "Count", Value: float64(st.InitTimeout)},
		{Name: "PrincipalExpired", Unit: "Count", Value: float64(st.Principal)},
		{Name: "Idle", Unit: "Count", Value: float64(st.Idle)},
		{Name: "GoneConnections", Unit: "Count", Value: float64(st.Gone)},
		{Name: "Refreshed", Unit: "Count", Value: float64(st.Refreshed)},
		{Name: "SweepFailed", Unit: "Count", Value: float64(st.Failed)},
		{Name: "Duration", Unit: "Milliseconds", Value: emf.Milliseconds(took)},
	}
}

// outcome is what a run did with one connection.
type outcome int

const (
	kept             outcome = iota // not stale
	expired                         // past the maximum duration or the TTL: removed
	initTimeout                     // no connection_init within the init timeout: removed
	principalExpired                // its principal's token expired: removed
	idle                            // idle here and at API Gateway: removed
	gone                            // API Gateway no longer knows it: removed
	refreshed                       // idle here, active at API Gateway: its activity recorded, kept
	failed                          // stale, but removing it failed
	outcomes                        // the number of outcomes
)

func (o outcome) String() string {
	return [...]string{"kept", "expired", "init timeout", "principal expired", "idle", "gone", "refreshed", "failed"}[o]
}

// HandleSchedule is the handler of the scheduled event.
func (s *Sweeper) HandleSchedule(ctx context.Context, _ events.EventBridgeEvent) error {
	_, err := s.Sweep(ctx)
	return err
}

// Sweep runs once. It returns an error only if the connections could not be listed; a failure
// to remove one connection is counted and logged, and the run goes on.
func (s *Sweeper) Sweep(ctx context.Context) (Stats, error) {
	log := zerolog.Ctx(ctx)
	start := time.Now()
	now := s.cfg.Now()
	var st Stats
	var counts [outcomes]atomic.Int64
	var g errgroup.Group
	g.SetLimit(s.cfg.Concurrency)
	var listErr error
	for c, err := range s.cfg.Registry.Connections(ctx) {
		if err != nil {
			listErr = err
			break
		}
		st.Scanned++
		if s.stale(c, now) == kept {
			continue
		}
		g.Go(func() error {
			counts[s.sweepOne(ctx, c, now)].Add(1)
			return nil
		})
	}
	g.Wait()
	st.Expired, st.InitTimeout, st.Idle, st.Gone = counts[expired].Load(), counts[initTimeout].Load(), counts[idle].Load(), counts[gone].Load()
	st.Principal = counts[principalExpired].Load()
	st.Refreshed, st.Failed = counts[refreshed].Load(), counts[failed].Load()
	e := log.Debug()
	if st.Removed() > 0 || st.Failed > 0 {
		e = log.Info()
	}
	e.Int("scanned", st.Scanned).Int64("expired", st.Expired).Int64("initTimeout", st.InitTimeout).Int64("principalExpired", st.Principal).
		Int64("idle", st.Idle).Int64("gone", st.Gone).Int64("refreshed", st.Refreshed).Int64("failed", st.Failed).Msg("swept connections")
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Write(append(emf.Line(s.cfg.Namespace, map[string]string{"Source": "sweep"}, start, st.Metrics(time.Since(start))), '\n'))
	}
	if listErr != nil {
		return st, fmt.Errorf("sweep: list connections: %w", listErr)
	}
	return st, nil
}

// stale tells, from the listing alone, why a connection may be stale: expired, initTimeout, idle
// (to be confirmed with API Gateway), or kept.
func (s *Sweeper) stale(c store.Connection, now time.Time) outcome {
	switch {
	case !store.Live(c.ExpiresAt, now) || now.Sub(c.ConnectedAt) > s.cfg.MaxDuration:
		return expired
	case c.State == store.StatePending && now.Sub(c.ConnectedAt) > s.cfg.InitTimeout:
		return initTimeout
	case auth.ExpiredJSON(c.Principal, now):
		return principalExpired
	case now.Sub(c.LastActive()) > s.cfg.IdleTimeout:
		return idle
	}
	return kept
}

// sweepOne confirms that a connection the listing shows stale is stale, and removes it.
func (s *Sweeper) sweepOne(ctx context.Context, c store.Connection, now time.Time) outcome {
	reason := s.stale(c, now)
	switch reason {
	case idle:
		reason = s.confirmIdle(ctx, c, now)
	case initTimeout:
		// The listing may be stale: an init acknowledged a moment ago must not be undone.
		if cur, err := s.cfg.Registry.Connection(ctx, c.ID); err == nil && cur.State != store.StatePending {
			reason = kept
		}
	}
	if reason == kept || reason == refreshed {
		return reason
	}
	if err := s.remove(ctx, c.ID); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("conn", c.ID).Stringer("reason", reason).Msg("sweep: remove connection")
		return failed
	}
	return reason
}

// confirmIdle asks API Gateway about a connection that looks idle here: idle or gone (remove
// it), refreshed (API Gateway saw activity, now recorded), or kept (API Gateway could not be
// asked).
func (s *Sweeper) confirmIdle(ctx context.Context, c store.Connection, now time.Time) outcome {
	info, err := s.cfg.Gateway.Get(ctx, c.ID)
	switch {
	case errors.Is(err, mgmt.ErrGone):
		return gone
	case err != nil:
		zerolog.Ctx(ctx).Warn().Err(err).Str("conn", c.ID).Msg("sweep: look up connection")
		return kept
	case !info.LastActiveAt.IsZero() && now.Sub(info.LastActiveAt) <= s.cfg.IdleTimeout:
		if err := s.cfg.Registry.TouchConnection(ctx, c.ID, info.LastActiveAt); err != nil && !errors.Is(err, store.ErrNotFound) {
			zerolog.Ctx(ctx).Warn().Err(err).Str("conn", c.ID).Msg("sweep: record activity")
		}
		return refreshed
	}
	return idle
}

// remove closes a socket and forgets it. A socket that cannot be closed is forgotten anyway: API
// Gateway closes it at its own limits, and a message on a forgotten connection is answered by
// closing it.
func (s *Sweeper) remove(ctx context.Context, id string) error {
	if err := s.cfg.Gateway.Delete(ctx, id); err != nil && !errors.Is(err, mgmt.ErrGone) {
		zerolog.Ctx(ctx).Warn().Err(err).Str("conn", id).Msg("sweep: close connection")
	}
	return s.cfg.Registry.DeleteConnection(ctx, id)
}
