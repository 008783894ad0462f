// Command counter increments a shared int32 under a shared Lock, both living
// in an mpgo arena that a Python (or any other) process created. It shows a
// Go program sharing mpgo's Value and Lock with Python processes.
//
// usage: counter -ref PID:FD:SIZE -lock OFF -value OFF -n N
//
// The Python side passes its own arena reference (mpgo.heap) and the offsets
// of the Lock and of the Value's memory inside that arena.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/mpgo/mpgo/core/shm"
	mpsync "github.com/mpgo/mpgo/core/sync"
	"github.com/mpgo/mpgo/core/value"
)

func main() {
	ref := flag.String("ref", "", "arena reference pid:fd:size")
	lockOff := flag.Int("lock", -1, "offset of the Lock in the arena")
	valueOff := flag.Int("value", -1, "offset of the int32 value in the arena")
	n := flag.Int("n", 1000, "increments")
	flag.Parse()
	if err := run(*ref, *lockOff, *valueOff, *n); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

func run(ref string, lockOff, valueOff, n int) error {
	r, err := shm.ParseRef(ref)
	if err != nil {
		return err
	}
	a, err := shm.AttachArena(r)
	if err != nil {
		return err
	}
	defer a.Segment().Close()
	mem := a.Bytes()
	if lockOff < 0 || valueOff < 0 || lockOff+mpsync.LockSize > len(mem) || valueOff+4 > len(mem) {
		return fmt.Errorf("offsets out of range")
	}
	lock, err := mpsync.OpenRLock(mem[lockOff : lockOff+mpsync.RLockSize])
	if err != nil {
		return err
	}
	// Python's Value('i') is a C int guarded by an RLock.
	v, err := value.ViewValue[int32](mem[valueOff:valueOff+4], lock)
	if err != nil {
		return err
	}
	me := mpsync.Owner{Pid: uint32(os.Getpid()), Tid: 1}
	for range n {
		// A plain read-modify-write, as Python's v.value += 1 does: the lock
		// alone makes it exact.
		if err := v.Update(me, func(x int32) int32 { return x + 1 }); err != nil {
			return err
		}
	}
	fmt.Println("counter: done", n)
	return nil
}
