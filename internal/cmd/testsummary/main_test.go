package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeModule writes a module whose tests pass, fail, skip (with and without a reason, in
// subtests too) and whose second package does not build.
func writeModule(t *testing.T, failing bool) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/sum\n\ngo 1.26\n",
		"a_test.go": `package sum

import "testing"

func TestPass(t *testing.T) { t.Log("hidden: a passing test's log") }
func TestNode(t *testing.T) {
	t.Log("looking for node")
	t.Skipf("skipped: node is missing (install Node 20;\nthen make test installs the npm packages)")
}
func TestBare(t *testing.T) { t.SkipNow() }
func TestSub(t *testing.T) {
	t.Run("chromium", func(t *testing.T) { t.Skip("Chromium is missing: apt-get install -y chromium") })
	t.Run("ok", func(t *testing.T) {})
}
`,
	}
	if failing {
		files["b_test.go"] = `package sum

import "testing"

func TestFail(t *testing.T) {
	t.Log("before")
	t.Error("boom\nsecond line")
}
`
		files["broken/broken.go"] = "package broken\n\nfunc X() int { return \"s\" }\n"
		files["broken/broken_test.go"] = "package broken\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) {}\n"
	}
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRun runs real go test runs through the summary: the readable output, one line per skip with
// its reason, and go test's exit status.
func TestRun(t *testing.T) {
	t.Run("passing run with skips", func(t *testing.T) {
		dir := writeModule(t, false)
		var out, errOut bytes.Buffer
		code := run(dir, []string{"-count=1", "./..."}, &out, &errOut)
		got := out.String()
		t.Logf("output:\n%s%s", got, errOut.String())
		if code != 0 {
			t.Errorf("exit status %d, want 0", code)
		}
		for _, want := range []string{
			"ok  \texample.com/sum\t",
			"skipped: TestNode (.): node is missing (install Node 20; then make test installs the npm packages)\n",
			"skipped: TestBare (.): no reason given\n",
			"skipped: TestSub/chromium (.): Chromium is missing: apt-get install -y chromium\n",
			"tests: 3 passed, 0 failed, 3 skipped\n",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("the output lacks %q", want)
			}
		}
		for _, hidden := range []string{"hidden:", "=== RUN", "--- PASS", "--- SKIP", "looking for node", "failed:"} {
			if strings.Contains(got, hidden) {
				t.Errorf("the output shows %q, which go test without -v does not", hidden)
			}
		}
		if !strings.HasSuffix(got, "tests: 3 passed, 0 failed, 3 skipped\n") {
			t.Errorf("the counts are not the last line")
		}
	})
	t.Run("failing run", func(t *testing.T) {
		dir := writeModule(t, true)
		var out, errOut bytes.Buffer
		code := run(dir, []string{"-count=1", "./..."}, &out, &errOut)
		got := out.String()
		t.Logf("output:\n%s%s", got, errOut.String())
		if code != 1 {
			t.Errorf("exit status %d, want go test's 1", code)
		}
		for _, want := range []string{
			"b_test.go:7: boom\n        second line\n--- FAIL: TestFail", // the failure, as go test shows it
			"before",                            // a failed test's log is shown
			"broken/broken.go:3:23: cannot use", // the build error
			"FAIL\texample.com/sum/broken [build failed]",
			"FAIL\texample.com/sum\t",
			"failed: TestFail (.)\n",
			"skipped: TestNode (.)",
			"tests: 3 passed, 1 failed, 3 skipped\n",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("the output lacks %q", want)
			}
		}
	})
	t.Run("go test cannot start", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if code := run(t.TempDir(), []string{"./..."}, &out, &errOut); code == 0 {
			t.Errorf("exit status 0 outside a module; output:\n%s%s", out.String(), errOut.String())
		}
	})
}

// TestUnfinishedTests: when a package dies with tests still running (a timeout, a panic), their
// output is shown with the package's failure.
func TestUnfinishedTests(t *testing.T) {
	stream := strings.Join([]string{
		`{"Action":"start","Package":"m/p"}`,
		`{"Action":"run","Package":"m/p","Test":"TestHang"}`,
		`{"Action":"output","Package":"m/p","Test":"TestHang","Output":"=== RUN   TestHang\n"}`,
		`{"Action":"output","Package":"m/p","Test":"TestHang","Output":"    p_test.go:9: waiting for the server\n"}`,
		`{"Action":"output","Package":"m/p","Output":"panic: test timed out after 1s\n"}`,
		`{"Action":"output","Package":"m/p","Output":"FAIL\tm/p\t1.005s\n"}`,
		`{"Action":"fail","Package":"m/p","Elapsed":1.005}`,
		`not JSON: passed through`,
	}, "\n") + "\n"
	var out bytes.Buffer
	s := newSummary(&out, "m")
	if err := s.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	s.finish()
	want := "panic: test timed out after 1s\nFAIL\tm/p\t1.005s\n    p_test.go:9: waiting for the server\nnot JSON: passed through\n" +
		"tests: 0 passed, 0 failed, 0 skipped\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestSkipReason(t *testing.T) {
	for _, tc := range []struct{ output, want string }{
		{"=== RUN   TestX\n    x_test.go:3: skipped: Chromium (/usr/bin/chromium) is missing\n--- SKIP: TestX (0.00s)\n",
			"Chromium (/usr/bin/chromium) is missing"},
		{"    x_test.go:3: first\n    x_test.go:4: Skipping: second\n        and more\n", "second and more"},
		{"--- SKIP: TestX (0.00s)\n", "no reason given"},
		{"    x_test.go:3: needs: a colon: kept\n", "needs: a colon: kept"},
	} {
		if got := skipReason(tc.output); got != tc.want {
			t.Errorf("skipReason(%q) = %q, want %q", tc.output, got, tc.want)
		}
	}
}
