/*
 * discovery: the etcd v2 discovery protocol client (see corebox/discovery.h
 * for the protocol, the outcomes and the deliberate deviations from etcd).
 *
 * One struct discovery is a small state machine on the caller's loop: each
 * state issues one HTTP call through core/http's asynchronous client, and
 * its on_done moves to the next state, schedules a back-off timer, or
 * finishes. The user's callback always runs from a deferred call, never
 * from an http callback, so it may free everything.
 *
 * It must never trust the discovery service: every body is bounded, parsed
 * with JSON limits and type-checked; bad answers end discovery with a clear
 * error; retries and long polls are bounded so that a hostile or broken
 * service cannot make it spin or grow without limit.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/discovery.h"
#include "corebox/err.h"
#include "corebox/http.h"
#include "corebox/json.h"
#include "corebox/log.h"
#include "corebox/loop.h"
#include "corebox/mem.h"

#define PKG "discovery"

/* Go's client.Error for a key that does not exist, and for create on an existing key. */
#define ETCD_ECODE_KEY_NOT_FOUND 100
#define ETCD_ECODE_NODE_EXIST 105
#define ETCD_ECODE_EVENT_INDEX_CLEARED 401

/* A listing has 4 levels (response, node, nodes, child); room for odd but harmless extras. */
#define DISCOVERY_JSON_DEPTH_MAX 16u
/* Values per listing: each child is an object with a handful of members. */
#define DISCOVERY_JSON_NODES_MAX ((size_t)DISCOVERY_NODES_MAX * 12 + 64)

/* Texts of the Go client that etcd prints for failures it does not name. */
#define GO_CLUSTER_UNAVAILABLE "client: etcd cluster is unavailable or misconfigured"
#define GO_DEADLINE "context deadline exceeded"
#define GO_EMPTY_BODY "client: response body is empty"

/* ------------------------------------------------------------------ */
/* Outcome texts                                                       */
/* ------------------------------------------------------------------ */

static const char *const code_text[] = {
#define DISCOVERY_TEXT(name, msg) msg,
	DISCOVERY_CODES(DISCOVERY_TEXT)
#undef DISCOVERY_TEXT
};

static const char *const code_names[] = {
#define DISCOVERY_NAME(name, msg) #name,
	DISCOVERY_CODES(DISCOVERY_NAME)
#undef DISCOVERY_NAME
};

const char *
discovery_code_str(int code)
{
	if (code < 0 || code >= DISCOVERY_CODE_COUNT_)
		return "unknown error";
	return code_text[code];
}

const char *
discovery_code_name(int code)
{
	if (code < 0 || code >= DISCOVERY_CODE_COUNT_)
		return "DISCOVERY_UNKNOWN";
	return code_names[code];
}

void
discovery_config_default(struct discovery_config *c)
{
	memset(c, 0, sizeof(*c));
	c->request_timeout_ms = DISCOVERY_REQUEST_TIMEOUT_MS;
	c->connect_timeout_ms = DISCOVERY_CONNECT_TIMEOUT_MS;
	c->watch_timeout_ms = DISCOVERY_WATCH_TIMEOUT_MS;
	c->retries_max = DISCOVERY_RETRIES_MAX;
	c->backoff_ms = DISCOVERY_BACKOFF_MS;
	c->backoff_max_ms = DISCOVERY_BACKOFF_MAX_MS;
	c->body_bytes_max = DISCOVERY_BODY_BYTES_MAX;
}

/* ------------------------------------------------------------------ */
/* Pure helpers                                                        */
/* ------------------------------------------------------------------ */

static void
set_msg(char *msg, size_t msgsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
set_msg(char *msg, size_t msgsz, const char *fmt, ...)
{
	va_list ap;

	if (msg == NULL || msgsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, msgsz, fmt, ap);
	va_end(ap);
}

int
discovery_url_parse(const char *url, struct discovery_url *u, char *msg, size_t msgsz)
{
	struct http_url hu;
	const char *auth, *p;
	size_t elen, plen = 0;

	memset(u, 0, sizeof(*u));
	set_msg(msg, msgsz, "%s", "");
	if (url == NULL || *url == '\0') {
		set_msg(msg, msgsz, "empty discovery URL");
		return -ERR_PARSE;
	}
	if (strlen(url) >= DISCOVERY_PATH_BYTES_MAX) {
		set_msg(msg, msgsz, "discovery URL longer than %d bytes", DISCOVERY_PATH_BYTES_MAX - 1);
		return -ERR_LIMIT;
	}
	for (p = url; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			set_msg(msg, msgsz, "discovery URL contains a space or control character");
			return -ERR_PARSE;
		}
	if (strpbrk(url, "?#") != NULL) {
		set_msg(msg, msgsz, "discovery URL must not have a query or fragment");
		return -ERR_PARSE;
	}
	if (http_url_parse(url, &hu) != 0) {
		set_msg(msg, msgsz, "discovery URL must be http://host[:port]/path");
		return -ERR_PARSE;
	}
	if (hu.tls) {
		set_msg(msg, msgsz, "https discovery URLs are not supported yet (no TLS transport)");
		return -ERR_UNSUPPORTED;
	}
	auth = strstr(url, "://") + 3;
	if (memchr(auth, '@', (size_t)(hu.path - auth)) != NULL) {
		set_msg(msg, msgsz, "discovery URL must not contain user information");
		return -ERR_PARSE;
	}
	elen = (size_t)(hu.path - url);
	memcpy(u->endpoint, url, elen);
	u->endpoint[elen] = '\0';
	/* path.Clean: empty and "." segments vanish, ".." removes the one before. */
	p = hu.path;
	while (*p != '\0') {
		const char *s, *e;

		while (*p == '/')
			p++;
		s = p;
		while (*p != '\0' && *p != '/')
			p++;
		e = p;
		if (e == s || (e - s == 1 && s[0] == '.'))
			continue;
		if (e - s == 2 && s[0] == '.' && s[1] == '.') {
			while (plen > 0 && u->prefix[plen - 1] != '/')
				plen--;
			if (plen > 0)
				plen--;
			continue;
		}
		u->prefix[plen++] = '/';
		memcpy(u->prefix + plen, s, (size_t)(e - s));
		plen += (size_t)(e - s);
	}
	u->prefix[plen] = '\0';
	if (plen == 0) {
		set_msg(msg, msgsz, "discovery URL has no token in its path");
		return -ERR_PARSE;
	}
	u->token = strrchr(u->prefix, '/') + 1;
	return 0;
}

int
discovery_parse_size(const char *s, size_t len, int64_t *size)
{
	size_t i = 0;
	bool neg = false;
	uint64_t v = 0;

	if (len > 0 && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == len)
		return DISCOVERY_ERR_BAD_SIZE_KEY;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return DISCOVERY_ERR_BAD_SIZE_KEY;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > (uint64_t)INT64_MAX)
			return DISCOVERY_ERR_BAD_SIZE_KEY; /* Atoi's range error */
	}
	/* Atoi would accept 0 and negatives; they cannot describe a cluster. */
	if (neg || v < 1 || v > DISCOVERY_SIZE_MAX)
		return DISCOVERY_ERR_BAD_SIZE_KEY;
	*size = (int64_t)v;
	return DISCOVERY_OK;
}

static int
cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
discovery_self_value(const char *name, const char *const *urls, size_t n, struct buf *out)
{
	char **pairs;
	int rc = 0;

	if (name == NULL || *name == '\0' || strpbrk(name, ",=") != NULL || urls == NULL || n == 0)
		return -ERR_INVAL;
	for (size_t i = 0; i < n; i++)
		if (urls[i] == NULL || *urls[i] == '\0' || strchr(urls[i], ',') != NULL)
			return -ERR_INVAL;
	pairs = mem_calloc(n, sizeof(*pairs));
	if (pairs == NULL)
		return -ERR_NOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct buf b = BUF_INIT;
		const char *colon = strchr(urls[i], ':');

		rc |= buf_printf(&b, "%s=", name);
		/* URL.String() writes the scheme lower-case. */
		for (const char *c = urls[i]; *c != '\0'; c++) {
			char ch = *c;

			if (colon != NULL && c < colon && ch >= 'A' && ch <= 'Z')
				ch = (char)(ch - 'A' + 'a');
			rc |= buf_putc(&b, ch);
		}
		pairs[i] = rc == 0 ? buf_steal(&b, NULL) : NULL;
		if (pairs[i] == NULL)
			rc = -ERR_NOMEM;
		buf_free(&b);
	}
	if (rc == 0) {
		qsort(pairs, n, sizeof(*pairs), cmp_strp);
		for (size_t i = 0; i < n && rc == 0; i++) {
			if (i > 0)
				rc = buf_putc(out, ',');
			if (rc == 0)
				rc = buf_puts(out, pairs[i]);
		}
	}
	for (size_t i = 0; i < n; i++)
		mem_free(pairs[i]);
	mem_free(pairs);
	return rc < 0 ? -ERR_NOMEM : 0;
}

void
discovery_nodes_free(struct discovery_nodes *ns)
{
	for (size_t i = 0; i < ns->n; i++) {
		mem_free(ns->v[i].key);
		mem_free(ns->v[i].value);
	}
	mem_free(ns->v);
	memset(ns, 0, sizeof(*ns));
}

/* Drops the nodes from index keep on. */
static void
nodes_truncate(struct discovery_nodes *ns, size_t keep)
{
	while (ns->n > keep) {
		ns->n--;
		mem_free(ns->v[ns->n].key);
		mem_free(ns->v[ns->n].value);
	}
}

/* Takes ownership of key and value (freed on failure). */
static int
nodes_push(struct discovery_nodes *ns, char *key, char *value, uint64_t ci, uint64_t mi)
{
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 8;
		struct discovery_node *v = mem_realloc(ns->v, cap * sizeof(*v));

		if (v == NULL) {
			mem_free(key);
			mem_free(value);
			return -ERR_NOMEM;
		}
		ns->v = v;
		ns->cap = cap;
	}
	ns->v[ns->n].key = key;
	ns->v[ns->n].value = value;
	ns->v[ns->n].created_index = ci;
	ns->v[ns->n].modified_index = mi;
	ns->n++;
	return 0;
}

/* path.Base for the keys of a listing: the text after the last '/'. */
static const char *
key_base(const char *key)
{
	const char *s = strrchr(key, '/');

	return s != NULL ? s + 1 : key;
}

static int
str_field(const struct json_node *obj, const char *name, bool required, const char **s, char *msg, size_t msgsz)
{
	const struct json_node *n = json_get(obj, name);
	size_t len;

	*s = "";
	if (json_is_null(n)) {
		if (required) {
			set_msg(msg, msgsz, "node without \"%s\"", name);
			return -1;
		}
		return 0;
	}
	if (json_get_str(n, s, &len) != 0) {
		set_msg(msg, msgsz, "\"%s\" is not a string", name);
		return -1;
	}
	if (strlen(*s) != len) {
		set_msg(msg, msgsz, "\"%s\" contains a NUL byte", name);
		return -1;
	}
	return 0;
}

static int
uint_field(const struct json_node *obj, const char *name, uint64_t *v, char *msg, size_t msgsz)
{
	const struct json_node *n = json_get(obj, name);

	*v = 0;
	if (json_is_null(n))
		return 0;
	if (json_get_uint(n, v) != 0) {
		set_msg(msg, msgsz, "\"%s\" is not an unsigned integer", name);
		return -1;
	}
	return 0;
}

/* The fields of one etcd node object; strings point into the document. */
struct jnode {
	const char *key;
	const char *value;
	uint64_t created_index;
	uint64_t modified_index;
	bool dir;
};

static int
jnode_read(const struct json_node *n, bool key_required, struct jnode *out, char *msg, size_t msgsz)
{
	const struct json_node *dir;

	memset(out, 0, sizeof(*out));
	if (n == NULL || n->type != JSON_OBJECT) {
		set_msg(msg, msgsz, "node is not an object");
		return -1;
	}
	if (str_field(n, "key", key_required, &out->key, msg, msgsz) != 0 ||
	    str_field(n, "value", false, &out->value, msg, msgsz) != 0 ||
	    uint_field(n, "createdIndex", &out->created_index, msg, msgsz) != 0 ||
	    uint_field(n, "modifiedIndex", &out->modified_index, msg, msgsz) != 0)
		return -1;
	dir = json_get(n, "dir");
	if (!json_is_null(dir)) {
		int b;

		if (json_get_bool(dir, &b) != 0) {
			set_msg(msg, msgsz, "\"dir\" is not a boolean");
			return -1;
		}
		out->dir = b != 0;
	}
	return 0;
}

static int
parse_body(const char *body, size_t len, struct json_doc **doc, char *msg, size_t msgsz)
{
	struct json_limits lim = {
		.input_bytes_max = len + 1,
		.depth_max = DISCOVERY_JSON_DEPTH_MAX,
		.nodes_max = DISCOVERY_JSON_NODES_MAX,
		.string_bytes_max = DISCOVERY_STRING_BYTES_MAX,
	};
	char jmsg[JSON_ERRMSG_BYTES_MAX];
	int rc;

	rc = json_parse(body, len, &lim, doc, jmsg, sizeof(jmsg));
	if (rc == -ERR_NOMEM) {
		set_msg(msg, msgsz, "out of memory");
		return DISCOVERY_ERR_OTHER;
	}
	if (rc != 0) {
		set_msg(msg, msgsz, "%s", jmsg);
		return DISCOVERY_ERR_BAD_ENDPOINT;
	}
	if (json_doc_root(*doc)->type != JSON_OBJECT) {
		json_doc_free(*doc);
		*doc = NULL;
		set_msg(msg, msgsz, "response is not a JSON object");
		return DISCOVERY_ERR_BAD_ENDPOINT;
	}
	return DISCOVERY_OK;
}

int
discovery_nodes_parse(const char *body, size_t len, struct discovery_nodes *ns, char **dir_key,
	char *msg, size_t msgsz)
{
	struct json_doc *doc = NULL;
	const struct json_node *node, *kids;
	struct discovery_nodes add = { NULL, 0, 0 };
	struct jnode jn;
	char *dk = NULL;
	int rc;

	if (dir_key != NULL)
		*dir_key = NULL;
	rc = parse_body(body, len, &doc, msg, msgsz);
	if (rc != DISCOVERY_OK)
		return rc;
	node = json_get(json_doc_root(doc), "node");
	rc = DISCOVERY_ERR_BAD_ENDPOINT;
	if (jnode_read(node, false, &jn, msg, msgsz) != 0)
		goto out;
	kids = json_get(node, "nodes");
	if (!json_is_null(kids) && kids->type != JSON_ARRAY) {
		set_msg(msg, msgsz, "\"nodes\" is not an array");
		goto out;
	}
	if (json_len(kids) > DISCOVERY_NODES_MAX) {
		set_msg(msg, msgsz, "more than %d registrations", DISCOVERY_NODES_MAX);
		goto out;
	}
	for (const struct json_node *k = json_first(kids); k != NULL; k = k->next) {
		struct jnode c;
		char *key, *value;

		if (jnode_read(k, true, &c, msg, msgsz) != 0)
			goto out;
		if (strcmp(key_base(c.key), "_config") == 0)
			continue;
		key = mem_strdup(c.key);
		value = mem_strdup(c.value);
		if (key == NULL || value == NULL || nodes_push(&add, key, value, c.created_index,
		    c.modified_index) != 0) {
			if (key == NULL || value == NULL) {
				mem_free(key);
				mem_free(value);
			}
			set_msg(msg, msgsz, "out of memory");
			rc = DISCOVERY_ERR_OTHER;
			goto out;
		}
	}
	if (dir_key != NULL) {
		dk = mem_strdup(jn.key);
		if (dk == NULL) {
			set_msg(msg, msgsz, "out of memory");
			rc = DISCOVERY_ERR_OTHER;
			goto out;
		}
	}
	/* Room first, so that moving cannot fail and a failure leaves ns as it was. */
	if (ns->cap - ns->n < add.n) {
		size_t cap = ns->n + add.n;
		struct discovery_node *v = mem_realloc(ns->v, cap * sizeof(*v));

		if (v == NULL) {
			mem_free(dk);
			set_msg(msg, msgsz, "out of memory");
			rc = DISCOVERY_ERR_OTHER;
			goto out;
		}
		ns->v = v;
		ns->cap = cap;
	}
	if (add.n > 0) {
		memcpy(ns->v + ns->n, add.v, add.n * sizeof(*add.v));
		ns->n += add.n;
		add.n = 0;
	}
	if (dir_key != NULL)
		*dir_key = dk;
	set_msg(msg, msgsz, "%s", "");
	rc = DISCOVERY_OK;
out:
	discovery_nodes_free(&add);
	json_doc_free(doc);
	return rc;
}

static int
cmp_node(const void *a, const void *b)
{
	const struct discovery_node *x = a, *y = b;

	if (x->created_index != y->created_index)
		return x->created_index < y->created_index ? -1 : 1;
	return strcmp(x->key, y->key);
}

void
discovery_nodes_sort(struct discovery_nodes *ns)
{
	if (ns->n > 1)
		qsort(ns->v, ns->n, sizeof(*ns->v), cmp_node);
}

long
discovery_nodes_find(const struct discovery_nodes *ns, const char *self_base)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(key_base(ns->v[i].key), self_base) == 0)
			return (long)i;
	return -1;
}

int
discovery_nodes_check(const struct discovery_nodes *ns, int64_t size, const char *self_base)
{
	for (size_t i = 0; i < ns->n; i++) {
		if (strcmp(key_base(ns->v[i].key), self_base) == 0)
			break;
		if ((int64_t)i >= size - 1)
			return DISCOVERY_ERR_FULL_CLUSTER;
	}
	return DISCOVERY_OK;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * One element of a URLs map, as etcd's types.NewURLs checks it after
 * strings.TrimSpace: scheme http or https, an authority of the form
 * host:port, no path. s[0 .. len) is already trimmed.
 */
static int
url_check(const char *s, size_t len, char *msg, size_t msgsz)
{
	const char *e = s + len, *sep = NULL, *host, *hend, *port = NULL;

	for (const char *c = s; c < e; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == ' ') {
			set_msg(msg, msgsz, "URL contains a space or control character: %.*s", (int)len, s);
			return -ERR_PARSE;
		}
	for (const char *c = s; c + 2 < e; c++)
		if (c[0] == ':' && c[1] == '/' && c[2] == '/') {
			sep = c;
			break;
		}
	if (sep == NULL || !((sep - s == 4 && strncasecmp(s, "http", 4) == 0) ||
	    (sep - s == 5 && strncasecmp(s, "https", 5) == 0))) {
		set_msg(msg, msgsz, "URL scheme must be http or https: %.*s", (int)len, s);
		return -ERR_PARSE;
	}
	host = sep + 3;
	hend = host;
	while (hend < e && *hend != '/' && *hend != '?' && *hend != '#')
		hend++;
	if (hend < e && *hend == '/') {
		set_msg(msg, msgsz, "URL must not contain a path: %.*s", (int)len, s);
		return -ERR_PARSE;
	}
	for (const char *c = hend - 1; c >= host; c--)
		if (*c == '@') {
			host = c + 1;
			break;
		}
	if (host < hend && *host == '[') {
		const char *rb = memchr(host, ']', (size_t)(hend - host));

		if (rb != NULL && rb + 1 < hend && rb[1] == ':')
			port = rb + 2;
	} else {
		for (const char *c = host; c < hend; c++)
			if (*c == ':') {
				if (port != NULL) {
					port = NULL; /* Go: too many colons in address */
					break;
				}
				port = c + 1;
			}
	}
	if (port == NULL) {
		set_msg(msg, msgsz, "URL address does not have the form \"host:port\": %.*s", (int)len, s);
		return -ERR_PARSE;
	}
	for (const char *c = port; c < hend; c++)
		if (*c < '0' || *c > '9') {
			set_msg(msg, msgsz, "invalid port in URL: %.*s", (int)len, s);
			return -ERR_PARSE;
		}
	return 0;
}

/*
 * Walks a URLs map string ("a=u1,a=u2,b=u3") as etcd's types.NewURLsMap:
 * elements split on ',', empty ones skipped, the name before the first '=',
 * every URL checked. Counts distinct names; collects URLs when urls is not
 * NULL (lower-case scheme, as URL.String() gives them).
 */
static int
urls_map_walk(const char *s, size_t *nnames, char ***urls, size_t *nurls, char *msg, size_t msgsz)
{
	const char **names = NULL;
	size_t nn = 0, ncap = 0, nu = 0, ucap = 0;
	char **uv = NULL;
	const char *p = s;
	int rc = 0;

	while (*p != '\0' && rc == 0) {
		const char *comma = strchr(p, ',');
		const char *e = comma != NULL ? comma : p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(e - p));
		const char *ub, *ue;
		size_t namelen = eq != NULL ? (size_t)(eq - p) : (size_t)(e - p);
		size_t k;

		if (e == p) {
			p = comma != NULL ? comma + 1 : e;
			continue;
		}
		ub = eq != NULL ? eq + 1 : e;
		ue = e;
		while (ub < ue && is_space(*ub))
			ub++;
		while (ue > ub && is_space(ue[-1]))
			ue--;
		rc = url_check(ub, (size_t)(ue - ub), msg, msgsz);
		if (rc != 0)
			break;
		for (k = 0; k < nn; k++)
			if (strncmp(names[k], p, namelen) == 0 && (names[k][namelen] == '=' ||
			    names[k][namelen] == ',' || names[k][namelen] == '\0'))
				break;
		if (k == nn) {
			if (nn == ncap) {
				size_t cap = ncap ? ncap * 2 : 8;
				const char **v = mem_realloc(names, cap * sizeof(*v));

				if (v == NULL) {
					rc = -ERR_NOMEM;
					break;
				}
				names = v;
				ncap = cap;
			}
			names[nn++] = p;
		}
		if (urls != NULL) {
			char *u;

			if (nu == ucap) {
				size_t cap = ucap ? ucap * 2 : 8;
				char **v = mem_realloc(uv, cap * sizeof(*v));

				if (v == NULL) {
					rc = -ERR_NOMEM;
					break;
				}
				uv = v;
				ucap = cap;
			}
			u = mem_strndup(ub, (size_t)(ue - ub));
			if (u == NULL) {
				rc = -ERR_NOMEM;
				break;
			}
			for (char *c = u; *c != ':'; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c - 'A' + 'a');
			uv[nu++] = u;
		}
		p = comma != NULL ? comma + 1 : e;
	}
	mem_free(names);
	if (rc == -ERR_NOMEM)
		set_msg(msg, msgsz, "out of memory");
	if (rc != 0) {
		discovery_urls_free(uv, nu);
		return rc;
	}
	*nnames = nn;
	if (urls != NULL) {
		if (nu > 1)
			qsort(uv, nu, sizeof(*uv), cmp_strp);
		*urls = uv;
		*nurls = nu;
	}
	return 0;
}

int
discovery_nodes_to_cluster(const struct discovery_nodes *ns, size_t count, int64_t size, struct buf *out)
{
	char msg[256];
	size_t start = out->len, nnames = 0;
	int rc = 0;

	if (count > ns->n)
		count = ns->n;
	for (size_t i = 0; i < count && rc == 0; i++) {
		if (i > 0)
			rc = buf_putc(out, ',');
		if (rc == 0)
			rc = buf_puts(out, ns->v[i].value);
	}
	if (rc != 0 || buf_cstr(out) == NULL)
		return DISCOVERY_ERR_OTHER;
	rc = urls_map_walk(out->data + start, &nnames, NULL, NULL, msg, sizeof(msg));
	if (rc == -ERR_NOMEM)
		return DISCOVERY_ERR_OTHER;
	if (rc != 0) {
		log_warn(PKG, "bad URL in a registration", "err=%s", log_q(msg));
		return DISCOVERY_ERR_INVALID_URL;
	}
	if ((int64_t)nnames != size)
		return DISCOVERY_ERR_DUPLICATE_NAME;
	return DISCOVERY_OK;
}

int
discovery_cluster_urls(const char *cluster, char ***urls, size_t *n, char *msg, size_t msgsz)
{
	size_t nnames;

	*urls = NULL;
	*n = 0;
	set_msg(msg, msgsz, "%s", "");
	return urls_map_walk(cluster, &nnames, urls, n, msg, msgsz);
}

void
discovery_urls_free(char **urls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mem_free(urls[i]);
	mem_free(urls);
}

/* Go's url.QueryEscape: unreserved bytes stay, space is '+', the rest %XX. */
static int
query_escape(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;

	for (; *s != '\0' && rc == 0; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			rc = buf_putc(b, (char)c);
		} else if (c == ' ') {
			rc = buf_putc(b, '+');
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			rc = buf_append(b, e, 3);
		}
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* The client                                                          */
/* ------------------------------------------------------------------ */

enum dkind {
	KIND_JOIN,
	KIND_GET,
};

enum dstate {
	ST_IDLE,
	ST_SIZE,       /* GET <prefix>/_config/size */
	ST_DIR,        /* GET <prefix> */
	ST_CREATE,     /* PUT <prefix>/<id>?prevExist=false */
	ST_SELF_WATCH, /* GET <prefix>/<id>?wait=true&waitIndex=<createdIndex> */
	ST_WAIT,       /* GET <prefix>?wait=true&recursive=true&waitIndex=<index+1> */
	ST_BACKOFF,    /* timer before the next check */
	ST_DONE,
};

struct discovery {
	struct loop *loop;
	struct http_client *http;
	struct http_call *call;
	uint64_t timer_id;
	enum dkind kind;
	enum dstate state;
	bool registered;
	bool dead;
	struct discovery_url url;
	char self_base[17];
	struct buf self_value;
	struct buf reqbuf;
	uint64_t request_timeout_ms;
	uint64_t connect_timeout_ms;
	uint64_t watch_timeout_ms;
	uint64_t backoff_ms;
	uint64_t backoff_max_ms;
	unsigned retries_max;
	unsigned retries;
	int64_t size;
	uint64_t index;  /* the listing's X-Etcd-Index, then the last event's modifiedIndex */
	char *dir_key;
	struct discovery_nodes nodes;
	struct buf cluster;
	int code;
	char errmsg[DISCOVERY_ERRMSG_BYTES];
	discovery_done_fn *fn;
	void *arg;
	struct loop_defer_node done_node;
};

static void check_begin(struct discovery *d);

static void
stop_io(struct discovery *d)
{
	if (d->call != NULL) {
		http_call_cancel(d->call);
		d->call = NULL;
	}
	if (d->timer_id != 0) {
		loop_timer_del(d->loop, d->timer_id);
		d->timer_id = 0;
	}
}

static void
destroy(struct discovery *d)
{
	http_client_free(d->http);
	buf_free(&d->self_value);
	buf_free(&d->reqbuf);
	buf_free(&d->cluster);
	discovery_nodes_free(&d->nodes);
	mem_free(d->dir_key);
	mem_free(d);
}

static void
deliver(void *arg)
{
	struct discovery *d = arg;
	struct discovery_result r;

	if (d->dead) {
		destroy(d);
		return;
	}
	r.code = d->code;
	r.cluster = d->code == DISCOVERY_OK ? buf_cstr(&d->cluster) : NULL;
	r.errmsg = d->errmsg;
	if (d->code == DISCOVERY_OK && r.cluster == NULL) {
		r.code = DISCOVERY_ERR_OTHER;
		r.errmsg = "out of memory";
	}
	/* Last use of d: the callback may free it. */
	d->fn(d, &r, d->arg);
}

static void
finish(struct discovery *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
finish(struct discovery *d, int code, const char *fmt, ...)
{
	va_list ap;

	if (d->state == ST_DONE)
		return;
	stop_io(d);
	d->state = ST_DONE;
	d->code = code;
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(d->errmsg, sizeof(d->errmsg), fmt, ap);
		va_end(ap);
	} else {
		snprintf(d->errmsg, sizeof(d->errmsg), "%s", discovery_code_str(code));
	}
	if (code != DISCOVERY_OK)
		log_debug(PKG, "discovery ended", "code=%s err=%s", discovery_code_name(code), log_q(d->errmsg));
	loop_defer_at(d->loop, &d->done_node, deliver, d);
}

/* A bad answer from the service: etcd's error, the detail in the log. */
static void
bad_endpoint(struct discovery *d, const char *what, const char *detail)
{
	log_warn(PKG, "bad answer from the discovery service", "step=%s url=%s err=%s", what,
		log_q(d->url.endpoint), log_q(detail));
	finish(d, DISCOVERY_ERR_BAD_ENDPOINT, NULL);
}

static const char *
step_name(const struct discovery *d)
{
	return d->state == ST_WAIT ? "waiting for other nodes" : "cluster status check";
}

static void
format_duration(char *out, size_t cap, uint64_t ms)
{
	if (ms % 1000 == 0)
		snprintf(out, cap, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(out, cap, "%" PRIu64 "ms", ms);
}

static int64_t
backoff_fire(struct loop *l, uint64_t id, void *arg)
{
	struct discovery *d = arg;

	(void)l;
	(void)id;
	d->timer_id = 0;
	check_begin(d);
	return LOOP_TIMER_DONE;
}

/*
 * A transient failure during the status check or the wait: wait
 * backoff_ms << retries (etcd's 1 s << n, capped) and check again from the
 * size key, or give up once retries_max failures were retried.
 */
static void
transient(struct discovery *d, const char *detail)
{
	uint64_t delay;
	char dur[32];

	if (d->retries >= d->retries_max) {
		log_warn(PKG, "giving up on the discovery service", "step=%s url=%s retries=%u err=%s",
			step_name(d), log_q(d->url.endpoint), d->retries, log_q(detail));
		finish(d, DISCOVERY_ERR_TOO_MANY_RETRIES, NULL);
		return;
	}
	d->retries++;
	if (d->retries >= 63 || d->backoff_ms > (d->backoff_max_ms >> d->retries))
		delay = d->backoff_max_ms;
	else
		delay = d->backoff_ms << d->retries;
	format_duration(dur, sizeof(dur), delay);
	log_warn(PKG, "error connecting to the discovery service, retrying", "step=%s url=%s retry_in=%s err=%s",
		step_name(d), log_q(d->url.endpoint), dur, log_q(detail));
	d->state = ST_BACKOFF;
	d->timer_id = loop_timer_add(d->loop, delay, backoff_fire, d);
	if (d->timer_id == 0)
		finish(d, DISCOVERY_ERR_OTHER, "out of memory");
}

static void on_http_done(struct http_call *call, int err, const struct http_response *resp, void *arg);

/*
 * Starts one call: url = endpoint + prefix + tail (tail carries the key
 * suffix and the query, already escaped). body, if not NULL, is sent as a
 * form. A failure to start is handled here (finish or retry).
 */
static void
request(struct discovery *d, enum dstate st, const char *method, const char *tail, const char *body,
	size_t body_len, uint64_t timeout_ms)
{
	struct http_call_spec spec;
	struct http_header ct = {
		"Content-Type", "application/x-www-form-urlencoded",
		sizeof("Content-Type") - 1, sizeof("application/x-www-form-urlencoded") - 1,
	};
	int rc;

	d->state = st;
	buf_reset(&d->reqbuf);
	if (buf_printf(&d->reqbuf, "%s%s%s", d->url.endpoint, d->url.prefix, tail) != 0 ||
	    buf_cstr(&d->reqbuf) == NULL) {
		finish(d, DISCOVERY_ERR_OTHER, "out of memory");
		return;
	}
	memset(&spec, 0, sizeof(spec));
	spec.method = method;
	spec.url = buf_cstr(&d->reqbuf);
	if (body != NULL) {
		spec.headers = &ct;
		spec.nheaders = 1;
		spec.body = body;
		spec.body_len = body_len;
		spec.has_body = true;
	}
	spec.connect_timeout_ms = d->connect_timeout_ms;
	spec.timeout_ms = timeout_ms;
	spec.on_done = on_http_done;
	spec.arg = d;
	rc = http_call_start(d->http, &spec, &d->call);
	if (rc == 0)
		return;
	d->call = NULL;
	if (rc == -ERR_NOMEM) {
		finish(d, DISCOVERY_ERR_OTHER, "out of memory");
	} else if (rc == -ERR_CONNECT && (st == ST_SIZE || st == ST_DIR || st == ST_WAIT)) {
		/* Name resolution failed: Go's dial error, retried like a refused connection. */
		transient(d, http_client_errmsg(d->http));
	} else if (rc == -ERR_CONNECT) {
		finish(d, DISCOVERY_ERR_OTHER, GO_CLUSTER_UNAVAILABLE "; error #0: %s", http_client_errmsg(d->http));
	} else {
		log_warn(PKG, "cannot start a request", "url=%s err=%s", log_q(spec.url),
			log_q(http_client_errmsg(d->http)));
		finish(d, DISCOVERY_ERR_INVALID_URL, NULL);
	}
}

/* How a finished call went. */
enum outcome {
	OUT_ANSWER,    /* a response below 500: look at it */
	OUT_TRANSIENT, /* connection trouble or 5xx: detail says what */
	OUT_TIMEOUT,   /* the call's own time limit: detail says what */
	OUT_DONE,      /* finished here (out of memory, oversized body) */
};

static enum outcome
classify(struct discovery *d, int err, const struct http_response *resp, const char *callmsg,
	char *detail, size_t dsz)
{
	if (err == -ERR_NOMEM) {
		finish(d, DISCOVERY_ERR_OTHER, "out of memory");
		return OUT_DONE;
	}
	if (err == -ERR_LIMIT) {
		bad_endpoint(d, step_name(d), "response larger than the body limit");
		return OUT_DONE;
	}
	if (err == -ERR_TIMEOUT) {
		snprintf(detail, dsz, "%s", callmsg);
		return OUT_TIMEOUT;
	}
	if (err != 0 || resp == NULL) {
		snprintf(detail, dsz, "%s", callmsg[0] != '\0' ? callmsg : err_str(err));
		return OUT_TRANSIENT;
	}
	if (resp->status >= 500 && resp->status <= 599) {
		if (resp->status == 500 || resp->status == 503)
			snprintf(detail, dsz, "client: etcd member %s has no leader", d->url.endpoint);
		else
			snprintf(detail, dsz, "client: etcd member %s returns server error [%s]", d->url.endpoint,
				http_reason(resp->status)[0] != '\0' ? http_reason(resp->status) : "unknown");
		return OUT_TRANSIENT;
	}
	return OUT_ANSWER;
}

/*
 * An etcd error body ({"errorCode":100,"message":...}), decoded as Go's
 * json.Unmarshal into client.Error would. Returns 0 with *code and the
 * client's text ("100: Key not found (/x) [5]"), or -1 if the body is not
 * one (ErrInvalidJSON).
 */
static int
etcd_error(const struct http_response *resp, int64_t *code, char *text, size_t tsz)
{
	struct json_doc *doc = NULL;
	const struct json_node *root, *n;
	const char *message = "", *cause = "";
	uint64_t index = 0;
	size_t len;
	char msg[JSON_ERRMSG_BYTES_MAX];

	*code = 0;
	if (parse_body(resp->body, resp->body_len, &doc, msg, sizeof(msg)) != DISCOVERY_OK)
		return -1;
	root = json_doc_root(doc);
	n = json_get_fold(root, "errorCode");
	if (!json_is_null(n) && json_get_int(n, code) != 0)
		goto bad;
	n = json_get_fold(root, "message");
	if (!json_is_null(n) && json_get_str(n, &message, &len) != 0)
		goto bad;
	n = json_get_fold(root, "cause");
	if (!json_is_null(n) && json_get_str(n, &cause, &len) != 0)
		goto bad;
	n = json_get_fold(root, "index");
	if (!json_is_null(n) && json_get_uint(n, &index) != 0)
		goto bad;
	snprintf(text, tsz, "%" PRId64 ": %s (%s) [%" PRIu64 "]", *code, message, cause, index);
	json_doc_free(doc);
	return 0;
bad:
	json_doc_free(doc);
	return -1;
}

/* The X-Etcd-Index header: 0 if absent, -1 if not a number. */
static int
etcd_index(const struct http_response *resp, uint64_t *index)
{
	const char *h = http_response_header(resp, "X-Etcd-Index");
	uint64_t v = 0;

	*index = 0;
	if (h == NULL || *h == '\0')
		return 0;
	for (const char *c = h; *c != '\0'; c++) {
		if (*c < '0' || *c > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*c - '0');
	}
	*index = v;
	return 0;
}

static void
check_begin(struct discovery *d)
{
	request(d, ST_SIZE, "GET", "/_config/size?quorum=false&recursive=false&sorted=false", NULL, 0,
		d->request_timeout_ms);
}

static void
got_size(struct discovery *d, const struct http_response *resp)
{
	struct json_doc *doc = NULL;
	struct jnode jn;
	char msg[JSON_ERRMSG_BYTES_MAX], text[DISCOVERY_ERRMSG_BYTES];
	int64_t code;
	int rc;

	if (resp->status != 200 && resp->status != 201) {
		if (etcd_error(resp, &code, text, sizeof(text)) != 0) {
			bad_endpoint(d, "size", "error response is not etcd's JSON");
			return;
		}
		if (code == ETCD_ECODE_KEY_NOT_FOUND)
			finish(d, DISCOVERY_ERR_SIZE_NOT_FOUND, NULL);
		else
			finish(d, DISCOVERY_ERR_OTHER, "%s", text);
		return;
	}
	if (resp->body_len == 0) {
		finish(d, DISCOVERY_ERR_OTHER, GO_EMPTY_BODY);
		return;
	}
	rc = parse_body(resp->body, resp->body_len, &doc, msg, sizeof(msg));
	if (rc == DISCOVERY_ERR_OTHER) {
		finish(d, rc, "%s", msg);
		return;
	}
	if (rc != DISCOVERY_OK) {
		bad_endpoint(d, "size", msg);
		return;
	}
	if (jnode_read(json_get(json_doc_root(doc), "node"), false, &jn, msg, sizeof(msg)) != 0) {
		json_doc_free(doc);
		bad_endpoint(d, "size", msg);
		return;
	}
	rc = discovery_parse_size(jn.value, strlen(jn.value), &d->size);
	if (rc != DISCOVERY_OK)
		log_warn(PKG, "bad cluster size", "value=%s", log_q(jn.value));
	json_doc_free(doc);
	if (rc != DISCOVERY_OK) {
		finish(d, rc, NULL);
		return;
	}
	request(d, ST_DIR, "GET", "?quorum=false&recursive=false&sorted=false", NULL, 0, d->request_timeout_ms);
}

static void
log_found(struct discovery *d)
{
	for (size_t i = 0; i < d->nodes.n; i++) {
		const char *base = key_base(d->nodes.v[i].key);

		if (d->kind == KIND_JOIN && strcmp(base, d->self_base) == 0)
			log_notice(PKG, "found self in the cluster", "id=%s", log_q(base));
		else
			log_notice(PKG, "found peer in the cluster", "id=%s", log_q(base));
	}
}

static void
complete(struct discovery *d)
{
	size_t count = d->nodes.n < (size_t)d->size ? d->nodes.n : (size_t)d->size;
	int rc;

	buf_reset(&d->cluster);
	rc = discovery_nodes_to_cluster(&d->nodes, count, d->size, &d->cluster);
	if (rc != DISCOVERY_OK) {
		log_warn(PKG, "registrations do not form a cluster", "cluster=%s err=%s",
			log_q(buf_cstr(&d->cluster)), log_q(discovery_code_str(rc)));
		if (rc == DISCOVERY_ERR_OTHER)
			finish(d, rc, "out of memory");
		else
			finish(d, rc, NULL);
		return;
	}
	/* Self is among the first size by construction; a broken service could still say otherwise. */
	if (d->kind == KIND_JOIN && (discovery_nodes_find(&d->nodes, d->self_base) < 0 ||
	    discovery_nodes_find(&d->nodes, d->self_base) >= (long)count)) {
		finish(d, DISCOVERY_ERR_FULL_CLUSTER, NULL);
		return;
	}
	log_notice(PKG, "found needed peers", "count=%zu", count);
	finish(d, DISCOVERY_OK, "%s", "");
}

static void
wait_next(struct discovery *d)
{
	char tail[96];

	if ((int64_t)d->nodes.n >= d->size) {
		complete(d);
		return;
	}
	log_notice(PKG, "waiting for peers", "found=%zu missing=%" PRId64, d->nodes.n,
		d->size - (int64_t)d->nodes.n);
	snprintf(tail, sizeof(tail), "?recursive=true&wait=true&waitIndex=%" PRIu64, d->index + 1);
	request(d, ST_WAIT, "GET", tail, NULL, 0, d->watch_timeout_ms);
}

static void
got_dir(struct discovery *d, const struct http_response *resp)
{
	char msg[JSON_ERRMSG_BYTES_MAX], text[DISCOVERY_ERRMSG_BYTES];
	uint64_t index;
	int64_t code;
	int rc;

	if (resp->status != 200 && resp->status != 201) {
		if (etcd_error(resp, &code, text, sizeof(text)) != 0) {
			bad_endpoint(d, "token", "error response is not etcd's JSON");
			return;
		}
		if (code == ETCD_ECODE_KEY_NOT_FOUND)
			finish(d, DISCOVERY_ERR_TOKEN_NOT_FOUND, NULL);
		else
			finish(d, DISCOVERY_ERR_OTHER, "%s", text);
		return;
	}
	if (resp->body_len == 0) {
		finish(d, DISCOVERY_ERR_OTHER, GO_EMPTY_BODY);
		return;
	}
	if (etcd_index(resp, &index) != 0) {
		bad_endpoint(d, "token", "X-Etcd-Index is not a number");
		return;
	}
	discovery_nodes_free(&d->nodes);
	mem_free(d->dir_key);
	d->dir_key = NULL;
	rc = discovery_nodes_parse(resp->body, resp->body_len, &d->nodes, &d->dir_key, msg, sizeof(msg));
	if (rc == DISCOVERY_ERR_OTHER) {
		finish(d, rc, "%s", msg);
		return;
	}
	if (rc != DISCOVERY_OK) {
		bad_endpoint(d, "token", msg);
		return;
	}
	d->index = index;
	discovery_nodes_sort(&d->nodes);
	if (discovery_nodes_check(&d->nodes, d->size, d->self_base) == DISCOVERY_ERR_FULL_CLUSTER) {
		if (d->kind == KIND_GET) {
			/* A proxy takes the first size registrations as the cluster. */
			nodes_truncate(&d->nodes, (size_t)d->size);
			complete(d);
			return;
		}
		finish(d, DISCOVERY_ERR_FULL_CLUSTER, NULL);
		return;
	}
	if (d->kind == KIND_JOIN && !d->registered) {
		struct buf body = BUF_INIT;
		char tail[64];

		if (buf_puts(&body, "value=") != 0 || query_escape(&body, buf_cstr(&d->self_value)) != 0) {
			buf_free(&body);
			finish(d, DISCOVERY_ERR_OTHER, "out of memory");
			return;
		}
		snprintf(tail, sizeof(tail), "/%s?prevExist=false", d->self_base);
		request(d, ST_CREATE, "PUT", tail, body.data + body.off, buf_avail(&body), d->request_timeout_ms);
		buf_free(&body);
		return;
	}
	nodes_truncate(&d->nodes, (size_t)d->size);
	log_found(d);
	wait_next(d);
}

/* A failed registration is final, as in etcd; the text is the Go client's. */
static void
final_failure(struct discovery *d, enum outcome o, const char *detail)
{
	if (o == OUT_TIMEOUT)
		finish(d, DISCOVERY_ERR_OTHER, GO_DEADLINE);
	else
		finish(d, DISCOVERY_ERR_OTHER, GO_CLUSTER_UNAVAILABLE "; error #0: %s", detail);
}

static void
got_create(struct discovery *d, const struct http_response *resp)
{
	struct json_doc *doc = NULL;
	struct jnode jn;
	char msg[JSON_ERRMSG_BYTES_MAX], text[DISCOVERY_ERRMSG_BYTES], tail[96];
	int64_t code;
	int rc;

	if (resp->status != 200 && resp->status != 201) {
		if (etcd_error(resp, &code, text, sizeof(text)) != 0) {
			bad_endpoint(d, "register", "error response is not etcd's JSON");
			return;
		}
		if (code == ETCD_ECODE_NODE_EXIST)
			finish(d, DISCOVERY_ERR_DUPLICATE_ID, NULL);
		else
			finish(d, DISCOVERY_ERR_OTHER, "%s", text);
		return;
	}
	if (resp->body_len == 0) {
		finish(d, DISCOVERY_ERR_OTHER, GO_EMPTY_BODY);
		return;
	}
	rc = parse_body(resp->body, resp->body_len, &doc, msg, sizeof(msg));
	if (rc == DISCOVERY_ERR_OTHER) {
		finish(d, rc, "%s", msg);
		return;
	}
	if (rc != DISCOVERY_OK) {
		bad_endpoint(d, "register", msg);
		return;
	}
	rc = jnode_read(json_get(json_doc_root(doc), "node"), false, &jn, msg, sizeof(msg));
	json_doc_free(doc);
	if (rc != 0) {
		bad_endpoint(d, "register", msg);
		return;
	}
	if (jn.created_index == 0) {
		/* Watching from index 0 would wait for the next change instead of this one. */
		bad_endpoint(d, "register", "created node has no createdIndex");
		return;
	}
	log_info(PKG, "registered", "id=%s value=%s", d->self_base, log_q(buf_cstr(&d->self_value)));
	/* Make sure the member we talk to has applied it (etcd watches from createdIndex - 1). */
	snprintf(tail, sizeof(tail), "/%s?recursive=false&wait=true&waitIndex=%" PRIu64, d->self_base,
		jn.created_index);
	request(d, ST_SELF_WATCH, "GET", tail, NULL, 0, d->request_timeout_ms);
}

static void
got_self_watch(struct discovery *d, const struct http_response *resp)
{
	char text[DISCOVERY_ERRMSG_BYTES];
	int64_t code;

	if (resp->status != 200 && resp->status != 201) {
		if (etcd_error(resp, &code, text, sizeof(text)) != 0)
			bad_endpoint(d, "register", "error response is not etcd's JSON");
		else
			finish(d, DISCOVERY_ERR_OTHER, "%s", text);
		return;
	}
	d->registered = true;
	check_begin(d);
}

static bool
action_removes(const char *action)
{
	return strcmp(action, "delete") == 0 || strcmp(action, "expire") == 0 ||
		strcmp(action, "compareAndDelete") == 0;
}

/* Whether key is a direct child of the token directory. */
static bool
is_child(const struct discovery *d, const char *key)
{
	const char *base = key_base(key);
	size_t plen;

	if (d->dir_key == NULL || d->dir_key[0] == '\0')
		return true; /* the service did not say; take the key's word */
	plen = strlen(d->dir_key);
	while (plen > 0 && d->dir_key[plen - 1] == '/')
		plen--;
	return base > key && (size_t)(base - key) == plen + 1 && strncmp(key, d->dir_key, plen) == 0;
}

static void
got_event(struct discovery *d, const struct http_response *resp)
{
	struct json_doc *doc = NULL;
	const struct json_node *root, *act;
	struct jnode jn;
	const char *action = "";
	char msg[JSON_ERRMSG_BYTES_MAX], text[DISCOVERY_ERRMSG_BYTES];
	int64_t code;
	size_t len;
	int rc;

	if (resp->status != 200 && resp->status != 201) {
		if (etcd_error(resp, &code, text, sizeof(text)) != 0) {
			bad_endpoint(d, "wait", "error response is not etcd's JSON");
			return;
		}
		if (code == ETCD_ECODE_EVENT_INDEX_CLEARED) {
			/* More than the event history passed by: read the directory again. */
			transient(d, text);
			return;
		}
		finish(d, DISCOVERY_ERR_OTHER, "%s", text);
		return;
	}
	if (resp->body_len == 0) {
		/* The service ended the long poll without an event: ask again. */
		wait_next(d);
		return;
	}
	rc = parse_body(resp->body, resp->body_len, &doc, msg, sizeof(msg));
	if (rc == DISCOVERY_ERR_OTHER) {
		finish(d, rc, "%s", msg);
		return;
	}
	if (rc != DISCOVERY_OK) {
		bad_endpoint(d, "wait", msg);
		return;
	}
	root = json_doc_root(doc);
	act = json_get(root, "action");
	if (!json_is_null(act) && json_get_str(act, &action, &len) != 0) {
		json_doc_free(doc);
		bad_endpoint(d, "wait", "\"action\" is not a string");
		return;
	}
	if (jnode_read(json_get(root, "node"), true, &jn, msg, sizeof(msg)) != 0) {
		json_doc_free(doc);
		bad_endpoint(d, "wait", msg);
		return;
	}
	if (jn.modified_index <= d->index) {
		/* An event older than asked for: the same one again and again would never end. */
		json_doc_free(doc);
		bad_endpoint(d, "wait", "event older than the requested waitIndex");
		return;
	}
	d->index = jn.modified_index;
	if (!action_removes(action) && !jn.dir && is_child(d, jn.key) &&
	    strcmp(key_base(jn.key), "_config") != 0 &&
	    discovery_nodes_find(&d->nodes, key_base(jn.key)) < 0) {
		char *key = mem_strdup(jn.key), *value = mem_strdup(jn.value);

		if (key == NULL || value == NULL) {
			mem_free(key);
			mem_free(value);
			json_doc_free(doc);
			finish(d, DISCOVERY_ERR_OTHER, "out of memory");
			return;
		}
		if (nodes_push(&d->nodes, key, value, jn.created_index, jn.modified_index) != 0) {
			json_doc_free(doc);
			finish(d, DISCOVERY_ERR_OTHER, "out of memory");
			return;
		}
		log_notice(PKG, "found peer in the cluster", "id=%s", log_q(key_base(jn.key)));
	}
	json_doc_free(doc);
	wait_next(d);
}

static void
on_http_done(struct http_call *call, int err, const struct http_response *resp, void *arg)
{
	struct discovery *d = arg;
	char detail[DISCOVERY_ERRMSG_BYTES];
	enum outcome o;

	d->call = NULL;
	o = classify(d, err, resp, http_call_errmsg(call), detail, sizeof(detail));
	if (o == OUT_DONE)
		return;
	switch (d->state) {
	case ST_SIZE:
	case ST_DIR:
		if (o != OUT_ANSWER)
			transient(d, detail);
		else if (d->state == ST_SIZE)
			got_size(d, resp);
		else
			got_dir(d, resp);
		break;
	case ST_CREATE:
	case ST_SELF_WATCH:
		if (o != OUT_ANSWER)
			final_failure(d, o, detail);
		else if (d->state == ST_CREATE)
			got_create(d, resp);
		else
			got_self_watch(d, resp);
		break;
	case ST_WAIT:
		if (o == OUT_TIMEOUT)
			wait_next(d); /* a quiet long poll, not a failure */
		else if (o == OUT_TRANSIENT)
			transient(d, detail);
		else
			got_event(d, resp);
		break;
	default:
		break;
	}
}

static int
start(struct loop *l, const struct discovery_config *cfg, enum dkind kind, discovery_done_fn *fn, void *arg,
	struct discovery **out)
{
	struct http_client_opts ho;
	struct discovery *d;
	char msg[256];
	int rc;

	if (out != NULL)
		*out = NULL;
	if (l == NULL || cfg == NULL || cfg->url == NULL || fn == NULL)
		return -ERR_INVAL;
	if (kind == KIND_JOIN && (cfg->name == NULL || cfg->peer_urls == NULL || cfg->npeer_urls == 0))
		return -ERR_INVAL;
	d = mem_calloc(1, sizeof(*d));
	if (d == NULL)
		return -ERR_NOMEM;
	d->loop = l;
	d->kind = kind;
	d->fn = fn;
	d->arg = arg;
	d->request_timeout_ms = cfg->request_timeout_ms;
	d->connect_timeout_ms = cfg->connect_timeout_ms;
	d->watch_timeout_ms = cfg->watch_timeout_ms;
	d->backoff_ms = cfg->backoff_ms;
	d->backoff_max_ms = cfg->backoff_max_ms;
	d->retries_max = cfg->retries_max;
	buf_init(&d->self_value);
	buf_init(&d->reqbuf);
	buf_init(&d->cluster);
	snprintf(d->self_base, sizeof(d->self_base), "%" PRIx64, kind == KIND_JOIN ? cfg->id : 0);
	http_client_opts_default(&ho);
	ho.body_bytes_max = cfg->body_bytes_max ? cfg->body_bytes_max : DISCOVERY_BODY_BYTES_MAX;
	ho.idle_per_host_max = 2;
	ho.resolve_blocking = true;
	d->http = http_client_new(l, &ho);
	if (d->http == NULL) {
		mem_free(d);
		return -ERR_NOMEM;
	}
	if (out != NULL)
		*out = d;
	/* From here on every outcome, configuration errors included, goes through fn. */
	d->state = ST_IDLE;
	rc = discovery_url_parse(cfg->url, &d->url, msg, sizeof(msg));
	if (rc == -ERR_UNSUPPORTED) {
		finish(d, DISCOVERY_ERR_UNSUPPORTED, "discovery: %s", msg);
		return 0;
	}
	if (rc != 0) {
		log_warn(PKG, "bad discovery URL", "url=%s err=%s", log_q(cfg->url), log_q(msg));
		finish(d, DISCOVERY_ERR_INVALID_URL, NULL);
		return 0;
	}
	if (cfg->proxy != NULL && cfg->proxy[0] != '\0') {
		finish(d, DISCOVERY_ERR_UNSUPPORTED,
			"discovery: --discovery-proxy is not supported (corebox's HTTP client cannot use a proxy)");
		return 0;
	}
	if (kind == KIND_JOIN) {
		rc = discovery_self_value(cfg->name, cfg->peer_urls, cfg->npeer_urls, &d->self_value);
		if (rc == -ERR_NOMEM) {
			finish(d, DISCOVERY_ERR_OTHER, "out of memory");
			return 0;
		}
		if (rc != 0) {
			finish(d, DISCOVERY_ERR_INVALID_URL, NULL);
			return 0;
		}
	}
	log_info(PKG, "using the discovery service", "url=%s token=%s", log_q(d->url.endpoint),
		log_q(d->url.token));
	check_begin(d);
	return 0;
}

int
discovery_join_start(struct loop *l, const struct discovery_config *cfg, discovery_done_fn *fn, void *arg,
	struct discovery **out)
{
	return start(l, cfg, KIND_JOIN, fn, arg, out);
}

int
discovery_get_cluster_start(struct loop *l, const struct discovery_config *cfg, discovery_done_fn *fn,
	void *arg, struct discovery **out)
{
	return start(l, cfg, KIND_GET, fn, arg, out);
}

void
discovery_free(struct discovery *d)
{
	if (d == NULL)
		return;
	stop_io(d);
	if (d->done_node.pending) {
		/* The result is queued on the loop: let that deferred call free it. */
		d->dead = true;
		d->state = ST_DONE;
		return;
	}
	destroy(d);
}

unsigned
discovery_retries(const struct discovery *d)
{
	return d->retries;
}

/* ------------------------------------------------------------------ */
/* Blocking wrappers                                                   */
/* ------------------------------------------------------------------ */

struct sync_ctx {
	struct discovery_outcome *out;
	struct loop *loop;
	bool done;
};

static void
sync_done(struct discovery *d, const struct discovery_result *r, void *arg)
{
	struct sync_ctx *s = arg;

	s->out->code = r->code;
	snprintf(s->out->errmsg, sizeof(s->out->errmsg), "%s", r->errmsg);
	if (r->code == DISCOVERY_OK) {
		s->out->cluster = mem_strdup(r->cluster);
		if (s->out->cluster == NULL) {
			s->out->code = DISCOVERY_ERR_OTHER;
			snprintf(s->out->errmsg, sizeof(s->out->errmsg), "out of memory");
		}
	}
	s->done = true;
	discovery_free(d);
	/* The result arrives in the deferred phase: keep this turn from waiting in epoll. */
	loop_stop(s->loop);
}

static int
run_sync(const struct discovery_config *cfg, enum dkind kind, struct discovery_outcome *out)
{
	struct sync_ctx s = { out, NULL, false };
	struct discovery *d = NULL;
	struct loop *l;
	int rc;

	memset(out, 0, sizeof(*out));
	l = loop_new();
	if (l == NULL)
		return -ERR_NOMEM;
	s.loop = l;
	rc = start(l, cfg, kind, sync_done, &s, &d);
	while (rc == 0 && !s.done)
		rc = loop_run_once(l, -1);
	if (rc != 0 && d != NULL && !s.done)
		discovery_free(d);
	/* loop_free runs a result still queued, which then frees itself. */
	loop_free(l);
	if (rc != 0) {
		discovery_outcome_free(out);
		memset(out, 0, sizeof(*out));
	}
	return rc;
}

int
discovery_join_sync(const struct discovery_config *cfg, struct discovery_outcome *out)
{
	return run_sync(cfg, KIND_JOIN, out);
}

int
discovery_get_cluster_sync(const struct discovery_config *cfg, struct discovery_outcome *out)
{
	return run_sync(cfg, KIND_GET, out);
}

void
discovery_outcome_free(struct discovery_outcome *o)
{
	if (o == NULL)
		return;
	mem_free(o->cluster);
	o->cluster = NULL;
}
