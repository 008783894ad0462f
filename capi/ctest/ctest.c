/* ctest.c: exercises libmpgo.so through mpgo.h only. Exits non-zero on the
 * first failure. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mpgo.h"

static int failures, checks;

#define CHECK(cond, ...)                                            \
	do {                                                        \
		checks++;                                           \
		if (!(cond)) {                                      \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);               \
			fprintf(stderr, "\n");                      \
			failures++;                                 \
		}                                                   \
	} while (0)

static void test_process(void) {
	char *const argv[] = {"/bin/sh", "-c", "exit 7", NULL};
	int64_t h = 0, st = 0;
	int pid = 0;
	CHECK(mpgo_process_start(argv, NULL, -1, 0, &h, &pid) == 0, "start");
	CHECK(h > 1000 && pid > 0, "handle %lld pid %d", (long long)h, pid);
	CHECK(mpgo_process_wait(h, -1, &st) == 0 && st == 7, "exit status %lld", (long long)st);
	CHECK(mpgo_process_release(h) == 0, "release");

	char *const sleeper[] = {"/bin/sleep", "30", NULL};
	CHECK(mpgo_process_start(sleeper, NULL, -1, 0, &h, &pid) == 0, "start sleep");
	CHECK(mpgo_process_wait(h, 0.05, &st) == 0 && st == MPGO_STILL_RUNNING, "still running");
	CHECK(mpgo_process_signal(h, SIGKILL) == 0, "kill");
	CHECK(mpgo_process_wait(h, -1, &st) == 0 && st == -SIGKILL, "killed status %lld", (long long)st);
	CHECK(mpgo_process_release(h) == 0, "release");

	CHECK(mpgo_process_wait(h, 0, &st) == MPGO_ECLOSED, "stale handle");
	char msg[128];
	CHECK(mpgo_errmsg(msg, sizeof msg) > 0, "errmsg");
	CHECK(mpgo_errno() == 0, "no errno but for MPGO_EOS");

	/* An OS error keeps its errno: a directory cannot be mapped. */
	char bad[64];
	int64_t a = 0;
	int dir = open("/", O_RDONLY);
	snprintf(bad, sizeof bad, "%d:%d:4096", (int)getpid(), dir);
	int rc = mpgo_arena_attach(bad, &a);
	CHECK(rc == MPGO_EOS && mpgo_errno() == EISDIR, "attach of a directory: rc %d errno %d",
	      rc, mpgo_errno());
	close(dir);
}

static void test_arena_and_locks(void) {
	int64_t h = 0, off = 0, size = 0;
	void *base = NULL;
	char ref[64];
	CHECK(mpgo_arena_new(1 << 16, &h) == 0, "arena new");
	CHECK(mpgo_arena_alloc(h, MPGO_LOCK_SIZE, 16, &off) == 0 && off > 0, "alloc %lld", (long long)off);
	CHECK(mpgo_arena_base(h, &base, &size) == 0 && base && size == 1 << 16, "base");
	CHECK(mpgo_arena_ref(h, ref, sizeof ref) == 0 && strchr(ref, ':'), "ref %s", ref);
	void *lock = (char *)base + off;
	CHECK(mpgo_sync_init(lock, MPGO_KIND_RLOCK, 0, 0) == 0, "init rlock");
	CHECK(mpgo_lock_acquire(lock, MPGO_KIND_RLOCK, getpid(), 1, 0) == 1, "acquire");
	CHECK(mpgo_lock_acquire(lock, MPGO_KIND_RLOCK, getpid(), 1, 0) == 1, "reacquire");
	CHECK(mpgo_lock_acquire(lock, MPGO_KIND_RLOCK, getpid(), 2, 0.01) == 0, "other thread times out");
	CHECK(mpgo_lock_release(lock, MPGO_KIND_RLOCK, getpid(), 2) == MPGO_ENOTOWNER, "non-owner release");
	CHECK(mpgo_lock_release(lock, MPGO_KIND_RLOCK, getpid(), 1) == 0, "release 1");
	CHECK(mpgo_lock_release(lock, MPGO_KIND_RLOCK, getpid(), 1) == 0, "release 2");
	CHECK(mpgo_lock_acquire(lock, MPGO_KIND_RLOCK, getpid(), 2, 0) == 1, "free again");

	int64_t h2 = 0;
	CHECK(mpgo_arena_attach(ref, &h2) == 0, "attach own ref");
	void *base2 = NULL;
	CHECK(mpgo_arena_base(h2, &base2, &size) == 0 && base2 != base, "second mapping");
	/* Same memory through the second mapping: the lock is held. */
	CHECK(mpgo_lock_acquire((char *)base2 + off, MPGO_KIND_RLOCK, getpid(), 3, 0) == 0, "shared state");

	int64_t sem_off = 0;
	CHECK(mpgo_arena_alloc(h, MPGO_LOCK_SIZE, 16, &sem_off) == 0, "alloc sem");
	void *sem = (char *)base + sem_off;
	CHECK(mpgo_sync_init(sem, MPGO_KIND_SEMAPHORE, 1, 1) == 0, "init bounded sem");
	CHECK(mpgo_sem_acquire(sem, 0) == 1 && mpgo_sem_acquire(sem, 0.01) == 0, "sem counts");
	CHECK(mpgo_sem_release(sem, 1) == 0 && mpgo_sem_release(sem, 1) == MPGO_ETOOMANY, "bounded");
	CHECK(mpgo_arena_free(h, sem_off) == 0 && mpgo_arena_free(h, sem_off) == MPGO_EVALUE, "double free");
	CHECK(mpgo_arena_close(h2) == 0 && mpgo_arena_close(h) == 0, "close");
}

static void test_queue(void) {
	int64_t q = 0, q2 = 0, n = 0, lens[4], count = 0, done = 0;
	char ref[64], buf[64];
	CHECK(mpgo_queue_new(0, &q) == 0, "queue new");
	CHECK(mpgo_queue_put(q, "hello", 5, 0) == 0, "put");
	CHECK(mpgo_queue_ref(q, ref, sizeof ref) == 0, "ref");
	CHECK(mpgo_queue_attach(ref, &q2) == 0, "attach");
	CHECK(mpgo_queue_len(q2, &n) == 0 && n == 1, "len via second handle %lld", (long long)n);
	CHECK(mpgo_queue_get(q2, buf, 2, 0, &n) == MPGO_ETOOSHORT && n == 5, "too short keeps it");
	CHECK(mpgo_queue_get(q2, buf, sizeof buf, 0, &n) == 0 && n == 5 && !memcmp(buf, "hello", 5), "get");
	CHECK(mpgo_queue_get(q, buf, sizeof buf, 0.01, &n) == MPGO_EEMPTY, "empty after timeout");
	const void *msgs[3] = {"a", "bb", "ccc"};
	int64_t ls[3] = {1, 2, 3};
	CHECK(mpgo_queue_put_many(q, msgs, ls, 3, 0, &done) == 0 && done == 3, "put many");
	CHECK(mpgo_queue_get_many(q, buf, sizeof buf, 4, 0, lens, &count) == 0 && count == 3 &&
	      lens[0] == 1 && lens[2] == 3 && !memcmp(buf, "abbccc", 6), "get many");
	CHECK(mpgo_queue_task_done(q) == 0, "task done");
	for (int i = 0; i < 3; i++) mpgo_queue_task_done(q);
	CHECK(mpgo_queue_join(q, 0) == 1, "joined");
	CHECK(mpgo_queue_task_done(q) == MPGO_EVALUE, "too many task_done");

	int64_t b = 0;
	CHECK(mpgo_queue_new(1, &b) == 0, "bounded");
	CHECK(mpgo_queue_put(b, "x", 1, 0) == 0 && mpgo_queue_put(b, "y", 1, 0.01) == MPGO_EFULL, "full");
	CHECK(mpgo_queue_close(b) == 0 && mpgo_queue_close(q2) == 0 && mpgo_queue_close(q) == 0, "close");
	CHECK(mpgo_queue_put(q, "z", 1, 0) == MPGO_ECLOSED, "closed handle");
}

static void test_fork_guard(void) {
	pid_t pid = fork();
	if (pid == 0) {
		int64_t st;
		int rc = mpgo_process_wait(1001, 0, &st);
		_exit(rc == MPGO_EFORKED && mpgo_forked() ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork guard");
	CHECK(!mpgo_forked(), "parent not marked forked");
}

static int threads(void) {
	int n = 0;
	DIR *d = opendir("/proc/self/task");
	if (!d) return -1;
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.') n++;
	closedir(d);
	return n;
}

/* A child forked before the runtime started is no forked child to the
 * guard: its first call into Go starts a runtime of its own. */
static void test_fork_before_start(void) {
	pid_t pid = fork();
	if (pid == 0) {
		int ok = !mpgo_forked() && !mpgo_started() &&
		         mpgo_live_handles() == 0 && mpgo_started() && !mpgo_forked();
		_exit(ok ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "a child forked before the start could not start its runtime");
}

/* Loading the library starts no Go runtime (capi/lazy.c): the first call
 * that enters Go does, and a second mpgo_start is harmless. */
static void test_lazy_start(void) {
	CHECK(!mpgo_started() && threads() == 1,
	      "runtime started before any call into Go: %d threads", threads());
	CHECK(mpgo_forked() == 0 && mpgo_version() && !mpgo_started(),
	      "calls that never enter Go started the runtime");
	CHECK(mpgo_live_handles() == 0, "first call into Go");
	CHECK(mpgo_started() && threads() > 1, "runtime not started by a call into Go");
	mpgo_start();
	CHECK(mpgo_started(), "mpgo_start after the start");
}

int main(void) {
	test_fork_before_start();
	test_lazy_start();
	test_process();
	test_arena_and_locks();
	test_queue();
	test_fork_guard();
	CHECK(mpgo_live_handles() == 0, "handles left: %d", mpgo_live_handles());
	printf("ctest: %d passed, %d failed\n", checks - failures, failures);
	return failures ? 1 : 0;
}
