package mgmt

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
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
)

// NewTransport returns the transport a Client uses by default: HTTP/1.1 only, with a keep-alive
// pool of maxConns connections (DefaultMaxConns when ≤ 0) so that that many concurrent posts
// each keep their own connection instead of dialing and handshaking anew, bounded dial, TLS and
// answer timeouts, and TLS session resumption for the reconnects.
//
// Why not HTTP/2: a fan-out is many small independent requests to one host. Over HTTP/2 they
// would share one TCP connection: one congestion window, one TLS record stream written under one
// lock, head-of-line blocking on any loss, a stall on that connection stalling every post, and the
// server's stream limit capping concurrency; Go's HTTP/2 client also costs more CPU and memory per
// request than its HTTP/1.1 one (the benchmark's mgmt-h2 case measures it). HTTP/1.1 with a pool
// sized to the concurrency spreads posts over independent connections; its one cost, a
// handshake per connection, is paid once per warm Lambda environment.
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
		// Compression stays on: the Accept-Encoding: gzip net/http then adds is what the
		// SDK's requests carry too, and answers are a few bytes either way.
	}
}
