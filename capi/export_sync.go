package main

/*
#include <stdint.h>
#include <stddef.h>
*/
import "C"

import (
	"fmt"
	gosync "sync"
	"time"
	"unsafe"

	"github.com/mpgo/mpgo/internal/handles"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/shm"
	"github.com/mpgo/mpgo/core/sync"
)

// takeovers counts robust-lock takeovers until mpgo_takeovers drains it, so
// the caller (the Python fast path) can log them in its own logger.
var takeovers struct {
	mu   gosync.Mutex
	n    int
	last uint32
}

func init() {
	sync.OnOwnerDied = func(kind string, pid uint32) {
		takeovers.mu.Lock()
		takeovers.n++
		takeovers.last = pid
		takeovers.mu.Unlock()
	}
}

func region(mem unsafe.Pointer) []byte { return unsafe.Slice((*byte)(mem), sync.LockSize) }

func seconds(t C.double) time.Duration {
	if t < 0 {
		return -1
	}
	return time.Duration(float64(t) * float64(time.Second))
}

func acquired(ok bool, err error) C.int {
	if err != nil {
		return capiErr(err)
	}
	if ok {
		return 1
	}
	return 0
}

//export goSyncInit
func goSyncInit(mem unsafe.Pointer, kind C.int, value, max C.uint32_t) (rc C.int) {
	defer capiRecover(&rc)
	var err error
	switch kind {
	case sync.KindLock:
		_, err = sync.NewLock(region(mem))
	case sync.KindRLock:
		_, err = sync.NewRLock(region(mem))
	case sync.KindSemaphore:
		_, err = sync.NewSemaphore(region(mem), int(value), int(max))
	default:
		err = fmt.Errorf("unknown kind %d: %w", kind, errs.ErrValue)
	}
	return capiErr(err)
}

//export goLockAcquire
func goLockAcquire(mem unsafe.Pointer, kind C.int, pid, tid C.uint32_t, timeout C.double) (rc C.int) {
	defer capiRecover(&rc)
	o := sync.Owner{Pid: uint32(pid), Tid: uint32(tid)}
	if kind == sync.KindRLock {
		r, err := sync.OpenRLock(region(mem))
		if err != nil {
			return capiErr(err)
		}
		return acquired(r.Acquire(o, seconds(timeout)))
	}
	l, err := sync.OpenLock(region(mem))
	if err != nil {
		return capiErr(err)
	}
	return acquired(l.Acquire(o, seconds(timeout)))
}

//export goLockRelease
func goLockRelease(mem unsafe.Pointer, kind C.int, pid, tid C.uint32_t) (rc C.int) {
	defer capiRecover(&rc)
	o := sync.Owner{Pid: uint32(pid), Tid: uint32(tid)}
	if kind == sync.KindRLock {
		r, err := sync.OpenRLock(region(mem))
		if err != nil {
			return capiErr(err)
		}
		return capiErr(r.Release(o))
	}
	l, err := sync.OpenLock(region(mem))
	if err != nil {
		return capiErr(err)
	}
	return capiErr(l.Release(o))
}

//export goSemAcquire
func goSemAcquire(mem unsafe.Pointer, timeout C.double) (rc C.int) {
	defer capiRecover(&rc)
	s, err := sync.OpenSemaphore(region(mem))
	if err != nil {
		return capiErr(err)
	}
	return acquired(s.Acquire(seconds(timeout)))
}

//export goSemRelease
func goSemRelease(mem unsafe.Pointer, n C.int) (rc C.int) {
	defer capiRecover(&rc)
	s, err := sync.OpenSemaphore(region(mem))
	if err != nil {
		return capiErr(err)
	}
	return capiErr(s.Release(int(n)))
}

//export goTakeovers
func goTakeovers(pid *C.uint32_t) C.int {
	takeovers.mu.Lock()
	defer takeovers.mu.Unlock()
	n := takeovers.n
	*pid = C.uint32_t(takeovers.last)
	takeovers.n = 0
	return C.int(n)
}

//export goArenaNew
func goArenaNew(size C.int64_t, handle *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	a, err := shm.NewArena(int(size))
	if err != nil {
		return capiErr(err)
	}
	*handle = C.int64_t(handles.Arenas.Put(a))
	return 0
}

//export goArenaAttach
func goArenaAttach(ref *C.char, handle *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	r, err := shm.ParseRef(C.GoString(ref))
	if err != nil {
		return capiErr(err)
	}
	a, err := shm.AttachArena(r)
	if err != nil {
		return capiErr(err)
	}
	*handle = C.int64_t(handles.Arenas.Put(a))
	return 0
}

//export goArenaRef
func goArenaRef(handle C.int64_t, buf *C.char, n C.size_t) (rc C.int) {
	defer capiRecover(&rc)
	a, err := handles.Arenas.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	return capiString(a.Segment().Ref().String(), buf, n)
}

//export goArenaBase
func goArenaBase(handle C.int64_t, base *unsafe.Pointer, size *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	a, err := handles.Arenas.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	b := a.Bytes()
	*base = unsafe.Pointer(unsafe.SliceData(b))
	*size = C.int64_t(len(b))
	return 0
}

//export goArenaAlloc
func goArenaAlloc(handle C.int64_t, n, align C.int64_t, off *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	a, err := handles.Arenas.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	o, err := a.Alloc(int(n), int(align))
	if err != nil {
		return capiErr(err)
	}
	*off = C.int64_t(o)
	return 0
}

//export goArenaFree
func goArenaFree(handle C.int64_t, off C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	a, err := handles.Arenas.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	return capiErr(a.Free(int(off)))
}

//export goArenaClose
func goArenaClose(handle C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	if a, ok := handles.Arenas.Take(int64(handle)); ok {
		return capiErr(a.Segment().Close())
	}
	return 0
}
