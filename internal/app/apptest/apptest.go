// Package apptest runs the wired service in-process for tests: the local runtime on a free port over a fresh store, GraphQL over HTTP against it, and the example's messages as the data table holds them.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/graph/model"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/dynalite"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/rs/zerolog"
)

// MessageType is the example schema's @item type Message, as the binary derives it from the
// schema.
func MessageType(t testing.TB) store.ItemType {
	t.Helper()
	src, err := graph.Analyze(graph.Schema())
	if err != nil {
		t.Fatal(err)
	}
	typ, ok := src.Item("Message")
	if !ok {
		t.Fatal("the schema has no @item type Message")
	}
	return typ
}

// MessageItem is m as the data table stores it (MessageType's item).
func MessageItem(t testing.TB, m model.Message) store.Item {
	t.Helper()
	item, err := MessageType(t).Encode(&m)
	if err != nil {
		t.Fatal(err)
	}
	return item
}

// Logger writes warnings and errors to the test log; with TEST_LOG set, everything to stderr.
func Logger(t testing.TB) zerolog.Logger {
	if os.Getenv("TEST_LOG") != "" {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: zerolog.TestWriter{T: t}, NoColor: true}).Level(zerolog.WarnLevel)
}

// Start starts the local runtime with cfg on a free port over a fresh embedded store; it shuts
// down, and must have shut down cleanly, when the test ends.
func Start(t testing.TB, cfg app.Config) *app.Dev {
	t.Helper()
	return StartWith(t, cfg, app.DevConfig{})
}

// StartWith is Start with the runtime's own settings; Host, Port and Data default to 127.0.0.1,
// a free port and a fresh temporary directory.
func StartWith(t testing.TB, cfg app.Config, dc app.DevConfig) *app.Dev {
	t.Helper()
	dc = devDefaults(t, dc)
	return started(t, func(ctx context.Context) (*app.Dev, error) { return app.StartDev(ctx, cfg, dc, Logger(t)) })
}

// StartOnDynamoDB starts the local runtime on dynalite (`dev --dynamodb`), with fresh tables. The
// test binary's TestMain must call dynalite.StopShared.
func StartOnDynamoDB(t testing.TB, cfg app.Config) *app.Dev {
	t.Helper()
	db := dynalite.Shared(t)
	cfg.RegistryTable, cfg.DataTable = dynalite.TableName("dev-registry"), dynalite.TableName("dev-data")
	return StartWith(t, cfg, app.DevConfig{DynamoDB: db.Endpoint})
}

// Serve starts the local runtime over a store the test opened (with app.OpenDevStore, say, and
// wrapped), as app.ServeDev does; the runtime closes the store when the test ends.
func Serve(t testing.TB, cfg app.Config, dc app.DevConfig, s store.Store, feed local.ChangeLog) *app.Dev {
	t.Helper()
	dc = devDefaults(t, dc)
	return started(t, func(ctx context.Context) (*app.Dev, error) { return app.ServeDev(ctx, cfg, dc, s, feed, Logger(t)) })
}

func devDefaults(t testing.TB, dc app.DevConfig) app.DevConfig {
	if dc.Host == "" {
		dc.Host = "127.0.0.1"
	}
	if dc.Data == "" && dc.DynamoDB == "" {
		dc.Data = t.TempDir()
	}
	return dc
}

// started runs start with a context the test's cleanup cancels, then waits for the shutdown.
func started(t testing.TB, start func(ctx context.Context) (*app.Dev, error)) *app.Dev {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := start(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := d.Wait(); err != nil {
			t.Errorf("runtime shutdown: %v", err)
		}
	})
	return d
}

// GraphQL posts a GraphQL request to the runtime at addr over HTTP and returns its data; any
// error in the response fails the test.
func GraphQL(t testing.TB, addr, query string, vars map[string]any) map[string]any {
	t.Helper()
	return GraphQLAs(t, addr, "", query, vars)
}

// GraphQLAs is GraphQL with a bearer token ("" for none).
func GraphQLAs(t testing.TB, addr, token, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Data   map[string]any  `json:"data"`
		Errors json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response %s: %v", raw, err)
	}
	if out.Errors != nil {
		t.Fatalf("%s: errors %s", query, raw)
	}
	return out.Data
}

// WaitSubscribers waits until a topic has exactly n live subscriptions in reg.
func WaitSubscribers(t testing.TB, reg store.Registry, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := 0
		for _, err := range reg.Subscriptions(context.Background(), topic) {
			if err != nil {
				t.Fatal(err)
			}
			got++
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s has %d subscriptions, want %d", topic, got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
