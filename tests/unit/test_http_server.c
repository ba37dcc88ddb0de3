/* Unit tests for core/http_server over real sockets on 127.0.0.1: keep-alive,
 * pipelining with a held request answered later, cancel on client close,
 * the server's own errors (400/408/413/431/503), slow readers cut off, HEAD,
 * HTTP/1.0, 100-continue, bodies, parameters and streaming. The test drives
 * the loop itself (loop_run_once) while it plays the client with
 * non-blocking sockets, so everything runs in one thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/http.h"
#include "corebox/loop.h"
#include "corebox/mem.h"

struct t {
	struct loop *l;
	struct http_server *s;
	int port;
	struct http_req *held[8];
	int nheld;
	int closed;            /* on_close calls */
	int handled;
	int logged;
	int last_log_status;
	int finish_rc;         /* last http_resp_finish result */
	char last_method[16];
	char seen[8][128];     /* path_raw|path|query|body per request */
	int nseen;
};

static void
on_close(struct http_req *req, void *arg)
{
	struct t *t = arg;

	for (int i = 0; i < t->nheld; i++)
		if (t->held[i] == req)
			t->held[i] = NULL;
	t->closed++;
}

static void
on_log(void *arg, const struct http_req *req, int status, uint64_t latency_us, uint64_t body_bytes)
{
	struct t *t = arg;

	(void)latency_us;
	(void)body_bytes;
	t->logged++;
	t->last_log_status = status;
	snprintf(t->last_method, sizeof(t->last_method), "%s", req->method);
}

static void
handler(struct http_req *req, void *arg)
{
	struct t *t = arg;
	const char *p = req->path_raw;

	t->handled++;
	if (t->nseen < 8)
		snprintf(t->seen[t->nseen++], sizeof(t->seen[0]), "%s|%s|%s|%s", req->path_raw,
			req->path, req->query_raw, req->body);
	if (strcmp(p, "/hold") == 0 || strcmp(p, "/stream") == 0) {
		/* Calls fail only when allocations are made to fail. */
		if (strcmp(p, "/stream") == 0 && (http_resp_start(req, 200, NULL) != 0 ||
		    http_resp_header(req, "Content-Type", "application/json") != 0 ||
		    http_resp_chunked(req) != 0)) {
			http_req_abort(req);
			return;
		}
		http_req_hold(req, on_close, t);
		t->held[t->nheld++] = req;
		return;
	}
	if (strcmp(p, "/echo") == 0) {
		http_resp_simple(req, 200, "text/plain", req->body, req->body_len);
		return;
	}
	if (strcmp(p, "/param") == 0) {
		const char *v = http_req_value(req, HTTP_SRC_FORM, "value");
		const struct http_param *r = http_req_param(req, HTTP_SRC_QUERY, "recursive");
		struct buf *b;

		http_resp_start(req, 201, NULL);
		http_resp_header(req, "Content-Type", "application/json");
		http_resp_headerf(req, "X-Etcd-Index", "%d", 42);
		b = http_resp_body_buf(req);
		if (b == NULL || buf_printf(b, "{\"value\":\"%s\",\"n\":%zu,\"recursive\":%s,\"err\":\"%s\"}",
			v ? v : "(null)", http_req_param_count(req, HTTP_SRC_FORM, "value"),
			r == NULL ? "absent" : r->has_value ? "valued" : "bare",
			req->form_error ? req->form_error : "") != 0) {
			http_req_abort(req);
			return;
		}
		t->finish_rc = http_resp_finish(req);
		return;
	}
	if (strcmp(p, "/nothing") == 0)
		return; /* breaks the contract: the server answers 500 */
	if (strcmp(p, "/abort") == 0) {
		http_req_abort(req);
		return;
	}
	if (strcmp(p, "/204") == 0) {
		http_resp_start(req, 204, NULL);
		http_resp_body(req, "ignored", 7);
		return;
	}
	http_resp_simple(req, 200, "application/json", "hello", 5);
}

static struct t *
setup(const struct http_limits *lim)
{
	struct t *t = calloc(1, sizeof(*t));

	t->l = loop_new();
	assert_non_null(t->l);
	t->s = http_server_new(t->l, lim, handler, t);
	assert_non_null(t->s);
	http_server_set_log(t->s, on_log, t);
	assert_int_equal(http_listen_url(t->s, "http://127.0.0.1:0", &t->port), 0);
	assert_true(t->port > 0);
	return t;
}

static void
teardown_t(struct t *t)
{
	http_server_free(t->s);
	/* Let the loop settle (nothing of the server may remain). */
	loop_run_once(t->l, 0);
	loop_free(t->l);
	free(t);
}

static int
cconnect(struct t *t, int rcvbuf)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)t->port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static void
csend(int fd, const char *s)
{
	size_t n = strlen(s);

	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Runs the loop for about ms milliseconds. */
static void
spin(struct t *t, int ms)
{
	uint64_t end = time_mono_ms() + (uint64_t)ms;

	while (time_mono_ms() < end)
		loop_run_once(t->l, 5);
}

struct resp {
	int status;
	char head[1024];
	char body[4096];
	size_t body_len;
};

/*
 * Parses complete responses from raw. HEAD answers have no body: heads_only
 * says how many leading responses are to HEAD requests.
 */
static int
parse_responses(const char *raw, size_t len, struct resp *out, int max, int heads_only)
{
	size_t pos = 0;
	int n = 0;

	while (n < max && pos < len) {
		char *copy = malloc(len - pos + 1);
		struct http_head h;
		struct http_header hd[64];
		size_t scanned = 0;
		int hl;

		memcpy(copy, raw + pos, len - pos);
		copy[len - pos] = '\0';
		hl = http_parse_response_head(copy, len - pos, &scanned, 1 << 16, &h, hd, 64);
		if (hl <= 0) {
			free(copy);
			break;
		}
		memset(&out[n], 0, sizeof(out[n]));
		out[n].status = h.status;
		memcpy(out[n].head, raw + pos, (size_t)hl < sizeof(out[n].head) - 1 ? (size_t)hl :
			sizeof(out[n].head) - 1);
		if (h.status == 100 || n < heads_only || h.status == 204) {
			pos += (size_t)hl;
		} else if (h.flags & HTTP_HEAD_CHUNKED) {
			struct http_chunked c;
			size_t in = (size_t)hl, o = (size_t)hl;
			int rc;

			http_chunked_init(&c);
			rc = http_chunked_decode(&c, copy, &in, len - pos, &o, 1 << 20, 1024);
			if (rc != 1) {
				free(copy);
				break;
			}
			memcpy(out[n].body, copy + hl, o - (size_t)hl);
			out[n].body_len = o - (size_t)hl;
			pos += in;
		} else {
			size_t cl = h.content_length > 0 ? (size_t)h.content_length : 0;

			if (len - pos - (size_t)hl < cl) {
				free(copy);
				break;
			}
			memcpy(out[n].body, raw + pos + hl, cl);
			out[n].body_len = cl;
			pos += (size_t)hl + cl;
		}
		free(copy);
		n++;
	}
	return n;
}

/* Reads from fd while running the loop until want responses or EOF or timeout. */
struct got {
	char raw[1 << 16];
	size_t len;
	bool eof;
	struct resp r[8];
	int n;
};

static void
collect(struct t *t, int fd, struct got *g, int want, int heads_only, int ms)
{
	uint64_t end = time_mono_ms() + (uint64_t)ms;

	while (time_mono_ms() < end) {
		ssize_t n;

		loop_run_once(t->l, 5);
		n = recv(fd, g->raw + g->len, sizeof(g->raw) - g->len - 1, MSG_DONTWAIT);
		if (n > 0)
			g->len += (size_t)n;
		else if (n == 0)
			g->eof = true;
		g->n = parse_responses(g->raw, g->len, g->r, 8, heads_only);
		if (g->n >= want && (want > 0 || g->eof))
			return;
		if (g->eof)
			return;
	}
}

static void
test_keepalive(void **state)
{
	struct t *t = setup(NULL);
	int fd = cconnect(t, 0);
	struct got *g = calloc(1, sizeof(*g));
	struct http_server_stats st;

	(void)state;
	for (int i = 0; i < 3; i++) {
		memset(g, 0, sizeof(*g));
		csend(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
		collect(t, fd, g, 1, 0, 2000);
		assert_int_equal(g->n, 1);
		assert_int_equal(g->r[0].status, 200);
		assert_string_equal(g->r[0].body, "hello");
		assert_non_null(strstr(g->r[0].head, "Content-Type: application/json\r\n"));
		assert_non_null(strstr(g->r[0].head, "Content-Length: 5\r\n"));
		assert_non_null(strstr(g->r[0].head, " GMT\r\n"));
		assert_null(strstr(g->r[0].head, "Connection"));
		assert_false(g->eof);
	}
	http_server_stats(t->s, &st);
	assert_int_equal(st.conns_accepted, 1);
	assert_int_equal(st.conns_open, 1);
	assert_int_equal(st.requests, 3);
	assert_int_equal(t->logged, 3);
	assert_int_equal(t->last_log_status, 200);
	assert_string_equal(t->last_method, "GET");
	close(fd);
	spin(t, 50);
	http_server_stats(t->s, &st);
	assert_int_equal(st.conns_open, 0);
	free(g);
	teardown_t(t);
}

static void
test_date_format(void **state)
{
	struct t *t = setup(NULL);
	int fd = cconnect(t, 0);
	struct got *g = calloc(1, sizeof(*g));
	char *d;
	int dd, yyyy, hh, mm, ss;
	char wd[4], mon[4];

	(void)state;
	csend(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
	collect(t, fd, g, 1, 0, 2000);
	d = strstr(g->r[0].head, "\r\nDate: ");
	assert_non_null(d);
	assert_int_equal(sscanf(d, "\r\nDate: %3s, %2d %3s %4d %2d:%2d:%2d GMT\r\n", wd, &dd, mon,
		&yyyy, &hh, &mm, &ss), 7);
	assert_int_equal(strchr(d + 2, '\r') - (d + 2), strlen("Date: Sun, 22 Nov 2026 03:40:01 GMT"));
	close(fd);
	free(g);
	teardown_t(t);
}

static void
test_pipeline_order_with_held(void **state)
{
	struct t *t = setup(NULL);
	int fd = cconnect(t, 0);
	struct got *g = calloc(1, sizeof(*g));

	(void)state;
	csend(fd, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
		"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz");
	collect(t, fd, g, 1, 0, 300);
	/* All three were handed over, but nothing may go out before the held one. */
	assert_int_equal(t->handled, 3);
	assert_int_equal(g->len, 0);
	assert_int_equal(t->nheld, 1);
	assert_non_null(t->held[0]);
	assert_int_equal(http_resp_simple(t->held[0], 200, "text/plain", "late", 4), 0);
	t->held[0] = NULL;
	collect(t, fd, g, 3, 0, 2000);
	assert_int_equal(g->n, 3);
	assert_string_equal(g->r[0].body, "late");
	assert_string_equal(g->r[1].body, "hello");
	assert_string_equal(g->r[2].body, "xyz");
	assert_int_equal(t->closed, 0);
	/* The connection is still usable. */
	memset(g, 0, sizeof(*g));
	csend(fd, "GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
	collect(t, fd, g, 1, 0, 2000);
	assert_int_equal(g->n, 1);
	close(fd);
	free(g);
	teardown_t(t);
}

static void
test_pipeline_max(void **state)
{
	struct http_limits lim = { .pipeline_max = 2 };
	struct t *t = setup(&lim);
	int fd = cconnect(t, 0);
	struct got *g = calloc(1, sizeof(*g));

	(void)state;
	csend(fd, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n");
	collect(t, fd, g, 1, 0, 200);
	/* Two in flight at most: the rest waits in the input buffer. */
	assert_int_equal(t->handled, 2);
	assert_int_equal(g->len, 0);
	assert_int_equal(http_resp_simple(t->held[0], 200, "text/plain", "late", 4), 0);
	collect(t, fd, g, 4, 0, 2000);
	assert_int_equal(t->handled, 4);
	assert_int_equal(g->n, 4);
	assert_string_equal(g->r[0].body, "late");
	assert_string_equal(t->seen[3], "/c|/c||");
	close(fd);
	free(g);
	teardown_t(t);
}

static void
test_cancel_on_close(void **state)
{
	struct t *t = setup(NULL);
	int fd = cconnect(t, 0);
	struct http_server_stats st;

	(void)state;
	csend(fd, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n");
	spin(t, 50);
	assert_int_equal(t->nheld, 1);
	http_server_stats(t->s, &st);
	assert_int_equal(st.requests_held, 1);
	close(fd);
	for (int i = 0; i < 200 && t->closed == 0; i++)
		loop_run_once(t->l, 5);
	assert_int_equal(t->closed, 1);
	assert_null(t->held[0]);
	http_server_stats(t->s, &st);
	assert_int_equal(st.requests_held, 0);
	assert_int_equal(st.conns_open, 0);
	teardown_t(t);
}

static void
test_free_with_held(void **state)
{
	struct t *t = setup(NULL);
	int fd = cconnect(t, 0);

	(void)state;
	csend(fd, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n");
	spin(t, 50);
	assert_int_equal(t->nheld, 1);
	/* Freeing the server cancels held requests from inside http_server_free. */
	http_server_free(t->s);
	t->s = NULL;
	assert_int_equal(t->closed, 1);
	close(fd);
	loop_free(t->l);
	free(t);
}

static void
test_errors(void **state)
{
	static const struct {
		const char *req;
		int status;
	} cases[] = {
		{ "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400 },
		{ "GARBAGE\r\n\r\n", 400 },
		{ "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\n\r\n", 400 },
		{ "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n", 413 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "80\r\n0123456789012345678901234567890123456789012345678901234567890123"
		  "0123456789012345678901234567890123456789012345678901234567890123\r\n0\r\n\r\n", 413 },
		{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400 },
		{ "PUT / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx", 417 },
		{ "GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n", 500 },
	};
	struct http_limits lim = { .body_bytes_max = 100, .header_bytes_max = 1024 };
	struct t *t = setup(&lim);
	struct got *g = calloc(1, sizeof(*g));

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = cconnect(t, 0);
		char want[64];

		memset(g, 0, sizeof(*g));
		csend(fd, cases[i].req);
		collect(t, fd, g, 1, 0, 2000);
		if (g->n != 1 || g->r[0].status != cases[i].status)
			fail_msg("case %zu: got %d responses, status %d", i, g->n, g->n ? g->r[0].status : 0);
		if (cases[i].status != 500) {
			snprintf(want, sizeof(want), "%d %s", cases[i].status, http_reason(cases[i].status));
			assert_string_equal(g->r[0].body, want);
			assert_non_null(strstr(g->r[0].head, "Connection: close\r\n"));
			/* The server closes after its own error. */
			collect(t, fd, g, 0, 0, 2000);
			assert_true(g->eof);
		}
		close(fd);
	}
	/* 431: a head over header_bytes_max. */
	{
		int fd = cconnect(t, 0);
		char big[2048];

		memset(g, 0, sizeof(*g));
		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		csend(fd, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
		csend(fd, big);
		collect(t, fd, g, 1, 0, 2000);
		assert_int_equal(g->n, 1);
		assert_int_equal(g->r[0].status, 431);
		close(fd);
	}
	struct http_server_stats st;
	http_server_stats(t->s, &st);
	assert_true(st.errors_4xx >= 8);
	spin(t, 20);
	free(g);
	teardown_t(t);
}

static void
test_header_timeout(void **state)
{
	struct http_limits lim = { .header_read_ms = 150, .idle_ms = 400 };
	struct t *t = setup(&lim);
	struct got *g = calloc(1, sizeof(*g));
	int fd = cconnect(t, 0), fd2 = cconnect(t, 0);
	struct http_server_stats st;
	uint64_t t0 = time_mono_ms();

	(void)state;
	csend(fd, "GET / HTTP/1.1\r\nHo");
	collect(t, fd, g, 1, 0, 2000);
	assert_int_equal(g->n, 1);
	assert_int_equal(g->r[0].status, 408);
	assert_true(time_mono_ms() - t0 >= 150);
	collect(t, fd, g, 0, 0, 2000);
	assert_true(g->eof);
	close(fd);
	/* The idle connection is closed silently after idle_ms. */
	memset(g, 0, sizeof(*g));
	collect(t, fd2, g, 0, 0, 2000);
	assert_true(g->eof);
	assert_int_equal(g->len, 0);
	assert_true(time_mono_ms() - t0 >= 400);
	close(fd2);
	spin(t, 20);
	http_server_stats(t->s, &st);
	assert_int_equal(st.conns_open, 0);
	free(g);
	teardown_t(t);
}

static void
test_conn_limit(void **state)
{
	struct http_limits lim = { .conns_max = 1 };
	struct t *t = setup(&lim);
	struct got *g = calloc(1, sizeof(*g));
	struct http_server_stats st;
	int fd = cconnect(t, 0), fd2;

	(void)state;
	spin(t, 30);
	fd2 = cconnect(t, 0);
	collect(t, fd2, g, 1, 0, 2000);
	assert_int_equal(g->n, 1);
	assert_int_equal(g->r[0].status, 503);
	collect(t, fd2, g, 0, 0, 1000);
	assert_true(g->eof);
	http_server_stats(t->s, &st);
	assert_int_equal(st.conns_rejected, 1);
	assert_int_equal(st.conns_open, 1);
	/* The first one still works. */
	memset(g, 0, sizeof(*g));
	csend(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
	collect(t, fd, g, 1, 0, 2000);
	assert_int_equal(g->r[0].status, 200);
	close(fd);
	close(fd2);
	free(g);
	teardown_t(t);
}

static void
test_slow_reader_cut(void **state)
{
	struct http_limits lim = { .out_bytes_max = 64 * 1024 };
	struct t *t = setup(&lim);
	int fd = cconnect(t, 4096);
	char chunk[16384];
	struct http_server_stats st;
	int i, rc = 0;

	(void)state;
	memset(chunk, 'z', sizeof(chunk));
	csend(fd, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
	spin(t, 30);
	assert_int_equal(t->nheld, 1);
	/* The client never reads: the server's output must stop growing. */
	for (i = 0; i < 20000 && t->held[0] != NULL; i++) {
		rc = http_resp_chunk(t->held[0], chunk, sizeof(chunk));
		if (rc < 0)
			break;
		loop_run_once(t->l, 0);
	}
	assert_int_equal(rc, -ERR_LIMIT);
	for (i = 0; i < 200 && t->closed == 0; i++)
		loop_run_once(t->l, 5);
	assert_int_equal(t->closed, 1);
	http_server_stats(t->s, &st);
	assert_int_equal(st.cut_slow, 1);
	assert_int_equal(st.conns_open, 0);
	close(fd);
	teardown_t(t);
}

static void
test_stream_chunks(void **state)
{
	struct t *t = setup(NULL);
	int fd = cconnect(t, 0);
	struct got *g = calloc(1, sizeof(*g));
	char buf[4096];
	ssize_t n;
	size_t len = 0;

	(void)state;
	csend(fd, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
	spin(t, 30);
	assert_int_equal(http_resp_chunk(t->held[0], "{\"a\":1}\n", 8), 0);
	spin(t, 30);
	/* The head and the first chunk are there before the stream ends. */
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\n8\r\n{\"a\":1}\n\r\n"));
	len = (size_t)n;
	memcpy(g->raw, buf, len);
	g->len = len;
	assert_int_equal(http_resp_chunk(t->held[0], "", 0), 0);
	assert_int_equal(http_resp_chunk(t->held[0], "{\"b\":2}\n", 8), 0);
	assert_int_equal(http_resp_end(t->held[0]), 0);
	collect(t, fd, g, 1, 0, 2000);
	assert_int_equal(g->n, 1);
	assert_string_equal(g->r[0].body, "{\"a\":1}\n{\"b\":2}\n");
	assert_int_equal(t->closed, 0);
	close(fd);
	free(g);
	teardown_t(t);
}

static void
test_head_and_204(void **state)
{
	struct t *t = setup(NULL);
	int fd = cconnect(t, 0);
	struct got *g = calloc(1, sizeof(*g));

	(void)state;
	csend(fd, "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
	collect(t, fd, g, 3, 1, 2000);
	assert_int_equal(g->n, 3);
	assert_int_equal(g->r[0].status, 200);
	assert_non_null(strstr(g->r[0].head, "Content-Length: 5\r\n"));
	assert_int_equal(g->r[1].status, 204);
	assert_null(strstr(g->r[1].head, "Content-Length"));
	assert_int_equal(g->r[2].status, 200);
	assert_string_equal(g->r[2].body, "hello");
	/* Nothing beyond the three responses: HEAD and 204 sent no body bytes. */
	assert_int_equal(g->len, strlen(g->r[0].head) + strlen(g->r[1].head) + strlen(g->r[2].head) + 5);
	close(fd);
	free(g);
	teardown_t(t);
}

static void
test_http10(void **state)
{
	struct t *t = setup(NULL);
	struct got *g = calloc(1, sizeof(*g));
	int fd = cconnect(t, 0);

	(void)state;
	csend(fd, "GET /x HTTP/1.0\r\n\r\n");
	collect(t, fd, g, 1, 0, 2000);
	assert_int_equal(g->n, 1);
	assert_memory_equal(g->r[0].head, "HTTP/1.0 200 OK\r\n", 17);
	assert_non_null(strstr(g->r[0].head, "Connection: close\r\n"));
	collect(t, fd, g, 0, 0, 2000);
	assert_true(g->eof);
	close(fd);

	fd = cconnect(t, 0);
	memset(g, 0, sizeof(*g));
	csend(fd, "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	collect(t, fd, g, 1, 0, 2000);
	assert_non_null(strstr(g->r[0].head, "Connection: keep-alive\r\n"));
	memset(g, 0, sizeof(*g));
	csend(fd, "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	collect(t, fd, g, 1, 0, 2000);
	assert_int_equal(g->n, 1);
	assert_false(g->eof);
	/* Streaming to HTTP/1.0: raw bytes, closed at the end. */
	memset(g, 0, sizeof(*g));
	csend(fd, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	spin(t, 30);
	assert_int_equal(http_resp_chunk(t->held[0], "abc", 3), 0);
	assert_int_equal(http_resp_end(t->held[0]), 0);
	collect(t, fd, g, 0, 0, 2000);
	assert_true(g->eof);
	assert_non_null(strstr(g->raw, "Connection: close\r\n\r\nabc"));
	assert_null(strstr(g->raw, "Transfer-Encoding"));
	close(fd);
	free(g);
	teardown_t(t);
}

static void
test_expect_continue_and_bodies(void **state)
{
	struct t *t = setup(NULL);
	struct got *g = calloc(1, sizeof(*g));
	int fd = cconnect(t, 0);

	(void)state;
	csend(fd, "PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
	collect(t, fd, g, 1, 0, 2000);
	assert_int_equal(g->n, 1);
	assert_int_equal(g->r[0].status, 100);
	assert_string_equal(g->raw, "HTTP/1.1 100 Continue\r\n\r\n");
	csend(fd, "he");
	spin(t, 20);
	csend(fd, "llo");
	collect(t, fd, g, 2, 0, 2000);
	assert_int_equal(g->n, 2);
	assert_int_equal(g->r[1].status, 200);
	assert_string_equal(g->r[1].body, "hello");
	/* Chunked request body, sent in pieces. */
	memset(g, 0, sizeof(*g));
	csend(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r");
	spin(t, 20);
	csend(fd, "\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n");
	collect(t, fd, g, 1, 0, 2000);
	assert_int_equal(g->n, 1);
	assert_string_equal(g->r[0].body, "abcde");
	close(fd);
	free(g);
	teardown_t(t);
}

static void
test_params_and_paths(void **state)
{
	struct t *t = setup(NULL);
	struct got *g = calloc(1, sizeof(*g));
	int fd = cconnect(t, 0);

	(void)state;
	csend(fd, "PUT /param?value=q&recursive HTTP/1.1\r\nHost: a\r\n"
		"Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
		"Content-Length: 17\r\n\r\nvalue=a+b%21&ttl=");
	collect(t, fd, g, 1, 0, 2000);
	assert_int_equal(g->n, 1);
	assert_int_equal(g->r[0].status, 201);
	assert_string_equal(g->r[0].body, "{\"value\":\"a b!\",\"n\":2,\"recursive\":bare,\"err\":\"\"}");
	assert_int_equal(t->finish_rc, 0);
	assert_non_null(strstr(g->r[0].head, "X-Etcd-Index: 42\r\n"));
	assert_non_null(strstr(g->r[0].head, "Content-Length: 48\r\n"));

	memset(g, 0, sizeof(*g));
	csend(fd, "GET /param?recursive=&value=%zz&value=ok HTTP/1.1\r\nHost: a\r\n\r\n");
	collect(t, fd, g, 1, 0, 2000);
	assert_string_equal(g->r[0].body,
		"{\"value\":\"ok\",\"n\":1,\"recursive\":valued,\"err\":\"invalid URL escape \"%zz\"\"}");

	/* A form body on GET is not decoded (as Go), and %2F stays visible in path_raw. */
	memset(g, 0, sizeof(*g));
	t->nseen = 0;
	csend(fd, "GET /a%2Fb/c+d HTTP/1.1\r\nHost: a\r\n"
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=x"
		"GET http://example.com:80/abs?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
	collect(t, fd, g, 2, 0, 2000);
	assert_int_equal(g->n, 2);
	assert_string_equal(t->seen[0], "/a%2Fb/c+d|/a/b/c+d||value=x");
	assert_string_equal(t->seen[1], "/abs|/abs|x=1|");
	close(fd);
	free(g);
	teardown_t(t);
}

static void
test_abort_and_listen_errors(void **state)
{
	struct t *t = setup(NULL);
	struct got *g = calloc(1, sizeof(*g));
	int fd = cconnect(t, 0), port = 0;

	(void)state;
	csend(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\nGET /abort HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
	collect(t, fd, g, 3, 0, 2000);
	/* The answer before the aborted request goes out, then the connection closes. */
	assert_int_equal(g->n, 1);
	assert_true(g->eof);
	close(fd);

	assert_int_equal(http_listen_url(t->s, "https://127.0.0.1:0", NULL), -ERR_UNSUPPORTED);
	assert_non_null(strstr(http_server_errmsg(t->s), "https is not supported"));
	assert_int_equal(http_listen_url(t->s, "http://example.com:1", NULL), -ERR_INVAL);
	assert_int_equal(http_listen_url(t->s, "http://127.0.0.1", NULL), -ERR_PARSE);
	assert_int_equal(http_listen_url(t->s, "http://127.0.0.1:0/x", NULL), -ERR_PARSE);
	assert_int_equal(http_listen_url(t->s, "bogus", NULL), -ERR_PARSE);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", t->port);
	/* SO_REUSEADDR does not allow two listeners on one port. */
	assert_int_equal(http_listen_url(t->s, url, NULL), -ERR_IO);
	assert_non_null(strstr(http_server_errmsg(t->s), "address already in use"));
	assert_int_equal(http_listen_url(t->s, "http://localhost:0", &port), 0);
	assert_true(port > 0);
	/* localhost serves on 127.0.0.1. */
	int save = t->port;
	t->port = port;
	fd = cconnect(t, 0);
	memset(g, 0, sizeof(*g));
	csend(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
	collect(t, fd, g, 1, 0, 2000);
	assert_int_equal(g->n, 1);
	close(fd);
	t->port = save;
	free(g);
	teardown_t(t);
}

/* Every allocation failing in turn: no crash, no leak, the server keeps serving. */
static void
test_alloc_failures(void **state)
{
	struct got *g = calloc(1, sizeof(*g));

	(void)state;
	for (long n = 0; n < 60; n++) {
		struct t *t = setup(NULL);
		int fd;

		mem_fail_after(n);
		fd = cconnect(t, 0);
		csend(fd, "GET /x?a=1 HTTP/1.1\r\nHost: a\r\n\r\n"
			"PUT /param?recursive HTTP/1.1\r\nHost: a\r\n"
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=x"
			"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
			"3\r\nabc\r\n0\r\n\r\nGET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
		spin(t, 15);
		for (int i = 0; i < t->nheld; i++)
			if (t->held[i] != NULL && http_resp_chunk(t->held[i], "x", 1) < 0) {
				http_req_abort(t->held[i]);
				t->held[i] = NULL;
			}
		spin(t, 5);
		mem_fail_reset();
		/* Whatever failed, the server still answers a new client. */
		int fd2 = cconnect(t, 0);
		memset(g, 0, sizeof(*g));
		csend(fd2, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
		collect(t, fd2, g, 1, 0, 2000);
		assert_int_equal(g->n, 1);
		assert_int_equal(g->r[0].status, 200);
		close(fd);
		close(fd2);
		spin(t, 10);
		for (int i = 0; i < t->nheld; i++)
			assert_null(t->held[i]);
		teardown_t(t);
	}
	free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_date_format),
		cmocka_unit_test(test_pipeline_order_with_held),
		cmocka_unit_test(test_pipeline_max),
		cmocka_unit_test(test_cancel_on_close),
		cmocka_unit_test(test_free_with_held),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_header_timeout),
		cmocka_unit_test(test_conn_limit),
		cmocka_unit_test(test_slow_reader_cut),
		cmocka_unit_test(test_stream_chunks),
		cmocka_unit_test(test_head_and_204),
		cmocka_unit_test(test_http10),
		cmocka_unit_test(test_expect_continue_and_bodies),
		cmocka_unit_test(test_params_and_paths),
		cmocka_unit_test(test_abort_and_listen_errors),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
