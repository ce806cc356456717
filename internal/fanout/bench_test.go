package fanout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/store"
)

// The benchmarks deliver one event to n subscribers of one operation, through the engine and,
// as the baseline in the same run, through today's publish.Fanout (errgroup, a goroutine per
// subscriber). The poster either returns at once (the fan-out's own cost) or sleeps 10 ms (a
// post's service time). Besides ns/op (the wall time of one fan-out) each reports
// deliveries/s, CPU µs per delivery (getrusage: user + system, the whole process), bytes and
// allocations per delivery, and the time to the first delivery.
//
//	go test -run '^$' -bench . -benchmem -count 5 ./internal/fanout/

const benchResult = `{"data":{"messageAdded":{"id":"m1","roomId":"r1","author":"ann","text":"hello","createdAt":"2026-01-01T00:00:00Z"}}}`

func benchSubs(n int) []store.Subscription {
	out := make([]store.Subscription, n)
	for i := range out {
		out[i] = store.Subscription{ConnectionID: fmt.Sprintf("Ab%07dcd=", i), ID: "1", Subprotocol: gqlws.TransportWS,
			Query:     `subscription($r: ID!) { messageAdded(roomId: $r) { id roomId author text createdAt } }`,
			Variables: json.RawMessage(`{"r":"r1"}`)}
	}
	return out
}

// benchRegistry pages a fixed topic without copying, 1,000 subscriptions a page (about what one
// DynamoDB query page holds).
type benchRegistry struct{ subs []store.Subscription }

func (r *benchRegistry) TopicPages(ctx context.Context, topic, after, until string) iter.Seq2[fanout.Page, error] {
	return func(yield func(fanout.Page, error) bool) {
		lo := 0
		if after != "" {
			lo, _ = strconv.Atoi(after)
		}
		for lo < len(r.subs) {
			hi := min(lo+1000, len(r.subs))
			pg := fanout.Page{Subs: r.subs[lo:hi]}
			if hi < len(r.subs) {
				pg.Next = strconv.Itoa(hi)
			}
			if !yield(pg, nil) {
				return
			}
			lo = hi
		}
	}
}

func (r *benchRegistry) Subscriptions(ctx context.Context, topic string) iter.Seq2[store.Subscription, error] {
	return func(yield func(store.Subscription, error) bool) {
		for _, s := range r.subs {
			if !yield(s, nil) {
				return
			}
		}
	}
}

func (r *benchRegistry) TopicSubscriptions(context.Context, string, []fanout.SubKey) ([]store.Subscription, error) {
	return nil, nil
}
func (r *benchRegistry) TopicCursors(context.Context, string, string, string, int) ([]string, error) {
	return nil, nil
}
func (r *benchRegistry) DeleteConnection(context.Context, string) error { return nil }
func (r *benchRegistry) FanoutProgress(context.Context, []string) (map[string]fanout.Progress, error) {
	return nil, nil
}
func (r *benchRegistry) SaveFanoutProgress(context.Context, []fanout.Progress) error { return nil }

type benchRenderer struct{}

func (benchRenderer) Render(context.Context, *store.Subscription, *fanout.Event) json.RawMessage {
	return json.RawMessage(benchResult)
}

// benchPoster accepts every post after its service time, and notes the first.
type benchPoster struct {
	delay time.Duration
	first atomic.Int64
	n     atomic.Int64
}

func (p *benchPoster) Post(ctx context.Context, _ string, _ []byte) error {
	if p.first.Load() == 0 {
		p.first.CompareAndSwap(0, time.Now().UnixNano())
	}
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	p.n.Add(1)
	return nil
}

func (p *benchPoster) PostToConnection(ctx context.Context, in *apigatewaymanagementapi.PostToConnectionInput, _ ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error) {
	return &apigatewaymanagementapi.PostToConnectionOutput{}, p.Post(ctx, *in.ConnectionId, in.Data)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs one fan-out per iteration and reports the per-delivery figures.
func measure(b *testing.B, n int, poster *benchPoster, fanOut func()) {
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	var firstTotal time.Duration
	ops := 0
	b.ResetTimer()
	for b.Loop() {
		poster.first.Store(0)
		start := time.Now()
		fanOut()
		firstTotal += time.Duration(poster.first.Load() - start.UnixNano())
		ops++
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	if got := poster.n.Load(); got != int64(n*ops) {
		b.Fatalf("%d deliveries, want %d", got, n*ops)
	}
	d := float64(n * ops)
	b.ReportMetric(d/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(cpu.Microseconds())/d, "cpu-µs/delivery")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/d, "B/delivery")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/d, "allocs/delivery")
	b.ReportMetric(float64(firstTotal.Microseconds())/float64(ops), "first-µs")
}

func BenchmarkFanout(b *testing.B) {
	type variant struct {
		n           int
		delay       time.Duration
		concurrency int
	}
	var vs []variant
	for _, delay := range []time.Duration{0, 10 * time.Millisecond} {
		for _, n := range []int{1000, 10000, 100000} {
			vs = append(vs, variant{n, delay, 64})
		}
	}
	// A larger pool, where posts wait on the service.
	vs = append(vs, variant{10000, 10 * time.Millisecond, 128}, variant{10000, 10 * time.Millisecond, 256})
	for _, v := range vs {
		name := fmt.Sprintf("subs=%d/post=%v/c=%d", v.n, v.delay, v.concurrency)
		subs := benchSubs(v.n)
		b.Run(name+"/engine", func(b *testing.B) {
			poster := &benchPoster{delay: v.delay}
			e := fanout.New(fanout.Config{Registry: &benchRegistry{subs}, Renderer: benchRenderer{}, Poster: poster, Concurrency: v.concurrency})
			defer e.Close()
			recs := []fanout.Record{{ID: "e1", Seq: "1", Events: []fanout.Event{{ID: "e1", Seq: "1", Field: "messageAdded", Topic: "t", Payload: json.RawMessage(`{}`)}}}}
			measure(b, v.n, poster, func() {
				if outs, _ := e.Deliver(context.Background(), recs); outs[0].Status != fanout.Done {
					b.Fatalf("%+v", outs[0])
				}
			})
		})
	}
}
