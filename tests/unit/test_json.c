/* Unit tests for core/json: Go-identical output (expected strings were taken
 * from Debian's etcd 3.4.23 v2 API), generator misuse, the parser with its
 * limits and Go decoding rules, allocation failure and round trips. */
#include <float.h>
#include <math.h>
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
#include "corebox/json.h"
#include "corebox/mem.h"

/* Generates an etcd v2 "get" body for key and value, as etcd 3.4 does. */
static void
etcd_get_body(struct buf *b, const char *key, const char *value, size_t value_len, int64_t index)
{
	struct json_gen *g = json_gen_new(b);

	assert_non_null(g);
	assert_int_equal(json_obj_begin(g), 0);
	assert_int_equal(json_key(g, "action"), 0);
	assert_int_equal(json_strz(g, "get"), 0);
	assert_int_equal(json_key(g, "node"), 0);
	assert_int_equal(json_obj_begin(g), 0);
	assert_int_equal(json_key(g, "key"), 0);
	assert_int_equal(json_strz(g, key), 0);
	assert_int_equal(json_key(g, "value"), 0);
	assert_int_equal(json_str(g, value, value_len), 0);
	assert_int_equal(json_key(g, "modifiedIndex"), 0);
	assert_int_equal(json_int(g, index), 0);
	assert_int_equal(json_key(g, "createdIndex"), 0);
	assert_int_equal(json_int(g, index), 0);
	assert_int_equal(json_obj_end(g), 0);
	assert_int_equal(json_obj_end(g), 0);
	assert_int_equal(json_gen_error(g), 0);
	json_gen_free(g);
}

static void
test_escaping_matches_etcd(void **state)
{
	static const struct {
		const char *key;
		const char *value;
		size_t len;
		const char *body;
	} cases[] = {
		{ "/esc/ctl",
		  "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
		  "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f", 32,
		  "{\"action\":\"get\",\"node\":{\"key\":\"/esc/ctl\",\"value\":\"\\u0000\\u0001\\u0002"
		  "\\u0003\\u0004\\u0005\\u0006\\u0007\\u0008\\t\\n\\u000b\\u000c\\r\\u000e\\u000f"
		  "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a"
		  "\\u001b\\u001c\\u001d\\u001e\\u001f\",\"modifiedIndex\":4,\"createdIndex\":4}}" },
		{ "/esc/punct", "\"\\/<>&'", 7,
		  "{\"action\":\"get\",\"node\":{\"key\":\"/esc/punct\",\"value\":\"\\\"\\\\/\\u003c\\u003e"
		  "\\u0026'\",\"modifiedIndex\":5,\"createdIndex\":5}}" },
		{ "/esc/del", "a\x7f" "b", 3,
		  "{\"action\":\"get\",\"node\":{\"key\":\"/esc/del\",\"value\":\"a\x7f" "b\","
		  "\"modifiedIndex\":6,\"createdIndex\":6}}" },
		{ "/esc/u2028", "\xe2\x80\xa8x\xe2\x80\xa9", 7,
		  "{\"action\":\"get\",\"node\":{\"key\":\"/esc/u2028\",\"value\":\"\\u2028x\\u2029\","
		  "\"modifiedIndex\":7,\"createdIndex\":7}}" },
		{ "/esc/utf8", "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15,
		  "{\"action\":\"get\",\"node\":{\"key\":\"/esc/utf8\",\"value\":\"h\xc3\xa9llo "
		  "\xe2\x82\xac \xf0\x9f\x98\x80\",\"modifiedIndex\":8,\"createdIndex\":8}}" },
		{ "/esc/bad",
		  "\xff\xfe a \xc3 b \xe2\x82 c \xed\xa0\x80 d \xc0\xaf e \xf4\x90\x80\x80 f \xef\xbf\xbd", 35,
		  "{\"action\":\"get\",\"node\":{\"key\":\"/esc/bad\",\"value\":\"\\ufffd\\ufffd a \\ufffd b "
		  "\\ufffd\\ufffd c \\ufffd\\ufffd\\ufffd d \\ufffd\\ufffd e \\ufffd\\ufffd\\ufffd\\ufffd"
		  " f \xef\xbf\xbd\",\"modifiedIndex\":9,\"createdIndex\":9}}" },
		{ "/esc/nlcrtab", "\n\r\t\x08\x0c", 5,
		  "{\"action\":\"get\",\"node\":{\"key\":\"/esc/nlcrtab\",\"value\":\"\\n\\r\\t\\u0008"
		  "\\u000c\",\"modifiedIndex\":10,\"createdIndex\":10}}" },
	};
	struct buf b = BUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_reset(&b);
		etcd_get_body(&b, cases[i].key, cases[i].value, cases[i].len,
			(int64_t)i + 4);
		assert_string_equal(buf_cstr(&b), cases[i].body);
	}
	buf_free(&b);
}

static void
test_escape_key_and_one_shot(void **state)
{
	struct buf b = BUF_INIT;
	struct json_gen *g;

	(void)state;
	/* etcd 3.4: PUT /v2/keys/esc/k%3C%26%3E%22%5C */
	g = json_gen_new(&b);
	assert_non_null(g);
	assert_int_equal(json_obj_begin(g), 0);
	assert_int_equal(json_key(g, "key"), 0);
	assert_int_equal(json_strz(g, "/esc/k<&>\"\\"), 0);
	/* Keys get the same escaping. */
	assert_int_equal(json_key(g, "a<b\n"), 0);
	assert_int_equal(json_null(g), 0);
	assert_int_equal(json_keyn(g, "n\0l", 3), 0);
	assert_int_equal(json_bool(g, 1), 0);
	assert_int_equal(json_obj_end(g), 0);
	assert_string_equal(buf_cstr(&b),
		"{\"key\":\"/esc/k\\u003c\\u0026\\u003e\\\"\\\\\",\"a\\u003cb\\n\":null,\"n\\u0000l\":true}");
	json_gen_free(g);

	buf_reset(&b);
	assert_int_equal(buf_puts(&b, "x="), 0);
	assert_int_equal(json_escape_go(&b, "<a href=\"/\">&</a>", 17), 0);
	assert_string_equal(buf_cstr(&b), "x=\"\\u003ca href=\\\"/\\\"\\u003e\\u0026\\u003c/a\\u003e\"");
	buf_reset(&b);
	assert_int_equal(json_escape_go_html(&b, "<&>", 3, 0), 0);
	assert_string_equal(buf_cstr(&b), "\"<&>\"");
	buf_reset(&b);
	assert_int_equal(json_escape_go(&b, "", 0), 0);
	assert_string_equal(buf_cstr(&b), "\"\"");
	/* A sequence cut short at the end of the input. */
	buf_reset(&b);
	assert_int_equal(json_escape_go(&b, "a\xf0\x9f\x98", 4), 0);
	assert_string_equal(buf_cstr(&b), "\"a\\ufffd\\ufffd\\ufffd\"");
	buf_free(&b);

	/* Generator without HTML escaping. */
	g = json_gen_new(&b);
	json_gen_set_escape_html(g, 0);
	assert_int_equal(json_strz(g, "<>"), 0);
	assert_string_equal(buf_cstr(&b), "\"<>\"");
	json_gen_free(g);
	buf_free(&b);
}

static void
test_nesting_and_numbers(void **state)
{
	struct buf b = BUF_INIT;
	struct json_gen *g = json_gen_new(&b);

	(void)state;
	assert_int_equal(json_arr_begin(g), 0);
	assert_int_equal(json_int(g, INT64_MIN), 0);
	assert_int_equal(json_int(g, INT64_MAX), 0);
	assert_int_equal(json_uint(g, UINT64_MAX), 0);
	assert_int_equal(json_int(g, 0), 0);
	assert_int_equal(json_arr_begin(g), 0);
	assert_int_equal(json_arr_end(g), 0);
	assert_int_equal(json_obj_begin(g), 0);
	assert_int_equal(json_obj_end(g), 0);
	assert_int_equal(json_obj_begin(g), 0);
	assert_int_equal(json_key(g, "a"), 0);
	assert_int_equal(json_arr_begin(g), 0);
	assert_int_equal(json_obj_begin(g), 0);
	assert_int_equal(json_key(g, "b"), 0);
	assert_int_equal(json_raw(g, "{\"pre\":[1,2]}", 13), 0);
	assert_int_equal(json_key(g, "c"), 0);
	assert_int_equal(json_bool(g, 0), 0);
	assert_int_equal(json_obj_end(g), 0);
	assert_int_equal(json_null(g), 0);
	assert_int_equal(json_arr_end(g), 0);
	assert_int_equal(json_obj_end(g), 0);
	assert_int_equal(json_double(g, 0.5), 0);
	assert_int_equal(json_arr_end(g), 0);
	assert_string_equal(buf_cstr(&b),
		"[-9223372036854775808,9223372036854775807,18446744073709551615,0,[],{},"
		"{\"a\":[{\"b\":{\"pre\":[1,2]},\"c\":false},null]},0.5]");
	json_gen_free(g);
	buf_free(&b);
}

static void
test_double_format(void **state)
{
	static const struct {
		double v;
		const char *go;
	} cases[] = {
		{ 0.0, "0" }, { 1.0, "1" }, { 0.1, "0.1" }, { 1.5, "1.5" }, { -2.5, "-2.5" },
		{ 100.0, "100" }, { 1e20, "100000000000000000000" }, { 1e21, "1e+21" },
		{ 1.5e21, "1.5e+21" }, { 1e-6, "0.000001" }, { 1e-7, "1e-7" },
		{ 1.23e-7, "1.23e-7" }, { 1e-10, "1e-10" }, { 123456789.123, "123456789.123" },
		{ 0.1 + 0.2, "0.30000000000000004" }, { 5e-324, "5e-324" },
		{ DBL_MAX, "1.7976931348623157e+308" }, { 3.14159, "3.14159" },
		{ 12345678901234567890.0, "12345678901234567000" }, { 0.000123, "0.000123" },
		{ -1e-7, "-1e-7" }, { 2.2250738585072014e-308, "2.2250738585072014e-308" },
		{ 1e100, "1e+100" }, { 0.0123, "0.0123" }, { 9007199254740993.0, "9007199254740992" },
	};
	struct buf b = BUF_INIT;
	struct json_gen *g;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_reset(&b);
		assert_int_equal(json_format_double(&b, cases[i].v), 0);
		assert_string_equal(buf_cstr(&b), cases[i].go);
	}
	buf_reset(&b);
	assert_int_equal(json_format_double(&b, -0.0), 0);
	assert_string_equal(buf_cstr(&b), "-0");
	assert_int_equal(json_format_double(&b, NAN), -ERR_INVAL);
	assert_int_equal(json_format_double(&b, INFINITY), -ERR_INVAL);
	buf_reset(&b);
	g = json_gen_new(&b);
	assert_int_equal(json_arr_begin(g), 0);
	assert_int_equal(json_double(g, -INFINITY), -ERR_INVAL);
	/* Sticky. */
	assert_int_equal(json_int(g, 1), -ERR_INVAL);
	assert_int_equal(json_gen_error(g), -ERR_INVAL);
	json_gen_free(g);
	buf_free(&b);
}

static void
test_generator_misuse(void **state)
{
	struct buf b = BUF_INIT;
	struct json_gen *g = json_gen_new(&b);

	(void)state;
	/* A value where a key is due. */
	assert_int_equal(json_obj_begin(g), 0);
	assert_int_equal(json_strz(g, "v"), -ERR_STATE);
	assert_int_equal(json_key(g, "k"), -ERR_STATE); /* sticky */
	json_gen_reset(g);
	buf_reset(&b);

	/* Raw text and numbers where a key is due. */
	assert_int_equal(json_obj_begin(g), 0);
	assert_int_equal(json_raw(g, "1", 1), -ERR_STATE);
	json_gen_reset(g);
	buf_reset(&b);

	/* A key in an array, two keys in a row, a dangling key. */
	assert_int_equal(json_arr_begin(g), 0);
	assert_int_equal(json_key(g, "k"), -ERR_STATE);
	json_gen_reset(g);
	buf_reset(&b);
	assert_int_equal(json_obj_begin(g), 0);
	assert_int_equal(json_key(g, "k"), 0);
	assert_int_equal(json_key(g, "k2"), -ERR_STATE);
	json_gen_reset(g);
	buf_reset(&b);
	assert_int_equal(json_obj_begin(g), 0);
	assert_int_equal(json_key(g, "k"), 0);
	assert_int_equal(json_obj_end(g), -ERR_STATE);
	json_gen_reset(g);
	buf_reset(&b);

	/* Mismatched and extra ends; a key at top level. */
	assert_int_equal(json_arr_begin(g), 0);
	assert_int_equal(json_obj_end(g), -ERR_STATE);
	json_gen_reset(g);
	buf_reset(&b);
	assert_int_equal(json_arr_end(g), -ERR_STATE);
	json_gen_reset(g);
	assert_int_equal(json_key(g, "k"), -ERR_STATE);
	json_gen_reset(g);

	/* A second top-level value; reset allows one more. */
	buf_reset(&b);
	assert_int_equal(json_int(g, 1), 0);
	assert_int_equal(json_int(g, 2), -ERR_STATE);
	json_gen_reset(g);
	assert_int_equal(json_gen_error(g), 0);
	assert_int_equal(json_int(g, 3), 0);
	assert_string_equal(buf_cstr(&b), "13");

	/* Nesting beyond yajl's limit. */
	json_gen_reset(g);
	buf_reset(&b);
	int rc = 0, i;

	for (i = 0; i < 200 && rc == 0; i++)
		rc = json_arr_begin(g);
	assert_int_equal(rc, -ERR_STATE);
	assert_int_equal(i, 128);
	json_gen_free(g);
	buf_free(&b);
}

static void
test_generator_nomem(void **state)
{
	char big[3000];
	int rc = -1;

	(void)state;
	memset(big, 'a', sizeof(big));
	big[10] = '<';
	for (long n = 0; n < 100 && rc != 0; n++) {
		struct buf b = BUF_INIT;
		struct json_gen *g;

		mem_fail_after(n);
		g = json_gen_new(&b);
		if (g == NULL) {
			mem_fail_reset();
			assert_int_equal(n, 0);
			continue;
		}
		rc = json_obj_begin(g);
		if (rc == 0)
			rc = json_key(g, "k");
		if (rc == 0)
			rc = json_str(g, big, sizeof(big));
		if (rc == 0)
			rc = json_keyn(g, big, sizeof(big));
		if (rc == 0)
			rc = json_int(g, 5);
		if (rc == 0)
			rc = json_obj_end(g);
		mem_fail_reset();
		if (rc != 0) {
			assert_int_equal(rc, -ERR_NOMEM);
			/* Sticky: nothing more is accepted. */
			assert_int_equal(json_null(g), -ERR_NOMEM);
			assert_int_equal(json_gen_error(g), -ERR_NOMEM);
		} else {
			/* '<' is escaped to six bytes in both copies of big. */
			assert_int_equal(b.len, 1 + 3 + 1 + 3007 + 1 + 3007 + 1 + 1 + 1);
		}
		json_gen_free(g);
		buf_free(&b);
	}
	assert_int_equal(rc, 0);
}

/* Parses text (NUL-terminated) or fails the test. */
static struct json_doc *
parse_ok(const char *text)
{
	struct json_doc *doc = NULL;
	char msg[JSON_ERRMSG_BYTES_MAX];
	int rc = json_parse(text, strlen(text), NULL, &doc, msg, sizeof(msg));

	if (rc != 0)
		fail_msg("parse of %s failed: %d %s", text, rc, msg);
	return doc;
}

static void
test_parse_basic(void **state)
{
	struct json_doc *doc;
	const struct json_node *root, *n, *c;
	const char *s;
	size_t len;
	int b;

	(void)state;
	doc = parse_ok(" {\"a\":1,\"b\":[true,false,null,\"x\"],\"c\":{\"d\":\"e\"},\"a\":2,\"Key\":3} \n");
	root = json_doc_root(doc);
	assert_int_equal(root->type, JSON_OBJECT);
	assert_int_equal(json_len(root), 5);
	/* The last duplicate wins, as in Go. */
	n = json_get(root, "a");
	assert_non_null(n);
	assert_string_equal(n->u.num.text, "2");
	assert_null(json_get(root, "key"));
	assert_non_null(json_get_fold(root, "key"));
	assert_non_null(json_get_fold(root, "KEY"));
	assert_null(json_get(root, "zz"));
	assert_null(json_get(json_get(root, "b"), "a"));
	n = json_get(root, "b");
	assert_int_equal(n->type, JSON_ARRAY);
	assert_int_equal(json_len(n), 4);
	assert_int_equal(json_get_bool(json_at(n, 0), &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(json_get_bool(json_at(n, 1), &b), 0);
	assert_int_equal(b, 0);
	assert_true(json_is_null(json_at(n, 2)));
	assert_true(json_is_null(json_at(n, 9)));
	assert_false(json_is_null(json_at(n, 3)));
	assert_int_equal(json_get_str(json_at(n, 3), &s, &len), 0);
	assert_int_equal(len, 1);
	assert_string_equal(s, "x");
	assert_int_equal(json_get_str(json_at(n, 0), &s, &len), -ERR_INVAL);
	assert_int_equal(json_get_bool(json_at(n, 3), &b), -ERR_INVAL);
	assert_int_equal(json_get_str(json_get(json_get(root, "c"), "d"), &s, NULL), 0);
	assert_string_equal(s, "e");
	/* Iteration in input order, keys kept. */
	c = json_first(root);
	assert_string_equal(c->key, "a");
	c = c->next;
	assert_string_equal(c->key, "b");
	assert_null(json_first(json_at(n, 0)));
	assert_int_equal(json_len(json_at(n, 0)), 0);
	assert_null(json_at(NULL, 0));
	json_doc_free(doc);
	json_doc_free(NULL);

	/* Scalars at the top. */
	doc = parse_ok("\"top\"");
	assert_int_equal(json_doc_root(doc)->type, JSON_STRING);
	json_doc_free(doc);
	doc = parse_ok("-0.5e+3");
	assert_string_equal(json_doc_root(doc)->u.num.text, "-0.5e+3");
	json_doc_free(doc);
}

static void
test_parse_numbers(void **state)
{
	struct json_doc *doc;
	const struct json_node *r;
	int64_t i;
	uint64_t u;
	double d;

	(void)state;
	doc = parse_ok("[-9223372036854775808,9223372036854775807,18446744073709551615,"
		"18446744073709551616,1.0,1e2,-0,0.25,1e400,-5]");
	r = json_doc_root(doc);
	assert_int_equal(json_get_int(json_at(r, 0), &i), 0);
	assert_true(i == INT64_MIN);
	assert_int_equal(json_get_uint(json_at(r, 0), &u), -ERR_RANGE);
	assert_int_equal(json_get_int(json_at(r, 1), &i), 0);
	assert_true(i == INT64_MAX);
	assert_int_equal(json_get_int(json_at(r, 2), &i), -ERR_RANGE);
	assert_int_equal(json_get_uint(json_at(r, 2), &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(json_get_uint(json_at(r, 3), &u), -ERR_RANGE);
	assert_int_equal(json_get_double(json_at(r, 3), &d), 0);
	assert_true(d == 18446744073709551616.0);
	assert_int_equal(json_get_int(json_at(r, 4), &i), -ERR_RANGE);
	assert_int_equal(json_get_double(json_at(r, 4), &d), 0);
	assert_true(d == 1.0);
	assert_int_equal(json_get_int(json_at(r, 5), &i), -ERR_RANGE);
	assert_int_equal(json_get_int(json_at(r, 6), &i), 0);
	assert_int_equal(i, 0);
	assert_int_equal(json_get_uint(json_at(r, 6), &u), -ERR_RANGE);
	assert_int_equal(json_get_double(json_at(r, 7), &d), 0);
	assert_true(d == 0.25);
	assert_int_equal(json_get_double(json_at(r, 8), &d), -ERR_RANGE);
	assert_int_equal(json_get_int(json_at(r, 9), &i), 0);
	assert_int_equal(i, -5);
	assert_int_equal(json_get_int(NULL, &i), -ERR_INVAL);
	assert_int_equal(json_get_double(r, &d), -ERR_INVAL);
	json_doc_free(doc);
}

static void
test_parse_strings_go_rules(void **state)
{
	static const struct {
		const char *json;
		const char *want;
		size_t want_len;
	} cases[] = {
		{ "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "a\"b\\c/d\b\f\n\r\t", 12 },
		{ "\"\\u0000x\"", "\0x", 2 },
		{ "\"\\u00e9\\u20AC\"", "\xc3\xa9\xe2\x82\xac", 5 },
		/* A surrogate pair, a lone high, a lone low, high + non-low. */
		{ "\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4 },
		{ "\"\\ud83dx\"", "\xef\xbf\xbdx", 4 },
		{ "\"\\ude00\"", "\xef\xbf\xbd", 3 },
		{ "\"\\ud83d\\u0041\"", "\xef\xbf\xbd" "A", 4 },
		/* Raw invalid UTF-8: one U+FFFD per bad byte; valid kept. */
		{ "\"\xff" "a\xe2\x82" "b\xed\xa0\x80\xc3\xa9\"",
		  "\xef\xbf\xbd" "a\xef\xbf\xbd\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9", 22 },
		/* Escaped quotes and backslashes right before the closing quote. */
		{ "\"\\\\\"", "\\", 1 },
		{ "\"x\\\\\\\"\"", "x\\\"", 3 },
		{ "\"\"", "", 0 },
	};
	char text[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_doc *doc;
		const struct json_node *n;
		const char *s;
		size_t len;

		/* As a value, and as a key in an object after other escapes. */
		doc = parse_ok(cases[i].json);
		assert_int_equal(json_get_str(json_doc_root(doc), &s, &len), 0);
		assert_int_equal(len, cases[i].want_len);
		assert_memory_equal(s, cases[i].want, len);
		assert_int_equal(s[len], '\0');
		json_doc_free(doc);

		snprintf(text, sizeof(text), "{\"\\\"q\":\"\\\\\",%s:[%s]}", cases[i].json, cases[i].json);
		doc = parse_ok(text);
		n = json_at(json_doc_root(doc), 1);
		assert_non_null(n);
		assert_int_equal(n->key_len, cases[i].want_len);
		assert_memory_equal(n->key, cases[i].want, n->key_len);
		assert_int_equal(json_get_str(json_first(n), &s, &len), 0);
		assert_int_equal(len, cases[i].want_len);
		assert_memory_equal(s, cases[i].want, len);
		assert_non_null(json_getn(json_doc_root(doc), cases[i].want, cases[i].want_len));
		json_doc_free(doc);
	}
}

static void
test_parse_invalid(void **state)
{
	static const char *const bad[] = {
		"", " ", "{", "[1,", "[1,]", "{\"a\"}", "{\"a\":}", "{a:1}", "{'a':1}",
		"01", "1.", "-", "+1", ".5", "1e", "tru", "nul", "[1] [2]", "1 2", "{}x",
		"\"abc", "\"a\x01\"", "\"\\x\"", "\"\\u12\"", "/* c */ 1", "[1]//", "NaN", "\"\\u00g0\"",
		"{\"a\":1,}", "[\"a\" \"b\"]", "\xef\xbb\xbf{}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_doc *doc = (struct json_doc *)1;
		char msg[JSON_ERRMSG_BYTES_MAX];
		int rc = json_parse(bad[i], strlen(bad[i]), NULL, &doc, msg, sizeof(msg));

		if (rc != -ERR_PARSE)
			fail_msg("%s: rc %d", bad[i], rc);
		assert_null(doc);
		assert_true(strncmp(msg, "json: ", 6) == 0);
		assert_non_null(strstr(msg, "at offset "));
	}
	/* A message names the place. */
	{
		struct json_doc *doc;
		char msg[JSON_ERRMSG_BYTES_MAX];

		assert_int_equal(json_parse("[1,2]  [", 8, NULL, &doc, msg, sizeof(msg)), -ERR_PARSE);
		assert_string_equal(msg, "json: parse error: trailing garbage at offset 8");
		assert_int_equal(json_parse("[1,2", 4, NULL, &doc, msg, sizeof(msg)), -ERR_PARSE);
		assert_string_equal(msg, "json: parse error: premature EOF at offset 4");
		assert_int_equal(json_parse("[1,2,x]", 7, NULL, &doc, msg, sizeof(msg)), -ERR_PARSE);
		assert_non_null(strstr(msg, "invalid char"));
		/* No message buffer is fine. */
		assert_int_equal(json_parse("[", 1, NULL, &doc, NULL, 0), -ERR_PARSE);
	}
	/* Text need not be NUL-terminated: only len bytes are read. */
	{
		struct json_doc *doc;
		char msg[JSON_ERRMSG_BYTES_MAX];

		assert_int_equal(json_parse("[1]garbage", 3, NULL, &doc, msg, sizeof(msg)), 0);
		assert_int_equal(json_len(json_doc_root(doc)), 1);
		json_doc_free(doc);
	}
}

static void
test_limits(void **state)
{
	struct json_limits lim = JSON_LIMITS_DEFAULT;
	struct json_doc *doc;
	char msg[JSON_ERRMSG_BYTES_MAX], deep[300];

	(void)state;
	/* Input bytes. */
	lim.input_bytes_max = 5;
	assert_int_equal(json_parse("[1,2]", 5, &lim, &doc, msg, sizeof(msg)), 0);
	json_doc_free(doc);
	assert_int_equal(json_parse("[1,2] ", 6, &lim, &doc, msg, sizeof(msg)), -ERR_LIMIT);
	assert_string_equal(msg, "json: input limit 5 bytes exceeded (6 bytes)");
	assert_null(doc);

	/* Depth: 64 by default. */
	lim = (struct json_limits)JSON_LIMITS_DEFAULT;
	memset(deep, '[', 64);
	memset(deep + 64, ']', 64);
	assert_int_equal(json_parse(deep, 128, &lim, &doc, msg, sizeof(msg)), 0);
	json_doc_free(doc);
	memset(deep, '[', 65);
	memset(deep + 65, ']', 65);
	assert_int_equal(json_parse(deep, 130, &lim, &doc, msg, sizeof(msg)), -ERR_LIMIT);
	assert_string_equal(msg, "json: depth limit 64 exceeded at offset 65");
	lim.depth_max = 2;
	assert_int_equal(json_parse("{\"a\":[1]}", 9, &lim, &doc, msg, sizeof(msg)), 0);
	json_doc_free(doc);
	assert_int_equal(json_parse("{\"a\":[{}]}", 10, &lim, &doc, msg, sizeof(msg)), -ERR_LIMIT);
	assert_string_equal(msg, "json: depth limit 2 exceeded at offset 7");

	/* Nodes, containers included. */
	lim = (struct json_limits)JSON_LIMITS_DEFAULT;
	lim.nodes_max = 4;
	assert_int_equal(json_parse("[1,2,3]", 7, &lim, &doc, msg, sizeof(msg)), 0);
	json_doc_free(doc);
	assert_int_equal(json_parse("[1,2,3,4]", 9, &lim, &doc, msg, sizeof(msg)), -ERR_LIMIT);
	assert_string_equal(msg, "json: node limit 4 exceeded at offset 8");

	/* String bytes after decoding, for values and keys. */
	lim = (struct json_limits)JSON_LIMITS_DEFAULT;
	lim.string_bytes_max = 3;
	assert_int_equal(json_parse("[\"abc\",\"\\u00e9\"]", 16, &lim, &doc, msg, sizeof(msg)), 0);
	json_doc_free(doc);
	assert_int_equal(json_parse("[\"abcd\"]", 8, &lim, &doc, msg, sizeof(msg)), -ERR_LIMIT);
	assert_string_equal(msg, "json: string limit 3 bytes exceeded at offset 7");
	assert_int_equal(json_parse("{\"abcd\":1}", 10, &lim, &doc, msg, sizeof(msg)), -ERR_LIMIT);
	assert_string_equal(msg, "json: string limit 3 bytes exceeded at offset 7");
	/* Two invalid bytes decode to six: over the limit though the input is short. */
	assert_int_equal(json_parse("\"\xff\xff\"", 4, &lim, &doc, msg, sizeof(msg)), -ERR_LIMIT);
	/* A long escaped string is refused before it is decoded. */
	{
		char big[400];

		big[0] = '"';
		for (int i = 0; i < 66; i++)
			memcpy(big + 1 + i * 6, "\\u0041", 6);
		big[397] = '"';
		lim.string_bytes_max = 60;
		assert_int_equal(json_parse(big, 398, &lim, &doc, msg, sizeof(msg)), -ERR_LIMIT);
		lim.string_bytes_max = 66;
		assert_int_equal(json_parse(big, 398, &lim, &doc, msg, sizeof(msg)), 0);
		assert_int_equal(json_doc_root(doc)->u.str.len, 66);
		json_doc_free(doc);
	}
}

static const char sample[] =
	"{\"action\":\"get\",\"node\":{\"key\":\"/dir\",\"dir\":true,\"nodes\":["
	"{\"key\":\"/dir/a\",\"value\":\"x\\u003cy\\n\",\"modifiedIndex\":4,\"createdIndex\":4},"
	"{\"key\":\"/dir/b\",\"value\":\"\",\"expiration\":\"2026-11-22T03:51:26.772565427Z\","
	"\"ttl\":5,\"modifiedIndex\":18446744073709551615,\"createdIndex\":-1.5e-7}],"
	"\"x\":[[],{},null,false,{\"d\":1,\"d\":2}]}}";

static void
test_round_trip(void **state)
{
	struct json_doc *doc, *doc2;
	struct buf b = BUF_INIT, b2 = BUF_INIT;
	struct json_gen *g;

	(void)state;
	doc = parse_ok(sample);
	g = json_gen_new(&b);
	assert_int_equal(json_gen_node(g, json_doc_root(doc)), 0);
	assert_string_equal(buf_cstr(&b), sample);
	json_gen_free(g);
	/* And again from the output: a fixed point. */
	doc2 = parse_ok(buf_cstr(&b));
	g = json_gen_new(&b2);
	assert_int_equal(json_gen_node(g, json_doc_root(doc2)), 0);
	assert_string_equal(buf_cstr(&b2), sample);
	assert_int_equal(json_gen_node(g, NULL), -ERR_INVAL);
	json_gen_free(g);
	json_doc_free(doc);
	json_doc_free(doc2);
	buf_free(&b);
	buf_free(&b2);

	/* Whitespace goes, escapes become Go's. */
	doc = parse_ok("{ \"a\" : [ 1 , \"\\u003C\\/\\u00e9\\ud800\" ] , \"<\" : { } }");
	g = json_gen_new(&b);
	assert_int_equal(json_gen_node(g, json_doc_root(doc)), 0);
	assert_string_equal(buf_cstr(&b), "{\"a\":[1,\"\\u003c/\xc3\xa9\xef\xbf\xbd\"],\"\\u003c\":{}}");
	json_gen_free(g);
	json_doc_free(doc);
	buf_free(&b);
}

static void
test_parse_nomem(void **state)
{
	int rc = -1;
	long n;

	(void)state;
	for (n = 0; n < 1000 && rc != 0; n++) {
		struct json_doc *doc = (struct json_doc *)1;
		char msg[JSON_ERRMSG_BYTES_MAX];

		mem_fail_after(n);
		rc = json_parse(sample, strlen(sample), NULL, &doc, msg, sizeof(msg));
		mem_fail_reset();
		if (rc != 0) {
			assert_int_equal(rc, -ERR_NOMEM);
			assert_null(doc);
			assert_true(strncmp(msg, "json: out of memory", 19) == 0);
		} else {
			json_doc_free(doc);
		}
	}
	assert_int_equal(rc, 0);
	/* It took several allocations: the loop exercised more than the first. */
	assert_true(n > 2);
}

static void
test_arena_large_strings(void **state)
{
	/* Strings bigger than an arena chunk, mixed with small nodes. */
	size_t len = 20000;
	char *text = malloc(len * 2 + 64), *p = text;
	struct json_doc *doc;
	const struct json_node *r;
	char msg[JSON_ERRMSG_BYTES_MAX];

	(void)state;
	p += sprintf(p, "[1,\"");
	memset(p, 'q', len);
	p += len;
	p += sprintf(p, "\",2,\"");
	memset(p, 'r', len);
	p += len;
	p += sprintf(p, "\",3]");
	assert_int_equal(json_parse(text, (size_t)(p - text), NULL, &doc, msg, sizeof(msg)), 0);
	r = json_doc_root(doc);
	assert_int_equal(json_len(r), 5);
	assert_int_equal(json_at(r, 1)->u.str.len, len);
	assert_int_equal(json_at(r, 1)->u.str.s[len - 1], 'q');
	assert_int_equal(json_at(r, 3)->u.str.s[0], 'r');
	assert_string_equal(json_at(r, 4)->u.num.text, "3");
	json_doc_free(doc);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escaping_matches_etcd),
		cmocka_unit_test(test_escape_key_and_one_shot),
		cmocka_unit_test(test_nesting_and_numbers),
		cmocka_unit_test(test_double_format),
		cmocka_unit_test(test_generator_misuse),
		cmocka_unit_test(test_generator_nomem),
		cmocka_unit_test(test_parse_basic),
		cmocka_unit_test(test_parse_numbers),
		cmocka_unit_test(test_parse_strings_go_rules),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_parse_nomem),
		cmocka_unit_test(test_arena_large_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
