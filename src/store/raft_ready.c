/*
 * raft_ready: where raft meets the caller's storage: handing out what to
 * persist, send and apply (raft_ready), taking it back (raft_advance),
 * compaction after a snapshot, status queries, and construction from
 * persisted state or bootstrap. Like the rest of raft it must never do
 * I/O: it only describes what the caller must write, in which order.
 */
#include <stdint.h>
#include <string.h>

#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/raft.h"
#include "raft_int.h"

static uint64_t
last_index(const struct raft *r)
{
	return raft_log_last_index(r);
}

/* ------------------------------------------------------------------ */
/* Ready / advance                                                     */
/* ------------------------------------------------------------------ */

static uint64_t
apply_from(const struct raft *r)
{
	uint64_t lo = r->applied;

	if (r->snap_unstable && r->snap.index > lo)
		lo = r->snap.index;
	if (lo < r->prev_index)
		lo = r->prev_index;
	return lo;
}

static uint64_t
apply_to(const struct raft *r)
{
	return r->commit < last_index(r) ? r->commit : last_index(r);
}

bool
raft_has_ready(const struct raft *r)
{
	if (r->ready_out)
		return false;
	if (r->lead != r->prev_lead || r->role != r->prev_role)
		return true;
	if (r->term != r->prev_hs.term || r->vote != r->prev_hs.vote || r->commit != r->prev_hs.commit)
		return true;
	if (r->snap_unstable || r->stable < last_index(r) || r->n_msgs > 0 || r->n_reads > 0)
		return true;
	if (apply_to(r) > apply_from(r))
		return true;
	return raft_reads_flush_pending(r);
}

static void
free_entries(struct raft_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		raft_blob_unref(e[i].blob_);
	mem_free(e);
}

void
raft_ready_free(struct raft_ready *rd)
{
	free_entries(rd->entries, rd->n_entries);
	free_entries(rd->committed, rd->n_committed);
	for (size_t i = 0; i < rd->n_msgs; i++)
		raft_msg_clear(&rd->msgs[i]);
	mem_free(rd->msgs);
	mem_free(rd->reads);
	raft_blob_unref(rd->snap_blob_);
	memset(rd, 0, sizeof(*rd));
}

int
raft_ready(struct raft *r, struct raft_ready *rd)
{
	uint64_t lo, hi, last = last_index(r), n_commit = 0, bytes = 0;
	size_t n_ents;

	memset(rd, 0, sizeof(*rd));
	if (r->ready_out)
		return -ERR_STATE;
	r->nomem = false;
	raft_reads_flush(r);

	/* Arrays first, so that running out of memory hands out nothing. */
	n_ents = (size_t)(last - (r->stable < r->prev_index ? r->prev_index : r->stable));
	lo = apply_from(r);
	hi = apply_to(r);
	for (uint64_t i = lo + 1; i <= hi; i++) {
		const struct raft_entry *e = raft_log_entry(r, i);

		if (n_commit > 0 && bytes + e->len > r->o.max_committed_bytes)
			break;
		bytes += e->len;
		n_commit++;
	}
	if (n_ents > 0 && (rd->entries = mem_calloc(n_ents, sizeof(*rd->entries))) == NULL)
		goto nomem;
	if (n_commit > 0 &&
	    (rd->committed = mem_calloc((size_t)n_commit, sizeof(*rd->committed))) == NULL)
		goto nomem;

	rd->lead = r->lead;
	rd->role = r->role;
	rd->term = r->term;
	rd->soft_changed = r->lead != r->prev_lead || r->role != r->prev_role;
	rd->hs.term = r->term;
	rd->hs.vote = r->vote;
	rd->hs.commit = r->commit;
	/* The hard state is written before the entries: if a crash keeps it
	 * and loses them, a commit index covering them would point at whatever
	 * older (possibly superseded) entries the disk still holds. So it never
	 * covers this ready's entries; the next ready carries the rest. */
	if (n_ents > 0 && rd->hs.commit > last - n_ents)
		rd->hs.commit = last - n_ents;
	rd->hs_changed = r->term != r->prev_hs.term || r->vote != r->prev_hs.vote ||
	    rd->hs.commit != r->prev_hs.commit;
	if (r->snap_unstable) {
		rd->has_snapshot = true;
		rd->snap = r->snap;
		rd->snap_blob_ = raft_blob_ref(r->snap_blob);
		rd->snap_data = r->snap_blob->len > 0 ? r->snap_blob->data : NULL;
		rd->snap_len = r->snap_blob->len;
		rd->snap_index_ = r->snap.index;
	}
	for (size_t i = 0; i < n_ents; i++)
		raft_entry_copy(&rd->entries[i], raft_log_entry(r, last - n_ents + 1 + i));
	rd->n_entries = n_ents;
	if (n_ents > 0) {
		rd->last_index_ = last;
		rd->last_term_ = raft_log_last_term(r);
	}
	for (uint64_t i = 0; i < n_commit; i++)
		raft_entry_copy(&rd->committed[i], raft_log_entry(r, lo + 1 + i));
	rd->n_committed = (size_t)n_commit;
	rd->msgs = r->msgs;
	rd->n_msgs = r->n_msgs;
	r->msgs = NULL;
	r->n_msgs = r->cap_msgs = 0;
	rd->reads = r->reads;
	rd->n_reads = r->n_reads;
	r->reads = NULL;
	r->n_reads = r->cap_reads = 0;
	rd->must_sync = rd->has_snapshot || n_ents > 0 || r->term != r->prev_hs.term ||
	    r->vote != r->prev_hs.vote;

	r->prev_lead = r->lead;
	r->prev_role = r->role;
	r->prev_hs = rd->hs;
	r->ready_out = true;
	return 0;
nomem:
	raft_ready_free(rd);
	r->nomem = false;
	return -ERR_NOMEM;
}

int
raft_advance(struct raft *r, struct raft_ready *rd)
{
	uint64_t t;
	struct raft_pr *self;

	if (!r->ready_out)
		return -ERR_STATE;
	r->nomem = false;
	if (rd->has_snapshot && r->snap_unstable && r->snap.index == rd->snap_index_) {
		r->snap_unstable = false;
		if (r->applied < r->snap.index)
			r->applied = r->snap.index;
	}
	/* Entries replaced since the ready was built stay unstable. */
	if (rd->n_entries > 0 && rd->last_index_ > r->stable &&
	    raft_log_term(r, rd->last_index_, &t) == 0 && t == rd->last_term_)
		r->stable = rd->last_index_;
	if (rd->n_committed > 0 && rd->committed[rd->n_committed - 1].index > r->applied)
		r->applied = rd->committed[rd->n_committed - 1].index;
	raft_ready_free(rd);
	r->ready_out = false;
	if (r->role == RAFT_LEADER && (self = raft_pr_get(r, r->id)) != NULL && self->match < r->stable) {
		self->match = r->stable;
		self->next = last_index(r) + 1;
		if (raft_maybe_commit(r))
			raft_leader_committed(r);
	}
	return raft_done(r, 0);
}

/* ------------------------------------------------------------------ */
/* Compaction, status                                                  */
/* ------------------------------------------------------------------ */

int
raft_compact(struct raft *r, uint64_t index, const void *data, size_t len,
    struct raft_snapshot_meta *meta_out)
{
	struct raft_snapshot_meta meta;
	struct raft_blob *b;
	uint64_t cut;
	int rc;

	if (index <= r->snap.index || index > r->applied || index > r->stable)
		return -ERR_RANGE;
	if (len > RAFT_SNAPSHOT_BYTES_MAX || (len > 0 && data == NULL))
		return -ERR_INVAL;
	meta.index = index;
	if (raft_log_term(r, index, &meta.term) != 0)
		return -ERR_RANGE;
	if ((rc = raft_log_conf_at(r, index, &meta.conf, NULL)) != 0)
		return rc;
	if ((b = raft_blob_new(data, len)) == NULL)
		return -ERR_NOMEM;
	raft_blob_unref(r->snap_blob);
	r->snap_blob = b;
	r->snap = meta;
	if (meta_out != NULL)
		*meta_out = meta;
	if (index > r->o.snapshot_catchup_entries) {
		cut = index - r->o.snapshot_catchup_entries;
		if (cut > r->prev_index)
			raft_log_drop_through(r, cut);
	}
	return 0;
}

void
raft_status(const struct raft *r, struct raft_status *st)
{
	memset(st, 0, sizeof(*st));
	st->id = r->id;
	st->role = r->role;
	st->lead = r->lead;
	st->term = r->term;
	st->vote = r->vote;
	st->commit = r->commit;
	st->applied = r->applied;
	st->first_index = r->prev_index + 1;
	st->last_index = last_index(r);
	st->last_term = raft_log_last_term(r);
	st->stable_index = r->stable;
	st->snap_index = r->snap.index;
	st->snap_term = r->snap.term;
	st->lead_transferee = r->lead_transferee;
	st->conf = r->conf;
	st->conf_index = r->conf_index;
}

int
raft_term_at(const struct raft *r, uint64_t index, uint64_t *term)
{
	return raft_log_term(r, index, term);
}

int
raft_progress(const struct raft *r, uint64_t id, struct raft_progress_info *out)
{
	const struct raft_pr *pr = NULL;

	memset(out, 0, sizeof(*out));
	if (r->role != RAFT_LEADER)
		return -ERR_STATE;
	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++)
		if (r->prs[i].id == id && id != RAFT_NONE)
			pr = &r->prs[i];
	if (pr == NULL)
		return -ERR_NOTFOUND;
	out->id = pr->id;
	out->match = pr->match;
	out->next = pr->next;
	out->state = pr->state;
	out->inflight = pr->in_count;
	out->paused = raft_pr_is_paused(r, pr);
	out->recent_active = pr->recent_active;
	out->pending_snapshot = pr->pending_snapshot;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */
/* ------------------------------------------------------------------ */

void
raft_options_init(struct raft_options *o, uint64_t id)
{
	memset(o, 0, sizeof(*o));
	o->id = id;
	o->election_ticks = 10;
	o->heartbeat_ticks = 1;
	o->max_inflight_msgs = 256;
	o->max_msg_bytes = 1u << 20;
	o->max_committed_bytes = 64u << 20;
	o->max_uncommitted_bytes = 64u << 20;
	o->snapshot_catchup_entries = 5000;
	o->snapshot_timeout_ticks = 0;
	o->seed = id;
	o->pre_vote = true;
	o->check_quorum = true;
}

static int
check_options(struct raft_options *o)
{
	if (o->id == RAFT_NONE || o->election_ticks == 0 || o->heartbeat_ticks == 0 ||
	    o->heartbeat_ticks >= o->election_ticks || o->election_ticks > (1u << 20))
		return -ERR_INVAL;
	if (o->max_inflight_msgs == 0 || o->max_inflight_msgs > RAFT_INFLIGHT_MAX)
		return -ERR_INVAL;
	if (o->max_msg_bytes == 0 || o->max_committed_bytes == 0)
		return -ERR_INVAL;
	if (o->snapshot_timeout_ticks == 0)
		o->snapshot_timeout_ticks = 4 * o->election_ticks;
	return 0;
}

static int
load(struct raft *r, const struct raft_persisted *p)
{
	const struct raft_snapshot_meta *s = &p->snap;
	uint64_t expect, prev_term, last_term;
	int rc;

	if (p->hs.term > RAFT_NUMBER_MAX || s->index > RAFT_NUMBER_MAX || s->term > RAFT_NUMBER_MAX)
		return -ERR_INVAL;
	if (s->index > 0) {
		if (s->term == 0 || !raft_config_valid(&s->conf))
			return -ERR_INVAL;
		if (p->snap_len > RAFT_SNAPSHOT_BYTES_MAX || (p->snap_len > 0 && p->snap_data == NULL))
			return -ERR_INVAL;
		if ((r->snap_blob = raft_blob_new(p->snap_data, p->snap_len)) == NULL)
			return -ERR_NOMEM;
		r->snap = *s;
		r->base_conf = s->conf;
	} else if (s->term != 0 || s->conf.n != 0) {
		return -ERR_INVAL;
	}
	r->prev_index = s->index;
	r->prev_term = s->term;
	expect = s->index + 1;
	prev_term = s->term;
	if (p->n_entries > 0 && p->entries == NULL)
		return -ERR_INVAL;
	for (size_t i = 0; i < p->n_entries; i++) {
		const struct raft_entry *e = &p->entries[i];
		struct raft_conf_change cc;

		if (e->index <= s->index)
			continue;
		if (e->index != expect || e->term == 0 || e->term < prev_term ||
		    e->term > RAFT_NUMBER_MAX || e->index > RAFT_NUMBER_MAX)
			return -ERR_INVAL;
		if (e->len > RAFT_ENTRY_BYTES_MAX || (e->len > 0 && e->data == NULL))
			return -ERR_INVAL;
		if (e->type == RAFT_ENTRY_CONF) {
			if (raft_conf_decode(e->data, e->len, &cc) != 0)
				return -ERR_INVAL;
		} else if (e->type != RAFT_ENTRY_NORMAL) {
			return -ERR_INVAL;
		}
		if ((rc = raft_log_push(r, e)) != 0)
			return rc;
		expect++;
		prev_term = e->term;
	}
	r->stable = raft_log_last_index(r);
	last_term = raft_log_last_term(r);
	r->term = p->hs.term;
	r->vote = p->hs.vote;
	if (r->term < last_term) {
		r->term = last_term;
		r->vote = RAFT_NONE;
	}
	/* A durable commit index beyond the durable log means entries that
	 * were committed are gone: refuse, as etcd does, rather than guess. */
	if (p->hs.commit > raft_log_last_index(r))
		return -ERR_CORRUPT;
	r->commit = p->hs.commit;
	if (r->commit < s->index)
		r->commit = s->index;
	r->applied = s->index;
	r->prev_hs = p->hs;
	return 0;
}

int
raft_new(const struct raft_options *o, const struct raft_persisted *p, struct raft **out)
{
	struct raft *r;
	int rc;

	*out = NULL;
	r = mem_calloc(1, sizeof(*r));
	if (r == NULL)
		return -ERR_NOMEM;
	r->o = *o;
	if ((rc = check_options(&r->o)) != 0) {
		mem_free(r);
		return rc;
	}
	r->id = o->id;
	r->rng = o->seed ^ 0x6a09e667f3bcc909ull;
	r->inflight_mem = mem_calloc((size_t)RAFT_MEMBERS_MAX * r->o.max_inflight_msgs,
	    sizeof(uint64_t));
	if (r->inflight_mem == NULL) {
		mem_free(r);
		return -ERR_NOMEM;
	}
	for (unsigned i = 0; i < RAFT_MEMBERS_MAX; i++)
		r->prs[i].in_buf = r->inflight_mem + (size_t)i * r->o.max_inflight_msgs;
	if (p != NULL && (rc = load(r, p)) != 0) {
		raft_free(r);
		return rc;
	}
	raft_log_refresh_conf(r);
	raft_sync_progress(r);
	raft_become_follower(r, r->term, RAFT_NONE);
	r->prev_lead = RAFT_NONE;
	r->prev_role = RAFT_FOLLOWER;
	*out = r;
	return 0;
}

int
raft_bootstrap(struct raft *r, const uint64_t *ids, size_t n)
{
	struct raft_config c = { 0 };
	struct raft_entry e = { 0 };
	struct raft_blob *b;
	int rc;

	if (r->term != 0 || last_index(r) != 0 || r->snap.index != 0)
		return -ERR_STATE;
	if (ids == NULL || n == 0 || n > RAFT_MEMBERS_MAX)
		return -ERR_INVAL;
	for (size_t i = 0; i < n; i++) {
		uint32_t k = c.n;

		if (raft_config_has(&c, ids[i]))
			return -ERR_INVAL;
		for (; k > 0 && c.ids[k - 1] > ids[i]; k--)
			c.ids[k] = c.ids[k - 1];
		c.ids[k] = ids[i];
		c.n++;
	}
	if (!raft_config_valid(&c))
		return -ERR_INVAL;
	if ((b = raft_conf_encode(RAFT_CONF_BOOTSTRAP, RAFT_NONE, &c, NULL, 0)) == NULL)
		return -ERR_NOMEM;
	e.term = 1;
	e.index = 1;
	e.type = RAFT_ENTRY_CONF;
	e.len = (uint32_t)b->len;
	e.data = b->data;
	e.blob_ = b;
	rc = raft_log_push(r, &e);
	raft_blob_unref(b);
	if (rc != 0)
		return rc;
	raft_become_follower(r, 1, RAFT_NONE);
	r->commit = 1;
	raft_refresh_conf(r);
	return 0;
}

void
raft_free(struct raft *r)
{
	if (r == NULL)
		return;
	raft_log_reset(r, 0, 0);
	mem_free(r->ents);
	raft_blob_unref(r->snap_blob);
	for (size_t i = 0; i < r->n_msgs; i++)
		raft_msg_clear(&r->msgs[i]);
	mem_free(r->msgs);
	mem_free(r->reads);
	mem_free(r->rq);
	mem_free(r->inflight_mem);
	mem_free(r);
}
