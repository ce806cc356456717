package engine_test

import (
	"reflect"
	"testing"

	"github.com/realtime-gql/lambdaws/engine"
)

func TestParseKeyTemplate(t *testing.T) {
	for _, tc := range []struct {
		in     string
		fields []string
		err    string
	}{
		{"room#{roomId}", []string{"roomId"}, ""},
		{"{tenant}#room#{roomId}#", []string{"tenant", "roomId"}, ""},
		{"META", nil, ""},
		{"{_a1}", []string{"_a1"}, ""},
		{"", nil, "is empty"},
		{"a{b", nil, "unclosed { at byte 1"},
		{"a}b", nil, "} at byte 1 closes no placeholder"},
		{"{1a}", nil, "{1a} at byte 0 is not a placeholder: want {field}, a GraphQL field name"},
		{"{a-b}", nil, "{a-b} at byte 0 is not a placeholder: want {field}, a GraphQL field name"},
		{"{a}{b}", nil, "placeholders {a} and {b} must be separated by literal text"},
		{"{a{b}}", nil, "{a{b} at byte 0 is not a placeholder: want {field}, a GraphQL field name"},
	} {
		k, err := engine.ParseKeyTemplate(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseKeyTemplate(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || k.String() != tc.in || !reflect.DeepEqual(k.Fields(), tc.fields) {
			t.Errorf("ParseKeyTemplate(%q) = %v %q, %v", tc.in, k, k.Fields(), err)
		}
	}
}
