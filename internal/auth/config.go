package auth

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Mode selects whether callers are authenticated.
type Mode string

const (
	// ModeNone accepts every caller as the anonymous principal. It is the default of `dev`.
	ModeNone Mode = "none"
	// ModeJWT requires a JWT verified against the configured key source.
	ModeJWT Mode = "jwt"
)

// Limits and defaults. Each is stated here once; the environment variables and Config fields refer to them.
const (
	// MaxTokenBytes bounds a token's length; a longer one is refused before it is parsed.
	MaxTokenBytes = 8 << 10
	// MaxInitPayloadBytes bounds the connection_init payload FromInitPayload reads.
	MaxInitPayloadBytes = 4 << 10
	// MaxJWKSBytes bounds a JWKS document, fetched or read from a file.
	MaxJWKSBytes = 1 << 20
	// MinHS256SecretBytes is the shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
	MinHS256SecretBytes = 32

	// DefaultLeeway is the clock skew ConfigFromEnv allows when AUTH_LEEWAY is unset.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway bounds the allowed clock skew.
	MaxLeeway = 5 * time.Minute

	// DefaultClaims is the comma-separated list of claims kept in a Principal when AUTH_CLAIMS is unset.
	DefaultClaims = "name,email,rooms,groups,scope"

	// DefaultJWKSRefreshInterval is how often the JWKS URL is fetched in the background.
	DefaultJWKSRefreshInterval = time.Hour
	// DefaultJWKSMinRefreshInterval is the least time between two fetches caused by unknown key ids:
	// a flood of tokens with random kids costs the issuer at most one fetch per interval.
	DefaultJWKSMinRefreshInterval = time.Minute
	// DefaultJWKSTimeout bounds one JWKS fetch.
	DefaultJWKSTimeout = 5 * time.Second
)

// Bounds checked by Validate on the JWKS timings.
const (
	minJWKSRefreshInterval    = time.Minute
	maxJWKSRefreshInterval    = 24 * time.Hour
	minJWKSMinRefreshInterval = time.Second
	maxJWKSMinRefreshInterval = time.Hour
	minJWKSTimeout            = 100 * time.Millisecond
	maxJWKSTimeout            = 30 * time.Second
)

// Environment variables read by ConfigFromEnv.
const (
	envMode                   = "AUTH_MODE"
	envJWKSURL                = "AUTH_JWKS_URL"
	envJWKSFile               = "AUTH_JWKS_FILE"
	envHS256Secret            = "AUTH_HS256_SECRET"
	envIssuer                 = "AUTH_ISSUER"
	envAudience               = "AUTH_AUDIENCE"
	envLeeway                 = "AUTH_LEEWAY"
	envClaims                 = "AUTH_CLAIMS"
	envJWKSRefreshInterval    = "AUTH_JWKS_REFRESH_INTERVAL"
	envJWKSMinRefreshInterval = "AUTH_JWKS_MIN_REFRESH_INTERVAL"
	envJWKSTimeout            = "AUTH_JWKS_TIMEOUT"
)

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("auth: invalid configuration")

// ErrModeNotSet is what a Lambda deployment returns at start-up when AUTH_MODE is unset (see ModeSet).
var ErrModeNotSet = fmt.Errorf("%w: AUTH_MODE is not set: set AUTH_MODE=jwt with a key source, "+
	"or AUTH_MODE=none to accept every caller without authentication", ErrConfig)

// Secret is a string that never prints: fmt, %v of a Config and JSON show "[redacted]".
type Secret string

// String returns "[redacted]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalJSON writes the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText writes the redacted form (zerolog, slog and encoders that prefer text).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Config configures a Verifier. Build it with ConfigFromEnv, or by hand and check it with Validate.
//
// In ModeJWT exactly one key source is set: JWKSURL, JWKSFile or HS256Secret. The allowed algorithms
// follow from it: RS256/384/512, PS256/384/512, ES256/384/512 and EdDSA for a JWKS; HS256 only for the
// secret. Nothing else is ever accepted (no "none", no HMAC against a JWKS).
type Config struct {
	// Mode is ModeNone or ModeJWT. AUTH_MODE; ConfigFromEnv defaults it to ModeNone (see ModeSet).
	Mode Mode

	// JWKSURL is the issuer's JWKS endpoint (for OIDC, the jwks_uri of its discovery document). It must be
	// https, except on a loopback host (localhost, 127.0.0.0/8, ::1). AUTH_JWKS_URL.
	JWKSURL string
	// JWKSFile is a local JWKS document, read once by New. AUTH_JWKS_FILE.
	JWKSFile string
	// HS256Secret is a shared secret of at least MinHS256SecretBytes, for local use and tests.
	// AUTH_HS256_SECRET.
	HS256Secret Secret

	// Issuer is the required iss claim. Required with a JWKS; with HS256, checked when set. AUTH_ISSUER.
	Issuer string
	// Audience is a value the aud claim must contain. Required with a JWKS; with HS256, checked when set.
	// AUTH_AUDIENCE. (Cognito puts the app client id in the ID token's aud; its access tokens have no aud,
	// so clients send the ID token.)
	Audience string

	// Leeway is the clock skew allowed on exp, nbf and iat, at most MaxLeeway; zero allows none.
	// AUTH_LEEWAY (a Go duration such as "30s"); ConfigFromEnv defaults it to DefaultLeeway.
	Leeway time.Duration
	// Claims names the claims copied into a Principal besides sub and exp. Nil means DefaultClaims; an
	// empty non-nil slice keeps none. AUTH_CLAIMS, comma-separated.
	Claims []string

	// JWKSRefreshInterval is how often the JWKS URL is fetched in the background; zero means
	// DefaultJWKSRefreshInterval; 1m to 24h. AUTH_JWKS_REFRESH_INTERVAL.
	JWKSRefreshInterval time.Duration
	// JWKSMinRefreshInterval is the least time between fetches caused by unknown key ids; zero means
	// DefaultJWKSMinRefreshInterval; 1s to 1h. AUTH_JWKS_MIN_REFRESH_INTERVAL.
	JWKSMinRefreshInterval time.Duration
	// JWKSTimeout bounds one JWKS fetch, the first included; zero means DefaultJWKSTimeout; 100ms to 30s.
	// AUTH_JWKS_TIMEOUT.
	JWKSTimeout time.Duration
}

// ModeSet reports whether AUTH_MODE is set to a non-blank value. A Lambda deployment refuses to start
// without it (returning ErrModeNotSet); `dev` defaults to ModeNone and says so.
func ModeSet(getenv func(string) string) bool {
	return strings.TrimSpace(getenv(envMode)) != ""
}

// ConfigFromEnv reads the AUTH_* variables through getenv (os.Getenv in main) and validates them.
// Blank values count as unset. Durations use Go syntax ("30s", "5m").
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	c := Config{
		Mode:        Mode(strings.ToLower(get(envMode))),
		JWKSURL:     get(envJWKSURL),
		JWKSFile:    get(envJWKSFile),
		HS256Secret: Secret(getenv(envHS256Secret)), // not trimmed: every byte of a secret counts
		Issuer:      get(envIssuer),
		Audience:    get(envAudience),
		Leeway:      DefaultLeeway,
	}
	if c.Mode == "" {
		c.Mode = ModeNone
	}
	var err error
	durations := []struct {
		env string
		dst *time.Duration
	}{
		{envLeeway, &c.Leeway},
		{envJWKSRefreshInterval, &c.JWKSRefreshInterval},
		{envJWKSMinRefreshInterval, &c.JWKSMinRefreshInterval},
		{envJWKSTimeout, &c.JWKSTimeout},
	}
	for _, d := range durations {
		v := get(d.env)
		if v == "" {
			continue
		}
		if *d.dst, err = time.ParseDuration(v); err != nil {
			return Config{}, fmt.Errorf("%w: %s=%q is not a duration such as 30s", ErrConfig, d.env, v)
		}
	}
	if v := get(envClaims); v != "" {
		c.Claims = splitList(v)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks c as New does; the error wraps ErrConfig and names the environment variable at fault.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	sources := map[string]bool{envJWKSURL: c.JWKSURL != "", envJWKSFile: c.JWKSFile != "",
		envHS256Secret: c.HS256Secret != ""}
	var set []string
	for _, name := range []string{envJWKSURL, envJWKSFile, envHS256Secret} {
		if sources[name] {
			set = append(set, name)
		}
	}
	switch c.Mode {
	case ModeNone:
		// A key source with mode none is almost certainly a forgotten AUTH_MODE=jwt: refuse rather than
		// run open.
		if c.Issuer != "" {
			set = append(set, envIssuer)
		}
		if c.Audience != "" {
			set = append(set, envAudience)
		}
		if len(set) > 0 {
			return bad("AUTH_MODE is none but %s is set: set AUTH_MODE=jwt, or unset it",
				strings.Join(set, ", "))
		}
		return nil
	case ModeJWT:
	default:
		return bad("AUTH_MODE=%q: want none or jwt", string(c.Mode))
	}
	switch len(set) {
	case 0:
		return bad("AUTH_MODE is jwt: set one of AUTH_JWKS_URL, AUTH_JWKS_FILE or AUTH_HS256_SECRET")
	case 1:
	default:
		return bad("set exactly one key source, not %s", strings.Join(set, " and "))
	}
	if c.HS256Secret != "" {
		if n := len(c.HS256Secret); n < MinHS256SecretBytes {
			return bad("AUTH_HS256_SECRET is %d bytes: want at least %d", n, MinHS256SecretBytes)
		}
	} else {
		if c.Issuer == "" {
			return bad("AUTH_ISSUER is required with a JWKS")
		}
		if c.Audience == "" {
			return bad("AUTH_AUDIENCE is required with a JWKS")
		}
	}
	if c.JWKSURL != "" {
		if err := checkJWKSURL(c.JWKSURL); err != nil {
			return bad("AUTH_JWKS_URL: %v", err)
		}
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		return bad("AUTH_LEEWAY=%s: want 0 to %s", c.Leeway, MaxLeeway)
	}
	ranges := []struct {
		env      string
		v        time.Duration
		min, max time.Duration
	}{
		{envJWKSRefreshInterval, c.JWKSRefreshInterval, minJWKSRefreshInterval, maxJWKSRefreshInterval},
		{envJWKSMinRefreshInterval, c.JWKSMinRefreshInterval, minJWKSMinRefreshInterval, maxJWKSMinRefreshInterval},
		{envJWKSTimeout, c.JWKSTimeout, minJWKSTimeout, maxJWKSTimeout},
	}
	for _, r := range ranges {
		if r.v != 0 && (r.v < r.min || r.v > r.max) {
			return bad("%s=%s: want %s to %s", r.env, r.v, r.min, r.max)
		}
	}
	for _, name := range c.Claims {
		if strings.TrimSpace(name) == "" || strings.ContainsAny(name, ", \t") {
			return bad("AUTH_CLAIMS: claim name %q", name)
		}
	}
	return nil
}

// checkJWKSURL accepts https, or http on a loopback host (a local issuer in development and tests).
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return errors.New("must be https (http is accepted on a loopback host only)")
	default:
		return fmt.Errorf("scheme %q: want https", u.Scheme)
	}
}

// claimNames returns the claims a Principal keeps.
func (c Config) claimNames() []string {
	if c.Claims == nil {
		return splitList(DefaultClaims)
	}
	return c.Claims
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// splitList splits on commas and white space, dropping empty items.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}
