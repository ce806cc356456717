package auth

import (
	"bytes"
	"encoding/json"
	"time"
)

// Principal is an authenticated caller: what a connection record stores instead of the token.
// The zero Principal is the anonymous caller of ModeNone.
//
// Its JSON is compact and deterministic (claims sorted by name), so it can be part of a render key:
//
//	{"sub":"user-1","exp":1767225600,"claims":{"name":"Ann","rooms":["r1","r2"]}}
type Principal struct {
	// Subject is the token's sub claim; never empty for a verified token, empty when anonymous.
	Subject string
	// Expires is the token's exp claim plus the Verifier's leeway, so Expired agrees with Verify;
	// zero when anonymous (never expires).
	Expires time.Time
	// Claims holds the configured claims (Config.Claims) present in the token, as compact JSON.
	// Read them with Claim, StringClaim and StringsClaim.
	Claims map[string]json.RawMessage
}

// Anonymous returns the principal of an unauthenticated caller (ModeNone): no subject, no claims,
// never expires.
func Anonymous() Principal { return Principal{} }

// IsAnonymous reports whether p has no subject.
func (p Principal) IsAnonymous() bool { return p.Subject == "" }

// Expired reports whether p's token has expired at now. The anonymous principal never expires.
func (p Principal) Expired(now time.Time) bool {
	return !p.Expires.IsZero() && !now.Before(p.Expires)
}

// Claim returns the named claim decoded as encoding/json decodes into an any (string, float64, bool,
// []any, map[string]any); ok is false when the claim is absent.
func (p Principal) Claim(name string) (v any, ok bool) {
	raw, ok := p.Claims[name]
	if !ok || json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	return v, true
}

// StringClaim returns the named claim when it is a JSON string.
func (p Principal) StringClaim(name string) (string, bool) {
	var s string
	raw, ok := p.Claims[name]
	if !ok || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// StringsClaim returns the named claim as a list of strings. It accepts a JSON array of strings
// (Cognito's groups) or one string of items separated by spaces or commas (OAuth's scope); empty items
// are dropped. ok is false when the claim is absent or of another shape (a number, or an array holding
// a non-string): callers that restrict access on a claim must then deny, not allow.
func (p Principal) StringsClaim(name string) ([]string, bool) {
	raw, ok := p.Claims[name]
	if !ok {
		return nil, false
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil && list != nil {
		out := list[:0]
		for _, s := range list {
			if s != "" {
				out = append(out, s)
			}
		}
		return out, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return splitList(s), true
	}
	return nil, false
}

// principalJSON is Principal's wire form: short keys, exp in Unix seconds.
type principalJSON struct {
	Sub    string                     `json:"sub,omitempty"`
	Exp    int64                      `json:"exp,omitempty"`
	Claims map[string]json.RawMessage `json:"claims,omitempty"`
}

// MarshalJSON writes the compact form shown on Principal; the anonymous principal is {}.
func (p Principal) MarshalJSON() ([]byte, error) {
	w := principalJSON{Sub: p.Subject, Claims: p.Claims}
	if !p.Expires.IsZero() {
		w.Exp = p.Expires.Unix()
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON wrote; empty input and null give the anonymous principal.
func (p *Principal) UnmarshalJSON(b []byte) error {
	*p = Principal{}
	if b = bytes.TrimSpace(b); len(b) == 0 || string(b) == "null" {
		return nil
	}
	var w principalJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	p.Subject, p.Claims = w.Sub, w.Claims
	if w.Exp != 0 {
		p.Expires = time.Unix(w.Exp, 0).UTC()
	}
	return nil
}

// ExpiredJSON reports whether a principal stored as JSON (the form MarshalJSON writes, as a
// connection or a subscription keeps it) has expired at now: the rule the fan-out, the sweeper
// and the WebSocket routes apply. Empty JSON is the anonymous principal, which never expires; JSON
// that cannot be read counts as expired, so that it is never trusted.
func ExpiredJSON(raw json.RawMessage, now time.Time) bool {
	var p Principal
	if err := p.UnmarshalJSON(raw); err != nil {
		return true
	}
	return p.Expired(now)
}
