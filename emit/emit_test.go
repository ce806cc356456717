package emit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/realtime-gql/lambdaws/emit"
	"github.com/realtime-gql/lambdaws/emit/emittest"
	"github.com/realtime-gql/lambdaws/internal/envelope"
)

// only returns the one request the server answered.
func only(t *testing.T, f *emittest.Server) emittest.Request {
	t.Helper()
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests answered, want 1", len(reqs))
	}
	return reqs[0]
}

func str(v any) string { s, _ := v.(string); return s }

var clock = time.Date(2026, 3, 1, 17, 0, 0, 123456789, time.UTC)

func newEmitter(t *testing.T, f *emittest.Server, target emit.Target, mod func(*emit.Config)) *emit.Emitter {
	t.Helper()
	cfg := emit.Config{
		Target: target, AWS: f.AWSConfig(), Source: "com.example.chat",
		QueueURL: f.URL + "/111122223333/events", TopicARN: "arn:aws:sns:eu-west-1:111122223333:chat",
		URL: f.URL + emittest.InvokePath, Now: func() time.Time { return clock },
	}
	if mod != nil {
		mod(&cfg)
	}
	e, err := emit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type announcement struct {
	ID       string `json:"id"`
	RoomID   string `json:"roomId"`
	Text     string `json:"text"`
	Priority int    `json:"priority"`
}

var ann = announcement{ID: "a1", RoomID: "lobby", Text: "Maintenance at 18:00 <&>", Priority: 2}

const annJSON = `{"id":"a1","roomId":"lobby","text":"Maintenance at 18:00 \u003c\u0026\u003e","priority":2}`

func jsonEq(t *testing.T, got, want []byte) {
	t.Helper()
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal(want, &b) != nil {
		t.Fatalf("not JSON: %s / %s", got, want)
	}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	if string(x) != string(y) {
		t.Errorf("JSON %s, want %s", got, want)
	}
}

// checkRoundTrip asserts that the message the endpoint received decodes, with the function's own
// decoders, into the change emitted: same type, same payload, and the id Emit returned.
func checkRoundTrip(t *testing.T, r emittest.Request, id string) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("the received message does not decode: %v", r.Err)
	}
	if r.Change.ID != id || r.Change.Type != "chat.announcement" {
		t.Errorf("decoded change %+v, want id %q and type chat.announcement", r.Change, id)
	}
	jsonEq(t, r.Change.Value, []byte(annJSON))
}

func checkCloudEvent(t *testing.T, msg, id string) {
	t.Helper()
	var ce map[string]any
	if err := json.Unmarshal([]byte(msg), &ce); err != nil {
		t.Fatal(err)
	}
	src, ceID, _ := strings.Cut(id, " ")
	want := map[string]any{"specversion": "1.0", "id": ceID, "source": src, "type": "chat.announcement",
		"time": "2026-03-01T17:00:00.123456789Z", "datacontenttype": "application/json"}
	for k, v := range want {
		if ce[k] != v {
			t.Errorf("CloudEvent %s = %v, want %v", k, ce[k], v)
		}
	}
	if len(ceID) != 26 || src != "com.example.chat" {
		t.Errorf("id %q: want the source, a space and a ULID", id)
	}
}

func TestEventBridge(t *testing.T) {
	f := emittest.NewServer(t)
	id, err := newEmitter(t, f, emit.EventBridge, func(c *emit.Config) { c.EventBusName = "chat-bus" }).
		Emit(context.Background(), "chat.announcement", ann)
	if err != nil {
		t.Fatal(err)
	}
	r := only(t, f)
	if r.Op != emittest.PutEvents || r.Fields["EventBusName"] != "chat-bus" || r.Fields["Source"] != "com.example.chat" ||
		r.Fields["DetailType"] != "chat.announcement" || r.Fields["Detail"] != annJSON {
		t.Errorf("PutEvents entry %v", r.Fields)
	}
	if ts, _ := r.Fields["Time"].(float64); int64(ts) != clock.Unix() {
		t.Errorf("PutEvents Time %v, want %d", r.Fields["Time"], clock.Unix())
	}
	if id != "eb-1" {
		t.Errorf("id %q, want the id EventBridge assigned", id)
	}
	checkRoundTrip(t, r, id)
}

func TestSQS(t *testing.T) {
	f := emittest.NewServer(t)
	id, err := newEmitter(t, f, emit.SQS, nil).Emit(context.Background(), "chat.announcement", ann)
	if err != nil {
		t.Fatal(err)
	}
	r := only(t, f)
	if r.Op != emittest.SendMessage || r.Fields["QueueUrl"] != f.URL+"/111122223333/events" ||
		r.Fields["MessageGroupId"] != nil || r.Fields["MessageDeduplicationId"] != nil {
		t.Errorf("SendMessage %v", r.Fields)
	}
	checkCloudEvent(t, str(r.Fields["MessageBody"]), id)
	checkRoundTrip(t, r, id)
}

func TestSNS(t *testing.T) {
	f := emittest.NewServer(t)
	id, err := newEmitter(t, f, emit.SNS, nil).Emit(context.Background(), "chat.announcement", ann)
	if err != nil {
		t.Fatal(err)
	}
	r := only(t, f)
	if r.Op != emittest.Publish || r.Fields["Action"] != "Publish" || r.Fields["TopicArn"] != "arn:aws:sns:eu-west-1:111122223333:chat" {
		t.Errorf("Publish %v", r.Fields)
	}
	checkCloudEvent(t, str(r.Fields["Message"]), id)
	checkRoundTrip(t, r, id)
}

func TestFIFO(t *testing.T) {
	f := emittest.NewServer(t)
	ctx := context.Background()
	id, err := newEmitter(t, f, emit.SQS, func(c *emit.Config) { c.QueueURL += ".fifo" }).
		Emit(ctx, "chat.announcement", ann, emit.WithID("order-7"))
	if err != nil || id != "com.example.chat order-7" {
		t.Fatalf("Emit = %q, %v", id, err)
	}
	if r := only(t, f); r.Fields["MessageGroupId"] != "chat.announcement" || r.Fields["MessageDeduplicationId"] != "order-7" {
		t.Errorf("FIFO SendMessage %v", r.Fields)
	}
	f2 := emittest.NewServer(t)
	_, err = newEmitter(t, f2, emit.SNS, func(c *emit.Config) { c.TopicARN += ".fifo"; c.MessageGroupID = "lobby" }).
		Emit(ctx, "chat.announcement", ann)
	if r := only(t, f2); err != nil || r.Fields["MessageGroupId"] != "lobby" || len(str(r.Fields["MessageDeduplicationId"])) != 26 {
		t.Errorf("FIFO Publish %v, %v", r.Fields, err)
	}
}

func TestLocal(t *testing.T) {
	f := emittest.NewServer(t)
	id, err := newEmitter(t, f, emit.Local, nil).Emit(context.Background(), "chat.announcement", ann,
		emit.WithTime(clock.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	r := only(t, f)
	want := map[string]any{"version": "0", "id": id, "detail-type": "chat.announcement", "source": "com.example.chat",
		"time": "2026-03-01T18:00:00.123456789Z", "region": "local", "account": "000000000000"}
	for k, v := range want {
		if r.Fields[k] != v {
			t.Errorf("invoke body %s = %v, want %v", k, r.Fields[k], v)
		}
	}
	if r.Header.Get("Content-Type") != "application/json" || len(id) != 26 {
		t.Errorf("content type %q, id %q", r.Header.Get("Content-Type"), id)
	}
	checkRoundTrip(t, r, id)
}

// TestFaults: every answer that is not a success ends in an error from Emit, after the SDK's
// retries where AWS advises them, and a transient fault followed by a success is a success.
func TestFaults(t *testing.T) {
	ops := map[emit.Target]string{emit.EventBridge: emittest.PutEvents, emit.SQS: emittest.SendMessage, emit.SNS: emittest.Publish}
	denied := map[emit.Target]string{emit.EventBridge: "AccessDeniedException", emit.SQS: "AccessDenied", emit.SNS: "AuthorizationError"}
	throttled := map[emit.Target]string{emit.EventBridge: "ThrottlingException", emit.SQS: "ThrottlingException", emit.SNS: "Throttling"}
	for _, target := range []emit.Target{emit.EventBridge, emit.SQS, emit.SNS} {
		op := ops[target]
		for _, tc := range []struct {
			name      string
			status    int
			code      string
			failCalls int // calls that fail before a success; 99: all
			wantCalls int
			wantCode  string
		}{
			{"403", 403, denied[target], 99, 1, denied[target]},
			{"500", 500, "InternalFailure", 99, 3, "InternalFailure"},
			{"throttled", 400, throttled[target], 99, 3, throttled[target]},
			{"429", 429, "TooManyRequestsException", 99, 3, "TooManyRequestsException"},
			{"503 then success", 503, "ServiceUnavailable", 1, 2, ""},
		} {
			t.Run(string(target)+"/"+tc.name, func(t *testing.T) {
				f := emittest.NewServer(t)
				f.SetFault(func(n int, w http.ResponseWriter) bool {
					if n > tc.failCalls {
						return false
					}
					emittest.AWSError(w, tc.status, op, tc.code, "no")
					return true
				})
				id, err := newEmitter(t, f, target, nil).Emit(context.Background(), "chat.announcement", ann)
				if got := f.Calls(); got != tc.wantCalls {
					t.Errorf("%d calls, want %d", got, tc.wantCalls)
				}
				if tc.wantCode == "" {
					if err != nil || id == "" {
						t.Fatalf("Emit after a transient fault = %q, %v", id, err)
					}
					checkRoundTrip(t, only(t, f), id)
					return
				}
				var apiErr smithy.APIError
				if err == nil || id != "" || !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.wantCode {
					t.Fatalf("Emit = %q, %v; want an error with code %s", id, err, tc.wantCode)
				}
				if errors.Is(err, emit.ErrInvalid) || !strings.HasPrefix(err.Error(), "emit: "+string(target)+" chat.announcement: ") {
					t.Errorf("error %q", err)
				}
			})
		}
	}
}

func TestEventBridgeFailedEntry(t *testing.T) {
	f := emittest.NewServer(t)
	f.SetFault(func(_ int, w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, `{"Entries":[{"ErrorCode":"InternalFailure","ErrorMessage":"the bus failed"}],"FailedEntryCount":1}`)
		return true
	})
	id, err := newEmitter(t, f, emit.EventBridge, nil).Emit(context.Background(), "chat.announcement", ann)
	want := "emit: event rejected: eventbridge chat.announcement: InternalFailure: the bus failed"
	if err == nil || id != "" || !errors.Is(err, emit.ErrRejected) || err.Error() != want {
		t.Errorf("Emit = %q, %v; want %q", id, err, want)
	}
}

func TestLocalFaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
		want   string
	}{
		{"502", func(w http.ResponseWriter) { http.Error(w, "no handler", http.StatusBadGateway) },
			"emit: local chat.announcement: %s answered 502 Bad Gateway: no handler"},
		{"function error", func(w http.ResponseWriter) {
			io.WriteString(w, `{"errorMessage":"registry unreachable","errorType":"errorString"}`)
		}, "emit: event rejected: local chat.announcement: the function failed: errorString: registry unreachable"},
		{"function error header", func(w http.ResponseWriter) {
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			io.WriteString(w, `"boom"`)
		}, "emit: event rejected: local chat.announcement: the function failed: : "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := emittest.NewServer(t)
			f.SetFault(func(_ int, w http.ResponseWriter) bool { tc.answer(w); return true })
			e := newEmitter(t, f, emit.Local, nil)
			_, err := e.Emit(context.Background(), "chat.announcement", ann)
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, f.URL+"/2015-03-31/functions/function/invocations")
			}
			if err == nil || err.Error() != want {
				t.Errorf("Emit error %v, want %q", err, want)
			}
		})
	}
	_, err := newEmitter(t, emittest.NewServer(t), emit.Local, func(c *emit.Config) { c.URL = "http://127.0.0.1:1/x" }).
		Emit(context.Background(), "chat.announcement", ann)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Emit to a closed port: %v", err)
	}
}

// A slow target is given up at the caller's deadline, for every target.
func TestSlowAnswers(t *testing.T) {
	for _, target := range emit.Targets {
		t.Run(string(target), func(t *testing.T) {
			f := emittest.NewServer(t)
			f.SetDelay(5 * time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := newEmitter(t, f, target, nil).Emit(ctx, "chat.announcement", ann)
			if err == nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Emit = %v, want a deadline error", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Emit returned after %v", d)
			}
		})
	}
}

// Invalid events are refused before anything is sent; data of MaxData bytes goes, one more does not.
func TestInvalidEvents(t *testing.T) {
	for _, target := range emit.Targets {
		t.Run(string(target), func(t *testing.T) {
			f := emittest.NewServer(t)
			e := newEmitter(t, f, target, nil)
			ctx := context.Background()
			exact := json.RawMessage(`{"a":"` + strings.Repeat("x", envelope.MaxData-8) + `"}`)
			if _, err := e.Emit(ctx, "chat.big", exact); err != nil {
				t.Fatalf("data of MaxData bytes: %v", err)
			}
			sent := f.Calls()
			over := json.RawMessage(`{"a":"` + strings.Repeat("x", envelope.MaxData-7) + `"}`)
			for _, tc := range []struct {
				typ  string
				data any
				opts []emit.Option
				want string
			}{
				{"chat.big", over, nil, "emit: invalid event: chat.big: data: is 131073 bytes, over the limit of 131072"},
				{"chat.big", []byte(`{"a": "` + strings.Repeat("x", 2*envelope.MaxData) + `"}`), nil, "emit: invalid event: chat.big: data: is 262153 bytes, over the limit of 131072"},
				{"", ann, nil, `emit: invalid event: type "": invalid event type: is empty`},
				{strings.Repeat("t", 129), ann, nil, "invalid event type: is 129 bytes, over the limit of 128"},
				{"chat.x", []string{"a"}, nil, "emit: invalid event: chat.x: data: is not a JSON object"},
				{"chat.x", "text", nil, "emit: invalid event: chat.x: data: is not a JSON object"},
				{"chat.x", json.RawMessage(`{"a":`), nil, "emit: invalid event: chat.x: data: is not valid JSON"},
				{"chat.x", func() {}, nil, "emit: invalid event: chat.x: data: json: unsupported type: func()"},
				{"chat.x", nil, nil, "emit: invalid event: chat.x: data: is not a JSON object"},
				{"chat.x", ann, []emit.Option{emit.WithID("a\nb")}, "id: has control characters"},
			} {
				if target == emit.EventBridge && tc.opts != nil {
					tc.want = "EventBridge assigns event ids; WithID applies to sqs, sns and local"
				}
				_, err := e.Emit(ctx, tc.typ, tc.data, tc.opts...)
				if err == nil || !errors.Is(err, emit.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Emit(%.20q, %T) = %v, want %q", tc.typ, tc.data, err, tc.want)
				}
			}
			if got := f.Calls(); got != sent {
				t.Errorf("%d requests sent for invalid events", got-sent)
			}
		})
	}
}

func TestNewRefusesIncompleteConfigs(t *testing.T) {
	for _, tc := range []struct {
		cfg  emit.Config
		want string
	}{
		{emit.Config{}, `emit: unknown target "" (want local, eventbridge, sqs or sns)`},
		{emit.Config{Target: "kafka"}, `emit: unknown target "kafka" (want local, eventbridge, sqs or sns)`},
		{emit.Config{Target: emit.SQS}, "emit: target sqs needs a queue URL"},
		{emit.Config{Target: emit.SNS}, "emit: target sns needs a topic ARN"},
		{emit.Config{Target: emit.EventBridge, Source: "aws.s3"}, `emit: source "aws.s3": EventBridge reserves sources starting with aws.`},
		{emit.Config{Target: emit.Local, Source: "my service"}, `emit: source "my service": has spaces (a source is a URI reference)`},
	} {
		if _, err := emit.New(tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("New(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// Concurrent emits from one Emitter (the race detector watches) get distinct ids.
func TestConcurrentEmits(t *testing.T) {
	f := emittest.NewServer(t)
	e := newEmitter(t, f, emit.SQS, nil)
	var wg sync.WaitGroup
	ids := make([]string, 20)
	for i := range ids {
		wg.Go(func() {
			id, err := e.Emit(context.Background(), "chat.announcement", ann)
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("id %q emitted twice", id)
		}
		seen[id] = true
	}
}
