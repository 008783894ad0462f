package sync_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpgo/mpgo/core/errs"
	mpsync "github.com/mpgo/mpgo/core/sync"
)

func TestSemaphore(t *testing.T) {
	mem := newSegment(t).Bytes()
	for _, bad := range [][2]int{{-1, 0}, {2, 1}, {0, -1}, {1 << 31, 0}} {
		if _, err := mpsync.NewSemaphore(mem, bad[0], bad[1]); !errors.Is(err, errs.ErrValue) {
			t.Errorf("NewSemaphore(%d, %d) = %v, want ErrValue", bad[0], bad[1], err)
		}
	}
	s, err := mpsync.NewSemaphore(mem, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if ok, _ := s.Acquire(0); !ok {
			t.Fatal("try-acquire failed with units left")
		}
	}
	if ok, _ := s.Acquire(0); ok || s.Value() != 0 {
		t.Fatal("acquired an empty semaphore")
	}
	start := time.Now()
	if ok, _ := s.Acquire(30 * time.Millisecond); ok {
		t.Fatal("acquired an empty semaphore")
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("timed acquire gave up after %v", d)
	}
	if err := s.Release(0); !errors.Is(err, errs.ErrValue) {
		t.Fatalf("Release(0) = %v, want ErrValue", err)
	}
	if err := s.Release(5); err != nil || s.Value() != 5 {
		t.Fatalf("Release(5) = %v, value %d", err, s.Value())
	}
	within(t, "Acquire woken by Release", func() {
		s, _ := mpsync.NewSemaphore(mem, 0, 0)
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			time.Sleep(20 * time.Millisecond)
			s.Release(1)
		})
		if ok, _ := s.Acquire(-1); !ok {
			t.Error("blocked Acquire failed")
		}
	})
}

func TestBoundedSemaphore(t *testing.T) {
	s, err := mpsync.NewSemaphore(newSegment(t).Bytes(), 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(1); !errors.Is(err, errs.ErrTooMany) {
		t.Fatalf("release of a full bounded semaphore = %v, want ErrTooMany", err)
	}
	s.Acquire(0)
	if err := s.Release(2); !errors.Is(err, errs.ErrTooMany) || s.Value() != 1 {
		t.Fatalf("Release(2) = %v, value %d; want ErrTooMany and no change", err, s.Value())
	}
	if err := s.Release(1); err != nil || s.Value() != 2 || s.Max() != 2 {
		t.Fatalf("Release(1) = %v, value %d", err, s.Value())
	}
}

// HammerSemaphore acquires and releases s loops times, checking that no
// more than limit holders are ever inside at once.
func HammerSemaphore(t *testing.T, s *mpsync.Semaphore, inside *int32, limit int32, loops int) {
	for range loops {
		s.Acquire(-1)
		if n := atomic.AddInt32(inside, 1); n > limit {
			t.Errorf("%d holders of a semaphore of %d", n, limit)
		}
		atomic.AddInt32(inside, -1)
		s.Release(1)
	}
}

func TestSemaphoreHammer(t *testing.T) {
	s, _ := mpsync.NewSemaphore(newSegment(t).Bytes(), 3, 3)
	var inside int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { HammerSemaphore(t, s, &inside, 3, 10000) })
	}
	within(t, "hammer", wg.Wait)
	if s.Value() != 3 {
		t.Fatalf("value %d after the hammer", s.Value())
	}
}

func TestSemaphoreProcesses(t *testing.T) {
	seg := newSegment(t)
	s, _ := mpsync.NewSemaphore(seg.Bytes()[offSem:], 0, 0)
	cmd, _ := startChild(t, "sem-release", seg)
	for i := range 1000 {
		if ok, _ := s.Acquire(10 * time.Second); !ok {
			t.Fatalf("acquire %d timed out", i)
		}
	}
	if err := cmd.Wait(); err != nil || s.Value() != 0 {
		t.Fatalf("child: %v; value %d", err, s.Value())
	}
}
