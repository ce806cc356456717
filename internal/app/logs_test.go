package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/wstest"
	"github.com/rs/zerolog"
)

// jsonLog collects JSON log lines.
type jsonLog struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *jsonLog) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, fmt.Errorf("not a JSON line: %q", p)
	}
	l.mu.Lock()
	l.lines = append(l.lines, m)
	l.mu.Unlock()
	return len(p), nil
}

// with returns the lines whose message is msg.
func (l *jsonLog) with(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, m := range l.lines {
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// await waits up to d for at least counts[msg] lines of each message.
func (l *jsonLog) await(counts map[string]int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		done := true
		for msg, n := range counts {
			if len(l.with(msg)) < n {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDevLogLines: what `dev` logs for a subscription's life, at debug level: one line per request
// and per route invocation, "subscribed" and "complete" naming the connection, the operation and
// the topic, one "batch published" line per delivery batch, and one line per event posted to the
// invoke endpoint.
func TestDevLogLines(t *testing.T) {
	var log jsonLog
	ctx, cancel := context.WithCancel(context.Background())
	d, err := app.StartDev(ctx, app.Config{}, app.DevConfig{Host: "127.0.0.1", Data: t.TempDir()}, zerolog.New(&log).Level(zerolog.DebugLevel))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := d.Wait(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()

	c := wstest.Dial(t, "ws://"+d.Addr+"/graphql", "graphql-transport-ws")
	c.Send(map[string]any{"type": "connection_init"})
	c.Expect("connection_ack", "")
	c.Send(subscribe("s1", `subscription { messageAdded(roomId: "r1") { text } }`))
	apptest.WaitSubscribers(t, d.Store, "messageAdded?roomId=r1", 1)
	apptest.GraphQL(t, d.Addr, `mutation { sendMessage(roomId: "r1", author: "a", text: "hi") { id } }`, nil)
	c.Expect("next", "s1")
	c.Send(map[string]any{"id": "s1", "type": "complete"})
	apptest.WaitSubscribers(t, d.Store, "messageAdded?roomId=r1", 0)

	// A route's line is written once its invocation has returned, which may be after the store
	// shows its effect: wait for the counts rather than read them once.
	counts := map[string]int{"$default": 3, "POST /graphql": 1, "subscribed": 1, "complete": 1}
	log.await(counts, 5*time.Second)
	connect := log.with("$connect")
	if len(connect) != 1 {
		t.Fatalf("%d $connect lines, want 1", len(connect))
	}
	conn := connect[0]["conn"]
	for msg, n := range counts {
		if got := log.with(msg); len(got) != n {
			t.Errorf("%d %q lines, want %d: %v", len(got), msg, n, got)
		}
	}
	for _, msg := range []string{"subscribed", "complete"} {
		for _, m := range log.with(msg) {
			if m["level"] != "debug" || m["conn"] != conn || m["op"] != "s1" {
				t.Errorf("%s line %v: want debug, conn %v, op s1", msg, m, conn)
			}
		}
	}
	if m := log.with("subscribed"); len(m) == 1 && m[0]["topic"] != "messageAdded?roomId=r1" {
		t.Errorf("subscribed line %v names no topic", m[0])
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(log.with("batch published")) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	batches := log.with("batch published")
	if len(batches) != 1 || batches[0]["level"] != "debug" || batches[0]["delivered"] != 1.0 {
		t.Errorf("batch lines %v: want one, at debug, with delivered 1", batches)
	}

	// An event from another service, through the invoke endpoint (where bootstrap publish sends
	// it): one line for the request, at info, besides the delivery.
	c.Send(subscribe("s2", `subscription { announcement(roomId: "r1") { text } }`))
	apptest.WaitSubscribers(t, d.Store, "announcement?roomId=r1", 1)
	invoke(t, d.Addr, `{"version":"0","id":"ev-1","detail-type":"chat.announcement","source":"com.example.chat","account":"123456789012",`+
		`"time":"2026-11-26T14:13:00Z","region":"us-east-1","resources":[],"detail":{"id":"a1","roomId":"r1","text":"closing","priority":1,"at":"2026-11-26T14:13:00Z"}}`)
	c.Expect("next", "s2")
	if got := log.with("POST " + facts.InvokePath); len(got) != 1 || got[0]["level"] != "info" || got[0]["status"] != 200.0 {
		t.Errorf("invoke endpoint lines %v: want one, at info, status 200", got)
	}
}
