/*
 * v2misc: every client endpoint of etcd 2.3 that is not /v2/keys (/version,
 * /health, /v2/stats/{self,store,leader}, /v2/members, /v2/machines,
 * /metrics), the peer listener's endpoints (/members, /version, /raft), and
 * the behaviour of Go's ServeMux around them (path cleaning redirects, 404,
 * 405 with Allow) so that clients see the answers etcd gives.
 *
 * It only reads server state; it never changes the store, and answers that
 * would need Raft membership changes are refused with etcd's error format
 * rather than half-done.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/flags.h"
#include "corebox/http.h"
#include "corebox/json.h"
#include "corebox/log.h"
#include "corebox/mem.h"
#include "corebox/store.h"
#include "corebox/tree.h"
#include "corebox/watch.h"

/* Longest request path the router cleans on the stack; longer paths are
 * cleaned on the heap. */
#define ROUTE_PATH_STACK_BYTES 1024

/* ------------------------------------------------------------------ */
/* Go net/http answers                                                 */
/* ------------------------------------------------------------------ */

static void
plain_error(struct http_req *req, int status, const char *text)
{
	/* http.Error: text/plain, nosniff, the text and a newline. */
	struct etcd_server *srv = NULL;
	struct buf *b;

	(void)srv;
	http_resp_header(req, "Content-Type", "text/plain; charset=utf-8");
	http_resp_header(req, "X-Content-Type-Options", "nosniff");
	b = http_resp_body_buf(req);
	if (b == NULL || buf_puts(b, text) != 0 || buf_putc(b, '\n') != 0) {
		http_req_abort(req);
		return;
	}
	(void)status;
	http_resp_finish(req);
}

void
store_http_not_found(struct http_req *req)
{
	http_resp_start(req, 404, NULL);
	plain_error(req, 404, "404 page not found");
}

void
store_http_method_not_allowed(struct etcd_server *srv, struct http_req *req, const char *allow)
{
	http_resp_start(req, 405, NULL);
	if (srv != NULL)
		store_cors_headers(srv, req);
	http_resp_header(req, "Allow", allow);
	plain_error(req, 405, "Method Not Allowed");
}

/* httptypes.HTTPError.WriteTo: {"message":"..."} without a newline. */
void
store_http_error_json(struct http_req *req, int status, const char *message)
{
	struct buf *b;

	http_resp_start(req, status, NULL);
	http_resp_header(req, "Content-Type", "application/json");
	b = http_resp_body_buf(req);
	if (b == NULL || buf_puts(b, "{\"message\":") != 0 || json_escape_go(b, message, strlen(message)) != 0 ||
	    buf_putc(b, '}') != 0) {
		http_req_abort(req);
		return;
	}
	http_resp_finish(req);
}

static void
srv_error_json(struct etcd_server *srv, struct http_req *req, int status, const char *message)
{
	struct buf *b;

	http_resp_start(req, status, NULL);
	store_cors_headers(srv, req);
	http_resp_header(req, "Content-Type", "application/json");
	http_resp_header(req, "X-Etcd-Cluster-Id", store_cluster_id_str(srv));
	b = http_resp_body_buf(req);
	if (b == NULL || buf_puts(b, "{\"message\":") != 0 || json_escape_go(b, message, strlen(message)) != 0 ||
	    buf_putc(b, '}') != 0) {
		http_req_abort(req);
		return;
	}
	http_resp_finish(req);
}

static bool
allow(struct etcd_server *srv, struct http_req *req, const char *list)
{
	const char *p = list;
	size_t ml = strlen(req->method);

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t l = comma ? (size_t)(comma - p) : strlen(p);

		if (l == ml && memcmp(p, req->method, l) == 0)
			return true;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	http_resp_start(req, 405, NULL);
	if (srv != NULL)
		store_cors_headers(srv, req);
	http_resp_header(req, "Allow", list);
	plain_error(req, 405, "Method Not Allowed");
	return false;
}

static void
not_found(struct etcd_server *srv, struct http_req *req)
{
	http_resp_start(req, 404, NULL);
	if (srv != NULL)
		store_cors_headers(srv, req);
	plain_error(req, 404, "404 page not found");
}

/* Go's url escaping of a path (encodePath mode): unreserved bytes and
 * "$&+,/:;=@" stay, everything else is %XX. */
static int
escape_path(struct buf *b, const char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char c = (unsigned char)p[i];
		bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			strchr("-_.~$&+,/:;=@", c) != NULL;

		if (c != 0 && keep) {
			rc = buf_putc(b, (char)c);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			rc = buf_append(b, e, 3);
		}
	}
	return rc;
}

/* http.Redirect to the cleaned path, 301, as ServeMux does. */
static void
redirect_clean(struct etcd_server *srv, struct http_req *req, const char *clean, size_t clean_len)
{
	struct buf loc = BUF_INIT, *b;
	int rc = escape_path(&loc, clean, clean_len);

	if (rc == 0 && req->query_raw_len > 0)
		rc = buf_printf(&loc, "?%.*s", (int)req->query_raw_len, req->query_raw);
	if (rc != 0) {
		buf_free(&loc);
		http_req_abort(req);
		return;
	}
	http_resp_start(req, 301, NULL);
	if (srv != NULL)
		store_cors_headers(srv, req);
	http_resp_header(req, "Location", buf_cstr(&loc));
	if (req->method_id == HTTP_GET || req->method_id == HTTP_HEAD)
		http_resp_header(req, "Content-Type", "text/html; charset=utf-8");
	b = http_resp_body_buf(req);
	if (b == NULL) {
		buf_free(&loc);
		http_req_abort(req);
		return;
	}
	if (req->method_id == HTTP_GET) {
		buf_puts(b, "<a href=\"");
		for (size_t i = 0; i < loc.len; i++) {
			switch (loc.data[i]) {
			case '&': buf_puts(b, "&amp;"); break;
			case '<': buf_puts(b, "&lt;"); break;
			case '>': buf_puts(b, "&gt;"); break;
			case '"': buf_puts(b, "&#34;"); break;
			case '\'': buf_puts(b, "&#39;"); break;
			default: buf_putc(b, loc.data[i]); break;
			}
		}
		buf_puts(b, "\">Moved Permanently</a>.\n\n");
	}
	buf_free(&loc);
	http_resp_finish(req);
}

/*
 * ServeMux's canonical-path rule: a path that cleans to something else is
 * redirected. Returns true when it answered.
 */
static bool
route_clean(struct etcd_server *srv, struct http_req *req)
{
	char stack[ROUTE_PATH_STACK_BYTES];
	char *clean = stack;
	size_t n;
	bool differs;

	if (req->path_len + 2 > sizeof(stack)) {
		clean = mem_alloc(req->path_len + 2);
		if (clean == NULL) {
			http_req_abort(req);
			return true;
		}
	}
	n = store_clean_path(req->path, req->path_len, clean);
	differs = n != req->path_len || memcmp(clean, req->path, n) != 0;
	if (differs)
		redirect_clean(srv, req, clean, n);
	if (clean != stack)
		mem_free(clean);
	return differs;
}

static bool
path_is(const char *p, size_t n, const char *want)
{
	size_t wl = strlen(want);

	return n == wl && memcmp(p, want, n) == 0;
}

static bool
path_under(const char *p, size_t n, const char *prefix)
{
	size_t pl = strlen(prefix);

	return n >= pl && memcmp(p, prefix, pl) == 0;
}

/* ------------------------------------------------------------------ */
/* Simple endpoints                                                    */
/* ------------------------------------------------------------------ */

static void
answer(struct etcd_server *srv, struct http_req *req, int status, const char *ctype, struct buf *body)
{
	struct buf *b;

	http_resp_start(req, status, NULL);
	if (srv != NULL)
		store_cors_headers(srv, req);
	if (ctype != NULL)
		http_resp_header(req, "Content-Type", ctype);
	b = http_resp_body_buf(req);
	if (b == NULL || buf_append(b, body->data ? body->data : "", body->len) != 0) {
		http_req_abort(req);
		return;
	}
	http_resp_finish(req);
}

static void
serve_version(struct etcd_server *srv, struct http_req *req, bool cors)
{
	struct buf body = BUF_INIT;
	const char *cv = store_cluster_version(srv);

	if (!allow(cors ? srv : NULL, req, "GET"))
		return;
	buf_printf(&body, "{\"etcdserver\":\"%s\",\"etcdcluster\":\"%s\"}", STORE_SERVER_VERSION,
		cv != NULL ? STORE_CLUSTER_VERSION : "not_decided");
	answer(cors ? srv : NULL, req, 200, "application/json", &body);
	buf_free(&body);
}

static void
serve_health(struct etcd_server *srv, struct http_req *req)
{
	struct buf body = BUF_INIT;

	if (!allow(srv, req, "GET"))
		return;
	/* etcd 3.4's body (etcd 2.3 wrote a space after the colon; clients
	 * parse it as JSON either way). The single member is always its own
	 * leader, and a server whose WAL broke has already exited. */
	buf_puts(&body, "{\"health\":\"true\"}");
	answer(srv, req, 200, "text/plain; charset=utf-8", &body);
	buf_free(&body);
}

static void
serve_stats_store(struct etcd_server *srv, struct http_req *req)
{
	struct buf body = BUF_INIT;

	if (!allow(srv, req, "GET"))
		return;
	if (tree_stats_json(&body, tree_stats(store_tree(srv)), watch_hub_count(store_hub(srv))) != 0) {
		buf_free(&body);
		http_req_abort(req);
		return;
	}
	answer(srv, req, 200, "application/json", &body);
	buf_free(&body);
}

static void
serve_stats_self(struct etcd_server *srv, struct http_req *req)
{
	const struct store_self_stats *st = store_self_stats(srv);
	struct buf body = BUF_INIT;
	struct json_gen *g;
	char id[17], t1[40], t2[40], up[64];
	int64_t now = store_now_ns(srv);

	if (!allow(srv, req, "GET"))
		return;
	store_id_str(store_member_self(srv), id);
	t1[tree_format_time(t1, st->start_ns)] = '\0';
	t2[tree_format_time(t2, st->leader_start_ns)] = '\0';
	flags_duration_str(now - st->leader_start_ns, up, sizeof(up));
	g = json_gen_new(&body);
	if (g == NULL) {
		http_req_abort(req);
		return;
	}
	json_obj_begin(g);
	json_key(g, "name");
	json_strz(g, store_member_name(srv));
	json_key(g, "id");
	json_strz(g, id);
	json_key(g, "state");
	json_strz(g, "StateLeader");
	json_key(g, "startTime");
	json_strz(g, t1);
	json_key(g, "leaderInfo");
	json_obj_begin(g);
	json_key(g, "leader");
	json_strz(g, id);
	json_key(g, "uptime");
	json_strz(g, up);
	json_key(g, "startTime");
	json_strz(g, t2);
	json_obj_end(g);
	json_key(g, "recvAppendRequestCnt");
	json_uint(g, st->recv_append);
	json_key(g, "sendAppendRequestCnt");
	json_uint(g, st->send_append);
	json_obj_end(g);
	if (json_gen_error(g) != 0) {
		json_gen_free(g);
		buf_free(&body);
		http_req_abort(req);
		return;
	}
	json_gen_free(g);
	answer(srv, req, 200, "application/json", &body);
	buf_free(&body);
}

static void
serve_stats_leader(struct etcd_server *srv, struct http_req *req)
{
	struct buf body = BUF_INIT;
	char id[17];

	if (!allow(srv, req, "GET"))
		return;
	/* The only member leads a cluster with no followers. */
	store_id_str(store_member_self(srv), id);
	buf_printf(&body, "{\"leader\":\"%s\",\"followers\":{}}", id);
	answer(srv, req, 200, "application/json", &body);
	buf_free(&body);
}

static void
serve_machines(struct etcd_server *srv, struct http_req *req)
{
	struct buf body = BUF_INIT;
	const struct store_member *m;
	size_t n, total = 0, k = 0;
	const char **all;

	if (!allow(srv, req, "GET,HEAD"))
		return;
	m = store_members(srv, &n);
	for (size_t i = 0; i < n; i++)
		total += m[i].n_client;
	all = mem_calloc(total ? total : 1, sizeof(*all));
	if (all == NULL) {
		http_req_abort(req);
		return;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < m[i].n_client; j++)
			all[k++] = m[i].client_urls[j];
	/* cluster.ClientURLs() is sorted. */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && strcmp(all[j - 1], all[j]) > 0; j--) {
			const char *t = all[j];

			all[j] = all[j - 1];
			all[j - 1] = t;
		}
	for (size_t i = 0; i < k; i++)
		buf_printf(&body, "%s%s", i ? ", " : "", all[i]);
	mem_free(all);
	answer(srv, req, 200, "text/plain; charset=utf-8", &body);
	buf_free(&body);
}

static void
serve_metrics(struct etcd_server *srv, struct http_req *req)
{
	struct buf body = BUF_INIT;

	if (store_metrics_text(srv, &body) != 0) {
		buf_free(&body);
		http_req_abort(req);
		return;
	}
	answer(srv, req, 200, "text/plain; version=0.0.4; charset=utf-8", &body);
	buf_free(&body);
}

/* ------------------------------------------------------------------ */
/* Members                                                             */
/* ------------------------------------------------------------------ */

/* httptypes.Member: {"id":"hex","name":..,"peerURLs":[..],"clientURLs":[..]} */
static void
member_json(struct json_gen *g, const struct store_member *m)
{
	char id[17];

	store_id_str(m->id, id);
	json_obj_begin(g);
	json_key(g, "id");
	json_strz(g, id);
	json_key(g, "name");
	json_strz(g, m->name);
	json_key(g, "peerURLs");
	json_arr_begin(g);
	for (size_t i = 0; i < m->n_peer; i++)
		json_strz(g, m->peer_urls[i]);
	json_arr_end(g);
	json_key(g, "clientURLs");
	json_arr_begin(g);
	for (size_t i = 0; i < m->n_client; i++)
		json_strz(g, m->client_urls[i]);
	json_arr_end(g);
	json_obj_end(g);
}

static void
answer_json_gen(struct etcd_server *srv, struct http_req *req, int status, struct buf *body, struct json_gen *g,
	bool newline)
{
	struct buf *b;

	if (json_gen_error(g) != 0 || (newline && buf_putc(body, '\n') != 0)) {
		http_req_abort(req);
		return;
	}
	http_resp_start(req, status, NULL);
	store_cors_headers(srv, req);
	http_resp_header(req, "Content-Type", "application/json");
	http_resp_header(req, "X-Etcd-Cluster-Id", store_cluster_id_str(srv));
	b = http_resp_body_buf(req);
	if (b == NULL || buf_append(b, body->data, body->len) != 0) {
		http_req_abort(req);
		return;
	}
	http_resp_finish(req);
}

/* Checks a member request body as etcd's unmarshalRequest does. Returns
 * true when the body is acceptable; otherwise it has answered. */
static bool
member_body_ok(struct etcd_server *srv, struct http_req *req)
{
	const char *ct = http_req_header(req, "Content-Type");
	char ctype[128], msg[JSON_ERRMSG_BYTES_MAX + 64];
	struct json_doc *doc = NULL;
	const struct json_node *urls;
	size_t n = 0;

	if (ct == NULL)
		ct = "";
	snprintf(ctype, sizeof(ctype), "%s", ct);
	{
		char *semi = strchr(ctype, ';');

		if (semi != NULL) {
			*semi = '\0';
			for (char *c = ctype; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c - 'A' + 'a');
			char *s = ctype, *e = ctype + strlen(ctype);

			while (*s == ' ' || *s == '\t')
				s++;
			while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			*e = '\0';
			memmove(ctype, s, (size_t)(e - s) + 1);
		}
	}
	if (strcmp(ctype, "application/json") != 0) {
		snprintf(msg, sizeof(msg), "Bad Content-Type %s, accept application/json", ctype);
		srv_error_json(srv, req, 415, msg);
		return false;
	}
	if (json_parse(req->body, req->body_len, NULL, &doc, msg, sizeof(msg)) != 0) {
		srv_error_json(srv, req, 400, msg);
		return false;
	}
	urls = json_get(json_doc_root(doc), "peerURLs");
	if (urls != NULL && urls->type == JSON_ARRAY)
		n = json_len(urls);
	json_doc_free(doc);
	if (n == 0) {
		srv_error_json(srv, req, 400, "no valid URLs given");
		return false;
	}
	return true;
}

static bool
parse_member_id(const char *s, size_t n, uint64_t *id)
{
	uint64_t v = 0;

	if (n == 0 || n > 16)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return false;
		v = v << 4 | d;
	}
	*id = v;
	return true;
}

static void
serve_members(struct etcd_server *srv, struct http_req *req, const char *rest, size_t rest_len)
{
	const struct store_member *m;
	struct buf body = BUF_INIT;
	struct json_gen *g;
	size_t n;
	uint64_t id;
	char msg[128];

	if (!allow(srv, req, "GET,POST,DELETE,PUT"))
		return;
	while (rest_len > 0 && rest[0] == '/') {
		rest++;
		rest_len--;
	}
	if (req->method_id != HTTP_GET)
		store_auth_probe(srv); /* etcd's hasWriteRootAccess */
	m = store_members(srv, &n);
	switch (req->method_id) {
	case HTTP_GET:
		if (rest_len == 0) {
			g = json_gen_new(&body);
			if (g == NULL)
				break;
			json_obj_begin(g);
			json_key(g, "members");
			json_arr_begin(g);
			for (size_t i = 0; i < n; i++)
				member_json(g, &m[i]);
			json_arr_end(g);
			json_obj_end(g);
			answer_json_gen(srv, req, 200, &body, g, true);
			json_gen_free(g);
			buf_free(&body);
			return;
		}
		if (rest_len == 6 && memcmp(rest, "leader", 6) == 0) {
			for (size_t i = 0; i < n; i++)
				if (m[i].id == store_member_self(srv)) {
					g = json_gen_new(&body);
					if (g == NULL)
						break;
					member_json(g, &m[i]);
					answer_json_gen(srv, req, 200, &body, g, true);
					json_gen_free(g);
					buf_free(&body);
					return;
				}
			srv_error_json(srv, req, 503, "During election");
			return;
		}
		srv_error_json(srv, req, 404, "Not found");
		return;
	case HTTP_POST:
		if (!member_body_ok(srv, req))
			return;
		log_warn("etcdserver", "refused a member add: a single-member server cannot change membership", NULL);
		srv_error_json(srv, req, 500, "Internal Server Error");
		return;
	default: /* DELETE, PUT */
		if (rest_len == 0) {
			http_resp_start(req, 405, NULL);
			store_cors_headers(srv, req);
			http_resp_header(req, "X-Etcd-Cluster-Id", store_cluster_id_str(srv));
			plain_error(req, 405, "Method Not Allowed");
			return;
		}
		if (!parse_member_id(rest, rest_len, &id)) {
			snprintf(msg, sizeof(msg), "No such member: %.*s", (int)(rest_len > 64 ? 64 : rest_len), rest);
			srv_error_json(srv, req, 404, msg);
			return;
		}
		if (id != store_member_self(srv)) {
			char hex[17];

			store_id_str(id, hex);
			snprintf(msg, sizeof(msg), "No such member: %s", hex);
			srv_error_json(srv, req, 404, msg);
			return;
		}
		if (req->method_id == HTTP_PUT && !member_body_ok(srv, req))
			return;
		log_warn("etcdserver", "refused a member change: a single-member server cannot change membership",
			"method=%s", req->method);
		srv_error_json(srv, req, 500, "Internal Server Error");
		return;
	}
	buf_free(&body);
	http_req_abort(req);
}

/* ------------------------------------------------------------------ */
/* Routers                                                             */
/* ------------------------------------------------------------------ */

bool
store_misc_handle(struct etcd_server *srv, struct http_req *req, const char *path, size_t n)
{
	if (route_clean(srv, req))
		return true;
	if (path_is(path, n, "/v2/keys") || path_under(path, n, "/v2/keys/")) {
		store_keys_handle(srv, req);
		return true;
	}
	if (path_is(path, n, "/version"))
		serve_version(srv, req, true);
	else if (path_is(path, n, "/health"))
		serve_health(srv, req);
	else if (path_is(path, n, "/v2/stats/store"))
		serve_stats_store(srv, req);
	else if (path_is(path, n, "/v2/stats/self"))
		serve_stats_self(srv, req);
	else if (path_is(path, n, "/v2/stats/leader"))
		serve_stats_leader(srv, req);
	else if (path_is(path, n, "/v2/members") || path_under(path, n, "/v2/members/"))
		serve_members(srv, req, path + 11, n - 11);
	else if (path_is(path, n, "/v2/machines"))
		serve_machines(srv, req);
	else if (path_is(path, n, "/metrics"))
		serve_metrics(srv, req);
	else
		not_found(srv, req);
	return true;
}

/* The peer API: GET /members (etcd's Member structs with numeric IDs),
 * /version; /raft is Raft's and not served by a single member. */
static void
serve_peer_members(struct etcd_server *srv, struct http_req *req)
{
	const struct store_member *m;
	struct buf body = BUF_INIT, *b;
	size_t n;
	int rc = 0;

	if (!allow(NULL, req, "GET"))
		return;
	m = store_members(srv, &n);
	rc = buf_putc(&body, '[');
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = buf_printf(&body, "%s{\"id\":%" PRIu64 ",\"peerURLs\":[", i ? "," : "", m[i].id);
		for (size_t j = 0; j < m[i].n_peer && rc == 0; j++) {
			if (j)
				rc = buf_putc(&body, ',');
			if (rc == 0)
				rc = json_escape_go(&body, m[i].peer_urls[j], strlen(m[i].peer_urls[j]));
		}
		if (rc == 0)
			rc = buf_putc(&body, ']');
		if (rc == 0 && m[i].name[0]) {
			rc = buf_puts(&body, ",\"name\":");
			if (rc == 0)
				rc = json_escape_go(&body, m[i].name, strlen(m[i].name));
		}
		if (rc == 0 && m[i].n_client) {
			rc = buf_puts(&body, ",\"clientURLs\":[");
			for (size_t j = 0; j < m[i].n_client && rc == 0; j++) {
				if (j)
					rc = buf_putc(&body, ',');
				if (rc == 0)
					rc = json_escape_go(&body, m[i].client_urls[j], strlen(m[i].client_urls[j]));
			}
			if (rc == 0)
				rc = buf_putc(&body, ']');
		}
		if (rc == 0)
			rc = buf_putc(&body, '}');
	}
	if (rc == 0)
		rc = buf_puts(&body, "]\n");
	if (rc != 0) {
		buf_free(&body);
		http_req_abort(req);
		return;
	}
	http_resp_start(req, 200, NULL);
	http_resp_header(req, "Content-Type", "application/json");
	http_resp_header(req, "X-Etcd-Cluster-Id", store_cluster_id_str(srv));
	b = http_resp_body_buf(req);
	if (b == NULL || buf_append(b, body.data, body.len) != 0) {
		buf_free(&body);
		http_req_abort(req);
		return;
	}
	buf_free(&body);
	http_resp_finish(req);
}

void
store_peer_handle(struct etcd_server *srv, struct http_req *req)
{
	const char *p = req->path;
	size_t n = req->path_len;

	if (route_clean(NULL, req))
		return;
	if (path_is(p, n, "/members") || path_under(p, n, "/members/")) {
		if (!path_is(p, n, "/members")) {
			if (!allow(NULL, req, "GET"))
				return;
			http_resp_start(req, 400, NULL);
			http_resp_header(req, "X-Etcd-Cluster-Id", store_cluster_id_str(srv));
			plain_error(req, 400, "bad path");
			return;
		}
		serve_peer_members(srv, req);
	} else if (path_is(p, n, "/version")) {
		serve_version(srv, req, false);
	} else if (path_is(p, n, "/raft") || path_under(p, n, "/raft/")) {
		if (!allow(NULL, req, "POST"))
			return;
		/* No Raft transport in a single member: refuse like a member
		 * that is not part of the sender's cluster would. */
		http_resp_start(req, 503, NULL);
		plain_error(req, 503, "corebox etcd: this member does not run the raft peer protocol");
	} else {
		not_found(NULL, req);
	}
}
