package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
)

// ChangeKind is what a write did to an item of the data table, as the stream names it (the enum
// ChangeKind of directives.graphqls; gqlgen.yml binds the enum to this type).
type ChangeKind string

// The kinds of change.
const (
	Insert ChangeKind = "INSERT"
	Modify ChangeKind = "MODIFY"
	Remove ChangeKind = "REMOVE"
)

// Valid reports whether k is one of Insert, Modify and Remove.
func (k ChangeKind) Valid() bool { return k == Insert || k == Modify || k == Remove }

// MarshalGQL writes k as a GraphQL enum value.
func (k ChangeKind) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(k))) }

// UnmarshalGQL reads a GraphQL enum value.
func (k *ChangeKind) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok || !ChangeKind(s).Valid() {
		return fmt.Errorf("%v is not a ChangeKind (INSERT, MODIFY or REMOVE)", v)
	}
	*k = ChangeKind(s)
	return nil
}

// A Change is one decoded source event, in neutral terms: either a change to an item of the data
// table (Item and Kind) or an external event (Type).
type Change struct {
	// ID identifies the change (with Seq), so a retried delivery can be recognised: the stream
	// record's eventID, the EventBridge event's id, or a CloudEvent's source and id (see
	// envelope.Identity).
	ID string
	// Seq is the stream record's sequence number; empty for external events.
	Seq string
	// Item is the changed item's type (its __typename) and Kind what was done to it.
	Item string
	Kind ChangeKind
	// Type is the external event's type (EventBridge detail-type, CloudEvents type).
	Type string
	// Value is the payload, a JSON object: the item as written (Insert, Modify), the item as it
	// was (Remove), the event's data.
	Value json.RawMessage
}

// describe names the change in errors and logs, without its payload.
func (ch *Change) describe() string {
	if ch.Item != "" {
		return fmt.Sprintf("change %q (%s %s)", ch.ID, ch.Item, ch.Kind)
	}
	return fmt.Sprintf("event %q of type %q", ch.ID, ch.Type)
}

// An Event is one change addressed to the subscribers of one subscription field's topic.
type Event struct {
	// ID and Seq are the change's identity.
	ID, Seq string
	// Field is the subscription field it feeds, Topic the topic it is delivered to.
	Field, Topic string
	// Payload is the value the field yields, a JSON object (shared with the Change: do not modify).
	Payload json.RawMessage
}

type eventKey struct{}

// WithEvent returns a context that carries the event being rendered; the executor calls it before
// running a stored subscription, and Yield reads it.
func WithEvent(ctx context.Context, ev *Event) context.Context {
	return context.WithValue(ctx, eventKey{}, ev)
}

// EventFrom returns the event being rendered, if any.
func EventFrom(ctx context.Context) (*Event, bool) {
	ev, ok := ctx.Value(eventKey{}).(*Event)
	return ev, ok && ev != nil
}

// Yield is the body of every subscription resolver:
//
//	func (r *subscriptionResolver) MessageAdded(ctx context.Context, roomID string) (<-chan *model.Message, error) {
//		return engine.Yield[*model.Message](ctx)
//	}
//
// During a render it sends the event's payload decoded into T (T is usually a pointer to the
// field's model) exactly once and closes the channel; outside a render (a subscribe, which only
// stores the subscription) it closes the channel at once. Inside gqlgen's executor it also checks
// that the event is addressed to this very field and topic (the field name and the values of its
// @topic arguments), and yields nothing when it is not, so an event can never reach a subscription
// it was not meant for. A payload that does not decode into T is an error, which the executor
// presents to the subscriber.
func Yield[T any](ctx context.Context) (<-chan T, error) {
	ch := make(chan T, 1)
	ev, ok := EventFrom(ctx)
	if !ok || !addressed(ctx, ev) {
		close(ch)
		return ch, nil
	}
	var v T
	if err := json.Unmarshal(ev.Payload, &v); err != nil {
		return nil, fmt.Errorf("event %q does not decode into the %s field's %T: %w", ev.ID, ev.Field, v, err)
	}
	ch <- v
	close(ch)
	return ch, nil
}

// addressed reports whether ev is addressed to the subscription field being resolved. Without a
// field context (a call outside gqlgen's executor) there is nothing to compare with.
func addressed(ctx context.Context, ev *Event) bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Field == nil {
		return true
	}
	if fc.Field.Name != ev.Field {
		return false
	}
	var vars map[string]any
	if graphql.HasOperationContext(ctx) {
		vars = graphql.GetOperationContext(ctx).Variables
	}
	return TopicOf(fc.Field.Field, vars) == ev.Topic
}
