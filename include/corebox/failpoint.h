/*
 * failpoint: named fault-injection points for test builds (like etcd's gofail).
 *
 * Code marks a place where a crash or an error must be survivable:
 *
 *	if (FAILPOINT("wal_before_sync"))
 *		return -ERR_IO;
 *
 * Failpoints exist only when COREBOX_FAILPOINTS is defined (meson defines it
 * for -Ddev=true and -Dfailpoints=true builds). Otherwise FAILPOINT(name) is
 * the constant 0 and the name is not even compiled in.
 *
 * They are armed by the environment variable COREBOX_FAILPOINTS, read once on
 * first use, a ';'-separated list of name=action:
 *
 *	COREBOX_FAILPOINTS='wal_before_sync=panic;snap_after_write=2*error'
 *
 * Actions:
 *	off        nothing (the default for every name)
 *	error      FAILPOINT() yields 1, so the caller takes its error path
 *	panic      logs and abort()s (core dump, SIGABRT)
 *	exit       _exit(1) without flushing or running atexit handlers
 *	kill       SIGKILL to the process itself (what a power cut looks like)
 *	sleep(N)   sleeps N ms (at most FAILPOINT_SLEEP_MS_MAX), then yields 0
 * Any action may be prefixed with "N*" to fire only the first N times the
 * point is reached; afterwards it is off.
 *
 * A malformed COREBOX_FAILPOINTS is fatal (exit 1): a typo that silently
 * disarms a failpoint would make a crash test pass without testing anything.
 */
#ifndef COREBOX_FAILPOINT_H
#define COREBOX_FAILPOINT_H

/* Longest sleep(N) accepted, so a typo cannot hang a test run for hours. */
#define FAILPOINT_SLEEP_MS_MAX 600000
/* Most failpoints one spec may arm, and the longest name. */
#define FAILPOINT_ENTRIES_MAX 64
#define FAILPOINT_NAME_BYTES_MAX 64

#ifdef COREBOX_FAILPOINTS

/*
 * Evaluates the failpoint called name: performs its action and returns 1 for
 * "error", 0 otherwise. name is only compared, never kept. Safe to call from
 * any thread.
 */
int failpoint_eval(const char *name);

/*
 * Replaces the armed set with spec (same syntax as the environment variable;
 * NULL or "" disarms everything) and stops the environment from being read
 * later. For tests. Returns 0, or -ERR_PARSE / -ERR_LIMIT leaving the previous
 * set armed.
 */
int failpoint_configure(const char *spec);

/* How many times name fired (any action but off) since it was armed. */
long failpoint_hits(const char *name);

#define FAILPOINT(name) failpoint_eval(name)

#else

#define FAILPOINT(name) 0

#endif

#endif
