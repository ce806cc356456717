package local

import (
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// The runtime's access log: one line per HTTP request (the HTTP API, the pages, the invoke
// endpoint, the management API, the SQS API), and one per WebSocket route invocation ($connect,
// each $default, $disconnect), each with its status and duration. Requests to the management API
// (@connections, the handler's own posts) and to the SQS API (the handler's own sends to the chunk
// queue; the line names the action in "target") are logged at debug level, everything else at
// info; at error when the
// invocation behind it failed (a function error of the invoke endpoint included), and at warn when
// the runtime refused it for a reason the caller should hear of: a management API request not
// signed with the runtime's credentials, or a cross-origin request from an origin CORS_ORIGINS does
// not allow (the line says why, in "refused").

// accessWriter records the status a request was answered with, and why its invocation failed.
type accessWriter struct {
	http.ResponseWriter
	status  int
	err     error
	refused string
}

func (w *accessWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *accessWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *accessWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// failed records why the invocation behind a request failed, for its access line.
func failed(w http.ResponseWriter, err error) {
	if aw, ok := w.(*accessWriter); ok {
		aw.err = err
	}
}

// refuse records why the runtime refused a request, for its access line.
func refuse(w http.ResponseWriter, reason string) {
	if aw, ok := w.(*accessWriter); ok {
		aw.refused = reason
	}
}

// crossOrigin returns the origin of a request from a page of another origin, or "".
func crossOrigin(r *http.Request) string {
	o := r.Header.Get("Origin")
	if o == "" || o == "http://"+r.Host {
		return ""
	}
	return o
}

// logRequest writes a request's line: "POST /graphql status=200 ms=1.9" (the message is the
// method and the path).
func (rt *Runtime) logRequest(r *http.Request, w *accessWriter, start time.Time) {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	var e *zerolog.Event
	switch {
	case w.err != nil:
		e = rt.log.Error().Err(w.err)
	case w.refused != "":
		e = rt.log.Warn().Str("refused", w.refused)
	case isSQS(r):
		e = rt.log.Debug().Str("target", r.Header.Get("X-Amz-Target"))
	case isManagement(r.URL.EscapedPath()):
		e = rt.log.Debug()
	default:
		e = rt.log.Info()
	}
	if e == nil { // below the level: no line, and nothing formatted for it
		return
	}
	e.Int("status", status).Float64("ms", millis(time.Since(start))).Msg(r.Method + " " + r.URL.Path)
}

// logRoute writes a WebSocket route invocation's line: "$default status=200 ms=0.8 conn=…" (the
// message is the route). The status is the handler's, or 502 when the invocation failed (err).
func (rt *Runtime) logRoute(route, connID string, start time.Time, status int, err error) {
	e := rt.log.Info()
	if err != nil {
		e = rt.log.Error().Err(err)
		status = http.StatusBadGateway
	}
	e.Int("status", status).Float64("ms", millis(time.Since(start))).Str("conn", connID).Msg(route)
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
