package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/app"
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
	}
	s, err := readSettings(func(k string) string { return env[k] })
	want := settings{Config: app.Config{DeliveryConcurrency: 8, InitTimeout: 5 * time.Second, DisableIntrospection: true, Strict: true,
		RegistryTable: "reg", DataTable: "data", Playground: true, WebSocketURL: "wss://api.example.com/graphql"},
		LogLevel: zerolog.DebugLevel, LogFormat: logging.JSON,
		WebSocketEndpoint: env["WEBSOCKET_ENDPOINT"], DynamoDBEndpoint: env["AWS_ENDPOINT_URL_DYNAMODB"]}
	if err != nil || s != want {
		t.Fatalf("readSettings = %+v, %v\nwant %+v", s, err, want)
	}
	if s, err := readSettings(func(string) string { return "" }); err != nil || s != (settings{LogLevel: zerolog.InfoLevel, LogFormat: logging.Console}) {
		t.Fatalf("readSettings of an empty environment = %+v, %v", s, err)
	}
	bad := map[string]string{"LOG_LEVEL": "loud", "LOG_FORMAT": "xml", "DELIVERY_CONCURRENCY": "0", "INIT_TIMEOUT": "soon",
		"GRAPHQL_WS_STRICT": "yes please", "GRAPHQL_INTROSPECTION": "maybe", "PLAYGROUND": "sure"}
	_, err = readSettings(func(k string) string { return bad[k] })
	for name := range bad {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s not reported: %v", name, err)
		}
	}
}

// TestDevFlags: the limits the handler applies too reach the configuration, not only the
// emulator; the child of --watch gets every flag given but --watch.
func TestDevFlags(t *testing.T) {
	var cfg app.Config
	c, err := parseDevFlags([]string{"--port", "0", "--max-message", "4096", "--max-frame", "1024", "--idle-timeout", "3s",
		"--max-duration", "1m", "--sweep-interval", "2s", "--watch", "--data", "/tmp/x"}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxMessage != 4096 || cfg.IdleTimeout != 3*time.Second || cfg.MaxDuration != time.Minute {
		t.Errorf("handler configuration %+v", cfg)
	}
	dc := c.dc
	if dc.Port != 0 || dc.MaxFrame != 1024 || dc.SweepInterval != 2*time.Second || dc.Data != "/tmp/x" || dc.Host != "127.0.0.1" || !c.watch {
		t.Errorf("runtime configuration %+v, watch %v", dc, c.watch)
	}
	wantChild := "--data=/tmp/x --idle-timeout=3s --max-duration=1m0s --max-frame=1024 --max-message=4096 --port=0 --sweep-interval=2s"
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

// TestHelp: --help and dev --help exit 0 and list every command, every environment variable with
// its default, and (dev) every flag with its default.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"dev", "--help"}, {"dev", "-h"}} {
		status, out, errOut := runCLI(t, nil, args...)
		if status != 0 || errOut != "" {
			t.Errorf("%q: status %d, stderr %q; want 0 and nothing", args, status, errOut)
		}
		for _, e := range env {
			if !strings.Contains(out, "  "+e.name+" (default "+e.def+"; "+e.usedBy+")\n") {
				t.Errorf("%q does not list %s with its default %q", args, e.name, e.def)
			}
		}
		if args[0] != "dev" {
			for _, c := range commands {
				if !strings.Contains(out, "bootstrap "+c.name+" "+c.args) {
					t.Errorf("%q does not list the command %s", args, c.name)
				}
			}
			continue
		}
		rows := flagRows(flagSets("dev"))
		if len(rows) < 10 {
			t.Fatalf("dev has %d flags", len(rows))
		}
		for _, f := range rows {
			line := "  " + f.name
			if f.def != "" {
				line += " (default " + f.def + ")"
			}
			if !strings.Contains(out, line+"\n") {
				t.Errorf("dev --help does not list %q", line)
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
	// A bad environment is not a usage mistake: status 1, and every bad value named.
	status, _, errOut := runCLI(t, map[string]string{"LOG_LEVEL": "loud", "INIT_TIMEOUT": "soon"}, "dev")
	if status != 1 || !strings.Contains(errOut, "LOG_LEVEL") || !strings.Contains(errOut, "INIT_TIMEOUT") {
		t.Errorf("bad environment: status %d, stderr %q", status, errOut)
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
