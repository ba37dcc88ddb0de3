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
 */
#ifndef COREBOX_LOOP_H
#define COREBOX_LOOP_H

#include <stdint.h>
#include <sys/types.h>

struct loop;

enum {
	LOOP_READ = 1,
	LOOP_WRITE = 2,
};

/* Called when fd is readable (or writable); arg is the one given to loop_fd_add. */
typedef void loop_fd_fn(struct loop *l, int fd, void *arg);
/*
 * A timer callback returns LOOP_TIMER_DONE to end the timer, or the delay in
 * ms before it fires again.
 */
#define LOOP_TIMER_DONE (-1)
typedef int64_t loop_timer_fn(struct loop *l, uint64_t id, void *arg);
typedef void loop_signal_fn(struct loop *l, int signo, void *arg);
/* status is as from waitpid (WIFEXITED etc. apply). */
typedef void loop_child_fn(struct loop *l, pid_t pid, int status, void *arg);
typedef void loop_hook_fn(struct loop *l, void *arg);
typedef void loop_defer_fn(void *arg);

/* Returns NULL on failure. */
struct loop *loop_new(void);
/* Closes the loop's own fds and frees it; registered fds are not closed. */
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

/* Returns a timer id (never 0), or 0 on allocation failure. */
uint64_t loop_timer_add(struct loop *l, uint64_t delay_ms, loop_timer_fn *fn, void *arg);
/* Cancels a pending timer; unknown or fired ids are ignored. Returns 0 or -ERR_NOTFOUND. */
int loop_timer_del(struct loop *l, uint64_t id);

/*
 * Delivers signo through signalfd (the signal is blocked for the process).
 * One handler per signal. Returns 0 or -ERR_xxx.
 */
int loop_signal_add(struct loop *l, int signo, loop_signal_fn *fn, void *arg);
void loop_signal_del(struct loop *l, int signo);

/* Calls fn once when child pid exits (it is reaped by the loop). */
int loop_child_add(struct loop *l, pid_t pid, loop_child_fn *fn, void *arg);

enum loop_hook_kind {
	LOOP_BEFORE_SLEEP,
	LOOP_AFTER_SLEEP,
};
/*
 * Hooks run in the order they were added: the store adds WAL sync first,
 * then replies. Returns 0 or -ERR_NOMEM.
 */
int loop_hook_add(struct loop *l, enum loop_hook_kind kind, loop_hook_fn *fn, void *arg);
void loop_hook_del(struct loop *l, enum loop_hook_kind kind, loop_hook_fn *fn, void *arg);

/* Runs fn(arg) after the before-sleep hooks of the current or next turn. */
int loop_defer(struct loop *l, loop_defer_fn *fn, void *arg);

/* Runs until loop_stop(). Returns 0, or -ERR_xxx if epoll fails. */
int loop_run(struct loop *l);
/* Runs one turn: hooks, wait at most timeout_ms (-1 = until something happens), dispatch. */
int loop_run_once(struct loop *l, int timeout_ms);
void loop_stop(struct loop *l);
int loop_stopped(const struct loop *l);

/* Monotonic ms, cached at the start of each turn (after sleep). */
uint64_t loop_now_ms(const struct loop *l);
/* Fresh readings. */
uint64_t time_mono_ms(void);
uint64_t time_mono_us(void);
/* Wall-clock ms and ns since the Unix epoch. */
uint64_t time_real_ms(void);
uint64_t time_real_ns(void);

#endif
