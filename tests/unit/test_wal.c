/* Unit tests for store/wal: round trips across segments in both sync modes,
 * torn tails at every byte of the last record, corruption anywhere else,
 * raft truncation, snapshot markers, release, locking, failpoints and
 * allocation failures. Every test works in its own directory under /tmp. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "corebox/crc32c.h"
#include "corebox/err.h"
#include "corebox/failpoint.h"
#include "corebox/mem.h"
#include "corebox/wal.h"

#define SEG_SMALL 4096u
#define DATA_LEN 150u
#define META "cluster-token-and-peer-urls"
#define META_LEN (sizeof(META) - 1)
/* Header records of a segment with META: segment, metadata, snapshot, hard state. */
#define HDR_BYTES (4 * 12 + 16 + 16 + META_LEN + 16 + 24)
#define ENTRY_REC_BYTES(len) (12 + 20 + (len))

struct tctx {
	char root[64];
	char dir[128];
};

static int
rm_rf(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	char sub[512];

	if (lstat(path, &st) != 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	d = opendir(path);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		rm_rf(sub);
	}
	closedir(d);
	return rmdir(path);
}

static int
setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->root, sizeof(t->root), "/tmp/corebox-wal-XXXXXX");
	if (mkdtemp(t->root) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->dir, sizeof(t->dir), "%s/member/wal", t->root);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tctx *t = *state;

	mem_fail_reset();
	failpoint_configure(NULL);
	rm_rf(t->root);
	free(t);
	return 0;
}

static void
fill(uint8_t *b, size_t n, uint64_t index, uint64_t term)
{
	uint64_t x = index * 0x9e3779b97f4a7c15ull ^ term;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)x;
	}
}

static struct wal *
new_wal(const char *dir, uint64_t seg, enum wal_sync_mode mode)
{
	struct wal_options o = { dir, seg, mode };
	struct wal *w = wal_new(&o);

	assert_non_null(w);
	return w;
}

static struct wal *
create_wal(const char *dir, uint64_t seg, enum wal_sync_mode mode)
{
	struct wal *w = new_wal(dir, seg, mode);
	struct wal_metadata md = { 7, 9, META, META_LEN };
	int rc = wal_create(w, &md);

	if (rc != 0)
		print_error("%s\n", wal_errmsg(w));
	assert_int_equal(rc, 0);
	return w;
}

static struct wal *
open_wal(const char *dir, uint64_t seg, enum wal_sync_mode mode, uint64_t sterm, uint64_t sindex,
    struct wal_replay *rp)
{
	struct wal *w = new_wal(dir, seg, mode);
	struct wal_snapshot s = { sterm, sindex };
	int rc = wal_open(w, &s, rp);

	if (rc != 0)
		print_error("%s\n", wal_errmsg(w));
	assert_int_equal(rc, 0);
	return w;
}

/* Opening must fail with want; returns the message in msg. */
static void
open_fails(const char *dir, uint64_t sterm, uint64_t sindex, int want, char *msg, size_t n)
{
	struct wal *w = new_wal(dir, SEG_SMALL, WAL_SYNC_INLINE);
	struct wal_snapshot s = { sterm, sindex };
	struct wal_replay rp;
	int rc = wal_open(w, &s, &rp);

	if (rc != want)
		print_error("rc %d (%s): %s\n", rc, err_str(rc), wal_errmsg(w));
	assert_int_equal(rc, want);
	assert_true(wal_errmsg(w)[0] != '\0');
	if (msg != NULL)
		snprintf(msg, n, "%s", wal_errmsg(w));
	wal_replay_free(&rp);
	wal_close(w);
}

static void
append_range(struct wal *w, uint64_t from, uint64_t to, uint64_t term, size_t len)
{
	uint8_t b[4096];

	assert_true(len <= sizeof(b));
	for (uint64_t i = from; i <= to; i++) {
		struct wal_entry e = { i, term, (uint32_t)(i % 3), b, len };

		fill(b, len, i, term);
		assert_int_equal(wal_append_entries(w, &e, 1), 0);
	}
}

/* The replay must hold exactly from..to, with the given term for each index. */
static void
check_entries(const struct wal_replay *rp, uint64_t from, uint64_t to,
    uint64_t (*term_of)(uint64_t), size_t len)
{
	uint8_t b[4096];

	assert_int_equal(rp->n_entries, to >= from ? to - from + 1 : 0);
	for (size_t k = 0; k < rp->n_entries; k++) {
		const struct wal_entry *e = &rp->entries[k];
		uint64_t i = from + k;

		assert_int_equal(e->index, i);
		assert_int_equal(e->term, term_of(i));
		assert_int_equal(e->kind, i % 3);
		assert_int_equal(e->len, len);
		fill(b, len, i, term_of(i));
		assert_memory_equal(e->data, b, len);
	}
}

static uint64_t
term1(uint64_t i)
{
	(void)i;
	return 1;
}

static int
count_segments(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += wal_segment_name_parse(e->d_name, NULL, NULL) == 0;
	closedir(d);
	return n;
}

/* Name of the k-th segment in sequence order (k counted from the oldest present). */
static void
segment_path(const char *dir, int k, char *out, size_t n)
{
	char names[64][WAL_NAME_BYTES];
	int cnt = 0;
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (wal_segment_name_parse(e->d_name, NULL, NULL) == 0 && cnt < 64)
			memcpy(names[cnt++], e->d_name, 38);
	closedir(d);
	qsort(names, (size_t)cnt, WAL_NAME_BYTES, (int (*)(const void *, const void *))strcmp);
	if (k < 0)
		k += cnt;
	assert_true(k >= 0 && k < cnt);
	snprintf(out, n, "%s/%s", dir, names[k]);
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	uint8_t *b;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void
write_file(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
}

static void
flip_bit(const char *path, size_t off, int bit)
{
	size_t len;
	uint8_t *b = read_file(path, &len);

	assert_true(off < len);
	b[off] ^= (uint8_t)(1u << bit);
	write_file(path, b, len);
	free(b);
}

static void
test_names(void **state)
{
	char buf[WAL_NAME_BYTES];
	uint64_t a, b;

	(void)state;
	wal_segment_name_format(buf, 1, 0x2a);
	assert_string_equal(buf, "0000000000000001-000000000000002a.wal");
	assert_int_equal(wal_segment_name_parse(buf, &a, &b), 0);
	assert_int_equal(a, 1);
	assert_int_equal(b, 0x2a);
	wal_segment_name_format(buf, UINT64_MAX, UINT64_MAX);
	assert_int_equal(wal_segment_name_parse(buf, &a, &b), 0);
	assert_true(a == UINT64_MAX && b == UINT64_MAX);
	assert_int_equal(wal_segment_name_parse("0000000000000001-000000000000002A.wal", NULL, NULL), -ERR_PARSE);
	assert_int_equal(wal_segment_name_parse("0000000000000001-000000000000002a.wal.tmp", NULL, NULL), -ERR_PARSE);
	assert_int_equal(wal_segment_name_parse("000000000000001-000000000000002a.wal", NULL, NULL), -ERR_PARSE);
	assert_int_equal(wal_segment_name_parse("0000000000000001_000000000000002a.wal", NULL, NULL), -ERR_PARSE);
	assert_int_equal(wal_segment_name_parse(NULL, NULL, NULL), -ERR_PARSE);
}

static void
test_bad_options(void **state)
{
	struct wal_options o = { NULL, 0, WAL_SYNC_INLINE };

	(void)state;
	assert_null(wal_new(&o));
	assert_null(wal_new(NULL));
	o.dir = "/tmp/x";
	o.segment_bytes = WAL_SEGMENT_BYTES_MIN - 1;
	assert_null(wal_new(&o));
	o.segment_bytes = 0;
	o.sync_mode = (enum wal_sync_mode)7;
	assert_null(wal_new(&o));
	wal_close(NULL);
}

static void
test_create_open_empty(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal *w;
	char path[256];
	struct stat st;

	assert_int_equal(wal_exists(t->dir), 0);
	w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);
	assert_string_equal(wal_segment_name(w), "0000000000000000-0000000000000000.wal");
	assert_int_equal(wal_last_index(w), 0);
	wal_close(w);
	assert_int_equal(wal_exists(t->dir), 1);
	/* Preallocated to the segment size. */
	snprintf(path, sizeof(path), "%s/0000000000000000-0000000000000000.wal", t->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, SEG_SMALL);
	/* No temp dir left behind. */
	snprintf(path, sizeof(path), "%s.tmp", t->dir);
	assert_int_not_equal(stat(path, &st), 0);

	w = new_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);
	{
		struct wal_metadata md = { 1, 2, NULL, 0 };

		assert_int_equal(wal_create(w, &md), -ERR_EXIST);
	}
	wal_close(w);

	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	assert_int_equal(rp.meta.node_id, 7);
	assert_int_equal(rp.meta.cluster_id, 9);
	assert_int_equal(rp.meta.len, META_LEN);
	assert_memory_equal(rp.meta.data, META, META_LEN);
	assert_int_equal(rp.hs.term, 0);
	assert_int_equal(rp.n_entries, 0);
	assert_int_equal(rp.snap.index, 0);
	assert_int_equal(rp.last_index, 0);
	assert_int_equal(rp.torn, 0);
	assert_string_equal(rp.notice, "");
	assert_int_equal(wal_pending_bytes(w), 0);
	wal_replay_free(&rp);
	wal_close(w);
}

static void
test_create_in_premade_dir(void **state)
{
	struct tctx *t = *state;
	char parent[160];
	struct wal *w;

	/* --wal-dir made by the administrator, empty: accepted. */
	snprintf(parent, sizeof(parent), "%s/member", t->root);
	assert_int_equal(mkdir(parent, 0700), 0);
	assert_int_equal(mkdir(t->dir, 0700), 0);
	w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);
	wal_close(w);
	assert_int_equal(count_segments(t->dir), 1);
}

static void
test_create_in_nonempty_dir(void **state)
{
	struct tctx *t = *state;
	char path[256];
	struct wal *w;
	struct wal_metadata md = { 1, 2, NULL, 0 };

	snprintf(path, sizeof(path), "%s/member", t->root);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(mkdir(t->dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/unrelated", t->dir);
	write_file(path, (const uint8_t *)"x", 1);
	w = new_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);
	assert_int_equal(wal_create(w, &md), -ERR_EXIST);
	assert_non_null(strstr(wal_errmsg(w), "rename"));
	wal_close(w);
	/* Nothing was touched. */
	assert_int_equal(count_segments(t->dir), 0);
	assert_int_equal(access(path, F_OK), 0);
}

static void
round_trip(struct tctx *t, enum wal_sync_mode mode)
{
	struct wal_replay rp;
	struct wal_hardstate hs;
	uint64_t durable = 0;
	struct wal *w = create_wal(t->dir, SEG_SMALL, mode);

	for (uint64_t i = 1; i <= 200; i += 10) {
		append_range(w, i, i + 9, 1, DATA_LEN);
		hs = (struct wal_hardstate){ 1, 3, i };
		assert_int_equal(wal_set_hardstate(w, &hs), 0);
		assert_int_equal(wal_sync(w, &durable), 0);
		assert_int_equal(durable, i + 9);
		assert_int_equal(wal_durable_index(w), i + 9);
		assert_int_equal(wal_pending_bytes(w), 0);
	}
	/* A sync with nothing buffered does nothing and still reports. */
	assert_int_equal(wal_sync(w, &durable), 0);
	assert_int_equal(durable, 200);
	wal_close(w);
	assert_true(count_segments(t->dir) >= 8);

	w = open_wal(t->dir, SEG_SMALL, mode, 0, 0, &rp);
	check_entries(&rp, 1, 200, term1, DATA_LEN);
	assert_int_equal(rp.hs.term, 1);
	assert_int_equal(rp.hs.vote, 3);
	assert_int_equal(rp.hs.commit, 191);
	assert_int_equal(rp.last_index, 200);
	assert_int_equal(rp.meta.node_id, 7);
	assert_int_equal(wal_last_index(w), 200);
	assert_int_equal(wal_durable_index(w), 200);
	wal_replay_free(&rp);
	/* Appending continues after reopen. */
	append_range(w, 201, 230, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, &durable), 0);
	assert_int_equal(durable, 230);
	wal_close(w);

	w = open_wal(t->dir, SEG_SMALL, mode, 0, 0, &rp);
	check_entries(&rp, 1, 230, term1, DATA_LEN);
	assert_int_equal(rp.hs.commit, 191);
	wal_replay_free(&rp);
	wal_close(w);
}

static void
test_round_trip_inline(void **state)
{
	round_trip(*state, WAL_SYNC_INLINE);
}

static void
test_round_trip_thread(void **state)
{
	round_trip(*state, WAL_SYNC_THREAD);
}

static void
test_one_batch_many_segments(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	uint64_t durable;
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	/* One sync whose batch spans several cuts. */
	append_range(w, 1, 150, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, &durable), 0);
	assert_int_equal(durable, 150);
	wal_close(w);
	assert_true(count_segments(t->dir) >= 6);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	check_entries(&rp, 1, 150, term1, DATA_LEN);
	wal_replay_free(&rp);
	wal_close(w);
}

static void
test_oversize_record(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	static uint8_t big[3 * SEG_SMALL];
	struct wal_entry e = { 2, 1, 0, big, sizeof(big) };
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	append_range(w, 1, 1, 1, DATA_LEN);
	fill(big, sizeof(big), 2, 1);
	assert_int_equal(wal_append_entries(w, &e, 1), 0);
	append_range(w, 3, 3, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	assert_int_equal(rp.n_entries, 3);
	assert_int_equal(rp.entries[1].len, sizeof(big));
	assert_memory_equal(rp.entries[1].data, big, sizeof(big));
	wal_replay_free(&rp);
	wal_close(w);
}

static void
test_append_validation(void **state)
{
	struct tctx *t = *state;
	uint8_t b[8] = { 0 };
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);
	struct wal_entry e[3] = { { 1, 1, 0, b, 8 }, { 2, 1, 0, b, 8 }, { 4, 1, 0, b, 8 } };
	struct wal_entry gap = { 3, 1, 0, b, 8 }, zero = { 0, 1, 0, b, 8 };
	struct wal_entry nodata = { 1, 1, 0, NULL, 8 };
	struct wal_entry huge = { 1, 1, 0, b, (size_t)WAL_ENTRY_DATA_BYTES_MAX + 1 };
	struct wal_entry empty = { 1, 1, 0, NULL, 0 };

	/* A batch with a hole buffers nothing at all. */
	assert_int_equal(wal_append_entries(w, e, 3), -ERR_INVAL);
	assert_int_equal(wal_pending_bytes(w), 0);
	assert_int_equal(wal_last_index(w), 0);
	assert_int_equal(wal_append_entries(w, &gap, 1), -ERR_INVAL);
	assert_non_null(strstr(wal_errmsg(w), "does not follow"));
	assert_int_equal(wal_append_entries(w, &zero, 1), -ERR_INVAL);
	assert_int_equal(wal_append_entries(w, &nodata, 1), -ERR_INVAL);
	assert_int_equal(wal_append_entries(w, &huge, 1), -ERR_LIMIT);
	assert_int_equal(wal_append_entries(w, NULL, 1), -ERR_INVAL);
	assert_int_equal(wal_append_entries(w, NULL, 0), 0);
	assert_int_equal(wal_set_hardstate(w, NULL), -ERR_INVAL);
	assert_int_equal(wal_save_snapshot(w, NULL), -ERR_INVAL);
	assert_int_equal(wal_pending_bytes(w), 0);
	/* Empty data is fine. */
	assert_int_equal(wal_append_entries(w, &empty, 1), 0);
	assert_int_equal(wal_pending_bytes(w), ENTRY_REC_BYTES(0));
	assert_int_equal(wal_append_entries(w, e, 2), 0);
	assert_int_equal(wal_last_index(w), 2);
	/* Inline mode has no thread calls. */
	assert_int_equal(wal_sync_start(w), -ERR_STATE);
	assert_int_equal(wal_sync_done(w, NULL), -ERR_STATE);
	assert_int_equal(wal_sync_fd(w), -1);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
}

static void
test_hardstate_dedup(void **state)
{
	struct tctx *t = *state;
	struct wal_hardstate hs = { 2, 1, 0 };
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);
	size_t n;

	assert_int_equal(wal_set_hardstate(w, &hs), 0);
	n = wal_pending_bytes(w);
	assert_int_equal(n, 12 + 24);
	assert_int_equal(wal_set_hardstate(w, &hs), 0);
	assert_int_equal(wal_pending_bytes(w), n);
	hs.commit = 1;
	assert_int_equal(wal_set_hardstate(w, &hs), 0);
	assert_int_equal(wal_pending_bytes(w), 2 * n);
	wal_close(w);
}

static uint64_t
term_trunc(uint64_t i)
{
	return i <= 5 ? 1 : i <= 8 ? 2 : 3;
}

static void
test_truncation_overwrite(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	uint64_t durable;
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	append_range(w, 1, 40, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	/* A new leader overwrites from 6 on; the entries were in earlier segments. */
	append_range(w, 6, 12, 2, DATA_LEN);
	assert_int_equal(wal_sync(w, &durable), 0);
	assert_int_equal(durable, 12);
	assert_int_equal(wal_last_index(w), 12);
	/* And again from 9, in the same batch as more appends. */
	append_range(w, 9, 9, 3, DATA_LEN);
	append_range(w, 10, 20, 3, DATA_LEN);
	assert_int_equal(wal_sync(w, &durable), 0);
	assert_int_equal(durable, 20);
	wal_close(w);

	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	check_entries(&rp, 1, 20, term_trunc, DATA_LEN);
	assert_int_equal(rp.last_index, 20);
	wal_replay_free(&rp);
	/* Cutting after a truncation names the segment from the truncated log. */
	append_range(w, 21, 80, 3, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	check_entries(&rp, 1, 80, term_trunc, DATA_LEN);
	wal_replay_free(&rp);
	wal_close(w);
}

static uint64_t
term2(uint64_t i)
{
	(void)i;
	return 2;
}

static void
test_truncation_below_snapshot(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal_snapshot s5 = { 1, 5 };
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	/*
	 * A rewrite that starts at or below the snapshot index drops every
	 * entry already delivered after it (6..10 of term 1 here).
	 */
	append_range(w, 1, 10, 1, DATA_LEN);
	assert_int_equal(wal_save_snapshot(w, &s5), 0);
	append_range(w, 4, 12, 2, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 1, 5, &rp);
	check_entries(&rp, 6, 12, term2, DATA_LEN);
	assert_int_equal(rp.last_index, 12);
	wal_replay_free(&rp);
	wal_close(w);
}

/* Offsets (in the only segment) of the records written by torn_setup. */
static size_t
torn_setup(struct tctx *t, size_t *last_start, size_t *end)
{
	struct wal *w = create_wal(t->dir, 16384, WAL_SYNC_INLINE);
	struct wal_hardstate hs = { 1, 1, 4 };

	append_range(w, 1, 5, 1, DATA_LEN);
	assert_int_equal(wal_set_hardstate(w, &hs), 0);
	append_range(w, 6, 6, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	*last_start = HDR_BYTES + 5 * ENTRY_REC_BYTES(DATA_LEN) + 12 + 24;
	*end = *last_start + ENTRY_REC_BYTES(DATA_LEN);
	return 16384;
}

static void
torn_case(struct tctx *t, const char *path, const uint8_t *orig, size_t flen,
    size_t k, size_t last_start, int garbage)
{
	uint8_t *img = malloc(flen);
	struct wal_replay rp;
	struct wal *w;
	uint64_t durable;
	char want[200];

	assert_non_null(img);
	memcpy(img, orig, flen);
	/* Everything from k to the end of the record is lost or garbage. */
	for (size_t i = k; i < last_start + ENTRY_REC_BYTES(DATA_LEN); i++)
		img[i] = garbage ? (uint8_t)(i * 131 + 7) : 0;
	write_file(path, img, flen);
	free(img);

	w = open_wal(t->dir, 16384, WAL_SYNC_INLINE, 0, 0, &rp);
	check_entries(&rp, 1, 5, term1, DATA_LEN);
	assert_int_equal(rp.hs.commit, 4);
	if (k == last_start && !garbage) {
		/* The whole record missing is a clean end. */
		assert_int_equal(rp.torn, 0);
	} else {
		assert_int_equal(rp.torn, 1);
		assert_int_equal(rp.torn_offset, last_start);
		assert_string_equal(rp.torn_file, "0000000000000000-0000000000000000.wal");
		snprintf(want, sizeof(want), "wal: truncated torn tail at offset %zu in %s",
		    last_start, "0000000000000000-0000000000000000.wal");
		assert_string_equal(rp.notice, want);
	}
	wal_replay_free(&rp);
	/* Later appends land where the torn record was. */
	append_range(w, 6, 7, 4, DATA_LEN);
	assert_int_equal(wal_sync(w, &durable), 0);
	assert_int_equal(durable, 7);
	wal_close(w);
	w = open_wal(t->dir, 16384, WAL_SYNC_INLINE, 0, 0, &rp);
	assert_int_equal(rp.torn, 0);
	assert_int_equal(rp.n_entries, 7);
	assert_int_equal(rp.entries[5].term, 4);
	assert_int_equal(rp.entries[6].index, 7);
	wal_replay_free(&rp);
	wal_close(w);
}

static void
test_torn_tail_every_offset(void **state)
{
	struct tctx *t = *state;
	size_t last_start, end, flen;
	char path[256];
	uint8_t *orig;

	torn_setup(t, &last_start, &end);
	segment_path(t->dir, 0, path, sizeof(path));
	orig = read_file(path, &flen);
	/* The arithmetic matches the file: zeros after the end, data before. */
	assert_int_equal(orig[end], 0);
	assert_int_not_equal(orig[end - 1] | orig[end - 2] | orig[end - 3], 0);
	for (size_t k = last_start; k < end; k++)
		torn_case(t, path, orig, flen, k, last_start, 0);
	free(orig);
}

static void
test_torn_tail_garbage(void **state)
{
	struct tctx *t = *state;
	size_t last_start, end, flen;
	char path[256];
	uint8_t *orig;

	torn_setup(t, &last_start, &end);
	segment_path(t->dir, 0, path, sizeof(path));
	orig = read_file(path, &flen);
	for (size_t k = last_start; k < end; k += 5)
		torn_case(t, path, orig, flen, k, last_start, 1);
	free(orig);
}

static void
test_torn_tail_zeroed_after_truncation(void **state)
{
	struct tctx *t = *state;
	size_t last_start, end, flen;
	char path[256];
	uint8_t *img;
	struct wal_replay rp;
	struct wal *w;

	torn_setup(t, &last_start, &end);
	segment_path(t->dir, 0, path, sizeof(path));
	img = read_file(path, &flen);
	img[last_start + 40] ^= 0x10;
	write_file(path, img, flen);
	free(img);
	w = open_wal(t->dir, 16384, WAL_SYNC_INLINE, 0, 0, &rp);
	assert_int_equal(rp.torn, 1);
	wal_replay_free(&rp);
	wal_close(w);
	/* The torn bytes are gone from the file, which keeps its preallocated size. */
	img = read_file(path, &flen);
	assert_int_equal(flen, 16384);
	for (size_t i = last_start; i < flen; i++)
		assert_int_equal(img[i], 0);
	free(img);
}

static void
test_bitflip_earlier_segment(void **state)
{
	struct tctx *t = *state;
	char path[256], msg[WAL_ERRMSG_BYTES], want[160];
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);
	size_t len0, len1, off = HDR_BYTES + 2 * ENTRY_REC_BYTES(DATA_LEN) + 50;
	uint8_t *before, *after;

	append_range(w, 1, 100, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	assert_true(count_segments(t->dir) >= 3);
	segment_path(t->dir, 1, path, sizeof(path));
	flip_bit(path, off, 3);
	before = read_file(path, &len0);
	open_fails(t->dir, 0, 0, -ERR_CORRUPT, msg, sizeof(msg));
	snprintf(want, sizeof(want), "wal: bad crc in %s at offset %zu",
	    strrchr(path, '/') + 1, HDR_BYTES + 2 * ENTRY_REC_BYTES(DATA_LEN));
	assert_string_equal(msg, want);
	/* Nothing was repaired or truncated. */
	after = read_file(path, &len1);
	assert_int_equal(len0, len1);
	assert_memory_equal(before, after, len0);
	free(before);
	free(after);
}

static void
test_bitflip_in_header_field(void **state)
{
	struct tctx *t = *state;
	char path[256], msg[WAL_ERRMSG_BYTES];
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	append_range(w, 1, 60, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	/* A flipped length byte in an earlier segment: a structural error. */
	segment_path(t->dir, 0, path, sizeof(path));
	flip_bit(path, HDR_BYTES + ENTRY_REC_BYTES(DATA_LEN) + 5, 6);
	open_fails(t->dir, 0, 0, -ERR_CORRUPT, msg, sizeof(msg));
	{
		char want[160];

		snprintf(want, sizeof(want), "wal: incomplete record in %s at offset %zu",
		    strrchr(path, '/') + 1, HDR_BYTES + ENTRY_REC_BYTES(DATA_LEN));
		assert_string_equal(msg, want);
	}
}

static void
test_bitflip_last_segment_followed_by_valid(void **state)
{
	struct tctx *t = *state;
	char path[256], msg[WAL_ERRMSG_BYTES];
	struct wal *w = create_wal(t->dir, 16384, WAL_SYNC_INLINE);
	size_t rec3 = HDR_BYTES + 2 * ENTRY_REC_BYTES(DATA_LEN);

	append_range(w, 1, 6, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	segment_path(t->dir, -1, path, sizeof(path));
	/* Payload byte of entry 3: later records are intact. */
	flip_bit(path, rec3 + 100, 0);
	open_fails(t->dir, 0, 0, -ERR_CORRUPT, msg, sizeof(msg));
	assert_non_null(strstr(msg, "bad crc"));
	assert_non_null(strstr(msg, "followed by a valid record"));
	{
		char want[64];

		snprintf(want, sizeof(want), "at offset %zu ", rec3);
		assert_non_null(strstr(msg, want));
	}
	/* Restore, then break the length field instead: the scan still finds entry 4. */
	flip_bit(path, rec3 + 100, 0);
	flip_bit(path, rec3 + 5, 2);
	open_fails(t->dir, 0, 0, -ERR_CORRUPT, msg, sizeof(msg));
	assert_non_null(strstr(msg, "followed by a valid record"));
}

static void
test_header_record_damage(void **state)
{
	struct tctx *t = *state;
	char path[256], msg[WAL_ERRMSG_BYTES];
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	wal_close(w);
	segment_path(t->dir, 0, path, sizeof(path));
	/* Even in the last segment, a damaged segment record is not a torn tail. */
	flip_bit(path, 14, 1);
	open_fails(t->dir, 0, 0, -ERR_CORRUPT, msg, sizeof(msg));
	assert_non_null(strstr(msg, "at offset 0"));
}

static void
test_sequence_gap_and_names(void **state)
{
	struct tctx *t = *state;
	char path[256], path2[256], msg[WAL_ERRMSG_BYTES];
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	append_range(w, 1, 100, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	assert_true(count_segments(t->dir) >= 4);
	/* A segment renamed to another first index: its record disagrees. */
	segment_path(t->dir, -1, path, sizeof(path));
	{
		uint64_t seq, first;

		assert_int_equal(wal_segment_name_parse(strrchr(path, '/') + 1, &seq, &first), 0);
		snprintf(path2, sizeof(path2), "%s/", t->dir);
		wal_segment_name_format(path2 + strlen(path2), seq, first + 1);
	}
	assert_int_equal(rename(path, path2), 0);
	open_fails(t->dir, 0, 0, -ERR_CORRUPT, msg, sizeof(msg));
	assert_non_null(strstr(msg, "does not match its name"));
	assert_int_equal(rename(path2, path), 0);
	/* A missing middle segment. */
	segment_path(t->dir, 1, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	open_fails(t->dir, 0, 0, -ERR_CORRUPT, msg, sizeof(msg));
	assert_non_null(strstr(msg, "does not follow"));
}

static void
test_index_continuity(void **state)
{
	struct tctx *t = *state;
	char msg[WAL_ERRMSG_BYTES];
	uint8_t *img;
	size_t len;
	char path[256];
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	append_range(w, 1, 50, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	/* Drop the last entry of segment 0: segment 1 then starts after a gap. */
	segment_path(t->dir, 0, path, sizeof(path));
	img = read_file(path, &len);
	assert_true(len > ENTRY_REC_BYTES(DATA_LEN));
	assert_int_equal(truncate(path, (off_t)(len - ENTRY_REC_BYTES(DATA_LEN))), 0);
	free(img);
	open_fails(t->dir, 0, 0, -ERR_CORRUPT, msg, sizeof(msg));
	assert_non_null(strstr(msg, "previous segment ends"));
}

static void
test_snapshot_marker_replay(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal_snapshot s30 = { 1, 30 };
	char msg[WAL_ERRMSG_BYTES], path[256];
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);
	size_t pend;

	append_range(w, 1, 50, 1, DATA_LEN);
	assert_int_equal(wal_save_snapshot(w, &s30), 0);
	append_range(w, 51, 120, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);

	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 1, 30, &rp);
	check_entries(&rp, 31, 120, term1, DATA_LEN);
	assert_int_equal(rp.snap.term, 1);
	assert_int_equal(rp.snap.index, 30);
	assert_int_equal(wal_pending_bytes(w), 0);
	wal_replay_free(&rp);
	wal_close(w);

	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	check_entries(&rp, 1, 120, term1, DATA_LEN);
	assert_int_equal(rp.snap.index, 0);
	wal_replay_free(&rp);
	wal_close(w);

	/* Same index, other term: the snapshot is not this log's. */
	open_fails(t->dir, 2, 30, -ERR_CORRUPT, msg, sizeof(msg));
	assert_non_null(strstr(msg, "does not match snapshot term"));

	/* A snapshot file newer than its marker: start at the latest marker before it. */
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 1, 100, &rp);
	check_entries(&rp, 101, 120, term1, DATA_LEN);
	assert_int_equal(rp.snap.index, 30);
	/* ...and the missing marker is added. */
	pend = wal_pending_bytes(w);
	assert_int_equal(pend, 12 + 16);
	wal_replay_free(&rp);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 1, 100, &rp);
	assert_int_equal(rp.snap.index, 100);
	assert_int_equal(wal_pending_bytes(w), 0);
	wal_replay_free(&rp);
	wal_close(w);

	/* Replay from a snapshot never reads the segments before it. */
	segment_path(t->dir, 0, path, sizeof(path));
	flip_bit(path, HDR_BYTES + 10, 0);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 1, 100, &rp);
	check_entries(&rp, 101, 120, term1, DATA_LEN);
	wal_replay_free(&rp);
	wal_close(w);
	open_fails(t->dir, 0, 0, -ERR_CORRUPT, NULL, 0);
}

static void
test_snapshot_install_jump(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal_snapshot s = { 5, 100 };
	char msg[WAL_ERRMSG_BYTES];
	uint64_t durable;
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	/* A follower at 10 installs a leader's snapshot at 100 and goes on from 101. */
	append_range(w, 1, 10, 1, DATA_LEN);
	assert_int_equal(wal_save_snapshot(w, &s), 0);
	assert_int_equal(wal_last_index(w), 100);
	assert_int_equal(wal_sync(w, &durable), 0);
	assert_int_equal(durable, 100);
	/* Too big for what is left: the next segment is named after the marker. */
	append_range(w, 101, 101, 5, 4000);
	append_range(w, 102, 105, 5, DATA_LEN);
	assert_int_equal(wal_sync(w, &durable), 0);
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/0000000000000001-0000000000000065.wal", t->dir);
		assert_int_equal(access(path, F_OK), 0);
	}
	assert_string_equal(wal_segment_name(w), "0000000000000002-0000000000000066.wal");
	assert_int_equal(wal_sync(w, &durable), 0);
	assert_int_equal(durable, 105);
	wal_close(w);

	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 5, 100, &rp);
	assert_int_equal(rp.n_entries, 5);
	assert_int_equal(rp.entries[0].index, 101);
	assert_int_equal(rp.entries[0].len, 4000);
	assert_int_equal(rp.last_index, 105);
	wal_replay_free(&rp);
	wal_close(w);
	/* Without that snapshot the log has a hole: refuse. */
	open_fails(t->dir, 0, 0, -ERR_NOTFOUND, msg, sizeof(msg));
	assert_non_null(strstr(msg, "skips entries after 10"));
}

static void
test_snapshot_file_ahead_of_log(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	/* Crash between saving snapshot 20 and writing its marker, log at 10. */
	append_range(w, 1, 10, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 2, 20, &rp);
	assert_int_equal(rp.n_entries, 0);
	assert_int_equal(rp.last_index, 20);
	assert_int_equal(wal_last_index(w), 20);
	wal_replay_free(&rp);
	append_range(w, 21, 22, 2, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 2, 20, &rp);
	assert_int_equal(rp.n_entries, 2);
	assert_int_equal(rp.entries[0].index, 21);
	assert_int_equal(rp.snap.index, 20);
	wal_replay_free(&rp);
	wal_close(w);
}

static void
test_release(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal_snapshot s = { 1, 150 };
	unsigned removed = 99;
	char path[256];
	int before;
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	append_range(w, 1, 200, 1, DATA_LEN);
	assert_int_equal(wal_save_snapshot(w, &s), 0);
	append_range(w, 201, 210, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	before = count_segments(t->dir);
	assert_true(before >= 9);
	/* 0 = unlimited: nothing goes. */
	assert_int_equal(wal_release(w, 150, 0, &removed), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(count_segments(t->dir), before);
	/* Keep at most 2, but never one that a replay from 150 needs. */
	/* Keep at most before - 1: exactly one goes. */
	assert_int_equal(wal_release(w, 150, (unsigned)before - 1, &removed), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(wal_release(w, 150, 2, &removed), 0);
	assert_true(removed > 0);
	assert_int_equal(count_segments(t->dir), before - 1 - (int)removed);
	assert_true(count_segments(t->dir) >= 2);
	{
		/* The oldest left is the last one cut at or before 150. */
		uint64_t first0, first1;

		segment_path(t->dir, 0, path, sizeof(path));
		assert_int_equal(wal_segment_name_parse(strrchr(path, '/') + 1, NULL, &first0), 0);
		segment_path(t->dir, 1, path, sizeof(path));
		assert_int_equal(wal_segment_name_parse(strrchr(path, '/') + 1, NULL, &first1), 0);
		assert_true(first0 <= 150);
		assert_true(first1 > 150);
	}
	{
		/* A release with an older snapshot index must not remove more. */
		unsigned again;

		assert_int_equal(wal_release(w, 10, 1, &again), 0);
		assert_int_equal(again, 0);
	}
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 1, 150, &rp);
	assert_int_equal(rp.n_entries, 60);
	assert_int_equal(rp.entries[0].index, 151);
	wal_replay_free(&rp);
	/* Release with max 1 keeps the one holding 150 and everything after. */
	assert_int_equal(wal_release(w, 150, 1, &removed), 0);
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 1, 150, &rp);
	assert_int_equal(rp.n_entries, 60);
	wal_replay_free(&rp);
	wal_close(w);
	open_fails(t->dir, 0, 0, -ERR_NOTFOUND, NULL, 0);
}

static void
test_lock_and_tmp_cleanup(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal_snapshot s0 = { 0, 0 };
	char path[256];
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);
	struct wal *w2 = new_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	assert_int_equal(wal_open(w2, &s0, &rp), -ERR_STATE);
	assert_non_null(strstr(wal_errmsg(w2), "in use"));
	wal_replay_free(&rp);
	wal_close(w2);
	wal_close(w);
	/* A cut that died before its rename leaves a .tmp that open removes. */
	snprintf(path, sizeof(path), "%s/0000000000000001-0000000000000001.wal.tmp", t->dir);
	write_file(path, (const uint8_t *)"partial", 7);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	assert_int_not_equal(access(path, F_OK), 0);
	wal_replay_free(&rp);
	/* Opening twice through one struct is refused. */
	assert_int_equal(wal_open(w, &s0, &rp), -ERR_STATE);
	wal_replay_free(&rp);
	wal_close(w);
	/* Missing directory. */
	rm_rf(t->dir);
	open_fails(t->dir, 0, 0, -ERR_NOTFOUND, NULL, 0);
}

static void
test_metadata_limits(void **state)
{
	struct tctx *t = *state;
	static uint8_t big[WAL_METADATA_BYTES_MAX + 1];
	struct wal_metadata md = { 1, 2, big, sizeof(big) };
	struct wal_replay rp;
	struct wal *w = new_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	assert_int_equal(wal_create(w, &md), -ERR_INVAL);
	assert_int_equal(wal_create(w, NULL), -ERR_INVAL);
	md.len = WAL_METADATA_BYTES_MAX;
	memset(big, 'm', sizeof(big));
	assert_int_equal(wal_create(w, &md), 0);
	append_range(w, 1, 30, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	assert_int_equal(rp.meta.len, WAL_METADATA_BYTES_MAX);
	assert_memory_equal(rp.meta.data, big, WAL_METADATA_BYTES_MAX);
	check_entries(&rp, 1, 30, term1, DATA_LEN);
	wal_replay_free(&rp);
	wal_close(w);
}

static void
test_thread_mode_async(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	uint64_t durable = 0;
	struct pollfd pfd;
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_THREAD);

	assert_true(wal_sync_fd(w) >= 0);
	/* Nothing buffered: no batch. */
	assert_int_equal(wal_sync_start(w), 0);
	assert_int_equal(wal_sync_busy(w), 0);
	assert_int_equal(wal_sync_done(w, &durable), -ERR_AGAIN);

	assert_int_equal(failpoint_configure("wal_before_sync=1*sleep(200)"), 0);
	append_range(w, 1, 10, 1, DATA_LEN);
	assert_int_equal(wal_sync_start(w), 0);
	assert_int_equal(wal_sync_busy(w), 1);
	assert_int_equal(wal_sync_done(w, &durable), -ERR_AGAIN);
	assert_int_equal(wal_sync_start(w), -ERR_AGAIN);
	assert_int_equal(wal_release(w, 0, 1, NULL), -ERR_AGAIN);
	/* Appends while the batch is in flight go to the next one. */
	append_range(w, 11, 20, 1, DATA_LEN);
	assert_int_equal(wal_pending_bytes(w), 10 * ENTRY_REC_BYTES(DATA_LEN));
	assert_int_equal(wal_last_index(w), 20);
	pfd.fd = wal_sync_fd(w);
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(wal_sync_done(w, &durable), 0);
	assert_int_equal(durable, 10);
	assert_int_equal(wal_durable_index(w), 10);
	assert_int_equal(failpoint_hits("wal_before_sync"), 1);
	/* The eventfd was drained. */
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(wal_sync_start(w), 0);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(wal_sync_done(w, &durable), 0);
	assert_int_equal(durable, 20);
	/* Close with a batch in flight waits for it. */
	append_range(w, 21, 120, 1, DATA_LEN);
	assert_int_equal(wal_sync_start(w), 0);
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_THREAD, 0, 0, &rp);
	check_entries(&rp, 1, 120, term1, DATA_LEN);
	wal_replay_free(&rp);
	wal_close(w);
}

static void
test_failpoint_breaks_wal(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	append_range(w, 1, 5, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	assert_int_equal(failpoint_configure("wal_before_sync=1*error"), 0);
	append_range(w, 6, 8, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), -ERR_IO);
	assert_non_null(strstr(wal_errmsg(w), "wal_before_sync"));
	/* Broken for good: the caller must stop. */
	assert_int_equal(wal_durable_index(w), 5);
	{
		uint8_t b[4] = { 0 };
		struct wal_entry e = { 9, 1, 0, b, 4 };

		assert_int_equal(wal_append_entries(w, &e, 1), -ERR_IO);
	}
	assert_int_equal(wal_sync(w, NULL), -ERR_IO);
	wal_close(w);
	/* The records were written (only the sync "failed"): they replay. */
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	check_entries(&rp, 1, 8, term1, DATA_LEN);
	wal_replay_free(&rp);
	wal_close(w);
}

static void
test_failpoint_write_and_cut(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_THREAD);
	uint64_t durable;

	append_range(w, 1, 5, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	/* A failed write never reaches the file. */
	assert_int_equal(failpoint_configure("wal_before_write=1*error"), 0);
	append_range(w, 6, 7, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, &durable), -ERR_IO);
	assert_non_null(strstr(wal_errmsg(w), "wal_before_write"));
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	check_entries(&rp, 1, 5, term1, DATA_LEN);
	wal_replay_free(&rp);
	/* A cut that fails before its rename leaves a log that still opens. */
	assert_int_equal(failpoint_configure("wal_before_cut=1*error"), 0);
	append_range(w, 6, 60, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), -ERR_IO);
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	assert_true(rp.n_entries >= 5 && rp.n_entries < 60);
	assert_int_equal(count_segments(t->dir), 1);
	{
		uint64_t last = rp.last_index;

		wal_replay_free(&rp);
		append_range(w, last + 1, 80, 1, DATA_LEN);
		assert_int_equal(wal_sync(w, NULL), 0);
	}
	wal_close(w);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	check_entries(&rp, 1, 80, term1, DATA_LEN);
	wal_replay_free(&rp);
	wal_close(w);
	assert_int_equal(failpoint_configure(NULL), 0);
}

static void
test_replay_image(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal_snapshot s0 = { 0, 0 };
	char path[256], msg[WAL_ERRMSG_BYTES];
	uint8_t *img;
	size_t len, last_start, end;

	torn_setup(t, &last_start, &end);
	segment_path(t->dir, 0, path, sizeof(path));
	img = read_file(path, &len);
	assert_int_equal(wal_replay_image(img, len, &s0, &rp, msg, sizeof(msg)), 0);
	check_entries(&rp, 1, 6, term1, DATA_LEN);
	assert_int_equal(rp.torn, 0);
	wal_replay_free(&rp);
	/* Trailing zeros shorter than a header are a clean end too. */
	assert_int_equal(wal_replay_image(img, end + 5, &s0, &rp, msg, sizeof(msg)), 0);
	assert_int_equal(rp.n_entries, 6);
	wal_replay_free(&rp);
	/* Cut mid-record: torn, reported, nothing written. */
	assert_int_equal(wal_replay_image(img, end - 3, &s0, &rp, msg, sizeof(msg)), 0);
	assert_int_equal(rp.torn, 1);
	assert_int_equal(rp.torn_offset, last_start);
	assert_int_equal(rp.n_entries, 5);
	wal_replay_free(&rp);
	assert_int_equal(wal_replay_image(img, 5, &s0, &rp, msg, sizeof(msg)), -ERR_CORRUPT);
	wal_replay_free(&rp);
	assert_int_equal(wal_replay_image(NULL, 0, &s0, &rp, msg, sizeof(msg)), -ERR_CORRUPT);
	wal_replay_free(&rp);
	/* A record with a valid crc but an impossible length for its type. */
	{
		uint8_t bad[256];
		size_t hdr = HDR_BYTES;

		memcpy(bad, img, hdr);
		memset(bad + hdr, 0, sizeof(bad) - hdr);
		bad[hdr + 4] = 3; /* 3-byte hard state */
		bad[hdr + 8] = WAL_REC_HARDSTATE;
		{
			uint32_t c = crc32c(0, bad + hdr + 4, 8 + 3);

			bad[hdr] = (uint8_t)c;
			bad[hdr + 1] = (uint8_t)(c >> 8);
			bad[hdr + 2] = (uint8_t)(c >> 16);
			bad[hdr + 3] = (uint8_t)(c >> 24);
		}
		assert_int_equal(wal_replay_image(bad, sizeof(bad), &s0, &rp, msg, sizeof(msg)), -ERR_CORRUPT);
		assert_non_null(strstr(msg, "bad hard state record length 3"));
		wal_replay_free(&rp);
	}
	free(img);
}

/* An independent encoder of the documented record format. */
static size_t
put_rec(uint8_t *dst, uint8_t type, const uint8_t *payload, size_t n)
{
	uint32_t c;

	dst[4] = (uint8_t)n;
	dst[5] = (uint8_t)(n >> 8);
	dst[6] = (uint8_t)(n >> 16);
	dst[7] = (uint8_t)(n >> 24);
	dst[8] = type;
	dst[9] = dst[10] = dst[11] = 0;
	memcpy(dst + 12, payload, n);
	c = crc32c(0, dst + 4, 8 + n);
	dst[0] = (uint8_t)c;
	dst[1] = (uint8_t)(c >> 8);
	dst[2] = (uint8_t)(c >> 16);
	dst[3] = (uint8_t)(c >> 24);
	return 12 + n;
}

static size_t
put_entry(uint8_t *dst, uint64_t index, uint64_t term)
{
	uint8_t p[24] = { 0 };

	for (int i = 0; i < 8; i++) {
		p[i] = (uint8_t)(index >> (8 * i));
		p[8 + i] = (uint8_t)(term >> (8 * i));
	}
	p[20] = 'x';
	return put_rec(dst, WAL_REC_ENTRY, p, sizeof(p));
}

static void
test_record_rules(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal_snapshot s0 = { 0, 0 };
	char path[256], msg[WAL_ERRMSG_BYTES];
	uint8_t img[2048], *seg;
	size_t len, off;
	struct wal *w = create_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE);

	wal_close(w);
	segment_path(t->dir, 0, path, sizeof(path));
	seg = read_file(path, &len);
	memcpy(img, seg, HDR_BYTES);
	free(seg);

	/* The encoder agrees with the WAL: 1, 2, 3 replay. */
	off = HDR_BYTES;
	off += put_entry(img + off, 1, 1);
	off += put_entry(img + off, 2, 1);
	off += put_entry(img + off, 3, 1);
	assert_int_equal(wal_replay_image(img, off, &s0, &rp, msg, sizeof(msg)), 0);
	assert_int_equal(rp.n_entries, 3);
	assert_int_equal(rp.entries[2].len, 4);
	assert_memory_equal(rp.entries[2].data, "x\0\0\0", 4);
	wal_replay_free(&rp);

	/* A gap inside a segment. */
	off = HDR_BYTES;
	off += put_entry(img + off, 1, 1);
	off += put_entry(img + off, 2, 1);
	off += put_entry(img + off, 4, 1);
	assert_int_equal(wal_replay_image(img, off, &s0, &rp, msg, sizeof(msg)), -ERR_CORRUPT);
	assert_non_null(strstr(msg, "entry index 4 follows 2 in image at offset"));
	wal_replay_free(&rp);

	/* Index 0. */
	off = HDR_BYTES;
	off += put_entry(img + off, 0, 1);
	assert_int_equal(wal_replay_image(img, off, &s0, &rp, msg, sizeof(msg)), -ERR_CORRUPT);
	assert_non_null(strstr(msg, "index 0"));
	wal_replay_free(&rp);

	/* A second segment record, and metadata that changes mid-log. */
	{
		uint8_t p[16 + 4] = { 0 };

		off = HDR_BYTES;
		off += put_rec(img + off, WAL_REC_SEGMENT, p, 16);
		assert_int_equal(wal_replay_image(img, off, &s0, &rp, msg, sizeof(msg)), -ERR_CORRUPT);
		wal_replay_free(&rp);
		off = HDR_BYTES;
		off += put_rec(img + off, WAL_REC_METADATA, p, sizeof(p));
		assert_int_equal(wal_replay_image(img, off, &s0, &rp, msg, sizeof(msg)), -ERR_CORRUPT);
		assert_non_null(strstr(msg, "differs from earlier metadata"));
		wal_replay_free(&rp);
	}

	/* An unknown record type with a valid crc is corruption, not a torn tail... */
	off = HDR_BYTES;
	off += put_rec(img + off, 9, (const uint8_t *)"abcd", 4);
	off += put_entry(img + off, 1, 1);
	assert_int_equal(wal_replay_image(img, off, &s0, &rp, msg, sizeof(msg)), -ERR_CORRUPT);
	assert_non_null(strstr(msg, "followed by a valid record"));
	wal_replay_free(&rp);
	/* ...unless nothing valid follows it in the last segment. */
	off = HDR_BYTES;
	off += put_entry(img + off, 1, 1);
	off += put_rec(img + off, 9, (const uint8_t *)"abcd", 4);
	assert_int_equal(wal_replay_image(img, off, &s0, &rp, msg, sizeof(msg)), 0);
	assert_int_equal(rp.torn, 1);
	assert_int_equal(rp.n_entries, 1);
	wal_replay_free(&rp);
}

static void
test_alloc_failures(void **state)
{
	struct tctx *t = *state;
	struct wal_replay rp;
	struct wal_snapshot s0 = { 0, 0 };
	int ok_open = 0, ok_create = 0;
	struct wal *w;

	/* Every allocation of create may fail: a clean error, no leak, no crash. */
	for (long n = 0; n < 40 && !ok_create; n++) {
		struct wal_metadata md = { 1, 2, META, META_LEN };

		rm_rf(t->root);
		assert_int_equal(mkdir(t->root, 0700), 0);
		mem_fail_after(n);
		w = wal_new(&(struct wal_options){ t->dir, SEG_SMALL, WAL_SYNC_INLINE });
		if (w != NULL) {
			int rc = wal_create(w, &md);

			assert_true(rc == 0 || rc == -ERR_NOMEM);
			ok_create = rc == 0;
		}
		mem_fail_reset();
		wal_close(w);
	}
	assert_true(ok_create);
	w = open_wal(t->dir, SEG_SMALL, WAL_SYNC_INLINE, 0, 0, &rp);
	wal_replay_free(&rp);
	/* An append that cannot allocate its buffer buffers nothing. */
	{
		uint8_t b[64];
		struct wal_entry e = { 1, 1, 0, b, sizeof(b) };
		struct wal_hardstate hs = { 9, 9, 9 };
		struct wal_snapshot s = { 1, 50 };

		memset(b, 1, sizeof(b));
		mem_fail_after(0);
		assert_int_equal(wal_append_entries(w, &e, 1), -ERR_NOMEM);
		assert_int_equal(wal_set_hardstate(w, &hs), -ERR_NOMEM);
		assert_int_equal(wal_save_snapshot(w, &s), -ERR_NOMEM);
		mem_fail_reset();
		assert_int_equal(wal_pending_bytes(w), 0);
		assert_int_equal(wal_last_index(w), 0);
	}
	append_range(w, 1, 100, 1, DATA_LEN);
	assert_int_equal(wal_sync(w, NULL), 0);
	wal_close(w);
	for (long n = 0; n < 200 && !ok_open; n++) {
		int rc;

		mem_fail_after(n);
		w = wal_new(&(struct wal_options){ t->dir, SEG_SMALL, WAL_SYNC_THREAD });
		if (w == NULL) {
			mem_fail_reset();
			continue;
		}
		rc = wal_open(w, &s0, &rp);
		mem_fail_reset();
		assert_true(rc == 0 || rc == -ERR_NOMEM);
		if (rc == 0) {
			check_entries(&rp, 1, 100, term1, DATA_LEN);
			ok_open = 1;
		}
		wal_replay_free(&rp);
		wal_close(w);
	}
	assert_true(ok_open);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test_setup_teardown(test_create_open_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_in_premade_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_in_nonempty_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_inline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_batch_many_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hardstate_dedup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation_overwrite, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation_below_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_zeroed_after_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bitflip_earlier_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bitflip_in_header_field, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bitflip_last_segment_followed_by_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_record_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequence_gap_and_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_continuity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_marker_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_install_jump, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_file_ahead_of_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_and_tmp_cleanup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread_mode_async, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failpoint_breaks_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failpoint_write_and_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
