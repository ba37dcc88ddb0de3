/* Unit tests for core/failpoint: arming from the environment (read once),
 * the spec syntax and its errors, and every action (panic, exit and kill run
 * in a forked child). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "corebox/err.h"
#include "corebox/failpoint.h"
#include "corebox/loop.h"

#ifndef COREBOX_FAILPOINTS
#error "unit tests are built with failpoints (meson -Ddev=true)"
#endif

static char *self_path;

/* Must run first: main() armed these through the environment. */
static void
test_armed_from_env(void **state)
{
	(void)state;
	assert_true(FAILPOINT("env_point"));
	assert_true(FAILPOINT("env_point"));
	assert_true(FAILPOINT("env_twice"));
	assert_true(FAILPOINT("env_twice"));
	assert_false(FAILPOINT("env_twice"));
	assert_false(FAILPOINT("env_off"));
	assert_false(FAILPOINT("not_armed"));
	assert_int_equal(failpoint_hits("env_point"), 2);
	assert_int_equal(failpoint_hits("env_twice"), 2);
	assert_int_equal(failpoint_hits("env_off"), 0);
	assert_int_equal(failpoint_hits("not_armed"), 0);
	/* Read once: changing the environment later changes nothing. */
	setenv("COREBOX_FAILPOINTS", "late_point=error", 1);
	assert_false(FAILPOINT("late_point"));
	assert_true(FAILPOINT("env_point"));
}

static void
test_configure_syntax(void **state)
{
	(void)state;
	assert_int_equal(failpoint_configure(" a = error ; ;b=3*error;c=off;;a.b-c_d=sleep(0);"), 0);
	assert_true(FAILPOINT("a"));
	assert_false(FAILPOINT("c"));
	assert_false(FAILPOINT("a.b-c_d"));
	assert_int_equal(failpoint_hits("a.b-c_d"), 1);
	for (int i = 0; i < 3; i++)
		assert_true(FAILPOINT("b"));
	assert_false(FAILPOINT("b"));
	/* The env's set was replaced. */
	assert_false(FAILPOINT("env_point"));
	/* A name given twice: the later one wins. */
	assert_int_equal(failpoint_configure("d=error;d=off"), 0);
	assert_false(FAILPOINT("d"));
	assert_int_equal(failpoint_configure(NULL), 0);
	assert_false(FAILPOINT("a"));
	assert_int_equal(failpoint_configure(""), 0);
}

static void
test_configure_errors_keep_set(void **state)
{
	static const struct {
		const char *spec;
		int err;
	} bad[] = {
		{ "noequals", -ERR_PARSE },
		{ "a=bogus", -ERR_PARSE },
		{ "=error", -ERR_PARSE },
		{ "a b=error", -ERR_PARSE },
		{ "a/b=error", -ERR_PARSE },
		{ "a=", -ERR_PARSE },
		{ "a=sleep(x)", -ERR_PARSE },
		{ "a=sleep()", -ERR_PARSE },
		{ "a=sleep(10", -ERR_PARSE },
		{ "a=sleep(600001)", -ERR_RANGE },
		{ "a=0*error", -ERR_RANGE },
		{ "a=x*error", -ERR_PARSE },
		{ "a=*error", -ERR_PARSE },
		{ "a=99999999999*error", -ERR_RANGE },
		{ "ok=error;a=errors", -ERR_PARSE },
	};
	char spec[(FAILPOINT_ENTRIES_MAX + 1) * 16];
	char longname[FAILPOINT_NAME_BYTES_MAX + 8];
	size_t o = 0;

	(void)state;
	assert_int_equal(failpoint_configure("keep=error"), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(failpoint_configure(bad[i].spec), bad[i].err);
	memset(longname, 'n', FAILPOINT_NAME_BYTES_MAX);
	strcpy(longname + FAILPOINT_NAME_BYTES_MAX, "=error");
	assert_int_equal(failpoint_configure(longname), -ERR_LIMIT);
	/* One byte shorter is fine. */
	strcpy(longname + FAILPOINT_NAME_BYTES_MAX - 1, "=error");
	assert_int_equal(failpoint_configure(longname), 0);
	longname[FAILPOINT_NAME_BYTES_MAX - 1] = '\0';
	assert_true(FAILPOINT(longname));
	assert_int_equal(failpoint_configure("keep=error"), 0);
	for (int i = 0; i <= FAILPOINT_ENTRIES_MAX; i++)
		o += (size_t)snprintf(spec + o, sizeof(spec) - o, "p%d=error;", i);
	assert_int_equal(failpoint_configure(spec), -ERR_LIMIT);
	/* Every failure left the previous set armed. */
	assert_true(FAILPOINT("keep"));
	assert_false(FAILPOINT("ok"));
	assert_int_equal(failpoint_configure(NULL), 0);
}

static void
test_sleep(void **state)
{
	uint64_t start;

	(void)state;
	assert_int_equal(failpoint_configure("slow=2*sleep(30)"), 0);
	start = time_mono_ms();
	assert_false(FAILPOINT("slow"));
	assert_true(time_mono_ms() - start >= 30);
	assert_false(FAILPOINT("slow"));
	start = time_mono_ms();
	assert_false(FAILPOINT("slow"));
	assert_true(time_mono_ms() - start < 30);
	assert_int_equal(failpoint_hits("slow"), 2);
	assert_int_equal(failpoint_configure(NULL), 0);
}

/* Runs FAILPOINT(name) armed with action in a child; returns its wait status. */
static int
child_status(const char *spec, const char *name)
{
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (failpoint_configure(spec) < 0)
			_exit(10);
		FAILPOINT(name);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void
test_crash_actions(void **state)
{
	int st;

	(void)state;
	st = child_status("boom=panic", "boom");
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
	st = child_status("boom=exit", "boom");
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	st = child_status("boom=kill", "boom");
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
	/* Not armed for this name: the child runs on. */
	st = child_status("boom=kill", "other");
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void
test_bad_env_is_fatal(void **state)
{
	int st;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { self_path, "--bad-env-child", NULL };

		/* A fresh process image, so the environment is read again. */
		setenv("COREBOX_FAILPOINTS", "wal_before_sync=explode", 1);
		execv("/proc/self/exe", argv);
		_exit(11);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_armed_from_env),
		cmocka_unit_test(test_configure_syntax),
		cmocka_unit_test(test_configure_errors_keep_set),
		cmocka_unit_test(test_sleep),
		cmocka_unit_test(test_crash_actions),
		cmocka_unit_test(test_bad_env_is_fatal),
	};

	if (argc == 2 && strcmp(argv[1], "--bad-env-child") == 0) {
		FAILPOINT("wal_before_sync");
		return 0; /* a bad spec must never get here */
	}
	self_path = argv[0];
	setenv("COREBOX_FAILPOINTS", "env_point=error;env_twice=2*error;env_off=off", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
