package filter_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/internal/filter"
)

// TestSpecForExample accepts the example's filter types and checks them against their payloads.
func TestSpecForExample(t *testing.T) {
	schema := loadSchema(t, testSchema)
	for name, payload := range map[string]string{"MessageFilter": "Message", "AnnouncementFilter": "Announcement", "ItemFilter": "Item"} {
		s, err := filter.SpecFor(schema, name)
		if err != nil {
			t.Fatalf("SpecFor(%s): %v", name, err)
		}
		if s.Name() != name {
			t.Errorf("Name() = %s, want %s", s.Name(), name)
		}
		if err := s.CheckAgainst(schema.Types[payload]); err != nil {
			t.Errorf("%s.CheckAgainst(%s): %v", name, payload, err)
		}
	}
	s := spec(t, "MessageFilter")
	if got := s.Fields(); !slices.Equal(got, []string{"author", "text"}) {
		t.Errorf("Fields() = %v", got)
	}
}

// TestSpecForErrors gives SpecFor malformed filter types; each error names the type and field.
func TestSpecForErrors(t *testing.T) {
	const base = `
scalar Time
scalar JSON
enum Mood { HAPPY SAD }
input StringFilter { eq: String, ne: String, in: [String!], notIn: [String!], beginsWith: String, contains: String, notContains: String }
input IntFilter { eq: Int, lt: Int, between: [Int!], in: [Int!] }
type Message { author: String!, text: String! }
type Query { m: Message }
`
	cases := []struct {
		name, sdl, want string
	}{
		{"undefined", ``, "type F is not defined"},
		{"not input", `type F { a: String }`, "F is an object type, not an input object"},
		{"enum", `enum F { A }`, "F is an enum, not an input object"},
		{"only groups", `input F { and: [F!], not: F }`, "F filters no field (it has only groups)"},
		{"and not a list", `input F { a: StringFilter, and: F }`, "F.and is F, want [F!] (a group of filters)"},
		{"and of another type", `input F { a: StringFilter, and: [G!] } input G { a: StringFilter }`, "F.and is [G!], want [F!]"},
		{"or of lists", `input F { a: StringFilter, or: [[F!]] }`, "F.or is [[F!]], want [F!]"},
		{"not a list", `input F { a: StringFilter, not: [F!] }`, "F.not is [F!], want F (a filter to negate)"},
		{"not of another type", `input F { a: StringFilter, not: StringFilter }`, "F.not is StringFilter, want F"},
		{"field a list", `input F { a: [StringFilter] }`, "F.a is the list [StringFilter], want a leaf filter input"},
		{"field a scalar", `input F { a: String }`, "F.a is String, which is a scalar; want a leaf filter input"},
		{"nested object filter", `input F { a: G } input G { name: StringFilter }`,
			"F.a: G.name is not a filter operator (nested object filters are not supported; operators are eq, ne"},
		{"unknown operator", `input F { a: G } input G { eq: String, like: String }`, "F.a: G.like is not a filter operator"},
		{"list operator given a scalar", `input F { a: G } input G { eq: String, in: String }`, "F.a: G.in is String, want a list of the operand type"},
		{"between of lists", `input F { a: G } input G { between: [[Int]] }`, "F.a: G.between is [[Int]], want a list of the operand type"},
		{"scalar operator given a list", `input F { a: G } input G { eq: [String] }`, "F.a: G.eq is the list [String], want the operand type"},
		{"mixed operands", `input F { a: G } input G { eq: String, ne: Int }`, "F.a: G.ne has operand type Int but G.eq has String"},
		{"mixed in list", `input F { a: G } input G { eq: Int, in: [Float!] }`, "F.a: G.in has operand type Float but G.eq has Int"},
		{"unsupported scalar", `input F { a: G } input G { eq: JSON }`, "F.a: G: scalar JSON cannot be filtered"},
		{"object operand", `input F { a: G } input G { eq: StringFilter }`, "F.a: G: StringFilter is an input object, not a scalar or an enum"},
		{"lt on strings", `input F { a: G } input G { eq: String, lt: String }`,
			"F.a: G.lt does not apply to String operands (string allows eq, ne, in, notIn, beginsWith, contains, notContains)"},
		{"contains on Int", `input F { a: G } input G { contains: Int }`, "F.a: G.contains does not apply to Int operands (number allows eq, ne, lt, le, gt, ge, between, in, notIn)"},
		{"beginsWith on Time", `input F { a: G } input G { beginsWith: Time }`, "G.beginsWith does not apply to Time operands"},
		{"lt on Boolean", `input F { a: G } input G { lt: Boolean }`, "G.lt does not apply to Boolean operands (boolean allows eq, ne)"},
		{"contains on enum", `input F { a: G } input G { contains: Mood }`, "G.contains does not apply to Mood operands (enum allows eq, ne, in, notIn)"},
	}
	for _, c := range cases {
		schema := loadSchema(t, base+c.sdl)
		_, err := filter.SpecFor(schema, "F")
		if !errors.Is(err, filter.ErrSpec) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: SpecFor = %v, want ErrSpec containing %q", c.name, err, c.want)
		}
	}
	if _, err := filter.SpecFor(nil, "F"); !errors.Is(err, filter.ErrSpec) {
		t.Errorf("SpecFor(nil) = %v", err)
	}
}

// TestCheckAgainst rejects a filter on a field the payload lacks or of another kind.
func TestCheckAgainst(t *testing.T) {
	const sdl = testSchema + `
enum Other { X }
input OtherFilter { eq: Other }
input JunkFilter { mood: OtherFilter }
interface Node { id: ID! }
type Payload implements Node {
  id: ID!, name: String!, count: Float, score: Int, at: Time, done: Boolean, mood: Mood
  tags: [String!], owner: Message, when: String, flag: Int, kind: Mood
}
input GoodFilter { id: IDFilter, name: StringFilter, count: IntFilter, score: FloatFilter, at: TimeFilter, done: BooleanFilter, mood: MoodFilter, kind: StringFilter }
input IDOnly { id: StringFilter }
input Missing { nope: StringFilter }
input ListField { tags: StringFilter }
input ObjectField { owner: StringFilter }
input TimeOnString { when: TimeFilter }
input BoolOnInt { flag: BooleanFilter }
input StringOnInt { flag: StringFilter }
input IntOnTime { at: IntFilter }
input EnumOnString { name: MoodFilter }
`
	schema := loadSchema(t, sdl)
	check := func(filterType, payload string) error {
		t.Helper()
		s, err := filter.SpecFor(schema, filterType)
		if err != nil {
			t.Fatalf("SpecFor(%s): %v", filterType, err)
		}
		return s.CheckAgainst(schema.Types[payload])
	}
	// Int and Float are one kind; an enum field takes a string filter; interfaces are payloads too.
	if err := check("GoodFilter", "Payload"); err != nil {
		t.Errorf("GoodFilter on Payload: %v", err)
	}
	if err := check("IDOnly", "Node"); err != nil {
		t.Errorf("IDOnly on Node: %v", err)
	}
	cases := []struct{ filter, payload, want string }{
		{"MessageFilter", "Announcement", "MessageFilter.author filters field author, which Announcement does not have"},
		{"AnnouncementFilter", "Message", "AnnouncementFilter.priority filters field priority, which Message does not have"},
		{"Missing", "Payload", "Missing.nope filters field nope, which Payload does not have"},
		{"ListField", "Payload", "ListField.tags filters Payload.tags, which is the list [String!]; lists cannot be filtered"},
		{"ObjectField", "Payload", "ObjectField.owner filters Payload.owner: Message is an object type, not a scalar or an enum"},
		{"TimeOnString", "Payload", "TimeOnString.when is a TimeFilter over Time, but Payload.when is String"},
		{"BoolOnInt", "Payload", "BoolOnInt.flag is a BooleanFilter over Boolean, but Payload.flag is Int"},
		{"StringOnInt", "Payload", "StringOnInt.flag is a StringFilter over String, but Payload.flag is Int"},
		{"IntOnTime", "Payload", "IntOnTime.at is an IntFilter over Int, but Payload.at is Time"},
		{"EnumOnString", "Payload", "EnumOnString.name is a MoodFilter over Mood, but Payload.name is String!"},
		{"JunkFilter", "Payload", "JunkFilter.mood is an OtherFilter over Other, but Payload.mood is Mood"},
		{"MessageFilter", "MessageFilter", "MessageFilter filters MessageFilter, which is an input object, not an object type"},
	}
	for _, c := range cases {
		err := check(c.filter, c.payload)
		if !errors.Is(err, filter.ErrSpec) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s on %s: %v, want ErrSpec containing %q", c.filter, c.payload, err, c.want)
		}
	}
	if err := spec(t, "MessageFilter").CheckAgainst(nil); !errors.Is(err, filter.ErrSpec) {
		t.Errorf("CheckAgainst(nil) = %v", err)
	}
}
