// Package auth authenticates callers: it reads a bearer token from where clients put it and verifies it
// as a JWT against configured keys, yielding the Principal a connection stores instead of the token.
//
// Configuration (ConfigFromEnv; see Config for each field):
//
//	AUTH_MODE                       none | jwt (unset: none; a Lambda deployment requires it, see ModeSet)
//	AUTH_JWKS_URL                   the issuer's JWKS endpoint (https, or http on loopback)    } exactly one
//	AUTH_JWKS_FILE                  a JWKS document on disk                                    } in jwt mode
//	AUTH_HS256_SECRET               a shared secret of at least 32 bytes (local use, tests)    }
//	AUTH_ISSUER, AUTH_AUDIENCE      required iss and aud (required with a JWKS; with HS256, checked when set)
//	AUTH_LEEWAY                     clock skew on exp/nbf/iat (default 30s, at most 5m)
//	AUTH_CLAIMS                     claims kept in the Principal (default name,email,rooms,groups,scope)
//	AUTH_JWKS_REFRESH_INTERVAL      background JWKS refresh (default 1h)
//	AUTH_JWKS_MIN_REFRESH_INTERVAL  least time between fetches caused by unknown kids (default 1m)
//	AUTH_JWKS_TIMEOUT               bound on one JWKS fetch (default 5s)
//
// Use:
//
//	v, err := auth.New(ctx, cfg)                  // once, at start-up
//	tok, _ := auth.FromAuthorizationHeader(h)     // or FromQuery, FromInitPayload
//	p, err := v.Verify(ctx, tok)                  // errors.Is(err, auth.ErrNoToken / ErrInvalidToken) → 401 / 4401
//	raw, _ := json.Marshal(p)                     // store the principal, never the token
//	if p.Expired(now) { … close 4401 … }
//
// Every error Verify returns is ErrNoToken or wraps ErrInvalidToken (ErrExpired, ErrTokenTooLarge and
// ErrKeysUnavailable refine it). Error texts never contain the token and are safe to log; ClientMessage
// gives the shorter text to send the client.
package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by Verify. ErrExpired, ErrTokenTooLarge and ErrKeysUnavailable wrap ErrInvalidToken,
// so errors.Is(err, ErrInvalidToken) holds for every verification failure.
var (
	// ErrNoToken: no token was presented (in ModeJWT). Answer 401 / close 4401.
	ErrNoToken = errors.New("auth: no token")
	// ErrInvalidToken: the token was refused. Answer 401 / close 4401.
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrExpired: the token's exp (plus leeway) has passed; the client should get a fresh token.
	ErrExpired = fmt.Errorf("%w: expired", ErrInvalidToken)
	// ErrTokenTooLarge: the token is over MaxTokenBytes and was not parsed.
	ErrTokenTooLarge = fmt.Errorf("%w: over %d bytes", ErrInvalidToken, MaxTokenBytes)
	// ErrKeysUnavailable: the token's key id is not cached and the last JWKS fetch failed (the issuer is
	// down or misconfigured). Still a 401 for the client; worth an error-level log line.
	ErrKeysUnavailable = fmt.Errorf("%w: signing keys unavailable", ErrInvalidToken)
)

// jwksAlgorithms are the algorithms accepted with a JWKS: asymmetric only, so no HMAC key can ever be
// made of a public key.
var jwksAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// hs256Algorithms are the algorithms accepted with AUTH_HS256_SECRET.
var hs256Algorithms = []string{"HS256"}

// Verifier verifies tokens. It is safe for concurrent use.
type Verifier struct {
	mode   Mode
	algs   []string
	parser *jwt.Parser
	key    func(ctx context.Context, t *jwt.Token) (any, error)
	claims []string
	leeway time.Duration
	stop   context.CancelFunc
}

// New validates cfg and builds a Verifier. With AUTH_JWKS_FILE the file is read now; with AUTH_JWKS_URL
// the keys are fetched now (bounded by JWKSTimeout) and then in the background until ctx ends or Close
// is called. A failed first fetch does not fail New (the issuer may be briefly down while everything
// else in the binary can work): Verify then fetches again on the first unknown key id and, while the
// keys stay unavailable, returns ErrKeysUnavailable with the fetch error.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{mode: cfg.Mode, claims: cfg.claimNames(), leeway: cfg.Leeway, stop: func() {}}
	if cfg.Mode == ModeNone {
		return v, nil
	}
	switch {
	case cfg.HS256Secret != "":
		secret := []byte(cfg.HS256Secret)
		v.algs = hs256Algorithms
		v.key = func(context.Context, *jwt.Token) (any, error) { return secret, nil }
	case cfg.JWKSFile != "":
		j, err := jwksFromFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("%w: AUTH_JWKS_FILE: %w", ErrConfig, err)
		}
		v.algs, v.key = jwksAlgorithms, j.key
	default:
		ctx, cancel := context.WithCancel(ctx)
		j, err := jwksFromURL(ctx, cfg)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("%w: AUTH_JWKS_URL: %w", ErrConfig, err)
		}
		v.algs, v.key, v.stop = jwksAlgorithms, j.key, cancel
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Close stops the background JWKS refresh. Verify keeps working with the keys it has.
func (v *Verifier) Close() { v.stop() }

// Mode reports the configured mode: with ModeNone, Verify accepts everyone as Anonymous.
func (v *Verifier) Mode() Mode { return v.mode }

// Verify checks token and returns its principal. In ModeNone it returns Anonymous for any token, even
// none. In ModeJWT: an empty token is ErrNoToken; a token is accepted only if it is at most
// MaxTokenBytes, signed with an allowed algorithm by a configured key, has the configured iss and aud, an
// exp not past, nbf and iat not in the future (each within the leeway), and a non-empty sub. ctx bounds
// a JWKS fetch caused by an unknown key id (itself bounded by JWKSTimeout and rate-limited).
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	if v.mode == ModeNone {
		return Anonymous(), nil
	}
	if token == "" {
		return Principal{}, ErrNoToken
	}
	if len(token) > MaxTokenBytes {
		return Principal{}, fmt.Errorf("%w (%d bytes)", ErrTokenTooLarge, len(token))
	}
	var keyErr error
	c := &tokenClaims{}
	t, err := v.parser.ParseWithClaims(token, c, func(t *jwt.Token) (any, error) {
		k, err := v.key(ctx, t)
		keyErr = err
		return k, err
	})
	if err != nil {
		if keyErr != nil {
			return Principal{}, keyErr
		}
		return Principal{}, v.classify(t, err)
	}
	if c.Subject == "" {
		return Principal{}, invalid("no sub claim")
	}
	p := Principal{Subject: c.Subject, Expires: c.ExpiresAt.Add(v.leeway).UTC()}
	for _, name := range v.claims {
		raw, ok := c.raw[name]
		if !ok || string(raw) == "null" {
			continue
		}
		var b bytes.Buffer
		if json.Compact(&b, raw) != nil {
			continue // cannot happen: raw was cut from a document that decoded
		}
		if p.Claims == nil {
			p.Claims = make(map[string]json.RawMessage, len(v.claims))
		}
		p.Claims[name] = b.Bytes()
	}
	return p, nil
}

// classify turns the parser's error into one of ours, with a fixed detail that never echoes the token.
func (v *Verifier) classify(t *jwt.Token, err error) error {
	if errors.Is(err, jwt.ErrTokenMalformed) {
		return invalid("malformed")
	}
	if t != nil {
		if alg, _ := t.Header["alg"].(string); !slices.Contains(v.algs, alg) {
			return invalid("algorithm not allowed")
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("bad signature")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid("unverifiable")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("wrong issuer")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid("wrong audience")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid("missing a required claim (exp, iss or aud)")
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid("not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid("issued in the future (iat)")
	default:
		return invalid("invalid claims")
	}
}

// ClientMessage is the text to send the client for an error of this package: short, fixed, with no
// detail an attacker could use ("no token", "token expired", "invalid token",
// "invalid connection_init payload", else "unauthorized").
func ClientMessage(err error) string {
	switch {
	case errors.Is(err, ErrNoToken):
		return "no token"
	case errors.Is(err, ErrExpired):
		return "token expired"
	case errors.Is(err, ErrInvalidToken):
		return "invalid token"
	case errors.Is(err, ErrInvalidPayload):
		return "invalid connection_init payload"
	default:
		return "unauthorized"
	}
}

func invalid(detail string) error { return fmt.Errorf("%w: %s", ErrInvalidToken, detail) }

// tokenClaims decodes the registered claims the parser validates and keeps every claim's raw JSON for
// the Principal.
type tokenClaims struct {
	jwt.RegisteredClaims
	raw map[string]json.RawMessage
}

// UnmarshalJSON fills both views from one claims object.
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.RegisteredClaims); err != nil {
		return err
	}
	return json.Unmarshal(b, &c.raw)
}
