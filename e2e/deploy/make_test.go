package deploy

import (
	"os"
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
			for _, target := range []string{"deploy", "package"} {
				out := testenv.MakeDir{Lock: c.lock, Modules: c.modules}.DryRun(t, makefile, target, nil)
				if installs := strings.Contains(out, "npm ci"); installs != c.wantInstall {
					t.Errorf("make %s runs npm ci: %v, want %v\n%s", target, installs, c.wantInstall, out)
				}
				if !strings.Contains(out, "npx serverless "+target+" --stage prod") {
					t.Errorf("make %s does not run serverless %s:\n%s", target, target, out)
				}
			}
		})
	}
}
