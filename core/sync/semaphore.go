package sync

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/internal/futex"
)

// Semaphore layout, 16 bytes:
//
//	off  0  uint32  value (the futex word)
//	off  4  uint32  maximum value; 0 for an unbounded semaphore
//	off  8  uint32  sleepers: Acquire calls that may be asleep on value
//	off 12  uint32  reserved, zero
//
// Acquire: CAS value v->v-1 for any v > 0. Release: CAS value v->v+n, then
// FUTEX_WAKE n if sleepers != 0. A sleeper adds itself to sleepers before
// it last reads value, so one of the two always sees the other.
const (
	SemaphoreSize = 16

	semValue    = 0
	semMax      = 4
	semSleepers = 8
)

// semValueMax is the largest value, SEM_VALUE_MAX on Linux.
const semValueMax = 1<<31 - 1

// Semaphore is a counting semaphore in shared memory, bounded or not, like
// multiprocessing.Semaphore and BoundedSemaphore.
type Semaphore struct {
	value, max, sleepers *uint32
}

// NewSemaphore initialises mem as a semaphore of the given value. max > 0
// makes it bounded: releases beyond max fail.
func NewSemaphore(mem []byte, value, max int) (*Semaphore, error) {
	if err := view("Semaphore", mem, SemaphoreSize); err != nil {
		return nil, err
	}
	if value < 0 || value > semValueMax || max < 0 || max > semValueMax || (max > 0 && value > max) {
		return nil, fmt.Errorf("sync: Semaphore value %d, max %d: %w", value, max, errs.ErrValue)
	}
	clear(mem[:SemaphoreSize])
	s, _ := OpenSemaphore(mem)
	atomic.StoreUint32(s.max, uint32(max))
	atomic.StoreUint32(s.value, uint32(value))
	return s, nil
}

// OpenSemaphore attaches to the semaphore initialised in mem.
func OpenSemaphore(mem []byte) (*Semaphore, error) {
	if err := view("Semaphore", mem, SemaphoreSize); err != nil {
		return nil, err
	}
	return &Semaphore{word(mem, semValue), word(mem, semMax), word(mem, semSleepers)}, nil
}

// tryDown takes one unit if there is one.
func (s *Semaphore) tryDown() bool {
	for {
		v := atomic.LoadUint32(s.value)
		if v == 0 {
			return false
		}
		if atomic.CompareAndSwapUint32(s.value, v, v-1) {
			raceAcquire(unsafe.Pointer(s.value))
			return true
		}
	}
}

// Acquire takes one unit, waiting at most timeout (< 0: no limit, 0: try
// once), and reports whether it did.
func (s *Semaphore) Acquire(timeout time.Duration) (bool, error) {
	if s.tryDown() {
		return true, nil
	}
	if timeout == 0 {
		return false, nil
	}
	if futex.Spin(s.tryDown, futex.SpinFor) {
		return true, nil
	}
	d := futex.NewDeadline(timeout)
	atomic.AddUint32(s.sleepers, 1)
	defer atomic.AddUint32(s.sleepers, ^uint32(0))
	for {
		if s.tryDown() {
			return true, nil
		}
		slice, expired := d.Next(-1)
		if expired {
			return false, nil
		}
		_ = futex.Wait(s.value, 0, slice)
	}
}

// Release adds n units. On a bounded semaphore it fails with
// errs.ErrTooMany, adding nothing, if the value would pass the maximum.
func (s *Semaphore) Release(n int) error {
	if n < 1 || n > semValueMax {
		return fmt.Errorf("sync: Semaphore release of %d: %w", n, errs.ErrValue)
	}
	limit := uint64(atomic.LoadUint32(s.max))
	if limit == 0 {
		limit = semValueMax
	}
	raceRelease(unsafe.Pointer(s.value))
	for {
		v := atomic.LoadUint32(s.value)
		if uint64(v)+uint64(n) > limit {
			return fmt.Errorf("sync: Semaphore release: %w", errs.ErrTooMany)
		}
		if atomic.CompareAndSwapUint32(s.value, v, v+uint32(n)) {
			break
		}
	}
	if atomic.LoadUint32(s.sleepers) != 0 {
		futex.Wake(s.value, n)
	}
	return nil
}

// Value returns the current value.
func (s *Semaphore) Value() int { return int(atomic.LoadUint32(s.value)) }

// Max returns the bound of a bounded semaphore, or 0.
func (s *Semaphore) Max() int { return int(atomic.LoadUint32(s.max)) }
