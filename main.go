// Command bootstrap is the whole service in one binary: the Lambda handler on AWS (when
// AWS_LAMBDA_RUNTIME_API is set), or, with `dev`, a local runtime that emulates API Gateway, the
// DynamoDB stream and Lambda's invoke endpoint on an embedded store and drives the same handler with
// the same events; `publish` emits one event to subscribers (internal/cli).
//
// main reads the configuration in one place (the environment, and the flags of `dev`) and hands
// it to internal/app, which builds the handler and runs it on Lambda or on the local runtime.
// `bootstrap --help` lists the commands and every environment variable (help.go prints them from
// the tables here, and a test holds the README's tables to them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/cli"
	"github.com/realtime-gql/lambdaws/internal/cors"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/gqlhttp"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/internal/logging"
	"github.com/realtime-gql/lambdaws/internal/socket"
	"github.com/realtime-gql/lambdaws/internal/watch"
	"github.com/rs/zerolog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C during the shutdown ends the process at once
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}

// commands are the subcommands, in the order --help lists them. Adding one is one line here.
var commands = []command{
	{name: "dev", args: "[flags]", summary: "run the local runtime: API Gateway, the stream, the store and Lambda's invoke endpoint emulated, on one port", service: true, run: runDev},
	{name: "publish", args: "--type TYPE [--data JSON] [flags]", summary: "emit one event to its subscribers, through the local runtime's invoke endpoint, EventBridge, SQS or SNS", run: runPublish},
}

// settings is the configuration read from the environment; see env and the README's table.
type settings struct {
	app.Config
	LogLevel zerolog.Level
	// LogFormat is how dev logs (LOG_FORMAT); Lambda always logs JSON.
	LogFormat logging.Format
	// WebSocketEndpoint is the management API endpoint (Lambda only).
	WebSocketEndpoint string
	// DynamoDBEndpoint is AWS_ENDPOINT_URL_DYNAMODB: in dev it selects the DynamoDB backend.
	DynamoDBEndpoint string
	// AuthModeSet is whether AUTH_MODE is set: a Lambda deployment refuses to start without it.
	AuthModeSet bool
}

// env is every environment variable the binary reads, in the order --help and the README list
// them: its default as shown, where it applies (Lambda, dev or both), what it means, and how it is
// read (nil: by auth.ConfigFromEnv for the AUTH_* variables, which readSettings calls, by the AWS
// SDK, the Lambda runtime or the logger). Adding a variable is one entry here and one row in the
// README's table (a test compares them, and another that readSettings reads no variable missing
// here).
var env = []envVar{
	{"LOG_LEVEL", "info", "dev, Lambda", "log level: debug, info, warn or error; on Lambda the EMF metric lines share stdout with the JSON logs, and dev prints them (on stdout) at debug", func(s *settings, v string) (err error) {
		s.LogLevel, err = zerolog.ParseLevel(v)
		return err
	}},
	{"LOG_FORMAT", "console", "dev", "log format in dev: console (coloured on a terminal unless NO_COLOR is set) or json; Lambda always logs json", func(s *settings, v string) (err error) {
		s.LogFormat, err = logging.ParseFormat(v)
		return err
	}},
	{"DELIVERY_CONCURRENCY", strconv.Itoa(fanout.DefaultConcurrency), "dev, Lambda", "the fan-out's delivery workers (posts in flight) per process; also the management clients' keep-alive pool size. Each costs ~100 KB at peak: a 10k fan-out peaked at 29-31 MB with 64, 34-39 MB with 128, and fewer workers deliver slower when posts are slow", func(s *settings, v string) (err error) {
		s.DeliveryConcurrency, err = positive(v)
		return err
	}},
	{"CHUNK_SIZE", strconv.Itoa(fanout.DefaultChunkSize), "dev, Lambda", "subscribers of a topic one invocation delivers before it hands the rest to the chunk queue, in chunks of this size (negative: never)", func(s *settings, v string) (err error) {
		s.ChunkSize, err = nonZero(v)
		return err
	}},
	{"CHUNK_QUEUE_URL", "none (no chunking)", "Lambda", "the chunk queue's URL (set by serverless.yml); dev runs its own emulated queue", func(s *settings, v string) error {
		s.ChunkQueueURL = v
		return nil
	}},
	{"INIT_TIMEOUT", facts.InitTimeout.String(), "dev, Lambda", "how long after connecting connection_init may arrive (enforced on the next message)", func(s *settings, v string) (err error) {
		s.InitTimeout, err = duration(v)
		return err
	}},
	{"GRAPHQL_INTROSPECTION", "true", "dev, Lambda", "serve __schema and __type", func(s *settings, v string) (err error) {
		on, err := boolean(v)
		s.DisableIntrospection = !on
		return err
	}},
	{"GRAPHQL_WS_STRICT", "false", "dev, Lambda", "strict close mode (see \"Protocol behaviour on API Gateway\")", func(s *settings, v string) (err error) {
		s.Strict, err = boolean(v)
		return err
	}},
	{"REGISTRY_TABLE", app.Config{}.WithDefaults().RegistryTable, "Lambda, dev --dynamodb", "table of connections and subscriptions (set by serverless.yml)", func(s *settings, v string) error {
		s.RegistryTable = v
		return nil
	}},
	{"DATA_TABLE", app.Config{}.WithDefaults().DataTable, "Lambda, dev --dynamodb", "table of app data; its stream feeds the fan-out (set by serverless.yml)", func(s *settings, v string) error {
		s.DataTable = v
		return nil
	}},
	{"WEBSOCKET_ENDPOINT", "none", "Lambda", "required on Lambda: the management API endpoint, https://{api-id}.execute-api.{region}.amazonaws.com/{stage} (set by serverless.yml; the stream path has no request context to derive it from)", func(s *settings, v string) error {
		s.WebSocketEndpoint = v
		return nil
	}},
	{"PLAYGROUND", "false", "Lambda", "serve GraphiQL to browsers on GET /graphql (public: off unless enabled; serverless.yml sets it from the playground parameter); dev always serves it", func(s *settings, v string) (err error) {
		s.Playground, err = boolean(v)
		return err
	}},
	{"WEBSOCKET_URL", "WEBSOCKET_ENDPOINT with wss:", "Lambda", "the WebSocket URL GraphiQL subscribes through, with PLAYGROUND (set it for a custom domain)", func(s *settings, v string) error {
		s.WebSocketURL = v
		return nil
	}},
	{"AUTH_MODE", "none in dev (said at start-up); required on Lambda", "dev, Lambda", "jwt (every request and connection needs a valid token) or none (every caller is anonymous); see Security", nil},
	{"AUTH_JWKS_URL", "none", "dev, Lambda", "with jwt, one key source: the issuer's JWKS endpoint (https, except on a loopback host), cached and refreshed", nil},
	{"AUTH_JWKS_FILE", "none", "dev, Lambda", "with jwt, one key source: a JWKS document on disk, read at start-up", nil},
	{"AUTH_HS256_SECRET", "none", "dev, Lambda", "with jwt, one key source: a shared HS256 secret of at least " + strconv.Itoa(auth.MinHS256SecretBytes) + " bytes, for local use and tests", nil},
	{"AUTH_ISSUER", "none", "dev, Lambda", "the iss claim a token must have (required with a JWKS)", nil},
	{"AUTH_AUDIENCE", "none", "dev, Lambda", "a value the aud claim must contain (required with a JWKS)", nil},
	{"AUTH_LEEWAY", shortDuration(auth.DefaultLeeway.String()), "dev, Lambda", "clock skew allowed on exp, nbf and iat (at most " + shortDuration(auth.MaxLeeway.String()) + ")", nil},
	{"AUTH_CLAIMS", auth.DefaultClaims, "dev, Lambda", "claims kept in the principal besides sub and exp, comma-separated", nil},
	{"AUTH_JWKS_REFRESH_INTERVAL", shortDuration(auth.DefaultJWKSRefreshInterval.String()), "dev, Lambda", "how often the JWKS URL is fetched in the background (1m to 24h)", nil},
	{"AUTH_JWKS_MIN_REFRESH_INTERVAL", shortDuration(auth.DefaultJWKSMinRefreshInterval.String()), "dev, Lambda", "the least time between two fetches caused by unknown key ids (1s to 1h)", nil},
	{"AUTH_JWKS_TIMEOUT", shortDuration(auth.DefaultJWKSTimeout.String()), "dev, Lambda", "bound of one JWKS fetch (100ms to 30s)", nil},
	{"GRAPHQL_MAX_TOKENS", strconv.Itoa(graph.DefaultMaxTokens), "dev, Lambda", "the parser's token limit", func(s *settings, v string) (err error) {
		s.Limits.MaxTokens, err = atLeast(v, 1)
		return err
	}},
	{"GRAPHQL_MAX_SELECTIONS", strconv.Itoa(graph.DefaultMaxSelections), "dev, Lambda", "fields (aliases included) and fragments of a document, fragments counted at each spread", func(s *settings, v string) (err error) {
		s.Limits.MaxSelections, err = atLeast(v, 1)
		return err
	}},
	{"GRAPHQL_MAX_DEPTH", strconv.Itoa(graph.DefaultMaxDepth), "dev, Lambda", "how deeply selections nest (introspection excepted)", func(s *settings, v string) (err error) {
		s.Limits.MaxDepth, err = atLeast(v, 1)
		return err
	}},
	{"GRAPHQL_MAX_COMPLEXITY", strconv.Itoa(graph.DefaultMaxComplexity), "dev, Lambda", "an operation's complexity (each field 1, text 4, messages(last: n) times n)", func(s *settings, v string) (err error) {
		s.Limits.MaxComplexity, err = atLeast(v, 1)
		return err
	}},
	{"SUBSCRIPTIONS_PER_CONNECTION", strconv.Itoa(socket.DefaultMaxSubscriptions), "dev, Lambda", "subscriptions one connection may have", func(s *settings, v string) (err error) {
		s.MaxSubscriptions, err = atLeast(v, 1)
		return err
	}},
	{"CONNECTIONS_PER_SUBJECT", "0 (unbounded)", "dev, Lambda", "connections one principal may have acknowledged at once", func(s *settings, v string) (err error) {
		s.MaxConnectionsPerSubject, err = atLeast(v, 0)
		return err
	}},
	{"HTTP_MAX_BODY", strconv.Itoa(gqlhttp.DefaultMaxBody), "dev, Lambda", "HTTP request body limit, in bytes (at most " + strconv.Itoa(facts.MaxHTTPPayload>>20) + " MiB, API Gateway's)", func(s *settings, v string) error {
		n, err := atLeast(v, 1)
		if err == nil && n > facts.MaxHTTPPayload {
			err = fmt.Errorf("at most %d (API Gateway's limit), got %d", facts.MaxHTTPPayload, n)
		}
		s.MaxHTTPBody = int64(n)
		return err
	}},
	{"CORS_ORIGINS", "none", "dev, Lambda", "origins allowed to call the HTTP API from a browser, comma-separated, or *", func(s *settings, v string) error {
		s.CORSOrigins = cors.ParseOrigins(v)
		return nil
	}},
	{"AWS_CA_BUNDLE", "none", "dev, Lambda", "the SDK's standard extra certificate authorities (a PEM file), trusted by every AWS client, the management API's included", nil},
	{"AWS_ENDPOINT_URL_DYNAMODB", "none", "dev, Lambda", "the SDK's standard endpoint override; in dev it selects the DynamoDB backend like --dynamodb", func(s *settings, v string) error {
		s.DynamoDBEndpoint = v
		return nil
	}},
	{"AWS_ENDPOINT_URL_SQS", "none", "Lambda", "the SDK's standard endpoint override for the chunk queue's SQS client", nil},
	{"AWS_LAMBDA_RUNTIME_API", "set by Lambda", "Lambda", "when present, the binary serves Lambda invocations", nil},
	{"AWS_REGION, credentials", "set by Lambda", "Lambda", "the SDK's standard configuration", nil},
	{"NO_COLOR", "none", "dev", "any value turns colour off in console logs (https://no-color.org)", nil},
}

// readSettings reads every environment variable the service takes, reporting all bad values at
// once. Unset ones take app.Config's defaults.
func readSettings(getenv func(string) string) (settings, error) {
	s := settings{LogLevel: zerolog.InfoLevel, LogFormat: logging.Console}
	var errs []error
	for _, e := range env {
		if v := getenv(e.name); v != "" && e.set != nil {
			if err := e.set(&s, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", e.name, err))
			}
		}
	}
	// The AUTH_* variables are checked together (one key source, the issuer and audience it
	// needs); the error names the variables at fault.
	s.Auth, s.AuthModeSet = auth.Config{Mode: auth.ModeNone}, auth.ModeSet(getenv)
	if ac, err := auth.ConfigFromEnv(getenv); err != nil {
		errs = append(errs, err)
	} else {
		s.Auth = ac
	}
	return s, errors.Join(errs...)
}

func positive(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return n, fmt.Errorf("want a positive integer, got %q", v)
	}
	return n, nil
}

func nonZero(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n == 0 {
		return n, fmt.Errorf("want a non-zero integer (negative: no chunking), got %q", v)
	}
	return n, nil
}

func atLeast(v string, least int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		return n, fmt.Errorf("want an integer of at least %d, got %q", least, v)
	}
	return n, nil
}

func duration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return d, fmt.Errorf("want a duration such as 3s, got %q", v)
	}
	return d, nil
}

func boolean(v string) (bool, error) {
	on, err := strconv.ParseBool(v)
	if err != nil {
		return on, fmt.Errorf("want true or false, got %q", v)
	}
	return on, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		cfg, err := readSettings(getenv)
		if err != nil {
			return err
		}
		return runLambda(ctx, cfg)
	}
	if len(args) == 0 {
		return usageErrorf("", "a command is needed")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		printHelp(stdout)
		return nil
	case "-version", "--version", "version":
		fmt.Fprint(stdout, versionText())
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			var cfg settings
			if c.service {
				var err error
				if cfg, err = readSettings(getenv); err != nil {
					return err
				}
			}
			err := c.run(ctx, cfg, args[1:], stdout, stderr, getenv)
			if errors.Is(err, flag.ErrHelp) {
				printCommandHelp(stdout, c)
				return nil
			}
			return err
		}
	}
	return usageErrorf("", "unknown command %q", args[0])
}

// runLambda serves Lambda invocations, logging JSON.
func runLambda(ctx context.Context, cfg settings) error {
	var missing []string
	for name, v := range map[string]string{"REGISTRY_TABLE": cfg.RegistryTable, "DATA_TABLE": cfg.DataTable,
		"WEBSOCKET_ENDPOINT": cfg.WebSocketEndpoint} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("missing environment: %s", strings.Join(missing, ", "))
	}
	if !cfg.AuthModeSet {
		return auth.ErrModeNotSet
	}
	// The JSON log lines and the EMF metric lines share stdout, one whole line per write.
	out := zerolog.SyncWriter(os.Stdout)
	log := logging.New(out, logging.Options{Format: logging.JSON, Level: cfg.LogLevel})
	h, err := app.Lambda(ctx, cfg.Config, cfg.WebSocketEndpoint, out, log)
	if err != nil {
		return err
	}
	lambda.StartWithOptions(h, lambda.WithContext(ctx))
	return nil
}

// devFlags are the flags of `bootstrap dev`, read into the runtime's configuration and, for API
// Gateway's limits that the handler applies too, into cfg. Adding a flag is one line here and a row
// in the README's table (a test compares them).
func devFlags(cfg *app.Config, dc *app.DevConfig, watch *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.StringVar(&dc.Host, "host", facts.LocalHost, "`address` to listen on")
	fs.IntVar(&dc.Port, "port", facts.LocalPort, "`port` to listen on (0 picks a free one; make dev PORT=N)")
	fs.StringVar(&dc.Data, "data", "./.data", "the embedded store's `directory` (make dev DATA=DIR)")
	fs.StringVar(&dc.DynamoDB, "dynamodb", "", "run on the DynamoDB `URL` instead of the embedded store (default $AWS_ENDPOINT_URL_DYNAMODB)")
	fs.BoolVar(watch, "watch", false, "rebuild and restart on changes to Go files or the schema (running go generate ./... first when a .graphqls file changed), keeping the data")
	fs.IntVar(&cfg.MaxMessage, "max-message", facts.MaxMessage, "largest WebSocket message, in `bytes` (API Gateway: 128 KiB)")
	fs.Int64Var(&dc.MaxFrame, "max-frame", facts.MaxFrame, "largest inbound WebSocket frame, in `bytes` (API Gateway: 32 KiB)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", facts.IdleTimeout, "close connections idle this long (API Gateway: 10m)")
	fs.DurationVar(&cfg.MaxDuration, "max-duration", facts.MaxDuration, "close connections this old (API Gateway: 2h)")
	fs.DurationVar(&dc.SweepInterval, "sweep-interval", facts.ScheduleRate, "how often the sweeper runs (serverless.yml: 1m)")
	fs.IntVar(&dc.MaxInflight, "max-inflight", local.DefaultMaxInflight, "frames of one connection handled at once (the next waits to be read)")
	return fs
}

// devCommand is a parsed `bootstrap dev`.
type devCommand struct {
	dc    app.DevConfig
	watch bool
	// childArgs are the arguments that reproduce the command without --watch.
	childArgs []string
}

// parseDevFlags reads the flags of `bootstrap dev`; -h and --help return flag.ErrHelp.
func parseDevFlags(args []string, cfg *app.Config) (devCommand, error) {
	var c devCommand
	fs := devFlags(cfg, &c.dc, &c.watch)
	if err := parse(fs, args); err != nil {
		return c, err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "watch" {
			c.childArgs = append(c.childArgs, "--"+f.Name+"="+f.Value.String())
		}
	})
	return c, nil
}

// freePort returns a port free on host now.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// runDev runs the local runtime until ctx is done, logging to stderr; with --watch, it runs it as
// a child process that is rebuilt and restarted on changes.
func runDev(ctx context.Context, cfg settings, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	c, err := parseDevFlags(args, &cfg.Config)
	if errors.Is(err, flag.ErrHelp) {
		return err // run prints the help
	}
	if err != nil {
		return usageErrorf("dev", "%v", err)
	}
	dc := c.dc
	if dc.DynamoDB == "" {
		dc.DynamoDB = cfg.DynamoDBEndpoint
	}
	var color bool
	if f, ok := stderr.(*os.File); ok {
		color = logging.UseColor(f, getenv)
	}
	log := logging.New(stderr, logging.Options{Format: cfg.LogFormat, Level: cfg.LogLevel, Color: color})
	if c.watch {
		args := append([]string{"dev"}, c.childArgs...)
		if dc.Port == 0 { // one free port for every restart
			port, err := freePort(dc.Host)
			if err != nil {
				return err
			}
			args = append(args, "--port="+strconv.Itoa(port))
		}
		return watch.Run(ctx, watch.Config{Args: args, Stdout: stdout, Stderr: stderr, Log: log})
	}
	if cfg.LogLevel <= zerolog.DebugLevel {
		dc.Metrics = zerolog.SyncWriter(stdout) // the EMF lines Lambda would print, on stdout
	}
	d, err := app.StartDev(ctx, cfg.Config, dc, log)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: another process is listening there; pick another port with --port N (make dev PORT=N), or --port 0 for a free one", err)
	}
	if err != nil {
		return err
	}
	if dc.DynamoDB != "" {
		tables := cfg.WithDefaults()
		fmt.Fprintf(stdout, "local runtime ready (DynamoDB at %s, tables %s and %s; the stream is fed from this process's own writes)\n",
			dc.DynamoDB, tables.RegistryTable, tables.DataTable)
	} else {
		data, _ := filepath.Abs(dc.Data)
		fmt.Fprintf(stdout, "local runtime ready (data in %s)\n", data)
	}
	for _, u := range [][2]string{
		{"GraphiQL", "http://" + d.Addr + "/"},
		{"chat demo", "http://" + d.Addr + "/demo"},
		{"GraphQL over WebSocket", "ws://" + d.Addr + "/graphql  (graphql-transport-ws, graphql-ws)"},
		{"GraphQL over HTTP", "http://" + d.Addr + "/graphql"},
		{"management API", "http://" + d.Addr + "/@connections/{id}  (SigV4 with this process's own credentials only)"},
		{"invoke (events)", "POST http://" + d.Addr + facts.InvokePath + "  (any event JSON: EventBridge, SQS, SNS; bootstrap publish)"},
		{"chunk queue (SQS)", local.QueueURL(d.Addr, app.ChunkQueue) + "  (the SQS API, emulated: the fan-out's continuations)"},
		{"authentication", authLine(cfg)},
	} {
		fmt.Fprintf(stdout, "  %-23s %s\n", u[0], u[1])
	}
	fmt.Fprintln(stdout, "Ctrl-C stops it.")
	return d.Wait()
}

// authLine says at start-up whether dev authenticates callers.
func authLine(cfg settings) string {
	switch {
	case cfg.Auth.Mode == auth.ModeJWT:
		return "jwt: every request and connection needs a valid token"
	case cfg.AuthModeSet:
		return "none (AUTH_MODE=none): every caller is anonymous"
	}
	return "none: AUTH_MODE is unset, so every caller is anonymous (set AUTH_MODE=jwt to require tokens)"
}

// runPublish runs `bootstrap publish`: it emits one event and prints its id. It reads none of the
// service's environment; the AWS targets read the SDK's.
func runPublish(ctx context.Context, _ settings, args []string, stdout, _ io.Writer, _ func(string) string) error {
	c, err := cli.ParsePublish(args)
	if errors.Is(err, flag.ErrHelp) {
		return err // run prints the help
	}
	if err != nil {
		return usageErrorf("publish", "%v", err)
	}
	return c.Run(ctx, stdout)
}
