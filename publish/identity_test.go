package publish_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/chunkq"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
)

// eventMembers returns every "event" member of a frame's payload.extensions, in order, as raw
// JSON: decoded token by token, so that a duplicated member is seen (a map would keep one).
func eventMembers(t *testing.T, frame string) []string {
	t.Helper()
	var f struct {
		Payload struct {
			Extensions json.RawMessage `json:"extensions"`
		} `json:"payload"`
	}
	if err := json.Unmarshal([]byte(frame), &f); err != nil {
		t.Fatalf("frame %s: %v", frame, err)
	}
	if len(f.Payload.Extensions) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(f.Payload.Extensions))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("extensions of %s is not an object", frame)
	}
	var out []string
	for dec.More() {
		key, _ := dec.Token()
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("extensions of %s: %v", frame, err)
		}
		if key == "event" {
			out = append(out, string(v))
		}
	}
	return out
}

// extendingRenderer renders with the app's executor and adds extensions of its own, a stale
// "event" among them, as a renderer (or an extension) might.
type extendingRenderer struct{ exec *graph.Executor }

func (r extendingRenderer) Render(ctx context.Context, req graph.Request, ev *engine.Event) *graphql.Response {
	resp := r.exec.Render(ctx, req, ev)
	if resp != nil {
		resp.Extensions = map[string]any{"event": map[string]string{"id": "stale"}, "cost": 3}
	}
	return resp
}

// TestEveryFrameCarriesOneEventIdentity: the event's identity, extensions.event, is added once,
// by the fan-out engine, to every frame: results of a stream record ({"id","seq"}) and of an
// external event ({"id"}), an error result rendered for a principal its rule refuses, and the
// RESULT_TOO_LARGE error the engine makes itself. The renderer adds none; one a renderer does add
// is replaced, its other extensions kept.
func TestEveryFrameCarriesOneEventIdentity(t *testing.T) {
	rooms := json.RawMessage(`{"sub":"u9","claims":{"rooms":["r9"]}}`)
	withPrincipal := func(s store.Subscription, p json.RawMessage) store.Subscription { s.Principal = p; return s }
	reg := &fakeRegistry{subs: map[string][]store.Subscription{
		addedR1: {
			sub("plain", "1", gqlws.TransportWS, selIDText),
			withPrincipal(sub("refused", "1", gqlws.LegacyWS, selIDText), rooms), // outside room r1: FORBIDDEN
		},
		annR1: {sub("ann", "1", gqlws.TransportWS, annText)},
	}}
	poster := mgmttest.New()
	f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Gateway: poster})
	defer f.Close()
	rec := record(t, 5, stream.Insert, nil, msg("r1", "m1", "hello"))
	if resp, _ := f.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}}); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v", resp.BatchItemFailures)
	}
	if err := f.HandleEventBridge(context.Background(), ebEvent("eb-7", "chat.announcement", annPayload)); err != nil {
		t.Fatal(err)
	}
	streamID := fmt.Sprintf(`{"id":%q,"seq":"5"}`, eventID(5))
	posts := poster.Posts()
	for conn, want := range map[string]string{"plain": streamID, "refused": streamID, "ann": `{"id":"eb-7"}`} {
		if len(posts[conn]) != 1 {
			t.Fatalf("%s got %v", conn, posts[conn])
		}
		if got := eventMembers(t, posts[conn][0]); len(got) != 1 || got[0] != want {
			t.Errorf("%s's frame %s: extensions.event %v, want exactly one, %s", conn, posts[conn][0], got, want)
		}
	}
	if !strings.Contains(posts["refused"][0], `"code":"FORBIDDEN"`) {
		t.Errorf("the refused principal got %s, want a FORBIDDEN error", posts["refused"][0])
	}

	// The engine's own error result, and a renderer that adds extensions of its own.
	poster2 := mgmttest.New()
	g := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: extendingRenderer{exec}, Gateway: poster2, MaxMessage: 1024})
	defer g.Close()
	big := record(t, 6, stream.Insert, nil, msg("r1", "m2", strings.Repeat("x", 2000)))
	small := record(t, 7, stream.Insert, nil, msg("r1", "m3", "hi"))
	if resp, _ := g.Publish(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{big, small}}); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v", resp.BatchItemFailures)
	}
	frames := poster2.Posts()["plain"]
	if len(frames) != 2 || !strings.Contains(frames[0], "RESULT_TOO_LARGE") || !strings.Contains(frames[1], `"cost":3`) {
		t.Fatalf("frames %v: want the too-large error, then the result with the renderer's extensions", frames)
	}
	for i, seq := range []uint64{6, 7} {
		want := fmt.Sprintf(`{"id":%q,"seq":"%d"}`, eventID(seq), seq)
		if got := eventMembers(t, frames[i]); len(got) != 1 || got[0] != want {
			t.Errorf("frame %s: extensions.event %v, want exactly one, %s", frames[i], got, want)
		}
	}
}

// continuationMessage is a chunk queue message: the continuation's JSON, marked as one.
func continuationMessage(t *testing.T, id string, c fanout.Continuation) events.SQSMessage {
	t.Helper()
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	m := sqsMessage(id, string(body))
	m.EventSourceARN = "arn:aws:sqs:us-east-1:123456789012:lambdaws-prod-chunks"
	m.MessageAttributes = map[string]events.SQSMessageAttribute{chunkq.Attr: {DataType: "String", StringValue: aws.String(chunkq.Continuation)}}
	return m
}

// TestSQSMixedBatch: one SQS batch through the one entry point, HandleSQS: a continuation goes to
// the fan-out's Continue (its subscribers matched with their filters), a CloudEvent is delivered,
// an invalidation goes to the Invalidator, and the malformed continuation and the malformed
// CloudEvent are reported by id, each with its own log line.
func TestSQSMixedBatch(t *testing.T) {
	x := newExternal(t)
	r2 := strings.Replace(annPayload, `"r1"`, `"r2"`, 1)
	cont := fanout.Continuation{Event: engine.Event{ID: "eb-c", Field: "announcement", Topic: annR1, Payload: json.RawMessage(annPayload)}, Part: "1"}
	resp, err := x.f.HandleSQS(x.ctx, events.SQSEvent{Records: []events.SQSMessage{
		sqsMessage("m-ce", cloudEvent("ce-1", "chat.announcement", r2)),
		continuationMessage(t, "m-cont", cont),
		sqsMessage("m-bad", `{"specversion":"1.0","id":"x"}`),
		continuationMessage(t, "m-badcont", fanout.Continuation{Part: "1"}),
		sqsMessage("m-inv", cloudEvent("ce-i", "lambdaws.invalidate", `{"subject":"user-1"}`)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	slices.Sort(ids)
	if fmt.Sprint(ids) != "[m-bad m-badcont]" {
		t.Fatalf("reported %v, want the malformed CloudEvent and the malformed continuation", ids)
	}
	// The continuation: c1 and c2 (c3's filter keeps it out), identified by the event's id.
	x.delivered(t, "eb-c", "c4")
	if got := x.poster.Posts()["c4"]; len(got) != 1 || !strings.Contains(got[0], `"extensions":{"event":{"id":"com.example.chat ce-1"}}`) {
		t.Fatalf("c4 got %v, want the CloudEvent", got)
	}
	if len(x.inv.got) != 1 || x.inv.got[0].ID != "com.example.chat ce-i" {
		t.Fatalf("invalidator got %+v", x.inv.got)
	}
	if l := x.logs.Lines("m-badcont", "continuation failed"); len(l) != 1 {
		t.Fatalf("the malformed continuation: %d lines\n%s", len(l), x.logs.String())
	}
	if l := x.logs.Lines("m-bad", "malformed"); len(l) != 1 {
		t.Fatalf("the malformed CloudEvent: %d lines\n%s", len(l), x.logs.String())
	}
}

// TestSQSDeliveryFailureOnAFIFOQueue: on a FIFO queue, the message whose delivery failed (the
// registry unreadable) and every message after it are reported, the ones delivered before it
// are not; the redelivered messages reach nobody twice (done markers).
func TestSQSDeliveryFailureOnAFIFOQueue(t *testing.T) {
	x := newExternal(t)
	x.reg.failOn = "announcement?roomId=r2"
	x.reg.subs["announcement?roomId=r2"] = append(x.reg.subs["announcement?roomId=r2"],
		sub("c5", "1", gqlws.TransportWS, `subscription { announcement(roomId: "r2") { text } }`))
	fifo := func(m events.SQSMessage) events.SQSMessage {
		m.EventSourceARN += ".fifo"
		return m
	}
	r2 := strings.Replace(annPayload, `"r1"`, `"r2"`, 1)
	batch := []events.SQSMessage{
		fifo(sqsMessage("m1", cloudEvent("ce-1", "chat.announcement", annPayload))),
		fifo(sqsMessage("m2", cloudEvent("ce-2", "chat.announcement", r2))),
		fifo(sqsMessage("m3", cloudEvent("ce-3", "chat.announcement", annPayload))),
	}
	resp, _ := x.f.HandleSQS(x.ctx, events.SQSEvent{Records: batch})
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	if fmt.Sprint(ids) != "[m2 m3]" {
		t.Fatalf("reported %v, want m2 and the message after it", ids)
	}
	x.reg.mu.Lock()
	x.reg.failOn = ""
	x.reg.mu.Unlock()
	if resp, _ := x.f.HandleSQS(x.ctx, events.SQSEvent{Records: batch[1:]}); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("the redelivery reported %+v", resp.BatchItemFailures)
	}
	posts := x.poster.Posts()
	// c1 got m1 and m3 once each, m3 after m1; c4 (before the failure) and c5 (on redelivery)
	// got m2 once.
	if len(posts["c1"]) != 2 || !strings.Contains(posts["c1"][0], "ce-1") || !strings.Contains(posts["c1"][1], "ce-3") ||
		len(posts["c4"]) != 1 || len(posts["c5"]) != 1 {
		t.Fatalf("c1 got %v, c4 got %v, c5 got %v", posts["c1"], posts["c4"], posts["c5"])
	}
}
