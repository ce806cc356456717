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

// TestNoRetryBucket: 1,000 posts against a server throttling to 100/s (as measured in issue 7),
// twice on the same warm client. The SDK's client, configured as the fan-out configures it today
// (standard retryer, 5 attempts, 2 s backoff cap), runs its client-wide retry-token bucket dry (500
// tokens, 5 per throttled retry; aws-sdk-go-v2 1.48 backs throttles off from 1 s, so at 200/s and
// more it copes): posts fail with "retry quota exceeded" within seconds although the deadline is
// 20 s away and the endpoint keeps accepting 100/s. Ours delivers every post of both batches.
// The SDK's and our batches run side by side, against separate servers, to halve the wall time.
func TestNoRetryBucket(t *testing.T) {
	if testing.Short() {
		t.Skip("about 25 s of throttled posting; skipped with -short")
	}
	const n, rate, deadline = 1000, 100.0, 20 * time.Second

	var wg sync.WaitGroup
	wg.Go(func() {
		srv := rateServer(t, rate)
		sdk := apigatewaymanagementapi.NewFromConfig(aws.Config{Region: "eu-west-1", Credentials: testCreds},
			func(o *apigatewaymanagementapi.Options) {
				o.BaseEndpoint = aws.String(srv.URL)
				o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
					so.MaxAttempts = 5
					so.MaxBackoff = 2 * time.Second
				})
			})
		for b := 1; b <= 2; b++ {
			o := batch(n, deadline, func(ctx context.Context, id string) error {
				_, err := sdk.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte("m")})
				return err
			})
			t.Logf("SDK batch %d: %d delivered, %d failed (%d retry quota exceeded), first failure at %v, took %v",
				b, o.delivered, o.failed, o.quota, o.firstFailure, o.took)
			if o.quota < n/4 || o.firstFailure > deadline/4 {
				t.Errorf("SDK batch %d: expected the retry bucket to run dry early (FACTS §8); it did not: %+v", b, o)
			}
		}
	})
	wg.Go(func() {
		srv := rateServer(t, rate)
		c := newClient(t, srv.URL, Retry{})
		for b := 1; b <= 2; b++ {
			o := batch(n, deadline, func(ctx context.Context, id string) error { return c.Post(ctx, id, []byte("m")) })
			t.Logf("our batch %d: %d delivered, %d failed, took %v", b, o.delivered, o.failed, o.took)
			if o.delivered != n || o.failed != 0 {
				t.Errorf("our batch %d: %d of %d delivered, %d failed; want all", b, o.delivered, n, o.failed)
			}
		}
	})
	wg.Wait()
}
