package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/realtime-gql/lambdaws/store"
	bolt "go.etcd.io/bbolt"
)

// PutMessage implements store.Messages.
func (s *Store) PutMessage(ctx context.Context, m store.Message) error {
	return s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMessages)
		key := msgKey(m.RoomID, m.ID)
		if b.Get(key) != nil {
			return fmt.Errorf("put message %s/%s: %w", m.RoomID, m.ID, store.ErrConflict)
		}
		if err := putJSON(b, key, m); err != nil {
			return err
		}
		return s.appendChange(tx, store.Insert, nil, &m)
	})
}

// Message implements store.Messages.
func (s *Store) Message(ctx context.Context, roomID, id string) (store.Message, error) {
	var m store.Message
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		_, m, err = existingMessage(tx.Bucket(bucketMessages), roomID, id, "message")
		return err
	})
	return m, err
}

// existingMessage reads a message and its key; ErrNotFound if it is absent, the message
// starting with what.
func existingMessage(b *bolt.Bucket, roomID, id, what string) ([]byte, store.Message, error) {
	var m store.Message
	key := msgKey(roomID, id)
	found, err := getJSON(b, key, &m)
	if err == nil && !found {
		err = fmt.Errorf("%s %s/%s: %w", what, roomID, id, store.ErrNotFound)
	}
	return key, m, err
}

// Messages implements store.Messages.
func (s *Store) Messages(ctx context.Context, roomID string, last int) ([]store.Message, error) {
	out := make([]store.Message, 0, min(max(last, 0), 64))
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := roomPrefix(roomID)
		c := tx.Bucket(bucketMessages).Cursor()
		// Seek past the room's last key, then walk back.
		end := append(bytes.Clone(prefix), 0xff)
		k, v := c.Seek(end)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < last; k, v = c.Prev() {
			var m store.Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("corrupt record %q: %w", k, err)
			}
			out = append(out, m)
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// EditMessage implements store.Messages.
func (s *Store) EditMessage(ctx context.Context, roomID, id, text string, at time.Time) (store.Message, error) {
	var m store.Message
	err := s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMessages)
		key, cur, err := existingMessage(b, roomID, id, "edit message")
		if err != nil {
			return err
		}
		m = cur
		old := m
		at := at.UTC()
		m.Text, m.EditedAt = text, &at
		if err := putJSON(b, key, m); err != nil {
			return err
		}
		return s.appendChange(tx, store.Modify, &old, &m)
	})
	return m, err
}

// DeleteMessage implements store.Messages.
func (s *Store) DeleteMessage(ctx context.Context, roomID, id string) (store.Message, error) {
	var m store.Message
	err := s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMessages)
		key, cur, err := existingMessage(b, roomID, id, "delete message")
		if err != nil {
			return err
		}
		m = cur
		if err := b.Delete(key); err != nil {
			return err
		}
		return s.appendChange(tx, store.Remove, &m, nil)
	})
	return m, err
}

// write runs an app-data write and, once it is committed, wakes the change log's readers.
func (s *Store) write(fn func(tx *bolt.Tx) error) error {
	if err := s.db.Update(fn); err != nil {
		return err
	}
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// appendChange adds the stream record of a write to the change log, in the write's transaction.
func (s *Store) appendChange(tx *bolt.Tx, kind store.ChangeKind, old, new *store.Message) error {
	b := tx.Bucket(bucketChanges)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	rec, err := store.ChangeRecord(kind, old, new, seq, s.arn, s.now())
	if err != nil {
		return err
	}
	return putJSON(b, seqKey(seq), rec)
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// A Change is one record of the change log.
type Change struct {
	// Seq is the record's position in the log, also its SequenceNumber.
	Seq uint64
	// Record is the record as DynamoDB streams deliver it to Lambda (one element of Records).
	Record json.RawMessage
}

// Changed returns a channel that is closed when a change is committed after the call. Take it
// before reading, so a change that lands between the read and the wait is not missed.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// ReadChanges returns up to limit records that follow seq after, in order.
func (s *Store) ReadChanges(ctx context.Context, after uint64, limit int) ([]Change, error) {
	var out []Change
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketChanges).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			out = append(out, Change{Seq: binary.BigEndian.Uint64(k), Record: bytes.Clone(v)})
		}
		return nil
	})
	return out, err
}

// Checkpoint returns the last seq the named reader has processed (0 for none).
func (s *Store) Checkpoint(ctx context.Context, name string) (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte("checkpoint/" + name)); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return seq, err
}

// SetCheckpoint durably records that the named reader has processed everything up to seq, and
// trims those records from the log.
func (s *Store) SetCheckpoint(ctx context.Context, name string, seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put([]byte("checkpoint/"+name), seqKey(seq)); err != nil {
			return err
		}
		c := tx.Bucket(bucketChanges).Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}
