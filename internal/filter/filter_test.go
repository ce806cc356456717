package filter_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/realtime-gql/lambdaws/internal/filter"
)

// testSchema holds the example's filter inputs verbatim (issue 8) and ItemFilter, which
// filters one field of every kind.
const testSchema = `
scalar Time
enum Mood { HAPPY SAD CALM }

input StringFilter { eq: String, ne: String, in: [String!], notIn: [String!], beginsWith: String, contains: String, notContains: String }
input IntFilter { eq: Int, ne: Int, lt: Int, le: Int, gt: Int, ge: Int, between: [Int!], in: [Int!], notIn: [Int!] }
input MessageFilter { author: StringFilter, text: StringFilter, and: [MessageFilter!], or: [MessageFilter!], not: MessageFilter }
input AnnouncementFilter { priority: IntFilter, text: StringFilter, and: [AnnouncementFilter!], or: [AnnouncementFilter!], not: AnnouncementFilter }

input IDFilter { eq: ID, ne: ID, in: [ID!], notIn: [ID!], beginsWith: ID, contains: ID, notContains: ID }
input FloatFilter { eq: Float, ne: Float, lt: Float, le: Float, gt: Float, ge: Float, between: [Float!], in: [Float!], notIn: [Float!] }
input TimeFilter { eq: Time, ne: Time, lt: Time, le: Time, gt: Time, ge: Time, between: [Time!], in: [Time!], notIn: [Time!] }
input BooleanFilter { eq: Boolean, ne: Boolean }
input MoodFilter { eq: Mood, ne: Mood, in: [Mood!], notIn: [Mood!] }
input ItemFilter {
  id: IDFilter, name: StringFilter, count: IntFilter, score: FloatFilter, at: TimeFilter, done: BooleanFilter, mood: MoodFilter
  and: [ItemFilter!], or: [ItemFilter!], not: ItemFilter
}

type Message { id: ID!, roomId: ID!, author: String!, text: String!, createdAt: Time!, editedAt: Time }
type Announcement { id: ID!, roomId: ID!, text: String!, priority: Int!, at: Time! }
type Item { id: ID!, name: String!, count: Int!, score: Float!, at: Time, done: Boolean!, mood: Mood! }

type Query { item: Item }
type Subscription {
  messageAdded(roomId: ID!, filter: MessageFilter): Message!
  announcement(roomId: ID!, filter: AnnouncementFilter): Announcement!
  item(filter: ItemFilter): Item!
}
`

func loadSchema(t testing.TB, sdl string) *ast.Schema {
	t.Helper()
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "test.graphqls", Input: sdl})
	if err != nil {
		t.Fatalf("load schema: %v", err)
	}
	return s
}

func spec(t testing.TB, name string) *filter.Spec {
	t.Helper()
	s, err := filter.SpecFor(loadSchema(t, testSchema), name)
	if err != nil {
		t.Fatalf("SpecFor(%s): %v", name, err)
	}
	return s
}

func compile(t testing.TB, s *filter.Spec, js string) *filter.Filter {
	t.Helper()
	f, err := s.CompileJSON([]byte(js))
	if err != nil {
		t.Fatalf("CompileJSON(%s): %v", js, err)
	}
	return f
}

func doc(t testing.TB, js string) *filter.Doc {
	t.Helper()
	d, err := filter.NewDoc(json.RawMessage(js))
	if err != nil {
		t.Fatalf("NewDoc(%s): %v", js, err)
	}
	return d
}

// item is a payload of type Item.
const item = `{"id":"i-42","name":"Grace Hopper","count":7,"score":2.5,"at":"2024-03-01T12:00:00Z","done":true,"mood":"HAPPY"}`

// TestOperators checks every operator of every kind, each with cases that hold and that do not.
func TestOperators(t *testing.T) {
	s := spec(t, "ItemFilter")
	d := doc(t, item)
	cases := []struct {
		filter string
		want   bool
	}{
		// strings
		{`{"name":{"eq":"Grace Hopper"}}`, true},
		{`{"name":{"eq":"grace hopper"}}`, false}, // case-sensitive
		{`{"name":{"ne":"Ada"}}`, true},
		{`{"name":{"ne":"Grace Hopper"}}`, false},
		{`{"name":{"in":["Ada","Grace Hopper"]}}`, true},
		{`{"name":{"in":["Ada","Grace"]}}`, false},
		{`{"name":{"in":"Grace Hopper"}}`, true}, // a single value is a list of one
		{`{"name":{"notIn":["Ada","Grace"]}}`, true},
		{`{"name":{"notIn":["Grace Hopper"]}}`, false},
		{`{"name":{"beginsWith":"Grace"}}`, true},
		{`{"name":{"beginsWith":"Hopper"}}`, false},
		{`{"name":{"beginsWith":""}}`, true},
		{`{"name":{"contains":"ce Ho"}}`, true},
		{`{"name":{"contains":"Ada"}}`, false},
		{`{"name":{"notContains":"Ada"}}`, true},
		{`{"name":{"notContains":"Hop"}}`, false},
		// ID: strings, and an integer operand is its decimal string
		{`{"id":{"eq":"i-42"}}`, true},
		{`{"id":{"beginsWith":"i-"}}`, true},
		{`{"id":{"contains":"43"}}`, false},
		{`{"id":{"in":["i-1","i-42"]}}`, true},
		// Int
		{`{"count":{"eq":7}}`, true},
		{`{"count":{"eq":8}}`, false},
		{`{"count":{"ne":8}}`, true},
		{`{"count":{"ne":7}}`, false},
		{`{"count":{"lt":8}}`, true},
		{`{"count":{"lt":7}}`, false},
		{`{"count":{"le":7}}`, true},
		{`{"count":{"le":6}}`, false},
		{`{"count":{"gt":6}}`, true},
		{`{"count":{"gt":7}}`, false},
		{`{"count":{"ge":7}}`, true},
		{`{"count":{"ge":8}}`, false},
		{`{"count":{"between":[7,9]}}`, true}, // inclusive at lo
		{`{"count":{"between":[1,7]}}`, true}, // and at hi
		{`{"count":{"between":[7,7]}}`, true},
		{`{"count":{"between":[8,9]}}`, false},
		{`{"count":{"between":[1,6]}}`, false},
		{`{"count":{"in":[1,7,9]}}`, true},
		{`{"count":{"in":[1,9]}}`, false},
		{`{"count":{"notIn":[1,9]}}`, true},
		{`{"count":{"notIn":[7]}}`, false},
		{`{"count":{"gt":-3}}`, true},
		// Float
		{`{"score":{"eq":2.5}}`, true},
		{`{"score":{"eq":2.50000001}}`, false},
		{`{"score":{"ne":2}}`, true},
		{`{"score":{"lt":2.6}}`, true},
		{`{"score":{"lt":2.5}}`, false},
		{`{"score":{"le":2.5}}`, true},
		{`{"score":{"gt":2.4}}`, true},
		{`{"score":{"ge":2.51}}`, false},
		{`{"score":{"between":[2,3]}}`, true},
		{`{"score":{"between":[-1.5,2.4]}}`, false},
		{`{"score":{"in":[2.5,1e3]}}`, true},
		{`{"score":{"notIn":[25e-1]}}`, false},
		// Time
		{`{"at":{"eq":"2024-03-01T12:00:00Z"}}`, true},
		{`{"at":{"eq":"2024-03-01T12:00:00.000000001Z"}}`, false},
		{`{"at":{"ne":"2024-03-01T12:00:01Z"}}`, true},
		{`{"at":{"ne":"2024-03-01T12:00:00Z"}}`, false},
		{`{"at":{"lt":"2024-03-01T12:00:00.5Z"}}`, true},
		{`{"at":{"lt":"2024-03-01T12:00:00Z"}}`, false},
		{`{"at":{"le":"2024-03-01T12:00:00Z"}}`, true},
		{`{"at":{"le":"2024-03-01T11:59:59.999Z"}}`, false},
		{`{"at":{"gt":"2023-12-31T23:59:59Z"}}`, true},
		{`{"at":{"gt":"2024-03-01T12:00:00Z"}}`, false},
		{`{"at":{"ge":"2024-03-01T12:00:00Z"}}`, true},
		{`{"at":{"ge":"2025-01-01T00:00:00Z"}}`, false},
		{`{"at":{"between":["2024-03-01T00:00:00Z","2024-03-02T00:00:00Z"]}}`, true},
		{`{"at":{"between":["2024-03-01T12:00:00Z","2024-03-01T12:00:00Z"]}}`, true},
		{`{"at":{"between":["2024-03-02T00:00:00Z","2024-03-03T00:00:00Z"]}}`, false},
		{`{"at":{"in":["2024-03-01T13:00:00+01:00","2020-01-01T00:00:00Z"]}}`, true},
		{`{"at":{"in":["2024-03-01T12:00:00+01:00"]}}`, false},
		{`{"at":{"notIn":["2020-01-01T00:00:00Z"]}}`, true},
		{`{"at":{"notIn":["2024-03-01T07:00:00-05:00"]}}`, false},
		// Boolean
		{`{"done":{"eq":true}}`, true},
		{`{"done":{"eq":false}}`, false},
		{`{"done":{"ne":false}}`, true},
		{`{"done":{"ne":true}}`, false},
		// enum
		{`{"mood":{"eq":"HAPPY"}}`, true},
		{`{"mood":{"eq":"SAD"}}`, false},
		{`{"mood":{"ne":"SAD"}}`, true},
		{`{"mood":{"ne":"HAPPY"}}`, false},
		{`{"mood":{"in":["SAD","HAPPY"]}}`, true},
		{`{"mood":{"in":["SAD","CALM"]}}`, false},
		{`{"mood":{"notIn":["SAD"]}}`, true},
		{`{"mood":{"notIn":["HAPPY"]}}`, false},
		// several operators on one field, several fields: all must hold
		{`{"count":{"gt":1,"lt":10}}`, true},
		{`{"count":{"gt":1,"lt":5}}`, false},
		{`{"count":{"gt":1},"name":{"beginsWith":"Grace"}}`, true},
		{`{"count":{"gt":1},"name":{"beginsWith":"Ada"}}`, false},
	}
	for _, c := range cases {
		f := compile(t, s, c.filter)
		if got := f.Match(d); got != c.want {
			t.Errorf("%s on %s = %v, want %v", c.filter, item, got, c.want)
		}
	}
}

// TestGroups checks and, or and not, alone and nested, on the example's MessageFilter.
func TestGroups(t *testing.T) {
	s := spec(t, "MessageFilter")
	ann := doc(t, `{"id":"1","roomId":"r","author":"ann","text":"hello world","createdAt":"2024-01-01T00:00:00Z"}`)
	bob := doc(t, `{"id":"2","roomId":"r","author":"bob","text":"bye","createdAt":"2024-01-01T00:00:00Z"}`)
	cases := []struct {
		filter   string
		ann, bob bool
	}{
		{`{"and":[{"author":{"eq":"ann"}},{"text":{"contains":"world"}}]}`, true, false},
		{`{"and":[{"author":{"eq":"ann"}},{"text":{"contains":"bye"}}]}`, false, false},
		{`{"and":{"author":{"eq":"bob"}}}`, false, true}, // a single element is a list of one
		{`{"or":[{"author":{"eq":"ann"}},{"text":{"eq":"bye"}}]}`, true, true},
		{`{"or":[{"author":{"eq":"carl"}},{"text":{"eq":"nope"}}]}`, false, false},
		{`{"not":{"author":{"eq":"ann"}}}`, false, true},
		{`{"not":{"not":{"author":{"eq":"ann"}}}}`, true, false},
		// fields and groups of one object combine with AND
		{`{"author":{"eq":"ann"},"or":[{"text":{"beginsWith":"hello"}},{"text":{"eq":"bye"}}]}`, true, false},
		{`{"author":{"ne":"ann"},"not":{"text":{"eq":"hello world"}}}`, false, true},
		// nesting: (author = ann AND NOT text contains "x") OR (author = bob AND (text = bye OR text = hi))
		{`{"or":[
			{"and":[{"author":{"eq":"ann"}},{"not":{"text":{"contains":"x"}}}]},
			{"and":[{"author":{"eq":"bob"}},{"or":[{"text":{"eq":"bye"}},{"text":{"eq":"hi"}}]}]}
		]}`, true, true},
		{`{"or":[
			{"and":[{"author":{"eq":"ann"}},{"not":{"text":{"contains":"o"}}}]},
			{"and":[{"author":{"eq":"bob"}},{"or":[{"text":{"eq":"hello"}},{"text":{"eq":"hi"}}]}]}
		]}`, false, false},
		// De Morgan: not(a or b) = not a and not b
		{`{"not":{"or":[{"author":{"eq":"ann"}},{"author":{"eq":"carl"}}]}}`, false, true},
		{`{"and":[{"not":{"author":{"eq":"ann"}}},{"not":{"author":{"eq":"carl"}}}]}`, false, true},
	}
	for _, c := range cases {
		f := compile(t, s, c.filter)
		if got := f.Match(ann); got != c.ann {
			t.Errorf("%s on ann = %v, want %v", c.filter, got, c.ann)
		}
		if got := f.Match(bob); got != c.bob {
			t.Errorf("%s on bob = %v, want %v", c.filter, got, c.bob)
		}
	}
}

// leafCases holds one condition of every operator of every kind, as (field, operator, operand).
var leafCases = []struct{ field, op, operand string }{
	{"name", "eq", `"x"`}, {"name", "ne", `"x"`}, {"name", "in", `["x"]`}, {"name", "notIn", `["x"]`},
	{"name", "beginsWith", `""`}, {"name", "contains", `""`}, {"name", "notContains", `"x"`},
	{"id", "eq", `"x"`}, {"id", "ne", `"x"`}, {"id", "in", `["x"]`}, {"id", "notIn", `["x"]`},
	{"id", "beginsWith", `"x"`}, {"id", "contains", `"x"`}, {"id", "notContains", `"x"`},
	{"count", "eq", `1`}, {"count", "ne", `1`}, {"count", "lt", `1`}, {"count", "le", `1`}, {"count", "gt", `1`},
	{"count", "ge", `1`}, {"count", "between", `[0,1]`}, {"count", "in", `[1]`}, {"count", "notIn", `[1]`},
	{"score", "eq", `1.5`}, {"score", "ne", `1.5`}, {"score", "lt", `1.5`}, {"score", "le", `1.5`}, {"score", "gt", `-1.5`},
	{"score", "ge", `1.5`}, {"score", "between", `[0,1.5]`}, {"score", "in", `[1.5]`}, {"score", "notIn", `[1.5]`},
	{"at", "eq", `"2024-01-01T00:00:00Z"`}, {"at", "ne", `"2024-01-01T00:00:00Z"`}, {"at", "lt", `"2024-01-01T00:00:00Z"`},
	{"at", "le", `"2024-01-01T00:00:00Z"`}, {"at", "gt", `"2024-01-01T00:00:00Z"`}, {"at", "ge", `"2024-01-01T00:00:00Z"`},
	{"at", "between", `["2024-01-01T00:00:00Z","2025-01-01T00:00:00Z"]`}, {"at", "in", `["2024-01-01T00:00:00Z"]`},
	{"at", "notIn", `["2024-01-01T00:00:00Z"]`},
	{"done", "eq", `true`}, {"done", "eq", `false`}, {"done", "ne", `true`}, {"done", "ne", `false`},
	{"mood", "eq", `"SAD"`}, {"mood", "ne", `"SAD"`}, {"mood", "in", `["SAD"]`}, {"mood", "notIn", `["SAD"]`},
}

// TestAbsentField checks the rule for a payload field that is missing, null or of another
// kind: exactly ne, notIn and notContains hold, whatever the operand (even beginsWith "").
func TestAbsentField(t *testing.T) {
	s := spec(t, "ItemFilter")
	for _, c := range leafCases {
		f := compile(t, s, fmt.Sprintf(`{%q:{%q:%s}}`, c.field, c.op, c.operand))
		want := c.op == "ne" || c.op == "notIn" || c.op == "notContains"
		payloads := []string{
			`{}`,
			fmt.Sprintf(`{%q:null}`, c.field),
			fmt.Sprintf(`{%q:{"eq":"x"}}`, c.field),
			fmt.Sprintf(`{%q:["x",1]}`, c.field),
			`null`,
		}
		switch c.field {
		case "name", "id", "mood":
			payloads = append(payloads, fmt.Sprintf(`{%q:1}`, c.field), fmt.Sprintf(`{%q:true}`, c.field))
		case "count", "score":
			payloads = append(payloads, fmt.Sprintf(`{%q:"1"}`, c.field), fmt.Sprintf(`{%q:false}`, c.field))
		case "at":
			payloads = append(payloads, fmt.Sprintf(`{%q:"yesterday"}`, c.field), fmt.Sprintf(`{%q:1704067200}`, c.field),
				fmt.Sprintf(`{%q:"2024-01-01"}`, c.field))
		case "done":
			payloads = append(payloads, fmt.Sprintf(`{%q:"true"}`, c.field), fmt.Sprintf(`{%q:1}`, c.field))
		}
		for _, p := range payloads {
			if got := f.Match(doc(t, p)); got != want {
				t.Errorf("%s.%s %s on %s = %v, want %v", c.field, c.op, c.operand, p, got, want)
			}
		}
		// and not of it is its exact negation
		nf := compile(t, s, fmt.Sprintf(`{"not":{%q:{%q:%s}}}`, c.field, c.op, c.operand))
		if got := nf.Match(doc(t, `{}`)); got != !want {
			t.Errorf("not %s.%s on {} = %v, want %v", c.field, c.op, got, !want)
		}
	}
}

// TestTimeZones compares instants written in different zones, in filters and in payloads.
func TestTimeZones(t *testing.T) {
	s := spec(t, "ItemFilter")
	cases := []struct {
		filter, at string
		want       bool
	}{
		{`{"at":{"eq":"2024-03-01T12:00:00Z"}}`, "2024-03-01T14:00:00+02:00", true},
		{`{"at":{"eq":"2024-03-01T14:00:00+02:00"}}`, "2024-03-01T07:00:00-05:00", true},
		{`{"at":{"eq":"2024-03-01T12:00:00+05:30"}}`, "2024-03-01T06:30:00Z", true},
		{`{"at":{"eq":"2024-03-01T12:00:00+05:30"}}`, "2024-03-01T12:00:00Z", false},
		{`{"at":{"lt":"2024-03-01T12:00:00+02:00"}}`, "2024-03-01T10:30:00Z", false}, // 12:30+02 later than 10:00Z
		{`{"at":{"lt":"2024-03-01T12:00:00-02:00"}}`, "2024-03-01T13:59:59Z", true},
		{`{"at":{"gt":"2024-03-01T00:30:00+01:00"}}`, "2024-02-29T23:45:00Z", true}, // across a date line
		{`{"at":{"between":["2024-03-01T00:00:00+14:00","2024-03-01T00:00:00-12:00"]}}`, "2024-02-29T12:00:00Z", true},
		{`{"at":{"between":["2024-03-01T00:00:00+14:00","2024-03-01T00:00:00-12:00"]}}`, "2024-03-01T12:00:00.000000001Z", false},
		{`{"at":{"in":["2024-03-01T12:00:00.123456789Z"]}}`, "2024-03-01T13:00:00.123456789+01:00", true},
		{`{"at":{"eq":"2024-03-01T12:00:00Z"}}`, "2024-03-01T12:00:00z", false}, // not an RFC 3339 time for Go: absent
	}
	for _, c := range cases {
		f := compile(t, s, c.filter)
		p := fmt.Sprintf(`{"at":%q}`, c.at)
		if got := f.Match(doc(t, p)); got != c.want {
			t.Errorf("%s on %s = %v, want %v", c.filter, p, got, c.want)
		}
	}
	// Equal instants in different zones are one filter.
	a := compile(t, s, `{"at":{"eq":"2024-03-01T14:00:00+02:00"}}`)
	b := compile(t, s, `{"at":{"eq":"2024-03-01T12:00:00.000Z"}}`)
	if a.Key() != b.Key() {
		t.Errorf("keys differ for one instant: %s and %s", a.Key(), b.Key())
	}
}

// TestNumberForms gives numbers as the Go types gqlparser, gqlgen and encoding/json produce.
func TestNumberForms(t *testing.T) {
	s := spec(t, "ItemFilter")
	forms := []any{7, int8(7), int32(7), int64(7), uint(7), uint64(7), float32(7), 7.0, json.Number("7"), json.Number("7.0"), json.Number("0.7e1")}
	d := doc(t, `{"count":7,"score":7.0}`)
	dFrac := doc(t, `{"count":7.0000,"score":70e-1}`)
	var key string
	for _, n := range forms {
		for _, field := range []string{"count", "score"} {
			f, err := s.Compile(map[string]any{field: map[string]any{"eq": n}})
			if err != nil {
				t.Fatalf("%s eq %T(%v): %v", field, n, n, err)
			}
			if !f.Match(d) || !f.Match(dFrac) {
				t.Errorf("%s eq %T(%v) does not match 7", field, n, n)
			}
			if field == "count" {
				if key == "" {
					key = f.Key()
				} else if f.Key() != key {
					t.Errorf("key of count eq %T(%v) = %s, want %s", n, n, f.Key(), key)
				}
			}
		}
	}
	if key != `{"count":{"eq":7}}` {
		t.Errorf("key = %s", key)
	}
	// lists of typed elements, and of mixed number types
	for _, v := range []any{[]any{int64(1), 7.0, json.Number("9")}, []int{1, 7, 9}, []float64{1, 7, 9}} {
		f, err := s.Compile(map[string]any{"count": map[string]any{"in": v}})
		if err != nil {
			t.Fatalf("in %#v: %v", v, err)
		}
		if !f.Match(d) || f.Key() != `{"count":{"in":[1,7,9]}}` {
			t.Errorf("in %#v: match %v key %s", v, f.Match(d), f.Key())
		}
	}
	// A Float operand may be an integer; an Int operand must be whole.
	if _, err := s.Compile(map[string]any{"score": map[string]any{"gt": int64(2)}}); err != nil {
		t.Errorf("Float gt 2: %v", err)
	}
	if _, err := s.Compile(map[string]any{"count": map[string]any{"gt": 2.5}}); !errors.Is(err, filter.ErrInvalid) {
		t.Errorf("Int gt 2.5: %v, want ErrInvalid", err)
	}
	// Payload numbers beyond float64 compare as ±Inf would.
	big := compile(t, s, `{"score":{"gt":1e308}}`)
	if !big.Match(doc(t, `{"score":1e400}`)) || big.Match(doc(t, `{"score":-1e400}`)) {
		t.Errorf("out-of-range payload numbers misordered")
	}
}

// TestNoFilter: null, a missing argument and an object of nulls are no filter, which matches all.
func TestNoFilter(t *testing.T) {
	s := spec(t, "ItemFilter")
	for _, v := range []any{nil, map[string]any{}, map[string]any{"name": nil, "and": nil}, json.RawMessage(`null`), json.RawMessage(`{}`)} {
		f, err := s.Compile(v)
		if err != nil || f != nil {
			t.Errorf("Compile(%#v) = %v, %v; want nil, nil", v, f, err)
		}
		if !f.Match(doc(t, item)) || !f.Match(nil) || f.Key() != "" {
			t.Errorf("nil filter: match %v, key %q", f.Match(doc(t, item)), f.Key())
		}
	}
	// Null operators are not given: the one non-null operator remains.
	f := compile(t, s, `{"name":{"eq":null,"ne":"x"},"or":null}`)
	if f.Key() != `{"name":{"ne":"x"}}` {
		t.Errorf("key = %s", f.Key())
	}
}

// TestCompileGQLParserValues compiles the argument values gqlparser gives for a parsed and
// validated subscription, from literals and from variables, as the subscribe path will.
func TestCompileGQLParserValues(t *testing.T) {
	schema := loadSchema(t, testSchema)
	s, err := filter.SpecFor(schema, "AnnouncementFilter")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckAgainst(schema.Types["Announcement"]); err != nil {
		t.Fatal(err)
	}
	const literal = `subscription { announcement(roomId: "r", filter: {priority: {ge: 2, in: [2, 3]}, or: [{text: {contains: "urgent"}}, {not: {priority: {between: [3, 5]}}}]}) { id } }`
	const withVars = `subscription($f: AnnouncementFilter) { announcement(roomId: "r", filter: $f) { id } }`
	var vars map[string]any
	dec := json.NewDecoder(strings.NewReader(`{"f":{"priority":{"in":[3,2],"ge":2},"or":[{"not":{"priority":{"between":[3,5]}}},{"text":{"contains":"urgent"}}]}}`))
	dec.UseNumber()
	if err := dec.Decode(&vars); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, q := range []string{literal, withVars} {
		query, errs := gqlparser.LoadQuery(schema, q)
		if errs != nil {
			t.Fatalf("LoadQuery: %v", errs)
		}
		field := query.Operations[0].SelectionSet[0].(*ast.Field)
		args := field.ArgumentMap(vars)
		f, err := s.Compile(args["filter"])
		if err != nil {
			t.Fatalf("Compile(%#v): %v", args["filter"], err)
		}
		keys = append(keys, f.Key())
		for p, want := range map[string]bool{
			`{"priority":2,"text":"x"}`:       true,  // not between 3 and 5
			`{"priority":3,"text":"urgent!"}`: true,  // contains urgent
			`{"priority":3,"text":"calm"}`:    false, // neither
			`{"priority":1,"text":"urgent"}`:  false, // below 2
			`{"priority":4,"text":"urgent"}`:  false, // not in [2,3]
		} {
			if got := f.Match(doc(t, p)); got != want {
				t.Errorf("%s on %s = %v, want %v", f.Key(), p, got, want)
			}
		}
	}
	if keys[0] != keys[1] {
		t.Errorf("literal and variables give different keys:\n%s\n%s", keys[0], keys[1])
	}
}

// TestCompileStruct reads a generated-model-like struct through its JSON encoding.
func TestCompileStruct(t *testing.T) {
	type stringFilter struct {
		Eq *string  `json:"eq"`
		In []string `json:"in"`
	}
	type messageFilter struct {
		Author *stringFilter `json:"author"`
		Text   *stringFilter `json:"text"`
		Not    any           `json:"not"`
	}
	ann := "ann"
	f, err := spec(t, "MessageFilter").Compile(&messageFilter{Author: &stringFilter{Eq: &ann}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Key() != `{"author":{"eq":"ann"}}` {
		t.Errorf("key = %s", f.Key())
	}
}

// TestNewDoc checks what NewDoc accepts.
func TestNewDoc(t *testing.T) {
	for _, p := range []string{``, `[]`, `"x"`, `1`, `{"a":}`, `{"a":1}x`} {
		if _, err := filter.NewDoc(json.RawMessage(p)); !errors.Is(err, filter.ErrPayload) {
			t.Errorf("NewDoc(%q) = %v, want ErrPayload", p, err)
		}
	}
	// Payload strings are read as encoding/json reads them: escapes, and U+FFFD for invalid UTF-8.
	s := spec(t, "ItemFilter")
	for _, c := range []struct{ payload, eq string }{
		{`{"name":"a\"b"}`, `a"b`}, {`{"name":"\u00e9\n"}`, "é\n"}, {"{\"name\":\"x\xffy\"}", "x\uFFFDy"}, {`{"name":"plain é"}`, "plain é"},
	} {
		f, err := s.Compile(map[string]any{"name": map[string]any{"eq": c.eq}})
		if err != nil {
			t.Fatal(err)
		}
		if !f.Match(doc(t, c.payload)) {
			t.Errorf("name eq %q does not match %s", c.eq, c.payload)
		}
	}

	// Many fields use the sorted lookup; each is still found.
	var b strings.Builder
	b.WriteString(`{`)
	for i := range 40 {
		fmt.Fprintf(&b, `"f%02d":%d,`, i, i)
	}
	b.WriteString(`"count":7}`)
	if !compile(t, s, `{"count":{"eq":7}}`).Match(doc(t, b.String())) {
		t.Error("count not found among 41 fields")
	}
	if compile(t, s, `{"count":{"eq":7}}`).Match(doc(t, `{"f00":1,"f01":2,"f02":3,"f03":4,"f04":5,"f05":6,"f06":7,"f07":8,"f08":9,"zz":7}`)) {
		t.Error("count found where there is none")
	}
}

// compound is a realistic filter: several fields, an or group and a not.
const compound = `{"name":{"beginsWith":"Grace"},"count":{"between":[1,10]},"or":[{"mood":{"in":["HAPPY","CALM"]}},{"score":{"gt":9}}],"not":{"at":{"lt":"2020-01-01T00:00:00Z"}},"id":{"notIn":["i-1","i-2","i-3"]},"done":{"eq":true}}`

// TestMatchAllocatesNothing measures allocations of Match over every operator and kind.
func TestMatchAllocatesNothing(t *testing.T) {
	s := spec(t, "ItemFilter")
	var filters []*filter.Filter
	for _, c := range leafCases {
		filters = append(filters, compile(t, s, fmt.Sprintf(`{%q:{%q:%s}}`, c.field, c.op, c.operand)))
	}
	filters = append(filters, compile(t, s, compound))
	docs := []*filter.Doc{doc(t, item), doc(t, `{}`), doc(t, `{"name":null,"count":"x","at":"nope"}`)}
	matched := 0
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range filters {
			for _, d := range docs {
				if f.Match(d) {
					matched++
				}
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times per run of %d matches, want 0", allocs, len(filters)*len(docs))
	}
	if matched == 0 {
		t.Error("nothing matched: the measurement proves nothing")
	}
	if !compile(t, s, compound).Match(doc(t, item)) {
		t.Error("compound filter does not match item")
	}
}

// TestConcurrentMatch shares one Filter and one Doc between goroutines, as the fan-out
// does; the race detector (make test runs -race) proves neither is written by Match.
func TestConcurrentMatch(t *testing.T) {
	f := compile(t, spec(t, "ItemFilter"), compound)
	d := doc(t, item)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if !f.Match(d) {
					t.Error("compound filter does not match item")
					return
				}
			}
		})
	}
	wg.Wait()
}
