package futex_test

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/internal/futex"
)

// TestMain lets the test binary play a child that exits at once.
func TestMain(m *testing.M) {
	if os.Getenv("MPGO_FUTEX_TEST_EXIT") != "" {
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestWaitTimeout(t *testing.T) {
	var w uint32
	start := time.Now()
	if err := futex.Wait(&w, 0, 20*time.Millisecond); !errors.Is(err, errs.ErrTimeout) {
		t.Fatalf("Wait = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("Wait returned after %v", d)
	}
	if err := futex.Wait(&w, 0, 0); !errors.Is(err, errs.ErrTimeout) {
		t.Fatalf("Wait(0) = %v, want ErrTimeout", err)
	}
	if err := futex.Wait(&w, 1, -1); err != nil {
		t.Fatalf("Wait on a changed word = %v, want nil at once", err)
	}
}

func TestWake(t *testing.T) {
	var w uint32
	done := make(chan error)
	go func() {
		for atomic.LoadUint32(&w) == 0 {
			if err := futex.Wait(&w, 0, -1); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(10 * time.Millisecond)
	atomic.StoreUint32(&w, 1)
	futex.Wake(&w, 1)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken")
	}
}

func TestDeadline(t *testing.T) {
	if d, expired := futex.NewDeadline(-1).Next(-1); d >= 0 || expired {
		t.Fatalf("forever: Next = %v, %v", d, expired)
	}
	if d, _ := futex.NewDeadline(time.Hour).Next(time.Second); d != time.Second {
		t.Fatalf("capped: Next = %v", d)
	}
	if _, expired := futex.NewDeadline(0).Next(-1); !expired {
		t.Fatal("zero timeout not expired")
	}
}

// deadChild returns the pid of a child that has exited, reaped or left as a
// zombie.
func deadChild(t *testing.T, reap bool) uint32 {
	cmd := exec.Command(os.Args[0])
	// Under -race a process sleeps a second at exit, unless told not to.
	cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0", "MPGO_FUTEX_TEST_EXIT=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Wait() })
	if reap {
		cmd.Wait()
	} else {
		// Wait for the exit without reaping: the child is then a zombie.
		for futex.Alive(uint32(cmd.Process.Pid)) {
			time.Sleep(time.Millisecond)
		}
	}
	return uint32(cmd.Process.Pid)
}

func TestAlive(t *testing.T) {
	if !futex.Alive(uint32(os.Getpid())) || !futex.Alive(0) || !futex.Alive(1<<31) {
		t.Fatal("self or unknown pid reported dead")
	}
	if futex.Alive(deadChild(t, true)) {
		t.Fatal("reaped child reported alive")
	}
	if futex.Alive(deadChild(t, false)) {
		t.Fatal("zombie child reported alive")
	}
}

func TestMutexTakeOver(t *testing.T) {
	var w [2]uint64 // State and Pid share an aligned 64-bit word
	words := (*[4]uint32)(unsafe.Pointer(&w))
	m := futex.Mutex{State: &words[0], Pid: &words[1], Tid: &words[2]}
	pid := &words[1]
	dead := deadChild(t, true)
	if ok, _ := m.Lock(dead, 0, 0); !ok {
		t.Fatal("Lock of a free mutex failed")
	}
	// Even a wait shorter than a liveness slice looks before giving up.
	me := uint32(os.Getpid())
	ok, from := m.Lock(me, 7, 10*time.Millisecond)
	if !ok || from != dead || *pid != me || !m.Holds(me, 7) {
		t.Fatalf("Lock = %v, %d; want the lock taken over from %d", ok, from, dead)
	}
	if !m.Unlock() || m.Unlock() {
		t.Fatal("Unlock did not report the lock state")
	}
}

func TestMutexContention(t *testing.T) {
	var w uint64 // State and Pid share an aligned 64-bit word
	words := (*[2]uint32)(unsafe.Pointer(&w))
	m := futex.Mutex{State: &words[0], Pid: &words[1]}
	n := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5000 {
				m.Lock(1, 0, -1)
				n++
				m.Unlock()
			}
		})
	}
	wg.Wait()
	if n != 8*5000 {
		t.Fatalf("n = %d", n)
	}
}
