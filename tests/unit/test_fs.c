/* Unit tests for core/fs: whole reads and writes across pipes (short
 * counts), end of file, bad descriptors, mkdir -p, directory fsync, reading
 * a whole file with its limit and allocation failure, and hex name fields. */
#include <dirent.h>
#include <errno.h>
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
#include "corebox/fs.h"
#include "corebox/mem.h"

struct tctx {
	char root[64];
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
	snprintf(t->root, sizeof(t->root), "/tmp/corebox-fs-XXXXXX");
	if (mkdtemp(t->root) == NULL) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tctx *t = *state;

	mem_fail_reset();
	rm_rf(t->root);
	free(t);
	return 0;
}

static void
write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(fs_write_all(fd, p, n), 0);
	assert_int_equal(close(fd), 0);
}

static void
test_write_read_all_pipe(void **state)
{
	/* More than a pipe holds would block; a small, odd size crosses reads. */
	uint8_t out[3001], in[3001];
	int p[2];

	(void)state;
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fs_write_all(p[1], out, sizeof(out)), 0);
	assert_int_equal(fs_write_all(p[1], out, 0), 0);
	close(p[1]);
	assert_int_equal(fs_read_all(p[0], in, 1000), 0);
	assert_int_equal(fs_read_all(p[0], in + 1000, sizeof(in) - 1000), 0);
	assert_memory_equal(in, out, sizeof(out));
	/* The writer is gone: one more byte is end of file, reported as EIO. */
	errno = 0;
	assert_int_equal(fs_read_all(p[0], in, 1), -ERR_IO);
	assert_int_equal(errno, EIO);
	close(p[0]);
}

static void
test_bad_fd(void **state)
{
	uint8_t b[4] = { 1, 2, 3, 4 };

	(void)state;
	errno = 0;
	assert_int_equal(fs_write_all(-1, b, sizeof(b)), -ERR_IO);
	assert_int_equal(errno, EBADF);
	errno = 0;
	assert_int_equal(fs_read_all(-1, b, sizeof(b)), -ERR_IO);
	assert_int_equal(errno, EBADF);
	errno = 0;
	assert_int_equal(fs_pwrite_all(-1, b, sizeof(b), 0), -ERR_IO);
	assert_int_equal(errno, EBADF);
}

static void
test_pwrite_all(void **state)
{
	struct tctx *t = *state;
	char path[128];
	uint8_t *got;
	size_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/f", t->root);
	write_file(path, "aaaaaaaa", 8);
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fs_pwrite_all(fd, "XY", 2, 3), 0);
	/* Past the end: the hole reads as zeros. */
	assert_int_equal(fs_pwrite_all(fd, "Z", 1, 10), 0);
	/* pwrite leaves the file offset where it was. */
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
	close(fd);
	assert_int_equal(fs_read_file_at(AT_FDCWD, path, 64, &got, &n), 0);
	assert_int_equal(n, 11);
	assert_memory_equal(got, "aaaXYaaa\0\0Z", 11);
	mem_free(got);
}

static void
test_read_file_at(void **state)
{
	struct tctx *t = *state;
	char path[128];
	uint8_t *got = (uint8_t *)"x";
	size_t n = 99;
	int dfd;

	snprintf(path, sizeof(path), "%s/data", t->root);
	write_file(path, "hello, world", 12);
	dfd = open(t->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(fs_read_file_at(dfd, "data", 12, &got, &n), 0);
	assert_int_equal(n, 12);
	assert_memory_equal(got, "hello, world", 12);
	mem_free(got);

	/* One byte over the limit: refused before anything is allocated. */
	got = (uint8_t *)"x";
	n = 99;
	assert_int_equal(fs_read_file_at(dfd, "data", 11, &got, &n), -ERR_LIMIT);
	assert_null(got);
	assert_int_equal(n, 0);

	errno = 0;
	assert_int_equal(fs_read_file_at(dfd, "missing", 100, &got, &n), -ERR_IO);
	assert_int_equal(errno, ENOENT);
	assert_null(got);

	/* A directory opens but cannot be read. */
	assert_int_equal(fs_read_file_at(AT_FDCWD, t->root, SIZE_MAX, &got, &n), -ERR_IO);
	assert_null(got);

	mem_fail_after(0);
	assert_int_equal(fs_read_file_at(dfd, "data", 100, &got, &n), -ERR_NOMEM);
	mem_fail_reset();
	assert_null(got);
	assert_int_equal(n, 0);

	/* An empty file still gives a buffer the caller frees. */
	write_file(path, "", 0);
	assert_int_equal(fs_read_file_at(dfd, "data", 100, &got, &n), 0);
	assert_non_null(got);
	assert_int_equal(n, 0);
	mem_free(got);
	close(dfd);
}

static void
test_mkdir_parents(void **state)
{
	struct tctx *t = *state;
	char path[256], file[300], big[FS_PATH_BYTES_MAX + 2];
	struct stat st;

	snprintf(path, sizeof(path), "%s/a/b/c/", t->root);
	assert_int_equal(fs_mkdir_parents(path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* Again: everything exists already. */
	assert_int_equal(fs_mkdir_parents(path), 0);
	assert_int_equal(fs_fsync_dir(path), 0);

	/* A file in the way. */
	snprintf(file, sizeof(file), "%s/a/file", t->root);
	write_file(file, "x", 1);
	snprintf(path, sizeof(path), "%s/a/file/d", t->root);
	errno = 0;
	assert_int_equal(fs_mkdir_parents(path), -ERR_IO);
	assert_int_equal(errno, ENOTDIR);

	errno = 0;
	assert_int_equal(fs_mkdir_parents(""), -ERR_INVAL);
	assert_int_equal(errno, ENAMETOOLONG);
	memset(big, 'x', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	errno = 0;
	assert_int_equal(fs_mkdir_parents(big), -ERR_INVAL);
	assert_int_equal(errno, ENAMETOOLONG);
}

static void
test_fsync_dir(void **state)
{
	struct tctx *t = *state;
	char path[128];

	assert_int_equal(fs_fsync_dir(t->root), 0);
	snprintf(path, sizeof(path), "%s/nope", t->root);
	errno = 0;
	assert_int_equal(fs_fsync_dir(path), -ERR_IO);
	assert_int_equal(errno, ENOENT);
	/* A regular file is not a directory. */
	snprintf(path, sizeof(path), "%s/plain", t->root);
	write_file(path, "x", 1);
	errno = 0;
	assert_int_equal(fs_fsync_dir(path), -ERR_IO);
	assert_int_equal(errno, ENOTDIR);
}

static void
test_parse_hex16(void **state)
{
	uint64_t v = 42;

	(void)state;
	assert_int_equal(fs_parse_hex16("0000000000000000", &v), 0);
	assert_true(v == 0);
	assert_int_equal(fs_parse_hex16("ffffffffffffffff", &v), 0);
	assert_true(v == UINT64_MAX);
	/* Only the first 16 characters count. */
	assert_int_equal(fs_parse_hex16("0123456789abcdef-rest", &v), 0);
	assert_true(v == 0x0123456789abcdefull);
	v = 7;
	assert_int_equal(fs_parse_hex16("0123456789ABCDEF", &v), -ERR_PARSE);
	assert_int_equal(fs_parse_hex16("012345678g000000", &v), -ERR_PARSE);
	assert_int_equal(fs_parse_hex16("0123", &v), -ERR_PARSE);
	assert_int_equal(fs_parse_hex16(" 000000000000000", &v), -ERR_PARSE);
	assert_true(v == 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_read_all_pipe),
		cmocka_unit_test(test_bad_fd),
		cmocka_unit_test_setup_teardown(test_pwrite_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_file_at, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_parents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_dir, setup, teardown),
		cmocka_unit_test(test_parse_hex16),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
