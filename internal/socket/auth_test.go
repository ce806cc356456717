package socket_test

// Authentication and authorization over both subprotocols, at router level and through the local
// runtime, in both close modes: the token in each of its three places, every kind of bad token,
// expiry during a live subscription (the fan-out and the next message), a room outside the
// rooms claim, the bounds on subscriptions and on the connection_init payload.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/graph/model"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/auth/authtest"
	"github.com/realtime-gql/lambdaws/internal/wstest"
	"github.com/realtime-gql/lambdaws/store"
)

func frInitToken(token string) string {
	return frame(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + token}})
}

func connErr(msg string) string {
	return frame(map[string]any{"type": "connection_error", "payload": map[string]any{"message": msg}})
}

// rejected is what a client sees when its credentials are refused: close with code (strict mode's
// terminal frame where the client must not retry); legacy: connection_error first.
func rejected(proto string, code int, reason, msg string) []step {
	if proto == protoLegacy {
		return []step{expect(connErr(msg)), closed(code, reason)}
	}
	return []step{closed(code, reason)}
}

const mAsCaller = `mutation { sendMessage(roomId: "r1", text: "hello") { id } }`

// The documents and results of the authorship cases: bob's message m-bob in room r1.
const (
	mEditBobs      = `mutation { editMessage(roomId: "r1", id: "m-bob", text: "changed") { text } }`
	mDeleteBobs    = `mutation { deleteMessage(roomId: "r1", id: "m-bob") { id } }`
	qBobs          = `{ message(roomId: "r1", id: "m-bob") { author text } }`
	pBobsUnchanged = `{"data":{"message":{"author":"bob","text":"bob's"}}}`
	outsideR1      = `room \"r1\" is not among the rooms your token allows`
)

// bobsMessage stores the message m-bob that bob (subject "bob") sent to room r1, as the
// resolvers store it.
func bobsMessage(t *testing.T, reg store.Registry) {
	t.Helper()
	res, err := graph.NewResolver(reg.(store.Store))
	if err != nil {
		t.Fatal(err)
	}
	m := &model.Message{ID: "m-bob", RoomID: "r1", Author: "bob", AuthorSub: "bob", Text: "bob's", CreatedAt: time.Now()}
	if err := engine.Table[model.Message](res.Tables).Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// forbiddenResult is the result of an operation whose field (at column col of line 1) a rule
// refused with msg (JSON-escaped).
func forbiddenResult(field string, col int, msg string) string {
	return fmt.Sprintf(`{"errors":[{"message":"%s","path":[%q],"locations":[{"line":1,"column":%d}],"extensions":{"code":"FORBIDDEN"}}],"data":null}`,
		msg, field, col)
}

func authCases(t *testing.T, proto string, v *auth.Verifier, iss *authtest.Issuer) []confCase {
	ann := iss.Token(jwt.MapClaims{"name": "ann"})
	bob := iss.Token(jwt.MapClaims{"sub": "bob", "name": "bob"})
	subscribe, result := frSubscribe, "next"
	errFrame := func(id, errJSON string) string { return frOp("error", id, "["+errJSON+"]") }
	if proto == protoLegacy {
		subscribe, result = frStart, "data"
		errFrame = func(id, errJSON string) string { return frOp("error", id, errJSON) }
	}
	delivered := frOp(result, "s1", ev(pAddedAuthor, 1)) // each case's first change
	cases := []confCase{
		{name: "no token", steps: script(send(frInit), rejected(proto, 4401, "Unauthorized: no token", "no token"))},
		{name: "token in the connection_init payload", steps: script(send(frInitToken(ann)), expect(frAck),
			send(subscribe("s1", qAddedAuthor)), active("s1"), mutateAs(ann, mAsCaller), expect(delivered))},
		{name: "token in the Authorization header", connectHeader: map[string]string{"Authorization": "Bearer " + ann},
			steps: script(initAck(), send(subscribe("s1", qAddedAuthor)), active("s1"), mutateAs(ann, mAsCaller), expect(delivered))},
		{name: "token in the query", connectQuery: url.Values{"authorization": {"Bearer " + ann}},
			steps: script(initAck(), send(subscribe("s1", qAddedAuthor)), active("s1"), mutateAs(ann, mAsCaller), expect(delivered))},
		{name: "a token in the payload replaces the one of $connect", connectQuery: url.Values{"authorization": {ann}},
			steps: script(send(frInitToken("abc.def.ghi")), rejected(proto, 4403, "Forbidden: invalid token", "invalid token"))},
		{name: "a room outside the rooms claim", steps: script(send(frInitToken(iss.Token(jwt.MapClaims{"rooms": []string{"r2"}}))), expect(frAck),
			send(subscribe("s1", qAddedAuthor)),
			expect(errFrame("s1", `{"message":"room \"r1\" is not among the rooms your token allows","extensions":{"code":"FORBIDDEN"}}`)),
			active(), send(subscribe("s2", `subscription { messageAdded(roomId: "r2") { author } }`)), active("s2"))},
		// The token expires while its subscription is live: the next change is not delivered,
		// and the fan-out closes the connection.
		{name: "expiry during a live subscription: the fan-out closes", realTime: true, steps: script(
			sendGen(func() string {
				return frInitToken(iss.Token(jwt.MapClaims{"name": "ann", "exp": time.Now().Add(2 * time.Second).Unix()}))
			}),
			expect(frAck), send(subscribe("s1", qAddedAuthor)), active("s1"), mutateAs(ann, mAsCaller), expect(delivered),
			wait(2500*time.Millisecond), mutateAs(ann, mAsCaller), closed(4403, "Forbidden: token expired"))},
		// ... or its next message closes it.
		{name: "expiry: the next message closes", realTime: true, steps: script(
			sendGen(func() string {
				return frInitToken(iss.Token(jwt.MapClaims{"exp": time.Now().Add(2 * time.Second).Unix()}))
			}),
			expect(frAck), wait(2500*time.Millisecond), send(subscribe("q1", qMessages)),
			rejected(proto, 4403, "Forbidden: token expired", "token expired"))},
		{name: "token in the query without Bearer", connectQuery: url.Values{"authorization": {ann}},
			steps: script(initAck(), send(subscribe("s1", qAddedAuthor)), active("s1"), mutateAs(ann, mAsCaller), expect(delivered))},
		{name: "token under headers in the payload, without Bearer", steps: script(
			send(frame(map[string]any{"type": "connection_init", "payload": map[string]any{"headers": map[string]any{"Authorization": ann}}})),
			expect(frAck), send(subscribe("s1", qAddedAuthor)), active("s1"), mutateAs(ann, mAsCaller), expect(delivered))},
		// The example's rules on operations over the socket: only a message's author (by subject)
		// edits or deletes it, a sendMessage writes as the caller, the rooms claim bounds queries
		// and mutations; each refusal is FORBIDDEN in the operation's result, and changes nothing.
		{name: "another author's edit and delete", setup: bobsMessage, steps: script(send(frInitToken(ann)), expect(frAck),
			send(subscribe("e1", mEditBobs)), expect(frOp(result, "e1", forbiddenResult("editMessage", 12, "only the author of a message may edit it")), frComplete("e1")),
			send(subscribe("d1", mDeleteBobs)), expect(frOp(result, "d1", forbiddenResult("deleteMessage", 12, "only the author of a message may delete it")), frComplete("d1")),
			send(subscribe("q1", qBobs)), expect(frOp(result, "q1", pBobsUnchanged), frComplete("q1")))},
		{name: "the author edits and deletes", setup: bobsMessage, steps: script(send(frInitToken(bob)), expect(frAck),
			send(subscribe("e1", mEditBobs)), expect(frOp(result, "e1", `{"data":{"editMessage":{"text":"changed"}}}`), frComplete("e1")),
			send(subscribe("d1", mDeleteBobs)), expect(frOp(result, "d1", `{"data":{"deleteMessage":{"id":"m-bob"}}}`), frComplete("d1")))},
		{name: "writing as another author", steps: script(send(frInitToken(ann)), expect(frAck),
			send(subscribe("m1", `mutation { sendMessage(roomId: "r1", author: "bob", text: "x") { author } }`)),
			expect(frOp(result, "m1", forbiddenResult("sendMessage", 12, `author \"bob\" is not you: with authentication the author is taken from your token`)), frComplete("m1")),
			send(subscribe("m2", `mutation { sendMessage(roomId: "r1", text: "x") { author } }`)),
			expect(frOp(result, "m2", `{"data":{"sendMessage":{"author":"ann"}}}`), frComplete("m2")))},
		{name: "a room outside the rooms claim: queries and mutations", steps: script(send(frInitToken(iss.Token(jwt.MapClaims{"rooms": []string{"r2"}}))), expect(frAck),
			send(subscribe("q1", qMessages)), expect(frOp(result, "q1", forbiddenResult("messages", 3, outsideR1)), frComplete("q1")),
			send(subscribe("m1", `mutation { sendMessage(roomId: "r1", text: "x") { author } }`)),
			expect(frOp(result, "m1", forbiddenResult("sendMessage", 12, outsideR1)), frComplete("m1")),
			send(subscribe("m2", `mutation { sendMessage(roomId: "r2", text: "x") { text } }`)),
			expect(frOp(result, "m2", `{"data":{"sendMessage":{"text":"x"}}}`), frComplete("m2")))},
		{name: "a connection_init payload at the bound", steps: script(send(initPadded(ann, auth.MaxInitPayloadBytes)), expect(frAck))},
		{name: "a connection_init payload over the bound", steps: script(send(initPadded(ann, auth.MaxInitPayloadBytes+1)),
			overBound(proto, fmt.Sprintf("connection_init payload of %d bytes, over the limit of %d", auth.MaxInitPayloadBytes+1, auth.MaxInitPayloadBytes)))},
	}
	// CONNECTIONS_PER_SUBJECT=1, and the subject has a live connection already.
	otherConnection := func(t *testing.T, reg store.Registry) {
		now := time.Now()
		c := store.Connection{ID: "other=", Subprotocol: proto, State: store.StatePending, ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := reg.CreateConnection(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if err := reg.AcknowledgeConnection(context.Background(), c.ID, store.Ack{Subject: authtest.Sub, At: now, ExpiresAt: c.ExpiresAt, MaxPerSubject: 1}); err != nil {
			t.Fatal(err)
		}
	}
	refusedSecond := rejected(proto, 4403, "Forbidden: too many connections", "too many connections")
	if proto == protoLegacy {
		// The legacy ack is posted before it is recorded (see init); the refusal follows it.
		refusedSecond = append([]step{expect(frAck)}, refusedSecond...)
	}
	cases = append(cases,
		confCase{name: "one connection per subject: the first", maxPerSubject: 1, steps: script(send(frInitToken(ann)), expect(frAck))},
		confCase{name: "one connection per subject: a second is refused", maxPerSubject: 1, setup: otherConnection,
			steps: script(send(frInitToken(ann)), refusedSecond)})
	for _, bad := range iss.BadTokens(t) {
		cases = append(cases, confCase{name: "refused: " + bad.Name, steps: script(send(frInitToken(bad.Token)),
			rejected(proto, 4403, "Forbidden: "+bad.Msg, bad.Msg))})
	}
	for i := range cases {
		cases[i].verifier = v
	}
	return cases
}

// initPadded is a connection_init with a token whose payload is exactly n bytes.
func initPadded(token string, n int) string {
	payload := `{"authorization":"Bearer ` + token + `","pad":""}`
	payload = payload[:len(payload)-2] + strings.Repeat("x", n-len(payload)) + `"}`
	return `{"type":"connection_init","payload":` + payload + `}`
}

// overBound is the answer to an invalid connection_init: 4400; legacy: connection_error, and the
// connection stays open.
func overBound(proto, reason string) []step {
	if proto == protoLegacy {
		return []step{expect(connErr(reason)), nothing()}
	}
	return []step{closed(4400, reason)}
}
func TestAuthTransportWS(t *testing.T) {
	iss := authtest.NewIssuer(t)
	runTable(t, protoTransport, authCases(t, protoTransport, iss.Verifier(t), iss))
}

func TestAuthLegacyWS(t *testing.T) {
	iss := authtest.NewIssuer(t)
	runTable(t, protoLegacy, authCases(t, protoLegacy, iss.Verifier(t), iss))
}

// TestSubscriptionLimit: SUBSCRIPTIONS_PER_CONNECTION subscriptions are stored, one more gets an
// error for that operation (the connection stays), and completing one makes room.
func TestSubscriptionLimit(t *testing.T) {
	limitErr := `{"message":"the connection has 2 subscriptions, the most it may have: complete one first","extensions":{"code":"SUBSCRIPTION_LIMIT_EXCEEDED"}}`
	runTable(t, protoTransport, []confCase{{name: "transport", maxSubs: 2, steps: script(initAck(),
		send(frSubscribe("s1", qAddedText)), send(frSubscribe("s2", qAddedText)), active("s1", "s2"),
		send(frSubscribe("s3", qAddedText)), expect(frOp("error", "s3", "["+limitErr+"]")), active("s1", "s2"),
		send(frSubscribe("q1", qMessages)), expect(frOp("next", "q1", `{"data":{"messages":[]}}`), frComplete("q1")), // a query is no subscription
		send(frComplete("s1")), active("s2"), send(frSubscribe("s3", qAddedText)), active("s2", "s3"))}})
	runTable(t, protoLegacy, []confCase{{name: "legacy", maxSubs: 2, steps: script(initAck(),
		send(frStart("s1", qAddedText)), send(frStart("s2", qAddedText)), active("s1", "s2"),
		send(frStart("s3", qAddedText)), expect(frOp("error", "s3", limitErr)), active("s1", "s2"),
		send(frStart("s2", qAddedAuthor)), step{kind: stepActive, ops: []wantOp{{id: "s1"}, {id: "s2", query: "author"}}}, // a replacing start takes no new place
		send(frStop("s1")), expect(frComplete("s1")), send(frStart("s3", qAddedText)), active("s2", "s3"))}})
}

// TestConnectRefusesABadToken: a bad token at $connect, in the header or the query, refuses the
// handshake with 401, whichever subprotocol is offered; at router level the route answers 401 and
// stores nothing.
func TestConnectRefusesABadToken(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t)
	for _, bad := range append(iss.BadTokens(t), authtest.BadToken{Name: "basic scheme"}) {
		for _, proto := range []string{protoTransport, protoLegacy} {
			t.Run(bad.Name+"/"+proto, func(t *testing.T) { connectRefused(t, v, proto, bad.Name, bad.Token) })
		}
	}
}

// connectRefused offers proto with a bad token at $connect, at router level and through the local
// runtime, in the Authorization header and in the query.
func connectRefused(t *testing.T, v *auth.Verifier, proto, name, token string) {
	header := "Bearer " + token
	if name == "basic scheme" {
		header = "Basic YTpi"
	}
	l := newRouterLevel(t, confCase{proto: proto}, false)
	h, err := app.Handler(app.Config{Verifier: v}, l.st, l.gw, apptest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	l.r = h
	l.conn = "Refused" + l.conn
	for _, resp := range []events.APIGatewayProxyResponse{
		l.connectEvent(map[string]string{"Sec-WebSocket-Protocol": proto, "Authorization": header}, nil),
		l.connectQueryEvent(map[string]string{"Sec-WebSocket-Protocol": proto}, url.Values{"authorization": {header}}),
	} {
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Body, "Unauthorized") {
			t.Fatalf("router level: $connect answered %d %q, want 401", resp.StatusCode, resp.Body)
		}
	}
	if _, err := l.st.Connection(context.Background(), l.conn); err == nil {
		t.Fatal("a refused connection was stored")
	}
	d := apptest.Start(t, app.Config{Verifier: v})
	for _, u := range []string{"ws://" + d.Addr + "/graphql", "ws://" + d.Addr + "/graphql?" + url.Values{"authorization": {header}}.Encode()} {
		h := http.Header{}
		if !strings.Contains(u, "?") {
			h.Set("Authorization", header)
		}
		c, resp, err := wstest.TryDialHeader(u, h, proto)
		if err == nil {
			c.CloseNow()
			t.Fatalf("socket level: the handshake succeeded")
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("socket level: %v (%+v), want 401", err, resp)
		}
	}
}

// TestUnknownKeyThenRotation: a token signed with a key the issuer does not publish is refused;
// once the issuer rotates to a new key, tokens it signs are accepted, the verifier fetching the
// new key set on the unknown key id. Both subprotocols, at router level and through the local
// runtime.
func TestUnknownKeyThenRotation(t *testing.T) {
	for _, tc := range []struct{ proto, lvl string }{{protoTransport, "router"}, {protoTransport, "socket"},
		{protoLegacy, "router"}, {protoLegacy, "socket"}} {
		proto, lvl := tc.proto, tc.lvl
		t.Run(proto+"/"+lvl, func(t *testing.T) {
			t.Parallel()
			iss := authtest.NewIssuer(t)
			v := iss.Verifier(t)
			unknown := iss.UnknownKeyToken(t)
			run := func(steps []step) {
				c := confCase{name: "rotation", proto: proto, verifier: v, steps: steps}
				if lvl == "router" {
					l := newRouterLevel(t, c, false)
					runCase(t, c, false, l, &l.at)
					return
				}
				l := newSocketLevel(t, c, false)
				runCase(t, c, false, l, &l.at)
			}
			run(script(send(frInitToken(unknown)), rejected(proto, 4403, "Forbidden: invalid token", "invalid token")))
			time.Sleep(1100 * time.Millisecond) // AUTH_JWKS_MIN_REFRESH_INTERVAL
			iss.Rotate()
			run(script(send(frInitToken(iss.Token(nil))), expect(frAck)))
		})
	}
}
