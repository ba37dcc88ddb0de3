/*
 * Command-line and environment parsing with the behaviour and the messages
 * of Go's `flag` package and etcd's pkg/flags, driven by a static table of
 * struct flags_spec (see corebox/flags.h for the rules).
 *
 * It must never exit or print on its own from flags_parse (the applet
 * decides), never keep state between calls, and never leave a list
 * destination half-built after an allocation failure.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "corebox/err.h"
#include "corebox/flags.h"
#include "corebox/mem.h"
#include "corebox/utf8.h"

extern char **environ;

/* Longest environment variable name derived from a flag name. */
#define ENV_NAME_BYTES_MAX 256

/* A bounded string builder over a fixed array; truncates silently. */
struct sbuf {
	char *p;
	size_t cap;
	size_t len;
};

static void
sb_init(struct sbuf *sb, char *p, size_t cap)
{
	sb->p = p;
	sb->cap = cap;
	sb->len = 0;
	if (cap > 0)
		p[0] = '\0';
}

static void
sb_putn(struct sbuf *sb, const char *s, size_t n)
{
	size_t room;

	if (sb->cap == 0)
		return;
	room = sb->cap - 1 - sb->len;
	if (n > room)
		n = room;
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

static void
sb_puts(struct sbuf *sb, const char *s)
{
	sb_putn(sb, s, strlen(s));
}

static void sb_printf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sbuf *sb, const char *fmt, ...)
{
	char tmp[FLAGS_ERRMSG_BYTES_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	sb_puts(sb, tmp);
}

/*
 * The non-ASCII runes Go's unicode.IsPrint rejects that a flag value may
 * plausibly hold: C1 controls, spaces other than U+0020, format characters,
 * private use, specials. Go's full table also rejects unassigned code
 * points; those pass through here.
 */
static int
rune_printable(uint32_t r)
{
	static const uint32_t bad[][2] = {
		{ 0x80, 0xa0 }, { 0xad, 0xad }, { 0x600, 0x605 }, { 0x61c, 0x61c },
		{ 0x6dd, 0x6dd }, { 0x70f, 0x70f }, { 0x1680, 0x1680 }, { 0x180e, 0x180e },
		{ 0x2000, 0x200f }, { 0x2028, 0x202f }, { 0x205f, 0x206f }, { 0x3000, 0x3000 },
		{ 0xe000, 0xf8ff }, { 0xfeff, 0xfeff }, { 0xfff9, 0xfffb }, { 0xfffe, 0xffff },
		{ 0xe0000, 0xe007f }, { 0xf0000, 0x10ffff },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (r >= bad[i][0] && r <= bad[i][1])
			return 0;
	return 1;
}

/* Appends s quoted as Go's strconv.Quote (%q) does. */
static void
sb_quote(struct sbuf *sb, const char *str)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);
	char tmp[16];

	sb_putn(sb, "\"", 1);
	while (n > 0) {
		uint32_t r;
		size_t w = utf8_decode(s, n, &r);

		if (w == 0) {
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[s[0] >> 4];
			tmp[3] = hex[s[0] & 15];
			sb_putn(sb, tmp, 4);
			s++;
			n--;
			continue;
		}
		if (r == '"' || r == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)r;
			sb_putn(sb, tmp, 2);
		} else if (r >= 0x20 && r < 0x7f) {
			sb_putn(sb, (const char *)s, 1);
		} else if (r >= 0x80 && rune_printable(r)) {
			sb_putn(sb, (const char *)s, w);
		} else {
			const char *esc = NULL;

			switch (r) {
			case '\a': esc = "\\a"; break;
			case '\b': esc = "\\b"; break;
			case '\f': esc = "\\f"; break;
			case '\n': esc = "\\n"; break;
			case '\r': esc = "\\r"; break;
			case '\t': esc = "\\t"; break;
			case '\v': esc = "\\v"; break;
			default: break;
			}
			if (esc != NULL)
				sb_puts(sb, esc);
			else if (r < 0x20 || r == 0x7f)
				sb_printf(sb, "\\x%c%c", hex[r >> 4], hex[r & 15]);
			else if (r < 0x10000)
				sb_printf(sb, "\\u%04" PRIx32, r);
			else
				sb_printf(sb, "\\U%08" PRIx32, r);
		}
		s += w;
		n -= w;
	}
	sb_putn(sb, "\"", 1);
}

/* ---- value parsers (strconv and time semantics) ---- */

int
flags_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -ERR_PARSE;
}

static int
lower(int c)
{
	return c | ('x' - 'X');
}

/* strconv's underscoreOK: '_' only between digits (a base prefix counts as one). */
static int
underscore_ok(const char *s)
{
	char saw = '^';
	size_t i = 0, n;
	int hex = 0;

	if (*s == '-' || *s == '+')
		s++;
	n = strlen(s);
	if (n >= 2 && s[0] == '0' && (lower(s[1]) == 'b' || lower(s[1]) == 'o' || lower(s[1]) == 'x')) {
		i = 2;
		saw = '0';
		hex = lower(s[1]) == 'x';
	}
	for (; i < n; i++) {
		if ((s[i] >= '0' && s[i] <= '9') || (hex && lower(s[i]) >= 'a' && lower(s[i]) <= 'f')) {
			saw = '0';
			continue;
		}
		if (s[i] == '_') {
			if (saw != '0')
				return 0;
			saw = '_';
			continue;
		}
		if (saw == '_')
			return 0;
		saw = '!';
	}
	return saw != '_';
}

/* strconv.ParseUint(s, 0, 64), s without a sign. */
static int
parse_uint_base0(const char *s0, uint64_t *out)
{
	const char *s = s0;
	unsigned base = 10;
	uint64_t v = 0;
	int underscores = 0;

	if (*s == '\0')
		return -ERR_PARSE;
	if (s[0] == '0') {
		size_t n = strlen(s);

		if (n >= 3 && lower(s[1]) == 'b') {
			base = 2;
			s += 2;
		} else if (n >= 3 && lower(s[1]) == 'o') {
			base = 8;
			s += 2;
		} else if (n >= 3 && lower(s[1]) == 'x') {
			base = 16;
			s += 2;
		} else {
			base = 8;
			s += 1;
		}
	}
	for (; *s; s++) {
		unsigned d;
		int c = (unsigned char)*s;

		if (c == '_') {
			underscores = 1;
			continue;
		}
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (lower(c) >= 'a' && lower(c) <= 'z')
			d = (unsigned)(lower(c) - 'a' + 10);
		else
			return -ERR_PARSE;
		if (d >= base)
			return -ERR_PARSE;
		/* Go reports overflow as soon as it happens, before later syntax. */
		if (v > (UINT64_MAX - d) / base)
			return -ERR_RANGE;
		v = v * base + d;
	}
	if (underscores && !underscore_ok(s0))
		return -ERR_PARSE;
	*out = v;
	return 0;
}

int
flags_parse_uint(const char *s, uint64_t *out)
{
	return parse_uint_base0(s, out);
}

int
flags_parse_int(const char *s, int64_t *out)
{
	uint64_t u;
	int neg = 0, rc;

	if (*s == '\0')
		return -ERR_PARSE;
	if (*s == '+') {
		s++;
	} else if (*s == '-') {
		neg = 1;
		s++;
	}
	rc = parse_uint_base0(s, &u);
	if (rc < 0)
		return rc;
	if (!neg && u > (uint64_t)INT64_MAX)
		return -ERR_RANGE;
	if (neg && u > (uint64_t)INT64_MAX + 1)
		return -ERR_RANGE;
	*out = neg ? (int64_t)(0 - u) : (int64_t)u;
	return 0;
}

#define DUR_MAX ((uint64_t)1 << 63)

/* time.ParseDuration. */
int
flags_parse_duration(const char *s, int64_t *ns_out)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "\xce\xbcs", 1000 },
		{ "ms", 1000000 }, { "s", 1000000000 }, { "m", UINT64_C(60000000000) },
		{ "h", UINT64_C(3600000000000) },
	};
	uint64_t d = 0;
	int neg = 0;

	if (*s == '-' || *s == '+') {
		neg = *s == '-';
		s++;
	}
	if (strcmp(s, "0") == 0) {
		*ns_out = 0;
		return 0;
	}
	if (*s == '\0')
		return -ERR_PARSE;
	while (*s) {
		uint64_t v = 0, f = 0, unit = 0;
		double scale = 1;
		int pre = 0, post = 0, fover = 0;
		size_t ulen;

		if (!(*s == '.' || (*s >= '0' && *s <= '9')))
			return -ERR_PARSE;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (v > DUR_MAX / 10)
				return -ERR_RANGE;
			v = v * 10 + (uint64_t)(*s - '0');
			if (v > DUR_MAX)
				return -ERR_RANGE;
			pre = 1;
		}
		if (*s == '.') {
			s++;
			for (; *s >= '0' && *s <= '9'; s++) {
				uint64_t y;

				post = 1;
				if (fover)
					continue;
				if (f > (DUR_MAX - 1) / 10) {
					fover = 1;
					continue;
				}
				y = f * 10 + (uint64_t)(*s - '0');
				if (y > DUR_MAX) {
					fover = 1;
					continue;
				}
				f = y;
				scale *= 10;
			}
		}
		if (!pre && !post)
			return -ERR_PARSE;
		for (ulen = 0; s[ulen] && s[ulen] != '.' && !(s[ulen] >= '0' && s[ulen] <= '9'); ulen++)
			;
		if (ulen == 0)
			return -ERR_PARSE;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strlen(units[i].name) == ulen && memcmp(units[i].name, s, ulen) == 0)
				unit = units[i].ns;
		if (unit == 0)
			return -ERR_PARSE;
		s += ulen;
		if (v > DUR_MAX / unit)
			return -ERR_RANGE;
		v *= unit;
		if (f > 0) {
			/* Go uses float64 here too, for nanosecond accuracy of hour fractions. */
			v += (uint64_t)((double)f * ((double)unit / scale));
			if (v > DUR_MAX)
				return -ERR_RANGE;
		}
		d += v;
		if (d > DUR_MAX)
			return -ERR_RANGE;
	}
	if (neg) {
		*ns_out = (int64_t)(0 - d);
		return 0;
	}
	if (d > DUR_MAX - 1)
		return -ERR_RANGE;
	*ns_out = (int64_t)d;
	return 0;
}

/* Go's fmtFrac: ".123" of v / 10^prec, trailing zeros and empty fraction omitted. */
static size_t
dur_frac(char *buf, size_t w, uint64_t *v, int prec)
{
	int print = 0;

	for (int i = 0; i < prec; i++) {
		unsigned digit = (unsigned)(*v % 10);

		print = print || digit != 0;
		if (print)
			buf[--w] = (char)('0' + digit);
		*v /= 10;
	}
	if (print)
		buf[--w] = '.';
	return w;
}

static size_t
dur_int(char *buf, size_t w, uint64_t v)
{
	if (v == 0) {
		buf[--w] = '0';
		return w;
	}
	while (v > 0) {
		buf[--w] = (char)('0' + v % 10);
		v /= 10;
	}
	return w;
}

int
flags_duration_str(int64_t ns, char *out, size_t out_size)
{
	char buf[40];
	size_t w = sizeof(buf);
	uint64_t u = (uint64_t)ns;
	int neg = ns < 0;

	if (neg)
		u = 0 - u;
	if (u < UINT64_C(1000000000)) {
		int prec;

		buf[--w] = 's';
		if (u == 0)
			return snprintf(out, out_size, "0s");
		if (u < 1000) {
			prec = 0;
			buf[--w] = 'n';
		} else if (u < 1000000) {
			prec = 3;
			buf[--w] = '\xb5';
			buf[--w] = '\xc2';
		} else {
			prec = 6;
			buf[--w] = 'm';
		}
		w = dur_frac(buf, w, &u, prec);
		w = dur_int(buf, w, u);
	} else {
		buf[--w] = 's';
		w = dur_frac(buf, w, &u, 9);
		w = dur_int(buf, w, u % 60);
		u /= 60;
		if (u > 0) {
			buf[--w] = 'm';
			w = dur_int(buf, w, u % 60);
			u /= 60;
			if (u > 0) {
				buf[--w] = 'h';
				w = dur_int(buf, w, u);
			}
		}
	}
	if (neg)
		buf[--w] = '-';
	return snprintf(out, out_size, "%.*s", (int)(sizeof(buf) - w), buf + w);
}

/* ---- the table ---- */

static void *
dst_of(const struct flags_spec *sp, void *cfg)
{
	return (char *)cfg + sp->offset;
}

/* Whether name[0..len) is one of the comma-separated names in list. */
static int
in_list(const char *list, const char *name, size_t len)
{
	const char *p = list;

	if (list == NULL)
		return 0;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == len && memcmp(p, name, len) == 0)
			return 1;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return 0;
}

/* The spec index for a name; *old set if it is a deprecated old name. -1 if none. */
static int
find_spec(const struct flags_set *set, const char *name, size_t len, int *old)
{
	*old = 0;
	for (size_t i = 0; i < set->nspecs; i++) {
		const struct flags_spec *sp = &set->specs[i];

		if (strlen(sp->name) == len && memcmp(sp->name, name, len) == 0)
			return (int)i;
		if (in_list(sp->alias, name, len))
			return (int)i;
		if (in_list(sp->old, name, len)) {
			*old = 1;
			return (int)i;
		}
	}
	return -1;
}

static void
list_clear(struct flags_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		mem_free(l->v[i]);
	mem_free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Builds into out the elements of base (if not NULL) followed by those of s. */
static int
list_build(struct flags_list *out, const struct flags_list *base, const char *s)
{
	size_t count = base ? base->n : 0, cap;
	const char *p;

	out->v = NULL;
	out->n = 0;
	cap = count + 1;
	for (p = s; *p; p++)
		if (*p == ',')
			cap++;
	out->v = mem_calloc(cap, sizeof(char *));
	if (out->v == NULL)
		return -ERR_NOMEM;
	for (size_t i = 0; i < count; i++) {
		out->v[i] = mem_strdup(base->v[i]);
		if (out->v[i] == NULL)
			goto nomem;
		out->n++;
	}
	for (p = s;;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n > 0) {
			out->v[out->n] = mem_strndup(p, n);
			if (out->v[out->n] == NULL)
				goto nomem;
			out->n++;
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	return 0;
nomem:
	list_clear(out);
	return -ERR_NOMEM;
}

/*
 * Parses value into spec i's destination. from_default: the default being
 * applied. On failure writes the reason Go's Value.Set gives into why and
 * leaves the destination as it was.
 */
static int
set_value(const struct flags_set *set, void *cfg, struct flags_ctx *ctx, int i,
	const char *value, int from_default, struct sbuf *why)
{
	const struct flags_spec *sp = &set->specs[i];
	void *dst = dst_of(sp, cfg);
	char msg[FLAGS_ERRMSG_BYTES_MAX / 2];
	int rc;
	union {
		const char *s;
		int b;
		int64_t i;
		uint64_t u;
		struct flags_list l;
	} tmp;

	memset(&tmp, 0, sizeof(tmp));
	switch (sp->type) {
	case FLAGS_STRING:
		tmp.s = value;
		rc = 0;
		break;
	case FLAGS_BOOL:
		rc = flags_parse_bool(value, &tmp.b);
		break;
	case FLAGS_INT:
		rc = flags_parse_int(value, &tmp.i);
		break;
	case FLAGS_UINT:
		rc = flags_parse_uint(value, &tmp.u);
		break;
	case FLAGS_DURATION:
		/* time.ParseDuration's errors all become "parse error" in flag. */
		rc = flags_parse_duration(value, &tmp.i) < 0 ? -ERR_PARSE : 0;
		break;
	case FLAGS_LIST: {
		int append = !from_default && ctx->source[i] != FLAGS_SRC_DEFAULT &&
			!(sp->flags & FLAGS_F_LAST_WINS);

		rc = list_build(&tmp.l, append ? (struct flags_list *)dst : NULL, value);
		if (rc < 0) {
			sb_puts(why, err_str(rc));
			return rc;
		}
		break;
	}
	default:
		sb_puts(why, "unknown flag type");
		return -ERR_INVAL;
	}
	if (rc < 0) {
		sb_puts(why, rc == -ERR_RANGE ? "value out of range" : "parse error");
		return rc;
	}
	if (sp->check != NULL) {
		msg[0] = '\0';
		rc = sp->check(value, &tmp, msg, sizeof(msg));
		if (rc < 0) {
			if (sp->type == FLAGS_LIST)
				list_clear(&tmp.l);
			sb_puts(why, msg[0] ? msg : "parse error");
			return rc == -ERR_RANGE ? -ERR_RANGE : -ERR_PARSE;
		}
	}
	switch (sp->type) {
	case FLAGS_STRING:
		*(const char **)dst = tmp.s;
		break;
	case FLAGS_BOOL:
		*(int *)dst = tmp.b;
		break;
	case FLAGS_INT:
	case FLAGS_DURATION:
		*(int64_t *)dst = tmp.i;
		break;
	case FLAGS_UINT:
		*(uint64_t *)dst = tmp.u;
		break;
	case FLAGS_LIST:
		list_clear((struct flags_list *)dst);
		*(struct flags_list *)dst = tmp.l;
		break;
	}
	return 0;
}

static void
note(struct flags_ctx *ctx, enum flags_note_level level, const char *msg)
{
	if (ctx->note != NULL) {
		ctx->note(ctx->note_arg, level, msg);
		return;
	}
	if (level == FLAGS_NOTE_WARN)
		fprintf(ctx->err ? ctx->err : stderr, "%s\n", msg);
}

static void
note_use(const struct flags_set *set, struct flags_ctx *ctx, int i, const char *given,
	size_t given_len, int old)
{
	const struct flags_spec *sp = &set->specs[i];
	char buf[FLAGS_ERRMSG_BYTES_MAX];
	struct sbuf sb;

	if (sp->deprecated != NULL) {
		note(ctx, FLAGS_NOTE_WARN, sp->deprecated);
		return;
	}
	if (!old)
		return;
	sb_init(&sb, buf, sizeof(buf));
	sb_puts(&sb, "flag -");
	sb_putn(&sb, given, given_len);
	sb_puts(&sb, " is deprecated, use -");
	sb_puts(&sb, sp->name);
	note(ctx, FLAGS_NOTE_WARN, buf);
}

/* The text of a type's zero value, for specs without a default. */
static const char *
zero_text(enum flags_type type)
{
	switch (type) {
	case FLAGS_BOOL:
		return "false";
	case FLAGS_INT:
	case FLAGS_UINT:
	case FLAGS_DURATION:
		return "0";
	default:
		return "";
	}
}

static int
apply_defaults(const struct flags_set *set, void *cfg, struct flags_ctx *ctx)
{
	for (size_t i = 0; i < set->nspecs; i++) {
		const struct flags_spec *sp = &set->specs[i];
		char why[FLAGS_ERRMSG_BYTES_MAX / 2];
		struct sbuf wb, sb;
		int rc;

		ctx->source[i] = FLAGS_SRC_DEFAULT;
		if (sp->type == FLAGS_LIST)
			list_clear(dst_of(sp, cfg));
		sb_init(&wb, why, sizeof(why));
		rc = set_value(set, cfg, ctx, (int)i, sp->def ? sp->def : zero_text(sp->type), 1, &wb);
		if (rc < 0) {
			/* A broken table: say which row, it is a programming error. */
			sb_init(&sb, ctx->errmsg, sizeof(ctx->errmsg));
			sb_printf(&sb, "bad default for flag -%s: ", sp->name);
			sb_puts(&sb, why);
			ctx->exit_code = 2;
			return rc == -ERR_NOMEM ? rc : -ERR_INVAL;
		}
	}
	return 0;
}

static int
fail(struct flags_ctx *ctx, int rc, int exit_code)
{
	ctx->exit_code = exit_code;
	return rc;
}

/* One argument (and maybe its value) as Go's FlagSet.parseOne. *i advances. */
static int
parse_flag(const struct flags_set *set, void *cfg, struct flags_ctx *ctx, int argc,
	char **argv, int *i)
{
	const char *s = argv[*i], *name, *value = NULL, *eq;
	size_t name_len;
	int idx, old, rc;
	struct sbuf sb, wb;
	char why[FLAGS_ERRMSG_BYTES_MAX / 2];
	const struct flags_spec *sp;

	sb_init(&sb, ctx->errmsg, sizeof(ctx->errmsg));
	sb_init(&wb, why, sizeof(why));
	name = s[1] == '-' ? s + 2 : s + 1;
	if (name[0] == '\0' || name[0] == '-' || name[0] == '=') {
		sb_puts(&sb, "bad flag syntax: ");
		sb_puts(&sb, s);
		return fail(ctx, -ERR_INVAL, 2);
	}
	(*i)++;
	/* Go looks for '=' from the second character of the name on. */
	eq = strchr(name + 1, '=');
	name_len = eq ? (size_t)(eq - name) : strlen(name);
	if (eq != NULL)
		value = eq + 1;
	idx = find_spec(set, name, name_len, &old);
	if (idx < 0) {
		if ((name_len == 4 && memcmp(name, "help", 4) == 0) ||
		    (name_len == 1 && name[0] == 'h')) {
			ctx->help = 1;
			return 0;
		}
		sb_puts(&sb, "flag provided but not defined: -");
		sb_putn(&sb, name, name_len);
		return fail(ctx, -ERR_INVAL, 2);
	}
	sp = &set->specs[idx];
	if (sp->type == FLAGS_BOOL) {
		rc = set_value(set, cfg, ctx, idx, value ? value : "true", 0, &wb);
		if (rc < 0) {
			if (rc == -ERR_NOMEM)
				return fail(ctx, rc, 1);
			if (value != NULL) {
				sb_puts(&sb, "invalid boolean value ");
				sb_quote(&sb, value);
				sb_puts(&sb, " for -");
			} else {
				sb_puts(&sb, "invalid boolean flag ");
			}
			sb_putn(&sb, name, name_len);
			sb_puts(&sb, ": ");
			sb_puts(&sb, why);
			return fail(ctx, rc, 2);
		}
	} else {
		if (value == NULL && *i < argc)
			value = argv[(*i)++];
		if (value == NULL) {
			sb_puts(&sb, "flag needs an argument: -");
			sb_putn(&sb, name, name_len);
			return fail(ctx, -ERR_INVAL, 2);
		}
		rc = set_value(set, cfg, ctx, idx, value, 0, &wb);
		if (rc < 0) {
			if (rc == -ERR_NOMEM)
				return fail(ctx, rc, 1);
			sb_puts(&sb, "invalid value ");
			sb_quote(&sb, value);
			sb_puts(&sb, " for flag -");
			sb_putn(&sb, name, name_len);
			sb_puts(&sb, ": ");
			sb_puts(&sb, why);
			return fail(ctx, rc, 2);
		}
	}
	ctx->source[idx] = FLAGS_SRC_CMDLINE;
	note_use(set, ctx, idx, name, name_len, old);
	return 0;
}

static int
parse_cmdline(const struct flags_set *set, void *cfg, struct flags_ctx *ctx, int argc, char **argv)
{
	int interspersed = (set->opts & FLAGS_OPT_INTERSPERSED) != 0;
	int i = 1, npos = 0, rc;

	if (argc < 1 || argv == NULL) {
		ctx->args = argv;
		ctx->nargs = 0;
		return 0;
	}
	while (i < argc) {
		const char *s = argv[i];

		if (s[0] != '-' || s[1] == '\0') {
			if (!interspersed)
				break;
			argv[1 + npos++] = argv[i++];
			continue;
		}
		if (s[1] == '-' && s[2] == '\0') {
			i++;
			break;
		}
		rc = parse_flag(set, cfg, ctx, argc, argv, &i);
		if (rc < 0)
			return rc;
		if (ctx->help)
			break;
	}
	if (interspersed) {
		/* Everything left (after "--" or help) follows the positionals. */
		while (i < argc)
			argv[1 + npos++] = argv[i++];
		ctx->args = argv + 1;
		ctx->nargs = npos;
	} else {
		ctx->args = argv + i;
		ctx->nargs = argc - i;
	}
	return 0;
}

/* etcd's FlagToEnv: PREFIX_ + name upper-cased, '-' as '_'. */
static void
env_name(const struct flags_set *set, const struct flags_spec *sp, char *out, size_t size)
{
	struct sbuf sb;

	sb_init(&sb, out, size);
	if (sp->env != NULL) {
		sb_puts(&sb, sp->env);
		return;
	}
	sb_puts(&sb, set->env_prefix);
	sb_puts(&sb, "_");
	for (const char *p = sp->name; *p; p++) {
		char c = *p == '-' ? '_' : *p;

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		sb_putn(&sb, &c, 1);
	}
}

/* The "NAME=value" entry of envp for name, or NULL. */
static const char *
env_find(char **envp, const char *name)
{
	size_t n = strlen(name);

	if (envp == NULL)
		return NULL;
	for (char **e = envp; *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e;
	return NULL;
}

static int
env_known(const struct flags_set *set, const char *entry)
{
	char name[ENV_NAME_BYTES_MAX];
	const char *eq = strchr(entry, '=');
	size_t n = eq ? (size_t)(eq - entry) : strlen(entry);

	for (size_t i = 0; i < set->nspecs; i++) {
		const struct flags_spec *sp = &set->specs[i];

		if ((sp->flags & FLAGS_F_NOENV) || (sp->env != NULL && sp->env[0] == '\0'))
			continue;
		env_name(set, sp, name, sizeof(name));
		if (strlen(name) == n && memcmp(name, entry, n) == 0)
			return 1;
	}
	return 0;
}

static int
parse_env(const struct flags_set *set, void *cfg, struct flags_ctx *ctx)
{
	char **envp = ctx->envp ? ctx->envp : environ;
	char name[ENV_NAME_BYTES_MAX];
	char why[FLAGS_ERRMSG_BYTES_MAX / 2];
	char msg[FLAGS_ERRMSG_BYTES_MAX];
	struct sbuf sb, wb;

	for (size_t i = 0; i < set->nspecs; i++) {
		const struct flags_spec *sp = &set->specs[i];
		const char *entry, *val;
		int rc;

		if ((sp->flags & FLAGS_F_NOENV) || (sp->env != NULL && sp->env[0] == '\0'))
			continue;
		env_name(set, sp, name, sizeof(name));
		entry = env_find(envp, name);
		if (entry == NULL)
			continue;
		val = entry + strlen(name) + 1;
		if (ctx->source[i] == FLAGS_SRC_CMDLINE) {
			if (set->opts & FLAGS_OPT_ENV_CONFLICT) {
				sb_init(&sb, ctx->errmsg, sizeof(ctx->errmsg));
				sb_puts(&sb, "conflicting environment variable ");
				sb_quote(&sb, name);
				sb_puts(&sb, " is shadowed by corresponding command-line flag "
					"(either unset environment variable or disable flag)");
				return fail(ctx, -ERR_INVAL, 1);
			}
			continue;
		}
		/* etcd ignores variables set to the empty string. */
		if (val[0] == '\0')
			continue;
		sb_init(&wb, why, sizeof(why));
		rc = set_value(set, cfg, ctx, (int)i, val, 0, &wb);
		if (rc < 0) {
			sb_init(&sb, ctx->errmsg, sizeof(ctx->errmsg));
			sb_puts(&sb, "invalid value ");
			sb_quote(&sb, val);
			sb_printf(&sb, " for %s: ", name);
			sb_puts(&sb, why);
			return fail(ctx, rc, 1);
		}
		ctx->source[i] = FLAGS_SRC_ENV;
		sb_init(&sb, msg, sizeof(msg));
		sb_puts(&sb, "recognized and used environment variable ");
		sb_puts(&sb, entry);
		note(ctx, FLAGS_NOTE_INFO, msg);
		if (sp->deprecated != NULL)
			note(ctx, FLAGS_NOTE_WARN, sp->deprecated);
	}
	if (set->opts & FLAGS_OPT_ENV_WARN_UNKNOWN) {
		size_t plen = strlen(set->env_prefix);

		for (char **e = envp; e && *e; e++) {
			if (strncmp(*e, set->env_prefix, plen) != 0 || (*e)[plen] != '_')
				continue;
			if (env_known(set, *e))
				continue;
			sb_init(&sb, msg, sizeof(msg));
			sb_puts(&sb, "unrecognized environment variable ");
			sb_puts(&sb, *e);
			note(ctx, FLAGS_NOTE_WARN, msg);
		}
	}
	return 0;
}

int
flags_parse(const struct flags_set *set, void *cfg, int argc, char **argv, struct flags_ctx *ctx)
{
	int rc;

	ctx->args = NULL;
	ctx->nargs = 0;
	ctx->help = 0;
	ctx->exit_code = 0;
	ctx->errmsg[0] = '\0';
	memset(ctx->source, 0, sizeof(ctx->source));
	if (set->nspecs > FLAGS_SPECS_MAX) {
		snprintf(ctx->errmsg, sizeof(ctx->errmsg), "too many flags (%zu, at most %d)",
			set->nspecs, FLAGS_SPECS_MAX);
		return fail(ctx, -ERR_LIMIT, 2);
	}
	rc = apply_defaults(set, cfg, ctx);
	if (rc < 0)
		return rc;
	rc = parse_cmdline(set, cfg, ctx, argc, argv);
	if (rc < 0 || ctx->help)
		return rc;
	if (set->env_prefix != NULL)
		return parse_env(set, cfg, ctx);
	return 0;
}

int
flags_process(const struct flags_set *set, void *cfg, int argc, char **argv, struct flags_ctx *ctx)
{
	FILE *out = ctx->out ? ctx->out : stdout;
	FILE *err = ctx->err ? ctx->err : stderr;
	struct flags_set with_usage;
	int rc;

	if (ctx->usage != NULL) {
		with_usage = *set;
		with_usage.usage = ctx->usage;
		set = &with_usage;
	}
	rc = flags_parse(set, cfg, argc, argv, ctx);
	if (rc == 0 && ctx->help) {
		flags_print_usage(set, (set->opts & FLAGS_OPT_HELP_STDOUT) ? out : err);
		return 0;
	}
	if (rc == 0)
		return -1;
	if (rc == -ERR_NOMEM) {
		fprintf(err, "%s: %s\n", set->prog ? set->prog : "flags", err_str(rc));
		return 1;
	}
	fprintf(err, "%s\n", ctx->errmsg);
	if (ctx->exit_code == 2)
		flags_print_usage(set, err);
	return ctx->exit_code;
}

int
flags_print_usage(const struct flags_set *set, FILE *f)
{
	if (set->usage != NULL)
		fprintf(f, "%s\n", set->usage);
	else if (set->prog != NULL && set->prog[0] != '\0')
		fprintf(f, "Usage of %s:\n", set->prog);
	else
		fputs("Usage:\n", f);
	if (set->help_text != NULL)
		fputs(set->help_text, f);
	else
		flags_print_defaults(set, f);
	return ferror(f) ? -ERR_IO : 0;
}

/* A flag name in the help listing: which spec, and the name as a slice. */
struct help_name {
	int idx;
	const char *p;
	size_t len;
};

static int
name_cmp(const struct help_name *a, const struct help_name *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->p, b->p, n);

	if (c != 0)
		return c;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return a->idx - b->idx;
}

/*
 * The smallest visible name greater than prev (or the smallest if prev is
 * NULL). A selection scan keeps printing free of allocation; tables are small.
 */
static int
next_name(const struct flags_set *set, const struct help_name *prev, struct help_name *out)
{
	int found = 0;

	for (size_t i = 0; i < set->nspecs; i++) {
		const struct flags_spec *sp = &set->specs[i];
		const char *p;
		struct help_name c;

		if (sp->flags & FLAGS_F_HIDDEN)
			continue;
		c.idx = (int)i;
		c.p = sp->name;
		c.len = strlen(sp->name);
		p = sp->alias;
		for (;;) {
			if ((prev == NULL || name_cmp(&c, prev) > 0) && (!found || name_cmp(&c, out) < 0)) {
				*out = c;
				found = 1;
			}
			if (p == NULL || *p == '\0')
				break;
			c.p = p;
			p = strchr(p, ',');
			c.len = p ? (size_t)(p - c.p) : strlen(c.p);
			if (p != NULL)
				p++;
			else
				p = "";
		}
	}
	return found;
}

/* The default as Go's DefValue prints it; "" if it is the zero value. */
static void
default_text(const struct flags_spec *sp, struct sbuf *sb)
{
	const char *def = sp->def ? sp->def : "";
	int64_t i;
	uint64_t u;
	int b;
	char tmp[64];

	switch (sp->type) {
	case FLAGS_STRING:
		if (def[0] != '\0')
			sb_quote(sb, def);
		break;
	case FLAGS_BOOL:
		if (flags_parse_bool(def, &b) == 0 && b)
			sb_puts(sb, "true");
		break;
	case FLAGS_INT:
		if (flags_parse_int(def, &i) == 0 && i != 0)
			sb_printf(sb, "%" PRId64, i);
		break;
	case FLAGS_UINT:
		if (flags_parse_uint(def, &u) == 0 && u != 0)
			sb_printf(sb, "%" PRIu64, u);
		break;
	case FLAGS_DURATION:
		if (flags_parse_duration(def, &i) == 0 && i != 0) {
			flags_duration_str(i, tmp, sizeof(tmp));
			sb_puts(sb, tmp);
		}
		break;
	case FLAGS_LIST: {
		/* Joined without the empty elements the parser drops. */
		int first = 1;

		for (const char *p = def; *p;) {
			const char *e = strchr(p, ',');
			size_t n = e ? (size_t)(e - p) : strlen(p);

			if (n > 0) {
				if (!first)
					sb_puts(sb, ",");
				sb_putn(sb, p, n);
				first = 0;
			}
			if (e == NULL)
				break;
			p = e + 1;
		}
		break;
	}
	}
}

static void
print_one(const struct flags_spec *sp, const struct help_name *hn, FILE *f)
{
	const char *help = sp->help ? sp->help : "";
	const char *bq1 = strchr(help, '`'), *bq2 = bq1 ? strchr(bq1 + 1, '`') : NULL;
	const char *type;
	char deftext[FLAGS_ERRMSG_BYTES_MAX];
	struct sbuf sb;
	size_t head;
	int tlen;

	switch (sp->type) {
	case FLAGS_STRING: type = "string"; break;
	case FLAGS_BOOL: type = ""; break;
	case FLAGS_INT: type = "int"; break;
	case FLAGS_UINT: type = "uint"; break;
	case FLAGS_DURATION: type = "duration"; break;
	default: type = "value"; break;
	}
	tlen = (int)strlen(type);
	if (bq2 != NULL) {
		/* Go's UnquoteUsage: the back-quoted word names the argument. */
		type = bq1 + 1;
		tlen = (int)(bq2 - bq1 - 1);
	}
	fprintf(f, "  -%.*s", (int)hn->len, hn->p);
	head = 3 + hn->len;
	if (tlen > 0) {
		fprintf(f, " %.*s", tlen, type);
		head += 1 + (size_t)tlen;
	}
	fputs(head <= 4 ? "\t" : "\n    \t", f);
	for (const char *p = help; *p; p++) {
		if (bq2 != NULL && (p == bq1 || p == bq2))
			continue;
		if (*p == '\n')
			fputs("\n    \t", f);
		else
			fputc(*p, f);
	}
	sb_init(&sb, deftext, sizeof(deftext));
	default_text(sp, &sb);
	if (sb.len > 0)
		fprintf(f, " (default %s)", deftext);
	fputc('\n', f);
}

int
flags_print_defaults(const struct flags_set *set, FILE *f)
{
	struct help_name cur, prev;
	int have = 0;

	while (next_name(set, have ? &prev : NULL, &cur)) {
		print_one(&set->specs[cur.idx], &cur, f);
		prev = cur;
		have = 1;
	}
	return ferror(f) ? -ERR_IO : 0;
}

void
flags_free(const struct flags_set *set, void *cfg)
{
	for (size_t i = 0; i < set->nspecs; i++)
		if (set->specs[i].type == FLAGS_LIST)
			list_clear(dst_of(&set->specs[i], cfg));
}

int
flags_is_set(const struct flags_set *set, const struct flags_ctx *ctx, const char *name)
{
	int old, idx = find_spec(set, name, strlen(name), &old);

	if (idx < 0 || idx >= FLAGS_SPECS_MAX)
		return 0;
	return ctx->source[idx] != FLAGS_SRC_DEFAULT;
}
