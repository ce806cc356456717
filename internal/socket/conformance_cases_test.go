package socket_test

import (
	"fmt"
	"strings"
	"time"
)

// The documents the cases use. Subscription results are compared exactly, so the subscriptions
// select only fields a test knows in advance.
const (
	qAddedText   = `subscription { messageAdded(roomId: "r1") { text } }`
	qAddedAuthor = `subscription { messageAdded(roomId: "r1") { author } }`
	qAddedFull   = `subscription { messageAdded(roomId: "r1") { roomId author text } }`
	qMessages    = `{ messages(roomId: "r1") { author text } }`
	mHello       = `mutation { sendMessage(roomId: "r1", author: "ann", text: "hello") { id } }`
	mOverSocket  = `mutation { sendMessage(roomId: "r1", author: "bob", text: "over the socket") { author text } }`
	mEditMissing = `mutation { editMessage(roomId: "r1", id: "missing", text: "x") { id } }`
	mEmptyText   = `mutation { sendMessage(roomId: "r1", author: "ann", text: "") { id } }`
	qUnknownFld  = `{ nope }`
	qMissingVar  = `query ($r: ID!) { messages(roomId: $r) { text } }`

	pAddedText   = `{"data":{"messageAdded":{"text":"hello"}}}`
	pAddedAuthor = `{"data":{"messageAdded":{"author":"ann"}}}`
	pAddedFull   = `{"data":{"messageAdded":{"roomId":"r1","author":"ann","text":"hello"}}}`
	pMessages    = `{"data":{"messages":[{"author":"ann","text":"hello"}]}}`
	pOverSocket  = `{"data":{"sendMessage":{"author":"bob","text":"over the socket"}}}`
	pEditMissing = `{"errors":[{"message":"message \"missing\" not found in room \"r1\"","path":["editMessage"],"locations":[{"line":1,"column":12}],"extensions":{"code":"NOT_FOUND"}}],"data":null}`
	pEmptyText   = `{"errors":[{"message":"text must not be empty","path":["sendMessage"],"locations":[{"line":1,"column":12}],"extensions":{"code":"BAD_USER_INPUT"}}],"data":null}`
	eUnknownFld  = `{"message":"Cannot query field \"nope\" on type \"Query\".","locations":[{"line":1,"column":3}],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}`
	eMissingVar  = `{"message":"must be defined","path":["variable","r"],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}`
)

// ev is a subscription result payload as the fan-out sends it: with the identity of the event
// (the seq-th stream record of the case's store) in extensions.event.
func ev(payload string, seq int) string {
	return strings.TrimSuffix(payload, "}") + fmt.Sprintf(`,"extensions":{"event":{"id":"%032x","seq":"%d"}}}`, seq, seq)
}

func initAck() []step { return []step{send(frInit), expect(frAck)} }

// shortInit is the init timeout of the cases about it: short, yet long enough that a loaded
// machine handles a connection_init sent at once within it. pastInit is a wait beyond it.
const shortInit = time.Second
const pastInit = 1200 * time.Millisecond

var (
	maxID  = strings.Repeat("m", 128)
	longID = strings.Repeat("x", 129)
)

// transportCases covers FACTS.md §1 (graphql-transport-ws) with the README's decisions for the
// closes. Every close is 1000; the code is what the specification would send, and decides the
// strict-mode terminal frame.
func transportCases() []confCase {
	next := func(id, payload string) string { return frOp("next", id, payload) }
	errMsg := func(id, payload string) string { return frOp("error", id, payload) }
	done := frComplete
	return []confCase{
		// connection_init and connection_ack
		{name: "init is acknowledged, the ack without payload", steps: script(send(`{"type":"connection_init","payload":{}}`), expect(frAck), active())},
		{name: "init without payload", steps: script(send(frInit), expect(frAck))},
		{name: "init with null payload", steps: script(send(`{"type":"connection_init","payload":null}`), expect(frAck))},
		{name: "init with a non-object payload closes", steps: script(send(`{"type":"connection_init","payload":"token"}`),
			closed(4400, "payload of connection_init must be an object"))},
		{name: "second init closes", steps: script(initAck(), send(frInit), closed(4429, "Too many initialisation requests"))},
		{name: "init after the init timeout closes", initTimeout: shortInit, steps: script(wait(pastInit), send(frInit),
			closed(4408, "Connection initialisation timeout"))},
		{name: "ping after the init timeout closes", initTimeout: shortInit, steps: script(wait(pastInit), send(frPing),
			closed(4408, "Connection initialisation timeout"))},
		{name: "init timeout does not apply once acknowledged", initTimeout: shortInit, steps: script(initAck(), wait(pastInit),
			send(frPing), expect(frPong))},

		// ping and pong
		{name: "ping before init is answered", steps: script(send(frPing), expect(frPong), initAck())},
		{name: "ping payload is echoed", steps: script(send(`{"type":"ping","payload":{"n":1,"s":"x"}}`), expect(`{"type":"pong","payload":{"s":"x","n":1}}`),
			initAck(), send(`{"type":"ping","payload":{"after":"ack"}}`), expect(`{"type":"pong","payload":{"after":"ack"}}`))},
		{name: "ping with null payload", steps: script(send(`{"type":"ping","payload":null}`), expect(frPong))},
		{name: "ping with a non-object payload closes", steps: script(send(`{"type":"ping","payload":[1]}`),
			closed(4400, "payload of ping must be an object"))},
		{name: "unsolicited pong is ignored", steps: script(send(frPong), nothing(), send(`{"type":"pong","payload":{"x":1}}`), nothing(),
			initAck(), send(frPong), nothing(), send(frPing), expect(frPong))},

		// subscribe
		{name: "subscribe before init closes", steps: script(send(frSubscribe("s1", qAddedText)), closed(4401, "Unauthorized"))},
		{name: "query before init closes", steps: script(send(frSubscribe("q1", qMessages)), closed(4401, "Unauthorized"))},
		{name: "subscription is stored and receives next", steps: script(initAck(), send(frSubscribe("s1", qAddedFull)), nothing(),
			activeQuery("s1", "roomId author text"), mutate(mHello), expect(next("s1", ev(pAddedFull, 1))), mutate(mHello), expect(next("s1", ev(pAddedFull, 2))),
			active("s1"))},
		{name: "duplicate active id closes", steps: script(initAck(), send(frSubscribe("s1", qAddedText)), active("s1"),
			send(frSubscribe("s1", qAddedAuthor)), closed(4409, "Subscriber for s1 already exists"))},
		{name: "duplicate active id of 128 bytes closes", steps: script(initAck(), send(frSubscribe(maxID, qAddedText)), active(maxID),
			send(frSubscribe(maxID, qAddedText)), closed(4409, "Subscriber for "+maxID+" already exists"))},
		{name: "duplicate id of a query closes", steps: script(initAck(), send(frSubscribe("s1", qAddedText)), active("s1"),
			send(frSubscribe("s1", qMessages)), closed(4409, "Subscriber for s1 already exists"))},
		{name: "id is reused after complete", steps: script(initAck(), send(frSubscribe("s1", qAddedText)), activeQuery("s1", "text"),
			send(frComplete("s1")), nothing(), active(), send(frSubscribe("s1", qAddedAuthor)), nothing(), activeQuery("s1", "author"),
			mutate(mHello), expect(next("s1", ev(pAddedAuthor, 1))))},
		{name: "complete stops delivery", steps: script(initAck(), send(frSubscribe("s1", qAddedText)), send(frSubscribe("s2", qAddedAuthor)),
			active("s1", "s2"), send(frComplete("s1")), active("s2"), mutate(mHello), expect(next("s2", ev(pAddedAuthor, 1))))},
		{name: "complete of an unknown id is ignored", steps: script(initAck(), send(frComplete("nope")), nothing(), send(frPing), expect(frPong))},
		{name: "complete before init is ignored", steps: script(send(frComplete("nope")), nothing(), initAck())},
		{name: "complete of a finished query is ignored", steps: script(initAck(), send(frSubscribe("q1", qMessages)),
			expect(next("q1", `{"data":{"messages":[]}}`), done("q1")), send(frComplete("q1")), nothing(), send(frPing), expect(frPong))},
		{name: "query gets one next then complete", steps: script(mutate(mHello), initAck(), send(frSubscribe("q1", qMessages)),
			expect(next("q1", pMessages), done("q1")), active())},
		{name: "mutation gets one next then complete", steps: script(initAck(), send(frSubscribe("m1", mOverSocket)),
			expect(next("m1", pOverSocket), done("m1")), send(frSubscribe("q1", `{ messages(roomId: "r1") { text } }`)),
			expect(next("q1", `{"data":{"messages":[{"text":"over the socket"}]}}`), done("q1")))},
		{name: "query with operationName and variables", steps: script(mutate(mHello), initAck(),
			send(frame(map[string]any{"id": "q1", "type": "subscribe", "payload": map[string]any{
				"query":         `query A { x: messages(roomId: "nope") { text } } query B($r: ID!) { messages(roomId: $r) { author text } }`,
				"operationName": "B", "variables": map[string]any{"r": "r1"}, "extensions": map[string]any{"x": 1}}})),
			expect(next("q1", pMessages), done("q1")))},
		{name: "id is reused after a query completes", steps: script(initAck(), send(frSubscribe("q1", qMessages)),
			expect(next("q1", `{"data":{"messages":[]}}`), done("q1")), send(frSubscribe("q1", qMessages)),
			expect(next("q1", `{"data":{"messages":[]}}`), done("q1")))},
		{name: "validation error is an error with an array", steps: script(initAck(), send(frSubscribe("v1", qUnknownFld)),
			expect(errMsg("v1", "["+eUnknownFld+"]")), nothing(), active(),
			send(frSubscribe("v1", qMessages)), expect(next("v1", `{"data":{"messages":[]}}`), done("v1")))},
		{name: "missing variable is a validation error", steps: script(initAck(), send(frSubscribe("v1", qMissingVar)),
			expect(errMsg("v1", "["+eMissingVar+"]")), nothing())},
		{name: "subscription validation error", steps: script(initAck(), send(frSubscribe("v1", `subscription { messageAdded { text } }`)),
			expect(errMsg("v1", `[{"message":"Field \"messageAdded\" argument \"roomId\" of type \"ID!\" is required, but it was not provided.","locations":[{"line":1,"column":16}],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]`)),
			nothing(), active())},
		{name: "resolver error travels inside next", steps: script(initAck(), send(frSubscribe("e1", mEditMissing)),
			expect(next("e1", pEditMissing), done("e1")))},
		{name: "bad input travels inside next", steps: script(initAck(), send(frSubscribe("e1", mEmptyText)),
			expect(next("e1", pEmptyText), done("e1")))},

		// invalid messages
		{name: "invalid JSON closes", steps: script(send(`{"type":"connection_init"`), closed(4400, "message is not a JSON object"))},
		{name: "invalid JSON after ack closes", steps: script(initAck(), send(`{"type":`), closed(4400, "message is not a JSON object"))},
		{name: "non-JSON text frame closes", steps: script(send(`hello`), closed(4400, "message is not a JSON object"))},
		{name: "JSON array closes", steps: script(send(`[{"type":"connection_init"}]`), closed(4400, "message is not a JSON object"))},
		{name: "JSON string closes", steps: script(send(`"connection_init"`), closed(4400, "message is not a JSON object"))},
		{name: "JSON null closes", steps: script(send(`null`), closed(4400, "message is not a JSON object"))},
		{name: "message without type closes", steps: script(send(`{"payload":{}}`), closed(4400, "message has no string type"))},
		{name: "message with a non-string type closes", steps: script(send(`{"type":1}`), closed(4400, "message has no string type"))},
		{name: "unknown message type closes", steps: script(send(`{"type":"hello"}`), closed(4400, `unexpected message type "hello"`))},
		{name: "unknown message type after ack closes", steps: script(initAck(), send(`{"type":"hello"}`), closed(4400, `unexpected message type "hello"`))},
		{name: "server message type from the client closes", steps: script(initAck(), send(frOp("next", "s1", `{"data":{}}`)),
			closed(4400, `unexpected message type "next"`))},
		{name: "connection_ack from the client closes", steps: script(send(frAck), closed(4400, `unexpected message type "connection_ack"`))},
		{name: "legacy start closes", steps: script(initAck(), send(frStart("s1", qAddedText)), closed(4400, `unexpected message type "start"`))},
		{name: "binary frame closes", steps: script(sendBinary([]byte{0, 1, 2, 0xff}), closed(4400, "binary frames are not supported"))},
		{name: "binary frame with a valid message closes", steps: script(initAck(), sendBinary([]byte(frPing)), closed(4400, "binary frames are not supported"))},
		{name: "subscribe without id closes", steps: script(initAck(), send(`{"type":"subscribe","payload":{"query":"{ messages(roomId: \"r1\") { text } }"}}`),
			closed(4400, "subscribe needs a non-empty id"))},
		{name: "subscribe with empty id closes", steps: script(initAck(), send(frSubscribe("", qMessages)), closed(4400, "subscribe needs a non-empty id"))},
		{name: "subscribe with null id closes", steps: script(initAck(), send(`{"id":null,"type":"subscribe","payload":{"query":"{ __typename }"}}`),
			closed(4400, "subscribe needs a non-empty id"))},
		{name: "subscribe with a numeric id closes", steps: script(initAck(), send(`{"id":1,"type":"subscribe","payload":{"query":"{ __typename }"}}`),
			closed(4400, "id of subscribe is not a string"))},
		{name: "subscribe with an id over 128 bytes closes", steps: script(initAck(), send(frSubscribe(longID, qMessages)),
			closed(4400, "id longer than 128 bytes"))},
		{name: "complete without id closes", steps: script(initAck(), send(`{"type":"complete"}`), closed(4400, "complete needs a non-empty id"))},
		{name: "complete with empty id closes", steps: script(initAck(), send(frComplete("")), closed(4400, "complete needs a non-empty id"))},
		{name: "subscribe without payload closes", steps: script(initAck(), send(`{"id":"s1","type":"subscribe"}`),
			closed(4400, "payload must be an object with a query"))},
		{name: "subscribe without query closes", steps: script(initAck(), send(`{"id":"s1","type":"subscribe","payload":{"variables":{}}}`),
			closed(4400, "payload.query must be a string"))},
		{name: "subscribe with non-object variables closes", steps: script(initAck(),
			send(`{"id":"s1","type":"subscribe","payload":{"query":"{ __typename }","variables":[1]}}`),
			closed(4400, "payload.variables must be an object or null"))},
	}
}

// legacyCases covers FACTS.md §1 (legacy graphql-ws) with the README's decisions.
func legacyCases() []confCase {
	data := func(id, payload string) string { return frOp("data", id, payload) }
	errMsg := func(id, payload string) string { return frOp("error", id, payload) }
	connErr := func(msg string) string {
		return frame(map[string]any{"type": "connection_error", "payload": map[string]any{"message": msg}})
	}
	done := frComplete
	return []confCase{
		// connection_init and connection_ack
		{name: "init is acknowledged", steps: script(send(`{"type":"connection_init","payload":{}}`), expect(frAck), active())},
		{name: "init with connection params", steps: script(send(`{"type":"connection_init","payload":{"authToken":"t"}}`), expect(frAck))},
		{name: "init without payload", steps: script(send(frInit), expect(frAck))},
		{name: "init with a non-object payload is a connection_error", steps: script(send(`{"type":"connection_init","payload":"token"}`),
			expect(connErr("payload of connection_init must be an object")), initAck())},
		{name: "second init is acknowledged again", steps: script(initAck(), send(frInit), expect(frAck), send(frStart("q1", qMessages)),
			expect(data("q1", `{"data":{"messages":[]}}`), done("q1")))},
		{name: "init after the init timeout closes", initTimeout: shortInit, steps: script(wait(pastInit), send(frInit),
			closed(4408, "Connection initialisation timeout"))},
		{name: "start after the init timeout closes", initTimeout: shortInit, steps: script(wait(pastInit), send(frStart("s1", qAddedText)),
			closed(4408, "Connection initialisation timeout"))},
		{name: "init timeout does not apply once acknowledged", initTimeout: shortInit, steps: script(initAck(), wait(pastInit),
			send(frStart("q1", qMessages)), expect(data("q1", `{"data":{"messages":[]}}`), done("q1")))},

		// not legacy messages
		{name: "ping before init is a connection_error", steps: script(send(frPing), expect(connErr(`unexpected message type "ping"`)), initAck())},
		{name: "unsolicited pong is a connection_error", steps: script(initAck(), send(frPong), expect(connErr(`unexpected message type "pong"`)),
			send(frInit), expect(frAck))},

		// start
		// The start waits up to 3 s for an init; a long init timeout keeps the later init in time.
		{name: "start without init is refused", initTimeout: 10 * time.Second, steps: script(send(frStart("s1", qAddedText)),
			expect(errMsg("s1", `{"message":"connection_init must be sent before start"}`)), active(), initAck())},
		{name: "start right after init waits for the ack", steps: script(send(frInit), send(frStart("s1", qAddedFull)), expect(frAck),
			active("s1"), mutate(mHello), expect(data("s1", ev(pAddedFull, 1))))},
		{name: "query start right after init answers after the ack", steps: script(send(frInit), send(frStart("q1", qMessages)),
			expect(frAck, data("q1", `{"data":{"messages":[]}}`), done("q1")))},
		{name: "subscription is stored and receives data", steps: script(initAck(), send(frStart("s1", qAddedFull)), nothing(),
			activeQuery("s1", "roomId author text"), mutate(mHello), expect(data("s1", ev(pAddedFull, 1))), mutate(mHello), expect(data("s1", ev(pAddedFull, 2))))},
		{name: "start with a running id replaces it", steps: script(initAck(), send(frStart("s1", qAddedText)), activeQuery("s1", "{ text }"),
			send(frStart("s1", qAddedAuthor)), nothing(), activeQuery("s1", "{ author }"), mutate(mHello), expect(data("s1", ev(pAddedAuthor, 1))))},
		{name: "start with a running id replaces it by a query", steps: script(initAck(), send(frStart("s1", qAddedText)), active("s1"),
			send(frStart("s1", qMessages)), expect(data("s1", `{"data":{"messages":[]}}`), done("s1")), active(), mutate(mHello))},
		{name: "query gets data then complete", steps: script(mutate(mHello), initAck(), send(frStart("q1", qMessages)),
			expect(data("q1", pMessages), done("q1")), active())},
		{name: "mutation gets data then complete", steps: script(initAck(), send(frStart("m1", mOverSocket)),
			expect(data("m1", pOverSocket), done("m1")))},
		{name: "query with operationName and variables", steps: script(mutate(mHello), initAck(),
			send(frame(map[string]any{"id": "q1", "type": "start", "payload": map[string]any{
				"query":         `query A { x: messages(roomId: "nope") { text } } query B($r: ID!) { messages(roomId: $r) { author text } }`,
				"operationName": "B", "variables": map[string]any{"r": "r1"}}})),
			expect(data("q1", pMessages), done("q1")))},
		{name: "validation error is one error object", steps: script(initAck(), send(frStart("v1", qUnknownFld)),
			expect(errMsg("v1", eUnknownFld)), nothing(), active())},
		{name: "missing variable is a validation error", steps: script(initAck(), send(frStart("v1", qMissingVar)),
			expect(errMsg("v1", eMissingVar)), nothing())},
		{name: "resolver error travels inside data", steps: script(initAck(), send(frStart("e1", mEditMissing)),
			expect(data("e1", pEditMissing), done("e1")))},
		{name: "bad input travels inside data", steps: script(initAck(), send(frStart("e1", mEmptyText)),
			expect(data("e1", pEmptyText), done("e1")))},

		// stop
		{name: "stop completes an active subscription", steps: script(initAck(), send(frStart("s1", qAddedText)), send(frStart("s2", qAddedAuthor)),
			active("s1", "s2"), send(frStop("s1")), expect(done("s1")), active("s2"), mutate(mHello), expect(data("s2", ev(pAddedAuthor, 1))))},
		{name: "stop of an unknown id is ignored", steps: script(initAck(), send(frStop("nope")), nothing(), send(frInit), expect(frAck))},
		{name: "stop of a finished query is ignored", steps: script(initAck(), send(frStart("q1", qMessages)),
			expect(data("q1", `{"data":{"messages":[]}}`), done("q1")), send(frStop("q1")), nothing())},
		{name: "id is reused after stop", steps: script(initAck(), send(frStart("s1", qAddedText)), active("s1"), send(frStop("s1")),
			expect(done("s1")), send(frStart("s1", qAddedAuthor)), nothing(), activeQuery("s1", "author"), mutate(mHello), expect(data("s1", ev(pAddedAuthor, 1))))},

		// invalid messages: connection_error, the connection stays open
		{name: "invalid JSON is a connection_error", steps: script(send(`{"type":"connection_init"`), expect(connErr("message is not a JSON object")),
			initAck())},
		{name: "non-JSON text frame is a connection_error", steps: script(initAck(), send(`hello`), expect(connErr("message is not a JSON object")),
			send(frInit), expect(frAck))},
		{name: "JSON array is a connection_error", steps: script(send(`[1]`), expect(connErr("message is not a JSON object")), initAck())},
		{name: "message without type is a connection_error", steps: script(send(`{"id":"1"}`), expect(connErr("message has no string type")), initAck())},
		{name: "unknown message type is a connection_error", steps: script(initAck(), send(`{"type":"hello"}`),
			expect(connErr(`unexpected message type "hello"`)), send(frInit), expect(frAck))},
		{name: "graphql-transport-ws subscribe is a connection_error", steps: script(initAck(), send(frSubscribe("s1", qAddedText)),
			expect(connErr(`unexpected message type "subscribe"`)), active())},
		{name: "client complete is a connection_error", steps: script(initAck(), send(frComplete("s1")),
			expect(connErr(`unexpected message type "complete"`)))},
		{name: "binary garbage is a connection_error", steps: script(initAck(), sendBinary([]byte{0, 1, 2, 0xff}),
			expect(connErr("message is not a JSON object")), send(frInit), expect(frAck))},
		{name: "binary frame with a valid message is read as text", steps: script(initAck(), sendBinary([]byte(frStart("q1", qMessages))),
			expect(data("q1", `{"data":{"messages":[]}}`), done("q1")))},
		{name: "start without id is a connection_error", steps: script(initAck(), send(`{"type":"start","payload":{"query":"{ __typename }"}}`),
			expect(connErr("start needs a non-empty id")), active())},
		{name: "start with empty id is a connection_error", steps: script(initAck(), send(frStart("", qMessages)),
			expect(connErr("start needs a non-empty id")), active())},
		{name: "start with an id over 128 bytes is a connection_error", steps: script(initAck(), send(frStart(longID, qMessages)),
			expect(connErr("id longer than 128 bytes")), active())},
		{name: "stop without id is a connection_error", steps: script(initAck(), send(`{"type":"stop"}`), expect(connErr("stop needs a non-empty id")))},
		{name: "start without query is a connection_error", steps: script(initAck(), send(`{"id":"s1","type":"start","payload":{}}`),
			expect(connErr("payload.query must be a string")), active())},
		{name: "start without payload is a connection_error", steps: script(initAck(), send(`{"id":"s1","type":"start"}`),
			expect(connErr("payload must be an object with a query")), active())},

		// connection_terminate
		{name: "connection_terminate closes", steps: script(initAck(), send(frStart("s1", qAddedText)), active("s1"),
			send(`{"type":"connection_terminate"}`), closed(0, ""))},
		{name: "connection_terminate before init closes", steps: script(send(`{"type":"connection_terminate"}`), closed(0, ""))},
	}
}
