package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxSafeInt is the largest integer n such that every integer in [-n, n] has its own
// float64: 2^53-1 (JavaScript's Number.MAX_SAFE_INTEGER).
const maxSafeInt = 1<<53 - 1

// Compile checks value, the coerced value of a filter argument of the Spec's type, and
// compiles it. value is what gqlparser's ast.Value.Value or gqlgen give for an input
// object: map[string]any holding strings, numbers (int64, float64, json.Number or any Go
// integer or float type), booleans, []any and nil. A list operand may be a single value (as
// GraphQL's list input coercion allows). Anything else (a generated model struct, typed maps
// or slices, json.RawMessage) is read through its JSON encoding.
//
// A nil value, or an object with no non-null field, is no filter: Compile returns a nil
// *Filter, which matches everything, and no error. Every error is an *Error wrapping
// ErrInvalid, fit to show the client.
func (s *Spec) Compile(value any) (*Filter, error) {
	switch v := value.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return s.CompileJSON(v)
	case map[string]any:
		return s.compile(v)
	}
	v, err := viaJSON(value)
	if err != nil {
		return nil, &Error{Reason: "expected an input object"}
	}
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Reason: "expected an input object, got " + describe(v)}
	}
	return s.compile(m)
}

// CompileJSON is Compile for the JSON encoding of the filter argument's value (for example
// a Key, or the filter as stored). It refuses more than MaxJSONBytes of input, and JSON null
// is no filter.
func (s *Spec) CompileJSON(data []byte) (*Filter, error) {
	if len(data) > MaxJSONBytes {
		return nil, &Error{Reason: fmt.Sprintf("more than %d bytes of JSON", MaxJSONBytes), TooLarge: true}
	}
	v, err := decodeJSON(data)
	if err != nil {
		return nil, &Error{Reason: "not valid JSON: " + err.Error()}
	}
	switch v := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return s.compile(v)
	default:
		return nil, &Error{Reason: "expected an input object, got " + describe(v)}
	}
}

// decodeJSON decodes exactly one JSON value, numbers as json.Number.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the value")
	}
	return v, nil
}

// viaJSON turns any value into plain decoded JSON (maps, []any, json.Number, ...).
func viaJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return decodeJSON(b)
}

// compiler holds the running totals a filter's bounds apply to.
type compiler struct {
	conds int // operator entries
	elems int // in/notIn elements
}

func (s *Spec) compile(m map[string]any) (*Filter, error) {
	var c compiler
	n, key, err := c.object(s, m, "", 0)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, nil
	}
	if len(key) > MaxKeyBytes {
		return nil, &Error{Reason: fmt.Sprintf("its canonical form is %d bytes, more than %d", len(key), MaxKeyBytes), TooLarge: true}
	}
	return &Filter{root: *n, key: string(key)}, nil
}

// object compiles one filter object at path, depth groups deep. It returns a nil node for
// an object with no non-null field.
func (c *compiler) object(s *Spec, m map[string]any, path string, depth int) (*node, []byte, error) {
	var kids []node
	key := []byte{'{'}
	for _, name := range sortedKeys(m) {
		v := m[name]
		if v == nil {
			continue
		}
		p := join(path, name)
		var (
			n   node
			k   []byte
			err error
		)
		leaf := s.fields[name]
		switch {
		case (name == groupAnd && s.and) || (name == groupOr && s.or):
			n, k, err = c.group(s, name, v, p, depth)
		case name == groupNot && s.not:
			n, k, err = c.negation(s, v, p, depth)
		case leaf != nil:
			n, k, err = c.leaf(leaf, name, v, p)
		default:
			return nil, nil, &Error{Path: path, Reason: fmt.Sprintf("unknown field %q (%s has %s)", name, s.name, strings.Join(s.allFields(), ", "))}
		}
		if err != nil {
			return nil, nil, err
		}
		kids = append(kids, n)
		key = appendMember(key, name, k)
	}
	key = append(key, '}')
	switch len(kids) {
	case 0:
		return nil, key, nil
	case 1:
		return &kids[0], key, nil
	}
	return &node{kind: nodeAll, kids: kids}, key, nil
}

// allFields lists the field names a filter object of s may have, for error messages.
func (s *Spec) allFields() []string {
	names := s.Fields()
	for _, g := range []struct {
		name string
		has  bool
	}{{groupAnd, s.and}, {groupOr, s.or}, {groupNot, s.not}} {
		if g.has {
			names = append(names, g.name)
		}
	}
	return names
}

// group compiles and (every element) or or (any element).
func (c *compiler) group(s *Spec, name string, v any, path string, depth int) (node, []byte, error) {
	list := asList(v)
	if len(list) == 0 {
		return node{}, nil, &Error{Path: path, Reason: "an empty group; give at least one filter"}
	}
	if depth+1 > MaxDepth {
		return node{}, nil, &Error{Path: path, Reason: fmt.Sprintf("groups nest deeper than %d", MaxDepth), TooLarge: true}
	}
	type kid struct {
		n node
		k []byte
	}
	kids := make([]kid, 0, len(list))
	for i, e := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		n, k, err := c.element(s, e, p, depth+1)
		if err != nil {
			return node{}, nil, err
		}
		kids = append(kids, kid{n, k})
	}
	slices.SortFunc(kids, func(a, b kid) int { return bytes.Compare(a.k, b.k) })
	kids = slices.CompactFunc(kids, func(a, b kid) bool { return bytes.Equal(a.k, b.k) })
	key := []byte{'['}
	nodes := make([]node, len(kids))
	for i, kd := range kids {
		if i > 0 {
			key = append(key, ',')
		}
		key = append(key, kd.k...)
		nodes[i] = kd.n
	}
	key = append(key, ']')
	if len(nodes) == 1 {
		return nodes[0], key, nil
	}
	kind := nodeAll
	if name == groupOr {
		kind = nodeAny
	}
	return node{kind: kind, kids: nodes}, key, nil
}

// negation compiles not.
func (c *compiler) negation(s *Spec, v any, path string, depth int) (node, []byte, error) {
	if depth+1 > MaxDepth {
		return node{}, nil, &Error{Path: path, Reason: fmt.Sprintf("groups nest deeper than %d", MaxDepth), TooLarge: true}
	}
	n, k, err := c.element(s, v, path, depth+1)
	if err != nil {
		return node{}, nil, err
	}
	return node{kind: nodeNot, kids: []node{n}}, k, nil
}

// element compiles one filter object inside a group.
func (c *compiler) element(s *Spec, v any, path string, depth int) (node, []byte, error) {
	m, ok := asMap(v)
	if !ok {
		return node{}, nil, &Error{Path: path, Reason: "expected " + article(s.name) + " " + s.name + " object, got " + describe(v)}
	}
	n, k, err := c.object(s, m, path, depth)
	if err != nil {
		return node{}, nil, err
	}
	if n == nil {
		return node{}, nil, &Error{Path: path, Reason: "an empty filter; give at least one field"}
	}
	return *n, k, nil
}

// leaf compiles the leaf filter v on the payload field named field.
func (c *compiler) leaf(leaf *leafSpec, field string, v any, path string) (node, []byte, error) {
	m, ok := asMap(v)
	if !ok {
		return node{}, nil, &Error{Path: path, Reason: "expected " + article(leaf.name) + " " + leaf.name + " object such as {eq: ...}, got " + describe(v)}
	}
	var kids []node
	key := []byte{'{'}
	for _, name := range sortedKeys(m) {
		val := m[name]
		if val == nil {
			continue
		}
		p := join(path, name)
		o, ok := leaf.ops[name]
		if !ok {
			return node{}, nil, &Error{Path: path, Reason: fmt.Sprintf("unknown operator %q (%s has %s)", name, leaf.name, strings.Join(sortedKeys(leaf.ops), ", "))}
		}
		c.conds++
		if c.conds > MaxConditions {
			return node{}, nil, &Error{Path: p, Reason: fmt.Sprintf("more than %d conditions", MaxConditions), TooLarge: true}
		}
		cd := &cond{field: field, kind: leaf.kind, op: o}
		var k []byte
		var err error
		switch o {
		case opBetween:
			k, err = c.between(leaf, cd, val, p)
		case opIn, opNotIn:
			k, err = c.set(leaf, cd, val, p)
		default:
			var x operand
			if x, err = leaf.operand(val, p); err == nil {
				cd.str, cd.num, cd.t, cd.b = x.str, x.num, x.t, x.b
				k = leaf.appendOperand(nil, x)
			}
		}
		if err != nil {
			return node{}, nil, err
		}
		kids = append(kids, node{kind: nodeCond, cond: cd})
		key = appendMember(key, name, k)
	}
	key = append(key, '}')
	switch len(kids) {
	case 0:
		return node{}, nil, &Error{Path: path, Reason: "no operator; give at least one, such as eq"}
	case 1:
		return kids[0], key, nil
	}
	return node{kind: nodeAll, kids: kids}, key, nil
}

// between compiles between: [lo, hi], lo <= hi.
func (c *compiler) between(leaf *leafSpec, cd *cond, v any, path string) ([]byte, error) {
	list := asList(v)
	if len(list) != 2 {
		return nil, &Error{Path: path, Reason: fmt.Sprintf("needs exactly 2 values [lo, hi], got %d", len(list))}
	}
	lo, err := leaf.operand(list[0], path+"[0]")
	if err != nil {
		return nil, err
	}
	hi, err := leaf.operand(list[1], path+"[1]")
	if err != nil {
		return nil, err
	}
	if leaf.compare(lo, hi) > 0 {
		return nil, &Error{Path: path, Reason: fmt.Sprintf("lo is after hi in [%s, %s]", leaf.appendOperand(nil, lo), leaf.appendOperand(nil, hi))}
	}
	cd.num, cd.num2, cd.t, cd.t2 = lo.num, hi.num, lo.t, hi.t
	k := append(leaf.appendOperand([]byte{'['}, lo), ',')
	return append(leaf.appendOperand(k, hi), ']'), nil
}

// set compiles in and notIn: the operands sorted and deduplicated.
func (c *compiler) set(leaf *leafSpec, cd *cond, v any, path string) ([]byte, error) {
	list := asList(v)
	if len(list) == 0 {
		return nil, &Error{Path: path, Reason: "an empty list; give at least one value"}
	}
	c.elems += len(list)
	if c.elems > MaxListElements {
		return nil, &Error{Path: path, Reason: fmt.Sprintf("more than %d in/notIn values in total", MaxListElements), TooLarge: true}
	}
	xs := make([]operand, len(list))
	for i, e := range list {
		x, err := leaf.operand(e, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		xs[i] = x
	}
	slices.SortFunc(xs, leaf.compare)
	xs = slices.CompactFunc(xs, func(a, b operand) bool { return leaf.compare(a, b) == 0 })
	k := []byte{'['}
	for i, x := range xs {
		if i > 0 {
			k = append(k, ',')
		}
		k = leaf.appendOperand(k, x)
		switch leaf.kind {
		case kindString, kindEnum:
			cd.strs = append(cd.strs, x.str)
		case kindNumber:
			cd.nums = append(cd.nums, x.num)
		case kindTime:
			cd.ts = append(cd.ts, x.t)
		}
	}
	return append(k, ']'), nil
}

// operand is one checked operand value; only the field of the leaf's kind is set.
type operand struct {
	str string
	num float64
	t   instant
	b   bool
}

// operand checks v as one operand of leaf at path.
func (leaf *leafSpec) operand(v any, path string) (operand, error) {
	if v == nil {
		return operand{}, &Error{Path: path, Reason: "null is not a value to compare with"}
	}
	if !isPlain(v) {
		if p, err := viaJSON(v); err == nil {
			v = p
		}
	}
	wrong := func() error {
		return &Error{Path: path, Reason: fmt.Sprintf("expected %s %s, got %s", article(leaf.scalar), leaf.scalar, describe(v))}
	}
	switch leaf.kind {
	case kindString, kindEnum, kindTime:
		s, ok := v.(string)
		if !ok && leaf.scalar == "ID" {
			if n, isInt := integer(v); isInt {
				s, ok = strconv.FormatInt(n, 10), true
			}
		}
		if !ok {
			return operand{}, wrong()
		}
		if len(s) > MaxStringBytes {
			return operand{}, &Error{Path: path, Reason: fmt.Sprintf("a string of %d bytes, more than %d", len(s), MaxStringBytes), TooLarge: true}
		}
		if !utf8.ValidString(s) {
			return operand{}, &Error{Path: path, Reason: "a string that is not valid UTF-8"}
		}
		switch leaf.kind {
		case kindEnum:
			if leaf.enum.EnumValues.ForName(s) == nil {
				return operand{}, &Error{Path: path, Reason: fmt.Sprintf("%q is not a value of %s", s, leaf.scalar)}
			}
		case kindTime:
			t, ok := parseTime(s)
			if !ok {
				return operand{}, &Error{Path: path, Reason: fmt.Sprintf("%q is not an RFC 3339 time such as 2006-01-02T15:04:05Z", s)}
			}
			if y := t.time().Year(); y < 0 || y > 9999 {
				// Outside what RFC 3339 can write in UTC, so a Key could not hold it.
				return operand{}, &Error{Path: path, Reason: fmt.Sprintf("%q is outside the years 0000 to 9999 in UTC", s)}
			}
			return operand{t: t}, nil
		}
		return operand{str: s}, nil
	case kindNumber:
		x, ok := number(v)
		if !ok {
			return operand{}, wrong()
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return operand{}, &Error{Path: path, Reason: "not a finite number"}
		}
		if leaf.scalar == "Int" {
			if x != math.Trunc(x) {
				return operand{}, wrong()
			}
			// Check the integer as given, before float64 rounds 2^53+1 to 2^53.
			if i, isInt := exactInt(v); (isInt && (i > maxSafeInt || i < -maxSafeInt)) || math.Abs(x) > maxSafeInt {
				return operand{}, &Error{Path: path, Reason: fmt.Sprintf("an Int beyond ±%d cannot be compared exactly", maxSafeInt)}
			}
		}
		if x == 0 {
			x = 0 // no -0, so 0 and -0 have one key
		}
		return operand{num: x}, nil
	case kindBool:
		b, ok := v.(bool)
		if !ok {
			return operand{}, wrong()
		}
		return operand{b: b}, nil
	}
	return operand{}, wrong()
}

// compare orders two operands of the leaf's kind.
func (leaf *leafSpec) compare(a, b operand) int {
	switch leaf.kind {
	case kindNumber:
		switch {
		case a.num < b.num:
			return -1
		case a.num > b.num:
			return 1
		}
		return 0
	case kindTime:
		return a.t.cmp(b.t)
	case kindBool:
		switch {
		case a.b == b.b:
			return 0
		case !a.b:
			return -1
		}
		return 1
	}
	return strings.Compare(a.str, b.str)
}

// appendOperand appends x's canonical JSON encoding to b.
func (leaf *leafSpec) appendOperand(b []byte, x operand) []byte {
	switch leaf.kind {
	case kindNumber:
		if x.num == math.Trunc(x.num) && math.Abs(x.num) < 1e21 {
			return strconv.AppendFloat(b, x.num, 'f', -1, 64)
		}
		return strconv.AppendFloat(b, x.num, 'g', -1, 64)
	case kindTime:
		return appendQuoted(b, x.t.time().Format("2006-01-02T15:04:05.999999999Z07:00"))
	case kindBool:
		return strconv.AppendBool(b, x.b)
	}
	return appendQuoted(b, x.str)
}

// appendMember appends the member name:k to key, the canonical key of an object being built (it
// starts with '{'), after a comma unless it is the first.
func appendMember(key []byte, name string, k []byte) []byte {
	if len(key) > 1 {
		key = append(key, ',')
	}
	key = appendQuoted(key, name)
	key = append(key, ':')
	return append(key, k...)
}

// appendQuoted appends s, valid UTF-8, as a JSON string: only ", \ and control characters
// are escaped, so every string has exactly one encoding.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// isPlain reports whether v is one of the types a coerced GraphQL value is made of.
func isPlain(v any) bool {
	switch v.(type) {
	case nil, string, bool, json.Number, map[string]any, []any,
		int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return true
	}
	return false
}

// asMap returns v as an input object.
func asMap(v any) (map[string]any, bool) {
	if !isPlain(v) {
		if p, err := viaJSON(v); err == nil {
			v = p
		}
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// asList returns v as a list; a single value is a list of one, as in GraphQL input coercion.
func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice {
		l := make([]any, rv.Len())
		for i := range l {
			l[i] = rv.Index(i).Interface()
		}
		return l
	}
	return []any{v}
}

// number returns v as a float64 when it is a number.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float32:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		x, err := strconv.ParseFloat(string(n), 64)
		return x, err == nil
	}
	return 0, false
}

// exactInt returns v as an int64 when it is an integer type or an integer json.Number,
// saturating at the int64 range beyond it.
func exactInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint:
		return saturate(uint64(n)), true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return saturate(n), true
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err == nil || errors.Is(err, strconv.ErrRange) { // ParseInt saturates on range errors
			return i, true
		}
	}
	return 0, false
}

func saturate(n uint64) int64 {
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}

// integer returns v as an int64 when it is a whole number within ±maxSafeInt.
func integer(v any) (int64, bool) {
	if i, ok := exactInt(v); ok {
		return i, i <= maxSafeInt && i >= -maxSafeInt
	}
	x, ok := number(v)
	if !ok || x != math.Trunc(x) || math.Abs(x) > maxSafeInt {
		return 0, false
	}
	return int64(x), true
}

// describe names v's JSON type for an error message, never echoing a long value.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	if _, ok := number(v); ok {
		return "a number"
	}
	if !isPlain(v) {
		if p, err := viaJSON(v); err == nil && isPlain(p) {
			return describe(p)
		}
	}
	return fmt.Sprintf("a %T", v)
}

func article(word string) string {
	if word != "" && strings.ContainsRune("AEIOU", rune(word[0])) {
		return "an"
	}
	return "a"
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
