// Package sync provides the synchronisation primitives of multiprocessing
// that need a protocol of their own — Lock, RLock, Semaphore — as views over
// small regions of shared memory, so that every process mapping the region
// shares one primitive. mpgo's Condition, Event and Barrier are CPython's
// algorithms over these (python/mpgo/synchronize.py), so a Go program
// shares them by sharing their Locks and Semaphores, not a layout of their
// own.
//
// Each primitive's byte layout is written above its offset constants; the C
// fast path in capi/include/mpgo.h mirrors them. New<X> initialises a region
// of at least <X>Size bytes, aligned to 8; Open<X> attaches to one already
// initialised, by this or another process. A view must not outlive the
// mapping under it. Words are only touched with sync/atomic, and blocking is
// a futex wait on a shared word, after a short bounded spin.
//
// Locks are robust: a waiter notices when the process holding a Lock or
// RLock has died and takes the lock over within about 200 ms, reporting it
// through OnOwnerDied.
//
// Under the race detector the primitives also create happens-before edges
// for Go memory they guard; the detector cannot see the shared memory itself.
package sync

import (
	"fmt"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
)

// Owner identifies the thread acting on a lock: the caller passes it
// explicitly. Python passes os.getpid() and threading.get_native_id(); a Go
// program may pass any non-zero Tid that is unique among its lock users (0
// marks a lock between its acquire and the store of its holder's Tid). Pid
// must be the real process id, since robustness checks whether it is alive.
type Owner struct {
	Pid, Tid uint32
}

// OnOwnerDied, when set, is called after a Lock or RLock (kind "Lock" or
// "RLock") was taken over from process deadPid, which died holding it. The
// data it guarded may be inconsistent. Set it before using any lock.
var OnOwnerDied func(kind string, deadPid uint32)

func ownerDied(kind string, pid uint32) {
	if f := OnOwnerDied; f != nil {
		f(kind, pid)
	}
}

// view checks that mem can hold a primitive of size bytes.
func view(kind string, mem []byte, size int) error {
	if len(mem) < size || uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0 {
		return fmt.Errorf("sync: %s needs %d bytes aligned to 8, got %d: %w", kind, size, len(mem), errs.ErrValue)
	}
	return nil
}

func word(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
