package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/emit/emittest"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/logging"
	"github.com/rs/zerolog"
)

// TestReadSettings: every variable of the README's table is read, unset ones keep app.Config's
// defaults, and every bad value is reported at once.
func TestReadSettings(t *testing.T) {
	env := map[string]string{
		"LOG_LEVEL": "debug", "LOG_FORMAT": "json", "DELIVERY_CONCURRENCY": "8", "INIT_TIMEOUT": "5s", "GRAPHQL_INTROSPECTION": "false",
		"GRAPHQL_WS_STRICT": "true", "REGISTRY_TABLE": "reg", "DATA_TABLE": "data",
		"WEBSOCKET_ENDPOINT": "https://x.execute-api.us-east-1.amazonaws.com/prod", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000",
		"PLAYGROUND": "true", "WEBSOCKET_URL": "wss://api.example.com/graphql",
		"AUTH_MODE": "jwt", "AUTH_JWKS_URL": "https://idp.example/jwks.json", "AUTH_ISSUER": "https://idp.example/", "AUTH_AUDIENCE": "app",
		"AUTH_LEEWAY": "10s", "GRAPHQL_MAX_TOKENS": "2000", "GRAPHQL_MAX_SELECTIONS": "100", "GRAPHQL_MAX_DEPTH": "5",
		"GRAPHQL_MAX_COMPLEXITY": "900", "SUBSCRIPTIONS_PER_CONNECTION": "20", "CONNECTIONS_PER_SUBJECT": "3",
		"HTTP_MAX_BODY": "65536", "CORS_ORIGINS": "https://a.example, https://b.example",
		"CHUNK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/lambdaws-prod-chunks", "CHUNK_SIZE": "500",
	}
	s, err := readSettings(func(k string) string { return env[k] })
	want := settings{Config: app.Config{DeliveryConcurrency: 8, InitTimeout: 5 * time.Second, DisableIntrospection: true, Strict: true,
		RegistryTable: "reg", DataTable: "data", ChunkQueueURL: env["CHUNK_QUEUE_URL"], ChunkSize: 500, Playground: true, WebSocketURL: "wss://api.example.com/graphql",
		Auth:             auth.Config{Mode: auth.ModeJWT, JWKSURL: "https://idp.example/jwks.json", Issuer: "https://idp.example/", Audience: "app", Leeway: 10 * time.Second},
		Limits:           graph.Limits{MaxTokens: 2000, MaxSelections: 100, MaxDepth: 5, MaxComplexity: 900},
		MaxSubscriptions: 20, MaxConnectionsPerSubject: 3, MaxHTTPBody: 65536, CORSOrigins: []string{"https://a.example", "https://b.example"}},
		LogLevel: zerolog.DebugLevel, LogFormat: logging.JSON,
		WebSocketEndpoint: env["WEBSOCKET_ENDPOINT"], DynamoDBEndpoint: env["AWS_ENDPOINT_URL_DYNAMODB"], AuthModeSet: true}
	if err != nil || !reflect.DeepEqual(s, want) {
		t.Fatalf("readSettings = %+v, %v\nwant %+v", s, err, want)
	}
	// Unset: no authentication (dev's default), graph's limits, no CORS.
	if s, err := readSettings(func(string) string { return "" }); err != nil || !reflect.DeepEqual(s,
		settings{LogLevel: zerolog.InfoLevel, LogFormat: logging.Console, Config: app.Config{Auth: auth.Config{Mode: auth.ModeNone, Leeway: auth.DefaultLeeway}}}) {
		t.Fatalf("readSettings of an empty environment = %+v, %v", s, err)
	}
	bad := map[string]string{"LOG_LEVEL": "loud", "LOG_FORMAT": "xml", "DELIVERY_CONCURRENCY": "0", "INIT_TIMEOUT": "soon",
		"GRAPHQL_WS_STRICT": "yes please", "GRAPHQL_INTROSPECTION": "maybe", "PLAYGROUND": "sure",
		"AUTH_MODE": "maybe", "GRAPHQL_MAX_DEPTH": "0", "SUBSCRIPTIONS_PER_CONNECTION": "-1",
		"CONNECTIONS_PER_SUBJECT": "x", "HTTP_MAX_BODY": "20000000", "CHUNK_SIZE": "lots"}
	_, err = readSettings(func(k string) string { return bad[k] })
	for name := range bad {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s not reported: %v", name, err)
		}
	}
}

// TestEnvListsWhatIsRead: every variable readSettings reads (the AUTH_* ones through
// auth.ConfigFromEnv included) is in env, so --help and the README list it; and every variable in
// env with a reader is read.
func TestEnvListsWhatIsRead(t *testing.T) {
	listed := map[string]bool{}
	for _, e := range env {
		listed[e.name] = true
	}
	read := map[string]bool{}
	readSettings(func(k string) string {
		read[k] = true
		return ""
	})
	for name := range read {
		if !listed[name] {
			t.Errorf("readSettings reads %s, which env (--help, the README) does not list", name)
		}
	}
	for _, e := range env {
		if e.set != nil && !read[e.name] {
			t.Errorf("env lists %s with a reader, but readSettings does not read it", e.name)
		}
	}
	if !read["AUTH_JWKS_TIMEOUT"] || !read["AUTH_HS256_SECRET"] {
		t.Errorf("the AUTH_* variables are not read through readSettings: %v", read)
	}
}

// TestDevFlags: the limits the handler applies too reach the configuration, not only the
// emulator; the child of --watch gets every flag given but --watch.
func TestDevFlags(t *testing.T) {
	var cfg app.Config
	c, err := parseDevFlags([]string{"--port", "0", "--max-message", "4096", "--max-frame", "1024", "--idle-timeout", "3s",
		"--max-duration", "1m", "--sweep-interval", "2s", "--max-inflight", "3", "--watch", "--data", "/tmp/x"}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxMessage != 4096 || cfg.IdleTimeout != 3*time.Second || cfg.MaxDuration != time.Minute {
		t.Errorf("handler configuration %+v", cfg)
	}
	dc := c.dc
	if dc.Port != 0 || dc.MaxFrame != 1024 || dc.SweepInterval != 2*time.Second || dc.Data != "/tmp/x" || dc.Host != "127.0.0.1" || dc.MaxInflight != 3 || !c.watch {
		t.Errorf("runtime configuration %+v, watch %v", dc, c.watch)
	}
	wantChild := "--data=/tmp/x --idle-timeout=3s --max-duration=1m0s --max-frame=1024 --max-inflight=3 --max-message=4096 --port=0 --sweep-interval=2s"
	if got := strings.Join(c.childArgs, " "); got != wantChild {
		t.Errorf("the watched child's arguments %q, want %q", got, wantChild)
	}
	if _, err := parseDevFlags([]string{"extra"}, &cfg); err == nil {
		t.Error("an unexpected argument was accepted")
	}
}

// runCLI runs the command line in-process as main does and returns its exit status and output.
func runCLI(t *testing.T, env map[string]string, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, args, func(k string) string { return env[k] }, &out, &errOut)
	status = exitStatus(err, &errOut)
	return status, out.String(), errOut.String()
}

// TestHelp: --help, dev --help and publish --help exit 0 and list every command, every flag of the
// command with its default, and (for bootstrap itself and the commands that run the service)
// every environment variable with its default.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"dev", "--help"}, {"dev", "-h"}, {"publish", "--help"}, {"publish", "-h"}} {
		status, out, errOut := runCLI(t, nil, args...)
		if status != 0 || errOut != "" {
			t.Errorf("%q: status %d, stderr %q; want 0 and nothing", args, status, errOut)
		}
		service := args[0] != "publish"
		for _, e := range env {
			if listed := strings.Contains(out, "  "+e.name+" (default "+e.def+"; "+e.usedBy+")\n"); listed != service {
				t.Errorf("%q lists %s with its default %q: %v, want %v", args, e.name, e.def, listed, service)
			}
		}
		if fs := flagSets(args[0]); fs == nil {
			for _, c := range commands {
				if !strings.Contains(out, "bootstrap "+c.name+" "+c.args) {
					t.Errorf("%q does not list the command %s", args, c.name)
				}
			}
			continue
		}
		if !strings.HasPrefix(out, "Usage: bootstrap "+args[0]+" ") {
			t.Errorf("%q does not start with its usage:\n%s", args, out)
		}
		rows := flagRows(flagSets(args[0]))
		if len(rows) < 8 {
			t.Fatalf("%s has %d flags", args[0], len(rows))
		}
		for _, f := range rows {
			line := "  " + f.name
			if f.def != "" {
				line += " (default " + f.def + ")"
			}
			if !strings.Contains(out, line+"\n") {
				t.Errorf("%s --help does not list %q", args[0], line)
			}
		}
	}
}

// readmeTable returns the rows of the README's table whose header starts with header, each cell
// without its backquotes.
func readmeTable(t *testing.T, readme, header string) [][]string {
	t.Helper()
	i := strings.Index(readme, "\n"+header)
	if i < 0 {
		t.Fatalf("the README has no table headed %q", header)
	}
	var rows [][]string
	for _, line := range strings.Split(readme[i+1:], "\n")[2:] { // after the header and |---|
		if !strings.HasPrefix(line, "|") {
			break
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") { // no cell holds a |
			cells = append(cells, strings.TrimSpace(strings.ReplaceAll(c, "`", "")))
		}
		rows = append(rows, cells)
	}
	return rows
}

// TestREADMEConfiguration: the README's configuration tables say exactly what --help says: the
// same variables and flags, in the same order, with the same defaults and meanings.
func TestREADMEConfiguration(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	var want [][]string
	for _, e := range env {
		want = append(want, []string{e.name, e.def, e.usedBy, e.meaning})
	}
	compareRows(t, "environment variables", readmeTable(t, readme, "| variable | default | used by | meaning |"), want)
	want = nil
	for _, f := range flagRows(flagSets("dev")) {
		want = append(want, []string{f.name, f.def, f.usage})
	}
	compareRows(t, "dev flags", readmeTable(t, readme, "| flag | default | meaning |"), want)
	want = nil
	for _, f := range flagRows(flagSets("publish")) {
		want = append(want, []string{f.name, f.def, f.usage})
	}
	compareRows(t, "publish flags", readmeTable(t, readme, "| publish flag | default | meaning |"), want)
}

func compareRows(t *testing.T, what string, got, want [][]string) {
	t.Helper()
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = strings.Join(got[i], " | ")
		}
		if i < len(want) {
			w = strings.Join(want[i], " | ")
		}
		if g != w {
			t.Errorf("README's %s, row %d:\n  README: %s\n  --help: %s", what, i+1, g, w)
		}
	}
}

// TestUsageErrors: a mistake on the command line is reported once, on stderr, with where to find
// help, and exits with status 2; nothing is printed on stdout.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dev", "--bogus"}, "bootstrap dev: flag provided but not defined: -bogus\n(bootstrap dev --help lists"},
		{[]string{"dev", "--port", "x"}, "bootstrap dev: invalid value \"x\" for flag -port: parse error\n"},
		{[]string{"dev", "extra"}, "bootstrap dev: unexpected argument \"extra\"\n"},
		{[]string{"deploy"}, "bootstrap: unknown command \"deploy\"\n(bootstrap --help lists"},
		{[]string{"publish", "--bogus"}, "bootstrap publish: flag provided but not defined: -bogus\n(bootstrap publish --help lists"},
		{[]string{"publish", "--data", "{}"}, "bootstrap publish: --type is required\n(bootstrap publish --help lists"},
		{[]string{"publish", "--type"}, "bootstrap publish: flag needs an argument: -type\n"},
		{nil, "bootstrap: a command is needed\n"},
	} {
		status, out, errOut := runCLI(t, nil, tc.args...)
		if status != 2 || out != "" {
			t.Errorf("%q: status %d, stdout %q; want 2 and nothing", tc.args, status, out)
		}
		if !strings.HasPrefix(errOut, tc.want) || strings.Count(errOut, "bootstrap") != 2 || strings.Count(errOut, "\n") != 2 {
			t.Errorf("%q: stderr %q, want %q once, then where help is", tc.args, errOut, tc.want)
		}
	}
	// publish reports every mistake of one command line at once, in one report.
	status, out, errOut := runCLI(t, nil, "publish", "--data", "[]", "--target", "sns")
	if want := "bootstrap publish: --type is required\n--data: is not a JSON object\n--target sns needs --topic-arn\n" +
		"(bootstrap publish --help lists its flags)\n"; status != 2 || out != "" || errOut != want {
		t.Errorf("publish with three mistakes: status %d, stdout %q, stderr %q; want 2 and\n%s", status, out, errOut, want)
	}
	// A bad environment is not a usage mistake: status 1, and every bad value named.
	bad := map[string]string{"LOG_LEVEL": "loud", "INIT_TIMEOUT": "soon"}
	status, _, errOut = runCLI(t, bad, "dev")
	if status != 1 || !strings.Contains(errOut, "LOG_LEVEL") || !strings.Contains(errOut, "INIT_TIMEOUT") {
		t.Errorf("bad environment: status %d, stderr %q", status, errOut)
	}
	// publish reads none of the service's environment.
	if status, out, errOut := runCLI(t, bad, "publish", "--help"); status != 0 || errOut != "" || !strings.Contains(out, "--type TYPE") {
		t.Errorf("publish --help with a bad service environment: status %d, stderr %q", status, errOut)
	}
}

// TestPortInUse: `dev` on a port another process holds says which flag (and make variable) changes
// it, and exits with status 1.
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	status, out, errOut := runCLI(t, map[string]string{"LOG_LEVEL": "warn"}, "dev", "--port", port, "--data", t.TempDir())
	if status != 1 || out != "" {
		t.Errorf("status %d, stdout %q; want 1 and nothing", status, out)
	}
	for _, want := range []string{"127.0.0.1:" + port, "address already in use", "--port N", "make dev PORT=N"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
}

// TestVersion: --version prints the module, its version and the commit the build information
// names, and says when the tree had uncommitted changes.
func TestVersion(t *testing.T) {
	status, out, _ := runCLI(t, nil, "--version")
	if status != 0 || !strings.HasPrefix(out, "bootstrap ") {
		t.Errorf("--version: status %d, %q", status, out)
	}
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/realtime-gql/lambdaws", Version: "v0.0.0-20261202012608-4ee0407a1b2c+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "4ee0407a1b2c3d4e5f60718293a4b5c6d7e8f901"},
			{Key: "vcs.time", Value: "2026-12-02T01:26:08Z"}, {Key: "vcs.modified", Value: "true"}}}
	got := formatVersion(bi, true)
	want := regexp.MustCompile(`^bootstrap v0\.0\.0-20261202012608-4ee0407a1b2c\+dirty \(github\.com/realtime-gql/lambdaws\)\n` +
		`commit 4ee0407a1b2c3d4e5f60718293a4b5c6d7e8f901 \(2026-12-02T01:26:08Z\), with uncommitted changes\n` +
		`built with go1\.26\.8 for \w+/\w+\n$`)
	if !want.MatchString(got) {
		t.Errorf("formatVersion =\n%s", got)
	}
	bi.Settings = bi.Settings[:3]
	if got := formatVersion(bi, true); strings.Contains(got, "uncommitted") {
		t.Errorf("a clean tree's version says it had changes:\n%s", got)
	}
	if got := formatVersion(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true); !strings.Contains(got, "commit unknown") {
		t.Errorf("without VCS information:\n%s", got)
	}
}

// TestPublishSubcommand: `bootstrap publish` emits the event to the invoke endpoint it is given,
// prints the event's id, and needs none of the service's environment.
func TestPublishSubcommand(t *testing.T) {
	srv := emittest.NewServer(t)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"publish", "--type", "chat.announcement", "--source", "com.example.chat",
		"--data", `{"id":"a1","roomId":"lobby","text":"hi","priority":1,"at":"2026-11-26T12:00:00Z"}`, "--url", srv.URL + emittest.InvokePath},
		func(string) string { return "" }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, stderr.String())
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Op != emittest.Invoke || reqs[0].Err != nil || reqs[0].Change.Type != "chat.announcement" ||
		strings.TrimSpace(stdout.String()) != reqs[0].Change.ID {
		t.Fatalf("requests %+v, printed %q", reqs, stdout.String())
	}
	if err := run(context.Background(), []string{"publish", "--data", "{}"}, func(string) string { return "" }, &stdout, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--type is required") {
		t.Fatalf("publish without a type = %v", err)
	}
}

// TestLambdaRefusesToStartWithoutAuthMode: on Lambda, AUTH_MODE must be set explicitly, even to
// none; a deployment that forgot it does not start open.
func TestLambdaRefusesToStartWithoutAuthMode(t *testing.T) {
	env := map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9", "REGISTRY_TABLE": "r", "DATA_TABLE": "d",
		"WEBSOCKET_ENDPOINT": "https://x.execute-api.us-east-1.amazonaws.com/prod"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, &bytes.Buffer{}, io.Discard)
	if !errors.Is(err, auth.ErrModeNotSet) || !strings.Contains(err.Error(), "AUTH_MODE") {
		t.Fatalf("run on Lambda without AUTH_MODE = %v, want ErrModeNotSet", err)
	}
}

// TestDevSaysAuthenticationIsOff: dev defaults to no authentication and says so at start-up.
func TestDevSaysAuthenticationIsOff(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "authentication          none: AUTH_MODE is unset"},
		{map[string]string{"AUTH_MODE": "none"}, "authentication          none (AUTH_MODE=none)"},
		{map[string]string{"AUTH_MODE": "jwt", "AUTH_HS256_SECRET": strings.Repeat("s", 32)}, "authentication          jwt"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var out bytes.Buffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"dev", "--port", "0", "--data", t.TempDir()}, func(k string) string { return tc.env[k] }, &syncWriter{w: &out, ready: cancel}, io.Discard)
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("AUTH_MODE %q: start-up said\n%s\nwant %q", tc.env["AUTH_MODE"], out.String(), tc.want)
		}
	}
}

// syncWriter collects the start-up banner and ends the runtime once the banner is complete.
type syncWriter struct {
	w     *bytes.Buffer
	ready context.CancelFunc
}

func (s *syncWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if strings.Contains(string(p), "authentication") {
		s.ready()
	}
	return n, err
}
