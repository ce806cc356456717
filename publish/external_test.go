package publish_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/internal/testlog"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/publish/source"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/rs/zerolog"
)

const (
	annR1      = "announcement?roomId=r1"
	annText    = `subscription { announcement(roomId: "r1") { text priority } }`
	annPayload = `{"id":"a1","roomId":"r1","text":"closing soon","priority":5,"at":"2026-11-26T12:00:00Z"}`
)

// cloudEvent is a CloudEvents 1.0 message body in structured JSON mode.
func cloudEvent(id, typ, data string) string {
	return `{"specversion":"1.0","id":"` + id + `","source":"com.example.chat","type":"` + typ +
		`","time":"2026-11-26T12:00:00Z","datacontenttype":"application/json","data":` + data + `}`
}

func ebEvent(id, typ, detail string) events.EventBridgeEvent {
	return events.EventBridgeEvent{Version: "0", ID: id, DetailType: typ, Source: "com.example.chat", AccountID: "123456789012",
		Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Region: "us-east-1", Resources: []string{}, Detail: json.RawMessage(detail)}
}

func sqsMessage(id, body string) events.SQSMessage {
	return events.SQSMessage{MessageId: id, ReceiptHandle: "rh-" + id, Body: body, EventSource: "aws:sqs",
		EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:lambdaws-prod-events", AWSRegion: "us-east-1",
		Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
}

func snsEvent(id, message string) events.SNSEvent {
	return events.SNSEvent{Records: []events.SNSEventRecord{{EventSource: "aws:sns", EventVersion: "1.0",
		EventSubscriptionArn: "arn:aws:sns:us-east-1:123456789012:lambdaws-prod-events:1b2c",
		SNS: events.SNSEntity{Type: "Notification", MessageID: id, TopicArn: "arn:aws:sns:us-east-1:123456789012:lambdaws-prod-events",
			Message: message, Timestamp: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}}}}
}

// recordingInvalidator records the invalidation events it gets, and fails when told to.
type recordingInvalidator struct {
	mu   sync.Mutex
	got  []engine.Change
	fail error
}

func (r *recordingInvalidator) Invalidate(ctx context.Context, ch engine.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, ch)
	return r.fail
}

type externalFixture struct {
	reg    *fakeRegistry
	poster *mgmttest.Gateway
	inv    *recordingInvalidator
	f      *publish.Fanout
	logs   *testlog.Buffer
	ctx    context.Context
}

// newExternal subscribes, to room r1's announcements: c1 (graphql-transport-ws, no filter), c2
// (legacy, priority >= 5), c3 (priority > 5, so never for the fixture's announcement); and c4 to
// room r2's.
func newExternal(t *testing.T) *externalFixture {
	t.Helper()
	ann := func(conn, proto, flt string) store.Subscription {
		q := `subscription { announcement(roomId: "r1", filter: ` + flt + `) { text priority } }`
		s := sub(conn, "1", proto, q)
		op, errs := exec.Prepare(context.Background(), graphRequest(s))
		if errs != nil {
			t.Fatal(errs)
		}
		s.Filter = op.Filter
		return s
	}
	x := &externalFixture{
		reg: &fakeRegistry{subs: map[string][]store.Subscription{
			annR1:                    {sub("c1", "1", gqlws.TransportWS, annText), ann("c2", gqlws.LegacyWS, `{priority: {ge: 5}}`), ann("c3", gqlws.TransportWS, `{priority: {gt: 5}}`)},
			"announcement?roomId=r2": {sub("c4", "1", gqlws.TransportWS, `subscription { announcement(roomId: "r2") { text } }`)},
		}},
		poster: mgmttest.New(),
		inv:    &recordingInvalidator{},
		logs:   &testlog.Buffer{},
	}
	x.f = publish.New(publish.Config{Registry: x.reg, Sources: exec, Renderer: newRenderer(), Gateway: x.poster, Invalidator: x.inv})
	x.ctx = zerolog.New(x.logs).WithContext(context.Background())
	return x
}

// delivered checks that exactly c1 and c2 got the announcement, framed for their subprotocols,
// carrying id as extensions.event.id and no seq.
func (x *externalFixture) delivered(t *testing.T, id string, ignore ...string) {
	t.Helper()
	ext := `"extensions":{"event":{"id":` + jsonQuote(id) + `}}`
	want := map[string][]string{
		"c1": {`{"id":"1","type":"next","payload":{"data":{"announcement":{"text":"closing soon","priority":5}},` + ext + `}}`},
		"c2": {`{"id":"1","type":"data","payload":{"data":{"announcement":{"text":"closing soon","priority":5}},` + ext + `}}`},
	}
	got := x.poster.Posts()
	for _, conn := range ignore {
		delete(got, conn)
	}
	if len(got) != 2 || strings.Join(got["c1"], "|") != strings.Join(want["c1"], "|") || strings.Join(got["c2"], "|") != strings.Join(want["c2"], "|") {
		t.Fatalf("posts = %v\nwant %v", got, want)
	}
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (x *externalFixture) logLines(level string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(x.logs.String()), "\n") {
		if strings.Contains(l, `"level":"`+level+`"`) {
			out = append(out, l)
		}
	}
	return out
}

func TestEventBridgeAnnouncement(t *testing.T) {
	x := newExternal(t)
	if err := x.f.HandleEventBridge(x.ctx, ebEvent("eb-1", "chat.announcement", annPayload)); err != nil {
		t.Fatal(err)
	}
	x.delivered(t, "eb-1")
}

func TestSQSAnnouncement(t *testing.T) {
	x := newExternal(t)
	resp, err := x.f.HandleSQS(x.ctx, events.SQSEvent{Records: []events.SQSMessage{sqsMessage("m1", cloudEvent("ce-1", "chat.announcement", annPayload))}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("HandleSQS = %+v, %v", resp, err)
	}
	x.delivered(t, "com.example.chat ce-1")
}

func TestSNSAnnouncement(t *testing.T) {
	x := newExternal(t)
	if err := x.f.HandleSNS(x.ctx, snsEvent("n1", cloudEvent("ce-2", "chat.announcement", annPayload))); err != nil {
		t.Fatal(err)
	}
	x.delivered(t, "com.example.chat ce-2")
}

// TestMalformedEventBridgeAndSNSAreSkipped: a malformed event cannot be mended by a retry: it is
// logged once, with its id, and the invocation succeeds.
func TestMalformedEventBridgeAndSNSAreSkipped(t *testing.T) {
	for name, handle := range map[string]func(x *externalFixture) error{
		"eventbridge detail not an object": func(x *externalFixture) error {
			return x.f.HandleEventBridge(x.ctx, ebEvent("eb-bad", "chat.announcement", `["r1"]`))
		},
		"eventbridge without a room": func(x *externalFixture) error {
			return x.f.HandleEventBridge(x.ctx, ebEvent("eb-bad", "chat.announcement", `{"text":"where?"}`))
		},
		"sns not a cloudevent": func(x *externalFixture) error {
			return x.f.HandleSNS(x.ctx, snsEvent("n-bad", `{"hello":"world"}`))
		},
		"sns not json": func(x *externalFixture) error { return x.f.HandleSNS(x.ctx, snsEvent("n-bad", `closing soon`)) },
	} {
		t.Run(name, func(t *testing.T) {
			x := newExternal(t)
			if err := handle(x); err != nil {
				t.Fatalf("a malformed event failed the invocation: %v", err)
			}
			if posts := x.poster.Posts(); len(posts) != 0 {
				t.Fatalf("posts = %v", posts)
			}
			errs := x.logLines("error")
			if len(errs) != 1 || !strings.Contains(errs[0], "-bad") {
				t.Fatalf("error log lines: %q, want one naming the event", errs)
			}
		})
	}
}

// TestSQSPartialBatch: the malformed message and the one whose delivery failed are reported by
// id; the others are delivered and not reported.
func TestSQSPartialBatch(t *testing.T) {
	x := newExternal(t)
	x.reg.failOn = "announcement?roomId=r2"
	x.reg.subs["announcement?roomId=r2"] = append(x.reg.subs["announcement?roomId=r2"], sub("c5", "1", gqlws.TransportWS, annText))
	r2 := strings.Replace(annPayload, `"r1"`, `"r2"`, 1)
	resp, err := x.f.HandleSQS(x.ctx, events.SQSEvent{Records: []events.SQSMessage{
		sqsMessage("m-bad", `{"specversion":"1.0","id":"x"}`),
		sqsMessage("m-ok", cloudEvent("ce-1", "chat.announcement", annPayload)),
		sqsMessage("m-fail", cloudEvent("ce-2", "chat.announcement", r2)),
		sqsMessage("m-nobody", cloudEvent("ce-3", "chat.unknown", `{}`)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	if strings.Join(ids, ",") != "m-bad,m-fail" {
		t.Fatalf("reported %v, want m-bad and m-fail", ids)
	}
	// c4 got m-fail's event before the registry failed midway through r2's subscribers: the
	// redelivery will reach it again (at least once).
	if len(x.poster.Posts()["c4"]) != 1 {
		t.Fatalf("c4 got %v", x.poster.Posts()["c4"])
	}
	x.delivered(t, "com.example.chat ce-1", "c4")
	if n := len(x.logLines("error")); n != 2 {
		t.Fatalf("%d error lines, want one per reported message:\n%s", n, x.logs.String())
	}
}

// TestSQSFIFOKeepsOrder: on a FIFO queue, the messages after a failed one are reported with it.
func TestSQSFIFOKeepsOrder(t *testing.T) {
	x := newExternal(t)
	fifo := func(m events.SQSMessage) events.SQSMessage {
		m.EventSourceARN += ".fifo"
		return m
	}
	resp, _ := x.f.HandleSQS(x.ctx, events.SQSEvent{Records: []events.SQSMessage{
		fifo(sqsMessage("m1", `not a cloudevent`)),
		fifo(sqsMessage("m2", cloudEvent("ce-1", "chat.announcement", annPayload))),
	}})
	if len(resp.BatchItemFailures) != 2 || len(x.poster.Posts()) != 0 {
		t.Fatalf("failures %+v, posts %v; want both reported, nothing delivered", resp.BatchItemFailures, x.poster.Posts())
	}
}

// TestSQSDeadline: with the deadline nearer than the margin, nothing is started and every message
// is reported for redelivery.
func TestSQSDeadline(t *testing.T) {
	x := newExternal(t)
	f := publish.New(publish.Config{Registry: x.reg, Sources: exec, Renderer: newRenderer(), Gateway: x.poster, Margin: time.Hour})
	ctx, cancel := context.WithTimeout(x.ctx, time.Minute)
	defer cancel()
	resp, _ := f.HandleSQS(ctx, events.SQSEvent{Records: []events.SQSMessage{
		sqsMessage("m1", cloudEvent("ce-1", "chat.announcement", annPayload)), sqsMessage("m2", cloudEvent("ce-2", "chat.announcement", annPayload)),
	}})
	if len(resp.BatchItemFailures) != 2 || len(x.poster.Posts()) != 0 {
		t.Fatalf("failures %+v, posts %v", resp.BatchItemFailures, x.poster.Posts())
	}
}

// TestServiceFailureIsRetried: when the registry cannot be read, EventBridge's and SNS's invokes
// fail (Lambda retries them, then the on-failure destination takes them).
func TestServiceFailureIsRetried(t *testing.T) {
	x := newExternal(t)
	x.reg.failOn = annR1
	if err := x.f.HandleEventBridge(x.ctx, ebEvent("eb-1", "chat.announcement", annPayload)); err == nil {
		t.Error("EventBridge: a registry failure did not fail the invocation")
	}
	if err := x.f.HandleSNS(x.ctx, snsEvent("n1", cloudEvent("ce-1", "chat.announcement", annPayload))); err == nil {
		t.Error("SNS: a registry failure did not fail the invocation")
	}
}

// TestInvalidateFromEverySource: lambdaws.invalidate goes to the Invalidator, from each source,
// and to no subscriber; the Invalidator's failure is the service's.
func TestInvalidateFromEverySource(t *testing.T) {
	const data = `{"subject":"user-1"}`
	x := newExternal(t)
	if err := x.f.HandleEventBridge(x.ctx, ebEvent("eb-i", "lambdaws.invalidate", data)); err != nil {
		t.Fatal(err)
	}
	if resp, err := x.f.HandleSQS(x.ctx, events.SQSEvent{Records: []events.SQSMessage{sqsMessage("m-i", cloudEvent("ce-i", "lambdaws.invalidate", data))}}); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("HandleSQS = %+v, %v", resp, err)
	}
	if err := x.f.HandleSNS(x.ctx, snsEvent("n-i", cloudEvent("ce-j", "lambdaws.invalidate", data))); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ch := range x.inv.got {
		if ch.Type != "lambdaws.invalidate" || string(ch.Value) != data {
			t.Errorf("invalidator got %+v", ch)
		}
		ids = append(ids, ch.ID)
	}
	if strings.Join(ids, "|") != "eb-i|com.example.chat ce-i|com.example.chat ce-j" || len(x.poster.Posts()) != 0 {
		t.Fatalf("invalidator got %q, posts %v", ids, x.poster.Posts())
	}

	x.inv.fail = errors.New("registry unreachable")
	if err := x.f.HandleEventBridge(x.ctx, ebEvent("eb-i", "lambdaws.invalidate", data)); err == nil {
		t.Error("EventBridge: the invalidator's failure did not fail the invocation")
	}
	if resp, _ := x.f.HandleSQS(x.ctx, events.SQSEvent{Records: []events.SQSMessage{sqsMessage("m-i", cloudEvent("ce-i", "lambdaws.invalidate", data))}}); len(resp.BatchItemFailures) != 1 {
		t.Errorf("SQS: the invalidator's failure was not reported: %+v", resp)
	}
	if err := x.f.HandleSNS(x.ctx, snsEvent("n-i", cloudEvent("ce-j", "lambdaws.invalidate", data))); err == nil {
		t.Error("SNS: the invalidator's failure did not fail the invocation")
	}

	// Data that is no invalidation is the event's fault, not the service's: skipped with an error
	// line (EventBridge, SNS), reported so it reaches the dead-letter queue (SQS).
	x.inv.fail = fmt.Errorf("%w: invalidate: invalid request", source.ErrMalformed)
	x.logs.Reset()
	if err := x.f.HandleEventBridge(x.ctx, ebEvent("eb-m", "lambdaws.invalidate", data)); err != nil {
		t.Errorf("EventBridge: a malformed invalidation failed the invocation: %v", err)
	}
	if resp, _ := x.f.HandleSQS(x.ctx, events.SQSEvent{Records: []events.SQSMessage{sqsMessage("m-m", cloudEvent("ce-m", "lambdaws.invalidate", data))}}); len(resp.BatchItemFailures) != 1 {
		t.Errorf("SQS: a malformed invalidation was not reported: %+v", resp)
	}
	if err := x.f.HandleSNS(x.ctx, snsEvent("n-m", cloudEvent("ce-n", "lambdaws.invalidate", data))); err != nil {
		t.Errorf("SNS: a malformed invalidation failed the invocation: %v", err)
	}
	if e := x.logLines("error"); len(e) != 3 || !strings.Contains(e[0], "event skipped") || !strings.Contains(e[1], "malformed") ||
		!strings.Contains(e[2], "notification skipped") {
		t.Errorf("error lines %q", e)
	}

	// Without an invalidator the event is dropped with a warning, not delivered.
	y := newExternal(t)
	f := publish.New(publish.Config{Registry: y.reg, Sources: exec, Renderer: newRenderer(), Gateway: y.poster})
	if err := f.HandleEventBridge(y.ctx, ebEvent("eb-i", "lambdaws.invalidate", data)); err != nil || len(y.poster.Posts()) != 0 {
		t.Fatalf("without an invalidator: %v, posts %v", err, y.poster.Posts())
	}
	if w := y.logLines("warn"); len(w) != 1 || !strings.Contains(w[0], "no invalidator") {
		t.Fatalf("warnings %q", w)
	}
}
