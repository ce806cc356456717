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
