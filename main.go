// Command bootstrap is the whole service in one binary: the Lambda handler on AWS (when
// AWS_LAMBDA_RUNTIME_API is set), or, with `dev`, a local runtime that emulates API Gateway and the
// DynamoDB stream on an embedded store and drives the same handler with the same events.
//
// main reads the configuration in one place (the environment, and the flags of `dev`) and hands
// it to internal/app, which builds the handler and runs it on Lambda or on the local runtime.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/rs/zerolog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// settings is the configuration read from the environment; see the README's table.
type settings struct {
	app.Config
	LogLevel zerolog.Level
	// WebSocketEndpoint is the management API endpoint (Lambda only).
	WebSocketEndpoint string
	// DynamoDBEndpoint is AWS_ENDPOINT_URL_DYNAMODB: in dev it selects the DynamoDB backend.
	DynamoDBEndpoint string
}

// readSettings reads every environment variable the service takes, reporting all bad values at
// once. Unset ones take app.Config's defaults.
func readSettings(getenv func(string) string) (settings, error) {
	s := settings{LogLevel: zerolog.InfoLevel, WebSocketEndpoint: getenv("WEBSOCKET_ENDPOINT"),
		DynamoDBEndpoint: getenv("AWS_ENDPOINT_URL_DYNAMODB")}
	s.RegistryTable, s.DataTable = getenv("REGISTRY_TABLE"), getenv("DATA_TABLE")
	s.ChunkQueueURL = getenv("CHUNK_QUEUE_URL")
	var errs []error
	if v := getenv("LOG_LEVEL"); v != "" {
		lvl, err := zerolog.ParseLevel(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("LOG_LEVEL: %w", err))
		}
		s.LogLevel = lvl
	}
	if v := getenv("DELIVERY_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("DELIVERY_CONCURRENCY: want a positive integer, got %q", v))
		}
		s.DeliveryConcurrency = n
	}
	if v := getenv("CHUNK_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 {
			errs = append(errs, fmt.Errorf("CHUNK_SIZE: want a non-zero integer (negative: no chunking), got %q", v))
		}
		s.ChunkSize = n
	}
	if v := getenv("INIT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("INIT_TIMEOUT: want a duration such as 3s, got %q", v))
		}
		s.InitTimeout = d
	}
	for _, b := range []struct {
		name string
		set  func(bool)
	}{
		{"GRAPHQL_WS_STRICT", func(on bool) { s.Strict = on }},
		{"GRAPHQL_INTROSPECTION", func(on bool) { s.DisableIntrospection = !on }},
	} {
		if v := getenv(b.name); v != "" {
			on, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: want true or false, got %q", b.name, v))
			}
			b.set(on)
		}
	}
	return s, errors.Join(errs...)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := readSettings(getenv)
	if err != nil {
		return err
	}
	if getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		return runLambda(ctx, cfg)
	}
	if len(args) > 0 && args[0] == "dev" {
		return runDev(ctx, cfg, args[1:], stdout)
	}
	return errors.New("usage: bootstrap dev [--port N] [--host H] [--data DIR | --dynamodb URL]\n" +
		"(on AWS Lambda, AWS_LAMBDA_RUNTIME_API is set and the handler starts by itself)")
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
	zerolog.TimeFieldFormat = time.RFC3339Nano
	// The JSON log lines and the EMF metric lines share stdout, one whole line per write.
	out := zerolog.SyncWriter(os.Stdout)
	log := zerolog.New(out).Level(cfg.LogLevel).With().Timestamp().Logger()
	h, err := app.Lambda(ctx, cfg.Config, cfg.WebSocketEndpoint, out, log)
	if err != nil {
		return err
	}
	lambda.StartWithOptions(h, lambda.WithContext(ctx))
	return nil
}

// parseDevFlags reads the flags of `bootstrap dev` into the runtime's configuration and, for API
// Gateway's limits that the handler applies too, into cfg.
func parseDevFlags(args []string, cfg *app.Config) (app.DevConfig, error) {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	var dc app.DevConfig
	maxMessage := fs.Int("max-message", facts.MaxMessage, "largest WebSocket message, in bytes (API Gateway: 128 KiB)")
	fs.StringVar(&dc.Host, "host", "127.0.0.1", "address to listen on")
	fs.IntVar(&dc.Port, "port", 4000, "port to listen on (0 picks a free one)")
	fs.StringVar(&dc.Data, "data", "./.data", "directory of the embedded store")
	fs.Int64Var(&dc.MaxFrame, "max-frame", facts.MaxFrame, "largest inbound WebSocket frame, in bytes (API Gateway: 32 KiB)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", facts.IdleTimeout, "close connections idle this long (API Gateway: 10m)")
	fs.DurationVar(&cfg.MaxDuration, "max-duration", facts.MaxDuration, "close connections this old (API Gateway: 2h)")
	fs.DurationVar(&dc.SweepInterval, "sweep-interval", facts.ScheduleRate, "how often the sweeper runs (serverless.yml: 1m)")
	fs.StringVar(&dc.DynamoDB, "dynamodb", "", "run on DynamoDB at this endpoint URL instead of the embedded store\n(default $AWS_ENDPOINT_URL_DYNAMODB)")
	if err := fs.Parse(args); err != nil {
		return dc, err
	}
	if fs.NArg() > 0 {
		return dc, fmt.Errorf("dev: unexpected argument %q", fs.Arg(0))
	}
	cfg.MaxMessage = *maxMessage
	return dc, nil
}

// runDev runs the local runtime until ctx is done, logging to the console.
func runDev(ctx context.Context, cfg settings, args []string, stdout io.Writer) error {
	dc, err := parseDevFlags(args, &cfg.Config)
	if err != nil {
		return err
	}
	if dc.DynamoDB == "" {
		dc.DynamoDB = cfg.DynamoDBEndpoint
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"}).Level(cfg.LogLevel).With().Timestamp().Logger()
	if cfg.LogLevel <= zerolog.DebugLevel {
		dc.Metrics = zerolog.SyncWriter(stdout) // the EMF lines Lambda would print, on stdout
	}
	d, err := app.StartDev(ctx, cfg.Config, dc, log)
	if err != nil {
		return err
	}
	if dc.DynamoDB != "" {
		tables := cfg.WithDefaults()
		fmt.Fprintf(stdout, "local runtime ready (DynamoDB at %s, tables %s and %s; the stream is fed from this process's own writes)\n",
			dc.DynamoDB, tables.RegistryTable, tables.DataTable)
	} else {
		fmt.Fprintf(stdout, "local runtime ready (data in %s)\n", dc.Data)
	}
	fmt.Fprintf(stdout, "  GraphiQL                http://%s/\n", d.Addr)
	fmt.Fprintf(stdout, "  chat demo               http://%s/demo\n", d.Addr)
	fmt.Fprintf(stdout, "  GraphQL over WebSocket  ws://%s/graphql  (graphql-transport-ws, graphql-ws)\n", d.Addr)
	fmt.Fprintf(stdout, "  GraphQL over HTTP       http://%s/graphql\n", d.Addr)
	fmt.Fprintf(stdout, "  management API          http://%s/@connections/{id}\n", d.Addr)
	return d.Wait()
}
