package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/dynalite"
	"github.com/realtime-gql/lambdaws/internal/wstest"
	"github.com/rs/zerolog"
)

// testLogger writes warnings and errors to the test log.
func testLogger(t testing.TB) zerolog.Logger {
	if os.Getenv("TEST_LOG") != "" {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: zerolog.TestWriter{T: t}, NoColor: true}).Level(zerolog.WarnLevel)
}

func TestMain(m *testing.M) {
	code := m.Run()
	dynalite.StopShared()
	os.Exit(code)
}

// startTestDev starts the local runtime in-process on a free port with a fresh embedded store.
func startTestDev(t testing.TB) *devServer {
	t.Helper()
	return startTestDevWith(t, devOptions{host: "127.0.0.1", port: 0, data: t.TempDir()}, nil)
}

// startTestDevOnDynamoDB starts the local runtime on dynalite, with fresh tables.
func startTestDevOnDynamoDB(t testing.TB) *devServer {
	t.Helper()
	db := dynalite.Shared(t)
	env := map[string]string{"REGISTRY_TABLE": dynalite.TableName("dev-registry"), "DATA_TABLE": dynalite.TableName("dev-data")}
	return startTestDevWith(t, devOptions{host: "127.0.0.1", port: 0, dynamodb: db.Endpoint}, env)
}

func startTestDevWith(t testing.TB, o devOptions, env map[string]string) *devServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := readSettings(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	d, err := startDev(ctx, cfg, o, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := d.Wait(); err != nil {
			t.Errorf("runtime shutdown: %v", err)
		}
	})
	return d
}

// gql posts a GraphQL request over HTTP and decodes the result.
func gql(t testing.TB, addr, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := http.Post("http://"+addr+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response %s: %v", raw, err)
	}
	if out["errors"] != nil {
		t.Fatalf("%s: errors %s", query, raw)
	}
	return out["data"].(map[string]any)
}

// waitSubscribers waits until a topic has n stored subscriptions.
func waitSubscribers(t testing.TB, d *devServer, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := 0
		for _, err := range d.store.Subscriptions(context.Background(), topic) {
			if err != nil {
				t.Fatal(err)
			}
			got++
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s has %d subscriptions, want %d", topic, got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func subscribe(id, query string) map[string]any {
	return map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query}}
}

func start(id, query string) map[string]any {
	return map[string]any{"id": id, "type": "start", "payload": map[string]any{"query": query}}
}

// payload returns a result message's payload as compact JSON.
func payload(t testing.TB, m wstest.Msg) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, m.Payload); err != nil {
		t.Fatalf("payload of %s: %v", m, err)
	}
	return buf.String()
}

// TestEndToEnd runs the chat scenario through the local runtime with clients of both
// subprotocols: two rooms, different selection sets, sends, edits and deletes over HTTP, and
// checks that each subscriber receives exactly its events, with exactly its selection, in order,
// and nothing after it completes.
func TestEndToEnd(t *testing.T) {
	chatScenario(t, startTestDev(t))
}

// TestEndToEndOnDynamoDB runs the same scenario with `dev --dynamodb` on dynalite: the DynamoDB
// store, its tables created at start, and the stream fed from the runtime's own writes.
func TestEndToEndOnDynamoDB(t *testing.T) {
	chatScenario(t, startTestDevOnDynamoDB(t))
}

func chatScenario(t *testing.T, d *devServer) {
	url := "ws://" + d.Addr + "/graphql"

	// A speaks graphql-transport-ws and watches room r1.
	a := wstest.Dial(t, url, "graphql-transport-ws")
	if a.Subprotocol() != "graphql-transport-ws" {
		t.Fatalf("A negotiated %q", a.Subprotocol())
	}
	a.Send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
	a.Expect("connection_ack", "")
	a.Send(subscribe("a1", `subscription { messageAdded(roomId: "r1") { id text } }`))
	a.Send(subscribe("a2", `subscription { messageEdited(roomId: "r1") { text editedAt } }`))
	a.Send(subscribe("a3", `subscription { gone: messageDeleted(roomId: "r1") { id } }`))

	// B speaks legacy graphql-ws, watches room r2 with other selections, and starts right after
	// connection_init without waiting for the ack, as subscriptions-transport-ws does.
	b := wstest.Dial(t, url, "graphql-ws")
	if b.Subprotocol() != "graphql-ws" {
		t.Fatalf("B negotiated %q", b.Subprotocol())
	}
	b.Send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
	b.Send(start("b1", `subscription { messageAdded(roomId: "r2") { roomId author text } }`))
	b.Send(start("b2", `subscription($r: ID!) { messageEdited(roomId: $r) { text } }`))
	b.Send(map[string]any{"id": "b3", "type": "start", "payload": map[string]any{
		"query": `subscription D($r: ID!) { messageDeleted(roomId: $r) { author } }`, "operationName": "D", "variables": map[string]any{"r": "r2"}}})
	b.Expect("connection_ack", "")

	// b2's variable is missing: a validation error, as a single error object.
	m := b.Expect("error", "b2")
	var legacyErr map[string]any
	if err := json.Unmarshal(m.Payload, &legacyErr); err != nil || legacyErr["message"] == nil {
		t.Fatalf("legacy error payload must be one error object: %s", m)
	}
	b.Send(map[string]any{"id": "b2", "type": "start", "payload": map[string]any{
		"query": `subscription($r: ID!) { messageEdited(roomId: $r) { text } }`, "variables": map[string]any{"r": "r2"}}})

	for topic, n := range map[string]int{"messageAdded?roomId=r1": 1, "messageEdited?roomId=r1": 1, "messageDeleted?roomId=r1": 1,
		"messageAdded?roomId=r2": 1, "messageEdited?roomId=r2": 1, "messageDeleted?roomId=r2": 1} {
		waitSubscribers(t, d, topic, n)
	}

	send := func(room, author, text string) string {
		data := gql(t, d.Addr, `mutation($r: ID!, $a: String!, $t: String!) { sendMessage(roomId: $r, author: $a, text: $t) { id } }`,
			map[string]any{"r": room, "a": author, "t": text})
		return data["sendMessage"].(map[string]any)["id"].(string)
	}
	edit := func(room, id, text string) {
		gql(t, d.Addr, `mutation($r: ID!, $id: ID!, $t: String!) { editMessage(roomId: $r, id: $id, text: $t) { id } }`,
			map[string]any{"r": room, "id": id, "t": text})
	}
	del := func(room, id string) {
		gql(t, d.Addr, `mutation($r: ID!, $id: ID!) { deleteMessage(roomId: $r, id: $id) { id } }`, map[string]any{"r": room, "id": id})
	}

	x1 := send("r1", "ann", "hello r1")
	y1 := send("r2", "bob", "hello r2")
	x2 := send("r1", "ann", "second")
	edit("r1", x1, "hello r1 (edited)")
	edit("r2", y1, "hello r2 (edited)")
	del("r1", x2)
	del("r2", y1)

	// A: exactly its r1 events, in write order, with its own selection sets.
	if m := a.Expect("next", "a1"); payload(t, m) != fmt.Sprintf(`{"data":{"messageAdded":{"id":%q,"text":"hello r1"}}}`, x1) {
		t.Fatalf("A a1 #1: %s", m)
	}
	if m := a.Expect("next", "a1"); payload(t, m) != fmt.Sprintf(`{"data":{"messageAdded":{"id":%q,"text":"second"}}}`, x2) {
		t.Fatalf("A a1 #2: %s", m)
	}
	m = a.Expect("next", "a2")
	var edited struct {
		Data struct {
			MessageEdited map[string]any `json:"messageEdited"`
		} `json:"data"`
	}
	json.Unmarshal(m.Payload, &edited)
	if len(edited.Data.MessageEdited) != 2 || edited.Data.MessageEdited["text"] != "hello r1 (edited)" || edited.Data.MessageEdited["editedAt"] == nil {
		t.Fatalf("A a2: %s", m)
	}
	if m := a.Expect("next", "a3"); payload(t, m) != fmt.Sprintf(`{"data":{"gone":{"id":%q}}}`, x2) {
		t.Fatalf("A a3: %s", m)
	}

	// B: exactly its r2 events, framed as legacy data messages.
	if m := b.Expect("data", "b1"); payload(t, m) != `{"data":{"messageAdded":{"roomId":"r2","author":"bob","text":"hello r2"}}}` {
		t.Fatalf("B b1: %s", m)
	}
	if m := b.Expect("data", "b2"); payload(t, m) != `{"data":{"messageEdited":{"text":"hello r2 (edited)"}}}` {
		t.Fatalf("B b2: %s", m)
	}
	if m := b.Expect("data", "b3"); payload(t, m) != `{"data":{"messageDeleted":{"author":"bob"}}}` {
		t.Fatalf("B b3: %s", m)
	}
	a.ExpectNone(100 * time.Millisecond)
	b.ExpectNone(10 * time.Millisecond)

	// Queries and mutations over the socket: one result, then complete.
	a.Send(subscribe("q1", `{ messages(roomId: "r1") { text } }`))
	if m := a.Expect("next", "q1"); payload(t, m) != `{"data":{"messages":[{"text":"hello r1 (edited)"}]}}` {
		t.Fatalf("A q1: %s", m)
	}
	a.Expect("complete", "q1")
	b.Send(start("q2", `mutation { sendMessage(roomId: "r3", author: "bob", text: "over the socket") { text } }`))
	if m := b.Expect("data", "q2"); payload(t, m) != `{"data":{"sendMessage":{"text":"over the socket"}}}` {
		t.Fatalf("B q2: %s", m)
	}
	b.Expect("complete", "q2")

	// Complete a1 and stop b1: nothing more arrives for them. The edit that follows each new
	// message proves the message's event was processed (events are delivered in order).
	a.Send(map[string]any{"id": "a1", "type": "complete"})
	b.Send(map[string]any{"id": "b1", "type": "stop"})
	b.Expect("complete", "b1")
	waitSubscribers(t, d, "messageAdded?roomId=r1", 0)
	waitSubscribers(t, d, "messageAdded?roomId=r2", 0)
	x3 := send("r1", "ann", "after complete")
	edit("r1", x3, "after complete (edited)")
	y3 := send("r2", "bob", "after stop")
	edit("r2", y3, "after stop (edited)")
	if m := a.Expect("next", "a2"); !strings.Contains(payload(t, m), "after complete (edited)") {
		t.Fatalf("A a2 after complete: %s", m)
	}
	if m := b.Expect("data", "b2"); !strings.Contains(payload(t, m), "after stop (edited)") {
		t.Fatalf("B b2 after stop: %s", m)
	}
	a.ExpectNone(100 * time.Millisecond)
	b.ExpectNone(10 * time.Millisecond)

	// Disconnecting removes the connection's subscriptions.
	a.C.CloseNow()
	waitSubscribers(t, d, "messageEdited?roomId=r1", 0)
	waitSubscribers(t, d, "messageDeleted?roomId=r1", 0)
}
