// Package authtest issues real signed tokens and serves their JWKS, for tests of code that uses internal/auth.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
