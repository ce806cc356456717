package main

import (
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/rs/zerolog"
)

// TestReadSettings: every variable of the README's table is read, unset ones keep app.Config's
// defaults, and every bad value is reported at once.
func TestReadSettings(t *testing.T) {
	env := map[string]string{
		"LOG_LEVEL": "debug", "DELIVERY_CONCURRENCY": "8", "INIT_TIMEOUT": "5s", "GRAPHQL_INTROSPECTION": "false",
		"GRAPHQL_WS_STRICT": "true", "REGISTRY_TABLE": "reg", "DATA_TABLE": "data",
		"WEBSOCKET_ENDPOINT": "https://x.execute-api.us-east-1.amazonaws.com/prod", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000",
		"CHUNK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/lambdaws-prod-chunks", "CHUNK_SIZE": "500",
	}
	s, err := readSettings(func(k string) string { return env[k] })
	want := settings{Config: app.Config{DeliveryConcurrency: 8, InitTimeout: 5 * time.Second, DisableIntrospection: true, Strict: true,
		RegistryTable: "reg", DataTable: "data", ChunkQueueURL: env["CHUNK_QUEUE_URL"], ChunkSize: 500}, LogLevel: zerolog.DebugLevel,
		WebSocketEndpoint: env["WEBSOCKET_ENDPOINT"], DynamoDBEndpoint: env["AWS_ENDPOINT_URL_DYNAMODB"]}
	if err != nil || s != want {
		t.Fatalf("readSettings = %+v, %v\nwant %+v", s, err, want)
	}
	if s, err := readSettings(func(string) string { return "" }); err != nil || s != (settings{LogLevel: zerolog.InfoLevel}) {
		t.Fatalf("readSettings of an empty environment = %+v, %v", s, err)
	}
	bad := map[string]string{"LOG_LEVEL": "loud", "DELIVERY_CONCURRENCY": "0", "INIT_TIMEOUT": "soon", "GRAPHQL_WS_STRICT": "yes please",
		"GRAPHQL_INTROSPECTION": "maybe", "CHUNK_SIZE": "lots"}
	_, err = readSettings(func(k string) string { return bad[k] })
	for name := range bad {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s not reported: %v", name, err)
		}
	}
}

// TestDevFlags: the limits the handler applies too reach the configuration, not only the
// emulator.
func TestDevFlags(t *testing.T) {
	var cfg app.Config
	dc, err := parseDevFlags([]string{"--port", "0", "--max-message", "4096", "--max-frame", "1024", "--idle-timeout", "3s",
		"--max-duration", "1m", "--sweep-interval", "2s", "--data", "/tmp/x"}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxMessage != 4096 || cfg.IdleTimeout != 3*time.Second || cfg.MaxDuration != time.Minute {
		t.Errorf("handler configuration %+v", cfg)
	}
	if dc.Port != 0 || dc.MaxFrame != 1024 || dc.SweepInterval != 2*time.Second || dc.Data != "/tmp/x" || dc.Host != "127.0.0.1" {
		t.Errorf("runtime configuration %+v", dc)
	}
	if _, err := parseDevFlags([]string{"extra"}, &cfg); err == nil {
		t.Error("an unexpected argument was accepted")
	}
}
