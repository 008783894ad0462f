package queue

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/internal/futex"
)

// Waiting: a caller that must wait first spins, re-checking its condition
// without the lock, for a budget that doubles when a spin succeeds and
// halves when it fails; then it sleeps on the futex word in slices of at
// most recheckEvery. The slices bound the wait of a sleeper whose wake-up
// went to a process that died before acting on it.
const (
	spinStart    = 16 // microseconds
	spinMin      = 2
	spinMax      = 64
	recheckEvery = 250 * time.Millisecond
)

// deadline is a caller's timeout (< 0: none, 0: poll), made into a
// futex.Deadline only once the call has to wait, so that a call that does
// not wait never reads the clock.
type deadline struct {
	timeout time.Duration
	at      futex.Deadline
	started bool
}

func (d *deadline) start() {
	if !d.started {
		d.at, d.started = futex.NewDeadline(d.timeout), true
	}
}

// expired reports whether the deadline has passed.
func (d *deadline) expired() bool {
	if d.timeout <= 0 {
		return d.timeout == 0
	}
	d.start()
	_, expired := d.at.Next(-1)
	return expired
}

// minLockWait is the least time any operation waits for the lock, so that
// a poll is not defeated by a neighbour's few-microsecond hold.
const minLockWait = time.Millisecond

// lockBy takes the lock by the deadline d, or at least within minLockWait.
func (q *Queue) lockBy(d *deadline) (bool, error) {
	if d.timeout < 0 {
		return q.lock(-1)
	}
	if !d.started {
		// The lock is nearly always free or held for microseconds: try
		// without reading the clock, which then starts at most about
		// minLockWait late.
		if ok, err := q.lock(minLockWait); ok || err != nil || d.timeout == 0 {
			return ok, err
		}
		d.start()
	}
	r, _ := d.at.Next(-1)
	return q.lock(max(r, minLockWait))
}

// waitOn names a futex word of the header and the count of its sleepers.
type waitOn struct{ word, sleepers uintptr }

var (
	notEmpty = waitOn{offNotEmpty, offGetters}
	notFull  = waitOn{offNotFull, offPutters}
	joined   = waitOn{offJoin, offJoiners}
)

// Put appends msg to the queue, waiting at most timeout (< 0: no limit, 0:
// not at all) for room in a bounded queue; it fails with errs.ErrFull if
// there was none. On an unbounded queue Put never fails for want of room:
// it grows the ring, and it waits for the lock however long. It fails with
// errs.ErrClosed after Close or Shutdown. Every Put adds one unfinished task.
func (q *Queue) Put(msg []byte, timeout time.Duration) error {
	one := [1]message{{msg}}
	_, err := q.put(one[:], timeout)
	return err
}

// PutV appends one message made of parts laid end to end, as Put does. It
// spares the caller a copy: a big payload goes from where it is straight
// into the ring, next to a small header or trailer.
func (q *Queue) PutV(parts [][]byte, timeout time.Duration) error {
	one := [1]message{parts}
	_, err := q.put(one[:], timeout)
	return err
}

// PutMany appends msgs in order, as Put does, and returns how many it put.
// All that fit go in under one hold of the lock, as one commit; on a bounded
// queue the rest wait for room until timeout, and a shortfall fails with
// errs.ErrFull.
func (q *Queue) PutMany(msgs [][]byte, timeout time.Duration) (int, error) {
	batch := make([]message, len(msgs))
	for i, m := range msgs {
		batch[i] = message{m}
	}
	return q.put(batch, timeout)
}

// message is one message given as parts, which put lays end to end.
type message [][]byte

func (m message) len() int {
	n := 0
	for _, p := range m {
		n += len(p)
	}
	return n
}

func (q *Queue) put(msgs []message, timeout time.Duration) (int, error) {
	for _, m := range msgs {
		if n := m.len(); n > MaxMessage {
			return 0, fmt.Errorf("queue: message of %d bytes is larger than the most a queue takes (%d): %w", n, MaxMessage, errs.ErrValue)
		}
	}
	if !q.enter() {
		return 0, errClosed
	}
	defer q.life.RUnlock()
	d := deadline{timeout: timeout}
	done, spun, waited := 0, false, false
	for done < len(msgs) {
		var ok bool
		var err error
		if q.maxsize == 0 {
			ok, err = q.lock(-1)
		} else {
			ok, err = q.lockBy(&d)
		}
		if err != nil {
			return done, err
		}
		if !ok {
			return done, errFull
		}
		if atomic.LoadUint32(q.w32(offFlags))&flagShut != 0 {
			q.unlock()
			return done, errShutDown
		}
		k := len(msgs) - done
		if q.maxsize > 0 {
			count := atomic.LoadUint64(q.w64(offCount))
			k = int(min(uint64(k), q.maxsize-min(count, q.maxsize)))
		}
		if k > 0 && !waited && q.maxsize == 0 && timeout != 0 {
			if need, ok := q.roomSoon(msgs[done : done+k]); ok {
				// The ring is full but being drained: give the getters a
				// moment to make room rather than grow the ring, which
				// would then be faulted in page by page.
				waited = true
				q.unlock()
				q.awaitRoom(need, timeout)
				continue
			}
		}
		if k > 0 && msgs[done].len() >= reserveMin {
			r, ok, err := q.reserve(msgs[done])
			if err != nil {
				q.unlock()
				return done, err
			}
			if ok {
				q.unlock()
				if testHook != nil {
					testHook(stageReserved)
				}
				r.fill(msgs[done])
				if _, err := q.lock(-1); err != nil {
					return done, err
				}
				q.finish(&r)
				done++
				getters := min(int(atomic.LoadUint32(q.w32(offGetters))), 1)
				putters := 0
				if q.maxsize > 0 && atomic.LoadUint64(q.w64(offCount)) < q.maxsize {
					putters = q.wake(notFull, 1)
				}
				q.unlock()
				q.signal(notEmpty, getters)
				q.signal(notFull, putters)
				continue
			}
		}
		if k > 0 {
			if err := q.putLocked(msgs[done : done+k]); err != nil {
				q.unlock()
				if err == errBusy {
					// The ring must grow, which waits for the reservations
					// in progress.
					q.awaitReservations()
					continue
				}
				return done, err
			}
			done += k
			getters := q.wake(notEmpty, k)
			putters := 0
			if q.maxsize > 0 && atomic.LoadUint64(q.w64(offCount)) < q.maxsize {
				// Pass room on, in case the putter woken for it has died.
				putters = q.wake(notFull, 1)
			}
			q.unlock()
			q.signal(notEmpty, getters)
			q.signal(notFull, putters)
			continue
		}
		if d.expired() {
			q.unlock()
			return done, errFull
		}
		if !q.park(notFull, &d, &spun) {
			return done, errClosed
		}
	}
	return done, nil
}

// Before an unbounded queue grows its ring for a put, the putter spins for
// room a while if the ring holds messages that getters may take: about as
// long as a getter takes to copy out as many bytes as the put needs, at
// growRate, and at most growWaitMax. A queue whose getters keep up thus
// keeps a ring that fits in the caches and stays resident, and one whose
// getters are slow or absent grows after a short spin, which doubling makes
// rare.
const (
	growRate    = 1 << 30 // bytes per second
	growWaitMin = 2 * time.Microsecond
	growWaitMax = 2 * time.Millisecond
)

// roomSoon reports whether a put of msgs should wait for room before it
// grows the ring, and the ring bytes they need. The lock must be held.
func (q *Queue) roomSoon(msgs []message) (need uint64, ok bool) {
	for _, m := range msgs {
		need += record(m.len())
	}
	head, tail := atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail))
	head = q.floor(head)
	return need, q.capacity-(tail-head) < need && head != tail && need <= q.capacity
}

// awaitRoom spins, without the lock, until need ring bytes may be free, for
// the time a getter would take to copy them out (see growRate), within
// timeout (< 0: none).
func (q *Queue) awaitRoom(need uint64, timeout time.Duration) {
	d := min(max(time.Duration(need*uint64(time.Second)/growRate), growWaitMin), growWaitMax)
	if timeout > 0 {
		d = min(d, timeout)
	}
	futex.Spin(func() bool {
		if atomic.LoadUint32(q.w32(offFlags))&flagShut != 0 {
			return true
		}
		head, tail := atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail))
		return atomic.LoadUint64(q.w64(offCap))-(tail-q.floor(head)) >= need
	}, d)
}

// Get removes the next message and copies it into buf, waiting at most
// timeout (< 0: no limit, 0: not at all) for one; it returns the message's
// length. If buf is too short it returns the length and an error wrapping
// errs.ErrTooShort, and leaves the message in the queue. It fails with
// errs.ErrEmpty when the wait ran out, and errs.ErrClosed after Close, or
// after Shutdown once the queue is empty.
func (q *Queue) Get(buf []byte, timeout time.Duration) (n int, err error) {
	var one [1]int
	lens, need, err := q.get(buf, 1, one[:0], timeout, nil)
	if err != nil {
		return need, err
	}
	return lens[0], nil
}

// GetClaim is Get for a consumer that must record, atomically with taking
// it, which message it took: claim runs under the queue's lock, after the
// message is copied into msg and before the get commits, with the message's
// position. A consumer killed at any instant then leaves either no claim,
// or a claim whose position Taken reports truthfully: core/pool's workers
// store the task id and position in their slot this way, so that a dead
// worker's task is never lost nor failed twice. claim must not block.
func (q *Queue) GetClaim(buf []byte, timeout time.Duration, claim func(pos uint64, msg []byte)) (n int, err error) {
	var one [1]int
	lens, need, err := q.get(buf, 1, one[:0], timeout, claim)
	if err != nil {
		return need, err
	}
	return lens[0], nil
}

// Taken reports whether the message that was at position pos has been
// taken: positions only grow, so it has iff the head is past it. It takes
// the lock, so that an operation a dead process left half done is settled
// first.
func (q *Queue) Taken(pos uint64) (bool, error) {
	if !q.enter() {
		return false, errClosed
	}
	defer q.life.RUnlock()
	if _, err := q.lock(-1); err != nil {
		return false, err
	}
	head := atomic.LoadUint64(q.w64(offHead))
	q.unlock()
	return head > pos, nil
}

// GetMany removes up to max messages and copies them back to back into
// buf, as many whole messages as fit, and returns their lengths. It waits
// as Get does for the first message only. If even the first does not fit
// it takes nothing and returns that message's length as lens[0] with an
// error wrapping errs.ErrTooShort.
func (q *Queue) GetMany(buf []byte, max int, timeout time.Duration) (lens []int, err error) {
	if max <= 0 {
		return nil, fmt.Errorf("queue: get %d messages: %w", max, errs.ErrValue)
	}
	lens, need, err := q.get(buf, max, make([]int, 0, min(max, 64)), timeout, nil)
	if errors.Is(err, errs.ErrTooShort) {
		return append(lens[:0], need), err
	}
	return lens, err
}

func (q *Queue) get(buf []byte, max int, lens []int, timeout time.Duration, claim func(uint64, []byte)) ([]int, int, error) {
	if !q.enter() {
		return lens, 0, errClosed
	}
	defer q.life.RUnlock()
	if timeout == 0 && atomic.LoadUint64(q.w64(offCount)) == 0 &&
		atomic.LoadUint32(q.w32(offFlags))&flagShut == 0 {
		return lens, 0, errEmpty
	}
	d := deadline{timeout: timeout}
	spun, pendSpun := false, false
	for {
		ok, err := q.lockBy(&d)
		if err != nil {
			return lens, 0, err
		}
		if !ok {
			return lens, 0, errEmpty
		}
		if count := atomic.LoadUint64(q.w64(offCount)); count > 0 {
			if claim == nil && max == 1 {
				// A big message is copied out outside the lock.
				head := atomic.LoadUint64(q.w64(offHead))
				w := *q.wordAt(head)
				if n := int(w); w&lenFlags == 0 && n >= reserveMin && n <= len(buf) &&
					w <= atomic.LoadUint64(q.w64(offTail))-head-lenSize {
					if putters, getters, ok := q.takeOut(buf, n); ok {
						q.signal(notFull, putters)
						q.signal(notEmpty, getters)
						return append(lens, n), 0, nil
					}
				}
			}
			before := len(lens)
			lens, need, err := q.takeLocked(buf, max, lens, claim)
			if err == errPending {
				// The next message is still being copied in, outside the
				// lock: wait for its putter to finish it, spinning about as
				// long as the copy takes, then sleeping, and then checking
				// whether the putter died.
				if d.expired() {
					q.unlock()
					return lens, 0, errEmpty
				}
				if pendSpun {
					if q.reap(true) {
						q.unlock() // its putter died: it is dropped now
						continue
					}
					spun = true
					if !q.park(notEmpty, &d, &spun) {
						return lens, 0, errClosed
					}
					continue
				}
				pendSpun = true
				n, _ := q.lengthAt(atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail)))
				seq := atomic.LoadUint32(q.w32(offNotEmpty))
				q.unlock()
				futex.Spin(func() bool {
					return atomic.LoadUint32(q.w32(offNotEmpty)) != seq ||
						atomic.LoadUint32(q.w32(offFlags))&flagShut != 0
				}, pendingWait(uint64(n)))
				if q.closed.Load() {
					return lens, 0, errClosed
				}
				continue
			}
			if err == nil && len(lens) == before {
				// Only dead records were dropped: look again.
				q.unlock()
				continue
			}
			if err != nil {
				q.unlock()
				return lens, need, err
			}
			k := len(lens) - before
			putters, getters := 0, 0
			if q.maxsize > 0 {
				putters = q.wake(notFull, k)
			}
			if count > uint64(k) {
				// Pass messages on, in case the getter woken for them has died.
				getters = q.wake(notEmpty, 1)
			}
			q.unlock()
			q.signal(notFull, putters)
			q.signal(notEmpty, getters)
			return lens, 0, nil
		}
		if atomic.LoadUint32(q.w32(offFlags))&flagShut != 0 {
			q.unlock()
			return lens, 0, errShutDown
		}
		if d.expired() {
			q.unlock()
			return lens, 0, errEmpty
		}
		if !q.park(notEmpty, &d, &spun) {
			return lens, 0, errClosed
		}
	}
}

// TaskDone marks one task put on the queue as done, as
// JoinableQueue.task_done does; Join returns once none are left. Calling it
// more often than Put fails with errs.ErrValue.
func (q *Queue) TaskDone() error {
	if !q.enter() {
		return errClosed
	}
	defer q.life.RUnlock()
	if _, err := q.lock(-1); err != nil {
		return err
	}
	u := q.w64(offUnfinished)
	n := atomic.LoadUint64(u)
	if n == 0 {
		q.unlock()
		return fmt.Errorf("queue: task_done() called too many times: %w", errs.ErrValue)
	}
	atomic.StoreUint64(u, n-1)
	joiners := 0
	if n == 1 {
		joiners = q.wake(joined, 1<<31-1)
	}
	q.unlock()
	q.signal(joined, joiners)
	return nil
}

// Join waits at most timeout (< 0: no limit) until every task put on the
// queue has been marked done, and reports whether that happened.
func (q *Queue) Join(timeout time.Duration) (bool, error) {
	if !q.enter() {
		return false, errClosed
	}
	defer q.life.RUnlock()
	d := deadline{timeout: timeout}
	spun := true // a join waits for whole tasks: not worth a spin
	for {
		ok, err := q.lockBy(&d)
		if err != nil || !ok {
			return false, err
		}
		if atomic.LoadUint64(q.w64(offUnfinished)) == 0 {
			q.unlock()
			return true, nil
		}
		if d.expired() {
			q.unlock()
			return false, nil
		}
		if !q.park(joined, &d, &spun) {
			return false, errClosed
		}
	}
}

// park releases the lock, which the caller holds and found it must wait
// for w, and returns when the caller should look again: after a short spin
// the first time, later after a futex sleep bounded by d and recheckEvery.
// It returns false if q has been closed.
func (q *Queue) park(w waitOn, d *deadline, spun *bool) bool {
	if !*spun {
		*spun = true
		q.unlock()
		q.spinFor(w)
		return !q.closed.Load()
	}
	// Close relies on this order: count in waiters, read the word, check
	// closed, sleep.
	q.waiters.Add(1)
	seq := atomic.LoadUint32(q.w32(w.word))
	atomic.AddUint32(q.w32(w.sleepers), 1)
	q.unlock()
	if !q.closed.Load() {
		d.start()
		if slice, expired := d.at.Next(recheckEvery); !expired {
			_ = futex.Wait(q.w32(w.word), seq, slice)
		}
	}
	atomic.AddUint32(q.w32(w.sleepers), ^uint32(0))
	q.waiters.Add(-1)
	return !q.closed.Load()
}

// spinFor re-checks w's condition without the lock for the current spin
// budget (in microseconds), and adapts the budget to whether that paid off.
func (q *Queue) spinFor(w waitOn) {
	n := q.spin.Load()
	if futex.Spin(func() bool { return q.ready(w) }, time.Duration(n)*time.Microsecond) {
		q.spin.Store(min(n*2, spinMax))
		return
	}
	q.spin.Store(max(n/2, spinMin))
}

// ready guesses, without the lock, whether a waiter for w should look again.
func (q *Queue) ready(w waitOn) bool {
	if atomic.LoadUint32(q.w32(offFlags))&flagShut != 0 {
		return true
	}
	switch w {
	case notEmpty:
		return atomic.LoadUint64(q.w64(offCount)) > 0
	case notFull:
		return atomic.LoadUint64(q.w64(offCount)) < q.maxsize
	}
	return atomic.LoadUint64(q.w64(offUnfinished)) == 0
}

// wake bumps w's word and returns how many of its sleepers to wake once the
// lock is released, at most n; the lock must be held.
func (q *Queue) wake(w waitOn, n int) int {
	s := int(atomic.LoadUint32(q.w32(w.sleepers)))
	if s == 0 || n <= 0 {
		return 0
	}
	atomic.AddUint32(q.w32(w.word), 1)
	return min(s, n)
}

// signal wakes n sleepers on w's word, with what wake returned.
func (q *Queue) signal(w waitOn, n int) {
	if n > 0 {
		futex.Wake(q.w32(w.word), n)
	}
}
