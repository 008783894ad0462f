/* locks.c: SemLock, the Lock, RLock and Semaphore of mpgo.synchronize, over
 * core/sync's shared words (offsets in mpgo_consts.h). Uncontended acquires
 * and every release stay in C; waits and takeovers from dead holders go to
 * Go (mpgo_lock_acquire, mpgo_sem_acquire), as core/sync's protocol says. */
#include "cext.h"
#include <structmember.h>
#include <linux/futex.h>

/* Spins before a contended acquire goes to Go to sleep: a holder in another
 * process usually releases within a few hundred nanoseconds. */
#define SPINS 2000

/* ---- SemLock: Lock and RLock over a MPGO_LOCK_SIZE-byte shared region ---- */

struct SemLock {
	PyObject_HEAD
	uint32_t *w;     /* the region: see the MPGO_LOCK_* offsets in mpgo.h */
	Py_buffer view;  /* keeps the mapping alive */
	int kind;        /* MPGO_KIND_LOCK or MPGO_KIND_RLOCK */
	PyObject *weakreflist;
};

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
			cext_raise_code(rc);
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
	       __atomic_load_n(W_PID(s), __ATOMIC_RELAXED) == cext_pid &&
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
	if (__atomic_compare_exchange_n((uint64_t *)W_STATE(s), &z, ((uint64_t)cext_pid << 32) | 1, 0,
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
	/* Held by this process, alive: nothing to take over (Go's check too),
	 * and no call into Go for threads of one process that poll. */
	uint64_t w = __atomic_load_n((uint64_t *)W_STATE(s), __ATOMIC_ACQUIRE);
	if ((uint32_t)w != 0 && (uint32_t)(w >> 32) == cext_pid) return 0;
	int rc = mpgo_lock_acquire(s->w, s->kind, cext_pid, tid(), 0);
	if (rc == 1) {
		report_takeovers();
		return 1;
	}
	if (rc < 0) {
		cext_raise_code(rc);
		return -1;
	}
	return 0;
}

/* lock_op is one slice of a contended acquire, in Go, without the GIL. */
static int lock_op(void *arg, double slice) {
	SemLock *s = arg;
	if (s->kind == MPGO_KIND_SEMAPHORE) return mpgo_sem_acquire(s->w, slice);
	return mpgo_lock_acquire(s->w, s->kind, cext_pid, tid(), slice);
}

/* cext_semlock_acquire returns 1 (taken), 0 (timed out) or -1 (exception
 * set). */
int cext_semlock_acquire(SemLock *s, int block, double timeout) {
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
	int rc = cext_wait(lock_op, s, timeout, 0);
	if (rc == 1) {
		if (s->kind != MPGO_KIND_SEMAPHORE) report_takeovers();
		return 1;
	}
	if (rc == 0) return take_now(s);  /* the time is up */
	if (rc == CEXT_RAISED) return -1;
	cext_raise_code(rc);
	return -1;
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
	int r = cext_semlock_acquire(s, block, timeout);
	if (r < 0) return NULL;
	return PyBool_FromLong(r);
}

PyObject *cext_semlock_release(SemLock *s, PyObject *Py_UNUSED(unused)) {
	if (check_forked() < 0) return NULL;
	if (s->kind == MPGO_KIND_SEMAPHORE) {
		uint32_t *v = W_STATE(s);
		uint32_t max = __atomic_load_n(&s->w[MPGO_SEM_MAX / 4], __ATOMIC_RELAXED);
		if (max == 0) max = MPGO_SEM_VALUE_MAX;
		uint32_t n = __atomic_load_n(v, __ATOMIC_RELAXED);
		do {
			if (n >= max) {
				cext_raise_error(-MPGO_ETOOMANY, 0, "semaphore or lock released too many times");
				return NULL;
			}
		} while (!__atomic_compare_exchange_n(v, &n, n + 1, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
		if (__atomic_load_n(&s->w[MPGO_SEM_SLEEPERS / 4], __ATOMIC_SEQ_CST) != 0)
			syscall(SYS_futex, v, FUTEX_WAKE, 1, NULL, NULL, 0);
		Py_RETURN_NONE;
	}
	if (s->kind == MPGO_KIND_RLOCK) {
		if (!mine(s)) {
			cext_raise_error(-MPGO_ENOTOWNER, 0, "attempt to release recursive lock not owned by thread");
			return NULL;
		}
		if (*W_COUNT(s) > 1) {
			--*W_COUNT(s);
			Py_RETURN_NONE;
		}
	} else if (__atomic_load_n(W_STATE(s), __ATOMIC_ACQUIRE) == 0) {
		cext_raise_error(-MPGO_ETOOMANY, 0, "semaphore or lock released too many times");
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
	int r = cext_semlock_acquire(s, 1, -1);
	if (r < 0) return NULL;
	return PyBool_FromLong(r);
}

static PyObject *semlock_exit(SemLock *s, PyObject *Py_UNUSED(args)) {
	return cext_semlock_release(s, NULL);
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
	{"release", (PyCFunction)cext_semlock_release, METH_NOARGS, "release()"},
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

PyTypeObject cext_SemLockType = {
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

static PyMethodDef locks_functions[] = {
	{"set_takeover_hook", fast_set_takeover_hook, METH_O,
	 "set_takeover_hook(fn): fn(n, pid) after locks were taken over from dead holders."},
	{NULL, NULL, 0, NULL},
};

int cext_locks_add(PyObject *m) {
	if (PyType_Ready(&cext_SemLockType) < 0) return -1;
	Py_INCREF(&cext_SemLockType);
	if (PyModule_AddObject(m, "SemLock", (PyObject *)&cext_SemLockType) < 0) return -1;
	if (PyModule_AddIntConstant(m, "KIND_LOCK", MPGO_KIND_LOCK) < 0 ||
	    PyModule_AddIntConstant(m, "KIND_RLOCK", MPGO_KIND_RLOCK) < 0 ||
	    PyModule_AddIntConstant(m, "KIND_SEMAPHORE", MPGO_KIND_SEMAPHORE) < 0 ||
	    PyModule_AddIntConstant(m, "LOCK_SIZE", MPGO_LOCK_SIZE) < 0 ||
	    PyModule_AddIntConstant(m, "SEM_VALUE_MAX", MPGO_SEM_VALUE_MAX) < 0) return -1;
	return PyModule_AddFunctions(m, locks_functions);
}
