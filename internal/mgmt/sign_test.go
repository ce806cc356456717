package mgmt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// signBoth builds the request of one attempt twice, from two templates, signs one with the
// client's SigV4 and the other with v4.Signer at the same instant, and fails the test unless
// every header, the Host and the URL are the same.
func signBoth(t testing.TB, c *Client, ts *templates, connID string, data []byte, creds aws.Credentials, attemptHd string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	path := string(appendEscapedPath([]byte(c.prefix), connID))
	k := call{data: data, sum: sha256.Sum256(data), id: "3f2d2a5c-0b44-4d4e-9a8b-1c2d3e4f5a6b"}
	build := func() *template {
		tp, _ := ts.get(ctx, path, data)
		tp.req.Header[hdrInvocationID][0] = k.id
		tp.req.Header[hdrSDKRequest][0] = attemptHd
		if creds.SessionToken == "" {
			delete(tp.req.Header, hdrSecToken)
		}
		return tp
	}
	ours, theirs := build(), build()
	defer ts.put(ours, false) // never pooled: the next get must not return either
	defer ts.put(theirs, false)
	if _, ok := c.sig.sign(&ours.sign, &ours.req, &k.sum, creds, now); !ok {
		t.Fatalf("the client's signer refused a request of its own (%s %s)", ts.method, path)
	}
	if err := c.signer.SignHTTP(ctx, creds, &theirs.req, hex.EncodeToString(k.sum[:]), signingName, c.region, now); err != nil {
		t.Fatal(err)
	}
	if got, want := ours.req.Host, theirs.req.Host; got != want {
		t.Fatalf("%s %s: Host %q, v4.Signer's %q", ts.method, path, got, want)
	}
	if got, want := ours.req.URL.String(), theirs.req.URL.String(); got != want {
		t.Fatalf("URL %q, v4.Signer's %q", got, want)
	}
	keys := func(h http.Header) []string {
		return slices.Sorted(func(yield func(string) bool) {
			for k := range h {
				yield(k)
			}
		})
	}
	if got, want := keys(ours.req.Header), keys(theirs.req.Header); !slices.Equal(got, want) {
		t.Fatalf("headers %v, v4.Signer's %v", got, want)
	}
	for name, want := range theirs.req.Header {
		if got := ours.req.Header[name]; !slices.Equal(got, want) {
			t.Fatalf("%s %s (%d bytes, token %q, %s, %v):\n%s: %q\nv4.Signer's %q", ts.method, path, len(data), creds.SessionToken, attemptHd, now, name, got, want)
		}
	}
}

// TestSignerIsTheSDKs: the client's SigV4 signs every shape of request it sends exactly as
// v4.Signer does (Authorization, X-Amz-Date, X-Amz-Security-Token, Host): POST, GET and DELETE;
// endpoints with and without a stage, a default or another port, http or https; connection ids
// of every byte; payloads empty, small and of the message limit; with and without a session
// token; bounded and unbounded attempts; instants around a day's change.
func TestSignerIsTheSDKs(t *testing.T) {
	endpoints := []string{
		"https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
		"https://abc123.execute-api.eu-west-1.amazonaws.com:443/prod",
		"https://abc123.execute-api.eu-west-1.amazonaws.com:8443/a/b-c_d.e~f/",
		"http://127.0.0.1:4000",
		"http://localhost:80/dev/",
		"https://ws.example.com",
	}
	ids := []string{"L0SM9cOFvHcCIhw=", "a", "L0SM9cOFv+Hc/CIhw=", "with space", "é?#%41\x00\xff", strings.Repeat("x", 128)}
	payloads := [][]byte{nil, []byte(`{"type":"next"}`), make([]byte, 128<<10)}
	tokens := []string{"", "IQoJb3JpZ2luX2VjEJr//////////wEaCWV1LXdlc3QtMSJHMEUCIQ==", "  spaced   token  "}
	times := []time.Time{
		time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2027, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600)),
	}
	for _, ep := range endpoints {
		c, err := New(Config{Endpoint: ep, Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
		if err != nil {
			t.Fatal(err)
		}
		for _, ts := range []*templates{c.post, c.get, c.del} {
			for i, id := range ids {
				data := payloads[i%len(payloads)]
				if !ts.hasBody {
					data = nil
				}
				tok := tokens[i%len(tokens)]
				creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: tok}
				signBoth(t, c, ts, id, data, creds, attemptHeader(1+i%3, 5*(i%2)), times[i%len(times)])
			}
		}
	}

	// Many random connection ids, payloads, tokens, regions and instants, one client per region.
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		region := []string{"us-east-1", "eu-west-1", "ap-southeast-2"}[n%3]
		c, err := New(Config{Endpoint: endpoints[n%len(endpoints)], Region: region, Credentials: credentials.NewStaticCredentialsProvider("AKID", "s", "")})
		if err != nil {
			t.Fatal(err)
		}
		id := make([]byte, 1+rng.IntN(40))
		for i := range id {
			id[i] = byte(rng.IntN(256))
		}
		data := make([]byte, rng.IntN(300))
		for i := range data {
			data[i] = byte(rng.IntN(256))
		}
		tok := ""
		if n%2 == 0 {
			tok = fmt.Sprintf("tok%d/%x", n, rng.Uint64())
		}
		creds := aws.Credentials{AccessKeyID: fmt.Sprintf("AKID%d", n%7), SecretAccessKey: fmt.Sprintf("secret%d", n%5), SessionToken: tok}
		at := time.Unix(1_700_000_000+rng.Int64N(400_000_000), rng.Int64N(1e9))
		signBoth(t, c, []*templates{c.post, c.get, c.del}[n%3], string(id), data, creds, attemptHeader(1+n%4, n%6), at)
	}
}

// FuzzSigner holds the client's SigV4 equal to v4.Signer's for any connection id, payload,
// session token and instant.
func FuzzSigner(f *testing.F) {
	f.Add("L0SM9cOFvHcCIhw=", []byte(`{"type":"next"}`), "", int64(1_772_600_767))
	f.Add("é?#% \t", []byte{}, "tok en\t", int64(0))
	f.Fuzz(func(t *testing.T, id string, data []byte, token string, unix int64) {
		if id == "" || unix < 0 || unix > 253_402_300_799 { // the signer's year is four digits
			return
		}
		c, err := New(Config{Endpoint: "https://abc123.execute-api.eu-west-1.amazonaws.com/prod", Region: "eu-west-1",
			Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", "")})
		if err != nil {
			t.Fatal(err)
		}
		creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret", SessionToken: token}
		signBoth(t, c, c.post, id, data, creds, attemptHeader(1, 0), time.Unix(unix, 0))
	})
}

// TestSignerAllocatesItsAuthorizationOnly: signing a post allocates the Authorization value and
// nothing else once the day's key is derived (v4.Signer allocates about 3.9 KB).
func TestSignerAllocatesItsAuthorizationOnly(t *testing.T) {
	c, err := New(Config{Endpoint: "https://abc123.execute-api.eu-west-1.amazonaws.com/prod", Region: "eu-west-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", "")})
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := c.post.get(context.Background(), string(appendEscapedPath([]byte(c.prefix), "L0SM9cOFvHcCIhw=")), []byte(`{"type":"next"}`))
	sum := sha256.Sum256([]byte(`{"type":"next"}`))
	creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret", SessionToken: "token"}
	now := time.Now()
	c.sig.sign(&tp.sign, &tp.req, &sum, creds, now)
	if n := testing.AllocsPerRun(100, func() { c.sig.sign(&tp.sign, &tp.req, &sum, creds, now) }); n > 1 {
		t.Fatalf("signing allocates %v times, want 1 (the Authorization value)", n)
	}
}

// TestSignerFallsBackToTheSDKs: when a signature of the client's own differs from v4.Signer's
// (here: its region is wrong), the request goes out with v4.Signer's, and so does every later one.
func TestSignerFallsBackToTheSDKs(t *testing.T) {
	srv := newWireServer(t)
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "SESSION")
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	mk := func() *Client {
		c, err := New(Config{Endpoint: srv.url + "/prod", Region: "eu-west-1", Credentials: creds, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		c.newID = func() string { return "3f2d2a5c-0b44-4d4e-9a8b-1c2d3e4f5a6b" }
		return c
	}
	good, bad := mk(), mk()
	bad.sig.region = "us-east-1" // its own signatures now differ from v4.Signer's
	ctx := context.Background()
	for range 2 {
		for _, c := range []*Client{good, bad} {
			if err := c.Post(ctx, "L0SM9cOFvHcCIhw=", []byte(`{"type":"next"}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	reqs := srv.take()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	want := header(reqs[0], "Authorization")
	if !strings.Contains(want, "/eu-west-1/execute-api/aws4_request") {
		t.Fatalf("Authorization %q", want)
	}
	for i, r := range reqs {
		if got := header(r, "Authorization"); got != want {
			t.Fatalf("request %d: Authorization %q, want %q", i, got, want)
		}
	}
	if good.sig.sdkOnly.Load() || !bad.sig.sdkOnly.Load() {
		t.Fatalf("falling back: the good client %v, the bad %v; want false, true", good.sig.sdkOnly.Load(), bad.sig.sdkOnly.Load())
	}
}
