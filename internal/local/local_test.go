package local_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/rs/zerolog"
)

// handler is a scripted Lambda handler: it records every event and answers with fn.
type handler struct {
	mu     sync.Mutex
	events []map[string]any
	fn     func(ev map[string]any, raw []byte) ([]byte, error)
}

func (h *handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev map[string]any
	json.Unmarshal(payload, &ev)
	h.mu.Lock()
	h.events = append(h.events, ev)
	fn := h.fn
	h.mu.Unlock()
	return fn(ev, payload)
}

func (h *handler) routes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, ev := range h.events {
		if rc, ok := ev["requestContext"].(map[string]any); ok {
			if rk, ok := rc["routeKey"].(string); ok {
				out = append(out, rk)
			}
		}
	}
	return out
}

func route(ev map[string]any) string {
	rc, _ := ev["requestContext"].(map[string]any)
	rk, _ := rc["routeKey"].(string)
	return rk
}

func wsResponse(status int, headers map[string]string, body string) ([]byte, error) {
	return json.Marshal(events.APIGatewayProxyResponse{StatusCode: status, Headers: headers, Body: body})
}

// echo accepts graphql-transport-ws and answers every frame with its body.
func echo(ev map[string]any, _ []byte) ([]byte, error) {
	switch route(ev) {
	case "$connect":
		return wsResponse(200, map[string]string{"Sec-WebSocket-Protocol": "graphql-transport-ws"}, "")
	case "$default":
		return wsResponse(200, nil, "echo:"+ev["body"].(string))
	}
	return wsResponse(200, nil, "")
}

func serve(t *testing.T, cfg local.Config) (addr string, stop func()) {
	t.Helper()
	cfg.Log = zerolog.New(zerolog.TestWriter{T: t}).Level(zerolog.WarnLevel)
	_, addr, stop = serveWith(t, withTestCredentials(cfg), nil)
	return addr, stop
}

// withTestCredentials gives cfg, when it has none, the credentials of the tests' management API
// clients.
func withTestCredentials(cfg local.Config) local.Config {
	if cfg.Credentials.AccessKeyID == "" {
		cfg.Credentials, cfg.Region = aws.Credentials{AccessKeyID: "a", SecretAccessKey: "b"}, "local"
	}
	return cfg
}

// serveWith runs a runtime of cfg on a fresh loopback listener (wrapped by wrap when set) until
// stop is called or the test ends, and reports an error of Serve.
func serveWith(tb testing.TB, cfg local.Config, wrap func(net.Listener) net.Listener) (rt *local.Runtime, addr string, stop func()) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr = ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	rt = local.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("Serve: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	return rt, addr, stop
}

func dial(t *testing.T, addr string, protos ...string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/graphql", &websocket.DialOptions{Subprotocols: protos})
	if c != nil {
		c.SetReadLimit(1 << 20)
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(data)
}

func TestHandshakeFollowsConnectResponse(t *testing.T) {
	h := &handler{fn: func(ev map[string]any, _ []byte) ([]byte, error) {
		if route(ev) == "$connect" {
			hdrs := ev["headers"].(map[string]any)
			if hdrs["Sec-Websocket-Protocol"] == "nope" {
				return wsResponse(403, nil, "forbidden")
			}
			return wsResponse(200, map[string]string{"sec-websocket-protocol": "graphql-ws"}, "")
		}
		return echo(ev, nil)
	}}
	addr, _ := serve(t, local.Config{Handler: h})

	_, resp, err := dial(t, addr, "nope")
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("rejected handshake: err %v resp %v, want status 403", err, resp)
	}
	c, _, err := dial(t, addr, "graphql-transport-ws", "graphql-ws")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subprotocol() != "graphql-ws" {
		t.Fatalf("subprotocol %q, want the one $connect returned", c.Subprotocol())
	}
	// The $connect event carries the query string and headers as API Gateway sends them.
	h.mu.Lock()
	ev := h.events[0]
	h.mu.Unlock()
	rc := ev["requestContext"].(map[string]any)
	if rc["eventType"] != "CONNECT" || rc["connectionId"] == "" || rc["stage"] != "local" || rc["connectedAt"] == nil {
		t.Fatalf("$connect requestContext = %v", rc)
	}
}

func TestFramesBecomeConcurrentDefaultInvocations(t *testing.T) {
	release := make(chan struct{})
	started := make(chan string, 2)
	h := &handler{fn: func(ev map[string]any, _ []byte) ([]byte, error) {
		if route(ev) != "$default" {
			return echo(ev, nil)
		}
		body := ev["body"].(string)
		started <- body
		if body == "first" {
			<-release // the first frame's invocation waits for the second to start
		}
		return wsResponse(200, nil, "done:"+body)
	}}
	addr, _ := serve(t, local.Config{Handler: h})
	c, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Write(ctx, websocket.MessageText, []byte("first"))
	c.Write(ctx, websocket.MessageText, []byte("second"))
	for i := 0; i < 2; i++ {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("the second frame was not invoked while the first was still running")
		}
	}
	if got := read(t, c); got != "done:second" {
		t.Fatalf("first reply %q, want the second frame's", got)
	}
	close(release)
	if got := read(t, c); got != "done:first" {
		t.Fatalf("second reply %q", got)
	}
}

func TestManagementAPIWithTheRealClient(t *testing.T) {
	h := &handler{fn: echo}
	addr, _ := serve(t, local.Config{Handler: h, MaxMessage: 1024})
	c, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	// Learn the connection id from a $default event.
	c.Write(context.Background(), websocket.MessageText, []byte("hi"))
	read(t, c)
	h.mu.Lock()
	id := h.events[len(h.events)-1]["requestContext"].(map[string]any)["connectionId"].(string)
	h.mu.Unlock()

	client := apigatewaymanagementapi.NewFromConfig(aws.Config{Region: "local",
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")}, func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String("http://" + addr)
	})
	ctx := context.Background()
	if _, err := client.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: &id, Data: []byte(`{"type":"next"}`)}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got != `{"type":"next"}` {
		t.Fatalf("posted message arrived as %q", got)
	}
	info, err := client.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: &id})
	if err != nil || info.ConnectedAt == nil || info.Identity == nil || *info.Identity.SourceIp != "127.0.0.1" {
		t.Fatalf("GetConnection = %+v, %v", info, err)
	}
	_, err = client.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String("unknown="), Data: []byte("x")})
	if gone := (*types.GoneException)(nil); !errors.As(err, &gone) {
		t.Fatalf("post to an unknown connection: %v, want GoneException", err)
	}
	_, err = client.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: &id, Data: make([]byte, 1025)})
	if tooBig := (*types.PayloadTooLargeException)(nil); !errors.As(err, &tooBig) {
		t.Fatalf("oversized post: %v, want PayloadTooLargeException", err)
	}
	if _, err := client.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: &id}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, _, err := c.Read(rctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after DeleteConnection the client saw %v, want a 1000 close", err)
	}
	_, err = client.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: &id, Data: []byte("x")})
	if gone := (*types.GoneException)(nil); !errors.As(err, &gone) {
		t.Fatalf("post after delete: %v, want GoneException", err)
	}
	waitFor(t, func() bool { r := h.routes(); return r[len(r)-1] == "$disconnect" })
}

func TestOversizedMessageClosesWith1009(t *testing.T) {
	h := &handler{fn: echo}
	addr, _ := serve(t, local.Config{Handler: h, MaxMessage: 1024})
	c, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	c.Write(context.Background(), websocket.MessageText, []byte(strings.Repeat("x", 2000)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("read after an oversized message: %v, want close 1009", err)
	}
	waitFor(t, func() bool { r := h.routes(); return len(r) > 0 && r[len(r)-1] == "$disconnect" })
	for _, r := range h.routes() {
		if r == "$default" {
			t.Fatal("an oversized message reached the handler")
		}
	}
}

func TestShutdownDisconnectsEverySocket(t *testing.T) {
	h := &handler{fn: echo}
	addr, stop := serve(t, local.Config{Handler: h})
	var conns []*websocket.Conn
	for range 3 {
		c, _, err := dial(t, addr, "graphql-transport-ws")
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		go c.Read(context.Background()) // a real client reads, and so answers the close
	}
	stop()
	n := 0
	for _, r := range h.routes() {
		if r == "$disconnect" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d $disconnect invocations at shutdown, want 3", n)
	}
}

// TestShutdownDoesNotWaitForSilentConnections: a connection that was accepted but never sent a
// request (a browser's preconnect, a client that dialled and went quiet) does not hold the
// shutdown back: net/http's Shutdown alone waits up to 5 s for such a connection.
func TestShutdownDoesNotWaitForSilentConnections(t *testing.T) {
	addr, stop := serve(t, local.Config{Handler: &handler{fn: echo}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // accepted
	start := time.Now()
	stop()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("shutdown took %v with one silent connection open, want well under net/http's 5 s", took)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the silent connection is still open after shutdown: %v", err)
	}
}

func TestHTTPAPIEvent(t *testing.T) {
	h := &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		var req events.APIGatewayV2HTTPRequest
		json.Unmarshal(raw, &req)
		if req.Version != "2.0" || req.RequestContext.HTTP.Method != "POST" || req.RawPath != "/graphql" ||
			req.Headers["content-type"] != "application/json" || req.RawQueryString != "a=1&b=2" || req.Body != `{"query":"{a}"}` {
			return json.Marshal(events.APIGatewayV2HTTPResponse{StatusCode: 500, Body: fmt.Sprintf("bad event %+v", req)})
		}
		return json.Marshal(events.APIGatewayV2HTTPResponse{StatusCode: 201, Headers: map[string]string{"X-Test": "yes"},
			Cookies: []string{"a=b"}, Body: "created"})
	}}
	addr, _ := serve(t, local.Config{Handler: h})
	resp, err := http.Post("http://"+addr+"/graphql?a=1&b=2", "application/json", strings.NewReader(`{"query":"{a}"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 100)
	n, _ := resp.Body.Read(buf)
	if resp.StatusCode != 201 || resp.Header.Get("X-Test") != "yes" || resp.Header.Get("Set-Cookie") != "a=b" || string(buf[:n]) != "created" {
		t.Fatalf("response %d %v %q", resp.StatusCode, resp.Header, buf[:n])
	}
}

// newChangeLog returns an in-memory change log holding records 1 to n.
func newChangeLog(n int) *local.MemoryLog {
	l := local.NewMemoryLog()
	for range n {
		appendRecord(l)
	}
	return l
}

// appendRecord appends a minimal stream record to l.
func appendRecord(l *local.MemoryLog) {
	l.Append(func(seq uint64) (json.RawMessage, error) {
		return json.RawMessage(fmt.Sprintf(`{"eventSource":"aws:dynamodb","dynamodb":{"SequenceNumber":"%d"}}`, seq)), nil
	})
}

// checkpoint is the poller's position in l.
func checkpoint(l *local.MemoryLog) uint64 {
	cp, _ := l.Checkpoint(context.Background(), local.StreamCheckpoint)
	return cp
}

// streamHandler records the sequence numbers of each batch and answers with fn.
type streamHandler struct {
	mu      sync.Mutex
	batches [][]string
	fn      func(seqs []string) ([]byte, error)
}

func (s *streamHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	var seqs []string
	for _, r := range ev.Records {
		seqs = append(seqs, r.Change.SequenceNumber)
	}
	s.mu.Lock()
	s.batches = append(s.batches, seqs)
	s.mu.Unlock()
	return s.fn(seqs)
}

func (s *streamHandler) seen() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.batches)
}

func fail(seq string) ([]byte, error) {
	return json.Marshal(events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: seq}}})
}

func ok() ([]byte, error) { return []byte(`{"batchItemFailures":[]}`), nil }

func TestStreamBatchesInOrderAndCheckpoints(t *testing.T) {
	log := newChangeLog(5)
	log.SetCheckpoint(context.Background(), local.StreamCheckpoint, 2) // resumes after the stored checkpoint
	h := &streamHandler{fn: func([]string) ([]byte, error) { return ok() }}
	serve(t, local.Config{Handler: h, Stream: log, BatchSize: 2, PollInterval: time.Hour})
	waitFor(t, func() bool { return checkpoint(log) == 5 })
	appendRecord(log) // woken at once, not after a poll interval
	waitFor(t, func() bool { return checkpoint(log) == 6 })
	if got := h.seen(); got != "[[3 4] [5] [6]]" {
		t.Fatalf("batches %s", got)
	}
}

func TestStreamRetriesFromTheReportedRecord(t *testing.T) {
	log := newChangeLog(5)
	var mu sync.Mutex
	failures := 2
	h := &streamHandler{fn: func(seqs []string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if seqs[0] <= "3" && seqs[len(seqs)-1] >= "3" && failures > 0 {
			failures--
			return fail("3")
		}
		return ok()
	}}
	serve(t, local.Config{Handler: h, Stream: log, RetryBackoff: time.Millisecond})
	waitFor(t, func() bool { return checkpoint(log) == 5 })
	// 1 and 2 succeed and are never sent again; 3 is retried from, twice.
	if got := h.seen(); got != "[[1 2 3 4 5] [3 4 5] [3 4 5]]" {
		t.Fatalf("batches %s", got)
	}
}

func TestStreamSkipsAPoisonRecordAfterMaxRetries(t *testing.T) {
	log := newChangeLog(3)
	h := &streamHandler{fn: func(seqs []string) ([]byte, error) {
		if seqs[0] == "2" {
			return fail("2")
		}
		if seqs[0] == "1" {
			return fail("2")
		}
		return ok()
	}}
	serve(t, local.Config{Handler: h, Stream: log, MaxRetries: 3, RetryBackoff: time.Millisecond})
	waitFor(t, func() bool { return checkpoint(log) == 3 })
	if got := h.seen(); got != "[[1 2 3] [2 3] [2 3] [2 3] [3]]" {
		t.Fatalf("batches %s", got)
	}
}

func TestStreamRetriesTheWholeBatchOnFunctionError(t *testing.T) {
	log := newChangeLog(2)
	var mu sync.Mutex
	calls := 0
	h := &streamHandler{fn: func(seqs []string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls == 1 {
			return nil, errors.New("function crashed")
		}
		return ok()
	}}
	serve(t, local.Config{Handler: h, Stream: log, RetryBackoff: time.Millisecond})
	waitFor(t, func() bool { return checkpoint(log) == 2 })
	if got := h.seen(); got != "[[1 2] [1 2]]" {
		t.Fatalf("batches %s", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFrameLimit(t *testing.T) {
	h := &handler{fn: echo}
	addr, _ := serve(t, local.Config{Handler: h, MaxFrame: 32 * 1024, MaxMessage: 128 * 1024})
	ctx := context.Background()

	// A 100 KB message in frames of 25 KB is within both limits.
	c, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat("a", 25*1024))
	for range 4 {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if got := read(t, c); len(got) != len("echo:")+100*1024 {
		t.Fatalf("fragmented message echoed as %d bytes", len(got))
	}

	// One 40 KB frame is over the frame limit: closed with 1009, never invoked.
	c2, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	c2.Write(ctx, websocket.MessageText, []byte(strings.Repeat("b", 40*1024)))
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, _, err := c2.Read(rctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("after a 40 KB frame: %v, want close 1009", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range h.events {
		if b, _ := ev["body"].(string); strings.HasPrefix(b, "bbb") {
			t.Fatal("the oversized frame reached the handler")
		}
	}
}

func TestIdleTimeoutAndMaxDuration(t *testing.T) {
	h := &handler{fn: echo}
	addr, _ := serve(t, local.Config{Handler: h, IdleTimeout: 300 * time.Millisecond, MaxDuration: 900 * time.Millisecond})
	ctx := context.Background()
	// The runtime counts from each connection's acceptance, which follows this instant: taken
	// after the dials, it could be later than the runtime's and a close at 900 ms look early.
	start := time.Now()
	idle, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	busy, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	idleClosed := make(chan time.Duration, 1)
	go func() {
		_, _, err := idle.Read(ctx)
		if websocket.CloseStatus(err) == websocket.StatusGoingAway {
			idleClosed <- time.Since(start)
		}
		close(idleClosed)
	}()
	// The busy client keeps sending, so only the maximum duration closes it.
	busyClosed := make(chan time.Duration, 1)
	go func() {
		for {
			_, _, err := busy.Read(ctx)
			if err != nil {
				if websocket.CloseStatus(err) == websocket.StatusGoingAway {
					busyClosed <- time.Since(start)
				}
				close(busyClosed)
				return
			}
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var idleAt, busyAt time.Duration
	for idleAt == 0 || busyAt == 0 {
		select {
		case d, ok := <-idleClosed:
			if !ok && idleAt == 0 {
				t.Fatal("idle connection closed without 1001")
			}
			if ok {
				idleAt = d
			}
		case d, ok := <-busyClosed:
			if !ok && busyAt == 0 {
				t.Fatal("busy connection closed without 1001")
			}
			if ok {
				busyAt = d
			}
		case <-tick.C:
			busy.Write(ctx, websocket.MessageText, []byte("keepalive"))
		case <-time.After(5 * time.Second):
			t.Fatal("connections not closed")
		}
	}
	if idleAt < 250*time.Millisecond || idleAt > 800*time.Millisecond {
		t.Fatalf("idle connection closed after %v, want about 300ms", idleAt)
	}
	if busyAt < 900*time.Millisecond {
		t.Fatalf("busy connection closed after %v, before the maximum duration", busyAt)
	}
	waitFor(t, func() bool {
		n := 0
		for _, r := range h.routes() {
			if r == "$disconnect" {
				n++
			}
		}
		return n == 2
	})
}

func TestScheduledEvents(t *testing.T) {
	var mu sync.Mutex
	var scheduled []map[string]any
	h := &handler{fn: func(ev map[string]any, _ []byte) ([]byte, error) {
		if ev["source"] == "aws.events" {
			mu.Lock()
			scheduled = append(scheduled, ev)
			mu.Unlock()
			return []byte("{}"), nil
		}
		return echo(ev, nil)
	}}
	serve(t, local.Config{Handler: h, ScheduleInterval: 30 * time.Millisecond})
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(scheduled) >= 3 })
	mu.Lock()
	defer mu.Unlock()
	if scheduled[0]["detail-type"] != "Scheduled Event" || scheduled[0]["id"] == scheduled[1]["id"] {
		t.Fatalf("scheduled event = %v", scheduled[0])
	}
}

// TestEveryInvocationHasARequestID: as on Lambda, each invocation's context carries a
// lambdacontext with a request id of its own, so the handler's logs name the invocation.
func TestEveryInvocationHasARequestID(t *testing.T) {
	var mu sync.Mutex
	ids := map[string]string{} // request id → route
	h := &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		if route(ev) == "POST /graphql" {
			return json.Marshal(events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "{}"})
		}
		return echo(ev, raw)
	}}
	rec := &recordingHandler{next: h}
	rec.seen = func(id, what string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, dup := ids[id]; dup || id == "" {
			t.Errorf("%s invoked with request id %q (already used by %s)", what, id, prev)
		}
		ids[id] = what
	}
	addr, stop := serve(t, local.Config{Handler: rec})
	c, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	c.Write(context.Background(), websocket.MessageText, []byte("hi"))
	read(t, c)
	resp, err := http.Post("http://"+addr+"/graphql", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.Close(websocket.StatusNormalClosure, "")
	stop()
	mu.Lock()
	defer mu.Unlock()
	routes := map[string]bool{}
	for _, what := range ids {
		routes[what] = true
	}
	for _, want := range []string{"$connect", "$default", "$disconnect", "POST /graphql"} {
		if !routes[want] {
			t.Errorf("no invocation of %s seen (saw %v)", want, ids)
		}
	}
}

// recordingHandler reports the lambdacontext request id of every invocation.
type recordingHandler struct {
	next *handler
	seen func(id, what string)
}

func (r *recordingHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev map[string]any
	json.Unmarshal(payload, &ev)
	what := route(ev)
	id := ""
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		id = lc.AwsRequestID
	}
	r.seen(id, what)
	return r.next.Invoke(ctx, payload)
}

// TestNoInvocationOutlivesServe: Serve returns only once every invocation it started has
// returned; one that outlasts the shutdown grace has its context cancelled first.
func TestNoInvocationOutlivesServe(t *testing.T) {
	started := make(chan struct{})
	var returned atomic.Bool
	h := &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		return echo(ev, raw)
	}}
	slow := &ctxHandler{fn: func(ctx context.Context, payload []byte) ([]byte, error) {
		var ev map[string]any
		json.Unmarshal(payload, &ev)
		if route(ev) != "POST /graphql" {
			return h.Invoke(ctx, payload)
		}
		close(started)
		<-ctx.Done() // a handler that runs until its context ends
		time.Sleep(50 * time.Millisecond)
		returned.Store(true)
		return nil, ctx.Err()
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rt := local.New(local.Config{Handler: slow, ShutdownGrace: 100 * time.Millisecond,
		Log: zerolog.New(zerolog.TestWriter{T: t}).Level(zerolog.ErrorLevel)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, ln) }()
	go http.Post("http://"+ln.Addr().String()+"/graphql", "application/json", strings.NewReader(`{}`))
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the HTTP invocation did not start")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its grace period")
	}
	if !returned.Load() {
		t.Fatal("Serve returned while an invocation was still running")
	}
}

// ctxHandler is a Handler that sees each invocation's context.
type ctxHandler struct {
	fn func(ctx context.Context, payload []byte) ([]byte, error)
}

func (h *ctxHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return h.fn(ctx, payload)
}
