package publish_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/graph/model"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
)

// exec is the app's executor: the schema's routing table and filters, and the renderer.
var exec = func() *graph.Executor {
	res, err := graph.NewResolver(nil) // the resolvers under test never touch the data table
	if err != nil {
		panic(err)
	}
	e, err := graph.NewExecutor(res, graph.Options{})
	if err != nil {
		panic(err)
	}
	return e
}()

// countingRenderer wraps the real executor and counts renders.
type countingRenderer struct {
	exec *graph.Executor
	n    atomic.Int64
}

func (c *countingRenderer) Render(ctx context.Context, req graph.Request, ev *engine.Event) *graphql.Response {
	c.n.Add(1)
	return c.exec.Render(ctx, req, ev)
}

func newRenderer() *countingRenderer { return &countingRenderer{exec: exec} }

// eventID is the eventID stream.ChangeRecord gives the record of sequence number seq.
func eventID(seq uint64) string { return fmt.Sprintf("%032x", seq) }

func sub(conn, id, proto, query string) store.Subscription {
	return store.Subscription{ConnectionID: conn, ID: id, Subprotocol: proto, Query: query}
}

// record is a stream record of a message change, round-tripped through JSON as Lambda delivers it.
func record(t testing.TB, seq uint64, kind stream.ChangeKind, old, new *model.Message) events.DynamoDBEventRecord {
	t.Helper()
	rec, err := stream.ChangeRecord(kind, item(t, old), item(t, new), seq, "arn:aws:dynamodb:us-east-1:123456789012:table/data/stream/x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rec)
	var out events.DynamoDBEventRecord
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// item is a message's data table item, nil for none.
func item(t testing.TB, m *model.Message) store.Item {
	t.Helper()
	if m == nil {
		return nil
	}
	return apptest.MessageItem(t, *m)
}

func msg(room, id, text string) *model.Message {
	return &model.Message{ID: id, RoomID: room, Author: "ann", Text: text, CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

const (
	addedR1   = "messageAdded?roomId=r1"
	addedR2   = "messageAdded?roomId=r2"
	selIDText = `subscription { messageAdded(roomId: "r1") { id text } }`
	selAuthor = `subscription { messageAdded(roomId: "r1") { author } }`
)

// fakeRegistry is the registry in memory, as the fan-out reads it: each topic's subscriptions in
// the order given, read in pages of pageSize (default 100; a cursor is a subscription's index), and
// progress rows (none kept with stateless). It records deleted connections, and fails the read of
// the topic failOn midway through its subscriptions.
type fakeRegistry struct {
	mu        sync.Mutex
	subs      map[string][]store.Subscription
	failOn    string // topic whose read fails midway
	pageSize  int
	stateless bool // keep no progress rows (a benchmark delivers one event again and again)
	progress  map[string]store.Progress
	deleted   []string
}

func cursor(i int) string { return fmt.Sprintf("%08d", i) }

func index(c string) int {
	if c == "" {
		return -1
	}
	i, _ := strconv.Atoi(c)
	return i
}

func (r *fakeRegistry) TopicPages(ctx context.Context, topic, after, until string) iter.Seq2[store.Page, error] {
	return func(yield func(store.Page, error) bool) {
		r.mu.Lock()
		subs := append([]store.Subscription(nil), r.subs[topic]...)
		fail := topic == r.failOn
		size := r.pageSize
		r.mu.Unlock()
		if size <= 0 {
			size = 100
		}
		end := len(subs)
		if until != "" {
			end = min(end, index(until)+1)
		}
		failAt := len(subs) / 2
		for i := index(after) + 1; i < end; {
			if err := ctx.Err(); err != nil {
				yield(store.Page{}, err)
				return
			}
			j := min(i+size, end)
			if fail && j > failAt {
				if i < failAt && !yield(store.Page{Subs: subs[i:failAt], Next: cursor(failAt - 1)}, nil) {
					return
				}
				yield(store.Page{}, errors.New("registry unreachable"))
				return
			}
			next := cursor(j - 1)
			if j == end {
				next = ""
			}
			if !yield(store.Page{Subs: subs[i:j:j], Next: next}, nil) {
				return
			}
			i = j
		}
	}
}

func (r *fakeRegistry) TopicSubscriptions(ctx context.Context, topic string, keys []store.SubKey) ([]store.Subscription, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []store.Subscription
	for _, s := range r.subs[topic] {
		for _, k := range keys {
			if k.ConnectionID == s.ConnectionID && k.ID == s.ID {
				out = append(out, s)
				break
			}
		}
	}
	return out, nil
}

func (r *fakeRegistry) TopicCursors(ctx context.Context, topic, after, until string, every int) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	end := len(r.subs[topic])
	if until != "" {
		end = min(end, index(until)+1)
	}
	var out []string
	for i := index(after) + every; i < end; i += every {
		out = append(out, cursor(i))
	}
	return out, nil
}

func (r *fakeRegistry) FanoutProgress(ctx context.Context, keys []string) (map[string]store.Progress, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]store.Progress{}
	for _, k := range keys {
		if p, ok := r.progress[k]; ok {
			out[k] = p
		}
	}
	return out, nil
}

func (r *fakeRegistry) SaveFanoutProgress(ctx context.Context, rows []store.Progress) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stateless {
		return nil
	}
	if r.progress == nil {
		r.progress = map[string]store.Progress{}
	}
	for _, p := range rows {
		r.progress[p.Key] = p
	}
	return nil
}

func (r *fakeRegistry) DeleteConnection(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted = append(r.deleted, id)
	return nil
}
