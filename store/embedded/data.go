package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
	bolt "go.etcd.io/bbolt"
)

var _ store.Data = (*Store)(nil)

// getItem reads the item at key, nil if there is none.
func getItem(b *bolt.Bucket, key []byte) (store.Item, error) {
	raw := b.Get(key)
	if raw == nil {
		return nil, nil
	}
	return decodeItem(key, raw)
}

func decodeItem(key, raw []byte) (store.Item, error) {
	var img map[string]events.DynamoDBAttributeValue
	if err := json.Unmarshal(raw, &img); err != nil {
		return nil, fmt.Errorf("corrupt item %q: %w", key, err)
	}
	it, err := stream.FromStreamImage(img)
	if err != nil {
		return nil, fmt.Errorf("corrupt item %q: %w", key, err)
	}
	return it, nil
}

func putItem(b *bolt.Bucket, key []byte, it store.Item) error {
	return putJSON(b, key, stream.ToStreamImage(it))
}

// liveItem reads the live item at key: ErrNotFound, with what and the key, when there is none or
// it has expired.
func (s *Store) liveItem(b *bolt.Bucket, key []byte, what, pk, sk string) (store.Item, error) {
	it, err := getItem(b, key)
	if err != nil {
		return nil, err
	}
	if it == nil || !store.ItemLive(it, s.now()) {
		return nil, fmt.Errorf("%s %q/%q: %w", what, pk, sk, store.ErrNotFound)
	}
	return it, nil
}

// CreateItem implements store.Data.
func (s *Store) CreateItem(ctx context.Context, it store.Item) error {
	it, pk, sk, err := store.NormalizeItem(it)
	if err != nil {
		return fmt.Errorf("create item: %w", err)
	}
	return s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems)
		key := itemKey(pk, sk)
		old, err := getItem(b, key)
		if err != nil {
			return err
		}
		if old != nil && store.ItemLive(old, s.now()) {
			return fmt.Errorf("create item %q/%q: %w", pk, sk, store.ErrConflict)
		}
		if err := putItem(b, key, it); err != nil {
			return err
		}
		if old != nil { // an expired item DynamoDB has not removed yet: the put replaces it
			return s.appendChange(tx, stream.Modify, old, it)
		}
		return s.appendChange(tx, stream.Insert, nil, it)
	})
}

// GetItem implements store.Data.
func (s *Store) GetItem(ctx context.Context, pk, sk string) (store.Item, error) {
	if err := store.CheckKey(pk, sk); err != nil {
		return nil, fmt.Errorf("get item: %w", err)
	}
	var it store.Item
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		it, err = s.liveItem(tx.Bucket(bucketItems), itemKey(pk, sk), "item", pk, sk)
		return err
	})
	return it, err
}

// ReplaceItem implements store.Data.
func (s *Store) ReplaceItem(ctx context.Context, it store.Item) (store.Item, error) {
	it, pk, sk, err := store.NormalizeItem(it)
	if err != nil {
		return nil, fmt.Errorf("replace item: %w", err)
	}
	var old store.Item
	err = s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems)
		key := itemKey(pk, sk)
		var err error
		if old, err = s.liveItem(b, key, "replace item", pk, sk); err != nil {
			return err
		}
		if err := putItem(b, key, it); err != nil {
			return err
		}
		return s.appendChange(tx, stream.Modify, old, it)
	})
	if err != nil {
		return nil, err
	}
	return old, nil
}

// DeleteItem implements store.Data.
func (s *Store) DeleteItem(ctx context.Context, pk, sk string) (store.Item, error) {
	if err := store.CheckKey(pk, sk); err != nil {
		return nil, fmt.Errorf("delete item: %w", err)
	}
	var old store.Item
	err := s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems)
		key := itemKey(pk, sk)
		var err error
		if old, err = s.liveItem(b, key, "delete item", pk, sk); err != nil {
			return err
		}
		if err := b.Delete(key); err != nil {
			return err
		}
		return s.appendChange(tx, stream.Remove, old, nil)
	})
	if err != nil {
		return nil, err
	}
	return old, nil
}

// QueryItems implements store.Data: one read transaction walks the partition's keys with the
// prefix, forwards or backwards.
func (s *Store) QueryItems(ctx context.Context, pk, skPrefix string, limit int, descending bool) ([]store.Item, error) {
	if err := store.CheckQuery(pk, limit); err != nil {
		return nil, err
	}
	if limit == 0 {
		return nil, nil
	}
	var out []store.Item
	now := s.now()
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := itemKey(pk, skPrefix)
		c := tx.Bucket(bucketItems).Cursor()
		var k, v []byte
		next := c.Next
		if descending {
			next = c.Prev
			if end := prefixEnd(prefix); end == nil {
				k, v = c.Last()
			} else if k, v = c.Seek(end); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		} else {
			k, v = c.Seek(prefix)
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = next() {
			it, err := decodeItem(k, v)
			if err != nil {
				return err
			}
			if store.ItemLive(it, now) {
				out = append(out, it)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query items of %q: %w", pk, err)
	}
	return out, nil
}

// prefixEnd returns the first key after every key with the prefix, nil if there is none.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// legacyMessage is how Open stores the messages of a file written before items were generic: as
// items of the example app's Message type, whose @item keys are these.
var legacyMessage = store.MustItemType("Message", "room#{roomId}", "msg#{id}")

// migrateMessages moves the messages of a file written before items were generic into the items
// bucket, as legacyMessage encodes them (their JSON as it was), and drops the old bucket. It writes
// no change records: nothing changed for the app.
func migrateMessages(tx *bolt.Tx) error {
	old := tx.Bucket(bucketLegacyMessages)
	if old == nil {
		return nil
	}
	items := tx.Bucket(bucketItems)
	err := old.ForEach(func(k, v []byte) error {
		it, err := legacyMessage.Encode(json.RawMessage(v))
		var pk, sk string
		if err == nil {
			it, pk, sk, err = store.NormalizeItem(it)
		}
		if err != nil {
			return fmt.Errorf("migrate message %q: %w", k, err)
		}
		return putItem(items, itemKey(pk, sk), it)
	})
	if err != nil {
		return err
	}
	return tx.DeleteBucket(bucketLegacyMessages)
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
func (s *Store) appendChange(tx *bolt.Tx, kind stream.ChangeKind, old, new store.Item) error {
	b := tx.Bucket(bucketChanges)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	rec, err := stream.ChangeRecord(kind, old, new, seq, s.arn, s.now())
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
