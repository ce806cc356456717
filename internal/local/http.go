package local

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

// serveHTTPAPI turns a request into an HTTP API payload 2.0 event and the handler's response into
// the HTTP response, as API Gateway's HTTP API does.
func (rt *Runtime) serveHTTPAPI(w http.ResponseWriter, r *http.Request) {
	body, ok := readLimited(w, r, rt.cfg.MaxHTTPBody, "Request Entity Too Large")
	if !ok {
		return
	}
	now := time.Now()
	ev := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       r.Method + " /graphql",
		RawPath:        r.URL.Path,
		RawQueryString: r.URL.RawQuery,
		Headers:        map[string]string{},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     r.Method + " /graphql",
			AccountID:    AccountID,
			Stage:        "$default",
			RequestID:    newID(),
			APIID:        rt.cfg.APIID,
			DomainName:   r.Host,
			DomainPrefix: strings.Split(r.Host, ".")[0],
			Time:         requestTime(now),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: sourceIP(r), UserAgent: r.UserAgent(),
			},
		},
	}
	for k, vs := range r.Header {
		if strings.EqualFold(k, "Cookie") {
			for _, c := range r.Cookies() {
				ev.Cookies = append(ev.Cookies, c.Name+"="+c.Value)
			}
			continue
		}
		ev.Headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(q) > 0 {
		ev.QueryStringParameters = map[string]string{}
		for k, vs := range q {
			ev.QueryStringParameters[k] = strings.Join(vs, ",")
		}
	}
	if len(body) > 0 {
		if utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	payload, _ := json.Marshal(ev)
	out, err := rt.invokeTracked(r.Context(), payload)
	var resp events.APIGatewayV2HTTPResponse
	if err == nil {
		err = json.Unmarshal(out, &resp)
	}
	if err != nil || resp.StatusCode == 0 {
		if err == nil {
			err = errors.New("the handler answered no statusCode")
		}
		failed(w, fmt.Errorf("HTTP API invocation: %w", err))
		writeAPIError(w, http.StatusInternalServerError, "", "Internal Server Error")
		return
	}
	respBody := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if respBody, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			writeAPIError(w, http.StatusInternalServerError, "", "Internal Server Error")
			return
		}
	}
	// As API Gateway with a CorsConfiguration, the integration's CORS headers are replaced by
	// the API's own (set by the policy before this handler ran).
	for k, v := range resp.Headers {
		if !isCORSHeader(k) {
			w.Header().Set(k, v)
		}
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			if !isCORSHeader(k) {
				w.Header().Add(k, v)
			}
		}
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(respBody)
}

func isCORSHeader(name string) bool {
	return strings.HasPrefix(strings.ToLower(name), "access-control-")
}

// serveConnections is the management API: POST posts a message, GET describes the connection,
// DELETE closes it. Every request must be signed with the runtime's credentials (403
// otherwise). Unknown or closing connections answer 410 GoneException.
func (rt *Runtime) serveConnections(w http.ResponseWriter, r *http.Request, escapedID string) {
	data, ok := readLimited(w, r, rt.cfg.MaxMessage, "Message too long")
	if !ok {
		return
	}
	if err := rt.verifySignature(r, data); err != nil {
		refuse(w, "management API: "+err.Error())
		writeAPIError(w, http.StatusForbidden, "ForbiddenException", "Forbidden")
		return
	}
	id, err := url.PathUnescape(strings.TrimSuffix(escapedID, "/"))
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "BadRequestException", "bad connection id")
		return
	}
	conn := rt.lookup(id)
	if conn == nil || conn.isClosing() {
		writeAPIError(w, http.StatusGone, "GoneException", "")
		return
	}
	switch r.Method {
	case http.MethodPost:
		if !rt.send(conn, data) {
			writeAPIError(w, http.StatusGone, "GoneException", "")
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		conn.mu.Lock()
		last := conn.lastActive
		conn.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"connectedAt":  conn.connectedAt.UTC().Format(time.RFC3339Nano),
			"lastActiveAt": last.UTC().Format(time.RFC3339Nano),
			"identity":     map[string]string{"sourceIp": conn.sourceIP, "userAgent": conn.userAgent},
		})
	case http.MethodDelete:
		rt.closeConn(conn, websocket.StatusNormalClosure, "")
		w.WriteHeader(http.StatusNoContent)
	default:
		writeAPIError(w, http.StatusMethodNotAllowed, "", "Method Not Allowed")
	}
}

// writeAPIError writes an error as API Gateway does: the error type in X-Amzn-ErrorType (which the
// SDK decodes into typed errors) and a JSON message.
func writeAPIError(w http.ResponseWriter, status int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if errType != "" {
		w.Header().Set("X-Amzn-ErrorType", errType)
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// readLimited reads a request's body of at most limit bytes; over it (by its Content-Length,
// before reading, or once read) it answers 413 PayloadTooLargeException with msg, and 400 when
// the body cannot be read, and reports false.
func readLimited(w http.ResponseWriter, r *http.Request, limit int64, msg string) ([]byte, bool) {
	if r.ContentLength > limit {
		writeAPIError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException", msg)
		return nil, false
	}
	body, err := readBody(r, limit+1)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "BadRequestException", "cannot read the body")
		return nil, false
	}
	if int64(len(body)) > limit {
		writeAPIError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException", msg)
		return nil, false
	}
	return body, true
}

// readBody reads at most limit bytes of a request's body, into a buffer of the size its
// Content-Length announces when it has one (a post's frame is then one allocation).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n < limit {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, err
		}
		// Nothing follows from net/http's server, which holds a body to its Content-Length;
		// whatever does is read as io.ReadAll would.
		var more [1]byte
		if k, _ := r.Body.Read(more[:]); k == 0 {
			return buf, nil
		}
		rest, err := io.ReadAll(io.LimitReader(r.Body, limit-n-1))
		return append(append(buf, more[0]), rest...), err
	}
	return io.ReadAll(io.LimitReader(r.Body, limit))
}
