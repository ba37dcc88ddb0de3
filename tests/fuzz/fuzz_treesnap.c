/*
 * Fuzz harness for the tree snapshot decoder (tree_snapshot_load): hostile
 * bytes must be rejected or yield a tree that behaves. A loaded tree is
 * saved again and reloaded (the hash must survive the round trip), listed,
 * written to and expired, so a decoder that admits a broken invariant
 * (duplicate names, bad depth, bad heap) crashes here under the sanitizers.
 */
#include <stdint.h>
#include <stdlib.h>

#include "corebox/buf.h"
#include "corebox/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tree *t = NULL, *u = NULL;
	struct buf b = BUF_INIT, j = BUF_INIT;
	struct tree_event gev, *ev = NULL;
	char msg[128];

	if (tree_snapshot_load(data, size, 1, NULL, &t, msg, sizeof(msg)) != 0)
		return 0;
	if (tree_snapshot_save(t, &b) != 0)
		abort();
	if (tree_snapshot_load(b.data, b.len, 2, NULL, &u, msg, sizeof(msg)) != 0)
		abort();
	if (tree_hash(t) != tree_hash(u) || tree_index(t) != tree_index(u))
		abort();
	if (tree_get(t, "/", 1, true, true, &gev, NULL) != 0)
		abort();
	if (tree_event_json(&j, &gev, 0) != 0)
		abort();
	if (tree_set(t, "/fuzz/k", 7, false, "v", 1, 0, false, &ev, NULL) == 0)
		tree_event_unref(ev);
	if (tree_delete_expired(t, INT64_MAX) < 0)
		abort();
	if (tree_delete(t, "/", 1, true, true, &ev, NULL) == 0)
		abort();
	buf_free(&b);
	buf_free(&j);
	tree_free(t);
	tree_free(u);
	return 0;
}
