/*
 * Fuzz harness for the WAL decoder. The input is a 16-byte snapshot (u64
 * term, u64 index, little endian) followed by one segment image, replayed in
 * memory by wal_replay_image exactly as wal_open replays the last segment
 * (torn-tail detection included); shorter inputs are an image with no
 * snapshot. It checks what a caller relies on: on
 * success the entries run consecutively after the snapshot index and every
 * data pointer lies inside memory the replay owns; on failure there is a
 * message. It must never write files.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "corebox/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct wal_replay *rp, const struct wal_snapshot *snap)
{
	volatile uint8_t sink = 0;

	for (size_t i = 0; i < rp->n_entries; i++) {
		const struct wal_entry *e = &rp->entries[i];

		if (e->index != snap->index + 1 + i)
			abort();
		if (e->index > rp->last_index)
			abort();
		if (e->len > WAL_ENTRY_DATA_BYTES_MAX || (e->len > 0 && e->data == NULL))
			abort();
		/* Touch first and last byte: ASan catches a pointer outside the arena. */
		if (e->len > 0)
			sink ^= ((const uint8_t *)e->data)[0] ^ ((const uint8_t *)e->data)[e->len - 1];
	}
	if (rp->meta.len > WAL_METADATA_BYTES_MAX)
		abort();
	if (rp->snap.index > snap->index)
		abort();
	(void)sink;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wal_snapshot s0 = { 0, 0 };
	struct wal_replay rp;
	char msg[WAL_ERRMSG_BYTES];
	int rc;

	if (size >= 16) {
		for (int i = 7; i >= 0; i--) {
			s0.term = s0.term << 8 | data[i];
			s0.index = s0.index << 8 | data[8 + i];
		}
		data += 16;
		size -= 16;
	}
	rc = wal_replay_image(data, size, &s0, &rp, msg, sizeof(msg));
	if (rc != 0 && msg[0] == '\0')
		abort();
	if (rc == 0) {
		struct wal_snapshot mid;

		check(&rp, &s0);
		/* Again from a snapshot in the middle of the log, if there is one. */
		mid.index = rp.n_entries > 0 ? rp.entries[rp.n_entries / 2].index : rp.last_index;
		mid.term = rp.n_entries > 0 ? rp.entries[rp.n_entries / 2].term : rp.snap.term;
		wal_replay_free(&rp);
		rc = wal_replay_image(data, size, &mid, &rp, msg, sizeof(msg));
		if (rc == 0)
			check(&rp, &mid);
		else if (msg[0] == '\0')
			abort();
	}
	wal_replay_free(&rp);
	return 0;
}
