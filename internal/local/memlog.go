package local

import (
	"context"
	"encoding/json"
	"sync"
)

// MemoryLog is an in-memory ChangeLog for backends whose endpoint has no stream API (a plain
// DynamoDB endpoint such as dynalite). The process that writes feeds it, so it sees only its own
// writes, and it does not survive a restart: a development aid, not a stream.
type MemoryLog struct {
	mu      sync.Mutex
	next    uint64
	recs    []Record
	cps     map[string]uint64
	changed chan struct{}
}

// NewMemoryLog returns an empty log.
func NewMemoryLog() *MemoryLog {
	return &MemoryLog{next: 1, cps: map[string]uint64{}, changed: make(chan struct{})}
}

// Append adds the record build makes for the next sequence number.
func (l *MemoryLog) Append(build func(seq uint64) (json.RawMessage, error)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec, err := build(l.next)
	if err != nil {
		return err
	}
	l.recs = append(l.recs, Record{Seq: l.next, JSON: rec})
	l.next++
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

// Changed implements ChangeLog.
func (l *MemoryLog) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// ReadChanges implements ChangeLog.
func (l *MemoryLog) ReadChanges(ctx context.Context, after uint64, limit int) ([]Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Record
	for _, r := range l.recs {
		if r.Seq > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

// Checkpoint implements ChangeLog.
func (l *MemoryLog) Checkpoint(ctx context.Context, name string) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cps[name], nil
}

// SetCheckpoint implements ChangeLog; it drops the records the checkpoint covers.
func (l *MemoryLog) SetCheckpoint(ctx context.Context, name string, seq uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cps[name] = seq
	i := 0
	for i < len(l.recs) && l.recs[i].Seq <= seq {
		i++
	}
	l.recs = append(l.recs[:0], l.recs[i:]...)
	return nil
}
