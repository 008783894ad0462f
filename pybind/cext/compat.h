/* compat.h: the one place where the C fast paths meet CPython versions.
 *
 * mpgo supports CPython 3.10 to 3.13 and must build on 3.14. The C files
 * use only the public C API of the newest of them; for older versions this
 * header defines the public functions they lack, each over what those
 * versions had under a private name (as pythoncapi-compat does). When a
 * version is dropped, its block goes. Include it instead of <Python.h>.
 *
 * _PyBytes_Resize is used directly: it is documented in the C API reference
 * (Doc/c-api/bytes.rst) and present in every version, 3.14 included. */
#ifndef MPGO_COMPAT_H
#define MPGO_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <time.h>

#if PY_VERSION_HEX < 0x030A0000
#error "mpgo needs CPython 3.10 or newer"
#endif

/* PyFloat_Pack8 and PyFloat_Unpack8: public since 3.11. */
#if PY_VERSION_HEX < 0x030B0000
static inline int PyFloat_Pack8(double x, char *p, int le) {
	return _PyFloat_Pack8(x, (unsigned char *)p, le);
}
static inline double PyFloat_Unpack8(const char *p, int le) {
	return _PyFloat_Unpack8((const unsigned char *)p, le);
}
#endif

/* PyObject_GetOptionalAttr: public since 3.13 (was _PyObject_LookupAttr).
 * It returns 1 and a new reference in *result, 0 and NULL when there is no
 * such attribute, -1 with an exception set. */
#if PY_VERSION_HEX < 0x030D0000
static inline int PyObject_GetOptionalAttr(PyObject *o, PyObject *name, PyObject **result) {
	return _PyObject_LookupAttr(o, name, result);
}
#endif

/* PyLong_FromNativeBytes: public since 3.13 (was _PyLong_FromByteArray).
 * Only the flags the fast paths use: a signed buffer, little-endian. */
#if PY_VERSION_HEX < 0x030D0000
#define Py_ASNATIVEBYTES_LITTLE_ENDIAN 1
static inline PyObject *PyLong_FromNativeBytes(const void *p, size_t n, int flags) {
	if (flags != Py_ASNATIVEBYTES_LITTLE_ENDIAN) {
		PyErr_SetString(PyExc_SystemError, "mpgo compat: unsupported PyLong_FromNativeBytes flags");
		return NULL;
	}
	return _PyLong_FromByteArray((const unsigned char *)p, n, 1, 1);
}
#endif

/* mpgo_monotonic_ns is CLOCK_MONOTONIC in nanoseconds, the clock of every
 * deadline in the fast paths (CPython's own is private before 3.13). It
 * needs no GIL. */
static inline int64_t mpgo_monotonic_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
