package local_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/coder/websocket"
	"github.com/realtime-gql/lambdaws/internal/facts"
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
	cfg.Log = zerolog.New(lines).Level(zerolog.DebugLevel)
	_, addr, _ := serveWith(t, withTestCredentials(cfg), nil)
	return addr
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
	client := apigatewaymanagementapi.NewFromConfig(aws.Config{Region: "local",
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")}, func(o *apigatewaymanagementapi.Options) {
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

// line returns the one access line of a request ("METHOD /path"), failing unless there is exactly
// one line about it.
func (l *logLines) line(t *testing.T, request string) map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var found []map[string]any
	for _, m := range l.lines {
		if m["message"] == request {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d lines for %s, want 1: %v", len(found), request, l.lines)
	}
	return found[0]
}

// reset forgets the lines so far.
func (l *logLines) reset() {
	l.mu.Lock()
	l.lines = nil
	l.mu.Unlock()
}

// TestRequestLinesOfInvokesAndRefusals: the invoke endpoint's requests get their line like any
// other (info; error, with the function error, when the handler fails; 413 over the bound), and a
// request the runtime refuses gets one warn line saying why, and no other line: a management API
// request not signed with the runtime's credentials, and a cross-origin request (preflight or not)
// from an origin CORS_ORIGINS does not list. Allowed and same-origin requests are plain info lines.
func TestRequestLinesOfInvokesAndRefusals(t *testing.T) {
	h := &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		switch {
		case ev["detail-type"] == "test.fail":
			return nil, errors.New("the event asked to fail")
		case ev["detail-type"] != nil:
			return []byte(`null`), nil
		}
		return json.Marshal(events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: `{"data":{}}`})
	}}
	var lines logLines
	addr := serveLogged(t, local.Config{Handler: h, CORSOrigins: []string{"https://app.example"}}, &lines)
	do := func(method, path, origin string, header map[string]string, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	check := func(request string, status float64, level, field, contains string) {
		t.Helper()
		m := lines.line(t, request)
		if m["status"] != status || m["level"] != level {
			t.Errorf("%s: line %v, want status %v at %s", request, m, status, level)
		}
		if _, ok := m["ms"].(float64); !ok {
			t.Errorf("%s: line %v has no duration", request, m)
		}
		if got, _ := m[field].(string); field != "" && !strings.Contains(got, contains) {
			t.Errorf("%s: line %v, want %s with %q", request, m, field, contains)
		}
		if field != "refused" && m["refused"] != nil {
			t.Errorf("%s: line %v says it was refused", request, m)
		}
		lines.reset()
	}
	invoke := "POST " + facts.InvokePath

	do("POST", facts.InvokePath, "", nil, `{"version":"0","id":"e1","detail-type":"chat.announcement","source":"s","detail":{}}`)
	check(invoke, 200, "info", "", "")
	do("POST", facts.InvokePath, "", nil, `{"version":"0","id":"e2","detail-type":"test.fail","source":"s","detail":{}}`)
	check(invoke, 200, "error", "error", "function error: the event asked to fail")
	do("POST", facts.InvokePath, "", nil, strings.Repeat(" ", facts.MaxInvokePayload+1))
	check(invoke, 413, "info", "", "")

	// The management API, unsigned: 403 and one warn line saying why.
	if status := do("POST", "/@connections/c1", "", nil, "x"); status != http.StatusForbidden {
		t.Fatalf("an unsigned post answered %d", status)
	}
	check("POST /@connections/c1", 403, "warn", "refused", "management API: not signed")

	// CORS: a preflight and a request from an origin not allowed; then from the allowed one, and
	// from the page's own origin.
	preflight := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
	do("OPTIONS", "/graphql", "https://evil.example", preflight, "")
	check("OPTIONS /graphql", 204, "warn", "refused", "CORS: origin https://evil.example is not allowed")
	do("POST", "/graphql", "https://evil.example", map[string]string{"Content-Type": "application/json"}, `{"query":"{a}"}`)
	check("POST /graphql", 200, "warn", "refused", "CORS: origin https://evil.example is not allowed")
	do("OPTIONS", "/graphql", "https://app.example", preflight, "")
	check("OPTIONS /graphql", 204, "info", "", "")
	do("POST", "/graphql", "https://app.example", map[string]string{"Content-Type": "application/json"}, `{"query":"{a}"}`)
	check("POST /graphql", 200, "info", "", "")
	do("POST", "/graphql", "http://"+addr, map[string]string{"Content-Type": "application/json"}, `{"query":"{a}"}`)
	check("POST /graphql", 200, "info", "", "")
}

// TestRequestLinesOfTheSQSAPI: each request to the emulated SQS API (the handler's own sends to
// the chunk queue) gets one line, at debug like the management API's, naming the action; one SQS
// refuses (a queue that does not exist) gets one warn line saying why.
func TestRequestLinesOfTheSQSAPI(t *testing.T) {
	h := &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		return []byte(`{"batchItemFailures":[]}`), nil
	}}
	var lines logLines
	addr := serveLogged(t, local.Config{Handler: h, Queues: []local.QueueConfig{{Name: "chunks"}}}, &lines)
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	ctx := context.Background()
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(local.QueueURL(addr, "chunks")), MessageBody: aws.String("{}")}); err != nil {
		t.Fatal(err)
	}
	m := lines.line(t, "POST /")
	if m["level"] != "debug" || m["status"] != 200.0 || m["target"] != "AmazonSQS.SendMessage" || m["refused"] != nil {
		t.Errorf("the send's line %v: want debug, 200, target AmazonSQS.SendMessage", m)
	}
	if _, ok := m["ms"].(float64); !ok {
		t.Errorf("the send's line %v has no duration", m)
	}
	lines.reset()
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(local.QueueURL(addr, "nowhere")), MessageBody: aws.String("{}")}); err == nil {
		t.Fatal("a send to a queue that does not exist succeeded")
	}
	m = lines.line(t, "POST /")
	if refused, _ := m["refused"].(string); m["level"] != "warn" || m["status"] != 400.0 || !strings.Contains(refused, "QueueDoesNotExist") {
		t.Errorf("the refused send's line %v: want warn, 400, refused QueueDoesNotExist", m)
	}
}
