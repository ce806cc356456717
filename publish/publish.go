// Package publish turns what Lambda brings (DynamoDB stream batches, and the chunk queue's SQS messages) into deliveries by the fan-out engine (internal/fanout), and the engine's outcomes into partial batch responses, log lines and metrics.
//
// One Fanout lives as long as the process: its engine's delivery workers are started on first
// use and reused by every invocation. A stream batch becomes records (Records: today, the
// example's mapping, graph.Events); the engine delivers records of different topics concurrently
// and records of one topic in batch order, renders each distinct operation once per event,
// frames every result with payload.extensions.event = {"id", "seq"} and posts it through the
// management API client (internal/mgmt). Its outcomes become the stream's batchItemFailures:
// a record that failed (the management API or the registry failing, the deadline with nothing
// to carry to) or that was carried over to the chunk queue at the deadline is reported, with
// one log line saying why, so Lambda retries it and a later record of its topic cannot overtake
// it. Every delivered event gets a done marker in the registry (fanout.Config.MarkAll), so a
// record that comes back (a retry after a timeout, a duplicate) reaches nobody twice. What the
// engine hands to the chunk queue comes back as SQS messages marked as continuations
// (internal/chunkq) and is delivered by HandleQueue, which reports the messages that failed by
// id (a malformed one too, so that it reaches the queue's dead-letter queue); the other messages
// of an SQS batch go to the CloudEvents handler (cloudEvents).
//
// Each stream batch and each chunk batch prints one CloudWatch Embedded Metric Format line
// (Config.Metrics).
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
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/chunkq"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/rs/zerolog"
)

// Renderer executes a stored subscription against one event; *graph.Executor satisfies it.
type Renderer interface {
	Render(ctx context.Context, req graph.Request, ev *graph.Event) *graphql.Response
}

// Gateway is what the fan-out asks of the management API: posting, and closing the connections
// of expired principals. *mgmt.Client satisfies it; SDK adapts the SDK's client.
type Gateway interface {
	// Post sends one message, retrying as its policy allows within ctx; errors are classified
	// by Classify.
	Post(ctx context.Context, connID string, data []byte) error
	// Delete closes a connection.
	Delete(ctx context.Context, connID string) error
}

// DefaultNamespace is the CloudWatch namespace of the metrics.
const DefaultNamespace = "lambdaws"

// Config holds the Fanout's dependencies and settings. Registry, Renderer and Gateway are
// required.
type Config struct {
	Registry fanout.Registry
	Renderer Renderer
	Gateway  Gateway
	// Queue is the chunk queue (chunkq.Queue); nil disables chunking, and what is undelivered
	// at the deadline fails its record instead of being carried.
	Queue fanout.Queue
	// Match reports whether an event concerns a subscription beyond its topic (its filter);
	// nil matches every subscription of the topic. Subscriptions carry no filter yet: the
	// engine's filter plugs in here.
	Match func(s *store.Subscription, ev *fanout.Event) bool
	// Now is the clock principals expire by; default time.Now.
	Now func() time.Time
	// Concurrency is the number of delivery workers; default fanout.DefaultConcurrency.
	Concurrency int
	// MaxMessage is the largest message posted; default fanout.DefaultMaxMessage (API
	// Gateway's 128 KiB). A larger result is replaced by a RESULT_TOO_LARGE error.
	MaxMessage int
	// Margin is the deadline margin: no post starts later than this before the invocation's
	// deadline; default fanout.DefaultMargin.
	Margin time.Duration
	// ChunkSize is how many subscribers of a topic one invocation delivers before it splits
	// the rest into chunks for the queue; default fanout.DefaultChunkSize.
	ChunkSize int
	// PollInterval is the first wait between reads of chunk done markers; default fanout's.
	PollInterval time.Duration
	// Metrics receives one EMF line per stream batch and per chunk batch; nil prints none.
	// Writes are whole lines, one Write each.
	Metrics io.Writer
	// Namespace is the metrics' CloudWatch namespace; default DefaultNamespace.
	Namespace string
}

// Fanout handles stream batches and chunk messages. It is safe for concurrent use.
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
		cfg.Namespace = DefaultNamespace
	}
	return &Fanout{cfg: cfg}
}

func (f *Fanout) engine() *fanout.Engine {
	f.once.Do(func() {
		f.eng = fanout.New(fanout.Config{
			Registry: f.cfg.Registry, Renderer: renderer{f.cfg.Renderer}, Poster: f.cfg.Gateway, Queue: f.cfg.Queue,
			Classify: Classify, Match: f.cfg.Match, Expired: f.expired, CloseExpired: f.closeExpired,
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

// Stats is what one stream batch did: the engine's counts, and the records that could not be
// decoded (logged and acknowledged: retrying cannot fix them).
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
	recs, malformed := Records(ctx, ev)
	resp := events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{}}
	outs, st := f.engine().Deliver(ctx, recs)
	for i, out := range outs {
		if !out.Report(true) {
			continue
		}
		r := &recs[i]
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: r.Seq})
		e := log.Error()
		msg := "stream record failed; reported for retry"
		switch {
		case out.Status == fanout.Carried:
			e, msg = log.Warn(), "stream record carried to the chunk queue; reported so that its retry waits for the chunks"
		case out.Reason == fanout.ReasonBlocked || out.Reason == fanout.ReasonWaiting:
			e = log.Warn()
		}
		e.Err(out.Err).Str("event", r.ID).Str("seq", r.Seq).Str("status", out.Status.String()).
			Str("reason", out.Reason.String()).Msg(msg)
	}
	stats := Stats{Stats: st, Malformed: malformed}
	f.logBatch(log, "stream", stats.Stats, malformed, len(resp.BatchItemFailures))
	f.metrics("stream", st)
	return resp, stats
}

// Records turns a stream batch into the engine's records with the example's mapping
// (graph.Events): each record's events, identified by its eventID and sequence number. A record
// that cannot be decoded is logged, counted and left out (acknowledged: a retry cannot fix it,
// and blocking the shard would hold back every later change).
func Records(ctx context.Context, ev events.DynamoDBEvent) (recs []fanout.Record, malformed int) {
	recs = make([]fanout.Record, 0, len(ev.Records))
	for _, rec := range ev.Records {
		gevs, err := graph.Events(rec)
		if err == nil {
			var evs []fanout.Event
			for _, g := range gevs {
				payload, merr := json.Marshal(g.Message)
				if merr != nil {
					err = merr
					break
				}
				evs = append(evs, fanout.Event{ID: rec.EventID, Seq: rec.Change.SequenceNumber, Field: g.Field, Topic: g.Topic, Payload: payload})
			}
			if err == nil {
				recs = append(recs, fanout.Record{ID: rec.EventID, Seq: rec.Change.SequenceNumber, Events: evs,
					Created: rec.Change.ApproximateCreationDateTime.Time})
				continue
			}
		}
		malformed++
		zerolog.Ctx(ctx).Error().Err(err).Str("event", rec.EventID).Str("seq", rec.Change.SequenceNumber).
			Msg("stream record skipped: it cannot be decoded")
	}
	return recs, malformed
}

// HandleQueue is the SQS handler: messages marked as continuations are delivered by the engine,
// every other message goes to the CloudEvents handler (cloudEvents). The response names every
// message to redeliver.
func (f *Fanout) HandleQueue(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
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
		resp.BatchItemFailures = append(resp.BatchItemFailures, f.cloudEvents(ctx, events.SQSEvent{Records: others}).BatchItemFailures...)
	}
	return resp, nil
}

// cloudEvents handles the SQS messages that are not continuations: CloudEvents users send.
// Until that handler exists here, each is reported (so it is redelivered and finally reaches the
// queue's dead-letter queue) with one log line.
func (f *Fanout) cloudEvents(ctx context.Context, ev events.SQSEvent) events.SQSEventResponse {
	resp := events.SQSEventResponse{}
	for _, m := range ev.Records {
		zerolog.Ctx(ctx).Error().Str("message", m.MessageId).Str("queue", m.EventSourceARN).
			Msg("SQS message is not a continuation and this build has no CloudEvents handler; reported")
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
	}
	return resp
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
		log.Error().Err(out.Err).Str("message", msgs[i].MessageId).Str("event", conts[i].Event.ID).Str("part", conts[i].Part).
			Str("receiveCount", msgs[i].Attributes["ApproximateReceiveCount"]).Str("reason", out.Reason.String()).
			Msg("continuation failed; reported for redelivery")
	}
	f.logBatch(log, "chunks", st, 0, len(fails))
	f.metrics("chunks", st)
	return fails, st
}

// logBatch writes the one summary line of a batch: info when it delivered or forgot anything,
// warn when it failed or skipped anything, debug otherwise.
func (f *Fanout) logBatch(log *zerolog.Logger, source string, st fanout.Stats, malformed, reported int) {
	e := log.Debug()
	switch {
	case st.Failed > 0 || st.Throttled > 0 || malformed > 0 || st.TooLarge > 0 || reported > 0:
		e = log.Warn()
	case st.Delivered > 0 || st.Gone > 0 || st.Expired > 0:
		e = log.Info()
	}
	e.Str("source", source).Int("records", st.Records).Int("reported", reported).Int("malformed", malformed).
		Int("skipped", st.Skipped).Int64("subscribers", st.Subscribers).Int64("renders", st.Renders).
		Int64("delivered", st.Delivered).Int64("filtered", st.Filtered).Int64("gone", st.Gone).
		Int64("expired", st.Expired).Int64("failed", st.Failed).Int64("throttled", st.Throttled).
		Int64("tooLarge", st.TooLarge).Int64("chunks", st.Chunks).Int64("carried", st.Carried).
		Dur("duration", st.Duration).Msg("batch published")
}

// metrics prints the batch's EMF line.
func (f *Fanout) metrics(source string, st fanout.Stats) {
	if f.cfg.Metrics == nil {
		return
	}
	line := append(fanout.EMF(f.cfg.Namespace, map[string]string{"Source": source}, st), '\n')
	f.mmu.Lock()
	f.cfg.Metrics.Write(line)
	f.mmu.Unlock()
}

// renderer adapts graph's executor to the engine: the event's payload is the message.
type renderer struct{ r Renderer }

func (a renderer) Render(ctx context.Context, s *store.Subscription, ev *fanout.Event) json.RawMessage {
	var m store.Message
	if err := json.Unmarshal(ev.Payload, &m); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Str("event", ev.ID).Str("topic", ev.Topic).Msg("event payload is not a message")
		return graph.ErrorsJSON(graph.InternalError())
	}
	resp := a.r.Render(ctx, graph.Request{Query: s.Query, OperationName: s.OperationName, Variables: s.Variables},
		&graph.Event{Topic: ev.Topic, Field: ev.Field, Message: &m})
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
