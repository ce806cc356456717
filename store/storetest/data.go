package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
)

// Attribute value constructors, to keep items readable.
func avS(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func avN(s string) types.AttributeValue { return &types.AttributeValueMemberN{Value: s} }
func avB(b bool) types.AttributeValue   { return &types.AttributeValueMemberBOOL{Value: b} }
func avL(l ...types.AttributeValue) types.AttributeValue {
	return &types.AttributeValueMemberL{Value: append([]types.AttributeValue{}, l...)}
}
func avM(m map[string]types.AttributeValue) types.AttributeValue {
	return &types.AttributeValueMemberM{Value: m}
}

var avNull types.AttributeValue = &types.AttributeValueMemberNULL{Value: true}

// item is an item of type Thing with the given key and attributes.
func item(pk, sk string, attrs ...any) store.Item {
	it := store.Item{store.AttrPK: avS(pk), store.AttrSK: avS(sk), store.AttrTypename: avS("Thing")}
	for i := 0; i+1 < len(attrs); i += 2 {
		it[attrs[i].(string)] = attrs[i+1].(types.AttributeValue)
	}
	return it
}

// canonical is an item's DynamoDB JSON with sets sorted (DynamoDB keeps no set order), for
// comparing items.
func canonical(t *testing.T, it store.Item) string {
	t.Helper()
	if it == nil {
		return "null"
	}
	img := stream.ToStreamImage(sortSets(it))
	raw, err := json.Marshal(img)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func sortSets(it store.Item) store.Item {
	out := make(store.Item, len(it))
	for k, v := range it {
		out[k] = sortSet(v)
	}
	return out
}

func sortSet(v types.AttributeValue) types.AttributeValue {
	switch v := v.(type) {
	case *types.AttributeValueMemberSS:
		return &types.AttributeValueMemberSS{Value: slices.Sorted(slices.Values(v.Value))}
	case *types.AttributeValueMemberNS:
		return &types.AttributeValueMemberNS{Value: slices.Sorted(slices.Values(v.Value))}
	case *types.AttributeValueMemberBS:
		bs := slices.Clone(v.Value)
		slices.SortFunc(bs, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
		return &types.AttributeValueMemberBS{Value: bs}
	case *types.AttributeValueMemberL:
		l := make([]types.AttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = sortSet(e)
		}
		return &types.AttributeValueMemberL{Value: l}
	case *types.AttributeValueMemberM:
		return &types.AttributeValueMemberM{Value: sortSets(v.Value)}
	}
	return v
}

func sameItems(t *testing.T, got, want store.Item) bool {
	t.Helper()
	return canonical(t, got) == canonical(t, want)
}

// A change is one stream record a test expects: the kind and the item before and after.
type change struct {
	kind     stream.ChangeKind
	old, new store.Item
}

// expectChanges takes the backend's records since the last call and checks that they are
// exactly want, in order, each shaped as DynamoDB streams it to Lambda: eventName, source and
// version, the NEW_AND_OLD_IMAGES view, Keys holding pk and sk, the images attribute for
// attribute, increasing sequence numbers, and decodable by DecodeItemChange into the item's
// type and payloads.
func expectChanges(t *testing.T, b Backend, want ...change) {
	t.Helper()
	got := b.Changes(t)
	if len(got) != len(want) {
		var names []string
		for _, r := range got {
			names = append(names, r.EventName)
		}
		t.Fatalf("%d stream records %v, want %d", len(got), names, len(want))
	}
	var lastSeq *big.Int
	for i, rec := range got {
		w := want[i]
		// As Lambda delivers it: through JSON.
		raw, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		rec = events.DynamoDBEventRecord{}
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		where := fmt.Sprintf("record %d (%s)", i, w.kind)
		if rec.EventName != string(w.kind) || rec.EventSource != "aws:dynamodb" || rec.EventVersion != "1.1" ||
			rec.Change.StreamViewType != "NEW_AND_OLD_IMAGES" || rec.EventID == "" || rec.EventSourceArn == "" {
			t.Fatalf("%s: %s", where, raw)
		}
		seq, ok := new(big.Int).SetString(rec.Change.SequenceNumber, 10)
		if !ok || lastSeq != nil && seq.Cmp(lastSeq) <= 0 {
			t.Fatalf("%s: sequence number %q after %v", where, rec.Change.SequenceNumber, lastSeq)
		}
		lastSeq = seq
		keyItem := w.new
		if keyItem == nil {
			keyItem = w.old
		}
		keys, err := stream.FromStreamImage(rec.Change.Keys)
		if err != nil || !sameItems(t, keys, store.Item{store.AttrPK: keyItem[store.AttrPK], store.AttrSK: keyItem[store.AttrSK]}) {
			t.Fatalf("%s: Keys %s, want pk and sk of %s (%v)", where, canonical(t, keys), canonical(t, keyItem), err)
		}
		for _, img := range []struct {
			name string
			got  map[string]events.DynamoDBAttributeValue
			want store.Item
		}{{"OldImage", rec.Change.OldImage, w.old}, {"NewImage", rec.Change.NewImage, w.new}} {
			if img.want == nil {
				if len(img.got) != 0 {
					t.Fatalf("%s: unexpected %s", where, img.name)
				}
				continue
			}
			it, err := stream.FromStreamImage(img.got)
			if err != nil || !sameItems(t, it, img.want) {
				t.Fatalf("%s: %s %s\nwant %s (%v)", where, img.name, canonical(t, it), canonical(t, img.want), err)
			}
		}
		ch, ok, err := stream.DecodeItemChange(rec)
		if err != nil || !ok {
			t.Fatalf("%s: DecodeItemChange = %v, %v", where, ok, err)
		}
		typ := keyItem[store.AttrTypename].(*types.AttributeValueMemberS).Value
		if ch.Kind != w.kind || ch.Type != typ || ch.ByService || ch.EventID != rec.EventID || ch.Seq != rec.Change.SequenceNumber {
			t.Fatalf("%s: decoded as %+v", where, ch)
		}
		for _, p := range []struct {
			got json.RawMessage
			img map[string]events.DynamoDBAttributeValue
		}{{ch.Old, rec.Change.OldImage}, {ch.New, rec.Change.NewImage}} {
			if len(p.img) == 0 {
				if p.got != nil {
					t.Fatalf("%s: payload %s for a missing image", where, p.got)
				}
				continue
			}
			it, err := stream.FromStreamImage(p.img)
			if err != nil {
				t.Fatal(err)
			}
			want, err := store.ItemPayload(it)
			if err != nil {
				t.Fatal(err)
			}
			if string(p.got) != string(want) {
				t.Fatalf("%s: payload %s, want %s", where, p.got, want)
			}
		}
	}
}

// richItem holds every kind of attribute value, numbers in non-canonical forms, an empty string
// and unicode; stored is how DynamoDB stores it (numbers canonical).
func richItem() (written, stored store.Item) {
	attrs := func(exp, neg, nsTwo, nested, tiny string) store.Item {
		return item("thing#1", "v#1",
			"str", avS("héllo ✓ 🎉 \"quoted\" \\ \n\t\u2028"), "empty", avS(""),
			"int", avN("42"), "neg", avN(neg), "exp", avN(exp), "big", avN("-12345678901234567890123456789012345678"),
			"tiny", avN(tiny), "t", avB(true), "f", avB(false), "nil", avNull,
			"list", avL(avS("a"), avN("1"), avL(), avM(map[string]types.AttributeValue{})),
			"map", avM(map[string]types.AttributeValue{
				"nested": avM(map[string]types.AttributeValue{"deep": avL(avS("x"), avNull)}),
				"n":      avN(nested),
			}),
			"ss", &types.AttributeValueMemberSS{Value: []string{"b", "a"}},
			"ns", &types.AttributeValueMemberNS{Value: []string{"1", nsTwo}},
			"b", &types.AttributeValueMemberB{Value: []byte{0, 1, 2, 255}},
			"bs", &types.AttributeValueMemberBS{Value: [][]byte{{1}, {2, 3}}},
		)
	}
	return attrs("1.50e2", "-0.50", "2.50", "0.0010", "1E-130"),
		attrs("150", "-0.5", "2.5", "0.001", "0."+strings.Repeat("0", 129)+"1")
}

func testItemCreateGet(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	written, stored := richItem()
	if err := s.CreateItem(ctx, written); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetItem(ctx, "thing#1", "v#1")
	if err != nil {
		t.Fatal(err)
	}
	if !sameItems(t, got, stored) {
		t.Fatalf("GetItem = %s\nwant %s", canonical(t, got), canonical(t, stored))
	}
	expectChanges(t, s, change{stream.Insert, nil, stored})
	if err := s.CreateItem(ctx, item("thing#1", "v#1", "other", avS("x"))); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateItem over an existing item = %v, want ErrConflict", err)
	}
	if got, _ := s.GetItem(ctx, "thing#1", "v#1"); !sameItems(t, got, stored) {
		t.Fatalf("a refused create changed the item: %s", canonical(t, got))
	}
	for _, key := range [][2]string{{"thing#1", "v#2"}, {"thing#2", "v#1"}, {"thing#", "1v#1"}} {
		if _, err := s.GetItem(ctx, key[0], key[1]); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetItem(%v) = %v, want ErrNotFound", key, err)
		}
	}
	expectChanges(t, s)
}

func testItemInvalid(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	long := func(n int) string { return strings.Repeat("k", n) }
	for name, it := range map[string]store.Item{
		"no pk":              {store.AttrSK: avS("s")},
		"numeric pk":         {store.AttrPK: avN("1"), store.AttrSK: avS("s")},
		"empty sk":           item("p", ""),
		"pk over 2048 bytes": item(long(store.MaxPKBytes+1), "s"),
		"sk over 1024 bytes": item("p", long(store.MaxSKBytes+1)),
		"number overflow":    item("p", "s", "n", avN("1e126")),
		"number underflow":   item("p", "s", "n", avN("1e-131")),
		"39 digits":          item("p", "s", "n", avN("123456789012345678901234567890123456789")),
		"not a number":       item("p", "s", "n", avN("12a")),
		"nested bad number":  item("p", "s", "m", avM(map[string]types.AttributeValue{"l": avL(avN("1e999"))})),
		"empty set":          item("p", "s", "ss", &types.AttributeValueMemberSS{}),
		"duplicate in set":   item("p", "s", "ss", &types.AttributeValueMemberSS{Value: []string{"a", "a"}}),
		"invalid UTF-8":      item("p", "s", "x", avS("\xff")),
		"empty typename":     {store.AttrPK: avS("p"), store.AttrSK: avS("s"), store.AttrTypename: avS("")},
	} {
		if err := s.CreateItem(ctx, it); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreateItem(%s) = %v, want ErrInvalid", name, err)
		}
		if _, err := s.ReplaceItem(ctx, it); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ReplaceItem(%s) = %v, want ErrInvalid", name, err)
		}
	}
	for name, key := range map[string][2]string{"empty pk": {"", "s"}, "empty sk": {"p", ""}, "long pk": {long(store.MaxPKBytes + 1), "s"}} {
		if _, err := s.GetItem(ctx, key[0], key[1]); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("GetItem(%s) = %v, want ErrInvalid", name, err)
		}
		if _, err := s.DeleteItem(ctx, key[0], key[1]); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("DeleteItem(%s) = %v, want ErrInvalid", name, err)
		}
	}
	for _, limit := range []int{-1, store.MaxQueryItems + 1} {
		if _, err := s.QueryItems(ctx, "p", "", limit, false); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("QueryItems(limit %d) = %v, want ErrInvalid", limit, err)
		}
	}
	if _, err := s.QueryItems(ctx, "", "", 1, false); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("QueryItems(empty pk) = %v, want ErrInvalid", err)
	}
	// Keys at their bounds are fine.
	edge := item(long(store.MaxPKBytes), long(store.MaxSKBytes))
	if err := s.CreateItem(ctx, edge); err != nil {
		t.Fatalf("CreateItem with keys at their bounds: %v", err)
	}
	expectChanges(t, s, change{stream.Insert, nil, edge})
}

// testItemSizeBound writes an item of exactly MaxItemBytes, then one byte more.
func testItemSizeBound(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	base := item("p", "big")
	fill := store.MaxItemBytes - store.ItemSize(base) - len("v")
	max := item("p", "big", "v", avS(strings.Repeat("x", fill)))
	if n := store.ItemSize(max); n != store.MaxItemBytes {
		t.Fatalf("ItemSize = %d, want %d", n, store.MaxItemBytes)
	}
	if err := s.CreateItem(ctx, max); err != nil {
		t.Fatalf("an item of exactly %d bytes: %v", store.MaxItemBytes, err)
	}
	over := item("p", "big2", "v", avS(strings.Repeat("x", fill+1)))
	if err := s.CreateItem(ctx, over); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("an item of %d bytes = %v, want ErrInvalid", store.ItemSize(over), err)
	}
	overReplace := item("p", "big", "v", avS(strings.Repeat("x", fill+1)))
	if _, err := s.ReplaceItem(ctx, overReplace); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("replacing with an item of %d bytes = %v, want ErrInvalid", store.ItemSize(overReplace), err)
	}
	expectChanges(t, s, change{stream.Insert, nil, max})
}

func testItemReplace(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	v1 := item("p", "s", "text", avS("one"), "gone", avN("1"))
	v2 := item("p", "s", "text", avS("two"), "new", avL(avS("x")))
	if _, err := s.ReplaceItem(ctx, v1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ReplaceItem(absent) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetItem(ctx, "p", "s"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused replace created the item: %v", err)
	}
	if err := s.CreateItem(ctx, v1); err != nil {
		t.Fatal(err)
	}
	old, err := s.ReplaceItem(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	if !sameItems(t, old, v1) {
		t.Fatalf("ReplaceItem returned %s, want the old item %s", canonical(t, old), canonical(t, v1))
	}
	if got, _ := s.GetItem(ctx, "p", "s"); !sameItems(t, got, v2) {
		t.Fatalf("after replace: %s, want %s (attributes not in the new item are gone)", canonical(t, got), canonical(t, v2))
	}
	expectChanges(t, s, change{stream.Insert, nil, v1}, change{stream.Modify, v1, v2})
}

func testItemDelete(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	v := item("p", "s", "text", avS("bye"))
	if _, err := s.DeleteItem(ctx, "p", "s"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteItem(absent) = %v, want ErrNotFound", err)
	}
	if err := s.CreateItem(ctx, v); err != nil {
		t.Fatal(err)
	}
	old, err := s.DeleteItem(ctx, "p", "s")
	if err != nil || !sameItems(t, old, v) {
		t.Fatalf("DeleteItem = %s, %v; want the item", canonical(t, old), err)
	}
	if _, err := s.GetItem(ctx, "p", "s"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetItem after delete = %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteItem(ctx, "p", "s"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteItem twice = %v, want ErrNotFound", err)
	}
	// Deleted, the key is free again.
	if err := s.CreateItem(ctx, v); err != nil {
		t.Fatalf("CreateItem after delete: %v", err)
	}
	expectChanges(t, s, change{stream.Insert, nil, v}, change{stream.Remove, v, nil}, change{stream.Insert, nil, v})
}

// testItemQuery fills a partition with items of two prefixes, and neighbouring partitions, and
// queries it in both orders with limits below, at and above its size.
func testItemQuery(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	const n = 25
	var as []string
	for i := range n {
		sk := fmt.Sprintf("a#%03d", i)
		as = append(as, sk)
		if err := s.CreateItem(ctx, item("p1", sk, "i", avN(fmt.Sprint(i)))); err != nil {
			t.Fatal(err)
		}
	}
	// Byte order, not number order; a prefix that is not a type's; neighbouring partitions.
	for _, k := range [][2]string{{"p1", "b#1"}, {"p1", "a"}, {"p1", "ab#1"}, {"p1", "a#\u00e9"}, {"p10", "a#000"}, {"p", "a#000"}} {
		if err := s.CreateItem(ctx, item(k[0], k[1])); err != nil {
			t.Fatal(err)
		}
	}
	sks := func(items []store.Item) []string {
		var out []string
		for _, it := range items {
			out = append(out, it[store.AttrSK].(*types.AttributeValueMemberS).Value)
		}
		return out
	}
	withAccent := append(slices.Clone(as), "a#\u00e9") // 'é' (0xc3 0xa9) sorts after digits
	reversedAll := slices.Clone(withAccent)
	slices.Reverse(reversedAll)
	for _, tc := range []struct {
		prefix string
		limit  int
		desc   bool
		want   []string
	}{
		{"a#", 10, false, as[:10]},
		{"a#", 10, true, reversedAll[:10]},
		{"a#", n + 1, false, withAccent},
		{"a#", store.MaxQueryItems, true, reversedAll},
		{"a#", 1, true, []string{"a#\u00e9"}},
		{"a#01", 100, false, as[10:20]},
		{"b#", 5, false, []string{"b#1"}},
		{"", 3, false, []string{"a", "a#000", "a#001"}},
		{"", 2, true, []string{"b#1", "ab#1"}},
		{"c#", 5, false, nil},
		{"a#", 0, false, nil},
	} {
		got, err := s.QueryItems(ctx, "p1", tc.prefix, tc.limit, tc.desc)
		if err != nil {
			t.Fatalf("QueryItems(%q, %d, %v): %v", tc.prefix, tc.limit, tc.desc, err)
		}
		if !slices.Equal(sks(got), tc.want) {
			t.Fatalf("QueryItems(%q, %d, desc %v) = %v, want %v", tc.prefix, tc.limit, tc.desc, sks(got), tc.want)
		}
	}
	first, err := s.QueryItems(ctx, "p1", "a#", 1, false)
	if err != nil || len(first) != 1 || !sameItems(t, first[0], item("p1", "a#000", "i", avN("0"))) {
		t.Fatalf("queried item = %v, %v; want the whole item", first, err)
	}
	if got, err := s.QueryItems(ctx, "nobody", "", 10, false); err != nil || len(got) != 0 {
		t.Fatalf("empty partition = %d, %v", len(got), err)
	}
}

// testItemTTL checks that an item whose ttl has passed reads as absent everywhere, and that a
// create over it is reported as DynamoDB reports it: a MODIFY of the expired item.
func testItemTTL(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	ttl := fmt.Sprint(clk.Now().Add(time.Minute).Unix())
	short := item("p", "s1", "ttl", avN(ttl))
	keep := item("p", "s2", "ttl", avS("not a number: never expires"))
	if err := s.CreateItem(ctx, short); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateItem(ctx, keep); err != nil {
		t.Fatal(err)
	}
	clk.Advance(59 * time.Second)
	if _, err := s.GetItem(ctx, "p", "s1"); err != nil {
		t.Fatalf("GetItem a second before its ttl: %v", err)
	}
	clk.Advance(time.Second)
	if _, err := s.GetItem(ctx, "p", "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetItem at its ttl = %v, want ErrNotFound", err)
	}
	if got, err := s.QueryItems(ctx, "p", "", 10, false); err != nil || len(got) != 1 || !sameItems(t, got[0], keep) {
		t.Fatalf("QueryItems after expiry = %v, %v; want only the item without a numeric ttl", got, err)
	}
	if _, err := s.ReplaceItem(ctx, item("p", "s1")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ReplaceItem of an expired item = %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteItem(ctx, "p", "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteItem of an expired item = %v, want ErrNotFound", err)
	}
	fresh := item("p", "s1", "v", avS("new"))
	if err := s.CreateItem(ctx, fresh); err != nil {
		t.Fatalf("CreateItem over an expired item: %v", err)
	}
	if got, err := s.GetItem(ctx, "p", "s1"); err != nil || !sameItems(t, got, fresh) {
		t.Fatalf("after create over the expired item: %v, %v", got, err)
	}
	expectChanges(t, s, change{stream.Insert, nil, short}, change{stream.Insert, nil, keep}, change{stream.Modify, short, fresh})
}

// testItemCreateOnce races creates of one key: exactly one wins, and one record is written.
func testItemCreateOnce(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	wins, _ := race(t, 8, store.ErrConflict, func(i int) error { return s.CreateItem(ctx, item("p", "s", "i", avN(fmt.Sprint(i)))) })
	if wins != 1 {
		t.Fatalf("%d creates won, want 1", wins)
	}
	if recs := s.Changes(t); len(recs) != 1 || recs[0].EventName != "INSERT" {
		t.Fatalf("%d records, want one INSERT", len(recs))
	}
}

// reading is a typed item with a numeric key field and nested values.
type reading struct {
	Sensor string            `json:"sensor"`
	Seq    int               `json:"seq"`
	Value  float64           `json:"value"`
	Tags   []string          `json:"tags,omitempty"`
	Extra  map[string]string `json:"extra,omitempty"`
	At     time.Time         `json:"at"`
}

var readingType = store.MustItemType("Reading", "sensor#{sensor}", "seq#{seq}")

func testTypedItems(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	rs := store.NewItems[reading](s, readingType)
	var sent []reading
	for i := range 12 { // seq 10 and 11 sort between 1 and 2: sort keys are strings
		r := reading{Sensor: "s#1", Seq: i, Value: float64(i) + 0.25, Tags: []string{"t"}, Extra: map[string]string{"ü": "ñ"},
			At: clk.Now().Add(time.Duration(i) * time.Second)}
		if err := rs.Create(ctx, &r); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, r)
	}
	if err := rs.Create(ctx, &sent[3]); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Create twice = %v, want ErrConflict", err)
	}
	got, err := rs.Get(ctx, map[string]any{"sensor": "s#1", "seq": 3})
	if err != nil {
		t.Fatal(err)
	}
	if got.Value != 3.25 || got.Seq != 3 || !got.At.Equal(sent[3].At) || got.Extra["ü"] != "ñ" {
		t.Fatalf("Get = %+v, want %+v", got, sent[3])
	}
	raw, err := s.GetItem(ctx, "sensor#s#1", "seq#3")
	if err != nil {
		t.Fatalf("the item is not at the key its templates make: %v", err)
	}
	if tn, _ := raw[store.AttrTypename].(*types.AttributeValueMemberS); tn == nil || tn.Value != "Reading" {
		t.Fatalf("item has __typename %v, want Reading", raw[store.AttrTypename])
	}
	if _, err := rs.Get(ctx, map[string]any{"sensor": "s#1", "seq": 99}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(absent) = %v, want ErrNotFound", err)
	}
	if _, err := rs.Get(ctx, map[string]any{"sensor": "s#1"}); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "seq") {
		t.Fatalf("Get without seq = %v, want ErrInvalid naming seq", err)
	}
	if _, err := rs.Get(ctx, map[string]any{"sensor": "s#1", "seq": strings.Repeat("9", store.MaxSKBytes)}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get with a key too long to exist = %v, want ErrNotFound", err)
	}
	last, err := rs.Query(ctx, map[string]any{"sensor": "s#1"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int
	for _, r := range last {
		seqs = append(seqs, r.Seq)
	}
	if !slices.Equal(seqs, []int{6, 7, 8, 9}) {
		t.Fatalf("Query(last 4) = %v, want [6 7 8 9] (sort key order, oldest first)", seqs)
	}
	if _, err := rs.Query(ctx, map[string]any{"sensor": "s#1"}, store.MaxQueryItems+1); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Query over the bound = %v, want ErrInvalid", err)
	}
	upd := sent[3]
	upd.Value, upd.Tags = -1, nil
	old, err := rs.Replace(ctx, &upd)
	if err != nil || old.Value != 3.25 || len(old.Tags) != 1 {
		t.Fatalf("Replace = %+v, %v; want the old reading", old, err)
	}
	if got, _ := rs.Get(ctx, map[string]any{"sensor": "s#1", "seq": 3}); got.Value != -1 || got.Tags != nil {
		t.Fatalf("after Replace: %+v", got)
	}
	missing := reading{Sensor: "s#1", Seq: 500}
	if _, err := rs.Replace(ctx, &missing); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Replace(absent) = %v, want ErrNotFound", err)
	}
	del, err := rs.Delete(ctx, map[string]any{"sensor": "s#1", "seq": 3})
	if err != nil || del.Value != -1 {
		t.Fatalf("Delete = %+v, %v", del, err)
	}
	if _, err := rs.Delete(ctx, map[string]any{"sensor": "s#1", "seq": 3}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete twice = %v, want ErrNotFound", err)
	}
	recs := s.Changes(t)
	if len(recs) != 14 || recs[12].EventName != "MODIFY" || recs[13].EventName != "REMOVE" {
		t.Fatalf("%d records, want 12 INSERT, MODIFY, REMOVE", len(recs))
	}
	ch, ok, err := stream.DecodeItemChange(recs[12])
	if err != nil || !ok || ch.Type != "Reading" {
		t.Fatalf("DecodeItemChange = %+v, %v, %v", ch, ok, err)
	}
	var before, after reading
	if json.Unmarshal(ch.Old, &before) != nil || json.Unmarshal(ch.New, &after) != nil || before.Value != 3.25 || after.Value != -1 {
		t.Fatalf("payloads %s → %s", ch.Old, ch.New)
	}
	// An item of another type at a reading's key is not read as a reading.
	if err := s.CreateItem(ctx, store.Item{store.AttrPK: avS("sensor#s#1"), store.AttrSK: avS("seq#3"),
		store.AttrTypename: avS("Other"), "sensor": avS("s#1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Get(ctx, map[string]any{"sensor": "s#1", "seq": 3}); err == nil || !strings.Contains(err.Error(), "not a Reading") {
		t.Fatalf("Get of another type's item = %v, want an error", err)
	}
}

// Message is a chat message as an app declares it (type Message @item(pk: "room#{roomId}",
// sk: "msg#{id}")): the item type of the backends' and the stream codec's own tests.
type Message struct {
	ID        string     `json:"id"`
	RoomID    string     `json:"roomId"`
	Author    string     `json:"author"`
	Text      string     `json:"text"`
	CreatedAt time.Time  `json:"createdAt"`
	EditedAt  *time.Time `json:"editedAt,omitempty"`
}

// MessageType is the item type of Message.
var MessageType = store.MustItemType("Message", "room#{roomId}", "msg#{id}")

// note is an item type of time-ordered entries in partitions, as a chat app's messages are: its
// ids are ULIDs (store.NewID), so a partition's items sort by creation.
type note struct {
	ID        string     `json:"id"`
	Room      string     `json:"room"`
	Author    string     `json:"author"`
	Text      string     `json:"text"`
	CreatedAt time.Time  `json:"createdAt"`
	EditedAt  *time.Time `json:"editedAt,omitempty"`
}

var noteType = store.MustItemType("Note", "room#{room}", "note#{id}")

func noteKey(room, id string) map[string]any { return map[string]any{"room": room, "id": id} }

// testTimeline runs the life of time-ordered items through Items: create, read the last n in
// order, get, replace, delete, and the stream records of each.
func testTimeline(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	b := open(t, clk.Now)
	s := store.NewItems[note](b, noteType)
	var sent []note
	for i := range 120 {
		at := clk.Now().Add(time.Duration(i) * time.Millisecond).UTC()
		n := note{ID: store.NewID(at), Room: "r1", Author: "ann", Text: fmt.Sprintf("m%d", i), CreatedAt: at}
		if err := s.Create(ctx, &n); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, n)
	}
	if err := s.Create(ctx, &sent[0]); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Create of an existing id = %v, want ErrConflict", err)
	}
	last, err := s.Query(ctx, map[string]any{"room": "r1"}, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 50 {
		t.Fatalf("Query(last 50) = %d", len(last))
	}
	for i, n := range last {
		want := sent[70+i]
		if n.ID != want.ID || n.Text != want.Text || !n.CreatedAt.Equal(want.CreatedAt) || n.EditedAt != nil {
			t.Fatalf("Query[%d] = %+v, want %+v", i, n, want)
		}
	}
	all, err := s.Query(ctx, map[string]any{"room": "r1"}, 500)
	if err != nil || len(all) != 120 || all[0].ID != sent[0].ID {
		t.Fatalf("Query(last 500) = %d, %v", len(all), err)
	}
	got, err := s.Get(ctx, noteKey("r1", sent[3].ID))
	if err != nil || got.Text != "m3" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if _, err := s.Get(ctx, noteKey("r1", "nope")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(absent) = %v, want ErrNotFound", err)
	}
	b.Changes(t) // the inserts
	edAt := clk.Now().Add(time.Hour).UTC()
	ed := sent[3]
	ed.Text, ed.EditedAt = "edited", &edAt
	prev, err := s.Replace(ctx, &ed)
	if err != nil || prev.Text != "m3" || prev.EditedAt != nil {
		t.Fatalf("Replace = %+v, %v", prev, err)
	}
	if got, _ := s.Get(ctx, noteKey("r1", sent[3].ID)); got.Text != "edited" || got.EditedAt == nil || !got.EditedAt.Equal(edAt) ||
		got.Author != "ann" || !got.CreatedAt.Equal(sent[3].CreatedAt) {
		t.Fatalf("after Replace, Get = %+v", got)
	}
	absent := note{ID: "nope", Room: "r1", Text: "x"}
	if _, err := s.Replace(ctx, &absent); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Replace(absent) = %v, want ErrNotFound", err)
	}
	del, err := s.Delete(ctx, noteKey("r1", sent[3].ID))
	if err != nil || del.Text != "edited" || del.ID != sent[3].ID {
		t.Fatalf("Delete = %+v, %v", del, err)
	}
	if _, err := s.Delete(ctx, noteKey("r1", sent[3].ID)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete twice = %v, want ErrNotFound", err)
	}
	if all, _ := s.Query(ctx, map[string]any{"room": "r1"}, 500); len(all) != 119 {
		t.Fatalf("after delete, %d items, want 119", len(all))
	}
	orig, err := noteType.Encode(sent[3])
	if err != nil {
		t.Fatal(err)
	}
	edited, err := noteType.Encode(ed)
	if err != nil {
		t.Fatal(err)
	}
	expectChanges(t, b, change{stream.Modify, orig, edited}, change{stream.Remove, edited, nil})
	// An id too long to be a key is an item that does not exist.
	if _, err := s.Get(ctx, noteKey("r1", strings.Repeat("é", 512))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(id of 1,024 bytes) = %v, want ErrNotFound", err)
	}
}

// testPartitionsIsolated checks that a partition's query never reads another's items, whatever
// the partition values (one a prefix of another, one holding the template's separator).
func testPartitionsIsolated(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := store.NewItems[note](open(t, clk.Now), noteType)
	for _, room := range []string{"a", "ab", "b", "a#b"} {
		for i := range 3 {
			n := note{ID: store.NewID(clk.Now()), Room: room, Author: "x", Text: room + fmt.Sprint(i), CreatedAt: clk.Now()}
			if err := s.Create(ctx, &n); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, room := range []string{"a", "ab", "b", "a#b"} {
		got, err := s.Query(ctx, map[string]any{"room": room}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Fatalf("room %s has %d items, want 3", room, len(got))
		}
		for _, n := range got {
			if n.Room != room {
				t.Fatalf("room %s returned an item of room %s", room, n.Room)
			}
		}
	}
	if got, err := s.Query(ctx, map[string]any{"room": "zzz"}, 10); err != nil || len(got) != 0 {
		t.Fatalf("empty room = %d, %v", len(got), err)
	}
}
