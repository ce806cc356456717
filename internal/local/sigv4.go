package local

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxSkew is how far a signature's time may be from the runtime's clock, as AWS allows.
const maxSkew = 15 * time.Minute

// verifySignature checks a management API request as API Gateway does for IAM: it must be signed
// with SigV4 by the configured credentials, for execute-api in the configured Region, within
// maxSkew of now. The signature is recomputed with the SDK's signer over the headers the request
// says it signed, and compared in constant time; except for a request served in process
// (RoundTrip), whose signature is checked for everything but the recomputation.
func (rt *Runtime) verifySignature(r *http.Request, body []byte) error {
	creds := rt.cfg.Credentials
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return errors.New("no credentials configured: every request is refused")
	}
	authz := r.Header.Get("Authorization")
	const scheme = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(authz, scheme) {
		return errors.New("not signed (no SigV4 Authorization header)")
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(strings.TrimPrefix(authz, scheme), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return errors.New("malformed credential scope")
	}
	if scope[0] != creds.AccessKeyID {
		return fmt.Errorf("signed by another access key")
	}
	if scope[2] != rt.cfg.Region || scope[3] != "execute-api" {
		return fmt.Errorf("signed for %s in %s, want execute-api in %s", scope[3], scope[2], rt.cfg.Region)
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return errors.New("no X-Amz-Date")
	}
	if skew := time.Since(at); skew > maxSkew || skew < -maxSkew {
		return fmt.Errorf("signed %v away from now", skew.Round(time.Second))
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if len(signed) == 0 || fields["Signature"] == "" {
		return errors.New("no signed headers or signature")
	}
	if inProcess(r.Context()) {
		// Served by RoundTrip: the request comes from this process, which no other process
		// can impersonate, so recomputing the signature (what keeps other processes out) would
		// prove nothing; the checks above still catch a client signing with other credentials,
		// for another service or Region, or not at all.
		return nil
	}
	// The request as it was signed: the same method, URL and signed headers.
	req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return err
	}
	req.Host = r.Host
	req.ContentLength = int64(len(body)) // the signer takes content-length from here
	for _, h := range signed {
		if h == "host" || h == "content-length" {
			continue
		}
		for _, v := range r.Header.Values(h) {
			req.Header.Add(h, v)
		}
	}
	sum := sha256.Sum256(body)
	if err := rt.signer.SignHTTP(r.Context(), creds, req, hex.EncodeToString(sum[:]), "execute-api", rt.cfg.Region, at); err != nil {
		return fmt.Errorf("recompute signature: %w", err)
	}
	want := req.Header.Get("Authorization")
	if subtle.ConstantTimeCompare([]byte(want), []byte(authz)) != 1 {
		return errors.New("signature does not match")
	}
	return nil
}
