package filter_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/internal/filter"
)

// TestInvalidFiltersRefused sends one filter for each reason Compile refuses, and checks the
// error: ErrInvalid, not ErrTooLarge, the path and the reason a client would read.
func TestInvalidFiltersRefused(t *testing.T) {
	s := spec(t, "ItemFilter")
	cases := []struct {
		filter string
		path   string
		reason string
	}{
		{`"name"`, "", "expected an input object, got a string"},
		{`[{"name":{"eq":"x"}}]`, "", "expected an input object, got a list"},
		{`{"name":{"eq":"x"}`, "", "not valid JSON"},
		{`{} {}`, "", "not valid JSON: data after the value"},
		{`{"nope":{"eq":"x"}}`, "", `unknown field "nope" (ItemFilter has at, count, done, id, mood, name, score, and, or, not)`},
		{`{"or":[{"name":{"eq":"x"}},{"nope":{"eq":"x"}}]}`, "or[1]", `unknown field "nope"`},
		{`{"name":{"lt":"x"}}`, "name", `unknown operator "lt" (StringFilter has beginsWith, contains, eq, in, ne, notContains, notIn)`},
		{`{"done":{"in":[true]}}`, "done", `unknown operator "in"`},
		{`{"name":"x"}`, "name", "expected a StringFilter object such as {eq: ...}, got a string"},
		{`{"name":{}}`, "name", "no operator"},
		{`{"name":{"eq":null}}`, "name", "no operator"},
		{`{"name":{"eq":1}}`, "name.eq", "expected a String, got a number"},
		{`{"name":{"in":["a",2]}}`, "name.in[1]", "expected a String, got a number"},
		{`{"name":{"contains":["a"]}}`, "name.contains", "expected a String, got a list"},
		{`{"id":{"eq":true}}`, "id.eq", "expected an ID, got a boolean"},
		{`{"count":{"eq":"1"}}`, "count.eq", "expected an Int, got a string"},
		{`{"count":{"eq":1.5}}`, "count.eq", "expected an Int, got a number"},
		{`{"count":{"eq":9007199254740993}}`, "count.eq", "an Int beyond ±9007199254740991 cannot be compared exactly"},
		{`{"count":{"eq":-9007199254740992}}`, "count.eq", "an Int beyond ±9007199254740991"},
		{`{"count":{"eq":9007199254740992.0}}`, "count.eq", "an Int beyond ±9007199254740991"},
		{`{"count":{"eq":1e300}}`, "count.eq", "an Int beyond ±9007199254740991"},
		{`{"score":{"gt":{"eq":1}}}`, "score.gt", "expected a Float, got an object"},
		{`{"done":{"eq":"true"}}`, "done.eq", "expected a Boolean, got a string"},
		{`{"mood":{"eq":"ANGRY"}}`, "mood.eq", `"ANGRY" is not a value of Mood`},
		{`{"mood":{"in":["SAD","happy"]}}`, "mood.in[1]", `"happy" is not a value of Mood`},
		{`{"at":{"eq":1709294400}}`, "at.eq", "expected a Time, got a number"},
		{`{"at":{"eq":"yesterday"}}`, "at.eq", `"yesterday" is not an RFC 3339 time`},
		{`{"at":{"eq":"2024-03-01"}}`, "at.eq", "not an RFC 3339 time"},
		{`{"at":{"eq":"2024-13-01T00:00:00Z"}}`, "at.eq", "not an RFC 3339 time"},
		{`{"at":{"eq":"0000-01-01T00:00:00+01:00"}}`, "at.eq", "outside the years 0000 to 9999 in UTC"},
		{`{"count":{"between":[1]}}`, "count.between", "needs exactly 2 values [lo, hi], got 1"},
		{`{"count":{"between":1}}`, "count.between", "needs exactly 2 values [lo, hi], got 1"},
		{`{"count":{"between":[1,2,3]}}`, "count.between", "needs exactly 2 values [lo, hi], got 3"},
		{`{"count":{"between":[5,1]}}`, "count.between", "lo is after hi in [5, 1]"},
		{`{"count":{"between":[1,null]}}`, "count.between[1]", "null is not a value to compare with"},
		{`{"at":{"between":["2024-01-01T00:00:00Z","2024-01-01T01:00:00+02:00"]}}`, "at.between",
			`lo is after hi in ["2024-01-01T00:00:00Z", "2023-12-31T23:00:00Z"]`},
		{`{"count":{"in":[]}}`, "count.in", "an empty list"},
		{`{"name":{"notIn":["a",null]}}`, "name.notIn[1]", "null is not a value to compare with"},
		{`{"and":[]}`, "and", "an empty group"},
		{`{"or":[]}`, "or", "an empty group"},
		{`{"and":[{}]}`, "and[0]", "an empty filter"},
		{`{"or":[{"name":{"eq":"x"}},{"name":null}]}`, "or[1]", "an empty filter"},
		{`{"and":["x"]}`, "and[0]", "expected an ItemFilter object, got a string"},
		{`{"and":[null]}`, "and[0]", "expected an ItemFilter object, got null"},
		{`{"not":{}}`, "not", "an empty filter"},
		{`{"not":[{"name":{"eq":"x"}}]}`, "not", "expected an ItemFilter object, got a list"},
		{`{"not":{"not":{"count":{"between":[2,1]}}}}`, "not.not.count.between", "lo is after hi"},
	}
	for _, c := range cases {
		f, err := s.CompileJSON([]byte(c.filter))
		checkRefused(t, c.filter, f, err, c.path, c.reason, false)
	}

	// Values JSON cannot carry, given as Go values.
	goCases := []struct {
		value  map[string]any
		path   string
		reason string
	}{
		{map[string]any{"name": map[string]any{"eq": "\xff"}}, "name.eq", "not valid UTF-8"},
		{map[string]any{"score": map[string]any{"eq": math.NaN()}}, "score.eq", "not a finite number"},
		{map[string]any{"score": map[string]any{"lt": math.Inf(1)}}, "score.lt", "not a finite number"},
		{map[string]any{"name": map[string]any{"eq": make(chan int)}}, "name.eq", "expected a String, got a chan int"},
		{map[string]any{"count": map[string]any{"eq": json.Number("x")}}, "count.eq", "expected an Int"},
	}
	for _, c := range goCases {
		f, err := s.Compile(c.value)
		checkRefused(t, fmt.Sprintf("%#v", c.value), f, err, c.path, c.reason, false)
	}
	if _, err := s.Compile(make(chan int)); !errors.Is(err, filter.ErrInvalid) {
		t.Errorf("Compile(chan) = %v, want ErrInvalid", err)
	}
	if _, err := s.Compile("x"); !errors.Is(err, filter.ErrInvalid) {
		t.Errorf(`Compile("x") = %v, want ErrInvalid`, err)
	}
}

func checkRefused(t *testing.T, input string, f *filter.Filter, err error, path, reason string, tooLarge bool) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: compiled to %s, want refused", input, f.Key())
		return
	}
	var fe *filter.Error
	if !errors.As(err, &fe) || !errors.Is(err, filter.ErrInvalid) {
		t.Errorf("%s: error %v (%T) is not a *filter.Error wrapping ErrInvalid", input, err, err)
		return
	}
	if errors.Is(err, filter.ErrTooLarge) != tooLarge {
		t.Errorf("%s: errors.Is(ErrTooLarge) = %v, want %v", input, !tooLarge, tooLarge)
	}
	if fe.Path != path || !strings.Contains(fe.Reason, reason) {
		t.Errorf("%s: got path %q reason %q, want path %q reason containing %q", input, fe.Path, fe.Reason, path, reason)
	}
}

// TestBounds sends each bound, which compiles, and one more, which is refused as too large.
func TestBounds(t *testing.T) {
	s := spec(t, "ItemFilter")
	ok := func(name, js string) {
		t.Helper()
		if _, err := s.CompileJSON([]byte(js)); err != nil {
			t.Errorf("%s at the bound: %v", name, err)
		}
	}
	over := func(name, js, path, reason string) {
		t.Helper()
		f, err := s.CompileJSON([]byte(js))
		checkRefused(t, name+" over the bound", f, err, path, reason, true)
	}

	// MaxConditions: one condition per element of an and group, then one more.
	conds := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"count":{"ne":%d}}`, i)
		}
		return `{"and":[` + strings.Join(parts, ",") + `]}`
	}
	ok("conditions", conds(filter.MaxConditions))
	over("conditions", conds(filter.MaxConditions+1), fmt.Sprintf("and[%d].count.ne", filter.MaxConditions), "more than 64 conditions")
	// Operators of one leaf count one each.
	ops := `{"count":{"ne":1,"lt":9,"gt":0,"le":8},`
	ok("conditions in leaves", ops+conds(filter.MaxConditions - 4)[1:])
	// Keys are read in sorted order: the and group's 61 first, then count's gt, le, lt, ne.
	over("conditions in leaves", ops+conds(filter.MaxConditions - 3)[1:], "count.ne", "more than 64 conditions")

	// MaxDepth, for each group.
	nest := func(group string, depth int) string {
		js := `{"name":{"eq":"x"}}`
		for range depth {
			if group == "not" {
				js = `{"not":` + js + `}`
			} else {
				js = fmt.Sprintf(`{%q:[%s]}`, group, js)
			}
		}
		return js
	}
	for _, g := range []string{"and", "or", "not"} {
		ok(g+" depth", nest(g, filter.MaxDepth))
		path := strings.TrimPrefix(strings.Repeat("."+g+"[0]", filter.MaxDepth), ".") + "." + g
		if g == "not" {
			path = strings.TrimPrefix(strings.Repeat(".not", filter.MaxDepth+1), ".")
		}
		over(g+" depth", nest(g, filter.MaxDepth+1), path, "groups nest deeper than 5")
	}

	// MaxListElements, counted across every in and notIn list.
	lists := func(n int) string {
		a, b := make([]string, n/2), make([]string, n-n/2)
		for i := range a {
			a[i] = fmt.Sprintf(`"s%d"`, i)
		}
		for i := range b {
			b[i] = fmt.Sprint(i)
		}
		return fmt.Sprintf(`{"name":{"in":[%s]},"count":{"notIn":[%s]}}`, strings.Join(a, ","), strings.Join(b, ","))
	}
	ok("list elements", lists(filter.MaxListElements))
	over("list elements", lists(filter.MaxListElements+1), "name.in", "more than 100 in/notIn values in total")

	// MaxStringBytes, for a single operand and a list element (bytes, not characters).
	str := func(n int) string { return strings.Repeat("é", n/2) + strings.Repeat("x", n%2) }
	ok("string", fmt.Sprintf(`{"name":{"contains":%q}}`, str(filter.MaxStringBytes)))
	over("string", fmt.Sprintf(`{"name":{"contains":%q}}`, str(filter.MaxStringBytes+1)), "name.contains", "a string of 1025 bytes, more than 1024")
	ok("string in list", fmt.Sprintf(`{"id":{"in":["a",%q]}}`, str(filter.MaxStringBytes)))
	over("string in list", fmt.Sprintf(`{"id":{"in":["a",%q]}}`, str(filter.MaxStringBytes+1)), "id.in[1]", "more than 1024")

	// MaxKeyBytes: in elements sized so the canonical key is exactly the bound, then one more.
	keyOf := func(total int) string {
		const prefix = `{"name":{"in":[`
		const suffix = `]}}`
		var elems []string
		size := len(prefix) + len(suffix)
		for i := 0; ; i++ {
			s := fmt.Sprintf("%03d", i) + strings.Repeat("k", 997) // 1000 bytes, sorted by i
			need := len(s) + 2
			if i > 0 {
				need++
			}
			if size+need+3+1 > total { // room for a last element of at least 1 byte
				last := total - size - 2 - 1
				elems = append(elems, "~"+strings.Repeat("k", last-1))
				break
			}
			elems = append(elems, s)
			size += need
		}
		b, _ := json.Marshal(elems)
		return prefix + string(b[1:len(b)-1]) + suffix
	}
	atKey := keyOf(filter.MaxKeyBytes)
	f, err := s.CompileJSON([]byte(atKey))
	if err != nil {
		t.Errorf("key at the bound: %v", err)
	} else if len(f.Key()) != filter.MaxKeyBytes {
		t.Errorf("key of the bound test is %d bytes, want %d", len(f.Key()), filter.MaxKeyBytes)
	}
	over("key", keyOf(filter.MaxKeyBytes+1), "", "its canonical form is 65537 bytes, more than 65536")

	// MaxJSONBytes: the input as given, whitespace included.
	small := `{"name":{"eq":"x"}}`
	pad := func(n int) []byte { return []byte(small + strings.Repeat(" ", n-len(small))) }
	if _, err := s.CompileJSON(pad(filter.MaxJSONBytes)); err != nil {
		t.Errorf("JSON at the bound: %v", err)
	}
	f, err = s.CompileJSON(pad(filter.MaxJSONBytes + 1))
	checkRefused(t, "JSON over the bound", f, err, "", "more than 1048576 bytes of JSON", true)
}

// TestKeyCanonical checks that spellings of one filter share a key, and different filters do not.
func TestKeyCanonical(t *testing.T) {
	s := spec(t, "ItemFilter")
	same := [][]string{
		{`{"name":{"eq":"a"},"count":{"gt":1}}`, `{"count":{"gt":1},"name":{"eq":"a"}}`, ` { "count" : { "gt" : 1.0 } , "name" : { "eq" : "\u0061" } } `},
		{`{"count":{"lt":9,"gt":1}}`, `{"count":{"gt":1,"lt":9}}`, `{"count":{"gt":1e0,"lt":90e-1,"eq":null}}`},
		{`{"name":{"in":["b","a","b"]}}`, `{"name":{"in":["a","b"]}}`, `{"name":{"in":["b","a"]},"id":null}`},
		{`{"count":{"notIn":[3,1,2,1]}}`, `{"count":{"notIn":[1,2,3]}}`},
		{`{"score":{"eq":0}}`, `{"score":{"eq":-0}}`, `{"score":{"eq":-0.0}}`},
		{`{"at":{"eq":"2024-03-01T12:00:00Z"}}`, `{"at":{"eq":"2024-03-01T13:00:00+01:00"}}`, `{"at":{"eq":"2024-03-01T12:00:00.000000000Z"}}`},
		{`{"at":{"in":["2024-03-01T12:00:00Z","2024-03-01T14:00:00+02:00"]}}`, `{"at":{"in":["2024-03-01T12:00:00Z"]}}`},
		{`{"or":[{"name":{"eq":"a"}},{"count":{"eq":1}}]}`, `{"or":[{"count":{"eq":1}},{"name":{"eq":"a"}},{"count":{"eq":1.0}}]}`},
		{`{"and":[{"not":{"done":{"eq":true}}},{"mood":{"ne":"SAD"}}]}`, `{"and":[{"mood":{"ne":"SAD"}},{"not":{"done":{"eq":true}}}]}`},
		{`{"id":{"eq":"42"}}`, `{"id":{"eq":42}}`},
	}
	seen := map[string]string{}
	for _, group := range same {
		var key string
		for i, js := range group {
			k := compile(t, s, js).Key()
			if i == 0 {
				key = k
			} else if k != key {
				t.Errorf("key of %s = %s, want %s (the key of %s)", js, k, key, group[0])
			}
		}
		if prev, dup := seen[key]; dup {
			t.Errorf("%s and %s share key %s", prev, group[0], key)
		}
		seen[key] = group[0]
	}
	different := []string{
		`{"name":{"eq":"a"}}`, `{"name":{"ne":"a"}}`, `{"name":{"in":["a"]}}`, `{"name":{"eq":"A"}}`, `{"id":{"eq":"a"}}`,
		`{"not":{"name":{"eq":"a"}}}`, `{"and":[{"name":{"eq":"a"}},{"name":{"eq":"b"}}]}`, `{"or":[{"name":{"eq":"a"}},{"name":{"eq":"b"}}]}`,
		`{"count":{"between":[1,2]}}`, `{"count":{"between":[2,2]}}`, `{"count":{"in":[1,2]}}`, `{"score":{"between":[1,2]}}`,
		`{"name":{"eq":"a\"b"}}`, `{"name":{"eq":"a\\\"b"}}`, `{"name":{"eq":"a\u0000"}}`, `{"name":{"eq":"a"},"not":{"name":{"eq":"b"}}}`,
	}
	for _, js := range different {
		k := compile(t, s, js).Key()
		if prev, dup := seen[k]; dup {
			t.Errorf("%s and %s share key %s", prev, js, k)
		}
		seen[k] = js
	}

	// The exact form, for whoever stores it.
	got := compile(t, s, `{"or":[{"score":{"gt":2.50}},{"mood":{"in":["SAD","CALM"]}}],"name":{"beginsWith":"G\n"},"at":{"ge":"2024-03-01T13:00:00.5+01:00"}}`).Key()
	const want = `{"at":{"ge":"2024-03-01T12:00:00.5Z"},"name":{"beginsWith":"G\u000a"},"or":[{"mood":{"in":["CALM","SAD"]}},{"score":{"gt":2.5}}]}`
	if got != want {
		t.Errorf("key =\n%s\nwant\n%s", got, want)
	}

	// Every key is valid JSON, compiles back to itself and holds the same strings.
	for k := range seen {
		if !json.Valid([]byte(k)) {
			t.Errorf("key %s is not valid JSON", k)
		}
		if again := compile(t, s, k).Key(); again != k {
			t.Errorf("key %s compiles to key %s", k, again)
		}
	}
	var v struct{ Name struct{ Eq string } }
	if err := json.Unmarshal([]byte(compile(t, s, `{"name":{"eq":"a\u0000\u001f\"\\é😀"}}`).Key()), &v); err != nil || v.Name.Eq != "a\x00\x1f\"\\é😀" {
		t.Errorf("key string round trip: %q, %v", v.Name.Eq, err)
	}
}

// FuzzCompileJSON: any input either is refused with ErrInvalid or compiles to a filter whose
// key is bounded, compiles back to itself, and matches as the filter does.
func FuzzCompileJSON(f *testing.F) {
	for _, seed := range []string{
		`{"name":{"eq":"x"}}`, compound, `null`, `{}`, `[]`, `{"and":[{"or":[{"not":{"count":{"between":[1,2]}}}]}]}`,
		`{"at":{"in":["2024-03-01T13:00:00+01:00","9999-12-31T23:59:59Z"]}}`, `{"mood":{"notIn":["SAD"]},"done":{"ne":false}}`,
		`{"score":{"eq":1e308}}`, `{"id":{"eq":12}}`, `{"name":{"in":"x"}}`,
	} {
		f.Add([]byte(seed))
	}
	s := spec(f, "ItemFilter")
	docs := []*filter.Doc{doc(f, item), doc(f, `{}`), doc(f, `{"name":"x","count":1,"score":1e308,"at":"9999-12-31T23:59:59Z","mood":"SAD","done":false,"id":"12"}`)}
	f.Fuzz(func(t *testing.T, data []byte) {
		flt, err := s.CompileJSON(data)
		if err != nil {
			if !errors.Is(err, filter.ErrInvalid) {
				t.Fatalf("CompileJSON(%q) = %v, want ErrInvalid", data, err)
			}
			return
		}
		if flt == nil {
			return
		}
		if len(flt.Key()) > filter.MaxKeyBytes {
			t.Fatalf("key of %q is %d bytes", data, len(flt.Key()))
		}
		again, err := s.CompileJSON([]byte(flt.Key()))
		if err != nil || again.Key() != flt.Key() {
			t.Fatalf("key %s of %q compiles to %v, %v", flt.Key(), data, again.Key(), err)
		}
		for _, d := range docs {
			if flt.Match(d) != again.Match(d) {
				t.Fatalf("filter %q and its key %s disagree", data, flt.Key())
			}
		}
	})
}
