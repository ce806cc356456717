package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
)

// finally checks the end state of a record after its faults were lifted and its retries ran:
// every live subscriber received it exactly once, in all. It returns lost and duplicated
// deliveries.
func finally(t testing.TB, live []string, delivered map[string]int) (lost, dups int) {
	t.Helper()
	for _, id := range live {
		switch n := delivered[id]; {
		case n == 0:
			lost++
		case n > 1:
			dups += n - 1
		}
	}
	if lost > 0 || dups > 0 {
		t.Errorf("in the end %d of %d subscribers never received the record and %d deliveries were duplicates", lost, len(live), dups)
	}
	return lost, dups
}

// posts counts the endpoint's answers to posts by status.
func posts(gw *mgmttest.Gateway) map[int]int {
	out := map[int]int{}
	for _, c := range gw.Calls() {
		if c.Op == mgmttest.Post {
			out[c.Status]++
		}
	}
	return out
}

// TestThrottledAt100PerSecond (issue 7, defect 2): the endpoint allows 100 posts a second (a
// token bucket, 429 LimitExceededException above it) and a room has 1,000 subscribers. Two
// records, one batch each, in the same warm process: both delivered to every subscriber within
// the deadline, nothing carried or reported. Before the fix the SDK's retry-token bucket lost 647
// of the first batch's deliveries and 799 of the second's. (Checked: with a retry-token bucket
// like the SDK's put back into internal/mgmt, 1,883 of the 2,000 are not delivered and both
// records are reported.)
func TestThrottledAt100PerSecond(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{queue: 1})
	live := w.seed("t100", 1000)
	th := newThrottle(100, 100)
	w.gw.Inject(th.fault)
	w.queue.startConsumers()
	w.queue.open()
	f := w.start("stream")

	var r row
	r.deadline = w.timeout
	recs := []record{newRecord(t, w, "t100"), newRecord(t, w, "t100")}
	wasReported := map[string]bool{}
	for i, rec := range recs {
		inv := f.invoke(t, batchOf(rec))
		deadlineOK(t, fmt.Sprintf("batch %d", i+1), inv, w.timeout)
		r.answer = max(r.answer, inv.took)
		reps := reported(t, inv)
		reasons(t, inv, reps)
		if len(reps) != 0 {
			t.Errorf("batch %d reported %v: throttling within the deadline must be retried, not reported", i+1, reps)
		}
		r.reported += len(reps)
		maps.Copy(wasReported, reps)
	}
	w.queue.idle(time.Minute)
	cs := w.queue.continuations()
	for i, d := range w.deliveries(recs...) {
		carried := w.carriedKeys(cs, recs[i].ID())
		lost, dups, nd, nc := account(t, live, d, carried, wasReported[recs[i].Seq()], false)
		if nd != len(live) {
			t.Errorf("batch %d: %d of %d subscribers delivered", i+1, nd, len(live))
		}
		r.subscribers += len(live)
		r.delivered += nd
		r.queued += nc
		r.lost += lost
		r.duplicates += dups
	}
	st := posts(w.gw)
	if st[http.StatusTooManyRequests] < 1000 {
		t.Errorf("the endpoint answered only %d posts with 429: the throttle did not bite", st[http.StatusTooManyRequests])
	}
	r.note = fmt.Sprintf("2 batches × 1,000 in one warm process; %d posts answered 429", st[http.StatusTooManyRequests])
	r.log(t)
}

// TestThrottledAt2PerSecond (issue 7, defect 2, throttling that outlasts the timeout): 2 posts a
// second for 1,000 subscribers. Posts are retried until the deadline; most come back still
// throttled, which is the service's failure (the account's request rate is exhausted), not the
// subscribers': the invocation answers before its deadline and reports the record, with one log
// line naming the throttling, rather than carry 1,000 throttled posts into more invocations that
// the same throttle would refuse. (Before the fix: 993 of 1,000 lost after 4.8 s, the record
// acknowledged.) Then the throttling ends and Lambda's retry delivers the rest: nobody is lost;
// the subscribers of partly delivered pages receive it twice (the retry resumes after the last
// fully delivered page), which the frames' event identity lets them recognise.
func TestThrottledAt2PerSecond(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{queue: 2})
	live := w.seed("t2", 1000)
	th := newThrottle(2, 2)
	w.gw.Inject(th.fault)
	w.queue.startConsumers() // the gate stays closed until the throttling ends
	f := w.start("stream")
	rec := newRecord(t, w, "t2")

	inv := f.invoke(t, batchOf(rec))
	deadlineOK(t, "the throttled batch", inv, w.timeout)
	reps := reported(t, inv)
	why := reasons(t, inv, reps)
	if !reps[rec.Seq()] || !strings.HasPrefix(why[rec.Seq()], "failed/service") || !strings.Contains(why[rec.Seq()], "429") {
		t.Errorf("the record was not reported as the service throttling: %v %v", reps, why)
	}
	d := w.deliveries(rec)[0]
	queued := w.carriedKeys(w.queue.continuations(), rec.ID())
	lost, dups, nd, nq := account(t, live, d, queued, reps[rec.Seq()], true)
	throttled := posts(w.gw)[http.StatusTooManyRequests]
	t.Logf("under throttling: %d delivered, %d queued, %d posts answered 429", nd, nq, throttled)

	th.lift()
	w.queue.open()
	w.queue.idle(2 * time.Minute)
	retry := f.invoke(t, batchOf(rec))
	deadlineOK(t, "the retry", retry, w.timeout)
	if reps := reported(t, retry); len(reps) != 0 {
		t.Errorf("the retry once the throttling ended reported %v", reps)
	}
	final := w.deliveries(rec)[0]
	flost, fdups := 0, 0
	for _, id := range live {
		switch k := final[id]; {
		case k == 0:
			flost++
		case k > 1:
			fdups += k - 1
			if d[id] == 0 {
				t.Errorf("%s received the record %d times, but not in the first invocation", id, k)
			}
		}
	}
	if flost > 0 {
		t.Errorf("%d subscribers never received the record", flost)
	}
	row{subscribers: len(live), delivered: nd, queued: nq, reported: len(reps), lost: lost + flost, duplicates: dups + fdups,
		answer: inv.took, deadline: w.timeout, note: fmt.Sprintf("%d posts answered 429; reported as throttling; the retry delivered the rest (duplicates: the partly delivered pages' subscribers)", throttled)}.log(t)
}

// serviceFailure is the case of every post failing with status: the record is reported with one
// line naming the cause (want), nothing is carried; once the service is back, the retry
// delivers everyone exactly once. (Checked: with the engine's service-failure classification
// turned off, every post 403 leaves 294 subscribers refused for good and logged, never retried.)
func serviceFailure(t *testing.T, status int, want string) {
	w := newWorld(t, worldOptions{queue: 1})
	live := w.seed(fmt.Sprintf("s%d", status), 1000)
	w.gw.Inject(mgmttest.Fail(status, mgmttest.Post))
	w.queue.startConsumers()
	w.queue.open()
	f := w.start("stream")
	rec := newRecord(t, w, fmt.Sprintf("s%d", status))

	inv := f.invoke(t, batchOf(rec))
	deadlineOK(t, "the failing batch", inv, w.timeout)
	reps := reported(t, inv)
	why := reasons(t, inv, reps)
	if !reps[rec.Seq()] || !strings.HasPrefix(why[rec.Seq()], "failed/service") || !strings.Contains(why[rec.Seq()], want) {
		t.Errorf("the record was not reported as a failure of the service (%s): %v", want, why)
	}
	d := w.deliveries(rec)[0]
	carried := w.carriedKeys(w.queue.continuations(), rec.ID())
	lost, dups, nd, nc := account(t, live, d, carried, reps[rec.Seq()], false)
	if nd != 0 || nc != 0 {
		t.Errorf("%d delivered and %d carried while every post failed", nd, nc)
	}
	failedPosts := posts(w.gw)[status]

	w.gw.Inject(nil)
	retry := f.invoke(t, batchOf(rec))
	deadlineOK(t, "the retry", retry, w.timeout)
	if reps := reported(t, retry); len(reps) != 0 {
		t.Errorf("the retry once the service was back reported %v", reps)
	}
	flost, fdups := finally(t, live, w.deliveries(rec)[0])
	row{subscribers: len(live), delivered: nd, queued: nc, reported: len(reps), lost: lost + flost, duplicates: dups + fdups,
		answer: inv.took, deadline: w.timeout, note: fmt.Sprintf("%d posts answered %d; reported: %s", failedPosts, status, why[rec.Seq()])}.log(t)
}

// TestEveryPost403 (issue 7, defect 3): every post is refused (a missing grant, the wrong stage).
// That is the service's failure, not 1,000 subscribers': the record is reported, with one log
// line saying which, instead of acknowledged with 0 deliveries.
func TestEveryPost403(t *testing.T) {
	serviceFailure(t, http.StatusForbidden, "403 ForbiddenException")
}

// TestEveryPost500 (issue 7, defect 3): every post fails with 500 (an API Gateway incident). The
// posts are retried as long as the deadline allows, then the record is reported as the service's
// failure.
func TestEveryPost500(t *testing.T) {
	t.Parallel()
	serviceFailure(t, http.StatusInternalServerError, "5xx")
}

// TestSlowPostsWithTenThousandSubscribers (issue 7, defect 4): 10,000 subscribers, one post in
// twenty takes 5 s, the function's 29 s timeout, the chunk queue consumed by two more instances.
// Each invocation answers before its deadline (before the fix: "Task timed out after 29.00
// seconds", 7,662 delivered, the rest never read); every subscriber receives the message exactly
// once (a slow post's attempt is cut after 2 s and tried again).
func TestSlowPostsWithTenThousandSubscribers(t *testing.T) {
	w := newWorld(t, worldOptions{queue: 2})
	live := w.seed("slow", 10_000)
	var slow atomic.Int64
	w.gw.Inject(func(c mgmttest.Call) mgmttest.Fault {
		if c.Op == mgmttest.Post && c.Seq%20 == 0 {
			slow.Add(1)
			return mgmttest.Fault{Delay: 5 * time.Second}
		}
		return mgmttest.Fault{}
	})
	w.queue.startConsumers()
	w.queue.open()
	f := w.start("stream")
	rec := newRecord(t, w, "slow")

	var r row
	r.deadline, r.subscribers = w.timeout, len(live)
	// Lambda retries a reported record; a record waiting for its chunks is reported until they
	// are done.
	for attempt := 1; ; attempt++ {
		inv := f.invoke(t, batchOf(rec))
		deadlineOK(t, fmt.Sprintf("invocation %d", attempt), inv, w.timeout)
		r.answer = max(r.answer, inv.took)
		reps := reported(t, inv)
		why := reasons(t, inv, reps)
		if len(reps) == 0 {
			break
		}
		r.reported++
		if attempt == 3 {
			t.Fatalf("still reported after %d invocations: %v", attempt, why)
		}
		t.Logf("invocation %d reported the record: %v", attempt, why)
	}
	w.queue.idle(time.Minute)
	cs := w.queue.continuations()
	d := w.deliveries(rec)[0]
	_, _, nd, nc := account(t, live, d, w.carriedKeys(cs, rec.ID()), false, false)
	r.delivered, r.queued = nd, nc
	r.lost, r.duplicates = finally(t, live, d)
	r.note = fmt.Sprintf("%d slow attempts of %d; %d continuations (chunks of 2,000 and carried)", slow.Load(), len(w.gw.Calls()), len(cs))
	r.log(t)
}

// TestTenRecordsOfAThousandWithSlowPosts (issue 7, defect 4): one batch of 10 records, each a
// message to its own room of 1,000 subscribers, every post taking 50-100 ms. The records are
// delivered concurrently and the batch answers well before its deadline (before the fix: 29.17
// s, too late); every subscriber receives its room's message exactly once.
func TestTenRecordsOfAThousandWithSlowPosts(t *testing.T) {
	w := newWorld(t, worldOptions{queue: 1})
	var recs []record
	var live [][]string
	for i := range 10 {
		room := fmt.Sprintf("ten%02d", i)
		live = append(live, w.seed(room, 1000))
		recs = append(recs, newRecord(t, w, room))
	}
	w.gw.Inject(func(c mgmttest.Call) mgmttest.Fault {
		if c.Op == mgmttest.Post {
			return mgmttest.Fault{Delay: time.Duration(50+c.Seq%51) * time.Millisecond}
		}
		return mgmttest.Fault{}
	})
	w.queue.startConsumers()
	w.queue.open()
	f := w.start("stream")

	inv := f.invoke(t, batchOf(recs...))
	deadlineOK(t, "the batch of 10", inv, w.timeout)
	reps := reported(t, inv)
	reasons(t, inv, reps)
	if len(reps) != 0 {
		t.Errorf("the batch reported %v", reps)
	}
	w.queue.idle(time.Minute)
	cs := w.queue.continuations()
	r := row{answer: inv.took, deadline: w.timeout, reported: len(reps)}
	for i, d := range w.deliveries(recs...) {
		lost, dups, nd, nc := account(t, live[i], d, w.carriedKeys(cs, recs[i].ID()), reps[recs[i].Seq()], false)
		flost, fdups := finally(t, live[i], d)
		r.subscribers += len(live[i])
		r.delivered += nd
		r.queued += nc
		r.lost += lost + flost
		r.duplicates += dups + fdups
	}
	r.note = "10 rooms × 1,000, posts of 50-100 ms, one batch"
	r.log(t)
}

// TestTheSameRecordTwice (issue 7, defect 5): the same batch invoked twice (Lambda's retry after
// a timeout, a duplicate delivery of the stream): the second invocation reaches nobody.
func TestTheSameRecordTwice(t *testing.T) {
	w := newWorld(t, worldOptions{queue: 1})
	live := w.seed("twice", 1000)
	w.queue.startConsumers()
	w.queue.open()
	f := w.start("stream")
	rec := newRecord(t, w, "twice")

	first := f.invoke(t, batchOf(rec))
	deadlineOK(t, "the first invocation", first, w.timeout)
	before := len(w.gw.Calls())
	second := f.invoke(t, batchOf(rec))
	deadlineOK(t, "the second invocation", second, w.timeout)
	for _, inv := range []invocation{first, second} {
		if reps := reported(t, inv); len(reps) != 0 {
			t.Errorf("reported %v", reps)
		}
	}
	if n := len(w.gw.Calls()) - before; n != 0 {
		t.Errorf("the second invocation made %d calls to the management API, want none", n)
	}
	d := w.deliveries(rec)[0]
	_, _, nd, nc := account(t, live, d, w.carriedKeys(w.queue.continuations(), rec.ID()), false, false)
	lost, dups := finally(t, live, d)
	row{subscribers: len(live), delivered: nd, queued: nc, lost: lost, duplicates: dups, answer: max(first.took, second.took),
		deadline: w.timeout, note: "the second invocation of the same batch posted nothing"}.log(t)
}

// TestOneSlowPostHoldsBackNobody (issue 7, defect 7, its AWS half; the local runtime's half is
// internal/local TestOneSlowReaderStallsNobody): one of 100 subscribers' posts take 5 s each.
// The other 99 are delivered before the slow post's first attempt is even cut (after 2 s); the
// slow one is retried until the deadline, then carried to the chunk queue, and delivered from
// there once its posts are fast again.
func TestOneSlowPostHoldsBackNobody(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{queue: 1})
	live := w.seed("one", 100)
	slowID := live[37]
	var fast atomic.Bool
	w.gw.Inject(func(c mgmttest.Call) mgmttest.Fault {
		if c.Op == mgmttest.Post && c.ConnectionID == slowID && !fast.Load() {
			return mgmttest.Fault{Delay: 5 * time.Second}
		}
		return mgmttest.Fault{}
	})
	w.queue.startConsumers()
	f := w.start("stream")
	rec := newRecord(t, w, "one")

	inv := f.invoke(t, batchOf(rec))
	deadlineOK(t, "the batch", inv, w.timeout)
	reps := reported(t, inv)
	why := reasons(t, inv, reps)
	if !reps[rec.Seq()] || !strings.HasPrefix(why[rec.Seq()], "carried") {
		t.Errorf("the record was not reported as carried: %v", why)
	}
	// Calls are recorded as they are answered: every other subscriber's post was answered
	// before the slow one's first attempt was cut.
	others, cut := 0, 0
	for _, c := range w.gw.Calls() {
		if c.Op != mgmttest.Post {
			continue
		}
		if c.ConnectionID == slowID {
			if cut++; cut == 1 && others != len(live)-1 {
				t.Errorf("only %d of the other %d subscribers were delivered before the slow post's first attempt ended", others, len(live)-1)
			}
			continue
		}
		if c.OK() {
			others++
		}
	}
	d := w.deliveries(rec)[0]
	carried := w.carriedKeys(w.queue.continuations(), rec.ID())
	lost, dups, nd, nc := account(t, live, d, carried, false, true)
	if nc != 1 || carried[slowID] != 1 {
		t.Errorf("carried %v, want the slow subscriber alone", carried)
	}
	t.Logf("the slow post was attempted %d times before the deadline", cut)

	fast.Store(true)
	w.queue.open()
	w.queue.idle(time.Minute)
	retry := f.invoke(t, batchOf(rec))
	deadlineOK(t, "the retry", retry, w.timeout)
	if reps := reported(t, retry); len(reps) != 0 {
		t.Errorf("the retry reported %v", reps)
	}
	flost, fdups := finally(t, live, w.deliveries(rec)[0])
	row{subscribers: len(live), delivered: nd, queued: nc, reported: 1, lost: lost + flost, duplicates: dups + fdups,
		answer: inv.took, deadline: w.timeout, note: fmt.Sprintf("99 delivered at once; the slow one tried %d times, carried, then delivered", cut)}.log(t)
}

// ---------------------------------------------------------------------------------------------
// DynamoDB down.

func wsEvent(route, eventType, connID, body string) events.APIGatewayWebsocketProxyRequest {
	now := time.Now().UnixMilli()
	return events.APIGatewayWebsocketProxyRequest{
		RequestContext: events.APIGatewayWebsocketProxyRequestContext{
			RouteKey: route, EventType: eventType, ConnectionID: connID, Stage: "prod", APIID: "abcdef1234",
			DomainName: "abcdef1234.execute-api.us-east-1.amazonaws.com", RequestID: fmt.Sprintf("req-%s-%d", route, now),
			ConnectedAt: now, RequestTimeEpoch: now, MessageDirection: "IN",
		},
		Body: body,
	}
}

func connectEvent(connID, protocols string) events.APIGatewayWebsocketProxyRequest {
	ev := wsEvent("$connect", "CONNECT", connID, "")
	ev.Headers = map[string]string{"Sec-WebSocket-Protocol": protocols}
	return ev
}

func message(connID, body string) events.APIGatewayWebsocketProxyRequest {
	return wsEvent("$default", "MESSAGE", connID, body)
}

func routeResponse(t testing.TB, inv invocation) events.APIGatewayProxyResponse {
	t.Helper()
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(inv.body, &resp); err != nil {
		t.Fatalf("the route answered %s: %v", inv.body, err)
	}
	return resp
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestDynamoDBDownDuringEachRoute (issue 7, defect 6): DynamoDB unreachable (connections reset),
// failing (500 InternalServerError) or hanging (requests never answered) during each WebSocket
// route. Every route answers before its deadline (a hanging registry is cut a second before it),
// with one log line, and as the README's protocol table says: $connect refuses the
// handshake (500: the client retries), ping gets its pong, connection_init closes the socket
// (DeleteConnection), subscribe (and the legacy start) gets an error frame for its operation,
// complete (and stop) and $disconnect are answered with nothing. Before the fix each got a bare
// 500 and nothing was posted or closed, so a client waited for the 10-minute idle timeout.
func TestDynamoDBDownDuringEachRoute(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name string
		mode int32
	}{{"reset", dynamoReset}, {"500", dynamo500}, {"hang", dynamoHang}} {
		t.Run(mode.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{proxy: true})
			f := w.start("routes")
			send := func(ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, invocation) {
				t.Helper()
				inv := f.invoke(t, mustJSON(ev))
				return routeResponse(t, inv), inv
			}
			// While DynamoDB is up: a ready connection of each subprotocol with a subscription,
			// and one that is connected but not yet initialised.
			const ready, legacy, pending, fresh = "ReadyConn0001=", "LegacyConn001=", "PendingConn01=", "FreshConn0001="
			for _, c := range []struct{ id, proto string }{{ready, "graphql-transport-ws"}, {legacy, "graphql-ws"}, {pending, "graphql-transport-ws"}} {
				if resp, _ := send(connectEvent(c.id, c.proto)); resp.StatusCode != 200 {
					t.Fatalf("$connect %s = %+v", c.id, resp)
				}
			}
			if resp, _ := send(message(ready, `{"type":"connection_init"}`)); resp.StatusCode != 200 || resp.Body != `{"type":"connection_ack"}` {
				t.Fatalf("connection_init = %+v", resp)
			}
			// The legacy ack is posted (a start may be handled at once, before a route response).
			if resp, _ := send(message(legacy, `{"type":"connection_init"}`)); resp.StatusCode != 200 || w.gw.Posts()[legacy][0] != `{"type":"connection_ack"}` {
				t.Fatalf("connection_init (graphql-ws) = %+v, posted %v", resp, w.gw.Posts()[legacy])
			}
			send(message(ready, `{"id":"s1","type":"subscribe","payload":{"query":"subscription { messageAdded(roomId: \"r1\") { id } }"}}`))
			send(message(legacy, `{"id":"l1","type":"start","payload":{"query":"subscription { messageAdded(roomId: \"r1\") { id } }"}}`))
			w.gw.TakeCalls()

			var fs []*function
			for i := range 8 {
				fs = append(fs, w.start(fmt.Sprintf("route-%d", i+1)))
			}
			w.proxy.set(mode.mode)
			refusedBefore := w.proxy.refused.Load()
			cases := []struct {
				route string
				ev    events.APIGatewayWebsocketProxyRequest
				check func(events.APIGatewayProxyResponse) string // "" when right
			}{
				{"$connect", connectEvent(fresh, "graphql-transport-ws"), func(r events.APIGatewayProxyResponse) string {
					if r.StatusCode != http.StatusInternalServerError {
						return "want 500: the handshake refused, so the client retries"
					}
					return ""
				}},
				{"ping", message(ready, `{"type":"ping","payload":{"n":1}}`), func(r events.APIGatewayProxyResponse) string {
					if r.StatusCode != 200 || r.Body != `{"type":"pong","payload":{"n":1}}` {
						return "want the pong echoing the payload"
					}
					return ""
				}},
				{"connection_init", message(pending, `{"type":"connection_init"}`), func(r events.APIGatewayProxyResponse) string {
					var calls []mgmttest.Call
					for _, c := range w.gw.Calls() {
						if c.ConnectionID == pending {
							calls = append(calls, c)
						}
					}
					if r.StatusCode != 200 || r.Body != "" || len(calls) != 1 || calls[0].Op != mgmttest.Delete || !calls[0].OK() {
						return fmt.Sprintf("want the socket closed (one DeleteConnection) and no body; the endpoint saw %v", calls)
					}
					return ""
				}},
				{"subscribe", message(ready, `{"id":"s2","type":"subscribe","payload":{"query":"subscription { messageAdded(roomId: \"r2\") { id } }"}}`),
					func(r events.APIGatewayProxyResponse) string {
						var m struct {
							ID, Type string
							Payload  []struct {
								Message    string
								Extensions struct{ Code string }
							}
						}
						if r.StatusCode != 200 || json.Unmarshal([]byte(r.Body), &m) != nil || m.ID != "s2" || m.Type != "error" ||
							len(m.Payload) != 1 || m.Payload[0].Extensions.Code == "" {
							return "want an error frame for s2, its payload an array of one error with a code"
						}
						return ""
					}},
				{"start (graphql-ws)", message(legacy, `{"id":"l2","type":"start","payload":{"query":"subscription { messageAdded(roomId: \"r2\") { id } }"}}`),
					func(r events.APIGatewayProxyResponse) string {
						var m struct {
							ID, Type string
							Payload  struct{ Message string }
						}
						if r.StatusCode != 200 || json.Unmarshal([]byte(r.Body), &m) != nil || m.ID != "l2" || m.Type != "error" || m.Payload.Message == "" {
							return "want an error frame for l2 with one error object"
						}
						return ""
					}},
				{"complete", message(ready, `{"id":"s1","type":"complete"}`), func(r events.APIGatewayProxyResponse) string {
					if r.StatusCode != 200 || r.Body != "" {
						return "want 200 and nothing sent"
					}
					return ""
				}},
				{"stop (graphql-ws)", message(legacy, `{"id":"l1","type":"stop"}`), func(r events.APIGatewayProxyResponse) string {
					if r.StatusCode != 200 || r.Body != "" {
						return "want 200 and nothing sent"
					}
					return ""
				}},
				{"$disconnect", wsEvent("$disconnect", "DISCONNECT", ready, ""), func(r events.APIGatewayProxyResponse) string {
					if r.StatusCode != 200 {
						return "want 200 (nobody hears it; the sweeper, TTL and GoneException clean up)"
					}
					return ""
				}},
			}
			// Every route at once, each on its own instance (one invocation at a time each): a
			// DynamoDB that hangs holds each until a second before its deadline.
			invs := make([]invocation, len(cases))
			errs := make([]error, len(cases))
			var wg sync.WaitGroup
			for i, c := range cases {
				wg.Go(func() { invs[i], _, errs[i] = fs[i].call(context.Background(), mustJSON(c.ev)) })
			}
			wg.Wait()
			var slowest time.Duration
			for i, c := range cases {
				inv := invs[i]
				if errs[i] != nil {
					t.Errorf("%s: %v", c.route, errs[i])
					continue
				}
				if inv.took >= w.timeout || strings.Contains(string(inv.body), "Task timed out") {
					t.Errorf("%s answered after %v: %s", c.route, inv.took, inv.body)
					continue
				}
				resp := routeResponse(t, inv)
				slowest = max(slowest, inv.took)
				if msg := c.check(resp); msg != "" {
					t.Errorf("%s with DynamoDB down answered %+v: %s", c.route, resp, msg)
				}
				failedLines := 0
				for _, l := range logLines(inv.logs) {
					if l.str("message") == "websocket route failed" && l.str("error") != "" {
						failedLines++
					}
				}
				if failedLines != 1 {
					t.Errorf("%s with DynamoDB down logged %d lines saying why, want 1:\n%s", c.route, failedLines, inv.logs)
				}
				t.Logf("%-20s answered in %6.3f s: %d %q", c.route, inv.took.Seconds(), resp.StatusCode, resp.Body)
			}
			if w.proxy.refused.Load() == refusedBefore {
				t.Fatal("no request reached the failing proxy")
			}
			if len(cases) != len(fs) {
				t.Fatalf("%d routes for %d instances", len(cases), len(fs))
			}
			row{answer: slowest, deadline: w.timeout, note: fmt.Sprintf("DynamoDB %s: %d routes answered as the protocol table says, each with one log line", mode.name, len(cases))}.log(t)
		})
	}
}

// TestDynamoDBDownDuringTheStream (issue 7, defects 3 and 6): the registry unreachable while a
// record of 1,000 subscribers is delivered, from the start (the progress read fails), after 300
// deliveries (a page read fails with 500), or hanging after 300 (a page read never answered: it
// is cut at the engine's hard deadline, the rest carried to the chunk queue, and the done marker
// that would record that cannot be written either). The record is reported, with a log line
// naming the registry, before the deadline; once DynamoDB is back, Lambda's retry delivers the
// rest: nobody is lost; the duplicates are subscribers delivered or queued before the outage that
// the retry cannot know about (the pages after the last saved cursor).
func TestDynamoDBDownDuringTheStream(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		after int // posts before the outage
		mode  int32
	}{{"from the start, reset", 0, dynamoReset}, {"after 300 posts, 500", 300, dynamo500}, {"after 300 posts, hang", 300, dynamoHang}} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{proxy: true, queue: 1})
			live := w.seed("down", 1000)
			w.queue.startConsumers()
			w.queue.open()
			f := w.start("stream")
			rec := newRecord(t, w, "down")
			var n atomic.Int64
			if c.after == 0 {
				w.proxy.set(c.mode)
			} else {
				w.gw.Inject(func(call mgmttest.Call) mgmttest.Fault {
					if call.Op == mgmttest.Post && n.Add(1) == int64(c.after) {
						w.proxy.set(c.mode)
					}
					return mgmttest.Fault{}
				})
			}
			inv := f.invoke(t, batchOf(rec))
			deadlineOK(t, "the batch", inv, w.timeout)
			reps := reported(t, inv)
			why := reasons(t, inv, reps)
			if !reps[rec.Seq()] || !strings.HasPrefix(why[rec.Seq()], "failed/registry") {
				t.Errorf("the record was not reported as a registry failure: %v", why)
			}
			d := w.deliveries(rec)[0]
			w.proxy.set(dynamoUp)
			carried := w.carriedKeys(w.queue.continuations(), rec.ID())
			lost, _, nd, nc := account(t, live, d, carried, reps[rec.Seq()], false)

			retry := f.invoke(t, batchOf(rec))
			deadlineOK(t, "the retry", retry, w.timeout)
			if reps := reported(t, retry); len(reps) != 0 {
				t.Errorf("the retry once DynamoDB was back reported %v", reps)
			}
			w.queue.idle(time.Minute)
			final := w.deliveries(rec)[0]
			flost, dups := 0, 0
			for _, id := range live {
				switch k := final[id]; {
				case k == 0:
					flost++
				case k > 1:
					dups += k - 1
				}
			}
			if flost > 0 {
				t.Errorf("%d subscribers never received the record", flost)
			}
			// A page with an undelivered subscriber stops the saved cursor; the retry resumes
			// after the last saved one. At most the pages read ahead of it come again.
			if dups > nd+nc {
				t.Errorf("%d duplicates, more than the %d delivered and %d queued before the outage", dups, nd, nc)
			}
			row{subscribers: len(live), delivered: nd, queued: nc, reported: len(reps), lost: lost + flost, duplicates: dups,
				answer: inv.took, deadline: w.timeout, note: fmt.Sprintf("%d delivered before the outage; the retry delivered the rest (duplicates: pages re-read after the last saved cursor)", nd)}.log(t)
		})
	}
}
