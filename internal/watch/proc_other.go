//go:build unix && !linux

package watch

import "syscall"

// procAttr puts the child in a process group of its own: Ctrl-C reaches the watcher, which stops
// the child.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
