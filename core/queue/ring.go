package queue

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/errs"
)

// Crash points a test can stop a process at, through testHook, to kill it
// there: after the payload is in the ring but before the journal, after the
// journal is committed but before it is applied, and half way through
// applying it.
const (
	stageCopied = iota + 1
	stageJournaled
	stageApplying
	stageReserved // a reserved record's payload not yet copied, lock free
	stageFilled   // the payload copied, the lock taken to finish it
)

// testHook, when set (by tests only, before any operation), is called at
// each crash point of a commit.
var testHook func(stage int)

// record returns the ring bytes a message of n payload bytes takes.
func record(n int) uint64 { return lenSize + (uint64(n)+7)&^7 }

// lock takes the queue lock, waiting at most wait (< 0: no limit), finishes
// any operation a dead holder left journaled, and maps the ring as it is
// now. It reports false if the wait ran out.
func (q *Queue) lock(wait time.Duration) (bool, error) {
	ok, dead := q.mu.Lock(q.pid, 0, wait)
	if !ok && wait > 0 {
		// One last try, which checks whether the holder is alive, so that a
		// caller retrying in short slices takes over a dead holder's lock
		// even if Lock only looks every CheckEvery.
		ok, dead = q.mu.Lock(q.pid, 0, 0)
	}
	if !ok {
		return false, nil
	}
	raceAcquire()
	if dead != 0 {
		q.takeovers.Add(1)
	}
	if err := q.recover(); err != nil {
		q.unlock()
		return false, err
	}
	if err := q.syncMap(); err != nil {
		q.unlock()
		return false, err
	}
	return true, nil
}

// unlock releases the queue lock.
func (q *Queue) unlock() {
	raceRelease()
	q.mu.Unlock()
}

// recover applies a journaled operation that its process did not finish,
// then checks the header, which every operation trusts.
func (q *Queue) recover() error {
	if atomic.LoadUint32(q.w32(offJournal)) != 0 {
		q.apply(atomic.LoadUint64(q.w64(offJHead)), atomic.LoadUint64(q.w64(offJTail)),
			atomic.LoadUint64(q.w64(offJCount)), atomic.LoadUint64(q.w64(offJUnfinished)))
		atomic.StoreUint32(q.w32(offJournal), 0)
		q.redos.Add(1)
	}
	head, tail := atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail))
	c, n := atomic.LoadUint64(q.w64(offCap)), atomic.LoadUint64(q.w64(offCount))
	if head > tail || tail-head > c || head%8 != 0 || tail%8 != 0 || n > (tail-head)/lenSize ||
		(n == 0) != (head == tail) {
		return fmt.Errorf("queue: corrupt header: head %d tail %d capacity %d count %d: %w",
			head, tail, c, n, errs.ErrInternal)
	}
	return nil
}

// syncMap maps the ring at the capacity in the header, if this process has
// not yet mapped it or another one has grown or shrunk it since.
func (q *Queue) syncMap() error {
	c := atomic.LoadUint64(q.w64(offCap))
	if c == q.capacity {
		return nil
	}
	if c < minCapacity || c > maxCapacity || c&(c-1) != 0 {
		return fmt.Errorf("queue: corrupt header: capacity %d, mapped %d: %w", c, q.capacity, errs.ErrInternal)
	}
	return q.remap(c)
}

// remap maps [0, hdrSize+c) of the memfd, moving the existing mapping.
func (q *Queue) remap(c uint64) error {
	size := int(hdrSize + c)
	var st unix.Stat_t
	if err := unix.Fstat(q.fd, &st); err != nil {
		return fmt.Errorf("queue: fstat: %w", err)
	}
	if st.Size < int64(size) {
		// Touching the mapping past the end of the file would be SIGBUS.
		return fmt.Errorf("queue: corrupt header: capacity %d in a file of %d bytes: %w", c, st.Size, errs.ErrInternal)
	}
	var m []byte
	var err error
	if q.mapping == nil {
		m, err = unix.Mmap(q.fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	} else {
		m, err = unix.Mremap(q.mapping, size, unix.MREMAP_MAYMOVE)
	}
	if err != nil {
		return fmt.Errorf("queue: map %d bytes: %w", size, err)
	}
	q.mapping, q.data, q.capacity = m, m[hdrSize:], c
	return nil
}

// grow enlarges the ring, doubling it until need more bytes fit. See the
// layout comment for why a crash at any point leaves a valid ring.
func (q *Queue) grow(need uint64) error {
	head, tail := atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail))
	used, old := tail-head, q.capacity
	c := old
	for c-used < need {
		if c >= maxCapacity {
			return fmt.Errorf("queue: ring of %d bytes cannot take %d more: %w", old, need, errs.ErrValue)
		}
		c <<= 1
	}
	if err := unix.Ftruncate(q.fd, int64(hdrSize+c)); err != nil {
		return fmt.Errorf("queue: grow to %d bytes: %w", c, err)
	}
	if err := q.remap(c); err != nil {
		return err
	}
	// Position p moves from index p mod old to p mod c, which differ by a
	// multiple of old: the target is p mod old itself or lies in [old, c).
	for p := head; p < tail; {
		src, dst := p&(old-1), p&(c-1)
		n := min(tail-p, old-src, c-dst)
		if src != dst {
			copy(q.data[dst:dst+n], q.data[src:src+n])
		}
		p += n
	}
	atomic.StoreUint64(q.w64(offCap), c)
	q.grows.Add(1)
	return nil
}

// lengthAt reads the payload length of the record at position p, which
// must be below tail.
func (q *Queue) lengthAt(p, tail uint64) (int, error) {
	i := p & (q.capacity - 1)
	n := binary.LittleEndian.Uint64(q.data[i:i+lenSize]) &^ lenFlags
	if n > tail-p-lenSize {
		return 0, fmt.Errorf("queue: corrupt ring: record of %d bytes at %d, tail %d: %w", n, p, tail, errs.ErrInternal)
	}
	return int(n), nil
}

// copyIn copies b into the ring from position p on, wrapping at the end.
func (q *Queue) copyIn(p uint64, b []byte) {
	k := copy(q.data[p&(q.capacity-1):], b)
	copy(q.data, b[k:])
}

// copyOut copies len(b) ring bytes from position p on into b.
func (q *Queue) copyOut(p uint64, b []byte) {
	k := copy(b, q.data[p&(q.capacity-1):])
	copy(b[k:], q.data)
}

// putLocked appends msgs to the ring, growing it if they do not fit, and
// commits them in one step. The lock must be held and the bound checked.
func (q *Queue) putLocked(msgs []message) error {
	need := uint64(0)
	for _, m := range msgs {
		need += record(m.len())
	}
	head, tail := atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail))
	if q.capacity-(tail-q.floor(head)) < need {
		if q.reserved() {
			return errBusy
		}
		if err := q.grow(need); err != nil {
			return err
		}
	}
	p := tail
	for _, m := range msgs {
		n := m.len()
		i := p & (q.capacity - 1)
		binary.LittleEndian.PutUint64(q.data[i:i+lenSize], uint64(n))
		at := p + lenSize
		for _, part := range m {
			q.copyIn(at, part)
			at += uint64(len(part))
		}
		p += record(n)
	}
	k := uint64(len(msgs))
	q.commit(head, p, atomic.LoadUint64(q.w64(offCount))+k, atomic.LoadUint64(q.w64(offUnfinished))+k)
	return nil
}

// takeLocked copies up to max whole messages back to back into buf, as
// many as fit, appends their lengths to lens and commits their removal,
// with that of the dead records it meets. The lock must be held and the
// queue not be empty. If the first message does not fit, nothing is taken
// and need is its length; if it is still being copied into the ring, the
// error is errPending.
func (q *Queue) takeLocked(buf []byte, max int, lens []int, claim func(uint64, []byte)) (_ []int, need int, err error) {
	head, tail := atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail))
	count := atomic.LoadUint64(q.w64(offCount))
	p, off, k, dropped := head, 0, uint64(0), uint64(0)
	for k+dropped < count && k < uint64(max) {
		i := p & (q.capacity - 1)
		w := binary.LittleEndian.Uint64(q.data[i : i+lenSize])
		if w&lenPending != 0 {
			break
		}
		n, err := q.lengthAt(p, tail)
		if err != nil {
			return lens, 0, err
		}
		if w&lenDead != 0 {
			p += record(n)
			dropped++
			continue
		}
		if n > len(buf)-off {
			if k == 0 {
				return lens, n, fmt.Errorf("queue: message of %d bytes, buffer of %d: %w", n, len(buf), errs.ErrTooShort)
			}
			break
		}
		q.copyOut(p+lenSize, buf[off:off+n])
		if claim != nil {
			claim(p, buf[off:off+n])
		}
		lens = append(lens, n)
		off += n
		p += record(n)
		k++
	}
	if k == 0 && dropped == 0 {
		return lens, 0, errPending
	}
	q.commit(p, tail, count-k-dropped, atomic.LoadUint64(q.w64(offUnfinished))-dropped)
	if count == k+dropped && !q.reserved() {
		q.shrink()
	}
	return lens, 0, nil
}

// commit makes an operation happen: see the layout comment. The payload
// bytes must already be in place.
//
// Plain stores suffice for the words only lock holders read: the lock
// orders them for live processes, and for a process killed here what counts
// is program order, which the compiler keeps among stores and the CPU
// retires in; everything it retired is visible once it is dead.
func (q *Queue) commit(head, tail, count, unfinished uint64) {
	if testHook != nil {
		testHook(stageCopied)
	}
	*q.w64(offJHead) = head
	*q.w64(offJTail) = tail
	*q.w64(offJCount) = count
	*q.w64(offJUnfinished) = unfinished
	atomic.StoreUint32(q.w32(offJournal), 1)
	if testHook != nil {
		testHook(stageJournaled)
	}
	q.apply(head, tail, count, unfinished)
	atomic.StoreUint32(q.w32(offJournal), 0)
}

// apply stores the live words of an operation. Only count, which Len and
// spinning waiters read without the lock, needs an atomic store.
func (q *Queue) apply(head, tail, count, unfinished uint64) {
	*q.w64(offHead) = head
	*q.w64(offTail) = tail
	if testHook != nil {
		testHook(stageApplying)
	}
	atomic.StoreUint64(q.w64(offCount), count)
	*q.w64(offUnfinished) = unfinished
}

// keepResident is the ring size down to which a drained ring shrinks (or
// its initial capacity, if larger), and which it keeps resident: a ring
// that gave its pages back on every drain would fault them in again on the
// next put, at a fraction of the speed of a copy, and a few big messages
// in flight at once need a ring of a few times their size.
const keepResident = 8 << 20

// shrink gives the memory of a drained ring grown past keepResident back
// to the kernel: it stores the smaller capacity, then truncates the file,
// which frees the pages past it. Killed in between, it leaves a file longer
// than the ring, which is harmless. The queue must be empty and locked.
func (q *Queue) shrink() {
	c := max(q.initCap, keepResident)
	if q.capacity <= c {
		return
	}
	atomic.StoreUint64(q.w64(offCap), c)
	if unix.Ftruncate(q.fd, int64(hdrSize+c)) == nil {
		q.shrinks.Add(1)
	}
	// A failed remap leaves the larger mapping, which syncMap retries at
	// the next lock; only its tail is past the end of the file.
	_ = q.remap(c)
}
