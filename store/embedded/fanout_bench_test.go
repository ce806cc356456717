package embedded_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
)

// BenchmarkTopicPages measures what the fan-out's read of a topic costs per subscription: every
// page of a topic of 10,000 subscriptions (one operation, as BenchmarkFanoutPath stores them),
// read with the default page size. B/sub and allocs/sub are per subscription read.
//
//	go test -run '^$' -bench BenchmarkTopicPages -benchmem ./store/embedded/
func BenchmarkTopicPages(b *testing.B) {
	const n = 10000
	const topic = "messageAdded?roomId=bench"
	path := filepath.Join(b.TempDir(), "data.db")
	s, err := embedded.Open(path, embedded.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range n {
		sub := store.Subscription{ConnectionID: fmt.Sprintf("Ab%07d=", i), ID: "1", Topic: topic, Subprotocol: gqlws.TransportWS,
			Query:     `subscription { messageAdded(roomId: "bench") { id roomId author text createdAt } }`,
			CreatedAt: time.Now(), ExpiresAt: time.Now().Add(24 * time.Hour)}
		if err := s.PutSubscription(ctx, sub, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var allocs, bytes uint64
	for b.Loop() {
		got := 0
		a0, b0 := memStats()
		for pg, err := range s.TopicPages(ctx, topic, "", "") {
			if err != nil {
				b.Fatal(err)
			}
			got += len(pg.Subs)
		}
		a1, b1 := memStats()
		allocs, bytes = allocs+a1-a0, bytes+b1-b0
		if got != n {
			b.Fatalf("read %d subscriptions, want %d", got, n)
		}
	}
	b.ReportMetric(float64(bytes)/float64(b.N*n), "B/sub")
	b.ReportMetric(float64(allocs)/float64(b.N*n), "allocs/sub")
}

// memStats returns the process's allocations so far: count and bytes.
func memStats() (allocs, bytes uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs, ms.TotalAlloc
}
