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
// API Gateway cannot send close codes: closing is DeleteConnection, which the client sees as 1000.
// The graphql-ws client reconnects at once after a 1000 close whenever it still has active
// subscriptions, so where the specification closes with a code the client must not retry after
// (4400, 4401, 4409, 4429, 4500), strict mode first posts one frame the client cannot accept: it
// then closes itself with 4004, which it never retries, and the frame's type names the intended
// code and reason. See the README's "Protocol behaviour on API Gateway".
package socket

import (
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
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/realtime-gql/lambdaws/graph"
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

// Connections is the part of the management API the routes use; *apigatewaymanagementapi.Client
// satisfies it.
type Connections interface {
	PostToConnection(ctx context.Context, in *apigatewaymanagementapi.PostToConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error)
	DeleteConnection(ctx context.Context, in *apigatewaymanagementapi.DeleteConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.DeleteConnectionOutput, error)
}

// Config holds the Handler's dependencies and settings.
type Config struct {
	Registry    store.Registry
	Executor    Executor
	Connections Connections

	// InitTimeout is how long after connecting a connection_init may arrive; default 3s, the
	// reference server's.
	InitTimeout time.Duration
	// MaxLifetime is the registry TTL of a connection and its subscriptions; default 2h10m,
	// API Gateway's 2-hour maximum connection duration plus a margin.
	MaxLifetime time.Duration
	// AckWait bounds how long a legacy start waits for its connection's init to be
	// acknowledged by an overlapping invocation; default 3s.
	AckWait time.Duration
	// Strict makes the graphql-ws client stop retrying wherever the specification says it must
	// not (see the package comment); off by default.
	Strict bool
	// MaxMessage is the largest message posted; default 128 KiB, API Gateway's limit. A larger
	// result is replaced by an error result.
	MaxMessage int
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
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = 3 * time.Second
	}
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = 2*time.Hour + 10*time.Minute
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 3 * time.Second
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = 128 * 1024
	}
	if cfg.TouchInterval <= 0 {
		cfg.TouchInterval = time.Minute
	}
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
	rc := ev.RequestContext
	switch rc.RouteKey {
	case "$connect":
		return h.connect(ctx, ev)
	case "$disconnect":
		if err := h.cfg.Registry.DeleteConnection(ctx, rc.ConnectionID); err != nil {
			return serverError(), fmt.Errorf("disconnect: %w", err)
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
	at := epochMillis(ev.RequestContext.ConnectedAt, h.cfg.Now())
	c := store.Connection{
		ID: ev.RequestContext.ConnectionID, Subprotocol: proto, State: store.StatePending,
		ConnectedAt: at, ExpiresAt: at.Add(h.cfg.MaxLifetime),
	}
	if err := h.cfg.Registry.CreateConnection(ctx, c); err != nil {
		return serverError(), fmt.Errorf("connect: %w", err)
	}
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK,
		Headers: map[string]string{"Sec-WebSocket-Protocol": proto}}, nil
}

// session is one $default event being handled.
type session struct {
	h    *Handler
	conn store.Connection
	at   time.Time // when API Gateway received the message
	log  *zerolog.Logger
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
	if err != nil {
		return serverError(), fmt.Errorf("read connection: %w", err)
	}
	s := &session{h: h, conn: conn, at: epochMillis(ev.RequestContext.RequestTimeEpoch, h.cfg.Now()), log: zerolog.Ctx(ctx)}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			body = nil
		}
	}
	if conn.State == store.StatePending && s.at.Sub(conn.ConnectedAt) > h.cfg.InitTimeout {
		// The reference server's timer would have closed the socket by now.
		return s.close(ctx, CloseInitTimeout, "Connection initialisation timeout")
	}
	if s.at.Sub(conn.LastActive()) > h.cfg.TouchInterval {
		if err := h.cfg.Registry.TouchConnection(ctx, id, s.at); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn().Err(err).Msg("record activity")
		}
	}
	if ev.IsBase64Encoded && conn.Subprotocol == gqlws.TransportWS {
		// graphql-transport-ws messages are text; a binary frame is an invalid message (4400),
		// whatever it carries. (On AWS, API Gateway closes such a connection with 1003 itself.)
		// Legacy servers read binary frames as text, and so does the legacy path here.
		return s.close(ctx, CloseBadRequest, "binary frames are not supported")
	}
	msg, err := gqlws.Decode(conn.Subprotocol, body)
	if err != nil {
		if conn.Subprotocol == gqlws.LegacyWS {
			s.log.Info().Err(err).Msg("invalid message")
			return s.reply(gqlws.Message{Type: gqlws.ConnectionError, Payload: errorPayload(err)})
		}
		return s.close(ctx, CloseBadRequest, strings.TrimPrefix(err.Error(), gqlws.ErrInvalidMessage.Error()+": "))
	}
	if conn.Subprotocol == gqlws.LegacyWS {
		return s.legacy(ctx, msg)
	}
	return s.transport(ctx, msg)
}

// transport handles a graphql-transport-ws message.
func (s *session) transport(ctx context.Context, msg gqlws.Message) (events.APIGatewayProxyResponse, error) {
	switch msg.Type {
	case gqlws.ConnectionInit:
		return s.init(ctx)
	case gqlws.Ping:
		return s.reply(gqlws.Message{Type: gqlws.Pong, Payload: msg.Payload})
	case gqlws.Pong:
		return ok(nil), nil
	case gqlws.Subscribe:
		if s.conn.State != store.StateReady {
			return s.close(ctx, CloseUnauthorized, "Unauthorized")
		}
		return s.subscribe(ctx, msg, false)
	case gqlws.Complete:
		if _, err := s.h.cfg.Registry.DeleteSubscription(ctx, s.conn.ID, msg.ID); err != nil {
			return serverError(), fmt.Errorf("complete %s: %w", msg.ID, err)
		}
		return ok(nil), nil
	}
	return s.close(ctx, CloseBadRequest, "Unexpected message type "+msg.Type)
}

// legacy handles a graphql-ws (subscriptions-transport-ws) message.
func (s *session) legacy(ctx context.Context, msg gqlws.Message) (events.APIGatewayProxyResponse, error) {
	switch msg.Type {
	case gqlws.ConnectionInit:
		return s.init(ctx)
	case gqlws.Start:
		if s.conn.State != store.StateReady {
			ready, err := s.awaitAck(ctx)
			if err != nil {
				return serverError(), err
			}
			if !ready {
				s.log.Info().Str("op", msg.ID).Msg("start before connection_init")
				return s.reply(gqlws.Message{ID: msg.ID, Type: gqlws.Error,
					Payload: errorPayload(errors.New("connection_init must be sent before start"))})
			}
		}
		return s.subscribe(ctx, msg, true)
	case gqlws.Stop:
		active, err := s.h.cfg.Registry.DeleteSubscription(ctx, s.conn.ID, msg.ID)
		if err != nil {
			return serverError(), fmt.Errorf("stop %s: %w", msg.ID, err)
		}
		if !active {
			return ok(nil), nil
		}
		return s.reply(gqlws.Message{ID: msg.ID, Type: gqlws.Complete})
	case gqlws.ConnectionTerminate:
		err := s.h.cfg.Registry.DeleteConnection(ctx, s.conn.ID)
		s.h.hangUp(ctx, s.conn.ID) // even if the registry failed: the client asked to close
		if err != nil {
			return serverError(), fmt.Errorf("terminate: %w", err)
		}
		return ok(nil), nil
	}
	return s.reply(gqlws.Message{Type: gqlws.ConnectionError, Payload: errorPayload(fmt.Errorf("unexpected message type %q", msg.Type))})
}

// init acknowledges the connection, once.
//
// A legacy client sends start right after connection_init, and the start waits until the
// connection is acknowledged in the registry. A route response is sent only when this invocation
// returns, so the start's own answer could overtake it; the legacy ack is therefore posted first
// and recorded after, so anything a waiting start sends follows the ack on the wire. (A second
// legacy init is acknowledged again, so posting before the conditional write is safe.)
func (s *session) init(ctx context.Context) (events.APIGatewayProxyResponse, error) {
	legacy := s.conn.Subprotocol == gqlws.LegacyWS
	if legacy {
		if err := s.h.post(ctx, s.conn.ID, gqlws.Encode(gqlws.Message{Type: gqlws.ConnectionAck})); err != nil {
			s.log.Info().Err(err).Msg("connection_ack not delivered")
			return ok(nil), nil
		}
	}
	err := s.h.cfg.Registry.AcknowledgeConnection(ctx, s.conn.ID, nil, s.at)
	switch {
	case errors.Is(err, store.ErrConflict):
		if legacy {
			return ok(nil), nil // the legacy server acknowledges a second init again: posted above
		}
		return s.close(ctx, CloseTooManyInitRequest, "Too many initialisation requests")
	case errors.Is(err, store.ErrNotFound):
		s.h.hangUp(ctx, s.conn.ID)
		return ok(nil), nil
	case err != nil:
		err = fmt.Errorf("acknowledge: %w", err)
		if legacy {
			// The ack is out already, yet the connection stays pending: as the reference server
			// does with an init it rejects, say why, then close, so the client reconnects and
			// initialises again rather than wait on starts that cannot run.
			if perr := s.h.post(ctx, s.conn.ID, gqlws.Encode(gqlws.Message{Type: gqlws.ConnectionError,
				Payload: errorPayload(errors.New("internal error"))})); perr != nil {
				s.log.Debug().Err(perr).Msg("post connection_error")
			}
			resp, _ := s.close(ctx, CloseInternalError, "Internal server error")
			return resp, err
		}
		resp, _ := s.close(ctx, CloseInternalError, "Internal server error")
		return resp, err
	}
	if legacy {
		return ok(nil), nil // posted above
	}
	return s.reply(gqlws.Message{Type: gqlws.ConnectionAck})
}

// awaitAck polls, with consistent reads and growing pauses, until the connection is acknowledged
// or AckWait has passed (or the init timeout, if sooner).
func (s *session) awaitAck(ctx context.Context) (bool, error) {
	deadline := time.Now().Add(s.h.cfg.AckWait)
	// No init is accepted after the init timeout, so waiting longer is pointless.
	if initDeadline := s.conn.ConnectedAt.Add(s.h.cfg.InitTimeout); initDeadline.Before(deadline) {
		deadline = initDeadline
	}
	pause := 5 * time.Millisecond
	for {
		c, err := s.h.cfg.Registry.Connection(ctx, s.conn.ID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("await ack: %w", err)
		}
		if c.State == store.StateReady {
			s.conn = c
			return true, nil
		}
		if time.Now().Add(pause).After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(pause*2, 200*time.Millisecond)
	}
}

// subscribe handles subscribe (replace=false) and legacy start (replace=true).
func (s *session) subscribe(ctx context.Context, msg gqlws.Message, replace bool) (events.APIGatewayProxyResponse, error) {
	req, _ := gqlws.DecodeRequest(msg.Payload) // Decode checked it
	greq := graph.Request{Query: req.Query, OperationName: req.OperationName, Variables: req.Variables}
	op, errs := s.h.cfg.Executor.Prepare(ctx, greq)
	if errs != nil {
		resp := s.h.cfg.Executor.ErrorResponse(ctx, errs)
		s.log.Info().Str("op", msg.ID).Str("error", resp.Errors.Error()).Msg("operation rejected")
		return s.reply(gqlws.Message{ID: msg.ID, Type: gqlws.Error, Payload: s.errorsPayload(resp.Errors)})
	}
	now := s.h.cfg.Now()
	sub := store.Subscription{
		ConnectionID: s.conn.ID, ID: msg.ID, Topic: op.Topic, Subprotocol: s.conn.Subprotocol,
		Query: req.Query, OperationName: req.OperationName, Variables: req.Variables,
		Principal: s.conn.Principal, CreatedAt: now, ExpiresAt: s.conn.ExpiresAt,
	}
	if op.Kind != ast.Subscription {
		sub.Query, sub.OperationName, sub.Variables = "", "", nil // held only to claim the id
	}
	if err := s.h.cfg.Registry.PutSubscription(ctx, sub, replace); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return s.close(ctx, CloseSubscriberExists, "Subscriber for "+msg.ID+" already exists")
		}
		// The service failed, not the client: end this operation with an error and keep the
		// connection, so the client can try again.
		resp, _ := s.reply(gqlws.Message{ID: msg.ID, Type: gqlws.Error, Payload: s.errorsPayload(gqlerror.List{internalError()})})
		return resp, fmt.Errorf("store operation %s: %w", msg.ID, err)
	}
	if op.Kind == ast.Subscription {
		// An overlapping invocation may have closed the connection (a protocol close, or
		// $disconnect) after this one read it: its cleanup would then miss this subscription,
		// left to receive events for a socket that no longer exists. Read the connection again
		// after the write and take the subscription back if it is gone.
		if _, err := s.h.cfg.Registry.Connection(ctx, s.conn.ID); errors.Is(err, store.ErrNotFound) {
			s.log.Info().Str("op", msg.ID).Msg("connection closed while subscribing: subscription removed")
			if _, err := s.h.cfg.Registry.DeleteSubscription(ctx, s.conn.ID, msg.ID); err != nil {
				return serverError(), fmt.Errorf("remove subscription %s of a closed connection: %w", msg.ID, err)
			}
		}
		return ok(nil), nil
	}

	resp := s.h.cfg.Executor.Execute(ctx, op)
	active, err := s.h.cfg.Registry.DeleteSubscription(ctx, s.conn.ID, msg.ID)
	if err != nil {
		return serverError(), fmt.Errorf("release operation %s: %w", msg.ID, err)
	}
	if !active {
		return ok(nil), nil // completed by the client while it ran: send nothing more
	}
	payload, err := json.Marshal(resp)
	if err != nil {
		return serverError(), fmt.Errorf("encode result of %s: %w", msg.ID, err)
	}
	if len(payload)+len(msg.ID)+64 > s.h.cfg.MaxMessage {
		s.log.Warn().Str("op", msg.ID).Int("bytes", len(payload)).Msg("result over the message limit; sent an error instead")
		payload, _ = json.Marshal(map[string]any{"errors": gqlerror.List{tooLarge(len(payload), s.h.cfg.MaxMessage)}})
	}
	// Two messages, both posted in order: a route response is sent only after the invocation
	// returns, and API Gateway does not promise to order it after our posts.
	for _, m := range []gqlws.Message{
		{ID: msg.ID, Type: gqlws.ResultType(s.conn.Subprotocol), Payload: payload},
		{ID: msg.ID, Type: gqlws.Complete},
	} {
		if err := s.h.post(ctx, s.conn.ID, gqlws.Encode(m)); err != nil {
			s.log.Info().Err(err).Str("op", msg.ID).Msg("result not delivered")
			break
		}
	}
	return ok(nil), nil
}

// errorsPayload is the payload of an error message: an array in graphql-transport-ws, the first
// error as an object in legacy graphql-ws.
func (s *session) errorsPayload(errs gqlerror.List) json.RawMessage {
	var v any = errs
	if s.conn.Subprotocol == gqlws.LegacyWS {
		v = errs[0]
	}
	b, _ := json.Marshal(v)
	return b
}

func internalError() *gqlerror.Error {
	return &gqlerror.Error{Message: "internal error", Extensions: map[string]any{"code": graph.CodeInternal}}
}

func tooLarge(size, limit int) *gqlerror.Error {
	return &gqlerror.Error{Message: fmt.Sprintf("the result is %d bytes, over the %d-byte message limit", size, limit),
		Extensions: map[string]any{"code": "RESULT_TOO_LARGE"}}
}

func errorPayload(err error) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"message": strings.TrimPrefix(err.Error(), gqlws.ErrInvalidMessage.Error()+": ")})
	return b
}

// close ends the connection for a protocol violation. API Gateway cannot send the close code;
// the connection and its subscriptions are removed and the socket is closed (the client sees 1000).
func (s *session) close(ctx context.Context, code int, reason string) (events.APIGatewayProxyResponse, error) {
	s.log.Info().Int("close", code).Str("reason", reason).Msg("closing connection")
	if s.h.cfg.Strict && noRetry[code] && s.conn.Subprotocol == gqlws.TransportWS {
		if err := s.h.post(ctx, s.conn.ID, terminalFrame(code, reason)); err != nil {
			s.log.Debug().Err(err).Msg("post terminal frame")
		}
	}
	err := s.h.cfg.Registry.DeleteConnection(ctx, s.conn.ID)
	// Close the socket even if the registry cannot be updated now: $disconnect, a GoneException
	// in the fan-out, the sweeper or the TTL removes the records later.
	s.h.hangUp(ctx, s.conn.ID)
	if err != nil {
		return serverError(), fmt.Errorf("close: %w", err)
	}
	return ok(nil), nil
}

// reply answers in the route response. An error reply that would exceed the message limit (a
// document with very many errors) keeps only its first error.
func (s *session) reply(m gqlws.Message) (events.APIGatewayProxyResponse, error) {
	b := gqlws.Encode(m)
	if len(b) > s.h.cfg.MaxMessage && m.Type == gqlws.Error {
		var errs []json.RawMessage
		if json.Unmarshal(m.Payload, &errs) == nil && len(errs) > 1 {
			m.Payload, _ = json.Marshal(errs[:1])
			b = gqlws.Encode(m)
		}
	}
	return ok(b), nil
}

func (h *Handler) post(ctx context.Context, connID string, data []byte) error {
	_, err := h.cfg.Connections.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: &connID, Data: data,
	})
	return err
}

// hangUp closes a socket through the management API; a connection that is already gone is fine.
func (h *Handler) hangUp(ctx context.Context, connID string) {
	if _, err := h.cfg.Connections.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: &connID}); err != nil {
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
