package futex

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// CheckEvery is the longest a Mutex waiter sleeps before it looks at whether
// the holder is still alive: a lock whose holder died is taken over within
// about twice this.
const CheckEvery = 100 * time.Millisecond

// SpinFor is how long a contended Lock or Semaphore acquire spins before it
// sleeps: a holder in another process usually lets go within a few
// microseconds, and a futex sleep and wake-up costs tens of them.
const SpinFor = 20 * time.Microsecond

// Mutex is a robust cross-process mutex over uint32 words of shared memory,
// in a protocol a C fast path can follow too:
//
//	State  0 unlocked, 1 locked, 2 locked and a waiter may be asleep on State
//	Pid    pid of the holder, the word right after State; 0 iff unlocked
//	Tid    thread of the holder, if the lock tracks one (else nil); 0 while
//	       unlocked and for an instant after a lock
//
// State and Pid are one naturally aligned 64-bit word, State in its low
// half (little-endian), and change together: a lock or unlock is a single
// atomic operation on it, so no instant exists at which a locked mutex has
// no holder pid.
//
//	lock:   CAS the word 0 -> pid<<32|1, then store Tid
//	unlock: store 0 to Tid, then exchange the word with 0; FUTEX_WAKE 1 if
//	        the old State was 2
//
// A thread that reads State != 0, Pid == its pid and Tid == its tid holds
// the lock: Tid is its own only between its lock and its unlock.
//
// A waiter sleeps on State in slices of at most CheckEvery; between slices
// it checks whether Pid is still alive and, if not, takes the lock over by
// a CAS of the word from the dead holder's to its own. State stays locked
// throughout, so the handover is atomic for everybody else. (Before the two
// words changed together, a holder killed between its CAS of State and its
// store of Pid, or between its clear of Pid and its release of State, left
// the mutex locked for ever: a process killed at random in a tight loop of
// locks hit that window in a few percent of the runs.)
type Mutex struct {
	State, Pid, Tid *uint32
}

// word returns State and Pid as the one 64-bit word they are.
func (m Mutex) word() *uint64 {
	if uintptr(unsafe.Pointer(m.Pid)) != uintptr(unsafe.Pointer(m.State))+4 ||
		uintptr(unsafe.Pointer(m.State))%8 != 0 {
		panic("futex: Mutex Pid must follow State in an 8-byte aligned word")
	}
	return (*uint64)(unsafe.Pointer(m.State))
}

func held(pid uint32, state uint64) uint64 { return uint64(pid)<<32 | state }

// Lock acquires m for thread tid of process pid, waiting at most timeout
// (< 0: no limit, 0: try once). It reports whether it got the lock and,
// when it took the lock over from a holder that had died, that holder's
// pid. Liveness is checked every CheckEvery and before giving up, so that
// callers retrying in short slices also take over a dead holder's lock.
func (m Mutex) Lock(pid, tid uint32, timeout time.Duration) (ok bool, deadPid uint32) {
	w := m.word()
	if atomic.CompareAndSwapUint64(w, 0, held(pid, 1)) {
		m.own(tid)
		return true, 0
	}
	if timeout == 0 {
		if dead := m.takeOver(pid, tid); dead != 0 {
			return true, dead
		}
		return false, 0
	}
	d := NewDeadline(timeout)
	if Spin(func() bool {
		return atomic.LoadUint64(w) == 0 && atomic.CompareAndSwapUint64(w, 0, held(pid, 1))
	}, SpinFor) {
		m.own(tid)
		return true, 0
	}
	checked := time.Now()
	for {
		// Taking the lock with 2 rather than 1 may cost one needless wake at
		// unlock, but never loses a sleeper (Drepper, "Futexes are tricky").
		old := atomic.LoadUint64(w)
		if old == 0 {
			if atomic.CompareAndSwapUint64(w, 0, held(pid, 2)) {
				m.own(tid)
				return true, 0
			}
			continue
		}
		if uint32(old) != 2 && !atomic.CompareAndSwapUint64(w, old, old&^0xffffffff|2) {
			continue
		}
		slice, expired := d.Next(CheckEvery)
		if expired || time.Since(checked) >= CheckEvery {
			checked = time.Now()
			if dead := m.takeOver(pid, tid); dead != 0 {
				return true, dead
			}
		}
		if expired {
			return false, 0
		}
		_ = Wait(m.State, 2, slice)
	}
}

// own records the holding thread.
func (m Mutex) own(tid uint32) {
	if m.Tid != nil {
		atomic.StoreUint32(m.Tid, tid)
	}
}

// takeOver makes pid the holder of m if the current holder has died, and
// returns the dead pid, or 0 if there was nothing to take over.
func (m Mutex) takeOver(pid, tid uint32) uint32 {
	w := m.word()
	old := atomic.LoadUint64(w)
	holder := uint32(old >> 32)
	if old == 0 || holder == 0 || holder == pid || Alive(holder) {
		return 0
	}
	// State 2: whoever sleeps on the mutex is woken at the next unlock.
	if !atomic.CompareAndSwapUint64(w, old, held(pid, 2)) {
		return 0
	}
	// Until this store Tid is the dead holder's; a thread of ours reusing
	// that tid could misread itself as holder, in a window of nanoseconds.
	m.own(tid)
	return holder
}

// Unlock releases m, whoever holds it, and reports whether it was locked.
func (m Mutex) Unlock() bool {
	w := m.word()
	if m.Tid != nil {
		atomic.StoreUint32(m.Tid, 0)
	}
	old := atomic.SwapUint64(w, 0)
	if uint32(old) == 2 {
		Wake(m.State, 1)
	}
	return old != 0
}

// Alive reports whether process pid may still be running. Unknown pids (0,
// or beyond the pid range, which kill(2) would read as a process group) count
// as alive, so a lock is never taken from a holder we cannot check.
func Alive(pid uint32) bool {
	if pid == 0 || pid > 1<<31-1 {
		return true
	}
	if unix.Kill(int(pid), 0) == unix.ESRCH {
		return false
	}
	// kill(2) succeeds on a zombie: a holder that has exited but whose parent
	// has not reaped it yet. /proc tells them apart.
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/stat")
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		switch b[i+2] {
		case 'Z', 'X':
			return false
		}
	}
	return true
}

// Holds reports whether thread tid of process pid holds m.
// A lock that tracks threads is never held by tid 0, its Tid while
// unlocked and between a lock and the store of the holder's Tid.
func (m Mutex) Holds(pid, tid uint32) bool {
	return atomic.LoadUint32(m.Pid) == pid && (m.Tid == nil || tid != 0 && atomic.LoadUint32(m.Tid) == tid) &&
		atomic.LoadUint32(m.State) != 0
}
