/*
 * etcdctl backup: copies a data directory's newest snapshot and its WAL
 * into a new directory with a new member ID and cluster ID, as etcdctl 2.x
 * does, so that `etcd --force-new-cluster` can start a one-member cluster
 * from it without the old cluster's identity.
 *
 * The source is only read: its WAL segments are copied to a scratch
 * directory first and replayed there, because the WAL module locks the
 * directory it opens and a backup must work while the server runs. It must
 * never write into the source data directory, and never leave a half
 * written backup WAL (the WAL module creates it atomically).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/etcdctl.h"
#include "corebox/loop.h"
#include "corebox/mem.h"
#include "corebox/snapfile.h"
#include "corebox/wal.h"

/* Segments copied at most (etcd purges down to --max-wals, 5 by default). */
#define BACKUP_SEGMENTS_MAX 4096
/* Copy buffer. */
#define COPY_CHUNK_BYTES (1u << 20)
/* Bits of the millisecond clock in an ID (etcd's idutil: 40 bits, 8 of count). */
#define ID_TS_BITS 40
#define ID_COUNT_BITS 8

/* Prints a log line as etcdctl's logger does ("2006-01-02 15:04:05.000000 I | msg"). */
static void logf_line(struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
logf_line(struct ctl *c, const char *fmt, ...)
{
	char ts[64], msg[1024];
	struct timespec now;
	struct tm tm;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &now);
	localtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_printf(&c->err, "%s.%06ld I | %s\n", ts, (long)(now.tv_nsec / 1000), msg);
}

static const char *
errno_text(int e)
{
	switch (e) {
	case ENOENT:
		return "no such file or directory";
	case EACCES:
		return "permission denied";
	case ENOTDIR:
		return "not a directory";
	case EEXIST:
		return "file exists";
	case ENOSPC:
		return "no space left on device";
	default:
		return "input/output error";
	}
}

static char *
path_join(const char *a, const char *b)
{
	struct buf p = BUF_INIT;

	if (a[0] == '\0')
		buf_puts(&p, b);
	else if (a[strlen(a) - 1] == '/')
		buf_printf(&p, "%s%s", a, b);
	else
		buf_printf(&p, "%s/%s", a, b);
	return buf_steal(&p, NULL);
}

/* mkdir -p with mode 0700 (fileutil.CreateDirAll). */
static int
mkdir_all(const char *dir)
{
	char *p = mem_strdup(dir);
	int rc = 0;

	if (p == NULL)
		return -ENOMEM;
	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			rc = -errno;
		*s = '/';
		if (rc < 0)
			break;
	}
	if (rc == 0 && mkdir(p, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	mem_free(p);
	return rc;
}

static int
copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
	char *chunk = NULL;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	chunk = mem_alloc(COPY_CHUNK_BYTES);
	if (out < 0 || chunk == NULL) {
		rc = out < 0 ? -errno : -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, chunk, COPY_CHUNK_BYTES), off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		while (off < n) {
			ssize_t w = write(out, chunk + off, (size_t)(n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = -errno;
				goto out;
			}
			off += w;
		}
	}
out:
	mem_free(chunk);
	if (out >= 0 && close(out) < 0 && rc == 0)
		rc = -errno;
	close(in);
	return rc;
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

/*
 * Copies the segments a replay from snap_index needs (the last whose first
 * index is <= snap_index, and every later one) from src to dst.
 */
static int
copy_segments(struct ctl *c, const char *src, const char *dst, uint64_t snap_index)
{
	struct seg *segs = NULL;
	size_t n = 0, start = 0;
	struct dirent *de;
	DIR *d = opendir(src);
	int rc = 0;

	if (d == NULL) {
		logf_line(c, "open %s: %s", src, errno_text(errno));
		return -1;
	}
	segs = mem_calloc(BACKUP_SEGMENTS_MAX, sizeof(*segs));
	if (segs == NULL) {
		closedir(d);
		logf_line(c, "out of memory");
		return -1;
	}
	while ((de = readdir(d)) != NULL && n < BACKUP_SEGMENTS_MAX) {
		if (wal_segment_name_parse(de->d_name, &segs[n].seq, &segs[n].first) != 0)
			continue;
		wal_segment_name_format(segs[n].name, segs[n].seq, segs[n].first);
		n++;
	}
	closedir(d);
	if (n == 0) {
		logf_line(c, "wal: file not found");
		mem_free(segs);
		return -1;
	}
	qsort(segs, n, sizeof(*segs), seg_cmp);
	for (size_t i = 0; i < n; i++)
		if (segs[i].first <= snap_index)
			start = i;
	for (size_t i = start; i < n && rc == 0; i++) {
		char *from = path_join(src, segs[i].name), *to = path_join(dst, segs[i].name);

		rc = from != NULL && to != NULL ? copy_file(from, to) : -ENOMEM;
		if (rc < 0)
			logf_line(c, "copy %s: %s", from != NULL ? from : segs[i].name, errno_text(-rc));
		mem_free(from);
		mem_free(to);
	}
	mem_free(segs);
	return rc < 0 ? -1 : 0;
}

static void
remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char *p;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		p = path_join(dir, de->d_name);
		if (p != NULL)
			unlink(p);
		mem_free(p);
	}
	closedir(d);
	rmdir(dir);
}

/* Replays the scratch copy; with the marker missing, replays it all (auto fix). */
static int
replay(struct ctl *c, const char *dir, const char *src_wal, struct wal_snapshot *snap, struct wal_replay *rp)
{
	struct wal_options wo = { .dir = dir };
	struct wal *w = wal_new(&wo);
	int rc;

	if (w == NULL) {
		logf_line(c, "out of memory");
		return -1;
	}
	rc = wal_open(w, snap, rp);
	if (rc == -ERR_NOTFOUND) {
		struct wal_snapshot none = { 0, 0 };

		/* etcdctl's own words, printed on stdout without newlines. */
		buf_printf(&c->out, "Failed to find the match snapshot record {Index:%llu Term:%llu} in wal %s.",
			(unsigned long long)snap->index, (unsigned long long)snap->term, src_wal);
		buf_puts(&c->out, "etcdctl will add it back. Start auto fixing...");
		wal_replay_free(rp);
		wal_close(w);
		w = wal_new(&wo);
		if (w == NULL) {
			logf_line(c, "out of memory");
			return -1;
		}
		rc = wal_open(w, &none, rp);
		if (rc == 0) {
			/* Keep only what follows the snapshot. */
			size_t k = 0;

			for (size_t i = 0; i < rp->n_entries; i++)
				if (rp->entries[i].index > snap->index)
					rp->entries[k++] = rp->entries[i];
			rp->n_entries = k;
		}
	}
	if (rc != 0)
		logf_line(c, "%s", wal_errmsg(w)[0] != '\0' ? wal_errmsg(w) : err_str(rc));
	wal_close(w);
	return rc == 0 ? 0 : -1;
}

int
ctl_cmd_backup(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	const char *data_dir = vals[0].s != NULL ? vals[0].s : "";
	const char *backup_dir = vals[2].s != NULL ? vals[2].s : "";
	char *member = NULL, *src_snap = NULL, *dst_member = NULL, *dst_snap = NULL, *src_wal = NULL;
	char *dst_wal = NULL, *scratch = NULL;
	struct snapfile_data sd = { 0 };
	struct wal_snapshot snap = { 0, 0 };
	struct wal_replay rp;
	struct wal_metadata md;
	struct wal_options wo;
	struct wal *w = NULL;
	char msg[512];
	uint64_t ms, id;
	int rc, code = CTL_EXIT_BAD_ARGS;

	(void)cmd;
	(void)argc;
	(void)argv;
	memset(&rp, 0, sizeof(rp));
	member = path_join(data_dir, "member");
	dst_member = path_join(backup_dir, "member");
	src_snap = member != NULL ? path_join(member, "snap") : NULL;
	dst_snap = dst_member != NULL ? path_join(dst_member, "snap") : NULL;
	src_wal = vals[1].s != NULL && vals[1].s[0] != '\0' ? mem_strdup(vals[1].s) :
		member != NULL ? path_join(member, "wal") : NULL;
	dst_wal = vals[3].s != NULL && vals[3].s[0] != '\0' ? mem_strdup(vals[3].s) :
		dst_member != NULL ? path_join(dst_member, "wal") : NULL;
	scratch = dst_member != NULL ? path_join(dst_member, ".backup-source-wal") : NULL;
	if (src_snap == NULL || dst_snap == NULL || src_wal == NULL || dst_wal == NULL || scratch == NULL) {
		logf_line(c, "out of memory");
		goto out;
	}
	rc = mkdir_all(dst_snap);
	if (rc < 0) {
		logf_line(c, "failed creating backup snapshot dir %s: mkdir %s: %s", dst_snap, dst_snap, errno_text(-rc));
		goto out;
	}
	/* The newest snapshot, copied as it is (its payload is the store's). A
	 * missing snapshot directory is an error, as etcd's snapshotter says. */
	{
		DIR *d = opendir(src_snap);

		if (d == NULL) {
			logf_line(c, "open %s: %s", src_snap, errno_text(errno));
			goto out;
		}
		closedir(d);
	}
	rc = snapfile_load_newest(src_snap, NULL, 0, &sd, NULL, NULL, msg, sizeof(msg));
	if (rc == 0) {
		snap.term = sd.term;
		snap.index = sd.index;
		rc = snapfile_save(dst_snap, sd.term, sd.index, sd.data, sd.len, msg, sizeof(msg));
		if (rc != 0) {
			logf_line(c, "%s", msg);
			goto out;
		}
	} else if (rc != -ERR_NOTFOUND) {
		logf_line(c, "%s", msg);
		goto out;
	}
	if (!wal_exists(src_wal)) {
		logf_line(c, "open %s: no such file or directory", src_wal);
		goto out;
	}
	remove_dir(scratch);
	rc = mkdir_all(scratch);
	if (rc < 0) {
		logf_line(c, "mkdir %s: %s", scratch, errno_text(-rc));
		goto out;
	}
	if (copy_segments(c, src_wal, scratch, snap.index) < 0 || replay(c, scratch, src_wal, &snap, &rp) < 0)
		goto out;

	/* New identity: idutil.NewGenerator(0, now).Next() twice. */
	ms = time_real_ms() & ((UINT64_C(1) << ID_TS_BITS) - 1);
	id = ms << ID_COUNT_BITS;
	memset(&md, 0, sizeof(md));
	md.node_id = id + 1;
	md.cluster_id = id + 2;
	md.data = rp.meta.data;
	md.len = rp.meta.len;
	memset(&wo, 0, sizeof(wo));
	wo.dir = dst_wal;
	w = wal_new(&wo);
	if (w == NULL) {
		logf_line(c, "out of memory");
		goto out;
	}
	rc = wal_create(w, &md);
	/* The marker first: the entries continue from the snapshot's index. */
	if (rc == 0 && snap.index > 0)
		rc = wal_save_snapshot(w, &snap);
	if (rc == 0 && rp.n_entries > 0)
		rc = wal_append_entries(w, rp.entries, rp.n_entries);
	if (rc == 0)
		rc = wal_set_hardstate(w, &rp.hs);
	if (rc == 0)
		rc = wal_sync(w, NULL);
	if (rc != 0) {
		logf_line(c, "%s", wal_errmsg(w)[0] != '\0' ? wal_errmsg(w) : err_str(rc));
		goto out;
	}
	code = 0;
out:
	wal_close(w);
	wal_replay_free(&rp);
	snapfile_data_free(&sd);
	if (scratch != NULL)
		remove_dir(scratch);
	mem_free(member);
	mem_free(src_snap);
	mem_free(dst_member);
	mem_free(dst_snap);
	mem_free(src_wal);
	mem_free(dst_wal);
	mem_free(scratch);
	return code;
}
