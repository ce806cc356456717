// Command bootstrap is the whole service in one binary: the Lambda handler on AWS (when
// AWS_LAMBDA_RUNTIME_API is set), or, with `dev`, a local runtime that emulates API Gateway and the
// DynamoDB stream on an embedded store and drives the same handler with the same events.
//
// main only wires: it reads configuration in one place, builds the handler once, and either
// hands it to the Lambda runtime or to the local runtime.
package main

import (
	"context"
	"encoding/json"
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
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/gqlhttp"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/internal/socket"
	"github.com/realtime-gql/lambdaws/internal/sweep"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/router"
	"github.com/realtime-gql/lambdaws/store"
	dynamostore "github.com/realtime-gql/lambdaws/store/dynamo"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/realtime-gql/lambdaws/web"
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
	LogLevel             zerolog.Level
	DeliveryConcurrency  int
	InitTimeout          time.Duration
	DisableIntrospection bool
	// Strict is the graphql-transport-ws strict close mode (GRAPHQL_WS_STRICT).
	Strict bool
	// IdleTimeout and MaxDuration are API Gateway's connection limits (10 minutes, 2 hours); the
	// local runtime's flags change them, for itself and for the sweeper.
	IdleTimeout, MaxDuration time.Duration
	// RegistryTable and DataTable name the DynamoDB tables.
	RegistryTable, DataTable string
	// WebSocketEndpoint is the management API endpoint (Lambda only).
	WebSocketEndpoint string
	// DynamoDBEndpoint is AWS_ENDPOINT_URL_DYNAMODB: in dev it selects the DynamoDB backend.
	DynamoDBEndpoint string
}

func readSettings(getenv func(string) string) (settings, error) {
	s := settings{LogLevel: zerolog.InfoLevel, DeliveryConcurrency: publish.DefaultConcurrency, InitTimeout: 3 * time.Second,
		IdleTimeout: 10 * time.Minute, MaxDuration: 2 * time.Hour,
		RegistryTable: "lambdaws-dev-registry", DataTable: "lambdaws-dev-data",
		WebSocketEndpoint: getenv("WEBSOCKET_ENDPOINT"), DynamoDBEndpoint: getenv("AWS_ENDPOINT_URL_DYNAMODB")}
	if v := getenv("REGISTRY_TABLE"); v != "" {
		s.RegistryTable = v
	}
	if v := getenv("DATA_TABLE"); v != "" {
		s.DataTable = v
	}
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
	if v := getenv("INIT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("INIT_TIMEOUT: want a duration such as 3s, got %q", v))
		}
		s.InitTimeout = d
	}
	if v := getenv("GRAPHQL_WS_STRICT"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("GRAPHQL_WS_STRICT: want true or false, got %q", v))
		}
		s.Strict = on
	}
	if v := getenv("GRAPHQL_INTROSPECTION"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("GRAPHQL_INTROSPECTION: want true or false, got %q", v))
		}
		s.DisableIntrospection = !on
	}
	return s, errors.Join(errs...)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := readSettings(getenv)
	if err != nil {
		return err
	}
	if getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		return runLambda(ctx, cfg, getenv)
	}
	if len(args) > 0 && args[0] == "dev" {
		return runDev(ctx, cfg, args[1:], stdout)
	}
	return errors.New("usage: bootstrap dev [--port N] [--host H] [--data DIR | --dynamodb URL]\n" +
		"(on AWS Lambda, AWS_LAMBDA_RUNTIME_API is set and the handler starts by itself)")
}

// managementAPI is what the handlers use of the management API.
type managementAPI interface {
	socket.Connections
	publish.Poster
	sweep.Connections
}

// handler builds the one Lambda handler over a store and a management API client.
func handler(cfg settings, s store.Store, conns managementAPI, log zerolog.Logger) *router.Router {
	exec := graph.NewExecutor(&graph.Resolver{Messages: s}, graph.Options{DisableIntrospection: cfg.DisableIntrospection})
	return router.New(router.Handlers{
		WebSocket: socket.New(socket.Config{Registry: s, Executor: exec, Connections: conns, InitTimeout: cfg.InitTimeout,
			Strict: cfg.Strict, MaxLifetime: cfg.MaxDuration + 10*time.Minute}),
		HTTP:   gqlhttp.New(exec, 0),
		Stream: publish.New(publish.Config{Registry: s, Renderer: exec, Poster: conns, Concurrency: cfg.DeliveryConcurrency}),
		Schedule: sweep.New(sweep.Config{Registry: s, Connections: conns, InitTimeout: cfg.InitTimeout,
			IdleTimeout: cfg.IdleTimeout, MaxDuration: cfg.MaxDuration}),
	}, log)
}

// runLambda serves Lambda invocations: the DynamoDB backend, the management API endpoint from
// WEBSOCKET_ENDPOINT (the stream path has no request context to derive it from), JSON logs.
func runLambda(ctx context.Context, cfg settings, getenv func(string) string) error {
	var missing []string
	for name, v := range map[string]string{"REGISTRY_TABLE": getenv("REGISTRY_TABLE"), "DATA_TABLE": getenv("DATA_TABLE"),
		"WEBSOCKET_ENDPOINT": cfg.WebSocketEndpoint} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("missing environment: %s", strings.Join(missing, ", "))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("aws config: %w", err)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	log := zerolog.New(os.Stdout).Level(cfg.LogLevel).With().Timestamp().Logger()
	s := dynamostore.New(dynamodb.NewFromConfig(awsCfg), dynamostore.Options{RegistryTable: cfg.RegistryTable, DataTable: cfg.DataTable})
	conns := publish.NewClient(awsCfg, cfg.WebSocketEndpoint, cfg.DeliveryConcurrency)
	lambda.StartWithOptions(handler(cfg, s, conns, log), lambda.WithContext(ctx))
	return nil
}

// devOptions are the flags of `bootstrap dev`.
type devOptions struct {
	host, data string
	port       int
	// dynamodb is a DynamoDB endpoint URL; empty runs on the embedded store.
	dynamodb string
	// API Gateway's limits, changeable for tests.
	maxFrame, maxMessage                    int64
	idleTimeout, maxDuration, sweepInterval time.Duration
}

func parseDevFlags(args []string) (devOptions, error) {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	var o devOptions
	fs.StringVar(&o.host, "host", "127.0.0.1", "address to listen on")
	fs.IntVar(&o.port, "port", 4000, "port to listen on (0 picks a free one)")
	fs.StringVar(&o.data, "data", "./.data", "directory of the embedded store")
	fs.Int64Var(&o.maxFrame, "max-frame", 32*1024, "largest inbound WebSocket frame, in bytes (API Gateway: 32 KB)")
	fs.Int64Var(&o.maxMessage, "max-message", 128*1024, "largest WebSocket message, in bytes (API Gateway: 128 KB)")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 10*time.Minute, "close connections idle this long (API Gateway: 10m)")
	fs.DurationVar(&o.maxDuration, "max-duration", 2*time.Hour, "close connections this old (API Gateway: 2h)")
	fs.DurationVar(&o.sweepInterval, "sweep-interval", time.Minute, "how often the sweeper runs (serverless.yml: 1m)")
	fs.StringVar(&o.dynamodb, "dynamodb", "", "run on DynamoDB at this endpoint URL instead of the embedded store\n(default $AWS_ENDPOINT_URL_DYNAMODB)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("dev: unexpected argument %q", fs.Arg(0))
	}
	return o, nil
}

// devServer is a running local runtime.
type devServer struct {
	Addr  string
	store store.Store // for tests: to wait until subscriptions are stored
	done  chan error
}

// Wait returns when the runtime has shut down.
func (d *devServer) Wait() error { return <-d.done }

func runDev(ctx context.Context, cfg settings, args []string, stdout io.Writer) error {
	o, err := parseDevFlags(args)
	if err != nil {
		return err
	}
	if o.dynamodb == "" {
		o.dynamodb = cfg.DynamoDBEndpoint
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"}).Level(cfg.LogLevel).With().Timestamp().Logger()
	d, err := startDev(ctx, cfg, o, log)
	if err != nil {
		return err
	}
	if o.dynamodb != "" {
		fmt.Fprintf(stdout, "local runtime ready (DynamoDB at %s, tables %s and %s; the stream is fed from this process's own writes)\n",
			o.dynamodb, cfg.RegistryTable, cfg.DataTable)
	} else {
		fmt.Fprintf(stdout, "local runtime ready (data in %s)\n", o.data)
	}
	fmt.Fprintf(stdout, "  GraphiQL                http://%s/\n", d.Addr)
	fmt.Fprintf(stdout, "  chat demo               http://%s/demo\n", d.Addr)
	fmt.Fprintf(stdout, "  GraphQL over WebSocket  ws://%s/graphql  (graphql-transport-ws, graphql-ws)\n", d.Addr)
	fmt.Fprintf(stdout, "  GraphQL over HTTP       http://%s/graphql\n", d.Addr)
	fmt.Fprintf(stdout, "  management API          http://%s/@connections/{id}\n", d.Addr)
	return d.Wait()
}

// startDev opens the store (embedded, or DynamoDB at o.dynamodb), wires the handler and starts the
// local runtime; it returns once the runtime is listening. Cancelling ctx shuts it down.
func startDev(ctx context.Context, cfg settings, o devOptions, log zerolog.Logger) (*devServer, error) {
	if o.idleTimeout > 0 {
		cfg.IdleTimeout = o.idleTimeout
	}
	if o.maxDuration > 0 {
		cfg.MaxDuration = o.maxDuration
	}
	pages, err := web.New(web.Options{}) // GraphiQL and the demo, on this host
	if err != nil {
		return nil, err
	}
	s, feed, err := openDevStore(ctx, cfg, o)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.port)))
	if err != nil {
		s.Close()
		return nil, err
	}
	addr := ln.Addr().String()
	// The real management API client, pointed at the runtime's own @connections endpoint.
	conns := publish.NewClient(localAWSConfig(), "http://"+addr, cfg.DeliveryConcurrency)
	rt := local.New(local.Config{Handler: handler(cfg, s, conns, log), Stream: feed, Log: log, Pages: pages,
		MaxFrame: o.maxFrame, MaxMessage: o.maxMessage, IdleTimeout: o.idleTimeout, MaxDuration: o.maxDuration,
		ScheduleInterval: o.sweepInterval})
	d := &devServer{Addr: addr, store: s, done: make(chan error, 1)}
	go func() {
		err := rt.Serve(ctx, ln)
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		d.done <- err
	}()
	return d, nil
}

// localAWSConfig is the SDK configuration for local endpoints: requests are signed with dummy
// credentials and never leave the machine.
func localAWSConfig() aws.Config {
	return aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")}
}

// openDevStore opens the embedded store with its durable change log, or, given a DynamoDB
// endpoint, the DynamoDB store (creating its tables if missing) with an in-memory change log fed
// by the store's own writes, since a plain DynamoDB endpoint may have no stream API.
func openDevStore(ctx context.Context, cfg settings, o devOptions) (store.Store, local.ChangeLog, error) {
	if o.dynamodb == "" {
		if err := os.MkdirAll(o.data, 0o755); err != nil {
			return nil, nil, fmt.Errorf("data directory: %w", err)
		}
		s, err := embedded.Open(filepath.Join(o.data, "store.db"), embedded.Options{})
		if err != nil {
			return nil, nil, err
		}
		return s, changeFeed{s}, nil
	}
	client := dynamodb.NewFromConfig(localAWSConfig(), func(opts *dynamodb.Options) { opts.BaseEndpoint = aws.String(o.dynamodb) })
	feed := local.NewMemoryLog()
	arn := "arn:aws:dynamodb:us-east-1:000000000000:table/" + cfg.DataTable + "/stream/local"
	s := dynamostore.New(client, dynamostore.Options{RegistryTable: cfg.RegistryTable, DataTable: cfg.DataTable,
		OnChange: func(kind store.ChangeKind, old, new *store.Message) {
			feed.Append(func(seq uint64) (json.RawMessage, error) {
				rec, err := store.ChangeRecord(kind, old, new, seq, arn, time.Now())
				if err != nil {
					return nil, err
				}
				return json.Marshal(rec)
			})
		}})
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.CreateTables(tctx); err != nil {
		return nil, nil, fmt.Errorf("DynamoDB at %s: %w", o.dynamodb, err)
	}
	return s, feed, nil
}

// changeFeed adapts the embedded store's change log to the local runtime's.
type changeFeed struct{ *embedded.Store }

func (f changeFeed) ReadChanges(ctx context.Context, after uint64, limit int) ([]local.Record, error) {
	changes, err := f.Store.ReadChanges(ctx, after, limit)
	recs := make([]local.Record, len(changes))
	for i, c := range changes {
		recs[i] = local.Record{Seq: c.Seq, JSON: c.Record}
	}
	return recs, err
}
