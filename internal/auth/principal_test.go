package auth_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/auth"
)

func TestPrincipalJSON(t *testing.T) {
	p := auth.Principal{
		Subject: "user-1",
		Expires: time.Unix(1767225600, 0).UTC(),
		Claims: map[string]json.RawMessage{
			"rooms": json.RawMessage(`["r1","r2"]`),
			"name":  json.RawMessage(`"Ann"`),
		},
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"sub":"user-1","exp":1767225600,"claims":{"name":"Ann","rooms":["r1","r2"]}}`
	if string(b) != want {
		t.Fatalf("Marshal = %s\nwant      %s", b, want)
	}
	var back auth.Principal
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip = %#v, want %#v", back, p)
	}

	anon, _ := json.Marshal(auth.Anonymous())
	if string(anon) != `{}` {
		t.Fatalf("anonymous = %s, want {}", anon)
	}
	for _, in := range []string{`{}`, `null`} {
		back = auth.Principal{Subject: "x"}
		if err := json.Unmarshal([]byte(in), &back); err != nil || !back.IsAnonymous() || !reflect.DeepEqual(back, auth.Principal{}) {
			t.Fatalf("Unmarshal(%s) = %#v, %v; want anonymous", in, back, err)
		}
	}
	if err := json.Unmarshal([]byte(`{"sub":1}`), &back); err == nil {
		t.Fatal("a numeric sub was accepted")
	}
}

func TestPrincipalExpired(t *testing.T) {
	exp := time.Unix(1767225600, 0)
	p := auth.Principal{Subject: "u", Expires: exp}
	if p.Expired(exp.Add(-time.Nanosecond)) || !p.Expired(exp) || !p.Expired(exp.Add(time.Hour)) {
		t.Fatal("Expired is not exp-exclusive")
	}
	if auth.Anonymous().Expired(time.Now().Add(100 * 365 * 24 * time.Hour)) {
		t.Fatal("the anonymous principal expired")
	}
}

func TestPrincipalClaims(t *testing.T) {
	p := auth.Principal{Subject: "u", Claims: map[string]json.RawMessage{
		"name":   json.RawMessage(`"Ann"`),
		"rooms":  json.RawMessage(`["r1","","r2"]`),
		"scope":  json.RawMessage(`"read  write,admin"`),
		"groups": json.RawMessage(`[]`),
		"mixed":  json.RawMessage(`["r1",2]`),
		"n":      json.RawMessage(`42`),
		"obj":    json.RawMessage(`{"a":true}`),
	}}
	if s, ok := p.StringClaim("name"); !ok || s != "Ann" {
		t.Errorf("StringClaim(name) = %q, %v", s, ok)
	}
	if _, ok := p.StringClaim("n"); ok {
		t.Error("StringClaim of a number succeeded")
	}
	if _, ok := p.StringClaim("absent"); ok {
		t.Error("StringClaim of an absent claim succeeded")
	}
	strs := []struct {
		name string
		want []string
		ok   bool
	}{
		{"rooms", []string{"r1", "r2"}, true},
		{"scope", []string{"read", "write", "admin"}, true},
		{"name", []string{"Ann"}, true},
		{"groups", []string{}, true},
		{"mixed", nil, false},
		{"n", nil, false},
		{"obj", nil, false},
		{"absent", nil, false},
	}
	for _, c := range strs {
		got, ok := p.StringsClaim(c.name)
		if ok != c.ok || (ok && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("StringsClaim(%s) = %#v, %v; want %#v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
	if v, ok := p.Claim("obj"); !ok || !reflect.DeepEqual(v, map[string]any{"a": true}) {
		t.Errorf("Claim(obj) = %#v, %v", v, ok)
	}
	if v, ok := p.Claim("n"); !ok || v != 42.0 {
		t.Errorf("Claim(n) = %#v, %v", v, ok)
	}
	if _, ok := p.Claim("absent"); ok {
		t.Error("Claim of an absent claim succeeded")
	}
}

// FuzzPrincipalJSON: stored principals are read back without panic, and what reads re-encodes stably.
func FuzzPrincipalJSON(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `{"sub":"u","exp":1767225600,"claims":{"rooms":["a"]}}`,
		`{"sub":"u","exp":-5}`, `{"claims":{"x":null}}`, `[]`, `{"exp":1e30}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p auth.Principal
		if json.Unmarshal(data, &p) != nil {
			return
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", p, err)
		}
		var q auth.Principal
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatalf("re-reading %s: %v", b, err)
		}
		b2, _ := json.Marshal(q)
		if string(b) != string(b2) {
			t.Fatalf("not stable: %s then %s", b, b2)
		}
		p.Expired(time.Now())
		for name := range p.Claims {
			p.Claim(name)
			p.StringClaim(name)
			p.StringsClaim(name)
		}
	})
}

func TestExpiredJSON(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{``, false}, {`null`, false}, {`{}`, false},
		{`{"sub":"a","exp":1800000001}`, false},
		{`{"sub":"a","exp":1800000000}`, true}, // exp is exclusive, as Expired
		{`{"sub":"a","exp":1799999999}`, true},
		{`{"sub":`, true}, {`[1]`, true},
	} {
		if got := auth.ExpiredJSON(json.RawMessage(tc.raw), now); got != tc.want {
			t.Errorf("ExpiredJSON(%s) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}
