// Package devproc builds this module's binaries and runs them as child processes, for tests that need a real process: `bootstrap dev`, and a Lambda function under the runtime interface emulator.
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

// Build compiles the repository's main package for `bootstrap dev` once per test binary and
// returns its path. -buildvcs=auto stamps the commit whenever Go can read it (bootstrap
// --version), whatever GOFLAGS says.
func Build(t testing.TB) string {
	t.Helper()
	return build(t, "bootstrap", nil, "-buildvcs=auto", ".")
}

// built is one binary compiled for the test process.
type built struct {
	once sync.Once
	path string
	err  error
}

var (
	builds   sync.Map // name → *built
	buildDir = sync.OnceValues(newBuildDir)
)

// buildDirPattern names the directories of binaries of test processes in os.TempDir().
const buildDirPattern = "lambdaws-test-bin-*"

// newBuildDir makes the test process's directory of binaries. Nothing runs when a test binary
// ends, so the directory holds a lock file the process keeps locked while it lives, and each new
// one first removes the directories whose lock is free: those of test processes that have ended.
func newBuildDir() (string, error) {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), buildDirPattern))
	for _, d := range old {
		if f, err := os.Open(filepath.Join(d, "lock")); err == nil {
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
				os.RemoveAll(d)
			}
			f.Close()
		}
	}
	dir, err := os.MkdirTemp("", buildDirPattern)
	if err != nil {
		return "", err
	}
	// Locked before it is named "lock", so that no sweep finds it free meanwhile; held, and the
	// file kept open, until the process exits.
	lock, err := os.Create(filepath.Join(dir, "lock.new"))
	if err != nil {
		return "", err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if err := os.Rename(lock.Name(), filepath.Join(dir, "lock")); err != nil {
		return "", err
	}
	buildLocks = append(buildLocks, lock)
	return dir, nil
}

// buildLocks are the locked files of the process's directories of binaries, referenced so that
// they are never closed.
var buildLocks []*os.File

// build runs go build with args in the repository root, with env added to the environment, once
// per test binary and name, and returns the path of the binary.
func build(t testing.TB, name string, env []string, args ...string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(name, &built{})
	b := v.(*built)
	b.once.Do(func() {
		dir, err := buildDir()
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name)
		cmd := exec.Command("go", append([]string{"build", "-o", b.path}, args...)...)
		cmd.Dir = Root(t)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", name, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
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
