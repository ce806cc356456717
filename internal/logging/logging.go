// Package logging builds the service's zerolog logger: JSON lines (on Lambda, and with LOG_FORMAT=json), or readable console lines with millisecond timestamps, coloured only on a terminal.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Format is how log lines are written (LOG_FORMAT).
type Format string

// Formats.
const (
	// Console is one readable line per event: time (local, to the millisecond), level, message,
	// then the fields. The default in dev.
	Console Format = "console"
	// JSON is one JSON object per line, with a UTC time to the millisecond; always on Lambda.
	JSON Format = "json"
)

// ParseFormat reads LOG_FORMAT: "console" or "json"; "" is Console.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case "":
		return Console, nil
	case Console, JSON:
		return f, nil
	}
	return "", fmt.Errorf("want console or json, got %q", s)
}

// Options configure New.
type Options struct {
	// Format is Console (the zero value) or JSON.
	Format Format
	// Level is the lowest level written; the zero value is zerolog.DebugLevel.
	Level zerolog.Level
	// Color colours console lines; see UseColor. JSON is never coloured.
	Color bool
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// TimeFormat is the time field's format in JSON: RFC 3339, UTC, to the millisecond.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// ConsoleTimeFormat is how console lines show the time: local, to the millisecond.
const ConsoleTimeFormat = "15:04:05.000"

// fieldsOrder puts the fields a reader looks for first on console lines; the rest follow sorted.
var fieldsOrder = []string{zerolog.ErrorFieldName, "status", "ms", "conn", "op", "topic", "route", "request", "apiRequest"}

// New returns a logger writing to w as o says. It sets no zerolog globals: the time field is
// written by the logger itself, so that JSON lines carry milliseconds whatever
// zerolog.TimeFieldFormat is.
func New(w io.Writer, o Options) zerolog.Logger {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	out := w
	if o.Format != JSON {
		out = zerolog.ConsoleWriter{
			Out:         w,
			NoColor:     !o.Color,
			FieldsOrder: fieldsOrder,
			FormatTimestamp: func(v any) string {
				s, _ := v.(string)
				if t, err := time.Parse(TimeFormat, s); err == nil {
					s = t.Local().Format(ConsoleTimeFormat)
				}
				if o.Color {
					return "\x1b[90m" + s + "\x1b[0m"
				}
				return s
			},
			FormatPrepare: oneLine,
		}
	}
	return zerolog.New(out).Level(o.Level).Hook(timestamp(now))
}

// timestamp writes the time field of every event.
type timestamp func() time.Time

func (ts timestamp) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, ts().UTC().Format(TimeFormat))
}

// oneLine keeps a console event on one line: the message and the error lose trailing line breaks,
// and line breaks inside them (errors.Join, a list of GraphQL errors) become "; ".
func oneLine(evt map[string]any) error {
	for _, k := range []string{zerolog.MessageFieldName, zerolog.ErrorFieldName} {
		if s, ok := evt[k].(string); ok {
			evt[k] = OneLine(s)
		}
	}
	return nil
}

// OneLine returns s without trailing white space, its line breaks replaced by "; ": for text
// (an error's, say) that goes into one log line.
func OneLine(s string) string {
	s = strings.TrimRight(s, " \t\r\n")
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

// UseColor reports whether console lines to f are coloured: only when f is a terminal, and
// NO_COLOR (https://no-color.org) is unset or empty.
func UseColor(f *os.File, getenv func(string) string) bool {
	if getenv("NO_COLOR") != "" || f == nil {
		return false
	}
	fd := f.Fd()
	return isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd)
}
