// Package app wires the service: from a Config, a store and a management API client it builds the one Lambda handler, and it sets that handler up on AWS Lambda or on the local runtime.
//
// main reads the environment and the flags into a Config and calls Lambda or StartDev; the
// in-process test suites build the same handler with Handler and the same runtime with StartDev
// or ServeDev, so what they test is what the binary runs.
package app

import (
	"cmp"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/chunkq"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/gqlhttp"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/realtime-gql/lambdaws/internal/socket"
	"github.com/realtime-gql/lambdaws/internal/sweep"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/router"
	"github.com/realtime-gql/lambdaws/store"
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
}

// WithDefaults returns c with the table names filled in. (The other settings are passed on as
// they are: each package that applies one defaults it, from internal/facts.)
func (c Config) WithDefaults() Config {
	c.RegistryTable = cmp.Or(c.RegistryTable, "lambdaws-dev-registry")
	c.DataTable = cmp.Or(c.DataTable, "lambdaws-dev-data")
	return c
}

// Gateway is what the WebSocket routes and the sweeper use of API Gateway's management API:
// posting to, looking up and closing connections. *apigatewaymanagementapi.Client satisfies it.
type Gateway interface {
	socket.Gateway
	sweep.Gateway
}

// Deps are the clients the handler talks to besides its store.
type Deps struct {
	// Gateway is the SDK's management API client (NewGateway): the WebSocket routes and the
	// sweeper use it.
	Gateway Gateway
	// Poster is the fan-out's management API client (NewPoster); nil posts through Gateway
	// (publish.SDK), as the in-process fakes need.
	Poster publish.Gateway
	// Queue is the chunk queue (NewQueue); nil: no chunking (what the deadline leaves
	// undelivered fails its record).
	Queue fanout.Queue
	// Metrics receives the EMF lines of the fan-out and the sweeper; nil prints none.
	Metrics io.Writer
}

// Service is the handler and what it must stop: the fan-out engine's workers.
type Service struct {
	*router.Router
	fan *publish.Fanout
}

// Close stops the fan-out's workers; call it once no invocation runs.
func (s *Service) Close() { s.fan.Close() }

// Handler builds the one Lambda handler over a store and the SDK's management API client, with
// the fan-out posting through that client: the WebSocket routes, GraphQL over HTTP, the stream
// and queue fan-out and the sweeper, behind the router. (The binary uses NewService.)
func Handler(cfg Config, s store.Store, gw Gateway, log zerolog.Logger) *router.Router {
	return NewService(cfg, s, Deps{Gateway: gw}, log).Router
}

// NewService builds the handler over a store and its clients.
func NewService(cfg Config, s store.Store, d Deps, log zerolog.Logger) *Service {
	exec := graph.NewExecutor(&graph.Resolver{Messages: store.NewMessages(s)}, graph.Options{DisableIntrospection: cfg.DisableIntrospection})
	poster := d.Poster
	if poster == nil {
		poster = publish.SDK(d.Gateway)
	}
	fan := publish.New(publish.Config{Registry: s, Renderer: exec, Gateway: poster, Queue: d.Queue,
		Concurrency: cfg.DeliveryConcurrency, MaxMessage: cfg.MaxMessage, ChunkSize: cfg.ChunkSize, Metrics: d.Metrics})
	r := router.New(router.Handlers{
		WebSocket: socket.New(socket.Config{Registry: s, Executor: exec, Gateway: d.Gateway, InitTimeout: cfg.InitTimeout,
			Strict: cfg.Strict, MaxMessage: cfg.MaxMessage, MaxLifetime: cmp.Or(cfg.MaxDuration, facts.MaxDuration) + facts.RegistryMargin}),
		HTTP:   gqlhttp.New(exec, 0),
		Stream: fan,
		Queue:  fan,
		Schedule: sweep.New(sweep.Config{Registry: s, Gateway: d.Gateway, InitTimeout: cfg.InitTimeout,
			IdleTimeout: cfg.IdleTimeout, MaxDuration: cfg.MaxDuration, Metrics: d.Metrics}),
	}, log)
	return &Service{Router: r, fan: fan}
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

// NewGateway builds the SDK's management API client that the WebSocket routes and the sweeper
// share: one client for the life of the process, its keep-alive pool sized to concurrency (<= 0:
// fanout.DefaultConcurrency), throttling retried with backoff and no retry-token bucket.
// endpoint is https://{api-id}.execute-api.{region}.amazonaws.com/{stage}, or the local
// runtime's address.
func NewGateway(cfg aws.Config, endpoint string, concurrency int) *apigatewaymanagementapi.Client {
	concurrency = cmp.Or(concurrency, fanout.DefaultConcurrency)
	hc := awshttp.NewBuildableClient().
		WithTimeout(10 * time.Second).
		WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = concurrency * 2
			t.MaxIdleConnsPerHost = concurrency
			t.IdleConnTimeout = 90 * time.Second
		})
	return apigatewaymanagementapi.NewFromConfig(cfg, func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.HTTPClient = hc
		o.Retryer = retryer(5)()
	})
}

// NewPoster builds the fan-out's management API client (internal/mgmt): SigV4 by the SDK's
// signer with cfg's credentials and Region, a keep-alive pool sized to concurrency (<= 0:
// fanout.DefaultConcurrency), retries bounded by each post's deadline. The client keeps no
// margin of its own: the engine's posts end at its hard deadline (the invocation's less the
// engine's margin), which leaves the answer its time, and a post cut there is carried, not
// counted as failed.
func NewPoster(cfg aws.Config, endpoint string, concurrency int) (*mgmt.Client, error) {
	return mgmt.New(mgmt.Config{Endpoint: endpoint, Region: cfg.Region, Credentials: cfg.Credentials,
		MaxConns: cmp.Or(concurrency, fanout.DefaultConcurrency), Retry: mgmt.Retry{Margin: -1}})
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
