// Package app wires the service: from a Config, a store and a management API client it builds the one Lambda handler, and it sets that handler up on AWS Lambda or on the local runtime.
//
// main reads the environment and the flags into a Config and calls Lambda or StartDev; the
// in-process test suites build the same handler with Handler and the same runtime with StartDev
// or ServeDev, so what they test is what the binary runs.
package app

import (
	"cmp"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/gqlhttp"
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
	// DeliveryConcurrency is the number of posts in flight per event, and the management
	// client's keep-alive pool size; default publish.DefaultConcurrency.
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
}

// WithDefaults returns c with the table names filled in. (The other settings are passed on as
// they are: each package that applies one defaults it, from internal/facts.)
func (c Config) WithDefaults() Config {
	c.RegistryTable = cmp.Or(c.RegistryTable, "lambdaws-dev-registry")
	c.DataTable = cmp.Or(c.DataTable, "lambdaws-dev-data")
	return c
}

// Gateway is what the handlers use of API Gateway's management API: posting to, looking up and
// closing connections. *apigatewaymanagementapi.Client satisfies it.
type Gateway interface {
	socket.Gateway
	publish.Poster
	sweep.Gateway
}

// Handler builds the one Lambda handler over a store and a management API client: the WebSocket
// routes, GraphQL over HTTP, the fan-out of stream records and external events, and the sweeper,
// behind the router. It fails when the schema's declarations are invalid (the error names each
// field that is wrong): the service refuses to start rather than fail at the first event.
func Handler(cfg Config, s store.Store, gw Gateway, log zerolog.Logger) (*router.Router, error) {
	res, err := graph.NewResolver(s)
	if err != nil {
		return nil, err
	}
	exec, err := graph.NewExecutor(res, graph.Options{DisableIntrospection: cfg.DisableIntrospection})
	if err != nil {
		return nil, err
	}
	// The fan-out of stream records and of external events (EventBridge, SQS, SNS). Invalidator:
	// nil until the invalidation of subscriptions is wired (lambdaws.invalidate events are logged
	// and dropped meanwhile).
	fan := publish.New(publish.Config{Registry: s, Sources: exec, Renderer: exec, Poster: gw, Concurrency: cfg.DeliveryConcurrency,
		MaxMessage: cfg.MaxMessage})
	return router.New(router.Handlers{
		WebSocket: socket.New(socket.Config{Registry: s, Executor: exec, Gateway: gw, InitTimeout: cfg.InitTimeout,
			Strict: cfg.Strict, MaxMessage: cfg.MaxMessage, MaxLifetime: cmp.Or(cfg.MaxDuration, facts.MaxDuration) + facts.RegistryMargin}),
		HTTP:   gqlhttp.New(exec, 0),
		Stream: fan,
		Events: fan,
		Schedule: sweep.New(sweep.Config{Registry: s, Gateway: gw, InitTimeout: cfg.InitTimeout,
			IdleTimeout: cfg.IdleTimeout, MaxDuration: cfg.MaxDuration}),
	}, log), nil
}

// NewGateway builds the management API client the handlers share: one client for the life of
// the process, its keep-alive pool sized to the delivery concurrency (<= 0: the default),
// throttling retried with backoff. endpoint is
// https://{api-id}.execute-api.{region}.amazonaws.com/{stage}, or the local runtime's address.
func NewGateway(cfg aws.Config, endpoint string, concurrency int) *apigatewaymanagementapi.Client {
	concurrency = cmp.Or(concurrency, publish.DefaultConcurrency)
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
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 5
			so.MaxBackoff = 2 * time.Second
		})
	})
}
