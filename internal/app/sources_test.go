package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/wstest"
)

// collect reads n result messages of type typ and returns their payloads by operation id.
func collect(t *testing.T, c *wstest.Client, typ string, n int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for range n {
		m := c.Next(10 * time.Second)
		if m.Type != typ {
			t.Fatalf("got %s, want a %s message", m, typ)
		}
		if _, dup := out[m.ID]; dup {
			t.Fatalf("two results for %s: %s", m.ID, m)
		}
		out[m.ID] = payload(t, m)
	}
	return out
}

func ids(m map[string]string) string {
	var out []string
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// invoke posts an event to the local runtime's invoke endpoint and returns its answer.
func invoke(t *testing.T, addr, event string) string {
	t.Helper()
	resp, err := http.Post("http://"+addr+facts.InvokePath, "application/json", strings.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke answered %d: %s", resp.StatusCode, b)
	}
	return string(b)
}

// cloudEvent is a CloudEvent in structured JSON mode, as a JSON string (an SQS body, an SNS message).
func cloudEvent(id string, data any) string {
	ce, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": "com.example.chat", "type": "chat.announcement",
		"time": "2026-11-26T14:13:00Z", "datacontenttype": "application/json", "data": data})
	s, _ := json.Marshal(string(ce))
	return string(s)
}

// TestScenarioSources runs each source of events through the local runtime, with clients of both
// subprotocols subscribed with and without filters in two rooms: a data-table change (a mutation,
// through the stream poller, and a stream record posted to the invoke endpoint), and the same
// announcement as an EventBridge event, in an SQS batch (beside a malformed message, which is
// reported) and as an SNS notification, each posted to the invoke endpoint exactly as AWS sends
// it. Each is delivered to exactly the subscribers it matches, with its identity in
// extensions.event; invalid filters are refused at subscribe in both subprotocols.
func TestScenarioSources(t *testing.T) {
	d := apptest.Start(t, app.Config{})
	url := "ws://" + d.Addr + "/graphql"

	a := wstest.Dial(t, url, "graphql-transport-ws")
	a.Send(map[string]any{"type": "connection_init"})
	a.Expect("connection_ack", "")
	for id, q := range map[string]string{
		"a1": `subscription { announcement(roomId: "r1") { text priority } }`,
		"a2": `subscription { announcement(roomId: "r1", filter: {priority: {ge: 5}}) { id } }`,
		"a3": `subscription { announcement(roomId: "r1", filter: {or: [{priority: {gt: 5}}, {text: {beginsWith: "URGENT"}}]}) { id } }`,
		"a4": `subscription { announcement(roomId: "r2") { id } }`,
		"a5": `subscription { messageAdded(roomId: "r1", filter: {author: {eq: "ann"}}) { author text } }`,
	} {
		a.Send(subscribe(id, q))
	}
	b := wstest.Dial(t, url, "graphql-ws")
	b.Send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
	b.Expect("connection_ack", "")
	for id, q := range map[string]string{
		"b1": `subscription { announcement(roomId: "r1", filter: {text: {contains: "closing"}}) { text at } }`,
		"b2": `subscription { messageAdded(roomId: "r1", filter: {author: {eq: "bob"}}) { text } }`,
		"b3": `subscription($f: MessageFilter) { messageAdded(roomId: "r1", filter: $f) { author } }`,
	} {
		msg := start(id, q)
		if id == "b3" {
			msg["payload"].(map[string]any)["variables"] = map[string]any{"f": map[string]any{"not": map[string]any{"author": map[string]any{"in": []string{"bob", "eve"}}}}}
		}
		b.Send(msg)
	}

	// Invalid filters are refused at subscribe, in both subprotocols, with BAD_USER_INPUT.
	a.Send(subscribe("bad", `subscription { announcement(roomId: "r1", filter: {priority: {between: [9]}}) { id } }`))
	if m := a.Expect("error", "bad"); !strings.Contains(string(m.Payload), `"code":"BAD_USER_INPUT"`) || !strings.Contains(string(m.Payload), "between") {
		t.Fatalf("invalid filter: %s", m)
	}
	b.Send(start("bad", `subscription { announcement(roomId: "r1", filter: {text: {contains: "`+strings.Repeat("x", 1025)+`"}}) { id } }`))
	if m := b.Expect("error", "bad"); !strings.HasPrefix(string(m.Payload), "{") || !strings.Contains(string(m.Payload), `"code":"BAD_USER_INPUT"`) {
		t.Fatalf("filter over a bound, legacy: %s", m)
	}
	for topic, n := range map[string]int{"announcement?roomId=r1": 4, "announcement?roomId=r2": 1, "messageAdded?roomId=r1": 3} {
		apptest.WaitSubscribers(t, d.Store, topic, n)
	}

	// A data-table change: a message by ann, written by a mutation, read from the stream.
	apptest.GraphQL(t, d.Addr, `mutation { sendMessage(roomId: "r1", author: "ann", text: "hello") { id } }`, nil)
	if got := collect(t, a, "next", 1); got["a5"] != withEvent(`{"data":{"messageAdded":{"author":"ann","text":"hello"}}}`, 1) {
		t.Fatalf("A: %v", got)
	}
	if got := collect(t, b, "data", 1); got["b3"] != withEvent(`{"data":{"messageAdded":{"author":"ann"}}}`, 1) {
		t.Fatalf("B: %v", got)
	}
	// The same kind of change as a stream record posted to the invoke endpoint: bob's message.
	rec := `{"Records":[{"eventID":"6f4922f45568161a8cdf4ad2299f6d23","eventName":"INSERT","eventVersion":"1.1","eventSource":"aws:dynamodb",` +
		`"awsRegion":"us-east-1","dynamodb":{"ApproximateCreationDateTime":1795702440,"Keys":{"pk":{"S":"room#r1"},"sk":{"S":"msg#01JBQZ9K2M3N4P5Q6R7S8T9V0W"}},` +
		`"NewImage":{"pk":{"S":"room#r1"},"sk":{"S":"msg#01JBQZ9K2M3N4P5Q6R7S8T9V0W"},"__typename":{"S":"Message"},"id":{"S":"01JBQZ9K2M3N4P5Q6R7S8T9V0W"},` +
		`"roomId":{"S":"r1"},"author":{"S":"bob"},"text":{"S":"hi all"},"createdAt":{"S":"2026-11-26T14:14:00Z"}},` +
		`"SequenceNumber":"4421584600000000017450439299","SizeBytes":190,"StreamViewType":"NEW_AND_OLD_IMAGES"},` +
		`"eventSourceARN":"arn:aws:dynamodb:us-east-1:123456789012:table/lambdaws-prod-data/stream/2026-11-26T00:00:00.000"}]}`
	if answer := invoke(t, d.Addr, rec); answer != `{"batchItemFailures":[]}` {
		t.Fatalf("stream record: %s", answer)
	}
	if got := collect(t, b, "data", 1); got["b2"] != `{"data":{"messageAdded":{"text":"hi all"}},"extensions":{"event":{"id":"6f4922f45568161a8cdf4ad2299f6d23","seq":"4421584600000000017450439299"}}}` {
		t.Fatalf("B: %v", got)
	}

	ann := map[string]any{"id": "a1", "roomId": "r1", "text": "closing in 10 minutes", "priority": 5, "at": "2026-11-26T14:13:00Z"}
	annJSON, _ := json.Marshal(ann)
	r2JSON := strings.Replace(string(annJSON), `"r1"`, `"r2"`, 1)
	// expect checks that exactly a1, a2 (A) and b1 (B) got the announcement as event id, then
	// that a4 got the room r2 one if r2 is set.
	expect := func(source, id string, r2 bool) {
		t.Helper()
		ext := fmt.Sprintf(`,"extensions":{"event":{"id":%q}}}`, id)
		n := 2
		if r2 {
			n = 3
		}
		got := collect(t, a, "next", n)
		want := map[string]string{
			"a1": `{"data":{"announcement":{"text":"closing in 10 minutes","priority":5}}` + ext,
			"a2": `{"data":{"announcement":{"id":"a1"}}` + ext,
		}
		if r2 {
			want["a4"] = `{"data":{"announcement":{"id":"a1"}}` + ext
		}
		if ids(got) != ids(want) || got["a1"] != want["a1"] || got["a2"] != want["a2"] || got["a4"] != want["a4"] {
			t.Fatalf("%s: A got %v\nwant %v", source, got, want)
		}
		if got := collect(t, b, "data", 1); got["b1"] != `{"data":{"announcement":{"text":"closing in 10 minutes","at":"2026-11-26T14:13:00Z"}}`+ext {
			t.Fatalf("%s: B got %v", source, got)
		}
		a.ExpectNone(50 * time.Millisecond)
		b.ExpectNone(10 * time.Millisecond)
	}

	// EventBridge: one event per invoke.
	eb := `{"version":"0","id":"3f1c5a77-95d2-4c47-9d5e-0b1e6d3c2a10","detail-type":"chat.announcement","source":"com.example.chat",` +
		`"account":"123456789012","time":"2026-11-26T14:13:00Z","region":"us-east-1","resources":[],"detail":` + string(annJSON) + `}`
	if answer := invoke(t, d.Addr, eb); answer != `{}` {
		t.Fatalf("eventbridge: %s", answer)
	}
	expect("eventbridge", "3f1c5a77-95d2-4c47-9d5e-0b1e6d3c2a10", false)

	// SQS: a batch of CloudEvents, one malformed (reported by its id), one for room r2.
	sqsMsg := func(id, body string) string {
		return `{"messageId":"` + id + `","receiptHandle":"AQEB` + id + `","body":` + body + `,"attributes":{"ApproximateReceiveCount":"1",` +
			`"SentTimestamp":"1795702380000","SenderId":"AROAEXAMPLE","ApproximateFirstReceiveTimestamp":"1795702380010"},"messageAttributes":{},` +
			`"md5OfBody":"0123456789abcdef0123456789abcdef","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-1:123456789012:lambdaws-prod-events","awsRegion":"us-east-1"}`
	}
	var r2 map[string]any
	json.Unmarshal([]byte(r2JSON), &r2)
	batch := `{"Records":[` + sqsMsg("m-1", cloudEvent("ce-1", ann)) + `,` + sqsMsg("m-bad", `"{\"type\":\"chat.announcement\"}"`) + `,` +
		sqsMsg("m-2", cloudEvent("ce-2", r2)) + `]}`
	if answer := invoke(t, d.Addr, batch); answer != `{"batchItemFailures":[{"itemIdentifier":"m-bad"}]}` {
		t.Fatalf("sqs: %s", answer)
	}
	// ce-1 reaches a1, a2, b1; ce-2 reaches a4 (its id differs: checked apart).
	got := collect(t, a, "next", 3)
	ext := `,"extensions":{"event":{"id":"com.example.chat ce-1"}}}`
	if ids(got) != "a1,a2,a4" || got["a1"] != `{"data":{"announcement":{"text":"closing in 10 minutes","priority":5}}`+ext ||
		got["a2"] != `{"data":{"announcement":{"id":"a1"}}`+ext || got["a4"] != `{"data":{"announcement":{"id":"a1"}},"extensions":{"event":{"id":"com.example.chat ce-2"}}}` {
		t.Fatalf("sqs: A got %v", got)
	}
	if got := collect(t, b, "data", 1); got["b1"] != `{"data":{"announcement":{"text":"closing in 10 minutes","at":"2026-11-26T14:13:00Z"}}`+ext {
		t.Fatalf("sqs: B got %v", got)
	}

	// SNS: one notification per invoke.
	sns := `{"Records":[{"EventSource":"aws:sns","EventVersion":"1.0","EventSubscriptionArn":"arn:aws:sns:us-east-1:123456789012:lambdaws-prod-events:2bcf",` +
		`"Sns":{"Type":"Notification","MessageId":"b7a3f3c1-0d44-5c1f-9e0e-d3e2c1b0a9f8","TopicArn":"arn:aws:sns:us-east-1:123456789012:lambdaws-prod-events",` +
		`"Subject":null,"Message":` + cloudEvent("ce-3", ann) + `,"Timestamp":"2026-11-26T14:13:00.000Z","SignatureVersion":"1","Signature":"EXAMPLE",` +
		`"SigningCertUrl":"https://sns.us-east-1.amazonaws.com/x.pem","UnsubscribeUrl":"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe","MessageAttributes":{}}}]}`
	if answer := invoke(t, d.Addr, sns); answer != `{}` {
		t.Fatalf("sns: %s", answer)
	}
	expect("sns", "com.example.chat ce-3", false)

	// A malformed EventBridge event: skipped (logged once), the invocation succeeds, nobody gets it.
	if answer := invoke(t, d.Addr, strings.Replace(eb, `"detail":{`, `"detail":{"nothing":{},"x":{`, 1)+`}`); answer != `{}` {
		t.Fatalf("malformed eventbridge: %s", answer)
	}
	// A payload that is no Lambda event at all is a function error, in the emulator's shape.
	if answer := invoke(t, d.Addr, `{"hello":"world"}`); answer != `{"errorMessage":"router: unrecognised payload","errorType":"errorString"}` {
		t.Fatalf("unknown payload: %s", answer)
	}
	a.ExpectNone(100 * time.Millisecond)
	b.ExpectNone(10 * time.Millisecond)
}
