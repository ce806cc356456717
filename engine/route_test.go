package engine_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/facts"
)

func TestEventsOfItemChanges(t *testing.T) {
	src := analyze(t, "testdata/valid/chat.graphqls")
	msg := json.RawMessage(`{"__typename":"Message","id":"m1","roomId":"r1","author":"ann","text":"hi","createdAt":"2026-01-02T03:04:05Z"}`)
	for _, tc := range []struct {
		kind   engine.ChangeKind
		fields []string
	}{
		{engine.Insert, []string{"messageAdded", "messageChanged"}},
		{engine.Modify, []string{"messageEdited", "messageChanged"}},
		{engine.Remove, []string{"messageDeleted", "messageChanged"}},
	} {
		evs, err := src.Events(engine.Change{ID: "ev1", Seq: "100", Item: "Message", Kind: tc.kind, Value: msg})
		if err != nil {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		var want []engine.Event
		for _, f := range tc.fields {
			want = append(want, engine.Event{ID: "ev1", Seq: "100", Field: f, Topic: f + "?roomId=r1", Payload: msg})
		}
		if !reflect.DeepEqual(evs, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.kind, evs, want)
		}
	}
}

func TestEventsOfExternalEvents(t *testing.T) {
	src := analyze(t, "testdata/valid/chat.graphqls")
	data := json.RawMessage(`{"id":"a1","roomId":"r 1&x","text":"closing soon","priority":5,"at":"2026-01-02T03:04:05Z"}`)
	evs, err := src.Events(engine.Change{ID: "eb-1", Type: "chat.announcement", Value: data})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ev := range evs {
		if ev.ID != "eb-1" || ev.Seq != "" || string(ev.Payload) != string(data) {
			t.Errorf("event %+v", ev)
		}
		got[ev.Field] = ev.Topic
	}
	want := map[string]string{
		"announcement":     "announcement?roomId=r+1%26x",
		"allAnnouncements": "allAnnouncements",
		"urgent":           "urgent?priority=5&roomId=r+1%26x",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("topics = %v, want %v", got, want)
	}

	evs, err = src.Events(engine.Change{ID: "x", Type: "chat.broadcast", Value: json.RawMessage(`{"text":"hi"}`)})
	if err != nil || len(evs) != 1 || evs[0].Topic != "allAnnouncements" {
		t.Errorf("chat.broadcast: %+v, %v", evs, err)
	}
	// An enum, a boolean and a null @topic value (a null is left out of the topic).
	evs, err = src.Events(engine.Change{ID: "x", Type: "ops.alert", Value: json.RawMessage(`{"level":null,"urgent":true,"room":"r1"}`)})
	if err != nil || len(evs) != 1 || evs[0].Topic != "alert?room=r1&urgent=true" {
		t.Errorf("ops.alert: %+v, %v", evs, err)
	}
	evs, err = src.Events(engine.Change{ID: "x", Type: "ops.alert", Value: json.RawMessage(`{"level":"HIGH","urgent":false,"room":"r1"}`)})
	if err != nil || len(evs) != 1 || evs[0].Topic != "alert?level=HIGH&room=r1&urgent=false" {
		t.Errorf("ops.alert: %+v, %v", evs, err)
	}
}

func TestEventsNobodySubscribesTo(t *testing.T) {
	src := analyze(t, "testdata/valid/chat.graphqls")
	for _, ch := range []engine.Change{
		{ID: "1", Item: "Room", Kind: engine.Insert, Value: json.RawMessage(`{"id":"r1"}`)},
		{ID: "2", Item: "Unknown", Kind: engine.Remove, Value: json.RawMessage(`not even json`)},
		{ID: "3", Type: "billing.invoice", Value: json.RawMessage(`[]`)},
	} {
		if evs, err := src.Events(ch); err != nil || evs != nil {
			t.Errorf("Events(%+v) = %+v, %v; want nothing", ch, evs, err)
		}
	}
}

func TestEventsOfMalformedChanges(t *testing.T) {
	src := analyze(t, "testdata/valid/chat.graphqls")
	for _, tc := range []struct {
		ch   engine.Change
		want string
	}{
		{engine.Change{ID: "e1", Type: "chat.announcement", Value: json.RawMessage(`{"text":"no room"}`)},
			`event "e1" of type "chat.announcement": cannot be addressed to Subscription.announcement: the payload has no field "roomId" for the @topic argument roomId`},
		{engine.Change{ID: "e2", Type: "chat.announcement", Value: json.RawMessage(`{"roomId":{"id":"r1"},"priority":1}`)},
			`event "e2" of type "chat.announcement": cannot be addressed to Subscription.announcement: the payload's field "roomId" is an object, not a value for the @topic argument roomId`},
		{engine.Change{ID: "e3", Type: "chat.announcement", Value: json.RawMessage(`["r1"]`)},
			`event "e3" of type "chat.announcement": payload is not a JSON object`},
		{engine.Change{ID: "e4", Type: "chat.broadcast", Value: json.RawMessage(`"hi"`)},
			`event "e4" of type "chat.broadcast": payload is not a JSON object`},
		{engine.Change{ID: "e5", Item: "Message", Kind: engine.Insert, Value: json.RawMessage(`{"roomId":["r1"]}`)},
			`change "e5" (Message INSERT): cannot be addressed to Subscription.messageAdded: the payload's field "roomId" is a list, not a value for the @topic argument roomId`},
		{engine.Change{ID: "e6", Item: "Message", Kind: "UPSERT", Value: json.RawMessage(`{}`)},
			`change "e6" (Message UPSERT): unknown kind of change "UPSERT"`},
		{engine.Change{ID: "e7", Item: "Message", Type: "chat.announcement", Kind: engine.Insert},
			`change "e7" (Message INSERT): has both an item type and an event type`},
		{engine.Change{ID: "e8"}, `event "e8" of type "": has neither an item type nor an event type`},
		{engine.Change{ID: "e9", Type: "chat.announcement", Value: json.RawMessage(`{"roomId":`)},
			`event "e9" of type "chat.announcement": payload is not a JSON object`},
	} {
		evs, err := src.Events(tc.ch)
		if err == nil {
			t.Errorf("Events(%s) = %+v, want an error", tc.ch.ID, evs)
			continue
		}
		if first := strings.Split(err.Error(), "\n")[0]; first != tc.want {
			t.Errorf("Events(%s):\n got %q\nwant %q", tc.ch.ID, first, tc.want)
		}
	}
}

// A payload that lacks what one field's topic needs still reaches the fields it can be addressed
// to; the error names each field it could not.
func TestEventsPartiallyAddressed(t *testing.T) {
	src := analyze(t, "testdata/valid/chat.graphqls")
	evs, err := src.Events(engine.Change{ID: "e1", Type: "chat.announcement", Value: json.RawMessage(`{"text":"everyone","priority":3}`)})
	if len(evs) != 1 || evs[0].Field != "allAnnouncements" {
		t.Errorf("events = %+v, want allAnnouncements only", evs)
	}
	want := `event "e1" of type "chat.announcement": cannot be addressed to Subscription.announcement: the payload has no field "roomId" for the @topic argument roomId` + "\n" +
		`event "e1" of type "chat.announcement": cannot be addressed to Subscription.urgent: the payload has no field "roomId" for the @topic argument roomId`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
}

// A topic over facts.MaxTopic can have no subscriber (subscribing to one is refused): no event.
func TestEventsOverLongTopic(t *testing.T) {
	src := analyze(t, "testdata/valid/chat.graphqls")
	long := strings.Repeat("r", facts.MaxTopic)
	payload, _ := json.Marshal(map[string]any{"roomId": long, "priority": 1})
	evs, err := src.Events(engine.Change{ID: "e", Type: "chat.announcement", Value: payload})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Field != "allAnnouncements" {
			t.Errorf("event for %s, topic of %d bytes", ev.Field, len(ev.Topic))
		}
	}
	// Just under the bound: delivered.
	fits := strings.Repeat("r", facts.MaxTopic-len("announcement?roomId="))
	payload, _ = json.Marshal(map[string]any{"roomId": fits, "priority": 1})
	evs, _ = src.Events(engine.Change{ID: "e", Type: "chat.announcement", Value: payload})
	found := false
	for _, ev := range evs {
		found = found || ev.Field == "announcement" && len(ev.Topic) == facts.MaxTopic
	}
	if !found {
		t.Errorf("a topic of exactly facts.MaxTopic bytes was left out: %+v", evs)
	}
}
