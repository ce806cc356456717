package app_test

// Authentication and authorization over HTTP, at router level (app.Handler fed HTTP API events)
// and through the local runtime (real requests): every kind of refused token, an unknown key id
// then a rotation, another author's edit, a room outside the rooms claim.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/auth/authtest"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/router"
	"github.com/realtime-gql/lambdaws/store/embedded"
)

// newRouter is the handler of cfg over a fresh embedded store, posting to a management fake.
func newRouter(t *testing.T, cfg app.Config) *router.Router {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "d.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r, err := app.Handler(cfg, s, mgmttest.New(), apptest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// httpDo is one GraphQL request over HTTP with a bearer token ("" for none), answered by either
// level: status, WWW-Authenticate, body.
type httpDo func(token, query string) (int, string, string)

func routerHTTP(t *testing.T, cfg app.Config) httpDo {
	t.Helper()
	r := newRouter(t, cfg)
	return func(token, query string) (int, string, string) {
		body, _ := json.Marshal(map[string]any{"query": query})
		headers := map[string]string{"content-type": "application/json"}
		if token != "" {
			headers["authorization"] = "Bearer " + token
		}
		ev, _ := json.Marshal(events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "POST /graphql", RawPath: "/graphql", Headers: headers,
			RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/graphql"}},
			Body:           string(body)})
		out, err := r.Invoke(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Headers["Www-Authenticate"], resp.Body
	}
}

func runtimeHTTP(t *testing.T, cfg app.Config) httpDo {
	t.Helper()
	d := apptest.Start(t, cfg)
	return func(token, query string) (int, string, string) {
		body, _ := json.Marshal(map[string]any{"query": query})
		req, _ := http.NewRequest(http.MethodPost, "http://"+d.Addr+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
	}
}

func TestHTTPAuthentication(t *testing.T) {
	for _, lvl := range []string{"router", "runtime"} {
		t.Run(lvl, func(t *testing.T) {
			iss := authtest.NewIssuer(t)
			cfg := app.Config{Verifier: iss.Verifier(t)}
			do := routerHTTP(t, cfg)
			if lvl == "runtime" {
				do = runtimeHTTP(t, cfg)
			}
			const send = `mutation { sendMessage(roomId: "r1", text: "hi") { id author } }`
			bad := append([]authtest.BadToken{{Name: "no token", Msg: "no token"}}, iss.BadTokens(t)...)
			bad = append(bad, authtest.BadToken{Name: "unknown key id", Token: iss.UnknownKeyToken(t), Msg: "invalid token"})
			for _, tc := range bad {
				status, challenge, body := do(tc.Token, send)
				if status != http.StatusUnauthorized || !strings.HasPrefix(challenge, `Bearer realm="lambdaws"`) ||
					!strings.Contains(body, `"message":"`+tc.Msg+`"`) || !strings.Contains(body, "UNAUTHENTICATED") {
					t.Errorf("%s: %d %q %s", tc.Name, status, challenge, body)
				}
			}
			// After a rotation, tokens of the new key are accepted (the key set is fetched again).
			time.Sleep(1100 * time.Millisecond) // AUTH_JWKS_MIN_REFRESH_INTERVAL since the unknown key id
			iss.Rotate()
			ann := iss.Token(jwt.MapClaims{"sub": "ann", "name": "Ann", "rooms": []string{"r1"}})
			status, _, body := do(ann, send)
			var sent struct {
				Data struct{ SendMessage struct{ ID, Author string } }
			}
			if json.Unmarshal([]byte(body), &sent); status != 200 || sent.Data.SendMessage.Author != "Ann" {
				t.Fatalf("after rotation: %d %s", status, body)
			}
			id := sent.Data.SendMessage.ID
			bob := iss.Token(jwt.MapClaims{"sub": "bob", "name": "Ann"}) // the same name is not the same author
			for _, tc := range []struct{ who, token, query, want string }{
				{"bob edits ann's message", bob, fmt.Sprintf(`mutation { editMessage(roomId: "r1", id: %q, text: "x") { id } }`, id), "FORBIDDEN"},
				{"bob deletes ann's message", bob, fmt.Sprintf(`mutation { deleteMessage(roomId: "r1", id: %q) { id } }`, id), "FORBIDDEN"},
				{"ann writes as someone else", ann, `mutation { sendMessage(roomId: "r1", author: "Bob", text: "x") { id } }`, "FORBIDDEN"},
				{"ann reads outside her rooms", ann, `{ messages(roomId: "r2") { id } }`, "FORBIDDEN"},
				{"ann writes outside her rooms", ann, `mutation { sendMessage(roomId: "r2", text: "x") { id } }`, "FORBIDDEN"},
				{"ann edits her message", ann, fmt.Sprintf(`mutation { editMessage(roomId: "r1", id: %q, text: "edited") { text } }`, id), `"text":"edited"`},
			} {
				if status, _, body := do(tc.token, tc.query); status != 200 || !strings.Contains(body, tc.want) {
					t.Errorf("%s: %d %s, want %s", tc.who, status, body, tc.want)
				}
			}
		})
	}
}
