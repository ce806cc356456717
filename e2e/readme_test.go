package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/testenv"
	"github.com/realtime-gql/lambdaws/internal/testlog"
	"github.com/realtime-gql/lambdaws/internal/wstest"
)

// TestReadmeSnippet runs examples/subscribe.mjs, the JavaScript the README shows, as written
// (node, the graphql-ws and ws packages, nothing else) against `bootstrap dev`, sends the README's
// mutation over HTTP, and expects the snippet to print the message. It also checks that the
// README shows the file verbatim, with its install command.
func TestReadmeSnippet(t *testing.T) {
	root := devproc.Root(t)
	snippet, err := os.ReadFile(filepath.Join(root, "examples", "subscribe.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```js\n"+string(snippet)+"```\n") {
		t.Error("README.md does not show examples/subscribe.mjs verbatim in a ```js block")
	}
	if !strings.Contains(string(readme), "npm i graphql-ws ws") {
		t.Error("README.md does not give the snippet's install command, npm i graphql-ws ws")
	}

	node, _ := testenv.Node(t, root, "graphql-ws", "ws")
	p := devproc.Start(t, t.TempDir())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("examples", "subscribe.mjs"), "ws://"+p.Addr+"/graphql")
	cmd.Dir = root
	cmd.WaitDelay = 5 * time.Second
	var stderr testlog.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	// The subscription is stored asynchronously and never acknowledged: run the README's curl
	// command, as written but for the address, until the snippet prints the message (the first one
	// it receives is the one to check).
	mutation := readmeShell(t, string(readme), "curl -s http://127.0.0.1:4000/graphql ", p.Addr)
	want := withEventMark(`{"data":{"messageAdded":{"author":"ann","text":"hi"}}}`)
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for sent := 0; ; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the snippet exited without printing a message\nstderr:\n%s\nbootstrap dev:\n%s", stderr.String(), p.Output())
			}
			if compactJSON([]byte(line)) != want {
				t.Fatalf("the snippet printed %q, want %q", line, want)
			}
			t.Logf("the snippet printed the message after %d mutation(s)", sent)
			return
		case <-tick.C:
			if out := runShell(t, mutation); !strings.Contains(out, `{"data":{"sendMessage":{"id":`) {
				t.Fatalf("the README's mutation printed %q", out)
			}
			sent++
		case <-ctx.Done():
			t.Fatalf("the snippet printed nothing within a minute\nstderr:\n%s\nbootstrap dev:\n%s", stderr.String(), p.Output())
		}
	}
}

// TestReadmeInvalidation runs the README's `bootstrap publish --type lambdaws.invalidate` command
// as written (pointed at this runtime's invoke endpoint, as TestGuide points publish) against
// `bootstrap dev`: the subscription of the topic it names gets complete, and nothing after it.
func TestReadmeInvalidation(t *testing.T) {
	root := devproc.Root(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var command string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "bootstrap publish --type lambdaws.invalidate ") {
			command, _, _ = strings.Cut(line, "#")
			command = strings.TrimSpace(command)
		}
	}
	if !strings.Contains(command, `"topic":"messageAdded?roomId=r1"`) {
		t.Fatalf("README.md shows no `bootstrap publish --type lambdaws.invalidate` of the topic messageAdded?roomId=r1 (found %q)", command)
	}
	bin := devproc.Build(t)
	p := devproc.Start(t, t.TempDir())
	c := wstest.Dial(t, "ws://"+p.Addr+"/graphql", "graphql-transport-ws")
	c.Send(map[string]any{"type": "connection_init"})
	c.Expect("connection_ack", "")
	c.Send(map[string]any{"id": "s1", "type": "subscribe", "payload": map[string]any{"query": `subscription { messageAdded(roomId: "r1") { text } }`}})
	// No acknowledgement exists for a subscribe: send until one arrives.
	for i := 0; ; i++ {
		if i == 30 {
			t.Fatalf("no event delivered to the subscription\n%s", p.Output())
		}
		if _, err := post(http.DefaultClient, p.Addr, `mutation { sendMessage(roomId: "r1", author: "w", text: "probe") { id } }`, nil); err != nil {
			t.Fatal(err)
		}
		if m, ok := c.TryNext(300 * time.Millisecond); ok {
			if m.Type != "next" || m.ID != "s1" {
				t.Fatalf("got %s", m)
			}
			break
		}
	}
	for { // the probes sent before the first arrived
		if _, ok := c.TryNext(300 * time.Millisecond); !ok {
			break
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", bin+strings.TrimPrefix(command, "bootstrap")+" --url http://"+p.Addr+facts.InvokePath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", command, err, out)
	}
	if m := c.Next(10 * time.Second); m.Type != "complete" || m.ID != "s1" {
		t.Fatalf("after the invalidation: %s, want complete for s1", m)
	}
	if _, err := post(http.DefaultClient, p.Addr, `mutation { sendMessage(roomId: "r1", author: "w", text: "after") { id } }`, nil); err != nil {
		t.Fatal(err)
	}
	c.ExpectNone(time.Second)
}

// readmeShell returns the README's ```sh block that starts with start, as written, with the local
// runtime's address 127.0.0.1:4000 replaced by addr.
func readmeShell(t *testing.T, readme, start, addr string) string {
	t.Helper()
	_, block, ok := strings.Cut(readme, "\n```sh\n"+start)
	if !ok {
		t.Fatalf("README.md has no ```sh block starting %q", start)
	}
	block, _, _ = strings.Cut(start+block, "\n```")
	return strings.ReplaceAll(block, "127.0.0.1:4000", addr)
}

// runShell runs a command line with bash and returns its standard output; it fails the test if
// the command fails. It needs curl, as the README's commands do.
func runShell(t *testing.T, line string) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		testenv.MissingTool(t, "curl", "install it (Debian and Ubuntu: sudo apt-get install -y curl)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", line)
	var stderr testlog.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, stderr.String())
	}
	return string(out)
}

// TestReadmeInvokeEndpoint runs the README's curl of the invoke endpoint (an SQS batch: a
// CloudEvent announcement and a message that is not one), as written but for the address,
// against `bootstrap dev`: it prints the response the README shows (the malformed message
// reported), and a subscriber of the room's announcements receives the announcement, with the
// CloudEvent's identity.
func TestReadmeInvokeEndpoint(t *testing.T) {
	root := devproc.Root(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	p := devproc.Start(t, t.TempDir())
	command := readmeShell(t, string(readme), "curl -s http://127.0.0.1:4000/2015-03-31/functions/function/invocations ", p.Addr)
	_, want, ok := strings.Cut(command, "\n# ")
	if !ok {
		t.Fatalf("the README's invoke command shows no response (a # line):\n%s", command)
	}

	c := wstest.Dial(t, "ws://"+p.Addr+"/graphql", "graphql-transport-ws")
	c.Send(map[string]any{"type": "connection_init"})
	c.Expect("connection_ack", "")
	c.Send(map[string]any{"id": "a1", "type": "subscribe", "payload": map[string]any{"query": `subscription { announcement(roomId: "lobby") { text priority } }`}})
	// No acknowledgement exists for a subscribe: post probe announcements (each its own event)
	// until one arrives, so that the README's event, sent once, finds the subscription stored.
	for i := 0; ; i++ {
		if i == 30 {
			t.Fatalf("no probe announcement delivered\n%s", p.Output())
		}
		probe := fmt.Sprintf(`{"id":"probe-%d","detail-type":"chat.announcement","source":"test","detail":{"id":"p","roomId":"lobby","text":"probe","priority":1,"at":"2026-11-26T12:00:00Z"}}`, i)
		resp, err := http.Post("http://"+p.Addr+facts.InvokePath, "application/json", strings.NewReader(probe))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if m, ok := c.TryNext(300 * time.Millisecond); ok {
			if m.Type != "next" || m.ID != "a1" {
				t.Fatalf("got %s", m)
			}
			break
		}
	}
	for { // the probes sent before the first arrived
		if _, ok := c.TryNext(300 * time.Millisecond); !ok {
			break
		}
	}

	if out := runShell(t, command); strings.TrimSpace(out) != strings.TrimSpace(want) {
		t.Fatalf("the README's invoke command printed %q, the README shows %q", out, want)
	}
	m := c.Next(10 * time.Second)
	const delivered = `{"data":{"announcement":{"text":"closing soon","priority":5}},"extensions":{"event":{"id":"shell e1"}}}`
	if m.Type != "next" || m.ID != "a1" || compactJSON(m.Payload) != delivered {
		t.Fatalf("after the README's event: %s, want next %s", m, delivered)
	}
}
