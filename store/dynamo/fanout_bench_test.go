package dynamo_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/realtime-gql/lambdaws/internal/dynalite"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/dynamo"
)

// BenchmarkTopicPages measures what the fan-out's read of a topic costs per subscription on
// dynalite: every page (100 rows) of a topic of 2,000 subscriptions shaped as
// BenchmarkFanoutPath stores them. B/sub and allocs/sub are the process's per subscription read:
// the SDK's client (request, response decoding) and the store's own.
//
//	go test -run '^$' -bench BenchmarkTopicPages -benchmem ./store/dynamo/
func BenchmarkTopicPages(b *testing.B) {
	const n = 2000
	const topic = "messageAdded?roomId=bench"
	srv := dynalite.Shared(b)
	client := dynamodb.New(dynamodb.Options{Region: dynalite.Region, BaseEndpoint: aws.String(srv.Endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("dynalite", "dynalite", "")})
	opts := dynamo.Options{RegistryTable: dynalite.TableName("registry"), DataTable: dynalite.TableName("data")}
	s := dynamo.New(client, opts)
	ctx := context.Background()
	if err := s.CreateTables(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, name := range []string{opts.RegistryTable, opts.DataTable} {
			srv.Client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				sub := store.Subscription{ConnectionID: fmt.Sprintf("Ab%07d=", i), ID: "1", Topic: topic, Subprotocol: "graphql-transport-ws",
					Query:     `subscription { messageAdded(roomId: "bench") { id roomId author text createdAt } }`,
					CreatedAt: time.Now(), ExpiresAt: time.Now().Add(24 * time.Hour)}
				if err := s.PutSubscription(ctx, sub, false); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
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
