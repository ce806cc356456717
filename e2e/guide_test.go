package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/testlog"
	"github.com/realtime-gql/lambdaws/internal/wstest"
)

// A block is a fenced code block of the README: its info string (language and attributes such as
// file=PATH or step=NAME) and its content.
type block struct {
	lang  string
	attrs map[string]string
	text  string
}

// guideBlocks returns the code blocks of the README's section "Your own schema" (up to the next
// section of the same level), in order.
func guideBlocks(t *testing.T, readme string) []block {
	t.Helper()
	_, section, ok := strings.Cut(readme, "\n## Your own schema\n")
	if !ok {
		t.Fatal(`README.md has no section "## Your own schema"`)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var out []block
	var cur *block
	var body strings.Builder
	for _, line := range strings.Split(section, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			fields := strings.Fields(strings.TrimPrefix(line, "```"))
			cur = &block{attrs: map[string]string{}}
			for i, f := range fields {
				if k, v, ok := strings.Cut(f, "="); ok {
					cur.attrs[k] = v
				} else if i == 0 {
					cur.lang = f
				}
			}
			body.Reset()
		case cur != nil && line == "```":
			cur.text = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		}
	}
	return out
}

// copyProject copies the repository's files (those git tracks or would track) to dir, without
// node_modules: the guide needs Go only.
func copyProject(t *testing.T, root, dir string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" {
			continue
		}
		fi, err := os.Lstat(filepath.Join(root, f))
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the working tree, or not a file
		}
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// shell runs a command line with bash in dir and returns its output; it fails the test if the
// command fails, unless failOK.
func shell(t *testing.T, dir, line string, failOK bool) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", line)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil && !failOK {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return string(out), err
}

// devRun is `go run . dev` in the copy, as a process group.
type devRun struct {
	cmd    *exec.Cmd
	out    testlog.Buffer
	exited chan struct{}
	err    error
}

func startDev(t *testing.T, dir, line string) *devRun {
	t.Helper()
	d := &devRun{exited: make(chan struct{})}
	d.cmd = exec.Command("bash", "-c", "exec "+line)
	d.cmd.Dir = dir
	d.cmd.Env = append(os.Environ(), "LOG_LEVEL=warn")
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(d.kill)
	return d
}

func (d *devRun) kill() {
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.exited
}

var devReady = regexp.MustCompile(`ws://([0-9.]+:[0-9]+)/graphql`)

// addr waits for the runtime to print its address.
func (d *devRun) addr(t *testing.T) string {
	t.Helper()
	deadline := time.After(3 * time.Minute) // go run builds first
	for {
		if m := devReady.FindStringSubmatch(d.out.String()); m != nil {
			return m[1]
		}
		select {
		case <-d.exited:
			t.Fatalf("go run . dev exited before it was ready: %v\n%s", d.err, d.out.String())
		case <-deadline:
			t.Fatalf("go run . dev not ready after 3 minutes\n%s", d.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestGuide follows the README's "Your own schema" as written, in a copy of the project: it writes
// the guide's files, runs its commands (go generate, go run . dev, then curl and bootstrap
// publish), subscribes with the guide's subscriptions (one client of each subprotocol), and
// expects the guide's results: a reaction (a data-table change) delivered through its filter, a
// typing indicator (an external event) delivered with the identity publish printed. The only
// changes to the commands are the address of the runtime (the test's own free port instead of
// 127.0.0.1:4000, for curl and for publish's --url) and dev's data directory. Then it breaks a
// declaration and checks that go generate and go run . dev refuse it with the message the README
// shows, naming the field.
func TestGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and builds a copy of the project")
	}
	root := devproc.Root(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := guideBlocks(t, string(readme))
	dir := t.TempDir()
	copyProject(t, root, dir)

	var subscriptions []string
	var events string
	files, ran := 0, map[string]bool{}
	var dev *devRun
	for _, b := range blocks {
		switch {
		case b.attrs["file"] != "":
			path := filepath.Join(dir, filepath.FromSlash(b.attrs["file"]))
			if err := os.WriteFile(path, []byte(b.text), 0o644); err != nil {
				t.Fatal(err)
			}
			files++
		case b.attrs["step"] == "generate":
			for _, line := range strings.Split(strings.TrimSpace(b.text), "\n") {
				t.Logf("$ %s", line)
				shell(t, dir, line, false)
			}
			ran["generate"] = true
		case b.attrs["step"] == "dev":
			line := strings.TrimSpace(b.text)
			if line != "go run . dev" {
				t.Fatalf("the guide starts the runtime with %q; the test knows go run . dev", line)
			}
			dev = startDev(t, dir, line+" --port 0 --data "+filepath.Join(t.TempDir(), "data"))
			ran["dev"] = true
		case b.attrs["step"] == "subscribe":
			subscriptions = append(subscriptions, strings.TrimSpace(b.text))
		case b.attrs["step"] == "events":
			events = b.text
		}
	}
	if files != 2 || !ran["generate"] || !ran["dev"] || len(subscriptions) != 2 || events == "" {
		t.Fatalf("the guide's blocks: %d files, ran %v, %d subscriptions, events %q; the test expects 2 files, generate, dev, 2 subscriptions and events",
			files, ran, len(subscriptions), events)
	}
	addr := dev.addr(t)
	t.Logf("go run . dev is ready at %s", addr)

	// One client of each subprotocol, each with one of the guide's subscriptions.
	url := "ws://" + addr + "/graphql"
	a := wstest.Dial(t, url, "graphql-transport-ws")
	a.Send(map[string]any{"type": "connection_init"})
	a.Expect("connection_ack", "")
	a.Send(map[string]any{"id": "r", "type": "subscribe", "payload": map[string]any{"query": subscriptions[0]}})
	b := wstest.Dial(t, url, "graphql-ws")
	b.Send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
	b.Expect("connection_ack", "")
	b.Send(map[string]any{"id": "t", "type": "start", "payload": map[string]any{"query": subscriptions[1]}})

	// A subscription is stored asynchronously and never acknowledged: probe each with an event
	// until one arrives (probes are by "probe" and are skipped afterwards).
	post := func(query string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"query": query})
		resp, err := http.Post("http://"+addr+"/graphql", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", query, resp.StatusCode)
		}
	}
	invokeURL := "http://" + addr + facts.InvokePath
	probe(t, a, func() {
		post(`mutation { react(roomId: "lobby", messageId: "m0", emoji: "👍", by: "probe") { id } }`)
	})
	probe(t, b, func() {
		shell(t, dir, `go run . publish --type chat.typing --data '{"roomId":"lobby","user":"probe"}' --url `+invokeURL, false)
	})

	// A reaction the filter leaves out, then the guide's commands.
	post(`mutation { react(roomId: "lobby", messageId: "m1", emoji: "👎", by: "ann") { id } }`)
	script := strings.ReplaceAll(events, "127.0.0.1:4000", addr)
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(script), "\n") {
		if strings.HasPrefix(line, "go run . publish ") && !strings.Contains(line, "--url") {
			line += " --url " + invokeURL
		}
		lines = append(lines, line)
	}
	t.Logf("$ %s", strings.Join(lines, "\n$ "))
	out, _ := shell(t, dir, strings.Join(lines, "\n"), false)
	// curl prints the mutation's result without a newline; publish then prints the event's id.
	printed := regexp.MustCompile(`^\{"data":\{"react":\{"id":"[0-9A-Z]{26}"\}\}\}([0-9A-Z]{26})\n$`).FindStringSubmatch(out)
	if printed == nil {
		t.Fatalf("the commands printed %q, want the reaction's id and the event's", out)
	}
	id := printed[1]

	m := skipProbes(t, a)
	if m.Type != "next" || m.ID != "r" || !regexp.MustCompile(`^\{"data":\{"reactionAdded":\{"emoji":"🎉","by":"ann","messageId":"m1"\}\},"extensions":\{"event":\{"id":"[0-9a-f]{32}","seq":"[0-9]+"\}\}\}$`).MatchString(compact(t, m.Payload)) {
		t.Fatalf("the reaction subscriber got %s", m)
	}
	m = skipProbes(t, b)
	if want := fmt.Sprintf(`{"data":{"typing":{"user":"ann"}},"extensions":{"event":{"id":%q}}}`, id); m.Type != "data" || m.ID != "t" || compact(t, m.Payload) != want {
		t.Fatalf("the typing subscriber got %s, want %s", m, want)
	}
	a.ExpectNone(200 * time.Millisecond)
	b.ExpectNone(10 * time.Millisecond)
	dev.kill()

	// A declaration that names no @item type: go generate refuses it (after gqlgen), naming the
	// field, and so does the runtime at start-up. The README shows this very message.
	const refusal = `Subscription.reactionAdded: @fromChange(type: "Reactions"): no @item type "Reactions"`
	if !strings.Contains(string(readme), refusal) {
		t.Errorf("README.md does not show the refusal %q", refusal)
	}
	schema := filepath.Join(dir, "graph", "reactions.graphqls")
	src, err := os.ReadFile(schema)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(src), `@fromChange(type: "Reaction",`, `@fromChange(type: "Reactions",`, 1)
	if broken == string(src) {
		t.Fatal("the guide's schema has no @fromChange(type: \"Reaction\", ...)")
	}
	if err := os.WriteFile(schema, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = shell(t, dir, "go generate ./...", true)
	if err == nil || !strings.Contains(out, refusal) {
		t.Fatalf("go generate of the broken schema: %v\n%s", err, out)
	}
	refused := startDev(t, dir, "go run . dev --port 0 --data "+filepath.Join(t.TempDir(), "data"))
	select {
	case <-refused.exited:
	case <-time.After(3 * time.Minute):
		t.Fatalf("go run . dev still runs with the broken schema\n%s", refused.out.String())
	}
	if refused.err == nil || !strings.Contains(refused.out.String(), refusal) || devReady.MatchString(refused.out.String()) {
		t.Fatalf("go run . dev with the broken schema: %v\n%s", refused.err, refused.out.String())
	}
}

// probe sends an event with send until the client receives one (a probe), at most for a minute.
func probe(t *testing.T, c *wstest.Client, send func()) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		send()
		if m, ok := c.TryNext(500 * time.Millisecond); ok {
			if !strings.Contains(string(m.Payload), `"probe"`) {
				t.Fatalf("before any event but probes: %s", m)
			}
			return
		}
	}
	t.Fatal("the subscription received no probe within a minute")
}

// skipProbes returns the next message that is not a probe's.
func skipProbes(t *testing.T, c *wstest.Client) wstest.Msg {
	t.Helper()
	for {
		m := c.Next(30 * time.Second)
		if !strings.Contains(string(m.Payload), `"probe"`) {
			return m
		}
	}
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return buf.String()
}
