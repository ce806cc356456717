// Package sweep removes stale connections on a schedule, so nothing needs a timer per connection.
//
// Each run lists every connection record and removes, with its subscriptions, each one that
//
//   - is older than the maximum connection duration (API Gateway closes at 2 hours) or expired;
//   - is still waiting for connection_init after the init timeout (the lazy check on the next
//     message cannot catch a client that sends nothing);
//   - has been idle longer than the idle timeout (API Gateway closes at 10 minutes), as confirmed
//     by the management API: a connection whose record looks idle is looked up (GetConnection); if
//     it is gone, or API Gateway also saw nothing for that long, it is removed, otherwise its
//     activity is recorded and it stays.
//
// Removing closes the socket through the management API (a gone one is fine), then deletes the
// records. $disconnect is best effort on AWS: this is what catches the ones that never arrive.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
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

// Connections is the part of the management API the sweeper uses; *apigatewaymanagementapi.Client
// satisfies it.
type Connections interface {
	GetConnection(ctx context.Context, in *apigatewaymanagementapi.GetConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.GetConnectionOutput, error)
	DeleteConnection(ctx context.Context, in *apigatewaymanagementapi.DeleteConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.DeleteConnectionOutput, error)
}

// Config holds the Sweeper's dependencies and limits.
type Config struct {
	Registry    Registry
	Connections Connections
	// InitTimeout is how long a connection may wait for connection_init; default 3s.
	InitTimeout time.Duration
	// IdleTimeout is API Gateway's idle timeout; default 10 minutes.
	IdleTimeout time.Duration
	// MaxDuration is API Gateway's maximum connection duration; default 2 hours.
	MaxDuration time.Duration
	// Concurrency bounds management API calls in flight; default 16.
	Concurrency int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Sweeper removes stale connections.
type Sweeper struct {
	cfg Config
}

// New returns a Sweeper.
func New(cfg Config) *Sweeper {
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = 3 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = 2 * time.Hour
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
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
	Idle        int64 // idle per API Gateway too
	Gone        int64 // API Gateway no longer knew them
	Refreshed   int64 // looked idle here, but API Gateway saw activity
	Failed      int64
}

// Removed is the number of connections removed.
func (st Stats) Removed() int64 { return st.Expired + st.InitTimeout + st.Idle + st.Gone }

// HandleSchedule is the handler of the scheduled event.
func (s *Sweeper) HandleSchedule(ctx context.Context, _ events.EventBridgeEvent) error {
	_, err := s.Sweep(ctx)
	return err
}

// Sweep runs once. It returns an error only if the connections could not be listed; a failure
// to remove one connection is counted and logged, and the run goes on.
func (s *Sweeper) Sweep(ctx context.Context) (Stats, error) {
	log := zerolog.Ctx(ctx)
	now := s.cfg.Now()
	var st Stats
	var expired, initTimeout, idle, gone, refreshed, failed atomic.Int64
	var g errgroup.Group
	g.SetLimit(s.cfg.Concurrency)
	var listErr error
	for c, err := range s.cfg.Registry.Connections(ctx) {
		if err != nil {
			listErr = err
			break
		}
		st.Scanned++
		var counter *atomic.Int64
		switch {
		case !store.Live(c.ExpiresAt, now) || now.Sub(c.ConnectedAt) > s.cfg.MaxDuration:
			counter = &expired
		case c.State == store.StatePending && now.Sub(c.ConnectedAt) > s.cfg.InitTimeout:
			counter = &initTimeout
		case now.Sub(c.LastActive()) > s.cfg.IdleTimeout:
			// Confirm with API Gateway below.
		default:
			continue
		}
		g.Go(func() error {
			reason := "expired"
			switch {
			case counter == nil:
				var keep bool
				counter, reason, keep = s.confirmIdle(ctx, c, now, &idle, &gone, &refreshed)
				if keep {
					return nil
				}
			case counter == &initTimeout:
				// The listing may be stale: an init acknowledged a moment ago must not be undone.
				cur, err := s.cfg.Registry.Connection(ctx, c.ID)
				if err == nil && cur.State != store.StatePending {
					return nil
				}
				reason = "init timeout"
			}
			if err := s.remove(ctx, c.ID); err != nil {
				failed.Add(1)
				log.Warn().Err(err).Str("conn", c.ID).Str("reason", reason).Msg("sweep: remove connection")
				return nil
			}
			counter.Add(1)
			return nil
		})
	}
	g.Wait()
	st.Expired, st.InitTimeout, st.Idle, st.Gone = expired.Load(), initTimeout.Load(), idle.Load(), gone.Load()
	st.Refreshed, st.Failed = refreshed.Load(), failed.Load()
	e := log.Debug()
	if st.Removed() > 0 || st.Failed > 0 {
		e = log.Info()
	}
	e.Int("scanned", st.Scanned).Int64("expired", st.Expired).Int64("initTimeout", st.InitTimeout).
		Int64("idle", st.Idle).Int64("gone", st.Gone).Int64("refreshed", st.Refreshed).Int64("failed", st.Failed).Msg("swept connections")
	if listErr != nil {
		return st, fmt.Errorf("sweep: list connections: %w", listErr)
	}
	return st, nil
}

// confirmIdle asks API Gateway about a connection that looks idle here. It reports which counter
// a removal counts under, or keep.
func (s *Sweeper) confirmIdle(ctx context.Context, c store.Connection, now time.Time,
	idle, gone, refreshed *atomic.Int64) (counter *atomic.Int64, reason string, keep bool) {
	out, err := s.cfg.Connections.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: &c.ID})
	var goneErr *types.GoneException
	switch {
	case errors.As(err, &goneErr):
		return gone, "gone", false
	case err != nil:
		zerolog.Ctx(ctx).Warn().Err(err).Str("conn", c.ID).Msg("sweep: look up connection")
		return nil, "", true
	case out.LastActiveAt != nil && now.Sub(*out.LastActiveAt) <= s.cfg.IdleTimeout:
		if err := s.cfg.Registry.TouchConnection(ctx, c.ID, *out.LastActiveAt); err != nil && !errors.Is(err, store.ErrNotFound) {
			zerolog.Ctx(ctx).Warn().Err(err).Str("conn", c.ID).Msg("sweep: record activity")
		}
		refreshed.Add(1)
		return nil, "", true
	}
	return idle, "idle", false
}

// remove closes a socket and forgets it. A socket that cannot be closed is forgotten anyway: API
// Gateway closes it at its own limits, and a message on a forgotten connection is answered by
// closing it.
func (s *Sweeper) remove(ctx context.Context, id string) error {
	_, err := s.cfg.Connections.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: &id})
	var gone *types.GoneException
	if err != nil && !errors.As(err, &gone) {
		zerolog.Ctx(ctx).Warn().Err(err).Str("conn", id).Msg("sweep: close connection")
	}
	return s.cfg.Registry.DeleteConnection(ctx, id)
}
