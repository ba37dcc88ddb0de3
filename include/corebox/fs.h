/*
 * fs: small file helpers shared by the on-disk stores (wal, snapfile):
 * loops that finish a read or write across short counts and EINTR, a
 * directory fsync, mkdir -p, reading a whole file, and the 16-hex-digit
 * fields of wal and snapshot file names.
 *
 * Every function returns 0 or a negative -ERR_xxx; on -ERR_IO errno is left
 * as the failing call set it so callers can say why with strerror(errno).
 * Buffers passed in stay owned by the caller; fs_read_file_at hands the
 * caller a new buffer it must mem_free. Nothing here keeps state.
 */
#ifndef COREBOX_FS_H
#define COREBOX_FS_H

#include <stddef.h>
#include <stdint.h>

/* Longest path fs_mkdir_parents accepts, in bytes without the NUL. */
#define FS_PATH_BYTES_MAX 4095u

/* Writes all n bytes of p to fd. -ERR_IO with errno on failure. */
int fs_write_all(int fd, const void *p, size_t n);

/* Writes all n bytes of p to fd at offset off (the file offset is unchanged). */
int fs_pwrite_all(int fd, const void *p, size_t n, uint64_t off);

/* Reads exactly n bytes into p; end of file first is -ERR_IO with errno EIO. */
int fs_read_all(int fd, void *p, size_t n);

/* Opens the directory at path and fsyncs it, making renames in it durable. */
int fs_fsync_dir(const char *path);

/*
 * mkdir -p with mode 0700; existing directories are fine. path is not
 * modified. An empty path or one longer than FS_PATH_BYTES_MAX is -ERR_INVAL
 * with errno ENAMETOOLONG.
 */
int fs_mkdir_parents(const char *path);

/*
 * Reads the whole file name (relative to dirfd, or AT_FDCWD) into a new
 * buffer: *out (never NULL on success; caller mem_frees) and *len. A file
 * above max_bytes is -ERR_LIMIT, no memory -ERR_NOMEM, other failures
 * -ERR_IO with errno. On failure *out is NULL and *len 0.
 */
int fs_read_file_at(int dirfd, const char *name, size_t max_bytes, uint8_t **out, size_t *len);

/*
 * Parses exactly 16 lowercase hex digits at s (no terminator needed) into
 * *v; anything else is -ERR_PARSE and leaves *v alone.
 */
int fs_parse_hex16(const char *s, uint64_t *v);

#endif
