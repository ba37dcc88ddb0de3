/*
 * Named failpoints for test builds: the table that FAILPOINT("name") looks
 * up, armed from the COREBOX_FAILPOINTS environment variable.
 *
 * It must never be compiled into a release build (everything here is inside
 * #ifdef COREBOX_FAILPOINTS) and never allocate, so a failpoint placed on an
 * out-of-memory path still works.
 *
 * The table is process-wide, lazily filled on first use: it mirrors the
 * process environment it comes from, and a failpoint sits deep inside code
 * (the WAL's sync, a snapshot write) that has no context to carry a table to.
 * A mutex guards it because a helper thread may reach a failpoint too.
 */
#ifdef COREBOX_FAILPOINTS

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "corebox/err.h"
#include "corebox/failpoint.h"
#include "corebox/log.h"

enum fp_action {
	FP_OFF,
	FP_ERROR,
	FP_PANIC,
	FP_EXIT,
	FP_KILL,
	FP_SLEEP,
};

/* Largest N in "N*action". */
#define FAILPOINT_COUNT_MAX 1000000000L

struct fp_entry {
	char name[FAILPOINT_NAME_BYTES_MAX];
	enum fp_action action;
	long sleep_ms;
	long remaining; /* fires left; -1 for always */
	long hits;
};

struct fp_table {
	struct fp_entry v[FAILPOINT_ENTRIES_MAX];
	int n;
};

static pthread_mutex_t fp_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;
static struct fp_table fp_armed;
static int fp_configured; /* set by failpoint_configure: the env is not read */

static int
name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
	    || c == '_' || c == '-' || c == '.';
}

/* Parses the decimal number in s[0..n) into *v, at most max. */
static int
parse_num(const char *s, size_t n, long max, long *v)
{
	long x = 0;

	if (n == 0)
		return -ERR_PARSE;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -ERR_PARSE;
		x = x * 10 + (s[i] - '0');
		if (x > max)
			return -ERR_RANGE;
	}
	*v = x;
	return 0;
}

static int
word_is(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && memcmp(s, w, n) == 0;
}

/* Parses "[N*]action" in s[0..n) into e. */
static int
parse_action(const char *s, size_t n, struct fp_entry *e)
{
	const char *star = memchr(s, '*', n);
	int r;

	e->remaining = -1;
	e->sleep_ms = 0;
	if (star != NULL) {
		if ((r = parse_num(s, (size_t)(star - s), FAILPOINT_COUNT_MAX, &e->remaining)) < 0)
			return r;
		if (e->remaining == 0)
			return -ERR_RANGE;
		n -= (size_t)(star - s) + 1;
		s = star + 1;
	}
	if (word_is(s, n, "off"))
		e->action = FP_OFF;
	else if (word_is(s, n, "error"))
		e->action = FP_ERROR;
	else if (word_is(s, n, "panic"))
		e->action = FP_PANIC;
	else if (word_is(s, n, "exit"))
		e->action = FP_EXIT;
	else if (word_is(s, n, "kill"))
		e->action = FP_KILL;
	else if (n > 7 && memcmp(s, "sleep(", 6) == 0 && s[n - 1] == ')') {
		e->action = FP_SLEEP;
		return parse_num(s + 6, n - 7, FAILPOINT_SLEEP_MS_MAX, &e->sleep_ms);
	} else
		return -ERR_PARSE;
	return 0;
}

static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

static int
parse_spec(const char *spec, struct fp_table *t)
{
	const char *p = spec;

	t->n = 0;
	while (p != NULL && *p) {
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		const char *name = p, *act;
		size_t name_len, act_len;
		struct fp_entry e;
		int i, r;

		p = end ? end + 1 : NULL;
		trim(&name, &len);
		if (len == 0)
			continue; /* "a=error;;b=error" and a trailing ';' are fine */
		if (eq == NULL)
			return -ERR_PARSE;
		name_len = (size_t)(eq - name);
		act = eq + 1;
		act_len = len - name_len - 1;
		trim(&name, &name_len);
		trim(&act, &act_len);
		if (name_len == 0)
			return -ERR_PARSE;
		if (name_len >= sizeof(e.name))
			return -ERR_LIMIT;
		for (size_t k = 0; k < name_len; k++)
			if (!name_char(name[k]))
				return -ERR_PARSE;
		memset(&e, 0, sizeof(e));
		memcpy(e.name, name, name_len);
		if ((r = parse_action(act, act_len, &e)) < 0)
			return r;
		/* A name given twice: the later entry wins. */
		for (i = 0; i < t->n; i++)
			if (strcmp(t->v[i].name, e.name) == 0)
				break;
		if (i == t->n) {
			if (t->n == FAILPOINT_ENTRIES_MAX)
				return -ERR_LIMIT;
			t->n++;
		}
		t->v[i] = e;
	}
	return 0;
}

static void
fp_init_env(void)
{
	static struct fp_table t; /* large: keep it off the stack */
	const char *spec;
	int r;

	pthread_mutex_lock(&fp_lock);
	if (fp_configured) {
		pthread_mutex_unlock(&fp_lock);
		return;
	}
	spec = getenv("COREBOX_FAILPOINTS");
	r = parse_spec(spec, &t);
	if (r == 0)
		fp_armed = t;
	pthread_mutex_unlock(&fp_lock);
	if (r < 0)
		log_fatal("failpoint", "bad COREBOX_FAILPOINTS", "spec=%s err=%s",
			log_q(spec), log_q(err_str(r)));
}

int
failpoint_configure(const char *spec)
{
	static struct fp_table t;
	int r;

	pthread_mutex_lock(&fp_lock);
	r = parse_spec(spec, &t);
	if (r == 0) {
		fp_armed = t;
		fp_configured = 1;
	}
	pthread_mutex_unlock(&fp_lock);
	return r;
}

static struct fp_entry *
fp_find(const char *name)
{
	for (int i = 0; i < fp_armed.n; i++)
		if (strcmp(fp_armed.v[i].name, name) == 0)
			return &fp_armed.v[i];
	return NULL;
}

long
failpoint_hits(const char *name)
{
	struct fp_entry *e;
	long hits = 0;

	pthread_once(&fp_once, fp_init_env);
	pthread_mutex_lock(&fp_lock);
	if ((e = fp_find(name)) != NULL)
		hits = e->hits;
	pthread_mutex_unlock(&fp_lock);
	return hits;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int
failpoint_eval(const char *name)
{
	enum fp_action action = FP_OFF;
	struct fp_entry *e;
	long ms = 0;

	pthread_once(&fp_once, fp_init_env);
	pthread_mutex_lock(&fp_lock);
	e = fp_find(name);
	if (e != NULL && e->action != FP_OFF && e->remaining != 0) {
		if (e->remaining > 0)
			e->remaining--;
		e->hits++;
		action = e->action;
		ms = e->sleep_ms;
	}
	pthread_mutex_unlock(&fp_lock);
	switch (action) {
	case FP_OFF:
		return 0;
	case FP_ERROR:
		log_info("failpoint", "failpoint triggered", "name=%s action=error", log_q(name));
		return 1;
	case FP_SLEEP:
		log_info("failpoint", "failpoint triggered", "name=%s action=sleep ms=%ld", log_q(name), ms);
		sleep_ms(ms);
		return 0;
	case FP_PANIC:
		log_error("failpoint", "failpoint triggered", "name=%s action=panic", log_q(name));
		abort();
	case FP_EXIT:
		log_error("failpoint", "failpoint triggered", "name=%s action=exit", log_q(name));
		_exit(1);
	case FP_KILL:
		log_error("failpoint", "failpoint triggered", "name=%s action=kill", log_q(name));
		kill(getpid(), SIGKILL);
		_exit(1); /* not reached: SIGKILL cannot be blocked */
	}
	return 0;
}

#else

/* ISO C wants at least one declaration in a translation unit. */
typedef int failpoint_disabled_;

#endif
