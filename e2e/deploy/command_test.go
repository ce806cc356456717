package deploy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
)

// refusal is what the stand-in AWS answers every request with: the message of a credentials
// check that failed, made unique so that the test knows the error it sees came from there.
const refusal = "The security token included in the request is invalid (stand-in AWS for the lambdaws deploy test)."

// awsRequest is one request the stand-in AWS received.
type awsRequest struct {
	service, action, stack string
	signedWith             string // the access key id in the SigV4 credential scope
}

// standInAWS answers every AWS API request with 403 and refusal, in the shape of the request's
// protocol (JSON for X-Amz-Target requests, XML otherwise), and records what was asked.
type standInAWS struct {
	mu       sync.Mutex
	requests []awsRequest
}

var credentialScope = regexp.MustCompile(`Credential=([^/]+)/\d{8}/[^/]+/([^/]+)/aws4_request`)

func (a *standInAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req awsRequest
	if m := credentialScope.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		req.signedWith, req.service = m[1], m[2]
	}
	if form, err := url.ParseQuery(string(body)); err == nil {
		req.action, req.stack = form.Get("Action"), form.Get("StackName")
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		req.action = target[strings.LastIndex(target, ".")+1:]
	}
	a.mu.Lock()
	a.requests = append(a.requests, req)
	a.mu.Unlock()

	if r.Header.Get("X-Amz-Target") != "" {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", "UnrecognizedClientException")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"__type":"UnrecognizedClientException","message":%q}`, refusal)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>%s</Message></Error>`+
		`<RequestId>stand-in</RequestId></ErrorResponse>`, refusal)
}

func (a *standInAWS) received() []awsRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]awsRequest(nil), a.requests...)
}

// TestServerlessDeployFailsOnlyAtAWS runs what `make deploy` runs, `serverless deploy --stage
// prod`, on the repository's serverless.yml with a stand-in artifact, against a stand-in AWS
// that refuses the dummy credentials. A deploy cannot succeed offline; the test asserts that it
// fails where it must reach AWS and nowhere before: the framework packages and validates the
// service, asks CloudFormation for the stack (lambdaws-prod), and stops with the refusal the
// stand-in AWS sent (not with a framework validation error), within a bounded time. Every
// request it made reached the stand-in, signed with the dummy credentials.
func TestServerlessDeployFailsOnlyAtAWS(t *testing.T) {
	root := devproc.Root(t)
	aws := &standInAWS{}
	srv := httptest.NewServer(aws)
	defer srv.Close()

	// The service directory is a copy holding serverless.yml and the files it includes (the event
	// types go generate writes, the settings it resolves), so that the deploy's packaging
	// (.serverless/) is written there and not into the repository.
	dir := t.TempDir()
	for _, name := range []string{"serverless.yml", "events.gen.yml", "serverless.settings.js"} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd, cancel := serverless(t, dir, srv.URL, "deploy", "--stage", stage)
	defer cancel()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	t.Logf("serverless deploy --stage %s ended after %v: %v", stage, elapsed.Round(time.Millisecond), err)

	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Fatalf("serverless deploy succeeded against an AWS that refuses every request:\n%s", out)
	case !errors.As(err, &exit):
		t.Fatalf("serverless deploy did not run: %v\n%s", err, out)
	case !exit.Exited():
		t.Fatalf("serverless deploy did not end by itself within 3 minutes (%v):\n%s", err, out)
	}
	if elapsed > 2*time.Minute {
		t.Errorf("serverless deploy took %v to fail, want it bounded (well under 2 minutes)", elapsed)
	}
	// It failed because AWS refused it: the error it reports is the stand-in's, and nothing else.
	if got := reportedError(string(out)); got != refusal {
		t.Errorf("serverless deploy failed with %q, want it to fail only at AWS, with %q\noutput:\n%s", got, refusal, out)
	}
	reqs := aws.received()
	describedStack := false
	for _, r := range reqs {
		if r.signedWith != standInKey {
			t.Errorf("a request signed with %q, not the dummy credentials: %+v", r.signedWith, r)
		}
		if r.service == "cloudformation" && r.action == "DescribeStacks" && r.stack == "lambdaws-"+stage {
			describedStack = true
		}
	}
	if !describedStack {
		t.Errorf("serverless deploy never asked CloudFormation for the stack lambdaws-%s (requests %+v): it stopped before deploying\noutput:\n%s", stage, reqs, out)
	}
	t.Logf("requests to the stand-in AWS: %+v", reqs)
}

// reportedError is the error osls ends with: the lines after its "Error:" line.
func reportedError(out string) string {
	_, after, found := strings.Cut(out, "\nError:\n")
	if !found {
		return ""
	}
	msg, _, _ := strings.Cut(after, "\n\n")
	return strings.TrimSpace(msg)
}

// TestDeployNeedsAuthMode: AUTH_MODE has no default. `serverless package` (and so `make deploy`)
// without it, or with jwt but no issuer, stops before anything reaches AWS, saying what to set.
func TestDeployNeedsAuthMode(t *testing.T) {
	root := devproc.Root(t)
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"unset", nil, "AUTH_MODE is not set: deploy with AUTH_MODE=jwt"},
		{"jwt without an issuer", []string{"AUTH_MODE=jwt"}, "AUTH_MODE is jwt: set AUTH_JWKS_URL"},
		{"a typo", []string{"AUTH_MODE=jtw"}, "AUTH_MODE=jtw: want none or jwt"},
		{"bad throttling", []string{"AUTH_MODE=none", "HTTP_THROTTLE_RATE=lots"}, "HTTP_THROTTLE_RATE=lots: want a positive integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, cancel := serverlessEnv(t, root, "http://127.0.0.1:9", tc.env, "package", "--stage", stage, "--package", t.TempDir())
			defer cancel()
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("serverless package succeeded:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("serverless package failed without saying %q:\n%s", tc.want, out)
			}
		})
	}
	// AUTH_MODE=none is a valid, explicit choice.
	cmd, cancel := serverlessEnv(t, root, "http://127.0.0.1:9", []string{"AUTH_MODE=none"}, "package", "--stage", stage, "--package", t.TempDir())
	defer cancel()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("AUTH_MODE=none: %v\n%s", err, out)
	}
}
