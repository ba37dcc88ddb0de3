/*
 * Unit tests for store/raft: the wire codec (round trips, every truncation,
 * hostile shapes), and focused protocol behaviours driven message by
 * message: vote rules, pre-vote not bumping terms, the check-quorum lease
 * and step-down, rejection-hint backtracking, the in-flight window,
 * configuration changes one at a time (and their rollback on truncation),
 * batched ReadIndex, leader transfer, the ready/advance contract, restore
 * from persisted state, compaction with snapshot catch-up, and allocation
 * failure at every point of a small scenario.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/raft.h"

/* ------------------------------------------------------------------ */
/* A tiny in-memory cluster                                            */
/* ------------------------------------------------------------------ */

#define NET_MAX 6
#define QUEUE_MAX 4096

struct net {
	struct raft *r[NET_MAX + 1];  /* by id */
	int n;
	struct raft_msg q[QUEUE_MAX]; /* FIFO of messages in flight */
	size_t nq;
	bool cut[NET_MAX + 1][NET_MAX + 1];
	struct raft_read_state reads[64];
	size_t n_reads;
	uint64_t applied[NET_MAX + 1];
};

static void
opts_for(struct raft_options *o, uint64_t id)
{
	raft_options_init(o, id);
	o->seed = id * 7919;
}

/* Takes every ready of node id: persist (nothing to do), queue, apply, advance. */
static void
drain(struct net *nw, uint64_t id)
{
	struct raft *r = nw->r[id];
	struct raft_ready rd;

	while (r != NULL && raft_has_ready(r)) {
		assert_int_equal(raft_ready(r, &rd), 0);
		for (size_t i = 0; i < rd.n_msgs; i++) {
			if (nw->cut[rd.msgs[i].from][rd.msgs[i].to] || nw->nq == QUEUE_MAX) {
				raft_msg_clear(&rd.msgs[i]);
				continue;
			}
			nw->q[nw->nq++] = rd.msgs[i];
		}
		rd.n_msgs = 0; /* moved */
		for (size_t i = 0; i < rd.n_reads && nw->n_reads < 64; i++)
			nw->reads[nw->n_reads++] = rd.reads[i];
		if (rd.n_committed > 0)
			nw->applied[id] = rd.committed[rd.n_committed - 1].index;
		assert_int_equal(raft_advance(r, &rd), 0);
	}
}

static void
drain_all(struct net *nw)
{
	for (int i = 1; i <= nw->n; i++)
		drain(nw, (uint64_t)i);
}

/* Delivers the first queued message through the wire codec. */
static void
deliver_one(struct net *nw)
{
	struct raft_msg m = nw->q[0], d;
	struct buf b = BUF_INIT;

	memmove(nw->q, nw->q + 1, (nw->nq - 1) * sizeof(nw->q[0]));
	nw->nq--;
	if (nw->r[m.to] != NULL) {
		assert_int_equal(raft_msg_encode(&m, &b), 0);
		assert_int_equal(raft_msg_decode(b.data, b.len, &d), 0);
		assert_int_equal(raft_step(nw->r[m.to], &d), 0);
		raft_msg_clear(&d);
		drain(nw, m.to);
	}
	buf_free(&b);
	raft_msg_clear(&m);
}

static void
stabilize(struct net *nw)
{
	drain_all(nw);
	for (int guard = 0; nw->nq > 0; guard++) {
		assert_true(guard < 100000);
		deliver_one(nw);
	}
}

static void
drop_queue(struct net *nw)
{
	for (size_t i = 0; i < nw->nq; i++)
		raft_msg_clear(&nw->q[i]);
	nw->nq = 0;
}

static struct net *
net_new(int n, void (*tweak)(struct raft_options *))
{
	struct net *nw = mem_calloc(1, sizeof(*nw));
	uint64_t ids[NET_MAX];

	assert_non_null(nw);
	nw->n = n;
	for (int i = 0; i < n; i++)
		ids[i] = (uint64_t)i + 1;
	for (int i = 1; i <= n; i++) {
		struct raft_options o;

		opts_for(&o, (uint64_t)i);
		if (tweak != NULL)
			tweak(&o);
		assert_int_equal(raft_new(&o, NULL, &nw->r[i]), 0);
		assert_int_equal(raft_bootstrap(nw->r[i], ids, (size_t)n), 0);
	}
	drain_all(nw);
	return nw;
}

static void
net_free(struct net *nw)
{
	drop_queue(nw);
	for (int i = 1; i <= NET_MAX; i++)
		raft_free(nw->r[i]);
	mem_free(nw);
}

static struct raft_status
st(struct net *nw, uint64_t id)
{
	struct raft_status s;

	raft_status(nw->r[id], &s);
	return s;
}

static void
elect(struct net *nw, uint64_t id)
{
	assert_int_equal(raft_campaign(nw->r[id]), 0);
	stabilize(nw);
	assert_int_equal(st(nw, id).role, RAFT_LEADER);
}

static size_t
count_queued(struct net *nw, uint32_t type, uint64_t from, uint64_t to)
{
	size_t n = 0;

	for (size_t i = 0; i < nw->nq; i++)
		if (nw->q[i].type == type && (from == 0 || nw->q[i].from == from) &&
		    (to == 0 || nw->q[i].to == to))
			n++;
	return n;
}

/* A hand-made message from `from` to `to`. */
static struct raft_msg
mk(uint32_t type, uint64_t from, uint64_t to, uint64_t term)
{
	struct raft_msg m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.from = from;
	m.to = to;
	m.term = term;
	return m;
}

/* Messages r wants to send, taken from its ready (caller frees with rd). */
static void
take(struct raft *r, struct raft_ready *rd)
{
	if (raft_has_ready(r))
		assert_int_equal(raft_ready(r, rd), 0);
	else
		memset(rd, 0, sizeof(*rd));
}

static const struct raft_msg *
find_msg(const struct raft_ready *rd, uint32_t type, uint64_t to)
{
	for (size_t i = 0; i < rd->n_msgs; i++)
		if (rd->msgs[i].type == type && rd->msgs[i].to == to)
			return &rd->msgs[i];
	return NULL;
}

static void
done_ready(struct raft *r, struct raft_ready *rd)
{
	if (rd->msgs != NULL || rd->entries != NULL || rd->committed != NULL ||
	    rd->reads != NULL || rd->hs_changed || rd->soft_changed || rd->has_snapshot)
		assert_int_equal(raft_advance(r, rd), 0);
}

/* ------------------------------------------------------------------ */
/* Codec                                                               */
/* ------------------------------------------------------------------ */

static void
test_codec_roundtrip(void **state)
{
	static const uint8_t a[] = "alpha", b[] = "bravo!";
	struct raft_entry ents[2] = {
		{ .term = 3, .index = 8, .type = RAFT_ENTRY_NORMAL, .len = 5, .data = a },
		{ .term = 4, .index = 9, .type = RAFT_ENTRY_NORMAL, .len = 6, .data = b },
	};
	struct raft_msg m = mk(RAFT_MSG_APP, 1, 2, 4), d, s;
	struct buf out = BUF_INIT;
	uint8_t snapdata[100];

	(void)state;
	m.log_term = 3;
	m.index = 7;
	m.commit = 6;
	m.entries = ents;
	m.n_entries = 2;
	assert_int_equal(raft_msg_encode(&m, &out), 0);
	assert_int_equal(out.len, raft_msg_encoded_len(&m));
	assert_int_equal(out.len, RAFT_MSG_HEADER_BYTES + 2 * RAFT_WIRE_ENTRY_HEADER_BYTES + 11);
	assert_int_equal(raft_msg_decode(out.data, out.len, &d), 0);
	assert_int_equal(d.type, RAFT_MSG_APP);
	assert_int_equal(d.from, 1);
	assert_int_equal(d.to, 2);
	assert_int_equal(d.term, 4);
	assert_int_equal(d.log_term, 3);
	assert_int_equal(d.index, 7);
	assert_int_equal(d.commit, 6);
	assert_int_equal(d.n_entries, 2);
	assert_int_equal(d.entries[1].index, 9);
	assert_int_equal(d.entries[1].len, 6);
	assert_memory_equal(d.entries[1].data, "bravo!", 6);
	/* Data is borrowed from the input buffer. */
	assert_ptr_equal(d.entries[0].data, (uint8_t *)out.data + RAFT_MSG_HEADER_BYTES +
	    RAFT_WIRE_ENTRY_HEADER_BYTES);
	raft_msg_clear(&d);

	/* A snapshot and a flagged response. */
	memset(snapdata, 0x5a, sizeof(snapdata));
	s = mk(RAFT_MSG_SNAP, 1, 3, 9);
	s.snap.index = 40;
	s.snap.term = 8;
	s.snap.conf.n = 3;
	s.snap.conf.ids[0] = 1;
	s.snap.conf.ids[1] = 3;
	s.snap.conf.ids[2] = 7;
	s.snap_data = snapdata;
	s.snap_len = sizeof(snapdata);
	buf_reset(&out);
	assert_int_equal(raft_msg_encode(&s, &out), 0);
	assert_int_equal(raft_msg_decode(out.data, out.len, &d), 0);
	assert_int_equal(d.snap.index, 40);
	assert_int_equal(d.snap.term, 8);
	assert_int_equal(d.snap.conf.n, 3);
	assert_int_equal(d.snap.conf.ids[2], 7);
	assert_int_equal(d.snap_len, 100);
	assert_memory_equal(d.snap_data, snapdata, 100);
	raft_msg_clear(&d);

	s = mk(RAFT_MSG_APP_RESP, 2, 1, 5);
	s.flags = RAFT_MSG_F_REJECT;
	s.index = 10;
	s.reject_hint = 6;
	s.log_term = 2;
	buf_reset(&out);
	assert_int_equal(raft_msg_encode(&s, &out), 0);
	assert_int_equal(raft_msg_decode(out.data, out.len, &d), 0);
	assert_int_equal(d.flags, RAFT_MSG_F_REJECT);
	assert_int_equal(d.reject_hint, 6);
	raft_msg_clear(&d);
	buf_free(&out);
}

static void
test_codec_every_truncation_fails(void **state)
{
	static const uint8_t a[] = "0123456789";
	struct raft_entry e = { .term = 2, .index = 5, .len = 10, .data = a };
	struct raft_msg m = mk(RAFT_MSG_APP, 1, 2, 2), s = mk(RAFT_MSG_SNAP, 1, 2, 2), d;
	struct buf out = BUF_INIT;

	(void)state;
	m.index = 4;
	m.log_term = 2;
	m.entries = &e;
	m.n_entries = 1;
	assert_int_equal(raft_msg_encode(&m, &out), 0);
	for (size_t n = 0; n < out.len; n++) {
		assert_int_equal(raft_msg_decode(out.data, n, &d), -ERR_PARSE);
		assert_null(d.entries);
	}
	/* One byte too many. */
	buf_putc(&out, 0);
	assert_int_equal(raft_msg_decode(out.data, out.len, &d), -ERR_PARSE);

	s.snap.index = 3;
	s.snap.term = 1;
	s.snap.conf.n = 1;
	s.snap.conf.ids[0] = 1;
	s.snap_data = a;
	s.snap_len = 10;
	buf_reset(&out);
	assert_int_equal(raft_msg_encode(&s, &out), 0);
	for (size_t n = 0; n < out.len; n++)
		assert_int_equal(raft_msg_decode(out.data, n, &d), -ERR_PARSE);
	assert_int_equal(raft_msg_decode(out.data, out.len, &d), 0);
	raft_msg_clear(&d);
	buf_free(&out);
}

/* Encodes m, applies a patch at offset, expects decode to fail. */
static void
expect_bad(const struct raft_msg *m, size_t off, const void *patch, size_t n)
{
	struct buf out = BUF_INIT;
	struct raft_msg d;

	assert_int_equal(raft_msg_encode(m, &out), 0);
	assert_true(off + n <= out.len);
	memcpy(out.data + off, patch, n);
	assert_int_equal(raft_msg_decode(out.data, out.len, &d), -ERR_PARSE);
	buf_free(&out);
}

static void
test_codec_hostile(void **state)
{
	static const uint8_t a[] = "xy";
	struct raft_entry e[2] = {
		{ .term = 2, .index = 5, .len = 2, .data = a },
		{ .term = 2, .index = 6, .len = 2, .data = a },
	};
	struct raft_msg m = mk(RAFT_MSG_APP, 1, 2, 2), bad;
	struct buf out = BUF_INIT;
	uint8_t v;
	uint32_t big = 0xffffffffu;
	uint64_t huge = UINT64_MAX;

	(void)state;
	m.index = 4;
	m.log_term = 1;
	m.entries = e;
	m.n_entries = 2;
	v = 2;
	expect_bad(&m, 0, &v, 1);               /* version */
	v = 0;
	expect_bad(&m, 1, &v, 1);               /* type 0 */
	v = 99;
	expect_bad(&m, 1, &v, 1);               /* unknown type */
	v = 0x80;
	expect_bad(&m, 2, &v, 1);               /* unknown flag */
	v = 1;
	expect_bad(&m, 2, &v, 1);               /* reject flag on an append */
	expect_bad(&m, 3, &v, 1);               /* reserved byte */
	expect_bad(&m, 4, &big, 4);             /* entry count beyond the input */
	expect_bad(&m, 8, &(uint64_t){ 0 }, 8); /* from 0 */
	expect_bad(&m, 24, &huge, 8);           /* term beyond RAFT_NUMBER_MAX */
	expect_bad(&m, 72 + 8, &(uint64_t){ 9 }, 8); /* entries not consecutive */
	expect_bad(&m, 72 + 0, &(uint64_t){ 3 }, 8); /* entry term above the message's */
	expect_bad(&m, 72 + 16, &(uint8_t){ 7 }, 1); /* unknown entry type */
	expect_bad(&m, 72 + 17, &(uint8_t){ 1 }, 1); /* entry padding */
	expect_bad(&m, 72 + 20, &big, 4);            /* entry length beyond input */
	v = RAFT_ENTRY_CONF;
	expect_bad(&m, 72 + 16, &v, 1);              /* conf entry with garbage data */

	/* Forwarded proposals carry no term; responses carry no entries. */
	bad = mk(RAFT_MSG_PROP, 2, 1, 3);
	bad.entries = e;
	bad.n_entries = 1;
	assert_int_equal(raft_msg_validate(&bad), -ERR_PARSE);
	assert_int_equal(raft_msg_encode(&bad, &out), -ERR_INVAL);
	bad = mk(RAFT_MSG_VOTE_RESP, 2, 1, 3);
	bad.entries = e;
	bad.n_entries = 1;
	assert_int_equal(raft_msg_validate(&bad), -ERR_PARSE);
	bad = mk(RAFT_MSG_SNAP, 2, 1, 3);
	bad.snap.index = 4;
	bad.snap.term = 2;
	bad.snap.conf.n = 2;
	bad.snap.conf.ids[0] = 5;
	bad.snap.conf.ids[1] = 5; /* duplicate member */
	assert_int_equal(raft_msg_validate(&bad), -ERR_PARSE);
	bad.snap.conf.ids[1] = 6;
	assert_int_equal(raft_msg_validate(&bad), 0);
	bad.snap.term = 4; /* snapshot from the future */
	assert_int_equal(raft_msg_validate(&bad), -ERR_PARSE);
	assert_int_equal(raft_msg_decode(NULL, 0, &bad), -ERR_PARSE);
	assert_string_equal(raft_msg_type_name(RAFT_MSG_TIMEOUT_NOW), "MsgTimeoutNow");
	assert_string_equal(raft_msg_type_name(77), "MsgUnknown");
	buf_free(&out);
}

static void
test_conf_codec(void **state)
{
	struct net *nw = net_new(3, NULL);
	struct raft_conf_change cc;
	struct raft_ready rd;
	const struct raft_msg *app;
	uint64_t index;
	uint8_t junk[256];

	(void)state;
	elect(nw, 1);
	assert_int_equal(raft_propose_conf_change(nw->r[1], RAFT_CONF_ADD, 9, "url", 3, &index), 0);
	take(nw->r[1], &rd);
	app = find_msg(&rd, RAFT_MSG_APP, 2);
	assert_non_null(app);
	assert_int_equal(app->n_entries, 1);
	assert_int_equal(app->entries[0].type, RAFT_ENTRY_CONF);
	assert_int_equal(app->entries[0].index, index);
	assert_int_equal(raft_conf_decode(app->entries[0].data, app->entries[0].len, &cc), 0);
	assert_int_equal(cc.op, RAFT_CONF_ADD);
	assert_int_equal(cc.node, 9);
	assert_int_equal(cc.conf.n, 4);
	assert_int_equal(cc.conf.ids[3], 9);
	assert_int_equal(cc.ctx_len, 3);
	assert_memory_equal(cc.ctx, "url", 3);
	/* Every truncation and a wrong op fail. */
	for (size_t n = 0; n < app->entries[0].len; n++)
		assert_int_equal(raft_conf_decode(app->entries[0].data, n, &cc), -ERR_PARSE);
	assert_true(app->entries[0].len <= sizeof(junk));
	memcpy(junk, app->entries[0].data, app->entries[0].len);
	junk[1] = RAFT_CONF_REMOVE; /* removing a member still listed */
	assert_int_equal(raft_conf_decode(junk, app->entries[0].len, &cc), -ERR_PARSE);
	done_ready(nw->r[1], &rd);
	net_free(nw);
}

/* ------------------------------------------------------------------ */
/* Elections                                                           */
/* ------------------------------------------------------------------ */

static void
no_prevote(struct raft_options *o)
{
	o->pre_vote = false;
	o->check_quorum = false;
}

static void
test_vote_once_per_term(void **state)
{
	struct net *nw = net_new(3, no_prevote);
	struct raft_msg v = mk(RAFT_MSG_VOTE, 2, 1, 5);
	struct raft_ready rd;
	const struct raft_msg *resp;

	(void)state;
	v.index = 1;
	v.log_term = 1;
	assert_int_equal(raft_step(nw->r[1], &v), 0);
	take(nw->r[1], &rd);
	assert_true(rd.hs_changed && rd.must_sync);
	assert_int_equal(rd.hs.term, 5);
	assert_int_equal(rd.hs.vote, 2);
	resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 2);
	assert_non_null(resp);
	assert_false(resp->flags & RAFT_MSG_F_REJECT);
	done_ready(nw->r[1], &rd);

	/* Same term, another candidate: refused. */
	v.from = 3;
	assert_int_equal(raft_step(nw->r[1], &v), 0);
	take(nw->r[1], &rd);
	resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 3);
	assert_non_null(resp);
	assert_true(resp->flags & RAFT_MSG_F_REJECT);
	assert_int_equal(st(nw, 1).vote, 2);
	done_ready(nw->r[1], &rd);

	/* The same candidate asking again (a retry) is granted again. */
	v.from = 2;
	assert_int_equal(raft_step(nw->r[1], &v), 0);
	take(nw->r[1], &rd);
	resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 2);
	assert_false(resp->flags & RAFT_MSG_F_REJECT);
	done_ready(nw->r[1], &rd);

	/* A candidate whose log is behind is refused even in a new term. */
	assert_int_equal(raft_campaign(nw->r[1]), 0);
	stabilize(nw);
	assert_int_equal(st(nw, 1).role, RAFT_LEADER);
	v = mk(RAFT_MSG_VOTE, 3, 2, st(nw, 1).term + 1);
	v.index = 1;
	v.log_term = 1;
	assert_int_equal(raft_step(nw->r[2], &v), 0);
	take(nw->r[2], &rd);
	resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 3);
	assert_true(resp->flags & RAFT_MSG_F_REJECT);
	done_ready(nw->r[2], &rd);

	/* A stale candidate learns the higher term from the refusal. */
	v = mk(RAFT_MSG_VOTE, 3, 2, 1);
	assert_int_equal(raft_step(nw->r[2], &v), 0);
	take(nw->r[2], &rd);
	resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 3);
	assert_non_null(resp);
	assert_true(resp->flags & RAFT_MSG_F_REJECT);
	assert_int_equal(resp->term, st(nw, 2).term);
	done_ready(nw->r[2], &rd);
	net_free(nw);
}

static void
test_prevote_keeps_terms(void **state)
{
	struct net *nw = net_new(3, NULL);
	struct raft_msg pv = mk(RAFT_MSG_PREVOTE, 2, 1, 2);
	struct raft_ready rd;
	const struct raft_msg *resp;
	uint64_t term1 = st(nw, 1).term;

	(void)state;
	/* A voter grants a pre-vote for term+1 without changing its term or vote. */
	pv.index = 1;
	pv.log_term = 1;
	assert_int_equal(raft_step(nw->r[1], &pv), 0);
	take(nw->r[1], &rd);
	assert_false(rd.hs_changed);
	resp = find_msg(&rd, RAFT_MSG_PREVOTE_RESP, 2);
	assert_non_null(resp);
	assert_false(resp->flags & RAFT_MSG_F_REJECT);
	assert_int_equal(resp->term, 2);
	done_ready(nw->r[1], &rd);
	assert_int_equal(st(nw, 1).term, term1);
	assert_int_equal(st(nw, 1).vote, RAFT_NONE);

	/* A pre-candidate keeps its term too, and after losing is still there. */
	nw->cut[2][3] = nw->cut[1][3] = true; /* nobody can answer n3 */
	assert_int_equal(raft_campaign(nw->r[3]), 0);
	assert_int_equal(st(nw, 3).role, RAFT_PRECANDIDATE);
	assert_int_equal(st(nw, 3).term, term1);
	drain(nw, 3);
	assert_int_equal(count_queued(nw, RAFT_MSG_PREVOTE, 3, 0), 2);
	assert_int_equal(nw->q[0].term, term1 + 1);
	drop_queue(nw);
	assert_int_equal(st(nw, 3).term, term1);

	/* A refused pre-vote leaves the term alone as well. */
	pv = mk(RAFT_MSG_PREVOTE_RESP, 1, 3, term1);
	pv.flags = RAFT_MSG_F_REJECT;
	assert_int_equal(raft_step(nw->r[3], &pv), 0);
	pv.from = 2;
	assert_int_equal(raft_step(nw->r[3], &pv), 0);
	assert_int_equal(st(nw, 3).role, RAFT_FOLLOWER);
	assert_int_equal(st(nw, 3).term, term1);
	net_free(nw);
}

static void
test_check_quorum(void **state)
{
	struct net *nw = net_new(3, NULL);
	struct raft_msg v;
	uint64_t term;
	int ticks;

	(void)state;
	elect(nw, 1);
	term = st(nw, 1).term;
	/* While heartbeats are answered the leader stays. */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(raft_tick(nw->r[1]), 0);
		stabilize(nw);
	}
	assert_int_equal(st(nw, 1).role, RAFT_LEADER);
	/* Lease: a follower that hears from the leader ignores a disruptive
	 * vote request of a higher term, and keeps its term. */
	v = mk(RAFT_MSG_VOTE, 3, 2, term + 5);
	v.index = 100;
	v.log_term = 100;
	assert_int_equal(raft_step(nw->r[2], &v), 0);
	assert_int_equal(st(nw, 2).term, term);
	assert_int_equal(st(nw, 2).lead, 1);
	/* ... unless it is a leader transfer. */
	v.flags = RAFT_MSG_F_TRANSFER;
	assert_int_equal(raft_step(nw->r[2], &v), 0);
	assert_int_equal(st(nw, 2).term, term + 5);
	drain_all(nw);
	drop_queue(nw);

	/* Cut off from everyone, the old leader steps down within two election
	 * timeouts (one quorum check may still see the last answers). */
	nw->cut[1][2] = nw->cut[1][3] = nw->cut[2][1] = nw->cut[3][1] = true;
	for (ticks = 1; ticks <= 20; ticks++) {
		assert_int_equal(raft_tick(nw->r[1]), 0);
		drain(nw, 1);
		if (st(nw, 1).role != RAFT_LEADER)
			break;
	}
	assert_true(ticks <= 20);
	assert_int_equal(st(nw, 1).role, RAFT_FOLLOWER);
	assert_int_equal(st(nw, 1).lead, RAFT_NONE);
	net_free(nw);
}

/* ------------------------------------------------------------------ */
/* Replication                                                         */
/* ------------------------------------------------------------------ */

static struct raft_entry
ent(uint64_t index, uint64_t term)
{
	struct raft_entry e;

	memset(&e, 0, sizeof(e));
	e.index = index;
	e.term = term;
	return e;
}

/* A member restored from a log with the given terms (index 1 is the
 * configuration {1, 2, 3}). */
static struct raft *
restored(uint64_t id, const uint64_t *terms, size_t n, uint64_t term, uint64_t commit)
{
	struct raft *boot, *r;
	struct raft_ready rd;
	struct raft_entry es[32];
	struct raft_persisted p;
	struct raft_options o;
	uint64_t ids[3] = { 1, 2, 3 };

	/* Borrow a real bootstrap entry for index 1. */
	opts_for(&o, id);
	assert_int_equal(raft_new(&o, NULL, &boot), 0);
	assert_int_equal(raft_bootstrap(boot, ids, 3), 0);
	assert_int_equal(raft_ready(boot, &rd), 0);
	es[0] = rd.entries[0];
	for (size_t i = 0; i < n; i++)
		es[i + 1] = ent(i + 2, terms[i]);
	memset(&p, 0, sizeof(p));
	p.hs.term = term;
	p.hs.commit = commit;
	p.entries = es;
	p.n_entries = n + 1;
	assert_int_equal(raft_new(&o, &p, &r), 0);
	raft_ready_free(&rd);
	raft_free(boot);
	return r;
}

static void
test_reject_hint_backtracking(void **state)
{
	/* Follower: 1@1 2@2 3@2 4@2 5@2 6@2. Leader: 1@1 2@2 3@3 4@3 5@5. */
	static const uint64_t fterms[] = { 2, 2, 2, 2, 2 }, lterms[] = { 2, 3, 3, 5 };
	struct raft *f = restored(2, fterms, 5, 4, 2), *l;
	struct raft_msg app = mk(RAFT_MSG_APP, 1, 2, 6), resp, vr;
	struct raft_progress_info pi;
	struct raft_ready rd;
	const struct raft_msg *rm;

	(void)state;
	/* The leader's probe after 5@5: the follower refuses and hints the last
	 * index up to 5 whose term is <= 5: 5, of term 2. */
	app.index = 5;
	app.log_term = 5;
	app.commit = 2;
	assert_int_equal(raft_step(f, &app), 0);
	take(f, &rd);
	rm = find_msg(&rd, RAFT_MSG_APP_RESP, 1);
	assert_non_null(rm);
	assert_true(rm->flags & RAFT_MSG_F_REJECT);
	assert_int_equal(rm->index, 5);
	assert_int_equal(rm->reject_hint, 5);
	assert_int_equal(rm->log_term, 2);
	resp = *rm;
	resp.entries = NULL;
	resp.n_entries = 0;

	/* The leader skips its whole terms 3 and 5 at once: next probe after 2. */
	l = restored(1, lterms, 4, 5, 2);
	assert_int_equal(raft_campaign(l), 0);
	vr = mk(RAFT_MSG_PREVOTE_RESP, 3, 1, 6);
	assert_int_equal(raft_step(l, &vr), 0);
	vr = mk(RAFT_MSG_VOTE_RESP, 3, 1, 6);
	assert_int_equal(raft_step(l, &vr), 0);
	{
		struct raft_status s;

		raft_status(l, &s);
		assert_int_equal(s.role, RAFT_LEADER);
		assert_int_equal(s.term, 6);
	}
	{
		struct raft_ready lr;

		take(l, &lr);
		done_ready(l, &lr);
	}
	assert_int_equal(raft_progress(l, 2, &pi), 0);
	assert_int_equal(pi.next, 6);
	assert_int_equal(pi.state, RAFT_PR_PROBE);
	resp.term = 6;
	resp.index = 5;
	assert_int_equal(raft_step(l, &resp), 0);
	assert_int_equal(raft_progress(l, 2, &pi), 0);
	assert_int_equal(pi.next, 3);
	/* A stale duplicate of the same rejection changes nothing. */
	assert_int_equal(raft_step(l, &resp), 0);
	assert_int_equal(raft_progress(l, 2, &pi), 0);
	assert_int_equal(pi.next, 3);
	done_ready(f, &rd);
	raft_free(f);
	raft_free(l);
}

static void
test_commit_bounded_by_last_new(void **state)
{
	/* Follower: 1@1 2@2 3@3 4@4 (4@4 uncommitted, from a deposed leader).
	 * A leader of term 5 whose index 4 is 4@5 sends only 3@3 with commit 4:
	 * the follower may commit 3, never its own 4@4. */
	static const uint64_t fterms[] = { 2, 3, 4 };
	struct raft *f = restored(2, fterms, 3, 4, 1);
	struct raft_entry e = ent(3, 3);
	struct raft_msg app = mk(RAFT_MSG_APP, 1, 2, 5);
	struct raft_status s;
	uint64_t t;

	(void)state;
	app.index = 2;
	app.log_term = 2;
	app.commit = 4;
	app.entries = &e;
	app.n_entries = 1;
	assert_int_equal(raft_step(f, &app), 0);
	raft_status(f, &s);
	assert_int_equal(s.commit, 3);
	assert_int_equal(s.last_index, 4);
	assert_int_equal(raft_term_at(f, 4, &t), 0);
	assert_int_equal(t, 4);
	raft_free(f);
}

static void
test_advance_after_truncation(void **state)
{
	/* A follower hands out entries to persist; before the fsync completes a
	 * new leader replaces them. Acknowledging the old ready must not mark
	 * the replacements persisted: the next ready carries them. */
	struct net *nw = net_new(3, NULL);
	struct raft *f = nw->r[2];
	struct raft_entry old[2], repl[3];
	struct raft_msg app;
	struct raft_ready rd1, rd2;
	uint64_t term, last;

	(void)state;
	elect(nw, 1);
	term = st(nw, 1).term;
	last = st(nw, 1).last_index;
	old[0] = ent(last + 1, term);
	old[1] = ent(last + 2, term);
	app = mk(RAFT_MSG_APP, 1, 2, term);
	app.index = last;
	app.log_term = term;
	app.commit = last;
	app.entries = old;
	app.n_entries = 2;
	assert_int_equal(raft_step(f, &app), 0);
	assert_int_equal(raft_ready(f, &rd1), 0);
	assert_int_equal(rd1.n_entries, 2);
	/* Leader n3 of the next term overwrites both and adds one more. */
	for (int i = 0; i < 3; i++)
		repl[i] = ent(last + 1 + (uint64_t)i, term + 1);
	app = mk(RAFT_MSG_APP, 3, 2, term + 1);
	app.index = last;
	app.log_term = term;
	app.commit = last;
	app.entries = repl;
	app.n_entries = 3;
	assert_int_equal(raft_step(f, &app), 0);
	assert_int_equal(raft_advance(f, &rd1), 0);
	assert_int_equal(st(nw, 2).stable_index, last);
	assert_int_equal(raft_ready(f, &rd2), 0);
	assert_int_equal(rd2.n_entries, 3);
	assert_int_equal(rd2.entries[0].index, last + 1);
	assert_int_equal(rd2.entries[0].term, term + 1);
	assert_int_equal(raft_advance(f, &rd2), 0);
	assert_int_equal(st(nw, 2).stable_index, last + 3);
	net_free(nw);
}

static void
test_hardstate_commit_never_covers_own_entries(void **state)
{
	/* A follower gets entries and, in the same append, a commit covering
	 * them. The ready's hard state (written first) must not claim them
	 * committed; the following ready does. */
	struct net *nw = net_new(3, NULL);
	struct raft *f = nw->r[2];
	struct raft_entry es[3];
	struct raft_msg app;
	struct raft_ready rd;
	uint64_t term, last;

	(void)state;
	elect(nw, 1);
	term = st(nw, 1).term;
	last = st(nw, 1).last_index;
	for (int i = 0; i < 3; i++)
		es[i] = ent(last + 1 + (uint64_t)i, term);
	app = mk(RAFT_MSG_APP, 1, 2, term);
	app.index = last;
	app.log_term = term;
	app.commit = last + 3;
	app.entries = es;
	app.n_entries = 3;
	assert_int_equal(raft_step(f, &app), 0);
	assert_int_equal(st(nw, 2).commit, last + 3);
	assert_int_equal(raft_ready(f, &rd), 0);
	assert_int_equal(rd.n_entries, 3);
	assert_int_equal(rd.hs.commit, last);
	/* They are applied after being persisted, in this same ready. */
	assert_int_equal(rd.n_committed, 3);
	assert_int_equal(raft_advance(f, &rd), 0);
	assert_true(raft_has_ready(f));
	assert_int_equal(raft_ready(f, &rd), 0);
	assert_int_equal(rd.n_entries, 0);
	assert_true(rd.hs_changed);
	assert_int_equal(rd.hs.commit, last + 3);
	assert_false(rd.must_sync);
	assert_int_equal(raft_advance(f, &rd), 0);
	net_free(nw);
}

static void
window_opts(struct raft_options *o)
{
	o->max_inflight_msgs = 2;
	o->max_msg_bytes = 1;
}

static void
test_inflight_window(void **state)
{
	struct net *nw = net_new(3, window_opts);
	struct raft_progress_info pi;
	struct raft_msg hb;

	(void)state;
	elect(nw, 1);
	/* Five proposals, one entry per append: two in flight per follower. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(raft_propose(nw->r[1], "abcd", 4, NULL), 0);
	drain(nw, 1);
	assert_int_equal(count_queued(nw, RAFT_MSG_APP, 1, 2), 2);
	assert_int_equal(raft_progress(nw->r[1], 2, &pi), 0);
	assert_int_equal(pi.state, RAFT_PR_REPLICATE);
	assert_int_equal(pi.inflight, 2);
	assert_true(pi.paused);
	/* The appends are lost. A heartbeat response frees one slot so that the
	 * leader probes again instead of waiting forever. */
	drop_queue(nw);
	hb = mk(RAFT_MSG_HEARTBEAT_RESP, 2, 1, st(nw, 1).term);
	assert_int_equal(raft_step(nw->r[1], &hb), 0);
	drain(nw, 1);
	assert_int_equal(count_queued(nw, RAFT_MSG_APP, 1, 2), 1);
	/* Everything settles once messages flow. */
	stabilize(nw);
	assert_int_equal(raft_progress(nw->r[1], 2, &pi), 0);
	assert_int_equal(pi.match, st(nw, 1).last_index);
	assert_int_equal(pi.inflight, 0);
	assert_int_equal(st(nw, 2).commit, st(nw, 1).last_index);
	net_free(nw);
}

static void
test_commit_only_current_term_by_counting(void **state)
{
	/* n1 restored with an uncommitted 2@2 as leader of term 3: 2@2 on a
	 * majority does not commit until the term-3 no-op does. */
	static const uint64_t terms[] = { 2 };
	struct raft *l = restored(1, terms, 1, 2, 1);
	struct raft_msg m;
	struct raft_ready rd;

	(void)state;
	assert_int_equal(raft_campaign(l), 0);
	m = mk(RAFT_MSG_PREVOTE_RESP, 2, 1, 3);
	assert_int_equal(raft_step(l, &m), 0);
	m = mk(RAFT_MSG_VOTE_RESP, 2, 1, 3);
	assert_int_equal(raft_step(l, &m), 0);
	take(l, &rd);
	assert_int_equal(rd.n_entries, 1); /* the no-op 3@3 */
	done_ready(l, &rd);
	m = mk(RAFT_MSG_APP_RESP, 2, 1, 3);
	m.index = 2;
	assert_int_equal(raft_step(l, &m), 0);
	{
		struct raft_status s;

		raft_status(l, &s);
		assert_int_equal(s.commit, 1);
	}
	m.index = 3;
	assert_int_equal(raft_step(l, &m), 0);
	{
		struct raft_status s;

		raft_status(l, &s);
		assert_int_equal(s.commit, 3);
	}
	raft_free(l);
}

static void
test_proposal_forwarding(void **state)
{
	struct net *nw = net_new(3, NULL);
	uint64_t index = 99;

	(void)state;
	/* No leader known: refused at once. */
	assert_int_equal(raft_propose(nw->r[2], "x", 1, &index), -ERR_AGAIN);
	assert_int_equal(raft_read_index(nw->r[2], 5), -ERR_AGAIN);
	elect(nw, 1);
	assert_int_equal(raft_propose(nw->r[2], "hello", 5, &index), 0);
	assert_int_equal(index, 0);
	drain(nw, 2);
	assert_int_equal(count_queued(nw, RAFT_MSG_PROP, 2, 1), 1);
	stabilize(nw);
	assert_int_equal(st(nw, 1).commit, st(nw, 1).last_index);
	assert_int_equal(nw->applied[2], st(nw, 1).last_index);
	assert_int_equal(raft_propose(nw->r[1], NULL, RAFT_ENTRY_BYTES_MAX + 1ul, NULL), -ERR_LIMIT);
	net_free(nw);
}

/* ------------------------------------------------------------------ */
/* Configuration changes                                               */
/* ------------------------------------------------------------------ */

static void
test_conf_change_one_at_a_time(void **state)
{
	struct net *nw = net_new(3, NULL);
	struct raft_options o;
	uint64_t index;

	(void)state;
	assert_int_equal(raft_propose_conf_change(nw->r[1], RAFT_CONF_ADD, 4, NULL, 0, NULL),
	    -ERR_STATE);
	assert_int_equal(raft_campaign(nw->r[1]), 0);
	/* Leader of the term, but nothing of its term committed yet. */
	while (st(nw, 1).role != RAFT_LEADER) {
		assert_true(nw->nq > 0 || raft_has_ready(nw->r[1]));
		drain_all(nw);
		deliver_one(nw);
	}
	assert_int_equal(raft_propose_conf_change(nw->r[1], RAFT_CONF_ADD, 4, NULL, 0, NULL),
	    -ERR_AGAIN);
	stabilize(nw);
	assert_int_equal(raft_propose_conf_change(nw->r[1], RAFT_CONF_ADD, 2, NULL, 0, NULL),
	    -ERR_EXIST);
	assert_int_equal(raft_propose_conf_change(nw->r[1], RAFT_CONF_REMOVE, 7, NULL, 0, NULL),
	    -ERR_NOTFOUND);
	assert_int_equal(raft_propose_conf_change(nw->r[1], RAFT_CONF_ADD, 0, NULL, 0, NULL),
	    -ERR_INVAL);
	opts_for(&o, 4);
	assert_int_equal(raft_new(&o, NULL, &nw->r[4]), 0);
	nw->n = 4;
	assert_int_equal(raft_propose_conf_change(nw->r[1], RAFT_CONF_ADD, 4, NULL, 0, &index), 0);
	/* In force on the leader as soon as appended. */
	assert_int_equal(st(nw, 1).conf.n, 4);
	assert_int_equal(st(nw, 1).conf_index, index);
	/* One at a time. */
	assert_int_equal(raft_propose_conf_change(nw->r[1], RAFT_CONF_REMOVE, 2, NULL, 0, NULL),
	    -ERR_AGAIN);
	stabilize(nw);
	assert_int_equal(st(nw, 4).conf.n, 4);
	assert_int_equal(st(nw, 4).commit, st(nw, 1).commit);
	assert_int_equal(raft_propose_conf_change(nw->r[1], RAFT_CONF_REMOVE, 2, NULL, 0, NULL), 0);
	stabilize(nw);
	assert_int_equal(st(nw, 1).conf.n, 3);
	{
		struct raft_status s3 = st(nw, 3);

		assert_false(raft_config_has(&s3.conf, 2));
	}
	/* Proposals still commit with the new majority {1, 3, 4}. */
	raft_free(nw->r[2]);
	nw->r[2] = NULL;
	assert_int_equal(raft_propose(nw->r[1], "z", 1, &index), 0);
	stabilize(nw);
	assert_int_equal(st(nw, 1).commit, index);
	net_free(nw);
}

static void
test_conf_rollback_on_truncation(void **state)
{
	struct net *nw = net_new(3, NULL);
	struct raft_msg app;
	struct raft_ready rd;
	const struct raft_msg *m;
	struct raft_entry e;
	uint64_t term, last;

	(void)state;
	elect(nw, 1);
	term = st(nw, 1).term;
	last = st(nw, 1).last_index;
	/* The leader appends a change; only n2 receives it. */
	assert_int_equal(raft_propose_conf_change(nw->r[1], RAFT_CONF_REMOVE, 3, NULL, 0, NULL), 0);
	take(nw->r[1], &rd);
	m = find_msg(&rd, RAFT_MSG_APP, 2);
	assert_non_null(m);
	assert_int_equal(raft_step(nw->r[2], m), 0);
	done_ready(nw->r[1], &rd);
	drain(nw, 2);
	drop_queue(nw);
	assert_int_equal(st(nw, 2).conf.n, 2);
	/* A new leader of a later term overwrites that entry: n2 goes back. */
	e = ent(last + 1, term + 1);
	app = mk(RAFT_MSG_APP, 3, 2, term + 1);
	app.index = last;
	app.log_term = term;
	app.commit = last;
	app.entries = &e;
	app.n_entries = 1;
	assert_int_equal(raft_step(nw->r[2], &app), 0);
	assert_int_equal(st(nw, 2).conf.n, 3);
	assert_int_equal(st(nw, 2).conf_index, 1);
	/* An append below the commit index is stale: answered with the commit
	 * index, and committed entries are never rewritten. */
	drain(nw, 2);
	drop_queue(nw);
	app.index = 1;
	app.log_term = 1;
	e = ent(2, term + 1);
	app.commit = 0;
	assert_int_equal(raft_step(nw->r[2], &app), 0);
	{
		uint64_t t;
		struct raft_ready rd2;
		const struct raft_msg *resp;

		assert_int_equal(raft_term_at(nw->r[2], 2, &t), 0);
		assert_int_equal(t, term);
		take(nw->r[2], &rd2);
		resp = find_msg(&rd2, RAFT_MSG_APP_RESP, 3);
		assert_non_null(resp);
		assert_false(resp->flags & RAFT_MSG_F_REJECT);
		assert_int_equal(resp->index, st(nw, 2).commit);
		done_ready(nw->r[2], &rd2);
	}
	net_free(nw);
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */
/* ------------------------------------------------------------------ */

static void
test_read_index_batched(void **state)
{
	struct net *nw = net_new(3, NULL);
	uint64_t commit;

	(void)state;
	elect(nw, 1);
	commit = st(nw, 1).commit;
	/* Three reads in one loop turn: one heartbeat per follower. */
	assert_int_equal(raft_read_index(nw->r[1], 11), 0);
	assert_int_equal(raft_read_index(nw->r[1], 12), 0);
	assert_int_equal(raft_read_index(nw->r[1], 13), 0);
	drain(nw, 1);
	assert_int_equal(count_queued(nw, RAFT_MSG_HEARTBEAT, 1, 2), 1);
	assert_int_equal(count_queued(nw, RAFT_MSG_HEARTBEAT, 1, 3), 1);
	assert_int_equal(nw->n_reads, 0);
	/* One follower's answer makes a majority. */
	deliver_one(nw); /* heartbeat to n2 */
	deliver_one(nw); /* heartbeat to n3 */
	deliver_one(nw); /* n2's answer */
	assert_int_equal(nw->n_reads, 3);
	assert_int_equal(nw->reads[0].ctx, 11);
	assert_int_equal(nw->reads[2].ctx, 13);
	assert_int_equal(nw->reads[1].index, commit);
	stabilize(nw);
	/* A follower's read goes through the leader. */
	nw->n_reads = 0;
	assert_int_equal(raft_read_index(nw->r[3], 21), 0);
	stabilize(nw);
	assert_int_equal(nw->n_reads, 1);
	assert_int_equal(nw->reads[0].ctx, 21);
	assert_int_equal(nw->reads[0].index, commit);
	/* Without a majority, no answer. */
	nw->n_reads = 0;
	nw->cut[2][1] = nw->cut[3][1] = true;
	assert_int_equal(raft_read_index(nw->r[1], 31), 0);
	stabilize(nw);
	assert_int_equal(nw->n_reads, 0);
	net_free(nw);
}

static void
test_read_held_until_term_commits(void **state)
{
	struct net *nw = net_new(3, NULL);

	(void)state;
	assert_int_equal(raft_campaign(nw->r[1]), 0);
	while (st(nw, 1).role != RAFT_LEADER) {
		drain_all(nw);
		deliver_one(nw);
	}
	/* Leader, but its no-op is not committed: the read waits. */
	assert_true(st(nw, 1).commit < st(nw, 1).last_index);
	assert_int_equal(raft_read_index(nw->r[1], 7), 0);
	drain(nw, 1);
	assert_int_equal(count_queued(nw, RAFT_MSG_HEARTBEAT, 1, 0), 0);
	stabilize(nw);
	assert_int_equal(nw->n_reads, 1);
	assert_int_equal(nw->reads[0].index, st(nw, 1).last_index);
	net_free(nw);
}

/* ------------------------------------------------------------------ */
/* Transfer, ready contract, restore, compaction                       */
/* ------------------------------------------------------------------ */

static void
test_leader_transfer(void **state)
{
	struct net *nw = net_new(3, NULL);
	uint64_t term;

	(void)state;
	elect(nw, 1);
	term = st(nw, 1).term;
	assert_int_equal(raft_transfer_leader(nw->r[2], 3), -ERR_STATE);
	assert_int_equal(raft_transfer_leader(nw->r[1], 9), -ERR_NOTFOUND);
	assert_int_equal(raft_transfer_leader(nw->r[1], 1), -ERR_INVAL);
	assert_int_equal(raft_transfer_leader(nw->r[1], 3), 0);
	assert_int_equal(raft_propose(nw->r[1], "x", 1, NULL), -ERR_AGAIN);
	drain(nw, 1);
	assert_int_equal(count_queued(nw, RAFT_MSG_TIMEOUT_NOW, 1, 3), 1);
	stabilize(nw);
	assert_int_equal(st(nw, 3).role, RAFT_LEADER);
	assert_int_equal(st(nw, 3).term, term + 1);
	assert_int_equal(st(nw, 1).lead, 3);

	/* A transfer that cannot finish is abandoned after an election timeout. */
	nw->cut[3][1] = nw->cut[1][3] = true;
	assert_int_equal(raft_propose(nw->r[3], "y", 1, NULL), 0);
	stabilize(nw);
	assert_int_equal(raft_transfer_leader(nw->r[3], 1), 0);
	assert_int_equal(raft_propose(nw->r[3], "z", 1, NULL), -ERR_AGAIN);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(raft_tick(nw->r[3]), 0);
		stabilize(nw);
	}
	assert_int_equal(st(nw, 3).role, RAFT_LEADER);
	assert_int_equal(st(nw, 3).lead_transferee, RAFT_NONE);
	assert_int_equal(raft_propose(nw->r[3], "z", 1, NULL), 0);
	net_free(nw);
}

static void
test_ready_contract(void **state)
{
	struct raft_options o;
	struct raft *r;
	struct raft_ready rd, rd2;
	uint64_t ids[1] = { 1 }, index;

	(void)state;
	opts_for(&o, 1);
	assert_int_equal(raft_new(&o, NULL, &r), 0);
	assert_int_equal(raft_bootstrap(r, ids, 1), 0);
	assert_int_equal(raft_bootstrap(r, ids, 1), -ERR_STATE);
	assert_true(raft_has_ready(r));
	assert_int_equal(raft_ready(r, &rd), 0);
	assert_true(rd.must_sync);
	assert_int_equal(rd.n_entries, 1);
	assert_int_equal(rd.n_committed, 1);
	assert_int_equal(rd.hs.term, 1);
	/* Entry 1 is committed, but the hard state written before it must not
	 * say so; the next ready does. */
	assert_int_equal(rd.hs.commit, 0);
	/* One ready at a time. */
	assert_false(raft_has_ready(r));
	assert_int_equal(raft_ready(r, &rd2), -ERR_STATE);
	assert_int_equal(raft_advance(r, &rd), 0);
	assert_int_equal(raft_advance(r, &rd), -ERR_STATE);
	assert_true(raft_has_ready(r));
	assert_int_equal(raft_ready(r, &rd), 0);
	assert_int_equal(rd.n_entries, 0);
	assert_true(rd.hs_changed);
	assert_int_equal(rd.hs.commit, 1);
	assert_false(rd.must_sync);
	assert_int_equal(raft_advance(r, &rd), 0);
	assert_false(raft_has_ready(r));

	/* A single member elects itself; its entry commits only once persisted. */
	assert_int_equal(raft_campaign(r), 0);
	assert_int_equal(raft_ready(r, &rd), 0);
	assert_true(rd.soft_changed);
	assert_int_equal(rd.hs.commit, 1);
	assert_int_equal(rd.role, RAFT_LEADER);
	assert_int_equal(rd.n_entries, 1);
	assert_int_equal(rd.n_committed, 0);
	/* Proposals go on while the ready is out (a WAL thread is syncing). */
	assert_int_equal(raft_propose(r, "abc", 3, &index), 0);
	assert_int_equal(index, 3);
	assert_int_equal(raft_advance(r, &rd), 0);
	assert_int_equal(raft_ready(r, &rd), 0);
	assert_int_equal(rd.n_entries, 1);
	assert_int_equal(rd.entries[0].index, 3);
	assert_int_equal(rd.n_committed, 1); /* the no-op, now persisted */
	assert_int_equal(raft_advance(r, &rd), 0);
	assert_int_equal(raft_ready(r, &rd), 0);
	assert_int_equal(rd.n_committed, 1);
	assert_memory_equal(rd.committed[0].data, "abc", 3);
	assert_false(rd.must_sync);
	assert_int_equal(raft_advance(r, &rd), 0);
	{
		struct raft_status s;

		raft_status(r, &s);
		assert_int_equal(s.applied, 3);
		assert_int_equal(s.commit, 3);
	}
	raft_free(r);
}

static void
test_restore(void **state)
{
	static const uint64_t terms[] = { 2, 2, 3 };
	struct raft *r = restored(1, terms, 3, 2, 3);
	struct raft_status s;
	struct raft_persisted p;
	struct raft_options o;
	struct raft_entry gap[2] = { ent(1, 1), ent(3, 1) }, e1 = ent(1, 1);

	(void)state;
	raft_status(r, &s);
	assert_int_equal(s.last_index, 4);
	assert_int_equal(s.commit, 3);
	assert_int_equal(s.applied, 0);
	/* The term is raised to the last entry's, with no vote. */
	assert_int_equal(s.term, 3);
	assert_int_equal(s.vote, RAFT_NONE);
	assert_int_equal(s.conf.n, 3);
	raft_free(r);

	opts_for(&o, 1);
	memset(&p, 0, sizeof(p));
	/* A durable commit beyond the durable log: committed entries were lost. */
	p.hs.term = 1;
	p.hs.commit = 2;
	p.entries = &e1;
	p.n_entries = 1;
	assert_int_equal(raft_new(&o, &p, &r), -ERR_CORRUPT);
	assert_null(r);
	p.entries = gap;
	p.n_entries = 2;
	assert_int_equal(raft_new(&o, &p, &r), -ERR_INVAL);
	assert_null(r);
	o.heartbeat_ticks = o.election_ticks;
	assert_int_equal(raft_new(&o, NULL, &r), -ERR_INVAL);
}

static void
catchup0(struct raft_options *o)
{
	o->snapshot_catchup_entries = 0;
}

static void
test_compaction_sends_snapshot(void **state)
{
	struct net *nw = net_new(3, catchup0);
	struct raft *lag = nw->r[3];
	struct raft_snapshot_meta meta;
	struct raft_ready rd;
	uint64_t applied;
	const struct raft_msg *snap;

	(void)state;
	elect(nw, 1);
	nw->r[3] = NULL; /* down */
	for (int i = 0; i < 5; i++)
		assert_int_equal(raft_propose(nw->r[1], "data", 4, NULL), 0);
	stabilize(nw);
	applied = st(nw, 1).applied;
	assert_int_equal(raft_compact(nw->r[1], applied + 1, "s", 1, NULL), -ERR_RANGE);
	assert_int_equal(raft_compact(nw->r[1], applied, "state", 5, &meta), 0);
	assert_int_equal(meta.index, applied);
	assert_int_equal(meta.term, st(nw, 1).term);
	assert_int_equal(meta.conf.n, 3);
	assert_int_equal(st(nw, 1).first_index, applied + 1);
	assert_int_equal(raft_compact(nw->r[1], applied, "s", 1, NULL), -ERR_RANGE);
	nw->r[3] = lag;
	/* The lagging follower is probed, refuses, and is sent the snapshot. */
	for (int i = 0; i < 3 && count_queued(nw, RAFT_MSG_SNAP, 1, 3) == 0; i++) {
		assert_int_equal(raft_tick(nw->r[1]), 0);
		drain(nw, 1);
		while (nw->nq > 0 && count_queued(nw, RAFT_MSG_SNAP, 1, 3) == 0)
			deliver_one(nw);
	}
	assert_int_equal(count_queued(nw, RAFT_MSG_SNAP, 1, 3), 1);
	for (size_t i = 0; i < nw->nq; i++) {
		if (nw->q[i].type != RAFT_MSG_SNAP)
			continue;
		snap = &nw->q[i];
		assert_int_equal(snap->snap.index, applied);
		assert_int_equal(snap->snap.conf.n, 3);
		assert_int_equal(snap->snap_len, 5);
		assert_memory_equal(snap->snap_data, "state", 5);
	}
	/* The follower installs it (the ready carries it to persist first),
	 * answers, and the leader goes back to replicating from the log. */
	while (nw->nq > 0 && nw->q[0].type != RAFT_MSG_SNAP)
		deliver_one(nw);
	assert_int_equal(raft_step(lag, &nw->q[0]), 0);
	raft_msg_clear(&nw->q[0]);
	memmove(nw->q, nw->q + 1, (nw->nq - 1) * sizeof(nw->q[0]));
	nw->nq--;
	assert_int_equal(raft_ready(lag, &rd), 0);
	assert_true(rd.has_snapshot);
	assert_int_equal(rd.snap.index, applied);
	assert_memory_equal(rd.snap_data, "state", 5);
	assert_true(rd.must_sync);
	assert_non_null(find_msg(&rd, RAFT_MSG_APP_RESP, 1));
	nw->q[nw->nq++] = *find_msg(&rd, RAFT_MSG_APP_RESP, 1);
	for (size_t i = 0; i < rd.n_msgs; i++)
		if (rd.msgs[i].type == RAFT_MSG_APP_RESP)
			memset(&rd.msgs[i], 0, sizeof(rd.msgs[i])); /* moved */
	assert_int_equal(raft_advance(lag, &rd), 0);
	assert_int_equal(st(nw, 3).commit, applied);
	assert_int_equal(st(nw, 3).applied, applied);
	assert_int_equal(st(nw, 3).snap_index, applied);
	stabilize(nw);
	{
		struct raft_progress_info pi;

		assert_int_equal(raft_progress(nw->r[1], 3, &pi), 0);
		assert_int_equal(pi.state, RAFT_PR_REPLICATE);
		assert_int_equal(pi.match, applied);
	}
	assert_int_equal(raft_propose(nw->r[1], "more", 4, NULL), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(raft_tick(nw->r[1]), 0);
		stabilize(nw);
	}
	assert_int_equal(st(nw, 3).commit, st(nw, 1).commit);
	assert_int_equal(st(nw, 3).last_index, st(nw, 1).last_index);
	net_free(nw);
}

static void
test_hostile_steps(void **state)
{
	struct net *nw = net_new(3, NULL);
	struct raft_msg m;

	(void)state;
	elect(nw, 1);
	/* Not for us, from ourselves, malformed: refused without change. */
	m = mk(RAFT_MSG_HEARTBEAT, 2, 3, st(nw, 1).term);
	assert_int_equal(raft_step(nw->r[1], &m), -ERR_INVAL);
	m = mk(RAFT_MSG_HEARTBEAT, 1, 1, st(nw, 1).term);
	assert_int_equal(raft_step(nw->r[1], &m), -ERR_INVAL);
	m = mk(RAFT_MSG_HEARTBEAT, 2, 1, 0);
	assert_int_equal(raft_step(nw->r[1], &m), -ERR_PARSE);
	/* An acknowledgement of entries the leader never had. */
	m = mk(RAFT_MSG_APP_RESP, 2, 1, st(nw, 1).term);
	m.index = 1000;
	assert_int_equal(raft_step(nw->r[1], &m), -ERR_INVAL);
	assert_int_equal(st(nw, 1).commit, st(nw, 1).last_index);
	/* A heartbeat claiming a commit beyond the follower's log. */
	m = mk(RAFT_MSG_HEARTBEAT, 1, 2, st(nw, 1).term);
	m.commit = 1000;
	assert_int_equal(raft_step(nw->r[2], &m), -ERR_INVAL);
	assert_true(st(nw, 2).commit < 1000);
	/* A message from a non-member is harmless. */
	m = mk(RAFT_MSG_HEARTBEAT_RESP, 42, 1, st(nw, 1).term);
	assert_int_equal(raft_step(nw->r[1], &m), 0);
	net_free(nw);
}

/* ------------------------------------------------------------------ */
/* Allocation failures                                                 */
/* ------------------------------------------------------------------ */

/* Counts -ERR_NOMEM; any other error but -ERR_AGAIN fails the test. */
static int
nomem(int rc)
{
	if (rc != 0 && rc != -ERR_NOMEM && rc != -ERR_AGAIN)
		fail_msg("unexpected %s", err_str(rc));
	return rc == -ERR_NOMEM;
}

static int
scenario_under_failure(long fail_at)
{
	struct net *nw;
	int rcs = 0;

	nw = net_new(3, NULL);
	mem_fail_after(fail_at);
	/* Errors are allowed, crashes, leaks and broken invariants are not. */
	rcs += nomem(raft_campaign(nw->r[1]));
	for (int round = 0; round < 12; round++) {
		for (int i = 1; i <= 3; i++) {
			struct raft_ready rd;

			while (raft_has_ready(nw->r[i])) {
				if (nomem(raft_ready(nw->r[i], &rd))) {
					rcs++;
					break;
				}
				for (size_t k = 0; k < rd.n_msgs && nw->nq < QUEUE_MAX; k++)
					nw->q[nw->nq++] = rd.msgs[k];
				rd.n_msgs = 0;
				rcs += nomem(raft_advance(nw->r[i], &rd));
			}
		}
		while (nw->nq > 0) {
			struct raft_msg m = nw->q[0];

			memmove(nw->q, nw->q + 1, (nw->nq - 1) * sizeof(nw->q[0]));
			nw->nq--;
			rcs += nomem(raft_step(nw->r[m.to], &m));
			raft_msg_clear(&m);
		}
		rcs += nomem(raft_propose(nw->r[1], "payload", 7, NULL));
		rcs += nomem(raft_read_index(nw->r[2], 3));
		rcs += nomem(raft_tick(nw->r[1]));
	}
	mem_fail_reset();
	/* Whatever happened, the cluster recovers once memory is back. */
	for (int i = 0; i < 40; i++) {
		for (int k = 1; k <= 3; k++)
			assert_int_equal(raft_tick(nw->r[k]), 0);
		stabilize(nw);
	}
	{
		int leaders = 0;
		uint64_t lead = 0;

		for (int k = 1; k <= 3; k++)
			if (st(nw, (uint64_t)k).role == RAFT_LEADER)
				leaders++, lead = (uint64_t)k;
		assert_int_equal(leaders, 1);
		assert_int_equal(raft_propose(nw->r[lead], "after", 5, NULL), 0);
		stabilize(nw);
		for (int k = 1; k <= 3; k++)
			assert_int_equal(st(nw, (uint64_t)k).commit, st(nw, lead).last_index);
	}
	net_free(nw);
	return rcs;
}

static void
test_allocation_failures(void **state)
{
	long n;

	(void)state;
	/* Fail the 1st, 2nd, ... allocation until the scenario runs through
	 * without meeting the failure: then every allocation it makes has
	 * failed once. */
	for (n = 0; n < 20000; n++)
		if (scenario_under_failure(n) == 0)
			break;
	assert_true(n > 50);
	assert_true(n < 20000);
	print_message("failed each of %ld allocations in turn\n", n);
	assert_int_equal(scenario_under_failure(-1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codec_roundtrip),
		cmocka_unit_test(test_codec_every_truncation_fails),
		cmocka_unit_test(test_codec_hostile),
		cmocka_unit_test(test_conf_codec),
		cmocka_unit_test(test_vote_once_per_term),
		cmocka_unit_test(test_prevote_keeps_terms),
		cmocka_unit_test(test_check_quorum),
		cmocka_unit_test(test_reject_hint_backtracking),
		cmocka_unit_test(test_commit_bounded_by_last_new),
		cmocka_unit_test(test_advance_after_truncation),
		cmocka_unit_test(test_hardstate_commit_never_covers_own_entries),
		cmocka_unit_test(test_inflight_window),
		cmocka_unit_test(test_commit_only_current_term_by_counting),
		cmocka_unit_test(test_proposal_forwarding),
		cmocka_unit_test(test_conf_change_one_at_a_time),
		cmocka_unit_test(test_conf_rollback_on_truncation),
		cmocka_unit_test(test_read_index_batched),
		cmocka_unit_test(test_read_held_until_term_commits),
		cmocka_unit_test(test_leader_transfer),
		cmocka_unit_test(test_ready_contract),
		cmocka_unit_test(test_restore),
		cmocka_unit_test(test_compaction_sends_snapshot),
		cmocka_unit_test(test_hostile_steps),
		cmocka_unit_test(test_allocation_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
