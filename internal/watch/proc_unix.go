//go:build unix

package watch

import (
	"os"
	"syscall"
)

// interrupt sends SIGINT to the child's process group.
func interrupt(p *os.Process) { syscall.Kill(-p.Pid, syscall.SIGINT) }

// kill sends SIGKILL to the child's process group.
func kill(p *os.Process) { syscall.Kill(-p.Pid, syscall.SIGKILL) }
