// Package authtest issues real signed tokens and serves their JWKS, for tests of code that uses internal/auth.
package authtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/realtime-gql/lambdaws/internal/auth"
)

// The claims and secret the helpers use.
const (
	// Iss is the issuer every token carries (AUTH_ISSUER of Env).
	Iss = "https://issuer.test/"
	// Aud is the audience every token carries (AUTH_AUDIENCE of Env).
	Aud = "lambdaws-test"
	// Sub is the subject of a token whose claims do not name one.
	Sub = "user-1"
	// Secret is the HS256 secret of HS256Env and HS256Token (32 bytes or more).
	Secret = "authtest-hs256-secret-0123456789abcdef"
)

// Issuer is an OIDC-like issuer: RSA keys, a JWKS endpoint on loopback, and RS256 tokens.
type Issuer struct {
	// URL is the JWKS endpoint (AUTH_JWKS_URL of Env).
	URL string

	t       testing.TB
	fetches atomic.Int64

	mu      sync.Mutex
	keys    []key // served, oldest first; the last signs
	status  int
	delay   time.Duration
	nextKID int
}

type key struct {
	kid  string
	priv *rsa.PrivateKey
}

// NewIssuer starts an issuer with one RSA-2048 key; its server closes when the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	i := &Issuer{t: t}
	i.Rotate()
	srv := httptest.NewServer(http.HandlerFunc(i.serve))
	t.Cleanup(srv.Close)
	i.URL = srv.URL + "/.well-known/jwks.json"
	return i
}

// Env is the configuration that trusts this issuer, for auth.ConfigFromEnv through Getenv.
func (i *Issuer) Env() map[string]string {
	return map[string]string{"AUTH_MODE": "jwt", "AUTH_JWKS_URL": i.URL, "AUTH_ISSUER": Iss, "AUTH_AUDIENCE": Aud}
}

// Getenv looks a variable up in Env.
func (i *Issuer) Getenv(name string) string { return i.Env()[name] }

// Rotate makes a new key the signing key and serves it beside the old ones; it returns its kid.
func (i *Issuer) Rotate() string {
	i.t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		i.t.Fatalf("authtest: generate key: %v", err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.nextKID++
	k := key{kid: fmt.Sprintf("key-%d", i.nextKID), priv: priv}
	i.keys = append(i.keys, k)
	return k.kid
}

// KID is the kid of the signing key.
func (i *Issuer) KID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[len(i.keys)-1].kid
}

// Key is the signing key, for tests that forge tokens with it.
func (i *Issuer) Key() *rsa.PrivateKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[len(i.keys)-1].priv
}

// Token signs claims with RS256 and the signing key. It adds iss, aud, sub (Sub), iat (now) and exp (in an
// hour) unless claims name them; a claim set to nil is left out.
func (i *Issuer) Token(claims jwt.MapClaims) string {
	i.t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, withDefaults(claims))
	tok.Header["kid"] = i.KID()
	s, err := tok.SignedString(i.Key())
	if err != nil {
		i.t.Fatalf("authtest: sign: %v", err)
	}
	return s
}

// Verifier is a verifier that trusts the issuer, allows no clock skew (so that expiry is exact)
// and fetches the key set again on an unknown key id at most once a second. It stops when the
// test ends.
func (i *Issuer) Verifier(t testing.TB) *auth.Verifier {
	t.Helper()
	env := i.Env()
	env["AUTH_LEEWAY"] = "0s"
	env["AUTH_JWKS_MIN_REFRESH_INTERVAL"] = "1s"
	return newVerifier(t, env)
}

// HS256Verifier is a verifier that trusts HS256Token (HS256Env). It stops when the test ends.
func HS256Verifier(t testing.TB) *auth.Verifier {
	t.Helper()
	return newVerifier(t, HS256Env())
}

func newVerifier(t testing.TB, env map[string]string) *auth.Verifier {
	t.Helper()
	cfg, err := auth.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := auth.New(ctx, cfg)
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// A BadToken is a token a verifier trusting the issuer must refuse, with the message a client is
// told (auth.ClientMessage's).
type BadToken struct {
	Name, Token, Msg string
}

// BadTokens are the tokens a verifier trusting the issuer must refuse: malformed, signed by
// another key, alg none, HS256 keyed with the issuer's public key (algorithm confusion), of
// another issuer or audience, expired, and not yet valid.
func (i *Issuer) BadTokens(t testing.TB) []BadToken {
	t.Helper()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("authtest: generate key: %v", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&i.Key().PublicKey)
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	kid := i.KID()
	return []BadToken{
		{"malformed", "abc.def.ghi", "invalid token"},
		{"wrong signature", sign(t, jwt.SigningMethodRS256, other, kid), "invalid token"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid), "invalid token"},
		{"HS256 with the RSA public key", sign(t, jwt.SigningMethodHS256, pubPEM, kid), "invalid token"},
		{"wrong issuer", i.Token(jwt.MapClaims{"iss": "https://evil.example/"}), "invalid token"},
		{"wrong audience", i.Token(jwt.MapClaims{"aud": "another-app"}), "invalid token"},
		{"expired", i.Token(jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}), "token expired"},
		{"not yet valid", i.Token(jwt.MapClaims{"nbf": time.Now().Add(10 * time.Minute).Unix()}), "invalid token"},
	}
}

// UnknownKeyToken is a token signed by a key the issuer does not publish, under a key id it never
// served: a verifier refuses it ("invalid token") after fetching the key set again.
func (i *Issuer) UnknownKeyToken(t testing.TB) string {
	t.Helper()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("authtest: generate key: %v", err)
	}
	return sign(t, jwt.SigningMethodRS256, other, "key-unknown")
}

// sign signs the default claims (subject mallory) with m and key, under kid.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, withDefaults(jwt.MapClaims{"sub": "mallory"}))
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("authtest: sign: %v", err)
	}
	return s
}

// SetFault makes the JWKS endpoint answer with status (0: healthy) after delay.
func (i *Issuer) SetFault(status int, delay time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.status, i.delay = status, delay
}

// Fetches counts the requests the JWKS endpoint has received.
func (i *Issuer) Fetches() int { return int(i.fetches.Load()) }

func (i *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	i.fetches.Add(1)
	i.mu.Lock()
	status, delay := i.status, i.delay
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for _, k := range i.keys {
		set.Keys = append(set.Keys, map[string]string{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": k.kid,
			"n": b64(k.priv.N.Bytes()), "e": b64(big.NewInt(int64(k.priv.E)).Bytes()),
		})
	}
	i.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// HS256Env is the configuration that trusts HS256Token.
func HS256Env() map[string]string {
	return map[string]string{"AUTH_MODE": "jwt", "AUTH_HS256_SECRET": Secret, "AUTH_ISSUER": Iss, "AUTH_AUDIENCE": Aud}
}

// HS256Token signs claims with HS256 and Secret, with the defaults of Issuer.Token.
func HS256Token(claims jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, withDefaults(claims)).SignedString([]byte(Secret))
	if err != nil {
		panic(err) // HMAC signing with a []byte key cannot fail
	}
	return s
}

func withDefaults(claims jwt.MapClaims) jwt.MapClaims {
	now := time.Now()
	out := jwt.MapClaims{"iss": Iss, "aud": Aud, "sub": Sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// SizedToken is a valid HS256 token of this issuer and audience (Secret) of exactly n bytes, for
// testing the token bound at and over it.
func SizedToken(tb testing.TB, n int) string {
	tb.Helper()
	for pad := n - 400; pad < n; pad++ {
		for extra := range 4 {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": Iss, "aud": Aud,
				"sub": "u", "exp": time.Now().Add(time.Hour).Unix(), "pad": strings.Repeat("p", pad*3/4)})
			tok.Header["x"] = strings.Repeat("h", extra)
			s, err := tok.SignedString([]byte(Secret))
			if err != nil {
				tb.Fatal(err)
			}
			if len(s) == n {
				return s
			}
			if len(s) > n+8 {
				break
			}
		}
	}
	tb.Fatalf("could not build a token of %d bytes", n)
	return ""
}
