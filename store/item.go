package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// An Item is one item of the data table as DynamoDB holds it: attribute names and SDK v2 attribute
// values. It is the same type as guregu/dynamo's Item.
type Item = map[string]types.AttributeValue

// Attributes of the data table that are not an item's own fields. Every item has pk and sk; items
// written through an ItemType have __typename; ttl is DynamoDB's expiry (epoch seconds, N), set by
// types that expire. ItemPayload leaves all four out.
const (
	// AttrPK is the partition key (S).
	AttrPK = "pk"
	// AttrSK is the sort key (S).
	AttrSK = "sk"
	// AttrTypename names the item's type (S), the ItemType.Name it was written with; the stream
	// decoder recognises the service's items by it.
	AttrTypename = "__typename"
	// AttrTTL is the expiry in epoch seconds (N): from then on the item reads as absent, and
	// DynamoDB's TTL process removes it (lazily, typically within 48 hours).
	AttrTTL = "ttl"
)

// DynamoDB's limits on items, which both backends enforce.
const (
	// MaxPKBytes bounds a partition key, in UTF-8 bytes.
	MaxPKBytes = 2048
	// MaxSKBytes bounds a sort key, in UTF-8 bytes.
	MaxSKBytes = 1024
	// MaxItemBytes bounds an item's size as DynamoDB computes it (see ItemSize): 400 KB.
	MaxItemBytes = 400 * 1024
	// maxNumberDigits is the precision of a DynamoDB number, in significant digits.
	maxNumberDigits = 38
	// A non-zero DynamoDB number's magnitude is within 1E-130 and 9.99…E+125: these bound the
	// decimal exponent of its first significant digit.
	minNumberExp, maxNumberExp = -130, 125
)

// ErrInvalid reports input the store refuses before any I/O: an item or key DynamoDB would
// reject, a value that is not an item, a key template that does not fit its values, a limit out
// of range.
var ErrInvalid = errors.New("store: invalid input")

// EncodeItem converts a Go value to an item through its JSON encoding, so `json` tags name the
// attributes and a time.Time becomes its RFC 3339 string. JSON strings become S, numbers N (with
// the exact text of the JSON number), booleans BOOL, null NULL, arrays L and objects M. The value
// must encode as a JSON object, and its numbers must fit DynamoDB's (38 significant digits,
// magnitude 1E-130 to below 1E+126); errors wrap ErrInvalid.
func EncodeItem(v any) (Item, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode item: %w: %v", ErrInvalid, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("encode item: %w: %v", ErrInvalid, err)
	}
	obj, ok := tree.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("encode item: %w: %T does not encode as a JSON object", ErrInvalid, v)
	}
	it := make(Item, len(obj))
	for k, x := range obj {
		av, err := fromJSON(x)
		if err != nil {
			return nil, fmt.Errorf("encode item: %w: attribute %q: %v", ErrInvalid, k, err)
		}
		it[k] = av
	}
	return it, nil
}

// fromJSON converts a value decoded with json.Decoder.UseNumber to an attribute value.
func fromJSON(x any) (types.AttributeValue, error) {
	switch x := x.(type) {
	case nil:
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case bool:
		return &types.AttributeValueMemberBOOL{Value: x}, nil
	case string:
		return &types.AttributeValueMemberS{Value: x}, nil
	case json.Number:
		if _, err := CanonicalNumber(string(x)); err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberN{Value: string(x)}, nil
	case []any:
		l, err := mapList(x, fromJSON)
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberL{Value: l}, nil
	case map[string]any:
		m, err := mapMap(x, fromJSON)
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	default:
		return nil, fmt.Errorf("unexpected JSON value %T", x)
	}
}

// DecodeItem decodes an item into out (a pointer) through JSON: the reverse of EncodeItem.
// Attributes of types JSON lacks are read as DynamoDB's JSON conventions do: B as a base64
// string, SS and BS as arrays of strings, NS as an array of numbers. The key and meta attributes
// are decoded like any other, into fields of those JSON names if out has them.
func DecodeItem(it Item, out any) error {
	raw, err := itemJSON(it, false)
	if err != nil {
		return fmt.Errorf("decode item: %w", err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode item: %w", err)
	}
	return nil
}

// ItemPayload returns the item as a JSON object without the key and meta attributes (pk, sk,
// __typename, ttl): the item as its type's fields see it, which is what events carry to
// subscribers. Object keys are sorted, so equal items give equal bytes.
func ItemPayload(it Item) (json.RawMessage, error) {
	raw, err := itemJSON(it, true)
	if err != nil {
		return nil, fmt.Errorf("item payload: %w", err)
	}
	return raw, nil
}

func isMeta(name string) bool {
	return name == AttrPK || name == AttrSK || name == AttrTypename || name == AttrTTL
}

func itemJSON(it Item, payload bool) ([]byte, error) {
	obj := make(map[string]any, len(it))
	for k, av := range it {
		if payload && isMeta(k) {
			continue
		}
		x, err := toJSON(av)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", k, err)
		}
		obj[k] = x
	}
	// encoding/json sorts map keys, and writes a json.Number as its text once checked to be a
	// valid JSON number; strings are written as they are ('<', '>' and '&' unescaped).
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// toJSON converts an attribute value to a value encoding/json writes.
func toJSON(av types.AttributeValue) (any, error) {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return v.Value, nil
	case *types.AttributeValueMemberN:
		return jsonNumber(v.Value)
	case *types.AttributeValueMemberBOOL:
		return v.Value, nil
	case *types.AttributeValueMemberNULL:
		return nil, nil
	case *types.AttributeValueMemberB:
		return base64.StdEncoding.EncodeToString(v.Value), nil
	case *types.AttributeValueMemberSS:
		return slices.Clone(v.Value), nil
	case *types.AttributeValueMemberBS:
		l := make([]string, len(v.Value))
		for i, b := range v.Value {
			l[i] = base64.StdEncoding.EncodeToString(b)
		}
		return l, nil
	case *types.AttributeValueMemberNS:
		return mapList(v.Value, jsonNumber)
	case *types.AttributeValueMemberL:
		return mapList(v.Value, toJSON)
	case *types.AttributeValueMemberM:
		return mapMap(v.Value, toJSON)
	case nil:
		return nil, errors.New("missing attribute value")
	default:
		return nil, fmt.Errorf("unsupported attribute value %T", av)
	}
}

// jsonNumber returns a DynamoDB number as a JSON number with the same text, when its text is
// valid JSON (DynamoDB itself accepts some texts JSON does not, such as ".5"; those are
// rewritten canonically).
func jsonNumber(s string) (json.Number, error) {
	if validJSONNumber(s) {
		return json.Number(s), nil
	}
	c, err := CanonicalNumber(s)
	if err != nil {
		return "", err
	}
	return json.Number(c), nil
}

func validJSONNumber(s string) bool {
	// The grammar of RFC 8259: -? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// decimal is a parsed number: sign, significant digits without leading or trailing zeros, and
// the decimal exponent of the first digit (value = 0.d1d2… × 10^(exp+1)). Zero has no digits.
type decimal struct {
	neg    bool
	digits string
	exp    int
}

// parseDecimal parses a number as DynamoDB accepts it: an optional sign, digits with an optional
// point (".5" and "5." included), and an optional exponent.
func parseDecimal(s string) (decimal, error) {
	bad := fmt.Errorf("%q is not a number", s)
	var d decimal
	mant, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	if strings.HasPrefix(mant, "-") {
		d.neg, mant = true, mant[1:]
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	if intPart == "" && frac == "" || strings.ContainsFunc(intPart+frac, func(r rune) bool { return r < '0' || r > '9' }) {
		return d, bad
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	point := len(intPart) - (len(intPart+frac) - len(digits)) // digits before the point, after trimming
	digits = strings.TrimRight(digits, "0")
	var exp int
	if hasExp {
		t := strings.TrimPrefix(strings.TrimPrefix(expText, "+"), "-")
		if t == "" || strings.ContainsFunc(t, func(r rune) bool { return r < '0' || r > '9' }) {
			return d, bad
		}
		if t = strings.TrimLeft(t, "0"); len(t) > 6 {
			t = "999999" // beyond any range check below; digits decide whether it matters
		}
		exp, _ = strconv.Atoi(t)
		if strings.HasPrefix(expText, "-") {
			exp = -exp
		}
	}
	if digits == "" {
		return decimal{}, nil // zero, whatever its sign and exponent
	}
	d.digits = digits
	d.exp = point - 1 + exp
	return d, nil
}

// CanonicalNumber validates a number as DynamoDB does on a write (at most 38 significant digits,
// magnitude from 1E-130 to below 1E+126) and returns the text DynamoDB stores and returns for it:
// plain decimal notation without exponent, leading or trailing zeros, or the sign of zero
// ("1.50e2" → "150", "-0" → "0"). Errors wrap ErrInvalid.
func CanonicalNumber(s string) (string, error) {
	d, err := parseDecimal(s)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if d.digits == "" {
		return "0", nil
	}
	switch {
	case len(d.digits) > maxNumberDigits:
		return "", fmt.Errorf("%w: number %q has more than %d significant digits", ErrInvalid, s, maxNumberDigits)
	case d.exp > maxNumberExp:
		return "", fmt.Errorf("%w: number %q is too large for DynamoDB (at most 9.99…E+125)", ErrInvalid, s)
	case d.exp < minNumberExp:
		return "", fmt.Errorf("%w: number %q is too small for DynamoDB (at least 1E-130)", ErrInvalid, s)
	}
	var b strings.Builder
	if d.neg {
		b.WriteByte('-')
	}
	if d.exp < 0 {
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -d.exp-1))
		b.WriteString(d.digits)
		return b.String(), nil
	}
	if n := d.exp + 1; len(d.digits) <= n {
		b.WriteString(d.digits)
		b.WriteString(strings.Repeat("0", n-len(d.digits)))
	} else {
		b.WriteString(d.digits[:n])
		b.WriteByte('.')
		b.WriteString(d.digits[n:])
	}
	return b.String(), nil
}

// NormalizeItem checks an item as DynamoDB checks a write to the data table, and returns a copy
// whose numbers are in the canonical form DynamoDB stores (see CanonicalNumber), so that both
// backends hold, return and stream the same item. It requires pk and sk as non-empty strings
// within MaxPKBytes and MaxSKBytes, __typename (if present) a non-empty string, valid UTF-8
// strings, numbers DynamoDB accepts, non-empty sets without duplicates, and a size of at most
// MaxItemBytes; with the copy it returns the item's key. Errors wrap ErrInvalid.
func NormalizeItem(it Item) (out Item, pk, sk string, err error) {
	if pk, sk, err = ItemKey(it); err != nil {
		return nil, "", "", err
	}
	if err := CheckKey(pk, sk); err != nil {
		return nil, "", "", err
	}
	if tn, ok := it[AttrTypename]; ok {
		if s, ok := tn.(*types.AttributeValueMemberS); !ok || s.Value == "" {
			return nil, "", "", fmt.Errorf("%w: item %q/%q: %s must be a non-empty string", ErrInvalid, pk, sk, AttrTypename)
		}
	}
	out = make(Item, len(it))
	for k, av := range it {
		if k == "" {
			return nil, "", "", fmt.Errorf("%w: item %q/%q: empty attribute name", ErrInvalid, pk, sk)
		}
		n, err := normalizeValue(av)
		if err != nil {
			return nil, "", "", fmt.Errorf("%w: item %q/%q: attribute %q: %v", ErrInvalid, pk, sk, k, err)
		}
		out[k] = n
	}
	if size := ItemSize(out); size > MaxItemBytes {
		return nil, "", "", fmt.Errorf("%w: item %q/%q has %d bytes, more than DynamoDB's %d", ErrInvalid, pk, sk, size, MaxItemBytes)
	}
	return out, pk, sk, nil
}

// ItemKey returns an item's key: its pk and sk attributes, which must be strings (errors wrap
// ErrInvalid).
func ItemKey(it Item) (pk, sk string, err error) {
	if pk, err = keyAttr(it, AttrPK); err != nil {
		return "", "", err
	}
	if sk, err = keyAttr(it, AttrSK); err != nil {
		return "", "", err
	}
	return pk, sk, nil
}

func keyAttr(it Item, name string) (string, error) {
	s, ok := it[name].(*types.AttributeValueMemberS)
	if !ok {
		return "", fmt.Errorf("%w: item without a string %s attribute", ErrInvalid, name)
	}
	return s.Value, nil
}

// CheckKey checks a data table key as DynamoDB does: both parts non-empty valid UTF-8, pk at most
// MaxPKBytes and sk at most MaxSKBytes. Errors wrap ErrInvalid.
func CheckKey(pk, sk string) error {
	switch {
	case pk == "" || sk == "":
		return fmt.Errorf("%w: empty key %q/%q", ErrInvalid, pk, sk)
	case len(pk) > MaxPKBytes:
		return fmt.Errorf("%w: partition key of %d bytes, at most %d", ErrInvalid, len(pk), MaxPKBytes)
	case len(sk) > MaxSKBytes:
		return fmt.Errorf("%w: sort key of %d bytes, at most %d", ErrInvalid, len(sk), MaxSKBytes)
	case !utf8.ValidString(pk) || !utf8.ValidString(sk):
		return fmt.Errorf("%w: key %q/%q is not valid UTF-8", ErrInvalid, pk, sk)
	}
	return nil
}

func normalizeValue(av types.AttributeValue) (types.AttributeValue, error) {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		if !utf8.ValidString(v.Value) {
			return nil, errors.New("string is not valid UTF-8")
		}
		return v, nil
	case *types.AttributeValueMemberN:
		c, err := CanonicalNumber(v.Value)
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberN{Value: c}, nil
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberB:
		return v, nil
	case *types.AttributeValueMemberNULL:
		if !v.Value {
			return nil, errors.New("NULL must be true")
		}
		return v, nil
	case *types.AttributeValueMemberSS:
		if err := checkSet(v.Value, func(s string) (string, error) {
			if !utf8.ValidString(s) {
				return "", errors.New("string is not valid UTF-8")
			}
			return s, nil
		}); err != nil {
			return nil, err
		}
		return v, nil
	case *types.AttributeValueMemberBS:
		if err := checkSet(v.Value, func(b []byte) (string, error) { return string(b), nil }); err != nil {
			return nil, err
		}
		return v, nil
	case *types.AttributeValueMemberNS:
		out, err := mapList(v.Value, CanonicalNumber)
		if err != nil {
			return nil, err
		}
		if err := checkSet(out, func(s string) (string, error) { return s, nil }); err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberNS{Value: out}, nil
	case *types.AttributeValueMemberL:
		out, err := mapList(v.Value, normalizeValue)
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberL{Value: out}, nil
	case *types.AttributeValueMemberM:
		out, err := mapMap(v.Value, normalizeValue)
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberM{Value: out}, nil
	case nil:
		return nil, errors.New("missing attribute value")
	default:
		return nil, fmt.Errorf("unsupported attribute value %T", av)
	}
}

// mapList converts the elements of a list (or set) with conv; an error names the element.
func mapList[E, R any](l []E, conv func(E) (R, error)) ([]R, error) {
	out := make([]R, len(l))
	for i, e := range l {
		r, err := conv(e)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out[i] = r
	}
	return out, nil
}

// mapMap converts the values of a map with conv; an error names the key.
func mapMap[E, R any](m map[string]E, conv func(E) (R, error)) (map[string]R, error) {
	out := make(map[string]R, len(m))
	for k, e := range m {
		r, err := conv(e)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		out[k] = r
	}
	return out, nil
}

// checkSet requires a non-empty set without duplicates (after key).
func checkSet[E any](set []E, key func(E) (string, error)) error {
	if len(set) == 0 {
		return errors.New("empty set")
	}
	seen := make(map[string]bool, len(set))
	for _, e := range set {
		k, err := key(e)
		if err != nil {
			return err
		}
		if seen[k] {
			return errors.New("duplicate set element")
		}
		seen[k] = true
	}
	return nil
}

// ItemSize is an item's size as DynamoDB counts it against MaxItemBytes: attribute names and
// strings in UTF-8 bytes, binaries in bytes, a number about one byte per two significant digits
// plus one, BOOL and NULL one byte, a list or map three bytes plus one per element plus its
// elements. The numbers follow dynalite, the DynamoDB emulator the tests run on.
func ItemSize(it Item) int {
	size := 0
	for k, av := range it {
		size += len(k) + valueSize(av)
	}
	return size
}

func valueSize(av types.AttributeValue) int {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numberSize(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberSS:
		return sizeOfAll(v.Value, func(s string) int { return len(s) })
	case *types.AttributeValueMemberNS:
		return sizeOfAll(v.Value, numberSize)
	case *types.AttributeValueMemberBS:
		return sizeOfAll(v.Value, func(b []byte) int { return len(b) })
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		return 3 + len(v.Value) + ItemSize(v.Value)
	default: // BOOL, NULL
		return 1
	}
}

func numberSize(s string) int {
	d, err := parseDecimal(s)
	if err != nil || d.digits == "" {
		return 1
	}
	n := 1 + (len(d.digits)+1)/2
	if len(d.digits)%2 == 0 && d.exp%2 == 0 {
		n++
	}
	if d.neg {
		n++
	}
	return n
}

// sizeOfAll is the sum of size over a set's members.
func sizeOfAll[T any](members []T, size func(T) int) int {
	n := 0
	for _, m := range members {
		n += size(m)
	}
	return n
}
