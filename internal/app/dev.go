package app

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/gqlhttp"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/store"
	dynamostore "github.com/realtime-gql/lambdaws/store/dynamo"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/realtime-gql/lambdaws/web"
	"github.com/rs/zerolog"
)

// DevConfig configures the local runtime: the flags of `bootstrap dev`. API Gateway's limits
// that the handler applies too (the message limit, the idle timeout, the maximum duration) are in
// Config, so that one setting reaches the emulator and the handler alike.
type DevConfig struct {
	// Host and Port are where the runtime listens; Port 0 picks a free port.
	Host string
	Port int
	// Data is the directory of the embedded store (store.db), used when DynamoDB is empty.
	Data string
	// DynamoDB is a DynamoDB endpoint URL to run on instead of the embedded store (dynalite,
	// DynamoDB Local): the tables are created if missing, and since such an endpoint may have no
	// stream API, the stream is fed from this process's own writes.
	DynamoDB string
	// MaxFrame is API Gateway's inbound frame limit; default facts.MaxFrame.
	MaxFrame int64
	// SweepInterval is how often the sweeper runs; default facts.ScheduleRate.
	SweepInterval time.Duration
	// ChunkConsumers is how many invocations consume the emulated chunk queue at once (the
	// event source mapping's maximum concurrency); default 4.
	ChunkConsumers int
	// ChunkVisibility is the emulated chunk queue's visibility timeout: a failed chunk comes back
	// that long after it was received; default local's (30s).
	ChunkVisibility time.Duration
	// Metrics receives the EMF metric lines; nil prints none (main sets stdout with
	// LOG_LEVEL=debug).
	Metrics io.Writer
	// Outbound bounds, per connection, the messages accepted and not yet read by the client
	// (local.Config.MaxOutbound and MaxOutboundBytes); zero values take local's defaults.
	MaxOutbound      int
	MaxOutboundBytes int64
	// MaxInflight bounds one connection's frames handled at once; default
	// local.DefaultMaxInflight.
	MaxInflight int
}

// ChunkQueue is the name of the emulated chunk queue.
const ChunkQueue = "lambdaws-dev-chunks"

// Dev is a running local runtime.
type Dev struct {
	// Addr is the address it listens on.
	Addr string
	// Store is the store it runs on, for tests that look at the registry; the runtime closes it
	// when it shuts down.
	Store store.Store
	// Runtime is the local runtime, for tests that look at its emulated queues.
	Runtime *local.Runtime
	// Invoke runs the handler with an event, as Lambda does for sources the runtime does not
	// emulate (an EventBridge rule's event).
	Invoke func(ctx context.Context, payload []byte) ([]byte, error)
	done   chan error
}

// Wait returns when the runtime has shut down and its store is closed.
func (d *Dev) Wait() error { return <-d.done }

// StartDev opens the store dc names and serves it with ServeDev. Cancelling ctx shuts the runtime
// down.
func StartDev(ctx context.Context, cfg Config, dc DevConfig, log zerolog.Logger) (*Dev, error) {
	s, feed, err := OpenDevStore(ctx, cfg, dc)
	if err != nil {
		return nil, err
	}
	return ServeDev(ctx, cfg, dc, s, feed, log)
}

// OpenDevStore opens the embedded store in dc.Data with its durable change log, or, given
// dc.DynamoDB, the DynamoDB store on the tables cfg names (creating them if missing) with an
// in-memory change log fed by the store's own writes.
func OpenDevStore(ctx context.Context, cfg Config, dc DevConfig) (store.Store, local.ChangeLog, error) {
	cfg = cfg.WithDefaults()
	if dc.DynamoDB == "" {
		if err := os.MkdirAll(dc.Data, 0o755); err != nil {
			return nil, nil, fmt.Errorf("data directory: %w", err)
		}
		s, err := embedded.Open(filepath.Join(dc.Data, "store.db"), embedded.Options{})
		if err != nil {
			return nil, nil, err
		}
		return s, changeFeed{s}, nil
	}
	client := dynamodb.NewFromConfig(localAWSConfig(), func(opts *dynamodb.Options) { opts.BaseEndpoint = aws.String(dc.DynamoDB) })
	feed := local.NewMemoryLog()
	s := dynamostore.New(client, dynamostore.Options{RegistryTable: cfg.RegistryTable, DataTable: cfg.DataTable,
		OnChange: dynamostore.StreamTo(feed, cfg.DataTable)})
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.CreateTables(tctx); err != nil {
		return nil, nil, fmt.Errorf("DynamoDB at %s: %w", dc.DynamoDB, err)
	}
	return s, feed, nil
}

// ServeDev starts the local runtime on dc's address, driving the handler NewService builds over
// s, with the real management API client (internal/mgmt's, NewGateway) pointed at the runtime's
// own @connections endpoint (reached in process: local.Runtime.RoundTrip), the real SQS client at its emulated chunk
// queue (ChunkQueue), and feed as the stream. It returns once the runtime is listening. ServeDev owns s: once ctx is done
// and the runtime has shut down (every invocation ended), it closes s.
func ServeDev(ctx context.Context, cfg Config, dc DevConfig, s store.Store, feed local.ChangeLog, log zerolog.Logger) (*Dev, error) {
	cfg, err := cfg.verifier(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(dc.Host, strconv.Itoa(dc.Port)))
	if err != nil {
		s.Close()
		return nil, err
	}
	addr := ln.Addr().String()
	// GraphiQL and the demo, on this host; the demo offers to send test announcements through the
	// invoke endpoint.
	pages, err := web.New(web.Options{InvokePath: facts.InvokePath})
	if err != nil {
		ln.Close()
		s.Close()
		return nil, err
	}
	base := "http://" + addr
	awsCfg := localAWSConfig()
	creds, err := awsCfg.Credentials.Retrieve(ctx)
	if err != nil {
		ln.Close()
		s.Close()
		return nil, err
	}
	// The handler's management client reaches the runtime's @connections in process (the
	// runtime is its transport): the same signed requests and answers, without a loopback
	// round trip per post.
	var rt *local.Runtime
	gw, err := newGateway(awsCfg, base, cfg.DeliveryConcurrency, roundTripper(func(r *http.Request) (*http.Response, error) { return rt.RoundTrip(r) }))
	if err != nil {
		ln.Close()
		s.Close()
		return nil, err
	}
	cfg.ChunkQueueURL = local.QueueURL(addr, ChunkQueue)
	svc, err := NewService(cfg, s, Deps{Gateway: gw, Queue: NewQueue(awsCfg, cfg.ChunkQueueURL, base), Metrics: dc.Metrics}, log)
	if err != nil {
		ln.Close()
		s.Close()
		return nil, err
	}
	rt = local.New(local.Config{Handler: svc, Stream: feed, Log: log, Pages: pages,
		MaxFrame: dc.MaxFrame, MaxMessage: int64(cfg.MaxMessage), IdleTimeout: cfg.IdleTimeout, MaxDuration: cfg.MaxDuration,
		ScheduleInterval: dc.SweepInterval, MaxInflight: dc.MaxInflight, MaxOutbound: dc.MaxOutbound, MaxOutboundBytes: dc.MaxOutboundBytes,
		MaxHTTPBody: cmp.Or(cfg.MaxHTTPBody, gqlhttp.DefaultMaxBody), CORSOrigins: cfg.CORSOrigins,
		Credentials: creds, Region: awsCfg.Region,
		// The chunk queue's mapping as serverless.yml declares it: batches of 4.
		Queues: []local.QueueConfig{{Name: ChunkQueue, BatchSize: 4, Consumers: cmp.Or(dc.ChunkConsumers, 4), VisibilityTimeout: dc.ChunkVisibility}}})
	d := &Dev{Addr: addr, Store: s, Runtime: rt, Invoke: rt.Invoke, done: make(chan error, 1)}
	go func() {
		err := rt.Serve(ctx, ln)
		svc.Close()
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		d.done <- err
	}()
	return d, nil
}

// localAWSConfig is the SDK configuration for local endpoints: requests never leave the machine.
// The credentials are made anew for each process: the runtime's management API accepts only
// requests they sign, so no other process on the machine can post to, read or close a socket.
func localAWSConfig() aws.Config {
	return aws.Config{Region: local.Region, Credentials: credentials.NewStaticCredentialsProvider("local", localSecret, "")}
}

// localSecret is the secret access key of localAWSConfig, random per process.
var localSecret = func() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}()

// roundTripper is a function as an http.RoundTripper.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

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
