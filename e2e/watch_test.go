package e2e

import (
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
)

// copyModule copies the repository's sources (no .git, node_modules, build outputs or data) to a
// temporary directory, for tests that edit them.
func copyModule(t *testing.T) string {
	t.Helper()
	root, dst := devproc.Root(t), t.TempDir()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			switch base := d.Name(); {
			case rel == ".":
				return nil
			case strings.HasPrefix(base, "."), base == "node_modules", rel == "dist", rel == "bin", base == "artifacts":
				return filepath.SkipDir
			}
			return os.Mkdir(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() || strings.HasSuffix(rel, ".test") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDevWatch runs `bootstrap dev --watch` on a copy of this module, as the day-2 loop does: a
// Go change rebuilds and restarts the runtime on the same port with the same data; a broken build
// prints the compiler's error while the running runtime keeps answering; a schema change runs go
// generate (gqlgen) before the build and the API shows it; Ctrl-C stops the watcher and the
// runtime, with status 0.
func TestDevWatch(t *testing.T) {
	mod := copyModule(t)
	data := t.TempDir()
	s := startSession(t, mod, []string{"LOG_LEVEL=info", "NO_COLOR=1"}, devproc.Build(t), "dev", "--watch", "--port", "0", "--data", data)
	s.failOn = "no server is running"
	out := s.waitOutput("Ctrl-C stops it.", 1, 3*time.Minute)
	m := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/graphql\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no address in:\n%s", out)
	}
	addr := m[1]
	if _, err := post(http.DefaultClient, addr, `mutation { sendMessage(roomId: "w", author: "a", text: "before") { id } }`, nil); err != nil {
		t.Fatal(err)
	}

	// A Go change: the startup line is main.go's; the new one prints the edited line.
	editFile(t, filepath.Join(mod, "main.go"), `"local runtime ready (data in %s)\n"`, `"local runtime ready, edited (data in %s)\n"`)
	s.waitOutput("local runtime ready, edited", 1, 3*time.Minute)
	out = s.waitOutput("Ctrl-C stops it.", 2, time.Minute) // the end of the restarted runtime's banner
	if i := strings.Index(out, "local runtime ready, edited"); i < 0 || !strings.Contains(out[i:], "http://"+addr+"/graphql\n") {
		t.Errorf("not restarted on the same address %s:\n%s", addr, out)
	}
	if got := roomMessages(t, addr, "w"); len(got) != 1 {
		t.Errorf("after the restart room w has %v, want the message sent before it (the same data)", got)
	}

	// A broken build: the error is printed; the running runtime keeps answering.
	broken := filepath.Join(mod, "graph", "broken.go")
	if err := os.WriteFile(broken, []byte("package graph\n\nfunc broken() int { return \"no\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = s.waitOutput("the server keeps running the previous build", 1, 3*time.Minute)
	if !strings.Contains(out, "graph/broken.go:3:") {
		t.Errorf("the compiler's error is not shown:\n%s", out)
	}
	if got := roomMessages(t, addr, "w"); len(got) != 1 {
		t.Errorf("after a failed build the runtime answers %v", got)
	}

	// Fixed, and the schema changed: go generate, then the build; introspection shows the change.
	s.failOn = "go generate ./... failed"
	os.Remove(broken)
	schema := filepath.Join(mod, "graph", "schema.graphqls")
	desc := regexp.MustCompile(`(?m)^"[^"\n]*"\ntype Message\b`).FindString(readFile(t, schema))
	if desc == "" {
		t.Fatalf("%s has no one-line description before type Message", schema)
	}
	editFile(t, schema, desc, "\"A chat message, edited while watched.\"\ntype Message")
	out = s.waitOutput("Ctrl-C stops it.", 3, 5*time.Minute)
	if !strings.Contains(out, "schema changed: running go generate ./...") {
		t.Errorf("go generate was not run for the schema change:\n%s", out)
	}
	data2, err := post(http.DefaultClient, addr, `{ __type(name: "Message") { description } }`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := data2["__type"].(map[string]any)["description"]; d != "A chat message, edited while watched." {
		t.Errorf("the description after the schema change: %v", d)
	}

	if err := s.signal(syscall.SIGINT, 30*time.Second); err != nil {
		t.Errorf("Ctrl-C: %v, want exit status 0\n%s", err, s.out.String())
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the runtime still listens after Ctrl-C")
	}
	t.Logf("dev --watch printed:\n%s", s.out.String())
}
