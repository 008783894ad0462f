/* ctest.c: exercises libmpgo.so through mpgo.h only. Exits non-zero on the
 * first failure. */
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

int main(void) {
	test_process();
	test_fork_guard();
	CHECK(mpgo_live_handles() == 0, "handles left: %d", mpgo_live_handles());
	printf("ctest: %d passed, %d failed\n", checks - failures, failures);
	return failures ? 1 : 0;
}
