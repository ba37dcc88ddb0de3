/*
 * The logger: one key=value line per event on stderr, with an RFC 3339 UTC
 * timestamp in microseconds.
 *
 * It must never write more than one line per event (control bytes in any
 * input are escaped), never allocate, and never fail loudly: a log line that
 * cannot be written is dropped.
 *
 * The level and output stream are file-scope state on purpose: the process
 * has one stderr, and passing a logger through every function would buy
 * nothing. They are set at start-up (or by tests) and only read afterwards.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "corebox/err.h"
#include "corebox/log.h"

static int log_level = LOG_LEVEL_INFO;
static FILE *log_out; /* NULL: stderr (not a constant initialiser) */

static const char *const level_names[] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_NOTICE] = "notice",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

void
log_set_level(int level)
{
	if (level < LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_DEBUG;
	if (level > LOG_LEVEL_ERROR)
		level = LOG_LEVEL_ERROR;
	log_level = level;
}

int
log_get_level(void)
{
	return log_level;
}

int
log_enabled(int level)
{
	return level >= log_level;
}

int
log_level_parse(const char *s)
{
	if (s == NULL)
		return -ERR_INVAL;
	for (int i = LOG_LEVEL_DEBUG; i <= LOG_LEVEL_ERROR; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	if (strcasecmp(s, "warning") == 0)
		return LOG_LEVEL_WARN;
	return -ERR_INVAL;
}

const char *
log_level_name(int level)
{
	if (level < LOG_LEVEL_DEBUG || level > LOG_LEVEL_ERROR)
		return "unknown";
	return level_names[level];
}

void
log_set_output(FILE *f)
{
	log_out = f;
}

static int
is_bare(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
			return 0;
	}
	return 1;
}

/* The escape for c (at most 4 bytes plus NUL) into esc; returns its length. */
static size_t
escape_byte(unsigned char c, char esc[5])
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '"':
		memcpy(esc, "\\\"", 3);
		return 2;
	case '\\':
		memcpy(esc, "\\\\", 3);
		return 2;
	case '\n':
		memcpy(esc, "\\n", 3);
		return 2;
	case '\r':
		memcpy(esc, "\\r", 3);
		return 2;
	case '\t':
		memcpy(esc, "\\t", 3);
		return 2;
	default:
		break;
	}
	if (c < ' ' || c == 0x7f) {
		esc[0] = '\\';
		esc[1] = 'x';
		esc[2] = hex[c >> 4];
		esc[3] = hex[c & 15];
		esc[4] = '\0';
		return 4;
	}
	esc[0] = (char)c;
	esc[1] = '\0';
	return 1;
}

const char *
log_quote(char *out, size_t cap, const char *s)
{
	size_t need = 2, o = 0; /* the quotes */
	char esc[5];

	if (s == NULL)
		return "null";
	if (is_bare(s))
		return s;
	if (cap < 8)
		return "";
	for (const char *p = s; *p; p++)
		need += escape_byte((unsigned char)*p, esc);
	out[o++] = '"';
	for (; *s; s++) {
		size_t n = escape_byte((unsigned char)*s, esc);

		/* When it is cut, keep room for ..." and the NUL. */
		if (need >= cap && o + n + 5 > cap) {
			memcpy(out + o, "...\"", 5);
			return out;
		}
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

/*
 * Appends s to line at *o, escaping control bytes. Returns 1 if it had to stop
 * at lim, 0 if all of s fitted.
 */
static int
put_escaped(char *line, size_t *o, size_t lim, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[5];
		size_t n;

		if (c >= ' ' && c != 0x7f) {
			if (*o + 1 > lim)
				return 1;
			line[(*o)++] = (char)c;
			continue;
		}
		n = escape_byte(c, esc);
		if (*o + n > lim)
			return 1;
		memcpy(line + *o, esc, n);
		*o += n;
	}
	return 0;
}

static void
log_vwrite(int level, const char *pkg, const char *msg, const char *fmt, va_list ap)
{
	/* Room kept at the end for "...\n". */
	const size_t lim = LOG_LINE_BYTES_MAX - 4;
	char line[LOG_LINE_BYTES_MAX];
	char tailbuf[LOG_LINE_BYTES_MAX];
	char qmsg[LOG_QUOTE_BYTES];
	FILE *f = log_out ? log_out : stderr;
	struct timespec ts;
	struct tm tm;
	int cut = 0, n;
	size_t o;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ level=%s pkg=",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		tm.tm_sec, (long)(ts.tv_nsec / 1000), log_level_name(level));
	if (n < 0)
		return;
	o = (size_t)n;
	cut = cut || put_escaped(line, &o, lim, log_quote(qmsg, sizeof(qmsg), pkg ? pkg : "-"));
	cut = cut || put_escaped(line, &o, lim, " msg=");
	cut = cut || put_escaped(line, &o, lim, log_quote(qmsg, sizeof(qmsg), msg ? msg : "-"));
	if (fmt != NULL && !cut) {
		n = vsnprintf(tailbuf, sizeof(tailbuf), fmt, ap);
		if (n > 0) {
			cut = cut || put_escaped(line, &o, lim, " ");
			cut = cut || put_escaped(line, &o, lim, tailbuf);
			if ((size_t)n >= sizeof(tailbuf))
				cut = 1;
		}
	}
	if (cut) {
		memcpy(line + o, "...", 3);
		o += 3;
	}
	line[o++] = '\n';
	fwrite(line, 1, o, f);
	fflush(f);
}

void
log_msg(int level, const char *pkg, const char *msg, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, pkg, msg, fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *pkg, const char *msg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, pkg, msg, fmt, ap);
	va_end(ap);
	exit(1);
}
