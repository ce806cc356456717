package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/rs/zerolog"
)

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

// TestLambdaPlayground: the handler Lambda runs serves GraphiQL to a browser's GET /graphql only
// with PLAYGROUND on, subscribing through WEBSOCKET_URL or, by default, the management endpoint
// with wss:; API requests reach the API either way. (Nothing here calls AWS: a page needs no
// store, and the API request below fails validation before any.)
func TestLambdaPlayground(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDLOCAL")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	const endpoint = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
	get := func(t *testing.T, cfg app.Config, accept string) events.APIGatewayV2HTTPResponse {
		t.Helper()
		h, err := app.Lambda(context.Background(), cfg, endpoint, nil, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		ev, _ := json.Marshal(events.APIGatewayV2HTTPRequest{
			Version: "2.0", RouteKey: "GET /graphql", RawPath: "/graphql", Headers: map[string]string{"accept": accept},
			RequestContext: events.APIGatewayV2HTTPRequestContext{DomainName: "h1.execute-api.eu-west-1.amazonaws.com",
				HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: "/graphql"}},
		})
		out, err := h.Invoke(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	isPage := func(r events.APIGatewayV2HTTPResponse) bool {
		return r.StatusCode == 200 && strings.HasPrefix(r.Headers["Content-Type"], "text/html")
	}

	if r := get(t, app.Config{}, browserAccept); isPage(r) || r.StatusCode != 400 {
		t.Errorf("PLAYGROUND off: a browser's GET /graphql = %d %s, want the API's 400", r.StatusCode, r.Headers["Content-Type"])
	}
	r := get(t, app.Config{Playground: true}, browserAccept)
	if !isPage(r) || !strings.Contains(r.Body, `"webSocketURL":"wss://abc123.execute-api.eu-west-1.amazonaws.com/prod"`) {
		t.Errorf("PLAYGROUND on: %d %s, want GraphiQL subscribing through the stage's wss: URL (body has it: %v)",
			r.StatusCode, r.Headers["Content-Type"], strings.Contains(r.Body, "wss://abc123"))
	}
	if csp := r.Headers["Content-Security-Policy"]; !strings.Contains(csp, "wss://abc123.execute-api.eu-west-1.amazonaws.com") {
		t.Errorf("the page's CSP does not allow the WebSocket endpoint: %s", csp)
	}
	r = get(t, app.Config{Playground: true, WebSocketURL: "wss://api.example.com/graphql"}, browserAccept)
	if !isPage(r) || !strings.Contains(r.Body, `"webSocketURL":"wss://api.example.com/graphql"`) {
		t.Errorf("WEBSOCKET_URL: the page does not subscribe through it")
	}
	if r := get(t, app.Config{Playground: true}, "application/json"); isPage(r) || r.StatusCode != 400 {
		t.Errorf("PLAYGROUND on: an API GET /graphql = %d %s, want the API's 400", r.StatusCode, r.Headers["Content-Type"])
	}
	if _, err := app.Lambda(context.Background(), app.Config{Playground: true, WebSocketURL: "http://x/prod"}, endpoint, nil, zerolog.Nop()); err == nil ||
		!strings.Contains(err.Error(), "WEBSOCKET_URL") {
		t.Errorf("a WEBSOCKET_URL that is not ws: or wss: was accepted: %v", err)
	}
	if _, err := app.Lambda(context.Background(), app.Config{Playground: true}, "", nil, zerolog.Nop()); err == nil {
		t.Error("PLAYGROUND with neither WEBSOCKET_URL nor WEBSOCKET_ENDPOINT was accepted")
	}
}
