package store_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/realtime-gql/lambdaws/store"
)

type inner struct {
	Name  string         `json:"name"`
	Score float64        `json:"score"`
	Any   map[string]any `json:"any,omitempty"`
}

type everything struct {
	Str      string          `json:"str"`
	Empty    string          `json:"empty"`
	Unicode  string          `json:"unicode"`
	Int      int             `json:"int"`
	Neg      int64           `json:"neg"`
	Big      uint64          `json:"big"`
	Float    float64         `json:"float"`
	Huge     float64         `json:"huge"`
	Exact    json.Number     `json:"exact"`
	Yes      bool            `json:"yes"`
	Nil      *string         `json:"nil"`
	Omitted  *string         `json:"omitted,omitempty"`
	At       time.Time       `json:"at"`
	List     []any           `json:"list"`
	EmptyL   []string        `json:"emptyList"`
	Nested   inner           `json:"nested"`
	PtrInner *inner          `json:"ptrInner"`
	Raw      json.RawMessage `json:"raw"`
	Ignored  string          `json:"-"`
}

func TestEncodeDecodeItem(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 123_456_789, time.FixedZone("X", -5*3600))
	v := everything{Str: "plain", Empty: "", Unicode: "héllo ✓ 🎉 \u2028 \"q\" \\ <&>", Int: 42, Neg: -7, Big: 18446744073709551615,
		Float: 0.1, Huge: 1e21, Exact: "1.50", Yes: true, At: at, List: []any{"a", json.Number("1.0"), nil, false, []any{}, map[string]any{}},
		EmptyL: []string{}, Nested: inner{Name: "n", Score: -2.5, Any: map[string]any{"k": json.Number("3")}},
		Raw: json.RawMessage(`{"z":[1,2.50,{"y":null}]}`), Ignored: "x"}
	it, err := store.EncodeItem(v)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]types.AttributeValue{
		"str":       &types.AttributeValueMemberS{Value: "plain"},
		"empty":     &types.AttributeValueMemberS{Value: ""},
		"unicode":   &types.AttributeValueMemberS{Value: v.Unicode},
		"int":       &types.AttributeValueMemberN{Value: "42"},
		"neg":       &types.AttributeValueMemberN{Value: "-7"},
		"big":       &types.AttributeValueMemberN{Value: "18446744073709551615"},
		"float":     &types.AttributeValueMemberN{Value: "0.1"},
		"huge":      &types.AttributeValueMemberN{Value: "1e+21"},
		"exact":     &types.AttributeValueMemberN{Value: "1.50"},
		"yes":       &types.AttributeValueMemberBOOL{Value: true},
		"nil":       &types.AttributeValueMemberNULL{Value: true},
		"at":        &types.AttributeValueMemberS{Value: "2026-11-26T12:00:00.123456789-05:00"},
		"emptyList": &types.AttributeValueMemberL{Value: []types.AttributeValue{}},
		"ptrInner":  &types.AttributeValueMemberNULL{Value: true},
	}
	for k, w := range want {
		if !reflect.DeepEqual(it[k], w) {
			t.Errorf("attribute %s = %#v, want %#v", k, it[k], w)
		}
	}
	for _, k := range []string{"omitted", "Ignored", "-"} {
		if _, ok := it[k]; ok {
			t.Errorf("attribute %s present", k)
		}
	}
	list := it["list"].(*types.AttributeValueMemberL).Value
	if len(list) != 6 || list[1].(*types.AttributeValueMemberN).Value != "1.0" {
		t.Errorf("list = %#v", list)
	}
	raw := it["raw"].(*types.AttributeValueMemberM).Value["z"].(*types.AttributeValueMemberL).Value
	if raw[1].(*types.AttributeValueMemberN).Value != "2.50" {
		t.Errorf("a number inside raw JSON lost its text: %#v", raw[1])
	}

	var back everything
	if err := store.DecodeItem(it, &back); err != nil {
		t.Fatal(err)
	}
	v.Ignored = ""
	if !back.At.Equal(v.At) {
		t.Fatalf("time %v, want %v", back.At, v.At)
	}
	back.At = v.At
	if back.List[1] != 1.0 {
		t.Fatalf("list[1] = %#v, want 1", back.List[1])
	}
	back.List[1] = v.List[1] // an any holds a float64 after JSON
	// Through JSON, a number in an `any` becomes float64 and raw JSON is compacted; compare those
	// as JSON.
	bj, _ := json.Marshal(back)
	vj, _ := json.Marshal(v)
	if !bytes.Equal(bj, vj) {
		t.Fatalf("round trip:\n got %s\nwant %s", bj, vj)
	}
}

func TestEncodeItemRefuses(t *testing.T) {
	for name, v := range map[string]any{
		"a string":          "x",
		"an array":          []int{1},
		"nil":               nil,
		"a nil pointer":     (*everything)(nil),
		"a channel":         map[string]any{"c": make(chan int)},
		"a huge number":     map[string]any{"n": json.Number("1e126")},
		"39 digits":         map[string]any{"n": json.Number("123456789012345678901234567890123456789")},
		"a nested bad one":  map[string]any{"m": map[string]any{"l": []any{json.Number("1e-200")}}},
		"a MarshalJSON err": badJSON{},
	} {
		if _, err := store.EncodeItem(v); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("EncodeItem(%s) = %v, want ErrInvalid", name, err)
		}
	}
}

type badJSON struct{}

func (badJSON) MarshalJSON() ([]byte, error) { return nil, errors.New("no") }

func TestItemPayload(t *testing.T) {
	it := store.Item{
		"pk": &types.AttributeValueMemberS{Value: "p"}, "sk": &types.AttributeValueMemberS{Value: "s"},
		"__typename": &types.AttributeValueMemberS{Value: "T"}, "ttl": &types.AttributeValueMemberN{Value: "1"},
		"z": &types.AttributeValueMemberN{Value: "1.50"}, "a": &types.AttributeValueMemberS{Value: "<&>"},
		"b":  &types.AttributeValueMemberB{Value: []byte{0, 255}},
		"ss": &types.AttributeValueMemberSS{Value: []string{"x", "y"}}, "ns": &types.AttributeValueMemberNS{Value: []string{"2", ".5"}},
		"bs": &types.AttributeValueMemberBS{Value: [][]byte{{1}}}, "n": &types.AttributeValueMemberNULL{Value: true},
		"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "kept"}}},
	}
	got, err := store.ItemPayload(it)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"a":"<&>","b":"AP8=","bs":["AQ=="],"m":{"pk":"kept"},"n":null,"ns":[2,0.5],"ss":["x","y"],"z":1.50}`
	if string(got) != want {
		t.Fatalf("ItemPayload =\n%s\nwant\n%s", got, want)
	}
	if _, err := store.ItemPayload(store.Item{"n": &types.AttributeValueMemberN{Value: "NaN"}}); err == nil {
		t.Fatal("ItemPayload of a number that is not one succeeded")
	}
	if _, err := store.ItemPayload(store.Item{"x": nil}); err == nil {
		t.Fatal("ItemPayload of a nil attribute value succeeded")
	}
}

func TestCanonicalNumber(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "-0": "0", "0.000": "0", "0e999999999999": "0", "1e2": "100", "1E+2": "100", "1.50": "1.5", "00012": "12",
		".5": "0.5", "5.": "5", "-1.23e-5": "-0.0000123", "150e-2": "1.5", "1e21": "1000000000000000000000",
		"12345678901234567890123456789012345678000": "12345678901234567890123456789012345678000",
		"1E-130": "0." + strings.Repeat("0", 129) + "1",
		"9.9999999999999999999999999999999999999E+125": "99999999999999999999999999999999999999" + strings.Repeat("0", 88),
	} {
		got, err := store.CanonicalNumber(in)
		if err != nil || got != want {
			t.Errorf("CanonicalNumber(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-", ".", "e5", "1e", "1e+", "+1", "abc", "1.2.3", "1e5.5", "0x10", "NaN", "Infinity",
		"1e126", "-1e126", "1e-131", "123456789012345678901234567890123456789", "1e99999999999", "1.0e-999999999999"} {
		if got, err := store.CanonicalNumber(in); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CanonicalNumber(%q) = %q, %v; want ErrInvalid", in, got, err)
		}
	}
}

// TestCanonicalNumberKeepsTheValue compares CanonicalNumber with math/big on random numbers: the
// canonical text has the same value, and is canonical (canonicalising it again changes nothing).
func TestCanonicalNumberKeepsTheValue(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		return string(b)
	}
	for range 5000 {
		s := digits(1 + r.IntN(20))
		if r.IntN(2) == 0 {
			s += "." + digits(1+r.IntN(20))
		}
		if r.IntN(3) == 0 {
			s += fmt.Sprintf("e%d", r.IntN(200)-100)
		}
		if r.IntN(2) == 0 {
			s = "-" + s
		}
		got, err := store.CanonicalNumber(s)
		if err != nil {
			continue // out of DynamoDB's range or precision
		}
		a, okA := new(big.Rat).SetString(s)
		b, okB := new(big.Rat).SetString(got)
		if !okA || !okB || a.Cmp(b) != 0 {
			t.Fatalf("CanonicalNumber(%q) = %q: another value", s, got)
		}
		if again, err := store.CanonicalNumber(got); err != nil || again != got {
			t.Fatalf("CanonicalNumber(%q) = %q, %v; not canonical", got, again, err)
		}
		if !plainDecimal.MatchString(got) || got == "-0" {
			t.Fatalf("CanonicalNumber(%q) = %q: not plain decimal", s, got)
		}
	}
}

var plainDecimal = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$`)

// randomJSON builds a random JSON value: every type, nesting, unicode and escapes in strings,
// empty strings, arrays and objects, and numbers in every notation JSON allows.
func randomJSON(r *rand.Rand, depth int) any {
	strs := []string{"", "a", "héllo", "🎉", "\"", "\\", "\n\t", "\u2028", "<&>", "pk", "x y", "\u0000"}
	str := func() string {
		var b strings.Builder
		for range r.IntN(4) {
			b.WriteString(strs[r.IntN(len(strs))])
		}
		return b.String()
	}
	nums := []string{"0", "-0", "1", "-1", "1.50", "0.001", "1e2", "1E-5", "-2.5e+10", "123456789012345678901234567890", "3.14159"}
	switch k := r.IntN(8); {
	case depth > 3 || k == 0:
		return str()
	case k == 1:
		return json.Number(nums[r.IntN(len(nums))])
	case k == 2:
		return r.IntN(2) == 0
	case k == 3:
		return nil
	case k <= 5:
		l := make([]any, r.IntN(4))
		for i := range l {
			l[i] = randomJSON(r, depth+1)
		}
		return l
	default:
		m := map[string]any{}
		for range r.IntN(4) {
			m[str()] = randomJSON(r, depth+1)
		}
		return m
	}
}

// TestItemRoundTripProperty encodes random JSON objects as items and decodes them back: the JSON
// is the same, numbers keeping their exact text.
func TestItemRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		obj := map[string]any{}
		for range 1 + r.IntN(5) {
			obj[fmt.Sprint("f", r.IntN(10))] = randomJSON(r, 0)
		}
		raw, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		checkRoundTrip(t, fmt.Sprint("case ", i), raw)
	}
}

func checkRoundTrip(t *testing.T, name string, raw []byte) {
	t.Helper()
	it, err := store.EncodeItem(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("%s: EncodeItem(%s): %v", name, raw, err)
	}
	var back json.RawMessage
	if err := store.DecodeItem(it, &back); err != nil {
		t.Fatalf("%s: DecodeItem: %v", name, err)
	}
	if a, b := decodeExact(t, raw), decodeExact(t, back); !reflect.DeepEqual(a, b) {
		t.Fatalf("%s: round trip of %s gave %s", name, raw, back)
	}
	payload, err := store.ItemPayload(it)
	if err != nil {
		t.Fatalf("%s: ItemPayload: %v", name, err)
	}
	want := decodeExact(t, raw).(map[string]any)
	for _, k := range []string{"pk", "sk", "__typename", "ttl"} {
		delete(want, k)
	}
	if got := decodeExact(t, payload); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: ItemPayload of %s = %s", name, raw, payload)
	}
}

// decodeExact decodes JSON keeping numbers' text.
func decodeExact(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return v
}

// FuzzItemRoundTrip: any JSON object whose numbers DynamoDB accepts survives EncodeItem and
// DecodeItem exactly; anything else is refused with ErrInvalid, never a panic.
func FuzzItemRoundTrip(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1.50,"b":[null,true,{"c":"é"}],"d":""}`, `{"n":1e126}`, `[1]`, `"x"`,
		`{"pk":"p","ttl":123,"__typename":"T","x":{"y":[[],{}]}}`, `{"a":"\ud800"}`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		_, err := store.EncodeItem(json.RawMessage(data))
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("EncodeItem(%s) = %v, want ErrInvalid", data, err)
			}
			return
		}
		checkRoundTrip(t, "fuzz", data)
	})
}
