/* pool_worker.c: PoolWorker, the worker end of a core/pool pool (through the
 * C ABI's mpgo_pool_worker_*), and serve, the worker's loop. The wire format
 * is core/pool's (wire.go; MPGO_POOL_* in mpgo_consts.h):
 *
 *   task    uint64 id | uint16 n | n bytes function | payload
 *   result  uint64 id | uint32 slot | uint8 status | body
 *
 * Calls run with the GIL held when they need not wait; waits release it
 * (cext_wait). */
#include "cext.h"
#include "plain.h"

/* The most a worker keeps of its result buffer between tasks. */
#define POOL_KEEP_OUT (16 << 20)

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
	if (check_forked() < 0) return -1;
	int rc = mpgo_pool_worker_attach(spec, &w->h);
	if (rc < 0) { cext_raise_code(rc); return -1; }
	w->cap = CEXT_SCRATCH;
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
	if (rc < 0) { cext_raise_code(rc); return NULL; }
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
	if (w->cap > CEXT_SCRATCH) {
		/* A big task passed: give its buffer back. */
		char *nb = PyMem_RawRealloc(w->buf, CEXT_SCRATCH);
		if (nb) { w->buf = nb; w->cap = CEXT_SCRATCH; }
	}
	for (;;) {
		rc = take_op(&ta, 0);
		if (rc == MPGO_EEMPTY && t != 0) rc = cext_wait(take_op, &ta, t, MPGO_EEMPTY);
		if (rc == CEXT_RAISED) return -1;
		if (rc != MPGO_ETOOSHORT) break;
		char *nb = PyMem_RawRealloc(w->buf, ta.n);
		if (!nb) { PyErr_NoMemory(); return -1; }
		w->buf = nb;
		w->cap = ta.n;
	}
	if (rc == MPGO_ECLOSED || rc == MPGO_EEMPTY) return 0;
	if (rc < 0) { cext_raise_code(rc); return -1; }
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
	if (rc < 0) { cext_raise_code(rc); return NULL; }
	Py_RETURN_NONE;
}

static PyObject *pw_backlog(PoolWorkerObj *w, PyObject *Py_UNUSED(unused)) {
	int64_t n = 0;
	int rc = mpgo_pool_worker_backlog(w->h, &n);
	if (rc < 0) { cext_raise_code(rc); return NULL; }
	return PyLong_FromLongLong(n);
}

static PyObject *pw_close(PoolWorkerObj *w, PyObject *Py_UNUSED(unused)) {
	if (w->h) {
		int rc = mpgo_pool_worker_close(w->h);
		w->h = 0;
		if (rc < 0) { cext_raise_code(rc); return NULL; }
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
			PyObject *e = cext_caught();
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
				PyObject *e = cext_caught();
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
		if (bn < CEXT_BIG) {
			rc = mpgo_pool_worker_done(w->h, id, status, bp, bn);
		} else {
			Py_BEGIN_ALLOW_THREADS
			rc = mpgo_pool_worker_done(w->h, id, status, bp, bn);
			Py_END_ALLOW_THREADS
		}
		if (rc < 0) { cext_raise_code(rc); goto fail; }
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

PyObject *cext_caught(void) {
	if (!PyErr_ExceptionMatches(PyExc_Exception)) return NULL;
	PyObject *t, *v, *tb;
	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if (tb && v) PyException_SetTraceback(v, tb);
	Py_XDECREF(t);
	Py_XDECREF(tb);
	return v;
}


int cext_pool_worker_add(PyObject *m) {
	if (PyType_Ready(&PoolWorkerType) < 0) return -1;
	Py_INCREF(&PoolWorkerType);
	return PyModule_AddObject(m, "PoolWorker", (PyObject *)&PoolWorkerType);
}
