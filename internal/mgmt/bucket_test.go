package mgmt

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
)

// rateServer accepts rate posts per second (a token bucket with a burst of rate/10, as API
// Gateway's account throttle) and answers the rest 429 LimitExceededException.
func rateServer(t *testing.T, rate float64) *httptest.Server {
	var mu sync.Mutex
	burst := rate / 10
	tokens, last := burst, time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		tokens = min(burst, tokens+now.Sub(last).Seconds()*rate)
		last = now
		ok := tokens >= 1
		if ok {
			tokens--
		}
		mu.Unlock()
		if !ok {
			throttle(w)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// shareServer accepts one attempt in every k and answers the others 429: throttling whose share
// does not depend on how fast the client is.
func shareServer(t *testing.T, k int64) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%k != 0 {
			throttle(w)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// batchOutcome is what one batch of posts did.
type batchOutcome struct {
	delivered, failed, quota int64
	firstFailure             time.Duration // since the batch started; 0 when none failed
	took                     time.Duration
}

// batch posts n messages with 64 workers, each post under the batch's deadline, as the fan-out
// does in one invocation.
func batch(n int, deadline time.Duration, post func(ctx context.Context, id string) error) batchOutcome {
	var out batchOutcome
	var next atomic.Int64
	var first atomic.Int64
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				err := post(ctx, fmt.Sprintf("conn%d", i))
				if err == nil {
					atomic.AddInt64(&out.delivered, 1)
					continue
				}
				atomic.AddInt64(&out.failed, 1)
				first.CompareAndSwap(0, int64(time.Since(start)))
				if errors.As(err, new(ratelimit.QuotaExceededError)) {
					atomic.AddInt64(&out.quota, 1)
				}
			}
		})
	}
	wg.Wait()
	out.firstFailure, out.took = time.Duration(first.Load()), time.Since(start)
	return out
}

// TestNoRetryBucket: 1,000 posts, twice on the same warm client, against throttling endpoints.
//
// The SDK's client, configured as the fan-out configures it today (standard retryer, 5 attempts,
// 2 s backoff cap), draws every retry from one client-wide retry-token bucket (500 tokens, 5 per
// throttled retry, refunded when the retry succeeds): once it runs dry, posts fail at once with
// "retry quota exceeded" although the deadline is 20 s away and the endpoint keeps accepting
// posts. Against an endpoint accepting one attempt in four, that is certain whatever the
// machine's speed, and asserted. Against one accepting 100 posts/s (issue 7's measurement) it
// depends on the client offering more than 100/s (aws-sdk-go-v2 1.48 backs throttles off from
// 1 s), which a loaded machine may not: logged for comparison, not asserted.
//
// Ours delivers every post of both batches at 100/s. (It is not run against the one-in-four
// endpoint: there waiting does not improve an attempt's odds, so exponential backoff only adds
// time, and a few posts end, reported as ErrThrottled+ErrDeadline, at the margin. API Gateway's
// throttling is a rate, or a client's full buffer, both of which backing off does relieve.)
// Everything runs side by side, against separate servers, to bound the wall time (~25 s).
func TestNoRetryBucket(t *testing.T) {
	if testing.Short() {
		t.Skip("about 25 s of throttled posting; skipped with -short")
	}
	const n, rate, share, deadline = 1000, 100.0, 4, 20 * time.Second
	sdkPost := func(url string) func(ctx context.Context, id string) error {
		sdk := apigatewaymanagementapi.NewFromConfig(aws.Config{Region: "eu-west-1", Credentials: testCreds},
			func(o *apigatewaymanagementapi.Options) {
				o.BaseEndpoint = aws.String(url)
				o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
					so.MaxAttempts = 5
					so.MaxBackoff = 2 * time.Second
				})
			})
		return func(ctx context.Context, id string) error {
			_, err := sdk.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte("m")})
			return err
		}
	}
	ourPost := func(url string) func(ctx context.Context, id string) error {
		c := newClient(t, url, Retry{})
		return func(ctx context.Context, id string) error { return c.Post(ctx, id, []byte("m")) }
	}
	scenarios := []struct {
		name   string
		srv    *httptest.Server
		post   func(url string) func(ctx context.Context, id string) error
		check  func(b int, o batchOutcome)
		sdk    bool
		assert bool
	}{
		{name: "SDK, 1 in 4 accepted", srv: shareServer(t, share), post: sdkPost, sdk: true, assert: true},
		{name: "SDK, 100/s", srv: rateServer(t, rate), post: sdkPost, sdk: true},
		{name: "ours, 100/s", srv: rateServer(t, rate), post: ourPost, assert: true},
	}
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		wg.Go(func() {
			post := sc.post(sc.srv.URL)
			for b := 1; b <= 2; b++ {
				o := batch(n, deadline, post)
				t.Logf("%s, batch %d: %d delivered, %d failed (%d retry quota exceeded), first failure at %v, took %v",
					sc.name, b, o.delivered, o.failed, o.quota, o.firstFailure, o.took)
				switch {
				case !sc.assert:
				case sc.sdk && (o.quota < n/4 || o.firstFailure > deadline/4):
					t.Errorf("%s, batch %d: expected the retry bucket to run dry early (FACTS §8); it did not", sc.name, b)
				case !sc.sdk && (o.delivered != n || o.failed != 0):
					t.Errorf("%s, batch %d: %d of %d delivered; want all", sc.name, b, o.delivered, n)
				}
			}
		})
	}
	wg.Wait()
}
