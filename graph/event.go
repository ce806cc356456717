package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/store"
)

// An Event is one change addressed to the subscribers of one topic.
type Event struct {
	// Topic is the topic it is delivered to.
	Topic string
	// Field is the subscription field it feeds.
	Field string
	// Message is the value the field yields.
	Message *store.Message
}

// Topic returns the canonical topic of a subscription field and the values of its @topic
// arguments: the field name, then the arguments as a sorted, escaped query string, e.g.
// "messageAdded?roomId=r1". The same field and values always give the same topic, whether they
// come from a subscribe (AST values, variables) or from a change (Go values).
func Topic(field string, args map[string]any) string {
	if len(args) == 0 {
		return field
	}
	v := make(url.Values, len(args))
	for name, val := range args {
		v.Set(name, topicValue(val))
	}
	return field + "?" + v.Encode()
}

func topicValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		return strconv.FormatBool(v)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// Events returns the events a data table stream record causes: INSERT feeds messageAdded, MODIFY
// messageEdited and REMOVE (by the app or by TTL) messageDeleted, each for the message's room.
// Records of items that are not messages give no events and no error.
func Events(rec events.DynamoDBEventRecord) ([]Event, error) {
	ch, ok, err := store.DecodeChange(rec)
	if err != nil || !ok {
		return nil, err
	}
	var field string
	var m *store.Message
	switch ch.Kind {
	case store.Insert:
		field, m = "messageAdded", ch.New
	case store.Modify:
		field, m = "messageEdited", ch.New
	case store.Remove:
		field, m = "messageDeleted", ch.Old
	default:
		return nil, fmt.Errorf("unknown change kind %q", ch.Kind)
	}
	return []Event{{Topic: Topic(field, map[string]any{"roomId": m.RoomID}), Field: field, Message: m}}, nil
}

type eventKey struct{}

func withEvent(ctx context.Context, ev *Event) context.Context {
	return context.WithValue(ctx, eventKey{}, ev)
}

func eventFrom(ctx context.Context) (*Event, bool) {
	ev, ok := ctx.Value(eventKey{}).(*Event)
	return ev, ok
}

// yieldEvent is the body of every subscription resolver: it yields the event being rendered if it
// feeds this field and room, and then ends the stream. Outside a render it yields nothing.
func yieldEvent(ctx context.Context, field, roomID string) <-chan *store.Message {
	ch := make(chan *store.Message, 1)
	if ev, ok := eventFrom(ctx); ok && ev.Field == field && ev.Message != nil && ev.Message.RoomID == roomID {
		ch <- ev.Message
	}
	close(ch)
	return ch
}
