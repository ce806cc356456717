package mgmttest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
)

// client is internal/mgmt's client pointed at a Gateway served over HTTP, one attempt a call.
func client(t *testing.T, g *mgmttest.Gateway) *mgmt.Client {
	return clientWith(t, g, mgmt.Retry{MaxAttempts: 1})
}

// clientWith is client under the retry policy r.
func clientWith(t *testing.T, g *mgmttest.Gateway, r mgmt.Retry) *mgmt.Client {
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	c, err := mgmt.New(mgmt.Config{Endpoint: srv.URL + "/prod", Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), Retry: r})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// api is what both transports offer.
type api interface {
	Post(ctx context.Context, connID string, data []byte) error
	Get(ctx context.Context, connID string) (mgmt.Info, error)
	Delete(ctx context.Context, connID string) error
}

// TestInProcessMatchesTheClientOverHTTP: every answer, success or fault, looks the same to the
// code under test whether it calls the Gateway directly or through internal/mgmt's client over
// HTTP.
func TestInProcessMatchesTheClientOverHTTP(t *testing.T) {
	for _, transport := range []string{"in process", "client over HTTP"} {
		t.Run(transport, func(t *testing.T) {
			ctx := context.Background()
			g := mgmttest.New()
			var c api = g
			if transport != "in process" {
				c = client(t, g)
			}
			post := func(id string) error { return c.Post(ctx, id, []byte(`{"type":"next"}`)) }
			if err := post("a="); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			g.SetLastActive("a=", at)
			if info, err := c.Get(ctx, "a="); err != nil || !info.LastActiveAt.Equal(at) {
				t.Fatalf("Get = %+v, %v", info, err)
			}
			if err := c.Delete(ctx, "a="); err != nil {
				t.Fatal(err)
			}
			if err := post("a="); !errors.Is(err, mgmt.ErrGone) {
				t.Fatalf("post after delete: %v, want mgmt.ErrGone", err)
			}
			g.Drop("b=")
			if err := post("b="); !errors.Is(err, mgmt.ErrGone) {
				t.Fatalf("post to a dropped connection: %v, want mgmt.ErrGone", err)
			}
			for status, want := range map[int]error{
				403: mgmt.ErrForbidden, 429: mgmt.ErrThrottled, 413: mgmt.ErrTooLarge, 500: mgmt.ErrServer, 503: mgmt.ErrServer,
				400: mgmt.ErrRejected,
			} {
				g.Inject(mgmttest.Fail(status, mgmttest.Post))
				if err := post("c="); !errors.Is(err, want) {
					t.Errorf("post failing with %d: %v, want %v", status, err, want)
				}
			}
			g.Inject(nil)
			if posts := g.Posts(); fmt.Sprint(posts) != `map[a=:[{"type":"next"}]]` {
				t.Fatalf("delivered posts = %v", posts)
			}
		})
	}
}

// TestDelayAndConcurrency: an injected delay holds the call; calls held at once are counted.
func TestDelayAndConcurrency(t *testing.T) {
	g := mgmttest.New()
	g.Inject(func(c mgmttest.Call) mgmttest.Fault { return mgmttest.Fault{Delay: 50 * time.Millisecond} })
	start := time.Now()
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			errs <- g.Post(context.Background(), fmt.Sprint(i), []byte("x"))
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("delayed calls answered after %v", d)
	}
	if n := g.MaxInFlight(); n < 2 || n > 4 {
		t.Fatalf("MaxInFlight = %d, want 2 to 4", n)
	}
	// A caller that gives up ends its call.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	g.Inject(func(c mgmttest.Call) mgmttest.Fault { return mgmttest.Fault{Delay: time.Hour} })
	if err := g.Post(ctx, "x", []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("post past its deadline: %v", err)
	}
}

// TestRegardlessDeliversAfterTheCallerGaveUp: a post whose caller stops waiting does nothing,
// unless its fault is Regardless: then the caller still gets no answer, and the message is
// delivered (recorded 200) when the delay has passed, in process and over HTTP alike.
func TestRegardlessDeliversAfterTheCallerGaveUp(t *testing.T) {
	for _, transport := range []string{"in process", "client over HTTP"} {
		t.Run(transport, func(t *testing.T) {
			g := mgmttest.New()
			var c api = g
			if transport != "in process" {
				c = clientWith(t, g, mgmt.Retry{MaxAttempts: 1, Margin: -1}) // one attempt, up to the deadline
			}
			const delay = 300 * time.Millisecond
			g.Inject(func(call mgmttest.Call) mgmttest.Fault {
				return mgmttest.Fault{Delay: delay, Regardless: call.ConnectionID == "kept="}
			})
			for _, id := range []string{"cut=", "kept="} {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				start := time.Now()
				err := c.Post(ctx, id, []byte(id))
				cancel()
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("post to %s past its caller's deadline: %v, want the context's error", id, err)
				}
				if d := time.Since(start); d >= delay {
					t.Fatalf("post to %s returned after %v: the caller waited for the delay", id, d)
				}
			}
			var got map[string][]string
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				if got = g.Posts(); len(got["kept="]) > 0 {
					break
				}
			}
			if fmt.Sprint(got) != "map[kept=:[kept=]]" {
				t.Fatalf("delivered posts = %v, want only the Regardless one", got)
			}
			for _, call := range g.Calls() {
				if want := map[string]int{"cut=": 0, "kept=": http.StatusOK}[call.ConnectionID]; call.Status != want {
					t.Errorf("%s recorded with status %d, want %d", call.ConnectionID, call.Status, want)
				}
			}
		})
	}
}

// TestUnsignedRequestsAreRefused: like API Gateway, the HTTP endpoint takes only signed requests.
func TestUnsignedRequestsAreRefused(t *testing.T) {
	srv := httptest.NewServer(mgmttest.New())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/prod/@connections/a%3D", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unsigned post answered %d, want 403", resp.StatusCode)
	}
}
