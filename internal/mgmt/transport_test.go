package mgmt

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestDefaultTransportReadsLongAnswers: the default transport reads answers through an
// AnswerBufferSize buffer; headers and bodies several times that size (a GetConnection answer
// with a long user agent behind kilobytes of headers, a refusal with a long message) arrive
// whole, on a kept-alive connection.
func TestDefaultTransportReadsLongAnswers(t *testing.T) {
	ua := strings.Repeat("Mozilla/5.0 ", 500) // 6 KB
	msg := strings.Repeat("m", 8<<10)
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for i := range 4 {
			w.Header().Set("X-Padding-"+string(rune('a'+i)), strings.Repeat("p", 1000))
		}
		switch r.Method {
		case http.MethodGet:
			w.Write([]byte(`{"connectedAt":"2026-12-02T10:00:00.000Z","identity":{"sourceIp":"192.0.2.1","userAgent":"` + ua + `"}}`))
		case http.MethodPost:
			w.Header().Set("X-Amzn-Errortype", "ForbiddenException")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"message":"` + msg + `"}`))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	c, err := New(Config{Endpoint: srv.URL, Region: "r", Credentials: testCreds,
		RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.rt.(*http.Transport).ReadBufferSize; got != AnswerBufferSize {
		t.Fatalf("default transport's read buffer %d, want AnswerBufferSize (%d)", got, AnswerBufferSize)
	}
	ctx := context.Background()
	for range 3 {
		info, err := c.Get(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		if info.UserAgent != ua || info.SourceIP != "192.0.2.1" || info.ConnectedAt.IsZero() {
			t.Fatalf("GetConnection answer read as %d-byte user agent, ip %q, connected %v", len(info.UserAgent), info.SourceIP, info.ConnectedAt)
		}
		err = c.Post(ctx, "c", []byte("x"))
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrForbidden) || e.Message != msg {
			t.Fatalf("refusal read as %.200v, want ForbiddenException with the %d-byte message", err, len(msg))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for sequential calls, want 1: a long answer must not cost the connection", n)
	}
}
