package local_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/coder/websocket"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/rs/zerolog"
)

// TestRoundTripServesInProcess: the management API client with the runtime as its transport (as
// `dev` wires it) posts, describes and closes connections with the answers the network gives:
// the frame reaches the socket byte for byte, an unknown connection is gone, a message over the
// limit is too large, a request signed with other keys, for another Region or not at all is
// forbidden. The one documented difference: a request signed with the right access key and a
// wrong secret is accepted in process (the signature is not recomputed) and refused from the
// network.
func TestRoundTripServesInProcess(t *testing.T) {
	rt, addr, c, id := registeredSocket(t, local.Config{Log: zerolog.New(zerolog.TestWriter{T: t}).Level(zerolog.WarnLevel), MaxMessage: 1024,
		Credentials: aws.Credentials{AccessKeyID: "key", SecretAccessKey: "secret"}, Region: "us-east-1"})

	client := func(key, secret, region string, transport http.RoundTripper) *mgmt.Client {
		var creds aws.CredentialsProvider = credentials.NewStaticCredentialsProvider(key, secret, "")
		if key == "" {
			creds = aws.AnonymousCredentials{}
		}
		cl, err := mgmt.New(mgmt.Config{Endpoint: "http://" + addr, Region: region, Credentials: creds, Transport: transport,
			Retry: mgmt.Retry{MaxAttempts: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()

	inproc := client("key", "secret", "us-east-1", rt)
	frame := `{"id":"1","type":"next","payload":{"data":{"x":"é \u0000 \"q\""}}}`
	if err := inproc.Post(pctx, id, []byte(frame)); err != nil {
		t.Fatalf("post in process: %v", err)
	}
	if got := read(t, c); got != frame {
		t.Fatalf("the socket received %q, want %q", got, frame)
	}
	if err := inproc.Post(pctx, "nobody=", []byte("x")); !errors.Is(err, mgmt.ErrGone) {
		t.Errorf("post to an unknown connection: %v, want ErrGone", err)
	}
	if err := inproc.Post(pctx, id, bytes.Repeat([]byte("x"), 1025)); !errors.Is(err, mgmt.ErrTooLarge) {
		t.Errorf("post over MaxMessage: %v, want ErrTooLarge", err)
	}
	info, err := inproc.Get(pctx, id)
	if err != nil || info.ConnectedAt.IsZero() || info.SourceIP != "127.0.0.1" {
		t.Errorf("get in process: %+v, %v", info, err)
	}

	for name, cl := range map[string]*mgmt.Client{
		"another access key": client("other", "secret", "us-east-1", rt),
		"another Region":     client("key", "secret", "eu-west-1", rt),
		"unsigned":           client("", "", "us-east-1", rt),
	} {
		if err := cl.Post(pctx, id, []byte("x")); !errors.Is(err, mgmt.ErrForbidden) {
			t.Errorf("%s, in process: %v, want ErrForbidden", name, err)
		}
	}
	if err := client("key", "wrong", "us-east-1", nil).Post(pctx, id, []byte("net")); !errors.Is(err, mgmt.ErrForbidden) {
		t.Errorf("a wrong secret over the network: %v, want ErrForbidden", err)
	}
	if err := client("key", "wrong", "us-east-1", rt).Post(pctx, id, []byte("inproc")); err != nil {
		t.Errorf("a wrong secret in process: %v, want accepted (the signature is not recomputed in process)", err)
	}
	if got := read(t, c); got != "inproc" {
		t.Errorf("the socket received %q, want only the in-process post", got)
	}

	// A body is closed once RoundTrip returns; an upgrade is refused.
	body := &closeRecorder{Reader: strings.NewReader("")}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/nothing", body)
	resp, err := rt.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusNotFound || !body.closed {
		t.Errorf("GET /nothing in process: %v, %v, body closed %v; want 404 and the body closed", resp, err, body.closed)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+addr+"/graphql", nil)
	req.Header.Set("Upgrade", "websocket")
	if _, err := rt.RoundTrip(req); err == nil {
		t.Error("a WebSocket upgrade in process was not refused")
	}

	if err := inproc.Delete(pctx, id); err != nil {
		t.Fatalf("delete in process: %v", err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if _, _, err := c.Read(rctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after DELETE in process the socket read %v, want a 1000 close", err)
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// registeredSocket serves a runtime of cfg whose handler accepts graphql-transport-ws and learns a
// connection's id from its first message, connects a client and sends that message; it returns
// the runtime, its address, the client and the client's connection id, once posts can reach it.
// The runtime stops and the client closes when the test ends.
func registeredSocket(tb testing.TB, cfg local.Config) (*local.Runtime, string, *websocket.Conn, string) {
	tb.Helper()
	var mu sync.Mutex
	var connID string
	cfg.Handler = &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		switch route(ev) {
		case "$connect":
			return wsResponse(200, map[string]string{"Sec-WebSocket-Protocol": "graphql-transport-ws"}, "")
		case "$default": // the socket is registered: posts reach it
			mu.Lock()
			connID = ev["requestContext"].(map[string]any)["connectionId"].(string)
			mu.Unlock()
		}
		return wsResponse(200, nil, "")
	}}
	rt, addr, _ := serveWith(tb, cfg, nil)

	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, _, err := websocket.Dial(dctx, "ws://"+addr+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	dcancel()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.CloseNow() })
	c.Write(context.Background(), websocket.MessageText, []byte("hello"))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		id := connID
		mu.Unlock()
		if id != "" {
			return rt, addr, c, id
		}
		if time.Now().After(deadline) {
			tb.Fatal("the socket was not registered")
		}
	}
}
