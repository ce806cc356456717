package mgmt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyrand "github.com/aws/smithy-go/rand"
)

// wireServer is a raw TCP HTTP/1.1 server that records every request exactly as its bytes
// arrived, and answers each with the next canned response (200 and an empty body once they run
// out). It closes every connection after one answer, so each request is read whole and alone.
type wireServer struct {
	url     string
	mu      sync.Mutex
	reqs    [][]byte
	answers []wireAnswer
}

// wireAnswer is a canned response: the status line and headers (each ending in CRLF), and a body.
type wireAnswer struct{ head, body string }

func newWireServer(t *testing.T, answers ...wireAnswer) *wireServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &wireServer{url: "http://" + ln.Addr().String(), answers: answers}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.serve(c)
		}
	})
	return s
}

func (s *wireServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	var raw []byte
	n := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		raw = append(raw, line...)
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if line == "\r\n" {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return
	}
	raw = append(raw, body...)
	s.mu.Lock()
	s.reqs = append(s.reqs, raw)
	answer := wireAnswer{head: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"}
	if len(s.answers) > 0 {
		answer, s.answers = s.answers[0], s.answers[1:]
	}
	s.mu.Unlock()
	io.WriteString(c, answer.head+"Connection: close\r\n\r\n"+answer.body)
}

// answer queues the next answers.
func (s *wireServer) answer(a ...wireAnswer) {
	s.mu.Lock()
	s.answers = append(s.answers, a...)
	s.mu.Unlock()
}

func (s *wireServer) take() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reqs
	s.reqs = nil
	return r
}

// header returns the value of header name in a raw request.
func header(raw []byte, name string) string {
	for _, line := range strings.Split(string(raw), "\r\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// withoutUserAgent replaces the User-Agent value, the one header allowed to differ.
func withoutUserAgent(raw []byte) []byte {
	return regexp.MustCompile(`(?m)^User-Agent: [^\r]*\r$`).ReplaceAll(raw, []byte("User-Agent: <ignored>\r"))
}

// TestRequestsAreTheSDKs captures the SDK client's request on a raw socket, reads its X-Amz-Date
// and Amz-Sdk-Invocation-Id, makes our client send the same operation at that time with that
// id, and compares the two requests byte for byte: request line, every header (Authorization and
// its signature, X-Amz-Date, X-Amz-Security-Token, Content-Type, Content-Length,
// Amz-Sdk-Request, Accept-Encoding, Host) and body.
//
// The one header ignored is User-Agent: it is not signed (SigV4 excludes it), and the SDK's
// names its own middleware (api/apigatewaymanagementapi#<version>, m/<feature codes> that change
// with the retry mode and the credentials' source). Ours is built by the SDK's own user-agent
// builder, and the test asserts it is the same family: identical up to where the SDK's names its
// api. Amz-Sdk-Invocation-Id is signed, so it cannot be ignored: ours is random per call like
// the SDK's (same format, tested below), and the test injects the SDK's value.
func TestRequestsAreTheSDKs(t *testing.T) {
	bigID := "L0SM9cOFvHcCIhw=+/ é?#%"
	big := bytes.Repeat([]byte{0, 1, 2, 0xff, '"', '\n'}, 128*1024/6)
	cases := []struct {
		name      string
		stage     string
		token     string
		op        string
		connID    string
		data      []byte
		sdkMax    int // the SDK retryer's MaxAttempts: 3 is its default; 0 unbounded
		ourMax    int
		answers   []wireAnswer
		wantTries int
	}{
		{name: "post/json/default-sdk", stage: "/prod", token: "SESSION", op: "post", connID: "L0SM9cOFvHcCIhw=",
			data: []byte(`{"id":"1","type":"next","payload":{"data":{"messageAdded":{"text":"hi"}}}}`), sdkMax: 3, ourMax: 3, wantTries: 1},
		{name: "post/unbounded-attempts", stage: "/prod", token: "SESSION", op: "post", connID: "L0SM9cOFvHcCIhw=",
			data: []byte(`{"type":"ka"}`), sdkMax: 0, ourMax: 0, wantTries: 1},
		{name: "post/128KiB-binary/odd-id/no-stage/no-token", op: "post", connID: bigID, data: big, sdkMax: 3, ourMax: 3, wantTries: 1},
		{name: "post/empty", stage: "/dev/", op: "post", connID: "abc", data: []byte{}, sdkMax: 3, ourMax: 3, wantTries: 1},
		{name: "get", stage: "/prod", token: "SESSION", op: "get", connID: "L0SM9cOFvHcCIhw=", sdkMax: 3, ourMax: 3, wantTries: 1,
			answers: []wireAnswer{{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n", "{}"}}},
		{name: "delete", stage: "/prod", op: "delete", connID: "L0SM9cOFvHcCIhw=", sdkMax: 3, ourMax: 3, wantTries: 1,
			answers: []wireAnswer{{head: "HTTP/1.1 204 No Content\r\n"}}},
		{name: "post/retried-after-503", stage: "/prod", token: "SESSION", op: "post", connID: "L0SM9cOFvHcCIhw=",
			data: []byte(`{"type":"next"}`), sdkMax: 3, ourMax: 3, wantTries: 2,
			answers: []wireAnswer{{"HTTP/1.1 503 Service Unavailable\r\nX-Amzn-ErrorType: ServiceUnavailableException\r\nContent-Length: 2\r\n", "{}"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", tc.token)

			// The SDK's client, as NewFromConfig builds it; only the retryer's attempt bound is
			// chosen per case, and its backoff is zeroed so that the retry case runs fast.
			// One server for both clients: the signature covers the Host, port included.
			srv := newWireServer(t, tc.answers...)
			sdk := apigatewaymanagementapi.NewFromConfig(aws.Config{Region: "eu-west-1", Credentials: creds},
				func(o *apigatewaymanagementapi.Options) {
					o.BaseEndpoint = aws.String(srv.url + tc.stage)
					var r aws.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
						so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
					})
					if tc.sdkMax != 3 {
						r = retry.AddWithMaxAttempts(r, tc.sdkMax)
					}
					o.Retryer = r
				})
			var err error
			switch tc.op {
			case "post":
				_, err = sdk.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(tc.connID), Data: tc.data})
			case "get":
				_, err = sdk.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(tc.connID)})
			case "delete":
				_, err = sdk.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(tc.connID)})
			}
			if err != nil {
				t.Fatalf("SDK %s: %v", tc.op, err)
			}
			want := srv.take()
			if len(want) != tc.wantTries {
				t.Fatalf("SDK sent %d requests, want %d", len(want), tc.wantTries)
			}

			// Ours, at the SDK's signing times, with the SDK's invocation id.
			var times []time.Time
			for _, raw := range want {
				ts, err := time.Parse("20060102T150405Z", header(raw, "X-Amz-Date"))
				if err != nil {
					t.Fatalf("X-Amz-Date of the SDK's request: %v\n%s", err, raw)
				}
				times = append(times, ts)
			}
			var clock sync.Mutex
			srv.answer(tc.answers...)
			c, err := New(Config{Endpoint: srv.url + tc.stage, Region: "eu-west-1", Credentials: creds,
				Retry: Retry{MaxAttempts: tc.ourMax, Base: time.Millisecond},
				Now: func() time.Time {
					clock.Lock()
					defer clock.Unlock()
					ts := times[0]
					if len(times) > 1 {
						times = times[1:]
					}
					return ts
				}})
			if err != nil {
				t.Fatal(err)
			}
			c.newID = func() string { return header(want[0], "Amz-Sdk-Invocation-Id") }
			switch tc.op {
			case "post":
				err = c.Post(ctx, tc.connID, tc.data)
			case "get":
				_, err = c.Get(ctx, tc.connID)
			case "delete":
				err = c.Delete(ctx, tc.connID)
			}
			if err != nil {
				t.Fatalf("our %s: %v", tc.op, err)
			}
			got := srv.take()
			if len(got) != len(want) {
				t.Fatalf("we sent %d requests, the SDK %d", len(got), len(want))
			}
			for i := range want {
				w, g := withoutUserAgent(want[i]), withoutUserAgent(got[i])
				if !bytes.Equal(w, g) {
					t.Errorf("attempt %d differs from the SDK's:\n--- SDK\n%s\n--- ours\n%s", i+1, clip(w), clip(g))
				}
			}
			sdkUA, ourUA := header(want[0], "User-Agent"), header(got[0], "User-Agent")
			family, _, ok := strings.Cut(sdkUA, " api/")
			if !ok || !strings.HasPrefix(ourUA, family+" ") {
				t.Errorf("User-Agent %q is not of the SDK's family %q", ourUA, sdkUA)
			}
		})
	}
}

func clip(b []byte) []byte {
	if len(b) > 2000 {
		return append(b[:2000:2000], "…"...)
	}
	return b
}

// TestInvocationIDFormat: our invocation ids are formatted as smithy-go's UUIDs from the same
// bytes, and are distinct.
func TestInvocationIDFormat(t *testing.T) {
	for _, b := range [][16]byte{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}} {
		want, err := smithyrand.NewUUID(bytes.NewReader(b[:])).GetUUID()
		if err != nil {
			t.Fatal(err)
		}
		if got := formatUUID(b); got != want {
			t.Errorf("formatUUID(%x) = %s, smithy-go %s", b, got, want)
		}
	}
	seen := map[string]bool{}
	v4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for range 1000 {
		id := invocationID()
		if !v4.MatchString(id) || seen[id] {
			t.Fatalf("invocation id %q: malformed or repeated", id)
		}
		seen[id] = true
	}
}

// FuzzEscapePath holds appendEscapedPath equal to the SDK serializer's httpbinding.EscapePath.
func FuzzEscapePath(f *testing.F) {
	for _, s := range []string{"", "L0SM9cOFvHcCIhw=", "a/b c+d", "é\x00\xff%41", "-._~"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendEscapedPath(nil, s)), httpbinding.EscapePath(s, true); got != want {
			t.Fatalf("appendEscapedPath(%q) = %q, SDK %q", s, got, want)
		}
	})
}

// TestNewRefusesBadConfig: each required field and malformed endpoint is refused with an error.
func TestNewRefusesBadConfig(t *testing.T) {
	creds := credentials.NewStaticCredentialsProvider("a", "b", "")
	for _, cfg := range []Config{
		{Endpoint: "https://x.execute-api.eu-west-1.amazonaws.com/prod", Credentials: creds},
		{Endpoint: "https://x.execute-api.eu-west-1.amazonaws.com/prod", Region: "eu-west-1"},
		{Endpoint: "ftp://x/prod", Region: "r", Credentials: creds},
		{Endpoint: "https:///prod", Region: "r", Credentials: creds},
		{Endpoint: "https://x/prod?a=b", Region: "r", Credentials: creds},
		{Endpoint: "https://x/pr%20od", Region: "r", Credentials: creds},
		{Endpoint: "://", Region: "r", Credentials: creds},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}

// TestAnonymousIsUnsigned: anonymous credentials send no signature, as the SDK does.
func TestAnonymousIsUnsigned(t *testing.T) {
	s := newWireServer(t)
	c, err := New(Config{Endpoint: s.url, Region: "r", Credentials: aws.AnonymousCredentials{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Post(context.Background(), "x", []byte("m")); err != nil {
		t.Fatal(err)
	}
	raw := s.take()[0]
	for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
		if v := header(raw, h); v != "" {
			t.Errorf("%s: %q sent with anonymous credentials", h, v)
		}
	}
}

// TestSessionTokenDropped: a pooled request signed with a session token does not carry it into
// a later request whose credentials have none.
func TestSessionTokenDropped(t *testing.T) {
	s := newWireServer(t)
	var mu sync.Mutex
	token := "T1"
	c, err := New(Config{Endpoint: s.url, Region: "r", Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		return aws.Credentials{AccessKeyID: "a", SecretAccessKey: "b", SessionToken: token}, nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	c.creds = c.creds.(*aws.CredentialsCache) // uncached below: call the provider every time
	c.creds = aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		return aws.Credentials{AccessKeyID: "a", SecretAccessKey: "b", SessionToken: token}, nil
	})
	ctx := context.Background()
	if err := c.Post(ctx, "x", []byte("m")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	token = ""
	mu.Unlock()
	if err := c.Post(ctx, "x", []byte("m")); err != nil {
		t.Fatal(err)
	}
	reqs := s.take()
	if header(reqs[0], "X-Amz-Security-Token") != "T1" || header(reqs[1], "X-Amz-Security-Token") != "" {
		t.Fatalf("security tokens sent: %q then %q", header(reqs[0], "X-Amz-Security-Token"), header(reqs[1], "X-Amz-Security-Token"))
	}
}

// TestCredentialsFailure: a failing provider is ErrCredentials, not retried.
func TestCredentialsFailure(t *testing.T) {
	s := newWireServer(t)
	boom := errors.New("no role")
	c, err := New(Config{Endpoint: s.url, Region: "r", Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, boom
	})})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.PostWith(context.Background(), "x", []byte("m"), Retry{})
	if !errors.Is(err, ErrCredentials) || !errors.Is(err, boom) || res.Attempts != 1 {
		t.Fatalf("PostWith = %+v, %v; want ErrCredentials wrapping the provider's error after 1 attempt", res, err)
	}
	if n := len(s.take()); n != 0 {
		t.Fatalf("%d requests sent without credentials", n)
	}
}
