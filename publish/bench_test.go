package publish_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/publish"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
)

// nopGateway accepts every post, so the benchmark measures the fan-out itself.
type nopGateway struct{}

func (nopGateway) Post(context.Context, string, []byte) error { return nil }
func (nopGateway) Delete(context.Context, string) error       { return nil }

// BenchmarkFanout delivers one change to n subscribers of its topic. "shared" subscribers hold the
// same operation, so it is rendered once; the "per-subscriber" baseline gives each subscriber
// distinct variables, forcing one execution per subscriber, as peers that re-execute per
// subscriber do; "filtered" is shared with a filter on every subscriber, half of whom it keeps
// the event from (the cost of matching beside the shared baseline). Compare them in one run.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, mode := range []string{"shared", "filtered", "per-subscriber"} {
			b.Run(fmt.Sprintf("subs=%d/%s", n, mode), func(b *testing.B) {
				subs := make([]store.Subscription, n)
				for i := range subs {
					subs[i] = store.Subscription{ConnectionID: fmt.Sprintf("conn%06d=", i), ID: "1", Subprotocol: gqlws.TransportWS,
						Query:     `subscription($r: ID!, $tag: Int) { messageAdded(roomId: $r) { id roomId author text createdAt } }`,
						Variables: []byte(`{"r":"r1"}`)}
					switch mode {
					case "per-subscriber":
						subs[i].Variables = fmt.Appendf(nil, `{"r":"r1","tag":%d}`, i)
					case "filtered":
						subs[i].Filter = []string{`{"author":{"eq":"ann"}}`, `{"author":{"in":["bob","eve"]}}`}[i%2]
					}
				}
				// Stateless: the one event, delivered again and again, is never found done.
				reg := &fakeRegistry{subs: map[string][]store.Subscription{addedR1: subs}, pageSize: 1000, stateless: true}
				f := publish.New(publish.Config{Registry: reg, Sources: exec, Renderer: newRenderer(), Gateway: nopGateway{}})
				defer f.Close()
				rec, err := stream.ChangeRecord(stream.Insert, nil, item(b, msg("r1", "m1", "hello")), 1, "arn:x", msg("r1", "m1", "").CreatedAt)
				if err != nil {
					b.Fatal(err)
				}
				ev := events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					_, st := f.Publish(context.Background(), ev)
					want := int64(n)
					if mode == "filtered" {
						want = int64(n) / 2
					}
					if st.Delivered != want {
						b.Fatalf("delivered %d", st.Delivered)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
			})
		}
	}
}
