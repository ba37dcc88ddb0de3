/*
 * etcdctl output and errors: decoding the v2 API's answers into the shapes
 * the Go client decodes them into (client.Response, client.Error,
 * client.Member), and printing them as etcdctl prints them (simple,
 * extended, json re-marshalled by encoding/json, ls listings, the
 * "Error:  ..." lines).
 *
 * Pure: no I/O; text goes into caller buffers. It must never print a
 * field the Go structs would drop nor reorder the ones they keep, and
 * never trust a peer's JSON beyond the json module's limits.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/etcdctl.h"
#include "corebox/json.h"
#include "corebox/mem.h"

/* Nesting of node objects accepted (each is two JSON levels). */
#define NODE_DEPTH_MAX ((int)(CTL_JSON_DEPTH_MAX / 2))
/* Member lists longer than this are refused. */
#define MEMBERS_MAX 1024
/* URLs per member accepted. */
#define MEMBER_URLS_MAX 64
/* Bytes for one normalised RFC 3339 time (with zone and NUL). */
#define TIME_TEXT_BYTES 48

const struct json_limits ctl_json_limits = {
	CTL_BODY_BYTES_MAX, CTL_JSON_DEPTH_MAX, CTL_JSON_NODES_MAX, CTL_BODY_BYTES_MAX,
};

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

void
ctl_err_free(struct ctl_err *e)
{
	mem_free(e->message);
	mem_free(e->cause);
	e->message = NULL;
	e->cause = NULL;
	e->kind = CTL_E_NONE;
	e->n = 0;
}

void
ctl_err_msg(struct ctl_err *e, bool conn, const char *fmt, ...)
{
	va_list ap;

	ctl_err_free(e);
	e->kind = CTL_E_MSG;
	e->conn = conn;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

int
ctl_err_text(struct buf *b, const struct ctl_err *e)
{
	int rc = 0;

	switch (e->kind) {
	case CTL_E_MSG:
		return buf_puts(b, e->msg);
	case CTL_E_ETCD:
		return buf_printf(b, "%lld: %s (%s) [%llu]", (long long)e->code,
			e->message != NULL ? e->message : "", e->cause != NULL ? e->cause : "",
			(unsigned long long)e->index);
	case CTL_E_CLUSTER:
		/* ClusterError.Error(): each cause carries its own newline. */
		rc = buf_puts(b, "client: etcd cluster is unavailable or misconfigured");
		for (size_t i = 0; i < e->n && rc == 0; i++)
			rc = buf_printf(b, "; error #%zu: %s\n", i, e->cmsg[i]);
		return rc;
	default:
		return 0;
	}
}

int
ctl_err_handle_text(struct buf *b, const struct ctl_err *e)
{
	int rc = buf_puts(b, "Error:  ");

	if (rc == 0)
		rc = ctl_err_text(b, e);
	if (rc == 0)
		rc = buf_putc(b, '\n');
	if (rc == 0 && e->kind == CTL_E_CLUSTER) {
		for (size_t i = 0; i < e->n && rc == 0; i++)
			rc = buf_printf(b, "error #%zu: %s\n", i, e->cmsg[i]);
		if (rc == 0)
			rc = buf_putc(b, '\n');
	}
	return rc;
}

bool
ctl_err_is_conn(const struct ctl_err *e)
{
	switch (e->kind) {
	case CTL_E_MSG:
		return e->conn;
	case CTL_E_CLUSTER:
		for (size_t i = 0; i < e->n; i++)
			if (!e->cconn[i])
				return false;
		return true;
	default:
		return false;
	}
}

static char *
dup_str(const struct json_node *n)
{
	const char *s;
	size_t len;

	if (n == NULL || n->type == JSON_NULL)
		return mem_strdup("");
	if (json_get_str(n, &s, &len) < 0)
		return NULL;
	return mem_strndup(s, len);
}

int
ctl_err_from_body(struct ctl_err *e, const char *body, size_t len)
{
	struct json_doc *doc = NULL;
	const struct json_node *root, *n;
	int rc;

	ctl_err_free(e);
	if (json_parse(body, len, &ctl_json_limits, &doc, NULL, 0) < 0)
		return -ERR_PARSE;
	root = json_doc_root(doc);
	e->kind = CTL_E_ETCD;
	e->code = 0;
	e->index = 0;
	rc = -ERR_PARSE;
	if (root->type != JSON_OBJECT && root->type != JSON_NULL)
		goto out;
	n = json_get_fold(root, "errorCode");
	if (n != NULL && n->type != JSON_NULL && json_get_int(n, &e->code) < 0)
		goto out;
	n = json_get_fold(root, "index");
	if (n != NULL && n->type != JSON_NULL && json_get_uint(n, &e->index) < 0)
		goto out;
	e->message = dup_str(json_get_fold(root, "message"));
	e->cause = dup_str(json_get_fold(root, "cause"));
	if (e->message == NULL || e->cause == NULL)
		goto out;
	rc = 0;
out:
	json_doc_free(doc);
	if (rc < 0)
		ctl_err_free(e);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Keys responses                                                      */
/* ------------------------------------------------------------------ */

static int
two_digits(const char *s, int *v)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -1;
	*v = (s[0] - '0') * 10 + (s[1] - '0');
	return 0;
}

/*
 * time.Time's UnmarshalJSON (RFC 3339) then MarshalJSON (RFC 3339 with
 * nanoseconds, trailing zeros of the fraction dropped, "Z" for UTC).
 */
static int
normalise_time(const char *s, size_t len, char out[TIME_TEXT_BYTES])
{
	int v, hh, mm;
	size_t i, frac_start, frac_len = 0;
	char frac[16];

	if (len < 20 || len > 40)
		return -ERR_PARSE;
	for (i = 0; i < 4; i++)
		if (s[i] < '0' || s[i] > '9')
			return -ERR_PARSE;
	if (s[4] != '-' || two_digits(s + 5, &v) < 0 || v < 1 || v > 12 || s[7] != '-' ||
	    two_digits(s + 8, &v) < 0 || v < 1 || v > 31 || (s[10] != 'T' && s[10] != 't') ||
	    two_digits(s + 11, &v) < 0 || v > 23 || s[13] != ':' || two_digits(s + 14, &v) < 0 ||
	    v > 59 || s[16] != ':' || two_digits(s + 17, &v) < 0 || v > 59)
		return -ERR_PARSE;
	i = 19;
	if (i < len && s[i] == '.') {
		frac_start = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == frac_start)
			return -ERR_PARSE;
		frac_len = i - frac_start;
		if (frac_len > 9)
			frac_len = 9;
		memcpy(frac, s + frac_start, frac_len);
		while (frac_len > 0 && frac[frac_len - 1] == '0')
			frac_len--;
		frac[frac_len] = '\0';
	}
	memcpy(out, s, 19);
	out[10] = 'T';
	v = 19;
	if (frac_len > 0) {
		out[v++] = '.';
		memcpy(out + v, frac, frac_len);
		v += (int)frac_len;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
		out[v++] = 'Z';
	} else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && two_digits(s + i + 1, &hh) == 0 &&
		   s[i + 3] == ':' && two_digits(s + i + 4, &mm) == 0 && hh < 24 && mm < 60) {
		if (hh == 0 && mm == 0) {
			out[v++] = 'Z';
		} else {
			memcpy(out + v, s + i, 6);
			v += 6;
		}
	} else {
		return -ERR_PARSE;
	}
	out[v] = '\0';
	return 0;
}

struct decode {
	struct ctl_resp *r;
	int depth;
};

static struct ctl_node *
node_alloc(struct ctl_resp *r, size_t n)
{
	struct ctl_node *p;

	if (n == 0)
		return NULL;
	p = mem_calloc(n, sizeof(*p));
	if (p == NULL)
		return NULL;
	/* Every block is remembered in one list so ctl_resp_free finds it. */
	if (r->arena_n_ == r->arena_cap_) {
		size_t cap = r->arena_cap_ ? r->arena_cap_ * 2 : 8;
		struct ctl_node **na = mem_realloc(r->arena_, cap * sizeof(*na));

		if (na == NULL) {
			mem_free(p);
			return NULL;
		}
		r->arena_ = na;
		r->arena_cap_ = cap;
	}
	((struct ctl_node **)r->arena_)[r->arena_n_++] = p;
	return p;
}

static int
decode_node(struct decode *d, const struct json_node *j, struct ctl_node *n)
{
	const struct json_node *f;
	int rc;

	if (j->type == JSON_NULL)
		return 0;
	if (j->type != JSON_OBJECT)
		return -ERR_PARSE;
	if (++d->depth > NODE_DEPTH_MAX)
		return -ERR_LIMIT;
	n->nodes_null = true;
	n->key = "";
	n->value = "";
	if ((f = json_get(j, "key")) != NULL && f->type != JSON_NULL &&
	    json_get_str(f, &n->key, &n->key_len) < 0)
		return -ERR_PARSE;
	if ((f = json_get(j, "dir")) != NULL && f->type != JSON_NULL) {
		int b;

		if (json_get_bool(f, &b) < 0)
			return -ERR_PARSE;
		n->dir = b != 0;
	}
	if ((f = json_get(j, "value")) != NULL && f->type != JSON_NULL &&
	    json_get_str(f, &n->value, &n->value_len) < 0)
		return -ERR_PARSE;
	if ((f = json_get(j, "createdIndex")) != NULL && f->type != JSON_NULL &&
	    json_get_uint(f, &n->created) < 0)
		return -ERR_PARSE;
	if ((f = json_get(j, "modifiedIndex")) != NULL && f->type != JSON_NULL &&
	    json_get_uint(f, &n->modified) < 0)
		return -ERR_PARSE;
	if ((f = json_get(j, "ttl")) != NULL && f->type != JSON_NULL &&
	    json_get_int(f, &n->ttl) < 0)
		return -ERR_PARSE;
	if ((f = json_get(j, "expiration")) != NULL && f->type != JSON_NULL) {
		const char *s;
		size_t len;
		char t[TIME_TEXT_BYTES];

		if (json_get_str(f, &s, &len) < 0 || normalise_time(s, len, t) < 0)
			return -ERR_PARSE;
		n->expiration = mem_strdup(t);
		if (n->expiration == NULL)
			return -ERR_NOMEM;
	}
	if ((f = json_get(j, "nodes")) != NULL && f->type != JSON_NULL) {
		const struct json_node *c;
		size_t i = 0;

		if (f->type != JSON_ARRAY)
			return -ERR_PARSE;
		n->nodes_null = false;
		n->nnodes = json_len(f);
		if (n->nnodes > 0) {
			n->nodes = node_alloc(d->r, n->nnodes);
			if (n->nodes == NULL)
				return -ERR_NOMEM;
		}
		for (c = json_first(f); c != NULL; c = c->next, i++) {
			if (c->type == JSON_NULL) {
				/* A null element decodes to a nil *Node: printed as null. */
				n->nodes[i].key = NULL;
				continue;
			}
			rc = decode_node(d, c, &n->nodes[i]);
			if (rc < 0)
				return rc;
		}
	}
	d->depth--;
	return 0;
}

static void
node_free_exp(struct ctl_node *n)
{
	if (n == NULL)
		return;
	mem_free(n->expiration);
	n->expiration = NULL;
	for (size_t i = 0; i < n->nnodes; i++)
		node_free_exp(&n->nodes[i]);
}

void
ctl_resp_free(struct ctl_resp *r)
{
	struct ctl_node **blocks = r->arena_;

	node_free_exp(r->node);
	node_free_exp(r->prev);
	for (size_t i = 0; i < r->arena_n_; i++)
		mem_free(blocks[i]);
	mem_free(blocks);
	json_doc_free(r->doc_);
	memset(r, 0, sizeof(*r));
}

/* strconv.ParseUint(s, 10, 64) with Go's error text. */
static int
parse_index(const char *s, uint64_t *out, char *errmsg, size_t errlen)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p == '\0')
		goto syntax;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			goto syntax;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
			snprintf(errmsg, errlen, "strconv.ParseUint: parsing \"%s\": value out of range", s);
			return -ERR_RANGE;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = v;
	return 0;
syntax:
	snprintf(errmsg, errlen, "strconv.ParseUint: parsing \"%s\": invalid syntax", s);
	return -ERR_RANGE;
}

int
ctl_resp_parse(struct ctl_resp *r, const char *body, size_t len, const char *index_hdr,
	char *errmsg, size_t errlen)
{
	struct json_doc *doc = NULL;
	const struct json_node *root, *f;
	struct decode d = { r, 0 };
	int rc;

	memset(r, 0, sizeof(*r));
	if (errmsg != NULL && errlen > 0)
		errmsg[0] = '\0';
	rc = json_parse(body, len, &ctl_json_limits, &doc, NULL, 0);
	if (rc < 0)
		return rc == -ERR_NOMEM ? rc : -ERR_PARSE;
	r->doc_ = doc;
	root = json_doc_root(doc);
	if (root->type != JSON_OBJECT && root->type != JSON_NULL) {
		rc = -ERR_PARSE;
		goto fail;
	}
	if ((f = json_get(root, "action")) != NULL && f->type != JSON_NULL) {
		const char *s;
		size_t n;

		if (json_get_str(f, &s, &n) < 0) {
			rc = -ERR_PARSE;
			goto fail;
		}
		snprintf(r->action, sizeof(r->action), "%.*s", (int)n, s);
	}
	if ((f = json_get(root, "node")) != NULL && f->type != JSON_NULL) {
		r->node = node_alloc(r, 1);
		if (r->node == NULL) {
			rc = -ERR_NOMEM;
			goto fail;
		}
		rc = decode_node(&d, f, r->node);
		if (rc < 0)
			goto fail;
	}
	if ((f = json_get(root, "prevNode")) != NULL && f->type != JSON_NULL) {
		r->prev = node_alloc(r, 1);
		if (r->prev == NULL) {
			rc = -ERR_NOMEM;
			goto fail;
		}
		d.depth = 0;
		rc = decode_node(&d, f, r->prev);
		if (rc < 0)
			goto fail;
	}
	if (index_hdr != NULL && index_hdr[0] != '\0') {
		rc = parse_index(index_hdr, &r->index, errmsg, errlen);
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	ctl_resp_free(r);
	return rc;
}

enum ctl_format
ctl_format_parse(const char *s)
{
	if (strcmp(s, "simple") == 0)
		return CTL_FMT_SIMPLE;
	if (strcmp(s, "extended") == 0)
		return CTL_FMT_EXTENDED;
	if (strcmp(s, "json") == 0)
		return CTL_FMT_JSON;
	return CTL_FMT_OTHER;
}

static int
node_json(struct buf *b, const struct ctl_node *n)
{
	int rc;

	if (n == NULL || n->key == NULL)
		return buf_puts(b, "null");
	rc = buf_puts(b, "{\"key\":");
	if (rc == 0)
		rc = json_escape_go(b, n->key, n->key_len);
	if (rc == 0 && n->dir)
		rc = buf_puts(b, ",\"dir\":true");
	if (rc == 0)
		rc = buf_puts(b, ",\"value\":");
	if (rc == 0)
		rc = json_escape_go(b, n->value, n->value_len);
	if (rc == 0)
		rc = buf_puts(b, ",\"nodes\":");
	if (rc == 0 && n->nodes_null) {
		rc = buf_puts(b, "null");
	} else if (rc == 0) {
		rc = buf_putc(b, '[');
		for (size_t i = 0; i < n->nnodes && rc == 0; i++) {
			if (i > 0)
				rc = buf_putc(b, ',');
			if (rc == 0)
				rc = node_json(b, &n->nodes[i]);
		}
		if (rc == 0)
			rc = buf_putc(b, ']');
	}
	if (rc == 0)
		rc = buf_printf(b, ",\"createdIndex\":%llu,\"modifiedIndex\":%llu",
			(unsigned long long)n->created, (unsigned long long)n->modified);
	if (rc == 0 && n->expiration != NULL)
		rc = buf_printf(b, ",\"expiration\":\"%s\"", n->expiration);
	if (rc == 0 && n->ttl != 0)
		rc = buf_printf(b, ",\"ttl\":%lld", (long long)n->ttl);
	if (rc == 0)
		rc = buf_putc(b, '}');
	return rc;
}

int
ctl_resp_json(struct buf *b, const struct ctl_resp *r)
{
	int rc = buf_puts(b, "{\"action\":");

	if (rc == 0)
		rc = json_escape_go(b, r->action, strlen(r->action));
	if (rc == 0)
		rc = buf_puts(b, ",\"node\":");
	if (rc == 0)
		rc = node_json(b, r->node);
	if (rc == 0)
		rc = buf_puts(b, ",\"prevNode\":");
	if (rc == 0)
		rc = node_json(b, r->prev);
	if (rc == 0)
		rc = buf_putc(b, '}');
	return rc;
}

static const struct ctl_node empty_node = { .key = "", .value = "", .nodes_null = true };

int
ctl_print_response(struct buf *out, struct buf *err, const struct ctl_resp *r,
	enum ctl_format f, const char *fmtname)
{
	const struct ctl_node *n = r->node != NULL ? r->node : &empty_node;
	const struct ctl_node *p = r->prev != NULL ? r->prev : &empty_node;
	bool del = strcmp(r->action, "delete") == 0;
	int rc = 0;

	switch (f) {
	case CTL_FMT_SIMPLE:
		if (!del) {
			rc = buf_append(out, n->value, n->value_len);
		} else {
			rc = buf_puts(out, "PrevNode.Value: ");
			if (rc == 0)
				rc = buf_append(out, p->value, p->value_len);
		}
		return rc != 0 ? rc : buf_putc(out, '\n');
	case CTL_FMT_EXTENDED:
		/* An rfc2822-style block, as Go's fmt.Println prints each line. */
		rc = buf_puts(out, "Key: ");
		if (rc == 0)
			rc = buf_append(out, n->key, n->key_len);
		if (rc == 0)
			rc = buf_printf(out, "\nCreated-Index: %llu\nModified-Index: %llu\n",
				(unsigned long long)n->created, (unsigned long long)n->modified);
		if (rc == 0 && r->prev != NULL) {
			rc = buf_puts(out, "PrevNode.Value: ");
			if (rc == 0)
				rc = buf_append(out, p->value, p->value_len);
			if (rc == 0)
				rc = buf_putc(out, '\n');
		}
		if (rc == 0)
			rc = buf_printf(out, "TTL: %lld\nIndex: %llu\n", (long long)n->ttl,
				(unsigned long long)r->index);
		if (rc == 0 && !del) {
			rc = buf_putc(out, '\n');
			if (rc == 0)
				rc = buf_append(out, n->value, n->value_len);
			if (rc == 0)
				rc = buf_putc(out, '\n');
		}
		return rc;
	case CTL_FMT_JSON:
		rc = ctl_resp_json(out, r);
		return rc != 0 ? rc : buf_putc(out, '\n');
	default:
		return buf_printf(err, "Unsupported output format: %s\n", fmtname);
	}
}

static int
ls_node(struct buf *out, const struct ctl_node *n, bool slash)
{
	int rc;

	if (n->key == NULL)
		return 0;
	rc = buf_append(out, n->key, n->key_len);
	if (rc == 0 && n->dir && slash)
		rc = buf_putc(out, '/');
	if (rc == 0)
		rc = buf_putc(out, '\n');
	for (size_t i = 0; i < n->nnodes && rc == 0; i++)
		rc = ls_node(out, &n->nodes[i], slash);
	return rc;
}

int
ctl_print_ls(struct buf *out, struct buf *err, const struct ctl_resp *r,
	enum ctl_format f, const char *fmtname, bool slash)
{
	const struct ctl_node *n = r->node != NULL ? r->node : &empty_node;
	int rc = 0;

	if (f != CTL_FMT_SIMPLE)
		return ctl_print_response(out, err, r, f, fmtname);
	if (!n->dir) {
		rc = buf_append(out, n->key, n->key_len);
		if (rc == 0)
			rc = buf_putc(out, '\n');
	}
	for (size_t i = 0; i < n->nnodes && rc == 0; i++)
		rc = ls_node(out, &n->nodes[i], slash);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Members                                                             */
/* ------------------------------------------------------------------ */

void
ctl_member_free(struct ctl_member *m)
{
	mem_free(m->id);
	mem_free(m->name);
	for (size_t i = 0; i < m->npeer; i++)
		mem_free(m->peer_urls[i]);
	for (size_t i = 0; i < m->nclient; i++)
		mem_free(m->client_urls[i]);
	mem_free(m->peer_urls);
	mem_free(m->client_urls);
	memset(m, 0, sizeof(*m));
}

void
ctl_members_free(struct ctl_members *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		ctl_member_free(&ms->m[i]);
	mem_free(ms->m);
	ms->m = NULL;
	ms->n = 0;
}

static int
str_list(const struct json_node *a, char ***out, size_t *n)
{
	const struct json_node *c;
	size_t i = 0;

	*out = NULL;
	*n = 0;
	if (a == NULL || a->type == JSON_NULL)
		return 0;
	if (a->type != JSON_ARRAY || json_len(a) > MEMBER_URLS_MAX)
		return -ERR_PARSE;
	if (json_len(a) == 0)
		return 0;
	*out = mem_calloc(json_len(a), sizeof(**out));
	if (*out == NULL)
		return -ERR_NOMEM;
	for (c = json_first(a); c != NULL; c = c->next) {
		char *s = dup_str(c);

		if (s == NULL)
			return c->type == JSON_STRING ? -ERR_NOMEM : -ERR_PARSE;
		(*out)[i++] = s;
		*n = i;
	}
	return 0;
}

static int
member_decode(struct ctl_member *m, const struct json_node *o)
{
	int rc;

	memset(m, 0, sizeof(*m));
	if (o->type == JSON_NULL) {
		m->id = mem_strdup("");
		m->name = mem_strdup("");
		return m->id != NULL && m->name != NULL ? 0 : -ERR_NOMEM;
	}
	if (o->type != JSON_OBJECT)
		return -ERR_PARSE;
	m->id = dup_str(json_get_fold(o, "id"));
	m->name = dup_str(json_get_fold(o, "name"));
	if (m->id == NULL || m->name == NULL)
		return -ERR_PARSE;
	rc = str_list(json_get_fold(o, "peerURLs"), &m->peer_urls, &m->npeer);
	if (rc == 0)
		rc = str_list(json_get_fold(o, "clientURLs"), &m->client_urls, &m->nclient);
	return rc;
}

int
ctl_member_parse_one(struct ctl_member *m, const char *body, size_t len)
{
	struct json_doc *doc = NULL;
	int rc;

	memset(m, 0, sizeof(*m));
	if (json_parse(body, len, &ctl_json_limits, &doc, NULL, 0) < 0)
		return -ERR_PARSE;
	rc = member_decode(m, json_doc_root(doc));
	json_doc_free(doc);
	if (rc < 0)
		ctl_member_free(m);
	return rc;
}

int
ctl_members_parse(struct ctl_members *ms, const char *body, size_t len)
{
	struct json_doc *doc = NULL;
	const struct json_node *root, *arr, *c;
	int rc = 0;

	ms->m = NULL;
	ms->n = 0;
	if (json_parse(body, len, &ctl_json_limits, &doc, NULL, 0) < 0)
		return -ERR_PARSE;
	root = json_doc_root(doc);
	if (root->type != JSON_OBJECT && root->type != JSON_NULL) {
		rc = -ERR_PARSE;
		goto out;
	}
	arr = json_get_fold(root, "members");
	if (arr == NULL || arr->type == JSON_NULL)
		goto out;
	if (arr->type != JSON_ARRAY || json_len(arr) > MEMBERS_MAX) {
		rc = -ERR_PARSE;
		goto out;
	}
	if (json_len(arr) > 0) {
		ms->m = mem_calloc(json_len(arr), sizeof(*ms->m));
		if (ms->m == NULL) {
			rc = -ERR_NOMEM;
			goto out;
		}
	}
	for (c = json_first(arr); c != NULL && rc == 0; c = c->next) {
		rc = member_decode(&ms->m[ms->n], c);
		ms->n++;
	}
out:
	json_doc_free(doc);
	if (rc < 0)
		ctl_members_free(ms);
	return rc;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
ctl_peer_urls_body(struct buf *body, char **urls, size_t n, char *errmsg, size_t errlen)
{
	char **sorted;
	int rc = 0;

	if (n == 0) {
		snprintf(errmsg, errlen, "no valid URLs given");
		return -ERR_PARSE;
	}
	sorted = mem_calloc(n, sizeof(*sorted));
	if (sorted == NULL)
		return -ERR_NOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *s = urls[i], *e, *host, *hend, *colon;
		size_t len;

		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r' ||
				 e[-1] == '\v' || e[-1] == '\f'))
			e--;
		len = (size_t)(e - s);
		sorted[i] = mem_strndup(s, len);
		if (sorted[i] == NULL) {
			rc = -ERR_NOMEM;
			break;
		}
		s = sorted[i];
		if (strncmp(s, "http://", 7) == 0)
			host = s + 7;
		else if (strncmp(s, "https://", 8) == 0)
			host = s + 8;
		else if (strncmp(s, "unix://", 7) == 0)
			host = s + 7;
		else if (strncmp(s, "unixs://", 8) == 0)
			host = s + 8;
		else {
			snprintf(errmsg, errlen, "URL scheme must be http, https, unix, or unixs: %s", s);
			rc = -ERR_PARSE;
			break;
		}
		hend = host + strcspn(host, "/?#");
		/* net.SplitHostPort: [v6]:port or host:port with exactly one colon. */
		if (host[0] == '[') {
			const char *rb = memchr(host, ']', (size_t)(hend - host));

			colon = rb != NULL && rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
			if (colon != NULL && memchr(colon + 1, ':', (size_t)(hend - colon - 1)) != NULL)
				colon = NULL;
		} else {
			colon = memchr(host, ':', (size_t)(hend - host));
			if (colon != NULL && memchr(colon + 1, ':', (size_t)(hend - colon - 1)) != NULL)
				colon = NULL;
			if (colon != NULL && (memchr(host, '[', (size_t)(hend - host)) != NULL ||
					      memchr(host, ']', (size_t)(hend - host)) != NULL))
				colon = NULL;
		}
		if (colon == NULL) {
			snprintf(errmsg, errlen, "URL address does not have the form \"host:port\": %s", s);
			rc = -ERR_PARSE;
			break;
		}
		if (*hend == '/') {
			snprintf(errmsg, errlen, "URL must not contain a path: %s", s);
			rc = -ERR_PARSE;
			break;
		}
	}
	if (rc == 0) {
		qsort(sorted, n, sizeof(*sorted), cmp_str);
		rc = buf_puts(body, "{\"peerURLs\":[");
		for (size_t i = 0; i < n && rc == 0; i++) {
			if (i > 0)
				rc = buf_putc(body, ',');
			if (rc == 0)
				rc = json_escape_go(body, sorted[i], strlen(sorted[i]));
		}
		if (rc == 0)
			rc = buf_puts(body, "]}");
	}
	for (size_t i = 0; i < n; i++)
		mem_free(sorted[i]);
	mem_free(sorted);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Go's encoding/json syntax error text                                */
/* ------------------------------------------------------------------ */

static void
go_quote_char(char *out, size_t cap, unsigned char ch)
{
	struct buf b = BUF_INIT;

	if (ch == '\'') {
		snprintf(out, cap, "'\\''");
		return;
	}
	if (ch == '"') {
		snprintf(out, cap, "'\"'");
		return;
	}
	if (ctl_quote(&b, (const char *)&ch, 1) == 0 && buf_avail(&b) >= 2) {
		char *s = buf_cstr(&b);

		s[0] = '\'';
		s[buf_avail(&b) - 1] = '\'';
		snprintf(out, cap, "%s", s);
	} else {
		snprintf(out, cap, "'?'");
	}
	buf_free(&b);
}

static bool
json_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

void
ctl_go_json_error(const char *body, size_t len, char *out, size_t cap)
{
	size_t i = 0;
	char q[16];

	while (i < len && json_space(body[i]))
		i++;
	if (i == len) {
		snprintf(out, cap, "unexpected end of JSON input");
		return;
	}
	if (strchr("{[\"-0123456789tfn", body[i]) == NULL) {
		go_quote_char(q, sizeof(q), (unsigned char)body[i]);
		snprintf(out, cap, "invalid character %s looking for beginning of value", q);
		return;
	}
	if (body[i] == '-' || (body[i] >= '0' && body[i] <= '9')) {
		/* A number followed by text: "404 page not found". */
		i++;
		while (i < len && ((body[i] >= '0' && body[i] <= '9') || body[i] == '.' || body[i] == 'e' ||
				   body[i] == 'E' || body[i] == '+' || body[i] == '-'))
			i++;
		while (i < len && json_space(body[i]))
			i++;
		if (i < len) {
			go_quote_char(q, sizeof(q), (unsigned char)body[i]);
			snprintf(out, cap, "invalid character %s after top-level value", q);
			return;
		}
	}
	snprintf(out, cap, "unexpected end of JSON input");
}

void
ctl_err_go_json(struct ctl_err *e, const char *body, size_t len)
{
	char msg[CTL_ERR_TEXT_BYTES];

	ctl_go_json_error(body, len, msg, sizeof(msg));
	ctl_err_msg(e, false, "%s", msg);
}

void
ctl_err_from_message(struct ctl_err *e, const struct ctl_result *res)
{
	struct json_doc *doc = NULL;
	const struct json_node *m;
	const char *s = "";
	size_t len = 0;

	if (json_parse(res->body, res->body_len, &ctl_json_limits, &doc, NULL, 0) < 0) {
		ctl_err_go_json(e, res->body, res->body_len);
		return;
	}
	m = json_get_fold(json_doc_root(doc), "message");
	if (m != NULL)
		json_get_str(m, &s, &len);
	ctl_err_msg(e, false, "%.*s", (int)len, s);
	json_doc_free(doc);
}
