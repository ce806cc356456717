package mgmt

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/aws/smithy-go"
)

var testCreds = credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")

// answer is an error response API Gateway (or something in front of it) can give.
type answer struct {
	status  int
	errType string // X-Amzn-ErrorType
	ctype   string
	body    string
}

func (a answer) serve(w http.ResponseWriter) {
	if a.errType != "" {
		w.Header().Set("X-Amzn-ErrorType", a.errType)
	}
	if a.ctype != "" {
		w.Header().Set("Content-Type", a.ctype)
	}
	w.WriteHeader(a.status)
	w.Write([]byte(a.body))
}

// TestErrorClassification decodes each error shape with our client and with the SDK's, and checks
// the sentinel, that the error type agrees with the SDK's error code, and what is retried.
func TestErrorClassification(t *testing.T) {
	cases := []struct {
		name      string
		a         answer
		want      error
		wantType  string
		wantMsg   string
		sdkTyped  any // the SDK's typed error, when it has one
		retryable bool
	}{
		{"410 gone", answer{410, "GoneException", "application/json", `{"message":null}`}, ErrGone, "GoneException", "", &types.GoneException{}, false},
		{"410 type in body only", answer{410, "", "application/json", `{"__type":"GoneException"}`}, ErrGone, "GoneException", "", &types.GoneException{}, false},
		{"410 type with a namespace and a suffix", answer{410, "com.amazon#GoneException:http://internal.amazon.com/", "application/json", `{}`}, ErrGone, "GoneException", "", &types.GoneException{}, false},
		{"403 forbidden", answer{403, "ForbiddenException", "application/json", `{"message":"Forbidden"}`}, ErrForbidden, "ForbiddenException", "Forbidden", &types.ForbiddenException{}, false},
		{"403 bad signature", answer{403, "InvalidSignatureException", "application/json", `{"message":"The request signature we calculated does not match"}`}, ErrForbidden, "InvalidSignatureException", "The request signature we calculated does not match", nil, false},
		{"403 missing token, Message capitalised", answer{403, "", "application/json", `{"Message":"Missing Authentication Token"}`}, ErrForbidden, "", "Missing Authentication Token", nil, false},
		{"413 too large", answer{413, "PayloadTooLargeException", "application/json", `{"message":"Message too long"}`}, ErrTooLarge, "PayloadTooLargeException", "Message too long", &types.PayloadTooLargeException{}, false},
		{"429 limit exceeded", answer{429, "LimitExceededException", "application/json", `{"message":"Rate exceeded"}`}, ErrThrottled, "LimitExceededException", "Rate exceeded", &types.LimitExceededException{}, true},
		{"429 untyped", answer{429, "", "application/json", `{"message":"Too Many Requests"}`}, ErrThrottled, "", "Too Many Requests", nil, true},
		{"500 internal", answer{500, "InternalServerErrorException", "application/json", `{"message":"Internal server error"}`}, ErrServer, "InternalServerErrorException", "Internal server error", nil, true},
		{"502 html", answer{502, "", "text/html", `<html><body>Bad Gateway</body></html>`}, ErrServer, "", "", nil, true},
		{"503 empty", answer{503, "", "", ``}, ErrServer, "", "", nil, true},
		{"400 bad request", answer{400, "BadRequestException", "application/json", `{"message":"Invalid connectionId"}`}, ErrRejected, "BadRequestException", "Invalid connectionId", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tc.a.serve(w) }))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()

			c, err := New(Config{Endpoint: srv.URL + "/prod", Region: "eu-west-1", Credentials: testCreds, Retry: Retry{MaxAttempts: 1}})
			if err != nil {
				t.Fatal(err)
			}
			perr := c.Post(ctx, "conn1", []byte("m"))
			var e *Error
			if !errors.As(perr, &e) {
				t.Fatalf("Post = %v, want *Error", perr)
			}
			if !errors.Is(perr, tc.want) || e.Status != tc.a.status || e.Type != tc.wantType || e.Message != tc.wantMsg ||
				e.Op != "post" || e.ConnID != "conn1" || e.Attempts != 1 {
				t.Errorf("got %#v (%v), want %v, status %d, type %q, message %q", e, perr, tc.want, tc.a.status, tc.wantType, tc.wantMsg)
			}
			if e.retryable() != tc.retryable {
				t.Errorf("retryable = %v, want %v", e.retryable(), tc.retryable)
			}
			for _, other := range []error{ErrGone, ErrForbidden, ErrTooLarge, ErrThrottled, ErrServer, ErrUnavailable, ErrRejected, ErrCredentials} {
				if other != tc.want && errors.Is(perr, other) {
					t.Errorf("%v also matches %v", perr, other)
				}
			}

			// The SDK's reading of the same answer.
			sdk := apigatewaymanagementapi.NewFromConfig(aws.Config{Region: "eu-west-1", Credentials: testCreds, RetryMaxAttempts: 1},
				func(o *apigatewaymanagementapi.Options) { o.BaseEndpoint = aws.String(srv.URL + "/prod") })
			_, serr := sdk.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String("conn1"), Data: []byte("m")})
			if tc.sdkTyped != nil {
				if !errorsAsType(serr, tc.sdkTyped) {
					t.Errorf("SDK: %v, want %T", serr, tc.sdkTyped)
				}
			}
			var api smithy.APIError
			if errors.As(serr, &api) && tc.wantType != "" && api.ErrorCode() != tc.wantType {
				t.Errorf("SDK error code %q, ours %q", api.ErrorCode(), tc.wantType)
			}
		})
	}
}

func errorsAsType(err error, target any) bool {
	switch target.(type) {
	case *types.GoneException:
		var x *types.GoneException
		return errors.As(err, &x)
	case *types.ForbiddenException:
		var x *types.ForbiddenException
		return errors.As(err, &x)
	case *types.PayloadTooLargeException:
		var x *types.PayloadTooLargeException
		return errors.As(err, &x)
	case *types.LimitExceededException:
		var x *types.LimitExceededException
		return errors.As(err, &x)
	}
	return false
}

// TestErrorText: the message names the operation, the id, the classification, API Gateway's
// words and the attempts, and never the payload.
func TestErrorText(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer{429, "LimitExceededException", "application/json", `{"message":"Rate exceeded"}`}.serve(w)
	}))
	defer srv.Close()
	c, err := New(Config{Endpoint: srv.URL, Region: "r", Credentials: testCreds, Retry: Retry{MaxAttempts: 2, Base: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	perr := c.Post(context.Background(), "L0SM9cOFvHcCIhw=", []byte("secret payload"))
	want := "mgmt: post L0SM9cOFvHcCIhw=: throttled (429 LimitExceededException: Rate exceeded) after 2 attempts; deadline margin reached"
	if perr == nil || perr.Error() != want {
		t.Fatalf("error text\n got %v\nwant %s", perr, want)
	}
	if strings.Contains(perr.Error(), "secret") {
		t.Fatal("the payload leaked into the error")
	}
	// MaxAttempts ended it, not time.
	if e := (*Error)(nil); !errors.As(perr, &e) || e.RetriesEndedByDeadline() {
		t.Fatalf("%v: RetriesEndedByDeadline true after MaxAttempts", perr)
	}
}

// TestEmptyConnectionID is refused without a request, as the SDK's validation does.
func TestEmptyConnectionID(t *testing.T) {
	s := newWireServer(t)
	c, err := New(Config{Endpoint: s.url, Region: "r", Credentials: testCreds})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Post(context.Background(), "", []byte("m")); !errors.Is(err, ErrRejected) {
		t.Fatalf("Post with an empty id = %v, want ErrRejected", err)
	}
	if n := len(s.take()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

// TestGet decodes GetConnection's answer as the SDK does.
func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.EscapedPath() != "/prod/@connections/abc%3D" {
			http.Error(w, "wrong request "+r.Method+" "+r.URL.EscapedPath(), 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"connectedAt":"2026-03-04T05:06:07.123Z","identity":{"sourceIp":"192.0.2.1","userAgent":"Mozilla/5.0"},"lastActiveAt":"2026-03-04T05:16:07Z"}`))
	}))
	defer srv.Close()
	c, err := New(Config{Endpoint: srv.URL + "/prod", Region: "r", Credentials: testCreds})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Get(context.Background(), "abc=")
	if err != nil {
		t.Fatal(err)
	}
	want := Info{ConnectedAt: time.Date(2026, 3, 4, 5, 6, 7, 123e6, time.UTC), LastActiveAt: time.Date(2026, 3, 4, 5, 16, 7, 0, time.UTC),
		SourceIP: "192.0.2.1", UserAgent: "Mozilla/5.0"}
	if !info.ConnectedAt.Equal(want.ConnectedAt) || !info.LastActiveAt.Equal(want.LastActiveAt) || info.SourceIP != want.SourceIP || info.UserAgent != want.UserAgent {
		t.Fatalf("Get = %+v, want %+v", info, want)
	}

	sdk := apigatewaymanagementapi.NewFromConfig(aws.Config{Region: "r", Credentials: testCreds},
		func(o *apigatewaymanagementapi.Options) { o.BaseEndpoint = aws.String(srv.URL + "/prod") })
	out, err := sdk.GetConnection(context.Background(), &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String("abc=")})
	if err != nil {
		t.Fatal(err)
	}
	if !out.ConnectedAt.Equal(info.ConnectedAt) || !out.LastActiveAt.Equal(info.LastActiveAt) || *out.Identity.SourceIp != info.SourceIP {
		t.Fatalf("SDK read %+v, we read %+v", out, info)
	}
}

// TestGetUnreadable: a 200 whose body is not connection info is an error, not retried.
func TestGetUnreadable(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Write([]byte(`<html>`))
	}))
	defer srv.Close()
	c, err := New(Config{Endpoint: srv.URL, Region: "r", Credentials: testCreds})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "abc"); !errors.Is(err, ErrServer) || calls != 1 {
		t.Fatalf("Get = %v after %d calls, want ErrServer after 1", err, calls)
	}
}

// TestDelete sends DELETE and accepts 204.
func TestDelete(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Method + " " + r.URL.EscapedPath()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := New(Config{Endpoint: srv.URL + "/prod", Region: "r", Credentials: testCreds})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(context.Background(), "a/b"); err != nil || got != "DELETE /prod/@connections/a%2Fb" {
		t.Fatalf("Delete = %v; server saw %q", err, got)
	}
}
