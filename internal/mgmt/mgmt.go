// Package mgmt is a client of API Gateway's management API (@connections) that does only what a post needs: SigV4 from the SDK's own signer, requests byte for byte those of the SDK's apigatewaymanagementapi client, errors classified for the fan-out, and retries bounded by the caller's deadline instead of a process-wide token bucket.
//
// It exists because the SDK's client spends most of a post's CPU in per-call machinery (a
// middleware stack rebuilt per call, request clones, endpoint and auth-scheme resolution,
// ~25 KB allocated) and because its standard retryer draws every retry from one retry-token
// bucket per client, so that after about 100 throttled retries every later 429 of the process
// fails at once. A Client is safe for concurrent use and is meant to live as long as the
// process: its keep-alive pool, its credentials cache and its signer's key cache are warm state.
package mgmt

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	smithytime "github.com/aws/smithy-go/time"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// signingName is the SigV4 service name of the management API.
const signingName = "execute-api"

// Config configures a Client.
type Config struct {
	// Endpoint is the management API's base URL:
	// https://{api-id}.execute-api.{region}.amazonaws.com/{stage}, a custom domain's base path
	// mapping, or a local http:// URL. Required.
	Endpoint string
	// Region signs the requests. Required.
	Region string
	// Credentials sign the requests (wrapped in an aws.CredentialsCache unless it is one);
	// aws.AnonymousCredentials sends them unsigned, as the SDK does. Required.
	Credentials aws.CredentialsProvider
	// MaxConns sizes the default transport's keep-alive pool to the posts in flight; default
	// DefaultMaxConns. Ignored when Transport is set.
	MaxConns int
	// Retry is the policy of Post, Get and Delete; zero fields take their defaults.
	Retry Retry
	// Transport carries the requests; default NewTransport(MaxConns). Tests set it to trust a
	// test server's certificate.
	Transport http.RoundTripper
	// RootCAs, when set, are the certificate authorities the default transport trusts instead
	// of the system's (the SDK's AWS_CA_BUNDLE or ca_bundle; see CABundle). Ignored when
	// Transport is set.
	RootCAs *x509.CertPool
	// Now is the signing clock; default time.Now. Timeouts and backoff use the real clock.
	Now func() time.Time
}

// Client posts to, describes and closes WebSocket connections through the management API.
type Client struct {
	rt        http.RoundTripper
	creds     aws.CredentialsProvider
	anonymous bool
	signer    *v4.Signer
	region    string
	scheme    string
	host      string
	prefix    string // the escaped path up to and including "/@connections/"
	userAgent string
	now       func() time.Time
	retry     Retry    // Config.Retry with defaults
	attemptHd []string // Amz-Sdk-Request values of retry for attempts 1..len

	post, get, del *templates

	// Test hooks.
	newID  func() string
	jitter func(time.Duration) time.Duration
}

// Info describes a connection (GetConnection).
type Info struct {
	ConnectedAt  time.Time
	LastActiveAt time.Time
	SourceIP     string
	UserAgent    string
}

// Result reports what a call took.
type Result struct {
	// Attempts counts the requests sent: 1 when the first succeeded or failed for good, 0 when
	// the deadline margin was already reached.
	Attempts int
	// Throttled counts the attempts answered 429.
	Throttled int
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Region == "" {
		return nil, errors.New("mgmt: region required")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("mgmt: credentials required")
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("mgmt: endpoint: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("mgmt: endpoint %q: want http(s)://host[/stage]", cfg.Endpoint)
	}
	for i := 0; i < len(u.Path); i++ {
		if c := u.Path[i]; !(c == '/' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return nil, fmt.Errorf("mgmt: endpoint %q: the stage path may hold only letters, digits, and - . _ ~ /", cfg.Endpoint)
		}
	}
	c := &Client{
		rt:        cfg.Transport,
		anonymous: aws.IsCredentialsProvider(cfg.Credentials, (*aws.AnonymousCredentials)(nil)),
		signer:    v4.NewSigner(),
		region:    cfg.Region,
		scheme:    u.Scheme,
		host:      u.Host,
		// The SDK joins the endpoint's path and the operation's with smithy's JoinPath.
		prefix:    smithyhttp.JoinPath(u.Path, "/@connections/"),
		userAgent: userAgent(),
		now:       cfg.Now,
		retry:     cfg.Retry.withDefaults(),
		newID:     invocationID,
		jitter:    fullJitter,
	}
	if c.rt == nil {
		t := NewTransport(cfg.MaxConns)
		if cfg.RootCAs != nil {
			t.TLSClientConfig.RootCAs = cfg.RootCAs
		}
		c.rt = t
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.creds = cfg.Credentials
	if _, ok := c.creds.(*aws.CredentialsCache); !ok && !c.anonymous {
		c.creds = aws.NewCredentialsCache(c.creds)
	}
	for n := 1; n <= 8; n++ {
		c.attemptHd = append(c.attemptHd, attemptHeader(n, c.retry.MaxAttempts))
	}
	c.post = newTemplates(c, http.MethodPost, true)
	c.get = newTemplates(c, http.MethodGet, false)
	c.del = newTemplates(c, http.MethodDelete, false)
	return c, nil
}

// Retry returns the client's policy, defaults filled in.
func (c *Client) Retry() Retry { return c.retry }

// WithRetry returns a client that calls under policy r and shares everything else with c: its
// keep-alive pool, its credentials cache, its signer and its request templates. One process
// keeps one client and gives each kind of caller its own policy (the fan-out's retries run to
// its deadline; a WebSocket route's are bounded in number).
func (c *Client) WithRetry(r Retry) *Client {
	v := *c
	v.retry = r.withDefaults()
	v.attemptHd = nil
	for n := 1; n <= 8; n++ {
		v.attemptHd = append(v.attemptHd, attemptHeader(n, v.retry.MaxAttempts))
	}
	return &v
}

// Post sends data as one message to the connection (PostToConnection), under the client's
// retry policy. Post does not keep data: the caller may reuse it as soon as Post returns.
// Errors are *Error.
func (c *Client) Post(ctx context.Context, connID string, data []byte) error {
	_, err := c.do(ctx, &c.retry, c.attemptHd, call{ts: c.post, op: "post", connID: connID, data: data})
	return err
}

// PostWith is Post under policy r, reporting the attempts it took.
func (c *Client) PostWith(ctx context.Context, connID string, data []byte, r Retry) (Result, error) {
	r = r.withDefaults()
	var hd []string
	if r.MaxAttempts == c.retry.MaxAttempts {
		hd = c.attemptHd
	}
	return c.do(ctx, &r, hd, call{ts: c.post, op: "post", connID: connID, data: data})
}

// Delete closes the connection (DeleteConnection); API Gateway closes it with 1000.
func (c *Client) Delete(ctx context.Context, connID string) error {
	_, err := c.do(ctx, &c.retry, c.attemptHd, call{ts: c.del, op: "delete", connID: connID})
	return err
}

// Get describes the connection (GetConnection).
func (c *Client) Get(ctx context.Context, connID string) (Info, error) {
	var info Info
	_, err := c.do(ctx, &c.retry, c.attemptHd, call{ts: c.get, op: "get", connID: connID, info: &info})
	return info, err
}

// call is one operation's fixed parts, shared by its attempts.
type call struct {
	ts     *templates
	op     string
	connID string
	data   []byte
	info   *Info // Get's answer

	path string // escaped request path
	hash string // hex SHA-256 of data
	id   string // Amz-Sdk-Invocation-Id, the same for every attempt
}

// do runs the retry loop of one call.
func (c *Client) do(ctx context.Context, r *Retry, attemptHd []string, k call) (Result, error) {
	var res Result
	fail := func(e *Error) (Result, error) {
		e.Op, e.ConnID, e.Attempts, e.Throttled = k.op, k.connID, res.Attempts, res.Throttled
		return res, e
	}
	if k.connID == "" {
		return fail(&Error{kind: ErrRejected, Message: "empty connection id"})
	}
	var buf [256]byte
	k.path = string(appendEscapedPath(append(buf[:0], c.prefix...), k.connID))
	if len(k.data) == 0 {
		k.hash = emptySHA256
	} else {
		sum := sha256.Sum256(k.data)
		k.hash = hex.EncodeToString(sum[:])
	}
	k.id = c.newID()

	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(r.MaxElapsed)
	}
	stop := deadline.Add(-r.margin())
	var last *Error
	for n := 1; ; n++ {
		if err := ctx.Err(); errors.Is(err, context.Canceled) {
			return fail(&Error{Err: err})
		}
		if ctx.Err() != nil || !time.Now().Before(stop) {
			if last == nil {
				return fail(&Error{kind: ErrDeadline, Deadline: true, byTime: true, Err: ctx.Err()})
			}
			last.Deadline, last.byTime = true, true
			return fail(last)
		}
		hd := ""
		if n <= len(attemptHd) {
			hd = attemptHd[n-1]
		} else {
			hd = attemptHeader(n, r.MaxAttempts)
		}
		e := c.attempt(ctx, stop, r.AttemptTimeout, &k, hd)
		res.Attempts++
		if e == nil {
			return res, nil
		}
		if e.kind == ErrThrottled {
			res.Throttled++
		}
		if e.kind == ErrUnavailable && last != nil && !time.Now().Before(stop) {
			// Cut short by the margin itself: the last answer (a 429, a 5xx) says more about
			// why the call failed than our own timeout does.
			last.Deadline, last.byTime = true, true
			return fail(last)
		}
		last = e
		if !e.retryable() || e.final {
			return fail(e)
		}
		if r.MaxAttempts > 0 && n >= r.MaxAttempts {
			e.Deadline = true
			return fail(e)
		}
		d := c.jitter(r.ceiling(n))
		if !time.Now().Add(d).Before(stop) {
			e.Deadline, e.byTime = true, true
			return fail(e)
		}
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
}

// attemptHeader is the SDK's Amz-Sdk-Request value: "attempt=N", and "; max=M" when attempts
// are bounded.
func attemptHeader(n, max int) string {
	s := "attempt=" + strconv.Itoa(n)
	if max > 0 {
		s += "; max=" + strconv.Itoa(max)
	}
	return s
}

// attempt sends one request, never past stop, and classifies its outcome; nil means success.
func (c *Client) attempt(ctx context.Context, stop time.Time, timeout time.Duration, k *call, attemptHd string) *Error {
	deadline := time.Now().Add(timeout)
	if deadline.After(stop) {
		deadline = stop
	}
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	t, tctx := k.ts.get(actx, k.path, k.data)
	answered := false
	defer func() { k.ts.put(t, answered) }()

	h := t.req.Header
	h[hdrInvocationID][0] = k.id
	h[hdrSDKRequest][0] = attemptHd
	req := t.req.WithContext(tctx)
	if c.anonymous {
		delete(h, hdrAuth)
		delete(h, hdrAmzDate)
		delete(h, hdrSecToken)
	} else {
		creds, err := c.creds.Retrieve(actx)
		if err != nil {
			return &Error{kind: ErrCredentials, Err: err, final: true}
		}
		if creds.SessionToken == "" {
			delete(h, hdrSecToken)
		}
		if err := c.signer.SignHTTP(actx, creds, req, k.hash, signingName, c.region, c.now()); err != nil {
			return &Error{kind: ErrCredentials, Err: fmt.Errorf("sign: %w", err), final: true}
		}
	}

	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return &Error{kind: transportKind(ctx), Err: err}
	}
	defer func() {
		resp.Body.Close()
		answered = true
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if k.info != nil {
			if err := decodeInfo(resp.Body, k.info); err != nil {
				return &Error{kind: ErrServer, Status: resp.StatusCode, Message: "unreadable connection info", Err: err, final: true}
			}
		}
		// Drain so the connection goes back to the pool. API Gateway's answer to a post is empty
		// (Content-Length: 0), and then there is nothing to read.
		if resp.ContentLength != 0 {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		}
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil && len(body) == 0 && resp.StatusCode < 400 {
		return &Error{kind: transportKind(ctx), Status: resp.StatusCode, Err: err}
	}
	kind, typ, msg := apiError(resp.StatusCode, resp.Header, body)
	return &Error{kind: kind, Status: resp.StatusCode, Type: typ, Message: msg}
}

// decodeInfo decodes GetConnection's answer; timestamps are parsed with smithy's ParseDateTime,
// as the SDK's deserializer does.
func decodeInfo(r io.Reader, info *Info) error {
	var v struct {
		ConnectedAt  *string `json:"connectedAt"`
		LastActiveAt *string `json:"lastActiveAt"`
		Identity     struct {
			SourceIP  string `json:"sourceIp"`
			UserAgent string `json:"userAgent"`
		} `json:"identity"`
	}
	if err := json.NewDecoder(io.LimitReader(r, maxErrorBody)).Decode(&v); err != nil {
		return err
	}
	var err error
	if v.ConnectedAt != nil {
		if info.ConnectedAt, err = smithytime.ParseDateTime(*v.ConnectedAt); err != nil {
			return err
		}
	}
	if v.LastActiveAt != nil {
		if info.LastActiveAt, err = smithytime.ParseDateTime(*v.LastActiveAt); err != nil {
			return err
		}
	}
	info.SourceIP, info.UserAgent = v.Identity.SourceIP, v.Identity.UserAgent
	return nil
}
