package main

/*
#include <stdint.h>
*/
import "C"

import (
	"syscall"
	"time"
	"unsafe"

	"github.com/mpgo/mpgo/internal/handles"

	"github.com/mpgo/mpgo/core/process"
)

//export goProcessStart
func goProcessStart(argv **C.char, fds *C.int, nfds C.int, deathSignal C.int, handle *C.int64_t, pid *C.int) (rc C.int) {
	defer capiRecover(&rc)
	var a process.Attr
	for p := argv; *p != nil; p = (**C.char)(unsafe.Add(unsafe.Pointer(p), unsafe.Sizeof(*p))) {
		a.Argv = append(a.Argv, C.GoString(*p))
	}
	if nfds >= 0 {
		for _, fd := range unsafe.Slice(fds, int(nfds)) {
			a.Files = append(a.Files, int(fd))
		}
	}
	a.DeathSignal = syscall.Signal(deathSignal)
	p, err := process.Start(a)
	if err != nil {
		return capiErr(err)
	}
	*handle = C.int64_t(handles.Procs.Put(p))
	*pid = C.int(p.Pid)
	return 0
}

//export goProcessWait
func goProcessWait(handle C.int64_t, timeout C.double, status *C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	p, err := handles.Procs.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	d := time.Duration(float64(timeout) * float64(time.Second))
	if timeout < 0 {
		d = -1
	}
	st, done, err := p.Wait(d)
	if err != nil {
		return capiErr(err)
	}
	if !done {
		*status = process.StillRunning
		return 0
	}
	*status = C.int64_t(st)
	return 0
}

//export goProcessSignal
func goProcessSignal(handle C.int64_t, sig C.int) (rc C.int) {
	defer capiRecover(&rc)
	p, err := handles.Procs.Get(int64(handle))
	if err != nil {
		return capiErr(err)
	}
	return capiErr(p.Signal(syscall.Signal(sig)))
}

//export goProcessRelease
func goProcessRelease(handle C.int64_t) (rc C.int) {
	defer capiRecover(&rc)
	if p, ok := handles.Procs.Take(int64(handle)); ok {
		return capiErr(p.Release())
	}
	return 0
}

//export goLiveHandles
func goLiveHandles() C.int {
	return C.int(handles.Live())
}
