package embedded_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/realtime-gql/lambdaws/store/storetest"
	bolt "go.etcd.io/bbolt"
)

// populate writes a store with real data at path: messages in three rooms (some spanning several
// pages), connections, subscriptions, a change log and a checkpoint.
func populate(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	s, err := embedded.Open(path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msgs := messages(s)
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i := range 120 {
		text := fmt.Sprint("message ", i)
		if i%40 == 0 {
			text += strings.Repeat(" long", 1500) // 7.5 KB: an item over several pages
		}
		m := storetest.Message{ID: store.NewID(at), RoomID: fmt.Sprint("r", i%3), Author: "ann", Text: text, CreatedAt: at}
		if err := msgs.Create(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		id := fmt.Sprint("conn-", i)
		if err := s.CreateConnection(ctx, store.Connection{ID: id, Subprotocol: "graphql-transport-ws", State: store.StatePending,
			ConnectedAt: at, ExpiresAt: at.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSubscription(ctx, store.Subscription{ConnectionID: id, ID: "1", Topic: "messageAdded?roomId=r1",
			Subprotocol: "graphql-transport-ws", Query: "subscription { messageAdded(roomId: \"r1\") { id } }", CreatedAt: at,
			ExpiresAt: at.Add(time.Hour)}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetCheckpoint(ctx, "stream", 100); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// snapshot reads everything the store holds, as the service would.
func snapshot(t *testing.T, s *embedded.Store) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for room := range 3 {
		ms, err := messages(s).Query(ctx, roomOf(fmt.Sprint("r", room)), store.MaxQueryItems)
		if err != nil {
			t.Fatalf("messages: %v", err)
		}
		raw, _ := json.Marshal(ms)
		b.Write(raw)
	}
	for c, err := range s.Connections(ctx) {
		if err != nil {
			t.Fatalf("connections: %v", err)
		}
		fmt.Fprint(&b, c.ID, c.ExpiresAt)
	}
	for sub, err := range s.Subscriptions(ctx, "messageAdded?roomId=r1") {
		if err != nil {
			t.Fatalf("subscriptions: %v", err)
		}
		fmt.Fprint(&b, sub.ConnectionID, sub.Query)
	}
	cp, err := s.Checkpoint(ctx, "stream")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := s.ReadChanges(ctx, cp, 1000)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(&b, cp, len(changes))
	for _, c := range changes {
		b.Write(c.Record)
	}
	return b.String()
}

// pageTypes classifies each page of a bbolt file: "meta", "freelist", "branch", "leaf", "free",
// or "overflow" for the continuation pages of a large leaf.
func pageTypes(t *testing.T, path string) []string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var types []string
	err = db.View(func(tx *bolt.Tx) error {
		for id := 0; id < int(tx.Size())/db.Info().PageSize; id++ {
			info, err := tx.Page(id)
			if err != nil {
				return err
			}
			types = append(types, info.Type)
			if info.Type == "free" { // each free page is in the freelist; its header is stale
				continue
			}
			for range info.OverflowCount {
				types = append(types, "overflow")
			}
			id += info.OverflowCount
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return types
}

// openNoPanic opens path, failing the test (not crashing it) if Open panics.
func openNoPanic(t *testing.T, name, path string) (s *embedded.Store, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: Open panicked: %v", name, r)
		}
	}()
	return embedded.Open(path, embedded.Options{LockTimeout: 100 * time.Millisecond})
}

// refused checks that opening a damaged file fails with ErrDamaged, naming the file and what to
// do, and leaves every byte of it as it was.
func refused(t *testing.T, name, path string) {
	t.Helper()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := openNoPanic(t, name, path)
	if err == nil {
		s.Close()
		t.Fatalf("%s: Open succeeded", name)
	}
	if !errors.Is(err, embedded.ErrDamaged) || !strings.Contains(err.Error(), path) ||
		!strings.Contains(err.Error(), "restore it from a backup") || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("%s: Open = %v; want ErrDamaged naming %s and what to do", name, err, path)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("%s: the failed Open changed the file (%d bytes before, %d after)", name, len(before), len(after))
	}
}

// TestDamagedFileIsRefused damages a store holding real data in each way issue 7 found (one page
// overwritten, truncated, emptied) and more, and checks that Open never panics, never
// initialises over the file, and refuses it with an error naming it, leaving it byte for byte as
// it was; and that where the damage touches no data (a free page, the file's unused tail), the
// store opens with all its data. Every page is overwritten in turn, with random bytes and with
// zeros: a meta page too, although bbolt would open the file with the other one of the pair,
// since that can silently lose the last commit.
func TestDamagedFileIsRefused(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good.db")
	populate(t, good)
	s, err := embedded.Open(good, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, s)
	s.Close()
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	types := pageTypes(t, good)
	const pageSize = 4096
	if len(orig) < len(types)*pageSize || len(types) < 20 {
		t.Fatalf("%d pages in a file of %d bytes", len(types), len(orig))
	}

	damaged := func(name string, b []byte) string {
		path := filepath.Join(t.TempDir(), "store.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	hwm := len(types) * pageSize // the file may be longer: bbolt grows it ahead of use
	for name, tc := range map[string]struct {
		b   []byte
		why string
	}{
		"emptied (0 bytes)":               {[]byte{}, "it is empty (0 bytes)"},
		"truncated to half":               {orig[:len(orig)/2], "it is truncated"},
		"truncated by its last used page": {orig[:hwm-pageSize], "it is truncated"},
		"truncated to 100 bytes":          {orig[:100], "invalid database"},
		"not a store":                     {[]byte(strings.Repeat("this is a text file, not a store\n", 300)), "invalid database"},
	} {
		path := damaged(name, tc.b)
		refused(t, name, path)
		if _, err := embedded.Open(path, embedded.Options{}); err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: %v; want it to say %q", name, err, tc.why)
		}
	}

	// Cutting what bbolt has not used yet loses nothing.
	s, err = openNoPanic(t, "truncated after its last used page", damaged("", orig[:hwm]))
	if err != nil {
		t.Fatalf("truncated after its last used page: %v", err)
	}
	if snapshot(t, s) != want {
		t.Fatal("truncated after its last used page: opened with other data")
	}
	s.Close()

	r := rand.New(rand.NewPCG(7, 8))
	counts := map[string]int{}
	for page, typ := range types {
		for _, fill := range []string{"random bytes", "zeros"} {
			b := bytes.Clone(orig)
			chunk := b[page*pageSize : (page+1)*pageSize]
			for i := range chunk {
				chunk[i] = 0
				if fill == "random bytes" {
					chunk[i] = byte(r.Uint32())
				}
			}
			name := fmt.Sprintf("page %d (%s) overwritten with %s", page, typ, fill)
			path := damaged(name, b)
			if typ == "free" {
				s, err := openNoPanic(t, name, path)
				if err != nil {
					t.Fatalf("%s: %v; the damage touches no data", name, err)
				}
				// Reading everything back is slow under the race detector; a sample of the free
				// pages suffices, all of them must open.
				if counts["opened intact"]%8 == 0 && snapshot(t, s) != want {
					t.Fatalf("%s: opened with other data", name)
				}
				s.Close()
				counts["opened intact"]++
				continue
			}
			refused(t, name, path)
			counts["refused"]++
		}
	}
	t.Logf("%d pages: %v", len(types), counts)
}

// TestOpenDoesNotReplaceAnEmptyFile checks that an existing empty file stays empty, while a
// missing one becomes a new store.
func TestOpenDoesNotReplaceAnEmptyFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refused(t, "empty file", empty)
	fresh := filepath.Join(dir, "fresh.db")
	s, err := embedded.Open(fresh, embedded.Options{})
	if err != nil {
		t.Fatalf("a missing file does not become a new store: %v", err)
	}
	s.Close()
	// The new store reopens: it passes its own checks.
	s, err = embedded.Open(fresh, embedded.Options{})
	if err != nil {
		t.Fatalf("reopening a new store: %v", err)
	}
	s.Close()
}

// TestOpenWritesNothingToAHealthyStore checks that opening and closing an existing store leaves
// its bytes as they were: the checks only read.
func TestOpenWritesNothingToAHealthyStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	populate(t, path)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := embedded.Open(path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("opening a healthy store changed the file")
	}
}

// BenchmarkOpen measures what the checks cost at open, for stores of 1,000 and 10,000 messages,
// against bbolt's own open and close of the same file. (The stores are written as an old file's
// messages bucket in one transaction, which Open moves into items, to keep the setup fast.)
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		path := filepath.Join(b.TempDir(), "store.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
		err = db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucket([]byte("messages"))
			if err != nil {
				return err
			}
			for i := range n {
				m := storetest.Message{ID: store.NewID(at), RoomID: fmt.Sprint("r", i%10), Author: "ann", Text: strings.Repeat("x", 100), CreatedAt: at}
				raw, _ := json.Marshal(m)
				key := append(binary.AppendUvarint(nil, uint64(len(m.RoomID))), m.RoomID...)
				if err := bk.Put(append(key, m.ID...), raw); err != nil {
					return err
				}
			}
			return nil
		})
		db.Close()
		if err != nil {
			b.Fatal(err)
		}
		s, err := embedded.Open(path, embedded.Options{}) // migrates
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		info, _ := os.Stat(path)
		b.Run(fmt.Sprintf("messages=%d/bbolt", n), func(b *testing.B) {
			for b.Loop() {
				db, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					b.Fatal(err)
				}
				db.Close()
			}
			b.ReportMetric(float64(info.Size())/1e6, "MB")
		})
		b.Run(fmt.Sprintf("messages=%d/embedded", n), func(b *testing.B) {
			for b.Loop() {
				s, err := embedded.Open(path, embedded.Options{})
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
			b.ReportMetric(float64(info.Size())/1e6, "MB")
		})
	}
}
