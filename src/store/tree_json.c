/*
 * tree_json: etcd's JSON for tree events, v2 errors and store stats, byte
 * for byte (field order of Go's struct tags, omitempty rules, Go's string
 * escaping through json_escape_go, Go's time format).
 *
 * Rendering only reads the tree; it must never change it and never depend
 * on anything but its arguments (no clock: now comes in).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/json.h"
#include "corebox/mem.h"
#include "corebox/tree.h"
#include "tree_int.h"

/* ------------------------------------------------------------------ */
/* v2 errors (etcd error/error.go)                                     */
/* ------------------------------------------------------------------ */

static const struct {
	int code;
	int status;
	const char *msg;
} ecodes[] = {
	{ 100, 404, "Key not found" },
	{ 101, 412, "Compare failed" },
	{ 102, 403, "Not a file" },
	{ 103, 400, "Reached the max number of peers in the cluster" },
	{ 104, 400, "Not a directory" },
	{ 105, 412, "Key already exists" },
	{ 106, 400, "The prefix of given key is a keyword in etcd" },
	{ 107, 400, "Root is read only" },
	{ 108, 403, "Directory not empty" },
	{ 109, 400, "Peer address has existed" },
	{ 110, 401, "The request requires user authentication" },
	{ 200, 400, "Value is Required in POST form" },
	{ 201, 400, "PrevValue is Required in POST form" },
	{ 202, 400, "The given TTL in POST form is not a number" },
	{ 203, 400, "The given index in POST form is not a number" },
	{ 204, 400, "Value or TTL is required in POST form" },
	{ 205, 400, "The given timeout in POST form is not a number" },
	{ 206, 400, "Name is required in POST form" },
	{ 207, 400, "Index or value is required" },
	{ 208, 400, "Index and value cannot both be specified" },
	{ 209, 400, "Invalid field" },
	{ 210, 400, "Invalid POST form" },
	{ 211, 400, "Value provided on refresh" },
	{ 212, 400, "A TTL must be provided on refresh" },
	{ 300, 500, "Raft Internal Error" },
	{ 301, 500, "During Leader Election" },
	{ 400, 400, "watcher is cleared due to etcd recovery" },
	{ 401, 400, "The event in requested index is outdated and cleared" },
	{ 402, 400, "Standby Internal Error" },
	{ 403, 400, "Invalid active size" },
	{ 404, 400, "Standby remove delay" },
	{ 500, 400, "Client Internal Error" },
};

const char *
tree_error_message(int code)
{
	for (size_t i = 0; i < sizeof(ecodes) / sizeof(ecodes[0]); i++)
		if (ecodes[i].code == code)
			return ecodes[i].msg;
	return "";
}

int
tree_error_status(int code)
{
	for (size_t i = 0; i < sizeof(ecodes) / sizeof(ecodes[0]); i++)
		if (ecodes[i].code == code)
			return ecodes[i].status;
	return 400; /* etcd: anything not in its status map is a bad request */
}

int
tree_error_json(struct buf *out, int code, const char *cause, size_t cause_len, uint64_t index)
{
	const char *msg = tree_error_message(code);

	if (buf_printf(out, "{\"errorCode\":%d,\"message\":", code) != 0 ||
	    json_escape_go(out, msg, strlen(msg)) != 0)
		return -ERR_NOMEM;
	if (cause != NULL && cause_len > 0 &&
	    (buf_puts(out, ",\"cause\":") != 0 || json_escape_go(out, cause, cause_len) != 0))
		return -ERR_NOMEM;
	if (buf_printf(out, ",\"index\":%llu}", (unsigned long long)index) != 0)
		return -ERR_NOMEM;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

int64_t
tree_ttl_seconds(int64_t expire_ns, int64_t now_ns)
{
	int64_t d, ttl;

	/* Go's Time.Sub saturates instead of wrapping. */
	if (__builtin_sub_overflow(expire_ns, now_ns, &d))
		d = now_ns < 0 ? INT64_MAX : INT64_MIN;
	ttl = d / INT64_C(1000000000);
	if (d % INT64_C(1000000000) > 0)
		ttl++;
	return ttl;
}

/* Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
 * civil_from_days). */
static void
civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

size_t
tree_format_time(char out[40], int64_t t_ns)
{
	int64_t secs = t_ns / INT64_C(1000000000);
	int64_t frac = t_ns % INT64_C(1000000000);
	int64_t days, sod, y;
	unsigned mo, d;
	int n;

	if (frac < 0) {
		frac += INT64_C(1000000000);
		secs--;
	}
	days = secs / 86400;
	sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days--;
	}
	civil(days, &y, &mo, &d);
	n = snprintf(out, 40, "%04lld-%02u-%02uT%02d:%02d:%02d", (long long)y, mo, d, (int)(sod / 3600),
	    (int)(sod / 60 % 60), (int)(sod % 60));
	if (frac != 0) {
		char f[16];
		int fl = snprintf(f, sizeof(f), "%09lld", (long long)frac);

		while (fl > 0 && f[fl - 1] == '0')
			fl--;
		out[n++] = '.';
		memcpy(out + n, f, (size_t)fl);
		n += fl;
	}
	out[n++] = 'Z';
	out[n] = '\0';
	return (size_t)n;
}

/* ------------------------------------------------------------------ */
/* Nodes                                                               */
/* ------------------------------------------------------------------ */

/* Opens a member: a comma unless it is the first. */
static int
member(struct buf *out, bool *first, const char *name)
{
	if (!*first && buf_putc(out, ',') != 0)
		return -ERR_NOMEM;
	*first = false;
	return buf_puts(out, name) != 0 ? -ERR_NOMEM : 0;
}

/* The fields before "nodes" (key, value, dir, expiration, ttl). */
static int
node_head(struct buf *out, bool *first, const char *key, size_t key_len, const char *value, size_t value_len,
    bool dir, int64_t expire, int64_t now)
{
	/* The store's root is etcd's "/1", whose key trims to "" and is
	 * omitted. */
	if (!(key_len == 1 && key[0] == '/')) {
		if (member(out, first, "\"key\":") != 0 || json_escape_go(out, key, key_len) != 0)
			return -ERR_NOMEM;
	}
	if (value != NULL) {
		if (member(out, first, "\"value\":") != 0 || json_escape_go(out, value, value_len) != 0)
			return -ERR_NOMEM;
	}
	if (dir && member(out, first, "\"dir\":true") != 0)
		return -ERR_NOMEM;
	if (expire != TREE_PERMANENT) {
		char ts[40];
		size_t tl = tree_format_time(ts, expire);
		int64_t ttl = tree_ttl_seconds(expire, now);

		if (member(out, first, "\"expiration\":\"") != 0 || buf_append(out, ts, tl) != 0 ||
		    buf_putc(out, '"') != 0)
			return -ERR_NOMEM;
		if (ttl != 0) {
			if (member(out, first, "\"ttl\":") != 0 || buf_printf(out, "%lld", (long long)ttl) != 0)
				return -ERR_NOMEM;
		}
	}
	return 0;
}

static int
node_tail(struct buf *out, bool *first, uint64_t modified, uint64_t created)
{
	if (modified != 0 &&
	    (member(out, first, "\"modifiedIndex\":") != 0 || buf_printf(out, "%llu", (unsigned long long)modified) != 0))
		return -ERR_NOMEM;
	if (created != 0 &&
	    (member(out, first, "\"createdIndex\":") != 0 || buf_printf(out, "%llu", (unsigned long long)created) != 0))
		return -ERR_NOMEM;
	return buf_putc(out, '}') != 0 ? -ERR_NOMEM : 0;
}

int
tree_node_ext_json(struct buf *out, const struct tree_node_ext *n, int64_t now_ns)
{
	bool first = true;

	if (buf_putc(out, '{') != 0)
		return -ERR_NOMEM;
	if (node_head(out, &first, n->key, n->key_len, n->value, n->value_len, n->dir, n->expire_ns, now_ns) != 0)
		return -ERR_NOMEM;
	return node_tail(out, &first, n->modified_index, n->created_index);
}

static int
name_cmp(const void *a, const void *b)
{
	const struct tree_node *x = *(const struct tree_node *const *)a;
	const struct tree_node *y = *(const struct tree_node *const *)b;
	size_t m = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(node_name(x), node_name(y), m);

	if (c != 0)
		return c;
	return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

struct lister {
	struct buf *out;
	struct buf path; /* the key of the node being rendered */
	bool recursive;
	bool sorted;
	int64_t now;
};

static int render_live(struct lister *l, const struct tree_node *n, bool list, unsigned depth);

/* The "nodes" member of a directory: visible children, etcd's Repr. */
static int
render_children(struct lister *l, const struct tree_node *n, bool *first, unsigned depth)
{
	struct tree_node **slots = dir_slots(n), **v = NULL;
	size_t cap = dir_cap(n), cnt = 0, plen = l->path.len;
	int rc = 0;

	if (n->len == 0)
		return 0;
	v = mem_alloc(n->len * sizeof(*v));
	if (v == NULL)
		return -ERR_NOMEM;
	for (size_t i = 0; i < cap; i++)
		if (slots[i] != NULL && !node_hidden(slots[i]))
			v[cnt++] = slots[i];
	if (cnt == 0)
		goto out; /* an empty "nodes" is omitted, as Go's omitempty */
	if (l->sorted)
		qsort(v, cnt, sizeof(*v), name_cmp);
	if (member(l->out, first, "\"nodes\":[") != 0) {
		rc = -ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < cnt; i++) {
		if (i > 0 && buf_putc(l->out, ',') != 0) {
			rc = -ERR_NOMEM;
			goto out;
		}
		l->path.len = plen;
		if ((plen > 1 && buf_putc(&l->path, '/') != 0) ||
		    buf_append(&l->path, node_name(v[i]), v[i]->name_len) != 0) {
			rc = -ERR_NOMEM;
			goto out;
		}
		if ((rc = render_live(l, v[i], l->recursive, depth + 1)) != 0)
			goto out;
	}
	if (buf_putc(l->out, ']') != 0)
		rc = -ERR_NOMEM;
out:
	l->path.len = plen;
	mem_free(v);
	return rc;
}

static int
render_live(struct lister *l, const struct tree_node *n, bool list, unsigned depth)
{
	bool first = true, dir = node_is_dir(n);
	int rc;

	if (depth > TREE_DEPTH_MAX)
		return -ERR_LIMIT;
	if (buf_putc(l->out, '{') != 0)
		return -ERR_NOMEM;
	if (node_head(l->out, &first, l->path.data, l->path.len, dir ? NULL : node_value(n), dir ? 0 : n->len, dir,
		n->expire, l->now) != 0)
		return -ERR_NOMEM;
	if (dir && list && (rc = render_children(l, n, &first, depth)) != 0)
		return rc;
	return node_tail(l->out, &first, n->modified, n->created);
}

int
tree_event_json(struct buf *out, const struct tree_event *ev, int64_t now_ns)
{
	int64_t now = ev->refs > 0 ? ev->now_ns : now_ns;
	const char *action = tree_action_name(ev->action);
	int rc;

	if (buf_puts(out, "{\"action\":\"") != 0 || buf_puts(out, action) != 0 || buf_puts(out, "\",\"node\":") != 0)
		return -ERR_NOMEM;
	if (ev->listing != NULL) {
		struct lister l = { out, BUF_INIT, ev->recursive, ev->sorted, now };

		rc = buf_append(&l.path, ev->node.key, ev->node.key_len) != 0 ? -ERR_NOMEM
		    : render_live(&l, ev->listing, true, 0);
		buf_free(&l.path);
		if (rc != 0)
			return rc;
	} else if ((rc = tree_node_ext_json(out, &ev->node, now)) != 0) {
		return rc;
	}
	if (ev->has_prev) {
		if (buf_puts(out, ",\"prevNode\":") != 0 || tree_node_ext_json(out, &ev->prev, now) != 0)
			return -ERR_NOMEM;
	}
	return buf_putc(out, '}') != 0 ? -ERR_NOMEM : 0;
}

/* ------------------------------------------------------------------ */
/* Stats                                                               */
/* ------------------------------------------------------------------ */

int
tree_stats_json(struct buf *out, const struct tree_stats *st, uint64_t watchers)
{
	int rc = buf_printf(out,
	    "{\"getsSuccess\":%llu,\"getsFail\":%llu,\"setsSuccess\":%llu,\"setsFail\":%llu,"
	    "\"deleteSuccess\":%llu,\"deleteFail\":%llu,\"updateSuccess\":%llu,\"updateFail\":%llu,"
	    "\"createSuccess\":%llu,\"createFail\":%llu,\"compareAndSwapSuccess\":%llu,"
	    "\"compareAndSwapFail\":%llu,\"compareAndDeleteSuccess\":%llu,\"compareAndDeleteFail\":%llu,"
	    "\"expireCount\":%llu,\"watchers\":%llu}",
	    (unsigned long long)st->gets_success, (unsigned long long)st->gets_fail,
	    (unsigned long long)st->sets_success, (unsigned long long)st->sets_fail,
	    (unsigned long long)st->delete_success, (unsigned long long)st->delete_fail,
	    (unsigned long long)st->update_success, (unsigned long long)st->update_fail,
	    (unsigned long long)st->create_success, (unsigned long long)st->create_fail,
	    (unsigned long long)st->cas_success, (unsigned long long)st->cas_fail,
	    (unsigned long long)st->cad_success, (unsigned long long)st->cad_fail,
	    (unsigned long long)st->expire_count, (unsigned long long)watchers);

	return rc != 0 ? -ERR_NOMEM : 0;
}
