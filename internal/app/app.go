// Package app wires the service: from a Config, a store and a management API client it builds the one Lambda handler, and it sets that handler up on AWS Lambda or on the local runtime.
//
// main reads the environment and the flags into a Config and calls Lambda or StartDev; the
// in-process test suites build the same handler with Handler and the same runtime with StartDev
// or ServeDev, so what they test is what the binary runs.
package app

import (
	"cmp"
	"context"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/chunkq"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/gqlhttp"
	"github.com/realtime-gql/lambdaws/internal/invalidate"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/realtime-gql/lambdaws/internal/socket"
	"github.com/realtime-gql/lambdaws/internal/sweep"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/router"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/web"
	"github.com/rs/zerolog"
)

// Config is the service's configuration (the README's table of environment variables). Zero
// values take the documented defaults.
type Config struct {
	// DeliveryConcurrency is the number of the fan-out's delivery workers (posts in flight per
	// process), and the management clients' keep-alive pool size; default
	// fanout.DefaultConcurrency.
	DeliveryConcurrency int
	// InitTimeout is how long after connecting connection_init may arrive; default
	// facts.InitTimeout.
	InitTimeout time.Duration
	// DisableIntrospection turns off __schema and __type (GRAPHQL_INTROSPECTION=false).
	DisableIntrospection bool
	// Strict is the graphql-transport-ws strict close mode (GRAPHQL_WS_STRICT).
	Strict bool
	// MaxMessage is API Gateway's WebSocket message limit, which results posted must respect;
	// default facts.MaxMessage. The local runtime's --max-message changes it for the emulator
	// and the handler alike.
	MaxMessage int
	// IdleTimeout and MaxDuration are API Gateway's connection limits; defaults
	// facts.IdleTimeout and facts.MaxDuration. The sweeper applies them, and a connection's
	// records live MaxDuration plus facts.RegistryMargin.
	IdleTimeout, MaxDuration time.Duration
	// RegistryTable and DataTable name the DynamoDB tables; defaults lambdaws-dev-registry and
	// lambdaws-dev-data.
	RegistryTable, DataTable string
	// ChunkQueueURL is the chunk queue's URL (CHUNK_QUEUE_URL); empty: no chunking. The local
	// runtime sets its own emulated queue's.
	ChunkQueueURL string
	// ChunkSize is how many subscribers of a topic one invocation delivers before it hands the
	// rest to the chunk queue in chunks of that size (CHUNK_SIZE); default
	// fanout.DefaultChunkSize.
	ChunkSize int
	// Playground serves GraphiQL on a deployed stage (PLAYGROUND): to a browser's GET /graphql,
	// ahead of the API (package web's Pages.Wrap). Off by default, since the page is public. The
	// local runtime always serves it.
	Playground bool
	// WebSocketURL is the WebSocket endpoint GraphiQL subscribes through on a deployed stage
	// (WEBSOCKET_URL); default the management endpoint with wss: (web.WebSocketURLFor), right
	// unless the API has a custom domain.
	WebSocketURL string

	// Auth configures authentication (the AUTH_* variables, read by auth.ConfigFromEnv).
	Auth auth.Config
	// Verifier authenticates callers. Lambda and StartDev build it from Auth when it is nil;
	// Handler takes it as it is (nil: every caller is anonymous).
	Verifier *auth.Verifier
	// Limits bound what one GraphQL document may cost (GRAPHQL_MAX_TOKENS, _SELECTIONS, _DEPTH,
	// _COMPLEXITY); zero fields take graph's defaults.
	Limits graph.Limits
	// MaxSubscriptions bounds a connection's subscriptions (SUBSCRIPTIONS_PER_CONNECTION);
	// default socket.DefaultMaxSubscriptions.
	MaxSubscriptions int
	// MaxConnectionsPerSubject bounds the connections one principal may have at once
	// (CONNECTIONS_PER_SUBJECT); zero is unbounded.
	MaxConnectionsPerSubject int
	// MaxHTTPBody bounds an HTTP request body (HTTP_MAX_BODY); default gqlhttp.DefaultMaxBody.
	// The local runtime refuses larger bodies before invoking the handler, by Content-Length.
	MaxHTTPBody int64
	// CORSOrigins are the origins allowed to call the HTTP API from a browser (CORS_ORIGINS).
	CORSOrigins []string
}

// WithDefaults returns c with the table names filled in. (The other settings are passed on as
// they are: each package that applies one defaults it, from internal/facts.)
func (c Config) WithDefaults() Config {
	c.RegistryTable = cmp.Or(c.RegistryTable, "lambdaws-dev-registry")
	c.DataTable = cmp.Or(c.DataTable, "lambdaws-dev-data")
	return c
}

// Gateway is what the handler uses of API Gateway's management API: posting to, looking up and
// closing connections, for the fan-out, the WebSocket routes, the invalidator and the sweeper.
// *mgmt.Client satisfies it (NewGateway); so does the tests' fake, *mgmttest.Gateway.
type Gateway interface {
	publish.Gateway
	socket.Gateway
	sweep.Gateway
	invalidate.Gateway
}

// ControlAttempts bounds the attempts of the management API calls the WebSocket routes, the
// invalidator and the sweeper make (the fan-out's posts retry until its deadline instead): a
// throttled or failing call is tried this often, with backoff, as the SDK's client did.
const ControlAttempts = 5

// Deps are the clients the handler talks to besides its store.
type Deps struct {
	// Gateway is the management API client (NewGateway), the one of the process: the fan-out
	// posts through it under its own policy (retries until the engine's deadline), and the
	// WebSocket routes, the invalidator and the sweeper through a view of it that tries each call
	// at most ControlAttempts times (mgmt.Client.WithRetry); another Gateway (a fake) serves all
	// of them as it is.
	Gateway Gateway
	// Queue is the chunk queue (NewQueue); nil: no chunking (what the deadline leaves
	// undelivered fails its record).
	Queue fanout.Queue
	// Metrics receives the EMF lines of the fan-out and the sweeper; nil prints none.
	Metrics io.Writer
}

// Handler builds the one Lambda handler over a store and a management API client (the binary
// uses NewService, which also takes the chunk queue and the metrics' writer): the WebSocket routes,
// GraphQL over HTTP, the fan-out of stream records, external events and chunk continuations (with
// the invalidation of subscriptions, from any source), and the sweeper, behind the router. It
// fails when the schema's declarations are invalid (the error names each field that is wrong): the
// service refuses to start rather than fail at the first event.
func Handler(cfg Config, s store.Store, gw Gateway, log zerolog.Logger) (*router.Router, error) {
	svc, err := NewService(cfg, s, Deps{Gateway: gw}, log)
	if err != nil {
		return nil, err
	}
	return svc.Router, nil
}

// Service is the handler and what it must stop: the fan-out engine's workers.
type Service struct {
	*router.Router
	fan *publish.Fanout
}

// Close stops the fan-out's workers; call it once no invocation runs.
func (s *Service) Close() { s.fan.Close() }

// NewService builds the handler over a store and its clients.
func NewService(cfg Config, s store.Store, d Deps, log zerolog.Logger) (*Service, error) {
	return newService(cfg, s, d, log, nil)
}

// newService is NewService with pages (nil: none) served ahead of GraphQL over HTTP.
func newService(cfg Config, s store.Store, d Deps, log zerolog.Logger, pages *web.Pages) (*Service, error) {
	var verifier socket.Verifier
	if cfg.Verifier != nil {
		verifier = cfg.Verifier
	}
	res, err := graph.NewResolver(s)
	if err != nil {
		return nil, err
	}
	exec, err := graph.NewExecutor(res, graph.Options{DisableIntrospection: cfg.DisableIntrospection,
		Limits: cfg.Limits, Authenticated: verifier != nil && verifier.Mode() == auth.ModeJWT})
	if err != nil {
		return nil, err
	}
	// One management client: the fan-out's posts retry until the engine's deadline; the other
	// callers' calls are bounded in number.
	var control Gateway = d.Gateway
	if c, ok := d.Gateway.(*mgmt.Client); ok {
		control = c.WithRetry(mgmt.Retry{Margin: -1, MaxAttempts: ControlAttempts})
	}
	// The fan-out of stream records, of external events (EventBridge, SQS, SNS) and of the chunk
	// queue's continuations; the events of type lambdaws.invalidate, from any of those sources, go
	// to the invalidator.
	fan := publish.New(publish.Config{Registry: s, Sources: exec, Renderer: exec, Gateway: d.Gateway, Queue: d.Queue,
		Invalidator: invalidate.New(invalidate.Config{Registry: s, Gateway: control}),
		Concurrency: cfg.DeliveryConcurrency, MaxMessage: cfg.MaxMessage, ChunkSize: cfg.ChunkSize, Metrics: d.Metrics})
	var api http.Handler = gqlhttp.New(exec, gqlhttp.Config{MaxBody: cfg.MaxHTTPBody, Verifier: verifier, CORSOrigins: cfg.CORSOrigins})
	if pages != nil {
		api = pages.Wrap(api)
	}
	r := router.New(router.Handlers{
		WebSocket: socket.New(socket.Config{Registry: s, Executor: exec, Gateway: control, Verifier: verifier, InitTimeout: cfg.InitTimeout,
			Strict: cfg.Strict, MaxMessage: cfg.MaxMessage, MaxLifetime: cmp.Or(cfg.MaxDuration, facts.MaxDuration) + facts.RegistryMargin,
			MaxSubscriptions: cfg.MaxSubscriptions, MaxConnectionsPerSubject: cfg.MaxConnectionsPerSubject}),
		HTTP:   api,
		Stream: fan,
		Events: fan,
		Schedule: sweep.New(sweep.Config{Registry: s, Gateway: control, InitTimeout: cfg.InitTimeout,
			IdleTimeout: cfg.IdleTimeout, MaxDuration: cfg.MaxDuration, Metrics: d.Metrics}),
	}, log)
	return &Service{Router: r, fan: fan}, nil
}

// verifier returns cfg with its Verifier built from Auth, when it has none; the background JWKS
// refresh runs until ctx ends.
func (c Config) verifier(ctx context.Context) (Config, error) {
	if c.Verifier != nil {
		return c, nil
	}
	ac := c.Auth
	if ac.Mode == "" { // the zero Config: no authentication, as `dev` defaults
		ac.Mode = auth.ModeNone
	}
	v, err := auth.New(ctx, ac)
	if err != nil {
		return c, err
	}
	c.Verifier = v
	return c, nil
}

// retryer is the SDK clients' retry policy: the standard one (throttling and 5xx retried with
// jittered backoff) without the client-wide retry-token bucket, which, once drained by a burst
// of throttling, fails every later retry of the process at once.
func retryer(maxAttempts int) func() aws.Retryer {
	return func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = maxAttempts
			so.MaxBackoff = 2 * time.Second
			so.RateLimiter = ratelimit.None
		})
	}
}

// NewGateway builds the management API client of the process (internal/mgmt): SigV4 by the SDK's
// signer with cfg's credentials and Region, a keep-alive pool sized to concurrency (<= 0:
// fanout.DefaultConcurrency), retries bounded by each call's deadline and no retry-token
// bucket, trusting the certificate authorities cfg was loaded with (AWS_CA_BUNDLE) as the SDK's
// clients do. endpoint is https://{api-id}.execute-api.{region}.amazonaws.com/{stage}, or the
// local runtime's address. The client keeps no margin of its own: the engine's posts end at its hard
// deadline (the invocation's less the engine's margin), which leaves the answer its time, and a
// post cut there is carried, not counted as failed; the WebSocket routes end their calls a
// margin before theirs.
func NewGateway(cfg aws.Config, endpoint string, concurrency int) (*mgmt.Client, error) {
	return newGateway(cfg, endpoint, concurrency, nil)
}

// newGateway is NewGateway over a transport of its own (nil: mgmt's).
func newGateway(cfg aws.Config, endpoint string, concurrency int, transport http.RoundTripper) (*mgmt.Client, error) {
	return mgmt.New(mgmt.Config{Endpoint: endpoint, Region: cfg.Region, Credentials: cfg.Credentials,
		MaxConns: cmp.Or(concurrency, fanout.DefaultConcurrency), Retry: mgmt.Retry{Margin: -1}, Transport: transport,
		RootCAs: mgmt.CABundle(cfg)})
}

// NewQueue builds the chunk queue's sender: the SDK's SQS client (at endpoint when set, else
// where cfg resolves it) sending to the queue at url, with no retry-token bucket.
func NewQueue(cfg aws.Config, url, endpoint string) *chunkq.Queue {
	client := sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.Retryer = retryer(5)()
	})
	return chunkq.New(client, url)
}
