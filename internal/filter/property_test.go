package filter_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/realtime-gql/lambdaws/internal/filter"
)

// TestMain runs the property tests 1,000 times each unless -rapid.checks says otherwise.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set && os.Getenv("RAPID_CHECKS") == "" {
		if err := flag.Set("rapid.checks", "1000"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// fieldKinds are ItemFilter's fields, as the reference evaluator compares them.
var fieldKinds = map[string]string{
	"name": "string", "id": "id", "mood": "enum", "count": "int", "score": "float", "at": "time", "done": "bool",
}

var fieldNames = []string{"at", "count", "done", "id", "mood", "name", "score"}

var kindOps = map[string][]string{
	"string": {"eq", "ne", "in", "notIn", "beginsWith", "contains", "notContains"},
	"id":     {"eq", "ne", "in", "notIn", "beginsWith", "contains", "notContains"},
	"enum":   {"eq", "ne", "in", "notIn"},
	"int":    {"eq", "ne", "lt", "le", "gt", "ge", "between", "in", "notIn"},
	"float":  {"eq", "ne", "lt", "le", "gt", "ge", "between", "in", "notIn"},
	"time":   {"eq", "ne", "lt", "le", "gt", "ge", "between", "in", "notIn"},
	"bool":   {"eq", "ne"},
}

// Small pools, so that equal values, prefixes and boundaries come up often.
var (
	strPool   = []string{"", "a", "ab", "b", "ba", "abc", "é", "aé"}
	idPool    = []string{"1", "12", "a1", "2"}
	moodPool  = []string{"HAPPY", "SAD", "CALM"}
	intPool   = []int64{-2, -1, 0, 1, 2, 3}
	floatPool = []float64{-1.5, 0, 0.5, 1, 2.5, 3}
	t0        = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	timePool  = []time.Time{t0, t0.Add(time.Nanosecond), t0.Add(time.Second), t0.Add(-time.Hour), t0.Add(-500 * time.Millisecond)}
	zones     = []*time.Location{time.UTC, time.FixedZone("", 2*3600), time.FixedZone("", -5*3600), time.FixedZone("", 5*3600+1800)}
)

// genTime writes an instant of the pool in some zone.
func genTime(t *rapid.T, label string) string {
	tm := rapid.SampledFrom(timePool).Draw(t, label)
	return tm.In(rapid.SampledFrom(zones).Draw(t, label+"Zone")).Format(time.RFC3339Nano)
}

// genNumber writes n as one of the Go types a coerced value may hold.
func genNumber(t *rapid.T, n float64, label string) any {
	forms := []any{n, json.Number(strconv.FormatFloat(n, 'g', -1, 64)), json.Number(strconv.FormatFloat(n, 'e', 3, 64))}
	if n == float64(int64(n)) {
		forms = append(forms, int64(n), int(n), json.Number(strconv.FormatFloat(n, 'f', 1, 64)))
	}
	return rapid.SampledFrom(forms).Draw(t, label)
}

// genOperand draws one operand of the given field kind.
func genOperand(t *rapid.T, kind, label string) any {
	switch kind {
	case "string":
		return rapid.SampledFrom(strPool).Draw(t, label)
	case "id":
		id := rapid.SampledFrom(idPool).Draw(t, label)
		if n, err := strconv.ParseInt(id, 10, 64); err == nil && rapid.Bool().Draw(t, label+"AsInt") {
			return n // an ID given as an Int literal
		}
		return id
	case "enum":
		return rapid.SampledFrom(moodPool).Draw(t, label)
	case "int":
		return genNumber(t, float64(rapid.SampledFrom(intPool).Draw(t, label)), label+"Form")
	case "float":
		return genNumber(t, rapid.SampledFrom(floatPool).Draw(t, label), label+"Form")
	case "time":
		return genTime(t, label)
	default:
		return rapid.Bool().Draw(t, label)
	}
}

// operandLess orders two operands of a kind, to draw between's [lo, hi].
func operandLess(kind string, a, b any) bool {
	switch kind {
	case "int", "float":
		return refNumber(a) < refNumber(b)
	case "time":
		return refTime(a.(string)).Before(refTime(b.(string)))
	}
	return false
}

// genFilter draws a valid filter object at depth, spending from budget (conditions left).
func genFilter(t *rapid.T, depth int, budget *int) map[string]any {
	m := map[string]any{}
	n := rapid.IntRange(1, 3).Draw(t, "entries")
	for i := 0; i < n && *budget > 0; i++ {
		choices := fieldNames
		if depth < 3 {
			choices = append(append([]string{}, fieldNames...), "and", "or", "not")
		}
		name := rapid.SampledFrom(choices).Draw(t, "field")
		switch name {
		case "and", "or":
			elems := make([]any, rapid.IntRange(1, 3).Draw(t, "groupSize"))
			for j := range elems {
				elems[j] = genFilter(t, depth+1, budget)
			}
			m[name] = elems
		case "not":
			m[name] = genFilter(t, depth+1, budget)
		default:
			m[name] = genLeaf(t, fieldKinds[name], budget)
		}
	}
	if len(m) == 0 { // budget spent: one more condition keeps the object non-empty
		m["done"] = map[string]any{"ne": false}
	}
	return m
}

func genLeaf(t *rapid.T, kind string, budget *int) map[string]any {
	leaf := map[string]any{}
	for range rapid.IntRange(1, 2).Draw(t, "ops") {
		op := rapid.SampledFrom(kindOps[kind]).Draw(t, "op")
		*budget--
		switch op {
		case "in", "notIn":
			list := make([]any, rapid.IntRange(1, 3).Draw(t, "listSize"))
			for i := range list {
				list[i] = genOperand(t, kind, "elem")
			}
			leaf[op] = list
		case "between":
			lo, hi := genOperand(t, kind, "lo"), genOperand(t, kind, "hi")
			if operandLess(kind, hi, lo) {
				lo, hi = hi, lo
			}
			leaf[op] = []any{lo, hi}
		default:
			leaf[op] = genOperand(t, kind, "operand")
		}
	}
	return leaf
}

// genPayload draws an Item-like payload: each field missing, null, of its kind or of another.
func genPayload(t *rapid.T) []byte {
	p := map[string]any{}
	for _, name := range fieldNames {
		kind := fieldKinds[name]
		switch rapid.IntRange(0, 5).Draw(t, name+"Shape") {
		case 0: // missing
		case 1:
			p[name] = nil
		case 2: // another JSON type, or a string that is no time
			p[name] = rapid.SampledFrom([]any{"2024-03-01", "x", 1.0, true, []any{"a"}, map[string]any{"eq": "a"}}).Draw(t, name+"Other")
		default:
			v := genOperand(t, kind, name)
			if kind == "id" {
				v = fmt.Sprint(v) // IDs are strings in payloads
			}
			p[name] = v
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("marshal payload: %v", err)
	}
	return b
}

// refMatch is the reference evaluator: the semantics written as plainly as possible, over
// the filter as given and the payload decoded into map[string]any.
func refMatch(f map[string]any, p map[string]any) bool {
	for name, v := range f {
		if v == nil {
			continue
		}
		switch name {
		case "and":
			for _, e := range v.([]any) {
				if !refMatch(e.(map[string]any), p) {
					return false
				}
			}
		case "or":
			some := false
			for _, e := range v.([]any) {
				if refMatch(e.(map[string]any), p) {
					some = true
				}
			}
			if !some {
				return false
			}
		case "not":
			if refMatch(v.(map[string]any), p) {
				return false
			}
		default:
			for op, operand := range v.(map[string]any) {
				if operand != nil && !refCond(fieldKinds[name], op, operand, p[name]) {
					return false
				}
			}
		}
	}
	return true
}

// refCond applies one operator. A value that is missing, null or of another type satisfies
// only ne, notIn and notContains.
func refCond(kind, op string, operand, value any) bool {
	absent := op == "ne" || op == "notIn" || op == "notContains"
	switch kind {
	case "string", "id", "enum":
		s, ok := value.(string)
		if !ok {
			return absent
		}
		switch op {
		case "eq":
			return s == refString(operand)
		case "ne":
			return s != refString(operand)
		case "in", "notIn":
			found := false
			for _, e := range operand.([]any) {
				if s == refString(e) {
					found = true
				}
			}
			return found == (op == "in")
		case "beginsWith":
			return strings.HasPrefix(s, refString(operand))
		case "contains":
			return strings.Contains(s, refString(operand))
		case "notContains":
			return !strings.Contains(s, refString(operand))
		}
	case "int", "float":
		n, ok := value.(json.Number)
		if !ok {
			return absent
		}
		x := refNumber(n)
		switch op {
		case "eq":
			return x == refNumber(operand)
		case "ne":
			return x != refNumber(operand)
		case "lt":
			return x < refNumber(operand)
		case "le":
			return x <= refNumber(operand)
		case "gt":
			return x > refNumber(operand)
		case "ge":
			return x >= refNumber(operand)
		case "between":
			l := operand.([]any)
			return refNumber(l[0]) <= x && x <= refNumber(l[1])
		case "in", "notIn":
			found := false
			for _, e := range operand.([]any) {
				if x == refNumber(e) {
					found = true
				}
			}
			return found == (op == "in")
		}
	case "time":
		s, ok := value.(string)
		if !ok {
			return absent
		}
		x, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return absent
		}
		switch op {
		case "eq":
			return x.Equal(refTime(operand.(string)))
		case "ne":
			return !x.Equal(refTime(operand.(string)))
		case "lt":
			return x.Before(refTime(operand.(string)))
		case "le":
			return !x.After(refTime(operand.(string)))
		case "gt":
			return x.After(refTime(operand.(string)))
		case "ge":
			return !x.Before(refTime(operand.(string)))
		case "between":
			l := operand.([]any)
			return !x.Before(refTime(l[0].(string))) && !x.After(refTime(l[1].(string)))
		case "in", "notIn":
			found := false
			for _, e := range operand.([]any) {
				if x.Equal(refTime(e.(string))) {
					found = true
				}
			}
			return found == (op == "in")
		}
	case "bool":
		b, ok := value.(bool)
		if !ok {
			return absent
		}
		if op == "eq" {
			return b == operand.(bool)
		}
		return b != operand.(bool)
	}
	panic("reference: unknown " + kind + " operator " + op)
}

func refString(v any) string {
	if n, ok := v.(int64); ok {
		return strconv.FormatInt(n, 10)
	}
	return v.(string)
}

func refNumber(v any) float64 {
	switch n := v.(type) {
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case float64:
		return n
	case json.Number:
		x, _ := strconv.ParseFloat(string(n), 64)
		return x
	}
	panic(fmt.Sprintf("reference: %T is not a number", v))
}

func refTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func decodePayload(t *rapid.T, b []byte) map[string]any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var p map[string]any
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	return p
}

// TestMatchAgreesWithReference compares Match with refMatch on random filters and payloads.
func TestMatchAgreesWithReference(t *testing.T) {
	s := spec(t, "ItemFilter")
	var matched, total int
	rapid.Check(t, func(t *rapid.T) {
		budget := 24
		fv := genFilter(t, 0, &budget)
		f, err := s.Compile(fv)
		if err != nil {
			t.Fatalf("Compile(%v): %v", fv, err)
		}
		for range 16 {
			pb := genPayload(t)
			d, err := filter.NewDoc(pb)
			if err != nil {
				t.Fatalf("NewDoc(%s): %v", pb, err)
			}
			got, want := f.Match(d), refMatch(fv, decodePayload(t, pb))
			if got != want {
				t.Fatalf("filter %s on %s: Match = %v, reference = %v", f.Key(), pb, got, want)
			}
			total++
			if got {
				matched++
			}
		}
	})
	// Both outcomes must be common, or the comparison proves little.
	if matched < total/20 || matched > total-total/20 {
		t.Errorf("%d of %d random payloads matched; the generators are skewed", matched, total)
	}
	t.Logf("%d of %d payloads matched", matched, total)
}

// vary writes the filter v (of field kind, at an operator or group) differently but
// equivalently: lists shuffled (in and notIn with a duplicate), numbers in other Go types and spellings,
// times in other zones, nulls added.
func vary(t *rapid.T, v any, kind, op string) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			switch {
			case kind != "": // a leaf: k is an operator
				out[k] = vary(t, e, kind, k)
			case k == "and" || k == "or" || k == "not":
				out[k] = vary(t, e, "", k)
			default:
				out[k] = vary(t, e, fieldKinds[k], "")
			}
		}
		if rapid.Bool().Draw(t, "addNull") {
			if kind != "" {
				if nullOp := rapid.SampledFrom(kindOps[kind]).Draw(t, "nullOp"); out[nullOp] == nil {
					out[nullOp] = nil
				}
			} else if _, ok := out["not"]; !ok {
				out["not"] = nil
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = vary(t, e, kind, op)
		}
		if op == "between" {
			return out
		}
		if op == "in" || op == "notIn" { // (a duplicate in a group would double its conditions)
			out = append(out, out[rapid.IntRange(0, len(out)-1).Draw(t, "dup")])
		}
		return rapid.Permutation(out).Draw(t, "shuffle")
	case string:
		if kind == "time" {
			return refTime(v).In(rapid.SampledFrom(zones).Draw(t, "zone")).Format(time.RFC3339Nano)
		}
		return v
	case int, int64, float64, json.Number:
		if kind == "id" {
			return v
		}
		return genNumber(t, refNumber(v), "form")
	}
	return v
}

// encode writes v as JSON with object keys in a random order.
func encode(t *rapid.T, b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		b.WriteByte('{')
		for i, k := range rapid.Permutation(sortStrings(keys)).Draw(t, "keyOrder") {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			encode(t, b, v[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			encode(t, b, e)
		}
		b.WriteByte(']')
	default:
		eb, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %v: %v", v, err)
		}
		b.Write(eb)
	}
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// TestKeyProperties: an equivalent spelling of a filter, as Go values or as JSON with keys
// in any order, has the same key; a key compiles back to itself and to a filter that
// matches exactly as the original does.
func TestKeyProperties(t *testing.T) {
	s := spec(t, "ItemFilter")
	rapid.Check(t, func(t *rapid.T) {
		budget := 24
		fv := genFilter(t, 0, &budget)
		f, err := s.Compile(fv)
		if err != nil {
			t.Fatalf("Compile(%v): %v", fv, err)
		}
		v := vary(t, fv, "", "")
		fromValue, err := s.Compile(v)
		if err != nil {
			t.Fatalf("Compile(variant %v): %v", v, err)
		}
		var js bytes.Buffer
		encode(t, &js, v)
		fromJSON, err := s.CompileJSON(js.Bytes())
		if err != nil {
			t.Fatalf("CompileJSON(%s): %v", js.Bytes(), err)
		}
		fromKey, err := s.CompileJSON([]byte(f.Key()))
		if err != nil {
			t.Fatalf("CompileJSON(key %s): %v", f.Key(), err)
		}
		for what, g := range map[string]*filter.Filter{"variant": fromValue, "variant as JSON " + js.String(): fromJSON, "key": fromKey} {
			if g.Key() != f.Key() {
				t.Fatalf("key of %s = %s, want %s", what, g.Key(), f.Key())
			}
		}
		for range 8 {
			pb := genPayload(t)
			d, err := filter.NewDoc(pb)
			if err != nil {
				t.Fatal(err)
			}
			if fromKey.Match(d) != f.Match(d) || fromJSON.Match(d) != f.Match(d) {
				t.Fatalf("filter %s and its equivalents disagree on %s", f.Key(), pb)
			}
		}
	})
}
