package store

import (
	"context"
	"fmt"
	"iter"
	"time"
)

// Fan-out state: what the delivery engine (internal/fanout) reads and writes in the registry
// besides whole topics. A topic is read page by page from an opaque cursor, so that a fan-out can
// be resumed, split into chunks and handed to other invocations; and the engine keeps one
// progress row per event (and per chunk) so that a retried event skips what was delivered.

// A Page is one read of a topic's subscriptions.
type Page struct {
	// Subs are the page's live subscriptions, in key order. The reader keeps the slice until the
	// page is delivered: the backend must not reuse it.
	Subs []Subscription
	// Next is the cursor after the page's last subscription (live or expired); "" on the last
	// page of the range.
	Next string
}

// PageSubscriptions yields the subscriptions of pages one by one, and the error that ends them:
// a backend's Registry.Subscriptions is its own TopicPages of the whole topic, through this.
func PageSubscriptions(pages iter.Seq2[Page, error]) iter.Seq2[Subscription, error] {
	return func(yield func(Subscription, error) bool) {
		for pg, err := range pages {
			if err != nil {
				yield(Subscription{}, err)
				return
			}
			for _, sub := range pg.Subs {
				if !yield(sub, nil) {
					return
				}
			}
		}
	}
}

// A SubKey identifies one subscription of a topic.
type SubKey struct {
	ConnectionID string
	ID           string
}

// Progress is one fan-out state row. The engine writes a row for an event (its key is the
// event's) and for each part of it handed to the chunk queue (the event's key, "/" and the part).
type Progress struct {
	// Key is the row's key, at most MaxProgressKey bytes.
	Key string
	// Cursor is the cursor after the last fully delivered page of the row's own range; "" when
	// none was.
	Cursor string
	// Until ends the row's own range (an inclusive cursor) when the rest of the topic was handed
	// off in chunks; "" for the whole topic.
	Until string
	// Done reports that the row's own range was delivered or handed off as parts.
	Done bool
	// Parts is how many parts the row handed to the queue (keys Key+"/1" … Key+"/Parts").
	Parts int
	// ExpiresAt is the row's TTL: reads treat a row past it as absent.
	ExpiresAt time.Time
}

// MaxProgressKey is the longest progress key a backend must store, in bytes: an event key and six
// levels of parts leave ample room.
const MaxProgressKey = 256

// FanoutState is the registry as the fan-out engine reads it: topics by cursor, single
// subscriptions by key, and progress rows. Every method returns soon after its context ends.
// Cursors are opaque strings, valid for one topic of one backend; they order like the topic's
// keys, and a cursor stays valid after the subscription it names is deleted.
type FanoutState interface {
	// TopicPages yields the topic's live subscriptions in key order, page by page, from just
	// after the cursor after ("" = the first) up to and including the subscription at cursor
	// until ("" = the last). Page.Next is "" on the final page of the range. It stops at the
	// first error, which it yields.
	TopicPages(ctx context.Context, topic, after, until string) iter.Seq2[Page, error]
	// TopicSubscriptions reads the listed subscriptions of a topic with strongly consistent
	// reads; absent and expired ones are left out. The order is unspecified.
	TopicSubscriptions(ctx context.Context, topic string, keys []SubKey) ([]Subscription, error)
	// TopicCursors walks the keys of the topic only, from just after the cursor after up to and
	// including until ("" = the end), and returns the cursor of every every-th subscription
	// (live or expired) in that range: chunk boundaries, in key order, each followed by at least
	// one subscription of the range (a boundary at its last subscription is left out, so no
	// empty range follows the last boundary). It reads no subscription bodies where the backend can
	// avoid it.
	TopicCursors(ctx context.Context, topic, after, until string, every int) ([]string, error)
	// FanoutProgress reads progress rows with strongly consistent reads; absent and expired keys
	// are left out of the map.
	FanoutProgress(ctx context.Context, keys []string) (map[string]Progress, error)
	// SaveFanoutProgress writes progress rows, each replacing the row of its key. A row needs a
	// key of at most MaxProgressKey bytes (ErrInvalid otherwise).
	SaveFanoutProgress(ctx context.Context, rows []Progress) error
}

// CheckProgress checks rows before a backend writes them: each needs a key of 1 to MaxProgressKey
// bytes. Errors wrap ErrInvalid.
func CheckProgress(rows []Progress) error {
	for _, r := range rows {
		if r.Key == "" || len(r.Key) > MaxProgressKey {
			return fmt.Errorf("%w: progress key of %d bytes (1 to %d)", ErrInvalid, len(r.Key), MaxProgressKey)
		}
	}
	return nil
}
