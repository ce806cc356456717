package local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/local"
)

// TestInvokeEndpoint: any event JSON posted to the emulator's invoke path reaches the handler as
// it is, with a Lambda context, and the answer is the handler's response; a handler error is a
// function error in the emulator's shape; the bound is the 6 MB of a synchronous invoke (the bound
// passes, one byte more is refused without invoking).
func TestInvokeEndpoint(t *testing.T) {
	var got [][]byte
	var requestIDs []string
	h := &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		got = append(got, raw)
		if ev["detail-type"] == "test.fail" {
			return nil, fmt.Errorf("handler: %w", errors.New("the event asked to fail"))
		}
		return []byte(`{"batchItemFailures":[]}`), nil
	}}
	addr, _ := serve(t, local.Config{Handler: contextRecorder{h, &requestIDs}})
	post := func(body []byte) (*http.Response, string) {
		t.Helper()
		resp, err := http.Post("http://"+addr+facts.InvokePath, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	sqs := `{"Records":[{"messageId":"m1","body":"{}","eventSource":"aws:sqs"}]}`
	resp, body := post([]byte(sqs))
	if resp.StatusCode != 200 || body != `{"batchItemFailures":[]}` || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("invoke = %d %q (%s)", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	if len(got) != 1 || string(got[0]) != sqs {
		t.Fatalf("the handler got %q, want the body as it was posted", got)
	}
	if len(requestIDs) != 1 || len(requestIDs[0]) != 36 {
		t.Fatalf("request ids %q, want a Lambda context with one", requestIDs)
	}

	resp, body = post([]byte(`{"version":"0","id":"x","detail-type":"test.fail","source":"a","detail":{}}`))
	if resp.StatusCode != 200 || body != `{"errorMessage":"handler: the event asked to fail","errorType":"wrapError"}` {
		t.Fatalf("a function error = %d %q", resp.StatusCode, body)
	}

	got = nil
	big := append([]byte(`"`), bytes.Repeat([]byte("x"), facts.MaxInvokePayload-2)...)
	big = append(big, '"')
	if resp, _ := post(big); resp.StatusCode != 200 || len(got) != 1 || len(got[0]) != facts.MaxInvokePayload {
		t.Fatalf("an event of exactly %d bytes: %d, %d invocations", facts.MaxInvokePayload, resp.StatusCode, len(got))
	}
	if resp, body := post(append(big, ' ')); resp.StatusCode != http.StatusRequestEntityTooLarge || len(got) != 1 ||
		resp.Header.Get("X-Amzn-ErrorType") != "RequestEntityTooLargeException" || !strings.Contains(body, "6 MB") {
		t.Fatalf("an event of one byte more: %d %q, %d invocations", resp.StatusCode, body, len(got))
	}
	r, err := http.Get("http://" + addr + facts.InvokePath)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed || len(got) != 1 {
		t.Fatalf("GET = %d, %d invocations", r.StatusCode, len(got))
	}
}

// contextRecorder records the Lambda request id of every invocation.
type contextRecorder struct {
	h   local.Handler
	ids *[]string
}

func (c contextRecorder) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		*c.ids = append(*c.ids, lc.AwsRequestID)
	}
	return c.h.Invoke(ctx, payload)
}
