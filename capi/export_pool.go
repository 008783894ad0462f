package main

/*
#include <stdint.h>
#include <stddef.h>
*/
import "C"

import (
	"errors"
	"strings"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/pool"
	"github.com/mpgo/mpgo/internal/handles"
)

// The worker end of a core/pool pool, for workers written in C or Python
// (mpgo's Python pool workers call these through the C fast path). The
// parent side of an External pool is in pybind.

//export goPoolWorkerAttach
func goPoolWorkerAttach(args *C.char, handle *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	w, err := pool.AttachWorker(strings.Fields(C.GoString(args)))
	if err != nil {
		return capiErr(err)
	}
	*handle = C.int64_t(handles.PoolWorkers.Put(w))
	return 0
}

//export goPoolWorkerReady
func goPoolWorkerReady(handle C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	w, err := handles.PoolWorkers.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	w.Ready()
	return 0
}

// goPoolWorkerTake takes the next task message into buf, claiming it. When
// buf is too short it returns MPGO_ETOOSHORT with the length in *n and
// leaves the task queued.
//
//export goPoolWorkerTake
func goPoolWorkerTake(handle C.int64_t, buf unsafe.Pointer, size C.int64_t, timeout C.double, n *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	w, err := handles.PoolWorkers.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	k, err := w.Take(cbytes(buf, size), seconds(timeout))
	*n = C.int64_t(k)
	if errors.Is(err, errs.ErrTooShort) {
		return -C.int(errs.CodeTooShort)
	}
	return capiErr(err)
}

//export goPoolWorkerDone
func goPoolWorkerDone(handle C.int64_t, id C.uint64_t, status C.int, body unsafe.Pointer, n C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	w, err := handles.PoolWorkers.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	return capiErr(w.Done(uint64(id), byte(status), cbytes(body, n)))
}

//export goPoolWorkerBacklog
func goPoolWorkerBacklog(handle C.int64_t, n *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	w, err := handles.PoolWorkers.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	*n = C.int64_t(w.Backlog())
	return 0
}

//export goPoolWorkerReport
func goPoolWorkerReport(handle C.int64_t, status C.int, body unsafe.Pointer, n C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	w, err := handles.PoolWorkers.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	return capiErr(w.Report(byte(status), cbytes(body, n)))
}

//export goPoolWorkerClose
func goPoolWorkerClose(handle C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	if w, ok := handles.PoolWorkers.Take(int64(handle)); ok {
		return capiErr(w.Close())
	}
	return 0
}
