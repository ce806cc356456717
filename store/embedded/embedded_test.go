package embedded_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/realtime-gql/lambdaws/store/storetest"
	"github.com/realtime-gql/lambdaws/store/stream"
	bolt "go.etcd.io/bbolt"
)

func open(t *testing.T, now func() time.Time) storetest.Backend {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "data.db"), embedded.Options{Now: now, PageSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var after uint64
	return storetest.Backend{Store: s, Changes: func(t *testing.T) []events.DynamoDBEventRecord {
		t.Helper()
		changes, err := s.ReadChanges(t.Context(), after, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		recs := make([]events.DynamoDBEventRecord, len(changes))
		for i, c := range changes {
			if err := json.Unmarshal(c.Record, &recs[i]); err != nil {
				t.Fatalf("change %d: %v", c.Seq, err)
			}
			after = c.Seq
		}
		return recs
	}}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open)
}

// TestChangeLog checks that each app-data write appends exactly its stream record, in order, with
// images DecodeItemChange reads back, and that registry writes and failed writes append nothing.
func TestChangeLog(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "data.db"), embedded.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	msgs := messages(s)
	woke := s.Changed()
	m := storetest.Message{ID: store.NewID(clk.Now()), RoomID: "r1", Author: "ann", Text: "hi", CreatedAt: clk.Now()}
	if err := msgs.Create(ctx, &m); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woke:
	default:
		t.Fatal("Changed() not closed by a write")
	}
	if err := s.CreateConnection(ctx, store.Connection{ID: "c", ExpiresAt: clk.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	edited := m
	at := clk.Now()
	edited.Text, edited.EditedAt = "hello", &at
	if _, err := msgs.Replace(ctx, &edited); err != nil {
		t.Fatal(err)
	}
	key := map[string]any{"roomId": "r1", "id": m.ID}
	if _, err := msgs.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := msgs.Replace(ctx, &edited); err == nil {
		t.Fatal("replacing a deleted message succeeded")
	}

	changes, err := s.ReadChanges(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 3 {
		t.Fatalf("%d change records, want 3 (registry writes and failed writes append none)", len(changes))
	}
	wantKinds := []stream.ChangeKind{stream.Insert, stream.Modify, stream.Remove}
	for i, c := range changes {
		var rec events.DynamoDBEventRecord
		if err := json.Unmarshal(c.Record, &rec); err != nil {
			t.Fatal(err)
		}
		if c.Seq != uint64(i+1) || rec.Change.SequenceNumber != fmt.Sprint(c.Seq) {
			t.Fatalf("record %d: seq %d / %q", i, c.Seq, rec.Change.SequenceNumber)
		}
		if rec.EventSource != "aws:dynamodb" || rec.Change.StreamViewType != "NEW_AND_OLD_IMAGES" {
			t.Fatalf("record %d: source %q view %q", i, rec.EventSource, rec.Change.StreamViewType)
		}
		ch, ok, err := stream.DecodeItemChange(rec)
		if err != nil || !ok || ch.Type != "Message" {
			t.Fatalf("DecodeItemChange(record %d) = %+v, %v, %v", i, ch, ok, err)
		}
		if ch.Kind != wantKinds[i] {
			t.Fatalf("record %d kind %s, want %s", i, ch.Kind, wantKinds[i])
		}
		decode := func(p json.RawMessage) *storetest.Message {
			if p == nil {
				return nil
			}
			var m storetest.Message
			if err := json.Unmarshal(p, &m); err != nil {
				t.Fatalf("record %d: payload %s: %v", i, p, err)
			}
			return &m
		}
		old, new := decode(ch.Old), decode(ch.New)
		switch ch.Kind {
		case stream.Insert:
			if old != nil || new.Text != "hi" {
				t.Fatalf("insert: %+v", ch)
			}
		case stream.Modify:
			if old.Text != "hi" || new.Text != "hello" || new.EditedAt == nil {
				t.Fatalf("modify: old %+v new %+v", old, new)
			}
		case stream.Remove:
			if new != nil || old.Text != "hello" {
				t.Fatalf("remove: %+v", ch)
			}
		}
	}

	// The checkpoint is durable and trims what it covers.
	if err := s.SetCheckpoint(ctx, "stream", 2); err != nil {
		t.Fatal(err)
	}
	if cp, _ := s.Checkpoint(ctx, "stream"); cp != 2 {
		t.Fatalf("Checkpoint = %d, want 2", cp)
	}
	rest, _ := s.ReadChanges(ctx, 0, 100)
	if len(rest) != 1 || rest[0].Seq != 3 {
		t.Fatalf("after checkpoint 2, log holds %+v, want only seq 3", rest)
	}
}

// TestSurvivesReopen checks that committed writes, the change log and the checkpoint survive
// closing and reopening the file.
func TestSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data.db")
	s, err := embedded.Open(path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		m := storetest.Message{ID: store.NewID(time.Now()), RoomID: "r", Author: "a", Text: string(rune('a' + i)), CreatedAt: time.Now()}
		if err := messages(s).Create(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetCheckpoint(ctx, "stream", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := embedded.Open(path, embedded.Options{LockTimeout: 50 * time.Millisecond}); err == nil {
		t.Fatal("a second Open of a file in use succeeded")
	}
	s.Close()

	s, err = embedded.Open(path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs, _ := messages(s).Query(ctx, roomOf("r"), 10)
	if len(msgs) != 5 {
		t.Fatalf("%d messages after reopen, want 5", len(msgs))
	}
	cp, _ := s.Checkpoint(ctx, "stream")
	changes, _ := s.ReadChanges(ctx, cp, 100)
	if cp != 2 || len(changes) != 3 || changes[0].Seq != 3 {
		t.Fatalf("after reopen: checkpoint %d, %d pending changes", cp, len(changes))
	}
	// Sequence numbers keep increasing across restarts.
	m := storetest.Message{ID: store.NewID(time.Now()), RoomID: "r", Author: "a", Text: "z", CreatedAt: time.Now()}
	if err := messages(s).Create(ctx, &m); err != nil {
		t.Fatal(err)
	}
	changes, _ = s.ReadChanges(ctx, cp, 100)
	if changes[len(changes)-1].Seq != 6 {
		t.Fatalf("new record seq %d, want 6", changes[len(changes)-1].Seq)
	}
}

// TestMigratesLegacyMessages opens a file written before items were generic (messages in a
// bucket of their own, keyed by room and id) and checks that its messages are items now, read
// as before, and that the move wrote no change records.
func TestMigratesLegacyMessages(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	edited := at.Add(time.Minute)
	var want []storetest.Message
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("messages"))
		if err != nil {
			return err
		}
		for i, room := range []string{"r1", "r1", "r1", "r10"} {
			m := storetest.Message{ID: store.NewID(at.Add(time.Duration(i) * time.Second)), RoomID: room, Author: "ann",
				Text: fmt.Sprint("m", i), CreatedAt: at.Add(time.Duration(i) * time.Second)}
			if i == 1 {
				m.EditedAt = &edited
			}
			raw, _ := json.Marshal(m)
			key := append(binary.AppendUvarint(nil, uint64(len(room))), room...)
			if err := b.Put(append(key, m.ID...), raw); err != nil {
				return err
			}
			want = append(want, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := embedded.Open(path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := messages(s).Query(ctx, roomOf("r1"), 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("Messages(r1) = %d, %v; want 3", len(got), err)
	}
	for i, m := range got {
		w := want[i]
		if m.ID != w.ID || m.Text != w.Text || !m.CreatedAt.Equal(w.CreatedAt) || (m.EditedAt != nil) != (w.EditedAt != nil) {
			t.Fatalf("message %d = %+v, want %+v", i, m, w)
		}
	}
	item, err := s.GetItem(ctx, "room#r10", "msg#"+want[3].ID)
	if err != nil || item["__typename"].(*types.AttributeValueMemberS).Value != "Message" {
		t.Fatalf("migrated item = %v, %v; want a Message item", item, err)
	}
	if changes, err := s.ReadChanges(ctx, 0, 10); err != nil || len(changes) != 0 {
		t.Fatalf("the migration wrote %d change records (%v), want none", len(changes), err)
	}
	s.Close()
	// Reopening finds nothing left to move and the same messages.
	s, err = embedded.Open(path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := messages(s).Query(ctx, roomOf("r1"), 10); err != nil || len(got) != 3 {
		t.Fatalf("after reopening: %d messages, %v", len(got), err)
	}
}
