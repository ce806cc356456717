package local_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/internal/local"
)

// pages serves /page, and GET /graphql with "Accept: text/html".
type pages struct{}

func (pages) Serves(r *http.Request) bool {
	return r.URL.Path == "/page" || (r.URL.Path == "/graphql" && r.Method == "GET" && r.Header.Get("Accept") == "text/html")
}

func (pages) ServeHTTP(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page "+r.URL.Path) }

// TestPagesComeBeforeTheHTTPAPI: what Config.Pages serves never becomes an HTTP API event;
// everything else, GraphQL's GET included, still does, and the WebSocket upgrade is untouched.
func TestPagesComeBeforeTheHTTPAPI(t *testing.T) {
	h := &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		if rk := route(ev); rk == "$connect" || rk == "$default" || rk == "$disconnect" {
			return echo(ev, raw)
		}
		return json.Marshal(events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "api"})
	}}
	addr, _ := serve(t, local.Config{Handler: h, Pages: pages{}})
	for _, tc := range []struct{ method, path, accept, want string }{
		{"GET", "/page", "", "page /page"},
		{"GET", "/graphql", "text/html", "page /graphql"},
		{"GET", "/graphql", "application/json", "api"},
		{"POST", "/graphql", "text/html", "api"},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, strings.NewReader(`{"query":"{a}"}`))
		req.Header.Set("Accept", tc.accept)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tc.want {
			t.Errorf("%s %s (Accept %q) = %q, want %q", tc.method, tc.path, tc.accept, b, tc.want)
		}
	}
	if got := h.routes(); len(got) != 2 || got[0] != "GET /graphql" || got[1] != "POST /graphql" {
		t.Errorf("HTTP API events %q, want only the two API requests", got)
	}
	c, _, err := dial(t, addr, "graphql-transport-ws")
	if err != nil {
		t.Fatalf("the WebSocket upgrade failed with pages set: %v", err)
	}
	c.Close(1000, "")

	// Without Pages, a page's path is the API Gateway 404.
	addr, _ = serve(t, local.Config{Handler: h})
	resp, err := http.Get("http://" + addr + "/page")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /page without Pages: %d, want 404", resp.StatusCode)
	}
}
