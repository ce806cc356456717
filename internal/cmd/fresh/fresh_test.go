package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A tiny module whose generator writes out.txt (upper-cased) from every in*.txt.
var module = map[string]string{
	"go.mod":     "module example.com/gen\n\ngo 1.26\n",
	".gitignore": "/ignored/\n",
	"doc.go":     "// Package gen is generated.\npackage gen\n\n//go:generate go run ./tool\n",
	"tool/main.go": `package main

import (
	"os"
	"path/filepath"
	"strings"
)

func main() {
	var out strings.Builder
	files, _ := filepath.Glob("in*.txt")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		out.WriteString(strings.ToUpper(string(b)))
	}
	os.WriteFile("out.txt", []byte(out.String()), 0o644)
	os.MkdirAll("ignored", 0o755)
	os.WriteFile("ignored/cache", []byte(out.String()), 0o644) // ignored by git: not a generated source
}
`,
	"in1.txt": "hello\n",
	"out.txt": "HELLO\n",
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// TestCheck: fresh passes a committed tree that is up to date, and uncommitted work that was
// regenerated (a changed source, a new untracked source); it fails, naming the file, when a
// source changed and the generated file was not regenerated, or a generated file was edited by
// hand; and it never writes the working tree.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	for name, content := range module {
		write(t, dir, name, content)
	}
	run(t, dir, "git", "init", "-q")
	run(t, dir, "git", "add", "-A")
	run(t, dir, "git", "commit", "-q", "-m", "initial")
	stale := func() []string {
		t.Helper()
		got, err := check(dir, nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := stale(); len(got) != 0 {
		t.Fatalf("the committed, generated tree is reported stale: %v", got)
	}

	// Uncommitted source work, regenerated: fresh.
	write(t, dir, "in1.txt", "hello, world\n")
	write(t, dir, "in2.txt", "again\n") // untracked
	write(t, dir, "out.txt", "HELLO, WORLD\nAGAIN\n")
	if got := stale(); len(got) != 0 {
		t.Fatalf("regenerated uncommitted work is reported stale: %v", got)
	}

	// A source changed without regenerating: stale, and the working tree is left as it was.
	write(t, dir, "in2.txt", "changed\n")
	if got := stale(); !slices.Equal(got, []string{"out.txt"}) {
		t.Fatalf("stale = %v, want [out.txt]", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "out.txt")); string(b) != "HELLO, WORLD\nAGAIN\n" {
		t.Fatalf("the check rewrote out.txt: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "ignored")); err == nil {
		t.Fatal("the check ran the generator in the working tree")
	}

	// A generated file edited by hand: stale.
	write(t, dir, "in2.txt", "again\n")
	write(t, dir, "out.txt", "HELLO, WORLD\nAGAIN\n// edited\n")
	if got := stale(); !slices.Equal(got, []string{"out.txt"}) {
		t.Fatalf("stale = %v, want [out.txt]", got)
	}

	// A generated file that is missing: stale.
	write(t, dir, "out.txt", "HELLO, WORLD\nAGAIN\n")
	run(t, dir, "git", "add", "-A")
	run(t, dir, "git", "commit", "-q", "-m", "second")
	os.Remove(filepath.Join(dir, "out.txt"))
	if got := stale(); !slices.Equal(got, []string{"out.txt"}) {
		t.Fatalf("stale = %v, want [out.txt]", got)
	}

	// A generator that fails is an error, not a verdict.
	write(t, dir, "out.txt", "HELLO, WORLD\nAGAIN\n")
	write(t, dir, "tool/main.go", "package main\n\nfunc main() { panic(\"broken\") }\n")
	if _, err := check(dir, nil, io.Discard); err == nil || !strings.Contains(err.Error(), "go generate") {
		t.Fatalf("a failing generator: %v", err)
	}
}
