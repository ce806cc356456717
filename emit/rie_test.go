package emit_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/emit"
	"github.com/realtime-gql/lambdaws/emit/emittest"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/devproc"
)

// TestLocalUnderTheRuntimeEmulator emits to the AWS Lambda runtime interface emulator (pinned as a
// tool in go.mod) running a function that decodes the event as the real one does: the path, the
// event's shape and the answer to a function error are AWS's own, not this package's idea of them.
func TestLocalUnderTheRuntimeEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the emulator and a function")
	}
	fn := filepath.Join(t.TempDir(), "fn")
	if out, err := exec.Command("go", "build", "-o", fn, "-tags", "lambda.norpc", "./testdata/rieecho").CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/rieecho: %v\n%s", err, out)
	}
	outDir := t.TempDir()
	rie := devproc.StartEmulator(t, fn, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "OUT_DIR=" + outDir, "AWS_LAMBDA_FUNCTION_TIMEOUT=10"})

	e, err := emit.New(emit.Config{Target: emit.Local, URL: "http://" + rie.Addr + emittest.InvokePath, Source: "com.example.chat"})
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
