// Package envelope states once the wire shapes and bounds of external events (the CloudEvents 1.0
// structured JSON envelope, the rules an event type and an identity follow, the payload bound),
// for the emitter and the decoders alike.
package envelope

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/realtime-gql/lambdaws/internal/facts"
)

// MaxData bounds an event's payload (EventBridge detail, CloudEvents data), in bytes: API Gateway's
// WebSocket message limit (facts.MaxMessage, 128 KiB), since a subscriber receives the payload in
// one message.
const MaxData = facts.MaxMessage

// MaxBody bounds a whole message body (an SQS body, an SNS message) before it is decoded: 256 KiB,
// the most SQS, SNS and EventBridge accept.
const MaxBody = 256 * 1024

// MaxType bounds an event type, in bytes: EventBridge's limit on a detail-type, 128.
const MaxType = 128

// MaxID bounds an event id and a CloudEvents source, in bytes: both become part of database keys.
const MaxID = 256

// SpecVersion is the only CloudEvents version accepted and sent.
const SpecVersion = "1.0"

// ContentType is the data content type sent.
const ContentType = "application/json"

// The EventBridge source and detail-type of a scheduled rule's event: the sweeper's schedule, not
// an external event.
const (
	ScheduledSource     = "aws.events"
	ScheduledDetailType = "Scheduled Event"
)

// ReservedTypePrefix starts the event types the service itself understands; a schema cannot
// subscribe to them.
const ReservedTypePrefix = "lambdaws."

// InvalidateType is the type of the event that invalidates subscriptions (by subject or topic),
// from any source (EventBridge, SQS, SNS); it goes to publish's Invalidator, never to subscribers.
const InvalidateType = ReservedTypePrefix + "invalidate"

// IsScheduled reports whether an EventBridge event with this source and detail-type is a
// scheduled rule's event.
func IsScheduled(source, detailType string) bool {
	return source == ScheduledSource && detailType == ScheduledDetailType
}

// A CloudEvent is a CloudEvents 1.0 event in structured JSON mode.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            string          `json:"time,omitempty"` // RFC 3339
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
	// DataBase64 is binary data; never sent, refused when received.
	DataBase64 json.RawMessage `json:"data_base64,omitempty"`
}

// Identity is the identity of a CloudEvent: its source and id, which together are unique, joined
// by a space (a source is a URI reference, which has no spaces; CheckSource ensures it).
func Identity(source, id string) string { return source + " " + id }

// ErrType reports an invalid event type.
var ErrType = errors.New("invalid event type")

// CheckType reports whether t can be an event type: 1 to MaxType bytes of UTF-8 text with no
// control characters. The error wraps ErrType.
func CheckType(t string) error {
	if err := checkText(t, MaxType); err != nil {
		return fmt.Errorf("%w: %w", ErrType, err)
	}
	return nil
}

// CheckID reports whether id can be an event id: 1 to MaxID bytes of UTF-8 text with no control
// characters.
func CheckID(id string) error { return checkText(id, MaxID) }

// CheckSource reports whether s can be a CloudEvents source: like an id, and without spaces.
func CheckSource(s string) error {
	if err := checkText(s, MaxID); err != nil {
		return err
	}
	if strings.ContainsFunc(s, unicode.IsSpace) {
		return errors.New("has spaces (a source is a URI reference)")
	}
	return nil
}

func checkText(s string, maxLen int) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case len(s) > maxLen:
		return fmt.Errorf("is %d bytes, over the limit of %d", len(s), maxLen)
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		return errors.New("has control characters")
	}
	return nil
}

// CheckData reports whether data can be an event's payload: a JSON object of at most MaxData bytes.
func CheckData(data []byte) error {
	if len(data) > MaxData {
		return fmt.Errorf("is %d bytes, over the limit of %d", len(data), MaxData)
	}
	if !IsObject(data) {
		return errors.New("is not a JSON object")
	}
	return nil
}

// IsObject reports whether data is one valid JSON object (surrounding white space allowed).
func IsObject(data []byte) bool {
	i := 0
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i < len(data) && data[i] == '{' && json.Valid(data)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
