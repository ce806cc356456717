package local_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"
	"github.com/realtime-gql/lambdaws/internal/local"
)

// invokeFunc is a Lambda handler as a function, for tests that need the invocation's context.
type invokeFunc func(ctx context.Context, payload []byte) ([]byte, error)

func (f invokeFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

// connectionID learns a socket's id from the echo handler's events.
func connectionID(t *testing.T, h *handler) string {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.events[len(h.events)-1]["requestContext"].(map[string]any)["connectionId"].(string)
}

// TestManagementAPIRefusesUnsignedRequests: only requests signed with the runtime's credentials
// reach a socket. Unsigned (curl-like) requests, other credentials, another Region or service, a
// tampered body and an old signature all get 403 ForbiddenException; the socket hears nothing and
// stays open.
func TestManagementAPIRefusesUnsignedRequests(t *testing.T) {
	h := &handler{fn: echo}
	addr, _ := serve(t, local.Config{Handler: h})
	c, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	c.Write(context.Background(), websocket.MessageText, []byte("hi"))
	read(t, c)
	id := connectionID(t, h)
	base := "http://" + addr + "/@connections/" + id
	ctx := context.Background()

	signed := func(method, body string, creds aws.Credentials, service, region string, at time.Time) *http.Request {
		req, _ := http.NewRequest(method, base, strings.NewReader(body))
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), service, region, at); err != nil {
			t.Fatal(err)
		}
		return req
	}
	good := aws.Credentials{AccessKeyID: "a", SecretAccessKey: "b"}
	tampered := signed(http.MethodPost, `{"type":"next"}`, good, "execute-api", "local", time.Now())
	tampered.Body = io.NopCloser(strings.NewReader(`{"type":"evil"}`))
	for name, req := range map[string]*http.Request{
		"unsigned POST":   func() *http.Request { r, _ := http.NewRequest(http.MethodPost, base, strings.NewReader("x")); return r }(),
		"unsigned GET":    func() *http.Request { r, _ := http.NewRequest(http.MethodGet, base, nil); return r }(),
		"unsigned DELETE": func() *http.Request { r, _ := http.NewRequest(http.MethodDelete, base, nil); return r }(),
		"a forged header": func() *http.Request {
			r, _ := http.NewRequest(http.MethodDelete, base, nil)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=a/20260101/local/execute-api/aws4_request, SignedHeaders=host, Signature=00")
			return r
		}(),
		"another secret":      signed(http.MethodDelete, "", aws.Credentials{AccessKeyID: "a", SecretAccessKey: "guess"}, "execute-api", "local", time.Now()),
		"another access key":  signed(http.MethodDelete, "", aws.Credentials{AccessKeyID: "z", SecretAccessKey: "b"}, "execute-api", "local", time.Now()),
		"another Region":      signed(http.MethodDelete, "", good, "execute-api", "us-west-2", time.Now()),
		"another service":     signed(http.MethodDelete, "", good, "lambda", "local", time.Now()),
		"a signature 20m old": signed(http.MethodDelete, "", good, "execute-api", "local", time.Now().Add(-20*time.Minute)),
		"a tampered body":     tampered,
	} {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Amzn-ErrorType") != "ForbiddenException" {
			t.Errorf("%s: %d %q, want 403 ForbiddenException", name, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
		}
	}
	// The SDK client with other credentials is refused the same way.
	client := apigatewaymanagementapi.NewFromConfig(aws.Config{Region: "local", Credentials: credentials.NewStaticCredentialsProvider("a", "wrong", "")},
		func(o *apigatewaymanagementapi.Options) { o.BaseEndpoint = aws.String("http://" + addr) })
	_, err = client.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: &id, Data: []byte("x")})
	if forbidden := (*types.ForbiddenException)(nil); !errors.As(err, &forbidden) {
		t.Fatalf("SDK client with a wrong secret: %v, want ForbiddenException", err)
	}
	// Nothing reached the socket, which is still open; a correctly signed post arrives.
	if resp, err := http.DefaultClient.Do(signed(http.MethodPost, `{"type":"next"}`, good, "execute-api", "local", time.Now())); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("signed post: %v %v", resp, err)
	}
	if got := read(t, c); got != `{"type":"next"}` {
		t.Fatalf("the socket received %q first, want the signed post", got)
	}
}

// TestInflightPerConnection: one connection has at most MaxInflight frames in the handler; its
// further frames wait (they are answered later, none lost), and another connection is served
// meanwhile.
func TestInflightPerConnection(t *testing.T) {
	const limit = 3
	release := make(chan struct{})
	var inFlight, peak atomic.Int64
	h := invokeFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		var ev map[string]any
		_ = json.Unmarshal(payload, &ev)
		switch route(ev) {
		case "$connect":
			return wsResponse(200, map[string]string{"Sec-WebSocket-Protocol": "graphql-transport-ws"}, "")
		case "$default":
			body := ev["body"].(string)
			if body == "fast" {
				return wsResponse(200, nil, "fast")
			}
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			<-release
			return wsResponse(200, nil, body)
		}
		return wsResponse(200, nil, "")
	})
	addr, _ := serve(t, local.Config{Handler: h, MaxInflight: limit})
	flooder, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	const frames = 50
	go func() {
		for range frames {
			if flooder.Write(context.Background(), websocket.MessageText, []byte("slow")) != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for inFlight.Load() < limit && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // time for more to start, if the bound did not hold
	if got := peak.Load(); got != limit {
		t.Fatalf("%d frames of one connection in the handler at once, want %d", got, limit)
	}
	other, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	other.Write(context.Background(), websocket.MessageText, []byte("fast"))
	if got := read(t, other); got != "fast" || time.Since(start) > time.Second {
		t.Fatalf("another connection answered %q after %v", got, time.Since(start))
	}
	close(release)
	for i := range frames {
		if got := read(t, flooder); got != "slow" {
			t.Fatalf("frame %d answered %q", i, got)
		}
	}
	if got := peak.Load(); got != limit {
		t.Fatalf("peak %d, want %d", got, limit)
	}
}

// TestHTTPClientGoneCancelsTheInvocation: when the HTTP client goes away, the invocation's
// context is cancelled, so resolvers stop.
func TestHTTPClientGoneCancelsTheInvocation(t *testing.T) {
	cancelled := make(chan time.Duration, 1)
	h := invokeFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		start := time.Now()
		select {
		case <-ctx.Done():
			cancelled <- time.Since(start)
		case <-time.After(10 * time.Second):
			cancelled <- -1
		}
		return []byte(`{"statusCode":200,"body":"late"}`), nil
	})
	addr, _ := serve(t, local.Config{Handler: h})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/graphql", strings.NewReader(`{}`))
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the request was answered")
	}
	select {
	case d := <-cancelled:
		if d < 0 {
			t.Fatal("the invocation was not cancelled")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the invocation did not end within 5 s of the client leaving")
	}
}

// TestHTTPBodyLimit: a body over MaxHTTPBody is refused (413) without invoking the handler and
// without being read whole, by its Content-Length or, when it has none, as soon as reading passes
// the limit; a body of exactly the limit is passed on.
func TestHTTPBodyLimit(t *testing.T) {
	const limit = 1024
	var invoked atomic.Int64
	h := invokeFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		invoked.Add(1)
		return []byte(`{"statusCode":200,"body":"ok"}`), nil
	})
	addr, _ := serve(t, local.Config{Handler: h, MaxHTTPBody: limit})
	post := func(body io.Reader, length int64) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/graphql", body)
		req.ContentLength = length
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(bytes.NewReader(make([]byte, limit)), limit); code != 200 || invoked.Load() != 1 {
		t.Fatalf("at the limit: %d, invoked %d", code, invoked.Load())
	}
	// 10 MB declared, of which the client sends 64 KB and then nothing until it has its answer:
	// a runtime that read the body before refusing it would never answer.
	stalled := &stallingReader{n: 64 << 10, release: make(chan struct{})}
	start := time.Now()
	code := post(stalled, 10<<20)
	close(stalled.release)
	if code != http.StatusRequestEntityTooLarge || invoked.Load() != 1 || time.Since(start) > time.Second {
		t.Fatalf("10 MB by Content-Length: %d after %v, invoked %d", code, time.Since(start), invoked.Load())
	}
	if code := post(io.MultiReader(bytes.NewReader(make([]byte, limit+1))), -1); code != http.StatusRequestEntityTooLarge || invoked.Load() != 1 {
		t.Fatalf("one byte over, chunked: %d, invoked %d", code, invoked.Load())
	}
}

// stallingReader yields n zero bytes, then blocks until release is closed, then fails.
type stallingReader struct {
	n, read int
	release chan struct{}
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.read >= r.n {
		<-r.release
		return 0, errors.New("stalled body released")
	}
	k := min(len(p), r.n-r.read)
	clear(p[:k])
	r.read += k
	return k, nil
}

// TestCORSAtTheRuntime: the runtime answers an allowed origin's preflight itself, as API Gateway
// does, without invoking the handler, and replaces the handler's CORS headers with its own.
func TestCORSAtTheRuntime(t *testing.T) {
	var invoked atomic.Int64
	h := invokeFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		invoked.Add(1)
		return []byte(`{"statusCode":200,"headers":{"Access-Control-Allow-Origin":"https://wrong.example"},"body":"ok"}`), nil
	})
	addr, _ := serve(t, local.Config{Handler: h, CORSOrigins: []string{"https://app.example"}})
	req, _ := http.NewRequest(http.MethodOptions, "http://"+addr+"/graphql", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || invoked.Load() != 0 {
		t.Fatalf("preflight: %d %v, invoked %d", resp.StatusCode, resp.Header, invoked.Load())
	}
	req, _ = http.NewRequest(http.MethodPost, "http://"+addr+"/graphql", strings.NewReader(`{}`))
	req.Header.Set("Origin", "https://app.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app.example" {
		t.Fatalf("Access-Control-Allow-Origin %q, want the runtime's only", got)
	}
	// Another origin is allowed nothing: its preflight and its request carry no CORS headers,
	// not even the handler's.
	req, _ = http.NewRequest(http.MethodOptions, "http://"+addr+"/graphql", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("preflight of another origin: Access-Control-Allow-Origin %q", got)
	}
	req, _ = http.NewRequest(http.MethodPost, "http://"+addr+"/graphql", strings.NewReader(`{}`))
	req.Header.Set("Origin", "https://evil.example")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 0 {
		t.Fatalf("request of another origin: Access-Control-Allow-Origin %q", got)
	}
}
