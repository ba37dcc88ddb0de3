/*
 * log: one line per event, key=value, to stderr.
 *
 *	2026-11-22T03:40:01.123456Z level=info pkg=etcdserver msg="published member" name=default
 *
 * Usage:
 *
 *	log_info("etcdserver", "published member", "name=%s id=%" PRIx64,
 *		log_q(name), id);
 *	log_warn("rafthttp", "peer unreachable", NULL);
 *
 * pkg is the component (a bare word), msg a fixed human sentence (quoted
 * automatically when it needs it), and the last argument a printf format for
 * the key=value tail, or NULL for none. The format is checked by the compiler.
 *
 * Values that may contain spaces, quotes, '=' or control characters (anything
 * a peer or user chose: keys, names, URLs, error strings) must be wrapped in
 * log_q(), which returns the value as is when it is a bare word and otherwise
 * a double-quoted copy with \" \\ \n \t \r and \xNN escapes. As a last line of
 * defence the logger escapes any control character left in the whole line,
 * so one event is always one line whatever the input.
 *
 * Lines longer than LOG_LINE_BYTES_MAX are cut and end in "..."; a value cut
 * by log_q ends in ...". Each line is written with a single fwrite and flushed.
 *
 * The level threshold and output stream are process-wide (the process has one
 * stderr); set them at start-up. The log_xxx macros do not evaluate their
 * arguments when the level is disabled.
 */
#ifndef COREBOX_LOG_H
#define COREBOX_LOG_H

#include <stddef.h>
#include <stdio.h>

/* Not LOG_INFO etc.: <syslog.h> defines those as macros. */
enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_NOTICE,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

/* A whole line, timestamp and newline included. */
#define LOG_LINE_BYTES_MAX 4096
/* Room log_q() gives one quoted value (on the caller's stack). */
#define LOG_QUOTE_BYTES 512

/* Events below level are dropped. The default is LOG_LEVEL_INFO. */
void log_set_level(int level);
int log_get_level(void);
/* 1 if an event at level would be written. */
int log_enabled(int level);
/*
 * Parses "debug", "info", "notice", "warn"/"warning" or "error" (any case).
 * Returns the level, or -ERR_INVAL.
 */
int log_level_parse(const char *s);
/* "debug" ... "error"; "unknown" for anything else. Static storage. */
const char *log_level_name(int level);

/*
 * Test hook: write to f instead of stderr (NULL restores stderr). The logger
 * does not own f; the caller closes it after restoring stderr.
 */
void log_set_output(FILE *f);

/*
 * Writes one event if level is enabled. pkg and msg are copied into the line
 * (NULL is written as "-"); fmt, if not NULL, is a printf format producing the
 * " key=value ..." tail (without the leading space).
 */
void log_msg(int level, const char *pkg, const char *msg, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Logs at error level and exits with status 1. For start-up and broken invariants. */
_Noreturn void log_fatal(const char *pkg, const char *msg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define fatal(...) log_fatal(__VA_ARGS__)

#define log_at_(level, pkg, msg, ...) \
	do { \
		if (log_enabled(level)) \
			log_msg((level), (pkg), (msg), __VA_ARGS__); \
	} while (0)
#define log_debug(pkg, msg, ...) log_at_(LOG_LEVEL_DEBUG, pkg, msg, __VA_ARGS__)
#define log_info(pkg, msg, ...) log_at_(LOG_LEVEL_INFO, pkg, msg, __VA_ARGS__)
#define log_notice(pkg, msg, ...) log_at_(LOG_LEVEL_NOTICE, pkg, msg, __VA_ARGS__)
#define log_warn(pkg, msg, ...) log_at_(LOG_LEVEL_WARN, pkg, msg, __VA_ARGS__)
#define log_error(pkg, msg, ...) log_at_(LOG_LEVEL_ERROR, pkg, msg, __VA_ARGS__)

/*
 * Writes s into out (cap bytes) as a logfmt value: s itself (when it is a
 * non-empty bare word with no space, quote, '=', backslash or control byte)
 * or a quoted, escaped copy, cut with ..." if it does not fit. The empty
 * string becomes "" and NULL the bare word null. Returns s, out or a string
 * literal, always NUL-terminated. cap must be at least 8 (else "" is returned).
 */
const char *log_quote(char *out, size_t cap, const char *s);
/*
 * log_quote into a buffer on the caller's stack that lives until the end of
 * the enclosing block, so it is valid for the whole log_xxx() call it appears
 * in. Use only inside a log_xxx argument list.
 */
#define log_q(s) log_quote((char[LOG_QUOTE_BYTES]){ 0 }, LOG_QUOTE_BYTES, (s))

#endif
