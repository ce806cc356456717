package faults

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/mgmttest"
)

// BenchmarkChunkedFanout (issue 7, "Beyond"): one change to a room of 100,000 subscribers, every
// post taking 10 ms at the management endpoint, the built bootstrap under the runtime interface
// emulator on dynalite. First one invocation delivers all of it (chunking off, CHUNK_SIZE=-1,
// with a 300 s timeout instead of Lambda's 29 s, since 100,000 posts of 10 ms cannot fit in 29
// s); then the production configuration: the stream invocation (29 s) delivers the first 2,000
// and hands the rest to the chunk queue in chunks of 2,000, consumed by N emulator instances at
// once (N = 1, 4, 10: the event source mapping's maximum concurrency), batches of 4; a stream
// invocation that answers while the chunks are still under way reports the record (waiting),
// and is invoked again at once, as Lambda retries it, until it answers done. Every run has its
// own endpoint, queue and functions (warm), and a fresh record; the subscriptions are seeded
// once.
//
//	go test -run '^$' -bench BenchmarkChunkedFanout -benchtime 1x -count 1 -timeout 30m ./e2e/faults/
//
// Per run: wall-s (from the first invocation to the record answered done), delivered-s (to the
// last delivery answered), deliveries/s (subscribers over delivered-s); lost and duplicates,
// counted at the endpoint per subscriber (both must be 0: the run fails otherwise, saying how
// many duplicates a post's retry made, after an attempt the endpoint answered but the caller had
// stopped waiting for, and how many a subscriber posted again made); cut (posts whose caller gave
// up before the endpoint answered: counted as not delivered, although API Gateway may have
// delivered them), retried (requests that were not a post's first attempt); stream-invocations
// (Lambda's retries of a record still waiting for its chunks included); chunks (the
// continuations the stream invocation sent), handed-on (continuations a chunk invocation sent at
// its deadline for what it could not deliver), redeliveries (queue messages received again after
// a reported failure). CPU, from /proc, during the run: cpu-s (this process, which serves the
// endpoint and the queue, every function's emulator and bootstrap, and dynalite), fn-cpu-s (the
// functions' alone), cpu-µs/delivery (cpu-s per subscriber), and machine-busy (the share of all
// the machine's cores that was busy, whoever used it: other work on a shared machine shows
// there).
//
// LAMBDAWS_CHUNKED_SUBSCRIBERS changes the size (default 100,000), LAMBDAWS_CHUNKED_CONCURRENCY
// each invocation's DELIVERY_CONCURRENCY (default 128).
func BenchmarkChunkedFanout(b *testing.B) {
	n := 100_000
	if v := os.Getenv("LAMBDAWS_CHUNKED_SUBSCRIBERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("LAMBDAWS_CHUNKED_SUBSCRIBERS=%q: want a positive number", v)
		}
	}
	w := newWorld(b, worldOptions{})
	start := time.Now()
	live := w.seed("big", n)
	b.Logf("seeded %d subscriptions in %v", n, time.Since(start).Round(time.Millisecond))

	for _, v := range []struct {
		name      string
		consumers int
	}{{"one-invocation", 0}, {"chunked/consumers=1", 1}, {"chunked/consumers=4", 4}, {"chunked/consumers=10", 10}} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				measureChunked(b, w, live, v.consumers)
			}
		})
	}
}

// measureChunked runs one fan-out of a fresh record to the room and reports its figures. The
// world is the benchmark's: this run's endpoint, queue and functions replace the previous run's,
// and belong to b (its cleanup ends them).
func measureChunked(b *testing.B, w *world, live []string, consumers int) {
	b.StopTimer()
	w.mu.Lock()
	w.t, w.functions, w.outputOnFailureOnce = b, nil, sync.Once{}
	w.mu.Unlock()
	w.gw = mgmttest.New()
	var lastPost atomic.Int64
	w.gw.Inject(func(c mgmttest.Call) mgmttest.Fault {
		if c.Op == mgmttest.Post {
			lastPost.Store(time.Now().UnixNano())
			return mgmttest.Fault{Delay: 10 * time.Millisecond}
		}
		return mgmttest.Fault{}
	})
	var pl postLog
	srv := httptest.NewServer(pl.wrap(w.gw))
	b.Cleanup(srv.Close)
	w.mgmtURL = srv.URL + "/prod"
	w.env, w.timeout, w.queue = nil, functionTimeout, nil
	if c := os.Getenv("LAMBDAWS_CHUNKED_CONCURRENCY"); c != "" {
		w.env = append(w.env, "DELIVERY_CONCURRENCY="+c)
	}
	if consumers == 0 {
		w.env, w.timeout = append(w.env, "CHUNK_SIZE=-1"), 300*time.Second
	} else {
		w.queue = newChunkQueue(b, w, consumers)
		w.queue.startConsumers()
		w.queue.open()
	}
	f := w.start(fmt.Sprintf("stream-%d", consumers))
	rec := newRecord(b, w, "big")

	w.mu.Lock()
	fns := w.functions
	w.mu.Unlock()
	cpu0 := sampleCPU(b, fns)
	b.StartTimer()
	start := time.Now()
	invocations := 0
	for {
		invocations++
		inv := f.invoke(b, batchOf(rec))
		if inv.took >= w.timeout {
			b.Fatalf("invocation %d answered after %v", invocations, inv.took)
		}
		reps := reported(b, inv)
		why := reasons(b, inv, reps)
		if len(reps) == 0 {
			break
		}
		if !strings.HasPrefix(why[rec.Seq()], "failed/waiting") {
			b.Fatalf("invocation %d reported the record for another reason than waiting for its chunks: %v", invocations, why)
		}
		if invocations == 10 {
			b.Fatalf("still reported after %d invocations: %v", invocations, why)
		}
	}
	wall := time.Since(start)
	b.StopTimer()
	cpu1 := sampleCPU(b, fns)
	delivered := time.Unix(0, lastPost.Load()).Add(10 * time.Millisecond).Sub(start)

	var chunks, handedOn int
	var redeliveries int64
	if w.queue != nil {
		st := w.queue.idle(time.Minute)
		for _, c := range w.queue.continuations() {
			if strings.Contains(c.Part, "/") {
				handedOn++
			} else {
				chunks++
			}
		}
		redeliveries = st.Received - st.Sent
		if st.Dead > 0 {
			b.Errorf("%d chunk messages went to the dead-letter list", st.Dead)
		}
	}
	d := w.deliveries(rec)[0]
	lost, dups := 0, 0
	for _, id := range live {
		switch k := d[id]; {
		case k == 0:
			lost++
		case k > 1:
			dups += k - 1
		}
	}
	if lost > 0 || dups > 0 {
		retry, again := 0, 0
		for _, id := range live {
			if d[id] > 1 {
				r, a := pl.duplicates(id)
				retry += r
				again += a
			}
		}
		b.Errorf("%d of %d subscribers lost, %d duplicates: %d by a post's retry after an attempt the endpoint answered, %d posted again (carried)",
			lost, len(live), dups, retry, again)
		shown := 0
		for _, id := range live {
			if d[id] > 1 && shown < 5 {
				shown++
				b.Logf("delivered %d times to %s: %s", d[id], id, pl.of(id, start))
			}
		}
	}
	cut := 0
	for _, c := range w.gw.Calls() {
		if c.Op == mgmttest.Post && c.Status == 0 {
			cut++
		}
	}
	used := cpu1.sub(cpu0)
	b.ReportMetric(wall.Seconds(), "wall-s")
	b.ReportMetric(delivered.Seconds(), "delivered-s")
	b.ReportMetric(float64(len(live))/delivered.Seconds(), "deliveries/s")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(dups), "duplicates")
	b.ReportMetric(float64(cut), "cut")
	b.ReportMetric(float64(pl.retried()), "retried")
	b.ReportMetric(float64(invocations), "stream-invocations")
	b.ReportMetric(float64(chunks), "chunks")
	b.ReportMetric(float64(handedOn), "handed-on")
	b.ReportMetric(float64(redeliveries), "redeliveries")
	b.ReportMetric(used.total().Seconds(), "cpu-s")
	b.ReportMetric(used.functions.Seconds(), "fn-cpu-s")
	b.ReportMetric(float64(used.total().Microseconds())/float64(len(live)), "cpu-µs/delivery")
	b.ReportMetric(used.busy(), "machine-busy")
	b.Logf("consumers %d: wall %.1f s, all delivered after %.1f s, %d stream invocations, %d chunks, %d handed on, %d redeliveries, lost %d, duplicates %d, cut %d, retried %d; CPU %.1f s (functions %.1f s, this process %.1f s, dynalite %.1f s), machine %.0f%% busy",
		consumers, wall.Seconds(), delivered.Seconds(), invocations, chunks, handedOn, redeliveries, lost, dups, cut, pl.retried(),
		used.total().Seconds(), used.functions.Seconds(), used.self.Seconds(), used.others.Seconds(), 100*used.busy())
}

// postLog records every post request the endpoint answers: its attempt (the Amz-Sdk-Request
// header), when it arrived and when it was answered, and whether its caller had given up by then.
type postLog struct {
	mu    sync.Mutex
	posts map[string][]postRequest
}

type postRequest struct {
	attempt           string
	arrived, answered time.Time
	gaveUp            bool
}

func (pl *postLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		arrived := time.Now()
		h.ServeHTTP(rw, r)
		if r.Method != http.MethodPost {
			return
		}
		_, id, _ := strings.Cut(r.URL.Path, "/@connections/")
		pr := postRequest{attempt: r.Header.Get("Amz-Sdk-Request"), arrived: arrived, answered: time.Now(), gaveUp: r.Context().Err() != nil}
		pl.mu.Lock()
		if pl.posts == nil {
			pl.posts = map[string][]postRequest{}
		}
		pl.posts[id] = append(pl.posts[id], pr)
		pl.mu.Unlock()
	})
}

// of describes the requests of one connection, times from start.
func (pl *postLog) of(id string, start time.Time) string {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var out []string
	for _, p := range pl.posts[id] {
		out = append(out, fmt.Sprintf("[%s arrived %.3f s answered %.3f s gave up %v]", p.attempt,
			p.arrived.Sub(start).Seconds(), p.answered.Sub(start).Seconds(), p.gaveUp))
	}
	return strings.Join(out, " ")
}

// duplicates sorts the successful requests of one connection after its first: retries (a later
// attempt of the same post, whose earlier attempt the endpoint answered but its caller did not
// take) and posts made again (a first attempt again: the subscriber was carried).
func (pl *postLog) duplicates(id string) (retry, again int) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	ok := 0
	for _, p := range pl.posts[id] {
		if p.gaveUp {
			continue
		}
		if ok++; ok == 1 {
			continue
		}
		if strings.HasPrefix(p.attempt, "attempt=1") {
			again++
		} else {
			retry++
		}
	}
	return retry, again
}

// retried counts the requests that were not a post's first attempt.
func (pl *postLog) retried() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	n := 0
	for _, ps := range pl.posts {
		for _, p := range ps {
			if !strings.HasPrefix(p.attempt, "attempt=1") {
				n++
			}
		}
	}
	return n
}

// cpuSample is the CPU time used so far (user and system) by this process, by the functions
// (each emulator and its descendants: its bootstrap), and by this process's other descendants
// (dynalite); and, from /proc/stat, the busy and total time of every core of the machine.
type cpuSample struct {
	self, functions, others time.Duration
	machineBusy, machineAll time.Duration
}

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

func (s cpuSample) sub(o cpuSample) cpuSample {
	return cpuSample{self: s.self - o.self, functions: s.functions - o.functions, others: s.others - o.others,
		machineBusy: s.machineBusy - o.machineBusy, machineAll: s.machineAll - o.machineAll}
}

func (s cpuSample) total() time.Duration { return s.self + s.functions + s.others }

// busy is the share of the machine's cores that was busy, 0 to 1.
func (s cpuSample) busy() float64 {
	if s.machineAll <= 0 {
		return 0
	}
	return float64(s.machineBusy) / float64(s.machineAll)
}

// sampleCPU reads the CPU times of this process and its descendants, and of the machine, from
// /proc (Linux); elsewhere it reports zeros.
func sampleCPU(t testing.TB, fns []*function) cpuSample {
	t.Helper()
	var s cpuSample
	if st, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(st), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i := 1; i < len(f) && i <= 8; i++ {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			d := time.Duration(v) * clockTick
			s.machineAll += d
			if i != 4 && i != 5 { // idle, iowait
				s.machineBusy += d
			}
		}
	}
	fnPIDs := map[int]bool{}
	for _, f := range fns {
		fnPIDs[f.pid] = true
	}
	type proc struct {
		ppid int
		cpu  time.Duration
	}
	procs := map[int]proc{}
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		st := string(b)
		i := strings.LastIndexByte(st, ')')
		if i < 0 || i+2 > len(st) {
			continue
		}
		f := strings.Fields(st[i+2:]) // state ppid pgrp ... utime (12th) stime (13th)
		if len(f) < 13 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		sy, _ := strconv.ParseInt(f[12], 10, 64)
		procs[pid] = proc{ppid: ppid, cpu: time.Duration(ut+sy) * clockTick}
	}
	self := os.Getpid()
	for pid, p := range procs {
		if pid == self {
			s.self += p.cpu
			continue
		}
		// A function's emulator, or a descendant of one (its bootstrap), or another descendant of
		// this process (dynalite).
		for q, hops := pid, 0; q > 1 && hops < 64; q, hops = procs[q].ppid, hops+1 {
			if fnPIDs[q] {
				s.functions += p.cpu
				break
			}
			if q == self {
				s.others += p.cpu
				break
			}
		}
	}
	return s
}
