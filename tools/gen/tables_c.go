package main

import (
	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/pool"
	"github.com/mpgo/mpgo/core/process"
	"github.com/mpgo/mpgo/core/sync"
)

// The constants the C ABI and the C fast paths share with Go and Python.
// Those with no home in core (what only the bindings agree on: the queue
// message tags, the pool's task kinds) are defined here, once.

// Queue message tags: the last byte of a queue message that is not a plain
// pickle (pybind/cext/queues.c, python/mpgo/queues.py and reduction.py).
const (
	queueRawTag = 0 // a large bytes-like put raw, unpickled
	queueOOBTag = 1 // a pickle-5 message with out-of-band buffers
)

// Pool task kinds: the first field of a task's payload, which pool.py writes
// and the C worker loop (pybind/cext/pool_worker.c) reads.
const (
	taskApply     = 0   // (args, kwds): func(*args, **kwds)
	taskMap       = 1   // a chunk: list(map(func, chunk))
	taskStarmap   = 2   // a chunk: list(starmap(func, chunk))
	taskCall      = 3   // x: func(x) (imap with chunksize 1)
	taskApplyArgs = 4   // args: func(*args) (apply, no kwds)
	statusWake    = 100 // a result status the parent puts to wake its own reader
)

func init() {
	areas = append(areas,
		area{order: 1, title: "core/errs/errs.go: error codes (negated in C, as the C ABI returns them)",
			python: true, pyPrefix: "ERR_", c: true, cPrefix: "E", negC: true, items: []constant{
				{"EMPTY", int64(errs.CodeEmpty), "queue.Empty"},
				{"FULL", int64(errs.CodeFull), "queue.Full"},
				{"TIMEOUT", int64(errs.CodeTimeout), "TimeoutError"},
				{"CLOSED", int64(errs.CodeClosed), "use of a closed object"},
				{"OS", int64(errs.CodeOS), "OSError(errno)"},
				{"VALUE", int64(errs.CodeValue), "ValueError"},
				{"PROCESS", int64(errs.CodeProcess), "ProcessError"},
				{"AUTH", int64(errs.CodeAuth), "AuthenticationError"},
				{"FORKED", int64(errs.CodeForked), "engine used after fork"},
				{"BROKEN", int64(errs.CodeBroken), "BrokenBarrierError"},
				{"TOOSHORT", int64(errs.CodeTooShort), "BufferTooShort"},
				{"INTERNAL", int64(errs.CodeInternal), "a bug in mpgo (recovered panic)"},
				{"NOTOWNER", int64(errs.CodeNotOwner), "release of a lock not owned"},
				{"TOOMANY", int64(errs.CodeTooMany), "semaphore released too many times"},
				{"INTERRUPT", int64(errs.CodeInterrupt), "interrupted wait"},
				{"NOTSUPPORTED", int64(errs.CodeNotSupport), "NotImplementedError"},
			}},
		area{order: 20, title: "core/sync/lock.go, semaphore.go: Lock, RLock and Semaphore layouts and kinds",
			c: true, python: true, items: []constant{
				{"LOCK_SIZE", sync.LockSize, "bytes of a Lock or RLock (and of a Semaphore)"},
				{"LOCK_STATE", sync.LockStateOff, "uint32 state 0/1/2, the futex word"},
				{"LOCK_PID", sync.LockPidOff, "uint32 holder pid; with state, one 64-bit word"},
				{"LOCK_TID", sync.LockTidOff, "uint32 holder tid"},
				{"LOCK_COUNT", sync.LockCountOff, "uint32 recursion count (RLock)"},
				{"SEM_SIZE", sync.SemaphoreSize, "bytes of a Semaphore"},
				{"SEM_VALUE", sync.SemValueOff, "uint32 value, the futex word"},
				{"SEM_MAX", sync.SemMaxOff, "uint32 bound (0: unbounded)"},
				{"SEM_SLEEPERS", sync.SemSleepersOff, "uint32 acquirers that may sleep"},
				{"SEM_VALUE_MAX", sync.SemValueMax, "largest value (SEM_VALUE_MAX)"},
				{"KIND_LOCK", sync.KindLock, "a Lock"},
				{"KIND_RLOCK", sync.KindRLock, "an RLock"},
				{"KIND_SEMAPHORE", sync.KindSemaphore, "a Semaphore"},
			}},
		area{order: 30, title: "core/pool/wire.go: the pool's task and result messages",
			c: true, python: true, items: []constant{
				{"POOL_TASK_HEADER", pool.TaskHeaderSize, "uint64 id | uint16 n, then n bytes of name"},
				{"POOL_TASK_NAMELEN", pool.TaskNameLenOff, "offset of the name's length"},
				{"POOL_RESULT_HEADER", pool.ResultHeaderSize, "uint64 id | uint32 slot | uint8 status, then the body"},
				{"POOL_RESULT_SLOT", pool.ResultSlotOff, "offset of the slot"},
				{"POOL_RESULT_STATUS", pool.ResultStatusOff, "offset of the status"},
				{"POOL_OK", pool.StatusOK, "the body is the result"},
				{"POOL_ERROR", pool.StatusError, "the body is the error"},
				{"POOL_PANIC", pool.StatusPanic, "a Go worker panicked"},
				{"POOL_LOST", pool.StatusLost, "the worker died running the task"},
				{"POOL_BROKEN", pool.StatusBroken, "workers cannot start"},
				{"POOL_CLOSED", pool.StatusClosed, "the pool has stopped"},
				{"POOL_INIT_FAILED", pool.StatusInitFailed, "a worker's initializer failed"},
				{"POOL_WAKE", statusWake, "the parent wakes its own result reader"},
				{"POOL_APPLY", taskApply, "task kind: (args, kwds)"},
				{"POOL_MAP", taskMap, "task kind: a chunk, map"},
				{"POOL_STARMAP", taskStarmap, "task kind: a chunk, starmap"},
				{"POOL_CALL", taskCall, "task kind: one argument"},
				{"POOL_APPLY_ARGS", taskApplyArgs, "task kind: args, no kwds"},
			}},
		area{order: 40, title: "queue message tags (the bindings' own)",
			c: true, python: true, items: []constant{
				{"QUEUE_RAW_TAG", queueRawTag, "a bytes-like put raw"},
				{"QUEUE_OOB_TAG", queueOOBTag, "a pickle with out-of-band buffers"},
			}},
		area{order: 50, title: "core/process: a timed wait's status", c: true, python: true, items: []constant{
			{"STILL_RUNNING", process.StillRunning, "the child has not exited"},
		}},
	)
}
