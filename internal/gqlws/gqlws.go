// Package gqlws encodes and decodes the messages of the two GraphQL over WebSocket subprotocols, graphql-transport-ws and legacy graphql-ws.
//
// It is a pure codec: it knows the message shapes each subprotocol allows from a client and how
// to frame what the server sends; what to do with a message is the caller's business. Besides the
// standard library it reads only the limit on operation ids, from internal/facts.
package gqlws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/realtime-gql/lambdaws/internal/facts"
)

// Subprotocol names, as offered in Sec-WebSocket-Protocol.
const (
	// TransportWS is graphql-transport-ws (the graphql-ws npm library).
	TransportWS = "graphql-transport-ws"
	// LegacyWS is graphql-ws (the legacy subscriptions-transport-ws library).
	LegacyWS = "graphql-ws"
)

// Message types of both subprotocols.
const (
	ConnectionInit = "connection_init"
	ConnectionAck  = "connection_ack"
	Ping           = "ping"      // graphql-transport-ws
	Pong           = "pong"      // graphql-transport-ws
	Subscribe      = "subscribe" // graphql-transport-ws
	Next           = "next"      // graphql-transport-ws
	Error          = "error"
	Complete       = "complete"

	ConnectionError     = "connection_error"     // legacy
	ConnectionTerminate = "connection_terminate" // legacy
	KeepAlive           = "ka"                   // legacy
	Start               = "start"                // legacy
	Data                = "data"                 // legacy
	Stop                = "stop"                 // legacy
)

// A Message is one frame of either subprotocol.
type Message struct {
	// ID is the operation id; empty for connection-level messages.
	ID string
	// Type is the message type.
	Type string
	// Payload is the raw JSON payload; nil when absent. A JSON null payload decodes as nil.
	Payload json.RawMessage
	// Request is the GraphQL request of a subscribe or start, decoded from Payload by Decode;
	// Encode ignores it.
	Request Request
}

// ErrInvalidMessage reports a frame that is not a valid client message of the subprotocol. The
// error text says what is wrong and is safe to show the client.
var ErrInvalidMessage = errors.New("gqlws: invalid message")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMessage, fmt.Sprintf(format, args...))
}

// Negotiate picks the subprotocol to speak from a Sec-WebSocket-Protocol header value (a
// comma-separated list, possibly with spaces), preferring graphql-transport-ws. ok is false when
// neither is offered.
func Negotiate(header string) (proto string, ok bool) {
	var legacy bool
	for p := range strings.SplitSeq(header, ",") {
		switch strings.TrimSpace(p) {
		case TransportWS:
			return TransportWS, true
		case LegacyWS:
			legacy = true
		}
	}
	if legacy {
		return LegacyWS, true
	}
	return "", false
}

// clientTypes lists, per subprotocol, the types a client may send and whether each carries an id.
var clientTypes = map[string]map[string]bool{
	TransportWS: {ConnectionInit: false, Ping: false, Pong: false, Subscribe: true, Complete: true},
	LegacyWS:    {ConnectionInit: false, Start: true, Stop: true, ConnectionTerminate: false},
}

// Decode parses one client frame of subprotocol proto and checks its shape: a JSON object with a
// string type the subprotocol lets a client send, a non-empty string id where the type needs one,
// and a payload of the right kind (an object for init, ping, pong; a request for subscribe and
// start, decoded into Request). Every failure wraps ErrInvalidMessage.
func Decode(proto string, data []byte) (Message, error) {
	types, ok := clientTypes[proto]
	if !ok {
		return Message{}, invalid("unknown subprotocol %q", proto)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return Message{}, invalid("message is not a JSON object")
	}
	var m Message
	rawType, ok := fields["type"]
	if !ok || json.Unmarshal(rawType, &m.Type) != nil {
		return Message{}, invalid("message has no string type")
	}
	needsID, ok := types[m.Type]
	if !ok {
		return Message{}, invalid("unexpected message type %q", m.Type)
	}
	if rawID, ok := fields["id"]; ok && !isNull(rawID) {
		if err := json.Unmarshal(rawID, &m.ID); err != nil {
			return Message{}, invalid("id of %s is not a string", m.Type)
		}
	}
	if needsID && m.ID == "" {
		return Message{}, invalid("%s needs a non-empty id", m.Type)
	}
	if len(m.ID) > facts.MaxOperationID {
		return Message{}, invalid("id longer than %d bytes", facts.MaxOperationID)
	}
	if p, ok := fields["payload"]; ok && !isNull(p) {
		m.Payload = p
	}
	switch m.Type {
	case ConnectionInit, Ping, Pong:
		if m.Payload != nil && !isObject(m.Payload) {
			return Message{}, invalid("payload of %s must be an object", m.Type)
		}
	case Subscribe, Start:
		req, err := DecodeRequest(m.Payload)
		if err != nil {
			return Message{}, err
		}
		m.Request = req
	}
	return m, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// A Request is the GraphQL request carried by subscribe and start.
type Request struct {
	Query         string
	OperationName string
	// Variables is the raw variables object; nil when absent or null.
	Variables json.RawMessage
	// Extensions is the raw extensions object; nil when absent or null.
	Extensions json.RawMessage
}

// DecodeRequest parses the payload of subscribe or start.
func DecodeRequest(payload json.RawMessage) (Request, error) {
	var fields map[string]json.RawMessage
	if payload == nil || json.Unmarshal(payload, &fields) != nil || fields == nil {
		return Request{}, invalid("payload must be an object with a query")
	}
	var r Request
	if q, ok := fields["query"]; !ok || json.Unmarshal(q, &r.Query) != nil {
		return Request{}, invalid("payload.query must be a string")
	}
	if op, ok := fields["operationName"]; ok && !isNull(op) {
		if json.Unmarshal(op, &r.OperationName) != nil {
			return Request{}, invalid("payload.operationName must be a string or null")
		}
	}
	for name, dst := range map[string]*json.RawMessage{"variables": &r.Variables, "extensions": &r.Extensions} {
		if v, ok := fields[name]; ok && !isNull(v) {
			if !isObject(v) {
				return Request{}, invalid("payload.%s must be an object or null", name)
			}
			*dst = v
		}
	}
	return r, nil
}

// Encode frames a message: {"id":…,"type":…,"payload":…}, omitting an empty id or payload.
func Encode(m Message) []byte {
	return Append(make([]byte, 0, 32+len(m.ID)+len(m.Payload)), m.Type, m.ID, m.Payload)
}

// Append appends the frame of a message to b; the fan-out uses it to frame one rendered payload
// for many subscribers without copying the payload through an encoder.
func Append(b []byte, typ, id string, payload json.RawMessage) []byte {
	b = append(b, '{')
	if id != "" {
		b = append(b, `"id":`...)
		b = appendString(b, id)
		b = append(b, ',')
	}
	b = append(b, `"type":`...)
	b = appendString(b, typ)
	if len(payload) > 0 {
		b = append(b, `,"payload":`...)
		b = append(b, payload...)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s) // rare: escapes, and invalid UTF-8 replaced
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ResultType is the type of the message that carries an execution result: next or data.
func ResultType(proto string) string {
	if proto == LegacyWS {
		return Data
	}
	return Next
}
