/*
 * sim: the deterministic cluster simulator for store/raft (tests/sim).
 *
 * A world holds up to SIM_NODES_MAX raft instances in one process, each
 * with a simulated disk (durable records plus an unsynced tail that a crash
 * may tear) and a state machine (a hash chain over applied entries and a
 * tiny KV). A simulated network carries the real wire encoding with loss,
 * delay, duplication, reordering and (one-way) partitions. Everything is
 * driven by one seeded PRNG, one event per step, so a seed replays exactly.
 * The checker (sim_check.c) verifies the Raft safety properties after every
 * step. It must never use rand(), the clock (except to report speed) or any
 * state outside struct sim_world.
 */
#ifndef COREBOX_SIM_H
#define COREBOX_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "corebox/buf.h"
#include "corebox/raft.h"

#define SIM_NODES_MAX 9
#define SIM_KEYS 8
/* Liveness: after faults stop, a proposal must commit within this many steps. */
#define SIM_LIVENESS_STEPS_MAX 6000u

struct sim_rng {
	uint64_t s;
};

uint64_t sim_rand(struct sim_rng *g);
/* Uniform in [0, n); 0 when n is 0. */
uint64_t sim_below(struct sim_rng *g, uint64_t n);
/* True with probability permille / 1000. */
bool sim_chance(struct sim_rng *g, unsigned permille);
uint64_t sim_hash_bytes(uint64_t h, const void *p, size_t n);
uint64_t sim_hash_u64(uint64_t h, uint64_t v);

/* An entry held by the simulated disk (data owned). */
struct sim_ent {
	uint64_t index;
	uint64_t term;
	uint32_t type;
	uint32_t len;
	uint8_t *data;
};

enum sim_rec_type {
	SIM_REC_SNAP = 1,
	SIM_REC_HS = 2,
	SIM_REC_ENT = 3,
};

/* A write not yet fsynced. */
struct sim_rec {
	int type;
	struct raft_hardstate hs;
	struct raft_snapshot_meta snap;
	uint8_t *snap_data;
	size_t snap_len;
	struct sim_ent e;
};

struct sim_disk {
	struct raft_hardstate hs;
	struct raft_snapshot_meta snap;
	uint8_t *snap_data;
	size_t snap_len;
	struct sim_ent *ents;       /* durable entries after snap.index */
	size_t n_ents;
	size_t cap_ents;
	struct sim_rec *pend;       /* written, not fsynced, in write order */
	size_t n_pend;
	size_t cap_pend;
};

struct sim_kv {
	uint64_t value;             /* op id of the write, 0 if never written */
	uint64_t index;             /* log index of that write */
};

/* The replicated state machine: what a snapshot holds. */
struct sim_sm {
	uint64_t applied;
	uint64_t hash;              /* chain over every applied entry */
	struct sim_kv kv[SIM_KEYS];
};

/* The written log as the node last handed it to its disk (for checks). */
struct sim_wlog {
	uint64_t snap_index;
	uint64_t snap_term;
	uint64_t *terms;            /* terms[i] is the term of snap_index + 1 + i */
	size_t n;
	size_t cap;
};

enum sim_slot_state {
	SLOT_UP = 0,
	SLOT_DOWN = 1,
	SLOT_PARKED = 2,            /* removed from the cluster, wiped, unused */
};

struct sim_wait_read {
	uint64_t op;
	uint64_t index;
};

struct sim_node {
	int slot;
	uint64_t id;
	int state;
	uint64_t inc;               /* incarnation: bumped at every restart */
	struct raft *r;
	struct sim_disk disk;
	struct sim_sm sm;
	struct sim_wlog wlog;
	struct raft_ready rd;
	bool rd_out;
	uint64_t commit_seen;
	uint32_t role_seen;
	uint64_t term_seen;
	uint64_t lead_seen;
	struct sim_wait_read *wr;
	size_t n_wr;
	size_t cap_wr;
	bool park_pending;          /* its removal committed: park after this step */
	bool joining;               /* started empty to be added to the cluster */
	uint64_t voted_term;        /* the latest term this member voted in ... */
	uint64_t voted_for;         /* ... and for whom (kept across restarts) */
	uint64_t lead_last;         /* as leader of term_seen: a log position ... */
	uint64_t lead_last_term;    /* ... and its term, which must never change */
};

enum sim_op_kind {
	SIM_OP_WRITE = 1,
	SIM_OP_READ = 2,
};

enum sim_op_state {
	SIM_OP_PENDING = 0,
	SIM_OP_ACKED = 1,
	SIM_OP_FAILED = 2,          /* refused at once: certainly not applied */
};

struct sim_op {
	int kind;
	int state;
	int slot;
	uint64_t inc;
	int key;
	uint64_t invoke_step;
	uint64_t index;             /* write: where applied; read: read index */
	uint64_t floor_global;      /* read: highest acked write index at invoke */
	uint64_t floor_key;         /* read: same for its key */
};

struct sim_netmsg {
	int from_slot;
	uint64_t from;
	uint64_t to;
	uint32_t type;
	uint8_t *bytes;
	size_t len;
	unsigned refs;              /* duplicated deliveries share the bytes */
};

enum sim_event_type {
	EV_TICK = 1,
	EV_SYNC = 2,
	EV_DELIVER = 3,
	EV_CHAOS = 4,
	EV_RESTART = 5,
	EV_LIVE = 6,
	EV_CRASH = 7,
};

struct sim_event {
	uint64_t time;
	uint64_t seq;
	int type;
	int slot;
	uint64_t inc;
	struct sim_netmsg *msg;
};

/* Fault and shape parameters of one run (drawn from the seed). */
struct sim_params {
	unsigned loss_permille;
	unsigned dup_permille;
	unsigned delay_min;
	unsigned delay_max;
	unsigned spike_permille;    /* occasional long delays */
	unsigned disk_max;          /* fsync latency, time units */
	unsigned tick_every;        /* time units per tick */
	unsigned chaos_min;
	unsigned chaos_max;
	unsigned crash_weight;
	unsigned partition_weight;
	unsigned reconfig_weight;
	unsigned transfer_weight;
	unsigned compact_every;     /* applied entries between snapshots */
	unsigned down_max;          /* longest downtime */
};

/* Checker state (sim_check.c). */
struct sim_lm_slot {
	uint64_t index;
	uint64_t term;
	uint64_t hash;
	uint64_t prev_term;
};

struct sim_check {
	struct sim_lm_slot *lm;     /* (index, term) -> (content, prev term) */
	size_t lm_cap;
	size_t lm_n;
	uint64_t *c_term;           /* committed entry term by index */
	uint64_t *c_obs;            /* node term when first seen committed */
	uint64_t *a_hash;           /* state machine hash after applying index */
	uint64_t *a_ent;            /* content hash of the entry applied at index */
	size_t cap;
	uint64_t c_max;
	uint64_t *leader_of;        /* by term */
	size_t leader_cap;
	uint64_t acked_max;
	uint64_t acked_key[SIM_KEYS];
	uint64_t n_reads_checked;
	uint64_t n_writes_acked;
};

enum sim_phase {
	PHASE_CHAOS = 0,
	PHASE_LIVENESS = 1,
	PHASE_DONE = 2,
};

struct sim_world {
	uint64_t seed;
	int n;
	struct sim_rng rng;
	struct sim_params p;
	struct raft_options base;
	bool script;                /* golden mode: FIFO network, immediate fsync */
	bool hold;                  /* script: requests of one command share a ready */
	struct sim_node nodes[SIM_NODES_MAX];
	uint64_t next_id;
	uint64_t next_op;
	int *id_slot;               /* by id */
	size_t id_cap;
	bool blocked[SIM_NODES_MAX][SIM_NODES_MAX];
	/* random mode */
	struct sim_event *heap;
	size_t n_heap;
	size_t cap_heap;
	uint64_t ev_seq;
	uint64_t now;
	uint64_t step;
	uint64_t steps;             /* chaos phase length */
	int phase;
	uint64_t live_start;
	uint64_t live_op;
	uint64_t live_op_time;
	/* script mode */
	struct sim_netmsg **fifo;
	size_t n_fifo;
	size_t cap_fifo;
	/* clients */
	struct sim_op *ops;         /* by op id */
	size_t cap_ops;
	/* output */
	bool tracing;
	struct buf trace;           /* trace text (golden mode compares it) */
	FILE *trace_fp;             /* if set, trace lines go here as they come */
	struct sim_check chk;
	bool failed;
	char fail[512];
	const char *bug_expect;     /* self-test: the violation kind expected */
	/* counters */
	uint64_t n_msgs_sent;
	uint64_t n_msgs_delivered;
	uint64_t n_snapshots_sent;
	uint64_t n_elections;
	uint64_t n_crashes;
	uint64_t n_reconfigs;
	uint64_t n_transfers;
	uint64_t live_steps;        /* steps the liveness phase needed */
};

/* sim_world.c */
void sim_world_init(struct sim_world *w, uint64_t seed, int n, bool script);
void sim_world_free(struct sim_world *w);
void sim_tracef(struct sim_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_failf(struct sim_world *w, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sim_node_start(struct sim_world *w, int slot, uint64_t id, bool bootstrap,
    const uint64_t *ids, int n_ids);
void sim_node_crash(struct sim_world *w, struct sim_node *nd, bool torn);
int sim_node_restart(struct sim_world *w, struct sim_node *nd);
void sim_node_park(struct sim_world *w, struct sim_node *nd);
void sim_pump(struct sim_world *w, struct sim_node *nd);
void sim_finish_ready(struct sim_world *w, struct sim_node *nd);
void sim_deliver(struct sim_world *w, struct sim_netmsg *m);
void sim_netmsg_unref(struct sim_netmsg *m);
void sim_tick(struct sim_world *w, struct sim_node *nd);
uint64_t sim_client_write(struct sim_world *w, struct sim_node *nd, int key);
uint64_t sim_client_read(struct sim_world *w, struct sim_node *nd, int key);
int sim_compact(struct sim_world *w, struct sim_node *nd);
struct sim_node *sim_node_by_id(struct sim_world *w, uint64_t id);
struct sim_node *sim_leader(struct sim_world *w);
void sim_after_step(struct sim_world *w);
void sim_fmt_msg(struct buf *b, const struct raft_msg *m);
void sim_fmt_entry(struct buf *b, const struct raft_entry *e);
void sim_schedule(struct sim_world *w, uint64_t at, int type, int slot, uint64_t inc,
    struct sim_netmsg *msg);

/* sim_check.c */
void sim_check_init(struct sim_check *c);
void sim_check_free(struct sim_check *c);
void sim_check_written(struct sim_world *w, struct sim_node *nd, const struct raft_entry *e,
    uint64_t prev_term);
void sim_check_applied(struct sim_world *w, struct sim_node *nd, uint64_t index,
    uint64_t ent_hash);
void sim_check_snapshot(struct sim_world *w, struct sim_node *nd);
void sim_check_write_acked(struct sim_world *w, uint64_t op);
void sim_check_read(struct sim_world *w, uint64_t op, const struct sim_kv *kv);
void sim_check_step(struct sim_world *w);
void sim_check_durable_hs(struct sim_world *w, struct sim_node *nd,
    const struct raft_hardstate *hs);
uint64_t sim_entry_hash(const struct raft_entry *e);

/* sim_run.c */
int sim_run_seed(struct sim_world *w, uint64_t seed, int n, uint64_t steps, bool trace);
void sim_step_random(struct sim_world *w);

/* sim_script.c */
/* 0 ok, 1 a violation (its text in fail, may be NULL), 2 a script error. */
int sim_run_script(const char *path, struct buf *out, bool echo, char *fail, size_t fail_len);

#endif
