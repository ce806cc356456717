// Package wstest is a GraphQL over WebSocket test client that records every message and the close it sees, for tests that assert exactly what a client receives.
package wstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Msg is one received message.
type Msg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func (m Msg) String() string {
	b, _ := json.Marshal(m)
	return string(b)
}

// Client is one test connection.
type Client struct {
	t      testing.TB
	C      *websocket.Conn
	msgs   chan Msg
	closed chan struct{}
	// CloseStatus is the close code seen, valid after Closed is closed.
	CloseStatus websocket.StatusCode
	CloseReason string
}

// Dial connects offering the given subprotocols; it fails the test if the handshake fails.
func Dial(t testing.TB, url string, protocols ...string) *Client {
	t.Helper()
	c, _, err := TryDial(url, protocols...)
	if err != nil {
		t.Fatalf("dial %s %v: %v", url, protocols, err)
	}
	return Wrap(t, c)
}

// DialHeader is Dial with headers on the handshake request (an Authorization header, say).
func DialHeader(t testing.TB, url string, header http.Header, protocols ...string) *Client {
	t.Helper()
	c, _, err := TryDialHeader(url, header, protocols...)
	if err != nil {
		t.Fatalf("dial %s %v: %v", url, protocols, err)
	}
	return Wrap(t, c)
}

// TryDial connects and returns the handshake response, for tests of refused handshakes.
func TryDial(url string, protocols ...string) (*websocket.Conn, *http.Response, error) {
	return TryDialHeader(url, nil, protocols...)
}

// TryDialHeader is TryDial with headers on the handshake request.
func TryDialHeader(url string, header http.Header, protocols ...string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protocols, HTTPHeader: header})
}

// Wrap starts recording a connection.
func Wrap(t testing.TB, c *websocket.Conn) *Client {
	cl := &Client{t: t, C: c, msgs: make(chan Msg, 10000), closed: make(chan struct{})}
	c.SetReadLimit(1 << 20)
	go func() {
		defer close(cl.closed)
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				cl.CloseStatus = websocket.CloseStatus(err)
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					cl.CloseReason = ce.Reason
				}
				return
			}
			var m Msg
			if err := json.Unmarshal(data, &m); err != nil {
				m = Msg{Type: "!unparsable", Payload: json.RawMessage(fmt.Sprintf("%q", data))}
			}
			cl.msgs <- m
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return cl
}

// Send writes a message (any JSON-encodable value, or raw bytes as []byte).
func (c *Client) Send(v any) {
	c.t.Helper()
	var data []byte
	switch v := v.(type) {
	case []byte:
		data = v
	case string:
		data = []byte(v)
	default:
		data, _ = json.Marshal(v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.C.Write(ctx, websocket.MessageText, data); err != nil {
		c.t.Fatalf("send %s: %v", data, err)
	}
}

// Next returns the next message, failing the test after timeout.
func (c *Client) Next(timeout time.Duration) Msg {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(timeout):
		c.t.Fatalf("no message within %v", timeout)
		return Msg{}
	}
}

// TryNext returns the next message, or false after timeout.
func (c *Client) TryNext(timeout time.Duration) (Msg, bool) {
	select {
	case m := <-c.msgs:
		return m, true
	case <-time.After(timeout):
		return Msg{}, false
	}
}

// Expect returns the next message and checks its type and id.
func (c *Client) Expect(typ, id string) Msg {
	c.t.Helper()
	m := c.Next(10 * time.Second)
	if m.Type != typ || m.ID != id {
		c.t.Fatalf("got %s, want type %q id %q", m, typ, id)
	}
	return m
}

// ExpectNone checks that no message arrives for d.
func (c *Client) ExpectNone(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("unexpected message %s", m)
	case <-time.After(d):
	}
}

// ExpectClosed waits for the server to close the connection and returns the close status.
func (c *Client) ExpectClosed(timeout time.Duration) websocket.StatusCode {
	c.t.Helper()
	select {
	case <-c.closed:
		return c.CloseStatus
	case m := <-c.msgs:
		c.t.Fatalf("got %s, want the connection closed", m)
	case <-time.After(timeout):
		c.t.Fatalf("connection not closed within %v", timeout)
	}
	return 0
}

// Closed is closed when the connection has closed.
func (c *Client) Closed() <-chan struct{} { return c.closed }

// Subprotocol is the negotiated subprotocol.
func (c *Client) Subprotocol() string { return c.C.Subprotocol() }
