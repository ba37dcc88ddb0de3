/* Unit tests for store/proposal: the WAL entry encoding of a v2 write
 * (round trips, every truncation and corruption refused), the apply
 * function's mapping onto the tree (etcd 2.3 applyRequest), TTL expiry
 * times, and the pure helpers (path cleaning, ParseUint, member and
 * cluster IDs checked against values real etcd prints). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/store.h"
#include "corebox/tree.h"
#include "corebox/watch.h"

#define T0 INT64_C(1700000000000000000)

static struct store_proposal
put(const char *path, const char *value)
{
	struct store_proposal p;

	memset(&p, 0, sizeof(p));
	p.op = STORE_OP_PUT;
	p.time_ns = T0;
	p.path = path;
	p.path_len = strlen(path);
	p.value = value;
	p.value_len = value ? strlen(value) : 0;
	return p;
}

static void
assert_same(const struct store_proposal *a, const struct store_proposal *b)
{
	assert_int_equal(a->op, b->op);
	assert_int_equal(a->flags, b->flags);
	assert_true(a->time_ns == b->time_ns);
	assert_true(a->prev_index == b->prev_index);
	if (a->flags & STORE_PF_TTL)
		assert_true(a->ttl_s == b->ttl_s);
	if (a->op == STORE_OP_MEMBER_ADD)
		assert_true(a->member_id == b->member_id);
	assert_int_equal(a->path_len, b->path_len);
	if (a->path_len)
		assert_memory_equal(a->path, b->path, a->path_len);
	assert_int_equal(a->value_len, b->value_len);
	if (a->value_len)
		assert_memory_equal(a->value, b->value, a->value_len);
	if (a->flags & STORE_PF_PREV_VALUE) {
		assert_int_equal(a->prev_value_len, b->prev_value_len);
		assert_memory_equal(a->prev_value, b->prev_value, a->prev_value_len);
	}
}

static void
test_roundtrip(void **state)
{
	static const char bin[] = "a\0b\xff\x80z";
	struct store_proposal cases[8], d;
	struct buf b = BUF_INIT;

	(void)state;
	cases[0] = put("/foo", "bar");
	cases[1] = put("/dir", NULL);
	cases[1].flags = STORE_PF_DIR | STORE_PF_TTL | STORE_PF_PREV_EXIST_SET;
	cases[1].ttl_s = UINT64_MAX;
	cases[2] = put("/k", "v");
	cases[2].flags = STORE_PF_PREV_VALUE | STORE_PF_REFRESH | STORE_PF_PREV_EXIST_SET | STORE_PF_PREV_EXIST;
	cases[2].prev_value = bin;
	cases[2].prev_value_len = sizeof(bin) - 1;
	cases[2].prev_index = UINT64_MAX;
	cases[3] = put("/q", "x");
	cases[3].op = STORE_OP_POST;
	cases[4] = put("/d", NULL);
	cases[4].op = STORE_OP_DELETE;
	cases[4].flags = STORE_PF_DIR | STORE_PF_RECURSIVE;
	cases[4].prev_index = 7;
	cases[5] = put("/g", NULL);
	cases[5].op = STORE_OP_QGET;
	cases[5].flags = STORE_PF_RECURSIVE | STORE_PF_SORTED;
	memset(&cases[6], 0, sizeof(cases[6]));
	cases[6].op = STORE_OP_EXPIRE;
	cases[6].time_ns = INT64_MAX;
	memset(&cases[7], 0, sizeof(cases[7]));
	cases[7].op = STORE_OP_MEMBER_ADD;
	cases[7].member_id = 0x8e9e05c52164694dull;
	cases[7].value = "{\"peerURLs\":[\"http://localhost:2380\"]}";
	cases[7].value_len = strlen(cases[7].value);

	for (size_t i = 0; i < 8; i++) {
		buf_reset(&b);
		assert_int_equal(store_proposal_encode(&cases[i], &b), 0);
		assert_int_equal(store_proposal_decode(b.data, b.len, &d), 0);
		assert_same(&cases[i], &d);
	}
	/* A value with every byte value, as large as a request body allows. */
	{
		size_t n = 1536 * 1024;
		char *big = mem_alloc(n);
		struct store_proposal p = put("/big", NULL);

		for (size_t i = 0; i < n; i++)
			big[i] = (char)(i * 7);
		p.value = big;
		p.value_len = n;
		buf_reset(&b);
		assert_int_equal(store_proposal_encode(&p, &b), 0);
		assert_int_equal(store_proposal_decode(b.data, b.len, &d), 0);
		assert_same(&p, &d);
		mem_free(big);
	}
	buf_free(&b);
}

static void
test_encode_refuses(void **state)
{
	struct store_proposal p = put("/a", "b");
	struct buf b = BUF_INIT;

	(void)state;
	p.op = STORE_OP_MAX_ + 1;
	assert_int_equal(store_proposal_encode(&p, &b), -ERR_INVAL);
	p = put("/a", "b");
	p.flags = 1u << 20;
	assert_int_equal(store_proposal_encode(&p, &b), -ERR_INVAL);
	p = put("/a", "b");
	p.path_len = STORE_PATH_BYTES_MAX + 1;
	assert_int_equal(store_proposal_encode(&p, &b), -ERR_INVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_decode_hostile(void **state)
{
	struct store_proposal p = put("/some/key", "value"), d;
	struct buf b = BUF_INIT;
	unsigned char *copy;
	unsigned seed = 12345;

	(void)state;
	p.flags = STORE_PF_PREV_VALUE | STORE_PF_TTL;
	p.prev_value = "old";
	p.prev_value_len = 3;
	p.ttl_s = 300;
	assert_int_equal(store_proposal_encode(&p, &b), 0);
	/* Every proper prefix is refused. */
	for (size_t n = 0; n < b.len; n++)
		assert_int_not_equal(store_proposal_decode(b.data, n, &d), 0);
	/* Trailing garbage is refused. */
	assert_int_equal(buf_putc(&b, 0), 0);
	assert_int_equal(store_proposal_decode(b.data, b.len, &d), -ERR_CORRUPT);
	b.len--;
	/* A newer version says so. */
	copy = mem_alloc(b.len);
	memcpy(copy, b.data, b.len);
	copy[0] = 9;
	assert_int_equal(store_proposal_decode(copy, b.len, &d), -ERR_UNSUPPORTED);
	copy[0] = 0;
	assert_int_equal(store_proposal_decode(copy, b.len, &d), -ERR_CORRUPT);
	/* Unknown op, unknown flags. */
	memcpy(copy, b.data, b.len);
	copy[1] = 0x7f;
	assert_int_equal(store_proposal_decode(copy, b.len, &d), -ERR_CORRUPT);
	/* An overlong varint. */
	{
		unsigned char v[16] = { 1, STORE_OP_NOOP };

		memset(v + 2, 0xff, 12);
		v[14] = 0;
		assert_int_equal(store_proposal_decode(v, 15, &d), -ERR_CORRUPT);
	}
	/* A length running past the end. */
	{
		unsigned char v[] = { 1, STORE_OP_PUT, 0, 0, 0x80, 0x80, 0x04, 'a' };

		assert_int_equal(store_proposal_decode(v, sizeof(v), &d), -ERR_CORRUPT);
	}
	/* Random mutations never crash and either decode or fail cleanly. */
	for (int round = 0; round < 20000; round++) {
		memcpy(copy, b.data, b.len);
		for (int k = 0; k < 3; k++) {
			seed = seed * 1103515245u + 12345u;
			copy[(seed >> 8) % b.len] = (unsigned char)(seed >> 20);
		}
		seed = seed * 1103515245u + 12345u;
		int rc = store_proposal_decode(copy, 1 + (seed >> 8) % b.len, &d);
		assert_true(rc == 0 || rc == -ERR_CORRUPT || rc == -ERR_UNSUPPORTED);
		if (rc == 0) {
			assert_true(d.path_len <= b.len && d.value_len <= b.len);
		}
	}
	mem_free(copy);
	buf_free(&b);
}

static void
test_expire_ns(void **state)
{
	struct store_proposal p = put("/a", "b");

	(void)state;
	assert_true(store_proposal_expire_ns(&p) == TREE_PERMANENT);
	p.flags = STORE_PF_TTL;
	p.ttl_s = 5;
	assert_true(store_proposal_expire_ns(&p) == T0 + INT64_C(5000000000));
	p.ttl_s = 0;
	assert_true(store_proposal_expire_ns(&p) == T0);
	p.ttl_s = UINT64_MAX;
	assert_true(store_proposal_expire_ns(&p) == INT64_MAX);
	p.ttl_s = (uint64_t)(INT64_MAX / 1000000000);
	assert_true(store_proposal_expire_ns(&p) == INT64_MAX);
}

/* ---- apply ---- */

static struct tree *
new_tree(void)
{
	struct tree *t = tree_new(42, NULL);

	assert_non_null(t);
	return t;
}

static void
apply_ok(struct tree *t, const struct store_proposal *p, enum tree_action want, uint64_t index)
{
	struct store_result r;

	store_proposal_apply(t, p, &r);
	assert_int_equal(r.rc, 0);
	assert_non_null(r.ev);
	assert_int_equal(r.ev->action, want);
	assert_true(r.ev->etcd_index == index);
	store_result_free(&r);
}

static void
apply_err(struct tree *t, const struct store_proposal *p, int code)
{
	struct store_result r;
	uint64_t before = tree_index(t);

	store_proposal_apply(t, p, &r);
	assert_int_equal(r.rc, -ERR_INVAL);
	assert_null(r.ev);
	assert_int_equal(r.err.code, code);
	assert_true(tree_index(t) == before);
	store_result_free(&r);
}

static void
test_apply_put_variants(void **state)
{
	struct tree *t = new_tree();
	struct store_proposal p;

	(void)state;
	p = put("/k", "1");
	apply_ok(t, &p, TREE_SET, 1);
	/* prevExist=false on an existing key: Create -> 105. */
	p = put("/k", "2");
	p.flags = STORE_PF_PREV_EXIST_SET;
	apply_err(t, &p, TREE_E_NODE_EXIST);
	/* prevExist=true: Update. */
	p.flags = STORE_PF_PREV_EXIST_SET | STORE_PF_PREV_EXIST;
	apply_ok(t, &p, TREE_UPDATE, 2);
	/* prevExist=true with prevValue: CompareAndSwap. */
	p = put("/k", "3");
	p.flags = STORE_PF_PREV_EXIST_SET | STORE_PF_PREV_EXIST | STORE_PF_PREV_VALUE;
	p.prev_value = "2";
	p.prev_value_len = 1;
	apply_ok(t, &p, TREE_CAS, 3);
	/* prevValue alone: CompareAndSwap, failing. */
	p.flags = STORE_PF_PREV_VALUE;
	p.prev_value = "nope";
	p.prev_value_len = 4;
	apply_err(t, &p, TREE_E_TEST_FAILED);
	/* prevIndex alone. */
	p = put("/k", "4");
	p.prev_index = 3;
	apply_ok(t, &p, TREE_CAS, 4);
	/* prevExist=true on a missing key: Update -> 100. */
	p = put("/missing", "x");
	p.flags = STORE_PF_PREV_EXIST_SET | STORE_PF_PREV_EXIST;
	apply_err(t, &p, TREE_E_KEY_NOT_FOUND);
	/* prevExist=false on a missing key: Create. */
	p.flags = STORE_PF_PREV_EXIST_SET;
	apply_ok(t, &p, TREE_CREATE, 5);
	/* dir=true: a directory; then a value on it fails with 102. */
	p = put("/d", NULL);
	p.flags = STORE_PF_DIR;
	apply_ok(t, &p, TREE_SET, 6);
	p = put("/d", "v");
	apply_err(t, &p, TREE_E_NOT_FILE);
	/* The root is read only. */
	p = put("/", "v");
	apply_err(t, &p, TREE_E_ROOT_RONLY);
	tree_free(t);
}

static void
test_apply_post_delete_qget(void **state)
{
	struct tree *t = new_tree();
	struct store_proposal p;
	struct store_result r;

	(void)state;
	p = put("/q", "a");
	p.op = STORE_OP_POST;
	store_proposal_apply(t, &p, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.ev->action, TREE_CREATE);
	assert_int_equal(r.ev->node.key_len, strlen("/q/00000000000000000001"));
	assert_memory_equal(r.ev->node.key, "/q/00000000000000000001", r.ev->node.key_len);
	store_result_free(&r);

	/* QGET reads through the same path and changes nothing. */
	p = put("/q", NULL);
	p.op = STORE_OP_QGET;
	p.flags = STORE_PF_RECURSIVE | STORE_PF_SORTED;
	store_proposal_apply(t, &p, &r);
	assert_int_equal(r.rc, 0);
	assert_true(r.is_get);
	assert_int_equal(r.get.action, TREE_GET);
	assert_true(tree_index(t) == 1);
	store_result_free(&r);

	/* DELETE of a directory without dir -> 102; with recursive -> ok. */
	p = put("/q", NULL);
	p.op = STORE_OP_DELETE;
	apply_err(t, &p, TREE_E_NOT_FILE);
	p.flags = STORE_PF_DIR;
	apply_err(t, &p, TREE_E_DIR_NOT_EMPTY);
	p.flags = STORE_PF_RECURSIVE;
	apply_ok(t, &p, TREE_DELETE, 2);

	/* DELETE with prevValue: CompareAndDelete. */
	p = put("/c", "v");
	apply_ok(t, &p, TREE_SET, 3);
	p = put("/c", NULL);
	p.op = STORE_OP_DELETE;
	p.flags = STORE_PF_PREV_VALUE;
	p.prev_value = "w";
	p.prev_value_len = 1;
	apply_err(t, &p, TREE_E_TEST_FAILED);
	p.prev_value = "v";
	apply_ok(t, &p, TREE_CAD, 4);
	tree_free(t);
}

static void
test_apply_ttl_and_expire(void **state)
{
	struct tree *t = new_tree();
	struct store_proposal p;
	struct store_result r;
	int64_t when;

	(void)state;
	p = put("/t", "v");
	p.flags = STORE_PF_TTL;
	p.ttl_s = 10;
	apply_ok(t, &p, TREE_SET, 1);
	assert_int_equal(tree_next_expiry(t, &when), 0);
	assert_true(when == T0 + INT64_C(10000000000));

	/* An EXPIRE before the time removes nothing. */
	memset(&p, 0, sizeof(p));
	p.op = STORE_OP_EXPIRE;
	p.time_ns = T0 + INT64_C(9999999999);
	store_proposal_apply(t, &p, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.expired, 0);
	store_result_free(&r);
	/* At the time it does, and takes an index. */
	p.time_ns = T0 + INT64_C(10000000000);
	store_proposal_apply(t, &p, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.expired, 1);
	store_result_free(&r);
	assert_true(tree_index(t) == 2);
	assert_int_equal(tree_next_expiry(t, &when), -ERR_NOTFOUND);
	tree_free(t);
}

static void
test_apply_member_add_internal(void **state)
{
	struct tree *t = new_tree();
	struct store_proposal p;
	struct store_result r;
	struct tree_event ev;
	struct tree_error err = TREE_ERROR_INIT;
	char key[64];

	(void)state;
	memset(&p, 0, sizeof(p));
	p.op = STORE_OP_MEMBER_ADD;
	p.member_id = 0x8e9e05c52164694dull;
	p.value = "{\"peerURLs\":[\"http://localhost:2380\"]}";
	p.value_len = strlen(p.value);
	store_proposal_apply(t, &p, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.ev->action, TREE_CREATE);
	store_result_free(&r);
	assert_true(tree_index(t) == 1);
	memcpy(key, STORE_INTERNAL_DIR "/members/8e9e05c52164694d/raftAttributes",
		STORE_INTERNAL_DIR_LEN + strlen("/members/8e9e05c52164694d/raftAttributes"));
	assert_int_equal(tree_get(t, key, STORE_INTERNAL_DIR_LEN + strlen("/members/8e9e05c52164694d/raftAttributes"),
		false, false, &ev, &err), 0);
	assert_int_equal(ev.node.value_len, p.value_len);
	/* Hidden from a recursive listing of the root. */
	assert_int_equal(tree_get(t, "/", 1, true, true, &ev, &err), 0);
	{
		struct buf b = BUF_INIT;

		assert_int_equal(tree_event_json(&b, &ev, T0), 0);
		assert_string_equal(buf_cstr(&b), "{\"action\":\"get\",\"node\":{\"dir\":true}}");
		buf_free(&b);
	}
	/* Adding the same member twice is refused (105) and changes nothing. */
	store_proposal_apply(t, &p, &r);
	assert_int_equal(r.err.code, TREE_E_NODE_EXIST);
	store_result_free(&r);
	tree_error_free(&err);
	tree_free(t);
}

static void
test_apply_member_remove(void **state)
{
	struct tree *t = new_tree();
	struct store_proposal p, d;
	struct store_result r;
	struct tree_event ev;
	struct tree_error err = TREE_ERROR_INIT;
	struct buf b = BUF_INIT;
	static const char gone[] = STORE_INTERNAL_DIR "/members/b/raftAttributes";
	static const char marker[] = STORE_INTERNAL_DIR "/removed_members/b";

	(void)state;
	memset(&p, 0, sizeof(p));
	p.op = STORE_OP_MEMBER_ADD;
	p.value = "{}";
	p.value_len = 2;
	p.member_id = 0xa;
	store_proposal_apply(t, &p, &r);
	store_result_free(&r);
	p.member_id = 0xb;
	store_proposal_apply(t, &p, &r);
	store_result_free(&r);
	assert_true(tree_index(t) == 2);

	memset(&p, 0, sizeof(p));
	p.op = STORE_OP_MEMBER_REMOVE;
	p.member_id = 0xb;
	assert_int_equal(store_proposal_encode(&p, &b), 0);
	assert_int_equal(store_proposal_decode(b.data, b.len, &d), 0);
	assert_true(d.member_id == 0xb && d.op == STORE_OP_MEMBER_REMOVE);
	store_proposal_apply(t, &d, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.ev->action, TREE_CREATE);
	store_result_free(&r);
	/* Two writes, as etcd's RemoveMember: the delete and the marker. */
	assert_true(tree_index(t) == 4);
	assert_int_equal(tree_get(t, gone, sizeof(gone) - 1, false, false, &ev, &err), -ERR_INVAL);
	assert_int_equal(err.code, TREE_E_KEY_NOT_FOUND);
	tree_error_free(&err);
	assert_int_equal(tree_get(t, marker, sizeof(marker) - 1, false, false, &ev, &err), 0);
	/* Removing an unknown member is an error and changes nothing. */
	p.member_id = 0xc;
	store_proposal_apply(t, &p, &r);
	assert_int_equal(r.err.code, TREE_E_KEY_NOT_FOUND);
	store_result_free(&r);
	assert_true(tree_index(t) == 4);
	tree_error_free(&err);
	buf_free(&b);
	tree_free(t);
}

/* The same log applied to two trees gives the same tree: replay is exact. */
static void
test_apply_replay_deterministic(void **state)
{
	struct tree *a = new_tree(), *b = tree_new(7, NULL);
	struct buf log = BUF_INIT;
	size_t offs[64], lens[64], n = 0;
	unsigned seed = 99;

	(void)state;
	for (int i = 0; i < 64; i++) {
		struct store_proposal p;
		char path[32], val[32];
		size_t before = log.len;

		seed = seed * 1103515245u + 12345u;
		snprintf(path, sizeof(path), "/d%u/k%u", (seed >> 8) % 3, (seed >> 12) % 5);
		snprintf(val, sizeof(val), "v%d", i);
		p = put(path, val);
		p.time_ns = T0 + i * INT64_C(1000000000);
		switch ((seed >> 16) % 5) {
		case 0: p.op = STORE_OP_POST; break;
		case 1: p.op = STORE_OP_DELETE; p.flags = STORE_PF_RECURSIVE; break;
		case 2: p.flags = STORE_PF_TTL; p.ttl_s = (seed >> 20) % 10; break;
		case 3: p.op = STORE_OP_EXPIRE; p.path = NULL; p.path_len = 0; p.value = NULL; p.value_len = 0; break;
		default: break;
		}
		assert_int_equal(store_proposal_encode(&p, &log), 0);
		offs[n] = before;
		lens[n++] = log.len - before;
	}
	for (size_t i = 0; i < n; i++) {
		struct store_proposal d;
		struct store_result r;

		assert_int_equal(store_proposal_decode(log.data + offs[i], lens[i], &d), 0);
		store_proposal_apply(a, &d, &r);
		store_result_free(&r);
		store_proposal_apply(b, &d, &r);
		store_result_free(&r);
	}
	assert_true(tree_index(a) == tree_index(b));
	assert_true(tree_hash(a) == tree_hash(b));
	buf_free(&log);
	tree_free(a);
	tree_free(b);
}

/* ---- helpers ---- */

static void
check_clean(const char *in, const char *want)
{
	char out[256];
	size_t n = store_clean_path(in, strlen(in), out);

	out[n] = '\0';
	assert_string_equal(out, want);
}

static void
test_clean_path(void **state)
{
	(void)state;
	/* net/http cleanPath: Go's path.Clean, a leading slash, the trailing one kept. */
	check_clean("", "/");
	check_clean("/", "/");
	check_clean("//", "/");
	check_clean("/v2/keys", "/v2/keys");
	check_clean("/v2/keys/", "/v2/keys/");
	check_clean("/v2/keys//foo", "/v2/keys/foo");
	check_clean("/v2/keys//foo/./", "/v2/keys/foo/");
	check_clean("/v2/keys/../foo", "/v2/foo");
	check_clean("/../../x", "/x");
	check_clean("/a/b/..", "/a");
	check_clean("/a/b/../", "/a/");
	check_clean("/a/./b/.", "/a/b");
	check_clean("a/b", "/a/b");
	check_clean("..", "/");
	check_clean("/.../x", "/.../x");
	check_clean("/a/..b/", "/a/..b/");
	check_clean("/a/.", "/a");
}

static void
test_parse_uint10(void **state)
{
	uint64_t v = 77;

	(void)state;
	assert_int_equal(store_parse_uint10("0", 1, &v), 0);
	assert_true(v == 0);
	assert_int_equal(store_parse_uint10("0042", 4, &v), 0);
	assert_true(v == 42);
	assert_int_equal(store_parse_uint10("18446744073709551615", 20, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(store_parse_uint10("18446744073709551616", 20, &v), -ERR_RANGE);
	assert_int_equal(store_parse_uint10("", 0, &v), -ERR_PARSE);
	assert_int_equal(store_parse_uint10("-1", 2, &v), -ERR_PARSE);
	assert_int_equal(store_parse_uint10("+1", 2, &v), -ERR_PARSE);
	assert_int_equal(store_parse_uint10("0x10", 4, &v), -ERR_PARSE);
	assert_int_equal(store_parse_uint10("1_0", 3, &v), -ERR_PARSE);
	assert_int_equal(store_parse_uint10(" 1", 2, &v), -ERR_PARSE);
	assert_int_equal(store_parse_uint10("99999999999999999999x", 21, &v), -ERR_PARSE);
	assert_true(v == UINT64_MAX);
}

static void
test_member_cluster_ids(void **state)
{
	/* Values real etcd prints for these configurations. */
	const char *def2[] = { "http://localhost:7001", "http://localhost:2380" };
	const char *def3[] = { "http://localhost:2380" };
	const char *local[] = { "http://127.0.0.1:34801" };
	uint64_t id;
	char s[17];

	(void)state;
	id = store_member_id(def2, 2, "etcd-cluster");
	assert_true(id == 0xce2a822cea30bfcaull);
	assert_true(store_cluster_id(&id, 1) == 0x7e27652122e8b2aeull);
	id = store_member_id(def3, 1, "etcd-cluster");
	assert_true(id == 0x8e9e05c52164694dull);
	assert_true(store_cluster_id(&id, 1) == 0xcdf818194e3a8c32ull);
	id = store_member_id(local, 1, "etcd-cluster");
	assert_true(id == 0x3368474bd37dfeceull);
	assert_true(store_cluster_id(&id, 1) == 0x23b4994b84e5d504ull);
	/* The cluster ID does not depend on the order of the members. */
	{
		uint64_t ids[3] = { 3, 1, 2 }, ids2[3] = { 1, 2, 3 };

		assert_true(store_cluster_id(ids, 3) == store_cluster_id(ids2, 3));
	}
	store_id_str(0x8e9e05c52164694dull, s);
	assert_string_equal(s, "8e9e05c52164694d");
	store_id_str(0x0000000000000abcull, s);
	assert_string_equal(s, "abc");
	store_id_str(0, s);
	assert_string_equal(s, "0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_decode_hostile),
		cmocka_unit_test(test_expire_ns),
		cmocka_unit_test(test_apply_put_variants),
		cmocka_unit_test(test_apply_post_delete_qget),
		cmocka_unit_test(test_apply_ttl_and_expire),
		cmocka_unit_test(test_apply_member_add_internal),
		cmocka_unit_test(test_apply_member_remove),
		cmocka_unit_test(test_apply_replay_deterministic),
		cmocka_unit_test(test_clean_path),
		cmocka_unit_test(test_parse_uint10),
		cmocka_unit_test(test_member_cluster_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
