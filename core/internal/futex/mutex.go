package futex

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"sync/atomic"
	"time"

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
//	Pid    pid of the holder; 0 when unlocked or not yet known
//	Tid    thread of the holder, if the lock tracks one (else nil); left
//	       stale at unlock
//
//	lock:   CAS State 0->1, then store Tid, then Pid
//	unlock: store 0 to Pid, then exchange State with 0; FUTEX_WAKE 1 if the
//	        old value was 2
//
// Because Tid is stored before Pid and Pid is cleared first, a thread that
// reads Pid == its pid and then Tid == its tid really holds the lock.
//
// A waiter sleeps on State in slices of at most CheckEvery; between slices
// it checks whether Pid is still alive and, if not, takes the lock over by
// a CAS on Pid from the dead pid to its own. State stays locked throughout,
// so the handover is atomic for everybody else. Pid 0 is never taken over:
// a holder that dies between its CAS and its store of Pid leaves the lock
// held, a window of a few instructions.
type Mutex struct {
	State, Pid, Tid *uint32
}

// Lock acquires m for thread tid of process pid, waiting at most timeout
// (< 0: no limit, 0: try once). It reports whether it got the lock and,
// when it took the lock over from a holder that had died, that holder's
// pid. Liveness is checked every CheckEvery and before giving up, so that
// callers retrying in short slices also take over a dead holder's lock.
func (m Mutex) Lock(pid, tid uint32, timeout time.Duration) (ok bool, deadPid uint32) {
	if atomic.CompareAndSwapUint32(m.State, 0, 1) {
		m.own(pid, tid)
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
		return atomic.LoadUint32(m.State) == 0 && atomic.CompareAndSwapUint32(m.State, 0, 1)
	}, SpinFor) {
		m.own(pid, tid)
		return true, 0
	}
	checked := time.Now()
	for {
		// Taking the lock with 2 rather than 1 may cost one needless wake at
		// unlock, but never loses a sleeper (Drepper, "Futexes are tricky").
		if atomic.SwapUint32(m.State, 2) == 0 {
			m.own(pid, tid)
			return true, 0
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

// own records the new holder of m, Tid first.
func (m Mutex) own(pid, tid uint32) {
	if m.Tid != nil {
		atomic.StoreUint32(m.Tid, tid)
	}
	atomic.StoreUint32(m.Pid, pid)
}

// takeOver makes pid the holder of m if the current holder has died, and
// returns the dead pid, or 0 if there was nothing to take over.
func (m Mutex) takeOver(pid, tid uint32) uint32 {
	holder := atomic.LoadUint32(m.Pid)
	if holder == 0 || holder == pid || Alive(holder) {
		return 0
	}
	// Unlock clears Pid before State, so Pid == holder means the dead holder
	// never released; the CAS lets exactly one waiter inherit the lock.
	if atomic.LoadUint32(m.State) == 0 || !atomic.CompareAndSwapUint32(m.Pid, holder, pid) {
		return 0
	}
	// Until this store Tid is the dead holder's; a thread of ours reusing
	// that tid could misread itself as holder, in a window of nanoseconds.
	if m.Tid != nil {
		atomic.StoreUint32(m.Tid, tid)
	}
	return holder
}

// Unlock releases m, whoever holds it, and reports whether it was locked.
func (m Mutex) Unlock() bool {
	atomic.StoreUint32(m.Pid, 0)
	switch atomic.SwapUint32(m.State, 0) {
	case 0:
		return false
	case 2:
		Wake(m.State, 1)
	}
	return true
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
func (m Mutex) Holds(pid, tid uint32) bool {
	return atomic.LoadUint32(m.Pid) == pid && (m.Tid == nil || atomic.LoadUint32(m.Tid) == tid) &&
		atomic.LoadUint32(m.State) != 0
}
