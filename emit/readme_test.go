package emit_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/emit"
	"github.com/realtime-gql/lambdaws/emit/emittest"
)

// TestREADMESnippet runs the README's two lines of emit, as written, against the fake
// EventBridge: the event reaches PutEvents with the snippet's type, source and data, and the id
// is EventBridge's. The README must show exactly the lines between the markers below.
func TestREADMESnippet(t *testing.T) {
	f := emittest.NewServer(t)
	awsCfg, ctx := f.AWSConfig(), context.Background()

	// README snippet start
	em, err := emit.New(emit.Config{Target: emit.EventBridge, AWS: awsCfg, Source: "com.example.chat"})
	id, err := em.Emit(ctx, "chat.typing", map[string]any{"roomId": "lobby", "user": "ann"})
	// README snippet end

	if err != nil {
		t.Fatal(err)
	}
	r := only(t, f)
	if r.Op != emittest.PutEvents || r.Fields["Source"] != "com.example.chat" || r.Fields["DetailType"] != "chat.typing" ||
		r.Fields["Detail"] != `{"roomId":"lobby","user":"ann"}` || id != "eb-1" {
		t.Errorf("PutEvents entry %v, id %q", r.Fields, id)
	}

	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, lines, _ := strings.Cut(string(src), "// README snippet start\n")
	lines, _, _ = strings.Cut(lines, "\t// README snippet end")
	lines = strings.ReplaceAll(lines, "\n\t", "\n")[1:]
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "\n```go\n"+lines+"```\n") {
		t.Errorf("README.md does not show, in a ```go block, exactly:\n%s", lines)
	}
}
