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
	"sync/atomic"
	"unsafe"

	"github.com/mpgo/mpgo/core/shm"
	mpsync "github.com/mpgo/mpgo/core/sync"
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
	v := (*int32)(unsafe.Pointer(&mem[valueOff]))
	me := mpsync.Owner{Pid: uint32(os.Getpid()), Tid: 1}
	for range n {
		if _, err := lock.Acquire(me, -1); err != nil {
			return err
		}
		// A plain read-modify-write, as Python's v.value += 1 does: the lock
		// alone makes it exact.
		atomic.StoreInt32(v, atomic.LoadInt32(v)+1)
		if err := lock.Release(me); err != nil {
			return err
		}
	}
	fmt.Println("counter: done", n)
	return nil
}
