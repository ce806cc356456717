// Package invalidate ends subscriptions from the server, as AppSync's invalidation does: those of a subject (a principal's connections), of a topic, or both, each client told with complete.
//
// An invalidation is an external event of type EventType ("lambdaws.invalidate") whose payload
// is a Request: {"subject": "<sub claim>"} and/or {"topic": "<topic>"}, and "close": true to also
// close the subject's connections. It may come from any source publish reads (an EventBridge
// event, a CloudEvent over SQS or SNS): publish hands it, decoded, to Invalidate (the
// publish.Invalidator), which decodes the Request from its data and applies it (Apply).
//
// Each matching subscription's rows are removed first, then the client gets complete for it (the
// same message in graphql-transport-ws and legacy graphql-ws), so no result of the fan-out can
// follow the complete. Removing is idempotent: an invalidation retried after a failure ends only
// what is left.
package invalidate

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sync/atomic"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/envelope"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/realtime-gql/lambdaws/publish/source"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// EventType is the type of an invalidation event: EventBridge's detail-type, CloudEvents' type.
const EventType = envelope.InvalidateType

// MaxPayload bounds an invalidation's payload, in bytes.
const MaxPayload = 4 << 10

// A Request says what to end. At least one of Subject and Topic is set; both end the subject's
// subscriptions to that topic.
type Request struct {
	// Subject ends the subscriptions of every connection acknowledged with this subject (a
	// token's sub claim).
	Subject string `json:"subject,omitempty"`
	// Topic ends the subscriptions of this topic (e.g. "messageAdded?roomId=r1").
	Topic string `json:"topic,omitempty"`
	// Close also closes the subject's connections (Subject only).
	Close bool `json:"close,omitempty"`
}

// ErrInvalid reports a payload that is not a valid Request.
var ErrInvalid = errors.New("invalidate: invalid request")

// Decode reads a Request from an event's payload (EventBridge detail, CloudEvents data).
func Decode(payload json.RawMessage) (Request, error) {
	var r Request
	if len(payload) > MaxPayload {
		return r, fmt.Errorf("%w: %d bytes, over %d", ErrInvalid, len(payload), MaxPayload)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case r.Subject == "" && r.Topic == "":
		return r, fmt.Errorf("%w: name a subject, a topic or both", ErrInvalid)
	case r.Close && r.Subject == "":
		return r, fmt.Errorf("%w: close needs a subject", ErrInvalid)
	case len(r.Topic) > facts.MaxTopic:
		return r, fmt.Errorf("%w: topic over %d bytes", ErrInvalid, facts.MaxTopic)
	}
	return r, nil
}

// Registry is the part of the store an invalidation uses.
type Registry interface {
	SubjectConnections(ctx context.Context, subject string) iter.Seq2[string, error]
	Operations(ctx context.Context, connectionID string) iter.Seq2[store.Subscription, error]
	Subscriptions(ctx context.Context, topic string) iter.Seq2[store.Subscription, error]
	DeleteSubscription(ctx context.Context, connectionID, id string) (bool, error)
	DeleteConnection(ctx context.Context, id string) error
}

// Gateway is the part of the management API an invalidation uses: telling a client, closing its
// socket. *mgmt.Client satisfies it; a connection that is gone fails with an error matching
// mgmt.ErrGone.
type Gateway interface {
	// Post sends one message to a connection (PostToConnection).
	Post(ctx context.Context, connID string, data []byte) error
	// Delete closes a connection (DeleteConnection).
	Delete(ctx context.Context, connID string) error
}

// Config holds an Invalidator's dependencies.
type Config struct {
	Registry Registry
	Gateway  Gateway
	// Concurrency bounds the connections handled at once; default 16.
	Concurrency int
}

// Invalidator ends subscriptions.
type Invalidator struct {
	cfg Config
}

// New returns an Invalidator.
func New(cfg Config) *Invalidator {
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 16)
	return &Invalidator{cfg: cfg}
}

// Stats counts what one invalidation did.
type Stats struct {
	Ended  int64 // subscriptions ended (and told)
	Closed int64 // connections closed
	Gone   int64 // clients that had gone (forgotten)
	Failed int64 // completes or closes that could not be delivered
}

// Invalidate handles an event of type EventType from any source (it implements
// publish.Invalidator): its data is decoded as a Request and applied. Data that is not a Request
// is an error wrapping both ErrInvalid and source.ErrMalformed, so publish treats the event as
// malformed (logged and skipped, or on SQS sent on to the dead-letter queue) rather than retrying
// it; an error of the registry is returned as it is (retrying is then safe).
func (iv *Invalidator) Invalidate(ctx context.Context, ch engine.Change) error {
	req, err := Decode(ch.Value)
	if err != nil {
		return fmt.Errorf("%w: %w", source.ErrMalformed, err)
	}
	_, err = iv.Apply(ctx, req)
	return err
}

// Apply ends what req names. It returns an error only when the registry could not be read or
// written (retrying is then safe); undeliverable completes are counted and logged.
func (iv *Invalidator) Apply(ctx context.Context, req Request) (Stats, error) {
	var st stats
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(iv.cfg.Concurrency)
	if req.Subject == "" {
		// By topic: the topic's subscriptions, whoever holds them.
		for sub, err := range iv.cfg.Registry.Subscriptions(gctx, req.Topic) {
			if err != nil {
				g.Wait()
				return st.done(ctx, req), fmt.Errorf("invalidate topic: %w", err)
			}
			g.Go(func() error { return iv.end(gctx, sub, &st) })
		}
	} else {
		for connID, err := range iv.cfg.Registry.SubjectConnections(gctx, req.Subject) {
			if err != nil {
				g.Wait()
				return st.done(ctx, req), fmt.Errorf("invalidate subject: %w", err)
			}
			g.Go(func() error { return iv.connection(gctx, connID, req, &st) })
		}
	}
	err := g.Wait()
	return st.done(ctx, req), err
}

// connection ends a subject's connection's subscriptions (of req.Topic, if set), one after
// another so its client hears them in order, and closes it if asked.
func (iv *Invalidator) connection(ctx context.Context, connID string, req Request, st *stats) error {
	var subs []store.Subscription
	for sub, err := range iv.cfg.Registry.Operations(ctx, connID) {
		if err != nil {
			return fmt.Errorf("operations of %s: %w", connID, err)
		}
		if sub.Topic != "" && (req.Topic == "" || sub.Topic == req.Topic) {
			subs = append(subs, sub)
		}
	}
	for _, sub := range subs {
		if err := iv.end(ctx, sub, st); err != nil {
			return err
		}
	}
	if !req.Close {
		return nil
	}
	if err := iv.cfg.Gateway.Delete(ctx, connID); err != nil && !errors.Is(err, mgmt.ErrGone) {
		st.failed.Add(1)
		zerolog.Ctx(ctx).Warn().Err(err).Str("conn", connID).Msg("invalidate: close connection")
	} else {
		st.closed.Add(1)
	}
	if err := iv.cfg.Registry.DeleteConnection(ctx, connID); err != nil {
		return fmt.Errorf("forget %s: %w", connID, err)
	}
	return nil
}

// end removes one subscription and, if it was still active, tells its client.
func (iv *Invalidator) end(ctx context.Context, sub store.Subscription, st *stats) error {
	active, err := iv.cfg.Registry.DeleteSubscription(ctx, sub.ConnectionID, sub.ID)
	if err != nil {
		return fmt.Errorf("end %s/%s: %w", sub.ConnectionID, sub.ID, err)
	}
	if !active {
		return nil // completed meanwhile: its client was told, or asked
	}
	st.ended.Add(1)
	err = iv.cfg.Gateway.Post(ctx, sub.ConnectionID, gqlws.Encode(gqlws.Message{ID: sub.ID, Type: gqlws.Complete}))
	switch {
	case err == nil:
	case errors.Is(err, mgmt.ErrGone):
		st.gone.Add(1)
		if err := iv.cfg.Registry.DeleteConnection(ctx, sub.ConnectionID); err != nil {
			return fmt.Errorf("forget %s: %w", sub.ConnectionID, err)
		}
	default:
		st.failed.Add(1)
		zerolog.Ctx(ctx).Warn().Err(err).Str("conn", sub.ConnectionID).Str("op", sub.ID).Msg("invalidate: complete not delivered")
	}
	return nil
}

// stats are the counters the workers update.
type stats struct{ ended, closed, gone, failed atomic.Int64 }

// done logs the counts once and returns them.
func (s *stats) done(ctx context.Context, req Request) Stats {
	st := Stats{Ended: s.ended.Load(), Closed: s.closed.Load(), Gone: s.gone.Load(), Failed: s.failed.Load()}
	zerolog.Ctx(ctx).Info().Bool("subject", req.Subject != "").Str("topic", req.Topic).Int64("ended", st.Ended).
		Int64("closed", st.Closed).Int64("gone", st.Gone).Int64("failed", st.Failed).Msg("invalidated")
	return st
}
