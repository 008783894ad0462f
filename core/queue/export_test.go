package queue

import (
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// NewCap is New with a ring that starts at capacity bytes (a power of two
// of at least 64), so tests can wrap and grow it with small messages.
var NewCap = newQueue

// HeaderSize is the bytes the header takes before the ring.
const HeaderSize = hdrSize

// The crash points CrashAt can stop a process at.
const (
	StageCopied    = stageCopied
	StageJournaled = stageJournaled
	StageApplying  = stageApplying
	StageReserved  = stageReserved
	StageFilled    = stageFilled
)

// CrashAt makes every later commit in this process call f at stage. Tests
// set it in a child process before its first operation.
func CrashAt(stage int, f func()) {
	testHook = func(s int) {
		if s == stage {
			f()
		}
	}
}

// Stats is what a handle knows about its queue and has done to it.
type Stats struct {
	Capacity  int   // ring bytes, from the header
	Allocated int64 // bytes of the memfd backed by memory
	Takeovers int64 // locks taken over from dead holders by this handle
	Redos     int64 // journaled operations this handle finished for others
	Shrinks   int64 // drained rings shrunk by this handle
	Grows     int64 // ring growths by this handle
}

// StatsOf returns q's Stats.
func StatsOf(q *Queue) Stats {
	q.life.RLock()
	defer q.life.RUnlock()
	s := Stats{
		Takeovers: q.takeovers.Load(), Redos: q.redos.Load(),
		Shrinks: q.shrinks.Load(), Grows: q.grows.Load(),
	}
	if q.closed.Load() {
		return s
	}
	s.Capacity = int(atomic.LoadUint64(q.w64(offCap)))
	var st unix.Stat_t
	if unix.Fstat(q.fd, &st) == nil {
		s.Allocated = st.Blocks * 512
	}
	return s
}

// Check walks the ring under the lock and checks what every operation must
// preserve: records tile [head, tail) exactly, count of them, and no journal
// is left pending.
func Check(q *Queue) error {
	if !q.enter() {
		return errClosed
	}
	defer q.life.RUnlock()
	if _, err := q.lock(-1); err != nil {
		return err
	}
	defer q.unlock()
	if atomic.LoadUint32(q.w32(offJournal)) != 0 {
		return fmt.Errorf("journal pending under the lock")
	}
	head, tail := atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail))
	count := atomic.LoadUint64(q.w64(offCount))
	n := uint64(0)
	for p := head; p < tail; n++ {
		l, err := q.lengthAt(p, tail)
		if err != nil {
			return err
		}
		p += record(l)
		if p > tail {
			return fmt.Errorf("record %d ends at %d, past tail %d", n, p, tail)
		}
	}
	if n != count {
		return fmt.Errorf("%d records between head %d and tail %d, count says %d", n, head, tail, count)
	}
	return nil
}
