package publish_test

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/realtime-gql/lambdaws/internal/chunkq"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/realtime-gql/lambdaws/store/stream"
	"github.com/rs/zerolog"
)

// queueHandler is the Lambda handler of the chunk queue's consumers: SQS events to HandleSQS,
// once hold is closed.
type queueHandler struct {
	f    *publish.Fanout
	log  zerolog.Logger
	hold <-chan struct{}
}

func (h queueHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	select {
	case <-h.hold:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	resp, err := h.f.HandleSQS(h.log.WithContext(ctx), ev)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

// TestCarriedRecordIsFinishedThroughTheEmulatedQueue: a record for 2,000 subscribers, posts
// taking 40 ms, 32 in flight, the default margin of 2 s. With chunks of 1,000 and a deadline of
// 3 s, posts may start for a second: at most about 800 can be delivered inline, the deadline
// comes first, and what the invocation did not deliver (the posts it cut, and the unread rest of
// the topic) is carried to the queue. With chunks of 500 and a deadline of 6 s (posts may start
// for 4 s, room for the first 500 on a loaded machine), the rest is handed to the queue in
// chunks after the first 500, and the record waits for them until its deadline (the consumers
// start once it has answered, so that they cannot finish first). Either way the record is
// reported (the stream must wait for its chunks), the local runtime's SQS emulation delivers the
// continuations to consumers (the real SQS client sends them, as on AWS; a consumer splits what
// it cannot finish again), and the stream's retry finds every chunk done.
//
// Each subscriber gets the message exactly once, as far as the fan-out can know: it sees
// exactly one post to each subscriber answered, and never posts again what it saw answered. A
// request that went unanswered is the one exception: the service may have delivered it (API
// Gateway does not take back a post whose caller hung up), and it is sent again, by the
// continuation when the deadline cut it, or by the client when its attempt timed out. So a
// subscriber may get a second copy only for a request of its that went unanswered. With chunks
// of 1,000 the first subscriber's first post is answered only after the posts are cut, and
// delivered regardless: that case happens on every run, not only when a loaded machine slows
// posts past the cut (which is how it was found).
func TestCarriedRecordIsFinishedThroughTheEmulatedQueue(t *testing.T) {
	t.Run("carried at the deadline", func(t *testing.T) { testThroughQueue(t, 1000, true) })
	t.Run("chunked", func(t *testing.T) { testThroughQueue(t, 500, false) })
}

func testThroughQueue(t *testing.T, chunkSize int, carried bool) {
	// One process and no crash: the store need not sync, and its writes after the deadline
	// (progress rows) do not wait on a busy disk.
	s, err := embedded.Open(filepath.Join(t.TempDir(), "store.db"), embedded.Options{PageSize: 100, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	e := newEnv(t, publish.Config{Registry: s, Queue: chunkq.New(client, local.QueueURL(addr, "chunks")),
		Concurrency: 32, ChunkSize: chunkSize, Margin: 2 * time.Second})
	e.store = s
	all := conns("c", 2000)
	slow, slowPosts := all[0], 0 // Inject calls its function under the Gateway's lock
	e.gw.Inject(func(c mgmttest.Call) mgmttest.Fault {
		if carried && c.ConnectionID == slow {
			if slowPosts++; slowPosts == 1 {
				// Answered after the invocation's posts are cut (1.4 s after it started) and
				// delivered anyway: the fan-out sees no answer and carries the subscriber.
				return mgmttest.Fault{Delay: 2 * time.Second, Regardless: true}
			}
		}
		return mgmttest.Fault{Delay: 40 * time.Millisecond}
	})
	e.subscribe(addedR1, selIDText, gqlws.TransportWS, all...)

	hold, budget := make(chan struct{}), 6*time.Second
	release := sync.OnceFunc(func() { close(hold) })
	if carried {
		release()
		budget = 3 * time.Second
	}
	rt := local.New(local.Config{Handler: queueHandler{e.f, zerolog.New(e.logs), hold}, Log: zerolog.New(e.logs),
		Queues: []local.QueueConfig{{Name: "chunks", Consumers: 4, VisibilityTimeout: 200 * time.Millisecond}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	defer release()

	rec := record(t, 42, stream.Insert, nil, msg("r1", "m1", "to many"))
	start := time.Now()
	resp, st := e.publish(budget, rec)
	if took := time.Since(start); took > budget {
		t.Fatalf("the stream invocation answered after %v, past its deadline", took)
	}
	release()
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "42" {
		t.Fatalf("failures %+v: the carried record must be reported", resp.BatchItemFailures)
	}
	if (carried && st.Carried == 0) || (!carried && st.Chunks == 0) || st.Delivered >= 1000 || st.Failed != 0 {
		t.Fatalf("stats %+v: want work handed to the queue (carried: %v), nothing failed\n%s", st.Stats, carried, e.logs.Lines())
	}
	t.Logf("first invocation: %d delivered, %d chunk, %d carried continuations", st.Delivered, st.Chunks, st.Carried)

	// The consumers finish every continuation.
	deadline := time.Now().Add(30 * time.Second)
	for {
		q, _ := rt.Queue("chunks")
		if q.Sent > 0 && q.Deleted+int64(q.Dead) == q.Sent && q.InFlight == 0 {
			if q.Dead != 0 {
				t.Fatalf("continuations in the dead-letter list: %+v\n%s", q, e.logs.Lines())
			}
			t.Logf("queue drained %v after the first answer: %+v", time.Since(start), q)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue did not drain: %+v", q)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The stream's retry waits for the chunks' done markers, finds them, and delivers nothing.
	retry := time.Now()
	resp, st = e.publish(5*time.Second, rec)
	t.Logf("the retry answered in %v", time.Since(retry))
	if len(resp.BatchItemFailures) != 0 || st.Delivered != 0 {
		t.Fatalf("the retry: failures %+v, %d delivered", resp.BatchItemFailures, st.Delivered)
	}
	if carried {
		// The cut post of the slow subscriber is delivered 2 s after it started.
		for end := time.Now().Add(10 * time.Second); len(e.gw.Posts()[slow]) < 2 && time.Now().Before(end); {
			time.Sleep(20 * time.Millisecond)
		}
	}
	ids := e.eventIDs()
	e.seen.mu.Lock()
	defer e.seen.mu.Unlock()
	if len(e.seen.refused) > 0 {
		t.Fatalf("posts refused: %v", e.seen.refused)
	}
	var again []string
	for _, c := range all {
		got, answered, unanswered := ids[c], e.seen.answered[c], e.seen.unanswered[c]
		if answered != 1 {
			t.Fatalf("%s: the fan-out saw %d posts answered, want exactly 1 (it must never post again what it knows it delivered)", c, answered)
		}
		if len(got) < 1 || len(got) > 1+unanswered {
			t.Fatalf("%s received %v after %d unanswered requests: want the event %s once, and again only for an unanswered request", c, got, unanswered, rec.EventID)
		}
		for _, id := range got {
			if id != rec.EventID {
				t.Fatalf("%s received %v, want only the event %s", c, got, rec.EventID)
			}
		}
		if len(got) > 1 {
			again = append(again, c)
		}
	}
	if len(ids) != len(all) {
		t.Fatalf("%d connections received frames, want %d", len(ids), len(all))
	}
	if carried && (len(e.gw.Posts()[slow]) != 2 || e.seen.unanswered[slow] != 1) {
		t.Fatalf("%s: %d copies delivered, %d requests unanswered: want its cut post delivered and posted again", slow,
			len(e.gw.Posts()[slow]), e.seen.unanswered[slow])
	}
	t.Logf("%d subscribers got a second copy after an unanswered request: %v", len(again), again)
}
