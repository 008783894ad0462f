package queue

import (
	"encoding/binary"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpgo/mpgo/core/internal/futex"
)

// Reservations: a put of a big message copies its payload outside the
// lock, so that getters (and other putters) work on the ring meanwhile.
// See the layout comment for the protocol.
const (
	// reserveMin is the smallest payload put through a reservation: below
	// it, taking the lock twice costs more than the copy it takes out of
	// the lock.
	reserveMin = 64 << 10

	offSlots  = 160 // reservation slots: uint64 position, uint32 pid, uint32 zero
	slotSize  = 16
	slotCount = 8

	// Flags in a record's length word: the payload is still being copied
	// by the reservation's owner; or the owner died before it finished,
	// and getters drop the record.
	lenPending = 1 << 63
	lenDead    = 1 << 62
	lenFlags   = lenPending | lenDead
)

func (q *Queue) slotPos(i int) *uint64 { return q.w64(offSlots + uintptr(i)*slotSize) }
func (q *Queue) slotPid(i int) *uint32 { return q.w32(offSlots + uintptr(i)*slotSize + 8) }

// wordAt returns the address of the length word of the record at p. The
// lock must be held, or a reservation of p by this process live.
func (q *Queue) wordAt(p uint64) *uint64 {
	return (*uint64)(unsafe.Pointer(&q.data[p&(q.capacity-1)]))
}

// reserved reports whether any slot, of a put or a take-out, is taken:
// the ring must then neither grow nor shrink. The lock must be held.
func (q *Queue) reserved() bool {
	for i := range slotCount {
		if atomic.LoadUint32(q.slotPid(i)) != 0 || atomic.LoadUint32(q.takePid(i)) != 0 {
			return true
		}
	}
	return false
}

// reap frees the slots that no longer reserve anything (their owner died
// before its reservation was committed, or after it finished it), and turns
// the pending records of dead owners into dead records, which getters drop.
// check says whether to look at whether owners are alive, which costs
// system calls. The lock must be held.
func (q *Queue) reap(check bool) (killed bool) {
	head, tail := atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail))
	for i := range slotCount {
		pid := atomic.LoadUint32(q.slotPid(i))
		if pid == 0 {
			continue
		}
		p := atomic.LoadUint64(q.slotPos(i))
		if p < head || p >= tail || p%8 != 0 {
			atomic.StoreUint32(q.slotPid(i), 0)
			continue
		}
		w := q.wordAt(p)
		n := atomic.LoadUint64(w)
		if n&lenPending == 0 {
			atomic.StoreUint32(q.slotPid(i), 0)
			continue
		}
		if check && pid != q.pid && !futex.Alive(pid) {
			atomic.StoreUint64(w, n&^lenPending|lenDead)
			atomic.StoreUint32(q.slotPid(i), 0)
			killed = true
		}
	}
	return killed
}

// awaitReservations waits, without the lock, for the reservations in
// progress to finish, so that the ring can grow: it spins a while, then
// reaps those of dead owners and lets the caller look again.
func (q *Queue) awaitReservations() {
	busy := func() bool {
		for i := range slotCount {
			if atomic.LoadUint32(q.slotPid(i)) != 0 || atomic.LoadUint32(q.takePid(i)) != 0 {
				return true
			}
		}
		return false
	}
	if futex.Spin(func() bool { return !busy() }, growWaitMax) {
		return
	}
	if ok, err := q.lock(-1); ok && err == nil {
		q.reap(true)
		q.reapTakes()
		q.unlock()
	}
	time.Sleep(100 * time.Microsecond)
}

// reservation is a put in progress outside the lock.
type reservation struct {
	slot int
	pos  uint64 // of the record
	n    uint64 // payload length
	data []byte // the ring as mapped when reserved; it cannot move until commit
	cap  uint64
}

// reserve claims ring space for msg, at the tail, as a pending record, and
// commits that (tail, count and unfinished move). It reports false, having
// done nothing, if no slot is free or the ring would have to grow while
// other reservations are live (growing moves the bytes their owners are
// copying). The lock must be held and the bound checked.
func (q *Queue) reserve(msg message) (reservation, bool, error) {
	slot := -1
	for i := range slotCount {
		if atomic.LoadUint32(q.slotPid(i)) == 0 {
			slot = i
			break
		}
	}
	if slot < 0 {
		return reservation{}, false, nil
	}
	n := uint64(msg.len())
	need := record(int(n))
	head, tail := atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail))
	if q.capacity-(tail-q.floor(head)) < need {
		if q.reserved() {
			return reservation{}, false, nil
		}
		if err := q.grow(need); err != nil {
			return reservation{}, false, err
		}
	}
	// The slot first, so that a committed reservation always has one; a
	// slot left by an owner killed before its commit is past the tail, and
	// reap frees it.
	atomic.StoreUint64(q.slotPos(slot), tail)
	atomic.StoreUint32(q.slotPid(slot), q.pid)
	i := tail & (q.capacity - 1)
	binary.LittleEndian.PutUint64(q.data[i:i+lenSize], n|lenPending)
	q.commit(head, tail+need, atomic.LoadUint64(q.w64(offCount))+1, atomic.LoadUint64(q.w64(offUnfinished))+1)
	return reservation{slot: slot, pos: tail, n: n, data: q.data, cap: q.capacity}, true, nil
}

// fill copies msg into its reserved record, without the lock.
func (r *reservation) fill(msg message) {
	at := r.pos + lenSize
	for _, part := range msg {
		k := copy(r.data[at&(r.cap-1):], part)
		copy(r.data, part[k:])
		at += uint64(len(part))
	}
}

// finish makes the reserved record a message: a single store of its length
// word, so a process killed at any instant leaves it pending (and reap
// drops it once it sees the owner dead) or whole. The lock must be held.
func (q *Queue) finish(r *reservation) {
	if testHook != nil {
		testHook(stageFilled)
	}
	atomic.StoreUint64(q.wordAt(r.pos), r.n)
	atomic.StoreUint32(q.slotPid(r.slot), 0)
	// Getters that found this record pending watch the word without
	// sleeping on it first: bump it whether or not they sleep.
	atomic.AddUint32(q.w32(offNotEmpty), 1)
}

// pendingWait is how long a getter that finds the next message still being
// copied spins for it before it sleeps: about as long as the copy takes.
func pendingWait(n uint64) time.Duration {
	return min(max(time.Duration(n*uint64(time.Second)/growRate), growWaitMin), growWaitMax)
}
