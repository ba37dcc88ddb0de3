/*
 * tree: the etcd v2 key space, operations and events (etcd v2.3 / v2store
 * store.go and node.go semantics, quirks included).
 *
 * Pure: this file must never read a clock, touch a file or socket, or draw a
 * random number; time comes in through tree_set_now/tree_delete_expired and
 * everything observable is a function of the calls made. Every write checks
 * and allocates everything it needs before it changes anything, so a failed
 * call (etcd error or -ERR_NOMEM) leaves the tree exactly as it was.
 *
 * Rendering (JSON) lives in tree_json.c and snapshots in tree_snap.c; they
 * share the node layout through tree_int.h.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/tree.h"
#include "corebox/watch.h"
#include "tree_int.h"

/* Go's minExpireTime: expiry times before 2000-01-01T00:00:00Z are taken as
 * "no TTL" by create and set (they come from zero times serialized by JS). */
#define MIN_EXPIRE_NS (INT64_C(946684800) * INT64_C(1000000000))

/* A value larger than this cannot be stored (the node keeps a 32-bit
 * length). The HTTP layer limits bodies far below it. */
#define VALUE_BYTES_MAX UINT32_MAX

/* ------------------------------------------------------------------ */
/* Paths                                                               */
/* ------------------------------------------------------------------ */

size_t
tree_path_clean(char *dst, const char *src, size_t len)
{
	size_t o = 1, i = 0;

	dst[0] = '/';
	while (i < len) {
		size_t s, n;

		while (i < len && src[i] == '/')
			i++;
		s = i;
		while (i < len && src[i] != '/')
			i++;
		n = i - s;
		if (n == 0 || (n == 1 && src[s] == '.'))
			continue;
		if (n == 2 && src[s] == '.' && src[s + 1] == '.') {
			/* Back to the previous '/', never above the root. */
			while (o > 1 && dst[o - 1] != '/')
				o--;
			if (o > 1)
				o--;
			continue;
		}
		if (o > 1)
			dst[o++] = '/';
		memcpy(dst + o, src + s, n);
		o += n;
	}
	return o;
}

/* ------------------------------------------------------------------ */
/* Hashing: SipHash-1-3, keyed per tree so children tables resist      */
/* collision flooding by whoever chooses key names.                    */
/* ------------------------------------------------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                        \
	do {                                                            \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                  \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                  \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

static uint64_t
load_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint64_t
tree_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
	uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
	uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
	uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);
	uint64_t b = (uint64_t)len << 56, m;
	size_t i, left = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		m = load_le64(p + i);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	switch (left) {
	case 7: b |= (uint64_t)p[i + 6] << 48; /* fall through */
	case 6: b |= (uint64_t)p[i + 5] << 40; /* fall through */
	case 5: b |= (uint64_t)p[i + 4] << 32; /* fall through */
	case 4: b |= (uint64_t)p[i + 3] << 24; /* fall through */
	case 3: b |= (uint64_t)p[i + 2] << 16; /* fall through */
	case 2: b |= (uint64_t)p[i + 1] << 8; /* fall through */
	case 1: b |= (uint64_t)p[i]; /* fall through */
	default: break;
	}
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t
name_hash(const struct tree *t, const char *name, size_t len)
{
	return tree_siphash(t->k0, t->k1, name, len);
}

/* ------------------------------------------------------------------ */
/* Nodes and children tables                                           */
/* ------------------------------------------------------------------ */

struct tree_node *
tree_node_alloc(bool dir, const char *name, size_t name_len, const char *value, size_t value_len)
{
	size_t extra = dir ? sizeof(struct tree_node **) : 0;
	struct tree_node *n;

	if (name_len > UINT32_MAX || value_len > VALUE_BYTES_MAX)
		return NULL;
	n = mem_alloc(sizeof(*n) + extra + name_len + (dir ? 0 : value_len));
	if (n == NULL)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->flags = dir ? NODE_DIR : 0;
	n->name_len = (uint32_t)name_len;
	if (dir) {
		struct tree_node **none = NULL;

		memcpy(n->data, &none, sizeof(none));
	} else {
		n->len = (uint32_t)value_len;
		if (value_len > 0)
			memcpy(n->data + name_len, value, value_len);
	}
	if (name_len > 0)
		memcpy(node_name(n), name, name_len);
	return n;
}

struct tree_node *
tree_child(const struct tree *t, const struct tree_node *dir, const char *name, size_t len)
{
	struct tree_node **slots = dir_slots(dir);
	size_t mask, i;

	if (slots == NULL)
		return NULL;
	mask = ((size_t)1 << dir->cap_log2) - 1;
	i = (size_t)name_hash(t, name, len) & mask;
	for (;;) {
		struct tree_node *c = slots[i];

		if (c == NULL)
			return NULL;
		if (c->name_len == len && memcmp(node_name(c), name, len) == 0)
			return c;
		i = (i + 1) & mask;
	}
}

/* Places c into a table known to have a free slot and no child of that
 * name. */
static void
slots_place(const struct tree *t, struct tree_node **slots, unsigned cap_log2, struct tree_node *c)
{
	size_t mask = ((size_t)1 << cap_log2) - 1;
	size_t i = (size_t)name_hash(t, node_name(c), c->name_len) & mask;

	while (slots[i] != NULL)
		i = (i + 1) & mask;
	slots[i] = c;
}

/* Rebuilds dir's table with 1 << cap_log2 slots. */
static int
dir_rehash(const struct tree *t, struct tree_node *dir, unsigned cap_log2)
{
	struct tree_node **old = dir_slots(dir), **nw;
	size_t oldcap = old ? (size_t)1 << dir->cap_log2 : 0;

	nw = mem_calloc((size_t)1 << cap_log2, sizeof(*nw));
	if (nw == NULL)
		return -ERR_NOMEM;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i] != NULL)
			slots_place(t, nw, cap_log2, old[i]);
	mem_free(old);
	dir_set_slots(dir, nw);
	dir->cap_log2 = (uint8_t)cap_log2;
	return 0;
}

/* Makes room for extra more children (load factor at most 3/4). Changes
 * only the table layout, so it may run before a write is known to succeed. */
int
tree_dir_reserve(const struct tree *t, struct tree_node *dir, size_t extra)
{
	size_t want = (size_t)dir->len + extra;
	unsigned lg = dir_slots(dir) ? dir->cap_log2 : 0;

	if (dir_slots(dir) != NULL && want * 4 <= ((size_t)3 << lg))
		return 0;
	if (lg < 2)
		lg = 2;
	while (want * 4 > ((size_t)3 << lg)) {
		if (lg >= 40)
			return -ERR_NOMEM;
		lg++;
	}
	return dir_rehash(t, dir, lg);
}

/* Adds c under dir; room must have been reserved. */
void
tree_dir_insert(const struct tree *t, struct tree_node *dir, struct tree_node *c)
{
	slots_place(t, dir_slots(dir), dir->cap_log2, c);
	dir->len++;
	c->parent = dir;
}

static size_t
dir_slot_of(const struct tree *t, const struct tree_node *dir, const struct tree_node *c)
{
	struct tree_node **slots = dir_slots(dir);
	size_t mask = ((size_t)1 << dir->cap_log2) - 1;
	size_t i = (size_t)name_hash(t, node_name(c), c->name_len) & mask;

	while (slots[i] != c)
		i = (i + 1) & mask;
	return i;
}

/* Replaces child old by nw (same name) in its parent's table. */
static void
dir_swap_child(const struct tree *t, struct tree_node *dir, struct tree_node *old, struct tree_node *nw)
{
	dir_slots(dir)[dir_slot_of(t, dir, old)] = nw;
	nw->parent = dir;
}

/* Unlinks c from dir (backward-shift deletion keeps probing correct
 * without tombstones) and shrinks the table when it is mostly empty. */
static void
dir_unlink(const struct tree *t, struct tree_node *dir, struct tree_node *c)
{
	struct tree_node **slots = dir_slots(dir);
	size_t mask = ((size_t)1 << dir->cap_log2) - 1;
	size_t i = dir_slot_of(t, dir, c), j = i;

	slots[i] = NULL;
	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (slots[j] == NULL)
			break;
		k = (size_t)name_hash(t, node_name(slots[j]), slots[j]->name_len) & mask;
		/* Move slots[j] back if its home k is not cyclically in (i, j]. */
		if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		slots[i] = slots[j];
		slots[j] = NULL;
		i = j;
	}
	dir->len--;
	/* c->parent stays: a removed subtree is freed bottom-up and its TTL
	 * nodes still compare by full path while they leave the heap. */
	if (dir->len == 0) {
		mem_free(slots);
		dir_set_slots(dir, NULL);
		dir->cap_log2 = 0;
	} else if (dir->cap_log2 > 3 && (size_t)dir->len * 8 < ((size_t)1 << dir->cap_log2)) {
		/* Best effort: a failed shrink only keeps the bigger table. */
		(void)dir_rehash(t, dir, dir->cap_log2 - 1u);
	}
}

/* ------------------------------------------------------------------ */
/* TTL heap: min-heap on (expiry, createdIndex, path), a total order   */
/* that depends only on the contents, so every member expires nodes in */
/* the same order.                                                     */
/* ------------------------------------------------------------------ */

static size_t
node_ancestors(const struct tree_node *n, const struct tree_node **v)
{
	size_t d = 0;

	for (; n != NULL && n->parent != NULL; n = n->parent)
		v[d++] = n;
	return d; /* v[d-1] is the top-level ancestor */
}

int
tree_node_path_cmp(const struct tree_node *a, const struct tree_node *b)
{
	const struct tree_node *va[TREE_DEPTH_MAX + 1], *vb[TREE_DEPTH_MAX + 1];
	size_t da = node_ancestors(a, va), db = node_ancestors(b, vb);

	while (da > 0 && db > 0) {
		const struct tree_node *x = va[--da], *y = vb[--db];
		size_t m = x->name_len < y->name_len ? x->name_len : y->name_len;
		int c = memcmp(node_name(x), node_name(y), m);

		if (c != 0)
			return c;
		if (x->name_len != y->name_len)
			return x->name_len < y->name_len ? -1 : 1;
	}
	if (da == db)
		return 0;
	return da == 0 ? -1 : 1;
}

static bool
heap_less(const struct tree_node *a, const struct tree_node *b)
{
	if (a->expire != b->expire)
		return a->expire < b->expire;
	if (a->created != b->created)
		return a->created < b->created;
	return tree_node_path_cmp(a, b) < 0;
}

static void
heap_set(struct tree *t, size_t i, struct tree_node *n)
{
	t->heap[i] = n;
	n->heap_pos = (uint32_t)(i + 1);
}

static void
heap_up(struct tree *t, size_t i)
{
	struct tree_node *n = t->heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!heap_less(n, t->heap[p]))
			break;
		heap_set(t, i, t->heap[p]);
		i = p;
	}
	heap_set(t, i, n);
}

static void
heap_down(struct tree *t, size_t i)
{
	struct tree_node *n = t->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		const struct tree_node *best = n;

		if (l < t->heap_len && heap_less(t->heap[l], best)) {
			m = l;
			best = t->heap[l];
		}
		if (l + 1 < t->heap_len && heap_less(t->heap[l + 1], best))
			m = l + 1;
		if (m == i)
			break;
		heap_set(t, i, t->heap[m]);
		i = m;
	}
	heap_set(t, i, n);
}

int
tree_heap_reserve(struct tree *t, size_t extra)
{
	size_t want = t->heap_len + extra, cap;
	struct tree_node **h;

	if (want <= t->heap_cap)
		return 0;
	if (want > UINT32_MAX - 1)
		return -ERR_NOMEM;
	cap = t->heap_cap ? t->heap_cap : 16;
	while (cap < want)
		cap *= 2;
	h = mem_realloc(t->heap, cap * sizeof(*h));
	if (h == NULL)
		return -ERR_NOMEM;
	t->heap = h;
	t->heap_cap = cap;
	return 0;
}

/* Room must have been reserved. */
void
tree_heap_push(struct tree *t, struct tree_node *n)
{
	t->heap_len++;
	heap_set(t, t->heap_len - 1, n);
	heap_up(t, t->heap_len - 1);
}

static void
heap_remove(struct tree *t, struct tree_node *n)
{
	size_t i = (size_t)n->heap_pos - 1;
	struct tree_node *last;

	n->heap_pos = 0;
	t->heap_len--;
	if (i == t->heap_len)
		return;
	last = t->heap[t->heap_len];
	heap_set(t, i, last);
	heap_down(t, i);
	heap_up(t, (size_t)last->heap_pos - 1);
}

static void
heap_fix(struct tree *t, struct tree_node *n)
{
	size_t i = (size_t)n->heap_pos - 1;

	heap_down(t, i);
	heap_up(t, (size_t)n->heap_pos - 1);
}

/* ------------------------------------------------------------------ */
/* Events and errors                                                   */
/* ------------------------------------------------------------------ */

static const char *const action_names[] = {
	[TREE_GET] = "get",
	[TREE_SET] = "set",
	[TREE_CREATE] = "create",
	[TREE_UPDATE] = "update",
	[TREE_CAS] = "compareAndSwap",
	[TREE_DELETE] = "delete",
	[TREE_CAD] = "compareAndDelete",
	[TREE_EXPIRE] = "expire",
};

const char *
tree_action_name(enum tree_action a)
{
	if ((unsigned)a >= sizeof(action_names) / sizeof(action_names[0]))
		return "";
	return action_names[a];
}

struct tree_event *
tree_event_ref(struct tree_event *ev)
{
	if (ev != NULL && ev->refs > 0)
		ev->refs++;
	return ev;
}

void
tree_event_unref(struct tree_event *ev)
{
	if (ev == NULL || ev->refs == 0)
		return;
	if (--ev->refs == 0)
		mem_free(ev);
}

/*
 * One allocation holding the event, its key, the node's value and the
 * previous node's value, each NUL-terminated for convenience.
 */
static struct tree_event *
event_new(enum tree_action action, const char *key, size_t key_len, const char *value, size_t value_len,
    bool has_value, const struct tree_node *prev, int64_t now)
{
	size_t prev_len = (prev != NULL && !node_is_dir(prev)) ? prev->len : 0;
	size_t need = sizeof(struct tree_event) + key_len + 1 + value_len + 1 + prev_len + 1;
	struct tree_event *ev;
	char *p;

	if (value_len > SIZE_MAX / 4 || key_len > SIZE_MAX / 4)
		return NULL;
	ev = mem_alloc(need);
	if (ev == NULL)
		return NULL;
	memset(ev, 0, sizeof(*ev));
	p = (char *)(ev + 1);
	ev->action = action;
	ev->refs = 1;
	ev->now_ns = now;
	memcpy(p, key, key_len);
	p[key_len] = '\0';
	ev->node.key = p;
	ev->node.key_len = key_len;
	p += key_len + 1;
	if (has_value) {
		if (value_len > 0)
			memcpy(p, value, value_len);
		p[value_len] = '\0';
		ev->node.value = p;
		ev->node.value_len = value_len;
	}
	p += value_len + 1;
	if (prev != NULL) {
		ev->has_prev = true;
		ev->prev.key = ev->node.key;
		ev->prev.key_len = key_len;
		ev->prev.dir = node_is_dir(prev);
		if (!node_is_dir(prev)) {
			if (prev_len > 0)
				memcpy(p, node_value(prev), prev_len);
			p[prev_len] = '\0';
			ev->prev.value = p;
			ev->prev.value_len = prev_len;
		}
		ev->prev.expire_ns = prev->expire;
		ev->prev.modified_index = prev->modified;
		ev->prev.created_index = prev->created;
	}
	return ev;
}

void
tree_error_free(struct tree_error *err)
{
	if (err == NULL)
		return;
	mem_free(err->cause);
	err->cause = NULL;
	err->cause_len = 0;
	err->code = 0;
	err->index = 0;
}

int
tree_error_set(struct tree_error *err, int code, const char *cause, size_t cause_len, uint64_t index)
{
	char *c = NULL;

	if (err == NULL)
		return 0;
	if (cause_len > 0) {
		c = mem_alloc(cause_len + 1);
		if (c == NULL)
			return -ERR_NOMEM;
		memcpy(c, cause, cause_len);
		c[cause_len] = '\0';
	}
	tree_error_free(err);
	err->code = code;
	err->cause = c;
	err->cause_len = cause_len;
	err->index = index;
	return 0;
}

/* Reports an etcd error: -ERR_INVAL, or -ERR_NOMEM if even the cause could
 * not be copied (the caller then answers 500 instead of the etcd body). */
static int
fail(struct tree_error *err, int code, const char *cause, size_t cause_len, uint64_t index)
{
	if (tree_error_set(err, code, cause, cause_len, index) != 0)
		return -ERR_NOMEM;
	return -ERR_INVAL;
}

/* etcd's getCompareFailCause. */
static int
fail_compare(struct tree_error *err, const struct tree_node *n, bool value_bad, bool index_bad,
    const char *pv, size_t pvlen, uint64_t pi, uint64_t index)
{
	char a[24], b[24];
	int al = snprintf(a, sizeof(a), "%llu", (unsigned long long)pi);
	int bl = snprintf(b, sizeof(b), "%llu", (unsigned long long)n->modified);
	size_t cap = pvlen + n->len + 64, len = 0;
	char *c;
	int rc;

	if (err == NULL)
		return -ERR_INVAL;
	c = mem_alloc(cap);
	if (c == NULL)
		return -ERR_NOMEM;
#define PUT(p, l) do { memcpy(c + len, (p), (l)); len += (l); } while (0)
	if (value_bad) {
		PUT("[", 1);
		PUT(pv, pvlen);
		PUT(" != ", 4);
		PUT(node_value(n), n->len);
		PUT("]", 1);
	}
	if (value_bad && index_bad)
		PUT(" ", 1);
	if (index_bad) {
		PUT("[", 1);
		PUT(a, (size_t)al);
		PUT(" != ", 4);
		PUT(b, (size_t)bl);
		PUT("]", 1);
	}
#undef PUT
	rc = fail(err, TREE_E_TEST_FAILED, c, len, index);
	mem_free(c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Tree                                                                */
/* ------------------------------------------------------------------ */

struct tree *
tree_alloc(uint64_t seed, struct watch_hub *hub)
{
	struct tree *t = mem_calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->k0 = seed ^ UINT64_C(0x9e3779b97f4a7c15);
	t->k1 = (seed << 1) ^ UINT64_C(0xc2b2ae3d27d4eb4f);
	t->hub = hub;
	t->nodes = 1;
	return t;
}

struct tree *
tree_new(uint64_t seed, struct watch_hub *hub)
{
	struct tree *t = tree_alloc(seed, hub);

	if (t == NULL)
		return NULL;
	t->root = tree_node_alloc(true, "", 0, NULL, 0);
	if (t->root == NULL) {
		mem_free(t);
		return NULL;
	}
	return t;
}

/* Frees a subtree (post-order, depth bounded by TREE_DEPTH_MAX). */
void
tree_node_free_all(struct tree_node *n)
{
	if (node_is_dir(n)) {
		struct tree_node **slots = dir_slots(n);

		if (slots != NULL) {
			size_t cap = (size_t)1 << n->cap_log2;

			for (size_t i = 0; i < cap; i++)
				if (slots[i] != NULL)
					tree_node_free_all(slots[i]);
			mem_free(slots);
		}
	}
	mem_free(n);
}

void
tree_free(struct tree *t)
{
	if (t == NULL)
		return;
	if (t->root != NULL)
		tree_node_free_all(t->root);
	mem_free(t->heap);
	mem_free(t->scratch);
	mem_free(t->getkey);
	mem_free(t);
}

void
tree_set_hub(struct tree *t, struct watch_hub *hub)
{
	t->hub = hub;
}

void
tree_set_now(struct tree *t, int64_t now_ns)
{
	t->now = now_ns;
}

uint64_t
tree_index(const struct tree *t)
{
	return t->index;
}

const struct tree_stats *
tree_stats(const struct tree *t)
{
	return &t->stats;
}

size_t
tree_node_count(const struct tree *t)
{
	return t->nodes;
}

int
tree_next_expiry(const struct tree *t, int64_t *when)
{
	if (t->heap_len == 0)
		return -ERR_NOTFOUND;
	*when = t->heap[0]->expire;
	return 0;
}

/* The scratch buffer holds the path of any node while a removal notifies
 * watchers; it is grown when nodes are created so removals never
 * allocate. */
int
tree_scratch_reserve(struct tree *t, size_t len)
{
	char *s;
	size_t cap;

	if (len + 1 <= t->scratch_cap)
		return 0;
	cap = t->scratch_cap ? t->scratch_cap : 256;
	while (cap < len + 1)
		cap *= 2;
	s = mem_realloc(t->scratch, cap);
	if (s == NULL)
		return -ERR_NOMEM;
	t->scratch = s;
	t->scratch_cap = cap;
	return 0;
}

/*
 * A cleaned copy of a key: short keys live on the stack, longer ones on the
 * heap. clean_key returns -ERR_NOMEM or -ERR_LIMIT (too deep).
 */
struct ckey {
	char *p;
	size_t len;
	char small[256];
};

static unsigned
path_depth(const char *p, size_t len)
{
	unsigned d = 0;

	if (len <= 1)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (p[i] == '/')
			d++;
	return d;
}

static int
clean_key(struct ckey *k, const char *key, size_t key_len, size_t extra)
{
	size_t need = key_len + 1 + extra;

	k->p = need <= sizeof(k->small) ? k->small : mem_alloc(need);
	if (k->p == NULL)
		return -ERR_NOMEM;
	k->len = tree_path_clean(k->p, key, key_len);
	return 0;
}

static void
ckey_free(struct ckey *k)
{
	if (k->p != k->small)
		mem_free(k->p);
	k->p = NULL;
}

/*
 * etcd internalGet on a clean path. On failure returns the error code and
 * sets *cause_len to the length of the path prefix etcd reports (the file
 * met on the way for 104, the first missing node for 100).
 */
static int
lookup(const struct tree *t, const char *p, size_t len, struct tree_node **out, size_t *cause_len)
{
	struct tree_node *cur = t->root;
	size_t i = 1;

	while (i < len) {
		size_t s = i;
		struct tree_node *c;

		while (i < len && p[i] != '/')
			i++;
		if (!node_is_dir(cur)) {
			*cause_len = s > 1 ? s - 1 : 1;
			return TREE_E_NOT_DIR;
		}
		c = tree_child(t, cur, p + s, i - s);
		if (c == NULL) {
			*cause_len = i;
			return TREE_E_KEY_NOT_FOUND;
		}
		cur = c;
		i++;
	}
	*out = cur;
	return 0;
}

static void
ext_from_node(struct tree_node_ext *x, const struct tree_node *n, const char *key, size_t key_len)
{
	x->key = key;
	x->key_len = key_len;
	x->dir = node_is_dir(n);
	x->value = x->dir ? NULL : node_value(n);
	x->value_len = x->dir ? 0 : n->len;
	x->expire_ns = n->expire;
	x->modified_index = n->modified;
	x->created_index = n->created;
}

int
tree_get(struct tree *t, const char *key, size_t key_len, bool recursive, bool sorted, struct tree_event *ev,
    struct tree_error *err)
{
	struct ckey k;
	struct tree_node *n = NULL;
	size_t cl = 0;
	int code, rc;

	if ((rc = clean_key(&k, key, key_len, 0)) != 0)
		return rc;
	code = lookup(t, k.p, k.len, &n, &cl);
	if (code != 0) {
		t->stats.gets_fail++;
		rc = fail(err, code, k.p, cl, t->index);
		ckey_free(&k);
		return rc;
	}
	ckey_free(&k);
	/* The borrowed event's key points into the tree: the path of a node
	 * is not stored, so it is rebuilt into the tree's get buffer. */
	if ((rc = tree_node_path(t, n, &t->getkey, &t->getkey_cap, &k.len)) != 0)
		return rc;
	memset(ev, 0, sizeof(*ev));
	ev->action = TREE_GET;
	ext_from_node(&ev->node, n, t->getkey, k.len);
	ev->etcd_index = t->index;
	ev->now_ns = t->now;
	if (node_is_dir(n)) {
		ev->listing = n;
		ev->recursive = recursive;
		ev->sorted = sorted;
	}
	t->stats.gets_success++;
	return 0;
}

/* Writes the full path of n into *buf (grown as needed). */
int
tree_node_path(struct tree *t, const struct tree_node *n, char **buf, size_t *cap, size_t *len)
{
	const struct tree_node *v[TREE_DEPTH_MAX + 1];
	size_t d = node_ancestors(n, v), need = 1, o = 0;

	(void)t;
	for (size_t i = 0; i < d; i++)
		need += v[i]->name_len + 1;
	if (need + 1 > *cap) {
		size_t c = *cap ? *cap : 64;
		char *b;

		while (c < need + 1)
			c *= 2;
		b = mem_realloc(*buf, c);
		if (b == NULL)
			return -ERR_NOMEM;
		*buf = b;
		*cap = c;
	}
	if (d == 0)
		(*buf)[o++] = '/';
	while (d > 0) {
		const struct tree_node *x = v[--d];

		(*buf)[o++] = '/';
		memcpy(*buf + o, node_name(x), x->name_len);
		o += x->name_len;
	}
	(*buf)[o] = '\0';
	*len = o;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Removal                                                             */
/* ------------------------------------------------------------------ */

/*
 * Removes the subtree under n (n already unlinked from its parent),
 * children before their parent as etcd's node.Remove, telling the hub about
 * each removed path that has watchers at or below it. t->scratch holds n's
 * path (plen bytes) and has room for every descendant's path.
 */
static void
remove_subtree(struct tree *t, struct tree_node *n, struct tree_event *ev, size_t plen, bool watched)
{
	if (node_is_dir(n) && dir_slots(n) != NULL) {
		struct tree_node **slots = dir_slots(n);
		size_t cap = (size_t)1 << n->cap_log2;

		for (size_t i = 0; i < cap; i++) {
			struct tree_node *c = slots[i];
			size_t cl = plen;
			bool w = false;

			if (c == NULL)
				continue;
			if (watched) {
				if (plen > 1)
					t->scratch[cl++] = '/';
				memcpy(t->scratch + cl, node_name(c), c->name_len);
				cl += c->name_len;
				w = watch_hub_watched_under(t->hub, t->scratch, cl);
			}
			remove_subtree(t, c, ev, cl, w);
		}
		mem_free(slots);
		dir_set_slots(n, NULL);
	}
	if (watched)
		watch_hub_notify_removed(t->hub, ev, t->scratch, plen);
	if (n->heap_pos != 0)
		heap_remove(t, n);
	t->nodes--;
	mem_free(n);
}

/* Unlinks n (whose clean path is key) and frees its subtree, notifying. */
static void
remove_node(struct tree *t, struct tree_node *n, const char *key, size_t key_len, struct tree_event *ev)
{
	bool watched = t->hub != NULL && watch_hub_watched_under(t->hub, key, key_len);

	dir_unlink(t, n->parent, n);
	if (watched)
		memcpy(t->scratch, key, key_len);
	remove_subtree(t, n, ev, key_len, watched);
}

/* ------------------------------------------------------------------ */
/* Writes                                                              */
/* ------------------------------------------------------------------ */

static void
publish(struct tree *t, struct tree_event *ev)
{
	if (t->hub == NULL)
		return;
	if (ev->refresh)
		watch_hub_record(t->hub, ev);
	else
		watch_hub_notify(t->hub, ev);
}

/* The TTL of a node changes (node.UpdateTTL); heap room reserved. */
static void
update_ttl(struct tree *t, struct tree_node *n, int64_t expire)
{
	if (n->heap_pos != 0) {
		n->expire = expire;
		if (expire == TREE_PERMANENT)
			heap_remove(t, n);
		else
			heap_fix(t, n);
		return;
	}
	if (expire == TREE_PERMANENT)
		return;
	n->expire = expire;
	tree_heap_push(t, n);
}

/*
 * etcd internalCreate on a clean path. Like etcd it counts a setsFail when
 * a file blocks the parent path, whichever operation called it.
 */
static int
internal_create(struct tree *t, const char *p, size_t len, bool dir, const char *value, size_t vlen,
    bool replace, int64_t expire, enum tree_action action, bool refresh, struct tree_event **out,
    struct tree_error *err)
{
	uint64_t next = t->index + 1;
	struct tree_node *cur = t->root, *old = NULL, *leaf = NULL, *top = NULL, *chain = NULL;
	struct tree_node *made[TREE_DEPTH_MAX];
	size_t nmade = 0, i = 1, last = len;
	struct tree_event *ev = NULL;
	unsigned depth = path_depth(p, len);

	if (len == 1)
		return fail(err, TREE_E_ROOT_RONLY, "/", 1, t->index);
	if (depth > TREE_DEPTH_MAX)
		return -ERR_LIMIT;
	if (expire < MIN_EXPIRE_NS)
		expire = TREE_PERMANENT;
	while (p[last - 1] != '/')
		last--;
	/* Walk the existing part of the parent path (etcd checkDir). */
	while (i < last) {
		size_t s = i;
		struct tree_node *c;

		while (p[i] != '/')
			i++;
		c = tree_child(t, cur, p + s, i - s);
		if (c == NULL) {
			i = s;
			break;
		}
		if (!node_is_dir(c)) {
			t->stats.sets_fail++;
			return fail(err, TREE_E_NOT_DIR, p, i, t->index);
		}
		cur = c;
		i++;
	}
	if (i >= last) {
		old = tree_child(t, cur, p + last, len - last);
		if (old != NULL) {
			if (!replace)
				return fail(err, TREE_E_NODE_EXIST, p, len, t->index);
			if (node_is_dir(old))
				return fail(err, TREE_E_NOT_FILE, p, len, t->index);
		}
	}
	/* Allocate everything before changing anything. */
	if (tree_scratch_reserve(t, len) != 0)
		goto nomem;
	if (expire != TREE_PERMANENT && (old == NULL || old->heap_pos == 0) && tree_heap_reserve(t, 1) != 0)
		goto nomem;
	if (old == NULL && i >= last && tree_dir_reserve(t, cur, 1) != 0)
		goto nomem;
	while (i < last) {
		size_t s = i;
		struct tree_node *d;

		while (p[i] != '/')
			i++;
		d = tree_node_alloc(true, p + s, i - s, NULL, 0);
		if (d == NULL)
			goto nomem;
		d->created = d->modified = next;
		made[nmade++] = d;
		if (dir_rehash(t, d, 2) != 0)
			goto nomem;
		i++;
	}
	if (nmade > 0 && tree_dir_reserve(t, cur, 1) != 0)
		goto nomem;
	leaf = tree_node_alloc(dir, p + last, len - last, value, dir ? 0 : vlen);
	if (leaf == NULL)
		goto nomem;
	leaf->created = leaf->modified = next;
	ev = event_new(action, p, len, value, dir ? 0 : vlen, !dir, old, t->now);
	if (ev == NULL)
		goto nomem;

	/* Commit. */
	for (size_t j = 0; j < nmade; j++) {
		struct tree_node *d = made[j];

		if (top == NULL)
			top = d;
		else
			tree_dir_insert(t, chain, d);
		chain = d;
	}
	if (top != NULL) {
		tree_dir_insert(t, cur, top);
		cur = chain;
		t->nodes += nmade;
	}
	if (old != NULL) {
		dir_swap_child(t, cur, old, leaf);
		if (old->heap_pos != 0) {
			/* The new node takes the old one's heap slot. */
			size_t pos = (size_t)old->heap_pos - 1;

			heap_set(t, pos, leaf);
			leaf->expire = old->expire;
			old->heap_pos = 0;
			update_ttl(t, leaf, expire);
		} else if (expire != TREE_PERMANENT) {
			leaf->expire = expire;
			tree_heap_push(t, leaf);
		}
		mem_free(old);
	} else {
		tree_dir_insert(t, cur, leaf);
		t->nodes++;
		if (expire != TREE_PERMANENT) {
			leaf->expire = expire;
			tree_heap_push(t, leaf);
		}
	}
	ev->node.dir = dir;
	ev->node.created_index = ev->node.modified_index = next;
	ev->node.expire_ns = leaf->expire;
	ev->refresh = refresh;
	t->index = next;
	ev->etcd_index = t->index;
	*out = ev;
	return 0;
nomem:
	for (size_t j = 0; j < nmade; j++) {
		mem_free(dir_slots(made[j]));
		mem_free(made[j]);
	}
	mem_free(leaf);
	mem_free(ev);
	return -ERR_NOMEM;
}

int
tree_set(struct tree *t, const char *key, size_t key_len, bool dir, const char *value, size_t value_len,
    int64_t expire_ns, bool refresh, struct tree_event **out, struct tree_error *err)
{
	struct ckey k;
	struct tree_node *n = NULL;
	size_t cl = 0;
	int code, rc;
	char *cur_value = NULL;

	*out = NULL;
	if ((rc = clean_key(&k, key, key_len, 0)) != 0)
		return rc;
	code = lookup(t, k.p, k.len, &n, &cl);
	if (code != 0 && (code != TREE_E_KEY_NOT_FOUND || refresh)) {
		t->stats.sets_fail++;
		rc = fail(err, code, k.p, cl, t->index);
		goto out;
	}
	if (code != 0)
		n = NULL;
	if (refresh) {
		/* Keep the current value (a directory's is empty). The node
		 * is replaced, so copy the bytes out first. */
		value_len = node_is_dir(n) ? 0 : n->len;
		cur_value = mem_alloc(value_len + 1);
		if (cur_value == NULL) {
			rc = -ERR_NOMEM;
			goto out;
		}
		if (value_len > 0)
			memcpy(cur_value, node_value(n), value_len);
		value = cur_value;
	}
	rc = internal_create(t, k.p, k.len, dir, value, value_len, true, expire_ns, TREE_SET, refresh, out, err);
	if (rc == 0) {
		t->stats.sets_success++;
		publish(t, *out);
	} else if (rc == -ERR_INVAL) {
		t->stats.sets_fail++;
	}
out:
	mem_free(cur_value);
	ckey_free(&k);
	return rc;
}

int
tree_create(struct tree *t, const char *key, size_t key_len, bool dir, const char *value, size_t value_len,
    bool unique, int64_t expire_ns, struct tree_event **out, struct tree_error *err)
{
	struct ckey k, k2;
	int rc;

	*out = NULL;
	if ((rc = clean_key(&k, key, key_len, 0)) != 0)
		return rc;
	if (unique) {
		/* etcd appends "/%020d" of the next index, then cleans. */
		char suffix[32];
		int sl = snprintf(suffix, sizeof(suffix), "/%020llu", (unsigned long long)(t->index + 1));
		char *tmp = mem_alloc(k.len + (size_t)sl);

		if (tmp == NULL) {
			ckey_free(&k);
			return -ERR_NOMEM;
		}
		memcpy(tmp, k.p, k.len);
		memcpy(tmp + k.len, suffix, (size_t)sl);
		rc = clean_key(&k2, tmp, k.len + (size_t)sl, 0);
		mem_free(tmp);
		ckey_free(&k);
		if (rc != 0)
			return rc;
		k = k2;
		if (k.p == k2.small)
			k.p = k.small;
	}
	rc = internal_create(t, k.p, k.len, dir, value, value_len, false, expire_ns, TREE_CREATE, false, out, err);
	ckey_free(&k);
	if (rc == 0) {
		t->stats.create_success++;
		publish(t, *out);
	} else if (rc == -ERR_INVAL) {
		t->stats.create_fail++;
	}
	return rc;
}

/* A file node with a new value: a new allocation taking n's place. */
static struct tree_node *
node_with_value(const struct tree_node *n, const char *value, size_t vlen)
{
	struct tree_node *m = tree_node_alloc(false, node_name(n), n->name_len, value, vlen);

	if (m == NULL)
		return NULL;
	m->parent = n->parent;
	m->created = n->created;
	m->modified = n->modified;
	m->expire = n->expire;
	m->heap_pos = n->heap_pos;
	return m;
}

static void
node_take_place(struct tree *t, struct tree_node *old, struct tree_node *nw)
{
	dir_swap_child(t, old->parent, old, nw);
	if (old->heap_pos != 0)
		t->heap[old->heap_pos - 1] = nw;
	mem_free(old);
}

/*
 * The common tail of update and compareAndSwap: new value (files), new
 * modifiedIndex, new TTL. Everything that can fail is allocated first.
 */
static int
rewrite(struct tree *t, struct tree_node *n, const char *p, size_t len, enum tree_action action,
    const char *value, size_t vlen, int64_t expire, bool refresh, struct tree_event **out)
{
	uint64_t next = t->index + 1;
	bool dir = node_is_dir(n);
	struct tree_node *m = NULL;
	struct tree_event *ev;

	if (expire != TREE_PERMANENT && n->heap_pos == 0 && tree_heap_reserve(t, 1) != 0)
		return -ERR_NOMEM;
	ev = event_new(action, p, len, value, dir ? 0 : vlen, !dir, n, t->now);
	if (ev == NULL)
		return -ERR_NOMEM;
	if (!dir && !(vlen == n->len && memcmp(value, node_value(n), vlen) == 0)) {
		m = node_with_value(n, value, vlen);
		if (m == NULL) {
			mem_free(ev);
			return -ERR_NOMEM;
		}
	}
	if (m != NULL) {
		node_take_place(t, n, m);
		n = m;
	}
	/* etcd's node.Write fails silently on a directory: its
	 * modifiedIndex stays while the event carries the new index. */
	if (!dir)
		n->modified = next;
	update_ttl(t, n, expire);
	ev->node.dir = dir;
	ev->node.modified_index = next;
	ev->node.created_index = n->created;
	ev->node.expire_ns = n->expire;
	ev->refresh = refresh;
	t->index = next;
	ev->etcd_index = next;
	*out = ev;
	return 0;
}

int
tree_update(struct tree *t, const char *key, size_t key_len, const char *value, size_t value_len, int64_t expire_ns,
    bool refresh, struct tree_event **out, struct tree_error *err)
{
	struct ckey k;
	struct tree_node *n = NULL;
	size_t cl = 0;
	int code, rc;

	*out = NULL;
	if ((rc = clean_key(&k, key, key_len, 0)) != 0)
		return rc;
	if (k.len == 1) {
		/* etcd returns before setting its error variable, so the
		 * deferred counter books this as a success. */
		t->stats.update_success++;
		rc = fail(err, TREE_E_ROOT_RONLY, "/", 1, t->index);
		goto out;
	}
	code = lookup(t, k.p, k.len, &n, &cl);
	if (code != 0) {
		t->stats.update_fail++;
		rc = fail(err, code, k.p, cl, t->index);
		goto out;
	}
	if (node_is_dir(n) && value_len != 0) {
		t->stats.update_success++; /* etcd quirk, as above */
		rc = fail(err, TREE_E_NOT_FILE, k.p, k.len, t->index);
		goto out;
	}
	if (refresh) {
		value = node_is_dir(n) ? "" : node_value(n);
		value_len = node_is_dir(n) ? 0 : n->len;
	}
	if (value == NULL)
		value = "";
	rc = rewrite(t, n, k.p, k.len, TREE_UPDATE, value, value_len, expire_ns, refresh, out);
	if (rc == 0) {
		t->stats.update_success++;
		publish(t, *out);
	}
out:
	ckey_free(&k);
	return rc;
}

int
tree_cas(struct tree *t, const char *key, size_t key_len, const char *prev_value, size_t prev_value_len,
    uint64_t prev_index, const char *value, size_t value_len, int64_t expire_ns, bool refresh,
    struct tree_event **out, struct tree_error *err)
{
	struct ckey k;
	struct tree_node *n = NULL;
	size_t cl = 0;
	int code, rc;
	bool vbad, ibad;

	*out = NULL;
	if (prev_value == NULL)
		prev_value_len = 0;
	if ((rc = clean_key(&k, key, key_len, 0)) != 0)
		return rc;
	if (k.len == 1) {
		t->stats.cas_success++; /* etcd quirk: error variable unset */
		rc = fail(err, TREE_E_ROOT_RONLY, "/", 1, t->index);
		goto out;
	}
	code = lookup(t, k.p, k.len, &n, &cl);
	if (code != 0) {
		t->stats.cas_fail++;
		rc = fail(err, code, k.p, cl, t->index);
		goto out;
	}
	if (node_is_dir(n)) {
		t->stats.cas_fail++;
		rc = fail(err, TREE_E_NOT_FILE, k.p, k.len, t->index);
		goto out;
	}
	vbad = prev_value_len != 0 && !(n->len == prev_value_len && memcmp(node_value(n), prev_value, prev_value_len) == 0);
	ibad = prev_index != 0 && n->modified != prev_index;
	if (vbad || ibad) {
		t->stats.cas_fail++;
		rc = fail_compare(err, n, vbad, ibad, prev_value, prev_value_len, prev_index, t->index);
		goto out;
	}
	if (refresh) {
		value = node_value(n);
		value_len = n->len;
	}
	if (value == NULL)
		value = "";
	rc = rewrite(t, n, k.p, k.len, TREE_CAS, value, value_len, expire_ns, refresh, out);
	if (rc == 0) {
		t->stats.cas_success++;
		publish(t, *out);
	}
out:
	ckey_free(&k);
	return rc;
}

int
tree_delete(struct tree *t, const char *key, size_t key_len, bool dir, bool recursive, struct tree_event **out,
    struct tree_error *err)
{
	struct ckey k;
	struct tree_node *n = NULL;
	size_t cl = 0;
	int code, rc;
	struct tree_event *ev;

	*out = NULL;
	if ((rc = clean_key(&k, key, key_len, 0)) != 0)
		return rc;
	if (k.len == 1) {
		t->stats.delete_success++; /* etcd quirk: error variable unset */
		rc = fail(err, TREE_E_ROOT_RONLY, "/", 1, t->index);
		goto out;
	}
	if (recursive)
		dir = true;
	code = lookup(t, k.p, k.len, &n, &cl);
	if (code != 0) {
		t->stats.delete_fail++;
		rc = fail(err, code, k.p, cl, t->index);
		goto out;
	}
	if (node_is_dir(n) && !dir) {
		t->stats.delete_fail++;
		rc = fail(err, TREE_E_NOT_FILE, k.p, k.len, t->index);
		goto out;
	}
	if (node_is_dir(n) && n->len != 0 && !recursive) {
		t->stats.delete_fail++;
		rc = fail(err, TREE_E_DIR_NOT_EMPTY, k.p, k.len, t->index);
		goto out;
	}
	ev = event_new(TREE_DELETE, k.p, k.len, NULL, 0, false, n, t->now);
	if (ev == NULL) {
		rc = -ERR_NOMEM;
		goto out;
	}
	ev->node.dir = node_is_dir(n);
	ev->node.modified_index = t->index + 1;
	ev->node.created_index = n->created;
	ev->etcd_index = t->index + 1;
	remove_node(t, n, k.p, k.len, ev);
	t->index++;
	publish(t, ev);
	t->stats.delete_success++;
	*out = ev;
out:
	ckey_free(&k);
	return rc;
}

int
tree_cad(struct tree *t, const char *key, size_t key_len, const char *prev_value, size_t prev_value_len,
    uint64_t prev_index, struct tree_event **out, struct tree_error *err)
{
	struct ckey k;
	struct tree_node *n = NULL;
	size_t cl = 0;
	int code, rc;
	bool vbad, ibad;
	struct tree_event *ev;

	*out = NULL;
	if (prev_value == NULL)
		prev_value_len = 0;
	if ((rc = clean_key(&k, key, key_len, 0)) != 0)
		return rc;
	code = lookup(t, k.p, k.len, &n, &cl);
	if (code != 0) {
		t->stats.cad_fail++;
		rc = fail(err, code, k.p, cl, t->index);
		goto out;
	}
	if (node_is_dir(n)) {
		/* etcd books this as a success (error variable unset); the
		 * root's cause is the store's "/1" trimmed to nothing. */
		t->stats.cad_success++;
		rc = fail(err, TREE_E_NOT_FILE, k.p, k.len == 1 ? 0 : k.len, t->index);
		goto out;
	}
	vbad = prev_value_len != 0 && !(n->len == prev_value_len && memcmp(node_value(n), prev_value, prev_value_len) == 0);
	ibad = prev_index != 0 && n->modified != prev_index;
	if (vbad || ibad) {
		t->stats.cad_success++; /* etcd quirk, as above */
		rc = fail_compare(err, n, vbad, ibad, prev_value, prev_value_len, prev_index, t->index);
		goto out;
	}
	ev = event_new(TREE_CAD, k.p, k.len, NULL, 0, false, n, t->now);
	if (ev == NULL) {
		rc = -ERR_NOMEM;
		goto out;
	}
	ev->node.modified_index = t->index + 1;
	ev->node.created_index = n->created;
	ev->etcd_index = t->index + 1;
	t->index++;
	remove_node(t, n, k.p, k.len, ev);
	publish(t, ev);
	t->stats.cad_success++;
	*out = ev;
out:
	ckey_free(&k);
	return rc;
}

int
tree_delete_expired(struct tree *t, int64_t now_ns)
{
	int count = 0;

	t->now = now_ns;
	while (t->heap_len > 0 && t->heap[0]->expire <= now_ns) {
		struct tree_node *n = t->heap[0];
		struct tree_event *ev;
		size_t len;

		if (tree_node_path(t, n, &t->getkey, &t->getkey_cap, &len) != 0)
			return -ERR_NOMEM;
		ev = event_new(TREE_EXPIRE, t->getkey, len, NULL, 0, false, n, now_ns);
		if (ev == NULL)
			return -ERR_NOMEM;
		t->index++;
		ev->node.dir = node_is_dir(n);
		ev->node.modified_index = t->index;
		ev->node.created_index = n->created;
		ev->etcd_index = t->index;
		heap_remove(t, n);
		remove_node(t, n, ev->node.key, ev->node.key_len, ev);
		t->stats.expire_count++;
		publish(t, ev);
		tree_event_unref(ev);
		if (count < INT32_MAX)
			count++;
	}
	return count;
}
