package queue

import (
	"bytes"
	"sync/atomic"
	"testing"
)

// Big gets copy out outside the lock; small ones and big ones interleave
// in order, and the ring's room below a take-out in progress stays taken.
func TestTakeOut(t *testing.T) {
	q, err := newQueue(0, 1<<18)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	msgs := [][]byte{bytes.Repeat([]byte{1}, 100<<10), []byte("small"), bytes.Repeat([]byte{2}, 200<<10), bytes.Repeat([]byte{3}, reserveMin)}
	for round := 0; round < 20; round++ {
		for _, m := range msgs {
			if err := q.Put(m, -1); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 1<<20)
		for _, m := range msgs {
			n, err := q.Get(buf, 0)
			if err != nil || !bytes.Equal(buf[:n], m) {
				t.Fatalf("round %d: got %d bytes, %v", round, n, err)
			}
		}
		if q.reserved() {
			t.Fatal("a take-out slot left taken")
		}
	}
	// A take-out slot of a dead getter holds its room until a putter that
	// needs it reaps it; one past head is stale.
	if _, err := q.lock(-1); err != nil {
		t.Fatal(err)
	}
	head := atomic.LoadUint64(q.w64(offHead))
	atomic.StoreUint64(q.takePos(0), head-8)
	atomic.StoreUint32(q.takePid(0), 1<<30) // no such process
	atomic.StoreUint64(q.takePos(1), head)
	atomic.StoreUint32(q.takePid(1), q.pid)
	if f := q.floor(head); f != head-8 {
		t.Fatalf("floor %d, want %d", f, head-8)
	}
	q.reapTakes()
	if q.reserved() {
		t.Fatal("dead and stale take-out slots not reaped")
	}
	q.unlock()
	if err := q.Put(bytes.Repeat([]byte{4}, 1<<19), -1); err != nil {
		t.Fatal(err)
	}
}
