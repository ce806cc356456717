package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/store"
)

// The messages of the golden stream events in testdata/stream.
var (
	goldenID       = "01M8BVM4KV704CW2E46FW3XR1V"
	goldenCreated  = time.Date(2026, 11, 26, 12, 0, 0, 123_000_000, time.UTC)
	goldenEdited   = time.Date(2026, 11, 26, 12, 5, 0, 500_000_000, time.UTC)
	goldenOriginal = store.Message{ID: goldenID, RoomID: "r1", Author: "ann", Text: "hello, room", CreatedAt: goldenCreated}
	goldenEditedM  = store.Message{ID: goldenID, RoomID: "r1", Author: "ann", Text: "hello, everyone", CreatedAt: goldenCreated, EditedAt: &goldenEdited}
	goldenExpiring = store.Message{ID: "01M8BVM7HKVFWQTE1JPKJ8T31J", RoomID: "r1", Author: "bob", Text: "this one expires",
		CreatedAt: goldenCreated.Add(3 * time.Second)}
)

// readEvent decodes a stream event as Lambda hands it to a handler.
func readEvent(t *testing.T, name string) events.DynamoDBEvent {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "stream", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(ev.Records) == 0 {
		t.Fatalf("%s: no records", name)
	}
	return ev
}

func sameMessage(a, b *store.Message) bool {
	if a == nil || b == nil {
		return a == b
	}
	if (a.EditedAt == nil) != (b.EditedAt == nil) || a.EditedAt != nil && !a.EditedAt.Equal(*b.EditedAt) {
		return false
	}
	return a.ID == b.ID && a.RoomID == b.RoomID && a.Author == b.Author && a.Text == b.Text && a.CreatedAt.Equal(b.CreatedAt)
}

func show(m *store.Message) string {
	if m == nil {
		return "nil"
	}
	return fmt.Sprintf("%+v", *m)
}

// TestDecodeGolden decodes records shaped exactly as DynamoDB streams deliver them to Lambda.
func TestDecodeGolden(t *testing.T) {
	for _, tc := range []struct {
		file      string
		kind      store.ChangeKind
		old, new  *store.Message
		byService bool
	}{
		{"insert.json", store.Insert, nil, &goldenOriginal, false},
		{"modify.json", store.Modify, &goldenOriginal, &goldenEditedM, false},
		{"remove.json", store.Remove, &goldenEditedM, nil, false},
		{"ttl_remove.json", store.Remove, &goldenExpiring, nil, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			ev := readEvent(t, tc.file)
			if len(ev.Records) != 1 {
				t.Fatalf("%d records, want 1", len(ev.Records))
			}
			rec := ev.Records[0]
			if rec.EventSource != "aws:dynamodb" || rec.EventVersion != "1.1" ||
				rec.Change.StreamViewType != string(events.DynamoDBStreamViewTypeNewAndOldImages) {
				t.Fatalf("fixture is not a NEW_AND_OLD_IMAGES stream record: %+v", rec)
			}
			ch, ok, err := store.DecodeChange(rec)
			if err != nil || !ok {
				t.Fatalf("DecodeChange = %v, %v", ok, err)
			}
			if ch.Kind != tc.kind || ch.ByService != tc.byService {
				t.Fatalf("kind %s byService %v, want %s %v", ch.Kind, ch.ByService, tc.kind, tc.byService)
			}
			if !sameMessage(ch.Old, tc.old) || !sameMessage(ch.New, tc.new) {
				t.Fatalf("old %s new %s\nwant old %s new %s", show(ch.Old), show(ch.New), show(tc.old), show(tc.new))
			}
		})
	}
}

// TestGoldenMatchesChangeRecord checks that ChangeRecord (what the embedded backend streams) builds
// records of the same shape as the golden ones: the same fields, and the same keys and images,
// attribute for attribute.
func TestGoldenMatchesChangeRecord(t *testing.T) {
	for _, tc := range []struct {
		file     string
		kind     store.ChangeKind
		old, new *store.Message
	}{
		{"insert.json", store.Insert, nil, &goldenOriginal},
		{"modify.json", store.Modify, &goldenOriginal, &goldenEditedM},
		{"remove.json", store.Remove, &goldenEditedM, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			golden := readEvent(t, tc.file).Records[0]
			built, err := store.ChangeRecord(tc.kind, tc.old, tc.new, 7, golden.EventSourceArn, golden.Change.ApproximateCreationDateTime.Time)
			if err != nil {
				t.Fatal(err)
			}
			g, b := asJSONMap(t, golden), asJSONMap(t, built)
			if gk, bk := slices.Sorted(maps.Keys(g)), slices.Sorted(maps.Keys(b)); !slices.Equal(gk, bk) {
				t.Fatalf("record fields %v, golden %v", bk, gk)
			}
			gd, bd := g["dynamodb"].(map[string]any), b["dynamodb"].(map[string]any)
			if gk, bk := slices.Sorted(maps.Keys(gd)), slices.Sorted(maps.Keys(bd)); !slices.Equal(gk, bk) {
				t.Fatalf("dynamodb fields %v, golden %v", bk, gk)
			}
			for _, f := range []string{"Keys", "NewImage", "OldImage", "StreamViewType", "ApproximateCreationDateTime"} {
				gj, _ := json.Marshal(gd[f])
				bj, _ := json.Marshal(bd[f])
				if string(gj) != string(bj) {
					t.Errorf("%s = %s\ngolden %s", f, bj, gj)
				}
			}
			for _, f := range []string{"eventName", "eventSource", "eventVersion", "awsRegion", "eventSourceARN"} {
				if g[f] != b[f] {
					t.Errorf("%s = %v, golden %v", f, b[f], g[f])
				}
			}
		})
	}
}

func asJSONMap(t *testing.T, v any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDecodeSkipsOtherItems checks that records of app data other than messages are skipped
// without an error, whatever their images hold.
func TestDecodeSkipsOtherItems(t *testing.T) {
	rec := readEvent(t, "other_item.json").Records[0]
	if ch, ok, err := store.DecodeChange(rec); ok || err != nil || ch != (store.Change{}) {
		t.Fatalf("DecodeChange(profile item) = %+v, %v, %v; want skipped", ch, ok, err)
	}
	// Skipping looks at the keys only: an unknown eventName or missing images do not matter.
	rec.EventName = "UPSERT"
	rec.Change.NewImage = nil
	if _, ok, err := store.DecodeChange(rec); ok || err != nil {
		t.Fatalf("DecodeChange(odd profile record) = %v, %v; want skipped", ok, err)
	}
	// A record without a string sort key is not a message's either.
	rec.Change.Keys = map[string]events.DynamoDBAttributeValue{"pk": events.NewStringAttribute("x")}
	if _, ok, err := store.DecodeChange(rec); ok || err != nil {
		t.Fatalf("DecodeChange(no sk) = %v, %v; want skipped", ok, err)
	}
	rec.Change.Keys["sk"] = events.NewNumberAttribute("1")
	if _, ok, err := store.DecodeChange(rec); ok || err != nil {
		t.Fatalf("DecodeChange(numeric sk) = %v, %v; want skipped", ok, err)
	}
}

// TestDecodeMalformed checks that records of messages that cannot be decoded are reported as
// ErrBadRecord, naming the record, and never decoded halfway.
func TestDecodeMalformed(t *testing.T) {
	ev := readEvent(t, "malformed.json")
	cases := []struct{ name, want string }{
		{"INSERT without NewImage", "new image: missing"},
		{"MODIFY without OldImage", "old image: missing"},
		{"MODIFY without NewImage", "new image: missing"},
		{"REMOVE without OldImage", "old image: missing"},
		{"text is a number", "new image"},
		{"id is a boolean", "new image"},
		{"roomId missing", "not a message"},
		{"unknown eventName", `eventName "UPSERT"`},
		{"editedAt is not a time", "new image"},
		{"author is a string set", "new image"},
		{"old image is not a message", "not a message"},
	}
	if len(ev.Records) != len(cases) {
		t.Fatalf("malformed.json has %d records, the test knows %d", len(ev.Records), len(cases))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := ev.Records[i]
			ch, ok, err := store.DecodeChange(rec)
			if !errors.Is(err, store.ErrBadRecord) {
				t.Fatalf("DecodeChange = %+v, %v, %v; want ErrBadRecord", ch, ok, err)
			}
			if ok || ch.Old != nil || ch.New != nil {
				t.Fatalf("failed decode returned ok=%v, %+v", ok, ch)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), rec.EventID) {
				t.Fatalf("error %q does not say %q and name event %s", err, tc.want, rec.EventID)
			}
		})
	}
}

// TestDecodeWrongTypes replaces each attribute of each golden image with a value of every other
// type, and a value whose accessors panic (the zero DynamoDBAttributeValue claims to be binary but
// holds nothing): DecodeChange must return ErrBadRecord or decode, never panic. Attributes the
// message does not read (pk) may take any type; for the others a wrong type is an error, with two
// exceptions of the codec (guregu/dynamo): a NULL reads as absent, and a number in a time
// attribute reads as epoch seconds.
func TestDecodeWrongTypes(t *testing.T) {
	values := map[string]events.DynamoDBAttributeValue{
		"N":    events.NewNumberAttribute("42"),
		"B":    events.NewBinaryAttribute([]byte{1, 2}),
		"BOOL": events.NewBooleanAttribute(true),
		"NULL": events.NewNullAttribute(),
		"SS":   events.NewStringSetAttribute([]string{"a", "b"}),
		"NS":   events.NewNumberSetAttribute([]string{"1"}),
		"L":    events.NewListAttribute([]events.DynamoDBAttributeValue{events.NewStringAttribute("a")}),
		"M":    events.NewMapAttribute(map[string]events.DynamoDBAttributeValue{"a": events.NewStringAttribute("a")}),
		"zero": {},
	}
	for _, file := range []string{"insert.json", "modify.json", "remove.json"} {
		golden := readEvent(t, file).Records[0]
		for _, image := range []string{"OldImage", "NewImage"} {
			img := golden.Change.OldImage
			if image == "NewImage" {
				img = golden.Change.NewImage
			}
			for attr := range img {
				for typ, v := range values {
					rec := golden
					bad := maps.Clone(img)
					bad[attr] = v
					if image == "NewImage" {
						rec.Change.NewImage = bad
					} else {
						rec.Change.OldImage = bad
					}
					name := fmt.Sprintf("%s %s.%s=%s", file, image, attr, typ)
					ch, ok, err := decodeNoPanic(t, name, rec)
					switch {
					case err != nil && !errors.Is(err, store.ErrBadRecord):
						t.Errorf("%s: error %v does not wrap ErrBadRecord", name, err)
					case err == nil && !ok:
						t.Errorf("%s: skipped", name)
					case err == nil && (attr == "createdAt" || attr == "editedAt") && typ == "N":
						m := ch.New
						if image == "OldImage" {
							m = ch.Old
						}
						got := m.CreatedAt
						if attr == "editedAt" {
							got = *m.EditedAt
						}
						if !got.Equal(time.Unix(42, 0)) {
							t.Errorf("%s: %s read as %v, want epoch second 42", name, attr, got)
						}
					case err == nil && attr != "pk" && typ != "NULL":
						t.Errorf("%s: decoded as %s / %s; want ErrBadRecord", name, show(ch.Old), show(ch.New))
					}
				}
			}
		}
	}
}

func decodeNoPanic(t *testing.T, name string, rec events.DynamoDBEventRecord) (ch store.Change, ok bool, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: DecodeChange panicked: %v", name, r)
		}
	}()
	return store.DecodeChange(rec)
}

// TestChangeRecordRoundTrip checks that what ChangeRecord builds survives JSON (as the local
// runtime hands records to the handler) and decodes to the same change.
func TestChangeRecordRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 987_654_321, time.FixedZone("CET", 3600))
	edited := at.Add(time.Minute)
	orig := store.Message{ID: store.NewID(at), RoomID: "room with spaces#and#hashes", Author: "ünïcødé", Text: "", CreatedAt: at}
	ed := orig
	ed.Text, ed.EditedAt = "now with text\nand a newline", &edited
	for _, tc := range []struct {
		kind     store.ChangeKind
		old, new *store.Message
	}{
		{store.Insert, nil, &orig},
		{store.Modify, &orig, &ed},
		{store.Remove, &ed, nil},
	} {
		rec, err := store.ChangeRecord(tc.kind, tc.old, tc.new, 42, "arn:aws:dynamodb:eu-west-1:123456789012:table/data/stream/x", at)
		if err != nil {
			t.Fatal(err)
		}
		if rec.AWSRegion != "eu-west-1" || rec.Change.SequenceNumber != "42" || len(rec.EventID) != 32 {
			t.Fatalf("%s: region %q seq %q eventID %q", tc.kind, rec.AWSRegion, rec.Change.SequenceNumber, rec.EventID)
		}
		raw, err := json.Marshal(events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}})
		if err != nil {
			t.Fatal(err)
		}
		var ev events.DynamoDBEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		ch, ok, err := store.DecodeChange(ev.Records[0])
		if err != nil || !ok {
			t.Fatalf("%s: DecodeChange = %v, %v", tc.kind, ok, err)
		}
		if ch.Kind != tc.kind || ch.ByService || !sameMessage(ch.Old, tc.old) || !sameMessage(ch.New, tc.new) {
			t.Fatalf("%s: round trip gave %s old %s new %s", tc.kind, ch.Kind, show(ch.Old), show(ch.New))
		}
		if !ev.Records[0].Change.ApproximateCreationDateTime.Time.Equal(at.Truncate(time.Second)) {
			t.Fatalf("%s: ApproximateCreationDateTime %v", tc.kind, ev.Records[0].Change.ApproximateCreationDateTime)
		}
	}
}

// FuzzDecodeChange feeds arbitrary records: DecodeChange never panics, and its errors wrap
// ErrBadRecord.
func FuzzDecodeChange(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "stream", "*.json"))
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var ev struct{ Records []json.RawMessage }
		if err := json.Unmarshal(raw, &ev); err != nil {
			f.Fatal(err)
		}
		for _, r := range ev.Records {
			f.Add([]byte(r))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec events.DynamoDBEventRecord
		if json.Unmarshal(data, &rec) != nil {
			return
		}
		if _, _, err := store.DecodeChange(rec); err != nil && !errors.Is(err, store.ErrBadRecord) {
			t.Fatalf("error %v does not wrap ErrBadRecord", err)
		}
	})
}
