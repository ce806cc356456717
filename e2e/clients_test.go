package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/testenv"
)

// clientCase is one npm client and what differs between the two subprotocols.
type clientCase struct {
	// script is e2e/js/<script>.mjs.
	script string
	// result is the type of the server's result message: next, or data in the legacy protocol.
	result string
	// sinkCompletes: the client completes the sink of an operation its application unsubscribed
	// (graphql-ws does; subscriptions-transport-ws drops the operation silently).
	sinkCompletes bool
	// stopAnswered: the server answers the client's stop with complete (legacy protocol only;
	// graphql-transport-ws sends nothing after a client's complete).
	stopAnswered bool
}

// TestClients runs the chat scenario of TestEndToEnd with the real npm clients: three
// subscriptions with different selection sets (one aliased, one with variables and an operation
// name), writes over HTTP to the room and to another room, a query over the socket, and an
// unsubscribe. Each script records what arrived; the test asserts the exact sequences, both as the
// client library handed them to the application and as the server sent them on the wire.
func TestClients(t *testing.T) {
	root := devproc.Root(t)
	for _, c := range []clientCase{
		{script: "graphql-ws", result: "next", sinkCompletes: true},
		{script: "legacy", result: "data", stopAnswered: true},
	} {
		t.Run(c.script, func(t *testing.T) {
			t.Parallel()
			node, _ := testenv.Node(t, root, "graphql-ws", "subscriptions-transport-ws", "ws", "graphql")
			p := devproc.Start(t, t.TempDir())
			// Stop it cleanly before devproc's own cleanup runs (cleanups run last first): Stop
			// waits for the exit, so that cleanup's Kill then finds the process ended.
			t.Cleanup(func() {
				if err := p.Stop(t); err != nil {
					t.Errorf("bootstrap dev did not shut down cleanly: %v\n%s", err, p.Output())
				}
			})
			out := runScript(t, node, root, c.script, p)
			checkRun(t, c, out)
		})
	}
}

// runScript runs e2e/js/<script>.mjs against the running binary and returns its stdout; it fails
// the test with everything it knows when the script fails.
func runScript(t *testing.T, node, root, script string, p *devproc.Proc) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := scriptCmd(ctx, node, root, script, p)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s.mjs: %v (context: %v)\nstderr:\n%s\nstdout (what arrived):\n%s\nbootstrap dev output:\n%s",
			script, err, ctx.Err(), stderr.String(), stdout.String(), p.Output())
	}
	return stdout.Bytes()
}

// scriptCmd returns the command that runs the client script e2e/js/<script>.mjs against the
// running binary's WebSocket and HTTP endpoints, ended with ctx; the caller sets its output.
func scriptCmd(ctx context.Context, node, root, script string, p *devproc.Proc) *exec.Cmd {
	cmd := exec.CommandContext(ctx, node, filepath.Join("e2e", "js", script+".mjs"),
		"ws://"+p.Addr+"/graphql", "http://"+p.Addr+"/graphql")
	cmd.Dir = root // node resolves the packages from the repository's node_modules
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// scriptRecord is one line of a script's output (see the comment at the top of each script).
type scriptRecord struct {
	Kind    string          `json:"kind"`
	Sub     string          `json:"sub"`
	Payload json.RawMessage `json:"payload"`
	Error   json.RawMessage `json:"error"`
	Raw     string          `json:"raw"`
	Name    string          `json:"name"`
	Data    json.RawMessage `json:"data"`
	Mark    string          `json:"mark"`
}

// wireMessage is a message the server sent on the socket.
type wireMessage struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// scriptRun is a script's output, sorted.
type scriptRun struct {
	// sinks and wire are what arrived between the synced and done marks, as lines "<sub> <kind>
	// <payload>" (what the client library handed to the application) and "<id> <type> <payload>"
	// (what the server sent); both include the marks in between as "-- <mark>".
	sinks, wire []string
	// allWire is every message the server sent, sentinel rounds included.
	allWire []wireMessage
	// mutations holds each mutation's data by name (x1, e1, ...).
	mutations map[string]json.RawMessage
	marks     []string
}

func parseRun(t *testing.T, out []byte) scriptRun {
	t.Helper()
	r := scriptRun{mutations: map[string]json.RawMessage{}}
	phase := "before" // before, scenario, after
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec scriptRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("the script printed a line that is not a record: %q: %v\noutput:\n%s", sc.Text(), err, out)
		}
		var sink, wire string
		switch rec.Kind {
		case "mark":
			r.marks = append(r.marks, rec.Mark)
			switch rec.Mark {
			case "synced":
				phase = "scenario"
			case "done":
				phase = "after"
			default:
				sink, wire = "-- "+rec.Mark, "-- "+rec.Mark
			}
		case "mutation":
			r.mutations[rec.Name] = rec.Data
		case "next":
			sink = rec.Sub + " next " + compactJSON(rec.Payload)
		case "complete":
			sink = rec.Sub + " complete"
		case "error":
			sink = rec.Sub + " error " + compactJSON(rec.Error)
		case "wire":
			var m wireMessage
			if err := json.Unmarshal([]byte(rec.Raw), &m); err != nil {
				wire = "unparsable message " + rec.Raw
				break
			}
			r.allWire = append(r.allWire, m)
			wire = strings.Join(nonEmpty(m.ID, m.Type, compactJSON(m.Payload)), " ")
		default:
			t.Fatalf("unknown record kind %q in %s\noutput:\n%s", rec.Kind, sc.Text(), out)
		}
		if phase != "scenario" {
			continue
		}
		if sink != "" {
			r.sinks = append(r.sinks, sink)
		}
		if wire != "" {
			r.wire = append(r.wire, wire)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return r
}

// checkRun asserts the exact sequences of a script's run.
func checkRun(t *testing.T, c clientCase, out []byte) {
	t.Helper()
	r := parseRun(t, out)
	if want := []string{"synced", "unsubscribed", "done"}; !slices.Equal(r.marks, want) {
		t.Fatalf("the script's phases were %q, want %q\noutput:\n%s", r.marks, want, out)
	}

	// The writes' results, which the expected events are built from.
	x1 := mutationField(t, r, "x1", "sendMessage", "id")
	x2 := mutationField(t, r, "x2", "sendMessage", "id")
	mutationField(t, r, "o1", "sendMessage", "id")
	e1 := mutationField(t, r, "e1", "editMessage", "editedAt")
	e3 := mutationField(t, r, "e3", "editMessage", "editedAt")
	if x1 == x2 {
		t.Fatalf("x1 and x2 have the same id %s", x1)
	}

	messages := fmt.Sprintf(`{"data":{"messages":[{"id":%s,"text":"hello (edited)"}]}}`, jsonString(x1))
	wantSinks, wantWire := scenarioWant(c, x1, x2, e1, e3, messages)

	if !slices.Equal(r.sinks, wantSinks) {
		t.Errorf("what the client handed to the application after the sync:\n%s\noutput:\n%s", seqDiff(wantSinks, r.sinks), out)
	}
	if !slices.Equal(r.wire, wantWire) {
		t.Errorf("what the server sent after the sync:\n%s\noutput:\n%s", seqDiff(wantWire, r.wire), out)
	}

	// The whole conversation, sentinel rounds included: one connection_ack first, then only results
	// and completes (no errors, and in the legacy protocol no ka: the server cannot keep it up).
	acks := 0
	for i, m := range r.allWire {
		switch m.Type {
		case "connection_ack":
			acks++
			if i != 0 {
				t.Errorf("connection_ack is message %d the server sent, want the first", i+1)
			}
		case c.result, "complete":
		default:
			t.Errorf("the server sent %s (id %q, payload %s); want only connection_ack, %s and complete",
				m.Type, m.ID, compactJSON(m.Payload), c.result)
		}
	}
	if acks != 1 {
		t.Errorf("the server sent %d connection_ack, want 1", acks)
	}
}

// scenarioWant returns the exact sequences the chat scenario produces after its sync (see
// checkRun): what the client library hands to the application ("<sub> <kind> <payload>") and what
// the server sends ("<id> <type> <payload>"), with the unsubscribe as "-- unsubscribed". x1, x2,
// e1 and e3 come from the writes' results; messages is the result of the query over the socket.
func scenarioWant(c clientCase, x1, x2, e1, e3, messages string) (wantSinks, wantWire []string) {
	added := func(id, text string) string {
		return withEventMark(fmt.Sprintf(`{"data":{"messageAdded":{"id":%s,"text":%s}}}`, jsonString(id), jsonString(text)))
	}
	edited := func(text, at string) string {
		return withEventMark(fmt.Sprintf(`{"data":{"messageEdited":{"text":%s,"editedAt":%s}}}`, jsonString(text), jsonString(at)))
	}
	gone := withEventMark(fmt.Sprintf(`{"data":{"gone":{"id":%s}}}`, jsonString(x2)))

	// In write order: x1 (room), o1 (other room: never delivered), x2, edit x1, delete x2; then the
	// query; then, after "added" is unsubscribed, x3 and its edit: only the edit arrives.
	wantSinks = []string{
		"added next " + added(x1, "hello"),
		"added next " + added(x2, "second"),
		"edited next " + edited("hello (edited)", e1),
		"deleted next " + gone,
		"query next " + messages,
		"query complete",
		"-- unsubscribed",
	}
	if c.sinkCompletes {
		wantSinks = append(wantSinks, "added complete")
	}
	wantSinks = append(wantSinks, "edited next "+edited("after unsubscribe (edited)", e3))

	wantWire = []string{
		"added " + c.result + " " + added(x1, "hello"),
		"added " + c.result + " " + added(x2, "second"),
		"edited " + c.result + " " + edited("hello (edited)", e1),
		"deleted " + c.result + " " + gone,
		"query " + c.result + " " + messages,
		"query complete",
		"-- unsubscribed",
	}
	if c.stopAnswered {
		wantWire = append(wantWire, "added complete")
	}
	wantWire = append(wantWire, "edited "+c.result+" "+edited("after unsubscribe (edited)", e3))
	return wantSinks, wantWire
}

// mutationField returns data.<field>.<key> of the named mutation's result, a non-empty string.
func mutationField(t *testing.T, r scriptRun, name, field, key string) string {
	t.Helper()
	var data map[string]map[string]any
	if err := json.Unmarshal(r.mutations[name], &data); err != nil {
		t.Fatalf("mutation %s: result %s: %v", name, r.mutations[name], err)
	}
	s, _ := data[field][key].(string)
	if s == "" {
		t.Fatalf("mutation %s: result %s has no %s.%s", name, r.mutations[name], field, key)
	}
	return s
}

// compactJSON is raw compacted, with the identity of a stream record in a result's
// extensions.event (id and seq, the embedded store's: the id is the sequence number in 32 hex
// digits) written as eventMark, since which write of the run a result answers is not known in
// advance; an identity of any other shape is left as it is, and fails the comparison.
func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return string(raw)
	}
	return eventIdentity.ReplaceAllStringFunc(buf.String(), func(m string) string {
		sub := eventIdentity.FindStringSubmatch(m)
		seq, err := strconv.ParseUint(sub[2], 10, 64)
		if err != nil || sub[1] != fmt.Sprintf("%032x", seq) {
			return m
		}
		return `"extensions":{"event":` + eventMark + `}`
	})
}

var eventIdentity = regexp.MustCompile(`"extensions":\{"event":\{"id":"([0-9a-f]+)","seq":"([0-9]+)"\}\}`)

// eventMark stands for a stream record's identity in compactJSON's output.
const eventMark = `"(a stream record)"`

// withEventMark is a subscription result as compactJSON shows it.
func withEventMark(payload string) string {
	return strings.TrimSuffix(payload, "}") + `,"extensions":{"event":` + eventMark + `}}`
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// seqDiff shows both sequences, marking the lines where they differ.
func seqDiff(want, got []string) string {
	var b strings.Builder
	for i := range max(len(want), len(got)) {
		w, g := "(nothing)", "(nothing)"
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w == g {
			fmt.Fprintf(&b, "  %2d   %s\n", i+1, g)
			continue
		}
		fmt.Fprintf(&b, "! %2d want %s\n        got %s\n", i+1, w, g)
	}
	return b.String()
}
