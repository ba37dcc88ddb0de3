/*
 * The one event loop (shaped like Redis's ae): epoll for fds with separate
 * read and write handlers, monotonic timers on a binary heap, signals through
 * signalfd, child exits through pidfd (or SIGCHLD and waitpid where the kernel
 * has no pidfd_open), before-sleep and after-sleep hooks and a deferred-call
 * queue.
 *
 * It must never block anywhere but in epoll_wait, never call a handler for an
 * fd, timer or signal that was removed earlier in the same turn, never free or
 * close anything its callers own, and never let a callback's additions or
 * removals corrupt the iteration that called it.
 *
 * One turn: before-sleep hooks, deferred calls, epoll_wait (bounded by the
 * nearest timer), after-sleep hooks, fd events (signals and child exits are
 * fd events too), then due timers.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "corebox/err.h"
#include "corebox/failpoint.h"
#include "corebox/loop.h"
#include "corebox/mem.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* same number on every architecture but alpha */
#endif

enum {
	/* epoll events taken per wait; more stay queued in the kernel. */
	LOOP_EVENTS_MAX = 256,
	LOOP_FD_TABLE_MIN = 64,
	LOOP_TIMERS_MIN = 16,
	/* Signal numbers 1 .. LOOP_SIGNALS_MAX - 1 (musl and glibc: 64). */
	LOOP_SIGNALS_MAX = 65,
	/* signalfd reads per readiness, so a signal storm cannot starve fds. */
	LOOP_SIGNAL_READS_MAX = 4,
};

/* Heap positions of timers that are not in the heap. */
#define TIMER_FREE UINT32_MAX
#define TIMER_RUNNING (UINT32_MAX - 1)
#define TIMER_NONE UINT32_MAX
/* Slots are 32-bit indexes; two values are reserved for the markers above. */
#define TIMER_SLOTS_MAX (UINT32_MAX - 2)

/* Who holds a signal blocked and in the signalfd mask. */
enum {
	SIG_HELD_USER = 1,
	SIG_HELD_CHILD = 2, /* the SIGCHLD fallback for child exits */
};

struct loop_fdent {
	loop_fd_fn *rfn;
	loop_fd_fn *wfn;
	void *arg;
	/*
	 * Bumped whenever the fd is forgotten. epoll events carry the value the
	 * fd was registered with, so an event queued for an fd that was removed
	 * (and maybe reused) earlier in the batch is recognised as stale.
	 */
	uint32_t gen;
	int mask;
};

struct loop_timer {
	uint64_t when_ms;
	uint64_t seq; /* insertion order: equal deadlines fire first-in first-out */
	loop_timer_fn *fn;
	void *arg;
	uint32_t gen; /* high half of the id, so a reused slot gets a new id */
	uint32_t pos; /* index in the heap, TIMER_FREE or TIMER_RUNNING */
	uint32_t next_free;
	int cancelled; /* deleted while its callback runs */
};

struct loop_hook {
	loop_hook_fn *fn;
	void *arg;
	int dead; /* removed while the list was being run */
};

struct loop_hooks {
	struct loop_hook *v;
	size_t n;
	size_t cap;
	size_t dead;
	int running;
};

struct loop_sig {
	loop_signal_fn *fn;
	void *arg;
	unsigned held; /* SIG_HELD_xxx bits */
	int was_blocked; /* blocked before the loop took it: stays blocked after */
};

struct loop_child {
	struct loop_child *next;
	struct loop_child *prev;
	pid_t pid;
	int pidfd; /* -1: waited for through SIGCHLD */
	loop_child_fn *fn;
	void *arg;
};

struct loop {
	int epfd;
	int sigfd;
	int stop;
	int running; /* inside loop_run_once: it is not reentrant */
	uint64_t now_ms;

	struct loop_fdent *fds;
	size_t fds_cap;

	struct loop_timer *timers;
	uint32_t timers_cap;
	uint32_t free_head;
	uint32_t *heap; /* slot indexes; heap_cap == timers_cap */
	uint32_t heap_len;
	uint64_t timer_seq;

	struct loop_hooks hooks[2];
	/* Deferred calls, first in first out; nodes are the callers' or owned. */
	struct loop_defer_node *defer_head;
	struct loop_defer_node *defer_tail;

	struct loop_sig sigs[LOOP_SIGNALS_MAX];
	sigset_t sigfd_mask;

	struct loop_child *children;
	size_t children_fallback; /* children waited for through SIGCHLD */
	int children_recheck; /* poll fallback children at the end of this turn */
	int no_pidfd; /* pidfd_open said ENOSYS once: do not ask again */

	struct epoll_event events[LOOP_EVENTS_MAX];
};

static int
err_from_errno(int e)
{
	switch (e) {
	case ENOMEM:
		return -ERR_NOMEM;
	case EMFILE:
	case ENFILE:
	case ENOSPC:
		return -ERR_LIMIT;
	case EBADF:
	case EINVAL:
		return -ERR_INVAL;
	case EPERM:
		return -ERR_UNSUPPORTED; /* epoll on a regular file */
	case EEXIST:
		return -ERR_EXIST;
	case ENOENT:
	case ESRCH:
	case ECHILD:
		return -ERR_NOTFOUND;
	default:
		return -ERR_IO;
	}
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t
time_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
time_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
time_real_ms(void)
{
	return time_real_ns() / 1000000u;
}

uint64_t
loop_now_ms(const struct loop *l)
{
	return l->now_ms;
}

/* ---- fds ---- */

static uint32_t
epoll_events_for(int mask)
{
	uint32_t ev = 0;

	if (mask & LOOP_READ)
		ev |= EPOLLIN;
	if (mask & LOOP_WRITE)
		ev |= EPOLLOUT;
	return ev;
}

static uint64_t
fd_token(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

static int
fd_table_grow(struct loop *l, int fd)
{
	size_t cap = l->fds_cap ? l->fds_cap : LOOP_FD_TABLE_MIN;
	struct loop_fdent *v;

	while (cap <= (size_t)fd)
		cap *= 2;
	if (cap > SIZE_MAX / sizeof(*v))
		return -ERR_NOMEM;
	v = mem_realloc(l->fds, cap * sizeof(*v));
	if (v == NULL)
		return -ERR_NOMEM;
	memset(v + l->fds_cap, 0, (cap - l->fds_cap) * sizeof(*v));
	l->fds = v;
	l->fds_cap = cap;
	return 0;
}

static void
fd_forget(struct loop_fdent *e)
{
	e->mask = 0;
	e->rfn = NULL;
	e->wfn = NULL;
	e->arg = NULL;
	e->gen++;
}

int
loop_fd_add(struct loop *l, int fd, int mask, loop_fd_fn *fn, void *arg)
{
	struct epoll_event ev;
	struct loop_fdent *e;
	int newmask, op, r;

	if (fd < 0 || fn == NULL || mask == 0 || (mask & ~(LOOP_READ | LOOP_WRITE)))
		return -ERR_INVAL;
	if ((size_t)fd >= l->fds_cap && (r = fd_table_grow(l, fd)) < 0)
		return r;
	e = &l->fds[fd];
	newmask = e->mask | mask;
	op = e->mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	memset(&ev, 0, sizeof(ev));
	ev.events = epoll_events_for(newmask);
	ev.data.u64 = fd_token(fd, e->gen);
	if (epoll_ctl(l->epfd, op, fd, &ev) < 0) {
		if (op == EPOLL_CTL_MOD && errno == ENOENT) {
			/*
			 * The fd was closed without loop_fd_del and its number
			 * reused: the old registration is gone, start afresh.
			 */
			fd_forget(e);
			newmask = mask;
			ev.events = epoll_events_for(newmask);
			ev.data.u64 = fd_token(fd, e->gen);
			if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
				return err_from_errno(errno);
		} else {
			return err_from_errno(errno);
		}
	}
	e->mask = newmask;
	if (mask & LOOP_READ)
		e->rfn = fn;
	if (mask & LOOP_WRITE)
		e->wfn = fn;
	e->arg = arg;
	return 0;
}

void
loop_fd_del(struct loop *l, int fd, int mask)
{
	struct epoll_event ev;
	struct loop_fdent *e;
	int newmask;

	if (fd < 0 || (size_t)fd >= l->fds_cap)
		return;
	e = &l->fds[fd];
	if (!(e->mask & mask))
		return;
	newmask = e->mask & ~mask;
	if (newmask == 0) {
		/* Errors mean the fd is closed already, which also removed it. */
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
		fd_forget(e);
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = epoll_events_for(newmask);
	ev.data.u64 = fd_token(fd, e->gen);
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
		/*
		 * Closed already (ENOENT/EBADF) or the kernel is short of
		 * memory: drop the fd entirely rather than leave it watched
		 * for a direction nobody handles, which would spin.
		 */
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
		fd_forget(e);
		return;
	}
	e->mask = newmask;
	if (!(newmask & LOOP_READ))
		e->rfn = NULL;
	if (!(newmask & LOOP_WRITE))
		e->wfn = NULL;
}

int
loop_fd_mask(struct loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->fds_cap)
		return 0;
	return l->fds[fd].mask;
}

/* The entry for a dispatch if fd is still watched for dir by the same registration. */
static struct loop_fdent *
fd_live(struct loop *l, int fd, uint32_t gen, int dir)
{
	struct loop_fdent *e;

	if (fd < 0 || (size_t)fd >= l->fds_cap)
		return NULL;
	e = &l->fds[fd];
	if (e->gen != gen || !(e->mask & dir))
		return NULL;
	return e;
}

static void
fds_dispatch(struct loop *l, int n)
{
	for (int i = 0; i < n; i++) {
		uint32_t evs = l->events[i].events;
		uint64_t tok = l->events[i].data.u64;
		int fd = (int)(uint32_t)tok;
		uint32_t gen = (uint32_t)(tok >> 32);
		struct loop_fdent *e;

		/* Errors and hang-ups wake both directions, as in ae. */
		if ((evs & (EPOLLIN | EPOLLERR | EPOLLHUP))
		    && (e = fd_live(l, fd, gen, LOOP_READ)) != NULL)
			e->rfn(l, fd, e->arg);
		/* Look again: the read handler may have changed anything. */
		if ((evs & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		    && (e = fd_live(l, fd, gen, LOOP_WRITE)) != NULL)
			e->wfn(l, fd, e->arg);
	}
}

/* ---- timers ---- */

static int
timer_before(const struct loop *l, uint32_t a, uint32_t b)
{
	const struct loop_timer *ta = &l->timers[a], *tb = &l->timers[b];

	if (ta->when_ms != tb->when_ms)
		return ta->when_ms < tb->when_ms;
	return ta->seq < tb->seq;
}

static void
heap_set(struct loop *l, uint32_t pos, uint32_t slot)
{
	l->heap[pos] = slot;
	l->timers[slot].pos = pos;
}

static void
heap_up(struct loop *l, uint32_t pos)
{
	uint32_t slot = l->heap[pos];

	while (pos > 0) {
		uint32_t parent = (pos - 1) / 2;

		if (!timer_before(l, slot, l->heap[parent]))
			break;
		heap_set(l, pos, l->heap[parent]);
		pos = parent;
	}
	heap_set(l, pos, slot);
}

static void
heap_down(struct loop *l, uint32_t pos)
{
	uint32_t slot = l->heap[pos];

	for (;;) {
		uint32_t c = 2 * pos + 1;

		if (c >= l->heap_len)
			break;
		if (c + 1 < l->heap_len && timer_before(l, l->heap[c + 1], l->heap[c]))
			c++;
		if (!timer_before(l, l->heap[c], slot))
			break;
		heap_set(l, pos, l->heap[c]);
		pos = c;
	}
	heap_set(l, pos, slot);
}

/* Room is guaranteed: the heap has a place for every slot. */
static void
heap_push(struct loop *l, uint32_t slot)
{
	l->heap[l->heap_len] = slot;
	l->timers[slot].pos = l->heap_len;
	l->heap_len++;
	heap_up(l, l->heap_len - 1);
}

static void
heap_remove(struct loop *l, uint32_t pos)
{
	uint32_t last = l->heap[--l->heap_len];

	if (pos == l->heap_len)
		return;
	heap_set(l, pos, last);
	if (pos > 0 && timer_before(l, last, l->heap[(pos - 1) / 2]))
		heap_up(l, pos);
	else
		heap_down(l, pos);
}

static int
timers_grow(struct loop *l)
{
	uint32_t cap = l->timers_cap ? l->timers_cap : LOOP_TIMERS_MIN;
	struct loop_timer *t;
	uint32_t *h;

	if (l->timers_cap) {
		if (l->timers_cap > TIMER_SLOTS_MAX / 2)
			return -ERR_LIMIT;
		cap = l->timers_cap * 2;
	}
	/* Heap first: a larger heap with the old slot count is still consistent. */
	h = mem_realloc(l->heap, (size_t)cap * sizeof(*h));
	if (h == NULL)
		return -ERR_NOMEM;
	l->heap = h;
	t = mem_realloc(l->timers, (size_t)cap * sizeof(*t));
	if (t == NULL)
		return -ERR_NOMEM;
	memset(t + l->timers_cap, 0, (size_t)(cap - l->timers_cap) * sizeof(*t));
	for (uint32_t i = cap; i > l->timers_cap; i--) {
		t[i - 1].pos = TIMER_FREE;
		t[i - 1].next_free = l->free_head;
		l->free_head = i - 1;
	}
	l->timers = t;
	l->timers_cap = cap;
	return 0;
}

static void
timer_slot_free(struct loop *l, uint32_t slot)
{
	struct loop_timer *t = &l->timers[slot];

	t->pos = TIMER_FREE;
	t->fn = NULL;
	t->arg = NULL;
	t->next_free = l->free_head;
	l->free_head = slot;
}

static uint64_t
timer_id(const struct loop *l, uint32_t slot)
{
	return (uint64_t)l->timers[slot].gen << 32 | slot;
}

uint64_t
loop_timer_add(struct loop *l, uint64_t delay_ms, loop_timer_fn *fn, void *arg)
{
	struct loop_timer *t;
	uint32_t slot;

	if (fn == NULL)
		return 0;
	if (l->free_head == TIMER_NONE && timers_grow(l) < 0)
		return 0;
	slot = l->free_head;
	t = &l->timers[slot];
	l->free_head = t->next_free;
	/* Never 0, so no id is 0. */
	if (++t->gen == 0)
		t->gen = 1;
	/* From a fresh reading, so a timeout never fires early. */
	t->when_ms = sat_add(time_mono_ms(), delay_ms);
	t->seq = ++l->timer_seq;
	t->fn = fn;
	t->arg = arg;
	t->cancelled = 0;
	heap_push(l, slot);
	return timer_id(l, slot);
}

int
loop_timer_del(struct loop *l, uint64_t id)
{
	uint32_t slot = (uint32_t)id;
	struct loop_timer *t;

	if (slot >= l->timers_cap)
		return -ERR_NOTFOUND;
	t = &l->timers[slot];
	if (t->pos == TIMER_FREE || t->gen != (uint32_t)(id >> 32) || t->cancelled)
		return -ERR_NOTFOUND;
	if (t->pos == TIMER_RUNNING) {
		/* Its callback is on the stack: timers_run frees the slot. */
		t->cancelled = 1;
		return 0;
	}
	heap_remove(l, t->pos);
	timer_slot_free(l, slot);
	return 0;
}

static void
timers_run(struct loop *l)
{
	/*
	 * Timers added or rescheduled by these callbacks wait for the next
	 * turn, or a timer returning 0 would spin here forever. They sort after
	 * every older timer due now, so stopping at the first new one is enough.
	 */
	uint64_t seq_last = l->timer_seq;

	while (l->heap_len > 0) {
		uint32_t slot = l->heap[0];
		struct loop_timer *t = &l->timers[slot];
		int64_t next;

		if (t->when_ms > l->now_ms || t->seq > seq_last)
			break;
		heap_remove(l, 0);
		t->pos = TIMER_RUNNING;
		next = t->fn(l, timer_id(l, slot), t->arg);
		t = &l->timers[slot]; /* the callback may have grown the table */
		if (t->cancelled || next < 0) {
			timer_slot_free(l, slot);
			continue;
		}
		t->when_ms = sat_add(time_mono_ms(), (uint64_t)next);
		t->seq = ++l->timer_seq;
		heap_push(l, slot);
	}
}

/* ---- hooks and deferred calls ---- */

int
loop_hook_add(struct loop *l, enum loop_hook_kind kind, loop_hook_fn *fn, void *arg)
{
	struct loop_hooks *hs;

	if ((kind != LOOP_BEFORE_SLEEP && kind != LOOP_AFTER_SLEEP) || fn == NULL)
		return -ERR_INVAL;
	hs = &l->hooks[kind];
	if (hs->n == hs->cap) {
		size_t cap = hs->cap ? hs->cap * 2 : 8;
		struct loop_hook *v = mem_realloc(hs->v, cap * sizeof(*v));

		if (v == NULL)
			return -ERR_NOMEM;
		hs->v = v;
		hs->cap = cap;
	}
	hs->v[hs->n].fn = fn;
	hs->v[hs->n].arg = arg;
	hs->v[hs->n].dead = 0;
	hs->n++;
	return 0;
}

static void
hooks_compact(struct loop_hooks *hs)
{
	size_t j = 0;

	for (size_t i = 0; i < hs->n; i++)
		if (!hs->v[i].dead)
			hs->v[j++] = hs->v[i];
	hs->n = j;
	hs->dead = 0;
}

void
loop_hook_del(struct loop *l, enum loop_hook_kind kind, loop_hook_fn *fn, void *arg)
{
	struct loop_hooks *hs;

	if (kind != LOOP_BEFORE_SLEEP && kind != LOOP_AFTER_SLEEP)
		return;
	hs = &l->hooks[kind];
	for (size_t i = 0; i < hs->n; i++) {
		if (hs->v[i].dead || hs->v[i].fn != fn || hs->v[i].arg != arg)
			continue;
		hs->v[i].dead = 1;
		hs->dead++;
		/* While the list runs, indexes must stay put: compact afterwards. */
		if (!hs->running)
			hooks_compact(hs);
		return;
	}
}

static void
hooks_run(struct loop *l, enum loop_hook_kind kind)
{
	struct loop_hooks *hs = &l->hooks[kind];
	/* Hooks added by these hooks first run next turn. */
	size_t n = hs->n;

	hs->running = 1;
	for (size_t i = 0; i < n; i++) {
		/* Indexes, not pointers: a hook_add may move the array. */
		if (!hs->v[i].dead)
			hs->v[i].fn(l, hs->v[i].arg);
	}
	hs->running = 0;
	if (hs->dead)
		hooks_compact(hs);
}

static void
defer_push(struct loop *l, struct loop_defer_node *node, loop_defer_fn *fn, void *arg)
{
	node->next = NULL;
	node->fn = fn;
	node->arg = arg;
	node->pending = 1;
	if (l->defer_tail)
		l->defer_tail->next = node;
	else
		l->defer_head = node;
	l->defer_tail = node;
}

int
loop_defer(struct loop *l, loop_defer_fn *fn, void *arg)
{
	struct loop_defer_node *node;

	if (fn == NULL)
		return -ERR_INVAL;
	node = mem_alloc(sizeof(*node));
	if (node == NULL)
		return -ERR_NOMEM;
	node->owned = 1;
	defer_push(l, node, fn, arg);
	return 0;
}

void
loop_defer_at(struct loop *l, struct loop_defer_node *node, loop_defer_fn *fn, void *arg)
{
	if (node->pending || fn == NULL)
		return;
	node->owned = 0;
	defer_push(l, node, fn, arg);
}

static void
defers_run(struct loop *l)
{
	struct loop_defer_node *node = l->defer_head;

	/* Detach the queue so calls queued from here land in the next turn. */
	l->defer_head = l->defer_tail = NULL;
	while (node != NULL) {
		struct loop_defer_node *next = node->next;
		loop_defer_fn *fn = node->fn;
		void *arg = node->arg;

		/* Done with the node before fn runs: fn usually frees it. */
		node->pending = 0;
		if (node->owned)
			mem_free(node);
		fn(arg);
		node = next;
	}
}

/* ---- signals ---- */

static void signals_read(struct loop *l, int fd, void *arg);

static int
sig_valid(int signo)
{
	return signo > 0 && signo < LOOP_SIGNALS_MAX && signo != SIGKILL && signo != SIGSTOP;
}

/* Takes signo into the signalfd for holder (SIG_HELD_xxx). */
static int
sig_hold(struct loop *l, int signo, unsigned holder)
{
	struct loop_sig *s = &l->sigs[signo];
	sigset_t one, old, mask;
	int r;

	if (s->held) {
		s->held |= holder;
		return 0;
	}
	sigemptyset(&one);
	sigaddset(&one, signo);
	/* Block first: a signal arriving before the signalfd knows it stays pending. */
	if (sigprocmask(SIG_BLOCK, &one, &old) < 0)
		return err_from_errno(errno);
	mask = l->sigfd_mask;
	sigaddset(&mask, signo);
	if (l->sigfd < 0) {
		int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

		if (fd < 0) {
			r = err_from_errno(errno);
			goto unblock;
		}
		if ((r = loop_fd_add(l, fd, LOOP_READ, signals_read, NULL)) < 0) {
			close(fd);
			goto unblock;
		}
		l->sigfd = fd;
	} else if (signalfd(l->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC) < 0) {
		r = err_from_errno(errno);
		goto unblock;
	}
	l->sigfd_mask = mask;
	s->was_blocked = sigismember(&old, signo) == 1;
	s->held = holder;
	return 0;
unblock:
	if (sigismember(&old, signo) != 1)
		sigprocmask(SIG_UNBLOCK, &one, NULL);
	return r;
}

/* Gives signo back to the process when its last holder lets go. */
static void
sig_release(struct loop *l, int signo, unsigned holder)
{
	struct loop_sig *s = &l->sigs[signo];
	struct timespec zero = { 0, 0 };
	sigset_t one;

	if (!(s->held & holder))
		return;
	s->held &= ~holder;
	if (s->held)
		return;
	sigdelset(&l->sigfd_mask, signo);
	if (l->sigfd >= 0)
		signalfd(l->sigfd, &l->sigfd_mask, SFD_NONBLOCK | SFD_CLOEXEC);
	sigemptyset(&one);
	sigaddset(&one, signo);
	/*
	 * Discard what arrived while the loop held it: unblocking a pending
	 * SIGTERM would kill the process for a signal the loop had accepted.
	 */
	while (sigtimedwait(&one, NULL, &zero) == signo)
		;
	if (!s->was_blocked)
		sigprocmask(SIG_UNBLOCK, &one, NULL);
}

int
loop_signal_add(struct loop *l, int signo, loop_signal_fn *fn, void *arg)
{
	int r;

	if (!sig_valid(signo) || fn == NULL)
		return -ERR_INVAL;
	if ((r = sig_hold(l, signo, SIG_HELD_USER)) < 0)
		return r;
	l->sigs[signo].fn = fn;
	l->sigs[signo].arg = arg;
	return 0;
}

void
loop_signal_del(struct loop *l, int signo)
{
	if (!sig_valid(signo))
		return;
	sig_release(l, signo, SIG_HELD_USER);
	l->sigs[signo].fn = NULL;
	l->sigs[signo].arg = NULL;
}

static void
signals_read(struct loop *l, int fd, void *arg)
{
	struct signalfd_siginfo si[16];

	for (int rounds = 0; rounds < LOOP_SIGNAL_READS_MAX; rounds++) {
		ssize_t n = read(fd, si, sizeof(si));

		if (n <= 0)
			break;
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
			int signo = (int)si[i].ssi_signo;
			struct loop_sig *s;

			if (signo <= 0 || signo >= LOOP_SIGNALS_MAX)
				continue;
			s = &l->sigs[signo];
			if (s->held & SIG_HELD_CHILD)
				l->children_recheck = 1;
			/* Checked per signal: a handler may remove another. */
			if ((s->held & SIG_HELD_USER) && s->fn != NULL)
				s->fn(l, signo, s->arg);
		}
		if ((size_t)n < sizeof(si))
			break;
	}
}

/* ---- children ---- */

static void
child_unlink(struct loop *l, struct loop_child *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		l->children = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

/* Forgets c, then reports its exit; c is gone before the callback runs. */
static void
child_finish(struct loop *l, struct loop_child *c, int status)
{
	loop_child_fn *fn = c->fn;
	void *arg = c->arg;
	pid_t pid = c->pid;

	child_unlink(l, c);
	if (c->pidfd >= 0) {
		loop_fd_del(l, c->pidfd, LOOP_READ);
		close(c->pidfd);
	} else if (--l->children_fallback == 0) {
		sig_release(l, SIGCHLD, SIG_HELD_CHILD);
	}
	mem_free(c);
	fn(l, pid, status, arg);
}

/* waitpid without blocking: 1 and *status if pid is gone, 0 if it still runs. */
static int
child_reap(pid_t pid, int *status)
{
	pid_t r;

	do
		r = waitpid(pid, status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return 0;
	if (r < 0)
		*status = -1; /* reaped by someone else (ECHILD) */
	return 1;
}

static void
child_pidfd_ready(struct loop *l, int fd, void *arg)
{
	struct loop_child *c = arg;
	int status;

	if (child_reap(c->pid, &status))
		child_finish(l, c, status);
}

static void
children_poll(struct loop *l)
{
	struct loop_child *c;
	int status;

	l->children_recheck = 0;
again:
	for (c = l->children; c != NULL; c = c->next) {
		if (c->pidfd >= 0 || !child_reap(c->pid, &status))
			continue;
		child_finish(l, c, status);
		/* The callback may have changed the list: walk it again. */
		goto again;
	}
}

static int
pidfd_open(pid_t pid)
{
	if (FAILPOINT("loop_pidfd_open_enosys")) {
		errno = ENOSYS;
		return -1;
	}
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int
loop_child_add(struct loop *l, pid_t pid, loop_child_fn *fn, void *arg)
{
	struct loop_child *c;
	siginfo_t si;
	int r;

	if (pid <= 0 || fn == NULL)
		return -ERR_INVAL;
	/* Only a child that has not been reaped can ever be reported. */
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return err_from_errno(errno);
	for (c = l->children; c != NULL; c = c->next)
		if (c->pid == pid)
			return -ERR_EXIST;
	c = mem_calloc(1, sizeof(*c));
	if (c == NULL)
		return -ERR_NOMEM;
	c->pid = pid;
	c->fn = fn;
	c->arg = arg;
	c->pidfd = -1;
	if (!l->no_pidfd) {
		c->pidfd = pidfd_open(pid);
		if (c->pidfd < 0 && errno != ENOSYS) {
			r = err_from_errno(errno);
			mem_free(c);
			return r;
		}
		if (c->pidfd < 0)
			l->no_pidfd = 1;
	}
	if (c->pidfd >= 0) {
		if ((r = loop_fd_add(l, c->pidfd, LOOP_READ, child_pidfd_ready, c)) < 0) {
			close(c->pidfd);
			mem_free(c);
			return r;
		}
	} else {
		if ((r = sig_hold(l, SIGCHLD, SIG_HELD_CHILD)) < 0) {
			mem_free(c);
			return r;
		}
		l->children_fallback++;
		/* It may have exited before SIGCHLD was blocked: look once. */
		l->children_recheck = 1;
	}
	c->next = l->children;
	if (c->next)
		c->next->prev = c;
	l->children = c;
	return 0;
}

/* ---- the loop ---- */

struct loop *
loop_new(void)
{
	struct sigaction sa;
	struct loop *l;

	l = mem_calloc(1, sizeof(*l));
	if (l == NULL)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		mem_free(l);
		return NULL;
	}
	l->sigfd = -1;
	l->free_head = TIMER_NONE;
	sigemptyset(&l->sigfd_mask);
	l->now_ms = time_mono_ms();
	/* A write to a closed socket must return EPIPE, not kill the process. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	return l;
}

void
loop_free(struct loop *l)
{
	struct loop_child *c, *next;

	if (l == NULL)
		return;
	/* Deferred calls are how callers free things: they must not leak. */
	while (l->defer_head != NULL)
		defers_run(l);
	for (c = l->children; c != NULL; c = next) {
		next = c->next;
		if (c->pidfd >= 0)
			close(c->pidfd);
		mem_free(c);
	}
	for (int signo = 1; signo < LOOP_SIGNALS_MAX; signo++)
		sig_release(l, signo, SIG_HELD_USER | SIG_HELD_CHILD);
	if (l->sigfd >= 0)
		close(l->sigfd);
	close(l->epfd);
	mem_free(l->fds);
	mem_free(l->timers);
	mem_free(l->heap);
	mem_free(l->hooks[0].v);
	mem_free(l->hooks[1].v);
	mem_free(l);
}

static int
wait_timeout(struct loop *l, int timeout_ms)
{
	if (l->stop || l->defer_head != NULL || l->children_recheck)
		return 0;
	if (timeout_ms < 0)
		timeout_ms = -1;
	if (l->heap_len > 0) {
		uint64_t now = time_mono_ms();
		uint64_t when = l->timers[l->heap[0]].when_ms;
		uint64_t d = when > now ? when - now : 0;

		if (d > INT_MAX)
			d = INT_MAX;
		if (timeout_ms < 0 || d < (uint64_t)timeout_ms)
			timeout_ms = (int)d;
	}
	return timeout_ms;
}

int
loop_run_once(struct loop *l, int timeout_ms)
{
	int n;

	if (l->running)
		return -ERR_STATE;
	l->running = 1;
	hooks_run(l, LOOP_BEFORE_SLEEP);
	defers_run(l);
	n = epoll_wait(l->epfd, l->events, LOOP_EVENTS_MAX, wait_timeout(l, timeout_ms));
	if (n < 0) {
		if (errno != EINTR) {
			int r = err_from_errno(errno);

			l->running = 0;
			return r == -ERR_NOTFOUND ? -ERR_IO : r;
		}
		n = 0;
	}
	l->now_ms = time_mono_ms();
	hooks_run(l, LOOP_AFTER_SLEEP);
	fds_dispatch(l, n);
	if (l->children_recheck)
		children_poll(l);
	timers_run(l);
	l->running = 0;
	return 0;
}

int
loop_run(struct loop *l)
{
	int r;

	while (!l->stop) {
		if ((r = loop_run_once(l, -1)) < 0)
			return r;
	}
	/* Consumed, so the loop can be run again. */
	l->stop = 0;
	return 0;
}

void
loop_stop(struct loop *l)
{
	l->stop = 1;
}

int
loop_stopped(const struct loop *l)
{
	return l->stop;
}

void
loop_exec_prepare(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}
