/*
 * Fuzz harness for the raft peer message decoder (store/raft_codec.c) and
 * for raft_step on whatever decodes. It checks what the transport and raft
 * rely on: a decoded message passes raft_msg_validate, every data pointer
 * lies inside the input, and re-encoding gives back exactly the input (the
 * encoding is canonical, so nothing is silently ignored). Then the message,
 * readdressed to member 1, is stepped into a follower and into a leader of
 * a three-member cluster, whose readies are drained: hostile input may be
 * refused but must never crash raft or break its bookkeeping. It must never
 * do I/O.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/raft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_inside(const uint8_t *p, size_t n, const uint8_t *data, size_t size)
{
	if (n == 0)
		return;
	if (p == NULL || p < data || p + n > data + size)
		abort();
}

static void
drain(struct raft *r)
{
	struct raft_ready rd;

	for (int i = 0; i < 8 && raft_has_ready(r); i++) {
		if (raft_ready(r, &rd) != 0)
			abort();
		if (raft_advance(r, &rd) != 0)
			abort();
	}
}

static struct raft *
member(bool leader)
{
	struct raft_options o;
	struct raft *r;
	uint64_t ids[3] = { 1, 2, 3 };
	struct raft_msg m;
	struct raft_status st;

	raft_options_init(&o, 1);
	if (raft_new(&o, NULL, &r) != 0 || raft_bootstrap(r, ids, 3) != 0)
		abort();
	drain(r);
	if (!leader)
		return r;
	raft_campaign(r);
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_PREVOTE_RESP;
	m.from = 2;
	m.to = 1;
	m.term = 2;
	raft_step(r, &m);
	m.type = RAFT_MSG_VOTE_RESP;
	raft_step(r, &m);
	drain(r);
	raft_status(r, &st);
	if (st.role != RAFT_LEADER)
		abort();
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct raft_msg m;
	struct buf out = BUF_INIT;
	struct raft_status before, after;

	if (raft_msg_decode(data, size, &m) != 0)
		return 0;
	if (raft_msg_validate(&m) != 0)
		abort();
	for (size_t i = 0; i < m.n_entries; i++)
		check_inside(m.entries[i].data, m.entries[i].len, data, size);
	check_inside(m.snap_data, (size_t)m.snap_len, data, size);
	if (raft_msg_encoded_len(&m) != size || raft_msg_encode(&m, &out) != 0 ||
	    out.len != size || memcmp(out.data, data, size) != 0)
		abort();
	buf_free(&out);

	/* Readdress to member 1 of a {1, 2, 3} cluster and step it in. */
	m.to = 1;
	if (m.from == 1)
		m.from = 2;
	for (int leader = 0; leader < 2; leader++) {
		struct raft *r = member(leader != 0);

		raft_status(r, &before);
		raft_step(r, &m);
		drain(r);
		raft_status(r, &after);
		/* Whatever came in, terms and commits never go back. */
		if (after.term < before.term || after.commit < before.commit ||
		    after.applied > after.commit || after.commit > after.last_index)
			abort();
		raft_tick(r);
		drain(r);
		raft_free(r);
	}
	raft_msg_clear(&m);
	return 0;
}
