/*
 * proposal: the log entry of a v2 write (its binary encoding and decoding)
 * and the function that applies one to the tree, as etcd 2.3's
 * EtcdServer.applyRequest does; plus the small pure helpers the server
 * shares (Go's path cleaning, strconv.ParseUint, etcd's member and cluster
 * IDs).
 *
 * Everything here is pure: no clock, no I/O. The proposer's wall-clock time
 * travels inside the entry so that applying the same log twice (at run time
 * and at replay) gives the same tree. Decoding treats the bytes as hostile
 * (a WAL record is CRC-checked, but a bug or a newer writer must give a
 * clear error, never a crash or a half-applied entry).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha1.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/store.h"
#include "corebox/tree.h"

/* Encoding version byte; a decoder refuses anything newer. */
#define PROPOSAL_VERSION 1u

/* ------------------------------------------------------------------ */
/* Varints                                                             */
/* ------------------------------------------------------------------ */

static int
put_uvarint(struct buf *out, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;

	while (v >= 0x80) {
		tmp[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	tmp[n++] = (unsigned char)v;
	return buf_append(out, tmp, n);
}

static int
put_bytes(struct buf *out, const char *p, size_t len)
{
	int rc = put_uvarint(out, len);

	if (rc == 0 && len > 0)
		rc = buf_append(out, p, len);
	return rc;
}

struct reader {
	const unsigned char *p;
	size_t len;
	size_t off;
};

static int
get_uvarint(struct reader *r, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;

	for (;;) {
		unsigned char c;

		if (r->off >= r->len)
			return -ERR_CORRUPT;
		c = r->p[r->off++];
		if (shift == 63 && c > 1)
			return -ERR_CORRUPT; /* more than 64 bits */
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			break;
		shift += 7;
		if (shift > 63)
			return -ERR_CORRUPT;
	}
	*out = v;
	return 0;
}

static int
get_bytes(struct reader *r, size_t max, const char **p, size_t *len)
{
	uint64_t n;
	int rc = get_uvarint(r, &n);

	if (rc != 0)
		return rc;
	if (n > max || n > r->len - r->off)
		return -ERR_CORRUPT;
	*p = (const char *)r->p + r->off;
	*len = (size_t)n;
	r->off += (size_t)n;
	return 0;
}

/* Which fields an op carries. */
static bool
op_has_path(unsigned op)
{
	return op == STORE_OP_POST || op == STORE_OP_PUT || op == STORE_OP_DELETE || op == STORE_OP_QGET;
}

static bool
op_has_value(unsigned op)
{
	return op == STORE_OP_POST || op == STORE_OP_PUT || op == STORE_OP_MEMBER_ADD;
}

static bool
op_has_compare(unsigned op)
{
	return op == STORE_OP_PUT || op == STORE_OP_DELETE;
}

int
store_proposal_encode(const struct store_proposal *p, struct buf *out)
{
	size_t mark = out->len;
	int rc = 0;

	if (p->op > STORE_OP_MAX_ || (p->flags & ~(uint32_t)STORE_PF_ALL_) != 0)
		return -ERR_INVAL;
	if (op_has_path(p->op) && p->path_len > STORE_PATH_BYTES_MAX)
		return -ERR_INVAL;
	if (op_has_value(p->op) && p->value_len > STORE_VALUE_BYTES_MAX)
		return -ERR_INVAL;
	if ((p->flags & STORE_PF_PREV_VALUE) && p->prev_value_len > STORE_VALUE_BYTES_MAX)
		return -ERR_INVAL;

	if (rc == 0)
		rc = buf_putc(out, (char)PROPOSAL_VERSION);
	if (rc == 0)
		rc = buf_putc(out, (char)p->op);
	if (rc == 0)
		rc = put_uvarint(out, p->flags);
	if (rc == 0)
		rc = put_uvarint(out, (uint64_t)p->time_ns);
	if (rc == 0 && op_has_path(p->op))
		rc = put_bytes(out, p->path, p->path_len);
	if (rc == 0 && op_has_value(p->op))
		rc = put_bytes(out, p->value, p->value_len);
	if (rc == 0 && (p->flags & STORE_PF_PREV_VALUE))
		rc = put_bytes(out, p->prev_value, p->prev_value_len);
	if (rc == 0 && op_has_compare(p->op))
		rc = put_uvarint(out, p->prev_index);
	if (rc == 0 && (p->flags & STORE_PF_TTL))
		rc = put_uvarint(out, p->ttl_s);
	if (rc == 0 && (p->op == STORE_OP_MEMBER_ADD || p->op == STORE_OP_MEMBER_REMOVE))
		rc = put_uvarint(out, p->member_id);
	if (rc != 0)
		out->len = mark; /* leave nothing half-written */
	return rc;
}

int
store_proposal_decode(const void *data, size_t len, struct store_proposal *p)
{
	struct reader r = { data, len, 0 };
	uint64_t v;
	int rc;

	memset(p, 0, sizeof(*p));
	if (len < 2)
		return -ERR_CORRUPT;
	if (r.p[0] != PROPOSAL_VERSION)
		return r.p[0] > PROPOSAL_VERSION ? -ERR_UNSUPPORTED : -ERR_CORRUPT;
	if (r.p[1] > STORE_OP_MAX_)
		return -ERR_CORRUPT;
	p->op = r.p[1];
	r.off = 2;
	if ((rc = get_uvarint(&r, &v)) != 0)
		return rc;
	if ((v & ~(uint64_t)STORE_PF_ALL_) != 0)
		return -ERR_CORRUPT;
	p->flags = (uint32_t)v;
	if ((rc = get_uvarint(&r, &v)) != 0)
		return rc;
	p->time_ns = (int64_t)v;
	if (op_has_path(p->op) && (rc = get_bytes(&r, STORE_PATH_BYTES_MAX, &p->path, &p->path_len)) != 0)
		return rc;
	if (op_has_value(p->op) && (rc = get_bytes(&r, STORE_VALUE_BYTES_MAX, &p->value, &p->value_len)) != 0)
		return rc;
	if ((p->flags & STORE_PF_PREV_VALUE) &&
	    (rc = get_bytes(&r, STORE_VALUE_BYTES_MAX, &p->prev_value, &p->prev_value_len)) != 0)
		return rc;
	if (op_has_compare(p->op) && (rc = get_uvarint(&r, &p->prev_index)) != 0)
		return rc;
	if ((p->flags & STORE_PF_TTL) && (rc = get_uvarint(&r, &p->ttl_s)) != 0)
		return rc;
	if ((p->op == STORE_OP_MEMBER_ADD || p->op == STORE_OP_MEMBER_REMOVE) &&
	    (rc = get_uvarint(&r, &p->member_id)) != 0)
		return rc;
	if (r.off != r.len)
		return -ERR_CORRUPT;
	/* A path-less op must not carry path-only flags: catches mixed-up ops. */
	if (!op_has_path(p->op) && p->op != STORE_OP_MEMBER_ADD && p->flags != 0)
		return -ERR_CORRUPT;
	return 0;
}

int64_t
store_proposal_expire_ns(const struct store_proposal *p)
{
	int64_t ttl_ns;

	if (!(p->flags & STORE_PF_TTL))
		return TREE_PERMANENT;
	/* etcd computes now + ttl*1s in int64 and wraps on overflow; a TTL that
	 * large is "forever", so saturate instead. */
	if (p->ttl_s > (uint64_t)(INT64_MAX / 1000000000))
		return INT64_MAX;
	ttl_ns = (int64_t)p->ttl_s * 1000000000;
	if (p->time_ns > INT64_MAX - ttl_ns)
		return INT64_MAX;
	return p->time_ns + ttl_ns;
}

/* ------------------------------------------------------------------ */
/* Apply                                                               */
/* ------------------------------------------------------------------ */

static void
apply_put(struct tree *t, const struct store_proposal *p, int64_t exp, struct store_result *res)
{
	bool dir = p->flags & STORE_PF_DIR;
	bool refresh = p->flags & STORE_PF_REFRESH;
	bool has_pv = p->flags & STORE_PF_PREV_VALUE;
	const char *pv = has_pv ? p->prev_value : NULL;
	size_t pvl = has_pv ? p->prev_value_len : 0;

	if (p->flags & STORE_PF_PREV_EXIST_SET) {
		if (p->flags & STORE_PF_PREV_EXIST) {
			if (p->prev_index == 0 && !has_pv)
				res->rc = tree_update(t, p->path, p->path_len, p->value, p->value_len, exp,
					refresh, &res->ev, &res->err);
			else
				res->rc = tree_cas(t, p->path, p->path_len, pv, pvl, p->prev_index, p->value,
					p->value_len, exp, refresh, &res->ev, &res->err);
			return;
		}
		res->rc = tree_create(t, p->path, p->path_len, dir, p->value, p->value_len, false, exp,
			&res->ev, &res->err);
		return;
	}
	if (p->prev_index > 0 || has_pv) {
		res->rc = tree_cas(t, p->path, p->path_len, pv, pvl, p->prev_index, p->value, p->value_len,
			exp, refresh, &res->ev, &res->err);
		return;
	}
	res->rc = tree_set(t, p->path, p->path_len, dir, p->value, p->value_len, exp, refresh, &res->ev,
		&res->err);
}

/* "/_\0etcd/<dir>/<hex id>[/<leaf>]" into out (at least 80 bytes). */
static size_t
member_key(char *out, const char *dir, uint64_t id, const char *leaf)
{
	char hex[17];
	size_t n = 0, l;

	memcpy(out, STORE_INTERNAL_DIR, STORE_INTERNAL_DIR_LEN);
	n = STORE_INTERNAL_DIR_LEN;
	out[n++] = '/';
	l = strlen(dir);
	memcpy(out + n, dir, l);
	n += l;
	out[n++] = '/';
	store_id_str(id, hex);
	l = strlen(hex);
	memcpy(out + n, hex, l);
	n += l;
	if (leaf != NULL) {
		out[n++] = '/';
		l = strlen(leaf);
		memcpy(out + n, leaf, l);
		n += l;
	}
	return n;
}

void
store_proposal_apply(struct tree *t, const struct store_proposal *p, struct store_result *res)
{
	int64_t exp = store_proposal_expire_ns(p);
	char key[96];
	size_t klen;
	int n;

	memset(res, 0, sizeof(*res));
	/* Events carry the ttl computed at the proposer's time, so a replay
	 * renders the same bytes as the first apply did. */
	if (p->op != STORE_OP_QGET && p->op != STORE_OP_NOOP)
		tree_set_now(t, p->time_ns);
	switch (p->op) {
	case STORE_OP_NOOP:
		break;
	case STORE_OP_POST:
		res->rc = tree_create(t, p->path, p->path_len, p->flags & STORE_PF_DIR, p->value, p->value_len,
			true, exp, &res->ev, &res->err);
		break;
	case STORE_OP_PUT:
		apply_put(t, p, exp, res);
		break;
	case STORE_OP_DELETE:
		if (p->prev_index > 0 || (p->flags & STORE_PF_PREV_VALUE))
			res->rc = tree_cad(t, p->path, p->path_len,
				(p->flags & STORE_PF_PREV_VALUE) ? p->prev_value : NULL,
				(p->flags & STORE_PF_PREV_VALUE) ? p->prev_value_len : 0, p->prev_index,
				&res->ev, &res->err);
		else
			res->rc = tree_delete(t, p->path, p->path_len, p->flags & STORE_PF_DIR,
				p->flags & STORE_PF_RECURSIVE, &res->ev, &res->err);
		break;
	case STORE_OP_QGET:
		res->rc = tree_get(t, p->path, p->path_len, p->flags & STORE_PF_RECURSIVE,
			p->flags & STORE_PF_SORTED, &res->get, &res->err);
		res->is_get = res->rc == 0;
		break;
	case STORE_OP_EXPIRE:
		n = tree_delete_expired(t, p->time_ns);
		if (n < 0)
			res->rc = n;
		else
			res->expired = n;
		break;
	case STORE_OP_MEMBER_ADD:
		klen = member_key(key, "members", p->member_id, "raftAttributes");
		res->rc = tree_create(t, key, klen, false, p->value, p->value_len, false, TREE_PERMANENT,
			&res->ev, &res->err);
		break;
	case STORE_OP_MEMBER_REMOVE: {
		struct tree_event *ev = NULL;

		klen = member_key(key, "members", p->member_id, NULL);
		res->rc = tree_delete(t, key, klen, true, true, &ev, &res->err);
		tree_event_unref(ev);
		if (res->rc != 0)
			break;
		klen = member_key(key, "removed_members", p->member_id, NULL);
		res->rc = tree_create(t, key, klen, false, "", 0, false, TREE_PERMANENT, &res->ev, &res->err);
		break;
	}
	default:
		res->rc = -ERR_INVAL;
		break;
	}
}

void
store_result_free(struct store_result *res)
{
	tree_event_unref(res->ev);
	tree_error_free(&res->err);
	memset(res, 0, sizeof(*res));
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/*
 * Go's path.Clean of a rooted path into out; returns the length. With virt
 * the path is "/" followed by p[0 .. n) (the slash net/http's cleanPath adds
 * to a relative path), without it p itself, which must start with '/'.
 */
static size_t
clean_rooted(const char *p, size_t n, bool virt, char *out)
{
	size_t total = n + (virt ? 1 : 0);
	size_t r = 1, w = 1, dotdot = 1;

#define AT(i) (virt ? p[(i) - 1] : p[(i)])
	out[0] = '/';
	while (r < total) {
		if (AT(r) == '/') {
			r++;
		} else if (AT(r) == '.' && (r + 1 == total || AT(r + 1) == '/')) {
			r++;
		} else if (AT(r) == '.' && r + 1 < total && AT(r + 1) == '.' &&
		    (r + 2 == total || AT(r + 2) == '/')) {
			r += 2;
			if (w > dotdot) {
				w--;
				while (w > dotdot && out[w] != '/')
					w--;
			}
		} else {
			if (w != 1)
				out[w++] = '/';
			while (r < total && AT(r) != '/') {
				out[w++] = AT(r);
				r++;
			}
		}
	}
#undef AT
	return w;
}

size_t
store_clean_path(const char *p, size_t len, char *out)
{
	size_t n;

	if (len == 0) {
		out[0] = '/';
		return 1;
	}
	n = clean_rooted(p, len, p[0] != '/', out);
	if (p[len - 1] == '/' && n != 1)
		out[n++] = '/';
	return n;
}

int
store_parse_uint10(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return -ERR_PARSE;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -ERR_PARSE;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10) {
			/* Go still reports a syntax error if a later byte is bad. */
			for (size_t j = i + 1; j < len; j++)
				if (s[j] < '0' || s[j] > '9')
					return -ERR_PARSE;
			return -ERR_RANGE;
		}
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static uint64_t
be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

uint64_t
store_member_id(const char *const *urls, size_t n, const char *token)
{
	mbedtls_sha1_context ctx;
	unsigned char sum[20];
	const char **sorted;

	sorted = mem_calloc(n ? n : 1, sizeof(*sorted));
	if (sorted == NULL)
		return 0;
	memcpy(sorted, urls, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_str);
	mbedtls_sha1_init(&ctx);
	mbedtls_sha1_starts_ret(&ctx);
	for (size_t i = 0; i < n; i++)
		mbedtls_sha1_update_ret(&ctx, (const unsigned char *)sorted[i], strlen(sorted[i]));
	if (token != NULL)
		mbedtls_sha1_update_ret(&ctx, (const unsigned char *)token, strlen(token));
	mbedtls_sha1_finish_ret(&ctx, sum);
	mbedtls_sha1_free(&ctx);
	mem_free(sorted);
	return be64(sum);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t
store_cluster_id(const uint64_t *ids, size_t n)
{
	mbedtls_sha1_context ctx;
	unsigned char sum[20], b[8];
	uint64_t *sorted;

	sorted = mem_calloc(n ? n : 1, sizeof(*sorted));
	if (sorted == NULL)
		return 0;
	memcpy(sorted, ids, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_u64);
	mbedtls_sha1_init(&ctx);
	mbedtls_sha1_starts_ret(&ctx);
	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < 8; k++)
			b[k] = (unsigned char)(sorted[i] >> (56 - 8 * k));
		mbedtls_sha1_update_ret(&ctx, b, 8);
	}
	mbedtls_sha1_finish_ret(&ctx, sum);
	mbedtls_sha1_free(&ctx);
	mem_free(sorted);
	return be64(sum);
}

void
store_id_str(uint64_t id, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	char tmp[17];
	int n = 0;

	do {
		tmp[n++] = hex[id & 0xf];
		id >>= 4;
	} while (id != 0);
	for (int i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
}
