package fanout

import (
	"context"
	"errors"
	"iter"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadAheadEnds: readAhead yields the pages and the error of its sequence in order, and when
// its caller stops early it cancels the read ahead, which then ends.
func TestReadAheadEnds(t *testing.T) {
	var running atomic.Int32
	errRead := errors.New("read failed")
	// pages yields n pages, then errRead when fail; page 2 and later wait for their context.
	pages := func(n int, fail bool) func(context.Context) iter.Seq2[Page, error] {
		return func(ctx context.Context) iter.Seq2[Page, error] {
			return func(yield func(Page, error) bool) {
				running.Add(1)
				defer running.Add(-1)
				for i := range n {
					if i >= 2 {
						<-ctx.Done()
						yield(Page{}, ctx.Err())
						return
					}
					if !yield(Page{Next: string(rune('a' + i))}, nil) {
						return
					}
				}
				if fail {
					yield(Page{}, errRead)
				}
			}
		}
	}

	var got []string
	for pg, err := range readAhead(context.Background(), pages(2, true)) {
		if err != nil {
			got = append(got, err.Error())
			continue
		}
		got = append(got, pg.Next)
	}
	if want := "[a b read failed]"; fmtSlice(got) != want {
		t.Fatalf("read %v, want %s", got, want)
	}

	// Stopping after the first page: the read ahead of the third, which waits for its context,
	// is cancelled, and ends.
	for range readAhead(context.Background(), pages(5, false)) {
		break
	}
	for deadline := time.Now().Add(5 * time.Second); running.Load() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the read ahead still runs 5 s after its caller stopped")
		}
		time.Sleep(time.Millisecond)
	}

	// A read that ignores its context does not hold the caller that stops.
	release := make(chan struct{})
	defer close(release)
	stuck := func(ctx context.Context) iter.Seq2[Page, error] {
		return func(yield func(Page, error) bool) {
			if !yield(Page{Next: "a"}, nil) {
				return
			}
			<-release
			yield(Page{Next: "b"}, nil)
		}
	}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for range readAhead(context.Background(), stuck) {
			break
		}
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("readAhead waited for a read that ignores its context")
	}
}

// TestReadAheadDeliversTheDeadline: a read cut by the caller's context (the invocation's hard
// deadline) reaches the caller as its error, every time: a sequence that ended without it would
// read as a topic read to its end, and the rest of the topic would be neither delivered nor carried.
func TestReadAheadDeliversTheDeadline(t *testing.T) {
	for i := range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		seq := func(ctx context.Context) iter.Seq2[Page, error] {
			return func(yield func(Page, error) bool) {
				if !yield(Page{Next: "a"}, nil) {
					return
				}
				<-ctx.Done()
				yield(Page{}, ctx.Err())
			}
		}
		var last error
		pages := 0
		for _, err := range readAhead(ctx, seq) {
			if err != nil {
				last = err
				continue
			}
			pages++
			cancel() // the deadline, while the next page is being read
		}
		cancel()
		if pages != 1 || !errors.Is(last, context.Canceled) {
			t.Fatalf("run %d: %d pages, then %v; want 1 page, then the context's error", i, pages, last)
		}
	}
}

func fmtSlice(s []string) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out + "]"
}
