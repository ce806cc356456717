package fanout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/store"
)

func TestFramesCarryTheEventIdentityInBothSubprotocols(t *testing.T) {
	s := newSetup(10)
	s.reg.add("t", store.Subscription{ConnectionID: "a", ID: "1", Subprotocol: gqlws.TransportWS, Query: "q1"},
		store.Subscription{ConnectionID: "b", ID: "op\"7", Subprotocol: gqlws.LegacyWS, Query: "q1"})
	e := s.engine(t)
	ev := event("e1", "0042", "t")
	noSeq := event("e2", "", "t")
	outs, st := e.Deliver(context.Background(), []fanout.Record{{ID: "e1", Seq: "0042", Events: []fanout.Event{ev}}, {ID: "e2", Events: []fanout.Event{noSeq}}})
	for i, o := range outs {
		if o.Status != fanout.Done || o.Report(true) {
			t.Fatalf("record %d: %+v", i, o)
		}
	}
	want := map[string][]string{
		"a": {`{"id":"1","type":"next","payload":{"data":{"q":"q1","ev":{"id":"e1"}},"extensions":{"event":{"id":"e1","seq":"0042"}}}}`,
			`{"id":"1","type":"next","payload":{"data":{"q":"q1","ev":{"id":"e2"}},"extensions":{"event":{"id":"e2"}}}}`},
		"b": {`{"id":"op\"7","type":"data","payload":{"data":{"q":"q1","ev":{"id":"e1"}},"extensions":{"event":{"id":"e1","seq":"0042"}}}}`,
			`{"id":"op\"7","type":"data","payload":{"data":{"q":"q1","ev":{"id":"e2"}},"extensions":{"event":{"id":"e2"}}}}`},
	}
	if got := s.poster.byConn(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("frames:\n%v\nwant\n%v", got, want)
	}
	if st.Delivered != 4 || st.Renders != 2 || st.Records != 2 || st.Events != 2 {
		t.Fatalf("stats %+v", st)
	}
	// A single-page topic that completes writes no progress row.
	if st.ProgressWrites != 0 || s.reg.saves.Load() != 0 {
		t.Fatalf("%d progress writes for single-page topics", s.reg.saves.Load())
	}
}

func TestWithEvent(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"data":{"a":1}}`, `{"data":{"a":1},"extensions":{"event":{"id":"e","seq":"9"}}}`},
		{` { "data" : null } `, ` { "data" : null ,"extensions":{"event":{"id":"e","seq":"9"}}}`},
		{`{}`, `{"extensions":{"event":{"id":"e","seq":"9"}}}`},
		{`{"data":1,"extensions":{}}`, `{"data":1,"extensions":{"event":{"id":"e","seq":"9"}}}`},
		{`{"extensions":{"cost":{"n":2}},"data":{"extensions":3}}`, `{"extensions":{"event":{"id":"e","seq":"9"},"cost":{"n":2}},"data":{"extensions":3}}`},
		{`{"extensions":{"event":"old","x":[1,{"event":2}]}}`, `{"extensions":{"event":{"id":"e","seq":"9"},"x":[1,{"event":2}]}}`},
		{`{"errors":[{"message":"m"}],"extensions":null}`, `{"errors":[{"message":"m"}],"extensions":null,"extensions":{"event":{"id":"e","seq":"9"}}}`},
	} {
		got, err := fanout.WithEvent([]byte(c.in), "e", "9")
		if err != nil || string(got) != c.want {
			t.Errorf("WithEvent(%s) = %s, %v\nwant %s", c.in, got, err, c.want)
			continue
		}
		var v any
		if err := json.Unmarshal(got, &v); err != nil {
			t.Errorf("WithEvent(%s) is not JSON: %s", c.in, got)
		}
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{"a":}`, `{"a":1} {}`, `{"a":1`} {
		if got, err := fanout.WithEvent([]byte(bad), "e", ""); err == nil {
			t.Errorf("WithEvent(%q) = %s, want an error", bad, got)
		}
	}
}

func TestRendersOncePerDistinctOperationAndEvent(t *testing.T) {
	s := newSetup(7)
	var all []store.Subscription
	for i := range 300 {
		sub := store.Subscription{ConnectionID: fmt.Sprintf("c%03d", i), ID: "1", Subprotocol: gqlws.TransportWS, Query: "q"}
		switch i % 5 {
		case 1:
			sub.Query = "q2"
		case 2:
			sub.Variables = json.RawMessage(`{"x":1}`)
		case 3:
			sub.Principal = json.RawMessage(`{"sub":"ann"}`)
		case 4:
			sub.OperationName = "Named"
		}
		all = append(all, sub)
	}
	s.reg.add("t", all...)
	e := s.engine(t)
	outs, st := e.Deliver(context.Background(), []fanout.Record{record("e1", "1", "t"), record("e2", "2", "t")})
	if outs[0].Status != fanout.Done || outs[1].Status != fanout.Done {
		t.Fatalf("outcomes %+v", outs)
	}
	if st.Renders != 10 || s.rend.n.Load() != 10 || len(s.rend.calls) != 5 {
		t.Fatalf("%d renders (%v) for 5 operations × 2 events", s.rend.n.Load(), s.rend.calls)
	}
	for k, n := range s.rend.calls {
		if n != 2 {
			t.Errorf("operation %q rendered %d times, want once per event", k, n)
		}
	}
	exactlyOnce(t, s.poster, all, "e1")
	exactlyOnce(t, s.poster, all, "e2")
}

func TestWorkerPoolIsBoundedAndShared(t *testing.T) {
	s := newSetup(50)
	s.cfg.Concurrency = 8
	s.poster.behave = func(string, []byte) (time.Duration, error) { return 2 * time.Millisecond, nil }
	a, b := subs(300, "a"), subs(300, "b")
	s.reg.add("A", a...)
	s.reg.add("B", b...)
	e := s.engine(t)
	base := runtime.NumGoroutine()
	var peakG atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				if g := int64(runtime.NumGoroutine()); g > peakG.Load() {
					peakG.Store(g)
				}
			}
		}
	})
	outs, st := e.Deliver(context.Background(), []fanout.Record{record("e1", "1", "A"), record("e2", "2", "B")})
	close(stop)
	wg.Wait()
	if outs[0].Status != fanout.Done || outs[1].Status != fanout.Done || st.Delivered != 600 {
		t.Fatalf("outcomes %+v stats %+v", outs, st)
	}
	if m := s.poster.maxInflight.Load(); m > 8 || m < 2 {
		t.Fatalf("max posts in flight %d, want 2..8", m)
	}
	// No goroutine per subscriber: 600 deliveries, a handful of goroutines beyond the pool.
	if extra := peakG.Load() - int64(base); extra > 10 {
		t.Fatalf("%d goroutines beyond the pool during a 600-subscriber fan-out", extra)
	}
}

func TestOrderPerTopicAndNoWaitAcrossTopics(t *testing.T) {
	s := newSetup(20)
	s.cfg.Concurrency = 16
	slow, fast := subs(60, "slow"), subs(40, "fast")
	s.reg.add("S", slow...)
	s.reg.add("F", fast...)
	s.poster.behave = func(conn string, _ []byte) (time.Duration, error) {
		if strings.HasPrefix(conn, "slow") {
			return 50 * time.Millisecond, nil
		}
		return 0, nil
	}
	e := s.engine(t)
	start := time.Now()
	outs, _ := e.Deliver(context.Background(), []fanout.Record{
		record("s1", "1", "S"), record("f1", "2", "F"), record("s2", "3", "S"), record("f2", "4", "F"), record("f3", "5", "F"),
	})
	for i, o := range outs {
		if o.Status != fanout.Done {
			t.Fatalf("record %d: %+v", i, o)
		}
	}
	var lastFast, s1End, s2Start time.Time
	for _, p := range s.poster.all() {
		if strings.HasPrefix(p.conn, "fast") && p.end.After(lastFast) {
			lastFast = p.end
		}
		if strings.Contains(p.data, `"id":"s1"`) && p.end.After(s1End) {
			s1End = p.end
		}
		if strings.Contains(p.data, `"id":"s2"`) && (s2Start.IsZero() || p.start.Before(s2Start)) {
			s2Start = p.start
		}
	}
	// The three records of F went out while the first record of S was still being delivered
	// (it takes at least 60×50ms/16 ≈ 190 ms even with every worker).
	if !lastFast.Before(s1End) {
		t.Fatalf("fast topic finished at %v, after the slow topic's first record (%v): it waited", lastFast.Sub(start), s1End.Sub(start))
	}
	ids := eventIDs(t, s.poster)
	for _, sub := range slow {
		if got := strings.Join(ids[sub.ConnectionID], ","); got != "s1,s2" {
			t.Fatalf("%s received %s, want s1,s2", sub.ConnectionID, got)
		}
	}
	for _, sub := range fast {
		if got := strings.Join(ids[sub.ConnectionID], ","); got != "f1,f2,f3" {
			t.Fatalf("%s received %s, want f1,f2,f3", sub.ConnectionID, got)
		}
	}
	// The second record of S started only when the first had finished for every subscriber.
	if s2Start.Before(s1End) {
		t.Fatalf("s2 started at %v, before s1 finished at %v", s2Start.Sub(start), s1End.Sub(start))
	}
}

// TestRecordsSharingAKeyKeepTheirOrderAcrossTopics: two records of different topics that share an
// order key (a stream record's partition: one room) are delivered in batch order, so a subscriber
// of both topics (messageAdded and messageEdited of a room) never sees the edit before the
// message; a record with another key does not wait.
func TestRecordsSharingAKeyKeepTheirOrderAcrossTopics(t *testing.T) {
	s := newSetup(4)
	s.cfg.Concurrency = 8
	both := subs(1, "both")[0]
	other := subs(1, "other")[0]
	added, edited := both, both
	added.ID, edited.ID = "added", "edited"
	s.reg.add("added?room=r1", added)
	s.reg.add("edited?room=r1", edited)
	s.reg.add("added?room=r2", other)
	s.poster.behave = func(_ string, data []byte) (time.Duration, error) {
		if strings.Contains(string(data), `"id":"add1"`) {
			return 100 * time.Millisecond, nil // the message is slow to go out
		}
		return 0, nil
	}
	e := s.engine(t)
	add1, edit1, add2 := record("add1", "1", "added?room=r1"), record("edit1", "2", "edited?room=r1"), record("add2", "3", "added?room=r2")
	add1.Keys, edit1.Keys, add2.Keys = []string{"room#r1"}, []string{"room#r1"}, []string{"room#r2"}
	outs, _ := e.Deliver(context.Background(), []fanout.Record{add1, edit1, add2})
	for i, o := range outs {
		if o.Status != fanout.Done {
			t.Fatalf("record %d: %+v", i, o)
		}
	}
	var order []string
	var add1End, edit1Start, add2End time.Time
	for _, p := range s.poster.all() {
		switch {
		case strings.Contains(p.data, `"id":"add1"`):
			add1End = p.end
		case strings.Contains(p.data, `"id":"edit1"`):
			edit1Start = p.start
		case strings.Contains(p.data, `"id":"add2"`):
			add2End = p.end
		}
		if p.conn == both.ConnectionID {
			order = append(order, p.data)
		}
	}
	if edit1Start.Before(add1End) {
		t.Fatalf("the edit went out at %v, before the message it edits was delivered (%v)", edit1Start, add1End)
	}
	if !add2End.Before(add1End) {
		t.Fatalf("room r2's record waited for room r1's (ended %v, r1's at %v)", add2End, add1End)
	}
	if len(order) != 2 {
		t.Fatalf("the subscriber of both topics got %d frames, want 2", len(order))
	}
}

func TestGoneConnectionsAreForgottenOncePerInvocation(t *testing.T) {
	s := newSetup(3)
	var all []store.Subscription
	for _, c := range []string{"gone", "ok1", "ok2"} {
		for _, id := range []string{"1", "2", "3"} {
			all = append(all, store.Subscription{ConnectionID: c, ID: id, Subprotocol: gqlws.TransportWS, Query: "q" + id})
		}
	}
	s.reg.add("A", all...)
	s.reg.add("B", all[:2]...)
	s.poster.behave = func(conn string, _ []byte) (time.Duration, error) {
		if conn == "gone" {
			return 0, fmt.Errorf("post %s: %w", conn, errGone)
		}
		return 0, nil
	}
	e := s.engine(t)
	outs, st := e.Deliver(context.Background(), []fanout.Record{record("e1", "1", "A", "B"), record("e2", "2", "A")})
	if outs[0].Status != fanout.Done || outs[1].Status != fanout.Done {
		t.Fatalf("a gone connection failed the record: %+v", outs)
	}
	if got := s.reg.deletedConns(); fmt.Sprint(got) != "[gone]" {
		t.Fatalf("deleted %v, want gone once", got)
	}
	if st.Gone != 3+2+3 || st.Delivered != 6+6 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTooLargeResultBecomesAnErrorOncePerOperation(t *testing.T) {
	s := newSetup(10)
	s.cfg.MaxMessage = 1024
	big := strings.Repeat("x", 2000)
	s.rend.result = func(sub *store.Subscription, ev *fanout.Event) json.RawMessage {
		if sub.Query == "big" {
			return json.RawMessage(`{"data":{"text":"` + big + `"}}`)
		}
		return json.RawMessage(`{"data":{"text":"small"}}`)
	}
	s.reg.add("t",
		store.Subscription{ConnectionID: "a", ID: "1", Subprotocol: gqlws.TransportWS, Query: "big"},
		store.Subscription{ConnectionID: "b", ID: "1", Subprotocol: gqlws.LegacyWS, Query: "big"},
		store.Subscription{ConnectionID: "c", ID: "1", Subprotocol: gqlws.TransportWS, Query: "small"},
		store.Subscription{ConnectionID: "d", ID: "1", Subprotocol: gqlws.TransportWS, Query: "small413"},
	)
	// The service refuses d's message as too large although it is under our limit.
	s.poster.behave = func(conn string, data []byte) (time.Duration, error) {
		if conn == "d" && !strings.Contains(string(data), "RESULT_TOO_LARGE") {
			return 0, errTooLarge
		}
		return 0, nil
	}
	e := s.engine(t)
	outs, st := e.Deliver(context.Background(), []fanout.Record{record("e1", "5", "t")})
	if outs[0].Status != fanout.Done {
		t.Fatalf("outcome %+v", outs[0])
	}
	if st.TooLarge != 3 || st.Delivered != 1 || st.Renders != 3 {
		t.Fatalf("stats %+v", st)
	}
	for _, conn := range []string{"a", "b", "d"} {
		frames := s.poster.byConn()[conn]
		var m struct {
			Payload struct {
				Errors []struct {
					Message    string
					Extensions struct{ Code string }
				}
				Extensions struct{ Event struct{ ID, Seq string } }
			}
		}
		if len(frames) != 1 || json.Unmarshal([]byte(frames[0]), &m) != nil || len(m.Payload.Errors) != 1 ||
			m.Payload.Errors[0].Extensions.Code != "RESULT_TOO_LARGE" || m.Payload.Extensions.Event.ID != "e1" {
			t.Fatalf("%s received %v", conn, frames)
		}
		if len(frames[0]) > 1024 {
			t.Fatalf("error frame of %d bytes", len(frames[0]))
		}
	}
}

func TestServiceFailureIsToldFromSubscribersFailures(t *testing.T) {
	for _, c := range []struct {
		name    string
		n       int
		budget  time.Duration
		behave  func(conn string) (time.Duration, error)
		status  fanout.Status
		reason  fanout.Reason
		message string
	}{
		{"every post 403", 200, 0, func(string) (time.Duration, error) { return 0, errForbidden }, fanout.Failed, fanout.ReasonService, "403 ForbiddenException"},
		{"every post 500", 200, 0, func(string) (time.Duration, error) { return 0, errServer }, fanout.Failed, fanout.ReasonService, "5xx"},
		{"every attempt times out (the poster's own timeout)", 200, 0, func(string) (time.Duration, error) {
			return 0, fmt.Errorf("post: %w", context.DeadlineExceeded)
		}, fanout.Failed, fanout.ReasonService, "unreachable"},
		{"two posts, both 403", 2, 0, func(string) (time.Duration, error) { return 0, errForbidden }, fanout.Failed, fanout.ReasonService, "403"},
		{"throttled past the deadline", 200, 2 * time.Second, func(string) (time.Duration, error) { return time.Hour, errThrottled }, fanout.Failed, fanout.ReasonService, "429"},
		{"one post, a stale id's 403", 1, 0, func(string) (time.Duration, error) { return 0, errForbidden }, fanout.Done, fanout.NoReason, ""},
		{"isolated failures", 200, 0, func(conn string) (time.Duration, error) {
			switch conn {
			case "c00007", "c00100":
				return 0, errForbidden
			case "c00150":
				return 0, errServer
			case "c00151":
				return 0, errThrottled
			}
			return 0, nil
		}, fanout.Done, fanout.NoReason, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSetup(50)
			s.cfg.Margin = 200 * time.Millisecond
			if c.budget > 0 {
				// The posts still throttled at D−M are answered at D−M+M/5 and counted, unless
				// the engine stopped waiting at D−M+M/4: a margin big enough for that gap to
				// outlast a loaded machine's scheduling delays.
				s.cfg.Margin = c.budget / 2
			}
			all := subs(c.n, "c")
			s.reg.add("t", all...)
			s.poster.behave = func(conn string, _ []byte) (time.Duration, error) { return c.behave(conn) }
			e := s.engine(t)
			ctx := context.Background()
			if c.budget > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.budget)
				defer cancel()
			}
			outs, st := e.Deliver(ctx, []fanout.Record{record("e1", "1", "t")})
			o := outs[0]
			if o.Status != c.status || o.Reason != c.reason || (c.message != "" && (o.Err == nil || !strings.Contains(o.Err.Error(), c.message))) {
				t.Fatalf("outcome %v/%v %v, want %v/%v %q", o.Status, o.Reason, o.Err, c.status, c.reason, c.message)
			}
			if c.status == fanout.Failed {
				if s.queue.len() != 0 {
					t.Fatalf("a failing service's remainder was carried")
				}
				// A failing service stops the record early instead of failing every post.
				if attempted := st.Failed + st.Throttled + st.Delivered; c.n > 100 && c.budget == 0 && attempted > 100 {
					t.Fatalf("%d posts attempted against a failing service", attempted)
				}
			} else if c.n == 200 && (st.Delivered != 196 || st.Failed != 3 || st.Throttled != 1) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// The case, scaled: 5 % of posts take far longer than the budget, the others are
// quick. The engine answers before D−M/2 (allowing scheduling slack on a loaded machine; an
// engine that waited for the slow posts would answer seconds after D) and nothing is lost: what
// was not delivered is carried (and the chunk consumers deliver it exactly once), or, without a
// queue, the record is reported and its retry resumes after the last delivered page.
func TestDeadlineGovernsEverything(t *testing.T) {
	const budget, margin = 1500 * time.Millisecond, 500 * time.Millisecond
	slowPosts := func(conn string, _ []byte) (time.Duration, error) {
		var i int
		fmt.Sscanf(conn[1:], "%d", &i)
		if i >= 500 && i%20 == 7 {
			return 3 * time.Second, nil
		}
		return time.Millisecond, nil
	}
	for _, withQueue := range []bool{true, false} {
		t.Run(fmt.Sprintf("queue=%v", withQueue), func(t *testing.T) {
			s := newSetup(100)
			s.cfg.Margin = margin
			s.cfg.ChunkSize = -1
			if !withQueue {
				s.cfg.Queue = nil
			}
			all := subs(3000, "c")
			s.reg.add("t", all...)
			s.poster.behave = slowPosts
			e := s.engine(t)
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			dl, _ := ctx.Deadline()
			outs, st := e.Deliver(ctx, []fanout.Record{record("e1", "1", "t")})
			checkTimes(t, s.poster, dl, margin, time.Now())
			o := outs[0]
			if !withQueue {
				if o.Status != fanout.Failed || o.Reason != fanout.ReasonDeadline || !o.Report(false) {
					t.Fatalf("outcome %+v, want failed(deadline)", o)
				}
				// The retry resumes after the last fully delivered page: the first 500
				// subscribers (5 pages) are not delivered twice.
				s.poster.setBehave(nil)
				if outs, _ = e.Deliver(context.Background(), []fanout.Record{record("e1", "1", "t")}); outs[0].Status != fanout.Done {
					t.Fatalf("retry: %+v", outs[0])
				}
				exactlyOnce(t, s.poster, all[:500], "e1")
				got := eventIDs(t, s.poster)
				if len(got) != len(all) {
					t.Fatalf("%d of %d subscribers reached after the retry", len(got), len(all))
				}
				for conn, ids := range got {
					if len(ids) > 2 {
						t.Fatalf("%s received %v", conn, ids)
					}
				}
				return
			}
			if o.Status != fanout.Carried || !o.Report(true) || o.Report(false) {
				t.Fatalf("outcome %+v, want carried", o)
			}
			if st.Carried == 0 || st.Delivered == 3000 {
				t.Fatalf("stats %+v: nothing carried", st)
			}
			t.Logf("delivered %d of 3000 inline, %d continuations", st.Delivered, st.Carried)
			// The posts cut by the deadline are listed; the pages never read are a range.
			var lists, ranges int
			for _, m := range s.queue.msgs {
				c, err := fanout.ParseContinuation(m)
				if err != nil {
					t.Fatal(err)
				}
				if c.Keys != nil {
					lists++
				} else if c.After != "" {
					ranges++
				}
			}
			if lists == 0 || ranges != 1 {
				t.Fatalf("%d list and %d range continuations, want some and one", lists, ranges)
			}
			s.poster.setBehave(nil) // the slow connections recovered
			drain(t, e, s.queue, 5*time.Second)
			exactlyOnce(t, s.poster, all, "e1")
			// The retry of the carried record (a stream reports it) delivers nothing again and
			// finds its parts done.
			before := len(s.poster.all())
			outs, _ = e.Deliver(context.Background(), []fanout.Record{record("e1", "1", "t")})
			if outs[0].Status != fanout.Done || len(s.poster.all()) != before {
				t.Fatalf("retry: %+v, %d new posts", outs[0], len(s.poster.all())-before)
			}
		})
	}
}

// checkTimes checks the deadline's promises: no post started after D−M, and the answer came by
// D−M/2. Both allow a little scheduling slack: the machine running the tests is shared.
func checkTimes(t *testing.T, p *fakePoster, dl time.Time, margin time.Duration, returned time.Time) {
	t.Helper()
	const slack = 25 * time.Millisecond
	if ls := p.latestStart(); ls.After(dl.Add(-margin + slack)) {
		t.Fatalf("a post started %v after D−M", ls.Sub(dl.Add(-margin)))
	}
	if late := returned.Sub(dl.Add(-margin / 2)); late > margin/4 {
		t.Fatalf("answered %v after D−M/2", late)
	}
	t.Logf("answered %v before D (margin %v)", dl.Sub(returned), margin)
}

func TestWholeBatchCannotFinish(t *testing.T) {
	const budget, margin = 1000 * time.Millisecond, 400 * time.Millisecond
	s := newSetup(50)
	s.cfg.Margin = margin
	s.cfg.ChunkSize = -1
	s.cfg.Concurrency = 8
	// The first record of each topic is quick (50 ms with its 2 workers); the later ones need
	// a second each: the batch cannot finish.
	s.poster.behave = func(_ string, data []byte) (time.Duration, error) {
		for _, quick := range []string{`"id":"e0"`, `"id":"e1"`, `"id":"e2"`, `"id":"e3"`} {
			if strings.Contains(string(data), quick) {
				return time.Millisecond, nil
			}
		}
		return 20 * time.Millisecond, nil
	}
	var recs []fanout.Record
	subsOf := map[string][]store.Subscription{}
	for i := range 10 {
		topic := fmt.Sprintf("room%d", i%4) // 10 records over 4 topics
		if subsOf[topic] == nil {
			subsOf[topic] = subs(100, topic+"-")
			s.reg.add(topic, subsOf[topic]...)
		}
		recs = append(recs, record(fmt.Sprintf("e%d", i), fmt.Sprint(i), topic))
	}
	e := s.engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	dl, _ := ctx.Deadline()
	outs, _ := e.Deliver(ctx, recs)
	checkTimes(t, s.poster, dl, margin, time.Now())
	var counts [3]int
	for i, o := range outs {
		counts[o.Status]++
		// Order per topic: once a topic's record is not done, its later records do not run.
		for j := i + 4; j < len(recs); j += 4 {
			if o.Status != fanout.Done && outs[j].Status == fanout.Done {
				t.Fatalf("record %d done after record %d of its topic was %v", j, i, o.Status)
			}
		}
	}
	for i, o := range outs[:4] {
		if o.Status != fanout.Done {
			t.Fatalf("quick record %d: %+v", i, o)
		}
	}
	if counts[fanout.Done] == len(recs) {
		t.Fatalf("outcomes %v: the batch should not have finished", counts)
	}
	// Everything carried reaches every subscriber exactly once.
	drain(t, e, s.queue, 5*time.Second)
	for i, o := range outs {
		if o.Status != fanout.Failed {
			exactlyOnce(t, s.poster, subsOf[recs[i].Events[0].Topic], recs[i].ID)
		}
	}
}

// TestFirstPageReadBesideTheProgressRead: the first page of a record's topic is read while the
// progress read is in flight (one registry round trip to the first delivery, not two), used when
// the event has no row, and not used when it has one (TestRetryResumesAfterTheLastDeliveredPage…
// would see the first pages twice); no read outlives Deliver.
func TestFirstPageReadBesideTheProgressRead(t *testing.T) {
	s := newSetup(10)
	all := subs(25, "p")
	s.reg.add("t", all...)
	s.reg.add("u", subs(5, "u")...)
	var readFirst atomic.Bool
	s.reg.beforeProgress = func() {
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if s.reg.pageReads.Load() > 0 {
				readFirst.Store(true)
				return
			}
		}
	}
	e := s.engine(t)
	batch := []fanout.Record{record("e1", "1", "t"), record("e2", "2", "u"), record("e3", "3", "t")}
	outs, _ := e.Deliver(context.Background(), batch)
	for i, o := range outs {
		if o.Status != fanout.Done {
			t.Fatalf("record %d: %+v", i, o)
		}
	}
	if !readFirst.Load() {
		t.Fatal("the progress read answered before any page was read: the first page waits for it")
	}
	exactlyOnce(t, s.poster, all, "e1")
	exactlyOnce(t, s.poster, all, "e3")
	// e3 waits for e1 (same topic): it has no prefetch, and reads its topic once, after e1.
	s.reg.mu.Lock()
	reads := len(s.reg.readCtxs)
	ctxs := slices.Clone(s.reg.readCtxs)
	s.reg.mu.Unlock()
	if reads != 3 {
		t.Fatalf("%d topic reads for 3 records, want 3", reads)
	}
	// A retry of the batch: every event is done now (marked or not), and the reads prefetched
	// for e1 and e2 are dropped, not delivered.
	s.reg.mu.Lock()
	for _, r := range batch {
		s.reg.progress[fanout.EventKey(&r.Events[0])] = fanout.Progress{Key: fanout.EventKey(&r.Events[0]), Done: true}
	}
	s.reg.mu.Unlock()
	before := len(s.poster.all())
	outs, st := e.Deliver(context.Background(), batch)
	if outs[0].Status != fanout.Done || st.Skipped != 3 || len(s.poster.all()) != before {
		t.Fatalf("retry of done records: %+v, stats %+v, %d posts", outs, st, len(s.poster.all())-before)
	}
	s.reg.mu.Lock()
	ctxs = append(ctxs, s.reg.readCtxs[reads:]...)
	s.reg.mu.Unlock()
	for i, ctx := range ctxs {
		if ctx.Err() == nil {
			t.Fatalf("topic read %d still running after Deliver returned", i+1)
		}
	}
}

func TestRetryResumesAfterTheLastDeliveredPageAndSkipsDoneRecords(t *testing.T) {
	s := newSetup(10)
	big, small := subs(100, "b"), subs(5, "s")
	s.reg.add("big", big...)
	s.reg.add("small", small...)
	var fail atomic.Bool
	fail.Store(true)
	s.reg.failPage = func(topic string, page int) error {
		if topic == "big" && page == 6 && fail.Load() {
			return errors.New("dynamodb: connection reset")
		}
		return nil
	}
	e := s.engine(t)
	batch := []fanout.Record{record("e1", "1", "big"), record("e2", "2", "small")}
	outs, _ := e.Deliver(context.Background(), batch)
	if outs[0].Status != fanout.Failed || outs[0].Reason != fanout.ReasonRegistry || outs[1].Status != fanout.Done {
		t.Fatalf("outcomes %+v", outs)
	}
	if n := len(s.poster.all()); n != 60+5 {
		t.Fatalf("%d posts before the failure, want 65", n)
	}
	// Lambda resumes from the failed record: both come back.
	fail.Store(false)
	outs, st := e.Deliver(context.Background(), batch)
	if outs[0].Status != fanout.Done || outs[1].Status != fanout.Done {
		t.Fatalf("retry outcomes %+v", outs)
	}
	exactlyOnce(t, s.poster, big, "e1")
	exactlyOnce(t, s.poster, small, "e2")
	if st.Skipped != 1 || st.Subscribers != 40 {
		t.Fatalf("retry stats %+v: want the small record skipped and 40 subscribers read", st)
	}
	// Done now: a third delivery of the batch posts nothing.
	before := len(s.poster.all())
	outs, st = e.Deliver(context.Background(), batch)
	if outs[0].Status != fanout.Done || len(s.poster.all()) != before || st.Skipped != 2 {
		t.Fatalf("third delivery: %+v, %d posts, stats %+v", outs, len(s.poster.all())-before, st)
	}
}

func TestRecordsAfterAFailedOneOfTheirTopicDoNotRun(t *testing.T) {
	s := newSetup(10)
	s.reg.add("x", subs(5, "x")...)
	s.reg.add("y", subs(5, "y")...)
	s.reg.failPage = func(topic string, page int) error {
		if topic == "x" {
			return errors.New("unreadable")
		}
		return nil
	}
	e := s.engine(t)
	outs, _ := e.Deliver(context.Background(), []fanout.Record{record("e1", "1", "x"), record("e2", "2", "y"), record("e3", "3", "x", "y")})
	if outs[0].Reason != fanout.ReasonRegistry || outs[1].Status != fanout.Done || outs[2].Reason != fanout.ReasonBlocked {
		t.Fatalf("outcomes %+v", outs)
	}
	for _, ids := range eventIDs(t, s.poster) {
		for _, id := range ids {
			if id == "e3" {
				t.Fatalf("e3 delivered although e1 of its topic failed")
			}
		}
	}
	// e2 was done but Lambda redelivers it after e1: it was marked done.
	if p := s.reg.progress[fanout.EventKey(&[]fanout.Event{event("e2", "2", "y")}[0])]; !p.Done {
		t.Fatalf("e2 not marked done: %+v", p)
	}
}

func TestChunksAreDeliveredByConsumersAndTheRecordWaitsForThem(t *testing.T) {
	s := newSetup(25)
	s.cfg.ChunkSize = 100
	all := subs(1000, "c")
	s.reg.add("t", all...)
	e := s.engine(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var consumed atomic.Int64
	wg.Go(func() { // the chunk queue's consumer
		for ctx.Err() == nil {
			if s.queue.len() == 0 {
				time.Sleep(2 * time.Millisecond)
				continue
			}
			st := drain(t, e, s.queue, 5*time.Second)
			consumed.Add(int64(st.Records))
		}
	})
	outs, st := e.Deliver(context.Background(), []fanout.Record{record("e1", "1", "t"), record("e2", "2", "t")})
	cancel()
	wg.Wait()
	if outs[0].Status != fanout.Done || outs[1].Status != fanout.Done {
		t.Fatalf("outcomes %+v", outs)
	}
	if st.Chunks != 18 || consumed.Load() != 18 || s.reg.cursorWalks.Load() != 2 {
		t.Fatalf("stats %+v, %d consumed, %d walks: want 9 chunks per record", st, consumed.Load(), s.reg.cursorWalks.Load())
	}
	exactlyOnce(t, s.poster, all, "e1")
	exactlyOnce(t, s.poster, all, "e2")
	for conn, ids := range eventIDs(t, s.poster) {
		if strings.Join(ids, ",") != "e1,e2" {
			t.Fatalf("%s received %v: e2 overtook e1's chunks", conn, ids)
		}
	}
}

func TestChunkWaitFailsAtTheDeadlineAndTheRetryDoesNotEnqueueAgain(t *testing.T) {
	const margin = 100 * time.Millisecond
	s := newSetup(25)
	s.cfg.ChunkSize = 100
	s.cfg.Margin = margin
	all := subs(500, "c")
	s.reg.add("t", all...)
	e := s.engine(t)
	batch := []fanout.Record{record("e1", "1", "t")}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	outs, st := e.Deliver(ctx, batch) // nobody consumes the chunks
	if outs[0].Status != fanout.Failed || outs[0].Reason != fanout.ReasonWaiting || st.Chunks != 4 || st.Delivered != 100 {
		t.Fatalf("outcome %+v stats %+v", outs[0], st)
	}
	sent := s.queue.sent.Load()
	// Lambda retries the record: it waits again (the consumers now run) and enqueues nothing.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(50 * time.Millisecond)
		drain(t, e, s.queue, 5*time.Second)
	})
	outs, st = e.Deliver(ctx, batch)
	wg.Wait()
	if outs[0].Status != fanout.Done || s.queue.sent.Load() != sent || st.Delivered != 0 {
		t.Fatalf("retry: %+v stats %+v, %d more messages", outs[0], st, s.queue.sent.Load()-sent)
	}
	exactlyOnce(t, s.poster, all, "e1")
	// A chunk delivered twice (SQS at least once) posts nothing the second time.
	c := fanout.Continuation{Event: event("e1", "1", "t"), Part: "2"}
	before := len(s.poster.all())
	if out, st := e.Continue(context.Background(), c); out.Status != fanout.Done || st.Skipped != 1 || len(s.poster.all()) != before {
		t.Fatalf("repeated chunk: %+v %+v", out, st)
	}
}

func TestContinuationOfListedSubscriptions(t *testing.T) {
	s := newSetup(10)
	all := subs(20, "c")
	s.reg.add("t", all...)
	e := s.engine(t)
	c := fanout.Continuation{Event: event("e1", "9", "t"), Part: "1/2", Keys: []fanout.SubKey{
		{ConnectionID: "c00003", ID: "1"}, {ConnectionID: "c00011", ID: "1"}, {ConnectionID: "nobody", ID: "1"}}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := fanout.ParseContinuation(b)
	if err != nil || fmt.Sprint(back) != fmt.Sprint(c) {
		t.Fatalf("round trip %s: %+v, %v", b, back, err)
	}
	out, st := e.Continue(context.Background(), back)
	if out.Status != fanout.Done || st.Delivered != 2 {
		t.Fatalf("%+v %+v", out, st)
	}
	if got := fmt.Sprint(eventIDs(t, s.poster)); got != "map[c00003:[e1] c00011:[e1]]" {
		t.Fatalf("posts %s", got)
	}
	// Its done marker is what the waiting record reads.
	if p := s.reg.progress[c.Key()]; !p.Done {
		t.Fatalf("no done marker: %+v", p)
	}
}

func TestAListContinuationCutByTheDeadlineIsCarriedWhole(t *testing.T) {
	s := newSetup(10)
	s.cfg.Margin = 200 * time.Millisecond
	all := subs(20, "c")
	s.reg.add("t", all...)
	s.reg.getDelay = time.Second
	e := s.engine(t)
	keys := []fanout.SubKey{{ConnectionID: "c00001", ID: "1"}, {ConnectionID: "c00002", ID: "1"}}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	out, _ := e.Continue(ctx, fanout.Continuation{Event: event("e1", "1", "t"), Part: "4", Keys: keys})
	if out.Status != fanout.Carried {
		t.Fatalf("%+v", out)
	}
	msgs := s.queue.take()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	c, err := fanout.ParseContinuation(msgs[0])
	if err != nil || c.Part != "4/1" || fmt.Sprint(c.Keys) != fmt.Sprint(keys) || c.After != "" || c.Until != "" {
		t.Fatalf("carried %+v, %v", c, err)
	}
	s.reg.mu.Lock()
	s.reg.getDelay = 0
	s.reg.mu.Unlock()
	if out, _ := e.Continue(context.Background(), c); out.Status != fanout.Done {
		t.Fatalf("%+v", out)
	}
	exactlyOnce(t, s.poster, all[1:3], "e1")
	if len(s.poster.all()) != 2 {
		t.Fatalf("%d posts", len(s.poster.all()))
	}
}

func TestParseContinuationRefusesWhatTheEngineNeverMakes(t *testing.T) {
	valid := `{"v":1,"event":{"id":"e","field":"f","topic":"t","payload":{}},"part":"1"}`
	if _, err := fanout.ParseContinuation([]byte(valid)); err != nil {
		t.Fatalf("valid: %v", err)
	}
	keys := make([]string, fanout.MaxKeys+1)
	for i := range keys {
		keys[i] = fmt.Sprintf(`["c%d","1"]`, i)
	}
	for _, bad := range []string{
		`{}`, `[]`, `{"v":2,"event":{"id":"e","topic":"t"},"part":"1"}`,
		`{"v":1,"event":{"topic":"t"},"part":"1"}`,
		`{"v":1,"event":{"id":"e"},"part":"1"}`,
		`{"v":1,"event":{"id":"e","topic":"t"},"part":"0"}`,
		`{"v":1,"event":{"id":"e","topic":"t"},"part":"1//2"}`,
		`{"v":1,"event":{"id":"e","topic":"t"},"part":"01"}`,
		`{"v":1,"event":{"id":"e","topic":"t"},"part":"1/1/1/1/1/1/1"}`,
		`{"v":1,"event":{"id":"e","topic":"t"},"part":"1","after":"x","keys":[["c","1"]]}`,
		`{"v":1,"event":{"id":"e","topic":"t"},"part":"1","keys":[["","1"]]}`,
		`{"v":1,"event":{"id":"e","topic":"t"},"part":"1","keys":[` + strings.Join(keys, ",") + `]}`,
		`{"v":1,"event":{"id":"e","topic":"t","payload":` + strings.Repeat(" ", fanout.MaxContinuationBytes) + `{}},"part":"1"}`,
	} {
		if _, err := fanout.ParseContinuation([]byte(bad)); !errors.Is(err, fanout.ErrInvalidContinuation) {
			t.Errorf("ParseContinuation(%.80s) = %v, want ErrInvalidContinuation", bad, err)
		}
	}
	// The bound holds for what the engine makes: MaxKeys of the longest ids fit a message.
	c := fanout.Continuation{Event: event("e", "1", strings.Repeat("t", 1024)), Part: "1/1/1/1/1/1"}
	for i := range fanout.MaxKeys {
		c.Keys = append(c.Keys, fanout.SubKey{ConnectionID: fmt.Sprintf("%020d=", i), ID: strings.Repeat("o", 128)})
	}
	if b, _ := json.Marshal(c); len(b) > fanout.MaxContinuationBytes {
		t.Fatalf("%d keys encode to %d bytes, over the bound", fanout.MaxKeys, len(b))
	}
}

func TestFilterAndExpiredPrincipals(t *testing.T) {
	s := newSetup(10)
	all := subs(40, "c")
	for i := range all {
		if i%4 == 0 {
			all[i].Principal = json.RawMessage(`{"exp":1}`)
		}
	}
	// Two subscriptions on one expired connection: closed once.
	all = append(all, store.Subscription{ConnectionID: "c00000", ID: "2", Subprotocol: gqlws.TransportWS, Query: "other", Principal: json.RawMessage(`{"exp":1}`)})
	s.reg.add("t", all...)
	var matched, tests atomic.Int64
	s.cfg.Match = func(_ context.Context, ev *fanout.Event) func(*store.Subscription) bool {
		tests.Add(1) // once per event
		return func(sub *store.Subscription) bool {
			matched.Add(1)
			var i int
			fmt.Sscanf(sub.ConnectionID[1:], "%d", &i)
			return i%2 == 0 && ev.Topic == "t"
		}
	}
	s.cfg.Expired = func(sub *store.Subscription, now time.Time) bool {
		return string(sub.Principal) == `{"exp":1}` && !now.IsZero()
	}
	var closed []string
	var mu sync.Mutex
	s.cfg.CloseExpired = func(ctx context.Context, conn string) error {
		mu.Lock()
		closed = append(closed, conn)
		mu.Unlock()
		return nil
	}
	e := s.engine(t)
	outs, st := e.Deliver(context.Background(), []fanout.Record{record("e1", "1", "t")})
	if outs[0].Status != fanout.Done {
		t.Fatalf("%+v", outs[0])
	}
	// 41 subscriptions: 11 expired (10 connections); of the 30 left, the 10 even ones match.
	if st.Expired != 11 || st.Filtered != 20 || st.Delivered != 10 || matched.Load() != 30 || len(closed) != 10 {
		t.Fatalf("stats %+v, %d matched, closed %v", st, matched.Load(), closed)
	}
	if tests.Load() != 1 {
		t.Fatalf("Match called %d times for one event, want once", tests.Load())
	}
	if s.rend.calls[`subscription { changed { id } }|||`] != 1 || len(s.rend.calls) != 1 {
		t.Fatalf("renders %v: an expired principal's operation was rendered", s.rend.calls)
	}
	for conn := range s.poster.byConn() {
		var i int
		fmt.Sscanf(conn[1:], "%d", &i)
		if i%2 != 0 || i%4 == 0 {
			t.Fatalf("%s received a frame", conn)
		}
	}
}

func TestRegistryOutageFailsTheBatch(t *testing.T) {
	s := newSetup(10)
	s.reg.add("t", subs(3, "c")...)
	s.reg.failProgress = errors.New("dynamodb: 500")
	e := s.engine(t)
	outs, _ := e.Deliver(context.Background(), []fanout.Record{record("e1", "1", "t"), record("e2", "2", "u")})
	for _, o := range outs {
		if o.Status != fanout.Failed || o.Reason != fanout.ReasonRegistry {
			t.Fatalf("%+v", outs)
		}
	}
	if len(s.poster.all()) != 0 {
		t.Fatal("posted without knowing what was done")
	}
}

func TestEMF(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := fanout.Stats{Start: start, Duration: 1500 * time.Microsecond, Records: 3, Delivered: 10000, Gone: 2, Failed: 1,
		Throttled: 4, Renders: 2, Carried: 1, OldestAge: 2 * time.Second}
	line := fanout.EMF("lambdaws", map[string]string{"Stage": "prod", "Function": "bootstrap"}, st)
	if strings.Contains(string(line), "\n") {
		t.Fatalf("EMF line has a newline: %s", line)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(line, &doc); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	var aws struct {
		Timestamp         *int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	}
	if err := json.Unmarshal(doc["_aws"], &aws); err != nil || aws.Timestamp == nil || *aws.Timestamp != start.UnixMilli() {
		t.Fatalf("_aws %s: %v", doc["_aws"], err)
	}
	if len(aws.CloudWatchMetrics) != 1 {
		t.Fatalf("directives %+v", aws.CloudWatchMetrics)
	}
	d := aws.CloudWatchMetrics[0]
	if d.Namespace != "lambdaws" || fmt.Sprint(d.Dimensions) != "[[Function Stage]]" || len(d.Metrics) > 100 {
		t.Fatalf("directive %+v", d)
	}
	for _, dim := range d.Dimensions[0] {
		var v string
		if json.Unmarshal(doc[dim], &v) != nil || v == "" {
			t.Fatalf("dimension %s has no string value in %s", dim, line)
		}
	}
	values := map[string]float64{}
	for _, m := range d.Metrics {
		var v float64
		if err := json.Unmarshal(doc[m.Name], &v); err != nil {
			t.Fatalf("metric %s has no number at the root: %s", m.Name, line)
		}
		if m.Unit != "Count" && m.Unit != "Milliseconds" {
			t.Fatalf("unit %q", m.Unit)
		}
		values[m.Name] = v
	}
	want := map[string]float64{"Records": 3, "Deliveries": 10000, "Gone": 2, "Failed": 1, "Throttled": 4, "Renders": 2,
		"Carried": 1, "Duration": 1.5, "OldestAge": 2000, "Filtered": 0, "Expired": 0}
	for k, v := range want {
		if got, ok := values[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	// No dimensions: an empty dimension set, as the specification allows.
	var bare struct {
		AWS struct {
			CloudWatchMetrics []struct{ Dimensions [][]string }
		} `json:"_aws"`
	}
	if err := json.Unmarshal(fanout.EMF("ns", nil, st), &bare); err != nil || fmt.Sprint(bare.AWS.CloudWatchMetrics[0].Dimensions) != "[[]]" {
		t.Fatalf("%+v %v", bare, err)
	}
}

// A poster or registry that ignores its context cannot hold the answer past D−M/2.
func TestDependenciesThatIgnoreTheirContext(t *testing.T) {
	const budget, margin = 1000 * time.Millisecond, 400 * time.Millisecond
	t.Run("poster", func(t *testing.T) {
		s := newSetup(50)
		s.cfg.Margin = margin
		all := subs(200, "c")
		s.reg.add("t", all...)
		s.poster.behave = func(conn string, _ []byte) (time.Duration, error) {
			if conn >= "c00100" {
				return 2 * time.Second, nil
			}
			return 0, nil
		}
		s.poster.stubborn = func(string) bool { return true }
		e := s.engine(t)
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		dl, _ := ctx.Deadline()
		outs, st := e.Deliver(ctx, []fanout.Record{record("e1", "1", "t")})
		checkTimes(t, s.poster, dl, margin, time.Now())
		if outs[0].Status != fanout.Carried || st.Delivered != 100 {
			t.Fatalf("%+v %+v", outs[0], st)
		}
		// The posts in flight when the engine gave up on them are carried: they may arrive
		// twice, never not at all.
		time.Sleep(2 * time.Second)
		s.poster.setBehave(nil)
		drain(t, e, s.queue, 5*time.Second)
		exactlyOnce(t, s.poster, all[:100], "e1")
		got := eventIDs(t, s.poster)
		for _, sub := range all[100:] {
			if n := len(got[sub.ConnectionID]); n < 1 || n > 2 {
				t.Fatalf("%s received e1 %d times", sub.ConnectionID, n)
			}
		}
	})
	t.Run("registry", func(t *testing.T) {
		s := newSetup(50)
		s.cfg.Margin = margin
		s.reg.add("t", subs(200, "c")...)
		s.reg.stuckPage = func(topic string, page int) time.Duration {
			if page == 2 {
				return 2 * time.Second
			}
			return 0
		}
		e := s.engine(t)
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		dl, _ := ctx.Deadline()
		outs, _ := e.Deliver(ctx, []fanout.Record{record("e1", "1", "t"), record("e2", "2", "u")})
		checkTimes(t, s.poster, dl, margin, time.Now())
		if outs[0].Status != fanout.Failed || outs[0].Reason != fanout.ReasonDeadline || outs[1].Status != fanout.Done {
			t.Fatalf("%+v", outs)
		}
	})
}

// A registry that stops answering in the middle of a topic (its client honours the context, as
// the SDK's does): the read is cut at D−M and the rest carried, and the done marker that would
// record the carrying cannot be saved either. The record fails with the registry as its reason,
// by D−M/2: the work after the hard deadline ends early enough for the outcome to be known
// before the engine answers, instead of racing it (which answered "still running at D−M/2").
func TestARegistryThatStopsAnsweringMidwayFailsTheRecordWithItsReason(t *testing.T) {
	const budget, margin = 1500 * time.Millisecond, 500 * time.Millisecond
	s := newSetup(50)
	s.cfg.Margin = margin
	s.cfg.ChunkSize = -1
	s.reg.add("t", subs(300, "c")...)
	var n atomic.Int64
	s.poster.behave = func(string, []byte) (time.Duration, error) {
		if n.Add(1) == 100 {
			s.reg.hang.Store(true)
		}
		return 0, nil
	}
	e := s.engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	dl, _ := ctx.Deadline()
	outs, _ := e.Deliver(ctx, []fanout.Record{record("e1", "1", "t")})
	checkTimes(t, s.poster, dl, margin, time.Now())
	if o := outs[0]; o.Status != fanout.Failed || o.Reason != fanout.ReasonRegistry || !strings.Contains(o.Err.Error(), "could not record") {
		t.Fatalf("outcome %+v (%v), want failed(registry): carried but not recorded", o, o.Err)
	}
	if len(s.queue.msgs) == 0 {
		t.Fatal("nothing carried")
	}
}

// Continuations that run out of time carry again; the record's retry waits for the whole tree.
func TestContinuationsCarryAgainAndTheRecordWaitsForAllOfThem(t *testing.T) {
	s := newSetup(20)
	s.cfg.Margin = 100 * time.Millisecond
	s.cfg.ChunkSize = -1
	s.cfg.Concurrency = 8
	all := subs(400, "c")
	s.reg.add("t", all...)
	s.poster.behave = func(string, []byte) (time.Duration, error) { return 10 * time.Millisecond, nil }
	e := s.engine(t)
	batch := []fanout.Record{record("e1", "1", "t")}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if outs, _ := e.Deliver(ctx, batch); outs[0].Status != fanout.Carried {
		t.Fatalf("%+v", outs[0])
	}
	// Each consumer gets 300 ms: about 160 posts, so the rest is carried on, several levels deep.
	var deepest string
	for range 20 {
		msgs := s.queue.take()
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			c, err := fanout.ParseContinuation(m)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Part) > len(deepest) {
				deepest = c.Part
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			out, _ := e.Continue(ctx, c)
			cancel()
			if out.Status == fanout.Failed {
				t.Fatalf("continuation %s: %+v", c.Part, out)
			}
		}
	}
	if !strings.Contains(deepest, "/") {
		t.Fatalf("deepest part %q: nothing was carried twice", deepest)
	}
	exactlyOnce(t, s.poster, all, "e1")
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	before := len(s.poster.all())
	if outs, _ := e.Deliver(ctx, batch); outs[0].Status != fanout.Done || len(s.poster.all()) != before {
		t.Fatalf("retry %+v, %d posts", outs[0], len(s.poster.all())-before)
	}
}

func TestAPartWhoseDoneMarkerIsNotSavedFails(t *testing.T) {
	s := newSetup(10)
	s.reg.add("t", subs(5, "c")...)
	s.reg.failSave = errors.New("dynamodb: throttled")
	e := s.engine(t)
	c := fanout.Continuation{Event: event("e1", "1", "t"), Part: "1"}
	out, _ := e.Continue(context.Background(), c)
	if out.Status != fanout.Failed || out.Reason != fanout.ReasonRegistry {
		t.Fatalf("%+v: the waiting record could never see this part done", out)
	}
	s.reg.failSave = nil
	if out, _ := e.Continue(context.Background(), c); out.Status != fanout.Done || !s.reg.progress[c.Key()].Done {
		t.Fatalf("%+v", out)
	}
}

// TestMarkAllSkipsARecordDeliveredAgain: with MarkAll, a batch delivered whole a second time (a
// Lambda retry after a timeout, a duplicate) reaches nobody twice, for a single-page topic too;
// without it, the single-page event is delivered again (extensions.event tells the client).
func TestMarkAllSkipsARecordDeliveredAgain(t *testing.T) {
	for _, markAll := range []bool{false, true} {
		t.Run(fmt.Sprint("MarkAll=", markAll), func(t *testing.T) {
			s := newSetup(10)
			s.cfg.MarkAll = markAll
			s.reg.add("small", subs(3, "a")...)
			s.reg.add("big", subs(25, "b")...)
			e := s.engine(t)
			batch := []fanout.Record{record("e1", "1", "small"), record("e2", "2", "big")}
			for range 2 {
				outs, _ := e.Deliver(context.Background(), batch)
				for i, o := range outs {
					if o.Status != fanout.Done {
						t.Fatalf("record %d: %+v", i, o)
					}
				}
			}
			byConn := s.poster.byConn()
			want := 1
			if !markAll {
				want = 2 // the single-page event has no marker; the multi-page one has
			}
			if n := len(byConn["a00000"]); n != want {
				t.Fatalf("a subscriber of the single-page topic got %d frames, want %d", n, want)
			}
			if n := len(byConn["b00000"]); n != 1 {
				t.Fatalf("a subscriber of the multi-page topic got %d frames, want 1", n)
			}
		})
	}
}

// TestNextPageReadWhilePosting: a topic's next page is read while the workers post the page
// before it, one page ahead and no more: with every post held and fewer workers than a page
// (dispatching the first page waits for its posts), the second page is read all the same, and
// the third is not; once the posts go on, everyone is delivered once.
func TestNextPageReadWhilePosting(t *testing.T) {
	s := newSetup(10)
	s.cfg.Concurrency = 2
	all := subs(30, "c")
	s.reg.add("t", all...)
	release := make(chan struct{})
	s.poster.behave = func(string, []byte) (time.Duration, error) {
		<-release
		return 0, nil
	}
	e := s.engine(t)
	done := make(chan fanout.Outcome, 1)
	go func() {
		outs, _ := e.Deliver(context.Background(), []fanout.Record{record("e1", "1", "t")})
		done <- outs[0]
	}()
	for deadline := time.Now().Add(10 * time.Second); s.reg.pageReads.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	read := s.reg.pageReads.Load()
	time.Sleep(50 * time.Millisecond) // room for a read too many to show
	more := s.reg.pageReads.Load()
	close(release)
	if out := <-done; out.Status != fanout.Done {
		t.Fatalf("%+v", out)
	}
	if read < 2 || more > 2 {
		t.Fatalf("with the first page's posts held, %d then %d pages were read, want 2: the next one and no more", read, more)
	}
	exactlyOnce(t, s.poster, all, "e1")
}

// lateErr is a post error whose poster stopped retrying because of the deadline, before it (as
// internal/mgmt's does when its next backoff would end past it).
type lateErr struct{ err error }

func (e lateErr) Error() string              { return e.err.Error() }
func (e lateErr) Unwrap() error              { return e.err }
func (lateErr) RetriesEndedByDeadline() bool { return true }

// TestPostEndedByTheDeadlineIsCarried: a post whose retries the poster ended for the deadline is
// carried, even when it returns before the engine's clock reaches D−M: counted as failed it
// would be lost (neither delivered, carried nor reported). A post that failed for good is not.
func TestPostEndedByTheDeadlineIsCarried(t *testing.T) {
	s := newSetup(10)
	all := subs(20, "c")
	s.reg.add("t", all...)
	s.poster.behave = func(conn string, _ []byte) (time.Duration, error) {
		switch conn {
		case all[3].ConnectionID:
			return 0, lateErr{fmt.Errorf("%w after 11 attempts; deadline margin reached", errThrottled)}
		case all[4].ConnectionID:
			return 0, fmt.Errorf("%w after 11 attempts", errThrottled) // failed for good
		}
		return 0, nil
	}
	e := s.engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	outs, st := e.Deliver(ctx, []fanout.Record{record("e1", "1", "t")})
	if outs[0].Status != fanout.Carried {
		t.Fatalf("outcome %+v, stats %+v: want carried", outs[0], st)
	}
	var keys []string
	for _, m := range s.queue.take() {
		c, err := fanout.ParseContinuation(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range c.Keys {
			keys = append(keys, k.ConnectionID)
		}
	}
	if len(keys) != 1 || keys[0] != all[3].ConnectionID {
		t.Fatalf("carried %v, want %s alone", keys, all[3].ConnectionID)
	}
}
