/*
 * raft_log: the pieces of raft that hold data rather than decide: the
 * reference-counted blobs that entries and snapshots share with readies and
 * messages, the in-memory log (entries since the last compaction), and the
 * configuration-change entry codec. It keeps the log's invariants (indexes
 * consecutive after prev_index) and must never decide anything about terms,
 * votes or commits, and never do I/O.
 */
#include <stdint.h>
#include <string.h>

#include "corebox/err.h"
#include "corebox/le.h"
#include "corebox/mem.h"
#include "corebox/raft.h"
#include "raft_int.h"

/* Configuration entry layout: version, op, reserved u16, n, node, ids, ctx. */
#define CONF_VERSION 1u
#define CONF_FIXED_BYTES 16u

struct raft_blob *
raft_blob_new(const void *data, size_t len)
{
	struct raft_blob *b;

	if (len > SIZE_MAX - sizeof(*b))
		return NULL;
	b = mem_alloc(sizeof(*b) + len);
	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->len = len;
	if (len > 0)
		memcpy(b->data, data, len);
	return b;
}

struct raft_blob *
raft_blob_ref(struct raft_blob *b)
{
	if (b != NULL)
		b->refs++;
	return b;
}

void
raft_blob_unref(struct raft_blob *b)
{
	if (b == NULL)
		return;
	if (--b->refs == 0)
		mem_free(b);
}

void
raft_entry_release(struct raft_entry *e)
{
	raft_blob_unref(e->blob_);
	memset(e, 0, sizeof(*e));
}

int
raft_entry_copy(struct raft_entry *dst, const struct raft_entry *src)
{
	struct raft_blob *b = NULL;

	if (src->len > 0) {
		if (src->blob_ != NULL)
			b = raft_blob_ref(src->blob_);
		else if ((b = raft_blob_new(src->data, src->len)) == NULL)
			return -ERR_NOMEM;
	}
	dst->term = src->term;
	dst->index = src->index;
	dst->type = src->type;
	dst->len = src->len;
	dst->data = b != NULL ? b->data : NULL;
	dst->blob_ = b;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Configurations                                                      */
/* ------------------------------------------------------------------ */

bool
raft_config_has(const struct raft_config *c, uint64_t id)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->ids[i] == id)
			return true;
	return false;
}

bool
raft_config_valid(const struct raft_config *c)
{
	if (c->n > RAFT_MEMBERS_MAX)
		return false;
	for (uint32_t i = 0; i < c->n; i++) {
		if (c->ids[i] == RAFT_NONE)
			return false;
		if (i > 0 && c->ids[i] <= c->ids[i - 1])
			return false;
	}
	return true;
}

bool
raft_config_equal(const struct raft_config *a, const struct raft_config *b)
{
	if (a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n; i++)
		if (a->ids[i] != b->ids[i])
			return false;
	return true;
}

struct raft_blob *
raft_conf_encode(uint32_t op, uint64_t node, const struct raft_config *c,
    const void *ctx, size_t ctx_len)
{
	size_t len = CONF_FIXED_BYTES + 8u * c->n + 4u + ctx_len;
	struct raft_blob *b;
	uint8_t *p;

	if (ctx_len > RAFT_CONF_CTX_BYTES_MAX || !raft_config_valid(c))
		return NULL;
	b = mem_alloc(sizeof(*b) + len);
	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->len = len;
	p = b->data;
	p[0] = CONF_VERSION;
	p[1] = (uint8_t)op;
	p[2] = 0;
	p[3] = 0;
	le_put32(p + 4, c->n);
	le_put64(p + 8, node);
	p += CONF_FIXED_BYTES;
	for (uint32_t i = 0; i < c->n; i++, p += 8)
		le_put64(p, c->ids[i]);
	le_put32(p, (uint32_t)ctx_len);
	if (ctx_len > 0)
		memcpy(p + 4, ctx, ctx_len);
	return b;
}

int
raft_conf_decode(const void *data, size_t len, struct raft_conf_change *out)
{
	const uint8_t *p = data;
	uint32_t n, ctx_len;
	size_t need;

	memset(out, 0, sizeof(*out));
	if (p == NULL || len < CONF_FIXED_BYTES + 4u)
		return -ERR_PARSE;
	if (p[0] != CONF_VERSION || p[1] > RAFT_CONF_REMOVE || p[2] != 0 || p[3] != 0)
		return -ERR_PARSE;
	n = le_get32(p + 4);
	if (n > RAFT_MEMBERS_MAX)
		return -ERR_PARSE;
	need = CONF_FIXED_BYTES + 8u * n + 4u;
	if (len < need)
		return -ERR_PARSE;
	ctx_len = le_get32(p + need - 4);
	if (ctx_len > RAFT_CONF_CTX_BYTES_MAX || len != need + ctx_len)
		return -ERR_PARSE;
	out->op = p[1];
	out->node = le_get64(p + 8);
	out->conf.n = n;
	for (uint32_t i = 0; i < n; i++)
		out->conf.ids[i] = le_get64(p + CONF_FIXED_BYTES + 8u * i);
	out->ctx = ctx_len > 0 ? p + need : NULL;
	out->ctx_len = ctx_len;
	if (!raft_config_valid(&out->conf))
		return -ERR_PARSE;
	/* The change must agree with the configuration it produced. */
	switch (out->op) {
	case RAFT_CONF_BOOTSTRAP:
		if (out->node != RAFT_NONE || n == 0)
			return -ERR_PARSE;
		break;
	case RAFT_CONF_ADD:
		if (out->node == RAFT_NONE || !raft_config_has(&out->conf, out->node))
			return -ERR_PARSE;
		break;
	case RAFT_CONF_REMOVE:
		if (out->node == RAFT_NONE || raft_config_has(&out->conf, out->node) || n == 0)
			return -ERR_PARSE;
		break;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The in-memory log                                                   */
/* ------------------------------------------------------------------ */

uint64_t
raft_log_last_index(const struct raft *r)
{
	return r->prev_index + r->n_ents;
}

uint64_t
raft_log_last_term(const struct raft *r)
{
	return r->n_ents > 0 ? r->ents[r->n_ents - 1].term : r->prev_term;
}

int
raft_log_term(const struct raft *r, uint64_t index, uint64_t *term)
{
	if (index == r->prev_index) {
		*term = r->prev_term;
		return 0;
	}
	if (index < r->prev_index || index > raft_log_last_index(r)) {
		*term = 0;
		return -ERR_NOTFOUND;
	}
	*term = r->ents[index - r->prev_index - 1].term;
	return 0;
}

const struct raft_entry *
raft_log_entry(const struct raft *r, uint64_t index)
{
	if (index <= r->prev_index || index > raft_log_last_index(r))
		return NULL;
	return &r->ents[index - r->prev_index - 1];
}

int
raft_log_reserve(struct raft *r, size_t n)
{
	size_t cap;
	struct raft_entry *e;

	if (r->n_ents + n <= r->cap_ents)
		return 0;
	cap = r->cap_ents < 16 ? 16 : r->cap_ents;
	while (cap < r->n_ents + n)
		cap *= 2;
	e = mem_realloc(r->ents, cap * sizeof(*e));
	if (e == NULL)
		return -ERR_NOMEM;
	r->ents = e;
	r->cap_ents = cap;
	return 0;
}

int
raft_log_push(struct raft *r, const struct raft_entry *e)
{
	int rc;

	if ((rc = raft_log_reserve(r, 1)) != 0)
		return rc;
	if ((rc = raft_entry_copy(&r->ents[r->n_ents], e)) != 0)
		return rc;
	r->ents[r->n_ents].index = raft_log_last_index(r) + 1;
	r->n_ents++;
	return 0;
}

void
raft_log_truncate_after(struct raft *r, uint64_t index)
{
	while (raft_log_last_index(r) > index && r->n_ents > 0)
		raft_entry_release(&r->ents[--r->n_ents]);
	if (r->stable > index)
		r->stable = index;
}

/* Folds the configuration entries among ents[0..n) into base_conf. */
static void
fold_base_conf(struct raft *r, size_t n)
{
	struct raft_conf_change cc;

	for (size_t i = n; i-- > 0;) {
		if (r->ents[i].type != RAFT_ENTRY_CONF)
			continue;
		if (raft_conf_decode(r->ents[i].data, r->ents[i].len, &cc) == 0)
			r->base_conf = cc.conf;
		return;
	}
}

void
raft_log_drop_through(struct raft *r, uint64_t index)
{
	size_t n;

	if (index <= r->prev_index)
		return;
	if (index > raft_log_last_index(r))
		index = raft_log_last_index(r);
	n = (size_t)(index - r->prev_index);
	fold_base_conf(r, n);
	r->prev_term = r->ents[n - 1].term;
	r->prev_index = index;
	for (size_t i = 0; i < n; i++)
		raft_entry_release(&r->ents[i]);
	memmove(r->ents, r->ents + n, (r->n_ents - n) * sizeof(*r->ents));
	r->n_ents -= n;
}

void
raft_log_reset(struct raft *r, uint64_t index, uint64_t term)
{
	while (r->n_ents > 0)
		raft_entry_release(&r->ents[--r->n_ents]);
	r->prev_index = index;
	r->prev_term = term;
}

int
raft_log_conf_at(const struct raft *r, uint64_t index, struct raft_config *c, uint64_t *at)
{
	struct raft_conf_change cc;
	uint64_t last = raft_log_last_index(r);

	if (index > last)
		index = last;
	for (uint64_t i = index; i > r->prev_index; i--) {
		const struct raft_entry *e = &r->ents[i - r->prev_index - 1];

		if (e->type != RAFT_ENTRY_CONF)
			continue;
		/* Entries are validated before they enter the log. */
		if (raft_conf_decode(e->data, e->len, &cc) != 0)
			return -ERR_CORRUPT;
		*c = cc.conf;
		if (at != NULL)
			*at = i;
		return 0;
	}
	*c = r->base_conf;
	if (at != NULL)
		*at = 0;
	return 0;
}

bool
raft_log_refresh_conf(struct raft *r)
{
	struct raft_config c;
	uint64_t at = 0;
	bool changed;

	if (raft_log_conf_at(r, raft_log_last_index(r), &c, &at) != 0)
		return false;
	changed = !raft_config_equal(&c, &r->conf);
	r->conf = c;
	r->conf_index = at;
	return changed;
}
