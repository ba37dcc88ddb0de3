/*
 * wal: the store's durable write-ahead log (the role of etcd's wal package).
 *
 * The log is a directory of segment files named "%016x-%016x.wal" (segment
 * sequence, index of the first entry that may appear in it: the last index
 * plus one when the segment was cut; the first segment is
 * 0000000000000000-0000000000000000.wal). Each segment is preallocated
 * (segment_bytes, WAL_SEGMENT_BYTES_DEFAULT) so that an fdatasync after an
 * append needs no size update, and starts with header records: segment
 * (sequence, first index), metadata, the latest snapshot marker and the latest
 * hard state, so that replay can start at any segment.
 *
 * Record on disk (little endian):
 *   u32 crc   CRC32C of the bytes from len to the end of the payload
 *   u32 len   payload bytes (at most WAL_RECORD_BYTES_MAX)
 *   u8  type  enum wal_record_type
 *   u8  pad[3] zero
 *   payload:
 *     SEGMENT   u64 seq, u64 first_index
 *     METADATA  u64 node_id, u64 cluster_id, caller bytes
 *     HARDSTATE u64 term, u64 vote, u64 commit
 *     SNAPSHOT  u64 term, u64 index
 *     ENTRY     u64 index, u64 term, u32 kind, caller bytes
 * The rest of a segment after its last record is zeros.
 *
 * Log semantics are raft's: an entry whose index is at most the last index
 * replaces that entry and everything after it (truncation); an entry may not
 * leave a gap (index > last + 1). A snapshot marker with an index above the
 * last index moves the last index up to it (a follower that installed a
 * snapshot continues at marker index + 1).
 *
 * Group commit: wal_append_entries(), wal_set_hardstate() and
 * wal_save_snapshot() only encode into an in-memory buffer (a memcpy plus a
 * CRC per record). wal_sync() writes everything appended since the last sync
 * with as few write() calls as possible and one fdatasync (two or more only
 * when the batch crosses into a new segment), then reports the highest
 * durable index. The server calls it from the loop's before-sleep hook.
 *
 * Two explicit sync modes (struct wal_options.sync_mode):
 *  - WAL_SYNC_INLINE: wal_sync() blocks the caller for the write+fdatasync.
 *  - WAL_SYNC_THREAD: a helper thread does the write+fdatasync. The loop
 *    calls wal_sync_start() (never blocks) and watches wal_sync_fd(), an
 *    eventfd that becomes readable when the batch is durable; it then calls
 *    wal_sync_done(). Appends may continue while a batch is in flight; they
 *    go into the next batch. The thread talks to the loop only through that
 *    eventfd (and a second one that wakes it) and never allocates.
 *
 * Recovery: wal_open() reads the segments from the last one whose name index
 * is at most the snapshot index, replays them into a struct wal_replay
 * (metadata, last hard state, the snapshot marker it started from, every
 * entry after the snapshot index, with truncations applied), truncates a torn
 * tail of the last segment and leaves the log open for appending after the
 * last valid record. A bad record anywhere else is corruption: -ERR_CORRUPT
 * with a message naming the file and offset; never wrong data.
 *
 * Errors: every function returns 0 or -ERR_xxx; the wal keeps a message in
 * its errmsg buffer (wal_errmsg), e.g. "wal: bad crc in
 * 0000000000000001-0000000000000005.wal at offset 4096". After a failed
 * write or fdatasync the wal is broken (the kernel may have dropped the dirty
 * pages): every later append or sync returns -ERR_IO and the caller must
 * stop, as etcd does.
 *
 * Ownership: struct wal owns its fds (segment file, directory lock, eventfds)
 * and buffers; wal_close() releases all of them. Caller buffers passed to
 * appends are copied before the call returns. struct wal_replay owns the
 * entry array and all data it points to until wal_replay_free().
 *
 * Failpoints (test builds): "wal_before_write", "wal_after_write",
 * "wal_before_sync", "wal_after_sync", "wal_before_cut", "wal_after_cut".
 */
#ifndef COREBOX_WAL_H
#define COREBOX_WAL_H

#include <stddef.h>
#include <stdint.h>

/* Preallocated size of each segment file. */
#define WAL_SEGMENT_BYTES_DEFAULT (64u * 1024 * 1024)
/* Smallest segment_bytes accepted (tests use small segments). */
#define WAL_SEGMENT_BYTES_MIN 4096u
/* Largest record payload; larger appends get -ERR_LIMIT. */
#define WAL_RECORD_BYTES_MAX (16u * 1024 * 1024)
/* Record header: crc, len, type, pad. */
#define WAL_RECORD_HEADER_BYTES 12u
/* Fixed part of an entry payload: index, term, kind. */
#define WAL_ENTRY_HEADER_BYTES 20u
/* Largest entry data (the serialized request). */
#define WAL_ENTRY_DATA_BYTES_MAX (WAL_RECORD_BYTES_MAX - WAL_ENTRY_HEADER_BYTES)
/* Largest caller bytes in the metadata record. */
#define WAL_METADATA_BYTES_MAX 4096u
/* Room for a segment file name plus NUL ("%016x-%016x.wal"). */
#define WAL_NAME_BYTES 40u
/* Size of the errmsg buffer (messages are truncated to fit). */
#define WAL_ERRMSG_BYTES 256u
/* etcd's --max-wals default. */
#define WAL_MAX_WALS_DEFAULT 5u

enum wal_record_type {
	WAL_REC_SEGMENT = 1,
	WAL_REC_METADATA = 2,
	WAL_REC_HARDSTATE = 3,
	WAL_REC_SNAPSHOT = 4,
	WAL_REC_ENTRY = 5,
};

enum wal_sync_mode {
	WAL_SYNC_INLINE = 0,
	WAL_SYNC_THREAD = 1,
};

/* A log entry. data is borrowed: owned by whoever filled the struct. */
struct wal_entry {
	uint64_t index;
	uint64_t term;
	uint32_t kind;      /* opaque to the WAL: raft's entry type, 0 = normal */
	const void *data;   /* may be NULL when len is 0 */
	size_t len;         /* at most WAL_ENTRY_DATA_BYTES_MAX */
};

/* Raft's persistent state. */
struct wal_hardstate {
	uint64_t term;
	uint64_t vote;
	uint64_t commit;
};

/* Snapshot marker: the log after it continues from index + 1. */
struct wal_snapshot {
	uint64_t term;
	uint64_t index;
};

/* Written at the head of every segment. data is borrowed as in wal_entry. */
struct wal_metadata {
	uint64_t node_id;
	uint64_t cluster_id;
	const void *data;   /* free bytes for the caller, may be NULL if len 0 */
	size_t len;         /* at most WAL_METADATA_BYTES_MAX */
};

struct wal_options {
	const char *dir;            /* the wal directory (--wal-dir or member/wal); copied */
	uint64_t segment_bytes;     /* 0 means WAL_SEGMENT_BYTES_DEFAULT */
	enum wal_sync_mode sync_mode;
};

/*
 * What wal_open() recovered. Everything it points to (meta.data, entries and
 * each entries[i].data) is owned by the struct until wal_replay_free().
 */
struct wal_replay {
	struct wal_metadata meta;
	struct wal_hardstate hs;      /* the last one in the replayed range */
	struct wal_snapshot snap;     /* the marker replay started from */
	struct wal_entry *entries;    /* every entry with index > snapshot index */
	size_t n_entries;
	uint64_t last_index;          /* last index of the log (entries or marker) */
	int torn;                     /* 1 if a torn tail was truncated */
	uint64_t torn_offset;         /* where the last segment was truncated */
	char torn_file[WAL_NAME_BYTES];
	/* "wal: truncated torn tail at offset N in FILE" when torn, else "" */
	char notice[WAL_ERRMSG_BYTES];
	/* private */
	void *arena_;
	size_t arena_len_;
	size_t arena_cap_;
	size_t entries_cap_;
};

struct wal;

/* 1 if dir holds at least one segment file, 0 if not (or it does not exist). */
int wal_exists(const char *dir);

/*
 * Allocates a closed wal for opt (dir is copied). NULL on allocation failure
 * or a bad option (NULL dir, segment_bytes below WAL_SEGMENT_BYTES_MIN).
 * Follow with wal_create() or wal_open(); free with wal_close().
 */
struct wal *wal_new(const struct wal_options *opt);

/*
 * Creates a new log in opt.dir (made with its parents if missing; it must
 * not hold segments or other files: -ERR_EXIST): the first segment with
 * metadata md, the marker {0, 0} and an empty hard state, built in
 * "<dir>.tmp" and renamed into place so a crash leaves either no log or a
 * complete one. Takes an
 * exclusive lock on the directory (-ERR_STATE if another process holds it).
 * md and its data are copied. The wal is then open for appending.
 */
int wal_create(struct wal *w, const struct wal_metadata *md);

/*
 * Opens an existing log and replays it into *out (zeroed first; free it
 * with wal_replay_free even on error). snap is the snapshot the caller
 * loaded ({0, 0} for none): entries up to snap->index are skipped, and the
 * replayed range must hold a marker at or before snap->index (else
 * -ERR_NOTFOUND: the log does not go with that snapshot); a marker at
 * exactly snap->index with another term is -ERR_CORRUPT.
 * If the log jumps past snap->index (a marker for a newer snapshot with
 * entries missing before it) that is -ERR_NOTFOUND too. When there is no
 * marker at exactly snap (the snapshot file was saved, the crash came before
 * its marker), one is buffered for the next wal_sync and the last index
 * becomes at least snap->index, so the log continues from the snapshot.
 * Removes stale "*.tmp" files, locks the directory like wal_create, and
 * truncates a torn tail of the last segment (out->torn, out->notice: the
 * caller logs it). Other damage: -ERR_CORRUPT and nothing is changed.
 * On any error w stays closed and holds no fds; free it with wal_close().
 */
int wal_open(struct wal *w, const struct wal_snapshot *snap, struct wal_replay *out);

/*
 * Replays one segment image held in memory as if it were the whole log (no
 * name checks, nothing written). For the fuzzer and tools; same rules and
 * results as wal_open, including torn-tail detection (out->torn set, nothing
 * truncated). errmsg (may be NULL) receives the message on error.
 */
int wal_replay_image(const void *buf, size_t len, const struct wal_snapshot *snap,
    struct wal_replay *out, char *errmsg, size_t errlen);

void wal_replay_free(struct wal_replay *rp);

/*
 * Buffers n entries (copied). Indexes must run consecutively from at most
 * last index + 1; each index > 0. Bad input: -ERR_INVAL, nothing buffered.
 * -ERR_LIMIT for data above WAL_ENTRY_DATA_BYTES_MAX, -ERR_NOMEM.
 */
int wal_append_entries(struct wal *w, const struct wal_entry *e, size_t n);

/* Buffers a hard state record (skipped if equal to the last one). */
int wal_set_hardstate(struct wal *w, const struct wal_hardstate *hs);

/*
 * Buffers a snapshot marker. Save the snapshot file first (snapfile_save),
 * then the marker, then wal_sync(), then wal_release().
 */
int wal_save_snapshot(struct wal *w, const struct wal_snapshot *snap);

/*
 * Writes and fdatasyncs everything buffered; blocks the caller in both
 * modes (in thread mode it starts a batch if needed and waits for it). On
 * success *durable_index (may be NULL) is the highest durable index.
 */
int wal_sync(struct wal *w, uint64_t *durable_index);

/*
 * Thread mode only (-ERR_STATE otherwise). Hands everything buffered to the
 * helper thread and returns at once: 0 if a batch started, -ERR_AGAIN if
 * one is already in flight (call again after wal_sync_done), 0 with no batch
 * if nothing is buffered.
 */
int wal_sync_start(struct wal *w);

/* The eventfd to watch for LOOP_READ in thread mode; -1 in inline mode. */
int wal_sync_fd(const struct wal *w);

/*
 * Thread mode: collects a finished batch (clears the eventfd). Returns 0
 * with *durable_index set, -ERR_AGAIN if the batch is still in flight or
 * none was started, or the batch's error (the wal is then broken).
 */
int wal_sync_done(struct wal *w, uint64_t *durable_index);

/* 1 while a thread-mode batch is in flight. */
int wal_sync_busy(const struct wal *w);

/* Last index appended (durable or not). */
uint64_t wal_last_index(const struct wal *w);
/* Highest index made durable by a finished sync. */
uint64_t wal_durable_index(const struct wal *w);
/* Bytes buffered and not yet handed to a sync. */
size_t wal_pending_bytes(const struct wal *w);
/*
 * Name of the segment being appended to as of the last finished sync ("" when
 * closed). Owned by w, valid until the next sync or wal_close.
 */
const char *wal_segment_name(const struct wal *w);

/*
 * Deletes the oldest segments that a replay from snap_index no longer needs
 * (all segments before the last one whose name index is <= snap_index), as
 * long as more than max_wals segments exist (0 = unlimited: delete nothing).
 * The marker for snap_index must already be durable. The segment being
 * written is never deleted. *removed (may be NULL) gets the count.
 * -ERR_AGAIN while a thread-mode batch is in flight.
 */
int wal_release(struct wal *w, uint64_t snap_index, unsigned max_wals, unsigned *removed);

/* The message for the last error (never NULL; "" if none). Owned by w. */
const char *wal_errmsg(const struct wal *w);

/*
 * Stops the helper thread (waiting for a batch in flight), closes the fds
 * and frees w. Buffered records not synced are dropped. w may be NULL.
 */
void wal_close(struct wal *w);

/*
 * Segment file names: "%016x-%016x.wal". wal_segment_name_format writes it
 * into buf (WAL_NAME_BYTES); wal_segment_name_parse returns 0 and the two
 * numbers for a well formed name, -ERR_PARSE otherwise.
 */
void wal_segment_name_format(char *buf, uint64_t seq, uint64_t first_index);
int wal_segment_name_parse(const char *name, uint64_t *seq, uint64_t *first_index);

#endif
