package mgmt

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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
)

// The benchmarks post to a local TLS management endpoint that runs in a child process (this
// test binary re-executed with benchServerEnv set), so that the B/op, allocs/op and process CPU
// they report are the client's alone.
const benchServerEnv = "MGMT_BENCH_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) != "" {
		runBenchServer()
		return
	}
	code := m.Run()
	stopBenchServer()
	os.Exit(code)
}

// benchServerInfo is what the child prints on its first line.
type benchServerInfo struct {
	H1, H2, Control string
	Cert            []byte // DER of the servers' certificate
}

// runBenchServer serves @connections posts over TLS on two listeners, HTTP/1.1 only and
// HTTP/1.1+HTTP/2, each answering 200 after the service time the control port sets; it counts
// the connections opened (ConnState) and exits when its stdin closes.
func runBenchServer() {
	var delay atomic.Int64
	var conns, reqs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		reqs.Add(1)
		if d := time.Duration(delay.Load()); d > 0 {
			time.Sleep(d)
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	})
	start := func(h2 bool) *httptest.Server {
		s := httptest.NewUnstartedServer(h)
		s.EnableHTTP2 = h2
		s.Config.ErrorLog = log.New(io.Discard, "", 0)
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}
		s.StartTLS()
		return s
	}
	h1, h2 := start(false), start(true)
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := r.URL.Query().Get("delay"); d != "" {
			v, _ := time.ParseDuration(d)
			delay.Store(int64(v))
		}
		fmt.Fprintf(w, "%d %d", conns.Load(), reqs.Load())
	}))
	info, _ := json.Marshal(benchServerInfo{H1: h1.URL, H2: h2.URL, Control: ctl.URL, Cert: h1.Certificate().Raw})
	fmt.Printf("%s\n", info)
	io.Copy(io.Discard, os.Stdin) // until the parent goes away
	h1.Close()
	h2.Close()
	ctl.Close()
}

var bench struct {
	once  sync.Once
	cmd   *exec.Cmd
	stdin io.Closer
	info  benchServerInfo
	pool  *x509.CertPool
	err   error
}

func benchServer(b testing.TB) *benchServerInfo {
	b.Helper()
	bench.once.Do(func() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), benchServerEnv+"=1")
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			bench.err = err
			return
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			bench.err = err
			return
		}
		if bench.err = cmd.Start(); bench.err != nil {
			return
		}
		bench.cmd, bench.stdin = cmd, stdin
		line, err := bufio.NewReader(stdout).ReadBytes('\n')
		if err != nil {
			bench.err = fmt.Errorf("bench server: %w", err)
			return
		}
		if bench.err = json.Unmarshal(line, &bench.info); bench.err != nil {
			return
		}
		cert, err := x509.ParseCertificate(bench.info.Cert)
		if err != nil {
			bench.err = err
			return
		}
		bench.pool = x509.NewCertPool()
		bench.pool.AddCert(cert)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return &bench.info
}

func stopBenchServer() {
	if bench.cmd != nil {
		bench.stdin.Close()
		bench.cmd.Wait()
	}
}

// control sets the service time (when d ≥ 0) and returns the connections opened so far.
func control(b testing.TB, d time.Duration) int64 {
	b.Helper()
	u := bench.info.Control
	if d >= 0 {
		u += "?delay=" + d.String()
	}
	resp, err := http.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	conns, err := strconv.ParseInt(strings.Fields(string(body))[0], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return conns
}

// benchTransport is NewTransport trusting the bench server, optionally with HTTP/2 allowed.
func benchTransport(h2 bool) *http.Transport {
	tr := NewTransport(64)
	tr.TLSClientConfig.RootCAs = bench.pool
	if h2 {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetHTTP2(true)
		tr.Protocols = &p
	}
	return tr
}

// benchFrame is a typical delivery: a graphql-transport-ws next frame of about 200 bytes.
var benchFrame = []byte(`{"id":"01J9Z8Q4M2","type":"next","payload":{"data":{"messageAdded":{"id":"01J9Z8Q4M2XK7W3V5T6R8N0P1Q","roomId":"lobby","author":"ann","text":"hello, world","createdAt":"2026-03-04T05:06:07.123Z"}}}}`)

// benchIDs are connection ids shaped like API Gateway's.
var benchIDs = func() []string {
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("L0SM9cOFv%04dw=", i)
	}
	return ids
}()

// poster posts one frame.
type poster func(ctx context.Context, connID string, data []byte) error

func sdkPoster(endpoint string) poster {
	// The SDK's client exactly as publish.NewClient builds it today (with the test CA).
	hc := awshttp.NewBuildableClient().
		WithTimeout(10 * time.Second).
		WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 64 * 2
			t.MaxIdleConnsPerHost = 64
			t.IdleConnTimeout = 90 * time.Second
			t.TLSClientConfig.RootCAs = bench.pool
		})
	c := apigatewaymanagementapi.NewFromConfig(aws.Config{Region: "eu-west-1", Credentials: testCreds}, func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.HTTPClient = hc
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 5
			so.MaxBackoff = 2 * time.Second
		})
	})
	return func(ctx context.Context, connID string, data []byte) error {
		_, err := c.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(connID), Data: data})
		return err
	}
}

// barePoster is the floor: a signed http.Client loop, v4.Signer and http.NewRequest per post,
// no retries, no error decoding.
func barePoster(endpoint string) poster {
	hc := &http.Client{Transport: benchTransport(false)}
	signer := v4.NewSigner()
	creds := aws.NewCredentialsCache(testCreds)
	return func(ctx context.Context, connID string, data []byte) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/@connections/"+connID, bytes.NewReader(data))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		sum := sha256.Sum256(data)
		cr, err := creds.Retrieve(ctx)
		if err != nil {
			return err
		}
		if err := signer.SignHTTP(ctx, cr, req, hex.EncodeToString(sum[:]), "execute-api", "eu-west-1", time.Now()); err != nil {
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

func mgmtPoster(b testing.TB, endpoint string, h2 bool) poster {
	c, err := New(Config{Endpoint: endpoint, Region: "eu-west-1", Credentials: testCreds, Transport: benchTransport(h2)})
	if err != nil {
		b.Fatal(err)
	}
	return c.Post
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// run posts n frames with workers goroutines.
func run(b *testing.B, post poster, n, workers int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if err := post(ctx, benchIDs[i%int64(len(benchIDs))], benchFrame); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkPost measures one delivery with 64 concurrent workers, as the fan-out posts, for the
// SDK's client (as publish.NewClient builds it), a bare signed http.Client loop (the floor), and
// this package's client over HTTP/1.1 and, for comparison, HTTP/2. ns/op is wall time per
// delivery (1/throughput); cpu-µs/op the process's CPU per delivery; B/op and allocs/op the
// client's; conns the connections the server saw opened during the timed posts (the pool is
// warmed first, so 0 means every post reused a kept-alive connection).
//
//	go test -run '^$' -bench . -benchmem -count 5 ./internal/mgmt/
func BenchmarkPost(b *testing.B) {
	info := benchServer(b)
	for _, svc := range []time.Duration{0, 10 * time.Millisecond} {
		for _, impl := range []string{"sdk", "bare", "mgmt", "mgmt-h2"} {
			b.Run(fmt.Sprintf("svc=%v/%s", svc, impl), func(b *testing.B) {
				control(b, svc)
				var post poster
				switch impl {
				case "sdk":
					post = sdkPoster(info.H1)
				case "bare":
					post = barePoster(info.H1)
				case "mgmt":
					post = mgmtPoster(b, info.H1, false)
				case "mgmt-h2":
					post = mgmtPoster(b, info.H2, true)
				}
				run(b, post, 4*64, 64) // warm: credentials, signing key, keep-alive pool
				conns0 := control(b, -1)
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime()
				run(b, post, b.N, 64)
				cpu := cpuTime() - cpu0
				b.StopTimer()
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
				b.ReportMetric(float64(control(b, -1)-conns0), "conns")
			})
		}
	}
}

// TestBenchServerAnswers keeps the benchmark honest: its server runs in a child process (so the
// benchmark's B/op, allocs/op and CPU are the client's alone), every client variant reaches it,
// and it counts the connections they open.
func TestBenchServerAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	info := benchServer(t)
	if bench.cmd.Process.Pid == os.Getpid() {
		t.Fatal("the bench server runs in the benchmark's process")
	}
	conns0 := control(t, 0)
	ctx := context.Background()
	for name, p := range map[string]poster{
		"sdk": sdkPoster(info.H1), "bare": barePoster(info.H1),
		"mgmt": mgmtPoster(t, info.H1, false), "mgmt-h2": mgmtPoster(t, info.H2, true),
	} {
		if err := p(ctx, "c", benchFrame); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if n := control(t, -1) - conns0; n != 4 {
		t.Fatalf("the server counted %d new connections for 4 fresh clients", n)
	}
}
