package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/realtime-gql/lambdaws/store"
)

func TestParseKeyTemplate(t *testing.T) {
	for _, tc := range []struct {
		src, prefix string
		fields      []string
		values      map[string]any
		want        string
	}{
		{"room#{roomId}", "room#", []string{"roomId"}, map[string]any{"roomId": "r1"}, "room#r1"},
		{"msg#{id}", "msg#", []string{"id"}, map[string]any{"id": "01X", "other": true}, "msg#01X"},
		{"{id}", "", []string{"id"}, map[string]any{"id": 7}, "7"},
		{"profile", "profile", nil, nil, "profile"},
		{"a{{b}}#{x}!", "a{b}#", []string{"x"}, map[string]any{"x": "{y}"}, "a{b}#{y}!"},
		{"org#{org}#team#{team}", "org#", []string{"org", "team"}, map[string]any{"org": "o", "team": "t#1"}, "org#o#team#t#1"},
		{"{a}|{b}", "", []string{"a", "b"}, map[string]any{"a": 1.5, "b": json.Number("2.50")}, "1.5|2.50"},
		{"x{{{a}}}", "x{", []string{"a"}, map[string]any{"a": "y"}, "x{y}"},
		{"n#{_n9}", "n#", []string{"_n9"}, map[string]any{"_n9": uint64(18446744073709551615)}, "n#18446744073709551615"},
	} {
		k, err := store.ParseKeyTemplate(tc.src)
		if err != nil {
			t.Fatalf("ParseKeyTemplate(%q): %v", tc.src, err)
		}
		if k.String() != tc.src || k.Prefix() != tc.prefix || !slices.Equal(k.Fields(), tc.fields) {
			t.Fatalf("%q: String %q Prefix %q Fields %v", tc.src, k.String(), k.Prefix(), k.Fields())
		}
		got, err := k.Format(tc.values)
		if err != nil || got != tc.want {
			t.Fatalf("%q.Format(%v) = %q, %v; want %q", tc.src, tc.values, got, err, tc.want)
		}
		if !strings.HasPrefix(got, k.Prefix()) {
			t.Fatalf("%q: key %q does not start with the prefix %q", tc.src, got, k.Prefix())
		}
	}
}

func TestParseKeyTemplateRefuses(t *testing.T) {
	for src, want := range map[string]string{
		"":        "empty",
		"a{}":     "empty placeholder",
		"a{b":     "not closed",
		"a}":      "closes nothing",
		"{a{b}}":  "not closed",
		"{1a}":    "field name",
		"{a-b}":   "field name",
		"{a b}":   "field name",
		"{a}{b}":  "separated by literal text",
		"{a}#{a}": "appears twice",
		"{a}}":    "closes nothing",
		"{{a}":    "closes nothing",
	} {
		if _, err := store.ParseKeyTemplate(src); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKeyTemplate(%q) = %v, want ErrInvalid saying %q", src, err, want)
		}
	}
}

type roomID string

func TestKeyTemplateFormat(t *testing.T) {
	k := store.MustParseKeyTemplate("a#{a}#b#{b}")
	for name, tc := range map[string]struct {
		values map[string]any
		want   string // "" for an error
		errHas string
	}{
		"strings":               {map[string]any{"a": "x", "b": "y"}, "a#x#b#y", ""},
		"named string and int":  {map[string]any{"a": roomID("r"), "b": int8(-3)}, "a#r#b#-3", ""},
		"float as JSON":         {map[string]any{"a": 1e21, "b": float32(0.5)}, "a#1e+21#b#0.5", ""},
		"last may hold '#'":     {map[string]any{"a": "x", "b": "y#z"}, "a#x#b#y#z", ""},
		"missing":               {map[string]any{"a": "x"}, "", "field b is missing"},
		"first may not hold #":  {map[string]any{"a": "x#y", "b": "z"}, "", `field a may not contain "#"`},
		"empty":                 {map[string]any{"a": "", "b": "z"}, "", "field a: is empty"},
		"bool":                  {map[string]any{"a": true, "b": "z"}, "", "field a: is a bool"},
		"null":                  {map[string]any{"a": nil, "b": "z"}, "", "field a: is null"},
		"object":                {map[string]any{"a": map[string]any{}, "b": "z"}, "", "field a: is a map"},
		"json.Number not valid": {map[string]any{"a": json.Number("007"), "b": "z"}, "", "not a number"},
		"attribute values":      {map[string]any{"a": &types.AttributeValueMemberS{Value: "s"}, "b": &types.AttributeValueMemberN{Value: "1"}}, "a#s#b#1", ""},
	} {
		got, err := k.Format(tc.values)
		switch {
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("%s: Format = %q, %v; want %q", name, got, err, tc.want)
		case tc.want == "" && (!errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), tc.errHas)):
			t.Errorf("%s: Format = %q, %v; want ErrInvalid saying %q", name, got, err, tc.errHas)
		}
	}
	if _, err := (store.KeyTemplate{}).Format(nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("zero template Format = %v, want ErrInvalid", err)
	}
}

// TestKeyTemplateOneToOne formats random values that are likely to collide (made of separators
// and the literals' letters) and checks that distinct values never give the same key.
func TestKeyTemplateOneToOne(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	k := store.MustParseKeyTemplate("{a}#{b}|x{c}")
	alphabet := []string{"#", "|", "x", "a", "b", "|x", "#b"}
	val := func() string {
		var b strings.Builder
		for range 1 + r.IntN(3) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	seen := map[string]string{}
	formatted := 0
	for range 20000 {
		v := map[string]any{"a": val(), "b": val(), "c": val()}
		key, err := k.Format(v)
		if err != nil {
			continue
		}
		formatted++
		id := fmt.Sprint(v["a"], "\x00", v["b"], "\x00", v["c"])
		if prev, ok := seen[key]; ok && prev != id {
			t.Fatalf("values %q and %q both give key %q", prev, id, key)
		}
		seen[key] = id
	}
	if formatted < 1000 {
		t.Fatalf("only %d of the random values formatted; the test proves little", formatted)
	}
}

func TestItemType(t *testing.T) {
	for _, bad := range [][3]string{
		{"Message", "room", "msg#{id}"},      // no placeholder in pk
		{"", "room#{r}", "msg#{id}"},         // no name
		{"Not a name", "room#{r}", "x"},      // not a GraphQL name
		{"Message", "room#{r", "msg#{id}"},   // bad pk template
		{"Message", "room#{r}", "msg#{id}}"}, // bad sk template
	} {
		if _, err := store.NewItemType(bad[0], bad[1], bad[2]); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("NewItemType%q = %v, want ErrInvalid", bad, err)
		}
	}
	if err := (store.ItemType{Name: "T", PK: store.MustParseKeyTemplate("p#{x}")}).Validate(); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a type without a sort key template validated: %v", err)
	}
	typ := store.MustItemType("Thing", "org#{org}", "thing#{id}")
	type thing struct {
		Org  string `json:"org"`
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	it, err := typ.Encode(thing{"o#1", 42, "n"})
	if err != nil {
		t.Fatal(err)
	}
	for attr, want := range map[string]string{"pk": "org#o#1", "sk": "thing#42", "__typename": "Thing", "org": "o#1", "name": "n"} {
		if s, ok := it[attr].(*types.AttributeValueMemberS); !ok || s.Value != want {
			t.Errorf("attribute %s = %#v, want %q", attr, it[attr], want)
		}
	}
	pk, sk, err := typ.Key(map[string]any{"org": "o#1", "id": 42})
	if err != nil || pk != "org#o#1" || sk != "thing#42" {
		t.Errorf("Key = %q, %q, %v", pk, sk, err)
	}
	var back thing
	if err := typ.Decode(it, &back); err != nil || back != (thing{"o#1", 42, "n"}) {
		t.Errorf("Decode = %+v, %v", back, err)
	}
	other := store.MustItemType("Other", "org#{org}", "thing#{id}")
	if err := other.Decode(it, &back); err == nil || !strings.Contains(err.Error(), "not a Other") {
		t.Errorf("Decode as another type = %v", err)
	}
	delete(it, "__typename") // written by other means: decoded as it is
	if err := other.Decode(it, &back); err != nil {
		t.Errorf("Decode of an item without __typename: %v", err)
	}
	for name, v := range map[string]any{
		"a reserved pk field":         map[string]any{"org": "o", "id": 1, "pk": "x"},
		"a reserved __typename field": map[string]any{"org": "o", "id": 1, "__typename": "x"},
		"a missing key field":         map[string]any{"org": "o"},
		"a key field of a bad type":   map[string]any{"org": "o", "id": []int{1}},
		"a key too long":              map[string]any{"org": "o", "id": strings.Repeat("x", store.MaxSKBytes)},
		"not an object":               []string{"x"},
	} {
		if _, err := typ.Encode(v); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Encode(%s) = %v, want ErrInvalid", name, err)
		}
	}
}
