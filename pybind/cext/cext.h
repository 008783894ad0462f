/*
 * cext.h: what the files of mpgo._native._fast share (internal).
 *
 * _fast holds the hand-written CPython fast paths, one concern a file:
 *   module.c        the module, and the one error path into Python
 *   wait.c          the one wait helper: waits cut into slices
 *   locks.c         SemLock: Lock, RLock, Semaphore over core/sync's words
 *   values.c        SyncValue (Value.value) and bulk Array slices
 *   queues.c        Queue: puts and gets of messages, out-of-band buffers
 *   plain.c         the one pickle fast path: plain values pickled in C
 *   pool_worker.c   a pool worker's loop
 *   pool_submit.c   the parent's puts of tasks
 *   pool_collect.c  the parent's gets of results
 *
 * It is compiled into the same shared object as the gopy extension and the
 * C ABI (one Go runtime per process), and reaches Go only through the C ABI
 * (mpgo.h): an uncontended CPython SemLock acquire+release pair costs
 * ~40 ns and a call into Go ~70 ns, so the uncontended paths here never
 * enter Go: they work on the shared words whose layout core/sync defines
 * (generated into mpgo_consts.h). Go does the waiting.
 */
#ifndef MPGO_CEXT_H
#define MPGO_CEXT_H

#include "compat.h"
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "mpgo.h"

/* Blocking waits are cut into slices of at most this many seconds so that
 * signal handlers (Ctrl-C) run. */
#define CEXT_SLICE 0.1
/* Messages larger than this are copied with the GIL released. */
#define CEXT_BIG (256 * 1024)
/* Per-thread landing buffer for gets: most messages fit, and a bytes object
 * of the exact size is made from it. */
#define CEXT_SCRATCH (64 * 1024)

/* cext_pid is this process's pid, set at import (a fork never runs Go). */
extern uint32_t cext_pid;
/* initial-exec: a plain TLS load instead of a __tls_get_addr call. */
extern __thread uint32_t cext_tid __attribute__((tls_model("initial-exec")));

static inline uint32_t tid(void) {
	if (!cext_tid) cext_tid = (uint32_t)syscall(SYS_gettid);
	return cext_tid;
}

/* ---- errors (module.c): every engine error reaches Python as (code,
 * errno, message), translated by mpgo._errors.exception alone ---- */

/* cext_raise_error sets the exception for code (positive), errno, msg. */
void cext_raise_error(int code, int err, const char *msg);
/* cext_raise_code raises the calling thread's last C ABI error; rc is what
 * the call returned. */
void cext_raise_code(int rc);

static inline int check_forked(void) {
	if (__builtin_expect(mpgo_forked_flag, 0)) {
		cext_raise_error(-MPGO_EFORKED, 0,
			"mpgo: the engine cannot be used in a process forked from one "
			"running the Go runtime; start children with mpgo.Process");
		return -1;
	}
	return 0;
}

/* ---- waits (wait.c) ---- */

/* Slicer cuts a wait of t seconds (< 0 forever, 0 none) into slices of at
 * most CEXT_SLICE. */
typedef struct { double t; int64_t deadline; } Slicer;

static inline void slicer_start(Slicer *s, double t) {
	s->t = t;
	s->deadline = t > 0 ? mpgo_monotonic_ns() + (int64_t)(t * 1e9) : 0;
}

/* slicer_next stores the next slice and returns 0, or returns 1 when the
 * time is up. */
static inline int slicer_next(Slicer *s, double *slice) {
	if (s->t < 0) { *slice = CEXT_SLICE; return 0; }
	double left = (double)(s->deadline - mpgo_monotonic_ns()) / 1e9;
	if (left <= 0) return 1;
	*slice = left < CEXT_SLICE ? left : CEXT_SLICE;
	return 0;
}

/* cext_wait calls op(arg, slice) with the GIL released until it returns
 * something other than busy or the time (t seconds, < 0 forever) is up,
 * checking for signals between slices. It returns the last rc (busy when
 * the time is up), or CEXT_RAISED with a Python exception set. */
typedef int (*wait_op)(void *arg, double slice);
#define CEXT_RAISED (-1000)
int cext_wait(wait_op op, void *arg, double t, int busy);

/* ---- the parts' types and functions, added to the module at import ---- */

int cext_locks_add(PyObject *m);
int cext_values_add(PyObject *m);
int cext_queues_add(PyObject *m);
int cext_plain_add(PyObject *m);
int cext_pool_worker_add(PyObject *m);
int cext_pool_submit_add(PyObject *m);
int cext_pool_collect_add(PyObject *m);

/* cext_semlock_acquire and cext_semlock_release are SemLock's acquire and
 * release for SyncValue (values.c); NULL-returning like their methods. */
typedef struct SemLock SemLock;
extern PyTypeObject cext_SemLockType;
int cext_semlock_acquire(SemLock *s, int block, double timeout);
PyObject *cext_semlock_release(SemLock *s, PyObject *unused);

/* ---- the pool's wire format (core/pool/wire.go) ---- */

static inline void put_u64(char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint64_t get_u64(const char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* task_key is what the parent's set of outstanding tasks holds for task id
 * (pool.py's _key): a set of raw ids, whose low bits are the same for every
 * job's first task, collided at every insertion. Its own inverse. */
static inline uint64_t task_key(uint64_t id) { return id ^ (id >> 32); }

/* cext_caught returns the exception being raised, with its traceback
 * attached, if it is an Exception (a task's failure); NULL, leaving it
 * raised, for any other BaseException (SystemExit, KeyboardInterrupt). */
PyObject *cext_caught(void);

#endif /* MPGO_CEXT_H */
