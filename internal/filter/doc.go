package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Doc is an event payload decoded once for matching by every candidate filter: its
// top-level fields, each as a string (with its instant when it is an RFC 3339 time), a
// number, a boolean, null, or something else (an object or a list, which no operator
// matches). It is immutable, safe for concurrent use.
type Doc struct {
	fields []docField // sorted by name
}

type docField struct {
	name string
	value
}

// valKind is the JSON type of a payload value.
type valKind uint8

const (
	valNull valKind = iota
	valString
	valNumber
	valBool
	valOther // object or list
)

type value struct {
	kind   valKind
	str    string
	num    float64
	b      bool
	isTime bool    // str parsed as an RFC 3339 time
	t      instant // when isTime
}

// instant is a point in time, comparable across time zones, for any year time.Time holds.
type instant struct {
	sec  int64
	nsec int32
}

func instantOf(t time.Time) instant { return instant{sec: t.Unix(), nsec: int32(t.Nanosecond())} }

func (a instant) cmp(b instant) int {
	switch {
	case a.sec < b.sec:
		return -1
	case a.sec > b.sec:
		return 1
	case a.nsec < b.nsec:
		return -1
	case a.nsec > b.nsec:
		return 1
	}
	return 0
}

func (a instant) time() time.Time { return time.Unix(a.sec, int64(a.nsec)).UTC() }

// parseTime parses s as an RFC 3339 time, as time.Parse(time.RFC3339Nano, s) does.
func parseTime(s string) (instant, bool) {
	// The shortest RFC 3339 time is 2006-01-02T15:04:05Z; skip what cannot be one
	// without paying for time.Parse's error.
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' {
		return instant{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return instant{}, false
	}
	return instantOf(t), true
}

// ErrPayload is wrapped by NewDoc's errors: the payload is not a JSON object.
var ErrPayload = errors.New("filter: payload is not a JSON object")

// NewDoc decodes payload, a JSON object (the subscription field's value), for matching.
// JSON null gives a Doc where every field is missing. The payload's size is the caller's
// bound; NewDoc reads only its top level, keeping nested objects and lists opaque.
func NewDoc(payload json.RawMessage) (*Doc, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPayload, err)
	}
	d := &Doc{fields: make([]docField, 0, len(raw))}
	for name, r := range raw {
		v, err := decodeValue(r)
		if err != nil {
			return nil, fmt.Errorf("%w: field %q: %w", ErrPayload, name, err)
		}
		d.fields = append(d.fields, docField{name: name, value: v})
	}
	slices.SortFunc(d.fields, func(a, b docField) int { return strings.Compare(a.name, b.name) })
	return d, nil
}

// decodeValue classifies one JSON value already checked by json.Unmarshal.
func decodeValue(r json.RawMessage) (value, error) {
	if len(r) == 0 {
		return value{}, errors.New("empty value")
	}
	switch c := r[0]; {
	case c == '"':
		// Without escapes, valid UTF-8 between the quotes is the string itself; otherwise
		// json.Unmarshal unescapes (and turns invalid UTF-8 into U+FFFD).
		s := string(r[1 : len(r)-1])
		if bytes.IndexByte(r, '\\') >= 0 || !utf8.ValidString(s) {
			if err := json.Unmarshal(r, &s); err != nil {
				return value{}, err
			}
		}
		v := value{kind: valString, str: s}
		v.t, v.isTime = parseTime(s)
		return v, nil
	case c == '-' || ('0' <= c && c <= '9'):
		x, err := strconv.ParseFloat(string(r), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return value{}, err
		}
		// Out of float64's range: ParseFloat's ±Inf or 0 compare as the value would.
		if x == 0 {
			x = 0 // no -0
		}
		return value{kind: valNumber, num: x}, nil
	case c == 't':
		return value{kind: valBool, b: true}, nil
	case c == 'f':
		return value{kind: valBool}, nil
	case c == 'n':
		return value{kind: valNull}, nil
	default:
		return value{kind: valOther}, nil
	}
}

// lookup returns the value of the payload field named name, or nil when it is missing.
func (d *Doc) lookup(name string) *value {
	if d == nil {
		return nil
	}
	f := d.fields
	if len(f) <= 8 {
		for i := range f {
			if f[i].name == name {
				return &f[i].value
			}
		}
		return nil
	}
	lo, hi := 0, len(f)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if f[m].name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(f) && f[lo].name == name {
		return &f[lo].value
	}
	return nil
}
