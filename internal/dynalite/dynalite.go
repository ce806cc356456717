// Package dynalite runs dynalite, a DynamoDB-compatible server from npm, as a child process for integration tests.
//
// One dynalite serves a whole test binary: the first call to Shared starts it, and StopShared (called
// from TestMain after m.Run) ends it. Tests keep apart by using uniquely named tables (TableName).
//
// dynalite answers the DynamoDB API, but has no transactions, no TTL process (UpdateTimeToLive is
// an unknown operation), no streams (StreamSpecification is accepted and ignored), and ignores
// request parameters it does not know, such as ReturnValuesOnConditionCheckFailure.
package dynalite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/testenv"
	"github.com/realtime-gql/lambdaws/internal/testlog"
)

// Region is the region the clients are configured with.
const Region = "us-east-1"

// readyTimeout bounds how long a starting dynalite may take to answer.
const readyTimeout = 30 * time.Second

// A Server is a running dynalite.
type Server struct {
	// Endpoint is its base URL, http://127.0.0.1:port.
	Endpoint string
	// Client is a DynamoDB client for Endpoint (static credentials, region us-east-1).
	Client *dynamodb.Client

	cmd    *exec.Cmd
	output *testlog.Buffer
	exited chan struct{} // closed when the process has ended
}

var (
	sharedMu  sync.Mutex
	shared    *Server
	sharedErr error
)

// Shared returns the test binary's dynalite, starting it on first use. Without Node or the npm
// package it skips the test (fails it in CI). Call StopShared from TestMain to end it.
func Shared(t testing.TB) *Server {
	t.Helper()
	node, modules := testenv.Node(t, devproc.Root(t), "dynalite")
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = start(node, modules)
	}
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// StopShared ends the dynalite Shared started, if any.
func StopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.stop()
		shared = nil
	}
}

var tableSeq atomic.Int64

// TableName returns a table name no other call in this process returns, made from prefix.
func TableName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), tableSeq.Add(1))
}

// start runs dynalite on a free port and waits until it answers. A port taken between choosing
// and binding it shows as an early exit, and is retried with another port.
func start(node, modules string) (*Server, error) {
	var err error
	for range 3 {
		var s *Server
		if s, err = startOnce(node, modules); err == nil {
			return s, nil
		}
	}
	return nil, err
}

// keepServing runs dynalite's command line (the script named by the first argument, given the
// rest) so that a client going away in the middle of a request does not end the server: dynalite
// 4.0.0 throws the request's "aborted" error (ECONNRESET) from its error handler, which would end
// the process and refuse every later call of the test binary (architect/dynalite#183). Such an
// error is written to the output and the server goes on; any other uncaught error still ends it.
const keepServing = `process.on('uncaughtException', (err) => {
  if (err && err.code === 'ECONNRESET') {
    console.error('dynalite: a client went away during its request:', err.message)
    return
  }
  console.error(err)
  process.exit(1)
})
require(process.argv[1])`

func startOnce(node, modules string) (*Server, error) {
	port, err := devproc.FreePort()
	if err != nil {
		return nil, fmt.Errorf("dynalite: %w", err)
	}
	cmd := exec.Command(node, "-e", keepServing, filepath.Join(modules, "dynalite", "cli.js"),
		"--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(cmd.SysProcAttr)
	s := &Server{
		Endpoint: "http://127.0.0.1:" + strconv.Itoa(port),
		cmd:      cmd,
		output:   &testlog.Buffer{},
		exited:   make(chan struct{}),
	}
	cmd.Stdout, cmd.Stderr = s.output, s.output

	// The parent-death signal is sent when the thread that started the child ends, not the
	// process; the goroutine holds its thread for as long as the child runs.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			runtime.UnlockOSThread()
			return
		}
		started <- nil
		cmd.Wait()
		close(s.exited)
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("dynalite: start: %w", err)
	}

	if err := s.waitReady(); err != nil {
		s.stop()
		return nil, fmt.Errorf("dynalite: %w\n%s", err, s.output.String())
	}
	s.Client = dynamodb.New(dynamodb.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("dynalite", "dynalite", ""),
	})
	return s, nil
}

// waitReady polls the health check (a GET answers "healthy: ...") until it succeeds.
func (s *Server) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return errors.New("exited before answering")
		case <-ctx.Done():
			return fmt.Errorf("not answering after %v", readyTimeout)
		case <-time.After(delay):
		}
	}
}

// stop kills dynalite's process group and waits for the process to end.
func (s *Server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
}

// setParentDeathSignal makes the kernel kill dynalite if the test binary dies without stopping it
// (a panic, or go test's timeout), where the kernel can (Pdeathsig exists on Linux only).
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
}
