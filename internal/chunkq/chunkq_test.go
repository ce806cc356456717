package chunkq_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/realtime-gql/lambdaws/internal/chunkq"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/rs/zerolog"
)

// recorder is a handler that takes every SQS batch and reports nothing failed.
type recorder struct {
	mu   sync.Mutex
	msgs []events.SQSMessage
}

func (r *recorder) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, ev.Records...)
	r.mu.Unlock()
	return []byte(`{"batchItemFailures":[]}`), nil
}

func (r *recorder) taken() []events.SQSMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.SQSMessage(nil), r.msgs...)
}

func sqsClient(endpoint string) *sqs.Client {
	return sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
}

func continuations(n int, payload string) []fanout.Continuation {
	cs := make([]fanout.Continuation, n)
	for i := range cs {
		cs[i] = fanout.Continuation{Event: fanout.Event{ID: "e1", Seq: "7", Field: "f", Topic: "t", Payload: json.RawMessage(payload)},
			Part: fmt.Sprint(i + 1), After: fmt.Sprintf("c%03d", i)}
	}
	return cs
}

// TestEnqueueThroughTheEmulatedQueue sends continuations with the real SDK client to the local
// runtime's SQS emulation: each arrives once, marked, and parses back to what was sent.
func TestEnqueueThroughTheEmulatedQueue(t *testing.T) {
	rec := &recorder{}
	rt := local.New(local.Config{Handler: rec, Log: zerolog.Nop(), Queues: []local.QueueConfig{{Name: "chunks"}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rt.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()
	q := chunkq.New(sqsClient("http://"+addr), local.QueueURL(addr, "chunks"))
	// 23 continuations: three requests of at most 10.
	want := continuations(23, `{"x":1}`)
	if err := q.Enqueue(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.taken()) < 23 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := map[string]bool{}
	for _, m := range rec.taken() {
		if !chunkq.IsContinuation(m) {
			t.Fatalf("message %s is not marked as a continuation: %v", m.MessageId, m.MessageAttributes)
		}
		c, err := fanout.ParseContinuation([]byte(m.Body))
		if err != nil {
			t.Fatal(err)
		}
		if got[c.Part] || c.Event.ID != "e1" || c.Event.Seq != "7" || c.After != fmt.Sprintf("c%03d", mustAtoi(c.Part)-1) {
			t.Fatalf("continuation %+v (duplicate: %v)", c, got[c.Part])
		}
		got[c.Part] = true
	}
	if len(got) != 23 {
		t.Fatalf("%d continuations arrived, want 23", len(got))
	}
	if st, _ := rt.Queue("chunks"); st.Sent != 23 || st.Deleted != 23 {
		t.Fatalf("queue stats %+v", st)
	}
}

func mustAtoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// fakeSQS answers SendMessageBatch in the SDK's JSON protocol: the first answer fails the entries
// fail picks (as SQS does when it is in trouble), later answers take everything.
type fakeSQS struct {
	mu       sync.Mutex
	requests []int // entries per request
	bodies   int
	fail     func(request int, id string) (fail, sender bool)
}

func (f *fakeSQS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != "AmazonSQS.SendMessageBatch" || r.Header.Get("Content-Type") != "application/x-amz-json-1.0" {
		http.Error(w, "unexpected request", http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in struct {
		Entries []struct {
			Id, MessageBody   string
			MessageAttributes map[string]struct{ DataType, StringValue string }
		}
	}
	json.Unmarshal(body, &in)
	f.mu.Lock()
	f.requests = append(f.requests, len(in.Entries))
	n := len(f.requests)
	f.mu.Unlock()
	type okEntry struct{ Id, MessageId, MD5OfMessageBody string }
	type failEntry struct {
		Id          string
		SenderFault bool
		Code        string
	}
	out := struct {
		Successful []okEntry
		Failed     []failEntry
	}{[]okEntry{}, []failEntry{}}
	for _, e := range in.Entries {
		if e.MessageAttributes[chunkq.Attr].StringValue != chunkq.Continuation {
			http.Error(w, "unmarked entry", http.StatusBadRequest)
			return
		}
		if fail, sender := f.fail(n, e.Id); fail {
			out.Failed = append(out.Failed, failEntry{e.Id, sender, "InternalError"})
			continue
		}
		f.mu.Lock()
		f.bodies++
		f.mu.Unlock()
		sum := md5.Sum([]byte(e.MessageBody)) // the SDK checks it
		out.Successful = append(out.Successful, okEntry{Id: e.Id, MessageId: "m-" + e.Id, MD5OfMessageBody: hex.EncodeToString(sum[:])})
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	json.NewEncoder(w).Encode(out)
}

// TestPartialFailuresAreSentAgain: entries SQS did not take (not the sender's fault) are sent
// again until they are; an entry refused as the sender's fault is an error.
func TestPartialFailuresAreSentAgain(t *testing.T) {
	f := &fakeSQS{fail: func(req int, id string) (bool, bool) { return req <= 2 && id != "0", false }}
	srv := httptest.NewServer(f)
	defer srv.Close()
	q := chunkq.New(sqsClient(srv.URL), srv.URL+"/000000000000/chunks")
	if err := q.Enqueue(context.Background(), continuations(10, `{}`)); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.requests) != "[10 9 9]" || f.bodies != 10 {
		t.Fatalf("requests %v, bodies %d: want the nine failed entries sent twice more, every body taken once", f.requests, f.bodies)
	}

	refused := &fakeSQS{fail: func(req int, id string) (bool, bool) { return id == "3", true }}
	srv2 := httptest.NewServer(refused)
	defer srv2.Close()
	err := chunkq.New(sqsClient(srv2.URL), srv2.URL+"/q").Enqueue(context.Background(), continuations(5, `{}`))
	if !errors.Is(err, chunkq.ErrRefused) {
		t.Fatalf("an entry refused as the sender's fault: %v, want ErrRefused", err)
	}

	// Failing for ever: Enqueue gives up when its context ends.
	stuck := &fakeSQS{fail: func(int, string) (bool, bool) { return true, false }}
	srv3 := httptest.NewServer(stuck)
	defer srv3.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := chunkq.New(sqsClient(srv3.URL), srv3.URL+"/q").Enqueue(ctx, continuations(2, `{}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a queue that never takes: %v, want the context's deadline", err)
	}
}

// TestBatchesRespectTheSizeBound: continuations are packed at most 10 and 256 KiB a request.
func TestBatchesRespectTheSizeBound(t *testing.T) {
	f := &fakeSQS{fail: func(int, string) (bool, bool) { return false, false }}
	srv := httptest.NewServer(f)
	defer srv.Close()
	big := `{"text":"` + strings.Repeat("x", 60<<10) + `"}` // ~60 KiB each: four fit in a request
	if err := chunkq.New(sqsClient(srv.URL), srv.URL+"/q").Enqueue(context.Background(), continuations(9, big)); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.requests) != "[4 4 1]" {
		t.Fatalf("requests %v, want [4 4 1]", f.requests)
	}
	huge := `{"text":"` + strings.Repeat("x", 257<<10) + `"}`
	if err := chunkq.New(sqsClient(srv.URL), srv.URL+"/q").Enqueue(context.Background(), continuations(1, huge)); !errors.Is(err, chunkq.ErrRefused) {
		t.Fatalf("a continuation over 256 KiB: %v, want ErrRefused", err)
	}
}
