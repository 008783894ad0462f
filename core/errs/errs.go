// Package errs holds the sentinel errors of the mpgo engine and the stable
// numeric codes that the bindings carry across the C and Python boundaries.
//
// Every error an engine package returns either is one of these sentinels or
// wraps one with %w, so Code can classify it without string matching.
package errs

import (
	"errors"
	"syscall"
)

// Code is a stable error code. The numbers are part of the ABI: capi returns
// them and python/mpgo/_errors.py translates them. Never renumber.
type Code int

// The codes, as documented in docs/DESIGN.md.
const (
	OK             Code = 0
	CodeEmpty      Code = 1  // queue.Empty
	CodeFull       Code = 2  // queue.Full
	CodeTimeout    Code = 3  // TimeoutError
	CodeClosed     Code = 4  // EOFError / ValueError on a closed object
	CodeOS         Code = 5  // OSError(errno)
	CodeValue      Code = 6  // ValueError
	CodeProcess    Code = 7  // ProcessError
	CodeAuth       Code = 8  // AuthenticationError
	CodeForked     Code = 9  // RuntimeError: engine used after fork
	CodeBroken     Code = 10 // threading.BrokenBarrierError
	CodeTooShort   Code = 11 // BufferTooShort
	CodeInternal   Code = 12 // RuntimeError: a bug in mpgo (recovered panic)
	CodeNotOwner   Code = 13 // AssertionError/RuntimeError: release of a lock not owned
	CodeTooMany    Code = 14 // ValueError: semaphore released too many times
	CodeInterrupt  Code = 15 // interrupted wait (caller retries)
	CodeNotSupport Code = 16 // NotImplementedError
)

// ErrEmpty reports that a non-blocking or timed get found nothing.
var ErrEmpty = errors.New("empty")

// ErrFull reports that a bounded queue had no room before the deadline.
var ErrFull = errors.New("full")

// ErrTimeout reports that a blocking wait reached its deadline.
var ErrTimeout = errors.New("timed out")

// ErrClosed reports use of an object after Close, or a peer that has gone.
var ErrClosed = errors.New("closed")

// ErrValue reports an argument the operation cannot accept.
var ErrValue = errors.New("invalid value")

// ErrProcess reports a failure of a child process.
var ErrProcess = errors.New("process error")

// ErrAuth reports a failed authentication handshake.
var ErrAuth = errors.New("authentication failed")

// ErrForked reports that the engine was entered in a child forked from a
// process running the Go runtime, where Go cannot run.
var ErrForked = errors.New("mpgo engine used in a process forked after the Go runtime started; use the spawn start method")

// ErrBroken reports a barrier that was aborted or broken.
var ErrBroken = errors.New("barrier broken")

// ErrTooShort reports a destination buffer smaller than the message.
var ErrTooShort = errors.New("buffer too short")

// ErrInternal reports a recovered panic: a bug in mpgo.
var ErrInternal = errors.New("internal error")

// ErrNotOwner reports a release by a process or thread that does not own the lock.
var ErrNotOwner = errors.New("cannot release un-acquired lock")

// ErrTooMany reports a bounded semaphore released above its initial value.
var ErrTooMany = errors.New("semaphore or lock released too many times")

// ErrNotSupported reports an operation the platform cannot do.
var ErrNotSupported = errors.New("not supported")

// CodeOf classifies err. It returns the code and, for CodeOS, the errno.
func CodeOf(err error) (Code, int) {
	if err == nil {
		return OK, 0
	}
	table := []struct {
		e error
		c Code
	}{
		{ErrEmpty, CodeEmpty}, {ErrFull, CodeFull}, {ErrTimeout, CodeTimeout},
		{ErrClosed, CodeClosed}, {ErrValue, CodeValue}, {ErrProcess, CodeProcess},
		{ErrAuth, CodeAuth}, {ErrForked, CodeForked}, {ErrBroken, CodeBroken},
		{ErrTooShort, CodeTooShort}, {ErrInternal, CodeInternal},
		{ErrNotOwner, CodeNotOwner}, {ErrTooMany, CodeTooMany},
		{ErrNotSupported, CodeNotSupport},
	}
	for _, t := range table {
		if errors.Is(err, t.e) {
			return t.c, 0
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return CodeOS, int(errno)
	}
	return CodeInternal, 0
}
