// Package filter compiles subscription filter arguments, checked against their schema input types, and matches them against event payloads without allocating.
//
// The flow is: [SpecFor] once per filter input type at start-up (and [Spec.CheckAgainst]
// the payload type it filters), [Spec.Compile] once per subscribe (an error is the client's
// BAD_USER_INPUT), [NewDoc] once per event, and [Filter.Match] once per candidate
// subscription. A nil *Filter is "no filter" and matches every payload.
//
// # Semantics
//
// A filter object holds payload field names, each with a leaf filter (operators), and the
// groups `and` (every element holds), `or` (at least one element holds) and `not` (the
// element does not hold). Everything in one object is combined with AND. A null anywhere
// in the input means "not given", as for any optional GraphQL input field.
//
// Operators, by the leaf filter's operand scalar:
//
//	String, ID, enums   eq ne in notIn; String and ID also beginsWith contains notContains
//	Int, Float          eq ne lt le gt ge between in notIn
//	Time (RFC 3339)     eq ne lt le gt ge between in notIn, compared as instants
//	Boolean             eq ne
//
// String operators compare bytes, case-sensitively; contains is a substring test. Numbers
// are compared as float64, exact for integers within ±(2^53-1); Int operands beyond that
// are refused rather than rounded. Times are parsed with Go's RFC 3339 parser and compared as
// instants, so 10:00:00+02:00 equals 08:00:00Z. `between: [lo, hi]` is inclusive.
//
// A payload field that is missing, null or not of the leaf's kind (a number where a string
// is filtered, a string that is not an RFC 3339 time, an object, a list) is absent: it
// satisfies exactly the negative operators ne, notIn and notContains, and nothing else. So
// each negative operator is precisely the negation of its positive one (ne = not eq,
// notIn = not in, notContains = not contains), on every payload.
//
// # Bounds
//
// Compile refuses, with an error that wraps both [ErrInvalid] and [ErrTooLarge], a filter
// with more than [MaxConditions] conditions, groups nested deeper than [MaxDepth], more
// than [MaxListElements] in/notIn elements in total, a string operand longer than
// [MaxStringBytes], or a canonical encoding ([Filter.Key]) longer than [MaxKeyBytes].
// Empty leaf filters, empty objects inside groups, empty groups and empty in/notIn lists
// are refused as invalid, so every object holds at least one condition and a filter has
// at most MaxConditions × (MaxDepth+1) nodes.
package filter

import (
	"errors"
	"strings"
)

// Bounds on one filter. Each is checked by Compile; the tests send each bound and one more.
const (
	// MaxConditions is the most operator entries a filter may hold, counted across all its
	// leaves before any deduplication: {priority: {gt: 1, lt: 5}} is 2 conditions.
	MaxConditions = 64
	// MaxDepth is how deeply groups may nest: the top-level object is at depth 0, an object
	// inside its and/or/not at depth 1, and so on; an object at depth MaxDepth+1 is refused.
	MaxDepth = 5
	// MaxListElements is the most elements all the in and notIn lists of a filter may hold
	// together.
	MaxListElements = 100
	// MaxStringBytes is the longest string operand, in bytes (each list element counts alone).
	MaxStringBytes = 1024
	// MaxKeyBytes is the longest canonical encoding of a filter, so what the registry stores
	// and the fan-out caches stays small whatever the shape.
	MaxKeyBytes = 64 << 10
	// MaxJSONBytes is the largest input CompileJSON decodes; it leaves room for whitespace
	// and escapes around a filter whose Key is at most MaxKeyBytes.
	MaxJSONBytes = 1 << 20
)

// TimeScalar is the name of the scalar whose values are RFC 3339 strings compared as instants.
const TimeScalar = "Time"

// ErrInvalid is wrapped by every error Compile and CompileJSON return for a filter a client
// sent; its message is fit to show that client (as BAD_USER_INPUT).
var ErrInvalid = errors.New("filter: invalid")

// ErrTooLarge is wrapped, besides ErrInvalid, by the errors for a filter beyond a bound.
var ErrTooLarge = errors.New("filter: too large")

// ErrSpec is wrapped by every error SpecFor and CheckAgainst return for a schema whose
// filter input types cannot be used; those are the developer's errors, found at start-up.
var ErrSpec = errors.New("filter: bad filter type")

// Error is a filter refused by Compile. It wraps ErrInvalid, and ErrTooLarge when TooLarge.
type Error struct {
	// Path locates the offending part of the filter, such as "or[1].author.between";
	// empty for the filter as a whole.
	Path string
	// Reason says what is wrong, for the client.
	Reason string
	// TooLarge is set when a bound was exceeded.
	TooLarge bool
}

// Error returns "invalid filter at PATH: REASON".
func (e *Error) Error() string {
	if e.Path == "" {
		return "invalid filter: " + e.Reason
	}
	return "invalid filter at " + e.Path + ": " + e.Reason
}

// Is reports whether target is ErrInvalid, or ErrTooLarge for a bound exceeded.
func (e *Error) Is(target error) bool {
	return target == ErrInvalid || (e.TooLarge && target == ErrTooLarge)
}

// kind is how a leaf filter compares: given by its operand scalar.
type kind uint8

const (
	kindString kind = iota + 1 // String, ID
	kindEnum                   // an enum: compared as strings, values checked against the enum
	kindNumber                 // Int, Float
	kindTime                   // TimeScalar
	kindBool                   // Boolean
)

func (k kind) String() string {
	switch k {
	case kindString:
		return "string"
	case kindEnum:
		return "enum"
	case kindNumber:
		return "number"
	case kindTime:
		return "time"
	case kindBool:
		return "boolean"
	}
	return "unknown"
}

// op is one operator of a leaf filter.
type op uint8

const (
	opEq op = iota + 1
	opNe
	opLt
	opLe
	opGt
	opGe
	opBetween
	opIn
	opNotIn
	opBeginsWith
	opContains
	opNotContains
	opCount // number of operators + 1
)

var opNames = [opCount]string{
	opEq: "eq", opNe: "ne", opLt: "lt", opLe: "le", opGt: "gt", opGe: "ge",
	opBetween: "between", opIn: "in", opNotIn: "notIn",
	opBeginsWith: "beginsWith", opContains: "contains", opNotContains: "notContains",
}

func (o op) String() string { return opNames[o] }

// opByName returns the operator named name.
func opByName(name string) (op, bool) {
	for o := opEq; o < opCount; o++ {
		if opNames[o] == name {
			return o, true
		}
	}
	return 0, false
}

// list reports whether the operator takes a list operand.
func (o op) list() bool { return o == opIn || o == opNotIn || o == opBetween }

// negative reports whether the operator is the negation of another, and so holds for an
// absent value.
func (o op) negative() bool { return o == opNe || o == opNotIn || o == opNotContains }

// allows reports whether operator o applies to operands of kind k.
func (k kind) allows(o op) bool {
	switch k {
	case kindString:
		switch o {
		case opEq, opNe, opIn, opNotIn, opBeginsWith, opContains, opNotContains:
			return true
		}
	case kindEnum:
		switch o {
		case opEq, opNe, opIn, opNotIn:
			return true
		}
	case kindNumber, kindTime:
		switch o {
		case opEq, opNe, opLt, opLe, opGt, opGe, opBetween, opIn, opNotIn:
			return true
		}
	case kindBool:
		return o == opEq || o == opNe
	}
	return false
}

// allowedOps lists the operator names kind k allows, for error messages.
func (k kind) allowedOps() string {
	var names []string
	for o := opEq; o < opCount; o++ {
		if k.allows(o) {
			names = append(names, opNames[o])
		}
	}
	return strings.Join(names, ", ")
}

// Filter is a compiled filter: immutable, safe for concurrent use. A nil *Filter matches
// every payload.
type Filter struct {
	root node
	key  string
}

// Key returns the filter's canonical encoding: JSON in the filter input's own shape, with
// object keys sorted, in/notIn and and/or elements sorted and deduplicated, numbers in
// their shortest form, times in UTC (RFC 3339 with nanoseconds) and nulls dropped. Filters
// that differ only in those respects have equal keys, and CompileJSON of a key gives back a
// filter with the same key. The key of a nil *Filter is "".
func (f *Filter) Key() string {
	if f == nil {
		return ""
	}
	return f.key
}

// Match reports whether the payload held by d passes the filter. It allocates nothing.
func (f *Filter) Match(d *Doc) bool {
	if f == nil {
		return true
	}
	return f.root.eval(d)
}

// nodeKind is what a node of a compiled filter does.
type nodeKind uint8

const (
	nodeAll  nodeKind = iota + 1 // every kid holds
	nodeAny                      // at least one kid holds
	nodeNot                      // kids[0] does not hold
	nodeCond                     // cond holds
)

// node is one node of a compiled filter tree.
type node struct {
	kind nodeKind
	kids []node
	cond *cond
}

func (n *node) eval(d *Doc) bool {
	switch n.kind {
	case nodeAll:
		for i := range n.kids {
			if !n.kids[i].eval(d) {
				return false
			}
		}
		return true
	case nodeAny:
		for i := range n.kids {
			if n.kids[i].eval(d) {
				return true
			}
		}
		return false
	case nodeNot:
		return !n.kids[0].eval(d)
	default:
		return n.cond.eval(d)
	}
}

// cond is one operator applied to one payload field. Only the operands of its kind and
// operator are set; lists are sorted and deduplicated.
type cond struct {
	field string
	kind  kind
	op    op

	str  string
	strs []string

	num, num2 float64
	nums      []float64

	t, t2 instant
	ts    []instant

	b bool
}

func (c *cond) eval(d *Doc) bool {
	v := d.lookup(c.field)
	switch c.kind {
	case kindString, kindEnum:
		if v == nil || v.kind != valString {
			return c.op.negative()
		}
		return c.evalString(v.str)
	case kindNumber:
		if v == nil || v.kind != valNumber {
			return c.op.negative()
		}
		return c.evalNumber(v.num)
	case kindTime:
		if v == nil || v.kind != valString || !v.isTime {
			return c.op.negative()
		}
		return c.evalTime(v.t)
	case kindBool:
		if v == nil || v.kind != valBool {
			return c.op.negative()
		}
		if c.op == opEq {
			return v.b == c.b
		}
		return v.b != c.b
	}
	return false
}

func (c *cond) evalString(s string) bool {
	switch c.op {
	case opEq:
		return s == c.str
	case opNe:
		return s != c.str
	case opIn:
		return hasString(c.strs, s)
	case opNotIn:
		return !hasString(c.strs, s)
	case opBeginsWith:
		return strings.HasPrefix(s, c.str)
	case opContains:
		return strings.Contains(s, c.str)
	case opNotContains:
		return !strings.Contains(s, c.str)
	}
	return false
}

func (c *cond) evalNumber(x float64) bool {
	switch c.op {
	case opEq:
		return x == c.num
	case opNe:
		return x != c.num
	case opLt:
		return x < c.num
	case opLe:
		return x <= c.num
	case opGt:
		return x > c.num
	case opGe:
		return x >= c.num
	case opBetween:
		return c.num <= x && x <= c.num2
	case opIn:
		return hasNumber(c.nums, x)
	case opNotIn:
		return !hasNumber(c.nums, x)
	}
	return false
}

func (c *cond) evalTime(t instant) bool {
	switch c.op {
	case opEq:
		return t == c.t
	case opNe:
		return t != c.t
	case opLt:
		return t.cmp(c.t) < 0
	case opLe:
		return t.cmp(c.t) <= 0
	case opGt:
		return t.cmp(c.t) > 0
	case opGe:
		return t.cmp(c.t) >= 0
	case opBetween:
		return c.t.cmp(t) <= 0 && t.cmp(c.t2) <= 0
	case opIn:
		return hasInstant(c.ts, t)
	case opNotIn:
		return !hasInstant(c.ts, t)
	}
	return false
}

// hasString reports whether sorted holds s (binary search; no allocation).
func hasString(sorted []string, s string) bool {
	lo, hi := 0, len(sorted)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if sorted[m] < s {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(sorted) && sorted[lo] == s
}

func hasNumber(sorted []float64, x float64) bool {
	lo, hi := 0, len(sorted)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if sorted[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(sorted) && sorted[lo] == x
}

func hasInstant(sorted []instant, t instant) bool {
	lo, hi := 0, len(sorted)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if sorted[m].cmp(t) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(sorted) && sorted[lo] == t
}
