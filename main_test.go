package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/emit/emittest"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/rs/zerolog"
)

// TestReadSettings: every variable of the README's table is read, unset ones keep app.Config's
// defaults, and every bad value is reported at once.
func TestReadSettings(t *testing.T) {
	env := map[string]string{
		"LOG_LEVEL": "debug", "DELIVERY_CONCURRENCY": "8", "INIT_TIMEOUT": "5s", "GRAPHQL_INTROSPECTION": "false",
		"GRAPHQL_WS_STRICT": "true", "REGISTRY_TABLE": "reg", "DATA_TABLE": "data",
		"WEBSOCKET_ENDPOINT": "https://x.execute-api.us-east-1.amazonaws.com/prod", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000",
		"AUTH_MODE": "jwt", "AUTH_JWKS_URL": "https://idp.example/jwks.json", "AUTH_ISSUER": "https://idp.example/", "AUTH_AUDIENCE": "app",
		"AUTH_LEEWAY": "10s", "GRAPHQL_MAX_TOKENS": "2000", "GRAPHQL_MAX_SELECTIONS": "100", "GRAPHQL_MAX_DEPTH": "5",
		"GRAPHQL_MAX_COMPLEXITY": "900", "SUBSCRIPTIONS_PER_CONNECTION": "20", "CONNECTIONS_PER_SUBJECT": "3",
		"HTTP_MAX_BODY": "65536", "CORS_ORIGINS": "https://a.example, https://b.example",
	}
	s, err := readSettings(func(k string) string { return env[k] })
	want := settings{Config: app.Config{DeliveryConcurrency: 8, InitTimeout: 5 * time.Second, DisableIntrospection: true, Strict: true,
		RegistryTable: "reg", DataTable: "data",
		Auth:             auth.Config{Mode: auth.ModeJWT, JWKSURL: "https://idp.example/jwks.json", Issuer: "https://idp.example/", Audience: "app", Leeway: 10 * time.Second},
		Limits:           graph.Limits{MaxTokens: 2000, MaxSelections: 100, MaxDepth: 5, MaxComplexity: 900},
		MaxSubscriptions: 20, MaxConnectionsPerSubject: 3, MaxHTTPBody: 65536, CORSOrigins: []string{"https://a.example", "https://b.example"}},
		LogLevel: zerolog.DebugLevel, WebSocketEndpoint: env["WEBSOCKET_ENDPOINT"], DynamoDBEndpoint: env["AWS_ENDPOINT_URL_DYNAMODB"], AuthModeSet: true}
	if err != nil || !reflect.DeepEqual(s, want) {
		t.Fatalf("readSettings = %+v, %v\nwant %+v", s, err, want)
	}
	// Unset: no authentication (dev's default), graph's limits, no CORS.
	if s, err := readSettings(func(string) string { return "" }); err != nil || !reflect.DeepEqual(s,
		settings{LogLevel: zerolog.InfoLevel, Config: app.Config{Auth: auth.Config{Mode: auth.ModeNone, Leeway: auth.DefaultLeeway}}}) {
		t.Fatalf("readSettings of an empty environment = %+v, %v", s, err)
	}
	bad := map[string]string{"LOG_LEVEL": "loud", "DELIVERY_CONCURRENCY": "0", "INIT_TIMEOUT": "soon", "GRAPHQL_WS_STRICT": "yes please",
		"GRAPHQL_INTROSPECTION": "maybe", "AUTH_MODE": "maybe", "GRAPHQL_MAX_DEPTH": "0", "SUBSCRIPTIONS_PER_CONNECTION": "-1",
		"CONNECTIONS_PER_SUBJECT": "x", "HTTP_MAX_BODY": "20000000"}
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

// TestPublishSubcommand: `bootstrap publish` emits the event to the invoke endpoint it is given,
// prints the event's id, and needs none of the service's environment.
func TestPublishSubcommand(t *testing.T) {
	srv := emittest.NewServer(t)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"publish", "--type", "chat.announcement", "--source", "com.example.chat",
		"--data", `{"id":"a1","roomId":"lobby","text":"hi","priority":1,"at":"2026-11-26T12:00:00Z"}`, "--url", srv.URL + emittest.InvokePath},
		func(string) string { return "" }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, stderr.String())
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Op != emittest.Invoke || reqs[0].Err != nil || reqs[0].Change.Type != "chat.announcement" ||
		strings.TrimSpace(stdout.String()) != reqs[0].Change.ID {
		t.Fatalf("requests %+v, printed %q", reqs, stdout.String())
	}
	if err := run(context.Background(), []string{"publish", "--data", "{}"}, func(string) string { return "" }, &stdout, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--type is required") {
		t.Fatalf("publish without a type = %v", err)
	}
}

// TestLambdaRefusesToStartWithoutAuthMode: on Lambda, AUTH_MODE must be set explicitly, even to
// none; a deployment that forgot it does not start open.
func TestLambdaRefusesToStartWithoutAuthMode(t *testing.T) {
	env := map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9", "REGISTRY_TABLE": "r", "DATA_TABLE": "d",
		"WEBSOCKET_ENDPOINT": "https://x.execute-api.us-east-1.amazonaws.com/prod"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, &bytes.Buffer{}, io.Discard)
	if !errors.Is(err, auth.ErrModeNotSet) || !strings.Contains(err.Error(), "AUTH_MODE") {
		t.Fatalf("run on Lambda without AUTH_MODE = %v, want ErrModeNotSet", err)
	}
}

// TestDevSaysAuthenticationIsOff: dev defaults to no authentication and says so at start-up.
func TestDevSaysAuthenticationIsOff(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "authentication          none: AUTH_MODE is unset"},
		{map[string]string{"AUTH_MODE": "none"}, "authentication          none (AUTH_MODE=none)"},
		{map[string]string{"AUTH_MODE": "jwt", "AUTH_HS256_SECRET": strings.Repeat("s", 32)}, "authentication          jwt"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var out bytes.Buffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"dev", "--port", "0", "--data", t.TempDir()}, func(k string) string { return tc.env[k] }, &syncWriter{w: &out, ready: cancel}, io.Discard)
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("AUTH_MODE %q: start-up said\n%s\nwant %q", tc.env["AUTH_MODE"], out.String(), tc.want)
		}
	}
}

// syncWriter collects the start-up banner and ends the runtime once the banner is complete.
type syncWriter struct {
	w     *bytes.Buffer
	ready context.CancelFunc
}

func (s *syncWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if strings.Contains(string(p), "authentication") {
		s.ready()
	}
	return n, err
}
