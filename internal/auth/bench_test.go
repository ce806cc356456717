package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/auth/authtest"
)

// BenchmarkVerify measures Verify with a cached key, beside a baseline: golang-jwt's own ParseWithClaims
// with the key in hand and the same options, in the same run. The difference is this package's cost
// (key lookup, claim extraction, the principal).
func BenchmarkVerify(b *testing.B) {
	claims := jwt.MapClaims{"name": "Ann", "rooms": []string{"r1", "r2"}, "scope": "read write"}

	iss := authtest.NewIssuer(b)
	rs := newVerifier(b, iss.Getenv, nil)
	rsTok := iss.Token(claims)

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	file := writeJWKS(b, []any{&ec.PublicKey},
		[]jwkset.JWKOptions{{Metadata: jwkset.JWKMetadataOptions{KID: "ec", ALG: jwkset.AlgES256}}})
	es := newVerifier(b, env("AUTH_MODE", "jwt", "AUTH_JWKS_FILE", file, "AUTH_ISSUER", authtest.Iss,
		"AUTH_AUDIENCE", authtest.Aud), nil)
	esTok := sign(b, jwt.SigningMethodES256, ec, "ec", claims)

	hs := newVerifier(b, env(envList(authtest.HS256Env())...), nil)
	hsTok := authtest.HS256Token(claims)

	verify := func(v *auth.Verifier, tok string) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), tok); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	baseline := func(method string, key any, tok string) func(b *testing.B) {
		return func(b *testing.B) {
			p := jwt.NewParser(jwt.WithValidMethods([]string{method}), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
				jwt.WithLeeway(30*time.Second), jwt.WithIssuer(authtest.Iss), jwt.WithAudience(authtest.Aud))
			kf := func(*jwt.Token) (any, error) { return key, nil }
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.ParseWithClaims(tok, jwt.MapClaims{}, kf); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("RS256-jwks-url", verify(rs, rsTok))
	b.Run("RS256-baseline", baseline("RS256", &iss.Key().PublicKey, rsTok))
	b.Run("ES256-jwks-file", verify(es, esTok))
	b.Run("ES256-baseline", baseline("ES256", &ec.PublicKey, esTok))
	b.Run("HS256-secret", verify(hs, hsTok))
	b.Run("HS256-baseline", baseline("HS256", []byte(authtest.Secret), hsTok))
}
