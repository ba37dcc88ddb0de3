/* Unit tests for core/loop: timer order and cancellation, fd dispatch with
 * removals in the middle of a batch, signals, child exits (pidfd and the
 * SIGCHLD fallback), hook and deferred-call order, stop, and allocation
 * failures. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "corebox/err.h"
#include "corebox/failpoint.h"
#include "corebox/loop.h"
#include "corebox/mem.h"

/* Upper bound for any wait in these tests, so a bug fails instead of hanging. */
#define WAIT_MS_MAX 5000

struct trace {
	char s[512];
};

static void
trace_add(struct trace *t, const char *word)
{
	size_t n = strlen(t->s);

	snprintf(t->s + n, sizeof(t->s) - n, "%s%s", n ? " " : "", word);
}

/* Runs turns until *flag is non-zero, failing the test after WAIT_MS_MAX. */
static void
run_until(struct loop *l, const int *flag)
{
	uint64_t end = time_mono_ms() + WAIT_MS_MAX;

	while (!*flag) {
		assert_int_equal(loop_run_once(l, 50), 0);
		assert_true(time_mono_ms() < end);
	}
}

/* ---- timers ---- */

struct tctx {
	struct loop *l;
	int order[64];
	int n;
	uint64_t ids[64];
	int calls;
	int repeat; /* returns 5 this many times */
	uint64_t other; /* a timer to cancel */
	int cancel_self;
	int del_rc[4];
	int done;
};

struct tone {
	struct tctx *c;
	int tag;
};

static int64_t
timer_record(struct loop *l, uint64_t id, void *arg)
{
	struct tone *t = arg;

	t->c->order[t->c->n++] = t->tag;
	return LOOP_TIMER_DONE;
}

static void
test_timer_order(void **state)
{
	struct loop *l = loop_new();
	struct tctx c;
	struct tone t[8];
	/* Distinct deadlines 15 ms apart, and equal ones added in a known order. */
	static const uint64_t delays[8] = { 45, 0, 30, 0, 15, 0, 30, 0 };
	static const int want[8] = { 1, 3, 5, 7, 4, 2, 6, 0 };

	(void)state;
	assert_non_null(l);
	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 8; i++) {
		t[i].c = &c;
		t[i].tag = i;
		assert_true(loop_timer_add(l, delays[i], timer_record, &t[i]) != 0);
	}
	while (c.n < 8)
		assert_int_equal(loop_run_once(l, -1), 0);
	assert_memory_equal(c.order, want, sizeof(want));
	loop_free(l);
}

static void
test_timer_heap_many(void **state)
{
	struct loop *l = loop_new();
	struct tctx c;
	struct tone t[24];
	uint64_t ids[24];
	int expect = 0;

	(void)state;
	memset(&c, 0, sizeof(c));
	/*
	 * Deadlines 8 ms apart (far more than adding them all takes) in a
	 * scrambled order; every third cancelled, from all over the heap.
	 */
	for (int i = 0; i < 24; i++) {
		int tag = (i * 7) % 24;

		t[i].c = &c;
		t[i].tag = tag;
		ids[i] = loop_timer_add(l, (uint64_t)tag * 8, timer_record, &t[i]);
		assert_true(ids[i] != 0);
	}
	for (int i = 0; i < 24; i++)
		if (t[i].tag % 3 == 0)
			assert_int_equal(loop_timer_del(l, ids[i]), 0);
	for (int tag = 0; tag < 24; tag++)
		if (tag % 3 != 0)
			expect++;
	while (c.n < expect)
		assert_int_equal(loop_run_once(l, -1), 0);
	assert_int_equal(loop_run_once(l, 20), 0);
	assert_int_equal(c.n, expect);
	for (int i = 1; i < c.n; i++)
		assert_true(c.order[i - 1] < c.order[i]);
	for (int i = 0; i < c.n; i++)
		assert_true(c.order[i] % 3 != 0);
	loop_free(l);
}

/*
 * Removing from the middle can put the heap's last timer under a later one,
 * so removal must sift up as well as down. This sequence (found by search)
 * fires 3 before 2 if it only sifts down.
 */
static void
test_timer_heap_remove_sifts_up(void **state)
{
	static const int keys[7] = { 6, 5, 3, 0, 4, 2, 1 };
	struct loop *l = loop_new();
	struct tctx c;
	struct tone t[7];
	uint64_t ids[7];

	(void)state;
	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 7; i++) {
		t[i].c = &c;
		t[i].tag = keys[i];
		ids[i] = loop_timer_add(l, (uint64_t)keys[i] * 8, timer_record, &t[i]);
	}
	assert_int_equal(loop_timer_del(l, ids[0]), 0);
	while (c.n < 6)
		assert_int_equal(loop_run_once(l, -1), 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(c.order[i], i);
	loop_free(l);
}

static int64_t
timer_repeat(struct loop *l, uint64_t id, void *arg)
{
	struct tctx *c = arg;

	c->ids[c->calls++] = id;
	if (c->repeat-- > 0)
		return 5;
	c->done = 1;
	return LOOP_TIMER_DONE;
}

static void
test_timer_reschedule(void **state)
{
	struct loop *l = loop_new();
	struct tctx c;
	uint64_t id, start;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.repeat = 3;
	start = time_mono_ms();
	id = loop_timer_add(l, 5, timer_repeat, &c);
	run_until(l, &c.done);
	assert_int_equal(c.calls, 4);
	for (int i = 0; i < 4; i++)
		assert_true(c.ids[i] == id);
	/* Four periods of 5 ms, each counted after the previous callback. */
	assert_true(time_mono_ms() - start >= 20);
	assert_int_equal(loop_timer_del(l, id), -ERR_NOTFOUND);
	loop_free(l);
}

static int64_t
timer_zero(struct loop *l, uint64_t id, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static void
test_timer_zero_once_per_turn(void **state)
{
	struct loop *l = loop_new();
	int calls = 0;
	uint64_t id;

	(void)state;
	id = loop_timer_add(l, 0, timer_zero, &calls);
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(loop_run_once(l, 0), 0);
		assert_int_equal(calls, i);
	}
	assert_int_equal(loop_timer_del(l, id), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(calls, 3);
	loop_free(l);
}

static int64_t
timer_cancel(struct loop *l, uint64_t id, void *arg)
{
	struct tctx *c = arg;

	c->calls++;
	if (c->cancel_self)
		c->del_rc[0] = loop_timer_del(l, id);
	if (c->other)
		c->del_rc[1] = loop_timer_del(l, c->other);
	/* Ignored: a timer that cancelled itself is over. */
	return 1;
}

static int64_t
timer_count(struct loop *l, uint64_t id, void *arg)
{
	(*(int *)arg)++;
	return LOOP_TIMER_DONE;
}

static void
test_timer_cancel_in_callback(void **state)
{
	struct loop *l = loop_new();
	struct tctx c;
	int other_calls = 0, later_calls = 0;
	uint64_t self;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.cancel_self = 1;
	self = loop_timer_add(l, 0, timer_cancel, &c);
	/* Same deadline, added later: due in the same turn, but cancelled first. */
	c.other = loop_timer_add(l, 0, timer_count, &other_calls);
	loop_timer_add(l, 30, timer_count, &later_calls);
	usleep(2000);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.del_rc[0], 0);
	assert_int_equal(c.del_rc[1], 0);
	assert_int_equal(other_calls, 0);
	while (later_calls == 0)
		assert_int_equal(loop_run_once(l, -1), 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(other_calls, 0);
	assert_int_equal(loop_timer_del(l, self), -ERR_NOTFOUND);
	assert_int_equal(loop_timer_del(l, c.other), -ERR_NOTFOUND);
	assert_int_equal(loop_timer_del(l, 0), -ERR_NOTFOUND);
	assert_int_equal(loop_timer_del(l, UINT64_MAX), -ERR_NOTFOUND);
	loop_free(l);
}

static void
test_timer_ids_not_reused(void **state)
{
	struct loop *l = loop_new();
	int a = 0, b = 0;
	uint64_t id1, id2;

	(void)state;
	id1 = loop_timer_add(l, 0, timer_count, &a);
	assert_int_equal(loop_timer_del(l, id1), 0);
	id2 = loop_timer_add(l, 0, timer_count, &b);
	assert_true(id1 != id2);
	/* The stale id must not cancel the timer that took its slot. */
	assert_int_equal(loop_timer_del(l, id1), -ERR_NOTFOUND);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(a, 0);
	assert_int_equal(b, 1);
	assert_int_equal(loop_timer_add(l, 0, NULL, NULL), 0);
	loop_free(l);
}

static void
test_timer_bounds_wait(void **state)
{
	struct loop *l = loop_new();
	int calls = 0;
	uint64_t start;

	(void)state;
	start = time_mono_ms();
	loop_timer_add(l, 25, timer_count, &calls);
	/* -1 would wait forever: the timer must bound the wait. */
	while (calls == 0) {
		assert_int_equal(loop_run_once(l, -1), 0);
		assert_true(time_mono_ms() - start < WAIT_MS_MAX);
	}
	assert_true(time_mono_ms() - start >= 25);
	assert_true(loop_now_ms(l) - start >= 25);
	loop_free(l);
}

static int64_t
timer_now_cached(struct loop *l, uint64_t id, void *arg)
{
	uint64_t *seen = arg;

	seen[0] = loop_now_ms(l);
	usleep(5000);
	seen[1] = loop_now_ms(l);
	seen[2] = time_mono_ms();
	return LOOP_TIMER_DONE;
}

static void
test_now_cached_per_turn(void **state)
{
	struct loop *l = loop_new();
	uint64_t seen[3] = { 0, 0, 0 };

	(void)state;
	loop_timer_add(l, 0, timer_now_cached, seen);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_true(seen[0] == seen[1]);
	assert_true(seen[2] >= seen[1] + 5);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_true(loop_now_ms(l) >= seen[2]);
	assert_true(time_real_ms() > 1500000000000ull);
	assert_true(time_real_ns() / 1000000u >= time_real_ms() - 1000);
	assert_true(time_mono_us() / 1000 >= loop_now_ms(l));
	loop_free(l);
}

/* ---- fds ---- */

struct fctx {
	struct loop *l;
	int reads, writes, calls;
	void *last_arg;
	int fd_a, fd_b;
	int new_fd, new_wr;
	int new_calls;
	struct trace tr;
};

static void
fd_on_read(struct loop *l, int fd, void *arg)
{
	struct fctx *c = arg;
	char b[64];

	c->reads++;
	c->last_arg = arg;
	if (read(fd, b, sizeof(b)) == 0)
		loop_fd_del(l, fd, LOOP_READ);
}

static void
fd_on_write(struct loop *l, int fd, void *arg)
{
	struct fctx *c = arg;

	c->writes++;
	c->last_arg = arg;
}

static void
test_fd_read_write_separate(void **state)
{
	struct loop *l = loop_new();
	struct fctx c, c2;
	int sv[2];

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(&c2, 0, sizeof(c2));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(loop_fd_add(l, sv[0], LOOP_READ, fd_on_read, &c), 0);
	assert_int_equal(loop_fd_mask(l, sv[0]), LOOP_READ);
	/* Nothing to read yet. */
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(c.reads, 0);
	assert_int_equal(loop_fd_add(l, sv[0], LOOP_WRITE, fd_on_write, &c), 0);
	assert_int_equal(loop_fd_mask(l, sv[0]), LOOP_READ | LOOP_WRITE);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(c.reads, 0);
	assert_int_equal(c.writes, 1);
	assert_int_equal(write(sv[1], "x", 1), 1);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(c.reads, 1);
	assert_int_equal(c.writes, 2);
	/* Dropping one direction leaves the other and its handler. */
	loop_fd_del(l, sv[0], LOOP_WRITE);
	assert_int_equal(loop_fd_mask(l, sv[0]), LOOP_READ);
	assert_int_equal(write(sv[1], "y", 1), 1);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(c.reads, 2);
	assert_int_equal(c.writes, 2);
	/* arg is per fd: the last one given wins for both directions. */
	assert_int_equal(loop_fd_add(l, sv[0], LOOP_WRITE, fd_on_write, &c2), 0);
	assert_int_equal(write(sv[1], "z", 1), 1);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(c2.reads, 1);
	assert_int_equal(c2.writes, 1);
	loop_fd_del(l, sv[0], LOOP_READ | LOOP_WRITE);
	assert_int_equal(loop_fd_mask(l, sv[0]), 0);
	assert_int_equal(write(sv[1], "w", 1), 1);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(c2.reads, 1);
	assert_int_equal(c2.writes, 1);
	/* Removing what is not there is harmless. */
	loop_fd_del(l, sv[0], LOOP_READ);
	loop_fd_del(l, 100000, LOOP_READ);
	loop_fd_del(l, -1, LOOP_READ);
	close(sv[0]);
	close(sv[1]);
	loop_free(l);
}

static void
fd_hangup(struct loop *l, int fd, void *arg)
{
	struct fctx *c = arg;
	char b[8];

	c->reads++;
	assert_int_equal(read(fd, b, sizeof(b)), 0);
	loop_fd_del(l, fd, LOOP_READ);
}

static void
test_fd_hangup_wakes_reader(void **state)
{
	struct loop *l = loop_new();
	struct fctx c;
	int p[2];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(loop_fd_add(l, p[0], LOOP_READ, fd_hangup, &c), 0);
	close(p[1]);
	assert_int_equal(loop_run_once(l, 1000), 0);
	assert_int_equal(c.reads, 1);
	assert_int_equal(loop_fd_mask(l, p[0]), 0);
	close(p[0]);
	loop_free(l);
}

static void
fd_new_handler(struct loop *l, int fd, void *arg)
{
	struct fctx *c = arg;

	c->new_calls++;
}

/*
 * Whichever of the two ready fds runs first removes and closes the other,
 * reuses its number for a new (idle) pipe, and removes itself. The other's
 * event is already in the batch: it must reach neither its old handler nor
 * the handler of the new fd that now has its number.
 */
static void
fd_batch_killer(struct loop *l, int fd, void *arg)
{
	struct fctx *c = arg;
	int other = fd == c->fd_a ? c->fd_b : c->fd_a;
	int p[2];

	c->calls++;
	loop_fd_del(l, other, LOOP_READ);
	close(other);
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(p[0], other); /* the lowest free number: the one just closed */
	c->new_fd = p[0];
	c->new_wr = p[1];
	assert_int_equal(loop_fd_add(l, p[0], LOOP_READ, fd_new_handler, c), 0);
	loop_fd_del(l, fd, LOOP_READ);
	if (other == c->fd_a)
		c->fd_a = -1;
	else
		c->fd_b = -1;
}

static void
test_fd_del_during_batch(void **state)
{
	struct loop *l = loop_new();
	struct fctx c;
	int pa[2], pb[2];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(pipe2(pa, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(pipe2(pb, O_CLOEXEC | O_NONBLOCK), 0);
	c.fd_a = pa[0];
	c.fd_b = pb[0];
	assert_int_equal(loop_fd_add(l, pa[0], LOOP_READ, fd_batch_killer, &c), 0);
	assert_int_equal(loop_fd_add(l, pb[0], LOOP_READ, fd_batch_killer, &c), 0);
	assert_int_equal(write(pa[1], "a", 1), 1);
	assert_int_equal(write(pb[1], "b", 1), 1);
	assert_int_equal(loop_run_once(l, 1000), 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.new_calls, 0);
	/* The new fd works normally once it has data. */
	assert_int_equal(write(c.new_wr, "n", 1), 1);
	assert_int_equal(loop_run_once(l, 1000), 0);
	assert_int_equal(c.new_calls, 1);
	loop_fd_del(l, c.new_fd, LOOP_READ);
	close(c.fd_a >= 0 ? c.fd_a : c.fd_b);
	close(c.new_fd);
	close(c.new_wr);
	close(pa[1]);
	close(pb[1]);
	loop_free(l);
}

/* A read handler that drops the fd's write side: the write handler must not run. */
static void
fd_read_drops_write(struct loop *l, int fd, void *arg)
{
	struct fctx *c = arg;

	c->reads++;
	trace_add(&c->tr, "r");
	loop_fd_del(l, fd, LOOP_WRITE);
}

static void
fd_write_trace(struct loop *l, int fd, void *arg)
{
	struct fctx *c = arg;

	c->writes++;
	trace_add(&c->tr, "w");
}

static void
test_fd_read_removes_write(void **state)
{
	struct loop *l = loop_new();
	struct fctx c;
	int sv[2];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(write(sv[1], "x", 1), 1);
	assert_int_equal(loop_fd_add(l, sv[0], LOOP_READ, fd_read_drops_write, &c), 0);
	assert_int_equal(loop_fd_add(l, sv[0], LOOP_WRITE, fd_write_trace, &c), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_string_equal(c.tr.s, "r");
	assert_int_equal(loop_fd_mask(l, sv[0]), LOOP_READ);
	loop_fd_del(l, sv[0], LOOP_READ);
	close(sv[0]);
	close(sv[1]);
	loop_free(l);
}

static void
test_fd_errors_and_growth(void **state)
{
	struct loop *l = loop_new();
	struct fctx c;
	char path[] = "/tmp/test_loop_XXXXXX";
	int file, p[2], hi;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(loop_fd_add(l, -1, LOOP_READ, fd_on_read, &c), -ERR_INVAL);
	assert_int_equal(loop_fd_add(l, 0, 0, fd_on_read, &c), -ERR_INVAL);
	assert_int_equal(loop_fd_add(l, 0, 4, fd_on_read, &c), -ERR_INVAL);
	assert_int_equal(loop_fd_add(l, 0, LOOP_READ, NULL, &c), -ERR_INVAL);
	/* epoll refuses regular files. */
	file = mkstemp(path);
	assert_true(file >= 0);
	unlink(path);
	assert_int_equal(loop_fd_add(l, file, LOOP_READ, fd_on_read, &c), -ERR_UNSUPPORTED);
	assert_int_equal(loop_fd_mask(l, file), 0);
	close(file);
	/* A closed fd. */
	assert_int_equal(loop_fd_add(l, file, LOOP_READ, fd_on_read, &c), -ERR_INVAL);
	assert_int_equal(loop_fd_mask(l, file), 0);
	/* A high fd grows the table. */
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	hi = fcntl(p[0], F_DUPFD_CLOEXEC, 700);
	assert_true(hi >= 700);
	assert_int_equal(loop_fd_add(l, hi, LOOP_READ, fd_on_read, &c), 0);
	assert_int_equal(loop_fd_mask(l, hi), LOOP_READ);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(loop_run_once(l, 1000), 0);
	assert_int_equal(c.reads, 1);
	loop_fd_del(l, hi, LOOP_READ);
	close(hi);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

static void
test_fd_closed_without_del(void **state)
{
	struct loop *l = loop_new();
	struct fctx c;
	int p[2], q[2];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(loop_fd_add(l, p[0], LOOP_READ, fd_on_read, &c), 0);
	/* A careless caller closes without loop_fd_del; the number is reused. */
	close(p[0]);
	close(p[1]);
	assert_int_equal(pipe2(q, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(q[0], p[0]);
	assert_int_equal(loop_fd_add(l, q[0], LOOP_READ, fd_on_read, &c), 0);
	assert_int_equal(write(q[1], "x", 1), 1);
	assert_int_equal(loop_run_once(l, 1000), 0);
	assert_int_equal(c.reads, 1);
	loop_fd_del(l, q[0], LOOP_READ);
	close(q[0]);
	close(q[1]);
	loop_free(l);
}

static void
test_sigpipe_ignored(void **state)
{
	struct loop *l = loop_new();
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	errno = 0;
	assert_int_equal(write(p[1], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(p[1]);
	loop_free(l);
}

/* ---- signals ---- */

struct sctx {
	struct loop *l;
	int seen[65];
	void *arg_seen;
	int del_other;
	int stop;
};

static void
sig_record(struct loop *l, int signo, void *arg)
{
	struct sctx *c = arg;

	c->seen[signo]++;
	c->arg_seen = arg;
	if (c->del_other)
		loop_signal_del(l, c->del_other);
	if (c->stop)
		loop_stop(l);
}

static int
is_blocked(int signo)
{
	sigset_t cur;

	sigprocmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, signo);
}

static void
test_signals(void **state)
{
	struct loop *l = loop_new();
	struct sctx c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_false(is_blocked(SIGUSR1));
	assert_int_equal(loop_signal_add(l, SIGUSR1, sig_record, &c), 0);
	assert_int_equal(loop_signal_add(l, SIGHUP, sig_record, &c), 0);
	assert_true(is_blocked(SIGUSR1));
	assert_true(is_blocked(SIGHUP));
	raise(SIGUSR1);
	raise(SIGHUP);
	assert_int_equal(loop_run_once(l, 1000), 0);
	assert_int_equal(c.seen[SIGUSR1], 1);
	assert_int_equal(c.seen[SIGHUP], 1);
	assert_ptr_equal(c.arg_seen, &c);
	/* Removing gives the signal back to the process. */
	loop_signal_del(l, SIGUSR1);
	assert_false(is_blocked(SIGUSR1));
	assert_true(is_blocked(SIGHUP));
	loop_signal_del(l, SIGUSR1);
	loop_free(l);
	assert_false(is_blocked(SIGHUP));
}

static void
test_signal_del_in_batch_and_drain(void **state)
{
	struct loop *l = loop_new();
	struct sctx c;

	(void)state;
	memset(&c, 0, sizeof(c));
	/* SIGHUP (1) is read before SIGUSR1 (10) and removes its handler. */
	c.del_other = SIGUSR1;
	assert_int_equal(loop_signal_add(l, SIGHUP, sig_record, &c), 0);
	assert_int_equal(loop_signal_add(l, SIGUSR1, sig_record, &c), 0);
	raise(SIGUSR1);
	raise(SIGHUP);
	assert_int_equal(loop_run_once(l, 1000), 0);
	assert_int_equal(c.seen[SIGHUP], 1);
	assert_int_equal(c.seen[SIGUSR1], 0);
	assert_false(is_blocked(SIGUSR1));
	/*
	 * A pending SIGUSR2 is discarded on removal; if it were delivered
	 * instead, its default action would kill this test.
	 */
	c.del_other = 0;
	assert_int_equal(loop_signal_add(l, SIGUSR2, sig_record, &c), 0);
	raise(SIGUSR2);
	loop_signal_del(l, SIGUSR2);
	assert_false(is_blocked(SIGUSR2));
	assert_int_equal(c.seen[SIGUSR2], 0);
	loop_free(l);
}

static void
test_signal_kept_blocked(void **state)
{
	struct loop *l = loop_new();
	struct sctx c;
	sigset_t one;

	(void)state;
	memset(&c, 0, sizeof(c));
	sigemptyset(&one);
	sigaddset(&one, SIGUSR2);
	sigprocmask(SIG_BLOCK, &one, NULL);
	assert_int_equal(loop_signal_add(l, SIGUSR2, sig_record, &c), 0);
	loop_signal_del(l, SIGUSR2);
	/* It was blocked before the loop took it, so it stays blocked. */
	assert_true(is_blocked(SIGUSR2));
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	assert_int_equal(loop_signal_add(l, SIGKILL, sig_record, &c), -ERR_INVAL);
	assert_int_equal(loop_signal_add(l, SIGSTOP, sig_record, &c), -ERR_INVAL);
	assert_int_equal(loop_signal_add(l, 0, sig_record, &c), -ERR_INVAL);
	assert_int_equal(loop_signal_add(l, 65, sig_record, &c), -ERR_INVAL);
	assert_int_equal(loop_signal_add(l, SIGUSR1, NULL, &c), -ERR_INVAL);
	assert_false(is_blocked(SIGUSR1));
	loop_signal_del(l, 0);
	loop_signal_del(l, 1000);
	loop_free(l);
}

static int64_t
timer_fail_stop(struct loop *l, uint64_t id, void *arg)
{
	*(int *)arg = 1;
	loop_stop(l);
	return LOOP_TIMER_DONE;
}

static void
test_sigterm_stops_loop(void **state)
{
	struct loop *l = loop_new();
	struct sctx c;
	int timed_out = 0;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.stop = 1;
	assert_int_equal(loop_signal_add(l, SIGTERM, sig_record, &c), 0);
	loop_timer_add(l, WAIT_MS_MAX, timer_fail_stop, &timed_out);
	raise(SIGTERM);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(timed_out, 0);
	assert_int_equal(c.seen[SIGTERM], 1);
	/* The request was consumed: the loop can run again. */
	assert_false(loop_stopped(l));
	loop_free(l);
	assert_false(is_blocked(SIGTERM));
}

/* ---- children ---- */

struct cctx {
	pid_t pid[4];
	int status[4];
	int n;
	int done;
	int want;
};

static void
child_record(struct loop *l, pid_t pid, int status, void *arg)
{
	struct cctx *c = arg;

	c->pid[c->n] = pid;
	c->status[c->n] = status;
	c->n++;
	if (c->n == c->want)
		c->done = 1;
}

static pid_t
spawn_exit(int code, int delay_ms)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (delay_ms)
			usleep((useconds_t)delay_ms * 1000);
		_exit(code);
	}
	return pid;
}

static void
check_children(int fallback)
{
	struct loop *l = loop_new();
	struct cctx c;
	pid_t a, b, bystander;
	int st;

	memset(&c, 0, sizeof(c));
	c.want = 2;
	a = spawn_exit(7, 150);
	/* b is a zombie before it is watched: still reported. */
	b = spawn_exit(3, 0);
	bystander = spawn_exit(9, 0);
	usleep(50000);
	assert_int_equal(loop_child_add(l, a, child_record, &c), 0);
	assert_int_equal(loop_child_add(l, a, child_record, &c), -ERR_EXIST);
	assert_int_equal(loop_child_add(l, b, child_record, &c), 0);
	assert_int_equal(is_blocked(SIGCHLD), fallback);
	run_until(l, &c.done);
	assert_int_equal(c.n, 2);
	for (int i = 0; i < 2; i++) {
		assert_true(WIFEXITED(c.status[i]));
		assert_int_equal(WEXITSTATUS(c.status[i]), c.pid[i] == a ? 7 : 3);
		assert_true(c.pid[i] == a || c.pid[i] == b);
	}
	assert_true(c.pid[0] != c.pid[1]);
	/* Reaped by the loop, and only those two. */
	assert_int_equal(waitpid(a, &st, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(waitpid(bystander, &st, 0), bystander);
	assert_int_equal(WEXITSTATUS(st), 9);
	assert_int_equal(loop_child_add(l, a, child_record, &c), -ERR_NOTFOUND);
	assert_int_equal(loop_child_add(l, 1, child_record, &c), -ERR_NOTFOUND);
	assert_int_equal(loop_child_add(l, 0, child_record, &c), -ERR_INVAL);
	assert_int_equal(loop_child_add(l, getpid(), NULL, &c), -ERR_INVAL);
	/* The SIGCHLD fallback gives SIGCHLD back once no child needs it. */
	assert_false(is_blocked(SIGCHLD));
	loop_free(l);
}

static void
test_child_exit(void **state)
{
	(void)state;
	check_children(0);
}

static void
test_child_exit_sigchld_fallback(void **state)
{
	(void)state;
#ifdef COREBOX_FAILPOINTS
	assert_int_equal(failpoint_configure("loop_pidfd_open_enosys=error"), 0);
	check_children(1);
	assert_true(failpoint_hits("loop_pidfd_open_enosys") >= 1);
	assert_int_equal(failpoint_configure(NULL), 0);
#else
	skip();
#endif
}

static void
test_child_unwatched_on_free(void **state)
{
	struct loop *l = loop_new();
	struct cctx c;
	pid_t pid;
	int st;

	(void)state;
	memset(&c, 0, sizeof(c));
	pid = spawn_exit(5, 100);
	assert_int_equal(loop_child_add(l, pid, child_record, &c), 0);
	loop_free(l);
	/* Not reaped by a freed loop: still ours to wait for. */
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(WEXITSTATUS(st), 5);
	assert_int_equal(c.n, 0);
}

static void
test_exec_prepare(void **state)
{
	struct loop *l = loop_new();
	struct sctx c;
	pid_t pid;
	int st;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(loop_signal_add(l, SIGUSR1, sig_record, &c), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sigaction sa;
		sigset_t cur;

		loop_exec_prepare();
		sigprocmask(SIG_BLOCK, NULL, &cur);
		sigaction(SIGPIPE, NULL, &sa);
		_exit(sigismember(&cur, SIGUSR1) == 0 && sa.sa_handler == SIG_DFL ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	loop_free(l);
}

/* ---- hooks, deferred calls, stop ---- */

struct hctx {
	struct loop *l;
	struct trace tr;
	int b1_calls, b2_calls;
};

static void hook_b3(struct loop *l, void *arg);
static void hook_b4(struct loop *l, void *arg);

static void
defer_d2(void *arg)
{
	trace_add(&((struct hctx *)arg)->tr, "D2");
}

static void
defer_d1(void *arg)
{
	struct hctx *c = arg;

	trace_add(&c->tr, "D1");
	/* Queued by a deferred call: runs next turn. */
	assert_int_equal(loop_defer(c->l, defer_d2, c), 0);
}

static void
defer_d0(void *arg)
{
	trace_add(&((struct hctx *)arg)->tr, "D0");
}

static void
hook_b1(struct loop *l, void *arg)
{
	struct hctx *c = arg;

	trace_add(&c->tr, "B1");
	/* Queued by a before-sleep hook: runs this turn, after the hooks. */
	if (c->b1_calls++ == 0)
		assert_int_equal(loop_defer(l, defer_d1, c), 0);
}

static void
hook_b2(struct loop *l, void *arg)
{
	struct hctx *c = arg;

	trace_add(&c->tr, "B2");
	if (c->b2_calls++ == 0) {
		loop_hook_del(l, LOOP_BEFORE_SLEEP, hook_b3, c);
		assert_int_equal(loop_hook_add(l, LOOP_BEFORE_SLEEP, hook_b4, c), 0);
	}
}

static void
hook_b3(struct loop *l, void *arg)
{
	trace_add(&((struct hctx *)arg)->tr, "B3");
}

static void
hook_b4(struct loop *l, void *arg)
{
	trace_add(&((struct hctx *)arg)->tr, "B4");
}

static void
hook_a1(struct loop *l, void *arg)
{
	trace_add(&((struct hctx *)arg)->tr, "A1");
}

static void
hook_a2(struct loop *l, void *arg)
{
	trace_add(&((struct hctx *)arg)->tr, "A2");
}

static void
test_hooks_and_defer_order(void **state)
{
	struct loop *l = loop_new();
	struct hctx c, other;

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(&other, 0, sizeof(other));
	c.l = l;
	assert_int_equal(loop_hook_add(l, LOOP_BEFORE_SLEEP, hook_b1, &c), 0);
	assert_int_equal(loop_hook_add(l, LOOP_BEFORE_SLEEP, hook_b2, &c), 0);
	assert_int_equal(loop_hook_add(l, LOOP_BEFORE_SLEEP, hook_b3, &c), 0);
	assert_int_equal(loop_hook_add(l, LOOP_AFTER_SLEEP, hook_a1, &c), 0);
	assert_int_equal(loop_hook_add(l, LOOP_AFTER_SLEEP, hook_a2, &c), 0);
	/* Same function, other arg: removing one must keep the other. */
	assert_int_equal(loop_hook_add(l, LOOP_AFTER_SLEEP, hook_a2, &other), 0);
	loop_hook_del(l, LOOP_AFTER_SLEEP, hook_a2, &other);
	loop_hook_del(l, LOOP_AFTER_SLEEP, hook_a2, &other);
	assert_int_equal(loop_defer(l, defer_d0, &c), 0);
	/* Deferred work pending: the wait must not block. */
	assert_int_equal(loop_run_once(l, -1), 0);
	assert_string_equal(c.tr.s, "B1 B2 D0 D1 A1 A2");
	c.tr.s[0] = '\0';
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_string_equal(c.tr.s, "B1 B2 B4 D2 A1 A2");
	c.tr.s[0] = '\0';
	loop_hook_del(l, LOOP_BEFORE_SLEEP, hook_b1, &c);
	loop_hook_del(l, LOOP_AFTER_SLEEP, hook_a1, &c);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_string_equal(c.tr.s, "B2 B4 A2");
	assert_string_equal(other.tr.s, "");
	assert_int_equal(loop_hook_add(l, 7, hook_a1, &c), -ERR_INVAL);
	assert_int_equal(loop_hook_add(l, LOOP_AFTER_SLEEP, NULL, &c), -ERR_INVAL);
	assert_int_equal(loop_defer(l, NULL, &c), -ERR_INVAL);
	loop_hook_del(l, 7, hook_a1, &c);
	loop_free(l);
}

struct dctx {
	struct loop *l;
	struct trace tr;
	int sv[2];
};

static void
defer_name(void *arg)
{
	const char **name = arg;

	trace_add((struct trace *)name[0], name[1]);
}

static const char *names[3][2];

static void
fd_queue_frees(struct loop *l, int fd, void *arg)
{
	struct dctx *c = arg;
	char b[8];

	assert_int_equal(read(fd, b, sizeof(b)), 1);
	trace_add(&c->tr, "fd");
	for (int i = 0; i < 3; i++)
		assert_int_equal(loop_defer(l, defer_name, names[i]), 0);
}

static void
hook_trace(struct loop *l, void *arg)
{
	trace_add(&((struct dctx *)arg)->tr, "hook");
}

static void
test_defer_free_order(void **state)
{
	struct loop *l = loop_new();
	struct dctx c;

	(void)state;
	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 3; i++) {
		names[i][0] = (const char *)&c.tr;
		names[i][1] = i == 0 ? "free1" : i == 1 ? "free2" : "free3";
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, c.sv), 0);
	assert_int_equal(loop_fd_add(l, c.sv[0], LOOP_READ, fd_queue_frees, &c), 0);
	assert_int_equal(loop_hook_add(l, LOOP_BEFORE_SLEEP, hook_trace, &c), 0);
	assert_int_equal(write(c.sv[1], "x", 1), 1);
	assert_int_equal(loop_run_once(l, 1000), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	/* Queued during dispatch; run next turn, after the hooks, in order. */
	assert_string_equal(c.tr.s, "hook fd hook free1 free2 free3");
	/* Still queued when the loop is freed: run then, so nothing leaks. */
	assert_int_equal(write(c.sv[1], "y", 1), 1);
	assert_int_equal(loop_run_once(l, 1000), 0);
	loop_fd_del(l, c.sv[0], LOOP_READ);
	c.tr.s[0] = '\0';
	loop_free(l);
	assert_string_equal(c.tr.s, "free1 free2 free3");
	close(c.sv[0]);
	close(c.sv[1]);
}

/* An object that frees itself through its embedded node, as a connection would. */
struct conn {
	struct loop_defer_node free_node;
	struct trace *tr;
	char name[8];
};

static void
conn_free(void *arg)
{
	struct conn *c = arg;

	trace_add(c->tr, c->name);
	mem_free(c);
}

static struct conn *
conn_new(struct trace *tr, const char *name)
{
	struct conn *c = mem_calloc(1, sizeof(*c));

	assert_non_null(c);
	c->tr = tr;
	snprintf(c->name, sizeof(c->name), "%s", name);
	return c;
}

static void
requeue_once(void *arg)
{
	struct loop_defer_node **ctx = arg;
	struct loop *l = (struct loop *)ctx[0];
	struct loop_defer_node *node = ctx[1];
	struct trace *tr = (struct trace *)ctx[2];

	trace_add(tr, "requeue");
	if (strcmp(tr->s, "requeue") == 0)
		loop_defer_at(l, node, requeue_once, arg);
}

static void
test_defer_at_cannot_fail(void **state)
{
	struct loop *l = loop_new();
	struct loop_defer_node node = LOOP_DEFER_NODE_INIT;
	struct trace tr;
	struct conn *a, *b;
	void *ctx[3];
	const char *words[2][2];

	(void)state;
	memset(&tr, 0, sizeof(tr));
	a = conn_new(&tr, "a");
	b = conn_new(&tr, "b");
	words[0][0] = (const char *)&tr;
	words[0][1] = "x";
	words[1][0] = (const char *)&tr;
	words[1][1] = "y";
	/* One queue: allocated and embedded calls keep their relative order. */
	assert_int_equal(loop_defer(l, defer_name, words[0]), 0);
	mem_fail_after(0);
	loop_defer_at(l, &a->free_node, conn_free, a);
	assert_int_equal(loop_defer(l, defer_name, words[1]), -ERR_NOMEM);
	mem_fail_reset();
	assert_int_equal(loop_defer(l, defer_name, words[1]), 0);
	loop_defer_at(l, &b->free_node, conn_free, b);
	/* Closing twice frees once. */
	loop_defer_at(l, &a->free_node, conn_free, a);
	loop_defer_at(l, &b->free_node, NULL, b);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_string_equal(tr.s, "x a y b");
	/* A node may be queued again by its own call: it runs next turn. */
	tr.s[0] = '\0';
	ctx[0] = l;
	ctx[1] = &node;
	ctx[2] = &tr;
	loop_defer_at(l, &node, requeue_once, ctx);
	assert_int_equal(loop_run_once(l, -1), 0);
	assert_string_equal(tr.s, "requeue");
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_string_equal(tr.s, "requeue requeue");
	/* Pending when the loop is freed: still run. */
	a = conn_new(&tr, "c");
	loop_defer_at(l, &a->free_node, conn_free, a);
	loop_free(l);
	assert_string_equal(tr.s, "requeue requeue c");
}

static int64_t
timer_stop_and_reenter(struct loop *l, uint64_t id, void *arg)
{
	int *rc = arg;

	rc[0] = loop_run_once(l, 0);
	rc[1] = loop_run(l);
	loop_stop(l);
	rc[2] = loop_stopped(l);
	return LOOP_TIMER_DONE;
}

static void
test_stop_from_callback(void **state)
{
	struct loop *l = loop_new();
	int rc[3] = { 0, 0, 0 };
	int calls = 0;

	(void)state;
	loop_timer_add(l, 1, timer_stop_and_reenter, rc);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(rc[0], -ERR_STATE);
	assert_int_equal(rc[1], -ERR_STATE);
	assert_int_equal(rc[2], 1);
	assert_false(loop_stopped(l));
	/* A stop asked for before loop_run is honoured at once. */
	loop_timer_add(l, 0, timer_count, &calls);
	loop_stop(l);
	assert_true(loop_stopped(l));
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(calls, 0);
	/* loop_run_once leaves the request alone and does not wait. */
	loop_stop(l);
	assert_int_equal(loop_run_once(l, -1), 0);
	assert_true(loop_stopped(l));
	assert_int_equal(calls, 1);
	loop_free(l);
}

/* ---- allocation failures ---- */

static void
test_alloc_failures(void **state)
{
	struct loop *l;
	struct fctx c;
	struct cctx cc;
	struct tctx tc;
	struct tone t[17];
	int p[2], hi, st;
	pid_t pid;

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(&cc, 0, sizeof(cc));
	memset(&tc, 0, sizeof(tc));
	mem_fail_after(0);
	assert_null(loop_new());
	mem_fail_reset();
	l = loop_new();
	assert_non_null(l);

	mem_fail_after(0);
	assert_int_equal(loop_timer_add(l, 0, timer_count, &c.calls), 0);
	assert_int_equal(loop_hook_add(l, LOOP_BEFORE_SLEEP, hook_b4, &c), -ERR_NOMEM);
	assert_int_equal(loop_defer(l, defer_d0, &c), -ERR_NOMEM);
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	hi = fcntl(p[0], F_DUPFD_CLOEXEC, 500);
	assert_true(hi >= 500);
	assert_int_equal(loop_fd_add(l, hi, LOOP_READ, fd_on_read, &c), -ERR_NOMEM);
	assert_int_equal(loop_fd_mask(l, hi), 0);
	pid = spawn_exit(4, 0);
	assert_int_equal(loop_child_add(l, pid, child_record, &cc), -ERR_NOMEM);
	mem_fail_reset();
	/* Nothing half-registered: the turn sees none of it. */
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(c.calls, 0);
	assert_int_equal(c.reads, 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);

	/* Timer table growth failing half-way keeps the timers that exist. */
	for (int i = 0; i < 16; i++) {
		t[i].c = &tc;
		t[i].tag = i;
		assert_true(loop_timer_add(l, 0, timer_record, &t[i]) != 0);
	}
	t[16].c = &tc;
	t[16].tag = 16;
	for (long n = 0; n < 3; n++) {
		uint64_t id;

		mem_fail_after(n);
		id = loop_timer_add(l, 0, timer_record, &t[16]);
		mem_fail_reset();
		if (id != 0)
			break;
		assert_true(n < 2);
	}
	while (tc.n < 17)
		assert_int_equal(loop_run_once(l, 100), 0);
	for (int i = 0; i < 17; i++)
		assert_int_equal(tc.order[i], i);

	/* After the failures, everything works. */
	assert_int_equal(loop_fd_add(l, hi, LOOP_READ, fd_on_read, &c), 0);
	assert_int_equal(loop_run_once(l, 1000), 0);
	assert_int_equal(c.reads, 1);
	loop_fd_del(l, hi, LOOP_READ);
	close(hi);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timer_order),
		cmocka_unit_test(test_timer_heap_many),
		cmocka_unit_test(test_timer_heap_remove_sifts_up),
		cmocka_unit_test(test_timer_reschedule),
		cmocka_unit_test(test_timer_zero_once_per_turn),
		cmocka_unit_test(test_timer_cancel_in_callback),
		cmocka_unit_test(test_timer_ids_not_reused),
		cmocka_unit_test(test_timer_bounds_wait),
		cmocka_unit_test(test_now_cached_per_turn),
		cmocka_unit_test(test_fd_read_write_separate),
		cmocka_unit_test(test_fd_hangup_wakes_reader),
		cmocka_unit_test(test_fd_del_during_batch),
		cmocka_unit_test(test_fd_read_removes_write),
		cmocka_unit_test(test_fd_errors_and_growth),
		cmocka_unit_test(test_fd_closed_without_del),
		cmocka_unit_test(test_sigpipe_ignored),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_signal_del_in_batch_and_drain),
		cmocka_unit_test(test_signal_kept_blocked),
		cmocka_unit_test(test_sigterm_stops_loop),
		cmocka_unit_test(test_child_exit),
		cmocka_unit_test(test_child_exit_sigchld_fallback),
		cmocka_unit_test(test_child_unwatched_on_free),
		cmocka_unit_test(test_exec_prepare),
		cmocka_unit_test(test_hooks_and_defer_order),
		cmocka_unit_test(test_defer_free_order),
		cmocka_unit_test(test_defer_at_cannot_fail),
		cmocka_unit_test(test_stop_from_callback),
		cmocka_unit_test(test_alloc_failures),
	};

	/* A loop bug tends to hang, not crash: die fast instead of at meson's timeout. */
	alarm(120);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
