package web_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/router"
	"github.com/realtime-gql/lambdaws/web"
	"github.com/rs/zerolog"
)

// Accept headers browsers send when the user opens a URL.
const (
	chromeAccept  = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
	firefoxAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
)

func TestWantsHTML(t *testing.T) {
	for _, tc := range []struct {
		method, accept string
		want           bool
	}{
		{"GET", chromeAccept, true},
		{"GET", firefoxAccept, true},
		{"HEAD", chromeAccept, true},
		{"GET", "text/html", true},
		{"GET", "application/xhtml+xml", true},
		{"GET", "text/html;q=0.9, application/json;q=0.5", true},
		{"GET", "", false},
		{"GET", "*/*", false}, // curl, fetch
		{"GET", "application/json", false},
		{"GET", "application/graphql-response+json, application/json;q=0.9", false}, // graphql-http
		{"GET", "text/html;q=0.5, application/json", false},
		{"GET", "text/html, application/json", false}, // a tie goes to the API
		{"GET", "text/html;q=0", false},
		{"GET", "text/html;q=nonsense", false},
		{"GET", "text/*", false},
		{"GET", ";;;, text/html", true},
		{"POST", chromeAccept, false},
	} {
		r := httptest.NewRequest(tc.method, "/graphql", nil)
		if tc.accept != "" {
			r.Header.Set("Accept", tc.accept)
		}
		if got := web.WantsHTML(r); got != tc.want {
			t.Errorf("WantsHTML(%s, Accept: %q) = %v, want %v", tc.method, tc.accept, got, tc.want)
		}
	}
}

func newPages(t *testing.T, opts web.Options) *web.Pages {
	t.Helper()
	p, err := web.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func get(t *testing.T, h http.Handler, method, target string, header map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// configOf returns the page's configuration element's content.
func configOf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`<script id="lambdaws-config" type="application/json">(.*?)</script>`).FindAllStringSubmatch(page, -1)
	if len(m) != 1 {
		t.Fatalf("the page has %d configuration elements, want 1", len(m))
	}
	return m[0][1]
}

func TestServesWhatItSaysItServes(t *testing.T) {
	p := newPages(t, web.Options{})
	for _, tc := range []struct {
		method, target, accept string
		serves                 bool
		title                  string // of the page served
	}{
		{"GET", "/", "", true, "GraphiQL"},
		{"GET", "/", "*/*", true, "GraphiQL"},
		{"HEAD", "/", "", true, "GraphiQL"},
		{"GET", "/demo", chromeAccept, true, "Chat demo"},
		{"GET", "/graphql", chromeAccept, true, "GraphiQL"},
		{"GET", "/graphql?query=%7B__typename%7D", chromeAccept, true, "GraphiQL"},
		{"GET", "/prod/graphql", chromeAccept, true, "GraphiQL"}, // a stage prefix
		{"GET", "/graphql", "*/*", false, ""},
		{"GET", "/graphql", "application/json", false, ""},
		{"POST", "/graphql", chromeAccept, false, ""},
		{"POST", "/", chromeAccept, false, ""},
		{"GET", "/demo/x", chromeAccept, false, ""},
		{"GET", "/favicon.ico", chromeAccept, false, ""},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		r.Header.Set("Accept", tc.accept)
		if got := p.Serves(r); got != tc.serves {
			t.Errorf("Serves(%s %s, Accept: %q) = %v, want %v", tc.method, tc.target, tc.accept, got, tc.serves)
		}
		if !tc.serves {
			continue
		}
		resp := get(t, p, tc.method, tc.target, map[string]string{"Accept": tc.accept})
		b := body(t, resp)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("%s %s: %d %s", tc.method, tc.target, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if tc.method == "HEAD" {
			if b != "" || resp.Header.Get("Content-Length") == "" {
				t.Errorf("HEAD %s: body %d bytes, Content-Length %q", tc.target, len(b), resp.Header.Get("Content-Length"))
			}
			continue
		}
		if !strings.Contains(b, "<title>"+tc.title) {
			t.Errorf("%s %s: not the %s page", tc.method, tc.target, tc.title)
		}
		if got := configOf(t, b); got != "{}" {
			t.Errorf("%s %s: configuration %s, want {} (defaults)", tc.method, tc.target, got)
		}
	}
	// Anything else ServeHTTP is handed directly: 404, and 405 for a page's path with a wrong method.
	if resp := get(t, p, "GET", "/nope", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: %d, want 404", resp.StatusCode)
	}
	if resp := get(t, p, "POST", "/demo", nil); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /demo: %d Allow %q, want 405 GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestGzipAndCaching(t *testing.T) {
	p := newPages(t, web.Options{})
	plain := get(t, p, "GET", "/", nil)
	raw := body(t, plain)
	if plain.Header.Get("Content-Encoding") != "" {
		t.Fatalf("without Accept-Encoding the page is %s-encoded", plain.Header.Get("Content-Encoding"))
	}
	for _, ae := range []string{"gzip, deflate, br, zstd", "br;q=1.0, gzip;q=0.8", "*"} {
		resp := get(t, p, "GET", "/", map[string]string{"Accept-Encoding": ae})
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q, want gzip", ae, resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		unzipped, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if string(unzipped) != raw {
			t.Fatalf("Accept-Encoding %q: the gzip body does not decompress to the page", ae)
		}
		if resp.Header.Get("ETag") == plain.Header.Get("ETag") {
			t.Errorf("the gzip and identity encodings share the ETag %s", resp.Header.Get("ETag"))
		}
	}
	for _, ae := range []string{"gzip;q=0", "identity", "br"} {
		if resp := get(t, p, "GET", "/", map[string]string{"Accept-Encoding": ae}); resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want none", ae, resp.Header.Get("Content-Encoding"))
		}
	}
	etag := plain.Header.Get("ETag")
	if resp := get(t, p, "GET", "/", map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified || body(t, resp) != "" {
		t.Errorf("If-None-Match %s: %d, want 304 without a body", etag, resp.StatusCode)
	}
	if resp := get(t, p, "GET", "/", map[string]string{"If-None-Match": `"other"`}); resp.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match with another tag: %d, want 200", resp.StatusCode)
	}
	if got := plain.Header.Values("Vary"); !strings.Contains(strings.Join(got, ","), "Accept-Encoding") || !strings.Contains(strings.Join(got, ","), "Accept,") {
		t.Errorf("Vary = %q, want Accept and Accept-Encoding", got)
	}
}

// TestContentSecurityPolicy: the one inline script runs by its hash, and the page may connect
// to its endpoints only.
func TestContentSecurityPolicy(t *testing.T) {
	p := newPages(t, web.Options{})
	for _, path := range []string{"/", "/demo"} {
		resp := get(t, p, "GET", "http://127.0.0.1:4000"+path, nil)
		b := body(t, resp)
		csp := resp.Header.Get("Content-Security-Policy")
		scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(b, -1)
		if len(scripts) != 1 {
			t.Fatalf("%s: %d inline scripts, want 1", path, len(scripts))
		}
		sum := sha256.Sum256([]byte(scripts[0][1]))
		if want := "script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", path, csp, want)
		}
		if !strings.Contains(csp, "connect-src 'self' ws://127.0.0.1:4000 wss://127.0.0.1:4000;") {
			t.Errorf("%s: CSP %q does not limit connections to the page's host", path, csp)
		}
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
}

// TestDeployedConfiguration: configured endpoints reach the page and its CSP.
func TestDeployedConfiguration(t *testing.T) {
	wsURL, err := web.WebSocketURLFor("https://abc123.execute-api.eu-west-1.amazonaws.com/prod")
	if err != nil || wsURL != "wss://abc123.execute-api.eu-west-1.amazonaws.com/prod" {
		t.Fatalf("WebSocketURLFor = %q, %v", wsURL, err)
	}
	p := newPages(t, web.Options{WebSocketURL: wsURL})
	resp := get(t, p, "GET", "https://h1.execute-api.eu-west-1.amazonaws.com/graphql", map[string]string{"Accept": chromeAccept})
	var cfg map[string]string
	if err := json.Unmarshal([]byte(configOf(t, body(t, resp))), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["webSocketURL"] != wsURL || cfg["httpURL"] != "" {
		t.Errorf("configuration %v, want webSocketURL %s and no httpURL", cfg, wsURL)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' wss://abc123.execute-api.eu-west-1.amazonaws.com;") {
		t.Errorf("CSP %q", csp)
	}

	// A URL that would break out of the element is escaped.
	p = newPages(t, web.Options{HTTPURL: "https://example.test/graphql?x=</script><script>alert(1)</script>"})
	page := body(t, get(t, p, "GET", "/", nil))
	if strings.Count(page, "</script>") != 2 || strings.Contains(page, "<script>alert(1)") {
		t.Errorf("the HTTPURL broke out of the configuration element: %s", configOf(t, page))
	}

	for _, bad := range []web.Options{
		{WebSocketURL: "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"},
		{WebSocketURL: "/graphql"},
		{HTTPURL: "ws://127.0.0.1/graphql"},
		{HTTPURL: "graphql"},
	} {
		if _, err := web.New(bad); err == nil {
			t.Errorf("New(%+v) accepted it", bad)
		}
	}
	for _, bad := range []string{"", "wss://x/prod", "http://x/prod", "https:///prod"} {
		if _, err := web.WebSocketURLFor(bad); err == nil {
			t.Errorf("WebSocketURLFor(%q) accepted it", bad)
		}
	}
}

// TestInvokePath: the local runtime's invoke path reaches the pages' configuration (the demo's
// test-announcement form appears only then); anything but a path on the page's host is refused.
func TestInvokePath(t *testing.T) {
	const path = "/2015-03-31/functions/function/invocations"
	p := newPages(t, web.Options{InvokePath: path})
	var cfg map[string]string
	if err := json.Unmarshal([]byte(configOf(t, body(t, get(t, p, "GET", "/demo", nil)))), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg) != 1 || cfg["invokePath"] != path {
		t.Errorf("configuration %v, want only invokePath %s", cfg, path)
	}
	for _, bad := range []string{"invocations", "//evil.example/x", "http://127.0.0.1:4000" + path, path + "?x=1", path + "#x", `/\evil.example`} {
		if _, err := web.New(web.Options{InvokePath: bad}); err == nil {
			t.Errorf("New(InvokePath: %q) accepted it", bad)
		}
	}
}

// TestDeployedStage runs GraphiQL through the Lambda handler as a deployed stage would (Wrap
// around the API's HTTP handler, under the router): a browser's GET /graphql gets the page,
// gzip-encoded and base64 in the event response, well under Lambda's 6 MB response limit; every
// other request reaches the API.
func TestDeployedStage(t *testing.T) {
	const lambdaResponseLimit = 6 << 20
	var apiCalls []string
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiCalls = append(apiCalls, r.Method+" "+r.Header.Get("Accept"))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":{"__typename":"Query"}}`)
	})
	pages := newPages(t, web.Options{WebSocketURL: "wss://abc123.execute-api.eu-west-1.amazonaws.com/prod"})
	rt := router.New(router.Handlers{HTTP: pages.Wrap(api)}, zerolog.Nop())
	invoke := func(method, accept, acceptEncoding string) (events.APIGatewayV2HTTPResponse, int) {
		ev := events.APIGatewayV2HTTPRequest{
			Version: "2.0", RouteKey: method + " /graphql", RawPath: "/graphql", RawQueryString: "query=%7B__typename%7D",
			Headers: map[string]string{"accept": accept, "accept-encoding": acceptEncoding},
			RequestContext: events.APIGatewayV2HTTPRequestContext{DomainName: "h1.execute-api.eu-west-1.amazonaws.com",
				HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: "/graphql"}},
		}
		payload, _ := json.Marshal(ev)
		out, err := rt.Invoke(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		return resp, len(out)
	}

	want := body(t, get(t, pages, "GET", "/graphql", map[string]string{"Accept": chromeAccept}))
	gz, gzSize := invoke("GET", chromeAccept, "gzip, deflate, br")
	if gz.StatusCode != 200 || !gz.IsBase64Encoded || gz.Headers["Content-Encoding"] != "gzip" {
		t.Fatalf("gzip: status %d, base64 %v, Content-Encoding %q", gz.StatusCode, gz.IsBase64Encoded, gz.Headers["Content-Encoding"])
	}
	zipped, err := base64.StdEncoding.DecodeString(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); string(got) != want {
		t.Fatal("the page through the router differs from the page")
	}
	plain, plainSize := invoke("GET", chromeAccept, "")
	if plain.StatusCode != 200 || plain.IsBase64Encoded || plain.Body != want {
		t.Fatalf("identity: status %d, base64 %v, the body differs: %v", plain.StatusCode, plain.IsBase64Encoded, plain.Body != want)
	}
	t.Logf("Lambda response: %d bytes gzip-encoded, %d bytes identity (limit %d)", gzSize, plainSize, lambdaResponseLimit)
	if gzSize > lambdaResponseLimit/4 || plainSize > lambdaResponseLimit/2 {
		t.Errorf("the page's Lambda response is %d bytes gzip-encoded, %d identity: too close to the 6 MB limit", gzSize, plainSize)
	}

	if apiCalls != nil {
		t.Fatalf("the API saw the page requests: %q", apiCalls)
	}
	for _, accept := range []string{"application/graphql-response+json, application/json", "*/*", ""} {
		resp, _ := invoke("GET", accept, "gzip")
		if resp.Body != `{"data":{"__typename":"Query"}}` {
			t.Errorf("GET with Accept %q: %d %q, want the API's answer", accept, resp.StatusCode, resp.Body)
		}
	}
	invoke("POST", chromeAccept, "gzip")
	if len(apiCalls) != 4 {
		t.Errorf("API calls %q, want 4", apiCalls)
	}
}
