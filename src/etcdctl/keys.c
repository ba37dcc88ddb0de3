/*
 * etcdctl's key commands: get, set, mk, mkdir, setdir, update, updatedir,
 * rm, rmdir, ls, watch and exec-watch, each making the same v2 keys request
 * as client/v2's KeysAPI (same method, path, sorted query, form body) and
 * printing the answer as etcdctl does.
 *
 * The client (and its member-list sync) is set up before the arguments are
 * checked, as etcdctl does, so a dead cluster wins over a missing key. It
 * must never send a request etcdctl would not, and never leave a child of
 * exec-watch unreaped for longer than one watch round.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/etcdctl.h"
#include "corebox/mem.h"

extern char **environ;

/* Largest value read from stdin by set, mk and update. */
#define STDIN_VALUE_BYTES_MAX ((size_t)64 << 20)
/* Longest PATH search result. */
#define EXEC_PATH_BYTES_MAX 4096

struct keys_url {
	const char *key;
	const struct ctl_params *query;
};

static int
build_keys_url(struct buf *url, const struct ctl_endpoint *ep, void *arg)
{
	const struct keys_url *ku = arg;
	struct buf raw = BUF_INIT, canon = BUF_INIT;
	int rc = buf_puts(&raw, ep->path);

	if (rc == 0)
		rc = buf_puts(&raw, "/v2/keys");
	if (rc == 0 && ku->key[0] != '\0' && ku->key[0] != '/')
		rc = buf_putc(&raw, '/');
	if (rc == 0)
		rc = buf_puts(&raw, ku->key);
	if (rc == 0)
		rc = ctl_url_canonical_path(&canon, buf_head(&raw), buf_avail(&raw));
	if (rc == 0)
		rc = buf_puts(url, ep->scheme_host);
	if (rc == 0)
		rc = ctl_url_escape_path(url, buf_head(&canon), buf_avail(&canon));
	if (rc == 0 && ku->query != NULL && ku->query->n > 0) {
		rc = buf_putc(url, '?');
		if (rc == 0)
			rc = ctl_params_encode(url, ku->query);
	}
	buf_free(&raw);
	buf_free(&canon);
	return rc;
}

/*
 * One keys API call and unmarshalHTTPResponse. Returns 0 with r filled, or
 * -1 with e set.
 */
static int
keys_call(struct ctl *c, struct ctl_request *rq, uint64_t deadline, struct ctl_resp *r, struct ctl_err *e)
{
	struct ctl_result res;
	char msg[CTL_ERRMSG_BYTES];
	int rc;

	memset(r, 0, sizeof(*r));
	if (ctl_client_do(&c->client, rq, deadline, &res, e) < 0)
		return -1;
	if (res.status == 200 || res.status == 201) {
		if (res.body_len == 0) {
			ctl_result_free(&res);
			ctl_err_msg(e, false, "client: response body is empty");
			return -1;
		}
		rc = ctl_resp_parse(r, res.body, res.body_len, res.index_hdr, msg, sizeof(msg));
		ctl_result_free(&res);
		if (rc == -ERR_RANGE) {
			ctl_err_msg(e, false, "%s", msg);
			return -1;
		}
		if (rc < 0) {
			ctl_err_msg(e, false, "%s", rc == -ERR_NOMEM ? "out of memory" : CTL_ERR_INVALID_JSON);
			return -1;
		}
		return 0;
	}
	rc = ctl_err_from_body(e, res.body, res.body_len);
	ctl_result_free(&res);
	if (rc < 0) {
		ctl_err_msg(e, false, "%s", CTL_ERR_INVALID_JSON);
		return -1;
	}
	return -1;
}

/* handleError(ExitBadArgs, errors.New(msg)). */
static int
bad_args(struct ctl *c, const char *msg)
{
	buf_printf(&c->err, "Error:  %s\n", msg);
	return CTL_EXIT_BAD_ARGS;
}

/* argOrStdin: argv[i], or all of stdin; NULL (after a message) if empty. */
static int
arg_or_stdin(struct ctl *c, int argc, char **argv, int i, const char **value, size_t *len, struct buf *store)
{
	if (i < argc) {
		*value = argv[i];
		*len = strlen(argv[i]);
		return 0;
	}
	for (;;) {
		ssize_t n;

		if (buf_reserve(store, 65536) < 0)
			return -ERR_NOMEM;
		n = read(0, store->data + store->len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			buf_reset(store);
			break;
		}
		if (n == 0)
			break;
		store->len += (size_t)n;
		if (store->len > STDIN_VALUE_BYTES_MAX)
			return -ERR_LIMIT;
	}
	if (buf_avail(store) == 0)
		return -ERR_NOTFOUND;
	*value = buf_head(store);
	*len = buf_avail(store);
	return 0;
}

static void
u64_str(char *out, size_t cap, uint64_t v)
{
	snprintf(out, cap, "%llu", (unsigned long long)v);
}

enum prev_exist {
	PREV_IGNORE,
	PREV_EXIST,
	PREV_NOEXIST,
};

struct set_opts {
	const char *value;
	size_t value_len;
	const char *prev_value;
	uint64_t prev_index;
	enum prev_exist prev_exist;
	int64_t ttl;
	bool dir;
};

/* KeysAPI.Set: PUT with the options in the query and value/ttl in the form. */
static int
keys_set(struct ctl *c, const char *key, const struct set_opts *o, struct ctl_resp *r, struct ctl_err *e)
{
	struct ctl_params q = { .n = 0 }, form = { .n = 0 };
	struct keys_url ku = { key, &q };
	struct ctl_request rq = { 0 };
	struct buf body = BUF_INIT;
	char idx[24], ttl[24];
	int rc;

	if (o->dir) {
		ctl_params_set(&q, "dir", "true");
	} else {
		if (o->prev_value != NULL && o->prev_value[0] != '\0')
			ctl_params_set(&q, "prevValue", o->prev_value);
		/* The value may hold NUL bytes from stdin: it goes by length. */
		ctl_params_setn(&form, "value", o->value, o->value_len);
	}
	if (o->prev_index != 0) {
		u64_str(idx, sizeof(idx), o->prev_index);
		ctl_params_set(&q, "prevIndex", idx);
	}
	if (o->prev_exist != PREV_IGNORE)
		ctl_params_set(&q, "prevExist", o->prev_exist == PREV_EXIST ? "true" : "false");
	if (o->ttl > 0) {
		u64_str(ttl, sizeof(ttl), (uint64_t)o->ttl);
		ctl_params_set(&form, "ttl", ttl);
	}
	if (ctl_params_encode(&body, &form) < 0 || buf_reserve(&body, 1) < 0) {
		buf_free(&body);
		ctl_err_msg(e, false, "out of memory");
		return -1;
	}
	rq.method = "PUT";
	rq.build_url = build_keys_url;
	rq.arg = &ku;
	rq.content_type = "application/x-www-form-urlencoded";
	rq.body = body.data != NULL ? buf_head(&body) : "";
	rq.body_len = buf_avail(&body);
	rq.one_shot = o->prev_exist == PREV_NOEXIST;
	rc = keys_call(c, &rq, ctl_deadline(c), r, e);
	buf_free(&body);
	return rc;
}

/* Prints a response and frees it; the exit code is 0. */
static int
print_and_free(struct ctl *c, struct ctl_resp *r)
{
	ctl_print_response(&c->out, &c->err, r, c->fmt, c->output);
	ctl_resp_free(r);
	return 0;
}

static int
fail(struct ctl *c, struct ctl_err *e)
{
	int code = ctl_handle_error(c, CTL_EXIT_SERVER_ERROR, e);

	ctl_err_free(e);
	return code;
}

int
ctl_cmd_get(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct ctl_params q = { .n = 0 };
	struct keys_url ku;
	struct ctl_request rq = { 0 };
	struct ctl_resp r;
	struct ctl_err e = { 0 };
	int code = ctl_client_setup(c, true);

	(void)cmd;
	if (code != 0)
		return code;
	if (argc == 0)
		return bad_args(c, "key required");
	ctl_params_set(&q, "recursive", "false");
	ctl_params_set(&q, "sorted", vals[0].b ? "true" : "false");
	ctl_params_set(&q, "quorum", vals[1].b ? "true" : "false");
	ku.key = argv[0];
	ku.query = &q;
	rq.method = "GET";
	rq.build_url = build_keys_url;
	rq.arg = &ku;
	if (keys_call(c, &rq, ctl_deadline(c), &r, &e) < 0)
		return fail(c, &e);
	if (r.node != NULL && r.node->dir) {
		buf_append(&c->err, r.node->key, r.node->key_len);
		buf_puts(&c->err, ": is a directory\n");
		ctl_resp_free(&r);
		return CTL_EXIT_BAD_ARGS;
	}
	return print_and_free(c, &r);
}

/* set, mk and update share the value handling. */
static int
set_like(struct ctl *c, int argc, char **argv, struct set_opts *o, bool print)
{
	struct buf store = BUF_INIT;
	struct ctl_resp r;
	struct ctl_err e = { 0 };
	int code = ctl_client_setup(c, true), rc;

	if (code != 0)
		return code;
	if (argc == 0)
		return bad_args(c, "key required");
	if (!o->dir) {
		rc = arg_or_stdin(c, argc, argv, 1, &o->value, &o->value_len, &store);
		if (rc < 0) {
			buf_free(&store);
			return bad_args(c, "value required");
		}
	}
	rc = keys_set(c, argv[0], o, &r, &e);
	buf_free(&store);
	if (rc < 0)
		return fail(c, &e);
	if (!print) {
		ctl_resp_free(&r);
		return 0;
	}
	return print_and_free(c, &r);
}

int
ctl_cmd_set(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct set_opts o = {
		.ttl = vals[0].i,
		.prev_value = vals[1].s,
		.prev_index = (uint64_t)vals[2].i,
	};

	(void)cmd;
	return set_like(c, argc, argv, &o, true);
}

int
ctl_cmd_update(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct set_opts o = { .ttl = vals[0].i, .prev_exist = PREV_EXIST };

	(void)cmd;
	return set_like(c, argc, argv, &o, true);
}

int
ctl_cmd_mkdir(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct set_opts o = { .ttl = vals[0].i, .prev_exist = PREV_NOEXIST, .dir = true };

	(void)cmd;
	return set_like(c, argc, argv, &o, false);
}

int
ctl_cmd_setdir(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct set_opts o = { .ttl = vals[0].i, .prev_exist = PREV_IGNORE, .dir = true };

	(void)cmd;
	return set_like(c, argc, argv, &o, false);
}

int
ctl_cmd_updatedir(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct set_opts o = { .ttl = vals[0].i, .prev_exist = PREV_EXIST, .dir = true };

	(void)cmd;
	return set_like(c, argc, argv, &o, false);
}

int
ctl_cmd_mk(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct ctl_params form = { .n = 0 };
	struct keys_url ku;
	struct ctl_request rq = { 0 };
	struct buf store = BUF_INIT, body = BUF_INIT;
	struct ctl_resp r;
	struct ctl_err e = { 0 };
	const char *value;
	size_t value_len;
	char ttl[24];
	int code, rc;

	(void)cmd;
	if (!vals[0].b) {
		struct set_opts o = { .ttl = vals[1].i, .prev_exist = PREV_NOEXIST };

		return set_like(c, argc, argv, &o, true);
	}
	code = ctl_client_setup(c, true);
	if (code != 0)
		return code;
	if (argc == 0)
		return bad_args(c, "key required");
	if (arg_or_stdin(c, argc, argv, 1, &value, &value_len, &store) < 0) {
		buf_free(&store);
		return bad_args(c, "value required");
	}
	/* CreateInOrder: POST to the directory, value and ttl in the form. */
	ctl_params_setn(&form, "value", value, value_len);
	if (vals[1].i > 0) {
		u64_str(ttl, sizeof(ttl), (uint64_t)vals[1].i);
		ctl_params_set(&form, "ttl", ttl);
	}
	if (ctl_params_encode(&body, &form) < 0 || buf_reserve(&body, 1) < 0) {
		buf_free(&store);
		buf_free(&body);
		return bad_args(c, "out of memory");
	}
	ku.key = argv[0];
	ku.query = NULL;
	rq.method = "POST";
	rq.build_url = build_keys_url;
	rq.arg = &ku;
	rq.content_type = "application/x-www-form-urlencoded";
	rq.body = buf_head(&body);
	rq.body_len = buf_avail(&body);
	rc = keys_call(c, &rq, ctl_deadline(c), &r, &e);
	buf_free(&store);
	buf_free(&body);
	if (rc < 0)
		return fail(c, &e);
	return print_and_free(c, &r);
}

/* KeysAPI.Delete (always one-shot). */
static int
delete_like(struct ctl *c, int argc, char **argv, const char *prev_value, int64_t prev_index, bool dir,
	bool recursive)
{
	struct ctl_params q = { .n = 0 };
	struct keys_url ku;
	struct ctl_request rq = { 0 };
	struct ctl_resp r;
	struct ctl_err e = { 0 };
	char idx[24];
	int code = ctl_client_setup(c, true);

	if (code != 0)
		return code;
	if (argc == 0)
		return bad_args(c, "key required");
	if (prev_value != NULL && prev_value[0] != '\0')
		ctl_params_set(&q, "prevValue", prev_value);
	if (prev_index != 0) {
		u64_str(idx, sizeof(idx), (uint64_t)prev_index);
		ctl_params_set(&q, "prevIndex", idx);
	}
	if (dir)
		ctl_params_set(&q, "dir", "true");
	if (recursive)
		ctl_params_set(&q, "recursive", "true");
	ku.key = argv[0];
	ku.query = &q;
	rq.method = "DELETE";
	rq.build_url = build_keys_url;
	rq.arg = &ku;
	rq.content_type = "application/x-www-form-urlencoded";
	rq.one_shot = true;
	if (keys_call(c, &rq, ctl_deadline(c), &r, &e) < 0)
		return fail(c, &e);
	if (r.node != NULL && r.node->dir) {
		ctl_resp_free(&r);
		return 0;
	}
	return print_and_free(c, &r);
}

int
ctl_cmd_rm(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	return delete_like(c, argc, argv, vals[2].s, vals[3].i, vals[0].b, vals[1].b);
}

int
ctl_cmd_rmdir(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	(void)vals;
	return delete_like(c, argc, argv, NULL, 0, true, false);
}

int
ctl_cmd_ls(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct ctl_params q = { .n = 0 };
	struct keys_url ku;
	struct ctl_request rq = { 0 };
	struct ctl_resp r;
	struct ctl_err e = { 0 };
	int code = ctl_client_setup(c, true);

	(void)cmd;
	if (code != 0)
		return code;
	ctl_params_set(&q, "recursive", vals[1].b ? "true" : "false");
	ctl_params_set(&q, "sorted", vals[0].b ? "true" : "false");
	ctl_params_set(&q, "quorum", vals[3].b ? "true" : "false");
	ku.key = argc > 0 ? argv[0] : "/";
	ku.query = &q;
	rq.method = "GET";
	rq.build_url = build_keys_url;
	rq.arg = &ku;
	if (keys_call(c, &rq, ctl_deadline(c), &r, &e) < 0)
		return fail(c, &e);
	ctl_print_ls(&c->out, &c->err, &r, c->fmt, c->output, vals[2].b);
	ctl_resp_free(&r);
	return 0;
}

/* ------------------------------------------------------------------ */
/* watch and exec-watch                                                */
/* ------------------------------------------------------------------ */

/*
 * etcdctl exits 0 on Ctrl-C during a watch. Output is flushed after every
 * event, so there is nothing to finish: _exit is all the handler does.
 */
static void
on_interrupt(int sig)
{
	(void)sig;
	_exit(0);
}

static void
catch_interrupt(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
}

struct watcher {
	const char *key;
	bool recursive;
	uint64_t wait_index;
};

/* httpWatcher.Next: long-polls until an event; an empty body polls again. */
static int
watch_next(struct ctl *c, struct watcher *w, struct ctl_resp *r, struct ctl_err *e)
{
	for (;;) {
		struct ctl_params q = { .n = 0 };
		struct keys_url ku = { w->key, &q };
		struct ctl_request rq = { 0 };
		struct ctl_result res;
		char idx[24];
		int rc;

		ctl_params_set(&q, "wait", "true");
		u64_str(idx, sizeof(idx), w->wait_index);
		ctl_params_set(&q, "waitIndex", idx);
		ctl_params_set(&q, "recursive", w->recursive ? "true" : "false");
		rq.method = "GET";
		rq.build_url = build_keys_url;
		rq.arg = &ku;
		rq.wait = true;
		if (ctl_client_do(&c->client, &rq, 0, &res, e) < 0)
			return -1;
		if ((res.status == 200 || res.status == 201) && res.body_len == 0) {
			ctl_result_free(&res);
			continue;
		}
		if (res.status == 200 || res.status == 201) {
			char msg[CTL_ERRMSG_BYTES];

			rc = ctl_resp_parse(r, res.body, res.body_len, res.index_hdr, msg, sizeof(msg));
			ctl_result_free(&res);
			if (rc < 0) {
				ctl_err_msg(e, false, "%s", rc == -ERR_RANGE ? msg : CTL_ERR_INVALID_JSON);
				return -1;
			}
			w->wait_index = (r->node != NULL ? r->node->modified : 0) + 1;
			return 0;
		}
		rc = ctl_err_from_body(e, res.body, res.body_len);
		ctl_result_free(&res);
		if (rc < 0)
			ctl_err_msg(e, false, "%s", CTL_ERR_INVALID_JSON);
		return -1;
	}
}

int
ctl_cmd_watch(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct watcher w = { 0 };
	bool forever = vals[0].b;
	int code = ctl_client_setup(c, true);

	(void)cmd;
	if (code != 0)
		return code;
	if (argc == 0)
		return bad_args(c, "key required");
	w.key = argv[0];
	w.recursive = vals[2].b;
	/* uint64(after-index): a negative value wraps, as in Go. */
	if (vals[1].i != 0)
		w.wait_index = (uint64_t)vals[1].i + 1;
	catch_interrupt();
	ctl_flush(c);
	for (;;) {
		struct ctl_resp r;
		struct ctl_err e = { 0 };

		if (watch_next(c, &w, &r, &e) < 0)
			return fail(c, &e);
		if (r.node != NULL && r.node->dir) {
			ctl_resp_free(&r);
			continue;
		}
		if (w.recursive) {
			buf_printf(&c->out, "[%s] ", r.action);
			if (r.node != NULL)
				buf_append(&c->out, r.node->key, r.node->key_len);
			buf_putc(&c->out, '\n');
		}
		print_and_free(c, &r);
		ctl_flush(c);
		if (!forever)
			return 0;
	}
}

void
ctl_exec_watch_split(int argc, char **argv, const char **key, int *cmd_off, int *cmd_n)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			*key = argv[0];
			*cmd_off = 2;
			*cmd_n = argc - 2;
			return;
		}
	}
	*key = argv[argc - 1];
	*cmd_off = 0;
	*cmd_n = argc - 1;
}

void
ctl_env_free(char **env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; env[i] != NULL; i++)
		mem_free(env[i]);
	mem_free(env);
}

char **
ctl_exec_watch_env(char **envp, const char *action, uint64_t modified, const char *key,
	size_t key_len, const char *value, size_t value_len)
{
	static const char *const names[4] = {
		"ETCD_WATCH_ACTION=", "ETCD_WATCH_MODIFIED_INDEX=", "ETCD_WATCH_KEY=", "ETCD_WATCH_VALUE=",
	};
	size_t n = 0, k = 0;
	char **env;
	struct buf b = BUF_INIT;

	while (envp != NULL && envp[n] != NULL)
		n++;
	env = mem_calloc(n + 5, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		bool ours = false;

		/* The variables set here replace any inherited ones (Go dedups, last wins). */
		for (size_t j = 0; j < 4; j++)
			if (strncmp(envp[i], names[j], strlen(names[j])) == 0)
				ours = true;
		if (ours)
			continue;
		env[k] = mem_strdup(envp[i]);
		if (env[k++] == NULL)
			goto fail;
	}
	for (size_t j = 0; j < 4; j++) {
		int rc = buf_puts(&b, names[j]);

		/* A value with NUL bytes is cut there: execve cannot pass them. */
		if (rc == 0 && j == 0)
			rc = buf_puts(&b, action);
		else if (rc == 0 && j == 1)
			rc = buf_printf(&b, "%llu", (unsigned long long)modified);
		else if (rc == 0 && j == 2)
			rc = buf_append(&b, key, strnlen(key, key_len));
		else if (rc == 0)
			rc = buf_append(&b, value, strnlen(value, value_len));
		if (rc < 0 || (env[k] = buf_steal(&b, NULL)) == NULL)
			goto fail;
		k++;
	}
	buf_free(&b);
	return env;
fail:
	buf_free(&b);
	ctl_env_free(env);
	return NULL;
}

/* exec.LookPath: a name without '/' is searched in $PATH. */
static int
look_path(const char *file, char *out, size_t cap)
{
	const char *path = getenv("PATH");

	if (strchr(file, '/') != NULL) {
		snprintf(out, cap, "%s", file);
		return 0;
	}
	if (path == NULL)
		path = "";
	for (;;) {
		size_t l = strcspn(path, ":");
		struct stat st;

		if ((size_t)snprintf(out, cap, "%.*s/%s", (int)l, l == 0 ? "." : path, file) < cap &&
		    stat(out, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0)
			return 0;
		if (path[l] == '\0')
			return -ERR_NOTFOUND;
		path += l + 1;
	}
}

/* Go's text for an exec errno (lower case, the same with glibc and musl). */
static const char *
exec_errstr(int e)
{
	switch (e) {
	case ENOENT:
		return "no such file or directory";
	case EACCES:
		return "permission denied";
	case ENOEXEC:
		return "exec format error";
	case ENOTDIR:
		return "not a directory";
	case E2BIG:
		return "argument list too long";
	case ENOMEM:
		return "cannot allocate memory";
	case ELOOP:
		return "too many levels of symbolic links";
	case ENAMETOOLONG:
		return "file name too long";
	default:
		return "exec failed";
	}
}

/*
 * Starts the command without waiting for it, as etcdctl's goroutine does;
 * an exec failure comes back through a close-on-exec pipe. Returns 0, or
 * the exit code after printing Go's message.
 */
static int
spawn(struct ctl *c, char **argv, int argc, char **env)
{
	char path[EXEC_PATH_BYTES_MAX];
	char **args;
	int pfd[2], err = 0;
	pid_t pid;
	ssize_t n;

	if (look_path(argv[0], path, sizeof(path)) < 0) {
		buf_printf(&c->err, "exec: \"%s\": executable file not found in $PATH", argv[0]);
		return CTL_EXIT_BAD_ARGS;
	}
	args = mem_calloc((size_t)argc + 1, sizeof(*args));
	if (args == NULL || pipe2(pfd, O_CLOEXEC) < 0) {
		mem_free(args);
		buf_printf(&c->err, "fork/exec %s: %s", path, exec_errstr(errno));
		return CTL_EXIT_BAD_ARGS;
	}
	memcpy(args, argv, (size_t)argc * sizeof(*args));
	ctl_flush(c);
	pid = fork();
	if (pid == 0) {
		int e;
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		close(pfd[0]);
		signal(SIGINT, SIG_DFL);
		/* Go's exec.Cmd with a nil Stdin reads from the null device. */
		if (null >= 0 && null != 0) {
			dup2(null, 0);
			close(null);
		}
		execve(path, args, env);
		e = errno;
		(void)!write(pfd[1], &e, sizeof(e));
		_exit(127);
	}
	close(pfd[1]);
	mem_free(args);
	if (pid < 0) {
		close(pfd[0]);
		buf_printf(&c->err, "fork/exec %s: %s", path, exec_errstr(errno));
		return CTL_EXIT_BAD_ARGS;
	}
	do
		n = read(pfd[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof(err)) {
		waitpid(pid, NULL, 0);
		buf_printf(&c->err, "fork/exec %s: %s", path, exec_errstr(err));
		return CTL_EXIT_BAD_ARGS;
	}
	return 0;
}

static void
reap_children(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int
ctl_cmd_exec_watch(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct watcher w = { 0 };
	const char *key;
	int off, ncmd, code = ctl_client_setup(c, true);

	(void)cmd;
	if (code != 0)
		return code;
	if (argc < 2)
		return bad_args(c, "key and command to exec required");
	ctl_exec_watch_split(argc, argv, &key, &off, &ncmd);
	if (ncmd <= 0)
		return bad_args(c, "key and command to exec required");
	w.key = key;
	w.recursive = vals[1].b;
	if (vals[0].i != 0)
		w.wait_index = (uint64_t)vals[0].i + 1;
	catch_interrupt();
	ctl_flush(c);
	for (;;) {
		struct ctl_resp r;
		struct ctl_err e = { 0 };
		char **env;

		reap_children();
		if (watch_next(c, &w, &r, &e) < 0)
			return fail(c, &e);
		if (r.node != NULL && r.node->dir) {
			buf_puts(&c->err, "Ignored dir ");
			buf_append(&c->err, r.node->key, r.node->key_len);
			buf_puts(&c->err, " change\n");
			ctl_flush(c);
			ctl_resp_free(&r);
			continue;
		}
		env = ctl_exec_watch_env(environ, r.action, r.node != NULL ? r.node->modified : 0,
			r.node != NULL ? r.node->key : "", r.node != NULL ? r.node->key_len : 0,
			r.node != NULL ? r.node->value : "", r.node != NULL ? r.node->value_len : 0);
		ctl_resp_free(&r);
		if (env == NULL)
			return bad_args(c, "out of memory");
		code = spawn(c, argv + off, ncmd, env);
		ctl_env_free(env);
		if (code != 0)
			return code;
	}
}
