/* Unit tests for store/snapfile: save/load round trip, newest-first choice,
 * broken files renamed to .broken and skipped, the WAL-marker filter,
 * purge, frame decoding and allocation failures. Each test works in its own
 * directory under /tmp. */
#include <dirent.h>
#include <fcntl.h>
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

#include "corebox/err.h"
#include "corebox/failpoint.h"
#include "corebox/mem.h"
#include "corebox/snapfile.h"

struct tctx {
	char root[64];
	char dir[128];
	char broken[8][256];
	int nbroken;
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
	snprintf(t->root, sizeof(t->root), "/tmp/corebox-snap-XXXXXX");
	if (mkdtemp(t->root) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->dir, sizeof(t->dir), "%s/member/snap", t->root);
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
on_broken(void *arg, const char *msg)
{
	struct tctx *t = arg;

	assert_true(t->nbroken < 8);
	snprintf(t->broken[t->nbroken++], sizeof(t->broken[0]), "%s", msg);
}

static void
payload(char *b, size_t n, uint64_t index)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (char)('a' + (i + index) % 26);
}

static void
save(struct tctx *t, uint64_t term, uint64_t index, size_t n)
{
	char b[1000], msg[256];

	assert_true(n <= sizeof(b));
	payload(b, n, index);
	assert_int_equal(snapfile_save(t->dir, term, index, b, n, msg, sizeof(msg)), 0);
}

static void
path_of(struct tctx *t, uint64_t term, uint64_t index, char *out, size_t n)
{
	char name[SNAPFILE_NAME_BYTES];

	snapfile_name_format(name, term, index);
	snprintf(out, n, "%s/%s", t->dir, name);
}

static void
flip(const char *path, long off)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	assert_true(fd >= 0);
	if (off < 0)
		off += lseek(fd, 0, SEEK_END);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static int
count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	size_t sl = strlen(suffix);

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		n += l > sl && strcmp(e->d_name + l - sl, suffix) == 0;
	}
	closedir(d);
	return n;
}

static void
test_names(void **state)
{
	char b[SNAPFILE_NAME_BYTES];
	uint64_t term, index;

	(void)state;
	snapfile_name_format(b, 2, 0x64);
	assert_string_equal(b, "0000000000000002-0000000000000064.snap");
	assert_int_equal(snapfile_name_parse(b, &term, &index), 0);
	assert_int_equal(term, 2);
	assert_int_equal(index, 100);
	assert_int_equal(snapfile_name_parse("0000000000000002-0000000000000064.snap.broken", NULL, NULL), -ERR_PARSE);
	assert_int_equal(snapfile_name_parse("0000000000000002-000000000000006G.snap", NULL, NULL), -ERR_PARSE);
	assert_int_equal(snapfile_name_parse("0000000000000002-0000000000000064.wal", NULL, NULL), -ERR_PARSE);
}

static void
test_save_load_round_trip(void **state)
{
	struct tctx *t = *state;
	struct snapfile_data d;
	char want[1000], path[256], msg[256];
	struct stat st;

	save(t, 2, 100, 1000);
	path_of(t, 2, 100, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, SNAPFILE_HEADER_BYTES + 1000);
	/* No temp file left. */
	assert_int_equal(count_files(t->dir, ".tmp"), 0);
	assert_int_equal(snapfile_load_newest(t->dir, NULL, 0, &d, on_broken, t, msg, sizeof(msg)), 0);
	assert_int_equal(d.term, 2);
	assert_int_equal(d.index, 100);
	assert_int_equal(d.len, 1000);
	payload(want, 1000, 100);
	assert_memory_equal(d.data, want, 1000);
	assert_string_equal(d.name, "0000000000000002-0000000000000064.snap");
	snapfile_data_free(&d);
	assert_null(d.data);
	/* Empty payload. */
	assert_int_equal(snapfile_save(t->dir, 3, 101, NULL, 0, msg, sizeof(msg)), 0);
	assert_int_equal(snapfile_load(t->dir, "0000000000000003-0000000000000065.snap", &d, msg, sizeof(msg)), 0);
	assert_int_equal(d.len, 0);
	assert_null(d.data);
	snapfile_data_free(&d);
	/* Saving the same snapshot again replaces it. */
	save(t, 2, 100, 10);
	assert_int_equal(snapfile_load(t->dir, "0000000000000002-0000000000000064.snap", &d, msg, sizeof(msg)), 0);
	assert_int_equal(d.len, 10);
	snapfile_data_free(&d);
	assert_int_equal(t->nbroken, 0);
}

static void
test_newest_and_list(void **state)
{
	struct tctx *t = *state;
	struct snapfile_info *list;
	struct snapfile_data d;
	size_t n;
	char msg[256], path[256];

	save(t, 1, 50, 10);
	save(t, 2, 40, 10);
	save(t, 2, 300, 10);
	save(t, 1, 900, 10);
	/* A stray file and a .broken one are ignored. */
	snprintf(path, sizeof(path), "%s/notes.txt", t->dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof(path), "%s/0000000000000009-0000000000000009.snap.broken", t->dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(snapfile_list(t->dir, &list, &n, msg, sizeof(msg)), 0);
	assert_int_equal(n, 4);
	assert_int_equal(list[0].term, 2);
	assert_int_equal(list[0].index, 300);
	assert_int_equal(list[1].index, 40);
	assert_int_equal(list[2].index, 900);
	assert_int_equal(list[3].index, 50);
	mem_free(list);
	assert_int_equal(snapfile_load_newest(t->dir, NULL, 0, &d, NULL, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(d.index, 300);
	snapfile_data_free(&d);
	/* Only those with a WAL marker. */
	{
		struct snapfile_info only[2] = { { 1, 900, "" }, { 1, 50, "" } };

		assert_int_equal(snapfile_load_newest(t->dir, only, 2, &d, NULL, NULL, msg, sizeof(msg)), 0);
		assert_int_equal(d.index, 900);
		snapfile_data_free(&d);
		only[0].term = 7;
		only[1].term = 7;
		assert_int_equal(snapfile_load_newest(t->dir, only, 2, &d, NULL, NULL, msg, sizeof(msg)), -ERR_NOTFOUND);
	}
}

static void
test_skip_broken(void **state)
{
	struct tctx *t = *state;
	struct snapfile_data d;
	char path[256], msg[256];

	save(t, 1, 10, 100);
	save(t, 1, 20, 100);
	save(t, 1, 30, 100);
	save(t, 1, 40, 100);
	/* 40: payload bit flip; 30: truncated; 20: header bit flip. */
	path_of(t, 1, 40, path, sizeof(path));
	flip(path, -1);
	path_of(t, 1, 30, path, sizeof(path));
	assert_int_equal(truncate(path, SNAPFILE_HEADER_BYTES + 50), 0);
	path_of(t, 1, 20, path, sizeof(path));
	flip(path, 20);
	assert_int_equal(snapfile_load_newest(t->dir, NULL, 0, &d, on_broken, t, msg, sizeof(msg)), 0);
	assert_int_equal(d.index, 10);
	snapfile_data_free(&d);
	assert_int_equal(t->nbroken, 3);
	assert_string_equal(t->broken[0], "snap: bad crc in 0000000000000001-0000000000000028.snap");
	assert_non_null(strstr(t->broken[1], "0000000000000001-000000000000001e.snap holds 50 payload bytes"));
	assert_string_equal(t->broken[2], "snap: bad header crc in 0000000000000001-0000000000000014.snap");
	assert_int_equal(count_files(t->dir, ".broken"), 3);
	assert_int_equal(count_files(t->dir, ".snap"), 1);
	/* The next load does not see them again. */
	t->nbroken = 0;
	assert_int_equal(snapfile_load_newest(t->dir, NULL, 0, &d, on_broken, t, msg, sizeof(msg)), 0);
	assert_int_equal(t->nbroken, 0);
	snapfile_data_free(&d);
	/* All broken: not found. */
	path_of(t, 1, 10, path, sizeof(path));
	flip(path, 0);
	assert_int_equal(snapfile_load_newest(t->dir, NULL, 0, &d, on_broken, t, msg, sizeof(msg)), -ERR_NOTFOUND);
	assert_non_null(strstr(t->broken[0], "is not a snapshot file"));
	assert_non_null(strstr(msg, "no available snapshot"));
}

static void
test_name_header_mismatch(void **state)
{
	struct tctx *t = *state;
	struct snapfile_data d;
	char from[256], to[256], msg[256];

	save(t, 1, 10, 100);
	path_of(t, 1, 10, from, sizeof(from));
	path_of(t, 1, 11, to, sizeof(to));
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(snapfile_load(t->dir, "0000000000000001-000000000000000b.snap", &d, msg, sizeof(msg)), -ERR_CORRUPT);
	assert_non_null(strstr(msg, "holds the snapshot of term 1 index 10"));
	assert_int_equal(snapfile_load(t->dir, "bogus", &d, msg, sizeof(msg)), -ERR_INVAL);
	assert_int_equal(snapfile_load(t->dir, "0000000000000001-0000000000000001.snap", &d, msg, sizeof(msg)), -ERR_NOTFOUND);
}

static void
test_missing_dir(void **state)
{
	struct tctx *t = *state;
	struct snapfile_info *list;
	struct snapfile_data d;
	size_t n = 9;
	unsigned removed = 9;
	char msg[256];

	assert_int_equal(snapfile_list(t->dir, &list, &n, msg, sizeof(msg)), 0);
	assert_int_equal(n, 0);
	mem_free(list);
	assert_int_equal(snapfile_load_newest(t->dir, NULL, 0, &d, NULL, NULL, msg, sizeof(msg)), -ERR_NOTFOUND);
	assert_int_equal(snapfile_purge(t->dir, 5, &removed, msg, sizeof(msg)), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(snapfile_save("", 1, 1, NULL, 0, msg, sizeof(msg)), -ERR_INVAL);
	assert_int_equal(snapfile_save(t->dir, 1, 1, NULL, 5, msg, sizeof(msg)), -ERR_INVAL);
}

static void
test_purge(void **state)
{
	struct tctx *t = *state;
	unsigned removed;
	char path[256], msg[256];
	struct snapfile_info *list;
	size_t n;

	for (uint64_t i = 1; i <= 8; i++)
		save(t, 1, i * 10, 20);
	snprintf(path, sizeof(path), "%s/0000000000000001-0000000000000099.snap.tmp", t->dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof(path), "%s/0000000000000001-0000000000000005.snap.broken", t->dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	/* 0 = unlimited, but stale temp files still go. */
	assert_int_equal(snapfile_purge(t->dir, 0, &removed, msg, sizeof(msg)), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(count_files(t->dir, ".snap"), 8);
	assert_int_equal(count_files(t->dir, ".tmp"), 0);
	assert_int_equal(snapfile_purge(t->dir, SNAPFILE_MAX_SNAPSHOTS_DEFAULT, &removed, msg, sizeof(msg)), 0);
	assert_int_equal(removed, 3);
	assert_int_equal(snapfile_list(t->dir, &list, &n, msg, sizeof(msg)), 0);
	assert_int_equal(n, 5);
	assert_int_equal(list[0].index, 80);
	assert_int_equal(list[4].index, 40);
	mem_free(list);
	assert_int_equal(count_files(t->dir, ".broken"), 1);
	assert_int_equal(snapfile_purge(t->dir, 5, &removed, msg, sizeof(msg)), 0);
	assert_int_equal(removed, 0);
}

static void
test_decode(void **state)
{
	struct tctx *t = *state;
	char path[256], msg[256];
	struct snapfile_header h;
	const void *p;
	unsigned char *img;
	struct stat st;
	int fd;

	save(t, 4, 77, 33);
	path_of(t, 4, 77, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	img = malloc((size_t)st.st_size);
	assert_non_null(img);
	fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, img, (size_t)st.st_size), st.st_size);
	close(fd);
	assert_memory_equal(img, "cbsnap\r\n", 8);
	assert_int_equal(snapfile_decode(img, (size_t)st.st_size, &h, &p, msg, sizeof(msg)), 0);
	assert_int_equal(h.version, SNAPFILE_VERSION);
	assert_int_equal(h.term, 4);
	assert_int_equal(h.index, 77);
	assert_int_equal(h.length, 33);
	assert_ptr_equal(p, img + SNAPFILE_HEADER_BYTES);
	/* Short, long, bad version, bad payload crc. */
	assert_int_equal(snapfile_decode(img, 10, &h, &p, msg, sizeof(msg)), -ERR_PARSE);
	assert_int_equal(snapfile_decode(img, (size_t)st.st_size - 1, &h, &p, msg, sizeof(msg)), -ERR_PARSE);
	img[SNAPFILE_HEADER_BYTES + 3] ^= 1;
	assert_int_equal(snapfile_decode(img, (size_t)st.st_size, &h, &p, msg, sizeof(msg)), -ERR_CRC);
	img[SNAPFILE_HEADER_BYTES + 3] ^= 1;
	img[8] = 2;
	assert_int_equal(snapfile_decode(img, (size_t)st.st_size, &h, &p, msg, sizeof(msg)), -ERR_CRC);
	assert_int_equal(snapfile_decode(NULL, 0, &h, &p, msg, sizeof(msg)), -ERR_PARSE);
	assert_int_equal(snapfile_decode(NULL, 5, &h, &p, msg, sizeof(msg)), -ERR_INVAL);
	free(img);
}

static void
test_failpoints_leave_old_set(void **state)
{
	struct tctx *t = *state;
	char msg[256];
	struct snapfile_data d;

	save(t, 1, 10, 100);
	assert_int_equal(failpoint_configure("snap_after_write=1*error"), 0);
	assert_int_equal(snapfile_save(t->dir, 1, 20, "x", 1, msg, sizeof(msg)), -ERR_IO);
	assert_int_equal(failpoint_configure("snap_before_rename=1*error"), 0);
	assert_int_equal(snapfile_save(t->dir, 1, 30, "x", 1, msg, sizeof(msg)), -ERR_IO);
	assert_int_equal(failpoint_configure(NULL), 0);
	assert_int_equal(count_files(t->dir, ".tmp"), 0);
	assert_int_equal(snapfile_load_newest(t->dir, NULL, 0, &d, NULL, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(d.index, 10);
	snapfile_data_free(&d);
}

static void
test_alloc_failures(void **state)
{
	struct tctx *t = *state;
	char msg[256];
	struct snapfile_data d;
	int ok = 0;

	save(t, 1, 10, 500);
	save(t, 1, 20, 500);
	for (long n = 0; n < 20 && !ok; n++) {
		int rc;

		mem_fail_after(n);
		rc = snapfile_load_newest(t->dir, NULL, 0, &d, on_broken, t, msg, sizeof(msg));
		mem_fail_reset();
		/* A memory failure is never blamed on the file. */
		assert_true(rc == 0 || rc == -ERR_NOMEM);
		assert_int_equal(t->nbroken, 0);
		if (rc == 0) {
			assert_int_equal(d.index, 20);
			ok = 1;
		}
		snapfile_data_free(&d);
	}
	assert_true(ok);
	assert_int_equal(count_files(t->dir, ".broken"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_save_load_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newest_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_skip_broken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_header_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failpoints_leave_old_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
