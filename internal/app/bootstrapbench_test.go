package app_test

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/dynalite"
	"github.com/realtime-gql/lambdaws/internal/facts"
)

// The bootstrap cases of BenchmarkFanoutPath: the real Lambda binary (devproc.BuildLambda, as make
// build builds it) under the runtime interface emulator, configured as serverless.yml configures
// it, fed the same stream batches through the emulator's invoke endpoint. Its figures are read
// from outside, from /proc: CPU is the utime+stime of the bootstrap process (the emulator's
// child), peak RSS its VmHWM after a reset (clear_refs), the anonymous and file-backed parts of
// RSS sampled every 2 ms. Bytes allocated cannot be read from outside and are not reported.

// bootstrapEnvEnv adds environment to bootstrap's in the bootstrap cases, space-separated (e.g.
// "GOGC=50" or "GOMEMLIMIT=20MiB"), for experiments on its memory.
const bootstrapEnvEnv = "LAMBDAWS_PATH_BENCH_BOOTSTRAP_ENV"

// bootstrapFn is bootstrap under an emulator, started by its first invocation.
type bootstrapFn struct {
	emu  *devproc.Emulator
	pid  int    // bootstrap's
	path string // the binary
}

// startBootstrap runs bootstrap under the emulator with the environment serverless.yml gives it
// (tables, WEBSOCKET_ENDPOINT, AUTH_MODE, LOG_LEVEL), on dynalite, with static credentials, the
// benchmark's deadline as the function timeout, conc delivery workers, and the endpoint's
// certificate trusted through SSL_CERT_FILE (what Go's crypto/x509 reads on Linux: the
// management client's transport verifies with the system roots; it does not read
// AWS_CA_BUNDLE, which the SDK applies to the HTTP client of aws.Config only). Pinned, the
// function gets GOMAXPROCS=1 and is moved to CPU 0 once started. It warms the function with a
// change to the warm room, which starts it (its init) and fills its keep-alive pool.
func startBootstrap(b *testing.B, info endpointInfo, db *dynalite.Server, registry, data string, conc int, pinned bool) *bootstrapFn {
	b.Helper()
	bin := devproc.BuildLambda(b)
	dir := b.TempDir()
	certFile := filepath.Join(dir, "endpoint.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: info.Cert}), 0o600); err != nil {
		b.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"AWS_REGION=" + benchRegion,
		"AWS_ACCESS_KEY_ID=AKIDBENCH", "AWS_SECRET_ACCESS_KEY=SECRETBENCH",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_DYNAMODB=" + db.Endpoint,
		"REGISTRY_TABLE=" + registry, "DATA_TABLE=" + data,
		"WEBSOCKET_ENDPOINT=" + info.URL + "/prod",
		"AUTH_MODE=none",
		"LOG_LEVEL=info",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(int(benchDeadline/time.Second)),
		"DELIVERY_CONCURRENCY=" + strconv.Itoa(conc),
		"SSL_CERT_FILE=" + certFile,
	}
	if pinned {
		env = append(env, "GOMAXPROCS=1")
	}
	env = append(env, strings.Fields(os.Getenv(bootstrapEnvEnv))...)
	f := &bootstrapFn{emu: devproc.StartEmulator(b, bin, env), path: bin}
	var e0, e1 endpointCounts
	getJSON(b, http.MethodGet, info.Control, nil, &e0)
	f.invoke(b, streamBatch(b, "warm"))
	getJSON(b, http.MethodGet, info.Control, nil, &e1)
	if e1.Posts-e0.Posts != warmSubs {
		b.Fatalf("the warm-up posted %d times, want %d\n%s", e1.Posts-e0.Posts, warmSubs, f.emu.Output())
	}
	pid, err := childOf(f.emu.Pid)
	if err != nil {
		b.Fatal(err)
	}
	f.pid = pid
	if pinned {
		if ts, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
			if out, err := exec.Command(ts, "-a", "-p", "-c", "0", strconv.Itoa(pid)).CombinedOutput(); err != nil {
				b.Fatalf("taskset: %v: %s", err, out)
			}
		} else {
			b.Log("taskset is missing or the machine has one CPU: bootstrap is not pinned (GOMAXPROCS=1 still)")
		}
	}
	return f
}

// childOf returns the pid of the one child of process ppid (bootstrap, the emulator's).
func childOf(ppid int) (int, error) {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, p := range stats {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := statFields(raw)
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			kids = append(kids, pid)
		}
	}
	if len(kids) != 1 {
		return 0, fmt.Errorf("process %d has children %v, want one (bootstrap)", ppid, kids)
	}
	return kids[0], nil
}

// statFields are the fields of /proc/<pid>/stat after the command name: [0] is the state (field 3
// of proc(5)), [1] the parent's pid, [11] utime and [12] stime.
func statFields(raw []byte) []string {
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(raw[i+1:]))
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on Linux for every
// user-space ABI.
const clockTick = 10 * time.Millisecond

// cpu is the process's user + system time (its threads', live and ended).
func (f *bootstrapFn) cpu(b *testing.B) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", f.pid))
	if err != nil {
		b.Fatal(err)
	}
	fs := statFields(raw)
	u, _ := strconv.ParseInt(fs[11], 10, 64)
	s, _ := strconv.ParseInt(fs[12], 10, 64)
	return time.Duration(u+s) * clockTick
}

// procStatus is what the memory lines of /proc/<pid>/status say, in bytes.
type procStatus struct{ HWM, RSS, Anon, File int64 }

func readStatus(pid int, buf []byte) (procStatus, error) {
	fd, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, err
	}
	n, _ := fd.Read(buf)
	fd.Close()
	var st procStatus
	for _, l := range strings.Split(string(buf[:n]), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			st.HWM = kb << 10
		case "VmRSS:":
			st.RSS = kb << 10
		case "RssAnon:":
			st.Anon = kb << 10
		case "RssFile:":
			st.File = kb << 10
		}
	}
	return st, nil
}

// resetPeak resets the process's VmHWM to its RSS now (clear_refs 5) and checks that it took.
func (f *bootstrapFn) resetPeak(b *testing.B) {
	buf := make([]byte, 8<<10)
	before, err := readStatus(f.pid, buf)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", f.pid), []byte("5"), 0); err != nil {
		b.Fatalf("resetting bootstrap's peak RSS: %v", err)
	}
	after, err := readStatus(f.pid, buf)
	if err != nil {
		b.Fatal(err)
	}
	if after.HWM > after.RSS+(1<<20) && after.HWM >= before.HWM {
		b.Fatalf("clear_refs did not reset bootstrap's VmHWM: %d before, %d after, RSS %d", before.HWM, after.HWM, after.RSS)
	}
}

// memSampler samples a process's status every 2 ms: the peak RSS with its anonymous and
// file-backed parts at that moment, and the peak of the anonymous part.
type memSampler struct {
	stop     chan struct{}
	done     sync.WaitGroup
	atPeak   procStatus // at the highest VmRSS seen
	peakAnon int64
}

func sampleMem(pid int) *memSampler {
	m := &memSampler{stop: make(chan struct{})}
	m.done.Go(func() {
		buf := make([]byte, 8<<10)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if st, err := readStatus(pid, buf); err == nil {
				if st.RSS > m.atPeak.RSS {
					m.atPeak = st
				}
				m.peakAnon = max(m.peakAnon, st.Anon)
			}
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	})
	return m
}

func (m *memSampler) end() { close(m.stop); m.done.Wait() }

// invoke invokes the function through the emulator and checks that it answered a batch response
// with no failures.
func (f *bootstrapFn) invoke(b *testing.B, payload []byte) {
	b.Helper()
	resp, err := http.Post("http://"+f.emu.Addr+facts.InvokePath, "application/json", bytes.NewReader(payload))
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		events.DynamoDBEventResponse
		ErrorMessage string `json:"errorMessage"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil || out.ErrorMessage != "" || out.BatchItemFailures == nil {
		b.Fatalf("invoke: %d %s\n%s", resp.StatusCode, raw, tail(f.emu.Output(), 4<<10))
	}
	if len(out.BatchItemFailures) != 0 {
		b.Fatalf("the batch reported %+v\n%s", out.BatchItemFailures, tail(f.emu.Output(), 4<<10))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// bootstrapFigures are a run's figures of bootstrap, read from /proc.
type bootstrapFigures struct {
	wall, first      time.Duration
	cpuPerDelivery   float64 // µs
	hwm              int64   // VmHWM at the end of the run, bytes
	atPeak           procStatus
	peakAnon         int64
	conns, posts     int64
	binary, anonSmap int64 // at the end: bootstrap's binary's resident pages, and Anonymous of smaps_rollup
}

// measureBootstrap runs one invocation of payload and reads bootstrap's figures.
func measureBootstrap(b *testing.B, f *bootstrapFn, ep endpointInfo, payload []byte) bootstrapFigures {
	b.Helper()
	f.resetPeak(b)
	var e0, e1 endpointCounts
	getJSON(b, http.MethodGet, ep.Control+"?reset=1", nil, &e0)
	mem := sampleMem(f.pid)
	c0 := f.cpu(b)
	start := time.Now()
	f.invoke(b, payload)
	wall := time.Since(start)
	c1 := f.cpu(b)
	mem.end()
	getJSON(b, http.MethodGet, ep.Control, nil, &e1)
	st, err := readStatus(f.pid, make([]byte, 8<<10))
	if err != nil {
		b.Fatal(err)
	}
	fig := bootstrapFigures{wall: wall, hwm: st.HWM, atPeak: mem.atPeak, peakAnon: mem.peakAnon,
		conns: e1.Conns - e0.Conns, posts: e1.Posts - e0.Posts}
	if fig.posts > 0 {
		fig.cpuPerDelivery = float64(c1-c0) / 1e3 / float64(fig.posts)
	}
	if e1.First > 0 {
		fig.first = time.Unix(0, e1.First).Sub(start)
	}
	fig.binary, fig.anonSmap = f.smaps(b)
	if dir := os.Getenv(profileEnv); dir != "" {
		// What the resident set is made of, mapping by mapping.
		name := strings.NewReplacer("/", "_", "=", "").Replace(b.Name()) + fmt.Sprintf("-%d", profileRun.Add(1))
		if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", f.pid)); err == nil {
			os.WriteFile(filepath.Join(dir, name+".smaps"), raw, 0o644)
		}
		// What bootstrap and the emulator printed so far (GODEBUG=gctrace=1 in
		// LAMBDAWS_PATH_BENCH_BOOTSTRAP_ENV shows the heap's sizes at each GC).
		os.WriteFile(filepath.Join(dir, name+".out"), []byte(f.emu.Output()), 0o644)
	}
	return fig
}

// smaps returns the resident bytes of the bootstrap binary's own mappings (its text, rodata and
// data: /proc/<pid>/smaps) and the Anonymous line of smaps_rollup.
func (f *bootstrapFn) smaps(b *testing.B) (binary, anon int64) {
	kb := func(l string) int64 {
		fs := strings.Fields(l)
		if len(fs) < 2 {
			return 0
		}
		v, _ := strconv.ParseInt(fs[1], 10, 64)
		return v << 10
	}
	if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", f.pid)); err == nil {
		inBinary := false
		for _, l := range strings.Split(string(raw), "\n") {
			fs := strings.Fields(l)
			if len(fs) >= 5 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":") {
				inBinary = len(fs) >= 6 && fs[5] == f.path
				continue
			}
			if inBinary && strings.HasPrefix(l, "Rss:") {
				binary += kb(l)
			}
		}
	}
	if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", f.pid)); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "Anonymous:") {
				anon = kb(l)
			}
		}
	}
	return binary, anon
}

func (fig bootstrapFigures) report(b *testing.B) {
	mb := func(v int64) float64 { return float64(v) / (1 << 20) }
	b.ReportMetric(float64(fig.wall.Microseconds())/1000, "wall-ms")
	b.ReportMetric(float64(fig.posts)/fig.wall.Seconds(), "deliveries/s")
	b.ReportMetric(fig.cpuPerDelivery, "cpu-µs/delivery")
	b.ReportMetric(float64(fig.first.Microseconds())/1000, "first-ms")
	// VmHWM is raised by the kernel lazily; a sample may have seen more.
	b.ReportMetric(mb(max(fig.hwm, fig.atPeak.RSS)), "peak-rss-MB")
	b.ReportMetric(mb(fig.peakAnon), "peak-anon-MB")
	b.ReportMetric(mb(fig.atPeak.File), "peak-file-MB")
	b.ReportMetric(float64(fig.conns), "conns")
	b.Logf("bootstrap pid: at its sampled RSS peak %.1f MB = anon %.1f + file %.1f MB; after the run: VmHWM %.1f MB, smaps_rollup Anonymous %.1f MB, the binary's resident pages %.1f MB",
		mb(fig.atPeak.RSS), mb(fig.atPeak.Anon), mb(fig.atPeak.File), mb(fig.hwm), mb(fig.anonSmap), mb(fig.binary))
}
