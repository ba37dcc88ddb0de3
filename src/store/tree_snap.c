/*
 * tree_snap: the tree's snapshot encoding and its content hash.
 *
 * Format (version 1), all integers LEB128 varints unless noted:
 *   "CBTR" (4 bytes), version (1 byte, = 1), flags (1 byte, = 0),
 *   current index, node count (root included),
 *   then every node in pre-order, the root first:
 *     kind (1 byte: 0 file, 1 directory), name length, name bytes,
 *     createdIndex, modifiedIndex, expiry (zigzag; 0 = permanent),
 *     file: value length, value bytes; directory: number of children,
 *     followed by the children's records.
 * The file framing and checksum are the caller's (snapfile).
 *
 * The decoder takes hostile bytes: it must never read out of bounds,
 * recurse, allocate more than the input justifies, or return a tree that
 * breaks an invariant the operations rely on (unique names, names that a
 * clean path can reach, bounded depth, indexes not above the current
 * index). It never touches anything but the new tree it builds.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/tree.h"
#include "tree_int.h"

#define SNAP_MAGIC "CBTR"
#define SNAP_VERSION 1
/* Smallest possible node record: kind, name length, one name byte,
 * created, modified, expiry, value length or child count. */
#define SNAP_NODE_BYTES_MIN 7

static int
put_uvarint(struct buf *b, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;

	while (v >= 0x80) {
		tmp[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	tmp[n++] = (unsigned char)v;
	return buf_append(b, tmp, n);
}

static uint64_t
zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t
unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static int
save_node(const struct tree_node *n, struct buf *out)
{
	bool dir = node_is_dir(n);

	if (buf_putc(out, dir ? 1 : 0) != 0 || put_uvarint(out, n->name_len) != 0 ||
	    buf_append(out, node_name(n), n->name_len) != 0 || put_uvarint(out, n->created) != 0 ||
	    put_uvarint(out, n->modified) != 0 || put_uvarint(out, zigzag(n->expire)) != 0)
		return -ERR_NOMEM;
	if (!dir)
		return (put_uvarint(out, n->len) != 0 || buf_append(out, node_value(n), n->len) != 0) ? -ERR_NOMEM : 0;
	if (put_uvarint(out, n->len) != 0)
		return -ERR_NOMEM;
	for (size_t i = 0, cap = dir_cap(n); i < cap; i++) {
		struct tree_node *c = dir_slots(n)[i];

		if (c != NULL && save_node(c, out) != 0)
			return -ERR_NOMEM;
	}
	return 0;
}

int
tree_snapshot_save(const struct tree *t, struct buf *out)
{
	size_t start = out->len;

	if (buf_append(out, SNAP_MAGIC, 4) != 0 || buf_putc(out, SNAP_VERSION) != 0 || buf_putc(out, 0) != 0 ||
	    put_uvarint(out, t->index) != 0 || put_uvarint(out, t->nodes) != 0 || save_node(t->root, out) != 0) {
		out->len = start;
		return -ERR_NOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

struct reader {
	const unsigned char *p;
	size_t len, off;
	char *errmsg;
	size_t errlen;
};

static int
bad(struct reader *r, int rc, const char *what)
{
	if (r->errmsg != NULL && r->errlen > 0)
		snprintf(r->errmsg, r->errlen, "tree snapshot: %s at offset %zu", what, r->off);
	return rc;
}

static int
get_uvarint(struct reader *r, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		unsigned char b;

		if (r->off >= r->len)
			return -1;
		b = r->p[r->off++];
		if (shift == 63 && b > 1)
			return -1;
		x |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

struct frame {
	struct tree_node *dir;
	uint64_t left;	/* children still to read */
	size_t plen;	/* length of dir's path */
};

static bool
name_ok(const unsigned char *s, size_t n)
{
	if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	return memchr(s, '/', n) == NULL;
}

int
tree_snapshot_load(const void *data, size_t len, uint64_t seed, struct watch_hub *hub, struct tree **out,
    char *errmsg, size_t errmsg_len)
{
	struct reader r = { data, len, 0, errmsg, errmsg_len };
	struct frame stack[TREE_DEPTH_MAX + 1];
	size_t depth = 0;
	uint64_t index, count, seen = 0;
	struct tree *t;
	int rc;

	*out = NULL;
	if (errmsg != NULL && errmsg_len > 0)
		errmsg[0] = '\0';
	if (len < 6 || memcmp(data, SNAP_MAGIC, 4) != 0)
		return bad(&r, -ERR_CORRUPT, "bad magic");
	if (r.p[4] != SNAP_VERSION) {
		r.off = 4;
		return bad(&r, -ERR_UNSUPPORTED, "unknown version");
	}
	if (r.p[5] != 0) {
		r.off = 5;
		return bad(&r, -ERR_CORRUPT, "unknown flags");
	}
	r.off = 6;
	if (get_uvarint(&r, &index) != 0 || get_uvarint(&r, &count) != 0)
		return bad(&r, -ERR_CORRUPT, "truncated header");
	if (count == 0 || count - 1 > (len - r.off) / SNAP_NODE_BYTES_MIN)
		return bad(&r, -ERR_CORRUPT, "node count larger than the data");
	t = tree_alloc(seed, hub);
	if (t == NULL)
		return bad(&r, -ERR_NOMEM, "out of memory");
	t->index = index;
	t->nodes = 0;
	for (;;) {
		uint64_t name_len, created, modified, expire, n;
		size_t at = r.off, plen;
		unsigned char kind;
		const unsigned char *name;
		struct tree_node *node;

		if (depth == 0 && seen > 0)
			break;
		if (r.off >= r.len) {
			rc = bad(&r, -ERR_CORRUPT, "truncated node");
			goto fail;
		}
		kind = r.p[r.off++];
		if (kind > 1) {
			rc = bad(&r, -ERR_CORRUPT, "bad node kind");
			goto fail;
		}
		if (get_uvarint(&r, &name_len) != 0 || name_len > r.len - r.off) {
			rc = bad(&r, -ERR_CORRUPT, "bad name length");
			goto fail;
		}
		name = r.p + r.off;
		r.off += name_len;
		if (seen == 0 ? (name_len != 0 || kind != 1) : !name_ok(name, name_len)) {
			r.off = at;
			rc = bad(&r, -ERR_CORRUPT, seen == 0 ? "bad root" : "bad name");
			goto fail;
		}
		if (get_uvarint(&r, &created) != 0 || get_uvarint(&r, &modified) != 0 ||
		    get_uvarint(&r, &expire) != 0 || get_uvarint(&r, &n) != 0) {
			rc = bad(&r, -ERR_CORRUPT, "truncated node");
			goto fail;
		}
		if (created > index || modified > index) {
			r.off = at;
			rc = bad(&r, -ERR_CORRUPT, "node index above the store index");
			goto fail;
		}
		if (kind == 0 && (n > r.len - r.off || n > UINT32_MAX)) {
			rc = bad(&r, -ERR_CORRUPT, "bad value length");
			goto fail;
		}
		if (kind == 1 && n > (r.len - r.off) / SNAP_NODE_BYTES_MIN) {
			rc = bad(&r, -ERR_CORRUPT, "child count larger than the data");
			goto fail;
		}
		if (++seen > count) {
			r.off = at;
			rc = bad(&r, -ERR_CORRUPT, "more nodes than announced");
			goto fail;
		}
		if (seen > 1 && depth > TREE_DEPTH_MAX) {
			r.off = at;
			rc = bad(&r, -ERR_CORRUPT, "tree too deep");
			goto fail;
		}
		node = tree_node_alloc(kind == 1, (const char *)name, (size_t)name_len,
		    (const char *)(r.p + r.off), kind == 0 ? (size_t)n : 0);
		if (node == NULL) {
			rc = bad(&r, -ERR_NOMEM, "out of memory");
			goto fail;
		}
		if (kind == 0)
			r.off += n;
		node->created = created;
		node->modified = modified;
		node->expire = unzigzag(expire);
		if (seen == 1) {
			t->root = node;
			t->nodes = 1;
			plen = 1;
		} else {
			struct frame *f = &stack[depth - 1];

			if (tree_child(t, f->dir, node_name(node), node->name_len) != NULL) {
				mem_free(node);
				r.off = at;
				rc = bad(&r, -ERR_CORRUPT, "duplicate name");
				goto fail;
			}
			if (tree_dir_reserve(t, f->dir, 1) != 0) {
				mem_free(node);
				rc = bad(&r, -ERR_NOMEM, "out of memory");
				goto fail;
			}
			tree_dir_insert(t, f->dir, node);
			t->nodes++;
			f->left--;
			plen = f->plen + (f->plen > 1 ? 1 : 0) + node->name_len;
		}
		if (tree_scratch_reserve(t, plen) != 0) {
			rc = bad(&r, -ERR_NOMEM, "out of memory");
			goto fail;
		}
		if (node->expire != TREE_PERMANENT) {
			if (seen == 1) {
				r.off = at;
				rc = bad(&r, -ERR_CORRUPT, "root with a TTL");
				goto fail;
			}
			if (tree_heap_reserve(t, 1) != 0) {
				rc = bad(&r, -ERR_NOMEM, "out of memory");
				goto fail;
			}
			tree_heap_push(t, node);
		}
		if (kind == 1 && n > 0) {
			if (depth > TREE_DEPTH_MAX) {
				r.off = at;
				rc = bad(&r, -ERR_CORRUPT, "tree too deep");
				goto fail;
			}
			stack[depth].dir = node;
			stack[depth].left = n;
			stack[depth].plen = plen;
			depth++;
		}
		while (depth > 0 && stack[depth - 1].left == 0)
			depth--;
	}
	if (seen != count) {
		rc = bad(&r, -ERR_CORRUPT, "fewer nodes than announced");
		goto fail;
	}
	if (r.off != r.len) {
		rc = bad(&r, -ERR_CORRUPT, "trailing bytes");
		goto fail;
	}
	*out = t;
	return 0;
fail:
	tree_free(t);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Content hash                                                        */
/* ------------------------------------------------------------------ */

/* Fixed keys: the hash must not depend on the tree's seed. */
#define HK0 UINT64_C(0x0706050403020100)
#define HK1 UINT64_C(0x0f0e0d0c0b0a0908)

static void
put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/*
 * Sum of per-node digests: order-independent, so neither insertion order
 * nor table layout matters. A node's digest covers its full path (chained
 * through the parent's path hash), kind, indexes, expiry and value.
 */
static uint64_t
hash_node(const struct tree_node *n, uint64_t ph, uint64_t *sum)
{
	unsigned char rec[49];
	uint64_t vh = node_is_dir(n) ? 0 : tree_siphash(HK0, HK1, node_value(n), n->len);

	put64(rec, ph);
	rec[8] = node_is_dir(n) ? 1 : 0;
	put64(rec + 9, n->created);
	put64(rec + 17, n->modified);
	put64(rec + 25, (uint64_t)n->expire);
	put64(rec + 33, vh);
	put64(rec + 41, node_is_dir(n) ? 0 : n->len);
	*sum += tree_siphash(HK0, HK1, rec, sizeof(rec));
	if (node_is_dir(n)) {
		for (size_t i = 0, cap = dir_cap(n); i < cap; i++) {
			const struct tree_node *c = dir_slots(n)[i];

			if (c != NULL)
				hash_node(c, tree_siphash(ph, HK1, node_name(c), c->name_len), sum);
		}
	}
	return *sum;
}

uint64_t
tree_hash(const struct tree *t)
{
	unsigned char fin[24];
	uint64_t sum = 0;

	hash_node(t->root, tree_siphash(HK0, HK1, "/", 1), &sum);
	put64(fin, sum);
	put64(fin + 8, t->index);
	put64(fin + 16, t->nodes);
	return tree_siphash(HK0, HK1, fin, sizeof(fin));
}
