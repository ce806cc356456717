package testlog_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/realtime-gql/lambdaws/internal/testlog"
)

// TestBuffer: lines written by many goroutines at once all arrive whole, Lines selects by
// content, and Reset forgets them.
func TestBuffer(t *testing.T) {
	var b testlog.Buffer
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			for j := range 50 {
				fmt.Fprintf(&b, "writer %d line %d\n", i, j)
			}
		})
	}
	wg.Wait()
	if n := len(b.Lines()); n != 1000 {
		t.Fatalf("%d lines, want 1000", n)
	}
	if got := b.Lines("writer 7 ", "line 3"); !slices.Equal(got, []string{"writer 7 line 3", "writer 7 line 30", "writer 7 line 31",
		"writer 7 line 32", "writer 7 line 33", "writer 7 line 34", "writer 7 line 35", "writer 7 line 36", "writer 7 line 37",
		"writer 7 line 38", "writer 7 line 39"}) {
		t.Fatalf("Lines(writer 7, line 3) = %q", got)
	}
	if !strings.HasSuffix(b.String(), "\n") {
		t.Fatalf("String() = …%q", b.String()[len(b.String())-10:])
	}
	b.Reset()
	if b.String() != "" || b.Lines() != nil {
		t.Fatalf("after Reset: %q", b.String())
	}
}
