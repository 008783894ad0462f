package sync_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mpgo/mpgo/core/errs"
	mpsync "github.com/mpgo/mpgo/core/sync"
)

func TestBarrier(t *testing.T) {
	mem := newSegment(t).Bytes()
	if _, err := mpsync.NewBarrier(mem, 0); !errors.Is(err, errs.ErrValue) {
		t.Fatalf("NewBarrier(0) = %v, want ErrValue", err)
	}
	b, err := mpsync.NewBarrier(mem, 4)
	if err != nil || b.Parties() != 4 {
		t.Fatal(err)
	}
	const cycles = 200
	var seen [cycles][4]int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for c := range cycles {
				i, err := b.Wait(20 * time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[c][i]++
				mu.Unlock()
			}
		})
	}
	within(t, "barrier cycles", wg.Wait)
	for c := range seen {
		if seen[c] != [4]int{1, 1, 1, 1} {
			t.Fatalf("cycle %d handed out indices %v", c, seen[c])
		}
	}
	if b.NWaiting() != 0 || b.Broken() {
		t.Fatal("barrier not idle after the cycles")
	}
}

// waiters starts n goroutines waiting on b and returns a channel of their
// errors, once all n are counted as waiting.
func waiters(t *testing.T, b *mpsync.Barrier, n int) chan error {
	errc := make(chan error, n)
	for range n {
		go func() {
			_, err := b.Wait(20 * time.Second)
			errc <- err
		}()
	}
	waitFor(t, func() bool { return b.NWaiting() == n })
	return errc
}

func expectBroken(t *testing.T, errc chan error, n int) {
	t.Helper()
	for range n {
		select {
		case err := <-errc:
			if !errors.Is(err, errs.ErrBroken) {
				t.Fatalf("Wait = %v, want ErrBroken", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("waiter not released")
		}
	}
}

func TestBarrierAbort(t *testing.T) {
	b, _ := mpsync.NewBarrier(newSegment(t).Bytes(), 3)
	errc := waiters(t, b, 2)
	b.Abort()
	expectBroken(t, errc, 2)
	if !b.Broken() {
		t.Fatal("aborted barrier not broken")
	}
	if _, err := b.Wait(-1); !errors.Is(err, errs.ErrBroken) {
		t.Fatalf("Wait on a broken barrier = %v", err)
	}
	b.Reset()
	if b.Broken() {
		t.Fatal("Reset left the barrier broken")
	}
	errc = waiters(t, b, 2)
	if _, err := b.Wait(-1); err != nil {
		t.Fatalf("Wait after Reset: %v", err)
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

func TestBarrierTimeout(t *testing.T) {
	b, _ := mpsync.NewBarrier(newSegment(t).Bytes(), 3)
	errc := waiters(t, b, 1)
	start := time.Now()
	if _, err := b.Wait(30 * time.Millisecond); !errors.Is(err, errs.ErrBroken) {
		t.Fatalf("timed-out Wait = %v, want ErrBroken", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("Wait gave up after %v", d)
	}
	expectBroken(t, errc, 1)
	if !b.Broken() {
		t.Fatal("timeout did not break the barrier")
	}
}

func TestBarrierReset(t *testing.T) {
	b, _ := mpsync.NewBarrier(newSegment(t).Bytes(), 3)
	errc := waiters(t, b, 2)
	b.Reset()
	expectBroken(t, errc, 2)
	if b.Broken() {
		t.Fatal("Reset left the barrier broken")
	}
	// The barrier works again once the reset waiters have left.
	errc = make(chan error, 3)
	for range 3 {
		go func() {
			_, err := b.Wait(20 * time.Second)
			errc <- err
		}()
	}
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

func TestBarrierProcesses(t *testing.T) {
	seg := newSegment(t)
	b, _ := mpsync.NewBarrier(seg.Bytes()[offBarrier:], 2)
	cmd, _ := startChild(t, "barrier", seg)
	for range 100 {
		if _, err := b.Wait(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}
