// Package cors is the one cross-origin policy of the HTTP API, answered by the local runtime (as API Gateway's CorsConfiguration does) and by internal/gqlhttp alike, on top of github.com/rs/cors.
//
// CORS_ORIGINS lists the origins allowed to call the API from a browser, comma-separated
// ("https://app.example.com,https://admin.example.com"), or "*" for any. Unset, no cross-origin
// request is allowed: no CORS headers are sent, and browsers refuse to let other origins read
// the answers. serverless.yml derives the HTTP API's CorsConfiguration from the same variable,
// with the methods, headers and max age stated here (e2e/deploy checks that they agree).
package cors

import (
	"net/http"
	"strings"

	"github.com/rs/cors"
)

// What a preflight allows. serverless.settings.js states the same for API Gateway.
var (
	// AllowedMethods are the methods of GraphQL over HTTP.
	AllowedMethods = []string{http.MethodGet, http.MethodPost}
	// AllowedHeaders are the request headers a client may send: its token and the media types.
	AllowedHeaders = []string{"Authorization", "Content-Type", "Accept"}
)

// MaxAge is how long a browser may cache a preflight's answer, in seconds.
const MaxAge = 600

// ParseOrigins splits CORS_ORIGINS into origins, trimming spaces and dropping empty items.
func ParseOrigins(v string) []string {
	var out []string
	for _, o := range strings.Split(v, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// Policy answers cross-origin requests for a set of allowed origins.
type Policy struct {
	c *cors.Cors
}

// New returns the policy for origins (ParseOrigins' result); none allows no cross-origin
// request.
func New(origins []string) *Policy {
	if len(origins) == 0 {
		return &Policy{}
	}
	return &Policy{c: cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: AllowedMethods,
		AllowedHeaders: AllowedHeaders,
		MaxAge:         MaxAge,
	})}
}

// Handler wraps h: a preflight (OPTIONS with Access-Control-Request-Method) is answered here
// (204) and never reaches h; the answers to other requests from an allowed origin carry
// Access-Control-Allow-Origin.
func (p *Policy) Handler(h http.Handler) http.Handler {
	if p.c == nil {
		return h
	}
	return p.c.Handler(h)
}
