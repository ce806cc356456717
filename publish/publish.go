// Package publish turns events into deliveries by the fan-out engine (internal/fanout): data-table stream records, external events (EventBridge, SQS and SNS CloudEvents) and the chunk queue's continuations; and it turns the engine's outcomes into partial batch responses, log lines and metrics.
//
// Sources: HandleDynamoDB (stream batches: store/stream decodes each record into an
// engine.Change, which the schema, Config.Sources, addresses to subscription fields and topics:
// Records), HandleEventBridge (one event per invoke), HandleSQS (a batch: the chunk queue's
// continuations, marked by internal/chunkq, go to Continue; every other message is a CloudEvent)
// and HandleSNS (a CloudEvent notification); publish/source decodes the external ones. Events of
// type lambdaws.invalidate go to Config.Invalidator instead of subscribers.
//
// One Fanout lives as long as the process: its engine's delivery workers are started on first
// use and reused by every invocation. The engine delivers records of different topics
// concurrently and records of one topic in batch order; it matches each subscriber's stored
// filter before rendering anything (Config.Match: the payload decoded once per event, each
// distinct filter compiled once per event, no allocation per candidate), renders each distinct
// operation once per event, as its subscriber (graph.WithPrincipal with the principal stored with
// the subscription, which is part of the render key), frames every result with
// payload.extensions.event = {"id", "seq"} (the engine splices it in; the renderer does not add
// it) and posts it through the management API client (internal/mgmt). A subscription whose
// principal has expired (the rule of auth.ExpiredJSON) receives nothing: it is counted, and its
// connection is closed and forgotten, once per invocation.
//
// Failures are sorted by whose they are. A subscriber's failure (gone, throttled past retries,
// refused alone) never fails the record: a gone connection is forgotten with its subscriptions,
// the rest are logged and counted. A failure of the service (most posts refused or failing, the
// registry unreadable, the deadline with nothing to carry to) fails the record: a stream record
// is reported in batchItemFailures (and so is one carried over to the chunk queue at the
// deadline, so that a later record of its topic cannot overtake it), an SQS message is reported
// by its id, and an EventBridge or SNS invoke fails, so Lambda retries it; each with one log line
// saying why. Every delivered event gets a done marker in the registry (fanout.Config.MarkAll),
// so a record that comes back (a retry after a timeout, a duplicate) reaches nobody twice. A
// malformed event is logged once and skipped (stream, EventBridge, SNS) or reported, so that it
// reaches the queue's dead-letter queue (SQS).
//
// Each batch (stream, chunks, eventbridge, sqs, sns) prints one CloudWatch Embedded Metric Format
// line (Config.Metrics) and one summary log line.
package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/chunkq"
	"github.com/realtime-gql/lambdaws/internal/emf"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/filter"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
	"github.com/rs/zerolog"
)

// Renderer executes a stored subscription against one event; *graph.Executor satisfies it. The
// context carries the subscriber's principal (graph.WithPrincipal).
type Renderer interface {
	Render(ctx context.Context, req graph.Request, ev *engine.Event) *graphql.Response
}

// Sources addresses decoded changes to subscription fields and topics, as the schema declares,
// and compiles stored filters; *graph.Executor satisfies it.
type Sources interface {
	// Events addresses a change to the fields and topics it feeds.
	Events(ch engine.Change) ([]engine.Event, error)
	// Filter compiles a stored subscription's filter key for the field it filters.
	Filter(field, key string) (*filter.Filter, error)
}

// Gateway is what the fan-out asks of the management API: posting, and closing the connections
// of expired principals. *mgmt.Client satisfies it (and the tests' *mgmttest.Gateway).
type Gateway interface {
	// Post sends one message, retrying as its policy allows within ctx; errors are classified
	// by Classify.
	Post(ctx context.Context, connID string, data []byte) error
	// Delete closes a connection.
	Delete(ctx context.Context, connID string) error
}

// Config holds the Fanout's dependencies and settings. Registry, Sources, Renderer and Gateway
// are required.
type Config struct {
	Registry fanout.Registry
	Sources  Sources
	Renderer Renderer
	Gateway  Gateway
	// Invalidator receives the events of type lambdaws.invalidate (envelope.InvalidateType) from
	// EventBridge, SQS and SNS; nil logs and drops them.
	Invalidator Invalidator
	// Queue is the chunk queue (chunkq.Queue); nil disables chunking, and what is undelivered
	// at the deadline fails its record instead of being carried.
	Queue fanout.Queue
	// Now is the clock principals expire by; default time.Now.
	Now func() time.Time
	// Concurrency is the number of delivery workers; default fanout.DefaultConcurrency.
	Concurrency int
	// MaxMessage is the largest message posted; default facts.MaxMessage (API
	// Gateway's 128 KiB). A larger result is replaced by a RESULT_TOO_LARGE error.
	MaxMessage int
	// Margin is the deadline margin: no post starts later than this before the invocation's
	// deadline, and no external event is started either; default fanout.DefaultMargin.
	Margin time.Duration
	// ChunkSize is how many subscribers of a topic one invocation delivers before it splits
	// the rest into chunks for the queue; default fanout.DefaultChunkSize.
	ChunkSize int
	// PollInterval is the first wait between reads of chunk done markers; default fanout's.
	PollInterval time.Duration
	// Metrics receives one EMF line per batch; nil prints none. Writes are whole lines, one
	// Write each.
	Metrics io.Writer
	// Namespace is the metrics' CloudWatch namespace; default emf.Namespace.
	Namespace string
}

// Fanout handles stream batches, external events and chunk messages. It is safe for concurrent
// use.
type Fanout struct {
	cfg    Config
	once   sync.Once
	eng    *fanout.Engine
	expiry expiryCache
	mmu    sync.Mutex // one metrics line at a time
}

// New returns a Fanout. Its engine starts on first use; Close stops it.
func New(cfg Config) *Fanout {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Namespace == "" {
		cfg.Namespace = emf.Namespace
	}
	if cfg.Margin <= 0 {
		cfg.Margin = fanout.DefaultMargin
	}
	return &Fanout{cfg: cfg}
}

func (f *Fanout) engine() *fanout.Engine {
	f.once.Do(func() {
		f.eng = fanout.New(fanout.Config{
			Registry: f.cfg.Registry, Renderer: renderer{f.cfg.Renderer}, Poster: f.cfg.Gateway, Queue: f.cfg.Queue,
			Classify: Classify, Match: f.matcher, Expired: f.expired, CloseExpired: f.closeExpired, Now: f.cfg.Now,
			Concurrency: f.cfg.Concurrency, MaxMessage: f.cfg.MaxMessage, Margin: f.cfg.Margin, ChunkSize: f.cfg.ChunkSize,
			PollInterval: f.cfg.PollInterval, MarkAll: true,
		})
	})
	return f.eng
}

// Close stops the engine's workers; call it once no handler runs.
func (f *Fanout) Close() {
	f.once.Do(func() {}) // no engine may start after Close
	if f.eng != nil {
		f.eng.Close()
	}
}

// Stats is what one batch did: the engine's counts, and the records or events that could not be
// decoded or addressed (logged; acknowledged, or on SQS reported so that they reach the
// dead-letter queue: retrying cannot fix them).
type Stats struct {
	fanout.Stats
	Malformed int
}

// HandleDynamoDB is the stream handler: a partial batch response naming every record to retry.
func (f *Fanout) HandleDynamoDB(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	resp, _ := f.Publish(ctx, ev)
	return resp, nil
}

// Publish delivers a stream batch and reports, besides the partial batch response, what it did.
func (f *Fanout) Publish(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, Stats) {
	log := zerolog.Ctx(ctx)
	recs, malformed := f.Records(ctx, ev)
	resp := events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{}}
	outs, st := f.engine().Deliver(ctx, recs)
	for i, out := range outs {
		if !out.Report(true) {
			continue
		}
		r := &recs[i]
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: r.Seq})
		msg := "stream record failed; reported for retry"
		if out.Status == fanout.Carried {
			msg = "stream record carried to the chunk queue; reported so that its retry waits for the chunks"
		}
		outcomeEvent(log, out).Err(out.Err).Str("event", r.ID).Str("seq", r.Seq).Str("status", out.Status.String()).
			Str("reason", out.Reason.String()).Msg(msg)
	}
	stats := Stats{Stats: st, Malformed: malformed}
	f.logBatch(log, "stream", stats, len(resp.BatchItemFailures))
	f.metrics("stream", stats)
	return resp, stats
}

// outcomeEvent is the level of a reported record's line: warn when it is only waiting (carried,
// blocked behind an earlier record, waiting for its chunks), error when it failed.
func outcomeEvent(log *zerolog.Logger, out fanout.Outcome) *zerolog.Event {
	if out.Status == fanout.Carried || out.Reason == fanout.ReasonBlocked || out.Reason == fanout.ReasonWaiting {
		return log.Warn()
	}
	return log.Error()
}

// Records turns a stream batch into the engine's records: store/stream decodes each record into
// an engine.Change (INSERT and MODIFY carry the new image, REMOVE the old one) and the schema
// addresses it to the fields and topics it feeds (Sources.Events). Each record keeps its identity
// (eventID and sequence number, in its events too) and its approximate creation time (the EMF
// age metric). A record of an item not written through an @item type has no events and no error.
// A record that cannot be decoded is logged, counted and left out (acknowledged: a retry cannot
// fix it, and blocking the shard would hold back every later change); one that can be addressed
// to some of its fields only is logged and counted, and delivered to those.
func (f *Fanout) Records(ctx context.Context, ev events.DynamoDBEvent) (recs []fanout.Record, malformed int) {
	recs = make([]fanout.Record, 0, len(ev.Records))
	for _, rec := range ev.Records {
		evs, err := f.streamEvents(rec)
		if err != nil {
			malformed++
			zerolog.Ctx(ctx).Error().Err(err).Str("event", rec.EventID).Str("seq", rec.Change.SequenceNumber).
				Int("fields", len(evs)).Msg("stream record skipped: it cannot be decoded or addressed")
			if len(evs) == 0 {
				continue
			}
		}
		recs = append(recs, fanout.Record{ID: rec.EventID, Seq: rec.Change.SequenceNumber, Events: evs,
			Keys: partitionKey(rec), Created: rec.Change.ApproximateCreationDateTime.Time})
	}
	return recs, malformed
}

// partitionKey is the order key of a stream record: its item's partition key, so that the changes
// to one partition are delivered in write order (DynamoDB Streams keep that order, and only that,
// even with a ParallelizationFactor above 1). A record without a readable key has none.
func partitionKey(rec events.DynamoDBEventRecord) []string {
	pk, ok := rec.Change.Keys[store.AttrPK]
	if !ok || pk.DataType() != events.DataTypeString {
		return nil
	}
	return []string{pk.String()}
}

// streamEvents decodes a data-table stream record and addresses it to the subscription fields it
// feeds.
func (f *Fanout) streamEvents(rec events.DynamoDBEventRecord) ([]engine.Event, error) {
	ic, ok, err := stream.DecodeItemChange(rec)
	if err != nil || !ok {
		return nil, err
	}
	ch := engine.Change{ID: ic.EventID, Seq: ic.Seq, Item: ic.Type, Kind: engine.ChangeKind(ic.Kind), Value: ic.New}
	if ic.Kind == stream.Remove {
		ch.Value = ic.Old // a removal yields the item as it was
	}
	return f.cfg.Sources.Events(ch)
}

// HandleSQS is the SQS handler, for every queue the function consumes: the messages marked as
// continuations (internal/chunkq) are delivered by the engine (Continue); every other message is
// a CloudEvent (cloudEvents). The response names every message to redeliver.
func (f *Fanout) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var conts, others []events.SQSMessage
	for _, m := range ev.Records {
		if chunkq.IsContinuation(m) {
			conts = append(conts, m)
		} else {
			others = append(others, m)
		}
	}
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	if len(conts) > 0 {
		fails, _ := f.Continue(ctx, conts)
		resp.BatchItemFailures = append(resp.BatchItemFailures, fails...)
	}
	if len(others) > 0 {
		resp.BatchItemFailures = append(resp.BatchItemFailures, f.cloudEvents(ctx, others)...)
	}
	return resp, nil
}

// Continue delivers continuation messages concurrently, each idempotent per part, and returns
// the messages to redeliver (failed ones, and malformed ones so that they reach the dead-letter
// queue) with what the batch did.
func (f *Fanout) Continue(ctx context.Context, msgs []events.SQSMessage) ([]events.SQSBatchItemFailure, fanout.Stats) {
	log := zerolog.Ctx(ctx)
	eng := f.engine()
	outs := make([]fanout.Outcome, len(msgs))
	conts := make([]fanout.Continuation, len(msgs))
	var st fanout.Stats
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, m := range msgs {
		c, err := fanout.ParseContinuation([]byte(m.Body))
		if err != nil {
			outs[i] = fanout.Outcome{Status: fanout.Failed, Reason: fanout.ReasonInvalid, Err: err}
			continue
		}
		conts[i] = c
		wg.Go(func() {
			out, s := eng.Continue(ctx, conts[i])
			mu.Lock()
			outs[i] = out
			st.Add(s)
			mu.Unlock()
		})
	}
	wg.Wait()
	st.Records = len(msgs)
	var fails []events.SQSBatchItemFailure
	for i, out := range outs {
		if !out.Report(false) {
			continue
		}
		fails = append(fails, events.SQSBatchItemFailure{ItemIdentifier: msgs[i].MessageId})
		log.Error().Err(out.Err).Str("messageId", msgs[i].MessageId).Str("event", conts[i].Event.ID).Str("part", conts[i].Part).
			Str("receiveCount", msgs[i].Attributes["ApproximateReceiveCount"]).Str("reason", out.Reason.String()).
			Msg("continuation failed; reported for redelivery")
	}
	stats := Stats{Stats: st}
	f.logBatch(log, "chunks", stats, len(fails))
	f.metrics("chunks", stats)
	return fails, st
}

// logBatch writes the one summary line of a batch: at warn when it reported, failed or skipped
// anything, at debug otherwise (a delivery is routine; the EMF line counts it).
func (f *Fanout) logBatch(log *zerolog.Logger, source string, st Stats, reported int) {
	e := log.Debug()
	if st.Failed > 0 || st.Throttled > 0 || st.Malformed > 0 || st.TooLarge > 0 || reported > 0 {
		e = log.Warn()
	}
	e.Str("source", source).Int("records", st.Records).Int("reported", reported).Int("malformed", st.Malformed).
		Int("skipped", st.Skipped).Int64("subscribers", st.Subscribers).Int64("renders", st.Renders).
		Int64("delivered", st.Delivered).Int64("filtered", st.Filtered).Int64("gone", st.Gone).
		Int64("expired", st.Expired).Int64("failed", st.Failed).Int64("throttled", st.Throttled).
		Int64("tooLarge", st.TooLarge).Int64("chunks", st.Chunks).Int64("carried", st.Carried).
		Dur("duration", st.Duration).Msg("batch published")
}

// metrics prints the batch's EMF line.
func (f *Fanout) metrics(source string, st Stats) {
	if f.cfg.Metrics == nil {
		return
	}
	line := append(fanout.EMF(f.cfg.Namespace, map[string]string{"Source": source}, st.Stats), '\n')
	f.mmu.Lock()
	f.cfg.Metrics.Write(line)
	f.mmu.Unlock()
}

// renderer adapts the app's executor to the engine: each render runs as its subscriber, with the
// principal stored with the subscription. The engine adds extensions.event to what it returns.
type renderer struct{ r Renderer }

func (a renderer) Render(ctx context.Context, s *store.Subscription, ev *fanout.Event) json.RawMessage {
	// Readable: the engine checked the principal's expiry first, and an unreadable one counts
	// as expired.
	p, err := graph.PrincipalFromJSON(s.Principal)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Str("event", ev.ID).Str("topic", ev.Topic).Str("op", s.ID).Msg("stored principal cannot be read")
		return graph.ErrorsJSON(graph.InternalError())
	}
	resp := a.r.Render(graph.WithPrincipal(ctx, p), graph.Request{Query: s.Query, OperationName: s.OperationName, Variables: s.Variables}, ev)
	if resp == nil {
		return nil
	}
	b, err := json.Marshal(resp)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Str("event", ev.ID).Str("topic", ev.Topic).Str("op", s.ID).Msg("encode result")
		return graph.ErrorsJSON(graph.InternalError())
	}
	return b
}

// closeExpired closes and forgets the connection of an expired principal.
func (f *Fanout) closeExpired(ctx context.Context, connID string) error {
	err := f.cfg.Gateway.Delete(ctx, connID)
	if err != nil && Classify(err) == fanout.ClassGone {
		err = nil
	}
	if rerr := f.cfg.Registry.DeleteConnection(ctx, connID); rerr != nil {
		return rerr
	}
	if err != nil {
		return fmt.Errorf("close connection: %w", err)
	}
	return nil
}
