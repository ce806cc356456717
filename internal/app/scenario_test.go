package app_test

// Scenario tests: the whole handler, wired as the binary wires it, behind the local runtime in
// this process, driven by real WebSocket clients and HTTP requests. (e2e/ runs the built binary as
// a child process instead.)

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/dynalite"
	"github.com/realtime-gql/lambdaws/internal/wstest"
)

func TestMain(m *testing.M) {
	if runBenchChild() {
		return
	}
	code := m.Run()
	dynalite.StopShared()
	os.Exit(code)
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

// withEvent is a result payload as the fan-out sends it: with the identity of the event, the
// seq-th write of the data table, in extensions.event.
func withEvent(payload string, seq int) string {
	return strings.TrimSuffix(payload, "}") + fmt.Sprintf(`,"extensions":{"event":{"id":"%032x","seq":"%d"}}}`, seq, seq)
}

// TestScenarioChat runs the chat scenario through the local runtime with clients of both
// subprotocols: two rooms, different selection sets, sends, edits and deletes over HTTP, and
// checks that each subscriber receives exactly its events, with exactly its selection, in order,
// and nothing after it completes.
func TestScenarioChat(t *testing.T) {
	chatScenario(t, apptest.Start(t, app.Config{}))
}

// TestScenarioChatOnDynamoDB runs the same scenario with `dev --dynamodb` on dynalite: the
// DynamoDB store, its tables created at start, and the stream fed from the runtime's own writes.
func TestScenarioChatOnDynamoDB(t *testing.T) {
	chatScenario(t, apptest.StartOnDynamoDB(t, app.Config{}))
}

func chatScenario(t *testing.T, d *app.Dev) {
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
		apptest.WaitSubscribers(t, d.Store, topic, n)
	}

	send := func(room, author, text string) string {
		data := apptest.GraphQL(t, d.Addr, `mutation($r: ID!, $a: String!, $t: String!) { sendMessage(roomId: $r, author: $a, text: $t) { id } }`,
			map[string]any{"r": room, "a": author, "t": text})
		return data["sendMessage"].(map[string]any)["id"].(string)
	}
	edit := func(room, id, text string) {
		apptest.GraphQL(t, d.Addr, `mutation($r: ID!, $id: ID!, $t: String!) { editMessage(roomId: $r, id: $id, text: $t) { id } }`,
			map[string]any{"r": room, "id": id, "t": text})
	}
	del := func(room, id string) {
		apptest.GraphQL(t, d.Addr, `mutation($r: ID!, $id: ID!) { deleteMessage(roomId: $r, id: $id) { id } }`, map[string]any{"r": room, "id": id})
	}

	x1 := send("r1", "ann", "hello r1")
	y1 := send("r2", "bob", "hello r2")
	x2 := send("r1", "ann", "second")
	edit("r1", x1, "hello r1 (edited)")
	edit("r2", y1, "hello r2 (edited)")
	del("r1", x2)
	del("r2", y1)

	// A: exactly its r1 events, in write order, with its own selection sets.
	if m := a.Expect("next", "a1"); payload(t, m) != withEvent(fmt.Sprintf(`{"data":{"messageAdded":{"id":%q,"text":"hello r1"}}}`, x1), 1) {
		t.Fatalf("A a1 #1: %s", m)
	}
	if m := a.Expect("next", "a1"); payload(t, m) != withEvent(fmt.Sprintf(`{"data":{"messageAdded":{"id":%q,"text":"second"}}}`, x2), 3) {
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
	if m := a.Expect("next", "a3"); payload(t, m) != withEvent(fmt.Sprintf(`{"data":{"gone":{"id":%q}}}`, x2), 6) {
		t.Fatalf("A a3: %s", m)
	}

	// B: exactly its r2 events, framed as legacy data messages.
	if m := b.Expect("data", "b1"); payload(t, m) != withEvent(`{"data":{"messageAdded":{"roomId":"r2","author":"bob","text":"hello r2"}}}`, 2) {
		t.Fatalf("B b1: %s", m)
	}
	if m := b.Expect("data", "b2"); payload(t, m) != withEvent(`{"data":{"messageEdited":{"text":"hello r2 (edited)"}}}`, 5) {
		t.Fatalf("B b2: %s", m)
	}
	if m := b.Expect("data", "b3"); payload(t, m) != withEvent(`{"data":{"messageDeleted":{"author":"bob"}}}`, 7) {
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
	apptest.WaitSubscribers(t, d.Store, "messageAdded?roomId=r1", 0)
	apptest.WaitSubscribers(t, d.Store, "messageAdded?roomId=r2", 0)
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
	apptest.WaitSubscribers(t, d.Store, "messageEdited?roomId=r1", 0)
	apptest.WaitSubscribers(t, d.Store, "messageDeleted?roomId=r1", 0)
}
