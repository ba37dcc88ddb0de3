/*
 * raft: the consensus state machine (roles, elections, replication, commit,
 * reads, transfers, membership). It is driven only through the functions in
 * corebox/raft.h and answers only through the ready structure that
 * raft_ready.c hands out: it must never do I/O, read a clock, draw
 * randomness other than from the caller's seed, or keep state outside
 * struct raft. The rules
 * follow etcd-io/raft; where this file departs from it (configuration in
 * force on append, batched ReadIndex rounds, the leader counting itself
 * only for persisted entries) raft.h says why.
 */
#include <stdint.h>
#include <string.h>

#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/raft.h"
#include "raft_int.h"

#ifndef RAFT_TEST_BUG
#define RAFT_TEST_BUG 0
#endif

enum campaign_type {
	CAMPAIGN_PRE,
	CAMPAIGN_ELECTION,
	CAMPAIGN_TRANSFER,
};

enum poll_result {
	POLL_PENDING,
	POLL_WON,
	POLL_LOST,
};

static void bcast_append(struct raft *r);
static void become_leader(struct raft *r);
static void send_timeout_now(struct raft *r, uint64_t to);

/* ------------------------------------------------------------------ */
/* Randomness (caller-seeded) and small helpers                        */
/* ------------------------------------------------------------------ */

static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void
reset_rand_timeout(struct raft *r)
{
	r->rand_timeout = r->o.election_ticks + (unsigned)(splitmix64(&r->rng) % r->o.election_ticks);
}

static bool
is_member(const struct raft *r, uint64_t id)
{
	return raft_config_has(&r->conf, id);
}

static bool
promotable(const struct raft *r)
{
	return is_member(r, r->id);
}

static uint64_t
last_index(const struct raft *r)
{
	return raft_log_last_index(r);
}

static uint64_t
term_or_zero(const struct raft *r, uint64_t index)
{
	uint64_t t;

	return raft_log_term(r, index, &t) == 0 ? t : 0;
}

static bool
committed_in_term(const struct raft *r)
{
	return term_or_zero(r, r->commit) == r->term;
}

/* The value at least a majority of the n values reach. */
static uint64_t
quorum_value(uint64_t *v, size_t n)
{
	/* Insertion sort, descending: n is at most RAFT_MEMBERS_MAX. */
	for (size_t i = 1; i < n; i++) {
		uint64_t x = v[i];
		size_t j = i;

		for (; j > 0 && v[j - 1] < x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
	return n == 0 ? 0 : v[n / 2];
}

/* ------------------------------------------------------------------ */
/* Progress (etcd's tracker)                                           */
/* ------------------------------------------------------------------ */

struct raft_pr *
raft_pr_get(struct raft *r, uint64_t id)
{
	if (id == RAFT_NONE)
		return NULL;
	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

static void
pr_reset_state(struct raft_pr *pr, uint32_t state)
{
	pr->probe_sent = false;
	pr->pending_snapshot = 0;
	pr->snap_ticks = 0;
	pr->state = state;
	pr->in_start = 0;
	pr->in_count = 0;
}

static void
pr_become_probe(struct raft_pr *pr)
{
	if (pr->state == RAFT_PR_SNAPSHOT) {
		uint64_t pending = pr->pending_snapshot;

		pr_reset_state(pr, RAFT_PR_PROBE);
		pr->next = (pr->match + 1 > pending + 1) ? pr->match + 1 : pending + 1;
	} else {
		pr_reset_state(pr, RAFT_PR_PROBE);
		pr->next = pr->match + 1;
	}
}

static void
pr_become_replicate(struct raft_pr *pr)
{
	pr_reset_state(pr, RAFT_PR_REPLICATE);
	pr->next = pr->match + 1;
}

static void
pr_become_snapshot(struct raft_pr *pr, uint64_t index)
{
	pr_reset_state(pr, RAFT_PR_SNAPSHOT);
	pr->pending_snapshot = index;
}

static bool
pr_maybe_update(struct raft_pr *pr, uint64_t n)
{
	bool updated = false;

	if (pr->match < n) {
		pr->match = n;
		updated = true;
		pr->probe_sent = false;
	}
	if (pr->next < n + 1)
		pr->next = n + 1;
	return updated;
}

/* A rejection of the append at index `rejected`; hint is where to probe. */
static bool
pr_maybe_decr_to(struct raft_pr *pr, uint64_t rejected, uint64_t hint)
{
	if (pr->state == RAFT_PR_REPLICATE) {
		/* Stale: that index was already acknowledged. */
		if (rejected <= pr->match)
			return false;
		pr->next = pr->match + 1;
		return true;
	}
	/* Probing sends one append at a time: any other index is stale. */
	if (pr->next - 1 != rejected)
		return false;
	pr->next = rejected < hint + 1 ? rejected : hint + 1;
	if (pr->next < pr->match + 1)
		pr->next = pr->match + 1;
	pr->probe_sent = false;
	return true;
}

static bool
pr_inflight_full(const struct raft *r, const struct raft_pr *pr)
{
	return pr->in_count >= r->o.max_inflight_msgs;
}

static void
pr_inflight_add(const struct raft *r, struct raft_pr *pr, uint64_t index)
{
	if (pr_inflight_full(r, pr))
		return;
	pr->in_buf[(pr->in_start + pr->in_count) % r->o.max_inflight_msgs] = index;
	pr->in_count++;
}

static void
pr_inflight_free_le(const struct raft *r, struct raft_pr *pr, uint64_t index)
{
	while (pr->in_count > 0 && pr->in_buf[pr->in_start] <= index) {
		pr->in_start = (pr->in_start + 1) % r->o.max_inflight_msgs;
		pr->in_count--;
	}
	if (pr->in_count == 0)
		pr->in_start = 0;
}

static void
pr_inflight_free_first(const struct raft *r, struct raft_pr *pr)
{
	if (pr->in_count == 0)
		return;
	pr->in_start = (pr->in_start + 1) % r->o.max_inflight_msgs;
	pr->in_count--;
}

bool
raft_pr_is_paused(const struct raft *r, const struct raft_pr *pr)
{
	switch (pr->state) {
	case RAFT_PR_PROBE:
		return pr->probe_sent;
	case RAFT_PR_REPLICATE:
		return pr_inflight_full(r, pr);
	default:
		return true;
	}
}

static void
pr_init(struct raft *r, struct raft_pr *pr, uint64_t id)
{
	uint64_t *buf = pr->in_buf;

	memset(pr, 0, sizeof(*pr));
	pr->in_buf = buf;
	pr->id = id;
	pr->next = last_index(r) + 1;
	/* A new member counts as active so that check-quorum does not depose
	 * the leader before the member had a chance to answer. */
	pr->recent_active = true;
	if (id == r->id)
		pr->match = r->stable;
}

/* Makes the progress slots match r->conf. */
void
raft_sync_progress(struct raft *r)
{
	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++) {
		struct raft_pr *pr = &r->prs[i];

		if (pr->id != RAFT_NONE && !is_member(r, pr->id)) {
			uint64_t *buf = pr->in_buf;

			memset(pr, 0, sizeof(*pr));
			pr->in_buf = buf;
		}
	}
	for (uint32_t k = 0; k < r->conf.n; k++) {
		uint64_t id = r->conf.ids[k];

		if (raft_pr_get(r, id) != NULL)
			continue;
		for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++) {
			if (r->prs[i].id == RAFT_NONE) {
				pr_init(r, &r->prs[i], id);
				if (r->role == RAFT_LEADER && id == r->id)
					pr_become_replicate(&r->prs[i]);
				break;
			}
		}
	}
	if (r->lead_transferee != RAFT_NONE && !is_member(r, r->lead_transferee))
		r->lead_transferee = RAFT_NONE;
}

/* After the log changed: put the configuration it implies in force. */
void
raft_refresh_conf(struct raft *r)
{
	if (raft_log_refresh_conf(r))
		raft_sync_progress(r);
}

/* ------------------------------------------------------------------ */
/* Outgoing messages                                                   */
/* ------------------------------------------------------------------ */

/* Queues a message; NULL (and r->nomem) when out of memory. */
static struct raft_msg *
msg_new(struct raft *r, uint32_t type, uint64_t to)
{
	struct raft_msg *m;

	/* A caller that stopped draining readies must not make us grow forever. */
	if (r->n_msgs >= RAFT_MSGS_PENDING_MAX)
		return NULL;
	if (r->n_msgs == r->cap_msgs) {
		size_t cap = r->cap_msgs ? r->cap_msgs * 2 : 16;
		struct raft_msg *p = mem_realloc(r->msgs, cap * sizeof(*p));

		if (p == NULL) {
			r->nomem = true;
			return NULL;
		}
		r->msgs = p;
		r->cap_msgs = cap;
	}
	m = &r->msgs[r->n_msgs++];
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->from = r->id;
	m->to = to;
	if (type != RAFT_MSG_PROP && type != RAFT_MSG_READ_INDEX)
		m->term = r->term;
	return m;
}

static void
msg_drop_last(struct raft *r)
{
	raft_msg_clear(&r->msgs[--r->n_msgs]);
}

static void
push_read_state(struct raft *r, uint64_t ctx, uint64_t index)
{
	if (r->n_reads == r->cap_reads) {
		size_t cap = r->cap_reads ? r->cap_reads * 2 : 16;
		struct raft_read_state *p = mem_realloc(r->reads, cap * sizeof(*p));

		if (p == NULL) {
			r->nomem = true;
			return;
		}
		r->reads = p;
		r->cap_reads = cap;
	}
	r->reads[r->n_reads].ctx = ctx;
	r->reads[r->n_reads].index = index;
	r->n_reads++;
}

/* Sends a snapshot to pr; false if none can be sent now. */
static bool
send_snapshot(struct raft *r, struct raft_pr *pr)
{
	struct raft_msg *m;

	if (!pr->recent_active || r->snap_blob == NULL || r->snap.index == 0)
		return false;
	if ((m = msg_new(r, RAFT_MSG_SNAP, pr->id)) == NULL)
		return false;
	m->snap = r->snap;
	m->snap_blob_ = raft_blob_ref(r->snap_blob);
	m->snap_data = r->snap_blob->len > 0 ? r->snap_blob->data : NULL;
	m->snap_len = r->snap_blob->len;
	pr_become_snapshot(pr, r->snap.index);
	return true;
}

/*
 * Sends an append (or a snapshot when the entries are compacted) to `to` if
 * its flow control allows; with send_if_empty an append without entries is
 * sent too (it carries the commit index or probes). True if sent.
 */
static bool
send_append(struct raft *r, uint64_t to, bool send_if_empty)
{
	struct raft_pr *pr = raft_pr_get(r, to);
	uint64_t prev, prev_term, last = last_index(r);
	size_t k = 0, bytes = 0;
	struct raft_msg *m;

	if (pr == NULL || to == r->id || raft_pr_is_paused(r, pr))
		return false;
	prev = pr->next - 1;
	if (raft_log_term(r, prev, &prev_term) != 0)
		return send_snapshot(r, pr);
	/* At least one entry, then up to max_msg_bytes. */
	for (uint64_t i = pr->next; i <= last && k < RAFT_MSG_ENTRIES_MAX; i++) {
		const struct raft_entry *e = raft_log_entry(r, i);

		if (k > 0 && bytes + e->len > r->o.max_msg_bytes)
			break;
		bytes += e->len;
		k++;
	}
	if (k == 0 && !send_if_empty)
		return false;
	if ((m = msg_new(r, RAFT_MSG_APP, to)) == NULL)
		return false;
	m->index = prev;
	m->log_term = prev_term;
	m->commit = r->commit;
	if (k > 0) {
		m->entries = mem_calloc(k, sizeof(*m->entries));
		if (m->entries == NULL) {
			msg_drop_last(r);
			r->nomem = true;
			return false;
		}
		for (size_t i = 0; i < k; i++)
			raft_entry_copy(&m->entries[i], raft_log_entry(r, pr->next + i));
		m->n_entries = k;
	}
	switch (pr->state) {
	case RAFT_PR_REPLICATE:
		if (k > 0) {
			pr->next += k;
			pr_inflight_add(r, pr, pr->next - 1);
		}
		break;
	case RAFT_PR_PROBE:
		pr->probe_sent = true;
		break;
	}
	return true;
}

static void
bcast_append(struct raft *r)
{
	for (uint32_t i = 0; i < r->conf.n; i++)
		if (r->conf.ids[i] != r->id)
			send_append(r, r->conf.ids[i], true);
}

static void
send_heartbeat(struct raft *r, struct raft_pr *pr, uint64_t ctx)
{
	struct raft_msg *m = msg_new(r, RAFT_MSG_HEARTBEAT, pr->id);

	if (m == NULL)
		return;
	/* Never more than the follower is known to hold: it may lag. */
	m->commit = pr->match < r->commit ? pr->match : r->commit;
	m->ctx = ctx;
}

static void
bcast_heartbeat(struct raft *r, uint64_t ctx)
{
	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++)
		if (r->prs[i].id != RAFT_NONE && r->prs[i].id != r->id)
			send_heartbeat(r, &r->prs[i], ctx);
}

static void
send_simple(struct raft *r, uint32_t type, uint64_t to, uint64_t term, uint64_t index, bool reject)
{
	struct raft_msg *m = msg_new(r, type, to);

	if (m == NULL)
		return;
	m->term = term;
	m->index = index;
	if (reject)
		m->flags |= RAFT_MSG_F_REJECT;
}

/* ------------------------------------------------------------------ */
/* Reads (batched ReadIndex)                                           */
/* ------------------------------------------------------------------ */

static void
reads_drop(struct raft *r)
{
	r->n_rq = 0;
}

static void
deliver_read(struct raft *r, const struct raft_read_req *q)
{
	struct raft_msg *m;

	if (q->from == r->id) {
		push_read_state(r, q->ctx, q->index);
		return;
	}
	if ((m = msg_new(r, RAFT_MSG_READ_INDEX_RESP, q->from)) == NULL)
		return;
	m->ctx = q->ctx;
	m->index = q->index;
}

/* Releases every round a majority has acknowledged. */
static void
reads_release(struct raft *r)
{
	uint64_t acks[RAFT_MEMBERS_MAX], q;
	size_t n = 0, i = 0;

	if (r->n_rq == 0)
		return;
	for (unsigned k = 0; k < RAFT_MEMBERS_MAX; k++)
		if (r->prs[k].id != RAFT_NONE)
			acks[n++] = r->prs[k].read_ack;
	q = quorum_value(acks, n);
	while (i < r->n_rq && r->rq[i].seq != 0 && r->rq[i].seq <= q)
		deliver_read(r, &r->rq[i++]);
	if (i > 0) {
		memmove(r->rq, r->rq + i, (r->n_rq - i) * sizeof(*r->rq));
		r->n_rq -= i;
	}
}

/*
 * Turns every read not yet in a round into one round: the commit index now,
 * one heartbeat per follower carrying the round's sequence number. Needs a
 * committed entry of this term, or the commit index may miss writes a
 * previous leader acknowledged.
 */
void
raft_reads_flush(struct raft *r)
{
	struct raft_pr *self;
	bool any = false;

	if (r->role != RAFT_LEADER || !committed_in_term(r))
		return;
	for (size_t i = 0; i < r->n_rq; i++)
		if (r->rq[i].seq == 0)
			any = true;
	if (!any)
		return;
	r->read_seq++;
	for (size_t i = 0; i < r->n_rq; i++) {
		if (r->rq[i].seq == 0) {
			r->rq[i].seq = r->read_seq;
			r->rq[i].index = r->commit;
		}
	}
	if ((self = raft_pr_get(r, r->id)) != NULL)
		self->read_ack = r->read_seq;
	bcast_heartbeat(r, r->read_seq);
	reads_release(r);
}

bool
raft_reads_flush_pending(const struct raft *r)
{
	if (r->role != RAFT_LEADER || !committed_in_term(r))
		return false;
	for (size_t i = 0; i < r->n_rq; i++)
		if (r->rq[i].seq == 0)
			return true;
	return false;
}

static int
read_request(struct raft *r, uint64_t ctx, uint64_t from)
{
	struct raft_read_req *q;

#if RAFT_TEST_BUG == RAFT_BUG_READ_NO_QUORUM
	{
		struct raft_read_req now = { ctx, from, 1, r->commit };

		deliver_read(r, &now);
		return 0;
	}
#endif
	if (r->n_rq >= RAFT_READS_PENDING_MAX)
		return -ERR_LIMIT;
	if (r->n_rq == r->cap_rq) {
		size_t cap = r->cap_rq ? r->cap_rq * 2 : 16;
		struct raft_read_req *p = mem_realloc(r->rq, cap * sizeof(*p));

		if (p == NULL)
			return -ERR_NOMEM;
		r->rq = p;
		r->cap_rq = cap;
	}
	q = &r->rq[r->n_rq++];
	q->ctx = ctx;
	q->from = from;
	q->seq = 0;
	q->index = 0;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Role changes                                                        */
/* ------------------------------------------------------------------ */

static void
reset(struct raft *r, uint64_t term)
{
	if (r->term != term) {
		r->term = term;
		r->vote = RAFT_NONE;
	}
	r->lead = RAFT_NONE;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	reset_rand_timeout(r);
	r->lead_transferee = RAFT_NONE;
	r->pending_conf_index = 0;
	r->uncommitted_bytes = 0;
	reads_drop(r);
	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++) {
		struct raft_pr *pr = &r->prs[i];

		if (pr->id == RAFT_NONE)
			continue;
		pr_reset_state(pr, RAFT_PR_PROBE);
		pr->vote = RAFT_VOTE_UNKNOWN;
		pr->match = pr->id == r->id ? r->stable : 0;
		pr->next = last_index(r) + 1;
		pr->recent_active = false;
		pr->read_ack = 0;
	}
}

void
raft_become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
	reset(r, term);
	r->role = RAFT_FOLLOWER;
	r->lead = lead;
}

static void
become_pre_candidate(struct raft *r)
{
	/* Neither the term nor the vote changes: that is the point of pre-vote. */
	r->role = RAFT_PRECANDIDATE;
	r->lead = RAFT_NONE;
	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++)
		r->prs[i].vote = RAFT_VOTE_UNKNOWN;
}

static void
become_candidate(struct raft *r)
{
	reset(r, r->term + 1);
	r->vote = r->id;
	r->role = RAFT_CANDIDATE;
}

/* Appends one entry of the current term; its data reference is taken over. */
static int
append_entry(struct raft *r, uint32_t type, struct raft_blob *b, uint64_t *index)
{
	struct raft_entry e = { 0 };
	int rc;

	e.term = r->term;
	e.type = type;
	e.len = b != NULL ? (uint32_t)b->len : 0;
	e.data = b != NULL && b->len > 0 ? b->data : NULL;
	e.blob_ = b != NULL && b->len > 0 ? b : NULL;
	if ((rc = raft_log_reserve(r, 1)) != 0) {
		raft_blob_unref(b);
		return rc;
	}
	rc = raft_log_push(r, &e);
	raft_blob_unref(b);
	if (rc != 0)
		return rc;
	r->uncommitted_bytes += e.len;
	if (index != NULL)
		*index = last_index(r);
	return 0;
}

static void
become_leader(struct raft *r)
{
	struct raft_pr *self;

	reset(r, r->term);
	r->role = RAFT_LEADER;
	r->lead = r->id;
	if ((self = raft_pr_get(r, r->id)) != NULL) {
		pr_become_replicate(self);
		self->match = r->stable;
		self->recent_active = true;
	}
	/* No configuration change until everything before this term commits. */
	r->pending_conf_index = last_index(r);
	/* The no-op entry lets this term commit, and with it all before it. */
	if (append_entry(r, RAFT_ENTRY_NORMAL, NULL, NULL) != 0)
		r->nomem = true;
}

static enum poll_result
poll(struct raft *r, uint64_t id, bool granted)
{
	struct raft_pr *pr = raft_pr_get(r, id);
	unsigned yes = 0, no = 0, q = r->conf.n / 2 + 1;

	if (pr != NULL && pr->vote == RAFT_VOTE_UNKNOWN)
		pr->vote = granted ? RAFT_VOTE_GRANTED : RAFT_VOTE_REJECTED;
	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++) {
		if (r->prs[i].id == RAFT_NONE)
			continue;
		if (r->prs[i].vote == RAFT_VOTE_GRANTED)
			yes++;
		else if (r->prs[i].vote == RAFT_VOTE_REJECTED)
			no++;
	}
	if (yes >= q)
		return POLL_WON;
	if (r->conf.n - no < q)
		return POLL_LOST;
	return POLL_PENDING;
}

static void
campaign(struct raft *r, enum campaign_type t)
{
	uint32_t vote_type;
	uint64_t term;

	if (!promotable(r))
		return;
	if (t == CAMPAIGN_PRE) {
		become_pre_candidate(r);
		vote_type = RAFT_MSG_PREVOTE;
		term = r->term + 1;
	} else {
		become_candidate(r);
		vote_type = RAFT_MSG_VOTE;
		term = r->term;
	}
	if (poll(r, r->id, true) == POLL_WON) {
		/* A one-member configuration wins at once. */
		if (t == CAMPAIGN_PRE) {
			campaign(r, CAMPAIGN_ELECTION);
		} else {
			become_leader(r);
			bcast_append(r);
		}
		return;
	}
	for (uint32_t i = 0; i < r->conf.n; i++) {
		struct raft_msg *m;

		if (r->conf.ids[i] == r->id)
			continue;
		if ((m = msg_new(r, vote_type, r->conf.ids[i])) == NULL)
			continue;
		m->term = term;
		m->index = last_index(r);
		m->log_term = raft_log_last_term(r);
		if (t == CAMPAIGN_TRANSFER)
			m->flags |= RAFT_MSG_F_TRANSFER;
	}
}

static void
hup(struct raft *r)
{
	if (r->role == RAFT_LEADER)
		return;
	campaign(r, r->o.pre_vote ? CAMPAIGN_PRE : CAMPAIGN_ELECTION);
}

/* ------------------------------------------------------------------ */
/* Commit                                                              */
/* ------------------------------------------------------------------ */

static void
commit_to(struct raft *r, uint64_t index)
{
	if (index > r->commit)
		r->commit = index;
}

/*
 * A leader removed from the configuration leads until that is committed,
 * then steps down and, rather than leaving the members to wait out an
 * election timeout, tells the most up-to-date one to campaign at once.
 */
static void
maybe_step_down_removed(struct raft *r)
{
	struct raft_pr *best = NULL;

	if (r->role != RAFT_LEADER || is_member(r, r->id) || r->commit < r->conf_index)
		return;
	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++) {
		struct raft_pr *pr = &r->prs[i];

		if (pr->id != RAFT_NONE && (best == NULL || pr->match > best->match))
			best = pr;
	}
	if (best != NULL && best->match == last_index(r))
		send_timeout_now(r, best->id);
	raft_become_follower(r, r->term, RAFT_NONE);
}

bool
raft_maybe_commit(struct raft *r)
{
	uint64_t match[RAFT_MEMBERS_MAX], mci, old = r->commit;
	size_t n = 0;

	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++)
		if (r->prs[i].id != RAFT_NONE)
			match[n++] = r->prs[i].match;
	if (n == 0)
		return false;
	mci = quorum_value(match, n);
	if (mci <= r->commit)
		return false;
#if RAFT_TEST_BUG != RAFT_BUG_COMMIT_OLD_TERM
	/* Only an entry of this term commits by counting (Raft 5.4.2). */
	if (term_or_zero(r, mci) != r->term)
		return false;
#endif
	commit_to(r, mci);
	for (uint64_t i = old + 1; i <= r->commit; i++) {
		const struct raft_entry *e = raft_log_entry(r, i);
		uint64_t len = e != NULL ? e->len : 0;

		r->uncommitted_bytes = r->uncommitted_bytes > len ? r->uncommitted_bytes - len : 0;
	}
	return true;
}

/* After commit moved on the leader: tell followers, maybe step down. */
void
raft_leader_committed(struct raft *r)
{
	bcast_append(r);
	reads_release(r);
	maybe_step_down_removed(r);
}

/* ------------------------------------------------------------------ */
/* Follower side                                                       */
/* ------------------------------------------------------------------ */

/* The last index <= index whose term is <= term (and that term). */
static uint64_t
find_conflict_by_term(const struct raft *r, uint64_t index, uint64_t term, uint64_t *out_term)
{
	uint64_t t;

	if (index > last_index(r))
		index = last_index(r);
	for (;;) {
		if (raft_log_term(r, index, &t) != 0) {
			*out_term = 0;
			return index;
		}
		if (t <= term || index == 0) {
			*out_term = t;
			return index;
		}
		index--;
	}
}

static int
handle_append(struct raft *r, const struct raft_msg *m)
{
	uint64_t t, last_new;
	size_t i, n = m->n_entries;
	struct raft_entry *copies = NULL;
	bool conf_touched = false;
	struct raft_msg *resp;

	if (m->index < r->commit) {
		send_simple(r, RAFT_MSG_APP_RESP, m->from, r->term, r->commit, false);
		return 0;
	}
	if (raft_log_term(r, m->index, &t) != 0 || t != m->log_term) {
		uint64_t hint_term, hint;

		hint = m->index < last_index(r) ? m->index : last_index(r);
		hint = find_conflict_by_term(r, hint, m->log_term, &hint_term);
		if ((resp = msg_new(r, RAFT_MSG_APP_RESP, m->from)) != NULL) {
			resp->index = m->index;
			resp->flags |= RAFT_MSG_F_REJECT;
			resp->reject_hint = hint;
			resp->log_term = hint_term;
		}
		return 0;
	}
	last_new = m->index + n;
	/* The first entry that is new or conflicts. */
	for (i = 0; i < n; i++)
		if (raft_log_term(r, m->entries[i].index, &t) != 0 || t != m->entries[i].term)
			break;
	if (i < n) {
		uint64_t ci = m->entries[i].index;

		if (ci <= r->commit)
			return -ERR_INVAL; /* would rewrite committed history */
		/* Copy first so that a failed allocation changes nothing. */
		copies = mem_calloc(n - i, sizeof(*copies));
		if (copies == NULL || raft_log_reserve(r, n - i) != 0) {
			mem_free(copies);
			return -ERR_NOMEM;
		}
		for (size_t k = i; k < n; k++) {
			if (raft_entry_copy(&copies[k - i], &m->entries[k]) != 0) {
				for (size_t j = i; j < k; j++)
					raft_entry_release(&copies[j - i]);
				mem_free(copies);
				return -ERR_NOMEM;
			}
			if (copies[k - i].type == RAFT_ENTRY_CONF)
				conf_touched = true;
		}
		if (r->conf_index >= ci)
			conf_touched = true;
		raft_log_truncate_after(r, ci - 1);
		for (size_t k = 0; k < n - i; k++) {
			/* Room is reserved and the data referenced: cannot fail. */
			r->ents[r->n_ents++] = copies[k];
		}
		mem_free(copies);
		if (conf_touched)
			raft_refresh_conf(r);
	}
	commit_to(r, m->commit < last_new ? m->commit : last_new);
	send_simple(r, RAFT_MSG_APP_RESP, m->from, r->term, last_new, false);
	return 0;
}

static int
handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg *resp;

	if (m->commit > last_index(r))
		return -ERR_INVAL;
	commit_to(r, m->commit);
	if ((resp = msg_new(r, RAFT_MSG_HEARTBEAT_RESP, m->from)) != NULL)
		resp->ctx = m->ctx;
	return 0;
}

/* Installs the snapshot in m if it moves us forward; true if installed. */
static int
restore(struct raft *r, const struct raft_msg *m, bool *installed)
{
	struct raft_blob *b;
	uint64_t t;

	*installed = false;
	if (m->snap.index <= r->commit)
		return 0;
	if (raft_log_term(r, m->snap.index, &t) == 0 && t == m->snap.term) {
		/* We hold the entries already: only the commit index moves. */
		commit_to(r, m->snap.index);
		return 0;
	}
	if ((b = raft_blob_new(m->snap_data, (size_t)m->snap_len)) == NULL)
		return -ERR_NOMEM;
	raft_log_reset(r, m->snap.index, m->snap.term);
	r->stable = m->snap.index;
	r->base_conf = m->snap.conf;
	r->commit = m->snap.index;
	r->snap = m->snap;
	raft_blob_unref(r->snap_blob);
	r->snap_blob = b;
	r->snap_unstable = true;
	raft_refresh_conf(r);
	*installed = true;
	return 0;
}

static int
handle_snapshot(struct raft *r, const struct raft_msg *m)
{
	bool installed;
	int rc;

	if ((rc = restore(r, m, &installed)) != 0)
		return rc;
	send_simple(r, RAFT_MSG_APP_RESP, m->from, r->term,
	    installed ? last_index(r) : r->commit, false);
	return 0;
}

static void
handle_vote_request(struct raft *r, const struct raft_msg *m)
{
	uint32_t resp_type = m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP : RAFT_MSG_PREVOTE_RESP;
	uint64_t lt = raft_log_last_term(r);
	bool up_to_date = m->log_term > lt || (m->log_term == lt && m->index >= last_index(r));
	bool can_vote;

	can_vote = r->vote == m->from ||
	    (r->vote == RAFT_NONE && r->lead == RAFT_NONE) ||
	    (m->type == RAFT_MSG_PREVOTE && m->term > r->term);
#if RAFT_TEST_BUG == RAFT_BUG_VOTE_TWICE
	can_vote = can_vote || (r->lead == RAFT_NONE && m->type == RAFT_MSG_VOTE);
#endif
	if (can_vote && up_to_date) {
		/* A granted pre-vote answers in the term the candidate would use. */
		send_simple(r, resp_type, m->from, m->term, 0, false);
		if (m->type == RAFT_MSG_VOTE) {
			r->election_elapsed = 0;
			r->vote = m->from;
		}
	} else {
		send_simple(r, resp_type, m->from, r->term, 0, true);
	}
}

/* ------------------------------------------------------------------ */
/* Leader side                                                         */
/* ------------------------------------------------------------------ */

static void
send_timeout_now(struct raft *r, uint64_t to)
{
	msg_new(r, RAFT_MSG_TIMEOUT_NOW, to);
}

static int
handle_app_resp(struct raft *r, const struct raft_msg *m)
{
	struct raft_pr *pr = raft_pr_get(r, m->from);
	uint64_t last = last_index(r);

	if (pr == NULL)
		return 0;
	if (m->index > last)
		return -ERR_INVAL; /* acknowledges entries we never had */
	pr->recent_active = true;
	if (m->flags & RAFT_MSG_F_REJECT) {
		uint64_t next_probe = m->reject_hint < last ? m->reject_hint : last, t;

		/* Skip the follower's whole conflicting term in one step. */
		if (m->log_term > 0)
			next_probe = find_conflict_by_term(r, next_probe, m->log_term, &t);
		if (pr_maybe_decr_to(pr, m->index, next_probe)) {
			if (pr->state == RAFT_PR_REPLICATE)
				pr_become_probe(pr);
			send_append(r, m->from, true);
		}
		return 0;
	}
	{
		bool old_paused = raft_pr_is_paused(r, pr);

		if (!pr_maybe_update(pr, m->index))
			return 0;
		switch (pr->state) {
		case RAFT_PR_PROBE:
			pr_become_replicate(pr);
			break;
		case RAFT_PR_SNAPSHOT:
			/* Back to the log once it can continue from there. */
			if (raft_log_term(r, pr->match, &(uint64_t){ 0 }) == 0) {
				pr_become_probe(pr);
				pr_become_replicate(pr);
			}
			break;
		case RAFT_PR_REPLICATE:
			pr_inflight_free_le(r, pr, m->index);
			break;
		}
		if (raft_maybe_commit(r)) {
			raft_leader_committed(r);
			if (r->role != RAFT_LEADER)
				return 0;
		} else if (old_paused) {
			send_append(r, m->from, true);
		}
		while (send_append(r, m->from, false)) {
		}
		if (m->from == r->lead_transferee && pr->match == last_index(r))
			send_timeout_now(r, m->from);
	}
	return 0;
}

static void
handle_heartbeat_resp(struct raft *r, const struct raft_msg *m)
{
	struct raft_pr *pr = raft_pr_get(r, m->from);

	if (pr == NULL)
		return;
	pr->recent_active = true;
	pr->probe_sent = false;
	/* Lost appends would keep a full window full forever: free a slot. */
	if (pr->state == RAFT_PR_REPLICATE && pr_inflight_full(r, pr))
		pr_inflight_free_first(r, pr);
	if (pr->match < last_index(r))
		send_append(r, m->from, true);
	if (m->ctx > pr->read_ack && m->ctx <= r->read_seq) {
		pr->read_ack = m->ctx;
		reads_release(r);
	}
}


static bool
proposal_allowed(const struct raft *r, uint64_t len)
{
	if (r->lead_transferee != RAFT_NONE || !is_member(r, r->id))
		return false;
	/* A single proposal is always let through an empty backlog. */
	if (r->o.max_uncommitted_bytes > 0 && r->uncommitted_bytes > 0 &&
	    r->uncommitted_bytes + len > r->o.max_uncommitted_bytes)
		return false;
	return true;
}

static int
step_leader(struct raft *r, const struct raft_msg *m)
{
	switch (m->type) {
	case RAFT_MSG_APP_RESP:
		return handle_app_resp(r, m);
	case RAFT_MSG_HEARTBEAT_RESP:
		handle_heartbeat_resp(r, m);
		return 0;
	case RAFT_MSG_PROP: {
		struct raft_blob *b = NULL;
		int rc = 0;

		for (size_t i = 0; i < m->n_entries && rc == 0; i++) {
			const struct raft_entry *e = &m->entries[i];

			if (!proposal_allowed(r, e->len))
				break; /* dropped: the proposer times out */
			if (e->len > 0 && (b = raft_blob_new(e->data, e->len)) == NULL) {
				rc = -ERR_NOMEM;
				break;
			}
			rc = append_entry(r, RAFT_ENTRY_NORMAL, e->len > 0 ? b : NULL, NULL);
		}
		bcast_append(r);
		return rc;
	}
	case RAFT_MSG_READ_INDEX:
		if (read_request(r, m->ctx, m->from) == -ERR_NOMEM)
			return -ERR_NOMEM;
		return 0;
	default:
		return 0;
	}
}

static int
step_candidate(struct raft *r, const struct raft_msg *m)
{
	uint32_t my_resp = r->role == RAFT_PRECANDIDATE ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP;

	switch (m->type) {
	case RAFT_MSG_APP:
		raft_become_follower(r, m->term, m->from);
		return handle_append(r, m);
	case RAFT_MSG_HEARTBEAT:
		raft_become_follower(r, m->term, m->from);
		return handle_heartbeat(r, m);
	case RAFT_MSG_SNAP:
		raft_become_follower(r, m->term, m->from);
		return handle_snapshot(r, m);
	default:
		break;
	}
	if (m->type != my_resp)
		return 0;
	switch (poll(r, m->from, !(m->flags & RAFT_MSG_F_REJECT))) {
	case POLL_WON:
		if (r->role == RAFT_PRECANDIDATE) {
			campaign(r, CAMPAIGN_ELECTION);
		} else {
			become_leader(r);
			bcast_append(r);
		}
		break;
	case POLL_LOST:
		raft_become_follower(r, r->term, RAFT_NONE);
		break;
	case POLL_PENDING:
		break;
	}
	return 0;
}

static int
step_follower(struct raft *r, const struct raft_msg *m)
{
	switch (m->type) {
	case RAFT_MSG_APP:
		r->election_elapsed = 0;
		r->lead = m->from;
		return handle_append(r, m);
	case RAFT_MSG_HEARTBEAT:
		r->election_elapsed = 0;
		r->lead = m->from;
		return handle_heartbeat(r, m);
	case RAFT_MSG_SNAP:
		r->election_elapsed = 0;
		r->lead = m->from;
		return handle_snapshot(r, m);
	case RAFT_MSG_TIMEOUT_NOW:
		campaign(r, CAMPAIGN_TRANSFER);
		return 0;
	case RAFT_MSG_READ_INDEX_RESP:
		push_read_state(r, m->ctx, m->index);
		return 0;
	default:
		/* Forwarded proposals and reads are for leaders only: never
		 * forward twice (that could loop between stale views). */
		return 0;
	}
}

static int
step(struct raft *r, const struct raft_msg *m)
{
	if (m->type == RAFT_MSG_PROP || m->type == RAFT_MSG_READ_INDEX) {
		/* Local requests forwarded by a peer carry no term. */
	} else if (m->term > r->term) {
		if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
			bool force = (m->flags & RAFT_MSG_F_TRANSFER) != 0;
			bool in_lease = r->o.check_quorum && r->lead != RAFT_NONE &&
			    r->election_elapsed < r->o.election_ticks;

			/* We heard from a live leader recently: do not let a
			 * partitioned or removed node depose it. */
			if (!force && in_lease)
				return 0;
		}
		if (m->type == RAFT_MSG_PREVOTE) {
			/* Never change our term for a pre-vote. */
		} else if (m->type == RAFT_MSG_PREVOTE_RESP && !(m->flags & RAFT_MSG_F_REJECT)) {
			/* A granted pre-vote carries the future term: keep ours. */
		} else if (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT ||
		    m->type == RAFT_MSG_SNAP) {
			raft_become_follower(r, m->term, m->from);
		} else {
			raft_become_follower(r, m->term, RAFT_NONE);
		}
	} else if (m->term < r->term) {
		if ((r->o.check_quorum || r->o.pre_vote) &&
		    (m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_APP)) {
			/* A stale leader learns our term and steps down; without
			 * this a node partitioned into a higher term could keep
			 * rejecting pre-votes forever. */
			send_simple(r, RAFT_MSG_APP_RESP, m->from, r->term, 0, false);
		} else if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_VOTE) {
			/* Tell a stale candidate our term (the Raft paper's reply;
			 * etcd stays silent to votes). Without it a candidate whose
			 * timeouts run slower than a voter's can stay behind its
			 * term forever, each request arriving just too late. */
			send_simple(r, m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP :
			    RAFT_MSG_PREVOTE_RESP, m->from, r->term, 0, true);
		}
		return 0;
	}
	if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
		handle_vote_request(r, m);
		return 0;
	}
	switch (r->role) {
	case RAFT_LEADER:
		return step_leader(r, m);
	case RAFT_CANDIDATE:
	case RAFT_PRECANDIDATE:
		return step_candidate(r, m);
	default:
		return step_follower(r, m);
	}
}

/* ------------------------------------------------------------------ */
/* Public: driving                                                     */
/* ------------------------------------------------------------------ */

int
raft_done(struct raft *r, int rc)
{
	if (rc == 0 && r->nomem)
		rc = -ERR_NOMEM;
	r->nomem = false;
	return rc;
}

int
raft_step(struct raft *r, const struct raft_msg *m)
{
	int rc;

	if ((rc = raft_msg_validate(m)) != 0)
		return rc;
	if (m->to != r->id || m->from == r->id)
		return -ERR_INVAL;
	r->nomem = false;
	return raft_done(r, step(r, m));
}

static bool
quorum_active(struct raft *r)
{
	unsigned active = 0;

	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++) {
		struct raft_pr *pr = &r->prs[i];

		if (pr->id == RAFT_NONE)
			continue;
		if (pr->id == r->id || pr->recent_active)
			active++;
		if (pr->id != r->id)
			pr->recent_active = false;
	}
	return active >= r->conf.n / 2 + 1;
}

static void
tick_leader(struct raft *r)
{
	r->heartbeat_elapsed++;
	r->election_elapsed++;
	if (r->election_elapsed >= r->o.election_ticks) {
		r->election_elapsed = 0;
		if (r->o.check_quorum && !quorum_active(r)) {
			raft_become_follower(r, r->term, RAFT_NONE);
			return;
		}
		/* A transfer that did not finish in an election timeout failed. */
		r->lead_transferee = RAFT_NONE;
	}
	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++) {
		struct raft_pr *pr = &r->prs[i];

		if (pr->id == RAFT_NONE || pr->state != RAFT_PR_SNAPSHOT)
			continue;
		/* Nobody reported on the snapshot: assume it was lost. */
		if (++pr->snap_ticks >= r->o.snapshot_timeout_ticks)
			pr_become_probe(pr);
	}
	if (r->heartbeat_elapsed >= r->o.heartbeat_ticks) {
		r->heartbeat_elapsed = 0;
		bcast_heartbeat(r, r->read_seq);
	}
}

int
raft_tick(struct raft *r)
{
	r->nomem = false;
	if (r->role == RAFT_LEADER) {
		tick_leader(r);
	} else {
		/* Saturates: a non-member may tick forever. */
		if (r->election_elapsed < UINT32_MAX / 2)
			r->election_elapsed++;
		if (promotable(r) && r->election_elapsed >= r->rand_timeout) {
			r->election_elapsed = 0;
			hup(r);
		}
	}
	return raft_done(r, 0);
}

int
raft_campaign(struct raft *r)
{
	r->nomem = false;
	if (!promotable(r))
		return -ERR_STATE;
	hup(r);
	return raft_done(r, 0);
}

int
raft_propose(struct raft *r, const void *data, size_t len, uint64_t *index)
{
	struct raft_blob *b = NULL;
	struct raft_msg *m;

	if (index != NULL)
		*index = 0;
	if (len > RAFT_ENTRY_BYTES_MAX || (len > 0 && data == NULL))
		return len > RAFT_ENTRY_BYTES_MAX ? -ERR_LIMIT : -ERR_INVAL;
	r->nomem = false;
	if (r->role == RAFT_LEADER) {
		if (r->lead_transferee != RAFT_NONE || !is_member(r, r->id))
			return -ERR_AGAIN;
		if (!proposal_allowed(r, len))
			return -ERR_LIMIT;
	} else if (r->lead == RAFT_NONE) {
		return -ERR_AGAIN;
	}
	if (len > 0 && (b = raft_blob_new(data, len)) == NULL)
		return -ERR_NOMEM;
	if (r->role == RAFT_LEADER) {
		int rc = append_entry(r, RAFT_ENTRY_NORMAL, b, index);

		if (rc == 0)
			bcast_append(r);
		return raft_done(r, rc);
	}
	/* Forward to the leader; the proposer learns the outcome when the
	 * entry is applied (or times out). */
	if ((m = msg_new(r, RAFT_MSG_PROP, r->lead)) == NULL ||
	    (m->entries = mem_calloc(1, sizeof(*m->entries))) == NULL) {
		if (m != NULL)
			msg_drop_last(r);
		raft_blob_unref(b);
		r->nomem = false;
		return -ERR_NOMEM;
	}
	m->n_entries = 1;
	m->entries[0].type = RAFT_ENTRY_NORMAL;
	m->entries[0].len = (uint32_t)len;
	m->entries[0].data = b != NULL ? b->data : NULL;
	m->entries[0].blob_ = b;
	return raft_done(r, 0);
}

int
raft_propose_conf_change(struct raft *r, enum raft_conf_op op, uint64_t node,
    const void *ctx, size_t ctx_len, uint64_t *index)
{
	struct raft_config c = r->conf;
	struct raft_blob *b;
	uint64_t at;
	int rc;

	if (index != NULL)
		*index = 0;
	if (node == RAFT_NONE || (op != RAFT_CONF_ADD && op != RAFT_CONF_REMOVE))
		return -ERR_INVAL;
	if (ctx_len > RAFT_CONF_CTX_BYTES_MAX || (ctx_len > 0 && ctx == NULL))
		return -ERR_INVAL;
	if (r->role != RAFT_LEADER)
		return -ERR_STATE;
	/* One change at a time, and never before this term committed an
	 * entry: otherwise this change and an uncommitted one of an earlier
	 * leader could both take effect with disjoint majorities. */
	if (r->lead_transferee != RAFT_NONE || r->pending_conf_index > r->commit ||
	    !committed_in_term(r))
		return -ERR_AGAIN;
	if (op == RAFT_CONF_ADD) {
		uint32_t i;

		if (raft_config_has(&c, node))
			return -ERR_EXIST;
		if (c.n >= RAFT_MEMBERS_MAX)
			return -ERR_LIMIT;
		for (i = c.n; i > 0 && c.ids[i - 1] > node; i--)
			c.ids[i] = c.ids[i - 1];
		c.ids[i] = node;
		c.n++;
	} else {
		uint32_t i, j;

		if (!raft_config_has(&c, node))
			return -ERR_NOTFOUND;
		if (c.n <= 1)
			return -ERR_LIMIT;
		for (i = 0, j = 0; i < c.n; i++)
			if (c.ids[i] != node)
				c.ids[j++] = c.ids[i];
		c.n = j;
	}
	r->nomem = false;
	if ((b = raft_conf_encode(op, node, &c, ctx, ctx_len)) == NULL)
		return -ERR_NOMEM;
	if ((rc = append_entry(r, RAFT_ENTRY_CONF, b, &at)) != 0)
		return raft_done(r, rc);
	r->pending_conf_index = at;
	/* In force from now on, committed or not. */
	raft_refresh_conf(r);
	if (index != NULL)
		*index = at;
	bcast_append(r);
	/* A leader that removed itself keeps leading until this commits: a
	 * configuration without it may commit at once (one remaining member). */
	if (raft_maybe_commit(r))
		raft_leader_committed(r);
	return raft_done(r, 0);
}

int
raft_read_index(struct raft *r, uint64_t ctx)
{
	struct raft_msg *m;
	int rc;

	r->nomem = false;
	if (r->role == RAFT_LEADER) {
		rc = read_request(r, ctx, r->id);
		return raft_done(r, rc);
	}
	if (r->lead == RAFT_NONE)
		return -ERR_AGAIN;
	if ((m = msg_new(r, RAFT_MSG_READ_INDEX, r->lead)) == NULL) {
		r->nomem = false;
		return -ERR_NOMEM;
	}
	m->ctx = ctx;
	return raft_done(r, 0);
}

int
raft_transfer_leader(struct raft *r, uint64_t to)
{
	struct raft_pr *pr;

	if (r->role != RAFT_LEADER)
		return -ERR_STATE;
	if (to == r->id || to == RAFT_NONE)
		return -ERR_INVAL;
	if ((pr = raft_pr_get(r, to)) == NULL)
		return -ERR_NOTFOUND;
	if (r->lead_transferee == to)
		return 0;
	r->nomem = false;
	r->lead_transferee = to;
	/* The transfer must finish within one election timeout. */
	r->election_elapsed = 0;
	if (pr->match == last_index(r))
		send_timeout_now(r, to);
	else
		send_append(r, to, true);
	return raft_done(r, 0);
}

void
raft_report_unreachable(struct raft *r, uint64_t id)
{
	struct raft_pr *pr;

	if (r->role != RAFT_LEADER || (pr = raft_pr_get(r, id)) == NULL)
		return;
	/* Appends in flight are probably lost: find the match point again. */
	if (pr->state == RAFT_PR_REPLICATE)
		pr_become_probe(pr);
}

void
raft_report_snapshot(struct raft *r, uint64_t id, bool ok)
{
	struct raft_pr *pr;

	if (r->role != RAFT_LEADER || (pr = raft_pr_get(r, id)) == NULL ||
	    pr->state != RAFT_PR_SNAPSHOT)
		return;
	if (!ok)
		pr->pending_snapshot = 0;
	/* Probe from after the snapshot (or the match point on failure), at
	 * the next heartbeat response. */
	pr_become_probe(pr);
	pr->probe_sent = true;
}
