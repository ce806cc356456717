package auth_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/auth"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

var secret32 = strings.Repeat("s", auth.MinHS256SecretBytes)

func TestConfigFromEnv(t *testing.T) {
	jwks := []string{"AUTH_MODE", "jwt", "AUTH_JWKS_URL", "https://idp.example/.well-known/jwks.json",
		"AUTH_ISSUER", "https://idp.example/", "AUTH_AUDIENCE", "app"}
	with := func(kv ...string) []string { return append(append([]string{}, jwks...), kv...) }
	cases := []struct {
		name string
		env  []string
		want auth.Config // checked when err is ""
		err  string
	}{
		{name: "unset is none", env: nil, want: auth.Config{Mode: auth.ModeNone, Leeway: auth.DefaultLeeway}},
		{name: "none", env: []string{"AUTH_MODE", " None "}, want: auth.Config{Mode: auth.ModeNone, Leeway: auth.DefaultLeeway}},
		{name: "jwks url", env: jwks, want: auth.Config{Mode: auth.ModeJWT, JWKSURL: "https://idp.example/.well-known/jwks.json",
			Issuer: "https://idp.example/", Audience: "app", Leeway: auth.DefaultLeeway}},
		{name: "every knob", env: with("AUTH_LEEWAY", "10s", "AUTH_CLAIMS", "name, cognito:groups,,email",
			"AUTH_JWKS_REFRESH_INTERVAL", "2h", "AUTH_JWKS_MIN_REFRESH_INTERVAL", "30s", "AUTH_JWKS_TIMEOUT", "2s"),
			want: auth.Config{Mode: auth.ModeJWT, JWKSURL: "https://idp.example/.well-known/jwks.json",
				Issuer: "https://idp.example/", Audience: "app", Leeway: 10 * time.Second,
				Claims:              []string{"name", "cognito:groups", "email"},
				JWKSRefreshInterval: 2 * time.Hour, JWKSMinRefreshInterval: 30 * time.Second, JWKSTimeout: 2 * time.Second}},
		{name: "zero leeway", env: with("AUTH_LEEWAY", "0s"), want: auth.Config{Mode: auth.ModeJWT,
			JWKSURL: "https://idp.example/.well-known/jwks.json", Issuer: "https://idp.example/", Audience: "app"}},
		{name: "loopback http", env: []string{"AUTH_MODE", "jwt", "AUTH_JWKS_URL", "http://127.0.0.1:8080/certs",
			"AUTH_ISSUER", "i", "AUTH_AUDIENCE", "a"}, want: auth.Config{Mode: auth.ModeJWT,
			JWKSURL: "http://127.0.0.1:8080/certs", Issuer: "i", Audience: "a", Leeway: auth.DefaultLeeway}},
		{name: "jwks file", env: []string{"AUTH_MODE", "jwt", "AUTH_JWKS_FILE", "/etc/jwks.json", "AUTH_ISSUER", "i",
			"AUTH_AUDIENCE", "a"}, want: auth.Config{Mode: auth.ModeJWT, JWKSFile: "/etc/jwks.json", Issuer: "i",
			Audience: "a", Leeway: auth.DefaultLeeway}},
		{name: "hs256 without iss and aud", env: []string{"AUTH_MODE", "jwt", "AUTH_HS256_SECRET", secret32},
			want: auth.Config{Mode: auth.ModeJWT, HS256Secret: auth.Secret(secret32), Leeway: auth.DefaultLeeway}},

		{name: "unknown mode", env: []string{"AUTH_MODE", "cognito"}, err: `AUTH_MODE="cognito": want none or jwt`},
		{name: "none with a key source", env: []string{"AUTH_JWKS_URL", "https://idp.example/jwks"},
			err: "AUTH_MODE is none but AUTH_JWKS_URL is set"},
		{name: "none with an issuer", env: []string{"AUTH_MODE", "none", "AUTH_ISSUER", "x"},
			err: "AUTH_MODE is none but AUTH_ISSUER is set"},
		{name: "jwt without source", env: []string{"AUTH_MODE", "jwt"}, err: "set one of AUTH_JWKS_URL"},
		{name: "two sources", env: with("AUTH_HS256_SECRET", secret32),
			err: "exactly one key source, not AUTH_JWKS_URL and AUTH_HS256_SECRET"},
		{name: "jwks without issuer", env: []string{"AUTH_MODE", "jwt", "AUTH_JWKS_FILE", "f", "AUTH_AUDIENCE", "a"},
			err: "AUTH_ISSUER is required"},
		{name: "jwks without audience", env: []string{"AUTH_MODE", "jwt", "AUTH_JWKS_URL", "https://x/j", "AUTH_ISSUER", "i"},
			err: "AUTH_AUDIENCE is required"},
		{name: "short secret", env: []string{"AUTH_MODE", "jwt", "AUTH_HS256_SECRET", secret32[1:]},
			err: fmt.Sprintf("AUTH_HS256_SECRET is %d bytes: want at least 32", auth.MinHS256SecretBytes-1)},
		{name: "plain http", env: []string{"AUTH_MODE", "jwt", "AUTH_JWKS_URL", "http://idp.example/jwks",
			"AUTH_ISSUER", "i", "AUTH_AUDIENCE", "a"}, err: "must be https"},
		{name: "relative url", env: []string{"AUTH_MODE", "jwt", "AUTH_JWKS_URL", "/jwks", "AUTH_ISSUER", "i",
			"AUTH_AUDIENCE", "a"}, err: "not an absolute URL"},
		{name: "ftp url", env: []string{"AUTH_MODE", "jwt", "AUTH_JWKS_URL", "ftp://idp/jwks", "AUTH_ISSUER", "i",
			"AUTH_AUDIENCE", "a"}, err: `scheme "ftp"`},
		{name: "leeway syntax", env: with("AUTH_LEEWAY", "30"), err: `AUTH_LEEWAY="30" is not a duration`},
		{name: "leeway over max", env: with("AUTH_LEEWAY", "5m1s"), err: "AUTH_LEEWAY=5m1s: want 0 to 5m0s"},
		{name: "leeway negative", env: with("AUTH_LEEWAY", "-1s"), err: "AUTH_LEEWAY=-1s"},
		{name: "refresh too often", env: with("AUTH_JWKS_REFRESH_INTERVAL", "59s"), err: "AUTH_JWKS_REFRESH_INTERVAL=59s"},
		{name: "min refresh too short", env: with("AUTH_JWKS_MIN_REFRESH_INTERVAL", "999ms"),
			err: "AUTH_JWKS_MIN_REFRESH_INTERVAL=999ms"},
		{name: "timeout too long", env: with("AUTH_JWKS_TIMEOUT", "31s"), err: "AUTH_JWKS_TIMEOUT=31s: want 100ms to 30s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := auth.ConfigFromEnv(env(c.env...))
			if c.err != "" {
				if !errors.Is(err, auth.ErrConfig) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want ErrConfig with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %#v\nwant %#v", got, c.want)
			}
		})
	}
}

// TestConfigSecretBound sends a secret of exactly the minimum and one byte less, through New too.
func TestConfigSecretBound(t *testing.T) {
	for _, n := range []int{auth.MinHS256SecretBytes, auth.MinHS256SecretBytes - 1} {
		cfg := auth.Config{Mode: auth.ModeJWT, HS256Secret: auth.Secret(strings.Repeat("k", n))}
		_, err := auth.New(t.Context(), cfg)
		if ok := n >= auth.MinHS256SecretBytes; ok != (err == nil) {
			t.Errorf("%d-byte secret: err = %v", n, err)
		}
	}
}

func TestModeSet(t *testing.T) {
	for in, want := range map[string]bool{"": false, "  ": false, "none": true, "jwt": true} {
		if got := auth.ModeSet(env("AUTH_MODE", in)); got != want {
			t.Errorf("ModeSet(AUTH_MODE=%q) = %v", in, got)
		}
	}
	if !errors.Is(auth.ErrModeNotSet, auth.ErrConfig) || !strings.Contains(auth.ErrModeNotSet.Error(), "AUTH_MODE") {
		t.Errorf("ErrModeNotSet = %v", auth.ErrModeNotSet)
	}
}

// TestSecretNeverPrints: a Config printed or logged as JSON does not show the secret.
func TestSecretNeverPrints(t *testing.T) {
	cfg, err := auth.ConfigFromEnv(env("AUTH_MODE", "jwt", "AUTH_HS256_SECRET", secret32))
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(cfg)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), string(j)} {
		if strings.Contains(s, secret32) || !strings.Contains(s, "[redacted]") {
			t.Errorf("secret shown or not redacted: %s", s)
		}
	}
}
