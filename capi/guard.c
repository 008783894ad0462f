// guard.c holds the fork guard and the C entry points of the C ABI.
//
// A child forked from a process running the Go runtime hangs as soon as it
// enters Go (golang/go#15538), so every public entry point checks a flag set
// by a pthread_atfork child handler before it calls into Go, and then starts
// the Go runtime if it has not started yet (lazy.c). A child forked before
// the runtime started is not flagged: it starts its own, as a process that
// has just loaded the library would.
#include <pthread.h>
#include <string.h>
#include "include/mpgo.h"
#include "_cgo_export.h"

/* mpgo_forked_flag is read directly by the Python fast path. */
volatile int mpgo_forked_flag;
#define forked_flag mpgo_forked_flag

static void on_fork_child(void) {
	if (mpgo_started()) forked_flag = 1;
}

__attribute__((constructor)) static void mpgo_guard_init(void) {
	pthread_atfork(NULL, NULL, on_fork_child);
}

int mpgo_forked(void) { return forked_flag; }

static __thread char errbuf[512];
static __thread int errnum;

/* mpgo_set_error records the calling thread's last error: its errno (0 but
 * for MPGO_EOS) and message. */
void mpgo_set_error(int err, const char *msg, size_t n) {
	if (n >= sizeof errbuf) n = sizeof errbuf - 1;
	memcpy(errbuf, msg, n);
	errbuf[n] = 0;
	errnum = err;
}

int mpgo_errno(void) { return errnum; }

int mpgo_errmsg(char *buf, size_t len) {
	size_t n = strlen(errbuf);
	if (len > 0) {
		size_t c = n < len - 1 ? n : len - 1;
		memcpy(buf, errbuf, c);
		buf[c] = 0;
	}
	return (int)n;
}

#define GUARD()                                                              \
	do {                                                                 \
		if (forked_flag) {                                           \
			static const char m[] = "mpgo engine used after fork";  \
			mpgo_set_error(0, m, sizeof m - 1);                  \
			return MPGO_EFORKED;                                 \
		}                                                            \
		mpgo_start();                                                \
	} while (0)

const char *mpgo_version(void) { return "0.1.0"; }

int mpgo_process_start(char *const argv[], const int *fds, int nfds,
                       int death_signal, int64_t *handle, int *pid) {
	GUARD();
	return goProcessStart((char **)argv, (int *)fds, nfds, death_signal, handle, pid);
}

int mpgo_process_wait(int64_t handle, double timeout, int64_t *status) {
	GUARD();
	return goProcessWait(handle, timeout, status);
}

int mpgo_process_signal(int64_t handle, int sig) {
	GUARD();
	return goProcessSignal(handle, sig);
}

int mpgo_process_release(int64_t handle) {
	GUARD();
	return goProcessRelease(handle);
}

int mpgo_live_handles(void) {
	if (forked_flag) return MPGO_EFORKED;
	mpgo_start();
	return goLiveHandles();
}

int mpgo_sync_init(void *mem, int kind, uint32_t value, uint32_t max) {
	GUARD();
	return goSyncInit(mem, kind, value, max);
}

int mpgo_lock_acquire(void *mem, int kind, uint32_t pid, uint32_t tid, double timeout) {
	GUARD();
	return goLockAcquire(mem, kind, pid, tid, timeout);
}

int mpgo_lock_release(void *mem, int kind, uint32_t pid, uint32_t tid) {
	GUARD();
	return goLockRelease(mem, kind, pid, tid);
}

int mpgo_sem_acquire(void *mem, double timeout) {
	GUARD();
	return goSemAcquire(mem, timeout);
}

int mpgo_sem_release(void *mem, int n) {
	GUARD();
	return goSemRelease(mem, n);
}

int mpgo_takeovers(uint32_t *pid) {
	GUARD();
	return goTakeovers(pid);
}

int mpgo_arena_new(int64_t size, int64_t *handle) {
	GUARD();
	return goArenaNew(size, handle);
}

int mpgo_arena_attach(const char *ref, int64_t *handle) {
	GUARD();
	return goArenaAttach((char *)ref, handle);
}

int mpgo_arena_ref(int64_t handle, char *buf, size_t len) {
	GUARD();
	return goArenaRef(handle, buf, len);
}

int mpgo_arena_base(int64_t handle, void **base, int64_t *size) {
	GUARD();
	return goArenaBase(handle, base, size);
}

int mpgo_arena_alloc(int64_t handle, int64_t n, int64_t align, int64_t *off) {
	GUARD();
	return goArenaAlloc(handle, n, align, off);
}

int mpgo_arena_free(int64_t handle, int64_t off) {
	GUARD();
	return goArenaFree(handle, off);
}

int mpgo_arena_close(int64_t handle) {
	GUARD();
	return goArenaClose(handle);
}

int mpgo_queue_new(int64_t maxsize, int64_t *handle) {
	GUARD();
	return goQueueNew(maxsize, handle);
}

int mpgo_queue_attach(const char *ref, int64_t *handle) {
	GUARD();
	return goQueueAttach((char *)ref, handle);
}

int mpgo_queue_ref(int64_t handle, char *buf, size_t len) {
	GUARD();
	return goQueueRef(handle, buf, len);
}

int mpgo_queue_put(int64_t handle, const void *msg, int64_t n, double timeout) {
	GUARD();
	return goQueuePut(handle, (void *)msg, n, timeout);
}

int mpgo_queue_put_many(int64_t handle, const void *const *msgs, const int64_t *lens,
                        int64_t count, double timeout, int64_t *done) {
	GUARD();
	return goQueuePutMany(handle, (void **)msgs, (int64_t *)lens, count, timeout, done);
}

int mpgo_queue_get(int64_t handle, void *buf, int64_t size, double timeout, int64_t *n) {
	GUARD();
	return goQueueGet(handle, buf, size, timeout, n);
}

int mpgo_queue_get_many(int64_t handle, void *buf, int64_t size, int64_t max,
                        double timeout, int64_t *lens, int64_t *count) {
	GUARD();
	return goQueueGetMany(handle, buf, size, max, timeout, lens, count);
}

int mpgo_queue_len(int64_t handle, int64_t *n) {
	GUARD();
	return goQueueLen(handle, n);
}

int mpgo_queue_task_done(int64_t handle) {
	GUARD();
	return goQueueTaskDone(handle);
}

int mpgo_queue_join(int64_t handle, double timeout) {
	GUARD();
	return goQueueJoin(handle, timeout);
}

int mpgo_queue_close(int64_t handle) {
	GUARD();
	return goQueueClose(handle);
}

int mpgo_queue_put_v(int64_t handle, const void *const *parts, const int64_t *lens,
                     int64_t count, double timeout) {
	GUARD();
	return goQueuePutV(handle, (void **)parts, (int64_t *)lens, count, timeout);
}

/* ---- Pool workers (core/pool) ---- */

int mpgo_pool_worker_attach(const char *args, int64_t *handle) {
	GUARD();
	return goPoolWorkerAttach((char *)args, handle);
}

int mpgo_pool_worker_ready(int64_t handle) {
	GUARD();
	return goPoolWorkerReady(handle);
}

int mpgo_pool_worker_take(int64_t handle, void *buf, int64_t size, double timeout, int64_t *n) {
	GUARD();
	return goPoolWorkerTake(handle, buf, size, timeout, n);
}

int mpgo_pool_worker_done(int64_t handle, uint64_t id, int status, const void *body, int64_t n) {
	GUARD();
	return goPoolWorkerDone(handle, id, status, (void *)body, n);
}

int mpgo_pool_worker_backlog(int64_t handle, int64_t *n) {
	GUARD();
	return goPoolWorkerBacklog(handle, n);
}

int mpgo_pool_worker_report(int64_t handle, int status, const void *body, int64_t n) {
	GUARD();
	return goPoolWorkerReport(handle, status, (void *)body, n);
}

int mpgo_pool_worker_close(int64_t handle) {
	GUARD();
	return goPoolWorkerClose(handle);
}
