package envelope_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/internal/envelope"
)

func TestCheckType(t *testing.T) {
	for _, tc := range []struct {
		typ, err string
	}{
		{"chat.announcement", ""},
		{"Order Placed", ""},
		{"é", ""},
		{strings.Repeat("t", envelope.MaxType), ""},
		{strings.Repeat("t", envelope.MaxType+1), "invalid event type: is 129 bytes, over the limit of 128"},
		{"", "invalid event type: is empty"},
		{"a\nb", "invalid event type: has control characters"},
		{"a\u0085b", "invalid event type: has control characters"},
		{"\xff", "invalid event type: is not valid UTF-8"},
	} {
		err := envelope.CheckType(tc.typ)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("CheckType(%q) = %v", tc.typ, err)
		case tc.err != "" && (err == nil || err.Error() != tc.err || !errors.Is(err, envelope.ErrType)):
			t.Errorf("CheckType(%q) = %v, want %q", tc.typ, err, tc.err)
		}
	}
}

func TestCheckSourceAndID(t *testing.T) {
	if err := envelope.CheckSource("urn:orders/eu"); err != nil {
		t.Error(err)
	}
	if err := envelope.CheckSource("my service"); err == nil || err.Error() != "has spaces (a source is a URI reference)" {
		t.Errorf("CheckSource with a space = %v", err)
	}
	if err := envelope.CheckID("id with spaces"); err != nil {
		t.Error(err)
	}
	if err := envelope.CheckID(strings.Repeat("i", envelope.MaxID+1)); err == nil {
		t.Error("CheckID accepted an id over MaxID")
	}
	if got := envelope.Identity("urn:a", "1 2"); got != "urn:a 1 2" {
		t.Errorf("Identity = %q", got)
	}
}

func TestCheckData(t *testing.T) {
	fill := func(n int) []byte { // a JSON object of exactly n bytes
		return []byte(`{"a":"` + strings.Repeat("x", n-8) + `"}`)
	}
	for _, tc := range []struct {
		data []byte
		err  string
	}{
		{[]byte(`{}`), ""},
		{[]byte(" \n{\"a\":[1]} "), ""},
		{fill(envelope.MaxData), ""},
		{fill(envelope.MaxData + 1), "is 131073 bytes, over the limit of 131072"},
		{[]byte(`[]`), "is not a JSON object"},
		{[]byte(`"x"`), "is not a JSON object"},
		{[]byte(`{"a":1} {}`), "is not a JSON object"},
		{[]byte(`{"a":`), "is not a JSON object"},
		{nil, "is not a JSON object"},
	} {
		err := envelope.CheckData(tc.data)
		if (tc.err == "" && err != nil) || (tc.err != "" && (err == nil || err.Error() != tc.err)) {
			t.Errorf("CheckData(%.40q) = %v, want %q", tc.data, err, tc.err)
		}
	}
	if !envelope.IsScheduled("aws.events", "Scheduled Event") || envelope.IsScheduled("com.example", "Scheduled Event") {
		t.Error("IsScheduled")
	}
}
