/*
 * discovery: the etcd v2 discovery protocol client (etcd 2.3's discovery
 * package), used by the store server for --discovery and by proxies.
 *
 * A discovery URL names a directory on another etcd cluster,
 * http://host:port/v2/keys/_etcd/registry/<token> (or a masked URL such as
 * https://discovery.etcd.io/<token>, whose whole path is the key prefix).
 * Joining it:
 *   1. GET <prefix>/_config/size           the expected cluster size N
 *   2. GET <prefix>                         fail fast if N others registered
 *   3. PUT <prefix>/<id hex>?prevExist=false  value=name=peerURL[,name=peerURL2]
 *      then GET <prefix>/<id hex>?wait=true&waitIndex=<createdIndex>
 *   4. GET <prefix> again, then long-poll
 *      GET <prefix>?wait=true&recursive=true&waitIndex=<index+1> until N
 *      members are registered
 *   5. the first N registrations by createdIndex are the cluster; the result
 *      is the --initial-cluster string "name1=url1,name2=url2,...".
 * Transient failures (connection refused or reset, timeouts, 5xx answers)
 * of steps 1, 2 and 4 are retried after 2 s, 4 s, 8 s... (capped), at most
 * retries_max times in all, then DISCOVERY_ERR_TOO_MANY_RETRIES. A failed
 * registration (step 3) is not retried, as in etcd: the token must then be
 * replaced.
 *
 * Everything runs on the caller's loop and ends in one completion callback;
 * discovery_join_sync / discovery_get_cluster_sync run a private loop for
 * start-up paths that have nothing else to do meanwhile.
 *
 * Every byte from the discovery service is hostile: bodies are bounded
 * (DISCOVERY_BODY_BYTES_MAX), parsed with JSON limits, type-checked, and a
 * bad body ends discovery with DISCOVERY_ERR_BAD_ENDPOINT (the detail is
 * logged), never a crash or an endless loop.
 *
 * Not supported: --discovery-proxy (the HTTP client cannot talk through a
 * proxy yet: DISCOVERY_ERR_UNSUPPORTED with a message saying so) and
 * https discovery URLs until the TLS transport exists (the same code).
 *
 * Deviations from etcd 2.3, each on purpose: a 404 on the token directory
 * gives DISCOVERY_ERR_TOKEN_NOT_FOUND (etcd returned the raw client error);
 * a size that is not in 1..DISCOVERY_SIZE_MAX is a bad size key (etcd
 * crashed on a negative one); watch events that are not new registrations
 * (deletes, the _config key, directories, repeats) are ignored rather than
 * counted; a watch whose history was cleared (error 401) is a transient
 * failure that re-reads the directory; timeouts are retried (etcd 2.3
 * failed on them).
 */
#ifndef COREBOX_DISCOVERY_H
#define COREBOX_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "corebox/buf.h"

struct loop;

/* ---- outcomes ---- */

/*
 * What discovery ended with. The texts are etcd's error strings exactly;
 * DISCOVERY_ERR_OTHER and DISCOVERY_ERR_UNSUPPORTED carry their own text in
 * the result's errmsg (the table gives a generic one).
 */
#define DISCOVERY_CODES(X) \
	X(DISCOVERY_OK, "") \
	X(DISCOVERY_ERR_INVALID_URL, "discovery: invalid URL") \
	X(DISCOVERY_ERR_BAD_SIZE_KEY, "discovery: size key is bad") \
	X(DISCOVERY_ERR_SIZE_NOT_FOUND, "discovery: size key not found") \
	X(DISCOVERY_ERR_TOKEN_NOT_FOUND, "discovery: token not found") \
	X(DISCOVERY_ERR_DUPLICATE_ID, "discovery: found duplicate id") \
	X(DISCOVERY_ERR_DUPLICATE_NAME, "discovery: found duplicate name") \
	X(DISCOVERY_ERR_FULL_CLUSTER, "discovery: cluster is full") \
	X(DISCOVERY_ERR_TOO_MANY_RETRIES, "discovery: too many retries") \
	X(DISCOVERY_ERR_BAD_ENDPOINT, "discovery: bad discovery endpoint") \
	X(DISCOVERY_ERR_UNSUPPORTED, "discovery: not supported") \
	X(DISCOVERY_ERR_OTHER, "discovery: failed")

enum discovery_code {
#define DISCOVERY_ENUM(name, msg) name,
	DISCOVERY_CODES(DISCOVERY_ENUM)
#undef DISCOVERY_ENUM
	DISCOVERY_CODE_COUNT_
};

/* The fixed text of a code ("" for DISCOVERY_OK, "unknown error" if out of range). */
const char *discovery_code_str(int code);
/* The enumerator's name ("DISCOVERY_ERR_FULL_CLUSTER"), for logs and tests. */
const char *discovery_code_name(int code);

/* ---- limits and defaults (units last) ---- */

#define DISCOVERY_REQUEST_TIMEOUT_MS 5000   /* one GET/PUT (etcd client's DefaultRequestTimeout) */
#define DISCOVERY_CONNECT_TIMEOUT_MS 5000   /* TCP connect, within the request timeout */
#define DISCOVERY_WATCH_TIMEOUT_MS 300000   /* a long poll with no event is reissued after this */
#define DISCOVERY_RETRIES_MAX 20            /* transient failures tolerated in all */
#define DISCOVERY_BACKOFF_MS 1000           /* retry n waits backoff_ms << n: 2 s, 4 s, ... */
#define DISCOVERY_BACKOFF_MAX_MS 60000      /* cap of one wait */
#define DISCOVERY_BODY_BYTES_MAX ((size_t)1 << 20) /* one response body */
#define DISCOVERY_SIZE_MAX 1024             /* largest accepted _config/size */
#define DISCOVERY_NODES_MAX 4096            /* registrations read from one directory listing */
#define DISCOVERY_STRING_BYTES_MAX ((size_t)16 << 10) /* one key or value in a response */
#define DISCOVERY_PATH_BYTES_MAX 1024       /* key prefix taken from the URL */
#define DISCOVERY_ERRMSG_BYTES 512

/* ---- configuration ---- */

struct discovery_config {
	const char *url;     /* --discovery; required */
	const char *proxy;   /* --discovery-proxy; NULL or "" for none (anything else: unsupported) */
	/* Joining only (ignored by get_cluster): */
	const char *name;    /* this member's --name */
	uint64_t id;         /* this member's id; the key is its lowercase hex */
	const char *const *peer_urls; /* --initial-advertise-peer-urls, at least one */
	size_t npeer_urls;
	/* Timing and bounds, filled by discovery_config_default. */
	uint64_t request_timeout_ms;
	uint64_t connect_timeout_ms;
	uint64_t watch_timeout_ms;
	unsigned retries_max;
	uint64_t backoff_ms;
	uint64_t backoff_max_ms;
	size_t body_bytes_max;
};
/* Zeroes c and sets the DISCOVERY_xxx defaults above. */
void discovery_config_default(struct discovery_config *c);

/* ---- asynchronous client ---- */

struct discovery;

/*
 * The end of a discovery. code is DISCOVERY_OK or DISCOVERY_ERR_xxx.
 * cluster: on success the initial-cluster string "name1=url1,name2=url2"
 * (registration order); NULL otherwise. errmsg: "" on success, else etcd's
 * text for the code, or for DISCOVERY_ERR_OTHER / _UNSUPPORTED the cause
 * ("100: Key not found (/_etcd/registry/x) [5]", "client: etcd cluster is
 * unavailable or misconfigured; error #0: dial tcp ...: connection refused").
 * Both strings are owned by the discovery object: valid until discovery_free.
 */
struct discovery_result {
	int code;
	const char *cluster;
	const char *errmsg;
};

/*
 * Called once, never from inside discovery_*_start, and from a deferred
 * call of the loop (not from inside an http callback), so it may call
 * discovery_free(d) and may start another discovery.
 */
typedef void discovery_done_fn(struct discovery *d, const struct discovery_result *res, void *arg);

/*
 * Joins the cluster named by cfg->url as cfg->name / cfg->id with
 * cfg->peer_urls. cfg and everything it points to are copied. Bad
 * configuration (URL, proxy) is reported through fn like every other
 * outcome. Returns 0 with *out set (the handle, to be freed with
 * discovery_free after fn ran or to cancel), -ERR_INVAL (NULL l, cfg, url
 * or fn; joining without a name or peer URLs) or -ERR_NOMEM; fn is not
 * called when it fails. Host names in the URL are resolved with a blocking
 * getaddrinfo (discovery runs at start-up only).
 */
int discovery_join_start(struct loop *l, const struct discovery_config *cfg,
	discovery_done_fn *fn, void *arg, struct discovery **out);

/*
 * The proxy's read (etcd's GetCluster): waits until size members are
 * registered (without registering) and gives their initial-cluster string;
 * a full directory is not an error here (the first size registrations are
 * the cluster). Use discovery_cluster_urls() on the result for the peer
 * URLs. Same contract as discovery_join_start.
 */
int discovery_get_cluster_start(struct loop *l, const struct discovery_config *cfg,
	discovery_done_fn *fn, void *arg, struct discovery **out);

/*
 * Cancels whatever is in progress (no callback afterwards) and frees d.
 * Safe with NULL and from inside d's own callback. Free every discovery
 * before the loop it runs on.
 */
void discovery_free(struct discovery *d);

/* Transient failures retried so far (for logs and tests). */
unsigned discovery_retries(const struct discovery *d);

/* ---- blocking wrappers ---- */

/* A finished discovery: cluster and errmsg as in discovery_result, owned here. */
struct discovery_outcome {
	int code;
	char *cluster; /* NULL unless DISCOVERY_OK */
	char errmsg[DISCOVERY_ERRMSG_BYTES];
};
void discovery_outcome_free(struct discovery_outcome *o);

/*
 * Run discovery_join_start / discovery_get_cluster_start on a private loop
 * until they end. Return 0 with *out filled (check out->code; free it with
 * discovery_outcome_free), or -ERR_INVAL / -ERR_NOMEM (nothing to free).
 * Not to be called from inside a loop callback that must keep running:
 * they block for as long as discovery takes.
 */
int discovery_join_sync(const struct discovery_config *cfg, struct discovery_outcome *out);
int discovery_get_cluster_sync(const struct discovery_config *cfg, struct discovery_outcome *out);

/* ---- pure helpers (no I/O; used by the client and by tests) ---- */

/*
 * A discovery URL taken apart: endpoint "http://host:port" (scheme and
 * authority as written), prefix the cleaned key path "/v2/keys/_etcd/
 * registry/tok" (at least one segment, no trailing slash), token its last
 * segment (points into prefix).
 */
struct discovery_url {
	char endpoint[300];
	char prefix[DISCOVERY_PATH_BYTES_MAX];
	const char *token;
};
/*
 * Returns 0; -ERR_PARSE (not http(s)://host[:port]/path, no token, a query,
 * fragment, user info, space or control byte); -ERR_LIMIT (too long);
 * -ERR_UNSUPPORTED (https). msg (may be NULL) gets a reason.
 */
int discovery_url_parse(const char *url, struct discovery_url *u, char *msg, size_t msgsz);

/*
 * Go's strconv.Atoi on the size value, then 1..DISCOVERY_SIZE_MAX.
 * Returns DISCOVERY_OK with *size set, or DISCOVERY_ERR_BAD_SIZE_KEY.
 */
int discovery_parse_size(const char *s, size_t len, int64_t *size);

/*
 * This member's registration value, as etcd's URLsMap.String() for one
 * name: "name=url" pairs sorted, joined with ','. Appends to out.
 * Returns 0, -ERR_INVAL (empty name, no URLs, a ',' or '=' in the name, a
 * ',' in a URL) or -ERR_NOMEM.
 */
int discovery_self_value(const char *name, const char *const *urls, size_t n, struct buf *out);

/* One registration read from the directory. Strings owned by the list. */
struct discovery_node {
	char *key;   /* "/_etcd/registry/tok/8e9e05c52164694d" */
	char *value; /* "infra0=http://192.0.2.10:2380"; "" for a directory */
	uint64_t created_index;
	uint64_t modified_index;
};
struct discovery_nodes {
	struct discovery_node *v;
	size_t n;
	size_t cap;
};
void discovery_nodes_free(struct discovery_nodes *ns);

/*
 * Parses the body of GET <prefix> (a directory listing): every child but
 * _config goes to ns (appended, in body order), *dir_key (if not NULL) gets
 * a copy of the directory's own key (caller frees with mem_free). Returns
 * DISCOVERY_OK, DISCOVERY_ERR_BAD_ENDPOINT (not JSON, over the limits,
 * wrong types, no node, more than DISCOVERY_NODES_MAX children; detail in
 * msg) or DISCOVERY_ERR_OTHER (out of memory). ns is unchanged on failure.
 */
int discovery_nodes_parse(const char *body, size_t len, struct discovery_nodes *ns, char **dir_key,
	char *msg, size_t msgsz);

/* Sorts by created_index (then key, so equal indexes still sort the same everywhere). */
void discovery_nodes_sort(struct discovery_nodes *ns);

/*
 * etcd's "find self position" on sorted nodes: DISCOVERY_ERR_FULL_CLUSTER
 * if size registrations precede self_base's (or size exist and self is not
 * among them), else DISCOVERY_OK (self among the first size, or fewer than
 * size registered). self_base is the id in hex; keys compare by last segment.
 */
int discovery_nodes_check(const struct discovery_nodes *ns, int64_t size, const char *self_base);

/* Index of the node whose key ends in /self_base, or -1. */
long discovery_nodes_find(const struct discovery_nodes *ns, const char *self_base);

/*
 * etcd's nodesToCluster on the first count nodes: their values joined with
 * ',' are appended to out (also on failure), then parsed as a URLs map:
 * DISCOVERY_ERR_INVALID_URL if a URL is bad (scheme http/https, host:port,
 * no path), DISCOVERY_ERR_DUPLICATE_NAME if the distinct names are not
 * exactly size. DISCOVERY_ERR_OTHER on allocation failure.
 */
int discovery_nodes_to_cluster(const struct discovery_nodes *ns, size_t count, int64_t size, struct buf *out);

/*
 * All peer URLs of an initial-cluster string, sorted (etcd's
 * URLsMap.URLs()), each validated as above. *urls is an array of *n strings
 * the caller frees with discovery_urls_free. Returns 0, -ERR_PARSE (a bad
 * URL; msg says which) or -ERR_NOMEM.
 */
int discovery_cluster_urls(const char *cluster, char ***urls, size_t *n, char *msg, size_t msgsz);
void discovery_urls_free(char **urls, size_t n);

#endif
