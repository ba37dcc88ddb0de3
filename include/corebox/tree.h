/*
 * tree: the etcd v2 key space (etcd v2.3 store/store.go semantics) as a pure
 * data structure.
 *
 * The tree never reads a clock, never does I/O and never draws random
 * numbers: absolute expiry times (ns since the Unix epoch, stamped by the
 * leader) and "now" for rendering TTLs come in as arguments, results come out
 * as data (struct tree_event, struct tree_error). That makes it replayable:
 * the same sequence of calls gives the same tree, the same events, the same
 * indexes and the same tree_hash() on every node of a cluster.
 *
 * Paths. Every function takes the decoded key as bytes (key, key_len; it may
 * contain any byte including NUL; no NUL terminator is needed) and cleans it
 * exactly as etcd does with path.Clean(path.Join("/", key)): duplicate
 * slashes, "." and ".." are resolved and a trailing slash dropped, so "",
 * "/", "a/../" all name the root. Keys are otherwise the caller's business
 * (percent-decoding, "%2F" -> '/', etc. happen before). The tree holds the
 * user key space directly ("/foo" is stored as "/foo"; there is no "/1"
 * prefix as inside etcd); where etcd's visible output differs because of its
 * internal "/1" prefix (the root node has no "key" in JSON, a
 * compareAndDelete on the root reports an empty cause) the tree reproduces
 * what a client sees.
 *
 * Index. tree_index() is etcd's CurrentIndex (X-Etcd-Index): it starts at 0
 * (or the snapshot's value) and grows by exactly one per successful
 * modification (set, create, update, compareAndSwap, delete,
 * compareAndDelete, each expired node). Failed operations never change it.
 * Intermediate directories created by a nested set get the same
 * createdIndex/modifiedIndex as the new node.
 *
 * Watchers. A tree may be attached to a watch hub (corebox/watch.h). The tree
 * then feeds the hub synchronously from inside each successful write: every
 * event goes into the hub's history (1000 events) and, unless it is a
 * refresh, to the watchers on the event's path and its ancestors; for every
 * node removed by a delete, compareAndDelete or expiry (a directory's whole
 * subtree, children before their parent, as etcd's node.Remove) the hub is
 * also asked to notify the watchers registered exactly on that path
 * (watch_hub_notify_removed). Watcher callbacks therefore run inside tree_*
 * write calls; they must not call any tree_* function on the same tree (they
 * may take references on the event, cancel watchers and register new ones).
 *
 * Events. Writes return a heap event with one reference owned by the caller
 * (release with tree_event_unref); the hub keeps its own reference while the
 * event is in its history. A write event is immutable and self-contained (it
 * copies key and values), so it can be rendered at any later time. A GET
 * fills a caller-provided struct tree_event that borrows from the tree
 * instead (no allocation in the steady state): it is valid only until the
 * next call of any tree_* function on that tree other than the renderers
 * (tree_event_json reads it), and must not be ref'd or unref'd. Render it
 * right away.
 *
 * Errors. Every operation returns 0 on success or a negative -ERR_xxx:
 *   -ERR_INVAL  the operation failed with an etcd error, described in *err
 *               (code 100..108, cause, index as etcd reports them);
 *   -ERR_NOMEM  allocation failed; the tree is unchanged (err->code == 0;
 *               only a stats failure counter may have moved);
 *   -ERR_LIMIT  the key is deeper than TREE_DEPTH_MAX (err->code == 0);
 *               nothing changed.
 * err may be NULL when the caller does not need the details. When err is
 * given, tree_error_free() must be called on it afterwards (it is safe on a
 * zeroed or already freed error).
 *
 * Memory. One allocation per node (name and value inline), directories keep
 * their children in an open-addressing table keyed by a keyed hash (SipHash
 * keyed by tree_new's seed: the server passes a secret random seed so that
 * clients cannot force collisions; simulations pass a fixed one); no full
 * paths are stored. Measured: 100,000 keys of 100-byte values cost about
 * 19 MiB (glibc) / 22 MiB (musl) of RSS. Unsorted listings come out in table order, which is
 * deterministic for a given seed and history but otherwise unspecified
 * (etcd's is Go's random map order); sorted listings are in byte order of the
 * keys, like Go's string comparison.
 */
#ifndef COREBOX_TREE_H
#define COREBOX_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corebox/buf.h"

struct tree;
struct tree_node;
struct watch_hub;

/*
 * Go's path.Clean(path.Join("/", src)) on len bytes: writes the clean path
 * (always starting with '/', no trailing '/' except for the root, not
 * NUL-terminated) to dst, which must hold len + 1 bytes, and returns its
 * length. dst may not overlap src.
 */
size_t tree_path_clean(char *dst, const char *src, size_t len);

/* Deepest key accepted (path segments below the root). Keeps every recursive
 * walk (listing, removal, snapshot) within a small bounded stack. */
#define TREE_DEPTH_MAX 256

/* Expiry time meaning "no TTL". Any other value is ns since the Unix epoch. */
#define TREE_PERMANENT INT64_C(0)

/*
 * etcd v2 error codes (etcd error/error.go). The tree raises 100..108; the
 * others are listed so the server can use tree_error_message/tree_error_json
 * for all v2 errors in one place. watch.h raises 401.
 */
enum tree_ecode {
	TREE_E_KEY_NOT_FOUND = 100,	    /* "Key not found" */
	TREE_E_TEST_FAILED = 101,	    /* "Compare failed" */
	TREE_E_NOT_FILE = 102,		    /* "Not a file" */
	TREE_E_NO_MORE_PEER = 103,	    /* "Reached the max number of peers in the cluster" */
	TREE_E_NOT_DIR = 104,		    /* "Not a directory" */
	TREE_E_NODE_EXIST = 105,	    /* "Key already exists" */
	TREE_E_KEY_IS_PRESERVED = 106,	    /* "The prefix of given key is a keyword in etcd" */
	TREE_E_ROOT_RONLY = 107,	    /* "Root is read only" */
	TREE_E_DIR_NOT_EMPTY = 108,	    /* "Directory not empty" */
	TREE_E_EXISTING_PEER_ADDR = 109,    /* "Peer address has existed" */
	TREE_E_UNAUTHORIZED = 110,	    /* "The request requires user authentication" */
	TREE_E_VALUE_REQUIRED = 200,	    /* "Value is Required in POST form" */
	TREE_E_PREV_VALUE_REQUIRED = 201,   /* "PrevValue is Required in POST form" */
	TREE_E_TTL_NAN = 202,		    /* "The given TTL in POST form is not a number" */
	TREE_E_INDEX_NAN = 203,		    /* "The given index in POST form is not a number" */
	TREE_E_VALUE_OR_TTL_REQUIRED = 204, /* "Value or TTL is required in POST form" */
	TREE_E_TIMEOUT_NAN = 205,	    /* "The given timeout in POST form is not a number" */
	TREE_E_NAME_REQUIRED = 206,	    /* "Name is required in POST form" */
	TREE_E_INDEX_OR_VALUE_REQUIRED = 207, /* "Index or value is required" */
	TREE_E_INDEX_VALUE_MUTEX = 208,	    /* "Index and value cannot both be specified" */
	TREE_E_INVALID_FIELD = 209,	    /* "Invalid field" */
	TREE_E_INVALID_FORM = 210,	    /* "Invalid POST form" */
	TREE_E_REFRESH_VALUE = 211,	    /* "Value provided on refresh" */
	TREE_E_REFRESH_TTL_REQUIRED = 212,  /* "A TTL must be provided on refresh" */
	TREE_E_RAFT_INTERNAL = 300,	    /* "Raft Internal Error" */
	TREE_E_LEADER_ELECT = 301,	    /* "During Leader Election" */
	TREE_E_WATCHER_CLEARED = 400,	    /* "watcher is cleared due to etcd recovery" */
	TREE_E_EVENT_INDEX_CLEARED = 401,   /* "The event in requested index is outdated and cleared" */
	TREE_E_STANDBY_INTERNAL = 402,	    /* "Standby Internal Error" */
	TREE_E_INVALID_ACTIVE_SIZE = 403,   /* "Invalid active size" */
	TREE_E_INVALID_REMOVE_DELAY = 404,  /* "Standby remove delay" */
	TREE_E_CLIENT_INTERNAL = 500,	    /* "Client Internal Error" */
};

/* etcd's message for a v2 error code, "" for a code etcd does not know. */
const char *tree_error_message(int code);

/* The HTTP status etcd answers a v2 error with (error.go StatusCode):
 * 100 -> 404; 102, 108 -> 403; 110 -> 401; 101, 105 -> 412; 300, 301 -> 500;
 * every other code -> 400. */
int tree_error_status(int code);

/*
 * A failed operation. cause is heap memory owned by the error (NUL-terminated
 * for convenience, but it may contain NUL bytes: use cause_len); NULL when
 * there is no cause. index is the store index etcd reports with the error.
 */
struct tree_error {
	int code;
	char *cause;
	size_t cause_len;
	uint64_t index;
};

#define TREE_ERROR_INIT { 0, NULL, 0, 0 }

/* Releases the cause and zeroes the error. */
void tree_error_free(struct tree_error *err);

/* Sets code/cause/index (copies cause). -ERR_NOMEM if the copy fails. */
int tree_error_set(struct tree_error *err, int code, const char *cause, size_t cause_len, uint64_t index);

/*
 * Appends etcd's error body {"errorCode":N,"message":"...","cause":"...",
 * "index":N} (cause omitted when empty, as Go's omitempty) without a
 * trailing newline; etcd's HTTP layer adds "\n". -ERR_NOMEM on failure (out
 * may then hold a partial body: reset it).
 */
int tree_error_json(struct buf *out, int code, const char *cause, size_t cause_len, uint64_t index);

enum tree_action {
	TREE_GET = 0,
	TREE_SET,
	TREE_CREATE,
	TREE_UPDATE,
	TREE_CAS,     /* "compareAndSwap" */
	TREE_DELETE,
	TREE_CAD,     /* "compareAndDelete" */
	TREE_EXPIRE,
};

/* "get", "set", "create", "update", "compareAndSwap", "delete",
 * "compareAndDelete", "expire". */
const char *tree_action_name(enum tree_action a);

/*
 * The external view of one node (etcd's NodeExtern). key is the cleaned full
 * path. value is NULL for directories and for event nodes that carry no value
 * (delete, expire, compareAndDelete); it may contain NUL bytes (value_len).
 * expire_ns is TREE_PERMANENT or the absolute expiry; the JSON renderer turns
 * it into "expiration"/"ttl" given now.
 */
struct tree_node_ext {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
	bool dir;
	int64_t expire_ns;
	uint64_t modified_index;
	uint64_t created_index;
};

/*
 * One event (etcd's Event). For writes: action, node, prev (has_prev) and
 * etcd_index (the store index right after the write; for a watch answered
 * from history the server uses the watcher's start index instead, as etcd).
 * refresh is set on a set/update/compareAndSwap done with refresh: the event
 * goes into the history but never reaches watchers.
 *
 * For a GET on a directory, listing points at the live directory node and
 * the renderer emits "nodes" from it (hidden children left out, recursively
 * when recursive, byte-sorted when sorted); NULL for every other event.
 */
struct tree_event {
	enum tree_action action;
	bool has_prev;
	bool refresh;
	bool recursive;
	bool sorted;
	struct tree_node_ext node;
	struct tree_node_ext prev;
	uint64_t etcd_index;
	int64_t now_ns; /* write events: the tree's "now" when it was made */
	const struct tree_node *listing;
	unsigned refs; /* 0 for a borrowed GET event */
};

/* The index of the event (its node's modifiedIndex, as etcd's Event.Index). */
static inline uint64_t
tree_event_index(const struct tree_event *ev)
{
	return ev->node.modified_index;
}

/* Reference counting for heap events (writes). unref frees at zero; both are
 * no-ops on NULL and on borrowed GET events (refs == 0). */
struct tree_event *tree_event_ref(struct tree_event *ev);
void tree_event_unref(struct tree_event *ev);

/*
 * Appends the event as etcd renders it: {"action":..,"node":{..},
 * "prevNode":{..}} with the NodeExtern field order and omitempty rules of
 * etcd (key, value, dir, expiration, ttl, nodes, modifiedIndex,
 * createdIndex; the root's key omitted), strings escaped as Go's
 * encoding/json does, "expiration" in RFC 3339 with nanoseconds in UTC as Go
 * prints a time.Time, ttl = ceil((expire - now) / 1s). As in etcd, the ttl
 * of a write event is the one computed when the write was applied (now is
 * ev->now_ns, see tree_set_now), so a watcher answered later from history
 * sees the same ttl; now_ns is used only for borrowed GET events. No
 * trailing newline.
 * Returns 0 or -ERR_NOMEM (out may hold a partial body then) or -ERR_LIMIT
 * if a listing is deeper than TREE_DEPTH_MAX (cannot happen for trees built
 * through this API).
 */
int tree_event_json(struct buf *out, const struct tree_event *ev, int64_t now_ns);

/* Appends one node object ("node" value without the key name). */
int tree_node_ext_json(struct buf *out, const struct tree_node_ext *n, int64_t now_ns);

/*
 * Formats t (ns since the epoch) as Go's time.Time.MarshalJSON does for a
 * UTC time: "2026-11-22T03:40:01.5Z" (fraction trimmed of trailing zeros,
 * omitted when zero), without the quotes. out must hold 40 bytes. Returns
 * the length.
 */
size_t tree_format_time(char out[40], int64_t t_ns);

/* etcd's TTL shown for an expiry: ceil((expire - now)/1s); may be <= 0 for
 * a node that expired but has not been purged yet. */
int64_t tree_ttl_seconds(int64_t expire_ns, int64_t now_ns);

/* /v2/stats/store counters (etcd store/stats.go); watchers come from the
 * hub. Counted exactly where etcd counts them, quirks included. */
struct tree_stats {
	uint64_t gets_success;
	uint64_t gets_fail;
	uint64_t sets_success;
	uint64_t sets_fail;
	uint64_t delete_success;
	uint64_t delete_fail;
	uint64_t update_success;
	uint64_t update_fail;
	uint64_t create_success;
	uint64_t create_fail;
	uint64_t cas_success;
	uint64_t cas_fail;
	uint64_t cad_success;
	uint64_t cad_fail;
	uint64_t expire_count;
};

/* Appends etcd's /v2/stats/store body (field order of stats.go, then
 * "watchers"). */
int tree_stats_json(struct buf *out, const struct tree_stats *st, uint64_t watchers);

/*
 * Creates an empty tree: the root directory "/" at index 0. seed keys the
 * directory hash tables (any value; it changes nothing observable except the
 * order of unsorted listings). hub may be NULL (no history, no watchers) and
 * can be changed with tree_set_hub. Returns NULL when out of memory.
 */
struct tree *tree_new(uint64_t seed, struct watch_hub *hub);
void tree_free(struct tree *t);
void tree_set_hub(struct tree *t, struct watch_hub *hub);

/*
 * The time of the write about to be applied (the leader's timestamp carried
 * by the proposal, ns since the epoch). etcd computes the "ttl" of a write's
 * event from the clock when it applies the write; the tree uses this value
 * instead, so that every member renders the same ttl. tree_delete_expired
 * sets it to its now_ns. Starts at 0.
 */
void tree_set_now(struct tree *t, int64_t now_ns);

uint64_t tree_index(const struct tree *t);
const struct tree_stats *tree_stats(const struct tree *t);
/* Number of nodes, the root included. */
size_t tree_node_count(const struct tree *t);

/*
 * etcd Store.Get. Fills *ev (borrowed, see above) on success. Counts
 * getsSuccess/getsFail. Errors: 100 (cause: the first missing path), 104
 * (cause: the file met on the way).
 */
int tree_get(struct tree *t, const char *key, size_t key_len, bool recursive, bool sorted,
    struct tree_event *ev, struct tree_error *err);

/*
 * etcd Store.Set: creates or replaces a file, or creates a directory (dir;
 * value ignored then). Replacing an existing directory fails with 102; a
 * file can be replaced by a directory. expire_ns before 2000-01-01 means
 * permanent (as etcd's minExpireTime). refresh keeps the current value (the
 * node must exist: 100 otherwise), and the event is recorded in history but
 * not sent to watchers. Errors: 107 (root), 104, 102, 100 (refresh).
 */
int tree_set(struct tree *t, const char *key, size_t key_len, bool dir, const char *value,
    size_t value_len, int64_t expire_ns, bool refresh, struct tree_event **ev, struct tree_error *err);

/*
 * etcd Store.Create. unique (POST) appends "/%020d" of the next index to the
 * key. Errors: 107, 104, 105 (cause: the key).
 */
int tree_create(struct tree *t, const char *key, size_t key_len, bool dir, const char *value,
    size_t value_len, bool unique, int64_t expire_ns, struct tree_event **ev, struct tree_error *err);

/*
 * etcd Store.Update: new value (files; a directory accepts only an empty
 * value) and new TTL (expire_ns TREE_PERMANENT removes the TTL). refresh
 * keeps the value and does not notify watchers. Errors: 107, 100, 104, 102.
 */
int tree_update(struct tree *t, const char *key, size_t key_len, const char *value, size_t value_len,
    int64_t expire_ns, bool refresh, struct tree_event **ev, struct tree_error *err);

/*
 * etcd Store.CompareAndSwap. prev_value NULL (or empty) and prev_index 0
 * mean "do not compare that". Errors: 107, 100, 104, 102, 101 with cause
 * "[pv != v]", "[pi != i]" or "[pv != v] [pi != i]" as etcd.
 */
int tree_cas(struct tree *t, const char *key, size_t key_len, const char *prev_value, size_t prev_value_len,
    uint64_t prev_index, const char *value, size_t value_len, int64_t expire_ns, bool refresh,
    struct tree_event **ev, struct tree_error *err);

/*
 * etcd Store.Delete. recursive implies dir. Errors: 107, 100, 104, 102
 * (directory without dir), 108 (non-empty directory without recursive).
 */
int tree_delete(struct tree *t, const char *key, size_t key_len, bool dir, bool recursive,
    struct tree_event **ev, struct tree_error *err);

/* etcd Store.CompareAndDelete (files only). Errors: 100, 104, 102, 101. */
int tree_cad(struct tree *t, const char *key, size_t key_len, const char *prev_value,
    size_t prev_value_len, uint64_t prev_index, struct tree_event **ev, struct tree_error *err);

/*
 * etcd Store.DeleteExpiredKeys(cutoff): removes every node whose expiry is
 * <= now_ns, earliest first (ties in insertion order of the TTL heap), each
 * as one "expire" event that bumps the index and goes to the hub. Returns
 * the number of nodes expired (>= 0) or -ERR_NOMEM (the nodes expired so far
 * stay expired; a later call continues).
 */
int tree_delete_expired(struct tree *t, int64_t now_ns);

/* Earliest expiry time in the tree: 0 and *when set, or -ERR_NOTFOUND if no
 * node has a TTL. */
int tree_next_expiry(const struct tree *t, int64_t *when);

/*
 * Snapshot: a compact versioned binary encoding of every node (names,
 * values, indexes, expiry times) and the current index; stats, watchers and
 * history are not included. save appends to out (-ERR_NOMEM). load builds a
 * new tree (seed and hub as tree_new) from untrusted bytes; on failure it
 * returns -ERR_CORRUPT (or -ERR_NOMEM, -ERR_UNSUPPORTED for an unknown
 * version) and writes a reason into errmsg ("bad name at offset 123").
 */
int tree_snapshot_save(const struct tree *t, struct buf *out);
int tree_snapshot_load(const void *data, size_t len, uint64_t seed, struct watch_hub *hub,
    struct tree **out, char *errmsg, size_t errmsg_len);

/*
 * Deterministic 64-bit digest of the contents: every node's full path, kind,
 * value, indexes and expiry, plus the current index, independent of the seed
 * and of insertion order. Equal trees give equal hashes on every machine.
 */
uint64_t tree_hash(const struct tree *t);

#endif
