package source_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/envelope"
	"github.com/realtime-gql/lambdaws/publish/source"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// result is one decoded record in a golden file.
type result struct {
	Record string         `json:"record,omitempty"`
	Change *engine.Change `json:"change,omitempty"`
	Error  string         `json:"error,omitempty"`
}

func decodeFile(t *testing.T, path string) []result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	add := func(out []result, id string, ch engine.Change, err error) []result {
		r := result{Record: id}
		if err != nil {
			if !errors.Is(err, source.ErrMalformed) && !errors.Is(err, source.ErrNotExternal) {
				t.Errorf("%s %s: %v is neither ErrMalformed nor ErrNotExternal", path, id, err)
			}
			r.Error = err.Error()
		} else {
			r.Change = &ch
		}
		return append(out, r)
	}
	var out []result
	switch name := filepath.Base(path); {
	case strings.HasPrefix(name, "eventbridge"):
		var ev events.EventBridgeEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		ch, err := source.EventBridge(ev)
		out = add(out, "", ch, err)
	case strings.HasPrefix(name, "sqs"):
		var ev events.SQSEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		for _, rec := range ev.Records {
			ch, err := source.SQS(rec)
			out = add(out, rec.MessageId, ch, err)
		}
	case strings.HasPrefix(name, "sns"):
		var ev events.SNSEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		for _, rec := range ev.Records {
			ch, err := source.SNS(rec.SNS)
			out = add(out, rec.SNS.MessageID, ch, err)
		}
	default:
		t.Fatalf("%s: unknown shape", path)
	}
	return out
}

// TestGolden decodes every event in testdata (shaped exactly as Lambda receives them) and compares
// the changes and errors with the golden files; go test ./publish/source -update rewrites them.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	n := 0
	for _, path := range files {
		if strings.HasSuffix(path, ".golden.json") {
			continue
		}
		n++
		t.Run(filepath.Base(path), func(t *testing.T) {
			got, err := json.MarshalIndent(decodeFile(t, path), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(path, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s:\n%s", path, golden, got)
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d inputs in testdata", n)
	}
}

// ce builds a CloudEvent body with data of exactly n bytes.
func ceWithData(n int) []byte {
	data := `{"a":"` + strings.Repeat("x", n-8) + `"}`
	return []byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data":` + data + `}`)
}

// The bounds: data of MaxData bytes passes and one more byte is refused, in every decoder; a
// body over MaxBody is refused before it is decoded.
func TestBounds(t *testing.T) {
	if _, err := source.CloudEvent(ceWithData(envelope.MaxData)); err != nil {
		t.Errorf("data of MaxData bytes: %v", err)
	}
	if _, err := source.SQS(events.SQSMessage{MessageId: "m", Body: string(ceWithData(envelope.MaxData))}); err != nil {
		t.Errorf("sqs, data of MaxData bytes: %v", err)
	}
	want := "cloudevent \"1\": data: is 131073 bytes, over the limit of 131072"
	for name, decode := range map[string]func([]byte) error{
		"cloudevent": func(b []byte) error { _, err := source.CloudEvent(b); return err },
		"sqs":        func(b []byte) error { _, err := source.SQS(events.SQSMessage{Body: string(b)}); return err },
		"sns":        func(b []byte) error { _, err := source.SNS(events.SNSEntity{Message: string(b)}); return err },
	} {
		if err := decode(ceWithData(envelope.MaxData + 1)); err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, source.ErrMalformed) {
			t.Errorf("%s, data of MaxData+1 bytes: %v", name, err)
		}
	}
	huge := ceWithData(envelope.MaxBody + 1)
	if _, err := source.CloudEvent(huge[:envelope.MaxBody+1]); err == nil || !strings.Contains(err.Error(), "the body is 262145 bytes, over the limit of 262144") {
		t.Errorf("body of MaxBody+1 bytes: %v", err)
	}

	detail := func(n int) json.RawMessage { return json.RawMessage(`{"a":"` + strings.Repeat("x", n-8) + `"}`) }
	ev := events.EventBridgeEvent{ID: "1", DetailType: "t", Detail: detail(envelope.MaxData)}
	if _, err := source.EventBridge(ev); err != nil {
		t.Errorf("eventbridge, detail of MaxData bytes: %v", err)
	}
	ev.Detail = detail(envelope.MaxData + 1)
	if _, err := source.EventBridge(ev); err == nil || !strings.Contains(err.Error(), "detail: is 131073 bytes, over the limit of 131072") {
		t.Errorf("eventbridge, detail of MaxData+1 bytes: %v", err)
	}
}

// checkChange asserts what every decoded change satisfies.
func checkChange(t *testing.T, ch engine.Change) {
	t.Helper()
	if ch.ID == "" || ch.Item != "" || ch.Kind != "" || ch.Seq != "" {
		t.Fatalf("change %+v: want an id and no item, kind or seq", ch)
	}
	if err := envelope.CheckType(ch.Type); err != nil {
		t.Fatalf("change type %q: %v", ch.Type, err)
	}
	if err := envelope.CheckData(ch.Value); err != nil {
		t.Fatalf("change value: %v", err)
	}
}

func checkError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, source.ErrMalformed) && !errors.Is(err, source.ErrNotExternal) {
		t.Fatalf("error %v is neither ErrMalformed nor ErrNotExternal", err)
	}
}

func seed(f *testing.F, path string, pick func(b []byte) []string) {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range pick(b) {
		f.Add(s)
	}
}

func sqsBodies(b []byte) []string {
	var ev events.SQSEvent
	_ = json.Unmarshal(b, &ev)
	var out []string
	for _, r := range ev.Records {
		out = append(out, r.Body)
	}
	return out
}

// roundTrip re-encodes a change decoded from a CloudEvent and decodes it again.
func roundTrip(t *testing.T, ch engine.Change) {
	t.Helper()
	src, id, ok := strings.Cut(ch.ID, " ")
	if !ok {
		t.Fatalf("CloudEvent identity %q has no space", ch.ID)
	}
	body, err := json.Marshal(envelope.CloudEvent{SpecVersion: envelope.SpecVersion, ID: id, Source: src, Type: ch.Type, Data: ch.Value})
	if err != nil {
		t.Fatal(err)
	}
	again, err := source.CloudEvent(body)
	if err != nil {
		t.Fatalf("re-encoded %s: %v", body, err)
	}
	var a, b any
	_ = json.Unmarshal(ch.Value, &a)
	_ = json.Unmarshal(again.Value, &b)
	if again.ID != ch.ID || again.Type != ch.Type || !jsonEqual(a, b) {
		t.Fatalf("round trip: %+v became %+v", ch, again)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func FuzzSQS(f *testing.F) {
	seed(f, "testdata/sqs.json", sqsBodies)
	f.Fuzz(func(t *testing.T, body string) {
		ch, err := source.SQS(events.SQSMessage{MessageId: "m", Body: body})
		if err != nil {
			checkError(t, err)
			return
		}
		checkChange(t, ch)
		roundTrip(t, ch)
	})
}

func FuzzSNS(f *testing.F) {
	seed(f, "testdata/sns.json", func(b []byte) []string {
		var ev events.SNSEvent
		_ = json.Unmarshal(b, &ev)
		return []string{ev.Records[0].SNS.Message}
	})
	seed(f, "testdata/sqs.json", sqsBodies)
	f.Fuzz(func(t *testing.T, msg string) {
		ch, err := source.SNS(events.SNSEntity{MessageID: "m", Message: msg})
		if err != nil {
			checkError(t, err)
			return
		}
		checkChange(t, ch)
		roundTrip(t, ch)
	})
}

func FuzzEventBridge(f *testing.F) {
	files, _ := filepath.Glob("testdata/eventbridge*.json")
	for _, path := range files {
		if !strings.HasSuffix(path, ".golden.json") {
			seed(f, path, func(b []byte) []string { return []string{string(b)} })
		}
	}
	f.Fuzz(func(t *testing.T, event string) {
		var ev events.EventBridgeEvent
		if json.Unmarshal([]byte(event), &ev) != nil {
			return // the router refuses what does not decode into the event type
		}
		ch, err := source.EventBridge(ev)
		if err != nil {
			checkError(t, err)
			return
		}
		checkChange(t, ch)
		if ch.ID != ev.ID || ch.Type != ev.DetailType || !bytes.Equal(ch.Value, ev.Detail) {
			t.Fatalf("change %+v from %+v", ch, ev)
		}
	})
}
