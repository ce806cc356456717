package local

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// StreamCheckpoint is the name under which the poller keeps its position in the change log.
const StreamCheckpoint = "stream"

// pollStream is Lambda's event source mapping for the change log: batches in order, one at a time.
// A batch that succeeds moves the checkpoint past it. A partial failure moves it to just before the
// lowest reported record and retries from there; a function error retries the whole batch. A record
// that keeps failing is logged and skipped after MaxRetries, so one poison record cannot block the
// stream forever (on AWS it would go to the on-failure destination). It polls until ctx is done; a
// batch under way is finished and checkpointed first.
func (rt *Runtime) pollStream(ctx context.Context) {
	io := context.WithoutCancel(ctx) // the change log's reads and checkpoints are not cut short
	log := rt.log.With().Str("component", "stream").Logger()
	cp, err := rt.cfg.Stream.Checkpoint(io, StreamCheckpoint)
	if err != nil {
		log.Error().Err(err).Msg("read checkpoint; starting from the beginning of the log")
	}
	ticker := time.NewTicker(rt.cfg.PollInterval)
	defer ticker.Stop()
	var attempts int
	var failedSeq uint64
	for {
		wake := rt.cfg.Stream.Changed()
		recs, err := rt.cfg.Stream.ReadChanges(io, cp, rt.cfg.BatchSize)
		if err != nil {
			log.Error().Err(err).Msg("read change log")
		}
		if len(recs) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-wake:
			case <-ticker.C:
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}

		failed, ok := rt.invokeBatch(recs)
		if ok {
			cp = recs[len(recs)-1].Seq
			attempts = 0
			rt.setCheckpoint(io, cp)
			continue
		}
		// Everything before the failed record is done.
		for _, r := range recs {
			if r.Seq < failed {
				cp = r.Seq
			}
		}
		if failed != failedSeq {
			failedSeq, attempts = failed, 0
		}
		attempts++
		if attempts > rt.cfg.MaxRetries {
			log.Error().Uint64("seq", failed).Int("attempts", attempts).Msg("stream record failed every retry; skipping it")
			cp, attempts = failed, 0
			rt.setCheckpoint(io, cp)
			continue
		}
		rt.setCheckpoint(io, cp)
		pause := min(rt.cfg.RetryBackoff<<(attempts-1), 5*time.Second)
		log.Warn().Uint64("seq", failed).Int("attempt", attempts).Dur("pause", pause).Msg("stream batch failed; retrying from the failed record")
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

// invokeBatch invokes the handler with one batch. It returns ok, or the sequence number to retry
// from.
func (rt *Runtime) invokeBatch(recs []Record) (uint64, bool) {
	var buf bytes.Buffer
	buf.WriteString(`{"Records":[`)
	for i, r := range recs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(r.JSON)
	}
	buf.WriteString(`]}`)
	out, err := rt.invoke(buf.Bytes())
	if err != nil {
		rt.log.Error().Err(err).Msg("stream invocation failed; retrying the batch")
		return recs[0].Seq, false
	}
	var resp events.DynamoDBEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		rt.log.Error().Err(err).Msg("stream invocation returned an unreadable response; retrying the batch")
		return recs[0].Seq, false
	}
	if len(resp.BatchItemFailures) == 0 {
		return 0, true
	}
	var lowest uint64
	for _, f := range resp.BatchItemFailures {
		seq, err := strconv.ParseUint(f.ItemIdentifier, 10, 64)
		if err != nil || seq < recs[0].Seq || seq > recs[len(recs)-1].Seq {
			// Lambda treats an unknown identifier as a failure of the whole batch.
			return recs[0].Seq, false
		}
		if lowest == 0 || seq < lowest {
			lowest = seq
		}
	}
	return lowest, false
}

func (rt *Runtime) setCheckpoint(ctx context.Context, seq uint64) {
	if err := rt.cfg.Stream.SetCheckpoint(ctx, StreamCheckpoint, seq); err != nil {
		rt.log.Error().Err(err).Uint64("seq", seq).Msg("write checkpoint")
	}
}
