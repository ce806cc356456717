package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/graph/model"
	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
	bolt "go.etcd.io/bbolt"
)

// TestDevRefusesADamagedStore runs `bootstrap dev --data DIR` on a store.db holding messages and
// damaged each way issue 7 found (one 4 KB page overwritten: a panic before; truncated to half:
// `internal error` to every request; emptied: a new empty store), and checks that it refuses to
// start: exit status 1 (not a panic's 2) within seconds, a message naming the file and what to
// do, and the file left byte for byte as it was.
func TestDevRefusesADamagedStore(t *testing.T) {
	bin := devproc.Build(t)
	good := filepath.Join(t.TempDir(), "store.db")
	s, err := embedded.Open(good, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := graph.NewResolver(s)
	if err != nil {
		t.Fatal(err)
	}
	msgs := engine.Table[model.Message](res.Tables)
	at := time.Now().UTC()
	for i := range 306 {
		m := model.Message{ID: store.NewID(at), RoomID: "r1", Author: "ann", Text: fmt.Sprint("message ", i), CreatedAt: at}
		if err := msgs.Create(context.Background(), &m); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// The page the messages' tree starts from.
	db, err := bolt.Open(good, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var root int
	db.View(func(tx *bolt.Tx) error {
		root = int(tx.Bucket([]byte("items")).RootPage())
		return nil
	})
	pageSize := db.Info().PageSize
	db.Close()
	if root == 0 {
		t.Fatal("the items bucket is inline; the test needs more messages")
	}
	overwritten := bytes.Clone(orig)
	copy(overwritten[root*pageSize:(root+1)*pageSize], bytes.Repeat([]byte("damaged!"), pageSize/8))

	for name, b := range map[string][]byte{
		"one 4 KB page overwritten": overwritten,
		"truncated to half":         orig[:len(orig)/2],
		"emptied":                   {},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "store.db")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "dev", "--port", "0", "--data", dir)
			cmd.Env = append(os.Environ(), "LOG_LEVEL=warn")
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("bootstrap dev = %v, want exit status 1\n%s", err, out)
			}
			msg := string(out)
			for _, want := range []string{path, "damaged", "restore it from a backup", "move it away"} {
				if !strings.Contains(msg, want) {
					t.Errorf("output does not say %q:\n%s", want, msg)
				}
			}
			if strings.Contains(msg, "goroutine ") || strings.Contains(msg, "local runtime ready") {
				t.Errorf("output:\n%s", msg)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, b) {
				t.Fatalf("the file changed: %d bytes before, %d after", len(b), len(after))
			}
			t.Logf("%s", bytes.TrimSpace(out))
		})
	}
}
