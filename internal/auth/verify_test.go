package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/auth/authtest"
)

// newVerifier builds a Verifier from env through ConfigFromEnv (the wiring's path), with mod applied to
// the Config, and closes it when the test ends.
func newVerifier(t testing.TB, getenv func(string) string, mod func(*auth.Config)) *auth.Verifier {
	t.Helper()
	cfg, err := auth.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := auth.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// sign signs claims (with authtest's defaults for the ones not named) with method and key, and sets kid.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	now := time.Now()
	all := jwt.MapClaims{"iss": authtest.Iss, "aud": authtest.Aud, "sub": authtest.Sub, "iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	tok := jwt.NewWithClaims(method, all)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned builds header.claims. with no signature, for algorithms no library will sign with.
func unsigned(header, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "."
}

func TestVerifyModeNone(t *testing.T) {
	v := newVerifier(t, env(), nil)
	if v.Mode() != auth.ModeNone {
		t.Fatalf("Mode = %s", v.Mode())
	}
	for _, tok := range []string{"", "garbage", authtest.HS256Token(nil)} {
		p, err := v.Verify(t.Context(), tok)
		if err != nil || !p.IsAnonymous() || !reflect.DeepEqual(p, auth.Anonymous()) {
			t.Fatalf("Verify(%q) = %#v, %v; want anonymous", tok, p, err)
		}
	}
}

// TestVerifyRefusals holds every way a token is refused against a JWKS configuration.
func TestVerifyRefusals(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := newVerifier(t, iss.Getenv, nil)
	kid := iss.KID()
	now := time.Now()

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	pubDER, _ := x509.MarshalPKIXPublicKey(&iss.Key().PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, nil)
	claims := `{"iss":"` + authtest.Iss + `","aud":"` + authtest.Aud + `","sub":"u","exp":` + fmt.Sprint(now.Add(time.Hour).Unix()) + `}`

	cases := []struct {
		name   string
		token  string
		want   error
		detail string
	}{
		{"no token", "", auth.ErrNoToken, ""},
		{"one segment", "abc", auth.ErrInvalidToken, "malformed"},
		{"three junk segments", "a.b.c", auth.ErrInvalidToken, "malformed"},
		{"claims not JSON", unsigned(`{"alg":"RS256","kid":"`+kid+`"}`, `not json`), auth.ErrInvalidToken, "malformed"},
		{"wrong signature", sign(t, jwt.SigningMethodRS256, other, kid, nil), auth.ErrInvalidToken, "bad signature"},
		{"signature cut", iss.Token(nil)[:len(iss.Token(nil))-10], auth.ErrInvalidToken, ""},
		{"alg none", noneTok, auth.ErrInvalidToken, "algorithm not allowed"},
		{"alg None", unsigned(`{"alg":"None","kid":"`+kid+`"}`, claims), auth.ErrInvalidToken, "algorithm not allowed"},
		{"alg missing", unsigned(`{"kid":"`+kid+`"}`, claims), auth.ErrInvalidToken, "algorithm not allowed"},
		{"HS256 with the public key PEM as secret", sign(t, jwt.SigningMethodHS256, pubPEM, kid, nil),
			auth.ErrInvalidToken, "algorithm not allowed"},
		{"HS256 with the public key DER as secret", sign(t, jwt.SigningMethodHS256, pubDER, kid, nil),
			auth.ErrInvalidToken, "algorithm not allowed"},
		{"wrong issuer", iss.Token(jwt.MapClaims{"iss": "https://evil.test/"}), auth.ErrInvalidToken, "wrong issuer"},
		{"no issuer", iss.Token(jwt.MapClaims{"iss": nil}), auth.ErrInvalidToken, "required claim"},
		{"wrong audience", iss.Token(jwt.MapClaims{"aud": "other-app"}), auth.ErrInvalidToken, "wrong audience"},
		{"audience list without ours", iss.Token(jwt.MapClaims{"aud": []string{"a", "b"}}), auth.ErrInvalidToken, "wrong audience"},
		{"no audience", iss.Token(jwt.MapClaims{"aud": nil}), auth.ErrInvalidToken, "required claim"},
		{"expired", iss.Token(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()}), auth.ErrExpired, "expired"},
		{"no exp", iss.Token(jwt.MapClaims{"exp": nil}), auth.ErrInvalidToken, "required claim"},
		{"exp not a number", iss.Token(jwt.MapClaims{"exp": "tomorrow"}), auth.ErrInvalidToken, "malformed"},
		{"not yet valid", iss.Token(jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()}), auth.ErrInvalidToken, "not valid yet"},
		{"issued in the future", iss.Token(jwt.MapClaims{"iat": now.Add(time.Hour).Unix()}), auth.ErrInvalidToken, "issued in the future"},
		{"no sub", iss.Token(jwt.MapClaims{"sub": nil}), auth.ErrInvalidToken, "no sub"},
		{"empty sub", iss.Token(jwt.MapClaims{"sub": ""}), auth.ErrInvalidToken, "no sub"},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, iss.Key(), "no-such-kid", nil), auth.ErrInvalidToken, "unknown key id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := v.Verify(t.Context(), c.token)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %#v, %v; want %v", p, err, c.want)
			}
			if !strings.Contains(err.Error(), c.detail) {
				t.Fatalf("err = %q, want it to say %q", err, c.detail)
			}
			if c.want != auth.ErrNoToken && !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("err = %v does not wrap ErrInvalidToken", err)
			}
			for _, part := range strings.Split(c.token, ".") {
				if len(part) > 8 && strings.Contains(err.Error(), part) {
					t.Fatalf("err %q echoes the token", err)
				}
			}
			if !reflect.DeepEqual(p, auth.Principal{}) {
				t.Fatalf("a refused token gave principal %#v", p)
			}
		})
	}
	// The control: the same issuer's well-formed token passes, so the refusals above are for their reason.
	if p, err := v.Verify(t.Context(), iss.Token(nil)); err != nil || p.Subject != authtest.Sub {
		t.Fatalf("valid token: %#v, %v", p, err)
	}
}

// TestVerifyKIDNotString: a kid header that is not a string is refused.
func TestVerifyKIDNotString(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := newVerifier(t, iss.Getenv, nil)
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": authtest.Iss, "aud": authtest.Aud,
		"sub": "u", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = 7
	s, err := tok.SignedString(iss.Key())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), s); !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "kid is not a string") {
		t.Fatalf("err = %v", err)
	}
}

// TestVerifyLeeway: exp and nbf are honoured within the leeway and refused past it.
func TestVerifyLeeway(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := newVerifier(t, iss.Getenv, nil) // DefaultLeeway: 30s
	now := time.Now()
	within := 20 * time.Second
	over := 40 * time.Second

	exp := now.Add(-within).Unix()
	p, err := v.Verify(t.Context(), iss.Token(jwt.MapClaims{"exp": exp}))
	if err != nil {
		t.Fatalf("exp %s ago, leeway 30s: %v", within, err)
	}
	if want := time.Unix(exp, 0).Add(auth.DefaultLeeway).UTC(); !p.Expires.Equal(want) || p.Expired(now) {
		t.Fatalf("Expires = %s, want %s (exp plus leeway), not yet expired", p.Expires, want)
	}
	if !p.Expired(time.Unix(exp, 0).Add(auth.DefaultLeeway)) {
		t.Fatal("Expired is false at exp plus leeway")
	}
	if _, err := v.Verify(t.Context(), iss.Token(jwt.MapClaims{"exp": now.Add(-over).Unix()})); !errors.Is(err, auth.ErrExpired) {
		t.Fatalf("exp %s ago: %v, want ErrExpired", over, err)
	}
	if _, err := v.Verify(t.Context(), iss.Token(jwt.MapClaims{"nbf": now.Add(within).Unix()})); err != nil {
		t.Fatalf("nbf in %s: %v", within, err)
	}
	if _, err := v.Verify(t.Context(), iss.Token(jwt.MapClaims{"nbf": now.Add(over).Unix()})); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("nbf in %s: %v, want refused", over, err)
	}

	strict := newVerifier(t, iss.Getenv, func(c *auth.Config) { c.Leeway = 0 })
	if _, err := strict.Verify(t.Context(), iss.Token(jwt.MapClaims{"exp": now.Add(-2 * time.Second).Unix()})); !errors.Is(err, auth.ErrExpired) {
		t.Fatalf("no leeway, exp 2s ago: %v", err)
	}
}

// TestVerifyClaims: the principal carries sub, exp and exactly the configured claims.
func TestVerifyClaims(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := newVerifier(t, iss.Getenv, nil)
	exp := time.Now().Add(time.Hour).Unix()
	p, err := v.Verify(t.Context(), iss.Token(jwt.MapClaims{
		"sub": "u-42", "exp": exp, "name": "Ann", "email": "ann@example.com",
		"rooms": []string{"r1", "r2"}, "groups": []string{"admins"}, "scope": "read write",
		"admin": true, "cognito:groups": []string{"x"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Principal{Subject: "u-42", Expires: time.Unix(exp, 0).Add(auth.DefaultLeeway).UTC(),
		Claims: map[string]json.RawMessage{
			"name": json.RawMessage(`"Ann"`), "email": json.RawMessage(`"ann@example.com"`),
			"rooms": json.RawMessage(`["r1","r2"]`), "groups": json.RawMessage(`["admins"]`),
			"scope": json.RawMessage(`"read write"`),
		}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("principal = %#v\nwant %#v", p, want)
	}
	if rooms, ok := p.StringsClaim("rooms"); !ok || !reflect.DeepEqual(rooms, []string{"r1", "r2"}) {
		t.Fatalf("rooms = %v, %v", rooms, ok)
	}
	if scope, _ := p.StringsClaim("scope"); !reflect.DeepEqual(scope, []string{"read", "write"}) {
		t.Fatalf("scope = %v", scope)
	}
	// Through JSON, as the connection record holds it.
	b, _ := json.Marshal(p)
	var back auth.Principal
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip of %s = %#v, %v", b, back, err)
	}

	custom := newVerifier(t, env(append(envList(iss.Env()), "AUTH_CLAIMS", "cognito:groups")...), nil)
	p, err = custom.Verify(t.Context(), iss.Token(jwt.MapClaims{"name": "Ann", "cognito:groups": []string{"x"}, "n": nil}))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Claims) != 1 || string(p.Claims["cognito:groups"]) != `["x"]` {
		t.Fatalf("AUTH_CLAIMS=cognito:groups kept %v", p.Claims)
	}
	// A claim the token does not carry, or carries as null, is absent.
	p, err = v.Verify(t.Context(), iss.Token(jwt.MapClaims{"name": json.RawMessage(`null`)}))
	if err != nil || p.Claims != nil {
		t.Fatalf("claims = %v, %v; want none", p.Claims, err)
	}
}

func envList(m map[string]string) []string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k, v)
	}
	return kv
}

// TestVerifyKeyRotation: the issuer starts signing with a new key; its first token fetches the JWKS again
// and verifies, and tokens of the old key still verify.
func TestVerifyKeyRotation(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := newVerifier(t, iss.Getenv, nil)
	old := iss.Token(nil)
	if _, err := v.Verify(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if n := iss.Fetches(); n != 1 {
		t.Fatalf("%d fetches after start and a cached key, want 1", n)
	}
	iss.Rotate()
	p, err := v.Verify(t.Context(), iss.Token(jwt.MapClaims{"sub": "after-rotation"}))
	if err != nil || p.Subject != "after-rotation" {
		t.Fatalf("token of the new key: %#v, %v", p, err)
	}
	if n := iss.Fetches(); n != 2 {
		t.Fatalf("%d fetches, want 2 (one refresh for the new kid)", n)
	}
	if _, err := v.Verify(t.Context(), old); err != nil {
		t.Fatalf("token of the old key after rotation: %v", err)
	}
	if n := iss.Fetches(); n != 2 {
		t.Fatalf("%d fetches, want still 2", n)
	}
}

// TestVerifyUnknownKIDFlood: many tokens with random unknown kids, at once, cost the issuer at most one
// fetch per JWKSMinRefreshInterval, are all refused promptly, and leave the cached key working.
func TestVerifyUnknownKIDFlood(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := newVerifier(t, iss.Getenv, nil) // JWKSMinRefreshInterval: 1m
	const n = 500
	// The kid is looked up before the signature is checked, so the tokens need no real signature.
	claims := fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"u","exp":%d}`, authtest.Iss, authtest.Aud, time.Now().Add(time.Hour).Unix())
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = unsigned(fmt.Sprintf(`{"alg":"RS256","kid":"random-%d-%x"}`, i, i*7919), claims) + "c2lnbmF0dXJl"
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range tokens {
		wg.Go(func() { _, errs[i] = v.Verify(t.Context(), tokens[i]) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, err := range errs {
		if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "unknown key id") {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	// One after another too: shared refreshes alone would not bound these.
	for i := range 50 {
		if _, err := v.Verify(t.Context(), tokens[i]); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("sequential token %d: %v", i, err)
		}
	}
	if got := iss.Fetches(); got > 2 {
		t.Fatalf("%d unknown kids caused %d JWKS fetches, want at most 2 (start and one refresh)", n+50, got)
	}
	if elapsed > 5*time.Second {
		t.Fatalf("refusing %d unknown kids took %s", n, elapsed)
	}
	if _, err := v.Verify(t.Context(), iss.Token(nil)); err != nil {
		t.Fatalf("cached key after the flood: %v", err)
	}
	t.Logf("%d unknown kids refused in %s with %d fetches", n, elapsed, iss.Fetches())
}

// TestVerifyJWKSFaults: a JWKS endpoint that fails, hangs or is gone costs at most JWKSTimeout per
// allowed fetch, gives ErrKeysUnavailable with the cause for unknown kids, and cached keys still verify.
func TestVerifyJWKSFaults(t *testing.T) {
	const timeout = 300 * time.Millisecond
	fast := func(c *auth.Config) { c.JWKSTimeout, c.JWKSMinRefreshInterval = timeout, time.Second }

	t.Run("5xx with cached keys", func(t *testing.T) {
		iss := authtest.NewIssuer(t)
		v := newVerifier(t, iss.Getenv, fast)
		cached := iss.Token(nil)
		iss.SetFault(http.StatusServiceUnavailable, 0)
		iss.Rotate()
		_, err := v.Verify(t.Context(), iss.Token(nil))
		if !errors.Is(err, auth.ErrKeysUnavailable) || !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "503") {
			t.Fatalf("new kid while the issuer answers 503: %v", err)
		}
		if _, err := v.Verify(t.Context(), cached); err != nil {
			t.Fatalf("cached key while the issuer answers 503: %v", err)
		}
		// The issuer recovers: after JWKSMinRefreshInterval the new kid is fetched and verifies.
		iss.SetFault(0, 0)
		time.Sleep(time.Second + 100*time.Millisecond)
		if _, err := v.Verify(t.Context(), iss.Token(nil)); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	})

	t.Run("slow at start", func(t *testing.T) {
		iss := authtest.NewIssuer(t)
		iss.SetFault(0, 10*time.Second)
		start := time.Now()
		v := newVerifier(t, iss.Getenv, fast)
		if d := time.Since(start); d > timeout+time.Second {
			t.Fatalf("New took %s with a hanging issuer, want about %s", d, timeout)
		}
		start = time.Now()
		_, err := v.Verify(t.Context(), iss.Token(nil))
		if d := time.Since(start); d > timeout+time.Second {
			t.Fatalf("Verify took %s with a hanging issuer", d)
		}
		if !errors.Is(err, auth.ErrKeysUnavailable) {
			t.Fatalf("Verify with a hanging issuer: %v", err)
		}
		t.Logf("hanging issuer: %v", err)
	})

	t.Run("gone", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		iss := authtest.NewIssuer(t)
		v := newVerifier(t, env("AUTH_MODE", "jwt", "AUTH_JWKS_URL", "http://"+addr+"/jwks", "AUTH_ISSUER", authtest.Iss,
			"AUTH_AUDIENCE", authtest.Aud), fast)
		_, err = v.Verify(t.Context(), iss.Token(nil))
		if !errors.Is(err, auth.ErrKeysUnavailable) || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("issuer gone: %v", err)
		}
	})
}

// TestVerifyJWKSBodyBound: a JWKS document of exactly MaxJWKSBytes loads; one byte more is refused.
func TestVerifyJWKSBodyBound(t *testing.T) {
	iss := authtest.NewIssuer(t)
	doc := fetchJWKS(t, iss.URL)
	for _, size := range []int{auth.MaxJWKSBytes, auth.MaxJWKSBytes + 1} {
		body := []byte(strings.Repeat(" ", size-len(doc)) + string(doc)) // leading space: the decoder must read it all
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
		defer srv.Close()
		v := newVerifier(t, env("AUTH_MODE", "jwt", "AUTH_JWKS_URL", srv.URL, "AUTH_ISSUER", authtest.Iss,
			"AUTH_AUDIENCE", authtest.Aud), nil)
		_, err := v.Verify(t.Context(), iss.Token(nil))
		if size == auth.MaxJWKSBytes && err != nil {
			t.Fatalf("JWKS of %d bytes: %v", size, err)
		}
		if size > auth.MaxJWKSBytes && (!errors.Is(err, auth.ErrKeysUnavailable) || !strings.Contains(err.Error(), "over")) {
			t.Fatalf("JWKS of %d bytes: %v", size, err)
		}
	}
}

// TestVerifyJWKSSymmetricKeyNeverUsed: even when the fetched JWKS publishes a symmetric (oct) key, a
// token signed with that secret is refused, whatever alg it claims.
func TestVerifyJWKSSymmetricKeyNeverUsed(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	doc := `{"keys":[{"kty":"oct","kid":"shared","k":"` + base64.RawURLEncoding.EncodeToString(secret) + `"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(doc)) }))
	defer srv.Close()
	v := newVerifier(t, env("AUTH_MODE", "jwt", "AUTH_JWKS_URL", srv.URL, "AUTH_ISSUER", authtest.Iss,
		"AUTH_AUDIENCE", authtest.Aud), nil)
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS512} {
		_, err := v.Verify(t.Context(), sign(t, m, secret, "shared", nil))
		if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "algorithm not allowed") {
			t.Errorf("%s with the published secret: %v", m.Alg(), err)
		}
	}
	// An RS256 header naming the oct key gets no key at all.
	tok := unsigned(`{"alg":"RS256","kid":"shared"}`, `{"sub":"u"}`) + "c2ln"
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, auth.ErrInvalidToken) ||
		!strings.Contains(err.Error(), "not an asymmetric signing key") {
		t.Errorf("RS256 naming the oct key: %v", err)
	}
}

func fetchJWKS(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestVerifyAlgorithms: every asymmetric algorithm verifies from a JWKS file; HMAC never does.
func TestVerifyAlgorithms(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	keys := []struct {
		kid  string
		priv crypto.Signer
		alg  jwkset.ALG
	}{
		{"rsa", rsaKey, ""}, {"ec256", ec256, jwkset.AlgES256}, {"ec384", ec384, jwkset.AlgES384},
		{"ec521", ec521, jwkset.AlgES512}, {"ed", edKey, jwkset.AlgEdDSA},
	}
	var pubs []any
	var opts []jwkset.JWKOptions
	for _, k := range keys {
		pubs = append(pubs, k.priv.Public())
		opts = append(opts, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: k.alg, USE: jwkset.UseSig}})
	}
	file := writeJWKS(t, pubs, opts)
	v := newVerifier(t, env("AUTH_MODE", "jwt", "AUTH_JWKS_FILE", file, "AUTH_ISSUER", authtest.Iss,
		"AUTH_AUDIENCE", authtest.Aud), nil)

	ok := []struct {
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{jwt.SigningMethodRS256, rsaKey, "rsa"}, {jwt.SigningMethodRS384, rsaKey, "rsa"}, {jwt.SigningMethodRS512, rsaKey, "rsa"},
		{jwt.SigningMethodPS256, rsaKey, "rsa"}, {jwt.SigningMethodPS384, rsaKey, "rsa"}, {jwt.SigningMethodPS512, rsaKey, "rsa"},
		{jwt.SigningMethodES256, ec256, "ec256"}, {jwt.SigningMethodES384, ec384, "ec384"}, {jwt.SigningMethodES512, ec521, "ec521"},
		{jwt.SigningMethodEdDSA, edKey, "ed"},
		{jwt.SigningMethodES256, ec256, ""}, // no kid: tried against every key
	}
	for _, c := range ok {
		if _, err := v.Verify(t.Context(), sign(t, c.method, c.key, c.kid, nil)); err != nil {
			t.Errorf("%s kid %q: %v", c.method.Alg(), c.kid, err)
		}
	}
	refused := []struct {
		name, token, detail string
	}{
		{"HS256 with the RSA modulus", sign(t, jwt.SigningMethodHS256, rsaKey.N.Bytes(), "rsa", nil), "algorithm not allowed"},
		{"HS384", sign(t, jwt.SigningMethodHS384, []byte(secret32), "rsa", nil), "algorithm not allowed"},
		{"ES256 token on the RSA key", sign(t, jwt.SigningMethodES256, ec256, "rsa", nil), "bad signature"},
		{"ES384 token on a key declared ES256", sign(t, jwt.SigningMethodES384, ec384, "ec256", nil), "no signing key matches"},
		{"no kid, unknown key", sign(t, jwt.SigningMethodRS256, mustRSA(t), "", nil), "bad signature"},
	}
	for _, c := range refused {
		if _, err := v.Verify(t.Context(), c.token); !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), c.detail) {
			t.Errorf("%s: %v, want %q", c.name, err, c.detail)
		}
	}
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeJWKS(t testing.TB, keys []any, opts []jwkset.JWKOptions) string {
	t.Helper()
	store := jwkset.NewMemoryStorage()
	for i, k := range keys {
		j, err := jwkset.NewJWKFromKey(k, opts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := store.KeyWrite(t.Context(), j); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := store.JSONPublic(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestJWKSFileErrors: New refuses a file it cannot trust, naming the reason.
func TestJWKSFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rsaDoc, _ := os.ReadFile(writeJWKS(t, []any{&mustRSA(t).PublicKey},
		[]jwkset.JWKOptions{{Metadata: jwkset.JWKMetadataOptions{KID: "k"}}}))
	cases := []struct{ name, path, err string }{
		{"missing", filepath.Join(dir, "absent.json"), "no such file"},
		{"not JSON", write("bad.json", "not json"), "not a JWKS document"},
		{"no keys", write("empty.json", `{"keys":[]}`), "holds no keys"},
		{"symmetric key", write("oct.json", `{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEy"}]}`),
			"not an asymmetric signing key"},
		{"over the bound", write("big.json", strings.Repeat(" ", auth.MaxJWKSBytes+1-len(rsaDoc))+string(rsaDoc)), "over"},
	}
	for _, c := range cases {
		_, err := auth.New(t.Context(), auth.Config{Mode: auth.ModeJWT, JWKSFile: c.path, Issuer: "i", Audience: "a"})
		if !errors.Is(err, auth.ErrConfig) || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want ErrConfig with %q", c.name, err, c.err)
		}
	}
	atBound := write("bound.json", strings.Repeat(" ", auth.MaxJWKSBytes-len(rsaDoc))+string(rsaDoc))
	v, err := auth.New(t.Context(), auth.Config{Mode: auth.ModeJWT, JWKSFile: atBound, Issuer: "i", Audience: "a"})
	if err != nil {
		t.Fatalf("file of exactly %d bytes: %v", auth.MaxJWKSBytes, err)
	}
	v.Close()
}

// TestVerifyHS256: the shared secret accepts HS256 only; iss and aud are checked when configured.
func TestVerifyHS256(t *testing.T) {
	v := newVerifier(t, env(envList(authtest.HS256Env())...), nil)
	if p, err := v.Verify(t.Context(), authtest.HS256Token(jwt.MapClaims{"name": "Ann"})); err != nil || p.Subject != authtest.Sub {
		t.Fatalf("HS256 token: %#v, %v", p, err)
	}
	iss := authtest.NewIssuer(t)
	refused := []struct{ name, token, detail string }{
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), "", nil), "bad signature"},
		{"HS512", sign(t, jwt.SigningMethodHS512, []byte(authtest.Secret), "", nil), "algorithm not allowed"},
		{"RS256", iss.Token(nil), "algorithm not allowed"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", nil), "algorithm not allowed"},
		{"wrong issuer", authtest.HS256Token(jwt.MapClaims{"iss": "other"}), "wrong issuer"},
		{"wrong audience", authtest.HS256Token(jwt.MapClaims{"aud": "other"}), "wrong audience"},
		{"expired", authtest.HS256Token(jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}), "expired"},
	}
	for _, c := range refused {
		if _, err := v.Verify(t.Context(), c.token); !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), c.detail) {
			t.Errorf("%s: %v, want %q", c.name, err, c.detail)
		}
	}
	// Without AUTH_ISSUER and AUTH_AUDIENCE, tokens need neither; exp is still required.
	bare := newVerifier(t, env("AUTH_MODE", "jwt", "AUTH_HS256_SECRET", authtest.Secret), nil)
	if _, err := bare.Verify(t.Context(), authtest.HS256Token(jwt.MapClaims{"iss": nil, "aud": nil})); err != nil {
		t.Fatalf("no iss/aud configured or present: %v", err)
	}
	if _, err := bare.Verify(t.Context(), authtest.HS256Token(jwt.MapClaims{"exp": nil})); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("no exp: %v", err)
	}
}

// TestVerifyTokenBound: a valid token of exactly MaxTokenBytes verifies; one byte longer is refused
// before parsing.
func TestVerifyTokenBound(t *testing.T) {
	v := newVerifier(t, env(envList(authtest.HS256Env())...), nil)
	if _, err := v.Verify(t.Context(), authtest.SizedToken(t, auth.MaxTokenBytes)); err != nil {
		t.Fatalf("token of %d bytes: %v", auth.MaxTokenBytes, err)
	}
	over := authtest.SizedToken(t, auth.MaxTokenBytes+1)
	_, err := v.Verify(t.Context(), over)
	if !errors.Is(err, auth.ErrTokenTooLarge) || !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token of %d bytes: %v", len(over), err)
	}
}

// TestVerifyConcurrent: one Verifier serves many goroutines (run with -race) across a key rotation; the
// requests that name the new kid while its refresh is in flight wait for that refresh instead of being
// refused by the rate limit.
func TestVerifyConcurrent(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := newVerifier(t, iss.Getenv, nil)
	first := iss.Token(nil)
	iss.Rotate()
	second := iss.Token(nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			tok := first
			if i%2 == 1 {
				tok = second
			}
			if _, err := v.Verify(context.Background(), tok); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := iss.Fetches(); n != 2 {
		t.Fatalf("%d fetches, want 2: the concurrent lookups of the new kid share one refresh", n)
	}
}

func TestClientMessage(t *testing.T) {
	_, _, payloadErr := auth.FromInitPayload([]byte(`[]`))
	cases := map[error]string{
		auth.ErrNoToken: "no token",
		fmt.Errorf("wrapped: %w", auth.ErrExpired):            "token expired",
		fmt.Errorf("%w: bad signature", auth.ErrInvalidToken): "invalid token",
		auth.ErrKeysUnavailable:                               "invalid token",
		auth.ErrTokenTooLarge:                                 "invalid token",
		payloadErr:                                            "invalid connection_init payload",
		errors.New("something else"):                          "unauthorized",
	}
	for err, want := range cases {
		if got := auth.ClientMessage(err); got != want {
			t.Errorf("ClientMessage(%v) = %q, want %q", err, got, want)
		}
	}
}

// FuzzVerify: any string given as a token is refused or accepted without panic, every refusal is
// ErrNoToken or wraps ErrInvalidToken, and no error text contains the token. Both verifiers work offline
// (a JWKS file and a secret).
func FuzzVerify(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	file := writeJWKS(f, []any{&ec.PublicKey}, []jwkset.JWKOptions{{Metadata: jwkset.JWKMetadataOptions{KID: "ec"}}})
	verifiers := []*auth.Verifier{
		newVerifier(f, env("AUTH_MODE", "jwt", "AUTH_JWKS_FILE", file, "AUTH_ISSUER", authtest.Iss, "AUTH_AUDIENCE", authtest.Aud), nil),
		newVerifier(f, env(envList(authtest.HS256Env())...), nil),
	}
	claims := fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"u","exp":%d}`, authtest.Iss, authtest.Aud, time.Now().Add(time.Hour).Unix())
	for _, s := range []string{
		sign(f, jwt.SigningMethodES256, ec, "ec", nil), authtest.HS256Token(nil),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "ec", nil),
		unsigned(`{"alg":"ES256","kid":"ec"}`, claims), unsigned(`{"alg":"HS256"}`, claims),
		unsigned(`{"alg":"ES256","kid":7}`, `{"exp":"x"}`), unsigned(`{"alg":"ES256","kid":"ec","crit":["x"]}`, `[]`),
		"", ".", "..", "a.b.c", "e30.e30.", "e30.e30.e30",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		for _, v := range verifiers {
			p, err := v.Verify(context.Background(), token)
			if err == nil {
				if p.Subject == "" || p.Expires.IsZero() {
					t.Fatalf("accepted %q as %#v", token, p)
				}
				continue
			}
			if !errors.Is(err, auth.ErrNoToken) && !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify(%q) = %v", token, err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("error %q echoes the token", err)
			}
		}
	})
}
