/* pool_collect.c: the parent's gets of result messages (core/pool's wire
 * format, MPGO_POOL_* in mpgo_consts.h), delivered to the jobs waiting for
 * them, and map_fill. */
#include "cext.h"
#include "plain.h"

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
	return mpgo_queue_get_many(ra->qh, ra->buf, CEXT_SCRATCH, ra->max, slice, ra->lens, &ra->count);
}

typedef struct { int64_t qh, size, got; char *buf; } big_arg;

static int big_op(void *a, double slice) {
	big_arg *ba = a;
	return mpgo_queue_get(ba->qh, ba->buf, ba->size, slice, &ba->got);
}

/* Names of the result classes' attributes and methods. pool.py owns the
 * classes: C reads their state but changes it only through their methods
 * (_set, _placed). */
static PyObject *s_callback, *s_error_callback, *s_success, *s_value, *s_set, *s_placed,
	*s_number_left, *s_chunksize;

static int intern_names(void) {
	if (s_chunksize) return 0;
	struct { PyObject **p; const char *s; } names[] = {
		{&s_callback, "_callback"}, {&s_error_callback, "_error_callback"},
		{&s_success, "_success"}, {&s_value, "_value"}, {&s_set, "_set"},
		{&s_placed, "_placed"}, {&s_number_left, "_number_left"},
		{&s_chunksize, "_chunksize"},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!*names[i].p && !(*names[i].p = PyUnicode_InternFromString(names[i].s))) return -1;
	return 0;
}

/* deliver_apply delivers the result of job when it is an ApplyResult
 * (exactly cls) without callbacks, by its _set(0, (ok, obj)), here rather
 * than in a group for Python: 1 if it did, 0 if the job is for Python to
 * deliver, -1 with an exception set. */
static int deliver_apply(PyObject *cache, PyObject *cls, long long job, int ok, PyObject *obj) {
	if (!cache || !PyDict_CheckExact(cache) || intern_names() < 0) return 0;
	PyObject *key = PyLong_FromLongLong(job);
	if (!key) return -1;
	PyObject *r = PyDict_GetItemWithError(cache, key);
	Py_DECREF(key);
	if (!r || (PyObject *)Py_TYPE(r) != cls) return PyErr_Occurred() ? -1 : 0;
	Py_INCREF(r);
	int res = -1, cbs = 0;
	PyObject *v;
	for (int k = 0; k < 2; k++) {
		if (PyObject_GetOptionalAttr(r, k ? s_error_callback : s_callback, &v) < 0) goto out;
		if (v && v != Py_None) cbs = 1;
		Py_XDECREF(v);
	}
	if (cbs) { res = 0; goto out; }
	PyObject *zero = PyLong_FromLong(0);
	PyObject *pair = zero ? PyTuple_Pack(2, ok ? Py_True : Py_False, obj) : NULL;
	PyObject *x = pair ? PyObject_CallMethodObjArgs(r, s_set, zero, pair, NULL) : NULL;
	Py_XDECREF(zero);
	Py_XDECREF(pair);
	if (!x) goto out;
	Py_DECREF(x);
	res = 1;
out:
	Py_DECREF(r);
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
	/* A long map's list is made, by Python, when its first result comes. */
	if (!value || !PyList_CheckExact(value)) goto out;
	Py_ssize_t lo = i * chunk, hi = lo + chunk;
	if (hi > PyList_GET_SIZE(value)) hi = PyList_GET_SIZE(value);
	if (lo >= hi) goto out;
	res = plain_load_into(body, bn, value, lo, hi);
	if (res == 1) {
		PyObject *one = PyLong_FromLong(1);
		PyObject *x = one ? PyObject_CallMethodOneArg(r, s_placed, one) : NULL;
		Py_XDECREF(one);
		if (x) Py_DECREF(x);
		else res = -1;
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
			PyObject *e = cext_caught();
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
			PyObject *e = cext_caught();
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
	char *buf = PyMem_RawMalloc(CEXT_SCRATCH);
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
	if (check_forked() < 0) return NULL;
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
	if (rc == MPGO_EEMPTY) rc = cext_wait(results_op, &ra, -1, MPGO_EEMPTY);
	res_flowing = rc == 0 && ra.count >= 2;
	if (rc == CEXT_RAISED) return NULL;
	PyObject *out = PyList_New(0), *group = NULL;
	long long group_job = -1;
	if (!out) return NULL;
	if (rc == MPGO_ETOOSHORT) {
		/* One message bigger than the scratch: into a bytes of its size.
		 * The pool's driver is the result queue's only reader, so the
		 * message stays first; but the get may still find the lock held
		 * (a putter growing the ring under it, or descheduled): it waits
		 * for it rather than trying once, which read as an empty queue
		 * and broke the pool. */
		PyObject *b = PyBytes_FromStringAndSize(NULL, lens[0]);
		if (!b) { Py_DECREF(out); return NULL; }
		big_arg ba = {qh, lens[0], 0, PyBytes_AS_STRING(b)};
		rc = cext_wait(big_op, &ba, -1, MPGO_EEMPTY);
		if (rc < 0 || collect_one(out, ba.buf, ba.got, b, loads, outstanding,
					  &group, &group_job, cache, cls, mcls) < 0) {
			if (rc < 0 && rc != CEXT_RAISED) cext_raise_code(rc);
			Py_DECREF(b);
			Py_DECREF(out);
			return NULL;
		}
		Py_DECREF(b);
		return out;
	}
	if (rc < 0) { Py_DECREF(out); cext_raise_code(rc); return NULL; }
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

static PyMethodDef collect_functions[] = {
	{"pool_collect", (PyCFunction)(void (*)(void))pool_collect, METH_FASTCALL,
	 "pool_collect(queue, max, loads, outstanding) -> results grouped by job"},
	{"map_fill", (PyCFunction)(void (*)(void))map_fill, METH_FASTCALL,
	 "map_fill(value, chunksize, items) -> how many successful results it put in value"},
	{NULL, NULL, 0, NULL},
};

int cext_pool_collect_add(PyObject *m) {
	return PyModule_AddFunctions(m, collect_functions);
}
