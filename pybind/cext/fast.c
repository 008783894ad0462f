/*
 * fast.c: mpgo._native._fast, the hand-written CPython fast paths.
 *
 * It is compiled into the same shared object as the gopy extension and the
 * C ABI (one Go runtime per process). Hot operations that must stay near the
 * cgo floor (lock acquire/release, queue put/get, pipe send/recv) live here:
 * they work on shared memory directly and enter Go only to wait.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "mpgo.h"

static PyObject *fast_forked(PyObject *self, PyObject *unused) {
	return PyBool_FromLong(mpgo_forked());
}

static PyMethodDef fast_methods[] = {
	{"forked", fast_forked, METH_NOARGS,
	 "forked() -> bool: this process was forked from one running Go."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef fast_module = {
	PyModuleDef_HEAD_INIT, "_fast", "mpgo C fast paths", -1, fast_methods,
};

PyMODINIT_FUNC PyInit__fast(void) {
	return PyModule_Create(&fast_module);
}
