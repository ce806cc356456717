package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/testenv"
)

// TestMakeTestInstallsWhatItNeeds: on a fresh clone `make test` installs the npm packages before
// anything needs them (npm ci, when node is installed and node_modules is missing or older than
// package-lock.json), says when node is missing, and runs the tests through the summary runner
// with the race detector. The repository's Makefile runs with -n (print, do not run) in a
// directory set up for each case, with a stand-in node on PATH or none.
func TestMakeTestInstallsWhatItNeeds(t *testing.T) {
	testenv.Make(t)
	makefile, err := os.ReadFile(filepath.Join(devproc.Root(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	withNode := t.TempDir()
	if err := os.WriteFile(filepath.Join(withNode, "node"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	old, recent := time.Now().Add(-time.Hour), time.Now().Add(-time.Minute)
	for _, c := range []struct {
		name        string
		path        string     // PATH
		modules     *time.Time // nil: no node_modules
		wantInstall bool
	}{
		{"fresh clone", withNode, nil, true},
		{"lock file changed since", withNode, &old, true},
		{"installed after the lock file", withNode, &recent, false},
		{"no node", t.TempDir(), nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := testenv.MakeDir{Lock: time.Now().Add(-30 * time.Minute), Modules: c.modules}.DryRun(t, makefile, "test", []string{"PATH=" + c.path})
			install := strings.Index(out, "npm ci")
			if (install >= 0) != c.wantInstall {
				t.Errorf("runs npm ci: %v, want %v\n%s", install >= 0, c.wantInstall, out)
			}
			if fresh := strings.Index(out, "go run ./internal/cmd/fresh"); fresh < 0 || (install >= 0 && install > fresh) {
				t.Errorf("npm ci must come before the generated-code check (whose go generate builds the pages with the npm packages):\n%s", out)
			}
			if noted := strings.Contains(out, "node is not installed"); noted != (c.path != withNode) {
				t.Errorf("says node is missing: %v, want %v\n%s", noted, c.path != withNode, out)
			}
			if !regexp.MustCompile(`(?m)^GO=go bin/testsummary -race -count=1 -timeout 20m \./\.\.\.$`).MatchString(out) {
				t.Errorf("the tests do not run through bin/testsummary with -race -count=1 and a timeout:\n%s", out)
			}
		})
	}
}

// TestMakeDev runs `make dev` as the README says, on a free port: it says what it builds, prints
// every URL once ready, serves GraphiQL, and Ctrl-C (SIGINT to the whole process group, as a
// terminal sends it) stops it cleanly, without make reporting an error.
func TestMakeDev(t *testing.T) {
	mk := testenv.Make(t)
	root := devproc.Root(t)
	tmp := t.TempDir()
	s := startSession(t, root, nil, mk, "--no-print-directory", "dev", "PORT=0", "DATA="+filepath.Join(tmp, "data"), "BIN="+filepath.Join(tmp, "bootstrap"))
	out := s.waitOutput("Ctrl-C stops it.", 1, 3*time.Minute)
	if !strings.HasPrefix(out, "building "+filepath.Join(tmp, "bootstrap")+" (the first build takes a minute") {
		t.Errorf("make dev does not start by saying what it builds:\n%s", out)
	}
	addr := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/graphql\n`).FindStringSubmatch(out)
	if addr == nil {
		t.Fatalf("no GraphQL over HTTP URL:\n%s", out)
	}
	for _, want := range []string{
		"GraphiQL                http://" + addr[1] + "/\n",
		"chat demo               http://" + addr[1] + "/demo\n",
		"GraphQL over WebSocket  ws://" + addr[1] + "/graphql",
		"GraphQL over HTTP       http://" + addr[1] + "/graphql\n",
		"management API          http://" + addr[1] + "/@connections/{id}  (SigV4 with this process's own credentials only)\n",
		"invoke (events)         POST http://" + addr[1] + "/2015-03-31/functions/function/invocations  (any event JSON",
		"chunk queue (SQS)       http://" + addr[1] + "/000000000000/lambdaws-dev-chunks  (the SQS API, emulated",
		"authentication          none: AUTH_MODE is unset",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("make dev does not print %q:\n%s", want, out)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+addr[1]+"/", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GraphiQL: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	err = s.signal(syscall.SIGINT, 20*time.Second)
	after := s.out.String()[len(out):]
	t.Logf("make dev after Ctrl-C: %v, printed %q", err, after)
	if strings.Contains(after, "make: ***") || strings.Contains(after, " ERR ") {
		t.Errorf("Ctrl-C through make dev: make reported an error:\n%s", after)
	}
	// make itself dies of the SIGINT it received, as it should; what matters is that its child
	// exited 0, which is why make printed nothing.
	if err != nil {
		var status syscall.WaitStatus
		if ps := s.cmd.ProcessState; ps != nil {
			status, _ = ps.Sys().(syscall.WaitStatus)
		}
		if !status.Signaled() || status.Signal() != syscall.SIGINT {
			t.Errorf("make dev ended with %v, want 0 or death by the SIGINT it was sent", err)
		}
	}
}

// TestMakeWatch: `make watch` is `make dev` with --watch, on make dev's port and data.
func TestMakeWatch(t *testing.T) {
	mk := testenv.Make(t)
	cmd := exec.Command(mk, "-n", "watch", "PORT=4100", "DATA=/tmp/d")
	cmd.Dir = devproc.Root(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n watch: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^exec bin/bootstrap dev --port 4100 --data /tmp/d +--watch$`).Match(out) {
		t.Errorf("make watch does not run bin/bootstrap dev --watch on make dev's port and data:\n%s", out)
	}
}
