package watch

import "syscall"

// procAttr puts the child in a process group of its own (Ctrl-C reaches the watcher, which stops
// the child) and has the kernel end it if the watcher dies without stopping it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
