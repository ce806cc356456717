package gqlhttp_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/gqlhttp"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/rs/zerolog"
)

// request is one HTTP request to the handler.
type request struct {
	method, target, body string
	header               http.Header
}

// post is a POST of body with Content-Type application/json. header holds name, value pairs
// added to it; a Content-Type pair replaces the default, and an empty one removes it.
func post(body string, header ...string) request {
	r := request{method: http.MethodPost, target: "/graphql", body: body, header: http.Header{"Content-Type": {gqlhttp.MediaJSON}}}
	addHeaders(r.header, header)
	return r
}

// get is a GET with the query string made of params (name, value pairs); header as for post.
func get(params []string, header ...string) request {
	q := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		q.Add(params[i], params[i+1])
	}
	r := request{method: http.MethodGet, target: "/graphql?" + q.Encode(), header: http.Header{}}
	addHeaders(r.header, header)
	return r
}

func addHeaders(h http.Header, pairs []string) {
	for i := 0; i+1 < len(pairs); i += 2 {
		name, value := pairs[i], pairs[i+1]
		switch {
		case http.CanonicalHeaderKey(name) == "Content-Type" && value == "":
			h.Del(name)
		case http.CanonicalHeaderKey(name) == "Content-Type":
			h.Set(name, value)
		default:
			h.Add(name, value)
		}
	}
}

// want is what the response must be.
type want struct {
	status int
	// media is the Content-Type without its parameters; it must carry charset=utf-8.
	media string
	// allow is the Allow header; empty means there must be none.
	allow string
	// data is the exact data entry, as compact JSON; empty means there must be no data entry.
	data string
	// err is a part of the message of the one error; empty means there must be no errors entry.
	err string
	// code is that error's extensions.code; empty means it must have none.
	code string
}

const (
	gqlResp = gqlhttp.MediaResponse
	appJSON = gqlhttp.MediaJSON
)

// ok is a 200 with data and no errors.
func ok(media, data string) want { return want{status: 200, media: media, data: data} }

// requestError is the answer to a well-formed request that did not reach execution: 400 for
// application/graphql-response+json, 200 for application/json; an error, never a data entry.
func requestError(media, err, code string) want {
	status := http.StatusOK
	if media == gqlResp {
		status = http.StatusBadRequest
	}
	return want{status: status, media: media, err: err, code: code}
}

// malformed is the answer to a request that is not a well-formed GraphQL-over-HTTP request: 400
// whatever the media type; an error, never a data entry.
func malformed(media, err string) want {
	return want{status: http.StatusBadRequest, media: media, err: err}
}

// httpRefusal is a refusal before GraphQL: always application/json.
func httpRefusal(status int, err string) want {
	return want{status: status, media: appJSON, err: err}
}

type testCase struct {
	name string
	req  request
	want want
	// maxBody is the handler's body limit; 0 means the default.
	maxBody int64
}

const typename = `{"__typename":"Query"}`

func TestHandler(t *testing.T) {
	h := newHandler(t)
	// Seed one message in room "seeded" for the queries to read.
	serve(t, h(0), post(`{"query":"mutation { sendMessage(roomId: \"seeded\", author: \"ann\", text: \"hello\") { id } }"}`))

	const parseError, validationError = "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED"
	q := `{"query":"{ __typename }"}`
	cases := []testCase{
		// Accept negotiation.
		{name: "accept graphql-response+json", req: post(q, "Accept", gqlResp), want: ok(gqlResp, typename)},
		{name: "accept application/json", req: post(q, "Accept", appJSON), want: ok(appJSON, typename)},
		{name: "accept */*", req: post(q, "Accept", "*/*"), want: ok(appJSON, typename)},
		{name: "accept application/*", req: post(q, "Accept", "application/*"), want: ok(appJSON, typename)},
		{name: "no accept", req: post(q), want: ok(appJSON, typename)},
		{name: "empty accept", req: post(q, "Accept", ""), want: ok(appJSON, typename)},
		{name: "both accepted: graphql-response+json preferred", req: post(q, "Accept", appJSON+", "+gqlResp), want: ok(gqlResp, typename)},
		{name: "both accepted on two header lines", req: post(q, "Accept", appJSON, "Accept", gqlResp), want: ok(gqlResp, typename)},
		{name: "graphql-response+json with */*", req: post(q, "Accept", gqlResp+", */*;q=0.8"), want: ok(gqlResp, typename)},
		{name: "accept with parameters", req: post(q, "Accept", gqlResp+"; charset=utf-8"), want: ok(gqlResp, typename)},
		{name: "accept is case-insensitive", req: post(q, "Accept", "Application/GraphQL-Response+JSON"), want: ok(gqlResp, typename)},
		{name: "higher q for application/json", req: post(q, "Accept", gqlResp+";q=0.5, "+appJSON), want: ok(appJSON, typename)},
		{name: "graphql-response+json q=0", req: post(q, "Accept", gqlResp+";q=0, "+appJSON), want: ok(appJSON, typename)},
		{name: "application/json q=0 beats */*", req: post(q, "Accept", appJSON+";q=0, */*"), want: httpRefusal(406, "accept")},
		{name: "application/json q=0.0", req: post(q, "Accept", appJSON+";q=0.0"), want: httpRefusal(406, "accept")},
		{name: "unacceptable", req: post(q, "Accept", "text/html"), want: httpRefusal(406, "accept")},
		{name: "unacceptable on GET", req: get([]string{"query", "{ __typename }"}, "Accept", "application/xml"), want: httpRefusal(406, "accept")},
		{name: "acceptable among others", req: post(q, "Accept", "text/html, "+gqlResp+";q=0.9"), want: ok(gqlResp, typename)},

		// POST bodies and content types.
		{name: "charset utf-8", req: post(q, "Content-Type", "application/json; charset=utf-8"), want: ok(appJSON, typename)},
		{name: "charset UTF-8", req: post(q, "Content-Type", "application/json;charset=UTF-8"), want: ok(appJSON, typename)},
		{name: "other charset", req: post(q, "Content-Type", "application/json; charset=iso-8859-1"), want: httpRefusal(415, "utf-8")},
		{name: "no content type", req: post(q, "Content-Type", ""), want: httpRefusal(415, "Content-Type")},
		{name: "text/plain", req: post(q, "Content-Type", "text/plain;charset=UTF-8"), want: httpRefusal(415, "Content-Type")},
		{name: "application/graphql", req: post("{ __typename }", "Content-Type", "application/graphql"), want: httpRefusal(415, "Content-Type")},
		{name: "form body", req: post("query=%7B__typename%7D", "Content-Type", "application/x-www-form-urlencoded"), want: httpRefusal(415, "Content-Type")},
		{name: "unparsable content type", req: post(q, "Content-Type", "application/json; ;"), want: httpRefusal(415, "Content-Type")},
		{name: "utf-8 in the query", req: post(`{"query":"{ __type(name: \"Run🏃Swim🏊\") { name } }"}`), want: ok(appJSON, `{"__type":null}`)},
		{name: "empty body", req: post(""), want: malformed(appJSON, "empty")},
		{name: "empty body, graphql-response+json", req: post("", "Accept", gqlResp), want: malformed(gqlResp, "empty")},
		{name: "blank body", req: post(" \n"), want: malformed(appJSON, "empty")},
		{name: "bad JSON", req: post(`{ "not a JSON`), want: malformed(appJSON, "not valid JSON")},
		{name: "bad JSON, graphql-response+json", req: post(`{ "not a JSON`, "Accept", gqlResp), want: malformed(gqlResp, "not valid JSON")},
		{name: "trailing garbage", req: post(q + `}`), want: malformed(appJSON, "not valid JSON")},
		{name: "body null", req: post(`null`), want: malformed(appJSON, "not a JSON object")},
		{name: "body array (batch)", req: post(`[` + q + `]`), want: malformed(appJSON, "not a JSON object")},
		{name: "body string", req: post(`"{ __typename }"`, "Accept", gqlResp), want: malformed(gqlResp, "not a JSON object")},

		// Parameters.
		{name: "no query", req: post(`{"qeury":"{ __typename }"}`), want: malformed(appJSON, "query is required")},
		{name: "no query, graphql-response+json", req: post(`{"notquery":"{ __typename }"}`, "Accept", gqlResp), want: malformed(gqlResp, "query is required")},
		{name: "query null", req: post(`{"query":null}`), want: malformed(appJSON, "query is required")},
		{name: "query object", req: post(`{"query":{"obj":"ect"}}`), want: malformed(appJSON, "query must be a string")},
		{name: "query number", req: post(`{"query":0}`), want: malformed(appJSON, "query must be a string")},
		{name: "query boolean", req: post(`{"query":false}`, "Accept", gqlResp), want: malformed(gqlResp, "query must be a string")},
		{name: "query array", req: post(`{"query":["array"]}`), want: malformed(appJSON, "query must be a string")},
		{name: "operationName number", req: post(`{"query":"{ __typename }","operationName":0}`), want: malformed(appJSON, "operationName")},
		{name: "operationName object", req: post(`{"query":"{ __typename }","operationName":{}}`, "Accept", gqlResp), want: malformed(gqlResp, "operationName")},
		{name: "variables string", req: post(`{"query":"{ __typename }","variables":"{}"}`), want: malformed(appJSON, "variables")},
		{name: "variables array", req: post(`{"query":"{ __typename }","variables":[]}`), want: malformed(appJSON, "variables")},
		{name: "variables boolean", req: post(`{"query":"{ __typename }","variables":false}`, "Accept", gqlResp), want: malformed(gqlResp, "variables")},
		{name: "extensions number", req: post(`{"query":"{ __typename }","extensions":0}`), want: malformed(appJSON, "extensions")},
		{name: "extensions array", req: post(`{"query":"{ __typename }","extensions":["array"]}`), want: malformed(appJSON, "extensions")},
		{name: "null parameters", req: post(`{"query":"{ __typename }","operationName":null,"variables":null,"extensions":null}`, "Accept", gqlResp), want: ok(gqlResp, typename)},
		{name: "extensions object", req: post(`{"query":"{ __typename }","extensions":{"some":"value"}}`), want: ok(appJSON, typename)},
		{name: "unknown parameters are ignored", req: post(`{"query":"{ __typename }","id":"x"}`), want: ok(appJSON, typename)},
		{name: "variables and operationName", req: post(`{"query":"query A { a: __typename } query B($r: ID!) { messages(roomId: $r) { text } }","operationName":"B","variables":{"r":"seeded"}}`), want: ok(appJSON, `{"messages":[{"text":"hello"}]}`)},

		// GET.
		{name: "GET query", req: get([]string{"query", "{ __typename }"}), want: ok(appJSON, typename)},
		{name: "GET graphql-response+json", req: get([]string{"query", "{ __typename }"}, "Accept", gqlResp), want: ok(gqlResp, typename)},
		{name: "GET variables and operationName", req: get([]string{
			"query", "query A { a: __typename } query B($r: ID!, $n: Int) { messages(roomId: $r, last: $n) { author text } }",
			"operationName", "B", "variables", `{"r":"seeded","n":1}`}), want: ok(appJSON, `{"messages":[{"author":"ann","text":"hello"}]}`)},
		{name: "GET extensions", req: get([]string{"query", "{ __typename }", "extensions", `{"some":"value"}`}), want: ok(appJSON, typename)},
		{name: "GET empty variables", req: get([]string{"query", "{ __typename }", "variables", ""}), want: ok(appJSON, typename)},
		{name: "GET no query", req: get([]string{"qeury", "{ __typename }"}, "Accept", gqlResp), want: malformed(gqlResp, "query is required")},
		{name: "GET variables not JSON", req: get([]string{"query", "{ __typename }", "variables", "{"}), want: malformed(appJSON, "variables")},
		{name: "GET variables array", req: get([]string{"query", "{ __typename }", "variables", "[]"}), want: malformed(appJSON, "variables")},
		{name: "GET extensions not an object", req: get([]string{"query", "{ __typename }", "extensions", "1"}), want: malformed(appJSON, "extensions")},
		{name: "GET mutation", req: get([]string{"query", `mutation { sendMessage(roomId: "get", author: "a", text: "t") { id } }`}, "Accept", gqlResp),
			want: want{status: 405, media: appJSON, allow: "POST", err: "POST"}},
		{name: "GET mutation, application/json", req: get([]string{"query", "mutation { __typename }"}),
			want: want{status: 405, media: appJSON, allow: "POST", err: "POST"}},
		{name: "GET mutation chosen by operationName", req: get([]string{"query", "query Q { __typename } mutation M { __typename }", "operationName", "M"}),
			want: want{status: 405, media: appJSON, allow: "POST", err: "POST"}},
		{name: "GET query chosen by operationName", req: get([]string{"query", "query Q { __typename } mutation M { __typename }", "operationName", "Q"}), want: ok(appJSON, typename)},

		// Other methods.
		{name: "PUT", req: post(q).withMethod(http.MethodPut), want: want{status: 405, media: appJSON, allow: "GET, POST", err: "GET or POST"}},
		{name: "DELETE", req: post(q).withMethod(http.MethodDelete), want: want{status: 405, media: appJSON, allow: "GET, POST", err: "GET or POST"}},
		{name: "PATCH", req: post(q).withMethod(http.MethodPatch), want: want{status: 405, media: appJSON, allow: "GET, POST", err: "GET or POST"}},
		{name: "OPTIONS", req: get(nil).withMethod(http.MethodOptions), want: want{status: 405, media: appJSON, allow: "GET, POST", err: "GET or POST"}},
		{name: "method before accept", req: post(q, "Accept", "text/html").withMethod(http.MethodPut), want: want{status: 405, media: appJSON, allow: "GET, POST", err: "GET or POST"}},

		// Subscriptions are served over WebSocket.
		{name: "subscription", req: post(`{"query":"subscription { messageAdded(roomId: \"r\") { id } }"}`), want: requestError(appJSON, "WebSocket", "")},
		{name: "subscription, graphql-response+json", req: post(`{"query":"subscription { messageAdded(roomId: \"r\") { id } }"}`, "Accept", gqlResp), want: requestError(gqlResp, "WebSocket", "")},
		{name: "subscription over GET", req: get([]string{"query", `subscription { messageAdded(roomId: "r") { id } }`}, "Accept", gqlResp), want: requestError(gqlResp, "WebSocket", "")},

		// GraphQL request errors.
		{name: "parse error", req: post(`{"query":"{"}`), want: requestError(appJSON, "Expected Name", parseError)},
		{name: "parse error, graphql-response+json", req: post(`{"query":"{"}`, "Accept", gqlResp), want: requestError(gqlResp, "Expected Name", parseError)},
		{name: "empty query", req: post(`{"query":""}`, "Accept", gqlResp), want: requestError(gqlResp, "no operation provided", validationError)},
		{name: "validation error", req: post(`{"query":"{ nope }"}`), want: requestError(appJSON, `Cannot query field "nope"`, validationError)},
		{name: "validation error, graphql-response+json", req: post(`{"query":"{ nope }"}`, "Accept", gqlResp), want: requestError(gqlResp, `Cannot query field "nope"`, validationError)},
		{name: "validation error over GET", req: get([]string{"query", "{ nope }"}, "Accept", gqlResp), want: requestError(gqlResp, `Cannot query field "nope"`, validationError)},
		{name: "variable coercion", req: post(`{"query":"query ($id: ID!) { __typename }","variables":{"id":null}}`), want: requestError(appJSON, "id", validationError)},
		{name: "variable coercion, graphql-response+json", req: post(`{"query":"query ($id: ID!) { __typename }","variables":{"id":null}}`, "Accept", gqlResp), want: requestError(gqlResp, "id", validationError)},
		{name: "missing variable", req: post(`{"query":"query ($r: ID!) { messages(roomId: $r) { id } }"}`, "Accept", gqlResp), want: requestError(gqlResp, "must be defined", validationError)},
		{name: "unknown operationName", req: post(`{"query":"query A { __typename }","operationName":"B"}`, "Accept", gqlResp), want: requestError(gqlResp, "operation B not found", validationError)},
		{name: "operation not chosen", req: post(`{"query":"query A { __typename } query B { __typename }"}`), want: requestError(appJSON, "operation  not found", validationError)},

		// Field errors: executed, so 200 with data, whatever the media type.
		{name: "nullable field error", req: post(`{"query":"{ __typename message(roomId: \"\", id: \"x\") { id } }"}`, "Accept", gqlResp),
			want: want{status: 200, media: gqlResp, data: `{"__typename":"Query","message":null}`, err: "roomId must not be empty", code: "BAD_USER_INPUT"}},
		{name: "non-null field error", req: post(`{"query":"{ messages(roomId: \"seeded\", last: 0) { id } }"}`, "Accept", gqlResp),
			want: want{status: 200, media: gqlResp, data: `null`, err: "last must be between 1 and 500", code: "BAD_USER_INPUT"}},
		{name: "absent message is null, not an error", req: post(`{"query":"{ message(roomId: \"seeded\", id: \"nope\") { id } }"}`), want: ok(appJSON, `{"message":null}`)},

		// Mutations.
		{name: "sendMessage", req: post(`{"query":"mutation { sendMessage(roomId: \"w1\", author: \"bo\", text: \"hey\") { roomId author text editedAt } }"}`, "Accept", gqlResp),
			want: ok(gqlResp, `{"sendMessage":{"roomId":"w1","author":"bo","text":"hey","editedAt":null}}`)},
		{name: "sendMessage with variables", req: post(`{"query":"mutation S($t: String!) { sendMessage(roomId: \"w1\", author: \"bo\", text: $t) { text } }","variables":{"t":"vars"}}`),
			want: ok(appJSON, `{"sendMessage":{"text":"vars"}}`)},
		{name: "sendMessage BAD_USER_INPUT", req: post(`{"query":"mutation { sendMessage(roomId: \"w1\", author: \"\", text: \"hey\") { id } }"}`, "Accept", gqlResp),
			want: want{status: 200, media: gqlResp, data: `null`, err: "author must not be empty", code: "BAD_USER_INPUT"}},
		{name: "sendMessage text too long", req: post(`{"query":"mutation { sendMessage(roomId: \"w1\", author: \"a\", text: \"` + strings.Repeat("x", graph.MaxTextLength+1) + `\") { id } }"}`),
			want: want{status: 200, media: appJSON, data: `null`, err: "text must be at most 4096 characters", code: "BAD_USER_INPUT"}},
		{name: "editMessage NOT_FOUND", req: post(`{"query":"mutation { editMessage(roomId: \"w1\", id: \"nope\", text: \"x\") { id } }"}`, "Accept", gqlResp),
			want: want{status: 200, media: gqlResp, data: `null`, err: `message "nope" not found in room "w1"`, code: "NOT_FOUND"}},
		{name: "deleteMessage NOT_FOUND", req: post(`{"query":"mutation { deleteMessage(roomId: \"w1\", id: \"nope\") { id } }"}`),
			want: want{status: 200, media: appJSON, data: `null`, err: `message "nope" not found in room "w1"`, code: "NOT_FOUND"}},

		// Body size limit.
		{name: "body at the limit", maxBody: int64(len(q) + 10), req: post(q + strings.Repeat(" ", 10)), want: ok(appJSON, typename)},
		{name: "body over the limit", maxBody: int64(len(q) + 10), req: post(q+strings.Repeat(" ", 11), "Accept", gqlResp), want: httpRefusal(413, "larger than")},
		{name: "default limit", req: post(`{"query":"{ __typename }","pad":"` + strings.Repeat("x", gqlhttp.DefaultMaxBody) + `"}`), want: httpRefusal(413, "larger than 1048576 bytes")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(t, h(tc.maxBody), tc.req)
			check(t, rec, tc.want)
		})
	}
}

func (r request) withMethod(m string) request { r.method = m; return r }

// TestGetMutationWritesNothing checks that a mutation refused over GET is not executed.
func TestGetMutationWritesNothing(t *testing.T) {
	h := newHandler(t)(0)
	rec := serve(t, h, get([]string{"query", `mutation { sendMessage(roomId: "g", author: "a", text: "t") { id } }`}))
	check(t, rec, want{status: 405, media: appJSON, allow: "POST", err: "POST"})
	rec = serve(t, h, get([]string{"query", `{ messages(roomId: "g") { id } }`}))
	check(t, rec, ok(appJSON, `{"messages":[]}`))
	// The same mutation over POST does write.
	serve(t, h, post(`{"query":"mutation { sendMessage(roomId: \"g\", author: \"a\", text: \"t\") { id } }"}`))
	rec = serve(t, h, get([]string{"query", `{ messages(roomId: "g") { text } }`}))
	check(t, rec, ok(appJSON, `{"messages":[{"text":"t"}]}`))
}

// newHandler returns a constructor of handlers, all over one executor and one embedded store.
func newHandler(t *testing.T) func(maxBody int64) *gqlhttp.Handler {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "d.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	res, err := graph.NewResolver(s)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := graph.NewExecutor(res, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return func(maxBody int64) *gqlhttp.Handler { return gqlhttp.New(exec, gqlhttp.Config{MaxBody: maxBody}) }
}

func serve(t *testing.T, h http.Handler, r request) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(r.method, r.target, strings.NewReader(r.body))
	req.Header = r.header.Clone()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// response is the errors entry of a GraphQL response.
type response struct {
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func check(t *testing.T, rec *httptest.ResponseRecorder, w want) {
	t.Helper()
	body := rec.Body.Bytes()
	if rec.Code != w.status {
		t.Errorf("status %d, want %d; body %s", rec.Code, w.status, body)
	}
	if ct, wantCT := rec.Header().Get("Content-Type"), w.media+"; charset=utf-8"; ct != wantCT {
		t.Errorf("Content-Type %q, want %q", ct, wantCT)
	}
	if allow := rec.Header().Get("Allow"); allow != w.allow {
		t.Errorf("Allow %q, want %q", allow, w.allow)
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(body, &entries); err != nil {
		t.Fatalf("body is not a JSON object: %s", body)
	}
	for k := range entries {
		if k != "data" && k != "errors" && k != "extensions" {
			t.Errorf("unexpected entry %q in %s", k, body)
		}
	}
	var resp response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("body is not a GraphQL response: %v: %s", err, body)
	}

	_, hasData := entries["data"]
	switch {
	case w.data == "" && hasData:
		t.Errorf("body has a data entry, want none: %s", body)
	case w.data != "" && !hasData:
		t.Errorf("body has no data entry, want %s: %s", w.data, body)
	case w.data != "":
		var got bytes.Buffer
		json.Compact(&got, entries["data"])
		if got.String() != w.data {
			t.Errorf("data %s, want %s", got.String(), w.data)
		}
	}

	_, hasErrors := entries["errors"]
	switch {
	case w.err == "" && hasErrors:
		t.Errorf("body has errors, want none: %s", body)
	case w.err == "":
	case len(resp.Errors) != 1:
		t.Errorf("%d errors, want 1: %s", len(resp.Errors), body)
	default:
		e := resp.Errors[0]
		if !strings.Contains(e.Message, w.err) {
			t.Errorf("error message %q, want it to contain %q", e.Message, w.err)
		}
		code, _ := e.Extensions["code"].(string)
		if w.code != code {
			t.Errorf("error code %q, want %q: %s", code, w.code, body)
		}
	}
}

// TestRejectionLogLine: a rejected request is one log line, its errors joined with "; " rather
// than each ending in a newline (gqlerror.List's Error does that).
func TestRejectionLogLine(t *testing.T) {
	h := newHandler(t)(0)
	var buf bytes.Buffer
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"{ nope1 nope2 }"}`))
	req.Header.Set("Content-Type", gqlhttp.MediaJSON)
	req = req.WithContext(zerolog.New(&buf).WithContext(req.Context()))
	h.ServeHTTP(httptest.NewRecorder(), req)
	var line struct{ Message, Error string }
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("want one JSON line, got %q (%v)", buf.String(), err)
	}
	if line.Message != "request rejected" || strings.Contains(line.Error, "\n") || strings.Count(line.Error, "; ") != 1 ||
		!strings.Contains(line.Error, "nope1") || !strings.Contains(line.Error, "nope2") {
		t.Errorf("log line %q: want both errors on one line, joined with \"; \"", buf.String())
	}
}
