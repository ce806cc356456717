// Package app wires the service: from a Config, a store and a management API client it builds the one Lambda handler, and it sets that handler up on AWS Lambda or on the local runtime.
//
// main reads the environment and the flags into a Config and calls Lambda or StartDev; the
// in-process test suites build the same handler with Handler and the same runtime with StartDev
// or ServeDev, so what they test is what the binary runs.
package app

import (
	"cmp"
	"context"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/gqlhttp"
	"github.com/realtime-gql/lambdaws/internal/invalidate"
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

// Gateway is what the handlers use of API Gateway's management API: posting to, looking up and
// closing connections. *apigatewaymanagementapi.Client satisfies it.
type Gateway interface {
	socket.Gateway
	publish.Poster
	sweep.Gateway
	invalidate.Gateway
}

// Handler builds the one Lambda handler over a store and a management API client: the WebSocket
// routes, GraphQL over HTTP, the fan-out of stream records and external events (with the
// invalidation of subscriptions, from any of them), and the sweeper, behind the router. It fails
// when the schema's declarations are invalid (the error names each field that is wrong): the
// service refuses to start rather than fail at the first event.
func Handler(cfg Config, s store.Store, gw Gateway, log zerolog.Logger) (*router.Router, error) {
	return handler(cfg, s, gw, log, nil)
}

// handler is Handler with pages (nil: none) served ahead of GraphQL over HTTP.
func handler(cfg Config, s store.Store, gw Gateway, log zerolog.Logger, pages *web.Pages) (*router.Router, error) {
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
	// The fan-out of stream records and of external events (EventBridge, SQS, SNS); the events of
	// type lambdaws.invalidate, from any of those sources, go to the invalidator.
	fan := publish.New(publish.Config{Registry: s, Sources: exec, Renderer: exec, Poster: gw, Closer: gw,
		Invalidator: invalidate.New(invalidate.Config{Registry: s, Gateway: gw}),
		Concurrency: cfg.DeliveryConcurrency, MaxMessage: cfg.MaxMessage})
	var api http.Handler = gqlhttp.New(exec, gqlhttp.Config{MaxBody: cfg.MaxHTTPBody, Verifier: verifier, CORSOrigins: cfg.CORSOrigins})
	if pages != nil {
		api = pages.Wrap(api)
	}
	return router.New(router.Handlers{
		WebSocket: socket.New(socket.Config{Registry: s, Executor: exec, Gateway: gw, Verifier: verifier, InitTimeout: cfg.InitTimeout,
			Strict: cfg.Strict, MaxMessage: cfg.MaxMessage, MaxLifetime: cmp.Or(cfg.MaxDuration, facts.MaxDuration) + facts.RegistryMargin,
			MaxSubscriptions: cfg.MaxSubscriptions, MaxConnectionsPerSubject: cfg.MaxConnectionsPerSubject}),
		HTTP:   api,
		Stream: fan,
		Events: fan,
		Schedule: sweep.New(sweep.Config{Registry: s, Gateway: gw, InitTimeout: cfg.InitTimeout,
			IdleTimeout: cfg.IdleTimeout, MaxDuration: cfg.MaxDuration}),
	}, log), nil
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
