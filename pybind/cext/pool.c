/* Pool fast paths: the worker end of a core/pool pool (PoolWorker), and the
 * parent's puts of task messages and gets of result messages. The wire
 * format is core/pool's (wire.go, and mpgo.h):
 *
 *   task    uint64 id | uint16 n | n bytes function | payload
 *   result  uint64 id | uint32 slot | uint8 status | body
 *
 * Calls run with the GIL held when they need not wait; waits release it in
 * slices of at most 0.1 s and check for signals between slices. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "mpgo.h"

#define POOL_SLICE 0.1
#define TASK_HDR 10
#define RESULT_HDR 13
#define POOL_SCRATCH (64 * 1024)
/* Messages larger than this are copied with the GIL released. */
#define POOL_BIG (256 * 1024)

int mpgo_fast_check_forked(void);
void mpgo_fast_raise_code(int rc);

static inline void put_u64(char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint64_t get_u64(const char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* wait_loop calls op(arg, slice) until it returns something other than
 * MPGO_EEMPTY or the time (t seconds, < 0 forever) is up, with the GIL
 * released, checking signals between slices. Returns the last rc, or -1000
 * with a Python exception set. */
typedef int (*wait_op)(void *arg, double slice);

static int wait_loop(wait_op op, void *arg, double t) {
	_PyTime_t deadline = t > 0 ? _PyTime_GetMonotonicClock() + (_PyTime_t)(t * 1e9) : 0;
	for (;;) {
		double slice = POOL_SLICE;
		if (t >= 0) {
			double left = (double)(deadline - _PyTime_GetMonotonicClock()) / 1e9;
			if (left <= 0) return MPGO_EEMPTY;
			if (left < slice) slice = left;
		}
		int rc;
		Py_BEGIN_ALLOW_THREADS
		rc = op(arg, slice);
		Py_END_ALLOW_THREADS
		if (rc != MPGO_EEMPTY) return rc;
		if (PyErr_CheckSignals() < 0) return -1000;
	}
}

static int timeout_arg(PyObject *o, double *t) {
	if (!o || o == Py_None) { *t = -1; return 0; }
	*t = PyFloat_AsDouble(o);
	if (*t == -1 && PyErr_Occurred()) return -1;
	if (*t < 0) *t = 0;
	return 0;
}

/* ---- PoolWorker ---- */

typedef struct {
	PyObject_HEAD
	int64_t h;
	char *buf;
	int64_t cap;
	PyObject *last_fn;  /* the function bytes of the last task, reused when equal */
} PoolWorkerObj;

static int pw_init(PoolWorkerObj *w, PyObject *args, PyObject *kw) {
	const char *spec;
	if (!PyArg_ParseTuple(args, "s", &spec)) return -1;
	if (mpgo_fast_check_forked() < 0) return -1;
	int rc = mpgo_pool_worker_attach(spec, &w->h);
	if (rc < 0) { mpgo_fast_raise_code(rc); return -1; }
	w->cap = POOL_SCRATCH;
	w->buf = PyMem_RawMalloc(w->cap);
	if (!w->buf) { PyErr_NoMemory(); return -1; }
	return 0;
}

static void pw_dealloc(PoolWorkerObj *w) {
	if (w->h) mpgo_pool_worker_close(w->h);
	PyMem_RawFree(w->buf);
	Py_CLEAR(w->last_fn);
	Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyObject *pw_ready(PoolWorkerObj *w, PyObject *unused) {
	int rc = mpgo_pool_worker_ready(w->h);
	if (rc < 0) { mpgo_fast_raise_code(rc); return NULL; }
	Py_RETURN_NONE;
}

typedef struct { PoolWorkerObj *w; int64_t n; } take_arg;

static int take_op(void *a, double slice) {
	take_arg *ta = a;
	return mpgo_pool_worker_take(ta->w->h, ta->w->buf, ta->w->cap, slice, &ta->n);
}

/* take(timeout=None) -> (id, function bytes, payload bytes), or None once the
 * pool has stopped (or on timeout). */
static PyObject *pw_take(PoolWorkerObj *w, PyObject *const *args, Py_ssize_t nargs) {
	double t;
	if (timeout_arg(nargs > 0 ? args[0] : NULL, &t) < 0) return NULL;
	take_arg ta = {w, 0};
	int rc;
	for (;;) {
		rc = take_op(&ta, 0);
		if (rc == MPGO_EEMPTY && t != 0) rc = wait_loop(take_op, &ta, t);
		if (rc == -1000) return NULL;
		if (rc != MPGO_ETOOSHORT) break;
		char *nb = PyMem_RawRealloc(w->buf, ta.n);
		if (!nb) return PyErr_NoMemory();
		w->buf = nb;
		w->cap = ta.n;
	}
	if (rc == MPGO_ECLOSED || rc == MPGO_EEMPTY) Py_RETURN_NONE;
	if (rc < 0) { mpgo_fast_raise_code(rc); return NULL; }
	if (ta.n < TASK_HDR) {
		PyErr_SetString(PyExc_RuntimeError, "mpgo pool: short task message");
		return NULL;
	}
	uint64_t id = get_u64(w->buf);
	uint16_t fl;
	memcpy(&fl, w->buf + 8, 2);
	if (TASK_HDR + (int64_t)fl > ta.n) {
		PyErr_SetString(PyExc_RuntimeError, "mpgo pool: bad task message");
		return NULL;
	}
	PyObject *fn;
	if (w->last_fn && PyBytes_GET_SIZE(w->last_fn) == fl &&
	    memcmp(PyBytes_AS_STRING(w->last_fn), w->buf + TASK_HDR, fl) == 0) {
		fn = Py_NewRef(w->last_fn);  /* its hash is cached: cheap lookups */
	} else {
		fn = PyBytes_FromStringAndSize(w->buf + TASK_HDR, fl);
		if (!fn) return NULL;
		Py_XSETREF(w->last_fn, Py_NewRef(fn));
	}
	PyObject *payload = PyBytes_FromStringAndSize(w->buf + TASK_HDR + fl, ta.n - TASK_HDR - fl);
	if (!payload) { Py_DECREF(fn); return NULL; }
	if (w->cap > POOL_SCRATCH && ta.n <= POOL_SCRATCH) {
		/* A big task passed: give its buffer back. */
		char *nb = PyMem_RawRealloc(w->buf, POOL_SCRATCH);
		if (nb) { w->buf = nb; w->cap = POOL_SCRATCH; }
	}
	PyObject *id_obj = PyLong_FromUnsignedLongLong(id);
	if (!id_obj) { Py_DECREF(fn); Py_DECREF(payload); return NULL; }
	PyObject *r = PyTuple_New(3);
	if (!r) { Py_DECREF(id_obj); Py_DECREF(fn); Py_DECREF(payload); return NULL; }
	PyTuple_SET_ITEM(r, 0, id_obj);
	PyTuple_SET_ITEM(r, 1, fn);
	PyTuple_SET_ITEM(r, 2, payload);
	return r;
}

/* done(id, status, body): put task id's result and clear the claim. */
static PyObject *pw_done(PoolWorkerObj *w, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 3) {
		PyErr_SetString(PyExc_TypeError, "done(id, status, body)");
		return NULL;
	}
	uint64_t id = PyLong_AsUnsignedLongLong(args[0]);
	if (id == (uint64_t)-1 && PyErr_Occurred()) return NULL;
	int status = PyLong_AsLong(args[1]);
	if (status == -1 && PyErr_Occurred()) return NULL;
	Py_buffer v;
	if (PyObject_GetBuffer(args[2], &v, PyBUF_SIMPLE) < 0) return NULL;
	int rc;
	if (v.len < POOL_BIG) {
		rc = mpgo_pool_worker_done(w->h, id, status, v.buf, v.len);
	} else {
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_pool_worker_done(w->h, id, status, v.buf, v.len);
		Py_END_ALLOW_THREADS
	}
	PyBuffer_Release(&v);
	if (rc < 0) { mpgo_fast_raise_code(rc); return NULL; }
	Py_RETURN_NONE;
}

/* report(status, body): a message about no task (an initializer failure). */
static PyObject *pw_report(PoolWorkerObj *w, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "report(status, body)");
		return NULL;
	}
	int status = PyLong_AsLong(args[0]);
	if (status == -1 && PyErr_Occurred()) return NULL;
	Py_buffer v;
	if (PyObject_GetBuffer(args[1], &v, PyBUF_SIMPLE) < 0) return NULL;
	int rc = mpgo_pool_worker_report(w->h, status, v.buf, v.len);
	PyBuffer_Release(&v);
	if (rc < 0) { mpgo_fast_raise_code(rc); return NULL; }
	Py_RETURN_NONE;
}

static PyObject *pw_backlog(PoolWorkerObj *w, PyObject *unused) {
	int64_t n = 0;
	int rc = mpgo_pool_worker_backlog(w->h, &n);
	if (rc < 0) { mpgo_fast_raise_code(rc); return NULL; }
	return PyLong_FromLongLong(n);
}

static PyObject *pw_close(PoolWorkerObj *w, PyObject *unused) {
	if (w->h) {
		int rc = mpgo_pool_worker_close(w->h);
		w->h = 0;
		if (rc < 0) { mpgo_fast_raise_code(rc); return NULL; }
	}
	Py_RETURN_NONE;
}

static PyMethodDef pw_methods[] = {
	{"ready", (PyCFunction)pw_ready, METH_NOARGS, "ready(): tell the parent the worker is ready."},
	{"take", (PyCFunction)(void (*)(void))pw_take, METH_FASTCALL,
	 "take(timeout=None) -> (id, function, payload) or None once the pool stops."},
	{"done", (PyCFunction)(void (*)(void))pw_done, METH_FASTCALL, "done(id, status, body)"},
	{"report", (PyCFunction)(void (*)(void))pw_report, METH_FASTCALL, "report(status, body)"},
	{"backlog", (PyCFunction)pw_backlog, METH_NOARGS,
	 "backlog() -> how many results the parent has not read yet."},
	{"close", (PyCFunction)pw_close, METH_NOARGS, "close()"},
	{NULL, NULL, 0, NULL},
};

static PyTypeObject PoolWorkerType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "mpgo._native._fast.PoolWorker",
	.tp_basicsize = sizeof(PoolWorkerObj),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "PoolWorker(args): the worker end of a core/pool pool.",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)pw_init,
	.tp_dealloc = (destructor)pw_dealloc,
	.tp_methods = pw_methods,
};

/* ---- the parent's side ---- */

static int put_hdr(char *p, PyObject *id_obj, Py_ssize_t fl) {
	uint64_t id = PyLong_AsUnsignedLongLong(id_obj);
	if (id == (uint64_t)-1 && PyErr_Occurred()) return -1;
	put_u64(p, id);
	uint16_t n = (uint16_t)fl;
	memcpy(p + 8, &n, 2);
	return 0;
}

/* pool_put_many(queue_handle, ids, fn, payloads): put one task message per
 * payload, with ids[i] and the function bytes fn (or fn[i], if fn is a
 * list), in one commit. */
static PyObject *pool_put_many(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 4 || !(PyBytes_Check(args[2]) || PyList_Check(args[2]))) {
		PyErr_SetString(PyExc_TypeError, "pool_put_many(queue, ids, fn: bytes or list, payloads)");
		return NULL;
	}
	if (mpgo_fast_check_forked() < 0) return NULL;
	long long qh = PyLong_AsLongLong(args[0]);
	if (qh == -1 && PyErr_Occurred()) return NULL;
	int per_message = PyList_Check(args[2]);
	PyObject *ids = PySequence_Fast(args[1], "ids must be a sequence");
	if (!ids) return NULL;
	PyObject *pls = PySequence_Fast(args[3], "payloads must be a sequence");
	if (!pls) { Py_DECREF(ids); return NULL; }
	Py_ssize_t n = PySequence_Fast_GET_SIZE(pls), total = 0;
	PyObject *res = NULL;
	char *buf = NULL;
	const void **ptrs = NULL;
	int64_t *lens = NULL;
	if (PySequence_Fast_GET_SIZE(ids) != n ||
	    (per_message && PyList_GET_SIZE(args[2]) != n)) {
		PyErr_SetString(PyExc_ValueError, "as many ids (and functions) as payloads");
		goto out;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *p = PySequence_Fast_GET_ITEM(pls, i);
		PyObject *f = per_message ? PyList_GET_ITEM(args[2], i) : args[2];
		if (!PyBytes_Check(p) || !PyBytes_Check(f)) {
			PyErr_SetString(PyExc_TypeError, "payloads and functions must be bytes");
			goto out;
		}
		if (PyBytes_GET_SIZE(f) > 65535) {
			PyErr_SetString(PyExc_ValueError, "pool: function of more than 65535 bytes");
			goto out;
		}
		total += TASK_HDR + PyBytes_GET_SIZE(f) + PyBytes_GET_SIZE(p);
	}
	buf = PyMem_Malloc(total ? total : 1);
	ptrs = PyMem_Malloc((n ? n : 1) * sizeof(void *));
	lens = PyMem_Malloc((n ? n : 1) * sizeof(int64_t));
	if (!buf || !ptrs || !lens) { PyErr_NoMemory(); goto out; }
	char *p = buf;
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *pl = PySequence_Fast_GET_ITEM(pls, i);
		PyObject *f = per_message ? PyList_GET_ITEM(args[2], i) : args[2];
		Py_ssize_t pn = PyBytes_GET_SIZE(pl), fl = PyBytes_GET_SIZE(f);
		if (put_hdr(p, PySequence_Fast_GET_ITEM(ids, i), fl) < 0) goto out;
		memcpy(p + TASK_HDR, PyBytes_AS_STRING(f), fl);
		memcpy(p + TASK_HDR + fl, PyBytes_AS_STRING(pl), pn);
		ptrs[i] = p;
		lens[i] = TASK_HDR + fl + pn;
		p += lens[i];
	}
	int64_t done = 0;
	int rc;
	if (total < POOL_BIG) {
		rc = mpgo_queue_put_many(qh, ptrs, lens, n, -1, &done);
	} else {
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_put_many(qh, ptrs, lens, n, -1, &done);
		Py_END_ALLOW_THREADS
	}
	if (rc < 0) { mpgo_fast_raise_code(rc); goto out; }
	res = Py_NewRef(Py_None);
out:
	PyMem_Free(buf);
	PyMem_Free(ptrs);
	PyMem_Free(lens);
	Py_DECREF(ids);
	Py_DECREF(pls);
	return res;
}

/* pool_put(queue_handle, id, fn, payload): put one task message. */
static PyObject *pool_put(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 4 || !PyBytes_Check(args[2])) {
		PyErr_SetString(PyExc_TypeError, "pool_put(queue, id, fn: bytes, payload)");
		return NULL;
	}
	if (mpgo_fast_check_forked() < 0) return NULL;
	long long qh = PyLong_AsLongLong(args[0]);
	if (qh == -1 && PyErr_Occurred()) return NULL;
	Py_ssize_t fl = PyBytes_GET_SIZE(args[2]);
	if (fl > 65535) {
		PyErr_SetString(PyExc_ValueError, "pool: function of more than 65535 bytes");
		return NULL;
	}
	char hdr[TASK_HDR];
	if (put_hdr(hdr, args[1], fl) < 0) return NULL;
	Py_buffer v;
	if (PyObject_GetBuffer(args[3], &v, PyBUF_SIMPLE) < 0) return NULL;
	const void *parts[3] = {hdr, PyBytes_AS_STRING(args[2]), v.buf};
	int64_t lens[3] = {TASK_HDR, fl, v.len};
	int rc;
	if (v.len < POOL_BIG) {
		rc = mpgo_queue_put_v(qh, parts, lens, 3, -1);
	} else {
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_put_v(qh, parts, lens, 3, -1);
		Py_END_ALLOW_THREADS
	}
	PyBuffer_Release(&v);
	if (rc < 0) { mpgo_fast_raise_code(rc); return NULL; }
	Py_RETURN_NONE;
}

static __thread char *res_scratch;
/* Whether the last pool_results of this thread found several results: the
 * results are flowing, and the next wait polls (see pool_results). */
static __thread int res_flowing;

/* While results flow, a reader that finds none sleeps POLL_US and looks
 * again, up to POLL_ROUNDS times, instead of registering as a sleeper: a
 * worker then puts its result without waking anyone, which spares it a
 * system call (and often a context switch) per result. */
#define POLL_US 50
#define POLL_ROUNDS 20

typedef struct { int64_t qh, max, count; int64_t *lens; } results_arg;

static int results_op(void *a, double slice) {
	results_arg *ra = a;
	return mpgo_queue_get_many(ra->qh, res_scratch, POOL_SCRATCH, ra->max, slice, ra->lens, &ra->count);
}

static PyObject *result_tuple(const char *m, int64_t n, PyObject *owner) {
	if (n < RESULT_HDR) {
		PyErr_SetString(PyExc_RuntimeError, "mpgo pool: short result message");
		return NULL;
	}
	PyObject *body;
	if (owner) {
		/* A big message landed in its own bytes object: a view, no copy. */
		PyObject *mv = PyMemoryView_FromObject(owner);
		if (!mv) return NULL;
		body = PySequence_GetSlice(mv, RESULT_HDR, n);
		Py_DECREF(mv);
	} else {
		body = PyBytes_FromStringAndSize(m + RESULT_HDR, n - RESULT_HDR);
	}
	if (!body) return NULL;
	return Py_BuildValue("(KiN)", (unsigned long long)get_u64(m), (int)(unsigned char)m[12], body);
}

/* pool_results(queue_handle, max, timeout=None) -> [(id, status, body)]:
 * up to max result messages; [] when the timeout (None: none) ran out. */
static PyObject *pool_results(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs < 2 || nargs > 3) {
		PyErr_SetString(PyExc_TypeError, "pool_results(queue, max, timeout=None)");
		return NULL;
	}
	if (mpgo_fast_check_forked() < 0) return NULL;
	long long qh = PyLong_AsLongLong(args[0]);
	if (qh == -1 && PyErr_Occurred()) return NULL;
	Py_ssize_t max = PyLong_AsSsize_t(args[1]);
	if (max == -1 && PyErr_Occurred()) return NULL;
	if (max < 1) max = 1;
	if (max > 1024) max = 1024;
	double t;
	if (timeout_arg(nargs > 2 ? args[2] : NULL, &t) < 0) return NULL;
	if (!res_scratch && !(res_scratch = PyMem_RawMalloc(POOL_SCRATCH))) return PyErr_NoMemory();
	int64_t lens[1024];
	results_arg ra = {qh, max, 0, lens};
	int rc = results_op(&ra, 0);
	if (rc == MPGO_EEMPTY && t != 0 && res_flowing) {
		for (int i = 0; i < POLL_ROUNDS && rc == MPGO_EEMPTY; i++) {
			Py_BEGIN_ALLOW_THREADS
			usleep(POLL_US);
			Py_END_ALLOW_THREADS
			rc = results_op(&ra, 0);
		}
	}
	if (rc == MPGO_EEMPTY && t != 0) rc = wait_loop(results_op, &ra, t);
	res_flowing = rc == 0 && ra.count >= 2;
	if (rc == -1000) return NULL;
	if (rc == MPGO_EEMPTY) return PyList_New(0);
	if (rc == MPGO_ETOOSHORT) {
		/* One message bigger than the scratch: into a bytes of its size.
		 * The pool's driver is the result queue's only reader. */
		int64_t n = lens[0], got = 0;
		PyObject *b = PyBytes_FromStringAndSize(NULL, n);
		if (!b) return NULL;
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_get(qh, PyBytes_AS_STRING(b), n, 0, &got);
		Py_END_ALLOW_THREADS
		if (rc < 0) { Py_DECREF(b); mpgo_fast_raise_code(rc); return NULL; }
		PyObject *tup = result_tuple(PyBytes_AS_STRING(b), got, b);
		Py_DECREF(b);
		if (!tup) return NULL;
		PyObject *l = PyList_New(1);
		if (!l) { Py_DECREF(tup); return NULL; }
		PyList_SET_ITEM(l, 0, tup);
		return l;
	}
	if (rc < 0) { mpgo_fast_raise_code(rc); return NULL; }
	PyObject *l = PyList_New(ra.count);
	if (!l) return NULL;
	int64_t off = 0;
	for (int64_t i = 0; i < ra.count; i++) {
		PyObject *tup = result_tuple(res_scratch + off, lens[i], NULL);
		if (!tup) { Py_DECREF(l); return NULL; }
		PyList_SET_ITEM(l, i, tup);
		off += lens[i];
	}
	return l;
}

static PyMethodDef pool_functions[] = {
	{"pool_put", (PyCFunction)(void (*)(void))pool_put, METH_FASTCALL,
	 "pool_put(queue, id, fn, payload): put one task message."},
	{"pool_put_many", (PyCFunction)(void (*)(void))pool_put_many, METH_FASTCALL,
	 "pool_put_many(queue, ids, fn, payloads): put task messages in one commit."},
	{"pool_results", (PyCFunction)(void (*)(void))pool_results, METH_FASTCALL,
	 "pool_results(queue, max, timeout=None) -> [(id, status, body)]"},
	{NULL, NULL, 0, NULL},
};

/* mpgo_pool_add adds the pool fast paths to the _fast module. */
int mpgo_pool_add(PyObject *m) {
	if (PyType_Ready(&PoolWorkerType) < 0) return -1;
	Py_INCREF(&PoolWorkerType);
	if (PyModule_AddObject(m, "PoolWorker", (PyObject *)&PoolWorkerType) < 0) return -1;
	return PyModule_AddFunctions(m, pool_functions);
}
