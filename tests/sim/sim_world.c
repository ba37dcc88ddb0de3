/*
 * sim_world: the simulated cluster around store/raft: nodes, their disks
 * (durable records plus an unsynced tail a crash may tear), their state
 * machines, the network (real wire encoding; loss, delay, duplication,
 * partitions) and the clients. It drives each raft instance exactly as the
 * store server will: persist the ready's snapshot, hard state and entries,
 * fsync, only then send, then apply, then advance. It must never take
 * randomness from anywhere but w->rng, and never decide what is correct:
 * that is sim_check.c's job.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/raft.h"
#include "sim.h"

/* Entry payload of a client write: 'W', op id, key, filler length, filler. */
#define WRITE_HEADER_BYTES 11u
/* Snapshot payload: applied, hash, then per key value and index. */
#define SNAP_BYTES (16u + 16u * SIM_KEYS)

/* ------------------------------------------------------------------ */
/* Randomness and hashing                                              */
/* ------------------------------------------------------------------ */

uint64_t
sim_rand(struct sim_rng *g)
{
	uint64_t z = (g->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t
sim_below(struct sim_rng *g, uint64_t n)
{
	return n == 0 ? 0 : sim_rand(g) % n;
}

bool
sim_chance(struct sim_rng *g, unsigned permille)
{
	return sim_below(g, 1000) < permille;
}

uint64_t
sim_hash_u64(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

uint64_t
sim_hash_bytes(uint64_t h, const void *p, size_t n)
{
	const uint8_t *s = p;

	h ^= 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return sim_hash_u64(h, n);
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* ------------------------------------------------------------------ */
/* Trace and failure                                                   */
/* ------------------------------------------------------------------ */

void
sim_tracef(struct sim_world *w, const char *fmt, ...)
{
	va_list ap;

	if (!w->tracing)
		return;
	if (!w->script)
		buf_printf(&w->trace, "[t=%06llu #%llu] ", (unsigned long long)w->now,
		    (unsigned long long)w->step);
	va_start(ap, fmt);
	buf_vprintf(&w->trace, fmt, ap);
	va_end(ap);
	buf_putc(&w->trace, '\n');
	if (w->trace_fp != NULL) {
		fwrite(buf_head(&w->trace), 1, buf_avail(&w->trace), w->trace_fp);
		buf_reset(&w->trace);
	}
}

void
sim_failf(struct sim_world *w, const char *kind, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (w->failed)
		return;
	w->failed = true;
	n = snprintf(w->fail, sizeof(w->fail), "%s: ", kind);
	va_start(ap, fmt);
	vsnprintf(w->fail + n, sizeof(w->fail) - (size_t)n, fmt, ap);
	va_end(ap);
	sim_tracef(w, "VIOLATION %s", w->fail);
}

/* ------------------------------------------------------------------ */
/* Formatting                                                          */
/* ------------------------------------------------------------------ */

static void
fmt_conf(struct buf *b, const struct raft_config *c)
{
	buf_putc(b, '[');
	for (uint32_t i = 0; i < c->n; i++)
		buf_printf(b, "%s%llu", i ? " " : "", (unsigned long long)c->ids[i]);
	buf_putc(b, ']');
}

void
sim_fmt_entry(struct buf *b, const struct raft_entry *e)
{
	struct raft_conf_change cc;

	buf_printf(b, "%llu@%llu", (unsigned long long)e->index, (unsigned long long)e->term);
	if (e->type == RAFT_ENTRY_CONF) {
		static const char *const ops[] = { "bootstrap", "add", "remove" };

		if (raft_conf_decode(e->data, e->len, &cc) == 0) {
			buf_printf(b, " conf %s", ops[cc.op]);
			if (cc.node)
				buf_printf(b, " %llu", (unsigned long long)cc.node);
			buf_puts(b, " ");
			fmt_conf(b, &cc.conf);
		} else {
			buf_puts(b, " conf ?");
		}
	} else if (e->len == 0) {
		buf_puts(b, " noop");
	} else if (e->len >= WRITE_HEADER_BYTES && e->data[0] == 'W') {
		buf_printf(b, " put op=%llu key=%u", (unsigned long long)get64(e->data + 1),
		    e->data[9]);
	} else {
		buf_printf(b, " data(%u)", e->len);
	}
}

void
sim_fmt_msg(struct buf *b, const struct raft_msg *m)
{
	buf_printf(b, "%s", raft_msg_type_name(m->type));
	if (m->type != RAFT_MSG_PROP && m->type != RAFT_MSG_READ_INDEX)
		buf_printf(b, " term=%llu", (unsigned long long)m->term);
	switch (m->type) {
	case RAFT_MSG_APP:
		buf_printf(b, " index=%llu logterm=%llu commit=%llu entries=[",
		    (unsigned long long)m->index, (unsigned long long)m->log_term,
		    (unsigned long long)m->commit);
		for (size_t i = 0; i < m->n_entries; i++)
			buf_printf(b, "%s%llu@%llu", i ? " " : "",
			    (unsigned long long)m->entries[i].index,
			    (unsigned long long)m->entries[i].term);
		buf_putc(b, ']');
		break;
	case RAFT_MSG_APP_RESP:
		if (m->flags & RAFT_MSG_F_REJECT)
			buf_printf(b, " reject index=%llu hint=%llu hintterm=%llu",
			    (unsigned long long)m->index, (unsigned long long)m->reject_hint,
			    (unsigned long long)m->log_term);
		else
			buf_printf(b, " index=%llu", (unsigned long long)m->index);
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		buf_printf(b, " index=%llu logterm=%llu%s", (unsigned long long)m->index,
		    (unsigned long long)m->log_term,
		    (m->flags & RAFT_MSG_F_TRANSFER) ? " transfer" : "");
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		buf_puts(b, (m->flags & RAFT_MSG_F_REJECT) ? " reject" : " granted");
		break;
	case RAFT_MSG_SNAP:
		buf_printf(b, " snap=%llu@%llu conf=", (unsigned long long)m->snap.index,
		    (unsigned long long)m->snap.term);
		fmt_conf(b, &m->snap.conf);
		buf_printf(b, " bytes=%llu", (unsigned long long)m->snap_len);
		break;
	case RAFT_MSG_HEARTBEAT:
		buf_printf(b, " commit=%llu ctx=%llu", (unsigned long long)m->commit,
		    (unsigned long long)m->ctx);
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		buf_printf(b, " ctx=%llu", (unsigned long long)m->ctx);
		break;
	case RAFT_MSG_PROP:
		buf_printf(b, " entries=%zu", m->n_entries);
		break;
	case RAFT_MSG_READ_INDEX:
		buf_printf(b, " ctx=%llu", (unsigned long long)m->ctx);
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		buf_printf(b, " index=%llu ctx=%llu", (unsigned long long)m->index,
		    (unsigned long long)m->ctx);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* The simulated disk                                                  */
/* ------------------------------------------------------------------ */

static void
ent_free(struct sim_ent *e)
{
	mem_free(e->data);
	memset(e, 0, sizeof(*e));
}

static void
ent_from(struct sim_ent *d, const struct raft_entry *e)
{
	d->index = e->index;
	d->term = e->term;
	d->type = e->type;
	d->len = e->len;
	d->data = NULL;
	if (e->len > 0) {
		d->data = mem_alloc(e->len);
		memcpy(d->data, e->data, e->len);
	}
}

static uint8_t *
dup_bytes(const void *p, size_t n)
{
	uint8_t *d = mem_alloc(n ? n : 1);

	if (n > 0)
		memcpy(d, p, n);
	return d;
}

static void
rec_free(struct sim_rec *r)
{
	mem_free(r->snap_data);
	ent_free(&r->e);
	memset(r, 0, sizeof(*r));
}

static struct sim_rec *
disk_push(struct sim_disk *d)
{
	struct sim_rec *r;

	if (d->n_pend == d->cap_pend) {
		d->cap_pend = d->cap_pend ? d->cap_pend * 2 : 16;
		d->pend = mem_realloc(d->pend, d->cap_pend * sizeof(*d->pend));
	}
	r = &d->pend[d->n_pend++];
	memset(r, 0, sizeof(*r));
	return r;
}

static void
disk_drop_entries(struct sim_disk *d)
{
	for (size_t i = 0; i < d->n_ents; i++)
		ent_free(&d->ents[i]);
	d->n_ents = 0;
}

/* Makes one record durable; takes over what it owns. */
static void
disk_apply(struct sim_world *w, struct sim_node *nd, struct sim_rec *r)
{
	struct sim_disk *d = &nd->disk;

	switch (r->type) {
	case SIM_REC_SNAP:
		/* An installed snapshot replaces the whole log. */
		mem_free(d->snap_data);
		d->snap = r->snap;
		d->snap_data = r->snap_data;
		d->snap_len = r->snap_len;
		r->snap_data = NULL;
		disk_drop_entries(d);
		break;
	case SIM_REC_HS:
		d->hs = r->hs;
		sim_check_durable_hs(w, nd, &r->hs);
		break;
	case SIM_REC_ENT: {
		uint64_t first = d->snap.index + 1;

		if (r->e.index < first) {
			ent_free(&r->e);
			break;
		}
		while (d->n_ents > 0 && d->ents[d->n_ents - 1].index >= r->e.index)
			ent_free(&d->ents[--d->n_ents]);
		if (d->n_ents == d->cap_ents) {
			d->cap_ents = d->cap_ents ? d->cap_ents * 2 : 64;
			d->ents = mem_realloc(d->ents, d->cap_ents * sizeof(*d->ents));
		}
		d->ents[d->n_ents++] = r->e;
		memset(&r->e, 0, sizeof(r->e));
		break;
	}
	}
	rec_free(r);
}

static void
disk_sync(struct sim_world *w, struct sim_node *nd)
{
	struct sim_disk *d = &nd->disk;

	for (size_t i = 0; i < d->n_pend; i++)
		disk_apply(w, nd, &d->pend[i]);
	d->n_pend = 0;
}

/* A crash: the first `keep` unsynced records made it, the rest did not. */
static void
disk_crash(struct sim_world *w, struct sim_node *nd, size_t keep)
{
	struct sim_disk *d = &nd->disk;

	for (size_t i = 0; i < d->n_pend; i++) {
		if (i < keep)
			disk_apply(w, nd, &d->pend[i]);
		else
			rec_free(&d->pend[i]);
	}
	d->n_pend = 0;
}

static void
disk_free(struct sim_disk *d)
{
	for (size_t i = 0; i < d->n_pend; i++)
		rec_free(&d->pend[i]);
	d->n_pend = 0;
	disk_drop_entries(d);
	mem_free(d->ents);
	mem_free(d->pend);
	mem_free(d->snap_data);
	memset(d, 0, sizeof(*d));
}

/* ------------------------------------------------------------------ */
/* The written-log mirror (for the log matching check)                 */
/* ------------------------------------------------------------------ */

static void
wlog_reset(struct sim_wlog *l, uint64_t index, uint64_t term)
{
	l->snap_index = index;
	l->snap_term = term;
	l->n = 0;
}

static void
wlog_write(struct sim_wlog *l, uint64_t index, uint64_t term)
{
	size_t at;

	if (index <= l->snap_index)
		return;
	at = (size_t)(index - l->snap_index - 1);
	if (at > l->n)
		return;
	if (at >= l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		while (l->cap <= at)
			l->cap *= 2;
		l->terms = mem_realloc(l->terms, l->cap * sizeof(*l->terms));
	}
	l->terms[at] = term;
	l->n = at + 1;
}

/* Term at index in the written log; false if unknown. */
static bool
wlog_term(const struct sim_wlog *l, uint64_t index, uint64_t *term)
{
	if (index == l->snap_index) {
		*term = l->snap_term;
		return true;
	}
	if (index < l->snap_index || index > l->snap_index + l->n)
		return false;
	*term = l->terms[index - l->snap_index - 1];
	return true;
}

static void
wlog_compact(struct sim_wlog *l, uint64_t index)
{
	uint64_t t;
	size_t cut;

	if (index <= l->snap_index || !wlog_term(l, index, &t))
		return;
	cut = (size_t)(index - l->snap_index);
	memmove(l->terms, l->terms + cut, (l->n - cut) * sizeof(*l->terms));
	l->n -= cut;
	l->snap_index = index;
	l->snap_term = t;
}

static void
wlog_from_disk(struct sim_wlog *l, const struct sim_disk *d)
{
	wlog_reset(l, d->snap.index, d->snap.term);
	for (size_t i = 0; i < d->n_ents; i++)
		wlog_write(l, d->ents[i].index, d->ents[i].term);
}

/* ------------------------------------------------------------------ */
/* Nodes                                                               */
/* ------------------------------------------------------------------ */

struct sim_node *
sim_node_by_id(struct sim_world *w, uint64_t id)
{
	int slot;

	if (id == 0 || id >= w->id_cap)
		return NULL;
	slot = w->id_slot[id];
	if (slot < 0 || w->nodes[slot].id != id)
		return NULL;
	return &w->nodes[slot];
}

struct sim_node *
sim_leader(struct sim_world *w)
{
	struct sim_node *best = NULL;
	uint64_t best_term = 0;

	for (int i = 0; i < w->n; i++) {
		struct sim_node *nd = &w->nodes[i];
		struct raft_status st;

		if (nd->state != SLOT_UP)
			continue;
		raft_status(nd->r, &st);
		if (st.role == RAFT_LEADER && st.term >= best_term &&
		    raft_config_has(&st.conf, st.id)) {
			best = nd;
			best_term = st.term;
		}
	}
	return best;
}

static void
set_id_slot(struct sim_world *w, uint64_t id, int slot)
{
	if (id >= w->id_cap) {
		size_t cap = w->id_cap ? w->id_cap : 16;

		while (cap <= id)
			cap *= 2;
		w->id_slot = mem_realloc(w->id_slot, cap * sizeof(*w->id_slot));
		for (size_t i = w->id_cap; i < cap; i++)
			w->id_slot[i] = -1;
		w->id_cap = cap;
	}
	w->id_slot[id] = slot;
}

static void
node_opts(struct sim_world *w, struct sim_node *nd, struct raft_options *o)
{
	*o = w->base;
	o->id = nd->id;
	o->seed = sim_hash_u64(sim_hash_u64(w->seed, nd->id), nd->inc);
}

static void
node_seen_reset(struct sim_node *nd)
{
	struct raft_status st;

	raft_status(nd->r, &st);
	nd->commit_seen = st.commit;
	nd->role_seen = st.role;
	nd->term_seen = st.term;
	nd->lead_seen = st.lead;
}

static void
schedule_tick(struct sim_world *w, struct sim_node *nd)
{
	if (w->script)
		return;
	sim_schedule(w, w->now + 1 + sim_below(&w->rng, w->p.tick_every), EV_TICK, nd->slot,
	    nd->inc, NULL);
}

int
sim_node_start(struct sim_world *w, int slot, uint64_t id, bool bootstrap,
    const uint64_t *ids, int n_ids)
{
	struct sim_node *nd = &w->nodes[slot];
	struct raft_options o;
	int rc;

	disk_free(&nd->disk);
	memset(&nd->sm, 0, sizeof(nd->sm));
	wlog_reset(&nd->wlog, 0, 0);
	nd->slot = slot;
	nd->id = id;
	nd->inc++;
	nd->state = SLOT_UP;
	nd->n_wr = 0;
	nd->park_pending = false;
	nd->joining = false;
	nd->rd_out = false;
	nd->voted_term = 0;
	nd->voted_for = 0;
	nd->lead_last = 0;
	set_id_slot(w, id, slot);
	node_opts(w, nd, &o);
	if ((rc = raft_new(&o, NULL, &nd->r)) != 0) {
		sim_failf(w, "setup", "raft_new: %s", err_str(rc));
		return rc;
	}
	if (bootstrap && (rc = raft_bootstrap(nd->r, ids, (size_t)n_ids)) != 0) {
		sim_failf(w, "setup", "raft_bootstrap: %s", err_str(rc));
		return rc;
	}
	node_seen_reset(nd);
	schedule_tick(w, nd);
	sim_pump(w, nd);
	return 0;
}

static void
sm_from_snapshot(struct sim_world *w, struct sim_sm *sm, const uint8_t *p, size_t len,
    uint64_t index)
{
	if (len != SNAP_BYTES) {
		sim_failf(w, "snapshot", "snapshot data of %zu bytes", len);
		return;
	}
	sm->applied = get64(p);
	sm->hash = get64(p + 8);
	for (int k = 0; k < SIM_KEYS; k++) {
		sm->kv[k].value = get64(p + 16 + 16 * k);
		sm->kv[k].index = get64(p + 24 + 16 * k);
	}
	if (sm->applied != index)
		sim_failf(w, "snapshot", "snapshot data for index %llu carried as %llu",
		    (unsigned long long)sm->applied, (unsigned long long)index);
}

int
sim_node_restart(struct sim_world *w, struct sim_node *nd)
{
	struct raft_persisted p;
	struct raft_entry *ents = NULL;
	struct raft_options o;
	int rc;

	if (nd->state != SLOT_DOWN)
		return 0;
	memset(&p, 0, sizeof(p));
	p.hs = nd->disk.hs;
	p.snap = nd->disk.snap;
	p.snap_data = nd->disk.snap_data;
	p.snap_len = nd->disk.snap_len;
	if (nd->disk.n_ents > 0) {
		ents = mem_calloc(nd->disk.n_ents, sizeof(*ents));
		for (size_t i = 0; i < nd->disk.n_ents; i++) {
			ents[i].index = nd->disk.ents[i].index;
			ents[i].term = nd->disk.ents[i].term;
			ents[i].type = nd->disk.ents[i].type;
			ents[i].len = nd->disk.ents[i].len;
			ents[i].data = nd->disk.ents[i].data;
		}
	}
	p.entries = ents;
	p.n_entries = nd->disk.n_ents;
	nd->inc++;
	node_opts(w, nd, &o);
	rc = raft_new(&o, &p, &nd->r);
	mem_free(ents);
	if (rc != 0) {
		sim_failf(w, "restart", "n%llu: raft_new from its disk: %s",
		    (unsigned long long)nd->id, err_str(rc));
		return rc;
	}
	memset(&nd->sm, 0, sizeof(nd->sm));
	if (nd->disk.snap.index > 0) {
		sm_from_snapshot(w, &nd->sm, nd->disk.snap_data, nd->disk.snap_len,
		    nd->disk.snap.index);
		sim_check_snapshot(w, nd);
	}
	wlog_from_disk(&nd->wlog, &nd->disk);
	nd->state = SLOT_UP;
	nd->rd_out = false;
	nd->n_wr = 0;
	nd->lead_last = 0;
	node_seen_reset(nd);
	sim_tracef(w, "n%llu: restart term=%llu commit=%llu last=%llu snap=%llu",
	    (unsigned long long)nd->id, (unsigned long long)nd->term_seen,
	    (unsigned long long)nd->commit_seen,
	    (unsigned long long)(nd->disk.n_ents ? nd->disk.ents[nd->disk.n_ents - 1].index :
	    nd->disk.snap.index), (unsigned long long)nd->disk.snap.index);
	schedule_tick(w, nd);
	sim_pump(w, nd);
	return 0;
}

void
sim_node_crash(struct sim_world *w, struct sim_node *nd, bool torn)
{
	size_t keep = 0;

	if (nd->state != SLOT_UP)
		return;
	if (nd->rd_out)
		raft_ready_free(&nd->rd);
	nd->rd_out = false;
	raft_free(nd->r);
	nd->r = NULL;
	if (torn)
		keep = (size_t)sim_below(&w->rng, nd->disk.n_pend + 1);
	sim_tracef(w, "n%llu: crash (kept %zu of %zu unsynced writes)",
	    (unsigned long long)nd->id, keep, nd->disk.n_pend);
	disk_crash(w, nd, keep);
	nd->n_wr = 0;
	nd->state = SLOT_DOWN;
	w->n_crashes++;
}

void
sim_node_park(struct sim_world *w, struct sim_node *nd)
{
	if (nd->state == SLOT_PARKED)
		return;
	if (nd->state == SLOT_UP)
		sim_node_crash(w, nd, false);
	sim_tracef(w, "n%llu: removed from the cluster, wiped", (unsigned long long)nd->id);
	disk_free(&nd->disk);
	wlog_reset(&nd->wlog, 0, 0);
	set_id_slot(w, nd->id, -1);
	nd->state = SLOT_PARKED;
	nd->park_pending = false;
}

/* ------------------------------------------------------------------ */
/* Network                                                             */
/* ------------------------------------------------------------------ */

void
sim_netmsg_unref(struct sim_netmsg *m)
{
	if (m == NULL || --m->refs > 0)
		return;
	mem_free(m->bytes);
	mem_free(m);
}

static void
net_send(struct sim_world *w, struct sim_node *from, const struct raft_msg *m)
{
	struct buf b = BUF_INIT;
	struct sim_netmsg *nm;
	struct sim_node *to;
	int rc;

	if ((rc = raft_msg_encode(m, &b)) != 0) {
		sim_failf(w, "codec", "n%llu: cannot encode %s: %s", (unsigned long long)from->id,
		    raft_msg_type_name(m->type), err_str(rc));
		buf_free(&b);
		return;
	}
	if (w->tracing) {
		struct buf t = BUF_INIT;

		sim_fmt_msg(&t, m);
		sim_tracef(w, "n%llu -> n%llu %s", (unsigned long long)m->from,
		    (unsigned long long)m->to, buf_cstr(&t));
		buf_free(&t);
	}
	w->n_msgs_sent++;
	if (m->type == RAFT_MSG_SNAP)
		w->n_snapshots_sent++;
	to = sim_node_by_id(w, m->to);
	if (to == NULL || w->blocked[from->slot][to->slot]) {
		sim_tracef(w, "  dropped (%s)", to == NULL ? "no such node" : "partition");
		buf_free(&b);
		/* The transport notices a dead connection, now and then. */
		if (!w->script && sim_chance(&w->rng, 300)) {
			if (m->type == RAFT_MSG_SNAP)
				raft_report_snapshot(from->r, m->to, false);
			else
				raft_report_unreachable(from->r, m->to);
		}
		return;
	}
	nm = mem_calloc(1, sizeof(*nm));
	nm->from_slot = from->slot;
	nm->from = m->from;
	nm->to = m->to;
	nm->type = m->type;
	nm->len = buf_avail(&b);
	nm->bytes = dup_bytes(buf_head(&b), nm->len);
	nm->refs = 1;
	buf_free(&b);
	if (w->script) {
		if (w->n_fifo == w->cap_fifo) {
			w->cap_fifo = w->cap_fifo ? w->cap_fifo * 2 : 64;
			w->fifo = mem_realloc(w->fifo, w->cap_fifo * sizeof(*w->fifo));
		}
		w->fifo[w->n_fifo++] = nm;
		return;
	}
	if (sim_chance(&w->rng, w->p.loss_permille)) {
		sim_tracef(w, "  lost");
		if (m->type == RAFT_MSG_SNAP && sim_chance(&w->rng, 500))
			raft_report_snapshot(from->r, m->to, false);
		sim_netmsg_unref(nm);
		return;
	}
	for (int copy = 0; copy < 2; copy++) {
		uint64_t delay = w->p.delay_min +
		    sim_below(&w->rng, w->p.delay_max - w->p.delay_min + 1);

		if (sim_chance(&w->rng, w->p.spike_permille))
			delay += sim_below(&w->rng, 10u * w->p.delay_max + 1);
		if (copy == 1)
			nm->refs++;
		sim_schedule(w, w->now + delay, EV_DELIVER, -1, 0, nm);
		/* Forwarded proposals are not duplicated: a transport never
		 * does, and raft (like etcd) leaves deduplication of client
		 * requests to the application. */
		if (nm->type == RAFT_MSG_PROP || !sim_chance(&w->rng, w->p.dup_permille))
			break;
	}
}

void
sim_deliver(struct sim_world *w, struct sim_netmsg *nm)
{
	struct sim_node *nd = sim_node_by_id(w, nm->to);
	struct raft_msg m;
	int rc;

	if (nd == NULL || nd->state != SLOT_UP) {
		if (!w->script)
			sim_tracef(w, "deliver n%llu->n%llu %s: node down",
			    (unsigned long long)nm->from, (unsigned long long)nm->to,
			    raft_msg_type_name(nm->type));
		return;
	}
	if (w->blocked[nm->from_slot][nd->slot]) {
		sim_tracef(w, "deliver n%llu->n%llu %s: partitioned",
		    (unsigned long long)nm->from, (unsigned long long)nm->to,
		    raft_msg_type_name(nm->type));
		return;
	}
	if ((rc = raft_msg_decode(nm->bytes, nm->len, &m)) != 0) {
		sim_failf(w, "codec", "cannot decode a %s we encoded: %s",
		    raft_msg_type_name(nm->type), err_str(rc));
		return;
	}
	if (!w->script)
		sim_tracef(w, "deliver n%llu->n%llu %s", (unsigned long long)nm->from,
		    (unsigned long long)nm->to, raft_msg_type_name(nm->type));
	w->n_msgs_delivered++;
	rc = raft_step(nd->r, &m);
	raft_msg_clear(&m);
	/* A snapshot stream that arrived is reported to its sender, sometimes
	 * (otherwise the sender learns it from the follower's answer, or gives
	 * up after snapshot_timeout_ticks). */
	if (rc == 0 && nm->type == RAFT_MSG_SNAP && !w->script && sim_chance(&w->rng, 500)) {
		struct sim_node *sender = sim_node_by_id(w, nm->from);

		if (sender != NULL && sender->state == SLOT_UP) {
			raft_report_snapshot(sender->r, nm->to, true);
			sim_pump(w, sender);
		}
	}
	if (rc != 0) {
		sim_failf(w, "step", "n%llu refused a %s from n%llu: %s",
		    (unsigned long long)nd->id, raft_msg_type_name(nm->type),
		    (unsigned long long)nm->from, err_str(rc));
		return;
	}
	sim_pump(w, nd);
}

/* ------------------------------------------------------------------ */
/* State machine                                                       */
/* ------------------------------------------------------------------ */

static void
answer_reads(struct sim_world *w, struct sim_node *nd)
{
	size_t j = 0;

	for (size_t i = 0; i < nd->n_wr; i++) {
		struct sim_wait_read *q = &nd->wr[i];

		if (q->index > nd->sm.applied) {
			nd->wr[j++] = *q;
			continue;
		}
		{
			struct sim_op *op = &w->ops[q->op];

			sim_tracef(w, "n%llu: read op=%llu key=%d -> value=%llu (index %llu, read index %llu)",
			    (unsigned long long)nd->id, (unsigned long long)q->op, op->key,
			    (unsigned long long)nd->sm.kv[op->key].value,
			    (unsigned long long)nd->sm.kv[op->key].index,
			    (unsigned long long)q->index);
			op->index = q->index;
			sim_check_read(w, q->op, &nd->sm.kv[op->key]);
		}
	}
	nd->n_wr = j;
}

static void
apply_entry(struct sim_world *w, struct sim_node *nd, const struct raft_entry *e)
{
	uint64_t h = sim_entry_hash(e);

	if (e->index != nd->sm.applied + 1) {
		sim_failf(w, "apply", "n%llu applies %llu after %llu", (unsigned long long)nd->id,
		    (unsigned long long)e->index, (unsigned long long)nd->sm.applied);
		return;
	}
	nd->sm.hash = sim_hash_u64(sim_hash_u64(nd->sm.hash, e->index), h);
	nd->sm.applied = e->index;
	if (w->tracing) {
		struct buf t = BUF_INIT;

		sim_fmt_entry(&t, e);
		sim_tracef(w, "n%llu: apply %s", (unsigned long long)nd->id, buf_cstr(&t));
		buf_free(&t);
	}
	if (e->type == RAFT_ENTRY_NORMAL && e->len >= WRITE_HEADER_BYTES && e->data[0] == 'W') {
		uint64_t opid = get64(e->data + 1);
		int key = e->data[9] % SIM_KEYS;

		nd->sm.kv[key].value = opid;
		nd->sm.kv[key].index = e->index;
		if (opid < w->next_op) {
			struct sim_op *op = &w->ops[opid];

			if (op->kind == SIM_OP_WRITE && op->state == SIM_OP_PENDING &&
			    op->slot == nd->slot && op->inc == nd->inc) {
				op->state = SIM_OP_ACKED;
				op->index = e->index;
				sim_check_write_acked(w, opid);
			}
		}
	} else if (e->type == RAFT_ENTRY_CONF) {
		struct raft_conf_change cc;

		if (raft_conf_decode(e->data, e->len, &cc) == 0 && cc.op == RAFT_CONF_REMOVE) {
			struct sim_node *gone = sim_node_by_id(w, cc.node);

			if (gone != NULL && gone->state != SLOT_PARKED)
				gone->park_pending = true;
		}
	}
	sim_check_applied(w, nd, e->index, h);
}

static void
install_snapshot(struct sim_world *w, struct sim_node *nd, const struct raft_ready *rd)
{
	sim_tracef(w, "n%llu: install snapshot %llu@%llu", (unsigned long long)nd->id,
	    (unsigned long long)rd->snap.index, (unsigned long long)rd->snap.term);
	sm_from_snapshot(w, &nd->sm, rd->snap_data, (size_t)rd->snap_len, rd->snap.index);
	sim_check_snapshot(w, nd);
	/* Reads waiting for indexes the snapshot covers can be answered. */
}

int
sim_compact(struct sim_world *w, struct sim_node *nd)
{
	uint8_t data[SNAP_BYTES];
	struct raft_snapshot_meta meta;
	int rc;

	put64(data, nd->sm.applied);
	put64(data + 8, nd->sm.hash);
	for (int k = 0; k < SIM_KEYS; k++) {
		put64(data + 16 + 16 * k, nd->sm.kv[k].value);
		put64(data + 24 + 16 * k, nd->sm.kv[k].index);
	}
	rc = raft_compact(nd->r, nd->sm.applied, data, sizeof(data), &meta);
	if (rc != 0)
		return rc;
	/* The snapshot file is saved atomically; the log before it is released. */
	mem_free(nd->disk.snap_data);
	nd->disk.snap = meta;
	nd->disk.snap_data = dup_bytes(data, sizeof(data));
	nd->disk.snap_len = sizeof(data);
	{
		size_t cut = 0;

		while (cut < nd->disk.n_ents && nd->disk.ents[cut].index <= meta.index)
			ent_free(&nd->disk.ents[cut++]);
		memmove(nd->disk.ents, nd->disk.ents + cut,
		    (nd->disk.n_ents - cut) * sizeof(*nd->disk.ents));
		nd->disk.n_ents -= cut;
	}
	wlog_compact(&nd->wlog, meta.index);
	sim_tracef(w, "n%llu: snapshot at %llu@%llu", (unsigned long long)nd->id,
	    (unsigned long long)meta.index, (unsigned long long)meta.term);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Driving raft: ready -> disk -> fsync -> send -> apply -> advance    */
/* ------------------------------------------------------------------ */

static void
write_ready(struct sim_world *w, struct sim_node *nd)
{
	struct raft_ready *rd = &nd->rd;
	struct sim_rec *rec;

	if (rd->soft_changed) {
		sim_tracef(w, "n%llu: %s term=%llu lead=%llu", (unsigned long long)nd->id,
		    raft_role_name(rd->role), (unsigned long long)rd->term,
		    (unsigned long long)rd->lead);
		if (rd->role == RAFT_LEADER)
			w->n_elections++;
	}
	if (rd->has_snapshot) {
		rec = disk_push(&nd->disk);
		rec->type = SIM_REC_SNAP;
		rec->snap = rd->snap;
		rec->snap_data = dup_bytes(rd->snap_data, (size_t)rd->snap_len);
		rec->snap_len = (size_t)rd->snap_len;
		wlog_reset(&nd->wlog, rd->snap.index, rd->snap.term);
	}
	if (rd->hs_changed) {
		sim_tracef(w, "n%llu: persist term=%llu vote=%llu commit=%llu",
		    (unsigned long long)nd->id, (unsigned long long)rd->hs.term,
		    (unsigned long long)rd->hs.vote, (unsigned long long)rd->hs.commit);
		rec = disk_push(&nd->disk);
		rec->type = SIM_REC_HS;
		rec->hs = rd->hs;
	}
	for (size_t i = 0; i < rd->n_entries; i++) {
		const struct raft_entry *e = &rd->entries[i];
		uint64_t prev_term;

		if (!wlog_term(&nd->wlog, e->index - 1, &prev_term)) {
			sim_failf(w, "log", "n%llu writes entry %llu after a gap",
			    (unsigned long long)nd->id, (unsigned long long)e->index);
			return;
		}
		if (w->tracing) {
			struct buf t = BUF_INIT;

			sim_fmt_entry(&t, e);
			sim_tracef(w, "n%llu: persist %s", (unsigned long long)nd->id, buf_cstr(&t));
			buf_free(&t);
		}
		sim_check_written(w, nd, e, prev_term);
		rec = disk_push(&nd->disk);
		rec->type = SIM_REC_ENT;
		ent_from(&rec->e, e);
		wlog_write(&nd->wlog, e->index, e->term);
	}
}

void
sim_finish_ready(struct sim_world *w, struct sim_node *nd)
{
	struct raft_ready *rd = &nd->rd;
	int rc;

	if (nd->state != SLOT_UP || !nd->rd_out)
		return;
	disk_sync(w, nd);
	for (size_t i = 0; i < rd->n_msgs; i++)
		net_send(w, nd, &rd->msgs[i]);
	if (rd->has_snapshot)
		install_snapshot(w, nd, rd);
	for (size_t i = 0; i < rd->n_committed && !w->failed; i++)
		apply_entry(w, nd, &rd->committed[i]);
	for (size_t i = 0; i < rd->n_reads; i++) {
		uint64_t opid = rd->reads[i].ctx;
		struct sim_op *op;

		sim_tracef(w, "n%llu: read index op=%llu index=%llu", (unsigned long long)nd->id,
		    (unsigned long long)opid, (unsigned long long)rd->reads[i].index);
		if (opid == 0 || opid >= w->next_op)
			continue;
		op = &w->ops[opid];
		if (op->kind != SIM_OP_READ || op->state != SIM_OP_PENDING ||
		    op->slot != nd->slot || op->inc != nd->inc)
			continue;
		if (nd->n_wr == nd->cap_wr) {
			nd->cap_wr = nd->cap_wr ? nd->cap_wr * 2 : 16;
			nd->wr = mem_realloc(nd->wr, nd->cap_wr * sizeof(*nd->wr));
		}
		nd->wr[nd->n_wr].op = opid;
		nd->wr[nd->n_wr].index = rd->reads[i].index;
		nd->n_wr++;
	}
	answer_reads(w, nd);
	rc = raft_advance(nd->r, rd);
	nd->rd_out = false;
	if (rc != 0) {
		sim_failf(w, "advance", "n%llu: %s", (unsigned long long)nd->id, err_str(rc));
		return;
	}
	if (!w->script && w->p.compact_every > 0) {
		struct raft_status st;

		raft_status(nd->r, &st);
		if (nd->sm.applied >= st.snap_index + w->p.compact_every &&
		    nd->sm.applied <= st.stable_index)
			sim_compact(w, nd);
	}
}

void
sim_pump(struct sim_world *w, struct sim_node *nd)
{
	int rc;

	if (w->hold)
		return;
	while (!w->failed && nd->state == SLOT_UP && !nd->rd_out && raft_has_ready(nd->r)) {
		if ((rc = raft_ready(nd->r, &nd->rd)) != 0) {
			sim_failf(w, "ready", "n%llu: %s", (unsigned long long)nd->id, err_str(rc));
			return;
		}
		nd->rd_out = true;
		write_ready(w, nd);
		if (w->script || !nd->rd.must_sync) {
			sim_finish_ready(w, nd);
			continue;
		}
		/* The fsync takes a while; raft keeps running meanwhile. */
		sim_schedule(w, w->now + sim_below(&w->rng, w->p.disk_max + 1), EV_SYNC, nd->slot,
		    nd->inc, NULL);
		return;
	}
}

void
sim_tick(struct sim_world *w, struct sim_node *nd)
{
	int rc;

	if (nd->state != SLOT_UP)
		return;
	if ((rc = raft_tick(nd->r)) != 0) {
		sim_failf(w, "tick", "n%llu: %s", (unsigned long long)nd->id, err_str(rc));
		return;
	}
	sim_pump(w, nd);
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */
/* ------------------------------------------------------------------ */

static uint64_t
new_op(struct sim_world *w, int kind, struct sim_node *nd, int key)
{
	uint64_t id = w->next_op++;
	struct sim_op *op;

	if (id >= w->cap_ops) {
		size_t cap = w->cap_ops ? w->cap_ops * 2 : 256;

		w->ops = mem_realloc(w->ops, cap * sizeof(*w->ops));
		memset(w->ops + w->cap_ops, 0, (cap - w->cap_ops) * sizeof(*w->ops));
		w->cap_ops = cap;
	}
	op = &w->ops[id];
	op->kind = kind;
	op->state = SIM_OP_PENDING;
	op->slot = nd->slot;
	op->inc = nd->inc;
	op->key = key;
	op->invoke_step = w->step;
	op->floor_global = w->chk.acked_max;
	op->floor_key = w->chk.acked_key[key];
	return id;
}

uint64_t
sim_client_write(struct sim_world *w, struct sim_node *nd, int key)
{
	uint8_t data[WRITE_HEADER_BYTES + 64];
	uint64_t id, index = 0;
	size_t fill;
	int rc;

	if (nd->state != SLOT_UP)
		return 0;
	id = new_op(w, SIM_OP_WRITE, nd, key);
	/* A filler of varying size makes append batching split differently. */
	fill = (size_t)(sim_hash_u64(w->seed, id) % 64);
	data[0] = 'W';
	put64(data + 1, id);
	data[9] = (uint8_t)key;
	data[10] = (uint8_t)fill;
	memset(data + WRITE_HEADER_BYTES, (int)(id & 0xff), fill);
	rc = raft_propose(nd->r, data, WRITE_HEADER_BYTES + fill, &index);
	if (rc != 0) {
		w->ops[id].state = SIM_OP_FAILED;
		sim_tracef(w, "n%llu: put op=%llu key=%d refused: %s", (unsigned long long)nd->id,
		    (unsigned long long)id, key, err_str(rc));
	} else {
		sim_tracef(w, "n%llu: put op=%llu key=%d%s", (unsigned long long)nd->id,
		    (unsigned long long)id, key, index ? "" : " (forwarded)");
	}
	sim_pump(w, nd);
	return id;
}

uint64_t
sim_client_read(struct sim_world *w, struct sim_node *nd, int key)
{
	uint64_t id;
	int rc;

	if (nd->state != SLOT_UP)
		return 0;
	id = new_op(w, SIM_OP_READ, nd, key);
	rc = raft_read_index(nd->r, id);
	if (rc != 0) {
		w->ops[id].state = SIM_OP_FAILED;
		sim_tracef(w, "n%llu: get op=%llu key=%d refused: %s", (unsigned long long)nd->id,
		    (unsigned long long)id, key, err_str(rc));
	} else {
		sim_tracef(w, "n%llu: get op=%llu key=%d", (unsigned long long)nd->id,
		    (unsigned long long)id, key);
	}
	sim_pump(w, nd);
	return id;
}

/* ------------------------------------------------------------------ */
/* World                                                               */
/* ------------------------------------------------------------------ */

void
sim_schedule(struct sim_world *w, uint64_t at, int type, int slot, uint64_t inc,
    struct sim_netmsg *msg)
{
	struct sim_event ev = { at, w->ev_seq++, type, slot, inc, msg };
	size_t i;

	if (w->n_heap == w->cap_heap) {
		w->cap_heap = w->cap_heap ? w->cap_heap * 2 : 256;
		w->heap = mem_realloc(w->heap, w->cap_heap * sizeof(*w->heap));
	}
	i = w->n_heap++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		struct sim_event *p = &w->heap[parent];

		if (p->time < ev.time || (p->time == ev.time && p->seq < ev.seq))
			break;
		w->heap[i] = *p;
		i = parent;
	}
	w->heap[i] = ev;
}

void
sim_after_step(struct sim_world *w)
{
	for (int i = 0; i < w->n; i++)
		if (w->nodes[i].park_pending)
			sim_node_park(w, &w->nodes[i]);
	if (!w->failed)
		sim_check_step(w);
}

void
sim_world_init(struct sim_world *w, uint64_t seed, int n, bool script)
{
	memset(w, 0, sizeof(*w));
	w->seed = seed;
	w->n = n;
	w->script = script;
	w->rng.s = sim_hash_u64(0x5eed, seed);
	w->next_id = 1;
	w->next_op = 1;
	buf_init(&w->trace);
	sim_check_init(&w->chk);
	raft_options_init(&w->base, 1);
	for (int i = 0; i < SIM_NODES_MAX; i++) {
		w->nodes[i].slot = i;
		w->nodes[i].state = SLOT_PARKED;
	}
}

void
sim_world_free(struct sim_world *w)
{
	for (int i = 0; i < SIM_NODES_MAX; i++) {
		struct sim_node *nd = &w->nodes[i];

		if (nd->rd_out)
			raft_ready_free(&nd->rd);
		raft_free(nd->r);
		disk_free(&nd->disk);
		mem_free(nd->wlog.terms);
		mem_free(nd->wr);
	}
	for (size_t i = 0; i < w->n_heap; i++)
		sim_netmsg_unref(w->heap[i].msg);
	mem_free(w->heap);
	for (size_t i = 0; i < w->n_fifo; i++)
		sim_netmsg_unref(w->fifo[i]);
	mem_free(w->fifo);
	mem_free(w->ops);
	mem_free(w->id_slot);
	buf_free(&w->trace);
	sim_check_free(&w->chk);
	memset(w, 0, sizeof(*w));
}
