// Package gqlhttp serves queries and mutations over HTTP as the GraphQL-over-HTTP specification describes.
//
// Media types: a client that accepts application/graphql-response+json (at least as much as
// application/json) gets it; otherwise, and for */* or no Accept at all, the response is
// application/json; a client that accepts neither gets 406. GET runs queries only (a mutation
// answers 405 with Allow: POST); POST takes an application/json body (415 otherwise, 413 when it
// is too large). Subscriptions are served over the WebSocket API, not here.
//
// Status codes follow the specification's two cases:
//   - A request that is not a well-formed GraphQL-over-HTTP request (an empty body, a body that
//     is not a JSON object, a missing or non-string query, a parameter of the wrong type) answers
//     400 whatever the media type, with an errors entry and no data entry.
//   - A well-formed request whose document does not parse or validate, whose operation cannot be
//     chosen or whose variables do not coerce is a GraphQL request error: 400 for
//     application/graphql-response+json, 200 for application/json, never a data entry.
//
// An executed operation answers 200, field errors included.
//
// Authentication (Config.Verifier in jwt mode): the token is the Authorization header's Bearer
// token. None, or one that does not verify, answers 401 with a WWW-Authenticate challenge and a
// GraphQL error (UNAUTHENTICATED) before the body is read; the operation runs with the principal
// (graph.WithPrincipal). A body over the limit is refused by its Content-Length before it is read.
// Cross-origin requests are answered as Config.CORSOrigins allows (internal/cors).
package gqlhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/cors"
	"github.com/rs/zerolog"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Media types.
const (
	MediaJSON     = "application/json"
	MediaResponse = "application/graphql-response+json"
)

// Executor is the part of graph.Executor the handler uses.
type Executor interface {
	Prepare(ctx context.Context, req graph.Request) (*graph.Operation, gqlerror.List)
	Execute(ctx context.Context, op *graph.Operation) *graphql.Response
	ErrorResponse(ctx context.Context, errs gqlerror.List) *graphql.Response
}

// Verifier authenticates tokens; *auth.Verifier satisfies it.
type Verifier interface {
	Mode() auth.Mode
	Verify(ctx context.Context, token string) (auth.Principal, error)
}

// Config holds the Handler's settings.
type Config struct {
	// MaxBody bounds a request body; larger ones answer 413. Default DefaultMaxBody
	// (HTTP_MAX_BODY).
	MaxBody int64
	// Verifier authenticates callers; nil accepts everyone as anonymous (AUTH_MODE=none).
	Verifier Verifier
	// CORSOrigins are the origins allowed to call from a browser (CORS_ORIGINS); none: no
	// cross-origin request.
	CORSOrigins []string
}

// Handler is the GraphQL HTTP endpoint.
type Handler struct {
	exec     Executor
	maxBody  int64
	verifier Verifier // nil when not authenticating
	cors     http.Handler
}

// DefaultMaxBody is the default request body limit, 1 MiB.
const DefaultMaxBody = 1 << 20

// New returns a Handler.
func New(exec Executor, cfg Config) *Handler {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	h := &Handler{exec: exec, maxBody: cfg.MaxBody}
	if cfg.Verifier != nil && cfg.Verifier.Mode() == auth.ModeJWT {
		h.verifier = cfg.Verifier
	}
	h.cors = cors.New(cfg.CORSOrigins).Handler(http.HandlerFunc(h.serve))
	return h
}

// params are the GraphQL request parameters, as JSON values still.
type params struct {
	Query         json.RawMessage `json:"query"`
	OperationName json.RawMessage `json:"operationName"`
	Variables     json.RawMessage `json:"variables"`
	Extensions    json.RawMessage `json:"extensions"`
}

// A refusal stops a request before it reaches the executor.
type refusal struct {
	// status is http.StatusBadRequest for a request that is not a well-formed GraphQL-over-HTTP
	// request, answered as a GraphQL response in the negotiated media type; any other status
	// (413, 415) refuses the request at the HTTP level.
	status int
	msg    string
}

// malformed refuses a request that is not a well-formed GraphQL-over-HTTP request.
func malformed(format string, args ...any) *refusal {
	return &refusal{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.cors.ServeHTTP(w, r) }

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		httpError(w, http.StatusMethodNotAllowed, "use GET or POST")
		return
	}
	media, ok := negotiate(r.Header.Values("Accept"))
	if !ok {
		httpError(w, http.StatusNotAcceptable, "accept "+MediaResponse+" or "+MediaJSON)
		return
	}
	principal, err := h.authenticate(r)
	if err != nil {
		zerolog.Ctx(ctx).Info().Err(err).Msg("request refused: not authenticated")
		challenge := `Bearer realm="lambdaws"`
		if !errors.Is(err, auth.ErrNoToken) {
			challenge += `, error="invalid_token", error_description="` + auth.ClientMessage(err) + `"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		write(w, http.StatusUnauthorized, media, graph.ErrorsJSON(graph.Unauthenticated(auth.ClientMessage(err))))
		return
	}
	ctx = graph.WithPrincipal(ctx, principal)
	if r.ContentLength > h.maxBody {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", h.maxBody))
		return
	}

	var p params
	var ref *refusal
	if r.Method == http.MethodGet {
		p = queryParams(r)
	} else {
		p, ref = h.readBody(r)
	}
	var req graph.Request
	if ref == nil {
		req, ref = decodeParams(p)
	}
	switch {
	case ref == nil:
	case ref.status == http.StatusBadRequest:
		h.writeErrors(ctx, w, media, http.StatusBadRequest, gqlerror.List{gqlerror.Errorf("%s", ref.msg)})
		return
	default:
		httpError(w, ref.status, ref.msg)
		return
	}

	op, errs := h.exec.Prepare(ctx, req)
	if errs != nil {
		h.requestErrors(ctx, w, media, errs)
		return
	}
	switch {
	case op.Kind == ast.Mutation && r.Method == http.MethodGet:
		w.Header().Set("Allow", "POST")
		httpError(w, http.StatusMethodNotAllowed, "mutations must use POST")
		return
	case op.Kind == ast.Subscription:
		h.requestErrors(ctx, w, media, gqlerror.List{gqlerror.Errorf("subscriptions are served over WebSocket")})
		return
	}
	resp := h.exec.Execute(ctx, op)
	body, err := json.Marshal(resp)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("encode response")
		write(w, http.StatusInternalServerError, MediaJSON, graph.ErrorsJSON(graph.InternalError()))
		return
	}
	write(w, http.StatusOK, media, body)
}

// authenticate returns the caller's principal: anonymous when not authenticating, else the one
// the Authorization header's bearer token verifies as.
func (h *Handler) authenticate(r *http.Request) (auth.Principal, error) {
	if h.verifier == nil {
		return auth.Anonymous(), nil
	}
	v := r.Header.Get("Authorization")
	if v == "" {
		return auth.Principal{}, auth.ErrNoToken
	}
	token, ok := auth.FromAuthorizationHeader(v)
	if !ok {
		return auth.Principal{}, fmt.Errorf("%w: the Authorization header is not a Bearer token", auth.ErrInvalidToken)
	}
	return h.verifier.Verify(r.Context(), token)
}

// queryParams reads the parameters of a GET request from its query string: query and
// operationName as they are, variables and extensions as JSON text.
func queryParams(r *http.Request) params {
	q := r.URL.Query()
	return params{
		Query:         jsonString(q, "query"),
		OperationName: jsonString(q, "operationName"),
		Variables:     rawParam(q.Get("variables")),
		Extensions:    rawParam(q.Get("extensions")),
	}
}

// readBody reads the parameters of a POST request from its JSON body.
func (h *Handler) readBody(r *http.Request) (params, *refusal) {
	var p params
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return p, &refusal{http.StatusUnsupportedMediaType, "Content-Type " + MediaJSON + " is required"}
	}
	mt, ps, err := mime.ParseMediaType(ct)
	if err != nil || mt != MediaJSON {
		return p, &refusal{http.StatusUnsupportedMediaType, "Content-Type must be " + MediaJSON}
	}
	if cs, ok := ps["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return p, &refusal{http.StatusUnsupportedMediaType, "charset must be utf-8"}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	if err != nil {
		return p, malformed("cannot read the body")
	}
	if int64(len(body)) > h.maxBody {
		return p, &refusal{http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", h.maxBody)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return p, malformed("request body is empty")
	}
	if !json.Valid(body) {
		return p, malformed("request body is not valid JSON")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return p, malformed("request body is not a JSON object")
	}
	p.Query, p.OperationName, p.Variables, p.Extensions =
		fields["query"], fields["operationName"], fields["variables"], fields["extensions"]
	return p, nil
}

// decodeParams checks the parameters' types.
func decodeParams(p params) (graph.Request, *refusal) {
	var req graph.Request
	if isNull(p.Query) {
		return req, malformed("query is required")
	}
	if json.Unmarshal(p.Query, &req.Query) != nil {
		return req, malformed("query must be a string")
	}
	if !isNull(p.OperationName) && json.Unmarshal(p.OperationName, &req.OperationName) != nil {
		return req, malformed("operationName must be a string or null")
	}
	if !isNull(p.Variables) {
		if !isObject(p.Variables) {
			return req, malformed("variables must be an object or null")
		}
		req.Variables = p.Variables
	}
	if !isNull(p.Extensions) && !isObject(p.Extensions) {
		return req, malformed("extensions must be an object or null")
	}
	return req, nil
}

// requestErrors answers a well-formed request that did not reach execution (GraphQL request
// errors): 400 for application/graphql-response+json, 200 for application/json.
func (h *Handler) requestErrors(ctx context.Context, w http.ResponseWriter, media string, errs gqlerror.List) {
	status := http.StatusOK
	if media == MediaResponse {
		status = http.StatusBadRequest
	}
	h.writeErrors(ctx, w, media, status, errs)
}

// writeErrors answers with a GraphQL response that has errors and no data entry, presented by the
// executor.
func (h *Handler) writeErrors(ctx context.Context, w http.ResponseWriter, media string, status int, errs gqlerror.List) {
	resp := h.exec.ErrorResponse(ctx, errs)
	zerolog.Ctx(ctx).Info().Int("status", status).Str("error", strings.ReplaceAll(strings.TrimSuffix(resp.Errors.Error(), "\n"), "\n", "; ")).Msg("request rejected")
	body, _ := json.Marshal(struct {
		Errors     gqlerror.List  `json:"errors"`
		Extensions map[string]any `json:"extensions,omitempty"`
	}{resp.Errors, resp.Extensions})
	write(w, status, media, body)
}

// negotiate picks the response media type from Accept headers. Each of the two types gets the
// q-value of the most specific range that matches it; application/graphql-response+json is
// matched only by its own name, while application/json is also matched by application/* and */*
// (the specification asks for application/json there). The higher q wins, graphql-response+json
// on a tie; q=0 means "not acceptable". No Accept header (or one with no media range) means
// application/json.
func negotiate(accepts []string) (string, bool) {
	// The q-value of each range the header names; a range named twice keeps its highest q.
	ranges := map[string]float64{}
	for _, a := range accepts {
		for part := range strings.SplitSeq(a, ",") {
			mt, ps, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if s, ok := ps["q"]; ok {
				if q, err = strconv.ParseFloat(s, 64); err != nil || q < 0 || q > 1 {
					continue // not a valid weight: ignore the range
				}
			}
			if old, ok := ranges[mt]; !ok || q > old {
				ranges[mt] = q
			}
		}
	}
	if len(ranges) == 0 {
		return MediaJSON, true
	}
	qResponse := ranges[MediaResponse] // 0 when not named
	qJSON := 0.0
	for _, mt := range []string{"*/*", "application/*", MediaJSON} { // least specific first
		if q, ok := ranges[mt]; ok {
			qJSON = q
		}
	}
	switch {
	case qResponse > 0 && qResponse >= qJSON:
		return MediaResponse, true
	case qJSON > 0:
		return MediaJSON, true
	}
	return "", false
}

func write(w http.ResponseWriter, status int, media string, body []byte) {
	w.Header().Set("Content-Type", media+"; charset=utf-8")
	w.WriteHeader(status)
	w.Write(body)
}

// httpError refuses a request at the HTTP level, before any GraphQL: always application/json.
func httpError(w http.ResponseWriter, status int, msg string) {
	write(w, status, MediaJSON, graph.ErrorsJSON(graph.RequestError("%s", msg)))
}

// jsonString returns a query parameter as a JSON string value, or nil when absent.
func jsonString(q map[string][]string, name string) json.RawMessage {
	v, ok := q[name]
	if !ok || len(v) == 0 {
		return nil
	}
	b, _ := json.Marshal(v[0])
	return b
}

// rawParam returns a JSON-encoded query parameter; an empty one is absent.
func rawParam(v string) json.RawMessage {
	if v == "" {
		return nil
	}
	if !json.Valid([]byte(v)) {
		b, _ := json.Marshal(v) // not JSON: a string, which decodeParams rejects
		return b
	}
	return json.RawMessage(v)
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

func isObject(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '{'
}
