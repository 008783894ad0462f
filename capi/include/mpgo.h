/*
 * mpgo.h: the C ABI of the mpgo engine (libmpgo.so).
 *
 * Conventions, as in libtailscale:
 *   - every call returns 0 on success or a negative MPGO_E* code;
 *   - after a failure, mpgo_errmsg() copies a message and mpgo_errno() gives
 *     the errno (MPGO_EOS) for the calling thread: (code, errno, message);
 *   - objects are named by int64 handles, which start above 1000, so 0 never
 *     names a live object;
 *   - after fork() in a process that has started the Go runtime, every call
 *     returns MPGO_EFORKED instead of entering Go (which would hang).
 */
#ifndef MPGO_H
#define MPGO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (MPGO_E*, negated core/errs codes), layout offsets, kinds and
 * wire-format constants: generated from Go by tools/gen. */
#include "mpgo_consts.h"

#define MPGO_OK 0

/* MPGO_STILL_RUNNING (mpgo_consts.h) is what mpgo_process_wait stores in
 * *status when the child has not exited before the timeout. */

/* mpgo_forked reports whether this process was forked from one running the
 * Go runtime (1) or not (0). It never enters Go. */
int mpgo_forked(void);

/* mpgo_forked_flag is what mpgo_forked returns, for inline checks. */
extern volatile int mpgo_forked_flag;

/* mpgo_start starts the Go runtime if it has not started: loading the
 * library does not start it, the first call that enters Go does. Calling it
 * early lets the runtime's set-up (about 2 ms) overlap other work. */
void mpgo_start(void);

/* mpgo_started reports whether the Go runtime has been started (1) or not
 * (0). It never enters Go. */
int mpgo_started(void);

/* mpgo_errmsg copies the calling thread's last error message into buf
 * (NUL-terminated, truncated to len) and returns its full length. */
int mpgo_errmsg(char *buf, size_t len);

/* mpgo_errno returns the errno of the calling thread's last failure: set
 * for MPGO_EOS, 0 for the other codes. It never enters Go. */
int mpgo_errno(void);

/* mpgo_version returns the engine version as a static string. */
const char *mpgo_version(void);

/* mpgo_process_start starts argv[0] (argv NULL-terminated). fds[i] becomes
 * the child's fd i (nfds < 0: inherit 0, 1, 2). If death_signal is non-zero
 * the child receives it when this process dies. */
int mpgo_process_start(char *const argv[], const int *fds, int nfds,
                       int death_signal, int64_t *handle, int *pid);

/* mpgo_process_wait waits up to timeout seconds (< 0: forever) and stores
 * the exit code (n, or -signal) or MPGO_STILL_RUNNING in *status. */
int mpgo_process_wait(int64_t handle, double timeout, int64_t *status);

/* mpgo_process_signal sends sig to the child. */
int mpgo_process_signal(int64_t handle, int sig);

/* mpgo_process_release forgets the child and closes its pidfd. */
int mpgo_process_release(int64_t handle);

/* ---- Synchronisation primitives in shared memory (core/sync) ----
 *
 * A primitive is a 16-byte region, aligned to 8, inside memory shared by the
 * processes (an arena, see below). The layouts are core/sync's:
 *
 * Lock and RLock:                      Semaphore:
 *   off  0 uint32 state 0/1/2 (futex)    off 0 uint32 value (futex)
 *   off  4 uint32 owner pid              off 4 uint32 max (0: unbounded)
 *   off  8 uint32 owner tid              off 8 uint32 sleepers
 *   off 12 uint32 count (RLock)          off 12 reserved
 *
 * A lock is free when state is 0. State and pid are one 64-bit word (state
 * in the low half) that changes as one: a locked lock always names its
 * holder. Uncontended acquire: CAS the word 0 -> pid<<32|1, then store tid,
 * then (RLock) count 1. Release: count 0, tid 0, then exchange the word with
 * 0 and FUTEX_WAKE one waiter on state if the old state was 2. A semaphore
 * acquire is a CAS value v->v-1 (v > 0); release is a CAS v->v+1 followed by
 * FUTEX_WAKE if sleepers != 0. Waiting is done by mpgo_lock_acquire and
 * mpgo_sem_acquire, which also take a lock over from a dead holder.
 */
/* The MPGO_LOCK_*, MPGO_SEM_* offsets and MPGO_KIND_* kinds: mpgo_consts.h. */

/* mpgo_sync_init initialises mem as a primitive of kind. value and max are
 * used by MPGO_KIND_SEMAPHORE only (max 0: unbounded). */
int mpgo_sync_init(void *mem, int kind, uint32_t value, uint32_t max);

/* mpgo_lock_acquire takes a Lock or RLock for (pid, tid), waiting at most
 * timeout seconds (< 0: forever). Returns 1 if taken, 0 on timeout. A lock
 * whose holder died is taken over (see mpgo_takeovers). */
int mpgo_lock_acquire(void *mem, int kind, uint32_t pid, uint32_t tid, double timeout);

/* mpgo_lock_release releases a Lock or RLock held by (pid, tid). */
int mpgo_lock_release(void *mem, int kind, uint32_t pid, uint32_t tid);

/* mpgo_sem_acquire takes one unit, waiting at most timeout seconds (< 0:
 * forever). Returns 1 if taken, 0 on timeout. */
int mpgo_sem_acquire(void *mem, double timeout);

/* mpgo_sem_release adds n units (MPGO_ETOOMANY past a bound). */
int mpgo_sem_release(void *mem, int n);

/* mpgo_takeovers returns how many locks were taken over from dead holders
 * since the last call, and the pid of the last dead holder in *pid. */
int mpgo_takeovers(uint32_t *pid);

/* ---- Arenas: shared memory that other processes attach by reference ---- */

/* mpgo_arena_new creates an arena of size bytes. */
int mpgo_arena_new(int64_t size, int64_t *handle);

/* mpgo_arena_attach attaches the arena named by ref ("pid:fd:size"). */
int mpgo_arena_attach(const char *ref, int64_t *handle);

/* mpgo_arena_ref writes this process's reference to the arena into buf. */
int mpgo_arena_ref(int64_t handle, char *buf, size_t len);

/* mpgo_arena_base stores the arena's address in this process and its size. */
int mpgo_arena_base(int64_t handle, void **base, int64_t *size);

/* mpgo_arena_alloc allocates n bytes aligned to align; *off is the offset. */
int mpgo_arena_alloc(int64_t handle, int64_t n, int64_t align, int64_t *off);

/* mpgo_arena_free frees the block at off. */
int mpgo_arena_free(int64_t handle, int64_t off);

/* mpgo_arena_close unmaps the arena in this process. */
int mpgo_arena_close(int64_t handle);

/* ---- Queues: MPMC rings of byte messages in shared memory (core/queue) ----
 *
 * Messages are opaque bytes: Python puts pickles, other languages put what
 * their peers agree on. Timeouts are in seconds (< 0: forever, 0: no wait).
 */

/* mpgo_queue_new creates a queue of at most maxsize messages (0: unbounded). */
int mpgo_queue_new(int64_t maxsize, int64_t *handle);

/* mpgo_queue_attach attaches the queue named by ref ("pid:fd:size"). */
int mpgo_queue_attach(const char *ref, int64_t *handle);

/* mpgo_queue_ref writes this process's reference to the queue into buf. */
int mpgo_queue_ref(int64_t handle, char *buf, size_t len);

/* mpgo_queue_put appends n bytes (MPGO_EFULL on timeout, bounded queues). */
int mpgo_queue_put(int64_t handle, const void *msg, int64_t n, double timeout);

/* mpgo_queue_put_v appends ONE message made of count parts laid end to end. */
int mpgo_queue_put_v(int64_t handle, const void *const *parts, const int64_t *lens,
                     int64_t count, double timeout);

/* mpgo_queue_put_many appends count messages; *done says how many went in. */
int mpgo_queue_put_many(int64_t handle, const void *const *msgs, const int64_t *lens,
                        int64_t count, double timeout, int64_t *done);

/* mpgo_queue_get copies the next message into buf and its length into *n
 * (MPGO_EEMPTY on timeout). If size is too small it returns MPGO_ETOOSHORT
 * with the length in *n and leaves the message in the queue. */
int mpgo_queue_get(int64_t handle, void *buf, int64_t size, double timeout, int64_t *n);

/* mpgo_queue_get_many copies up to max messages back to back into buf,
 * their lengths into lens[0..*count). It waits for the first one only. */
int mpgo_queue_get_many(int64_t handle, void *buf, int64_t size, int64_t max,
                        double timeout, int64_t *lens, int64_t *count);

/* mpgo_queue_len stores the exact number of messages in *n. */
int mpgo_queue_len(int64_t handle, int64_t *n);

/* mpgo_queue_task_done marks one put task done (MPGO_EVALUE if none). */
int mpgo_queue_task_done(int64_t handle);

/* mpgo_queue_join waits for every put task to be done: 1 done, 0 timeout. */
int mpgo_queue_join(int64_t handle, double timeout);

/* mpgo_queue_close closes the queue in this process only. */
int mpgo_queue_close(int64_t handle);

/* mpgo_live_handles counts live handles of every kind (0 after cleanup). */
int mpgo_live_handles(void);

/* ---- Pool workers: the worker end of a core/pool pool ----
 *
 * A pool started by a driver in External mode starts each worker with the
 * five arguments AttachWorker takes (space-separated here): the task queue's
 * ref, the result queue's ref, the slot region's ref, the slot, and the task
 * limit (0: none). A task message is
 *     uint64 id | uint16 n | n bytes function name | payload
 * and a result message (put by done/report)
 *     uint64 id | uint32 slot | uint8 status | body
 * with the statuses MPGO_POOL_* of core/pool (wire.go). */

/* The MPGO_POOL_* statuses and header sizes: mpgo_consts.h. */

/* mpgo_pool_worker_attach attaches a worker's end from its arguments. */
int mpgo_pool_worker_attach(const char *args, int64_t *handle);

/* mpgo_pool_worker_ready tells the parent the worker is ready for tasks. */
int mpgo_pool_worker_ready(int64_t handle);

/* mpgo_pool_worker_take takes and claims the next task message into buf
 * (MPGO_ETOOSHORT with the length in *n if it does not fit; MPGO_ECLOSED once
 * the pool stops; MPGO_EEMPTY on timeout). */
int mpgo_pool_worker_take(int64_t handle, void *buf, int64_t size, double timeout, int64_t *n);

/* mpgo_pool_worker_done puts task id's result and clears the claim. */
int mpgo_pool_worker_done(int64_t handle, uint64_t id, int status, const void *body, int64_t n);

/* mpgo_pool_worker_backlog stores how many results the parent has not read. */
int mpgo_pool_worker_backlog(int64_t handle, int64_t *n);

/* mpgo_pool_worker_report puts a message about no task (id 0). */
int mpgo_pool_worker_report(int64_t handle, int status, const void *body, int64_t n);

/* mpgo_pool_worker_close detaches the worker's end. */
int mpgo_pool_worker_close(int64_t handle);

#ifdef __cplusplus
}
#endif
#endif /* MPGO_H */
