// Package socket handles API Gateway's WebSocket routes ($connect, $disconnect, $default), speaking GraphQL over WebSocket in both subprotocols.
//
// Nothing here holds a socket or a timer. Each route event is handled on its own, possibly in
// parallel with other events of the same connection, so every state transition is one conditional
// write in the registry:
//
//   - $connect negotiates the subprotocol (graphql-transport-ws preferred, then graphql-ws) and
//     stores a pending connection; the route response echoes the subprotocol.
//   - connection_init acknowledges the connection once (a conditional write); the ack is the route
//     response. The init timeout is enforced lazily, on the next message.
//   - subscribe/start validates the operation. A subscription is stored under its topic and nothing
//     is executed; a query or mutation holds its id while it runs, and its result and complete are
//     posted through the management API.
//   - complete/stop releases the id; $disconnect removes the connection and all it owns.
//
// The legacy client sends start right after connection_init without waiting for the ack, and the
// two may be handled at once: a start that finds its connection pending waits (bounded) for the
// acknowledgement, as the reference server awaits its init promise.
//
// Authentication (Config.Verifier in jwt mode): a token comes at $connect (the Authorization
// header or the authorization query parameter; a bad one refuses the handshake with 401) or in
// the connection_init payload (a missing one closes as 4401, a bad one as 4403). The connection
// stores the principal, never the token, and every operation runs with it. A connection whose
// principal has expired is closed (4403) by its next message.
//
// When the registry cannot be read, a message is answered as far as it can be without it: ping
// gets its pong, subscribe and start an error for the operation, connection_init a close; the
// failure is returned to the router, which logs it. A registry that does not answer at all is
// cut Config.Margin before the invocation's deadline, so that the answer still comes in time.
//
// Results, acknowledgements the legacy protocol posts, and closes go through Config.Gateway, a
// two-method view of the management API (Post, Delete) that internal/mgmt's client satisfies; the
// binary shares that one client with the fan-out, the invalidator and the sweeper.
//
// API Gateway cannot send close codes: closing is DeleteConnection, which the client sees as 1000.
// The graphql-ws client reconnects at once after a 1000 close whenever it still has active
// subscriptions, so where the specification closes with a code the client must not retry after
// (4400, 4401, 4409, 4429, 4500), strict mode first posts one frame the client cannot accept: it
// then closes itself with 4004, which it never retries, and the frame's type names the intended
// code and reason. See the README's "Protocol behaviour on API Gateway".
package socket

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/rs/zerolog"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Executor is the part of graph.Executor the routes use.
type Executor interface {
	Prepare(ctx context.Context, req graph.Request) (*graph.Operation, gqlerror.List)
	Execute(ctx context.Context, op *graph.Operation) *graphql.Response
	ErrorResponse(ctx context.Context, errs gqlerror.List) *graphql.Response
}

// Gateway is the part of API Gateway's management API the routes use: posting to a connection and
// closing it. *mgmt.Client satisfies it.
type Gateway interface {
	// Post sends one message to a connection (PostToConnection).
	Post(ctx context.Context, connID string, data []byte) error
	// Delete closes a connection (DeleteConnection).
	Delete(ctx context.Context, connID string) error
}

// Verifier authenticates tokens; *auth.Verifier satisfies it.
type Verifier interface {
	Mode() auth.Mode
	Verify(ctx context.Context, token string) (auth.Principal, error)
}

// DefaultMaxSubscriptions is how many subscriptions a connection may have by default.
const DefaultMaxSubscriptions = 100

// DefaultMargin is the default Config.Margin: a DynamoDB call answers in milliseconds, a post in
// tens of them, so a second is ample to answer once the registry's time is up.
const DefaultMargin = time.Second

// Config holds the Handler's dependencies and settings.
type Config struct {
	Registry store.Registry
	Executor Executor
	Gateway  Gateway
	// Verifier authenticates callers; nil accepts everyone as anonymous (AUTH_MODE=none).
	Verifier Verifier

	// MaxSubscriptions bounds a connection's subscriptions; default DefaultMaxSubscriptions
	// (SUBSCRIPTIONS_PER_CONNECTION). One more gets an error for that operation.
	MaxSubscriptions int
	// MaxConnectionsPerSubject bounds the connections one principal may have acknowledged at
	// once; zero is unbounded (CONNECTIONS_PER_SUBJECT). One more is refused at connection_init.
	MaxConnectionsPerSubject int

	// InitTimeout is how long after connecting a connection_init may arrive; default
	// facts.InitTimeout.
	InitTimeout time.Duration
	// MaxLifetime is the registry TTL of a connection and its subscriptions; default
	// facts.RegistryLifetime.
	MaxLifetime time.Duration
	// AckWait bounds how long a legacy start waits for its connection's init to be
	// acknowledged by an overlapping invocation; default 3s (and never past the init timeout).
	AckWait time.Duration
	// Strict makes the graphql-ws client stop retrying wherever the specification says it must
	// not (see the package comment); off by default.
	Strict bool
	// MaxMessage is the largest message posted; default facts.MaxMessage. A larger result is
	// replaced by a RESULT_TOO_LARGE error.
	MaxMessage int
	// Margin: the registry's calls end this long before the invocation's deadline, which leaves
	// the time to answer the client (a pong, an error for the operation, a close) when the
	// registry does not answer at all; default DefaultMargin.
	Margin time.Duration
	// TouchInterval is how stale a connection's LastSeenAt may get before a message refreshes
	// it; default 1 minute. The sweeper reads it to find idle connections.
	TouchInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Handler handles the WebSocket routes.
type Handler struct {
	cfg Config
}

// New returns a Handler.
func New(cfg Config) *Handler {
	cfg.InitTimeout = cmp.Or(cfg.InitTimeout, facts.InitTimeout)
	cfg.MaxLifetime = cmp.Or(cfg.MaxLifetime, facts.RegistryLifetime)
	cfg.AckWait = cmp.Or(cfg.AckWait, 3*time.Second)
	cfg.MaxMessage = cmp.Or(cfg.MaxMessage, facts.MaxMessage)
	cfg.TouchInterval = cmp.Or(cfg.TouchInterval, time.Minute)
	cfg.MaxSubscriptions = cmp.Or(cfg.MaxSubscriptions, DefaultMaxSubscriptions)
	cfg.Margin = cmp.Or(cfg.Margin, DefaultMargin)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg}
}

// Close codes of graphql-transport-ws. On API Gateway they cannot reach the client; they name the
// reason in the log.
const (
	CloseBadRequest         = 4400
	CloseUnauthorized       = 4401
	CloseForbidden          = 4403
	CloseSubprotocol        = 4406
	CloseInitTimeout        = 4408
	CloseSubscriberExists   = 4409
	CloseTooManyInitRequest = 4429
	CloseInternalError      = 4500
)

// noRetry lists the close codes after which the graphql-ws client must not reconnect.
var noRetry = map[int]bool{CloseBadRequest: true, CloseUnauthorized: true, CloseSubprotocol: true,
	CloseSubscriberExists: true, CloseTooManyInitRequest: true, CloseInternalError: true}

// terminalFrame is what strict mode posts before closing: a message whose type is not one of
// the protocol's, so the graphql-ws client closes with 4004 (Bad response) and does not retry.
// The type spells the intended close so that it shows in the client's close reason
// ("Invalid message 'type' property \"4409: Subscriber for 1 already exists\""), which the client
// keeps only under 124 characters.
func terminalFrame(code int, reason string) []byte {
	typ := fmt.Sprintf("%d: %s", code, reason)
	if len(typ) > 88 {
		typ = typ[:85] + "..."
	}
	payload, _ := json.Marshal(map[string]any{"code": code, "reason": reason})
	return gqlws.Encode(gqlws.Message{Type: typ, Payload: payload})
}

// Handle serves one WebSocket route event. It returns an error only when the service itself
// failed (the registry is unreachable); protocol errors are answered on the socket.
func (h *Handler) Handle(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-h.cfg.Margin))
		defer cancel()
	}
	rc := ev.RequestContext
	switch rc.RouteKey {
	case "$connect":
		return h.connect(ctx, ev)
	case "$disconnect":
		// Nobody hears the answer; a failure is logged by the router, and what the connection
		// left behind goes with the fan-out's GoneException, the sweeper or the TTL.
		if err := h.cfg.Registry.DeleteConnection(ctx, rc.ConnectionID); err != nil {
			return ok(nil), fmt.Errorf("disconnect: %w", err)
		}
		return ok(nil), nil
	default:
		return h.message(ctx, ev)
	}
}

func (h *Handler) connect(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	offered := header(ev.Headers, ev.MultiValueHeaders, "Sec-WebSocket-Protocol")
	proto, found := gqlws.Negotiate(offered)
	if !found {
		zerolog.Ctx(ctx).Info().Str("offered", offered).Msg("handshake refused: no supported subprotocol")
		return events.APIGatewayProxyResponse{StatusCode: http.StatusBadRequest,
			Body: "Subprotocol not acceptable: offer graphql-transport-ws or graphql-ws"}, nil
	}
	principal, err := h.connectPrincipal(ctx, ev)
	if err != nil {
		zerolog.Ctx(ctx).Info().Err(err).Msg("handshake refused: not authenticated")
		return events.APIGatewayProxyResponse{StatusCode: http.StatusUnauthorized,
			Body: "Unauthorized: " + auth.ClientMessage(err)}, nil
	}
	at := epochMillis(ev.RequestContext.ConnectedAt, h.cfg.Now())
	c := store.Connection{
		ID: ev.RequestContext.ConnectionID, Subprotocol: proto, State: store.StatePending,
		Principal: principal, ConnectedAt: at, ExpiresAt: at.Add(h.cfg.MaxLifetime),
		MaxSubscriptions: h.cfg.MaxSubscriptions,
	}
	if err := h.cfg.Registry.CreateConnection(ctx, c); err != nil {
		return serverError(), fmt.Errorf("connect: %w", err)
	}
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK,
		Headers: map[string]string{"Sec-WebSocket-Protocol": proto}}, nil
}

// authenticating reports whether callers must bring a token.
func (h *Handler) authenticating() bool {
	return h.cfg.Verifier != nil && h.cfg.Verifier.Mode() == auth.ModeJWT
}

// connectPrincipal verifies the token of a $connect, from its Authorization header or its
// authorization query parameter, and returns the principal to store (nil: none yet). No token is
// no error: browsers cannot set headers, and connection_init may bring it.
func (h *Handler) connectPrincipal(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (json.RawMessage, error) {
	if !h.authenticating() {
		return nil, nil
	}
	var token string
	if v := header(ev.Headers, ev.MultiValueHeaders, "Authorization"); v != "" {
		t, ok := auth.FromAuthorizationHeader(v)
		if !ok {
			return nil, fmt.Errorf("%w: the Authorization header is not a Bearer token", auth.ErrInvalidToken)
		}
		token = t
	} else if v, ok := queryParam(ev, "authorization"); ok {
		if token, ok = auth.FromQuery(v); !ok {
			return nil, fmt.Errorf("%w: empty authorization parameter", auth.ErrInvalidToken)
		}
	}
	if token == "" {
		return nil, nil
	}
	p, err := h.cfg.Verifier.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// queryParam finds a $connect query parameter by name.
func queryParam(ev events.APIGatewayWebsocketProxyRequest, name string) (string, bool) {
	if vs, ok := ev.MultiValueQueryStringParameters[name]; ok && len(vs) > 0 {
		return vs[len(vs)-1], true
	}
	v, ok := ev.QueryStringParameters[name]
	return v, ok
}

// invocation is the handling of one $default event: the message, its connection as read at the
// start, and the request's logger.
type invocation struct {
	h         *Handler
	conn      store.Connection
	principal auth.Principal // the connection's, once read
	at        time.Time      // when API Gateway received the message
	log       *zerolog.Logger
}

func (h *Handler) message(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	id := ev.RequestContext.ConnectionID
	conn, err := h.cfg.Registry.Connection(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Unknown, expired or swept: nothing can be said in a protocol we do not know.
		zerolog.Ctx(ctx).Info().Msg("message on an unknown connection: closing it")
		h.hangUp(ctx, id)
		return ok(nil), nil
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			body = nil
		}
	}
	if err != nil {
		return h.outage(ctx, id, body, fmt.Errorf("read connection: %w", err))
	}
	inv := &invocation{h: h, conn: conn, at: epochMillis(ev.RequestContext.RequestTimeEpoch, h.cfg.Now()), log: zerolog.Ctx(ctx)}
	if inv.principal, err = graph.PrincipalFromJSON(conn.Principal); err != nil {
		inv.log.Error().Err(err).Msg("unreadable principal")
		return inv.reject(ctx, CloseForbidden, "Forbidden", "unauthorized")
	}
	if conn.State == store.StatePending && inv.at.Sub(conn.ConnectedAt) > h.cfg.InitTimeout {
		// The reference server's timer would have closed the socket by now.
		return inv.close(ctx, CloseInitTimeout, "Connection initialisation timeout")
	}
	if conn.State == store.StateReady && inv.principal.Expired(inv.at) {
		return inv.reject(ctx, CloseForbidden, "Forbidden: token expired", auth.ClientMessage(auth.ErrExpired))
	}
	if inv.at.Sub(conn.LastActive()) > h.cfg.TouchInterval {
		if err := h.cfg.Registry.TouchConnection(ctx, id, inv.at); err != nil && !errors.Is(err, store.ErrNotFound) {
			inv.log.Warn().Err(err).Msg("record activity")
		}
	}
	if ev.IsBase64Encoded && conn.Subprotocol == gqlws.TransportWS {
		// graphql-transport-ws messages are text; a binary frame is an invalid message (4400),
		// whatever it carries. (On AWS, API Gateway closes such a connection with 1003 itself.)
		// Legacy servers read binary frames as text, and so does the legacy path here.
		return inv.close(ctx, CloseBadRequest, "binary frames are not supported")
	}
	msg, err := gqlws.Decode(conn.Subprotocol, body)
	if err != nil {
		if conn.Subprotocol == gqlws.LegacyWS {
			inv.log.Info().Err(err).Msg("invalid message")
			return inv.reply(gqlws.Message{Type: gqlws.ConnectionError, Payload: errorPayload(err)})
		}
		return inv.close(ctx, CloseBadRequest, strings.TrimPrefix(err.Error(), gqlws.ErrInvalidMessage.Error()+": "))
	}
	if conn.Subprotocol == gqlws.LegacyWS {
		return inv.legacy(ctx, msg)
	}
	return inv.transport(ctx, msg)
}

// transport handles a graphql-transport-ws message.
func (inv *invocation) transport(ctx context.Context, msg gqlws.Message) (events.APIGatewayProxyResponse, error) {
	switch msg.Type {
	case gqlws.ConnectionInit:
		return inv.init(ctx, msg)
	case gqlws.Ping:
		return inv.reply(gqlws.Message{Type: gqlws.Pong, Payload: msg.Payload})
	case gqlws.Pong:
		return ok(nil), nil
	case gqlws.Subscribe:
		if inv.conn.State != store.StateReady {
			return inv.close(ctx, CloseUnauthorized, "Unauthorized")
		}
		return inv.subscribe(ctx, msg, false)
	case gqlws.Complete:
		active, err := inv.h.cfg.Registry.DeleteSubscription(ctx, inv.conn.ID, msg.ID)
		if err != nil {
			return ok(nil), fmt.Errorf("complete %s: %w", msg.ID, err)
		}
		inv.log.Debug().Str("op", msg.ID).Bool("active", active).Msg("complete")
		return ok(nil), nil
	}
	return inv.close(ctx, CloseBadRequest, "Unexpected message type "+msg.Type)
}

// legacy handles a graphql-ws (subscriptions-transport-ws) message.
func (inv *invocation) legacy(ctx context.Context, msg gqlws.Message) (events.APIGatewayProxyResponse, error) {
	switch msg.Type {
	case gqlws.ConnectionInit:
		return inv.init(ctx, msg)
	case gqlws.Start:
		if inv.conn.State != store.StateReady {
			ready, err := inv.awaitAck(ctx)
			if err != nil {
				resp, _ := inv.reply(gqlws.Message{ID: msg.ID, Type: gqlws.Error, Payload: inv.errorsPayload(gqlerror.List{graph.InternalError()})})
				return resp, err
			}
			if !ready {
				inv.log.Info().Str("op", msg.ID).Msg("start before connection_init")
				return inv.reply(gqlws.Message{ID: msg.ID, Type: gqlws.Error,
					Payload: errorPayload(errors.New("connection_init must be sent before start"))})
			}
		}
		return inv.subscribe(ctx, msg, true)
	case gqlws.Stop:
		active, err := inv.h.cfg.Registry.DeleteSubscription(ctx, inv.conn.ID, msg.ID)
		if err != nil {
			return ok(nil), fmt.Errorf("stop %s: %w", msg.ID, err)
		}
		inv.log.Debug().Str("op", msg.ID).Bool("active", active).Msg("stop")
		if !active {
			return ok(nil), nil
		}
		return inv.reply(gqlws.Message{ID: msg.ID, Type: gqlws.Complete})
	case gqlws.ConnectionTerminate:
		err := inv.h.cfg.Registry.DeleteConnection(ctx, inv.conn.ID)
		inv.h.hangUp(ctx, inv.conn.ID) // even if the registry failed: the client asked to close
		if err != nil {
			return ok(nil), fmt.Errorf("terminate: %w", err)
		}
		return ok(nil), nil
	}
	return inv.reply(gqlws.Message{Type: gqlws.ConnectionError, Payload: errorPayload(fmt.Errorf("unexpected message type %q", msg.Type))})
}

// init authenticates and acknowledges the connection, once.
//
// A legacy client sends start right after connection_init, and the start waits until the
// connection is acknowledged in the registry. A route response is sent only when this invocation
// returns, so the start's own answer could overtake it; the legacy ack is therefore posted first
// and recorded after, so anything a waiting start sends follows the ack on the wire. (A second
// legacy init is acknowledged again, so posting before the conditional write is safe.)
func (inv *invocation) init(ctx context.Context, msg gqlws.Message) (events.APIGatewayProxyResponse, error) {
	legacy := inv.conn.Subprotocol == gqlws.LegacyWS
	if n := len(msg.Payload); n > auth.MaxInitPayloadBytes {
		err := fmt.Errorf("connection_init payload of %d bytes, over the limit of %d", n, auth.MaxInitPayloadBytes)
		return inv.invalid(ctx, err)
	}
	principal, authenticated, err := inv.initPrincipal(ctx, msg.Payload)
	switch {
	case errors.Is(err, auth.ErrInvalidPayload):
		return inv.invalid(ctx, errors.New(strings.TrimPrefix(err.Error(), "auth: ")))
	case err != nil:
		inv.log.Info().Err(err).Msg("connection_init refused: not authenticated")
		return inv.reject(ctx, CloseForbidden, "Forbidden: "+auth.ClientMessage(err), auth.ClientMessage(err))
	case !authenticated:
		inv.log.Info().Msg("connection_init refused: no token")
		return inv.reject(ctx, CloseUnauthorized, "Unauthorized: no token", auth.ClientMessage(auth.ErrNoToken))
	}
	raw, _ := json.Marshal(principal)
	if principal.IsAnonymous() {
		raw = nil
	}
	if legacy {
		if err := inv.h.post(ctx, inv.conn.ID, gqlws.Encode(gqlws.Message{Type: gqlws.ConnectionAck})); err != nil {
			inv.log.Info().Err(err).Msg("connection_ack not delivered")
			return ok(nil), nil
		}
	}
	err = inv.h.cfg.Registry.AcknowledgeConnection(ctx, inv.conn.ID, store.Ack{Principal: raw, Subject: principal.Subject,
		At: inv.at, ExpiresAt: inv.conn.ExpiresAt, MaxPerSubject: inv.h.cfg.MaxConnectionsPerSubject})
	switch {
	case errors.Is(err, store.ErrConflict):
		if legacy {
			return ok(nil), nil // the legacy server acknowledges a second init again: posted above
		}
		return inv.close(ctx, CloseTooManyInitRequest, "Too many initialisation requests")
	case errors.Is(err, store.ErrNotFound):
		inv.h.hangUp(ctx, inv.conn.ID)
		return ok(nil), nil
	case errors.Is(err, store.ErrLimit):
		inv.log.Info().Err(err).Msg("connection_init refused: the subject has too many connections")
		return inv.reject(ctx, CloseForbidden, "Forbidden: too many connections", "too many connections")
	case err != nil:
		err = fmt.Errorf("acknowledge: %w", err)
		if legacy {
			// The ack is out already, yet the connection stays pending: as the reference server
			// does with an init it rejects, say why, then close, so the client reconnects and
			// initialises again rather than wait on starts that cannot run.
			if perr := inv.h.post(ctx, inv.conn.ID, gqlws.Encode(gqlws.Message{Type: gqlws.ConnectionError,
				Payload: errorPayload(errors.New(graph.InternalError().Message))})); perr != nil {
				inv.log.Debug().Err(perr).Msg("post connection_error")
			}
			resp, _ := inv.close(ctx, CloseInternalError, "Internal server error")
			return resp, err
		}
		resp, _ := inv.close(ctx, CloseInternalError, "Internal server error")
		return resp, err
	}
	if legacy {
		return ok(nil), nil // posted above
	}
	return inv.reply(gqlws.Message{Type: gqlws.ConnectionAck})
}

// initPrincipal is the principal a connection_init acknowledges: verified from the payload's
// token if it brings one, else the one stored at $connect. ok is false when authentication is
// required and neither has one. Without authentication it is the anonymous principal.
func (inv *invocation) initPrincipal(ctx context.Context, payload json.RawMessage) (p auth.Principal, ok bool, err error) {
	if !inv.h.authenticating() {
		return auth.Anonymous(), true, nil
	}
	token, found, err := auth.FromInitPayload(payload)
	if err != nil {
		return p, false, err
	}
	if found {
		p, err = inv.h.cfg.Verifier.Verify(ctx, token)
		return p, err == nil, err
	}
	if inv.principal.IsAnonymous() {
		return p, false, nil
	}
	if inv.principal.Expired(inv.at) {
		return p, false, auth.ErrExpired
	}
	return inv.principal, true, nil
}

// reject refuses a connection for its credentials: graphql-transport-ws closes with code (4401
// or 4403, with strict mode's terminal frame where the client must not retry); legacy graphql-ws
// gets connection_error with msg, then the close.
func (inv *invocation) reject(ctx context.Context, code int, reason, msg string) (events.APIGatewayProxyResponse, error) {
	if inv.conn.Subprotocol == gqlws.LegacyWS {
		if err := inv.h.post(ctx, inv.conn.ID, gqlws.Encode(gqlws.Message{Type: gqlws.ConnectionError,
			Payload: errorPayload(errors.New(msg))})); err != nil {
			inv.log.Debug().Err(err).Msg("post connection_error")
		}
	}
	return inv.close(ctx, code, reason)
}

// invalid answers an invalid message: graphql-transport-ws closes with 4400; legacy graphql-ws
// gets connection_error and stays open.
func (inv *invocation) invalid(ctx context.Context, err error) (events.APIGatewayProxyResponse, error) {
	if inv.conn.Subprotocol == gqlws.LegacyWS {
		inv.log.Info().Err(err).Msg("invalid message")
		return inv.reply(gqlws.Message{Type: gqlws.ConnectionError, Payload: errorPayload(err)})
	}
	return inv.close(ctx, CloseBadRequest, err.Error())
}

// outage answers a message when its connection cannot be read: a ping (graphql-transport-ws)
// gets its pong, a subscribe or a start an error for the operation, a connection_init a close.
// The subprotocol is in the registry, so these are told apart by the message alone: ping,
// subscribe and start each belong to one subprotocol, and a close is the same in both (with no
// strict-mode frame, which only graphql-transport-ws may get). Anything else is left
// unanswered. err is returned for the router to log.
func (h *Handler) outage(ctx context.Context, connID string, body []byte, err error) (events.APIGatewayProxyResponse, error) {
	if m, derr := gqlws.Decode(gqlws.TransportWS, body); derr == nil {
		switch m.Type {
		case gqlws.Ping:
			return ok(gqlws.Encode(gqlws.Message{Type: gqlws.Pong, Payload: m.Payload})), err
		case gqlws.Subscribe:
			payload, _ := json.Marshal(gqlerror.List{graph.InternalError()})
			return ok(gqlws.Encode(gqlws.Message{ID: m.ID, Type: gqlws.Error, Payload: payload})), err
		case gqlws.ConnectionInit:
			h.hangUp(ctx, connID)
			return ok(nil), err
		}
	}
	if m, derr := gqlws.Decode(gqlws.LegacyWS, body); derr == nil && m.Type == gqlws.Start {
		payload, _ := json.Marshal(graph.InternalError())
		return ok(gqlws.Encode(gqlws.Message{ID: m.ID, Type: gqlws.Error, Payload: payload})), err
	}
	return ok(nil), err
}

// awaitAck polls, with consistent reads and growing pauses, until the connection is acknowledged
// or AckWait has passed (or the init timeout, if sooner). The wait is reckoned on the package's
// clock; the pauses are real.
func (inv *invocation) awaitAck(ctx context.Context) (bool, error) {
	wait := inv.h.cfg.AckWait
	// No init is accepted after the init timeout, so waiting longer is pointless.
	if left := inv.conn.ConnectedAt.Add(inv.h.cfg.InitTimeout).Sub(inv.h.cfg.Now()); left < wait {
		wait = left
	}
	expired := time.NewTimer(max(wait, 0))
	defer expired.Stop()
	pause := 5 * time.Millisecond
	for {
		c, err := inv.h.cfg.Registry.Connection(ctx, inv.conn.ID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("await ack: %w", err)
		}
		if c.State == store.StateReady {
			p, err := graph.PrincipalFromJSON(c.Principal)
			if err != nil {
				return false, fmt.Errorf("await ack: %w", err)
			}
			inv.conn, inv.principal = c, p
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-expired.C:
			return false, nil
		case <-time.After(pause):
		}
		pause = min(pause*2, 200*time.Millisecond)
	}
}

// subscribe handles subscribe (replace=false) and legacy start (replace=true).
func (inv *invocation) subscribe(ctx context.Context, msg gqlws.Message, replace bool) (events.APIGatewayProxyResponse, error) {
	req := msg.Request
	greq := graph.Request{Query: req.Query, OperationName: req.OperationName, Variables: req.Variables}
	ctx = graph.WithPrincipal(ctx, inv.principal)
	op, errs := inv.h.cfg.Executor.Prepare(ctx, greq)
	if errs != nil {
		resp := inv.h.cfg.Executor.ErrorResponse(ctx, errs)
		inv.log.Info().Str("op", msg.ID).Str("error", oneLine(resp.Errors)).Msg("operation rejected")
		return inv.reply(gqlws.Message{ID: msg.ID, Type: gqlws.Error, Payload: inv.errorsPayload(resp.Errors)})
	}
	now := inv.h.cfg.Now()
	sub := store.Subscription{
		ConnectionID: inv.conn.ID, ID: msg.ID, Topic: op.Topic, Filter: op.Filter, Subprotocol: inv.conn.Subprotocol,
		Query: req.Query, OperationName: req.OperationName, Variables: req.Variables,
		Principal: inv.conn.Principal, CreatedAt: now, ExpiresAt: inv.conn.ExpiresAt,
	}
	if op.Kind != ast.Subscription {
		sub.Query, sub.OperationName, sub.Variables = "", "", nil // held only to claim the id
	}
	if err := inv.h.cfg.Registry.PutSubscription(ctx, sub, replace); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return inv.close(ctx, CloseSubscriberExists, "Subscriber for "+msg.ID+" already exists")
		}
		if errors.Is(err, store.ErrLimit) {
			inv.log.Info().Str("op", msg.ID).Int("max", inv.h.cfg.MaxSubscriptions).Msg("subscription refused: too many on the connection")
			return inv.reply(gqlws.Message{ID: msg.ID, Type: gqlws.Error,
				Payload: inv.errorsPayload(gqlerror.List{graph.TooManySubscriptions(inv.h.cfg.MaxSubscriptions)})})
		}
		// The service failed, not the client: end this operation with an error and keep the
		// connection, so the client can try again.
		resp, _ := inv.reply(gqlws.Message{ID: msg.ID, Type: gqlws.Error, Payload: inv.errorsPayload(gqlerror.List{graph.InternalError()})})
		return resp, fmt.Errorf("store operation %s: %w", msg.ID, err)
	}
	if op.Kind == ast.Subscription {
		// An overlapping invocation may have closed the connection (a protocol close, or
		// $disconnect) after this one read it: its cleanup would then miss this subscription,
		// left to receive events for a socket that no longer exists. Read the connection again
		// after the write and take the subscription back if it is gone.
		if _, err := inv.h.cfg.Registry.Connection(ctx, inv.conn.ID); errors.Is(err, store.ErrNotFound) {
			inv.log.Info().Str("op", msg.ID).Msg("connection closed while subscribing: subscription removed")
			if _, err := inv.h.cfg.Registry.DeleteSubscription(ctx, inv.conn.ID, msg.ID); err != nil {
				return ok(nil), fmt.Errorf("remove subscription %s of a closed connection: %w", msg.ID, err)
			}
			return ok(nil), nil
		}
		inv.log.Debug().Str("op", msg.ID).Str("topic", op.Topic).Msg("subscribed")
		return ok(nil), nil
	}

	resp := inv.h.cfg.Executor.Execute(ctx, op)
	active, releaseErr := inv.h.cfg.Registry.DeleteSubscription(ctx, inv.conn.ID, msg.ID)
	if releaseErr != nil {
		// The result is sent all the same; the id stays claimed until the connection ends.
		releaseErr = fmt.Errorf("release operation %s: %w", msg.ID, releaseErr)
		active = true
	}
	if !active {
		return ok(nil), nil // completed by the client while it ran: send nothing more
	}
	payload, err := json.Marshal(resp)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Str("op", msg.ID).Msg("encode result")
		payload = graph.ErrorsJSON(graph.InternalError())
	}
	if len(payload)+len(msg.ID)+64 > inv.h.cfg.MaxMessage {
		inv.log.Warn().Str("op", msg.ID).Int("bytes", len(payload)).Msg("result over the message limit; sent an error instead")
		payload = graph.ErrorsJSON(graph.ResultTooLarge(len(payload), inv.h.cfg.MaxMessage))
	}
	// Two messages, both posted in order: a route response is sent only after the invocation
	// returns, and API Gateway does not promise to order it after our posts.
	for _, m := range []gqlws.Message{
		{ID: msg.ID, Type: gqlws.ResultType(inv.conn.Subprotocol), Payload: payload},
		{ID: msg.ID, Type: gqlws.Complete},
	} {
		if err := inv.h.post(ctx, inv.conn.ID, gqlws.Encode(m)); err != nil {
			inv.log.Info().Err(err).Str("op", msg.ID).Msg("result not delivered")
			break
		}
	}
	return ok(nil), releaseErr
}

// oneLine is a list of GraphQL errors as one line of a log, "; " between them (its Error() ends
// each error with a newline).
func oneLine(errs gqlerror.List) string {
	return strings.ReplaceAll(strings.TrimSuffix(errs.Error(), "\n"), "\n", "; ")
}

// errorsPayload is the payload of an error message: an array in graphql-transport-ws, the first
// error as an object in legacy graphql-ws.
func (inv *invocation) errorsPayload(errs gqlerror.List) json.RawMessage {
	var v any = errs
	if inv.conn.Subprotocol == gqlws.LegacyWS {
		v = errs[0]
	}
	b, _ := json.Marshal(v)
	return b
}

// errorPayload is the payload of a legacy connection_error or error: one error object, whose
// message is err's text without the codec's prefix.
func errorPayload(err error) json.RawMessage {
	b, _ := json.Marshal(graph.RequestError("%s", strings.TrimPrefix(err.Error(), gqlws.ErrInvalidMessage.Error()+": ")))
	return b
}

// close ends the connection for a protocol violation. API Gateway cannot send the close code;
// the connection and its subscriptions are removed and the socket is closed (the client sees 1000).
func (inv *invocation) close(ctx context.Context, code int, reason string) (events.APIGatewayProxyResponse, error) {
	inv.log.Info().Int("close", code).Str("reason", reason).Msg("closing connection")
	if inv.h.cfg.Strict && noRetry[code] && inv.conn.Subprotocol == gqlws.TransportWS {
		if err := inv.h.post(ctx, inv.conn.ID, terminalFrame(code, reason)); err != nil {
			inv.log.Debug().Err(err).Msg("post terminal frame")
		}
	}
	err := inv.h.cfg.Registry.DeleteConnection(ctx, inv.conn.ID)
	// Close the socket even if the registry cannot be updated now: $disconnect, a GoneException
	// in the fan-out, the sweeper or the TTL removes the records later.
	inv.h.hangUp(ctx, inv.conn.ID)
	if err != nil {
		return ok(nil), fmt.Errorf("close: %w", err)
	}
	return ok(nil), nil
}

// reply answers in the route response. An error reply that would exceed the message limit (a
// document with very many errors) keeps only its first error.
func (inv *invocation) reply(m gqlws.Message) (events.APIGatewayProxyResponse, error) {
	b := gqlws.Encode(m)
	if len(b) > inv.h.cfg.MaxMessage && m.Type == gqlws.Error {
		var errs []json.RawMessage
		if json.Unmarshal(m.Payload, &errs) == nil && len(errs) > 1 {
			m.Payload, _ = json.Marshal(errs[:1])
			b = gqlws.Encode(m)
		}
	}
	return ok(b), nil
}

// answering returns the context of a call that answers the client: ctx, unless the registry
// used up its time (ctx's deadline, Margin before the invocation's), in which case the answer
// gets half the margin more.
func (h *Handler) answering(ctx context.Context) (context.Context, context.CancelFunc) {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), h.cfg.Margin/2)
}

func (h *Handler) post(ctx context.Context, connID string, data []byte) error {
	ctx, cancel := h.answering(ctx)
	defer cancel()
	return h.cfg.Gateway.Post(ctx, connID, data)
}

// hangUp closes a socket through the management API; a connection that is already gone is fine.
func (h *Handler) hangUp(ctx context.Context, connID string) {
	ctx, cancel := h.answering(ctx)
	defer cancel()
	if err := h.cfg.Gateway.Delete(ctx, connID); err != nil {
		zerolog.Ctx(ctx).Debug().Err(err).Msg("delete connection")
	}
}

func ok(body []byte) events.APIGatewayProxyResponse {
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK, Body: string(body)}
}

func serverError() events.APIGatewayProxyResponse {
	return events.APIGatewayProxyResponse{StatusCode: http.StatusInternalServerError}
}

// header finds a header by case-insensitive name in either header map; repeated values are
// joined with commas.
func header(single map[string]string, multi map[string][]string, name string) string {
	var vals []string
	for k, vs := range multi {
		if strings.EqualFold(k, name) {
			vals = append(vals, vs...)
		}
	}
	if len(vals) > 0 {
		return strings.Join(vals, ",")
	}
	for k, v := range single {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func epochMillis(ms int64, fallback time.Time) time.Time {
	if ms <= 0 {
		return fallback
	}
	return time.UnixMilli(ms)
}
