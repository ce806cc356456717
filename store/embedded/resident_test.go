package embedded_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
)

// residentKB is how much of the file at path the process has resident through its mappings
// (the Rss of its entries in /proc/self/smaps), in KiB.
func residentKB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kb, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 6 && strings.Contains(fields[0], "-") {
			in = fields[len(fields)-1] == path
			continue
		}
		if in && len(fields) >= 2 && fields[0] == "Rss:" {
			n, _ := strconv.Atoi(fields[1])
			kb += n
		}
	}
	return kb
}

// TestOpenLeavesFileUnmapped: the check at open reads every page of an existing file, and what
// it read must not stay in the process's resident set: a dev runtime with a large store would
// otherwise hold half its file in memory from the start.
func TestOpenLeavesFileUnmapped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/smaps (Linux)")
	}
	path := filepath.Join(t.TempDir(), "data.db")
	s, err := embedded.Open(path, embedded.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	for i := range 8000 {
		sub := store.Subscription{ConnectionID: fmt.Sprintf("Ab%07d=", i), ID: "1", Topic: "messageAdded?roomId=r" + strconv.Itoa(i%7),
			Subprotocol: "graphql-transport-ws", Query: `subscription { messageAdded(roomId: "r") { id roomId author text createdAt } }`,
			CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.PutSubscription(ctx, sub, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	s, err = embedded.Open(path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := residentKB(t, path)
	// A quarter: the kernel may map a whole large folio of the page cache around each page bbolt
	// reads at open (its meta pages, the freelist, the root), megabytes on recent kernels.
	if limit := int(info.Size()>>10) / 4; got > limit {
		t.Fatalf("after Open, %d KiB of the %d KiB file are resident through the store's mapping, want at most %d (the check's reads left mapped)",
			got, info.Size()>>10, limit)
	}
	// The store still reads: every subscription of a topic, its pages mapped as they are read.
	n := 0
	for pg, err := range s.TopicPages(ctx, "messageAdded?roomId=r0", "", "") {
		if err != nil {
			t.Fatal(err)
		}
		n += len(pg.Subs)
	}
	if n != 1143 {
		t.Fatalf("read %d subscriptions of r0, want 1143", n)
	}
	if residentKB(t, path) == 0 {
		t.Fatal("no page of the file resident after reading a topic: residentKB does not see the mapping")
	}
}
