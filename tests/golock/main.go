// Command golock is the Go side of tests/test_lock_matrix.py: it holds or
// acquires a Lock, RLock or Semaphore that a Python process made in an mpgo
// arena, through core/sync, so that the test can pit Go against the C fast
// path in every combination.
//
// usage:
//
//	golock -ref PID:FD:SIZE -off N -kind lock|rlock|sem -mode hold
//	    acquires (waiting as long as it takes), prints "held", then
//	    releases when stdin closes (or dies holding, if killed).
//	golock -ref PID:FD:SIZE -off N -kind lock|rlock|sem -mode acquire -timeout T
//	    acquires once, waiting T seconds (< 0: forever, 0: not at all),
//	    prints "took over from PID" if it took the lock from a dead holder,
//	    then "acquired" (and releases) or "not acquired".
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/shm"
	"github.com/mpgo/mpgo/core/sync"
)

// prim is what the three kinds share here.
type prim struct {
	acquire func(timeout time.Duration) (bool, error)
	release func() error
}

func main() {
	ref := flag.String("ref", "", "arena reference pid:fd:size")
	off := flag.Int("off", 0, "offset of the primitive in the arena")
	kind := flag.String("kind", "lock", "lock, rlock or sem")
	mode := flag.String("mode", "acquire", "hold or acquire")
	timeout := flag.Float64("timeout", -1, "seconds to wait (< 0: forever)")
	flag.Parse()
	if err := run(*ref, *off, *kind, *mode, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "golock:", err)
		os.Exit(1)
	}
}

func open(ref string, off int, kind string) (prim, error) {
	r, err := shm.ParseRef(ref)
	if err != nil {
		return prim{}, err
	}
	a, err := shm.AttachArena(r)
	if err != nil {
		return prim{}, err
	}
	mem := a.Bytes()[off : off+sync.LockSize]
	// An RLock's owner is a thread: keep this goroutine on one.
	runtime.LockOSThread()
	o := sync.Owner{Pid: uint32(os.Getpid()), Tid: uint32(unix.Gettid())}
	switch kind {
	case "lock":
		l, err := sync.OpenLock(mem)
		return prim{func(t time.Duration) (bool, error) { return l.Acquire(o, t) },
			func() error { return l.Release(o) }}, err
	case "rlock":
		l, err := sync.OpenRLock(mem)
		return prim{func(t time.Duration) (bool, error) { return l.Acquire(o, t) },
			func() error { return l.Release(o) }}, err
	case "sem":
		s, err := sync.OpenSemaphore(mem)
		return prim{s.Acquire, func() error { return s.Release(1) }}, err
	}
	return prim{}, fmt.Errorf("unknown kind %q", kind)
}

func run(ref string, off int, kind, mode string, timeout float64) error {
	sync.OnOwnerDied = func(_ string, pid uint32) { fmt.Println("took over from", pid) }
	p, err := open(ref, off, kind)
	if err != nil {
		return err
	}
	t := time.Duration(timeout * float64(time.Second))
	if timeout < 0 {
		t = -1
	}
	switch mode {
	case "hold":
		if ok, err := p.acquire(-1); !ok || err != nil {
			return fmt.Errorf("hold: acquired %v: %v", ok, err)
		}
		fmt.Println("held")
		io.Copy(io.Discard, os.Stdin)
		return p.release()
	case "acquire":
		ok, err := p.acquire(t)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Println("not acquired")
			return nil
		}
		fmt.Println("acquired")
		return p.release()
	}
	return fmt.Errorf("unknown mode %q", mode)
}
