// Command bootstrap is the whole service in one binary: the Lambda handler on AWS (when
// AWS_LAMBDA_RUNTIME_API is set), or, with `dev`, a local runtime that emulates API Gateway and the
// DynamoDB stream on an embedded store and drives the same handler with the same events.
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
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/logging"
	"github.com/realtime-gql/lambdaws/internal/watch"
	"github.com/realtime-gql/lambdaws/publish"
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
	{name: "dev", args: "[flags]", summary: "run the local runtime: API Gateway, the stream and the store emulated, on one port", run: runDev},
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
}

// env is every environment variable the binary reads, in the order --help and the README list
// them: its default as shown, where it applies (Lambda, dev or both), what it means, and how it is
// read (nil: by the AWS SDK or the Lambda runtime). Adding a variable is one entry here and one
// row in the README's table (a test compares them).
var env = []envVar{
	{"LOG_LEVEL", "info", "dev, Lambda", "log level: debug, info, warn or error", func(s *settings, v string) (err error) {
		s.LogLevel, err = zerolog.ParseLevel(v)
		return err
	}},
	{"LOG_FORMAT", "console", "dev", "log format in dev: console (coloured on a terminal unless NO_COLOR is set) or json; Lambda always logs json", func(s *settings, v string) (err error) {
		s.LogFormat, err = logging.ParseFormat(v)
		return err
	}},
	{"DELIVERY_CONCURRENCY", strconv.Itoa(publish.DefaultConcurrency), "dev, Lambda", "posts in flight per event; also the management client's keep-alive pool size", func(s *settings, v string) (err error) {
		s.DeliveryConcurrency, err = positive(v)
		return err
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
	{"AWS_ENDPOINT_URL_DYNAMODB", "none", "dev, Lambda", "the SDK's standard endpoint override; in dev it selects the DynamoDB backend like --dynamodb", func(s *settings, v string) error {
		s.DynamoDBEndpoint = v
		return nil
	}},
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
	return s, errors.Join(errs...)
}

func positive(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return n, fmt.Errorf("want a positive integer, got %q", v)
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
			cfg, err := readSettings(getenv)
			if err != nil {
				return err
			}
			err = c.run(ctx, cfg, args[1:], stdout, stderr, getenv)
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
	log := logging.New(os.Stdout, logging.Options{Format: logging.JSON, Level: cfg.LogLevel})
	h, err := app.Lambda(ctx, cfg.Config, cfg.WebSocketEndpoint, log)
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
	fs.StringVar(&dc.Host, "host", "127.0.0.1", "`address` to listen on")
	fs.IntVar(&dc.Port, "port", 4000, "`port` to listen on (0 picks a free one; make dev PORT=N)")
	fs.StringVar(&dc.Data, "data", "./.data", "the embedded store's `directory` (make dev DATA=DIR)")
	fs.StringVar(&dc.DynamoDB, "dynamodb", "", "run on the DynamoDB `URL` instead of the embedded store (default $AWS_ENDPOINT_URL_DYNAMODB)")
	fs.BoolVar(watch, "watch", false, "rebuild and restart on changes to Go files or the schema (running go generate ./... first when a .graphqls file changed), keeping the data")
	fs.IntVar(&cfg.MaxMessage, "max-message", facts.MaxMessage, "largest WebSocket message, in `bytes` (API Gateway: 128 KiB)")
	fs.Int64Var(&dc.MaxFrame, "max-frame", facts.MaxFrame, "largest inbound WebSocket frame, in `bytes` (API Gateway: 32 KiB)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", facts.IdleTimeout, "close connections idle this long (API Gateway: 10m)")
	fs.DurationVar(&cfg.MaxDuration, "max-duration", facts.MaxDuration, "close connections this old (API Gateway: 2h)")
	fs.DurationVar(&dc.SweepInterval, "sweep-interval", facts.ScheduleRate, "how often the sweeper runs (serverless.yml: 1m)")
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

// invokePath is the local runtime's invoke endpoint, as the Lambda runtime interface emulator's.
const invokePath = "/2015-03-31/functions/function/invocations"

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
		{"management API", "http://" + d.Addr + "/@connections/{id}"},
		{"invoke (events)", "POST http://" + d.Addr + invokePath},
	} {
		fmt.Fprintf(stdout, "  %-23s %s\n", u[0], u[1])
	}
	fmt.Fprintln(stdout, "Ctrl-C stops it.")
	return d.Wait()
}
