package app_test

// Delivery through the whole handler: chunks through the local runtime's emulated SQS queue, and
// the deadline through the router.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/realtime-gql/lambdaws/graph/model"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/internal/testlog"
	"github.com/realtime-gql/lambdaws/internal/wstest"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/realtime-gql/lambdaws/store/stream"
	"github.com/rs/zerolog"
)

// TestChunksThroughTheLocalRuntime: 2,100 subscriptions of one room (50 sockets of both
// subprotocols, 42 operations each) and chunks of 300: the stream invocation delivers the first
// chunk and hands the rest to the runtime's emulated SQS queue, whose consumers deliver it, as
// `make dev` does. Every subscription gets the message exactly once, carrying the change's
// identity.
func TestChunksThroughTheLocalRuntime(t *testing.T) {
	d := apptest.StartWith(t, app.Config{ChunkSize: 300}, app.DevConfig{})
	url := "ws://" + d.Addr + "/graphql"
	const sockets, ops = 50, 42
	clients := make([]*wstest.Client, sockets)
	for i := range clients {
		proto := gqlws.TransportWS
		if i%2 == 1 {
			proto = gqlws.LegacyWS
		}
		c := wstest.Dial(t, url, proto)
		c.Send(map[string]any{"type": "connection_init"})
		c.Expect("connection_ack", "")
		for j := range ops {
			q := map[string]any{"query": `subscription { messageAdded(roomId: "big") { id text } }`}
			if proto == gqlws.TransportWS {
				c.Send(map[string]any{"id": fmt.Sprint("s", j), "type": "subscribe", "payload": q})
			} else {
				c.Send(map[string]any{"id": fmt.Sprint("s", j), "type": "start", "payload": q})
			}
		}
		clients[i] = c
	}
	apptest.WaitSubscribers(t, d.Store, "messageAdded?roomId=big", sockets*ops)
	apptest.GraphQL(t, d.Addr, `mutation { sendMessage(roomId: "big", author: "a", text: "to everyone") { id } }`, nil)

	var eventID string
	for i, c := range clients {
		seen := map[string]int{}
		for range ops {
			m, ok := c.TryNext(30 * time.Second)
			if !ok || (m.Type != "next" && m.Type != "data") {
				t.Fatalf("socket %d: got %s (%v) after %d messages", i, m, ok, len(seen))
			}
			var p struct {
				Data       struct{ MessageAdded struct{ Text string } }
				Extensions struct{ Event struct{ ID, Seq string } }
			}
			json.Unmarshal(m.Payload, &p)
			if p.Data.MessageAdded.Text != "to everyone" || p.Extensions.Event.ID == "" || p.Extensions.Event.Seq == "" {
				t.Fatalf("socket %d: %s", i, m)
			}
			if eventID == "" {
				eventID = p.Extensions.Event.ID
			} else if p.Extensions.Event.ID != eventID {
				t.Fatalf("socket %d: event %s, the change is %s", i, p.Extensions.Event.ID, eventID)
			}
			seen[m.ID]++
		}
		if len(seen) != ops {
			t.Fatalf("socket %d: %d distinct operations received, want %d (each once): %v", i, len(seen), ops, seen)
		}
		c.ExpectNone(10 * time.Millisecond)
	}
	st, _ := d.Runtime.Queue(app.ChunkQueue)
	if st.Sent < 6 || st.Deleted != st.Sent || st.Dead != 0 {
		t.Fatalf("chunk queue %+v: want the topic's chunks sent through it and all consumed", st)
	}
	t.Logf("chunk queue: %+v", st)
}

// TestStreamAnswersBeforeTheDeadline (issue 7, defect 4) drives the router as Lambda does,
// with a deadline: 400 subscribers, one post in twenty takes 5 s, the invocation has 5 s. The
// handler answers before its deadline with the exact outcome (the record reported, since
// without a chunk queue the undelivered cannot be carried) and one log line saying why; the
// fast posts were delivered. Logs and EMF metrics share one writer, one JSON object per line.
func TestStreamAnswersBeforeTheDeadline(t *testing.T) {
	s, err := embedded.Open(filepath.Join(t.TempDir(), "store.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gw := mgmttest.New()
	gw.Inject(func(c mgmttest.Call) mgmttest.Fault {
		var n int
		if _, err := fmt.Sscanf(c.ConnectionID, "c%d=", &n); c.Op == mgmttest.Post && err == nil && n%20 == 0 {
			return mgmttest.Fault{Delay: 5 * time.Second}
		}
		return mgmttest.Fault{}
	})
	srv := httptest.NewServer(gw)
	defer srv.Close()
	awsCfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	gwc, err := app.NewGateway(awsCfg, srv.URL+"/prod", 32)
	if err != nil {
		t.Fatal(err)
	}
	out := &testlog.Buffer{} // shared by the logger and the metrics, as stdout is on Lambda
	svc, err := app.NewService(app.Config{DeliveryConcurrency: 32}, s, app.Deps{Gateway: gwc, Metrics: out}, zerolog.New(out))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	for i := range 400 {
		sub := store.Subscription{ConnectionID: fmt.Sprintf("c%04d=", i), ID: "1", Topic: "messageAdded?roomId=r1",
			Subprotocol: gqlws.TransportWS, Query: `subscription { messageAdded(roomId: "r1") { id } }`, ExpiresAt: time.Now().Add(time.Hour)}
		if err := s.PutSubscription(ctx, sub, false); err != nil {
			t.Fatal(err)
		}
	}
	item := messageItem(t, model.Message{ID: "m1", RoomID: "r1", Author: "a", Text: "t", CreatedAt: time.Now()})
	rec, err := stream.ChangeRecord(stream.Insert, nil, item, 77, "arn:aws:dynamodb:us-east-1:123456789012:table/data/stream/x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}})

	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	deadline, _ := ictx.Deadline()
	answer, err := svc.Invoke(ictx, payload)
	left := time.Until(deadline)
	if err != nil {
		t.Fatal(err)
	}
	if left <= 0 {
		t.Fatalf("answered %v after the deadline", -left)
	}
	t.Logf("answered %v before the deadline: %s", left.Round(time.Millisecond), answer)
	var resp events.DynamoDBEventResponse
	if err := json.Unmarshal(answer, &resp); err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "77" {
		t.Fatalf("response %s: want record 77 reported", answer)
	}
	if n := len(gw.Posts()); n != 380 {
		t.Fatalf("%d subscribers delivered, want the 380 whose posts are fast", n)
	}
	var reported, metrics int
	for _, l := range out.Lines() {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a line of the shared output is not one JSON object: %q", l)
		}
		if m["_aws"] != nil {
			metrics++
		}
		if m["message"] == "stream record failed; reported for retry" {
			reported++
			if m["seq"] != "77" || m["reason"] != "deadline" {
				t.Fatalf("the record's log line: %s", l)
			}
		}
	}
	if reported != 1 || metrics != 1 {
		t.Fatalf("%d lines reporting the record and %d metric lines, want one each:\n%s", reported, metrics, strings.Join(out.Lines(), "\n"))
	}
}

// messageItem is apptest.MessageItem, by the name the benchmarks of this package use.
func messageItem(t testing.TB, m model.Message) store.Item { return apptest.MessageItem(t, m) }
