package local_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/coder/websocket"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/rs/zerolog"
)

// logLines collects a logger's JSON lines.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *logLines) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.lines = append(l.lines, m)
	l.mu.Unlock()
	return len(p), nil
}

// requests returns the access lines (those with a status) at level or above, as "message status".
func (l *logLines) requests(level zerolog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.lines {
		lvl, _ := zerolog.ParseLevel(m["level"].(string))
		if _, ok := m["status"]; ok && lvl >= level {
			if _, ok := m["ms"].(float64); !ok {
				continue
			}
			out = append(out, fmt.Sprint(m["message"], " ", m["status"]))
		}
	}
	return out
}

// serveLogged is serve with the runtime's log (JSON, debug) going to lines.
func serveLogged(t *testing.T, cfg local.Config, lines *logLines) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log = zerolog.New(lines).Level(zerolog.DebugLevel)
	rt := local.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestOneLinePerRequest: every HTTP request, and every WebSocket route invocation, gets exactly one
// info line with its status and duration (the connection id for routes); a failed invocation's
// line is the error line, not a second one; the handler's own posts are at debug level.
func TestOneLinePerRequest(t *testing.T) {
	h := &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		switch route(ev) {
		case "$connect", "$default", "$disconnect":
			if ev["body"] == "fail" {
				return nil, errors.New("handler crashed")
			}
			return echo(ev, raw)
		case "POST /graphql":
			return json.Marshal(events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: `{"data":{}}`})
		}
		return nil, errors.New("GET crashed")
	}}
	var lines logLines
	addr := serveLogged(t, local.Config{Handler: h, Pages: pages{}}, &lines)

	post := func() {
		resp, err := http.Post("http://"+addr+"/graphql", "application/json", strings.NewReader(`{"query":"{a}"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	post()
	if got := lines.requests(zerolog.InfoLevel); len(got) != 1 || got[0] != "POST /graphql 200" {
		t.Fatalf("one POST: access lines %q, want exactly [POST /graphql 200]", got)
	}
	lines.mu.Lock()
	one := lines.lines[len(lines.lines)-1]
	lines.mu.Unlock()
	if one["level"] != "info" || one["message"] != "POST /graphql" {
		t.Errorf("the request line %v", one)
	}

	for _, path := range []string{"/page", "/graphql?query=%7Ba%7D", "/nowhere"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := []string{"POST /graphql 200", "GET /page 200", "GET /graphql 500", "GET /nowhere 404"}
	if got := lines.requests(zerolog.InfoLevel); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("access lines %q, want %q", got, want)
	}
	if errs := lines.requests(zerolog.ErrorLevel); len(errs) != 1 || errs[0] != "GET /graphql 500" {
		t.Errorf("error lines %q: the failed invocation's line is its one error line", errs)
	}

	// A WebSocket session: $connect, two frames (one failing), the management API, $disconnect.
	c, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Write(ctx, websocket.MessageText, []byte("hello"))
	read(t, c)
	c.Write(ctx, websocket.MessageText, []byte("fail"))
	read(t, c) // API Gateway's "Internal server error" message
	var connID string
	lines.mu.Lock()
	for _, m := range lines.lines {
		if m["message"] == "$connect" {
			connID, _ = m["conn"].(string)
		}
	}
	lines.mu.Unlock()
	if connID == "" {
		t.Fatal("the $connect line names no connection")
	}
	client := apigatewaymanagementapi.NewFromConfig(aws.Config{Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}, func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String("http://" + addr)
	})
	if _, err := client.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: &connID, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	read(t, c)
	c.Close(websocket.StatusNormalClosure, "")
	waitFor(t, func() bool { return len(lines.requests(zerolog.InfoLevel)) == len(want)+4 })
	time.Sleep(50 * time.Millisecond) // nothing more comes
	want = append(want, "$connect 200", "$default 200", "$default 502", "$disconnect 200")
	if got := lines.requests(zerolog.InfoLevel); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("access lines %q, want %q", got, want)
	}
	lines.mu.Lock()
	defer lines.mu.Unlock()
	for _, m := range lines.lines {
		if r, _ := m["message"].(string); strings.HasPrefix(r, "$") && m["conn"] != connID {
			t.Errorf("route line %v does not name the connection %s", m, connID)
		}
		if m["message"] == "$default" && m["level"] == "error" && m["error"] != "handler crashed" {
			t.Errorf("the failed route's line: %v", m)
		}
		if p, _ := m["message"].(string); strings.Contains(p, " /@connections/") && m["level"] != "debug" {
			t.Errorf("a management API request logged at %v, want debug: %v", m["level"], m)
		}
	}
	var posts int
	for _, m := range lines.lines {
		if m["message"] == "POST /@connections/"+connID {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("%d debug lines for the one management API post, want 1", posts)
	}
}
