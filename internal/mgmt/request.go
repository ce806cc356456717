package mgmt

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"

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

// template is a reusable request: the http.Request, its URL and header map and the body reader
// are allocated once and refilled for each attempt. It goes back to its pool only when net/http
// is provably done with it (the answer's body closed, the request body closed, no rewound copy
// handed out); otherwise it is dropped for the garbage collector.
type template struct {
	req http.Request
	url url.URL

	mu       sync.Mutex // guards data, detached, primary.off/closed and views
	data     []byte     // the caller's payload; nil once detached
	detached bool       // the attempt is over: readers must not touch the caller's buffer
	views    bool       // GetBody handed out a second reader
	primary  reader
}

// reader reads a template's payload. Reads after the attempt is over fail, so net/http can never
// read the caller's buffer after Post has returned, whatever it does asynchronously.
type reader struct {
	t      *template
	off    int
	closed bool
}

var errDetached = errors.New("mgmt: request body read after its attempt ended")

// Read implements io.Reader.
func (r *reader) Read(p []byte) (int, error) {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	if r.t.detached {
		return 0, errDetached
	}
	if r.off >= len(r.t.data) {
		return 0, io.EOF
	}
	n := copy(p, r.t.data[r.off:])
	r.off += n
	return n, nil
}

// Close implements io.Closer.
func (r *reader) Close() error {
	r.t.mu.Lock()
	r.closed = true
	r.t.mu.Unlock()
	return nil
}

// getBody lets net/http replay the body on a fresh connection when a reused one died before
// anything was written (a keep-alive connection the server had closed).
func (t *template) getBody() (io.ReadCloser, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.detached {
		return nil, errDetached
	}
	t.views = true
	return &reader{t: t}, nil
}

// templates pools templates of one method.
type templates struct {
	pool    sync.Pool
	method  string
	header  func() http.Header
	hasBody bool
}

func newTemplates(c *Client, method string, hasBody bool) *templates {
	ts := &templates{method: method, hasBody: hasBody}
	ts.pool.New = func() any {
		t := &template{}
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
		t.primary.t = t
		if hasBody {
			t.req.GetBody = t.getBody
		}
		return t
	}
	return ts
}

// get returns a template filled for one attempt at path (already escaped) with data.
func (ts *templates) get(path string, data []byte) *template {
	t := ts.pool.Get().(*template)
	t.url.Opaque = path
	t.req.Host = ""
	t.mu.Lock()
	t.data, t.detached, t.views = data, false, false
	t.primary.off, t.primary.closed = 0, false
	t.mu.Unlock()
	if ts.hasBody && len(data) > 0 {
		t.req.Body = &t.primary
		t.req.ContentLength = int64(len(data))
	} else {
		// An empty POST goes out with "Content-Length: 0" and no body, as the SDK's does.
		t.req.Body = nil
		t.req.ContentLength = 0
	}
	return t
}

// put ends the attempt: it detaches the caller's buffer and pools the template if net/http is
// done with it. answered is true when the answer's body has been closed.
func (ts *templates) put(t *template, answered bool) {
	t.mu.Lock()
	t.data, t.detached = nil, true
	reusable := answered && !t.views && (t.req.Body == nil || t.primary.closed)
	t.mu.Unlock()
	if reusable {
		ts.pool.Put(t)
	}
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
