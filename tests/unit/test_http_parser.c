/* Unit tests for core/http_parser: request and response heads (split at
 * every byte), chunked bodies, limits, percent and form decoding, URLs and
 * the Date format. */
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
#include "corebox/http.h"

#define HMAX 32

static int
parse_req(char *s, struct http_head *h, struct http_header *hd)
{
	size_t scanned = 0;

	return http_parse_request_head(s, strlen(s), &scanned, 1 << 20, h, hd, HMAX);
}

static void
test_simple_get(void **state)
{
	char s[] = "GET /v2/keys/foo?recursive=true HTTP/1.1\r\nHost: x\r\n"
		"User-Agent:  curl/8 \r\nAccept: */*\r\n\r\nNEXT";
	struct http_head h;
	struct http_header hd[HMAX];
	int rc;

	(void)state;
	rc = parse_req(s, &h, hd);
	assert_int_equal(rc, (int)(sizeof(s) - 1 - 4));
	assert_string_equal(h.method, "GET");
	assert_int_equal(h.method_id, HTTP_GET);
	assert_string_equal(h.target, "/v2/keys/foo?recursive=true");
	assert_int_equal(h.target_len, strlen("/v2/keys/foo?recursive=true"));
	assert_int_equal(h.version_minor, 1);
	assert_int_equal(h.nheaders, 3);
	assert_string_equal(hd[1].name, "User-Agent");
	assert_string_equal(hd[1].value, "curl/8");
	assert_int_equal(hd[1].value_len, 6);
	assert_string_equal(http_header_find(hd, h.nheaders, "user-agent")->value, "curl/8");
	assert_string_equal(http_header_find(hd, h.nheaders, "ACCEPT")->value, "*/*");
	assert_null(http_header_find(hd, h.nheaders, "accep"));
	assert_int_equal(h.content_length, -1);
	assert_true(http_head_keep_alive(&h));
	assert_true(h.flags & HTTP_HEAD_HOST);
}

static void
test_methods_and_versions(void **state)
{
	static const struct {
		const char *m;
		enum http_method id;
	} ms[] = {
		{ "GET", HTTP_GET }, { "HEAD", HTTP_HEAD }, { "POST", HTTP_POST },
		{ "PUT", HTTP_PUT }, { "DELETE", HTTP_DELETE }, { "OPTIONS", HTTP_OPTIONS },
		{ "PATCH", HTTP_PATCH }, { "PROPFIND", HTTP_OTHER }, { "get", HTTP_OTHER },
	};
	struct http_head h;
	struct http_header hd[HMAX];
	char s[256];

	(void)state;
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		snprintf(s, sizeof(s), "%s / HTTP/1.1\r\nHost: a\r\n\r\n", ms[i].m);
		assert_true(parse_req(s, &h, hd) > 0);
		assert_int_equal(h.method_id, ms[i].id);
		assert_string_equal(h.method, ms[i].m);
	}
	/* HTTP/1.0: no Host needed, keep-alive only when asked. */
	strcpy(s, "GET / HTTP/1.0\r\n\r\n");
	assert_true(parse_req(s, &h, hd) > 0);
	assert_int_equal(h.version_minor, 0);
	assert_false(http_head_keep_alive(&h));
	strcpy(s, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
	assert_true(parse_req(s, &h, hd) > 0);
	assert_true(http_head_keep_alive(&h));
	strcpy(s, "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n");
	assert_true(parse_req(s, &h, hd) > 0);
	assert_false(http_head_keep_alive(&h));
	/* Later 1.x minors read as 1.1; other majors are 505. */
	strcpy(s, "GET / HTTP/1.7\r\nHost: a\r\n\r\n");
	assert_true(parse_req(s, &h, hd) > 0);
	assert_int_equal(h.version_minor, 1);
	strcpy(s, "GET / HTTP/2.0\r\nHost: a\r\n\r\n");
	assert_int_equal(parse_req(s, &h, hd), -ERR_UNSUPPORTED);
	assert_int_equal(h.err_status, 505);
	strcpy(s, "GET / HTTP/0.9\r\n\r\n");
	assert_int_equal(parse_req(s, &h, hd), -ERR_UNSUPPORTED);
	/* Absolute-form and OPTIONS *. */
	strcpy(s, "GET http://a:1/x?y HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_true(parse_req(s, &h, hd) > 0);
	assert_string_equal(h.target, "http://a:1/x?y");
	strcpy(s, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_true(parse_req(s, &h, hd) > 0);
	strcpy(s, "GET * HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_int_equal(parse_req(s, &h, hd), -ERR_PARSE);
}

static void
test_malformed(void **state)
{
	static const struct {
		const char *s;
		int rc, status;
	} bad[] = {
		{ "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET / HTTP/1.1\r\nHost : a\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nX: a\001b\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET / HTTP/1.1\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET /\001 HTTP/1.1\r\nHost: a\r\n\r\n", -ERR_PARSE, 400 },
		{ "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET / HTTX/1.1\r\nHost: a\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET / HTTP/11\r\nHost: a\r\n\r\n", -ERR_PARSE, 400 },
		{ "GET foo HTTP/1.1\r\nHost: a\r\n\r\n", -ERR_PARSE, 400 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", -ERR_PARSE, 400 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", -ERR_PARSE, 400 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", -ERR_PARSE, 400 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
		  -ERR_PARSE, 400 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		  -ERR_PARSE, 400 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", -ERR_PARSE, 400 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		  -ERR_PARSE, 400 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", -ERR_UNSUPPORTED, 501 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		  -ERR_UNSUPPORTED, 501 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n", -ERR_UNSUPPORTED, 501 },
	};
	struct http_head h;
	struct http_header hd[HMAX];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *s = strdup(bad[i].s);
		int rc = parse_req(s, &h, hd);

		if (rc != bad[i].rc || h.err_status != bad[i].status)
			fail_msg("case %zu: %s: rc %d status %d", i, bad[i].s, rc, h.err_status);
		free(s);
	}
}

static void
test_lenient_forms(void **state)
{
	struct http_head h;
	struct http_header hd[HMAX];
	char s1[] = "\r\n\r\nGET / HTTP/1.1\nHost: a\nX-A: b\n\nrest";
	char s2[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-length: 5\r\n\r\n";
	char s3[] = "POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\n";
	char s4[] = "PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n"
		"Expect: 100-Continue\r\n\r\n";
	char s5[] = "PUT / HTTP/1.1\r\nHost: a\r\nExpect: something\r\nX:\r\n\r\n";

	(void)state;
	/* Leading blank lines skipped, bare LF line ends accepted. */
	assert_int_equal(parse_req(s1, &h, hd), (int)sizeof(s1) - 1 - 4);
	assert_string_equal(h.method, "GET");
	assert_string_equal(hd[1].value, "b");
	/* Identical duplicate Content-Length is fine. */
	assert_true(parse_req(s2, &h, hd) > 0);
	assert_int_equal(h.content_length, 5);
	/* Transfer-Encoding is ignored on HTTP/1.0 (as Go does). */
	assert_true(parse_req(s3, &h, hd) > 0);
	assert_int_equal(h.content_length, 2);
	assert_false(h.flags & HTTP_HEAD_CHUNKED);
	assert_true(parse_req(s4, &h, hd) > 0);
	assert_true(h.flags & HTTP_HEAD_CHUNKED);
	assert_true(h.flags & HTTP_HEAD_EXPECT_CONTINUE);
	assert_true(parse_req(s5, &h, hd) > 0);
	assert_true(h.flags & HTTP_HEAD_EXPECT_OTHER);
	assert_string_equal(hd[2].name, "X");
	assert_string_equal(hd[2].value, "");
}

static void
test_limits(void **state)
{
	struct http_head h;
	struct http_header hd[HMAX];
	struct buf b = BUF_INIT;
	size_t scanned = 0;

	(void)state;
	/* Too many fields: 431. */
	buf_puts(&b, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < HMAX; i++)
		buf_printf(&b, "X-%d: %d\r\n", i, i);
	buf_puts(&b, "\r\n");
	assert_int_equal(http_parse_request_head(b.data, b.len, &scanned, 1 << 20, &h, hd, HMAX),
		-ERR_LIMIT);
	assert_int_equal(h.err_status, 431);
	/* Head longer than the limit, complete or not: 431. */
	buf_reset(&b);
	buf_puts(&b, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	for (int i = 0; i < 100; i++)
		buf_puts(&b, "xxxxxxxxxx");
	scanned = 0;
	assert_int_equal(http_parse_request_head(b.data, b.len, &scanned, 4096, &h, hd, HMAX),
		-ERR_AGAIN);
	assert_int_equal(http_parse_request_head(b.data, b.len, &scanned, 512, &h, hd, HMAX),
		-ERR_LIMIT);
	assert_int_equal(h.err_status, 431);
	buf_puts(&b, "\r\n\r\n");
	scanned = 0;
	assert_int_equal(http_parse_request_head(b.data, b.len, &scanned, 512, &h, hd, HMAX),
		-ERR_LIMIT);
	scanned = 0;
	assert_int_equal(http_parse_request_head(b.data, b.len, &scanned, b.len, &h, hd, HMAX),
		(int)b.len);
	buf_free(&b);
}

/* A miniature connection: feeds bytes as they arrive, like the server does. */
struct mini {
	char buf[4096];
	size_t len, pos;
	int state; /* 0 head, 1 CL body, 2 chunked body */
	size_t scanned, body_start, body_out;
	int64_t body_left;
	struct http_chunked ck;
	char out[8][256];
	int nout;
	int err;
};

static void
mini_feed(struct mini *m, const char *p, size_t n)
{
	memcpy(m->buf + m->len, p, n);
	m->len += n;
	for (;;) {
		if (m->state == 0) {
			struct http_head h;
			struct http_header hd[HMAX];
			int rc = http_parse_request_head(m->buf + m->pos, m->len - m->pos, &m->scanned,
				1 << 20, &h, hd, HMAX);

			if (rc == -ERR_AGAIN)
				return;
			if (rc < 0) {
				m->err = rc;
				return;
			}
			snprintf(m->out[m->nout], sizeof(m->out[0]), "%s %s|", h.method, h.target);
			m->pos += (size_t)rc;
			m->scanned = 0;
			m->body_start = m->body_out = m->pos;
			if (h.flags & HTTP_HEAD_CHUNKED) {
				http_chunked_init(&m->ck);
				m->state = 2;
			} else {
				m->body_left = h.content_length > 0 ? h.content_length : 0;
				m->state = 1;
			}
		}
		if (m->state == 1) {
			if ((int64_t)(m->len - m->pos) < m->body_left)
				return;
			strncat(m->out[m->nout], m->buf + m->pos, (size_t)m->body_left);
			m->pos += (size_t)m->body_left;
		} else {
			int rc = http_chunked_decode(&m->ck, m->buf, &m->pos, m->len, &m->body_out,
				1 << 20, 4096);

			if (rc < 0) {
				m->err = rc;
				return;
			}
			if (rc == 0)
				return;
			strncat(m->out[m->nout], m->buf + m->body_start, m->body_out - m->body_start);
		}
		m->nout++;
		m->state = 0;
	}
}

static void
test_pipelined_every_split(void **state)
{
	const char *in =
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
		"PUT /b?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer-A: 1\r\nB: 2\r\n\r\n"
		"DELETE /d HTTP/1.0\n\n";
	size_t n = strlen(in);

	(void)state;
	for (size_t split = 0; split <= n; split++) {
		struct mini *m = calloc(1, sizeof(*m));

		mini_feed(m, in, split);
		mini_feed(m, in + split, n - split);
		assert_int_equal(m->err, 0);
		assert_int_equal(m->nout, 4);
		assert_string_equal(m->out[0], "GET /a|");
		assert_string_equal(m->out[1], "PUT /b?x=1|hello");
		assert_string_equal(m->out[2], "POST /c|abc0123456789abcdef");
		assert_string_equal(m->out[3], "DELETE /d|");
		assert_int_equal(m->pos, n);
		free(m);
	}
	/* Byte by byte. */
	struct mini *m = calloc(1, sizeof(*m));
	for (size_t i = 0; i < n; i++)
		mini_feed(m, in + i, 1);
	assert_int_equal(m->nout, 4);
	assert_string_equal(m->out[2], "POST /c|abc0123456789abcdef");
	free(m);
}

static int
dechunk(const char *in, char *out, size_t *outlen, uint64_t max, size_t *consumed)
{
	struct http_chunked c;
	char *b = strdup(in);
	size_t i = 0, o = 0;
	int rc;

	http_chunked_init(&c);
	rc = http_chunked_decode(&c, b, &i, strlen(b), &o, max, 64);
	memcpy(out, b, o);
	out[o] = '\0';
	*outlen = o;
	if (consumed != NULL)
		*consumed = i;
	free(b);
	return rc;
}

static void
test_chunked(void **state)
{
	char out[256];
	size_t n, used;

	(void)state;
	assert_int_equal(dechunk("5\r\nhello\r\n0\r\n\r\nXYZ", out, &n, 100, &used), 1);
	assert_string_equal(out, "hello");
	assert_int_equal(used, strlen("5\r\nhello\r\n0\r\n\r\n"));
	/* Extensions, upper-case hex, whitespace, trailers, bare LF. */
	assert_int_equal(dechunk("A ;name=\"v\" \r\n0123456789\r\n1;x\n!\n000\r\nX-T: v\r\nY: \r\n\r\n",
		out, &n, 100, NULL), 1);
	assert_string_equal(out, "0123456789!");
	/* Incomplete: 0 and the payload so far. */
	assert_int_equal(dechunk("5\r\nhel", out, &n, 100, NULL), 0);
	assert_string_equal(out, "hel");
	assert_int_equal(dechunk("5\r\nhello\r\n0\r\n", out, &n, 100, NULL), 0);
	/* Bad sizes and framing. */
	assert_int_equal(dechunk("zz\r\n", out, &n, 100, NULL), -ERR_PARSE);
	assert_int_equal(dechunk("\r\nabc", out, &n, 100, NULL), -ERR_PARSE);
	assert_int_equal(dechunk("-1\r\n", out, &n, 100, NULL), -ERR_PARSE);
	assert_int_equal(dechunk("0x5\r\n", out, &n, 100, NULL), -ERR_PARSE);
	assert_int_equal(dechunk("5 5\r\n", out, &n, 100, NULL), -ERR_PARSE);
	assert_int_equal(dechunk("5\rx", out, &n, 100, NULL), -ERR_PARSE);
	assert_int_equal(dechunk("1\r\naXY", out, &n, 100, NULL), -ERR_PARSE);
	assert_int_equal(dechunk("1\r\na\r\n\r\n", out, &n, 100, NULL), -ERR_PARSE);
	assert_int_equal(dechunk("1\r\na\r\n0\r\n bad\r\n\r\n", out, &n, 100, NULL), -ERR_PARSE);
	assert_int_equal(dechunk("1\r\na\r\n0\r\nNoColon\r\n\r\n", out, &n, 100, NULL), -ERR_PARSE);
	assert_int_equal(dechunk("1;\001\r\n", out, &n, 100, NULL), -ERR_PARSE);
	assert_int_equal(dechunk("fffffffffffffffff\r\n", out, &n, UINT64_MAX, NULL), -ERR_PARSE);
	/* Limits: body size, size line, trailers. */
	assert_int_equal(dechunk("65\r\n", out, &n, 100, NULL), -ERR_LIMIT);
	assert_int_equal(dechunk("32\r\n", out, &n, 100, NULL), 0);
	assert_int_equal(dechunk("50\r\n" "01234567890123456789012345678901234567890123456789"
		"012345678901234567890123456789\r\n" "15\r\n", out, &n, 100, NULL), -ERR_LIMIT);
	{
		char line[HTTP_CHUNK_LINE_MAX + 16];

		memset(line, 0, sizeof(line));
		strcpy(line, "1;");
		memset(line + 2, 'e', HTTP_CHUNK_LINE_MAX);
		assert_int_equal(dechunk(line, out, &n, 100, NULL), -ERR_LIMIT);
	}
	assert_int_equal(dechunk("0\r\nX: 0123456789012345678901234567890123456789"
		"01234567890123456789012345678901234567890123456789\r\n\r\n", out, &n, 100, NULL),
		-ERR_LIMIT);
}

static void
test_pct_decode(void **state)
{
	char out[64];
	size_t bad = 99;

	(void)state;
	assert_int_equal(http_pct_decode(out, "a%2Fb+c%41%7e", 13, true, NULL), 7);
	assert_memory_equal(out, "a/b cA~", 7);
	assert_int_equal(http_pct_decode(out, "a+b", 3, false, NULL), 3);
	assert_memory_equal(out, "a+b", 3);
	assert_int_equal(http_pct_decode(out, "%00x", 4, false, NULL), 2);
	assert_memory_equal(out, "\0x", 2);
	assert_int_equal(http_pct_decode(out, "ab%zz", 5, true, &bad), -ERR_PARSE);
	assert_int_equal(bad, 2);
	assert_int_equal(http_pct_decode(out, "ab%2", 4, true, &bad), -ERR_PARSE);
	assert_int_equal(bad, 2);
	assert_int_equal(http_pct_decode(out, "%", 1, true, &bad), -ERR_PARSE);
	assert_int_equal(bad, 0);
	/* In place. */
	char s[] = "x%20y";
	assert_int_equal(http_pct_decode(s, s, 5, true, NULL), 3);
	assert_memory_equal(s, "x y", 3);
}

static size_t
params(const char *q, struct http_param *p, size_t max, struct buf *store, char *err)
{
	size_t n = 0;

	buf_reset(store);
	assert_int_equal(buf_reserve(store, HTTP_PARAMS_STORE(strlen(q))), 0);
	assert_int_equal(http_params_parse(q, strlen(q), HTTP_SRC_QUERY, store, p, max, &n, err), 0);
	return n;
}

static void
test_params(void **state)
{
	struct http_param p[16];
	struct buf store = BUF_INIT;
	char err[HTTP_PARAM_ERR_MAX];
	size_t n;

	(void)state;
	n = params("recursive&sorted=&value=a+b%26c&value=2&&;x=%3D=", p, 16, &store, err);
	assert_string_equal(err, "");
	assert_int_equal(n, 5);
	assert_string_equal(p[0].name, "recursive");
	assert_false(p[0].has_value);
	assert_string_equal(p[0].value, "");
	assert_string_equal(p[1].name, "sorted");
	assert_true(p[1].has_value);
	assert_string_equal(p[1].value, "");
	assert_string_equal(p[2].value, "a b&c");
	assert_string_equal(p[3].name, "value");
	assert_string_equal(p[3].value, "2");
	assert_string_equal(p[4].name, "x");
	assert_string_equal(p[4].value, "==");
	assert_int_equal(p[4].src, HTTP_SRC_QUERY);
	assert_int_equal(http_params_count("a&b;c", 5), 3);

	/* A bad escape drops its pair and reports Go's message; the rest survives. */
	n = params("a=%zz&b=1&c%=2&d=%4", p, 16, &store, err);
	assert_string_equal(err, "invalid URL escape \"%zz\"");
	assert_int_equal(n, 1);
	assert_string_equal(p[0].name, "b");
	n = params("d=%4", p, 16, &store, err);
	assert_string_equal(err, "invalid URL escape \"%4\"");
	assert_int_equal(n, 0);
	n = params("d=%\"x", p, 16, &store, err);
	assert_string_equal(err, "invalid URL escape \"%\\\"x\"");
	n = params("d=%\n", p, 16, &store, err);
	assert_string_equal(err, "invalid URL escape \"%\\n\"");
	/* Values with NUL bytes keep their length. */
	n = params("k=a%00b", p, 16, &store, err);
	assert_int_equal(p[0].value_len, 3);
	assert_memory_equal(p[0].value, "a\0b", 3);
	/* Limits leave nothing half-written. */
	size_t cnt = 0;
	buf_reset(&store);
	buf_reserve(&store, 100);
	assert_int_equal(http_params_parse("a=1&b=2&c=3", 11, HTTP_SRC_BODY, &store, p, 2, &cnt, NULL),
		-ERR_LIMIT);
	assert_int_equal(cnt, 0);
	assert_int_equal(store.len, 0);
	struct buf small = BUF_INIT;
	cnt = 0;
	assert_int_equal(http_params_parse("a=1", 3, HTTP_SRC_BODY, &small, p, 2, &cnt, NULL),
		-ERR_LIMIT);
	buf_free(&store);
}

static void
test_response_head(void **state)
{
	struct http_head h;
	struct http_header hd[HMAX];
	size_t scanned = 0;
	char s1[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 44\r\n\r\n{";
	char s2[] = "HTTP/1.0 404\r\n\r\n";
	char s3[] = "HTTP/1.1 307 Temporary Redirect\r\nTransfer-Encoding: chunked\r\n\r\n";
	char s4[] = "HTTP/1.1 20 OK\r\n\r\n";
	char s5[] = "HTTP/1.1 200OK\r\n\r\n";
	char s6[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";

	(void)state;
	assert_int_equal(http_parse_response_head(s1, strlen(s1), &scanned, 4096, &h, hd, HMAX),
		(int)sizeof(s1) - 1 - 1);
	assert_int_equal(h.status, 200);
	assert_string_equal(h.reason, "OK");
	assert_int_equal(h.content_length, 44);
	assert_true(http_head_keep_alive(&h));
	scanned = 0;
	assert_true(http_parse_response_head(s2, strlen(s2), &scanned, 4096, &h, hd, HMAX) > 0);
	assert_int_equal(h.status, 404);
	assert_string_equal(h.reason, "");
	assert_false(http_head_keep_alive(&h));
	scanned = 0;
	assert_true(http_parse_response_head(s3, strlen(s3), &scanned, 4096, &h, hd, HMAX) > 0);
	assert_string_equal(h.reason, "Temporary Redirect");
	assert_true(h.flags & HTTP_HEAD_CHUNKED);
	scanned = 0;
	assert_int_equal(http_parse_response_head(s4, strlen(s4), &scanned, 4096, &h, hd, HMAX),
		-ERR_PARSE);
	scanned = 0;
	assert_int_equal(http_parse_response_head(s5, strlen(s5), &scanned, 4096, &h, hd, HMAX),
		-ERR_PARSE);
	scanned = 0;
	assert_int_equal(http_parse_response_head(s6, strlen(s6), &scanned, 4096, &h, hd, HMAX),
		-ERR_PARSE);
	/* Incremental: the scan position moves forward. */
	scanned = 0;
	assert_int_equal(http_parse_response_head(s1, 10, &scanned, 4096, &h, hd, HMAX), -ERR_AGAIN);
	assert_int_equal(scanned, 10);
}

static void
test_url(void **state)
{
	struct http_url u;

	(void)state;
	assert_int_equal(http_url_parse("http://127.0.0.1:2379", &u), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 2379);
	assert_true(u.port_given);
	assert_false(u.tls);
	assert_string_equal(u.path, "");
	assert_int_equal(http_url_parse("HTTPS://[::1]:4001/v2/keys?x=1", &u), 0);
	assert_true(u.tls);
	assert_true(u.ipv6);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 4001);
	assert_string_equal(u.path, "/v2/keys?x=1");
	assert_int_equal(http_url_parse("http://localhost/x", &u), 0);
	assert_int_equal(u.port, 80);
	assert_false(u.port_given);
	assert_int_equal(http_url_parse("https://example.com", &u), 0);
	assert_int_equal(u.port, 443);
	assert_int_equal(http_url_parse("ftp://a", &u), -ERR_PARSE);
	assert_int_equal(http_url_parse("http://", &u), -ERR_PARSE);
	assert_int_equal(http_url_parse("http://a:99999", &u), -ERR_PARSE);
	assert_int_equal(http_url_parse("http://a:", &u), -ERR_PARSE);
	assert_int_equal(http_url_parse("http://a:1x", &u), -ERR_PARSE);
	assert_int_equal(http_url_parse("http://[::1", &u), -ERR_PARSE);
	assert_int_equal(http_url_parse("http://[zz]:1", &u), -ERR_PARSE);
	assert_int_equal(http_url_parse("http://u@a:1", &u), -ERR_PARSE);
	assert_int_equal(http_url_parse("http://a b:1", &u), -ERR_PARSE);
	assert_int_equal(http_url_parse("http://a:1/x y", &u), -ERR_PARSE);
}

static void
test_date_and_reason(void **state)
{
	char d[30];

	(void)state;
	assert_int_equal(http_date(d, 1795318801), 29);
	assert_string_equal(d, "Sun, 22 Nov 2026 03:40:01 GMT");
	http_date(d, 0);
	assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 GMT");
	assert_string_equal(http_reason(404), "Not Found");
	assert_string_equal(http_reason(431), "Request Header Fields Too Large");
	assert_string_equal(http_reason(799), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_get),
		cmocka_unit_test(test_methods_and_versions),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_lenient_forms),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_pipelined_every_split),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_pct_decode),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_response_head),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_date_and_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
