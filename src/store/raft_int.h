/*
 * raft_int: what the raft_*.c files share and nobody else may use: the
 * instance struct, the protocol helpers raft_ready.c needs from raft.c, the
 * reference-counted blobs, the in-memory log and the configuration entry
 * codec. Like the rest of raft it must never do I/O.
 */
#ifndef COREBOX_RAFT_INT_H
#define COREBOX_RAFT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corebox/raft.h"

/*
 * Deliberate bugs for the simulator's self-test (tests/sim builds raft a
 * second time with one of these defined and expects the checker to fail).
 * Never defined in a shipped build.
 */
#define RAFT_BUG_VOTE_TWICE 1      /* grant a second vote in the same term */
#define RAFT_BUG_COMMIT_OLD_TERM 2 /* commit earlier-term entries by counting */
#define RAFT_BUG_READ_NO_QUORUM 3  /* release reads without a heartbeat round */

struct raft_blob {
	uint32_t refs;
	size_t len;
	uint8_t data[];
};

/* Copies len bytes into a new blob with one reference; NULL on no memory. */
struct raft_blob *raft_blob_new(const void *data, size_t len);
struct raft_blob *raft_blob_ref(struct raft_blob *b);
void raft_blob_unref(struct raft_blob *b);

/* Drops an entry's reference (if any) and zeroes the struct. */
void raft_entry_release(struct raft_entry *e);
/* dst becomes a copy of src sharing (or, when src borrows, copying) its data. */
int raft_entry_copy(struct raft_entry *dst, const struct raft_entry *src);

/* Encodes a configuration-change entry into a new blob. */
struct raft_blob *raft_conf_encode(uint32_t op, uint64_t node, const struct raft_config *c,
    const void *ctx, size_t ctx_len);
/* Validates a config (ascending, unique, non-zero, at most RAFT_MEMBERS_MAX). */
bool raft_config_valid(const struct raft_config *c);
bool raft_config_equal(const struct raft_config *a, const struct raft_config *b);

enum {
	RAFT_VOTE_UNKNOWN = 0,
	RAFT_VOTE_GRANTED = 1,
	RAFT_VOTE_REJECTED = 2,
};

/* The leader's view of one member (etcd's tracker.Progress). */
struct raft_pr {
	uint64_t id;              /* 0: slot unused */
	uint64_t match;
	uint64_t next;
	uint32_t state;           /* enum raft_progress_state */
	bool probe_sent;          /* probe state: one append out, wait */
	bool recent_active;       /* heard from since the last quorum check */
	uint8_t vote;             /* RAFT_VOTE_* in the current election */
	uint64_t pending_snapshot;
	unsigned snap_ticks;      /* ticks spent in snapshot state */
	uint64_t read_ack;        /* highest read round sequence acknowledged */
	uint64_t *in_buf;         /* ring of last indexes of appends in flight */
	uint32_t in_start;
	uint32_t in_count;
};

/* A read waiting at the leader. seq 0: not yet part of a sent round. */
struct raft_read_req {
	uint64_t ctx;
	uint64_t from;
	uint64_t seq;
	uint64_t index;
};

struct raft {
	struct raft_options o;
	uint64_t id;

	/* persistent state */
	uint64_t term;
	uint64_t vote;
	uint64_t commit;

	/* volatile */
	uint32_t role;
	uint64_t lead;
	uint64_t applied;         /* last index handed back applied (raft_advance) */

	/* in-memory log: ents[i].index == prev_index + 1 + i */
	struct raft_entry *ents;
	size_t n_ents;
	size_t cap_ents;
	uint64_t prev_index;
	uint64_t prev_term;
	uint64_t stable;          /* last index known persisted */
	struct raft_config base_conf; /* configuration as of prev_index */

	/* latest snapshot (from raft_compact or installed from the leader) */
	struct raft_snapshot_meta snap;
	struct raft_blob *snap_blob;
	bool snap_unstable;       /* installed but not yet handed out persisted */

	/* configuration in force */
	struct raft_config conf;
	uint64_t conf_index;
	uint64_t pending_conf_index; /* leader: last conf change proposed */

	/* members: progress and votes, one slot per id in conf */
	struct raft_pr prs[RAFT_MEMBERS_MAX];
	uint64_t *inflight_mem;

	/* timers */
	unsigned election_elapsed;
	unsigned heartbeat_elapsed;
	unsigned rand_timeout;
	uint64_t rng;

	uint64_t lead_transferee;
	uint64_t uncommitted_bytes;

	/* reads (leader) */
	struct raft_read_req *rq;
	size_t n_rq;
	size_t cap_rq;
	uint64_t read_seq;

	/* outputs */
	struct raft_msg *msgs;
	size_t n_msgs;
	size_t cap_msgs;
	struct raft_read_state *reads;
	size_t n_reads;
	size_t cap_reads;

	/* what the last ready reported */
	struct raft_hardstate prev_hs;
	uint64_t prev_lead;
	uint32_t prev_role;
	bool ready_out;

	bool nomem;               /* an allocation failed during this call */
};

/* Protocol helpers shared by raft.c and raft_ready.c. */
struct raft_pr *raft_pr_get(struct raft *r, uint64_t id);
bool raft_pr_is_paused(const struct raft *r, const struct raft_pr *pr);
/* Makes the progress slots match r->conf. */
void raft_sync_progress(struct raft *r);
/* Puts the configuration the log implies in force. */
void raft_refresh_conf(struct raft *r);
void raft_become_follower(struct raft *r, uint64_t term, uint64_t lead);
/* Leader: commits what a majority holds durably (current term only). */
bool raft_maybe_commit(struct raft *r);
/* Leader: after the commit index moved (broadcast, reads, step down). */
void raft_leader_committed(struct raft *r);
/* Leader: turns waiting reads into one heartbeat round. */
void raft_reads_flush(struct raft *r);
bool raft_reads_flush_pending(const struct raft *r);
/* The result of a public call: rc, or -ERR_NOMEM if a message was dropped. */
int raft_done(struct raft *r, int rc);

/* Log (raft_log.c). */
uint64_t raft_log_last_index(const struct raft *r);
uint64_t raft_log_last_term(const struct raft *r);
/* 0 and *term, or -ERR_NOTFOUND (compacted or beyond the last index). */
int raft_log_term(const struct raft *r, uint64_t index, uint64_t *term);
/* The entry at index, or NULL if not in memory. */
const struct raft_entry *raft_log_entry(const struct raft *r, uint64_t index);
/* Makes room for n more entries (so an append cannot fail half way). */
int raft_log_reserve(struct raft *r, size_t n);
/* Appends a copy (reference) of e; the caller reserved room. */
int raft_log_push(struct raft *r, const struct raft_entry *e);
/* Drops every entry after index (index >= prev_index). */
void raft_log_truncate_after(struct raft *r, uint64_t index);
/* Drops every entry up to and including index (prev_index < index <= last). */
void raft_log_drop_through(struct raft *r, uint64_t index);
/* Empties the log so that it continues after (index, term). */
void raft_log_reset(struct raft *r, uint64_t index, uint64_t term);
/* The configuration in force at index (latest conf entry <= index, else base). */
int raft_log_conf_at(const struct raft *r, uint64_t index, struct raft_config *c, uint64_t *at);
/* Recomputes conf/conf_index from the log; returns true if it changed. */
bool raft_log_refresh_conf(struct raft *r);

#endif
