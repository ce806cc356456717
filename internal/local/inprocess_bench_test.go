package local_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/coder/websocket"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
	"github.com/rs/zerolog"
)

// BenchmarkPostToSocket: one post through internal/mgmt's client to a socket of the runtime,
// whose client reads everything, as the fan-out posts in `dev`: in process (the runtime as the
// client's transport, as dev wires it) and, beside it, over loopback HTTP (what dev did before).
// ns/op and allocs/op are the poster's and the runtime's together (one process); the WebSocket
// write and the client's read are in them too.
func BenchmarkPostToSocket(b *testing.B) {
	var mu sync.Mutex
	var connID string
	h := &handler{fn: func(ev map[string]any, raw []byte) ([]byte, error) {
		switch route(ev) {
		case "$connect":
			return wsResponse(200, map[string]string{"Sec-WebSocket-Protocol": "graphql-transport-ws"}, "")
		case "$default":
			mu.Lock()
			connID = ev["requestContext"].(map[string]any)["connectionId"].(string)
			mu.Unlock()
		}
		return wsResponse(200, nil, "")
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	rt := local.New(local.Config{Handler: h, Log: zerolog.Nop(), Credentials: aws.Credentials{AccessKeyID: "key", SecretAccessKey: "secret"},
		Region: "us-east-1", MaxOutbound: 1 << 20, MaxOutboundBytes: 1 << 30})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()

	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, _, err := websocket.Dial(dctx, "ws://"+addr+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	dcancel()
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	c.Write(context.Background(), websocket.MessageText, []byte("hello"))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		id := connID
		mu.Unlock()
		if id != "" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the socket was not registered")
		}
	}
	var received sync.WaitGroup
	received.Go(func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	})
	frame := []byte(`{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"01J9Z8Q4M2XK7W3V5T6R8N0P1Q","roomId":"bench","author":"ann","text":"hello, world","createdAt":"2026-03-04T05:06:07.123Z"}},"extensions":{"event":{"id":"c4ca4238a0b923820dcc509a6f75849b","seq":"4421584500000000017450439091"}}}}`)
	for _, tc := range []struct {
		name      string
		transport func() *mgmt.Client
	}{
		{"in-process", func() *mgmt.Client { return newPoster(b, addr, rt) }},
		{"loopback-http", func() *mgmt.Client { return newPoster(b, addr, nil) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := tc.transport()
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Post(context.Background(), connID, frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	c.CloseNow()
}

func newPoster(b *testing.B, addr string, rt *local.Runtime) *mgmt.Client {
	cfg := mgmt.Config{Endpoint: "http://" + addr, Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("key", "secret", "")}
	if rt != nil {
		cfg.Transport = rt
	}
	p, err := mgmt.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return p
}
