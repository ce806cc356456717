package gqlhttp_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/auth/authtest"
	"github.com/realtime-gql/lambdaws/internal/gqlhttp"
	"github.com/realtime-gql/lambdaws/store/embedded"
)

func authHandler(t *testing.T, cfg gqlhttp.Config) *gqlhttp.Handler {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "d.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	cfg.Verifier = authtest.HS256Verifier(t)
	res, err := graph.NewResolver(s)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := graph.NewExecutor(res, graph.Options{Authenticated: true})
	if err != nil {
		t.Fatal(err)
	}
	return gqlhttp.New(exec, cfg)
}

// TestAuthentication: in jwt mode a request without a valid bearer token answers 401 with a
// challenge and an UNAUTHENTICATED error, before anything runs; a valid one runs as its
// principal.
func TestAuthentication(t *testing.T) {
	h := authHandler(t, gqlhttp.Config{})
	const mutation = `{"query":"mutation { sendMessage(roomId: \"r1\", text: \"hi\") { author } }"}`
	for _, tc := range []struct {
		name, authorization string
		status              int
		challenge, body     string
	}{
		{"no token", "", 401, `Bearer realm="lambdaws"`, `{"errors":[{"message":"no token","extensions":{"code":"UNAUTHENTICATED"}}]}`},
		{"another scheme", "Basic YTpi", 401, `Bearer realm="lambdaws", error="invalid_token", error_description="invalid token"`,
			`{"errors":[{"message":"invalid token","extensions":{"code":"UNAUTHENTICATED"}}]}`},
		{"malformed", "Bearer abc.def", 401, `Bearer realm="lambdaws", error="invalid_token", error_description="invalid token"`, `"UNAUTHENTICATED"`},
		{"expired", "Bearer " + authtest.HS256Token(jwt.MapClaims{"exp": 1000}), 401,
			`Bearer realm="lambdaws", error="invalid_token", error_description="token expired"`, `"message":"token expired"`},
		{"valid", "Bearer " + authtest.HS256Token(jwt.MapClaims{"name": "Ann"}), 200, "", `{"data":{"sendMessage":{"author":"Ann"}}}`},
	} {
		r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(mutation))
		r.Header.Set("Content-Type", "application/json")
		if tc.authorization != "" {
			r.Header.Set("Authorization", tc.authorization)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.status || w.Header().Get("WWW-Authenticate") != tc.challenge || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%s: %d %q %s\nwant %d %q %s", tc.name, w.Code, w.Header().Get("WWW-Authenticate"), w.Body, tc.status, tc.challenge, tc.body)
		}
	}
}

// countingBody counts the bytes read from it.
type countingBody struct {
	io.Reader
	n int
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	b.n += n
	return n, err
}

// TestBodyRefusedByContentLength: a body declared over the limit is refused (413) without a byte
// of it read; one of exactly the limit is read.
func TestBodyRefusedByContentLength(t *testing.T) {
	const limit = 1024
	res, err := graph.NewResolver(nil) // no data table: the request reads none
	if err != nil {
		t.Fatal(err)
	}
	exec, err := graph.NewExecutor(res, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := gqlhttp.New(exec, gqlhttp.Config{MaxBody: limit})
	for _, size := range []int{limit, limit + 1} {
		body := `{"query":"{ __typename }"}` + strings.Repeat(" ", size-len(`{"query":"{ __typename }"}`))
		b := &countingBody{Reader: strings.NewReader(body)}
		r := httptest.NewRequest(http.MethodPost, "/graphql", b)
		r.ContentLength = int64(size)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch {
		case size == limit && (w.Code != 200 || b.n != size):
			t.Errorf("at the limit: %d %s, %d bytes read", w.Code, w.Body, b.n)
		case size > limit && (w.Code != http.StatusRequestEntityTooLarge || b.n != 0):
			t.Errorf("over the limit: %d %s, %d bytes read", w.Code, w.Body, b.n)
		}
	}
}

// TestCORS: the handler answers an allowed origin's preflight and tags its answers.
func TestCORS(t *testing.T) {
	h := authHandler(t, gqlhttp.Config{CORSOrigins: []string{"https://app.example"}})
	r := httptest.NewRequest(http.MethodOptions, "/graphql", nil)
	r.Header.Set("Origin", "https://app.example")
	r.Header.Set("Access-Control-Request-Method", "POST")
	r.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("preflight: %d %v", w.Code, w.Header())
	}
	// Even a refused request tells the allowed origin why (the browser can read the 401).
	r = httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
	r.Header.Set("Origin", "https://app.example")
	r.Header.Set("Content-Type", "application/json")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 401 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("request: %d %v", w.Code, w.Header())
	}
}
