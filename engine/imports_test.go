package engine_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoAWSEventTypes: the engine, the app and the store (which everything imports) know nothing
// of aws-lambda-go's event shapes; publish decodes them (store/stream, publish/source).
func TestNoAWSEventTypes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/realtime-gql/lambdaws/engine",
		"github.com/realtime-gql/lambdaws/graph", "github.com/realtime-gql/lambdaws/store").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/aws/aws-lambda-go") {
			t.Errorf("engine, graph or store depends on %s", pkg)
		}
	}
}
