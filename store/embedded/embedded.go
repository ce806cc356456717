// Package embedded is the local backend: one bbolt file holding the registry, the app data, and a durable change log shaped like a DynamoDB stream.
//
// Every write to app data appends, in the same bbolt transaction, the stream record DynamoDB would
// emit for it (NEW_AND_OLD_IMAGES), so a crash can never separate a write from its event. A reader
// (the local runtime's stream poller) reads the log in order, keeps a durable checkpoint here, and
// trims what it has processed.
//
// Buckets and keys (lp(x) is x prefixed with its length as a uvarint, so no id can be a prefix of
// another):
//
//	conns     lp(connectionID)                  → Connection JSON (with its subscription count)
//	ops       lp(connectionID) opID             → Subscription JSON (every active operation)
//	topics    lp(topic) lp(connectionID) opID   → Subscription JSON (subscriptions only)
//	subjects  lp(subject) connectionID          → the connection's expiry (RFC 3339), once acknowledged
//	items     lp(pk) sk                         → the item in DynamoDB JSON ({"attr":{"S":"…"}})
//	changes   seq (8 bytes, big endian)         → stream record JSON
//	meta      "checkpoint/" name                → seq (8 bytes, big endian)
//
// Within a partition, items sort by the bytes of their sort keys, as DynamoDB sorts them.
// Files written before items were generic hold messages in a bucket "messages" (lp(roomID)
// messageID → Message JSON); Open moves them into items of type Message (pk room#{roomId}, sk
// msg#{id}), the JSON as it was.
//
// # Damage
//
// Open checks an existing file before it uses it: both meta pages valid, the file's length
// against what they count, every record read back, and bbolt's consistency check (Tx.Check),
// with bbolt's panics and memory faults recovered. A damaged, truncated or empty file is refused
// with ErrDamaged, naming the file and what to do, and is left exactly as it was: Open never
// initialises over existing bytes, so data is never replaced silently, and a healthy file is
// only read. The checks read the whole file: about 70 ms for 10,000 messages (17 MB).
package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"iter"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/realtime-gql/lambdaws/store"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketConns    = []byte("conns")
	bucketOps      = []byte("ops")
	bucketTopics   = []byte("topics")
	bucketSubjects = []byte("subjects")
	bucketItems    = []byte("items")
	bucketChanges  = []byte("changes")
	bucketMeta     = []byte("meta")

	// bucketLegacyMessages held messages before items were generic; Open migrates it.
	bucketLegacyMessages = []byte("messages")
)

// ErrDamaged reports a store file that cannot be used as it is: damaged, truncated, empty, or not
// a store at all. The file is left untouched.
var ErrDamaged = errors.New("embedded: store file damaged")

// DefaultStreamARN is the event source ARN of the embedded change stream.
const DefaultStreamARN = "arn:aws:dynamodb:local:000000000000:table/data/stream/1970-01-01T00:00:00.000"

// Options configure a Store. The zero value is usable.
type Options struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
	// StreamARN is the eventSourceARN of change records; default DefaultStreamARN.
	StreamARN string
	// PageSize is how many subscriptions a topic lookup reads per page; default
	// store.DefaultPageSize.
	PageSize int
	// LockTimeout is how long Open waits for another process to release the file; default 1s.
	LockTimeout time.Duration
	// NoSync skips the fsync of each commit (bbolt's DB.NoSync): a crash may lose or damage
	// recent writes. For filling stores in tests and benchmarks only.
	NoSync bool
}

// Store is the embedded backend. It is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	now      func() time.Time
	arn      string
	pageSize int

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever a change is committed
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store file at path. An existing file is checked first and
// refused with ErrDamaged if it is damaged (see the package comment); a file another process has
// open is refused after LockTimeout.
func Open(path string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StreamARN == "" {
		opts.StreamARN = DefaultStreamARN
	}
	if opts.PageSize <= 0 {
		opts.PageSize = store.DefaultPageSize
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	existing := true
	switch info, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist):
		existing = false
	case err != nil:
		return nil, fmt.Errorf("open store %s: %w", path, err)
	case !info.Mode().IsRegular():
		return nil, fmt.Errorf("open store %s: not a regular file", path)
	case info.Size() == 0:
		// bbolt would initialise an empty file as a new store: an emptied store would silently
		// become an empty one.
		return nil, damaged(path, "it is empty (0 bytes)")
	}
	if existing {
		if err := checkHeader(path, opts.LockTimeout); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, opts.LockTimeout, false)
	if err != nil {
		return nil, err
	}
	if existing {
		if err := verify(db); err != nil {
			if !errors.Is(err, errPanicked) { // after a panic bbolt's locks may be held: leave it
				db.Close()
			}
			return nil, damaged(path, err.Error())
		}
		// verify read every page of the file through bbolt's mapping, and a page once read stays
		// in the process's resident set as long as the mapping lives (the whole file: 17 MB of
		// RSS for 10,000 subscriptions, 150 MB for 100,000). Mapped afresh, the store holds
		// resident only what it reads from now on.
		if err := db.Close(); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
		if db, err = openBolt(path, opts.LockTimeout, false); err != nil {
			return nil, err
		}
	}
	if err := prepare(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.NoSync = opts.NoSync
	return &Store{db: db, now: opts.Now, arn: opts.StreamARN, pageSize: opts.PageSize, changed: make(chan struct{})}, nil
}

// checkMetaPages checks bbolt's two meta pages (pages 0 and 1), which bbolt reads at open and
// keeps in a pair so that one torn by a power cut mid-commit can be survived: it opens a file
// with one valid meta page, but then, if the damaged one was the latest, silently as of the
// commit before. So both must be valid: page header (id, 8 bytes; the meta flag, 2 bytes), magic
// and version, and the FNV-64a checksum of the meta fields, all in the machine's byte order as
// bbolt writes them (its file format, unchanged since bbolt's first release).
func checkMetaPages(path string, pageSize int) error {
	const (
		metaPageFlag = 0x04
		magic        = 0xED0CDAED
		version      = 2
		header       = 16 // page header: id, flags, count, overflow
		checksumAt   = header + 56
	)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 2*pageSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return err
	}
	ne := binary.NativeEndian
	for id := range 2 {
		p := buf[id*pageSize:]
		h := fnv.New64a()
		h.Write(p[header:checksumAt])
		if ne.Uint64(p) != uint64(id) || ne.Uint16(p[8:]) != metaPageFlag || ne.Uint32(p[header:]) != magic ||
			ne.Uint32(p[header+4:]) != version || ne.Uint64(p[checksumAt:]) != h.Sum64() {
			return fmt.Errorf("meta page %d is damaged (bbolt would fall back to the other one, losing the last commit if it was the latest)", id)
		}
	}
	return nil
}

var buckets = [][]byte{bucketConns, bucketOps, bucketTopics, bucketSubjects, bucketItems, bucketChanges, bucketMeta}

// prepare creates the buckets a new file lacks and migrates an old one's layout. A file that
// needs neither is not written to.
func prepare(db *bolt.DB) error {
	ready := true
	err := db.View(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			ready = ready && tx.Bucket(b) != nil
		}
		ready = ready && tx.Bucket(bucketLegacyMessages) == nil
		return nil
	})
	if err != nil || ready {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return migrateMessages(tx)
	})
}

func damaged(path, why string) error {
	return fmt.Errorf("open store %s: %w: %s. The file was left as it is; restore it from a backup, "+
		"or move it away to start with an empty store", path, ErrDamaged, why)
}

// errPanicked marks a check that bbolt panicked or faulted in.
var errPanicked = errors.New("reading it failed")

// guard runs fn, turning a panic, or a memory fault on the file's mapping (SIGBUS past the end of
// a truncated file, SIGSEGV), into an error wrapping errPanicked. It must run fn in the calling
// goroutine: debug.SetPanicOnFault is per goroutine.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errPanicked, r)
		}
	}()
	return fn()
}

// openBolt opens the file with bbolt, read-only or not. Opening an existing file writes nothing
// to it: the freelist of files this package writes is always synced, so bbolt has nothing to
// convert. Read-write, bbolt reads the freelist at open, so a damaged one panics here.
func openBolt(path string, timeout time.Duration, readOnly bool) (*bolt.DB, error) {
	var db *bolt.DB
	var openErr error
	err := guard(func() error {
		db, openErr = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: readOnly})
		return nil
	})
	var pathErr *fs.PathError
	switch {
	case err != nil: // bbolt panicked reading the file: its descriptor is lost with it
		return nil, damaged(path, err.Error())
	case errors.Is(openErr, bolt.ErrTimeout):
		return nil, fmt.Errorf("open store %s: the file is in use by another process", path)
	case errors.As(openErr, &pathErr):
		return nil, fmt.Errorf("open store %s: %w", path, openErr)
	case openErr != nil:
		return nil, damaged(path, openErr.Error())
	}
	return db, nil
}

// checkHeader opens an existing file read-only, which reads nothing but its meta pages, and checks
// them (checkMetaPages) and that the file holds every page they count: a truncated file is named
// as such before anything reads past its end.
func checkHeader(path string, timeout time.Duration) error {
	db, err := openBolt(path, timeout, true)
	if err != nil {
		return err
	}
	err = guard(func() error {
		if err := checkMetaPages(path, db.Info().PageSize); err != nil {
			return err
		}
		return db.View(func(tx *bolt.Tx) error {
			info, err := os.Stat(path)
			if err != nil {
				return err
			}
			if info.Size() < tx.Size() {
				return fmt.Errorf("it is truncated: %d bytes, its header counts %d", info.Size(), tx.Size())
			}
			return nil
		})
	})
	if !errors.Is(err, errPanicked) {
		db.Close()
	}
	if err != nil {
		return damaged(path, err.Error())
	}
	return nil
}

// verify checks a file opened read-write once checkHeader has passed: every record of every bucket
// reads back (JSON where the layout says JSON), and bbolt's consistency check passes. Reading every record first means the check, which runs in a goroutine of its own where
// a memory fault could not be recovered, only touches pages already read safely.
func verify(db *bolt.DB) error {
	return guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					if v == nil {
						return fmt.Errorf("bucket %q: unexpected nested bucket %q", name, k)
					}
					if bytes.Equal(name, bucketMeta) {
						if len(v) != 8 {
							return fmt.Errorf("bucket %q: record %q of %d bytes, want 8", name, k, len(v))
						}
					} else if !json.Valid(v) {
						return fmt.Errorf("bucket %q: record %q is not JSON", name, k)
					}
					return nil
				})
			})
			if err != nil {
				return err
			}
			var problems []string
			for err := range tx.Check() {
				if len(problems) < 3 {
					problems = append(problems, err.Error())
				}
			}
			if len(problems) > 0 {
				return fmt.Errorf("bbolt's consistency check failed: %s", strings.Join(problems, "; "))
			}
			return nil
		})
	})
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// lp appends x to b, prefixed with its length.
func lp(b []byte, x string) []byte {
	b = binary.AppendUvarint(b, uint64(len(x)))
	return append(b, x...)
}

func connKey(id string) []byte                 { return lp(nil, id) }
func opKey(connID, opID string) []byte         { return append(lp(nil, connID), opID...) }
func topicPrefix(topic string) []byte          { return lp(nil, topic) }
func subjectKey(subject, connID string) []byte { return append(lp(nil, subject), connID...) }
func itemKey(pk, sk string) []byte             { return append(lp(nil, pk), sk...) }
func topicKey(s store.Subscription) []byte {
	return append(lp(lp(nil, s.Topic), s.ConnectionID), s.ID...)
}

func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("corrupt record %q: %w", key, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// CreateConnection implements store.Registry.
func (s *Store) CreateConnection(ctx context.Context, c store.Connection) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConns)
		var old store.Connection
		found, err := getJSON(b, connKey(c.ID), &old)
		if err != nil {
			return err
		}
		if found && store.Live(old.ExpiresAt, s.now()) {
			return fmt.Errorf("create connection %s: %w", c.ID, store.ErrConflict)
		}
		return putJSON(b, connKey(c.ID), c)
	})
}

// Connection implements store.Registry.
func (s *Store) Connection(ctx context.Context, id string) (store.Connection, error) {
	var c store.Connection
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		c, err = s.liveConnection(tx.Bucket(bucketConns), id, "connection")
		return err
	})
	return c, err
}

// liveConnection reads a connection that exists and is live; ErrNotFound otherwise, its message
// starting with what.
func (s *Store) liveConnection(b *bolt.Bucket, id, what string) (store.Connection, error) {
	var c store.Connection
	found, err := getJSON(b, connKey(id), &c)
	if err != nil {
		return c, err
	}
	if !found || !store.Live(c.ExpiresAt, s.now()) {
		return c, fmt.Errorf("%s %s: %w", what, id, store.ErrNotFound)
	}
	return c, nil
}

// AcknowledgeConnection implements store.Registry. The subject's live connections are counted
// in the same transaction, so the bound holds whatever the concurrency.
func (s *Store) AcknowledgeConnection(ctx context.Context, id string, ack store.Ack) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConns)
		c, err := s.liveConnection(b, id, "acknowledge connection")
		if err != nil {
			return err
		}
		if c.State != store.StatePending {
			return fmt.Errorf("acknowledge connection %s: %w", id, store.ErrConflict)
		}
		if ack.Subject != "" {
			subjects := tx.Bucket(bucketSubjects)
			if ack.MaxPerSubject > 0 {
				n, err := s.countSubject(b, subjects, ack.Subject, id)
				if err != nil {
					return err
				}
				if n >= ack.MaxPerSubject {
					return fmt.Errorf("acknowledge connection %s: %d connections of the subject already: %w", id, n, store.ErrLimit)
				}
			}
			exp, _ := ack.ExpiresAt.UTC().MarshalText()
			if err := subjects.Put(subjectKey(ack.Subject, id), exp); err != nil {
				return err
			}
		}
		c.State, c.Principal, c.Subject, c.AckedAt = store.StateReady, ack.Principal, ack.Subject, ack.At
		return putJSON(b, connKey(id), c)
	})
}

// countSubject counts the live connections indexed under a subject, other than except.
func (s *Store) countSubject(conns, subjects *bolt.Bucket, subject, except string) (int, error) {
	prefix := lp(nil, subject)
	n := 0
	c := subjects.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := string(k[len(prefix):])
		if id == except {
			continue
		}
		if _, err := s.liveConnection(conns, id, "connection"); err == nil {
			n++
		} else if !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
	}
	return n, nil
}

// DeleteConnection implements store.Registry.
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		conns := tx.Bucket(bucketConns)
		var conn store.Connection
		if found, err := getJSON(conns, connKey(id), &conn); err == nil && found && conn.Subject != "" {
			if err := tx.Bucket(bucketSubjects).Delete(subjectKey(conn.Subject, id)); err != nil {
				return err
			}
		}
		if err := conns.Delete(connKey(id)); err != nil {
			return err
		}
		ops, topics := tx.Bucket(bucketOps), tx.Bucket(bucketTopics)
		prefix := connKey(id)
		var keys [][]byte
		c := ops.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var sub store.Subscription
			if err := json.Unmarshal(v, &sub); err == nil && sub.Topic != "" {
				if err := topics.Delete(topicKey(sub)); err != nil {
					return err
				}
			}
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := ops.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// TouchConnection implements store.Registry.
func (s *Store) TouchConnection(ctx context.Context, id string, at time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConns)
		c, err := s.liveConnection(b, id, "touch connection")
		if err != nil {
			return err
		}
		if !at.After(c.LastSeenAt) {
			return nil
		}
		c.LastSeenAt = at
		return putJSON(b, connKey(id), c)
	})
}

// Connections implements store.Registry. Each page is read in its own read transaction.
func (s *Store) Connections(ctx context.Context) iter.Seq2[store.Connection, error] {
	return func(yield func(store.Connection, error) bool) {
		var after []byte
		for {
			if err := ctx.Err(); err != nil {
				yield(store.Connection{}, err)
				return
			}
			var page []store.Connection
			var last []byte
			err := s.db.View(func(tx *bolt.Tx) error {
				c := tx.Bucket(bucketConns).Cursor()
				k, v := c.First()
				if after != nil {
					k, v = c.Seek(after)
					if k != nil && bytes.Equal(k, after) {
						k, v = c.Next()
					}
				}
				for ; k != nil && len(page) < s.pageSize; k, v = c.Next() {
					last = bytes.Clone(k)
					var conn store.Connection
					if err := json.Unmarshal(v, &conn); err != nil {
						return fmt.Errorf("corrupt record %q: %w", k, err)
					}
					page = append(page, conn)
				}
				return nil
			})
			if err != nil {
				yield(store.Connection{}, fmt.Errorf("connections: %w", err))
				return
			}
			for _, c := range page {
				if !yield(c, nil) {
					return
				}
			}
			if len(page) < s.pageSize {
				return
			}
			after = last
		}
	}
}

// PutSubscription implements store.Registry. The connection's subscription count changes in the
// same transaction as the rows.
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription, replace bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		ops, topics := tx.Bucket(bucketOps), tx.Bucket(bucketTopics)
		key := opKey(sub.ConnectionID, sub.ID)
		var old store.Subscription
		found, err := getJSON(ops, key, &old)
		if err != nil {
			return err
		}
		replaced := false // a live subscription this put replaces
		if found {
			live := store.Live(old.ExpiresAt, s.now())
			if live && !replace {
				return fmt.Errorf("put subscription %s/%s: %w", sub.ConnectionID, sub.ID, store.ErrConflict)
			}
			replaced = live && old.Topic != ""
			if old.Topic != "" {
				if err := topics.Delete(topicKey(old)); err != nil {
					return err
				}
			}
		}
		delta := 0
		if sub.Topic != "" {
			delta++
		}
		if replaced {
			delta--
		}
		if err := s.count(tx, sub.ConnectionID, delta); err != nil {
			return fmt.Errorf("put subscription %s/%s: %w", sub.ConnectionID, sub.ID, err)
		}
		if err := putJSON(ops, key, sub); err != nil {
			return err
		}
		if sub.Topic != "" {
			return putJSON(topics, topicKey(sub), sub)
		}
		return nil
	})
}

// count adds delta to a live connection's subscription count, refusing with ErrLimit to pass its
// MaxSubscriptions. An absent connection counts nothing.
func (s *Store) count(tx *bolt.Tx, connID string, delta int) error {
	if delta == 0 {
		return nil
	}
	b := tx.Bucket(bucketConns)
	c, err := s.liveConnection(b, connID, "connection")
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if delta > 0 && c.MaxSubscriptions > 0 && c.Subscriptions+delta > c.MaxSubscriptions {
		return fmt.Errorf("the connection has %d subscriptions, the most it may have: %w", c.Subscriptions, store.ErrLimit)
	}
	c.Subscriptions = max(c.Subscriptions+delta, 0)
	return putJSON(b, connKey(connID), c)
}

// DeleteSubscription implements store.Registry.
func (s *Store) DeleteSubscription(ctx context.Context, connectionID, id string) (bool, error) {
	var active bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		ops := tx.Bucket(bucketOps)
		key := opKey(connectionID, id)
		var old store.Subscription
		found, err := getJSON(ops, key, &old)
		if err != nil || !found {
			return err
		}
		active = store.Live(old.ExpiresAt, s.now())
		if old.Topic != "" {
			if err := tx.Bucket(bucketTopics).Delete(topicKey(old)); err != nil {
				return err
			}
			if active {
				if err := s.count(tx, connectionID, -1); err != nil {
					return err
				}
			}
		}
		return ops.Delete(key)
	})
	return active, err
}

// Subscriptions implements store.Registry: the topic's pages (TopicPages), each read in its own
// read transaction, so a long fan-out never holds the file.
func (s *Store) Subscriptions(ctx context.Context, topic string) iter.Seq2[store.Subscription, error] {
	return store.PageSubscriptions(s.TopicPages(ctx, topic, "", ""))
}

// SubjectConnections implements store.Registry. Each page is read in its own read transaction.
func (s *Store) SubjectConnections(ctx context.Context, subject string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		prefix := lp(nil, subject)
		for row, err := range s.scan(ctx, bucketSubjects, prefix) {
			if err != nil {
				yield("", fmt.Errorf("connections of a subject: %w", err))
				return
			}
			var exp time.Time
			if err := exp.UnmarshalText(row.value); err != nil {
				yield("", fmt.Errorf("corrupt record %q: %w", row.key, err))
				return
			}
			if store.Live(exp, s.now()) && !yield(string(row.key[len(prefix):]), nil) {
				return
			}
		}
	}
}

// Operations implements store.Registry. Each page is read in its own read transaction.
func (s *Store) Operations(ctx context.Context, connectionID string) iter.Seq2[store.Subscription, error] {
	return func(yield func(store.Subscription, error) bool) {
		for row, err := range s.scan(ctx, bucketOps, connKey(connectionID)) {
			if err != nil {
				yield(store.Subscription{}, fmt.Errorf("operations of %s: %w", connectionID, err))
				return
			}
			var sub store.Subscription
			if err := json.Unmarshal(row.value, &sub); err != nil {
				yield(store.Subscription{}, fmt.Errorf("corrupt record %q: %w", row.key, err))
				return
			}
			if store.Live(sub.ExpiresAt, s.now()) && !yield(sub, nil) {
				return
			}
		}
	}
}

// kv is one record a scan read.
type kv struct{ key, value []byte }

// scan yields the records of a bucket under a prefix, a page of PageSize per read transaction.
func (s *Store) scan(ctx context.Context, bucket, prefix []byte) iter.Seq2[kv, error] {
	return func(yield func(kv, error) bool) {
		after := prefix
		for {
			if err := ctx.Err(); err != nil {
				yield(kv{}, err)
				return
			}
			var page []kv
			err := s.db.View(func(tx *bolt.Tx) error {
				c := tx.Bucket(bucket).Cursor()
				k, v := c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
				for ; k != nil && bytes.HasPrefix(k, prefix) && len(page) < s.pageSize; k, v = c.Next() {
					page = append(page, kv{bytes.Clone(k), bytes.Clone(v)})
				}
				return nil
			})
			if err != nil {
				yield(kv{}, err)
				return
			}
			for _, row := range page {
				if !yield(row, nil) {
					return
				}
			}
			if len(page) < s.pageSize {
				return
			}
			after = page[len(page)-1].key
		}
	}
}
