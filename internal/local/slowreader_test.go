package local_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/coder/websocket"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/realtime-gql/lambdaws/internal/testlog"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// smallReadBuffers is an HTTP client (for websocket.Dial) whose connections have a small kernel
// receive buffer, so that a client that stops reading is soon seen as one.
func smallReadBuffers() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, a)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096)
		}
		return c, err
	}}}
}

// smallBuffers makes every accepted connection's kernel send buffer small, so that a client that
// stops reading fills it after a few KB instead of megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestOneSlowReaderStallsNobody (issue 7, defect 7): among 100 clients one stops reading. Posts
// are accepted without waiting for clients; the other 99 receive every message, in order,
// promptly (the latencies are logged, not asserted); the slow one's outbound queue overflows, it
// is closed with 1008 and later posts to it answer 410; no connection ever holds more than its
// bound.
func TestOneSlowReaderStallsNobody(t *testing.T) {
	const (
		clients  = 100
		messages = 100
		maxBytes = 64 << 10
	)
	var mu sync.Mutex
	idOf := map[string]string{} // client name → connection id
	var disconnects []string
	h := &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		rc := ev["requestContext"].(map[string]any)
		switch route(ev) {
		case "$connect":
			return wsResponse(200, map[string]string{"Sec-WebSocket-Protocol": "graphql-transport-ws"}, "")
		case "$default":
			mu.Lock()
			idOf[ev["body"].(string)] = rc["connectionId"].(string)
			mu.Unlock()
		case "$disconnect":
			mu.Lock()
			disconnects = append(disconnects, fmt.Sprintf("%s %v", rc["connectionId"], rc["disconnectStatusCode"]))
			mu.Unlock()
		}
		return wsResponse(200, nil, "")
	}}
	logs := &testlog.Buffer{}
	// No scheduled sweep event: the handler above knows WebSocket routes only, and on a loaded
	// machine the test outlasts the default minute. The write timeout is far away: on a loaded
	// machine the slow client's blocked write could otherwise pass the default 10 s before its
	// queue overflows (TestStuckWriteDropped tests it).
	rt, addr, stop := serveWith(t, local.Config{Handler: h, Log: zerolog.New(logs), MaxMessage: 4096, MaxOutbound: 256, MaxOutboundBytes: maxBytes,
		WriteTimeout: 5 * time.Minute, Credentials: aws.Credentials{AccessKeyID: "local", SecretAccessKey: "local"}, Region: "us-east-1",
		ScheduleInterval: 24 * time.Hour}, func(ln net.Listener) net.Listener { return smallBuffers{ln} })
	defer stop()

	slowDial := smallReadBuffers() // the slow client's receive buffer is small too
	type client struct {
		name     string
		c        *websocket.Conn
		arrivals []time.Time
		frames   []string
	}
	cs := make([]*client, clients)
	for i := range cs {
		name := fmt.Sprintf("client%03d", i)
		opts := &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}}
		if i == 0 {
			opts.HTTPClient = slowDial
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, _, err := websocket.Dial(dctx, "ws://"+addr+"/graphql", opts)
		dcancel()
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		c.Write(context.Background(), websocket.MessageText, []byte(name))
		cs[i] = &client{name: name, c: c}
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(idOf) == clients })

	// The 99 read everything; client000 reads nothing.
	var readers sync.WaitGroup
	for _, cl := range cs[1:] {
		readers.Go(func() {
			for len(cl.frames) < messages {
				rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, data, err := cl.c.Read(rctx)
				rcancel()
				if err != nil {
					return
				}
				cl.arrivals = append(cl.arrivals, time.Now())
				cl.frames = append(cl.frames, string(data))
			}
		})
	}

	// An attempt is not cut short by the client: a post the runtime has accepted but answered
	// late (the machine loaded) would be sent again, and its copy, arriving after the next
	// message, would read as reordered (it failed so once in a full make test).
	poster, err := mgmt.New(mgmt.Config{Endpoint: "http://" + addr, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""), MaxConns: 32,
		Retry: mgmt.Retry{AttemptTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	// Each message goes to every client, 32 posts in flight, as the fan-out posts; the next
	// message starts once the last one's posts have answered.
	payload := strings.Repeat("x", 2000)
	sent := make([]time.Time, messages)
	var slowErrs []error
	var emu sync.Mutex
	var slowestPost time.Duration
	for m := range messages {
		sent[m] = time.Now()
		var g errgroup.Group
		g.SetLimit(32)
		for _, cl := range cs {
			g.Go(func() error {
				pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer pcancel()
				mu.Lock()
				id := idOf[cl.name]
				mu.Unlock()
				start := time.Now()
				err := poster.Post(pctx, id, fmt.Appendf(nil, `{"m":%d,"p":%q}`, m, payload))
				emu.Lock()
				slowestPost = max(slowestPost, time.Since(start))
				if cl == cs[0] {
					slowErrs = append(slowErrs, err)
				}
				emu.Unlock()
				if cl != cs[0] && err != nil {
					return fmt.Errorf("post %d to %s: %w", m, cl.name, err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	readers.Wait()

	var lat []time.Duration
	for _, cl := range cs[1:] {
		if len(cl.frames) != messages {
			t.Fatalf("%s received %d of %d messages", cl.name, len(cl.frames), messages)
		}
		for m, f := range cl.frames {
			if !strings.HasPrefix(f, fmt.Sprintf(`{"m":%d,`, m)) {
				t.Fatalf("%s message %d is %.20s…: out of order", cl.name, m, f)
			}
			lat = append(lat, cl.arrivals[m].Sub(sent[m]))
		}
	}
	slices.Sort(lat)
	t.Logf("99 readers, %d messages each: post to arrival p50 %v, p99 %v, max %v; slowest post answered in %v",
		messages, lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1], slowestPost)

	// The slow client: accepted until its queue overflowed, then 410 for every later post.
	firstGone := slices.IndexFunc(slowErrs, func(err error) bool { return err != nil })
	if firstGone < 0 {
		t.Fatalf("every post to the client that never reads was accepted: its queue is not bounded")
	}
	for i, err := range slowErrs[firstGone:] {
		if !errors.Is(err, mgmt.ErrGone) {
			t.Fatalf("post %d to the closed slow client: %v, want 410 GoneException", firstGone+i, err)
		}
	}
	t.Logf("the slow client's queue overflowed at post %d", firstGone)
	mu.Lock()
	slowID := idOf[cs[0].name]
	mu.Unlock()
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(disconnects, slowID+" 1008")
	})
	if !strings.Contains(logs.String(), "outbound queue full") {
		t.Fatalf("no log line for the overflow:\n%s", logs.String())
	}
	if peak := rt.OutboundPeak(); peak > maxBytes {
		t.Fatalf("a connection held %d bytes for its client, over the bound %d", peak, maxBytes)
	}
	// Only the slow client was closed.
	mu.Lock()
	defer mu.Unlock()
	if len(disconnects) != 1 {
		t.Fatalf("disconnects %v, want only the slow client's", disconnects)
	}
}

// TestStuckWriteDropped: a client that reads nothing while its queue stays under the bounds loses
// its connection once a write has waited WriteTimeout: dropped (1006 in $disconnect, with a log
// line), and later posts answer 410; a client that reads is untouched.
func TestStuckWriteDropped(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var mu sync.Mutex
	ids := map[string]string{} // first frame → connection id
	var disconnects []string
	h := &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		rc := ev["requestContext"].(map[string]any)
		mu.Lock()
		defer mu.Unlock()
		switch route(ev) {
		case "$connect":
			return wsResponse(200, map[string]string{"Sec-WebSocket-Protocol": "graphql-transport-ws"}, "")
		case "$default":
			ids[ev["body"].(string)] = rc["connectionId"].(string)
		case "$disconnect":
			disconnects = append(disconnects, fmt.Sprintf("%s %v", rc["connectionId"], rc["disconnectStatusCode"]))
		}
		return wsResponse(200, nil, "")
	}}
	logs := &testlog.Buffer{}
	_, addr, stop := serveWith(t, local.Config{Handler: h, Log: zerolog.New(logs), MaxMessage: 64 << 10, MaxOutbound: 1 << 20, MaxOutboundBytes: 64 << 20,
		WriteTimeout: timeout, Credentials: aws.Credentials{AccessKeyID: "local", SecretAccessKey: "local"}, Region: "us-east-1"}, func(ln net.Listener) net.Listener { return smallBuffers{ln} })
	defer stop()

	slowDial := smallReadBuffers()
	conns := map[string]*websocket.Conn{}
	for _, name := range []string{"slow", "reader"} {
		opts := &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}}
		if name == "slow" {
			opts.HTTPClient = slowDial
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, _, err := websocket.Dial(dctx, "ws://"+addr+"/graphql", opts)
		dcancel()
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		c.Write(context.Background(), websocket.MessageText, []byte(name))
		conns[name] = c
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(ids) == 2 })
	mu.Lock()
	slowID, readerID := ids["slow"], ids["reader"]
	mu.Unlock()
	go func() { // the reader reads everything
		for {
			if _, _, err := conns["reader"].Read(context.Background()); err != nil {
				return
			}
		}
	}()

	poster, err := mgmt.New(mgmt.Config{Endpoint: "http://" + addr, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""), Retry: mgmt.Retry{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	post := func(id string) error {
		pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer pcancel()
		return poster.Post(pctx, id, []byte(strings.Repeat("x", 32<<10)))
	}
	// 64 KB into a slow client's 4 KB buffers blocks the runtime's write; the queue (1M
	// messages, 64 MB) never fills.
	start := time.Now()
	var gone error
	for i := 0; i < 200 && gone == nil; i++ {
		if err := post(slowID); err != nil {
			gone = err
			break
		}
		if err := post(readerID); err != nil {
			t.Fatalf("post to the reading client: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !errors.Is(gone, mgmt.ErrGone) {
		t.Fatalf("posts to a client that reads nothing: %v after %v, want 410 once a write has waited %v", gone, time.Since(start), timeout)
	}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(disconnects, slowID+" 1006")
	})
	if !strings.Contains(logs.String(), "read nothing of a write") {
		t.Errorf("no log line for the dropped connection:\n%s", logs.String())
	}
	if err := post(readerID); err != nil {
		t.Errorf("post to the reading client after the drop: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(disconnects) != 1 {
		t.Errorf("disconnects %v, want only the slow client's", disconnects)
	}
}
