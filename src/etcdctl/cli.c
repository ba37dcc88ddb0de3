/*
 * etcdctl command line: Go's flag package as urfave/cli v1.22 drives it
 * (argument reordering for a command's own flags, "two forms of the same
 * flag"), and the help texts rendered as urfave's templates through
 * text/tabwriter render them, byte for byte.
 *
 * Pure: no I/O, no global state. It must never accept an argument vector
 * the original would refuse, nor word an error differently, because scripts
 * match on both.
 */
#include <stdio.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/etcdctl.h"
#include "corebox/flags.h"
#include "corebox/mem.h"
#include "corebox/utf8.h"

/* Longest flag name compared (longer arguments never match a flag). */
#define NAME_BYTES_MAX 64

/* Whether the comma-separated list names contains name (len bytes). */
static bool
names_has(const char *names, const char *name, size_t len, unsigned *which)
{
	const char *p = names;
	unsigned k = 0;

	while (*p != '\0') {
		const char *start, *end;

		while (*p == ' ' || *p == ',')
			p++;
		start = p;
		while (*p != '\0' && *p != ',')
			p++;
		end = p;
		while (end > start && end[-1] == ' ')
			end--;
		if (end > start) {
			if ((size_t)(end - start) == len && memcmp(start, name, len) == 0) {
				if (which != NULL)
					*which = k;
				return true;
			}
			k++;
		}
	}
	return false;
}

/* The k-th name of a list into out. */
static void
names_nth(const char *names, unsigned k, char *out, size_t cap)
{
	const char *p = names;
	unsigned i = 0;

	out[0] = '\0';
	while (*p != '\0') {
		const char *start, *end;

		while (*p == ' ' || *p == ',')
			p++;
		start = p;
		while (*p != '\0' && *p != ',')
			p++;
		end = p;
		while (end > start && end[-1] == ' ')
			end--;
		if (end > start) {
			if (i == k) {
				snprintf(out, cap, "%.*s", (int)(end - start), start);
				return;
			}
			i++;
		}
	}
}

int
ctl_flag_find(const struct ctl_flag *flags, size_t nflags, const char *name)
{
	for (size_t i = 0; i < nflags; i++)
		if (names_has(flags[i].names, name, strlen(name), NULL))
			return (int)i;
	return -1;
}

static int
flag_lookup(const struct ctl_flag *flags, size_t nflags, const char *name, size_t len, unsigned *which)
{
	for (size_t i = 0; i < nflags; i++)
		if (names_has(flags[i].names, name, len, which))
			return (int)i;
	return -1;
}

/* Go's strconv.IsPrint for the runes we can meet; the rare others print as is. */
static bool
rune_printable(uint32_t r)
{
	if (r < 0x20 || r == 0x7f)
		return false;
	if (r >= 0x80 && r <= 0x9f)
		return false;
	return r != 0xad && r != 0x2028 && r != 0x2029 && r != 0xfeff;
}

int
ctl_quote(struct buf *b, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	int rc = buf_putc(b, '"');

	while (rc == 0 && i < len) {
		uint32_t r;
		size_t n = utf8_decode(s + i, len - i, &r);

		if (n == 0) {
			rc = buf_printf(b, "\\x%02x", s[i]);
			i++;
			continue;
		}
		if (r == '"' || r == '\\')
			rc = buf_printf(b, "\\%c", (char)r);
		else if (rune_printable(r))
			rc = buf_append(b, s + i, n);
		else if (r == '\a')
			rc = buf_puts(b, "\\a");
		else if (r == '\b')
			rc = buf_puts(b, "\\b");
		else if (r == '\f')
			rc = buf_puts(b, "\\f");
		else if (r == '\n')
			rc = buf_puts(b, "\\n");
		else if (r == '\r')
			rc = buf_puts(b, "\\r");
		else if (r == '\t')
			rc = buf_puts(b, "\\t");
		else if (r == '\v')
			rc = buf_puts(b, "\\v");
		else if (r < 0x20 || r == 0x7f)
			rc = buf_printf(b, "\\x%02x", (unsigned)r);
		else if (r < 0x10000)
			rc = buf_printf(b, "\\u%04x", (unsigned)r);
		else
			rc = buf_printf(b, "\\U%08x", (unsigned)r);
		i += n;
	}
	return rc != 0 ? rc : buf_putc(b, '"');
}

/* Writes Go's %q of s into errmsg after prefix text. */
static void
msg_quoted(char *errmsg, size_t errlen, const char *pre, const char *val, const char *post)
{
	struct buf b = BUF_INIT;

	if (buf_puts(&b, pre) == 0 && ctl_quote(&b, val, strlen(val)) == 0 && buf_puts(&b, post) == 0)
		snprintf(errmsg, errlen, "%s", buf_cstr(&b));
	else
		snprintf(errmsg, errlen, "%s%s%s", pre, val, post);
	buf_free(&b);
}

/* urfave's argIsFlag: is arg one of the command's flags (any form)? */
static bool
arg_is_flag(const struct ctl_flag *flags, size_t nflags, const char *arg)
{
	const char *p = arg;
	size_t len;

	if (strcmp(arg, "-") == 0 || strcmp(arg, "--") == 0 || arg[0] != '-')
		return false;
	/* strings.Replace(arg, "-", "", 2) for "--x", then one more for "-x":
	 * the dashes removed are always the leading ones here. */
	if (strncmp(p, "--", 2) == 0)
		p += 2;
	if (*p == '-')
		p++;
	len = strcspn(p, "=");
	return flag_lookup(flags, nflags, p, len, NULL) >= 0;
}

/* urfave v1.22 reorderArgs: the command's flags first, then the rest. */
static char **
reorder_args(const struct ctl_flag *flags, size_t nflags, int argc, char **argv)
{
	char **out = mem_calloc((size_t)argc + 1, sizeof(*out));
	char **rest = mem_calloc((size_t)argc + 1, sizeof(*rest));
	size_t nout = 0, nrest = 0;
	bool may_value = false;

	if (out == NULL || rest == NULL) {
		mem_free(out);
		mem_free(rest);
		return NULL;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (may_value && !arg_is_flag(flags, nflags, a)) {
			may_value = false;
			out[nout++] = argv[i];
		} else if (strcmp(a, "--") == 0) {
			/* "--" moves to the front of the positionals, the rest stays after it. */
			memmove(rest + 1, rest, nrest * sizeof(*rest));
			rest[0] = argv[i];
			nrest++;
			for (int j = i + 1; j < argc; j++)
				rest[nrest++] = argv[j];
			break;
		} else if (arg_is_flag(flags, nflags, a)) {
			out[nout++] = argv[i];
			may_value = strchr(a, '=') == NULL;
		} else {
			rest[nrest++] = argv[i];
		}
	}
	memcpy(out + nout, rest, nrest * sizeof(*rest));
	mem_free(rest);
	return out;
}

static int
slice_append(struct ctl_val *v, const char *s)
{
	const char **nl = mem_realloc(v->list, (v->nlist + 1) * sizeof(*nl));

	if (nl == NULL)
		return -ERR_NOMEM;
	nl[v->nlist++] = s;
	v->list = nl;
	return 0;
}

/* Sets one flag from its text value; Go's flag.Value.Set and its errors. */
static int
flag_set_value(const struct ctl_flag *f, struct ctl_val *v, const char *name, const char *value,
	char *errmsg, size_t errlen)
{
	char post[NAME_BYTES_MAX + 64];
	int rc;

	switch (f->type) {
	case CTL_F_BOOL:
		rc = flags_parse_bool(value, &v->b);
		if (rc < 0) {
			snprintf(post, sizeof(post), " for -%s: parse error", name);
			msg_quoted(errmsg, errlen, "invalid boolean value ", value, post);
			return -ERR_INVAL;
		}
		return 0;
	case CTL_F_STRING:
		v->s = value;
		return 0;
	case CTL_F_INT:
		rc = flags_parse_int(value, &v->i);
		break;
	case CTL_F_DURATION:
		rc = flags_parse_duration(value, &v->i);
		if (rc < 0)
			rc = -ERR_PARSE;
		break;
	case CTL_F_SLICE:
		return slice_append(v, value);
	default:
		return -ERR_INVAL;
	}
	if (rc < 0) {
		snprintf(post, sizeof(post), " for flag -%s: %s", name,
			rc == -ERR_RANGE ? "value out of range" : "parse error");
		msg_quoted(errmsg, errlen, "invalid value ", value, post);
		return -ERR_INVAL;
	}
	return 0;
}

/* Go's FlagSet.parseOne. Returns 1 when a flag was consumed, 0 at the end of the flags. */
static int
parse_one(const struct ctl_flag *flags, size_t nflags, struct ctl_val *vals, char **args, int nargs,
	int *pos, char *errmsg, size_t errlen)
{
	const char *s, *name, *eq;
	char nm[NAME_BYTES_MAX + 1];
	size_t nlen;
	int minuses = 1, idx;
	unsigned which = 0;

	if (*pos >= nargs)
		return 0;
	s = args[*pos];
	if (strlen(s) < 2 || s[0] != '-')
		return 0;
	if (s[1] == '-') {
		minuses = 2;
		if (s[2] == '\0') {
			(*pos)++;
			return 0;
		}
	}
	name = s + minuses;
	if (name[0] == '\0' || name[0] == '-' || name[0] == '=') {
		snprintf(errmsg, errlen, "bad flag syntax: %s", s);
		return -ERR_INVAL;
	}
	(*pos)++;
	eq = strchr(name + 1, '=');
	nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
	idx = flag_lookup(flags, nflags, name, nlen, &which);
	if (idx < 0 || nlen > NAME_BYTES_MAX) {
		snprintf(errmsg, errlen, "flag provided but not defined: -%.*s", (int)nlen, name);
		return -ERR_INVAL;
	}
	memcpy(nm, name, nlen);
	nm[nlen] = '\0';
	if (flags[idx].type == CTL_F_BOOL) {
		if (eq != NULL) {
			if (flag_set_value(&flags[idx], &vals[idx], nm, eq + 1, errmsg, errlen) < 0)
				return -ERR_INVAL;
		} else {
			vals[idx].b = 1;
		}
	} else {
		const char *value;
		int rc;

		if (eq != NULL) {
			value = eq + 1;
		} else if (*pos < nargs) {
			value = args[*pos];
			(*pos)++;
		} else {
			snprintf(errmsg, errlen, "flag needs an argument: -%s", nm);
			return -ERR_INVAL;
		}
		rc = flag_set_value(&flags[idx], &vals[idx], nm, value, errmsg, errlen);
		if (rc < 0)
			return rc;
	}
	vals[idx].set = 1;
	vals[idx].forms |= 1u << (which < 31 ? which : 31);
	return 1;
}

int
ctl_flags_parse(const struct ctl_flag *flags, size_t nflags, struct ctl_val *vals,
	bool reorder, int argc, char **argv, char ***rest, int *nrest,
	char *errmsg, size_t errlen)
{
	char **args = argv;
	char **owned = NULL;
	int pos = 0, rc;

	*rest = NULL;
	*nrest = 0;
	errmsg[0] = '\0';
	if (reorder && argc > 0) {
		owned = args = reorder_args(flags, nflags, argc, argv);
		if (args == NULL)
			return -ERR_NOMEM;
	}
	while ((rc = parse_one(flags, nflags, vals, args, argc, &pos, errmsg, errlen)) > 0)
		;
	if (rc < 0) {
		mem_free(owned);
		return rc;
	}
	/* urfave's normalizeFlags: two names of one flag both used. */
	for (size_t i = 0; i < nflags; i++) {
		unsigned f = vals[i].forms;

		if (f != 0 && (f & (f - 1)) != 0) {
			char a[NAME_BYTES_MAX], b[NAME_BYTES_MAX];
			unsigned first = (unsigned)__builtin_ctz(f);
			unsigned second = (unsigned)__builtin_ctz(f & ~(1u << first));

			names_nth(flags[i].names, first, a, sizeof(a));
			names_nth(flags[i].names, second, b, sizeof(b));
			snprintf(errmsg, errlen, "Cannot use two forms of the same flag: %s %s", b, a);
			mem_free(owned);
			return -ERR_EXIST;
		}
	}
	if (pos < argc) {
		*rest = mem_calloc((size_t)(argc - pos) + 1, sizeof(**rest));
		if (*rest == NULL) {
			mem_free(owned);
			return -ERR_NOMEM;
		}
		memcpy(*rest, args + pos, (size_t)(argc - pos) * sizeof(**rest));
		*nrest = argc - pos;
	}
	mem_free(owned);
	return 0;
}

void
ctl_vals_free(const struct ctl_flag *flags, size_t nflags, struct ctl_val *vals)
{
	for (size_t i = 0; i < nflags; i++) {
		if (flags[i].type == CTL_F_SLICE) {
			mem_free(vals[i].list);
			vals[i].list = NULL;
			vals[i].nlist = 0;
		}
	}
}

const struct ctl_cmd *
ctl_cmd_find(const struct ctl_cmd *cmds, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
		if (cmds[i].alias != NULL && strcmp(cmds[i].alias, name) == 0)
			return &cmds[i];
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Help                                                                */
/* ------------------------------------------------------------------ */

/* One tabwriter block: rows "   left<pad>right", padded to the widest left + 2. */
struct row {
	const char *left1;
	const char *left2; /* appended to left1 (", h"), may be NULL */
	const char *right;
};

static int
put_rows(struct buf *b, const struct row *rows, size_t n, const char *indent, const char *sep)
{
	size_t w = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(indent) + strlen(rows[i].left1) + (rows[i].left2 ? strlen(rows[i].left2) : 0);

		if (l > w)
			w = l;
	}
	w += 2;
	for (size_t i = 0; i < n && rc == 0; i++) {
		size_t l = strlen(indent) + strlen(rows[i].left1) + (rows[i].left2 ? strlen(rows[i].left2) : 0);

		if (i > 0)
			rc = buf_puts(b, sep);
		if (rc == 0)
			rc = buf_printf(b, "%s%s%s%*s%s", indent, rows[i].left1,
				rows[i].left2 ? rows[i].left2 : "", (int)(w - l), "", rows[i].right);
	}
	return rc;
}

/* Rows for a flag table (plus an optional extra flag, e.g. --help). */
static int
flag_rows(struct buf *b, const struct ctl_flag *flags, size_t nflags, const struct ctl_flag *extra,
	const char *sep)
{
	struct row rows[32];
	size_t n = 0;

	for (size_t i = 0; i < nflags && n < 32; i++) {
		rows[n].left1 = flags[i].help_left;
		rows[n].left2 = NULL;
		rows[n].right = flags[i].help_usage;
		n++;
	}
	if (extra != NULL && n < 32) {
		rows[n].left1 = extra->help_left;
		rows[n].left2 = NULL;
		rows[n].right = extra->help_usage;
		n++;
	}
	return put_rows(b, rows, n, "   ", sep);
}

static const struct ctl_flag help_flag = {
	"help, h", CTL_F_BOOL, "--help, -h", "show help",
};

static int
cmd_rows(struct buf *b, const struct ctl_cmd *cmds, size_t n, const char *indent)
{
	struct row rows[32];
	char alias[32][40];
	size_t k = 0;

	for (size_t i = 0; i < n && k < 32; i++, k++) {
		rows[k].left1 = cmds[i].name;
		rows[k].left2 = NULL;
		if (cmds[i].alias != NULL) {
			snprintf(alias[k], sizeof(alias[k]), ", %s", cmds[i].alias);
			rows[k].left2 = alias[k];
		}
		rows[k].right = cmds[i].usage;
	}
	return put_rows(b, rows, k, indent, "\n");
}

int
ctl_help_app(struct buf *b, const char *name, const char *usage, const char *version,
	const struct ctl_cmd *cmds, size_t ncmds, const struct ctl_flag *flags, size_t nflags)
{
	int rc = buf_printf(b, "NAME:\n   %s - %s\n\nUSAGE:\n   %s [global options] command [command options] [arguments...]\n\nVERSION:\n   %s\n\nCOMMANDS:\n",
		name, usage, name, version);

	if (rc == 0)
		rc = cmd_rows(b, cmds, ncmds, "   ");
	if (rc == 0)
		rc = buf_puts(b, "\n\nGLOBAL OPTIONS:\n");
	if (rc == 0)
		rc = flag_rows(b, flags, nflags, NULL, "\n");
	if (rc == 0)
		rc = buf_putc(b, '\n');
	return rc;
}

int
ctl_help_cmd(struct buf *b, const char *prefix, const struct ctl_cmd *cmd)
{
	int rc = buf_printf(b, "NAME:\n   %s %s - %s\n\nUSAGE:\n   %s %s%s %s", prefix, cmd->name,
		cmd->usage, prefix, cmd->name, cmd->nflags > 0 ? " [command options]" : "",
		cmd->args_usage != NULL ? cmd->args_usage : "[arguments...]");

	if (rc == 0 && cmd->description != NULL)
		rc = buf_printf(b, "\n\nDESCRIPTION:\n   %s", cmd->description);
	if (rc == 0 && cmd->nflags > 0) {
		rc = buf_puts(b, "\n\nOPTIONS:\n");
		if (rc == 0)
			rc = flag_rows(b, cmd->flags, cmd->nflags, NULL, "\n");
		if (rc == 0)
			rc = buf_puts(b, "\n   ");
	}
	if (rc == 0)
		rc = buf_putc(b, '\n');
	return rc;
}

int
ctl_help_group(struct buf *b, const char *prefix, const struct ctl_cmd *grp)
{
	int rc = buf_printf(b, "NAME:\n   %s %s - %s\n\nUSAGE:\n   %s %s command [command options] [arguments...]\n\nCOMMANDS:\n",
		prefix, grp->name, grp->usage, prefix, grp->name);

	if (rc == 0)
		rc = cmd_rows(b, grp->subs, grp->nsubs, "   ");
	if (rc == 0)
		rc = buf_puts(b, "\n\nOPTIONS:\n");
	if (rc == 0)
		rc = flag_rows(b, NULL, 0, &help_flag, "\n");
	if (rc == 0)
		rc = buf_puts(b, "\n   \n");
	return rc;
}

int
ctl_help_group_app(struct buf *b, const char *prefix, const struct ctl_cmd *grp, const char *version)
{
	int rc = buf_printf(b, "NAME:\n   %s %s - %s\n\nUSAGE:\n   %s %s [global options] command [command options] [arguments...]\n\nVERSION:\n   %s\n\nCOMMANDS:\n",
		prefix, grp->name, grp->usage, prefix, grp->name, version);

	if (rc == 0)
		rc = cmd_rows(b, grp->subs, grp->nsubs, "   ");
	if (rc == 0)
		rc = buf_puts(b, "\n\nGLOBAL OPTIONS:\n");
	if (rc == 0)
		rc = flag_rows(b, NULL, 0, &help_flag, "\n");
	if (rc == 0)
		rc = buf_putc(b, '\n');
	return rc;
}
