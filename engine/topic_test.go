package engine_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"
)

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber() // as the executor decodes variables
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return m
}

// subscribeTopic derives a subscription's topic the way it is derived when it is stored:
// gqlparser parses and validates the document, the variables are coerced as gqlgen coerces them,
// and TopicOf reads the field's @topic arguments.
func subscribeTopic(t *testing.T, schema *ast.Schema, query, vars string) string {
	t.Helper()
	doc, errs := gqlparser.LoadQuery(schema, query)
	if errs != nil {
		t.Fatalf("%s: %v", query, errs)
	}
	op := doc.Operations[0]
	var raw map[string]any
	if vars != "" {
		raw = decodeJSON(t, vars)
	}
	coerced, err := validator.VariableValues(schema, op, raw)
	if err != nil {
		t.Fatalf("%s %s: %v", query, vars, err)
	}
	return engine.TopicOf(op.SelectionSet[0].(*ast.Field), coerced)
}

// TestTopicsAgree checks, for every kind of @topic value, that the topic a subscription is stored
// under (from literals, or from variables) is the topic an event with the same values in its
// payload is addressed to.
func TestTopicsAgree(t *testing.T) {
	schema := load(t, "testdata/valid/topics.graphqls")
	src, err := engine.Analyze(schema)
	if err != nil {
		t.Fatal(err)
	}
	type sub struct{ query, vars string }
	for _, tc := range []struct {
		name     string
		want     string
		subs     []sub
		payloads []string
	}{
		{"ID as a number and as a string", "t?id=5",
			[]sub{{`subscription { t(id: 5) { id } }`, ""}, {`subscription { t(id: "5") { id } }`, ""},
				{`subscription($v: ID) { t(id: $v) { id } }`, `{"v":5}`}, {`subscription($v: ID) { t(id: $v) { id } }`, `{"v":"5"}`},
				{`subscription($v: ID = 5) { t(id: $v) { id } }`, ""}},
			[]string{`{"id":5}`, `{"id":"5"}`, `{"id":5.0}`, `{"id":5e0}`}},
		{"ID beyond float64's exact integers", "t?id=9007199254740993",
			[]sub{{`subscription { t(id: 9007199254740993) { id } }`, ""}, {`subscription { t(id: "9007199254740993") { id } }`, ""},
				{`subscription($v: ID) { t(id: $v) { id } }`, `{"v":9007199254740993}`}},
			[]string{`{"id":9007199254740993}`, `{"id":"9007199254740993"}`}},
		{"an ID string is never a number", "t?id=05",
			[]sub{{`subscription { t(id: "05") { id } }`, ""}, {`subscription($v: ID) { t(id: $v) { id } }`, `{"v":"05"}`}},
			[]string{`{"id":"05"}`}},
		{"ints", "t?n=-42",
			[]sub{{`subscription { t(n: -42) { id } }`, ""}, {`subscription($v: Int) { t(n: $v) { id } }`, `{"v":-42}`}},
			[]string{`{"n":-42}`, `{"n":-42.0}`, `{"n":-4.2e1}`}},
		{"zero", "t?n=0",
			[]sub{{`subscription { t(n: 0) { id } }`, ""}, {`subscription($v: Int) { t(n: $v) { id } }`, `{"v":-0}`}},
			[]string{`{"n":0}`, `{"n":-0}`, `{"n":0.0}`}},
		{"booleans", "t?b=false",
			[]sub{{`subscription { t(b: false) { id } }`, ""}, {`subscription($v: Boolean) { t(b: $v) { id } }`, `{"v":false}`}},
			[]string{`{"b":false}`}},
		{"enums", "t?c=GREEN",
			[]sub{{`subscription { t(c: GREEN) { id } }`, ""}, {`subscription($v: Color) { t(c: $v) { id } }`, `{"v":"GREEN"}`}},
			[]string{`{"c":"GREEN"}`}},
		{"strings are escaped", "t?s=a+b%26c%3Dd%2F%C3%A9%3F",
			[]sub{{`subscription { t(s: "a b&c=d/é?") { id } }`, ""}, {`subscription($v: String) { t(s: $v) { id } }`, `{"v":"a b&c=d/\u00e9?"}`}},
			[]string{`{"s":"a b&c=d/é?"}`}},
		{"integral floats", "t?f=2",
			[]sub{{`subscription { t(f: 2) { id } }`, ""}, {`subscription { t(f: 2.0) { id } }`, ""},
				{`subscription($v: Float) { t(f: $v) { id } }`, `{"v":2.0}`}, {`subscription($v: Float) { t(f: $v) { id } }`, `{"v":2}`}},
			[]string{`{"f":2}`, `{"f":2.00}`, `{"f":0.2e1}`}},
		{"fractional floats", "t?f=0.1",
			[]sub{{`subscription { t(f: 0.1) { id } }`, ""}, {`subscription($v: Float) { t(f: $v) { id } }`, `{"v":0.10}`}},
			[]string{`{"f":0.1}`, `{"f":1e-1}`}},
		{"nulls are left out", "t?n=1",
			[]sub{{`subscription { t(n: 1) { id } }`, ""}, {`subscription { t(n: 1, id: null, s: null) { id } }`, ""},
				{`subscription($v: ID) { t(n: 1, id: $v) { id } }`, `{"v":null}`}, {`subscription($v: ID) { t(n: 1, id: $v) { id } }`, `{}`}},
			[]string{`{"n":1,"id":null,"s":null,"b":null,"c":null,"f":null}`}},
		{"several, sorted; other arguments ignored", "t?b=true&c=RED&f=1.5&id=x&n=3&s=y",
			[]sub{{`subscription { t(s: "y", n: 3, id: "x", f: 1.5, c: RED, b: true, other: "z") { id } }`, ""},
				{`subscription($s: String, $o: String) { t(s: $s, n: 3, id: "x", f: 1.5, c: RED, b: true, other: $o) { id } }`, `{"s":"y","o":"q"}`}},
			[]string{`{"b":true,"c":"RED","f":1.5,"id":"x","n":3,"s":"y","other":"w"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range tc.subs {
				if got := subscribeTopic(t, schema, s.query, s.vars); got != tc.want {
					t.Errorf("subscribe %s %s: topic %q, want %q", s.query, s.vars, got, tc.want)
				}
			}
			for _, p := range tc.payloads {
				// A payload has every @topic field (a missing one is an error); the others are null.
				m := decodeJSON(t, p)
				for _, name := range []string{"id", "n", "b", "c", "s", "f"} {
					if _, ok := m[name]; !ok {
						m[name] = nil
					}
				}
				full, _ := json.Marshal(m) // json.Number keeps its spelling
				evs, err := src.Events(engine.Change{ID: "e", Type: "t", Value: full})
				if err != nil || len(evs) != 1 {
					t.Fatalf("payload %s: %+v, %v", p, evs, err)
				}
				if evs[0].Topic != tc.want {
					t.Errorf("payload %s: topic %q, want %q", full, evs[0].Topic, tc.want)
				}
			}
			f, _ := src.Field("t")
			if got := f.Topic(decodeJSON(t, tc.payloads[0])); got != tc.want {
				t.Errorf("Field.Topic(%s) = %q, want %q", tc.payloads[0], got, tc.want)
			}
		})
	}
}

func TestTopicValues(t *testing.T) {
	for _, tc := range []struct {
		args map[string]any
		want string
	}{
		{nil, "f"},
		{map[string]any{"a": nil}, "f"},
		{map[string]any{"a": ""}, "f?a="},
		{map[string]any{"a": "null"}, "f?a=null"},
		{map[string]any{"a": 7}, "f?a=7"},
		{map[string]any{"a": int32(7)}, "f?a=7"},
		{map[string]any{"a": int64(7)}, "f?a=7"},
		{map[string]any{"a": 7.0}, "f?a=7"},
		{map[string]any{"a": json.Number("7")}, "f?a=7"},
		{map[string]any{"a": json.Number("1e21")}, "f?a=1000000000000000000000"},
		{map[string]any{"a": 1e21}, "f?a=1000000000000000000000"},
		{map[string]any{"a": json.Number("1e400")}, "f?a=1e400"}, // out of float64's range: kept as sent
		{map[string]any{"a": json.Number("123456789012345678901234567890")}, "f?a=123456789012345678901234567890"},
		{map[string]any{"a": 1.25e-7}, "f?a=1.25e-07"},
		{map[string]any{"a": json.Number("0.000000125")}, "f?a=1.25e-07"},
		{map[string]any{"a": map[string]any{"y": 1, "x": []any{true}}}, "f?a=%7B%22x%22%3A%5Btrue%5D%2C%22y%22%3A1%7D"},
	} {
		if got := engine.Topic("f", tc.args); got != tc.want {
			t.Errorf("Topic(f, %v) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
