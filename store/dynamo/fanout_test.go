package dynamo_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/dynamo"
	"github.com/realtime-gql/lambdaws/store/storetest"
)

// TestFanoutProgressRetriesUnprocessed: DynamoDB may leave part of a BatchWriteItem or
// BatchGetItem unprocessed (throttling); the rows are written and read all the same.
func TestFanoutProgressRetriesUnprocessed(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	e := newEnv(t, dynamo.Options{Now: clk.Now})
	var mu sync.Mutex
	refused := map[string]int{}
	e.spy.setIntercept(func(c call) *http.Response {
		mu.Lock()
		defer mu.Unlock()
		if refused[c.Op] > 0 {
			return nil
		}
		switch c.Op {
		case "BatchWriteItem":
			refused[c.Op]++
			body, _ := json.Marshal(map[string]any{"UnprocessedItems": c.Body["RequestItems"]})
			return okResponse(string(body))
		case "BatchGetItem":
			refused[c.Op]++
			body, _ := json.Marshal(map[string]any{"Responses": map[string]any{}, "UnprocessedKeys": c.Body["RequestItems"]})
			return okResponse(string(body))
		}
		return nil
	})
	var rows []store.Progress
	var keys []string
	for i := range 30 {
		k := fmt.Sprintf("fo1:k%02d", i)
		rows = append(rows, store.Progress{Key: k, Cursor: "c" + k, ExpiresAt: clk.Now().Add(time.Hour)})
		keys = append(keys, k)
	}
	if err := e.s.SaveFanoutProgress(ctx, rows); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.FanoutProgress(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 30 || got["fo1:k29"].Cursor != "cfo1:k29" {
		t.Fatalf("read back %d of 30 rows", len(got))
	}
	if refused["BatchWriteItem"] != 1 || refused["BatchGetItem"] != 1 {
		t.Fatalf("refused %v, want one batch of each refused (and resubmitted)", refused)
	}
	var reads int
	for _, c := range e.spy.recorded() {
		if c.Op == "BatchGetItem" {
			reads++
			for _, req := range c.Body["RequestItems"].(map[string]any) {
				if req.(map[string]any)["ConsistentRead"] != true {
					t.Errorf("progress read without ConsistentRead: %v", c.Body)
				}
			}
		}
	}
	if reads != 2 {
		t.Fatalf("%d BatchGetItem requests, want 2 (the refused one, then its keys again)", reads)
	}
}

// TestTopicPageRequests: a page is one strongly consistent Query of the topic's partition,
// continued from the cursor (the ExclusiveStartKey) and bounded by sk <= until; the cursor walk
// projects sk only.
func TestTopicPageRequests(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	e := newEnv(t, dynamo.Options{Now: clk.Now, PageSize: 4})
	for i := range 10 {
		if err := e.s.PutSubscription(ctx, sub(fmt.Sprintf("c%02d", i), "1", "t", clk.Now()), false); err != nil {
			t.Fatal(err)
		}
	}
	e.spy.reset()
	var n int
	for pg, err := range e.s.TopicPages(ctx, "t", "c01#1", "c08#1") {
		if err != nil {
			t.Fatal(err)
		}
		n += len(pg.Subs)
	}
	if n != 7 {
		t.Fatalf("(c01, c08] holds %d subscriptions, want 7", n)
	}
	calls := e.spy.recorded()
	if len(calls) != 2 {
		t.Fatalf("%d requests for 7 subscriptions in pages of 4, want 2: %v", len(calls), e.spy.ops())
	}
	for i, c := range calls {
		start, _ := json.Marshal(c.Body["ExclusiveStartKey"])
		if c.Op != "Query" || c.Body["ConsistentRead"] != true || c.Body["Limit"] != 4.0 || queryKey(c) != "pk EQ topic#t, sk LE c08#1" {
			t.Errorf("request %d: %s %v", i, c.Op, c.Body)
		}
		// A page reads a subscription's fields, not the row's keys nor its topic.
		proj, _ := c.Body["ProjectionExpression"].(string)
		names, _ := json.Marshal(c.Body["ExpressionAttributeNames"])
		if !strings.Contains(proj, "connectionId") || !strings.Contains(proj, "expiresAt") || strings.Contains(proj, "pk") ||
			strings.Contains(string(names), `"pk"`) || strings.Contains(string(names), `"topic"`) {
			t.Errorf("request %d projects %q (names %s), want a subscription's fields only", i, proj, names)
		}
		if want := []string{`"c01#1"`, `"c05#1"`}[i]; !strings.Contains(string(start), want) {
			t.Errorf("request %d starts after %s, want %s", i, start, want)
		}
	}

	e.spy.reset()
	bounds, err := e.s.TopicCursors(ctx, "t", "", "", 3)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(bounds) != "[c02#1 c05#1 c08#1]" {
		t.Fatalf("boundaries = %v", bounds)
	}
	for _, c := range e.spy.recorded() {
		if c.Op != "Query" || queryKey(c) != "pk EQ topic#t" || c.Body["ProjectionExpression"] == nil {
			t.Errorf("cursor walk request %s %v: want a Query projecting sk", c.Op, c.Body)
		}
	}
}
