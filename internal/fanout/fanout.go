// Package fanout delivers events to every subscriber of their topics within one invocation's deadline, and hands what it cannot finish to a queue.
//
// # Model
//
// A batch is a list of records in order; each record carries the events of one change, each event
// addressed to one topic. A record's order keys are its topics and its Keys (a stream record's
// item partition key). Records that share no order key are delivered concurrently; records that
// share one are delivered in batch order: a record starts only when every earlier record sharing
// one of its order keys has finished, and only if each of them was delivered (Done), so a
// subscriber never sees a topic's changes, or one partition's, out of order.
//
// One event is delivered by one reader and the engine's fixed pool of long-lived workers: the
// reader reads the topic page by page (an opaque cursor per page) and hands each subscription to
// the workers through a channel; nothing is started per subscriber. A worker checks the
// subscription (principal expiry, then the filter), renders the operation (once per distinct
// query, operation name, variables and principal per event, shared by every subscriber of that
// operation), frames the result into a pooled buffer with gqlws.Append and posts it. Every result
// carries payload.extensions.event = {"id": …, "seq": …}, spliced in by the engine.
//
// # Deadline
//
// With M = Config.Margin and D the context's deadline: no page is read and no post is started
// after D−M; a post in flight then has until D−M+M/5 to be answered (so that a post the service
// is answering is not cut, and delivered twice when its subscriber is carried; the poster may
// retry within that time), and its context ends there; what was not delivered is handed to the
// Queue as continuations (or the record fails when there is no queue), and Deliver returns by
// about D−M/2, whatever the poster does.
//
// # Progress
//
// Fan-out state lives in the registry, keyed by event (see EventKey): the cursor after the last
// fully delivered page, and whether the event is done. A retried record resumes after that cursor
// and a done event is skipped. Topics bigger than Config.ChunkSize are split: the first chunk is
// delivered inline, the rest is enqueued as chunk continuations that other invocations deliver
// (Engine.Continue), and the record waits for their done markers before the next record of its
// topic starts.
//
// Registry traffic is kept small, and the trade-off is this. Reads: one Progress read per
// Deliver (every event of the batch in one call; needed to skip what a retry already did) and
// one per Continue; waiting for parts polls their rows with backoff. Beside Deliver's Progress
// read, the first page of each record that can start at once is already being read (up to
// maxPrefetch topics), so that a fresh event's first delivery waits for one round trip, not two;
// an event that turns out to have a row (a retry) drops that read, one page read wasted. Writes: none for an event
// whose topic fits one page and completes (the common case: a retry of it delivers it again,
// which extensions.event lets clients recognise), unless Config.MarkAll asks for a done marker
// for every event, written together at the end of Deliver; for a multi-page topic, at most one per page
// (the cursor after the last fully delivered page, written when it moves) and one done marker;
// one per part, always (the waiting record reads it); and, when a batch has a failed or carried
// record, one done marker for each event delivered after it, because the stream resumes from
// the lowest reported record and would deliver them again. A page with an undelivered
// subscriber stops the cursor, so a retry can deliver a page's subscribers twice but never
// skips one.
package fanout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/store"
)

// Event is one change addressed to one field's topic: the engine's neutral event (ID and Seq
// identify the change, Field and Topic address it, Payload is the value the field yields).
type Event = engine.Event

// A Record is one item of a batch: the events of one change, delivered together.
type Record struct {
	// ID and Seq identify the record in logs (the stream record's eventID and sequence number).
	ID, Seq string
	// Events are the record's events. Their topics are order keys of the record.
	Events []Event
	// Keys are further order keys: records that share one are delivered in batch order, as
	// records that share a topic are. A stream record carries its item's partition key, so every
	// change to one partition (a room) reaches a subscriber in write order, whichever of its
	// fields and topics the changes feed (an edit never overtakes the message it edits).
	Keys []string
	// Created is when the change was made (approximately); zero if unknown. It feeds
	// Stats.OldestAge.
	Created time.Time
}

// A Page is one read of a topic's subscriptions (store.Page): the engine keeps Subs until the
// page is delivered, so the registry must not reuse the slice.
type Page = store.Page

// A SubKey identifies one subscription of a topic.
type SubKey = store.SubKey

// Progress is one fan-out state row (store.Progress). A row exists for an event (key EventKey)
// and for each part handed to the queue (key EventKey + "/" + Continuation.Part). The row is
// complete when Done and every part is complete.
type Progress = store.Progress

// Registry is what the engine reads and writes in the store; both backends implement it
// (store.FanoutState, whose doc states the contract, and DeleteConnection). Every method should
// return soon after its context ends; the engine answers by D−M/2 regardless, failing a record
// whose read is still running.
type Registry interface {
	store.FanoutState
	// DeleteConnection forgets a connection and everything it owns.
	DeleteConnection(ctx context.Context, id string) error
}

// Renderer executes a stored subscription against one event.
type Renderer interface {
	// Render returns the execution result (a JSON object: data, errors, extensions) the
	// subscriber receives, or nil when the event does not concern the operation. The engine calls
	// it once per distinct (query, operation name, variables, principal) per event, and adds
	// extensions.event itself.
	Render(ctx context.Context, s *store.Subscription, ev *Event) json.RawMessage
}

// Poster is the one management API call the engine makes (internal/mgmt's client).
type Poster interface {
	// Post sends data to the connection, retrying as its policy allows within ctx. It must not
	// keep data after it returns: the engine reuses the buffer.
	Post(ctx context.Context, connID string, data []byte) error
}

// Queue takes continuations: work the invocation hands to the chunk queue.
type Queue interface {
	// Enqueue sends the continuations (one message each, json.Marshal'd; each encodes to at
	// most MaxContinuationBytes). On an error the engine counts none as handed off and fails
	// the record, so retry partial failures inside; a message that did go out only makes a
	// harmless duplicate of work the retry does again.
	Enqueue(ctx context.Context, cs []Continuation) error
}

// Class sorts the error of one post.
type Class uint8

// Classes of post errors.
const (
	// ClassOther is an error the classifier does not know; it counts as a refusal.
	ClassOther Class = iota
	// ClassGone: the connection no longer exists (410); it is forgotten.
	ClassGone
	// ClassTooLarge: the message is over the service's limit (413); an error result replaces it.
	ClassTooLarge
	// ClassForbidden: the service refused the post (403).
	ClassForbidden
	// ClassThrottled: still throttled (429) when the poster's retries ended.
	ClassThrottled
	// ClassServer: the service failed (5xx) after the poster's retries.
	ClassServer
	// ClassUnavailable: the service could not be reached (network errors, attempt timeouts).
	ClassUnavailable
	// ClassDeadline: the post was cut short by the engine's own deadline; it is carried over.
	ClassDeadline
)

var classNames = [...]string{"other", "gone", "too large", "forbidden", "throttled", "server error", "unavailable", "deadline"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "unknown"
}

// DefaultClassify knows only the context's errors: ClassDeadline for a cancelled or expired
// context, ClassOther for anything else. Wire the poster's own classification instead.
func DefaultClassify(err error) Class {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return ClassDeadline
	}
	return ClassOther
}

// Defaults and bounds.
const (
	// DefaultConcurrency is the default number of delivery workers (posts in flight). Measured
	// with posts of 10 ms, throughput grows with the pool (64: ~5,400/s, 128: ~11,000/s, 256:
	// ~21,000/s) at no more CPU per delivery; API Gateway's account-wide 10,000 requests/s,
	// @connections posts included, makes more than about 128 posts in flight (at 10-20 ms each)
	// buy throttling rather than speed. The poster's HTTP transport should keep as many idle
	// connections per host.
	DefaultConcurrency = 128
	// DefaultMargin is the default deadline margin.
	DefaultMargin = 2 * time.Second
	// DefaultChunkSize is the default number of subscribers delivered inline before the rest of
	// a topic is split into chunks.
	DefaultChunkSize = 2000
	// DefaultProgressTTL is how long progress rows live: longer than a stream record is retried.
	DefaultProgressTTL = 24 * time.Hour
	// MaxDepth bounds how many times a part may be handed on again (a part of a part …).
	MaxDepth = 6
)

// Config holds an Engine's dependencies and settings. Registry, Renderer and Poster are
// required; everything else has a default.
type Config struct {
	Registry Registry
	Renderer Renderer
	Poster   Poster
	// Queue takes continuations; nil disables chunking, and undelivered work at the deadline
	// fails its record instead of being carried.
	Queue Queue
	// Classify sorts post errors; default DefaultClassify.
	Classify func(error) Class
	// Match returns the test of whether one event concerns a subscription beyond its topic (its
	// filter). It is called once per event per Deliver or Continue (by the event's reader, before
	// its first page), so the test can keep what it derives from the event (the payload decoded
	// once, each distinct filter compiled once); the workers then call the test concurrently, for
	// each subscription, before rendering, and it must not keep s. Nil, or a nil test, matches
	// every subscription.
	Match func(ctx context.Context, ev *Event) func(s *store.Subscription) bool
	// Expired reports whether the subscription's principal has expired at now; nil: never.
	Expired func(s *store.Subscription, now time.Time) bool
	// Now is the clock Expired is given, read once per page; default time.Now. (Deadlines always
	// follow the real clock.)
	Now func() time.Time
	// CloseExpired closes the connection of an expired principal, once per connection per
	// invocation; default Registry.DeleteConnection.
	CloseExpired func(ctx context.Context, connID string) error
	// Concurrency is the number of delivery workers; default DefaultConcurrency.
	Concurrency int
	// MaxMessage is the largest message posted; default facts.MaxMessage.
	MaxMessage int
	// Margin is the deadline margin M; default DefaultMargin.
	Margin time.Duration
	// ChunkSize is how many subscribers are delivered inline before the rest of the topic is
	// split into chunks of this size; default DefaultChunkSize, negative disables chunking.
	ChunkSize int
	// ProgressTTL is the lifetime of progress rows; default DefaultProgressTTL.
	ProgressTTL time.Duration
	// PollInterval is the first wait between reads of chunk done markers; it doubles up to one
	// second. Default 50 ms.
	PollInterval time.Duration
	// MarkAll writes a done marker for every event Deliver delivers (in one write at its end),
	// so that a record delivered again, whole (a Lambda retry after a timeout or a crash, a
	// duplicate), is skipped instead of reaching its subscribers twice. Off, only the events that
	// will come back (after a failed or carried record) and multi-page events are marked.
	MarkAll bool
}

// Engine delivers batches of records and continuations. It is safe for concurrent use; its
// workers live until Close.
type Engine struct {
	cfg    Config
	jobs   chan job
	seed   maphash.Seed
	active atomic.Int32 // nodes dispatching right now; they share the workers
	bufs   sync.Pool
	wg     sync.WaitGroup
	close  sync.Once
}

// New starts an Engine and its workers.
func New(cfg Config) *Engine {
	if cfg.Classify == nil {
		cfg.Classify = DefaultClassify
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CloseExpired == nil && cfg.Registry != nil {
		cfg.CloseExpired = cfg.Registry.DeleteConnection
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = facts.MaxMessage
	}
	if cfg.Margin <= 0 {
		cfg.Margin = DefaultMargin
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.ProgressTTL <= 0 {
		cfg.ProgressTTL = DefaultProgressTTL
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	e := &Engine{cfg: cfg, jobs: make(chan job, cfg.Concurrency), seed: maphash.MakeSeed()}
	// Frames start in 1 KB (a typical message is a few hundred bytes) and keep what they grew to.
	e.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	for range cfg.Concurrency {
		e.wg.Go(e.work)
	}
	return e
}

// Close stops the workers. Call it only once every Deliver and Continue has returned.
func (e *Engine) Close() {
	e.close.Do(func() { close(e.jobs) })
	e.wg.Wait()
}

// share is how many jobs one dispatching node may have in flight: an even share of the workers,
// so a slow topic cannot take every worker from the others.
func (e *Engine) share() int32 {
	a := e.active.Load()
	if a < 1 {
		a = 1
	}
	s := int32(e.cfg.Concurrency) / a
	if s < 1 {
		s = 1
	}
	return s
}

// EventKey is the progress key of an event: a hash of its identity, field and topic, so it is
// bounded whatever the topic's length.
func EventKey(ev *Event) string {
	h := sha256.New()
	for _, s := range []string{ev.ID, ev.Field, ev.Topic} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "fo1:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Status is what became of a record.
type Status uint8

// Statuses.
const (
	// Done: every subscriber was delivered (or gone, filtered, expired, or failed alone and
	// logged). Acknowledge the record.
	Done Status = iota
	// Carried: what was not delivered by the deadline is in the queue and will be delivered by
	// Continue. Acknowledge it when the source promises no order (SQS, SNS, EventBridge); report
	// it when it does (a DynamoDB stream): its retry delivers nothing twice and waits for the
	// carried parts like chunks, so a later record of its topic cannot overtake them.
	Carried
	// Failed: report the record (batchItemFailures) so the source retries it; Reason says why.
	Failed
)

func (s Status) String() string {
	switch s {
	case Done:
		return "done"
	case Carried:
		return "carried"
	default:
		return "failed"
	}
}

// Reason says why a record failed.
type Reason uint8

// Reasons.
const (
	// NoReason: not failed.
	NoReason Reason = iota
	// ReasonService: the management API failed most posts (refused, erred, throttled,
	// unreachable); the service is at fault, not the subscribers.
	ReasonService
	// ReasonRegistry: the registry could not be read (or progress could not be saved where a
	// part's completion depends on it).
	ReasonRegistry
	// ReasonDeadline: the deadline came first and nothing could be carried (no queue, the queue
	// failed, or the record had not started).
	ReasonDeadline
	// ReasonWaiting: delivered its own part but the deadline came before its chunks were done;
	// the retry waits again, without enqueueing them again.
	ReasonWaiting
	// ReasonBlocked: not started because an earlier record of one of its topics was not done.
	ReasonBlocked
	// ReasonInvalid: a malformed continuation; retrying cannot help (let it reach the failure
	// queue).
	ReasonInvalid
)

func (r Reason) String() string {
	return [...]string{"", "service", "registry", "deadline", "waiting", "blocked", "invalid"}[r]
}

// Outcome is what became of one record or continuation.
type Outcome struct {
	Status Status
	Reason Reason
	// Err says what happened, for the caller's log line and failure report; nil when Done. The
	// engine has not logged it.
	Err error
}

// Report reports whether the caller must put the record in batchItemFailures; ordered says
// whether the source promises order per topic (a DynamoDB stream does; SQS, SNS and EventBridge
// do not).
func (o Outcome) Report(ordered bool) bool {
	switch o.Status {
	case Failed:
		return true
	case Carried:
		return ordered
	}
	return false
}

func failed(r Reason, err error) Outcome { return Outcome{Status: Failed, Reason: r, Err: err} }

// worse returns the worse of two outcomes of one record's events.
func worse(a, b Outcome) Outcome {
	if b.Status > a.Status {
		return b
	}
	return a
}

// work is one delivery worker: it lives until Close.
func (e *Engine) work() {
	for j := range e.jobs {
		j.n.process(j)
	}
}
