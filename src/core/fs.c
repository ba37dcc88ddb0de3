/*
 * fs: the file helpers the on-disk stores share (API in corebox/fs.h).
 *
 * Short reads and writes and EINTR are retried here so no caller has to;
 * every failure leaves errno as the failing call set it. This file must
 * never keep state, never log, and never leave a descriptor it opened open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corebox/err.h"
#include "corebox/fs.h"
#include "corebox/mem.h"

int
fs_write_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;

	while (n > 0) {
		ssize_t k = write(fd, q, n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -ERR_IO;
		}
		q += k;
		n -= (size_t)k;
	}
	return 0;
}

int
fs_pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
	const uint8_t *q = p;

	while (n > 0) {
		ssize_t k = pwrite(fd, q, n, (off_t)off);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -ERR_IO;
		}
		if (k == 0) {
			errno = EIO;
			return -ERR_IO;
		}
		q += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

int
fs_read_all(int fd, void *p, size_t n)
{
	uint8_t *q = p;

	while (n > 0) {
		ssize_t k = read(fd, q, n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -ERR_IO;
		}
		if (k == 0) {
			errno = EIO;
			return -ERR_IO;
		}
		q += k;
		n -= (size_t)k;
	}
	return 0;
}

int
fs_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int e;

	if (fd < 0)
		return -ERR_IO;
	if (fsync(fd) != 0) {
		e = errno;
		close(fd);
		errno = e;
		return -ERR_IO;
	}
	close(fd);
	return 0;
}

int
fs_mkdir_parents(const char *path)
{
	char tmp[FS_PATH_BYTES_MAX + 1];
	size_t n = strlen(path);

	if (n == 0 || n > FS_PATH_BYTES_MAX) {
		errno = ENAMETOOLONG;
		return -ERR_INVAL;
	}
	memcpy(tmp, path, n + 1);
	/* Creates every prefix ending at a slash, then the whole path. */
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return -ERR_IO;
		if (i < n)
			tmp[i] = '/';
	}
	return 0;
}

int
fs_read_file_at(int dirfd, const char *name, size_t max_bytes, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *b = NULL;
	int fd, e;

	*out = NULL;
	*len = 0;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ERR_IO;
	if (fstat(fd, &st) != 0)
		goto fail;
	if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
		close(fd);
		return -ERR_LIMIT;
	}
	b = mem_alloc((size_t)st.st_size);
	if (b == NULL) {
		close(fd);
		return -ERR_NOMEM;
	}
	if (fs_read_all(fd, b, (size_t)st.st_size) != 0)
		goto fail;
	close(fd);
	*out = b;
	*len = (size_t)st.st_size;
	return 0;
fail:
	e = errno;
	close(fd);
	mem_free(b);
	errno = e;
	return -ERR_IO;
}

int
fs_parse_hex16(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	for (int i = 0; i < 16; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9')
			x = x << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			x = x << 4 | (uint64_t)(c - 'a' + 10);
		else
			return -ERR_PARSE;
	}
	*v = x;
	return 0;
}
