// Package web serves the pages a browser opens: GraphiQL and the chat demo, built from web/src by esbuild into self-contained HTML files embedded in the binary.
//
// The pages need no network beyond the GraphQL endpoints: their JavaScript, CSS, fonts and images
// are inlined. Queries and mutations go over HTTP POST, subscriptions over GraphQL over WebSocket
// (graphql-transport-ws). `go generate ./web` rebuilds web/dist from web/src and the npm packages
// pinned in package-lock.json (see build.mjs); a test fails when web/dist is stale.
package web

//go:generate go run build.go

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

//go:embed dist/graphiql.html dist/demo.html dist/manifest.json
var dist embed.FS

// configElement is where a page reads its configuration; the built pages hold it empty, and
// Pages writes the endpoints into it.
const configElement = `<script id="lambdaws-config" type="application/json">{}</script>`

// Options configures the pages. The zero value suits the local runtime, which serves the pages,
// the HTTP endpoint and the WebSocket endpoint on one host.
type Options struct {
	// HTTPURL is the GraphQL-over-HTTP endpoint the pages post queries and mutations to. Default:
	// "graphql" relative to the page, that is the server that served it (/graphql next to / and
	// /demo, or the /graphql that served GraphiQL).
	HTTPURL string
	// WebSocketURL is the GraphQL-over-WebSocket endpoint (ws: or wss:) the pages subscribe
	// through. Default: the HTTP endpoint with ws: or wss: for its scheme, right for the local
	// runtime. A deployed stage's WebSocket API has a host of its own,
	// wss://{api-id}.execute-api.{region}.amazonaws.com/{stage}: pass it here (WebSocketURLFor
	// derives it from the management endpoint).
	WebSocketURL string
	// InvokePath is the path of the local runtime's invoke endpoint on the page's own host; only
	// the local runtime sets it. The demo then offers a dev aid: a form that posts a test
	// announcement there as an EventBridge event. Empty (a deployed stage): no such form.
	InvokePath string
}

// Pages serves GraphiQL at / and at GET /graphql (to browsers: see WantsHTML), and the chat demo
// at /demo. Each page is sent gzip-compressed to clients that accept it.
type Pages struct {
	graphiql, demo *page
	// connectOrigins are the configured endpoints' origins, for the CSP's connect-src.
	connectOrigins []string
	// sameHostWS: the WebSocket endpoint is the page's own host, so connect-src names it per
	// request.
	sameHostWS bool
}

// New returns the pages for opts; it fails when an endpoint URL is not absolute or has the wrong
// scheme.
func New(opts Options) (*Pages, error) {
	p := &Pages{}
	cfg := struct {
		HTTPURL      string `json:"httpURL,omitempty"`
		WebSocketURL string `json:"webSocketURL,omitempty"`
		InvokePath   string `json:"invokePath,omitempty"`
	}{opts.HTTPURL, opts.WebSocketURL, opts.InvokePath}
	if p := opts.InvokePath; p != "" && (!strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "?#\\")) {
		return nil, fmt.Errorf("web: InvokePath: want a path on the page's host, such as /2015-03-31/functions/function/invocations, got %q", p)
	}
	if opts.HTTPURL != "" {
		origin, err := origin(opts.HTTPURL, "http", "https")
		if err != nil {
			return nil, fmt.Errorf("web: HTTPURL: %w", err)
		}
		p.connectOrigins = append(p.connectOrigins, origin)
	}
	if opts.WebSocketURL != "" {
		origin, err := origin(opts.WebSocketURL, "ws", "wss")
		if err != nil {
			return nil, fmt.Errorf("web: WebSocketURL: %w", err)
		}
		p.connectOrigins = append(p.connectOrigins, origin)
	} else {
		// The WebSocket endpoint defaults to the HTTP one's host: the page's own, unless HTTPURL
		// names another, whose ws: and wss: origins are then allowed.
		if opts.HTTPURL == "" {
			p.sameHostWS = true
		} else {
			u, _ := url.Parse(opts.HTTPURL)
			p.connectOrigins = append(p.connectOrigins, "ws://"+u.Host, "wss://"+u.Host)
		}
	}
	config, err := json.Marshal(cfg) // escapes <, > and &: safe inside <script>
	if err != nil {
		return nil, err
	}
	m, err := readManifest()
	if err != nil {
		return nil, err
	}
	element := []byte(strings.Replace(configElement, "{}", string(config), 1))
	for _, pg := range []struct {
		name string
		dst  **page
	}{{"graphiql", &p.graphiql}, {"demo", &p.demo}} {
		entry, ok := m.Pages[pg.name]
		if !ok {
			return nil, fmt.Errorf("web: the manifest has no page %q", pg.name)
		}
		raw, err := dist.ReadFile("dist/" + entry.File)
		if err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		if n := bytes.Count(raw, []byte(configElement)); n != 1 {
			return nil, fmt.Errorf("web: %s holds %d configuration elements, want 1", entry.File, n)
		}
		*pg.dst = newPage(bytes.Replace(raw, []byte(configElement), element, 1), entry.ScriptHash)
	}
	return p, nil
}

// origin checks that raw is an absolute URL with one of the schemes and returns its origin.
func origin(raw string, schemes ...string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	for _, s := range schemes {
		if u.Scheme == s && u.Host != "" {
			return u.Scheme + "://" + u.Host, nil
		}
	}
	return "", fmt.Errorf("want an absolute %s URL, got %q", strings.Join(schemes, " or "), raw)
}

// WebSocketURLFor returns a deployed stage's WebSocket URL given its management API endpoint
// (WEBSOCKET_ENDPOINT, https://{api-id}.execute-api.{region}.amazonaws.com/{stage}): the same URL
// with wss:. A custom domain needs its own URL instead.
func WebSocketURLFor(managementEndpoint string) (string, error) {
	u, err := url.Parse(managementEndpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("web: want the management endpoint https://{api-id}.execute-api.{region}.amazonaws.com/{stage}, got %q", managementEndpoint)
	}
	u.Scheme = "wss"
	return u.String(), nil
}

// Serves reports whether r is for a page: a GET or HEAD of / or /demo, or of /graphql (also under
// a stage prefix, /{stage}/graphql) from a client that prefers HTML (WantsHTML). Every other
// request, GraphQL's GET included, is the API's.
func (p *Pages) Serves(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return p.pageFor(r) != nil
}

func (p *Pages) pageFor(r *http.Request) *page {
	switch path := r.URL.Path; {
	case path == "/":
		return p.graphiql
	case path == "/demo":
		return p.demo
	case strings.HasSuffix(path, "/graphql") && WantsHTML(r):
		return p.graphiql
	}
	return nil
}

// Wrap returns a handler that serves the pages' requests (Serves) and passes every other request
// to api: the HTTP handler of a deployed stage that shows GraphiQL on GET /graphql.
func (p *Pages) Wrap(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.Serves(r) {
			p.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// ServeHTTP serves the page r asks for (see Serves); any other request gets 404, a method other
// than GET and HEAD 405.
func (p *Pages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pg := p.pageFor(r)
	if pg == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, etag := pg.raw, pg.etag
	h := w.Header()
	if acceptsGzip(r) {
		if gz, err := pg.gzipped(); err == nil {
			body, etag = gz, strings.TrimSuffix(etag, `"`)+`-gzip"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", etag)
	h.Add("Vary", "Accept, Accept-Encoding")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", p.csp(r, pg))
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// hostPattern is what a Host header must look like to be named in the CSP.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]+)?$|^\[[0-9A-Fa-f:.]+\](:[0-9]+)?$`)

// csp is the page's Content-Security-Policy: its one inline script by hash, inline styles, data:
// fonts and images, and connections to its endpoints only.
func (p *Pages) csp(r *http.Request, pg *page) string {
	connect := append([]string{"'self'"}, p.connectOrigins...)
	if p.sameHostWS {
		if hostPattern.MatchString(r.Host) {
			connect = append(connect, "ws://"+r.Host, "wss://"+r.Host)
		} else {
			connect = append(connect, "ws:", "wss:")
		}
	}
	return "default-src 'none'; script-src '" + pg.scriptHash + "'; style-src 'unsafe-inline'; img-src data:; font-src data:; " +
		"connect-src " + strings.Join(connect, " ") + "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// page is one page with its configuration written in.
type page struct {
	raw        []byte
	etag       string // of raw; the gzip encoding's is etag with -gzip
	scriptHash string // CSP's spelling: sha256-<base64>
	gz         *compressed
}

func newPage(raw []byte, scriptHash string) *page {
	sum := sha256.Sum256(raw)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	gz, _ := compressions.LoadOrStore(etag, &compressed{})
	return &page{raw: raw, scriptHash: scriptHash, etag: etag, gz: gz.(*compressed)}
}

// compressions holds each page's gzip encoding by its ETag: a page is compressed once per
// process (about 0.2 s for GraphiQL's 1.7 MiB), on first use, however many Pages serve it.
var compressions sync.Map

type compressed struct {
	once sync.Once
	gz   []byte
	err  error
}

func (pg *page) gzipped() ([]byte, error) {
	c := pg.gz
	c.once.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.DefaultCompression)
		if _, err := zw.Write(pg.raw); err != nil {
			c.err = err
			return
		}
		c.err = zw.Close()
		c.gz = b.Bytes()
	})
	return c.gz, c.err
}

// WantsHTML reports whether r is a browser's navigation rather than an API call: a GET or HEAD
// whose Accept header names text/html (or application/xhtml+xml) with a higher quality than any
// GraphQL response type (application/json, application/graphql-response+json). Wildcards count
// for neither, so curl's */* and fetch's default are API calls.
func WantsHTML(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	var html, api float64
	for _, part := range strings.Split(strings.Join(r.Header.Values("Accept"), ","), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil || q < 0 || q > 1 {
				continue
			}
		}
		switch mt {
		case "text/html", "application/xhtml+xml":
			html = max(html, q)
		case "application/json", "application/graphql-response+json":
			api = max(api, q)
		}
	}
	return html > 0 && html > api
}

// acceptsGzip reports whether the client accepts gzip (Accept-Encoding: gzip or *, q > 0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(strings.Join(r.Header.Values("Accept-Encoding"), ","), ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "x-gzip" && name != "*" {
			continue
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(q), "="); ok && strings.TrimSpace(k) == "q" {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil || f <= 0 {
				return false
			}
		}
		return true
	}
	return false
}

// etagMatch reports whether an If-None-Match header matches etag (weak comparison).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// manifest is web/dist/manifest.json, written by build.mjs: what the pages were built from.
type manifest struct {
	// Sources maps each file of web/src, and build.mjs, to its SHA-256 (hex).
	Sources map[string]string `json:"sources"`
	// Packages maps each npm package in the bundles (and esbuild) to "version integrity" as
	// package-lock.json has them.
	Packages map[string]string `json:"packages"`
	// Pages are the built pages by name.
	Pages map[string]manifestPage `json:"pages"`
}

type manifestPage struct {
	File       string `json:"file"`
	Bytes      int    `json:"bytes"`
	SHA256     string `json:"sha256"`
	ScriptHash string `json:"scriptHash"`
}

func readManifest() (manifest, error) {
	var m manifest
	b, err := dist.ReadFile("dist/manifest.json")
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return m, fmt.Errorf("web: manifest: %w", err)
	}
	if len(m.Pages) == 0 {
		return m, errors.New("web: manifest: no pages")
	}
	return m, nil
}
