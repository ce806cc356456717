package gqlws_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/internal/gqlws"
)

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		header, want string
		ok           bool
	}{
		{"graphql-transport-ws", gqlws.TransportWS, true},
		{"graphql-ws", gqlws.LegacyWS, true},
		{"graphql-ws, graphql-transport-ws", gqlws.TransportWS, true},
		{" graphql-ws ,foo", gqlws.LegacyWS, true},
		{"foo, bar", "", false},
		{"", "", false},
		{"GRAPHQL-WS", "", false}, // subprotocol tokens are case-sensitive
	} {
		got, ok := gqlws.Negotiate(tc.header)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Negotiate(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDecode(t *testing.T) {
	const sub = `{"query":"subscription { messageAdded(roomId: \"r\") { id } }"}`
	for _, tc := range []struct {
		proto, in string
		want      gqlws.Message
		err       bool
	}{
		{gqlws.TransportWS, `{"type":"connection_init"}`, gqlws.Message{Type: "connection_init"}, false},
		{gqlws.TransportWS, `{"type":"connection_init","payload":null}`, gqlws.Message{Type: "connection_init"}, false},
		{gqlws.TransportWS, `{"type":"connection_init","payload":{"token":"x"}}`, gqlws.Message{Type: "connection_init", Payload: json.RawMessage(`{"token":"x"}`)}, false},
		{gqlws.TransportWS, `{"type":"connection_init","payload":"x"}`, gqlws.Message{}, true},
		{gqlws.TransportWS, `{"type":"ping","payload":{"a":1}}`, gqlws.Message{Type: "ping", Payload: json.RawMessage(`{"a":1}`)}, false},
		{gqlws.TransportWS, `{"type":"pong"}`, gqlws.Message{Type: "pong"}, false},
		{gqlws.TransportWS, `{"id":"1","type":"subscribe","payload":` + sub + `}`, gqlws.Message{ID: "1", Type: "subscribe", Payload: json.RawMessage(sub)}, false},
		{gqlws.TransportWS, `{"type":"subscribe","payload":` + sub + `}`, gqlws.Message{}, true},
		{gqlws.TransportWS, `{"id":"","type":"subscribe","payload":` + sub + `}`, gqlws.Message{}, true},
		{gqlws.TransportWS, `{"id":1,"type":"subscribe","payload":` + sub + `}`, gqlws.Message{}, true},
		{gqlws.TransportWS, `{"id":"1","type":"subscribe"}`, gqlws.Message{}, true},
		{gqlws.TransportWS, `{"id":"1","type":"subscribe","payload":{"query":1}}`, gqlws.Message{}, true},
		{gqlws.TransportWS, `{"id":"1","type":"subscribe","payload":{"query":"{a}","variables":[1]}}`, gqlws.Message{}, true},
		{gqlws.TransportWS, `{"id":"1","type":"complete"}`, gqlws.Message{ID: "1", Type: "complete"}, false},
		{gqlws.TransportWS, `{"id":"` + strings.Repeat("x", 128) + `","type":"complete"}`, gqlws.Message{ID: strings.Repeat("x", 128), Type: "complete"}, false},
		{gqlws.TransportWS, `{"id":"` + strings.Repeat("x", 129) + `","type":"complete"}`, gqlws.Message{}, true},
		{gqlws.TransportWS, `{"type":"complete"}`, gqlws.Message{}, true},
		{gqlws.TransportWS, `{"id":"1","type":"start","payload":` + sub + `}`, gqlws.Message{}, true}, // legacy type
		{gqlws.TransportWS, `{"type":"next"}`, gqlws.Message{}, true},                                 // server-only type
		{gqlws.TransportWS, `{"TYPE":"ping"}`, gqlws.Message{}, true},                                 // keys are case-sensitive
		{gqlws.TransportWS, `[]`, gqlws.Message{}, true},
		{gqlws.TransportWS, `null`, gqlws.Message{}, true},
		{gqlws.TransportWS, `not json`, gqlws.Message{}, true},
		{gqlws.TransportWS, ``, gqlws.Message{}, true},
		{gqlws.LegacyWS, `{"type":"connection_init","payload":{}}`, gqlws.Message{Type: "connection_init", Payload: json.RawMessage(`{}`)}, false},
		{gqlws.LegacyWS, `{"id":"1","type":"start","payload":` + sub + `}`, gqlws.Message{ID: "1", Type: "start", Payload: json.RawMessage(sub)}, false},
		{gqlws.LegacyWS, `{"id":"1","type":"stop"}`, gqlws.Message{ID: "1", Type: "stop"}, false},
		{gqlws.LegacyWS, `{"type":"connection_terminate"}`, gqlws.Message{Type: "connection_terminate"}, false},
		{gqlws.LegacyWS, `{"type":"ping"}`, gqlws.Message{}, true},
		{gqlws.LegacyWS, `{"id":"1","type":"subscribe","payload":` + sub + `}`, gqlws.Message{}, true},
		{"nope", `{"type":"connection_init"}`, gqlws.Message{}, true},
	} {
		got, err := gqlws.Decode(tc.proto, []byte(tc.in))
		if tc.err {
			if !errors.Is(err, gqlws.ErrInvalidMessage) {
				t.Errorf("Decode(%s, %s) = %+v, %v; want ErrInvalidMessage", tc.proto, tc.in, got, err)
			}
			continue
		}
		if err != nil || got.ID != tc.want.ID || got.Type != tc.want.Type || string(got.Payload) != string(tc.want.Payload) {
			t.Errorf("Decode(%s, %s) = %+v, %v; want %+v", tc.proto, tc.in, got, err, tc.want)
		}
	}
}

// TestDecodeFillsTheRequest: subscribe and start carry their request decoded, so the caller does
// not decode the payload again.
func TestDecodeFillsTheRequest(t *testing.T) {
	for _, in := range []struct{ proto, frame string }{
		{gqlws.TransportWS, `{"id":"1","type":"subscribe","payload":{"query":"query Q { a }","operationName":"Q","variables":{"x":1}}}`},
		{gqlws.LegacyWS, `{"id":"1","type":"start","payload":{"query":"query Q { a }","operationName":"Q","variables":{"x":1}}}`},
	} {
		m, err := gqlws.Decode(in.proto, []byte(in.frame))
		if err != nil || m.Request.Query != "query Q { a }" || m.Request.OperationName != "Q" || string(m.Request.Variables) != `{"x":1}` {
			t.Errorf("Decode(%s) = %+v, %v", in.frame, m, err)
		}
	}
}

func TestDecodeRequest(t *testing.T) {
	r, err := gqlws.DecodeRequest(json.RawMessage(`{"query":"query Q { a }","operationName":"Q","variables":{"x":1},"extensions":null}`))
	if err != nil || r.Query != "query Q { a }" || r.OperationName != "Q" || string(r.Variables) != `{"x":1}` || r.Extensions != nil {
		t.Fatalf("DecodeRequest = %+v, %v", r, err)
	}
	if _, err := gqlws.DecodeRequest(json.RawMessage(`{"query":"{a}","operationName":3}`)); !errors.Is(err, gqlws.ErrInvalidMessage) {
		t.Fatalf("bad operationName: %v", err)
	}
}

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		m    gqlws.Message
		want string
	}{
		{gqlws.Message{Type: "connection_ack"}, `{"type":"connection_ack"}`},
		{gqlws.Message{Type: "pong", Payload: json.RawMessage(`{"a":1}`)}, `{"type":"pong","payload":{"a":1}}`},
		{gqlws.Message{ID: "a\"b", Type: "next", Payload: json.RawMessage(`{"data":null}`)}, `{"id":"a\"b","type":"next","payload":{"data":null}}`},
		{gqlws.Message{ID: "é\n", Type: "complete"}, `{"id":"é\n","type":"complete"}`},
	} {
		got := gqlws.Encode(tc.m)
		if string(got) != tc.want {
			t.Errorf("Encode(%+v) = %s, want %s", tc.m, got, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("Encode(%+v) is not valid JSON: %s", tc.m, got)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"connection_init"}`))
	f.Add([]byte(`{"id":"1","type":"subscribe","payload":{"query":"subscription{messageAdded(roomId:\"r1\"){id}}"}}`))
	f.Add([]byte(`{"id":"1","type":"start","payload":{"query":"{a}","variables":{"a":[1,2]}}}`))
	f.Add([]byte(`{"id":"\u0000","type":"complete"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, proto := range []string{gqlws.TransportWS, gqlws.LegacyWS} {
			m, err := gqlws.Decode(proto, data)
			if err != nil {
				if !errors.Is(err, gqlws.ErrInvalidMessage) {
					t.Fatalf("Decode(%q) = %v, want ErrInvalidMessage", data, err)
				}
				continue
			}
			again, err := gqlws.Decode(proto, gqlws.Encode(m))
			if err != nil {
				t.Fatalf("round trip of %q: %v", data, err)
			}
			if again.ID != m.ID || again.Type != m.Type {
				t.Fatalf("round trip of %q: %+v != %+v", data, again, m)
			}
		}
	})
}
