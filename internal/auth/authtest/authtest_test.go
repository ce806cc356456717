package authtest_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/auth/authtest"
)

func TestIssuer(t *testing.T) {
	iss := authtest.NewIssuer(t)
	cfg, err := auth.ConfigFromEnv(iss.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	p, err := v.Verify(context.Background(), iss.Token(jwt.MapClaims{"name": "Ann"}))
	if err != nil || p.Subject != authtest.Sub {
		t.Fatalf("Verify = %#v, %v", p, err)
	}
	if name, _ := p.StringClaim("name"); name != "Ann" {
		t.Fatalf("name = %q", name)
	}
	if iss.Fetches() != 1 {
		t.Fatalf("Fetches = %d, want 1", iss.Fetches())
	}

	old := iss.KID()
	if kid := iss.Rotate(); kid == old || iss.KID() != kid {
		t.Fatalf("Rotate gave %q after %q; KID = %q", kid, old, iss.KID())
	}
	iss.SetFault(http.StatusInternalServerError, 0)
	resp, err := http.Get(iss.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("faulty JWKS answered %d", resp.StatusCode)
	}
}

func TestHS256(t *testing.T) {
	cfg, err := auth.ConfigFromEnv(func(k string) string { return authtest.HS256Env()[k] })
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(context.Background(), authtest.HS256Token(jwt.MapClaims{"sub": "bob"})); err != nil || p.Subject != "bob" {
		t.Fatalf("Verify = %#v, %v", p, err)
	}
	if _, err := v.Verify(context.Background(), authtest.HS256Token(jwt.MapClaims{"exp": nil})); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("a claim set to nil was not left out: %v", err)
	}
}

// TestBadTokens: the issuer's verifier refuses each of BadTokens with its message, and
// UnknownKeyToken after fetching the key set again, while it accepts the issuer's own token.
func TestBadTokens(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t)
	ctx := context.Background()
	if _, err := v.Verify(ctx, iss.Token(nil)); err != nil {
		t.Fatalf("the issuer's own token: %v", err)
	}
	for _, bad := range iss.BadTokens(t) {
		if _, err := v.Verify(ctx, bad.Token); err == nil || auth.ClientMessage(err) != bad.Msg {
			t.Errorf("%s: Verify = %v (%q), want a refusal saying %q", bad.Name, err, auth.ClientMessage(err), bad.Msg)
		}
	}
	before := iss.Fetches()
	if _, err := v.Verify(ctx, iss.UnknownKeyToken(t)); err == nil || auth.ClientMessage(err) != "invalid token" {
		t.Errorf("unknown key id: Verify = %v, want invalid token", err)
	}
	if iss.Fetches() == before {
		t.Error("the unknown key id did not make the verifier fetch the key set again")
	}
	if _, err := authtest.HS256Verifier(t).Verify(ctx, authtest.HS256Token(nil)); err != nil {
		t.Errorf("HS256Verifier refused HS256Token: %v", err)
	}
}
