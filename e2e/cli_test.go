package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/testlog"
)

// session is a command running in a process group of its own, as a terminal runs a foreground
// job: signals go to the whole group, as Ctrl-C does.
type session struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *testlog.Buffer // stdout and stderr
	exited  chan struct{}
	waitErr error
	// failOn, when set, ends a wait at once when the output holds it.
	failOn string
}

func startSession(t *testing.T, dir string, env []string, name string, args ...string) *session {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s := &session{t: t, cmd: cmd, out: &testlog.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	})
	return s
}

// waitOutput waits until the output holds want n times, and returns the output.
func (s *session) waitOutput(want string, n int, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := s.out.String()
		if strings.Count(out, want) >= n {
			return out
		}
		select {
		case <-s.exited:
			s.t.Fatalf("%s exited (%v) before printing %q (%d times):\n%s", s.cmd.Path, s.waitErr, want, n, out)
		default:
		}
		if s.failOn != "" && strings.Contains(out, s.failOn) {
			s.t.Fatalf("waiting for %q (%d times), got %q:\n%s", want, n, s.failOn, out)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no %q (%d times) after %v:\n%s", want, n, timeout, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signal sends sig to the whole process group, as a terminal's Ctrl-C does, and waits for the
// command to end.
func (s *session) signal(sig syscall.Signal, timeout time.Duration) error {
	s.t.Helper()
	syscall.Kill(-s.cmd.Process.Pid, sig)
	select {
	case <-s.exited:
		return s.waitErr
	case <-time.After(timeout):
		s.t.Fatalf("still running %v after %v:\n%s", sig, timeout, s.out.String())
		return nil
	}
}

// runBinary runs bootstrap with args and returns its exit status, stdout and stderr.
func runBinary(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(devproc.Build(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr testlog.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestCommandLine runs the built binary as a user does: --help and dev --help exit 0 with the
// environment and flags on stdout, publish --help with its flags; a bad flag (of dev or publish) is
// reported once on stderr with status 2; a port in use says which flag changes it, with status 1.
func TestCommandLine(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"dev", "--help"}} {
		status, out, errOut := runBinary(t, nil, args...)
		if status != 0 || errOut != "" || !strings.Contains(out, "LOG_FORMAT (default console; dev)") {
			t.Errorf("%q: status %d, stderr %q, stdout:\n%s", args, status, errOut, out)
		}
		if args[0] == "dev" && !strings.Contains(out, "--port PORT (default 4000)") {
			t.Errorf("dev --help does not list --port with its default:\n%s", out)
		}
	}
	status, out, errOut := runBinary(t, nil, "dev", "--prot", "4001")
	if status != 2 || out != "" || strings.Count(errOut, "flag provided but not defined: -prot") != 1 {
		t.Errorf("a bad flag: status %d, stdout %q, stderr %q; want 2, nothing, the error once", status, out, errOut)
	}
	// publish: its help lists its flags; its mistakes are reported once, each, with status 2.
	status, out, errOut = runBinary(t, nil, "publish", "--help")
	if status != 0 || errOut != "" || !strings.Contains(out, "--type TYPE\n") || !strings.Contains(out, "--target TARGET (default local)\n") {
		t.Errorf("publish --help: status %d, stderr %q, stdout:\n%s", status, errOut, out)
	}
	status, out, errOut = runBinary(t, nil, "publish", "--typo", "x")
	if status != 2 || out != "" || strings.Count(errOut, "flag provided but not defined: -typo") != 1 || strings.Count(errOut, "\n") != 2 {
		t.Errorf("publish with a bad flag: status %d, stdout %q, stderr %q; want 2, nothing, the error once", status, out, errOut)
	}
	status, out, errOut = runBinary(t, nil, "publish", "--data", "[]")
	if status != 2 || out != "" || errOut != "bootstrap publish: --type is required\n--data: is not a JSON object\n(bootstrap publish --help lists its flags)\n" {
		t.Errorf("publish with two mistakes: status %d, stdout %q, stderr %q", status, out, errOut)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	status, _, errOut = runBinary(t, nil, "dev", "--port", port, "--data", t.TempDir())
	if status != 1 || !strings.Contains(errOut, "address already in use") || !strings.Contains(errOut, "--port N (make dev PORT=N)") {
		t.Errorf("a port in use: status %d, stderr %q", status, errOut)
	}
}

// TestVersion: --version names the commit the binary was built from, and whether the tree had
// uncommitted changes, as git says. (Go reads the commit from a .git directory; in a git worktree,
// where .git is a file, it cannot, and the binary says so.)
func TestVersion(t *testing.T) {
	status, out, _ := runBinary(t, nil, "--version")
	if status != 0 || !strings.HasPrefix(out, "bootstrap ") || !strings.Contains(out, "(github.com/realtime-gql/lambdaws)") {
		t.Fatalf("--version: status %d:\n%s", status, out)
	}
	root := devproc.Root(t)
	fi, err := os.Stat(filepath.Join(root, ".git"))
	git, gitErr := exec.LookPath("git")
	if err != nil || !fi.IsDir() || gitErr != nil {
		if !strings.Contains(out, "commit unknown") {
			t.Errorf("no .git directory (or no git), yet --version names a commit:\n%s", out)
		}
		t.Logf("no .git directory here: the commit is unknown, as printed:\n%s", out)
		return
	}
	head, err := exec.Command(git, "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "commit "+strings.TrimSpace(string(head))+" (") {
		t.Errorf("--version does not name HEAD %s:\n%s", head, out)
	}
	porcelain, err := exec.Command(git, "-C", root, "status", "--porcelain").Output()
	if err != nil {
		t.Fatal(err)
	}
	if dirty := len(porcelain) > 0; strings.Contains(out, "uncommitted changes") != dirty {
		t.Errorf("the tree has uncommitted changes: %v, but --version says:\n%s", dirty, out)
	}
}

// TestSignalsStopCleanly: SIGINT (Ctrl-C) and SIGTERM (docker stop, systemd) shut dev down
// gracefully, with exit status 0.
func TestSignalsStopCleanly(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		s := startSession(t, t.TempDir(), nil, devproc.Build(t), "dev", "--port", "0", "--data", t.TempDir())
		s.waitOutput("Ctrl-C stops it.", 1, 30*time.Second)
		if err := s.signal(sig, 15*time.Second); err != nil {
			t.Errorf("%v: %v, want exit status 0\n%s", sig, err, s.out.String())
		}
	}
}

// TestDevLogs: the built binary's logs on stderr: console lines with millisecond timestamps and no
// colour when stderr is not a terminal, JSON lines with LOG_FORMAT=json; one line per request.
func TestDevLogs(t *testing.T) {
	for _, format := range []string{"", "json"} {
		s := startSession(t, t.TempDir(), []string{"LOG_FORMAT=" + format, "LOG_LEVEL=info", "NO_COLOR="},
			devproc.Build(t), "dev", "--port", "0", "--data", t.TempDir())
		out := s.waitOutput("Ctrl-C stops it.", 1, 30*time.Second)
		m := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/graphql\n`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no address:\n%s", out)
		}
		if _, err := post(http.DefaultClient, m[1], `{ messages(roomId: "r") { id } }`, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.signal(syscall.SIGINT, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		var requests []string
		for _, line := range strings.Split(s.out.String(), "\n") {
			if strings.Contains(line, "POST /graphql") {
				requests = append(requests, line)
			}
		}
		if len(requests) != 1 {
			t.Fatalf("LOG_FORMAT=%q: %d lines for one request, want 1:\n%s", format, len(requests), s.out.String())
		}
		line := requests[0]
		switch format {
		case "json":
			var v map[string]any
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("LOG_FORMAT=json: not a JSON line: %q", line)
			}
			if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(fmt.Sprint(v["time"])) || v["status"] != 200.0 || v["ms"] == nil {
				t.Errorf("LOG_FORMAT=json: the request line %q", line)
			}
		default:
			if strings.Contains(s.out.String(), "\x1b[") {
				t.Errorf("colour codes on a stderr that is not a terminal:\n%q", s.out.String())
			}
			if !regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} INF POST /graphql status=200 ms=[0-9.]+$`).MatchString(line) {
				t.Errorf("console request line %q", line)
			}
		}
	}
}
