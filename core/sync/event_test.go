package sync_test

import (
	"sync"
	"testing"
	"time"

	mpsync "github.com/mpgo/mpgo/core/sync"
)

func TestEvent(t *testing.T) {
	e, err := mpsync.NewEvent(newSegment(t).Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if e.IsSet() {
		t.Fatal("new Event is set")
	}
	start := time.Now()
	if ok, _ := e.Wait(30 * time.Millisecond); ok {
		t.Fatal("Wait on a clear Event succeeded")
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("Wait gave up after %v", d)
	}
	e.Set()
	e.Set()
	if ok, _ := e.Wait(0); !ok || !e.IsSet() {
		t.Fatal("set Event not seen")
	}
	e.Clear()
	if ok, _ := e.Wait(0); ok || e.IsSet() {
		t.Fatal("cleared Event still set")
	}
	// A waiter woken by Set returns true even if the flag is cleared again
	// before it runs.
	within(t, "Wait woken by Set", func() {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			time.Sleep(20 * time.Millisecond)
			e.Set()
			e.Clear()
		})
		if ok, _ := e.Wait(-1); !ok {
			t.Error("Wait missed a Set")
		}
	})
}

func TestEventProcesses(t *testing.T) {
	seg := newSegment(t)
	e, _ := mpsync.NewEvent(seg.Bytes()[offEvent:])
	cmd, _ := startChild(t, "event-set", seg)
	if ok, _ := e.Wait(10 * time.Second); !ok {
		t.Fatal("Set by the child not seen")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}
