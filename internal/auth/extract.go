package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidPayload is returned by FromInitPayload for a payload it cannot read: over
// MaxInitPayloadBytes, not a JSON object, or an authorization that is not a string. The protocol answer
// is a close with 4400 (bad request), not 4401.
var ErrInvalidPayload = errors.New("auth: invalid connection_init payload")

// FromAuthorizationHeader returns the token of an "Authorization: Bearer <token>" header value. The
// scheme is case-insensitive; spaces or tabs separate it from the token. ok is false for another scheme
// or an empty token.
func FromAuthorizationHeader(v string) (token string, ok bool) {
	v = strings.TrimSpace(v)
	i := strings.IndexAny(v, " \t")
	if i < 0 || !strings.EqualFold(v[:i], "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(v[i:])
	return token, token != ""
}

// FromQuery returns the token of the $connect "authorization" query parameter (already URL-decoded by
// API Gateway), with or without a "Bearer " prefix. A '+' after "Bearer" counts as the space it encodes
// in a form-encoded query (no JWT contains '+'). ok is false when the value is empty.
func FromQuery(value string) (token string, ok bool) {
	token = stripBearer(value)
	return token, token != ""
}

// FromInitPayload returns the token of a connection_init payload (graphql-transport-ws and graphql-ws
// alike): the string under "authorization", or under "headers"."authorization" (the Apollo
// connectionParams habit), with or without a "Bearer " prefix. Keys match case-insensitively
// ("Authorization" too); two keys that match at one level are refused as ambiguous. A top-level
// authorization wins over one under headers.
//
// An absent, null or empty payload, or one with no authorization, gives ok false and no error (the token
// may have come at $connect). A payload over MaxInitPayloadBytes, one that is not a JSON object, or an
// authorization that is not a string gives an error wrapping ErrInvalidPayload; its message never
// contains the payload.
func FromInitPayload(payload []byte) (token string, ok bool, err error) {
	if len(payload) > MaxInitPayloadBytes {
		return "", false, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrInvalidPayload,
			len(payload), MaxInitPayloadBytes)
	}
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 || string(payload) == "null" {
		return "", false, nil
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(payload, &top) != nil || top == nil {
		return "", false, fmt.Errorf("%w: not a JSON object", ErrInvalidPayload)
	}
	raw, found, err := lookupFold(top, "authorization")
	if err != nil {
		return "", false, err
	}
	if !found {
		h, hfound, err := lookupFold(top, "headers")
		if err != nil || !hfound {
			return "", false, err
		}
		var headers map[string]json.RawMessage
		if json.Unmarshal(h, &headers) != nil {
			return "", false, nil // headers of another shape carry no token
		}
		if raw, found, err = lookupFold(headers, "authorization"); err != nil || !found {
			return "", false, err
		}
	}
	if string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false, fmt.Errorf("%w: authorization must be a string", ErrInvalidPayload)
	}
	token = stripBearer(s)
	return token, token != "", nil
}

// lookupFold finds the one key of m equal to name under case folding.
func lookupFold(m map[string]json.RawMessage, name string) (json.RawMessage, bool, error) {
	var v json.RawMessage
	n := 0
	for k, raw := range m {
		if strings.EqualFold(k, name) {
			v, n = raw, n+1
		}
	}
	if n > 1 {
		return nil, false, fmt.Errorf("%w: more than one %s key", ErrInvalidPayload, name)
	}
	return v, n == 1, nil
}

// stripBearer trims s and removes one leading "Bearer" scheme (any case) followed by spaces or tabs, or
// by one '+'; the scheme alone gives "".
func stripBearer(s string) string {
	s = strings.TrimSpace(s)
	const scheme = "bearer"
	if strings.EqualFold(s, scheme) {
		return "" // the scheme alone: no token
	}
	if len(s) <= len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
		return s
	}
	switch rest := s[len(scheme):]; rest[0] {
	case '+':
		return strings.TrimSpace(rest[1:])
	case ' ', '\t':
		return strings.TrimSpace(rest)
	default:
		return s // "Bearerx…" is not the scheme
	}
}
