package mgmt

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// The client signs its requests with SigV4 itself, as the SDK's v4.Signer signs them: the same
// canonical request, string to sign, signing key and Authorization header, byte for byte, for
// the fixed shape of this client's requests (no query, a handful of headers). v4.Signer builds
// each of these as new strings, a map of the signed headers and a new HMAC per request: about
// 3.9 KB allocated and a sixth of the CPU of a post. Here the canonical request and the string
// to sign are written into a buffer of the request's template, hashed with the template's own
// SHA-256 and HMAC, and a request allocates only its Authorization value.
//
// v4.Signer stays the reference. TestSignerIsTheSDKs and FuzzSigner compare the two on every
// shape of request this client sends, and at run time the first request signed with each new
// signing key (a new day, new credentials) is signed by v4.Signer too: should they ever differ,
// the client signs with v4.Signer from then on (sdkSigner), and the request goes out with its
// signature.

const (
	signingAlgorithm = "AWS4-HMAC-SHA256"
	// amzDateLayout and dayLayout are v4.Signer's X-Amz-Date and credential scope formats.
	amzDateLayout = "20060102T150405Z"
	dayLayout     = "20060102"
)

// signer holds what a client's requests share for signing: the derived key of the day and the
// X-Amz-Date of the current second. Safe for concurrent use; shared by the clients WithRetry
// derives.
type signer struct {
	region string
	// host is the Host as signed: the endpoint's, without a port that is the scheme's default
	// (v4.Signer's SanitizeHostForHeader, which also sends it so).
	host string

	mu   sync.Mutex // derives keys one at a time
	key  atomic.Pointer[signingKey]
	date atomic.Pointer[amzDate]
	// sdkOnly is set when a signature of ours differed from v4.Signer's: every request is then
	// signed by v4.Signer.
	sdkOnly atomic.Bool
}

// signingKey is a SigV4 signing key: one access key and secret, one day, the client's region
// and service.
type signingKey struct {
	akid, secret, day string
	key               [sha256.Size]byte
	// credential is the Authorization's Credential value: akid/day/region/service/aws4_request.
	credential string
	// checked is set once a request signed with this key was checked against v4.Signer.
	checked atomic.Bool
}

// amzDate is the X-Amz-Date value of one second.
type amzDate struct {
	sec int64
	s   string
}

// signState is a template's signing scratch, reused from request to request.
type signState struct {
	buf    []byte    // the canonical request, then the string to sign, then the Authorization
	sum    hash.Hash // SHA-256
	mac    hash.Hash // HMAC-SHA256 under macKey
	macKey *signingKey
	keys   [maxSignedHeaders]string // the signed header names, sorted
	digest [sha256.Size]byte        // the canonical request's hash, then the signature
}

// maxSignedHeaders bounds the headers a template may sign; a request with more is signed by
// v4.Signer.
const maxSignedHeaders = 12

func newSigner(region, scheme, urlHost string) *signer {
	s := &signer{region: region, host: urlHost}
	if port := portOnly(urlHost); port != "" && isDefaultPort(scheme, port) {
		s.host = stripPort(urlHost)
	}
	return s
}

// dateOf returns the X-Amz-Date of t (UTC), formatted once per second.
func (s *signer) dateOf(t time.Time) string {
	sec := t.Unix()
	if d := s.date.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &amzDate{sec: sec, s: t.Format(amzDateLayout)}
	s.date.Store(d)
	return d.s
}

// keyFor returns the signing key of the credentials on day (yyyymmdd), deriving it at most once.
func (s *signer) keyFor(creds aws.Credentials, day string) *signingKey {
	if k := s.key.Load(); k != nil && k.day == day && k.akid == creds.AccessKeyID && k.secret == creds.SecretAccessKey {
		return k
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.key.Load(); k != nil && k.day == day && k.akid == creds.AccessKeyID && k.secret == creds.SecretAccessKey {
		return k
	}
	k := &signingKey{akid: creds.AccessKeyID, secret: creds.SecretAccessKey, day: day}
	m := hmacSHA256([]byte("AWS4"+creds.SecretAccessKey), []byte(day))
	m = hmacSHA256(m, []byte(s.region))
	m = hmacSHA256(m, []byte(signingName))
	copy(k.key[:], hmacSHA256(m, []byte("aws4_request")))
	k.credential = creds.AccessKeyID + "/" + day + "/" + s.region + "/" + signingName + "/aws4_request"
	s.key.Store(k)
	return k
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// sign signs req, whose payload hashes to payload, at now with creds, as v4.Signer's SignHTTP
// does: it sets X-Amz-Date, X-Amz-Security-Token (with a session token) and Authorization, and
// returns the key it signed with. It returns false, having set only X-Amz-Date and the token,
// when the request is not of a shape it signs (more headers than it sorts, two names differing
// only in case, a name that is not plain ASCII); the caller then uses v4.Signer.
func (s *signer) sign(st *signState, req *http.Request, payload *[sha256.Size]byte, creds aws.Credentials, now time.Time) (*signingKey, bool) {
	h := req.Header
	now = now.UTC()
	date := s.dateOf(now)
	h[hdrAmzDate] = append(h[hdrAmzDate][:0], date)
	if creds.SessionToken != "" {
		h[hdrSecToken] = append(h[hdrSecToken][:0], creds.SessionToken)
	}
	// The headers signed besides host and content-length: every one but those v4.Signer
	// ignores, in the order of their lower-case names.
	n := 0
	for k := range h {
		switch k {
		case hdrAuth, hdrUserAgent, "X-Amzn-Trace-Id", "Expect", "Transfer-Encoding":
			continue
		}
		if n == len(st.keys) || !plainName(k) {
			return nil, false
		}
		st.keys[n] = k
		n++
	}
	keys := st.keys[:n]
	sortLower(keys)
	for i := 1; i < len(keys); i++ {
		if !lowerLess(keys[i-1], keys[i]) { // equal but for case: v4.Signer merges them
			return nil, false
		}
	}

	// The canonical request.
	b := append(st.buf[:0], req.Method...)
	b = append(b, '\n')
	b = appendCanonicalURI(b, req.URL)
	b = append(b, "\n\n"...) // no query
	b = appendCanonicalHeaders(b, keys, h, s.host, req.ContentLength)
	b = append(b, '\n')
	signedAt := len(b)
	b = appendSignedHeaders(b, keys, req.ContentLength > 0)
	signedEnd := len(b)
	b = append(b, '\n')
	b = hex.AppendEncode(b, payload[:])
	if st.sum == nil {
		st.sum = sha256.New()
	}
	st.sum.Reset()
	st.sum.Write(b)
	st.sum.Sum(st.digest[:0])

	// The string to sign, after the signed headers' list kept at the start of the buffer.
	b = append(b[:0], b[signedAt:signedEnd]...)
	signed := len(b)
	key := s.keyFor(creds, date[:len(dayLayout)])
	b = append(b, signingAlgorithm+"\n"...)
	b = append(b, date...)
	b = append(b, '\n')
	b = append(b, key.credential[len(key.akid)+1:]...) // the scope: day/region/service/aws4_request
	b = append(b, '\n')
	b = hex.AppendEncode(b, st.digest[:])
	if st.macKey != key {
		st.mac, st.macKey = hmac.New(sha256.New, key.key[:]), key
	}
	st.mac.Reset()
	st.mac.Write(b[signed:])
	st.mac.Sum(st.digest[:0])

	// The Authorization value, after the string to sign.
	auth := len(b)
	b = append(b, signingAlgorithm+" Credential="...)
	b = append(b, key.credential...)
	b = append(b, ", SignedHeaders="...)
	b = append(b, b[:signed]...)
	b = append(b, ", Signature="...)
	b = hex.AppendEncode(b, st.digest[:])
	h[hdrAuth] = append(h[hdrAuth][:0], string(b[auth:]))
	st.buf = b[:0]
	return key, true
}

// appendCanonicalHeaders appends the canonical headers: "name:value\n" for host, content-length
// (when there is a body) and each of keys (sorted), in the order of their lower-case names.
func appendCanonicalHeaders(b []byte, keys []string, h http.Header, host string, length int64) []byte {
	wroteHost, wroteLength := false, length <= 0
	writeHost := func() {
		b = append(b, "host:"...)
		b = appendStripped(b, host, false)
		b = append(b, '\n')
		wroteHost = true
	}
	writeLength := func() {
		b = append(b, "content-length:"...)
		b = strconv.AppendInt(b, length, 10)
		b = append(b, '\n')
		wroteLength = true
	}
	for _, k := range keys {
		if !wroteLength && lowerLess("content-length", k) {
			writeLength()
		}
		if !wroteHost && lowerLess("host", k) {
			writeHost()
		}
		b = appendLower(b, k)
		b = append(b, ':')
		for i, v := range h[k] {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendStripped(b, v, true)
		}
		b = append(b, '\n')
	}
	if !wroteLength {
		writeLength()
	}
	if !wroteHost {
		writeHost()
	}
	return b
}

// appendSignedHeaders appends the SignedHeaders list: the lower-case names, host and
// content-length (when there is a body) among them, separated by semicolons.
func appendSignedHeaders(b []byte, keys []string, length bool) []byte {
	start := len(b)
	name := func(n string) {
		if len(b) > start {
			b = append(b, ';')
		}
		b = appendLower(b, n)
	}
	wroteHost, wroteLength := false, !length
	for _, k := range keys {
		if !wroteLength && lowerLess("content-length", k) {
			name("content-length")
			wroteLength = true
		}
		if !wroteHost && lowerLess("host", k) {
			name("host")
			wroteHost = true
		}
		name(k)
	}
	if !wroteLength {
		name("content-length")
	}
	if !wroteHost {
		name("host")
	}
	return b
}

// appendCanonicalURI appends the canonical URI as v4.Signer makes it: the URL's path as sent
// (GetURIPath: for an opaque URL, from its first slash, without a query) escaped once more
// (httpbinding.EscapePath(path, false): every byte but A-Z a-z 0-9 - . _ ~ and / as %XX).
func appendCanonicalURI(b []byte, u *url.URL) []byte {
	var p string
	if u.Opaque != "" {
		p = u.Opaque
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		p = strings.TrimPrefix(p, "//")
		if i := strings.IndexByte(p, '/'); i >= 0 {
			p = p[i:]
		} else {
			p = ""
		}
	} else {
		p = u.EscapedPath()
	}
	if p == "" {
		p = "/"
	}
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '/' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return b
}

// appendStripped appends a header value as v4.Signer canonicalises it: leading and trailing
// spaces removed and runs of inner spaces collapsed to one (StripExcessSpaces), then, for a
// header other than host, trimmed of white space (strings.TrimSpace).
func appendStripped(b []byte, v string, trim bool) []byte {
	v = strings.Trim(v, " ")
	start := len(b)
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' && space {
			continue
		}
		space = c == ' '
		b = append(b, c)
	}
	if trim {
		if t := bytes.TrimSpace(b[start:]); len(t) != len(b)-start {
			b = append(b[:start], t...)
		}
	}
	return b
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// lowerLess reports whether strings.ToLower(a) < strings.ToLower(b) for ASCII a and b.
func lowerLess(a, b string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return x < y
		}
	}
	return len(a) < len(b)
}

// sortLower sorts header names by their lower-case forms (insertion sort: a dozen at most).
func sortLower(keys []string) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && lowerLess(keys[j], keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}

// plainName reports whether a header name is printable ASCII, so that lowering it byte by byte
// is strings.ToLower, and is not host or content-length in any case, which v4.Signer treats
// apart.
func plainName(k string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] >= 0x7f {
			return false
		}
	}
	return !strings.EqualFold(k, "host") && !strings.EqualFold(k, "content-length")
}

// portOnly, stripPort and isDefaultPort are v4.Signer's (aws/signer/internal/v4/host.go).
func portOnly(hostport string) string {
	colon := strings.IndexByte(hostport, ':')
	if colon == -1 {
		return ""
	}
	if i := strings.Index(hostport, "]:"); i != -1 {
		return hostport[i+len("]:"):]
	}
	if strings.Contains(hostport, "]") {
		return ""
	}
	return hostport[colon+len(":"):]
}

func stripPort(hostport string) string {
	colon := strings.IndexByte(hostport, ':')
	if colon == -1 {
		return hostport
	}
	if i := strings.IndexByte(hostport, ']'); i != -1 {
		return strings.TrimPrefix(hostport[:i], "[")
	}
	return hostport[:colon]
}

func isDefaultPort(scheme, port string) bool {
	if port == "" {
		return true
	}
	s := strings.ToLower(scheme)
	return s == "http" && port == "80" || s == "https" && port == "443"
}
