/*
 * raft: the consensus core of the store cluster (the role of etcd's raft
 * package, shaped like etcd-io/raft's RawNode and cowsql's raft_step).
 *
 * A PURE module: no I/O, no clock, no randomness of its own, no globals.
 * Logical time comes in through raft_tick(); the randomized election timeout
 * (uniform in [election_ticks, 2 * election_ticks)) is drawn from a small
 * deterministic generator seeded by the caller (raft_options.seed), so a run
 * is a function of its inputs and the simulator in tests/sim can replay it.
 * Everything raft wants done comes out as data in a struct raft_ready.
 *
 * The driving loop (the caller):
 *
 *	raft_tick()             every tick (etcd: heartbeat interval / heartbeat_ticks)
 *	raft_step(msg)          for every message received from a peer
 *	raft_propose(), raft_read_index(), raft_propose_conf_change(),
 *	raft_transfer_leader()  for client work
 *	if (raft_has_ready(r)) {
 *		raft_ready(r, &rd);
 *		1. if rd.has_snapshot: save the snapshot (meta + data) durably; it
 *		   REPLACES the whole log: every persisted entry is discarded
 *		   (entries after it arrive in rd.entries);
 *		2. if rd.hs_changed: persist rd.hs (term and vote before entries;
 *		   its commit index never covers this ready's own entries, so a
 *		   crash that keeps the hard state and loses the entries is safe);
 *		3. persist rd.entries: an entry at an index already persisted
 *		   replaces that entry and all after it;
 *		4. one fsync covering 1-3 when rd.must_sync (a crash may keep any
 *		   prefix of 1-3, never a later record without an earlier one);
 *		5. only now send rd.msgs (a vote or an ack promises durable state);
 *		6. install rd.snapshot into the state machine if present, then
 *		   apply rd.committed in order; rd.reads are answered once the
 *		   applied index reaches their index;
 *		raft_advance(r, &rd);
 *	}
 *
 * Only one ready is outstanding at a time: raft_ready() refuses (-ERR_STATE)
 * until raft_advance(). Between the two the caller may keep calling
 * raft_step()/raft_tick()/raft_propose() (a WAL thread may be fsyncing);
 * the ready stays valid because it owns references to everything it holds.
 *
 * Roles and protocol (etcd's semantics):
 *  - Elections with pre-vote (a node first asks whether it could win; the
 *    pre-vote carries term+1 but changes nobody's term) and check-quorum (a
 *    leader that has not heard from a quorum within election_ticks steps
 *    down; a node that heard from a leader within election_ticks ignores
 *    vote requests, except those flagged as a leader transfer).
 *  - Log replication with pipelining: per follower a Progress in state
 *    probe (one append per heartbeat until the match point is found),
 *    replicate (appends sent optimistically, at most max_inflight_msgs
 *    unacknowledged) or snapshot (paused until the follower acknowledges the
 *    snapshot, raft_report_snapshot() is called, or snapshot_timeout_ticks
 *    pass). A rejection carries a hint (the follower's last index whose term
 *    is <= the leader's probe term, and that term) so the leader skips a
 *    whole conflicting term per round trip.
 *  - Commit: the leader commits the highest index stored durably on a
 *    majority of the configuration, and only if that entry is of its own
 *    term (earlier terms commit indirectly). The leader counts itself only
 *    for entries it has persisted (raft_advance), so nothing is committed
 *    before a majority has it on disk.
 *  - Snapshots: after the caller snapshots its state machine at an applied
 *    index it calls raft_compact(); the log keeps snapshot_catchup_entries
 *    before that index so slow followers can catch up from the log. A
 *    follower that needs compacted entries is sent a RAFT_MSG_SNAP carrying
 *    the snapshot metadata and the opaque data in one message; splitting it
 *    into chunks is the transport's job.
 *  - Membership: single-member changes, one at a time. A configuration
 *    takes effect on a node as soon as its entry is in that node's log
 *    (appended, not committed: the Raft dissertation's rule, as in cowsql),
 *    and a node whose log loses that entry (truncation) falls back to the
 *    latest configuration still in its log or snapshot. Safety: two
 *    configurations differing by one member have overlapping majorities, and
 *    the leader accepts a change only when no earlier change is uncommitted
 *    AND it has committed an entry of its own term (the fix for the bug
 *    Ongaro described in 2015: without it a new leader could overlap an
 *    uncommitted change of a previous leader). A leader that removes itself
 *    keeps leading, not counting itself, until the change is committed, then
 *    steps down and sends RAFT_MSG_TIMEOUT_NOW to the most up-to-date member
 *    so that nobody waits out an election timeout. A node not in its own
 *    configuration never campaigns.
 *    Changes are proposed on the leader only (-ERR_STATE elsewhere).
 *  - ReadIndex (linearizable reads without a log entry): reads reaching the
 *    leader between two raft_ready() drains (one loop turn) are batched into
 *    ONE round: when the ready is built the leader records its commit index
 *    and sends one heartbeat per follower carrying the round's sequence
 *    number; once a majority acknowledges a heartbeat with that sequence (or
 *    a later one) every read of the round is released with that index. A
 *    leader that has not yet committed an entry of its term holds reads until
 *    it has. A follower forwards each read to the leader and gets the index
 *    back. The caller serves a read once its applied index reaches it. Reads
 *    are dropped silently when leadership changes; callers time out and retry.
 *  - Leader transfer (raft_transfer_leader, used at clean shutdown): the
 *    leader stops taking proposals, brings the target up to date, then sends
 *    it RAFT_MSG_TIMEOUT_NOW; the target campaigns at once, skipping pre-vote
 *    and with the transfer flag that voters honour despite check-quorum. The
 *    transfer is abandoned after election_ticks.
 *  - Proposals on a follower are forwarded to the leader (RAFT_MSG_PROP);
 *    proposals are dropped (-ERR_AGAIN) without a known leader or during a
 *    transfer. Like etcd, a forwarded proposal can be lost without notice:
 *    callers match applied entries to their requests and time out.
 *
 * Wire encoding (raft_msg_encode/raft_msg_decode), little endian, version
 * RAFT_WIRE_VERSION; the transport adds framing and a CRC:
 *   off 0  u8  version
 *   off 1  u8  type (enum raft_msg_type)
 *   off 2  u8  flags: bit 0 reject, bit 1 transfer; others must be 0
 *   off 3  u8  0
 *   off 4  u32 n_entries
 *   off 8  u64 from, to, term, log_term, index, commit, reject_hint, ctx
 *   off 72 n_entries times: u64 term, u64 index, u8 type, u8[3] 0, u32 len,
 *          len bytes of data
 *   then, for RAFT_MSG_SNAP only: u64 index, u64 term, u32 n, n times u64
 *          member id, u64 data length, the data
 * and nothing after. Decoding checks every length against the input before
 * allocating and validates the message's shape (raft_msg_validate), so a
 * hostile peer can make raft_msg_decode fail but never misbehave.
 *
 * Errors: 0 or -ERR_xxx. -ERR_NOMEM always leaves the instance consistent:
 * either the call changed nothing, or it took effect and only an outgoing
 * message was dropped (which the protocol tolerates as network loss; e.g.
 * raft_advance then still acknowledged the ready). -ERR_INVAL from raft_step
 * means the message contradicted the local log (a peer's bug or corruption):
 * it was ignored apart from its term.
 *
 * Ownership: raft copies every caller buffer it keeps (proposal data,
 * snapshot data, restored entries, the entries of a stepped message). A
 * struct raft_ready owns its arrays and holds references on the data they
 * point to until raft_advance() or raft_ready_free(). A message filled by
 * raft_msg_decode() owns its entries array but BORROWS every data pointer
 * from the decoded buffer: keep the buffer until raft_msg_clear().
 */
#ifndef COREBOX_RAFT_H
#define COREBOX_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corebox/buf.h"

/* The "no node" id: no leader known, no vote cast. Member ids are never 0. */
#define RAFT_NONE 0u
/* Largest configuration (etcd clusters are 3-7 members). */
#define RAFT_MEMBERS_MAX 32u
/* Largest entry data; fits a WAL record (WAL_ENTRY_DATA_BYTES_MAX). */
#define RAFT_ENTRY_BYTES_MAX ((16u << 20) - 64u)
/* Most entries in one message. */
#define RAFT_MSG_ENTRIES_MAX 65536u
/* Largest snapshot data carried by one message. */
#define RAFT_SNAPSHOT_BYTES_MAX (1ull << 31)
/* Largest caller context attached to a configuration change. */
#define RAFT_CONF_CTX_BYTES_MAX 4096u
/* Upper bound for raft_options.max_inflight_msgs. */
#define RAFT_INFLIGHT_MAX 1024u
/* Outgoing messages held until the next ready; more are dropped (as lost). */
#define RAFT_MSGS_PENDING_MAX 65536u
/* Reads a leader holds at once (queued or in rounds); more get -ERR_LIMIT. */
#define RAFT_READS_PENDING_MAX 8192u
/* Terms and indexes above this are refused (so term + 1 never wraps). */
#define RAFT_NUMBER_MAX (1ull << 62)
/* Wire format. */
#define RAFT_WIRE_VERSION 1u
#define RAFT_MSG_HEADER_BYTES 72u
#define RAFT_WIRE_ENTRY_HEADER_BYTES 24u

enum raft_role {
	RAFT_FOLLOWER = 0,
	RAFT_PRECANDIDATE = 1,
	RAFT_CANDIDATE = 2,
	RAFT_LEADER = 3,
};

enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 0, /* caller data; an empty one is the new leader's no-op */
	RAFT_ENTRY_CONF = 1,   /* a configuration change (raft_conf_decode) */
};

enum raft_msg_type {
	RAFT_MSG_APP = 1,             /* append entries (index/log_term: previous entry) */
	RAFT_MSG_APP_RESP = 2,        /* index: last matching index, or reject + hint */
	RAFT_MSG_VOTE = 3,            /* index/log_term: candidate's last entry */
	RAFT_MSG_VOTE_RESP = 4,
	RAFT_MSG_PREVOTE = 5,         /* term: the term the sender would campaign in */
	RAFT_MSG_PREVOTE_RESP = 6,
	RAFT_MSG_SNAP = 7,            /* snapshot meta + data */
	RAFT_MSG_HEARTBEAT = 8,       /* commit; ctx: latest read round sequence */
	RAFT_MSG_HEARTBEAT_RESP = 9,  /* ctx echoed */
	RAFT_MSG_PROP = 10,           /* proposal forwarded to the leader (term 0) */
	RAFT_MSG_READ_INDEX = 11,     /* read forwarded to the leader (term 0); ctx */
	RAFT_MSG_READ_INDEX_RESP = 12,/* ctx, index */
	RAFT_MSG_TIMEOUT_NOW = 13,    /* leader transfer: campaign now */
};
#define RAFT_MSG_TYPE_MAX 13

/* Message flags (wire bits). */
#define RAFT_MSG_F_REJECT 0x01u
#define RAFT_MSG_F_TRANSFER 0x02u

enum raft_conf_op {
	RAFT_CONF_BOOTSTRAP = 0, /* the initial configuration (raft_bootstrap) */
	RAFT_CONF_ADD = 1,
	RAFT_CONF_REMOVE = 2,
};

/* Reference-counted immutable bytes behind entries and snapshots. */
struct raft_blob;

/*
 * A log entry. data points to len bytes (NULL when len is 0). blob_ is
 * private: the reference that keeps data alive when raft produced the entry;
 * NULL when data is borrowed (decoded messages, caller-built entries).
 */
struct raft_entry {
	uint64_t term;
	uint64_t index;
	uint32_t type;      /* enum raft_entry_type */
	uint32_t len;       /* at most RAFT_ENTRY_BYTES_MAX */
	const uint8_t *data;
	struct raft_blob *blob_;
};

/* A configuration: member ids, ascending, unique, non-zero. */
struct raft_config {
	uint32_t n;
	uint64_t ids[RAFT_MEMBERS_MAX];
};

struct raft_snapshot_meta {
	uint64_t index;  /* last entry the snapshot covers */
	uint64_t term;   /* its term */
	struct raft_config conf; /* the configuration as of index */
};

/* What must survive a crash. */
struct raft_hardstate {
	uint64_t term;
	uint64_t vote;
	uint64_t commit;
};

/* A message. Which fields matter depends on type (see enum raft_msg_type). */
struct raft_msg {
	uint32_t type;       /* enum raft_msg_type */
	uint32_t flags;      /* RAFT_MSG_F_* */
	uint64_t from;
	uint64_t to;
	uint64_t term;
	uint64_t log_term;
	uint64_t index;
	uint64_t commit;
	uint64_t reject_hint;
	uint64_t ctx;
	struct raft_entry *entries; /* owned array */
	size_t n_entries;
	/* RAFT_MSG_SNAP only */
	struct raft_snapshot_meta snap;
	const uint8_t *snap_data;
	uint64_t snap_len;
	struct raft_blob *snap_blob_; /* private, as raft_entry.blob_ */
};

/* A released linearizable read: serve ctx once applied >= index. */
struct raft_read_state {
	uint64_t ctx;
	uint64_t index;
};

/* A decoded configuration-change entry. ctx borrows from the entry data. */
struct raft_conf_change {
	uint32_t op;     /* enum raft_conf_op */
	uint64_t node;   /* member added or removed; 0 for bootstrap */
	struct raft_config conf; /* the configuration after the change */
	const uint8_t *ctx;
	uint32_t ctx_len;
};

struct raft_options {
	uint64_t id;                  /* this member, non-zero */
	unsigned election_ticks;      /* et: followers wait [et, 2et) ticks; default 10 */
	unsigned heartbeat_ticks;     /* leader heartbeat period; default 1, < et */
	unsigned max_inflight_msgs;   /* unacked appends per follower; default 256 */
	size_t max_msg_bytes;         /* entry bytes per append (>= 1 entry); default 1 MiB */
	size_t max_committed_bytes;   /* entry bytes per ready to apply (>= 1); default 64 MiB */
	uint64_t max_uncommitted_bytes; /* leader backpressure, 0 = none; default 64 MiB */
	uint64_t snapshot_catchup_entries; /* entries kept before a compaction point; default 5000 */
	unsigned snapshot_timeout_ticks; /* resend after a silent snapshot; default 4 * et */
	uint64_t seed;                /* election timeout randomness; differ per member */
	bool pre_vote;                /* default true */
	bool check_quorum;            /* default true */
};

/*
 * The durable state given to raft_new on restart. snap.index 0 means no
 * snapshot. entries must run consecutively (entries at or below snap.index
 * are skipped). A term below the last entry's is raised (with no vote): a
 * crash can keep entries of a term whose hard state was lost with them.
 * hs.commit beyond the last entry means committed entries were lost:
 * -ERR_CORRUPT.
 */
struct raft_persisted {
	struct raft_hardstate hs;
	struct raft_snapshot_meta snap;
	const void *snap_data;
	size_t snap_len;
	const struct raft_entry *entries;
	size_t n_entries;
};

/* See the loop at the top of this file for the order of the steps. */
struct raft_ready {
	bool soft_changed;            /* lead or role changed since the last ready */
	uint64_t lead;
	uint32_t role;                /* enum raft_role */
	uint64_t term;
	bool hs_changed;
	struct raft_hardstate hs;
	bool must_sync;               /* term, vote or entries changed: fsync before sending */
	bool has_snapshot;
	struct raft_snapshot_meta snap;
	const uint8_t *snap_data;
	uint64_t snap_len;
	struct raft_entry *entries;   /* to persist */
	size_t n_entries;
	struct raft_entry *committed; /* to apply, in order */
	size_t n_committed;
	struct raft_msg *msgs;        /* to send after persisting */
	size_t n_msgs;
	struct raft_read_state *reads;
	size_t n_reads;
	/* private */
	struct raft_blob *snap_blob_;
	uint64_t last_index_;
	uint64_t last_term_;
	uint64_t snap_index_;
};

struct raft_status {
	uint64_t id;
	uint32_t role;
	uint64_t lead;
	uint64_t term;
	uint64_t vote;
	uint64_t commit;
	uint64_t applied;
	uint64_t first_index;     /* first entry still in memory */
	uint64_t last_index;
	uint64_t last_term;
	uint64_t stable_index;    /* last index handed back as persisted */
	uint64_t snap_index;
	uint64_t snap_term;
	uint64_t lead_transferee;
	struct raft_config conf;  /* in force (latest in the log) */
	uint64_t conf_index;      /* index of the entry that set it (0: snapshot) */
};

/* Progress of one follower as the leader sees it (raft_progress). */
enum raft_progress_state {
	RAFT_PR_PROBE = 0,
	RAFT_PR_REPLICATE = 1,
	RAFT_PR_SNAPSHOT = 2,
};

struct raft_progress_info {
	uint64_t id;
	uint64_t match;
	uint64_t next;
	uint32_t state;           /* enum raft_progress_state */
	uint32_t inflight;        /* appends in flight */
	bool paused;
	bool recent_active;
	uint64_t pending_snapshot;
};

struct raft;

/* Fills o with the defaults for member id. */
void raft_options_init(struct raft_options *o, uint64_t id);

/*
 * Creates an instance from durable state p (NULL: nothing persisted yet).
 * A fresh member of a new cluster then calls raft_bootstrap; a member
 * joining an existing cluster starts empty and learns the configuration
 * from the leader. -ERR_INVAL for bad options or inconsistent state.
 */
int raft_new(const struct raft_options *o, const struct raft_persisted *p, struct raft **out);
void raft_free(struct raft *r);

/*
 * Creates the initial configuration on empty storage: entry 1 of term 1
 * holding the members (every initial member must pass the same ids, in any
 * order), committed at once as etcd does for its initial members.
 * -ERR_STATE if anything is persisted, -ERR_INVAL for bad ids.
 */
int raft_bootstrap(struct raft *r, const uint64_t *ids, size_t n);

/* Advances logical time by one tick. */
int raft_tick(struct raft *r);

/*
 * Feeds one message from a peer. m is only read. -ERR_PARSE: m fails
 * raft_msg_validate; -ERR_INVAL: not addressed to this member, claims to come
 * from it, or contradicts the local log (see Errors above).
 */
int raft_step(struct raft *r, const struct raft_msg *m);

/*
 * Proposes data (copied). On the leader *index (may be NULL) gets the entry's
 * index; on a follower the proposal is forwarded and *index is 0.
 * -ERR_AGAIN: no leader known, transfer in progress, or not a member;
 * -ERR_LIMIT: too large or the uncommitted backlog is full.
 */
int raft_propose(struct raft *r, const void *data, size_t len, uint64_t *index);

/*
 * Leader only: adds or removes one member (ctx, copied, travels in the entry
 * for the application, e.g. the member's peer URLs). -ERR_STATE if not the
 * leader; -ERR_AGAIN while a change is uncommitted, before the leader has
 * committed an entry of its term, or during a transfer; -ERR_EXIST adding a
 * member, -ERR_NOTFOUND removing a non-member, -ERR_LIMIT beyond
 * RAFT_MEMBERS_MAX or removing the last member, -ERR_INVAL for node 0.
 */
int raft_propose_conf_change(struct raft *r, enum raft_conf_op op, uint64_t node,
    const void *ctx, size_t ctx_len, uint64_t *index);

/*
 * Requests a linearizable read tagged ctx (the caller's request id); it is
 * released later as a struct raft_read_state in a ready. -ERR_AGAIN without
 * a known leader, -ERR_LIMIT when RAFT_READS_PENDING_MAX reads wait.
 */
int raft_read_index(struct raft *r, uint64_t ctx);

/* Leader only: hands leadership to member `to` (-ERR_STATE, -ERR_NOTFOUND). */
int raft_transfer_leader(struct raft *r, uint64_t to);

/* Starts an election now (as if the election timeout fired). */
int raft_campaign(struct raft *r);

/* Transport feedback: sending to id failed; a snapshot to id finished. */
void raft_report_unreachable(struct raft *r, uint64_t id);
void raft_report_snapshot(struct raft *r, uint64_t id, bool ok);

bool raft_has_ready(const struct raft *r);
/* Hands out everything pending (see the loop above). -ERR_STATE if one is out. */
int raft_ready(struct raft *r, struct raft_ready *rd);
/* Acknowledges rd (persisted, sent, applied) and frees it. */
int raft_advance(struct raft *r, struct raft_ready *rd);
/* Frees a ready without acknowledging it (shutting down). */
void raft_ready_free(struct raft_ready *rd);

/*
 * The caller took a snapshot of its state machine at applied index `index`
 * (data copied, sent to followers that fall behind). *meta_out (may be
 * NULL) gets the metadata to save with it (term, configuration as of
 * index). Entries up to index - snapshot_catchup_entries are dropped.
 * -ERR_RANGE unless snapshot index < index <= applied and index is persisted.
 */
int raft_compact(struct raft *r, uint64_t index, const void *data, size_t len,
    struct raft_snapshot_meta *meta_out);

void raft_status(const struct raft *r, struct raft_status *st);
/* Term of the entry at index: -ERR_NOTFOUND if compacted or beyond the log. */
int raft_term_at(const struct raft *r, uint64_t index, uint64_t *term);
/* Leader only: the progress of member id (-ERR_STATE, -ERR_NOTFOUND). */
int raft_progress(const struct raft *r, uint64_t id, struct raft_progress_info *out);

/* Wire codec. encode appends to out. decode fills *m (zeroed first). */
size_t raft_msg_encoded_len(const struct raft_msg *m);
int raft_msg_encode(const struct raft_msg *m, struct buf *out);
int raft_msg_decode(const void *data, size_t len, struct raft_msg *m);
/* Shape checks shared by decode and raft_step: 0 or -ERR_PARSE. */
int raft_msg_validate(const struct raft_msg *m);
/* Releases what a message owns (entries array, references) and zeroes it. */
void raft_msg_clear(struct raft_msg *m);

/* Decodes a RAFT_ENTRY_CONF entry's data (0 or -ERR_PARSE). */
int raft_conf_decode(const void *data, size_t len, struct raft_conf_change *out);

/* Names for traces and logs ("follower", "MsgApp", ...). */
const char *raft_role_name(uint32_t role);
const char *raft_msg_type_name(uint32_t type);
/* 1 if id is in c. */
bool raft_config_has(const struct raft_config *c, uint64_t id);

#endif
