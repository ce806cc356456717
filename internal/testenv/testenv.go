// Package testenv finds the external tools tests need (Node and the npm packages in node_modules, Chromium, make), skipping clearly, or in CI failing, when one is missing, and dry-runs the Makefile against them.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI, where every tool must be present.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test with a clear message on a developer machine, and fails it in CI: what is
// missing from node_modules, and that `make test` installs it.
func Missing(t testing.TB, what string) {
	t.Helper()
	MissingTool(t, what, InstallNPM)
}

// MissingTool is Missing for what `make test` cannot install: the message says how to. `make
// test` lists it among the skips.
func MissingTool(t testing.TB, what, install string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s is missing, and CI must run this test (.ci/run installs it)", what)
	}
	t.Skipf("%s is missing: %s (CI runs this test)", what, install)
}

// Install hints, for MissingTool.
const (
	// InstallNode is how to get Node.
	InstallNode = "install Node 20 (https://nodejs.org, or apt-get install -y nodejs npm); make test then installs the npm packages"
	// InstallNPM is how to get the npm packages.
	InstallNPM = "run make test (it runs npm ci when node_modules is missing or older than package-lock.json), or npm ci at the repository root"
)

// Node returns the path of node and the repository's node_modules directory, after checking that
// each named package is installed there.
func Node(t testing.TB, root string, packages ...string) (node, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		MissingTool(t, "node", InstallNode)
	}
	modules = filepath.Join(root, "node_modules")
	for _, p := range packages {
		if _, err := os.Stat(filepath.Join(modules, p, "package.json")); err != nil {
			Missing(t, "the npm package "+p)
		}
	}
	return node, modules
}

// Chromium returns the Chromium binary: $CHROMIUM, else Debian's /usr/bin/chromium. Without it
// the test skips, or in CI fails.
func Chromium(t testing.TB) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		if InCI() {
			t.Fatalf("Chromium (%s) is missing, and CI must run this test (.ci/run installs it)", path)
		}
		t.Skipf("Chromium (%s) is missing: install it (Debian and Ubuntu: sudo apt-get install -y chromium), or set CHROMIUM to a Chromium or Chrome binary (CI runs this test)", path)
	}
	return path
}

// Make returns the path of GNU make. Without it the test skips, or in CI fails.
func Make(t testing.TB) string {
	t.Helper()
	mk, err := exec.LookPath("make")
	if err != nil {
		MissingTool(t, "make", "install GNU make (apt-get install -y make)")
	}
	return mk
}

// A MakeDir is a fresh directory holding a copy of a Makefile and the files its npm rule looks
// at, for `make -n` (what make would run) of a case.
type MakeDir struct {
	// Lock is package-lock.json's modification time.
	Lock time.Time
	// Modules is node_modules' modification time; nil for no node_modules.
	Modules *time.Time
}

// DryRun runs `make -n target` with env (nil: the test's own) in a new directory holding
// makefile, package-lock.json and node_modules as d says, and returns what make would run.
func (d MakeDir) DryRun(t testing.TB, makefile []byte, target string, env []string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), makefile, 0o644); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "package-lock.json")
	if err := os.WriteFile(lock, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(lock, d.Lock, d.Lock); err != nil {
		t.Fatal(err)
	}
	if d.Modules != nil {
		modules := filepath.Join(dir, "node_modules")
		if err := os.Mkdir(modules, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(modules, *d.Modules, *d.Modules); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(Make(t), "-n", target)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(env, "HOME="+dir)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", target, err, out)
	}
	return string(out)
}
