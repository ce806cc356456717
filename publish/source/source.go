// Package source decodes the external events Lambda receives (EventBridge events, and CloudEvents
// carried by SQS messages and SNS notifications) into the engine's neutral Change, refusing
// malformed and oversized ones with an error that says why.
package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/envelope"
)

// Errors a decoder returns (wrapped, with the details).
var (
	// ErrMalformed: the event cannot be delivered as it stands; retrying cannot fix it.
	ErrMalformed = errors.New("source: malformed event")
	// ErrNotExternal: an EventBridge scheduled rule's event, which is the sweeper's, not an
	// external event for subscribers.
	ErrNotExternal = errors.New("source: not an external event")
)

// EventBridge decodes an EventBridge event: its detail-type is the event type, its detail the
// payload (a JSON object of at most envelope.MaxData bytes), its id the identity. A scheduled
// rule's event is refused with ErrNotExternal.
func EventBridge(ev events.EventBridgeEvent) (engine.Change, error) {
	if envelope.IsScheduled(ev.Source, ev.DetailType) {
		return engine.Change{}, fmt.Errorf("%w: eventbridge event %s is a scheduled event (source %s)", ErrNotExternal, clip(ev.ID), ev.Source)
	}
	fail := func(what string, err error) (engine.Change, error) {
		return engine.Change{}, fmt.Errorf("%w: eventbridge event %s: %s: %w", ErrMalformed, clip(ev.ID), what, err)
	}
	if err := envelope.CheckID(ev.ID); err != nil {
		return fail("id", err)
	}
	if err := envelope.CheckType(ev.DetailType); err != nil {
		return fail("detail-type", err)
	}
	if err := envelope.CheckData(ev.Detail); err != nil {
		return fail("detail", err)
	}
	return engine.Change{ID: ev.ID, Type: ev.DetailType, Value: ev.Detail}, nil
}

// SQS decodes an SQS message whose body is a CloudEvent in structured JSON mode (see CloudEvent).
func SQS(msg events.SQSMessage) (engine.Change, error) {
	ch, err := CloudEvent([]byte(msg.Body))
	if err != nil {
		return engine.Change{}, fmt.Errorf("sqs message %s: %w", clip(msg.MessageId), err)
	}
	return ch, nil
}

// SNS decodes an SNS notification whose message is a CloudEvent in structured JSON mode (see
// CloudEvent).
func SNS(n events.SNSEntity) (engine.Change, error) {
	ch, err := CloudEvent([]byte(n.Message))
	if err != nil {
		return engine.Change{}, fmt.Errorf("sns message %s: %w", clip(n.MessageID), err)
	}
	return ch, nil
}

// CloudEvent decodes a CloudEvents 1.0 event in structured JSON mode: specversion "1.0"; id, source
// and type (envelope.CheckID, CheckSource, CheckType); data a JSON object of at most
// envelope.MaxData bytes; datacontenttype, when present, a JSON media type; time, when present,
// RFC 3339. data_base64 (binary data) is refused. The change's identity is envelope.Identity(source,
// id). A body over envelope.MaxBody is refused before it is decoded.
func CloudEvent(body []byte) (engine.Change, error) {
	fail := func(format string, args ...any) (engine.Change, error) {
		return engine.Change{}, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(body) > envelope.MaxBody {
		return fail("the body is %d bytes, over the limit of %d", len(body), envelope.MaxBody)
	}
	var ce envelope.CloudEvent
	if err := json.Unmarshal(body, &ce); err != nil || !envelope.IsObject(body) {
		return fail("not a CloudEvent in structured JSON mode: %s", decodeError(err))
	}
	if ce.SpecVersion == "" {
		return fail("specversion: missing: not a CloudEvent in structured JSON mode%s", shapeHint(body))
	}
	if ce.SpecVersion != envelope.SpecVersion {
		return fail("specversion %s: want %s", clip(ce.SpecVersion), envelope.SpecVersion)
	}
	at := "cloudevent " + clip(ce.ID)
	if err := envelope.CheckID(ce.ID); err != nil {
		return fail("cloudevent: id: %v", err)
	}
	if err := envelope.CheckSource(ce.Source); err != nil {
		return fail("%s: source: %v", at, err)
	}
	if err := envelope.CheckType(ce.Type); err != nil {
		return fail("%s: type: %v", at, err)
	}
	if ce.DataContentType != "" && !isJSONMedia(ce.DataContentType) {
		return fail("%s: datacontenttype %s: data must be JSON (application/json)", at, clip(ce.DataContentType))
	}
	if ce.Time != "" {
		if _, err := time.Parse(time.RFC3339, ce.Time); err != nil {
			return fail("%s: time %s: want RFC 3339", at, clip(ce.Time))
		}
	}
	if len(ce.DataBase64) > 0 {
		return fail("%s: data_base64: binary data is not supported; send a JSON object as data", at)
	}
	if len(ce.Data) == 0 || bytes.Equal(ce.Data, []byte("null")) {
		return fail("%s: data: missing; want a JSON object", at)
	}
	if err := envelope.CheckData(ce.Data); err != nil {
		return fail("%s: data: %v", at, err)
	}
	return engine.Change{ID: envelope.Identity(ce.Source, ce.ID), Type: ce.Type, Value: ce.Data}, nil
}

// isJSONMedia reports whether a media type says JSON: application/json, text/json or any +json.
func isJSONMedia(s string) bool {
	mt, _, err := mime.ParseMediaType(s)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// shapeHint names the shapes that are mistaken for a CloudEvent most often.
func shapeHint(body []byte) string {
	var probe struct {
		Type       string `json:"Type"`
		TopicArn   string `json:"TopicArn"`
		DetailType string `json:"detail-type"`
	}
	_ = json.Unmarshal(body, &probe)
	switch {
	case probe.Type == "Notification" && probe.TopicArn != "":
		return " (it is an SNS notification envelope: enable raw message delivery on the queue's subscription)"
	case probe.DetailType != "":
		return " (it is an EventBridge event: target the function with the rule, or send CloudEvents to the queue)"
	}
	return ""
}

// decodeError describes why a body is not a JSON object, without quoting the body.
func decodeError(err error) string {
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return "not a JSON object"
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Sprintf("%s must be a %s, not a %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &typeErr):
		return "not a JSON object"
	default:
		return "not valid JSON"
	}
}

// clip quotes a value for an error message, cut to a length fit for a log line.
func clip(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		return fmt.Sprintf("%q…", s[:maxLen])
	}
	return fmt.Sprintf("%q", s)
}
