/*
 * v2keys: the /v2/keys API as etcd 2.3 serves it (etcdhttp/client.go):
 * request parsing and validation with etcd's error codes and causes, the
 * dispatch of writes and quorum reads into the log, local reads, long-poll
 * and streaming watches, and the JSON answers with etcd's headers.
 *
 * It must never answer a write itself (server.c answers it once its entry
 * is applied), never let a client name the internal membership directory,
 * and never keep a watcher alive after its client went away.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/flags.h"
#include "corebox/http.h"
#include "corebox/loop.h"
#include "corebox/mem.h"
#include "corebox/store.h"
#include "corebox/tree.h"
#include "corebox/watch.h"

#define KEYS_PREFIX "/v2/keys"
#define KEYS_PREFIX_LEN 8

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

static void
common_headers(struct etcd_server *srv, struct http_req *req)
{
	store_cors_headers(srv, req);
	http_resp_header(req, "Content-Type", "application/json");
	http_resp_header(req, "X-Etcd-Cluster-Id", store_cluster_id_str(srv));
}

void
store_keys_error(struct etcd_server *srv, struct http_req *req, int code, const char *cause, size_t cause_len,
	uint64_t index)
{
	struct buf *b;

	http_resp_start(req, tree_error_status(code), NULL);
	common_headers(srv, req);
	http_resp_headerf(req, "X-Etcd-Index", "%" PRIu64, index);
	b = http_resp_body_buf(req);
	if (b == NULL || tree_error_json(b, code, cause, cause_len, index) != 0 || buf_putc(b, '\n') != 0) {
		http_req_abort(req);
		return;
	}
	http_resp_finish(req);
}

static void
keys_internal_error(struct etcd_server *srv, struct http_req *req, int rc)
{
	const char *msg = err_str(rc);

	store_keys_error(srv, req, TREE_E_RAFT_INTERNAL, msg, strlen(msg), 0);
}

static bool
event_is_created(const struct tree_event *ev)
{
	return ev->action == TREE_CREATE || (ev->action == TREE_SET && !ev->has_prev);
}

/* An event answer: status, etcd's four headers, the JSON and a newline. */
static void
write_event(struct etcd_server *srv, struct http_req *req, const struct tree_event *ev, bool no_value)
{
	struct buf *b;
	int rc;

	http_resp_start(req, event_is_created(ev) ? 201 : 200, NULL);
	common_headers(srv, req);
	http_resp_headerf(req, "X-Etcd-Index", "%" PRIu64, ev->etcd_index);
	http_resp_headerf(req, "X-Raft-Index", "%" PRIu64, store_raft_index(srv));
	http_resp_headerf(req, "X-Raft-Term", "%" PRIu64, store_raft_term(srv));
	b = http_resp_body_buf(req);
	if (b == NULL) {
		http_req_abort(req);
		return;
	}
	if (no_value && (ev->action == TREE_SET || ev->action == TREE_CAS || ev->action == TREE_CREATE ||
	    ev->action == TREE_UPDATE))
		rc = buf_printf(b, "{\"action\":\"%s\"}", tree_action_name(ev->action));
	else
		rc = tree_event_json(b, ev, store_now_ns(srv));
	if (rc == 0)
		rc = buf_putc(b, '\n');
	if (rc != 0) {
		http_req_abort(req);
		return;
	}
	http_resp_finish(req);
}

void
store_keys_answer(struct etcd_server *srv, struct http_req *req, struct store_result *res, bool no_value_on_success)
{
	if (res->rc != 0) {
		if (res->err.code != 0)
			store_keys_error(srv, req, res->err.code, res->err.cause, res->err.cause_len, res->err.index);
		else
			keys_internal_error(srv, req, res->rc);
		return;
	}
	if (res->is_get) {
		write_event(srv, req, &res->get, false);
		return;
	}
	if (res->ev != NULL) {
		write_event(srv, req, res->ev, no_value_on_success);
		return;
	}
	keys_internal_error(srv, req, -ERR_STATE);
}

/* ------------------------------------------------------------------ */
/* Watches                                                             */
/* ------------------------------------------------------------------ */

static int
watch_headers(struct etcd_server *srv, struct http_req *req, uint64_t etcd_index)
{
	http_resp_start(req, 200, NULL);
	common_headers(srv, req);
	http_resp_headerf(req, "X-Etcd-Index", "%" PRIu64, etcd_index);
	http_resp_headerf(req, "X-Raft-Index", "%" PRIu64, store_raft_index(srv));
	http_resp_headerf(req, "X-Raft-Term", "%" PRIu64, store_raft_term(srv));
	/* Go flushes the head at once so a long poll sees its headers. */
	return http_resp_chunked(req);
}

static void
watch_fired(void *arg, struct watcher *w, struct tree_event *ev)
{
	struct store_hold *h = arg;
	struct etcd_server *srv = h->srv;
	struct http_req *req = h->req;
	const struct buf *json;
	int rc;

	if (!h->stream)
		h->w = NULL; /* the hub frees a one-shot watcher after this call */
	if (req == NULL) {
		/* Cannot happen: a closed request cancels its watcher. */
		if (h->stream)
			watch_cancel(w);
		h->w = NULL;
		store_hold_done(h);
		return;
	}
	json = store_event_json_cached(srv, ev);
	rc = json != NULL ? http_resp_chunk(req, json->data, json->len) : -ERR_NOMEM;
	if (!h->stream) {
		if (rc == 0)
			http_resp_end(req);
		else
			http_req_abort(req);
		store_hold_done(h);
		return;
	}
	if (rc != 0) {
		/* A stream whose reader cannot keep up is cut, as etcd closes a
		 * watcher whose channel is full. */
		watch_cancel(w);
		h->w = NULL;
		http_req_abort(req);
		store_hold_done(h);
	}
}

static void
run_watch(struct etcd_server *srv, struct http_req *req, const struct store_keys_req *kr, struct store_hold *h)
{
	struct tree_error err = TREE_ERROR_INIT;
	struct tree_event *hit = NULL;
	struct watcher *w = NULL;
	bool fresh = h == NULL;
	int rc;

	if (fresh) {
		h = store_hold_new(srv, req, STORE_HOLD_WATCH);
		if (h == NULL) {
			keys_internal_error(srv, req, -ERR_NOMEM);
			return;
		}
	}
	h->stream = kr->stream;
	rc = watch_add(store_hub(srv), kr->key, kr->key_len, kr->recursive, kr->stream, kr->wait_index,
		tree_index(store_tree(srv)), watch_fired, h, &w, &hit, &err);
	if (rc != 0) {
		if (err.code != 0)
			store_keys_error(srv, req, err.code, err.cause, err.cause_len, err.index);
		else
			keys_internal_error(srv, req, rc);
		tree_error_free(&err);
		store_hold_done(h);
		return;
	}
	if (hit != NULL) {
		/* Answered from the history: one event. etcd then keeps a stream
		 * open with nothing more to send until the client leaves; so do
		 * we, at the cost of the connection only. */
		const struct buf *json = store_event_json_cached(srv, hit);
		bool ok;

		if (kr->stream) {
			h->w = NULL;
			h->kind = STORE_HOLD_WATCH;
			store_watch_link(h);
			if (fresh)
				http_req_hold(req, store_hold_closed, h);
		}
		ok = watch_headers(srv, req, tree_index(store_tree(srv))) == 0 && json != NULL &&
			http_resp_chunk(req, json->data, json->len) == 0;
		tree_event_unref(hit);
		if (kr->stream) {
			if (!ok) {
				http_req_abort(req);
				store_hold_done(h);
			}
			return;
		}
		if (ok)
			http_resp_end(req);
		else
			http_req_abort(req);
		store_hold_done(h);
		return;
	}
	h->w = w;
	h->kind = STORE_HOLD_WATCH;
	store_watch_link(h);
	if (fresh)
		http_req_hold(req, store_hold_closed, h);
	if (watch_headers(srv, req, watch_start_index(w)) != 0) {
		/* The client is already gone or cut off; its close callback
		 * cancels the watcher. */
		return;
	}
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */
/* ------------------------------------------------------------------ */

void
store_keys_run_read(struct etcd_server *srv, struct http_req *req, const struct store_keys_req *kr,
	struct store_hold *h)
{
	struct tree_event ev;
	struct tree_error err = TREE_ERROR_INIT;
	int rc;

	if (kr->wait) {
		run_watch(srv, req, kr, h);
		return;
	}
	rc = tree_get(store_tree(srv), kr->key, kr->key_len, kr->recursive, kr->sorted, &ev, &err);
	if (rc == 0)
		write_event(srv, req, &ev, false);
	else if (err.code != 0)
		store_keys_error(srv, req, err.code, err.cause, err.cause_len, err.index);
	else
		keys_internal_error(srv, req, rc);
	tree_error_free(&err);
	store_hold_done(h);
}

/* ------------------------------------------------------------------ */
/* Request parsing (etcd 2.3 parseKeyRequest, 3.4 additions)           */
/* ------------------------------------------------------------------ */

struct parse_err {
	int code;
	const char *cause;
	char buf[64];
};

/* Go's largest form body (net/http maxFormSize). */
#define FORM_BYTES_MAX (10u << 20)

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * The error Go 1.19's url.ParseQuery reports for s, or NULL: pairs are
 * split on '&' only, a pair holding ';' is an error (etcd 3.4 answers it;
 * etcd 2.3's older Go split on ';'), then the first bad escape, quoted as
 * strconv.Quote would.
 */
static const char *
go_query_error(const char *s, size_t n, char *buf, size_t bufsz)
{
	size_t i = 0;

	while (i < n) {
		size_t e = i;

		while (e < n && s[e] != '&')
			e++;
		if (memchr(s + i, ';', e - i) != NULL)
			return "invalid semicolon separator in query";
		for (size_t k = i; k < e; k++) {
			if (s[k] != '%' || (k + 2 < e && is_hex(s[k + 1]) && is_hex(s[k + 2])))
				continue;
			size_t l = e - k < 3 ? e - k : 3, o = 0;

			o += (size_t)snprintf(buf + o, bufsz - o, "invalid URL escape \"");
			for (size_t j = 0; j < l && o + 6 < bufsz; j++) {
				unsigned char c = (unsigned char)s[k + j];

				if (c == '"' || c == '\\')
					o += (size_t)snprintf(buf + o, bufsz - o, "\\%c", c);
				else if (c >= 0x20 && c < 0x7f)
					buf[o++] = (char)c;
				else
					o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", c);
			}
			snprintf(buf + o, bufsz - o, "\"");
			return buf;
		}
		i = e + 1;
	}
	return NULL;
}

/* Whether Go's ParseForm reads this request's body as a form. */
static bool
body_is_form(const struct http_req *req)
{
	const char *ct = http_req_header(req, "Content-Type");
	size_t l;

	if (req->method_id != HTTP_POST && req->method_id != HTTP_PUT && req->method_id != HTTP_PATCH)
		return false;
	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	l = strlen("application/x-www-form-urlencoded");
	if (strncasecmp(ct, "application/x-www-form-urlencoded", l) != 0)
		return false;
	ct += l;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* r.ParseForm()'s error as etcd 3.4 (Go 1.19) reports it, or NULL. */
static const char *
form_error(const struct http_req *req, char *buf, size_t bufsz)
{
	const char *e = NULL;

	if (body_is_form(req)) {
		if (req->body_len > FORM_BYTES_MAX)
			return "http: POST too large";
		e = go_query_error(req->body, req->body_len, buf, bufsz);
	}
	if (e == NULL && req->has_query)
		e = go_query_error(req->query_raw, req->query_raw_len, buf, bufsz);
	return e;
}

static bool
param_bool(const struct http_req *req, const char *name, bool *out, bool *present)
{
	const struct http_param *p = http_req_param(req, HTTP_SRC_FORM, name);
	int b = 0;

	*out = false;
	if (present != NULL)
		*present = p != NULL;
	if (p == NULL)
		return true;
	if (strlen(p->value) != p->value_len || flags_parse_bool(p->value, &b) != 0)
		return false;
	*out = b != 0;
	return true;
}

static bool
param_uint(const struct http_req *req, const char *name, uint64_t *out)
{
	const struct http_param *p = http_req_param(req, HTTP_SRC_FORM, name);

	*out = 0;
	if (p == NULL)
		return true;
	return store_parse_uint10(p->value, p->value_len, out) == 0;
}

static int
parse_keys(const struct http_req *req, struct store_keys_req *kr, struct parse_err *pe)
{
	static const struct {
		const char *name;
		size_t off;
		const char *cause;
	} bools[] = {
		{ "recursive", offsetof(struct store_keys_req, recursive), "invalid value for \"recursive\"" },
		{ "sorted", offsetof(struct store_keys_req, sorted), "invalid value for \"sorted\"" },
		{ "wait", offsetof(struct store_keys_req, wait), "invalid value for \"wait\"" },
		{ "dir", offsetof(struct store_keys_req, dir), "invalid value for \"dir\"" },
		{ "quorum", offsetof(struct store_keys_req, quorum), "invalid value for \"quorum\"" },
		{ "stream", offsetof(struct store_keys_req, stream), "invalid value for \"stream\"" },
	};
	const struct http_param *p;
	const char *v;

	memset(kr, 0, sizeof(*kr));
	kr->method = req->method_id;
	pe->cause = form_error(req, pe->buf, sizeof(pe->buf));
	if (pe->cause != NULL) {
		pe->code = TREE_E_INVALID_FORM;
		return -1;
	}
	kr->key = req->path + KEYS_PREFIX_LEN;
	kr->key_len = req->path_len - KEYS_PREFIX_LEN;
	if (!param_uint(req, "prevIndex", &kr->prev_index)) {
		pe->code = TREE_E_INDEX_NAN;
		pe->cause = "invalid value for \"prevIndex\"";
		return -1;
	}
	if (!param_uint(req, "waitIndex", &kr->wait_index)) {
		pe->code = TREE_E_INDEX_NAN;
		pe->cause = "invalid value for \"waitIndex\"";
		return -1;
	}
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
		if (!param_bool(req, bools[i].name, (bool *)((char *)kr + bools[i].off), NULL)) {
			pe->code = TREE_E_INVALID_FIELD;
			pe->cause = bools[i].cause;
			return -1;
		}
	if (kr->wait && req->method_id != HTTP_GET) {
		pe->code = TREE_E_INVALID_FIELD;
		pe->cause = "\"wait\" can only be used with GET requests";
		return -1;
	}
	p = http_req_param(req, HTTP_SRC_FORM, "prevValue");
	if (p != NULL) {
		if (p->value_len == 0) {
			pe->code = TREE_E_PREV_VALUE_REQUIRED;
			pe->cause = "\"prevValue\" cannot be empty";
			return -1;
		}
		kr->has_prev_value = true;
		kr->prev_value = p->value;
		kr->prev_value_len = p->value_len;
	}
	if (!param_bool(req, "noValueOnSuccess", &kr->no_value_on_success, NULL)) {
		pe->code = TREE_E_INVALID_FIELD;
		pe->cause = "invalid value for \"noValueOnSuccess\"";
		return -1;
	}
	p = http_req_param(req, HTTP_SRC_FORM, "ttl");
	if (p != NULL && p->value_len > 0) {
		if (store_parse_uint10(p->value, p->value_len, &kr->ttl_s) != 0) {
			pe->code = TREE_E_TTL_NAN;
			pe->cause = "invalid value for \"ttl\"";
			return -1;
		}
		kr->has_ttl = true;
	}
	if (!param_bool(req, "prevExist", &kr->prev_exist, &kr->prev_exist_set)) {
		pe->code = TREE_E_INVALID_FIELD;
		pe->cause = "invalid value for prevExist";
		return -1;
	}
	{
		bool present;

		if (!param_bool(req, "refresh", &kr->refresh, &present)) {
			pe->code = TREE_E_INVALID_FIELD;
			pe->cause = "invalid value for refresh";
			return -1;
		}
		if (present && kr->refresh) {
			p = http_req_param(req, HTTP_SRC_FORM, "value");
			if (p != NULL && p->value_len > 0) {
				pe->code = TREE_E_REFRESH_VALUE;
				pe->cause = "A value was provided on a refresh";
				return -1;
			}
			if (!kr->has_ttl) {
				pe->code = TREE_E_REFRESH_TTL_REQUIRED;
				pe->cause = "No TTL value set";
				return -1;
			}
		}
	}
	p = http_req_param(req, HTTP_SRC_FORM, "value");
	if (p != NULL) {
		kr->value = p->value;
		kr->value_len = p->value_len;
	} else {
		kr->value = "";
		kr->value_len = 0;
	}
	(void)v;
	return 0;
}

/*
 * etcd asks its auth store whether auth is enabled on every keys request
 * that parsed, by reading /2/enabled from the v2 store; the key exists only
 * once auth was turned on, so each request adds one to getsFail in
 * /v2/stats/store. The same read keeps those counters equal to etcd's.
 */
void
store_auth_probe(struct etcd_server *srv)
{
	static const char key[] = STORE_INTERNAL_DIR "/2/enabled";
	struct tree_event ev;
	struct tree_error err = TREE_ERROR_INIT;

	tree_get(store_tree(srv), key, sizeof(key) - 1, false, false, &ev, &err);
	tree_error_free(&err);
}

/* The key names the internal membership directory (or something in it)? */
static bool
key_is_internal(const char *k, size_t len)
{
	size_t i = 0;

	/* The path is already clean (the router redirected otherwise), so the
	 * first segment is exact. */
	while (i < len && k[i] == '/')
		i++;
	if (len - i < STORE_INTERNAL_DIR_LEN - 1)
		return false;
	if (memcmp(k + i, &STORE_INTERNAL_DIR[1], STORE_INTERNAL_DIR_LEN - 1) != 0)
		return false;
	return len - i == STORE_INTERNAL_DIR_LEN - 1 || k[i + STORE_INTERNAL_DIR_LEN - 1] == '/';
}

static size_t
key_depth(const char *k, size_t len)
{
	size_t depth = 0;

	for (size_t i = 0; i < len; i++)
		if (k[i] != '/' && (i == 0 || k[i - 1] == '/'))
			depth++;
	return depth;
}

static void
fill_proposal(const struct store_keys_req *kr, int64_t now, struct store_proposal *p)
{
	memset(p, 0, sizeof(*p));
	switch (kr->method) {
	case HTTP_POST: p->op = STORE_OP_POST; break;
	case HTTP_PUT: p->op = STORE_OP_PUT; break;
	case HTTP_DELETE: p->op = STORE_OP_DELETE; break;
	default: p->op = STORE_OP_QGET; break;
	}
	p->time_ns = now;
	p->path = kr->key;
	p->path_len = kr->key_len;
	if (p->op == STORE_OP_PUT || p->op == STORE_OP_POST) {
		p->value = kr->value;
		p->value_len = kr->value_len;
	}
	if (kr->dir)
		p->flags |= STORE_PF_DIR;
	if (kr->recursive)
		p->flags |= STORE_PF_RECURSIVE;
	if (kr->sorted)
		p->flags |= STORE_PF_SORTED;
	if (p->op == STORE_OP_PUT || p->op == STORE_OP_DELETE) {
		if (kr->prev_exist_set)
			p->flags |= STORE_PF_PREV_EXIST_SET | (kr->prev_exist ? STORE_PF_PREV_EXIST : 0);
		if (kr->has_prev_value) {
			p->flags |= STORE_PF_PREV_VALUE;
			p->prev_value = kr->prev_value;
			p->prev_value_len = kr->prev_value_len;
		}
		p->prev_index = kr->prev_index;
	}
	if (kr->refresh && p->op == STORE_OP_PUT)
		p->flags |= STORE_PF_REFRESH;
	if (kr->has_ttl && (p->op == STORE_OP_PUT || p->op == STORE_OP_POST)) {
		p->flags |= STORE_PF_TTL;
		p->ttl_s = kr->ttl_s;
	}
	if (p->op == STORE_OP_QGET)
		p->flags &= STORE_PF_RECURSIVE | STORE_PF_SORTED;
	if (p->op == STORE_OP_POST)
		p->flags &= STORE_PF_DIR | STORE_PF_TTL;
	if (p->op == STORE_OP_DELETE)
		p->flags &= STORE_PF_DIR | STORE_PF_RECURSIVE | STORE_PF_PREV_VALUE | STORE_PF_PREV_EXIST_SET |
			STORE_PF_PREV_EXIST;
}

void
store_keys_handle(struct etcd_server *srv, struct http_req *req)
{
	struct store_keys_req kr;
	struct parse_err pe;
	int rc;

	memset(&pe, 0, sizeof(pe));
	switch (req->method_id) {
	case HTTP_HEAD:
	case HTTP_GET:
	case HTTP_PUT:
	case HTTP_POST:
	case HTTP_DELETE:
		break;
	default:
		store_http_method_not_allowed(srv, req, "HEAD,GET,PUT,POST,DELETE");
		return;
	}
	if (parse_keys(req, &kr, &pe) != 0) {
		store_keys_error(srv, req, pe.code, pe.cause, strlen(pe.cause), 0);
		return;
	}
	store_auth_probe(srv);
	if (key_is_internal(kr.key, kr.key_len)) {
		/* Membership is not part of the key space, as /0 is not in etcd. */
		store_keys_error(srv, req, TREE_E_KEY_NOT_FOUND, kr.key, kr.key_len, tree_index(store_tree(srv)));
		return;
	}
	if (key_depth(kr.key, kr.key_len) > TREE_DEPTH_MAX) {
		store_keys_error(srv, req, TREE_E_INVALID_FIELD, "key is deeper than 256 levels",
			strlen("key is deeper than 256 levels"), 0);
		return;
	}
	if ((req->method_id == HTTP_GET && kr.quorum) || req->method_id == HTTP_PUT ||
	    req->method_id == HTTP_POST || req->method_id == HTTP_DELETE) {
		struct store_proposal p;

		/* A quorum GET is ordered by the log like a write (etcd turns
		 * it into a QGET proposal, ignoring wait). */
		fill_proposal(&kr, store_now_ns(srv), &p);
		rc = store_propose(srv, &p, 0, req, kr.no_value_on_success);
		if (rc != 0)
			keys_internal_error(srv, req, rc);
		return;
	}
	/* A read pipelined behind writes of its own connection must see them
	 * (Go's server handles one request per connection at a time). */
	if (store_conn_busy(srv, req)) {
		rc = store_defer_read(srv, req, &kr);
		if (rc == 0)
			return;
	}
	store_keys_run_read(srv, req, &kr, NULL);
}
