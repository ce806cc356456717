// Package emit sends events to lambdaws subscribers from any Go service or Lambda: through
// EventBridge (PutEvents), SQS or SNS (a CloudEvents 1.0 JSON message), or, in development, straight
// to the local runtime's invoke endpoint.
//
//	em, err := emit.New(emit.Config{Target: emit.EventBridge, AWS: awsCfg, Source: "com.example.chat"})
//	id, err := em.Emit(ctx, "chat.announcement", Announcement{ID: "a1", RoomID: "lobby", Text: "hi"})
//
// The event type is what @fromEvent(type: ...) names in the schema; data, encoded as a JSON object,
// is the payload the subscribers' fields yield, and its fields of the same names as the
// subscriptions' @topic arguments address it.
package emit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/oklog/ulid/v2"
	"github.com/realtime-gql/lambdaws/internal/envelope"
	"github.com/realtime-gql/lambdaws/internal/facts"
)

// A Target is where an Emitter sends events.
type Target string

// The targets.
const (
	// Local posts an EventBridge-shaped event to the local runtime's invoke endpoint (the Lambda
	// runtime interface emulator's path), which hands it to the handler as Lambda would.
	Local Target = "local"
	// EventBridge puts the event on an event bus (PutEvents): detail-type is the event type,
	// detail the data. A rule on the bus targets the function.
	EventBridge Target = "eventbridge"
	// SQS sends a CloudEvents 1.0 JSON message to a queue (SendMessage) the function reads.
	SQS Target = "sqs"
	// SNS publishes a CloudEvents 1.0 JSON message to a topic (Publish) the function subscribes to.
	SNS Target = "sns"
)

// Targets lists the targets, in the order the command line shows them.
var Targets = []Target{Local, EventBridge, SQS, SNS}

// DefaultLocalURL is the local runtime's invoke endpoint at its default address.
var DefaultLocalURL = "http://" + net.JoinHostPort(facts.LocalHost, strconv.Itoa(facts.LocalPort)) + facts.InvokePath

// DefaultSource names the emitter when Config.Source is empty.
const DefaultSource = "lambdaws.emit"

// DefaultEventBus is the EventBridge bus used when Config.EventBusName is empty.
const DefaultEventBus = "default"

// Errors Emit returns (wrapped, with the details).
var (
	// ErrInvalid: the event cannot be sent as it is (its type, its data, its size); nothing was sent.
	ErrInvalid = errors.New("emit: invalid event")
	// ErrRejected: the target answered but did not accept the event (an EventBridge entry that
	// failed, a function error from the invoke endpoint).
	ErrRejected = errors.New("emit: event rejected")
)

// Config configures an Emitter.
type Config struct {
	// Target is where events go; required.
	Target Target
	// AWS configures the EventBridge, SQS and SNS clients: region, credentials, retryer (the
	// SDK's standard one retries throttling and 5xx answers; Emit returns the last error), and
	// BaseEndpoint to reach an emulator.
	AWS aws.Config
	// Source names the emitting service: the EventBridge source (which may not start with
	// "aws."), the CloudEvents source (a URI reference); default DefaultSource.
	Source string
	// EventBusName is the EventBridge bus's name or ARN; default DefaultEventBus.
	EventBusName string
	// QueueURL is the SQS queue's URL; required for target SQS.
	QueueURL string
	// TopicARN is the SNS topic's ARN; required for target SNS.
	TopicARN string
	// MessageGroupID is the message group of a FIFO queue or topic (a name ending in .fifo);
	// default the event type. The event id is the deduplication id.
	MessageGroupID string
	// URL is the invoke endpoint for target Local; default DefaultLocalURL.
	URL string
	// HTTPClient posts to URL; default a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock that stamps events; default time.Now.
	Now func() time.Time
}

// An Emitter sends events to one target. It is safe for concurrent use.
type Emitter struct {
	cfg  Config
	send func(ctx context.Context, ev *event) (string, error)
	eb   *eventbridge.Client
	sqs  *sqs.Client
	sns  *sns.Client
}

// New returns an Emitter for cfg's target.
func New(cfg Config) (*Emitter, error) {
	if cfg.Source == "" {
		cfg.Source = DefaultSource
	}
	if err := envelope.CheckSource(cfg.Source); err != nil {
		return nil, fmt.Errorf("emit: source %q: %w", cfg.Source, err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Emitter{cfg: cfg}
	switch cfg.Target {
	case Local:
		if e.cfg.URL == "" {
			e.cfg.URL = DefaultLocalURL
		}
		if e.cfg.HTTPClient == nil {
			e.cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
		}
		e.send = e.sendLocal
	case EventBridge:
		if strings.HasPrefix(cfg.Source, "aws.") {
			return nil, fmt.Errorf("emit: source %q: EventBridge reserves sources starting with aws.", cfg.Source)
		}
		if e.cfg.EventBusName == "" {
			e.cfg.EventBusName = DefaultEventBus
		}
		e.eb = eventbridge.NewFromConfig(cfg.AWS)
		e.send = e.sendEventBridge
	case SQS:
		if cfg.QueueURL == "" {
			return nil, errors.New("emit: target sqs needs a queue URL")
		}
		e.sqs = sqs.NewFromConfig(cfg.AWS)
		e.send = e.sendSQS
	case SNS:
		if cfg.TopicARN == "" {
			return nil, errors.New("emit: target sns needs a topic ARN")
		}
		e.sns = sns.NewFromConfig(cfg.AWS)
		e.send = e.sendSNS
	default:
		return nil, fmt.Errorf("emit: unknown target %q (want local, eventbridge, sqs or sns)", cfg.Target)
	}
	return e, nil
}

// event is one event being emitted.
type event struct {
	id   string // empty: generated (EventBridge assigns its own)
	typ  string
	data json.RawMessage
	at   time.Time
}

// An Option adjusts one event.
type Option func(*event)

// WithID sets the event's id instead of a generated ULID (SQS, SNS and Local): emitting an event
// again with the same id (and source) lets the fan-out recognise it. EventBridge assigns its own
// ids, so Emit refuses WithID there.
func WithID(id string) Option { return func(ev *event) { ev.id = id } }

// WithTime sets the event's time instead of the emitter's clock.
func WithTime(t time.Time) Option { return func(ev *event) { ev.at = t } }

// Emit sends one event of type eventType whose payload is data encoded as JSON (a []byte or a
// json.RawMessage is taken as JSON text as it is); it must be a JSON object of at most
// envelope.MaxData bytes. It returns the event's identity as the fan-out sees it (and reports it to
// subscribers in payload.extensions.event.id): EventBridge's event id, or, for SQS, SNS and Local,
// the generated or given id (for CloudEvents prefixed by the source and a space). An event that
// cannot be sent wraps ErrInvalid and nothing is sent; a failure of the target is returned after
// the SDK's retries.
func (e *Emitter) Emit(ctx context.Context, eventType string, data any, opts ...Option) (string, error) {
	ev := &event{typ: eventType, at: e.cfg.Now()}
	for _, o := range opts {
		o(ev)
	}
	if err := envelope.CheckType(eventType); err != nil {
		return "", fmt.Errorf("%w: type %q: %w", ErrInvalid, eventType, err)
	}
	var err error
	if ev.data, err = encodeData(data); err != nil {
		return "", fmt.Errorf("%w: %s: data: %w", ErrInvalid, eventType, err)
	}
	switch {
	case ev.id != "" && e.cfg.Target == EventBridge:
		return "", fmt.Errorf("%w: %s: EventBridge assigns event ids; WithID applies to sqs, sns and local", ErrInvalid, eventType)
	case ev.id == "" && e.cfg.Target != EventBridge:
		ev.id = ulid.Make().String()
	}
	if ev.id != "" {
		if err := envelope.CheckID(ev.id); err != nil {
			return "", fmt.Errorf("%w: %s: id: %w", ErrInvalid, eventType, err)
		}
	}
	return e.send(ctx, ev)
}

func encodeData(data any) (json.RawMessage, error) {
	var b []byte
	switch d := data.(type) {
	case json.RawMessage:
		b = d
	case []byte:
		b = d
	default:
		var err error
		if b, err = json.Marshal(data); err != nil {
			return nil, err
		}
	}
	if len(b) > envelope.MaxData*2 { // compacting cannot bring it under the bound
		return nil, envelope.CheckData(b)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, errors.New("is not valid JSON")
	}
	if err := envelope.CheckData(buf.Bytes()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (e *Emitter) sendEventBridge(ctx context.Context, ev *event) (string, error) {
	out, err := e.eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		EventBusName: aws.String(e.cfg.EventBusName),
		Source:       aws.String(e.cfg.Source),
		DetailType:   aws.String(ev.typ),
		Detail:       aws.String(string(ev.data)),
		Time:         aws.Time(ev.at),
	}}})
	if err != nil {
		return "", fmt.Errorf("emit: eventbridge %s: %w", ev.typ, err)
	}
	// PutEvents answers 200 even when an entry fails: the entry says so.
	if len(out.Entries) != 1 {
		return "", fmt.Errorf("%w: eventbridge %s: %d entries in the answer, want 1", ErrRejected, ev.typ, len(out.Entries))
	}
	ent := out.Entries[0]
	if ent.ErrorCode != nil || out.FailedEntryCount > 0 || ent.EventId == nil {
		return "", fmt.Errorf("%w: eventbridge %s: %s: %s", ErrRejected, ev.typ, aws.ToString(ent.ErrorCode), aws.ToString(ent.ErrorMessage))
	}
	return *ent.EventId, nil
}

// cloudEvent encodes the event as a CloudEvents 1.0 structured JSON message.
func (e *Emitter) cloudEvent(ev *event) string {
	b, _ := json.Marshal(envelope.CloudEvent{
		SpecVersion:     envelope.SpecVersion,
		ID:              ev.id,
		Source:          e.cfg.Source,
		Type:            ev.typ,
		Time:            ev.at.UTC().Format(time.RFC3339Nano),
		DataContentType: envelope.ContentType,
		Data:            ev.data,
	})
	return string(b)
}

// fifo returns the message group and deduplication ids of a FIFO queue or topic, nil otherwise.
func (e *Emitter) fifo(name string, ev *event) (group, dedup *string) {
	if !strings.HasSuffix(name, ".fifo") {
		return nil, nil
	}
	g := e.cfg.MessageGroupID
	if g == "" {
		g = ev.typ
	}
	return aws.String(g), aws.String(ev.id)
}

func (e *Emitter) sendSQS(ctx context.Context, ev *event) (string, error) {
	group, dedup := e.fifo(e.cfg.QueueURL, ev)
	_, err := e.sqs.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:               aws.String(e.cfg.QueueURL),
		MessageBody:            aws.String(e.cloudEvent(ev)),
		MessageGroupId:         group,
		MessageDeduplicationId: dedup,
	})
	if err != nil {
		return "", fmt.Errorf("emit: sqs %s: %w", ev.typ, err)
	}
	return envelope.Identity(e.cfg.Source, ev.id), nil
}

func (e *Emitter) sendSNS(ctx context.Context, ev *event) (string, error) {
	group, dedup := e.fifo(e.cfg.TopicARN, ev)
	_, err := e.sns.Publish(ctx, &sns.PublishInput{
		TopicArn:               aws.String(e.cfg.TopicARN),
		Message:                aws.String(e.cloudEvent(ev)),
		MessageGroupId:         group,
		MessageDeduplicationId: dedup,
	})
	if err != nil {
		return "", fmt.Errorf("emit: sns %s: %w", ev.typ, err)
	}
	return envelope.Identity(e.cfg.Source, ev.id), nil
}

// maxAnswer bounds how much of the invoke endpoint's answer is read.
const maxAnswer = 1 << 20

func (e *Emitter) sendLocal(ctx context.Context, ev *event) (string, error) {
	body, _ := json.Marshal(events.EventBridgeEvent{
		Version:    "0",
		ID:         ev.id,
		DetailType: ev.typ,
		Source:     e.cfg.Source,
		AccountID:  "000000000000",
		Time:       ev.at.UTC(),
		Region:     "local",
		Resources:  []string{},
		Detail:     ev.data,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("emit: local %s: %w", ev.typ, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.cfg.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("emit: local %s: %w", ev.typ, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return "", fmt.Errorf("emit: local %s: reading the answer: %w", ev.typ, err)
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("emit: local %s: %s answered %s: %s", ev.typ, e.cfg.URL, resp.Status, snippet(answer))
	}
	// A function error is answered with 200 and the error as the body (X-Amz-Function-Error on
	// Lambda's own API).
	var fnErr struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}
	_ = json.Unmarshal(answer, &fnErr)
	if resp.Header.Get("X-Amz-Function-Error") != "" || fnErr.ErrorMessage != "" || fnErr.ErrorType != "" {
		return "", fmt.Errorf("%w: local %s: the function failed: %s: %s", ErrRejected, ev.typ, fnErr.ErrorType, fnErr.ErrorMessage)
	}
	return ev.id, nil
}

// snippet is the start of an answer, for an error message.
func snippet(b []byte) string {
	const n = 200
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
