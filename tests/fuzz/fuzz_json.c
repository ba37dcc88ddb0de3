/*
 * Fuzz harness for core/json: the parser under tight limits, then the
 * generator over what parsed. Invariants checked (abort on breach):
 * re-serialising a parsed document and parsing that output again is a
 * fixed point, and Go-style escaping of any byte string parses back to a
 * string that a second escape and parse leaves unchanged. It must never leak or read past
 * the input, whatever the bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every accessor on every node, so sanitizers see them run. */
static void
walk(const struct json_node *n)
{
	int64_t i;
	uint64_t u;
	double d;
	int b;
	const char *s;
	size_t len;

	(void)json_get_int(n, &i);
	(void)json_get_uint(n, &u);
	(void)json_get_double(n, &d);
	(void)json_get_bool(n, &b);
	(void)json_get_str(n, &s, &len);
	(void)json_is_null(n);
	if (n->type == JSON_OBJECT && n->u.kids.first != NULL) {
		const struct json_node *k = n->u.kids.first;

		if (json_getn(n, k->key, k->key_len) == NULL)
			abort();
		(void)json_get_fold(n, k->key);
	}
	(void)json_at(n, json_len(n) / 2);
	for (const struct json_node *c = json_first(n); c != NULL; c = c->next)
		walk(c);
}

static int
serialise(const struct json_node *root, struct buf *out)
{
	struct json_gen *g = json_gen_new(out);
	int rc;

	if (g == NULL)
		return -1;
	rc = json_gen_node(g, root);
	json_gen_free(g);
	return rc;
}

/* The string that the escaped form of (s, n) parses back to; aborts on failure. */
static struct json_doc *
escape_and_parse(const char *s, size_t n, const char **out, size_t *out_len)
{
	struct buf a = BUF_INIT;
	struct json_doc *doc = NULL;

	if (json_escape_go(&a, s, n) != 0)
		abort();
	if (json_parse(a.data, a.len, NULL, &doc, NULL, 0) != 0)
		abort();
	if (json_get_str(json_doc_root(doc), out, out_len) != 0)
		abort();
	buf_free(&a);
	return doc;
}

/*
 * Escaping any bytes gives valid JSON; what it parses back to (invalid
 * UTF-8 now U+FFFD) survives a second escape and parse unchanged.
 */
static void
check_escape(const uint8_t *data, size_t size)
{
	struct json_doc *d1, *d2;
	const char *s1, *s2;
	size_t n1, n2;

	d1 = escape_and_parse((const char *)data, size, &s1, &n1);
	d2 = escape_and_parse(s1, n1, &s2, &n2);
	if (n1 != n2 || memcmp(s1, s2, n1) != 0)
		abort();
	json_doc_free(d1);
	json_doc_free(d2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_limits lim = JSON_LIMITS_DEFAULT;
	struct json_doc *doc = NULL, *doc2 = NULL;
	struct buf out = BUF_INIT, out2 = BUF_INIT;
	char msg[JSON_ERRMSG_BYTES_MAX];

	lim.input_bytes_max = 1 << 16;
	lim.depth_max = 100;
	lim.nodes_max = 10000;
	lim.string_bytes_max = 1 << 14;
	if (size <= 4096)
		check_escape(data, size);
	if (json_parse((const char *)data, size, &lim, &doc, msg, sizeof(msg)) != 0)
		return 0;
	walk(json_doc_root(doc));
	if (serialise(json_doc_root(doc), &out) == 0) {
		/* Output of the generator is always valid JSON, and stable. */
		lim.input_bytes_max = (size_t)-1;
		lim.string_bytes_max = (size_t)-1;
		if (json_parse(out.data, out.len, &lim, &doc2, msg, sizeof(msg)) != 0)
			abort();
		if (serialise(json_doc_root(doc2), &out2) != 0)
			abort();
		if (out.len != out2.len || memcmp(out.data, out2.data, out.len) != 0)
			abort();
	}
	json_doc_free(doc2);
	json_doc_free(doc);
	buf_free(&out);
	buf_free(&out2);
	return 0;
}
