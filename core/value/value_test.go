package value_test

import (
	"os"
	gosync "sync"
	"testing"

	"github.com/mpgo/mpgo/core/shm"
	"github.com/mpgo/mpgo/core/sync"
	"github.com/mpgo/mpgo/core/value"
)

func TestValueUpdatesAreExact(t *testing.T) {
	a, err := shm.NewArena(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Segment().Close()
	lockOff, _ := a.Alloc(sync.RLockSize, 16)
	valOff, _ := a.Alloc(8, 8)
	mem := a.Bytes()
	lock, err := sync.NewRLock(mem[lockOff : lockOff+sync.RLockSize])
	if err != nil {
		t.Fatal(err)
	}
	v, err := value.ViewValue[int64](mem[valOff:valOff+8], lock)
	if err != nil {
		t.Fatal(err)
	}
	var wg gosync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := sync.Owner{Pid: uint32(os.Getpid()), Tid: uint32(g + 1)}
			for range 2000 {
				if err := v.Update(o, func(x int64) int64 { return x + 1 }); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	o := sync.Owner{Pid: uint32(os.Getpid()), Tid: 99}
	if got, _ := v.Get(o); got != 16000 {
		t.Fatalf("value = %d, want 16000", got)
	}
}

func TestArrayView(t *testing.T) {
	mem := make([]byte, 64)
	arr, err := value.View[float64](mem, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := sync.Owner{Pid: 1, Tid: 1}
	for i := range arr.Len() {
		if err := arr.Set(o, i, float64(i)/2); err != nil {
			t.Fatal(err)
		}
	}
	if x, _ := arr.Get(o, 5); x != 2.5 || arr.Raw()[7] != 3.5 {
		t.Fatalf("got %v, raw %v", x, arr.Raw())
	}
	if _, err := value.View[float64](mem, 9, nil); err == nil {
		t.Fatal("View accepted memory too small")
	}
	if _, err := value.View[int32](mem[1:], 2, nil); err == nil {
		t.Fatal("View accepted misaligned memory")
	}
}
