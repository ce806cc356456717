package dynalite

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/testenv"
)

// TestSurvivesAbortedRequests: a client that goes away in the middle of a request (a function
// whose deadline cut a DynamoDB call, or one killed when its test ended) must not take dynalite
// down for every later test of the binary. dynalite 4.0.0 throws from its request's error
// handler, and the uncaught "aborted" (ECONNRESET) ended the process: every later call was
// refused (architect/dynalite#183).
func TestSurvivesAbortedRequests(t *testing.T) {
	node, modules := testenv.Node(t, devproc.Root(t), "dynalite")
	s, err := start(node, modules)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	u, _ := url.Parse(s.Endpoint)

	for i := range 3 {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatalf("after %d aborted requests: %v\n%s", i, err, s.output.String())
		}
		// The headers promise a body of 1,000 bytes; 10 are sent, then the connection goes.
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-amz-json-1.0\r\n"+
			"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 1000\r\n\r\n{\"Limit\":1", u.Host)
		time.Sleep(100 * time.Millisecond) // dynalite is reading the body
		if i%2 == 0 {
			c.(*net.TCPConn).SetLinger(0) // a reset, as a killed process's socket
		}
		c.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := s.Client.ListTables(ctx, &dynamodb.ListTablesInput{})
		if err == nil {
			break
		}
		select {
		case <-s.exited:
			t.Fatalf("dynalite ended after clients aborted their requests:\n%s", s.output.String())
		case <-ctx.Done():
			t.Fatalf("dynalite does not answer after clients aborted their requests: %v\n%s", err, s.output.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	select {
	case <-s.exited:
		t.Fatalf("dynalite ended after clients aborted their requests:\n%s", s.output.String())
	default:
	}
}
