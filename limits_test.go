package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/internal/wstest"
)

// TestResultsOverTheMessageLimit: API Gateway refuses messages over 128 KB, so a result that
// large is never posted: a query over the socket gets a RESULT_TOO_LARGE error inside its next
// (then complete), while a smaller result still arrives. (The fan-out's counterpart is tested in
// publish.)
func TestResultsOverTheMessageLimit(t *testing.T) {
	d := startTestDev(t)
	text := strings.Repeat("x", 4000)
	for range 40 { // 40 × 4,000 characters: a 160 KB result
		gql(t, d.Addr, `mutation($t: String!) { sendMessage(roomId: "big", author: "a", text: $t) { id } }`, map[string]any{"t": text})
	}
	c := wstest.Dial(t, "ws://"+d.Addr+"/graphql", "graphql-transport-ws")
	c.Send(map[string]any{"type": "connection_init"})
	c.Expect("connection_ack", "")
	c.Send(subscribe("q", `{ messages(roomId: "big", last: 40) { text } }`))
	m := c.Expect("next", "q")
	var res struct {
		Data   any `json:"data"`
		Errors []struct {
			Message    string
			Extensions map[string]any
		}
	}
	if err := json.Unmarshal(m.Payload, &res); err != nil || res.Data != nil || len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "RESULT_TOO_LARGE" {
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
