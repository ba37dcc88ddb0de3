/* Unit tests for store/tree: every operation and error path with etcd's
 * codes, causes and indexes, the JSON etcd renders (checked against a real
 * etcd 3.4 --enable-v2), TTLs and expiry, snapshots, hashing, and
 * allocation failures leaving the tree untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/tree.h"
#include "corebox/watch.h"

#define S(x) (x), strlen(x)
#define SEC INT64_C(1000000000)
/* 2026-11-22T03:40:00Z */
#define NOW (INT64_C(1795318800) * SEC)

static struct tree *
mk(void)
{
	struct tree *t = tree_new(42, NULL);

	assert_non_null(t);
	tree_set_now(t, NOW);
	return t;
}

/* Renders an event and compares it with the expected JSON. */
static void
check_json(const struct tree_event *ev, int64_t now, const char *want)
{
	struct buf b = BUF_INIT;

	assert_int_equal(tree_event_json(&b, ev, now), 0);
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
}

static void
check_err(struct tree_error *e, int code, const char *cause, uint64_t index)
{
	assert_int_equal(e->code, code);
	if (cause == NULL) {
		assert_null(e->cause);
	} else {
		assert_non_null(e->cause);
		assert_int_equal(e->cause_len, strlen(cause));
		assert_memory_equal(e->cause, cause, strlen(cause));
	}
	assert_int_equal(e->index, index);
	tree_error_free(e);
}

static void
set_ok(struct tree *t, const char *key, const char *value)
{
	struct tree_event *ev = NULL;

	assert_int_equal(tree_set(t, S(key), false, S(value), TREE_PERMANENT, false, &ev, NULL), 0);
	tree_event_unref(ev);
}

static void
get_json(struct tree *t, const char *key, bool rec, bool sorted, const char *want)
{
	struct tree_event ev;
	struct tree_error e = TREE_ERROR_INIT;

	assert_int_equal(tree_get(t, S(key), rec, sorted, &ev, &e), 0);
	check_json(&ev, NOW, want);
}

static void
test_path_clean(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", "/" }, { "/", "/" }, { "//", "/" }, { "a", "/a" }, { "/a/", "/a" },
		{ "a//b", "/a/b" }, { "/a/./b/.", "/a/b" }, { "/a/../b", "/b" }, { "../../a", "/a" },
		{ "/a/b/../..", "/" }, { "/..a/.b./...", "/..a/.b./..." }, { "a/b/c/../../d", "/a/d" },
		{ "/_x/", "/_x" },
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = tree_path_clean(out, cases[i].in, strlen(cases[i].in));

		out[n] = '\0';
		assert_string_equal(out, cases[i].out);
	}
}

static void
test_set_get_json(void **state)
{
	struct tree *t = mk();
	struct tree_event *ev = NULL;

	(void)state;
	assert_int_equal(tree_index(t), 0);
	get_json(t, "/", false, false, "{\"action\":\"get\",\"node\":{\"dir\":true}}");
	assert_int_equal(tree_set(t, S("/a/b"), false, S("x"), TREE_PERMANENT, false, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"set\",\"node\":{\"key\":\"/a/b\",\"value\":\"x\",\"modifiedIndex\":1,\"createdIndex\":1}}");
	assert_int_equal(ev->etcd_index, 1);
	tree_event_unref(ev);
	/* The intermediate directory got the same index as the new key. */
	get_json(t, "/a", false, false,
	    "{\"action\":\"get\",\"node\":{\"key\":\"/a\",\"dir\":true,\"nodes\":[{\"key\":\"/a/b\",\"value\":\"x\",\"modifiedIndex\":1,\"createdIndex\":1}],\"modifiedIndex\":1,\"createdIndex\":1}}");
	get_json(t, "a/b/", false, false,
	    "{\"action\":\"get\",\"node\":{\"key\":\"/a/b\",\"value\":\"x\",\"modifiedIndex\":1,\"createdIndex\":1}}");
	/* Replacing a file: prevNode, new createdIndex. */
	assert_int_equal(tree_set(t, S("/a/b"), false, S("y"), TREE_PERMANENT, false, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"set\",\"node\":{\"key\":\"/a/b\",\"value\":\"y\",\"modifiedIndex\":2,\"createdIndex\":2},"
	    "\"prevNode\":{\"key\":\"/a/b\",\"value\":\"x\",\"modifiedIndex\":1,\"createdIndex\":1}}");
	tree_event_unref(ev);
	/* A file can become a directory. */
	assert_int_equal(tree_set(t, S("/a/b"), true, NULL, 0, TREE_PERMANENT, false, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"set\",\"node\":{\"key\":\"/a/b\",\"dir\":true,\"modifiedIndex\":3,\"createdIndex\":3},"
	    "\"prevNode\":{\"key\":\"/a/b\",\"value\":\"y\",\"modifiedIndex\":2,\"createdIndex\":2}}");
	tree_event_unref(ev);
	/* Empty values are values. */
	assert_int_equal(tree_set(t, S("/k"), false, "", 0, TREE_PERMANENT, false, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"set\",\"node\":{\"key\":\"/k\",\"value\":\"\",\"modifiedIndex\":4,\"createdIndex\":4}}");
	tree_event_unref(ev);
	assert_int_equal(tree_node_count(t), 4);
	assert_int_equal(tree_stats(t)->sets_success, 4);
	tree_free(t);
}

static void
test_json_escaping(void **state)
{
	struct tree *t = mk();
	struct tree_event *ev = NULL;
	const char v[] = "<&>\"\\\x01\n\xff\xfe\0z";

	(void)state;
	assert_int_equal(tree_set(t, S("/\xe2\x9c\x93x"), false, v, sizeof(v) - 1, TREE_PERMANENT, false, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"set\",\"node\":{\"key\":\"/\xe2\x9c\x93x\",\"value\":"
	    "\"\\u003c\\u0026\\u003e\\\"\\\\\\u0001\\n\\ufffd\\ufffd\\u0000z\",\"modifiedIndex\":1,\"createdIndex\":1}}");
	tree_event_unref(ev);
	tree_free(t);
}

static void
test_time_format(void **state)
{
	char out[40];

	(void)state;
	assert_int_equal(tree_format_time(out, 0), 20);
	assert_string_equal(out, "1970-01-01T00:00:00Z");
	tree_format_time(out, INT64_C(1795319248) * SEC + 44966978);
	assert_string_equal(out, "2026-11-22T03:47:28.044966978Z");
	tree_format_time(out, INT64_C(1795319248) * SEC + 500000000);
	assert_string_equal(out, "2026-11-22T03:47:28.5Z");
	tree_format_time(out, INT64_C(951782400) * SEC + 1000);
	assert_string_equal(out, "2000-02-29T00:00:00.000001Z");
	tree_format_time(out, -1);
	assert_string_equal(out, "1969-12-31T23:59:59.999999999Z");
	tree_format_time(out, INT64_MAX);
	assert_string_equal(out, "2262-04-11T23:47:16.854775807Z");
	tree_format_time(out, INT64_MIN);
	assert_string_equal(out, "1677-09-21T00:12:43.145224192Z");
	/* ceil((expire - now) / 1s), truncating towards zero below. */
	assert_int_equal(tree_ttl_seconds(NOW + 100 * SEC, NOW), 100);
	assert_int_equal(tree_ttl_seconds(NOW + 100 * SEC - 1, NOW), 100);
	assert_int_equal(tree_ttl_seconds(NOW + 99 * SEC + 1, NOW), 100);
	assert_int_equal(tree_ttl_seconds(NOW + 1, NOW), 1);
	assert_int_equal(tree_ttl_seconds(NOW, NOW), 0);
	assert_int_equal(tree_ttl_seconds(NOW - SEC / 2, NOW), 0);
	assert_int_equal(tree_ttl_seconds(NOW - 1500 * 1000000, NOW), -1);
	assert_int_equal(tree_ttl_seconds(INT64_MAX, INT64_MIN), INT64_MAX / SEC + 1);
}

static void
test_ttl_render(void **state)
{
	struct tree *t = mk();
	struct tree_event *ev = NULL;
	int64_t exp = NOW + 100 * SEC + 44966978;
	struct tree_event gev;

	(void)state;
	assert_int_equal(tree_set(t, S("/a/b"), false, S("x"), exp, false, &ev, NULL), 0);
	check_json(ev, NOW + 50 * SEC, "{\"action\":\"set\",\"node\":{\"key\":\"/a/b\",\"value\":\"x\","
	    "\"expiration\":\"2026-11-22T03:41:40.044966978Z\",\"ttl\":101,\"modifiedIndex\":1,\"createdIndex\":1}}");
	tree_event_unref(ev);
	/* A GET renders the ttl at the time given to the renderer. */
	assert_int_equal(tree_get(t, S("/a/b"), false, false, &gev, NULL), 0);
	check_json(&gev, NOW + 50 * SEC, "{\"action\":\"get\",\"node\":{\"key\":\"/a/b\",\"value\":\"x\","
	    "\"expiration\":\"2026-11-22T03:41:40.044966978Z\",\"ttl\":51,\"modifiedIndex\":1,\"createdIndex\":1}}");
	/* Expiry times before 2000 mean permanent for set and create. */
	assert_int_equal(tree_set(t, S("/p"), false, S("x"), 5, false, &ev, NULL), 0);
	assert_int_equal(ev->node.expire_ns, TREE_PERMANENT);
	tree_event_unref(ev);
	assert_int_equal(tree_next_expiry(t, &exp), 0);
	assert_int_equal(exp, NOW + 100 * SEC + 44966978);
	/* Setting without a TTL removes it. */
	assert_int_equal(tree_set(t, S("/a/b"), false, S("x"), TREE_PERMANENT, false, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"set\",\"node\":{\"key\":\"/a/b\",\"value\":\"x\",\"modifiedIndex\":3,\"createdIndex\":3},"
	    "\"prevNode\":{\"key\":\"/a/b\",\"value\":\"x\",\"expiration\":\"2026-11-22T03:41:40.044966978Z\",\"ttl\":101,"
	    "\"modifiedIndex\":1,\"createdIndex\":1}}");
	tree_event_unref(ev);
	assert_int_equal(tree_next_expiry(t, &exp), -ERR_NOTFOUND);
	tree_free(t);
}

static void
test_errors(void **state)
{
	struct tree *t = mk();
	struct tree_event *ev = NULL, gev;
	struct tree_error e = TREE_ERROR_INIT;
	uint64_t idx;

	(void)state;
	set_ok(t, "/f", "v");
	set_ok(t, "/a/b", "x");
	idx = tree_index(t);
	assert_int_equal(idx, 2);
	/* 100 names the first missing node, 104 the file in the way. */
	assert_int_equal(tree_get(t, S("/nope/g"), false, false, &gev, &e), -ERR_INVAL);
	check_err(&e, 100, "/nope", idx);
	assert_int_equal(tree_get(t, S("/f/g/h"), false, false, &gev, &e), -ERR_INVAL);
	check_err(&e, 104, "/f", idx);
	assert_int_equal(tree_set(t, S("/f/g"), false, S("v"), 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 104, "/f", idx);
	assert_null(ev);
	assert_int_equal(tree_create(t, S("/f/g/h"), false, S("v"), false, 0, &ev, &e), -ERR_INVAL);
	check_err(&e, 104, "/f", idx);
	/* The root is read only. */
	assert_int_equal(tree_set(t, S("/"), false, S("1"), 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 107, "/", idx);
	assert_int_equal(tree_update(t, S(""), "", 0, 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 107, "/", idx);
	assert_int_equal(tree_cas(t, S("/"), S("a"), 0, S("1"), 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 107, "/", idx);
	assert_int_equal(tree_delete(t, S("/a/.."), true, true, &ev, &e), -ERR_INVAL);
	check_err(&e, 107, "/", idx);
	assert_int_equal(tree_create(t, S("/"), true, NULL, 0, false, 0, &ev, &e), -ERR_INVAL);
	check_err(&e, 107, "/", idx);
	/* compareAndDelete on the root: etcd's "/1" trims to no cause. */
	assert_int_equal(tree_cad(t, S("/"), S("x"), 0, &ev, &e), -ERR_INVAL);
	check_err(&e, 102, NULL, idx);
	/* Compare failures. */
	assert_int_equal(tree_cas(t, S("/f"), S("zz"), 3, S("v"), 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 101, "[zz != v] [3 != 1]", idx);
	assert_int_equal(tree_cas(t, S("/f"), S("zz"), 0, S("v"), 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 101, "[zz != v]", idx);
	assert_int_equal(tree_cas(t, S("/f"), NULL, 0, 3, S("v"), 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 101, "[3 != 1]", idx);
	assert_int_equal(tree_cad(t, S("/f"), S("zz"), 3, &ev, &e), -ERR_INVAL);
	check_err(&e, 101, "[zz != v] [3 != 1]", idx);
	assert_int_equal(tree_cad(t, S("/f"), NULL, 0, 7, &ev, &e), -ERR_INVAL);
	check_err(&e, 101, "[7 != 1]", idx);
	/* Directories. */
	assert_int_equal(tree_cas(t, S("/a"), S("x"), 0, S("v"), 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 102, "/a", idx);
	assert_int_equal(tree_cad(t, S("/a"), S("x"), 0, &ev, &e), -ERR_INVAL);
	check_err(&e, 102, "/a", idx);
	assert_int_equal(tree_delete(t, S("/a"), false, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 102, "/a", idx);
	assert_int_equal(tree_delete(t, S("/a"), true, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 108, "/a", idx);
	assert_int_equal(tree_set(t, S("/a"), true, NULL, 0, 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 102, "/a", idx);
	assert_int_equal(tree_update(t, S("/a"), S("x"), 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 102, "/a", idx);
	/* Exists / missing. */
	assert_int_equal(tree_create(t, S("/a"), false, S("x"), false, 0, &ev, &e), -ERR_INVAL);
	check_err(&e, 105, "/a", idx);
	assert_int_equal(tree_create(t, S("/a/b"), true, NULL, 0, false, 0, &ev, &e), -ERR_INVAL);
	check_err(&e, 105, "/a/b", idx);
	assert_int_equal(tree_update(t, S("/zz"), S("x"), 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 100, "/zz", idx);
	assert_int_equal(tree_delete(t, S("/q/00000000000000000021"), true, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 100, "/q", idx);
	assert_int_equal(tree_cad(t, S("/zz"), S("x"), 0, &ev, &e), -ERR_INVAL);
	check_err(&e, 100, "/zz", idx);
	assert_int_equal(tree_cas(t, S("/zz"), S("x"), 0, S("v"), 0, false, &ev, &e), -ERR_INVAL);
	check_err(&e, 100, "/zz", idx);
	assert_int_equal(tree_set(t, S("/zz"), false, NULL, 0, 0, true, &ev, &e), -ERR_INVAL);
	check_err(&e, 100, "/zz", idx);
	/* Failed operations never moved the index; err may be NULL. */
	assert_int_equal(tree_get(t, S("/nope"), false, false, &gev, NULL), -ERR_INVAL);
	assert_int_equal(tree_index(t), idx);
	assert_null(ev);
	tree_free(t);
}

static void
test_error_json(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(tree_error_json(&b, 107, S("/"), 6), 0);
	assert_string_equal(buf_cstr(&b), "{\"errorCode\":107,\"message\":\"Root is read only\",\"cause\":\"/\",\"index\":6}");
	buf_reset(&b);
	assert_int_equal(tree_error_json(&b, 102, "", 0, 6), 0);
	assert_string_equal(buf_cstr(&b), "{\"errorCode\":102,\"message\":\"Not a file\",\"index\":6}");
	buf_reset(&b);
	assert_int_equal(tree_error_json(&b, 201, S("\"prevValue\" cannot be empty"), 0), 0);
	assert_string_equal(buf_cstr(&b), "{\"errorCode\":201,\"message\":\"PrevValue is Required in POST form\","
	    "\"cause\":\"\\\"prevValue\\\" cannot be empty\",\"index\":0}");
	buf_free(&b);
	assert_string_equal(tree_error_message(401), "The event in requested index is outdated and cleared");
	assert_string_equal(tree_error_message(999), "");
	assert_int_equal(tree_error_status(100), 404);
	assert_int_equal(tree_error_status(101), 412);
	assert_int_equal(tree_error_status(102), 403);
	assert_int_equal(tree_error_status(104), 400);
	assert_int_equal(tree_error_status(105), 412);
	assert_int_equal(tree_error_status(107), 400);
	assert_int_equal(tree_error_status(108), 403);
	assert_int_equal(tree_error_status(110), 401);
	assert_int_equal(tree_error_status(300), 500);
	assert_int_equal(tree_error_status(301), 500);
	assert_int_equal(tree_error_status(401), 400);
	assert_int_equal(tree_error_status(209), 400);
	assert_string_equal(tree_action_name(TREE_CAS), "compareAndSwap");
	assert_string_equal(tree_action_name(TREE_CAD), "compareAndDelete");
	assert_string_equal(tree_action_name(TREE_EXPIRE), "expire");
}

/*
 * The sequence run against etcd 3.4 (v2 API) in the same order; the
 * counters are what its /v2/stats/store reported (gets aside: etcd's own
 * server reads the store too). etcd's quirks: a failed update, delete or
 * compareAndSwap on the root, an update of a directory with a value and a
 * failed compareAndDelete count as successes; create under a file counts a
 * set failure too.
 */
static void
test_stats_quirks(void **state)
{
	struct tree *t = mk();
	struct tree_event *ev = NULL;
	const struct tree_stats *st = tree_stats(t);
	struct buf b = BUF_INIT;

	(void)state;
	set_ok(t, "/a/b", "x");
	assert_int_equal(tree_delete(t, S("/"), false, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_cad(t, S("/"), S("x"), 0, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_set(t, S("/"), false, S("1"), 0, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_update(t, S("/"), "", 0, 0, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_cas(t, S("/"), S("a"), 0, S("1"), 0, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_create(t, S("/"), false, S("q"), true, 0, &ev, NULL), 0);
	tree_event_unref(ev);
	set_ok(t, "/f", "v");
	assert_int_equal(tree_set(t, S("/f/g"), false, S("v"), 0, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_cas(t, S("/f"), S("zz"), 3, S("v"), 0, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_cas(t, S("/f"), S("zz"), 0, S("v"), 0, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_cas(t, S("/f"), NULL, 0, 99, S("v"), 0, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_cad(t, S("/f"), S("zz"), 3, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_cad(t, S("/a"), S("zz"), 0, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_delete(t, S("/a"), false, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_delete(t, S("/a"), true, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_set(t, S("/a"), true, NULL, 0, 0, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_update(t, S("/a"), S("x"), 0, false, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_update(t, S("/a"), "", 0, NOW + 20 * SEC, false, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_create(t, S("/a"), false, S("x"), false, 0, &ev, NULL), -ERR_INVAL);
	assert_int_equal(tree_create(t, S("/f/x/y"), false, S("x"), false, 0, &ev, NULL), -ERR_INVAL);
	assert_int_equal(st->sets_success, 2);
	assert_int_equal(st->sets_fail, 4);
	assert_int_equal(st->delete_success, 1);
	assert_int_equal(st->delete_fail, 2);
	assert_int_equal(st->update_success, 3);
	assert_int_equal(st->update_fail, 0);
	assert_int_equal(st->create_success, 1);
	assert_int_equal(st->create_fail, 2);
	assert_int_equal(st->cas_success, 1);
	assert_int_equal(st->cas_fail, 3);
	assert_int_equal(st->cad_success, 3);
	assert_int_equal(st->cad_fail, 0);
	assert_int_equal(tree_stats_json(&b, st, 7), 0);
	assert_string_equal(buf_cstr(&b), "{\"getsSuccess\":0,\"getsFail\":0,\"setsSuccess\":2,\"setsFail\":4,"
	    "\"deleteSuccess\":1,\"deleteFail\":2,\"updateSuccess\":3,\"updateFail\":0,\"createSuccess\":1,"
	    "\"createFail\":2,\"compareAndSwapSuccess\":1,\"compareAndSwapFail\":3,\"compareAndDeleteSuccess\":3,"
	    "\"compareAndDeleteFail\":0,\"expireCount\":0,\"watchers\":7}");
	buf_free(&b);
	tree_free(t);
}

static void
test_update_cas(void **state)
{
	struct tree *t = mk();
	struct tree_event *ev = NULL, gev;
	int64_t exp = NOW + 100 * SEC;

	(void)state;
	assert_int_equal(tree_create(t, S("/f"), true, NULL, 0, false, 0, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_set(t, S("/f/x"), false, S("1"), exp, false, &ev, NULL), 0);
	tree_event_unref(ev);
	/* update with no TTL makes the key permanent */
	assert_int_equal(tree_update(t, S("/f/x"), S("2"), TREE_PERMANENT, false, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"update\",\"node\":{\"key\":\"/f/x\",\"value\":\"2\",\"modifiedIndex\":3,\"createdIndex\":2},"
	    "\"prevNode\":{\"key\":\"/f/x\",\"value\":\"1\",\"expiration\":\"2026-11-22T03:41:40Z\",\"ttl\":100,\"modifiedIndex\":2,\"createdIndex\":2}}");
	tree_event_unref(ev);
	assert_int_equal(tree_next_expiry(t, &exp), -ERR_NOTFOUND);
	assert_int_equal(tree_cas(t, S("/f/x"), S("2"), 0, S("4"), NOW + 5 * SEC, false, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"compareAndSwap\",\"node\":{\"key\":\"/f/x\",\"value\":\"4\",\"expiration\":\"2026-11-22T03:40:05Z\","
	    "\"ttl\":5,\"modifiedIndex\":4,\"createdIndex\":2},\"prevNode\":{\"key\":\"/f/x\",\"value\":\"2\",\"modifiedIndex\":3,\"createdIndex\":2}}");
	tree_event_unref(ev);
	assert_int_equal(tree_cas(t, S("/f/x"), S("4"), 4, S("5"), 0, false, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_next_expiry(t, &exp), -ERR_NOTFOUND);
	/* A directory: only the TTL changes; the stored modifiedIndex stays
	 * (etcd's node.Write fails silently) while the event has the new one. */
	assert_int_equal(tree_update(t, S("/f"), NULL, 0, NOW + 20 * SEC, false, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"update\",\"node\":{\"key\":\"/f\",\"dir\":true,\"expiration\":\"2026-11-22T03:40:20Z\","
	    "\"ttl\":20,\"modifiedIndex\":6,\"createdIndex\":1},\"prevNode\":{\"key\":\"/f\",\"dir\":true,\"modifiedIndex\":1,\"createdIndex\":1}}");
	tree_event_unref(ev);
	assert_int_equal(tree_get(t, S("/f"), false, false, &gev, NULL), 0);
	assert_int_equal(gev.node.modified_index, 1);
	assert_int_equal(gev.node.expire_ns, NOW + 20 * SEC);
	/* Updating with the same value still bumps modifiedIndex. */
	assert_int_equal(tree_update(t, S("/f/x"), S("5"), 0, false, &ev, NULL), 0);
	assert_int_equal(ev->node.modified_index, 7);
	tree_event_unref(ev);
	assert_int_equal(tree_get(t, S("/f/x"), false, false, &gev, NULL), 0);
	assert_int_equal(gev.node.modified_index, 7);
	assert_int_equal(gev.node.value_len, 1);
	tree_free(t);
}

static void
test_refresh(void **state)
{
	struct tree *t = mk();
	struct tree_event *ev = NULL;

	(void)state;
	assert_int_equal(tree_set(t, S("/a/b"), false, S("x"), NOW + 100 * SEC, false, &ev, NULL), 0);
	tree_event_unref(ev);
	/* update refresh: value kept, modifiedIndex and TTL renewed */
	assert_int_equal(tree_update(t, S("/a/b"), NULL, 0, NOW + 50 * SEC, true, &ev, NULL), 0);
	assert_true(ev->refresh);
	check_json(ev, NOW, "{\"action\":\"update\",\"node\":{\"key\":\"/a/b\",\"value\":\"x\",\"expiration\":\"2026-11-22T03:40:50Z\",\"ttl\":50,"
	    "\"modifiedIndex\":2,\"createdIndex\":1},\"prevNode\":{\"key\":\"/a/b\",\"value\":\"x\",\"expiration\":\"2026-11-22T03:41:40Z\","
	    "\"ttl\":100,\"modifiedIndex\":1,\"createdIndex\":1}}");
	tree_event_unref(ev);
	/* set refresh: the node is recreated as etcd does (new createdIndex) */
	assert_int_equal(tree_set(t, S("/a/b"), false, NULL, 0, NOW + 50 * SEC, true, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"set\",\"node\":{\"key\":\"/a/b\",\"value\":\"x\",\"expiration\":\"2026-11-22T03:40:50Z\",\"ttl\":50,"
	    "\"modifiedIndex\":3,\"createdIndex\":3},\"prevNode\":{\"key\":\"/a/b\",\"value\":\"x\",\"expiration\":\"2026-11-22T03:40:50Z\","
	    "\"ttl\":50,\"modifiedIndex\":2,\"createdIndex\":1}}");
	assert_true(ev->refresh);
	tree_event_unref(ev);
	/* cas refresh keeps the value too */
	assert_int_equal(tree_cas(t, S("/a/b"), S("x"), 0, S("ignored"), NOW + 9 * SEC, true, &ev, NULL), 0);
	assert_int_equal(ev->node.value_len, 1);
	assert_memory_equal(ev->node.value, "x", 1);
	assert_true(ev->refresh);
	tree_event_unref(ev);
	/* refresh of a directory's TTL */
	assert_int_equal(tree_update(t, S("/a"), NULL, 0, NOW + 9 * SEC, true, &ev, NULL), 0);
	assert_true(ev->node.dir);
	tree_event_unref(ev);
	assert_int_equal(tree_index(t), 5);
	tree_free(t);
}

static void
test_inorder_keys(void **state)
{
	struct tree *t = mk();
	struct tree_event *ev = NULL;

	(void)state;
	set_ok(t, "/x", "1");
	assert_int_equal(tree_create(t, S("/q"), false, S("1"), true, 0, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"create\",\"node\":{\"key\":\"/q/00000000000000000002\",\"value\":\"1\",\"modifiedIndex\":2,\"createdIndex\":2}}");
	tree_event_unref(ev);
	assert_int_equal(tree_create(t, S("/q/"), true, NULL, 0, true, 0, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"create\",\"node\":{\"key\":\"/q/00000000000000000003\",\"dir\":true,\"modifiedIndex\":3,\"createdIndex\":3}}");
	tree_event_unref(ev);
	get_json(t, "/q", false, true, "{\"action\":\"get\",\"node\":{\"key\":\"/q\",\"dir\":true,\"nodes\":["
	    "{\"key\":\"/q/00000000000000000002\",\"value\":\"1\",\"modifiedIndex\":2,\"createdIndex\":2},"
	    "{\"key\":\"/q/00000000000000000003\",\"dir\":true,\"modifiedIndex\":3,\"createdIndex\":3}],\"modifiedIndex\":2,\"createdIndex\":2}}");
	assert_int_equal(tree_create(t, S("/"), false, S("r"), true, 0, &ev, NULL), 0);
	assert_string_equal(ev->node.key, "/00000000000000000004");
	tree_event_unref(ev);
	/* under a file: 104 */
	assert_int_equal(tree_create(t, S("/x"), false, S("1"), true, 0, &ev, NULL), -ERR_INVAL);
	tree_free(t);
}

static void
test_hidden_sorted(void **state)
{
	struct tree *t = mk();
	struct tree_event gev;

	(void)state;
	set_ok(t, "/d/b", "2");
	set_ok(t, "/d/_h", "hid");
	set_ok(t, "/d/a", "1");
	set_ok(t, "/d/c/_x", "3");
	set_ok(t, "/d/c/y", "4");
	set_ok(t, "/d/B", "0");
	get_json(t, "/d", false, true, "{\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"nodes\":["
	    "{\"key\":\"/d/B\",\"value\":\"0\",\"modifiedIndex\":6,\"createdIndex\":6},"
	    "{\"key\":\"/d/a\",\"value\":\"1\",\"modifiedIndex\":3,\"createdIndex\":3},"
	    "{\"key\":\"/d/b\",\"value\":\"2\",\"modifiedIndex\":1,\"createdIndex\":1},"
	    "{\"key\":\"/d/c\",\"dir\":true,\"modifiedIndex\":4,\"createdIndex\":4}],\"modifiedIndex\":1,\"createdIndex\":1}}");
	get_json(t, "/d", true, true, "{\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"nodes\":["
	    "{\"key\":\"/d/B\",\"value\":\"0\",\"modifiedIndex\":6,\"createdIndex\":6},"
	    "{\"key\":\"/d/a\",\"value\":\"1\",\"modifiedIndex\":3,\"createdIndex\":3},"
	    "{\"key\":\"/d/b\",\"value\":\"2\",\"modifiedIndex\":1,\"createdIndex\":1},"
	    "{\"key\":\"/d/c\",\"dir\":true,\"nodes\":[{\"key\":\"/d/c/y\",\"value\":\"4\",\"modifiedIndex\":5,\"createdIndex\":5}],"
	    "\"modifiedIndex\":4,\"createdIndex\":4}],\"modifiedIndex\":1,\"createdIndex\":1}}");
	/* hidden keys are readable directly */
	get_json(t, "/d/_h", false, false, "{\"action\":\"get\",\"node\":{\"key\":\"/d/_h\",\"value\":\"hid\",\"modifiedIndex\":2,\"createdIndex\":2}}");
	/* a directory with only hidden children has no "nodes" */
	set_ok(t, "/e/_only", "1");
	get_json(t, "/e", false, false, "{\"action\":\"get\",\"node\":{\"key\":\"/e\",\"dir\":true,\"modifiedIndex\":7,\"createdIndex\":7}}");
	/* unsorted: same members, some order */
	assert_int_equal(tree_get(t, S("/d"), false, false, &gev, NULL), 0);
	{
		struct buf b = BUF_INIT;

		assert_int_equal(tree_event_json(&b, &gev, NOW), 0);
		assert_non_null(strstr(buf_cstr(&b), "{\"key\":\"/d/B\",\"value\":\"0\",\"modifiedIndex\":6,\"createdIndex\":6}"));
		assert_null(strstr(buf_cstr(&b), "_h"));
		assert_int_equal(b.len, strlen("{\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"nodes\":["
		    "{\"key\":\"/d/B\",\"value\":\"0\",\"modifiedIndex\":6,\"createdIndex\":6},"
		    "{\"key\":\"/d/a\",\"value\":\"1\",\"modifiedIndex\":3,\"createdIndex\":3},"
		    "{\"key\":\"/d/b\",\"value\":\"2\",\"modifiedIndex\":1,\"createdIndex\":1},"
		    "{\"key\":\"/d/c\",\"dir\":true,\"modifiedIndex\":4,\"createdIndex\":4}],\"modifiedIndex\":1,\"createdIndex\":1}}"));
		buf_free(&b);
	}
	tree_free(t);
}

static void
test_delete(void **state)
{
	struct tree *t = mk();
	struct tree_event *ev = NULL;
	struct tree_error e = TREE_ERROR_INIT;

	(void)state;
	set_ok(t, "/f/x", "1");
	set_ok(t, "/f/y/z", "2");
	assert_int_equal(tree_set(t, S("/f/t"), false, S("3"), NOW + 5 * SEC, false, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_delete(t, S("/f?"), true, true, &ev, &e), -ERR_INVAL);
	check_err(&e, 100, "/f?", 3);
	assert_int_equal(tree_delete(t, S("/f"), false, true, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"delete\",\"node\":{\"key\":\"/f\",\"dir\":true,\"modifiedIndex\":4,\"createdIndex\":1},"
	    "\"prevNode\":{\"key\":\"/f\",\"dir\":true,\"modifiedIndex\":1,\"createdIndex\":1}}");
	tree_event_unref(ev);
	assert_int_equal(tree_node_count(t), 1);
	assert_int_equal(tree_next_expiry(t, NULL), -ERR_NOTFOUND);
	/* files with and without dir=true; empty directories with dir=true */
	set_ok(t, "/k", "v");
	assert_int_equal(tree_delete(t, S("/k"), true, false, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"delete\",\"node\":{\"key\":\"/k\",\"modifiedIndex\":6,\"createdIndex\":5},"
	    "\"prevNode\":{\"key\":\"/k\",\"value\":\"v\",\"modifiedIndex\":5,\"createdIndex\":5}}");
	tree_event_unref(ev);
	assert_int_equal(tree_create(t, S("/d"), true, NULL, 0, false, 0, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_delete(t, S("/d"), true, false, &ev, NULL), 0);
	tree_event_unref(ev);
	set_ok(t, "/c", "v");
	assert_int_equal(tree_cad(t, S("/c"), S("v"), 9, &ev, NULL), 0);
	check_json(ev, NOW, "{\"action\":\"compareAndDelete\",\"node\":{\"key\":\"/c\",\"modifiedIndex\":10,\"createdIndex\":9},"
	    "\"prevNode\":{\"key\":\"/c\",\"value\":\"v\",\"modifiedIndex\":9,\"createdIndex\":9}}");
	tree_event_unref(ev);
	assert_int_equal(tree_index(t), 10);
	assert_int_equal(tree_node_count(t), 1);
	tree_free(t);
}

static void
test_expiry(void **state)
{
	struct tree *t = mk();
	struct watch_hub *hub = watch_hub_new(0);
	struct tree_event *ev = NULL;
	int64_t when = 0;

	(void)state;
	tree_set_hub(t, hub);
	assert_int_equal(tree_set(t, S("/a/b"), false, S("x"), NOW + 50 * SEC, false, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_set(t, S("/c"), false, S("y"), NOW + 10 * SEC, false, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_update(t, S("/a"), NULL, 0, NOW + 20 * SEC + 844541859, false, &ev, NULL), 0);
	tree_event_unref(ev);
	set_ok(t, "/a/c/d", "1");
	assert_int_equal(tree_next_expiry(t, &when), 0);
	assert_int_equal(when, NOW + 10 * SEC);
	assert_int_equal(tree_delete_expired(t, NOW + 10 * SEC - 1), 0);
	assert_int_equal(tree_index(t), 4);
	/* expiry == cutoff expires */
	assert_int_equal(tree_delete_expired(t, NOW + 10 * SEC), 1);
	assert_int_equal(tree_index(t), 5);
	assert_int_equal(watch_history_last(hub), 5);
	assert_int_equal(tree_next_expiry(t, &when), 0);
	assert_int_equal(when, NOW + 20 * SEC + 844541859);
	/* the directory goes with its TTL child; one event */
	assert_int_equal(tree_delete_expired(t, NOW + 21 * SEC), 1);
	assert_int_equal(tree_index(t), 6);
	assert_int_equal(tree_next_expiry(t, &when), -ERR_NOTFOUND);
	assert_int_equal(tree_stats(t)->expire_count, 2);
	assert_int_equal(tree_node_count(t), 1);
	{
		struct tree_event *hit = NULL;
		struct watcher *w = NULL;

		assert_int_equal(watch_add(hub, S("/a/c/d"), false, false, 6, 6, NULL, NULL, &w, &hit, NULL), 0);
		assert_non_null(hit);
		/* etcd: the prevNode of an expired node shows the expiration but
		 * no ttl (0 when purged within a second) */
		check_json(hit, 0, "{\"action\":\"expire\",\"node\":{\"key\":\"/a\",\"dir\":true,\"modifiedIndex\":6,\"createdIndex\":1},"
		    "\"prevNode\":{\"key\":\"/a\",\"dir\":true,\"expiration\":\"2026-11-22T03:40:20.844541859Z\",\"modifiedIndex\":1,\"createdIndex\":1}}");
		tree_event_unref(hit);
		assert_int_equal(watch_add(hub, S("/c"), false, false, 5, 6, NULL, NULL, &w, &hit, NULL), 0);
		check_json(hit, 0, "{\"action\":\"expire\",\"node\":{\"key\":\"/c\",\"modifiedIndex\":5,\"createdIndex\":2},"
		    "\"prevNode\":{\"key\":\"/c\",\"value\":\"y\",\"expiration\":\"2026-11-22T03:40:10Z\",\"modifiedIndex\":2,\"createdIndex\":2}}");
		tree_event_unref(hit);
	}
	/* expiring late shows a negative ttl */
	assert_int_equal(tree_set(t, S("/l"), false, S("y"), NOW + 10 * SEC, false, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_delete_expired(t, NOW + 12 * SEC), 1);
	{
		struct tree_event *hit = NULL;
		struct watcher *w = NULL;

		assert_int_equal(watch_add(hub, S("/l"), false, false, 8, 8, NULL, NULL, &w, &hit, NULL), 0);
		check_json(hit, 0, "{\"action\":\"expire\",\"node\":{\"key\":\"/l\",\"modifiedIndex\":8,\"createdIndex\":7},"
		    "\"prevNode\":{\"key\":\"/l\",\"value\":\"y\",\"expiration\":\"2026-11-22T03:40:10Z\",\"ttl\":-2,\"modifiedIndex\":7,\"createdIndex\":7}}");
		tree_event_unref(hit);
	}
	tree_free(t);
	watch_hub_free(hub);
}

static void
test_expiry_order(void **state)
{
	struct tree *t = mk();
	struct watch_hub *hub = watch_hub_new(0);
	struct tree_event *ev = NULL;
	/* expiry times in a scrambled order, two ties */
	static const int secs[] = { 9, 3, 7, 3, 1, 8, 2, 9, 5, 4, 6, 10 };
	uint64_t last_exp = 0;

	(void)state;
	tree_set_hub(t, hub);
	for (int i = 0; i < 12; i++) {
		char k[32];

		snprintf(k, sizeof(k), "/k%02d", i);
		assert_int_equal(tree_set(t, S(k), false, S("v"), NOW + secs[i] * SEC, false, &ev, NULL), 0);
		tree_event_unref(ev);
	}
	/* Move one expiry later and one earlier. */
	assert_int_equal(tree_update(t, S("/k04"), S("v"), NOW + 11 * SEC, false, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_update(t, S("/k11"), S("v"), NOW + 1 * SEC, false, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_delete_expired(t, NOW + 100 * SEC), 12);
	/* The history shows them in expiry order, ties by createdIndex. */
	for (uint64_t i = 15; i <= 26; i++) {
		struct tree_event *hit = NULL;
		struct watcher *w = NULL;

		assert_int_equal(watch_add(hub, S("/"), true, false, i, 26, NULL, NULL, &w, &hit, NULL), 0);
		assert_non_null(hit);
		assert_int_equal(hit->action, TREE_EXPIRE);
		assert_true((uint64_t)hit->prev.expire_ns >= last_exp);
		if ((uint64_t)hit->prev.expire_ns == last_exp)
			assert_true(strcmp(hit->node.key, "/k03") == 0 || strcmp(hit->node.key, "/k07") == 0);
		last_exp = (uint64_t)hit->prev.expire_ns;
		tree_event_unref(hit);
	}
	tree_free(t);
	watch_hub_free(hub);
}

static void
build_sample(struct tree *t, bool reverse)
{
	static const char *keys[] = { "/a/b/c", "/a/b/d", "/x", "/_h/i", "/a/e", "/n\0ul", "/z/z/z/z/z" };
	size_t nk = sizeof(keys) / sizeof(keys[0]);
	struct tree_event *ev = NULL;

	for (size_t j = 0; j < nk; j++) {
		size_t i = reverse ? nk - 1 - j : j;
		size_t kl = i == 5 ? 5 : strlen(keys[i]);

		assert_int_equal(tree_set(t, keys[i], kl, false, S("value"), i == 2 ? NOW + 7 * SEC : 0, false, &ev, NULL), 0);
		tree_event_unref(ev);
	}
}

static void
test_snapshot_roundtrip(void **state)
{
	struct tree *t = mk(), *u = NULL, *r = tree_new(7, NULL), *w = NULL;
	struct buf b = BUF_INIT, b2 = BUF_INIT;
	char msg[128];
	int64_t when;

	(void)state;
	build_sample(t, false);
	build_sample(r, true);
	/* Same contents except indexes: different hashes. */
	assert_int_not_equal(tree_hash(t), tree_hash(r));
	assert_int_equal(tree_snapshot_save(t, &b), 0);
	assert_int_equal(tree_snapshot_load(b.data, b.len, 99, NULL, &u, msg, sizeof(msg)), 0);
	assert_int_equal(tree_hash(t), tree_hash(u));
	assert_int_equal(tree_index(u), tree_index(t));
	assert_int_equal(tree_node_count(u), tree_node_count(t));
	assert_int_equal(tree_next_expiry(u, &when), 0);
	assert_int_equal(when, NOW + 7 * SEC);
	tree_set_now(u, NOW);
	get_json(u, "/a/b/c", false, false, "{\"action\":\"get\",\"node\":{\"key\":\"/a/b/c\",\"value\":\"value\",\"modifiedIndex\":1,\"createdIndex\":1}}");
	/* The loaded tree saves to a snapshot of the same contents. */
	assert_int_equal(tree_snapshot_save(u, &b2), 0);
	assert_int_equal(tree_snapshot_load(b2.data, b2.len, 5, NULL, &w, msg, sizeof(msg)), 0);
	assert_int_equal(tree_hash(w), tree_hash(t));
	/* And it keeps working. */
	set_ok(u, "/a/b/q", "1");
	set_ok(t, "/a/b/q", "1");
	assert_int_equal(tree_hash(t), tree_hash(u));
	set_ok(u, "/a/b/q", "2");
	assert_int_not_equal(tree_hash(t), tree_hash(u));
	tree_free(u);
	tree_free(w);
	tree_free(r);
	tree_free(t);
	buf_free(&b);
	buf_free(&b2);
}

static void
test_hash_order_independent(void **state)
{
	struct tree *a = tree_new(1, NULL), *b = tree_new(2, NULL);
	struct tree_event *ev = NULL;

	(void)state;
	/* Same operations, different seeds: same hash. */
	for (int i = 0; i < 300; i++) {
		char k[32];

		snprintf(k, sizeof(k), "/d%d/k%d", i % 7, i);
		assert_int_equal(tree_set(a, S(k), false, S("v"), 0, false, &ev, NULL), 0);
		tree_event_unref(ev);
		assert_int_equal(tree_set(b, S(k), false, S("v"), 0, false, &ev, NULL), 0);
		tree_event_unref(ev);
	}
	assert_int_equal(tree_hash(a), tree_hash(b));
	assert_int_equal(tree_delete(a, S("/d3"), true, true, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_not_equal(tree_hash(a), tree_hash(b));
	tree_free(a);
	tree_free(b);
}

static void
test_snapshot_corrupt(void **state)
{
	struct tree *t = mk(), *u = NULL;
	struct buf b = BUF_INIT;
	char msg[128];
	uint64_t h;

	(void)state;
	build_sample(t, false);
	h = tree_hash(t);
	assert_int_equal(tree_snapshot_save(t, &b), 0);
	/* Every truncation is rejected. */
	for (size_t n = 0; n < b.len; n++) {
		assert_int_not_equal(tree_snapshot_load(b.data, n, 1, NULL, &u, msg, sizeof(msg)), 0);
		assert_null(u);
		assert_true(strncmp(msg, "tree snapshot: ", 15) == 0);
	}
	/* Trailing garbage. */
	assert_int_equal(buf_putc(&b, 0), 0);
	assert_int_equal(tree_snapshot_load(b.data, b.len, 1, NULL, &u, msg, sizeof(msg)), -ERR_CORRUPT);
	assert_non_null(strstr(msg, "trailing bytes"));
	b.len--;
	/* Any single flipped byte either fails or yields some valid tree. */
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			int rc;

			b.data[i] ^= (char)(1 << bit);
			rc = tree_snapshot_load(b.data, b.len, 1, NULL, &u, msg, sizeof(msg));
			if (rc == 0) {
				assert_non_null(u);
				tree_free(u);
				u = NULL;
			} else {
				assert_null(u);
			}
			b.data[i] ^= (char)(1 << bit);
		}
	}
	assert_int_equal(tree_snapshot_load(b.data, b.len, 1, NULL, &u, msg, sizeof(msg)), 0);
	assert_int_equal(tree_hash(u), h);
	tree_free(u);
	buf_free(&b);
	tree_free(t);
}

/* Hand-built snapshots hitting each validation. */
static void
test_snapshot_hostile(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
		int rc;
		const char *why;
	} cases[] = {
		{ "XXXX\1\0\0\1\1\0\0\0\0\0", 14, -ERR_CORRUPT, "bad magic" },
		{ "CBTR\2\0\0\1\1\0\0\0\0\0", 14, -ERR_UNSUPPORTED, "unknown version" },
		{ "CBTR\1\1\0\1\1\0\0\0\0\0", 14, -ERR_CORRUPT, "unknown flags" },
		/* minimal valid: index 0, one node (root dir, no children) */
		{ "CBTR\1\0\0\1\1\0\0\0\0\0", 14, 0, NULL },
		{ "CBTR\1\0\0\1\0\0\0\0\0\0", 14, -ERR_CORRUPT, "bad root" },
		{ "CBTR\1\0\0\1\1\1a\0\0\0\0", 15, -ERR_CORRUPT, "bad root" },
		{ "CBTR\1\0\0\0", 8, -ERR_CORRUPT, "node count" },
		/* root announces 2 children, one present */
		{ "CBTR\1\0\1\2\1\0\0\0\0\2\0\1a\1\1\0\1v", 22, -ERR_CORRUPT, NULL },
		/* duplicate names */
		{ "CBTR\1\0\1\3\1\0\0\0\0\2\0\1a\1\1\0\1v\0\1a\1\1\0\1w", 30, -ERR_CORRUPT, "duplicate name" },
		/* names that no clean path reaches */
		{ "CBTR\1\0\1\2\1\0\0\0\0\1\0\1.\1\1\0\1v", 22, -ERR_CORRUPT, "bad name" },
		{ "CBTR\1\0\1\2\1\0\0\0\0\1\0\2..\1\1\0\1v", 23, -ERR_CORRUPT, "bad name" },
		{ "CBTR\1\0\1\2\1\0\0\0\0\1\0\3a/b\1\1\0\1v", 24, -ERR_CORRUPT, "bad name" },
		{ "CBTR\1\0\1\2\1\0\0\0\0\1\0\0\1\1\0\1v", 21, -ERR_CORRUPT, "bad name" },
		/* index above the store's */
		{ "CBTR\1\0\1\2\1\0\0\0\0\1\0\1a\2\1\0\1v", 22, -ERR_CORRUPT, "index above" },
		/* value longer than the data */
		{ "CBTR\1\0\1\2\1\0\0\0\0\1\0\1a\1\1\0\5v", 22, -ERR_CORRUPT, "value length" },
		/* huge child count */
		{ "CBTR\1\0\1\2\1\0\0\0\0\xff\xff\xff\xff\x0f\0\1a\1\1\0\1v", 26, -ERR_CORRUPT, "child count" },
		/* bad kind */
		{ "CBTR\1\0\1\2\1\0\0\0\0\1\2\1a\1\1\0\1v", 22, -ERR_CORRUPT, "kind" },
		/* overlong varint */
		{ "CBTR\1\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02\1", 17, -ERR_CORRUPT, "truncated header" },
		/* root with a TTL */
		{ "CBTR\1\0\0\1\1\0\0\0\2\0", 14, -ERR_CORRUPT, "root with a TTL" },
		/* a valid one with a TTL file */
		{ "CBTR\1\0\1\2\1\0\0\0\0\1\0\1a\1\1\2\1v", 22, 0, NULL },
	};
	char msg[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tree *u = NULL;
		int rc = tree_snapshot_load(cases[i].bytes, cases[i].len, 1, NULL, &u, msg, sizeof(msg));

		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d want %d (%s)", i, rc, cases[i].rc, msg);
		if (cases[i].why != NULL && strstr(msg, cases[i].why) == NULL)
			fail_msg("case %zu: message '%s' lacks '%s'", i, msg, cases[i].why);
		if (rc == 0)
			assert_non_null(u);
		tree_free(u);
	}
}

static void
test_snapshot_depth(void **state)
{
	struct buf b = BUF_INIT;
	struct tree *u = NULL;
	char msg[128];
	int depth = TREE_DEPTH_MAX + 1;

	(void)state;
	/* A chain of directories one deeper than allowed. */
	assert_int_equal(buf_append(&b, "CBTR\1\0\0", 7), 0);
	assert_int_equal(buf_putc(&b, (char)(0x80 | ((depth + 1) & 0x7f))), 0);
	assert_int_equal(buf_putc(&b, (char)((depth + 1) >> 7)), 0);
	assert_int_equal(buf_append(&b, "\1\0\0\0\0\1", 6), 0);
	for (int i = 0; i < depth; i++)
		assert_int_equal(buf_append(&b, i == depth - 1 ? "\1\1d\0\0\0\0" : "\1\1d\0\0\0\1", 7), 0);
	assert_int_equal(tree_snapshot_load(b.data, b.len, 1, NULL, &u, msg, sizeof(msg)), -ERR_CORRUPT);
	assert_non_null(strstr(msg, "too deep"));
	buf_free(&b);
}

static void
test_depth_limit(void **state)
{
	struct tree *t = mk();
	struct tree_event *ev = NULL;
	char key[TREE_DEPTH_MAX * 2 + 8];
	size_t n = 0;

	(void)state;
	for (int i = 0; i < TREE_DEPTH_MAX; i++) {
		key[n++] = '/';
		key[n++] = 'd';
	}
	assert_int_equal(tree_set(t, key, n, false, S("v"), 0, false, &ev, NULL), 0);
	tree_event_unref(ev);
	/* one level deeper under the file: etcd's 104 comes first */
	key[n++] = '/';
	key[n++] = 'd';
	assert_int_equal(tree_set(t, key, n, false, S("v"), 0, false, &ev, NULL), -ERR_INVAL);
	/* a new branch one level too deep */
	key[1] = 'e';
	assert_int_equal(tree_set(t, key, n, false, S("v"), 0, false, &ev, NULL), -ERR_LIMIT);
	assert_int_equal(tree_create(t, key, n - 2, false, S("v"), true, 0, &ev, NULL), -ERR_LIMIT);
	key[1] = 'd';
	assert_int_equal(tree_index(t), 1);
	/* the deepest key can be listed and deleted */
	get_json(t, "/d", false, false, "{\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"nodes\":[{\"key\":\"/d/d\",\"dir\":true,\"modifiedIndex\":1,\"createdIndex\":1}],\"modifiedIndex\":1,\"createdIndex\":1}}");
	{
		struct tree_event gev;
		struct buf b = BUF_INIT;

		assert_int_equal(tree_get(t, S("/"), true, true, &gev, NULL), 0);
		assert_int_equal(tree_event_json(&b, &gev, NOW), 0);
		buf_free(&b);
	}
	assert_int_equal(tree_delete(t, S("/d"), true, true, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_node_count(t), 1);
	tree_free(t);
}

/*
 * Runs op with the Nth allocation failing, for every N until it succeeds:
 * each failure must be -ERR_NOMEM and leave the tree's hash, index and
 * stats as they were.
 */
typedef int (*op_fn)(struct tree *t, struct tree_event **ev);

static void
nomem_sweep(struct tree *t, op_fn op)
{
	for (long n = 0; n < 200; n++) {
		uint64_t h = tree_hash(t), idx = tree_index(t);
		struct tree_stats st = *tree_stats(t);
		struct tree_event *ev = NULL;
		int rc;

		mem_fail_after(n);
		rc = op(t, &ev);
		mem_fail_reset();
		if (rc == 0) {
			assert_non_null(ev);
			tree_event_unref(ev);
			return;
		}
		assert_int_equal(rc, -ERR_NOMEM);
		assert_null(ev);
		assert_int_equal(tree_hash(t), h);
		assert_int_equal(tree_index(t), idx);
		assert_memory_equal(tree_stats(t), &st, sizeof(st));
	}
	fail_msg("operation never succeeded");
}

static int
op_set_deep(struct tree *t, struct tree_event **ev)
{
	return tree_set(t, S("/n/e/w/key"), false, S("value"), NOW + 5 * SEC, false, ev, NULL);
}

static int
op_set_replace(struct tree *t, struct tree_event **ev)
{
	return tree_set(t, S("/n/e/w/key"), false, S("other"), NOW + 9 * SEC, false, ev, NULL);
}

static int
op_create_unique(struct tree *t, struct tree_event **ev)
{
	return tree_create(t, S("/q/very/long/queue/name/that/does/not/fit/in/a/small/buffer/0123456789012345678901234567890123456789"
	    "012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"),
	    false, S("v"), true, 0, ev, NULL);
}

static int
op_update(struct tree *t, struct tree_event **ev)
{
	return tree_update(t, S("/n/e/w/key"), S("longer value here"), 0, false, ev, NULL);
}

static int
op_cas(struct tree *t, struct tree_event **ev)
{
	return tree_cas(t, S("/n/e/w/key"), S("longer value here"), 0, S("x"), NOW + 3 * SEC, false, ev, NULL);
}

static int
op_refresh(struct tree *t, struct tree_event **ev)
{
	return tree_set(t, S("/n/e/w/key"), false, NULL, 0, NOW + 30 * SEC, true, ev, NULL);
}

static int
op_cad(struct tree *t, struct tree_event **ev)
{
	return tree_cad(t, S("/n/e/w/key"), S("x"), 0, ev, NULL);
}

static int
op_delete(struct tree *t, struct tree_event **ev)
{
	return tree_delete(t, S("/n"), true, true, ev, NULL);
}

static void
test_nomem(void **state)
{
	struct tree *t = mk();
	struct watch_hub *hub = watch_hub_new(0);

	(void)state;
	tree_set_hub(t, hub);
	for (int i = 0; i < 40; i++) {
		char k[32];

		snprintf(k, sizeof(k), "/n/e/f%d", i);
		set_ok(t, k, "filler");
	}
	nomem_sweep(t, op_set_deep);
	nomem_sweep(t, op_set_replace);
	nomem_sweep(t, op_create_unique);
	nomem_sweep(t, op_update);
	nomem_sweep(t, op_cas);
	nomem_sweep(t, op_refresh);
	nomem_sweep(t, op_cad);
	nomem_sweep(t, op_delete);
	{
		struct tree_event gev;

		assert_int_equal(tree_get(t, S("/n"), false, false, &gev, NULL), -ERR_INVAL);
	}
	/* An error whose cause cannot be copied degrades to -ERR_NOMEM. */
	{
		struct tree_error e = TREE_ERROR_INIT;
		struct tree_event gev;

		mem_fail_after(0);
		assert_int_equal(tree_get(t, S("/missing"), false, false, &gev, &e), -ERR_NOMEM);
		mem_fail_reset();
		assert_int_equal(e.code, 0);
	}
	/* A snapshot load failing on memory returns -ERR_NOMEM and no tree. */
	{
		struct buf b = BUF_INIT;
		struct tree *u = NULL;
		char msg[128];
		long n;

		assert_int_equal(tree_snapshot_save(t, &b), 0);
		for (n = 0;; n++) {
			int rc;

			mem_fail_after(n);
			rc = tree_snapshot_load(b.data, b.len, 3, NULL, &u, msg, sizeof(msg));
			mem_fail_reset();
			if (rc == 0)
				break;
			assert_int_equal(rc, -ERR_NOMEM);
			assert_null(u);
		}
		assert_int_equal(tree_hash(u), tree_hash(t));
		tree_free(u);
		buf_free(&b);
	}
	tree_free(t);
	watch_hub_free(hub);
}

/* Many keys in one directory: growth, shrink, lookups after deletions. */
static void
test_big_directory(void **state)
{
	struct tree *t = mk();
	struct tree_event *ev = NULL, gev;
	char k[32];

	(void)state;
	for (int i = 0; i < 5000; i++) {
		snprintf(k, sizeof(k), "/big/%d", i);
		set_ok(t, k, "v");
	}
	for (int i = 0; i < 5000; i += 2) {
		snprintf(k, sizeof(k), "/big/%d", i);
		assert_int_equal(tree_delete(t, S(k), false, false, &ev, NULL), 0);
		tree_event_unref(ev);
	}
	for (int i = 0; i < 5000; i++) {
		int rc;

		snprintf(k, sizeof(k), "/big/%d", i);
		rc = tree_get(t, S(k), false, false, &gev, NULL);
		assert_int_equal(rc, (i % 2) ? 0 : -ERR_INVAL);
	}
	for (int i = 1; i < 4990; i += 2) {
		snprintf(k, sizeof(k), "/big/%d", i);
		assert_int_equal(tree_delete(t, S(k), false, false, &ev, NULL), 0);
		tree_event_unref(ev);
	}
	for (int i = 4991; i < 5000; i += 2) {
		snprintf(k, sizeof(k), "/big/%d", i);
		assert_int_equal(tree_get(t, S(k), false, false, &gev, NULL), 0);
	}
	assert_int_equal(tree_node_count(t), 2 + 5);
	tree_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_clean),
		cmocka_unit_test(test_set_get_json),
		cmocka_unit_test(test_json_escaping),
		cmocka_unit_test(test_time_format),
		cmocka_unit_test(test_ttl_render),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_json),
		cmocka_unit_test(test_stats_quirks),
		cmocka_unit_test(test_update_cas),
		cmocka_unit_test(test_refresh),
		cmocka_unit_test(test_inorder_keys),
		cmocka_unit_test(test_hidden_sorted),
		cmocka_unit_test(test_delete),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_expiry_order),
		cmocka_unit_test(test_snapshot_roundtrip),
		cmocka_unit_test(test_hash_order_independent),
		cmocka_unit_test(test_snapshot_corrupt),
		cmocka_unit_test(test_snapshot_hostile),
		cmocka_unit_test(test_snapshot_depth),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_nomem),
		cmocka_unit_test(test_big_directory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
