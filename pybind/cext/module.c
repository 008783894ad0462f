/* module.c: mpgo._native._fast, the hand-written CPython fast paths (see
 * cext.h for its parts), and the one path of engine errors into Python. */
#include "cext.h"

uint32_t cext_pid;
__thread uint32_t cext_tid __attribute__((tls_model("initial-exec")));

/* raise_error sets the Python exception for an engine error, given as the
 * C ABI gives it: (code, errno, message), code positive. mpgo._errors
 * translates it, the one place that does. */
static PyObject *errors_exception;  /* mpgo._errors.exception */

void cext_raise_error(int code, int err, const char *msg) {
	if (errors_exception) {
		PyObject *e = PyObject_CallFunction(errors_exception, "isi", code, msg, err);
		if (e) {
			PyErr_SetObject((PyObject *)Py_TYPE(e), e);
			Py_DECREF(e);
		}
		return;
	}
	PyErr_Format(PyExc_RuntimeError, "mpgo error %d (errno %d): %s", code, err, msg);
}

/* raise_code raises the calling thread's last C ABI error, rc its return. */
void cext_raise_code(int rc) {
	char msg[512];
	mpgo_errmsg(msg, sizeof msg);
	cext_raise_error(-rc, mpgo_errno(), msg);
}

static PyObject *fast_set_errors(PyObject *Py_UNUSED(self), PyObject *fn) {
	Py_XINCREF(fn);
	Py_XSETREF(errors_exception, fn);
	Py_RETURN_NONE;
}

static PyObject *fast_forked(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
	return PyBool_FromLong(mpgo_forked());
}

static PyObject *fast_start(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
	if (check_forked() < 0) return NULL;
	mpgo_start();
	Py_RETURN_NONE;
}

static PyObject *fast_started(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
	return PyBool_FromLong(mpgo_started());
}

static PyMethodDef fast_methods[] = {
	{"start", fast_start, METH_NOARGS,
	 "start(): start the Go runtime now, if it has not started (capi/lazy.c)."},
	{"started", fast_started, METH_NOARGS,
	 "started() -> bool: the Go runtime has been started in this process."},
	{"forked", fast_forked, METH_NOARGS,
	 "forked() -> bool: this process was forked from one running Go."},
	{"set_errors", fast_set_errors, METH_O,
	 "set_errors(fn): fn(code, message, errno) returns the exception for an engine error."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef fast_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "_fast",
	.m_doc = "mpgo C fast paths",
	.m_size = -1,
	.m_methods = fast_methods,
};

PyMODINIT_FUNC PyInit__fast(void) {
	cext_pid = (uint32_t)getpid();
	PyObject *m = PyModule_Create(&fast_module);
	if (!m) return NULL;
	if (cext_locks_add(m) < 0 || cext_values_add(m) < 0 || cext_queues_add(m) < 0 ||
	    cext_plain_add(m) < 0 || cext_pool_worker_add(m) < 0 ||
	    cext_pool_submit_add(m) < 0 || cext_pool_collect_add(m) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
