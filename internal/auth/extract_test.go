package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/internal/auth"
)

const jwtLike = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"

func TestFromAuthorizationHeader(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"Bearer " + jwtLike, jwtLike, true},
		{"bearer " + jwtLike, jwtLike, true},
		{"BEARER\t" + jwtLike, jwtLike, true},
		{"  Bearer    " + jwtLike + "  ", jwtLike, true},
		{"Bearer", "", false},
		{"Bearer   ", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{jwtLike, "", false}, // no scheme: a header needs one
		{"Bearerx " + jwtLike, "", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, ok := auth.FromAuthorizationHeader(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("FromAuthorizationHeader(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestFromQuery(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{jwtLike, jwtLike, true},
		{"Bearer " + jwtLike, jwtLike, true},
		{"bearer " + jwtLike, jwtLike, true},
		{"Bearer+" + jwtLike, jwtLike, true}, // a form-encoded space left as '+'
		{" " + jwtLike + " ", jwtLike, true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"", "", false},
		{"   ", "", false},
		{"Bearerabc", "Bearerabc", true}, // no separator: the whole value is the token (Verify will judge it)
	}
	for _, c := range cases {
		got, ok := auth.FromQuery(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("FromQuery(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestFromInitPayload(t *testing.T) {
	cases := []struct {
		name, in string
		want     string
		ok       bool
		err      string // substring of the error; "" for none
	}{
		{"bearer", `{"authorization":"Bearer ` + jwtLike + `"}`, jwtLike, true, ""},
		{"bare token", `{"authorization":"` + jwtLike + `"}`, jwtLike, true, ""},
		{"capitalised key", `{"Authorization":"Bearer ` + jwtLike + `"}`, jwtLike, true, ""},
		{"headers", `{"headers":{"Authorization":"Bearer ` + jwtLike + `"}}`, jwtLike, true, ""},
		{"top level wins", `{"authorization":"top","headers":{"authorization":"nested"}}`, "top", true, ""},
		{"other fields", `{"client":"x","authorization":"Bearer ` + jwtLike + `","n":[1,{}]}`, jwtLike, true, ""},
		{"absent", ``, "", false, ""},
		{"null", `null`, "", false, ""},
		{"empty object", `{}`, "", false, ""},
		{"no authorization", `{"token":"x"}`, "", false, ""},
		{"empty authorization", `{"authorization":""}`, "", false, ""},
		{"scheme only", `{"authorization":"Bearer "}`, "", false, ""},
		{"null authorization", `{"authorization":null}`, "", false, ""},
		{"headers not an object", `{"headers":"x"}`, "", false, ""},
		{"headers without authorization", `{"headers":{"x":"y"}}`, "", false, ""},
		{"array", `["Bearer x"]`, "", false, "not a JSON object"},
		{"string", `"Bearer x"`, "", false, "not a JSON object"},
		{"broken JSON", `{"authorization":`, "", false, "not a JSON object"},
		{"number authorization", `{"authorization":42}`, "", false, "must be a string"},
		{"object authorization", `{"authorization":{"token":"x"}}`, "", false, "must be a string"},
		{"ambiguous", `{"authorization":"a","Authorization":"b"}`, "", false, "more than one authorization"},
		{"ambiguous headers", `{"headers":{"authorization":"a","AUTHORIZATION":"b"}}`, "", false, "more than one"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok, err := auth.FromInitPayload([]byte(c.in))
			if c.err != "" {
				if !errors.Is(err, auth.ErrInvalidPayload) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want ErrInvalidPayload with %q", err, c.err)
				}
				if ok || got != "" {
					t.Fatalf("got %q, %v with an error", got, ok)
				}
				return
			}
			if err != nil || got != c.want || ok != c.ok {
				t.Fatalf("= %q, %v, %v; want %q, %v, nil", got, ok, err, c.want, c.ok)
			}
		})
	}
}

// TestFromInitPayloadBound sends a payload of exactly MaxInitPayloadBytes and one byte more.
func TestFromInitPayloadBound(t *testing.T) {
	payload := func(n int) []byte {
		p := `{"authorization":"Bearer ` + jwtLike + `","pad":"`
		p += strings.Repeat("x", n-len(p)-2) + `"}`
		if len(p) != n {
			t.Fatalf("built %d bytes, want %d", len(p), n)
		}
		return []byte(p)
	}
	got, ok, err := auth.FromInitPayload(payload(auth.MaxInitPayloadBytes))
	if err != nil || !ok || got != jwtLike {
		t.Fatalf("at the bound: %q, %v, %v", got, ok, err)
	}
	_, ok, err = auth.FromInitPayload(payload(auth.MaxInitPayloadBytes + 1))
	if !errors.Is(err, auth.ErrInvalidPayload) || ok || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("one byte over: ok %v, err %v", ok, err)
	}
	if strings.Contains(err.Error(), jwtLike) {
		t.Fatalf("error echoes the token: %v", err)
	}
}

func FuzzFromAuthorizationHeader(f *testing.F) {
	for _, s := range []string{"Bearer " + jwtLike, "bearer\tx", "Basic abc", "Bearer", "Bearer  ", "", " Bearer a b ",
		"Bearer \u0085x", "BEARER\u00a0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok, ok := auth.FromAuthorizationHeader(v)
		if !ok {
			if tok != "" {
				t.Fatalf("(%q) = %q with ok false", v, tok)
			}
			return
		}
		if tok == "" || tok != strings.TrimSpace(tok) || !strings.Contains(v, tok) {
			t.Fatalf("(%q) = %q: want a non-empty trimmed substring", v, tok)
		}
		if again, ok := auth.FromAuthorizationHeader("Bearer " + tok); !ok || again != tok {
			t.Fatalf("re-extracting %q gave %q, %v", tok, again, ok)
		}
	})
}

func FuzzFromQuery(f *testing.F) {
	for _, s := range []string{jwtLike, "Bearer " + jwtLike, "Bearer+" + jwtLike, "bearer", "Bearer Bearer x", "", " + "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok, ok := auth.FromQuery(v)
		if ok != (tok != "") {
			t.Fatalf("(%q) = %q, %v", v, tok, ok)
		}
		if !ok {
			return
		}
		if tok != strings.TrimSpace(tok) || !strings.Contains(v, tok) {
			t.Fatalf("(%q) = %q: want a trimmed substring", v, tok)
		}
		if again, ok := auth.FromQuery("Bearer " + tok); !ok || again != tok {
			t.Fatalf("re-extracting %q gave %q, %v", tok, again, ok)
		}
	})
}

func FuzzFromInitPayload(f *testing.F) {
	for _, s := range []string{
		`{"authorization":"Bearer ` + jwtLike + `"}`, `{"Authorization":"x"}`, `{"headers":{"authorization":"y"}}`,
		`null`, ``, `{}`, `[]`, `"x"`, `{"authorization":1}`, `{"authorization":"a","AUTHORIZATION":"b"}`,
		`{"headers":[1]}`, `{"authorization":"\u0000"}`, `{"a":{"b":{"c":[[[[]]]]}}}`, `{"authorization":"Bearer+x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		tok, ok, err := auth.FromInitPayload(payload)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidPayload) || ok || tok != "" {
				t.Fatalf("(%q) = %q, %v, %v", payload, tok, ok, err)
			}
			if len(payload) > auth.MaxInitPayloadBytes && !strings.Contains(err.Error(), "over the limit") {
				t.Fatalf("oversized payload: %v", err)
			}
			return
		}
		if len(payload) > auth.MaxInitPayloadBytes {
			t.Fatalf("%d bytes accepted", len(payload))
		}
		if ok != (tok != "") || tok != strings.TrimSpace(tok) {
			t.Fatalf("(%q) = %q, %v", payload, tok, ok)
		}
	})
}
