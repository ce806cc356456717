package mgmt

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"sync/atomic"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Header names exactly as the SDK's middleware stores them (the signer and the wire see the map
// as it is).
const (
	hdrInvocationID = "Amz-Sdk-Invocation-Id"
	hdrSDKRequest   = "Amz-Sdk-Request"
	hdrContentType  = "Content-Type"
	hdrUserAgent    = "User-Agent"
	hdrSecToken     = "X-Amz-Security-Token"
	hdrAmzDate      = "X-Amz-Date"
	hdrAuth         = "Authorization"

	// contentType is the SDK's default for PostToConnection's blob payload.
	contentType = "application/octet-stream"
	// emptySHA256 is the hex SHA-256 of an empty payload.
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// template is a reusable request: the http.Request, its URL, header map, body buffer and reader
// and its trace hooks are allocated once and refilled for each attempt.
//
// The payload is copied into the template's own buffer and sent as an io.NopCloser over a
// *bytes.Reader: net/http recognises that as in memory and writes headers and body in one write
// (one TLS record, one system call) instead of flushing the headers first, and whatever net/http
// does after the call returns (it may go on writing a body the server answered early) it never
// touches the caller's buffer. The template goes back to its pool only when net/http provably
// finished with it: every connection it obtained for the request (GotConn) was followed by a
// completed write (WroteRequest), and the answer's body was closed. Otherwise it is left to the
// garbage collector.
//
// Either side may finish last (a body larger than the write buffer reaches the server, which
// answers, before net/http's writer has returned from its last write), so the template is
// reference counted: the caller holds one reference, each connection obtained adds one, each
// completed write drops one, and whoever drops the last puts the template back.
type template struct {
	req   http.Request
	url   url.URL
	buf   []byte
	br    bytes.Reader
	body  io.ReadCloser // io.NopCloser(&br), made once
	trace httptrace.ClientTrace

	refs      atomic.Int32 // the caller's reference plus writes under way
	spoiled   atomic.Bool  // the call ended without an answer: never reuse
	ts        *templates
	onGotConn func(httptrace.GotConnInfo)
	onWrote   func(httptrace.WroteRequestInfo)
}

// release drops a reference; the last one pools the template unless it is spoiled.
func (t *template) release() {
	if t.refs.Add(-1) != 0 || t.spoiled.Load() {
		return
	}
	if cap(t.buf) > maxPooledBody {
		t.buf = nil
	}
	t.ts.pool.Put(t)
}

// maxPooledBody: a template keeps a body buffer up to this size for its next use.
const maxPooledBody = 32 << 10

// getBody lets net/http replay the body on a fresh connection when a reused one died before
// anything was written (a keep-alive connection the server had closed).
func (t *template) getBody() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(t.buf)), nil
}

// templates pools templates of one method.
type templates struct {
	pool    sync.Pool
	method  string
	hasBody bool
	created atomic.Int64 // templates made; tests check that they are reused
}

func newTemplates(c *Client, method string, hasBody bool) *templates {
	ts := &templates{method: method, hasBody: hasBody}
	ts.pool.New = func() any {
		ts.created.Add(1)
		t := &template{ts: ts}
		t.url = url.URL{Scheme: c.scheme, Host: c.host}
		h := make(http.Header, 8)
		h[hdrInvocationID] = []string{""}
		h[hdrSDKRequest] = []string{""}
		h[hdrUserAgent] = []string{c.userAgent}
		if hasBody {
			h[hdrContentType] = []string{contentType}
		}
		t.req = http.Request{
			Method:     method,
			URL:        &t.url,
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     h,
		}
		t.body = io.NopCloser(&t.br)
		t.onGotConn = func(httptrace.GotConnInfo) { t.refs.Add(1) }
		t.onWrote = func(httptrace.WroteRequestInfo) { t.release() }
		if hasBody {
			t.req.GetBody = t.getBody
		}
		return t
	}
	return ts
}

// get returns a template filled for one attempt at path (already escaped) with a copy of data,
// and ctx with the template's trace hooks.
func (ts *templates) get(ctx context.Context, path string, data []byte) (*template, context.Context) {
	t := ts.pool.Get().(*template)
	t.url.Opaque = path
	t.req.Host = ""
	t.refs.Store(1)
	t.spoiled.Store(false)
	if ts.hasBody && len(data) > 0 {
		t.buf = append(t.buf[:0], data...)
		t.br.Reset(t.buf)
		t.req.Body = t.body
		t.req.ContentLength = int64(len(data))
	} else {
		// An empty POST goes out with "Content-Length: 0" and no body, as the SDK's does.
		t.req.Body = nil
		t.req.ContentLength = 0
	}
	// Reset before each use: WithClientTrace composes with a trace already in ctx by wrapping
	// the hooks it is given.
	t.trace = httptrace.ClientTrace{GotConn: t.onGotConn, WroteRequest: t.onWrote}
	return t, httptrace.WithClientTrace(ctx, &t.trace)
}

// put ends the caller's use of the template; answered is true when the answer's body has been
// closed. Without an answer net/http may still hold the request for a while: the template is
// then never reused.
func (ts *templates) put(t *template, answered bool) {
	if !answered {
		t.spoiled.Store(true)
	}
	t.release()
}

// appendEscapedPath appends s escaped as a URI path segment in Amazon style, exactly as smithy's
// httpbinding.EscapePath(s, true) (which the SDK's serializer uses for {ConnectionId}) does:
// every byte but A-Z a-z 0-9 - . _ ~ becomes %XX. Written out because EscapePath formats each
// escaped byte with fmt.Fprintf; a fuzz test holds the two equal.
func appendEscapedPath(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return b
}

// invocationID returns a random version 4 UUID formatted as the SDK's Amz-Sdk-Invocation-Id
// (smithy-go's rand.UUID). It is an identifier, not a secret: the runtime's per-thread ChaCha8
// generator is random enough and needs no system call.
func invocationID() string {
	var u [16]byte
	binary.LittleEndian.PutUint64(u[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(u[8:], rand.Uint64())
	return formatUUID(u)
}

// formatUUID formats 16 random bytes as smithy-go's rand.UUID.GetUUID does.
func formatUUID(u [16]byte) string {
	const hex = "0123456789abcdef"
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var s [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hex[c>>4], hex[c&15]
		j += 2
	}
	return string(s[:])
}

// userAgent builds the User-Agent with the SDK's own builder, so it is the SDK's family
// ("aws-sdk-go-v2/<version> ua/2.1 os/… lang/go#… md/GOOS#… md/GOARCH#…", plus exec-env on
// Lambda), followed by lib/lambdaws-mgmt where the SDK's client names its api/ and features.
func userAgent() string {
	ua := awsmiddleware.NewRequestUserAgent()
	ua.AddUserAgentKeyValue("lib", "lambdaws-mgmt")
	var out string
	_, _, _ = ua.HandleBuild(context.Background(), middleware.BuildInput{Request: smithyhttp.NewStackRequest()},
		middleware.BuildHandlerFunc(func(_ context.Context, in middleware.BuildInput) (middleware.BuildOutput, middleware.Metadata, error) {
			out = in.Request.(*smithyhttp.Request).Header.Get(hdrUserAgent)
			return middleware.BuildOutput{}, middleware.Metadata{}, nil
		}))
	if out == "" {
		out = "lib/lambdaws-mgmt"
	}
	return out
}
