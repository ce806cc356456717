// Package faults runs the built bootstrap under the AWS Lambda runtime interface emulator, as
// Lambda runs it (AWS_LAMBDA_FUNCTION_TIMEOUT=29), on dynalite, posting to a management API that
// injects faults (internal/mgmttest over HTTP: signed requests, 429/403/5xx/slow answers), with
// the chunk queue emulated by the local runtime's SQS (its consumers invoke more emulator
// instances, one invocation at a time each, as Lambda's event source mapping would), and, where a
// case needs it, DynamoDB behind a proxy that can be switched to reset connections or answer 500.
// It has only tests: one per fault of issue 7, each asserting that the invocation answers before
// its deadline, that every live subscriber is delivered, carried to the chunk queue or its record
// reported (counted at the endpoint and in the queue), that every frame carries the event's
// identity, and that every reported record has a log line saying why. Each prints one table line
// (deliveries lost, duplicates, the answer's time against the deadline):
//
//	go test -v -run . ./e2e/faults/ | grep 'FAULTS |'
//
// Two faults of the issue are proved elsewhere, closer to their code: a client that stops reading
// (internal/local TestOneSlowReaderStallsNobody: the local runtime's bounded outbound queue; its
// AWS half, one slow post holding back nobody, is TestOneSlowPostHoldsBackNobody here) and each
// kind of store damage (e2e TestDevRefusesADamagedStore).
package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/realtime-gql/lambdaws/graph/model"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/dynalite"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	"github.com/realtime-gql/lambdaws/internal/testlog"
	dynamostore "github.com/realtime-gql/lambdaws/store/dynamo"
	"github.com/realtime-gql/lambdaws/store/stream"
	"github.com/rs/zerolog"
)

// functionTimeout is the function's timeout in serverless.yml, which the emulator enforces.
const functionTimeout = 29 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	dynalite.StopShared()
	os.Exit(code)
}

// binaries builds bootstrap (for this machine, as make build does for Lambda) and the emulator,
// once per test binary.
func binaries(t testing.TB) (bootstrap, rie string) {
	t.Helper()
	return devproc.BuildLambda(t), devproc.BuildEmulator(t)
}

// ---------------------------------------------------------------------------------------------
// The world a case runs in.

// world is one case's tables, management endpoint, optional chunk queue and optional DynamoDB
// proxy; functions started in it share them.
type world struct {
	t                   testing.TB
	db                  *dynalite.Server
	registry, data      string
	store               *dynamostore.Store // the test's own view of the registry, straight to dynalite
	gw                  *mgmttest.Gateway
	mgmtURL             string
	queue               *chunkQueue // nil: no CHUNK_QUEUE_URL
	proxy               *dynamoProxy
	timeout             time.Duration
	env                 []string // extra environment of every function
	mu                  sync.Mutex
	functions           []*function
	outputOnFailureOnce sync.Once
}

type worldOptions struct {
	// queue emulates the chunk queue with this many consumers (each an emulator instance); 0: no
	// chunk queue.
	queue int
	// proxy puts DynamoDB behind a switchable proxy.
	proxy bool
	// timeout is AWS_LAMBDA_FUNCTION_TIMEOUT; default functionTimeout.
	timeout time.Duration
	// env is extra environment for every function (CHUNK_SIZE=...).
	env []string
}

func newWorld(t testing.TB, o worldOptions) *world {
	t.Helper()
	binaries(t)
	db := dynalite.Shared(t)
	w := &world{t: t, db: db, registry: dynalite.TableName("faults-registry"), data: dynalite.TableName("faults-data"),
		gw: mgmttest.New(), timeout: o.timeout, env: o.env}
	if w.timeout == 0 {
		w.timeout = functionTimeout
	}
	w.store = dynamostore.New(db.Client, dynamostore.Options{RegistryTable: w.registry, DataTable: w.data})
	ctx := context.Background()
	if err := w.store.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, tb := range []string{w.registry, w.data} {
			db.Client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &tb})
		}
	})
	srv := httptest.NewServer(w.gw)
	t.Cleanup(srv.Close)
	w.mgmtURL = srv.URL + "/prod"
	if o.proxy {
		w.proxy = newDynamoProxy(t, db.Endpoint)
	}
	if o.queue > 0 {
		w.queue = newChunkQueue(t, w, o.queue)
	}
	return w
}

// dynamoEndpoint is where the functions reach DynamoDB.
func (w *world) dynamoEndpoint() string {
	if w.proxy != nil {
		return w.proxy.URL
	}
	return w.db.Endpoint
}

// ---------------------------------------------------------------------------------------------
// Functions: bootstrap under the runtime interface emulator.

// function is one emulator instance running bootstrap: one invocation at a time, as one Lambda
// execution environment.
type function struct {
	name string
	addr string
	pid  int // the emulator's, which is also its process group's (bootstrap runs in it)
	out  *testlog.Buffer
	busy sync.Mutex
}

// start runs an emulator instance with bootstrap in the world's configuration.
func (w *world) start(name string) *function {
	t := w.t
	t.Helper()
	bootstrap, rie := binaries(t)
	f := &function{name: name, addr: devproc.FreeAddr(t), out: &testlog.Buffer{}}
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", f.addr, "--runtime-api-address", devproc.FreeAddr(t), bootstrap)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"AWS_REGION=" + dynalite.Region,
		"AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_DYNAMODB=" + w.dynamoEndpoint(),
		"REGISTRY_TABLE=" + w.registry, "DATA_TABLE=" + w.data,
		"WEBSOCKET_ENDPOINT=" + w.mgmtURL,
		"AUTH_MODE=none",
		"LOG_LEVEL=info",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(int(w.timeout/time.Second)),
	}
	if w.queue != nil {
		cmd.Env = append(cmd.Env, "CHUNK_QUEUE_URL="+w.queue.url, "AWS_ENDPOINT_URL_SQS="+w.queue.endpoint)
	}
	cmd.Env = append(cmd.Env, w.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = f.out, f.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.pid = cmd.Process.Pid
	w.mu.Lock()
	w.functions = append(w.functions, f)
	w.mu.Unlock()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		w.outputOnFailureOnce.Do(func() {
			if t.Failed() {
				w.mu.Lock()
				defer w.mu.Unlock()
				for _, f := range w.functions {
					t.Logf("output of %s (last 20 KB):\n%s", f.name, tail(f.out.String(), 20<<10))
				}
			}
		})
	})
	// Warm it: the emulator starts bootstrap at the first invocation (its init), so that a case's
	// invocations run on a warm environment, as most do on AWS. An empty object is refused by the
	// router (an unrecognised payload), which is all the warm-up needs.
	if _, _, err := f.call(context.Background(), []byte(`{}`)); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, f.out.String())
	}
	return f
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// invocation is one answered invoke: the function's answer, how long it took from the request to
// the answer, and the log lines the function and the emulator wrote for it.
type invocation struct {
	body []byte
	took time.Duration
	logs string
}

var requestSeq atomic.Int64

// call invokes the function once and waits for the emulator's REPORT line of the invocation (the
// function's own log lines come before it). An error is a transport failure, a status other than
// 200, or no REPORT line.
func (f *function) call(ctx context.Context, payload []byte) (invocation, string, error) {
	f.busy.Lock() // the emulator serves one invocation at a time
	defer f.busy.Unlock()
	id := fmt.Sprintf("req-%d-%d", os.Getpid(), requestSeq.Add(1))
	before := len(f.out.String())
	var resp *http.Response
	var err error
	var start time.Time
	for deadline := time.Now().Add(30 * time.Second); ; {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+f.addr+facts.InvokePath, bytes.NewReader(payload))
		req.Header.Set("X-Amzn-RequestId", id)
		start = time.Now()
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return invocation{}, id, fmt.Errorf("emulator %s not answering: %w", f.name, err)
		}
		time.Sleep(50 * time.Millisecond) // the emulator is still starting
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return invocation{}, id, err
	}
	if resp.StatusCode != http.StatusOK {
		return invocation{}, id, fmt.Errorf("invoke %s: status %d after %v: %s", f.name, resp.StatusCode, took, body)
	}
	report := "REPORT RequestId: " + id
	for wait := time.Now().Add(10 * time.Second); ; {
		out := f.out.String()
		if i := strings.Index(out[before:], report); i >= 0 {
			end := before + i + strings.IndexByte(out[before+i:]+"\n", '\n')
			return invocation{body: body, took: took, logs: out[before:end]}, id, nil
		}
		if time.Now().After(wait) {
			return invocation{body: body, took: took, logs: out[before:]}, id, fmt.Errorf("no %q line from the emulator", report)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// invoke is call for the test's goroutine; it fails the test on any error, and on an answer
// that came at or after the deadline: "Task timed out" from the emulator, or no answer in time.
func (f *function) invoke(t testing.TB, payload []byte) invocation {
	t.Helper()
	inv, _, err := f.call(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(inv.body), "Task timed out") || strings.Contains(inv.logs, "Task timed out") {
		t.Fatalf("the invocation timed out after %v: %s", inv.took, inv.body)
	}
	return inv
}

// ---------------------------------------------------------------------------------------------
// The chunk queue: the local runtime's SQS emulation, every message sent recorded, consumed by
// emulator instances.

// chunkQueue is the emulated chunk queue. Its consumers invoke a pool of functions, one
// invocation at a time each, once the gate is open; every message sent to it is recorded.
type chunkQueue struct {
	url, endpoint string
	rt            *local.Runtime
	pool          chan *function
	w             *world
	consumers     int

	gateMu sync.Mutex
	gate   chan struct{} // closed: consumers invoke
	closed bool

	mu   sync.Mutex
	sent []fanout.Continuation
	errs []error
}

const chunkQueueName = "lambdaws-faults-chunks"

func newChunkQueue(t testing.TB, w *world, consumers int) *chunkQueue {
	t.Helper()
	q := &chunkQueue{w: w, consumers: consumers, pool: make(chan *function, consumers), gate: make(chan struct{})}
	q.rt = local.New(local.Config{Handler: q, Log: zerolog.Nop(), Credentials: aws.Credentials{AccessKeyID: "faults", SecretAccessKey: "faults"},
		InvokeTimeout: 10 * time.Minute, ScheduleInterval: 24 * time.Hour,
		// As serverless.yml maps the chunk queue: batches of 4, at most `consumers` at once. A
		// failed message comes back a second later (the test need not wait 174 s).
		Queues: []local.QueueConfig{{Name: chunkQueueName, BatchSize: 4, Consumers: consumers, VisibilityTimeout: time.Second,
			MaxReceiveCount: 20}}})
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		q.rt.Serve(ctx, ln)
		close(done)
	}()
	srv := httptest.NewServer(http.HandlerFunc(q.serveSQS))
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	q.endpoint = srv.URL
	q.url = local.QueueURL(srv.Listener.Addr().String(), chunkQueueName)
	return q
}

// startConsumers starts the queue's functions (run it once the world is set up).
func (q *chunkQueue) startConsumers() {
	for i := range q.consumers {
		q.pool <- q.w.start(fmt.Sprintf("chunk-consumer-%d", i+1))
	}
}

// open lets the consumers invoke their functions; until then each holds the batch it took.
func (q *chunkQueue) open() {
	q.gateMu.Lock()
	defer q.gateMu.Unlock()
	if !q.closed {
		close(q.gate)
		q.closed = true
	}
}

// serveSQS records the messages of every SendMessage and SendMessageBatch, then hands the
// request to the emulation.
func (q *chunkQueue) serveSQS(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var in struct {
		MessageBody string `json:"MessageBody"`
		Entries     []struct {
			MessageBody string `json:"MessageBody"`
		} `json:"Entries"`
	}
	json.Unmarshal(body, &in)
	bodies := []string{}
	if in.MessageBody != "" {
		bodies = append(bodies, in.MessageBody)
	}
	for _, e := range in.Entries {
		bodies = append(bodies, e.MessageBody)
	}
	q.mu.Lock()
	for _, b := range bodies {
		c, err := fanout.ParseContinuation([]byte(b))
		if err != nil {
			q.errs = append(q.errs, err)
			continue
		}
		q.sent = append(q.sent, c)
	}
	q.mu.Unlock()
	q.rt.ServeHTTP(w, r)
}

// Invoke is the consumers' handler: an SQS event to the next free function of the pool.
func (q *chunkQueue) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	select {
	case <-q.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var f *function
	select {
	case f = <-q.pool:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { q.pool <- f }()
	inv, _, err := f.call(ctx, payload)
	if err != nil {
		return nil, err
	}
	if strings.Contains(string(inv.body), "Task timed out") {
		return nil, fmt.Errorf("%s: %s", f.name, inv.body)
	}
	return inv.body, nil
}

// continuations returns the continuations sent so far.
func (q *chunkQueue) continuations() []fanout.Continuation {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.errs) > 0 {
		q.w.t.Errorf("messages sent to the chunk queue that are not continuations: %v", q.errs)
	}
	return slices.Clone(q.sent)
}

// idle waits until the queue holds nothing (no message visible, in flight or waiting to come
// back), or fails the test after limit.
func (q *chunkQueue) idle(limit time.Duration) local.QueueStats {
	t := q.w.t
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st, _ := q.rt.Queue(chunkQueueName)
		if st.Visible+st.InFlight+st.Delayed == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the chunk queue still holds work after %v: %+v", limit, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// carriedKeys resolves the continuations of one event to the subscriptions they name: their
// keys, or the topic rows in their ranges (read from the registry as the consumer would).
func (w *world) carriedKeys(cs []fanout.Continuation, eventID string) map[string]int {
	t := w.t
	t.Helper()
	keys := map[string]int{}
	for _, c := range cs {
		if c.Event.ID != eventID {
			continue
		}
		if c.Keys != nil {
			for _, k := range c.Keys {
				keys[k.ConnectionID]++
			}
			continue
		}
		for pg, err := range w.store.TopicPages(context.Background(), c.Event.Topic, c.After, c.Until) {
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range pg.Subs {
				keys[s.ConnectionID]++
			}
		}
	}
	return keys
}

// ---------------------------------------------------------------------------------------------
// DynamoDB behind a switchable proxy.

// Proxy modes.
const (
	dynamoUp    int32 = iota // every request reaches dynalite
	dynamoReset              // every connection is closed without an answer (an unreachable endpoint)
	dynamo500                // every request is answered 500 InternalServerError
	dynamoHang               // every request is held unanswered until its client gives up
)

type dynamoProxy struct {
	URL      string
	mode     atomic.Int32
	requests atomic.Int64 // requests that reached dynalite
	refused  atomic.Int64 // requests reset or answered 500
}

func newDynamoProxy(t testing.TB, target string) *dynamoProxy {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &dynamoProxy{}
	closing := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p.mode.Load() {
		case dynamoReset:
			p.refused.Add(1)
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.(*net.TCPConn).SetLinger(0) // a reset, not an orderly close
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case dynamo500:
			p.refused.Add(1)
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}`)
		case dynamoHang:
			p.refused.Add(1)
			select {
			case <-r.Context().Done():
			case <-closing:
			}
		default:
			p.requests.Add(1)
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() {
		close(closing)
		srv.Close()
	})
	p.URL = srv.URL
	return p
}

func (p *dynamoProxy) set(mode int32) { p.mode.Store(mode) }

// ---------------------------------------------------------------------------------------------
// The management endpoint's faults.

// throttle is a token bucket: rate tokens a second, at most burst saved up. Posts above the rate
// are answered 429 LimitExceededException, as API Gateway does when its bucket is empty.
type throttle struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
	off    bool
}

func newThrottle(rate, burst float64) *throttle {
	return &throttle{rate: rate, burst: burst, tokens: burst, last: time.Now()}
}

func (th *throttle) take() bool {
	th.mu.Lock()
	defer th.mu.Unlock()
	if th.off {
		return true
	}
	now := time.Now()
	th.tokens = min(th.burst, th.tokens+now.Sub(th.last).Seconds()*th.rate)
	th.last = now
	if th.tokens >= 1 {
		th.tokens--
		return true
	}
	return false
}

func (th *throttle) lift() {
	th.mu.Lock()
	th.off = true
	th.mu.Unlock()
}

// fault is the injector of a throttle: posts above its rate answered 429.
func (th *throttle) fault(c mgmttest.Call) mgmttest.Fault {
	if c.Op == mgmttest.Post && !th.take() {
		return mgmttest.Fault{Status: http.StatusTooManyRequests}
	}
	return mgmttest.Fault{}
}

// ---------------------------------------------------------------------------------------------
// Subscribers and records.

func topicOf(room string) string { return "messageAdded?roomId=" + room }

func queryOf(room string) string {
	return fmt.Sprintf(`subscription { messageAdded(roomId: %q) { id roomId text } }`, room)
}

// seed writes n subscriptions of a room's topic (the topic rows the fan-out reads, as the
// DynamoDB store writes them) with BatchWriteItem, 8 requests at a time, and returns their
// connection ids.
func (w *world) seed(room string, n int) []string {
	t := w.t
	t.Helper()
	ctx := context.Background()
	topic, query := topicOf(room), queryOf(room)
	exp := time.Now().Add(24 * time.Hour).UTC()
	str := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	ids := make([]string, n)
	reqs := make([]types.WriteRequest, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%06d=", room, i)
		reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			"pk": str("topic#" + topic), "sk": str(ids[i] + "#1"), "connectionId": str(ids[i]), "id": str("1"),
			"topic": str(topic), "subprotocol": str(gqlws.TransportWS), "query": str(query),
			"createdAt": str(time.Now().UTC().Format(time.RFC3339Nano)), "expiresAt": str(exp.Format(time.RFC3339Nano)),
			"ttl": &types.AttributeValueMemberN{Value: strconv.FormatInt(exp.Unix()+1, 10)},
		}}}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	var failed atomic.Value
	for len(reqs) > 0 {
		k := min(25, len(reqs))
		batch := reqs[:k]
		reqs = reqs[k:]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for len(batch) > 0 {
				out, err := w.db.Client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{w.registry: batch}})
				if err != nil {
					failed.Store(err)
					return
				}
				batch = out.UnprocessedItems[w.registry]
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	got := 0
	for pg, err := range w.store.TopicPages(ctx, topic, "", "") {
		if err != nil {
			t.Fatal(err)
		}
		got += len(pg.Subs)
	}
	if got != n {
		t.Fatalf("the registry holds %d subscriptions of %s, want %d", got, topic, n)
	}
	return ids
}

var seqBase = time.Now().UnixNano() / 1000

// record is one stream record: a message inserted into a room, with a fresh event id and
// sequence number.
type record struct {
	room, text string
	ev         events.DynamoDBEventRecord
}

func (r record) ID() string  { return r.ev.EventID }
func (r record) Seq() string { return r.ev.Change.SequenceNumber }

var recordSeq atomic.Int64

func newRecord(t testing.TB, w *world, room string) record {
	t.Helper()
	n := recordSeq.Add(1)
	text := fmt.Sprintf("message %d to %s", n, room)
	item := apptest.MessageItem(t, model.Message{ID: fmt.Sprintf("01JFAULT%018d", n), RoomID: room, Author: "ann", Text: text, CreatedAt: time.Now()})
	rec, err := stream.ChangeRecord(stream.Insert, nil, item, uint64(seqBase+n),
		"arn:aws:dynamodb:us-east-1:123456789012:table/"+w.data+"/stream/2026-11-26T00:00:00.000", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec.EventID = fmt.Sprintf("%032x", rand.Uint64()<<1|uint64(n))
	return record{room: room, text: text, ev: rec}
}

func batchOf(recs ...record) []byte {
	ev := events.DynamoDBEvent{}
	for _, r := range recs {
		ev.Records = append(ev.Records, r.ev)
	}
	b, _ := json.Marshal(ev)
	return b
}

// ---------------------------------------------------------------------------------------------
// What reached the subscribers, what was carried, what was reported: the accounting of a case.

// frame is a delivered next message, as the fan-out frames it.
type frame struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Payload struct {
		Data struct {
			MessageAdded struct{ ID, RoomID, Text string } `json:"messageAdded"`
		} `json:"data"`
		Extensions struct {
			Event *struct {
				ID  string `json:"id"`
				Seq string `json:"seq"`
			} `json:"event"`
		} `json:"extensions"`
	} `json:"payload"`
}

// deliveries returns, per connection, how many successful posts delivered record r, checking
// that every successful post of the endpoint is a well-formed frame carrying the identity of
// one of recs (its event id and sequence number) and the content of that record.
func (w *world) deliveries(recs ...record) []map[string]int {
	t := w.t
	t.Helper()
	byID := map[string]int{}
	for i, r := range recs {
		byID[r.ID()] = i
	}
	out := make([]map[string]int, len(recs))
	for i := range out {
		out[i] = map[string]int{}
	}
	bad := 0
	for _, c := range w.gw.Calls() {
		if c.Op != mgmttest.Post || !c.OK() {
			continue
		}
		var f frame
		err := json.Unmarshal(c.Data, &f)
		ev := f.Payload.Extensions.Event
		if err != nil || f.Type != "next" || f.ID != "1" || ev == nil {
			if bad++; bad <= 3 {
				t.Errorf("a post to %s without the event's identity in payload.extensions.event: %s", c.ConnectionID, c.Data)
			}
			continue
		}
		i, ok := byID[ev.ID]
		if !ok || ev.Seq != recs[i].Seq() || f.Payload.Data.MessageAdded.Text != recs[i].text {
			if bad++; bad <= 3 {
				t.Errorf("a post to %s of an unknown event, or with the wrong seq or content: %s", c.ConnectionID, c.Data)
			}
			continue
		}
		out[i][c.ConnectionID]++
	}
	if bad > 0 {
		t.Errorf("%d posts without a correct event identity", bad)
	}
	return out
}

// reported parses a stream answer: the sequence numbers in batchItemFailures.
func reported(t testing.TB, inv invocation) map[string]bool {
	t.Helper()
	var resp events.DynamoDBEventResponse
	if err := json.Unmarshal(inv.body, &resp); err != nil {
		t.Fatalf("the stream invocation answered %s: %v", inv.body, err)
	}
	out := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		out[f.ItemIdentifier] = true
	}
	return out
}

// logLine is one of the function's JSON log lines.
type logLine map[string]any

func (l logLine) str(k string) string { s, _ := l[k].(string); return s }

// logLines returns the function's JSON log lines among an invocation's output.
func logLines(s string) []logLine {
	var out []logLine
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var m logLine
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// reasons checks that every reported record has exactly one log line naming it (its seq), with
// its status, reason and error, and returns each one's reason.
func reasons(t testing.TB, inv invocation, reps map[string]bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	lines := map[string]int{}
	for _, l := range logLines(inv.logs) {
		msg := l.str("message")
		if !strings.HasPrefix(msg, "stream record ") || !strings.Contains(msg, "reported") {
			continue
		}
		seq := l.str("seq")
		lines[seq]++
		if l.str("reason") == "" && l.str("status") != "carried" || l.str("error") == "" {
			t.Errorf("the log line of reported record %s does not say why: %v", seq, l)
		}
		out[seq] = l.str("status") + "/" + l.str("reason") + ": " + l.str("error")
	}
	for seq := range reps {
		if lines[seq] != 1 {
			t.Errorf("reported record %s has %d log lines saying why, want 1:\n%s", seq, lines[seq], inv.logs)
		}
	}
	for seq := range lines {
		if !reps[seq] {
			t.Errorf("a log line reports record %s, which the answer does not", seq)
		}
	}
	return out
}

// row is one case's line of the closing note's table.
type row struct {
	subscribers, delivered, queued int
	reported                       int
	lost, duplicates               int
	answer                         time.Duration // the latest answer of the case's stream invocations
	deadline                       time.Duration
	note                           string
}

// log prints the case's table line.
func (r row) log(t testing.TB) {
	t.Helper()
	t.Logf("FAULTS | %-44s | subscribers %6d | delivered %6d | queued %5d | reported %2d | lost %d | duplicates %d | answer %6.2f s of %2.0f s | %s",
		t.Name(), r.subscribers, r.delivered, r.queued, r.reported, r.lost, r.duplicates, r.answer.Seconds(), r.deadline.Seconds(), r.note)
}

// account checks one record's outcome: every live subscriber was delivered, sent to the chunk
// queue (queued), or the record was reported; nobody was delivered twice, nor, while the queue is
// held (not consumed yet), both delivered and queued (its continuation would deliver it again).
// It returns the counts for the table.
func account(t testing.TB, live []string, delivered, queued map[string]int, isReported, held bool) (lost, dups, nDelivered, nQueued int) {
	t.Helper()
	for _, id := range live {
		d, c := delivered[id], queued[id]
		if d > 0 {
			nDelivered++
		}
		if c > 0 {
			nQueued++
		}
		if held {
			dups += max(d-1, 0) + max(c-1, 0)
			if d > 0 && c > 0 {
				dups++ // queued although delivered: the continuation would deliver it again
			}
		} else {
			dups += max(d-1, 0)
		}
		if d == 0 && c == 0 && !isReported {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d live subscribers neither delivered, carried nor reported (lost)", lost)
	}
	return lost, dups, nDelivered, nQueued
}

// deadlineOK checks an answer against the deadline and logs it.
func deadlineOK(t testing.TB, what string, inv invocation, timeout time.Duration) {
	t.Helper()
	if inv.took >= timeout {
		t.Errorf("%s answered after %v, at or past the %v deadline", what, inv.took, timeout)
	}
	t.Logf("%s answered after %.2f s, %.2f s before the %v deadline", what, inv.took.Seconds(), (timeout - inv.took).Seconds(), timeout)
}
