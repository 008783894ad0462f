package sync

import (
	"sync/atomic"
	"time"

	"github.com/mpgo/mpgo/core/internal/futex"
)

// Condition layout, 16 bytes; the lock lives in a region of its own:
//
//	off  0  uint32  sequence: bumped by every Notify that hands out
//	                wakeups (the futex word)
//	off  4  uint32  reserved, zero
//	off  8  uint64  waiters<<32 | tickets: waiters registered in Wait, and
//	                wakeups handed out but not yet taken
//
// Notify(n) turns up to n registered waiters without a ticket into tickets;
// a waiter returns true only by taking a ticket, so exactly as many return
// as were notified, whichever of them the kernel wakes.
const (
	ConditionSize = 16

	condSeq    = 0
	condCounts = 8

	condWaiter = 1 << 32 // one waiter in the counts word
)

// Condition is a condition variable in shared memory over a Lock or RLock,
// like multiprocessing.Condition.
type Condition struct {
	lock   Locker
	seq    *uint32
	counts *uint64
}

// NewCondition initialises mem as a Condition over lock.
func NewCondition(mem []byte, lock Locker) (*Condition, error) {
	if err := view("Condition", mem, ConditionSize); err != nil {
		return nil, err
	}
	clear(mem[:ConditionSize])
	return OpenCondition(mem, lock)
}

// OpenCondition attaches to the Condition initialised in mem; lock must be
// a view of the lock it was made with.
func OpenCondition(mem []byte, lock Locker) (*Condition, error) {
	if err := view("Condition", mem, ConditionSize); err != nil {
		return nil, err
	}
	return &Condition{lock: lock, seq: word(mem, condSeq), counts: dword(mem, condCounts)}, nil
}

// Lock returns the lock c is built over.
func (c *Condition) Lock() Locker { return c.lock }

// Wait releases the lock, which o must hold (errs.ErrNotOwner otherwise),
// waits at most timeout (< 0: no limit) for a Notify, then takes the lock
// back, RLock recursion included, however long that takes. It reports
// whether it was notified.
func (c *Condition) Wait(o Owner, timeout time.Duration) (bool, error) {
	// Registering before the release lets a Notify made under the lock
	// right after it count this waiter.
	atomic.AddUint64(c.counts, condWaiter)
	count, err := c.lock.releaseAll(o)
	if err != nil {
		atomic.AddUint64(c.counts, ^uint64(condWaiter-1))
		return false, err
	}
	d := futex.NewDeadline(timeout)
	notified := false
	for {
		s := atomic.LoadUint32(c.seq)
		if c.take(false) {
			notified = true
			break
		}
		slice, expired := d.Next(-1)
		if expired {
			notified = c.take(true)
			break
		}
		_ = futex.Wait(c.seq, s, slice)
	}
	c.lock.reacquire(o, count)
	return notified, nil
}

// take takes a ticket and unregisters the waiter, if a ticket is there. A
// waiter giving up unregisters even without one; it must still take a
// ticket handed out meanwhile, which would otherwise wake nobody.
func (c *Condition) take(giveUp bool) bool {
	for {
		n := atomic.LoadUint64(c.counts)
		switch {
		case uint32(n) != 0:
			if atomic.CompareAndSwapUint64(c.counts, n, n-condWaiter-1) {
				return true
			}
		case giveUp:
			if atomic.CompareAndSwapUint64(c.counts, n, n-condWaiter) {
				return false
			}
		default:
			return false
		}
	}
}

// Notify wakes up to n waiters. The caller should hold the lock, as
// multiprocessing requires; the Python layer checks that.
func (c *Condition) Notify(n int) {
	for n > 0 {
		v := atomic.LoadUint64(c.counts)
		waiters, tickets := uint32(v>>32), uint32(v)
		k := uint64(min(uint64(n), uint64(waiters-tickets)))
		if k == 0 {
			return
		}
		if atomic.CompareAndSwapUint64(c.counts, v, v+k) {
			atomic.AddUint32(c.seq, 1)
			futex.Wake(c.seq, int(k))
			return
		}
	}
}

// NotifyAll wakes every waiter.
func (c *Condition) NotifyAll() { c.Notify(1<<31 - 1) }
