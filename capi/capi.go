// Command capi is the C ABI of the mpgo engine, built with
// -buildmode=c-shared into libmpgo.so (see include/mpgo.h). The same files
// are compiled into the Python extension, so a process never holds two Go
// runtimes.
//
// The //export functions here are prefixed go* and are reached only through
// the guarded C entry points in guard.c.
package main

/*
#cgo CFLAGS: -Wall -Wextra -Werror
#cgo LDFLAGS: -Wl,--wrap=pthread_create
#include <stdlib.h>
void mpgo_set_error(int err, const char *msg, size_t n);
*/
import "C"

import (
	"fmt"
	"runtime/debug"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
)

// capiErr records err's errno and message for mpgo_errno and mpgo_errmsg,
// and returns its negated code: the C ABI's one encoding of an error.
func capiErr(err error) C.int {
	if err == nil {
		return 0
	}
	code, errno := errs.CodeOf(err)
	msg := err.Error()
	cs := C.CString(msg)
	C.mpgo_set_error(C.int(errno), cs, C.size_t(len(msg)))
	C.free(unsafe.Pointer(cs))
	return C.int(-int(code))
}

// capiString copies s and a NUL into the C buffer buf of n bytes, or fails
// with MPGO_ETOOSHORT.
func capiString(s string, buf *C.char, n C.size_t) C.int {
	if int(n) < len(s)+1 {
		return capiErr(fmt.Errorf("%d bytes needed: %w", len(s)+1, errs.ErrTooShort))
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
	copy(dst, s)
	dst[len(s)] = 0
	return 0
}

// capiRecover turns a panic into MPGO_EINTERNAL: a panic must never unwind
// into C.
func capiRecover(rc *C.int) {
	if r := recover(); r != nil {
		*rc = capiErr(fmt.Errorf("%w: panic: %v\n%s", errs.ErrInternal, r, debug.Stack()))
	}
}
