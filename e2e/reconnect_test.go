package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/testenv"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
)

// The runtime's limits in TestClientsReconnect, API Gateway's 2 hours and 10 minutes scaled down.
// The scenario on the second connection must end before the runtime closes that one too: it takes
// under a second, well within either.
const (
	reconnectMaxDuration = 5 * time.Second
	reconnectIdleTimeout = 3 * time.Second
)

// reconnectCase is one npm client in the reconnect scenario.
type reconnectCase struct {
	clientCase
	// subprotocol is the one the client negotiates.
	subprotocol string
	// start and stop are the client's message types that start and stop an operation.
	start, stop string
	// keepAlive: the client pings (graphql-ws's keepAlive), so it is never idle and the runtime
	// closes it at --max-duration. Without (subscriptions-transport-ws has no keep-alive, and the
	// server sends no ka), it falls silent once subscribed and the idle timeout closes it first.
	keepAlive bool
	// events are the client library's own connection events, in order, until the scenario's end
	// (formatted by reconnectRun.events).
	events []string
}

// TestClientsReconnect runs the npm clients against a runtime with short connection limits
// (--max-duration, --idle-timeout): the runtime closes each client's socket with 1001 while it has
// three active subscriptions, as API Gateway does. Configured as a real app would be (graphql-ws:
// retryAttempts and keepAlive; subscriptions-transport-ws: reconnect), each client reconnects and
// starts the same operations again on its own; then the chat scenario of TestClients runs on the
// new connection. The test asserts the close code each client saw, the new connection and its
// resubscribe on the wire, the exact sequences of the scenario on the new connection (each event
// once, with its own selection set), and, with the runtime killed at the scenario's end while the
// client is still connected, that the registry holds the new connection's subscriptions only.
func TestClientsReconnect(t *testing.T) {
	root := devproc.Root(t)
	for _, c := range []reconnectCase{
		{
			clientCase:  clientCase{script: "graphql-ws-reconnect", result: "next", sinkCompletes: true},
			subprotocol: "graphql-transport-ws",
			start:       "subscribe",
			stop:        "complete",
			keepAlive:   true,
			events: []string{
				"connecting isRetry=false",
				"connected conn=1 wasRetry=false",
				"closed conn=1 code=1001 reason=Going away",
				"connecting isRetry=true",
				"connected conn=2 wasRetry=true",
			},
		},
		{
			clientCase:  clientCase{script: "legacy-reconnect", result: "data", stopAnswered: true},
			subprotocol: "graphql-ws",
			start:       "start",
			stop:        "stop",
			events: []string{
				"connecting conn=1",
				"connected conn=1",
				"disconnected conn=1",
				"reconnecting conn=2",
				"reconnected conn=2",
			},
		},
	} {
		t.Run(c.script, func(t *testing.T) {
			t.Parallel()
			node, _ := testenv.Node(t, root, "graphql-ws", "subscriptions-transport-ws", "ws", "graphql")
			p := devproc.Start(t, t.TempDir(),
				"--max-duration", reconnectMaxDuration.String(), "--idle-timeout", reconnectIdleTimeout.String())
			out := runHeldScript(t, node, root, c.script, p)
			r := parseReconnectRun(t, out)
			checkReconnectRun(t, c, r, out)
			checkRegistry(t, c, r, p.Data, out)
		})
	}
}

// runHeldScript runs e2e/js/<script>.mjs like runScript, but kills the runtime (SIGKILL) as soon
// as the script marks "done": the script holds its connection open until then, so the registry
// on disk is what the runtime had while the client was connected. It returns the script's stdout.
func runHeldScript(t *testing.T, node, root, script string, p *devproc.Proc) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := scriptCmd(ctx, node, root, script, p)
	var stdout, stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(io.TeeReader(pipe, &stdout))
	sc.Buffer(nil, 1<<20)
	killed := false
	for sc.Scan() {
		var rec reconnectRecord
		if !killed && json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Kind == "mark" && rec.Mark == "done" {
			p.Kill()
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		p.Kill()
	}
	if err != nil || !killed {
		t.Fatalf("node %s.mjs: %v (context: %v; runtime killed at \"done\": %v)\nstderr:\n%s\nstdout (what arrived):\n%s\nbootstrap dev output:\n%s",
			script, err, ctx.Err(), killed, stderr.String(), stdout.String(), p.Output())
	}
	return stdout.Bytes()
}

// reconnectRecord is one line of a reconnect script's output (see e2e/js/reconnect-scenario.mjs).
type reconnectRecord struct {
	Kind     string          `json:"kind"`
	T        int             `json:"t"` // ms since the script started
	Conn     int             `json:"conn"`
	Raw      string          `json:"raw"`
	Code     *int            `json:"code"`
	Reason   *string         `json:"reason"`
	Name     string          `json:"name"`
	Sub      string          `json:"sub"`
	Payload  json.RawMessage `json:"payload"`
	Error    json.RawMessage `json:"error"`
	Data     json.RawMessage `json:"data"`
	Mark     string          `json:"mark"`
	Room     string          `json:"room"`
	Rounds   int             `json:"rounds"`
	W1       string          `json:"w1"`
	WasRetry *bool           `json:"wasRetry"`
	IsRetry  *bool           `json:"isRetry"`
}

// reconnectMessage is a message on one socket, in either direction.
type reconnectMessage struct {
	wireMessage
	t   int
	raw string
}

// line is the message as "<id> <type> <payload>".
func (m reconnectMessage) line() string {
	return strings.Join(nonEmpty(m.ID, m.Type, compactJSON(m.Payload)), " ")
}

// socketClose is how a socket ended, as the client saw it.
type socketClose struct {
	t      int
	code   int
	reason string
}

// reconnectRun is a reconnect script's output, sorted.
type reconnectRun struct {
	records []reconnectRecord
	marks   []string
	markAt  map[string]reconnectRecord
	// room is the scenario's room; w1 the id of the message written while disconnected.
	room, w1 string
	// dialed and opened: when each socket was created and opened, by number.
	dialed, opened map[int]int
	closed         map[int]socketClose
	// clientCloses are the closes the client started itself, as "conn=<n> code=<c>".
	clientCloses []string
	// received and sent: the messages on each socket, server to client and client to server.
	received, sent map[int][]reconnectMessage
	// events are the library's connection events before "done".
	events []string
	// mutations holds each mutation's data by name (x0, w1, x1, ...).
	mutations map[string]json.RawMessage
}

func parseReconnectRun(t *testing.T, out []byte) reconnectRun {
	t.Helper()
	r := reconnectRun{
		markAt: map[string]reconnectRecord{}, dialed: map[int]int{}, opened: map[int]int{},
		closed: map[int]socketClose{}, received: map[int][]reconnectMessage{}, sent: map[int][]reconnectMessage{},
		mutations: map[string]json.RawMessage{},
	}
	done := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec reconnectRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("the script printed a line that is not a record: %q: %v\noutput:\n%s", sc.Text(), err, out)
		}
		r.records = append(r.records, rec)
		switch rec.Kind {
		case "mark":
			r.marks = append(r.marks, rec.Mark)
			r.markAt[rec.Mark] = rec
			switch rec.Mark {
			case "synced-1":
				r.room = rec.Room
			case "reconnected":
				r.w1 = rec.W1
			case "done":
				done = true
			}
		case "dial":
			r.dialed[rec.Conn] = rec.T
		case "open":
			r.opened[rec.Conn] = rec.T
		case "close":
			c := socketClose{t: rec.T}
			if rec.Code != nil {
				c.code = *rec.Code
			}
			if rec.Reason != nil {
				c.reason = *rec.Reason
			}
			r.closed[rec.Conn] = c
		case "client-close":
			code := "none"
			if rec.Code != nil {
				code = fmt.Sprint(*rec.Code)
			}
			r.clientCloses = append(r.clientCloses, fmt.Sprintf("conn=%d code=%s (at %d ms, done: %v)", rec.Conn, code, rec.T, done))
		case "wire", "sent":
			m := reconnectMessage{t: rec.T, raw: rec.Raw}
			if err := json.Unmarshal([]byte(rec.Raw), &m.wireMessage); err != nil {
				m.Type = "unparsable message " + rec.Raw
			}
			if rec.Kind == "wire" {
				r.received[rec.Conn] = append(r.received[rec.Conn], m)
			} else {
				r.sent[rec.Conn] = append(r.sent[rec.Conn], m)
			}
		case "event":
			if done {
				break
			}
			e := rec.Name
			if rec.Conn != 0 {
				e += fmt.Sprintf(" conn=%d", rec.Conn)
			}
			if rec.Code != nil {
				e += fmt.Sprintf(" code=%d", *rec.Code)
			}
			if rec.Reason != nil {
				e += " reason=" + *rec.Reason
			}
			if rec.WasRetry != nil {
				e += fmt.Sprintf(" wasRetry=%v", *rec.WasRetry)
			}
			if rec.IsRetry != nil {
				e += fmt.Sprintf(" isRetry=%v", *rec.IsRetry)
			}
			r.events = append(r.events, e)
		case "mutation":
			r.mutations[rec.Name] = rec.Data
		case "next", "complete", "error":
		default:
			t.Fatalf("unknown record kind %q in %s\noutput:\n%s", rec.Kind, sc.Text(), out)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return r
}

// window returns what arrived between the marks from and to: the sinks' records as "<sub> <kind>
// <payload>" and the server's messages on socket conn as "<id> <type> <payload>" (pongs left out:
// they answer keep-alive pings, whenever those fall), both with the marks in between as "-- <mark>".
// It also returns the sinks' records that arrived while another socket was the current one.
func (r reconnectRun) window(from, to string, conn int) (sinks, wire, elsewhere []string) {
	in := false
	for _, rec := range r.records {
		if rec.Kind == "mark" {
			switch {
			case rec.Mark == from:
				in = true
			case rec.Mark == to:
				return sinks, wire, elsewhere
			case in:
				sinks, wire = append(sinks, "-- "+rec.Mark), append(wire, "-- "+rec.Mark)
			}
			continue
		}
		if !in {
			continue
		}
		var s string
		switch rec.Kind {
		case "next":
			s = rec.Sub + " next " + compactJSON(rec.Payload)
		case "complete":
			s = rec.Sub + " complete"
		case "error":
			s = rec.Sub + " error " + compactJSON(rec.Error)
		case "wire":
			var m wireMessage
			if err := json.Unmarshal([]byte(rec.Raw), &m); err != nil {
				wire = append(wire, "unparsable message "+rec.Raw)
			} else if m.Type != "pong" {
				wire = append(wire, reconnectMessage{wireMessage: m}.line())
			}
			if rec.Conn != conn {
				elsewhere = append(elsewhere, fmt.Sprintf("the server's %s on connection %d", rec.Raw, rec.Conn))
			}
		}
		if s != "" {
			sinks = append(sinks, s)
			if rec.Conn != conn {
				elsewhere = append(elsewhere, fmt.Sprintf("%s while connection %d was the current one", s, rec.Conn))
			}
		}
	}
	return sinks, wire, elsewhere
}

func checkReconnectRun(t *testing.T, c reconnectCase, r reconnectRun, out []byte) {
	t.Helper()
	if want := []string{"synced-1", "closing", "closed", "reconnected", "synced", "unsubscribed", "done"}; !slices.Equal(r.marks, want) {
		t.Fatalf("the script's phases were %q, want %q\noutput:\n%s", r.marks, want, out)
	}
	doneAt := r.markAt["done"].T

	// Two sockets until the scenario's end: the first, which the runtime closed, and the one the
	// client opened on its own to replace it.
	for conn, at := range r.dialed {
		if conn > 2 && at <= doneAt {
			t.Errorf("the client opened connection %d at %d ms, before the scenario's end (%d ms): the runtime closed connection 2 too early (raise reconnectMaxDuration and reconnectIdleTimeout?) or the client reconnected for another reason\noutput:\n%s",
				conn, at, doneAt, out)
		}
	}
	first, ok := r.closed[1]
	if !ok || first.t > doneAt {
		t.Fatalf("connection 1 was not closed before the scenario's end\noutput:\n%s", out)
	}
	if first.code != 1001 || first.reason != "Going away" {
		t.Errorf("the client saw connection 1 closed with %d %q, want 1001 \"Going away\" (a connection limit, as API Gateway closes)\noutput:\n%s",
			first.code, first.reason, out)
	}
	if len(r.clientCloses) > 0 {
		t.Errorf("the client closed sockets itself: %q; want only the runtime to close them\noutput:\n%s", r.clientCloses, out)
	}
	if second, ok := r.closed[2]; ok && second.t <= doneAt {
		t.Errorf("connection 2 closed with %d %q at %d ms, before the scenario's end (%d ms)\noutput:\n%s", second.code, second.reason, second.t, doneAt, out)
	}

	// Which limit closed it. The runtime marks a connection at $connect, before the client sees it
	// open, and its idle clock restarts on each message it reads from the client: so the close
	// comes at least reconnectMaxDuration after the dial, and at least reconnectIdleTimeout after
	// the client's last message.
	lifetime := time.Duration(first.t-r.dialed[1]) * time.Millisecond
	var lastSent int
	for _, m := range r.sent[1] {
		lastSent = m.t
	}
	silence := time.Duration(first.t-lastSent) * time.Millisecond
	const slack = 5 * time.Millisecond // the script's clock rounds to milliseconds
	if c.keepAlive {
		// Pinged all along: never idle, so the connection's age closed it.
		if lifetime < reconnectMaxDuration-slack {
			t.Errorf("connection 1 lived %v, want at least --max-duration %v: the pings did not keep it active past --idle-timeout %v\noutput:\n%s",
				lifetime, reconnectMaxDuration, reconnectIdleTimeout, out)
		}
		if silence >= reconnectIdleTimeout {
			t.Errorf("the client sent nothing on connection 1 for the %v before its close; want keep-alive pings\noutput:\n%s", silence, out)
		}
	} else {
		if silence < reconnectIdleTimeout-slack {
			t.Errorf("connection 1 closed %v after the client's last message, before --idle-timeout %v\noutput:\n%s", silence, reconnectIdleTimeout, out)
		}
		if lifetime >= reconnectMaxDuration {
			t.Errorf("connection 1 lived %v, want it closed for idleness (--idle-timeout %v), before --max-duration %v\noutput:\n%s",
				lifetime, reconnectIdleTimeout, reconnectMaxDuration, out)
		}
	}

	// The library's own view: connected, closed (with 1001), reconnected.
	if !slices.Equal(r.events, c.events) {
		t.Errorf("the client library's connection events until the scenario's end:\n%s\noutput:\n%s", seqDiff(c.events, r.events), out)
	}

	// What the client sent: on connection 1, connection_init and the three operations; on
	// connection 2, connection_init and the same three operations again, with the same ids and
	// payloads (in any order), then the scenario's query and the unsubscribe of "added". Pings
	// aside.
	sent := func(conn int) []string {
		var lines []string
		for _, m := range r.sent[conn] {
			if m.t <= doneAt && m.Type != "ping" && m.Type != "pong" {
				lines = append(lines, m.line())
			}
		}
		return lines
	}
	sent1, sent2 := sent(1), sent(2)
	if len(sent1) != 4 || !strings.HasPrefix(sent1[0], "connection_init") {
		t.Fatalf("on connection 1 the client sent:\n  %s\nwant connection_init and the three operations\noutput:\n%s", strings.Join(sent1, "\n  "), out)
	}
	starts := map[string]bool{}
	for _, l := range sent1[1:] {
		id, typ, _ := strings.Cut(l, " ")
		if !strings.HasPrefix(typ, c.start+" ") {
			t.Fatalf("on connection 1 the client sent %s, want %s messages after connection_init\noutput:\n%s", l, c.start, out)
		}
		starts[id] = true
	}
	if len(starts) != 3 || !starts["added"] || !starts["edited"] || !starts["deleted"] {
		t.Fatalf("on connection 1 the client started %v, want added, edited and deleted\noutput:\n%s", starts, out)
	}
	if len(sent2) < 4 {
		t.Fatalf("on connection 2 the client sent only:\n  %s\noutput:\n%s", strings.Join(sent2, "\n  "), out)
	}
	wantResub, gotResub := slices.Sorted(slices.Values(sent1)), slices.Sorted(slices.Values(sent2[:4]))
	if !slices.Equal(gotResub, wantResub) {
		t.Errorf("the client's first messages on connection 2 (sorted), want exactly what it sent on connection 1:\n%s\noutput:\n%s", seqDiff(wantResub, gotResub), out)
	}
	if rest, want := sent2[4:], []string{"query " + c.start, "added " + c.stop}; len(rest) != 2 ||
		!strings.HasPrefix(rest[0], want[0]+" ") || rest[1] != want[1] {
		t.Errorf("after resubscribing on connection 2 the client sent:\n  %s\nwant the query's %s and %q\noutput:\n%s", strings.Join(rest, "\n  "), c.start, want[1], out)
	}

	// What the server sent on each connection: connection_ack first, once; then only results and
	// completes (pongs aside), never the same message twice: each event once per subscription.
	for conn := 1; conn <= 2; conn++ {
		acks := 0
		seen := map[string]int{}
		for i, m := range r.received[conn] {
			switch m.Type {
			case "connection_ack":
				acks++
				if i != 0 {
					t.Errorf("connection_ack is message %d the server sent on connection %d, want the first", i+1, conn)
				}
			case "pong":
				if !c.keepAlive {
					t.Errorf("the server sent a pong on connection %d, but the client sent no ping", conn)
				}
			case c.result, "complete":
				if n := seen[m.raw]; n > 0 {
					t.Errorf("the server sent %s on connection %d twice", m.raw, conn)
				}
				seen[m.raw]++
			default:
				t.Errorf("the server sent %s on connection %d (id %q, payload %s); want only connection_ack, %s and complete",
					m.Type, conn, m.ID, compactJSON(m.Payload), c.result)
			}
		}
		if acks != 1 {
			t.Errorf("the server sent %d connection_ack on connection %d, want 1", acks, conn)
		}
	}

	// Before the close: synced, then x0 on connection 1 and nothing else.
	x0 := mutationFieldOf(t, r.mutations, "x0", "sendMessage", "id")
	x0Event := withEventMark(fmt.Sprintf(`{"data":{"messageAdded":{"id":%s,"text":"before the close"}}}`, jsonString(x0)))
	sinks, wire, elsewhere := r.window("synced-1", "closed", 1)
	if want := []string{"added next " + x0Event, "-- closing"}; !slices.Equal(sinks, want) {
		t.Errorf("what the client handed to the application on connection 1 after its sync:\n%s\noutput:\n%s", seqDiff(want, sinks), out)
	}
	if want := []string{"added " + c.result + " " + x0Event, "-- closing"}; !slices.Equal(wire, want) {
		t.Errorf("what the server sent on connection 1 after its sync:\n%s\noutput:\n%s", seqDiff(want, wire), out)
	}
	for _, e := range elsewhere {
		t.Errorf("on connection 1's watch: %s", e)
	}

	// Between the close and the second sync: only sentinel events, and perhaps w1's (written while
	// disconnected: it may be missed); never an error or a complete.
	sinks, _, _ = r.window("closed", "synced", 2)
	for _, s := range sinks {
		if _, rest, _ := strings.Cut(s, " "); !strings.HasPrefix(s, "-- ") && !strings.HasPrefix(rest, "next ") {
			t.Errorf("while reconnecting the client handed %s to the application; want only events", s)
		}
	}

	// After the reconnect and the sync: the chat scenario, exactly, on connection 2.
	x1 := mutationFieldOf(t, r.mutations, "x1", "sendMessage", "id")
	x2 := mutationFieldOf(t, r.mutations, "x2", "sendMessage", "id")
	mutationFieldOf(t, r.mutations, "o1", "sendMessage", "id")
	e1 := mutationFieldOf(t, r.mutations, "e1", "editMessage", "editedAt")
	e3 := mutationFieldOf(t, r.mutations, "e3", "editMessage", "editedAt")
	messages := fmt.Sprintf(`{"data":{"messages":[{"id":%s,"text":"before the close"},{"id":%s,"text":"while disconnected"},{"id":%s,"text":"hello (edited)"}]}}`,
		jsonString(x0), jsonString(r.w1), jsonString(x1))
	wantSinks, wantWire := scenarioWant(c.clientCase, x1, x2, e1, e3, messages)
	sinks, wire, elsewhere = r.window("synced", "done", 2)
	if !slices.Equal(sinks, wantSinks) {
		t.Errorf("what the client handed to the application on connection 2 after its sync:\n%s\noutput:\n%s", seqDiff(wantSinks, sinks), out)
	}
	if !slices.Equal(wire, wantWire) {
		t.Errorf("what the server sent on connection 2 after its sync:\n%s\noutput:\n%s", seqDiff(wantWire, wire), out)
	}
	for _, e := range elsewhere {
		t.Errorf("on connection 2's watch: %s", e)
	}
	// Outside the scenario the sinks saw nothing but events: no error, no complete.
	phase := "before"
	for _, rec := range r.records {
		switch {
		case rec.Kind == "mark" && rec.Mark == "synced":
			phase = "scenario"
		case rec.Kind == "mark" && rec.Mark == "done":
			phase = "after"
		case (rec.Kind == "error" || rec.Kind == "complete") && phase != "scenario":
			t.Errorf("the client handed %s of %q to the application %s the scenario (at %d ms); want none", rec.Kind, rec.Sub, phase, rec.T)
		}
	}

	// Report the timing and what happened to the write made while disconnected.
	w1Fate := "not delivered on either connection"
	for conn, ms := range r.received {
		for _, m := range ms {
			if strings.Contains(m.raw, jsonString(r.w1)) && strings.Contains(m.raw, "messageAdded") {
				w1Fate = fmt.Sprintf("delivered on connection %d at %d ms", conn, m.t)
			}
		}
	}
	ack2 := -1
	for _, m := range r.received[2] {
		if m.Type == "connection_ack" {
			ack2 = m.t
		}
	}
	t.Logf("connection 1: dialed at %d ms, closed by the runtime with %d %q at %d ms (lived %v; %v after the client's last message)",
		r.dialed[1], first.code, first.reason, first.t, lifetime, silence)
	t.Logf("connection 2: dialed %d ms after the close, acknowledged at %d ms; resubscribed: %d sentinel round(s) to sync (connection 1: %d); w1 (written while disconnected): %s",
		r.dialed[2]-first.t, ack2, r.markAt["synced"].Rounds, r.markAt["synced-1"].Rounds, w1Fate)
	if second, ok := r.closed[2]; ok {
		t.Logf("connection 2: closed with %d %q at %d ms, %d ms after the scenario's end (the runtime killed)", second.code, second.reason, second.t, second.t-doneAt)
	}
}

// checkRegistry opens the killed runtime's store and checks that its registry holds exactly the
// second connection and the subscriptions the client still had on it: nothing of the first
// connection, which the runtime closed, is left to deliver to.
func checkRegistry(t *testing.T, c reconnectCase, r reconnectRun, data string, out []byte) {
	t.Helper()
	if second, ok := r.closed[2]; !ok || second.code != 1006 {
		t.Errorf("connection 2 ended with %+v, want 1006 (the runtime killed while the client held it): the registry below may not be what it was while connected", second)
	}
	s, err := embedded.Open(filepath.Join(data, "store.db"), embedded.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	var conns []store.Connection
	for conn, err := range s.Connections(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	if len(conns) != 1 {
		t.Fatalf("the registry holds %d connections, want 1 (the second; the first was closed): %+v\noutput:\n%s", len(conns), conns, out)
	}
	conn := conns[0]
	if conn.State != store.StateReady || conn.Subprotocol != c.subprotocol {
		t.Errorf("the registry's connection is %+v, want state %s and subprotocol %s", conn, store.StateReady, c.subprotocol)
	}
	room := map[string]any{"roomId": r.room}
	for topic, want := range map[string][]string{
		engine.Topic("messageAdded", room):                                nil,
		engine.Topic("messageEdited", room):                               {conn.ID + " edited"},
		engine.Topic("messageDeleted", room):                              {conn.ID + " deleted"},
		engine.Topic("messageAdded", map[string]any{"roomId": "nowhere"}): nil,
	} {
		var got []string
		for sub, err := range s.Subscriptions(ctx, topic) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, sub.ConnectionID+" "+sub.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("the registry's subscriptions to %s are %q, want %q", topic, got, want)
		}
	}
	// The connection's operations (the runtime is dead, so probing them changes nothing anyone
	// sees): edited and deleted hold their ids, so claiming one again conflicts; added was
	// unsubscribed and the query finished, so releasing them finds nothing active.
	for _, id := range []string{"edited", "deleted"} {
		if err := s.PutSubscription(ctx, store.Subscription{ConnectionID: conn.ID, ID: id, ExpiresAt: conn.ExpiresAt}, false); !errors.Is(err, store.ErrConflict) {
			t.Errorf("the operation %q is not active in the registry (claiming it again: %v)", id, err)
		}
	}
	for _, id := range []string{"added", "query"} {
		if active, err := s.DeleteSubscription(ctx, conn.ID, id); err != nil || active {
			t.Errorf("the operation %q is still active in the registry (%v, %v): added was unsubscribed, the query finished", id, active, err)
		}
	}
}

// mutationFieldOf returns data.<field>.<key> of the named mutation's result, a non-empty string.
func mutationFieldOf(t *testing.T, mutations map[string]json.RawMessage, name, field, key string) string {
	t.Helper()
	return mutationField(t, scriptRun{mutations: mutations}, name, field, key)
}
