// Package futex wraps the Linux futex system call for words in shared
// memory, and builds on it the robust cross-process mutex that core/shm and
// core/sync share.
//
// The calls never use FUTEX_PRIVATE_FLAG: the words live in MAP_SHARED
// mappings and the waiters may be in other processes.
package futex

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/errs"
)

// Operations of futex(2), without FUTEX_PRIVATE_FLAG so they work across
// processes.
const (
	opWait = 0 // FUTEX_WAIT
	opWake = 1 // FUTEX_WAKE
)

// Wait sleeps while *addr == val, for at most timeout (timeout < 0: no
// limit). It returns nil when woken, when *addr no longer held val, or on a
// signal: callers always re-check their condition, so all three mean "look
// again". It returns errs.ErrTimeout when timeout passed, and the errno for
// anything else.
func Wait(addr *uint32, val uint32, timeout time.Duration) error {
	var ts *unix.Timespec
	if timeout >= 0 {
		if timeout == 0 {
			return errs.ErrTimeout
		}
		t := unix.NsecToTimespec(int64(timeout))
		ts = &t
	}
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWait,
		uintptr(val), uintptr(unsafe.Pointer(ts)), 0, 0)
	switch e {
	case 0, unix.EAGAIN, unix.EINTR:
		return nil
	case unix.ETIMEDOUT:
		return errs.ErrTimeout
	}
	return e
}

// Wake wakes at most n waiters sleeping on addr, in any process, and
// returns how many it woke. It returns 0 if addr is no longer mapped: a
// woken thread may unmap the memory while its waker is still on the way.
func Wake(addr *uint32, n int) int {
	if n <= 0 {
		return 0
	}
	if n > 1<<31-1 {
		n = 1<<31 - 1
	}
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWake,
		uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return int(r)
}

// Deadline turns a caller's timeout (< 0: none, 0: poll) into the length of
// each futex sleep.
type Deadline struct {
	at      time.Time
	forever bool
}

// NewDeadline starts a deadline timeout from now; timeout < 0 never expires.
func NewDeadline(timeout time.Duration) Deadline {
	if timeout < 0 {
		return Deadline{forever: true}
	}
	return Deadline{at: time.Now().Add(timeout)}
}

// Next returns how long the next sleep may last, at most limit (limit < 0:
// no cap; the result is then < 0 for a deadline that never expires), and
// whether the deadline has already passed.
func (d Deadline) Next(limit time.Duration) (time.Duration, bool) {
	if d.forever {
		return limit, false
	}
	r := time.Until(d.at)
	if r <= 0 {
		return 0, true
	}
	if limit >= 0 && r > limit {
		r = limit
	}
	return r, false
}
