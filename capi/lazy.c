// lazy.c starts the Go runtime at the first call into Go, not at dlopen.
//
// A c-shared Go library starts its runtime from an ELF constructor, which
// creates a thread (through pthread_create) to run the runtime's set-up.
// That costs a process about 3 ms of CPU, a handful of threads and the
// page faults of a Go heap, and a child that only reads a Value or takes
// an uncontended Lock never needs any of it: the C fast path does that
// work alone. So the library is linked with -Wl,--wrap=pthread_create
// (capi.go): the constructor's request, the first one the library makes,
// is recorded here instead, and mpgo_start makes the thread when Go is
// first needed. Every entry point into Go calls mpgo_start first (GUARD in
// guard.c; mpgo._engine for gopy's functions); the call then waits, as any
// early call into a c-shared library does, until the runtime is ready.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "include/mpgo.h"

int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);

enum { NOT_SEEN, DEFERRED, STARTED };

static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static int state; /* NOT_SEEN, DEFERRED or STARTED; written under start_mu */
static void *(*runtime_fn)(void *);
static void *runtime_arg;

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg) {
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == NOT_SEEN) {
		pthread_mutex_lock(&start_mu);
		if (state == NOT_SEEN) {
			/* Nothing in the library runs before the runtime but its
			 * constructor: this is the runtime's own thread. It is
			 * detached, so nobody reads *t. */
			runtime_fn = fn;
			runtime_arg = arg;
			memset(t, 0, sizeof *t);
			__atomic_store_n(&state, DEFERRED, __ATOMIC_RELEASE);
			pthread_mutex_unlock(&start_mu);
			return 0;
		}
		pthread_mutex_unlock(&start_mu);
	}
	return __real_pthread_create(t, attr, fn, arg);
}

void mpgo_start(void) {
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == STARTED) return;
	pthread_mutex_lock(&start_mu);
	if (state == DEFERRED) {
		/* As the runtime's constructor would have made it
		 * (x_cgo_sys_thread_create): detached, default stack. */
		pthread_attr_t attr;
		pthread_t t;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		int err = __real_pthread_create(&t, &attr, runtime_fn, runtime_arg);
		pthread_attr_destroy(&attr);
		if (err != 0) {
			fprintf(stderr, "mpgo: cannot start the Go runtime: pthread_create: %s\n",
			        strerror(err));
			abort();
		}
	}
	__atomic_store_n(&state, STARTED, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&start_mu);
}

/* A fork waits for a start under way to finish: the child then sees either
 * a runtime never started, which it may start itself as a fresh process
 * would, or one started, which the fork guard (guard.c) refuses. */
static void start_lock(void) { pthread_mutex_lock(&start_mu); }
static void start_unlock(void) { pthread_mutex_unlock(&start_mu); }

__attribute__((constructor)) static void mpgo_lazy_init(void) {
	pthread_atfork(start_lock, start_unlock, start_unlock);
}

int mpgo_started(void) {
	return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == STARTED;
}
