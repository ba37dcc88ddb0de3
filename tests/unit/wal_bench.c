/*
 * wal_bench: how fast group commit is on this disk. Not a test: it prints
 * entries per second for wal_sync at batch sizes 1 and 64 (150-byte
 * entries, default 64 MiB preallocated segments) in both sync modes, and the
 * cost of one append (encode + CRC into the batch buffer).
 *
 *	wal_bench [DIR [SECONDS]]     default DIR /tmp, 2 seconds per case
 *
 * It writes only inside a fresh directory it makes under DIR and removes it.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "corebox/crc32c.h"
#include "corebox/wal.h"

#define ENTRY_BYTES 150

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[4200 + 300];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int
run(const char *base, enum wal_sync_mode mode, int batch, double secs)
{
	char root[4096], dir[4200];
	struct wal_options o;
	struct wal_metadata md = { 1, 1, NULL, 0 };
	struct wal_entry e[64];
	uint8_t data[ENTRY_BYTES];
	uint64_t index = 0, syncs = 0;
	double t0, t_append = 0, elapsed = 0;
	struct wal *w;

	snprintf(root, sizeof(root), "%s/wal-bench-XXXXXX", base);
	if (mkdtemp(root) == NULL) {
		perror(root);
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/wal", root);
	o.dir = dir;
	o.segment_bytes = 0;
	o.sync_mode = mode;
	w = wal_new(&o);
	if (w == NULL || wal_create(w, &md) != 0) {
		fprintf(stderr, "wal_bench: %s\n", w ? wal_errmsg(w) : "out of memory");
		wal_close(w);
		return 1;
	}
	memset(data, 'v', sizeof(data));
	t0 = now_s();
	do {
		double a = now_s();

		for (int i = 0; i < batch; i++) {
			e[i].index = ++index;
			e[i].term = 1;
			e[i].kind = 0;
			e[i].data = data;
			e[i].len = sizeof(data);
		}
		if (wal_append_entries(w, e, (size_t)batch) != 0) {
			fprintf(stderr, "wal_bench: %s\n", wal_errmsg(w));
			break;
		}
		t_append += now_s() - a;
		if (wal_sync(w, NULL) != 0) {
			fprintf(stderr, "wal_bench: %s\n", wal_errmsg(w));
			break;
		}
		syncs++;
	} while (now_s() - t0 < secs);
	elapsed = now_s() - t0;
	if (syncs == 0 || index == 0) {
		wal_close(w);
		return 1;
	}
	printf("%-6s batch %2d: %8.0f entries/s  %6.0f syncs/s  %6.1f us/sync  append %5.0f ns/entry\n",
	    mode == WAL_SYNC_THREAD ? "thread" : "inline", batch, (double)index / elapsed,
	    (double)syncs / elapsed, elapsed / (double)syncs * 1e6, t_append / (double)index * 1e9);
	wal_close(w);
	remove_dir(dir);
	rmdir(root);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *base = argc > 1 ? argv[1] : "/tmp";
	double secs = argc > 2 ? atof(argv[2]) : 2.0;
	int rc = 0;

	if (secs <= 0 || secs > 60) {
		fprintf(stderr, "usage: wal_bench [DIR [SECONDS (0-60)]]\n");
		return 2;
	}
	printf("wal_bench: %d-byte entries, %u MiB segments, crc32c %s, in %s\n", ENTRY_BYTES,
	    WAL_SEGMENT_BYTES_DEFAULT >> 20, crc32c_hw_available() ? "sse4.2" : "software", base);
	rc |= run(base, WAL_SYNC_INLINE, 1, secs);
	rc |= run(base, WAL_SYNC_INLINE, 64, secs);
	rc |= run(base, WAL_SYNC_THREAD, 1, secs);
	rc |= run(base, WAL_SYNC_THREAD, 64, secs);
	return rc;
}
