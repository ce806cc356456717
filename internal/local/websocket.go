package local

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

// wsConn is one emulated API Gateway WebSocket connection.
type wsConn struct {
	id          string
	c           *websocket.Conn
	connectedAt time.Time
	sourceIP    string
	userAgent   string

	frames     *frameWatcher // flags inbound frames over MaxFrame
	inflight   chan struct{} // one slot per frame being handled (MaxInflight)
	mu         sync.Mutex
	lastActive time.Time
	closing    bool

	out outbound // messages accepted for the client, written by the connection's writer
	// writing is when the write under way started (Unix ns), 0 between writes: enforceLimits
	// drops the connection of a write older than Config.WriteTimeout.
	writing atomic.Int64

	disconnected sync.Once
}

func (c *wsConn) touch() {
	c.mu.Lock()
	c.lastActive = time.Now()
	c.mu.Unlock()
}

// isClosing reports whether the connection is being closed; posts to it then answer 410.
func (c *wsConn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// startClose marks the connection closing; it reports false if it already was.
func (c *wsConn) startClose() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.closing = true
	return true
}

func (rt *Runtime) wsEvent(c *wsConn, route, eventType string, r *http.Request) events.APIGatewayWebsocketProxyRequest {
	now := time.Now()
	ev := events.APIGatewayWebsocketProxyRequest{
		RequestContext: events.APIGatewayWebsocketProxyRequestContext{
			RouteKey:          route,
			EventType:         eventType,
			ExtendedRequestID: newID(),
			RequestID:         newID(),
			RequestTime:       requestTime(now),
			RequestTimeEpoch:  now.UnixMilli(),
			MessageDirection:  "IN",
			Stage:             rt.cfg.Stage,
			ConnectedAt:       c.connectedAt.UnixMilli(),
			ConnectionID:      c.id,
			DomainName:        "",
			APIID:             rt.cfg.APIID,
			Identity:          events.APIGatewayRequestIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
		},
		IsBase64Encoded: false,
	}
	if r != nil {
		ev.RequestContext.DomainName = r.Host
		ev.Headers = map[string]string{}
		ev.MultiValueHeaders = map[string][]string{}
		for k, vs := range r.Header {
			ev.Headers[k] = strings.Join(vs, ",")
			ev.MultiValueHeaders[k] = vs
		}
		if q := r.URL.Query(); len(q) > 0 {
			ev.QueryStringParameters = map[string]string{}
			ev.MultiValueQueryStringParameters = map[string][]string{}
			for k, vs := range q {
				ev.QueryStringParameters[k] = vs[len(vs)-1]
				ev.MultiValueQueryStringParameters[k] = vs
			}
		}
	}
	return ev
}

// serveWebSocket runs $connect, upgrades if it allows, then relays frames until the socket closes.
// The whole handshake is tracked: the server stops tracking a connection once it is hijacked.
func (rt *Runtime) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	done, ok := rt.track()
	if !ok {
		writeAPIError(w, http.StatusServiceUnavailable, "", "Service Unavailable")
		return
	}
	defer done()
	conn := &wsConn{id: newID(), connectedAt: time.Now(), sourceIP: sourceIP(r), userAgent: r.UserAgent(), out: newOutbound(),
		inflight: make(chan struct{}, rt.cfg.MaxInflight)}
	log := rt.log.With().Str("conn", conn.id).Logger()

	payload, _ := json.Marshal(rt.wsEvent(conn, "$connect", "CONNECT", r))
	start := time.Now()
	resp, err := rt.invokeRoute(payload)
	rt.logRoute("$connect", conn.id, start, resp.StatusCode, err)
	if err != nil { // the handshake is refused with 502
		http.Error(w, "Internal server error", http.StatusBadGateway)
		return
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 { // $connect refused the handshake
		http.Error(w, resp.Body, resp.StatusCode)
		return
	}
	opts := &websocket.AcceptOptions{
		// API Gateway accepts any origin; so does its emulation.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	}
	if proto := responseHeader(resp, "Sec-WebSocket-Protocol"); proto != "" {
		opts.Subprotocols = []string{proto}
	}
	ww := &watchingWriter{ResponseWriter: w, limit: uint64(rt.cfg.MaxFrame)}
	c, err := websocket.Accept(ww, r, opts)
	if err != nil {
		log.Info().Err(err).Msg("upgrade failed")
		rt.disconnect(conn, websocket.StatusAbnormalClosure, "upgrade failed")
		return
	}
	c.SetReadLimit(rt.cfg.MaxMessage)
	conn.c = c
	conn.frames = ww.watcher
	conn.touch()
	writer := make(chan struct{})
	go func() {
		defer close(writer)
		rt.writeLoop(conn)
	}()
	defer func() {
		close(conn.out.done)
		<-writer
	}()
	if !rt.register(conn) {
		c.Close(websocket.StatusGoingAway, "server shutting down")
		rt.disconnect(conn, websocket.StatusGoingAway, "server shutting down")
		return
	}
	defer rt.sockets.Done()
	log.Debug().Str("subprotocol", c.Subprotocol()).Msg("connected")
	rt.readLoop(conn)
}

// readLoop turns every frame into a $default invocation, concurrently, until the socket closes.
// At most MaxInflight of a connection's frames are handled at once: with that many, the next
// frame is not read until one ends, and the flooder's own TCP window fills.
func (rt *Runtime) readLoop(conn *wsConn) {
	ctx := context.Background()
	for {
		conn.inflight <- struct{}{}
		typ, data, err := conn.c.Read(ctx)
		if err != nil {
			status := websocket.CloseStatus(err)
			reason := ""
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				reason = ce.Reason
			}
			if status == -1 {
				status = websocket.StatusAbnormalClosure
			}
			if errors.Is(err, websocket.ErrMessageTooBig) {
				// The library has closed the connection with 1009 already.
				status, reason = websocket.StatusMessageTooBig, "Message too big"
			}
			rt.disconnect(conn, status, reason)
			return
		}
		if conn.frames != nil && conn.frames.tooBig.Load() {
			conn.c.Close(websocket.StatusMessageTooBig, "Frame too big")
			rt.disconnect(conn, websocket.StatusMessageTooBig, "Frame too big")
			return
		}
		if typ == websocket.MessageBinary {
			// API Gateway's WebSocket APIs take no binary frames: it closes with 1003.
			conn.c.Close(websocket.StatusUnsupportedData, "Binary frames are not supported")
			rt.disconnect(conn, websocket.StatusUnsupportedData, "Binary frames are not supported")
			return
		}
		conn.touch()
		ev := rt.wsEvent(conn, "$default", "MESSAGE", nil)
		ev.RequestContext.MessageID = newID()
		if !utf8.Valid(data) {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(data), true
		} else {
			ev.Body = string(data)
		}
		done, ok := rt.track()
		if !ok {
			<-conn.inflight
			continue // shutting down: the close that ends this loop is on its way
		}
		go func() {
			defer done()
			defer func() { <-conn.inflight }()
			rt.message(conn, ev)
		}()
	}
}

// invokeRoute invokes the handler with a WebSocket route event and decodes its response.
func (rt *Runtime) invokeRoute(payload []byte) (events.APIGatewayProxyResponse, error) {
	var resp events.APIGatewayProxyResponse
	out, err := rt.invoke(payload)
	if err == nil {
		err = json.Unmarshal(out, &resp)
	}
	return resp, err
}

func (rt *Runtime) message(conn *wsConn, ev events.APIGatewayWebsocketProxyRequest) {
	payload, _ := json.Marshal(ev)
	start := time.Now()
	resp, err := rt.invokeRoute(payload)
	rt.logRoute("$default", conn.id, start, resp.StatusCode, err)
	if err != nil {
		// What API Gateway sends when the integration fails.
		msg, _ := json.Marshal(map[string]string{"message": "Internal server error", "connectionId": conn.id, "requestId": ev.RequestContext.RequestID})
		rt.send(conn, msg)
		return
	}
	if resp.Body != "" {
		body := []byte(resp.Body)
		if resp.IsBase64Encoded {
			if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
				return
			}
		}
		rt.send(conn, body)
	}
}

// send accepts one message for a socket, as API Gateway accepts a post: without waiting for the
// client to read it (the connection's writer writes it). It reports false when the connection
// is closing, or when its outbound queue is full, which closes it.
func (rt *Runtime) send(conn *wsConn, data []byte) bool {
	if conn.isClosing() {
		return false
	}
	res, queued := conn.out.push(data, rt.cfg.MaxOutbound, rt.cfg.MaxOutboundBytes)
	for peak := rt.outboundPeak.Load(); queued > peak && !rt.outboundPeak.CompareAndSwap(peak, queued); peak = rt.outboundPeak.Load() {
	}
	switch res {
	case pushed:
		return true
	case full:
		rt.overflow(conn)
	}
	return false
}

// overflow closes a connection whose client stopped reading (its outbound queue is full) at
// once, with 1008, dropping what it had not read: one slow reader must not hold memory, nor
// anyone else's messages.
func (rt *Runtime) overflow(conn *wsConn) {
	if !conn.startClose() {
		return
	}
	queued, bytes := conn.out.drop()
	rt.log.Warn().Str("conn", conn.id).Int("queued", queued).Int64("bytes", bytes).
		Msg("outbound queue full (the client is not reading): closing with 1008; later posts answer 410")
	done, ok := rt.track()
	if !ok {
		conn.c.CloseNow()
		return
	}
	go func() {
		defer done()
		rt.disconnect(conn, websocket.StatusPolicyViolation, "outbound queue full")
		conn.c.Close(websocket.StatusPolicyViolation, "outbound queue full")
	}()
}

// disconnect forgets a socket and invokes $disconnect, once per connection.
func (rt *Runtime) disconnect(conn *wsConn, status websocket.StatusCode, reason string) {
	rt.mu.Lock()
	delete(rt.conns, conn.id)
	rt.mu.Unlock()
	conn.startClose()
	conn.disconnected.Do(func() {
		ev := rt.wsEvent(conn, "$disconnect", "DISCONNECT", nil)
		ev.RequestContext.DisconnectStatusCode = int64(status)
		ev.RequestContext.DisconnectReason = &reason
		payload, _ := json.Marshal(ev)
		start := time.Now()
		resp, err := rt.invokeRoute(payload)
		rt.logRoute("$disconnect", conn.id, start, resp.StatusCode, err)
	})
}

// closeConn starts closing a socket from the server side: with 1000 for DeleteConnection, 1001
// at API Gateway's limits and at shutdown. The connection's writer sends what was accepted
// before, then runs the close handshake; once the runtime has stopped the connection is dropped
// at once instead.
func (rt *Runtime) closeConn(conn *wsConn, status websocket.StatusCode, reason string) {
	if !conn.startClose() {
		return
	}
	rt.mu.Lock()
	stopped := rt.stopped
	rt.mu.Unlock()
	if stopped {
		conn.c.CloseNow()
		return
	}
	conn.out.closeAfter(status, reason)
}

// closeAll stops registering sockets and closes every open one with 1001 (going away), at
// shutdown.
func (rt *Runtime) closeAll() {
	rt.mu.Lock()
	rt.stopping = true
	conns := make([]*wsConn, 0, len(rt.conns))
	for _, c := range rt.conns {
		conns = append(conns, c)
	}
	rt.mu.Unlock()
	for _, c := range conns {
		rt.closeConn(c, websocket.StatusGoingAway, "server shutting down")
	}
}

func (rt *Runtime) lookup(id string) *wsConn {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.conns[id]
}

func responseHeader(resp events.APIGatewayProxyResponse, name string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	for k, vs := range resp.MultiValueHeaders {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// OutboundPeak is the most bytes any connection has held for its client, accepted and not yet
// written: never more than Config.MaxOutboundBytes.
func (rt *Runtime) OutboundPeak() int64 { return rt.outboundPeak.Load() }
