package main

// The command line's surface: help, version, usage errors and exit statuses, printed from the
// tables in main.go (commands, env, each command's flags).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/cli"
)

// A command is a subcommand of bootstrap.
type command struct {
	name, args, summary string
	// service: the command runs the service, so it reads the environment (env) into the settings
	// run gets, and its help lists that environment. Otherwise it gets zero settings.
	service bool
	run     func(ctx context.Context, cfg settings, args []string, stdout, stderr io.Writer, getenv func(string) string) error
}

// An envVar is one environment variable: a row of --help's and the README's tables.
type envVar struct {
	name, def, usedBy, meaning string
	// set reads a non-empty value into the settings; nil for variables others read.
	set func(s *settings, v string) error
}

// flagSets returns each command's flag set, for help; nil for a command without flags.
func flagSets(name string) *flag.FlagSet {
	switch name {
	case "dev":
		var (
			cfg   app.Config
			dc    app.DevConfig
			watch bool
		)
		return devFlags(&cfg, &dc, &watch)
	case "publish":
		return cli.PublishFlags()
	}
	return nil
}

// printHelp writes `bootstrap --help`.
func printHelp(w io.Writer) {
	fmt.Fprint(w, `bootstrap serves realtime GraphQL: GraphQL over WebSocket and HTTP, and subscriptions fed by change
events. On AWS Lambda (AWS_LAMBDA_RUNTIME_API set) it serves invocations and takes no arguments.

Usage:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  bootstrap %s %s\t%s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(tw, "  bootstrap --version\tprint the module version and the commit it was built from\n")
	fmt.Fprintf(tw, "  bootstrap --help\tthis help; bootstrap COMMAND --help lists the command's flags too\n")
	tw.Flush()
	fmt.Fprintln(w)
	printEnv(w)
}

// printCommandHelp writes `bootstrap COMMAND --help`: its usage, its flags and, for a command that
// runs the service, the environment.
func printCommandHelp(w io.Writer, c command) {
	fmt.Fprintf(w, "Usage: bootstrap %s %s\n\n%s", c.name, c.args, wrap(strings.ToUpper(c.summary[:1])+c.summary[1:]+".", "", 100))
	if fs := flagSets(c.name); fs != nil {
		fmt.Fprintln(w, "\nFlags:")
		for _, f := range flagRows(fs) {
			def := ""
			if f.def != "" {
				def = " (default " + f.def + ")"
			}
			fmt.Fprintf(w, "  %s%s\n%s", f.name, def, wrap(f.usage, "      ", 100))
		}
	}
	if c.service {
		fmt.Fprintln(w)
		printEnv(w)
	}
}

// printEnv writes the environment variables.
func printEnv(w io.Writer) {
	fmt.Fprintln(w, "Environment:")
	for _, e := range env {
		fmt.Fprintf(w, "  %s (default %s; %s)\n%s", e.name, e.def, e.usedBy, wrap(e.meaning, "      ", 100))
	}
}

// wrap breaks text into lines of at most width columns, each starting with indent.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
	return b.String()
}

// flagRow is a flag as help and the README show it.
type flagRow struct {
	name  string // --port N
	def   string // 4000; "" when there is none (false, or an empty string)
	usage string
}

// flagRows returns a flag set's flags in name order, each with an argument name (from a
// back-quoted word of its usage, or its type) and its default.
func flagRows(fs *flag.FlagSet) []flagRow {
	var rows []flagRow
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		def := f.DefValue
		switch arg {
		case "int", "int64", "uint", "uint64":
			arg = "N"
		case "string":
			arg = "S"
		case "duration":
			arg = "D"
			def = shortDuration(def)
		case "":
			if def == "false" {
				def = ""
			}
		default:
			arg = strings.ToUpper(arg)
		}
		name := "--" + f.Name
		if arg != "" {
			name += " " + arg
		}
		rows = append(rows, flagRow{name, def, usage})
	})
	return rows
}

// shortDuration writes a duration as it is usually written: 10m rather than 10m0s.
func shortDuration(s string) string {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil || d == 0:
		return s
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return s
}

// parse parses args with fs without printing anything: a bad flag is reported once, by main.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// usageError is a mistake on the command line: main reports it once, with where to find help, and
// exits with status 2.
type usageError struct {
	command string // "" for bootstrap itself
	err     error
}

func (e *usageError) Error() string {
	prefix := "bootstrap"
	if e.command != "" {
		prefix += " " + e.command
	}
	return prefix + ": " + e.err.Error()
}

func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(command, format string, args ...any) error {
	return &usageError{command: command, err: fmt.Errorf(format, args...)}
}

// exitStatus reports err once on stderr and returns the exit status: 0 for none, 2 for a mistake
// on the command line, 1 for anything else.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		help := "bootstrap --help lists the commands and the environment variables"
		for _, c := range commands {
			if c.name == ue.command {
				help = "bootstrap " + c.name + " --help lists its flags"
				if c.service {
					help += " and the environment variables"
				}
			}
		}
		fmt.Fprintf(stderr, "%v\n(%s)\n", err, help)
		return 2
	}
	fmt.Fprintf(stderr, "bootstrap: %v\n", err)
	return 1
}

// versionText is `bootstrap --version`: the module's version, the commit it was built from (and
// whether the tree had changes), and the Go that built it, from the build information the go
// command stamps into every binary.
func versionText() string { return formatVersion(debug.ReadBuildInfo()) }

func formatVersion(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "bootstrap: no build information\n"
	}
	vcs := map[string]string{}
	for _, s := range bi.Settings {
		vcs[s.Key] = s.Value
	}
	var b strings.Builder
	fmt.Fprintf(&b, "bootstrap %s (%s)\n", bi.Main.Version, bi.Main.Path)
	if rev := vcs["vcs.revision"]; rev != "" {
		fmt.Fprintf(&b, "commit %s", rev)
		if t := vcs["vcs.time"]; t != "" {
			fmt.Fprintf(&b, " (%s)", t)
		}
		if vcs["vcs.modified"] == "true" {
			b.WriteString(", with uncommitted changes")
		}
		b.WriteString("\n")
	} else {
		b.WriteString("commit unknown (built outside a git checkout, or with -buildvcs=false)\n")
	}
	fmt.Fprintf(&b, "built with %s for %s/%s\n", bi.GoVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
