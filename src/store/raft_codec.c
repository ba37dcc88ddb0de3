/*
 * raft_codec: the wire encoding of raft messages (layout in raft.h) and the
 * shape checks every message passes before raft acts on it. Input is
 * hostile: every length is checked against what is left of the buffer
 * before anything is allocated or read, and a message that decodes has a
 * shape raft_step can rely on. It must never trust a length it has not
 * checked, never read past the input, and never do I/O.
 */
#include <stdint.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/le.h"
#include "corebox/mem.h"
#include "corebox/raft.h"
#include "raft_int.h"

const char *
raft_msg_type_name(uint32_t type)
{
	static const char *const names[] = {
		[RAFT_MSG_APP] = "MsgApp",
		[RAFT_MSG_APP_RESP] = "MsgAppResp",
		[RAFT_MSG_VOTE] = "MsgVote",
		[RAFT_MSG_VOTE_RESP] = "MsgVoteResp",
		[RAFT_MSG_PREVOTE] = "MsgPreVote",
		[RAFT_MSG_PREVOTE_RESP] = "MsgPreVoteResp",
		[RAFT_MSG_SNAP] = "MsgSnap",
		[RAFT_MSG_HEARTBEAT] = "MsgHeartbeat",
		[RAFT_MSG_HEARTBEAT_RESP] = "MsgHeartbeatResp",
		[RAFT_MSG_PROP] = "MsgProp",
		[RAFT_MSG_READ_INDEX] = "MsgReadIndex",
		[RAFT_MSG_READ_INDEX_RESP] = "MsgReadIndexResp",
		[RAFT_MSG_TIMEOUT_NOW] = "MsgTimeoutNow",
	};

	if (type == 0 || type > RAFT_MSG_TYPE_MAX)
		return "MsgUnknown";
	return names[type];
}

const char *
raft_role_name(uint32_t role)
{
	switch (role) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_PRECANDIDATE:
		return "pre-candidate";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	}
	return "unknown";
}

static bool
entry_valid(const struct raft_entry *e)
{
	struct raft_conf_change cc;

	if (e->len > RAFT_ENTRY_BYTES_MAX || (e->len > 0 && e->data == NULL))
		return false;
	if (e->type == RAFT_ENTRY_NORMAL)
		return true;
	if (e->type == RAFT_ENTRY_CONF)
		return raft_conf_decode(e->data, e->len, &cc) == 0;
	return false;
}

int
raft_msg_validate(const struct raft_msg *m)
{
	uint32_t allowed_flags = 0;

	if (m->type == 0 || m->type > RAFT_MSG_TYPE_MAX)
		return -ERR_PARSE;
	if (m->from == RAFT_NONE || m->to == RAFT_NONE)
		return -ERR_PARSE;
	if (m->term > RAFT_NUMBER_MAX || m->log_term > RAFT_NUMBER_MAX ||
	    m->index > RAFT_NUMBER_MAX || m->commit > RAFT_NUMBER_MAX ||
	    m->reject_hint > RAFT_NUMBER_MAX || m->snap.index > RAFT_NUMBER_MAX ||
	    m->n_entries > RAFT_NUMBER_MAX - m->index)
		return -ERR_PARSE;
	if (m->n_entries > RAFT_MSG_ENTRIES_MAX || (m->n_entries > 0 && m->entries == NULL))
		return -ERR_PARSE;
	switch (m->type) {
	case RAFT_MSG_APP_RESP:
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		allowed_flags = RAFT_MSG_F_REJECT;
		break;
	case RAFT_MSG_VOTE:
		allowed_flags = RAFT_MSG_F_TRANSFER;
		break;
	}
	if (m->flags & ~allowed_flags)
		return -ERR_PARSE;
	/* Forwarded proposals and reads are local requests: no term. */
	if (m->type == RAFT_MSG_PROP || m->type == RAFT_MSG_READ_INDEX) {
		if (m->term != 0)
			return -ERR_PARSE;
	} else if (m->term == 0) {
		return -ERR_PARSE;
	}
	if (m->type != RAFT_MSG_APP && m->type != RAFT_MSG_PROP && m->n_entries != 0)
		return -ERR_PARSE;
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];

		if (!entry_valid(e))
			return -ERR_PARSE;
		if (m->type == RAFT_MSG_PROP) {
			if (e->type != RAFT_ENTRY_NORMAL)
				return -ERR_PARSE;
			continue;
		}
		/* An append carries consecutive entries after (index, log_term),
		 * with terms that never decrease and never exceed the sender's. */
		if (e->index != m->index + 1 + i)
			return -ERR_PARSE;
		if (e->term > m->term || e->term < (i == 0 ? m->log_term : m->entries[i - 1].term))
			return -ERR_PARSE;
		if (e->term == 0)
			return -ERR_PARSE;
	}
	if (m->type == RAFT_MSG_APP && m->log_term > m->term)
		return -ERR_PARSE;
	if (m->type == RAFT_MSG_PROP && m->n_entries == 0)
		return -ERR_PARSE;
	if (m->type == RAFT_MSG_SNAP) {
		if (m->snap.index == 0 || m->snap.term == 0 || m->snap.term > m->term)
			return -ERR_PARSE;
		if (m->snap.conf.n == 0 || !raft_config_valid(&m->snap.conf))
			return -ERR_PARSE;
		if (m->snap_len > RAFT_SNAPSHOT_BYTES_MAX || (m->snap_len > 0 && m->snap_data == NULL))
			return -ERR_PARSE;
	}
	return 0;
}

size_t
raft_msg_encoded_len(const struct raft_msg *m)
{
	size_t n = RAFT_MSG_HEADER_BYTES;

	for (size_t i = 0; i < m->n_entries; i++)
		n += RAFT_WIRE_ENTRY_HEADER_BYTES + m->entries[i].len;
	if (m->type == RAFT_MSG_SNAP)
		n += 8 + 8 + 4 + 8u * m->snap.conf.n + 8 + (size_t)m->snap_len;
	return n;
}

int
raft_msg_encode(const struct raft_msg *m, struct buf *out)
{
	size_t len;
	uint8_t *p;
	int rc;

	if ((rc = raft_msg_validate(m)) != 0)
		return -ERR_INVAL;
	len = raft_msg_encoded_len(m);
	if ((rc = buf_reserve(out, len)) != 0)
		return rc;
	p = (uint8_t *)out->data + out->len;
	p[0] = RAFT_WIRE_VERSION;
	p[1] = (uint8_t)m->type;
	p[2] = (uint8_t)m->flags;
	p[3] = 0;
	le_put32(p + 4, (uint32_t)m->n_entries);
	le_put64(p + 8, m->from);
	le_put64(p + 16, m->to);
	le_put64(p + 24, m->term);
	le_put64(p + 32, m->log_term);
	le_put64(p + 40, m->index);
	le_put64(p + 48, m->commit);
	le_put64(p + 56, m->reject_hint);
	le_put64(p + 64, m->ctx);
	p += RAFT_MSG_HEADER_BYTES;
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];

		le_put64(p, e->term);
		le_put64(p + 8, e->index);
		p[16] = (uint8_t)e->type;
		p[17] = p[18] = p[19] = 0;
		le_put32(p + 20, e->len);
		p += RAFT_WIRE_ENTRY_HEADER_BYTES;
		if (e->len > 0)
			memcpy(p, e->data, e->len);
		p += e->len;
	}
	if (m->type == RAFT_MSG_SNAP) {
		le_put64(p, m->snap.index);
		le_put64(p + 8, m->snap.term);
		le_put32(p + 16, m->snap.conf.n);
		p += 20;
		for (uint32_t i = 0; i < m->snap.conf.n; i++, p += 8)
			le_put64(p, m->snap.conf.ids[i]);
		le_put64(p, m->snap_len);
		p += 8;
		if (m->snap_len > 0)
			memcpy(p, m->snap_data, (size_t)m->snap_len);
	}
	out->len += len;
	return 0;
}

int
raft_msg_decode(const void *data, size_t len, struct raft_msg *m)
{
	const uint8_t *p = data;
	size_t left;
	uint32_t n;
	int rc;

	memset(m, 0, sizeof(*m));
	if (p == NULL || len < RAFT_MSG_HEADER_BYTES)
		return -ERR_PARSE;
	if (p[0] != RAFT_WIRE_VERSION || p[1] == 0 || p[1] > RAFT_MSG_TYPE_MAX || p[3] != 0)
		return -ERR_PARSE;
	n = le_get32(p + 4);
	left = len - RAFT_MSG_HEADER_BYTES;
	/* Every entry needs at least its header: refuse counts the input cannot hold. */
	if (n > RAFT_MSG_ENTRIES_MAX || (size_t)n > left / RAFT_WIRE_ENTRY_HEADER_BYTES)
		return -ERR_PARSE;
	m->type = p[1];
	m->flags = p[2];
	m->from = le_get64(p + 8);
	m->to = le_get64(p + 16);
	m->term = le_get64(p + 24);
	m->log_term = le_get64(p + 32);
	m->index = le_get64(p + 40);
	m->commit = le_get64(p + 48);
	m->reject_hint = le_get64(p + 56);
	m->ctx = le_get64(p + 64);
	p += RAFT_MSG_HEADER_BYTES;
	if (n > 0) {
		m->entries = mem_calloc(n, sizeof(*m->entries));
		if (m->entries == NULL) {
			memset(m, 0, sizeof(*m));
			return -ERR_NOMEM;
		}
		m->n_entries = n;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct raft_entry *e = &m->entries[i];
		uint32_t elen;

		if (left < RAFT_WIRE_ENTRY_HEADER_BYTES)
			goto bad;
		e->term = le_get64(p);
		e->index = le_get64(p + 8);
		e->type = p[16];
		if (p[17] != 0 || p[18] != 0 || p[19] != 0)
			goto bad;
		elen = le_get32(p + 20);
		p += RAFT_WIRE_ENTRY_HEADER_BYTES;
		left -= RAFT_WIRE_ENTRY_HEADER_BYTES;
		if (elen > RAFT_ENTRY_BYTES_MAX || elen > left)
			goto bad;
		e->len = elen;
		e->data = elen > 0 ? p : NULL;
		p += elen;
		left -= elen;
	}
	if (m->type == RAFT_MSG_SNAP) {
		uint32_t members;
		uint64_t dlen;

		if (left < 20)
			goto bad;
		m->snap.index = le_get64(p);
		m->snap.term = le_get64(p + 8);
		members = le_get32(p + 16);
		p += 20;
		left -= 20;
		if (members > RAFT_MEMBERS_MAX || left < 8u * members + 8u)
			goto bad;
		m->snap.conf.n = members;
		for (uint32_t i = 0; i < members; i++, p += 8)
			m->snap.conf.ids[i] = le_get64(p);
		left -= 8u * members;
		dlen = le_get64(p);
		p += 8;
		left -= 8;
		if (dlen > RAFT_SNAPSHOT_BYTES_MAX || dlen != left)
			goto bad;
		m->snap_len = dlen;
		m->snap_data = dlen > 0 ? p : NULL;
		left = 0;
	}
	if (left != 0)
		goto bad;
	if ((rc = raft_msg_validate(m)) != 0)
		goto bad;
	return 0;
bad:
	raft_msg_clear(m);
	return -ERR_PARSE;
}

void
raft_msg_clear(struct raft_msg *m)
{
	for (size_t i = 0; i < m->n_entries; i++)
		raft_blob_unref(m->entries[i].blob_);
	mem_free(m->entries);
	raft_blob_unref(m->snap_blob_);
	memset(m, 0, sizeof(*m));
}
