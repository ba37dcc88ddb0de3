/*
 * sim_check: the safety checker of the raft simulator. After every step
 * (and at every write, apply and read the world reports) it verifies:
 *  - election safety: at most one leader per term, over the whole run;
 *  - log matching: every (index, term) written to any disk has one content
 *    and one previous term, so equal (index, term) means equal prefixes;
 *  - leader completeness: a new leader of term T holds every entry that was
 *    seen committed by a node whose term was below T;
 *  - state machine safety: no two nodes apply different entries (or reach
 *    different states) at one index, snapshots included;
 *  - no live node's commit index or term goes backwards, applied <= commit;
 *  - a member never durably votes for two candidates in one term, across
 *    restarts (a vote is only sent once durable);
 *  - leader append-only: a leader never rewrites or drops its own entries;
 *  - linearizable reads: a read answered through ReadIndex reflects every
 *    write acknowledged before the read was invoked (globally: its read
 *    index covers them; per key: the value's index is not older).
 * It only observes: it must never change the world, only report the first
 * violation through sim_failf.
 */
#include <stdint.h>
#include <string.h>

#include "corebox/mem.h"
#include "corebox/raft.h"
#include "sim.h"

void
sim_check_init(struct sim_check *c)
{
	memset(c, 0, sizeof(*c));
}

void
sim_check_free(struct sim_check *c)
{
	mem_free(c->lm);
	mem_free(c->c_term);
	mem_free(c->c_obs);
	mem_free(c->a_hash);
	mem_free(c->a_ent);
	mem_free(c->leader_of);
	memset(c, 0, sizeof(*c));
}

static uint64_t *
grow_array(uint64_t *a, size_t old, size_t cap)
{
	a = mem_realloc(a, cap * sizeof(*a));
	memset(a + old, 0, (cap - old) * sizeof(*a));
	return a;
}

static void
grow(struct sim_check *c, uint64_t index)
{
	size_t cap = c->cap ? c->cap : 1024;

	if (index < c->cap)
		return;
	while (cap <= index)
		cap *= 2;
	c->c_term = grow_array(c->c_term, c->cap, cap);
	c->c_obs = grow_array(c->c_obs, c->cap, cap);
	c->a_hash = grow_array(c->a_hash, c->cap, cap);
	c->a_ent = grow_array(c->a_ent, c->cap, cap);
	c->cap = cap;
}

uint64_t
sim_entry_hash(const struct raft_entry *e)
{
	uint64_t h = sim_hash_u64(sim_hash_u64(1, e->term), e->type);

	h = sim_hash_bytes(h, e->data, e->len);
	return h ? h : 1;
}

/* ------------------------------------------------------------------ */
/* Log matching                                                        */
/* ------------------------------------------------------------------ */

static size_t
lm_pos(const struct sim_check *c, uint64_t index, uint64_t term)
{
	return (size_t)(sim_hash_u64(index, term) & (c->lm_cap - 1));
}

static void
lm_grow(struct sim_check *c)
{
	struct sim_lm_slot *old = c->lm;
	size_t old_cap = c->lm_cap;

	c->lm_cap = old_cap ? old_cap * 2 : 4096;
	c->lm = mem_calloc(c->lm_cap, sizeof(*c->lm));
	for (size_t i = 0; i < old_cap; i++) {
		size_t p;

		if (old[i].index == 0)
			continue;
		p = lm_pos(c, old[i].index, old[i].term);
		while (c->lm[p].index != 0)
			p = (p + 1) & (c->lm_cap - 1);
		c->lm[p] = old[i];
	}
	mem_free(old);
}

void
sim_check_written(struct sim_world *w, struct sim_node *nd, const struct raft_entry *e,
    uint64_t prev_term)
{
	struct sim_check *c = &w->chk;
	uint64_t h = sim_entry_hash(e);
	size_t p;

	if (e->term < prev_term) {
		sim_failf(w, "log", "n%llu writes %llu@%llu after term %llu",
		    (unsigned long long)nd->id, (unsigned long long)e->index,
		    (unsigned long long)e->term, (unsigned long long)prev_term);
		return;
	}
	if (c->lm_n * 2 >= c->lm_cap)
		lm_grow(c);
	p = lm_pos(c, e->index, e->term);
	while (c->lm[p].index != 0) {
		struct sim_lm_slot *s = &c->lm[p];

		if (s->index == e->index && s->term == e->term) {
			if (s->hash != h || s->prev_term != prev_term)
				sim_failf(w, "log-matching",
				    "n%llu writes %llu@%llu with %s than another log's %llu@%llu",
				    (unsigned long long)nd->id, (unsigned long long)e->index,
				    (unsigned long long)e->term,
				    s->hash != h ? "other content" : "another previous term",
				    (unsigned long long)e->index, (unsigned long long)e->term);
			return;
		}
		p = (p + 1) & (c->lm_cap - 1);
	}
	c->lm[p].index = e->index;
	c->lm[p].term = e->term;
	c->lm[p].hash = h;
	c->lm[p].prev_term = prev_term;
	c->lm_n++;
}

/* ------------------------------------------------------------------ */
/* State machine safety                                                */
/* ------------------------------------------------------------------ */

void
sim_check_applied(struct sim_world *w, struct sim_node *nd, uint64_t index, uint64_t ent_hash)
{
	struct sim_check *c = &w->chk;
	uint64_t h = nd->sm.hash ? nd->sm.hash : 1;

	grow(c, index);
	if (c->a_hash[index] == 0) {
		c->a_hash[index] = h;
		c->a_ent[index] = ent_hash;
		return;
	}
	if (c->a_ent[index] != ent_hash)
		sim_failf(w, "state-machine-safety", "n%llu applies a different entry at %llu",
		    (unsigned long long)nd->id, (unsigned long long)index);
	else if (c->a_hash[index] != h)
		sim_failf(w, "state-machine-safety", "n%llu reaches a different state at %llu",
		    (unsigned long long)nd->id, (unsigned long long)index);
}

void
sim_check_snapshot(struct sim_world *w, struct sim_node *nd)
{
	struct sim_check *c = &w->chk;
	uint64_t index = nd->sm.applied, h = nd->sm.hash ? nd->sm.hash : 1;

	if (index == 0)
		return;
	grow(c, index);
	if (c->a_hash[index] == 0)
		sim_failf(w, "state-machine-safety", "n%llu holds a snapshot at %llu nobody applied",
		    (unsigned long long)nd->id, (unsigned long long)index);
	else if (c->a_hash[index] != h)
		sim_failf(w, "state-machine-safety", "n%llu holds a snapshot at %llu that differs",
		    (unsigned long long)nd->id, (unsigned long long)index);
}

/* ------------------------------------------------------------------ */
/* Client history                                                      */
/* ------------------------------------------------------------------ */

void
sim_check_write_acked(struct sim_world *w, uint64_t opid)
{
	struct sim_check *c = &w->chk;
	struct sim_op *op = &w->ops[opid];

	if (op->index > c->acked_max)
		c->acked_max = op->index;
	if (op->index > c->acked_key[op->key])
		c->acked_key[op->key] = op->index;
	c->n_writes_acked++;
	sim_tracef(w, "n%llu: put op=%llu acknowledged at index %llu",
	    (unsigned long long)w->nodes[op->slot].id, (unsigned long long)opid,
	    (unsigned long long)op->index);
}

void
sim_check_read(struct sim_world *w, uint64_t opid, const struct sim_kv *kv)
{
	struct sim_check *c = &w->chk;
	struct sim_op *op = &w->ops[opid];

	if (op->index < op->floor_global)
		sim_failf(w, "linearizability",
		    "read op=%llu got read index %llu, but a write acknowledged before it "
		    "started is at %llu", (unsigned long long)opid, (unsigned long long)op->index,
		    (unsigned long long)op->floor_global);
	else if (kv->index < op->floor_key)
		sim_failf(w, "linearizability",
		    "read op=%llu of key %d saw the write at %llu, but the write at %llu was "
		    "acknowledged before it started", (unsigned long long)opid, op->key,
		    (unsigned long long)kv->index, (unsigned long long)op->floor_key);
	op->state = SIM_OP_ACKED;
	c->n_reads_checked++;
}

/*
 * A hard state became durable. A vote only counts once durable (it is sent
 * after the fsync), so this is where two votes in one term would show.
 */
void
sim_check_durable_hs(struct sim_world *w, struct sim_node *nd, const struct raft_hardstate *hs)
{
	if (hs->vote == RAFT_NONE)
		return;
	if (hs->term == nd->voted_term && hs->vote != nd->voted_for)
		sim_failf(w, "vote", "n%llu voted for n%llu and n%llu in term %llu",
		    (unsigned long long)nd->id, (unsigned long long)nd->voted_for,
		    (unsigned long long)hs->vote, (unsigned long long)hs->term);
	if (hs->term >= nd->voted_term) {
		nd->voted_term = hs->term;
		nd->voted_for = hs->vote;
	}
}

/* ------------------------------------------------------------------ */
/* After every step                                                    */
/* ------------------------------------------------------------------ */

static void
check_leader_completeness(struct sim_world *w, struct sim_node *nd, const struct raft_status *st)
{
	struct sim_check *c = &w->chk;
	uint64_t i = c->c_max, t;

	/* The newest entry seen committed below this leader's term. */
	while (i > 0 && (c->c_term[i] == 0 || c->c_obs[i] >= st->term))
		i--;
	if (i == 0)
		return;
	if (raft_term_at(nd->r, i, &t) == 0) {
		if (t != c->c_term[i])
			sim_failf(w, "leader-completeness",
			    "n%llu leads term %llu with %llu@%llu where %llu@%llu was committed",
			    (unsigned long long)nd->id, (unsigned long long)st->term,
			    (unsigned long long)i, (unsigned long long)t, (unsigned long long)i,
			    (unsigned long long)c->c_term[i]);
	} else if (i > st->last_index) {
		sim_failf(w, "leader-completeness",
		    "n%llu leads term %llu without committed entry %llu (last %llu)",
		    (unsigned long long)nd->id, (unsigned long long)st->term,
		    (unsigned long long)i, (unsigned long long)st->last_index);
	}
	/* Below the log's start the leader's snapshot covers it. */
}

static void
check_node(struct sim_world *w, struct sim_node *nd)
{
	struct sim_check *c = &w->chk;
	struct raft_status st;

	raft_status(nd->r, &st);
	if (st.role == RAFT_LEADER) {
		if (st.term >= c->leader_cap) {
			size_t cap = c->leader_cap ? c->leader_cap : 64;

			while (cap <= st.term)
				cap *= 2;
			c->leader_of = grow_array(c->leader_of, c->leader_cap, cap);
			c->leader_cap = cap;
		}
		if (c->leader_of[st.term] == 0)
			c->leader_of[st.term] = st.id;
		else if (c->leader_of[st.term] != st.id)
			sim_failf(w, "election-safety", "two leaders in term %llu: n%llu and n%llu",
			    (unsigned long long)st.term, (unsigned long long)c->leader_of[st.term],
			    (unsigned long long)st.id);
	}
	if (st.term < nd->term_seen)
		sim_failf(w, "term", "n%llu term went back from %llu to %llu",
		    (unsigned long long)st.id, (unsigned long long)nd->term_seen,
		    (unsigned long long)st.term);
	if (st.role == RAFT_LEADER && nd->role_seen == RAFT_LEADER && nd->term_seen == st.term &&
	    nd->lead_last > 0) {
		uint64_t t;

		/* Compaction may drop it; anything else must keep it. */
		if (raft_term_at(nd->r, nd->lead_last, &t) == 0 ? t != nd->lead_last_term :
		    nd->lead_last > st.snap_index)
			sim_failf(w, "leader-append-only", "n%llu, leader of term %llu, lost %llu@%llu",
			    (unsigned long long)st.id, (unsigned long long)st.term,
			    (unsigned long long)nd->lead_last, (unsigned long long)nd->lead_last_term);
	}
	nd->lead_last = 0;
	if (st.role == RAFT_LEADER) {
		nd->lead_last = st.last_index;
		nd->lead_last_term = st.last_term;
	}
	if (st.commit < nd->commit_seen)
		sim_failf(w, "commit", "n%llu commit index went back from %llu to %llu",
		    (unsigned long long)st.id, (unsigned long long)nd->commit_seen,
		    (unsigned long long)st.commit);
	if (st.applied > st.commit)
		sim_failf(w, "commit", "n%llu applied %llu beyond commit %llu",
		    (unsigned long long)st.id, (unsigned long long)st.applied,
		    (unsigned long long)st.commit);
	for (uint64_t i = nd->commit_seen + 1; i <= st.commit; i++) {
		uint64_t t;

		/* Indexes a snapshot covers are checked through its state. */
		if (raft_term_at(nd->r, i, &t) != 0)
			continue;
		grow(c, i);
		if (c->c_term[i] == 0) {
			c->c_term[i] = t;
			c->c_obs[i] = st.term;
		} else if (c->c_term[i] != t) {
			sim_failf(w, "state-machine-safety",
			    "n%llu commits %llu@%llu where %llu@%llu was committed",
			    (unsigned long long)st.id, (unsigned long long)i, (unsigned long long)t,
			    (unsigned long long)i, (unsigned long long)c->c_term[i]);
		}
		if (i > c->c_max)
			c->c_max = i;
	}
	if (st.commit > nd->commit_seen)
		nd->commit_seen = st.commit;
	if (st.role == RAFT_LEADER && (nd->role_seen != RAFT_LEADER || nd->term_seen != st.term))
		check_leader_completeness(w, nd, &st);
	nd->role_seen = st.role;
	nd->term_seen = st.term;
	nd->lead_seen = st.lead;
}

void
sim_check_step(struct sim_world *w)
{
	for (int i = 0; i < w->n && !w->failed; i++)
		if (w->nodes[i].state == SLOT_UP)
			check_node(w, &w->nodes[i]);
}
