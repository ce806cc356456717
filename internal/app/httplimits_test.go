package app_test

// The limits of an HTTP request, each at and one over its bound, at router level (app.Handler fed
// HTTP API events) and through the local runtime (real requests): a document's tokens,
// selections, depth and complexity, the body, and the bearer token.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/auth/authtest"
)

// rawHTTP is one POST /graphql with a bearer token and a body as it is, answered by either level:
// status and body.
type rawHTTP func(token, body string) (int, string)

func routerRaw(t *testing.T, cfg app.Config) rawHTTP {
	t.Helper()
	r := newRouter(t, cfg)
	return func(token, body string) (int, string) {
		ev, _ := json.Marshal(events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "POST /graphql", RawPath: "/graphql",
			Headers: map[string]string{"content-type": "application/json", "authorization": "Bearer " + token},
			RequestContext: events.APIGatewayV2HTTPRequestContext{
				HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/graphql"}},
			Body: body})
		out, err := r.Invoke(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Body
	}
}

func runtimeRaw(t *testing.T, cfg app.Config) rawHTTP {
	t.Helper()
	d := apptest.Start(t, cfg)
	return func(token, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+d.Addr+"/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

// TestHTTPLimitsAtAndOverTheBound: each limit of an HTTP request lets its bound through and
// refuses one more: a document over GRAPHQL_MAX_TOKENS, _SELECTIONS, _DEPTH or _COMPLEXITY gets
// its limit's code and no data; a body over HTTP_MAX_BODY 413; a token over 8 KiB 401.
func TestHTTPLimitsAtAndOverTheBound(t *testing.T) {
	const maxBody = 2048
	env := authtest.HS256Env()
	ac, err := auth.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(context.Background(), ac)
	if err != nil {
		t.Fatal(err)
	}
	token := authtest.HS256Token(nil)
	query := func(q string) string { b, _ := json.Marshal(map[string]string{"query": q}); return string(b) }
	typenames := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, " a%d: __typename", i)
		}
		return b.String() + " }"
	}
	padded := func(n int) string { // a body of exactly n bytes
		b := query("{ __typename }")
		return b[:len(b)-1] + strings.Repeat(" ", n-len(b)) + "}"
	}
	for _, lvl := range []string{"router", "runtime"} {
		t.Run(lvl, func(t *testing.T) {
			big := authtest.SizedToken(t, auth.MaxTokenBytes)
			for _, tc := range []struct {
				name               string
				limits             graph.Limits
				at, over           string // the bodies at and over the bound
				atToken, overToken string // the bearer tokens (default: a small valid one)
				atWant             string // a text the answer at the bound contains
				overStatus         int
				overWant           string // a text the answer over the bound contains
			}{
				// "{", n fields and "}": n+2 tokens.
				{name: "tokens", limits: graph.Limits{MaxTokens: 20}, at: query("{" + strings.Repeat(" __typename", 18) + " }"), over: query("{" + strings.Repeat(" __typename", 19) + " }"),
					atWant: `{"data":{"__typename":"Query"}}`, overStatus: 200, overWant: graph.CodeTooManyTokens},
				{name: "selections", limits: graph.Limits{MaxSelections: 5}, at: query(typenames(5)), over: query(typenames(6)),
					atWant: `"a4":"Query"`, overStatus: 200, overWant: graph.CodeTooManySelections},
				{name: "depth", limits: graph.Limits{MaxDepth: 2}, at: query(`{ messages(roomId: "r1") { text } }`), over: query(`{ messages(roomId: "r1") { text { x } } }`),
					atWant: `{"data":{"messages":[]}}`, overStatus: 200, overWant: graph.CodeTooDeep},
				// messages(last: 5) { id text } costs 1 + 5×(1+4) = 26; __typename 1 more.
				{name: "complexity", limits: graph.Limits{MaxComplexity: 26}, at: query(`{ messages(roomId: "r1", last: 5) { id text } }`),
					over:   query(`{ messages(roomId: "r1", last: 5) { id text } __typename }`),
					atWant: `{"data":{"messages":[]}}`, overStatus: 200, overWant: graph.CodeTooComplex},
				{name: "body", at: padded(maxBody), over: padded(maxBody + 1),
					atWant: `{"data":{"__typename":"Query"}}`, overStatus: http.StatusRequestEntityTooLarge},
				{name: "bearer token", at: query("{ __typename }"), over: query("{ __typename }"),
					atToken: big, overToken: authtest.SizedToken(t, auth.MaxTokenBytes+1),
					atWant: `{"data":{"__typename":"Query"}}`, overStatus: http.StatusUnauthorized, overWant: `"message":"invalid token"`},
			} {
				cfg := app.Config{Verifier: v, MaxHTTPBody: maxBody, Limits: tc.limits}
				do := routerRaw(t, cfg)
				if lvl == "runtime" {
					do = runtimeRaw(t, cfg)
				}
				if tc.atToken == "" {
					tc.atToken, tc.overToken = token, token
				}
				if status, body := do(tc.atToken, tc.at); status != 200 || !strings.Contains(body, tc.atWant) || strings.Contains(body, `"errors"`) {
					t.Errorf("%s at the bound: %d %.300s, want %s", tc.name, status, body, tc.atWant)
				}
				status, body := do(tc.overToken, tc.over)
				if status != tc.overStatus || !strings.Contains(body, tc.overWant) || strings.Contains(body, `"data"`) {
					t.Errorf("%s over the bound: %d %.300s, want %d %s", tc.name, status, body, tc.overStatus, tc.overWant)
				}
			}
		})
	}
}
