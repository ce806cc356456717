package app_test

// The token is a credential: the connection stores the principal made of it (subject, kept
// claims, expiry), never the token, and no log line carries it, at router level and through the
// local runtime, whichever of its three places it came in, accepted or refused.

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/auth/authtest"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/internal/wstest"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/rs/zerolog"
)

// logBuffer collects log lines from concurrent writers.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// secretParts are the parts of tokens that nothing may keep: each one's claims and signature.
func secretParts(tokens ...string) []string {
	var parts []string
	for _, tok := range tokens {
		if p := strings.Split(tok, "."); len(p) == 3 {
			parts = append(parts, p[1], p[2])
		}
	}
	return parts
}

// checkNoToken fails if any file under dir or the log holds a part of a token.
func checkNoToken(t *testing.T, dir string, log *logBuffer, parts []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if strings.Contains(string(b), p) {
				t.Errorf("%s holds a token", filepath.Base(path))
				return nil
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := log.String()
	if !strings.Contains(lines, `"level":"info"`) && !strings.Contains(lines, `"level":"debug"`) {
		t.Fatalf("nothing was logged: the check would prove nothing\n%s", lines)
	}
	for _, p := range parts {
		if strings.Contains(lines, p) {
			t.Errorf("a log line holds a token")
		}
	}
}

// checkPrincipals fails unless every connection of reg is acknowledged with a principal of
// subject sub, the name claim and an expiry, and its subscriptions carry the same principal.
func checkPrincipals(t *testing.T, reg store.Registry, sub string, want int) {
	t.Helper()
	n := 0
	for c, err := range reg.Connections(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if c.State != store.StateReady {
			continue
		}
		n++
		var p auth.Principal
		if err := json.Unmarshal(c.Principal, &p); err != nil || p.Subject != sub || p.Expires.IsZero() {
			t.Errorf("connection %s: principal %s (%v), want subject %s with an expiry", c.ID, c.Principal, err, sub)
		}
		if name, _ := p.StringClaim("name"); name != "ann" || c.Subject != sub {
			t.Errorf("connection %s: principal %s, subject %q, want the name claim and subject %s", c.ID, c.Principal, c.Subject, sub)
		}
	}
	if n != want {
		t.Fatalf("%d acknowledged connections, want %d", n, want)
	}
}

// TestTheTokenIsNeverStoredNorLogged: tokens given at $connect (header, query) and in
// connection_init, accepted and refused, and over HTTP, leave no trace in the store's files or in
// the log (debug level); the connections store the principal instead.
func TestTheTokenIsNeverStoredNorLogged(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t)
	claims := jwt.MapClaims{"name": "ann", "email": "ann@example.com"}
	inHeader, inQuery, inPayload, overHTTP := iss.Token(claims), iss.Token(claims), iss.Token(claims), iss.Token(claims)
	expired := iss.Token(jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})
	forged := iss.Token(claims)
	forged = forged[:len(forged)-8] + "AAAAAAAA" // a wrong signature
	parts := secretParts(inHeader, inQuery, inPayload, overHTTP, expired, forged)
	const sub = `subscription { messageAdded(roomId: "r1") { author } }`

	t.Run("router", func(t *testing.T) {
		dir := t.TempDir()
		s, err := embedded.Open(filepath.Join(dir, "store.db"), embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var log logBuffer
		r, err := app.Handler(app.Config{Verifier: v}, s, mgmttest.New(), zerolog.New(&log).Level(zerolog.DebugLevel))
		if err != nil {
			t.Fatal(err)
		}
		invoke := func(ev any) string {
			t.Helper()
			b, _ := json.Marshal(ev)
			out, err := r.Invoke(context.Background(), b)
			if err != nil {
				t.Fatal(err)
			}
			return string(out)
		}
		now := time.Now()
		wsEvent := func(conn, route, body string, headers map[string]string, query map[string]string) events.APIGatewayWebsocketProxyRequest {
			return events.APIGatewayWebsocketProxyRequest{Headers: headers, QueryStringParameters: query, Body: body,
				RequestContext: events.APIGatewayWebsocketProxyRequestContext{RouteKey: route, EventType: map[string]string{
					"$connect": "CONNECT", "$default": "MESSAGE"}[route], ConnectionID: conn, RequestID: conn + route,
					RequestTimeEpoch: now.UnixMilli(), ConnectedAt: now.UnixMilli(), Stage: "prod", APIID: "abc",
					DomainName: "abc.execute-api.us-east-1.amazonaws.com"}}
		}
		proto := map[string]string{"Sec-WebSocket-Protocol": "graphql-transport-ws"}
		connect := func(conn string, headers, query map[string]string) string {
			h := map[string]string{}
			for k, v := range proto {
				h[k] = v
			}
			for k, v := range headers {
				h[k] = v
			}
			return invoke(wsEvent(conn, "$connect", "", h, query))
		}
		message := func(conn, body string) string { return invoke(wsEvent(conn, "$default", body, nil, nil)) }
		init := `{"type":"connection_init"}`
		q, _ := json.Marshal(sub)
		subscribe := `{"id":"s1","type":"subscribe","payload":{"query":` + string(q) + `}}`
		for _, c := range []struct{ conn, init string }{
			{"Header=", connect("Header=", map[string]string{"Authorization": "Bearer " + inHeader}, nil)},
			{"Query=", connect("Query=", nil, map[string]string{"authorization": inQuery})},
			{"Payload=", connect("Payload=", nil, nil)},
		} {
			if !strings.Contains(c.init, `"statusCode":200`) {
				t.Fatalf("%s $connect: %s", c.conn, c.init)
			}
			frame := init
			if c.conn == "Payload=" {
				frame = `{"type":"connection_init","payload":{"authorization":"Bearer ` + inPayload + `"}}`
			}
			if out := message(c.conn, frame); !strings.Contains(out, "connection_ack") {
				t.Fatalf("%s init: %s", c.conn, out)
			}
			message(c.conn, subscribe)
		}
		// Refused: a forged token at $connect, an expired one in connection_init.
		if out := connect("Forged=", map[string]string{"Authorization": "Bearer " + forged}, nil); !strings.Contains(out, `"statusCode":401`) {
			t.Fatalf("forged token at $connect: %s", out)
		}
		connect("Expired=", nil, nil)
		message("Expired=", `{"type":"connection_init","payload":{"authorization":"`+expired+`"}}`)
		body, _ := json.Marshal(map[string]string{"query": `mutation { sendMessage(roomId: "r1", text: "hi") { id } }`})
		if out := invoke(events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "POST /graphql", RawPath: "/graphql",
			Headers: map[string]string{"content-type": "application/json", "authorization": "Bearer " + overHTTP},
			RequestContext: events.APIGatewayV2HTTPRequestContext{
				HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/graphql"}},
			Body: string(body)}); !strings.Contains(out, `"statusCode":200`) {
			t.Fatalf("mutation: %s", out)
		}
		checkPrincipals(t, s, authtest.Sub, 3)
		for _, conn := range []string{"Header=", "Query=", "Payload="} {
			n := 0
			for sub, err := range s.Operations(context.Background(), conn) {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(sub.Principal), `"sub":"`+authtest.Sub+`"`) {
					t.Errorf("%s's subscription: principal %s", conn, sub.Principal)
				}
				n++
			}
			if n != 1 {
				t.Errorf("%s has %d subscriptions, want 1", conn, n)
			}
		}
		checkNoToken(t, dir, &log, parts)
	})

	t.Run("runtime", func(t *testing.T) {
		dc := app.DevConfig{Host: "127.0.0.1", Data: t.TempDir()}
		var log logBuffer
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		d, err := app.StartDev(ctx, app.Config{Verifier: v}, dc, zerolog.New(&log).Level(zerolog.DebugLevel))
		if err != nil {
			t.Fatal(err)
		}
		u := "ws://" + d.Addr + "/graphql"
		dial := func(rawURL string, h http.Header) *wstest.Client {
			return wstest.DialHeader(t, rawURL, h, "graphql-transport-ws")
		}
		clients := []*wstest.Client{
			dial(u, http.Header{"Authorization": {"Bearer " + inHeader}}),
			dial(u+"?"+url.Values{"authorization": {"Bearer " + inQuery}}.Encode(), nil),
			dial(u, nil),
		}
		for i, c := range clients {
			if i == 2 {
				c.Send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + inPayload}})
			} else {
				c.Send(map[string]any{"type": "connection_init"})
			}
			c.Expect("connection_ack", "")
			c.Send(map[string]any{"id": "s1", "type": "subscribe", "payload": map[string]any{"query": sub}})
		}
		if c, resp, err := wstest.TryDialHeader(u, http.Header{"Authorization": {"Bearer " + forged}}, "graphql-transport-ws"); err == nil {
			c.CloseNow()
			t.Fatal("a forged token was accepted at $connect")
		} else if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("forged token at $connect: %v", err)
		}
		refused := dial(u, nil)
		refused.Send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": expired}})
		refused.ExpectClosed(5 * time.Second)
		apptest.WaitSubscribers(t, d.Store, "messageAdded?roomId=r1", 3)
		apptest.GraphQLAs(t, d.Addr, overHTTP, `mutation { sendMessage(roomId: "r1", text: "hi") { id } }`, nil)
		for _, c := range clients {
			c.Expect("next", "s1")
		}
		checkPrincipals(t, d.Store, authtest.Sub, 3)
		cancel()
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		checkNoToken(t, dc.Data, &log, parts)
	})
}
