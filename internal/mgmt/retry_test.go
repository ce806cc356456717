package mgmt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slack absorbs scheduling on a shared, loaded machine (and the race detector) in the timing
// assertions. The scenarios are sized so that it is small beside the intervals they prove.
const slack = 150 * time.Millisecond

// wideSlack is slack for the scenarios sized to take more of it: under the race detector on a
// 2-core machine shared with other builds, a return was once seen 390 ms late.
const wideSlack = 500 * time.Millisecond

// faultServer answers attempt n (0-based, counted over the server's life) with script(n).
type faultServer struct {
	*httptest.Server
	mu       sync.Mutex
	arrivals []time.Time
}

func newFaultServer(t *testing.T, script func(n int, w http.ResponseWriter, r *http.Request)) *faultServer {
	t.Helper()
	fs := &faultServer{}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fs.mu.Lock()
		n := len(fs.arrivals)
		fs.arrivals = append(fs.arrivals, time.Now())
		fs.mu.Unlock()
		script(n, w, r)
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *faultServer) count() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.arrivals)
}

func (fs *faultServer) gaps() []time.Duration {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var g []time.Duration
	for i := 1; i < len(fs.arrivals); i++ {
		g = append(g, fs.arrivals[i].Sub(fs.arrivals[i-1]))
	}
	return g
}

func throttle(w http.ResponseWriter) {
	answer{429, "LimitExceededException", "application/json", `{"message":"Rate exceeded"}`}.serve(w)
}

func newClient(t *testing.T, url string, r Retry) *Client {
	t.Helper()
	c, err := New(Config{Endpoint: url + "/prod", Region: "eu-west-1", Credentials: testCreds, Retry: r})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestThrottledThenRecovers(t *testing.T) {
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n < 3 {
			throttle(w)
		}
	})
	c := newClient(t, fs.URL, Retry{Base: 10 * time.Millisecond, Cap: 40 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.PostWith(ctx, "c", []byte("m"), c.Retry())
	if err != nil || res.Attempts != 4 || res.Throttled != 3 || fs.count() != 4 {
		t.Fatalf("PostWith = %+v, %v after %d requests; want success after 4 attempts, 3 throttled", res, err, fs.count())
	}
}

// TestThrottledPastDeadline: throttling that outlasts the deadline is retried until the margin
// and no further, and says so.
func TestThrottledPastDeadline(t *testing.T) {
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) { throttle(w) })
	r := Retry{Base: 10 * time.Millisecond, Cap: 100 * time.Millisecond, Margin: 500 * time.Millisecond}
	c := newClient(t, fs.URL, r)
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(1500*time.Millisecond))
	defer cancel()
	res, err := c.PostWith(ctx, "c", []byte("m"), r)
	elapsed := time.Since(start)
	stop := time.Second // the deadline less the margin
	if !errors.Is(err, ErrThrottled) || !errors.Is(err, ErrDeadline) {
		t.Fatalf("PostWith = %v, want ErrThrottled and ErrDeadline", err)
	}
	var e *Error
	errors.As(err, &e)
	if !e.Deadline || e.Attempts != res.Attempts || e.Throttled != res.Attempts || res.Attempts != fs.count() {
		t.Errorf("error %+v, result %+v, server saw %d", e, res, fs.count())
	}
	// It stops when the next backoff would cross the margin: after stop−Cap, by stop.
	if elapsed > stop+slack || elapsed < stop-r.Cap-slack {
		t.Errorf("returned after %v; want within [%v, %v]", elapsed, stop-r.Cap, stop)
	}
	// Backoffs average at most Cap/2 here, so a second holds well over ten attempts.
	if res.Attempts < 10 {
		t.Errorf("only %d attempts in %v", res.Attempts, elapsed)
	}
}

// TestNoSleepPastMargin: a backoff that would end past the deadline less the margin is not
// slept; the call returns at once. Backoffs pinned at 400ms, stop at 1s: attempts at 0, 400 and
// 800ms, then the next would start at 1.2s, so the call ends at about 800ms, not 1.2s.
func TestNoSleepPastMargin(t *testing.T) {
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) { throttle(w) })
	r := Retry{Base: 400 * time.Millisecond, Cap: 400 * time.Millisecond, Margin: 500 * time.Millisecond}
	c := newClient(t, fs.URL, r)
	c.jitter = func(d time.Duration) time.Duration { return d }
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(1500*time.Millisecond))
	defer cancel()
	res, err := c.PostWith(ctx, "c", []byte("m"), r)
	el := time.Since(start)
	if !errors.Is(err, ErrDeadline) || res.Attempts != 3 || el < 800*time.Millisecond || el > 800*time.Millisecond+slack {
		t.Fatalf("PostWith = %+v, %v after %v; want 3 attempts and ErrDeadline after about 800ms", res, err, el)
	}
	// Returned 200ms before the deadline less the margin, it says that time ended it.
	if e := (*Error)(nil); !errors.As(err, &e) || !e.RetriesEndedByDeadline() {
		t.Fatalf("%v: RetriesEndedByDeadline false, want true", err)
	}
}

// TestCutByMarginKeepsLastAnswer: a 429, then an attempt that hangs until the margin cuts it:
// the call is "throttled past the deadline", not "unavailable".
func TestCutByMarginKeepsLastAnswer(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 {
			throttle(w)
			return
		}
		<-release
	})
	r := Retry{Base: time.Millisecond, AttemptTimeout: time.Minute, Margin: 300 * time.Millisecond}
	c := newClient(t, fs.URL, r)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := c.PostWith(ctx, "c", []byte("m"), r)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrThrottled) || !errors.Is(err, ErrDeadline) || errors.Is(err, ErrUnavailable) ||
		res.Attempts != 2 || e.Attempts != 2 || e.Status != 429 || !e.RetriesEndedByDeadline() {
		t.Fatalf("PostWith = %+v, %v (ended by the deadline: %v); want ErrThrottled and ErrDeadline after 2 attempts, ended by the deadline",
			res, err, e != nil && e.RetriesEndedByDeadline())
	}
}

// TestNeverRetried: 410, 403, 413 and other 4xx answers are final.
func TestNeverRetried(t *testing.T) {
	for _, a := range []answer{
		{410, "GoneException", "application/json", `{}`},
		{403, "ForbiddenException", "application/json", `{"message":"Forbidden"}`},
		{413, "PayloadTooLargeException", "application/json", `{"message":"Message too long"}`},
		{400, "BadRequestException", "application/json", `{}`},
	} {
		fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) { a.serve(w) })
		c := newClient(t, fs.URL, Retry{Base: time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := c.PostWith(ctx, "c", []byte("m"), c.Retry())
		cancel()
		if err == nil || errors.Is(err, ErrDeadline) || res.Attempts != 1 || fs.count() != 1 {
			t.Errorf("%d: PostWith = %+v, %v after %d requests; want one attempt, no deadline", a.status, res, err, fs.count())
		}
	}
}

func TestServerErrorsRetried(t *testing.T) {
	statuses := []int{500, 502, 503}
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n < len(statuses) {
			w.WriteHeader(statuses[n])
		}
	})
	c := newClient(t, fs.URL, Retry{Base: 5 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.PostWith(ctx, "c", []byte("m"), c.Retry())
	if err != nil || res.Attempts != 4 || res.Throttled != 0 {
		t.Fatalf("PostWith = %+v, %v; want success at attempt 4", res, err)
	}
}

// TestServerErrorPastDeadline: persistent 503s end as ErrServer at the margin, also when the
// margin cuts the last attempt short (a slow 503 every other time makes that likely).
func TestServerErrorPastDeadline(t *testing.T) {
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n%2 == 1 {
			time.Sleep(40 * time.Millisecond)
		}
		w.WriteHeader(503)
	})
	r := Retry{Base: 5 * time.Millisecond, Cap: 50 * time.Millisecond, Margin: 300 * time.Millisecond}
	c := newClient(t, fs.URL, r)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	_, err := c.PostWith(ctx, "c", []byte("m"), r)
	if !errors.Is(err, ErrServer) || !errors.Is(err, ErrDeadline) {
		t.Fatalf("PostWith = %v, want ErrServer and ErrDeadline", err)
	}
	if el := time.Since(start); el > 500*time.Millisecond+slack {
		t.Fatalf("returned after %v, past the deadline less the margin (500ms)", el)
	}
}

// TestSlowAnswers: an attempt that outlasts AttemptTimeout is abandoned and retried.
func TestSlowAnswers(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n < 2 {
			select {
			case <-release:
			case <-time.After(2 * time.Second):
			}
		}
	})
	r := Retry{Base: 5 * time.Millisecond, AttemptTimeout: 150 * time.Millisecond}
	c := newClient(t, fs.URL, r)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.PostWith(ctx, "c", []byte("m"), r)
	if err != nil || res.Attempts != 3 {
		t.Fatalf("PostWith = %+v, %v; want success at attempt 3", res, err)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 300*time.Millisecond+2*r.ceiling(2)+slack {
		t.Fatalf("took %v; two attempts of 150ms and two short backoffs expected", el)
	}
}

// TestSlowAnswersPastDeadline: with slow answers throughout, no attempt outlives the deadline
// less the margin, however long AttemptTimeout is.
func TestSlowAnswersPastDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
	})
	for _, r := range []Retry{
		{Base: 5 * time.Millisecond, AttemptTimeout: 200 * time.Millisecond, Margin: 800 * time.Millisecond},
		{Base: 5 * time.Millisecond, AttemptTimeout: time.Minute, Margin: 800 * time.Millisecond},
	} {
		// Sized so that a loaded machine's scheduling delay (wideSlack) stays well inside the
		// margin: returning by the deadline less the margin is told apart from the deadline.
		c := newClient(t, fs.URL, r)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := c.PostWith(ctx, "c", []byte("m"), r)
		cancel()
		el := time.Since(start)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrDeadline) {
			t.Errorf("AttemptTimeout %v: PostWith = %v, want ErrUnavailable and ErrDeadline", r.AttemptTimeout, err)
		}
		if el > 1200*time.Millisecond+wideSlack || el < 1200*time.Millisecond-r.AttemptTimeout {
			t.Errorf("AttemptTimeout %v: returned after %v, want by 1.2s (deadline 2s less margin 800ms)", r.AttemptTimeout, el)
		}
		if r.AttemptTimeout == time.Minute && res.Attempts != 1 {
			t.Errorf("one attempt cut at the margin expected, got %d", res.Attempts)
		}
		if r.AttemptTimeout == 200*time.Millisecond && res.Attempts < 3 {
			t.Errorf("%d attempts of 200ms in 1.2s", res.Attempts)
		}
	}
}

// hungListener accepts connections and never answers; it counts them.
func hungListener(t *testing.T) (url string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int32{}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	return "http://" + ln.Addr().String(), accepted
}

// TestHungConnection: a connection that never answers costs one AttemptTimeout; the retry goes
// out on a new connection; the call ends by the margin.
func TestHungConnection(t *testing.T) {
	url, accepted := hungListener(t)
	r := Retry{Base: 5 * time.Millisecond, Cap: 20 * time.Millisecond, AttemptTimeout: 200 * time.Millisecond, Margin: 800 * time.Millisecond}
	c := newClient(t, url, r)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := c.PostWith(ctx, "c", []byte("m"), r)
	el := time.Since(start)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrDeadline) {
		t.Fatalf("PostWith = %v, want ErrUnavailable and ErrDeadline", err)
	}
	if el > 1200*time.Millisecond+wideSlack {
		t.Fatalf("returned after %v, past the deadline less the margin (1.2s)", el)
	}
	// The kernel completes a dial before the listener's Accept runs: let the count catch up.
	for wait := time.Now(); int(accepted.Load()) < res.Attempts && time.Since(wait) < time.Second; {
		time.Sleep(10 * time.Millisecond)
	}
	if res.Attempts < 4 || int(accepted.Load()) < res.Attempts {
		t.Fatalf("%d attempts over %d connections; want ≥ 4 attempts, each on a new connection", res.Attempts, accepted.Load())
	}
}

// TestResetConnection: a connection closed without an answer is a transport failure, retried.
func TestResetConnection(t *testing.T) {
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n < 2 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	})
	c := newClient(t, fs.URL, Retry{Base: 5 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.PostWith(ctx, "c", []byte("m"), Retry{Base: 5 * time.Millisecond})
	if err != nil || res.Attempts != 3 {
		t.Fatalf("PostWith = %+v, %v; want success at attempt 3", res, err)
	}
	_, err = c.PostWith(ctx, "c", []byte("m"), Retry{MaxAttempts: 1})
	if err != nil {
		t.Fatalf("after the resets: %v", err)
	}
}

// TestRefusedConnection: nothing listening is ErrUnavailable, retried until the margin.
func TestRefusedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	r := Retry{Base: 5 * time.Millisecond, Cap: 20 * time.Millisecond, Margin: 100 * time.Millisecond}
	c := newClient(t, url, r)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	res, err := c.PostWith(ctx, "c", []byte("m"), r)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrDeadline) || res.Attempts < 3 {
		t.Fatalf("PostWith = %+v, %v; want ErrUnavailable and ErrDeadline after several attempts", res, err)
	}
}

// TestBackoffBounds: before retry n the backoff is drawn from [0, min(Cap, Base·2^(n-1)));
// pinned to the top of that range, the waits are those ceilings, and the server sees the attempts
// at least that far apart (a wait never ends early; the machine's load may only lengthen it).
func TestBackoffBounds(t *testing.T) {
	r := Retry{Base: 20 * time.Millisecond, Cap: 80 * time.Millisecond, MaxAttempts: 6}
	want := []time.Duration{20, 40, 80, 80, 80}
	for i := range want {
		want[i] *= time.Millisecond
		if got := r.ceiling(i + 1); got != want[i] {
			t.Fatalf("ceiling(%d) = %v, want %v", i+1, got, want[i])
		}
	}
	for _, pinned := range []bool{true, false} {
		fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) { throttle(w) })
		c := newClient(t, fs.URL, r)
		var mu sync.Mutex
		var ceilings, waits []time.Duration
		c.jitter = func(d time.Duration) time.Duration {
			w := fullJitter(d)
			if pinned {
				w = d
			}
			mu.Lock()
			ceilings, waits = append(ceilings, d), append(waits, w)
			mu.Unlock()
			return w
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := c.PostWith(ctx, "c", []byte("m"), r)
		cancel()
		if !errors.Is(err, ErrThrottled) || !errors.Is(err, ErrDeadline) || res.Attempts != 6 {
			t.Fatalf("PostWith = %+v, %v; want 6 throttled attempts, then ErrDeadline (MaxAttempts)", res, err)
		}
		if fmt.Sprint(ceilings) != fmt.Sprint(want) {
			t.Fatalf("backoff ceilings %v, want %v", ceilings, want)
		}
		for i, g := range fs.gaps() {
			if waits[i] < 0 || waits[i] >= want[i] && !pinned || g < waits[i] {
				t.Errorf("pinned=%v: before attempt %d waited %v (drawn %v, ceiling %v)", pinned, i+2, g, waits[i], want[i])
			}
		}
	}
}

// TestFullJitter: draws are uniform over [0, ceiling).
func TestFullJitter(t *testing.T) {
	const ceil = time.Second
	var sum time.Duration
	for range 10000 {
		d := fullJitter(ceil)
		if d < 0 || d >= ceil {
			t.Fatalf("fullJitter(%v) = %v", ceil, d)
		}
		sum += d
	}
	if mean := sum / 10000; mean < 450*time.Millisecond || mean > 550*time.Millisecond {
		t.Fatalf("mean %v, want about %v", mean, ceil/2)
	}
	if fullJitter(0) != 0 {
		t.Fatal("fullJitter(0) != 0")
	}
}

// TestDeadlineWithinMargin: nothing is sent when the margin is already reached.
func TestDeadlineWithinMargin(t *testing.T) {
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) {})
	c := newClient(t, fs.URL, Retry{})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond) // < DefaultMargin
	defer cancel()
	res, err := c.PostWith(ctx, "c", []byte("m"), c.Retry())
	if !errors.Is(err, ErrDeadline) || res.Attempts != 0 || fs.count() != 0 {
		t.Fatalf("PostWith = %+v, %v, %d requests; want ErrDeadline and nothing sent", res, err, fs.count())
	}
	for _, s := range []error{ErrGone, ErrForbidden, ErrTooLarge, ErrThrottled, ErrServer, ErrUnavailable, ErrRejected} {
		if errors.Is(err, s) {
			t.Fatalf("%v also matches %v", err, s)
		}
	}
}

// TestRetryGivenBackUnchanged: a client's policy, as Retry returns it, means the same when given
// back to PostWith: no margin stays no margin (it used to become the 1 s default, and a post
// with 500 ms left was not sent).
func TestRetryGivenBackUnchanged(t *testing.T) {
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) {})
	c := newClient(t, fs.URL, Retry{Margin: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond) // < DefaultMargin
	defer cancel()
	res, err := c.PostWith(ctx, "c", []byte("m"), c.Retry())
	if err != nil || res.Attempts != 1 || fs.count() != 1 {
		t.Fatalf("PostWith(c.Retry()) = %+v, %v, %d requests; want one post sent, as c.Post sends it", res, err, fs.count())
	}
	if err := c.Post(ctx, "c", []byte("m")); err != nil || fs.count() != 2 {
		t.Fatalf("Post = %v, %d requests", err, fs.count())
	}
}

// TestNoDeadlineUsesMaxElapsed: a context without a deadline is bounded by MaxElapsed.
func TestNoDeadlineUsesMaxElapsed(t *testing.T) {
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) { throttle(w) })
	r := Retry{Base: 5 * time.Millisecond, Cap: 20 * time.Millisecond, MaxElapsed: 400 * time.Millisecond, Margin: -1}
	c := newClient(t, fs.URL, r)
	start := time.Now()
	_, err := c.PostWith(context.Background(), "c", []byte("m"), r)
	if el := time.Since(start); !errors.Is(err, ErrDeadline) || el > 400*time.Millisecond+slack || el < 400*time.Millisecond-r.Cap-slack {
		t.Fatalf("PostWith = %v after %v; want ErrDeadline after about 400ms", err, el)
	}
}

// TestCanceled: the caller's cancellation ends the call at once, and is not a deadline.
func TestCanceled(t *testing.T) {
	fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request) { throttle(w) })
	r := Retry{Base: time.Second, Cap: time.Second}
	c := newClient(t, fs.URL, r)
	c.jitter = func(d time.Duration) time.Duration { return d }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.PostWith(ctx, "c", []byte("m"), r)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrDeadline) || time.Since(start) > 100*time.Millisecond+slack {
		t.Fatalf("PostWith = %v after %v; want context.Canceled promptly", err, time.Since(start))
	}
}

// TestConcurrentPostsDoNotMix: pooled templates carry each post's own id and body, under load.
func TestConcurrentPostsDoNotMix(t *testing.T) {
	var bad atomic.Int32
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := strings.TrimPrefix(r.URL.Path, "/@connections/")
		if string(body) != strings.Repeat(id, 1+len(id)%7) || r.Header.Get("Amz-Sdk-Request") != "attempt=1" {
			bad.Add(1)
		}
		served.Add(1)
	}))
	defer srv.Close()
	c, err := New(Config{Endpoint: srv.URL, Region: "r", Credentials: testCreds})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := range 50 {
				id := fmt.Sprintf("w%di%d", w, i)
				data := []byte(strings.Repeat(id, 1+len(id)%7))
				if err := c.Post(context.Background(), id, data); err != nil {
					t.Error(err)
				}
				copy(data, bytes.Repeat([]byte("X"), len(data))) // reused at once, as the fan-out will
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 || served.Load() != 32*50 {
		t.Fatalf("%d of %d posts arrived wrong", bad.Load(), served.Load())
	}
}

// lateReader is a RoundTripper that answers at once and reads the request body afterwards, as
// net/http may when a server answers before reading the whole body.
type lateReader struct {
	done    chan []byte
	started chan struct{}
}

func (l *lateReader) RoundTrip(req *http.Request) (*http.Response, error) {
	go func() {
		<-l.started
		b, _ := io.ReadAll(req.Body)
		req.Body.Close()
		l.done <- b
	}()
	return &http.Response{StatusCode: 413, Header: http.Header{"X-Amzn-Errortype": {"PayloadTooLargeException"}},
		Body: io.NopCloser(strings.NewReader(`{"message":"Message too long"}`))}, nil
}

// TestCallerBufferNotKept: once Post has returned, whatever net/http still does with the request
// never touches the caller's buffer (the race detector would see it), so the caller may reuse it
// at once; a late read still sends what was posted.
func TestCallerBufferNotKept(t *testing.T) {
	lr := &lateReader{done: make(chan []byte, 1), started: make(chan struct{})}
	c, err := New(Config{Endpoint: "https://x.execute-api.eu-west-1.amazonaws.com/prod", Region: "r", Credentials: testCreds, Transport: lr})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("a"), 1<<20)
	if err := c.Post(context.Background(), "c", data); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Post = %v, want ErrTooLarge", err)
	}
	for i := range data {
		data[i] = 'b'
	}
	close(lr.started)
	if got := <-lr.done; !bytes.Equal(got, bytes.Repeat([]byte("a"), 1<<20)) {
		t.Fatalf("late read of the body: %d bytes, not the %d posted", len(got), 1<<20)
	}
}

// TestTemplatesReused: on the normal path (answered, written) a template goes back to its pool:
// sequential posts, gets and deletes over HTTP/1.1 and HTTP/2 reuse one or two.
func TestTemplatesReused(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			if r.Method == http.MethodGet {
				w.Write([]byte(`{}`))
			}
		}))
		srv.EnableHTTP2 = h2
		srv.StartTLS()
		tr := NewTransport(4)
		tr.TLSClientConfig.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		if h2 {
			var p http.Protocols
			p.SetHTTP2(true)
			tr.Protocols = &p
		}
		c, err := New(Config{Endpoint: srv.URL, Region: "r", Credentials: testCreds, Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for i := range 200 {
			if err := c.Post(ctx, "c", bytes.Repeat([]byte("x"), 1+i*100)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			if err := c.Delete(ctx, "c"); err != nil {
				t.Fatal(err)
			}
		}
		// sync.Pool drops its entries at garbage collections (and a quarter of them at random
		// under the race detector): a few are reuse, 200 would not be.
		limit := int64(10)
		if raceEnabled {
			limit = 120
		}
		for _, ts := range []*templates{c.post, c.get, c.del} {
			t.Logf("h2=%v %s: %d templates for 200 calls", h2, ts.method, ts.created.Load())
			if n := ts.created.Load(); n > limit {
				t.Errorf("h2=%v %s: %d templates made for 200 sequential calls", h2, ts.method, n)
			}
		}
		srv.Close()
	}
}

// TestWithRetryShares: a client made by WithRetry calls under its own policy (here at most two
// attempts, announced in Amz-Sdk-Request) while the original keeps retrying, and both use one
// keep-alive pool: one connection serves them all, one after another.
func TestWithRetryShares(t *testing.T) {
	var conns atomic.Int64
	var mu sync.Mutex
	var headers []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		headers = append(headers, r.Header.Get("Amz-Sdk-Request"))
		n := len(headers)
		mu.Unlock()
		if n <= 5 {
			throttle(w)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newClient(t, srv.URL, Retry{Base: time.Millisecond, Cap: time.Millisecond})
	v := c.WithRetry(Retry{Base: time.Millisecond, Cap: time.Millisecond, MaxAttempts: 2})
	if v.Retry().MaxAttempts != 2 || c.Retry().MaxAttempts != 0 {
		t.Fatalf("policies: view %+v, original %+v", v.Retry(), c.Retry())
	}
	err := v.Post(context.Background(), "c", []byte("x"))
	if !errors.Is(err, ErrThrottled) || !errors.Is(err, ErrDeadline) {
		t.Fatalf("the view's post throttled twice: %v, want throttled after its 2 attempts", err)
	}
	if err := c.Post(context.Background(), "c", []byte("x")); err != nil {
		t.Fatalf("the original's post: %v, want it delivered after the throttling", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"attempt=1; max=2", "attempt=2; max=2", "attempt=1", "attempt=2", "attempt=3", "attempt=4"}
	if fmt.Sprint(headers) != fmt.Sprint(want) {
		t.Fatalf("Amz-Sdk-Request headers %q, want %q", headers, want)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for sequential calls of both clients, want 1 (one pool)", n)
	}
}
