/*
 * etcdctl applet: the v2 store CLI, a drop-in for etcdctl 2.x as Debian's
 * etcdctl 3.4 runs it with ETCDCTL_API=2. This file holds the command
 * tables, the dispatch (urfave/cli's App.Run, Command.Run and
 * RunAsSubcommand, in that order of checks), the client set-up shared by
 * every command (endpoints, environment, credentials, member-list sync) and
 * the error exit path.
 *
 * Start-up does nothing but parse: no file is read and no connection made
 * before a command needs it, because scripts run etcdctl in loops. It must
 * never exit from deep inside a command (codes are returned up to here) and
 * never print anything the original would not.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "corebox/applets.h"
#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/etcdctl.h"
#include "corebox/http.h"
#include "corebox/loop.h"
#include "corebox/mem.h"
#include "corebox/tls.h"

/* Longest password read from stdin. */
#define PASSWORD_BYTES_MAX 4096
/* Endpoints given on the command line or found by discovery. */
#define USER_ENDPOINTS_MAX CTL_ENDPOINTS_MAX

#define DEFAULT_ENDPOINTS "http://127.0.0.1:2379,http://127.0.0.1:4001"
#define DEFAULT_TIMEOUT_NS (2 * INT64_C(1000000000))
#define DEFAULT_TOTAL_TIMEOUT_NS (5 * INT64_C(1000000000))

const struct ctl_flag ctl_global_flags[CTL_G_COUNT] = {
	[CTL_G_DEBUG] = { "debug", CTL_F_BOOL, "--debug",
		"output cURL commands which can be used to reproduce the request" },
	[CTL_G_NO_SYNC] = { "no-sync", CTL_F_BOOL, "--no-sync",
		"don't synchronize cluster information before sending request" },
	[CTL_G_OUTPUT] = { "output, o", CTL_F_STRING, "--output simple, -o simple",
		"output response in the given format (simple, `extended` or `json`) (default: \"simple\")" },
	[CTL_G_DISCOVERY_SRV] = { "discovery-srv, D", CTL_F_STRING, "--discovery-srv value, -D value",
		"domain name to query for SRV records describing cluster endpoints" },
	[CTL_G_INSECURE_DISCOVERY] = { "insecure-discovery", CTL_F_BOOL, "--insecure-discovery",
		"accept insecure SRV records describing cluster endpoints" },
	[CTL_G_PEERS] = { "peers, C", CTL_F_STRING, "--peers value, -C value",
		"DEPRECATED - \"--endpoints\" should be used instead" },
	[CTL_G_ENDPOINT] = { "endpoint", CTL_F_STRING, "--endpoint value",
		"DEPRECATED - \"--endpoints\" should be used instead" },
	[CTL_G_ENDPOINTS] = { "endpoints", CTL_F_STRING, "--endpoints value",
		"a comma-delimited list of machine addresses in the cluster (default: \"" DEFAULT_ENDPOINTS "\")" },
	[CTL_G_CERT_FILE] = { "cert-file", CTL_F_STRING, "--cert-file value",
		"identify HTTPS client using this SSL certificate file" },
	[CTL_G_KEY_FILE] = { "key-file", CTL_F_STRING, "--key-file value",
		"identify HTTPS client using this SSL key file" },
	[CTL_G_CA_FILE] = { "ca-file", CTL_F_STRING, "--ca-file value",
		"verify certificates of HTTPS-enabled servers using this CA bundle" },
	[CTL_G_USERNAME] = { "username, u", CTL_F_STRING, "--username value, -u value",
		"provide username[:password] and prompt if password is not supplied." },
	[CTL_G_TIMEOUT] = { "timeout", CTL_F_DURATION, "--timeout value",
		"connection timeout per request (default: 2s)" },
	[CTL_G_TOTAL_TIMEOUT] = { "total-timeout", CTL_F_DURATION, "--total-timeout value",
		"timeout for the command execution (except watch) (default: 5s)" },
	[CTL_G_HELP] = { "help, h", CTL_F_BOOL, "--help, -h", "show help" },
	[CTL_G_VERSION] = { "version, v", CTL_F_BOOL, "--version, -v", "print the version" },
};

static const struct ctl_flag help_flag = { "help, h", CTL_F_BOOL, "--help, -h", "show help" };

#define TTL_FLAG { "ttl", CTL_F_INT, "--ttl value", "key time-to-live in seconds (default: 0)" }

static const struct ctl_flag get_flags[] = {
	{ "sort", CTL_F_BOOL, "--sort", "returns result in sorted order" },
	{ "quorum, q", CTL_F_BOOL, "--quorum, -q", "require quorum for get request" },
};
static const struct ctl_flag set_flags[] = {
	TTL_FLAG,
	{ "swap-with-value", CTL_F_STRING, "--swap-with-value value", "previous value" },
	{ "swap-with-index", CTL_F_INT, "--swap-with-index value", "previous index (default: 0)" },
};
static const struct ctl_flag mk_flags[] = {
	{ "in-order", CTL_F_BOOL, "--in-order", "create in-order key under directory <key>" },
	TTL_FLAG,
};
static const struct ctl_flag ttl_flags[] = {
	TTL_FLAG,
};
static const struct ctl_flag rm_flags[] = {
	{ "dir", CTL_F_BOOL, "--dir", "removes the key if it is an empty directory or a key-value pair" },
	{ "recursive, r", CTL_F_BOOL, "--recursive, -r", "removes the key and all child keys(if it is a directory)" },
	{ "with-value", CTL_F_STRING, "--with-value value", "previous value" },
	{ "with-index", CTL_F_INT, "--with-index value", "previous index (default: 0)" },
};
static const struct ctl_flag ls_flags[] = {
	{ "sort", CTL_F_BOOL, "--sort", "returns result in sorted order" },
	{ "recursive, r", CTL_F_BOOL, "--recursive, -r", "returns all key names recursively for the given path" },
	{ "p", CTL_F_BOOL, "-p", "append slash (/) to directories" },
	{ "quorum, q", CTL_F_BOOL, "--quorum, -q", "require quorum for get request" },
};
static const struct ctl_flag watch_flags[] = {
	{ "forever, f", CTL_F_BOOL, "--forever, -f", "forever watch a key until CTRL+C" },
	{ "after-index", CTL_F_INT, "--after-index value", "watch after the given index (default: 0)" },
	{ "recursive, r", CTL_F_BOOL, "--recursive, -r", "returns all values for key and child keys" },
};
static const struct ctl_flag exec_watch_flags[] = {
	{ "after-index", CTL_F_INT, "--after-index value", "watch after the given index (default: 0)" },
	{ "recursive, r", CTL_F_BOOL, "--recursive, -r", "watch all values for key and child keys" },
};
static const struct ctl_flag health_flags[] = {
	{ "forever, f", CTL_F_BOOL, "--forever, -f", "forever check the health every 10 second until CTRL+C" },
};
static const struct ctl_flag backup_flags[] = {
	{ "data-dir", CTL_F_STRING, "--data-dir value", "Path to the etcd data dir" },
	{ "wal-dir", CTL_F_STRING, "--wal-dir value", "Path to the etcd wal dir" },
	{ "backup-dir", CTL_F_STRING, "--backup-dir value", "Path to the backup dir" },
	{ "backup-wal-dir", CTL_F_STRING, "--backup-wal-dir value", "Path to the backup wal dir" },
	{ "with-v3", CTL_F_BOOL, "--with-v3", "Backup v3 backend data" },
};

#define NFLAGS(a) (sizeof(a) / sizeof((a)[0]))
#define FLAGS(a) a, NFLAGS(a)

static const struct ctl_cmd commands[] = {
	{ "backup", NULL, "backup an etcd directory", " ", NULL, FLAGS(backup_flags), NULL, 0, ctl_cmd_backup },
	{ "cluster-health", NULL, "check the health of the etcd cluster", " ", NULL, FLAGS(health_flags), NULL, 0,
		ctl_cmd_cluster_health },
	{ "mk", NULL, "make a new key with a given value", "<key> <value>", NULL, FLAGS(mk_flags), NULL, 0,
		ctl_cmd_mk },
	{ "mkdir", NULL, "make a new directory", "<key>", NULL, FLAGS(ttl_flags), NULL, 0, ctl_cmd_mkdir },
	{ "rm", NULL, "remove a key or a directory", "<key>", NULL, FLAGS(rm_flags), NULL, 0, ctl_cmd_rm },
	{ "rmdir", NULL, "removes the key if it is an empty directory or a key-value pair", "<key>", NULL,
		NULL, 0, NULL, 0, ctl_cmd_rmdir },
	{ "get", NULL, "retrieve the value of a key", "<key>", NULL, FLAGS(get_flags), NULL, 0, ctl_cmd_get },
	{ "ls", NULL, "retrieve a directory", "[key]", NULL, FLAGS(ls_flags), NULL, 0, ctl_cmd_ls },
	{ "set", NULL, "set the value of a key", "<key> <value>",
		"Set sets the value of a key.\n\n"
		"   When <value> begins with '-', <value> is interpreted as a flag.\n"
		"   Insert '--' for workaround:\n\n"
		"   $ set -- <key> <value>",
		FLAGS(set_flags), NULL, 0, ctl_cmd_set },
	{ "setdir", NULL, "create a new directory or update an existing directory TTL", "<key>", NULL,
		FLAGS(ttl_flags), NULL, 0, ctl_cmd_setdir },
	{ "update", NULL, "update an existing key with a given value", "<key> <value>", NULL, FLAGS(ttl_flags),
		NULL, 0, ctl_cmd_update },
	{ "updatedir", NULL, "update an existing directory", "<key> <value>", NULL, FLAGS(ttl_flags), NULL, 0,
		ctl_cmd_updatedir },
	{ "watch", NULL, "watch a key for changes", "<key>", NULL, FLAGS(watch_flags), NULL, 0, ctl_cmd_watch },
	{ "exec-watch", NULL, "watch a key for changes and exec an executable", "<key> <command> [args...]",
		NULL, FLAGS(exec_watch_flags), NULL, 0, ctl_cmd_exec_watch },
};

/* The groups are defined next to their actions; listed in the help's order. */
#define NCOMMANDS (NFLAGS(commands))
#define NGROUPS 4
#define NALL (NCOMMANDS + NGROUPS + 1)

static const struct ctl_cmd help_cmd = {
	"help", "h", "Shows a list of commands or help for one command", "[command]", NULL, NULL, 0, NULL, 0, NULL,
};

/* Builds the full top-level list (commands, groups, help) in help order. */
static void
all_commands(struct ctl_cmd out[NALL])
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		out[i] = commands[i];
	out[NCOMMANDS] = ctl_member_cmd;
	out[NCOMMANDS + 1] = ctl_user_cmd;
	out[NCOMMANDS + 2] = ctl_role_cmd;
	out[NCOMMANDS + 3] = ctl_auth_cmd;
	out[NCOMMANDS + 4] = help_cmd;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

static void
write_all(int fd, struct buf *b)
{
	while (buf_avail(b) > 0) {
		ssize_t n = write(fd, buf_head(b), buf_avail(b));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_consume(b, (size_t)n);
	}
	buf_reset(b);
}

void
ctl_flush(struct ctl *c)
{
	write_all(1, &c->out);
	write_all(2, &c->err);
}

int
ctl_handle_error(struct ctl *c, int code, const struct ctl_err *e)
{
	ctl_err_handle_text(&c->err, e);
	return code;
}

/* ------------------------------------------------------------------ */
/* Client set-up                                                       */
/* ------------------------------------------------------------------ */

uint64_t
ctl_deadline(const struct ctl *c)
{
	uint64_t now = time_mono_ms();

	/* A zero or negative total timeout is a context that is already done. */
	if (c->total_timeout_ns <= 0)
		return now;
	return now + (uint64_t)(c->total_timeout_ns / 1000000);
}

/* A global string flag, or the environment variable when the flag is empty. */
static const char *
flag_or_env(struct ctl *c, int idx, const char *env)
{
	const char *v = c->g[idx].s;

	if ((v == NULL || v[0] == '\0') && env != NULL)
		v = getenv(env);
	return v != NULL ? v : "";
}

/* getPeersFlagValue: the first non-empty of the flags and variables, in etcdctl's order. */
static const char *
peers_value(struct ctl *c)
{
	static const struct {
		int flag;
		const char *env;
	} order[] = {
		{ CTL_G_ENDPOINTS, "ETCDCTL_ENDPOINTS" },
		{ CTL_G_ENDPOINT, "ETCDCTL_ENDPOINT" },
		{ CTL_G_PEERS, "ETCDCTL_PEERS" },
	};

	for (size_t i = 0; i < NFLAGS(order); i++) {
		const char *v = c->g[order[i].flag].s;

		if (v != NULL && v[0] != '\0')
			return v;
		v = getenv(order[i].env);
		if (v != NULL && v[0] != '\0')
			return v;
	}
	return DEFAULT_ENDPOINTS;
}

static void
free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mem_free(v[i]);
}

/* Splits s at commas into owned strings (strings.Split keeps empty parts). */
static int
split_commas(const char *s, char **out, size_t max, size_t *n)
{
	*n = 0;
	for (;;) {
		size_t l = strcspn(s, ",");

		if (*n >= max)
			return -ERR_LIMIT;
		out[*n] = mem_strndup(s, l);
		if (out[*n] == NULL)
			return -ERR_NOMEM;
		(*n)++;
		if (s[l] == '\0')
			return 0;
		s += l + 1;
	}
}

/* Standard base64 with padding (HTTP basic authentication). */
static int
base64_put(struct buf *b, const unsigned char *s, size_t n)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		size_t left = n - i;
		char q[4];

		if (left > 1)
			v |= (uint32_t)s[i + 1] << 8;
		if (left > 2)
			v |= s[i + 2];
		q[0] = tbl[(v >> 18) & 63];
		q[1] = tbl[(v >> 12) & 63];
		q[2] = left > 1 ? tbl[(v >> 6) & 63] : '=';
		q[3] = left > 2 ? tbl[v & 63] : '=';
		rc = buf_append(b, q, 4);
	}
	return rc;
}

int
ctl_ask_password(struct ctl *c, const char *prompt, char **out)
{
	struct termios old, quiet;
	bool tty = isatty(0) == 1 && tcgetattr(0, &old) == 0;
	struct buf pw = BUF_INIT;
	int rc = 0;

	*out = NULL;
	buf_puts(&c->out, prompt);
	ctl_flush(c);
	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSAFLUSH, &quiet);
	}
	/* One byte at a time: nothing after the line may be consumed. */
	for (;;) {
		char ch;
		ssize_t n = read(0, &ch, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || ch == '\n')
			break;
		if (buf_avail(&pw) >= PASSWORD_BYTES_MAX) {
			rc = -ERR_LIMIT;
			break;
		}
		if (buf_putc(&pw, ch) < 0) {
			rc = -ERR_NOMEM;
			break;
		}
	}
	if (tty)
		tcsetattr(0, TCSAFLUSH, &old);
	buf_putc(&c->out, '\n');
	ctl_flush(c);
	if (rc == 0) {
		if (buf_avail(&pw) > 0 && buf_head(&pw)[buf_avail(&pw) - 1] == '\r')
			pw.len--;
		*out = buf_avail(&pw) > 0 ? buf_steal(&pw, NULL) : mem_strdup("");
		if (*out == NULL)
			rc = -ERR_NOMEM;
	}
	buf_free(&pw);
	return rc;
}

/* The member-list sync of mustNewClient. Returns 0 or an exit code. */
static int
client_sync(struct ctl *c)
{
	struct ctl_client *cl = &c->client;
	struct ctl_request rq;
	struct ctl_result res;
	struct ctl_err e = { 0 };
	struct ctl_members ms = { 0 };
	char *eps[CTL_ENDPOINTS_MAX], *cur[CTL_ENDPOINTS_MAX];
	size_t neps = 0;
	bool same;
	int code = 0;

	if (cl->debug) {
		buf_puts(&c->err, "start to sync cluster using endpoints(");
		ctl_client_endpoints_str(&c->err, cl, ",");
		buf_puts(&c->err, ")\n");
	}
	ctl_members_request(&rq);
	if (ctl_client_do(cl, &rq, ctl_deadline(c), &res, &e) < 0) {
		code = ctl_err_is_conn(&e) ? ctl_handle_error(c, CTL_EXIT_BAD_CONNECTION, &e) : 0;
		ctl_err_free(&e);
		goto debug;
	}
	if (res.status != 200 || ctl_members_parse(&ms, res.body, res.body_len) < 0) {
		/* Not a connection error: etcdctl carries on with the endpoints it has. */
		ctl_result_free(&res);
		goto debug;
	}
	ctl_result_free(&res);
	for (size_t i = 0; i < ms.n; i++)
		for (size_t j = 0; j < ms.m[i].nclient && neps < CTL_ENDPOINTS_MAX; j++)
			eps[neps++] = ms.m[i].client_urls[j];
	for (size_t i = 0; i < cl->neps; i++)
		cur[i] = cl->eps[i].str;
	qsort(eps, neps, sizeof(eps[0]), ctl_strcmp_ptr);
	qsort(cur, cl->neps, sizeof(cur[0]), ctl_strcmp_ptr);
	same = neps == cl->neps;
	for (size_t i = 0; same && i < neps; i++)
		same = strcmp(eps[i], cur[i]) == 0;
	if (!same) {
		char msg[CTL_ERRMSG_BYTES];
		int rc = ctl_client_set_endpoints(cl, eps, neps, msg, sizeof(msg));

		if (rc == -ERR_INVAL) {
			buf_puts(&c->err, "etcd cluster has no published client endpoints.\n");
			buf_puts(&c->err, "Try '--no-sync' if you want to access non-published client endpoints(");
			ctl_client_endpoints_str(&c->err, cl, ",");
			buf_puts(&c->err, ").\n");
			ctl_err_msg(&e, false, "client: no endpoints available");
			code = ctl_handle_error(c, CTL_EXIT_SERVER_ERROR, &e);
			ctl_err_free(&e);
		}
	}
	ctl_members_free(&ms);
debug:
	if (code == 0 && cl->debug) {
		buf_puts(&c->err, "got endpoints(");
		ctl_client_endpoints_str(&c->err, cl, ",");
		buf_puts(&c->err, ") after sync\n");
	}
	return code;
}

/*
 * getTransport: a TLS client config when any endpoint is https or a TLS
 * file is given (system CAs without --ca-file), shared by every request.
 * A bad file stops the command as etcdctl's client set-up does (exit 1).
 */
static int
setup_tls(struct ctl *c, const char *discovery_domain)
{
	const char *cert = flag_or_env(c, CTL_G_CERT_FILE, "ETCDCTL_CERT_FILE");
	const char *key = flag_or_env(c, CTL_G_KEY_FILE, "ETCDCTL_KEY_FILE");
	const char *ca = flag_or_env(c, CTL_G_CA_FILE, "ETCDCTL_CA_FILE");
	struct tls_config *cfg;
	char msg[TLS_ERRMSG_MAX];
	bool https = false;

	for (size_t i = 0; i < c->client.neps; i++)
		if (strncmp(c->client.eps[i].str, "https:", 6) == 0)
			https = true;
	if (cert[0] == '\0' && key[0] == '\0' && ca[0] == '\0' && !https)
		return 0;
	if ((cert[0] == '\0') != (key[0] == '\0')) {
		buf_printf(&c->err, "KeyFile and CertFile must both be present[key: %s, cert: %s]\n", key, cert);
		return CTL_EXIT_BAD_ARGS;
	}
	msg[0] = '\0';
	cfg = tls_config_new_client(cert[0] ? cert : NULL, key[0] ? key : NULL, ca[0] ? ca : NULL,
		discovery_domain[0] ? discovery_domain : NULL, msg);
	if (cfg == NULL) {
		buf_printf(&c->err, "%s\n", msg[0] ? msg : "out of memory");
		return CTL_EXIT_BAD_ARGS;
	}
	if (c->client.sync == NULL)
		c->client.sync = http_sync_new();
	if (c->client.sync == NULL || http_sync_set_tls(c->client.sync, cfg) < 0) {
		tls_config_free(cfg);
		buf_puts(&c->err, "out of memory\n");
		return CTL_EXIT_BAD_ARGS;
	}
	/* The client keeps its own reference. */
	tls_config_free(cfg);
	return 0;
}

int
ctl_client_setup(struct ctl *c, bool sync)
{
	struct ctl_client *cl = &c->client;
	char *eps[USER_ENDPOINTS_MAX];
	size_t neps = 0;
	char msg[CTL_ERRMSG_BYTES];
	const char *domain, *user;
	bool insecure = false;
	int rc, code;

	if (c->client_ready)
		return 0;
	cl->header_timeout_ns = c->timeout_ns;
	cl->err_out = &c->err;
	cl->rand_state = time_real_ns() ^ ((uint64_t)getpid() << 32);
	domain = flag_or_env(c, CTL_G_DISCOVERY_SRV, "ETCDCTL_DISCOVERY_SRV");
	insecure = c->g[CTL_G_INSECURE_DISCOVERY].b ||
		(getenv("ETCDCTL_INSECURE_DISCOVERY") != NULL && getenv("ETCDCTL_INSECURE_DISCOVERY")[0] != '\0');
	if (domain[0] != '\0') {
		struct ctl_err e = { 0 };
		const char *svc = getenv("ETCDCTL_DISCOVERY_SRV_NAME");
		int n = ctl_srv_discover(domain, svc != NULL ? svc : "", eps, USER_ENDPOINTS_MAX, &e);

		if (n < 0) {
			ctl_err_text(&c->err, &e);
			buf_putc(&c->err, '\n');
			ctl_err_free(&e);
			return CTL_EXIT_BAD_ARGS;
		}
		for (int i = 0; i < n; i++) {
			if (!insecure && strncmp(eps[i], "http://", 7) == 0) {
				buf_puts(&c->err, "ignoring discovered insecure endpoint ");
				ctl_quote(&c->err, eps[i], strlen(eps[i]));
				buf_putc(&c->err, '\n');
				mem_free(eps[i]);
				continue;
			}
			eps[neps++] = eps[i];
		}
	}
	if (neps == 0) {
		rc = split_commas(peers_value(c), eps, USER_ENDPOINTS_MAX, &neps);
		if (rc < 0) {
			free_strs(eps, neps);
			buf_printf(&c->err, "%s\n", rc == -ERR_LIMIT ? "too many endpoints" : "out of memory");
			return CTL_EXIT_BAD_ARGS;
		}
	}
	rc = ctl_client_set_endpoints(cl, eps, neps, msg, sizeof(msg));
	free_strs(eps, neps);
	if (rc < 0) {
		buf_printf(&c->err, "%s\n", msg);
		return CTL_EXIT_BAD_ARGS;
	}
	/* Certificates found by discovery must name the domain, unless insecure. */
	code = setup_tls(c, insecure ? "" : domain);
	if (code != 0)
		return code;
	user = flag_or_env(c, CTL_G_USERNAME, "ETCDCTL_USERNAME");
	if (user[0] != '\0') {
		const char *colon = strchr(user, ':');
		struct buf cred = BUF_INIT, hdr = BUF_INIT;
		char *pw = NULL;
		int brc;

		if (colon == NULL) {
			if (ctl_ask_password(c, "Password: ", &pw) < 0) {
				buf_puts(&c->err, "out of memory\n");
				return CTL_EXIT_BAD_ARGS;
			}
			brc = buf_printf(&cred, "%s:%s", user, pw);
			mem_free(pw);
		} else {
			brc = buf_puts(&cred, user);
		}
		/* user[0] is not NUL, so cred is never empty here. */
		if (brc == 0)
			brc = buf_puts(&hdr, "Basic ");
		if (brc == 0)
			brc = base64_put(&hdr, (const unsigned char *)buf_head(&cred), buf_avail(&cred));
		if (brc == 0)
			cl->auth_header = buf_steal(&hdr, NULL);
		buf_free(&cred);
		buf_free(&hdr);
		if (cl->auth_header == NULL) {
			buf_puts(&c->err, "out of memory\n");
			return CTL_EXIT_BAD_ARGS;
		}
	}
	c->client_ready = true;
	if (!sync) {
		if (c->g[CTL_G_DEBUG].b) {
			buf_puts(&c->err, "Cluster-Endpoints: ");
			ctl_client_endpoints_str(&c->err, cl, ", ");
			buf_putc(&c->err, '\n');
		}
		cl->debug = c->g[CTL_G_DEBUG].b;
		return 0;
	}
	cl->debug = c->g[CTL_G_DEBUG].b;
	if (!c->g[CTL_G_NO_SYNC].b) {
		code = client_sync(c);
		if (code != 0)
			return code;
	}
	if (cl->debug) {
		buf_puts(&c->err, "Cluster-Endpoints: ");
		ctl_client_endpoints_str(&c->err, cl, ", ");
		buf_putc(&c->err, '\n');
	}
	return 0;
}

int
ctl_strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

static int
print_app_help(struct ctl *c, struct buf *b)
{
	struct ctl_cmd all[NALL];

	all_commands(all);
	return ctl_help_app(b, "etcdctl", "A simple command line client for etcd.", CTL_VERSION, all, NALL,
		ctl_global_flags, CTL_G_COUNT);
}

/* "No help topic for 'x'" (urfave's ShowCommandHelp for an unknown name). */
static int
no_help_topic(struct ctl *c, const char *name)
{
	buf_printf(&c->err, "No help topic for '%s'\n", name);
	return CTL_EXIT_NO_HELP_TOPIC;
}

/* Command.Run: a command's flags (reordered), help, then its action. */
static int
run_command(struct ctl *c, const char *prefix, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct ctl_flag flags[16];
	struct ctl_val vals[16];
	char errmsg[CTL_ERRMSG_BYTES];
	char **rest = NULL;
	int nrest = 0, rc, code;
	size_t n = cmd->nflags;

	if (n + 1 > NFLAGS(flags))
		return CTL_EXIT_BAD_ARGS;
	if (n > 0)
		memcpy(flags, cmd->flags, n * sizeof(flags[0]));
	flags[n] = help_flag;
	memset(vals, 0, sizeof(vals));
	rc = ctl_flags_parse(flags, n + 1, vals, true, argc, argv, &rest, &nrest, errmsg, sizeof(errmsg));
	if (rc == -ERR_NOMEM) {
		ctl_vals_free(flags, n + 1, vals);
		buf_puts(&c->err, "out of memory\n");
		return CTL_EXIT_BAD_ARGS;
	}
	if (rc < 0) {
		buf_printf(&c->out, "Incorrect Usage: %s\n\n", errmsg);
		ctl_help_cmd(&c->out, prefix, cmd);
		buf_printf(&c->err, "%s\n", errmsg);
		ctl_vals_free(flags, n + 1, vals);
		return CTL_EXIT_BAD_ARGS;
	}
	if (vals[n].b) {
		ctl_help_cmd(&c->out, prefix, cmd);
		code = 0;
	} else if (cmd->action == NULL) {
		/* The help command: help for the named command, or the app's. */
		if (nrest > 0) {
			struct ctl_cmd all[NALL];
			const struct ctl_cmd *t;

			all_commands(all);
			t = ctl_cmd_find(all, NALL, rest[0]);
			code = t != NULL ? ctl_help_cmd(&c->out, "etcdctl", t), 0 : no_help_topic(c, rest[0]);
		} else {
			print_app_help(c, &c->out);
			code = 0;
		}
	} else {
		c->prefix = prefix;
		code = cmd->action(c, cmd, vals, nrest, rest);
	}
	ctl_vals_free(flags, n + 1, vals);
	mem_free(rest);
	return code;
}

/* RunAsSubcommand: member, user, role, auth. */
static int
run_group(struct ctl *c, const struct ctl_cmd *grp, int argc, char **argv)
{
	struct ctl_val vals[1] = { { 0 } };
	char errmsg[CTL_ERRMSG_BYTES];
	char prefix[64];
	char **rest = NULL;
	int nrest = 0, rc, code;

	snprintf(prefix, sizeof(prefix), "etcdctl %s", grp->name);
	rc = ctl_flags_parse(&help_flag, 1, vals, false, argc, argv, &rest, &nrest, errmsg, sizeof(errmsg));
	if (rc == -ERR_NOMEM) {
		buf_puts(&c->err, "out of memory\n");
		return CTL_EXIT_BAD_ARGS;
	}
	if (rc < 0) {
		if (rc == -ERR_EXIST)
			buf_printf(&c->out, "%s\n\n", errmsg);
		else
			buf_printf(&c->out, "Incorrect Usage. %s\n\n", errmsg);
		ctl_help_group(&c->out, "etcdctl", grp);
		buf_printf(&c->err, "%s\n", errmsg);
		return CTL_EXIT_BAD_ARGS;
	}
	if (vals[0].b) {
		ctl_help_group(&c->out, "etcdctl", grp);
		mem_free(rest);
		return 0;
	}
	if (nrest == 0) {
		ctl_help_group(&c->out, "etcdctl", grp);
		return 0;
	}
	if (strcmp(rest[0], "help") == 0 || strcmp(rest[0], "h") == 0) {
		const struct ctl_cmd *t;
		int i;

		/* The sub-application's own help command; its first argument that is
		 * not a flag names the topic. */
		for (i = 1; i < nrest && rest[i][0] == '-'; i++)
			;
		if (i < nrest) {
			t = ctl_cmd_find(grp->subs, grp->nsubs, rest[i]);
			code = t != NULL ? ctl_help_cmd(&c->out, prefix, t), 0 : no_help_topic(c, rest[i]);
		} else {
			ctl_help_group_app(&c->out, "etcdctl", grp, CTL_VERSION);
			code = 0;
		}
		mem_free(rest);
		return code;
	}
	{
		const struct ctl_cmd *sub = ctl_cmd_find(grp->subs, grp->nsubs, rest[0]);

		code = sub != NULL ? run_command(c, prefix, sub, nrest - 1, rest + 1) : no_help_topic(c, rest[0]);
	}
	mem_free(rest);
	return code;
}

static int
run(struct ctl *c, int argc, char **argv)
{
	char errmsg[CTL_ERRMSG_BYTES];
	char **rest = NULL;
	int nrest = 0, rc, code;
	struct ctl_cmd all[NALL];
	const struct ctl_cmd *cmd;

	rc = ctl_flags_parse(ctl_global_flags, CTL_G_COUNT, c->g, false, argc - 1, argv + 1, &rest, &nrest,
		errmsg, sizeof(errmsg));
	if (rc == -ERR_NOMEM) {
		buf_puts(&c->err, "out of memory\n");
		return CTL_EXIT_BAD_ARGS;
	}
	if (rc < 0) {
		if (rc == -ERR_EXIST)
			buf_printf(&c->out, "%s\n", errmsg);
		else
			buf_printf(&c->out, "Incorrect Usage. %s\n\n", errmsg);
		print_app_help(c, &c->out);
		buf_printf(&c->err, "%s\n", errmsg);
		return CTL_EXIT_BAD_ARGS;
	}
	if (c->g[CTL_G_HELP].b) {
		print_app_help(c, &c->out);
		mem_free(rest);
		return 0;
	}
	if (c->g[CTL_G_VERSION].b) {
		buf_printf(&c->out, "etcdctl version: %s\nAPI version: 2\n", CTL_VERSION);
		mem_free(rest);
		return 0;
	}
	c->output = c->g[CTL_G_OUTPUT].set ? c->g[CTL_G_OUTPUT].s : "simple";
	c->fmt = ctl_format_parse(c->output);
	c->timeout_ns = c->g[CTL_G_TIMEOUT].set ? c->g[CTL_G_TIMEOUT].i : DEFAULT_TIMEOUT_NS;
	c->total_timeout_ns = c->g[CTL_G_TOTAL_TIMEOUT].set ? c->g[CTL_G_TOTAL_TIMEOUT].i : DEFAULT_TOTAL_TIMEOUT_NS;
	if (nrest == 0) {
		print_app_help(c, &c->out);
		return 0;
	}
	all_commands(all);
	cmd = ctl_cmd_find(all, NALL, rest[0]);
	if (cmd == NULL)
		code = no_help_topic(c, rest[0]);
	else if (cmd->nsubs > 0)
		code = run_group(c, cmd, nrest - 1, rest + 1);
	else
		code = run_command(c, "etcdctl", cmd, nrest - 1, rest + 1);
	mem_free(rest);
	return code;
}

int
etcdctl_main(int argc, char **argv)
{
	struct ctl *c = mem_calloc(1, sizeof(*c));
	int code;

	if (c == NULL) {
		fputs("etcdctl: out of memory\n", stderr);
		return CTL_EXIT_BAD_ARGS;
	}
	code = run(c, argc, argv);
	ctl_flush(c);
	ctl_client_free(&c->client);
	buf_free(&c->out);
	buf_free(&c->err);
	mem_free(c);
	return code;
}
