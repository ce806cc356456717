package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// RoundTrip serves a request in this process exactly as the runtime serves it from the network
// (ServeHTTP: the same routing, signature check, status codes, error shapes and access line), and
// returns the answer, without a socket. It makes the Runtime an http.RoundTripper for the
// handler's own management API client in the same process (`dev` wires it): a post then costs no
// loopback HTTP round trip (two sockets' system calls, HTTP parsing on both sides), which at line
// rate is most of what a delivery costs beyond the WebSocket write. Every request is served by
// this runtime, whatever its URL's host; WebSocket upgrades are refused.
//
// One difference: the management API checks a request's signature (its access key, Region,
// service, date, signed headers) but does not recompute it, since the request comes from this
// process and recomputing is what keeps other processes out; requests from the network are
// recomputed as always.
//
// The request's body is read (and closed) before RoundTrip returns and nothing of the request is
// kept, so the caller may reuse it at once.
func (rt *Runtime) RoundTrip(req *http.Request) (*http.Response, error) {
	if isUpgrade(req) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errors.New("local: WebSocket upgrades are not served in process")
	}
	body := req.Body
	if body == nil {
		body = http.NoBody
	}
	// The request as a server sees it: its URL parsed from the request line's target.
	uri := req.URL.RequestURI()
	sr, err := http.NewRequestWithContext(context.WithValue(req.Context(), inProcessKey{}, true), req.Method, uri, body)
	if err != nil {
		body.Close()
		return nil, err
	}
	sr.Header = req.Header
	sr.ContentLength = req.ContentLength
	sr.Host = req.Host
	if sr.Host == "" {
		sr.Host = req.URL.Host
	}
	sr.RemoteAddr = "127.0.0.1:0"
	sr.RequestURI = uri
	w := &memResponse{header: http.Header{}}
	rt.ServeHTTP(w, sr)
	body.Close()
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.header.Get("Content-Length") == "" {
		w.header.Set("Content-Length", strconv.Itoa(w.body.Len()))
	}
	return &http.Response{
		Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.header,
		Body:          io.NopCloser(&w.body),
		ContentLength: int64(w.body.Len()),
		Request:       req,
	}, nil
}

// inProcessKey marks the context of a request served by RoundTrip.
type inProcessKey struct{}

// inProcess reports whether a request's context is one RoundTrip serves.
func inProcess(ctx context.Context) bool {
	v, _ := ctx.Value(inProcessKey{}).(bool)
	return v
}

// memResponse is the answer of a request served in process.
type memResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *memResponse) Header() http.Header { return w.header }

func (w *memResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *memResponse) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}
