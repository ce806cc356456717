package cors_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/realtime-gql/lambdaws/internal/cors"
)

func TestParseOrigins(t *testing.T) {
	if got := cors.ParseOrigins(" https://a.example , ,https://b.example,"); !slices.Equal(got, []string{"https://a.example", "https://b.example"}) {
		t.Fatalf("ParseOrigins = %q", got)
	}
	if got := cors.ParseOrigins(""); got != nil {
		t.Fatalf("ParseOrigins(\"\") = %q", got)
	}
}

// TestPolicy: an allowed origin's preflight is answered without reaching the handler, and its
// requests carry Access-Control-Allow-Origin; another origin gets no CORS headers; with no
// origins configured, nothing is added.
func TestPolicy(t *testing.T) {
	reached := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++; w.WriteHeader(http.StatusOK) })
	do := func(p *cors.Policy, method, origin string, header ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/graphql", nil)
		r.Header.Set("Origin", origin)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		p.Handler(h).ServeHTTP(w, r)
		return w
	}
	p := cors.New([]string{"https://app.example"})
	pre := do(p, http.MethodOptions, "https://app.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,content-type")
	if pre.Code != http.StatusNoContent || pre.Header().Get("Access-Control-Allow-Origin") != "https://app.example" ||
		pre.Header().Get("Access-Control-Max-Age") != "600" || reached != 0 {
		t.Fatalf("preflight: %d %v (handler reached %d times)", pre.Code, pre.Header(), reached)
	}
	if got := pre.Header().Get("Access-Control-Allow-Headers"); got != "authorization, content-type" && got != "Authorization, Content-Type" && got != "authorization,content-type" {
		t.Errorf("Access-Control-Allow-Headers = %q", got)
	}
	if w := do(p, http.MethodPost, "https://app.example"); w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" || reached != 1 {
		t.Fatalf("request from an allowed origin: %v", w.Header())
	}
	if w := do(p, http.MethodPost, "https://evil.example"); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("request from another origin: %v", w.Header())
	}
	if w := do(p, http.MethodOptions, "https://evil.example", "Access-Control-Request-Method", "POST"); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: %v", w.Header())
	}
	if w := do(cors.New(nil), http.MethodPost, "https://app.example"); len(w.Header().Values("Access-Control-Allow-Origin")) != 0 {
		t.Fatalf("no origins configured: %v", w.Header())
	}
	if w := do(cors.New([]string{"*"}), http.MethodPost, "https://any.example"); w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("any origin: %v", w.Header())
	}
}
