/* pool_submit.c: the parent's puts of task messages (core/pool's wire
 * format, MPGO_POOL_* in mpgo_consts.h): one, many, a map's chunks, and
 * Submitter, which holds apply() tasks back and puts them in batches. */
#include "cext.h"
#include "plain.h"

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
	if (check_forked() < 0) return NULL;
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
	if (total < CEXT_BIG) {
		rc = mpgo_queue_put_many(qh, ptrs, lens, n, -1, &done);
	} else {
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_put_many(qh, ptrs, lens, n, -1, &done);
		Py_END_ALLOW_THREADS
	}
	if (rc < 0) { cext_raise_code(rc); goto out; }
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
	if (cb->b.n < CEXT_BIG) {
		rc = mpgo_queue_put_many(qh, ptrs, lens, cb->n, -1, &done);
	} else {
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_put_many(qh, ptrs, lens, cb->n, -1, &done);
		Py_END_ALLOW_THREADS
	}
	cb->n = 0;
	cb->b.n = 0;
	if (rc < 0) { cext_raise_code(rc); return -1; }
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
	if (check_forked() < 0) return NULL;
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
				PyObject *v = cext_caught();
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
	if (cb->b.n >= CEXT_BIG) {
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
	PyObject *v = cext_caught(), *et = NULL, *ev = NULL, *etb = NULL;
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
	if (check_forked() < 0) return NULL;
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
	if (v.len < CEXT_BIG) {
		rc = mpgo_queue_put_v(qh, parts, lens, 3, -1);
	} else {
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_put_v(qh, parts, lens, 3, -1);
		Py_END_ALLOW_THREADS
	}
	PyBuffer_Release(&v);
	if (rc < 0) { cext_raise_code(rc); return NULL; }
	Py_RETURN_NONE;
}

static PyMethodDef submit_functions[] = {
	{"pool_put", (PyCFunction)(void (*)(void))pool_put, METH_FASTCALL,
	 "pool_put(queue, id, fn, payload): put one task message."},
	{"pool_put_chunks", (PyCFunction)(void (*)(void))pool_put_chunks, METH_FASTCALL,
	 "pool_put_chunks(queue, base, fn, seq, chunksize, i0, i1, fallback) -> [(i, exc)]"},
	{"pool_put_many", (PyCFunction)(void (*)(void))pool_put_many, METH_FASTCALL,
	 "pool_put_many(queue, ids, fn, payloads): put task messages in one commit."},
	{NULL, NULL, 0, NULL},
};

int cext_pool_submit_add(PyObject *m) {
	if (PyType_Ready(&SubmitterType) < 0) return -1;
	Py_INCREF(&SubmitterType);
	if (PyModule_AddObject(m, "Submitter", (PyObject *)&SubmitterType) < 0) return -1;
	return PyModule_AddFunctions(m, submit_functions);
}
