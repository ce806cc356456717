package app_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// TestGatewayRetriesThrottling: the management client the handler uses (NewGateway) retries a
// throttled call (429) with backoff, and does not retry a gone connection (410).
func TestGatewayRetriesThrottling(t *testing.T) {
	gw := mgmttest.New()
	gw.Inject(func(c mgmttest.Call) mgmttest.Fault {
		if c.ConnectionID == "busy=" && c.Seq <= 2 {
			return mgmttest.Fault{Status: http.StatusTooManyRequests}
		}
		return mgmttest.Fault{}
	})
	gw.Drop("gone=")
	srv := httptest.NewServer(gw)
	defer srv.Close()
	client, err := app.NewGateway(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}, srv.URL+"/prod", 4)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Post(ctx, "busy=", []byte("x")); err != nil {
		t.Fatalf("a post throttled twice: %v, want it delivered on the third attempt", err)
	}
	if err := client.Post(ctx, "gone=", []byte("x")); !errors.Is(err, mgmt.ErrGone) {
		t.Fatalf("a post to a gone connection: %v, want mgmt.ErrGone", err)
	}
	var attempts = map[string]int{}
	for _, c := range gw.Calls() {
		attempts[c.ConnectionID]++
	}
	if attempts["busy="] != 3 || attempts["gone="] != 1 {
		t.Fatalf("attempts %v, want busy= 3 (two throttled) and gone= 1", attempts)
	}
}

// TestGatewayRetriesAreNotRationed: the management client the handler uses has no retry-token
// bucket. The SDK's default one (500 tokens, 5 per retry, refunded only by a
// retry that succeeds) is drained by posts throttled three times each (10 tokens apiece): after
// about 50 of them every later retry of the process fails at once ("retry quota exceeded"). Here
// all 80 are delivered.
func TestGatewayRetriesAreNotRationed(t *testing.T) {
	gw := mgmttest.New()
	var mu sync.Mutex
	throttled := map[string]int{}
	gw.Inject(func(c mgmttest.Call) mgmttest.Fault {
		mu.Lock()
		defer mu.Unlock()
		if throttled[c.ConnectionID] < 3 {
			throttled[c.ConnectionID]++
			return mgmttest.Fault{Status: http.StatusTooManyRequests}
		}
		return mgmttest.Fault{}
	})
	srv := httptest.NewServer(gw)
	defer srv.Close()
	client, err := app.NewGateway(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}, srv.URL+"/prod", 40)
	if err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	g.SetLimit(40)
	for i := range 80 {
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			return client.Post(ctx, fmt.Sprintf("c%03d=", i), []byte("x"))
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("a post throttled three times was not delivered: %v", err)
	}
	if n := len(gw.Posts()); n != 80 {
		t.Fatalf("%d of 80 delivered", n)
	}
}

// TestRoutesCallsAreBoundedAndTheFanOutsAreNot: one management client serves the handler; the
// WebSocket routes call through a view of it that tries a call at most app.ControlAttempts
// times (here a legacy connection_init's posted ack, with every post throttled), while the
// fan-out's posts keep retrying until their deadline.
func TestRoutesCallsAreBoundedAndTheFanOutsAreNot(t *testing.T) {
	gw := mgmttest.New()
	gw.Inject(mgmttest.Fail(http.StatusTooManyRequests, mgmttest.Post))
	srv := httptest.NewServer(gw)
	defer srv.Close()
	client, err := app.NewGateway(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}, srv.URL+"/prod", 4)
	if err != nil {
		t.Fatal(err)
	}
	s, err := embedded.Open(filepath.Join(t.TempDir(), "store.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	svc, err := app.NewService(app.Config{}, s, app.Deps{Gateway: client}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	invoke := func(route, eventType, body string) {
		t.Helper()
		now := time.Now().UnixMilli()
		ev := events.APIGatewayWebsocketProxyRequest{Body: body, Headers: map[string]string{"Sec-WebSocket-Protocol": "graphql-ws"},
			RequestContext: events.APIGatewayWebsocketProxyRequestContext{RouteKey: route, EventType: eventType, ConnectionID: "legacy=",
				RequestID: fmt.Sprint(now), ConnectedAt: now, RequestTimeEpoch: now, Stage: "prod"}}
		payload, _ := json.Marshal(ev)
		ctx, cancel := context.WithTimeout(context.Background(), 29*time.Second)
		defer cancel()
		if _, err := svc.Invoke(ctx, payload); err != nil {
			t.Fatal(err)
		}
	}
	invoke("$connect", "CONNECT", "")
	invoke("$default", "MESSAGE", `{"type":"connection_init"}`)
	if n := len(gw.TakeCalls()); n != app.ControlAttempts {
		t.Fatalf("the throttled ack was posted %d times, want %d", n, app.ControlAttempts)
	}
	// The fan-out's client is the same one, under its own policy: with a second left, a post
	// throttled throughout is tried more often than that.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := client.Post(ctx, "legacy=", []byte("x")); !errors.Is(err, mgmt.ErrThrottled) {
		t.Fatalf("post: %v", err)
	}
	if n := len(gw.TakeCalls()); n <= app.ControlAttempts {
		t.Fatalf("the fan-out's client tried %d times in 1.5 s, want more than %d", n, app.ControlAttempts)
	}
}

// TestGatewayTrustsTheSDKsCABundle: an endpoint whose certificate only AWS_CA_BUNDLE vouches for
// (a VPC endpoint behind a corporate CA, a local emulator) is reached by the management client as
// by the SDK's own clients; without the bundle the post fails on the certificate.
func TestGatewayTrustsTheSDKsCABundle(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	post := func() error {
		cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("a", "b", "")))
		if err != nil {
			t.Fatal(err)
		}
		gw, err := app.NewGateway(cfg, srv.URL+"/prod", 1)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = gw.PostWith(ctx, "c1", []byte("x"), mgmt.Retry{MaxAttempts: 1})
		return err
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_CA_BUNDLE", "")
	if err := post(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the bundle: %v, want a certificate error", err)
	}
	t.Setenv("AWS_CA_BUNDLE", bundle)
	if err := post(); err != nil {
		t.Fatalf("with AWS_CA_BUNDLE: %v", err)
	}
}
