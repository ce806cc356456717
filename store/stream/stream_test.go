package stream_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/storetest"
	"github.com/realtime-gql/lambdaws/store/stream"
)

var update = flag.Bool("update", false, "rewrite the stream fixtures in testdata")

// The golden stream events in testdata are of storetest.Message items.
// The messages of the golden stream events in testdata.
var (
	goldenID       = "01M8BVM4KV704CW2E46FW3XR1V"
	goldenCreated  = time.Date(2026, 11, 26, 12, 0, 0, 123_000_000, time.UTC)
	goldenEdited   = time.Date(2026, 11, 26, 12, 5, 0, 500_000_000, time.UTC)
	goldenOriginal = storetest.Message{ID: goldenID, RoomID: "r1", Author: "ann", Text: "hello, room", CreatedAt: goldenCreated}
	goldenEditedM  = storetest.Message{ID: goldenID, RoomID: "r1", Author: "ann", Text: "hello, everyone", CreatedAt: goldenCreated, EditedAt: &goldenEdited}
	goldenExpiring = storetest.Message{ID: "01M8BVM7HKVFWQTE1JPKJ8T31J", RoomID: "r1", Author: "bob", Text: "this one expires",
		CreatedAt: goldenCreated.Add(3 * time.Second)}
)

// goldenARN is the stream of the fixtures' table.
const goldenARN = "arn:aws:dynamodb:us-east-1:123456789012:table/lambdaws-prod-data/stream/2026-11-01T09:14:27.113"

// meta is what a fixture record has that ChangeRecord does not choose: its identity and time, and
// for TTL removals the service's identity.
type meta struct {
	eventID, seq string
	at           int64
	byService    bool
}

func msgItem(t testing.TB, m storetest.Message, extra ...any) store.Item {
	t.Helper()
	it, err := storetest.MessageType.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		it[extra[i].(string)] = extra[i+1].(types.AttributeValue)
	}
	return it
}

// fixtureRecord is a record shaped as DynamoDB Streams delivers it to Lambda: what ChangeRecord
// makes of the write, with the fixture's identity, time and source.
func fixtureRecord(t testing.TB, kind stream.ChangeKind, old, new store.Item, m meta) events.DynamoDBEventRecord {
	t.Helper()
	rec, err := stream.ChangeRecord(kind, old, new, 1, goldenARN, time.Unix(m.at, 0))
	if err != nil {
		t.Fatal(err)
	}
	rec.EventID, rec.Change.SequenceNumber = m.eventID, m.seq
	if m.byService {
		rec.UserIdentity = &events.DynamoDBUserIdentity{Type: "Service", PrincipalID: "dynamodb.amazonaws.com"}
	}
	return rec
}

// A malformedCase is one record of malformed.json: a valid record spoiled one way, and what the
// decoder must say of it.
type malformedCase struct {
	name  string
	spoil func(t testing.TB) events.DynamoDBEventRecord
	want  string
}

func malformedCases() []malformedCase {
	n := 0
	rec := func(t testing.TB, kind stream.ChangeKind, old, new store.Item) events.DynamoDBEventRecord {
		n++
		return fixtureRecord(t, kind, old, new, meta{eventID: fmt.Sprintf("%032x", 0xbad0000+n-1),
			seq: fmt.Sprintf("442159000000000001745047%04d", n-1), at: 1795694400})
	}
	orig := func(t testing.TB, extra ...any) store.Item { return msgItem(t, goldenOriginal, extra...) }
	edited := func(t testing.TB) store.Item { return msgItem(t, goldenEditedM) }
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	return []malformedCase{
		{"INSERT without NewImage", func(t testing.TB) events.DynamoDBEventRecord {
			r := rec(t, stream.Insert, nil, orig(t))
			r.Change.NewImage, r.Change.StreamViewType = nil, "KEYS_ONLY"
			return r
		}, "new image: missing"},
		{"MODIFY without OldImage", func(t testing.TB) events.DynamoDBEventRecord {
			r := rec(t, stream.Modify, orig(t), edited(t))
			r.Change.OldImage, r.Change.StreamViewType = nil, "NEW_IMAGE"
			return r
		}, "old image: missing"},
		{"MODIFY without NewImage", func(t testing.TB) events.DynamoDBEventRecord {
			r := rec(t, stream.Modify, orig(t), edited(t))
			r.Change.NewImage, r.Change.StreamViewType = nil, "OLD_IMAGE"
			return r
		}, "new image: missing"},
		{"REMOVE without OldImage", func(t testing.TB) events.DynamoDBEventRecord {
			r := rec(t, stream.Remove, edited(t), nil)
			r.Change.OldImage, r.Change.StreamViewType = nil, "KEYS_ONLY"
			return r
		}, "old image: missing"},
		{"unknown eventName", func(t testing.TB) events.DynamoDBEventRecord {
			r := rec(t, stream.Insert, nil, orig(t))
			r.EventName = "UPSERT"
			return r
		}, `eventName "UPSERT"`},
		{"old and new image of different types", func(t testing.TB) events.DynamoDBEventRecord {
			return rec(t, stream.Modify, orig(t, "__typename", s("Profile")), edited(t))
		}, "the old image is a Profile, the new image a Message"},
		{"__typename is a number", func(t testing.TB) events.DynamoDBEventRecord {
			return rec(t, stream.Insert, nil, orig(t, "__typename", &types.AttributeValueMemberN{Value: "1"}))
		}, "__typename is not a non-empty string"},
		{"__typename is empty", func(t testing.TB) events.DynamoDBEventRecord {
			return rec(t, stream.Remove, orig(t, "__typename", s("")), nil)
		}, "old image: __typename is not a non-empty string"},
		{"a number that is not one", func(t testing.TB) events.DynamoDBEventRecord {
			return rec(t, stream.Insert, nil, orig(t, "score", &types.AttributeValueMemberN{Value: "12a"}))
		}, `new image: item payload: attribute "score"`},
	}
}

// fixtures returns every fixture file's records, as the generator makes them.
func fixtures(t testing.TB) map[string][]events.DynamoDBEventRecord {
	expiringItem := msgItem(t, goldenExpiring, "ttl", &types.AttributeValueMemberN{Value: "1795780804"})
	profile := store.Item{"pk": &types.AttributeValueMemberS{Value: "user#x"}, "sk": &types.AttributeValueMemberS{Value: "profile#x"},
		"displayName": &types.AttributeValueMemberS{Value: "X"}, "rooms": &types.AttributeValueMemberSS{Value: []string{"r1", "r2"}}}
	typedProfile := maps.Clone(profile)
	typedProfile["__typename"] = &types.AttributeValueMemberS{Value: "Profile"}
	out := map[string][]events.DynamoDBEventRecord{
		"insert.json": {fixtureRecord(t, stream.Insert, nil, msgItem(t, goldenOriginal),
			meta{"7de3041dd709b024af6f29e4fa13d34c", "4421584500000000017450439091", 1795694400, false})},
		"modify.json": {fixtureRecord(t, stream.Modify, msgItem(t, goldenOriginal), msgItem(t, goldenEditedM),
			meta{"a5c2b1e0f3d44c1f9a7e0d2b6c8f1e3a", "4421584600000000017450439155", 1795694700, false})},
		"remove.json": {fixtureRecord(t, stream.Remove, msgItem(t, goldenEditedM), nil,
			meta{"3f9d6e2a8b1c4d7e9f0a1b2c3d4e5f60", "4421584700000000017450439227", 1795695000, false})},
		"ttl_remove.json": {fixtureRecord(t, stream.Remove, expiringItem, nil,
			meta{"e1b7c0d94f2a4b6c8d3e5f7a9b1c2d3e", "4421589900000000017450468312", 1795867260, true})},
		"other_item.json": {
			fixtureRecord(t, stream.Insert, nil, profile, meta{"0b6e3c1d2a9f4e8b7c6d5e4f3a2b1c0d", "4421584550000000017450439120", 1795694460, false}),
			fixtureRecord(t, stream.Modify, typedProfile, typedProfile, meta{"1c7f4d2e3b0a5f9c8d7e6f5a4b3c2d1e", "4421584560000000017450439121", 1795694470, false}),
		},
	}
	for _, c := range malformedCases() {
		out["malformed.json"] = append(out["malformed.json"], c.spoil(t))
	}
	return out
}

// TestStreamFixtures checks that the fixture files are what the generator makes of the golden
// messages (they change only deliberately: go test ./store/stream -run TestStreamFixtures -update).
func TestStreamFixtures(t *testing.T) {
	for name, recs := range fixtures(t) {
		// In the order of AWS's own JSON, which aws-lambda-go's types do not keep.
		type awsRecord struct {
			EventID        string                       `json:"eventID"`
			EventName      string                       `json:"eventName"`
			EventVersion   string                       `json:"eventVersion"`
			EventSource    string                       `json:"eventSource"`
			AWSRegion      string                       `json:"awsRegion"`
			UserIdentity   *events.DynamoDBUserIdentity `json:"userIdentity,omitempty"`
			Change         events.DynamoDBStreamRecord  `json:"dynamodb"`
			EventSourceArn string                       `json:"eventSourceARN"`
		}
		var ordered struct {
			Records []awsRecord `json:"Records"`
		}
		for _, r := range recs {
			ordered.Records = append(ordered.Records, awsRecord{r.EventID, r.EventName, r.EventVersion, r.EventSource,
				r.AWSRegion, r.UserIdentity, r.Change, r.EventSourceArn})
		}
		want, err := json.MarshalIndent(ordered, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		file := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(file, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the generator makes (%v); run go test ./store/stream -run TestStreamFixtures -update", name, err)
		}
	}
}

// readEvent decodes a stream event as Lambda hands it to a handler.
func readEvent(t testing.TB, name string) events.DynamoDBEvent {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
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

// TestDecodeGolden decodes records shaped exactly as DynamoDB streams deliver them to Lambda, as
// item changes: kind, type, identity and payloads, byte for byte.
func TestDecodeGolden(t *testing.T) {
	const (
		origJSON    = `{"author":"ann","createdAt":"2026-11-26T12:00:00.123Z","id":"01M8BVM4KV704CW2E46FW3XR1V","roomId":"r1","text":"hello, room"}`
		editedJSON  = `{"author":"ann","createdAt":"2026-11-26T12:00:00.123Z","editedAt":"2026-11-26T12:05:00.5Z","id":"01M8BVM4KV704CW2E46FW3XR1V","roomId":"r1","text":"hello, everyone"}`
		expiresJSON = `{"author":"bob","createdAt":"2026-11-26T12:00:03.123Z","id":"01M8BVM7HKVFWQTE1JPKJ8T31J","roomId":"r1","text":"this one expires"}`
	)
	for _, tc := range []struct {
		file               string
		kind               stream.ChangeKind
		oldJSON, newJSON   string
		byService          bool
		eventID, seqNumber string
	}{
		{"insert.json", stream.Insert, "", origJSON, false, "7de3041dd709b024af6f29e4fa13d34c", "4421584500000000017450439091"},
		{"modify.json", stream.Modify, origJSON, editedJSON, false, "a5c2b1e0f3d44c1f9a7e0d2b6c8f1e3a", "4421584600000000017450439155"},
		{"remove.json", stream.Remove, editedJSON, "", false, "3f9d6e2a8b1c4d7e9f0a1b2c3d4e5f60", "4421584700000000017450439227"},
		{"ttl_remove.json", stream.Remove, expiresJSON, "", true, "e1b7c0d94f2a4b6c8d3e5f7a9b1c2d3e", "4421589900000000017450468312"},
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
			ic, ok, err := stream.DecodeItemChange(rec)
			if err != nil || !ok {
				t.Fatalf("DecodeItemChange = %v, %v", ok, err)
			}
			if ic.Kind != tc.kind || ic.Type != "Message" || ic.ByService != tc.byService || ic.EventID != tc.eventID || ic.Seq != tc.seqNumber {
				t.Fatalf("item change %+v", ic)
			}
			if string(ic.Old) != tc.oldJSON || string(ic.New) != tc.newJSON || (tc.oldJSON == "") != (ic.Old == nil) || (tc.newJSON == "") != (ic.New == nil) {
				t.Fatalf("payloads old %s new %s\nwant old %s new %s", ic.Old, ic.New, tc.oldJSON, tc.newJSON)
			}
		})
	}
}

// TestGoldenMatchesChangeRecord checks that ChangeRecord (what the embedded backend streams)
// builds records of the same shape as the golden ones: the same fields, and the same keys and
// images, attribute for attribute.
func TestGoldenMatchesChangeRecord(t *testing.T) {
	for _, tc := range []struct {
		file     string
		kind     stream.ChangeKind
		old, new *storetest.Message
	}{
		{"insert.json", stream.Insert, nil, &goldenOriginal},
		{"modify.json", stream.Modify, &goldenOriginal, &goldenEditedM},
		{"remove.json", stream.Remove, &goldenEditedM, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			golden := readEvent(t, tc.file).Records[0]
			item := func(m *storetest.Message) store.Item {
				if m == nil {
					return nil
				}
				return msgItem(t, *m)
			}
			built, err := stream.ChangeRecord(tc.kind, item(tc.old), item(tc.new), 7, golden.EventSourceArn, golden.Change.ApproximateCreationDateTime.Time)
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
			for _, f := range []string{"Keys", "NewImage", "OldImage", "StreamViewType", "ApproximateCreationDateTime", "SizeBytes"} {
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

// TestDecodeOtherItems checks that a record of an item without __typename is skipped, cheaply:
// whatever its images hold beyond that; and that an item of any other type decodes generically.
func TestDecodeOtherItems(t *testing.T) {
	ev := readEvent(t, "other_item.json")
	untyped, typed := ev.Records[0], ev.Records[1]
	if ch, ok, err := stream.DecodeItemChange(untyped); ok || err != nil || ch.Type != "" {
		t.Fatalf("DecodeItemChange(untyped item) = %+v, %v, %v; want skipped", ch, ok, err)
	}
	// Skipping looks at __typename only: attributes that would not decode do not matter.
	untyped.Change.NewImage["bad"] = events.DynamoDBAttributeValue{}
	if _, ok, err := stream.DecodeItemChange(untyped); ok || err != nil {
		t.Fatalf("DecodeItemChange(untyped item with a bad attribute) = %v, %v; want skipped", ok, err)
	}
	ch, ok, err := stream.DecodeItemChange(typed)
	if err != nil || !ok || ch.Type != "Profile" || ch.Kind != stream.Modify ||
		string(ch.New) != `{"displayName":"X","rooms":["r1","r2"]}` || string(ch.Old) != string(ch.New) {
		t.Fatalf("DecodeItemChange(Profile) = %+v (old %s new %s), %v, %v", ch, ch.Old, ch.New, ok, err)
	}
}

// TestDecodeMalformed checks that malformed records are reported as ErrBadRecord, naming the
// record and what is wrong, and never decoded halfway.
func TestDecodeMalformed(t *testing.T) {
	ev := readEvent(t, "malformed.json")
	cases := malformedCases()
	if len(ev.Records) != len(cases) {
		t.Fatalf("malformed.json has %d records, the test knows %d", len(ev.Records), len(cases))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := ev.Records[i]
			ic, ok, err := stream.DecodeItemChange(rec)
			switch {
			case !errors.Is(err, stream.ErrBadRecord) || ok || ic.Old != nil || ic.New != nil:
				t.Fatalf("DecodeItemChange = %+v, %v, %v; want ErrBadRecord", ic, ok, err)
			case !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), rec.EventID):
				t.Fatalf("DecodeItemChange error %q does not say %q and name event %s", err, tc.want, rec.EventID)
			}
		})
	}
}

// TestDecodeWrongTypes replaces each attribute of each golden image with a value of every other
// type, and a value whose accessors panic (the zero DynamoDBAttributeValue claims to be binary but
// holds nothing): the decoder may not panic, and its errors wrap ErrBadRecord. It decodes every
// attribute type except that inconsistent value and a __typename that is not a string. (Whether
// the payload fits the app's model is the engine's question, when it yields the value.)
func TestDecodeWrongTypes(t *testing.T) {
	values := map[string]events.DynamoDBAttributeValue{
		"S":    events.NewStringAttribute("x"),
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
					ic, iok, ierr := decodeNoPanic(t, name, rec)
					otherType := attr == "__typename" && typ == "S"
					typeClash := otherType && golden.EventName == "MODIFY" // one image a Message, the other an x
					wantGenericErr := typ == "zero" || attr == "__typename" && typ != "S" || typeClash
					switch {
					case ierr != nil && !errors.Is(ierr, stream.ErrBadRecord):
						t.Errorf("%s: DecodeItemChange error %v does not wrap ErrBadRecord", name, ierr)
					case wantGenericErr && ierr == nil:
						t.Errorf("%s: DecodeItemChange = %+v; want ErrBadRecord", name, ic)
					case !wantGenericErr && (ierr != nil || !iok):
						t.Errorf("%s: DecodeItemChange = %v, %v; want decoded", name, iok, ierr)
					}
					if otherType && !typeClash && iok && ic.Type != "x" {
						t.Errorf("%s: decoded as a %s, want an x", name, ic.Type)
					}
				}
			}
		}
	}
}

func decodeNoPanic(t *testing.T, name string, rec events.DynamoDBEventRecord) (ch stream.ItemChange, ok bool, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: DecodeItemChange panicked: %v", name, r)
		}
	}()
	return stream.DecodeItemChange(rec)
}

// TestChangeRecordRoundTrip checks that what ChangeRecord builds survives JSON (as the local
// runtime hands records to the handler) and decodes to the same change: the items' payloads.
func TestChangeRecordRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 987_654_321, time.FixedZone("CET", 3600))
	edited := at.Add(time.Minute)
	orig := storetest.Message{ID: store.NewID(at), RoomID: "room with spaces#and#hashes", Author: "ünïcødé", Text: "", CreatedAt: at}
	ed := orig
	ed.Text, ed.EditedAt = "now with text\nand a newline", &edited
	item := func(m *storetest.Message) store.Item {
		if m == nil {
			return nil
		}
		return msgItem(t, *m)
	}
	payload := func(m *storetest.Message) string {
		if m == nil {
			return ""
		}
		p, err := store.ItemPayload(item(m))
		if err != nil {
			t.Fatal(err)
		}
		return string(p)
	}
	for _, tc := range []struct {
		kind     stream.ChangeKind
		old, new *storetest.Message
	}{
		{stream.Insert, nil, &orig},
		{stream.Modify, &orig, &ed},
		{stream.Remove, &ed, nil},
	} {
		rec, err := stream.ChangeRecord(tc.kind, item(tc.old), item(tc.new), 42, "arn:aws:dynamodb:eu-west-1:123456789012:table/data/stream/x", at)
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
		ch, ok, err := stream.DecodeItemChange(ev.Records[0])
		if err != nil || !ok {
			t.Fatalf("%s: DecodeItemChange = %v, %v", tc.kind, ok, err)
		}
		if ch.Kind != tc.kind || ch.Type != "Message" || ch.ByService || string(ch.Old) != payload(tc.old) || string(ch.New) != payload(tc.new) {
			t.Fatalf("%s: round trip gave %s %s old %s new %s", tc.kind, ch.Kind, ch.Type, ch.Old, ch.New)
		}
		var back storetest.Message
		if err := json.Unmarshal(cmpOr(ch.New, ch.Old), &back); err != nil || back.RoomID != orig.RoomID || back.Author != orig.Author {
			t.Fatalf("%s: payload %s decodes to %+v, %v", tc.kind, cmpOr(ch.New, ch.Old), back, err)
		}
		if !ev.Records[0].Change.ApproximateCreationDateTime.Time.Equal(at.Truncate(time.Second)) {
			t.Fatalf("%s: ApproximateCreationDateTime %v", tc.kind, ev.Records[0].Change.ApproximateCreationDateTime)
		}
	}
	// The kind decides which images there are.
	for _, bad := range []struct {
		kind     stream.ChangeKind
		old, new store.Item
	}{{stream.Insert, item(&orig), item(&orig)}, {stream.Modify, nil, item(&orig)}, {stream.Remove, nil, nil}, {"UPSERT", nil, item(&orig)}} {
		if _, err := stream.ChangeRecord(bad.kind, bad.old, bad.new, 1, "arn", at); err == nil {
			t.Errorf("ChangeRecord(%s, old %v, new %v) succeeded", bad.kind, bad.old != nil, bad.new != nil)
		}
	}
	if _, err := stream.ChangeRecord(stream.Insert, nil, store.Item{"x": &types.AttributeValueMemberS{Value: "no key"}}, 1, "arn", at); err == nil {
		t.Error("ChangeRecord of an item without a key succeeded")
	}
}

// FuzzDecodeChange feeds arbitrary records: the decoder never panics, its errors wrap
// ErrBadRecord, and what it decodes is JSON.
func FuzzDecodeChange(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
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
		ic, iok, ierr := stream.DecodeItemChange(rec)
		if ierr != nil && !errors.Is(ierr, stream.ErrBadRecord) {
			t.Fatalf("DecodeItemChange error %v does not wrap ErrBadRecord", ierr)
		}
		if iok {
			for _, p := range []json.RawMessage{ic.Old, ic.New} {
				if p != nil && !json.Valid(p) {
					t.Fatalf("payload %q is not JSON", p)
				}
			}
		}
	})
}

func cmpOr(a, b json.RawMessage) json.RawMessage {
	if a != nil {
		return a
	}
	return b
}
