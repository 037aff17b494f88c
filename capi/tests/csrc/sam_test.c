/*
 * sam_test: every function of libsam.so.4, success and error paths, on a node of a running
 * cluster. Built against corosync's installed <corosync/sam.h> and linked with -lsam, run with
 * rotor's libsam first on LD_LIBRARY_PATH. SAM supervises the process itself: sam_register
 * forks, the process that called it becomes the supervisor and the test goes on in each
 * instance, so the program's exit status is the supervisor's.
 *
 *   sam_test restart      quorum-restart with the cmap flag, 1 s interval, on a quorate
 *                         node: every call before initialize, before register, in instance 1
 *                         (the data store carried over register, the health-check callback
 *                         and its thread, a callback reporting failure that gets the instance
 *                         killed), in instance 2 (the data instance 1 stored, a process the
 *                         instance forked refused, finalize); exits 0
 *   sam_test quit         quit without an interval: what needs an interval or the cmap flag is
 *                         refused; the instance exits with 7 while health checking and the
 *                         supervisor quits with 7
 *   sam_test mark-failed  quit with the cmap flag: sam_mark_failed kills the instance at once
 *                         and the supervisor quits with 128 + SIGKILL, leaving the process's
 *                         cmap state "failed"
 *
 * Prints one "ok - what" line per check (each instance says which it is); the first failed
 * check prints "not ok - what" and exits 1.
 */
#define _GNU_SOURCE
#include <corosync/sam.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int checks;
static unsigned int instance;

#define CHECK(cond, ...)                                                                 \
	do {                                                                             \
		checks++;                                                                \
		if (!(cond)) {                                                           \
			printf("not ok - [%u] ", instance);                              \
			printf(__VA_ARGS__);                                             \
			printf(" (line %d)\n", __LINE__);                                \
			fflush(stdout);                                                  \
			exit(1);                                                         \
		}                                                                        \
		printf("ok - [%u] ", instance);                                          \
		printf(__VA_ARGS__);                                                     \
		printf("\n");                                                            \
		fflush(stdout);                                                          \
	} while (0)

#define EXPECT(call, want) CHECK((call) == (want), "%s == %s", #call, #want)

/* The most rotor's SAM keeps (rotor_client::sam::DATA_SIZE_MAX). */
#define DATA_SIZE_MAX (16u << 20)

static atomic_int callbacks_run;
static atomic_int callback_result;

static int health_check(void)
{
	atomic_fetch_add(&callbacks_run, 1);
	return atomic_load(&callback_result);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Every call before sam_initialize: no SAM yet. */
static void before_initialize(void)
{
	char buf[16] = {0};
	size_t size = 99;
	unsigned int id = 99;
	EXPECT(sam_start(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_stop(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_hc_send(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_hc_callback_register(health_check), CS_ERR_BAD_HANDLE);
	EXPECT(sam_finalize(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_register(&id), CS_ERR_BAD_HANDLE);
	CHECK(id == 99, "a refused register leaves the instance id alone");
	EXPECT(sam_warn_signal_set(SIGTERM), CS_ERR_BAD_HANDLE);
	EXPECT(sam_mark_failed(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_data_store(buf, sizeof(buf)), CS_ERR_BAD_HANDLE);
	EXPECT(sam_data_getsize(NULL), CS_ERR_INVALID_PARAM);
	EXPECT(sam_data_getsize(&size), CS_ERR_BAD_HANDLE);
	EXPECT(sam_data_restore(NULL, sizeof(buf)), CS_ERR_INVALID_PARAM);
	EXPECT(sam_data_restore(buf, sizeof(buf)), CS_ERR_BAD_HANDLE);
	/* Policies sam_initialize refuses, before anything else. */
	EXPECT(sam_initialize(1000, 0), CS_ERR_INVALID_PARAM);
	EXPECT(sam_initialize(1000, 3), CS_ERR_INVALID_PARAM);
	EXPECT(sam_initialize(1000, SAM_RECOVERY_POLICY_QUORUM), CS_ERR_INVALID_PARAM);
	EXPECT(sam_initialize(1000, SAM_RECOVERY_POLICY_CMAP), CS_ERR_INVALID_PARAM);
	EXPECT(sam_initialize(1000, 0x20 | SAM_RECOVERY_POLICY_QUIT), CS_ERR_INVALID_PARAM);
	EXPECT(sam_initialize(-1, SAM_RECOVERY_POLICY_QUIT), CS_ERR_INVALID_PARAM);
	EXPECT(sam_start(), CS_ERR_BAD_HANDLE);
}

/* Calls that need a registered instance, refused in the process that will register. */
static void before_register(void)
{
	EXPECT(sam_start(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_stop(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_hc_send(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_hc_callback_register(health_check), CS_ERR_BAD_HANDLE);
	EXPECT(sam_mark_failed(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_warn_signal_set(0), CS_ERR_INVALID_PARAM);
	EXPECT(sam_warn_signal_set(SIGRTMAX + 1), CS_ERR_INVALID_PARAM);
	EXPECT(sam_warn_signal_set(SIGUSR1), CS_OK);
}

/* The data store before register: kept here, handed to every instance. */
static void store_before_register(void)
{
	char buf[16];
	size_t size = 99;
	EXPECT(sam_data_getsize(&size), CS_OK);
	CHECK(size == 0, "nothing stored yet (size %zu)", size);
	memset(buf, 'x', sizeof(buf));
	EXPECT(sam_data_restore(buf, sizeof(buf)), CS_OK);
	CHECK(buf[0] == 'x', "restoring nothing leaves the buffer alone");
	EXPECT(sam_data_store("initial", 8), CS_OK);
	EXPECT(sam_data_getsize(&size), CS_OK);
	CHECK(size == 8, "8 bytes stored (size %zu)", size);
	EXPECT(sam_data_restore(buf, 7), CS_ERR_INVALID_PARAM);
	EXPECT(sam_data_restore(buf, sizeof(buf)), CS_OK);
	CHECK(strcmp(buf, "initial") == 0, "restored \"%s\"", buf);
	/* Over the limit: refused before any byte is read, what was stored stays. */
	EXPECT(sam_data_store(buf, (size_t)DATA_SIZE_MAX + 1), CS_ERR_TOO_BIG);
	EXPECT(sam_data_store(buf, (size_t)-1), CS_ERR_TOO_BIG);
	EXPECT(sam_data_getsize(&size), CS_OK);
	CHECK(size == 8, "a refused store keeps the data (size %zu)", size);
}

/* Calls that are refused in any instance before start. */
static void registered_not_started(void)
{
	unsigned int again = 99;
	EXPECT(sam_register(&again), CS_ERR_BAD_HANDLE);
	CHECK(again == 99, "a second register leaves the instance id alone");
	EXPECT(sam_hc_send(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_stop(), CS_ERR_BAD_HANDLE);
}

static void restart_instance_1(void)
{
	char buf[32] = {0};
	size_t size = 0;
	EXPECT(sam_data_getsize(&size), CS_OK);
	CHECK(size == 8, "instance 1 has the data stored before register (size %zu)", size);
	EXPECT(sam_data_restore(buf, sizeof(buf)), CS_OK);
	CHECK(strcmp(buf, "initial") == 0, "instance 1 restored \"%s\"", buf);
	registered_not_started();
	/* No callback registered yet: NULL is refused. */
	EXPECT(sam_hc_callback_register(NULL), CS_ERR_INVALID_PARAM);
	EXPECT(sam_hc_callback_register(health_check), CS_OK);
	EXPECT(sam_start(), CS_OK);
	EXPECT(sam_start(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_hc_callback_register(health_check), CS_ERR_BAD_HANDLE);
	/* SAM's thread keeps the instance alive and calls the callback once per interval. */
	sleep_ms(3500);
	int run = atomic_load(&callbacks_run);
	CHECK(run >= 2, "the health-check callback ran %d times in 3.5 intervals", run);
	EXPECT(sam_hc_send(), CS_OK);
	EXPECT(sam_data_store("instance 1", 11), CS_OK);
	EXPECT(sam_warn_signal_set(SIGTERM), CS_OK);
	EXPECT(sam_stop(), CS_OK);
	EXPECT(sam_stop(), CS_ERR_BAD_HANDLE);
	/* Health checks back to the application. */
	EXPECT(sam_hc_callback_register(NULL), CS_OK);
	run = atomic_load(&callbacks_run);
	EXPECT(sam_start(), CS_OK);
	for (int i = 0; i < 12; i++) {
		EXPECT(sam_hc_send(), CS_OK);
		sleep_ms(250);
	}
	CHECK(atomic_load(&callbacks_run) == run, "no callback without one registered");
	EXPECT(sam_stop(), CS_OK);
	/* A callback reporting failure: the health checks stop, the supervisor sends the warn
	 * signal (SIGTERM, which ends this process) and starts instance 2. */
	atomic_store(&callback_result, -1);
	EXPECT(sam_hc_callback_register(health_check), CS_OK);
	printf("instance 1: %d passed, 0 failed; now failing its health check\n", checks);
	fflush(stdout);
	EXPECT(sam_start(), CS_OK);
	for (;;)
		pause();
}

static void restart_instance_2(void)
{
	char buf[32] = {0};
	size_t size = 0;
	EXPECT(sam_data_getsize(&size), CS_OK);
	CHECK(size == 11, "instance 2 has what instance 1 stored (size %zu)", size);
	EXPECT(sam_data_restore(buf, sizeof(buf)), CS_OK);
	CHECK(strcmp(buf, "instance 1") == 0, "instance 2 restored \"%s\"", buf);
	registered_not_started();
	EXPECT(sam_data_store(NULL, 5), CS_OK);
	EXPECT(sam_data_getsize(&size), CS_OK);
	CHECK(size == 0, "storing NULL stores nothing (size %zu)", size);
	EXPECT(sam_start(), CS_OK);
	EXPECT(sam_hc_send(), CS_OK);
	/* Only the instance talks to its supervisor, not a process it forked. */
	fflush(stdout);
	pid_t child = fork();
	if (child == 0)
		_exit(sam_hc_send() == CS_ERR_BAD_HANDLE ? 0 : 1);
	int status = -1;
	CHECK(child > 0 && waitpid(child, &status, 0) == child, "fork a child of the instance");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "sam_hc_send from the instance's child is CS_ERR_BAD_HANDLE");
	EXPECT(sam_hc_send(), CS_OK);
	/* finalize while health checking stops first; then nothing works any more. */
	EXPECT(sam_finalize(), CS_OK);
	EXPECT(sam_finalize(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_hc_send(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_start(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_warn_signal_set(SIGTERM), CS_ERR_BAD_HANDLE);
	EXPECT(sam_data_getsize(&size), CS_ERR_BAD_HANDLE);
	EXPECT(sam_data_restore(buf, sizeof(buf)), CS_ERR_BAD_HANDLE);
	EXPECT(sam_data_store(buf, 1), CS_ERR_BAD_HANDLE);
	EXPECT(sam_mark_failed(), CS_ERR_BAD_HANDLE);
	EXPECT(sam_hc_callback_register(health_check), CS_ERR_BAD_HANDLE);
	EXPECT(sam_register(NULL), CS_ERR_BAD_HANDLE);
	EXPECT(sam_initialize(1000, SAM_RECOVERY_POLICY_RESTART), CS_ERR_BAD_HANDLE);
	printf("instance 2: %d passed, 0 failed\n", checks);
	fflush(stdout);
	/* Not health checking: the supervisor ends with this status. */
	exit(0);
}

static void restart(void)
{
	before_initialize();
	EXPECT(sam_initialize(1000, SAM_RECOVERY_POLICY_QUORUM_RESTART | SAM_RECOVERY_POLICY_CMAP),
	       CS_OK);
	EXPECT(sam_initialize(1000, SAM_RECOVERY_POLICY_RESTART), CS_ERR_BAD_HANDLE);
	before_register();
	store_before_register();
	printf("supervisor pid %d registers\n", (int)getpid());
	fflush(stdout);
	EXPECT(sam_register(&instance), CS_OK);
	if (instance == 1)
		restart_instance_1();
	CHECK(instance == 2, "the instance after 1 is 2 (got %u)", instance);
	restart_instance_2();
}

static void quit(void)
{
	EXPECT(sam_initialize(0, SAM_RECOVERY_POLICY_QUIT), CS_OK);
	EXPECT(sam_register(NULL), CS_OK);
	instance = 1;
	EXPECT(sam_mark_failed(), CS_ERR_INVALID_PARAM);
	EXPECT(sam_hc_callback_register(health_check), CS_ERR_INVALID_PARAM);
	EXPECT(sam_start(), CS_OK);
	EXPECT(sam_hc_send(), CS_OK);
	printf("instance 1: %d passed, 0 failed; exits 7 while health checking\n", checks);
	fflush(stdout);
	exit(7);
}

static void mark_failed(void)
{
	EXPECT(sam_initialize(0, SAM_RECOVERY_POLICY_QUIT | SAM_RECOVERY_POLICY_CMAP), CS_OK);
	printf("supervisor pid %d registers\n", (int)getpid());
	fflush(stdout);
	EXPECT(sam_register(&instance), CS_OK);
	EXPECT(sam_start(), CS_OK);
	printf("instance 1: %d passed, 0 failed; marks itself failed\n", checks);
	fflush(stdout);
	sam_mark_failed();
	/* Killed by the supervisor before this returns, or soon after. */
	sleep_ms(10000);
	printf("not ok - [1] still alive 10 s after sam_mark_failed\n");
	exit(1);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (strcmp(mode, "restart") == 0)
		restart();
	else if (strcmp(mode, "quit") == 0)
		quit();
	else if (strcmp(mode, "mark-failed") == 0)
		mark_failed();
	fprintf(stderr, "usage: sam_test restart|quit|mark-failed\n");
	return 2;
}
