// Package local is the local runtime: on one port it emulates API Gateway (WebSocket API, HTTP API, the @connections management API) and Lambda's DynamoDB stream poller, driving the same handler with the same event JSON AWS sends.
//
// It sees only the handler (Invoke, as Lambda calls it) and a change log to poll; never the
// GraphQL layer or the store's internals.
//
//	ws://ADDR/graphql            every connect, frame and close becomes the APIGatewayWebsocketProxyRequest
//	                             API Gateway would send; the $connect response decides the handshake and
//	                             its Sec-WebSocket-Protocol header the subprotocol; a route response body
//	                             is sent back as a message
//	GET|POST http://ADDR/graphql an HTTP API payload 2.0 event
//	GET / and /demo, GET /graphql from a browser
//	                             the pages (Config.Pages: GraphiQL and the demo), when set
//	POST|GET|DELETE /@connections/{id}
//	                             the management API, with API Gateway's status codes and error shapes,
//	                             so the real SDK client can be pointed at it
//	stream                       a poller reads the change log in order, invokes the handler with
//	                             DynamoDB stream batches, keeps a durable checkpoint and honours
//	                             batchItemFailures (retry from the reported record, bounded, then skip)
//
// Invocations run concurrently, as on AWS: two frames of one connection may be handled at once.
package local

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Handler is the Lambda handler the runtime drives.
type Handler interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// A Record is one stream record of a change log.
type Record struct {
	// Seq orders records; it is the record's SequenceNumber.
	Seq uint64
	// JSON is the record as it appears in a DynamoDB event's Records.
	JSON json.RawMessage
}

// ChangeLog is the durable change log the stream poller reads.
type ChangeLog interface {
	// Changed returns a channel closed when a record is appended after the call.
	Changed() <-chan struct{}
	// ReadChanges returns up to limit records after seq, in order.
	ReadChanges(ctx context.Context, after uint64, limit int) ([]Record, error)
	// Checkpoint and SetCheckpoint keep the poller's durable position.
	Checkpoint(ctx context.Context, name string) (uint64, error)
	SetCheckpoint(ctx context.Context, name string, seq uint64) error
}

// Pages are what the runtime serves browsers besides the API (package web: GraphiQL, the demo).
type Pages interface {
	http.Handler
	// Serves reports whether r is for a page rather than for the API.
	Serves(r *http.Request) bool
}

// Config configures a Runtime. Zero values take the documented defaults.
type Config struct {
	Handler Handler
	// Stream is the change log to poll; nil runs no poller.
	Stream ChangeLog
	// Pages, when set, serves every request it Serves that is neither a WebSocket upgrade nor the
	// management API, ahead of the HTTP API; nil serves no pages (a browser's GET / is 404).
	Pages Pages
	// Log is the runtime's logger.
	Log zerolog.Logger

	// Stage is the WebSocket API's stage name in events; default "local".
	Stage string
	// APIID is the API id in events; default "local".
	APIID string
	// InvokeTimeout bounds one invocation, API Gateway's integration timeout; default 29s.
	InvokeTimeout time.Duration
	// MaxConcurrency bounds invocations in flight, as Lambda's account concurrency; default 1000.
	MaxConcurrency int

	// MaxMessage is the largest WebSocket message in either direction; default 128 KiB. A larger
	// inbound message closes the connection with 1009; a larger post answers 413.
	MaxMessage int64
	// MaxFrame is the largest inbound WebSocket frame; default 32 KiB. A larger one closes the
	// connection with 1009.
	MaxFrame int64
	// IdleTimeout closes a connection that has sent no message for this long, with 1001;
	// default 10 minutes.
	IdleTimeout time.Duration
	// MaxDuration closes a connection this old, with 1001; default 2 hours.
	MaxDuration time.Duration
	// ScheduleInterval is how often the handler gets the sweeper's scheduled event; default 1
	// minute, the schedule in serverless.yml.
	ScheduleInterval time.Duration

	// BatchSize is the stream batch size; default 100.
	BatchSize int
	// MaxRetries is how often a failing stream record is retried before it is logged and
	// skipped; default 5.
	MaxRetries int
	// RetryBackoff is the first retry's pause, doubled each retry up to 5s; default 200ms.
	RetryBackoff time.Duration
	// PollInterval is how often the poller looks for records when not woken; default 250ms,
	// Lambda's rate.
	PollInterval time.Duration
}

func (c *Config) defaults() {
	if c.Stage == "" {
		c.Stage = "local"
	}
	if c.APIID == "" {
		c.APIID = "local"
	}
	if c.InvokeTimeout <= 0 {
		c.InvokeTimeout = 29 * time.Second
	}
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = 1000
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = 128 * 1024
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = 32 * 1024
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = 2 * time.Hour
	}
	if c.ScheduleInterval <= 0 {
		c.ScheduleInterval = time.Minute
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = 5
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 200 * time.Millisecond
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 250 * time.Millisecond
	}
}

// Runtime is the local runtime.
type Runtime struct {
	cfg   Config
	log   zerolog.Logger
	slots chan struct{} // invocation concurrency

	mu       sync.Mutex
	conns    map[string]*wsConn
	stopping bool // set at shutdown: no new socket loops start

	inflight sync.WaitGroup // socket loops and the invocations they start
}

// register adds an open socket and its loop; it reports false once shutdown has begun. The check
// and the registration are one step under the lock that shutdown takes to set stopping and list the
// sockets to close, so no socket can slip in between.
func (rt *Runtime) register(c *wsConn) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.stopping {
		return false
	}
	rt.inflight.Add(1)
	rt.conns[c.id] = c
	return true
}

// New returns a Runtime.
func New(cfg Config) *Runtime {
	cfg.defaults()
	return &Runtime{cfg: cfg, log: cfg.Log, slots: make(chan struct{}, cfg.MaxConcurrency), conns: map[string]*wsConn{}}
}

// Serve serves on ln until ctx is done, then shuts down cleanly: it stops accepting, closes every
// socket (each sends its $disconnect), lets in-flight invocations and the current stream batch
// finish, and returns.
func (rt *Runtime) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           rt,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	stopPoller := make(chan struct{})
	pollerDone := make(chan struct{})
	go func() {
		defer close(pollerDone)
		if rt.cfg.Stream != nil {
			rt.pollStream(stopPoller)
		}
	}()
	stopTimers := make(chan struct{})
	var timers sync.WaitGroup
	timers.Go(func() { rt.enforceLimits(stopTimers) })
	timers.Go(func() { rt.runSchedule(stopTimers) })
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	close(stopTimers)
	timers.Wait()
	srv.Shutdown(shutdownCtx)
	rt.closeAll() // sets stopping
	close(stopPoller)
	<-pollerDone
	done := make(chan struct{})
	go func() { rt.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-shutdownCtx.Done():
		rt.log.Warn().Msg("shutdown: invocations still running after 10s")
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// ServeHTTP routes the runtime's endpoints.
func (rt *Runtime) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	switch {
	case strings.Contains(path, "/@connections/"):
		rt.serveConnections(w, r, path[strings.Index(path, "/@connections/")+len("/@connections/"):])
	case path == "/graphql" && isUpgrade(r):
		rt.serveWebSocket(w, r)
	case rt.cfg.Pages != nil && !isUpgrade(r) && rt.cfg.Pages.Serves(r):
		rt.cfg.Pages.ServeHTTP(w, r)
	case path == "/graphql":
		rt.serveHTTPAPI(w, r)
	default:
		writeAPIError(w, http.StatusNotFound, "NotFoundException", "Not Found")
	}
}

// invoke runs the handler with the integration timeout, within the concurrency limit.
func (rt *Runtime) invoke(ctx context.Context, payload []byte) ([]byte, error) {
	rt.slots <- struct{}{}
	defer func() { <-rt.slots }()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rt.cfg.InvokeTimeout)
	defer cancel()
	return rt.cfg.Handler.Invoke(ctx, payload)
}

// newID returns an id shaped like API Gateway's (12 base64 characters and "=").
func newID() string {
	b := make([]byte, 9)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b) + "="
}

func bgContext() context.Context { return context.Background() }

func requestTime(t time.Time) string { return t.UTC().Format("02/Jan/2006:15:04:05 -0700") }

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
