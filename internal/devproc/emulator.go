package devproc

import (
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/testlog"
)

// emulatorModule is the runtime interface emulator's main package; go.mod pins its version as a
// tool.
const emulatorModule = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// BuildLambda compiles bootstrap for this machine as make build does for Lambda (CGO_ENABLED=0,
// -tags lambda.norpc -trimpath -ldflags='-s -w': a static binary, without libc mapped), once per
// test binary, and returns its path.
func BuildLambda(t testing.TB) string {
	t.Helper()
	return build(t, "bootstrap-lambda", []string{"CGO_ENABLED=0"}, "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", ".")
}

// BuildEmulator compiles the AWS Lambda runtime interface emulator at the version go.mod pins,
// once per test binary, and returns its path.
func BuildEmulator(t testing.TB) string {
	t.Helper()
	return build(t, "aws-lambda-rie", nil, emulatorModule)
}

// FreeAddr returns a loopback address whose port is free now (FreePort).
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

var handedOut sync.Map // ports FreePort returned in this process

// FreePort returns a loopback port that is free now and that a process started later can bind. It
// is chosen below the kernel's ephemeral range, never as the kernel's pick for port 0: a port from
// that range is also what every outgoing connection of the machine takes as its source, so
// between the check and the child's bind another test's client could hold it (a runtime emulator
// once died at its first invocation for that, address already in use). No port is handed out twice
// in one process.
func FreePort() (int, error) {
	lo := ephemeralLow()
	const base = 10000
	for range 200 {
		port := base + rand.IntN(lo-base)
		if _, dup := handedOut.LoadOrStore(port, true); dup {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a crowded low range: the kernel's pick
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the lowest port of the kernel's ephemeral range (Linux's default where it cannot
// be read).
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				lo = n
			}
		}
	}
	return lo
}

// An Emulator is a Lambda function running under the runtime interface emulator, serially (one
// invocation at a time, as one execution environment).
type Emulator struct {
	// Addr is the emulator's host:port; its invoke endpoint is http://Addr + facts.InvokePath.
	Addr string
	// Pid is the emulator's process id (and its process group's); the function runs as its
	// child, started at the first invocation.
	Pid int
	out *testlog.Buffer
}

// StartEmulator runs the function binary fn under the emulator (BuildEmulator) with the
// environment env, in a process group of its own, and waits until the emulator listens. The
// group is killed when the test ends, and its output logged if the test failed.
func StartEmulator(t testing.TB, fn string, env []string) *Emulator {
	t.Helper()
	e := &Emulator{Addr: FreeAddr(t), out: &testlog.Buffer{}}
	cmd := exec.Command(BuildEmulator(t), "--runtime-interface-emulator-address", e.Addr, "--runtime-api-address", FreeAddr(t), fn)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = e.out, e.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.Pid = cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("emulator and function output:\n%s", e.out.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.Dial("tcp", e.Addr)
		if err == nil {
			c.Close()
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator does not listen: %v\n%s", err, e.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Output is what the emulator and the function printed so far.
func (e *Emulator) Output() string { return e.out.String() }
