package sync

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/internal/futex"
)

// Lock and RLock layout, 16 bytes; capi/include/mpgo.h mirrors it:
//
//	off  0  uint32  state: 0 unlocked, 1 locked, 2 locked and a waiter may
//	                be asleep on it (the futex word)
//	off  4  uint32  owner pid; 0 iff unlocked. With state, one 64-bit word
//	off  8  uint32  owner tid; 0 when unlocked
//	off 12  uint32  recursion count (RLock); always 0 for Lock
//
// The C fast path may acquire without Go when uncontended: CAS the 64-bit
// word at off 0 from 0 to pid<<32|1, then store tid, then (RLock) count 1.
// Release: store 0 to count, then to tid, then exchange the 64-bit word
// with 0 and, if the old state was 2, FUTEX_WAKE one waiter (a shared
// futex: no FUTEX_PRIVATE_FLAG). A thread owns the lock iff it reads state
// != 0, pid == its pid and tid == its tid (an RLock owner may then bump
// count itself), and a waiter takes over a lock whose pid names a dead
// process (futex.Mutex). Waiting and takeover are left to Go.
const (
	LockSize  = 16
	RLockSize = 16

	lockState = 0
	lockPid   = 4
	lockTid   = 8
	lockCount = 12
)

// Locker is the lock a Condition is built over: a *Lock or an *RLock.
type Locker interface {
	Acquire(o Owner, timeout time.Duration) (bool, error)
	Release(o Owner) error
	IsMine(o Owner) bool

	// releaseAll releases the lock whatever its recursion, returning the
	// count for reacquire to restore.
	releaseAll(o Owner) (uint32, error)
	reacquire(o Owner, count uint32)
}

// lockWords is what Lock and RLock share: the robust mutex over state,
// pid and tid, and the recursion count.
type lockWords struct {
	m     futex.Mutex
	count *uint32
}

func openWords(mem []byte) lockWords {
	return lockWords{
		m:     futex.Mutex{State: word(mem, lockState), Pid: word(mem, lockPid), Tid: word(mem, lockTid)},
		count: word(mem, lockCount),
	}
}

// lock acquires the mutex for o and records o and count as the owner.
func (w lockWords) lock(kind string, o Owner, count uint32, timeout time.Duration) bool {
	ok, dead := w.m.Lock(o.Pid, o.Tid, timeout)
	if !ok {
		return false
	}
	atomic.StoreUint32(w.count, count)
	raceAcquire(unsafe.Pointer(w.m.State))
	if dead != 0 {
		ownerDied(kind, dead)
	}
	return true
}

// unlock clears the owner and releases the mutex; it reports whether the
// mutex was locked.
func (w lockWords) unlock() bool {
	if atomic.LoadUint32(w.m.State) == 0 {
		return false
	}
	raceRelease(unsafe.Pointer(w.m.State))
	atomic.StoreUint32(w.count, 0)
	return w.m.Unlock()
}

func (w lockWords) isMine(o Owner) bool { return w.m.Holds(o.Pid, o.Tid) }

// Lock is a non-recursive lock in shared memory, like multiprocessing.Lock:
// any process or thread may release it.
type Lock struct{ w lockWords }

// NewLock initialises mem as an unlocked Lock.
func NewLock(mem []byte) (*Lock, error) {
	if err := view("Lock", mem, LockSize); err != nil {
		return nil, err
	}
	clear(mem[:LockSize])
	return OpenLock(mem)
}

// OpenLock attaches to the Lock initialised in mem.
func OpenLock(mem []byte) (*Lock, error) {
	if err := view("Lock", mem, LockSize); err != nil {
		return nil, err
	}
	return &Lock{openWords(mem)}, nil
}

// Acquire takes l for o, waiting at most timeout (< 0: no limit, 0: try
// once), and reports whether it did. A Lock held by o blocks o too.
func (l *Lock) Acquire(o Owner, timeout time.Duration) (bool, error) {
	return l.w.lock("Lock", o, 0, timeout), nil
}

// Release unlocks l. Any owner may release it; releasing an unlocked Lock
// fails with errs.ErrTooMany.
func (l *Lock) Release(o Owner) error {
	if !l.w.unlock() {
		return fmt.Errorf("sync: Lock release: %w", errs.ErrTooMany)
	}
	return nil
}

// IsMine reports whether o holds l.
func (l *Lock) IsMine(o Owner) bool { return l.w.isMine(o) }

// Locked reports whether anybody holds l.
func (l *Lock) Locked() bool { return atomic.LoadUint32(l.w.m.State) != 0 }

func (l *Lock) releaseAll(o Owner) (uint32, error) {
	if !l.w.isMine(o) {
		return 0, fmt.Errorf("sync: Lock not held by the caller: %w", errs.ErrNotOwner)
	}
	l.w.unlock()
	return 0, nil
}

func (l *Lock) reacquire(o Owner, _ uint32) { l.w.lock("Lock", o, 0, -1) }

// RLock is a recursive lock in shared memory, like multiprocessing.RLock:
// its owner may acquire it again, and must release it as many times.
type RLock struct{ w lockWords }

// NewRLock initialises mem as an unlocked RLock.
func NewRLock(mem []byte) (*RLock, error) {
	if err := view("RLock", mem, RLockSize); err != nil {
		return nil, err
	}
	clear(mem[:RLockSize])
	return OpenRLock(mem)
}

// OpenRLock attaches to the RLock initialised in mem.
func OpenRLock(mem []byte) (*RLock, error) {
	if err := view("RLock", mem, RLockSize); err != nil {
		return nil, err
	}
	return &RLock{openWords(mem)}, nil
}

// Acquire takes r for o, or adds one to its recursion if o holds it
// already, waiting at most timeout (< 0: no limit, 0: try once).
func (r *RLock) Acquire(o Owner, timeout time.Duration) (bool, error) {
	if r.w.isMine(o) {
		// Only o itself changes the count while o holds r.
		c := atomic.LoadUint32(r.w.count)
		if c == 1<<32-1 {
			return false, fmt.Errorf("sync: RLock recursion: %w", errs.ErrTooMany)
		}
		atomic.StoreUint32(r.w.count, c+1)
		return true, nil
	}
	return r.w.lock("RLock", o, 1, timeout), nil
}

// Release undoes one Acquire by o; the last one unlocks r. It fails with
// errs.ErrNotOwner unless o holds r.
func (r *RLock) Release(o Owner) error {
	if !r.w.isMine(o) {
		return fmt.Errorf("sync: RLock release: %w", errs.ErrNotOwner)
	}
	if c := atomic.LoadUint32(r.w.count); c > 1 {
		atomic.StoreUint32(r.w.count, c-1)
		return nil
	}
	r.w.unlock()
	return nil
}

// IsMine reports whether o holds r.
func (r *RLock) IsMine(o Owner) bool { return r.w.isMine(o) }

// Count returns how many times o holds r: 0 unless o is the owner.
func (r *RLock) Count(o Owner) int {
	if !r.w.isMine(o) {
		return 0
	}
	return int(atomic.LoadUint32(r.w.count))
}

func (r *RLock) releaseAll(o Owner) (uint32, error) {
	if !r.w.isMine(o) {
		return 0, fmt.Errorf("sync: RLock not held by the caller: %w", errs.ErrNotOwner)
	}
	c := atomic.LoadUint32(r.w.count)
	r.w.unlock()
	return c, nil
}

func (r *RLock) reacquire(o Owner, count uint32) { r.w.lock("RLock", o, count, -1) }
