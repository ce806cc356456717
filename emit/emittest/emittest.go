// Package emittest is a fake of every endpoint package emit talks to (EventBridge, SQS, SNS and the
// local invoke endpoint), for tests: it answers as AWS does, or with a fault, and decodes each
// message it receives with the function's own decoders (publish/source).
package emittest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
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
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/publish/source"
)

// InvokePath is the invoke endpoint's path (the Lambda runtime interface emulator's).
const InvokePath = facts.InvokePath

// The operations the Server tells apart.
const (
	PutEvents   = "PutEvents"   // EventBridge, AWS JSON 1.1
	SendMessage = "SendMessage" // SQS, AWS JSON 1.0
	Publish     = "Publish"     // SNS, query protocol with XML answers
	Invoke      = "Invoke"      // the invoke endpoint: the event JSON as body
)

// A Request is one request the Server answered with a success.
type Request struct {
	// Op is PutEvents, SendMessage, Publish or Invoke.
	Op string
	// Fields are the request's fields: the PutEvents entry, the SendMessage JSON, the Publish
	// form, the invoked event.
	Fields map[string]any
	// Change is what the function decodes from the message, or Err why it cannot.
	Change engine.Change
	Err    error
	Header http.Header
}

// A Server is the fake endpoint. Point the SDK at it with AWSConfig, the local target at URL+InvokePath.
type Server struct {
	// URL is the server's base URL.
	URL string

	mu    sync.Mutex
	calls int
	reqs  []Request
	fault func(n int, w http.ResponseWriter) bool
	delay time.Duration
}

// NewServer starts a Server, closed when the test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// SetFault makes fault answer the n-th call (from 1) when it returns true; when it returns false
// the call is answered as usual.
func (s *Server) SetFault(fault func(n int, w http.ResponseWriter) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = fault
}

// SetDelay delays every answer (a slow service).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Calls returns how many requests arrived, faults included.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Requests returns the requests answered with a success.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// AWSConfig points the SDK at the server with static credentials and the standard retryer (3
// attempts) without its waits.
func (s *Server) AWSConfig() aws.Config {
	return aws.Config{
		Region:       "eu-west-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(s.URL),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.RateLimiter = ratelimit.None
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
			})
		},
	}
}

// AWSError answers with an AWS error in the operation's protocol: XML for Publish, JSON otherwise.
func AWSError(w http.ResponseWriter, status int, op, code, msg string) {
	if op == Publish {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>r</RequestId></ErrorResponse>`, code, msg)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"__type":%q,"message":%q}`, code, msg)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.calls++
	n, fault, delay := s.calls, s.fault, s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	rec := Request{Header: r.Header.Clone(), Fields: map[string]any{}}
	switch target := r.Header.Get("X-Amz-Target"); {
	case target == "AWSEvents.PutEvents":
		rec.Op = PutEvents
	case target == "AmazonSQS.SendMessage":
		rec.Op = SendMessage
	case r.URL.Path == InvokePath:
		rec.Op = Invoke
	default:
		rec.Op = Publish
	}
	if rec.Op != Invoke && !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		AWSError(w, http.StatusForbidden, rec.Op, "MissingAuthenticationToken", "unsigned request")
		return
	}
	if fault != nil && fault(n, w) {
		return
	}
	switch rec.Op {
	case PutEvents:
		var in struct{ Entries []map[string]any }
		if json.Unmarshal(body, &in) != nil || len(in.Entries) != 1 {
			AWSError(w, http.StatusBadRequest, rec.Op, "ValidationException", "want one entry")
			return
		}
		rec.Fields = in.Entries[0]
		id := fmt.Sprintf("eb-%d", n)
		ev := events.EventBridgeEvent{Version: "0", ID: id, Source: str(rec.Fields["Source"]),
			DetailType: str(rec.Fields["DetailType"]), Detail: json.RawMessage(str(rec.Fields["Detail"]))}
		rec.Change, rec.Err = source.EventBridge(ev)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprintf(w, `{"Entries":[{"EventId":%q}],"FailedEntryCount":0}`, id)
	case SendMessage:
		_ = json.Unmarshal(body, &rec.Fields)
		msg := str(rec.Fields["MessageBody"])
		sum := md5.Sum([]byte(msg)) // the SDK checks it
		rec.Change, rec.Err = source.SQS(events.SQSMessage{MessageId: fmt.Sprintf("sqs-%d", n), Body: msg})
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		fmt.Fprintf(w, `{"MessageId":"sqs-%d","MD5OfMessageBody":%q}`, n, hex.EncodeToString(sum[:]))
	case Publish:
		form, _ := url.ParseQuery(string(body))
		for k := range form {
			rec.Fields[k] = form.Get(k)
		}
		rec.Change, rec.Err = source.SNS(events.SNSEntity{MessageID: fmt.Sprintf("sns-%d", n), Message: form.Get("Message")})
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>sns-%d</MessageId></PublishResult><ResponseMetadata><RequestId>r%d</RequestId></ResponseMetadata></PublishResponse>`, n, n)
	case Invoke:
		var ev events.EventBridgeEvent
		if rec.Err = json.Unmarshal(body, &ev); rec.Err == nil {
			rec.Change, rec.Err = source.EventBridge(ev)
		}
		_ = json.Unmarshal(body, &rec.Fields)
		_, _ = w.Write([]byte("null")) // the handler's answer to an EventBridge event
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, rec)
	s.mu.Unlock()
}

func str(v any) string { s, _ := v.(string); return s }
