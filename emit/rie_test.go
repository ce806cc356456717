package emit_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/emit"
	"github.com/realtime-gql/lambdaws/emit/emittest"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/testlog"
)

// TestLocalUnderTheRuntimeEmulator emits to the AWS Lambda runtime interface emulator (pinned as a
// tool in go.mod) running a function that decodes the event as the real one does: the path, the
// event's shape and the answer to a function error are AWS's own, not this package's idea of them.
func TestLocalUnderTheRuntimeEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the emulator and a function")
	}
	bin := t.TempDir()
	for _, b := range [][]string{
		{filepath.Join(bin, "aws-lambda-rie"), "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"},
		{filepath.Join(bin, "fn"), "-tags", "lambda.norpc", "./testdata/rieecho"},
	} {
		cmd := exec.Command("go", append([]string{"build", "-o"}, b...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", b, err, out)
		}
	}
	rieAddr, apiAddr := freeAddr(t), freeAddr(t)
	outDir := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "aws-lambda-rie"),
		"--runtime-interface-emulator-address", rieAddr, "--runtime-api-address", apiAddr, filepath.Join(bin, "fn"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "OUT_DIR=" + outDir, "AWS_LAMBDA_FUNCTION_TIMEOUT=10"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out testlog.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("emulator and function output:\n%s", out.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.Dial("tcp", rieAddr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator does not listen: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	e, err := emit.New(emit.Config{Target: emit.Local, URL: "http://" + rieAddr + emittest.InvokePath, Source: "com.example.chat"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := e.Emit(ctx, "chat.announcement", ann)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(outDir, "change.json"))
	if err != nil {
		t.Fatalf("the function did not record the change: %v", err)
	}
	var ch engine.Change
	if err := json.Unmarshal(b, &ch); err != nil {
		t.Fatal(err)
	}
	if ch.ID != id || ch.Type != "chat.announcement" {
		t.Errorf("the function decoded %+v, want id %s", ch, id)
	}
	jsonEq(t, ch.Value, []byte(annJSON))

	_, err = e.Emit(ctx, "test.fail", ann)
	want := "emit: event rejected: local test.fail: the function failed: errorString: the test asked to fail"
	if !errors.Is(err, emit.ErrRejected) || err.Error() != want {
		t.Errorf("Emit to a failing function = %v, want %q", err, want)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
