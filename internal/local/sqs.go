package local

import (
	"cmp"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// SQS emulation: queues the handler sends to with the real SDK client and consumes as Lambda's
// event source mapping does.
//
//	POST http://ADDR/  X-Amz-Target: AmazonSQS.SendMessage | AmazonSQS.SendMessageBatch | AmazonSQS.GetQueueUrl
//	                   Content-Type: application/x-amz-json-1.0, the SDK's JSON protocol; errors as
//	                   {"__type": "com.amazonaws.sqs#<Code>", "message": ...} with SQS's query code in
//	                   X-Amzn-Query-Error (what the SDK reports: AWS.SimpleQueueService.NonExistentQueue...)
//
// Queue URLs are QueueURL(addr, name). Consumers (QueueConfig.Consumers of them per queue) take
// up to BatchSize visible messages at a time and invoke the handler with the SQS event Lambda
// sends ({"Records":[{"messageId","receiptHandle","body","md5OfBody","attributes":
// {"ApproximateReceiveCount",...},"messageAttributes","eventSource":"aws:sqs","eventSourceARN",
// "awsRegion"}]}). The messages the response lists in batchItemFailures (all of them when the
// invocation fails or answers something unreadable) become visible again VisibilityTimeout after
// they were received; a message received MaxReceiveCount times that fails again goes to the
// queue's dead-letter list, with a log line saying why. The others are deleted. Messages live in
// memory: a restart loses them.

// The account and Region of the emulated resources: queue URLs and ARNs, the function's ARN, and
// the events the runtime makes.
const (
	AccountID = "000000000000"
	Region    = "us-east-1"
)

// QueueURL is the URL of the emulated queue name on the runtime listening at addr.
func QueueURL(addr, name string) string { return "http://" + addr + "/" + AccountID + "/" + name }

// QueueARN is the ARN of the emulated queue name (the eventSourceARN of its messages).
func QueueARN(name string) string { return "arn:aws:sqs:" + Region + ":" + AccountID + ":" + name }

// Bounds of SQS messages.
const (
	// MaxSQSMessage is the largest message (body and attributes) and the largest batch, in bytes:
	// 256 KiB.
	MaxSQSMessage = 256 << 10
	// MaxSQSBatch is the most entries of a SendMessageBatch, and the most messages of one
	// invocation.
	MaxSQSBatch = 10
)

// maxSQSRequest bounds a request's body: a batch of MaxSQSMessage bytes, JSON-escaped.
const maxSQSRequest = 4 * MaxSQSMessage

// QueueConfig configures one emulated queue and its event source mapping. Zero values take the
// documented defaults.
type QueueConfig struct {
	// Name names the queue; its URL is QueueURL(addr, Name). Required.
	Name string
	// BatchSize is the most messages one invocation gets, 1 to 10; default 10.
	BatchSize int
	// Consumers is how many invocations of the queue run at once (the mapping's maximum
	// concurrency); default 2.
	Consumers int
	// VisibilityTimeout is how long a received message stays invisible: a failed one comes back
	// that long after it was received; default 30s.
	VisibilityTimeout time.Duration
	// MaxReceiveCount is how many receives a message gets before a failure sends it to the
	// dead-letter list; default 5.
	MaxReceiveCount int
	// MaxMessages bounds the messages the queue holds (visible, in flight or waiting to come
	// back); a send past it is refused (OverLimit), and the dead-letter list keeps the last
	// MaxMessages. Default 100,000.
	MaxMessages int
}

func (c *QueueConfig) defaults() {
	c.BatchSize = min(max(cmp.Or(c.BatchSize, MaxSQSBatch), 1), MaxSQSBatch)
	c.Consumers = max(cmp.Or(c.Consumers, 2), 1)
	c.VisibilityTimeout = cmp.Or(c.VisibilityTimeout, 30*time.Second)
	c.MaxReceiveCount = max(cmp.Or(c.MaxReceiveCount, 5), 1)
	c.MaxMessages = max(cmp.Or(c.MaxMessages, 100_000), 1)
}

// QueueStats is what an emulated queue holds and has done.
type QueueStats struct {
	// Visible messages wait for a consumer; InFlight are in an invocation; Delayed wait to
	// become visible again; Dead are in the dead-letter list.
	Visible, InFlight, Delayed, Dead int
	// Sent counts messages accepted, Deleted those an invocation finished, Received every
	// receive (redeliveries included).
	Sent, Deleted, Received int64
}

type sqsMessage struct {
	id, body, md5 string
	attrs         map[string]events.SQSMessageAttribute
	sentAt        time.Time
	visibleAt     time.Time
	firstReceive  time.Time
	receives      int
}

type sqsQueue struct {
	cfg  QueueConfig
	arn  string
	wake chan struct{}

	mu       sync.Mutex
	ready    []*sqsMessage // visible, oldest first
	delayed  []*sqsMessage // invisible until visibleAt
	inflight int
	dead     []*sqsMessage
	stats    QueueStats
}

func newSQSQueue(cfg QueueConfig) *sqsQueue {
	cfg.defaults()
	return &sqsQueue{cfg: cfg, arn: QueueARN(cfg.Name), wake: make(chan struct{}, 1)}
}

func (q *sqsQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// held is how many messages the queue holds; q.mu is held.
func (q *sqsQueue) held() int { return len(q.ready) + len(q.delayed) + q.inflight }

// take returns up to BatchSize visible messages, now received, or how long until one becomes
// visible (0: none is waiting).
func (q *sqsQueue) take(now time.Time) ([]*sqsMessage, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var next time.Time
	kept := q.delayed[:0]
	for _, m := range q.delayed {
		if !m.visibleAt.After(now) {
			q.ready = append(q.ready, m)
		} else {
			kept = append(kept, m)
			if next.IsZero() || m.visibleAt.Before(next) {
				next = m.visibleAt
			}
		}
	}
	clear(q.delayed[len(kept):])
	q.delayed = kept
	n := min(len(q.ready), q.cfg.BatchSize)
	if n == 0 {
		if next.IsZero() {
			return nil, 0
		}
		return nil, next.Sub(now)
	}
	batch := slices.Clone(q.ready[:n])
	clear(q.ready[:n])
	q.ready = q.ready[n:]
	if len(q.ready) == 0 {
		q.ready = nil
	}
	for _, m := range batch {
		m.receives++
		if m.firstReceive.IsZero() {
			m.firstReceive = now
		}
	}
	q.inflight += n
	q.stats.Received += int64(n)
	if len(q.ready) > 0 {
		q.signal() // another consumer takes the next batch now, not at its next poll
	}
	return batch, 0
}

// Queue returns the stats of the emulated queue name; false if there is none.
func (rt *Runtime) Queue(name string) (QueueStats, bool) {
	q := rt.queues[name]
	if q == nil {
		return QueueStats{}, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.stats
	st.Visible, st.InFlight, st.Delayed, st.Dead = len(q.ready), q.inflight, len(q.delayed), len(q.dead)
	return st, true
}

// consume is one consumer of a queue: it invokes the handler with batches of visible messages
// until ctx is done (the batch under way is finished first).
func (rt *Runtime) consume(ctx context.Context, q *sqsQueue) {
	for {
		if ctx.Err() != nil {
			return
		}
		batch, wait := q.take(time.Now())
		if len(batch) == 0 {
			if wait <= 0 {
				wait = time.Second
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-q.wake:
				t.Stop()
			case <-t.C:
			}
			continue
		}
		rt.invokeQueue(q, batch)
		q.signal() // another consumer may take what this one left
	}
}

// invokeQueue invokes the handler with one batch and settles each message: deleted, back after
// the visibility timeout, or dead.
func (rt *Runtime) invokeQueue(q *sqsQueue, batch []*sqsMessage) {
	received := time.Now()
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(batch))}
	for i, m := range batch {
		ev.Records[i] = events.SQSMessage{
			MessageId: m.id, ReceiptHandle: base64.RawURLEncoding.EncodeToString([]byte(m.id + "/" + strconv.Itoa(m.receives))),
			Body: m.body, Md5OfBody: m.md5, MessageAttributes: m.attrs,
			Attributes: map[string]string{
				"ApproximateReceiveCount":          strconv.Itoa(m.receives),
				"SentTimestamp":                    strconv.FormatInt(m.sentAt.UnixMilli(), 10),
				"SenderId":                         "AIDA" + AccountID,
				"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
			},
			EventSource: "aws:sqs", EventSourceARN: q.arn, AWSRegion: Region,
		}
	}
	payload, _ := json.Marshal(ev)
	out, err := rt.invoke(payload)
	failed := map[string]string{} // message id → why
	if err == nil {
		var resp events.SQSEventResponse
		if uerr := json.Unmarshal(out, &resp); uerr != nil {
			err = fmt.Errorf("unreadable response: %w", uerr)
		} else {
			for _, f := range resp.BatchItemFailures {
				if !slices.ContainsFunc(batch, func(m *sqsMessage) bool { return m.id == f.ItemIdentifier }) {
					// Lambda fails the whole batch on an identifier it did not send.
					err = fmt.Errorf("batchItemFailures names %q, which is not in the batch", f.ItemIdentifier)
					break
				}
				failed[f.ItemIdentifier] = "reported in batchItemFailures"
			}
		}
	}
	if err != nil {
		rt.log.Error().Err(err).Str("queue", q.cfg.Name).Int("messages", len(batch)).Msg("queue invocation failed; its messages come back after the visibility timeout")
		for _, m := range batch {
			failed[m.id] = "the invocation failed: " + err.Error()
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight -= len(batch)
	for _, m := range batch {
		why, bad := failed[m.id]
		switch {
		case !bad:
			q.stats.Deleted++
		case m.receives >= q.cfg.MaxReceiveCount:
			if len(q.dead) >= q.cfg.MaxMessages {
				q.dead = q.dead[1:]
			}
			q.dead = append(q.dead, m)
			rt.log.Error().Str("queue", q.cfg.Name).Str("messageId", m.id).Int("receives", m.receives).Str("why", why).
				Msg("message failed every receive: moved to the dead-letter queue")
		default:
			m.visibleAt = received.Add(q.cfg.VisibilityTimeout)
			q.delayed = append(q.delayed, m)
		}
	}
}

// queryCodes are the error codes of SQS's older query protocol, which SQS sends with its JSON
// errors (X-Amzn-Query-Error) and the SDK reports as the error's code.
var queryCodes = map[string]string{
	"QueueDoesNotExist":            "AWS.SimpleQueueService.NonExistentQueue",
	"EmptyBatchRequest":            "AWS.SimpleQueueService.EmptyBatchRequest",
	"TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
	"BatchEntryIdsNotDistinct":     "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
	"BatchRequestTooLong":          "AWS.SimpleQueueService.BatchRequestTooLong",
	"UnsupportedOperation":         "AWS.SimpleQueueService.UnsupportedOperation",
}

// sqsError is an error answer of the JSON protocol, as SQS sends it.
func sqsError(w http.ResponseWriter, status int, code, msg string) {
	refuse(w, code+": "+msg)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Query-Error", cmp.Or(queryCodes[code], code)+";Sender")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + code, "message": msg})
}

// sqsAttr is a message attribute as the JSON protocol carries it.
type sqsAttr struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
}

type sqsEntry struct {
	ID                string             `json:"Id"`
	MessageBody       string             `json:"MessageBody"`
	DelaySeconds      int                `json:"DelaySeconds"`
	MessageAttributes map[string]sqsAttr `json:"MessageAttributes"`
}

// size is what SQS counts against its bound: the body, and each attribute's name, type and value.
func (e *sqsEntry) size() int {
	n := len(e.MessageBody)
	for k, a := range e.MessageAttributes {
		n += len(k) + len(a.DataType) + len(a.BinaryValue)
		if a.StringValue != nil {
			n += len(*a.StringValue)
		}
	}
	return n
}

// serveSQS is the SQS endpoint.
func (rt *Runtime) serveSQS(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	// A batch holds at most MaxSQSMessage bytes of messages; JSON escaping can double them.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSQSRequest+1))
	switch {
	case err != nil:
		sqsError(w, http.StatusBadRequest, "InvalidParameterValue", "cannot read the body")
		return
	case len(body) > maxSQSRequest:
		sqsError(w, http.StatusBadRequest, "BatchRequestTooLong", fmt.Sprintf("the request is over %d bytes", maxSQSRequest))
		return
	}
	var in struct {
		QueueURL  string `json:"QueueUrl"`
		QueueName string `json:"QueueName"`
		sqsEntry
		Entries []sqsEntry `json:"Entries"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		sqsError(w, http.StatusBadRequest, "InvalidParameterValue", "malformed JSON: "+err.Error())
		return
	}
	name := in.QueueName
	if op != "GetQueueUrl" {
		name = in.QueueURL[strings.LastIndexByte(in.QueueURL, '/')+1:]
	}
	q := rt.queues[name]
	if q == nil {
		sqsError(w, http.StatusBadRequest, "QueueDoesNotExist", "The specified queue does not exist.")
		return
	}
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		json.NewEncoder(w).Encode(v)
	}
	switch op {
	case "GetQueueUrl":
		reply(map[string]string{"QueueUrl": QueueURL(r.Host, name)})
	case "SendMessage":
		if err := checkEntry(&in.sqsEntry); err != "" {
			sqsError(w, http.StatusBadRequest, "InvalidParameterValue", err)
			return
		}
		m, ok := q.send(&in.sqsEntry)
		if !ok {
			sqsError(w, http.StatusForbidden, "OverLimit", fmt.Sprintf("the queue holds %d messages, its bound", q.cfg.MaxMessages))
			return
		}
		reply(map[string]string{"MessageId": m.id, "MD5OfMessageBody": m.md5})
	case "SendMessageBatch":
		rt.sendBatch(w, q, in.Entries, reply)
	default:
		sqsError(w, http.StatusBadRequest, "UnsupportedOperation", "the local runtime emulates SendMessage, SendMessageBatch and GetQueueUrl only, not "+op)
	}
}

func (rt *Runtime) sendBatch(w http.ResponseWriter, q *sqsQueue, entries []sqsEntry, reply func(any)) {
	switch {
	case len(entries) == 0:
		sqsError(w, http.StatusBadRequest, "EmptyBatchRequest", "There should be at least one SendMessageBatchRequestEntry in the request.")
		return
	case len(entries) > MaxSQSBatch:
		sqsError(w, http.StatusBadRequest, "TooManyEntriesInBatchRequest", fmt.Sprintf("Maximum number of entries per request are %d. You have sent %d.", MaxSQSBatch, len(entries)))
		return
	}
	ids := map[string]bool{}
	total := 0
	for i := range entries {
		if ids[entries[i].ID] {
			sqsError(w, http.StatusBadRequest, "BatchEntryIdsNotDistinct", "Id "+entries[i].ID+" repeated.")
			return
		}
		ids[entries[i].ID] = true
		total += entries[i].size()
	}
	if total > MaxSQSMessage {
		sqsError(w, http.StatusBadRequest, "BatchRequestTooLong", fmt.Sprintf("Batch requests cannot be longer than %d bytes. You have sent %d bytes.", MaxSQSMessage, total))
		return
	}
	var out struct {
		Successful []map[string]string `json:"Successful"`
		Failed     []map[string]any    `json:"Failed"`
	}
	out.Successful, out.Failed = []map[string]string{}, []map[string]any{}
	for i := range entries {
		e := &entries[i]
		if msg := checkEntry(e); msg != "" {
			out.Failed = append(out.Failed, map[string]any{"Id": e.ID, "SenderFault": true, "Code": "InvalidParameterValue", "Message": msg})
			continue
		}
		m, accepted := q.send(e)
		if !accepted {
			out.Failed = append(out.Failed, map[string]any{"Id": e.ID, "SenderFault": false, "Code": "OverLimit",
				"Message": fmt.Sprintf("the queue holds %d messages, its bound", q.cfg.MaxMessages)})
			continue
		}
		out.Successful = append(out.Successful, map[string]string{"Id": e.ID, "MessageId": m.id, "MD5OfMessageBody": m.md5})
	}
	reply(out)
}

// checkEntry checks one message; it returns why it is refused, or "".
func checkEntry(e *sqsEntry) string {
	switch {
	case e.MessageBody == "":
		return "The request must contain the parameter MessageBody."
	case e.size() > MaxSQSMessage:
		return fmt.Sprintf("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", MaxSQSMessage)
	case e.DelaySeconds < 0 || e.DelaySeconds > 900:
		return "DelaySeconds must be between 0 and 900."
	}
	for k, a := range e.MessageAttributes {
		if k == "" || a.DataType == "" {
			return "Message attribute " + k + " must have a name and a DataType."
		}
	}
	return ""
}

// send queues one message; false when the queue is at its bound.
func (q *sqsQueue) send(e *sqsEntry) (*sqsMessage, bool) {
	sum := md5.Sum([]byte(e.MessageBody))
	now := time.Now()
	m := &sqsMessage{id: newRequestID(), body: e.MessageBody, md5: hex.EncodeToString(sum[:]), sentAt: now,
		visibleAt: now.Add(time.Duration(e.DelaySeconds) * time.Second)}
	if len(e.MessageAttributes) > 0 {
		m.attrs = make(map[string]events.SQSMessageAttribute, len(e.MessageAttributes))
		for k, a := range e.MessageAttributes {
			m.attrs[k] = events.SQSMessageAttribute{DataType: a.DataType, StringValue: a.StringValue, BinaryValue: a.BinaryValue,
				StringListValues: a.StringListValues}
		}
	}
	q.mu.Lock()
	if q.held() >= q.cfg.MaxMessages {
		q.mu.Unlock()
		return nil, false
	}
	if e.DelaySeconds > 0 {
		q.delayed = append(q.delayed, m)
	} else {
		q.ready = append(q.ready, m)
	}
	q.stats.Sent++
	q.mu.Unlock()
	q.signal()
	return m, true
}
