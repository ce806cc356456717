// Package router is the Lambda handler: it recognises the shape of each payload and calls the typed handler for it.
//
// Shapes, told apart by one partial decode: a WebSocket route event has requestContext.eventType
// and connectionId; an HTTP API (payload 2.0) event has requestContext.http; a DynamoDB stream
// batch has Records[0].eventSource "aws:dynamodb", an SQS batch "aws:sqs" (the events queue's
// CloudEvents and the chunk queue's continuations alike: publish tells them apart per message);
// an SNS notification has
// Records[0].EventSource (capital E) "aws:sns"; the sweeper's schedule is an EventBridge event
// with source "aws.events" and detail-type "Scheduled Event", and any other EventBridge event
// (source and detail-type), lambdaws.invalidate included, is an external event for publish,
// which hands invalidations to its Invalidator. (No REST API is deployed: its
// events, like any other shape, are refused.)
// Anything else, or JSON that does not decode, is refused with an error and one log line. The
// router logs once per failed invocation, with the request's ids; a panic anywhere below becomes
// an error.
package router

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/realtime-gql/lambdaws/internal/envelope"
	"github.com/rs/zerolog"
)

// WebSocket handles API Gateway WebSocket route events.
type WebSocket interface {
	Handle(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)
}

// Stream handles DynamoDB stream batches.
type Stream interface {
	HandleDynamoDB(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error)
}

// Events handles external events: EventBridge events, SQS batches (CloudEvents, and the chunk
// queue's continuations) and SNS notifications (*publish.Fanout).
type Events interface {
	HandleEventBridge(ctx context.Context, ev events.EventBridgeEvent) error
	HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)
	HandleSNS(ctx context.Context, ev events.SNSEvent) error
}

// Schedule handles the periodic scheduled event.
type Schedule interface {
	HandleSchedule(ctx context.Context, ev events.EventBridgeEvent) error
}

// Handlers are the typed handlers the router dispatches to.
type Handlers struct {
	WebSocket WebSocket
	HTTP      http.Handler
	Stream    Stream
	Events    Events
	Schedule  Schedule
}

// Errors Invoke returns.
var (
	// ErrUnknownPayload: the payload is JSON but no shape the router knows.
	ErrUnknownPayload = errors.New("router: unrecognised payload")
	// ErrMalformed: the payload is not JSON, or does not decode as the shape it claims.
	ErrMalformed = errors.New("router: malformed payload")
	// ErrPanic: a handler panicked.
	ErrPanic = errors.New("router: handler panicked")
)

// Router is the one Lambda handler of the binary.
type Router struct {
	h   Handlers
	log zerolog.Logger
}

// New returns a Router over the handlers; log is the base logger.
func New(h Handlers, log zerolog.Logger) *Router {
	return &Router{h: h, log: log}
}

// probe decodes just enough of any payload to tell the shapes apart.
type probe struct {
	Records []struct {
		EventSource string `json:"eventSource"` // DynamoDB, SQS
		SNSSource   string `json:"EventSource"` // SNS (an exact match wins over eventSource)
	} `json:"Records"`
	RequestContext *struct {
		EventType    string          `json:"eventType"`
		ConnectionID string          `json:"connectionId"`
		HTTP         json.RawMessage `json:"http"`
	} `json:"requestContext"`
	Source     string `json:"source"`
	DetailType string `json:"detail-type"`
}

// Kind names a payload shape.
type Kind string

// Payload shapes.
const (
	KindWebSocket Kind = "websocket"
	KindHTTPv2    Kind = "http-v2"
	KindDynamoDB  Kind = "dynamodb"
	KindSQS       Kind = "sqs"
	KindSNS       Kind = "sns"
	// KindEventBridge is an EventBridge event other than the schedule: an external event.
	KindEventBridge Kind = "eventbridge"
	KindSchedule    Kind = "schedule"
	KindUnknown     Kind = "unknown"
)

// Classify tells which shape a payload has.
func Classify(payload []byte) (Kind, error) {
	var p probe
	if err := json.Unmarshal(payload, &p); err != nil {
		return KindUnknown, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case p.RequestContext != nil && p.RequestContext.EventType != "" && p.RequestContext.ConnectionID != "":
		return KindWebSocket, nil
	case p.RequestContext != nil && len(p.RequestContext.HTTP) > 0 && string(p.RequestContext.HTTP) != "null":
		return KindHTTPv2, nil
	case len(p.Records) > 0 && p.Records[0].EventSource == "aws:dynamodb":
		return KindDynamoDB, nil
	case len(p.Records) > 0 && p.Records[0].EventSource == "aws:sqs":
		return KindSQS, nil
	case len(p.Records) > 0 && p.Records[0].SNSSource == "aws:sns":
		return KindSNS, nil
	case envelope.IsScheduled(p.Source, p.DetailType):
		return KindSchedule, nil
	case p.Source != "" && p.DetailType != "":
		return KindEventBridge, nil
	}
	return KindUnknown, ErrUnknownPayload
}

// Invoke is the Lambda handler (it implements lambda.Handler).
func (r *Router) Invoke(ctx context.Context, payload []byte) (out []byte, err error) {
	lc := r.log.With()
	if l, ok := lambdacontext.FromContext(ctx); ok {
		lc = lc.Str("request", l.AwsRequestID)
	}
	log := lc.Logger()
	kind, err := Classify(payload)
	if err != nil {
		log.Error().Err(err).Int("bytes", len(payload)).Msg("invocation refused")
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			log.Error().Str("kind", string(kind)).Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("handler panicked")
			out, err = nil, fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	switch kind {
	case KindWebSocket:
		return r.websocket(ctx, log, payload)
	case KindHTTPv2:
		return r.httpV2(ctx, log, payload)
	case KindSchedule:
		return r.schedule(ctx, log, payload)
	case KindEventBridge:
		return r.eventBridge(ctx, log, payload)
	case KindSQS:
		return r.sqs(ctx, log, payload)
	case KindSNS:
		return r.sns(ctx, log, payload)
	default: // KindDynamoDB
		return r.dynamodb(ctx, log, payload)
	}
}

func decode[T any](log zerolog.Logger, kind Kind, payload []byte) (T, error) {
	var v T
	if err := json.Unmarshal(payload, &v); err != nil {
		err = fmt.Errorf("%w: %s: %v", ErrMalformed, kind, err)
		log.Error().Err(err).Msg("invocation refused")
		return v, err
	}
	return v, nil
}

func (r *Router) websocket(ctx context.Context, log zerolog.Logger, payload []byte) ([]byte, error) {
	ev, err := decode[events.APIGatewayWebsocketProxyRequest](log, KindWebSocket, payload)
	if err != nil {
		return nil, err
	}
	rc := ev.RequestContext
	log = log.With().Str("route", rc.RouteKey).Str("conn", rc.ConnectionID).Str("apiRequest", rc.RequestID).Logger()
	resp, err := r.h.WebSocket.Handle(log.WithContext(ctx), ev)
	if err != nil {
		log.Error().Err(err).Msg("websocket route failed")
	}
	return json.Marshal(resp)
}

func (r *Router) dynamodb(ctx context.Context, log zerolog.Logger, payload []byte) ([]byte, error) {
	ev, err := decode[events.DynamoDBEvent](log, KindDynamoDB, payload)
	if err != nil {
		return nil, err
	}
	resp, err := r.h.Stream.HandleDynamoDB(log.WithContext(ctx), ev)
	if err != nil {
		log.Error().Err(err).Int("records", len(ev.Records)).Msg("stream batch failed")
		return nil, err
	}
	return json.Marshal(resp)
}

func (r *Router) eventBridge(ctx context.Context, log zerolog.Logger, payload []byte) ([]byte, error) {
	ev, err := decode[events.EventBridgeEvent](log, KindEventBridge, payload)
	if err != nil {
		return nil, err
	}
	if err := r.h.Events.HandleEventBridge(log.WithContext(ctx), ev); err != nil {
		log.Error().Err(err).Str("event", ev.ID).Str("type", ev.DetailType).Msg("eventbridge event failed; Lambda retries it")
		return nil, err
	}
	return []byte("{}"), nil
}

func (r *Router) sqs(ctx context.Context, log zerolog.Logger, payload []byte) ([]byte, error) {
	ev, err := decode[events.SQSEvent](log, KindSQS, payload)
	if err != nil {
		return nil, err
	}
	resp, err := r.h.Events.HandleSQS(log.WithContext(ctx), ev)
	if err != nil {
		log.Error().Err(err).Int("messages", len(ev.Records)).Msg("sqs batch failed")
		return nil, err
	}
	return json.Marshal(resp)
}

func (r *Router) sns(ctx context.Context, log zerolog.Logger, payload []byte) ([]byte, error) {
	ev, err := decode[events.SNSEvent](log, KindSNS, payload)
	if err != nil {
		return nil, err
	}
	if err := r.h.Events.HandleSNS(log.WithContext(ctx), ev); err != nil {
		log.Error().Err(err).Int("records", len(ev.Records)).Msg("sns notification failed; Lambda retries it")
		return nil, err
	}
	return []byte("{}"), nil
}

func (r *Router) schedule(ctx context.Context, log zerolog.Logger, payload []byte) ([]byte, error) {
	ev, err := decode[events.EventBridgeEvent](log, KindSchedule, payload)
	if err != nil {
		return nil, err
	}
	if err := r.h.Schedule.HandleSchedule(log.WithContext(ctx), ev); err != nil {
		log.Error().Err(err).Str("event", ev.ID).Msg("scheduled run failed")
		return nil, err
	}
	return []byte("{}"), nil
}

func (r *Router) httpV2(ctx context.Context, log zerolog.Logger, payload []byte) ([]byte, error) {
	ev, err := decode[events.APIGatewayV2HTTPRequest](log, KindHTTPv2, payload)
	if err != nil {
		return nil, err
	}
	log = log.With().Str("apiRequest", ev.RequestContext.RequestID).Logger()
	header := http.Header{}
	for k, v := range ev.Headers { // payload 2.0 joins repeated headers with commas
		header.Set(k, v)
	}
	if len(ev.Cookies) > 0 {
		header.Set("Cookie", strings.Join(ev.Cookies, "; "))
	}
	u := url.URL{Scheme: "https", Host: ev.RequestContext.DomainName, Path: ev.RawPath, RawQuery: ev.RawQueryString}
	rec := r.serveHTTP(ctx, log, ev.RequestContext.HTTP.Method, u, header, ev.Body, ev.IsBase64Encoded)
	body, b64 := rec.eventBody()
	resp := events.APIGatewayV2HTTPResponse{StatusCode: rec.status, Headers: map[string]string{}, Body: body, IsBase64Encoded: b64}
	for k, vs := range rec.header {
		if k == "Set-Cookie" {
			resp.Cookies = vs
			continue
		}
		resp.Headers[k] = strings.Join(vs, ",")
	}
	return json.Marshal(resp)
}

// serveHTTP serves the request an HTTP event describes; an event that cannot make a request (a
// body that is not valid base64, a bad method) is answered 400.
func (r *Router) serveHTTP(ctx context.Context, log zerolog.Logger, method string, u url.URL, header http.Header, body string, b64 bool) *recorder {
	rec := newRecorder()
	raw, err := eventBody(body, b64)
	if err == nil {
		var req *http.Request
		if req, err = http.NewRequestWithContext(log.WithContext(ctx), method, u.String(), bytes.NewReader(raw)); err == nil {
			req.Header = header
			r.h.HTTP.ServeHTTP(rec, req)
			return rec
		}
	}
	log.Info().Err(err).Msg("bad HTTP event")
	rec.WriteHeader(http.StatusBadRequest)
	rec.Write([]byte("bad request: " + err.Error()))
	return rec
}

func eventBody(body string, b64 bool) ([]byte, error) {
	if !b64 {
		return []byte(body), nil
	}
	return base64.StdEncoding.DecodeString(body)
}

// recorder is the http.ResponseWriter an HTTP event is served into.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, status: http.StatusOK} }

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	w.wrote = true
	return w.body.Write(b)
}

// eventBody is the body as an API Gateway response carries it: text as is, anything else (a
// gzip-encoded page, say) base64-encoded, which API Gateway decodes before sending.
func (w *recorder) eventBody() (string, bool) {
	if w.header.Get("Content-Encoding") == "" && utf8.Valid(w.body.Bytes()) {
		return w.body.String(), false
	}
	return base64.StdEncoding.EncodeToString(w.body.Bytes()), true
}
