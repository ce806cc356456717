package socket_test

// The GraphQL over WebSocket conformance suite: one case table per subprotocol
// (conformance_cases_test.go), each case run twice, through the router alone and through the
// local runtime over a real socket, in the default and in the strict close mode. Both levels run
// the handler as the binary wires it (internal/app).
//
// A case is a script: the client sends frames (text or binary), waits, and states exactly what it
// sees: a sequence of messages (compared as JSON values, ids, types and payloads exact), nothing
// at all (and the connection still open), or the close (1000, what DeleteConnection produces). A
// close for a code the graphql-ws client must not retry after is preceded, in strict mode and for
// graphql-transport-ws only, by the terminal frame the README describes.
//
// What "the client sees" at each level:
//   - router: the posts made to the connection during an invocation, then the route response body
//     (API Gateway sends it after the invocation returns), then the posts of the stream batches
//     the invocation's writes caused; DeleteConnection is the close, after which nothing arrives
//     (posts answer GoneException, a route response is dropped): mgmttest.Gateway keeps that
//     record. Invocations run one at a time.
//   - socket: the frames and the close a real WebSocket client receives from the local runtime,
//     each frame as wstest records it (id, type, payload; the router level compares whole frames).
//
// Where the levels genuinely differ:
//   - time: a wait advances the router level's clock (requestTimeEpoch) and sleeps at socket
//     level;
//   - order: the runtime invokes every frame at once, so a script that needs an earlier frame to
//     have been handled before it sends the next (a subscribe, which answers nothing) says so with
//     an `active` step: the router level checks the registry at once, the socket level polls it;
//   - "nothing arrives" is exact at router level and a 150 ms silence at socket level.
//
// A connection's active operations are the ones the registry accepted (PutSubscription succeeded)
// and has not released (DeleteSubscription reported one active, or DeleteConnection), as the
// registry answered each call: probeStore keeps that record at both levels.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/internal/wstest"
	"github.com/realtime-gql/lambdaws/router"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
)

const (
	protoTransport = "graphql-transport-ws"
	protoLegacy    = "graphql-ws"
)

// confCase is one conformance case.
type confCase struct {
	name  string
	proto string // set by the table
	// initTimeout is INIT_TIMEOUT; zero keeps the default (3s).
	initTimeout time.Duration
	// verifier authenticates (AUTH_MODE=jwt); nil runs without authentication.
	verifier *auth.Verifier
	// connectHeader and connectQuery are added to the $connect request (a token there).
	connectHeader map[string]string
	connectQuery  url.Values
	// maxSubs is SUBSCRIPTIONS_PER_CONNECTION; zero keeps the default.
	maxSubs int
	// limits are the GRAPHQL_MAX_* limits; zero fields keep the defaults.
	limits graph.Limits
	// maxPerSubject is CONNECTIONS_PER_SUBJECT; zero is unbounded.
	maxPerSubject int
	// setup prepares the registry before the client connects.
	setup func(t *testing.T, reg store.Registry)
	// realTime makes the router level's waits real too (for token expiry, which the fan-out
	// reckons on the real clock).
	realTime bool
	steps    []step
}

type stepKind int

const (
	stepSend       stepKind = iota // the client sends a frame
	stepWait                       // time passes
	stepExpect                     // exactly these messages arrive next, in order
	stepNothing                    // nothing arrives, the connection stays open
	stepClosed                     // the connection is closed (1000)
	stepMutate                     // a mutation is made over HTTP (its change reaches the stream)
	stepActive                     // the connection's active operation ids are exactly these
	stepFault                      // the registry starts failing
	stepInvalidate                 // a lambdaws.invalidate event with this data arrives (EventBridge, SQS or SNS)
)

type step struct {
	kind   stepKind
	frame  []byte
	gen    func() string // builds the frame when it is sent (a token that expires)
	binary bool
	d      time.Duration
	msgs   []string
	code   int // stepClosed: the close code the specification gives (0: none)
	reason string
	outage bool // stepClosed: the registry is down, so the connection's record stays
	query  string
	token  string // stepMutate: the bearer token of the request
	ops    []wantOp
	fault  string
	source string // stepInvalidate: viaEventBridge, viaSQS or viaSNS
}

// wantOp is an operation expected active: its id and a text its stored query contains.
type wantOp struct{ id, query string }

func (s step) String() string {
	switch s.kind {
	case stepSend:
		if s.binary {
			return fmt.Sprintf("send binary %q", s.frame)
		}
		return "send " + string(s.frame)
	case stepWait:
		return "wait " + s.d.String()
	case stepExpect:
		return "expect " + strings.Join(s.msgs, " ")
	case stepNothing:
		return "expect nothing"
	case stepClosed:
		return fmt.Sprintf("expect close (%d %s)", s.code, s.reason)
	case stepMutate:
		return "mutate " + s.query
	case stepActive:
		return fmt.Sprintf("active %v", s.ops)
	case stepFault:
		return "fault " + s.fault
	}
	return "?"
}

// Steps.

func send(frame string) step { return step{kind: stepSend, frame: []byte(frame)} }
func sendGen(gen func() string) step {
	return step{kind: stepSend, gen: gen, frame: []byte("<generated>")}
}
func sendBinary(frame []byte) step        { return step{kind: stepSend, frame: frame, binary: true} }
func wait(d time.Duration) step           { return step{kind: stepWait, d: d} }
func expect(msgs ...string) step          { return step{kind: stepExpect, msgs: msgs} }
func nothing() step                       { return step{kind: stepNothing} }
func closed(code int, reason string) step { return step{kind: stepClosed, code: code, reason: reason} }
func mutate(query string) step            { return step{kind: stepMutate, query: query} }
func mutateAs(token, query string) step   { return step{kind: stepMutate, query: query, token: token} }
func closedInOutage() step                { return step{kind: stepClosed, outage: true} }
func fault(what string) step              { return step{kind: stepFault, fault: what} }
func invalidateEvent(detail string) step  { return invalidateVia(viaEventBridge, detail) }

// invalidateVia: a lambdaws.invalidate event with this data arrives from source.
func invalidateVia(source, data string) step {
	return step{kind: stepInvalidate, query: data, source: source}
}

// The sources an invalidation arrives from.
const (
	viaEventBridge = "eventbridge"
	viaSQS         = "sqs"
	viaSNS         = "sns"
)

// active expects exactly these operation ids active on the connection.
func active(ids ...string) step {
	s := step{kind: stepActive, ops: []wantOp{}}
	for _, id := range ids {
		s.ops = append(s.ops, wantOp{id: id})
	}
	return s
}

// activeQuery expects exactly one active operation, id, whose stored query contains query.
func activeQuery(id, query string) step {
	return step{kind: stepActive, ops: []wantOp{{id: id, query: query}}}
}

// script flattens steps and step lists.
func script(parts ...any) []step {
	var out []step
	for _, p := range parts {
		switch p := p.(type) {
		case step:
			out = append(out, p)
		case []step:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("script: %T", p))
		}
	}
	return out
}

// Frames.

func frame(v map[string]any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func frSubscribe(id, query string) string {
	return frame(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query}})
}

func frStart(id, query string) string {
	return frame(map[string]any{"id": id, "type": "start", "payload": map[string]any{"query": query}})
}

func frOp(typ, id, payload string) string {
	if payload == "" {
		return frame(map[string]any{"id": id, "type": typ})
	}
	return frame(map[string]any{"id": id, "type": typ, "payload": json.RawMessage(payload)})
}

func frComplete(id string) string { return frOp("complete", id, "") }
func frStop(id string) string     { return frOp("stop", id, "") }

const (
	frInit = `{"type":"connection_init"}`
	frAck  = `{"type":"connection_ack"}`
	frPing = `{"type":"ping"}`
	frPong = `{"type":"pong"}`
)

// terminalFrame is the frame strict mode posts before a close the client must not retry after:
// its type names the code and reason, cut to 88 bytes so that the graphql-ws client's close reason
// (`Invalid message 'type' property "<type>"`) stays under the 124 characters it keeps.
func terminalFrame(code int, reason string) string {
	typ := fmt.Sprintf("%d: %s", code, reason)
	if len(typ) > 88 {
		typ = typ[:85] + "..."
	}
	return frame(map[string]any{"type": typ, "payload": map[string]any{"code": code, "reason": reason}})
}

// noRetryCodes are the close codes after which the graphql-ws client does not reconnect, and for
// which strict mode posts the terminal frame (README, "Protocol behaviour on API Gateway").
var noRetryCodes = map[int]bool{4400: true, 4401: true, 4409: true, 4429: true, 4500: true}

// closeFrames is what the client sees before the close of a closed step.
func closeFrames(proto string, strict bool, s step) []string {
	if strict && proto == protoTransport && noRetryCodes[s.code] {
		return []string{terminalFrame(s.code, s.reason)}
	}
	return nil
}

// canon re-encodes a JSON value canonically (sorted keys, no spaces), for semantic comparison.
func canon(b []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	if dec.More() {
		return "", errors.New("trailing data")
	}
	out, err := json.Marshal(v)
	return string(out), err
}

func sameJSON(got []byte, want string) bool {
	g, err1 := canon(got)
	w, err2 := canon([]byte(want))
	return err1 == nil && err2 == nil && g == w
}

// sameOps reports whether a connection's active operations are exactly want.
func sameOps(got []store.Subscription, want []wantOp) bool {
	if len(got) != len(want) {
		return false
	}
	byID := map[string]store.Subscription{}
	for _, s := range got {
		byID[s.ID] = s
	}
	for _, w := range want {
		s, ok := byID[w.id]
		if !ok || !strings.Contains(s.Query, w.query) {
			return false
		}
	}
	return true
}

func describeOps(subs []store.Subscription) string {
	var parts []string
	for _, s := range subs {
		parts = append(parts, fmt.Sprintf("%s(%q)", s.ID, s.Query))
	}
	sort.Strings(parts)
	return "[" + strings.Join(parts, " ") + "]"
}

// level runs a case's steps against one way of reaching the server.
type level interface {
	send(s step)
	wait(d time.Duration)
	expect(msgs []string)
	nothing()
	closed(frames []string)
	mutate(query, token string)
	active(ops []wantOp)
	fault(what string)
	invalidate(source string, payload []byte)
	finish()
}

// caseConfig is the configuration a case runs with (GRAPHQL_WS_STRICT, INIT_TIMEOUT, the
// authentication and the limits).
func caseConfig(c confCase, strict bool) app.Config {
	return app.Config{Strict: strict, InitTimeout: c.initTimeout, Verifier: c.verifier, MaxSubscriptions: c.maxSubs,
		MaxConnectionsPerSubject: c.maxPerSubject, Limits: c.limits}
}

// runCase runs one case's script at one level.
func runCase(t *testing.T, c confCase, strict bool, lv level, at *string) {
	t.Helper()
	for i, s := range c.steps {
		*at = fmt.Sprintf("step %d (%s)", i+1, s)
		switch s.kind {
		case stepSend:
			if s.gen != nil {
				s.frame = []byte(s.gen())
			}
			if sl, ok := lv.(*socketLevel); ok && s.binary {
				// API Gateway (and so the local runtime) refuses binary frames itself, closing
				// with 1003: the handler never sees them. Its defensive handling of a binary
				// event is what the router level checks.
				sl.send(s)
				sl.refusedByGateway()
				*at = "end of script"
				return
			}
			lv.send(s)
		case stepWait:
			lv.wait(s.d)
		case stepExpect:
			lv.expect(s.msgs)
		case stepNothing:
			lv.nothing()
		case stepClosed:
			if rl, ok := lv.(*routerLevel); ok && s.outage {
				rl.keepRecord = true
			}
			lv.closed(closeFrames(c.proto, strict, s))
		case stepMutate:
			lv.mutate(s.query, s.token)
		case stepActive:
			lv.active(s.ops)
		case stepFault:
			lv.fault(s.fault)
		case stepInvalidate:
			lv.invalidate(s.source, invalidation(s.source, s.query))
		}
	}
	*at = "end of script"
	lv.finish()
}

// runTable runs every case at both levels and in both close modes.
//
// The runs are concurrent, bounded by confParallel: most of a run is waiting (for the socket, for
// an init timeout, for a legacy start's bounded wait for the ack), so the -parallel default
// (GOMAXPROCS) would leave the machine idle. Subtests may be started from several goroutines.
func runTable(t *testing.T, proto string, cases []confCase) {
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.name] {
			t.Fatalf("duplicate case %q", c.name)
		}
		names[c.name] = true
	}
	sem := make(chan struct{}, confParallel)
	var wg sync.WaitGroup
	for _, c := range cases {
		c.proto = proto
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(c.name, func(t *testing.T) {
				var inner sync.WaitGroup
				for _, strict := range []bool{false, true} {
					for _, lvl := range []string{"router", "socket"} {
						inner.Add(1)
						go func() {
							defer inner.Done()
							sem <- struct{}{}
							defer func() { <-sem }()
							t.Run(modeName(strict)+"/"+lvl, func(t *testing.T) {
								if lvl == "router" {
									lv := newRouterLevel(t, c, strict)
									runCase(t, c, strict, lv, &lv.at)
									return
								}
								lv := newSocketLevel(t, c, strict)
								runCase(t, c, strict, lv, &lv.at)
							})
						}()
					}
				}
				inner.Wait()
			})
		}()
	}
	wg.Wait()
}

// confParallel bounds the conformance runs in flight.
const confParallel = 12

func modeName(strict bool) string {
	if strict {
		return "strict"
	}
	return "default"
}

// ---------------------------------------------------------------------------------------------
// Router level.

// seen is one thing a client sees: a message, or the close.
type seen struct {
	close bool
	data  []byte
}

func (s seen) String() string {
	if s.close {
		return "<close 1000>"
	}
	return string(s.data)
}

// probeStore wraps a store: it can fail the registry on demand; it logs the outcome of every
// PutSubscription and DeleteConnection, in commit order; and it keeps each connection's active
// operations as the registry's answers tell them.
type probeStore struct {
	store.Store
	mu       sync.Mutex
	failAck  bool
	failPut  bool
	down     bool // every registry call fails
	timeline []string
	ops      map[string]map[string]store.Subscription // connection id → operation id → operation
}

func newProbeStore(s store.Store) *probeStore {
	return &probeStore{Store: s, ops: map[string]map[string]store.Subscription{}}
}

var errInjected = errors.New("injected: registry unreachable")

func (p *probeStore) setFault(what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch what {
	case "ack":
		p.failAck = true
	case "put":
		p.failPut = true
	case "outage":
		p.down = true
	case "none":
		p.failAck, p.failPut, p.down = false, false, false
	default:
		panic("unknown fault " + what)
	}
}

// isDown reports whether the registry is out.
func (p *probeStore) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

func (p *probeStore) Connection(ctx context.Context, id string) (store.Connection, error) {
	if p.isDown() {
		return store.Connection{}, errInjected
	}
	return p.Store.Connection(ctx, id)
}

func (p *probeStore) TouchConnection(ctx context.Context, id string, at time.Time) error {
	if p.isDown() {
		return errInjected
	}
	return p.Store.TouchConnection(ctx, id, at)
}

func (p *probeStore) AcknowledgeConnection(ctx context.Context, id string, ack store.Ack) error {
	p.mu.Lock()
	fail := p.failAck || p.down
	p.mu.Unlock()
	if fail {
		return errInjected
	}
	return p.Store.AcknowledgeConnection(ctx, id, ack)
}

func (p *probeStore) PutSubscription(ctx context.Context, s store.Subscription, replace bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failPut || p.down {
		return errInjected
	}
	err := p.Store.PutSubscription(ctx, s, replace)
	switch {
	case err == nil:
		p.timeline = append(p.timeline, "put "+s.ID)
		if p.ops[s.ConnectionID] == nil {
			p.ops[s.ConnectionID] = map[string]store.Subscription{}
		}
		p.ops[s.ConnectionID][s.ID] = s
	case errors.Is(err, store.ErrConflict):
		p.timeline = append(p.timeline, "conflict "+s.ID)
	default:
		p.timeline = append(p.timeline, "error "+s.ID)
	}
	return err
}

func (p *probeStore) DeleteSubscription(ctx context.Context, connectionID, id string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false, errInjected
	}
	active, err := p.Store.DeleteSubscription(ctx, connectionID, id)
	if err == nil {
		if _, known := p.ops[connectionID][id]; known != active {
			p.timeline = append(p.timeline, fmt.Sprintf("release %s: the registry says active=%v", id, active))
		}
		delete(p.ops[connectionID], id)
	}
	return active, err
}

func (p *probeStore) DeleteConnection(ctx context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		p.timeline = append(p.timeline, "delete connection failed")
		return errInjected
	}
	err := p.Store.DeleteConnection(ctx, id)
	p.timeline = append(p.timeline, "delete connection")
	if err == nil {
		delete(p.ops, id)
	}
	return err
}

func (p *probeStore) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.timeline)
}

// active returns a connection's active operations.
func (p *probeStore) active(connectionID string) []store.Subscription {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []store.Subscription
	for _, s := range p.ops[connectionID] {
		out = append(out, s)
	}
	return out
}

// routerLevel drives the real handlers (app.Handler) over an embedded store with events shaped
// as API Gateway sends them.
type routerLevel struct {
	t        *testing.T
	at       string
	proto    string
	realTime bool
	r        *router.Router
	emb      *embedded.Store // the stream's source
	st       *probeStore
	gw       *mgmttest.Gateway
	calls    []mgmttest.Call // what the gateway answered, in order
	seenAt   int             // calls before this index have been taken as seen
	sentAt   int             // calls before this index have been taken as sent
	conn     string
	connect  int64 // connectedAt, epoch ms
	now      int64 // the clock, epoch ms
	seq      uint64
	pending  []seen
	gone     bool // the client has seen the close
	// keepRecord: the close happened with the registry down, so the record is still there.
	keepRecord bool
}

func newRouterLevel(t *testing.T, c confCase, strict bool) *routerLevel {
	t.Helper()
	emb, err := embedded.Open(filepath.Join(t.TempDir(), "store.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	st := newProbeStore(emb)
	if c.setup != nil {
		c.setup(t, st)
	}
	gw := mgmttest.New()
	now := time.Now().UnixMilli()
	h, err := app.Handler(caseConfig(c, strict), st, gw, apptest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	l := &routerLevel{t: t, proto: c.proto, realTime: c.realTime, r: h,
		emb: emb, st: st, gw: gw, conn: "Conf" + strconv.FormatInt(now%100000, 10) + "=", connect: now, now: now}
	headers := map[string]string{"Sec-WebSocket-Protocol": c.proto}
	maps.Copy(headers, c.connectHeader)
	resp := l.connectQueryEvent(headers, c.connectQuery)
	if resp.StatusCode != http.StatusOK || resp.Headers["Sec-WebSocket-Protocol"] != c.proto {
		t.Fatalf("$connect offering %s: %+v", c.proto, resp)
	}
	return l
}

func (l *routerLevel) fatalf(format string, args ...any) {
	l.t.Helper()
	l.t.Fatalf("router level, %s: %s", l.at, fmt.Sprintf(format, args...))
}

func (l *routerLevel) requestContext(route, eventType string) events.APIGatewayWebsocketProxyRequestContext {
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	return events.APIGatewayWebsocketProxyRequestContext{
		RouteKey: route, EventType: eventType, ExtendedRequestID: id, RequestID: id,
		RequestTime:      time.UnixMilli(l.now).UTC().Format("02/Jan/2006:15:04:05 -0700"),
		RequestTimeEpoch: l.now, MessageDirection: "IN", Stage: "prod", ConnectedAt: l.connect,
		ConnectionID: l.conn, DomainName: "abcdef1234.execute-api.us-east-1.amazonaws.com", APIID: "abcdef1234",
		Identity: events.APIGatewayRequestIdentity{SourceIP: "203.0.113.10"},
	}
}

func (l *routerLevel) invoke(ev any) events.APIGatewayProxyResponse {
	l.t.Helper()
	payload, err := json.Marshal(ev)
	if err != nil {
		l.fatalf("%v", err)
	}
	out, err := l.r.Invoke(context.Background(), payload)
	if err != nil {
		l.fatalf("invoke: %v", err)
	}
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		l.fatalf("response %s: %v", out, err)
	}
	return resp
}

func (l *routerLevel) connectEvent(headers map[string]string, multi map[string][]string) events.APIGatewayProxyResponse {
	l.t.Helper()
	return l.invoke(events.APIGatewayWebsocketProxyRequest{
		Headers: headers, MultiValueHeaders: multi,
		RequestContext: l.requestContext("$connect", "CONNECT"),
	})
}

// connectQueryEvent is a $connect with a query string, as API Gateway decodes it.
func (l *routerLevel) connectQueryEvent(headers map[string]string, query url.Values) events.APIGatewayProxyResponse {
	l.t.Helper()
	ev := events.APIGatewayWebsocketProxyRequest{Headers: headers, RequestContext: l.requestContext("$connect", "CONNECT")}
	if len(query) > 0 {
		ev.QueryStringParameters, ev.MultiValueQueryStringParameters = map[string]string{}, map[string][]string(query)
		for k, vs := range query {
			ev.QueryStringParameters[k] = vs[len(vs)-1]
		}
	}
	return l.invoke(ev)
}

// deliver is one $default invocation: what it posts, then its route response. Safe for
// concurrent use; it does not run the stream.
func (l *routerLevel) deliver(body []byte, binary bool) events.APIGatewayProxyResponse {
	l.t.Helper()
	ev := events.APIGatewayWebsocketProxyRequest{RequestContext: l.requestContext("$default", "MESSAGE"), Body: string(body)}
	ev.RequestContext.MessageID = ev.RequestContext.RequestID
	if binary {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	resp := l.invoke(ev)
	if resp.StatusCode != http.StatusOK {
		l.fatalf("$default answered %d (%s)", resp.StatusCode, resp.Body)
	}
	l.gw.RouteResponse(l.conn, []byte(resp.Body))
	return resp
}

// pump feeds the stream records written since the last pump to the handler, as the event source
// mapping does.
func (l *routerLevel) pump() {
	l.t.Helper()
	for {
		changes, err := l.emb.ReadChanges(context.Background(), l.seq, 100)
		if err != nil {
			l.fatalf("read changes: %v", err)
		}
		if len(changes) == 0 {
			return
		}
		var batch struct {
			Records []json.RawMessage `json:"Records"`
		}
		for _, c := range changes {
			batch.Records = append(batch.Records, c.Record)
		}
		payload, _ := json.Marshal(batch)
		var ev events.DynamoDBEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			l.fatalf("stream batch is not a DynamoDBEvent: %v", err)
		}
		out, err := l.r.Invoke(context.Background(), payload)
		if err != nil {
			l.fatalf("stream batch: %v", err)
		}
		var resp events.DynamoDBEventResponse
		if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) > 0 {
			l.fatalf("stream batch answered %s (%v)", out, err)
		}
		l.seq = changes[len(changes)-1].Seq
	}
}

// take returns what the client has seen since the last take: the messages delivered to it (posts
// and route responses) and the close.
func (l *routerLevel) take() []seen {
	l.calls = append(l.calls, l.gw.TakeCalls()...)
	var out []seen
	for _, c := range l.calls[l.seenAt:] {
		if c.ConnectionID != l.conn || !c.OK() {
			continue
		}
		switch c.Op {
		case mgmttest.Post, mgmttest.RouteResponse:
			out = append(out, seen{data: c.Data})
		case mgmttest.Delete:
			out = append(out, seen{close: true})
		}
	}
	l.seenAt = len(l.calls)
	return out
}

// takeSent returns the frames the server tried to send since the last takeSent: posts, delivered
// or not, and route response bodies.
func (l *routerLevel) takeSent() []string {
	l.calls = append(l.calls, l.gw.TakeCalls()...)
	var out []string
	for _, c := range l.calls[l.sentAt:] {
		if c.ConnectionID == l.conn && (c.Op == mgmttest.Post || c.Op == mgmttest.RouteResponse) {
			out = append(out, string(c.Data))
		}
	}
	l.sentAt = len(l.calls)
	return out
}

func (l *routerLevel) collect() {
	l.pending = append(l.pending, l.take()...)
}

func (l *routerLevel) unexpected() {
	l.t.Helper()
	l.collect()
	if len(l.pending) > 0 {
		l.fatalf("unexpected %v", l.pending)
	}
}

func (l *routerLevel) send(s step) {
	l.t.Helper()
	if l.gone {
		l.fatalf("send after the close")
	}
	l.deliver(s.frame, s.binary)
	l.pump()
}

func (l *routerLevel) wait(d time.Duration) {
	l.now += d.Milliseconds()
	if l.realTime {
		time.Sleep(d)
		// Tokens expire in real time: the requests that follow carry the real time, however long
		// the case took to reach this step on a loaded machine.
		l.now = max(l.now, time.Now().UnixMilli())
	}
}

func (l *routerLevel) expect(msgs []string) {
	l.t.Helper()
	l.collect()
	for i, want := range msgs {
		if i >= len(l.pending) {
			l.fatalf("got %v, want %v", l.pending, msgs)
		}
		if got := l.pending[i]; got.close || !sameJSON(got.data, want) {
			l.fatalf("message %d: got %v\n want %v", i+1, l.pending[:i+1], msgs)
		}
	}
	l.pending = l.pending[len(msgs):]
}

func (l *routerLevel) nothing() {
	l.t.Helper()
	l.unexpected()
	if l.gw.Closed(l.conn) {
		l.fatalf("connection closed")
	}
}

func (l *routerLevel) closed(frames []string) {
	l.t.Helper()
	l.expect(frames)
	l.collect()
	if len(l.pending) == 0 || !l.pending[0].close {
		l.fatalf("got %v, want the close", l.pending)
	}
	l.pending = l.pending[1:]
	l.gone = true
	if l.keepRecord {
		return
	}
	if _, err := l.st.Connection(context.Background(), l.conn); !errors.Is(err, store.ErrNotFound) {
		l.fatalf("closed connection still registered (%v)", err)
	}
}

func (l *routerLevel) mutate(query, token string) {
	l.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	out, err := l.r.Invoke(context.Background(), httpEventAs(string(body), token))
	if err != nil {
		l.fatalf("mutation: %v", err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode != http.StatusOK || strings.Contains(resp.Body, `"errors"`) {
		l.fatalf("mutation answered %s (%v)", out, err)
	}
	l.pump()
}

// httpEvent is an HTTP API (payload 2.0) POST /graphql event.
func httpEvent(body string) []byte { return httpEventAs(body, "") }

// httpEventAs is httpEvent with a bearer token.
func httpEventAs(body, token string) []byte {
	headers := map[string]string{"content-type": "application/json", "accept": "application/json"}
	if token != "" {
		headers["authorization"] = "Bearer " + token
	}
	b, _ := json.Marshal(events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "POST /graphql", RawPath: "/graphql",
		Headers: headers,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			APIID: "h1j2k3l4m5", DomainName: "h1j2k3l4m5.execute-api.us-east-1.amazonaws.com", Stage: "$default",
			RequestID: "conformance", RouteKey: "POST /graphql", TimeEpoch: time.Now().UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/graphql", Protocol: "HTTP/1.1", SourceIP: "203.0.113.10"},
		},
		Body: body,
	})
	return b
}

func (l *routerLevel) active(ops []wantOp) {
	l.t.Helper()
	if subs := l.st.active(l.conn); !sameOps(subs, ops) {
		l.fatalf("active operations %s, want %v (registry writes %v)", describeOps(subs), ops, l.st.log())
	}
}

func (l *routerLevel) fault(what string) { l.st.setFault(what) }

// invalidation is the Lambda event of a lambdaws.invalidate event with this data, as source
// delivers it: an EventBridge event, or a CloudEvent in an SQS message or an SNS notification.
func invalidation(source, data string) []byte {
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	if source == viaEventBridge {
		return []byte(`{"version":"0","id":"` + id + `","detail-type":"lambdaws.invalidate",` +
			`"source":"com.example.admin","account":"123456789012","time":"2026-11-26T14:13:30Z","region":"us-east-1","resources":[],"detail":` + data + `}`)
	}
	ce, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": "com.example.admin", "type": "lambdaws.invalidate",
		"datacontenttype": "application/json", "data": json.RawMessage(data)})
	var ev any
	switch source {
	case viaSQS:
		ev = events.SQSEvent{Records: []events.SQSMessage{{MessageId: id, Body: string(ce), EventSource: "aws:sqs",
			EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:lambdaws-prod-events", AWSRegion: "us-east-1"}}}
	case viaSNS:
		ev = events.SNSEvent{Records: []events.SNSEventRecord{{EventSource: "aws:sns", EventVersion: "1.0",
			SNS: events.SNSEntity{Type: "Notification", MessageID: id, TopicArn: "arn:aws:sns:us-east-1:123456789012:lambdaws-prod-events",
				Message: string(ce), Timestamp: time.Now()}}}}
	default:
		panic("unknown source " + source)
	}
	b, _ := json.Marshal(ev)
	return b
}

// invalidationAnswer is what the handler answers an invalidation it handled from source: an
// empty object, or for SQS a partial batch response that reports nothing.
func invalidationAnswer(source string) string {
	if source == viaSQS {
		return `{"batchItemFailures":[]}`
	}
	return "{}"
}

func (l *routerLevel) invalidate(source string, payload []byte) {
	l.t.Helper()
	if out, err := l.r.Invoke(context.Background(), payload); err != nil || string(out) != invalidationAnswer(source) {
		l.fatalf("invalidation from %s answered %s, %v", source, out, err)
	}
}

func (l *routerLevel) finish() {
	l.t.Helper()
	l.unexpected()
}

// ---------------------------------------------------------------------------------------------
// Socket level.

// socketLevel drives the local runtime (API Gateway emulated, the handler in-process) with a real
// WebSocket client.
type socketLevel struct {
	t        *testing.T
	at       string
	d        *app.Dev
	st       *probeStore
	c        *wstest.Client
	isClosed bool
}

func newSocketLevel(t *testing.T, c confCase, strict bool) *socketLevel {
	t.Helper()
	cfg, dc := caseConfig(c, strict), app.DevConfig{Host: "127.0.0.1", Data: t.TempDir()}
	s, feed, err := app.OpenDevStore(context.Background(), cfg, dc)
	if err != nil {
		t.Fatal(err)
	}
	st := newProbeStore(s)
	if c.setup != nil {
		c.setup(t, st)
	}
	d := apptest.Serve(t, cfg, dc, st, feed)
	u := "ws://" + d.Addr + "/graphql"
	if len(c.connectQuery) > 0 {
		u += "?" + c.connectQuery.Encode()
	}
	header := http.Header{}
	for k, v := range c.connectHeader {
		header.Set(k, v)
	}
	cl := wstest.DialHeader(t, u, header, c.proto)
	if cl.Subprotocol() != c.proto {
		t.Fatalf("offered %s, negotiated %q", c.proto, cl.Subprotocol())
	}
	return &socketLevel{t: t, d: d, st: st, c: cl}
}

func (l *socketLevel) fatalf(format string, args ...any) {
	l.t.Helper()
	l.t.Fatalf("socket level, %s: %s", l.at, fmt.Sprintf(format, args...))
}

const socketTimeout = 5 * time.Second

// next returns the next message; ok is false if the connection closed first.
func (l *socketLevel) next() (wstest.Msg, bool) {
	l.t.Helper()
	deadline := time.Now().Add(socketTimeout)
	for time.Now().Before(deadline) {
		if m, ok := l.c.TryNext(10 * time.Millisecond); ok {
			return m, true
		}
		select {
		case <-l.c.Closed():
			if m, ok := l.c.TryNext(10 * time.Millisecond); ok {
				return m, true
			}
			return wstest.Msg{}, false
		default:
		}
	}
	l.fatalf("no message within %v", socketTimeout)
	return wstest.Msg{}, false
}

func (l *socketLevel) send(s step) {
	l.t.Helper()
	typ := websocket.MessageText
	if s.binary {
		typ = websocket.MessageBinary
	}
	ctx, cancel := context.WithTimeout(context.Background(), socketTimeout)
	defer cancel()
	if err := l.c.C.Write(ctx, typ, s.frame); err != nil {
		l.fatalf("write: %v", err)
	}
}

func (l *socketLevel) wait(d time.Duration) { time.Sleep(d) }

func (l *socketLevel) expect(msgs []string) {
	l.t.Helper()
	for i, want := range msgs {
		m, ok := l.next()
		if !ok {
			l.fatalf("message %d: the connection closed (%d %q), want %s", i+1, l.c.CloseStatus, l.c.CloseReason, want)
		}
		got, _ := json.Marshal(m)
		if !sameJSON(got, want) {
			l.fatalf("message %d: got %s\n want %s", i+1, got, want)
		}
	}
}

func (l *socketLevel) nothing() {
	l.t.Helper()
	if m, ok := l.c.TryNext(150 * time.Millisecond); ok {
		l.fatalf("unexpected %s", m)
	}
	select {
	case <-l.c.Closed():
		l.fatalf("connection closed (%d %q)", l.c.CloseStatus, l.c.CloseReason)
	default:
	}
}

func (l *socketLevel) closed(frames []string) {
	l.t.Helper()
	l.expect(frames)
	select {
	case <-l.c.Closed():
	case <-time.After(socketTimeout):
		if m, ok := l.c.TryNext(0); ok {
			l.fatalf("got %s, want the close", m)
		}
		l.fatalf("not closed within %v", socketTimeout)
	}
	if m, ok := l.c.TryNext(10 * time.Millisecond); ok {
		l.fatalf("got %s, want the close", m)
	}
	if l.c.CloseStatus != websocket.StatusNormalClosure {
		l.fatalf("closed with %d %q, want 1000", l.c.CloseStatus, l.c.CloseReason)
	}
	l.isClosed = true
}

func (l *socketLevel) mutate(query, token string) {
	l.t.Helper()
	apptest.GraphQLAs(l.t, l.d.Addr, token, query, nil)
}

// connectionID finds the one connection of this case's runtime.
func (l *socketLevel) connectionID() string {
	l.t.Helper()
	var ids []string
	for c, err := range l.d.Store.Connections(context.Background()) {
		if err != nil {
			l.fatalf("%v", err)
		}
		ids = append(ids, c.ID)
	}
	if len(ids) != 1 {
		l.fatalf("connections %v, want exactly one", ids)
	}
	return ids[0]
}

func (l *socketLevel) active(ops []wantOp) {
	l.t.Helper()
	id := l.connectionID()
	deadline := time.Now().Add(socketTimeout)
	for {
		subs := l.st.active(id)
		if sameOps(subs, ops) {
			return
		}
		if time.Now().After(deadline) {
			l.fatalf("active operations %s, want %v", describeOps(subs), ops)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *socketLevel) fault(what string) { l.st.setFault(what) }

// invalidate invokes the handler with the event as its source would: an EventBridge rule's event
// through the runtime's Invoke, an SQS batch or SNS notification through the runtime's invoke
// endpoint (where `bootstrap publish` sends events in dev).
func (l *socketLevel) invalidate(source string, payload []byte) {
	l.t.Helper()
	var out []byte
	var err error
	if source == viaEventBridge {
		out, err = l.d.Invoke(context.Background(), payload)
	} else {
		var resp *http.Response
		resp, err = http.Post("http://"+l.d.Addr+facts.InvokePath, "application/json", bytes.NewReader(payload))
		if err == nil {
			out, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("invoke endpoint answered %s", resp.Status)
			}
		}
	}
	if err != nil || string(out) != invalidationAnswer(source) {
		l.fatalf("invalidation from %s answered %s, %v", source, out, err)
	}
}

// refusedByGateway expects the runtime to close the connection with 1003, sending nothing.
func (l *socketLevel) refusedByGateway() {
	l.t.Helper()
	select {
	case <-l.c.Closed():
	case <-time.After(socketTimeout):
		l.fatalf("a binary frame did not close the connection within %v", socketTimeout)
	}
	if m, ok := l.c.TryNext(10 * time.Millisecond); ok {
		l.fatalf("got %s, want the close", m)
	}
	if l.c.CloseStatus != websocket.StatusUnsupportedData {
		l.fatalf("a binary frame closed the connection with %d %q, want 1003", l.c.CloseStatus, l.c.CloseReason)
	}
	l.isClosed = true
}

func (l *socketLevel) finish() {
	l.t.Helper()
	if l.isClosed {
		return
	}
	if m, ok := l.c.TryNext(100 * time.Millisecond); ok {
		l.fatalf("unexpected %s", m)
	}
}

// TestConformanceTransportWS runs the graphql-transport-ws table.
func TestConformanceTransportWS(t *testing.T) { runTable(t, protoTransport, transportCases()) }

// TestConformanceLegacyWS runs the legacy graphql-ws table.
func TestConformanceLegacyWS(t *testing.T) { runTable(t, protoLegacy, legacyCases()) }
