// Package devproc builds the bootstrap binary and runs `bootstrap dev` as a child process, for tests that need a real process: crash recovery and the npm clients.
package devproc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/testlog"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Root returns the repository root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// Build compiles the repository's main package once per test binary and returns its path.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bootstrap-*")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "bootstrap")
		// -buildvcs=auto: stamp the commit whenever Go can read it (bootstrap --version),
		// whatever GOFLAGS says.
		cmd := exec.Command("go", "build", "-buildvcs=auto", "-o", binPath, ".")
		cmd.Dir = Root(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Proc is a running `bootstrap dev`.
type Proc struct {
	// Addr is host:port it listens on.
	Addr string
	// Data is its data directory.
	Data    string
	cmd     *exec.Cmd
	out     *testlog.Buffer
	exited  chan struct{} // closed when the process has ended
	waitErr error         // valid once exited is closed
}

var readyLine = regexp.MustCompile(`ws://([0-9.]+:[0-9]+)/graphql`)

// Start runs `bootstrap dev --port 0 --data data` plus args, and waits until it prints its URLs.
func Start(t testing.TB, data string, args ...string) *Proc {
	t.Helper()
	bin := Build(t)
	cmd := exec.Command(bin, append([]string{"dev", "--port", "0", "--data", data}, args...)...)
	cmd.Env = append(os.Environ(), "LOG_LEVEL=warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{Data: data, cmd: cmd, out: &testlog.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.out.Write(append(sc.Bytes(), '\n'))
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.Kill() })
	select {
	case p.Addr = <-addr:
	case <-p.exited:
		t.Fatalf("bootstrap dev exited before it was ready: %v\n%s", p.waitErr, p.out.String())
	case <-time.After(30 * time.Second):
		p.Kill()
		t.Fatalf("bootstrap dev not ready after 30s\n%s", p.out.String())
	}
	return p
}

// Kill sends SIGKILL (a crash) and waits for the process to end.
func (p *Proc) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.wait(10 * time.Second)
}

// Stop sends SIGINT (a clean shutdown) and returns the process's exit error.
func (p *Proc) Stop(t testing.TB) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	return p.wait(15 * time.Second)
}

func (p *Proc) wait(d time.Duration) error {
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(d):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("process did not exit within %v", d)
	}
}

// Output is what the process printed so far (stdout and stderr).
func (p *Proc) Output() string { return p.out.String() }
