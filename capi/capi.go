// Command capi is the C ABI of the mpgo engine, built with
// -buildmode=c-shared into libmpgo.so (see include/mpgo.h). The same files
// are compiled into the Python extension, so a process never holds two Go
// runtimes.
//
// The //export functions here are prefixed go* and are reached only through
// the guarded C entry points in guard.c.
package main

/*
#include <stdlib.h>
void mpgo_set_errmsg(const char *msg, size_t n);
*/
import "C"

import (
	"fmt"
	"runtime/debug"
	"sync"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
)

// capiTable maps C handles to engine objects. Handles start above 1000 so a
// zeroed handle never names a live object.
type capiTable[T any] struct {
	mu   sync.Mutex
	next int64
	m    map[int64]T
}

func (t *capiTable[T]) put(v T) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[int64]T)
		t.next = 1000
	}
	t.next++
	t.m[t.next] = v
	return t.next
}

func (t *capiTable[T]) get(h int64) (T, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[h]
	return v, ok
}

func (t *capiTable[T]) take(h int64) (T, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[h]
	delete(t.m, h)
	return v, ok
}

func (t *capiTable[T]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// capiErr records err's message for mpgo_errmsg and returns its negated code.
func capiErr(err error) C.int {
	if err == nil {
		return 0
	}
	code, _ := errs.CodeOf(err)
	msg := err.Error()
	cs := C.CString(msg)
	C.mpgo_set_errmsg(cs, C.size_t(len(msg)))
	C.free(unsafe.Pointer(cs))
	return C.int(-int(code))
}

// capiRecover turns a panic into MPGO_EINTERNAL: a panic must never unwind
// into C.
func capiRecover(rc *C.int) {
	if r := recover(); r != nil {
		*rc = capiErr(fmt.Errorf("%w: panic: %v\n%s", errs.ErrInternal, r, debug.Stack()))
	}
}

var errBadHandle = fmt.Errorf("unknown handle: %w", errs.ErrClosed)
