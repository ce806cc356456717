package filter

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// Spec is what a filter input type of the schema allows: which payload fields it filters,
// with which leaf filter each, and which of the groups and, or, not it has. Build one with
// SpecFor at start-up; it is immutable and safe for concurrent use.
type Spec struct {
	schema *ast.Schema
	name   string
	fields map[string]*leafSpec
	and    bool
	or     bool
	not    bool
}

// leafSpec is a leaf filter input type, such as StringFilter: its operators and operand scalar.
type leafSpec struct {
	name   string // the input type, e.g. StringFilter
	scalar string // the operand type, e.g. String, or an enum's name
	kind   kind
	enum   *ast.Definition // when kind is kindEnum
	ops    map[string]op   // the operators the input type declares
}

// Group field names.
const (
	groupAnd = "and"
	groupOr  = "or"
	groupNot = "not"
)

// SpecFor checks that the input type named inputTypeName is a filter and returns its Spec.
//
// A filter input type has fields of two sorts. A group: `and` and `or` of type
// [inputTypeName!], `not` of type inputTypeName. Any other field names a payload field and
// has a leaf filter input type, whose fields are operators (eq ne lt le gt ge between in
// notIn beginsWith contains notContains) over one operand type: the operator's scalar
// (list of it for in, notIn and between) of String, ID, Int, Float, Boolean, TimeScalar or
// an enum, with only the operators that operand kind supports. Anything else is an error
// wrapping ErrSpec that names the type and the field.
func SpecFor(schema *ast.Schema, inputTypeName string) (*Spec, error) {
	if schema == nil {
		return nil, fmt.Errorf("%w: no schema", ErrSpec)
	}
	def := schema.Types[inputTypeName]
	if def == nil {
		return nil, fmt.Errorf("%w: type %s is not defined", ErrSpec, inputTypeName)
	}
	if def.Kind != ast.InputObject {
		return nil, fmt.Errorf("%w: %s is %s, not an input object", ErrSpec, inputTypeName, kindName(def.Kind))
	}
	s := &Spec{schema: schema, name: inputTypeName, fields: map[string]*leafSpec{}}
	leaves := map[string]*leafSpec{}
	for _, f := range def.Fields {
		where := inputTypeName + "." + f.Name
		switch f.Name {
		case groupAnd, groupOr:
			if f.Type.Elem == nil || f.Type.Elem.Elem != nil || f.Type.Elem.NamedType != inputTypeName {
				return nil, fmt.Errorf("%w: %s is %s, want [%s!] (a group of filters)", ErrSpec, where, f.Type, inputTypeName)
			}
			if f.Name == groupAnd {
				s.and = true
			} else {
				s.or = true
			}
		case groupNot:
			if f.Type.NamedType != inputTypeName {
				return nil, fmt.Errorf("%w: %s is %s, want %s (a filter to negate)", ErrSpec, where, f.Type, inputTypeName)
			}
			s.not = true
		default:
			if f.Type.NamedType == "" {
				return nil, fmt.Errorf("%w: %s is the list %s, want a leaf filter input such as StringFilter", ErrSpec, where, f.Type)
			}
			leaf := leaves[f.Type.NamedType]
			if leaf == nil {
				var err error
				if leaf, err = leafFor(schema, where, f.Type.NamedType); err != nil {
					return nil, err
				}
				leaves[f.Type.NamedType] = leaf
			}
			s.fields[f.Name] = leaf
		}
	}
	if len(s.fields) == 0 {
		return nil, fmt.Errorf("%w: %s filters no field (it has only groups)", ErrSpec, inputTypeName)
	}
	return s, nil
}

// leafFor checks the leaf filter input type name, the type of the filter field where.
func leafFor(schema *ast.Schema, where, name string) (*leafSpec, error) {
	def := schema.Types[name]
	if def == nil {
		return nil, fmt.Errorf("%w: %s: type %s is not defined", ErrSpec, where, name)
	}
	if def.Kind != ast.InputObject {
		return nil, fmt.Errorf("%w: %s is %s, which is %s; want a leaf filter input such as StringFilter", ErrSpec, where, name, kindName(def.Kind))
	}
	if len(def.Fields) == 0 {
		return nil, fmt.Errorf("%w: %s: %s has no operators", ErrSpec, where, name)
	}
	leaf := &leafSpec{name: name, ops: map[string]op{}}
	var first string // the operator that set leaf.scalar
	for _, f := range def.Fields {
		o, ok := opByName(f.Name)
		if !ok {
			return nil, fmt.Errorf("%w: %s: %s.%s is not a filter operator (nested object filters are not supported; operators are %s)",
				ErrSpec, where, name, f.Name, strings.Join(opNames[opEq:], ", "))
		}
		t := f.Type
		if o.list() {
			if t.Elem == nil || t.Elem.NamedType == "" {
				return nil, fmt.Errorf("%w: %s: %s.%s is %s, want a list of the operand type", ErrSpec, where, name, f.Name, t)
			}
			t = t.Elem
		} else if t.NamedType == "" {
			return nil, fmt.Errorf("%w: %s: %s.%s is the list %s, want the operand type", ErrSpec, where, name, f.Name, t)
		}
		if leaf.scalar == "" {
			leaf.scalar, first = t.NamedType, f.Name
		} else if t.NamedType != leaf.scalar {
			return nil, fmt.Errorf("%w: %s: %s.%s has operand type %s but %s.%s has %s; one leaf filter has one operand type",
				ErrSpec, where, name, f.Name, t.NamedType, name, first, leaf.scalar)
		}
		leaf.ops[f.Name] = o
	}
	k, enum, err := kindOf(schema, leaf.scalar)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s: %w", ErrSpec, where, name, err)
	}
	leaf.kind, leaf.enum = k, enum
	for _, f := range def.Fields { // in declaration order, for a stable message
		if o := leaf.ops[f.Name]; !k.allows(o) {
			return nil, fmt.Errorf("%w: %s: %s.%s does not apply to %s operands (%s allows %s)",
				ErrSpec, where, name, f.Name, leaf.scalar, k, k.allowedOps())
		}
	}
	return leaf, nil
}

// kindOf returns how values of the named type compare.
func kindOf(schema *ast.Schema, name string) (kind, *ast.Definition, error) {
	def := schema.Types[name]
	if def == nil {
		return 0, nil, fmt.Errorf("type %s is not defined", name)
	}
	switch def.Kind {
	case ast.Enum:
		return kindEnum, def, nil
	case ast.Scalar:
		switch name {
		case "String", "ID":
			return kindString, nil, nil
		case "Int", "Float":
			return kindNumber, nil, nil
		case "Boolean":
			return kindBool, nil, nil
		case TimeScalar:
			return kindTime, nil, nil
		}
		return 0, nil, fmt.Errorf("scalar %s cannot be filtered (String, ID, Int, Float, Boolean, %s and enums can)", name, TimeScalar)
	}
	return 0, nil, fmt.Errorf("%s is %s, not a scalar or an enum", name, kindName(def.Kind))
}

func kindName(k ast.DefinitionKind) string {
	switch k {
	case ast.Scalar:
		return "a scalar"
	case ast.Object:
		return "an object type"
	case ast.Interface:
		return "an interface"
	case ast.Union:
		return "a union"
	case ast.Enum:
		return "an enum"
	case ast.InputObject:
		return "an input object"
	}
	return string(k)
}

// Name returns the filter input type's name.
func (s *Spec) Name() string { return s.name }

// Fields returns the payload fields the filter can test, sorted.
func (s *Spec) Fields() []string {
	names := make([]string, 0, len(s.fields))
	for name := range s.fields {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// CheckAgainst checks that every field the filter can test exists on obj, the payload's
// object (or interface) type, as a single value whose type the field's leaf filter
// compares: String and ID (or an enum) for a string filter, the same enum for an enum
// filter, Int or Float for a number filter, TimeScalar for a time filter, Boolean for a
// boolean filter. Call it at start-up; its error wraps ErrSpec and names both fields.
func (s *Spec) CheckAgainst(obj *ast.Definition) error {
	if obj == nil {
		return fmt.Errorf("%w: %s: no payload type", ErrSpec, s.name)
	}
	if obj.Kind != ast.Object && obj.Kind != ast.Interface {
		return fmt.Errorf("%w: %s filters %s, which is %s, not an object type", ErrSpec, s.name, obj.Name, kindName(obj.Kind))
	}
	for _, name := range s.Fields() {
		leaf := s.fields[name]
		where := s.name + "." + name
		f := obj.Fields.ForName(name)
		if f == nil {
			return fmt.Errorf("%w: %s filters field %s, which %s does not have", ErrSpec, where, name, obj.Name)
		}
		if f.Type.NamedType == "" {
			return fmt.Errorf("%w: %s filters %s.%s, which is the list %s; lists cannot be filtered", ErrSpec, where, obj.Name, name, f.Type)
		}
		k, _, err := kindOf(s.schema, f.Type.NamedType)
		if err != nil {
			return fmt.Errorf("%w: %s filters %s.%s: %w", ErrSpec, where, obj.Name, name, err)
		}
		ok := k == leaf.kind
		switch leaf.kind {
		case kindString:
			ok = k == kindString || k == kindEnum
		case kindEnum:
			ok = f.Type.NamedType == leaf.scalar
		}
		if !ok {
			return fmt.Errorf("%w: %s is %s %s over %s, but %s.%s is %s", ErrSpec, where, article(leaf.name), leaf.name, leaf.scalar, obj.Name, name, f.Type)
		}
	}
	return nil
}

// Check checks at start-up that the input type named inputType is a filter (SpecFor) of the
// payload type obj (CheckAgainst). It has the shape of engine.FilterSpec, which is how the engine
// checks every subscription field's filter argument: engine.WithFilterSpec(filter.Check).
func Check(schema *ast.Schema, inputType string, obj *ast.Definition) error {
	spec, err := SpecFor(schema, inputType)
	if err != nil {
		return err
	}
	return spec.CheckAgainst(obj)
}
