package emit_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	"github.com/realtime-gql/lambdaws/emit"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/envelope"
	"github.com/realtime-gql/lambdaws/publish/source"
)

// fakeAWS is an httptest endpoint that speaks just enough EventBridge (JSON 1.1), SQS (JSON 1.0)
// and SNS (query/XML), plus the invoke endpoint: it records each request, decodes the message it
// carries with the decoders the function uses, and answers as AWS does, or with a fault.
type fakeAWS struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls int
	reqs  []received
	// fault, when set, answers call n (from 1) instead of the success answer, unless it returns 0.
	fault func(n int, w http.ResponseWriter) int
	delay time.Duration
}

type received struct {
	op     string         // PutEvents, SendMessage, Publish, Invoke
	fields map[string]any // the request's JSON or form fields
	change engine.Change  // what the function would decode from it
	err    error          // the decoder's error
	header http.Header    // the request's headers
}

func newFake(t *testing.T) *fakeAWS {
	f := &fakeAWS{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAWS) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls++
	n, fault, delay := f.calls, f.fault, f.delay
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	rec := received{header: r.Header.Clone(), fields: map[string]any{}}
	target := r.Header.Get("X-Amz-Target")
	switch {
	case target == "AWSEvents.PutEvents":
		rec.op = "PutEvents"
	case target == "AmazonSQS.SendMessage":
		rec.op = "SendMessage"
	case r.URL.Path == "/2015-03-31/functions/function/invocations":
		rec.op = "Invoke"
	default:
		rec.op = "Publish"
	}
	if rec.op != "Invoke" && !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		http.Error(w, "unsigned request", http.StatusForbidden)
		return
	}
	if fault != nil && fault(n, w) != 0 {
		return
	}
	switch rec.op {
	case "PutEvents":
		var in struct{ Entries []map[string]any }
		_ = json.Unmarshal(body, &in)
		rec.fields = in.Entries[0]
		id := fmt.Sprintf("eb-%d", n)
		ev := events.EventBridgeEvent{Version: "0", ID: id, Source: str(rec.fields["Source"]),
			DetailType: str(rec.fields["DetailType"]), Detail: json.RawMessage(str(rec.fields["Detail"]))}
		rec.change, rec.err = source.EventBridge(ev)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprintf(w, `{"Entries":[{"EventId":%q}],"FailedEntryCount":0}`, id)
	case "SendMessage":
		_ = json.Unmarshal(body, &rec.fields)
		msg := str(rec.fields["MessageBody"])
		sum := md5.Sum([]byte(msg))
		rec.change, rec.err = source.SQS(events.SQSMessage{MessageId: fmt.Sprintf("sqs-%d", n), Body: msg})
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		fmt.Fprintf(w, `{"MessageId":"sqs-%d","MD5OfMessageBody":%q}`, n, hex.EncodeToString(sum[:]))
	case "Publish":
		form, _ := url.ParseQuery(string(body))
		for k := range form {
			rec.fields[k] = form.Get(k)
		}
		rec.change, rec.err = source.SNS(events.SNSEntity{MessageID: fmt.Sprintf("sns-%d", n), Message: form.Get("Message")})
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>sns-%d</MessageId></PublishResult><ResponseMetadata><RequestId>r%d</RequestId></ResponseMetadata></PublishResponse>`, n, n)
	case "Invoke":
		var ev events.EventBridgeEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			rec.err = err
		} else {
			rec.change, rec.err = source.EventBridge(ev)
		}
		_ = json.Unmarshal(body, &rec.fields)
		w.Write([]byte("null")) // the handler's answer to an EventBridge event
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, rec)
	f.mu.Unlock()
}

func str(v any) string { s, _ := v.(string); return s }

func (f *fakeAWS) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeAWS) only(t *testing.T) received {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 1 {
		t.Fatalf("%d requests answered, want 1", len(f.reqs))
	}
	return f.reqs[0]
}

// awsConfig points the SDK at the fake, with the standard retryer (3 attempts) minus its waits.
func awsConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       "eu-west-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.RateLimiter = ratelimit.None
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
			})
		},
	}
}

var clock = time.Date(2026, 3, 1, 17, 0, 0, 123456789, time.UTC)

func newEmitter(t *testing.T, f *fakeAWS, target emit.Target, mod func(*emit.Config)) *emit.Emitter {
	t.Helper()
	cfg := emit.Config{
		Target: target, AWS: awsConfig(f.srv.URL), Source: "com.example.chat",
		QueueURL: f.srv.URL + "/111122223333/events", TopicARN: "arn:aws:sns:eu-west-1:111122223333:chat",
		URL: f.srv.URL + "/2015-03-31/functions/function/invocations", Now: func() time.Time { return clock },
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
func checkRoundTrip(t *testing.T, r received, id string) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("the received message does not decode: %v", r.err)
	}
	if r.change.ID != id || r.change.Type != "chat.announcement" {
		t.Errorf("decoded change %+v, want id %q and type chat.announcement", r.change, id)
	}
	jsonEq(t, r.change.Value, []byte(annJSON))
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
	f := newFake(t)
	id, err := newEmitter(t, f, emit.EventBridge, func(c *emit.Config) { c.EventBusName = "chat-bus" }).
		Emit(context.Background(), "chat.announcement", ann)
	if err != nil {
		t.Fatal(err)
	}
	r := f.only(t)
	if r.op != "PutEvents" || r.fields["EventBusName"] != "chat-bus" || r.fields["Source"] != "com.example.chat" ||
		r.fields["DetailType"] != "chat.announcement" || r.fields["Detail"] != annJSON {
		t.Errorf("PutEvents entry %v", r.fields)
	}
	if ts, _ := r.fields["Time"].(float64); int64(ts) != clock.Unix() {
		t.Errorf("PutEvents Time %v, want %d", r.fields["Time"], clock.Unix())
	}
	if id != "eb-1" {
		t.Errorf("id %q, want the id EventBridge assigned", id)
	}
	checkRoundTrip(t, r, id)
}

func TestSQS(t *testing.T) {
	f := newFake(t)
	id, err := newEmitter(t, f, emit.SQS, nil).Emit(context.Background(), "chat.announcement", ann)
	if err != nil {
		t.Fatal(err)
	}
	r := f.only(t)
	if r.op != "SendMessage" || r.fields["QueueUrl"] != f.srv.URL+"/111122223333/events" ||
		r.fields["MessageGroupId"] != nil || r.fields["MessageDeduplicationId"] != nil {
		t.Errorf("SendMessage %v", r.fields)
	}
	checkCloudEvent(t, str(r.fields["MessageBody"]), id)
	checkRoundTrip(t, r, id)
}

func TestSNS(t *testing.T) {
	f := newFake(t)
	id, err := newEmitter(t, f, emit.SNS, nil).Emit(context.Background(), "chat.announcement", ann)
	if err != nil {
		t.Fatal(err)
	}
	r := f.only(t)
	if r.op != "Publish" || r.fields["Action"] != "Publish" || r.fields["TopicArn"] != "arn:aws:sns:eu-west-1:111122223333:chat" {
		t.Errorf("Publish %v", r.fields)
	}
	checkCloudEvent(t, str(r.fields["Message"]), id)
	checkRoundTrip(t, r, id)
}

func TestFIFO(t *testing.T) {
	f := newFake(t)
	ctx := context.Background()
	id, err := newEmitter(t, f, emit.SQS, func(c *emit.Config) { c.QueueURL += ".fifo" }).
		Emit(ctx, "chat.announcement", ann, emit.WithID("order-7"))
	if err != nil || id != "com.example.chat order-7" {
		t.Fatalf("Emit = %q, %v", id, err)
	}
	if r := f.only(t); r.fields["MessageGroupId"] != "chat.announcement" || r.fields["MessageDeduplicationId"] != "order-7" {
		t.Errorf("FIFO SendMessage %v", r.fields)
	}
	f2 := newFake(t)
	_, err = newEmitter(t, f2, emit.SNS, func(c *emit.Config) { c.TopicARN += ".fifo"; c.MessageGroupID = "lobby" }).
		Emit(ctx, "chat.announcement", ann)
	if r := f2.only(t); err != nil || r.fields["MessageGroupId"] != "lobby" || len(str(r.fields["MessageDeduplicationId"])) != 26 {
		t.Errorf("FIFO Publish %v, %v", r.fields, err)
	}
}

func TestLocal(t *testing.T) {
	f := newFake(t)
	id, err := newEmitter(t, f, emit.Local, nil).Emit(context.Background(), "chat.announcement", ann,
		emit.WithTime(clock.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	r := f.only(t)
	want := map[string]any{"version": "0", "id": id, "detail-type": "chat.announcement", "source": "com.example.chat",
		"time": "2026-03-01T18:00:00.123456789Z", "region": "local", "account": "000000000000"}
	for k, v := range want {
		if r.fields[k] != v {
			t.Errorf("invoke body %s = %v, want %v", k, r.fields[k], v)
		}
	}
	if r.header.Get("Content-Type") != "application/json" || len(id) != 26 {
		t.Errorf("content type %q, id %q", r.header.Get("Content-Type"), id)
	}
	checkRoundTrip(t, r, id)
}

// faults answers with an AWS error in each protocol's own shape.
func awsError(w http.ResponseWriter, status int, op, code, msg string) {
	switch op {
	case "Publish":
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>r</RequestId></ErrorResponse>`, code, msg)
	default:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", code)
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"__type":%q,"message":%q}`, code, msg)
	}
}

// TestFaults: every answer that is not a success ends in an error from Emit, after the SDK's
// retries where AWS advises them, and a transient fault followed by a success is a success.
func TestFaults(t *testing.T) {
	ops := map[emit.Target]string{emit.EventBridge: "PutEvents", emit.SQS: "SendMessage", emit.SNS: "Publish"}
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
				f := newFake(t)
				f.fault = func(n int, w http.ResponseWriter) int {
					if n > tc.failCalls {
						return 0
					}
					awsError(w, tc.status, op, tc.code, "no")
					return 1
				}
				id, err := newEmitter(t, f, target, nil).Emit(context.Background(), "chat.announcement", ann)
				if got := f.callCount(); got != tc.wantCalls {
					t.Errorf("%d calls, want %d", got, tc.wantCalls)
				}
				if tc.wantCode == "" {
					if err != nil || id == "" {
						t.Fatalf("Emit after a transient fault = %q, %v", id, err)
					}
					checkRoundTrip(t, f.only(t), id)
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
	f := newFake(t)
	f.fault = func(n int, w http.ResponseWriter) int {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, `{"Entries":[{"ErrorCode":"InternalFailure","ErrorMessage":"the bus failed"}],"FailedEntryCount":1}`)
		return 1
	}
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
			f := newFake(t)
			f.fault = func(_ int, w http.ResponseWriter) int { tc.answer(w); return 1 }
			e := newEmitter(t, f, emit.Local, nil)
			_, err := e.Emit(context.Background(), "chat.announcement", ann)
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, f.srv.URL+"/2015-03-31/functions/function/invocations")
			}
			if err == nil || err.Error() != want {
				t.Errorf("Emit error %v, want %q", err, want)
			}
		})
	}
	_, err := newEmitter(t, newFake(t), emit.Local, func(c *emit.Config) { c.URL = "http://127.0.0.1:1/x" }).
		Emit(context.Background(), "chat.announcement", ann)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Emit to a closed port: %v", err)
	}
}

// A slow target is given up at the caller's deadline, for every target.
func TestSlowAnswers(t *testing.T) {
	for _, target := range emit.Targets {
		t.Run(string(target), func(t *testing.T) {
			f := newFake(t)
			f.delay = 5 * time.Second
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
			f := newFake(t)
			e := newEmitter(t, f, target, nil)
			ctx := context.Background()
			exact := json.RawMessage(`{"a":"` + strings.Repeat("x", envelope.MaxData-8) + `"}`)
			if _, err := e.Emit(ctx, "chat.big", exact); err != nil {
				t.Fatalf("data of MaxData bytes: %v", err)
			}
			sent := f.callCount()
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
			if got := f.callCount(); got != sent {
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
	f := newFake(t)
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
