package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// A KeyTemplate builds a key (pk or sk) from an item's fields: literal text with {field}
// placeholders, e.g. "room#{roomId}". The zero value is no template.
//
// Syntax: a placeholder is '{', a field name ([A-Za-z_][A-Za-z0-9_]*, a GraphQL name), '}'. A
// literal brace is written twice: "{{" is '{' and "}}" is '}'; any other brace is an error.
// Two placeholders must be separated by literal text, and a field appears at most once.
//
// Formatting is one to one: a value of any placeholder but the last may not contain the first
// character of the literal that follows it (for "{a}#{b}", a may not contain '#'), so distinct
// values always give distinct keys. The last placeholder's value may contain anything.
type KeyTemplate struct {
	src   string
	parts []keyPart
}

// A keyPart is literal text followed by an optional placeholder.
type keyPart struct {
	lit   string
	field string // "" for none (only in the last part)
}

var fieldName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// A TemplateError is a key template that does not parse. It wraps ErrInvalid.
type TemplateError struct {
	// Template is the text that was parsed; Reason says what is wrong with it.
	Template, Reason string
}

// Error returns "store: invalid input: key template "TEMPLATE": REASON".
func (e *TemplateError) Error() string {
	return fmt.Sprintf("%v: key template %q: %s", ErrInvalid, e.Template, e.Reason)
}

// Unwrap returns ErrInvalid.
func (e *TemplateError) Unwrap() error { return ErrInvalid }

// ParseKeyTemplate parses a key template; errors are *TemplateError (wrapping ErrInvalid).
func ParseKeyTemplate(s string) (KeyTemplate, error) {
	bad := func(format string, args ...any) (KeyTemplate, error) {
		return KeyTemplate{}, &TemplateError{Template: s, Reason: fmt.Sprintf(format, args...)}
	}
	if s == "" {
		return bad("empty")
	}
	t := KeyTemplate{src: s}
	var lit strings.Builder
	seen := map[string]bool{}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '}':
			return bad("'}' at byte %d closes nothing (write }} for a literal '}')", i)
		case c == '{':
			end := strings.IndexAny(s[i+1:], "{}")
			if end < 0 || s[i+1+end] != '}' {
				return bad("'{' at byte %d is not closed by '}' (placeholders do not nest; write {{ for a literal '{')", i)
			}
			name := s[i+1 : i+1+end]
			switch {
			case name == "":
				return bad("empty placeholder {} at byte %d", i)
			case !fieldName.MatchString(name):
				return bad("placeholder {%s}: a field name is letters, digits and '_', not starting with a digit", name)
			case seen[name]:
				return bad("field %s appears twice", name)
			case len(t.parts) > 0 && lit.Len() == 0:
				return bad("placeholders {%s} and {%s} must be separated by literal text", t.parts[len(t.parts)-1].field, name)
			}
			seen[name] = true
			t.parts = append(t.parts, keyPart{lit: lit.String(), field: name})
			lit.Reset()
			i += end + 1
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 || len(t.parts) == 0 {
		t.parts = append(t.parts, keyPart{lit: lit.String()})
	}
	return t, nil
}

// MustParseKeyTemplate is ParseKeyTemplate for templates fixed in the program; it panics on error.
func MustParseKeyTemplate(s string) KeyTemplate {
	t, err := ParseKeyTemplate(s)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the template as it was parsed.
func (t KeyTemplate) String() string { return t.src }

// IsZero reports whether t is the zero value (no template).
func (t KeyTemplate) IsZero() bool { return len(t.parts) == 0 }

// Fields returns the names of the template's placeholders, in order.
func (t KeyTemplate) Fields() []string {
	var out []string
	for _, p := range t.parts {
		if p.field != "" {
			out = append(out, p.field)
		}
	}
	return out
}

// Prefix returns the literal text before the first placeholder (all of it if there is none):
// every key the template makes starts with it, so a query of a partition for one type's items
// uses it as the sort key prefix.
func (t KeyTemplate) Prefix() string {
	if len(t.parts) == 0 {
		return ""
	}
	return t.parts[0].lit
}

// Format makes a key from values, which hold at least the template's fields. A value must be a
// non-empty string or a number: Go strings and numbers (of any named or unnamed string, integer
// or float type) and json.Number. A number is written as encoding/json writes it, and a
// json.Number as its text, so a key made from a Go value equals one made from the same value's
// JSON (decoded with json.Decoder.UseNumber). Errors wrap ErrInvalid and name the field.
func (t KeyTemplate) Format(values map[string]any) (string, error) {
	if t.IsZero() {
		return "", fmt.Errorf("%w: no key template", ErrInvalid)
	}
	var b strings.Builder
	for i, p := range t.parts {
		b.WriteString(p.lit)
		if p.field == "" {
			continue
		}
		v, ok := values[p.field]
		if !ok {
			return "", fmt.Errorf("%w: key %s: field %s is missing", ErrInvalid, t.src, p.field)
		}
		s, err := keyValue(v)
		if err != nil {
			return "", fmt.Errorf("%w: key %s: field %s: %v", ErrInvalid, t.src, p.field, err)
		}
		if i+1 < len(t.parts) && t.parts[i+1].field != "" {
			// Not the last placeholder: its value may not contain the separator that follows.
			if sep := t.parts[i+1].lit[:1]; strings.Contains(s, sep) {
				return "", fmt.Errorf("%w: key %s: field %s may not contain %q", ErrInvalid, t.src, p.field, sep)
			}
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// keyValue renders one placeholder's value.
func keyValue(v any) (string, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		if !validJSONNumber(string(x)) {
			return "", fmt.Errorf("%q is not a number", string(x))
		}
		s = string(x)
	case *types.AttributeValueMemberS:
		s = x.Value
	case *types.AttributeValueMemberN:
		s = x.Value
	default:
		rv := reflect.ValueOf(v)
		if !rv.IsValid() {
			return "", errors.New("is null; a key field must be a string or a number")
		}
		switch rv.Kind() {
		case reflect.String:
			s = rv.String()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
			reflect.Float32, reflect.Float64:
			raw, err := json.Marshal(v)
			if err != nil {
				return "", err
			}
			s = string(raw)
		default:
			return "", fmt.Errorf("is a %T; a key field must be a string or a number", v)
		}
	}
	if s == "" {
		return "", errors.New("is empty")
	}
	return s, nil
}

// An ItemType is a kind of item in the data table: its name (written to every item as
// __typename, and how the stream decoder tells the types apart) and the templates of its keys,
// made from the item's own fields. Build one with NewItemType, or fill the fields and call
// Validate.
//
// Types that share a partition must have sort key prefixes (SK.Prefix) of which none is a
// prefix of another, or a query for one type's items would read the other's.
type ItemType struct {
	// Name is the type's name, a GraphQL type name such as "Message".
	Name string
	// PK makes the partition key; it has at least one placeholder.
	PK KeyTemplate
	// SK makes the sort key.
	SK KeyTemplate
}

// NewItemType parses the key templates of a type and validates it; errors wrap ErrInvalid.
func NewItemType(name, pk, sk string) (ItemType, error) {
	p, err := ParseKeyTemplate(pk)
	if err != nil {
		return ItemType{}, fmt.Errorf("item type %s: %w", name, err)
	}
	s, err := ParseKeyTemplate(sk)
	if err != nil {
		return ItemType{}, fmt.Errorf("item type %s: %w", name, err)
	}
	t := ItemType{Name: name, PK: p, SK: s}
	return t, t.Validate()
}

// MustItemType is NewItemType for types fixed in the program; it panics on error.
func MustItemType(name, pk, sk string) ItemType {
	t, err := NewItemType(name, pk, sk)
	if err != nil {
		panic(err)
	}
	return t
}

// Validate checks that the type has a name (a GraphQL name), a partition key template with at
// least one placeholder, and a sort key template. Errors wrap ErrInvalid.
func (t ItemType) Validate() error {
	switch {
	case !fieldName.MatchString(t.Name):
		return fmt.Errorf("%w: item type name %q is not a GraphQL name", ErrInvalid, t.Name)
	case t.PK.IsZero() || t.SK.IsZero():
		return fmt.Errorf("%w: item type %s needs both key templates", ErrInvalid, t.Name)
	case len(t.PK.Fields()) == 0:
		return fmt.Errorf("%w: item type %s: partition key %q has no {field}: every item would share one partition",
			ErrInvalid, t.Name, t.PK.String())
	}
	return nil
}

// Key makes the key of the item of this type that values (its key fields, or all its fields)
// describe. Errors wrap ErrInvalid.
func (t ItemType) Key(values map[string]any) (pk, sk string, err error) {
	if pk, err = t.PK.Format(values); err != nil {
		return "", "", fmt.Errorf("item type %s: %w", t.Name, err)
	}
	if sk, err = t.SK.Format(values); err != nil {
		return "", "", fmt.Errorf("item type %s: %w", t.Name, err)
	}
	if err := CheckKey(pk, sk); err != nil {
		return "", "", fmt.Errorf("item type %s: %w", t.Name, err)
	}
	return pk, sk, nil
}

// Encode converts a value of the type to its item (see EncodeItem) and adds pk and sk, made from
// the item's own fields, and __typename. The value may not have fields named pk, sk or
// __typename. Errors wrap ErrInvalid.
func (t ItemType) Encode(v any) (Item, error) {
	it, err := EncodeItem(v)
	if err != nil {
		return nil, fmt.Errorf("item type %s: %w", t.Name, err)
	}
	for _, name := range []string{AttrPK, AttrSK, AttrTypename} {
		if _, ok := it[name]; ok {
			return nil, fmt.Errorf("%w: item type %s: the field name %s is reserved", ErrInvalid, t.Name, name)
		}
	}
	values := make(map[string]any, len(it))
	for k, av := range it {
		values[k] = av
	}
	pk, sk, err := t.Key(values)
	if err != nil {
		return nil, err
	}
	it[AttrPK] = &types.AttributeValueMemberS{Value: pk}
	it[AttrSK] = &types.AttributeValueMemberS{Value: sk}
	it[AttrTypename] = &types.AttributeValueMemberS{Value: t.Name}
	return it, nil
}

// Decode decodes an item of the type into out (see DecodeItem). An item whose __typename names
// another type is an error; one without __typename (written by other means) is decoded as it is.
func (t ItemType) Decode(it Item, out any) error {
	if tn, ok := it[AttrTypename]; ok {
		if s, ok := tn.(*types.AttributeValueMemberS); !ok || s.Value != t.Name {
			return fmt.Errorf("decode %s: item %s is not a %s", t.Name, describeKey(it), t.Name)
		}
	}
	if err := DecodeItem(it, out); err != nil {
		return fmt.Errorf("decode %s %s: %w", t.Name, describeKey(it), err)
	}
	return nil
}

// describeKey names an item by its key, for errors.
func describeKey(it Item) string {
	pk, sk, err := ItemKey(it)
	if err != nil {
		return "(without a key)"
	}
	return fmt.Sprintf("%q/%q", pk, sk)
}
