/*
 * loop: the one event loop every role runs on (shaped like Redis's ae).
 *
 * epoll for fds with separate read and write handlers, monotonic timers on a
 * heap, signals through signalfd, child exits through pidfd, before-sleep and
 * after-sleep hooks, and a deferred-free queue. Nothing else in corebox waits.
 *
 * Callbacks may add or remove any fd, timer or hook, including their own.
 * Nothing may be freed from inside its own callback: use loop_defer(), whose
 * functions run at the end of the next before-sleep phase, after the hooks.
 *
 * One turn (loop_run_once): before-sleep hooks; deferred calls; epoll_wait,
 * bounded by the nearest timer (no wait at all if a stop, a deferred call or
 * a child check is pending); loop_now_ms is refreshed; after-sleep hooks; fd
 * events (signals and child exits arrive as fd events); timers that are due.
 * A handler removed earlier in the same turn is never called, even if its
 * event was already fetched. The loop owns none of the args it is given and
 * never closes a caller's fd. Single-threaded: call it only from the thread
 * that runs it. Signal masks are per process, so one loop per process should
 * take a given signal.
 */
#ifndef COREBOX_LOOP_H
#define COREBOX_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;

enum {
	LOOP_READ = 1,
	LOOP_WRITE = 2,
};

/*
 * Called when fd is readable (or writable); arg is the one given to loop_fd_add.
 * An error or hang-up on fd calls both handlers that are registered; read
 * first, then write (if it is still registered). Level-triggered.
 */
typedef void loop_fd_fn(struct loop *l, int fd, void *arg);
/*
 * A timer callback returns LOOP_TIMER_DONE (or any negative value) to end the
 * timer, or the delay in ms, counted from its return, before it fires again
 * under the same id. A timer deleted by its own callback ends whatever the
 * callback returns. Timers due at the same ms fire in the order they were
 * added (or last rescheduled); a timer added or rescheduled by a timer
 * callback does not fire before the next turn.
 */
#define LOOP_TIMER_DONE (-1)
typedef int64_t loop_timer_fn(struct loop *l, uint64_t id, void *arg);
typedef void loop_signal_fn(struct loop *l, int signo, void *arg);
/* status is as from waitpid (WIFEXITED etc. apply); -1 if the child was reaped outside the loop. */
typedef void loop_child_fn(struct loop *l, pid_t pid, int status, void *arg);
typedef void loop_hook_fn(struct loop *l, void *arg);
typedef void loop_defer_fn(void *arg);

/* Returns NULL on failure. */
struct loop *loop_new(void);
/*
 * Runs the deferred calls still queued (so nothing they free leaks), closes the
 * loop's own fds, gives its signals back (unblocked unless they were blocked
 * before loop_signal_add) and frees it. Registered fds are not closed. Never
 * call it from one of its callbacks. loop_new also sets SIGPIPE to SIG_IGN for
 * the process, so writes to a closed socket fail with EPIPE.
 */
void loop_free(struct loop *l);

/*
 * Watches fd for mask (LOOP_READ and/or LOOP_WRITE) with fn. The handler for
 * each direction is kept separately; arg is per fd (the last one given wins).
 * Returns 0 or -ERR_xxx.
 */
int loop_fd_add(struct loop *l, int fd, int mask, loop_fd_fn *fn, void *arg);
/* Stops watching the directions in mask; removing the last one forgets fd. */
void loop_fd_del(struct loop *l, int fd, int mask);
/* The directions fd is watched for (0 if none). */
int loop_fd_mask(struct loop *l, int fd);

/*
 * Returns a timer id (never 0), or 0 on allocation failure or a NULL fn. The
 * deadline counts from now (a fresh clock reading, not loop_now_ms), so a
 * timeout never fires early.
 */
uint64_t loop_timer_add(struct loop *l, uint64_t delay_ms, loop_timer_fn *fn, void *arg);
/*
 * Cancels a pending timer, or the running one from inside any callback,
 * including its own. Unknown or fired ids change nothing and return
 * -ERR_NOTFOUND; otherwise returns 0.
 */
int loop_timer_del(struct loop *l, uint64_t id);

/*
 * Delivers signo through signalfd (the signal is blocked for the process).
 * One handler per signal (adding again replaces it). SIGKILL, SIGSTOP and
 * numbers outside 1..64 give -ERR_INVAL. Returns 0 or -ERR_xxx.
 */
int loop_signal_add(struct loop *l, int signo, loop_signal_fn *fn, void *arg);
void loop_signal_del(struct loop *l, int signo);

/*
 * Calls fn once when child pid exits (it is reaped by the loop). Uses a pidfd;
 * on kernels without pidfd_open, SIGCHLD (taken through the signalfd while
 * such children exist) and waitpid(pid, WNOHANG). Only pid is reaped, never
 * another child. Returns 0, -ERR_INVAL, -ERR_NOTFOUND (not an unreaped child
 * of this process), -ERR_EXIST (already watched) or -ERR_xxx.
 */
int loop_child_add(struct loop *l, pid_t pid, loop_child_fn *fn, void *arg);

enum loop_hook_kind {
	LOOP_BEFORE_SLEEP,
	LOOP_AFTER_SLEEP,
};
/*
 * Hooks run in the order they were added: the store adds WAL sync first,
 * then replies. A hook added while hooks run first runs in the next turn; a
 * hook removed while they run is not called again, even later in the same
 * run. Returns 0, -ERR_INVAL or -ERR_NOMEM.
 */
int loop_hook_add(struct loop *l, enum loop_hook_kind kind, loop_hook_fn *fn, void *arg);
void loop_hook_del(struct loop *l, enum loop_hook_kind kind, loop_hook_fn *fn, void *arg);

/*
 * Runs fn(arg) after the before-sleep hooks of the current or next turn, in
 * the order queued. Calls queued by a deferred call run in the next turn.
 * Returns 0, -ERR_INVAL (NULL fn) or -ERR_NOMEM (fn will not be called).
 */
int loop_defer(struct loop *l, loop_defer_fn *fn, void *arg);

/*
 * A deferred call that cannot fail, for paths that must not (freeing a
 * connection): embed the node in the object fn frees. The fields are the
 * loop's; zero the node (or use LOOP_DEFER_NODE_INIT) before its first use.
 */
struct loop_defer_node {
	struct loop_defer_node *next;
	loop_defer_fn *fn;
	void *arg;
	int pending;
	int owned;
};
#define LOOP_DEFER_NODE_INIT { NULL, NULL, NULL, 0, 0 }
/*
 * Like loop_defer, in the same queue and order, without allocating. The node
 * must stay valid until fn runs; the loop is done with it before calling fn,
 * so fn may free it or queue it again. While the node is queued, further calls
 * change nothing (closing twice frees once). A NULL fn is ignored.
 */
void loop_defer_at(struct loop *l, struct loop_defer_node *node, loop_defer_fn *fn, void *arg);

/*
 * Runs turns until loop_stop() (returning at the end of the turn it was called
 * in, or at once if it was called before). It clears the stop request as it
 * returns, so the loop can be run again. Returns 0, -ERR_STATE if called from
 * a callback, or -ERR_xxx if epoll fails.
 */
int loop_run(struct loop *l);
/*
 * Runs one turn: hooks, wait at most timeout_ms (-1 = until something happens),
 * dispatch. Returns 0, -ERR_STATE if called from one of the loop's callbacks,
 * or -ERR_xxx if epoll fails. The stop request is left as it is.
 */
int loop_run_once(struct loop *l, int timeout_ms);
/* Asks loop_run to return; callable from any callback, signal handlers included. */
void loop_stop(struct loop *l);
/* 1 while a stop request is pending. */
int loop_stopped(const struct loop *l);

/*
 * For a forked child before exec: empties the signal mask and restores
 * SIGPIPE's default, so the program starts as it would from a shell.
 * Async-signal-safe.
 */
void loop_exec_prepare(void);

/* Monotonic ms, cached at the start of each turn (after sleep). */
uint64_t loop_now_ms(const struct loop *l);
/* Fresh readings. */
uint64_t time_mono_ms(void);
uint64_t time_mono_us(void);
/* Wall-clock ms and ns since the Unix epoch. */
uint64_t time_real_ms(void);
uint64_t time_real_ns(void);

#endif
