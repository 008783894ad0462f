package sync

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/internal/futex"
)

// Barrier layout, 16 bytes:
//
//	off  0  uint32  sequence: bumped after every phase change (the futex word)
//	off  4  uint32  parties
//	off  8  uint64  phase<<32 | count: threads inside Wait, and the phase
//
// The phases are threading.Barrier's: filling (0) admits threads until the
// last of the parties arrives and starts draining (1); new arrivals wait
// until every thread of the cycle has left, which ends draining. Abort, or
// a Wait that times out, breaks it (3) until Reset. A Reset with threads
// inside starts resetting (2): they fail, and the last to leave refills.
const (
	BarrierSize = 16

	barrierSeq     = 0
	barrierParties = 4
	barrierState   = 8
)

// Barrier phases, in the high half of the state word.
const (
	phaseFilling = iota
	phaseDraining
	phaseResetting
	phaseBroken
)

func packBarrier(phase, count uint32) uint64 { return uint64(phase)<<32 | uint64(count) }

// Barrier makes a fixed number of parties wait for each other, like
// multiprocessing.Barrier (without the action, which Python runs itself).
type Barrier struct {
	seq, parties *uint32
	state        *uint64
}

// NewBarrier initialises mem as a Barrier for parties threads.
func NewBarrier(mem []byte, parties int) (*Barrier, error) {
	if err := view("Barrier", mem, BarrierSize); err != nil {
		return nil, err
	}
	if parties < 1 || parties > 1<<31-1 {
		return nil, fmt.Errorf("sync: Barrier of %d parties: %w", parties, errs.ErrValue)
	}
	clear(mem[:BarrierSize])
	b, _ := OpenBarrier(mem)
	atomic.StoreUint32(b.parties, uint32(parties))
	return b, nil
}

// OpenBarrier attaches to the Barrier initialised in mem.
func OpenBarrier(mem []byte) (*Barrier, error) {
	if err := view("Barrier", mem, BarrierSize); err != nil {
		return nil, err
	}
	return &Barrier{word(mem, barrierSeq), word(mem, barrierParties), dword(mem, barrierState)}, nil
}

// change moves the state from old to new and wakes everybody to look.
func (b *Barrier) change(old, new uint64) bool {
	if !atomic.CompareAndSwapUint64(b.state, old, new) {
		return false
	}
	atomic.AddUint32(b.seq, 1)
	futex.Wake(b.seq, 1<<31-1)
	return true
}

// Wait waits at most timeout (< 0: no limit) until all parties are waiting
// and returns this thread's arrival index, 0 to Parties()-1. It fails with
// errs.ErrBroken if the barrier is or becomes broken or reset; running out
// of time breaks it, as in CPython, unless the thread had not even joined
// because the previous cycle was still leaving.
func (b *Barrier) Wait(timeout time.Duration) (int, error) {
	d := futex.NewDeadline(timeout)
	parties := atomic.LoadUint32(b.parties)
	raceRelease(unsafe.Pointer(b.state))
	var index uint32
	for entered := false; !entered; {
		s := atomic.LoadUint32(b.seq)
		st := atomic.LoadUint64(b.state)
		phase, count := uint32(st>>32), uint32(st)
		switch phase {
		case phaseBroken:
			return 0, fmt.Errorf("sync: Barrier wait: %w", errs.ErrBroken)
		case phaseFilling:
			index = count
			if count+1 == parties {
				entered = b.change(st, packBarrier(phaseDraining, count+1))
			} else {
				entered = atomic.CompareAndSwapUint64(b.state, st, st+1)
			}
		default: // the previous cycle is still leaving
			slice, expired := d.Next(-1)
			if expired {
				// Breaking now would fail the leaving threads too.
				return 0, fmt.Errorf("sync: Barrier wait: %w", errs.ErrBroken)
			}
			_ = futex.Wait(b.seq, s, slice)
		}
	}
	var phase uint32
	for {
		s := atomic.LoadUint32(b.seq)
		st := atomic.LoadUint64(b.state)
		if phase = uint32(st >> 32); phase != phaseFilling {
			break
		}
		slice, expired := d.Next(-1)
		if expired {
			b.change(st, packBarrier(phaseBroken, uint32(st)))
			continue
		}
		_ = futex.Wait(b.seq, s, slice)
	}
	b.leave()
	if phase != phaseDraining {
		return 0, fmt.Errorf("sync: Barrier wait: %w", errs.ErrBroken)
	}
	raceAcquire(unsafe.Pointer(b.state))
	return int(index), nil
}

// leave takes this thread out of the count; the last to leave a draining
// or resetting barrier makes it fill again.
func (b *Barrier) leave() {
	for {
		st := atomic.LoadUint64(b.state)
		phase, count := uint32(st>>32), uint32(st)-1
		if count == 0 && (phase == phaseDraining || phase == phaseResetting) {
			if b.change(st, packBarrier(phaseFilling, 0)) {
				return
			}
		} else if atomic.CompareAndSwapUint64(b.state, st, packBarrier(phase, count)) {
			return
		}
	}
}

// Abort breaks the barrier: current and future Waits fail with
// errs.ErrBroken until Reset.
func (b *Barrier) Abort() {
	for {
		st := atomic.LoadUint64(b.state)
		if b.change(st, packBarrier(phaseBroken, uint32(st))) {
			return
		}
	}
}

// Reset returns the barrier to its initial state. Threads waiting in it
// fail with errs.ErrBroken.
func (b *Barrier) Reset() {
	for {
		st := atomic.LoadUint64(b.state)
		phase, count := uint32(st>>32), uint32(st)
		switch {
		case count == 0:
			phase = phaseFilling
		case phase == phaseFilling || phase == phaseBroken:
			phase = phaseResetting
		}
		if b.change(st, packBarrier(phase, count)) {
			return
		}
	}
}

// Parties returns the number of threads the barrier waits for.
func (b *Barrier) Parties() int { return int(atomic.LoadUint32(b.parties)) }

// NWaiting returns the number of threads waiting in the current cycle.
func (b *Barrier) NWaiting() int {
	st := atomic.LoadUint64(b.state)
	if st>>32 != phaseFilling {
		return 0
	}
	return int(uint32(st))
}

// Broken reports whether the barrier is broken.
func (b *Barrier) Broken() bool { return atomic.LoadUint64(b.state)>>32 == phaseBroken }
