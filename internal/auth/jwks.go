package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// sigUses are the JWK "use" values a signing key may carry: "sig", or none. "enc" keys are skipped.
var sigUses = []jwkset.USE{jwkset.UseSig, ""}

// jwks looks keys up by kid in a JWK Set, with keyfunc on top of jwkset.
type jwks struct {
	kf keyfunc.Keyfunc
	// fetchErr is the error of the last JWKS fetch, nil once a fetch succeeds.
	fetchErr atomic.Pointer[error]
}

// jwksFromFile reads a JWKS document of at most MaxJWKSBytes holding at least one asymmetric signing key.
func jwksFromFile(path string) (*jwks, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(doc) > MaxJWKSBytes {
		return nil, fmt.Errorf("%s is over %d bytes", path, MaxJWKSBytes)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("%s is not a JWKS document: %w", path, err)
	}
	store := jwkset.NewMemoryStorage()
	n := 0
	for i, m := range set.Keys {
		if m.KTY == jwkset.KtyOct {
			return nil, fmt.Errorf("%s: key %d is symmetric (kty oct), not an asymmetric signing key: use "+
				"AUTH_HS256_SECRET for a shared secret", path, i)
		}
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: key %d: %w", path, i, err)
		}
		if _, err := asymmetric(k.Key()); err != nil {
			return nil, fmt.Errorf("%s: key %d (kty %s) is not an asymmetric signing key: use AUTH_HS256_SECRET "+
				"for a shared secret", path, i, m.KTY)
		}
		if err := store.KeyWrite(context.Background(), k); err != nil {
			return nil, fmt.Errorf("%s: key %d: %w", path, i, err)
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no keys", path)
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: store, UseWhitelist: sigUses})
	if err != nil {
		return nil, err
	}
	return &jwks{kf: kf}, nil
}

// jwksFromURL fetches the JWKS now and every JWKSRefreshInterval until ctx ends, and again when a token
// names an unknown kid, at most once per JWKSMinRefreshInterval. Every fetch is bounded by JWKSTimeout
// and MaxJWKSBytes; a failed fetch keeps the keys already cached.
func jwksFromURL(ctx context.Context, cfg Config) (*jwks, error) {
	timeout := orDefault(cfg.JWKSTimeout, DefaultJWKSTimeout)
	j := &jwks{}
	cache := &recordingStorage{Storage: jwkset.NewMemoryStorage(), fetchErr: &j.fetchErr}
	remote, err := jwkset.NewStorageFromHTTP(cfg.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client: &http.Client{Timeout: timeout, Transport: limitedTransport{http.DefaultTransport}},
		Ctx:    ctx,
		// The binary's other work (the stream fan-out) must not stop because the issuer is down at a cold
		// start; Verify reports ErrKeysUnavailable instead.
		NoErrorReturnFirstHTTPReq: true,
		HTTPTimeout:               timeout,
		RefreshErrorHandler:       func(_ context.Context, err error) { j.fetchErr.Store(&err) },
		RefreshInterval:           orDefault(cfg.JWKSRefreshInterval, DefaultJWKSRefreshInterval),
		Storage:                   cache,
	})
	if err != nil {
		return nil, err
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{cfg.JWKSURL: remote},
		// Bounds both the wait for the limiter and the fetch it allows. A wait that would end after it
		// fails at once, so a flood of unknown kids is refused without queueing.
		RateLimitWaitMax: timeout,
		RefreshUnknownKID: rate.NewLimiter(
			rate.Every(orDefault(cfg.JWKSMinRefreshInterval, DefaultJWKSMinRefreshInterval)), 1),
	})
	if err != nil {
		return nil, err
	}
	shared := &sharedRefresh{Storage: client, cache: cache}
	if j.kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: shared, UseWhitelist: sigUses}); err != nil {
		return nil, err
	}
	return j, nil
}

// key returns the verification key for t, refreshing the set on an unknown kid (rate-limited).
func (j *jwks) key(ctx context.Context, t *jwt.Token) (any, error) {
	k, err := j.kf.KeyfuncCtx(ctx)(t)
	if err != nil {
		return nil, j.keyError(t, err)
	}
	return asymmetric(k)
}

// keyError explains a failed key lookup without echoing the token's header.
func (j *jwks) keyError(t *jwt.Token, err error) error {
	kid, isString := t.Header[jwkset.HeaderKID].(string)
	switch {
	case t.Header[jwkset.HeaderKID] != nil && !isString:
		return invalid("kid is not a string")
	case kid == "":
		return invalid("no signing key matches the token's alg")
	case !errors.Is(err, jwkset.ErrKeyNotFound):
		return invalid("no signing key matches the token's kid and alg")
	}
	if fe := j.fetchErr.Load(); fe != nil {
		return fmt.Errorf("%w: unknown key id and the last JWKS fetch failed: %w", ErrKeysUnavailable, *fe)
	}
	if errors.Is(err, errRefreshRefused) {
		return invalid("unknown key id (JWKS refresh rate-limited)")
	}
	return invalid("unknown key id")
}

// errRefreshRefused marks an unknown kid for which the rate limit allowed no fetch.
var errRefreshRefused = errors.New("refresh refused by the rate limit")

// sharedRefresh makes concurrent lookups of unknown kids share one refresh: without it, requests that
// arrive while the refresh for a rotated key is in flight would find the rate limit spent and be refused.
type sharedRefresh struct {
	jwkset.Storage // the jwkset client: its KeyRead fetches on an unknown kid, rate-limited
	cache          jwkset.Storage
	group          singleflight.Group
}

// KeyRead reads kid from the cache; on a miss it joins (or starts) the one refresh, then reads the cache
// again.
func (s *sharedRefresh) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	if k, err := s.cache.KeyRead(ctx, kid); err == nil {
		return k, nil
	}
	ch := s.group.DoChan("refresh", func() (any, error) {
		// Not the caller's cancellation: the refresh serves every waiter. jwkset bounds it by
		// RateLimitWaitMax (JWKSTimeout).
		_, err := s.Storage.KeyRead(context.WithoutCancel(ctx), kid)
		return nil, err
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return jwkset.JWK{}, fmt.Errorf("%w: %w", jwkset.ErrKeyNotFound, ctx.Err())
	}
	if k, err := s.cache.KeyRead(ctx, kid); err == nil {
		return k, nil
	}
	if res.Err != nil && !errors.Is(res.Err, jwkset.ErrKeyNotFound) {
		return jwkset.JWK{}, fmt.Errorf("%w (%w)", jwkset.ErrKeyNotFound, errRefreshRefused)
	}
	return jwkset.JWK{}, jwkset.ErrKeyNotFound
}

// asymmetric accepts only public signing keys: an HMAC secret can never come out of a JWKS.
func asymmetric(k any) (any, error) {
	switch k := k.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return k, nil
	case *rsa.PrivateKey:
		return &k.PublicKey, nil
	case *ecdsa.PrivateKey:
		return &k.PublicKey, nil
	case ed25519.PrivateKey:
		return k.Public(), nil
	case jwt.VerificationKeySet:
		var out jwt.VerificationKeySet
		for _, key := range k.Keys {
			if pub, err := asymmetric(key); err == nil {
				out.Keys = append(out.Keys, pub)
			}
		}
		if len(out.Keys) == 0 {
			return nil, invalid("no signing key for a token without kid")
		}
		return out, nil
	default:
		return nil, invalid("the key for this kid is not an asymmetric signing key")
	}
}

// recordingStorage clears the last fetch error when a fetch replaces the keys.
type recordingStorage struct {
	jwkset.Storage
	fetchErr *atomic.Pointer[error]
}

// KeyReplaceAll is called by jwkset after each successful fetch.
func (s *recordingStorage) KeyReplaceAll(ctx context.Context, keys []jwkset.JWK) error {
	if err := s.Storage.KeyReplaceAll(ctx, keys); err != nil {
		return err
	}
	s.fetchErr.Store(nil)
	return nil
}

// limitedTransport bounds every response body to MaxJWKSBytes.
type limitedTransport struct{ rt http.RoundTripper }

// RoundTrip wraps the response body.
func (l limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: MaxJWKSBytes}
	return resp, nil
}

// limitedBody fails a read that goes past its limit.
type limitedBody struct {
	io.ReadCloser
	left int64
}

var errJWKSTooLarge = fmt.Errorf("JWKS document over %d bytes", MaxJWKSBytes)

// Read reads at most one byte past the limit, to tell a body of exactly the limit from a longer one.
func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errJWKSTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if int64(n) > b.left {
		b.left = -1
		return 0, errJWKSTooLarge
	}
	b.left -= int64(n)
	return n, err
}
