package socket_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/graph"
)

// TestDocumentLimits: every limit on a document (GRAPHQL_MAX_TOKENS, _SELECTIONS, _DEPTH,
// _COMPLEXITY) lets a socket operation at its bound through and refuses one just over it with an
// error for that operation (the limit's code), the connection going on; a subscription over a
// bound is refused at subscribe and stores nothing. Both subprotocols, at router level and
// through the local runtime.
func TestDocumentLimits(t *testing.T) {
	typenames := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, " a%d: __typename", i)
		}
		b.WriteString(" }")
		return b.String()
	}
	typenamesData := func(n int) string {
		var parts []string
		for i := range n {
			parts = append(parts, fmt.Sprintf(`"a%d":"Query"`, i))
		}
		return `{"data":{` + strings.Join(parts, ",") + `}}`
	}
	limitErr := func(code, msg string) string {
		return fmt.Sprintf(`{"message":%q,"extensions":{"code":%q}}`, msg, code)
	}
	const selectionsMsg = "the document selects more than 5 fields and fragments (the limit; aliases count, and a fragment counts wherever it is spread)"
	type limitCase struct {
		name     string
		limits   graph.Limits
		at, over string
		atResult string // the result of the document at the bound
		err      string // the error of the document over it
	}
	limitCases := []limitCase{
		// "{", n fields and "}": n+2 tokens.
		{name: "tokens", limits: graph.Limits{MaxTokens: 20},
			at: "{" + strings.Repeat(" __typename", 18) + " }", over: "{" + strings.Repeat(" __typename", 19) + " }",
			atResult: `{"data":{"__typename":"Query"}}`,
			err:      limitErr(graph.CodeTooManyTokens, "the document has more than 20 tokens (the limit)")},
		{name: "selections", limits: graph.Limits{MaxSelections: 5}, at: typenames(5), over: typenames(6),
			atResult: typenamesData(5), err: limitErr(graph.CodeTooManySelections, selectionsMsg)},
		{name: "depth", limits: graph.Limits{MaxDepth: 1}, at: `{ __typename }`, over: `{ messages(roomId: "r1") { text } }`,
			atResult: `{"data":{"__typename":"Query"}}`,
			err:      limitErr(graph.CodeTooDeep, "the document nests selections deeper than 1 levels (the limit)")},
		// messages(last: 5) { id text } costs 1 + 5×(1+4) = 26; __typename 1 more.
		{name: "complexity", limits: graph.Limits{MaxComplexity: 26},
			at: `{ messages(roomId: "r1", last: 5) { id text } }`, over: `{ messages(roomId: "r1", last: 5) { id text } __typename }`,
			atResult: `{"data":{"messages":[]}}`,
			err:      limitErr(graph.CodeTooComplex, "operation has complexity 27, which exceeds the limit of 26")},
	}
	for _, proto := range []string{protoTransport, protoLegacy} {
		subscribe, result := frSubscribe, "next"
		errFrame := func(id, errJSON string) string { return frOp("error", id, "["+errJSON+"]") }
		if proto == protoLegacy {
			subscribe, result = frStart, "data"
			errFrame = func(id, errJSON string) string { return frOp("error", id, errJSON) }
		}
		var cases []confCase
		for _, lc := range limitCases {
			cases = append(cases, confCase{name: lc.name, limits: lc.limits, steps: script(initAck(),
				send(subscribe("at", lc.at)), expect(frOp(result, "at", lc.atResult), frComplete("at")),
				send(subscribe("over", lc.over)), expect(errFrame("over", lc.err)),
				send(subscribe("again", lc.at)), expect(frOp(result, "again", lc.atResult), frComplete("again")))})
		}
		// A subscription: five fields are stored, six are refused.
		cases = append(cases, confCase{name: "selections of a subscription", limits: graph.Limits{MaxSelections: 5}, steps: script(initAck(),
			send(subscribe("s1", `subscription { messageAdded(roomId: "r1") { a: text b: text c: text d: text } }`)), active("s1"),
			send(subscribe("s2", `subscription { messageAdded(roomId: "r1") { a: text b: text c: text d: text e: text } }`)),
			expect(errFrame("s2", limitErr(graph.CodeTooManySelections, selectionsMsg))), active("s1"))})
		t.Run(proto, func(t *testing.T) { runTable(t, proto, cases) })
	}
}
