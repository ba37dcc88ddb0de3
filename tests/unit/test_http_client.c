/* Unit tests for core/http_client against core/http_server (same loop) and
 * against raw sockets playing odd servers: pool reuse, streamed chunks,
 * timeouts, cancellation, connect errors, read-until-close bodies, bad
 * responses, and the blocking http_fetch against a server in a child
 * process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
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
	struct http_client *c;
	int port;
	struct http_req *held;
	int server_closed;
	/* client side */
	int done;
	int err;
	int status;
	char body[4096];
	char errmsg[256];
	char hdr[128];
	char data[4096];
	size_t data_len;
	int data_calls;
	int heads;
	struct http_call *call;
	bool cancel_in_data;
};

static void
srv_on_close(struct http_req *req, void *arg)
{
	struct t *t = arg;

	(void)req;
	t->held = NULL;
	t->server_closed++;
}

static void
srv_handler(struct http_req *req, void *arg)
{
	struct t *t = arg;

	if (strcmp(req->path, "/hold") == 0 || strcmp(req->path, "/stream") == 0) {
		http_req_hold(req, srv_on_close, t);
		t->held = req;
		if (strcmp(req->path, "/stream") == 0) {
			http_resp_start(req, 200, NULL);
			http_resp_header(req, "Content-Type", "application/json");
			http_resp_chunked(req);
		}
		return;
	}
	if (strcmp(req->path, "/echo") == 0) {
		http_resp_start(req, 200, NULL);
		http_resp_header(req, "X-Method", req->method);
		http_resp_body(req, req->body, req->body_len);
		return;
	}
	if (strcmp(req->path, "/count") == 0) {
		struct http_server_stats st;
		char b[32];
		int n;

		http_server_stats(req->server, &st);
		n = snprintf(b, sizeof(b), "%llu", (unsigned long long)st.conns_accepted);
		http_resp_simple(req, 200, "text/plain", b, (size_t)n);
		return;
	}
	http_resp_simple(req, 404, "application/json", "{\"errorCode\":100}", 17);
}

static struct t *
setup(const struct http_limits *lim)
{
	struct t *t = calloc(1, sizeof(*t));

	t->l = loop_new();
	t->s = http_server_new(t->l, lim, srv_handler, t);
	assert_int_equal(http_listen_url(t->s, "http://127.0.0.1:0", &t->port), 0);
	t->c = http_client_new(t->l, NULL);
	assert_non_null(t->c);
	return t;
}

static void
teardown_t(struct t *t)
{
	http_client_free(t->c);
	http_server_free(t->s);
	loop_run_once(t->l, 0);
	loop_free(t->l);
	free(t);
}

static void
on_done(struct http_call *call, int err, const struct http_response *resp, void *arg)
{
	struct t *t = arg;
	const char *h;

	t->done++;
	t->err = err;
	snprintf(t->errmsg, sizeof(t->errmsg), "%s", http_call_errmsg(call));
	t->status = resp != NULL ? resp->status : 0;
	t->body[0] = '\0';
	t->hdr[0] = '\0';
	if (resp != NULL) {
		snprintf(t->body, sizeof(t->body), "%.*s", (int)resp->body_len, resp->body);
		h = http_response_header(resp, "content-type");
		snprintf(t->hdr, sizeof(t->hdr), "%s", h ? h : "");
	}
	t->call = NULL;
}

static void
on_head(struct http_call *call, const struct http_response *resp, void *arg)
{
	struct t *t = arg;

	(void)call;
	t->heads++;
	t->status = resp->status;
}

static void
on_data(struct http_call *call, const char *p, size_t n, void *arg)
{
	struct t *t = arg;

	memcpy(t->data + t->data_len, p, n);
	t->data_len += n;
	t->data_calls++;
	if (t->cancel_in_data) {
		http_call_cancel(call);
		t->call = NULL;
	}
}

static void
run_until(struct t *t, int *flag, int want, int ms)
{
	uint64_t end = time_mono_ms() + (uint64_t)ms;

	while (*flag < want && time_mono_ms() < end)
		loop_run_once(t->l, 5);
}

static void
spin(struct t *t, int ms)
{
	uint64_t end = time_mono_ms() + (uint64_t)ms;

	while (time_mono_ms() < end)
		loop_run_once(t->l, 5);
}

static int
start(struct t *t, const char *method, const char *path, const char *body, bool stream,
	uint64_t timeout_ms)
{
	char url[128];
	struct http_call_spec sp = {
		.method = method, .url = url, .body = body, .body_len = body ? strlen(body) : 0,
		.timeout_ms = timeout_ms, .stream = stream, .on_head = on_head,
		.on_data = stream ? on_data : NULL, .on_done = on_done, .arg = t,
	};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", t->port, path);
	return http_call_start(t->c, &sp, &t->call);
}

static void
test_pool_reuse(void **state)
{
	struct t *t = setup(NULL);
	struct http_server_stats st;

	(void)state;
	for (int i = 0; i < 5; i++) {
		int before = t->done;

		assert_int_equal(start(t, i % 2 ? "PUT" : "POST", "/echo", "v=1", false, 2000), 0);
		/* Never called back from inside http_call_start. */
		assert_int_equal(t->done, before);
		run_until(t, &t->done, before + 1, 2000);
		assert_int_equal(t->err, 0);
		assert_int_equal(t->status, 200);
		assert_string_equal(t->body, "v=1");
	}
	assert_int_equal(http_client_connects(t->c), 1);
	assert_int_equal(http_client_conns(t->c), 1);
	http_server_stats(t->s, &st);
	assert_int_equal(st.conns_accepted, 1);
	/* 404 with a JSON body, headers looked up case-insensitively. */
	assert_int_equal(start(t, "GET", "/nope", NULL, false, 2000), 0);
	run_until(t, &t->done, 6, 2000);
	assert_int_equal(t->status, 404);
	assert_string_equal(t->body, "{\"errorCode\":100}");
	assert_string_equal(t->hdr, "application/json");
	/* HEAD: headers only, and the connection stays usable. */
	assert_int_equal(start(t, "HEAD", "/nope", NULL, false, 2000), 0);
	run_until(t, &t->done, 7, 2000);
	assert_int_equal(t->err, 0);
	assert_int_equal(t->status, 404);
	assert_string_equal(t->body, "");
	assert_int_equal(start(t, "GET", "/echo", NULL, false, 2000), 0);
	run_until(t, &t->done, 8, 2000);
	assert_int_equal(t->status, 200);
	assert_int_equal(http_client_connects(t->c), 1);
	teardown_t(t);
}

static void
test_two_parallel_calls(void **state)
{
	struct t *t = setup(NULL);

	(void)state;
	/* A held call keeps its connection busy: the second opens another. */
	assert_int_equal(start(t, "GET", "/hold", NULL, false, 0), 0);
	spin(t, 30);
	assert_non_null(t->held);
	assert_int_equal(start(t, "GET", "/echo", NULL, false, 2000), 0);
	run_until(t, &t->done, 1, 2000);
	assert_int_equal(t->status, 200);
	assert_int_equal(http_client_connects(t->c), 2);
	http_resp_simple(t->held, 200, "text/plain", "late", 4);
	run_until(t, &t->done, 2, 2000);
	assert_string_equal(t->body, "late");
	teardown_t(t);
}

static void
test_stream_chunks(void **state)
{
	struct t *t = setup(NULL);

	(void)state;
	assert_int_equal(start(t, "GET", "/stream", NULL, true, 0), 0);
	run_until(t, &t->heads, 1, 2000);
	assert_int_equal(t->status, 200);
	assert_non_null(t->held);
	http_resp_chunk(t->held, "{\"action\":\"set\"}\n", 17);
	run_until(t, &t->data_calls, 1, 2000);
	/* Delivered as it arrives, long before the stream ends. */
	assert_int_equal(t->data_len, 17);
	assert_memory_equal(t->data, "{\"action\":\"set\"}\n", 17);
	assert_int_equal(t->done, 0);
	http_resp_chunk(t->held, "second", 6);
	http_resp_end(t->held);
	run_until(t, &t->done, 1, 2000);
	assert_int_equal(t->err, 0);
	assert_int_equal(t->data_len, 23);
	assert_memory_equal(t->data + 17, "second", 6);
	/* Stream complete: the connection went back to the pool. */
	assert_int_equal(http_client_conns(t->c), 1);
	teardown_t(t);
}

static void
test_timeout_and_cancel(void **state)
{
	struct t *t = setup(NULL);

	(void)state;
	assert_int_equal(start(t, "GET", "/hold", NULL, false, 100), 0);
	uint64_t t0 = time_mono_ms();
	run_until(t, &t->done, 1, 2000);
	assert_int_equal(t->err, -ERR_TIMEOUT);
	assert_true(time_mono_ms() - t0 >= 100);
	assert_non_null(strstr(t->errmsg, "timeout awaiting response headers"));
	/* The server hears the client go away. */
	run_until(t, &t->server_closed, 1, 2000);
	assert_int_equal(t->server_closed, 1);
	assert_int_equal(http_client_conns(t->c), 0);

	/* Cancel: no callback, and the server's held request is cancelled too. */
	assert_int_equal(start(t, "GET", "/hold", NULL, false, 0), 0);
	spin(t, 30);
	assert_non_null(t->held);
	http_call_cancel(t->call);
	t->call = NULL;
	run_until(t, &t->server_closed, 2, 2000);
	assert_int_equal(t->server_closed, 2);
	assert_int_equal(t->done, 1);

	/* Cancel before it even started. */
	assert_int_equal(start(t, "GET", "/echo", NULL, false, 0), 0);
	http_call_cancel(t->call);
	spin(t, 30);
	assert_int_equal(t->done, 1);

	/* Cancel from inside on_data. */
	t->cancel_in_data = true;
	assert_int_equal(start(t, "GET", "/stream", NULL, true, 0), 0);
	run_until(t, &t->heads, 3, 2000);
	http_resp_chunk(t->held, "x", 1);
	run_until(t, &t->data_calls, 1, 2000);
	http_resp_chunk(t->held, "y", 1);
	run_until(t, &t->server_closed, 3, 2000);
	assert_int_equal(t->data_calls, 1);
	assert_int_equal(t->done, 1);
	teardown_t(t);
}

static void
test_connect_errors(void **state)
{
	struct t *t = setup(NULL);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t sl = sizeof(a);
	char url[64];
	struct http_call_spec sp = { .method = "GET", .url = url, .on_done = on_done, .arg = t };

	(void)state;
	/* A port that was just free: nothing listens there. */
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &sl);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ntohs(a.sin_port));
	assert_int_equal(http_call_start(t->c, &sp, NULL), 0);
	run_until(t, &t->done, 1, 2000);
	assert_int_equal(t->err, -ERR_CONNECT);
	assert_non_null(strstr(t->errmsg, "connect: connection refused"));
	assert_non_null(strstr(t->errmsg, "dial tcp 127.0.0.1:"));

	/* What the async path refuses outright. */
	sp.url = "https://127.0.0.1:1/";
	assert_int_equal(http_call_start(t->c, &sp, NULL), -ERR_UNSUPPORTED);
	sp.url = "http://example.invalid:1/";
	assert_int_equal(http_call_start(t->c, &sp, NULL), -ERR_UNSUPPORTED);
	sp.url = "http://:1/";
	assert_int_equal(http_call_start(t->c, &sp, NULL), -ERR_PARSE);
	sp.url = "http://127.0.0.1:1/";
	sp.method = "BAD METHOD";
	assert_int_equal(http_call_start(t->c, &sp, NULL), -ERR_INVAL);
	sp.method = "GET";
	struct http_header bad = { .name = "X", .value = "a\r\nInjected: 1" };
	sp.headers = &bad;
	sp.nheaders = 1;
	assert_int_equal(http_call_start(t->c, &sp, NULL), -ERR_INVAL);
	spin(t, 10);
	assert_int_equal(t->done, 1);
	teardown_t(t);
}

/* A raw server: answers each connection with a fixed reply, then closes. */
struct raw {
	int lfd;
	const char *reply;
	struct loop *l;
};

static void
raw_accept(struct loop *l, int fd, void *arg)
{
	struct raw *r = arg;
	int c = accept(fd, NULL, NULL);
	char junk[1024];

	(void)l;
	if (c < 0)
		return;
	/* Take the request first so closing does not reset the connection. */
	usleep(20000);
	if (recv(c, junk, sizeof(junk), MSG_DONTWAIT) < 0) {
		/* nothing sent yet: fine */
	}
	if (send(c, r->reply, strlen(r->reply), MSG_NOSIGNAL) < 0) {
		/* the test sees it */
	}
	shutdown(c, SHUT_WR);
	usleep(20000);
	close(c);
}

static int
raw_listen(struct t *t, struct raw *r, const char *reply)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t sl = sizeof(a);

	r->reply = reply;
	r->lfd = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(bind(r->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	listen(r->lfd, 8);
	getsockname(r->lfd, (struct sockaddr *)&a, &sl);
	loop_fd_add(t->l, r->lfd, LOOP_READ, raw_accept, r);
	return ntohs(a.sin_port);
}

static void
raw_stop(struct t *t, struct raw *r)
{
	loop_fd_del(t->l, r->lfd, LOOP_READ);
	close(r->lfd);
}

static void
test_odd_servers(void **state)
{
	struct t *t = setup(NULL);
	struct raw r;
	char url[64];
	struct http_call_spec sp = { .method = "GET", .url = url, .on_done = on_done, .arg = t,
		.timeout_ms = 2000 };

	(void)state;
	/* Body until close (no Content-Length), after a 100 Continue. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", raw_listen(t, &r,
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close"));
	assert_int_equal(http_call_start(t->c, &sp, NULL), 0);
	run_until(t, &t->done, 1, 3000);
	assert_int_equal(t->err, 0);
	assert_int_equal(t->status, 200);
	assert_string_equal(t->body, "until close");
	raw_stop(t, &r);

	/* Garbage. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", raw_listen(t, &r, "SMTP ready\r\n\r\n"));
	assert_int_equal(http_call_start(t->c, &sp, NULL), 0);
	run_until(t, &t->done, 2, 3000);
	assert_int_equal(t->err, -ERR_PARSE);
	raw_stop(t, &r);

	/* Truncated body. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", raw_listen(t, &r,
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"));
	assert_int_equal(http_call_start(t->c, &sp, NULL), 0);
	run_until(t, &t->done, 3, 3000);
	assert_int_equal(t->err, -ERR_CLOSED);
	raw_stop(t, &r);

	/* Bad chunk size. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", raw_listen(t, &r,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n"));
	assert_int_equal(http_call_start(t->c, &sp, NULL), 0);
	run_until(t, &t->done, 4, 3000);
	assert_int_equal(t->err, -ERR_PARSE);
	raw_stop(t, &r);

	/* Closed without a word. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", raw_listen(t, &r, ""));
	assert_int_equal(http_call_start(t->c, &sp, NULL), 0);
	run_until(t, &t->done, 5, 3000);
	assert_int_equal(t->err, -ERR_CLOSED);
	raw_stop(t, &r);

	/* Buffered body over the limit. */
	http_client_free(t->c);
	struct http_client_opts o;
	http_client_opts_default(&o);
	o.body_bytes_max = 4;
	t->c = http_client_new(t->l, &o);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", raw_listen(t, &r,
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"));
	assert_int_equal(http_call_start(t->c, &sp, NULL), 0);
	run_until(t, &t->done, 6, 3000);
	assert_int_equal(t->err, -ERR_LIMIT);
	raw_stop(t, &r);
	teardown_t(t);
}

static void
test_stale_pool_connection(void **state)
{
	struct http_limits lim = { .idle_ms = 100 };
	struct t *t = setup(&lim);

	(void)state;
	assert_int_equal(start(t, "GET", "/echo", NULL, false, 2000), 0);
	run_until(t, &t->done, 1, 2000);
	assert_int_equal(t->status, 200);
	/* The server closes the idle connection; the next call still works. */
	spin(t, 400);
	assert_int_equal(start(t, "GET", "/echo", NULL, false, 2000), 0);
	run_until(t, &t->done, 2, 2000);
	assert_int_equal(t->err, 0);
	assert_int_equal(t->status, 200);
	assert_int_equal(http_client_connects(t->c), 2);
	teardown_t(t);
}

static void
test_ipv6(void **state)
{
	struct t *t = setup(NULL);
	char url[96];
	int port = 0, rc;
	struct http_call_spec sp = { .method = "POST", .url = url, .body = "six", .body_len = 3,
		.on_done = on_done, .arg = t, .timeout_ms = 2000 };

	(void)state;
	rc = http_listen_url(t->s, "http://[::1]:0", &port);
	if (rc == -ERR_UNSUPPORTED) {
		teardown_t(t);
		skip();
	}
	assert_int_equal(rc, 0);
	snprintf(url, sizeof(url), "http://[::1]:%d/echo", port);
	assert_int_equal(http_call_start(t->c, &sp, NULL), 0);
	run_until(t, &t->done, 1, 2000);
	assert_int_equal(t->err, 0);
	assert_string_equal(t->body, "six");
	/* localhost listens on both families with one port. */
	assert_int_equal(http_listen_url(t->s, "http://localhost:0", &port), 0);
	snprintf(url, sizeof(url), "http://localhost:%d/echo", port);
	assert_int_equal(http_call_start(t->c, &sp, NULL), 0);
	run_until(t, &t->done, 2, 2000);
	assert_int_equal(t->err, 0);
	snprintf(url, sizeof(url), "http://[::1]:%d/echo", port);
	assert_int_equal(http_call_start(t->c, &sp, NULL), 0);
	run_until(t, &t->done, 3, 2000);
	assert_int_equal(t->err, 0);
	assert_string_equal(t->body, "six");
	teardown_t(t);
}

/* Allocations failing in turn on both sides: every call ends exactly once, nothing leaks. */
static void
test_alloc_failures(void **state)
{
	(void)state;
	for (long n = 0; n < 50; n++) {
		struct t *t = setup(NULL);
		int started = 0;

		mem_fail_after(n);
		if (start(t, "POST", "/echo", "payload", false, 1000) == 0)
			started++;
		if (start(t, "GET", "/stream", NULL, true, 300) == 0)
			started++;
		spin(t, 30);
		if (t->held != NULL && http_resp_chunk(t->held, "x", 1) == 0)
			http_resp_end(t->held);
		mem_fail_reset();
		run_until(t, &t->done, started, 2000);
		assert_int_equal(t->done, started);
		teardown_t(t);
	}
}

/* A server in a child process, for the blocking wrapper. */
static void
child_on_close(struct http_req *req, void *arg)
{
	(void)req;
	(void)arg;
}

static void
child_handler2(struct http_req *req, void *arg)
{
	if (strcmp(req->path, "/slow") == 0) {
		http_req_hold(req, child_on_close, arg);
		return;
	}
	srv_handler(req, arg);
}

static pid_t
fork_server(int *port)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t sl = sizeof(a);
	pid_t pid;

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 16), 0);
	getsockname(lfd, (struct sockaddr *)&a, &sl);
	*port = ntohs(a.sin_port);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct loop *l = loop_new();
		struct t *t = calloc(1, sizeof(*t));
		struct http_server *s;

		t->l = l;
		s = http_server_new(l, NULL, child_handler2, t);
		http_listen_fd(s, lfd);
		alarm(20);
		loop_run(l);
		_exit(0);
	}
	close(lfd);
	return pid;
}

static void
test_fetch_blocking(void **state)
{
	int port;
	pid_t pid = fork_server(&port);
	char url[128];
	struct http_header hd = { .name = "X-Test", .value = "1" };
	struct http_call_spec sp = { .method = "PUT", .url = url, .body = "abc", .body_len = 3,
		.timeout_ms = 2000, .headers = &hd, .nheaders = 1 };
	struct http_result res;
	struct http_sync *sync;

	(void)state;
	snprintf(url, sizeof(url), "http://localhost:%d/echo", port);
	assert_int_equal(http_fetch(NULL, &sp, &res), 0);
	assert_int_equal(res.status, 200);
	assert_string_equal(res.body, "abc");
	assert_int_equal(res.body_len, 3);
	assert_string_equal(http_result_header(&res, "x-method"), "PUT");
	assert_null(http_result_header(&res, "x-nope"));
	http_result_free(&res);

	/* A kept http_sync reuses its connection across calls. */
	sync = http_sync_new();
	assert_non_null(sync);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/count", port);
	sp.method = "GET";
	sp.body = NULL;
	sp.body_len = 0;
	assert_int_equal(http_fetch(sync, &sp, &res), 0);
	char first[32];
	snprintf(first, sizeof(first), "%s", res.body);
	http_result_free(&res);
	assert_int_equal(http_fetch(sync, &sp, &res), 0);
	assert_string_equal(res.body, first);
	http_result_free(&res);

	/* Timeout. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", port);
	sp.timeout_ms = 150;
	assert_int_equal(http_fetch(sync, &sp, &res), -ERR_TIMEOUT);
	assert_non_null(strstr(res.errmsg, "timeout"));
	http_result_free(&res);
	http_sync_free(sync);

	/* A name resolved by getaddrinfo on the blocking path. */
	snprintf(url, sizeof(url), "http://localhost:%d/nope", port);
	sp.timeout_ms = 2000;
	assert_int_equal(http_fetch(NULL, &sp, &res), 0);
	assert_int_equal(res.status, 404);
	http_result_free(&res);

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	/* Nobody there any more. */
	assert_int_equal(http_fetch(NULL, &sp, &res), -ERR_CONNECT);
	assert_non_null(strstr(res.errmsg, "connection refused"));
	http_result_free(&res);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_reuse),
		cmocka_unit_test(test_two_parallel_calls),
		cmocka_unit_test(test_stream_chunks),
		cmocka_unit_test(test_timeout_and_cancel),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_odd_servers),
		cmocka_unit_test(test_stale_pool_connection),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_fetch_blocking),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
