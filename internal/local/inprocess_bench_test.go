package local_test

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
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
	rt, addr, c, connID := registeredSocket(b, local.Config{Log: zerolog.Nop(), Credentials: aws.Credentials{AccessKeyID: "key", SecretAccessKey: "secret"},
		Region: "us-east-1", MaxOutbound: 1 << 20, MaxOutboundBytes: 1 << 30})
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
