/*
 * store: the etcd server role's internal interface, shared by
 * src/store/server.c (flags, data dir, lifecycle, the write pipeline),
 * src/store/v2keys.c (the keys API), src/store/v2misc.c (version, health,
 * stats, members, metrics) and src/store/proposal.c (log entries).
 *
 * A write travels: v2keys parses and validates the request, fills a
 * struct store_proposal, and hands it to store_propose(); server.c encodes
 * it (store_proposal_encode), appends it to the WAL at index last + 1 and
 * keeps the waiting request in its pending queue. In the loop's
 * before-sleep hook the batch is made durable with one fdatasync; then each
 * entry is decoded and applied to the tree in log order
 * (store_proposal_apply), watchers fire from inside the tree, and the
 * waiting request is answered from the result. Nothing is answered before
 * its entry is durable. The same apply function replays the WAL at start,
 * so a restart rebuilds exactly the state and indexes that were answered.
 *
 * Membership lives in the tree as it does in etcd's v2 store, under an
 * internal directory clients cannot name (STORE_INTERNAL_DIR): a member's
 * raftAttributes and attributes and the cluster version. Those writes take
 * store indexes exactly as etcd's /0 writes do, so a fresh server answers
 * its first write with the same index as etcd.
 *
 * Ownership: a decoded proposal borrows every byte it points to from the
 * buffer it was decoded from. Results of store_proposal_apply are owned by
 * the caller (one event reference, an error to free).
 */
#ifndef COREBOX_STORE_H
#define COREBOX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corebox/buf.h"
#include "corebox/tree.h"

struct etcd_server;
struct http_req;

/* etcd's version strings as a 2.3.8 server reports them. */
#define STORE_SERVER_VERSION "2.3.8"
#define STORE_CLUSTER_VERSION "2.3.0"
/* The "cluster version" written into the store at first boot (etcd 2.3
 * stores MAJOR.MINOR.0). */
#define STORE_CLUSTER_VERSION_VALUE "2.3.0"

/*
 * The internal directory. Its name starts with '_' (hidden from listings
 * and recursive watchers) and holds a NUL byte; the keys API refuses every
 * key inside it, so it is invisible to clients.
 */
#define STORE_INTERNAL_DIR "/_\0etcd"
#define STORE_INTERNAL_DIR_LEN 7

/* ------------------------------------------------------------------ */
/* Proposals: the payload of a WAL entry                               */
/* ------------------------------------------------------------------ */

enum store_op {
	STORE_OP_NOOP = 0,       /* the leader's empty entry when it takes office */
	STORE_OP_POST = 1,       /* Create with an in-order key */
	STORE_OP_PUT = 2,        /* Set / Create / Update / CompareAndSwap */
	STORE_OP_DELETE = 3,     /* Delete / CompareAndDelete */
	STORE_OP_QGET = 4,       /* quorum read: ordered by the log, changes nothing */
	STORE_OP_EXPIRE = 5,     /* DeleteExpiredKeys(time_ns) */
	STORE_OP_MEMBER_ADD = 6, /* conf change: the member's raftAttributes */
	STORE_OP_MEMBER_REMOVE = 7, /* conf change: forget a member (records it as removed) */
	STORE_OP_MAX_ = 7,
};

/* store_proposal.flags */
enum {
	STORE_PF_DIR = 1u << 0,
	STORE_PF_RECURSIVE = 1u << 1,
	STORE_PF_SORTED = 1u << 2,
	STORE_PF_PREV_EXIST_SET = 1u << 3, /* prevExist was given ... */
	STORE_PF_PREV_EXIST = 1u << 4,     /* ... and is true */
	STORE_PF_REFRESH = 1u << 5,        /* refresh=true */
	STORE_PF_TTL = 1u << 6,            /* ttl_s is meaningful */
	STORE_PF_PREV_VALUE = 1u << 7,     /* prev_value is meaningful (non-empty) */
	STORE_PF_ALL_ = (1u << 8) - 1,
};

/* WAL entry kinds (struct wal_entry.kind), as raft's entry types. */
enum {
	STORE_ENTRY_NORMAL = 0,
	STORE_ENTRY_CONF_CHANGE = 1,
};

/* Largest path and value in a proposal: a value may be as large as a
 * form body (Go's 10 MiB) plus headroom. */
#define STORE_PATH_BYTES_MAX (2u * 1024 * 1024)
#define STORE_VALUE_BYTES_MAX (12u * 1024 * 1024)

/*
 * One request in the log. path is the key as the client sent it (decoded,
 * not yet cleaned: the tree cleans); value is the new value (PUT, POST) or
 * the raftAttributes JSON (MEMBER_ADD). time_ns is the proposer's wall
 * clock: TTL expiry times are time_ns + ttl_s seconds, and EXPIRE removes
 * what expired by time_ns, so replaying the log gives the same tree.
 */
struct store_proposal {
	uint8_t op;             /* enum store_op */
	uint32_t flags;         /* STORE_PF_* */
	int64_t time_ns;
	uint64_t prev_index;    /* 0: not compared */
	uint64_t ttl_s;         /* with STORE_PF_TTL */
	uint64_t member_id;     /* MEMBER_ADD */
	const char *path;
	size_t path_len;
	const char *value;
	size_t value_len;
	const char *prev_value; /* with STORE_PF_PREV_VALUE */
	size_t prev_value_len;
};

/*
 * Appends the binary encoding of p to out (version byte, op, varints and
 * length-prefixed strings). -ERR_INVAL for an impossible proposal (unknown
 * op or flag, oversized field), -ERR_NOMEM.
 */
int store_proposal_encode(const struct store_proposal *p, struct buf *out);

/*
 * Decodes data[0 .. len) into *p, whose pointers then borrow from data.
 * Every length is checked; trailing bytes are an error. Returns 0,
 * -ERR_CORRUPT (malformed) or -ERR_UNSUPPORTED (a newer version).
 */
int store_proposal_decode(const void *data, size_t len, struct store_proposal *p);

/* Expiry time for a proposal with STORE_PF_TTL (saturating), else
 * TREE_PERMANENT. */
int64_t store_proposal_expire_ns(const struct store_proposal *p);

/*
 * The result of applying one proposal. On success with an event, ev holds
 * one reference the caller releases (tree_event_unref); a QGET instead
 * fills get (borrowed from the tree: valid until the next write) and sets
 * is_get. On an etcd error rc is -ERR_INVAL and err is filled (free it with
 * tree_error_free). NOOP, MEMBER_ADD and EXPIRE have neither.
 * expired counts the nodes an EXPIRE removed.
 */
struct store_result {
	int rc;
	struct tree_event *ev;
	struct tree_event get;
	bool is_get;
	struct tree_error err;
	int expired;
};

/*
 * Applies p to t as etcd 2.3's applyRequest does (POST -> Create unique;
 * PUT -> Update, CompareAndSwap, Create or Set by prevExist, prevIndex and
 * prevValue; DELETE -> CompareAndDelete or Delete; QGET -> Get; EXPIRE ->
 * DeleteExpiredKeys). Never fails on a valid proposal except with an etcd
 * error or -ERR_NOMEM / -ERR_LIMIT from the tree, which leave the tree
 * unchanged. Watchers attached to the tree fire from inside this call.
 * MEMBER_REMOVE makes two writes, as etcd's RemoveMember: the member's
 * directory is deleted and /removed_members/<id> created; res->ev is the
 * second.
 */
void store_proposal_apply(struct tree *t, const struct store_proposal *p, struct store_result *res);

/* Releases what a result holds and zeroes it. */
void store_result_free(struct store_result *res);

/* ------------------------------------------------------------------ */
/* Small pure helpers                                                  */
/* ------------------------------------------------------------------ */

/*
 * Go's path.Clean on p[0 .. len) into out (at least len + 2 bytes),
 * followed by net/http's cleanPath rule: a leading '/' is added and a
 * trailing '/' kept. Returns the cleaned length.
 */
size_t store_clean_path(const char *p, size_t len, char *out);

/* Go's strconv.ParseUint(s, 10, 64): 0 or -ERR_PARSE / -ERR_RANGE. */
int store_parse_uint10(const char *s, size_t len, uint64_t *out);

/*
 * etcd's member ID: the first 8 bytes (big endian) of SHA-1 over the sorted
 * peer URLs concatenated, then the cluster token (etcdserver.NewMember
 * without a time). urls are NUL-terminated strings; the array is not
 * modified.
 */
uint64_t store_member_id(const char *const *urls, size_t n, const char *token);
/* etcd's cluster ID: SHA-1 over the sorted member IDs, 8 bytes each big endian. */
uint64_t store_cluster_id(const uint64_t *ids, size_t n);

/* etcd's types.ID String(): lower-case hex without leading zeros. out holds 17 bytes. */
void store_id_str(uint64_t id, char out[17]);

/* ------------------------------------------------------------------ */
/* Server internals shared by server.c, v2keys.c and v2misc.c          */
/* ------------------------------------------------------------------ */

/*
 * A request that outlives its handler: a write waiting for its entry, a
 * read deferred behind writes on the same connection, or a watch. Owned by
 * the server; freed when answered or when the client goes away.
 */
enum store_hold_kind {
	STORE_HOLD_WRITE = 1,
	STORE_HOLD_READ,    /* a read deferred behind earlier writes of its connection */
	STORE_HOLD_WATCH,
};

struct watcher;

/* A parsed keys request (pointers borrow from the http request). */
struct store_keys_req {
	int method;                  /* enum http_method */
	const char *key;             /* after "/v2/keys", decoded and clean */
	size_t key_len;
	bool recursive, sorted, wait, dir, quorum, stream;
	bool no_value_on_success;
	bool prev_exist_set, prev_exist;
	bool refresh;
	bool has_ttl;
	uint64_t ttl_s;
	uint64_t prev_index;
	uint64_t wait_index;
	bool has_prev_value;
	const char *prev_value;
	size_t prev_value_len;
	const char *value;
	size_t value_len;
};

/*
 * How a write is answered once its entry is applied, when the default (the
 * keys API's store_keys_answer) does not fit: the auth and members APIs
 * answer in their own formats. req is NULL when the client went away (the
 * function must still release what arg owns); res is the apply result,
 * owned by the caller, or NULL when the write was never applied (the
 * server is shutting down or the request timed out): then only release arg,
 * and answer req if it is not NULL.
 */
typedef void store_answer_fn(struct etcd_server *srv, struct http_req *req, struct store_result *res,
	void *arg);

struct store_hold {
	struct etcd_server *srv;
	store_answer_fn *answer;     /* NULL: store_keys_answer */
	void *answer_arg;
	struct http_req *req;        /* NULL once the client went away */
	enum store_hold_kind kind;
	uint32_t conn_slot;          /* slot in the per-connection pending table */
	bool counted;                /* counted in that slot */
	bool no_value_on_success;
	bool stream;
	struct watcher *w;           /* STORE_HOLD_WATCH while registered */
	struct store_keys_req kr;    /* STORE_HOLD_READ: the request to run */
	struct store_hold *next_watch, *prev_watch; /* the server's list of watch holds */
};

/* Accessors server.c gives the handlers. */
struct tree *store_tree(struct etcd_server *srv);
struct watch_hub *store_hub(struct etcd_server *srv);
uint64_t store_raft_index(const struct etcd_server *srv);
uint64_t store_raft_term(const struct etcd_server *srv);
uint64_t store_member_self(const struct etcd_server *srv);
uint64_t store_cluster(const struct etcd_server *srv);
/* "cluster ID" header value (etcd's types.ID string). Owned by srv. */
const char *store_cluster_id_str(const struct etcd_server *srv);
/* Current wall clock in ns (the server's single clock reading point). */
int64_t store_now_ns(const struct etcd_server *srv);

/*
 * Appends p to the log and queues req (may be NULL for internal entries)
 * to be answered once the entry is applied. On success the request is
 * held (http_req_hold) by this call. kind is STORE_ENTRY_*. Returns 0, or
 * -ERR_xxx (nothing appended; the caller answers the request).
 */
int store_propose(struct etcd_server *srv, const struct store_proposal *p, uint32_t kind,
	struct http_req *req, bool no_value_on_success);
/*
 * As store_propose, but the applied result goes to answer(srv, req, res,
 * arg) instead of the keys API's answer. On failure (nonzero return)
 * answer is not called and arg stays the caller's.
 */
int store_propose_answer(struct etcd_server *srv, const struct store_proposal *p, uint32_t kind,
	struct http_req *req, store_answer_fn *answer, void *arg);

/*
 * Whether the connection of req has requests waiting in the pipeline (a
 * read must then wait behind them to see their effect). And the deferral
 * itself: holds req and runs store_keys_run_read() once everything queued
 * before it is applied. Returns 0 or -ERR_NOMEM (the caller answers at once).
 */
bool store_conn_busy(struct etcd_server *srv, const struct http_req *req);
int store_defer_read(struct etcd_server *srv, struct http_req *req, const struct store_keys_req *kr);

/* Allocates a hold for req (not yet held); NULL on allocation failure. */
struct store_hold *store_hold_new(struct etcd_server *srv, struct http_req *req, enum store_hold_kind kind);
/* The http close callback every held keys request uses. */
void store_hold_closed(struct http_req *req, void *arg);
/* Ends a hold whose request was finished or aborted: unlinks and frees it. */
void store_hold_done(struct store_hold *h);
/* Links a watch hold into the server's list (cancelled at shutdown). */
void store_watch_link(struct store_hold *h);

/* v2keys.c */
void store_keys_handle(struct etcd_server *srv, struct http_req *req);
/* Runs a (possibly deferred) read: answers, or registers a watch. */
void store_keys_run_read(struct etcd_server *srv, struct http_req *req, const struct store_keys_req *kr,
	struct store_hold *h);
/* Answers a write once applied. */
void store_keys_answer(struct etcd_server *srv, struct http_req *req, struct store_result *res,
	bool no_value_on_success);
/* Answers a keys request with an etcd error (no index headers but X-Etcd-Index). */
void store_keys_error(struct etcd_server *srv, struct http_req *req, int code, const char *cause,
	size_t cause_len, uint64_t index);

/* ev rendered as etcd writes it to a watcher (JSON and a newline); the
 * same event renders once. Owned by srv, valid until the next call. NULL
 * when out of memory. */
const struct buf *store_event_json_cached(struct etcd_server *srv, struct tree_event *ev);

/* The failed read of /2/enabled etcd's auth check makes per request. */
void store_auth_probe(struct etcd_server *srv);

/* v2misc.c: everything on the client listener that is not /v2/keys, and
 * the peer listener. Each returns true when it answered req. */
bool store_misc_handle(struct etcd_server *srv, struct http_req *req, const char *path, size_t path_len);
void store_peer_handle(struct etcd_server *srv, struct http_req *req);

/* Go's net/http answers, shared by the handlers. */
void store_http_not_found(struct http_req *req);
/* 405 with Allow; srv (may be NULL) adds the CORS headers of the client listener. */
void store_http_method_not_allowed(struct etcd_server *srv, struct http_req *req, const char *allow);
/* httptypes.HTTPError: {"message":"..."} with the status. */
void store_http_error_json(struct http_req *req, int status, const char *message);
/* Sets the CORS headers for req (after http_resp_start) as --cors allows. */
void store_cors_headers(struct etcd_server *srv, struct http_req *req);

/* Members as v2misc renders them; filled by server.c from the tree. */
struct store_member {
	uint64_t id;
	char name[256];
	char **peer_urls;   /* owned by the server */
	size_t n_peer;
	char **client_urls;
	size_t n_client;
};
/* The members known (sorted by ID); valid until the next apply. */
const struct store_member *store_members(struct etcd_server *srv, size_t *n);
/* Cluster version from the store ("2.3.0"), or NULL while not decided. */
const char *store_cluster_version(struct etcd_server *srv);

/* Stats and metrics kept by server.c and read by v2misc.c. */
struct store_histogram {
	const double *bounds;  /* upper bounds in seconds, ascending */
	size_t n;              /* number of bounds (buckets + the +Inf one) */
	uint64_t *counts;      /* n + 1 cumulative-free counts; last is +Inf */
	double sum;
	uint64_t count;
};
void store_histogram_observe(struct store_histogram *h, double seconds);
/* Appends the Prometheus text for h (name, optional label "k=\"v\"" prefix). */
int store_histogram_text(struct buf *out, const char *name, const char *labels, const struct store_histogram *h);

struct store_self_stats {
	int64_t start_ns;          /* server start */
	int64_t leader_start_ns;   /* when this member became leader */
	uint64_t recv_append;
	uint64_t send_append;
};
const struct store_self_stats *store_self_stats(struct etcd_server *srv);
const char *store_member_name(const struct etcd_server *srv);
/* Appends the /metrics text. */
int store_metrics_text(struct etcd_server *srv, struct buf *out);

#endif
