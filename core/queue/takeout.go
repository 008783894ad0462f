package queue

import (
	"sync/atomic"

	"github.com/mpgo/mpgo/core/internal/futex"
)

// Take-outs: a get of a big message copies its payload out of the ring
// outside the lock, as a reservation copies a put's in. See the layout
// comment for the protocol.
const (
	offTakes = 288 // take-out slots: uint64 position, uint32 pid, uint32 zero
)

func (q *Queue) takePos(i int) *uint64 { return q.w64(offTakes + uintptr(i)*slotSize) }
func (q *Queue) takePid(i int) *uint32 { return q.w32(offTakes + uintptr(i)*slotSize + 8) }

// floor returns the lowest position whose bytes are still in use: head, or
// the record of the oldest take-out in progress. Ring space below it is
// free. The lock must be held (awaitRoom guesses without it).
func (q *Queue) floor(head uint64) uint64 {
	f := head
	for i := range slotCount {
		if atomic.LoadUint32(q.takePid(i)) != 0 {
			if p := atomic.LoadUint64(q.takePos(i)); p < f {
				f = p
			}
		}
	}
	return f
}

// reapTakes frees the take-out slots that no longer hold anything: their
// record is not below head (the getter died before its commit) or their
// getter is dead (its message is lost, as a getter killed during a get
// loses the message it was getting). The lock must be held.
func (q *Queue) reapTakes() {
	head := atomic.LoadUint64(q.w64(offHead))
	for i := range slotCount {
		pid := atomic.LoadUint32(q.takePid(i))
		if pid == 0 {
			continue
		}
		if atomic.LoadUint64(q.takePos(i)) >= head || (pid != q.pid && !futex.Alive(pid)) {
			atomic.StoreUint32(q.takePid(i), 0)
		}
	}
}

// takeOut gets the message at head, of n payload bytes, into buf, copying
// it outside the lock. The lock must be held, the record at head whole, and
// no claim wanted; it returns with the lock released and the getters and
// putters to signal, and false (having done nothing, still locked) if no
// slot is free.
func (q *Queue) takeOut(buf []byte, n int) (putters, getters int, ok bool) {
	slot := -1
	for i := range slotCount {
		if atomic.LoadUint32(q.takePid(i)) == 0 {
			slot = i
			break
		}
	}
	if slot < 0 {
		return 0, 0, false
	}
	head, tail := atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail))
	count := atomic.LoadUint64(q.w64(offCount))
	// The slot first: a slot at or past head is stale, and reaped.
	atomic.StoreUint64(q.takePos(slot), head)
	atomic.StoreUint32(q.takePid(slot), q.pid)
	q.commit(head+record(n), tail, count-1, atomic.LoadUint64(q.w64(offUnfinished)))
	if q.maxsize > 0 {
		putters = q.wake(notFull, 1)
	}
	if count > 1 {
		getters = q.wake(notEmpty, 1)
	}
	data, c := q.data, q.capacity
	q.unlock()
	k := copy(buf[:n], data[(head+lenSize)&(c-1):])
	copy(buf[k:n], data)
	if ok, _ := q.lock(-1); ok {
		atomic.StoreUint32(q.takePid(slot), 0)
		if atomic.LoadUint64(q.w64(offCount)) == 0 && !q.reserved() {
			q.shrink()
		}
		q.unlock()
	}
	return putters, getters, true
}
