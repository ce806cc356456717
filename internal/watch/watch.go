// Package watch runs a Go program as a child process and rebuilds and restarts it when its sources change: `bootstrap dev --watch`.
//
// It watches the module's directories (fsnotify), and once changes settle (Config.Debounce) and a
// file's content really differs from the last build's, it runs `go generate ./...` if a .graphqls
// file or gqlgen.yml changed, builds the program to a new path, and only if that succeeds stops the
// child (SIGINT, then SIGKILL after Config.StopGrace) and starts the new build with the same
// arguments. A failed build prints the compiler's output and leaves the running child alone. The
// child runs in its own process group, so Ctrl-C reaches the watcher alone, which stops the child
// before it returns.
package watch

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// Config configures Run.
type Config struct {
	// Dir is the module to watch and build; default: the directory holding go.mod at or above
	// the working directory.
	Dir string
	// Package is the main package to build, relative to Dir; default ".".
	Package string
	// Args are the child's arguments.
	Args []string
	// WorkDir is the child's working directory; default the watcher's.
	WorkDir string
	// Stdout and Stderr receive the child's output, and the compiler's; default os.Stdout and
	// os.Stderr.
	Stdout, Stderr io.Writer
	// Log receives the watcher's own lines.
	Log zerolog.Logger
	// Debounce is how long changes must settle before a rebuild; default 300ms.
	Debounce time.Duration
	// StopGrace is how long the child has to exit after SIGINT before it is killed; default 15s
	// (the local runtime's shutdown grace is 10s).
	StopGrace time.Duration
	// Go is the go command; default "go".
	Go string
}

// skipDirs are directories never watched: version control, dependencies, build outputs.
var skipDirs = map[string]bool{"node_modules": true, "vendor": true, "dist": true, "bin": true, "testdata": true}

// Watched reports whether a change to the file at path (relative to the module) can change the
// program: Go sources other than tests, the schema (.graphqls), gqlgen.yml, go.mod and go.sum.
func Watched(path string) bool {
	base := filepath.Base(path)
	switch {
	case strings.HasSuffix(base, "_test.go"):
		return false
	case strings.HasSuffix(base, ".go"), IsSchema(path), base == "go.mod", base == "go.sum":
		return true
	}
	return false
}

// IsSchema reports whether a change to path needs `go generate ./...` before the build: a
// .graphqls file, or gqlgen.yml.
func IsSchema(path string) bool {
	base := filepath.Base(path)
	return strings.HasSuffix(base, ".graphqls") || base == "gqlgen.yml" || base == "gqlgen.yaml"
}

// Run builds and runs the program until ctx is done, rebuilding and restarting it on changes;
// then it stops the child and returns. It returns an error only if it cannot watch or build at
// all (no module, no go command); a failed build or a child that exits is reported and waited out
// until the next change.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Dir == "" {
		dir, err := moduleRoot()
		if err != nil {
			return err
		}
		cfg.Dir = dir
	}
	cfg.Package = cmp.Or(cfg.Package, ".")
	cfg.Debounce = cmp.Or(cfg.Debounce, 300*time.Millisecond)
	cfg.StopGrace = cmp.Or(cfg.StopGrace, 15*time.Second)
	cfg.Go = cmp.Or(cfg.Go, "go")
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if _, err := exec.LookPath(cfg.Go); err != nil {
		return fmt.Errorf("watch: --watch rebuilds with the go command: %w", err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer fw.Close()
	bins, err := os.MkdirTemp("", "bootstrap-watch-*")
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer os.RemoveAll(bins)
	w := &watcher{cfg: cfg, fw: fw, bins: bins, log: cfg.Log.With().Str("component", "watch").Logger()}
	if err := w.addTree(cfg.Dir); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	return w.loop(ctx)
}

type watcher struct {
	cfg    Config
	fw     *fsnotify.Watcher
	bins   string // where builds go, one file per build
	builds int
	log    zerolog.Logger

	sums  map[string][32]byte // content of every watched file, as of the last build
	child *child
}

// loop is the watcher's life: the first build, then a rebuild whenever changes settle.
func (w *watcher) loop(ctx context.Context) error {
	w.log.Info().Str("dir", w.cfg.Dir).Msg("watching Go files and the schema; building")
	w.rebuild(ctx, false, nil)
	changed := map[string]bool{}
	var settle <-chan time.Time
	var exited <-chan struct{}
	for {
		if w.child != nil {
			exited = w.child.exited
		} else {
			exited = nil
		}
		select {
		case <-ctx.Done():
			w.stopChild()
			return nil
		case <-exited:
			w.log.Warn().Str("status", w.child.status()).Msg("the server exited; waiting for a change to rebuild and start it")
			w.child = nil
		case ev, ok := <-w.fw.Events:
			if !ok {
				w.stopChild()
				return errors.New("watch: the file watcher stopped")
			}
			w.event(ev, changed)
			if len(changed) > 0 {
				settle = time.After(w.cfg.Debounce)
			}
		case err, ok := <-w.fw.Errors:
			if ok {
				w.log.Warn().Err(err).Msg("file watcher")
			}
		case <-settle:
			settle = nil
			paths := w.differing(changed)
			clear(changed)
			if len(paths) == 0 {
				continue // saved without a change, or our own go generate's output
			}
			generate := false
			for _, p := range paths {
				generate = generate || IsSchema(p)
			}
			w.rebuild(ctx, generate, paths)
		}
	}
}

// event notes a change, watching new directories as they appear.
func (w *watcher) event(ev fsnotify.Event, changed map[string]bool) {
	if ev.Op&fsnotify.Create != 0 {
		if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
			if w.skip(ev.Name) {
				return
			}
			w.addTree(ev.Name)
			filepath.WalkDir(ev.Name, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && Watched(p) {
					changed[p] = true
				}
				return nil
			})
			return
		}
	}
	if ev.Op == fsnotify.Chmod || !Watched(ev.Name) {
		return
	}
	changed[ev.Name] = true
}

// differing returns, relative to the module, the paths among changed whose content is not what
// the last build saw.
func (w *watcher) differing(changed map[string]bool) []string {
	var out []string
	for p := range changed {
		sum, err := fileSum(p)
		old, had := w.sums[p]
		if (err != nil && had) || (err == nil && (!had || sum != old)) {
			rel, rerr := filepath.Rel(w.cfg.Dir, p)
			if rerr != nil {
				rel = p
			}
			out = append(out, rel)
		}
	}
	sort.Strings(out)
	return out
}

// rebuild runs go generate (when asked), builds, and on success replaces the child.
func (w *watcher) rebuild(ctx context.Context, generate bool, paths []string) {
	start := time.Now()
	if len(paths) > 0 {
		e := w.log.Info().Strs("changed", paths)
		if generate {
			e.Msg("schema changed: running go generate ./..., then rebuilding")
		} else {
			e.Msg("rebuilding")
		}
	}
	if generate {
		if out, err := w.goCmd(ctx, "generate", "./..."); err != nil {
			w.failed("go generate ./...", err, out)
			w.snapshot()
			return
		}
	}
	w.snapshot() // after generate: its own output is not a change
	w.builds++
	bin := filepath.Join(w.bins, fmt.Sprintf("bootstrap-%d", w.builds))
	if out, err := w.goCmd(ctx, "build", "-o", bin, w.cfg.Package); err != nil {
		w.failed("go build", err, out)
		return
	}
	if ctx.Err() != nil {
		return
	}
	restart := w.child != nil
	w.stopChild()
	c, err := startChild(bin, w.cfg)
	if err != nil {
		w.log.Error().Err(err).Msg("cannot start the new build")
		return
	}
	w.child = c
	msg := "built; starting"
	if restart {
		msg = "rebuilt; restarted"
	}
	w.log.Info().Stringer("took", time.Since(start).Round(time.Millisecond)).Int("pid", c.cmd.Process.Pid).Msg(msg)
	// Earlier builds are no longer running.
	for i := 1; i < w.builds; i++ {
		os.Remove(filepath.Join(w.bins, fmt.Sprintf("bootstrap-%d", i)))
	}
}

// failed reports a failed generate or build: the running server, if any, stays.
func (w *watcher) failed(what string, err error, out []byte) {
	keeps := "no server is running; fix it and save"
	if w.child != nil {
		keeps = "the server keeps running the previous build"
	}
	w.log.Error().Err(err).Msg(what + " failed; " + keeps)
	out = bytes.TrimRight(out, "\n")
	if len(out) > 0 {
		w.cfg.Stderr.Write(append(out, '\n'))
	}
}

func (w *watcher) goCmd(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, w.cfg.Go, args...)
	cmd.Dir = w.cfg.Dir
	return cmd.CombinedOutput()
}

// snapshot records the content of every watched file.
func (w *watcher) snapshot() {
	w.sums = map[string][32]byte{}
	filepath.WalkDir(w.cfg.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if p != w.cfg.Dir && w.skip(p) {
				return filepath.SkipDir
			}
			return nil
		}
		if Watched(p) {
			if sum, err := fileSum(p); err == nil {
				w.sums[p] = sum
			}
		}
		return nil
	})
}

// skip reports whether a directory is not watched: hidden ones (.git, .data), dependencies and
// build outputs.
func (w *watcher) skip(dir string) bool {
	base := filepath.Base(dir)
	return strings.HasPrefix(base, ".") || strings.HasPrefix(base, "_") || skipDirs[base]
}

// addTree watches dir and the directories below it.
func (w *watcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if p != dir && w.skip(p) {
			return filepath.SkipDir
		}
		if err := w.fw.Add(p); err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		return nil
	})
}

func (w *watcher) stopChild() {
	if w.child == nil {
		return
	}
	if err := w.child.stop(w.cfg.StopGrace); err != nil {
		w.log.Warn().Err(err).Msg("stopping the server")
	}
	w.child = nil
}

// child is a running build.
type child struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when it has ended
	waitErr error         // valid once exited is closed
}

func startChild(bin string, cfg Config) (*child, error) {
	cmd := exec.Command(bin, cfg.Args...)
	cmd.Dir = cfg.WorkDir
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// stop interrupts the child's process group (as Ctrl-C would), and kills it after grace.
func (c *child) stop(grace time.Duration) error {
	interrupt(c.cmd.Process)
	select {
	case <-c.exited:
		if c.waitErr != nil {
			return fmt.Errorf("the server exited with %s", c.status())
		}
		return nil
	case <-time.After(grace):
		kill(c.cmd.Process)
		<-c.exited
		return fmt.Errorf("the server did not stop within %v of SIGINT: killed", grace)
	}
}

// status describes how the child ended.
func (c *child) status() string {
	if c.waitErr == nil {
		return "exit status 0"
	}
	return c.waitErr.Error()
}

func fileSum(path string) ([32]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// moduleRoot returns the directory holding go.mod at or above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("watch: --watch rebuilds the program from its source: run it inside the module (no go.mod here or above)")
		}
		dir = parent
	}
}
