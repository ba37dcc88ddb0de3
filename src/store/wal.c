/*
 * wal: the store's write-ahead log (format and rules in corebox/wal.h).
 *
 * Appends encode records into an in-memory batch; a sync writes the batch
 * into preallocated segment files with one pwrite per segment touched and
 * one fdatasync, cutting a new segment (built under a .tmp name, fsynced,
 * renamed, directory fsynced) when the current one is full. Replay checks
 * every CRC, the segment names against their header records, the sequence
 * and index continuity between segments and raft's log rules, and truncates
 * only a torn tail of the last segment.
 *
 * This file must never return data it could not verify, never delete or
 * truncate anything but a torn tail or segments the caller released, and in
 * thread mode the helper thread must never allocate, log or touch the
 * loop-side fields: it owns w->io and the in-flight batch while a batch is in
 * flight and talks to the loop only through two eventfds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corebox/buf.h"
#include "corebox/crc32c.h"
#include "corebox/err.h"
#include "corebox/failpoint.h"
#include "corebox/fs.h"
#include "corebox/le.h"
#include "corebox/mem.h"
#include "corebox/wal.h"

/* Fixed payload sizes of the small record types. */
#define SEGMENT_PAYLOAD_BYTES 16u
#define METADATA_FIXED_BYTES 16u
#define HARDSTATE_PAYLOAD_BYTES 24u
#define SNAPSHOT_PAYLOAD_BYTES 16u

/* Room for the header records of a segment (metadata data excluded). */
#define SEGMENT_HEADER_FIXED_BYTES \
	(4 * WAL_RECORD_HEADER_BYTES + SEGMENT_PAYLOAD_BYTES + METADATA_FIXED_BYTES + \
	    SNAPSHOT_PAYLOAD_BYTES + HARDSTATE_PAYLOAD_BYTES)

/* Thread-mode batch states (w->job_state, accessed atomically). */
enum {
	JOB_IDLE = 0,
	JOB_RUNNING,
	JOB_DONE,
};

/*
 * The I/O side: owned by the loop while no batch is in flight and by the
 * helper thread while one is. Tracks what has been written, which is what a
 * cut needs for the header of the next segment.
 */
struct wal_io {
	int fd;                      /* current segment, read-write */
	uint64_t seq;                /* its sequence */
	uint64_t first_index;        /* its name index */
	uint64_t offset;             /* end of valid data in it */
	uint64_t header_end;         /* end of its header records */
	uint64_t last_index;         /* last index as of the records written */
	struct wal_hardstate hs;     /* last hard state written */
	struct wal_snapshot snap;    /* last marker written */
	uint64_t durable_index;      /* last_index as of the last fdatasync */
	char name[WAL_NAME_BYTES];
	char errmsg[WAL_ERRMSG_BYTES];
};

struct wal {
	char *dir;                   /* owned copy of opt->dir */
	uint64_t segment_bytes;
	enum wal_sync_mode mode;
	int dirfd;                   /* the wal directory, flock'ed; -1 when closed */
	int open;
	int broken;                  /* sticky error after a failed write or sync */

	/* Loop side. */
	struct buf pending;          /* encoded records not yet handed to a sync */
	uint64_t last_index;         /* last index appended */
	uint64_t durable;            /* durable index as of the last finished sync */
	char seg_name[WAL_NAME_BYTES];/* io.name as of the last finished sync */
	struct wal_hardstate last_hs;/* last hard state appended */
	uint64_t meta_node_id;
	uint64_t meta_cluster_id;
	uint8_t *meta_data;          /* owned copy of the caller's metadata bytes */
	size_t meta_len;
	uint8_t *hdrbuf;             /* scratch for segment header records, sized at open */
	size_t hdrcap;
	char errmsg[WAL_ERRMSG_BYTES];

	/* Handed to the I/O side. */
	struct wal_io io;
	struct buf inflight;         /* the batch being written in thread mode */

	/* Thread mode. */
	pthread_t thread;
	int thread_started;
	int kick_fd;                 /* loop -> thread: a batch is ready or quit */
	int done_fd;                 /* thread -> loop: the batch finished */
	int busy;                    /* loop side: a batch is in flight */
	int quit;                    /* set before the last kick */
	int job_state;
	int job_rc;
};

/* ---- little helpers ---- */

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

#define wal_fail(w, rc, ...) set_msg((w)->errmsg, sizeof((w)->errmsg), (rc), __VA_ARGS__)

static int
errno_rc(int e)
{
	switch (e) {
	case ENOMEM:
		return -ERR_NOMEM;
	case ENOENT:
		return -ERR_NOTFOUND;
	case EEXIST:
	case ENOTEMPTY:
		return -ERR_EXIST;
	default:
		return -ERR_IO;
	}
}

/*
 * Makes the file at least size bytes with its blocks allocated, so that
 * later writes inside it do not change the size an fdatasync must record.
 * Filesystems without fallocate get a sparse file, which is still correct.
 */
static int
preallocate(int fd, uint64_t size)
{
	struct stat st;

	if (fallocate(fd, 0, 0, (off_t)size) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -1;
	if (fstat(fd, &st) != 0)
		return -1;
	if ((uint64_t)st.st_size < size && ftruncate(fd, (off_t)size) != 0)
		return -1;
	return 0;
}

/* ---- names ---- */

void
wal_segment_name_format(char *buf, uint64_t seq, uint64_t first_index)
{
	snprintf(buf, WAL_NAME_BYTES, "%016llx-%016llx.wal",
	    (unsigned long long)seq, (unsigned long long)first_index);
}

int
wal_segment_name_parse(const char *name, uint64_t *seq, uint64_t *first_index)
{
	uint64_t a, b;

	if (name == NULL || strlen(name) != 37 || name[16] != '-' || strcmp(name + 33, ".wal") != 0)
		return -ERR_PARSE;
	if (fs_parse_hex16(name, &a) != 0 || fs_parse_hex16(name + 17, &b) != 0)
		return -ERR_PARSE;
	if (seq != NULL)
		*seq = a;
	if (first_index != NULL)
		*first_index = b;
	return 0;
}

struct seg {
	uint64_t seq;
	uint64_t first;
	char name[WAL_NAME_BYTES];
};

static int
seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
is_tmp_segment(const char *name)
{
	size_t n = strlen(name);

	return n > 8 && strcmp(name + n - 8, ".wal.tmp") == 0;
}

/*
 * Lists the segments in dir sorted by sequence into a new array (*out,
 * caller frees). With dirfd >= 0, stale "*.wal.tmp" files are deleted.
 */
static int
list_segments(const char *dir, int dirfd, struct seg **out, size_t *n, char *errmsg, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct seg *v = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (d == NULL)
		return set_msg(errmsg, errlen, errno_rc(errno), "wal: open %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		struct seg s;

		if (dirfd >= 0 && is_tmp_segment(e->d_name)) {
			/* A cut that crashed before its rename: never part of the log. */
			if (unlinkat(dirfd, e->d_name, 0) != 0 && errno != ENOENT) {
				rc = set_msg(errmsg, errlen, -ERR_IO, "wal: remove %s: %s",
				    e->d_name, strerror(errno));
				break;
			}
			continue;
		}
		if (wal_segment_name_parse(e->d_name, &s.seq, &s.first) != 0)
			continue;
		memcpy(s.name, e->d_name, 38);
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct seg *nv = mem_realloc(v, ncap * sizeof(*nv));

			if (nv == NULL) {
				rc = set_msg(errmsg, errlen, -ERR_NOMEM, "wal: list %s: out of memory", dir);
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[len++] = s;
	}
	closedir(d);
	if (rc != 0) {
		mem_free(v);
		return rc;
	}
	if (len > 1)
		qsort(v, len, sizeof(*v), seg_cmp);
	*out = v;
	*n = len;
	return 0;
}

int
wal_exists(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	if (d == NULL)
		return 0;
	while (!found && (e = readdir(d)) != NULL)
		found = wal_segment_name_parse(e->d_name, NULL, NULL) == 0;
	closedir(d);
	return found;
}

/* ---- encoding ---- */

/* Encodes one record at dst (room for 12 + nfixed + ndata) and returns its size. */
static size_t
rec_encode(uint8_t *dst, uint8_t type, const uint8_t *fixed, size_t nfixed,
    const void *data, size_t ndata)
{
	size_t plen = nfixed + ndata;

	le_put32(dst + 4, (uint32_t)plen);
	dst[8] = type;
	dst[9] = dst[10] = dst[11] = 0;
	memcpy(dst + WAL_RECORD_HEADER_BYTES, fixed, nfixed);
	if (ndata > 0)
		memcpy(dst + WAL_RECORD_HEADER_BYTES + nfixed, data, ndata);
	le_put32(dst, crc32c(0, dst + 4, 8 + plen));
	return WAL_RECORD_HEADER_BYTES + plen;
}

static size_t
enc_hardstate(uint8_t *dst, const struct wal_hardstate *hs)
{
	uint8_t f[HARDSTATE_PAYLOAD_BYTES];

	le_put64(f, hs->term);
	le_put64(f + 8, hs->vote);
	le_put64(f + 16, hs->commit);
	return rec_encode(dst, WAL_REC_HARDSTATE, f, sizeof(f), NULL, 0);
}

static size_t
enc_snapshot(uint8_t *dst, const struct wal_snapshot *s)
{
	uint8_t f[SNAPSHOT_PAYLOAD_BYTES];

	le_put64(f, s->term);
	le_put64(f + 8, s->index);
	return rec_encode(dst, WAL_REC_SNAPSHOT, f, sizeof(f), NULL, 0);
}

/* The header records of a segment, into w->hdrbuf; returns their size. */
static size_t
enc_segment_header(struct wal *w, uint64_t seq, uint64_t first,
    const struct wal_snapshot *snap, const struct wal_hardstate *hs)
{
	uint8_t f[METADATA_FIXED_BYTES];
	uint8_t *p = w->hdrbuf;

	le_put64(f, seq);
	le_put64(f + 8, first);
	p += rec_encode(p, WAL_REC_SEGMENT, f, SEGMENT_PAYLOAD_BYTES, NULL, 0);
	le_put64(f, w->meta_node_id);
	le_put64(f + 8, w->meta_cluster_id);
	p += rec_encode(p, WAL_REC_METADATA, f, METADATA_FIXED_BYTES, w->meta_data, w->meta_len);
	p += enc_snapshot(p, snap);
	p += enc_hardstate(p, hs);
	return (size_t)(p - w->hdrbuf);
}

/* Reserves n bytes at the end of the pending batch. */
static uint8_t *
pending_reserve(struct wal *w, size_t n)
{
	if (buf_reserve(&w->pending, n) != 0)
		return NULL;
	return (uint8_t *)w->pending.data + w->pending.len;
}

/* ---- the I/O side (loop in inline mode, helper thread in thread mode) ---- */

#define io_fail(w, rc, ...) set_msg((w)->io.errmsg, sizeof((w)->io.errmsg), (rc), __VA_ARGS__)

/* Applies a written record to what the next segment header must repeat. */
static void
io_track(struct wal_io *io, const uint8_t *rec)
{
	const uint8_t *p = rec + WAL_RECORD_HEADER_BYTES;

	switch (rec[8]) {
	case WAL_REC_ENTRY:
		io->last_index = le_get64(p);
		break;
	case WAL_REC_HARDSTATE:
		io->hs.term = le_get64(p);
		io->hs.vote = le_get64(p + 8);
		io->hs.commit = le_get64(p + 16);
		break;
	case WAL_REC_SNAPSHOT:
		io->snap.term = le_get64(p);
		io->snap.index = le_get64(p + 8);
		if (io->snap.index > io->last_index)
			io->last_index = io->snap.index;
		break;
	default:
		break;
	}
}

/*
 * Closes the full segment and starts the next: the old one is cut to its
 * used length, the new one is built under a .tmp name with its header
 * records, made durable, renamed into place and the directory synced.
 */
static int
io_cut(struct wal *w)
{
	struct wal_io *io = &w->io;
	char name[WAL_NAME_BYTES], tmp[WAL_NAME_BYTES + 8];
	uint64_t seq = io->seq + 1, first = io->last_index + 1;
	size_t hlen;
	int fd;

	if (FAILPOINT("wal_before_cut"))
		return io_fail(w, -ERR_IO, "wal: failpoint wal_before_cut");
	if (ftruncate(io->fd, (off_t)io->offset) != 0 || fsync(io->fd) != 0)
		return io_fail(w, -ERR_IO, "wal: truncate %s: %s", io->name, strerror(errno));
	wal_segment_name_format(name, seq, first);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(w->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return io_fail(w, -ERR_IO, "wal: create %s: %s", tmp, strerror(errno));
	hlen = enc_segment_header(w, seq, first, &io->snap, &io->hs);
	if (preallocate(fd, w->segment_bytes) != 0 || fs_pwrite_all(fd, w->hdrbuf, hlen, 0) != 0 ||
	    fsync(fd) != 0) {
		int e = errno;

		close(fd);
		unlinkat(w->dirfd, tmp, 0);
		return io_fail(w, -ERR_IO, "wal: write %s: %s", tmp, strerror(e));
	}
	if (renameat(w->dirfd, tmp, w->dirfd, name) != 0 || fsync(w->dirfd) != 0) {
		int e = errno;

		close(fd);
		return io_fail(w, -ERR_IO, "wal: rename %s: %s", tmp, strerror(e));
	}
	close(io->fd);
	io->fd = fd;
	io->seq = seq;
	io->first_index = first;
	io->offset = hlen;
	io->header_end = hlen;
	memcpy(io->name, name, sizeof(name));
	if (FAILPOINT("wal_after_cut"))
		return io_fail(w, -ERR_IO, "wal: failpoint wal_after_cut");
	return 0;
}

/*
 * Writes a batch of whole records: one pwrite per segment touched, one
 * fdatasync per segment touched. Records never span segments; a record
 * larger than a fresh segment's free space is written anyway (the file
 * grows and fdatasync records the size).
 */
static int
io_write_batch(struct wal *w, const uint8_t *data, size_t len)
{
	struct wal_io *io = &w->io;
	size_t pos = 0;
	int rc;

	while (pos < len) {
		size_t end = pos;

		while (end < len) {
			size_t rlen = WAL_RECORD_HEADER_BYTES + le_get32(data + end + 4);
			int fresh = end == pos && io->offset == io->header_end;

			if (io->offset + (end - pos) + rlen > w->segment_bytes && !fresh)
				break;
			io_track(io, data + end);
			end += rlen;
		}
		if (end > pos) {
			if (FAILPOINT("wal_before_write"))
				return io_fail(w, -ERR_IO, "wal: failpoint wal_before_write");
			if (fs_pwrite_all(io->fd, data + pos, end - pos, io->offset) != 0)
				return io_fail(w, -ERR_IO, "wal: write %s at offset %llu: %s", io->name,
				    (unsigned long long)io->offset, strerror(errno));
			io->offset += end - pos;
			if (FAILPOINT("wal_after_write"))
				return io_fail(w, -ERR_IO, "wal: failpoint wal_after_write");
		}
		if (end < len) {
			if (fdatasync(io->fd) != 0)
				return io_fail(w, -ERR_IO, "wal: fdatasync %s: %s", io->name, strerror(errno));
			if ((rc = io_cut(w)) != 0)
				return rc;
		}
		pos = end;
	}
	if (FAILPOINT("wal_before_sync"))
		return io_fail(w, -ERR_IO, "wal: failpoint wal_before_sync");
	if (fdatasync(io->fd) != 0)
		return io_fail(w, -ERR_IO, "wal: fdatasync %s: %s", io->name, strerror(errno));
	if (FAILPOINT("wal_after_sync"))
		return io_fail(w, -ERR_IO, "wal: failpoint wal_after_sync");
	io->durable_index = io->last_index;
	return 0;
}

static int
eventfd_write1(int fd)
{
	uint64_t one = 1;

	for (;;) {
		if (write(fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static void *
sync_thread(void *arg)
{
	struct wal *w = arg;

	for (;;) {
		uint64_t v;
		ssize_t k = read(w->kick_fd, &v, sizeof(v));

		if (k < 0 && errno == EINTR)
			continue;
		if (__atomic_load_n(&w->quit, __ATOMIC_ACQUIRE))
			break;
		if (__atomic_load_n(&w->job_state, __ATOMIC_ACQUIRE) != JOB_RUNNING)
			continue;
		w->job_rc = io_write_batch(w, (const uint8_t *)w->inflight.data, w->inflight.len);
		__atomic_store_n(&w->job_state, JOB_DONE, __ATOMIC_RELEASE);
		/* An eventfd write only fails on counter overflow, which one writer cannot reach. */
		(void)eventfd_write1(w->done_fd);
	}
	return NULL;
}

/* ---- replay ---- */

struct replayer {
	struct wal_replay *out;
	struct wal_snapshot want;    /* the caller's snapshot */
	int have_marker;             /* a marker at or before want.index was seen */
	struct wal_snapshot marker;  /* the latest such */
	int exact;                   /* the marker at exactly want was seen */
	struct wal_snapshot latest;  /* the last marker seen at all */
	int have_meta;
	int started;                 /* a segment header was seen */
	uint64_t last;               /* last index of the log so far */
	char *errmsg;
	size_t errlen;
};

#define rp_fail(r, rc, ...) set_msg((r)->errmsg, (r)->errlen, (rc), __VA_ARGS__)

void
wal_replay_free(struct wal_replay *rp)
{
	if (rp == NULL)
		return;
	/* meta.data is the replay's own allocation; const only for readers. */
	mem_free((void *)(uintptr_t)rp->meta.data);
	mem_free(rp->entries);
	mem_free(rp->arena_);
	memset(rp, 0, sizeof(*rp));
}

/*
 * While replaying, entries[i].data holds the offset of its bytes in the
 * arena (the arena moves when it grows); replay_finish turns offsets into
 * pointers.
 */
static int
replay_entry(struct replayer *r, const struct wal_entry *e, const char *file, uint64_t off)
{
	struct wal_replay *out = r->out;

	if (e->index == 0)
		return rp_fail(r, -ERR_CORRUPT, "wal: entry with index 0 in %s at offset %llu",
		    file, (unsigned long long)off);
	if (e->index > r->last + 1)
		return rp_fail(r, -ERR_CORRUPT, "wal: entry index %llu follows %llu in %s at offset %llu",
		    (unsigned long long)e->index, (unsigned long long)r->last, file,
		    (unsigned long long)off);
	if (out->n_entries > 0 && e->index <= out->entries[out->n_entries - 1].index) {
		/* Raft truncation: this entry replaces the suffix from its index on. */
		uint64_t first = out->entries[0].index;
		size_t keep = e->index > first ? (size_t)(e->index - first) : 0;

		out->arena_len_ = (size_t)(uintptr_t)out->entries[keep].data;
		out->n_entries = keep;
	}
	r->last = e->index;
	if (e->index <= r->want.index)
		return 0;
	if (out->n_entries == out->entries_cap_) {
		size_t ncap = out->entries_cap_ ? out->entries_cap_ * 2 : 64;
		struct wal_entry *nv = mem_realloc(out->entries, ncap * sizeof(*nv));

		if (nv == NULL)
			return rp_fail(r, -ERR_NOMEM, "wal: replay: out of memory");
		out->entries = nv;
		out->entries_cap_ = ncap;
	}
	if (e->len > out->arena_cap_ - out->arena_len_) {
		size_t ncap = out->arena_cap_ ? out->arena_cap_ : 4096;
		void *na;

		while (ncap - out->arena_len_ < e->len)
			ncap *= 2;
		na = mem_realloc(out->arena_, ncap);
		if (na == NULL)
			return rp_fail(r, -ERR_NOMEM, "wal: replay: out of memory");
		out->arena_ = na;
		out->arena_cap_ = ncap;
	}
	out->entries[out->n_entries] = *e;
	out->entries[out->n_entries].data = (const void *)(uintptr_t)out->arena_len_;
	if (e->len > 0)
		memcpy((uint8_t *)out->arena_ + out->arena_len_, e->data, e->len);
	out->arena_len_ += e->len;
	out->n_entries++;
	return 0;
}

static int
replay_marker(struct replayer *r, const struct wal_snapshot *m, const char *file, uint64_t off)
{
	if (m->index <= r->want.index) {
		if (m->index == r->want.index) {
			if (m->term != r->want.term)
				return rp_fail(r, -ERR_CORRUPT,
				    "wal: snapshot marker term %llu at index %llu in %s at offset %llu does not match snapshot term %llu",
				    (unsigned long long)m->term, (unsigned long long)m->index, file,
				    (unsigned long long)off, (unsigned long long)r->want.term);
			r->exact = 1;
		}
		if (!r->have_marker || m->index >= r->marker.index)
			r->marker = *m;
		r->have_marker = 1;
	} else if (m->index > r->last) {
		/*
		 * The log jumps to a newer snapshot than the caller's: the entries
		 * between are not in the log, so it cannot go with that snapshot.
		 */
		return rp_fail(r, -ERR_NOTFOUND,
		    "wal: snapshot marker index %llu in %s at offset %llu skips entries after %llu: load a newer snapshot than index %llu",
		    (unsigned long long)m->index, file, (unsigned long long)off,
		    (unsigned long long)r->last, (unsigned long long)r->want.index);
	}
	r->latest = *m;
	if (m->index > r->last)
		r->last = m->index;
	return 0;
}

static int
replay_metadata(struct replayer *r, const uint8_t *p, size_t n, const char *file, uint64_t off)
{
	struct wal_metadata *md = &r->out->meta;
	uint64_t node = le_get64(p), cluster = le_get64(p + 8);
	size_t dlen = n - METADATA_FIXED_BYTES;

	if (r->have_meta) {
		if (md->node_id != node || md->cluster_id != cluster || md->len != dlen ||
		    (dlen > 0 && memcmp(md->data, p + METADATA_FIXED_BYTES, dlen) != 0))
			return rp_fail(r, -ERR_CORRUPT, "wal: metadata in %s at offset %llu differs from earlier metadata",
			    file, (unsigned long long)off);
		return 0;
	}
	if (dlen > 0) {
		void *d = mem_alloc(dlen);

		if (d == NULL)
			return rp_fail(r, -ERR_NOMEM, "wal: replay: out of memory");
		memcpy(d, p + METADATA_FIXED_BYTES, dlen);
		md->data = d;
	}
	md->node_id = node;
	md->cluster_id = cluster;
	md->len = dlen;
	r->have_meta = 1;
	return 0;
}

/* Checks the header of a record at off; returns its payload length or -1. */
static long
rec_check(const uint8_t *buf, size_t len, size_t off, int *plausible)
{
	uint32_t plen;
	uint8_t type;

	*plausible = 0;
	if (len - off < WAL_RECORD_HEADER_BYTES)
		return -1;
	plen = le_get32(buf + off + 4);
	type = buf[off + 8];
	if (type < WAL_REC_SEGMENT || type > WAL_REC_ENTRY || buf[off + 9] != 0 ||
	    buf[off + 10] != 0 || buf[off + 11] != 0 || plen > WAL_RECORD_BYTES_MAX ||
	    plen > len - off - WAL_RECORD_HEADER_BYTES)
		return -1;
	*plausible = 1;
	if (crc32c(0, buf + off + 4, 8 + (size_t)plen) != le_get32(buf + off))
		return -1;
	return (long)plen;
}

/* The offset of the first intact record at or after from, or len if none. */
static size_t
find_record(const uint8_t *buf, size_t len, size_t from)
{
	int plausible;

	for (size_t p = from; p + WAL_RECORD_HEADER_BYTES <= len; p++) {
		/* Cheap filter first: most bytes of a torn tail are zeros. */
		if (buf[p + 8] < WAL_REC_SEGMENT || buf[p + 8] > WAL_REC_ENTRY)
			continue;
		if (rec_check(buf, len, p, &plausible) >= 0)
			return p;
	}
	return len;
}

static int
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

/* Words for the error message about the record at off that rec_check refused. */
static const char *
bad_record_reason(const uint8_t *buf, size_t len, size_t off, int plausible)
{
	if (plausible)
		return "bad crc";
	if (len - off < WAL_RECORD_HEADER_BYTES)
		return "incomplete record";
	/* A sane header whose length runs past the end: cut off mid-record. */
	if (buf[off + 8] >= WAL_REC_SEGMENT && buf[off + 8] <= WAL_REC_ENTRY &&
	    le_get32(buf + off + 4) > len - off - WAL_RECORD_HEADER_BYTES)
		return "incomplete record";
	return "bad record header";
}

static const char *
rec_type_name(uint8_t t)
{
	switch (t) {
	case WAL_REC_SEGMENT:
		return "segment";
	case WAL_REC_METADATA:
		return "metadata";
	case WAL_REC_HARDSTATE:
		return "hard state";
	case WAL_REC_SNAPSHOT:
		return "snapshot";
	default:
		return "entry";
	}
}

/*
 * Replays one segment image. named: check the segment record against the
 * name's (seq, first). is_last: a bad record followed by nothing intact is a
 * torn tail (*valid_end, *torn), anything else is corruption. *header_end
 * gets the end of the segment's leading records.
 */
static int
replay_segment(struct replayer *r, const uint8_t *buf, size_t len, const char *file,
    int named, uint64_t seq, uint64_t first, int is_last,
    size_t *valid_end, size_t *header_end, int *torn)
{
	size_t off = 0;
	int nrec = 0;

	*torn = 0;
	*header_end = 0;
	while (off < len) {
		int plausible;
		long plen;
		const uint8_t *p;
		uint8_t type;

		/* Zeros to the end: the unused, preallocated rest of the segment. */
		if (buf[off] == 0 && all_zero(buf + off, len - off))
			break;
		plen = rec_check(buf, len, off, &plausible);
		if (plen < 0) {
			const char *why = bad_record_reason(buf, len, off, plausible);
			size_t next;

			if (!is_last || nrec < 2)
				return rp_fail(r, -ERR_CORRUPT, "wal: %s in %s at offset %llu",
				    why, file, (unsigned long long)off);
			/*
			 * Search from the next byte, not past the claimed length: a
			 * flipped length bit must not hide acknowledged records behind
			 * it. The price is that a torn record whose payload happens to
			 * embed a whole valid record is reported as corruption, which
			 * fails safe.
			 */
			next = find_record(buf, len, off + 1);
			if (next < len)
				return rp_fail(r, -ERR_CORRUPT,
				    "wal: %s in %s at offset %llu followed by a valid record at offset %llu",
				    why, file, (unsigned long long)off, (unsigned long long)next);
			*torn = 1;
			break;
		}
		p = buf + off + WAL_RECORD_HEADER_BYTES;
		type = buf[off + 8];
		switch (type) {
		case WAL_REC_SEGMENT:
			if (plen != SEGMENT_PAYLOAD_BYTES || nrec != 0)
				goto bad;
			break;
		case WAL_REC_METADATA:
			if (plen < (long)METADATA_FIXED_BYTES ||
			    plen > (long)(METADATA_FIXED_BYTES + WAL_METADATA_BYTES_MAX))
				goto bad;
			break;
		case WAL_REC_HARDSTATE:
			if (plen != HARDSTATE_PAYLOAD_BYTES)
				goto bad;
			break;
		case WAL_REC_SNAPSHOT:
			if (plen != SNAPSHOT_PAYLOAD_BYTES)
				goto bad;
			break;
		default:
			if (plen < (long)WAL_ENTRY_HEADER_BYTES)
				goto bad;
			break;
		}
		if (nrec == 0 && type != WAL_REC_SEGMENT)
			return rp_fail(r, -ERR_CORRUPT, "wal: %s does not start with a segment record", file);
		if (nrec == 1 && type != WAL_REC_METADATA)
			return rp_fail(r, -ERR_CORRUPT, "wal: %s has no metadata record at offset %llu",
			    file, (unsigned long long)off);
		switch (type) {
		case WAL_REC_SEGMENT: {
			uint64_t s = le_get64(p), f = le_get64(p + 8);
			uint64_t expect = f ? f - 1 : 0;

			if (named && (s != seq || f != first))
				return rp_fail(r, -ERR_CORRUPT,
				    "wal: segment record (%016llx-%016llx) in %s does not match its name",
				    (unsigned long long)s, (unsigned long long)f, file);
			if (!r->started && f > r->want.index)
				return rp_fail(r, -ERR_NOTFOUND,
				    "wal: %s starts after index %llu, past snapshot index %llu",
				    file, (unsigned long long)expect, (unsigned long long)r->want.index);
			if (r->started && r->last != expect)
				return rp_fail(r, -ERR_CORRUPT,
				    "wal: %s starts after index %llu but the previous segment ends at index %llu",
				    file, (unsigned long long)expect, (unsigned long long)r->last);
			r->last = expect;
			r->started = 1;
			break;
		}
		case WAL_REC_METADATA: {
			int rc = replay_metadata(r, p, (size_t)plen, file, off);

			if (rc != 0)
				return rc;
			break;
		}
		case WAL_REC_HARDSTATE:
			r->out->hs.term = le_get64(p);
			r->out->hs.vote = le_get64(p + 8);
			r->out->hs.commit = le_get64(p + 16);
			break;
		case WAL_REC_SNAPSHOT: {
			struct wal_snapshot m = { le_get64(p), le_get64(p + 8) };
			int rc = replay_marker(r, &m, file, off);

			if (rc != 0)
				return rc;
			break;
		}
		default: {
			struct wal_entry e;
			int rc;

			e.index = le_get64(p);
			e.term = le_get64(p + 8);
			e.kind = le_get32(p + 16);
			e.data = p + WAL_ENTRY_HEADER_BYTES;
			e.len = (size_t)plen - WAL_ENTRY_HEADER_BYTES;
			if ((rc = replay_entry(r, &e, file, off)) != 0)
				return rc;
			break;
		}
		}
		/* Leading records: segment, metadata, then snapshot and hard state. */
		if (*header_end == off && nrec < 4 &&
		    (nrec < 2 || type == WAL_REC_SNAPSHOT || type == WAL_REC_HARDSTATE))
			*header_end = off + WAL_RECORD_HEADER_BYTES + (size_t)plen;
		off += WAL_RECORD_HEADER_BYTES + (size_t)plen;
		nrec++;
		continue;
bad:
		return rp_fail(r, -ERR_CORRUPT, "wal: bad %s record length %ld in %s at offset %llu",
		    rec_type_name(type), plen, file, (unsigned long long)off);
	}
	if (nrec < 2)
		return rp_fail(r, -ERR_CORRUPT, "wal: %s has no header records", file);
	*valid_end = off;
	return 0;
}

/* Turns arena offsets into pointers and checks the snapshot was found. */
static int
replay_finish(struct replayer *r)
{
	struct wal_replay *out = r->out;

	if (!r->have_marker)
		return rp_fail(r, -ERR_NOTFOUND,
		    "wal: no snapshot marker at or before index %llu: the log does not go with that snapshot",
		    (unsigned long long)r->want.index);
	for (size_t i = 0; i < out->n_entries; i++) {
		size_t off = (size_t)(uintptr_t)out->entries[i].data;

		out->entries[i].data = out->entries[i].len > 0 ? (uint8_t *)out->arena_ + off : NULL;
	}
	out->snap = r->marker;
	out->last_index = r->last > r->want.index ? r->last : r->want.index;
	return 0;
}

static void
replayer_init(struct replayer *r, struct wal_replay *out, const struct wal_snapshot *snap,
    char *errmsg, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	memset(out, 0, sizeof(*out));
	r->out = out;
	if (snap != NULL)
		r->want = *snap;
	r->errmsg = errmsg;
	r->errlen = errlen;
	if (errmsg != NULL && errlen > 0)
		errmsg[0] = '\0';
}

int
wal_replay_image(const void *buf, size_t len, const struct wal_snapshot *snap,
    struct wal_replay *out, char *errmsg, size_t errlen)
{
	struct replayer r;
	size_t end = 0, hend;
	int torn, rc;

	replayer_init(&r, out, snap, errmsg, errlen);
	rc = replay_segment(&r, buf, len, "image", 0, 0, 0, 1, &end, &hend, &torn);
	if (rc == 0)
		rc = replay_finish(&r);
	if (rc != 0)
		return rc;
	if (torn) {
		out->torn = 1;
		out->torn_offset = end;
		snprintf(out->torn_file, sizeof(out->torn_file), "image");
		snprintf(out->notice, sizeof(out->notice),
		    "wal: torn tail at offset %llu in image", (unsigned long long)end);
	}
	return 0;
}

/* ---- life cycle ---- */

struct wal *
wal_new(const struct wal_options *opt)
{
	struct wal *w;

	if (opt == NULL || opt->dir == NULL || opt->dir[0] == '\0' ||
	    (opt->segment_bytes != 0 && opt->segment_bytes < WAL_SEGMENT_BYTES_MIN) ||
	    (opt->sync_mode != WAL_SYNC_INLINE && opt->sync_mode != WAL_SYNC_THREAD))
		return NULL;
	w = mem_calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->dir = mem_strdup(opt->dir);
	if (w->dir == NULL) {
		mem_free(w);
		return NULL;
	}
	w->segment_bytes = opt->segment_bytes ? opt->segment_bytes : WAL_SEGMENT_BYTES_DEFAULT;
	w->mode = opt->sync_mode;
	w->dirfd = -1;
	w->io.fd = -1;
	w->kick_fd = -1;
	w->done_fd = -1;
	buf_init(&w->pending);
	buf_init(&w->inflight);
	return w;
}

const char *
wal_errmsg(const struct wal *w)
{
	return w->errmsg;
}

/* Copies the metadata and sizes the header scratch buffer. */
static int
set_metadata(struct wal *w, uint64_t node, uint64_t cluster, const void *data, size_t len)
{
	mem_free(w->meta_data);
	w->meta_data = NULL;
	mem_free(w->hdrbuf);
	w->hdrbuf = NULL;
	if (len > 0) {
		w->meta_data = mem_alloc(len);
		if (w->meta_data == NULL)
			return wal_fail(w, -ERR_NOMEM, "wal: out of memory");
		memcpy(w->meta_data, data, len);
	}
	w->meta_len = len;
	w->meta_node_id = node;
	w->meta_cluster_id = cluster;
	w->hdrcap = SEGMENT_HEADER_FIXED_BYTES + len;
	w->hdrbuf = mem_alloc(w->hdrcap);
	if (w->hdrbuf == NULL)
		return wal_fail(w, -ERR_NOMEM, "wal: out of memory");
	return 0;
}

static int
lock_dir(struct wal *w)
{
	w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0)
		return wal_fail(w, errno_rc(errno), "wal: open %s: %s", w->dir, strerror(errno));
	if (flock(w->dirfd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		close(w->dirfd);
		w->dirfd = -1;
		if (e == EWOULDBLOCK)
			return wal_fail(w, -ERR_STATE, "wal: %s is in use by another process", w->dir);
		return wal_fail(w, -ERR_IO, "wal: lock %s: %s", w->dir, strerror(e));
	}
	return 0;
}

static int
start_thread(struct wal *w)
{
	int e;

	if (w->mode != WAL_SYNC_THREAD)
		return 0;
	w->kick_fd = eventfd(0, EFD_CLOEXEC);
	w->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->kick_fd < 0 || w->done_fd < 0) {
		int saved = errno;

		if (w->kick_fd >= 0)
			close(w->kick_fd);
		if (w->done_fd >= 0)
			close(w->done_fd);
		w->kick_fd = w->done_fd = -1;
		return wal_fail(w, -ERR_IO, "wal: eventfd: %s", strerror(saved));
	}
	e = pthread_create(&w->thread, NULL, sync_thread, w);
	if (e != 0) {
		close(w->kick_fd);
		close(w->done_fd);
		w->kick_fd = w->done_fd = -1;
		return wal_fail(w, e == EAGAIN ? -ERR_NOMEM : -ERR_IO, "wal: start sync thread: %s",
		    strerror(e));
	}
	w->thread_started = 1;
	return 0;
}

/* Removes a directory left by a crashed wal_create (flat: segment files only). */
static int
remove_tmp_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) != 0) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	return rmdir(path);
}

/* Undoes a half-done create or open so the struct can be closed or retried. */
static int
close_files(struct wal *w, int rc)
{
	if (w->io.fd >= 0) {
		close(w->io.fd);
		w->io.fd = -1;
	}
	if (w->dirfd >= 0) {
		close(w->dirfd);
		w->dirfd = -1;
	}
	buf_reset(&w->pending);
	return rc;
}

int
wal_create(struct wal *w, const struct wal_metadata *md)
{
	char tmpdir[4096], parent[4096], path[4096 + WAL_NAME_BYTES + 2], name[WAL_NAME_BYTES];
	struct wal_snapshot zs = { 0, 0 };
	struct wal_hardstate zh = { 0, 0, 0 };
	size_t hlen, n = strlen(w->dir);
	char *slash;
	int fd, rc;

	w->errmsg[0] = '\0';
	if (w->open)
		return wal_fail(w, -ERR_STATE, "wal: already open");
	if (md == NULL || md->len > WAL_METADATA_BYTES_MAX || (md->len > 0 && md->data == NULL))
		return wal_fail(w, -ERR_INVAL, "wal: bad metadata");
	while (n > 1 && w->dir[n - 1] == '/')
		n--;
	if (n + 5 > sizeof(tmpdir))
		return wal_fail(w, -ERR_INVAL, "wal: directory name too long");
	if (wal_exists(w->dir))
		return wal_fail(w, -ERR_EXIST, "wal: %s already holds a log", w->dir);
	if ((rc = set_metadata(w, md->node_id, md->cluster_id, md->data, md->len)) != 0)
		return rc;
	snprintf(tmpdir, sizeof(tmpdir), "%.*s.tmp", (int)n, w->dir);
	snprintf(parent, sizeof(parent), "%.*s", (int)n, w->dir);
	slash = strrchr(parent, '/');
	if (slash == NULL)
		snprintf(parent, sizeof(parent), ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	if (fs_mkdir_parents(parent) != 0)
		return wal_fail(w, errno_rc(errno), "wal: create %s: %s", parent, strerror(errno));
	if (remove_tmp_dir(tmpdir) != 0 || mkdir(tmpdir, 0700) != 0)
		return wal_fail(w, -ERR_IO, "wal: create %s: %s", tmpdir, strerror(errno));
	wal_segment_name_format(name, 0, 0);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return wal_fail(w, -ERR_IO, "wal: create %s: %s", path, strerror(errno));
	hlen = enc_segment_header(w, 0, 0, &zs, &zh);
	if (preallocate(fd, w->segment_bytes) != 0 || fs_pwrite_all(fd, w->hdrbuf, hlen, 0) != 0 ||
	    fsync(fd) != 0) {
		rc = wal_fail(w, -ERR_IO, "wal: write %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	close(fd);
	if (fs_fsync_dir(tmpdir) != 0)
		return wal_fail(w, -ERR_IO, "wal: sync %s: %s", tmpdir, strerror(errno));
	/* rename(2) replaces an empty directory, so a pre-made --wal-dir works. */
	if (rename(tmpdir, w->dir) != 0) {
		rc = wal_fail(w, errno_rc(errno), "wal: rename %s to %s: %s", tmpdir, w->dir,
		    strerror(errno));
		remove_tmp_dir(tmpdir);
		return rc;
	}
	if (fs_fsync_dir(parent) != 0)
		return wal_fail(w, -ERR_IO, "wal: sync %s: %s", parent, strerror(errno));
	if ((rc = lock_dir(w)) != 0)
		return rc;
	w->io.fd = openat(w->dirfd, name, O_RDWR | O_CLOEXEC);
	if (w->io.fd < 0)
		return close_files(w, wal_fail(w, -ERR_IO, "wal: open %s: %s", name, strerror(errno)));
	memcpy(w->io.name, name, sizeof(name));
	w->io.seq = 0;
	w->io.first_index = 0;
	w->io.offset = hlen;
	w->io.header_end = hlen;
	w->io.last_index = 0;
	w->io.durable_index = 0;
	w->io.hs = zh;
	w->io.snap = zs;
	w->last_index = 0;
	w->last_hs = zh;
	w->durable = 0;
	memcpy(w->seg_name, name, sizeof(name));
	if ((rc = start_thread(w)) != 0)
		return close_files(w, rc);
	w->open = 1;
	return 0;
}

/* Reads a whole segment file into a new buffer (*out, caller frees). */
static int
read_segment(struct wal *w, const char *name, uint8_t **out, size_t *len)
{
	int rc = fs_read_file_at(w->dirfd, name, SIZE_MAX, out, len);

	if (rc == -ERR_NOMEM)
		return wal_fail(w, rc, "wal: read %s: out of memory", name);
	if (rc != 0)
		return wal_fail(w, -ERR_IO, "wal: read %s: %s", name, strerror(errno));
	return 0;
}

int
wal_open(struct wal *w, const struct wal_snapshot *snap, struct wal_replay *out)
{
	struct replayer r;
	struct seg *segs = NULL;
	size_t nseg = 0, start, end = 0, hend = 0;
	int torn = 0, rc;

	replayer_init(&r, out, snap, w->errmsg, sizeof(w->errmsg));
	if (w->open)
		return wal_fail(w, -ERR_STATE, "wal: already open");
	if ((rc = lock_dir(w)) != 0)
		return rc;
	if ((rc = list_segments(w->dir, w->dirfd, &segs, &nseg, w->errmsg, sizeof(w->errmsg))) != 0)
		goto fail;
	if (nseg == 0) {
		rc = wal_fail(w, -ERR_NOTFOUND, "wal: no segments in %s", w->dir);
		goto fail;
	}
	for (size_t i = 1; i < nseg; i++) {
		if (segs[i].seq != segs[i - 1].seq + 1) {
			rc = wal_fail(w, -ERR_CORRUPT, "wal: segment %s does not follow %s",
			    segs[i].name, segs[i - 1].name);
			goto fail;
		}
	}
	/* Entries after the snapshot are all in or after the last segment cut before it. */
	start = nseg;
	for (size_t i = 0; i < nseg; i++)
		if (segs[i].first <= r.want.index)
			start = i;
	if (start == nseg) {
		rc = wal_fail(w, -ERR_NOTFOUND, "wal: no segment in %s goes back to snapshot index %llu",
		    w->dir, (unsigned long long)r.want.index);
		goto fail;
	}
	for (size_t i = start; i < nseg; i++) {
		uint8_t *b;
		size_t blen;
		int last = i + 1 == nseg;

		if ((rc = read_segment(w, segs[i].name, &b, &blen)) != 0)
			goto fail;
		rc = replay_segment(&r, b, blen, segs[i].name, 1, segs[i].seq, segs[i].first, last,
		    &end, &hend, &torn);
		mem_free(b);
		if (rc != 0)
			goto fail;
	}
	if ((rc = replay_finish(&r)) != 0)
		goto fail;
	if ((rc = set_metadata(w, out->meta.node_id, out->meta.cluster_id, out->meta.data,
	    out->meta.len)) != 0)
		goto fail;

	/* The last segment becomes the one appended to. */
	memcpy(w->io.name, segs[nseg - 1].name, WAL_NAME_BYTES);
	w->io.fd = openat(w->dirfd, w->io.name, O_RDWR | O_CLOEXEC);
	if (w->io.fd < 0) {
		rc = wal_fail(w, -ERR_IO, "wal: open %s: %s", w->io.name, strerror(errno));
		goto fail;
	}
	if (torn) {
		out->torn = 1;
		out->torn_offset = end;
		memcpy(out->torn_file, w->io.name, WAL_NAME_BYTES);
		snprintf(out->notice, sizeof(out->notice), "wal: truncated torn tail at offset %llu in %s",
		    (unsigned long long)end, w->io.name);
		/* Cutting and re-extending zeroes the torn bytes, so they cannot resurface. */
		if (ftruncate(w->io.fd, (off_t)end) != 0) {
			rc = wal_fail(w, -ERR_IO, "wal: truncate %s: %s", w->io.name, strerror(errno));
			goto fail;
		}
	}
	/* What replay saw may only be in the page cache of a crashed process. */
	if (preallocate(w->io.fd, w->segment_bytes) != 0 || fsync(w->io.fd) != 0) {
		rc = wal_fail(w, -ERR_IO, "wal: sync %s: %s", w->io.name, strerror(errno));
		goto fail;
	}
	w->io.seq = segs[nseg - 1].seq;
	w->io.first_index = segs[nseg - 1].first;
	w->io.offset = end;
	w->io.header_end = hend;
	w->io.last_index = r.last;
	w->io.durable_index = r.last;
	w->durable = r.last;
	memcpy(w->seg_name, w->io.name, WAL_NAME_BYTES);
	w->io.hs = out->hs;
	w->io.snap = r.latest;
	w->last_index = r.last;
	w->last_hs = out->hs;
	if (!r.exact) {
		/*
		 * The snapshot file was saved but its marker never made it: add it
		 * so the log continues from the snapshot and later replays match it.
		 */
		uint8_t *p = pending_reserve(w, WAL_RECORD_HEADER_BYTES + SNAPSHOT_PAYLOAD_BYTES);

		if (p == NULL) {
			rc = wal_fail(w, -ERR_NOMEM, "wal: out of memory");
			goto fail;
		}
		w->pending.len += enc_snapshot(p, &r.want);
		if (r.want.index > w->last_index)
			w->last_index = r.want.index;
	}
	if ((rc = start_thread(w)) != 0)
		goto fail;
	mem_free(segs);
	w->open = 1;
	return 0;
fail:
	mem_free(segs);
	return close_files(w, rc);
}

void
wal_close(struct wal *w)
{
	if (w == NULL)
		return;
	if (w->thread_started) {
		if (w->busy) {
			struct pollfd pfd = { w->done_fd, POLLIN, 0 };

			while (__atomic_load_n(&w->job_state, __ATOMIC_ACQUIRE) != JOB_DONE)
				poll(&pfd, 1, -1);
		}
		__atomic_store_n(&w->quit, 1, __ATOMIC_RELEASE);
		(void)eventfd_write1(w->kick_fd);
		pthread_join(w->thread, NULL);
	}
	if (w->kick_fd >= 0)
		close(w->kick_fd);
	if (w->done_fd >= 0)
		close(w->done_fd);
	if (w->io.fd >= 0)
		close(w->io.fd);
	if (w->dirfd >= 0)
		close(w->dirfd);
	buf_free(&w->pending);
	buf_free(&w->inflight);
	mem_free(w->meta_data);
	mem_free(w->hdrbuf);
	mem_free(w->dir);
	mem_free(w);
}

/* ---- appending ---- */

static int
check_appendable(struct wal *w)
{
	if (!w->open)
		return wal_fail(w, -ERR_STATE, "wal: not open");
	if (w->broken)
		return w->broken;
	return 0;
}

int
wal_append_entries(struct wal *w, const struct wal_entry *e, size_t n)
{
	size_t total = 0;
	uint8_t *p;
	int rc;

	if ((rc = check_appendable(w)) != 0)
		return rc;
	if (n == 0)
		return 0;
	if (e == NULL)
		return wal_fail(w, -ERR_INVAL, "wal: no entries");
	/* Check everything first so bad input buffers nothing. */
	for (size_t i = 0; i < n; i++) {
		if (e[i].len > WAL_ENTRY_DATA_BYTES_MAX)
			return wal_fail(w, -ERR_LIMIT, "wal: entry %llu has %zu bytes, above the limit of %u",
			    (unsigned long long)e[i].index, e[i].len, WAL_ENTRY_DATA_BYTES_MAX);
		if (e[i].len > 0 && e[i].data == NULL)
			return wal_fail(w, -ERR_INVAL, "wal: entry %llu has no data",
			    (unsigned long long)e[i].index);
		if (i == 0 ? (e[i].index == 0 || e[i].index > w->last_index + 1) :
		    e[i].index != e[i - 1].index + 1)
			return wal_fail(w, -ERR_INVAL, "wal: entry index %llu does not follow %llu",
			    (unsigned long long)e[i].index,
			    (unsigned long long)(i == 0 ? w->last_index : e[i - 1].index));
		if (total > SIZE_MAX / 2)
			return wal_fail(w, -ERR_LIMIT, "wal: batch too large");
		total += WAL_RECORD_HEADER_BYTES + WAL_ENTRY_HEADER_BYTES + e[i].len;
	}
	p = pending_reserve(w, total);
	if (p == NULL)
		return wal_fail(w, -ERR_NOMEM, "wal: out of memory");
	for (size_t i = 0; i < n; i++) {
		uint8_t f[WAL_ENTRY_HEADER_BYTES];

		le_put64(f, e[i].index);
		le_put64(f + 8, e[i].term);
		le_put32(f + 16, e[i].kind);
		p += rec_encode(p, WAL_REC_ENTRY, f, sizeof(f), e[i].data, e[i].len);
	}
	w->pending.len += total;
	w->last_index = e[n - 1].index;
	return 0;
}

int
wal_set_hardstate(struct wal *w, const struct wal_hardstate *hs)
{
	uint8_t *p;
	int rc;

	if ((rc = check_appendable(w)) != 0)
		return rc;
	if (hs == NULL)
		return wal_fail(w, -ERR_INVAL, "wal: no hard state");
	if (hs->term == w->last_hs.term && hs->vote == w->last_hs.vote && hs->commit == w->last_hs.commit)
		return 0;
	p = pending_reserve(w, WAL_RECORD_HEADER_BYTES + HARDSTATE_PAYLOAD_BYTES);
	if (p == NULL)
		return wal_fail(w, -ERR_NOMEM, "wal: out of memory");
	w->pending.len += enc_hardstate(p, hs);
	w->last_hs = *hs;
	return 0;
}

int
wal_save_snapshot(struct wal *w, const struct wal_snapshot *snap)
{
	uint8_t *p;
	int rc;

	if ((rc = check_appendable(w)) != 0)
		return rc;
	if (snap == NULL)
		return wal_fail(w, -ERR_INVAL, "wal: no snapshot");
	p = pending_reserve(w, WAL_RECORD_HEADER_BYTES + SNAPSHOT_PAYLOAD_BYTES);
	if (p == NULL)
		return wal_fail(w, -ERR_NOMEM, "wal: out of memory");
	w->pending.len += enc_snapshot(p, snap);
	if (snap->index > w->last_index)
		w->last_index = snap->index;
	return 0;
}

/* ---- syncing ---- */

static int
mark_broken(struct wal *w, int rc)
{
	w->broken = rc;
	memcpy(w->errmsg, w->io.errmsg, sizeof(w->errmsg));
	return rc;
}

int
wal_sync_start(struct wal *w)
{
	struct buf t;
	int rc;

	if ((rc = check_appendable(w)) != 0)
		return rc;
	if (w->mode != WAL_SYNC_THREAD)
		return wal_fail(w, -ERR_STATE, "wal: not in thread mode");
	if (w->busy)
		return -ERR_AGAIN;
	if (w->pending.len == 0)
		return 0;
	/* Swap batches: the thread takes this one, appends go to the other. */
	t = w->inflight;
	w->inflight = w->pending;
	w->pending = t;
	buf_reset(&w->pending);
	w->busy = 1;
	__atomic_store_n(&w->job_state, JOB_RUNNING, __ATOMIC_RELEASE);
	if (eventfd_write1(w->kick_fd) != 0) {
		/* The thread never saw the batch: take it back unchanged. */
		__atomic_store_n(&w->job_state, JOB_IDLE, __ATOMIC_RELEASE);
		w->busy = 0;
		t = w->pending;
		w->pending = w->inflight;
		w->inflight = t;
		return wal_fail(w, -ERR_IO, "wal: wake sync thread: %s", strerror(errno));
	}
	return 0;
}

int
wal_sync_fd(const struct wal *w)
{
	return w->mode == WAL_SYNC_THREAD ? w->done_fd : -1;
}

int
wal_sync_busy(const struct wal *w)
{
	return w->busy;
}

int
wal_sync_done(struct wal *w, uint64_t *durable_index)
{
	uint64_t v;
	int rc;

	if (w->mode != WAL_SYNC_THREAD)
		return wal_fail(w, -ERR_STATE, "wal: not in thread mode");
	if (!w->busy)
		return -ERR_AGAIN;
	if (__atomic_load_n(&w->job_state, __ATOMIC_ACQUIRE) != JOB_DONE)
		return -ERR_AGAIN;
	/* Clears the eventfd; nothing else can be counted in it. */
	while (read(w->done_fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	__atomic_store_n(&w->job_state, JOB_IDLE, __ATOMIC_RELAXED);
	w->busy = 0;
	rc = w->job_rc;
	buf_reset(&w->inflight);
	if (rc != 0)
		return mark_broken(w, rc);
	w->durable = w->io.durable_index;
	memcpy(w->seg_name, w->io.name, WAL_NAME_BYTES);
	if (durable_index != NULL)
		*durable_index = w->durable;
	return 0;
}

static int
wait_done(struct wal *w, uint64_t *durable_index)
{
	struct pollfd pfd = { w->done_fd, POLLIN, 0 };
	int rc;

	while ((rc = wal_sync_done(w, durable_index)) == -ERR_AGAIN) {
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			return wal_fail(w, -ERR_IO, "wal: poll: %s", strerror(errno));
	}
	return rc;
}

int
wal_sync(struct wal *w, uint64_t *durable_index)
{
	int rc;

	if ((rc = check_appendable(w)) != 0)
		return rc;
	if (w->mode == WAL_SYNC_THREAD) {
		if (w->busy && (rc = wait_done(w, NULL)) != 0)
			return rc;
		if (w->pending.len > 0) {
			if ((rc = wal_sync_start(w)) != 0)
				return rc;
			if ((rc = wait_done(w, NULL)) != 0)
				return rc;
		}
	} else if (w->pending.len > 0) {
		rc = io_write_batch(w, (const uint8_t *)w->pending.data, w->pending.len);
		buf_reset(&w->pending);
		if (rc != 0)
			return mark_broken(w, rc);
		w->durable = w->io.durable_index;
		memcpy(w->seg_name, w->io.name, WAL_NAME_BYTES);
	}
	if (durable_index != NULL)
		*durable_index = w->durable;
	return 0;
}

uint64_t
wal_last_index(const struct wal *w)
{
	return w->last_index;
}

uint64_t
wal_durable_index(const struct wal *w)
{
	return w->durable;
}

size_t
wal_pending_bytes(const struct wal *w)
{
	return w->pending.len;
}

const char *
wal_segment_name(const struct wal *w)
{
	/* The loop's copy: the thread may be renaming io.name during a cut. */
	return w->open ? w->seg_name : "";
}

/* ---- purge ---- */

int
wal_release(struct wal *w, uint64_t snap_index, unsigned max_wals, unsigned *removed)
{
	struct seg *segs = NULL;
	size_t nseg = 0, start = 0, count;
	unsigned done = 0;
	int rc;

	if (removed != NULL)
		*removed = 0;
	if (!w->open)
		return wal_fail(w, -ERR_STATE, "wal: not open");
	if (w->busy)
		return -ERR_AGAIN;
	if (max_wals == 0)
		return 0;
	if ((rc = list_segments(w->dir, -1, &segs, &nseg, w->errmsg, sizeof(w->errmsg))) != 0)
		return rc;
	for (size_t i = 0; i < nseg; i++)
		if (segs[i].first <= snap_index && segs[i].seq <= w->io.seq)
			start = i;
	count = nseg;
	for (size_t i = 0; i < start && count > max_wals; i++) {
		if (unlinkat(w->dirfd, segs[i].name, 0) != 0 && errno != ENOENT) {
			rc = wal_fail(w, -ERR_IO, "wal: remove %s: %s", segs[i].name, strerror(errno));
			break;
		}
		count--;
		done++;
	}
	mem_free(segs);
	if (done > 0 && fsync(w->dirfd) != 0 && rc == 0)
		rc = wal_fail(w, -ERR_IO, "wal: sync %s: %s", w->dir, strerror(errno));
	if (removed != NULL)
		*removed = done;
	return rc;
}
