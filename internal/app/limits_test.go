package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/wstest"
)

// tooLarge reports whether a result payload is exactly one RESULT_TOO_LARGE error and no data.
func tooLarge(t *testing.T, m wstest.Msg) bool {
	t.Helper()
	var res struct {
		Data   any `json:"data"`
		Errors []struct {
			Message    string
			Extensions map[string]any
		}
	}
	return json.Unmarshal(m.Payload, &res) == nil && res.Data == nil && len(res.Errors) == 1 &&
		res.Errors[0].Extensions["code"] == "RESULT_TOO_LARGE"
}

// TestScenarioResultsOverTheMessageLimit: API Gateway refuses messages over 128 KiB, so a result
// that large is never posted: a query over the socket gets a RESULT_TOO_LARGE error inside its
// next (then complete), while a smaller result still arrives. (The fan-out's counterpart is
// tested in publish, and below with a lower limit.)
func TestScenarioResultsOverTheMessageLimit(t *testing.T) {
	d := apptest.Start(t, app.Config{})
	text := strings.Repeat("x", 4000)
	for range 40 { // 40 × 4,000 characters: a 160 KB result
		apptest.GraphQL(t, d.Addr, `mutation($t: String!) { sendMessage(roomId: "big", author: "a", text: $t) { id } }`, map[string]any{"t": text})
	}
	c := wstest.Dial(t, "ws://"+d.Addr+"/graphql", "graphql-transport-ws")
	c.Send(map[string]any{"type": "connection_init"})
	c.Expect("connection_ack", "")
	c.Send(subscribe("q", `{ messages(roomId: "big", last: 40) { text } }`))
	if m := c.Expect("next", "q"); !tooLarge(t, m) {
		t.Fatalf("next = %s", m)
	}
	c.Expect("complete", "q")

	// The same query for 20 messages (80 KB) fits.
	c.Send(subscribe("q2", `{ messages(roomId: "big", last: 20) { text } }`))
	if m := c.Expect("next", "q2"); !strings.Contains(string(m.Payload), text) || len(m.Payload) < 80000 {
		t.Fatalf("next = %.200s", m)
	}
	c.Expect("complete", "q2")
}

// TestScenarioMessageLimitReachesEveryConsumer: one setting (`dev --max-message`) is the limit of
// the emulated API Gateway, of the results the routes post and of the results the fan-out posts.
// With 4 KiB: results of 1.5 and 3 KB arrive; a 4 KB one becomes RESULT_TOO_LARGE in the fan-out,
// a 7 KB one over the socket; and a 5 KB message from the client closes its connection with 1009.
func TestScenarioMessageLimitReachesEveryConsumer(t *testing.T) {
	const limit = 4 * 1024
	d := apptest.Start(t, app.Config{MaxMessage: limit})
	c := wstest.Dial(t, "ws://"+d.Addr+"/graphql", "graphql-transport-ws")
	c.Send(map[string]any{"type": "connection_init"})
	c.Expect("connection_ack", "")
	c.Send(subscribe("s", `subscription { messageAdded(roomId: "lim") { text } }`))
	apptest.WaitSubscribers(t, d.Store, "messageAdded?roomId=lim", 1)

	send := func(n int) {
		apptest.GraphQL(t, d.Addr, `mutation($t: String!) { sendMessage(roomId: "lim", author: "a", text: $t) { id } }`,
			map[string]any{"t": strings.Repeat("y", n)})
	}
	for range 2 {
		send(1500)
		if m := c.Expect("next", "s"); tooLarge(t, m) || !strings.Contains(string(m.Payload), strings.Repeat("y", 1500)) {
			t.Fatalf("fan-out of a 1.5 KB message: %.200s", m)
		}
	}
	c.Send(subscribe("q", `{ messages(roomId: "lim", last: 2) { text } }`)) // 3 KB
	if m := c.Expect("next", "q"); tooLarge(t, m) {
		t.Fatalf("a 3 KB result under a 4 KiB limit: %.200s", m)
	}
	c.Expect("complete", "q")

	send(4000)
	if m := c.Expect("next", "s"); !tooLarge(t, m) {
		t.Fatalf("fan-out of a 4 KB message under a 4 KiB limit: %.200s", m)
	}
	c.Send(subscribe("q2", `{ messages(roomId: "lim", last: 3) { text } }`)) // 7 KB
	if m := c.Expect("next", "q2"); !tooLarge(t, m) {
		t.Fatalf("a 7 KB query result under a 4 KiB limit: %.200s", m)
	}
	c.Expect("complete", "q2")

	big := wstest.Dial(t, "ws://"+d.Addr+"/graphql", "graphql-transport-ws")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	big.C.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","payload":{"pad":"`+strings.Repeat("z", 5*1024)+`"}}`))
	select {
	case <-big.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("a 5 KB message did not close the connection")
	}
	if big.CloseStatus != websocket.StatusMessageTooBig {
		t.Fatalf("a 5 KB message closed the connection with %d, want 1009", big.CloseStatus)
	}
}
