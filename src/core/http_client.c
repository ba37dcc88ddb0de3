/*
 * http_client: asynchronous HTTP/1.1 calls on the shared loop, with a pool
 * of keep-alive connections per host:port, and http_fetch, the blocking
 * wrapper the CLIs use (a private loop run until the call ends).
 *
 * A call is started from a zero-delay "kick" timer, never inside
 * http_call_start, so its callbacks always come from the loop. Responses
 * are parsed with the same code as requests (http_parser.c): head, then a
 * Content-Length, chunked or read-until-close body, buffered or streamed to
 * on_data as it arrives. A response is trusted no more than a request:
 * heads and buffered bodies are bounded by http_client_opts.
 *
 * It must never block (name resolution with getaddrinfo only when the
 * caller allowed it: the CLIs), never call back after a call was cancelled,
 * and never reuse a connection whose response was not read to its end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/http.h"
#include "corebox/loop.h"
#include "corebox/mem.h"
#include "corebox/tls.h"

#define ADDRS_MAX 8
#define READ_RESERVE_BYTES 16384
#define BUF_KEEP_BYTES (64 * 1024)

enum call_state {
	CS_QUEUED,      /* waiting for the kick */
	CS_CONNECTING,
	CS_HEAD,        /* request being sent / head awaited */
	CS_BODY,
	CS_DONE,
};

enum body_mode {
	BM_NONE,
	BM_LENGTH,
	BM_CHUNKED,
	BM_CLOSE,
};

struct host {
	struct host *next;
	char key[300];              /* "127.0.0.1:2379" */
	char name[256];             /* "127.0.0.1", "::1", "localhost": what TLS verifies */
	bool tls;                   /* https: pooled apart from plain connections */
	struct cconn *idle;
	size_t nidle;
};

struct cconn {
	struct http_client *cl;
	struct host *h;
	struct cconn *inext;        /* host's idle list */
	struct cconn *anext, *aprev;/* client's list of open connections */
	struct cconn *dnext;        /* dead list */
	int fd;
	const struct http_transport *tp;
	void *targ;                 /* TLS: a struct tls_config reference */
	void *tctx;
	struct buf in;
	struct http_call *call;
	int mask;
	int ai;                     /* address being tried */
	int last_errno;
	uint64_t idle_since_ms;
	bool connecting;
	bool dead;
	bool read_wants_write;
	bool write_wants_read;
};

struct http_call {
	struct http_client *cl;
	struct http_call *next, *prev;  /* client's calls */
	struct http_call *qnext;        /* start queue */
	struct host *h;
	struct cconn *conn;
	enum call_state st;
	struct buf req;                 /* the request bytes */
	size_t sent;
	struct sockaddr_storage addrs[ADDRS_MAX];
	socklen_t alens[ADDRS_MAX];
	int naddrs;
	bool head_req;
	bool stream;
	bool reused;                    /* on a pooled connection */
	bool retried;
	bool got_bytes;                 /* any response byte arrived */
	bool in_cb;
	bool cancelled;
	bool keep_alive;
	bool queued;
	http_call_head_fn *on_head;
	http_call_data_fn *on_data;
	http_call_done_fn *on_done;
	void *arg;
	uint64_t connect_timeout_ms, timeout_ms;
	uint64_t timer_id, conn_timer_id;
	/* Response. */
	size_t scanned;
	struct buf harena;
	struct http_header *hdrs;
	size_t hdrs_cap;
	struct http_response resp;
	bool have_head;
	enum body_mode bm;
	uint64_t body_left;
	struct http_chunked ck;
	struct buf body;
	char errmsg[256];
};

struct http_client {
	struct loop *loop;
	struct http_client_opts o;
	struct host *hosts;
	struct cconn *conns;
	size_t nconns;
	uint64_t connects;
	struct http_call *calls;
	struct http_call *startq, *startq_tail;
	struct cconn *dead;
	uint64_t kick_id, sweep_id;
	struct http_header *scratch;
	char errmsg[256];
};

static void conn_on_read(struct loop *l, int fd, void *arg);
static int64_t sweep_fn(struct loop *l, uint64_t id, void *arg);

/* Idle connections are checked a few times per idle_ms, at most once a second. */
static uint64_t
sweep_ms(const struct http_client *cl)
{
	return cl->o.idle_ms < 4000 ? cl->o.idle_ms / 4 + 1 : 1000;
}
static void conn_on_write(struct loop *l, int fd, void *arg);
static void call_begin(struct http_call *call);
static void call_send(struct http_call *call);

void
http_client_opts_default(struct http_client_opts *o)
{
	o->header_bytes_max = 1 << 20;
	o->headers_max = 256;
	o->body_bytes_max = (size_t)256 << 20;
	o->idle_per_host_max = 8;
	o->idle_ms = 90000;
	o->read_bytes_max = 64 << 10;
	o->resolve_blocking = false;
	o->tls = NULL;
}

/* ------------------------------------------------------------------ */
/* Kick and sweep timers                                               */
/* ------------------------------------------------------------------ */

static int64_t kick_fn(struct loop *l, uint64_t id, void *arg);

static void
kick(struct http_client *cl)
{
	if (cl->kick_id == 0)
		cl->kick_id = loop_timer_add(cl->loop, 0, kick_fn, cl);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

static void
conn_set_mask(struct cconn *k, int want)
{
	struct loop *l = k->cl->loop;
	int add = want & ~k->mask, del = k->mask & ~want;

	if (k->dead)
		return;
	if (add & LOOP_READ)
		loop_fd_add(l, k->fd, LOOP_READ, conn_on_read, k);
	if (add & LOOP_WRITE)
		loop_fd_add(l, k->fd, LOOP_WRITE, conn_on_write, k);
	if (del)
		loop_fd_del(l, k->fd, del);
	k->mask = want;
}

static void
host_unidle(struct cconn *k)
{
	struct cconn **pp;

	if (k->h == NULL)
		return;
	for (pp = &k->h->idle; *pp != NULL; pp = &(*pp)->inext)
		if (*pp == k) {
			*pp = k->inext;
			k->h->nidle--;
			break;
		}
	k->inext = NULL;
}

/* Closes the socket; the struct is freed by the next kick. */
static void
conn_close(struct cconn *k)
{
	struct http_client *cl = k->cl;

	if (k->dead)
		return;
	if (k->mask)
		loop_fd_del(cl->loop, k->fd, k->mask);
	k->mask = 0;
	if (k->fd >= 0)
		k->tp->close(k->tctx, k->fd);
	k->fd = -1;
	k->tctx = NULL;
	if (k->targ != NULL) {
		tls_config_free(k->targ);
		k->targ = NULL;
	}
	k->dead = true;
	host_unidle(k);
	if (k->aprev != NULL)
		k->aprev->anext = k->anext;
	else
		cl->conns = k->anext;
	if (k->anext != NULL)
		k->anext->aprev = k->aprev;
	k->anext = k->aprev = NULL;
	cl->nconns--;
	if (k->call != NULL && k->call->conn == k)
		k->call->conn = NULL;
	k->call = NULL;
	buf_free(&k->in);
	k->dnext = cl->dead;
	cl->dead = k;
	kick(cl);
}

static struct cconn *
conn_new(struct http_client *cl, struct host *h)
{
	struct cconn *k = mem_calloc(1, sizeof(*k));

	if (k == NULL)
		return NULL;
	k->cl = cl;
	k->h = h;
	k->fd = -1;
	k->tp = &http_transport_plain;
	if (h->tls) {
		k->tp = &tls_http_transport;
		k->targ = tls_config_ref(cl->o.tls);
	}
	k->anext = cl->conns;
	if (cl->conns != NULL)
		cl->conns->aprev = k;
	cl->conns = k;
	cl->nconns++;
	return k;
}

/* ------------------------------------------------------------------ */
/* Calls: ending                                                       */
/* ------------------------------------------------------------------ */

static void
call_unlink(struct http_call *call)
{
	struct http_client *cl = call->cl;

	if (call->prev != NULL)
		call->prev->next = call->next;
	else
		cl->calls = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	call->next = call->prev = NULL;
	if (call->queued) {
		struct http_call **pp, *prev = NULL;

		for (pp = &cl->startq; *pp != NULL; prev = *pp, pp = &(*pp)->qnext)
			if (*pp == call) {
				*pp = call->qnext;
				if (cl->startq_tail == call)
					cl->startq_tail = prev;
				break;
			}
		call->queued = false;
	}
}

static void
call_timers_off(struct http_call *call)
{
	struct loop *l = call->cl->loop;

	if (call->timer_id != 0)
		loop_timer_del(l, call->timer_id);
	if (call->conn_timer_id != 0)
		loop_timer_del(l, call->conn_timer_id);
	call->timer_id = call->conn_timer_id = 0;
}

static void
call_free(struct http_call *call)
{
	buf_free(&call->req);
	buf_free(&call->harena);
	buf_free(&call->body);
	mem_free(call->hdrs);
	mem_free(call);
}

/* Takes the call off its connection; the connection closes unless reusable. */
static void
call_detach(struct http_call *call, bool reusable)
{
	struct cconn *k = call->conn;
	struct http_client *cl = call->cl;

	call->conn = NULL;
	if (k == NULL)
		return;
	k->call = NULL;
	if (!reusable || k->dead || buf_avail(&k->in) > 0 || k->h == NULL ||
	    k->h->nidle >= cl->o.idle_per_host_max ||
	    (k->tp->pending != NULL && k->tp->pending(k->tctx)) ||
	    (k->targ != NULL && k->targ != (void *)cl->o.tls)) {
		conn_close(k);
		return;
	}
	/* Back to the pool; reading stays on to notice the server closing it. */
	buf_free(&k->in);
	k->idle_since_ms = loop_now_ms(cl->loop);
	k->inext = k->h->idle;
	k->h->idle = k;
	k->h->nidle++;
	conn_set_mask(k, LOOP_READ);
	if (cl->sweep_id == 0)
		cl->sweep_id = loop_timer_add(cl->loop, sweep_ms(cl), sweep_fn, cl);
}

static void
call_finish(struct http_call *call, int err)
{
	const struct http_response *resp = NULL;

	call_timers_off(call);
	call->st = CS_DONE;
	call_detach(call, err == 0 && call->keep_alive);
	if (call->have_head) {
		if (err == 0 && !call->stream) {
			if (buf_reserve(&call->body, 1) == 0) {
				call->body.data[call->body.len] = '\0';
				call->resp.body = buf_head(&call->body);
				call->resp.body_len = buf_avail(&call->body);
			}
		}
		resp = &call->resp;
	}
	call_unlink(call);
	if (err != 0 && call->errmsg[0] == '\0')
		snprintf(call->errmsg, sizeof(call->errmsg), "%s", err_str(err));
	call->in_cb = true;
	call->on_done(call, err, resp, call->arg);
	call_free(call);
}

static void
call_fail(struct http_call *call, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
call_fail(struct http_call *call, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(call->errmsg, sizeof(call->errmsg), fmt, ap);
	va_end(ap);
	call_finish(call, err);
}

/* Drops a call without telling its owner. */
static void
call_drop(struct http_call *call)
{
	call_timers_off(call);
	call_detach(call, false);
	call_unlink(call);
	call_free(call);
}

void
http_call_cancel(struct http_call *call)
{
	if (call == NULL || call->cancelled)
		return;
	if (call->in_cb) {
		/* Inside its own on_head/on_data: cleaned up when that returns. */
		call->cancelled = true;
		return;
	}
	call_drop(call);
}

const char *
http_call_errmsg(const struct http_call *call)
{
	return call->errmsg;
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */
/* ------------------------------------------------------------------ */

static int64_t
call_timeout_fn(struct loop *l, uint64_t id, void *arg)
{
	struct http_call *call = arg;

	(void)l;
	(void)id;
	call->timer_id = 0;
	if (call->st == CS_CONNECTING)
		call_fail(call, -ERR_TIMEOUT, "dial tcp %s: i/o timeout", call->h->key);
	else if (call->st == CS_BODY)
		call_fail(call, -ERR_TIMEOUT, "net/http: request canceled (timeout reading body)");
	else
		call_fail(call, -ERR_TIMEOUT, "net/http: request canceled (timeout awaiting response headers)");
	return LOOP_TIMER_DONE;
}

static int64_t
connect_timeout_fn(struct loop *l, uint64_t id, void *arg)
{
	struct http_call *call = arg;

	(void)l;
	(void)id;
	call->conn_timer_id = 0;
	call_fail(call, -ERR_TIMEOUT, "dial tcp %s: i/o timeout", call->h->key);
	return LOOP_TIMER_DONE;
}

static int64_t
sweep_fn(struct loop *l, uint64_t id, void *arg)
{
	struct http_client *cl = arg;
	uint64_t now = loop_now_ms(l);
	bool any = false;

	(void)id;
	for (struct host *h = cl->hosts; h != NULL; h = h->next) {
		struct cconn *k = h->idle, *next;

		for (; k != NULL; k = next) {
			next = k->inext;
			if (now - k->idle_since_ms >= cl->o.idle_ms)
				conn_close(k);
			else
				any = true;
		}
	}
	if (!any) {
		cl->sweep_id = 0;
		return LOOP_TIMER_DONE;
	}
	return (int64_t)sweep_ms(cl);
}

static int64_t
kick_fn(struct loop *l, uint64_t id, void *arg)
{
	struct http_client *cl = arg;
	struct cconn *k;

	(void)l;
	(void)id;
	cl->kick_id = 0;
	while (cl->startq != NULL) {
		struct http_call *call = cl->startq;

		cl->startq = call->qnext;
		if (cl->startq == NULL)
			cl->startq_tail = NULL;
		call->queued = false;
		call_begin(call);
	}
	while ((k = cl->dead) != NULL) {
		cl->dead = k->dnext;
		mem_free(k);
	}
	return LOOP_TIMER_DONE;
}

/* ------------------------------------------------------------------ */
/* Connecting and sending                                              */
/* ------------------------------------------------------------------ */

/* Tries the addresses from k->ai on; returns 0 (connecting or connected) or -errno. */
static int
conn_try(struct cconn *k, struct http_call *call)
{
	while (k->ai < call->naddrs) {
		const struct sockaddr_storage *ss = &call->addrs[k->ai];
		int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			k->last_errno = errno;
			k->ai++;
			continue;
		}
		if (connect(fd, (const struct sockaddr *)ss, call->alens[k->ai]) == 0 ||
		    errno == EINPROGRESS) {
			k->fd = fd;
			k->connecting = true;
			conn_set_mask(k, LOOP_WRITE);
			return 0;
		}
		k->last_errno = errno;
		close(fd);
		k->ai++;
	}
	return -k->last_errno;
}

static void
conn_connected(struct cconn *k)
{
	struct http_call *call = k->call;
	int one = 1;

	k->connecting = false;
	k->cl->connects++;
	/* TLS sends each handshake message with its own write: no Nagle delays. */
	setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (call->conn_timer_id != 0) {
		loop_timer_del(k->cl->loop, call->conn_timer_id);
		call->conn_timer_id = 0;
	}
	if (k->tp->open != NULL) {
		int rc = k->tp->open(k->targ, k->cl->loop, k->fd, k->h->name, &k->tctx);

		if (rc < 0) {
			/* Nothing to release but the socket: close it here, not through the transport. */
			conn_set_mask(k, 0);
			close(k->fd);
			k->fd = -1;
			call_fail(call, rc, "%s: %s", call->h->key,
				rc == -ERR_NOMEM ? "out of memory" : "tls: cannot start TLS");
			return;
		}
	}
	call->st = CS_HEAD;
	conn_set_mask(k, LOOP_READ);
	call_send(call);
}

static void
call_begin(struct http_call *call)
{
	struct http_client *cl = call->cl;
	struct host *h = call->h;
	struct cconn *k;
	int rc;

	/* A pooled connection first. */
	while ((k = h->idle) != NULL) {
		host_unidle(k);
		if (k->dead)
			continue;
		k->call = call;
		call->conn = k;
		call->reused = true;
		call->st = CS_HEAD;
		conn_set_mask(k, LOOP_READ);
		call_send(call);
		return;
	}
	if (h->tls && cl->o.tls == NULL) {
		/* http_client_set_tls(NULL) came after the call was started. */
		call_fail(call, -ERR_UNSUPPORTED,
			"https://%s: https is not supported without a TLS config (CA file)", h->key);
		return;
	}
	k = conn_new(cl, h);
	if (k == NULL) {
		call_fail(call, -ERR_NOMEM, "out of memory");
		return;
	}
	k->call = call;
	call->conn = k;
	call->reused = false;
	call->st = CS_CONNECTING;
	rc = conn_try(k, call);
	if (rc < 0) {
		call_fail(call, -ERR_CONNECT, "dial tcp %s: connect: %s", h->key, http_errno_str(-rc));
		return;
	}
	if (call->conn_timer_id != 0)
		loop_timer_del(cl->loop, call->conn_timer_id);
	call->conn_timer_id = 0;
	if (call->connect_timeout_ms > 0)
		call->conn_timer_id = loop_timer_add(cl->loop, call->connect_timeout_ms,
			connect_timeout_fn, call);
}

/*
 * A transport that says why it failed (TLS: "x509: certificate signed by
 * unknown authority", "net/http: TLS handshake timeout") ends the call with
 * its words, as Go's client reports them. Returns false for plain TCP.
 */
static bool
transport_failed(struct http_call *call, struct cconn *k, int err)
{
	const char *msg = k->tp->errmsg != NULL ? k->tp->errmsg(k->tctx) : NULL;

	if (msg == NULL || *msg == '\0')
		return false;
	call_fail(call, err == -ERR_TLS || err == -ERR_TIMEOUT ? err : -ERR_CLOSED, "%s", msg);
	return true;
}

static void
call_send(struct http_call *call)
{
	struct cconn *k = call->conn;

	while (call->sent < call->req.len) {
		int want = LOOP_WRITE;
		ssize_t n = k->tp->write(k->tctx, k->fd, call->req.data + call->sent,
			call->req.len - call->sent, &want);

		if (n == -ERR_AGAIN) {
			k->write_wants_read = want == LOOP_READ;
			conn_set_mask(k, LOOP_READ |
				(want == LOOP_WRITE || k->read_wants_write ? LOOP_WRITE : 0));
			return;
		}
		if (n < 0) {
			/* The server may have closed a pooled connection: read will tell. */
			if (call->reused && !call->got_bytes && !call->retried) {
				call->retried = true;
				call_detach(call, false);
				call->sent = 0;
				call_begin(call);
				return;
			}
			if (transport_failed(call, k, (int)n))
				return;
			call_fail(call, n == -ERR_CLOSED ? -ERR_CLOSED : -ERR_IO,
				"write tcp %s: %s", call->h->key, "broken pipe");
			return;
		}
		call->sent += (size_t)n;
	}
	conn_set_mask(k, LOOP_READ | (k->read_wants_write ? LOOP_WRITE : 0));
}

/* ------------------------------------------------------------------ */
/* Receiving                                                           */
/* ------------------------------------------------------------------ */

/* Hands body bytes to the owner. Returns false if the call ended. */
static bool
deliver(struct http_call *call, const char *p, size_t n)
{
	if (n == 0)
		return true;
	if (call->stream) {
		call->in_cb = true;
		call->on_data(call, p, n, call->arg);
		call->in_cb = false;
		if (call->cancelled) {
			call_drop(call);
			return false;
		}
		return true;
	}
	if (buf_avail(&call->body) + n > call->cl->o.body_bytes_max) {
		call_fail(call, -ERR_LIMIT, "http: response body too large");
		return false;
	}
	if (buf_append(&call->body, p, n) < 0) {
		call_fail(call, -ERR_NOMEM, "out of memory");
		return false;
	}
	return true;
}

static int
take_head(struct http_call *call, struct cconn *k, const struct http_head *h, size_t hl)
{
	const char *base = buf_head(&k->in);
	const char *nb;

	if (h->nheaders > call->hdrs_cap) {
		struct http_header *nh = mem_realloc(call->hdrs, h->nheaders * sizeof(*nh));

		if (nh == NULL)
			return -ERR_NOMEM;
		call->hdrs = nh;
		call->hdrs_cap = h->nheaders;
	}
	buf_reset(&call->harena);
	if (buf_append(&call->harena, base, hl) < 0)
		return -ERR_NOMEM;
	nb = call->harena.data;
	for (size_t i = 0; i < h->nheaders; i++) {
		call->hdrs[i].name = nb + (call->cl->scratch[i].name - base);
		call->hdrs[i].value = nb + (call->cl->scratch[i].value - base);
		call->hdrs[i].name_len = call->cl->scratch[i].name_len;
		call->hdrs[i].value_len = call->cl->scratch[i].value_len;
	}
	memset(&call->resp, 0, sizeof(call->resp));
	call->resp.status = h->status;
	call->resp.reason = h->reason_len > 0 ? nb + (h->reason - base) : "";
	call->resp.version_minor = h->version_minor;
	call->resp.headers = call->hdrs;
	call->resp.nheaders = h->nheaders;
	call->resp.body = "";
	call->have_head = true;
	return 0;
}

/* Works through what has arrived. Returns false if the call ended. */
static bool
call_feed(struct http_call *call, bool eof)
{
	struct http_client *cl = call->cl;
	struct cconn *k = call->conn;

	for (;;) {
		if (call->st == CS_HEAD) {
			struct http_head h;
			int hl;

			if (buf_avail(&k->in) == 0)
				break;
			hl = http_parse_response_head(buf_head(&k->in), buf_avail(&k->in), &call->scanned,
				cl->o.header_bytes_max, &h, cl->scratch, cl->o.headers_max);
			if (hl == -ERR_AGAIN)
				break;
			call->scanned = 0;
			if (hl < 0) {
				call_fail(call, hl == -ERR_LIMIT ? -ERR_LIMIT : -ERR_PARSE,
					"net/http: malformed HTTP response");
				return false;
			}
			if (h.status >= 100 && h.status < 200) {
				/* Interim answers (100 Continue) are skipped. */
				buf_consume(&k->in, (size_t)hl);
				continue;
			}
			if (take_head(call, k, &h, (size_t)hl) < 0) {
				call_fail(call, -ERR_NOMEM, "out of memory");
				return false;
			}
			buf_consume(&k->in, (size_t)hl);
			call->keep_alive = http_head_keep_alive(&h);
			if (call->head_req || h.status == 204 || h.status == 304) {
				call->bm = BM_NONE;
			} else if (h.flags & HTTP_HEAD_CHUNKED) {
				call->bm = BM_CHUNKED;
				http_chunked_init(&call->ck);
			} else if (h.content_length >= 0) {
				call->bm = BM_LENGTH;
				call->body_left = (uint64_t)h.content_length;
			} else {
				call->bm = BM_CLOSE;
				call->keep_alive = false;
			}
			call->st = CS_BODY;
			if (call->on_head != NULL) {
				call->in_cb = true;
				call->on_head(call, &call->resp, call->arg);
				call->in_cb = false;
				if (call->cancelled) {
					call_drop(call);
					return false;
				}
			}
		}
		if (call->st != CS_BODY)
			break;
		switch (call->bm) {
		case BM_NONE:
			call_finish(call, 0);
			return false;
		case BM_LENGTH: {
			size_t n = buf_avail(&k->in);

			if (n > call->body_left)
				n = (size_t)call->body_left;
			call->body_left -= n;
			/* Consume before delivering: the callback may cancel. */
			if (n > 0) {
				const char *p = buf_head(&k->in);

				k->in.off += n;
				if (!deliver(call, p, n))
					return false;
				buf_consume(&k->in, 0);
				if (buf_avail(&k->in) == 0)
					buf_reset(&k->in);
			}
			if (call->body_left == 0) {
				call_finish(call, 0);
				return false;
			}
			break;
		}
		case BM_CHUNKED: {
			size_t in = 0, out = 0;
			int rc = http_chunked_decode(&call->ck, buf_head(&k->in), &in, buf_avail(&k->in), &out,
				call->stream ? UINT64_MAX : cl->o.body_bytes_max, cl->o.header_bytes_max);
			const char *p = buf_head(&k->in);

			if (rc < 0) {
				call_fail(call, rc, rc == -ERR_LIMIT ? "http: response body too large" :
					"net/http: malformed chunked encoding");
				return false;
			}
			k->in.off += in;
			if (!deliver(call, p, out))
				return false;
			if (buf_avail(&k->in) == 0)
				buf_reset(&k->in);
			if (rc == 1) {
				call_finish(call, 0);
				return false;
			}
			break;
		}
		case BM_CLOSE: {
			size_t n = buf_avail(&k->in);
			const char *p = buf_head(&k->in);

			k->in.off += n;
			if (!deliver(call, p, n))
				return false;
			buf_reset(&k->in);
			if (eof) {
				call_finish(call, 0);
				return false;
			}
			break;
		}
		}
		break;
	}
	if (eof) {
		if (call->reused && !call->got_bytes && !call->retried) {
			/* A pooled connection the server had closed: once more on a new one. */
			call->retried = true;
			call_detach(call, false);
			call->sent = 0;
			call->st = CS_QUEUED;
			call_begin(call);
			return false;
		}
		call_fail(call, -ERR_CLOSED, call->have_head ? "unexpected EOF" :
			"net/http: server closed the connection before answering");
		return false;
	}
	return true;
}

static void
conn_on_read(struct loop *l, int fd, void *arg)
{
	struct cconn *k = arg;
	struct http_client *cl = k->cl;
	struct http_call *call = k->call;
	size_t room;
	int want = LOOP_READ;
	ssize_t n;

	(void)l;
	(void)fd;
again:
	if (k->dead)
		return;
	if (k->write_wants_read && call != NULL) {
		k->write_wants_read = false;
		call_send(call);
		if (k->dead || k->call != call)
			return;
	}
	if (buf_reserve(&k->in, READ_RESERVE_BYTES) < 0) {
		if (call != NULL)
			call_fail(call, -ERR_NOMEM, "out of memory");
		else
			conn_close(k);
		return;
	}
	room = k->in.cap - k->in.len - 1;
	if (room > cl->o.read_bytes_max)
		room = cl->o.read_bytes_max;
	n = k->tp->read(k->tctx, k->fd, k->in.data + k->in.len, room, &want);
	if (n == -ERR_AGAIN) {
		if (want == LOOP_WRITE) {
			k->read_wants_write = true;
			conn_set_mask(k, k->mask | LOOP_WRITE);
		}
		return;
	}
	if (call == NULL) {
		/* Idle: the server closed it, or sent what nobody asked for. */
		conn_close(k);
		return;
	}
	if (n < 0) {
		if (call->reused && !call->got_bytes && !call->retried) {
			call->retried = true;
			call_detach(call, false);
			call->sent = 0;
			call_begin(call);
			return;
		}
		if (transport_failed(call, k, (int)n))
			return;
		call_fail(call, -ERR_CLOSED, "read tcp %s: connection reset by peer", call->h->key);
		return;
	}
	if (n > 0) {
		k->in.len += (size_t)n;
		call->got_bytes = true;
	}
	if (!call_feed(call, n == 0))
		return;
	if (!k->dead && k->in.cap > BUF_KEEP_BYTES && buf_avail(&k->in) == 0)
		buf_free(&k->in);
	/*
	 * Input a transport (TLS) already decrypted raises no fd event: read on.
	 * It holds at most one record, so this ends.
	 */
	if (n > 0 && !k->dead && k->call == call && k->tp->pending != NULL && k->tp->pending(k->tctx))
		goto again;
}

static void
conn_on_write(struct loop *l, int fd, void *arg)
{
	struct cconn *k = arg;
	struct http_call *call = k->call;

	(void)l;
	(void)fd;
	if (k->dead)
		return;
	if (k->connecting) {
		int err = 0;
		socklen_t sl = sizeof(err);

		if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
			err = errno;
		if (err == 0) {
			conn_connected(k);
			return;
		}
		/* This address failed: the next one, or give up. */
		k->last_errno = err;
		conn_set_mask(k, 0);
		close(k->fd);
		k->fd = -1;
		k->ai++;
		if (conn_try(k, call) < 0)
			call_fail(call, -ERR_CONNECT, "dial tcp %s: connect: %s", call->h->key,
				http_errno_str(k->last_errno));
		return;
	}
	if (k->read_wants_write) {
		k->read_wants_write = false;
		conn_set_mask(k, k->mask & ~LOOP_WRITE);
		conn_on_read(l, fd, arg);
		/* The request may still be waiting for the handshake the read moved on. */
		if (k->dead || call == NULL || k->call != call || call->sent == call->req.len)
			return;
	}
	if (call != NULL)
		call_send(call);
	else
		conn_set_mask(k, LOOP_READ);
}

/* ------------------------------------------------------------------ */
/* Starting calls                                                      */
/* ------------------------------------------------------------------ */

static struct host *
host_get(struct http_client *cl, const char *key, const struct http_url *u)
{
	struct host *h;

	for (h = cl->hosts; h != NULL; h = h->next)
		if (strcmp(h->key, key) == 0 && h->tls == u->tls)
			return h;
	h = mem_calloc(1, sizeof(*h));
	if (h == NULL)
		return NULL;
	snprintf(h->key, sizeof(h->key), "%s", key);
	snprintf(h->name, sizeof(h->name), "%s", u->host);
	h->tls = u->tls;
	h->next = cl->hosts;
	cl->hosts = h;
	return h;
}

static int
add_addr(struct http_call *call, int family, const void *ip, uint16_t port)
{
	struct sockaddr_storage *ss = &call->addrs[call->naddrs];

	if (call->naddrs >= ADDRS_MAX)
		return 0;
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		memcpy(&a->sin_addr, ip, sizeof(a->sin_addr));
		call->alens[call->naddrs++] = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		memcpy(&a->sin6_addr, ip, sizeof(a->sin6_addr));
		call->alens[call->naddrs++] = sizeof(*a);
	}
	return 0;
}

static int
resolve(struct http_client *cl, struct http_call *call, const struct http_url *u)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (!u->ipv6 && inet_pton(AF_INET, u->host, &a4) == 1)
		return add_addr(call, AF_INET, &a4, u->port);
	if (u->ipv6) {
		if (inet_pton(AF_INET6, u->host, &a6) != 1)
			return -ERR_PARSE;
		return add_addr(call, AF_INET6, &a6, u->port);
	}
	if (strcasecmp(u->host, "localhost") == 0) {
		inet_pton(AF_INET, "127.0.0.1", &a4);
		inet_pton(AF_INET6, "::1", &a6);
		add_addr(call, AF_INET, &a4, u->port);
		return add_addr(call, AF_INET6, &a6, u->port);
	}
	if (!cl->o.resolve_blocking) {
		snprintf(cl->errmsg, sizeof(cl->errmsg),
			"dial tcp %.180s:%u: names need blocking resolution", u->host, u->port);
		return -ERR_UNSUPPORTED;
	}
	{
		struct addrinfo hints, *res = NULL, *ai;
		int rc;

		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		rc = getaddrinfo(u->host, NULL, &hints, &res);
		if (rc != 0 || res == NULL) {
			snprintf(cl->errmsg, sizeof(cl->errmsg), "dial tcp: lookup %.200s: no such host", u->host);
			return -ERR_CONNECT;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if (ai->ai_family == AF_INET)
				add_addr(call, AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, u->port);
			else if (ai->ai_family == AF_INET6)
				add_addr(call, AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
					u->port);
		}
		freeaddrinfo(res);
		if (call->naddrs == 0) {
			snprintf(cl->errmsg, sizeof(cl->errmsg), "dial tcp: lookup %.200s: no such host", u->host);
			return -ERR_CONNECT;
		}
	}
	return 0;
}

static bool
token_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f || strchr("()<>@,;:\\\"/[]?={}", *s) != NULL)
			return false;
	return true;
}

static int
build_request(struct http_call *call, const struct http_call_spec *spec, const struct http_url *u)
{
	struct buf *b = &call->req;
	const char *path = u->path[0] != '\0' ? u->path : "/";
	bool have_host = false;
	int rc = 0;

	if (!token_ok(spec->method))
		return -ERR_INVAL;
	rc |= buf_puts(b, spec->method);
	rc |= buf_putc(b, ' ');
	if (path[0] == '?')
		rc |= buf_putc(b, '/');
	{
		const char *hash = strchr(path, '#');

		rc |= buf_append(b, path, hash != NULL ? (size_t)(hash - path) : strlen(path));
	}
	rc |= buf_puts(b, " HTTP/1.1\r\n");
	for (size_t i = 0; i < spec->nheaders; i++) {
		const struct http_header *h = &spec->headers[i];

		if (!token_ok(h->name) || strpbrk(h->value, "\r\n") != NULL)
			return -ERR_INVAL;
		if (strcasecmp(h->name, "Host") == 0)
			have_host = true;
		if (strcasecmp(h->name, "Content-Length") == 0 ||
		    strcasecmp(h->name, "Transfer-Encoding") == 0)
			return -ERR_INVAL;
	}
	if (!have_host) {
		if (u->port_given && u->ipv6)
			rc |= buf_printf(b, "Host: [%s]:%u\r\n", u->host, u->port);
		else if (u->port_given)
			rc |= buf_printf(b, "Host: %s:%u\r\n", u->host, u->port);
		else if (u->ipv6)
			rc |= buf_printf(b, "Host: [%s]\r\n", u->host);
		else
			rc |= buf_printf(b, "Host: %s\r\n", u->host);
	}
	for (size_t i = 0; i < spec->nheaders; i++)
		rc |= buf_printf(b, "%s: %s\r\n", spec->headers[i].name, spec->headers[i].value);
	if (spec->has_body || spec->body_len > 0)
		rc |= buf_printf(b, "Content-Length: %zu\r\n", spec->body_len);
	rc |= buf_puts(b, "\r\n");
	if (spec->body_len > 0)
		rc |= buf_append(b, spec->body, spec->body_len);
	return rc < 0 ? -ERR_NOMEM : 0;
}

int
http_call_start(struct http_client *cl, const struct http_call_spec *spec, struct http_call **out)
{
	struct http_call *call;
	struct http_url u;
	char key[300];
	int rc;

	if (out != NULL)
		*out = NULL;
	if (spec->method == NULL || spec->url == NULL || spec->on_done == NULL ||
	    (spec->stream && spec->on_data == NULL)) {
		snprintf(cl->errmsg, sizeof(cl->errmsg), "http call: missing method, url or callback");
		return -ERR_INVAL;
	}
	if (http_url_parse(spec->url, &u) < 0) {
		snprintf(cl->errmsg, sizeof(cl->errmsg), "parse %s: invalid URL", spec->url);
		return -ERR_PARSE;
	}
	if (u.tls && cl->o.tls == NULL) {
		snprintf(cl->errmsg, sizeof(cl->errmsg),
			"%s: https is not supported without a TLS config (CA file)", spec->url);
		return -ERR_UNSUPPORTED;
	}
	call = mem_calloc(1, sizeof(*call));
	if (call == NULL) {
		snprintf(cl->errmsg, sizeof(cl->errmsg), "out of memory");
		return -ERR_NOMEM;
	}
	call->cl = cl;
	rc = resolve(cl, call, &u);
	if (rc == 0)
		rc = build_request(call, spec, &u);
	if (rc < 0) {
		if (rc == -ERR_INVAL)
			snprintf(cl->errmsg, sizeof(cl->errmsg), "http call: invalid method or header field");
		else if (rc == -ERR_NOMEM)
			snprintf(cl->errmsg, sizeof(cl->errmsg), "out of memory");
		else if (rc == -ERR_PARSE)
			snprintf(cl->errmsg, sizeof(cl->errmsg), "parse %s: invalid URL", spec->url);
		call_free(call);
		return rc;
	}
	if (u.ipv6)
		snprintf(key, sizeof(key), "[%s]:%u", u.host, u.port);
	else
		snprintf(key, sizeof(key), "%s:%u", u.host, u.port);
	call->h = host_get(cl, key, &u);
	if (call->h == NULL) {
		call_free(call);
		return -ERR_NOMEM;
	}
	call->head_req = strcmp(spec->method, "HEAD") == 0;
	call->stream = spec->stream;
	call->on_head = spec->on_head;
	call->on_data = spec->on_data;
	call->on_done = spec->on_done;
	call->arg = spec->arg;
	call->connect_timeout_ms = spec->connect_timeout_ms;
	call->timeout_ms = spec->timeout_ms;
	call->st = CS_QUEUED;
	if (call->timeout_ms > 0) {
		call->timer_id = loop_timer_add(cl->loop, call->timeout_ms, call_timeout_fn, call);
		if (call->timer_id == 0) {
			call_free(call);
			return -ERR_NOMEM;
		}
	}
	call->next = cl->calls;
	if (cl->calls != NULL)
		cl->calls->prev = call;
	cl->calls = call;
	call->queued = true;
	if (cl->startq_tail != NULL)
		cl->startq_tail->qnext = call;
	else
		cl->startq = call;
	cl->startq_tail = call;
	kick(cl);
	if (out != NULL)
		*out = call;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

struct http_client *
http_client_new(struct loop *l, const struct http_client_opts *o)
{
	struct http_client *cl;

	if (l == NULL)
		return NULL;
	cl = mem_calloc(1, sizeof(*cl));
	if (cl == NULL)
		return NULL;
	http_client_opts_default(&cl->o);
	if (o != NULL) {
#define TAKE(f) if (o->f != 0) cl->o.f = o->f
		TAKE(header_bytes_max);
		TAKE(headers_max);
		TAKE(body_bytes_max);
		TAKE(idle_per_host_max);
		TAKE(idle_ms);
		TAKE(read_bytes_max);
#undef TAKE
		cl->o.resolve_blocking = o->resolve_blocking;
		if (o->tls != NULL && tls_config_is_server(o->tls)) {
			mem_free(cl);
			return NULL;
		}
		cl->o.tls = o->tls != NULL ? tls_config_ref(o->tls) : NULL;
	}
	cl->scratch = mem_calloc(cl->o.headers_max, sizeof(*cl->scratch));
	if (cl->scratch == NULL) {
		tls_config_free(cl->o.tls);
		mem_free(cl);
		return NULL;
	}
	cl->loop = l;
	return cl;
}

void
http_client_free(struct http_client *cl)
{
	struct cconn *k;

	if (cl == NULL)
		return;
	while (cl->calls != NULL)
		call_drop(cl->calls);
	while (cl->conns != NULL)
		conn_close(cl->conns);
	while ((k = cl->dead) != NULL) {
		cl->dead = k->dnext;
		mem_free(k);
	}
	while (cl->hosts != NULL) {
		struct host *h = cl->hosts;

		cl->hosts = h->next;
		mem_free(h);
	}
	if (cl->kick_id != 0)
		loop_timer_del(cl->loop, cl->kick_id);
	if (cl->sweep_id != 0)
		loop_timer_del(cl->loop, cl->sweep_id);
	tls_config_free(cl->o.tls);
	mem_free(cl->scratch);
	mem_free(cl);
}

int
http_client_set_tls(struct http_client *cl, struct tls_config *cfg)
{
	if (cfg != NULL && tls_config_is_server(cfg)) {
		snprintf(cl->errmsg, sizeof(cl->errmsg), "tls: a server config cannot dial https");
		return -ERR_INVAL;
	}
	/* Idle https connections were verified under the old config: not to be reused. */
	for (struct host *h = cl->hosts; h != NULL; h = h->next) {
		while (h->tls && h->idle != NULL)
			conn_close(h->idle);
	}
	tls_config_free(cl->o.tls);
	cl->o.tls = cfg != NULL ? tls_config_ref(cfg) : NULL;
	return 0;
}

const char *
http_client_errmsg(const struct http_client *cl)
{
	return cl->errmsg;
}

size_t
http_client_conns(const struct http_client *cl)
{
	return cl->nconns;
}

uint64_t
http_client_connects(const struct http_client *cl)
{
	return cl->connects;
}

const char *
http_response_header(const struct http_response *r, const char *name)
{
	const struct http_header *h = http_header_find(r->headers, r->nheaders, name);

	return h != NULL ? h->value : NULL;
}

/* ------------------------------------------------------------------ */
/* Blocking wrapper                                                    */
/* ------------------------------------------------------------------ */

struct http_sync {
	struct loop *loop;
	struct http_client *cl;
};

struct fetch {
	struct http_result *res;
	http_call_data_fn *on_data;
	void *arg;
	bool done;
	int rc;
};

struct http_sync *
http_sync_new(void)
{
	struct http_sync *s = mem_calloc(1, sizeof(*s));
	struct http_client_opts o;

	if (s == NULL)
		return NULL;
	s->loop = loop_new();
	http_client_opts_default(&o);
	o.resolve_blocking = true;
	s->cl = s->loop != NULL ? http_client_new(s->loop, &o) : NULL;
	if (s->cl == NULL) {
		if (s->loop != NULL)
			loop_free(s->loop);
		mem_free(s);
		return NULL;
	}
	return s;
}

int
http_sync_set_tls(struct http_sync *s, struct tls_config *cfg)
{
	return http_client_set_tls(s->cl, cfg);
}

void
http_sync_free(struct http_sync *s)
{
	if (s == NULL)
		return;
	http_client_free(s->cl);
	loop_free(s->loop);
	mem_free(s);
}

static void
fetch_data(struct http_call *call, const char *p, size_t n, void *arg)
{
	struct fetch *f = arg;

	f->on_data(call, p, n, f->arg);
}

/* Copies the response into the result: one block for the header array and its strings. */
static int
fetch_copy(struct http_result *res, const struct http_response *r)
{
	size_t strs = 0, hsz = r->nheaders * sizeof(struct http_header);
	char *blk, *p;

	for (size_t i = 0; i < r->nheaders; i++)
		strs += r->headers[i].name_len + r->headers[i].value_len + 2;
	res->status = r->status;
	res->body = mem_alloc(r->body_len + 1);
	blk = mem_alloc(hsz + strs + 1);
	if (res->body == NULL || blk == NULL) {
		mem_free(res->body);
		mem_free(blk);
		res->body = NULL;
		return -ERR_NOMEM;
	}
	if (r->body_len > 0)
		memcpy(res->body, r->body, r->body_len);
	res->body[r->body_len] = '\0';
	res->body_len = r->body_len;
	res->headers = (struct http_header *)(void *)blk;
	res->nheaders = r->nheaders;
	p = blk + hsz;
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];

		memcpy(p, h->name, h->name_len + 1);
		res->headers[i].name = p;
		res->headers[i].name_len = h->name_len;
		p += h->name_len + 1;
		memcpy(p, h->value, h->value_len + 1);
		res->headers[i].value = p;
		res->headers[i].value_len = h->value_len;
		p += h->value_len + 1;
	}
	return 0;
}

static void
fetch_done(struct http_call *call, int err, const struct http_response *resp, void *arg)
{
	struct fetch *f = arg;

	f->done = true;
	f->rc = err;
	if (err == 0) {
		f->rc = fetch_copy(f->res, resp);
		if (f->rc < 0)
			snprintf(f->res->errmsg, sizeof(f->res->errmsg), "out of memory");
	} else {
		snprintf(f->res->errmsg, sizeof(f->res->errmsg), "%s", http_call_errmsg(call));
	}
}

int
http_fetch(struct http_sync *s, const struct http_call_spec *spec, struct http_result *res)
{
	struct http_sync *own = NULL;
	struct http_call_spec sp = *spec;
	struct fetch f = { .res = res, .on_data = spec->on_data, .arg = spec->arg };
	int rc;

	memset(res, 0, sizeof(*res));
	if (s == NULL) {
		own = s = http_sync_new();
		if (s == NULL) {
			snprintf(res->errmsg, sizeof(res->errmsg), "out of memory");
			return -ERR_NOMEM;
		}
	}
	sp.on_head = NULL;
	sp.on_done = fetch_done;
	sp.on_data = spec->on_data != NULL ? fetch_data : NULL;
	sp.stream = spec->on_data != NULL;
	sp.arg = &f;
	rc = http_call_start(s->cl, &sp, NULL);
	if (rc < 0) {
		snprintf(res->errmsg, sizeof(res->errmsg), "%s", http_client_errmsg(s->cl));
		http_sync_free(own);
		return rc;
	}
	while (!f.done) {
		rc = loop_run_once(s->loop, -1);
		if (rc < 0 && !f.done) {
			snprintf(res->errmsg, sizeof(res->errmsg), "event loop: %s", err_str(rc));
			http_sync_free(own);
			return rc;
		}
	}
	http_sync_free(own);
	return f.rc;
}

const char *
http_result_header(const struct http_result *res, const char *name)
{
	const struct http_header *h = http_header_find(res->headers, res->nheaders, name);

	return h != NULL ? h->value : NULL;
}

void
http_result_free(struct http_result *res)
{
	mem_free(res->headers);
	mem_free(res->body);
	res->headers = NULL;
	res->body = NULL;
	res->nheaders = 0;
	res->body_len = 0;
}
