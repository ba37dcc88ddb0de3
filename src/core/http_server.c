/*
 * http_server: HTTP/1.1 server on the shared loop.
 *
 * Each connection reads into one input buffer, parses requests in place and
 * hands each complete request (head and body copied into the request's own
 * arena, so it can outlive the input buffer) to the server's one handler.
 * Responses go out strictly in request order: the first request in line
 * writes into the connection's output buffer, later ones into their own
 * buffer that is moved over when their turn comes. Output of one read event
 * is written with one write; answers given later (held requests) are
 * flushed by a zero-delay "kick" timer at the next turn, which also closes
 * and frees connections, so nothing is ever freed inside its own callback
 * and a request's on_close never fires inside a call made by its owner.
 *
 * It must never trust a peer: every buffer is bounded by struct http_limits,
 * a misbehaving client gets 400/408/413/431/503 or is cut off, and no input
 * can crash the process or leak memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/http.h"
#include "corebox/log.h"
#include "corebox/loop.h"
#include "corebox/mem.h"
#include "corebox/tls.h"

/* Input reserved per read; grows only for long heads and bodies. */
#define READ_RESERVE_BYTES 16384
/* Held requests that may keep their input buffers (see conn_on_read). */
#define HELD_KEEP_BUFFERS_MAX 256
/* Buffers larger than this are released once empty. */
#define BUF_KEEP_BYTES (64 * 1024)
/* How long a closing connection drains the client's input after our FIN. */
#define LINGER_MS 2000
/* Request objects kept for reuse. */
#define POOL_MAX 256

enum rstate {
	RS_NONE,    /* nothing written yet */
	RS_HEAD,    /* status line and fields being built in hbuf */
	RS_BODYBUF, /* body being appended to bbuf */
	RS_CHUNKED, /* head sent, streaming */
	RS_DONE,    /* complete (or aborted / cancelled) */
};

enum parse_state {
	PS_HEAD,
	PS_BODY_CL,
	PS_BODY_CHUNKED,
};

struct conn;

struct sreq {
	struct http_req pub;    /* first: the handler's view */
	struct conn *c;
	struct sreq *next;      /* queue order, or the free pool */
	struct buf arena;       /* request head, body and decoded text */
	struct http_header *hdrs;
	size_t hdrs_cap;
	struct http_param *params;
	size_t params_cap;
	struct buf hbuf;        /* response head being built */
	struct buf bbuf;        /* body appended through http_resp_body_buf */
	struct buf pend;        /* response bytes while not first in line */
	size_t target_off, target_len, head_len;
	enum rstate rs;
	int status;
	uint64_t body_bytes;
	http_req_close_fn *on_close;
	void *close_arg;
	bool use_pend;          /* write into pend, not the connection */
	bool held;
	bool in_handler;
	bool popped;            /* left the queue while the handler ran */
	bool close_after;       /* the connection closes after this response */
	bool head_only;         /* HEAD request: no body bytes */
	bool raw_stream;        /* HTTP/1.0 streaming: no chunk framing */
	bool internal;          /* an error answer made by the server */
	bool expect_continue;
	char form_err[HTTP_PARAM_ERR_MAX];
};

struct conn {
	struct http_server *s;
	struct conn *prev, *next;   /* s->conns */
	struct conn *pnext;         /* s->pending */
	struct conn *dnext;         /* s->dead */
	int fd;
	const struct http_transport *tp;
	void *tctx;
	struct buf in, out;
	struct sockaddr_storage peer;
	/* Request being read. */
	enum parse_state ps;
	struct sreq *cur;
	size_t scanned;
	uint64_t body_left;
	struct http_chunked ck;
	size_t ck_in, ck_out;       /* relative to buf_head(&in) */
	/* Requests handed over, in order. */
	struct sreq *q_head, *q_tail;
	size_t nq;
	uint64_t req_start_ms;      /* first byte of the request being read, 0 if none */
	uint64_t last_active_ms;
	uint64_t last_write_ms;
	uint64_t linger_until_ms;
	int mask;                   /* LOOP_READ/WRITE registered */
	bool read_wants_write;      /* transport read blocked on writability */
	bool write_wants_read;
	bool read_pending;          /* the transport holds input the fd will not announce */
	bool dead;                  /* fd closed, waiting to be freed */
	bool pending;               /* on s->pending */
	bool broken;                /* close at the next kick */
	bool cancel_rest;           /* drop queued requests behind a closing response */
	bool stop_parsing;          /* no more requests on this connection */
	bool close_after_flush;
	bool eof;                   /* the client closed its side */
	bool lingering;
	bool in_io;                 /* inside this connection's read/write handler */
};

struct listener {
	struct http_server *s;
	int fd;
	const struct http_transport *tp;
	void *targ;                     /* TLS: a struct tls_config reference */
};

struct http_server {
	struct loop *loop;
	struct http_limits lim;
	http_handler_fn *handler;
	void *harg;
	http_log_fn *logfn;
	void *logarg;
	struct listener **ls;
	size_t nls;
	struct conn *conns;
	struct conn *pending;
	struct conn *dead;
	struct sreq *pool;
	size_t npool;
	struct http_header *scratch;    /* headers of the head being parsed */
	uint64_t sweep_id, kick_id;
	int64_t date_sec;
	char date_line[40];             /* "Date: ...\r\n" */
	struct http_server_stats st;
	struct tls_config *tls;         /* for https listeners; a reference */
	char errmsg[256];
};

static void conn_close(struct conn *c);
static void conn_flush(struct conn *c);
static void conn_process(struct conn *c);
static void conn_update_mask(struct conn *c);
static void conn_resume(struct conn *c);
static bool can_dispatch(const struct conn *c);
static void queue_advance(struct conn *c);

void
http_limits_default(struct http_limits *lim)
{
	lim->header_bytes_max = 1 << 20;
	lim->headers_max = 256;
	lim->body_bytes_max = 3 << 19; /* 1.5 MiB */
	lim->conns_max = 4096;
	lim->pipeline_max = 64;
	lim->header_read_ms = 30000;
	lim->idle_ms = 300000;
	lim->out_bytes_max = 64 << 20;
	lim->read_bytes_max = 64 << 10;
	lim->write_bytes_max = 1 << 20;
	lim->accept_max = 64;
}

/* ------------------------------------------------------------------ */
/* Plain transport                                                     */
/* ------------------------------------------------------------------ */

static ssize_t
plain_read(void *ctx, int fd, void *p, size_t n, int *want)
{
	ssize_t r;

	(void)ctx;
	do
		r = read(fd, p, n);
	while (r < 0 && errno == EINTR);
	if (r >= 0)
		return r;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		*want = LOOP_READ;
		return -ERR_AGAIN;
	}
	return errno == ECONNRESET ? -ERR_CLOSED : -ERR_IO;
}

static ssize_t
plain_write(void *ctx, int fd, const void *p, size_t n, int *want)
{
	ssize_t r;

	(void)ctx;
	do
		r = send(fd, p, n, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r >= 0)
		return r;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		*want = LOOP_WRITE;
		return -ERR_AGAIN;
	}
	return errno == EPIPE || errno == ECONNRESET ? -ERR_CLOSED : -ERR_IO;
}

static void
plain_close(void *ctx, int fd)
{
	(void)ctx;
	if (fd >= 0)
		close(fd);
}

const struct http_transport http_transport_plain = {
	.name = "tcp",
	.open = NULL,
	.read = plain_read,
	.write = plain_write,
	.close = plain_close,
};

/* ------------------------------------------------------------------ */
/* Requests: pool, queue                                               */
/* ------------------------------------------------------------------ */

static void
buf_trim(struct buf *b)
{
	if (b->cap > BUF_KEEP_BYTES)
		buf_free(b);
	else
		buf_reset(b);
}

static struct sreq *
req_get(struct conn *c)
{
	struct http_server *s = c->s;
	struct sreq *r = s->pool;

	if (r != NULL) {
		s->pool = r->next;
		s->npool--;
	} else {
		r = mem_calloc(1, sizeof(*r));
		if (r == NULL)
			return NULL;
	}
	r->c = c;
	r->next = NULL;
	r->rs = RS_NONE;
	r->status = 0;
	r->body_bytes = 0;
	r->on_close = NULL;
	r->close_arg = NULL;
	r->use_pend = r->held = r->in_handler = r->popped = false;
	r->close_after = r->head_only = r->raw_stream = r->internal = false;
	r->expect_continue = false;
	r->form_err[0] = '\0';
	memset(&r->pub, 0, sizeof(r->pub));
	r->pub.method = "";
	r->pub.path_raw = r->pub.path = r->pub.query_raw = r->pub.body = "";
	r->pub.server = s;
	r->pub.peer = c->peer;
	return r;
}

static void
req_free(struct sreq *r)
{
	buf_free(&r->arena);
	buf_free(&r->hbuf);
	buf_free(&r->bbuf);
	buf_free(&r->pend);
	mem_free(r->hdrs);
	mem_free(r->params);
	mem_free(r);
}

static void
req_recycle(struct http_server *s, struct sreq *r)
{
	if (s->npool >= POOL_MAX) {
		req_free(r);
		return;
	}
	buf_trim(&r->arena);
	buf_trim(&r->hbuf);
	buf_trim(&r->bbuf);
	buf_trim(&r->pend);
	r->c = NULL;
	r->next = s->pool;
	s->pool = r;
	s->npool++;
}

static void
queue_push(struct conn *c, struct sreq *r)
{
	r->use_pend = c->q_head != NULL;
	r->next = NULL;
	if (c->q_tail != NULL)
		c->q_tail->next = r;
	else
		c->q_head = r;
	c->q_tail = r;
	c->nq++;
}

/* ------------------------------------------------------------------ */
/* Deferred work: the kick timer                                       */
/* ------------------------------------------------------------------ */

static int64_t kick_fn(struct loop *l, uint64_t id, void *arg);
static void conn_on_read(struct loop *l, int fd, void *arg);

/* Queues c for the kick: flush, close if broken, free if dead. */
static void
conn_mark_pending(struct conn *c)
{
	struct http_server *s = c->s;

	if (!c->pending && !c->dead) {
		c->pending = true;
		c->pnext = s->pending;
		s->pending = c;
	}
	if (s->kick_id == 0)
		s->kick_id = loop_timer_add(s->loop, 0, kick_fn, s);
}

/* Something was queued for output outside this connection's own handler. */
static void
conn_want_flush(struct conn *c)
{
	if (c->dead || c->in_io)
		return;
	conn_mark_pending(c);
}

/* Called from an owner's call: close later, from the kick. */
static void
conn_break(struct conn *c)
{
	if (c->dead)
		return;
	c->broken = true;
	conn_mark_pending(c);
}

static void
conn_free(struct conn *c)
{
	buf_free(&c->in);
	buf_free(&c->out);
	mem_free(c);
}

/* Drops every queued request; held ones hear about it through on_close. */
static void
conn_cancel_queue(struct conn *c)
{
	struct http_server *s = c->s;
	struct sreq *r = c->q_head;

	c->q_head = c->q_tail = NULL;
	c->nq = 0;
	while (r != NULL) {
		struct sreq *next = r->next;

		if (r->held) {
			s->st.requests_held--;
			if (r->rs != RS_DONE) {
				r->rs = RS_DONE;
				r->on_close(&r->pub, r->close_arg);
			}
		}
		req_recycle(s, r);
		r = next;
	}
}

static void
conn_start_linger(struct conn *c)
{
	c->lingering = true;
	c->linger_until_ms = loop_now_ms(c->s->loop) + LINGER_MS;
	shutdown(c->fd, SHUT_WR);
	if (c->eof)
		conn_close(c);
	else
		conn_update_mask(c);
}

/*
 * Requests held back (pipeline full, output backed up) may go once answers
 * went out; then whatever they produce is flushed.
 */
static void
conn_resume(struct conn *c)
{
	if (c->dead || buf_avail(&c->in) == 0 || !can_dispatch(c))
		return;
	c->in_io = true;
	conn_process(c);
	c->in_io = false;
	conn_flush(c);
}

static int64_t
kick_fn(struct loop *l, uint64_t id, void *arg)
{
	struct http_server *s = arg;
	struct conn *c, *list, **pp;

	(void)id;
	s->kick_id = 0;
	list = s->pending;
	s->pending = NULL;
	while (list != NULL) {
		c = list;
		list = c->pnext;
		c->pending = false;
		if (c->dead)
			continue;
		if (c->broken) {
			conn_close(c);
			continue;
		}
		if (c->read_pending) {
			c->read_pending = false;
			if (c->mask & LOOP_READ) {
				conn_on_read(l, c->fd, c);
				if (c->dead)
					continue;
			}
		}
		if (c->cancel_rest) {
			c->cancel_rest = false;
			conn_cancel_queue(c);
		}
		conn_flush(c);
		conn_resume(c);
	}
	/* Free what no list refers to any more. */
	pp = &s->dead;
	while ((c = *pp) != NULL) {
		if (c->pending) {
			pp = &c->dnext;
			continue;
		}
		*pp = c->dnext;
		conn_free(c);
	}
	if (s->dead != NULL && s->kick_id == 0)
		s->kick_id = loop_timer_add(s->loop, 0, kick_fn, s);
	return LOOP_TIMER_DONE;
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

/* Closes the socket and cancels held requests. Only from the server's own callbacks. */
static void
conn_close(struct conn *c)
{
	struct http_server *s = c->s;

	if (c->dead)
		return;
	c->dead = true;
	if (c->mask)
		loop_fd_del(s->loop, c->fd, c->mask);
	c->mask = 0;
	c->tp->close(c->tctx, c->fd);
	c->fd = -1;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	s->st.conns_open--;
	if (c->cur != NULL) {
		req_recycle(s, c->cur);
		c->cur = NULL;
	}
	conn_cancel_queue(c);
	c->dnext = s->dead;
	s->dead = c;
	if (s->kick_id == 0)
		s->kick_id = loop_timer_add(s->loop, 0, kick_fn, s);
}

static void conn_on_write(struct loop *l, int fd, void *arg);

/* Whether the next request may be parsed and handed over. */
static bool
can_dispatch(const struct conn *c)
{
	return !c->stop_parsing && !c->dead && !c->broken &&
		c->nq < c->s->lim.pipeline_max && buf_avail(&c->out) < c->s->lim.write_bytes_max;
}

static size_t
in_bytes_max(const struct http_server *s)
{
	return s->lim.header_bytes_max + s->lim.body_bytes_max + s->lim.read_bytes_max;
}

static void
conn_update_mask(struct conn *c)
{
	struct http_server *s = c->s;
	int want = 0;

	if (c->dead)
		return;
	if (!c->eof && (c->lingering || c->stop_parsing || buf_avail(&c->in) < in_bytes_max(s)))
		want |= LOOP_READ;
	if (c->read_wants_write || buf_avail(&c->out) > 0)
		want |= LOOP_WRITE;
	if (c->write_wants_read)
		want |= LOOP_READ;
	if ((want & ~c->mask) != 0) {
		if (loop_fd_add(s->loop, c->fd, want & ~c->mask,
			(want & ~c->mask & LOOP_READ) ? conn_on_read : conn_on_write, c) < 0) {
			conn_break(c);
			return;
		}
		/* loop_fd_add keeps one handler per direction: set both if both were added. */
		if ((want & ~c->mask) == (LOOP_READ | LOOP_WRITE))
			loop_fd_add(s->loop, c->fd, LOOP_WRITE, conn_on_write, c);
	}
	if ((c->mask & ~want) != 0)
		loop_fd_del(s->loop, c->fd, c->mask & ~want);
	c->mask = want;
	/* Input a transport (TLS) already decrypted raises no fd event: read it from the kick. */
	if ((want & LOOP_READ) && c->tp->pending != NULL && !c->read_pending && c->tp->pending(c->tctx)) {
		c->read_pending = true;
		conn_mark_pending(c);
	}
}

static void
conn_flush(struct conn *c)
{
	struct http_server *s = c->s;
	size_t budget = s->lim.write_bytes_max;

	if (c->dead)
		return;
	c->write_wants_read = false;
	while (buf_avail(&c->out) > 0 && budget > 0) {
		size_t n = buf_avail(&c->out);
		int want = LOOP_WRITE;
		ssize_t w;

		if (n > budget)
			n = budget;
		w = c->tp->write(c->tctx, c->fd, buf_head(&c->out), n, &want);
		if (w == -ERR_AGAIN) {
			if (want == LOOP_READ)
				c->write_wants_read = true;
			break;
		}
		if (w < 0) {
			conn_close(c);
			return;
		}
		buf_consume(&c->out, (size_t)w);
		budget -= (size_t)w;
		c->last_write_ms = loop_now_ms(s->loop);
	}
	if (buf_avail(&c->out) == 0) {
		if (c->out.cap > BUF_KEEP_BYTES)
			buf_free(&c->out);
		if (c->close_after_flush && c->q_head == NULL && !c->lingering) {
			conn_start_linger(c);
			return;
		}
	}
	conn_update_mask(c);
}

/* ------------------------------------------------------------------ */
/* Writing responses                                                   */
/* ------------------------------------------------------------------ */

static const char *
date_line(struct http_server *s)
{
	int64_t now = (int64_t)(time_real_ms() / 1000);

	if (now != s->date_sec) {
		memcpy(s->date_line, "Date: ", 6);
		http_date(s->date_line + 6, now);
		memcpy(s->date_line + 35, "\r\n", 3);
		s->date_sec = now;
	}
	return s->date_line;
}

static bool
status_has_body(int status)
{
	return !(status < 200 || status == 204 || status == 304);
}

/* Output is over its limit: the reader is too slow. */
static bool
out_over(struct sreq *r, size_t adding)
{
	struct conn *c = r->c;
	const struct buf *b = r->use_pend ? &r->pend : &c->out;

	return buf_avail(b) > 0 && buf_avail(b) + adding > c->s->lim.out_bytes_max;
}

static void
cut_slow(struct conn *c)
{
	c->s->st.cut_slow++;
	conn_break(c);
}

/* Appends n1+n2 bytes to where r's response goes, all or nothing. */
static int
emit2(struct sreq *r, const void *p1, size_t n1, const void *p2, size_t n2)
{
	struct conn *c = r->c;
	struct buf *b = r->use_pend ? &r->pend : &c->out;
	int rc;

	if (out_over(r, n1 + n2)) {
		cut_slow(c);
		return -ERR_LIMIT;
	}
	rc = buf_reserve(b, n1 + n2);
	if (rc < 0) {
		conn_break(c);
		return rc;
	}
	buf_append(b, p1, n1);
	if (n2 > 0)
		buf_append(b, p2, n2);
	if (!r->use_pend)
		conn_want_flush(c);
	return 0;
}

static bool
req_gone(const struct sreq *r)
{
	return r->c == NULL || r->c->dead || r->c->broken || r->c->eof;
}

/* Completes r: logs it and lets the queue move on. */
static void
req_done(struct sreq *r)
{
	struct conn *c = r->c;
	struct http_server *s = c->s;

	r->rs = RS_DONE;
	s->st.responses++;
	if (s->logfn != NULL && !r->internal)
		s->logfn(s->logarg, &r->pub, r->status, time_mono_us() - r->pub.start_us,
			r->body_bytes);
	if (c->q_head == r)
		queue_advance(c);
}

/* Moves a request that just became first in line onto the connection. */
static void
promote(struct sreq *r)
{
	struct conn *c = r->c;

	if (!r->use_pend)
		return;
	r->use_pend = false;
	if (buf_avail(&r->pend) > 0) {
		if (buf_append(&c->out, buf_head(&r->pend), buf_avail(&r->pend)) < 0)
			conn_break(c);
		conn_want_flush(c);
	}
	buf_trim(&r->pend);
}

static void
queue_advance(struct conn *c)
{
	struct http_server *s = c->s;
	struct sreq *r;

	while ((r = c->q_head) != NULL && r->rs == RS_DONE) {
		c->q_head = r->next;
		if (c->q_head == NULL)
			c->q_tail = NULL;
		c->nq--;
		if (r->held)
			s->st.requests_held--;
		r->held = false;
		if (r->close_after) {
			c->close_after_flush = true;
			c->stop_parsing = true;
		}
		if (r->in_handler)
			r->popped = true;
		else
			req_recycle(s, r);
		if (c->close_after_flush)
			break;
		if (c->q_head != NULL)
			promote(c->q_head);
	}
	if (c->close_after_flush && c->q_head != NULL) {
		c->cancel_rest = true;
		conn_mark_pending(c);
	} else if (c->q_head != NULL) {
		promote(c->q_head);
	}
	conn_want_flush(c);
}

/* Decimal digits of v at p (at most 20); returns their count. */
static int
fmt_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	for (int i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* The connection-level part of the head: Date, framing, Connection. */
static int
end_head(struct sreq *r, bool chunked, uint64_t len)
{
	struct http_server *s = r->c->s;
	char tmp[64];
	int n;

	if (buf_puts(&r->hbuf, date_line(s)) < 0)
		return -ERR_NOMEM;
	if (status_has_body(r->status)) {
		if (chunked && !r->raw_stream) {
			if (buf_puts(&r->hbuf, "Transfer-Encoding: chunked\r\n") < 0)
				return -ERR_NOMEM;
		} else if (!chunked) {
			memcpy(tmp, "Content-Length: ", 16);
			n = 16 + fmt_u64(tmp + 16, len);
			memcpy(tmp + n, "\r\n", 2);
			if (buf_append(&r->hbuf, tmp, (size_t)n + 2) < 0)
				return -ERR_NOMEM;
		}
	}
	if (r->close_after) {
		if (buf_puts(&r->hbuf, "Connection: close\r\n") < 0)
			return -ERR_NOMEM;
	} else if (r->pub.version_minor == 0) {
		if (buf_puts(&r->hbuf, "Connection: keep-alive\r\n") < 0)
			return -ERR_NOMEM;
	}
	return buf_puts(&r->hbuf, "\r\n");
}

int
http_resp_start(struct http_req *req, int status, const char *reason)
{
	struct sreq *r = (struct sreq *)req;
	char line[32];
	int n;

	if (r->rs != RS_NONE)
		return -ERR_STATE;
	if (status < 200 || status > 999)
		return -ERR_INVAL;
	if (req_gone(r))
		return -ERR_CLOSED;
	if (reason == NULL)
		reason = http_reason(status);
	buf_reset(&r->hbuf);
	memcpy(line, "HTTP/1.1 ", 9);
	line[7] = r->pub.version_minor == 0 ? '0' : '1';
	line[9] = (char)('0' + status / 100);
	line[10] = (char)('0' + status / 10 % 10);
	line[11] = (char)('0' + status % 10);
	line[12] = ' ';
	n = 13;
	if (buf_append(&r->hbuf, line, (size_t)n) < 0 || buf_puts(&r->hbuf, reason) < 0 ||
	    buf_puts(&r->hbuf, "\r\n") < 0) {
		buf_reset(&r->hbuf);
		return -ERR_NOMEM;
	}
	r->status = status;
	r->rs = RS_HEAD;
	return 0;
}

/* Field names are tokens; values must not break the head (no CR, LF, NUL). */
static bool
field_ok(const char *name, const char *value)
{
	if (*name == '\0')
		return false;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == ':' || *p == 0x7f || *p == '(' || *p == ')' ||
		    *p == ',' || *p == ';' || *p == '"' || *p == '/' || *p == '[' || *p == ']' ||
		    *p == '?' || *p == '=' || *p == '{' || *p == '}' || *p == '<' || *p == '>' ||
		    *p == '@' || *p == '\\')
			return false;
	for (const char *p = value; *p; p++)
		if (*p == '\r' || *p == '\n')
			return false;
	return true;
}

static bool
reserved_field(const char *name)
{
	return strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
		strcasecmp(name, "Connection") == 0 || strcasecmp(name, "Date") == 0;
}

int
http_resp_header(struct http_req *req, const char *name, const char *value)
{
	struct sreq *r = (struct sreq *)req;
	size_t len0 = r->hbuf.len;

	if (r->rs != RS_HEAD)
		return -ERR_STATE;
	if (!field_ok(name, value) || reserved_field(name))
		return -ERR_INVAL;
	if (buf_puts(&r->hbuf, name) < 0 || buf_puts(&r->hbuf, ": ") < 0 ||
	    buf_puts(&r->hbuf, value) < 0 || buf_puts(&r->hbuf, "\r\n") < 0) {
		r->hbuf.len = len0;
		return -ERR_NOMEM;
	}
	return 0;
}

int
http_resp_headerf(struct http_req *req, const char *name, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ERR_INVAL;
	if ((size_t)n < sizeof(small))
		return http_resp_header(req, name, small);
	char *big = mem_alloc((size_t)n + 1);
	if (big == NULL)
		return -ERR_NOMEM;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rc = http_resp_header(req, name, big);
	mem_free(big);
	return rc;
}

/* Ends a request whose answer could not be written: the connection closes. */
static int
fail_finish(struct sreq *r, int rc)
{
	r->close_after = true;
	buf_reset(&r->hbuf);
	buf_trim(&r->bbuf);
	req_done(r);
	return rc;
}

static int
finish_with_body(struct sreq *r, const void *p, size_t n)
{
	int rc;

	if (req_gone(r))
		return fail_finish(r, -ERR_CLOSED);
	if (!status_has_body(r->status))
		n = 0;
	rc = end_head(r, false, n);
	if (rc < 0)
		return fail_finish(r, rc);
	r->body_bytes = n;
	rc = emit2(r, buf_head(&r->hbuf), buf_avail(&r->hbuf), p, r->head_only ? 0 : n);
	buf_reset(&r->hbuf);
	if (rc < 0)
		return fail_finish(r, rc);
	req_done(r);
	return 0;
}

int
http_resp_body(struct http_req *req, const void *p, size_t n)
{
	struct sreq *r = (struct sreq *)req;

	if (r->rs != RS_HEAD)
		return -ERR_STATE;
	return finish_with_body(r, p, n);
}

struct buf *
http_resp_body_buf(struct http_req *req)
{
	struct sreq *r = (struct sreq *)req;

	if (r->rs != RS_HEAD)
		return NULL;
	r->rs = RS_BODYBUF;
	buf_reset(&r->bbuf);
	return &r->bbuf;
}

int
http_resp_finish(struct http_req *req)
{
	struct sreq *r = (struct sreq *)req;
	int rc;

	if (r->rs != RS_BODYBUF)
		return -ERR_STATE;
	rc = finish_with_body(r, buf_head(&r->bbuf), buf_avail(&r->bbuf));
	buf_trim(&r->bbuf);
	return rc;
}

int
http_resp_chunked(struct http_req *req)
{
	struct sreq *r = (struct sreq *)req;
	int rc;

	if (r->rs != RS_HEAD)
		return -ERR_STATE;
	if (req_gone(r))
		return -ERR_CLOSED;
	if (r->pub.version_minor == 0) {
		/* HTTP/1.0 has no chunking: the end of the body is the end of the connection. */
		r->raw_stream = true;
		r->close_after = true;
	}
	rc = end_head(r, true, 0);
	if (rc == 0)
		rc = emit2(r, buf_head(&r->hbuf), buf_avail(&r->hbuf), NULL, 0);
	buf_reset(&r->hbuf);
	if (rc < 0) {
		conn_break(r->c);
		return rc;
	}
	r->rs = RS_CHUNKED;
	return 0;
}

int
http_resp_chunk(struct http_req *req, const void *p, size_t n)
{
	struct sreq *r = (struct sreq *)req;
	char size[24];
	int sl, rc;

	if (r->rs != RS_CHUNKED)
		return -ERR_STATE;
	if (req_gone(r))
		return -ERR_CLOSED;
	if (n == 0 || r->head_only || !status_has_body(r->status))
		return 0;
	r->body_bytes += n;
	if (r->raw_stream)
		return emit2(r, p, n, NULL, 0);
	sl = snprintf(size, sizeof(size), "%zx\r\n", n);
	struct buf *b = r->use_pend ? &r->pend : &r->c->out;
	if (out_over(r, (size_t)sl + n + 2)) {
		cut_slow(r->c);
		return -ERR_LIMIT;
	}
	rc = buf_reserve(b, (size_t)sl + n + 2);
	if (rc < 0) {
		conn_break(r->c);
		return rc;
	}
	buf_append(b, size, (size_t)sl);
	buf_append(b, p, n);
	buf_append(b, "\r\n", 2);
	if (!r->use_pend)
		conn_want_flush(r->c);
	return 0;
}

int
http_resp_end(struct http_req *req)
{
	struct sreq *r = (struct sreq *)req;
	int rc = 0;

	if (r->rs != RS_CHUNKED)
		return -ERR_STATE;
	if (req_gone(r))
		return fail_finish(r, -ERR_CLOSED);
	if (!r->head_only && !r->raw_stream && status_has_body(r->status))
		rc = emit2(r, "0\r\n\r\n", 5, NULL, 0);
	if (rc < 0)
		return fail_finish(r, rc);
	req_done(r);
	return 0;
}

int
http_resp_simple(struct http_req *req, int status, const char *content_type,
	const void *body, size_t n)
{
	struct sreq *r = (struct sreq *)req;
	int rc;

	if (r->rs != RS_NONE)
		return -ERR_STATE;
	rc = http_resp_start(req, status, NULL);
	if (rc == 0 && content_type != NULL)
		rc = http_resp_header(req, "Content-Type", content_type);
	if (rc < 0)
		return fail_finish(r, rc);
	return http_resp_body(req, body, n);
}

bool
http_resp_will_close(const struct http_req *req)
{
	const struct sreq *r = (const struct sreq *)req;

	return r->close_after || (r->pub.version_minor == 0 && r->rs == RS_CHUNKED);
}

/* ------------------------------------------------------------------ */
/* Holding and aborting                                                */
/* ------------------------------------------------------------------ */

void
http_req_hold(struct http_req *req, http_req_close_fn *on_close, void *arg)
{
	struct sreq *r = (struct sreq *)req;

	if (r->rs == RS_DONE || r->held || on_close == NULL)
		return;
	r->held = true;
	r->on_close = on_close;
	r->close_arg = arg;
	r->c->s->st.requests_held++;
}

void
http_req_abort(struct http_req *req)
{
	struct sreq *r = (struct sreq *)req;
	struct conn *c = r->c;

	if (r->rs == RS_DONE)
		return;
	r->rs = RS_DONE;
	r->close_after = true;
	buf_reset(&r->hbuf);
	buf_trim(&r->bbuf);
	buf_trim(&r->pend);
	if (c->dead)
		return;
	c->s->st.responses++;
	if (c->q_head == r)
		queue_advance(c);
}

bool
http_req_gone(const struct http_req *req)
{
	return req_gone((const struct sreq *)req);
}

/* ------------------------------------------------------------------ */
/* Request accessors                                                   */
/* ------------------------------------------------------------------ */

const char *
http_req_header(const struct http_req *req, const char *name)
{
	const struct http_header *h = http_header_find(req->headers, req->nheaders, name);

	return h != NULL ? h->value : NULL;
}

static bool
param_match(const struct http_param *p, int src, const char *name, size_t len)
{
	return (p->src & src) != 0 && p->name_len == len && memcmp(p->name, name, len) == 0;
}

const struct http_param *
http_req_param(const struct http_req *req, int src, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < req->nparams; i++)
		if (param_match(&req->params[i], src, name, len))
			return &req->params[i];
	return NULL;
}

const struct http_param *
http_req_param_next(const struct http_req *req, const struct http_param *prev, int src)
{
	size_t i;

	if (prev == NULL || prev < req->params || prev >= req->params + req->nparams)
		return NULL;
	for (i = (size_t)(prev - req->params) + 1; i < req->nparams; i++)
		if ((req->params[i].src & src) != 0 && req->params[i].name_len == prev->name_len &&
		    memcmp(req->params[i].name, prev->name, prev->name_len) == 0)
			return &req->params[i];
	return NULL;
}

const char *
http_req_value(const struct http_req *req, int src, const char *name)
{
	const struct http_param *p = http_req_param(req, src, name);

	return p != NULL ? p->value : NULL;
}

size_t
http_req_param_count(const struct http_req *req, int src, const char *name)
{
	size_t len = strlen(name), n = 0;

	for (size_t i = 0; i < req->nparams; i++)
		if (param_match(&req->params[i], src, name, len))
			n++;
	return n;
}

/* ------------------------------------------------------------------ */
/* Reading requests                                                    */
/* ------------------------------------------------------------------ */

/* Queues an answer made by the server itself and stops reading requests. */
static void
conn_error(struct conn *c, int status)
{
	struct http_server *s = c->s;
	struct sreq *r;
	char body[64];
	int n;

	if (c->cur != NULL) {
		req_recycle(s, c->cur);
		c->cur = NULL;
	}
	c->stop_parsing = true;
	c->req_start_ms = 0;
	buf_reset(&c->in);
	if (status >= 400 && status < 500)
		s->st.errors_4xx++;
	r = req_get(c);
	if (r == NULL) {
		conn_break(c);
		return;
	}
	r->internal = true;
	r->close_after = true;
	r->pub.version_minor = 1;
	r->pub.start_us = time_mono_us();
	queue_push(c, r);
	/* Go answers these with the status as a plain-text body. */
	n = snprintf(body, sizeof(body), "%d %s", status, http_reason(status));
	if (http_resp_simple(&r->pub, status, "text/plain; charset=utf-8", body, (size_t)n) < 0 &&
	    r->rs != RS_DONE)
		http_req_abort(&r->pub);
}

/* Moves every pointer of r that points into [old, old + len) to base. */
static void
req_relocate(struct sreq *r, const char *old, size_t len, const char *base)
{
#define RELOC(p) do { \
		if ((p) >= old && (p) <= old + len) \
			(p) = base + ((p) - old); \
	} while (0)
	RELOC(r->pub.method);
	for (size_t i = 0; i < r->pub.nheaders; i++) {
		RELOC(r->hdrs[i].name);
		RELOC(r->hdrs[i].value);
	}
#undef RELOC
}

/* The head is complete in c->in: copy it into a request of its own. */
static int
req_take_head(struct conn *c, struct sreq *r, const struct http_head *h, size_t hl)
{
	struct http_server *s = c->s;
	const char *base = buf_head(&c->in);

	if (h->nheaders > r->hdrs_cap) {
		size_t cap = h->nheaders < 16 ? 16 : h->nheaders;
		struct http_header *nh = mem_realloc(r->hdrs, cap * sizeof(*nh));

		if (nh == NULL)
			return -ERR_NOMEM;
		r->hdrs = nh;
		r->hdrs_cap = cap;
	}
	buf_reset(&r->arena);
	if (buf_append(&r->arena, base, hl) < 0)
		return -ERR_NOMEM;
	if (h->nheaders > 0)
		memcpy(r->hdrs, s->scratch, h->nheaders * sizeof(*r->hdrs));
	r->pub.headers = r->hdrs;
	r->pub.nheaders = h->nheaders;
	r->pub.method = h->method;
	r->pub.method_id = h->method_id;
	r->pub.version_minor = h->version_minor;
	r->target_off = (size_t)(h->target - base);
	r->target_len = h->target_len;
	r->head_len = hl;
	req_relocate(r, base, hl, r->arena.data);
	r->head_only = h->method_id == HTTP_HEAD;
	r->close_after = !http_head_keep_alive(h);
	r->expect_continue = (h->flags & HTTP_HEAD_EXPECT_CONTINUE) && h->version_minor >= 1;
	return 0;
}

static bool
is_form(const struct sreq *r)
{
	const char *ct;
	size_t n = strlen("application/x-www-form-urlencoded");

	if (r->pub.method_id != HTTP_POST && r->pub.method_id != HTTP_PUT &&
	    r->pub.method_id != HTTP_PATCH)
		return false;
	ct = http_req_header(&r->pub, "Content-Type");
	if (ct == NULL || strncasecmp(ct, "application/x-www-form-urlencoded", n) != 0)
		return false;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

/*
 * Builds the handler's view: body copied after the head, path decoded,
 * parameters decoded. Returns 0, -ERR_PARSE (bad escape in the path: 400) or
 * -ERR_NOMEM.
 */
static int
req_build(struct sreq *r, const char *body, size_t body_len)
{
	const char *old = r->arena.data;
	size_t tlen = r->target_len, qoff, plen, qlen, need, np, nb = 0;
	char *t, *q, *path;
	bool form;
	ssize_t dl;
	size_t bad;
	int rc;

	form = body_len > 0 && is_form(r);
	need = body_len + 1 + tlen + 1 + HTTP_PARAMS_STORE(tlen) +
		(form ? HTTP_PARAMS_STORE(body_len) : 0);
	if (buf_reserve(&r->arena, need) < 0)
		return -ERR_NOMEM;
	if (r->arena.data != old)
		req_relocate(r, old, r->head_len, r->arena.data);

	/* Body right after the head, NUL-terminated. */
	r->pub.body = r->arena.data + r->arena.len;
	r->pub.body_len = body_len;
	buf_append(&r->arena, body, body_len);
	r->arena.data[r->arena.len++] = '\0';

	/* Target: skip scheme://authority of absolute-form, split at '?'. */
	t = r->arena.data + r->target_off;
	if (t[0] != '/' && !(tlen == 1 && t[0] == '*')) {
		char *p = strstr(t, "://");
		size_t skip = p != NULL ? (size_t)(p + 3 - t) : 0;

		while (skip < tlen && t[skip] != '/' && t[skip] != '?')
			skip++;
		t += skip;
		tlen -= skip;
	}
	q = memchr(t, '?', tlen);
	plen = q != NULL ? (size_t)(q - t) : tlen;
	qoff = q != NULL ? plen + 1 : tlen;
	qlen = tlen - qoff;
	t[plen] = '\0';
	r->pub.path_raw = t;
	r->pub.path_raw_len = plen;
	r->pub.query_raw = t + qoff;
	r->pub.query_raw_len = qlen;
	r->pub.has_query = q != NULL;

	path = r->arena.data + r->arena.len;
	dl = http_pct_decode(path, t, plen, false, &bad);
	if (dl < 0)
		return -ERR_PARSE;
	path[dl] = '\0';
	r->arena.len += (size_t)dl + 1;
	r->pub.path = path;
	r->pub.path_len = (size_t)dl;

	np = http_params_count(r->pub.query_raw, qlen) + (form ? http_params_count(r->pub.body, body_len) : 0);
	if (np > r->params_cap) {
		struct http_param *p = mem_realloc(r->params, np * sizeof(*p));

		if (p == NULL)
			return -ERR_NOMEM;
		r->params = p;
		r->params_cap = np;
	}
	r->form_err[0] = '\0';
	/* Body parameters first, like Go's Request.Form. */
	if (form) {
		rc = http_params_parse(r->pub.body, body_len, HTTP_SRC_BODY, &r->arena, r->params,
			r->params_cap, &nb, r->form_err);
		if (rc < 0)
			return rc;
	}
	if (qlen > 0) {
		char qerr[HTTP_PARAM_ERR_MAX];

		rc = http_params_parse(r->pub.query_raw, qlen, HTTP_SRC_QUERY, &r->arena, r->params,
			r->params_cap, &nb, qerr);
		if (rc < 0)
			return rc;
		if (r->form_err[0] == '\0')
			memcpy(r->form_err, qerr, sizeof(qerr));
	}
	r->pub.params = r->params;
	r->pub.nparams = nb;
	r->pub.form_error = r->form_err[0] != '\0' ? r->form_err : NULL;
	return 0;
}

static void
dispatch(struct conn *c, struct sreq *r)
{
	struct http_server *s = c->s;

	queue_push(c, r);
	if (r->close_after)
		c->stop_parsing = true;
	s->st.requests++;
	r->in_handler = true;
	s->handler(&r->pub, s->harg);
	r->in_handler = false;
	if (r->popped) {
		req_recycle(s, r);
		return;
	}
	if (r->rs == RS_DONE || r->held)
		return;
	/* The handler broke its contract: answer for it rather than hang the client. */
	if (r->rs == RS_NONE) {
		static const char msg[] = "500 Internal Server Error";

		http_resp_simple(&r->pub, 500, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
		if (r->popped)
			req_recycle(s, r);
	} else {
		http_req_abort(&r->pub);
	}
}

/* The body of c->cur is complete at buf_head(&c->in)[0 .. len); raw bytes used. */
static void
body_complete(struct conn *c, size_t len, size_t raw)
{
	struct sreq *r = c->cur;
	int rc;

	c->cur = NULL;
	rc = req_build(r, buf_head(&c->in), len);
	buf_consume(&c->in, raw);
	c->req_start_ms = 0;
	c->ps = PS_HEAD;
	if (rc < 0) {
		req_recycle(c->s, r);
		conn_error(c, rc == -ERR_NOMEM ? 500 : 400);
		return;
	}
	dispatch(c, r);
}

static void
conn_process(struct conn *c)
{
	struct http_server *s = c->s;

	while (!c->dead && !c->broken) {
		if (c->stop_parsing) {
			/* Nothing more will be served here: drop what the client sends. */
			buf_reset(&c->in);
			return;
		}
		if (c->ps == PS_HEAD) {
			struct http_head h;
			struct sreq *r;
			int hl;

			if (buf_avail(&c->in) == 0 || !can_dispatch(c))
				return;
			if (c->req_start_ms == 0)
				c->req_start_ms = loop_now_ms(s->loop);
			hl = http_parse_request_head(buf_head(&c->in), buf_avail(&c->in), &c->scanned,
				s->lim.header_bytes_max, &h, s->scratch, s->lim.headers_max);
			if (hl == -ERR_AGAIN)
				return;
			c->scanned = 0;
			if (hl < 0) {
				conn_error(c, h.err_status);
				return;
			}
			r = req_get(c);
			if (r == NULL || req_take_head(c, r, &h, (size_t)hl) < 0) {
				if (r != NULL)
					req_recycle(s, r);
				conn_error(c, 500);
				return;
			}
			r->pub.start_us = time_mono_us();
			buf_consume(&c->in, (size_t)hl);
			c->cur = r;
			if (h.flags & HTTP_HEAD_EXPECT_OTHER) {
				conn_error(c, 417);
				return;
			}
			if (h.content_length > 0 && (uint64_t)h.content_length > s->lim.body_bytes_max) {
				conn_error(c, 413);
				return;
			}
			if (h.flags & HTTP_HEAD_CHUNKED) {
				c->ps = PS_BODY_CHUNKED;
				http_chunked_init(&c->ck);
				c->ck_in = c->ck_out = 0;
			} else {
				c->ps = PS_BODY_CL;
				c->body_left = h.content_length > 0 ? (uint64_t)h.content_length : 0;
			}
			/* 100 Continue only when nothing is answered ahead of it. */
			if (r->expect_continue && c->q_head == NULL &&
			    (c->ps == PS_BODY_CHUNKED || c->body_left > 0) &&
			    (c->ps == PS_BODY_CHUNKED || buf_avail(&c->in) < c->body_left)) {
				if (buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n") < 0) {
					conn_error(c, 500);
					return;
				}
			}
		}
		if (c->ps == PS_BODY_CL) {
			if (buf_avail(&c->in) < c->body_left)
				return;
			body_complete(c, (size_t)c->body_left, (size_t)c->body_left);
		} else if (c->ps == PS_BODY_CHUNKED) {
			int rc = http_chunked_decode(&c->ck, buf_head(&c->in), &c->ck_in, buf_avail(&c->in),
				&c->ck_out, s->lim.body_bytes_max, s->lim.header_bytes_max);

			if (rc == 0)
				return;
			if (rc < 0) {
				conn_error(c, rc == -ERR_LIMIT ? 413 : 400);
				return;
			}
			body_complete(c, c->ck_out, c->ck_in);
		}
	}
}

/* The client closed its side (or reset). */
static void
conn_eof(struct conn *c)
{
	struct sreq *r;

	c->eof = true;
	for (r = c->q_head; r != NULL; r = r->next)
		if (r->rs != RS_DONE)
			break;
	/* Someone still waits on this client, or there is nothing left to send. */
	if (r != NULL || (buf_avail(&c->out) == 0 && c->q_head == NULL)) {
		conn_close(c);
		return;
	}
	c->stop_parsing = true;
	c->close_after_flush = true;
	conn_flush(c);
}

/* "127.0.0.1:51234" or "[::1]:51234". */
static void
peer_name(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else {
		snprintf(out, cap, "-");
	}
}

/*
 * A transport that failed says why (TLS: a refused certificate, a handshake
 * timeout). Go's server logs these ("http: TLS handshake error from ..."),
 * and operators need them to see why clients fail; plain resets stay quiet.
 */
static void
log_transport_error(const struct conn *c, int err)
{
	const char *msg = c->tp->errmsg(c->tctx);
	char peer[INET6_ADDRSTRLEN + 10];

	if (msg == NULL || *msg == '\0')
		return;
	peer_name(&c->peer, peer, sizeof(peer));
	if (err == -ERR_TLS || err == -ERR_TIMEOUT)
		log_info("http", "TLS error", "transport=%s remote=%s err=%s", c->tp->name, peer, log_q(msg));
	else
		log_debug("http", "connection error", "transport=%s remote=%s err=%s", c->tp->name, peer,
			log_q(msg));
}

static void
conn_on_read(struct loop *l, int fd, void *arg)
{
	struct conn *c = arg;
	struct http_server *s = c->s;
	size_t room;
	int want = LOOP_READ;
	ssize_t n;

	(void)l;
	(void)fd;
	if (c->dead)
		return;
	if (c->write_wants_read) {
		conn_flush(c);
		if (c->dead)
			return;
	}
	if (buf_reserve(&c->in, READ_RESERVE_BYTES < s->lim.read_bytes_max ?
		READ_RESERVE_BYTES : s->lim.read_bytes_max) < 0) {
		conn_close(c);
		return;
	}
	room = c->in.cap - c->in.len - 1;
	if (room > s->lim.read_bytes_max)
		room = s->lim.read_bytes_max;
	c->read_wants_write = false;
	n = c->tp->read(c->tctx, c->fd, c->in.data + c->in.len, room, &want);
	if (n == -ERR_AGAIN) {
		if (want == LOOP_WRITE)
			c->read_wants_write = true;
		conn_update_mask(c);
		return;
	}
	if (n < 0) {
		if (c->tp->errmsg != NULL)
			log_transport_error(c, (int)n);
		conn_close(c);
		return;
	}
	if (n == 0) {
		conn_eof(c);
		return;
	}
	c->last_active_ms = loop_now_ms(s->loop);
	if (c->lingering || c->stop_parsing) {
		buf_reset(&c->in);
		if (!c->lingering)
			conn_update_mask(c);
		return;
	}
	c->in.len += (size_t)n;
	c->in_io = true;
	conn_process(c);
	c->in_io = false;
	if (c->dead)
		return;
	/*
	 * Keep idle memory small: a held request needs no input buffer, but
	 * freeing it on every hold costs a large free/alloc pair per request
	 * (writes are held until the WAL sync), which dominated the server's
	 * profile under musl. So input buffers of held connections are dropped
	 * only once many requests are held at once (long-poll watchers).
	 */
	if (buf_avail(&c->in) == 0 && (c->in.cap > BUF_KEEP_BYTES ||
	    (c->nq > 0 && s->st.requests_held > HELD_KEEP_BUFFERS_MAX)))
		buf_free(&c->in);
	conn_flush(c);
}

static void
conn_on_write(struct loop *l, int fd, void *arg)
{
	struct conn *c = arg;

	(void)l;
	(void)fd;
	if (c->dead)
		return;
	if (c->read_wants_write) {
		conn_on_read(l, fd, arg);
		if (c->dead)
			return;
	}
	conn_flush(c);
	/* Output drained: requests held back by it can go now. */
	conn_resume(c);
}

/* ------------------------------------------------------------------ */
/* Timeouts                                                            */
/* ------------------------------------------------------------------ */

static uint64_t
sweep_interval(const struct http_server *s)
{
	uint64_t t = s->lim.header_read_ms < s->lim.idle_ms ? s->lim.header_read_ms : s->lim.idle_ms;

	t /= 8;
	if (t < 10)
		t = 10;
	if (t > 1000)
		t = 1000;
	return t;
}

static int64_t
sweep_fn(struct loop *l, uint64_t id, void *arg)
{
	struct http_server *s = arg;
	uint64_t now = loop_now_ms(l);
	struct conn *c, *next;

	(void)id;
	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		if (c->dead)
			continue;
		if (c->lingering) {
			if (now >= c->linger_until_ms)
				conn_close(c);
			continue;
		}
		if (buf_avail(&c->out) > 0) {
			/* The client stopped reading. */
			if (now - c->last_write_ms >= s->lim.idle_ms) {
				s->st.cut_slow++;
				conn_close(c);
			}
			continue;
		}
		if (c->req_start_ms != 0 && !c->stop_parsing &&
		    now - c->req_start_ms >= s->lim.header_read_ms) {
			conn_error(c, 408);
			conn_flush(c);
			continue;
		}
		if (c->nq == 0 && c->req_start_ms == 0 && buf_avail(&c->in) == 0 &&
		    now - c->last_active_ms >= s->lim.idle_ms)
			conn_close(c);
	}
	/* Dead connections are unlinked at once, so an empty list means idle. */
	next = s->conns;
	if (next == NULL) {
		s->sweep_id = 0;
		return LOOP_TIMER_DONE;
	}
	return (int64_t)sweep_interval(s);
}

/* ------------------------------------------------------------------ */
/* Accepting                                                           */
/* ------------------------------------------------------------------ */

static void
reject_busy(int fd, const struct http_transport *tp)
{
	static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\n"
		"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
		"Content-Length: 23\r\n\r\n503 Service Unavailable";

	/* A TLS client would read plain text as a broken record: just close. */
	if (tp != &http_transport_plain) {
		close(fd);
		return;
	}
	/* One try: a client that cannot take 150 bytes is not worth waiting for. */
	if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* nothing more to do */
	}
	close(fd);
}

static void
listener_on_read(struct loop *l, int lfd, void *arg)
{
	struct listener *ls = arg;
	struct http_server *s = ls->s;

	for (size_t i = 0; i < s->lim.accept_max; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct conn *c;
		int fd, one = 1;

		fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* EAGAIN: done; EMFILE and friends: try again next event. */
			break;
		}
		if (s->st.conns_open >= s->lim.conns_max) {
			s->st.conns_rejected++;
			reject_busy(fd, ls->tp);
			continue;
		}
		c = mem_calloc(1, sizeof(*c));
		if (c == NULL) {
			reject_busy(fd, ls->tp);
			continue;
		}
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->s = s;
		c->fd = fd;
		c->tp = ls->tp;
		c->peer = ss;
		c->last_active_ms = c->last_write_ms = loop_now_ms(l);
		if (c->tp->open != NULL && c->tp->open(ls->targ, l, fd, NULL, &c->tctx) < 0) {
			close(fd);
			mem_free(c);
			continue;
		}
		if (loop_fd_add(l, fd, LOOP_READ, conn_on_read, c) < 0) {
			c->tp->close(c->tctx, fd);
			mem_free(c);
			continue;
		}
		c->mask = LOOP_READ;
		c->next = s->conns;
		if (s->conns != NULL)
			s->conns->prev = c;
		s->conns = c;
		s->st.conns_open++;
		s->st.conns_accepted++;
		if (s->sweep_id == 0)
			s->sweep_id = loop_timer_add(l, sweep_interval(s), sweep_fn, s);
	}
}

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

struct http_server *
http_server_new(struct loop *l, const struct http_limits *lim, http_handler_fn *handler, void *arg)
{
	struct http_server *s;
	struct http_limits d;

	if (l == NULL || handler == NULL)
		return NULL;
	s = mem_calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	http_limits_default(&d);
	s->lim = d;
	if (lim != NULL) {
#define TAKE(f) if (lim->f != 0) s->lim.f = lim->f
		TAKE(header_bytes_max);
		TAKE(headers_max);
		TAKE(body_bytes_max);
		TAKE(conns_max);
		TAKE(pipeline_max);
		TAKE(header_read_ms);
		TAKE(idle_ms);
		TAKE(out_bytes_max);
		TAKE(read_bytes_max);
		TAKE(write_bytes_max);
		TAKE(accept_max);
#undef TAKE
	}
	s->scratch = mem_calloc(s->lim.headers_max, sizeof(*s->scratch));
	if (s->scratch == NULL) {
		mem_free(s);
		return NULL;
	}
	s->loop = l;
	s->handler = handler;
	s->harg = arg;
	s->date_sec = -1;
	return s;
}

/* targ (a TLS config) gets a reference of its own: the listener may outlive the server's. */
static int
add_listener(struct http_server *s, int fd, const struct http_transport *tp, void *targ)
{
	struct listener **v, *ls;

	v = mem_realloc(s->ls, (s->nls + 1) * sizeof(*v));
	if (v == NULL)
		return -ERR_NOMEM;
	s->ls = v;
	ls = mem_calloc(1, sizeof(*ls));
	if (ls == NULL)
		return -ERR_NOMEM;
	ls->s = s;
	ls->fd = fd;
	ls->tp = tp;
	if (loop_fd_add(s->loop, fd, LOOP_READ, listener_on_read, ls) < 0) {
		mem_free(ls);
		return -ERR_IO;
	}
	if (targ != NULL)
		ls->targ = tls_config_ref(targ);
	v[s->nls++] = ls;
	return 0;
}

void
http_server_stop_listening(struct http_server *s)
{
	struct listener **v = s->ls;

	for (size_t i = 0; i < s->nls; i++) {
		loop_fd_del(s->loop, v[i]->fd, LOOP_READ);
		close(v[i]->fd);
		if (v[i]->targ != NULL)
			tls_config_free(v[i]->targ);
		mem_free(v[i]);
	}
	mem_free(s->ls);
	s->ls = NULL;
	s->nls = 0;
}

void
http_server_free(struct http_server *s)
{
	struct conn *c;

	if (s == NULL)
		return;
	http_server_stop_listening(s);
	while ((c = s->conns) != NULL)
		conn_close(c);
	while ((c = s->dead) != NULL) {
		s->dead = c->dnext;
		conn_free(c);
	}
	if (s->sweep_id != 0)
		loop_timer_del(s->loop, s->sweep_id);
	if (s->kick_id != 0)
		loop_timer_del(s->loop, s->kick_id);
	while (s->pool != NULL) {
		struct sreq *r = s->pool;

		s->pool = r->next;
		req_free(r);
	}
	tls_config_free(s->tls);
	mem_free(s->scratch);
	mem_free(s);
}

int
http_server_set_tls(struct http_server *s, struct tls_config *cfg)
{
	if (cfg != NULL && !tls_config_is_server(cfg)) {
		snprintf(s->errmsg, sizeof(s->errmsg), "tls: a client config cannot serve https");
		return -ERR_INVAL;
	}
	tls_config_free(s->tls);
	s->tls = cfg != NULL ? tls_config_ref(cfg) : NULL;
	return 0;
}

const char *
http_server_errmsg(const struct http_server *s)
{
	return s->errmsg;
}

void
http_server_set_log(struct http_server *s, http_log_fn *fn, void *arg)
{
	s->logfn = fn;
	s->logarg = arg;
}

void
http_server_stats(const struct http_server *s, struct http_server_stats *out)
{
	*out = s->st;
}

int
http_listen_fd(struct http_server *s, int fd)
{
	int fl = fcntl(fd, F_GETFL);
	int rc;

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		snprintf(s->errmsg, sizeof(s->errmsg), "listen fd %d: %s", fd, http_errno_str(errno));
		return -ERR_IO;
	}
	rc = add_listener(s, fd, &http_transport_plain, NULL);
	if (rc < 0)
		snprintf(s->errmsg, sizeof(s->errmsg), "listen fd %d: %s", fd, err_str(rc));
	return rc;
}

/* One socket bound to ss; returns the fd or -ERR_xxx with errmsg set. */
static int
listen_one(struct http_server *s, const char *url, const struct sockaddr_storage *ss,
	socklen_t sl, const char *hostport)
{
	int fd, one = 1;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(s->errmsg, sizeof(s->errmsg), "listen tcp %s: socket: %s", hostport,
			http_errno_str(errno));
		return errno == EAFNOSUPPORT ? -ERR_UNSUPPORTED : -ERR_IO;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::] must not take IPv4 too, so 0.0.0.0 and [::] can both be listed. */
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, sl) < 0) {
		int e = errno;

		snprintf(s->errmsg, sizeof(s->errmsg), "listen tcp %s: bind: %s", hostport, http_errno_str(e));
		close(fd);
		return e == EADDRNOTAVAIL || e == EAFNOSUPPORT ? -ERR_UNSUPPORTED : -ERR_IO;
	}
	/* SOMAXCONN is 128 in musl; the kernel caps the backlog at its own limit. */
	if (listen(fd, 4096) < 0) {
		snprintf(s->errmsg, sizeof(s->errmsg), "listen tcp %s: %s", hostport, http_errno_str(errno));
		close(fd);
		return -ERR_IO;
	}
	(void)url;
	return fd;
}

static int
bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static socklen_t
make_addr(struct sockaddr_storage *ss, int family, const char *ip, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		if (inet_pton(AF_INET, ip, &a->sin_addr) != 1)
			return 0;
		return sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1)
			return 0;
		return sizeof(*a);
	}
}

int
http_listen_url(struct http_server *s, const char *url, int *port)
{
	const struct http_transport *tp = &http_transport_plain;
	struct tls_config *targ = NULL;
	struct http_url u;
	struct sockaddr_storage ss;
	char hostport[300];
	socklen_t sl;
	int fd, rc, p;

	if (http_url_parse(url, &u) < 0) {
		snprintf(s->errmsg, sizeof(s->errmsg), "listen %s: malformed URL", url);
		return -ERR_PARSE;
	}
	if (u.tls) {
		if (s->tls == NULL) {
			snprintf(s->errmsg, sizeof(s->errmsg),
				"listen %s: https is not supported without a TLS config (cert and key files)", url);
			return -ERR_UNSUPPORTED;
		}
		tp = &tls_http_transport;
		targ = s->tls;
	}
	if (!u.port_given) {
		snprintf(s->errmsg, sizeof(s->errmsg), "listen %s: missing port in address", url);
		return -ERR_PARSE;
	}
	if (u.path[0] != '\0' && strcmp(u.path, "/") != 0) {
		snprintf(s->errmsg, sizeof(s->errmsg), "listen %s: URL must not contain a path", url);
		return -ERR_PARSE;
	}
	if (strcasecmp(u.host, "localhost") == 0) {
		/* 127.0.0.1 must work; ::1 is added when the host has IPv6. */
		snprintf(hostport, sizeof(hostport), "127.0.0.1:%u", u.port);
		sl = make_addr(&ss, AF_INET, "127.0.0.1", u.port);
		fd = listen_one(s, url, &ss, sl, hostport);
		if (fd < 0)
			return fd;
		p = bound_port(fd);
		rc = add_listener(s, fd, tp, targ);
		if (rc < 0) {
			close(fd);
			snprintf(s->errmsg, sizeof(s->errmsg), "listen %s: %s", url, err_str(rc));
			return rc;
		}
		snprintf(hostport, sizeof(hostport), "[::1]:%d", p);
		sl = make_addr(&ss, AF_INET6, "::1", (uint16_t)p);
		fd = listen_one(s, url, &ss, sl, hostport);
		if (fd >= 0 && add_listener(s, fd, tp, targ) < 0)
			close(fd);
		s->errmsg[0] = '\0';
		if (port != NULL)
			*port = p;
		return 0;
	}
	if (u.ipv6)
		snprintf(hostport, sizeof(hostport), "[%s]:%u", u.host, u.port);
	else
		snprintf(hostport, sizeof(hostport), "%s:%u", u.host, u.port);
	sl = make_addr(&ss, u.ipv6 ? AF_INET6 : AF_INET, u.host, u.port);
	if (sl == 0) {
		snprintf(s->errmsg, sizeof(s->errmsg),
			"listen %s: host must be an IP address or localhost", url);
		return -ERR_INVAL;
	}
	fd = listen_one(s, url, &ss, sl, hostport);
	if (fd < 0)
		return fd;
	p = bound_port(fd);
	rc = add_listener(s, fd, tp, targ);
	if (rc < 0) {
		close(fd);
		snprintf(s->errmsg, sizeof(s->errmsg), "listen %s: %s", url, err_str(rc));
		return rc;
	}
	if (port != NULL)
		*port = p;
	return 0;
}
