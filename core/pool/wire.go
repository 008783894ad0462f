package pool

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// A task message, put on the task queue by the parent and taken by a worker:
//
//	off 0    uint64  task id; ids start at 1 and are put in increasing order
//	off 8    uint16  n, the length of the function name
//	off 10   n bytes the name the function was registered under
//	off 10+n bytes   the payload
const (
	taskID      = 0
	taskNameLen = 8
	taskName    = 10
	maxName     = 1<<16 - 1
)

// A result message, put on the result queue by a worker (or, for the
// statuses from StatusLost on, by the parent's manager in External mode):
//
//	off 0    uint64  task id; 0 for messages about no task (a wake-up the
//	                 parent sends itself in Go mode, StatusBroken,
//	                 StatusClosed, StatusInitFailed)
//	off 8    uint32  slot of the worker that ran the task
//	off 12   uint8   status, below
//	off 13   bytes   the body: the result for StatusOK, else the error
const (
	resultID     = 0
	resultSlot   = 8
	resultStatus = 12
	resultBody   = 13
)

// Result statuses. Drivers outside Go (mpgo's Python Pool) read these from
// the result queue; their values are part of the wire format.
const (
	StatusOK    = 0 // fn returned a result
	StatusError = 1 // fn returned an error (or raised), or is not registered
	StatusPanic = 2 // fn panicked; the worker recovered and lives on
	// StatusLost: the worker running the task died; the body is
	// "pid status" (status: n for exit(n), -s for signal s).
	StatusLost = 3
	// StatusBroken: workers cannot be started; every task fails. The body
	// is "pid status reason", of the worker whose death broke the pool.
	StatusBroken = 4
	// StatusClosed: the pool has stopped and every worker is gone; nothing
	// is put after it.
	StatusClosed = 5
	// StatusInitFailed: a worker's initialization failed (a foreign
	// driver's worker puts it, with its own body, before it exits).
	StatusInitFailed = 6
)

// The slot region is one shared segment with a slot per worker, each on a
// cache line of its own so that workers do not contend:
//
//	slot i at off i*slotSize
//	off 0    uint64  task: the id of the task the worker claimed, 0 when it
//	                 holds none
//	off 8    uint32  pid of the worker, stored once it is ready to take
//	                 tasks; 0 until then (a worker that dies with 0 here
//	                 never started)
//	off 16   uint64  position + 1 of the claimed task's message in the task
//	                 queue; 0 when none
//
// A worker claims a task under the task queue's lock, after copying it and
// before the get commits (queue.GetClaim): it stores the position, then the
// id. It stores 0 in task, then in pos, once the result is in the result
// queue. So when a worker dies the parent finds either task 0 (it held
// nothing), or an id and a position, and the task queue's head says whether
// that get committed (queue.Taken): if it did, the task is lost with the
// worker; if not, the task is still queued and another worker runs it. No
// task is lost silently and none is failed while queued. The parent resets
// a slot to zero before it starts a worker in it.
const (
	slotSize = 64
	slotTask = 0
	slotPid  = 8
	slotPos  = 16
)

// slot is a view of one worker's slot in the slot region.
type slot struct {
	task *atomic.Uint64
	pid  *atomic.Uint32
	pos  *atomic.Uint64
}

func slotAt(region []byte, i int) slot {
	b := region[i*slotSize : (i+1)*slotSize]
	return slot{
		task: (*atomic.Uint64)(unsafe.Pointer(&b[slotTask])),
		pid:  (*atomic.Uint32)(unsafe.Pointer(&b[slotPid])),
		pos:  (*atomic.Uint64)(unsafe.Pointer(&b[slotPos])),
	}
}

// taskHeader encodes the header of a task message into b's storage.
func taskHeader(b []byte, id uint64, name string) []byte {
	b = binary.LittleEndian.AppendUint64(b[:0], id)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	return append(b, name...)
}

// resultHeader encodes the header of a result message into b's storage.
func resultHeader(b []byte, id uint64, slot int, status byte) []byte {
	b = binary.LittleEndian.AppendUint64(b[:0], id)
	b = binary.LittleEndian.AppendUint32(b, uint32(slot))
	return append(b, status)
}
