package invalidate_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/invalidate"
	"github.com/realtime-gql/lambdaws/publish/source"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    invalidate.Request
		ok      bool
	}{
		{`{"subject":"ann"}`, invalidate.Request{Subject: "ann"}, true},
		{`{"topic":"messageAdded?roomId=r1"}`, invalidate.Request{Topic: "messageAdded?roomId=r1"}, true},
		{`{"subject":"ann","topic":"t","close":true}`, invalidate.Request{Subject: "ann", Topic: "t", Close: true}, true},
		{`{}`, invalidate.Request{}, false},
		{`{"close":true,"topic":"t"}`, invalidate.Request{}, false}, // close needs a subject
		{`{"subject":"ann","room":"r1"}`, invalidate.Request{}, false},
		{`{"subject":1}`, invalidate.Request{}, false},
		{`[]`, invalidate.Request{}, false},
		{`{"topic":"` + strings.Repeat("t", 1025) + `"}`, invalidate.Request{}, false},
		{`{"subject":"` + strings.Repeat("s", invalidate.MaxPayload) + `"}`, invalidate.Request{}, false},
	} {
		got, err := invalidate.Decode(json.RawMessage(tc.payload))
		if tc.ok != (err == nil) || tc.ok && got != tc.want || err != nil && !errors.Is(err, invalidate.ErrInvalid) {
			t.Errorf("Decode(%.60s) = %+v, %v", tc.payload, got, err)
		}
	}
}

// TestMalformedInvalidationIsTheEventsFault: data that is no Request is refused before the
// registry is touched, with an error publish recognises as a malformed event.
func TestMalformedInvalidationIsTheEventsFault(t *testing.T) {
	iv := invalidate.New(invalidate.Config{}) // no registry: reaching it would panic
	err := iv.Invalidate(context.Background(), engine.Change{ID: "e1", Type: invalidate.EventType, Value: json.RawMessage(`{"room":"r1"}`)})
	if !errors.Is(err, invalidate.ErrInvalid) || !errors.Is(err, source.ErrMalformed) {
		t.Fatalf("Invalidate = %v, want ErrInvalid and source.ErrMalformed", err)
	}
}
