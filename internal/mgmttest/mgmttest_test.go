package mgmttest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/aws/smithy-go"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
)

// client is the real SDK client pointed at a Gateway served over HTTP, with no retries.
func client(t *testing.T, g *mgmttest.Gateway) *apigatewaymanagementapi.Client {
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	return apigatewaymanagementapi.NewFromConfig(cfg, func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String(srv.URL + "/prod")
		o.RetryMaxAttempts = 1
	})
}

// api is what both transports offer.
type api interface {
	PostToConnection(ctx context.Context, in *apigatewaymanagementapi.PostToConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error)
	GetConnection(ctx context.Context, in *apigatewaymanagementapi.GetConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.GetConnectionOutput, error)
	DeleteConnection(ctx context.Context, in *apigatewaymanagementapi.DeleteConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.DeleteConnectionOutput, error)
}

// TestInProcessMatchesTheSDKOverHTTP: every answer, success or fault, looks the same to the code
// under test whether it calls the Gateway directly or through the real SDK client over HTTP.
func TestInProcessMatchesTheSDKOverHTTP(t *testing.T) {
	for _, transport := range []string{"in process", "SDK over HTTP"} {
		t.Run(transport, func(t *testing.T) {
			ctx := context.Background()
			g := mgmttest.New()
			var c api = g
			if transport != "in process" {
				c = client(t, g)
			}
			post := func(id string) error {
				_, err := c.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte(`{"type":"next"}`)})
				return err
			}
			if err := post("a="); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			g.SetLastActive("a=", at)
			if out, err := c.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String("a=")}); err != nil || !aws.ToTime(out.LastActiveAt).Equal(at) {
				t.Fatalf("GetConnection = %+v, %v", out, err)
			}
			if _, err := c.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String("a=")}); err != nil {
				t.Fatal(err)
			}
			var gone *types.GoneException
			if err := post("a="); !errors.As(err, &gone) {
				t.Fatalf("post after delete: %v, want GoneException", err)
			}
			g.Drop("b=")
			if err := post("b="); !errors.As(err, &gone) {
				t.Fatalf("post to a dropped connection: %v, want GoneException", err)
			}
			for status, want := range map[int]any{
				403: new(*types.ForbiddenException), 429: new(*types.LimitExceededException),
				413: new(*types.PayloadTooLargeException), 500: new(*smithy.GenericAPIError), 503: new(*smithy.GenericAPIError),
			} {
				g.Inject(mgmttest.Fail(status, mgmttest.Post))
				err := post("c=")
				var re *awshttp.ResponseError
				if !errors.As(err, want) || !errors.As(err, &re) || re.HTTPStatusCode() != status {
					t.Errorf("post failing with %d: %v (%T)", status, err, err)
				}
			}
			g.Inject(nil)
			if posts := g.Posts(); fmt.Sprint(posts) != `map[a=:[{"type":"next"}]]` {
				t.Fatalf("delivered posts = %v", posts)
			}
		})
	}
}

// TestDelayAndConcurrency: an injected delay holds the call; calls held at once are counted.
func TestDelayAndConcurrency(t *testing.T) {
	g := mgmttest.New()
	g.Inject(func(c mgmttest.Call) mgmttest.Fault { return mgmttest.Fault{Delay: 50 * time.Millisecond} })
	start := time.Now()
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := g.PostToConnection(context.Background(), &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(fmt.Sprint(i)), Data: []byte("x")})
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("delayed calls answered after %v", d)
	}
	if n := g.MaxInFlight(); n < 2 || n > 4 {
		t.Fatalf("MaxInFlight = %d, want 2 to 4", n)
	}
	// A caller that gives up ends its call.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	g.Inject(func(c mgmttest.Call) mgmttest.Fault { return mgmttest.Fault{Delay: time.Hour} })
	if _, err := g.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String("x"), Data: []byte("x")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("post past its deadline: %v", err)
	}
}

// TestUnsignedRequestsAreRefused: like API Gateway, the HTTP endpoint takes only signed requests.
func TestUnsignedRequestsAreRefused(t *testing.T) {
	srv := httptest.NewServer(mgmttest.New())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/prod/@connections/a%3D", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unsigned post answered %d, want 403", resp.StatusCode)
	}
}
