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
	"github.com/realtime-gql/lambdaws/internal/fanout"
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

// External events are delivered by the same engine as stream records: one record per event (its
// events the fields and topics the schema addresses it to). Their sources promise no order per
// topic, except a FIFO queue: an event carried over to the chunk queue at the deadline is
// acknowledged (its continuations finish it), except on a FIFO queue, where it is reported so that
// the later messages of its group wait for it.

// HandleEventBridge handles one EventBridge event (a rule targets the function with the event
// types the schema subscribes to): detail-type is the event type, detail the payload, id the
// identity. A malformed event is logged once and skipped, since retrying cannot mend it; a failure
// of the service (the registry unreadable, the management API failing) is returned, and
// EventBridge's asynchronous invoke is retried by Lambda (the retry skips what was delivered),
// then goes to the function's on-failure destination.
func (f *Fanout) HandleEventBridge(ctx context.Context, ev events.EventBridgeEvent) error {
	log := zerolog.Ctx(ctx).With().Str("event", clip(ev.ID)).Logger()
	ctx = log.WithContext(ctx)
	st := Stats{}
	st.Start = time.Now()
	reported := 0
	defer func() {
		st.Duration = time.Since(st.Start)
		f.logBatch(&log, "eventbridge", st, reported)
		f.metrics("eventbridge", st)
	}()
	ch, err := source.EventBridge(ev)
	if err == nil {
		err = f.one(ctx, ch, &st)
	}
	st.Records = 1
	switch {
	case errors.Is(err, source.ErrMalformed):
		st.Malformed++
		log.Error().Err(err).Str("type", clip(ev.DetailType)).Msg("event skipped")
		return nil
	case err != nil:
		reported++
		return err
	}
	return nil
}

// HandleSNS handles an SNS notification (SNS invokes with one record) whose message is a
// CloudEvent (structured JSON mode). A malformed message is logged once and skipped; a failure of
// the service is returned, and Lambda retries the asynchronous invoke (the retry skips what was
// delivered), then sends it to the function's on-failure destination.
func (f *Fanout) HandleSNS(ctx context.Context, ev events.SNSEvent) error {
	base := zerolog.Ctx(ctx)
	st := Stats{}
	st.Start = time.Now()
	var errs []error
	defer func() {
		st.Duration = time.Since(st.Start)
		f.logBatch(base, "sns", st, len(errs))
		f.metrics("sns", st)
	}()
	for _, rec := range ev.Records {
		log := base.With().Str("messageId", clip(rec.SNS.MessageID)).Logger()
		ch, err := source.SNS(rec.SNS)
		if err == nil {
			err = f.one(log.WithContext(ctx), ch, &st)
		}
		switch {
		case errors.Is(err, source.ErrMalformed):
			st.Malformed++
			log.Error().Err(err).Msg("notification skipped")
		case err != nil:
			errs = append(errs, fmt.Errorf("sns message %s: %w", clip(rec.SNS.MessageID), err))
		}
	}
	st.Records = len(ev.Records)
	return errors.Join(errs...)
}

// one handles one decoded event of an asynchronous invoke (EventBridge, SNS): the invalidator
// takes an invalidation; any other event is delivered as one record. It returns an error for a
// failure of the service (the record reported by the engine), or one wrapping
// source.ErrMalformed for an invalidation whose data is not valid.
func (f *Fanout) one(ctx context.Context, ch engine.Change, st *Stats) error {
	if ch.Type == envelope.InvalidateType {
		return f.invalidate(ctx, ch)
	}
	rec, ok := f.record(ctx, ch, st)
	if !ok {
		return nil
	}
	outs, s := f.engine().Deliver(ctx, []fanout.Record{rec})
	st.Add(s)
	if out := outs[0]; out.Report(false) {
		return fmt.Errorf("event %s %s (%s): %w", clip(ch.ID), out.Status, out.Reason, out.Err)
	}
	return nil
}

// invalidate hands an invalidation to the Invalidator.
func (f *Fanout) invalidate(ctx context.Context, ch engine.Change) error {
	if f.cfg.Invalidator == nil {
		zerolog.Ctx(ctx).Warn().Str("event", clip(ch.ID)).Msg("invalidation event dropped: no invalidator is configured")
		return nil
	}
	if err := f.cfg.Invalidator.Invalidate(ctx, ch); err != nil {
		return fmt.Errorf("invalidate (event %s): %w", clip(ch.ID), err)
	}
	return nil
}

// record addresses an external event to the fields and topics it feeds, as one record of the
// engine. A payload that cannot be addressed to some fields is logged once and counted, and the
// record goes to the others; false when nothing is to be delivered.
func (f *Fanout) record(ctx context.Context, ch engine.Change, st *Stats) (fanout.Record, bool) {
	log := zerolog.Ctx(ctx)
	evs, err := f.cfg.Sources.Events(ch)
	if err != nil {
		st.Malformed++
		log.Error().Err(err).Str("event", clip(ch.ID)).Str("type", clip(ch.Type)).Int("fields", len(evs)).
			Msg("event not deliverable to some of its fields")
	}
	if len(evs) == 0 {
		if err == nil {
			log.Info().Str("event", clip(ch.ID)).Str("type", clip(ch.Type)).Msg("no subscription field is fed by this event type")
		}
		return fanout.Record{}, false
	}
	return fanout.Record{ID: ch.ID, Seq: ch.Seq, Events: evs}, true
}

// cloudEvents handles the SQS messages that are not continuations: CloudEvents (structured JSON
// mode), with a partial batch response. Each message that could not be handled is reported by its
// id and returns to the queue, and after the queue's maxReceiveCount goes to its dead-letter
// queue. That includes a malformed message (logged each time), so nothing is retried forever and
// nothing is lost silently. Batch order is kept: the events between two invalidations are
// delivered together by the engine (different topics concurrently, one topic in order), and an
// invalidation runs after the events before it and before those after it. On a FIFO queue the
// rest of the batch is reported after the first message reported, so a message group keeps its
// order (what was delivered of the rest is skipped when it comes back: its done markers). When
// the invocation's deadline is nearer than the margin, the messages not yet handled are reported.
func (f *Fanout) cloudEvents(ctx context.Context, msgs []events.SQSMessage) []events.SQSBatchItemFailure {
	base := zerolog.Ctx(ctx)
	st := Stats{}
	st.Start = time.Now()
	var fails []events.SQSBatchItemFailure
	defer func() {
		st.Records, st.Duration = len(msgs), time.Since(st.Start)
		f.logBatch(base, "sqs", st, len(fails))
		f.metrics("sqs", st)
	}()
	reported := make([]bool, len(msgs))
	report := func(i int) {
		if !reported[i] {
			reported[i] = true
			fails = append(fails, events.SQSBatchItemFailure{ItemIdentifier: msgs[i].MessageId})
		}
	}
	// stop reports message i and every message after it, on a FIFO queue; it reports whether it
	// did.
	stop := func(i int) bool {
		if !strings.HasSuffix(msgs[i].EventSourceARN, ".fifo") {
			return false
		}
		for j := i; j < len(msgs); j++ {
			report(j)
		}
		return true
	}
	msgLog := func(i int) zerolog.Logger { return base.With().Str("messageId", clip(msgs[i].MessageId)).Logger() }
	// late reports message i and every message after it not handled yet, when the deadline is
	// near; it reports whether it did.
	late := func(i int) bool {
		if !f.nearDeadline(ctx) {
			return false
		}
		base.Warn().Str("messageId", clip(msgs[i].MessageId)).Int("left", len(msgs)-i).
			Msg("invocation deadline near; reporting the rest of the batch for redelivery")
		for j := i; j < len(msgs); j++ {
			report(j)
		}
		return true
	}

	// The run of deliverable events since the last invalidation.
	var run []fanout.Record
	var runMsg []int
	flush := func() bool {
		if len(run) == 0 {
			return true
		}
		if late(runMsg[0]) {
			return false
		}
		outs, s := f.engine().Deliver(ctx, run)
		st.Add(s)
		first := -1
		for k, out := range outs {
			fifo := strings.HasSuffix(msgs[runMsg[k]].EventSourceARN, ".fifo")
			if !out.Report(fifo) {
				continue
			}
			i := runMsg[k]
			log := msgLog(i)
			outcomeEvent(&log, out).Err(out.Err).Str("event", clip(run[k].ID)).Str("status", out.Status.String()).
				Str("reason", out.Reason.String()).Int("receiveCount", receiveCount(msgs[i])).Msg("message failed; reported for redelivery")
			report(i)
			if first < 0 {
				first = i
			}
		}
		run, runMsg = run[:0], runMsg[:0]
		return first < 0 || !stop(first)
	}
	if late(0) {
		return fails
	}
	for i, msg := range msgs {
		if reported[i] {
			continue
		}
		log := msgLog(i)
		ch, err := source.SQS(msg)
		if err != nil {
			st.Malformed++
			log.Error().Err(err).Int("receiveCount", receiveCount(msg)).
				Msg("message malformed; reported, so it reaches the dead-letter queue after the queue's maxReceiveCount")
			if strings.HasSuffix(msg.EventSourceARN, ".fifo") {
				// The messages before it are delivered first; it and the rest wait.
				if flush() {
					stop(i)
				}
				break
			}
			report(i)
			continue
		}
		if ch.Type != envelope.InvalidateType {
			if rec, ok := f.record(log.WithContext(ctx), ch, &st); ok {
				run = append(run, rec)
				runMsg = append(runMsg, i)
			}
			continue
		}
		// An invalidation: after the events before it, before those after it.
		if !flush() {
			break
		}
		if late(i) {
			break
		}
		err = f.invalidate(log.WithContext(ctx), ch)
		switch {
		case err == nil:
			continue
		case errors.Is(err, source.ErrMalformed):
			st.Malformed++
			log.Error().Err(err).Int("receiveCount", receiveCount(msg)).
				Msg("message malformed; reported, so it reaches the dead-letter queue after the queue's maxReceiveCount")
		default:
			log.Error().Err(err).Str("type", clip(ch.Type)).Msg("message failed; reported for redelivery")
		}
		report(i)
		if stop(i) {
			break
		}
	}
	flush()
	return fails
}

// nearDeadline reports whether the invocation's deadline is nearer than the margin.
func (f *Fanout) nearDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) < f.cfg.Margin
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
