package mgmt

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// Transport defaults.
const (
	// DefaultMaxConns is the default keep-alive pool size: the fan-out's default concurrency.
	DefaultMaxConns = 64
	// DialTimeout bounds a TCP connect (an API Gateway endpoint in the same Region connects in
	// about a millisecond).
	DialTimeout = 2 * time.Second
	// TLSHandshakeTimeout bounds a TLS handshake.
	TLSHandshakeTimeout = 3 * time.Second
	// ResponseHeaderTimeout is a backstop for an answer's headers; Retry.AttemptTimeout
	// normally ends a slow attempt first.
	ResponseHeaderTimeout = 10 * time.Second
	// IdleConnTimeout closes pooled connections unused this long. It is shorter than the
	// SDK's 90 s: a connection idle for a minute has likely been closed by the far end, and a
	// post would find out only by failing (net/http replays it on a fresh connection when
	// nothing had been written).
	IdleConnTimeout = 60 * time.Second
	// AnswerBufferSize is each pooled connection's read buffer. The management API's answers
	// are a few hundred bytes: 1 KB instead of net/http's 4 KB takes 3 KB off every connection
	// (with the fan-out's 1 KB first frame buffers, 0.5-0.9 MB off a 10k fan-out's peak RSS, the
	// GC's goal counting it twice) for no CPU in BenchmarkPost; a longer answer is read in more
	// than one fill. Requests keep net/http's 4 KB write buffer: the signed headers with a
	// Lambda session token take about 2 KB before the body.
	AnswerBufferSize = 1 << 10
)

// CABundle returns the certificate authorities an SDK configuration was loaded with (the
// AWS_CA_BUNDLE environment variable or the shared config's ca_bundle, which the SDK applies to
// the HTTP client it builds), or nil when it has none: the SDK's clients trust them, and so must
// the management client, which carries its requests on a transport of its own.
func CABundle(cfg aws.Config) *x509.CertPool {
	b, ok := cfg.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		return nil
	}
	if t := b.GetTransport(); t != nil && t.TLSClientConfig != nil {
		return t.TLSClientConfig.RootCAs
	}
	return nil
}

// NewTransport returns the transport a Client uses by default: HTTP/1.1 only, with a keep-alive
// pool of maxConns connections (DefaultMaxConns when ≤ 0) so that that many concurrent posts
// each keep their own connection instead of dialing and handshaking anew, bounded dial, TLS and
// answer timeouts, and TLS session resumption for the reconnects.
//
// Why HTTP/1.1 and not HTTP/2, although on loopback HTTP/2 costs no more (BenchmarkPost's
// mgmt-h2 case: the same CPU per post to about 20 % less across runs, and 8 fewer allocations,
// its frames for many streams sharing writes): over HTTP/2 the posts in flight would all ride one TCP
// connection, to one API Gateway front-end host. One lost packet then stalls every post in flight
// (TCP head-of-line blocking); one stalled connection, the case Retry.AttemptTimeout exists for,
// times out all of them at once and they retry together; the server's stream limit caps the
// concurrency; and the load is not spread over API Gateway's fleet. With HTTP/1.1 and a pool
// sized to the concurrency, each post has its own connection and a fault costs one post one
// attempt; the price is a TLS handshake per connection, paid once per warm Lambda environment.
// (Whether execute-api negotiates HTTP/2 at all cannot be checked offline.) A caller who wants
// HTTP/2 passes a Transport whose Protocols allow it.
func NewTransport(maxConns int) *http.Transport {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	d := &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
	var protos http.Protocols
	protos.SetHTTP1(true)
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(maxConns)},
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		IdleConnTimeout:       IdleConnTimeout,
		MaxIdleConns:          maxConns,
		MaxIdleConnsPerHost:   maxConns,
		Protocols:             &protos,
		ReadBufferSize:        AnswerBufferSize,
		// Compression stays on: the Accept-Encoding: gzip net/http then adds is what the
		// SDK's requests carry too, and answers are a few bytes either way.
	}
}
