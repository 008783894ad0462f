/* Pool fast paths: the worker end of a core/pool pool (PoolWorker), and the
 * parent's puts of task messages and gets of result messages. The wire
 * format is core/pool's (wire.go, and mpgo.h):
 *
 *   task    uint64 id | uint16 n | n bytes function | payload
 *   result  uint64 id | uint32 slot | uint8 status | body
 *
 * Calls run with the GIL held when they need not wait; waits release it in
 * slices of at most 0.1 s and check for signals between slices. */
#include "compat.h"
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "mpgo.h"
#include "plain.h"

#define POOL_SLICE 0.1
#define POOL_SCRATCH (64 * 1024)
/* The most a worker keeps of its result buffer between tasks. */
#define POOL_KEEP_OUT (16 << 20)
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
	int64_t deadline = t > 0 ? mpgo_monotonic_ns() + (int64_t)(t * 1e9) : 0;
	for (;;) {
		double slice = POOL_SLICE;
		if (t >= 0) {
			double left = (double)(deadline - mpgo_monotonic_ns()) / 1e9;
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

/* ---- PoolWorker ---- */

typedef struct {
	PyObject_HEAD
	int64_t h;
	char *buf;
	int64_t cap;
	PyObject *last_fn;  /* the function bytes of the last task, reused when equal */
	plainbuf out;       /* serve()'s result pickles */
} PoolWorkerObj;

static int pw_init(PoolWorkerObj *w, PyObject *args, PyObject *Py_UNUSED(kw)) {
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
	PyObject_GC_UnTrack(w);
	if (w->h) mpgo_pool_worker_close(w->h);
	PyMem_RawFree(w->buf);
	plainbuf_free(&w->out);
	Py_CLEAR(w->last_fn);
	Py_TYPE(w)->tp_free((PyObject *)w);
}

static int pw_traverse(PoolWorkerObj *w, visitproc visit, void *arg) {
	Py_VISIT(w->last_fn);
	return 0;
}

static int pw_clear(PoolWorkerObj *w) {
	Py_CLEAR(w->last_fn);
	return 0;
}

static PyObject *pw_ready(PoolWorkerObj *w, PyObject *Py_UNUSED(unused)) {
	int rc = mpgo_pool_worker_ready(w->h);
	if (rc < 0) { mpgo_fast_raise_code(rc); return NULL; }
	Py_RETURN_NONE;
}

typedef struct { PoolWorkerObj *w; int64_t n; } take_arg;

static int take_op(void *a, double slice) {
	take_arg *ta = a;
	return mpgo_pool_worker_take(ta->w->h, ta->w->buf, ta->w->cap, slice, &ta->n);
}

/* take_next takes the next task into w->buf: 1 with *id, w->last_fn (a new
 * reference in *fn) and the payload at w->buf + *off, *n bytes long; 0 once
 * the pool has stopped (or on timeout); -1 with an exception set. */
static int take_next(PoolWorkerObj *w, double t, uint64_t *id, PyObject **fn,
		     int64_t *off, int64_t *n) {
	take_arg ta = {w, 0};
	int rc;
	if (w->cap > POOL_SCRATCH) {
		/* A big task passed: give its buffer back. */
		char *nb = PyMem_RawRealloc(w->buf, POOL_SCRATCH);
		if (nb) { w->buf = nb; w->cap = POOL_SCRATCH; }
	}
	for (;;) {
		rc = take_op(&ta, 0);
		if (rc == MPGO_EEMPTY && t != 0) rc = wait_loop(take_op, &ta, t);
		if (rc == -1000) return -1;
		if (rc != MPGO_ETOOSHORT) break;
		char *nb = PyMem_RawRealloc(w->buf, ta.n);
		if (!nb) { PyErr_NoMemory(); return -1; }
		w->buf = nb;
		w->cap = ta.n;
	}
	if (rc == MPGO_ECLOSED || rc == MPGO_EEMPTY) return 0;
	if (rc < 0) { mpgo_fast_raise_code(rc); return -1; }
	if (ta.n < MPGO_POOL_TASK_HEADER) {
		PyErr_SetString(PyExc_RuntimeError, "mpgo pool: short task message");
		return -1;
	}
	*id = get_u64(w->buf);
	uint16_t fl;
	memcpy(&fl, w->buf + 8, 2);
	if (MPGO_POOL_TASK_HEADER + (int64_t)fl > ta.n) {
		PyErr_SetString(PyExc_RuntimeError, "mpgo pool: bad task message");
		return -1;
	}
	if (w->last_fn && PyBytes_GET_SIZE(w->last_fn) == fl &&
	    memcmp(PyBytes_AS_STRING(w->last_fn), w->buf + MPGO_POOL_TASK_HEADER, fl) == 0) {
		*fn = Py_NewRef(w->last_fn);  /* its hash is cached: cheap lookups */
	} else {
		*fn = PyBytes_FromStringAndSize(w->buf + MPGO_POOL_TASK_HEADER, fl);
		if (!*fn) return -1;
		Py_XSETREF(w->last_fn, Py_NewRef(*fn));
	}
	*off = MPGO_POOL_TASK_HEADER + fl;
	*n = ta.n - MPGO_POOL_TASK_HEADER - fl;
	return 1;
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

static PyObject *pw_backlog(PoolWorkerObj *w, PyObject *Py_UNUSED(unused)) {
	int64_t n = 0;
	int rc = mpgo_pool_worker_backlog(w->h, &n);
	if (rc < 0) { mpgo_fast_raise_code(rc); return NULL; }
	return PyLong_FromLongLong(n);
}

static PyObject *pw_close(PoolWorkerObj *w, PyObject *Py_UNUSED(unused)) {
	if (w->h) {
		int rc = mpgo_pool_worker_close(w->h);
		w->h = 0;
		if (rc < 0) { mpgo_fast_raise_code(rc); return NULL; }
	}
	Py_RETURN_NONE;
}

/* ---- serve: the worker's loop ---- */

static PyObject *as_tuple(PyObject *x) {
	return PyTuple_CheckExact(x) ? Py_NewRef(x) : PySequence_Tuple(x);
}

/* run_task runs one task of the other kinds on its argument x, as pool.py
 * documents (map and starmap chunks go through stream_map). */
static PyObject *run_task(long kind, PyObject *func, PyObject *x) {
	switch (kind) {
	case MPGO_POOL_CALL:
		return PyObject_CallOneArg(func, x);
	case MPGO_POOL_APPLY_ARGS: {
		PyObject *a = as_tuple(x);
		if (!a) return NULL;
		PyObject *r = PyObject_Call(func, a, NULL);
		Py_DECREF(a);
		return r;
	}
	case MPGO_POOL_APPLY: {
		if (!PyTuple_CheckExact(x) || PyTuple_GET_SIZE(x) != 2) {
			PyErr_SetString(PyExc_TypeError, "mpgo pool: apply task is not (args, kwds)");
			return NULL;
		}
		PyObject *a = as_tuple(PyTuple_GET_ITEM(x, 0)), *k = PyTuple_GET_ITEM(x, 1), *kw;
		if (!a) return NULL;
		if (PyDict_CheckExact(k)) {
			kw = Py_NewRef(k);
		} else if (!(kw = PyDict_New()) || PyDict_Merge(kw, k, 1) < 0) {
			Py_DECREF(a);
			Py_XDECREF(kw);
			return NULL;
		}
		PyObject *r = PyObject_Call(func, a, PyDict_GET_SIZE(kw) ? kw : NULL);
		Py_DECREF(a);
		Py_DECREF(kw);
		return r;
	}
	}
	PyErr_Format(PyExc_RuntimeError, "mpgo pool: unknown task kind %ld", kind);
	return NULL;
}

/* stream_map runs a map or starmap chunk, pickling each result into w->out
 * as it comes, so that a chunk of plain results is never held as a list of
 * objects (a long chunk's list and its items outgrow the caches, and are
 * freed page by page). Returns 1 with the pickle of the list of results in
 * w->out; 0 with *result the list of results, when some are not plain (the
 * ones before are read back from their pickle); -1 with an exception set. */
static int stream_map(PoolWorkerObj *w, long kind, PyObject *func, PyObject *x, PyObject **result) {
	plainbuf *b = &w->out;
	PyObject *list = NULL, *it = NULL, *seq = NULL;
	*result = NULL;
	b->n = 0;
	if (plain_begin(b) < 0 || plainbuf_put(b, "](", 2) < 0) return -1;
	if (PyList_CheckExact(x) || PyTuple_CheckExact(x)) seq = Py_NewRef(x);
	else if (!(it = PyObject_GetIter(x))) return -1;
	for (Py_ssize_t i = 0;; i++) {
		PyObject *item, *r;
		if (seq) {
			/* A list is read as it is at each step: func may change it. */
			if (i >= Py_SIZE(seq)) break;
			item = Py_NewRef(PyList_CheckExact(seq) ? PyList_GET_ITEM(seq, i)
							  : PyTuple_GET_ITEM(seq, i));
		} else if (!(item = PyIter_Next(it))) {
			if (PyErr_Occurred()) goto fail;
			break;
		}
		if (kind == MPGO_POOL_MAP) {
			r = PyObject_CallOneArg(func, item);
		} else {
			PyObject *a = as_tuple(item);
			r = a ? PyObject_Call(func, a, NULL) : NULL;
			Py_XDECREF(a);
		}
		Py_DECREF(item);
		if (!r) goto fail;
		if (!list) {
			Py_ssize_t mark = b->n;
			int pr = plain_item(b, r, 1);
			if (pr != 0) {
				Py_DECREF(r);
				if (pr < 0) goto fail;
				continue;
			}
			/* Not plain: from here on, a list of the results. */
			b->n = mark;
			if (plainbuf_put(b, "e.", 2) < 0) { Py_DECREF(r); goto fail; }
			list = plain_load(b->p, b->n);
			if (!list) {
				if (!PyErr_Occurred())
					PyErr_SetString(PyExc_RuntimeError, "mpgo pool: results do not read back");
				Py_DECREF(r);
				goto fail;
			}
		}
		int rc = PyList_Append(list, r);
		Py_DECREF(r);
		if (rc < 0) goto fail;
	}
	Py_XDECREF(seq);
	Py_XDECREF(it);
	if (list) {
		*result = list;
		return 0;
	}
	if (plainbuf_put(b, "e", 1) < 0 || plain_end(b) < 0) return -1;
	return 1;
fail:
	Py_XDECREF(seq);
	Py_XDECREF(it);
	Py_XDECREF(list);
	return -1;
}

/* caught returns the exception being raised, with its traceback attached,
 * if it is an Exception (a task's failure); NULL, leaving it raised, for
 * any other BaseException (SystemExit, KeyboardInterrupt), which ends the
 * worker as it would end a Python loop. */
static PyObject *caught(void) {
	if (!PyErr_ExceptionMatches(PyExc_Exception)) return NULL;
	PyObject *t, *v, *tb;
	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if (tb && v) PyException_SetTraceback(v, tb);
	Py_XDECREF(t);
	Py_XDECREF(tb);
	return v;
}

/* flush_std flushes sys.stdout and sys.stderr, as util._flush_std_streams. */
static int flush_std(void) {
	static const char *names[] = {"stdout", "stderr"};
	static PyObject *flush_name;
	if (!flush_name && !(flush_name = PyUnicode_InternFromString("flush"))) return -1;
	for (int i = 0; i < 2; i++) {
		PyObject *f = PySys_GetObject(names[i]);
		if (!f) continue;
		PyObject *r = PyObject_CallMethodNoArgs(f, flush_name);
		if (r) { Py_DECREF(r); continue; }
		if (!PyErr_ExceptionMatches(PyExc_AttributeError) &&
		    !PyErr_ExceptionMatches(PyExc_ValueError))
			return -1;
		PyErr_Clear();
	}
	return 0;
}

/* serve(funcs, resolve, loads, dumps, on_error, on_encode_error, limit,
 *       big, backlog, max_backoff) -> (completed, stopped)
 *
 * The worker's loop, run until limit tasks are done (0: no limit) or the
 * pool stops. For each task: its (kind, func) is funcs[function bytes], or
 * resolve(function bytes) (which caches it in funcs); its argument is read
 * in C when plain, else with loads; the result is pickled in C when plain,
 * else with dumps. A task that raises an Exception sends on_error(exc); a
 * result that fails to pickle sends on_encode_error(exc, result), a body.
 * What the task printed is flushed before its result goes. After a result
 * of big bytes or more it waits (at most max_backoff seconds) until at most
 * backlog results are left unread: the parent unpickles a big result at
 * about the cost of making it, and should not be left with a pile. */
static PyObject *pw_serve(PoolWorkerObj *w, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 10 || !PyDict_Check(args[0])) {
		PyErr_SetString(PyExc_TypeError, "serve(funcs: dict, resolve, loads, dumps, on_error, "
				"on_encode_error, limit, big, backlog, max_backoff)");
		return NULL;
	}
	PyObject *funcs = args[0], *resolve = args[1], *loads = args[2], *dumps = args[3];
	PyObject *on_error = args[4], *on_encode_error = args[5];
	long long limit = PyLong_AsLongLong(args[6]);
	Py_ssize_t big = PyLong_AsSsize_t(args[7]);
	long long backlog = PyLong_AsLongLong(args[8]);
	double max_backoff = PyFloat_AsDouble(args[9]);
	if (PyErr_Occurred()) return NULL;
	long long completed = 0;
	int stopped = 0;
	while (!limit || completed < limit) {
		uint64_t id;
		PyObject *fn = NULL, *entry = NULL, *x = NULL, *result = NULL, *body = NULL;
		int64_t off, n;
		int r = take_next(w, -1, &id, &fn, &off, &n);
		if (r < 0) return NULL;
		if (r == 0) { stopped = 1; break; }
		int status = MPGO_POOL_OK, streamed = 0;
		entry = PyDict_GetItemWithError(funcs, fn);
		if (entry) Py_INCREF(entry);
		else if (!PyErr_Occurred()) entry = PyObject_CallOneArg(resolve, fn);
		if (entry && (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2)) {
			PyErr_SetString(PyExc_TypeError, "mpgo pool: resolve() must give (kind, func)");
			Py_CLEAR(entry);
		}
		long kind = entry ? PyLong_AsLong(PyTuple_GET_ITEM(entry, 0)) : -1;
		if (entry && !PyErr_Occurred()) {
			x = plain_load(w->buf + off, n);
			if (!x && !PyErr_Occurred()) {
				PyObject *b = PyBytes_FromStringAndSize(w->buf + off, n);
				if (b) {
					x = PyObject_CallOneArg(loads, b);
					Py_DECREF(b);
				}
			}
			if (x && (kind == MPGO_POOL_MAP || kind == MPGO_POOL_STARMAP)) {
				int sr = stream_map(w, kind, PyTuple_GET_ITEM(entry, 1), x, &result);
				if (sr == 1) streamed = 1;
			} else if (x) {
				result = run_task(kind, PyTuple_GET_ITEM(entry, 1), x);
			}
		}
		if (!result && !streamed) {
			PyObject *e = caught();
			if (!e) goto fail;
			result = PyObject_CallOneArg(on_error, e);
			Py_DECREF(e);
			if (!result) goto fail;
			status = MPGO_POOL_ERROR;
		}
		Py_CLEAR(x);
		const char *bp;
		Py_ssize_t bn;
		int pr = 1;
		if (!streamed) {
			w->out.n = 0;
			pr = plain_dump(&w->out, result);
		}
		if (pr < 0) goto fail;
		if (pr == 1) {
			bp = w->out.p;
			bn = w->out.n;
		} else {
			body = PyObject_CallOneArg(dumps, result);
			if (!body) {
				PyObject *e = caught();
				if (!e) goto fail;
				body = PyObject_CallFunctionObjArgs(on_encode_error, e, result, NULL);
				Py_DECREF(e);
				if (!body) goto fail;
				status = MPGO_POOL_ERROR;
			}
			if (!PyBytes_Check(body)) {
				PyObject *b = PyBytes_FromObject(body);
				if (!b) goto fail;
				Py_SETREF(body, b);
			}
			bp = PyBytes_AS_STRING(body);
			bn = PyBytes_GET_SIZE(body);
		}
		/* What the task printed goes out before its result does, so that
		 * it is not lost if the pool is then terminated. */
		if (flush_std() < 0) goto fail;
		int rc;
		if (bn < POOL_BIG) {
			rc = mpgo_pool_worker_done(w->h, id, status, bp, bn);
		} else {
			Py_BEGIN_ALLOW_THREADS
			rc = mpgo_pool_worker_done(w->h, id, status, bp, bn);
			Py_END_ALLOW_THREADS
		}
		if (rc < 0) { mpgo_fast_raise_code(rc); goto fail; }
		Py_DECREF(fn);
		Py_DECREF(entry);
		Py_XDECREF(result);
		Py_XDECREF(body);
		/* Kept for the next result up to a size: pages mapped afresh for
		 * each would cost a fault apiece. */
		if (w->out.cap > POOL_KEEP_OUT) plainbuf_free(&w->out);
		completed++;
		if (bn >= big) {
			int64_t deadline = mpgo_monotonic_ns() + (int64_t)(max_backoff * 1e9);
			for (;;) {
				int64_t left = 0;
				if (mpgo_pool_worker_backlog(w->h, &left) < 0 || left <= backlog ||
				    mpgo_monotonic_ns() >= deadline)
					break;
				Py_BEGIN_ALLOW_THREADS
				usleep(1000);
				Py_END_ALLOW_THREADS
				if (PyErr_CheckSignals() < 0) return NULL;
			}
		}
		continue;
	fail:
		Py_XDECREF(fn);
		Py_XDECREF(entry);
		Py_XDECREF(x);
		Py_XDECREF(result);
		Py_XDECREF(body);
		return NULL;
	}
	return Py_BuildValue("(LO)", completed, stopped ? Py_True : Py_False);
}

static PyMethodDef pw_methods[] = {
	{"ready", (PyCFunction)pw_ready, METH_NOARGS, "ready(): tell the parent the worker is ready."},
	{"serve", (PyCFunction)(void (*)(void))pw_serve, METH_FASTCALL,
	 "serve(funcs, resolve, loads, dumps, on_error, on_encode_error, limit, big, backlog, "
	 "max_backoff) -> (completed, stopped): the worker's loop."},
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
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "PoolWorker(args): the worker end of a core/pool pool.",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)pw_init,
	.tp_dealloc = (destructor)pw_dealloc,
	.tp_traverse = (traverseproc)pw_traverse,
	.tp_clear = (inquiry)pw_clear,
	.tp_methods = pw_methods,
};

/* ---- the parent's side ---- */

/* task_key is what the parent's set of outstanding tasks holds for task id
 * (pool.py's _key): a set of raw ids, whose low bits are the same for every
 * job's first task, collided at every insertion. Its own inverse. */
static inline uint64_t task_key(uint64_t id) { return id ^ (id >> 32); }

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
static PyObject *pool_put_many(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
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
		total += MPGO_POOL_TASK_HEADER + PyBytes_GET_SIZE(f) + PyBytes_GET_SIZE(p);
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
		memcpy(p + MPGO_POOL_TASK_HEADER, PyBytes_AS_STRING(f), fl);
		memcpy(p + MPGO_POOL_TASK_HEADER + fl, PyBytes_AS_STRING(pl), pn);
		ptrs[i] = p;
		lens[i] = MPGO_POOL_TASK_HEADER + fl + pn;
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

/* chunk_batch is the task messages of pool_put_chunks, end to end. */
#define CHUNK_BATCH 256
#define CHUNK_BYTES (64 * 1024)
/* A Submitter's batch: CHUNK_BATCH is when it is due, this is how far it can
 * go if threads add to it while another flushes. */
#define SUB_CAP 1024

typedef struct {
	plainbuf b;
	Py_ssize_t n;              /* messages */
	int64_t starts[SUB_CAP + 1]; /* offsets: message k is [starts[k], starts[k+1]) */
	uint64_t ids[SUB_CAP];     /* their ids (Submitter) */
} chunk_batch;

static int flush_chunks(long long qh, chunk_batch *cb) {
	if (cb->n == 0) return 0;
	const void *ptrs[SUB_CAP];
	int64_t lens[SUB_CAP], done = 0;
	for (Py_ssize_t k = 0; k < cb->n; k++) {
		ptrs[k] = cb->b.p + cb->starts[k];
		lens[k] = cb->starts[k + 1] - cb->starts[k];
	}
	int rc;
	if (cb->b.n < POOL_BIG) {
		rc = mpgo_queue_put_many(qh, ptrs, lens, cb->n, -1, &done);
	} else {
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_put_many(qh, ptrs, lens, cb->n, -1, &done);
		Py_END_ALLOW_THREADS
	}
	cb->n = 0;
	cb->b.n = 0;
	if (rc < 0) { mpgo_fast_raise_code(rc); return -1; }
	return 0;
}

/* pool_put_chunks(queue, base, fn, seq, chunksize, i0, i1, fallback)
 *     -> [(i, exception)]
 *
 * Puts the tasks i0 <= i < i1 of a map over seq (a list, tuple or range):
 * task i has the id base | i, the function bytes fn, and as payload the
 * tuple of seq[i*chunksize:(i+1)*chunksize] (with chunksize 0: seq[i]),
 * pickled here when its items are plain, else fallback(i) (bytes). The tasks go in commits of at most
 * 256 tasks or 64 KiB, so that workers start on the first while the next
 * is made. Returns the tasks whose fallback raised, which were not put. */
static PyObject *pool_put_chunks(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 8 || !PyBytes_Check(args[2])) {
		PyErr_SetString(PyExc_TypeError,
				"pool_put_chunks(queue, base, fn: bytes, seq, chunksize, i0, i1, fallback)");
		return NULL;
	}
	if (mpgo_fast_check_forked() < 0) return NULL;
	long long qh = PyLong_AsLongLong(args[0]);
	unsigned long long base = PyLong_AsUnsignedLongLong(args[1]);
	PyObject *fn = args[2], *seq = args[3], *fallback = args[7];
	Py_ssize_t cs = PyLong_AsSsize_t(args[4]);
	Py_ssize_t i0 = PyLong_AsSsize_t(args[5]), i1 = PyLong_AsSsize_t(args[6]);
	if (PyErr_Occurred()) return NULL;
	Py_ssize_t fl = PyBytes_GET_SIZE(fn);
	/* chunksize 0: each task is one item, pickled as itself. */
	int single = cs == 0;
	if (single) cs = 1;
	if (fl > 65535 || cs < 1) {
		PyErr_SetString(PyExc_ValueError, "pool_put_chunks: bad function or chunksize");
		return NULL;
	}
	int is_range = PyRange_Check(seq);
	long long rstart = 0, rstep = 0;
	Py_ssize_t len;
	if (is_range) {
		PyObject *a = PyObject_GetAttrString(seq, "start");
		PyObject *b = a ? PyObject_GetAttrString(seq, "step") : NULL;
		int overflow = 0;
		if (b) {
			rstart = PyLong_AsLongLongAndOverflow(a, &overflow);
			if (!overflow) rstep = PyLong_AsLongLongAndOverflow(b, &overflow);
		}
		Py_XDECREF(a);
		Py_XDECREF(b);
		if (PyErr_Occurred()) return NULL;
		len = PyObject_Size(seq);
		if (len < 0) return NULL;
		/* Numbers past 64 bits are pickled by fallback. */
		if (overflow || (len && (rstart + (long double)rstep * (len - 1) > 9.2e18 ||
					 rstart + (long double)rstep * (len - 1) < -9.2e18)))
			is_range = -1;
	} else if (PyList_CheckExact(seq) || PyTuple_CheckExact(seq)) {
		len = Py_SIZE(seq);
	} else {
		PyErr_SetString(PyExc_TypeError, "pool_put_chunks: seq must be a list, tuple or range");
		return NULL;
	}
	PyObject *failures = PyList_New(0);
	if (!failures) return NULL;
	chunk_batch *cb = PyMem_Calloc(1, sizeof *cb);
	if (!cb) { Py_DECREF(failures); return PyErr_NoMemory(); }
	for (Py_ssize_t i = i0; i < i1; i++) {
		Py_ssize_t start = cb->b.n, lo = i * cs, hi = lo + cs;
		char hdr[MPGO_POOL_TASK_HEADER];
		put_u64(hdr, base | (unsigned long long)i);
		uint16_t fl16 = (uint16_t)fl;
		memcpy(hdr + 8, &fl16, 2);
		if (plainbuf_put(&cb->b, hdr, MPGO_POOL_TASK_HEADER) < 0 ||
		    plainbuf_put(&cb->b, PyBytes_AS_STRING(fn), fl) < 0)
			goto fail;
		Py_ssize_t body = cb->b.n;
		int r = 0;
		if (is_range >= 0 && hi > len) hi = len;
		if (is_range >= 0 && lo < hi) {
			if (plain_begin(&cb->b) < 0 || (!single && plainbuf_put(&cb->b, "(", 1) < 0)) goto fail;
			r = 1;
			plain_lists_begin();  /* nothing below runs Python code */
			for (Py_ssize_t k = lo; r == 1 && k < hi; k++) {
				if (is_range) {
					r = plain_int(&cb->b, rstart + rstep * (long long)k);
				} else if (k < Py_SIZE(seq)) {
					PyObject *x = PyList_CheckExact(seq) ? PyList_GET_ITEM(seq, k)
									     : PyTuple_GET_ITEM(seq, k);
					r = plain_item(&cb->b, x, single ? 0 : 1);
				} else {
					r = 0;
				}
			}
			plain_lists_end();
			if (r < 0) goto fail;
			if (r == 1 && ((!single && plainbuf_put(&cb->b, "t", 1) < 0) || plain_end(&cb->b) < 0))
				goto fail;
		}
		if (r == 0) {
			/* Not plain: fallback pickles it. */
			cb->b.n = body;
			PyObject *io = PyLong_FromSsize_t(i);
			if (!io) goto fail;
			PyObject *pl = PyObject_CallOneArg(fallback, io);
			if (!pl) {
				PyObject *v = caught();
				if (!v) { Py_DECREF(io); goto fail; }
				PyObject *pair = PyTuple_Pack(2, io, v);
				Py_DECREF(io);
				Py_DECREF(v);
				if (!pair || PyList_Append(failures, pair) < 0) { Py_XDECREF(pair); goto fail; }
				Py_DECREF(pair);
				cb->b.n = start;
				continue;
			}
			Py_DECREF(io);
			Py_buffer v;
			if (PyObject_GetBuffer(pl, &v, PyBUF_SIMPLE) < 0) { Py_DECREF(pl); goto fail; }
			int rc = plainbuf_put(&cb->b, v.buf, v.len);
			PyBuffer_Release(&v);
			Py_DECREF(pl);
			if (rc < 0) goto fail;
		}
		cb->starts[cb->n] = start;
		cb->starts[++cb->n] = cb->b.n;
		if (cb->n == CHUNK_BATCH || cb->b.n >= CHUNK_BYTES) {
			if (flush_chunks(qh, cb) < 0) goto fail;
		}
	}
	if (flush_chunks(qh, cb) < 0) goto fail;
	plainbuf_free(&cb->b);
	PyMem_Free(cb);
	return failures;
fail:
	plainbuf_free(&cb->b);
	PyMem_Free(cb);
	Py_DECREF(failures);
	return NULL;
}

/* ---- Submitter: apply() tasks held back and put in batches ---- */

/* A put that wakes a sleeping worker costs a system call, and often a
 * context switch: apply() tasks wait here until a batch is full, someone
 * waits for a result, or the feeder thread comes round. The methods run
 * with the GIL held throughout, so each is atomic for Python threads. */
typedef struct {
	PyObject_HEAD
	long long qh;
	PyObject *dumps;      /* for arguments that are not plain */
	chunk_batch *cb;      /* the pending task messages */
} SubmitterObj;

static int sub_init(SubmitterObj *s, PyObject *args, PyObject *Py_UNUSED(kw)) {
	PyObject *dumps;
	if (!PyArg_ParseTuple(args, "LO", &s->qh, &dumps)) return -1;
	Py_XSETREF(s->dumps, Py_NewRef(dumps));
	if (!s->cb && !(s->cb = PyMem_Calloc(1, sizeof *s->cb))) { PyErr_NoMemory(); return -1; }
	return 0;
}

static int sub_traverse(SubmitterObj *s, visitproc visit, void *arg) {
	Py_VISIT(s->dumps);
	return 0;
}

static int sub_clear(SubmitterObj *s) {
	Py_CLEAR(s->dumps);
	return 0;
}

static void sub_dealloc(SubmitterObj *s) {
	PyObject_GC_UnTrack(s);
	Py_CLEAR(s->dumps);
	if (s->cb) plainbuf_free(&s->cb->b);
	PyMem_Free(s->cb);
	Py_TYPE(s)->tp_free((PyObject *)s);
}

/* add(id, fn, args) -> how many tasks are pending: task id, of function
 * bytes fn, with the arguments args (pickled here when plain, else with
 * dumps; an exception from dumps is raised, and nothing is added). A full
 * batch is the caller's to flush. */
static PyObject *sub_add(SubmitterObj *s, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 3 || !PyBytes_Check(args[1])) {
		PyErr_SetString(PyExc_TypeError, "add(id, fn: bytes, args)");
		return NULL;
	}
	chunk_batch *cb = s->cb;
	if (!cb || !s->dumps) {
		PyErr_SetString(PyExc_RuntimeError, "Submitter not initialised");
		return NULL;
	}
	if (cb->n >= SUB_CAP) {
		PyErr_SetString(PyExc_RuntimeError, "mpgo pool: too many tasks held back");
		return NULL;
	}
	uint64_t id = PyLong_AsUnsignedLongLong(args[0]);
	if (id == (uint64_t)-1 && PyErr_Occurred()) return NULL;
	PyObject *fn = args[1];
	Py_ssize_t fl = PyBytes_GET_SIZE(fn);
	if (fl > 65535) {
		PyErr_SetString(PyExc_ValueError, "pool: function of more than 65535 bytes");
		return NULL;
	}
	char hdr[MPGO_POOL_TASK_HEADER];
	put_u64(hdr, id);
	uint16_t fl16 = (uint16_t)fl;
	memcpy(hdr + 8, &fl16, 2);
	Py_ssize_t start = cb->b.n;
	int r = -1;
	if (plainbuf_put(&cb->b, hdr, MPGO_POOL_TASK_HEADER) == 0 &&
	    plainbuf_put(&cb->b, PyBytes_AS_STRING(fn), fl) == 0)
		r = plain_dump(&cb->b, args[2]);  /* runs no Python code */
	if (r < 0) { cb->b.n = start; return NULL; }
	if (r == 0) {
		cb->b.n = start;
		PyObject *pl = PyObject_CallOneArg(s->dumps, args[2]);
		if (!pl) return NULL;
		/* dumps ran Python code: another thread may have added or
		 * flushed meanwhile, so the message goes at the end as it is now. */
		cb = s->cb;
		if (cb->n >= SUB_CAP) {
			Py_DECREF(pl);
			PyErr_SetString(PyExc_RuntimeError, "mpgo pool: too many tasks held back");
			return NULL;
		}
		Py_buffer v;
		if (PyObject_GetBuffer(pl, &v, PyBUF_SIMPLE) < 0) { Py_DECREF(pl); return NULL; }
		start = cb->b.n;
		int rc = plainbuf_put(&cb->b, hdr, MPGO_POOL_TASK_HEADER);
		if (rc == 0) rc = plainbuf_put(&cb->b, PyBytes_AS_STRING(fn), fl);
		if (rc == 0) rc = plainbuf_put(&cb->b, v.buf, v.len);
		PyBuffer_Release(&v);
		Py_DECREF(pl);
		if (rc < 0) { cb->b.n = start; return NULL; }
	}
	cb->starts[cb->n] = start;
	cb->ids[cb->n] = id;
	cb->starts[++cb->n] = cb->b.n;
	return PyLong_FromSsize_t(cb->b.n >= CHUNK_BYTES ? CHUNK_BATCH : cb->n);
}

/* flush(outstanding) -> None, or (ids, exception) if the put failed: puts
 * the pending tasks, adding their ids to the set outstanding first (a
 * result may come back at once). Those of a failed put are taken out of it
 * again, and returned for the caller to fail. */
static PyObject *sub_flush(SubmitterObj *s, PyObject *outstanding) {
	chunk_batch *cb = s->cb;
	if (!PySet_Check(outstanding)) {
		PyErr_SetString(PyExc_TypeError, "flush(outstanding: set)");
		return NULL;
	}
	Py_ssize_t n = cb->n;
	if (n == 0) Py_RETURN_NONE;
	PyObject *ids = PyList_New(n);
	if (!ids) return NULL;
	for (Py_ssize_t k = 0; k < n; k++) {
		PyObject *t = PyLong_FromUnsignedLongLong(task_key(cb->ids[k]));
		if (!t || PySet_Add(outstanding, t) < 0) {
			Py_XDECREF(t);
			for (Py_ssize_t j = 0; j < k; j++) PySet_Discard(outstanding, PyList_GET_ITEM(ids, j));
			Py_DECREF(ids);
			return NULL;
		}
		PyList_SET_ITEM(ids, k, t);
	}
	/* flush_chunks keeps the GIL for small batches, which is what keeps
	 * this atomic; a big one goes without it, from its own copy. */
	chunk_batch *mine = cb;
	if (cb->b.n >= POOL_BIG) {
		chunk_batch *fresh = PyMem_Calloc(1, sizeof *fresh);
		if (!fresh) {
			for (Py_ssize_t j = 0; j < n; j++) PySet_Discard(outstanding, PyList_GET_ITEM(ids, j));
			Py_DECREF(ids);
			return PyErr_NoMemory();
		}
		s->cb = fresh;
	}
	int rc = flush_chunks(s->qh, mine);
	if (mine != s->cb) {
		plainbuf_free(&mine->b);
		PyMem_Free(mine);
	}
	if (rc == 0) {
		Py_DECREF(ids);
		Py_RETURN_NONE;
	}
	/* The put failed (an engine error, an Exception): none of them is
	 * outstanding. */
	PyObject *v = caught(), *et = NULL, *ev = NULL, *etb = NULL;
	if (!v) PyErr_Fetch(&et, &ev, &etb);
	for (Py_ssize_t j = 0; j < n; j++) {
		/* back from keys to ids, for the caller */
		PyObject *k = PyList_GET_ITEM(ids, j);
		if (PySet_Discard(outstanding, k) < 0) PyErr_Clear();
		PyObject *id = PyLong_FromUnsignedLongLong(task_key(PyLong_AsUnsignedLongLong(k)));
		if (!id) { PyErr_Clear(); continue; }
		PyList_SET_ITEM(ids, j, id);
		Py_DECREF(k);
	}
	if (!v) {  /* not an Exception: raised as it is */
		Py_DECREF(ids);
		PyErr_Restore(et, ev, etb);
		return NULL;
	}
	PyObject *res = Py_BuildValue("(NO)", ids, v);
	Py_DECREF(v);
	return res;
}

/* drop() -> ids: forget the pending tasks (the pool stopped), for the
 * caller to fail. */
static PyObject *sub_drop(SubmitterObj *s, PyObject *Py_UNUSED(unused)) {
	chunk_batch *cb = s->cb;
	PyObject *ids = PyList_New(cb->n);
	if (!ids) return NULL;
	for (Py_ssize_t k = 0; k < cb->n; k++) {
		PyObject *t = PyLong_FromUnsignedLongLong(cb->ids[k]);
		if (!t) { Py_DECREF(ids); return NULL; }
		PyList_SET_ITEM(ids, k, t);
	}
	cb->n = 0;
	cb->b.n = 0;
	return ids;
}

static PyObject *sub_len(SubmitterObj *s, PyObject *Py_UNUSED(unused)) {
	return PyLong_FromSsize_t(s->cb->n);
}

static PyMethodDef sub_methods[] = {
	{"add", (PyCFunction)(void (*)(void))sub_add, METH_FASTCALL,
	 "add(id, fn, args) -> pending count (256 once a batch is due)"},
	{"flush", (PyCFunction)sub_flush, METH_O,
	 "flush(outstanding) -> None, or (ids, exception) if the put failed"},
	{"drop", (PyCFunction)sub_drop, METH_NOARGS, "drop() -> ids of the pending tasks, forgotten"},
	{"pending", (PyCFunction)sub_len, METH_NOARGS, "pending() -> how many tasks wait"},
	{NULL, NULL, 0, NULL},
};

static PyTypeObject SubmitterType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "mpgo._native._fast.Submitter",
	.tp_basicsize = sizeof(SubmitterObj),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "Submitter(queue, dumps): apply() tasks of a pool, put in batches.",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)sub_init,
	.tp_dealloc = (destructor)sub_dealloc,
	.tp_traverse = (traverseproc)sub_traverse,
	.tp_clear = (inquiry)sub_clear,
	.tp_methods = sub_methods,
};

/* pool_put(queue_handle, id, fn, payload): put one task message. */
static PyObject *pool_put(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
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
	char hdr[MPGO_POOL_TASK_HEADER];
	if (put_hdr(hdr, args[1], fl) < 0) return NULL;
	Py_buffer v;
	if (PyObject_GetBuffer(args[3], &v, PyBUF_SIMPLE) < 0) return NULL;
	const void *parts[3] = {hdr, PyBytes_AS_STRING(args[2]), v.buf};
	int64_t lens[3] = {MPGO_POOL_TASK_HEADER, fl, v.len};
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

/* Whether the last pool_collect of this thread found several results: the
 * results are flowing, and the next wait polls (see pool_collect). */
static __thread int res_flowing;

/* While results flow, a reader that finds none sleeps POLL_US and looks
 * again, up to POLL_ROUNDS times, instead of registering as a sleeper: a
 * worker then puts its result without waking anyone, which spares it a
 * system call (and often a context switch) per result. */
#define POLL_US 50
#define POLL_ROUNDS 20

typedef struct { int64_t qh, max, count; int64_t *lens; char *buf; } results_arg;

static int results_op(void *a, double slice) {
	results_arg *ra = a;
	return mpgo_queue_get_many(ra->qh, ra->buf, POOL_SCRATCH, ra->max, slice, ra->lens, &ra->count);
}

/* Names of ApplyResult's attributes, for deliver_apply. */
static PyObject *s_callback, *s_error_callback, *s_success, *s_value, *s_ready, *s_waiters,
	*s_pool, *s_release, *s_number_left, *s_chunksize, *s_length;

static int intern_names(void) {
	if (s_length) return 0;
	struct { PyObject **p; const char *s; } names[] = {
		{&s_callback, "_callback"}, {&s_error_callback, "_error_callback"},
		{&s_success, "_success"}, {&s_value, "_value"}, {&s_ready, "_ready"},
		{&s_waiters, "_waiters"}, {&s_pool, "_pool"}, {&s_release, "release"},
		{&s_number_left, "_number_left"}, {&s_chunksize, "_chunksize"}, {&s_length, "_length"},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!*names[i].p && !(*names[i].p = PyUnicode_InternFromString(names[i].s))) return -1;
	return 0;
}

/* deliver_apply sets the result of job when it is an ApplyResult (exactly
 * cls) without callbacks, as ApplyResult._set does: 1 if it did, 0 if the
 * job is for Python to deliver, -1 with an exception set. */
static int deliver_apply(PyObject *cache, PyObject *cls, long long job, int ok, PyObject *obj) {
	if (!cache || !PyDict_CheckExact(cache) || intern_names() < 0) return 0;
	PyObject *key = PyLong_FromLongLong(job);
	if (!key) return -1;
	PyObject *r = PyDict_GetItemWithError(cache, key);
	if (!r || (PyObject *)Py_TYPE(r) != cls) {
		Py_DECREF(key);
		return PyErr_Occurred() ? -1 : 0;
	}
	Py_INCREF(r);
	int res = -1, cbs = 0;
	PyObject *v;
	for (int k = 0; k < 2; k++) {
		if (PyObject_GetOptionalAttr(r, k ? s_error_callback : s_callback, &v) < 0) goto out;
		if (v && v != Py_None) cbs = 1;
		Py_XDECREF(v);
	}
	if (cbs) { res = 0; goto out; }
	if (PyObject_SetAttr(r, s_success, ok ? Py_True : Py_False) < 0 ||
	    PyObject_SetAttr(r, s_value, obj) < 0)
		goto out;
	/* ApplyResult._mark_ready: the flag first, then wake any waiter. (Not
	 * ready before: a task's result is delivered once.) */
	{
		if (PyObject_SetAttr(r, s_ready, Py_True) < 0) goto out;
		PyObject *lock;
		if (PyObject_GetOptionalAttr(r, s_waiters, &lock) < 0) goto out;
		if (lock && lock != Py_None) {
			PyObject *x = PyObject_CallMethodNoArgs(lock, s_release);
			Py_DECREF(lock);
			if (!x) goto out;
			Py_DECREF(x);
		} else {
			Py_XDECREF(lock);
		}
	}
	if (PyDict_DelItem(cache, key) < 0 || PyObject_SetAttr(r, s_pool, Py_None) < 0) goto out;
	res = 1;
out:
	Py_DECREF(r);
	Py_DECREF(key);
	return res;
}

/* deliver_map reads the result of task i of job straight into its place
 * when the job is a MapResult (exactly cls) still successful, the result is
 * not its last, and the body is a list of plain scalars, as MapResult._set
 * would place them: 1 if it did, 0 if the result is for Python to deliver,
 * -1 with an exception set. */
static int deliver_map(PyObject *cache, PyObject *cls, long long job, Py_ssize_t i,
		       const char *body, Py_ssize_t bn) {
	if (!cache || !cls || !PyDict_CheckExact(cache) || intern_names() < 0) return 0;
	PyObject *key = PyLong_FromLongLong(job);
	if (!key) return -1;
	PyObject *r = PyDict_GetItemWithError(cache, key);
	Py_DECREF(key);
	if (!r || (PyObject *)Py_TYPE(r) != cls) return PyErr_Occurred() ? -1 : 0;
	Py_INCREF(r);
	int res = -1;
	PyObject *ok = NULL, *left = NULL, *cs = NULL, *value = NULL;
	if (PyObject_GetOptionalAttr(r, s_success, &ok) < 0 ||
	    PyObject_GetOptionalAttr(r, s_number_left, &left) < 0 ||
	    PyObject_GetOptionalAttr(r, s_chunksize, &cs) < 0 ||
	    PyObject_GetOptionalAttr(r, s_value, &value) < 0)
		goto out;
	res = 0;
	if (ok != Py_True || !left || !PyLong_CheckExact(left) || !cs || !PyLong_CheckExact(cs))
		goto out;
	Py_ssize_t n_left = PyLong_AsSsize_t(left), chunk = PyLong_AsSsize_t(cs);
	if (PyErr_Occurred()) { res = -1; goto out; }
	if (n_left <= 1 || chunk < 1) goto out;  /* the last result: Python's */
	if (value == Py_None) {
		/* MapResult makes a long list when the first result comes. */
		PyObject *length;
		if (PyObject_GetOptionalAttr(r, s_length, &length) < 0) { res = -1; goto out; }
		Py_ssize_t n = length ? PyLong_AsSsize_t(length) : -1;
		Py_XDECREF(length);
		if (n < 0) { if (PyErr_Occurred()) res = -1; goto out; }
		PyObject *l = PyList_New(n);
		if (!l) { res = -1; goto out; }
		for (Py_ssize_t k = 0; k < n; k++) PyList_SET_ITEM(l, k, Py_NewRef(Py_None));
		int rc = PyObject_SetAttr(r, s_value, l);
		Py_SETREF(value, l);
		if (rc < 0) { res = -1; goto out; }
	}
	if (!value || !PyList_CheckExact(value)) goto out;
	Py_ssize_t lo = i * chunk, hi = lo + chunk;
	if (hi > PyList_GET_SIZE(value)) hi = PyList_GET_SIZE(value);
	if (lo >= hi) goto out;
	res = plain_load_into(body, bn, value, lo, hi);
	if (res == 1) {
		PyObject *nl = PyLong_FromSsize_t(n_left - 1);
		if (!nl || PyObject_SetAttr(r, s_number_left, nl) < 0) res = -1;
		Py_XDECREF(nl);
	}
out:
	Py_XDECREF(ok);
	Py_XDECREF(left);
	Py_XDECREF(cs);
	Py_XDECREF(value);
	Py_DECREF(r);
	return res;
}

/* collect_one adds the result message m (n bytes; its bytes object owner,
 * or NULL when m is in the scratch) to out, for pool_collect. */
static int collect_read(PyObject *out, uint64_t tid, int status, const char *body, int64_t bn,
			int64_t n, PyObject *owner, PyObject *loads, PyObject **group,
			long long *group_job, PyObject *cache, PyObject *cls, PyObject *mcls);

static int collect_one(PyObject *out, const char *m, int64_t n, PyObject *owner,
		       PyObject *loads, PyObject *outstanding, PyObject **group, long long *group_job,
		       PyObject *cache, PyObject *cls, PyObject *mcls) {
	if (n < MPGO_POOL_RESULT_HEADER) {
		PyErr_SetString(PyExc_RuntimeError, "mpgo pool: short result message");
		return -1;
	}
	uint64_t tid = get_u64(m);
	int status = (unsigned char)m[12];
	if (tid != 0) {
		PyObject *t = PyLong_FromUnsignedLongLong(task_key(tid));
		if (!t) return -1;
		int r = PySet_Discard(outstanding, t);
		Py_DECREF(t);
		if (r < 0) return -1;
		if (r == 0) return 0;  /* settled already: a loss after its result */
	}
	int r = collect_read(out, tid, status, m + MPGO_POOL_RESULT_HEADER, n - MPGO_POOL_RESULT_HEADER, n, owner, loads,
			     group, group_job, cache, cls, mcls);
	if (r < 0 && tid != 0) {
		/* Not read: back among the outstanding tasks, which the pool
		 * fails when it breaks on this error, instead of losing it. */
		PyObject *et, *ev, *etb;
		PyErr_Fetch(&et, &ev, &etb);
		PyObject *k = PyLong_FromUnsignedLongLong(task_key(tid));
		if (!k || PySet_Add(outstanding, k) < 0) PyErr_Clear();
		Py_XDECREF(k);
		PyErr_Restore(et, ev, etb);
	}
	return r;
}

/* collect_read reads the result (or other message) of task tid, taken out
 * of the outstanding set, for collect_one. */
static int collect_read(PyObject *out, uint64_t tid, int status, const char *body, int64_t bn,
			int64_t n, PyObject *owner, PyObject *loads, PyObject **group,
			long long *group_job, PyObject *cache, PyObject *cls, PyObject *mcls) {
	PyObject *obj = NULL;
	if (tid != 0 && status == MPGO_POOL_OK) {
		int d = deliver_map(cache, mcls, (long long)(tid >> 32) - 1,
				    (Py_ssize_t)(tid & 0xffffffffu), body, bn);
		if (d < 0) {
			/* A body that does not read: the path below reads it again
			 * and reports it for this task alone. */
			PyObject *e = caught();
			if (!e) return -1;
			Py_DECREF(e);
			d = 0;
		}
		if (d != 0) return 0;
	}
	if (tid != 0 && (status == MPGO_POOL_OK || status == MPGO_POOL_ERROR)) {
		obj = plain_load(body, bn);
		if (!obj && !PyErr_Occurred()) {
			PyObject *b;
			if (owner) {
				PyObject *mv = PyMemoryView_FromObject(owner);
				b = mv ? PySequence_GetSlice(mv, MPGO_POOL_RESULT_HEADER, n) : NULL;
				Py_XDECREF(mv);
			} else {
				b = PyBytes_FromStringAndSize(body, bn);
			}
			if (!b) return -1;
			obj = PyObject_CallOneArg(loads, b);
			Py_DECREF(b);
		}
		if (!obj) {
			/* The result does not unpickle: the caller says so. */
			PyObject *e = caught();
			if (!e) return -1;
			PyObject *entry = Py_BuildValue("(O(KiN))", Py_None, (unsigned long long)tid, -1, e);
			if (!entry || PyList_Append(out, entry) < 0) { Py_XDECREF(entry); return -1; }
			Py_DECREF(entry);
			*group = NULL;
			return 0;
		}
		long long job = (long long)(tid >> 32) - 1;
		int d = deliver_apply(cache, cls, job, status == MPGO_POOL_OK, obj);
		if (d != 0) {
			Py_DECREF(obj);
			return d < 0 ? -1 : 0;
		}
		PyObject *item = Py_BuildValue("(k(NN))", (unsigned long)(tid & 0xffffffffu),
					       PyBool_FromLong(status == MPGO_POOL_OK), obj);
		if (!item) return -1;
		if (!*group || *group_job != job) {
			PyObject *g = PyList_New(0);
			PyObject *entry = g ? Py_BuildValue("(LN)", job, g) : NULL;
			if (!entry || PyList_Append(out, entry) < 0) {
				Py_XDECREF(entry);
				Py_DECREF(item);
				return -1;
			}
			Py_DECREF(entry);
			*group = g;  /* borrowed: out holds it */
			*group_job = job;
		}
		int r = PyList_Append(*group, item);
		Py_DECREF(item);
		return r;
	}
	PyObject *b = PyBytes_FromStringAndSize(body, bn);
	if (!b) return -1;
	PyObject *entry = Py_BuildValue("(O(KiN))", Py_None, (unsigned long long)tid, status, b);
	if (!entry || PyList_Append(out, entry) < 0) { Py_XDECREF(entry); return -1; }
	Py_DECREF(entry);
	*group = NULL;
	return 0;
}

/* pool_collect(queue, max, loads, outstanding[, cache, ApplyResult, MapResult])
 *     -> [(job, [(i, (ok, obj))]) or (None, (id, status, body))]
 *
 * With cache (job -> result) and the classes, some results are delivered
 * here instead of returned: that of an ApplyResult without callbacks
 * (deliver_apply), and a MapResult's chunks of plain scalars other than
 * its last (deliver_map).
 *
 * Waits for result messages (up to max), and reads them: each result of a
 * task still in the set outstanding (taken out of it here), unpickled (in C
 * when plain, else with loads), grouped with the results of the same job
 * next to it. Anything else comes as (None, (id, status, body)): messages
 * about no task (id 0), lost tasks, and results that failed to unpickle
 * (status -1, the exception as body). */
static PyObject *collect_in(PyObject *const *args, Py_ssize_t nargs, char *buf);

static PyObject *pool_collect(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
	/* A buffer for each call: the reader runs loads (Python code), so
	 * another thread could come in meanwhile. */
	char *buf = PyMem_RawMalloc(POOL_SCRATCH);
	if (!buf) return PyErr_NoMemory();
	PyObject *r = collect_in(args, nargs, buf);
	PyMem_RawFree(buf);
	return r;
}

static PyObject *collect_in(PyObject *const *args, Py_ssize_t nargs, char *buf) {
	if ((nargs != 4 && nargs != 7) || !PySet_Check(args[3])) {
		PyErr_SetString(PyExc_TypeError,
				"pool_collect(queue, max, loads, outstanding: set[, cache, ApplyResult, MapResult])");
		return NULL;
	}
	PyObject *cache = nargs == 7 ? args[4] : NULL, *cls = nargs == 7 ? args[5] : NULL;
	PyObject *mcls = nargs == 7 ? args[6] : NULL;
	if (mpgo_fast_check_forked() < 0) return NULL;
	long long qh = PyLong_AsLongLong(args[0]);
	if (qh == -1 && PyErr_Occurred()) return NULL;
	Py_ssize_t max = PyLong_AsSsize_t(args[1]);
	if (max == -1 && PyErr_Occurred()) return NULL;
	if (max < 1) max = 1;
	if (max > 1024) max = 1024;
	PyObject *loads = args[2], *outstanding = args[3];
	int64_t lens[1024];
	results_arg ra = {qh, max, 0, lens, buf};
	int rc = results_op(&ra, 0);
	if (rc == MPGO_EEMPTY && res_flowing) {
		/* All the rounds without the GIL: taking it back after each
		 * would wait for the threads submitting tasks to let go of it. */
		Py_BEGIN_ALLOW_THREADS
		for (int i = 0; i < POLL_ROUNDS && rc == MPGO_EEMPTY; i++) {
			usleep(POLL_US);
			rc = results_op(&ra, 0);
		}
		Py_END_ALLOW_THREADS
	}
	if (rc == MPGO_EEMPTY) rc = wait_loop(results_op, &ra, -1);
	res_flowing = rc == 0 && ra.count >= 2;
	if (rc == -1000) return NULL;
	PyObject *out = PyList_New(0), *group = NULL;
	long long group_job = -1;
	if (!out) return NULL;
	if (rc == MPGO_ETOOSHORT) {
		/* One message bigger than the scratch: into a bytes of its size.
		 * The pool's driver is the result queue's only reader. */
		int64_t n = lens[0], got = 0;
		PyObject *b = PyBytes_FromStringAndSize(NULL, n);
		if (!b) { Py_DECREF(out); return NULL; }
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_get(qh, PyBytes_AS_STRING(b), n, 0, &got);
		Py_END_ALLOW_THREADS
		if (rc < 0 || collect_one(out, PyBytes_AS_STRING(b), got, b, loads, outstanding,
					  &group, &group_job, cache, cls, mcls) < 0) {
			if (rc < 0) mpgo_fast_raise_code(rc);
			Py_DECREF(b);
			Py_DECREF(out);
			return NULL;
		}
		Py_DECREF(b);
		return out;
	}
	if (rc < 0) { Py_DECREF(out); mpgo_fast_raise_code(rc); return NULL; }
	int64_t off = 0;
	for (int64_t i = 0; i < ra.count; i++) {
		if (collect_one(out, buf + off, lens[i], NULL, loads, outstanding,
				&group, &group_job, cache, cls, mcls) < 0) {
			Py_DECREF(out);
			return NULL;
		}
		off += lens[i];
	}
	return out;
}

/* map_fill(value, chunksize, items) -> how many of items it took: the
 * successful results (i, (True, chunk)) at the head of items, each put in
 * its place in the list value, as MapResult._set does. */
static PyObject *map_fill(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 3 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[2])) {
		PyErr_SetString(PyExc_TypeError, "map_fill(value: list, chunksize, items: list)");
		return NULL;
	}
	PyObject *value = args[0], *items = args[2];
	Py_ssize_t cs = PyLong_AsSsize_t(args[1]);
	if (cs == -1 && PyErr_Occurred()) return NULL;
	Py_ssize_t k = 0, n = PyList_GET_SIZE(items);
	for (; k < n; k++) {
		PyObject *it = PyList_GET_ITEM(items, k);
		if (!PyTuple_CheckExact(it) || PyTuple_GET_SIZE(it) != 2) break;
		PyObject *pair = PyTuple_GET_ITEM(it, 1);
		if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 ||
		    PyTuple_GET_ITEM(pair, 0) != Py_True)
			break;
		Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(it, 0));
		if (i == -1 && PyErr_Occurred()) return NULL;
		PyObject *chunk = PyTuple_GET_ITEM(pair, 1);
		Py_ssize_t lo = i * cs, hi = lo + cs;
		if (PyList_CheckExact(chunk) && hi <= PyList_GET_SIZE(value) &&
		    PyList_GET_SIZE(chunk) == hi - lo) {
			/* In place, item by item: a slice assignment copies the
			 * items, and the old ones, on the way. */
			PyObject **src = ((PyListObject *)chunk)->ob_item;
			PyObject **dst = ((PyListObject *)value)->ob_item + lo;
			for (Py_ssize_t j = 0; j < hi - lo; j++) {
				PyObject *old = dst[j];
				dst[j] = Py_NewRef(src[j]);
				Py_XDECREF(old);
			}
		} else if (PyList_SetSlice(value, lo, hi, chunk) < 0) {
			return NULL;
		}
	}
	return PyLong_FromSsize_t(k);
}

/* plain_dumps(obj) -> the pickle plain.c makes of obj, or None if obj is
 * not plain. */
static PyObject *py_plain_dumps(PyObject *Py_UNUSED(self), PyObject *o) {
	PyObject *b = plain_bytes(o);
	if (b || PyErr_Occurred()) return b;
	Py_RETURN_NONE;
}

/* plain_loads(data, loads) -> the object pickled in data, read in C when it
 * is plain, else by loads(data). */
static PyObject *py_plain_loads(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "plain_loads(data, loads)");
		return NULL;
	}
	Py_buffer v;
	if (PyObject_GetBuffer(args[0], &v, PyBUF_SIMPLE) < 0) return NULL;
	PyObject *o = plain_load(v.buf, v.len);
	PyBuffer_Release(&v);
	if (o || PyErr_Occurred()) return o;
	return PyObject_CallOneArg(args[1], args[0]);
}

static PyMethodDef pool_functions[] = {
	{"plain_dumps", (PyCFunction)py_plain_dumps, METH_O,
	 "plain_dumps(obj) -> pickle of obj made in C, or None if obj is not plain."},
	{"plain_loads", (PyCFunction)(void (*)(void))py_plain_loads, METH_FASTCALL,
	 "plain_loads(data, loads) -> obj: read in C when plain, else loads(data)."},
	{"pool_put", (PyCFunction)(void (*)(void))pool_put, METH_FASTCALL,
	 "pool_put(queue, id, fn, payload): put one task message."},
	{"pool_put_chunks", (PyCFunction)(void (*)(void))pool_put_chunks, METH_FASTCALL,
	 "pool_put_chunks(queue, base, fn, seq, chunksize, i0, i1, fallback) -> [(i, exc)]"},
	{"pool_collect", (PyCFunction)(void (*)(void))pool_collect, METH_FASTCALL,
	 "pool_collect(queue, max, loads, outstanding) -> results grouped by job"},
	{"map_fill", (PyCFunction)(void (*)(void))map_fill, METH_FASTCALL,
	 "map_fill(value, chunksize, items) -> how many successful results it put in value"},
	{"pool_put_many", (PyCFunction)(void (*)(void))pool_put_many, METH_FASTCALL,
	 "pool_put_many(queue, ids, fn, payloads): put task messages in one commit."},
	{NULL, NULL, 0, NULL},
};

/* mpgo_pool_add adds the pool fast paths to the _fast module. */
int mpgo_pool_add(PyObject *m) {
	if (PyType_Ready(&PoolWorkerType) < 0) return -1;
	Py_INCREF(&PoolWorkerType);
	if (PyModule_AddObject(m, "PoolWorker", (PyObject *)&PoolWorkerType) < 0) return -1;
	if (PyType_Ready(&SubmitterType) < 0) return -1;
	Py_INCREF(&SubmitterType);
	if (PyModule_AddObject(m, "Submitter", (PyObject *)&SubmitterType) < 0) return -1;
	return PyModule_AddFunctions(m, pool_functions);
}
