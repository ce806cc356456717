// Package testlog is the buffer tests give loggers and child processes to write to: safe for
// concurrent writes, and read while they go on.
package testlog

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer collects what is written to it from any number of goroutines. The zero value is ready.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Lines returns the non-empty lines written so far, without their newlines, that contain every
// one of with.
func (b *Buffer) Lines(with ...string) []string {
	var out []string
	for l := range strings.SplitSeq(b.String(), "\n") {
		ok := l != ""
		for _, w := range with {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// Reset forgets everything written so far.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}
