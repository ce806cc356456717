package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/testenv"
)

// minAudits is fewer audits than graphql-http 1.23.1 has (61): a run with fewer ran too little.
const minAudits = 50

// TestHTTPAudit runs the GraphQL-over-HTTP conformance audits of the `graphql-http` npm package
// (e2e/js/http-audit.mjs) against the HTTP endpoint of `bootstrap dev`, through the local
// runtime's API Gateway emulation: every audit must pass, MAY and SHOULD ones included.
func TestHTTPAudit(t *testing.T) {
	root := devproc.Root(t)
	node, _ := testenv.Node(t, root, "graphql-http")
	p := devproc.Start(t, t.TempDir())
	// Stop it cleanly before devproc's own cleanup kills it (cleanups run last first).
	t.Cleanup(func() {
		if err := p.Stop(t); err != nil {
			t.Errorf("bootstrap dev did not shut down cleanly: %v\n%s", err, p.Output())
		}
	})

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("e2e", "js", "http-audit.mjs"), "http://"+p.Addr+"/graphql")
	cmd.Dir = root // node resolves graphql-http from the repository's node_modules
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node http-audit.mjs: %v (context: %v)\nstderr:\n%s\naudits:\n%s\nbootstrap dev output:\n%s",
			err, ctx.Err(), stderr.String(), stdout.String(), p.Output())
	}

	// The script exited 0; check its report says so too, and that it ran the audits.
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	total := lines[len(lines)-1]
	var okCount, notices, warnings, errs int
	if _, err := fmt.Sscanf(total, "%d ok, %d notices, %d warnings, %d errors", &okCount, &notices, &warnings, &errs); err != nil {
		t.Fatalf("last line %q is not the total: %v\noutput:\n%s", total, err, stdout.String())
	}
	if notices+warnings+errs != 0 || okCount < minAudits || okCount != len(lines)-1 {
		t.Fatalf("total %q over %d audit lines, want at least %d audits, all ok\noutput:\n%s",
			total, len(lines)-1, minAudits, stdout.String())
	}
	for _, l := range lines[:len(lines)-1] {
		if f := strings.Fields(l); len(f) < 3 || f[1] != "ok" {
			t.Errorf("audit not ok: %s", l)
		}
	}
	t.Logf("graphql-http serverAudits against http://%s/graphql:\n%s", p.Addr, stdout.String())
}
