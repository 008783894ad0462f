/*
 * fast.c: mpgo._native._fast, the hand-written CPython fast paths.
 *
 * It is compiled into the same shared object as the gopy extension and the
 * C ABI (one Go runtime per process). An uncontended CPython SemLock
 * acquire+release pair costs ~40 ns and a call into Go ~70 ns, so the
 * uncontended paths here never enter Go: they work on the shared words
 * whose layout core/sync defines (mirrored in mpgo.h). Go does the waiting.
 */
#include "compat.h"
#include <structmember.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdint.h>
#include "mpgo.h"

/* Blocking waits are cut into slices so signal handlers (Ctrl-C) run. */
#define SLICE 0.1
/* Spins before a contended acquire goes to Go to sleep: a holder in another
 * process usually releases within a few hundred nanoseconds. */
#define SPINS 2000

static uint32_t my_pid;
/* initial-exec: a plain TLS load instead of a __tls_get_addr call. */
static __thread uint32_t my_tid __attribute__((tls_model("initial-exec")));

static inline uint32_t tid(void) {
	if (!my_tid) my_tid = (uint32_t)syscall(SYS_gettid);
	return my_tid;
}

/* raise_error sets the Python exception for an engine error, given as the
 * C ABI gives it: (code, errno, message), code positive. mpgo._errors
 * translates it, the one place that does. */
static PyObject *errors_exception;  /* mpgo._errors.exception */

static void raise_error(int code, int err, const char *msg) {
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
static void raise_code(int rc) {
	char msg[512];
	mpgo_errmsg(msg, sizeof msg);
	raise_error(-rc, mpgo_errno(), msg);
}

static inline int check_forked(void) {
	if (__builtin_expect(mpgo_forked_flag, 0)) {
		raise_error(-MPGO_EFORKED, 0,
			"mpgo: the engine cannot be used in a process forked from one "
			"running the Go runtime; start children with mpgo.Process");
		return -1;
	}
	return 0;
}

static PyObject *fast_set_errors(PyObject *Py_UNUSED(self), PyObject *fn) {
	Py_XINCREF(fn);
	Py_XSETREF(errors_exception, fn);
	Py_RETURN_NONE;
}

static PyObject *fast_forked(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
	return PyBool_FromLong(mpgo_forked());
}

/* ---- SemLock: Lock and RLock over a MPGO_LOCK_SIZE-byte shared region ---- */

typedef struct {
	PyObject_HEAD
	uint32_t *w;     /* the region: see the MPGO_LOCK_* offsets in mpgo.h */
	Py_buffer view;  /* keeps the mapping alive */
	int kind;        /* MPGO_KIND_LOCK or MPGO_KIND_RLOCK */
	PyObject *weakreflist;
} SemLock;

#define W_STATE(s) (&(s)->w[MPGO_LOCK_STATE / 4])
#define W_PID(s)   (&(s)->w[MPGO_LOCK_PID / 4])
#define W_TID(s)   (&(s)->w[MPGO_LOCK_TID / 4])
#define W_COUNT(s) (&(s)->w[MPGO_LOCK_COUNT / 4])

static int semlock_init(SemLock *s, PyObject *args, PyObject *kw) {
	static char *kwlist[] = {"buffer", "kind", "value", "maxvalue", "init", NULL};
	PyObject *buf;
	int kind, init = 0;
	unsigned int value = 1, maxvalue = 1;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "Oi|IIp", kwlist, &buf, &kind,
					 &value, &maxvalue, &init))
		return -1;
	if (kind != MPGO_KIND_LOCK && kind != MPGO_KIND_RLOCK && kind != MPGO_KIND_SEMAPHORE) {
		PyErr_SetString(PyExc_ValueError, "unknown lock kind");
		return -1;
	}
	if (s->w) {
		PyErr_SetString(PyExc_RuntimeError, "SemLock already initialised");
		return -1;
	}
	if (check_forked() < 0) return -1;
	if (PyObject_GetBuffer(buf, &s->view, PyBUF_WRITABLE) < 0)
		return -1;
	if (s->view.len < MPGO_LOCK_SIZE || ((uintptr_t)s->view.buf & 7)) {
		PyBuffer_Release(&s->view);
		PyErr_SetString(PyExc_ValueError, "lock region too small or misaligned");
		return -1;
	}
	if (init) {
		/* SEM_VALUE_MAX means unbounded, which core/sync spells 0. */
		unsigned int max = (kind == MPGO_KIND_SEMAPHORE && maxvalue < MPGO_SEM_VALUE_MAX) ? maxvalue : 0;
		int rc = mpgo_sync_init(s->view.buf, kind, value, max);
		if (rc < 0) {
			PyBuffer_Release(&s->view);
			raise_code(rc);
			return -1;
		}
	}
	s->w = (uint32_t *)s->view.buf;
	s->kind = kind;
	return 0;
}

static void semlock_dealloc(SemLock *s) {
	PyObject_GC_UnTrack(s);
	if (s->weakreflist) PyObject_ClearWeakRefs((PyObject *)s);
	if (s->w) PyBuffer_Release(&s->view);
	Py_TYPE(s)->tp_free((PyObject *)s);
}

/* semlock_traverse visits nothing. The only object a SemLock holds is the
 * exporter of its region (a memoryview over an arena map), which refers to
 * nothing that could lead back to the lock; shown to the collector, a
 * memoryview found in a garbage cycle is cleared while the lock still
 * holds a buffer from it, and releasing that buffer then crashes. */
static int semlock_traverse(SemLock *Py_UNUSED(s), visitproc Py_UNUSED(visit), void *Py_UNUSED(arg)) {
	return 0;
}

static inline int mine(SemLock *s) {
	return s->kind != MPGO_KIND_SEMAPHORE &&
	       __atomic_load_n(W_STATE(s), __ATOMIC_ACQUIRE) != 0 &&
	       __atomic_load_n(W_PID(s), __ATOMIC_RELAXED) == my_pid &&
	       __atomic_load_n(W_TID(s), __ATOMIC_RELAXED) == tid();
}

/* try_take makes one attempt without waiting: the CAS of core/sync's
 * protocol for the kind. */
static inline int try_take(SemLock *s) {
	uint32_t *v = W_STATE(s);
	if (s->kind == MPGO_KIND_SEMAPHORE) {
		uint32_t n = __atomic_load_n(v, __ATOMIC_RELAXED);
		while (n > 0) {
			if (__atomic_compare_exchange_n(v, &n, n - 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				return 1;
		}
		return 0;
	}
	/* core/sync's protocol: state and pid are one 64-bit word, taken in
	 * one CAS so that a locked lock always names its holder; then tid. */
	uint64_t z = 0;
	if (__atomic_compare_exchange_n((uint64_t *)W_STATE(s), &z, ((uint64_t)my_pid << 32) | 1, 0,
	                                __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		__atomic_store_n(W_TID(s), tid(), __ATOMIC_RELAXED);
		if (s->kind == MPGO_KIND_RLOCK) __atomic_store_n(W_COUNT(s), 1, __ATOMIC_RELAXED);
		return 1;
	}
	return 0;
}

static inline int free_now(SemLock *s) {
	uint32_t v = __atomic_load_n(W_STATE(s), __ATOMIC_RELAXED);
	return s->kind == MPGO_KIND_SEMAPHORE ? v > 0 : v == 0;
}

static PyObject *takeover_hook;  /* called as hook(pid) after a takeover */

/* report_takeovers tells Python about locks taken over from dead holders. */
static void report_takeovers(void) {
	uint32_t pid;
	int n = mpgo_takeovers(&pid);
	if (n > 0 && takeover_hook) {
		PyObject *r = PyObject_CallFunction(takeover_hook, "iI", n, pid);
		if (r) Py_DECREF(r);
		else PyErr_WriteUnraisable(takeover_hook);
	}
}

static PyObject *fast_set_takeover_hook(PyObject *Py_UNUSED(self), PyObject *fn) {
	Py_XINCREF(fn);
	Py_XSETREF(takeover_hook, fn);
	Py_RETURN_NONE;
}

/* take_now is core/sync's acquire with timeout 0, for when waiting is not
 * allowed (acquire(False), timeout 0) or the time is up: a semaphore tries
 * once; a lock goes to Go, which tries once more and takes the lock over if
 * its holder is dead, as every waiter does. Returns 1 (taken), 0 (not) or
 * -1 (exception set). */
static int take_now(SemLock *s) {
	if (s->kind == MPGO_KIND_SEMAPHORE) return try_take(s);
	int rc = mpgo_lock_acquire(s->w, s->kind, my_pid, tid(), 0);
	if (rc == 1) {
		report_takeovers();
		return 1;
	}
	if (rc < 0) {
		raise_code(rc);
		return -1;
	}
	return 0;
}

/* acquire returns 1 (taken), 0 (timed out) or -1 (exception set). */
static int semlock_acquire_impl(SemLock *s, int block, double timeout) {
	if (check_forked() < 0) return -1;
	if (s->kind == MPGO_KIND_RLOCK && mine(s)) {
		++*W_COUNT(s);
		return 1;
	}
	if (try_take(s)) return 1;
	if (!block || timeout == 0) return take_now(s);
	for (int i = 0; i < SPINS; i++) {
		__builtin_ia32_pause();
		if (free_now(s) && try_take(s)) return 1;
	}
	int64_t deadline = 0;
	if (timeout >= 0) deadline = mpgo_monotonic_ns() + (int64_t)(timeout * 1e9);
	for (;;) {
		double slice = SLICE;
		if (timeout >= 0) {
			double left = (double)(deadline - mpgo_monotonic_ns()) / 1e9;
			if (left <= 0) return take_now(s);
			if (left < slice) slice = left;
		}
		int rc;
		Py_BEGIN_ALLOW_THREADS
		if (s->kind == MPGO_KIND_SEMAPHORE)
			rc = mpgo_sem_acquire(s->w, slice);
		else
			rc = mpgo_lock_acquire(s->w, s->kind, my_pid, tid(), slice);
		Py_END_ALLOW_THREADS
		if (rc == 1) {
			if (s->kind != MPGO_KIND_SEMAPHORE) report_takeovers();
			return 1;
		}
		if (rc < 0) {
			raise_code(rc);
			return -1;
		}
		if (PyErr_CheckSignals() < 0) return -1;
	}
}

static PyObject *semlock_acquire(SemLock *s, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
	int block = 1;
	PyObject *tobj = Py_None;
	if (nargs > 2) {
		PyErr_SetString(PyExc_TypeError, "acquire() takes at most 2 arguments");
		return NULL;
	}
	if (nargs > 0) {
		block = PyObject_IsTrue(args[0]);
		if (block < 0) return NULL;
	}
	if (nargs > 1) tobj = args[1];
	if (kwnames) {
		for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
			PyObject *k = PyTuple_GET_ITEM(kwnames, i), *v = args[nargs + i];
			if (PyUnicode_CompareWithASCIIString(k, "block") == 0 && nargs < 1) {
				block = PyObject_IsTrue(v);
				if (block < 0) return NULL;
			} else if (PyUnicode_CompareWithASCIIString(k, "timeout") == 0 && nargs < 2) {
				tobj = v;
			} else {
				PyErr_Format(PyExc_TypeError, "acquire() got an unexpected keyword argument '%U'", k);
				return NULL;
			}
		}
	}
	double timeout = -1;
	if (tobj != Py_None) {
		timeout = PyFloat_AsDouble(tobj);
		if (timeout == -1 && PyErr_Occurred()) return NULL;
		if (timeout < 0) timeout = 0;
	}
	int r = semlock_acquire_impl(s, block, timeout);
	if (r < 0) return NULL;
	return PyBool_FromLong(r);
}

static PyObject *semlock_release(SemLock *s, PyObject *Py_UNUSED(unused)) {
	if (check_forked() < 0) return NULL;
	if (s->kind == MPGO_KIND_SEMAPHORE) {
		uint32_t *v = W_STATE(s);
		uint32_t max = __atomic_load_n(&s->w[MPGO_SEM_MAX / 4], __ATOMIC_RELAXED);
		if (max == 0) max = MPGO_SEM_VALUE_MAX;
		uint32_t n = __atomic_load_n(v, __ATOMIC_RELAXED);
		do {
			if (n >= max) {
				raise_error(-MPGO_ETOOMANY, 0, "semaphore or lock released too many times");
				return NULL;
			}
		} while (!__atomic_compare_exchange_n(v, &n, n + 1, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
		if (__atomic_load_n(&s->w[MPGO_SEM_SLEEPERS / 4], __ATOMIC_SEQ_CST) != 0)
			syscall(SYS_futex, v, FUTEX_WAKE, 1, NULL, NULL, 0);
		Py_RETURN_NONE;
	}
	if (s->kind == MPGO_KIND_RLOCK) {
		if (!mine(s)) {
			raise_error(-MPGO_ENOTOWNER, 0, "attempt to release recursive lock not owned by thread");
			return NULL;
		}
		if (*W_COUNT(s) > 1) {
			--*W_COUNT(s);
			Py_RETURN_NONE;
		}
	} else if (__atomic_load_n(W_STATE(s), __ATOMIC_ACQUIRE) == 0) {
		raise_error(-MPGO_ETOOMANY, 0, "semaphore or lock released too many times");
		return NULL;
	}
	/* core/sync's order: count, tid, then state and pid together. */
	__atomic_store_n(W_COUNT(s), 0, __ATOMIC_RELAXED);
	__atomic_store_n(W_TID(s), 0, __ATOMIC_RELAXED);
	if ((uint32_t)__atomic_exchange_n((uint64_t *)W_STATE(s), 0, __ATOMIC_RELEASE) == 2)
		syscall(SYS_futex, W_STATE(s), FUTEX_WAKE, 1, NULL, NULL, 0);
	Py_RETURN_NONE;
}

static PyObject *semlock_enter(SemLock *s, PyObject *Py_UNUSED(unused)) {
	int r = semlock_acquire_impl(s, 1, -1);
	if (r < 0) return NULL;
	return PyBool_FromLong(r);
}

static PyObject *semlock_exit(SemLock *s, PyObject *Py_UNUSED(args)) {
	return semlock_release(s, NULL);
}

static PyObject *semlock_is_mine(SemLock *s, PyObject *Py_UNUSED(unused)) {
	return PyBool_FromLong(mine(s));
}

static PyObject *semlock_count(SemLock *s, PyObject *Py_UNUSED(unused)) {
	if (!mine(s)) return PyLong_FromLong(0);
	return PyLong_FromUnsignedLong(s->kind == MPGO_KIND_RLOCK ? *W_COUNT(s) : 1);
}

/* _get_value follows CPython: a semaphore's value; 1 for a free lock. */
static PyObject *semlock_get_value(SemLock *s, PyObject *Py_UNUSED(unused)) {
	uint32_t v = __atomic_load_n(W_STATE(s), __ATOMIC_ACQUIRE);
	if (s->kind == MPGO_KIND_SEMAPHORE) return PyLong_FromUnsignedLong(v);
	return PyLong_FromLong(v == 0);
}

static PyObject *semlock_is_zero(SemLock *s, PyObject *Py_UNUSED(unused)) {
	return PyBool_FromLong(!free_now(s));
}

static PyObject *semlock_owner(SemLock *s, PyObject *Py_UNUSED(unused)) {
	return Py_BuildValue("(II)", *W_PID(s), *W_TID(s));
}

static PyObject *semlock_maxvalue(SemLock *s, void *Py_UNUSED(unused)) {
	if (s->kind != MPGO_KIND_SEMAPHORE) return PyLong_FromLong(1);
	uint32_t max = __atomic_load_n(&s->w[MPGO_SEM_MAX / 4], __ATOMIC_RELAXED);
	return PyLong_FromUnsignedLong(max ? max : MPGO_SEM_VALUE_MAX);
}

static PyGetSetDef semlock_getset[] = {
	{"maxvalue", (getter)semlock_maxvalue, NULL, NULL, NULL},
	{NULL},
};

static PyMethodDef semlock_methods[] = {
	{"acquire", (PyCFunction)(void (*)(void))semlock_acquire, METH_FASTCALL | METH_KEYWORDS,
	 "acquire(block=True, timeout=None) -> bool"},
	{"release", (PyCFunction)semlock_release, METH_NOARGS, "release()"},
	{"__enter__", (PyCFunction)semlock_enter, METH_NOARGS, NULL},
	{"__exit__", (PyCFunction)semlock_exit, METH_VARARGS, NULL},
	{"_is_mine", (PyCFunction)semlock_is_mine, METH_NOARGS, NULL},
	{"_count", (PyCFunction)semlock_count, METH_NOARGS, NULL},
	{"_get_value", (PyCFunction)semlock_get_value, METH_NOARGS, NULL},
	{"_is_zero", (PyCFunction)semlock_is_zero, METH_NOARGS, NULL},
	{"_owner", (PyCFunction)semlock_owner, METH_NOARGS, NULL},
	{NULL},
};

static PyMemberDef semlock_members[] = {
	{"kind", T_INT, offsetof(SemLock, kind), READONLY, NULL},
	{"__weaklistoffset__", T_PYSSIZET, offsetof(SemLock, weakreflist), READONLY, NULL},
	{NULL},
};

static PyTypeObject SemLockType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "mpgo._native._fast.SemLock",
	.tp_basicsize = sizeof(SemLock),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A Lock or RLock in shared memory (core/sync layout).",
	.tp_init = (initproc)semlock_init,
	.tp_new = PyType_GenericNew,
	.tp_dealloc = (destructor)semlock_dealloc,
	.tp_traverse = (traverseproc)semlock_traverse,
	.tp_methods = semlock_methods,
	.tp_members = semlock_members,
	.tp_getset = semlock_getset,
	.tp_weaklistoffset = offsetof(SemLock, weakreflist),
};

static int code_size(int code);
static PyObject *item_get(const char *p, int code);
static int item_set(char *p, int code, PyObject *x);

/* ---- SyncValue: the C half of sharedctypes.Synchronized ----
 *
 * CPython's Synchronized.value is a Python property around `with lock:`;
 * here the lock, the ctypes read or write and the unlock are one C call.
 * Any lock works; mpgo's SemLock takes the inline path. */

typedef struct {
	PyObject_HEAD
	PyObject *obj;   /* the ctypes object */
	PyObject *lock;  /* the lock object */
	SemLock *sl;     /* lock._semlock when it is mpgo's, else NULL */
	char *addr;      /* obj's memory, when its type is a plain number */
	int code;        /* ... and that type's struct code, else 0 */
} SyncValue;

static PyObject *str_value, *str_semlock, *str_acquire, *str_release, *str_type_;

static void syncvalue_dealloc(SyncValue *v) {
	PyTypeObject *tp = Py_TYPE(v);
	PyObject_GC_UnTrack(v);
	Py_CLEAR(v->obj);
	Py_CLEAR(v->lock);
	Py_CLEAR(v->sl);
	tp->tp_free((PyObject *)v);
}

static int syncvalue_traverse(SyncValue *v, visitproc visit, void *arg) {
	Py_VISIT(v->obj);
	Py_VISIT(v->lock);
	Py_VISIT(v->sl);
	return 0;
}

static int syncvalue_clear(SyncValue *v) {
	Py_CLEAR(v->obj);
	Py_CLEAR(v->lock);
	Py_CLEAR(v->sl);
	return 0;
}

static int lock_in(SyncValue *v) {
	if (v->sl) return semlock_acquire_impl(v->sl, 1, -1) < 0 ? -1 : 0;
	PyObject *r = PyObject_CallMethodNoArgs(v->lock, str_acquire);
	if (!r) return -1;
	Py_DECREF(r);
	return 0;
}

static int lock_out(SyncValue *v) {
	PyObject *r = v->sl ? semlock_release(v->sl, NULL)
			    : PyObject_CallMethodNoArgs(v->lock, str_release);
	if (!r) return -1;
	Py_DECREF(r);
	return 0;
}

static PyObject *syncvalue_get(SyncValue *v, void *Py_UNUSED(unused)) {
	if (!v->obj || !v->lock) {
		PyErr_SetString(PyExc_AttributeError, "value");
		return NULL;
	}
	if (lock_in(v) < 0) return NULL;
	PyObject *r = v->code ? item_get(v->addr, v->code) : PyObject_GetAttr(v->obj, str_value);
	if (lock_out(v) < 0) Py_CLEAR(r);
	return r;
}

static int syncvalue_set(SyncValue *v, PyObject *x, void *Py_UNUSED(unused)) {
	if (!v->obj || !v->lock) {
		PyErr_SetString(PyExc_AttributeError, "value");
		return -1;
	}
	if (!x) {
		PyErr_SetString(PyExc_AttributeError, "cannot delete value");
		return -1;
	}
	if (lock_in(v) < 0) return -1;
	int r = v->code ? item_set(v->addr, v->code, x) : PyObject_SetAttr(v->obj, str_value, x);
	if (lock_out(v) < 0) r = -1;
	return r;
}

static PyObject *syncvalue_get_obj(SyncValue *v, void *Py_UNUSED(unused)) {
	if (!v->obj) { PyErr_SetString(PyExc_AttributeError, "_obj"); return NULL; }
	return Py_NewRef(v->obj);
}

/* syncvalue_set_obj also finds whether obj is a ctypes number whose value
 * can be read and written straight from its memory, skipping ctypes. */
static int syncvalue_set_obj(SyncValue *v, PyObject *x, void *Py_UNUSED(unused)) {
	Py_XINCREF(x);
	Py_XSETREF(v->obj, x);
	v->addr = NULL;
	v->code = 0;
	if (!x) return 0;
	/* Only ctypes' own native-order types: a byte-swapped type (or a
	 * subclass) has the same code but another layout or value rules. */
	PyObject *le = PyObject_GetAttrString((PyObject *)Py_TYPE(x), "__ctype_le__");
	int native = le == (PyObject *)Py_TYPE(x);
	Py_XDECREF(le);
	PyObject *t = native ? PyObject_GetAttr((PyObject *)Py_TYPE(x), str_type_) : NULL;
	if (t && PyUnicode_Check(t) && PyUnicode_GET_LENGTH(t) == 1) {
		int code = PyUnicode_READ_CHAR(t, 0);
		Py_buffer b;
		if (code_size(code) && PyObject_GetBuffer(x, &b, PyBUF_SIMPLE) == 0) {
			if (b.len == code_size(code)) {
				v->addr = b.buf;  /* lives as long as obj, which we hold */
				v->code = code;
			}
			PyBuffer_Release(&b);
		}
	}
	Py_XDECREF(t);
	PyErr_Clear();
	return 0;
}

static PyObject *syncvalue_get_lock(SyncValue *v, void *Py_UNUSED(unused)) {
	if (!v->lock) { PyErr_SetString(PyExc_AttributeError, "_lock"); return NULL; }
	return Py_NewRef(v->lock);
}

static int syncvalue_set_lock(SyncValue *v, PyObject *x, void *Py_UNUSED(unused)) {
	Py_XINCREF(x);
	Py_XSETREF(v->lock, x);
	Py_CLEAR(v->sl);
	if (x) {
		PyObject *sl = PyObject_GetAttr(x, str_semlock);
		if (sl && PyObject_TypeCheck(sl, &SemLockType)) v->sl = (SemLock *)sl;
		else { Py_XDECREF(sl); PyErr_Clear(); }
	}
	return 0;
}

static PyGetSetDef syncvalue_getset[] = {
	{"value", (getter)syncvalue_get, (setter)syncvalue_set, "the value, read and written under the lock", NULL},
	{"_obj", (getter)syncvalue_get_obj, (setter)syncvalue_set_obj, NULL, NULL},
	{"_lock", (getter)syncvalue_get_lock, (setter)syncvalue_set_lock, NULL, NULL},
	{NULL},
};

static PyTypeObject SyncValueType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "mpgo._native._fast.SyncValue",
	.tp_basicsize = sizeof(SyncValue),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "Base of sharedctypes.Synchronized: value under the lock in one C call.",
	.tp_new = PyType_GenericNew,
	.tp_dealloc = (destructor)syncvalue_dealloc,
	.tp_traverse = (traverseproc)syncvalue_traverse,
	.tp_clear = (inquiry)syncvalue_clear,
	.tp_getset = syncvalue_getset,
};

/* ---- Queue: put/get of byte messages on a core/queue ring ----
 *
 * A first attempt runs with the GIL held and no wait: most puts and gets
 * find room or a message at once, and dropping the GIL costs more than the
 * copy. Only waits (and copies of large messages) release the GIL, in
 * slices, checking for signals between them. */

/* Messages larger than this are copied with the GIL released. */
#define BIG_MESSAGE (256 * 1024)
/* Per-thread landing buffer for gets: most messages fit, and a bytes object
 * of the exact size is made from it. */
#define SCRATCH (64 * 1024)

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

/* Slicer cuts a wait of t seconds (-1 forever) into slices of <= SLICE. */
typedef struct { double t; int64_t deadline; } Slicer;

static void slicer_start(Slicer *s, double t) {
	s->t = t;
	s->deadline = t > 0 ? mpgo_monotonic_ns() + (int64_t)(t * 1e9) : 0;
}

/* slicer_next stores the next slice and returns 0, or returns 1 when the
 * time is up. */
static int slicer_next(Slicer *s, double *slice) {
	if (s->t < 0) { *slice = SLICE; return 0; }
	double left = (double)(s->deadline - mpgo_monotonic_ns()) / 1e9;
	if (left <= 0) return 1;
	*slice = left < SLICE ? left : SLICE;
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
	if (v.len < BIG_MESSAGE) {
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
	if (rc < 0) { raise_code(rc); return NULL; }
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
		if (n < BIG_MESSAGE) {
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
	if (!scratch && !(scratch = PyMem_RawMalloc(SCRATCH))) return PyErr_NoMemory();
	int64_t n = 0;
	int rc = mpgo_queue_get(q->h, scratch, SCRATCH, 0, &n);
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
		rc = mpgo_queue_get(q->h, scratch, SCRATCH, slice, &n);
		Py_END_ALLOW_THREADS
		if (rc == MPGO_EEMPTY && PyErr_CheckSignals() < 0) return NULL;
	}
	raise_code(rc);
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
	if (rc < 0) { raise_code(rc); return NULL; }
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
	if (rc < 0) { raise_code(rc); goto out; }
	res = Py_NewRef(Py_None);
out:
	for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
	PyMem_Free(views);
	PyMem_Free(ptrs);
	PyMem_Free(lens);
	Py_DECREF(seq);
	return res;
}

/* ---- Scalars: None, bools, floats and 32-bit ints pickled in C ----
 *
 * A Pipe's ping-pong of small numbers spends more time making and freeing
 * picklers than on the ring. These produce and recognise exactly the bytes
 * pickle.dumps gives at protocols 4 and 5 (configure() checks that against
 * plain_dumps itself): PROTO, a FRAME when the body is 4 bytes or more, the
 * opcode, its argument, STOP. Anything else goes through pickle. */
static Py_ssize_t scalar_dumps(PyObject *o, char proto, char *out) {
	char body[10];
	Py_ssize_t k;
	PyTypeObject *t = Py_TYPE(o);
	if (o == Py_None) { body[0] = 'N'; k = 1; }
	else if (o == Py_True) { body[0] = '\x88'; k = 1; }
	else if (o == Py_False) { body[0] = '\x89'; k = 1; }
	else if (t == &PyLong_Type) {
		int overflow;
		long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
		if (overflow || (v == -1 && PyErr_Occurred())) { PyErr_Clear(); return 0; }
		if (v >= 0 && v <= 0xff) { body[0] = 'K'; body[1] = (char)v; k = 2; }
		else if (v >= 0 && v <= 0xffff) { body[0] = 'M'; body[1] = (char)v; body[2] = (char)(v >> 8); k = 3; }
		else if (v >= -0x80000000LL && v <= 0x7fffffffLL) {
			uint32_t u = (uint32_t)(int32_t)v;
			body[0] = 'J';
			for (int i = 0; i < 4; i++) body[1 + i] = (char)(u >> (8 * i));
			k = 5;
		} else return 0;
	} else if (t == &PyFloat_Type) {
		body[0] = 'G';
		if (PyFloat_Pack8(PyFloat_AS_DOUBLE(o), body + 1, 0) < 0) { PyErr_Clear(); return 0; }
		k = 9;
	} else return 0;
	body[k++] = '.';
	Py_ssize_t n = 0;
	out[n++] = '\x80';
	out[n++] = proto;
	if (k >= 4) {
		out[n++] = '\x95';
		for (int i = 0; i < 8; i++) out[n++] = i == 0 ? (char)k : 0;
	}
	memcpy(out + n, body, k);
	return n + k;
}

/* scalar_loads returns the object of a pickle that scalar_dumps could have
 * made, or NULL (no error set) for anything else. */
static PyObject *scalar_loads(const unsigned char *p, Py_ssize_t n) {
	if (n < 4 || n > 20 || p[0] != 0x80 || p[1] < 4 || p[1] > 5 || p[n - 1] != '.') return NULL;
	p += 2; n -= 3;  /* the body without STOP */
	if (p[0] == 0x95) {
		if (n < 9 || (Py_ssize_t)p[1] != n - 8) return NULL;
		for (int i = 2; i < 9; i++) if (p[i]) return NULL;
		p += 9; n -= 9;
	}
	switch (p[0]) {
	case 'N': return n == 1 ? Py_NewRef(Py_None) : NULL;
	case 0x88: return n == 1 ? Py_NewRef(Py_True) : NULL;
	case 0x89: return n == 1 ? Py_NewRef(Py_False) : NULL;
	case 'K': return n == 2 ? PyLong_FromLong(p[1]) : NULL;
	case 'M': return n == 3 ? PyLong_FromLong(p[1] | p[2] << 8) : NULL;
	case 'J':
		if (n != 5) return NULL;
		return PyLong_FromLong((int32_t)((uint32_t)p[1] | (uint32_t)p[2] << 8 |
						 (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24));
	case 'G': {
		if (n != 9) return NULL;
		double d = PyFloat_Unpack8((const char *)p + 1, 0);
		if (d == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return NULL; }
		return PyFloat_FromDouble(d);
	}
	}
	return NULL;
}

/* scalar_proto returns the protocol byte of dumps if scalar_dumps agrees
 * with it on a few values, else 0. */
static char scalar_proto(PyObject *dumps) {
	PyObject *r = PyObject_CallOneArg(dumps, Py_None);
	if (!r) { PyErr_Clear(); return 0; }
	char proto = 0;
	if (PyBytes_Check(r) && PyBytes_GET_SIZE(r) == 4 && PyBytes_AS_STRING(r)[0] == '\x80' &&
	    (PyBytes_AS_STRING(r)[1] == 4 || PyBytes_AS_STRING(r)[1] == 5))
		proto = PyBytes_AS_STRING(r)[1];
	Py_DECREF(r);
	if (!proto) return 0;
	PyObject *probe = Py_BuildValue("(OOiiiiiLd)", Py_True, Py_False, 0, 255, 256, 65536, -1,
					(long long)0x7fffffff, -2.5);
	if (!probe) { PyErr_Clear(); return 0; }
	for (Py_ssize_t i = 0; proto && i < PyTuple_GET_SIZE(probe); i++) {
		PyObject *o = PyTuple_GET_ITEM(probe, i);
		char buf[24];
		Py_ssize_t k = scalar_dumps(o, proto, buf);
		PyObject *want = PyObject_CallOneArg(dumps, o);
		if (!want) { PyErr_Clear(); proto = 0; break; }
		if (!k || !PyBytes_Check(want) || PyBytes_GET_SIZE(want) != k ||
		    memcmp(PyBytes_AS_STRING(want), buf, k) != 0)
			proto = 0;
		Py_DECREF(want);
	}
	Py_DECREF(probe);
	return proto;
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
	PyObject *obj = scalar_loads((const unsigned char *)PyBytes_AS_STRING(m), n);
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
	q->proto = scalar_proto(args[2]);
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
	Py_ssize_t k = scalar_dumps(obj, proto, buf);
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
	if (!scratch && !(scratch = PyMem_RawMalloc(SCRATCH))) return PyErr_NoMemory();
	int64_t lens[4096], count = 0;
	int rc = mpgo_queue_get_many(q->h, scratch, SCRATCH, max, 0, lens, &count);
	if (rc == MPGO_EEMPTY && t != 0) {
		Slicer sl;
		slicer_start(&sl, t);
		double slice;
		while (rc == MPGO_EEMPTY && !slicer_next(&sl, &slice)) {
			Py_BEGIN_ALLOW_THREADS
			rc = mpgo_queue_get_many(q->h, scratch, SCRATCH, max, slice, lens, &count);
			Py_END_ALLOW_THREADS
			if (rc == MPGO_EEMPTY && PyErr_CheckSignals() < 0) return NULL;
		}
	}
	if (rc == MPGO_ETOOSHORT) {
		PyObject *b = get_exact(q, lens[0]);
		if (IS_CODE(b)) { raise_code((int)(intptr_t)b); return NULL; }
		if (!b) return NULL;
		PyObject *l = PyList_New(1);
		if (!l) { Py_DECREF(b); return NULL; }
		PyList_SET_ITEM(l, 0, b);
		return l;
	}
	if (rc < 0) { raise_code(rc); return NULL; }
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
	if (rc < 0) { raise_code(rc); goto out; }
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
	if (rc < 0) { raise_code(rc); return NULL; }
	return PyLong_FromLongLong(n);
}

static PyObject *queue_task_done(QueueObj *q, PyObject *Py_UNUSED(unused)) {
	if (check_forked() < 0) return NULL;
	int rc = mpgo_queue_task_done(q->h);
	if (rc < 0) { raise_code(rc); return NULL; }
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
		if (rc < 0) { raise_code(rc); return NULL; }
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

/* ---- Bulk slices of shared Arrays ----
 *
 * a[i:j] of a ctypes array goes element by element through ctypes getters
 * and setters; these convert a contiguous run straight between the shared
 * memory and a list (or any sequence). */

static int code_size(int code) {
	switch (code) {
	case 'b': case 'B': return 1;
	case 'h': case 'H': return 2;
	case 'i': case 'I': case 'f': return 4;
	case 'l': case 'L': case 'q': case 'Q': case 'd': return 8;
	}
	return 0;
}

static PyObject *item_get(const char *p, int code) {
	switch (code) {
	case 'b': return PyLong_FromLong(*(const int8_t *)p);
	case 'B': return PyLong_FromLong(*(const uint8_t *)p);
	case 'h': return PyLong_FromLong(*(const int16_t *)p);
	case 'H': return PyLong_FromLong(*(const uint16_t *)p);
	case 'i': return PyLong_FromLong(*(const int32_t *)p);
	case 'I': return PyLong_FromUnsignedLong(*(const uint32_t *)p);
	case 'l': case 'q': return PyLong_FromLongLong(*(const int64_t *)p);
	case 'L': case 'Q': return PyLong_FromUnsignedLongLong(*(const uint64_t *)p);
	case 'f': return PyFloat_FromDouble(*(const float *)p);
	case 'd': return PyFloat_FromDouble(*(const double *)p);
	}
	return NULL;
}

/* item_set stores x as code at p, with ctypes' conversions: floats for f/d
 * (ints accepted), ints for the rest (floats refused), wrapping silently on
 * overflow like ctypes. */
static int item_set(char *p, int code, PyObject *x) {
	if (code == 'f' || code == 'd') {
		double v = PyFloat_AsDouble(x);
		if (v == -1.0 && PyErr_Occurred()) return -1;
		if (code == 'f') *(float *)p = (float)v;
		else *(double *)p = v;
		return 0;
	}
	if (PyFloat_Check(x)) {
		PyErr_Format(PyExc_TypeError, "int expected instead of float");
		return -1;
	}
	unsigned long long v = PyLong_AsUnsignedLongLongMask(x);
	if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
	switch (code_size(code)) {
	case 1: *(uint8_t *)p = (uint8_t)v; break;
	case 2: *(uint16_t *)p = (uint16_t)v; break;
	case 4: *(uint32_t *)p = (uint32_t)v; break;
	default: *(uint64_t *)p = (uint64_t)v; break;
	}
	return 0;
}

/* array_get(buffer, code, start, stop) -> list of the elements. */
static PyObject *fast_array_get(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 4 || !PyUnicode_Check(args[1]) || PyUnicode_GET_LENGTH(args[1]) != 1) {
		PyErr_SetString(PyExc_TypeError, "array_get(buffer, code, start, stop)");
		return NULL;
	}
	int code = PyUnicode_READ_CHAR(args[1], 0), sz = code_size(code);
	Py_ssize_t start = PyLong_AsSsize_t(args[2]), stop = PyLong_AsSsize_t(args[3]);
	if ((start == -1 || stop == -1) && PyErr_Occurred()) return NULL;
	Py_buffer v;
	if (!sz) { PyErr_SetString(PyExc_ValueError, "unsupported code"); return NULL; }
	if (PyObject_GetBuffer(args[0], &v, PyBUF_SIMPLE) < 0) return NULL;
	Py_ssize_t n = stop > start ? stop - start : 0;
	if (start < 0 || (start + n) * sz > v.len) {
		PyBuffer_Release(&v);
		PyErr_SetString(PyExc_IndexError, "slice out of range");
		return NULL;
	}
	PyObject *l = PyList_New(n);
	if (l) {
		const char *p = (const char *)v.buf + start * sz;
		for (Py_ssize_t i = 0; i < n; i++, p += sz) {
			PyObject *x = item_get(p, code);
			if (!x) { Py_CLEAR(l); break; }
			PyList_SET_ITEM(l, i, x);
		}
	}
	PyBuffer_Release(&v);
	return l;
}

/* array_set(buffer, code, start, stop, values): the slice must be as long
 * as values, as ctypes requires. */
static PyObject *fast_array_set(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 5 || !PyUnicode_Check(args[1]) || PyUnicode_GET_LENGTH(args[1]) != 1) {
		PyErr_SetString(PyExc_TypeError, "array_set(buffer, code, start, stop, values)");
		return NULL;
	}
	int code = PyUnicode_READ_CHAR(args[1], 0), sz = code_size(code);
	Py_ssize_t start = PyLong_AsSsize_t(args[2]), stop = PyLong_AsSsize_t(args[3]);
	if ((start == -1 || stop == -1) && PyErr_Occurred()) return NULL;
	if (!sz) { PyErr_SetString(PyExc_ValueError, "unsupported code"); return NULL; }
	PyObject *seq = PySequence_Fast(args[4], "can only assign an iterable");
	if (!seq) return NULL;
	Py_ssize_t n = stop > start ? stop - start : 0;
	if (PySequence_Fast_GET_SIZE(seq) != n) {
		Py_DECREF(seq);
		PyErr_SetString(PyExc_ValueError, "Can only assign sequence of same size");
		return NULL;
	}
	Py_buffer v;
	if (PyObject_GetBuffer(args[0], &v, PyBUF_WRITABLE) < 0) { Py_DECREF(seq); return NULL; }
	PyObject *res = NULL;
	if (start < 0 || (start + n) * sz > v.len) {
		PyErr_SetString(PyExc_IndexError, "slice out of range");
		goto out;
	}
	/* Convert into a private copy first, so a bad element leaves the
	 * shared array untouched. */
	char *tmp = PyMem_Malloc(n * sz + 1);
	if (!tmp) { PyErr_NoMemory(); goto out; }
	PyObject **items = PySequence_Fast_ITEMS(seq);
	for (Py_ssize_t i = 0; i < n; i++) {
		if (item_set(tmp + i * sz, code, items[i]) < 0) { PyMem_Free(tmp); goto out; }
	}
	memcpy((char *)v.buf + start * sz, tmp, n * sz);
	PyMem_Free(tmp);
	res = Py_NewRef(Py_None);
out:
	PyBuffer_Release(&v);
	Py_DECREF(seq);
	return res;
}

/* For pool.c, which shares the error and fork handling. */
int mpgo_fast_check_forked(void) { return check_forked(); }
void mpgo_fast_raise_code(int rc) { raise_code(rc); }
int mpgo_pool_add(PyObject *m);

static PyMethodDef fast_methods[] = {
	{"array_get", (PyCFunction)(void (*)(void))fast_array_get, METH_FASTCALL,
	 "array_get(buffer, code, start, stop) -> list"},
	{"array_set", (PyCFunction)(void (*)(void))fast_array_set, METH_FASTCALL,
	 "array_set(buffer, code, start, stop, values)"},
	{"forked", fast_forked, METH_NOARGS,
	 "forked() -> bool: this process was forked from one running Go."},
	{"set_takeover_hook", fast_set_takeover_hook, METH_O,
	 "set_takeover_hook(fn): fn(n, pid) after locks were taken over from dead holders."},
	{"set_errors", fast_set_errors, METH_O,
	 "set_errors(fn): fn(code, message) returns the exception for a code."},
	{"set_oob_loads", fast_set_oob_loads, METH_O,
	 "set_oob_loads(fn): fn(landing) returns the object of an out-of-band message."},
	{"oob_loads", fast_oob_loads, METH_O,
	 "oob_loads(message) -> object of an out-of-band message (OOB_TAG last)."},
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
	my_pid = (uint32_t)getpid();
	if (PyType_Ready(&SemLockType) < 0 || PyType_Ready(&SyncValueType) < 0 ||
	    PyType_Ready(&QueueType) < 0 || PyType_Ready(&LandingType) < 0) return NULL;
	str_value = PyUnicode_InternFromString("value");
	str_semlock = PyUnicode_InternFromString("_semlock");
	str_acquire = PyUnicode_InternFromString("acquire");
	str_release = PyUnicode_InternFromString("release");
	str_type_ = PyUnicode_InternFromString("_type_");
	PyObject *m = PyModule_Create(&fast_module);
	if (!m) return NULL;
	Py_INCREF(&SemLockType);
	if (PyModule_AddObject(m, "SemLock", (PyObject *)&SemLockType) < 0) return NULL;
	Py_INCREF(&SyncValueType);
	if (PyModule_AddObject(m, "SyncValue", (PyObject *)&SyncValueType) < 0) return NULL;
	Py_INCREF(&QueueType);
	if (PyModule_AddObject(m, "Queue", (PyObject *)&QueueType) < 0) return NULL;
	PyModule_AddIntConstant(m, "KIND_LOCK", MPGO_KIND_LOCK);
	PyModule_AddIntConstant(m, "KIND_RLOCK", MPGO_KIND_RLOCK);
	PyModule_AddIntConstant(m, "KIND_SEMAPHORE", MPGO_KIND_SEMAPHORE);
	PyModule_AddIntConstant(m, "LOCK_SIZE", MPGO_LOCK_SIZE);
	PyModule_AddIntConstant(m, "SEM_VALUE_MAX", MPGO_SEM_VALUE_MAX);
	PyModule_AddIntConstant(m, "RAW_MIN", RAW_MIN);
	PyModule_AddIntConstant(m, "OOB_TAG", MPGO_QUEUE_OOB_TAG);
	if (mpgo_pool_add(m) < 0) return NULL;
	return m;
}
