// Package browser drives the pages the binary serves (GraphiQL, the chat demo) in headless
// Chromium through playwright-core, against `bootstrap dev` run as a child process. Screenshots
// go to $TEST_ARTIFACTS/browser, or e2e/browser/artifacts.
package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/testenv"
)

// record is one line a scenario prints (see e2e/browser/js/browser.mjs and each scenario).
type record struct {
	Kind    string          `json:"kind"`
	Page    string          `json:"page"`
	Message string          `json:"message"`
	File    string          `json:"file"`
	Shows   string          `json:"shows"`
	Result  json.RawMessage `json:"result"`
	Rounds  int             `json:"rounds"`
	Step    string          `json:"step"`
	Labels  []struct {
		Label   string `json:"label"`
		Visible bool   `json:"visible"`
		Input   string `json:"input"`
	} `json:"labels"`
	Messages []listed `json:"messages"`
}

// listed is a message as a demo tab lists it.
type listed struct {
	Author string `json:"author"`
	Text   string `json:"text"`
	Edited bool   `json:"edited"`
}

// artifacts is where screenshots go.
func artifacts(t *testing.T, root string) string {
	dir := filepath.Join(root, "e2e", "browser", "artifacts")
	if d := os.Getenv("TEST_ARTIFACTS"); d != "" {
		dir = filepath.Join(d, "browser")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scenario runs e2e/browser/js/<name>.mjs against a fresh `bootstrap dev` and returns its
// records; it fails the test when the scenario fails or a page logged an error, and checks that
// every screenshot it reports is a PNG on disk.
func scenario(t *testing.T, name string) []record {
	t.Helper()
	root := devproc.Root(t)
	chromium := testenv.Chromium(t)
	node, _ := testenv.Node(t, root, "playwright-core")
	p := devproc.Start(t, t.TempDir())
	dir := artifacts(t, root)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("e2e", "browser", "js", name+".mjs"), "http://"+p.Addr, dir, chromium)
	cmd.Dir = root
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()

	var recs []record
	sc := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s.mjs printed a line that is not a record: %q", name, sc.Text())
		}
		recs = append(recs, r)
	}
	if runErr != nil || !slices.ContainsFunc(recs, func(r record) bool { return r.Kind == "done" }) {
		t.Fatalf("%s.mjs: %v (context: %v)\nstdout:\n%s\nstderr:\n%s\nbootstrap dev:\n%s\nscreenshots in %s",
			name, runErr, ctx.Err(), stdout.String(), stderr.String(), p.Output(), dir)
	}
	for _, r := range recs {
		switch r.Kind {
		case "page-error":
			t.Errorf("page %s logged an error: %s", r.Page, r.Message)
		case "screenshot":
			b, err := os.ReadFile(filepath.Join(dir, r.File))
			if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
				t.Errorf("screenshot %s: not a PNG on disk (%v)", r.File, err)
			}
			t.Logf("screenshot %s: %s", filepath.Join(dir, r.File), r.Shows)
		}
	}
	return recs
}

func find(recs []record, kind string) []record {
	var out []record
	for _, r := range recs {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// TestGraphiQLSubscription: page A runs a messageAdded subscription in GraphiQL at /, page B (at
// /graphql, another browser context) types and runs a sendMessage mutation, and page A's result
// pane shows exactly the message B's mutation created.
func TestGraphiQLSubscription(t *testing.T) {
	recs := scenario(t, "graphiql")
	sent, received := find(recs, "sent"), find(recs, "received")
	if len(sent) != 1 || len(received) != 1 {
		t.Fatalf("want one sent and one received record, got %d and %d", len(sent), len(received))
	}
	var s struct {
		Data struct{ SendMessage map[string]string } `json:"data"`
	}
	var r struct {
		Data struct{ MessageAdded map[string]string } `json:"data"`
	}
	if err := json.Unmarshal(sent[0].Result, &s); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(received[0].Result, &r); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"id": s.Data.SendMessage["id"], "author": "page B", "text": "hello from page B"}
	if want["id"] == "" || !equal(s.Data.SendMessage, want) || !equal(r.Data.MessageAdded, want) {
		t.Fatalf("page B sent %v, page A showed %v; want both %v", s.Data.SendMessage, r.Data.MessageAdded, want)
	}
	t.Logf("page A showed page B's message after %d sync round(s)", find(recs, "sync")[0].Rounds)
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDemo: the chat demo in tabs. Every field has a visible label; tab B picks the room with the
// Room field; tab A sends with Enter and with the Send button, edits and deletes, and tab B's list
// follows each step exactly; a third tab loads the same history.
func TestDemo(t *testing.T) {
	recs := scenario(t, "demo")
	labels := find(recs, "labels")
	if len(labels) != 1 {
		t.Fatalf("want one labels record, got %d", len(labels))
	}
	for _, l := range labels[0].Labels {
		if !l.Visible || l.Input != strings.ToLower(l.Label) {
			t.Errorf("field %s: label visible %v, labels input %q (want #%s)", l.Label, l.Visible, l.Input, strings.ToLower(l.Label))
		}
	}
	if len(labels[0].Labels) != 3 {
		t.Errorf("labels checked: %d, want 3", len(labels[0].Labels))
	}

	enter := listed{"ann", "Hello, sent with Enter", false}
	button := listed{"ann", "Hello, sent with the Send button", false}
	edited := listed{"ann", "Hello, sent with Enter and edited", true}
	want := map[string][]listed{
		"B sent with Enter":      {enter},
		"B sent with the button": {enter, button},
		"B edited":               {edited, button},
		"B deleted":              {edited},
		"A deleted":              {edited},
		"C history":              {edited},
	}
	seen := map[string]bool{}
	for _, r := range find(recs, "step") {
		key := r.Page + " " + r.Step
		seen[key] = true
		// The sync rounds' messages come first; the scenario's follow them.
		var got []listed
		for _, m := range r.Messages {
			if !strings.HasPrefix(m.Text, "sync ") {
				got = append(got, m)
			}
		}
		if !slices.Equal(got, want[key]) {
			t.Errorf("tab %s after %q lists %+v, want %+v", r.Page, r.Step, got, want[key])
		}
		if syncs := len(r.Messages) - len(got); syncs != find(recs, "sync")[0].Rounds {
			t.Errorf("tab %s after %q lists %d sync messages, want %d (one per round)", r.Page, r.Step, syncs, find(recs, "sync")[0].Rounds)
		}
	}
	for key := range want {
		if !seen[key] {
			t.Errorf("no record of %s", key)
		}
	}
}
