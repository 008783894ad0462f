package sync_test

import (
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/mpgo/core/errs"
	mpsync "github.com/mpgo/mpgo/core/sync"
)

func TestLockRegion(t *testing.T) {
	mem := newSegment(t).Bytes()
	if _, err := mpsync.NewLock(mem[:mpsync.LockSize-1]); !errors.Is(err, errs.ErrValue) {
		t.Fatalf("NewLock(short) = %v, want ErrValue", err)
	}
	if _, err := mpsync.OpenRLock(mem[4:]); !errors.Is(err, errs.ErrValue) {
		t.Fatalf("OpenRLock(misaligned) = %v, want ErrValue", err)
	}
}

func TestLock(t *testing.T) {
	mem := newSegment(t).Bytes()
	l, err := mpsync.NewLock(mem)
	if err != nil {
		t.Fatal(err)
	}
	a, b := owner(1), owner(2)
	if ok, _ := l.Acquire(a, 0); !ok || !l.Locked() || !l.IsMine(a) || l.IsMine(b) {
		t.Fatal("try-acquire of a free Lock failed")
	}
	if ok, _ := l.Acquire(a, 0); ok {
		t.Fatal("Lock acquired twice")
	}
	start := time.Now()
	if ok, _ := l.Acquire(b, 30*time.Millisecond); ok {
		t.Fatal("held Lock acquired")
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("timed acquire gave up after %v", d)
	}
	// Any owner may release a Lock, as with multiprocessing.Lock.
	if err := l.Release(b); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(a); !errors.Is(err, errs.ErrTooMany) {
		t.Fatalf("release of an unlocked Lock = %v, want ErrTooMany", err)
	}
	l.Acquire(a, -1)
	within(t, "Acquire woken by Release", func() {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			time.Sleep(20 * time.Millisecond)
			l.Release(a)
		})
		if ok, _ := l.Acquire(b, -1); !ok || !l.IsMine(b) {
			t.Error("blocked Acquire failed")
		}
	})
}

func TestRLock(t *testing.T) {
	mem := newSegment(t).Bytes()
	r, err := mpsync.NewRLock(mem)
	if err != nil {
		t.Fatal(err)
	}
	a, b := owner(1), owner(2)
	for i := 1; i <= 3; i++ {
		if ok, _ := r.Acquire(a, 0); !ok || r.Count(a) != i {
			t.Fatalf("recursive acquire %d: count %d", i, r.Count(a))
		}
	}
	if ok, _ := r.Acquire(b, 10*time.Millisecond); ok || r.Count(b) != 0 {
		t.Fatal("RLock acquired by a second owner")
	}
	if err := r.Release(b); !errors.Is(err, errs.ErrNotOwner) {
		t.Fatalf("release by a non-owner = %v, want ErrNotOwner", err)
	}
	for range 3 {
		if err := r.Release(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Release(a); !errors.Is(err, errs.ErrNotOwner) {
		t.Fatalf("release of an unlocked RLock = %v, want ErrNotOwner", err)
	}
	if ok, _ := r.Acquire(b, 0); !ok || !r.IsMine(b) || r.IsMine(a) {
		t.Fatal("released RLock not free")
	}
}

// TestLockHammer guards a Go variable, not shared memory, so that the race
// detector checks the happens-before edges the locks report.
func TestLockHammer(t *testing.T) {
	for _, kind := range []string{"Lock", "RLock"} {
		t.Run(kind, func(t *testing.T) {
			mem := newSegment(t).Bytes()
			var l mpsync.Locker
			if kind == "Lock" {
				l, _ = mpsync.NewLock(mem)
			} else {
				l, _ = mpsync.NewRLock(mem)
			}
			var n uint64
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() { HammerLock(l, owner(g+1), &n, 10000) })
			}
			within(t, "hammer", wg.Wait)
			if n != 8*10000 {
				t.Fatalf("%d increments, want %d", n, 8*10000)
			}
		})
	}
}

func TestLockProcesses(t *testing.T) {
	for _, kind := range []string{"lock", "rlock"} {
		t.Run(kind, func(t *testing.T) {
			seg := newSegment(t)
			mem := seg.Bytes()
			var l mpsync.Locker
			if kind == "lock" {
				l, _ = mpsync.NewLock(mem[offLock:])
			} else {
				l, _ = mpsync.NewRLock(mem[offRLock:])
			}
			c1, out1 := startChild(t, kind+"-hammer", seg)
			c2, out2 := startChild(t, kind+"-hammer", seg)
			expectLine(t, out1, "ready")
			expectLine(t, out2, "ready")
			HammerLock(l, owner(1), counter(mem), 10000)
			for _, c := range []interface{ Wait() error }{c1, c2} {
				if err := c.Wait(); err != nil {
					t.Fatalf("child: %v", err)
				}
			}
			if n := *counter(mem); n != 3*10000 {
				t.Fatalf("%d increments, want %d", n, 3*10000)
			}
		})
	}
}

// TestLockOwnerDeath has a child take a lock and die holding it, killed or
// by exiting (it then stays a zombie, unreaped); the next acquirer must get
// the lock soon and hear of the death.
func TestLockOwnerDeath(t *testing.T) {
	for _, role := range []string{"lock-kill", "lock-exit", "rlock-kill", "rlock-exit"} {
		t.Run(role, func(t *testing.T) {
			seg := newSegment(t)
			mem := seg.Bytes()
			var l mpsync.Locker
			if strings.HasPrefix(role, "lock") {
				l, _ = mpsync.NewLock(mem[offLock:])
			} else {
				l, _ = mpsync.NewRLock(mem[offRLock:])
			}
			died := make(chan uint32, 1)
			mpsync.OnOwnerDied = func(kind string, pid uint32) { died <- pid }
			t.Cleanup(func() { mpsync.OnOwnerDied = nil })

			cmd, out := startChild(t, role, seg)
			expectLine(t, out, "held")
			if strings.HasSuffix(role, "kill") {
				cmd.Process.Signal(syscall.SIGKILL)
			}
			ok, err := l.Acquire(owner(1), 3*time.Second)
			if !ok || err != nil {
				t.Fatalf("Acquire after the owner died = %v, %v", ok, err)
			}
			select {
			case pid := <-died:
				if pid != uint32(cmd.Process.Pid) {
					t.Fatalf("OnOwnerDied(%d), want the child %d", pid, cmd.Process.Pid)
				}
			default:
				t.Fatal("OnOwnerDied not called")
			}
			if err := l.Release(owner(1)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
