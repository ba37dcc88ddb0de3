/*
 * etcdctl: internals shared by the files of the etcdctl applet
 * (the files in src/etcdctl/). Nothing here is used outside the applet and its unit
 * tests; the applet's only public entry point is etcdctl_main (applets.h).
 *
 * The applet is a drop-in for etcdctl 2.x, i.e. Debian etcdctl 3.4 run with
 * ETCDCTL_API=2: the same command line (urfave/cli v1 rules, see ctl_cli_*),
 * the same output (ctl_print_*), the same error text and exit codes
 * (ctl_err_*), the same HTTP requests (ctl_url_*, ctl_client_*).
 *
 * Ownership: every function that produces text appends it to a caller's
 * struct buf. Parsed responses (struct ctl_resp, struct ctl_members) own
 * their memory until the matching *_free. Argument vectors returned by the
 * parser are arrays owned by the caller (mem_free) whose strings still
 * belong to the process's argv.
 */
#ifndef COREBOX_ETCDCTL_H
#define COREBOX_ETCDCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corebox/buf.h"

struct http_sync;

/* Exit codes of etcdctl 2.x (ctlv2/command/error.go). */
enum {
	CTL_EXIT_SUCCESS = 0,
	CTL_EXIT_BAD_ARGS = 1,
	CTL_EXIT_BAD_CONNECTION = 2,
	CTL_EXIT_BAD_AUTH = 3,      /* defined by etcdctl, never returned by it */
	CTL_EXIT_SERVER_ERROR = 4,
	CTL_EXIT_CLUSTER_NOT_HEALTHY = 5,
};

/* urfave/cli prints "No help topic for 'x'" and exits with this. */
#define CTL_EXIT_NO_HELP_TOPIC 3

/* What `etcdctl --version` says, and the VERSION: section of the help. */
#define CTL_VERSION "2.3.8"

/* ------------------------------------------------------------------ */
/* Command line (urfave/cli v1.22 over Go's flag package)              */
/* ------------------------------------------------------------------ */

enum ctl_ftype {
	CTL_F_BOOL,
	CTL_F_STRING,
	CTL_F_INT,      /* Go int: strconv.ParseInt(s, 0, 64) */
	CTL_F_DURATION, /* time.ParseDuration */
	CTL_F_SLICE,    /* cli.StringSlice: every occurrence appends */
};

/*
 * One flag. names is urfave's "long, s" list (the first is the primary
 * name); each name is a flag of its own to Go's parser. help_left and
 * help_usage are the two help columns exactly as etcdctl prints them.
 */
struct ctl_flag {
	const char *names;
	enum ctl_ftype type;
	const char *help_left;
	const char *help_usage;
};

/* A flag's parsed value; zero-initialised means "not given, zero value". */
struct ctl_val {
	int set;          /* given on the command line (any of its names) */
	int b;            /* CTL_F_BOOL */
	const char *s;    /* CTL_F_STRING: points into argv */
	int64_t i;        /* CTL_F_INT, CTL_F_DURATION (ns) */
	const char **list;/* CTL_F_SLICE: array owned by the value, strings in argv */
	size_t nlist;
	unsigned forms;   /* private: bit per name seen */
};

#define CTL_ERRMSG_BYTES 512

/*
 * Parses argv[0 .. argc) against flags into vals (nflags entries, zeroed by
 * the caller). With reorder, flags found after positional arguments are
 * moved in front first, exactly as urfave/cli v1.22 reorderArgs does for a
 * command's own flags (a "--" is moved to the front of the positionals).
 * Parsing then follows Go's flag.FlagSet.Parse: it stops at the first
 * positional argument or after "--".
 *
 * On success *rest (a new array, caller frees with mem_free; NULL when
 * *nrest is 0) holds the positional arguments. Returns 0, or -ERR_INVAL
 * with Go's message in errmsg ("flag provided but not defined: -x",
 * "flag needs an argument: -ttl", "invalid value \"a\" for flag -ttl:
 * parse error", "bad flag syntax: ---x"), or -ERR_EXIST when two names of
 * one flag were both used ("Cannot use two forms of the same flag: o
 * output"), or -ERR_NOMEM. ctl_vals_free releases the slices either way.
 */
int ctl_flags_parse(const struct ctl_flag *flags, size_t nflags, struct ctl_val *vals,
	bool reorder, int argc, char **argv, char ***rest, int *nrest,
	char *errmsg, size_t errlen);
void ctl_vals_free(const struct ctl_flag *flags, size_t nflags, struct ctl_val *vals);
/* Index of the flag whose names include name, or -1. */
int ctl_flag_find(const struct ctl_flag *flags, size_t nflags, const char *name);

struct ctl;

/* A command, or a group of subcommands (member, user, role, auth). */
struct ctl_cmd {
	const char *name;
	const char *alias;        /* NULL or a second name ("h" for help) */
	const char *usage;        /* one line */
	const char *args_usage;   /* NULL: "[arguments...]" */
	const char *description;  /* NULL or the DESCRIPTION: text */
	const struct ctl_flag *flags;
	size_t nflags;
	const struct ctl_cmd *subs;
	size_t nsubs;
	/* argv are the positional arguments after the command's flags. */
	int (*action)(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals,
		int argc, char **argv);
};

/* Looks a command up by name or alias among n; NULL if none. */
const struct ctl_cmd *ctl_cmd_find(const struct ctl_cmd *cmds, size_t n, const char *name);

/*
 * Help texts, byte for byte as urfave/cli's templates render them through
 * text/tabwriter (two spaces of padding after the widest cell of a block).
 */
/* The application help (`etcdctl --help`). */
int ctl_help_app(struct buf *b, const char *name, const char *usage, const char *version,
	const struct ctl_cmd *cmds, size_t ncmds, const struct ctl_flag *flags, size_t nflags);
/* A command's help; prefix is "etcdctl" or "etcdctl member". */
int ctl_help_cmd(struct buf *b, const char *prefix, const struct ctl_cmd *cmd);
/* A group's help (`etcdctl member --help`). */
int ctl_help_group(struct buf *b, const char *prefix, const struct ctl_cmd *grp);
/* The help of a group run as an application (`etcdctl member help`). */
int ctl_help_group_app(struct buf *b, const char *prefix, const struct ctl_cmd *grp,
	const char *version);

/* Appends s quoted as Go's strconv.Quote / %q does. */
int ctl_quote(struct buf *b, const char *s, size_t len);

/* ------------------------------------------------------------------ */
/* URLs and requests (Go's net/url as the v2 client uses it)           */
/* ------------------------------------------------------------------ */

/*
 * Appends s escaped for a URL path (url.URL.EscapedPath: keeps letters,
 * digits, "-_.~$&+,/:;=@", escapes the rest as %XX, upper-case hex).
 */
int ctl_url_escape_path(struct buf *b, const char *s, size_t len);
/* Appends s as url.QueryEscape does (space as '+'). */
int ctl_url_escape_query(struct buf *b, const char *s, size_t len);
/*
 * Appends pathutil.CanonicalURLPath(p): a leading '/', path.Clean, and the
 * trailing slash kept when p had one.
 */
int ctl_url_canonical_path(struct buf *b, const char *p, size_t len);
/* Appends path.Join(a, b) (cleaned; "" parts skipped). */
int ctl_url_join_path(struct buf *out, const char *a, const char *b);

/*
 * Query or form parameters, encoded as url.Values.Encode: sorted by name,
 * "name=value" joined by '&'. Names are static strings.
 */
#define CTL_PARAMS_MAX 8
struct ctl_params {
	struct {
		const char *name;
		const char *value;
		size_t len;
	} p[CTL_PARAMS_MAX];
	size_t n;
};
/* Sets (or replaces) a parameter; the value is borrowed, not copied. */
void ctl_params_set(struct ctl_params *ps, const char *name, const char *value);
void ctl_params_setn(struct ctl_params *ps, const char *name, const char *value, size_t len);
int ctl_params_encode(struct buf *b, const struct ctl_params *ps);

/*
 * An endpoint as the client keeps it: Go's url.URL.String() of what the
 * user gave (scheme added when missing). scheme_host is "http://host:port"
 * without the path; path is the endpoint's own path ("" usually).
 */
struct ctl_endpoint {
	char *str;          /* full string, owned */
	char *scheme_host;  /* owned */
	char *path;         /* owned, "" when none */
};

/*
 * Parses one endpoint as etcdctl does (url.Parse, then "http" if no scheme).
 * Returns 0, or -ERR_PARSE with Go's message in errmsg (e.g. `parse
 * "127.0.0.1:2379": first path segment in URL cannot contain colon`).
 */
int ctl_endpoint_parse(const char *s, struct ctl_endpoint *ep, char *errmsg, size_t errlen);
void ctl_endpoint_free(struct ctl_endpoint *ep);

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

enum ctl_err_kind {
	CTL_E_NONE = 0,
	CTL_E_MSG,      /* a plain error: msg */
	CTL_E_ETCD,     /* the keys API's error body: code, message, cause, index */
	CTL_E_CLUSTER,  /* client.ClusterError: one message per endpoint tried */
};

#define CTL_CLUSTER_ERRS_MAX 16
#define CTL_ERR_TEXT_BYTES 512

struct ctl_err {
	enum ctl_err_kind kind;
	bool conn;                 /* CTL_E_MSG: a connection error (dial, timeout) */
	char msg[CTL_ERR_TEXT_BYTES];
	/* CTL_E_ETCD */
	int64_t code;
	char *message;             /* owned */
	char *cause;               /* owned */
	uint64_t index;
	/* CTL_E_CLUSTER */
	size_t n;
	char cmsg[CTL_CLUSTER_ERRS_MAX][CTL_ERR_TEXT_BYTES];
	bool cconn[CTL_CLUSTER_ERRS_MAX];
};

void ctl_err_free(struct ctl_err *e);
void ctl_err_msg(struct ctl_err *e, bool conn, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Appends Go's err.Error() text. */
int ctl_err_text(struct buf *b, const struct ctl_err *e);
/*
 * Appends what handleError prints on stderr: "Error:  <text>\n", and for a
 * cluster error its detail ("error #0: ...\n" per endpoint) and "\n".
 */
int ctl_err_handle_text(struct buf *b, const struct ctl_err *e);
/* isConnectionError: every endpoint failed to connect or timed out. */
bool ctl_err_is_conn(const struct ctl_err *e);
/*
 * Decodes a keys-API error body the way json.Unmarshal into client.Error
 * does (keys matched case-insensitively); -ERR_PARSE if it is not JSON of
 * that shape (the caller reports ErrInvalidJSON).
 */
int ctl_err_from_body(struct ctl_err *e, const char *body, size_t len);

/*
 * The message Go's encoding/json gives for a body that is not JSON, for the
 * common cases ("invalid character 'p' after top-level value", "unexpected
 * end of JSON input").
 */
void ctl_go_json_error(const char *body, size_t len, char *out, size_t cap);

/* Sets *e (not a connection error) to ctl_go_json_error's text for body. */
void ctl_err_go_json(struct ctl_err *e, const char *body, size_t len);

/* The text of client.ErrInvalidJSON. */
#define CTL_ERR_INVALID_JSON "client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint"

/* ------------------------------------------------------------------ */
/* Keys API responses and output                                       */
/* ------------------------------------------------------------------ */

/* client.Node. Strings are owned by the response's document. */
struct ctl_node {
	const char *key;
	size_t key_len;
	bool dir;
	const char *value;
	size_t value_len;
	struct ctl_node *nodes;  /* nnodes children */
	size_t nnodes;
	bool nodes_null;         /* "nodes" absent or null: JSON null on output */
	uint64_t created;
	uint64_t modified;
	char *expiration;        /* RFC 3339 as Go re-marshals it, or NULL */
	int64_t ttl;
};

/* client.Response. */
struct ctl_resp {
	char action[32];
	struct ctl_node *node;      /* NULL if absent */
	struct ctl_node *prev;      /* NULL if absent */
	uint64_t index;             /* X-Etcd-Index */
	/* private */
	void *doc_;
	void *arena_;
	size_t arena_n_, arena_cap_;
};

/* Response bodies larger than this are refused. */
#define CTL_BODY_BYTES_MAX ((size_t)256 << 20)
/*
 * Limits for every JSON body etcdctl decodes: a whole recursive listing
 * must fit (Go's decoder allows nesting up to 10000 levels; each directory
 * level of a listing is two).
 */
#define CTL_JSON_DEPTH_MAX 10000u
#define CTL_JSON_NODES_MAX ((size_t)1 << 26)
struct json_limits;
extern const struct json_limits ctl_json_limits;

/*
 * Decodes a successful keys response. index_hdr is the X-Etcd-Index header
 * (NULL if absent). Returns 0, -ERR_PARSE (not a response: the caller
 * reports ErrInvalidJSON), -ERR_RANGE (a bad X-Etcd-Index: errmsg has Go's
 * strconv message), -ERR_NOMEM, -ERR_LIMIT.
 */
int ctl_resp_parse(struct ctl_resp *r, const char *body, size_t len, const char *index_hdr,
	char *errmsg, size_t errlen);
void ctl_resp_free(struct ctl_resp *r);

enum ctl_format {
	CTL_FMT_SIMPLE,
	CTL_FMT_EXTENDED,
	CTL_FMT_JSON,
	CTL_FMT_OTHER,
};
enum ctl_format ctl_format_parse(const char *s);

/*
 * printResponseKey: the value (simple), the rfc2822-style block (extended)
 * or the re-marshalled response (json) on out; for an unknown format
 * "Unsupported output format: X\n" on err.
 */
int ctl_print_response(struct buf *out, struct buf *err, const struct ctl_resp *r,
	enum ctl_format f, const char *fmtname);
/* ls: key names (recursively, "/" after directories with slash) or, for
 * extended/json, the response as printResponseKey. */
int ctl_print_ls(struct buf *out, struct buf *err, const struct ctl_resp *r,
	enum ctl_format f, const char *fmtname, bool slash);
/* json.Marshal(resp) of client.Response. */
int ctl_resp_json(struct buf *b, const struct ctl_resp *r);

/* ------------------------------------------------------------------ */
/* Members API                                                         */
/* ------------------------------------------------------------------ */

struct ctl_member {
	char *id;
	char *name;
	char **peer_urls;
	size_t npeer;
	char **client_urls;
	size_t nclient;
};

struct ctl_members {
	struct ctl_member *m;
	size_t n;
};

/* Decodes {"members":[...]} (keys case-insensitive, as Go). 0 or -ERR_PARSE/-ERR_NOMEM. */
int ctl_members_parse(struct ctl_members *ms, const char *body, size_t len);
/* Decodes one member object (POST answer, /v2/members/leader). */
int ctl_member_parse_one(struct ctl_member *m, const char *body, size_t len);
void ctl_member_free(struct ctl_member *m);
void ctl_members_free(struct ctl_members *ms);

/*
 * types.NewURLs for member add/update: each URL trimmed, scheme http,
 * https, unix or unixs, host:port, no path; the result sorted. Appends the
 * JSON body {"peerURLs":[...]} to body. Returns 0 or -ERR_PARSE with Go's
 * message in errmsg.
 */
int ctl_peer_urls_body(struct buf *body, char **urls, size_t n, char *errmsg, size_t errlen);

/* ------------------------------------------------------------------ */
/* The client (client/v2's httpClusterClient)                          */
/* ------------------------------------------------------------------ */

/* Endpoints kept at most (a peer's member list can name no more). */
#define CTL_ENDPOINTS_MAX 64
/* Redirects followed per request (client.DefaultCheckRedirect). */
#define CTL_REDIRECTS_MAX 10

struct ctl_client {
	struct ctl_endpoint eps[CTL_ENDPOINTS_MAX];
	size_t neps;
	size_t pinned;
	struct http_sync *sync;     /* keep-alive pool shared by every request */
	int64_t header_timeout_ns;  /* --timeout; 0 = none */
	bool debug;                 /* print cURL commands on stderr */
	char *auth_header;          /* "Basic ..." or NULL; owned */
	uint64_t rand_state;
	struct buf *err_out;        /* where debug lines go (the applet's stderr) */
};

/* One request as client.httpAction builds it. */
struct ctl_request {
	const char *method;
	/* Path (already escaped) and query relative to the endpoint; the
	 * endpoint's own path is prepended by the builder callback. */
	int (*build_url)(struct buf *url, const struct ctl_endpoint *ep, void *arg);
	void *arg;
	const char *content_type;   /* NULL: none */
	const char *body;           /* NULL: no body */
	size_t body_len;
	bool one_shot;              /* no fail-over (create, delete) */
	bool wait;                  /* a watch: no header timeout */
};

struct ctl_result {
	int status;
	char *body;
	size_t body_len;
	char *index_hdr;            /* X-Etcd-Index, or NULL */
	char *location;             /* Location, or NULL */
};

void ctl_result_free(struct ctl_result *r);

/*
 * Sets *e from an error response of the auth and members APIs, whose body
 * is {"message": ...} (key matched case-insensitively): the message, "" if
 * there is none, or Go's JSON error when the body is not JSON.
 */
void ctl_err_from_message(struct ctl_err *e, const struct ctl_result *res);

/*
 * Sets the endpoints (shuffled, as client.SetEndpoints does) from strings
 * already normalised. Returns 0, -ERR_INVAL (none: client.ErrNoEndpoints),
 * -ERR_PARSE with errmsg, -ERR_LIMIT, -ERR_NOMEM.
 */
int ctl_client_set_endpoints(struct ctl_client *cl, char **eps, size_t n, char *errmsg, size_t errlen);
/* Joins the endpoint strings with sep (Endpoints()). */
int ctl_client_endpoints_str(struct buf *b, const struct ctl_client *cl, const char *sep);
void ctl_client_free(struct ctl_client *cl);

/*
 * httpClusterClient.Do: tries the endpoints from the pinned one, moving on
 * after a transport error or a 5xx, pins the one that answered.
 * deadline_ms is the total-timeout deadline (time_mono_ms based; 0 = none).
 * Returns 0 with *res filled, or -1 with *e set (a cluster error, or for a
 * one-shot request the first error, or "context deadline exceeded").
 */
int ctl_client_do(struct ctl_client *cl, const struct ctl_request *rq, uint64_t deadline_ms,
	struct ctl_result *res, struct ctl_err *e);

/* ------------------------------------------------------------------ */
/* DNS SRV discovery                                                   */
/* ------------------------------------------------------------------ */

/* Longest DNS name handled. */
#define CTL_DNS_NAME_BYTES_MAX 256
/* SRV records used per lookup. */
#define CTL_SRV_RECORDS_MAX 32

/*
 * Builds a DNS query for name (type SRV, class IN, recursion desired) with
 * the given id into q (at least 512 bytes). Returns the length or -ERR_INVAL.
 */
int ctl_dns_build_query(unsigned char *q, size_t cap, uint16_t id, const char *name);
/*
 * Parses an answer to that query: appends "host:port" (target without the
 * trailing dot) for each SRV record, in answer order, to hosts (at most
 * max). Returns the count, or -ERR_PARSE, -ERR_NOTFOUND (NXDOMAIN or no
 * records).
 */
int ctl_dns_parse_srv(const unsigned char *a, size_t len, uint16_t id, char hosts[][CTL_DNS_NAME_BYTES_MAX + 8],
	size_t max);
/*
 * client.NewSRVDiscover().Discover: looks up _etcd-client._tcp.<domain>
 * (http://) and _etcd-client-ssl._tcp.<domain> (https://) with the first
 * nameserver of /etc/resolv.conf over UDP. Appends endpoint strings to eps
 * (owned: mem_free each). Returns the count or -1 with e set (Go's wording).
 */
int ctl_srv_discover(const char *domain, const char *service, char **eps, size_t max,
	struct ctl_err *e);

/* ------------------------------------------------------------------ */
/* The applet's state                                                  */
/* ------------------------------------------------------------------ */

/* Global option indexes into ctl_global_flags. */
enum {
	CTL_G_DEBUG,
	CTL_G_NO_SYNC,
	CTL_G_OUTPUT,
	CTL_G_DISCOVERY_SRV,
	CTL_G_INSECURE_DISCOVERY,
	CTL_G_PEERS,
	CTL_G_ENDPOINT,
	CTL_G_ENDPOINTS,
	CTL_G_CERT_FILE,
	CTL_G_KEY_FILE,
	CTL_G_CA_FILE,
	CTL_G_USERNAME,
	CTL_G_TIMEOUT,
	CTL_G_TOTAL_TIMEOUT,
	CTL_G_HELP,
	CTL_G_VERSION,
	CTL_G_COUNT,
};

extern const struct ctl_flag ctl_global_flags[CTL_G_COUNT];

struct ctl {
	struct ctl_val g[CTL_G_COUNT];
	const char *output;        /* -o value ("simple" by default) */
	enum ctl_format fmt;
	int64_t timeout_ns;
	int64_t total_timeout_ns;
	struct buf out;            /* stdout, flushed by ctl_flush */
	struct buf err;            /* stderr */
	struct ctl_client client;
	bool client_ready;
	const char *prefix;        /* "etcdctl" or "etcdctl member" for help */
};

/* Writes out and err to fds 1 and 2 (stdout first). */
void ctl_flush(struct ctl *c);

/*
 * mustNewClient / mustNewClientNoSync: builds the client from the global
 * flags and the environment, and (sync) refreshes the endpoints from the
 * member list. Returns 0, or the exit code to stop with (messages already
 * in c->err).
 */
int ctl_client_setup(struct ctl *c, bool sync);
/* The total-timeout deadline for one API call (contextWithTotalTimeout). */
uint64_t ctl_deadline(const struct ctl *c);
/* handleError: prints the error and returns the exit code. */
int ctl_handle_error(struct ctl *c, int code, const struct ctl_err *e);
/* Reads a password as speakeasy.Ask does: prompt on stdout, echo off on a tty. */
int ctl_ask_password(struct ctl *c, const char *prompt, char **out);

/* qsort comparator for arrays of char *. */
int ctl_strcmp_ptr(const void *a, const void *b);
/* The GET /v2/members request (members.c). */
void ctl_members_request(struct ctl_request *rq);

/* Command actions, one file per family. */
extern const struct ctl_cmd ctl_member_cmd;
extern const struct ctl_cmd ctl_user_cmd;
extern const struct ctl_cmd ctl_role_cmd;
extern const struct ctl_cmd ctl_auth_cmd;
int ctl_cmd_cluster_health(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals,
	int argc, char **argv);
int ctl_cmd_backup(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals,
	int argc, char **argv);

/* Keys commands (keys.c). */
int ctl_cmd_get(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);
int ctl_cmd_set(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);
int ctl_cmd_mk(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);
int ctl_cmd_mkdir(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);
int ctl_cmd_setdir(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);
int ctl_cmd_update(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);
int ctl_cmd_updatedir(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);
int ctl_cmd_rm(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);
int ctl_cmd_rmdir(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);
int ctl_cmd_ls(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);
int ctl_cmd_watch(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);
int ctl_cmd_exec_watch(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv);

/* exec-watch helpers (pure): environment for the child and key/command split. */
/*
 * Splits exec-watch's arguments as etcdctl does: with a "--" after the
 * first argument the key is argv[0] and the command follows the "--";
 * without one the key is the LAST argument and the command the rest.
 */
void ctl_exec_watch_split(int argc, char **argv, const char **key, int *cmd_off, int *cmd_n);
/*
 * Builds the child's environment: envp with ETCD_WATCH_ACTION, _MODIFIED_INDEX,
 * _KEY, _VALUE replaced or added (Go's exec dedups, the later value wins).
 * Returns a NULL-terminated array (owned, free with ctl_env_free) or NULL.
 */
char **ctl_exec_watch_env(char **envp, const char *action, uint64_t modified, const char *key,
	size_t key_len, const char *value, size_t value_len);
void ctl_env_free(char **env);

#endif
