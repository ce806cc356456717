// Command testsummary runs `go test -json` with its arguments, prints the output in go test's usual readable form, and ends with one line per skipped test saying why, keeping go test's exit status.
//
// `make test` runs it, so that a test that skips (no Node, no Chromium) never does so silently:
//
//	testsummary -race -count=1 -timeout 20m ./...
//
// As go test without -v, it prints each package's result line, the output of failed tests and
// build errors, and hides the output of tests that pass. Then, after the run:
//
//	skipped: TestBrowser (./e2e/browser): Chromium (/usr/bin/chromium) is missing: apt-get install -y chromium ...
//	failed: TestX (./pkg)
//	tests: 812 passed, 1 failed, 3 skipped
//
// $GO names the go command (default "go"). Interrupted (Ctrl-C), it lets go test stop and still
// prints what it saw. Stdlib only: it must build on a fresh clone before anything is installed.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run(".", os.Args[1:], os.Stdout, os.Stderr))
}

// run runs go test -json args in dir and returns the exit status to end with: go test's own.
func run(dir string, args []string, stdout, stderr io.Writer) int {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.Command(goCmd, append([]string{"test", "-json"}, args...)...)
	cmd.Dir = dir
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testsummary:", err)
		return 1
	}
	// Ctrl-C reaches go test too (same process group): let it stop, and report what ran.
	signal.Notify(make(chan os.Signal, 1), os.Interrupt, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testsummary:", err)
		return 1
	}
	s := newSummary(stdout, modulePath(filepath.Join(dir, "go.mod")))
	readErr := s.read(out)
	waitErr := cmd.Wait()
	s.finish()
	var exit *exec.ExitError
	switch {
	case errors.As(waitErr, &exit):
		if code := exit.ExitCode(); code > 0 {
			return code
		}
		return 1 // killed by a signal
	case waitErr != nil:
		fmt.Fprintln(stderr, "testsummary:", waitErr)
		return 1
	case readErr != nil:
		fmt.Fprintln(stderr, "testsummary: reading go test's output:", readErr)
		return 1
	case s.failed > 0:
		return 1 // cannot happen when go test exits 0; never let a failure pass
	}
	return 0
}

// event is one line of go test -json (see `go doc cmd/test2json`).
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string // build-output and build-fail
	FailedBuild string
}

type testKey struct{ pkg, test string }

// summary turns the event stream into readable output and the closing lines.
type summary struct {
	w       io.Writer
	module  string
	pending map[testKey]*strings.Builder // output of tests that have not ended yet
	skipped []string                     // closing lines, in the order the skips happened
	failed  int
	failing []string
	passed  int
}

func newSummary(w io.Writer, module string) *summary {
	return &summary{w: w, module: module, pending: map[testKey]*strings.Builder{}}
}

// read consumes the stream; a line that is not an event (go test printing something of its own)
// is passed through as it is.
func (s *summary) read(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var ev event
			if json.Unmarshal(line, &ev) != nil || ev.Action == "" {
				s.w.Write(line)
			} else {
				s.handle(ev)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *summary) handle(ev event) {
	switch ev.Action {
	case "build-output":
		io.WriteString(s.w, ev.Output)
		return
	case "build-fail", "start", "run", "pause", "cont", "bench":
		return
	}
	if ev.Test == "" { // the package as a whole
		switch ev.Action {
		case "output":
			if ev.Output != "PASS\n" { // go test without -v does not print it either
				io.WriteString(s.w, ev.Output)
			}
		case "fail":
			// Tests that never ended (a panic, a timeout): their output explains the failure.
			var keys []testKey
			for k := range s.pending {
				if k.pkg == ev.Package {
					keys = append(keys, k)
				}
			}
			sort.Slice(keys, func(i, j int) bool { return keys[i].test < keys[j].test })
			for _, k := range keys {
				io.WriteString(s.w, framingless(s.pending[k].String()))
				delete(s.pending, k)
			}
		}
		return
	}
	k := testKey{ev.Package, ev.Test}
	switch ev.Action {
	case "output":
		b := s.pending[k]
		if b == nil {
			b = &strings.Builder{}
			s.pending[k] = b
		}
		b.WriteString(ev.Output)
	case "pass":
		s.passed++
		delete(s.pending, k)
	case "skip":
		var out string
		if b := s.pending[k]; b != nil {
			out = b.String()
		}
		delete(s.pending, k)
		s.skipped = append(s.skipped, fmt.Sprintf("skipped: %s (%s): %s", ev.Test, s.short(ev.Package), skipReason(out)))
	case "fail":
		s.failed++
		s.failing = append(s.failing, fmt.Sprintf("failed: %s (%s)", ev.Test, s.short(ev.Package)))
		if b := s.pending[k]; b != nil {
			io.WriteString(s.w, framingless(b.String()))
		}
		delete(s.pending, k)
	}
}

// finish prints the closing lines: every skip with its reason, every failure, and the counts.
func (s *summary) finish() {
	if len(s.skipped)+len(s.failing) > 0 {
		fmt.Fprintln(s.w)
	}
	for _, l := range s.skipped {
		fmt.Fprintln(s.w, l)
	}
	for _, l := range s.failing {
		fmt.Fprintln(s.w, l)
	}
	fmt.Fprintf(s.w, "tests: %d passed, %d failed, %d skipped\n", s.passed, s.failed, len(s.skipped))
}

// short names a package relative to the module: ./e2e/browser.
func (s *summary) short(pkg string) string {
	if s.module == "" {
		return pkg
	}
	if pkg == s.module {
		return "."
	}
	if rest, ok := strings.CutPrefix(pkg, s.module+"/"); ok {
		return "./" + rest
	}
	return pkg
}

// framingless drops the lines go test -v adds around a test's output (=== RUN, === PAUSE,
// === CONT, === NAME), which go test without -v does not print; --- FAIL lines stay.
func framingless(out string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(out, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " "), "=== ") {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// logLine is the first line of a t.Log, t.Skip... entry: indentation, file:line, the message.
var logLine = regexp.MustCompile(`^\s+[^\s:]+\.go:\d+: ?(.*)$`)

// skipReason returns the reason a skipped test's output gives, on one line: its last log entry
// (t.Skip's message is logged last) with continuation lines joined, and a leading "skipped:"
// dropped, since the summary line says so already.
func skipReason(output string) string {
	var entry []string
	for _, line := range strings.Split(output, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "=== ") || strings.HasPrefix(trimmed, "--- "):
		case logLine.MatchString(line):
			entry = []string{logLine.FindStringSubmatch(line)[1]}
		case entry != nil:
			entry = append(entry, trimmed)
		}
	}
	reason := strings.Join(strings.Fields(strings.Join(entry, " ")), " ")
	for _, p := range []string{"skipped:", "skipping:", "skip:"} {
		if rest, ok := strings.CutPrefix(strings.ToLower(reason), p); ok {
			reason = strings.TrimSpace(reason[len(reason)-len(rest):])
			break
		}
	}
	if reason == "" {
		return "no reason given"
	}
	return reason
}

// modulePath reads the module path from a go.mod file, or returns "".
func modulePath(gomod string) string {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
