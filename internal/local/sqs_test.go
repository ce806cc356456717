package local_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/internal/testlog"
	"github.com/rs/zerolog"
)

// serveQueue runs a runtime with one emulated queue, logging into logs.
func serveQueue(t *testing.T, h local.Handler, qc local.QueueConfig, logs *testlog.Buffer) (*local.Runtime, string) {
	t.Helper()
	rt, addr, _ := serveWith(t, local.Config{Handler: h, Log: zerolog.New(logs), Queues: []local.QueueConfig{qc}}, nil)
	return rt, addr
}

func sqsClient(addr string) *sqs.Client {
	return sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
}

// sqsHandler answers SQS batches with fn's failures and records every message it got.
type sqsHandler struct {
	mu      sync.Mutex
	batches [][]events.SQSMessage
	fn      func(m events.SQSMessage) bool // true: report it failed
	err     func(batch int) error          // a failing invocation
}

func (h *sqsHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.batches = append(h.batches, ev.Records)
	n := len(h.batches)
	h.mu.Unlock()
	if h.err != nil {
		if err := h.err(n); err != nil {
			return nil, err
		}
	}
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, m := range ev.Records {
		if h.fn != nil && h.fn(m) {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return json.Marshal(resp)
}

func (h *sqsHandler) received() (batches [][]events.SQSMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append(batches, h.batches...)
}

// TestQueueConsumerHonoursBatchItemFailures sends messages with the real SDK client and checks
// what the handler gets: SQS events as Lambda shapes them, in batches of at most BatchSize; a
// message reported once comes back after the visibility timeout and is then deleted; one reported
// every time goes to the dead-letter list after MaxReceiveCount receives, with a log line.
func TestQueueConsumerHonoursBatchItemFailures(t *testing.T) {
	h := &sqsHandler{fn: func(m events.SQSMessage) bool {
		return m.Body == "poison" || (m.Body == "flaky" && m.Attributes["ApproximateReceiveCount"] == "1")
	}}
	logs := &testlog.Buffer{}
	rt, addr := serveQueue(t, h, local.QueueConfig{Name: "q", BatchSize: 4, Consumers: 2, VisibilityTimeout: 100 * time.Millisecond, MaxReceiveCount: 3}, logs)
	client := sqsClient(addr)
	ctx := context.Background()
	var entries []types.SendMessageBatchRequestEntry
	for i, body := range []string{"m0", "m1", "m2", "flaky", "m4", "poison", "m6", "m7", "m8", "m9"} {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(body),
			MessageAttributes: map[string]types.MessageAttributeValue{"kind": {DataType: aws.String("String"), StringValue: aws.String("test")}}})
	}
	out, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(local.QueueURL(addr, "q")), Entries: entries})
	if err != nil || len(out.Successful) != 10 || len(out.Failed) != 0 {
		t.Fatalf("SendMessageBatch = %+v, %v", out, err)
	}
	waitFor(t, func() bool { st, _ := rt.Queue("q"); return st.Deleted == 9 && st.Dead == 1 })
	st, _ := rt.Queue("q")
	if st.Sent != 10 || st.Received != 8+2+3 || st.Visible+st.InFlight+st.Delayed != 0 {
		t.Fatalf("queue stats %+v: want 10 sent, 13 receives (flaky twice, poison three times)", st)
	}
	receives := map[string]int{}
	for _, b := range h.received() {
		if len(b) > 4 {
			t.Fatalf("a batch of %d messages, BatchSize 4", len(b))
		}
		for _, m := range b {
			sum := md5.Sum([]byte(m.Body))
			if m.EventSource != "aws:sqs" || m.EventSourceARN != local.QueueARN("q") || m.AWSRegion != "us-east-1" ||
				m.Md5OfBody != hex.EncodeToString(sum[:]) || m.MessageId == "" || m.ReceiptHandle == "" ||
				m.MessageAttributes["kind"].StringValue == nil || *m.MessageAttributes["kind"].StringValue != "test" ||
				m.Attributes["ApproximateReceiveCount"] != fmt.Sprint(receives[m.Body]+1) || m.Attributes["SentTimestamp"] == "" {
				t.Fatalf("message as the handler got it: %+v", m)
			}
			receives[m.Body]++
		}
	}
	if receives["flaky"] != 2 || receives["poison"] != 3 || receives["m0"] != 1 {
		t.Fatalf("receives %v", receives)
	}
	if n := strings.Count(logs.String(), "moved to the dead-letter queue"); n != 1 || !strings.Contains(logs.String(), "reported in batchItemFailures") {
		t.Fatalf("dead-letter log lines: %d\n%s", n, logs.String())
	}
}

// TestQueueInvocationErrorRedeliversTheBatch: an invocation that fails (or answers an identifier
// it was not sent) fails every message of its batch; they come back.
func TestQueueInvocationErrorRedeliversTheBatch(t *testing.T) {
	h := &sqsHandler{err: func(n int) error {
		if n == 1 {
			return errors.New("boom")
		}
		return nil
	}}
	logs := &testlog.Buffer{}
	rt, addr := serveQueue(t, h, local.QueueConfig{Name: "q", Consumers: 1, VisibilityTimeout: 50 * time.Millisecond}, logs)
	for _, body := range []string{"a", "b"} {
		if _, err := sqsClient(addr).SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(local.QueueURL(addr, "q")), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { st, _ := rt.Queue("q"); return st.Deleted == 2 })
	if !strings.Contains(logs.String(), "queue invocation failed") {
		t.Fatalf("no log line for the failed invocation:\n%s", logs.String())
	}
}

// TestQueueEndpointRefusesWhatSQSRefuses: the emulated endpoint answers as SQS does, through the
// SDK's error decoding: an unknown queue, an empty batch, 11 entries (the bound is 10), duplicate
// ids, a message over 256 KiB (256 KiB passes), and a queue at its bound (MaxMessages, and one
// more).
func TestQueueEndpointRefusesWhatSQSRefuses(t *testing.T) {
	release := make(chan struct{})
	h := &sqsHandler{err: func(int) error { <-release; return nil }}
	logs := &testlog.Buffer{}
	_, addr := serveQueue(t, h, local.QueueConfig{Name: "q", Consumers: 1, BatchSize: 1, MaxMessages: 3}, logs)
	defer close(release)
	client := sqsClient(addr)
	ctx := context.Background()
	url := aws.String(local.QueueURL(addr, "q"))
	code := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		return fmt.Sprint(err)
	}
	entries := func(n int) []types.SendMessageBatchRequestEntry {
		var out []types.SendMessageBatchRequestEntry
		for i := range n {
			out = append(out, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String("x")})
		}
		return out
	}
	_, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(local.QueueURL(addr, "nope")), MessageBody: aws.String("x")})
	if code(err) != "AWS.SimpleQueueService.NonExistentQueue" {
		t.Errorf("unknown queue: %v", err)
	}
	// The SDK refuses an empty batch itself; the endpoint does too.
	resp, err := http.Post("http://"+addr+"/", "application/x-amz-json-1.0", strings.NewReader(`{"QueueUrl":"`+*url+`","Entries":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Amzn-Query-Error") != "" {
		t.Errorf("a POST without X-Amz-Target reached the SQS endpoint (%d %v)", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(`{"QueueUrl":"`+*url+`","Entries":[]}`))
	req.Header.Set("X-Amz-Target", "AmazonSQS.SendMessageBatch")
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.Header.Get("X-Amzn-Query-Error"), "EmptyBatchRequest") {
		t.Errorf("empty batch: %d %v", resp.StatusCode, resp.Header)
	}
	if _, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: url, Entries: entries(11)}); code(err) != "AWS.SimpleQueueService.TooManyEntriesInBatchRequest" {
		t.Errorf("11 entries: %v", err)
	}
	dup := entries(2)
	dup[1].Id = dup[0].Id
	if _, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: url, Entries: dup}); code(err) != "AWS.SimpleQueueService.BatchEntryIdsNotDistinct" {
		t.Errorf("duplicate ids: %v", err)
	}
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String(strings.Repeat("x", local.MaxSQSMessage+1))}); code(err) != "InvalidParameterValue" {
		t.Errorf("a message of 256 KiB + 1: %v", err)
	}
	// The bound: three messages (one in the blocked invocation), then OverLimit.
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String(strings.Repeat("x", local.MaxSQSMessage))}); err != nil {
		t.Errorf("a message of 256 KiB: %v", err)
	}
	for range 2 {
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("x")}); code(err) != "OverLimit" {
		t.Errorf("a fourth message in a queue of at most three: %v", err)
	}
	out, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: url, Entries: entries(1)})
	if err != nil || len(out.Failed) != 1 || out.Failed[0].SenderFault || aws.ToString(out.Failed[0].Code) != "OverLimit" {
		t.Errorf("a batch entry past the bound: %+v, %v: want it failed, not the sender's fault", out, err)
	}
}
