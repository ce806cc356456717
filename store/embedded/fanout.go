package embedded

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"sync/atomic"
	"time"

	"github.com/realtime-gql/lambdaws/store"
	bolt "go.etcd.io/bbolt"
)

// The fan-out state (store.FanoutState). Topic cursors are the topic row's key after the topic's
// prefix (lp(connectionID) opID), base64url-encoded, so they order like the rows and survive
// JSON. Progress rows live in their own bucket:
//
//	fanout    progress key                     → {"cursor","until","done","parts","expiresAt"}
//
// Expired progress rows read as absent; SaveFanoutProgress removes them every purgeEvery writes.

var bucketFanout = []byte("fanout")

// The bucket joins the others here, so Open creates it in files written before it existed.
func init() { buckets = append(buckets, bucketFanout) }

// purgeEvery is how many progress writes pass between purges of expired rows.
const purgeEvery = 256

// progressWrites counts the progress rows written by the process, to time the purges.
var progressWrites atomic.Int64

func encodeCursor(suffix []byte) string { return base64.RawURLEncoding.EncodeToString(suffix) }

// cursorKey returns the topic row key a cursor names; nil for "".
func cursorKey(prefix []byte, cursor string) ([]byte, error) {
	if cursor == "" {
		return nil, nil
	}
	suffix, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(suffix) == 0 {
		return nil, fmt.Errorf("%w: cursor %q", store.ErrInvalid, cursor)
	}
	return append(bytes.Clone(prefix), suffix...), nil
}

// topicRange is a topic's key range (after, until] for a cursor walk.
type topicRange struct {
	prefix, after, until []byte // after: exclusive (nil: from the start); until: inclusive (nil: to the end)
}

func newTopicRange(topic, after, until string) (topicRange, error) {
	r := topicRange{prefix: topicPrefix(topic)}
	var err error
	if r.after, err = cursorKey(r.prefix, after); err != nil {
		return r, err
	}
	r.until, err = cursorKey(r.prefix, until)
	return r, err
}

// first positions c on the first key of the range after from (exclusive; nil: the range's start).
func (r topicRange) first(c *bolt.Cursor, from []byte) ([]byte, []byte) {
	if from == nil {
		from = r.after
	}
	if from == nil {
		return c.Seek(r.prefix)
	}
	k, v := c.Seek(from)
	if k != nil && bytes.Equal(k, from) {
		k, v = c.Next()
	}
	return k, v
}

// in reports whether k is a key of the range.
func (r topicRange) in(k []byte) bool {
	return k != nil && bytes.HasPrefix(k, r.prefix) && (r.until == nil || bytes.Compare(k, r.until) <= 0)
}

// TopicPages implements store.FanoutState. Each page is read in its own read transaction.
func (s *Store) TopicPages(ctx context.Context, topic, after, until string) iter.Seq2[store.Page, error] {
	return func(yield func(store.Page, error) bool) {
		r, err := newTopicRange(topic, after, until)
		if err != nil {
			yield(store.Page{}, fmt.Errorf("pages of %s: %w", topic, err))
			return
		}
		var from, last []byte
		// Records are decoded in place into scratch, reused from page to page; each page then
		// gets a slice of its own (the caller keeps a page while its subscribers are delivered),
		// of exactly its length.
		var scratch []store.Subscription
		for {
			if err := ctx.Err(); err != nil {
				yield(store.Page{}, err)
				return
			}
			var pg store.Page
			scratch = scratch[:0]
			more := false
			now := s.now()
			err := s.db.View(func(tx *bolt.Tx) error {
				c := tx.Bucket(bucketTopics).Cursor()
				var lastKey []byte // valid until the transaction ends
				k, v := r.first(c, from)
				for n := 0; r.in(k) && n < s.pageSize; k, v = c.Next() {
					n++
					lastKey = k
					scratch = append(scratch, store.Subscription{})
					sub := &scratch[len(scratch)-1]
					if err := json.Unmarshal(v, sub); err != nil {
						return fmt.Errorf("corrupt record %q: %w", k, err)
					}
					if !store.Live(sub.ExpiresAt, now) {
						scratch = scratch[:len(scratch)-1]
					}
				}
				if len(scratch) > 0 {
					pg.Subs = slices.Clone(scratch)
				}
				more = r.in(k)
				// from, the previous page's last key, is not needed any more: reuse its array.
				last = append(last[:0], lastKey...)
				return nil
			})
			if err != nil {
				yield(store.Page{}, fmt.Errorf("pages of %s: %w", topic, err))
				return
			}
			if more {
				pg.Next = encodeCursor(last[len(r.prefix):])
			}
			if !yield(pg, nil) || !more {
				return
			}
			from = last
		}
	}
}

// TopicSubscriptions implements store.FanoutState, in one read transaction.
func (s *Store) TopicSubscriptions(ctx context.Context, topic string, keys []store.SubKey) ([]store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []store.Subscription
	now := s.now()
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTopics)
		seen := make(map[store.SubKey]bool, len(keys))
		for _, k := range keys {
			if seen[k] {
				continue
			}
			seen[k] = true
			var sub store.Subscription
			found, err := getJSON(b, topicKey(store.Subscription{Topic: topic, ConnectionID: k.ConnectionID, ID: k.ID}), &sub)
			if err != nil {
				return err
			}
			if found && store.Live(sub.ExpiresAt, now) {
				out = append(out, sub)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("subscriptions of %s: %w", topic, err)
	}
	return out, nil
}

// TopicCursors implements store.FanoutState: one read transaction over the keys, no record
// decoded. A boundary at the range's last subscription is left out.
func (s *Store) TopicCursors(ctx context.Context, topic, after, until string, every int) ([]string, error) {
	if every < 1 {
		return nil, fmt.Errorf("%w: cursors every %d", store.ErrInvalid, every)
	}
	r, err := newTopicRange(topic, after, until)
	if err != nil {
		return nil, fmt.Errorf("cursors of %s: %w", topic, err)
	}
	var out []string
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTopics).Cursor()
		n := 0
		for k, _ := r.first(c, nil); r.in(k); {
			n++
			cur := k
			k, _ = c.Next()
			if n%every == 0 && r.in(k) {
				out = append(out, encodeCursor(cur[len(r.prefix):]))
				if len(out)%1024 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cursors of %s: %w", topic, err)
	}
	return out, nil
}

// progressRow is a progress row as the fanout bucket holds it.
type progressRow struct {
	Cursor    string    `json:"cursor,omitempty"`
	Until     string    `json:"until,omitempty"`
	Done      bool      `json:"done,omitempty"`
	Parts     int       `json:"parts,omitempty"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// FanoutProgress implements store.FanoutState.
func (s *Store) FanoutProgress(ctx context.Context, keys []string) (map[string]store.Progress, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]store.Progress, len(keys))
	now := s.now()
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFanout)
		for _, k := range keys {
			var r progressRow
			found, err := getJSON(b, []byte(k), &r)
			if err != nil {
				return err
			}
			if found && store.Live(r.ExpiresAt, now) {
				out[k] = store.Progress{Key: k, Cursor: r.Cursor, Until: r.Until, Done: r.Done, Parts: r.Parts, ExpiresAt: r.ExpiresAt}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fan-out progress: %w", err)
	}
	return out, nil
}

// SaveFanoutProgress implements store.FanoutState, in one write transaction.
func (s *Store) SaveFanoutProgress(ctx context.Context, rows []store.Progress) error {
	if err := store.CheckProgress(rows); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n := progressWrites.Add(int64(len(rows)))
	purge := n/purgeEvery != (n-int64(len(rows)))/purgeEvery
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFanout)
		if purge {
			if err := purgeExpired(b, s.now()); err != nil {
				return err
			}
		}
		for _, r := range rows {
			if err := putJSON(b, []byte(r.Key), progressRow{Cursor: r.Cursor, Until: r.Until, Done: r.Done, Parts: r.Parts,
				ExpiresAt: r.ExpiresAt.UTC()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save fan-out progress: %w", err)
	}
	return nil
}

// purgeExpired deletes the progress rows that have expired.
func purgeExpired(b *bolt.Bucket, now time.Time) error {
	var dead [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var r progressRow
		if json.Unmarshal(v, &r) != nil || !store.Live(r.ExpiresAt, now) {
			dead = append(dead, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
