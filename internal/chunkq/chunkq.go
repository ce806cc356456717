// Package chunkq hands fan-out continuations to the chunk queue, an SQS queue the same function consumes, and tells its messages from the other messages Lambda may bring from SQS.
//
// Every continuation is one message whose body is the continuation's JSON (fanout.Continuation)
// and which carries the message attribute lambdaws = continuation (String), so the SQS handler
// sends it to the fan-out and anything else (CloudEvents that users send) elsewhere.
//
// Enqueue sends with SendMessageBatch, at most 10 messages and 256 KiB a request; the entries SQS
// did not take (a partial failure, the service's fault) are sent again with backoff until they
// are, or until the context ends. An entry refused as the sender's fault (a malformed message)
// is not retried: Enqueue returns the error, and the fan-out then reports its record instead of
// counting the work as handed off. A message sent twice only makes work that is idempotent per
// part (see fanout.Continuation).
package chunkq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/realtime-gql/lambdaws/internal/fanout"
)

// The message attribute that marks a continuation.
const (
	// Attr is the message attribute's name.
	Attr = "lambdaws"
	// Continuation is its value on a continuation.
	Continuation = "continuation"
)

// SQS's bounds on one SendMessageBatch.
const (
	// MaxBatch is the most messages one request takes.
	MaxBatch = 10
	// MaxBatchBytes is the most bytes the messages of one request may hold together (bodies and
	// attributes).
	MaxBatchBytes = 256 << 10
)

// Client is the SQS call Enqueue makes; *sqs.Client satisfies it.
type Client interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// Queue sends continuations to one queue. It is safe for concurrent use.
type Queue struct {
	client Client
	url    string
	// backoff is the first pause before entries are sent again; it doubles up to a second.
	backoff time.Duration
}

// New returns a Queue sending to the queue at url through client.
func New(client Client, url string) *Queue {
	return &Queue{client: client, url: url, backoff: 50 * time.Millisecond}
}

// ErrRefused reports entries SQS refused as the sender's fault; sending them again cannot help.
var ErrRefused = errors.New("chunkq: message refused")

// attrBytes is what the marking attribute adds to a message's size.
var attrBytes = len(Attr) + len("String") + len(Continuation)

// Enqueue implements fanout.Queue.
func (q *Queue) Enqueue(ctx context.Context, cs []fanout.Continuation) error {
	bodies := make([]string, len(cs))
	for i := range cs {
		b, err := json.Marshal(cs[i])
		if err != nil {
			return fmt.Errorf("chunkq: encode continuation: %w", err)
		}
		if len(b)+attrBytes > MaxBatchBytes {
			return fmt.Errorf("%w: continuation of %d bytes, over SQS's %d", ErrRefused, len(b), MaxBatchBytes)
		}
		bodies[i] = string(b)
	}
	for len(bodies) > 0 {
		n, size := 0, 0
		for n < len(bodies) && n < MaxBatch && size+len(bodies[n])+attrBytes <= MaxBatchBytes {
			size += len(bodies[n]) + attrBytes
			n++
		}
		if err := q.send(ctx, bodies[:n]); err != nil {
			return err
		}
		bodies = bodies[n:]
	}
	return nil
}

// send sends one batch, sending again the entries SQS did not take until all are taken.
func (q *Queue) send(ctx context.Context, bodies []string) error {
	entries := make([]types.SendMessageBatchRequestEntry, len(bodies))
	for i, b := range bodies {
		entries[i] = types.SendMessageBatchRequestEntry{
			Id:          aws.String(strconv.Itoa(i)),
			MessageBody: aws.String(b),
			MessageAttributes: map[string]types.MessageAttributeValue{
				Attr: {DataType: aws.String("String"), StringValue: aws.String(Continuation)},
			},
		}
	}
	pause := q.backoff
	for attempt := 1; ; attempt++ {
		out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
		if err != nil {
			// The client has retried what its retryer retries; the rest is the caller's to
			// report.
			return fmt.Errorf("chunkq: send %d continuations: %w", len(entries), err)
		}
		if len(out.Failed) == 0 {
			return nil
		}
		byID := make(map[string]types.SendMessageBatchRequestEntry, len(entries))
		for _, e := range entries {
			byID[aws.ToString(e.Id)] = e
		}
		again := entries[:0:0]
		for _, f := range out.Failed {
			if f.SenderFault {
				return fmt.Errorf("%w: %s: %s", ErrRefused, aws.ToString(f.Code), aws.ToString(f.Message))
			}
			if e, ok := byID[aws.ToString(f.Id)]; ok {
				again = append(again, e)
			}
		}
		if len(again) == 0 {
			return fmt.Errorf("chunkq: SQS reported %d failures for entries it was not sent", len(out.Failed))
		}
		entries = again
		t := time.NewTimer(time.Duration(rand.Int64N(int64(pause))) + pause/2)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("chunkq: %d of the continuations not taken after %d attempts (%s): %w", len(entries), attempt,
				aws.ToString(out.Failed[0].Code), ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}

// IsContinuation reports whether a message Lambda delivered from SQS is a continuation.
func IsContinuation(m events.SQSMessage) bool {
	a, ok := m.MessageAttributes[Attr]
	return ok && a.StringValue != nil && *a.StringValue == Continuation
}
