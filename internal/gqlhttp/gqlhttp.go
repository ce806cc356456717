// Package gqlhttp serves queries and mutations over HTTP as the GraphQL-over-HTTP specification describes.
//
// Media types: a client that accepts application/graphql-response+json gets it, and request
// errors (bad JSON, bad parameters, parse and validation failures) then answer 400 with no data
// entry; otherwise the response is application/json and every GraphQL result is 200. GET runs
// queries only (a mutation answers 405); POST takes application/json. Subscriptions are served
// over the WebSocket API, not here.
package gqlhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/realtime-gql/lambdaws/graph"
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

// Handler is the GraphQL HTTP endpoint.
type Handler struct {
	exec Executor
	// maxBody bounds a request body; larger ones answer 413.
	maxBody int64
}

// DefaultMaxBody is the default request body limit, 1 MiB.
const DefaultMaxBody = 1 << 20

// New returns a Handler; maxBody <= 0 means DefaultMaxBody.
func New(exec Executor, maxBody int64) *Handler {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	return &Handler{exec: exec, maxBody: maxBody}
}

// params are the GraphQL request parameters, as JSON values still.
type params struct {
	Query         json.RawMessage `json:"query"`
	OperationName json.RawMessage `json:"operationName"`
	Variables     json.RawMessage `json:"variables"`
	Extensions    json.RawMessage `json:"extensions"`
}

// requestError is a GraphQL request error: the request never reached execution.
type requestError struct{ msg string }

func badRequest(format string, args ...any) *requestError {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	media, ok := negotiate(r.Header.Values("Accept"))
	if !ok {
		httpError(w, http.StatusNotAcceptable, "accept "+MediaResponse+" or "+MediaJSON)
		return
	}
	var p params
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		p.Query = jsonString(q, "query")
		p.OperationName = jsonString(q, "operationName")
		p.Variables = rawParam(q.Get("variables"))
		p.Extensions = rawParam(q.Get("extensions"))
	case http.MethodPost:
		if status, msg := h.readBody(r, &p); status != 0 {
			if status != http.StatusOK {
				httpError(w, status, msg)
				return
			}
			h.requestErrors(ctx, w, media, gqlerror.List{gqlerror.Errorf("%s", msg)})
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		httpError(w, http.StatusMethodNotAllowed, "use GET or POST")
		return
	}

	req, rerr := decodeParams(p)
	if rerr != nil {
		h.requestErrors(ctx, w, media, gqlerror.List{gqlerror.Errorf("%s", rerr.msg)})
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
		httpError(w, http.StatusInternalServerError, "internal error")
		return
	}
	write(w, http.StatusOK, media, body)
}

// readBody decodes a POST body into p. It returns 0 on success, http.StatusOK for a request
// error that is answered as a GraphQL result, or another status for an HTTP-level error.
func (h *Handler) readBody(r *http.Request, p *params) (int, string) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return http.StatusUnsupportedMediaType, "Content-Type " + MediaJSON + " is required"
	}
	mt, ps, err := mime.ParseMediaType(ct)
	if err != nil || mt != MediaJSON {
		return http.StatusUnsupportedMediaType, "Content-Type must be " + MediaJSON
	}
	if cs, ok := ps["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return http.StatusUnsupportedMediaType, "charset must be utf-8"
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	if err != nil {
		return http.StatusBadRequest, "cannot read the body"
	}
	if int64(len(body)) > h.maxBody {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", h.maxBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return http.StatusOK, "request body is empty"
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return http.StatusOK, "request body is not a JSON object"
	}
	p.Query, p.OperationName, p.Variables, p.Extensions =
		fields["query"], fields["operationName"], fields["variables"], fields["extensions"]
	return 0, ""
}

// decodeParams checks the parameters' types.
func decodeParams(p params) (graph.Request, *requestError) {
	var req graph.Request
	if isNull(p.Query) {
		return req, badRequest("query is required")
	}
	if json.Unmarshal(p.Query, &req.Query) != nil {
		return req, badRequest("query must be a string")
	}
	if !isNull(p.OperationName) && json.Unmarshal(p.OperationName, &req.OperationName) != nil {
		return req, badRequest("operationName must be a string or null")
	}
	if !isNull(p.Variables) {
		if !isObject(p.Variables) {
			return req, badRequest("variables must be an object or null")
		}
		req.Variables = p.Variables
	}
	if !isNull(p.Extensions) && !isObject(p.Extensions) {
		return req, badRequest("extensions must be an object or null")
	}
	return req, nil
}

// requestErrors answers a request that did not reach execution: 400 for
// application/graphql-response+json, 200 for application/json; never a data entry.
func (h *Handler) requestErrors(ctx context.Context, w http.ResponseWriter, media string, errs gqlerror.List) {
	resp := h.exec.ErrorResponse(ctx, errs)
	zerolog.Ctx(ctx).Info().Str("error", resp.Errors.Error()).Msg("request rejected")
	body, _ := json.Marshal(struct {
		Errors     gqlerror.List  `json:"errors"`
		Extensions map[string]any `json:"extensions,omitempty"`
	}{resp.Errors, resp.Extensions})
	status := http.StatusOK
	if media == MediaResponse {
		status = http.StatusBadRequest
	}
	write(w, status, media, body)
}

// negotiate picks the response media type from Accept headers: graphql-response+json when
// accepted, else application/json when accepted (or no Accept at all).
func negotiate(accepts []string) (string, bool) {
	if len(accepts) == 0 {
		return MediaJSON, true
	}
	var json bool
	for _, a := range accepts {
		for part := range strings.SplitSeq(a, ",") {
			mt, ps, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || ps["q"] == "0" {
				continue
			}
			switch mt {
			case MediaResponse:
				return MediaResponse, true
			case MediaJSON, "*/*", "application/*":
				json = true
			}
		}
	}
	return MediaJSON, json
}

func write(w http.ResponseWriter, status int, media string, body []byte) {
	w.Header().Set("Content-Type", media+"; charset=utf-8")
	w.WriteHeader(status)
	w.Write(body)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"message": msg}}})
	write(w, status, MediaJSON, body)
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
