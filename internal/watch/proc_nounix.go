//go:build !unix

package watch

import (
	"os"
	"syscall"
)

func procAttr() *syscall.SysProcAttr { return nil }

// interrupt stops the child as well as the platform allows: there are no process groups to signal.
func interrupt(p *os.Process) {
	if p.Signal(os.Interrupt) != nil {
		p.Kill()
	}
}

func kill(p *os.Process) { p.Kill() }
