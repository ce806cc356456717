// Command fresh checks that the generated files on disk are what `go generate` makes of the
// sources on disk: it copies the working tree (tracked and untracked files that git does not
// ignore, uncommitted changes included) to a temporary directory, runs `go generate` there, and
// fails, naming them, if any file differs, appears or disappears. So schema work that was
// regenerated passes before it is committed, and generated code left out of date fails. The
// working tree is never written. `make check` runs it.
//
//	go run ./internal/cmd/fresh [packages]   (default ./...)
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	stale, err := check(".", os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fresh:", err)
		os.Exit(2)
	}
	if len(stale) > 0 {
		fmt.Fprintf(os.Stderr, "generated code is stale: run go generate ./... (and commit); these differ from what it generates:\n  %s\n",
			strings.Join(stale, "\n  "))
		os.Exit(1)
	}
}

// check copies the working tree at root, runs go generate on pkgs in the copy, and returns the
// files (slash-separated, relative to root) that generating changed, added or removed. The
// generator's output goes to log.
func check(root string, pkgs []string, log io.Writer) ([]string, error) {
	if len(pkgs) == 0 {
		pkgs = []string{"./..."}
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	files, err := gitFiles(root)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "fresh-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		if err := copyFile(filepath.Join(root, f), filepath.Join(tmp, f)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted in the working tree, not yet in the index
			}
			return nil, err
		}
	}
	// The generators' tools (the npm packages) are installed, not sources: the copy gets them as
	// hard links (a symbolic link would not do: bundlers resolve it to a path outside the copy).
	if _, err := os.Stat(filepath.Join(root, "node_modules")); err == nil {
		if err := linkTree(filepath.Join(root, "node_modules"), filepath.Join(tmp, "node_modules")); err != nil {
			return nil, err
		}
	}
	// A repository of the copy, its files staged, tells what generating changed.
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}} {
		if _, err := git(tmp, args...); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".git", "info", "exclude"), []byte("/node_modules\n"), 0o644); err != nil {
		return nil, err
	}
	gen := exec.Command("go", append([]string{"generate"}, pkgs...)...)
	gen.Dir, gen.Stdout, gen.Stderr = tmp, log, log
	if err := gen.Run(); err != nil {
		return nil, fmt.Errorf("go generate %s: %w", strings.Join(pkgs, " "), err)
	}
	changed, err := git(tmp, "diff", "--name-only", "-z")
	if err != nil {
		return nil, err
	}
	added, err := git(tmp, "ls-files", "-z", "--others", "--exclude-standard")
	if err != nil {
		return nil, err
	}
	return append(split(changed), split(added)...), nil
}

// gitFiles lists the working tree's files that git tracks or would track.
func gitFiles(root string) ([]string, error) {
	out, err := git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return nil, err
	}
	return split(out), nil
}

func git(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

func split(nul []byte) []string {
	var out []string
	for _, f := range strings.Split(string(nul), "\x00") {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// linkTree recreates the tree at src at dst with hard links to its files (copies where the two are
// on different file systems).
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			return copyFile(path, target)
		default:
			if err := os.Link(path, target); err != nil {
				return copyFile(path, target)
			}
			return nil
		}
	})
}

// copyFile copies a regular file or a symbolic link, with its mode.
func copyFile(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, fi.Mode().Perm())
}
