package app_test

// BenchmarkLocalLineRate measures the local runtime at a sustained line rate: the runtime (`dev`,
// app.StartDev over a fresh embedded store, logging at info as `dev` does) in a child process
// pinned to one core (GOMAXPROCS=1 and, where available, `taskset -c 0`), 1,000
// graphql-transport-ws subscribers on real sockets spread over 10 rooms of 100, and sendMessage
// mutations over HTTP, each room's in order (one in flight per room), at a rate that gives every
// subscriber `rate` messages a second. The driver (this process: the clients and the load) is
// moved to the other core (`taskset -a -p -c 1`) when the machine has two.
//
// Beside it, in the same run, with the same clients, load and pinning: a raw push server in the
// same kind of child (coder/websocket, the same frames' shape, one writer per socket, no store,
// no handler): what one core pays only to take the mutations over HTTP and write the frames,
// the floor the runtime stands on.
//
//	go test -run '^$' -bench BenchmarkLocalLineRate -benchtime 1x -count 3 -timeout 30m ./internal/app/
//
// Each run: connect and subscribe every client, wait until every client has received a message of
// its room (so every subscription is stored), then send at the rate for lineRateWarm, measure for
// lineRateWindow, stop sending and wait until every client has everything it should, or nothing
// has arrived for lineRateDrain. Reported:
//   - deliveries/s: messages received by the clients during the window, per second;
//   - p50-ms, p99-ms, max-ms: from the start of a mutation's POST to a client's receipt, over every
//     delivery of the mutations sent in the window;
//   - lost: mutations that succeeded times their room's subscribers, minus the distinct messages
//     received, after the drain; dups; out-of-order: messages received after a later message of
//     the same room, per client;
//   - drain-s: from the end of sending until every client had everything (how far behind the
//     runtime was);
//   - mut-err: mutations that failed; mut-p99-ms: the POSTs' answer time;
//   - cpu-%: the child's user+system time over the window, in % of one core; cpu-µs/delivery;
//     peak-rss-MB: the child's VmHWM over its life, connections included;
//   - runq-wait-%: the time the child's threads were runnable but waiting for a CPU, in % of the
//     window: what the machine's other load took from it;
//   - x-push-cpu: cpu-µs/delivery over the push baseline's of the run at the same rate.
//
// LINERATE_CPUPROFILE=path writes the runtime child's CPU profile over the window (of the dev
// runs, suffixed with the rate); LINERATE_RATES=1,10,20 picks the rates (default 1 and 10);
// LINERATE_WINDOW=20s the window; LINERATE_DEBUG=1 has the children print where their
// /debug/pprof/ is served.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // the children's /debug/pprof/, on their stats port
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/logging"
	"github.com/rs/zerolog"
)

const (
	lineRateRooms   = 10
	lineRatePerRoom = 100
	lineRateWarm    = 3 * time.Second
	lineRateWindow  = 15 * time.Second
	lineRateDrain   = 10 * time.Second
	// lineRateDrainMax bounds the drain of a runtime that is still catching up.
	lineRateDrainMax = 3 * time.Minute
)

// lineRateChild is what a line-rate child prints on its first line.
type lineRateChild struct {
	Addr  string // the WebSocket and HTTP API's host:port
	Stats string // the stats endpoint's base URL
}

// serveChildStats serves /stats (childStats) and /profile?start=path|stop=1 on a port of its own,
// and returns its base URL.
func serveChildStats() string {
	var pmu sync.Mutex
	var prof *os.File
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(selfStats()) })
	mux.HandleFunc("POST /profile", func(w http.ResponseWriter, r *http.Request) {
		pmu.Lock()
		defer pmu.Unlock()
		if path := r.URL.Query().Get("start"); path != "" && prof == nil {
			f, err := os.Create(path)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			prof = f
		}
		if r.URL.Query().Get("stop") != "" && prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
			prof = nil
		}
	})
	mux.Handle("/debug/pprof/", http.DefaultServeMux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "stats:", err)
		os.Exit(1)
	}
	go http.Serve(ln, mux)
	if os.Getenv("LINERATE_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "%s child: pprof at http://%s/debug/pprof/\n", os.Getenv(benchChildEnv), ln.Addr())
	}
	return "http://" + ln.Addr().String()
}

// runDevChild runs the local runtime as `dev` does (app.StartDev, a fresh embedded store in
// BENCH_DATA, console logs at info, here to the file BENCH_LOG) until stdin closes.
func runDevChild() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "dev child:", err)
		os.Exit(1)
	}
	lf, err := os.Create(os.Getenv("BENCH_LOG"))
	if err != nil {
		fail(err)
	}
	defer lf.Close()
	log := logging.New(lf, logging.Options{Format: logging.Console, Level: zerolog.InfoLevel})
	ctx, cancel := context.WithCancel(context.Background())
	d, err := app.StartDev(ctx, app.Config{}, app.DevConfig{Host: "127.0.0.1", Data: os.Getenv("BENCH_DATA")}, log)
	if err != nil {
		fail(err)
	}
	line, _ := json.Marshal(lineRateChild{Addr: d.Addr, Stats: serveChildStats()})
	fmt.Printf("%s\n", line)
	io.Copy(io.Discard, os.Stdin)
	cancel()
	if err := d.Wait(); err != nil {
		fail(err)
	}
}

// The push baseline: a WebSocket server speaking just enough graphql-transport-ws
// (connection_init, subscribe to messageAdded of a room) and taking sendMessage over HTTP, which
// it frames as the runtime does and queues to each socket of the room, written by one writer per
// socket.
var (
	pushRoomRe = regexp.MustCompile(`roomId: "([^"]+)"`)
	pushQueue  = 1024 // a socket's queue, as the runtime's outbound queue
)

type pushConn struct {
	c   *websocket.Conn
	out chan []byte
}

// runPushChild runs the push baseline until stdin closes.
func runPushChild() {
	var mu sync.Mutex
	rooms := map[string][]*pushConn{}
	var ids atomic.Int64
	var overflow atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/graphql", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			var req struct {
				Variables struct{ R, T string }
			}
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			id := ids.Add(1)
			text, _ := json.Marshal(req.Variables.T)
			frame := fmt.Appendf(nil, `{"id":"s","type":"next","payload":{"data":{"messageAdded":{"id":"%d","text":%s}}}}`, id, text)
			mu.Lock()
			for _, pc := range rooms[req.Variables.R] {
				select {
				case pc.out <- frame:
				default:
					overflow.Add(1)
				}
			}
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"data":{"sendMessage":{"id":"%d"}}}`, id)
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"graphql-transport-ws"}, CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		pc := &pushConn{c: c, out: make(chan []byte, pushQueue)}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case f := <-pc.out:
					wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
					err := c.Write(wctx, websocket.MessageText, f)
					wcancel()
					if err != nil {
						return
					}
				}
			}
		}()
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			var m struct {
				Type    string
				Payload struct{ Query string }
			}
			json.Unmarshal(data, &m)
			switch m.Type {
			case "connection_init":
				pc.out <- []byte(`{"type":"connection_ack"}`)
			case "subscribe":
				if sm := pushRoomRe.FindStringSubmatch(m.Payload.Query); sm != nil {
					mu.Lock()
					rooms[sm[1]] = append(rooms[sm[1]], pc)
					mu.Unlock()
				}
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "push child:", err)
		os.Exit(1)
	}
	go http.Serve(ln, mux)
	line, _ := json.Marshal(lineRateChild{Addr: ln.Addr().String(), Stats: serveChildStats()})
	fmt.Printf("%s\n", line)
	io.Copy(io.Discard, os.Stdin)
	if n := overflow.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "push child: %d frames dropped (a socket's queue was full)\n", n)
	}
}

// startPinnedChild starts this test binary as a child of the role, with GOMAXPROCS=1, pinned to
// CPU 0 by taskset when the machine has two CPUs and taskset is installed; it returns the child's
// first line and whether it is pinned.
func startPinnedChild(b *testing.B, role string, env ...string) (*exec.Cmd, lineRateChild, bool) {
	b.Helper()
	c := runChild(b, []string{os.Args[0], "-test.run=^$", "-test.bench=^$"},
		append([]string{benchChildEnv + "=" + role, "GOMAXPROCS=1"}, env...), true)
	var info lineRateChild
	if err := json.Unmarshal([]byte(c.line), &info); err != nil {
		b.Fatalf("%s child: %q: %v", role, c.line, err)
	}
	return c.cmd, info, c.pinned
}

// pinDriver moves every thread of this process to CPU 1 (taskset -a -p), when the machine has
// two CPUs and taskset is installed, and returns what restores the affinity it had.
func pinDriver(b *testing.B) func() {
	ts, err := exec.LookPath("taskset")
	if err != nil || runtime.NumCPU() < 2 {
		return func() {}
	}
	pid := strconv.Itoa(os.Getpid())
	out, err := exec.Command(ts, "-p", pid).Output()
	if err != nil {
		b.Logf("taskset -p: %v: the driver is not pinned", err)
		return func() {}
	}
	f := strings.Fields(string(out))
	mask := f[len(f)-1]
	if err := exec.Command(ts, "-a", "-p", "-c", "1", pid).Run(); err != nil {
		b.Logf("taskset -a -p -c 1: %v: the driver is not pinned", err)
		return func() {}
	}
	return func() { exec.Command(ts, "-a", "-p", mask, pid).Run() }
}

// lrClient is one subscriber of the driver.
type lrClient struct {
	room int
	c    *websocket.Conn
	// lat[seq] is the latency of the room's message seq, µs; -1 until received. Written by the
	// reader only (atomically: the drain reads it meanwhile).
	lat             []int32
	last            int // highest seq received
	ooo, dups, errs int
	ready           atomic.Bool // received the room's readiness message
	firstErr        string
}

// lrSent is when each of a room's messages was sent.
type lrRoom struct {
	sentAt []atomic.Int64 // unix ns; zero: not sent
	ok     []atomic.Bool  // the mutation succeeded
	next   int            // the next seq (the room's sender only)
}

// lineRateRun is one run's state and figures.
type lineRateRun struct {
	rate     int
	addr     string
	clients  []*lrClient
	rooms    []*lrRoom
	received atomic.Int64 // messages received by every client
	mutErrs  atomic.Int64
	mutLat   []time.Duration // the window's POSTs' answer times
	mmu      sync.Mutex
	readers  sync.WaitGroup
	hc       *http.Client
}

var lrMsgType = []byte(`"type":"next"`)

// read runs a client's reader: each next message's text is its room's seq.
func (r *lineRateRun) read(cl *lrClient) {
	defer r.readers.Done()
	room := r.rooms[cl.room]
	for {
		_, data, err := cl.c.Read(context.Background())
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		if !bytes.Contains(data, lrMsgType) {
			cl.errs++
			if cl.firstErr == "" {
				cl.firstErr = string(data)
			}
			continue
		}
		var m struct {
			Payload struct {
				Data struct {
					MessageAdded struct{ Text string }
				}
			}
		}
		if err := json.Unmarshal(data, &m); err != nil {
			cl.errs++
			continue
		}
		text := m.Payload.Data.MessageAdded.Text
		if text == "ready" {
			cl.ready.Store(true)
			continue
		}
		seq, err := strconv.Atoi(text)
		if err != nil || seq < 0 || seq >= len(cl.lat) {
			cl.errs++
			continue
		}
		r.received.Add(1)
		if atomic.LoadInt32(&cl.lat[seq]) >= 0 {
			cl.dups++
			continue
		}
		if seq < cl.last {
			cl.ooo++
		}
		cl.last = max(cl.last, seq)
		atomic.StoreInt32(&cl.lat[seq], int32((now-room.sentAt[seq].Load())/1e3))
	}
}

// mutate posts sendMessage to a room with the text; it returns whether it succeeded.
func (r *lineRateRun) mutate(room int, text string) bool {
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($r: ID!, $t: String!) { sendMessage(roomId: $r, author: "lr", text: $t) { id } }`,
		"variables": map[string]string{"r": fmt.Sprintf("lr%d", room), "t": text},
	})
	resp, err := r.hc.Post("http://"+r.addr+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && bytes.Contains(raw, []byte(`"sendMessage":{"id"`)) && !bytes.Contains(raw, []byte(`"errors"`))
}

// connect dials and subscribes every client, and waits until each has received a message of its
// room.
func (r *lineRateRun) connect(b *testing.B, maxSeq int) {
	b.Helper()
	r.rooms = make([]*lrRoom, lineRateRooms)
	for i := range r.rooms {
		r.rooms[i] = &lrRoom{sentAt: make([]atomic.Int64, maxSeq), ok: make([]atomic.Bool, maxSeq)}
	}
	r.clients = make([]*lrClient, lineRateRooms*lineRatePerRoom)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var dialErr atomic.Value
	for i := range r.clients {
		cl := &lrClient{room: i % lineRateRooms, lat: make([]int32, maxSeq), last: -1}
		for j := range cl.lat {
			cl.lat[j] = -1
		}
		r.clients[i] = cl
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, "ws://"+r.addr+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
			if err != nil {
				dialErr.Store(err)
				return
			}
			c.SetReadLimit(1 << 20)
			cl.c = c
			// As a client does: subscribe once the connection is acknowledged.
			if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"connection_init"}`)); err != nil {
				dialErr.Store(err)
				return
			}
			if _, ack, err := c.Read(ctx); err != nil || !bytes.Contains(ack, []byte(`"connection_ack"`)) {
				dialErr.Store(fmt.Errorf("connection_init: %s, %v", ack, err))
				return
			}
			q := fmt.Sprintf(`subscription { messageAdded(roomId: "lr%d") { id text } }`, cl.room)
			if err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"id":"s","type":"subscribe","payload":{"query":%q}}`, q)); err != nil {
				dialErr.Store(err)
				return
			}
			r.readers.Add(1)
			go r.read(cl)
		})
	}
	wg.Wait()
	if err, _ := dialErr.Load().(error); err != nil {
		b.Fatalf("connect: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		notReady := map[int]bool{}
		for _, cl := range r.clients {
			if !cl.ready.Load() {
				notReady[cl.room] = true
			}
		}
		if len(notReady) == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("rooms %v: some subscribers received nothing within 60s", notReady)
		}
		for room := range notReady {
			r.mutate(room, "ready")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// send sends one room's messages at the rate until stop, one in flight: a late answer delays
// the next send, which then goes at once (the schedule is kept, not the spacing).
func (r *lineRateRun) send(room int, start time.Time, stop <-chan struct{}, window func() bool) {
	rm := r.rooms[room]
	interval := time.Second / time.Duration(r.rate)
	// Rooms start staggered over one interval, so the mutations are spread evenly.
	next := start.Add(interval * time.Duration(room) / lineRateRooms)
	for {
		if d := time.Until(next); d > 0 {
			select {
			case <-stop:
				return
			case <-time.After(d):
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		seq := rm.next
		if seq >= len(rm.sentAt) {
			return
		}
		rm.next++
		t0 := time.Now()
		rm.sentAt[seq].Store(t0.UnixNano())
		ok := r.mutate(room, strconv.Itoa(seq))
		rm.ok[seq].Store(ok)
		if !ok {
			r.mutErrs.Add(1)
		}
		if window() {
			r.mmu.Lock()
			r.mutLat = append(r.mutLat, time.Since(t0))
			r.mmu.Unlock()
		}
		next = next.Add(interval)
	}
}

// lineRateFigures are one run's results.
type lineRateFigures struct {
	deliveriesPerSec, cpuPercent, cpuPerDelivery, peakRSSMB, waitPercent float64
	p50, p99, max, mutP99                                                time.Duration
	lost, ooo, dups, errs, mutErrs, expected                             int64
	// drain is from the end of sending to the end of the drain; late is set when the runtime
	// was still delivering at lineRateDrainMax (lost may then count late messages).
	drain time.Duration
	late  bool
}

func (f lineRateFigures) report(b *testing.B) {
	msf := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(f.deliveriesPerSec, "deliveries/s")
	b.ReportMetric(msf(f.p50), "p50-ms")
	b.ReportMetric(msf(f.p99), "p99-ms")
	b.ReportMetric(msf(f.max), "max-ms")
	b.ReportMetric(float64(f.lost), "lost")
	b.ReportMetric(f.drain.Seconds(), "drain-s")
	b.ReportMetric(float64(f.ooo), "out-of-order")
	b.ReportMetric(float64(f.dups), "dups")
	b.ReportMetric(float64(f.mutErrs), "mut-err")
	b.ReportMetric(msf(f.mutP99), "mut-p99-ms")
	b.ReportMetric(f.cpuPercent, "cpu-%")
	b.ReportMetric(f.cpuPerDelivery, "cpu-µs/delivery")
	b.ReportMetric(f.peakRSSMB, "peak-rss-MB")
	b.ReportMetric(f.waitPercent, "runq-wait-%")
}

// lineRate runs one measured run against a child at addr.
func lineRate(b *testing.B, child lineRateChild, rate int, window time.Duration, profile string) lineRateFigures {
	b.Helper()
	maxSeq := rate*int((lineRateWarm+window)/time.Second) + 4*rate + 16
	r := &lineRateRun{rate: rate, addr: child.Addr,
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * lineRateRooms}}}
	r.connect(b, maxSeq)
	defer func() {
		for _, cl := range r.clients {
			cl.c.CloseNow()
		}
		r.readers.Wait()
	}()

	stop := make(chan struct{})
	var inWindow atomic.Bool
	var senders sync.WaitGroup
	start := time.Now()
	for room := range lineRateRooms {
		senders.Go(func() { r.send(room, start, stop, inWindow.Load) })
	}
	time.Sleep(lineRateWarm)

	var s0, s1 childStats
	getJSON(b, http.MethodGet, child.Stats+"/stats", nil, &s0)
	if profile != "" {
		getJSON(b, http.MethodPost, child.Stats+"/profile?start="+profile, nil, nil)
	}
	recv0 := r.received.Load()
	w0 := time.Now()
	inWindow.Store(true)
	seq0 := make([]int, lineRateRooms)
	for i, rm := range r.rooms {
		seq0[i] = firstSentAfter(rm, w0)
	}
	time.Sleep(window)
	inWindow.Store(false)
	w1 := time.Now()
	recv1 := r.received.Load()
	getJSON(b, http.MethodGet, child.Stats+"/stats", nil, &s1)
	if profile != "" {
		getJSON(b, http.MethodPost, child.Stats+"/profile?stop=1", nil, nil)
	}
	seq1 := make([]int, lineRateRooms)
	for i, rm := range r.rooms {
		seq1[i] = firstSentAfter(rm, w1)
	}
	close(stop)
	senders.Wait()

	// The drain: until every client has every message that succeeded, or lineRateDrain.
	var f lineRateFigures
	missing := func() int64 {
		var n int64
		for _, cl := range r.clients {
			rm := r.rooms[cl.room]
			for seq := range rm.next {
				if rm.ok[seq].Load() && atomic.LoadInt32(&cl.lat[seq]) < 0 {
					n++
				}
			}
		}
		return n
	}
	// A runtime behind its load delivers its backlog now: the drain goes on while messages
	// arrive (up to lineRateDrainMax), and ends lineRateDrain after the last one.
	lastRecv, lastAt, drainStart := r.received.Load(), time.Now(), time.Now()
	for missing() > 0 && time.Since(lastAt) < lineRateDrain {
		if time.Since(drainStart) > lineRateDrainMax {
			f.late = true
			break
		}
		time.Sleep(100 * time.Millisecond)
		if n := r.received.Load(); n != lastRecv {
			lastRecv, lastAt = n, time.Now()
		}
	}
	f.drain = time.Since(drainStart)
	time.Sleep(200 * time.Millisecond) // late duplicates or strays
	for _, cl := range r.clients {
		cl.c.CloseNow()
	}
	r.readers.Wait()

	var lats []int32
	for _, cl := range r.clients {
		rm := r.rooms[cl.room]
		for seq := range rm.next {
			if !rm.ok[seq].Load() {
				continue
			}
			f.expected++
			if cl.lat[seq] < 0 {
				f.lost++
			} else if seq >= seq0[cl.room] && seq < seq1[cl.room] {
				lats = append(lats, cl.lat[seq])
			}
		}
		f.ooo += int64(cl.ooo)
		f.dups += int64(cl.dups)
		f.errs += int64(cl.errs)
		if cl.firstErr != "" && f.errs == int64(cl.errs) {
			b.Logf("a client received an unexpected message: %.300s", cl.firstErr)
		}
	}
	slices.Sort(lats)
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return time.Duration(lats[min(len(lats)-1, int(p*float64(len(lats))))]) * time.Microsecond
	}
	f.p50, f.p99, f.max = pct(0.50), pct(0.99), pct(1)
	slices.Sort(r.mutLat)
	if n := len(r.mutLat); n > 0 {
		f.mutP99 = r.mutLat[min(n-1, n*99/100)]
	}
	f.mutErrs = r.mutErrs.Load()
	secs := w1.Sub(w0).Seconds()
	f.deliveriesPerSec = float64(recv1-recv0) / secs
	f.cpuPercent = float64(s1.CPU-s0.CPU) / 1e9 / secs * 100
	f.waitPercent = float64(s1.RunqWait-s0.RunqWait) / 1e9 / secs * 100
	if recv1 > recv0 {
		f.cpuPerDelivery = float64(s1.CPU-s0.CPU) / 1e3 / float64(recv1-recv0)
	}
	var s2 childStats
	getJSON(b, http.MethodGet, child.Stats+"/stats", nil, &s2)
	f.peakRSSMB = float64(s2.HWM) / (1 << 20)
	if f.errs > 0 {
		b.Errorf("%d unexpected messages received", f.errs)
	}
	if f.late {
		b.Logf("still delivering %v after the last mutation: the runtime is far behind, and lost counts what had not arrived yet", lineRateDrainMax)
	}
	b.Logf("rate %d/s per subscriber: %d deliveries expected, %d lost, %d out of order, %d duplicates, %d failed mutations; window %.1fs: %.0f deliveries/s, latency p50 %v p99 %v max %v, cpu %.0f%% (runnable but waiting for the CPU %.0f%%)",
		rate, f.expected, f.lost, f.ooo, f.dups, f.mutErrs, secs, f.deliveriesPerSec, f.p50, f.p99, f.max, f.cpuPercent, f.waitPercent)
	return f
}

// firstSentAfter is the first seq of a room sent at or after t (its next seq if none yet).
func firstSentAfter(rm *lrRoom, t time.Time) int {
	for seq := range rm.sentAt {
		at := rm.sentAt[seq].Load()
		if at == 0 || at >= t.UnixNano() {
			return seq
		}
	}
	return len(rm.sentAt)
}

func BenchmarkLocalLineRate(b *testing.B) {
	rates := []int{1, 10}
	if v := os.Getenv("LINERATE_RATES"); v != "" {
		rates = nil
		for s := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				b.Fatalf("LINERATE_RATES: %q", v)
			}
			rates = append(rates, n)
		}
	}
	window := lineRateWindow
	if v := os.Getenv("LINERATE_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("LINERATE_WINDOW: %v", err)
		}
		window = d
	}
	restore := pinDriver(b)
	defer restore()
	dir := b.TempDir()
	pushCPU := map[int]float64{}
	for _, rate := range rates {
		b.Run(fmt.Sprintf("rate=%d/push-baseline", rate), func(b *testing.B) {
			var f lineRateFigures
			for b.Loop() {
				_, child, _ := startPinnedChild(b, "push")
				f = lineRate(b, child, rate, window, "")
			}
			f.report(b)
			pushCPU[rate] = f.cpuPerDelivery
		})
		b.Run(fmt.Sprintf("rate=%d/dev", rate), func(b *testing.B) {
			var f lineRateFigures
			for b.Loop() {
				data, err := os.MkdirTemp(dir, "data")
				if err != nil {
					b.Fatal(err)
				}
				_, child, pinned := startPinnedChild(b, "dev", "BENCH_DATA="+data, "BENCH_LOG="+filepath.Join(data, "dev.log"))
				if !pinned {
					b.Log("taskset is missing or the machine has one CPU: the runtime is not pinned (GOMAXPROCS=1 still)")
				}
				profile := os.Getenv("LINERATE_CPUPROFILE")
				if profile != "" {
					profile, _ = filepath.Abs(fmt.Sprintf("%s.rate%d", profile, rate))
				}
				f = lineRate(b, child, rate, window, profile)
			}
			f.report(b)
			if p := pushCPU[rate]; p > 0 {
				b.ReportMetric(f.cpuPerDelivery/p, "x-push-cpu")
			}
		})
	}
}
