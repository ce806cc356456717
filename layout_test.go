package main_test

// The repository's shape, as the README states it: the layers imports go down through, one
// package doc per package, and the README's package and test tables naming exactly the packages
// there are.

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/realtime-gql/lambdaws"

// pkg is what go list says of a package of the module.
type pkg struct {
	ImportPath   string
	Name         string
	Dir          string
	GoFiles      []string
	TestGoFiles  []string
	XTestGoFiles []string
	Imports      []string
}

// rel is the package's path in the repository, "main" for the root package as the README's
// layers name it.
func (p pkg) rel() string {
	if p.ImportPath == module {
		return "main"
	}
	return strings.TrimPrefix(p.ImportPath, module+"/")
}

// listPackages runs go list over the module.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	return pkgs
}

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fenced returns the lines of the README's code block whose info string is "text " + name.
func fenced(t *testing.T, readme, name string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "\n```text "+name+"\n")
	if !ok {
		t.Fatalf("the README has no ```text %s block", name)
	}
	body, _, _ := strings.Cut(rest, "\n```")
	return strings.Split(body, "\n")
}

// layers reads the README's layers, top first: each package's layer number (0 the top), and the
// test support packages.
func layers(t *testing.T, readme string) (layer map[string]int, support map[string]bool) {
	t.Helper()
	layer, support = map[string]int{}, map[string]bool{}
	for i, line := range fenced(t, readme, "layers") {
		for _, p := range strings.Fields(line) {
			if _, dup := layer[p]; dup {
				t.Errorf("the README places %s twice", p)
			}
			layer[p] = i
		}
	}
	for _, line := range fenced(t, readme, "test-support") {
		for _, p := range strings.Fields(line) {
			support[p] = true
		}
	}
	return layer, support
}

// testOnly reports whether a package holds tests only (e2e/…): no code besides a doc comment.
func testOnly(p pkg) bool {
	return strings.HasPrefix(p.rel(), "e2e") && len(p.Imports) == 0 && (len(p.GoFiles) == 0 || slices.Equal(p.GoFiles, []string{"doc.go"}))
}

// TestLayoutLayers: every package is placed in the README's layers, or is test support, or holds
// tests only; a package of a layer imports only packages of the layers below (never one of its
// own layer, never test support); the router and the local runtime import only the event shapes,
// the cross-origin policy and the facts, and are imported only by the two top layers.
func TestLayoutLayers(t *testing.T) {
	layer, support := layers(t, readme(t))
	edges := map[string]bool{"router": true, "internal/local": true}
	edgesImport := map[string]bool{"internal/envelope": true, "internal/cors": true, "internal/facts": true}
	seen := map[string]bool{}
	for _, p := range listPackages(t) {
		name := p.rel()
		seen[name] = true
		l, placed := layer[name]
		switch {
		case placed && support[name]:
			t.Errorf("%s is both in a layer and test support", name)
		case !placed && !support[name] && !testOnly(p):
			t.Errorf("%s is in no layer of the README, nor test support, nor tests only: place it", name)
		}
		if !placed {
			continue
		}
		for _, imp := range p.Imports {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := pkg{ImportPath: imp}.rel()
			dl, ok := layer[dep]
			switch {
			case support[dep]:
				t.Errorf("%s imports the test support %s", name, dep)
			case !ok:
				t.Errorf("%s imports %s, which no layer places", name, dep)
			case dl <= l:
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go only downward", name, l+1, dep, dl+1)
			case edges[name] && !edgesImport[dep]:
				t.Errorf("%s imports %s: it knows nothing of the rest (only internal/envelope, internal/cors and internal/facts)", name, dep)
			case edges[dep] && l > 1:
				t.Errorf("%s imports %s: only the two top layers may", name, dep)
			}
		}
	}
	for name := range layer {
		if !seen[name] {
			t.Errorf("the README's layers name %s, which is no package", name)
		}
	}
	for name := range support {
		if !seen[name] {
			t.Errorf("the README's test support names %s, which is no package", name)
		}
	}
}

// TestLayoutPackageDocs: every package has exactly one package doc comment, in one of its files
// (a test file for a package of tests only), and it starts "Package name " ("Command name " for a
// command).
func TestLayoutPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		var docs []string
		for _, f := range slices.Concat(p.GoFiles, p.TestGoFiles) {
			af, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc == nil {
				continue
			}
			docs = append(docs, f)
			text := af.Doc.Text()
			if !strings.HasPrefix(text, "Package "+p.Name+" ") && !(p.Name == "main" && strings.HasPrefix(text, "Command ")) {
				t.Errorf("%s: the package doc in %s starts %q, want \"Package %s …\"", p.rel(), f, strings.SplitN(text, "\n", 2)[0], p.Name)
			}
		}
		if len(docs) != 1 {
			t.Errorf("%s: %d package doc comments (%s), want exactly one", p.rel(), len(docs), strings.Join(docs, ", "))
		}
	}
}

// table returns the rows of the README's table whose header is header, as cells.
func table(t *testing.T, readme, header string) [][]string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "\n"+header+"\n")
	if !ok {
		t.Fatalf("the README has no table headed %q", header)
	}
	var rows [][]string
	for _, line := range strings.Split(rest, "\n")[1:] { // after |---|
		if !strings.HasPrefix(line, "|") {
			break
		}
		rows = append(rows, strings.Split(strings.Trim(line, "|"), " | "))
	}
	return rows
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// spans returns the code spans of s.
func spans(s string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// named returns the packages and files a README cell names in code spans: each span that is a
// package's path (with or without a trailing slash; main.go names the root package), and each
// span that looks like a path in the repository. Paths that do not exist are errors.
func named(t *testing.T, what, cell string, pkgs map[string]bool) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, s := range spans(cell) {
		p := strings.TrimSuffix(s, "/")
		switch {
		case s == "main.go":
			out["main"] = true
		case pkgs[p]:
			out[p] = true
		case strings.Contains(s, "/") && !strings.ContainsAny(s, " $*{}()"):
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s names %s, which does not exist", what, s)
			}
		}
	}
	return out
}

// TestLayoutREADMETables: the README's package table names every package of the module (in code
// spans) and no path that does not exist; its Tests table names, in its first column, every
// package that has tests, and its commands name packages and make targets that exist.
func TestLayoutREADMETables(t *testing.T) {
	text := readme(t)
	all, tested := map[string]bool{}, map[string]bool{}
	for _, p := range listPackages(t) {
		all[p.rel()] = true
		if len(p.TestGoFiles)+len(p.XTestGoFiles) > 0 {
			tested[p.rel()] = true
		}
	}

	inTable := map[string]bool{}
	for _, row := range table(t, text, "| package | job |") {
		for p := range named(t, "the package table", strings.Join(row, " | "), all) {
			inTable[p] = true
		}
	}
	for p := range all {
		if !inTable[p] {
			t.Errorf("the README's package table does not name %s", p)
		}
	}

	makefile, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	suites := map[string]bool{}
	for _, row := range table(t, text, "| suite | what it proves | command |") {
		if len(row) != 3 {
			t.Errorf("a row of the Tests table has %d cells: %q", len(row), row)
			continue
		}
		for p := range named(t, "the Tests table", row[0], all) {
			suites[p] = true
		}
		for _, cmd := range spans(row[2]) {
			f := strings.Fields(cmd)
			switch {
			case len(f) >= 2 && f[0] == "go" && f[1] == "test":
				for _, arg := range f[2:] {
					if !strings.HasPrefix(arg, ".") {
						continue
					}
					p := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(arg, "./"), "..."), "/")
					if p == "" || p == "." {
						continue
					}
					if _, err := os.Stat(p); err != nil {
						t.Errorf("the Tests table runs %q: %s does not exist", cmd, arg)
					}
				}
			case len(f) == 2 && f[0] == "make":
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(f[1]) + `:`).Match(makefile) {
					t.Errorf("the Tests table runs %q: the Makefile has no target %s", cmd, f[1])
				}
			case len(f) > 0 && (f[0] == "go" || f[0] == "make"):
				t.Errorf("the Tests table runs %q, a command this test does not check", cmd)
			}
		}
	}
	for p := range tested {
		if !suites[p] {
			t.Errorf("the README's Tests table does not name %s, which has tests", p)
		}
	}
}
