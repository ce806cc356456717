package app_test

// BenchmarkFanoutPath measures the whole delivery path as the binary wires it: the handler
// (router.Invoke of app.NewService, with internal/mgmt's client and the SDK's configuration),
// fed a DynamoDB stream batch of one change, reading its topic's subscriptions from the embedded
// store or from dynalite, rendering, framing and posting each over TLS to a local management
// endpoint. Beside it, in the same run and the same kind of process, the post-only loops it must
// beat: the SDK's apigatewaymanagementapi client with 64 workers, and a bare signed http.Client
// loop with 64 workers.
//
// Three processes, so that each figure is the system under test's alone: this benchmark (the
// driver), a handler child (this test binary re-executed: it runs the handler and the loops, and
// reports its own CPU time, bytes allocated and peak RSS), and an endpoint child (TLS, HTTP/1.1,
// answering each post after the service time, counting the connections opened and noting the
// first post and its body).
//
//	go test -run '^$' -bench BenchmarkFanoutPath -benchtime 1x -count 2 -timeout 30m ./internal/app/
//
// The fan-out cases run with 64 workers (like for like with the loops) and, at 10k with 10 ms,
// with the default 128, on both stores. The bootstrap cases (bootstrapbench_test.go) run the
// real Lambda binary in place of the handler child: built as make build builds it, under the
// runtime interface emulator, configured as serverless.yml configures it (DELIVERY_CONCURRENCY
// the case's workers), on dynalite, fed the same batches through the emulator's invoke
// endpoint, measured from outside through /proc: bootstrap-dynalite-<workers>, and at 10k also
// -pinned (GOMAXPROCS=1 on CPU 0: one core, as issue 11's targets were measured). The handler
// child and the loops are not pinned.
//
// Per run: wall-ms (the invocation, or the loop), deliveries/s, cpu-µs/delivery and
// B/delivery (the handler child's getrusage and runtime.MemStats), first-ms (from the invoke to
// the endpoint's first post), peak-rss-MB (the child's VmHWM, reset before the run),
// peak-anon-MB (the peak of its anonymous resident memory, sampled: the heap and stacks without
// the binary's pages and the store file's pages bbolt maps), conns (new connections the endpoint
// saw during the run). The bootstrap runs report the same but B/delivery (bytes allocated cannot
// be read from outside the process): CPU is bootstrap's utime+stime from /proc/<pid>/stat (10
// ms ticks), peak-rss-MB bootstrap's alone, and peak-file-MB the file-backed part of its RSS
// (the binary's mapped pages) at its sampled peak. The fan-out and bootstrap runs also report
// x-sdk-wall, x-sdk-cpu, x-bare-wall and x-bare-cpu, their wall time and CPU per delivery over
// the SDK loop's and the bare loop's measured just before at the same size and service time.
// With LAMBDAWS_PATH_BENCH_PROFILE set to a directory, the handler child also writes profiles
// of each run there (see profileEnv), and a bootstrap run its /proc/<pid>/smaps and output;
// LAMBDAWS_PATH_BENCH_BOOTSTRAP_ENV adds environment to bootstrap's (bootstrapEnvEnv).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/realtime-gql/lambdaws/graph/model"
	"github.com/realtime-gql/lambdaws/internal/app"
	"github.com/realtime-gql/lambdaws/internal/dynalite"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/realtime-gql/lambdaws/store"
	dynamostore "github.com/realtime-gql/lambdaws/store/dynamo"
	"github.com/realtime-gql/lambdaws/store/embedded"
	"github.com/realtime-gql/lambdaws/store/stream"
	"github.com/rs/zerolog"
)

// benchChildEnv selects a child's role: "endpoint" or "handler" (this file), "dev" or "push"
// (linerate_test.go).
const benchChildEnv = "LAMBDAWS_PATH_BENCH_CHILD"

// runBenchChild runs this process as a benchmark child when it is one; it reports whether it was.
func runBenchChild() bool {
	switch os.Getenv(benchChildEnv) {
	case "endpoint":
		runEndpointChild()
	case "handler":
		runHandlerChild()
	case "dev":
		runDevChild()
	case "push":
		runPushChild()
	default:
		return false
	}
	return true
}

const (
	benchTopicQuery = `subscription { messageAdded(roomId: "bench") { id roomId author text createdAt } }`
	benchTopic      = "messageAdded?roomId=bench"
	warmTopic       = "messageAdded?roomId=warm"
	warmSubs        = 2048
	benchRegion     = "us-east-1"
)

var benchCreds = credentials.NewStaticCredentialsProvider("AKIDBENCH", "SECRETBENCH", "")

// ---------------------------------------------------------------------------------------------
// The endpoint child.

type endpointInfo struct {
	URL, Control string
	Cert         []byte
}

// runEndpointChild serves @connections posts over TLS (HTTP/1.1), each answered 200 after the
// service time; its control endpoint sets the service time, resets and reports the counts.
func runEndpointChild() {
	var delay, first atomic.Int64
	var conns, posts atomic.Int64
	var firstBody atomic.Pointer[string] // the first post's body since the last reset
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if first.CompareAndSwap(0, time.Now().UnixNano()) {
			s := string(body)
			firstBody.Store(&s)
		}
		posts.Add(1)
		if d := time.Duration(delay.Load()); d > 0 {
			time.Sleep(d)
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := r.URL.Query().Get("delay"); d != "" {
			v, _ := time.ParseDuration(d)
			delay.Store(int64(v))
		}
		if r.URL.Query().Get("reset") != "" {
			first.Store(0)
			firstBody.Store(nil)
		}
		body := ""
		if p := firstBody.Load(); p != nil {
			body = *p
		}
		json.NewEncoder(w).Encode(map[string]any{"conns": conns.Load(), "posts": posts.Load(), "first": first.Load(), "body": body})
	}))
	info, _ := json.Marshal(endpointInfo{URL: srv.URL, Control: ctl.URL, Cert: srv.Certificate().Raw})
	fmt.Printf("%s\n", info)
	io.Copy(io.Discard, os.Stdin) // until the driver goes away
	srv.Close()
	ctl.Close()
}

// ---------------------------------------------------------------------------------------------
// The handler child.

// childStats is what the handler child reports of itself.
type childStats struct {
	CPU        int64 // user + system, ns
	TotalAlloc uint64
	HWM        int64 // peak RSS, bytes
	// PeakAnon is the peak of the anonymous part of RSS (heap, stacks: not the binary's text nor
	// the store file's pages mapped by bbolt) since the last reset, sampled every millisecond.
	PeakAnon int64
	// RunqWait is how long the process's threads were runnable but waiting for a CPU, ns (the
	// sum of /proc/self/task/*/schedstat's second field): what other processes on the machine
	// took from it.
	RunqWait int64
}

// peakAnon is the highest RssAnon seen by samplePeakAnon since the last reset.
var peakAnon atomic.Int64

// samplePeakAnon raises peakAnon to RssAnon every 2 ms: the kernel keeps a peak of the whole RSS
// only (VmHWM), which counts the binary's text and the pages of the store file bbolt has mapped
// and read. It allocates nothing, so that it does not count in the run's bytes per delivery.
func samplePeakAnon() {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return
	}
	buf := make([]byte, 8<<10)
	t := time.NewTicker(2 * time.Millisecond)
	for range t.C {
		v := parseRSSAnon(f, buf)
		for {
			old := peakAnon.Load()
			if v <= old {
				break
			}
			if peakAnon.CompareAndSwap(old, v) {
				if os.Getenv(profileEnv) != "" {
					peakMu.Lock()
					metrics.Read(peakMetrics)
					peakMu.Unlock()
				}
				break
			}
		}
	}
}

// peakMetrics are the runtime's memory classes when peakAnon was last raised (profiling only).
var (
	peakMu      sync.Mutex
	peakMetrics = func() []metrics.Sample {
		var s []metrics.Sample
		for _, d := range metrics.All() {
			if strings.HasPrefix(d.Name, "/memory/classes/") || d.Name == "/gc/heap/goal:bytes" || d.Name == "/gc/heap/live:bytes" {
				s = append(s, metrics.Sample{Name: d.Name})
			}
		}
		return s
	}()
)

// rssAnon is the process's anonymous resident memory now, in bytes.
func rssAnon() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseRSSAnon(f, make([]byte, 8<<10))
}

// parseRSSAnon reads RssAnon from f, /proc/self/status, into buf, allocating nothing.
func parseRSSAnon(f *os.File, buf []byte) int64 {
	n, _ := f.ReadAt(buf, 0)
	b := buf[:n]
	i := bytes.Index(b, []byte("RssAnon:"))
	if i < 0 {
		return 0
	}
	var kb int64
	for _, c := range b[i+len("RssAnon:"):] {
		switch {
		case c == ' ' || c == '\t':
			continue
		case '0' <= c && c <= '9':
			kb = kb*10 + int64(c-'0')
			continue
		}
		break
	}
	return kb << 10
}

// profileEnv names a directory: when set, the driver has the handler child write, for each
// measured run, a CPU profile (.cpu), heap profiles before and after (.heap0, .heap1) and in the
// middle of it (.heapmid, the live heap as of the last GC), its memory map (.smaps) and the
// runtime's memory classes at the peak of its anonymous memory (.mem). Allocations are sampled
// every 512 bytes on average (runtime.MemProfileRate; profileRateEnv sets another rate, e.g.
// 524288, the default, for a CPU profile not skewed by the sampling), so that
//
//	go tool pprof -sample_index=alloc_space -base DIR/NAME.heap0 DIR/NAME.heap1
//
// shows what the run allocated:
//
//	LAMBDAWS_PATH_BENCH_PROFILE=/tmp/prof go test -run '^$' -bench 'BenchmarkFanoutPath/^subs=10000$/svc=0s/fanout-' -benchtime 1x ./internal/app/
const (
	profileEnv     = "LAMBDAWS_PATH_BENCH_PROFILE"
	profileRateEnv = "LAMBDAWS_PATH_BENCH_MEMPROFILERATE"
)

// profile starts ("start") or ends ("stop") the profiles of a run called name.
func profile(phase, name string) error {
	dir := os.Getenv(profileEnv)
	base := filepath.Join(dir, name)
	writeHeap := func(path string) error {
		runtime.GC()
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.Lookup("allocs").WriteTo(f, 0)
	}
	switch phase {
	case "start":
		if err := writeHeap(base + ".heap0"); err != nil {
			return err
		}
		f, err := os.Create(base + ".cpu")
		if err != nil {
			return err
		}
		cpuProfile = f
		// The live heap in the middle of the run, as of the last GC.
		time.AfterFunc(300*time.Millisecond, func() {
			if f, err := os.Create(base + ".heapmid"); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		})
		return pprof.StartCPUProfile(f)
	case "stop":
		pprof.StopCPUProfile()
		if cpuProfile != nil {
			cpuProfile.Close()
		}
		// What the resident set is made of: the binary's pages, the heap, the store file.
		if smaps, err := os.ReadFile("/proc/self/smaps"); err == nil {
			os.WriteFile(base+".smaps", smaps, 0o644)
		}
		var mem strings.Builder
		peakMu.Lock()
		fmt.Fprintf(&mem, "peak RssAnon %d\n", peakAnon.Load())
		for _, m := range peakMetrics {
			if m.Value.Kind() == metrics.KindUint64 {
				fmt.Fprintf(&mem, "%s %d\n", m.Name, m.Value.Uint64())
			}
		}
		peakMu.Unlock()
		os.WriteFile(base+".mem", []byte(mem.String()), 0o644)
		return writeHeap(base + ".heap1")
	}
	return fmt.Errorf("profile phase %q", phase)
}

var cpuProfile *os.File

func selfStats() childStats {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := childStats{CPU: ru.Utime.Nano() + ru.Stime.Nano(), TotalAlloc: ms.TotalAlloc}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				st.HWM = kb << 10
			}
		}
	}
	if tasks, err := filepath.Glob("/proc/self/task/*/schedstat"); err == nil {
		for _, t := range tasks {
			if b, err := os.ReadFile(t); err == nil {
				if f := strings.Fields(string(b)); len(f) >= 2 {
					w, _ := strconv.ParseInt(f[1], 10, 64)
					st.RunqWait += w
				}
			}
		}
	}
	return st
}

// benchTransport is the management client's transport, trusting the endpoint's certificate.
func benchTransport(cert []byte, conns int) *http.Transport {
	c, err := x509.ParseCertificate(cert)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	tr := mgmt.NewTransport(conns)
	tr.TLSClientConfig.RootCAs = pool
	return tr
}

// benchDeadline is an invocation's deadline in the benchmark. It measures throughput, so it is
// longer than Lambda's 29 s: 100,000 posts of 10 ms with 64 workers take over 20 s, plus the
// reads, which one invocation cannot finish (without a chunk queue the record would be
// reported; with one it would be split among invocations, which is not what this measures).
const benchDeadline = 5 * time.Minute

// runHandlerChild builds the handler as the binary does (app.NewService, internal/mgmt's client
// with the SDK's configuration) over the store the environment names, and serves the driver:
// /invoke (router.Invoke with benchDeadline), /loop (a post-only loop), /stats, /reset-peak.
func runHandlerChild() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "handler child:", err)
		os.Exit(1)
	}
	var info endpointInfo
	if err := json.Unmarshal([]byte(os.Getenv("BENCH_ENDPOINT")), &info); err != nil {
		fail(err)
	}
	conc, _ := strconv.Atoi(os.Getenv("BENCH_CONCURRENCY"))
	if os.Getenv(profileEnv) != "" {
		runtime.MemProfileRate = 512
		if r, err := strconv.Atoi(os.Getenv(profileRateEnv)); err == nil && r > 0 {
			runtime.MemProfileRate = r
		}
	}
	var s store.Store
	switch kind := os.Getenv("BENCH_STORE"); kind {
	case "none": // the post-only loops' process
		s = nil
	case "embedded":
		es, err := embedded.Open(os.Getenv("BENCH_STORE_PATH"), embedded.Options{})
		if err != nil {
			fail(err)
		}
		s = es
	case "dynalite":
		client := dynamodb.New(dynamodb.Options{Region: dynalite.Region, BaseEndpoint: aws.String(os.Getenv("BENCH_DYNAMODB")),
			Credentials: credentials.NewStaticCredentialsProvider("dynalite", "dynalite", "")})
		s = dynamostore.New(client, dynamostore.Options{RegistryTable: os.Getenv("BENCH_REGISTRY"), DataTable: os.Getenv("BENCH_DATA")})
	default:
		fail(fmt.Errorf("store %q", kind))
	}
	var svc *app.Service
	if s != nil {
		awsCfg := aws.Config{Region: benchRegion, Credentials: benchCreds}
		// The client app.NewGateway builds, trusting the endpoint's certificate.
		gw, err := mgmt.New(mgmt.Config{Endpoint: info.URL + "/prod", Region: awsCfg.Region, Credentials: awsCfg.Credentials,
			Transport: benchTransport(info.Cert, conc), Retry: mgmt.Retry{Margin: -1}})
		if err != nil {
			fail(err)
		}
		if svc, err = app.NewService(app.Config{DeliveryConcurrency: conc}, s, app.Deps{Gateway: gw}, zerolog.Nop()); err != nil {
			fail(err)
		}
	}
	var pmu sync.Mutex
	posters := map[string]postFunc{} // one client per loop kind, for the life of the process
	mux := http.NewServeMux()
	mux.HandleFunc("POST /invoke", func(w http.ResponseWriter, r *http.Request) {
		payload, _ := io.ReadAll(r.Body)
		ctx, cancel := context.WithTimeout(context.Background(), benchDeadline)
		defer cancel()
		out, err := svc.Invoke(ctx, payload)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(out)
	})
	mux.HandleFunc("POST /loop", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		workers, _ := strconv.Atoi(r.URL.Query().Get("workers"))
		impl := r.URL.Query().Get("impl")
		pmu.Lock()
		post := posters[impl]
		if post == nil {
			post = loopPoster(impl, info)
			posters[impl] = post
		}
		pmu.Unlock()
		if err := postLoop(post, n, workers); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		st := selfStats()
		st.PeakAnon = peakAnon.Load()
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST /reset-peak", func(w http.ResponseWriter, r *http.Request) {
		debug.FreeOSMemory() // a GC, and the freed memory back to the system, so the peak is the run's
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		peakAnon.Store(rssAnon())
	})
	mux.HandleFunc("POST /profile", func(w http.ResponseWriter, r *http.Request) {
		if err := profile(r.URL.Query().Get("phase"), r.URL.Query().Get("name")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	go samplePeakAnon()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	fmt.Printf("http://%s\n", ln.Addr())
	go http.Serve(ln, mux)
	io.Copy(io.Discard, os.Stdin)
	if svc != nil {
		svc.Close()
		s.Close()
	}
}

// benchFrame is a typical delivery frame (what the fan-out posts for benchTopicQuery).
var benchFrame = []byte(`{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"01J9Z8Q4M2XK7W3V5T6R8N0P1Q","roomId":"bench","author":"ann","text":"hello, world","createdAt":"2026-03-04T05:06:07.123Z"}},"extensions":{"event":{"id":"c4ca4238a0b923820dcc509a6f75849b","seq":"4421584500000000017450439091"}}}}`)

type postFunc func(ctx context.Context, connID string, data []byte) error

// loopPoster is a baseline's post: the SDK's client as the service built it before
// internal/mgmt, or a bare signed
// http.Client (v4.Signer and http.NewRequest per post, no retries, no error decoding).
func loopPoster(impl string, info endpointInfo) postFunc {
	switch impl {
	case "sdk":
		// The SDK's client with the options the service gave it before internal/mgmt, trusting
		// the endpoint's certificate.
		hc := awshttp.NewBuildableClient().WithTimeout(10 * time.Second).WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 128
			t.MaxIdleConnsPerHost = 64
			t.IdleConnTimeout = 90 * time.Second
			t.TLSClientConfig = benchTransport(info.Cert, 64).TLSClientConfig
		})
		c := apigatewaymanagementapi.NewFromConfig(aws.Config{Region: benchRegion, Credentials: benchCreds}, func(o *apigatewaymanagementapi.Options) {
			o.BaseEndpoint = aws.String(info.URL + "/prod")
			o.HTTPClient = hc
			o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = 5
				so.MaxBackoff = 2 * time.Second
				so.RateLimiter = ratelimit.None
			})
		})
		return func(ctx context.Context, connID string, data []byte) error {
			_, err := c.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(connID), Data: data})
			return err
		}
	default: // bare
		hc := &http.Client{Transport: benchTransport(info.Cert, 64)}
		signer := v4.NewSigner()
		creds := aws.NewCredentialsCache(benchCreds)
		return func(ctx context.Context, connID string, data []byte) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, info.URL+"/prod/@connections/"+connID, bytes.NewReader(data))
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			cr, err := creds.Retrieve(ctx)
			if err != nil {
				return err
			}
			if err := signer.SignHTTP(ctx, cr, req, hex.EncodeToString(sum[:]), "execute-api", benchRegion, time.Now()); err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
	}
}

// postLoop posts n frames to distinct connections with workers goroutines.
func postLoop(post postFunc, n, workers int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range workers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if err := post(context.Background(), fmt.Sprintf("Ab%07d=", i), benchFrame); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// ---------------------------------------------------------------------------------------------
// The driver.

// child is a running child process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	line   string // its first line
	pinned bool   // to CPU 0
}

// startChild starts this test binary as a benchmark child of the role.
func startChild(b *testing.B, role string, env ...string) *child {
	b.Helper()
	return runChild(b, []string{os.Args[0], "-test.run=^$", "-test.bench=^$"}, append([]string{benchChildEnv + "=" + role}, env...), false)
}

// runChild starts argv with this process's environment and env, pinned to CPU 0 (taskset -c 0)
// when pin is set and the machine has two CPUs and taskset is installed, and returns it with its
// first line and whether it is pinned. Closing its stdin ends it; the benchmark's cleanup does.
func runChild(b *testing.B, argv, env []string, pin bool) *child {
	b.Helper()
	if pin {
		if ts, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
			argv = append([]string{ts, "-c", "0"}, argv...)
		} else {
			pin = false
			b.Log("taskset is missing or the machine has one CPU: the child is not pinned")
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, pinned: pin}
	b.Cleanup(func() { c.stdin.Close(); c.cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("%v: %v", argv, err)
	}
	c.line = strings.TrimSpace(line)
	return c
}

func getJSON(b *testing.B, method, url string, body []byte, v any) {
	b.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			b.Fatalf("%s %s: %s: %v", method, url, raw, err)
		}
	}
}

type endpointCounts struct {
	Conns, Posts, First int64
	Body                string // the first post's body since the last reset
}

// run is one measured run against the handler child: do runs it; the figures come from the
// children's own counts.
type runFigures struct {
	wall                     time.Duration
	cpuPerDelivery           float64 // µs
	bytesPerDelivery         float64
	first                    time.Duration
	peakRSS, peakAnon        int64
	conns, posts, deliveries int64
}

// profileRun numbers the profiled runs.
var profileRun atomic.Int64

func measureRun(b *testing.B, handler string, ep endpointInfo, do func()) runFigures {
	b.Helper()
	getJSON(b, http.MethodPost, handler+"/reset-peak", nil, nil)
	var e0, e1 endpointCounts
	getJSON(b, http.MethodGet, ep.Control+"?reset=1", nil, &e0)
	prof := ""
	if os.Getenv(profileEnv) != "" {
		prof = "?name=" + strings.NewReplacer("/", "_", "=", "").Replace(b.Name()) + fmt.Sprintf("-%d", profileRun.Add(1))
		getJSON(b, http.MethodPost, handler+"/profile"+prof+"&phase=start", nil, nil)
	}
	var s0, s1 childStats
	getJSON(b, http.MethodGet, handler+"/stats", nil, &s0)
	start := time.Now()
	do()
	wall := time.Since(start)
	getJSON(b, http.MethodGet, handler+"/stats", nil, &s1)
	getJSON(b, http.MethodGet, ep.Control, nil, &e1)
	if prof != "" {
		getJSON(b, http.MethodPost, handler+"/profile"+prof+"&phase=stop", nil, nil)
	}
	f := runFigures{wall: wall, peakRSS: s1.HWM, peakAnon: s1.PeakAnon, conns: e1.Conns - e0.Conns, posts: e1.Posts - e0.Posts}
	if f.posts > 0 {
		f.cpuPerDelivery = float64(s1.CPU-s0.CPU) / 1e3 / float64(f.posts)
		f.bytesPerDelivery = float64(s1.TotalAlloc-s0.TotalAlloc) / float64(f.posts)
	}
	if e1.First > 0 {
		f.first = time.Unix(0, e1.First).Sub(start)
	}
	return f
}

func (f runFigures) report(b *testing.B) {
	b.ReportMetric(float64(f.wall.Microseconds())/1000, "wall-ms")
	b.ReportMetric(float64(f.posts)/f.wall.Seconds(), "deliveries/s")
	b.ReportMetric(f.cpuPerDelivery, "cpu-µs/delivery")
	b.ReportMetric(f.bytesPerDelivery, "B/delivery")
	b.ReportMetric(float64(f.first.Microseconds())/1000, "first-ms")
	b.ReportMetric(float64(f.peakRSS)/(1<<20), "peak-rss-MB")
	b.ReportMetric(float64(f.peakAnon)/(1<<20), "peak-anon-MB")
	b.ReportMetric(float64(f.conns), "conns")
}

// benchSub is subscription i of a topic.
func benchSub(topic string, i int) store.Subscription {
	id, query := "1", benchTopicQuery
	if topic == warmTopic {
		id, query = "w", strings.Replace(benchTopicQuery, `"bench"`, `"warm"`, 1)
	}
	return store.Subscription{ConnectionID: fmt.Sprintf("Ab%07d=", i), ID: id, Topic: topic, Subprotocol: gqlws.TransportWS,
		Query: query, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(24 * time.Hour)}
}

// warm invokes the handler with a change to the warm room (2,048 subscribers), so the engine,
// the credentials, the signing key and the keep-alive pool are warm at the current service time,
// as in a Lambda environment that has served before; it checks that every one was posted.
func warm(b *testing.B, handler string, ep endpointInfo) {
	b.Helper()
	var e0, e1 endpointCounts
	getJSON(b, http.MethodGet, ep.Control, nil, &e0)
	invokeChild(b, handler, streamBatch(b, "warm"))
	getJSON(b, http.MethodGet, ep.Control, nil, &e1)
	if e1.Posts-e0.Posts != warmSubs {
		b.Fatalf("the warm-up posted %d times, want %d", e1.Posts-e0.Posts, warmSubs)
	}
}

// fillEmbedded writes an embedded store file with n subscriptions of benchTopic (and the warm
// topic's).
func fillEmbedded(b *testing.B, path string, n int) {
	b.Helper()
	s, err := embedded.Open(path, embedded.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range n {
		if err := s.PutSubscription(ctx, benchSub(benchTopic, i), false); err != nil {
			b.Fatal(err)
		}
	}
	for i := range warmSubs {
		if err := s.PutSubscription(ctx, benchSub(warmTopic, i), false); err != nil {
			b.Fatal(err)
		}
	}
}

// fillDynalite writes n topic rows of benchTopic (and the warm topic's) in the DynamoDB store's
// layout with BatchWriteItem (the fan-out reads only topic rows), and checks that the store reads
// them back.
func fillDynalite(b *testing.B, db *dynalite.Server, registry string, n int) {
	b.Helper()
	ctx := context.Background()
	row := func(topic string, i int) types.WriteRequest {
		s := benchSub(topic, i)
		str := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
		return types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			"pk": str("topic#" + topic), "sk": str(s.ConnectionID + "#" + s.ID), "connectionId": str(s.ConnectionID), "id": str(s.ID),
			"topic": str(topic), "subprotocol": str(s.Subprotocol), "query": str(s.Query),
			"createdAt": str(s.CreatedAt.UTC().Format(time.RFC3339Nano)), "expiresAt": str(s.ExpiresAt.UTC().Format(time.RFC3339Nano)),
			"ttl": &types.AttributeValueMemberN{Value: strconv.FormatInt(s.ExpiresAt.Unix()+1, 10)},
		}}}
	}
	var reqs []types.WriteRequest
	for i := range n {
		reqs = append(reqs, row(benchTopic, i))
	}
	for i := range warmSubs {
		reqs = append(reqs, row(warmTopic, i))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for len(reqs) > 0 {
		k := min(25, len(reqs))
		batch := reqs[:k]
		reqs = reqs[k:]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for len(batch) > 0 {
				out, err := db.Client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{registry: batch}})
				if err != nil {
					b.Error(err)
					return
				}
				batch = out.UnprocessedItems[registry]
			}
		})
	}
	wg.Wait()
	s := dynamostore.New(db.Client, dynamostore.Options{RegistryTable: registry})
	got := 0
	for pg, err := range s.TopicPages(ctx, benchTopic, "", "") {
		if err != nil {
			b.Fatal(err)
		}
		got += len(pg.Subs)
	}
	if got != n {
		b.Fatalf("dynalite holds %d subscriptions of the bench topic, want %d", got, n)
	}
}

// streamBatch is a stream batch of one INSERT into the bench room (or the warm room), with a
// fresh event id: every invocation is a new change.
var benchSeq atomic.Int64

func streamBatch(b *testing.B, room string) []byte {
	b.Helper()
	seq := benchSeq.Add(1)
	item := messageItem(b, model.Message{ID: fmt.Sprintf("01J9Z8Q4M2XK7W3V5T6R%06d", seq), RoomID: room, Author: "ann",
		Text: "hello, world", CreatedAt: time.Now()})
	rec, err := stream.ChangeRecord(stream.Insert, nil, item, uint64(1e9+seq), "arn:aws:dynamodb:us-east-1:123456789012:table/data/stream/x", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	rec.EventID = fmt.Sprintf("bench%027d", seq)
	payload, _ := json.Marshal(events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}})
	return payload
}

func invokeChild(b *testing.B, handler string, payload []byte) {
	b.Helper()
	var resp events.DynamoDBEventResponse
	getJSON(b, http.MethodPost, handler+"/invoke", payload, &resp)
	if len(resp.BatchItemFailures) != 0 {
		b.Fatalf("the batch reported %+v", resp.BatchItemFailures)
	}
}

func BenchmarkFanoutPath(b *testing.B) {
	parent := b
	ep := startChild(b, "endpoint")
	var info endpointInfo
	if err := json.Unmarshal([]byte(ep.line), &info); err != nil {
		b.Fatal(err)
	}
	epJSON, _ := json.Marshal(info)
	db := dynalite.Shared(b)
	dir := b.TempDir()
	type sizeSetup struct {
		embeddedPath, registry, data string
	}
	setups := map[int]sizeSetup{}
	setup := func(b *testing.B, n int) sizeSetup {
		if s, ok := setups[n]; ok {
			return s
		}
		s := sizeSetup{embeddedPath: filepath.Join(dir, fmt.Sprintf("store-%d.db", n)),
			registry: dynalite.TableName("bench-registry"), data: dynalite.TableName("bench-data")}
		t0 := time.Now()
		fillEmbedded(b, s.embeddedPath, n)
		if err := dynamostore.New(db.Client, dynamostore.Options{RegistryTable: s.registry, DataTable: s.data}).CreateTables(context.Background()); err != nil {
			b.Fatal(err)
		}
		fillDynalite(b, db, s.registry, n)
		b.Logf("%d subscriptions written to the embedded store and to dynalite in %v", n, time.Since(t0).Round(time.Millisecond))
		setups[n] = s
		return s
	}
	handlers := map[string]string{} // store/size/concurrency → handler child URL
	handlerFor := func(b *testing.B, kind string, n, conc int) string {
		key := fmt.Sprint(kind, n, conc)
		if h, ok := handlers[key]; ok {
			return h
		}
		var s sizeSetup
		if kind != "none" {
			s = setup(b, n)
		}
		if kind == "embedded" && conc != 64 {
			// Another process holds the store file open (bbolt locks it): use a copy.
			cp := strings.TrimSuffix(s.embeddedPath, ".db") + fmt.Sprintf("-c%d.db", conc)
			raw, err := os.ReadFile(s.embeddedPath)
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(cp, raw, 0o600); err != nil {
				b.Fatal(err)
			}
			s.embeddedPath = cp
		}
		c := startChild(parent, "handler", "BENCH_ENDPOINT="+string(epJSON), "BENCH_STORE="+kind, "BENCH_CONCURRENCY="+strconv.Itoa(conc),
			"BENCH_STORE_PATH="+s.embeddedPath, "BENCH_DYNAMODB="+db.Endpoint, "BENCH_REGISTRY="+s.registry, "BENCH_DATA="+s.data)
		handlers[key] = c.line
		return c.line
	}
	bootstraps := map[string]*bootstrapFn{} // size/concurrency/pinning → bootstrap under an emulator
	control := func(b *testing.B, d time.Duration) {
		getJSON(b, http.MethodGet, info.Control+"?delay="+d.String(), nil, nil)
	}

	type baseline struct {
		wall time.Duration
		cpu  float64
	}
	baselines := map[string]baseline{}
	type variant struct {
		n    int
		svc  time.Duration
		conc int
	}
	var vs []variant
	for _, svc := range []time.Duration{0, 10 * time.Millisecond} {
		for _, n := range []int{1000, 10000, 100000} {
			vs = append(vs, variant{n, svc, 64})
		}
	}
	vs = append(vs, variant{10000, 10 * time.Millisecond, 128}) // the default pool
	for _, v := range vs {
		prefix := fmt.Sprintf("subs=%d/svc=%v", v.n, v.svc)
		if v.conc == 64 {
			for _, impl := range []string{"sdk", "bare"} {
				b.Run(prefix+"/"+impl+"-loop-64", func(b *testing.B) {
					control(b, v.svc)
					h := handlerFor(b, "none", 0, 64)
					getJSON(b, http.MethodPost, fmt.Sprintf("%s/loop?impl=%s&n=%d&workers=64", h, impl, 256), nil, nil) // warm
					var f runFigures
					for b.Loop() {
						f = measureRun(b, h, info, func() {
							getJSON(b, http.MethodPost, fmt.Sprintf("%s/loop?impl=%s&n=%d&workers=64", h, impl, v.n), nil, nil)
						})
					}
					f.report(b)
					baselines[prefix+impl] = baseline{f.wall, f.cpuPerDelivery}
				})
			}
		}
		ratios := func(b *testing.B, wall time.Duration, cpu float64) {
			if sdk, ok := baselines[prefix+"sdk"]; ok {
				b.ReportMetric(float64(wall)/float64(sdk.wall), "x-sdk-wall")
				b.ReportMetric(cpu/sdk.cpu, "x-sdk-cpu")
			}
			if bare, ok := baselines[prefix+"bare"]; ok {
				b.ReportMetric(float64(wall)/float64(bare.wall), "x-bare-wall")
				b.ReportMetric(cpu/bare.cpu, "x-bare-cpu")
			}
		}
		for _, kind := range []string{"embedded", "dynalite"} {
			b.Run(fmt.Sprintf("%s/fanout-%s-%d", prefix, kind, v.conc), func(b *testing.B) {
				control(b, v.svc)
				h := handlerFor(b, kind, v.n, v.conc)
				warm(b, h, info)
				var f runFigures
				for b.Loop() {
					payload := streamBatch(b, "bench")
					f = measureRun(b, h, info, func() { invokeChild(b, h, payload) })
					if f.posts != int64(v.n) {
						b.Fatalf("%d posts for %d subscribers", f.posts, v.n)
					}
				}
				f.report(b)
				ratios(b, f.wall, f.cpuPerDelivery)
			})
		}
		// The real binary under the emulator, unpinned as the handler child is; at 10k also
		// pinned to one core (GOMAXPROCS=1, CPU 0), as issue 11's targets were measured.
		for _, pinned := range []bool{false, true} {
			if pinned && v.n != 10000 {
				continue
			}
			name := fmt.Sprintf("%s/bootstrap-dynalite-%d", prefix, v.conc)
			if pinned {
				name += "-pinned"
			}
			b.Run(name, func(b *testing.B) {
				control(b, v.svc)
				key := fmt.Sprint("bootstrap", v.n, v.conc, pinned)
				fn := bootstraps[key]
				if fn == nil {
					s := setup(b, v.n)
					fn = startBootstrap(parent, info, db, s.registry, s.data, v.conc, pinned)
					bootstraps[key] = fn
				} else {
					fn.invoke(b, streamBatch(b, "warm")) // warm at this service time
				}
				var f bootstrapFigures
				for b.Loop() {
					payload := streamBatch(b, "bench")
					f = measureBootstrap(b, fn, info, payload)
					if f.posts != int64(v.n) {
						b.Fatalf("%d posts for %d subscribers", f.posts, v.n)
					}
				}
				f.report(b)
				ratios(b, f.wall, f.cpuPerDelivery)
			})
		}
	}
}
