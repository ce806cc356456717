package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/realtime-gql/lambdaws/internal/envelope"
	"github.com/realtime-gql/lambdaws/internal/facts"
)

// Events addresses a change to the subscription fields it feeds: a change to an item, to the fields
// declaring @fromChange for its type and kind; an external event, to the fields declaring
// @fromEvent for its type. Each event's topic is the field's name and the values of its @topic
// arguments, read from the payload's fields of the same names (as Topic writes them). A change
// nothing subscribes to gives no events and no error.
//
// A payload that is not a JSON object is an error. So is a payload that lacks a field a @topic
// argument needs, or holds an object or a list there: the error names the change and each field it
// could not be addressed to, and the events of the other fields are returned beside it (the caller
// delivers those and logs the error once). An event whose topic would exceed facts.MaxTopic is left
// out: no subscription can have such a topic (facts.MaxTopic; subscribing with one is refused).
func (s *Sources) Events(ch Change) ([]Event, error) {
	var fields []*Field
	switch {
	case ch.Item != "" && ch.Type != "":
		return nil, fmt.Errorf("%s: has both an item type and an event type", ch.describe())
	case ch.Item != "":
		if !ch.Kind.Valid() {
			return nil, fmt.Errorf("%s: unknown kind of change %q", ch.describe(), ch.Kind)
		}
		fields = s.changes[changeKey{ch.Item, ch.Kind}]
	case ch.Type != "":
		fields = s.events[ch.Type]
	default:
		return nil, fmt.Errorf("%s: has neither an item type nor an event type", ch.describe())
	}
	if len(fields) == 0 {
		return nil, nil
	}
	payload, err := decodeTopicFields(ch.Value, fields)
	if err != nil {
		return nil, fmt.Errorf("%s: payload %w", ch.describe(), err)
	}
	evs := make([]Event, 0, len(fields))
	var errs []error
	for _, f := range fields {
		topic, err := f.payloadTopic(payload)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: cannot be addressed to Subscription.%s: %w", ch.describe(), f.Name, err))
			continue
		}
		if len(topic) > facts.MaxTopic {
			continue
		}
		evs = append(evs, Event{ID: ch.ID, Seq: ch.Seq, Field: f.Name, Topic: topic, Payload: ch.Value})
	}
	return evs, errors.Join(errs...)
}

// topicValues is a payload's fields that @topic arguments read, decoded (json.Number for numbers);
// absent names are absent.
type topicValues map[string]any

// decodeTopicFields checks that the payload is a JSON object and decodes the fields the @topic
// arguments of fields read.
func decodeTopicFields(value json.RawMessage, fields []*Field) (topicValues, error) {
	need := 0
	for _, f := range fields {
		need += len(f.TopicArgs)
	}
	if need == 0 {
		if !envelope.IsObject(value) {
			return nil, errors.New("is not a JSON object")
		}
		return nil, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(value, &raw); err != nil || raw == nil {
		return nil, errors.New("is not a JSON object")
	}
	vals := make(topicValues, need)
	for _, f := range fields {
		for _, name := range f.TopicArgs {
			r, ok := raw[name]
			if _, done := vals[name]; !ok || done {
				continue
			}
			dec := json.NewDecoder(bytes.NewReader(r))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, fmt.Errorf("field %q: %w", name, err)
			}
			vals[name] = v
		}
	}
	return vals, nil
}

// payloadTopic returns the field's topic for a payload's values.
func (f *Field) payloadTopic(vals topicValues) (string, error) {
	if len(f.TopicArgs) == 0 {
		return f.Name, nil
	}
	args := make(map[string]any, len(f.TopicArgs))
	for _, name := range f.TopicArgs {
		v, ok := vals[name]
		if !ok {
			return "", fmt.Errorf("the payload has no field %q for the @topic argument %s", name, name)
		}
		switch v.(type) {
		case map[string]any:
			return "", fmt.Errorf("the payload's field %q is an object, not a value for the @topic argument %s", name, name)
		case []any:
			return "", fmt.Errorf("the payload's field %q is a list, not a value for the @topic argument %s", name, name)
		}
		args[name] = v
	}
	return Topic(f.Name, args), nil
}

// Topic returns the field's topic for its arguments' values (those of its @topic arguments are
// read; the others are ignored).
func (f *Field) Topic(args map[string]any) string {
	pick := make(map[string]any, len(f.TopicArgs))
	for _, name := range f.TopicArgs {
		pick[name] = args[name]
	}
	return Topic(f.Name, pick)
}
