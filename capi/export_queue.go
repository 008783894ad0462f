package main

/*
#include <stdint.h>
#include <stddef.h>
*/
import "C"

import (
	"errors"
	"unsafe"

	"github.com/mpgo/mpgo/internal/handles"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/queue"
	"github.com/mpgo/mpgo/core/shm"
)

func cbytes(p unsafe.Pointer, n C.int64_t) []byte {
	if n <= 0 {
		return nil
	}
	return unsafe.Slice((*byte)(p), int(n))
}

//export goQueueNew
func goQueueNew(maxsize C.int64_t, handle *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	q, err := queue.New(int(maxsize))
	if err != nil {
		return capiErr(err)
	}
	*handle = C.int64_t(handles.Queues.Put(q))
	return 0
}

//export goQueueAttach
func goQueueAttach(ref *C.char, handle *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	r, err := shm.ParseRef(C.GoString(ref))
	if err != nil {
		return capiErr(err)
	}
	q, err := queue.Attach(r)
	if err != nil {
		return capiErr(err)
	}
	*handle = C.int64_t(handles.Queues.Put(q))
	return 0
}

//export goQueueRef
func goQueueRef(handle C.int64_t, buf *C.char, n C.size_t) (rc C.int) {
	defer capiRecover(&rc)
	q, err := handles.Queues.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	return capiString(q.Ref().String(), buf, n)
}

//export goQueuePut
func goQueuePut(handle C.int64_t, msg unsafe.Pointer, n C.int64_t, timeout C.double) (rc C.int) {
	defer capiRecover(&rc)
	q, err := handles.Queues.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	return capiErr(q.Put(cbytes(msg, n), seconds(timeout)))
}

//export goQueuePutMany
func goQueuePutMany(handle C.int64_t, msgs *unsafe.Pointer, lens *C.int64_t, count C.int64_t, timeout C.double, done *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	q, err := handles.Queues.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	ps := unsafe.Slice(msgs, int(count))
	ls := unsafe.Slice(lens, int(count))
	batch := make([][]byte, len(ps))
	for i := range ps {
		batch[i] = cbytes(ps[i], ls[i])
	}
	k, err := q.PutMany(batch, seconds(timeout))
	*done = C.int64_t(k)
	return capiErr(err)
}

//export goQueuePutV
func goQueuePutV(handle C.int64_t, parts *unsafe.Pointer, lens *C.int64_t, count C.int64_t, timeout C.double) (rc C.int) {
	defer capiRecover(&rc)
	q, err := handles.Queues.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	ps := unsafe.Slice(parts, int(count))
	ls := unsafe.Slice(lens, int(count))
	msg := make([][]byte, len(ps))
	for i := range ps {
		msg[i] = cbytes(ps[i], ls[i])
	}
	return capiErr(q.PutV(msg, seconds(timeout)))
}

// goQueueGet copies the next message into buf. When buf is too short it
// returns MPGO_ETOOSHORT with the length in *n and leaves the message.
//
//export goQueueGet
func goQueueGet(handle C.int64_t, buf unsafe.Pointer, size C.int64_t, timeout C.double, n *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	q, err := handles.Queues.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	k, err := q.Get(cbytes(buf, size), seconds(timeout))
	*n = C.int64_t(k)
	if errors.Is(err, errs.ErrTooShort) {
		return -C.int(errs.CodeTooShort) // expected: no message to record
	}
	return capiErr(err)
}

//export goQueueGetMany
func goQueueGetMany(handle C.int64_t, buf unsafe.Pointer, size C.int64_t, max C.int64_t, timeout C.double, lens *C.int64_t, count *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	q, err := handles.Queues.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	got, err := q.GetMany(cbytes(buf, size), int(max), seconds(timeout))
	out := unsafe.Slice(lens, int(max))
	for i, l := range got {
		out[i] = C.int64_t(l)
	}
	*count = C.int64_t(len(got))
	if errors.Is(err, errs.ErrTooShort) {
		return -C.int(errs.CodeTooShort)
	}
	return capiErr(err)
}

//export goQueueLen
func goQueueLen(handle C.int64_t, n *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	q, err := handles.Queues.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	*n = C.int64_t(q.Len())
	return 0
}

//export goQueueTaskDone
func goQueueTaskDone(handle C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	q, err := handles.Queues.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	return capiErr(q.TaskDone())
}

//export goQueueJoin
func goQueueJoin(handle C.int64_t, timeout C.double) (rc C.int) {
	defer capiRecover(&rc)
	q, err := handles.Queues.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	return acquired(q.Join(seconds(timeout)))
}

//export goQueueClose
func goQueueClose(handle C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	if q, ok := handles.Queues.Take(int64(handle)); ok {
		return capiErr(q.Close())
	}
	return 0
}
