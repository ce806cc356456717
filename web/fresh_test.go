package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDistIsFresh fails when web/dist is not what `go generate ./web` builds from web/src,
// build.mjs and the npm packages package-lock.json pins: each source's hash, each bundled
// package's version and integrity, and each page's hash must match web/dist/manifest.json.
func TestDistIsFresh(t *testing.T) {
	if problems := staleness(t, ".."); len(problems) > 0 {
		t.Fatalf("web/dist is stale:\n  %s\nrebuild it with `go generate ./web` (needs Node 20 and `npm ci` at the repository root) and commit web/dist",
			strings.Join(problems, "\n  "))
	}
}

// TestStalenessIsDetected: the check above notices a changed source, a new source, a changed
// lockfile entry and an edited page.
func TestStalenessIsDetected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, root string)
		want   string
	}{
		{"changed source", func(t *testing.T, root string) {
			appendTo(t, filepath.Join(root, "web/src/demo/main.js"), "\n// changed\n")
		}, "web/src/demo/main.js changed"},
		{"new source", func(t *testing.T, root string) {
			write(t, filepath.Join(root, "web/src/demo/extra.js"), "export {};\n")
		}, "web/src/demo/extra.js is new"},
		{"changed build script", func(t *testing.T, root string) {
			appendTo(t, filepath.Join(root, "web/build.mjs"), "\n")
		}, "web/build.mjs changed"},
		{"other package version", func(t *testing.T, root string) {
			path := filepath.Join(root, "package-lock.json")
			var lock map[string]any
			b, _ := os.ReadFile(path)
			if err := json.Unmarshal(b, &lock); err != nil {
				t.Fatal(err)
			}
			lock["packages"].(map[string]any)["node_modules/graphiql"].(map[string]any)["version"] = "0.0.1"
			b, _ = json.Marshal(lock)
			write(t, path, string(b))
		}, "node_modules/graphiql: package-lock.json has"},
		{"edited page", func(t *testing.T, root string) {
			appendTo(t, filepath.Join(root, "web/dist/demo.html"), "<!-- edited -->")
		}, "web/dist/demo.html does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			copyTree(t, "..", root, "package-lock.json", "web/build.mjs", "web/src", "web/dist")
			if p := staleness(t, root); len(p) > 0 {
				t.Fatalf("the copy is stale before the change: %v", p)
			}
			tc.change(t, root)
			p := staleness(t, root)
			if !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Fatalf("staleness = %q, want a problem containing %q", p, tc.want)
			}
		})
	}
}

// staleness compares the repository at root with web/dist/manifest.json there and returns what
// differs.
func staleness(t *testing.T, root string) []string {
	t.Helper()
	var m manifest
	readJSON(t, filepath.Join(root, "web/dist/manifest.json"), &m)
	var problems []string

	sources := map[string]string{"web/build.mjs": hashFile(t, filepath.Join(root, "web/build.mjs"))}
	err := filepath.WalkDir(filepath.Join(root, "web/src"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		sources[filepath.ToSlash(rel)] = hashFile(t, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, sum := range sources {
		switch want, ok := m.Sources[name]; {
		case !ok:
			problems = append(problems, name+" is new since the build")
		case want != sum:
			problems = append(problems, name+" changed since the build")
		}
	}
	for name := range m.Sources {
		if _, ok := sources[name]; !ok {
			problems = append(problems, name+" was removed since the build")
		}
	}

	var lock struct {
		Packages map[string]struct {
			Version   string `json:"version"`
			Integrity string `json:"integrity"`
		} `json:"packages"`
	}
	readJSON(t, filepath.Join(root, "package-lock.json"), &lock)
	for key, want := range m.Packages {
		e := lock.Packages[key]
		if got := e.Version + " " + e.Integrity; got != want {
			problems = append(problems, fmt.Sprintf("%s: package-lock.json has %q, the build used %q", key, got, want))
		}
	}

	for name, pg := range m.Pages {
		path := filepath.Join(root, "web/dist", pg.File)
		if sum := hashFile(t, path); sum != pg.SHA256 {
			problems = append(problems, fmt.Sprintf("web/dist/%s does not match the build of page %s (edited by hand?)", pg.File, name))
		}
	}
	slices.Sort(problems)
	return problems
}

func hashFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path, content string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, string(b)+content)
}

// copyTree copies the named files and directories from src to dst.
func copyTree(t *testing.T, src, dst string, names ...string) {
	t.Helper()
	for _, name := range names {
		err := filepath.WalkDir(filepath.Join(src, name), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, path)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o755)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
