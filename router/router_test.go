package router_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/gqlhttp"
	"github.com/realtime-gql/lambdaws/internal/invalidate"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/internal/socket"
	"github.com/realtime-gql/lambdaws/internal/sweep"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/router"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/rs/zerolog"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// take returns the posts ("connection data") and deletes the handlers made since the last take.
func take(g *mgmttest.Gateway) (posts, deletes []string) {
	for _, c := range g.TakeCalls() {
		switch c.Op {
		case mgmttest.Post:
			posts = append(posts, c.ConnectionID+" "+string(c.Data))
		case mgmttest.Delete:
			deletes = append(deletes, c.ConnectionID)
		}
	}
	return posts, deletes
}

// postKey is the subscription a post ("connection frame") is for: its connection and operation id.
func postKey(post string) string {
	conn, frame, _ := strings.Cut(post, " ")
	var f struct{ ID string }
	json.Unmarshal([]byte(frame), &f)
	return conn + " " + f.ID
}

// golden is what one event produced: the response (or the error) and the management API calls.
type golden struct {
	Response json.RawMessage `json:"response,omitempty"`
	Error    string          `json:"error,omitempty"`
	Posts    []string        `json:"posts,omitempty"`
	Deletes  []string        `json:"deletes,omitempty"`
	// Logged is the level and message of every warning and error logged.
	Logged []string `json:"logged,omitempty"`
}

// logged returns the level and message of the warnings and errors in logs (zerolog JSON lines).
func logged(t *testing.T, logs string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var l struct{ Level, Message string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l.Level == "warn" || l.Level == "error" {
			out = append(out, l.Level+": "+l.Message)
		}
	}
	return out
}

// TestGolden feeds every AWS-shaped event in testdata/, in file-name order, through one Router
// built from the real handlers over an embedded store, and compares what it answered and what it
// asked of the management API with testdata/golden/. `go test ./router -update` rewrites them.
func TestGolden(t *testing.T) {
	s, err := embedded.Open(filepath.Join(t.TempDir(), "d.db"), embedded.Options{Now: func() time.Time { return time.UnixMilli(1795702259000) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The events were captured at 2026-11-26T14:10:58Z; the handlers' clock is pinned there.
	now := func() time.Time { return time.UnixMilli(1795702259000) }
	m := mgmttest.New()
	res, err := graph.NewResolver(s)
	if err != nil {
		t.Fatal(err)
	}
	res.Now = now
	exec, err := graph.NewExecutor(res, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ws := socket.New(socket.Config{Registry: s, Executor: exec, Gateway: m, Now: now, AckWait: 50 * time.Millisecond})
	iv := invalidate.New(invalidate.Config{Registry: s, Gateway: m})
	fan := publish.New(publish.Config{Registry: s, Sources: exec, Renderer: exec, Gateway: m, Invalidator: iv, Now: now})
	defer fan.Close()
	var logs bytes.Buffer
	sw := sweep.New(sweep.Config{Registry: s, Gateway: m, Now: now})
	r := router.New(router.Handlers{WebSocket: ws, HTTP: gqlhttp.New(exec, gqlhttp.Config{}), Stream: fan, Events: fan, Schedule: sw}, zerolog.New(&logs))

	files, _ := filepath.Glob("testdata/*.json")
	sort.Strings(files)
	if len(files) < 20 {
		t.Fatalf("only %d events in testdata", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		payload, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		logs.Reset()
		out, err := r.Invoke(context.Background(), payload)
		var g golden
		if err != nil {
			g.Error = err.Error()
			if !errors.Is(err, router.ErrMalformed) && !errors.Is(err, router.ErrUnknownPayload) {
				t.Errorf("%s: error %v is neither ErrMalformed nor ErrUnknownPayload", name, err)
			}
			if n := strings.Count(logs.String(), "\n"); n != 1 {
				t.Errorf("%s: refused with %d log lines, want exactly one:\n%s", name, n, logs.String())
			}
		} else {
			var buf bytes.Buffer
			if err := json.Indent(&buf, out, "    ", "  "); err != nil {
				t.Fatalf("%s: response is not JSON: %s", name, out)
			}
			g.Response = buf.Bytes()
		}
		g.Posts, g.Deletes = take(m)
		g.Logged = logged(t, logs.String())
		// Posts to different subscriptions may interleave (the fan-out delivers concurrently);
		// per subscription (connection and operation id) their order is kept.
		sort.SliceStable(g.Posts, func(i, j int) bool { return postKey(g.Posts[i]) < postKey(g.Posts[j]) })
		got, _ := json.MarshalIndent(g, "", "  ")
		got = append(got, '\n')
		goldenFile := filepath.Join("testdata", "golden", name+".json")
		if *update {
			os.MkdirAll(filepath.Dir(goldenFile), 0o755)
			if err := os.WriteFile(goldenFile, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(goldenFile)
		if err != nil {
			t.Fatalf("%s: %v (run go test ./router -update)", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\ngot  %s\nwant %s", name, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    router.Kind
	}{
		{`{"requestContext":{"eventType":"CONNECT","connectionId":"x"}}`, router.KindWebSocket},
		{`{"version":"2.0","requestContext":{"http":{"method":"GET"}}}`, router.KindHTTPv2},
		{`{"httpMethod":"POST","requestContext":{}}`, router.KindUnknown}, // REST API (1.0): none is deployed
		{`{"Records":[{"eventSource":"aws:dynamodb"}]}`, router.KindDynamoDB},
		{`{"Records":[{"eventSource":"aws:sqs"}]}`, router.KindSQS},
		{`{"Records":[{"EventSource":"aws:sns","Sns":{}}]}`, router.KindSNS},
		{`{"Records":[{"eventSource":"aws:sns"}]}`, router.KindUnknown}, // SNS spells it EventSource
		{`{"Records":[{"EventSource":"aws:sqs"}]}`, router.KindUnknown}, // SQS spells it eventSource
		{`{"Records":[{"eventSource":"aws:kinesis"}]}`, router.KindUnknown},
		{`{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}`, router.KindSchedule},
		{`{"source":"com.example","detail-type":"Scheduled Event"}`, router.KindEventBridge},
		{`{"source":"com.example.chat","detail-type":"chat.announcement","detail":{}}`, router.KindEventBridge},
		{`{"source":"com.example.admin","detail-type":"lambdaws.invalidate","detail":{"subject":"u"}}`, router.KindEventBridge},
		{`{"source":"com.example.chat","detail":{}}`, router.KindUnknown},
		{`{"detail-type":"chat.announcement","detail":{}}`, router.KindUnknown},
		{`{"detail-type":"lambdaws.invalidate"}`, router.KindUnknown}, // no source: not EventBridge's
		{`{"Records":[]}`, router.KindUnknown},
		{`{"requestContext":{"eventType":"CONNECT"}}`, router.KindUnknown},
		{`{"requestContext":{"http":null}}`, router.KindUnknown},
		{`null`, router.KindUnknown},
	} {
		got, _ := router.Classify([]byte(tc.payload))
		if got != tc.want {
			t.Errorf("Classify(%s) = %s, want %s", tc.payload, got, tc.want)
		}
	}
}

func FuzzInvoke(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	dir := f.TempDir()
	s, err := embedded.Open(filepath.Join(dir, "d.db"), embedded.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	m := mgmttest.New()
	res, err := graph.NewResolver(s)
	if err != nil {
		f.Fatal(err)
	}
	exec, err := graph.NewExecutor(res, graph.Options{})
	if err != nil {
		f.Fatal(err)
	}
	ws := socket.New(socket.Config{Registry: s, Executor: exec, Gateway: m, AckWait: time.Millisecond})
	iv := invalidate.New(invalidate.Config{Registry: s, Gateway: m})
	fan := publish.New(publish.Config{Registry: s, Sources: exec, Renderer: exec, Gateway: m, Invalidator: iv})
	defer fan.Close()
	sw := sweep.New(sweep.Config{Registry: s, Gateway: m})
	r := router.New(router.Handlers{WebSocket: ws, HTTP: gqlhttp.New(exec, gqlhttp.Config{}), Stream: fan, Events: fan, Schedule: sw}, zerolog.Nop())
	f.Fuzz(func(t *testing.T, payload []byte) {
		out, err := r.Invoke(context.Background(), payload)
		if errors.Is(err, router.ErrPanic) {
			t.Fatalf("handler panicked on %q: %v", payload, err)
		}
		if err == nil && !json.Valid(out) {
			t.Fatalf("response to %q is not JSON: %q", payload, out)
		}
		m.TakeCalls()
	})
}
