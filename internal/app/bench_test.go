package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/wstest"
)

// BenchmarkMutationToClient measures mutation-to-client latency on the local runtime: each
// iteration posts sendMessage over HTTP and waits until every one of the subscribers
// (graphql-transport-ws clients on real sockets) has received its next message. ns/op is the time
// to the last subscriber; first-ms, p50-ms and last-ms are reported too.
func BenchmarkMutationToClient(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			d := apptest.Start(b, app.Config{})
			url := "ws://" + d.Addr + "/graphql"
			clients := make([]*wstest.Client, n)
			for i := range clients {
				c := wstest.Dial(b, url, "graphql-transport-ws")
				c.Send(map[string]any{"type": "connection_init"})
				c.Expect("connection_ack", "")
				c.Send(subscribe("s", `subscription { messageAdded(roomId: "bench") { id text author } }`))
				clients[i] = c
			}
			apptest.WaitSubscribers(b, d.Store, "messageAdded?roomId=bench", n)
			body, _ := json.Marshal(map[string]any{"query": `mutation { sendMessage(roomId: "bench", author: "b", text: "x") { id } }`})
			var first, last, median []time.Duration
			arrivals := make([]time.Duration, n)
			// arrival is one client's next message, or its absence, reported to the benchmark's
			// goroutine: only that goroutine may fail the benchmark.
			type arrival struct {
				i  int
				m  wstest.Msg
				ok bool
				at time.Duration
			}
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				resp, err := http.Post("http://"+d.Addr+"/graphql", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				done := make(chan arrival, n)
				for i, c := range clients {
					go func() {
						m, ok := c.TryNext(10 * time.Second)
						done <- arrival{i: i, m: m, ok: ok, at: time.Since(t0)}
					}()
				}
				for range n {
					a := <-done
					if !a.ok || a.m.Type != "next" || a.m.ID != "s" {
						b.Fatalf("subscriber %d: got %s (received: %v), want its next message", a.i, a.m, a.ok)
					}
					arrivals[a.i] = a.at
				}
				sort.Slice(arrivals, func(i, j int) bool { return arrivals[i] < arrivals[j] })
				first = append(first, arrivals[0])
				median = append(median, arrivals[n/2])
				last = append(last, arrivals[n-1])
			}
			b.StopTimer()
			b.ReportMetric(ms(mid(first)), "first-ms")
			b.ReportMetric(ms(mid(median)), "p50-ms")
			b.ReportMetric(ms(mid(last)), "last-ms")
		})
	}
}

func mid(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
