/*
 * mpgo.h: the C ABI of the mpgo engine (libmpgo.so).
 *
 * Conventions, as in libtailscale:
 *   - every call returns 0 on success or a negative MPGO_E* code;
 *   - after a failure, mpgo_errmsg() copies a message for the calling thread;
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

/* Error codes: negated core/errs codes. */
#define MPGO_OK          0
#define MPGO_EEMPTY     -1
#define MPGO_EFULL      -2
#define MPGO_ETIMEOUT   -3
#define MPGO_ECLOSED    -4
#define MPGO_EOS        -5
#define MPGO_EVALUE     -6
#define MPGO_EPROCESS   -7
#define MPGO_EAUTH      -8
#define MPGO_EFORKED    -9
#define MPGO_EBROKEN   -10
#define MPGO_ETOOSHORT -11
#define MPGO_EINTERNAL -12
#define MPGO_ENOTOWNER -13
#define MPGO_ETOOMANY  -14

/* mpgo_process_still_running is what mpgo_process_wait stores in *status
 * when the child has not exited before the timeout. */
#define MPGO_STILL_RUNNING (1LL << 40)

/* mpgo_forked reports whether this process was forked from one running the
 * Go runtime (1) or not (0). It never enters Go. */
int mpgo_forked(void);

/* mpgo_errmsg copies the calling thread's last error message into buf
 * (NUL-terminated, truncated to len) and returns its full length. */
int mpgo_errmsg(char *buf, size_t len);

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

/* mpgo_live_handles counts live handles of every kind (0 after cleanup). */
int mpgo_live_handles(void);

#ifdef __cplusplus
}
#endif
#endif /* MPGO_H */
