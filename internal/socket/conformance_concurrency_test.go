package socket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/internal/wstest"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/rs/zerolog"
)

// Router-level cases: overlapping invocations of one connection (the local runtime overlaps them
// too, but not on cue), and service failures (injected into the registry).

// concurrently delivers the frames to one connection at once and returns the route responses,
// in the frames' order.
func (l *routerLevel) concurrently(frames ...string) []events.APIGatewayProxyResponse {
	l.t.Helper()
	out := make([]events.APIGatewayProxyResponse, len(frames))
	errs := make([]error, len(frames))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, f := range frames {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i], errs[i] = l.tryDeliver([]byte(f))
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			l.fatalf("frame %d %s: %v", i, frames[i], err)
		}
	}
	l.pump()
	return out
}

// tryDeliver is deliver for other goroutines: it reports failures instead of failing the test.
func (l *routerLevel) tryDeliver(body []byte) (events.APIGatewayProxyResponse, error) {
	ev := events.APIGatewayWebsocketProxyRequest{RequestContext: l.requestContext("$default", "MESSAGE"), Body: string(body)}
	payload, _ := json.Marshal(ev)
	out, err := l.r.Invoke(context.Background(), payload)
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return resp, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp, fmt.Errorf("status %d (%s)", resp.StatusCode, resp.Body)
	}
	l.gw.RouteResponse(l.conn, []byte(resp.Body))
	return resp, nil
}

func repeat(frame string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = frame
	}
	return out
}

func bodies(resps []events.APIGatewayProxyResponse) map[string]int {
	n := map[string]int{}
	for _, r := range resps {
		n[r.Body]++
	}
	return n
}

// countSent counts the frames equal to frame that the server tried to send (posted, delivered or
// not, or in a route response) since the last call.
func (l *routerLevel) countSent(frame string) (n int, all []string) {
	all = l.takeSent()
	for _, s := range all {
		if sameJSON([]byte(s), frame) {
			n++
		}
	}
	return n, all
}

// takeAll returns everything the client has seen since the last expectation.
func (l *routerLevel) takeAll() []seen {
	l.collect()
	out := l.pending
	l.pending = nil
	return out
}

// topicCount counts a topic's live subscriptions.
func (l *routerLevel) topicCount(topic string) int {
	l.t.Helper()
	n := 0
	for _, err := range l.st.Subscriptions(context.Background(), topic) {
		if err != nil {
			l.fatalf("%v", err)
		}
		n++
	}
	return n
}

// checkClosedAfterRace checks what a client sees when overlapping invocations close its
// connection: at most `allowed` (each at most once), terminal frames of the close in strict mode
// only (at least one), then the close, last.
func (l *routerLevel) checkClosedAfterRace(strict bool, terminal string, allowed ...string) {
	l.t.Helper()
	got := l.takeAll()
	if len(got) == 0 || !got[len(got)-1].close {
		l.fatalf("saw %v, want it to end with the close", got)
	}
	terminals := 0
	once := map[string]bool{}
	for _, s := range got[:len(got)-1] {
		switch {
		case s.close:
			l.fatalf("saw %v: two closes", got)
		case sameJSON(s.data, terminal):
			terminals++
		case slices.ContainsFunc(allowed, func(a string) bool { return sameJSON(s.data, a) }) && !once[string(s.data)]:
			once[string(s.data)] = true
		default:
			l.fatalf("saw %v: unexpected %s", got, s.data)
		}
	}
	if strict && terminals == 0 {
		l.fatalf("saw %v, want the terminal frame %s before the close", got, terminal)
	}
	if !strict && terminals > 0 {
		l.fatalf("saw %v: a terminal frame in default mode", got)
	}
	l.gone = true
	if _, err := l.st.Connection(context.Background(), l.conn); err == nil {
		l.fatalf("closed connection still registered")
	}
}

// TestConformanceConcurrency: connection state transitions (pending to acknowledged; active
// operation ids) hold when invocations of one connection overlap, as they do on AWS.
func TestConformanceConcurrency(t *testing.T) {
	const n = 8
	type ccase struct {
		name  string
		proto string
		run   func(t *testing.T, l *routerLevel, strict bool)
	}
	cases := []ccase{
		{"concurrent inits: one ack, then the close", protoTransport, func(t *testing.T, l *routerLevel, strict bool) {
			l.concurrently(repeat(frInit, n)...)
			if acks, sent := l.countSent(frAck); acks != 1 {
				l.fatalf("server sent %v, want exactly one connection_ack", sent)
			}
			l.checkClosedAfterRace(strict, terminalFrame(4429, "Too many initialisation requests"), frAck)
		}},
		{"concurrent inits: every one acknowledged", protoLegacy, func(t *testing.T, l *routerLevel, strict bool) {
			l.concurrently(repeat(frInit, n)...)
			if acks, sent := l.countSent(frAck); acks != n {
				l.fatalf("server sent %v, want %d acks", sent, n)
			}
			l.expect(repeat(frAck, n))
			c, err := l.st.Connection(context.Background(), l.conn)
			if err != nil || c.State != store.StateReady {
				l.fatalf("connection %+v (%v), want ready", c, err)
			}
		}},
		{"concurrent pings and init: every ping answered, one ack", protoTransport, func(t *testing.T, l *routerLevel, strict bool) {
			l.concurrently(append(repeat(frPing, n), frInit)...)
			l.expectUnordered(append(repeat(frPong, n), frAck))
			l.send(send(frSubscribe("s1", qAddedText)))
			l.active([]wantOp{{id: "s1"}})
		}},
		{"concurrent subscribes of one id: one stored, then the close", protoTransport, func(t *testing.T, l *routerLevel, strict bool) {
			l.send(send(frInit))
			l.expect([]string{frAck})
			resps := l.concurrently(repeat(frSubscribe("s1", qAddedText), n)...)
			if b := bodies(resps); b[""] != n {
				l.fatalf("route responses %v, want none", b)
			}
			l.checkClosedAfterRace(strict, terminalFrame(4409, "Subscriber for s1 already exists"))
			// Before the close, the id was claimed exactly once and every other claim lost.
			log := l.st.log()
			first := slices.Index(log, "delete connection")
			if first < 0 || slices.Index(log, "put s1") != 0 {
				l.fatalf("registry writes %v: want the first claim to win, then a close", log)
			}
			for _, e := range log[1:first] {
				if e != "conflict s1" {
					l.fatalf("registry writes %v: a second claim of s1 before the close", log)
				}
			}
			// After the close, nothing of the connection is left.
			if subs := l.st.active(l.conn); len(subs) > 0 {
				l.fatalf("closed connection has operations %s (registry writes %v)", describeOps(subs), log)
			}
			if c := l.topicCount("messageAdded?roomId=r1"); c != 0 {
				l.fatalf("topic has %d subscriptions after the close (registry writes %v)", c, log)
			}
		}},
		{"concurrent subscribes of distinct ids: all stored", protoTransport, func(t *testing.T, l *routerLevel, strict bool) {
			l.send(send(frInit))
			l.expect([]string{frAck})
			var frames, want []string
			var ops []wantOp
			for i := range n {
				id := fmt.Sprintf("s%d", i)
				frames = append(frames, frSubscribe(id, qAddedText))
				want = append(want, frOp("next", id, ev(pAddedText, 1)))
				ops = append(ops, wantOp{id: id})
			}
			if b := bodies(l.concurrently(frames...)); b[""] != n {
				l.fatalf("route responses %v, want none", b)
			}
			l.nothing()
			l.active(ops)
			l.mutate(mHello, "")
			l.expectUnordered(want)
		}},
		{"concurrent completes of one id: nothing sent, the id released", protoTransport, func(t *testing.T, l *routerLevel, strict bool) {
			l.send(send(frInit))
			l.expect([]string{frAck})
			l.send(send(frSubscribe("s1", qAddedText)))
			l.active([]wantOp{{id: "s1"}})
			if b := bodies(l.concurrently(repeat(frComplete("s1"), n)...)); b[""] != n {
				l.fatalf("route responses %v, want none", b)
			}
			l.nothing()
			l.active([]wantOp{})
			l.mutate(mHello, "")
			l.nothing()
		}},
		{"start racing its init: both work", protoLegacy, func(t *testing.T, l *routerLevel, strict bool) {
			// The starts wait for the overlapping init's ack, and answer after it.
			l.concurrently(frStart("s1", qAddedFull), frStart("q1", qMessages), frInit)
			l.expect([]string{frAck, frOp("data", "q1", `{"data":{"messages":[]}}`), frComplete("q1")})
			l.nothing()
			l.active([]wantOp{{id: "s1", query: "roomId"}})
			l.mutate(mHello, "")
			l.expect([]string{frOp("data", "s1", ev(pAddedFull, 1))})
		}},
		{"concurrent starts of one id: one stored, no error", protoLegacy, func(t *testing.T, l *routerLevel, strict bool) {
			l.send(send(frInit))
			l.expect([]string{frAck})
			if b := bodies(l.concurrently(repeat(frStart("s1", qAddedText), n)...)); b[""] != n {
				l.fatalf("route responses %v, want none", b)
			}
			l.nothing()
			l.active([]wantOp{{id: "s1"}})
			if c := l.topicCount("messageAdded?roomId=r1"); c != 1 {
				l.fatalf("topic has %d subscriptions, want 1", c)
			}
			l.mutate(mHello, "")
			l.expect([]string{frOp("data", "s1", ev(pAddedText, 1))})
		}},
		{"concurrent stops of one id: one complete", protoLegacy, func(t *testing.T, l *routerLevel, strict bool) {
			l.send(send(frInit))
			l.expect([]string{frAck})
			l.send(send(frStart("s1", qAddedText)))
			l.active([]wantOp{{id: "s1"}})
			if b := bodies(l.concurrently(repeat(frStop("s1"), n)...)); b[frComplete("s1")] != 1 || b[""] != n-1 {
				l.fatalf("route responses %v, want one complete", b)
			}
			l.expect([]string{frComplete("s1")})
			l.active([]wantOp{})
			l.mutate(mHello, "")
			l.nothing()
		}},
	}
	for _, c := range cases {
		t.Run(c.proto+"/"+c.name, func(t *testing.T) {
			for _, strict := range []bool{false, true} {
				t.Run(modeName(strict), func(t *testing.T) {
					t.Parallel()
					// Races are not reproducible: try each a few times.
					for range 5 {
						l := newRouterLevel(t, confCase{proto: c.proto}, strict)
						l.at = c.name
						c.run(t, l, strict)
						l.finish()
					}
				})
			}
		})
	}
}

// expectUnordered checks that exactly these messages arrived, in any order.
func (l *routerLevel) expectUnordered(want []string) {
	l.t.Helper()
	got := l.takeAll()
	var g, w []string
	for _, s := range got {
		if s.close {
			l.fatalf("saw %v, want %v", got, want)
		}
		c, err := canon(s.data)
		if err != nil {
			l.fatalf("%s: %v", s.data, err)
		}
		g = append(g, c)
	}
	for _, s := range want {
		c, _ := canon([]byte(s))
		w = append(w, c)
	}
	sort.Strings(g)
	sort.Strings(w)
	if !slices.Equal(g, w) {
		l.fatalf("saw %v, want (in any order) %v", got, want)
	}
}

// TestConformanceServiceFailure: the registry failing during init or subscribe (README). Faults
// are injected into the router level's store; the local runtime has no seam for them.
func TestConformanceServiceFailure(t *testing.T) {
	internal := `{"message":"internal error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}`
	tables := map[string][]confCase{
		protoTransport: {
			{name: "init fails: close", steps: script(fault("ack"), send(frInit), closed(4500, "Internal server error"))},
			{name: "subscribe fails: error for the operation, the connection stays", steps: script(initAck(), fault("put"),
				send(frSubscribe("s1", qAddedText)), expect(frOp("error", "s1", "["+internal+"]")), fault("none"),
				send(frPing), expect(frPong), send(frSubscribe("s1", qAddedText)), nothing(), active("s1"))},
			// The registry entirely unreachable (issue 7, defect 6): the connection cannot even be
			// read, so its subprotocol is unknown; each message is answered as far as it can be.
			{name: "registry down: ping is answered", steps: script(initAck(), fault("outage"), send(frPing), expect(frPong),
				send(`{"type":"ping","payload":{"n":1}}`), expect(`{"type":"pong","payload":{"n":1}}`), fault("none"), send(frPing), expect(frPong))},
			{name: "registry down: subscribe gets an error, the connection stays", steps: script(initAck(), fault("outage"),
				send(frSubscribe("s1", qAddedText)), expect(frOp("error", "s1", "["+internal+"]")), fault("none"),
				send(frSubscribe("s1", qAddedText)), nothing(), active("s1"))},
			{name: "registry down: init closes", steps: script(fault("outage"), send(frInit), closedInOutage())},
			{name: "registry down: complete is answered with nothing", steps: script(initAck(), send(frSubscribe("s1", qAddedText)),
				active("s1"), fault("outage"), send(frComplete("s1")), nothing(), fault("none"), send(frPing), expect(frPong))},
		},
		protoLegacy: {
			// The legacy ack is posted before it is recorded (so that a waiting start answers after
			// it): a failure to record it is told, then the connection closes, as the reference
			// server closes after rejecting an init.
			{name: "init fails: connection_error, then the close", steps: script(fault("ack"), send(frInit),
				expect(frAck, `{"type":"connection_error","payload":{"message":"internal error"}}`), closed(4500, "Internal server error"))},
			{name: "start fails: error for the operation, the connection stays", steps: script(initAck(), fault("put"),
				send(frStart("s1", qAddedText)), expect(frOp("error", "s1", internal)), fault("none"),
				send(frStart("s1", qAddedText)), nothing(), active("s1"))},
			// (The legacy ack is posted before it is recorded: the query makes sure it is.)
			{name: "registry down: start gets an error, the connection stays", steps: script(initAck(),
				send(frStart("q0", qMessages)), expect(frOp("data", "q0", `{"data":{"messages":[]}}`), frComplete("q0")), fault("outage"),
				send(frStart("s1", qAddedText)), expect(frOp("error", "s1", internal)), fault("none"),
				send(frStart("s1", qAddedText)), nothing(), active("s1"))},
			{name: "registry down: init closes", steps: script(fault("outage"), send(frInit), closedInOutage())},
			{name: "registry down: stop is answered with nothing", steps: script(initAck(), send(frStart("s1", qAddedText)),
				active("s1"), fault("outage"), send(frStop("s1")), nothing(), fault("none"), send(frStop("s1")), expect(frComplete("s1")))},
		},
	}
	for _, proto := range []string{protoTransport, protoLegacy} {
		t.Run(proto, func(t *testing.T) { runTable(t, proto, tables[proto]) })
	}
}

// TestDisconnectWhileTheRegistryIsDown: $disconnect is answered (200) even when the registry
// cannot be written, and the failure is logged once, with the connection's id.
func TestDisconnectWhileTheRegistryIsDown(t *testing.T) {
	l := newRouterLevel(t, confCase{proto: protoTransport}, false)
	var logs bytes.Buffer
	h, err := app.Handler(app.Config{}, l.st, l.gw, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	l.r = h
	l.st.setFault("outage")
	resp := l.invoke(events.APIGatewayWebsocketProxyRequest{RequestContext: l.requestContext("$disconnect", "DISCONNECT")})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("$disconnect answered %d", resp.StatusCode)
	}
	if n := strings.Count(logs.String(), "websocket route failed"); n != 1 || !strings.Contains(logs.String(), l.conn) ||
		!strings.Contains(logs.String(), "injected: registry unreachable") {
		t.Fatalf("logged %d failures: %s", n, logs.String())
	}
}

// hangingStore is a registry that stops answering: once hang is set, every call the routes make
// waits for its context to end (a DynamoDB that accepts requests and never answers, reached by a
// client that honours its context, as the SDK's does).
type hangingStore struct {
	store.Store
	hang atomic.Bool
}

func (h *hangingStore) wait(ctx context.Context) error {
	if !h.hang.Load() {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (h *hangingStore) CreateConnection(ctx context.Context, c store.Connection) error {
	if err := h.wait(ctx); err != nil {
		return err
	}
	return h.Store.CreateConnection(ctx, c)
}

func (h *hangingStore) Connection(ctx context.Context, id string) (store.Connection, error) {
	if err := h.wait(ctx); err != nil {
		return store.Connection{}, err
	}
	return h.Store.Connection(ctx, id)
}

func (h *hangingStore) AcknowledgeConnection(ctx context.Context, id string, ack store.Ack) error {
	if err := h.wait(ctx); err != nil {
		return err
	}
	return h.Store.AcknowledgeConnection(ctx, id, ack)
}

func (h *hangingStore) TouchConnection(ctx context.Context, id string, at time.Time) error {
	if err := h.wait(ctx); err != nil {
		return err
	}
	return h.Store.TouchConnection(ctx, id, at)
}

func (h *hangingStore) DeleteConnection(ctx context.Context, id string) error {
	if err := h.wait(ctx); err != nil {
		return err
	}
	return h.Store.DeleteConnection(ctx, id)
}

func (h *hangingStore) PutSubscription(ctx context.Context, sub store.Subscription, replace bool) error {
	if err := h.wait(ctx); err != nil {
		return err
	}
	return h.Store.PutSubscription(ctx, sub, replace)
}

func (h *hangingStore) DeleteSubscription(ctx context.Context, connectionID, id string) (bool, error) {
	if err := h.wait(ctx); err != nil {
		return false, err
	}
	return h.Store.DeleteSubscription(ctx, connectionID, id)
}

// TestRoutesAnswerBeforeTheDeadlineWhenTheRegistryHangs: a registry that never answers is cut
// socket.DefaultMargin before the invocation's deadline, and every route still answers in time
// and as the protocol table says: $connect refuses the handshake, ping gets its pong,
// connection_init closes the socket, subscribe gets an error, complete nothing, $disconnect 200.
// (Before, each invocation ran into its deadline: "Task timed out" on Lambda, and the client
// heard nothing.)
func TestRoutesAnswerBeforeTheDeadlineWhenTheRegistryHangs(t *testing.T) {
	l := newRouterLevel(t, confCase{proto: protoTransport}, false)
	hs := &hangingStore{Store: l.st}
	h, err := app.Handler(app.Config{}, hs, l.gw, apptest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	l.r = h
	if resp := l.deliver([]byte(frInit), false); resp.Body != frAck {
		t.Fatalf("connection_init answered %+v", resp)
	}
	l.gw.TakeCalls()
	hs.hang.Store(true)
	const budget = 3 * time.Second
	invoke := func(route, eventType, body string) events.APIGatewayProxyResponse {
		t.Helper()
		ev := events.APIGatewayWebsocketProxyRequest{RequestContext: l.requestContext(route, eventType), Body: body}
		if route == "$connect" {
			ev.Headers = map[string]string{"Sec-WebSocket-Protocol": protoTransport}
		}
		payload, _ := json.Marshal(ev)
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		dl, _ := ctx.Deadline()
		out, err := l.r.Invoke(ctx, payload)
		if err != nil {
			t.Fatalf("%s: %v", route, err)
		}
		if left := time.Until(dl); left <= 0 {
			t.Fatalf("%s answered %v after its deadline", route, -left)
		} else {
			t.Logf("%-8s %-16s answered %v before its deadline: %s", route, body, left.Round(time.Millisecond), out)
		}
		var resp events.APIGatewayProxyResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := invoke("$connect", "CONNECT", ""); resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("$connect answered %+v, want 500 (the handshake refused)", resp)
	}
	if resp := invoke("$default", "MESSAGE", frPing); resp.Body != frPong {
		t.Errorf("ping answered %+v", resp)
	}
	if resp := invoke("$default", "MESSAGE", frSubscribe("s1", qAddedText)); !strings.Contains(resp.Body, `"type":"error"`) || !strings.Contains(resp.Body, `"id":"s1"`) {
		t.Errorf("subscribe answered %+v, want an error for s1", resp)
	}
	if resp := invoke("$default", "MESSAGE", frComplete("s1")); resp.StatusCode != 200 || resp.Body != "" {
		t.Errorf("complete answered %+v", resp)
	}
	if resp := invoke("$default", "MESSAGE", frInit); resp.StatusCode != 200 || resp.Body != "" {
		t.Errorf("connection_init answered %+v, want nothing (the socket closed)", resp)
	}
	if calls := l.gw.TakeCalls(); len(calls) != 1 || calls[0].Op != mgmttest.Delete || !calls[0].OK() {
		t.Errorf("with the registry hanging, connection_init made the calls %v, want one DeleteConnection that closed the socket", calls)
	}
	if resp := invoke("$disconnect", "DISCONNECT", ""); resp.StatusCode != 200 {
		t.Errorf("$disconnect answered %+v", resp)
	}
}

// TestConformanceNegotiation: the server picks one subprotocol it supports, preferring
// graphql-transport-ws, and echoes it; offering neither refuses the handshake (README: 400, the
// client sees the handshake fail).
func TestConformanceNegotiation(t *testing.T) {
	cases := []struct {
		name    string
		offered []string // as a client lists them (socket level)
		header  map[string]string
		multi   map[string][]string
		want    string // "" = refused
	}{
		{name: "graphql-transport-ws", offered: []string{"graphql-transport-ws"}, want: protoTransport},
		{name: "graphql-ws", offered: []string{"graphql-ws"}, want: protoLegacy},
		{name: "both, legacy first", offered: []string{"graphql-ws", "graphql-transport-ws"}, want: protoTransport},
		{name: "both and another", offered: []string{"mqtt", "graphql-ws", "graphql-transport-ws"}, want: protoTransport},
		{name: "legacy among others", offered: []string{"mqtt", "graphql-ws"}, want: protoLegacy},
		{name: "neither", offered: []string{"mqtt", "wamp.2.json"}, want: ""},
		{name: "none", offered: nil, want: ""},
		// Header shapes only an event can carry.
		{name: "lower-case header without spaces", header: map[string]string{"sec-websocket-protocol": "graphql-ws,graphql-transport-ws"}, want: protoTransport},
		{name: "multi-value header", multi: map[string][]string{"Sec-WebSocket-Protocol": {"graphql-ws", " graphql-transport-ws"}}, want: protoTransport},
		{name: "multi-value header, legacy only", multi: map[string][]string{"sec-websocket-protocol": {"foo", "graphql-ws"}}, want: protoLegacy},
	}
	for _, c := range cases {
		t.Run(c.name+"/router", func(t *testing.T) {
			t.Parallel()
			l := newRouterLevel(t, confCase{proto: protoTransport}, false)
			l.conn += "n"
			header := c.header
			if header == nil && c.multi == nil {
				header = map[string]string{}
				if c.offered != nil {
					header["Sec-WebSocket-Protocol"] = strings.Join(c.offered, ", ")
				}
			}
			resp := l.connectEvent(header, c.multi)
			if c.want == "" {
				if resp.StatusCode != http.StatusBadRequest || len(resp.Headers) > 0 {
					t.Fatalf("$connect answered %+v, want 400 and no subprotocol", resp)
				}
				if _, err := l.st.Connection(context.Background(), l.conn); err == nil {
					t.Fatalf("refused connection was registered")
				}
				return
			}
			if resp.StatusCode != http.StatusOK || len(resp.Headers) != 1 || resp.Headers["Sec-WebSocket-Protocol"] != c.want {
				t.Fatalf("$connect answered %+v, want 200 echoing %s", resp, c.want)
			}
			conn, err := l.st.Connection(context.Background(), l.conn)
			if err != nil || conn.Subprotocol != c.want || conn.State != store.StatePending {
				t.Fatalf("registered %+v (%v)", conn, err)
			}
		})
		if c.header != nil || c.multi != nil {
			continue
		}
		t.Run(c.name+"/socket", func(t *testing.T) {
			t.Parallel()
			d := apptest.Start(t, app.Config{})
			conn, resp, err := wstest.TryDial("ws://"+d.Addr+"/graphql", c.offered...)
			if c.want == "" {
				if err == nil {
					conn.CloseNow()
					t.Fatalf("handshake accepted with %q, want it refused", conn.Subprotocol())
				}
				if resp == nil || resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("handshake failed with %v (%+v), want 400", err, resp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cl := wstest.Wrap(t, conn)
			if cl.Subprotocol() != c.want {
				t.Fatalf("negotiated %q, want %s", cl.Subprotocol(), c.want)
			}
			// The negotiated subprotocol is the one spoken: legacy answers ping with a
			// connection_error, graphql-transport-ws with pong.
			cl.Send(frPing)
			m := cl.Next(socketTimeout)
			if want := map[string]string{protoTransport: "pong", protoLegacy: "connection_error"}[c.want]; m.Type != want {
				t.Fatalf("ping answered %s, want %s", m, want)
			}
		})
	}
}
