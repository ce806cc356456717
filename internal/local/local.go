// Package local is the local runtime: on one port it emulates API Gateway (WebSocket API, HTTP API, the @connections management API), Lambda's DynamoDB stream poller, SQS queues with their event source mappings and the Lambda runtime interface emulator's invoke endpoint, driving the same handler with the same event JSON AWS sends.
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
//	                             so the real SDK client can be pointed at it; as on AWS, only requests
//	                             SigV4-signed with the configured credentials are served (403 otherwise)
//	POST /2015-03-31/functions/function/invocations
//	                             the invoke endpoint of the Lambda runtime interface emulator: any
//	                             event JSON (EventBridge, SQS, SNS, ...) goes to the handler as it is,
//	                             and the answer is the handler's response or a function error, as the
//	                             emulator answers
//	stream                       a poller reads the change log in order, invokes the handler with
//	                             DynamoDB stream batches, keeps a durable checkpoint and honours
//	                             batchItemFailures (retry from the reported record, bounded, then skip)
//	POST / (X-Amz-Target: AmazonSQS.*)
//	                             SQS queues (Config.Queues) for the real SDK client, consumed by invoking
//	                             the handler with SQS events, honouring batchItemFailures (see sqs.go)
//
// A post is accepted without waiting for its client to read it: each connection has a bounded
// outbound queue and a writer; a connection whose client stops reading until the queue
// overflows is closed with 1008, and later posts to it answer 410.
//
// Invocations run concurrently, as on AWS: two frames of one connection may be handled at once,
// up to MaxInflight per connection; further frames wait to be read (backpressure on the flooder
// alone). An HTTP request whose client goes away cancels its invocation's context. A body over
// MaxHTTPBody is refused by its Content-Length before it is read.
// Each carries a lambdacontext with a request id of its own, as Lambda's do, so the handler's logs
// name it. Everything the runtime starts (socket loops, invocations, the poller, the limit
// enforcer, the schedule) ends before Serve returns.
package local

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/realtime-gql/lambdaws/internal/cors"
	"github.com/realtime-gql/lambdaws/internal/facts"
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
	// InvokeTimeout bounds one invocation; default facts.IntegrationTimeout.
	InvokeTimeout time.Duration
	// MaxConcurrency bounds invocations in flight, as Lambda's account concurrency; default 1000.
	MaxConcurrency int
	// MaxInflight bounds one connection's frames being handled at once, pings included; default
	// DefaultMaxInflight. A connection with that many waits: its next frame is not read until one
	// ends, so a flood slows the flooder alone.
	MaxInflight int
	// MaxHTTPBody is the largest HTTP request body passed to the handler; default
	// facts.MaxHTTPPayload (API Gateway's). A larger one is refused with 413 by its
	// Content-Length, before it is read, or as soon as reading passes it.
	MaxHTTPBody int64
	// CORSOrigins are the origins the HTTP API answers cross-origin requests from, preflight
	// included, as API Gateway's CorsConfiguration does (internal/cors).
	CORSOrigins []string
	// Credentials are the only ones the management API accepts: a request must be SigV4-signed
	// with them (service execute-api, Region Region), as API Gateway checks IAM. Required.
	Credentials aws.Credentials
	// Region is the Region of the signatures; default Region.
	Region string

	// MaxMessage is the largest WebSocket message in either direction; default facts.MaxMessage.
	// A larger inbound message closes the connection with 1009; a larger post answers 413.
	MaxMessage int64
	// MaxFrame is the largest inbound WebSocket frame; default facts.MaxFrame. A larger one
	// closes the connection with 1009.
	MaxFrame int64
	// MaxOutbound and MaxOutboundBytes bound the messages a connection holds for its client,
	// accepted (a post answers at once, as API Gateway's does) and not yet written; defaults
	// 1024 messages and 1 MiB. A post past either closes the connection with 1008 (the client is
	// not reading) and answers 410, as do later posts.
	MaxOutbound      int
	MaxOutboundBytes int64
	// WriteTimeout bounds one write to a client: a client that reads nothing for this long
	// loses its connection (dropped, as a dead peer is) even if its outbound queue never fills;
	// default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout closes a connection that has sent no message for this long, with 1001;
	// default facts.IdleTimeout.
	IdleTimeout time.Duration
	// MaxDuration closes a connection this old, with 1001; default facts.MaxDuration.
	MaxDuration time.Duration
	// ScheduleInterval is how often the handler gets the sweeper's scheduled event; default
	// facts.ScheduleRate, the schedule in serverless.yml.
	ScheduleInterval time.Duration
	// ShutdownGrace is how long Serve waits, once ctx is done, for invocations to finish before it
	// cancels their contexts (it still waits for them to return); default 10s.
	ShutdownGrace time.Duration

	// Queues are the SQS queues the runtime emulates (see QueueURL), each consumed by the
	// handler as an event source mapping with ReportBatchItemFailures does; none by default.
	Queues []QueueConfig

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
	c.InvokeTimeout = cmp.Or(c.InvokeTimeout, facts.IntegrationTimeout)
	c.MaxConcurrency = cmp.Or(c.MaxConcurrency, 1000)
	c.MaxInflight = cmp.Or(c.MaxInflight, DefaultMaxInflight)
	c.MaxHTTPBody = cmp.Or(c.MaxHTTPBody, facts.MaxHTTPPayload)
	c.Region = cmp.Or(c.Region, Region)
	c.MaxMessage = cmp.Or(c.MaxMessage, facts.MaxMessage)
	c.MaxFrame = cmp.Or(c.MaxFrame, facts.MaxFrame)
	c.MaxOutbound = cmp.Or(c.MaxOutbound, 1024)
	c.MaxOutboundBytes = max(cmp.Or(c.MaxOutboundBytes, 1<<20), c.MaxMessage)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, facts.IdleTimeout)
	c.MaxDuration = cmp.Or(c.MaxDuration, facts.MaxDuration)
	c.ScheduleInterval = cmp.Or(c.ScheduleInterval, facts.ScheduleRate)
	c.ShutdownGrace = cmp.Or(c.ShutdownGrace, 10*time.Second)
	c.BatchSize = cmp.Or(c.BatchSize, 100)
	c.MaxRetries = cmp.Or(c.MaxRetries, 5)
	c.RetryBackoff = cmp.Or(c.RetryBackoff, 200*time.Millisecond)
	c.PollInterval = cmp.Or(c.PollInterval, 250*time.Millisecond)
}

// DefaultMaxInflight is how many frames of one connection are handled at once by default.
const DefaultMaxInflight = 8

// DefaultWriteTimeout is how long one write to a client may take by default.
const DefaultWriteTimeout = 10 * time.Second

// Runtime is the local runtime.
type Runtime struct {
	cfg     Config
	log     zerolog.Logger
	slots   chan struct{} // invocation concurrency
	httpAPI http.Handler  // the HTTP API, behind its CORS policy
	queues  map[string]*sqsQueue

	outboundPeak atomic.Int64 // see OutboundPeak

	// signer recomputes the management API's signatures; one for the process, so that its
	// cache of derived signing keys (one per day, Region and service) is warm.
	signer *v4.Signer

	mu       sync.Mutex
	conns    map[string]*wsConn
	stopping bool // set at shutdown: no new socket loops start
	stopped  bool // set once every source of work has ended: nothing new is tracked

	sockets  sync.WaitGroup // socket loops (each ends with its $disconnect invocation)
	inflight sync.WaitGroup // work started outside the socket loops: see track

	// invocations is the parent context of every invocation; cancelled only when invocations
	// outlast the shutdown grace period.
	invocations      context.Context
	abortInvocations context.CancelFunc
}

// New returns a Runtime.
func New(cfg Config) *Runtime {
	cfg.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	rt := &Runtime{cfg: cfg, log: cfg.Log, slots: make(chan struct{}, cfg.MaxConcurrency), conns: map[string]*wsConn{},
		queues: map[string]*sqsQueue{}, invocations: ctx, abortInvocations: cancel, signer: v4.NewSigner()}
	for _, qc := range cfg.Queues {
		rt.queues[qc.Name] = newSQSQueue(qc)
	}
	rt.httpAPI = cors.New(cfg.CORSOrigins).Handler(http.HandlerFunc(rt.serveHTTPAPI))
	return rt
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
	rt.sockets.Add(1)
	rt.conns[c.id] = c
	return true
}

// track counts one piece of work that the socket loops, the poller and the schedule do not own
// (an HTTP request's invocation, a frame's invocation, a close handshake) until done is called;
// ok is false once the runtime has stopped, and the work must not start.
func (rt *Runtime) track() (done func(), ok bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.stopped {
		return nil, false
	}
	rt.inflight.Add(1)
	return rt.inflight.Done, true
}

// shutdown shuts srv down (http.Server.Shutdown: stop accepting, close idle connections, wait for
// requests in progress until ctx ends), closing meanwhile every connection in silent: one
// accepted that has not sent a request yet, for which Shutdown alone would wait up to 5 s.
func shutdown(ctx context.Context, srv *http.Server, silent *sync.Map) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Shutdown(ctx)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		silent.Range(func(c, _ any) bool {
			c.(net.Conn).Close()
			return true
		})
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

// errStopped refuses an invocation requested after shutdown.
var errStopped = errors.New("local: runtime stopped")

// Serve serves on ln until ctx is done, then shuts down cleanly: it stops the poller and the queue
// consumers (after their current batches, which may still post and send), the limit enforcer and
// the schedule, stops accepting, closes every socket (each sends its $disconnect), waits for
// in-flight invocations (cancelling their contexts after ShutdownGrace), and returns. Nothing it
// started runs after it returns.
func (rt *Runtime) Serve(ctx context.Context, ln net.Listener) error {
	ctx, stop := context.WithCancel(ctx) // also ends the loops if serving fails
	defer stop()
	srv := &http.Server{
		Handler:           rt,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	var silent sync.Map // net.Conn: accepted, no request read yet
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			silent.Store(c, struct{}{})
		} else {
			silent.Delete(c)
		}
	}
	var loops sync.WaitGroup
	if rt.cfg.Stream != nil {
		loops.Go(func() { rt.pollStream(ctx) })
	}
	for _, q := range rt.queues {
		for range q.cfg.Consumers {
			loops.Go(func() { rt.consume(ctx, q) })
		}
	}
	loops.Go(func() { rt.enforceLimits(ctx) })
	loops.Go(func() { rt.runSchedule(ctx) })
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), rt.cfg.ShutdownGrace)
	defer cancel()
	// The poller, the queue consumers and the schedule stop first, their invocations finishing
	// while the API still serves what they call (@connections, the queues); past the grace
	// period they are cancelled.
	loopsDone := make(chan struct{})
	go func() {
		loops.Wait()
		close(loopsDone)
	}()
	select {
	case <-loopsDone:
	case <-shutdownCtx.Done():
		rt.log.Warn().Dur("grace", rt.cfg.ShutdownGrace).Msg("shutdown: stream or queue invocations still running; cancelling them")
		rt.abortInvocations()
		<-loopsDone
	}
	shutdown(shutdownCtx, srv, &silent) // waits for HTTP requests, up to the grace period
	rt.closeAll()                       // sets stopping
	finished := make(chan struct{})
	go func() {
		loops.Wait()
		rt.sockets.Wait()
		rt.mu.Lock()
		rt.stopped = true
		rt.mu.Unlock()
		rt.inflight.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-shutdownCtx.Done():
		rt.log.Warn().Dur("grace", rt.cfg.ShutdownGrace).Msg("shutdown: invocations still running; cancelling them")
		rt.abortInvocations()
		<-finished
	}
	rt.abortInvocations()
	for name := range rt.queues {
		if st, _ := rt.Queue(name); st.Visible+st.Delayed > 0 {
			rt.log.Warn().Str("queue", name).Int("messages", st.Visible+st.Delayed).Msg("shutdown: queued messages dropped (the emulated queue lives in memory)")
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// ServeHTTP routes the runtime's endpoints, logging one line per request (see access.go).
func (rt *Runtime) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	if path == "/graphql" && isUpgrade(r) {
		rt.serveWebSocket(w, r) // one line per route invocation instead
		return
	}
	aw := &accessWriter{ResponseWriter: w}
	start := time.Now()
	rt.route(aw, r)
	rt.logRequest(r, aw, start)
}

// route serves a request other than a WebSocket upgrade.
func (rt *Runtime) route(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	switch {
	case isSQS(r):
		rt.serveSQS(w, r)
	case isManagement(path):
		rt.serveConnections(w, r, path[strings.Index(path, "/@connections/")+len("/@connections/"):])
	case path == facts.InvokePath:
		rt.serveInvoke(w, r)
	case rt.cfg.Pages != nil && !isUpgrade(r) && rt.cfg.Pages.Serves(r):
		rt.cfg.Pages.ServeHTTP(w, r)
	case path == "/graphql":
		rt.httpAPI.ServeHTTP(w, r)
		if o := crossOrigin(r); o != "" && w.Header().Get("Access-Control-Allow-Origin") == "" {
			refuse(w, "CORS: origin "+o+" is not allowed (CORS_ORIGINS): the browser keeps the answer from the page")
		}
	default:
		writeAPIError(w, http.StatusNotFound, "NotFoundException", "Not Found")
	}
}

// invoke runs the handler as Lambda would: within the concurrency limit, with the integration
// timeout, and with a lambdacontext carrying a request id of its own. The caller is counted by
// the socket loops, the poller, the schedule or track, so the invocation ends before Serve
// returns. WebSocket frames are not cancelled by the client going away, as on AWS.
func (rt *Runtime) invoke(payload []byte) ([]byte, error) {
	return rt.invokeCtx(context.Background(), payload)
}

// invokeCtx is invoke with a caller whose end cancels the invocation (an HTTP request's).
func (rt *Runtime) invokeCtx(caller context.Context, payload []byte) ([]byte, error) {
	rt.slots <- struct{}{}
	defer func() { <-rt.slots }()
	parent, cancelParent := context.WithCancel(rt.invocations)
	defer cancelParent()
	stop := context.AfterFunc(caller, cancelParent)
	defer stop()
	ctx := lambdacontext.NewContext(parent, &lambdacontext.LambdaContext{
		AwsRequestID:       newRequestID(),
		InvokedFunctionArn: "arn:aws:lambda:" + Region + ":" + AccountID + ":function:" + rt.cfg.APIID,
	})
	ctx, cancel := context.WithTimeout(ctx, rt.cfg.InvokeTimeout)
	defer cancel()
	return rt.cfg.Handler.Invoke(ctx, payload)
}

// invokeTracked is invoke for work no loop owns (an HTTP request): it is refused with errStopped
// once the runtime has stopped.
func (rt *Runtime) invokeTracked(caller context.Context, payload []byte) ([]byte, error) {
	done, ok := rt.track()
	if !ok {
		return nil, errStopped
	}
	defer done()
	return rt.invokeCtx(caller, payload)
}

// Invoke runs the handler with an event the runtime does not emulate a source of (an
// EventBridge rule's event, say), as Lambda invokes it: in the concurrency limit, with the
// integration timeout and a request id, cancelled if ctx ends. It is refused once the runtime has
// stopped.
func (rt *Runtime) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return rt.invokeTracked(ctx, payload)
}

// newRequestID returns a request id shaped like Lambda's (a random UUID).
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// newID returns an id shaped like API Gateway's (12 base64 characters and "=").
func newID() string {
	b := make([]byte, 9)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b) + "="
}

func requestTime(t time.Time) string { return t.UTC().Format("02/Jan/2006:15:04:05 -0700") }

// isManagement reports whether an escaped path is the management API's: /@connections/{id}.
func isManagement(path string) bool { return strings.Contains(path, "/@connections/") }

// isSQS reports whether a request is one of the SQS API's (the JSON protocol: a POST naming its
// action in X-Amz-Target).
func isSQS(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
}

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
