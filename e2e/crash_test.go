package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/wstest"
)

// post sends a GraphQL request over HTTP; it returns the data, or an error when the request was
// not acknowledged (transport failure, non-200, or GraphQL errors).
func post(client *http.Client, addr, query string, vars map[string]any) (map[string]any, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := client.Post("http://"+addr+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	var out struct {
		Data   map[string]any `json:"data"`
		Errors []any          `json:"errors"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	if len(out.Errors) > 0 {
		return nil, fmt.Errorf("errors: %s", raw)
	}
	return out.Data, nil
}

func roomMessages(t *testing.T, addr, room string) map[string]string {
	t.Helper()
	data, err := post(http.DefaultClient, addr, `query($r: ID!) { messages(roomId: $r, last: 500) { id text } }`, map[string]any{"r": room})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range data["messages"].([]any) {
		m := m.(map[string]any)
		out[m["id"].(string)] = m["text"].(string)
	}
	return out
}

// TestNoAcknowledgedMutationIsLost sends mutations from several writers, kills the runtime with
// SIGKILL while they are in flight, restarts it on the same data, and checks that every mutation
// that was acknowledged is there. Then it restarts cleanly (SIGINT) and checks again, and checks
// the restarted runtime still delivers to a new subscriber.
func TestNoAcknowledgedMutationIsLost(t *testing.T) {
	data := t.TempDir()
	p := devproc.Start(t, data)

	var mu sync.Mutex
	acked := map[string]string{} // id → text
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				text := fmt.Sprintf("w%d-%d", w, i)
				d, err := post(client, p.Addr, `mutation($t: String!) { sendMessage(roomId: "crash", author: "w", text: $t) { id } }`, map[string]any{"t": text})
				if err != nil {
					continue // not acknowledged: may or may not have been written
				}
				mu.Lock()
				acked[d["sendMessage"].(map[string]any)["id"].(string)] = text
				mu.Unlock()
			}
		})
	}
	// Let writes flow, then crash mid-stream.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Kill()
	close(stop)
	wg.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d mutations acknowledged before the crash", len(acked))
	}
	if len(acked) >= 500 {
		t.Fatalf("%d acknowledged: raise the query limit", len(acked))
	}

	p = devproc.Start(t, data)
	got := roomMessages(t, p.Addr, "crash")
	for id, text := range acked {
		if got[id] != text {
			t.Fatalf("acknowledged message %s (%q) lost after kill -9; %d of %d survived", id, text, countSurvivors(acked, got), len(acked))
		}
	}
	t.Logf("after kill -9: %d acknowledged mutations, all present (%d messages in the room)", len(acked), len(got))

	// A clean restart keeps everything too.
	if err := p.Stop(t); err != nil {
		t.Fatalf("clean shutdown: %v\n%s", err, p.Output())
	}
	p = devproc.Start(t, data)
	if again := roomMessages(t, p.Addr, "crash"); len(again) != len(got) {
		t.Fatalf("after a clean restart: %d messages, want %d", len(again), len(got))
	}

	// The restarted runtime delivers: a new subscriber receives a new message.
	c := wstest.Dial(t, "ws://"+p.Addr+"/graphql", "graphql-transport-ws")
	c.Send(map[string]any{"type": "connection_init"})
	c.Expect("connection_ack", "")
	c.Send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": `subscription { messageAdded(roomId: "crash") { text } }`}})
	// No acknowledgement exists for a subscribe: send until one arrives.
	for i := 0; ; i++ {
		if i == 30 {
			t.Fatal("no event delivered after the restart")
		}
		if _, err := post(client, p.Addr, `mutation($t: String!) { sendMessage(roomId: "crash", author: "w", text: $t) { id } }`, map[string]any{"t": fmt.Sprint("after-", i)}); err != nil {
			t.Fatal(err)
		}
		if m, ok := c.TryNext(300 * time.Millisecond); ok {
			if m.Type != "next" || m.ID != "1" {
				t.Fatalf("got %s", m)
			}
			break
		}
	}
}

func countSurvivors(acked, got map[string]string) int {
	n := 0
	for id := range acked {
		if _, ok := got[id]; ok {
			n++
		}
	}
	return n
}
