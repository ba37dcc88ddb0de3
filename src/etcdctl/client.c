/*
 * etcdctl's HTTP side: URLs built as Go's net/url builds them, endpoint
 * handling, and the request loop of client/v2's httpClusterClient (try the
 * endpoints in turn from the pinned one, move on after a transport error or
 * a 5xx, pin the one that answered; header timeout per request, total
 * timeout per API call; cURL lines for --debug).
 *
 * All requests of one run share one http_sync, so the member-list sync and
 * the command's own request reuse one keep-alive connection. It must never
 * retry a one-shot request (create, delete) on another endpoint, and never
 * wait past the caller's deadline.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/etcdctl.h"
#include "corebox/http.h"
#include "corebox/loop.h"
#include "corebox/mem.h"

/* ------------------------------------------------------------------ */
/* URL encoding                                                        */
/* ------------------------------------------------------------------ */

static const char hexdig[] = "0123456789ABCDEF";

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '-' || c == '_' || c == '.' || c == '~';
}

int
ctl_url_escape_path(struct buf *b, const char *s, size_t len)
{
	int rc = 0;

	for (size_t i = 0; i < len && rc == 0; i++) {
		unsigned char c = (unsigned char)s[i];

		/* Go's shouldEscape(c, encodePath): only '?' of the reserved set is escaped. */
		if (is_unreserved(c) || c == '$' || c == '&' || c == '+' || c == ',' || c == '/' ||
		    c == ':' || c == ';' || c == '=' || c == '@')
			rc = buf_putc(b, (char)c);
		else
			rc = buf_printf(b, "%%%c%c", hexdig[c >> 4], hexdig[c & 15]);
	}
	return rc;
}

int
ctl_url_escape_query(struct buf *b, const char *s, size_t len)
{
	int rc = 0;

	for (size_t i = 0; i < len && rc == 0; i++) {
		unsigned char c = (unsigned char)s[i];

		if (is_unreserved(c))
			rc = buf_putc(b, (char)c);
		else if (c == ' ')
			rc = buf_putc(b, '+');
		else
			rc = buf_printf(b, "%%%c%c", hexdig[c >> 4], hexdig[c & 15]);
	}
	return rc;
}

/* Go's path.Clean of p (len bytes) appended to b. */
static int
path_clean(struct buf *b, const char *p, size_t len)
{
	size_t start = b->len, r = 0, dotdot;
	bool rooted = len > 0 && p[0] == '/';
	int rc;

	if (len == 0)
		return buf_putc(b, '.');
	rc = buf_reserve(b, len + 1);
	if (rc < 0)
		return rc;
	if (rooted) {
		b->data[b->len++] = '/';
		r = 1;
	}
	dotdot = b->len - start;
	while (r < len) {
		if (p[r] == '/') {
			r++;
		} else if (p[r] == '.' && (r + 1 == len || p[r + 1] == '/')) {
			r++;
		} else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == len || p[r + 2] == '/')) {
			r += 2;
			if (b->len - start > dotdot) {
				/* Back up to the previous slash. */
				b->len--;
				while (b->len - start > dotdot && b->data[b->len] != '/')
					b->len--;
			} else if (!rooted) {
				if (b->len - start > 0)
					b->data[b->len++] = '/';
				b->data[b->len++] = '.';
				b->data[b->len++] = '.';
				dotdot = b->len - start;
			}
		} else {
			if ((rooted && b->len - start != 1) || (!rooted && b->len - start != 0))
				b->data[b->len++] = '/';
			for (; r < len && p[r] != '/'; r++)
				b->data[b->len++] = p[r];
		}
	}
	if (b->len == start)
		b->data[b->len++] = '.';
	b->data[b->len] = '\0';
	return 0;
}

int
ctl_url_canonical_path(struct buf *b, const char *p, size_t len)
{
	struct buf t = BUF_INIT;
	size_t start = b->len;
	int rc;

	if (len == 0)
		return buf_putc(b, '/');
	if (p[0] != '/')
		rc = buf_putc(&t, '/');
	else
		rc = 0;
	if (rc == 0)
		rc = buf_append(&t, p, len);
	if (rc == 0)
		rc = path_clean(b, buf_head(&t), buf_avail(&t));
	if (rc == 0 && p[len - 1] == '/' && !(b->len - start == 1 && b->data[start] == '/'))
		rc = buf_putc(b, '/');
	buf_free(&t);
	return rc;
}

int
ctl_url_join_path(struct buf *out, const char *a, const char *b)
{
	struct buf t = BUF_INIT;
	int rc = 0;

	if (a[0] != '\0')
		rc = buf_puts(&t, a);
	if (rc == 0 && b[0] != '\0') {
		if (a[0] != '\0')
			rc = buf_putc(&t, '/');
		if (rc == 0)
			rc = buf_puts(&t, b);
	}
	if (rc == 0 && buf_avail(&t) > 0)
		rc = path_clean(out, buf_head(&t), buf_avail(&t));
	buf_free(&t);
	return rc;
}

void
ctl_params_setn(struct ctl_params *ps, const char *name, const char *value, size_t len)
{
	for (size_t i = 0; i < ps->n; i++) {
		if (strcmp(ps->p[i].name, name) == 0) {
			ps->p[i].value = value;
			ps->p[i].len = len;
			return;
		}
	}
	if (ps->n < CTL_PARAMS_MAX) {
		ps->p[ps->n].name = name;
		ps->p[ps->n].value = value;
		ps->p[ps->n].len = len;
		ps->n++;
	}
}

void
ctl_params_set(struct ctl_params *ps, const char *name, const char *value)
{
	ctl_params_setn(ps, name, value, strlen(value));
}

int
ctl_params_encode(struct buf *b, const struct ctl_params *ps)
{
	size_t order[CTL_PARAMS_MAX];
	int rc = 0;

	for (size_t i = 0; i < ps->n; i++)
		order[i] = i;
	/* url.Values.Encode sorts by name. */
	for (size_t i = 1; i < ps->n; i++)
		for (size_t j = i; j > 0 && strcmp(ps->p[order[j - 1]].name, ps->p[order[j]].name) > 0; j--) {
			size_t t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (size_t i = 0; i < ps->n && rc == 0; i++) {
		const char *name = ps->p[order[i]].name;

		if (i > 0)
			rc = buf_putc(b, '&');
		if (rc == 0)
			rc = ctl_url_escape_query(b, name, strlen(name));
		if (rc == 0)
			rc = buf_putc(b, '=');
		if (rc == 0)
			rc = ctl_url_escape_query(b, ps->p[order[i]].value, ps->p[order[i]].len);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Endpoints                                                           */
/* ------------------------------------------------------------------ */

void
ctl_endpoint_free(struct ctl_endpoint *ep)
{
	mem_free(ep->str);
	mem_free(ep->scheme_host);
	mem_free(ep->path);
	memset(ep, 0, sizeof(*ep));
}

/* A URL scheme as RFC 3986 (and Go's getScheme) allows it. */
static size_t
scheme_len(const char *s)
{
	size_t i = 0;

	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	for (i = 1; s[i] != '\0' && s[i] != ':'; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '-' || c == '.'))
			return 0;
	}
	return s[i] == ':' ? i : 0;
}

int
ctl_endpoint_parse(const char *s, struct ctl_endpoint *ep, char *errmsg, size_t errlen)
{
	size_t sl = scheme_len(s);
	struct buf full = BUF_INIT, sh = BUF_INIT;
	const char *rest, *path;
	int rc = 0;

	memset(ep, 0, sizeof(*ep));
	if (sl == 0) {
		/* No scheme: url.Parse refuses a colon in the first segment. */
		size_t seg = strcspn(s, "/?#");

		if (memchr(s, ':', seg) != NULL) {
			snprintf(errmsg, errlen, "parse \"%s\": first path segment in URL cannot contain colon", s);
			return -ERR_PARSE;
		}
		if (s[0] == '\0') {
			snprintf(errmsg, errlen, "parse \"\": empty url");
			return -ERR_PARSE;
		}
		/* Without "//" Go keeps it as a path: "http:" + path, no host. */
		rc = buf_printf(&full, "http:%s", s);
		if (rc == 0)
			rc = buf_puts(&sh, "http:");
		path = s;
	} else {
		char scheme[32];

		if (sl >= sizeof(scheme)) {
			snprintf(errmsg, errlen, "parse \"%s\": invalid URI for request", s);
			return -ERR_PARSE;
		}
		/* Go lower-cases the scheme. */
		for (size_t i = 0; i < sl; i++)
			scheme[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
		scheme[sl] = '\0';
		rest = s + sl + 1;
		if (strncmp(rest, "//", 2) == 0) {
			size_t hl = strcspn(rest + 2, "/?#");

			rc = buf_printf(&sh, "%s://%.*s", scheme, (int)hl, rest + 2);
			path = rest + 2 + hl;
		} else {
			rc = buf_printf(&sh, "%s:", scheme);
			path = rest;
		}
		if (rc == 0)
			rc = buf_printf(&full, "%s%s", buf_cstr(&sh), path);
	}
	if (rc == 0) {
		size_t pl = strcspn(path, "?#");

		ep->str = buf_steal(&full, NULL);
		ep->scheme_host = buf_steal(&sh, NULL);
		ep->path = mem_strndup(path, pl);
		if (ep->str == NULL || ep->scheme_host == NULL || ep->path == NULL)
			rc = -ERR_NOMEM;
	}
	buf_free(&full);
	buf_free(&sh);
	if (rc < 0)
		ctl_endpoint_free(ep);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The client                                                          */
/* ------------------------------------------------------------------ */

void
ctl_result_free(struct ctl_result *r)
{
	mem_free(r->body);
	mem_free(r->index_hdr);
	mem_free(r->location);
	memset(r, 0, sizeof(*r));
}

static uint64_t
rand_next(uint64_t *s)
{
	/* xorshift64*: only used to spread load over endpoints, as Go's shuffle does. */
	uint64_t x = *s;

	if (x == 0)
		x = 0x9e3779b97f4a7c15ULL;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

int
ctl_client_set_endpoints(struct ctl_client *cl, char **eps, size_t n, char *errmsg, size_t errlen)
{
	struct ctl_endpoint neps[CTL_ENDPOINTS_MAX];
	int rc = 0;

	if (n == 0) {
		snprintf(errmsg, errlen, "client: no endpoints available");
		return -ERR_INVAL;
	}
	if (n > CTL_ENDPOINTS_MAX) {
		snprintf(errmsg, errlen, "too many endpoints (at most %d)", CTL_ENDPOINTS_MAX);
		return -ERR_LIMIT;
	}
	for (size_t i = 0; i < n; i++) {
		rc = ctl_endpoint_parse(eps[i], &neps[i], errmsg, errlen);
		if (rc < 0) {
			for (size_t j = 0; j < i; j++)
				ctl_endpoint_free(&neps[j]);
			return rc;
		}
	}
	for (size_t i = 0; i < cl->neps; i++)
		ctl_endpoint_free(&cl->eps[i]);
	/* Fisher-Yates, as rand.Perm gives a uniform permutation. */
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(rand_next(&cl->rand_state) % i);
		struct ctl_endpoint t = neps[i - 1];

		neps[i - 1] = neps[j];
		neps[j] = t;
	}
	memcpy(cl->eps, neps, n * sizeof(neps[0]));
	cl->neps = n;
	cl->pinned = 0;
	return 0;
}

int
ctl_client_endpoints_str(struct buf *b, const struct ctl_client *cl, const char *sep)
{
	int rc = 0;

	for (size_t i = 0; i < cl->neps && rc == 0; i++) {
		if (i > 0)
			rc = buf_puts(b, sep);
		if (rc == 0)
			rc = buf_puts(b, cl->eps[i].str);
	}
	return rc;
}

void
ctl_client_free(struct ctl_client *cl)
{
	for (size_t i = 0; i < cl->neps; i++)
		ctl_endpoint_free(&cl->eps[i]);
	cl->neps = 0;
	if (cl->sync != NULL)
		http_sync_free(cl->sync);
	cl->sync = NULL;
	mem_free(cl->auth_header);
	cl->auth_header = NULL;
}

static void
cluster_add(struct ctl_err *e, bool conn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
cluster_add(struct ctl_err *e, bool conn, const char *fmt, ...)
{
	va_list ap;

	if (e->n >= CTL_CLUSTER_ERRS_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(e->cmsg[e->n], sizeof(e->cmsg[e->n]), fmt, ap);
	va_end(ap);
	e->cconn[e->n] = conn;
	e->n++;
}

/* Prints printcURL's line for one attempt. */
static void
print_curl(struct ctl_client *cl, const struct ctl_request *rq, const char *url)
{
	struct buf *b = cl->err_out;

	if (!cl->debug || b == NULL)
		return;
	buf_printf(b, "cURL Command: curl -X %s %s", rq->method, url);
	if (rq->body != NULL) {
		buf_puts(b, " -d ");
		ctl_quote(b, rq->body, rq->body_len);
	}
	buf_putc(b, '\n');
}

static char *
dup_header(const struct http_result *hr, const char *name)
{
	const char *v = http_result_header(hr, name);

	return v != NULL ? mem_strdup(v) : NULL;
}

enum attempt {
	ATT_OK,
	ATT_FAIL,      /* this endpoint failed: e holds why (one cluster entry) */
	ATT_DEADLINE,  /* the total deadline passed */
	ATT_NOMEM,
};

/* One endpoint, following redirects (redirectFollowingHTTPClient). */
static enum attempt
attempt_one(struct ctl_client *cl, const struct ctl_request *rq, const struct ctl_endpoint *ep,
	uint64_t deadline_ms, struct ctl_result *res, char *why, size_t whylen, bool *conn)
{
	struct buf url = BUF_INIT;
	struct http_header hdrs[2];
	size_t nh = 0;
	enum attempt out = ATT_FAIL;

	if (rq->build_url(&url, ep, rq->arg) < 0) {
		buf_free(&url);
		return ATT_NOMEM;
	}
	if (rq->content_type != NULL) {
		hdrs[nh].name = "Content-Type";
		hdrs[nh].name_len = 12;
		hdrs[nh].value = rq->content_type;
		hdrs[nh].value_len = strlen(rq->content_type);
		nh++;
	}
	if (cl->auth_header != NULL) {
		hdrs[nh].name = "Authorization";
		hdrs[nh].name_len = 13;
		hdrs[nh].value = cl->auth_header;
		hdrs[nh].value_len = strlen(cl->auth_header);
		nh++;
	}
	for (int redirects = 0;; redirects++) {
		struct http_call_spec spec;
		struct http_result hr;
		uint64_t now = time_mono_ms(), timeout = 0;
		bool by_deadline = false;
		int rc;

		if (redirects > CTL_REDIRECTS_MAX) {
			snprintf(why, whylen, "client: too many redirects");
			*conn = false;
			break;
		}
		print_curl(cl, rq, buf_cstr(&url));
		if (deadline_ms != 0) {
			if (now >= deadline_ms) {
				out = ATT_DEADLINE;
				break;
			}
			timeout = deadline_ms - now;
			by_deadline = true;
		}
		if (!rq->wait && cl->header_timeout_ns > 0) {
			uint64_t h = (uint64_t)(cl->header_timeout_ns / 1000000);

			if (h == 0)
				h = 1;
			if (timeout == 0 || h < timeout) {
				timeout = h;
				by_deadline = false;
			}
		}
		memset(&spec, 0, sizeof(spec));
		spec.method = rq->method;
		spec.url = buf_cstr(&url);
		spec.headers = hdrs;
		spec.nheaders = nh;
		spec.body = rq->body;
		spec.body_len = rq->body_len;
		spec.has_body = rq->body != NULL;
		spec.timeout_ms = timeout;
		rc = http_fetch(cl->sync, &spec, &hr);
		if (rc < 0) {
			if (rc == -ERR_TIMEOUT && by_deadline) {
				out = ATT_DEADLINE;
			} else if (rc == -ERR_TIMEOUT) {
				snprintf(why, whylen, "client: endpoint %s exceeded header timeout", ep->str);
				*conn = false;
			} else if (rc == -ERR_NOMEM) {
				out = ATT_NOMEM;
			} else if (rc == -ERR_CLOSED && strncmp(hr.errmsg, "net/http: server closed", 23) == 0) {
				/* Go's transport says io.EOF for a new connection closed
				 * before any answer; it is not a connection error to etcdctl. */
				snprintf(why, whylen, "EOF");
				*conn = false;
			} else {
				snprintf(why, whylen, "%s", hr.errmsg);
				/* isConnectionError: dial and read failures (net.OpError), not TLS. */
				*conn = rc == -ERR_CONNECT || strncmp(hr.errmsg, "dial ", 5) == 0 ||
					strncmp(hr.errmsg, "read ", 5) == 0;
			}
			http_result_free(&hr);
			break;
		}
		if (hr.status / 100 == 3) {
			const char *loc = http_result_header(&hr, "Location");

			if (loc == NULL || loc[0] == '\0') {
				snprintf(why, whylen, "location header not set");
				*conn = false;
				http_result_free(&hr);
				break;
			}
			buf_reset(&url);
			if (buf_puts(&url, loc) < 0) {
				http_result_free(&hr);
				out = ATT_NOMEM;
				break;
			}
			http_result_free(&hr);
			continue;
		}
		res->status = hr.status;
		res->body = hr.body;
		res->body_len = hr.body_len;
		hr.body = NULL;
		res->index_hdr = dup_header(&hr, "X-Etcd-Index");
		http_result_free(&hr);
		out = ATT_OK;
		break;
	}
	buf_free(&url);
	return out;
}

int
ctl_client_do(struct ctl_client *cl, const struct ctl_request *rq, uint64_t deadline_ms,
	struct ctl_result *res, struct ctl_err *e)
{
	size_t n = cl->neps;

	memset(res, 0, sizeof(*res));
	ctl_err_free(e);
	e->kind = CTL_E_CLUSTER;
	e->n = 0;
	if (n == 0) {
		ctl_err_msg(e, false, "client: no endpoints available");
		return -1;
	}
	if (cl->sync == NULL) {
		cl->sync = http_sync_new();
		if (cl->sync == NULL) {
			ctl_err_msg(e, false, "out of memory");
			return -1;
		}
	}
	for (size_t i = cl->pinned; i < cl->pinned + n; i++) {
		size_t k = i % n;
		char why[CTL_ERR_TEXT_BYTES];
		bool conn = false;
		enum attempt a;

		a = attempt_one(cl, rq, &cl->eps[k], deadline_ms, res, why, sizeof(why), &conn);
		if (a == ATT_DEADLINE) {
			ctl_result_free(res);
			ctl_err_msg(e, true, "context deadline exceeded");
			return -1;
		}
		if (a == ATT_NOMEM) {
			ctl_result_free(res);
			ctl_err_msg(e, false, "out of memory");
			return -1;
		}
		if (a == ATT_FAIL) {
			if (rq->one_shot) {
				ctl_err_msg(e, conn, "%s", why);
				return -1;
			}
			cluster_add(e, conn, "%s", why);
			continue;
		}
		if (res->status / 100 == 5) {
			const char *st = http_reason(res->status);

			if (res->status == 500 || res->status == 503)
				snprintf(why, sizeof(why), "client: etcd member %s has no leader", cl->eps[k].str);
			else
				snprintf(why, sizeof(why), "client: etcd member %s returns server error [%s]",
					cl->eps[k].str, st);
			ctl_result_free(res);
			if (rq->one_shot) {
				ctl_err_msg(e, false, "%s", why);
				return -1;
			}
			cluster_add(e, false, "%s", why);
			continue;
		}
		cl->pinned = k;
		e->kind = CTL_E_NONE;
		return 0;
	}
	return -1;
}
