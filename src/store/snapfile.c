/*
 * snapfile: framed, checksummed snapshot files (format in corebox/snapfile.h).
 *
 * Saving goes through a .tmp file, fsync, rename and a directory fsync so a
 * crash never leaves a partial file under a .snap name. Loading verifies the
 * frame, both CRCs and that the name matches the header before any byte of
 * the payload is handed out. This file must never delete a snapshot except
 * in snapfile_purge, and never rename one to .broken for anything but a bad
 * frame or checksum (an I/O or memory error is the caller's problem, not the
 * file's).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corebox/crc32c.h"
#include "corebox/err.h"
#include "corebox/failpoint.h"
#include "corebox/fs.h"
#include "corebox/le.h"
#include "corebox/mem.h"
#include "corebox/snapfile.h"

static const char snap_magic[8] = { 'c', 'b', 's', 'n', 'a', 'p', '\r', '\n' };

/* Longest directory path accepted (names are appended to it). */
#define SNAPFILE_DIR_BYTES_MAX 4000u

static int
set_msg(char *dst, size_t len, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
set_msg(char *dst, size_t len, int rc, const char *fmt, ...)
{
	va_list ap;

	if (dst != NULL && len > 0) {
		va_start(ap, fmt);
		vsnprintf(dst, len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int
check_dir(const char *dir, char *errmsg, size_t errlen)
{
	if (dir == NULL || dir[0] == '\0' || strlen(dir) > SNAPFILE_DIR_BYTES_MAX)
		return set_msg(errmsg, errlen, -ERR_INVAL, "snap: bad directory name");
	return 0;
}

void
snapfile_name_format(char *buf, uint64_t term, uint64_t index)
{
	snprintf(buf, SNAPFILE_NAME_BYTES, "%016llx-%016llx.snap",
	    (unsigned long long)term, (unsigned long long)index);
}

int
snapfile_name_parse(const char *name, uint64_t *term, uint64_t *index)
{
	uint64_t a, b;

	if (name == NULL || strlen(name) != 38 || name[16] != '-' || strcmp(name + 33, ".snap") != 0)
		return -ERR_PARSE;
	if (fs_parse_hex16(name, &a) != 0 || fs_parse_hex16(name + 17, &b) != 0)
		return -ERR_PARSE;
	if (term != NULL)
		*term = a;
	if (index != NULL)
		*index = b;
	return 0;
}

static void
encode_header(uint8_t *h, uint64_t term, uint64_t index, uint64_t len, uint32_t crc)
{
	memcpy(h, snap_magic, sizeof(snap_magic));
	le_put32(h + 8, SNAPFILE_VERSION);
	le_put32(h + 12, 0);
	le_put64(h + 16, term);
	le_put64(h + 24, index);
	le_put64(h + 32, len);
	le_put32(h + 40, crc);
	le_put32(h + 44, crc32c(0, h, 44));
}

/*
 * Checks the fixed header; file_len is the whole file's size. Leaves the
 * payload CRC to the caller, who may not have the payload in memory yet.
 */
static int
decode_header(const uint8_t *h, uint64_t file_len, struct snapfile_header *hdr,
    const char *name, char *errmsg, size_t errlen)
{
	if (file_len < SNAPFILE_HEADER_BYTES)
		return set_msg(errmsg, errlen, -ERR_PARSE, "snap: %s is too short (%llu bytes)",
		    name, (unsigned long long)file_len);
	if (memcmp(h, snap_magic, sizeof(snap_magic)) != 0)
		return set_msg(errmsg, errlen, -ERR_PARSE, "snap: %s is not a snapshot file", name);
	if (crc32c(0, h, 44) != le_get32(h + 44))
		return set_msg(errmsg, errlen, -ERR_CRC, "snap: bad header crc in %s", name);
	hdr->version = le_get32(h + 8);
	hdr->term = le_get64(h + 16);
	hdr->index = le_get64(h + 24);
	hdr->length = le_get64(h + 32);
	hdr->crc = le_get32(h + 40);
	if (hdr->version != SNAPFILE_VERSION)
		return set_msg(errmsg, errlen, -ERR_PARSE, "snap: %s has unsupported version %u",
		    name, hdr->version);
	if (le_get32(h + 12) != 0)
		return set_msg(errmsg, errlen, -ERR_PARSE, "snap: %s has unknown flags", name);
	if (hdr->length > SNAPFILE_PAYLOAD_BYTES_MAX)
		return set_msg(errmsg, errlen, -ERR_PARSE, "snap: %s payload of %llu bytes is above the limit",
		    name, (unsigned long long)hdr->length);
	if (hdr->length != file_len - SNAPFILE_HEADER_BYTES)
		return set_msg(errmsg, errlen, -ERR_PARSE,
		    "snap: %s holds %llu payload bytes but its header says %llu", name,
		    (unsigned long long)(file_len - SNAPFILE_HEADER_BYTES), (unsigned long long)hdr->length);
	return 0;
}

int
snapfile_decode(const void *buf, size_t len, struct snapfile_header *hdr,
    const void **payload, char *errmsg, size_t errlen)
{
	const uint8_t *b = buf;
	struct snapfile_header h;
	int rc;

	if (buf == NULL && len > 0)
		return set_msg(errmsg, errlen, -ERR_INVAL, "snap: no buffer");
	if ((rc = decode_header(b, len, &h, "image", errmsg, errlen)) != 0)
		return rc;
	if (crc32c(0, b + SNAPFILE_HEADER_BYTES, (size_t)h.length) != h.crc)
		return set_msg(errmsg, errlen, -ERR_CRC, "snap: bad crc in image");
	if (hdr != NULL)
		*hdr = h;
	if (payload != NULL)
		*payload = b + SNAPFILE_HEADER_BYTES;
	return 0;
}

int
snapfile_save(const char *dir, uint64_t term, uint64_t index,
    const void *data, size_t len, char *errmsg, size_t errlen)
{
	char name[SNAPFILE_NAME_BYTES], path[SNAPFILE_DIR_BYTES_MAX + SNAPFILE_NAME_BYTES + 8];
	char tmp[sizeof(path) + 8];
	uint8_t h[SNAPFILE_HEADER_BYTES];
	int fd, rc, e;

	if ((rc = check_dir(dir, errmsg, errlen)) != 0)
		return rc;
	if ((uint64_t)len > SNAPFILE_PAYLOAD_BYTES_MAX)
		return set_msg(errmsg, errlen, -ERR_LIMIT, "snap: payload of %zu bytes is above the limit", len);
	if (len > 0 && data == NULL)
		return set_msg(errmsg, errlen, -ERR_INVAL, "snap: no payload");
	if (fs_mkdir_parents(dir) != 0)
		return set_msg(errmsg, errlen, -ERR_IO, "snap: create %s: %s", dir, strerror(errno));
	snapfile_name_format(name, term, index);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	encode_header(h, term, index, len, crc32c(0, data, len));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return set_msg(errmsg, errlen, -ERR_IO, "snap: create %s.tmp: %s", name, strerror(errno));
	if (fs_write_all(fd, h, sizeof(h)) != 0 || fs_write_all(fd, data, len) != 0)
		goto fail;
	if (FAILPOINT("snap_after_write")) {
		errno = EIO;
		goto fail;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (FAILPOINT("snap_before_rename")) {
		errno = EIO;
		goto fail;
	}
	if (rename(tmp, path) != 0)
		goto fail;
	if (fs_fsync_dir(dir) != 0)
		return set_msg(errmsg, errlen, -ERR_IO, "snap: sync %s: %s", dir, strerror(errno));
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return set_msg(errmsg, errlen, e == ENOSPC ? -ERR_LIMIT : -ERR_IO, "snap: write %s: %s",
	    name, strerror(e));
}

void
snapfile_data_free(struct snapfile_data *d)
{
	if (d == NULL)
		return;
	mem_free(d->data);
	memset(d, 0, sizeof(*d));
}

int
snapfile_load(const char *dir, const char *name, struct snapfile_data *out,
    char *errmsg, size_t errlen)
{
	char path[SNAPFILE_DIR_BYTES_MAX + SNAPFILE_NAME_BYTES + 8];
	uint8_t h[SNAPFILE_HEADER_BYTES] = { 0 };
	struct snapfile_header hdr;
	struct stat st;
	uint64_t nterm, nindex;
	void *data = NULL;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	if ((rc = check_dir(dir, errmsg, errlen)) != 0)
		return rc;
	if (snapfile_name_parse(name, &nterm, &nindex) != 0)
		return set_msg(errmsg, errlen, -ERR_INVAL, "snap: %s is not a snapshot name", name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return set_msg(errmsg, errlen, errno == ENOENT ? -ERR_NOTFOUND : -ERR_IO,
		    "snap: open %s: %s", name, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = set_msg(errmsg, errlen, -ERR_IO, "snap: stat %s: %s", name, strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size >= SNAPFILE_HEADER_BYTES && fs_read_all(fd, h, sizeof(h)) != 0) {
		rc = set_msg(errmsg, errlen, -ERR_IO, "snap: read %s: %s", name, strerror(errno));
		goto out;
	}
	if ((rc = decode_header(h, (uint64_t)st.st_size, &hdr, name, errmsg, errlen)) != 0)
		goto out;
	if (hdr.term != nterm || hdr.index != nindex) {
		rc = set_msg(errmsg, errlen, -ERR_CORRUPT,
		    "snap: %s holds the snapshot of term %llu index %llu", name,
		    (unsigned long long)hdr.term, (unsigned long long)hdr.index);
		goto out;
	}
	if (hdr.length > 0) {
		data = mem_alloc((size_t)hdr.length);
		if (data == NULL) {
			rc = set_msg(errmsg, errlen, -ERR_NOMEM, "snap: load %s: out of memory", name);
			goto out;
		}
		if (fs_read_all(fd, data, (size_t)hdr.length) != 0) {
			rc = set_msg(errmsg, errlen, -ERR_IO, "snap: read %s: %s", name, strerror(errno));
			goto out;
		}
	}
	if (crc32c(0, data, (size_t)hdr.length) != hdr.crc) {
		rc = set_msg(errmsg, errlen, -ERR_CRC, "snap: bad crc in %s", name);
		goto out;
	}
	out->term = hdr.term;
	out->index = hdr.index;
	out->data = data;
	out->len = (size_t)hdr.length;
	memcpy(out->name, name, 39);
	data = NULL;
out:
	close(fd);
	mem_free(data);
	return rc;
}

static int
info_cmp(const void *a, const void *b)
{
	const struct snapfile_info *x = a, *y = b;

	/* Newest first, the order of etcd's reverse-sorted names. */
	if (x->term != y->term)
		return x->term < y->term ? 1 : -1;
	if (x->index != y->index)
		return x->index < y->index ? 1 : -1;
	return 0;
}

int
snapfile_list(const char *dir, struct snapfile_info **list, size_t *n, char *errmsg, size_t errlen)
{
	struct snapfile_info *v = NULL;
	size_t len = 0, cap = 0;
	struct dirent *e;
	DIR *d;
	int rc;

	*list = NULL;
	*n = 0;
	if ((rc = check_dir(dir, errmsg, errlen)) != 0)
		return rc;
	d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		return set_msg(errmsg, errlen, -ERR_IO, "snap: open %s: %s", dir, strerror(errno));
	}
	while ((e = readdir(d)) != NULL) {
		struct snapfile_info s;

		if (snapfile_name_parse(e->d_name, &s.term, &s.index) != 0)
			continue;
		memcpy(s.name, e->d_name, 39);
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct snapfile_info *nv = mem_realloc(v, ncap * sizeof(*nv));

			if (nv == NULL) {
				closedir(d);
				mem_free(v);
				return set_msg(errmsg, errlen, -ERR_NOMEM, "snap: list %s: out of memory", dir);
			}
			v = nv;
			cap = ncap;
		}
		v[len++] = s;
	}
	closedir(d);
	if (len > 1)
		qsort(v, len, sizeof(*v), info_cmp);
	*list = v;
	*n = len;
	return 0;
}

static int
allowed(const struct snapfile_info *s, const struct snapfile_info *only, size_t n_only)
{
	if (only == NULL)
		return 1;
	for (size_t i = 0; i < n_only; i++)
		if (only[i].term == s->term && only[i].index == s->index)
			return 1;
	return 0;
}

int
snapfile_load_newest(const char *dir, const struct snapfile_info *only, size_t n_only,
    struct snapfile_data *out, snapfile_broken_fn *broken, void *arg,
    char *errmsg, size_t errlen)
{
	struct snapfile_info *list;
	size_t n;
	char msg[256];
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = snapfile_list(dir, &list, &n, errmsg, errlen)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		char from[SNAPFILE_DIR_BYTES_MAX + SNAPFILE_NAME_BYTES + 8], to[sizeof(from) + 8];

		if (!allowed(&list[i], only, n_only))
			continue;
		rc = snapfile_load(dir, list[i].name, out, msg, sizeof(msg));
		if (rc == 0) {
			mem_free(list);
			return 0;
		}
		if (rc != -ERR_PARSE && rc != -ERR_CRC && rc != -ERR_CORRUPT) {
			/* Not the file's fault: stop rather than skip a good snapshot. */
			mem_free(list);
			return set_msg(errmsg, errlen, rc, "%s", msg);
		}
		/* As etcd: move it aside so it is not tried again, then try older ones. */
		snprintf(from, sizeof(from), "%s/%s", dir, list[i].name);
		snprintf(to, sizeof(to), "%s.broken", from);
		if (rename(from, to) != 0) {
			int e = errno;

			mem_free(list);
			return set_msg(errmsg, errlen, -ERR_IO, "snap: rename %s to .broken: %s",
			    list[i].name, strerror(e));
		}
		if (broken != NULL)
			broken(arg, msg);
	}
	mem_free(list);
	return set_msg(errmsg, errlen, -ERR_NOTFOUND, "snap: no available snapshot in %s", dir);
}

static int
is_tmp_snap(const char *name)
{
	size_t n = strlen(name);

	return n > 9 && strcmp(name + n - 9, ".snap.tmp") == 0;
}

int
snapfile_purge(const char *dir, unsigned max_snapshots, unsigned *removed,
    char *errmsg, size_t errlen)
{
	struct snapfile_info *list;
	size_t n;
	unsigned done = 0;
	struct dirent *e;
	DIR *d;
	int rc, fd;

	if (removed != NULL)
		*removed = 0;
	if ((rc = snapfile_list(dir, &list, &n, errmsg, errlen)) != 0)
		return rc;
	d = opendir(dir);
	if (d == NULL) {
		mem_free(list);
		return errno == ENOENT ? 0 :
		    set_msg(errmsg, errlen, -ERR_IO, "snap: open %s: %s", dir, strerror(errno));
	}
	fd = dirfd(d);
	/* Leftovers of saves that crashed before their rename. */
	while ((e = readdir(d)) != NULL) {
		if (is_tmp_snap(e->d_name) && unlinkat(fd, e->d_name, 0) != 0 && errno != ENOENT) {
			rc = set_msg(errmsg, errlen, -ERR_IO, "snap: remove %s: %s", e->d_name, strerror(errno));
			break;
		}
	}
	for (size_t i = max_snapshots; rc == 0 && max_snapshots > 0 && i < n; i++) {
		if (unlinkat(fd, list[i].name, 0) != 0 && errno != ENOENT) {
			rc = set_msg(errmsg, errlen, -ERR_IO, "snap: remove %s: %s", list[i].name,
			    strerror(errno));
			break;
		}
		done++;
	}
	if (done > 0 && fsync(fd) != 0 && rc == 0)
		rc = set_msg(errmsg, errlen, -ERR_IO, "snap: sync %s: %s", dir, strerror(errno));
	closedir(d);
	mem_free(list);
	if (removed != NULL)
		*removed = done;
	return rc;
}
