package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/realtime-gql/lambdaws/internal/envelope"
)

// frameWatcher reads the client's side of a WebSocket connection and flags any frame whose payload
// is longer than limit, as API Gateway closes a connection that sends a frame over 32 KB. It only
// reads frame headers; the WebSocket library does the rest.
type frameWatcher struct {
	net.Conn
	r      io.Reader
	limit  uint64
	tooBig atomic.Bool

	hdr  []byte // header bytes of the frame being read
	need int    // header length once known (0 until the first two bytes are in)
	left uint64 // payload bytes still to pass in the current frame
}

func (f *frameWatcher) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	f.scan(p[:n])
	return n, err
}

func (f *frameWatcher) scan(b []byte) {
	for len(b) > 0 {
		if f.left > 0 {
			k := uint64(len(b))
			if k > f.left {
				k = f.left
			}
			f.left -= k
			b = b[k:]
			continue
		}
		f.hdr = append(f.hdr, b[0])
		b = b[1:]
		if len(f.hdr) == 2 {
			f.need = 2
			switch f.hdr[1] & 0x7f {
			case 126:
				f.need += 2
			case 127:
				f.need += 8
			}
			if f.hdr[1]&0x80 != 0 { // masked, as every client frame is
				f.need += 4
			}
		}
		if f.need > 0 && len(f.hdr) == f.need {
			length := uint64(f.hdr[1] & 0x7f)
			switch length {
			case 126:
				length = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
			case 127:
				length = binary.BigEndian.Uint64(f.hdr[2:10])
			}
			if length > f.limit {
				f.tooBig.Store(true)
			}
			f.left, f.hdr, f.need = length, f.hdr[:0], 0
		}
	}
}

// watchingWriter makes the upgrade hijack a frameWatcher over the connection.
type watchingWriter struct {
	http.ResponseWriter
	limit   uint64
	watcher *frameWatcher
}

func (w *watchingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking is not supported")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the server already buffered are part of the stream too.
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	w.watcher = &frameWatcher{Conn: c, r: io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), c), limit: w.limit}
	return w.watcher, bufio.NewReadWriter(bufio.NewReader(w.watcher), brw.Writer), nil
}

// enforceLimits closes connections as API Gateway does: idle ones (no message from the client for
// IdleTimeout) and those older than MaxDuration, both with 1001 (going away), and drops those
// whose client has read nothing of a write for WriteTimeout, until ctx is done.
func (rt *Runtime) enforceLimits(ctx context.Context) {
	every := min(rt.cfg.IdleTimeout, rt.cfg.MaxDuration, rt.cfg.WriteTimeout) / 10
	every = max(min(every, time.Second), 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		rt.mu.Lock()
		var idle, old, stuck []*wsConn
		for _, c := range rt.conns {
			if w := c.writing.Load(); w != 0 && now.UnixNano()-w > int64(rt.cfg.WriteTimeout) {
				stuck = append(stuck, c)
				continue
			}
			c.mu.Lock()
			last := c.lastActive
			c.mu.Unlock()
			switch {
			case now.Sub(c.connectedAt) > rt.cfg.MaxDuration:
				old = append(old, c)
			case now.Sub(last) > rt.cfg.IdleTimeout:
				idle = append(idle, c)
			}
		}
		rt.mu.Unlock()
		for _, c := range old {
			rt.log.Debug().Str("conn", c.id).Msg("maximum connection duration reached: closing")
			rt.closeConn(c, websocket.StatusGoingAway, "Going away")
		}
		for _, c := range idle {
			rt.log.Debug().Str("conn", c.id).Msg("idle timeout: closing")
			rt.closeConn(c, websocket.StatusGoingAway, "Going away")
		}
		for _, c := range stuck {
			// No close handshake: the client reads nothing. The read loop sees the end and
			// invokes $disconnect; later posts answer 410.
			rt.log.Warn().Str("conn", c.id).Dur("timeout", rt.cfg.WriteTimeout).Msg("the client read nothing of a write: dropping the connection")
			c.startClose()
			c.c.CloseNow()
		}
	}
}

// runSchedule invokes the handler with an EventBridge scheduled event every ScheduleInterval, as
// the schedule in serverless.yml does on AWS, until ctx is done.
func (rt *Runtime) runSchedule(ctx context.Context) {
	t := time.NewTicker(rt.cfg.ScheduleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			payload := scheduledEvent(rt.cfg.APIID, now)
			if _, err := rt.invoke(payload); err != nil {
				rt.log.Error().Err(err).Msg("scheduled invocation failed")
			}
		}
	}
}

func scheduledEvent(apiID string, at time.Time) []byte {
	return []byte(`{"version":"0","id":"` + newID() + `","detail-type":"` + envelope.ScheduledDetailType + `","source":"` + envelope.ScheduledSource + `",` +
		`"account":"` + AccountID + `","time":"` + at.UTC().Format(time.RFC3339) + `","region":"` + Region + `",` +
		`"resources":["arn:aws:events:` + Region + `:` + AccountID + `:rule/` + apiID + `-sweep"],"detail":{}}`)
}
