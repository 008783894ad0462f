/* queues.c: Queue, the puts and gets of messages on a core/queue ring
 * (through the C ABI), with the out-of-band buffers of pickle protocol 5. */
#include "cext.h"
#include "plain.h"
#include <structmember.h>
#include <linux/futex.h>

/* ---- Queue: put/get of byte messages on a core/queue ring ----
 *
 * A first attempt runs with the GIL held and no wait: most puts and gets
 * find room or a message at once, and dropping the GIL costs more than the
 * copy. Only waits (and copies of large messages) release the GIL, in
 * slices, checking for signals between them. */


static __thread char *scratch __attribute__((tls_model("initial-exec")));

typedef struct {
	PyObject_HEAD
	int64_t h;
	/* Set by configure() for a Queue's put_obj/get_obj: */
	PyObject *dumps, *loads, *plain_dumps, *plain_types, *closed_msg;
	/* on_sync keeps the doorbell exact in level mode: a method of the
	 * doorbell, which holds only weak references to connections, so that a
	 * Queue object never refers back to its owner. */
	PyObject *on_sync;
	Py_buffer ctl_view;  /* the pipe's control words (see RingConnection) */
	uint32_t *ctl;
	/* bell_fd is the reader's doorbell a put rings (-1: none). */
	int armed, level, bell_fd, closed;
	char proto;  /* plain_dumps's protocol byte if scalars may skip it, else 0 */
	char used;   /* put_obj was called: a Queue's close() then closes for good */
} QueueObj;

static int queue_init(QueueObj *q, PyObject *args, PyObject *Py_UNUSED(kw)) {
	long long h;
	if (!PyArg_ParseTuple(args, "L", &h)) return -1;
	q->h = h;
	q->bell_fd = -1;
	return 0;
}

/* queue_clear drops what configure() gave; the object then says "queue not
 * configured" instead of using it. */
static int queue_clear(QueueObj *q) {
	Py_CLEAR(q->dumps);
	Py_CLEAR(q->loads);
	Py_CLEAR(q->plain_dumps);
	Py_CLEAR(q->plain_types);
	Py_CLEAR(q->closed_msg);
	Py_CLEAR(q->on_sync);
	if (q->ctl) {
		q->ctl = NULL;
		PyBuffer_Release(&q->ctl_view);
	}
	return 0;
}

static int queue_traverse(QueueObj *q, visitproc visit, void *arg) {
	Py_VISIT(q->dumps);
	Py_VISIT(q->loads);
	Py_VISIT(q->plain_dumps);
	Py_VISIT(q->plain_types);
	Py_VISIT(q->closed_msg);
	Py_VISIT(q->on_sync);
	/* Not ctl_view's exporter: see semlock_traverse. */
	return 0;
}

static void queue_dealloc(QueueObj *q) {
	PyObject_GC_UnTrack(q);
	queue_clear(q);
	Py_TYPE(q)->tp_free((PyObject *)q);
}

/* parse_timeout turns (block, timeout) into seconds: -1 forever, 0 none. */
static int parse_timeout(PyObject *block, PyObject *tobj, double *t) {
	int b = block ? PyObject_IsTrue(block) : 1;
	if (b < 0) return -1;
	if (!b) { *t = 0; return 0; }
	if (!tobj || tobj == Py_None) { *t = -1; return 0; }
	*t = PyFloat_AsDouble(tobj);
	if (*t == -1 && PyErr_Occurred()) return -1;
	if (*t < 0) {
		PyErr_SetString(PyExc_ValueError, "'timeout' must be a non-negative number");
		return -1;
	}
	return 0;
}

static PyObject *queue_put(QueueObj *q, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs < 1 || nargs > 3) {
		PyErr_SetString(PyExc_TypeError, "put(data, block=True, timeout=None)");
		return NULL;
	}
	double t;
	if (parse_timeout(nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL, &t) < 0) return NULL;
	if (check_forked() < 0) return NULL;
	Py_buffer v;
	if (PyObject_GetBuffer(args[0], &v, PyBUF_SIMPLE) < 0) return NULL;
	int rc;
	if (v.len < CEXT_BIG) {
		rc = mpgo_queue_put(q->h, v.buf, v.len, 0);
	} else {
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_put(q->h, v.buf, v.len, 0);
		Py_END_ALLOW_THREADS
	}
	if (rc == MPGO_EFULL && t != 0) {
		Slicer sl;
		slicer_start(&sl, t);
		double slice;
		while (rc == MPGO_EFULL && !slicer_next(&sl, &slice)) {
			Py_BEGIN_ALLOW_THREADS
			rc = mpgo_queue_put(q->h, v.buf, v.len, slice);
			Py_END_ALLOW_THREADS
			if (rc == MPGO_EFULL && PyErr_CheckSignals() < 0) {
				PyBuffer_Release(&v);
				return NULL;
			}
		}
	}
	PyBuffer_Release(&v);
	if (rc < 0) { cext_raise_code(rc); return NULL; }
	Py_RETURN_NONE;
}

/* get_exact fetches a message of length n (just reported by a short get)
 * straight into a bytes object; another consumer may take it first, so it
 * retries with whatever is next. GIL held on entry and exit. */
static PyObject *get_exact(QueueObj *q, int64_t n) {
	for (;;) {
		PyObject *b = PyBytes_FromStringAndSize(NULL, n);
		if (!b) return NULL;
		int64_t got = 0;
		int rc;
		if (n < CEXT_BIG) {
			rc = mpgo_queue_get(q->h, PyBytes_AS_STRING(b), n, 0, &got);
		} else {
			Py_BEGIN_ALLOW_THREADS
			rc = mpgo_queue_get(q->h, PyBytes_AS_STRING(b), n, 0, &got);
			Py_END_ALLOW_THREADS
		}
		if (rc == MPGO_ETOOSHORT) { Py_DECREF(b); n = got; continue; }
		if (rc < 0) { Py_DECREF(b); return (PyObject *)(intptr_t)rc; }
		if (got != n && _PyBytes_Resize(&b, got) < 0) return NULL;
		return b;
	}
}

#define IS_CODE(p) ((intptr_t)(p) < 0 && (intptr_t)(p) > -100)

static PyObject *queue_get(QueueObj *q, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs > 2) {
		PyErr_SetString(PyExc_TypeError, "get(block=True, timeout=None)");
		return NULL;
	}
	double t;
	if (parse_timeout(nargs > 0 ? args[0] : NULL, nargs > 1 ? args[1] : NULL, &t) < 0) return NULL;
	if (check_forked() < 0) return NULL;
	if (!scratch && !(scratch = PyMem_RawMalloc(CEXT_SCRATCH))) return PyErr_NoMemory();
	int64_t n = 0;
	int rc = mpgo_queue_get(q->h, scratch, CEXT_SCRATCH, 0, &n);
	Slicer sl;
	slicer_start(&sl, t);
	for (;;) {
		if (rc == 0) return PyBytes_FromStringAndSize(scratch, n);
		if (rc == MPGO_ETOOSHORT) {
			/* A message larger than the scratch buffer: fetch it straight
			 * into a bytes object of its size. */
			PyObject *b = get_exact(q, n);
			if (!IS_CODE(b)) return b;
			rc = (int)(intptr_t)b;  /* another consumer took it first */
		}
		if (rc != MPGO_EEMPTY || t == 0) break;
		double slice;
		if (slicer_next(&sl, &slice)) break;
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_get(q->h, scratch, CEXT_SCRATCH, slice, &n);
		Py_END_ALLOW_THREADS
		if (rc == MPGO_EEMPTY && PyErr_CheckSignals() < 0) return NULL;
	}
	cext_raise_code(rc);
	return NULL;
}

/* Raw messages: a bytes object of at least RAW_MIN bytes travels as itself
 * followed by one MPGO_QUEUE_RAW_TAG byte instead of as a pickle, so it is copied once
 * on each side (pickling it would copy it twice more). Every pickle ends
 * with the STOP opcode '.', so the tag tells the two apart. */
#define RAW_MIN (64 * 1024)

static PyObject *queue_put_raw(QueueObj *q, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs < 1 || nargs > 3 || !PyBytes_CheckExact(args[0])) {
		PyErr_SetString(PyExc_TypeError, "put_raw(bytes, block=True, timeout=None)");
		return NULL;
	}
	double t;
	if (parse_timeout(nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL, &t) < 0) return NULL;
	if (check_forked() < 0) return NULL;
	static const char tag = MPGO_QUEUE_RAW_TAG;
	PyObject *b = args[0];
	const void *parts[2] = {PyBytes_AS_STRING(b), &tag};
	int64_t lens[2] = {PyBytes_GET_SIZE(b), 1};
	int rc;
	/* The GIL is released anyway, so even the first attempt may wait (a
	 * slice): an unbounded queue waits a moment for room before it grows
	 * its ring, if getters are draining it. */
	Slicer sl;
	slicer_start(&sl, t);
	double slice = 0;
	if (t != 0 && slicer_next(&sl, &slice)) slice = 0;
	Py_BEGIN_ALLOW_THREADS
	rc = mpgo_queue_put_v(q->h, parts, lens, 2, slice);
	Py_END_ALLOW_THREADS
	if (rc == MPGO_EFULL && t != 0) {
		if (PyErr_CheckSignals() < 0) return NULL;
		while (rc == MPGO_EFULL && !slicer_next(&sl, &slice)) {
			Py_BEGIN_ALLOW_THREADS
			rc = mpgo_queue_put_v(q->h, parts, lens, 2, slice);
			Py_END_ALLOW_THREADS
			if (rc == MPGO_EFULL && PyErr_CheckSignals() < 0) return NULL;
		}
	}
	if (rc < 0) { cext_raise_code(rc); return NULL; }
	Py_RETURN_NONE;
}

/* ---- Out-of-band messages (pickle protocol 5) ----
 *
 * An object holding large buffers (numpy arrays, anything whose
 * __reduce_ex__(5) yields a PickleBuffer) is put as ONE message made of
 * parts laid end to end: the pickle stream, then each large buffer, then a
 * table of lengths and one MPGO_QUEUE_OOB_TAG byte (mpgo.reduction documents the
 * layout). put_parts copies each part once, straight into the ring.
 *
 * Getting one, the message lands in a fresh bytes object that nobody else
 * sees; a Landing exports its memory writable, and the Python oob_loads
 * unpickles with buffers= slices of it, so arrays come back as writable
 * views on the landing, as pickle 5 gives for writable originals. */

typedef struct {
	PyObject_HEAD
	PyObject *owner;  /* a bytes object this module alone refers to */
} Landing;

static void landing_dealloc(Landing *l) {
	PyObject_GC_UnTrack(l);
	Py_CLEAR(l->owner);
	Py_TYPE(l)->tp_free((PyObject *)l);
}

/* landing_traverse: no tp_clear, as views may still point into owner (a
 * bytes object, which refers to nothing, so it never closes a cycle). */
static int landing_traverse(Landing *l, visitproc visit, void *arg) {
	Py_VISIT(l->owner);
	return 0;
}

static int landing_getbuffer(Landing *l, Py_buffer *view, int flags) {
	return PyBuffer_FillInfo(view, (PyObject *)l, PyBytes_AS_STRING(l->owner),
				 PyBytes_GET_SIZE(l->owner), 0, flags);
}

static PyBufferProcs landing_as_buffer = {(getbufferproc)landing_getbuffer, NULL};

static PyTypeObject LandingType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "mpgo._native._fast.Landing",
	.tp_basicsize = sizeof(Landing),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A received out-of-band message, exported writable (not instantiable).",
	.tp_dealloc = (destructor)landing_dealloc,
	.tp_traverse = (traverseproc)landing_traverse,
	.tp_as_buffer = &landing_as_buffer,
};

static PyObject *oob_loads_fn;  /* mpgo.reduction.oob_loads */

static PyObject *fast_set_oob_loads(PyObject *Py_UNUSED(self), PyObject *fn) {
	Py_XINCREF(fn);
	Py_XSETREF(oob_loads_fn, fn);
	Py_RETURN_NONE;
}

/* oob_load steals m, an OOB message, and returns its object. A bytes
 * object held by nobody else (sole) becomes the landing as it is; anything
 * else is copied into a bytearray first (mutating a shared bytes would be
 * wrong). */
static PyObject *oob_load(PyObject *m, int sole) {
	if (!oob_loads_fn) {
		Py_DECREF(m);
		PyErr_SetString(PyExc_RuntimeError, "mpgo: out-of-band loads not set");
		return NULL;
	}
	PyObject *land;
	if (PyBytes_CheckExact(m) && sole) {
		Landing *l = PyObject_GC_New(Landing, &LandingType);
		if (!l) { Py_DECREF(m); return NULL; }
		l->owner = m;
		PyObject_GC_Track(l);
		land = (PyObject *)l;
	} else {
		land = PyByteArray_FromObject(m);
		Py_DECREF(m);
		if (!land) return NULL;
	}
	PyObject *obj = PyObject_CallOneArg(oob_loads_fn, land);
	Py_DECREF(land);
	return obj;
}

/* oob_loads(message): the object of an OOB message that Python holds, e.g.
 * one of get_many()'s. Pass it as a temporary (oob_loads(l.pop())) and it
 * is not copied. */
static PyObject *fast_oob_loads(PyObject *Py_UNUSED(self), PyObject *m) {
	int sole = Py_REFCNT(m) == 1;  /* only the caller's argument */
	Py_INCREF(m);
	return oob_load(m, sole);
}

/* put_parts(parts, block=True, timeout=None): ONE message made of the
 * bytes-like objects in the list parts, laid end to end: each is copied
 * once, straight into the ring, with the GIL released. Either the whole
 * message is put or nothing is. */
static PyObject *queue_put_parts(QueueObj *q, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs < 1 || nargs > 3 || !PyList_CheckExact(args[0])) {
		PyErr_SetString(PyExc_TypeError, "put_parts(list, block=True, timeout=None)");
		return NULL;
	}
	double t;
	if (parse_timeout(nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL, &t) < 0) return NULL;
	if (check_forked() < 0) return NULL;
	/* Own a reference to the list: a buffer's export may run Python code. */
	PyObject *seq = PySequence_List(args[0]);
	if (!seq) return NULL;
	Py_ssize_t n = PyList_GET_SIZE(seq), got = 0;
	Py_buffer *views = PyMem_Calloc(n ? n : 1, sizeof(Py_buffer));
	const void **ptrs = PyMem_Calloc(n ? n : 1, sizeof(void *));
	int64_t *lens = PyMem_Calloc(n ? n : 1, sizeof(int64_t));
	PyObject *res = NULL;
	int rc;
	if (!views || !ptrs || !lens) { PyErr_NoMemory(); goto out; }
	for (; got < n; got++) {
		if (PyObject_GetBuffer(PyList_GET_ITEM(seq, got), &views[got], PyBUF_SIMPLE) < 0)
			goto out;
		ptrs[got] = views[got].buf;
		lens[got] = views[got].len;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = mpgo_queue_put_v(q->h, ptrs, lens, n, 0);
	Py_END_ALLOW_THREADS
	if (rc == MPGO_EFULL && t != 0) {
		Slicer sl;
		slicer_start(&sl, t);
		double slice;
		while (rc == MPGO_EFULL && !slicer_next(&sl, &slice)) {
			Py_BEGIN_ALLOW_THREADS
			rc = mpgo_queue_put_v(q->h, ptrs, lens, n, slice);
			Py_END_ALLOW_THREADS
			if (rc == MPGO_EFULL && PyErr_CheckSignals() < 0) goto out;
		}
	}
	if (rc < 0) { cext_raise_code(rc); goto out; }
	res = Py_NewRef(Py_None);
out:
	for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
	PyMem_Free(views);
	PyMem_Free(ptrs);
	PyMem_Free(lens);
	Py_DECREF(seq);
	return res;
}

/* get_obj(block, timeout, loads): the next message as an object: a raw
 * message is returned as the bytes it carries (the tag cut off in place),
 * anything else is passed to loads. */
static PyObject *queue_get_obj(QueueObj *q, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 3) {
		PyErr_SetString(PyExc_TypeError, "get_obj(block, timeout, loads)");
		return NULL;
	}
	PyObject *m = queue_get(q, args, 2);
	if (!m) return NULL;
	Py_ssize_t n = PyBytes_GET_SIZE(m);
	if (n > 0 && PyBytes_AS_STRING(m)[n - 1] == MPGO_QUEUE_RAW_TAG) {
		if (_PyBytes_Resize(&m, n - 1) < 0) return NULL;
		return m;
	}
	if (n > 0 && PyBytes_AS_STRING(m)[n - 1] == MPGO_QUEUE_OOB_TAG) return oob_load(m, Py_REFCNT(m) == 1);
	PyObject *obj = plain_scalar_loads((const unsigned char *)PyBytes_AS_STRING(m), n);
	if (obj) { Py_DECREF(m); return obj; }
	obj = PyObject_CallOneArg(args[2], m);
	Py_DECREF(m);
	return obj;
}

/* fold_args fills out[0..n) from positional args and keywords named by
 * names, as Python would bind them; missing ones are NULL. */
static int fold_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
		     const char *const *names, int n, PyObject **out, const char *fn) {
	if (nargs > n) {
		PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments", fn, n);
		return -1;
	}
	for (int i = 0; i < n; i++) out[i] = i < nargs ? args[i] : NULL;
	if (kwnames) {
		for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); k++) {
			PyObject *key = PyTuple_GET_ITEM(kwnames, k);
			int i = 0;
			while (i < n && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) i++;
			if (i == n) {
				PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fn, key);
				return -1;
			}
			if (out[i]) {
				PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn, names[i]);
				return -1;
			}
			out[i] = args[nargs + k];
		}
	}
	return 0;
}

/* configure(dumps, loads, plain_dumps, plain_types, ctl, armed, level,
 * bell_fd, on_sync, closed_msg) readies put_obj/get_obj for a Queue:
 * pickling, the doorbell of its reader (rung by puts while somebody waits
 * on it), and the message of a closed queue. on_sync (None: never) is
 * called after each put and get while ctl[level] is set: it makes the
 * doorbell match the ring, under the doorbell's lock
 * (connection._Doorbell.sync, which refers to no connection). */
static PyObject *queue_configure(QueueObj *q, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 10) {
		PyErr_SetString(PyExc_TypeError, "configure() takes 10 arguments");
		return NULL;
	}
	int armed = PyLong_AsLong(args[5]), level = PyLong_AsLong(args[6]), fd = PyLong_AsLong(args[7]);
	if (PyErr_Occurred()) return NULL;
	if (args[8] != Py_None && !PyCallable_Check(args[8])) {
		PyErr_SetString(PyExc_TypeError, "configure(): on_sync must be callable or None");
		return NULL;
	}
	if (q->ctl) { PyBuffer_Release(&q->ctl_view); q->ctl = NULL; }
	if (PyObject_GetBuffer(args[4], &q->ctl_view, PyBUF_WRITABLE) < 0) return NULL;
	if (q->ctl_view.len < 16 || armed < 0 || armed > 3 || level < 0 || level > 3) {
		PyBuffer_Release(&q->ctl_view);
		PyErr_SetString(PyExc_ValueError, "bad control block");
		return NULL;
	}
	q->ctl = q->ctl_view.buf;
	q->armed = armed;
	q->level = level;
	q->bell_fd = fd;
	Py_XSETREF(q->on_sync, args[8] == Py_None ? NULL : Py_NewRef(args[8]));
	PyObject **slots[] = {&q->dumps, &q->loads, &q->plain_dumps, &q->plain_types};
	for (int i = 0; i < 4; i++) { Py_INCREF(args[i]); Py_XSETREF(*slots[i], args[i]); }
	q->proto = plain_scalar_proto(args[2]);
	Py_INCREF(args[9]);
	Py_XSETREF(q->closed_msg, args[9]);
	Py_RETURN_NONE;
}

static PyObject *queue_set_closed(QueueObj *q, PyObject *flag) {
	q->closed = PyObject_IsTrue(flag);
	Py_RETURN_NONE;
}

static int queue_check_ready(QueueObj *q) {
	if (!q->dumps) {
		PyErr_SetString(PyExc_RuntimeError, "queue not configured");
		return -1;
	}
	if (q->closed) {
		PyErr_SetObject(PyExc_ValueError, q->closed_msg);
		return -1;
	}
	return 0;
}

/* ring_bell wakes a reader waiting in connection.wait() or poll(); most
 * puts find nobody there and make no call. Once somebody selects on the
 * reader's fileno() (level mode), the doorbell must be readable exactly
 * while a message waits, which on_sync sees to under the doorbell's lock;
 * the message is in by then, so an error there is reported, not raised. */
static void sync_bell(QueueObj *q);

static inline void ring_bell(QueueObj *q) {
	if (__atomic_load_n(&q->ctl[q->level], __ATOMIC_SEQ_CST)) {
		sync_bell(q);
	} else if (__atomic_load_n(&q->ctl[q->armed], __ATOMIC_SEQ_CST)) {
		char one = 1;
		if (write(q->bell_fd, &one, 1) < 0) { /* full or gone: fine */ }
	}
}

/* sync_bell calls on_sync (level mode, after a put or a get). The message
 * is in, or ours, by then: an error is reported, never raised. */
static void sync_bell(QueueObj *q) {
	if (!q->on_sync) return;
	PyObject *d = PyObject_CallNoArgs(q->on_sync);
	if (d) Py_DECREF(d);
	else PyErr_WriteUnraisable(q->on_sync);
}

/* scalar_bytes returns obj pickled by scalar_dumps as a bytes object, or
 * NULL (no error set) if it does not do obj. */
static PyObject *scalar_bytes(PyObject *obj, char proto) {
	char buf[24];
	Py_ssize_t k = plain_scalar_dumps(obj, proto, buf);
	if (!k) return NULL;
	PyObject *b = PyBytes_FromStringAndSize(buf, k);
	if (!b) PyErr_Clear();
	return b;
}

/* put_obj(obj, block=True, timeout=None): Queue.put in one C call. */
static PyObject *queue_put_obj(QueueObj *q, PyObject *const *args, Py_ssize_t nargs,
			       PyObject *kwnames) {
	static const char *const names[] = {"obj", "block", "timeout"};
	PyObject *a[3];
	if (fold_args(args, nargs, kwnames, names, 3, a, "put") < 0) return NULL;
	if (!a[0]) {
		PyErr_SetString(PyExc_TypeError, "put() missing required argument 'obj'");
		return NULL;
	}
	if (queue_check_ready(q) < 0) return NULL;
	q->used = 1;
	PyObject *obj = a[0];
	PyObject *rest[3];
	rest[1] = a[1] ? a[1] : Py_True;
	rest[2] = a[2] ? a[2] : Py_None;
	if (rest[2] != Py_None) {
		double t = PyFloat_AsDouble(rest[2]);
		if (t == -1 && PyErr_Occurred()) return NULL;
		if (t < 0) rest[2] = PyFloat_FromDouble(0);
		else Py_INCREF(rest[2]);
	} else {
		Py_INCREF(rest[2]);
	}
	PyObject *r;
	if (PyBytes_CheckExact(obj) && PyBytes_GET_SIZE(obj) >= RAW_MIN) {
		rest[0] = obj;
		r = queue_put_raw(q, rest, 3);
	} else if (q->proto && (rest[0] = scalar_bytes(obj, q->proto))) {
		r = queue_put(q, rest, 3);
		Py_DECREF(rest[0]);
	} else {
		int plain = PySet_Contains(q->plain_types, (PyObject *)Py_TYPE(obj));
		PyObject *data = plain > 0 ? PyObject_CallOneArg(q->plain_dumps, obj)
					   : plain == 0 ? PyObject_CallOneArg(q->dumps, obj) : NULL;
		if (!data) { Py_DECREF(rest[2]); return NULL; }
		rest[0] = data;
		/* dumps gives a list of parts for an object with large buffers. */
		r = PyList_CheckExact(data) ? queue_put_parts(q, rest, 3) : queue_put(q, rest, 3);
		Py_DECREF(data);
	}
	Py_DECREF(rest[2]);
	if (r) ring_bell(q);
	return r;
}

/* get_obj2(block=True, timeout=None): Queue.get in one C call. */
static PyObject *queue_get_obj2(QueueObj *q, PyObject *const *args, Py_ssize_t nargs,
				PyObject *kwnames) {
	static const char *const names[] = {"block", "timeout"};
	PyObject *a[2];
	if (fold_args(args, nargs, kwnames, names, 2, a, "get") < 0) return NULL;
	if (queue_check_ready(q) < 0) return NULL;
	PyObject *ga[3];
	ga[0] = a[0] ? a[0] : Py_True;
	ga[1] = a[1] ? a[1] : Py_None;
	PyObject *tobj = NULL;
	if (ga[1] != Py_None) {
		double t = PyFloat_AsDouble(ga[1]);
		if (t == -1 && PyErr_Occurred()) return NULL;
		if (t < 0) ga[1] = tobj = PyFloat_FromDouble(0);
	}
	ga[2] = q->loads;
	PyObject *r = queue_get_obj(q, ga, 3);
	Py_XDECREF(tobj);
	if (r && __atomic_load_n(&q->ctl[q->level], __ATOMIC_SEQ_CST))
		sync_bell(q);  /* level mode (see ring_bell): the message is ours */
	return r;
}

static PyObject *queue_get_many(QueueObj *q, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs < 1 || nargs > 3) {
		PyErr_SetString(PyExc_TypeError, "get_many(max_messages, block=True, timeout=None)");
		return NULL;
	}
	Py_ssize_t max = PyLong_AsSsize_t(args[0]);
	if (max == -1 && PyErr_Occurred()) return NULL;
	if (max < 1) {
		PyErr_SetString(PyExc_ValueError, "max_messages must be >= 1");
		return NULL;
	}
	if (max > 4096) max = 4096;
	double t;
	if (parse_timeout(nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL, &t) < 0) return NULL;
	if (check_forked() < 0) return NULL;
	if (!scratch && !(scratch = PyMem_RawMalloc(CEXT_SCRATCH))) return PyErr_NoMemory();
	int64_t lens[4096], count = 0;
	int rc = mpgo_queue_get_many(q->h, scratch, CEXT_SCRATCH, max, 0, lens, &count);
	Slicer sl;
	slicer_start(&sl, t);
	for (;;) {
		if (rc == MPGO_ETOOSHORT) {
			/* The first message is larger than the scratch: it comes
			 * alone, straight into a bytes object of its size. */
			PyObject *b = get_exact(q, lens[0]);
			if (!b) return NULL;
			if (!IS_CODE(b)) {
				PyObject *l = PyList_New(1);
				if (!l) { Py_DECREF(b); return NULL; }
				PyList_SET_ITEM(l, 0, b);
				return l;
			}
			/* Another consumer took it first, or its try of the lock
			 * found it held: wait on, as for any empty queue. */
			rc = (int)(intptr_t)b;
		}
		if (rc != MPGO_EEMPTY || t == 0) break;
		double slice;
		if (slicer_next(&sl, &slice)) break;
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_get_many(q->h, scratch, CEXT_SCRATCH, max, slice, lens, &count);
		Py_END_ALLOW_THREADS
		if (rc == MPGO_EEMPTY && PyErr_CheckSignals() < 0) return NULL;
	}
	if (rc < 0) { cext_raise_code(rc); return NULL; }
	PyObject *l = PyList_New(count);
	if (!l) return NULL;
	int64_t off = 0;
	for (int64_t i = 0; i < count; i++) {
		PyObject *b = PyBytes_FromStringAndSize(scratch + off, lens[i]);
		if (!b) { Py_DECREF(l); return NULL; }
		PyList_SET_ITEM(l, i, b);
		off += lens[i];
	}
	return l;
}

static PyObject *queue_put_many(QueueObj *q, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs < 1 || nargs > 3) {
		PyErr_SetString(PyExc_TypeError, "put_many(messages, block=True, timeout=None)");
		return NULL;
	}
	double t;
	if (parse_timeout(nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL, &t) < 0) return NULL;
	if (check_forked() < 0) return NULL;
	PyObject *seq = PySequence_Fast(args[0], "put_many() needs a sequence of bytes-like objects");
	if (!seq) return NULL;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	Py_buffer *views = PyMem_Calloc(n ? n : 1, sizeof(Py_buffer));
	const void **ptrs = PyMem_Calloc(n ? n : 1, sizeof(void *));
	int64_t *lens = PyMem_Calloc(n ? n : 1, sizeof(int64_t));
	Py_ssize_t got = 0;
	PyObject *res = NULL;
	if (!views || !ptrs || !lens) { PyErr_NoMemory(); goto out; }
	for (; got < n; got++) {
		if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, got), &views[got], PyBUF_SIMPLE) < 0)
			goto out;
		ptrs[got] = views[got].buf;
		lens[got] = views[got].len;
	}
	int64_t done = 0, total = 0;
	int rc = 0;
	Slicer sl;
	slicer_start(&sl, t);
	for (;;) {
		double slice = 0;
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_put_many(q->h, ptrs + total, lens + total, n - total, slice, &done);
		Py_END_ALLOW_THREADS
		total += done;
		if (rc != MPGO_EFULL || t == 0 || total == n) break;
		if (PyErr_CheckSignals() < 0) goto out;
		if (slicer_next(&sl, &slice)) break;
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_put_many(q->h, ptrs + total, lens + total, n - total, slice, &done);
		Py_END_ALLOW_THREADS
		total += done;
		if (rc != MPGO_EFULL || total == n) break;
	}
	if (rc < 0) { cext_raise_code(rc); goto out; }
	res = PyLong_FromLongLong(total);
out:
	for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
	PyMem_Free(views);
	PyMem_Free(ptrs);
	PyMem_Free(lens);
	Py_DECREF(seq);
	return res;
}

static PyObject *queue_qsize(QueueObj *q, PyObject *Py_UNUSED(unused)) {
	if (check_forked() < 0) return NULL;
	int64_t n = 0;
	int rc = mpgo_queue_len(q->h, &n);
	if (rc < 0) { cext_raise_code(rc); return NULL; }
	return PyLong_FromLongLong(n);
}

static PyObject *queue_task_done(QueueObj *q, PyObject *Py_UNUSED(unused)) {
	if (check_forked() < 0) return NULL;
	int rc = mpgo_queue_task_done(q->h);
	if (rc < 0) { cext_raise_code(rc); return NULL; }
	Py_RETURN_NONE;
}

static PyObject *queue_join(QueueObj *q, PyObject *const *args, Py_ssize_t nargs) {
	double t = -1;
	if (nargs > 0 && args[0] != Py_None) {
		t = PyFloat_AsDouble(args[0]);
		if (t == -1 && PyErr_Occurred()) return NULL;
		if (t < 0) t = 0;
	}
	if (check_forked() < 0) return NULL;
	Slicer sl;
	slicer_start(&sl, t);
	double slice = 0;
	for (;;) {
		int rc;
		Py_BEGIN_ALLOW_THREADS
		rc = mpgo_queue_join(q->h, slice);
		Py_END_ALLOW_THREADS
		if (rc < 0) { cext_raise_code(rc); return NULL; }
		if (rc == 1) Py_RETURN_TRUE;
		if (PyErr_CheckSignals() < 0) return NULL;
		if (slicer_next(&sl, &slice)) Py_RETURN_FALSE;
	}
}

static PyMethodDef queue_methods[] = {
	{"put", (PyCFunction)(void (*)(void))queue_put, METH_FASTCALL, "put(data, block=True, timeout=None)"},
	{"get", (PyCFunction)(void (*)(void))queue_get, METH_FASTCALL, "get(block=True, timeout=None) -> bytes"},
	{"put_raw", (PyCFunction)(void (*)(void))queue_put_raw, METH_FASTCALL, "put_raw(bytes, block=True, timeout=None)"},
	{"put_parts", (PyCFunction)(void (*)(void))queue_put_parts, METH_FASTCALL, "put_parts(list, block=True, timeout=None): one message of parts"},
	{"configure", (PyCFunction)(void (*)(void))queue_configure, METH_FASTCALL, "configure(...) for put_obj/get_obj2"},
	{"set_closed", (PyCFunction)queue_set_closed, METH_O, "set_closed(flag)"},
	{"put_obj", (PyCFunction)(void (*)(void))queue_put_obj, METH_FASTCALL | METH_KEYWORDS, "put_obj(obj, block=True, timeout=None)"},
	{"get_obj2", (PyCFunction)(void (*)(void))queue_get_obj2, METH_FASTCALL | METH_KEYWORDS, "get_obj2(block=True, timeout=None) -> object"},
	{"get_obj", (PyCFunction)(void (*)(void))queue_get_obj, METH_FASTCALL, "get_obj(block, timeout, loads) -> object"},
	{"put_many", (PyCFunction)(void (*)(void))queue_put_many, METH_FASTCALL, "put_many(messages, block=True, timeout=None) -> int"},
	{"get_many", (PyCFunction)(void (*)(void))queue_get_many, METH_FASTCALL, "get_many(max, block=True, timeout=None) -> list"},
	{"qsize", (PyCFunction)queue_qsize, METH_NOARGS, "exact number of messages"},
	{"task_done", (PyCFunction)queue_task_done, METH_NOARGS, NULL},
	{"join", (PyCFunction)(void (*)(void))queue_join, METH_FASTCALL, "join(timeout=None) -> bool"},
	{NULL},
};

static PyMemberDef queue_members[] = {
	{"handle", T_LONGLONG, offsetof(QueueObj, h), READONLY, NULL},
	{"used", T_BOOL, offsetof(QueueObj, used), READONLY, "put_obj() was called"},
	{NULL},
};

static PyTypeObject QueueType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "mpgo._native._fast.Queue",
	.tp_basicsize = sizeof(QueueObj),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "Byte messages on a shared-memory ring (core/queue), by engine handle.",
	.tp_init = (initproc)queue_init,
	.tp_new = PyType_GenericNew,
	.tp_dealloc = (destructor)queue_dealloc,
	.tp_traverse = (traverseproc)queue_traverse,
	.tp_clear = (inquiry)queue_clear,
	.tp_methods = queue_methods,
	.tp_members = queue_members,
};

static PyMethodDef queues_functions[] = {
	{"set_oob_loads", fast_set_oob_loads, METH_O,
	 "set_oob_loads(fn): fn(landing) returns the object of an out-of-band message."},
	{"oob_loads", fast_oob_loads, METH_O,
	 "oob_loads(message) -> object of an out-of-band message (OOB_TAG last)."},
	{NULL, NULL, 0, NULL},
};

int cext_queues_add(PyObject *m) {
	if (PyType_Ready(&QueueType) < 0 || PyType_Ready(&LandingType) < 0) return -1;
	Py_INCREF(&QueueType);
	if (PyModule_AddObject(m, "Queue", (PyObject *)&QueueType) < 0) return -1;
	if (PyModule_AddIntConstant(m, "RAW_MIN", RAW_MIN) < 0 ||
	    PyModule_AddIntConstant(m, "OOB_TAG", MPGO_QUEUE_OOB_TAG) < 0) return -1;
	return PyModule_AddFunctions(m, queues_functions);
}
