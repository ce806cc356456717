package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/testenv"
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
	var stderr devproc.Buffer
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
	const want = `{"data":{"messageAdded":{"author":"ann","text":"hi"}}}` + withEvent
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for sent := 0; ; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the snippet exited without printing a message\nstderr:\n%s\nbootstrap dev:\n%s", stderr.String(), p.Output())
			}
			if got := resultLine(json.RawMessage(line)); got != want {
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
