package pipe

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/queue"
	mpsync "github.com/mpgo/mpgo/core/sync"
)

// The control block of a Pipe(), in shared memory (an arena block), shared by
// every copy of both ends in every process. Side s is the end that receives
// on one ring; its doorbell is an os pipe whose read end is that end's
// fileno() and whose write end the other end's copies hold.
//
//	off  0  2 x uint32  armed[s]: threads of side s waiting on its doorbell
//	                    in poll() or wait() now (changed under the lock);
//	                    a sender rings while it is non-zero
//	off  8  2 x uint32  level[s]: 1, for good, once somebody asked for side
//	                    s's fileno(); from then on the doorbell holds one
//	                    byte exactly while the ring holds a message
//	off 16  16 bytes    semaphore (core/sync): open copies of side 0's end
//	off 32  16 bytes    semaphore: open copies of side 1's end; a send to an
//	                    end closed everywhere raises BrokenPipeError
//	off 48  16 bytes    lock (core/sync Lock): guards armed, full and the
//	                    switch to level mode
//	off 64  2 x uint32  full[s]: level mode, the doorbell holds its byte
//
// A sender rings side s after every put: in level mode it takes the lock and,
// if the ring holds a message and full[s] is 0, writes the byte and sets
// full[s]; otherwise, if armed[s] is non-zero, it writes a byte without the
// lock (bytes may be stale: a waiter looks at the ring and drains them). The
// Python side (mpgo/connection.py, _Doorbell) and the C fast path ring the
// same way; the receiver's side of the protocol is Python's alone.
const (
	CtlArmed     = 0
	CtlLevel     = 8
	CtlAlive     = 16 // + CtlAliveSize * side
	CtlAliveSize = mpsync.SemaphoreSize
	CtlLock      = 48
	CtlFull      = 64
	CtlSize      = 72
)

// Bell is a sender's doorbell of one receiving side of a Pipe(). Its methods
// are safe for concurrent use.
type Bell struct {
	armed, level, full *uint32
	lock               *mpsync.Lock
	fd                 int
}

// OpenBell returns the doorbell of side (0 or 1) of the pipe whose control
// block is ctl (CtlSize bytes, aligned to 8), rung by writing to fd, the
// write end of that side's doorbell pipe. The caller keeps fd open while it
// uses the Bell and closes it afterwards: while any copy of the write end is
// open the receiver does not see the sending end as gone.
func OpenBell(ctl []byte, side, fd int) (*Bell, error) {
	if len(ctl) < CtlSize || uintptr(unsafe.Pointer(unsafe.SliceData(ctl)))%8 != 0 || side&^1 != 0 || fd < 0 {
		return nil, fmt.Errorf("pipe: a control block of %d bytes aligned to 8, side 0 or 1 and an fd: %w", CtlSize, errs.ErrValue)
	}
	lock, err := mpsync.OpenLock(ctl[CtlLock : CtlLock+mpsync.LockSize])
	if err != nil {
		return nil, err
	}
	word := func(off int) *uint32 { return (*uint32)(unsafe.Pointer(&ctl[off+4*side])) }
	return &Bell{armed: word(CtlArmed), level: word(CtlLevel), full: word(CtlFull), lock: lock, fd: fd}, nil
}

// bellTid numbers the lock owners of this process's rings: each ring takes
// a Tid of its own, so concurrent rings exclude one another as threads do.
var bellTid atomic.Uint32

// ring tells side's receiver that a message was put on q, its ring.
func (b *Bell) ring(q *queue.Queue) error {
	if atomic.LoadUint32(b.level) != 0 {
		o := mpsync.Owner{Pid: uint32(os.Getpid()), Tid: bellTid.Add(1) | 1<<31}
		if _, err := b.lock.Acquire(o, -1); err != nil {
			return err
		}
		if q.Len() > 0 && atomic.LoadUint32(b.full) == 0 {
			b.write()
			atomic.StoreUint32(b.full, 1)
		}
		return b.lock.Release(o)
	}
	if atomic.LoadUint32(b.armed) != 0 {
		b.write()
	}
	return nil
}

func (b *Bell) write() {
	for {
		_, err := syscall.Write(b.fd, []byte{1})
		if !errors.Is(err, syscall.EINTR) {
			return // EAGAIN: already rung; EPIPE: nobody left to hear it
		}
	}
}
