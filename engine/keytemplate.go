package engine

import (
	"errors"
	"fmt"
	"strings"
)

// A KeyTemplate is a key of an @item type: literal text with {field} placeholders, such as
// "room#{roomId}". Braces appear only around placeholders, and two placeholders are separated by
// literal text, so a key can be read back into its fields.
type KeyTemplate struct {
	text   string
	fields []string
}

// ParseKeyTemplate parses a key template.
func ParseKeyTemplate(s string) (KeyTemplate, error) {
	t := KeyTemplate{text: s}
	prevField := false // the previous part was a placeholder
	for i := 0; i < len(s); {
		switch s[i] {
		case '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return KeyTemplate{}, fmt.Errorf("unclosed { at byte %d", i)
			}
			name := s[i+1 : i+1+end]
			if !isName(name) {
				return KeyTemplate{}, fmt.Errorf("{%s} at byte %d is not a placeholder: want {field}, a GraphQL field name", name, i)
			}
			if prevField {
				return KeyTemplate{}, fmt.Errorf("placeholders {%s} and {%s} must be separated by literal text", t.fields[len(t.fields)-1], name)
			}
			t.fields = append(t.fields, name)
			prevField = true
			i += end + 2
		case '}':
			return KeyTemplate{}, fmt.Errorf("} at byte %d closes no placeholder", i)
		default:
			prevField = false
			i++
		}
	}
	if s == "" {
		return KeyTemplate{}, errors.New("is empty")
	}
	return t, nil
}

// String returns the template as written.
func (t KeyTemplate) String() string { return t.text }

// Fields returns the names of the fields the placeholders name, in order.
func (t KeyTemplate) Fields() []string { return append([]string(nil), t.fields...) }

// isName reports whether s is a GraphQL name: [_A-Za-z][_0-9A-Za-z]*.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
