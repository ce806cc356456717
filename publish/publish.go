// Package publish turns events into deliveries: data-table stream records and external events (EventBridge, SQS and SNS CloudEvents) are decoded, addressed by the schema to subscription fields and topics, matched with each subscriber's filter, rendered and posted through the management API.
//
// Sources: HandleDynamoDB (stream batches; store/stream decodes the records), HandleEventBridge
// (one event per invoke), HandleSQS (batches of CloudEvents, with a partial batch response) and
// HandleSNS (one CloudEvent notification); publish/source decodes the external ones. Events of type
// lambdaws.invalidate go to the Config's Invalidator instead of subscribers. The schema
// (Config.Sources, the app's executor) says which fields and topics a change feeds.
//
// Records are handled in order, one at a time, so a subscriber sees a room's changes in the
// order they were written. Within a record the topic's subscribers are read page by page and
// delivered with bounded concurrency; nothing collects them all first. A subscriber's filter is
// matched before anything is rendered (the payload decoded once per event, each distinct filter
// compiled once per event, no allocation per candidate). A document is rendered once per distinct
// (query, operation name, variables, principal) and the result is framed for each subscriber, so
// ten thousand identical subscriptions cost one execution. Every result carries the event's
// identity in extensions.event.
//
// Every render runs as its subscriber: with the principal stored with the subscription
// (graph.WithPrincipal), which is part of the render key. A subscription whose principal has
// expired (auth.ExpiredJSON) receives nothing: it is counted, and its connection is closed and
// forgotten, once per event.
//
// Failures are sorted by whose they are. A subscriber's failure (gone, throttled past retries,
// refused) never fails the record: a gone connection is forgotten with its subscriptions, the
// rest are logged and counted. A failure of the service (the registry cannot be read) reports the
// record in batchItemFailures and stops the batch, so Lambda retries from exactly there and later
// records never overtake it (an SQS message is reported by its id; an EventBridge or SNS invoke
// fails, and Lambda retries it). A malformed event is logged once and skipped (stream, EventBridge,
// SNS) or reported, so it reaches the queue's dead-letter queue (SQS). Lambda delivers at least
// once: a retried record may reach some subscribers twice.
package publish

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/filter"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// Registry is the part of the store the fan-out uses.
type Registry interface {
	Subscriptions(ctx context.Context, topic string) iter.Seq2[store.Subscription, error]
	DeleteConnection(ctx context.Context, id string) error
}

// Renderer executes a stored subscription against one event; *graph.Executor satisfies it.
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

// Poster is the one management API call the fan-out makes; *apigatewaymanagementapi.Client
// satisfies it.
type Poster interface {
	PostToConnection(ctx context.Context, in *apigatewaymanagementapi.PostToConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error)
}

// Closer closes a connection through the management API; *apigatewaymanagementapi.Client
// satisfies it.
type Closer interface {
	DeleteConnection(ctx context.Context, in *apigatewaymanagementapi.DeleteConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.DeleteConnectionOutput, error)
}

// Errors a delivery can end with.
var (
	// ErrGone: the connection no longer exists; it is forgotten.
	ErrGone = errors.New("publish: connection gone")
	// ErrTooLarge: the result exceeds MaxMessage; the subscriber gets an error result instead.
	ErrTooLarge = errors.New("publish: result too large")
)

// DefaultConcurrency is the default number of posts in flight.
const DefaultConcurrency = 64

// Config holds the Fanout's dependencies and settings.
type Config struct {
	Registry Registry
	Sources  Sources
	Renderer Renderer
	Poster   Poster
	// Invalidator receives the events of type lambdaws.invalidate (envelope.InvalidateType) from
	// EventBridge, SQS and SNS; nil logs and drops them.
	Invalidator Invalidator
	// Closer closes the connections of expired principals; nil only forgets them.
	Closer Closer
	// Now is the clock principals expire by; default time.Now.
	Now func() time.Time
	// Concurrency bounds the posts in flight; default DefaultConcurrency.
	Concurrency int
	// MaxMessage is the largest message posted; default facts.MaxMessage. A larger result is
	// replaced by a RESULT_TOO_LARGE error.
	MaxMessage int
	// DeadlineMargin: a record is not started when the invocation's deadline is nearer than
	// this; it and the rest of the batch are reported for retry instead, so work already done
	// is not redone after a timeout. Default 3s.
	DeadlineMargin time.Duration
}

// Fanout delivers stream batches and external events to subscribers.
type Fanout struct {
	cfg Config
}

// New returns a Fanout.
func New(cfg Config) *Fanout {
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	cfg.MaxMessage = cmp.Or(cfg.MaxMessage, facts.MaxMessage)
	cfg.DeadlineMargin = cmp.Or(cfg.DeadlineMargin, 3*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Fanout{cfg: cfg}
}

// Stats counts what one batch did.
type Stats struct {
	Records     int // records handled (including skipped ones)
	Skipped     int // records that could not be decoded
	Events      int
	Subscribers int   // subscriptions read
	Renders     int64 // executions (one per distinct operation and event)
	Delivered   int64
	Filtered    int64 // subscriptions the event did not concern (their filter, or their document, left it out)
	Gone        int64 // deliveries to connections that had gone
	Expired     int64 // subscriptions skipped because their principal had expired
	Failed      int64 // deliveries that failed for another reason
	TooLarge    int64 // results replaced by an error for their size
}

// HandleDynamoDB is the stream handler.
func (f *Fanout) HandleDynamoDB(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	resp, _ := f.Publish(ctx, ev)
	return resp, nil
}

// Publish delivers a batch and reports, besides the partial batch response, what it did.
func (f *Fanout) Publish(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, Stats) {
	log := zerolog.Ctx(ctx)
	var st Stats
	resp := events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{}}
	for _, rec := range ev.Records {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < f.cfg.DeadlineMargin {
			log.Warn().Str("seq", rec.Change.SequenceNumber).Int("left", len(ev.Records)-st.Records).
				Msg("invocation deadline near; reporting the rest of the batch for retry")
			resp.BatchItemFailures = append(resp.BatchItemFailures,
				events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
			f.logStats(log, st)
			return resp, st
		}
		st.Records++
		evs, err := f.streamEvents(rec)
		if err != nil {
			// Undeliverable as it stands: retrying cannot fix it, and blocking the shard would
			// hold back every later change. Logged, so it is never silent. (A change that could
			// be addressed to some of its fields is still delivered to those.)
			st.Skipped++
			log.Error().Err(err).Str("event", rec.EventID).Str("seq", rec.Change.SequenceNumber).Msg("stream record skipped")
			if len(evs) == 0 {
				continue
			}
		}
		for i := range evs {
			st.Events++
			if err := f.deliver(ctx, &evs[i], &st); err != nil {
				log.Error().Err(err).Str("event", rec.EventID).Str("seq", rec.Change.SequenceNumber).
					Str("topic", evs[i].Topic).Msg("stream record failed; reporting it for retry")
				resp.BatchItemFailures = append(resp.BatchItemFailures,
					events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
				f.logStats(log, st)
				return resp, st
			}
		}
	}
	f.logStats(log, st)
	return resp, st
}

// streamEvents decodes a data-table stream record and addresses it to the subscription fields it
// feeds. A record of an item not written through an @item type gives no events and no error.
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

func (f *Fanout) logStats(log *zerolog.Logger, st Stats) {
	e := log.Debug() // one line per batch; at warn when a record was skipped or a delivery failed
	if st.Failed > 0 || st.Skipped > 0 || st.TooLarge > 0 {
		e = log.Warn()
	}
	e.Int("records", st.Records).Int("skipped", st.Skipped).Int("subscribers", st.Subscribers).
		Int64("renders", st.Renders).Int64("delivered", st.Delivered).Int64("filtered", st.Filtered).
		Int64("gone", st.Gone).Int64("expired", st.Expired).Int64("failed", st.Failed).Int64("tooLarge", st.TooLarge).Msg("batch published")
}

// compiled is one distinct stored filter, compiled for the event being delivered.
type compiled struct {
	once sync.Once
	f    *filter.Filter
	err  error
}

// pass reports whether the event passes the subscription's filter, matched before anything is
// rendered. The payload is decoded once per event and each distinct filter compiled once per event;
// matching a candidate then allocates nothing. A filter that no longer compiles (the schema changed
// since the subscription was stored) or a payload that cannot be matched keeps the event from the
// subscriber, with one log line per filter or event.
func (f *Fanout) pass(ctx context.Context, d *delivery, s *store.Subscription) bool {
	if s.Filter == "" {
		return true
	}
	d.docOnce.Do(func() {
		if d.doc, d.docErr = filter.NewDoc(d.ev.Payload); d.docErr != nil {
			zerolog.Ctx(ctx).Error().Err(d.docErr).Str("event", d.ev.ID).Str("topic", d.ev.Topic).
				Msg("payload cannot be matched with filters; filtered subscribers skipped")
		}
	})
	if d.docErr != nil {
		return false
	}
	d.mu.Lock()
	c, ok := d.filters[s.Filter]
	if !ok {
		c = &compiled{}
		d.filters[s.Filter] = c
	}
	d.mu.Unlock()
	c.once.Do(func() {
		if c.f, c.err = f.cfg.Sources.Filter(d.ev.Field, s.Filter); c.err != nil {
			zerolog.Ctx(ctx).Error().Err(c.err).Str("event", d.ev.ID).Str("topic", d.ev.Topic).
				Msg("stored filter does not compile; its subscribers skipped")
		}
	})
	return c.err == nil && c.f.Match(d.doc)
}

// rendered is one distinct operation's result for the event being delivered.
type rendered struct {
	once    sync.Once
	payload json.RawMessage // nil when the event does not concern the operation
	tooBig  bool
}

// delivery is the shared state of one event's fan-out.
type delivery struct {
	ev      *engine.Event
	now     time.Time // the time principals expire by, once per event
	mu      sync.Mutex
	renders map[string]*rendered
	filters map[string]*compiled // by filter key: each distinct filter compiled once per event
	docOnce sync.Once
	doc     *filter.Doc // the payload decoded for matching, once per event, when a filter needs it
	docErr  error
	gone    sync.Map // connection id → struct{}: forgotten once per event
	expired sync.Map // principal JSON → bool: whether it has expired
	// counters updated by the workers
	renderN, delivered, filtered, goneN, expiredN, failed, tooLarge atomic.Int64
}

// deliver fans one event out to its topic's subscribers. It returns an error only when the
// subscribers could not be read.
func (f *Fanout) deliver(ctx context.Context, ev *engine.Event, st *Stats) error {
	d := &delivery{ev: ev, now: f.cfg.Now(), renders: map[string]*rendered{}, filters: map[string]*compiled{}}
	var g errgroup.Group
	g.SetLimit(f.cfg.Concurrency)
	var readErr error
	for sub, err := range f.cfg.Registry.Subscriptions(ctx, ev.Topic) {
		if err != nil {
			readErr = err
			break
		}
		st.Subscribers++
		g.Go(func() error {
			f.deliverOne(ctx, d, sub)
			return nil
		})
	}
	g.Wait()
	st.Renders += d.renderN.Load()
	st.Delivered += d.delivered.Load()
	st.Filtered += d.filtered.Load()
	st.Gone += d.goneN.Load()
	st.Expired += d.expiredN.Load()
	st.Failed += d.failed.Load()
	st.TooLarge += d.tooLarge.Load()
	if readErr != nil {
		return fmt.Errorf("read subscribers of %s: %w", ev.Topic, readErr)
	}
	return nil
}

func renderKey(s store.Subscription) string {
	return s.Query + "\x00" + s.OperationName + "\x00" + string(s.Variables) + "\x00" + string(s.Principal)
}

// render returns the subscriber's result payload, executing the operation only the first time it
// is seen for this event.
func (f *Fanout) render(ctx context.Context, d *delivery, s store.Subscription) *rendered {
	key := renderKey(s)
	d.mu.Lock()
	r, ok := d.renders[key]
	if !ok {
		r = &rendered{}
		d.renders[key] = r
	}
	d.mu.Unlock()
	r.once.Do(func() {
		d.renderN.Add(1)
		p, err := graph.PrincipalFromJSON(s.Principal) // readable: expiredPrincipal has checked it
		if err != nil {
			r.payload = graph.ErrorsJSON(graph.InternalError())
			return
		}
		ctx := graph.WithPrincipal(ctx, p)
		resp := f.cfg.Renderer.Render(ctx, graph.Request{Query: s.Query, OperationName: s.OperationName, Variables: s.Variables}, d.ev)
		if resp == nil {
			return
		}
		b, err := json.Marshal(resp)
		if err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Str("topic", d.ev.Topic).Msg("encode result")
			b = graph.ErrorsJSON(graph.InternalError())
		}
		// The frame adds the envelope and the id; leave room for both.
		if len(b)+256 > f.cfg.MaxMessage {
			r.tooBig = true
			b = graph.ErrorsJSON(graph.ResultTooLarge(len(b), f.cfg.MaxMessage))
		}
		r.payload = b
	})
	return r
}

// expiredPrincipal reports whether a subscription's principal has expired, reading each distinct
// principal once per event.
func (d *delivery) expiredPrincipal(s store.Subscription) bool {
	if len(s.Principal) == 0 {
		return false
	}
	key := string(s.Principal)
	if v, ok := d.expired.Load(key); ok {
		return v.(bool)
	}
	exp := auth.ExpiredJSON(s.Principal, d.now)
	d.expired.Store(key, exp)
	return exp
}

// forget closes and forgets a connection, once per event.
func (f *Fanout) forget(ctx context.Context, d *delivery, connID string, closeSocket bool) {
	if _, seen := d.gone.LoadOrStore(connID, struct{}{}); seen {
		return
	}
	log := zerolog.Ctx(ctx)
	if closeSocket && f.cfg.Closer != nil {
		_, err := f.cfg.Closer.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(connID)})
		if gone := (*types.GoneException)(nil); err != nil && !errors.As(err, &gone) {
			log.Warn().Err(err).Str("conn", connID).Msg("close connection of an expired principal")
		}
	}
	if err := f.cfg.Registry.DeleteConnection(ctx, connID); err != nil {
		log.Warn().Err(err).Str("conn", connID).Msg("forget connection")
	}
}

func (f *Fanout) deliverOne(ctx context.Context, d *delivery, s store.Subscription) {
	if d.expiredPrincipal(s) {
		d.expiredN.Add(1)
		f.forget(ctx, d, s.ConnectionID, true)
		return
	}
	if !f.pass(ctx, d, &s) {
		d.filtered.Add(1)
		return
	}
	r := f.render(ctx, d, s)
	if r.payload == nil {
		d.filtered.Add(1)
		return
	}
	log := zerolog.Ctx(ctx)
	if r.tooBig {
		d.tooLarge.Add(1)
		log.Warn().Str("conn", s.ConnectionID).Str("op", s.ID).Str("topic", d.ev.Topic).Msg("result over the message limit; sent an error instead")
	}
	msg := gqlws.Append(make([]byte, 0, len(r.payload)+len(s.ID)+40), gqlws.ResultType(s.Subprotocol), s.ID, r.payload)
	if len(msg) > f.cfg.MaxMessage { // an absurdly long operation id
		d.failed.Add(1)
		log.Error().Err(ErrTooLarge).Str("conn", s.ConnectionID).Msg("delivery failed")
		return
	}
	err := f.post(ctx, s.ConnectionID, msg)
	switch {
	case err == nil:
		d.delivered.Add(1)
	case errors.Is(err, ErrGone):
		d.goneN.Add(1)
		f.forget(ctx, d, s.ConnectionID, false)
	default:
		d.failed.Add(1)
		log.Error().Err(err).Str("conn", s.ConnectionID).Str("op", s.ID).Str("topic", d.ev.Topic).Msg("delivery failed")
	}
}

func (f *Fanout) post(ctx context.Context, connID string, data []byte) error {
	_, err := f.cfg.Poster.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(connID), Data: data,
	})
	if err == nil {
		return nil
	}
	if gone := (*types.GoneException)(nil); errors.As(err, &gone) {
		return fmt.Errorf("post %s: %w", connID, ErrGone)
	}
	return fmt.Errorf("post %s: %w", connID, err)
}
