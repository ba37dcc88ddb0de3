/*
 * snapfile: the store's snapshot files (the role of etcd's snap package).
 *
 * A snapshot is one file "<dir>/%016x-%016x.snap" (term, index) holding an
 * opaque payload (the tree serialises itself) in a frame (little endian):
 *   off  0  char magic[8]  "cbsnap\r\n"
 *   off  8  u32 version    SNAPFILE_VERSION
 *   off 12  u32 flags      0
 *   off 16  u64 term
 *   off 24  u64 index
 *   off 32  u64 length     payload bytes
 *   off 40  u32 crc        CRC32C of the payload
 *   off 44  u32 hcrc       CRC32C of bytes 0..43
 *   off 48  payload; the file ends exactly after it
 *
 * Saving is atomic: "<name>.tmp" is written, fsynced, renamed into place
 * and the directory fsynced, so a crash leaves the old set of snapshots or
 * the new one, never a half file under a .snap name. Loading skips broken
 * files the way etcd does: each is renamed to "<name>.broken" and reported
 * through a callback, and the next older snapshot is tried.
 *
 * Functions return 0 or -ERR_xxx; errmsg parameters (may be NULL, errlen
 * bytes) receive a message such as "snap: bad crc in
 * 0000000000000002-0000000000000064.snap". The caller's payload is only
 * read. struct snapfile_data owns its payload until snapfile_data_free().
 *
 * Failpoints (test builds): "snap_after_write" (before the fsync) and
 * "snap_before_rename"; either leaves the previous set of snapshots intact.
 */
#ifndef COREBOX_SNAPFILE_H
#define COREBOX_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#define SNAPFILE_VERSION 1u
#define SNAPFILE_HEADER_BYTES 48u
/* Largest payload saved or loaded; larger files are reported broken. */
#define SNAPFILE_PAYLOAD_BYTES_MAX (1ull << 31)
/* Room for a snapshot file name plus NUL ("%016x-%016x.snap"). */
#define SNAPFILE_NAME_BYTES 40u
/* etcd's --max-snapshots default. */
#define SNAPFILE_MAX_SNAPSHOTS_DEFAULT 5u

/* A snapshot file found in a directory. */
struct snapfile_info {
	uint64_t term;
	uint64_t index;
	char name[SNAPFILE_NAME_BYTES];
};

/* A loaded snapshot. data (len bytes) is owned by the struct. */
struct snapfile_data {
	uint64_t term;
	uint64_t index;
	void *data;
	size_t len;
	char name[SNAPFILE_NAME_BYTES];
};

/* Decoded frame header (for snapfile_decode). */
struct snapfile_header {
	uint32_t version;
	uint64_t term;
	uint64_t index;
	uint64_t length;
	uint32_t crc;
};

/* Called for each broken snapshot skipped; msg says which file and why. */
typedef void snapfile_broken_fn(void *arg, const char *msg);

/*
 * Writes the snapshot (term, index) with len bytes of data atomically into
 * dir (created with its parents if missing). An existing file with the same
 * name is replaced. -ERR_LIMIT above SNAPFILE_PAYLOAD_BYTES_MAX.
 */
int snapfile_save(const char *dir, uint64_t term, uint64_t index,
    const void *data, size_t len, char *errmsg, size_t errlen);

/*
 * Loads the newest valid snapshot (highest term, then index, as etcd orders
 * names) into *out (zeroed first). If only is non-NULL, only snapshots whose
 * (term, index) equal one of its n_only entries are tried (the markers in
 * the WAL, as etcd's LoadNewestAvailable). Each broken file met on the way
 * is renamed to "<name>.broken" and reported through broken (may be NULL).
 * -ERR_NOTFOUND if there is no valid snapshot (a missing dir included).
 */
int snapfile_load_newest(const char *dir, const struct snapfile_info *only, size_t n_only,
    struct snapfile_data *out, snapfile_broken_fn *broken, void *arg,
    char *errmsg, size_t errlen);

/* Loads one named file (no renaming on failure). */
int snapfile_load(const char *dir, const char *name, struct snapfile_data *out,
    char *errmsg, size_t errlen);

void snapfile_data_free(struct snapfile_data *d);

/*
 * Lists the well formed snapshot names in dir, newest first, into a new
 * array *list (caller frees with mem_free) of *n entries. Other files are
 * ignored. A missing dir gives 0 entries.
 */
int snapfile_list(const char *dir, struct snapfile_info **list, size_t *n,
    char *errmsg, size_t errlen);

/*
 * Deletes all but the newest max_snapshots snapshot files (0 = unlimited:
 * delete none) and any stale "*.snap.tmp"; "*.broken" files are kept.
 * *removed (may be NULL) gets the count of snapshots deleted.
 */
int snapfile_purge(const char *dir, unsigned max_snapshots, unsigned *removed,
    char *errmsg, size_t errlen);

/*
 * Checks a whole file image in memory: frame, lengths and both CRCs. On
 * success fills *hdr and points *payload into buf (borrowed from the
 * caller). -ERR_PARSE for a bad frame, -ERR_CRC for a checksum mismatch.
 */
int snapfile_decode(const void *buf, size_t len, struct snapfile_header *hdr,
    const void **payload, char *errmsg, size_t errlen);

/* Name helpers: "%016x-%016x.snap". parse returns -ERR_PARSE if malformed. */
void snapfile_name_format(char *buf, uint64_t term, uint64_t index);
int snapfile_name_parse(const char *name, uint64_t *term, uint64_t *index);

#endif
