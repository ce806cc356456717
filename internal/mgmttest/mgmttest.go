// Package mgmttest is an in-memory API Gateway management API (@connections) for tests, in process or over HTTP, that records every call and can fail or slow down any of them.
//
// A Gateway has internal/mgmt's client's methods (Post, Get, Delete), so it stands in for
// *mgmt.Client wherever the handlers take one, and it is an http.Handler serving POST, GET and
// DELETE /{stage}/@connections/{id} as API Gateway does, so that the real client, or a built
// binary, can be pointed at it with httptest.
//
// It models what each client sees: a connection is open until Delete closes it or Drop says its
// client went away; calls on a closed connection answer 410 GoneException. A route response
// (RouteResponse) reaches the client like a post, unless the connection is closed.
//
// Faults are injected per call with Inject: a Fault delays the answer, fails it with an HTTP
// status (410, 403, 429, 413, 5xx), or both, and can make the call take effect although its
// caller stopped waiting (Regardless: a post delivered whose answer its caller never saw). In
// process, a failure is an error that matches the sentinel internal/mgmt's client returns for
// that answer (mgmt.ErrGone, mgmt.ErrForbidden, mgmt.ErrThrottled, ...: see Error), so code
// under test classifies it as it would on AWS; over HTTP the answer is API Gateway's, which the
// real client classifies itself. In process there are no retries: each call is one attempt.
package mgmttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/realtime-gql/lambdaws/internal/mgmt"
)

// Op is the kind of a call.
type Op string

// Calls, and the route response API Gateway sends on the function's behalf.
const (
	Post          Op = "POST"   // PostToConnection (Gateway.Post)
	Get           Op = "GET"    // GetConnection (Gateway.Get)
	Delete        Op = "DELETE" // DeleteConnection (Gateway.Delete)
	RouteResponse Op = "ROUTE"  // a route response body, sent after the invocation returned
)

// A Call is one call the Gateway answered, in the order they arrived.
type Call struct {
	// Seq numbers the calls from 1, in arrival order (route responses included).
	Seq int
	Op  Op
	// ConnectionID is the connection the call named.
	ConnectionID string
	// Data is the message of a Post or a RouteResponse.
	Data []byte
	// Status is the HTTP status the call was answered with: 200 (204 for Delete) on success, 0
	// when the caller's context ended first (during an injected Delay) and the call did nothing.
	// A call with a Regardless fault is recorded with the status it took effect with, whether
	// or not its caller was still waiting for the answer.
	Status int
}

// OK reports whether the call succeeded.
func (c Call) OK() bool { return c.Status >= 200 && c.Status < 300 }

// A Fault is what an injected failure does to one call. The zero Fault lets the call proceed.
type Fault struct {
	// Delay is how long the call takes before it is answered, or until its context ends.
	Delay time.Duration
	// Status, when non-zero, is the HTTP status the call fails with, after Delay: 410
	// GoneException, 403 ForbiddenException, 429 LimitExceededException, 413
	// PayloadTooLargeException, anything else a service error of that status (500, 503...).
	Status int
	// Regardless makes the call take effect after Delay even when its caller stopped waiting
	// first, as API Gateway does not take back a post whose caller hung up: the caller gets no
	// answer (its context's error, or a closed connection over HTTP), and the Call is recorded
	// when Delay has passed, with the status it would have had (a post delivered: 200).
	// Without it, a call whose context ends during Delay does nothing (status 0).
	Regardless bool
}

// Gateway is the fake management API. The zero value is not usable; call New.
type Gateway struct {
	mu         sync.Mutex
	calls      []Call
	seq        int
	closed     map[string]bool
	lastActive map[string]time.Time
	inject     func(Call) Fault
	inFlight   int
	maxFlight  int
}

// New returns a Gateway on which every connection is open.
func New() *Gateway {
	return &Gateway{closed: map[string]bool{}, lastActive: map[string]time.Time{}}
}

// Inject sets the function consulted before each call (route responses excepted) to decide its
// fault; the Call it receives has Seq, Op, ConnectionID and Data set. nil removes it.
func (g *Gateway) Inject(f func(Call) Fault) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inject = f
}

// Drop marks connections whose clients went away: every later call on them answers 410.
func (g *Gateway) Drop(ids ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		g.closed[id] = true
	}
}

// SetLastActive sets the LastActiveAt that GetConnection reports for a connection (by default
// it reports none).
func (g *Gateway) SetLastActive(id string, at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastActive[id] = at
}

// Closed reports whether a connection is closed (deleted or dropped).
func (g *Gateway) Closed(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed[id]
}

// RouteResponse records API Gateway sending a route response body to a connection after the
// invocation returned: the client receives it unless the connection is closed. An empty body
// sends nothing.
func (g *Gateway) RouteResponse(id string, body []byte) {
	if len(body) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	status := http.StatusOK
	if g.closed[id] {
		status = http.StatusGone
	}
	g.seq++
	g.calls = append(g.calls, Call{Seq: g.seq, Op: RouteResponse, ConnectionID: id, Data: slices.Clone(body), Status: status})
}

// Calls returns every call answered so far.
func (g *Gateway) Calls() []Call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.calls)
}

// TakeCalls returns the calls answered since the last TakeCalls and forgets them.
func (g *Gateway) TakeCalls() []Call {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.calls
	g.calls = nil
	return out
}

// Posts returns, per connection, the messages delivered by successful posts, in order.
func (g *Gateway) Posts() map[string][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string][]string{}
	for _, c := range g.calls {
		if c.Op == Post && c.OK() {
			out[c.ConnectionID] = append(out[c.ConnectionID], string(c.Data))
		}
	}
	return out
}

// MaxInFlight is the largest number of calls that were being answered at once.
func (g *Gateway) MaxInFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.maxFlight
}

// call answers one call: it applies the injected fault, then the connection's state, and logs
// the outcome. It returns the status (0 if ctx ended first: the caller got no answer) and the
// connection's LastActiveAt.
func (g *Gateway) call(ctx context.Context, op Op, id string, data []byte) (int, time.Time) {
	g.mu.Lock()
	g.seq++
	c := Call{Seq: g.seq, Op: op, ConnectionID: id, Data: slices.Clone(data)}
	var f Fault
	if g.inject != nil {
		f = g.inject(c)
	}
	g.inFlight++
	g.maxFlight = max(g.maxFlight, g.inFlight)
	g.mu.Unlock()

	if f.Regardless {
		done := make(chan struct{})
		var status int
		var last time.Time
		go func() {
			time.Sleep(f.Delay)
			status, last = g.answer(context.WithoutCancel(ctx), c, f)
			close(done)
		}()
		select {
		case <-done:
			return status, last
		case <-ctx.Done():
			return 0, time.Time{} // the caller sees no answer; the call still takes effect
		}
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return g.answer(ctx, c, f)
}

// answer completes a call once its fault's Delay has passed, unless ctx ended first: it applies
// the fault's status, then the connection's state, and records the call.
func (g *Gateway) answer(ctx context.Context, c Call, f Fault) (int, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	switch {
	case ctx.Err() != nil:
		c.Status = 0
	case f.Status != 0:
		c.Status = f.Status
	case g.closed[c.ConnectionID]:
		c.Status = http.StatusGone
	case c.Op == Delete:
		g.closed[c.ConnectionID] = true
		c.Status = http.StatusNoContent
	default:
		c.Status = http.StatusOK
	}
	g.calls = append(g.calls, c)
	return c.Status, g.lastActive[c.ConnectionID]
}

// Post sends a message to a connection (PostToConnection), as mgmt.Client.Post.
func (g *Gateway) Post(ctx context.Context, connID string, data []byte) error {
	if status, _ := g.call(ctx, Post, connID, data); status != http.StatusOK {
		return callError(ctx, Post, connID, status)
	}
	return nil
}

// Get describes a connection (GetConnection), as mgmt.Client.Get: LastActiveAt is what
// SetLastActive set, if anything.
func (g *Gateway) Get(ctx context.Context, connID string) (mgmt.Info, error) {
	status, last := g.call(ctx, Get, connID, nil)
	if status != http.StatusOK {
		return mgmt.Info{}, callError(ctx, Get, connID, status)
	}
	return mgmt.Info{LastActiveAt: last}, nil
}

// Delete closes a connection (DeleteConnection), as mgmt.Client.Delete.
func (g *Gateway) Delete(ctx context.Context, connID string) error {
	if status, _ := g.call(ctx, Delete, connID, nil); status != http.StatusNoContent {
		return callError(ctx, Delete, connID, status)
	}
	return nil
}

// callError is the error of a call that failed with status, or whose context ended (status 0).
func callError(ctx context.Context, op Op, connID string, status int) error {
	if status == 0 {
		return fmt.Errorf("mgmttest: %s %s: %w", op, connID, ctx.Err())
	}
	return Error(op, connID, status)
}

// errorType is the exception API Gateway names for a status (X-Amzn-ErrorType).
func errorType(status int) string {
	switch status {
	case http.StatusGone:
		return "GoneException"
	case http.StatusForbidden:
		return "ForbiddenException"
	case http.StatusTooManyRequests:
		return "LimitExceededException"
	case http.StatusRequestEntityTooLarge:
		return "PayloadTooLargeException"
	}
	return "InternalServerErrorException"
}

// Error returns the error the in-process Gateway gives a call answered with status: it matches,
// with errors.Is, the sentinel internal/mgmt's client returns for that answer: mgmt.ErrGone
// (410), mgmt.ErrForbidden (403), mgmt.ErrThrottled (429), mgmt.ErrTooLarge (413),
// mgmt.ErrServer (5xx), mgmt.ErrRejected (any other status).
func Error(op Op, connID string, status int) error {
	var kind error
	switch {
	case status == http.StatusGone:
		kind = mgmt.ErrGone
	case status == http.StatusForbidden:
		kind = mgmt.ErrForbidden
	case status == http.StatusTooManyRequests:
		kind = mgmt.ErrThrottled
	case status == http.StatusRequestEntityTooLarge:
		kind = mgmt.ErrTooLarge
	case status >= 500:
		kind = mgmt.ErrServer
	default:
		kind = mgmt.ErrRejected
	}
	return fmt.Errorf("mgmttest: %s %s: %d %s: %w", op, connID, status, errorType(status), kind)
}

// Fail returns an injector that fails every call of the given ops (all ops when none) with
// status; it is the building block for the common cases (every post 403, every call 500).
func Fail(status int, ops ...Op) func(Call) Fault {
	return func(c Call) Fault {
		if len(ops) == 0 || slices.Contains(ops, c.Op) {
			return Fault{Status: status}
		}
		return Fault{}
	}
}

// ServeHTTP serves the management API as API Gateway does: POST, GET and DELETE on
// /@connections/{id} (under any stage prefix), SigV4-signed requests only (403 otherwise),
// errors as a JSON message with the exception's name in X-Amzn-ErrorType.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	i := strings.Index(path, "/@connections/")
	if i < 0 {
		writeError(w, http.StatusNotFound, "NotFoundException")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, http.StatusForbidden, "MissingAuthenticationTokenException")
		return
	}
	id, err := url.PathUnescape(path[i+len("/@connections/"):])
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequestException")
		return
	}
	var op Op
	var data []byte
	switch r.Method {
	case http.MethodPost:
		op = Post
		if data, err = io.ReadAll(r.Body); err != nil {
			writeError(w, http.StatusBadRequest, "BadRequestException")
			return
		}
	case http.MethodGet:
		op = Get
	case http.MethodDelete:
		op = Delete
	default:
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowedException")
		return
	}
	status, last := g.call(r.Context(), op, id, data)
	switch {
	case status == 0:
		return // the client went away
	case status >= 300:
		writeError(w, status, errorType(status))
	case op == Get:
		info := map[string]any{}
		if !last.IsZero() {
			info["lastActiveAt"] = last.UTC().Format(time.RFC3339Nano)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(info)
	default:
		w.WriteHeader(status)
	}
}

func writeError(w http.ResponseWriter, status int, errType string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", errType)
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"message":%q}`, http.StatusText(status))
}
