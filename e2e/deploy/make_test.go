package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/testenv"
)

// TestMakeInstallsNodeModulesOnlyWhenStale: `make deploy` and `make package` run `npm ci` only
// when node_modules is missing or older than package-lock.json, never on every run. The
// repository's Makefile runs with -n (print, do not run) in a directory whose package-lock.json
// and node_modules have the times each case needs.
func TestMakeInstallsNodeModulesOnlyWhenStale(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join(devproc.Root(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("make"); err != nil {
		testenv.MissingTool(t, "make", "install GNU make (apt-get install -y make)")
	}
	old, recent := time.Now().Add(-time.Hour), time.Now().Add(-time.Minute)
	for _, c := range []struct {
		name        string
		modules     *time.Time // nil: no node_modules
		lock        time.Time
		wantInstall bool
	}{
		{name: "installed after the lock file", modules: &recent, lock: old, wantInstall: false},
		{name: "lock file changed since", modules: &old, lock: recent, wantInstall: true},
		{name: "never installed", modules: nil, lock: old, wantInstall: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "Makefile"), makefile, 0o644); err != nil {
				t.Fatal(err)
			}
			lock := filepath.Join(dir, "package-lock.json")
			if err := os.WriteFile(lock, []byte("{}"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(lock, c.lock, c.lock); err != nil {
				t.Fatal(err)
			}
			if c.modules != nil {
				modules := filepath.Join(dir, "node_modules")
				if err := os.Mkdir(modules, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(modules, *c.modules, *c.modules); err != nil {
					t.Fatal(err)
				}
			}
			for _, target := range []string{"deploy", "package"} {
				cmd := exec.Command("make", "-n", target)
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("make -n %s: %v\n%s", target, err, out)
				}
				if installs := strings.Contains(string(out), "npm ci"); installs != c.wantInstall {
					t.Errorf("make %s runs npm ci: %v, want %v\n%s", target, installs, c.wantInstall, out)
				}
				if !strings.Contains(string(out), "npx serverless "+target+" --stage prod") {
					t.Errorf("make %s does not run serverless %s:\n%s", target, target, out)
				}
			}
		})
	}
}
