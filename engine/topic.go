package engine

import (
	"encoding/json"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// Topic returns the canonical topic of a subscription field and the values of its @topic arguments:
// the field name, then the arguments as a sorted, escaped query string, e.g. "messageAdded?roomId=r1".
// A null (nil) value is left out.
//
// The same values give the same topic whichever way they arrive: at subscribe time as gqlparser
// values (string, int64, float64, bool, nil) or variables (string, json.Number, bool), from a
// payload decoded with json.Decoder.UseNumber (string, json.Number, bool). A number is written in
// its shortest exact decimal form, whatever its type or spelling (5, int64(5), json.Number("5"),
// json.Number("5.0") and float64(5) are all "5"), so an ID sent as the number 5 and as the string
// "5" address the same topic; an enum value is its name. Other values (the objects and lists a
// custom scalar may hold) are written as compact JSON with sorted keys.
func Topic(field string, args map[string]any) string {
	v := make(url.Values, len(args))
	for name, val := range args {
		if val == nil {
			continue
		}
		v.Set(name, topicValue(val))
	}
	if len(v) == 0 {
		return field
	}
	return field + "?" + v.Encode()
}

// TopicOf returns the topic of a subscription field as an operation selects it: the field's name
// and the values of its @topic arguments, with variables and defaults applied. It is how a
// subscription's topic is derived when it is stored, and how Yield checks an event's address.
func TopicOf(f *ast.Field, vars map[string]any) string {
	if f.Definition == nil {
		return f.Name
	}
	var args map[string]any
	var values map[string]any
	for _, def := range f.Definition.Arguments {
		if def.Directives.ForName(dirTopic) == nil {
			continue
		}
		if values == nil {
			values = f.ArgumentMap(vars)
			args = make(map[string]any, len(f.Definition.Arguments))
		}
		args[def.Name] = values[def.Name]
	}
	return Topic(f.Name, args)
}

func topicValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return canonicalNumber(string(v))
	case int:
		return strconv.Itoa(v)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return formatFloat(v)
	case bool:
		return strconv.FormatBool(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
}

// canonicalNumber writes a JSON number's value in its shortest form: an integer spelt as digits is
// kept exactly as it is (at any magnitude), any other number is written as its float64 value is
// (so 1.0 and 1e0 are "1"). Text that is not a number is kept as it is.
func canonicalNumber(s string) string {
	if isDigits(s) {
		if s == "-0" {
			return "0"
		}
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return formatFloat(f)
}

func isDigits(s string) bool {
	if strings.HasPrefix(s, "-") {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// formatFloat writes an integral value as plain digits, as an integer spelt as digits is kept, and
// any other value in its shortest round-tripping form.
func formatFloat(f float64) string {
	switch {
	case f == 0:
		return "0"
	case f == math.Trunc(f) && !math.IsInf(f, 0):
		return strconv.FormatFloat(f, 'f', -1, 64)
	default:
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
}
