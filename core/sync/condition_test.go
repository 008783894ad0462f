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

func TestConditionTimeout(t *testing.T) {
	mem := newSegment(t).Bytes()
	r, _ := mpsync.NewRLock(mem)
	c, err := mpsync.NewCondition(mem[64:], r)
	if err != nil {
		t.Fatal(err)
	}
	a := owner(1)
	if _, err := c.Wait(a, 0); !errors.Is(err, errs.ErrNotOwner) {
		t.Fatalf("Wait without the lock = %v, want ErrNotOwner", err)
	}
	r.Acquire(a, -1)
	r.Acquire(a, -1)
	start := time.Now()
	if ok, err := c.Wait(a, 30*time.Millisecond); ok || err != nil {
		t.Fatalf("Wait = %v, %v; want a timeout", ok, err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("Wait gave up after %v", d)
	}
	if r.Count(a) != 2 {
		t.Fatalf("recursion %d after Wait, want 2", r.Count(a))
	}
}

func TestConditionNotify(t *testing.T) {
	mem := newSegment(t).Bytes()
	l, _ := mpsync.NewLock(mem)
	c, _ := mpsync.NewCondition(mem[64:], l)
	var ready, woken atomic.Int32
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			o := owner(10 + g)
			l.Acquire(o, -1)
			ready.Add(1)
			if ok, err := c.Wait(o, 20*time.Second); !ok || err != nil || !l.IsMine(o) {
				t.Errorf("Wait = %v, %v", ok, err)
			}
			woken.Add(1)
			l.Release(o)
		})
	}
	// Once all are ready and the lock is free, all sit in Wait.
	me := owner(1)
	for {
		l.Acquire(me, -1)
		if ready.Load() == 3 {
			break
		}
		l.Release(me)
		time.Sleep(time.Millisecond)
	}
	c.Notify(1)
	l.Release(me)
	waitFor(t, func() bool { return woken.Load() >= 1 })
	time.Sleep(50 * time.Millisecond)
	if n := woken.Load(); n != 1 {
		t.Fatalf("Notify(1) woke %d", n)
	}
	l.Acquire(me, -1)
	c.NotifyAll()
	l.Release(me)
	within(t, "NotifyAll", wg.Wait)
	c.Notify(1) // with nobody waiting, a no-op
}

func TestConditionProcesses(t *testing.T) {
	seg := newSegment(t)
	mem := seg.Bytes()
	l, _ := mpsync.NewLock(mem[offLock:])
	c, _ := mpsync.NewCondition(mem[offCond:], l)
	cmd, out := startChild(t, "cond-wait", seg)
	expectLine(t, out, "waiting")
	// The child holds the lock until Wait releases it.
	me := owner(1)
	if ok, _ := l.Acquire(me, 10*time.Second); !ok {
		t.Fatal("lock not released by Wait")
	}
	c.Notify(1)
	l.Release(me)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}

// waitFor polls cond until it holds, or fails after a generous bound.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition never came true")
		}
	}
}
