// Command bootstrap is the whole service in one binary: the Lambda handler on AWS (when
// AWS_LAMBDA_RUNTIME_API is set), or, with `dev`, a local runtime that emulates API Gateway and the
// DynamoDB stream on an embedded store and drives the same handler with the same events.
//
// main only wires: it reads configuration in one place, builds the handler once, and either
// hands it to the Lambda runtime or to the local runtime.
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
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/gqlhttp"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/internal/socket"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/router"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
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
}

func readSettings(getenv func(string) string) (settings, error) {
	s := settings{LogLevel: zerolog.InfoLevel, DeliveryConcurrency: publish.DefaultConcurrency, InitTimeout: 3 * time.Second}
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
	return errors.New("usage: bootstrap dev [--port N] [--host H] [--data DIR]\n" +
		"(on AWS Lambda, AWS_LAMBDA_RUNTIME_API is set and the handler starts by itself)")
}

// handler builds the one Lambda handler over a store and a management API client.
func handler(cfg settings, s store.Store, conns interface {
	socket.Connections
	publish.Poster
}, log zerolog.Logger) *router.Router {
	exec := graph.NewExecutor(&graph.Resolver{Messages: s}, graph.Options{DisableIntrospection: cfg.DisableIntrospection})
	ws := socket.New(socket.Config{Registry: s, Executor: exec, Connections: conns, InitTimeout: cfg.InitTimeout})
	fan := publish.New(publish.Config{Registry: s, Renderer: exec, Poster: conns, Concurrency: cfg.DeliveryConcurrency})
	return router.New(ws, gqlhttp.New(exec, 0), fan, log)
}

func runLambda(ctx context.Context, cfg settings, getenv func(string) string) error {
	return errors.New("the DynamoDB backend is not built yet: the Lambda mode needs it")
}

// devOptions are the flags of `bootstrap dev`.
type devOptions struct {
	host, data string
	port       int
}

func parseDevFlags(args []string) (devOptions, error) {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	var o devOptions
	fs.StringVar(&o.host, "host", "127.0.0.1", "address to listen on")
	fs.IntVar(&o.port, "port", 4000, "port to listen on (0 picks a free one)")
	fs.StringVar(&o.data, "data", "./.data", "directory of the embedded store")
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
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"}).Level(cfg.LogLevel).With().Timestamp().Logger()
	d, err := startDev(ctx, cfg, o, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "local runtime ready (data in %s)\n", o.data)
	fmt.Fprintf(stdout, "  GraphQL over WebSocket  ws://%s/graphql  (graphql-transport-ws, graphql-ws)\n", d.Addr)
	fmt.Fprintf(stdout, "  GraphQL over HTTP       http://%s/graphql\n", d.Addr)
	fmt.Fprintf(stdout, "  management API          http://%s/@connections/{id}\n", d.Addr)
	return d.Wait()
}

// startDev opens the embedded store, wires the handler and starts the local runtime; it returns
// once the runtime is listening. Cancelling ctx shuts it down.
func startDev(ctx context.Context, cfg settings, o devOptions, log zerolog.Logger) (*devServer, error) {
	if err := os.MkdirAll(o.data, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s, err := embedded.Open(filepath.Join(o.data, "store.db"), embedded.Options{})
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
	awsCfg := aws.Config{Region: "local", Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")}
	conns := publish.NewClient(awsCfg, "http://"+addr, cfg.DeliveryConcurrency)
	rt := local.New(local.Config{Handler: handler(cfg, s, conns, log), Stream: changeFeed{s}, Log: log})
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

var _ = lambda.Start
