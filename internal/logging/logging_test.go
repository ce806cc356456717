package logging_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/logging"
	"github.com/rs/zerolog"
)

var at = time.Date(2026, 12, 2, 9, 30, 5, 123_456_789, time.UTC)

func fixed() time.Time { return at }

// TestJSON: one JSON object per line, the time in UTC to the millisecond, and no colour even when
// asked for.
func TestJSON(t *testing.T) {
	var b bytes.Buffer
	log := logging.New(&b, logging.Options{Format: logging.JSON, Level: zerolog.InfoLevel, Color: true, Now: fixed})
	log.Debug().Msg("hidden")
	log.Info().Str("conn", "c1").Int("status", 200).Msg("$default")
	log.Error().Err(errors.New("store: timeout")).Msg("stream batch failed")
	lines := strings.SplitAfter(b.String(), "\n")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("want 2 lines, each ending in one newline; got %q", b.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("not JSON: %q: %v", lines[0], err)
	}
	want := map[string]any{"level": "info", "conn": "c1", "status": 200.0, "message": "$default", "time": "2026-12-02T09:30:05.123Z"}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %v, want %v (line %q)", k, first[k], v, lines[0])
		}
	}
	if strings.Contains(b.String(), "\x1b[") {
		t.Errorf("JSON lines hold colour codes: %q", b.String())
	}
}

// TestConsole: one readable line per event, the local time to the millisecond, the fields a
// reader looks for first; colour codes only when asked for.
func TestConsole(t *testing.T) {
	for _, color := range []bool{false, true} {
		var b bytes.Buffer
		log := logging.New(&b, logging.Options{Level: zerolog.DebugLevel, Color: color, Now: fixed})
		log.Info().Str("conn", "c1").Float64("ms", 1.5).Int("status", 200).Str("route", "$default").Msg("$default")
		line := b.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Errorf("color %v: want one line, got %q", color, line)
		}
		if has := strings.Contains(line, "\x1b["); has != color {
			t.Errorf("color %v: colour codes present: %v in %q", color, has, line)
		}
		plain := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(line, "")
		want := at.Local().Format("15:04:05.000") + " INF $default status=200 ms=1.5 conn=c1 route=$default\n"
		if plain != want {
			t.Errorf("color %v: console line\n %q\nwant %q", color, plain, want)
		}
	}
}

// TestNoTrailingNewline: an error or a message that ends in a line break, or holds several lines
// (errors.Join, a list of GraphQL errors), stays on one console line.
func TestNoTrailingNewline(t *testing.T) {
	var b bytes.Buffer
	log := logging.New(&b, logging.Options{Now: fixed})
	log.Error().Err(errors.Join(errors.New("input:1:3: Cannot query field \"x\""), errors.New("second\n"))).Msg("rejected\n")
	want := at.Local().Format("15:04:05.000") + ` ERR rejected error="input:1:3: Cannot query field \"x\"; second"` + "\n"
	if b.String() != want {
		t.Errorf("console line\n %q\nwant %q", b.String(), want)
	}
	for in, want := range map[string]string{"a\n": "a", "a\nb\n": "a; b", "a \r\n  b": "a; b", "plain": "plain", "": ""} {
		if got := logging.OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]logging.Format{"": logging.Console, "console": logging.Console, "JSON": logging.JSON, " json ": logging.JSON} {
		if got, err := logging.ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := logging.ParseFormat("text"); err == nil {
		t.Error("ParseFormat(text) accepted it")
	}
}

// TestUseColor: colour on a terminal only, and never with NO_COLOR set.
func TestUseColor(t *testing.T) {
	env := func(noColor string) func(string) string {
		return func(k string) string {
			if k == "NO_COLOR" {
				return noColor
			}
			return ""
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if logging.UseColor(w, env("")) {
		t.Error("colour on a pipe")
	}
	file, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if logging.UseColor(file, env("")) {
		t.Error("colour in a file")
	}
	// A pseudo-terminal's master side is a terminal, as a developer's stderr is.
	tty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to test with: %v", err)
	}
	defer tty.Close()
	if !logging.UseColor(tty, env("")) {
		t.Error("no colour on a terminal")
	}
	if logging.UseColor(tty, env("1")) {
		t.Error("colour on a terminal with NO_COLOR=1")
	}
}
