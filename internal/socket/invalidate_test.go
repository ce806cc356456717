package socket_test

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/realtime-gql/lambdaws/internal/auth/authtest"
)

// TestInvalidation: a lambdaws.invalidate event ends subscriptions from the server, over both
// subprotocols, at router level and through the local runtime (where an EventBridge event is
// invoked as a rule would, and an SQS batch or SNS notification through the invoke endpoint),
// arriving from each source in turn: by topic (any holder), by subject (every subscription of the
// principal's connections, of one topic if named), and with close, the connections too. Each
// ended subscription gets complete, receives nothing more, and its id is free again.
func TestInvalidation(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t)
	ann := iss.Token(jwt.MapClaims{"name": "ann"}) // subject authtest.Sub
	bob := iss.Token(jwt.MapClaims{"sub": "bob"})
	const qR2 = `subscription { messageAdded(roomId: "r2") { author } }`
	for _, proto := range []string{protoTransport, protoLegacy} {
		subscribe, result := frSubscribe, "next"
		if proto == protoLegacy {
			subscribe, result = frStart, "data"
		}
		cases := []confCase{
			{name: "by topic", steps: script(send(frInitToken(ann)), expect(frAck),
				send(subscribe("s1", qAddedAuthor)), send(subscribe("s2", qR2)), active("s1", "s2"),
				invalidateEvent(`{"topic":"messageAdded?roomId=r1"}`), expect(frComplete("s1")), active("s2"),
				mutateAs(ann, mAsCaller), nothing(), // r1: nobody left
				mutateAs(ann, `mutation { sendMessage(roomId: "r2", text: "x") { id } }`), expect(frOp(result, "s2", ev(pAddedAuthor, 2))),
				send(subscribe("s1", qAddedAuthor)), active("s1", "s2"))}, // the id is free again
			{name: "by topic, another subject's", steps: script(send(frInitToken(ann)), expect(frAck),
				send(subscribe("s1", qAddedAuthor)), active("s1"),
				invalidateVia(viaSQS, `{"subject":"bob","topic":"messageAdded?roomId=r1"}`), nothing(), active("s1"),
				mutateAs(bob, mAsCaller), expect(frOp(result, "s1", ev(`{"data":{"messageAdded":{"author":"bob"}}}`, 1))))},
			{name: "by subject", steps: script(send(frInitToken(ann)), expect(frAck),
				send(subscribe("s1", qAddedAuthor)), send(subscribe("s2", qR2)), active("s1", "s2"),
				invalidateVia(viaSNS, `{"subject":"`+authtest.Sub+`"}`), expect(frComplete("s1"), frComplete("s2")), active(),
				mutateAs(ann, mAsCaller), nothing())},
			{name: "by subject and topic", steps: script(send(frInitToken(ann)), expect(frAck),
				send(subscribe("s1", qAddedAuthor)), send(subscribe("s2", qR2)), active("s1", "s2"),
				invalidateVia(viaSQS, `{"subject":"`+authtest.Sub+`","topic":"messageAdded?roomId=r2"}`), expect(frComplete("s2")), active("s1"))},
			{name: "by subject, closing", steps: script(send(frInitToken(ann)), expect(frAck),
				send(subscribe("s1", qAddedAuthor)), active("s1"),
				invalidateVia(viaSNS, `{"subject":"`+authtest.Sub+`","close":true}`), expect(frComplete("s1")), closed(0, ""))},
		}
		for i := range cases {
			cases[i].verifier = v
		}
		t.Run(proto, func(t *testing.T) { runTable(t, proto, cases) })
	}
}
