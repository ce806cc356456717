package devproc

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestBuildDirSweep: a new directory of binaries removes those of ended test processes (their
// lock free) and leaves those of live ones (their lock held).
func TestBuildDirSweep(t *testing.T) {
	ended, err := os.MkdirTemp("", buildDirPattern)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ended, "lock"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	live, err := os.MkdirTemp("", buildDirPattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(live) })
	lock, err := os.Create(filepath.Join(live, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	dir, err := newBuildDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if _, err := os.Stat(ended); !os.IsNotExist(err) {
		t.Errorf("the ended process's directory is still there (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(live, "lock")); err != nil {
		t.Errorf("the live process's directory was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "lock")); err != nil {
		t.Errorf("the new directory has no lock: %v", err)
	}
}
