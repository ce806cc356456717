package local

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// outbound is a connection's queue of accepted messages, bounded in messages and bytes, and the
// close that follows them. One writer goroutine per connection drains it (writeLoop), so a post
// never waits for its client.
type outbound struct {
	mu      sync.Mutex
	queue   [][]byte
	bytes   int64
	closeAt *closeRequest
	dropped bool          // the queue overflowed: nothing more is accepted
	wake    chan struct{} // signalled when something is queued or a close requested
	done    chan struct{} // closed when the socket loop ends: the writer stops
}

type closeRequest struct {
	status websocket.StatusCode
	reason string
}

type pushResult int

const (
	pushed pushResult = iota
	full              // over a bound: the connection must be closed
	closed            // already closing or dropped
)

func newOutbound() outbound {
	return outbound{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (o *outbound) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// push queues a message unless that would pass maxMsgs messages or maxBytes bytes; it returns
// the bytes queued after it.
func (o *outbound) push(data []byte, maxMsgs int, maxBytes int64) (pushResult, int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.dropped || o.closeAt != nil:
		return closed, o.bytes
	case len(o.queue) >= maxMsgs || o.bytes+int64(len(data)) > maxBytes:
		return full, o.bytes
	}
	o.queue = append(o.queue, data)
	o.bytes += int64(len(data))
	o.signal()
	return pushed, o.bytes
}

// drop empties the queue for good and reports what it held.
func (o *outbound) drop() (int, int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, b := len(o.queue), o.bytes
	o.queue, o.bytes, o.dropped = nil, 0, true
	o.signal()
	return n, b
}

// closeAfter asks the writer to close the connection once the queue is written.
func (o *outbound) closeAfter(status websocket.StatusCode, reason string) {
	o.mu.Lock()
	if o.closeAt == nil && !o.dropped {
		o.closeAt = &closeRequest{status, reason}
	}
	o.mu.Unlock()
	o.signal()
}

// next returns the next message to write, or the close to run, or neither when there is nothing
// to do yet.
func (o *outbound) next() (data []byte, cr *closeRequest, dropped bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dropped {
		return nil, nil, true
	}
	if len(o.queue) == 0 {
		return nil, o.closeAt, false
	}
	data = o.queue[0]
	o.queue[0] = nil
	o.queue = o.queue[1:]
	o.bytes -= int64(len(data))
	if len(o.queue) == 0 {
		o.queue = nil // let the backing array go
	}
	return data, nil, false
}

// writeLoop writes a connection's accepted messages in order, then its requested close, until
// the socket loop ends. A write has no context of its own (a timer per message costs more than
// the write's bookkeeping at line rate): it notes when it started (wsConn.writing), and
// enforceLimits drops the connection of a write older than Config.WriteTimeout.
func (rt *Runtime) writeLoop(conn *wsConn) {
	o := &conn.out
	for {
		data, cr, dropped := o.next()
		switch {
		case dropped:
			return
		case data != nil:
			conn.writing.Store(time.Now().UnixNano())
			err := conn.c.Write(context.Background(), websocket.MessageText, data)
			conn.writing.Store(0)
			if err != nil {
				// The socket is closed, or its client read nothing for WriteTimeout
				// (enforceLimits has dropped it then): the read loop sees the end.
				o.drop()
				return
			}
			continue
		case cr != nil:
			conn.c.Close(cr.status, cr.reason)
			return
		}
		select {
		case <-o.wake:
		case <-o.done:
			return
		}
	}
}
