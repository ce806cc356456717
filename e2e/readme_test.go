package e2e

import (
	"bufio"
	"context"
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

	// The subscription is stored asynchronously and never acknowledged: send the README's
	// mutation until the snippet prints it (the first one it receives is the one to check).
	const mutation = `{"query":"mutation { sendMessage(roomId: \"lobby\", author: \"ann\", text: \"hi\") { id } }"}`
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
			resp, err := http.Post("http://"+p.Addr+"/graphql", "application/json", strings.NewReader(mutation))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("the mutation answered %d", resp.StatusCode)
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
