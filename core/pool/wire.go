package pool

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
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

// A result message, put on the result queue by a worker:
//
//	off 0    uint64  task id; 0 is a wake-up the parent sends itself, and
//	                 carries nothing else
//	off 8    uint32  slot of the worker that ran the task
//	off 12   uint8   status: statusOK, statusError or statusPanic
//	off 13   bytes   the result if the status is statusOK, else the error text
const (
	resultID     = 0
	resultSlot   = 8
	resultStatus = 12
	resultBody   = 13
)

// Result statuses.
const (
	statusOK    = 0 // fn returned a result
	statusError = 1 // fn returned an error, or the name is not registered
	statusPanic = 2 // fn panicked; the worker recovered and lives on
)

// The slot region is one shared segment with a slot per worker, each on a
// cache line of its own so that workers do not contend:
//
//	slot i at off i*slotSize
//	off 0    uint64  task: 0 when the worker runs nothing, slotTaking while
//	                 it is in (or about to enter) a Get on the task queue,
//	                 else the id of the task it is running
//	off 8    uint32  pid of the worker, stored once it has attached the
//	                 queues; 0 until then (a worker that dies with 0 here
//	                 never started)
//
// The worker stores the task id right after its Get returns, and 0 right
// after it has put the result. The parent resets a slot to zero before it
// starts a worker in it.
const (
	slotSize   = 64
	slotTask   = 0
	slotPid    = 8
	slotTaking = ^uint64(0)
)

// slot is a view of one worker's slot in the slot region.
type slot struct {
	task *atomic.Uint64
	pid  *atomic.Uint32
}

func slotAt(region []byte, i int) slot {
	b := region[i*slotSize : (i+1)*slotSize]
	return slot{
		task: (*atomic.Uint64)(unsafe.Pointer(&b[slotTask])),
		pid:  (*atomic.Uint32)(unsafe.Pointer(&b[slotPid])),
	}
}

// taskHeader encodes the header of a task message into b's storage.
func taskHeader(b []byte, id uint64, name string) []byte {
	b = binary.LittleEndian.AppendUint64(b[:0], id)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	return append(b, name...)
}

// parseTask decodes a task message. payload aliases m.
func parseTask(m []byte) (id uint64, name string, payload []byte, err error) {
	if len(m) < taskName {
		return 0, "", nil, fmt.Errorf("pool: task message of %d bytes: %w", len(m), errs.ErrInternal)
	}
	id = binary.LittleEndian.Uint64(m[taskID:])
	n := int(binary.LittleEndian.Uint16(m[taskNameLen:]))
	if len(m) < taskName+n {
		return 0, "", nil, fmt.Errorf("pool: task message of %d bytes, name of %d: %w", len(m), n, errs.ErrInternal)
	}
	return id, string(m[taskName : taskName+n]), m[taskName+n:], nil
}

// resultHeader encodes the header of a result message into b's storage.
func resultHeader(b []byte, id uint64, slot int, status byte) []byte {
	b = binary.LittleEndian.AppendUint64(b[:0], id)
	b = binary.LittleEndian.AppendUint32(b, uint32(slot))
	return append(b, status)
}
