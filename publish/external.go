package publish

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/envelope"
	"github.com/realtime-gql/lambdaws/publish/source"
	"github.com/rs/zerolog"
)

// Invalidator acts on the events of type lambdaws.invalidate (envelope.InvalidateType), whichever
// source they come from (EventBridge, SQS, SNS): it gets the decoded change, whose Value is the
// event's data. Those events never reach subscribers. An error wrapping source.ErrMalformed says
// the data is not a valid invalidation: the event is handled as any malformed event (logged and
// skipped; on SQS reported, so it reaches the dead-letter queue). Any other error is a failure of
// the service: the event is retried (EventBridge, SNS) or reported for redelivery (SQS), like a
// failed delivery.
type Invalidator interface {
	Invalidate(ctx context.Context, ch engine.Change) error
}

// HandleEventBridge handles one EventBridge event (a rule targets the function with the event
// types the schema subscribes to): detail-type is the event type, detail the payload, id the
// identity. A malformed event is logged once and skipped, since retrying cannot mend it; a failure
// of the service (the registry unreadable) is returned, and EventBridge's asynchronous invoke is
// retried by Lambda, then goes to the function's on-failure destination.
func (f *Fanout) HandleEventBridge(ctx context.Context, ev events.EventBridgeEvent) error {
	log := zerolog.Ctx(ctx).With().Str("source", "eventbridge").Str("event", clip(ev.ID)).Logger()
	ctx = log.WithContext(ctx)
	var st Stats
	defer func() { f.logStats(&log, st) }()
	st.Records++
	ch, err := source.EventBridge(ev)
	if err == nil {
		err = f.external(ctx, ch, &st)
	}
	if errors.Is(err, source.ErrMalformed) {
		st.Skipped++
		log.Error().Err(err).Str("type", clip(ev.DetailType)).Msg("event skipped")
		return nil
	}
	return err
}

// HandleSQS handles a batch of SQS messages whose bodies are CloudEvents (structured JSON mode),
// with a partial batch response: each message that could not be handled is reported by its id
// and returns to the queue, and after the queue's maxReceiveCount goes to its dead-letter queue.
// That includes a malformed message (logged each time), so nothing is retried forever and nothing
// is lost silently. Messages are handled one at a time in batch order; on a FIFO queue the rest
// of the batch is reported after a failure, so a message group keeps its order. When the
// invocation's deadline is near the messages not yet handled are reported too.
func (f *Fanout) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	base := zerolog.Ctx(ctx).With().Str("source", "sqs").Logger()
	var st Stats
	defer func() { f.logStats(&base, st) }()
	report := func(msg events.SQSMessage) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
	}
	for i, msg := range ev.Records {
		log := base.With().Str("message", clip(msg.MessageId)).Logger()
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < f.cfg.DeadlineMargin {
			log.Warn().Int("left", len(ev.Records)-i).Msg("invocation deadline near; reporting the rest of the batch for redelivery")
			for _, rest := range ev.Records[i:] {
				report(rest)
			}
			return resp, nil
		}
		st.Records++
		ch, err := source.SQS(msg)
		if err == nil {
			err = f.external(log.WithContext(ctx), ch, &st)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, source.ErrMalformed):
			st.Skipped++
			log.Error().Err(err).Int("receiveCount", receiveCount(msg)).
				Msg("message malformed; reported, so it reaches the dead-letter queue after the queue's maxReceiveCount")
		default:
			log.Error().Err(err).Str("type", clip(ch.Type)).Msg("message failed; reported for redelivery")
		}
		report(msg)
		if strings.HasSuffix(msg.EventSourceARN, ".fifo") {
			for _, rest := range ev.Records[i+1:] {
				report(rest) // after the failed one, in order, with it
			}
			return resp, nil
		}
	}
	return resp, nil
}

// HandleSNS handles an SNS notification (SNS invokes with one record) whose message is a
// CloudEvent (structured JSON mode). A malformed message is logged once and skipped; a failure of
// the service is returned, and Lambda retries the asynchronous invoke, then sends it to the
// function's on-failure destination.
func (f *Fanout) HandleSNS(ctx context.Context, ev events.SNSEvent) error {
	base := zerolog.Ctx(ctx).With().Str("source", "sns").Logger()
	var st Stats
	defer func() { f.logStats(&base, st) }()
	var errs []error
	for _, rec := range ev.Records {
		log := base.With().Str("message", clip(rec.SNS.MessageID)).Logger()
		st.Records++
		ch, err := source.SNS(rec.SNS)
		if err == nil {
			err = f.external(log.WithContext(ctx), ch, &st)
		}
		switch {
		case errors.Is(err, source.ErrMalformed):
			st.Skipped++
			log.Error().Err(err).Msg("notification skipped")
		case err != nil:
			errs = append(errs, fmt.Errorf("sns message %s: %w", clip(rec.SNS.MessageID), err))
		}
	}
	return errors.Join(errs...)
}

// external delivers one decoded external event: to the invalidator when it is lambdaws.invalidate,
// otherwise to the subscribers of every field and topic the schema addresses it to. A payload that
// cannot be addressed to some fields is logged once and delivered to the others. It returns an
// error for a failure of the service, or one wrapping source.ErrMalformed for an invalidation
// whose data is not valid.
func (f *Fanout) external(ctx context.Context, ch engine.Change, st *Stats) error {
	log := zerolog.Ctx(ctx)
	if ch.Type == envelope.InvalidateType {
		if f.cfg.Invalidator == nil {
			log.Warn().Str("event", clip(ch.ID)).Msg("invalidation event dropped: no invalidator is configured")
			return nil
		}
		if err := f.cfg.Invalidator.Invalidate(ctx, ch); err != nil {
			return fmt.Errorf("invalidate (event %s): %w", clip(ch.ID), err)
		}
		return nil
	}
	evs, err := f.cfg.Sources.Events(ch)
	if err != nil {
		st.Skipped++
		log.Error().Err(err).Str("event", clip(ch.ID)).Str("type", clip(ch.Type)).Int("fields", len(evs)).
			Msg("event not deliverable to some of its fields")
	}
	if len(evs) == 0 && err == nil {
		log.Info().Str("event", clip(ch.ID)).Str("type", clip(ch.Type)).Msg("no subscription field is fed by this event type")
	}
	for i := range evs {
		st.Events++
		if err := f.deliver(ctx, &evs[i], st); err != nil {
			return err
		}
	}
	return nil
}

// receiveCount is how often SQS has delivered the message (ApproximateReceiveCount); 0 if unknown.
func receiveCount(msg events.SQSMessage) int {
	n := 0
	fmt.Sscan(msg.Attributes["ApproximateReceiveCount"], &n)
	return n
}

// clip cuts a value from an event to a length fit for a log line.
func clip(s string) string {
	const maxLen = 128
	if len(s) > maxLen {
		return s[:maxLen] + "…"
	}
	return s
}
