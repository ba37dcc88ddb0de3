/*
 * server: the `etcd` applet's main and the single-member server around the
 * pure v2 store: flags (etcd 2.3's, with ETCD_* fallback), the data
 * directory (snapshot + WAL recovery, bootstrap of a new member), the client
 * and peer listeners, the write pipeline (propose -> WAL append -> one
 * fdatasync per loop turn -> apply in log order -> answer), TTL expiry
 * through the log, snapshots and purging, metrics, and graceful shutdown.
 *
 * It must never answer a write before its entry is durable, never apply
 * entries out of log order, never decide an expiry from a reader's clock,
 * and never serve from a data dir it could not read completely: recovery
 * errors other than a torn WAL tail stop the process with exit status 1.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corebox/applets.h"
#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/flags.h"
#include "corebox/http.h"
#include "corebox/json.h"
#include "corebox/log.h"
#include "corebox/loop.h"
#include "corebox/mem.h"
#include "corebox/snapfile.h"
#include "corebox/store.h"
#include "corebox/tree.h"
#include "corebox/wal.h"
#include "corebox/watch.h"

extern char **environ;

/* Slots in the per-connection table of queued requests (collisions only
 * make a read wait needlessly, never answer it early). */
#define CONN_SLOTS 4096u
/* How long a graceful stop may spend flushing answers after the last
 * entry is applied. */
#define SHUTDOWN_FLUSH_MS 300
/* Queued (proposed, not yet applied) entries beyond which writes get a
 * 500 "server busy" instead of growing memory without bound. */
#define PENDING_ENTRIES_MAX 262144u
/* WAL segment size. etcd preallocates 64 MiB, but recovery reads whole
 * segments from the one holding the snapshot on, and --max-wals counts
 * segments: small ones start faster and keep less disk; a record larger
 * than this simply gets a segment of its own. */
#define SERVER_WAL_SEGMENT_BYTES (512u * 1024)
/* Request bodies read (see the limits set in etcd_main). */
#define SERVER_BODY_BYTES_MAX (12u * 1024 * 1024)
/* Longest URL list a flag may hold. */
#define URLS_MAX 64u

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

struct etcd_config {
	const char *name;
	const char *data_dir;
	const char *wal_dir;
	const char *listen_peer_urls;
	const char *listen_client_urls;
	uint64_t max_snapshots;
	uint64_t max_wals;
	uint64_t snapshot_count;
	uint64_t heartbeat_interval;
	uint64_t election_timeout;
	const char *cors;
	const char *initial_advertise_peer_urls;
	const char *advertise_client_urls;
	const char *discovery;
	const char *discovery_fallback;
	const char *discovery_proxy;
	const char *discovery_srv;
	const char *initial_cluster;
	const char *initial_cluster_token;
	const char *initial_cluster_state;
	int strict_reconfig_check;
	const char *proxy;
	uint64_t proxy_failure_wait;
	uint64_t proxy_refresh_interval;
	uint64_t proxy_dial_timeout;
	uint64_t proxy_write_timeout;
	uint64_t proxy_read_timeout;
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
	int client_cert_auth;
	const char *trusted_ca_file;
	const char *peer_ca_file;
	const char *peer_cert_file;
	const char *peer_key_file;
	int peer_client_cert_auth;
	const char *peer_trusted_ca_file;
	int debug;
	const char *log_package_levels;
	int force_new_cluster;
	int version;
	int v3demo;
	const char *grpc_addr;
	int64_t auto_compaction_retention;
	const char *addr;
	const char *bind_addr;
	const char *peer_addr;
	const char *peer_bind_addr;
	const char *peers;
	const char *peers_file;
	int enable_pprof;
	int enable_v2;
	const char *log_level;
	const char *logger;
	const char *log_outputs;
	const char *wal_sync;
	uint64_t wal_segment_bytes;
	int snapshot_fork;
	int ignored[13];
};

static const char *const ignored_flags[13] = {
	"cluster-active-size", "cluster-remove-delay", "cluster-sync-interval", "config", "force",
	"max-result-buffer", "max-retry-attempts", "peer-heartbeat-interval", "peer-election-timeout",
	"retry-interval", "snapshot", "v", "vv",
};

/* A parsed URL list (etcd's types.URLs): validated, sorted, owned. */
struct url_list {
	char **v;
	size_t n;
};

static void
url_list_free(struct url_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		mem_free(l->v[i]);
	mem_free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks one URL as etcd 2.3's types.NewURLs does; writes the reason. */
static int
url_check(const char *u, size_t len, char *msg, size_t msgsz)
{
	const char *sep = NULL, *host, *end, *colon;

	for (size_t i = 0; i + 2 < len; i++)
		if (u[i] == ':' && u[i + 1] == '/' && u[i + 2] == '/') {
			sep = u + i;
			break;
		}
	if (sep == NULL || !((sep - u == 4 && strncasecmp(u, "http", 4) == 0) ||
	    (sep - u == 5 && strncasecmp(u, "https", 5) == 0))) {
		snprintf(msg, msgsz, "URL scheme must be http or https: %.*s", (int)len, u);
		return -ERR_PARSE;
	}
	host = sep + 3;
	end = host;
	while (end < u + len && *end != '/' && *end != '?' && *end != '#')
		end++;
	if (memchr(host, '@', (size_t)(end - host)) != NULL)
		host = (const char *)memchr(host, '@', (size_t)(end - host)) + 1;
	if (end < u + len && *end == '/' ) {
		const char *pe = end;

		while (pe < u + len && *pe != '?' && *pe != '#')
			pe++;
		if (pe > end) {
			snprintf(msg, msgsz, "URL must not contain a path: %.*s", (int)len, u);
			return -ERR_PARSE;
		}
	}
	if (host < end && *host == '[') {
		const char *rb = memchr(host, ']', (size_t)(end - host));

		colon = rb != NULL && rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = NULL;
		for (const char *c = host; c < end; c++)
			if (*c == ':') {
				if (colon != NULL) {
					colon = NULL; /* "too many colons" */
					break;
				}
				colon = c;
			}
	}
	if (colon == NULL) {
		snprintf(msg, msgsz, "URL address does not have the form \"host:port\": %.*s", (int)len, u);
		return -ERR_PARSE;
	}
	return 0;
}

/*
 * etcd's types.NewURLs on a comma-separated string: every element (spaces
 * trimmed, empty ones included, as Go's strings.Split gives them) must be a
 * valid URL; the result is sorted. msg gets Go's reason on failure.
 */
static int
url_list_parse(const char *s, struct url_list *out, char *msg, size_t msgsz)
{
	const char *p = s;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *e = comma ? comma : p + strlen(p);
		const char *b = p;
		char **nv;

		while (b < e && (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
			e--;
		if ((rc = url_check(b, (size_t)(e - b), msg, msgsz)) != 0)
			break;
		if (out->n >= URLS_MAX) {
			snprintf(msg, msgsz, "too many URLs (at most %u)", URLS_MAX);
			rc = -ERR_LIMIT;
			break;
		}
		nv = mem_realloc(out->v, (out->n + 1) * sizeof(*nv));
		if (nv == NULL) {
			rc = -ERR_NOMEM;
			snprintf(msg, msgsz, "out of memory");
			break;
		}
		out->v = nv;
		out->v[out->n] = mem_strndup(b, (size_t)(e - b));
		if (out->v[out->n] == NULL) {
			rc = -ERR_NOMEM;
			snprintf(msg, msgsz, "out of memory");
			break;
		}
		/* Go lower-cases the scheme. */
		for (char *c = out->v[out->n]; *c != ':'; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		out->n++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (rc != 0) {
		url_list_free(out);
		return rc;
	}
	qsort(out->v, out->n, sizeof(*out->v), cmp_strp);
	return 0;
}

static int
check_urls(const char *value, void *dst, char *msg, size_t msgsz)
{
	struct url_list l;
	int rc = url_list_parse(value, &l, msg, msgsz);

	(void)dst;
	url_list_free(&l);
	return rc;
}

static int
check_one_of(const char *value, const char *const *words, char *msg, size_t msgsz)
{
	for (size_t i = 0; words[i] != NULL; i++)
		if (strcmp(value, words[i]) == 0)
			return 0;
	snprintf(msg, msgsz, "invalid value");
	return -ERR_PARSE;
}

static int
check_cluster_state(const char *value, void *dst, char *msg, size_t msgsz)
{
	static const char *const w[] = { "new", "existing", NULL };

	(void)dst;
	return check_one_of(value, w, msg, msgsz);
}

static int
check_fallback(const char *value, void *dst, char *msg, size_t msgsz)
{
	static const char *const w[] = { "exit", "proxy", NULL };

	(void)dst;
	return check_one_of(value, w, msg, msgsz);
}

static int
check_proxy(const char *value, void *dst, char *msg, size_t msgsz)
{
	static const char *const w[] = { "off", "readonly", "on", NULL };

	(void)dst;
	return check_one_of(value, w, msg, msgsz);
}

static int
check_wal_sync(const char *value, void *dst, char *msg, size_t msgsz)
{
	static const char *const w[] = { "thread", "inline", NULL };

	(void)dst;
	return check_one_of(value, w, msg, msgsz);
}

/* etcd's IPAddressPort.Set: "ip:port" with a literal IP. */
static int
check_ip_port(const char *value, void *dst, char *msg, size_t msgsz)
{
	const char *colon;
	char host[64];
	size_t hl;
	unsigned char tmp[16];

	(void)dst;
	if (*value == '\0')
		return 0; /* the default */
	colon = strrchr(value, ':');
	if (colon == NULL) {
		snprintf(msg, msgsz, "address %s: missing port in address", value);
		return -ERR_PARSE;
	}
	hl = (size_t)(colon - value);
	if (hl >= 2 && value[0] == '[' && value[hl - 1] == ']') {
		value++;
		hl -= 2;
	}
	if (hl >= sizeof(host)) {
		snprintf(msg, msgsz, "bad IP address");
		return -ERR_PARSE;
	}
	memcpy(host, value, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, tmp) != 1 && inet_pton(AF_INET6, host, tmp) != 1) {
		snprintf(msg, msgsz, "bad IP address");
		return -ERR_PARSE;
	}
	for (const char *c = colon + 1; *c; c++)
		if (*c < '0' || *c > '9' || c - colon > 6) {
			snprintf(msg, msgsz, "strconv.Atoi: parsing \"%s\": invalid syntax", colon + 1);
			return -ERR_PARSE;
		}
	return 0;
}

/* etcd's DeprecatedFlag: any use is an error. */
static int
check_no_longer(const char *value, void *dst, char *msg, size_t msgsz)
{
	(void)dst;
	if (*value == '\0')
		return 0; /* the default */
	snprintf(msg, msgsz, "flag is no longer supported.");
	return -ERR_UNSUPPORTED;
}

static int
check_cors(const char *value, void *dst, char *msg, size_t msgsz)
{
	(void)dst;
	for (const char *c = value; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t') {
			snprintf(msg, msgsz, "Invalid CORS origin: invalid control character in URL");
			return -ERR_PARSE;
		}
	return 0;
}

#define F(nm, ty, fld, dflt, hlp) \
	{ .name = (nm), .type = (ty), .offset = offsetof(struct etcd_config, fld), .def = (dflt), .help = (hlp) }
#define FC(nm, ty, fld, dflt, hlp, chk) \
	{ .name = (nm), .type = (ty), .offset = offsetof(struct etcd_config, fld), .def = (dflt), .help = (hlp), \
	  .check = (chk) }
#define FH(nm, ty, fld, dflt, chk) \
	{ .name = (nm), .type = (ty), .offset = offsetof(struct etcd_config, fld), .def = (dflt), .help = "", \
	  .check = (chk), .flags = FLAGS_F_HIDDEN }
#define FI(i, nm) \
	{ .name = (nm), .type = FLAGS_BOOL, .offset = offsetof(struct etcd_config, ignored) + (i) * sizeof(int), \
	  .help = "", .flags = FLAGS_F_HIDDEN }

static const struct flags_spec etcd_specs[] = {
	/* member */
	FC("cors", FLAGS_STRING, cors, "", "Comma-separated white list of origins for CORS.", check_cors),
	F("data-dir", FLAGS_STRING, data_dir, "", "Path to the data directory."),
	F("wal-dir", FLAGS_STRING, wal_dir, "", "Path to the dedicated wal directory."),
	FC("listen-peer-urls", FLAGS_STRING, listen_peer_urls, "http://localhost:2380,http://localhost:7001",
		"List of URLs to listen on for peer traffic.", check_urls),
	FC("listen-client-urls", FLAGS_STRING, listen_client_urls, "http://localhost:2379,http://localhost:4001",
		"List of URLs to listen on for client traffic.", check_urls),
	F("max-snapshots", FLAGS_UINT, max_snapshots, "5", "Maximum number of snapshot files to retain (0 is unlimited)."),
	F("max-wals", FLAGS_UINT, max_wals, "5", "Maximum number of wal files to retain (0 is unlimited)."),
	F("name", FLAGS_STRING, name, "default", "Human-readable name for this member."),
	F("snapshot-count", FLAGS_UINT, snapshot_count, "10000", "Number of committed transactions to trigger a snapshot to disk."),
	F("heartbeat-interval", FLAGS_UINT, heartbeat_interval, "100", "Time (in milliseconds) of a heartbeat interval."),
	F("election-timeout", FLAGS_UINT, election_timeout, "1000", "Time (in milliseconds) for an election to timeout."),
	/* clustering */
	FC("initial-advertise-peer-urls", FLAGS_STRING, initial_advertise_peer_urls,
		"http://localhost:2380,http://localhost:7001",
		"List of this member's peer URLs to advertise to the rest of the cluster.", check_urls),
	FC("advertise-client-urls", FLAGS_STRING, advertise_client_urls, "http://localhost:2379,http://localhost:4001",
		"List of this member's client URLs to advertise to the public.", check_urls),
	F("discovery", FLAGS_STRING, discovery, "", "Discovery URL used to bootstrap the cluster."),
	FC("discovery-fallback", FLAGS_STRING, discovery_fallback, "proxy", "Valid values include exit, proxy",
		check_fallback),
	F("discovery-proxy", FLAGS_STRING, discovery_proxy, "", "HTTP proxy to use for traffic to discovery service."),
	F("discovery-srv", FLAGS_STRING, discovery_srv, "", "DNS domain used to bootstrap initial cluster."),
	F("initial-cluster", FLAGS_STRING, initial_cluster, "default=http://localhost:2380,default=http://localhost:7001",
		"Initial cluster configuration for bootstrapping."),
	F("initial-cluster-token", FLAGS_STRING, initial_cluster_token, "etcd-cluster",
		"Initial cluster token for the etcd cluster during bootstrap."),
	FC("initial-cluster-state", FLAGS_STRING, initial_cluster_state, "new",
		"Initial cluster state ('new' or 'existing').", check_cluster_state),
	F("strict-reconfig-check", FLAGS_BOOL, strict_reconfig_check, "false",
		"Reject reconfiguration requests that would cause quorum loss."),
	/* proxy */
	FC("proxy", FLAGS_STRING, proxy, "off", "Valid values include off, readonly, on", check_proxy),
	F("proxy-failure-wait", FLAGS_UINT, proxy_failure_wait, "5000",
		"Time (in milliseconds) an endpoint will be held in a failed state."),
	F("proxy-refresh-interval", FLAGS_UINT, proxy_refresh_interval, "30000",
		"Time (in milliseconds) of the endpoints refresh interval."),
	F("proxy-dial-timeout", FLAGS_UINT, proxy_dial_timeout, "1000", "Time (in milliseconds) for a dial to timeout."),
	F("proxy-write-timeout", FLAGS_UINT, proxy_write_timeout, "5000", "Time (in milliseconds) for a write to timeout."),
	F("proxy-read-timeout", FLAGS_UINT, proxy_read_timeout, "0", "Time (in milliseconds) for a read to timeout."),
	/* security */
	F("ca-file", FLAGS_STRING, ca_file, "", "DEPRECATED: Path to the client server TLS CA file."),
	F("cert-file", FLAGS_STRING, cert_file, "", "Path to the client server TLS cert file."),
	F("key-file", FLAGS_STRING, key_file, "", "Path to the client server TLS key file."),
	F("client-cert-auth", FLAGS_BOOL, client_cert_auth, "false", "Enable client cert authentication."),
	F("trusted-ca-file", FLAGS_STRING, trusted_ca_file, "", "Path to the client server TLS trusted CA key file."),
	F("peer-ca-file", FLAGS_STRING, peer_ca_file, "", "DEPRECATED: Path to the peer server TLS CA file."),
	F("peer-cert-file", FLAGS_STRING, peer_cert_file, "", "Path to the peer server TLS cert file."),
	F("peer-key-file", FLAGS_STRING, peer_key_file, "", "Path to the peer server TLS key file."),
	F("peer-client-cert-auth", FLAGS_BOOL, peer_client_cert_auth, "false", "Enable peer client cert authentication."),
	F("peer-trusted-ca-file", FLAGS_STRING, peer_trusted_ca_file, "", "Path to the peer server TLS trusted CA file."),
	/* logging */
	F("debug", FLAGS_BOOL, debug, "false", "Enable debug-level logging for etcd."),
	F("log-package-levels", FLAGS_STRING, log_package_levels, "",
		"Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG')."),
	/* unsafe */
	F("force-new-cluster", FLAGS_BOOL, force_new_cluster, "false", "Force to create a new one member cluster."),
	/* version */
	F("version", FLAGS_BOOL, version, "false", "Print the version and exit."),
	/* experimental */
	F("experimental-v3demo", FLAGS_BOOL, v3demo, "false", "Enable experimental v3 demo API."),
	F("experimental-gRPC-addr", FLAGS_STRING, grpc_addr, "127.0.0.1:2378",
		"gRPC address for experimental v3 demo API."),
	F("experimental-auto-compaction-retention", FLAGS_INT, auto_compaction_retention, "0",
		"Auto compaction retention in hour. 0 means disable auto compaction."),
	/* etcd 0.4 compatibility */
	FC("addr", FLAGS_STRING, addr, "", "DEPRECATED: Use -advertise-client-urls instead.", check_ip_port),
	FC("bind-addr", FLAGS_STRING, bind_addr, "", "DEPRECATED: Use -listen-client-urls instead.", check_ip_port),
	FC("peer-addr", FLAGS_STRING, peer_addr, "", "DEPRECATED: Use -initial-advertise-peer-urls instead.", check_ip_port),
	FC("peer-bind-addr", FLAGS_STRING, peer_bind_addr, "", "DEPRECATED: Use -listen-peer-urls instead.", check_ip_port),
	FC("peers", FLAGS_STRING, peers, "", "DEPRECATED: Use -initial-cluster instead.", check_no_longer),
	FC("peers-file", FLAGS_STRING, peers_file, "", "DEPRECATED: Use -initial-cluster instead.", check_no_longer),
	F("enable-pprof", FLAGS_BOOL, enable_pprof, "false",
		"Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof\""),
	/* etcd 3.4 flags that scripts written for it pass */
	F("enable-v2", FLAGS_BOOL, enable_v2, "true", "Accept etcd V2 client requests (always on)."),
	F("log-level", FLAGS_STRING, log_level, "", "Log level: debug, info, warn, error."),
	F("logger", FLAGS_STRING, logger, "", "Accepted for etcd 3.4 compatibility; ignored."),
	F("log-outputs", FLAGS_STRING, log_outputs, "", "Accepted for etcd 3.4 compatibility; ignored."),
	/* corebox tuning, hidden */
	FH("corebox-wal-sync", FLAGS_STRING, wal_sync, "inline", check_wal_sync),
	FH("corebox-wal-segment-bytes", FLAGS_UINT, wal_segment_bytes, "0", NULL),
	FH("corebox-snapshot-fork", FLAGS_BOOL, snapshot_fork, "true", NULL),
	/* etcd 0.4 flags that 2.x ignores */
	FI(0, "cluster-active-size"), FI(1, "cluster-remove-delay"), FI(2, "cluster-sync-interval"),
	FI(3, "config"), FI(4, "force"), FI(5, "max-result-buffer"), FI(6, "max-retry-attempts"),
	FI(7, "peer-heartbeat-interval"), FI(8, "peer-election-timeout"), FI(9, "retry-interval"),
	FI(10, "snapshot"), FI(11, "v"), FI(12, "vv"),
};

#define ETCD_NSPECS (sizeof(etcd_specs) / sizeof(etcd_specs[0]))

static const char etcd_usage[] =
	"usage: etcd [flags]\n"
	"       start an etcd server\n"
	"\n"
	"       etcd --version\n"
	"       show the version of etcd\n"
	"\n"
	"       etcd -h | --help\n"
	"       show the help information about etcd\n";

/* The flag list printed by --help: etcd's names, defaults and grouping,
 * corebox's own words. */
static const char etcd_help[] =
	"\n"
	"member flags:\n"
	"\n"
	"\t--name 'default'\n"
	"\t\tname of this member, shown to clients and peers.\n"
	"\t--data-dir '${name}.etcd'\n"
	"\t\twhere the WAL and snapshots live.\n"
	"\t--wal-dir ''\n"
	"\t\tseparate directory for the WAL (default: inside --data-dir).\n"
	"\t--snapshot-count '10000'\n"
	"\t\tapplied entries between two snapshots of the store.\n"
	"\t--heartbeat-interval '100'\n"
	"\t\theartbeat period in milliseconds.\n"
	"\t--election-timeout '1000'\n"
	"\t\telection timeout in milliseconds.\n"
	"\t--listen-peer-urls 'http://localhost:2380,http://localhost:7001'\n"
	"\t\tcomma-separated URLs the peer listener binds.\n"
	"\t--listen-client-urls 'http://localhost:2379,http://localhost:4001'\n"
	"\t\tcomma-separated URLs the client listener binds.\n"
	"\t--max-snapshots '5'\n"
	"\t\tsnapshot files kept on disk (0 keeps all).\n"
	"\t--max-wals '5'\n"
	"\t\tWAL segment files kept on disk (0 keeps all).\n"
	"\t--cors ''\n"
	"\t\tcomma-separated origins allowed for cross-origin requests.\n"
	"\n"
	"clustering flags:\n"
	"\n"
	"\t--initial-advertise-peer-urls 'http://localhost:2380,http://localhost:7001'\n"
	"\t\tpeer URLs this member announces.\n"
	"\t--initial-cluster 'default=http://localhost:2380,default=http://localhost:7001'\n"
	"\t\tname=URL pairs of the members a new cluster starts with.\n"
	"\t--initial-cluster-state 'new'\n"
	"\t\t'new' to bootstrap, 'existing' to join.\n"
	"\t--initial-cluster-token 'etcd-cluster'\n"
	"\t\ttoken mixed into the member and cluster IDs.\n"
	"\t--advertise-client-urls 'http://localhost:2379,http://localhost:4001'\n"
	"\t\tclient URLs this member announces; clients must be able to reach them.\n"
	"\t--discovery ''\n"
	"\t\tdiscovery service URL for bootstrapping.\n"
	"\t--discovery-fallback 'proxy'\n"
	"\t\twhat to do when discovery fails: 'exit' or 'proxy'.\n"
	"\t--discovery-proxy ''\n"
	"\t\tHTTP proxy for discovery requests.\n"
	"\t--discovery-srv ''\n"
	"\t\tDNS domain whose SRV records list the cluster.\n"
	"\t--strict-reconfig-check\n"
	"\t\trefuse membership changes that would lose quorum.\n"
	"\n"
	"proxy flags:\n"
	"\n"
	"\t--proxy 'off'\n"
	"\t\t'off', 'readonly' or 'on'.\n"
	"\t--proxy-failure-wait 5000\n"
	"\t\tmilliseconds a failed endpoint stays out of use.\n"
	"\t--proxy-refresh-interval 30000\n"
	"\t\tmilliseconds between endpoint refreshes.\n"
	"\t--proxy-dial-timeout 1000\n"
	"\t\tmilliseconds allowed to connect.\n"
	"\t--proxy-write-timeout 5000\n"
	"\t\tmilliseconds allowed to write.\n"
	"\t--proxy-read-timeout 0\n"
	"\t\tmilliseconds allowed to read (0: no limit).\n"
	"\n"
	"security flags:\n"
	"\n"
	"\t--ca-file '' [DEPRECATED]\n"
	"\t\tclient CA file; same as --trusted-ca-file with --client-cert-auth.\n"
	"\t--cert-file ''\n"
	"\t\tclient listener certificate.\n"
	"\t--key-file ''\n"
	"\t\tclient listener key.\n"
	"\t--client-cert-auth 'false'\n"
	"\t\trequire client certificates.\n"
	"\t--trusted-ca-file ''\n"
	"\t\tCA that signs client certificates.\n"
	"\t--peer-ca-file '' [DEPRECATED]\n"
	"\t\tpeer CA file.\n"
	"\t--peer-cert-file ''\n"
	"\t\tpeer listener certificate.\n"
	"\t--peer-key-file ''\n"
	"\t\tpeer listener key.\n"
	"\t--peer-client-cert-auth 'false'\n"
	"\t\trequire peer certificates.\n"
	"\t--peer-trusted-ca-file ''\n"
	"\t\tCA that signs peer certificates.\n"
	"\n"
	"logging flags\n"
	"\n"
	"\t--debug 'false'\n"
	"\t\tlog debug messages too.\n"
	"\t--log-package-levels ''\n"
	"\t\tper-package levels, e.g. 'etcdmain=CRITICAL,etcdserver=DEBUG' (accepted).\n"
	"\t--log-level ''\n"
	"\t\tdebug, info, warn or error (etcd 3.4's flag).\n"
	"\n"
	"unsafe flags:\n"
	"\n"
	"\t--force-new-cluster 'false'\n"
	"\t\trestart as a one-member cluster, dropping the other members.\n"
	"\n"
	"experimental flags:\n"
	"\n"
	"\t--experimental-v3demo 'false'\n"
	"\t\tthe v3 demo API (not served by corebox).\n"
	"\t--experimental-gRPC-addr '127.0.0.1:2378'\n"
	"\t\taddress of the v3 demo API.\n"
	"\t--experimental-auto-compaction-retention '0'\n"
	"\t\thours of v3 history kept (0: no compaction).\n"
	"\t--enable-v2 'true'\n"
	"\t\taccepted for etcd 3.4 scripts; the v2 API is always on.\n"
	"\n"
	"profiling flags:\n"
	"\t--enable-pprof 'false'\n"
	"\t\tGo profiling endpoints (not served by corebox).\n";

/* ------------------------------------------------------------------ */
/* Server state                                                        */
/* ------------------------------------------------------------------ */

/* One proposed entry waiting to be applied, or a read deferred behind. */
struct pend {
	uint64_t index;           /* 0: a deferred read */
	struct store_hold *hold;  /* NULL: nobody waits */
	void *data;               /* encoded proposal, owned */
	size_t len;
};

struct pend_queue {
	struct pend *v;
	size_t cap;
	size_t head;
	size_t n;
};

static const double http_bounds[] = { 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128,
	0.256, 0.512, 1.024, 2.048 };
static const double fsync_bounds[] = { 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256,
	0.512, 1.024, 2.048, 4.096, 8.192 };

#define N_METHODS 8

struct etcd_server {
	struct etcd_config cfg;
	struct loop *loop;
	struct http_server *client;
	struct http_server *peer;
	struct tree *tree;
	struct watch_hub *hub;
	struct wal *wal;

	/* identity */
	char name[256];
	uint64_t id;
	uint64_t cluster_id;
	char cluster_id_str[17];
	char id_str[17];
	struct url_list lpurls, lcurls, apurls, acurls;
	char **cors;
	size_t ncors;
	bool cors_all;

	/* paths */
	char *data_dir;
	char *member_dir;
	char *wal_dir;
	char *snap_dir;

	/* raft-ish state */
	uint64_t term;
	uint64_t applied;        /* last applied log index (X-Raft-Index) */
	uint64_t snap_index;     /* applied index when the last snapshot was started */
	uint64_t snap_saved_index; /* newest snapshot complete on disk with its marker */
	uint64_t snap_term;
	bool thread_sync;
	uint64_t sync_start_us;
	uint64_t syncs_started;
	uint64_t syncs_done;
	uint64_t release_after_sync; /* syncs_started value the marker batch must exceed */
	bool release_pending;
	bool fork_snapshots;     /* write snapshots from a forked child */
	pid_t snap_child;        /* the snapshot writer running, or 0 */
	uint64_t snap_child_index;
	uint64_t snap_child_term;
	uint64_t snap_child_start_us;

	/* pipeline */
	struct pend_queue q;
	uint32_t conn_pending[CONN_SLOTS];
	struct tree_event *ev_cache;  /* event whose JSON is in ev_cache_buf */
	struct buf ev_cache_buf;

	/* expiry */
	uint64_t expire_timer;
	int64_t expire_when;
	bool expire_inflight;

	/* watches (cancelled at shutdown) */
	struct store_hold *watches;

	/* membership from the store (this single member) */
	struct store_member member;
	char *cluster_version;

	/* stats */
	struct store_self_stats self;
	uint64_t http_received[N_METHODS];
	uint64_t http_status[N_METHODS][500]; /* responses by status 100..599 */
	struct store_histogram http_hist[N_METHODS];
	uint64_t http_hist_counts[N_METHODS][sizeof(http_bounds) / sizeof(http_bounds[0]) + 1];
	struct store_histogram fsync_hist;
	uint64_t fsync_hist_counts[sizeof(fsync_bounds) / sizeof(fsync_bounds[0]) + 1];
	uint64_t proposals_applied;
	uint64_t proposals_failed;
	uint64_t wal_bytes;

	/* flag values built from other flags (the config points into these) */
	char addr_urls[4][300];
	char default_cluster[700];

	/* lifecycle */
	bool stopping;
	bool ready;
	int exit_code;
};

static const char *const method_names[N_METHODS] = { "OTHER", "GET", "HEAD", "POST", "PUT", "DELETE",
	"OPTIONS", "PATCH" };

/* ------------------------------------------------------------------ */
/* Accessors                                                           */
/* ------------------------------------------------------------------ */

struct tree *
store_tree(struct etcd_server *srv)
{
	return srv->tree;
}

struct watch_hub *
store_hub(struct etcd_server *srv)
{
	return srv->hub;
}

uint64_t
store_raft_index(const struct etcd_server *srv)
{
	return srv->applied;
}

uint64_t
store_raft_term(const struct etcd_server *srv)
{
	return srv->term;
}

uint64_t
store_member_self(const struct etcd_server *srv)
{
	return srv->id;
}

uint64_t
store_cluster(const struct etcd_server *srv)
{
	return srv->cluster_id;
}

const char *
store_cluster_id_str(const struct etcd_server *srv)
{
	return srv->cluster_id_str;
}

const char *
store_member_name(const struct etcd_server *srv)
{
	return srv->name;
}

int64_t
store_now_ns(const struct etcd_server *srv)
{
	(void)srv;
	return (int64_t)time_real_ns();
}

const struct store_self_stats *
store_self_stats(struct etcd_server *srv)
{
	return &srv->self;
}

const char *
store_cluster_version(struct etcd_server *srv)
{
	return srv->cluster_version;
}

void
store_cors_headers(struct etcd_server *srv, struct http_req *req)
{
	const char *origin;

	if (srv->ncors == 0)
		return;
	if (srv->cors_all) {
		origin = "*";
	} else {
		origin = http_req_header(req, "Origin");
		if (origin == NULL)
			return;
		size_t i;

		for (i = 0; i < srv->ncors; i++)
			if (strcmp(srv->cors[i], origin) == 0)
				break;
		if (i == srv->ncors)
			return;
	}
	http_resp_header(req, "Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE");
	http_resp_header(req, "Access-Control-Allow-Origin", origin);
	http_resp_header(req, "Access-Control-Allow-Headers", "accept, content-type, authorization");
}

const struct buf *
store_event_json_cached(struct etcd_server *srv, struct tree_event *ev)
{
	/* A heap event renders the same bytes whenever it is rendered (its
	 * ttl is fixed at apply time), so thousands of watchers woken by one
	 * write share one rendering. The cache holds a reference so the
	 * pointer cannot be reused by another event meanwhile. */
	if (ev->refs == 0 || ev != srv->ev_cache) {
		buf_reset(&srv->ev_cache_buf);
		if (srv->ev_cache != NULL)
			tree_event_unref(srv->ev_cache);
		srv->ev_cache = NULL;
		if (tree_event_json(&srv->ev_cache_buf, ev, store_now_ns(srv)) != 0 ||
		    buf_putc(&srv->ev_cache_buf, '\n') != 0) {
			buf_reset(&srv->ev_cache_buf);
			return NULL;
		}
		if (ev->refs > 0)
			srv->ev_cache = tree_event_ref(ev);
	}
	return &srv->ev_cache_buf;
}

/* ------------------------------------------------------------------ */
/* Holds and the per-connection table                                  */
/* ------------------------------------------------------------------ */

static uint32_t
conn_slot(const struct http_req *req)
{
	const unsigned char *p = (const unsigned char *)&req->peer;
	size_t n = req->peer.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	h ^= (uint64_t)(uintptr_t)req->server;
	return (uint32_t)(h % CONN_SLOTS);
}

bool
store_conn_busy(struct etcd_server *srv, const struct http_req *req)
{
	return srv->q.n > 0 && srv->conn_pending[conn_slot(req)] > 0;
}

struct store_hold *
store_hold_new(struct etcd_server *srv, struct http_req *req, enum store_hold_kind kind)
{
	struct store_hold *h = mem_calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->srv = srv;
	h->req = req;
	h->kind = kind;
	return h;
}

static void
hold_uncount(struct store_hold *h)
{
	if (h->counted) {
		h->srv->conn_pending[h->conn_slot]--;
		h->counted = false;
	}
}

static void
watch_unlink(struct store_hold *h)
{
	struct etcd_server *srv = h->srv;

	if (h->prev_watch != NULL)
		h->prev_watch->next_watch = h->next_watch;
	else if (srv->watches == h)
		srv->watches = h->next_watch;
	if (h->next_watch != NULL)
		h->next_watch->prev_watch = h->prev_watch;
	h->next_watch = h->prev_watch = NULL;
}

void
store_watch_link(struct store_hold *h)
{
	struct etcd_server *srv = h->srv;

	h->prev_watch = NULL;
	h->next_watch = srv->watches;
	if (srv->watches != NULL)
		srv->watches->prev_watch = h;
	srv->watches = h;
}

void
store_hold_done(struct store_hold *h)
{
	if (h == NULL)
		return;
	hold_uncount(h);
	if (h->kind == STORE_HOLD_WATCH)
		watch_unlink(h);
	mem_free(h);
}

void
store_hold_closed(struct http_req *req, void *arg)
{
	struct store_hold *h = arg;

	(void)req;
	h->req = NULL;
	if (h->kind == STORE_HOLD_WATCH) {
		/* The client went away: the watcher costs nothing from now on. */
		watch_cancel(h->w);
		h->w = NULL;
		store_hold_done(h);
	}
	/* Writes and deferred reads stay in the queue until their turn; they
	 * are freed there, with nobody to answer. */
}

/* ------------------------------------------------------------------ */
/* Pending queue                                                       */
/* ------------------------------------------------------------------ */

static int
pq_push(struct pend_queue *q, const struct pend *e)
{
	if (q->n == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 256;
		struct pend *nv = mem_alloc(ncap * sizeof(*nv));

		if (nv == NULL)
			return -ERR_NOMEM;
		for (size_t i = 0; i < q->n; i++)
			nv[i] = q->v[(q->head + i) % q->cap];
		mem_free(q->v);
		q->v = nv;
		q->cap = ncap;
		q->head = 0;
	}
	q->v[(q->head + q->n) % q->cap] = *e;
	q->n++;
	return 0;
}

static struct pend *
pq_front(struct pend_queue *q)
{
	return q->n ? &q->v[q->head] : NULL;
}

static void
pq_pop(struct pend_queue *q)
{
	q->head = (q->head + 1) % q->cap;
	q->n--;
}

static void maybe_start_sync(struct etcd_server *srv);

static int propose_hold(struct etcd_server *srv, const struct store_proposal *p, uint32_t kind,
	struct http_req *req, bool no_value_on_success, store_answer_fn *answer, void *arg);

int
store_propose(struct etcd_server *srv, const struct store_proposal *p, uint32_t kind, struct http_req *req,
	bool no_value_on_success)
{
	return propose_hold(srv, p, kind, req, no_value_on_success, NULL, NULL);
}

int
store_propose_answer(struct etcd_server *srv, const struct store_proposal *p, uint32_t kind,
	struct http_req *req, store_answer_fn *answer, void *arg)
{
	return propose_hold(srv, p, kind, req, false, answer, arg);
}

static int
propose_hold(struct etcd_server *srv, const struct store_proposal *p, uint32_t kind, struct http_req *req,
	bool no_value_on_success, store_answer_fn *answer, void *arg)
{
	struct wal_entry e;
	struct pend pe;
	struct store_hold *h = NULL;
	struct buf b = BUF_INIT;
	size_t len;
	int rc;

	if (srv->q.n >= PENDING_ENTRIES_MAX)
		return -ERR_LIMIT;
	rc = store_proposal_encode(p, &b);
	if (rc != 0) {
		buf_free(&b);
		return rc;
	}
	if (req != NULL) {
		h = store_hold_new(srv, req, STORE_HOLD_WRITE);
		if (h == NULL) {
			buf_free(&b);
			return -ERR_NOMEM;
		}
		h->no_value_on_success = no_value_on_success;
		h->answer = answer;
		h->answer_arg = arg;
	}
	memset(&e, 0, sizeof(e));
	e.index = wal_last_index(srv->wal) + 1;
	e.term = srv->term;
	e.kind = kind;
	e.data = b.data;
	e.len = b.len;
	rc = wal_append_entries(srv->wal, &e, 1);
	if (rc != 0) {
		buf_free(&b);
		mem_free(h);
		return rc;
	}
	pe.index = e.index;
	pe.hold = h;
	pe.data = buf_steal(&b, &len);
	pe.len = len;
	if (pe.data == NULL && len == 0)
		pe.data = NULL;
	rc = pq_push(&srv->q, &pe);
	if (rc != 0) {
		/* The entry is in the WAL buffer and will be applied at replay;
		 * the running server cannot track it and must stop. */
		fatal("etcdserver", "out of memory queueing a proposal", "index=%" PRIu64, e.index);
	}
	srv->wal_bytes += WAL_RECORD_HEADER_BYTES + WAL_ENTRY_HEADER_BYTES + len;
	if (h != NULL) {
		h->conn_slot = conn_slot(req);
		h->counted = true;
		srv->conn_pending[h->conn_slot]++;
		http_req_hold(req, store_hold_closed, h);
	}
	return 0;
}

int
store_defer_read(struct etcd_server *srv, struct http_req *req, const struct store_keys_req *kr)
{
	struct store_hold *h = store_hold_new(srv, req, STORE_HOLD_READ);
	struct pend pe;

	if (h == NULL)
		return -ERR_NOMEM;
	h->kr = *kr;
	memset(&pe, 0, sizeof(pe));
	pe.hold = h;
	if (pq_push(&srv->q, &pe) != 0) {
		mem_free(h);
		return -ERR_NOMEM;
	}
	h->conn_slot = conn_slot(req);
	h->counted = true;
	srv->conn_pending[h->conn_slot]++;
	http_req_hold(req, store_hold_closed, h);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Membership read back from the store                                 */
/* ------------------------------------------------------------------ */

static void
member_free_urls(char ***v, size_t *n)
{
	for (size_t k = 0; k < *n; k++)
		mem_free((*v)[k]);
	mem_free(*v);
	*v = NULL;
	*n = 0;
}

/* Copies a JSON array of strings into a new sorted array. */
static int
json_strings(const struct json_node *arr, char ***out, size_t *n)
{
	size_t cnt = json_len(arr), i = 0;
	char **v;

	*out = NULL;
	*n = 0;
	if (arr == NULL || arr->type != JSON_ARRAY || cnt == 0)
		return 0;
	v = mem_calloc(cnt, sizeof(*v));
	if (v == NULL)
		return -ERR_NOMEM;
	for (const struct json_node *c = json_first(arr); c != NULL; c = c->next) {
		const char *s;
		size_t l;

		if (json_get_str(c, &s, &l) != 0)
			continue;
		v[i] = mem_strndup(s, l);
		if (v[i] == NULL) {
			for (size_t k = 0; k < i; k++)
				mem_free(v[k]);
			mem_free(v);
			return -ERR_NOMEM;
		}
		i++;
	}
	qsort(v, i, sizeof(*v), cmp_strp);
	*out = v;
	*n = i;
	return 0;
}

/*
 * The member's raftAttributes ({"peerURLs":[..]}) or attributes
 * ({"name":..,"clientURLs":[..]}) as stored; a document that does not
 * parse leaves the member as it was (etcd would have refused to write it).
 */
static void
member_set(struct etcd_server *srv, bool raft, const char *json, size_t len)
{
	struct store_member *m = &srv->member;
	struct json_doc *doc = NULL;
	const struct json_node *root;
	const char *s;
	size_t l;

	if (json_parse(json, len, NULL, &doc, NULL, 0) != 0)
		return;
	root = json_doc_root(doc);
	m->id = srv->id;
	if (raft) {
		member_free_urls(&m->peer_urls, &m->n_peer);
		json_strings(json_get(root, "peerURLs"), &m->peer_urls, &m->n_peer);
	} else {
		m->name[0] = '\0';
		if (json_get_str(json_get(root, "name"), &s, &l) == 0)
			snprintf(m->name, sizeof(m->name), "%.*s", (int)l, s);
		member_free_urls(&m->client_urls, &m->n_client);
		json_strings(json_get(root, "clientURLs"), &m->client_urls, &m->n_client);
	}
	json_doc_free(doc);
}

static void
cluster_version_set(struct etcd_server *srv, const char *v, size_t len)
{
	mem_free(srv->cluster_version);
	srv->cluster_version = mem_strndup(v, len);
}

/* Which internal key a path names: 1 raftAttributes, 2 attributes of this
 * member, 3 the cluster version, 0 anything else. */
static int
internal_key_kind(struct etcd_server *srv, const char *p, size_t len)
{
	char want[96];
	size_t n;

	if (len < STORE_INTERNAL_DIR_LEN || memcmp(p, STORE_INTERNAL_DIR, STORE_INTERNAL_DIR_LEN) != 0)
		return 0;
	p += STORE_INTERNAL_DIR_LEN;
	len -= STORE_INTERNAL_DIR_LEN;
	if (len == 8 && memcmp(p, "/version", 8) == 0)
		return 3;
	n = (size_t)snprintf(want, sizeof(want), "/members/%s/raftAttributes", srv->id_str);
	if (len == n && memcmp(p, want, n) == 0)
		return 1;
	n = (size_t)snprintf(want, sizeof(want), "/members/%s/attributes", srv->id_str);
	if (len == n && memcmp(p, want, n) == 0)
		return 2;
	return 0;
}

/* After a snapshot replaced the tree: read membership back from it. */
static void
members_load_tree(struct etcd_server *srv)
{
	static const char *const leaves[3] = { "raftAttributes", "attributes", NULL };
	char key[96];

	for (int i = 0; i < 3; i++) {
		struct tree_event ev;
		struct tree_error err = TREE_ERROR_INIT;
		size_t kl;
		int rc;

		memcpy(key, STORE_INTERNAL_DIR, STORE_INTERNAL_DIR_LEN);
		if (leaves[i] != NULL)
			kl = STORE_INTERNAL_DIR_LEN + (size_t)snprintf(key + STORE_INTERNAL_DIR_LEN,
				sizeof(key) - STORE_INTERNAL_DIR_LEN, "/members/%s/%s", srv->id_str, leaves[i]);
		else
			kl = STORE_INTERNAL_DIR_LEN + (size_t)snprintf(key + STORE_INTERNAL_DIR_LEN,
				sizeof(key) - STORE_INTERNAL_DIR_LEN, "/version");
		rc = tree_get(srv->tree, key, kl, false, false, &ev, &err);
		tree_error_free(&err);
		if (rc != 0 || ev.node.value == NULL)
			continue;
		if (i < 2)
			member_set(srv, i == 0, ev.node.value, ev.node.value_len);
		else
			cluster_version_set(srv, ev.node.value, ev.node.value_len);
	}
}

const struct store_member *
store_members(struct etcd_server *srv, size_t *n)
{
	*n = srv->member.n_peer > 0 ? 1 : 0;
	return &srv->member;
}

static bool
path_is_internal(const char *p, size_t len)
{
	return len >= STORE_INTERNAL_DIR_LEN && memcmp(p, STORE_INTERNAL_DIR, STORE_INTERNAL_DIR_LEN) == 0;
}

/* ------------------------------------------------------------------ */
/* Apply                                                               */
/* ------------------------------------------------------------------ */

static void rearm_expiry(struct etcd_server *srv);
static void maybe_snapshot(struct etcd_server *srv);

/*
 * Applies one durable entry. replay: at start-up, with nobody to answer.
 * A decoding failure here means the log holds bytes this server did not
 * write as a proposal: corruption, which must stop the server.
 */
static void
apply_entry(struct etcd_server *srv, uint64_t index, const void *data, size_t len, struct store_hold *h)
{
	struct store_proposal p;
	struct store_result res;
	int rc;

	if (len == 0) {
		/* The empty entry a new term starts with. */
		srv->applied = index;
		srv->proposals_applied++;
		(void)h;
		return;
	}
	rc = store_proposal_decode(data, len, &p);
	if (rc != 0)
		fatal("etcdserver", "cannot decode a log entry", "index=%" PRIu64 " err=%s", index,
			log_q(err_str(rc)));
	store_proposal_apply(srv->tree, &p, &res);
	if (res.rc == -ERR_NOMEM)
		fatal("etcdserver", "out of memory applying a log entry", "index=%" PRIu64, index);
	srv->applied = index;
	srv->proposals_applied++;
	if (res.rc != 0)
		srv->proposals_failed++;
	if (p.op == STORE_OP_EXPIRE)
		srv->expire_inflight = false;
	if (res.rc == 0 && p.op == STORE_OP_MEMBER_ADD && p.member_id == srv->id) {
		member_set(srv, true, p.value, p.value_len);
	} else if (res.rc == 0 && p.op == STORE_OP_PUT && path_is_internal(p.path, p.path_len)) {
		switch (internal_key_kind(srv, p.path, p.path_len)) {
		case 1: member_set(srv, true, p.value, p.value_len); break;
		case 2: member_set(srv, false, p.value, p.value_len); break;
		case 3: cluster_version_set(srv, p.value, p.value_len); break;
		default: break;
		}
	}
	if (h != NULL && h->answer != NULL)
		h->answer(srv, h->req, &res, h->answer_arg);
	else if (h != NULL && h->req != NULL)
		store_keys_answer(srv, h->req, &res, h->no_value_on_success);
	store_result_free(&res);
}

/* Applies every queued entry up to durable and runs the reads queued
 * behind them, in queue order. */
static void
process_ready(struct etcd_server *srv, uint64_t durable)
{
	struct pend *pe;
	bool any = false;

	while ((pe = pq_front(&srv->q)) != NULL && (pe->index == 0 || pe->index <= durable)) {
		struct pend e = *pe;

		pq_pop(&srv->q);
		any = true;
		if (e.index != 0) {
			apply_entry(srv, e.index, e.data, e.len, e.hold);
			mem_free(e.data);
			store_hold_done(e.hold);
		} else {
			struct store_hold *h = e.hold;

			hold_uncount(h);
			if (h->req == NULL) {
				store_hold_done(h);
			} else {
				/* store_keys_run_read answers (and frees h) or turns
				 * h into a watch. */
				store_keys_run_read(srv, h->req, &h->kr, h);
			}
		}
	}
	if (any) {
		rearm_expiry(srv);
		maybe_snapshot(srv);
	}
}

/* ------------------------------------------------------------------ */
/* WAL sync: the group commit                                          */
/* ------------------------------------------------------------------ */

static void do_release(struct etcd_server *srv);

static void
sync_failed(struct etcd_server *srv, int rc)
{
	/* The kernel may have dropped dirty pages: nothing after this can be
	 * trusted to be durable, so stop as etcd does. */
	fatal("wal", "sync failed", "err=%s detail=%s", log_q(err_str(rc)), log_q(wal_errmsg(srv->wal)));
}

static void
sync_finished(struct etcd_server *srv, uint64_t durable)
{
	double secs = (double)(time_mono_us() - srv->sync_start_us) / 1e6;

	store_histogram_observe(&srv->fsync_hist, secs);
	srv->syncs_done++;
	if (srv->release_pending && srv->syncs_done > srv->release_after_sync)
		do_release(srv);
	process_ready(srv, durable);
}

static void
sync_fd_ready(struct loop *l, int fd, void *arg)
{
	struct etcd_server *srv = arg;
	uint64_t durable;
	int rc;

	(void)l;
	(void)fd;
	rc = wal_sync_done(srv->wal, &durable);
	if (rc == -ERR_AGAIN)
		return;
	if (rc != 0)
		sync_failed(srv, rc);
	sync_finished(srv, durable);
	maybe_start_sync(srv);
}

static void
maybe_start_sync(struct etcd_server *srv)
{
	int rc;

	if (wal_pending_bytes(srv->wal) == 0)
		return;
	if (srv->thread_sync) {
		if (wal_sync_busy(srv->wal))
			return;
		srv->sync_start_us = time_mono_us();
		rc = wal_sync_start(srv->wal);
		if (rc == -ERR_AGAIN)
			return;
		if (rc != 0)
			sync_failed(srv, rc);
		srv->syncs_started++;
	} else {
		uint64_t durable;

		srv->sync_start_us = time_mono_us();
		srv->syncs_started++;
		rc = wal_sync(srv->wal, &durable);
		if (rc != 0)
			sync_failed(srv, rc);
		sync_finished(srv, durable);
	}
}

static void
before_sleep(struct loop *l, void *arg)
{
	struct etcd_server *srv = arg;

	(void)l;
	maybe_start_sync(srv);
	/* Reads deferred behind entries applied earlier in this turn. */
	process_ready(srv, wal_durable_index(srv->wal));
	if (srv->stopping && srv->q.n == 0 && wal_pending_bytes(srv->wal) == 0 &&
	    !(srv->thread_sync && wal_sync_busy(srv->wal)))
		loop_stop(srv->loop);
}

/* ------------------------------------------------------------------ */
/* TTL expiry through the log                                          */
/* ------------------------------------------------------------------ */

static int64_t
expire_fire(struct loop *l, uint64_t id, void *arg)
{
	struct etcd_server *srv = arg;
	int64_t when, now = store_now_ns(srv);

	(void)l;
	(void)id;
	srv->expire_timer = 0;
	if (srv->expire_inflight || tree_next_expiry(srv->tree, &when) != 0)
		return LOOP_TIMER_DONE;
	if (when > now) {
		rearm_expiry(srv);
		return LOOP_TIMER_DONE;
	}
	struct store_proposal p;

	memset(&p, 0, sizeof(p));
	p.op = STORE_OP_EXPIRE;
	p.time_ns = now;
	if (store_propose(srv, &p, STORE_ENTRY_NORMAL, NULL, false) == 0)
		srv->expire_inflight = true;
	else
		srv->expire_timer = loop_timer_add(srv->loop, 100, expire_fire, srv);
	return LOOP_TIMER_DONE;
}

static void
rearm_expiry(struct etcd_server *srv)
{
	int64_t when, now, delay;

	if (srv->expire_inflight || srv->stopping)
		return;
	if (tree_next_expiry(srv->tree, &when) != 0) {
		if (srv->expire_timer != 0)
			loop_timer_del(srv->loop, srv->expire_timer);
		srv->expire_timer = 0;
		return;
	}
	if (srv->expire_timer != 0 && srv->expire_when == when)
		return;
	if (srv->expire_timer != 0)
		loop_timer_del(srv->loop, srv->expire_timer);
	now = store_now_ns(srv);
	delay = when <= now ? 0 : (when - now + 999999) / 1000000;
	if (delay > INT64_C(86400000))
		delay = INT64_C(86400000); /* look again in a day: the clock may move */
	srv->expire_when = when;
	srv->expire_timer = loop_timer_add(srv->loop, (uint64_t)delay, expire_fire, srv);
}

/* ------------------------------------------------------------------ */
/* Snapshots and purge                                                 */
/* ------------------------------------------------------------------ */

/*
 * Removes snapshots the WAL can no longer replay from: recovery from a
 * snapshot at index S starts in a segment whose first index is at most S,
 * so once the oldest segment left starts after S that snapshot is dead
 * weight. The newest snapshot is always kept. --max-snapshots stays an
 * upper bound, as in etcd.
 */
static void
purge_unusable_snapshots(struct etcd_server *srv)
{
	struct snapfile_info *list = NULL;
	char msg[256], path[PATH_MAX];
	uint64_t oldest = UINT64_MAX;
	unsigned removed = 0;
	size_t n = 0;
	DIR *d;
	struct dirent *de;

	d = opendir(srv->wal_dir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		uint64_t seq, first;

		if (wal_segment_name_parse(de->d_name, &seq, &first) == 0 && first < oldest)
			oldest = first;
	}
	closedir(d);
	if (oldest == UINT64_MAX || snapfile_list(srv->snap_dir, &list, &n, msg, sizeof(msg)) != 0)
		return;
	for (size_t i = 1; i < n; i++) /* list[0] is the newest */
		if (list[i].index < oldest) {
			snprintf(path, sizeof(path), "%s/%s", srv->snap_dir, list[i].name);
			if (unlink(path) == 0)
				removed++;
		}
	mem_free(list);
	if (removed > 0)
		log_info("snap", "purged snapshots older than the WAL", "removed=%u oldest_wal_index=%" PRIu64, removed,
			oldest);
}

static void
do_release(struct etcd_server *srv)
{
	unsigned removed = 0;
	char msg[256];
	int rc;

	rc = wal_release(srv->wal, srv->snap_saved_index, (unsigned)srv->cfg.max_wals, &removed);
	if (rc == -ERR_AGAIN)
		return; /* a batch is in flight: try after it */
	srv->release_pending = false;
	if (rc != 0)
		log_warn("wal", "failed to release old segments", "err=%s", log_q(wal_errmsg(srv->wal)));
	else if (removed > 0)
		log_info("wal", "purged old segments", "removed=%u", removed);
	removed = 0;
	msg[0] = '\0';
	rc = snapfile_purge(srv->snap_dir, (unsigned)srv->cfg.max_snapshots, &removed, msg, sizeof(msg));
	if (rc != 0)
		log_warn("snap", "failed to purge snapshots", "err=%s", log_q(msg));
	else if (removed > 0)
		log_info("snap", "purged old snapshots", "removed=%u", removed);
	purge_unusable_snapshots(srv);
}

/* Records a snapshot file that is complete on disk: the WAL marker, then
 * (once the marker is durable) the release of old segments and snapshots. */
static void
snapshot_saved(struct etcd_server *srv, uint64_t term, uint64_t index, size_t bytes, uint64_t started_us)
{
	struct wal_snapshot ws = { term, index };

	if (wal_save_snapshot(srv->wal, &ws) != 0)
		fatal("wal", "cannot record snapshot", "err=%s", log_q(wal_errmsg(srv->wal)));
	srv->snap_term = term;
	srv->snap_saved_index = index;
	srv->release_pending = true;
	srv->release_after_sync = srv->syncs_started;
	log_info("etcdserver", "saved snapshot", "index=%" PRIu64 " bytes=%zu ms=%" PRIu64, index, bytes,
		(time_mono_us() - started_us) / 1000);
}

/* The snapshot written in the loop itself (when fork is not possible). */
static void
snapshot_inline(struct etcd_server *srv)
{
	struct buf b = BUF_INIT;
	char msg[256];
	uint64_t t0 = time_mono_us();
	int rc;

	rc = tree_snapshot_save(srv->tree, &b);
	if (rc == 0)
		rc = snapfile_save(srv->snap_dir, srv->term, srv->applied, b.data, b.len, msg, sizeof(msg));
	else
		snprintf(msg, sizeof(msg), "%s", err_str(rc));
	if (rc != 0)
		log_warn("etcdserver", "failed to save snapshot", "index=%" PRIu64 " err=%s", srv->applied,
			log_q(msg));
	else
		snapshot_saved(srv, srv->term, srv->applied, b.len, t0);
	buf_free(&b);
}

/*
 * The child process that writes a snapshot (as Redis's BGSAVE): it sees the
 * tree as it was at fork time, copy-on-write, so the loop never stops for
 * the encoding and the encoded copy never counts in the server's memory.
 * It keeps no descriptor of the parent (a listener held by an orphaned
 * child would keep the port busy after a crash) and dies with the parent.
 */
static _Noreturn void
snapshot_child(struct etcd_server *srv, pid_t parent, uint64_t term, uint64_t index)
{
	struct buf b = BUF_INIT;
	char msg[256];
	int rc;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(3);
	if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
		struct rlimit rl;
		int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1u << 20 ? (int)rl.rlim_cur : 1 << 20;

		for (int fd = 3; fd < max; fd++)
			close(fd);
	}
	rc = tree_snapshot_save(srv->tree, &b);
	if (rc == 0)
		rc = snapfile_save(srv->snap_dir, term, index, b.data, b.len, msg, sizeof(msg));
	else
		snprintf(msg, sizeof(msg), "%s", err_str(rc));
	if (rc != 0) {
		log_warn("etcdserver", "failed to save snapshot", "index=%" PRIu64 " err=%s", index, log_q(msg));
		_exit(1);
	}
	_exit(0);
}

static void
snapshot_child_exited(struct loop *l, pid_t pid, int status, void *arg)
{
	struct etcd_server *srv = arg;

	(void)l;
	if (pid != srv->snap_child)
		return;
	srv->snap_child = 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		char name[SNAPFILE_NAME_BYTES], path[PATH_MAX];
		struct stat st;

		snapfile_name_format(name, srv->snap_child_term, srv->snap_child_index);
		snprintf(path, sizeof(path), "%s/%s", srv->snap_dir, name);
		snapshot_saved(srv, srv->snap_child_term, srv->snap_child_index,
			stat(path, &st) == 0 ? (size_t)st.st_size : 0, srv->snap_child_start_us);
		return;
	}
	/* The WAL still holds everything: a failed snapshot costs disk, not
	 * data. The next one is tried after another snapshot-count entries. */
	log_warn("etcdserver", "snapshot process failed", "index=%" PRIu64 " status=%d", srv->snap_child_index,
		status);
}

static void
maybe_snapshot(struct etcd_server *srv)
{
	pid_t pid, self = getpid();

	if (srv->cfg.snapshot_count == 0 || srv->applied - srv->snap_index < srv->cfg.snapshot_count)
		return;
	if (srv->snap_child != 0)
		return; /* one at a time; the next turn looks again */
	srv->snap_index = srv->applied;
	srv->snap_child_index = srv->applied;
	srv->snap_child_term = srv->term;
	srv->snap_child_start_us = time_mono_us();
	pid = srv->fork_snapshots ? fork() : -1;
	if (pid == 0)
		snapshot_child(srv, self, srv->snap_child_term, srv->snap_child_index);
	if (pid < 0) {
		if (srv->fork_snapshots)
			log_warn("etcdserver", "cannot fork the snapshot writer, writing in the loop", "err=%s",
				log_q(strerror(errno)));
		snapshot_inline(srv);
		return;
	}
	srv->snap_child = pid;
	if (loop_child_add(srv->loop, pid, snapshot_child_exited, srv) != 0) {
		/* Without the exit callback the marker would never be written:
		 * wait for this one here. */
		int status = 0;

		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		snapshot_child_exited(srv->loop, pid, status, srv);
	}
}

/* ------------------------------------------------------------------ */
/* Metrics                                                             */
/* ------------------------------------------------------------------ */

void
store_histogram_observe(struct store_histogram *h, double seconds)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (seconds <= h->bounds[i])
			break;
	h->counts[i]++;
	h->sum += seconds;
	h->count++;
}

int
store_histogram_text(struct buf *out, const char *name, const char *labels, const struct store_histogram *h)
{
	uint64_t cum = 0;
	int rc = 0;
	const char *sep = labels && *labels ? "," : "";

	if (labels == NULL)
		labels = "";
	for (size_t i = 0; i < h->n && rc == 0; i++) {
		cum += h->counts[i];
		rc = buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, sep, h->bounds[i], cum);
	}
	cum += h->counts[h->n];
	if (rc == 0)
		rc = buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, cum);
	if (rc == 0)
		rc = buf_printf(out, "%s_sum%s%s%s %.9g\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
			h->sum);
	if (rc == 0)
		rc = buf_printf(out, "%s_count%s%s%s %" PRIu64 "\n", name, *labels ? "{" : "", labels,
			*labels ? "}" : "", h->count);
	return rc;
}

int
store_metrics_text(struct etcd_server *srv, struct buf *out)
{
	const struct tree_stats *ts = tree_stats(srv->tree);
	struct http_server_stats hs;
	int rc = 0;
	char lab[64];

	http_server_stats(srv->client, &hs);
#define P(...) do { if (rc == 0) rc = buf_printf(out, __VA_ARGS__); } while (0)
	P("# HELP etcd_http_received_total Counter of requests received into the system (successfully parsed and authd).\n");
	P("# TYPE etcd_http_received_total counter\n");
	for (int m = 0; m < N_METHODS; m++)
		if (srv->http_received[m])
			P("etcd_http_received_total{method=\"%s\"} %" PRIu64 "\n", method_names[m], srv->http_received[m]);
	P("# HELP etcd_http_failed_total Counter of handle failures of requests (non-watches), by method (GET/PUT etc.) and code (400, 500 etc.).\n");
	P("# TYPE etcd_http_failed_total counter\n");
	for (int m = 0; m < N_METHODS; m++)
		for (int c = 400; c < 600; c++)
			if (srv->http_status[m][c - 100])
				P("etcd_http_failed_total{code=\"%d\",method=\"%s\"} %" PRIu64 "\n", c, method_names[m],
					srv->http_status[m][c - 100]);
	P("# HELP corebox_http_responses_total HTTP responses of the client listener by method and status code.\n");
	P("# TYPE corebox_http_responses_total counter\n");
	for (int m = 0; m < N_METHODS; m++)
		for (int c = 100; c < 600; c++)
			if (srv->http_status[m][c - 100])
				P("corebox_http_responses_total{code=\"%d\",method=\"%s\"} %" PRIu64 "\n", c, method_names[m],
					srv->http_status[m][c - 100]);
	P("# HELP etcd_http_successful_duration_seconds Bucketed histogram of processing time (s) of successfully handled requests (non-watches), by method (GET/PUT etc.).\n");
	P("# TYPE etcd_http_successful_duration_seconds histogram\n");
	for (int m = 0; m < N_METHODS && rc == 0; m++)
		if (srv->http_hist[m].count) {
			snprintf(lab, sizeof(lab), "method=\"%s\"", method_names[m]);
			rc = store_histogram_text(out, "etcd_http_successful_duration_seconds", lab, &srv->http_hist[m]);
		}
	P("# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.\n");
	P("# TYPE etcd_disk_wal_fsync_duration_seconds histogram\n");
	if (rc == 0)
		rc = store_histogram_text(out, "etcd_disk_wal_fsync_duration_seconds", NULL, &srv->fsync_hist);
	P("# HELP etcd_disk_wal_write_bytes_total Total number of bytes written in WAL.\n");
	P("# TYPE etcd_disk_wal_write_bytes_total gauge\n");
	P("etcd_disk_wal_write_bytes_total %" PRIu64 "\n", srv->wal_bytes);
	P("# HELP etcd_debugging_store_watchers Count of currently active watchers.\n");
	P("# TYPE etcd_debugging_store_watchers gauge\n");
	P("etcd_debugging_store_watchers %" PRIu64 "\n", watch_hub_count(srv->hub));
	P("# HELP etcd_debugging_store_expires_total Total number of expired keys.\n");
	P("# TYPE etcd_debugging_store_expires_total counter\n");
	P("etcd_debugging_store_expires_total %" PRIu64 "\n", ts->expire_count);
	P("# HELP etcd_debugging_store_reads_total Total number of reads action by (get/getRecursive), local to this member.\n");
	P("# TYPE etcd_debugging_store_reads_total counter\n");
	P("etcd_debugging_store_reads_total{action=\"get\"} %" PRIu64 "\n", ts->gets_success + ts->gets_fail);
	P("# HELP etcd_debugging_store_writes_total Total number of writes (e.g. set/compareAndDelete) seen by this member.\n");
	P("# TYPE etcd_debugging_store_writes_total counter\n");
	P("etcd_debugging_store_writes_total{action=\"compareAndDelete\"} %" PRIu64 "\n", ts->cad_success + ts->cad_fail);
	P("etcd_debugging_store_writes_total{action=\"compareAndSwap\"} %" PRIu64 "\n", ts->cas_success + ts->cas_fail);
	P("etcd_debugging_store_writes_total{action=\"create\"} %" PRIu64 "\n", ts->create_success + ts->create_fail);
	P("etcd_debugging_store_writes_total{action=\"delete\"} %" PRIu64 "\n", ts->delete_success + ts->delete_fail);
	P("etcd_debugging_store_writes_total{action=\"set\"} %" PRIu64 "\n", ts->sets_success + ts->sets_fail);
	P("etcd_debugging_store_writes_total{action=\"update\"} %" PRIu64 "\n", ts->update_success + ts->update_fail);
	P("# HELP corebox_store_keys Number of nodes (keys and directories) in the store, the root included.\n");
	P("# TYPE corebox_store_keys gauge\n");
	P("corebox_store_keys %zu\n", tree_node_count(srv->tree));
	P("# HELP corebox_http_connections Open client connections.\n");
	P("# TYPE corebox_http_connections gauge\n");
	P("corebox_http_connections %" PRIu64 "\n", hs.conns_open);
	P("# HELP corebox_http_requests_held Client requests currently held (watches and writes waiting for the log).\n");
	P("# TYPE corebox_http_requests_held gauge\n");
	P("corebox_http_requests_held %" PRIu64 "\n", hs.requests_held);
	P("# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.\n");
	P("# TYPE etcd_server_has_leader gauge\n");
	P("etcd_server_has_leader 1\n");
	P("# HELP etcd_server_is_leader Whether or not this member is a leader. 1 if is, 0 otherwise.\n");
	P("# TYPE etcd_server_is_leader gauge\n");
	P("etcd_server_is_leader 1\n");
	P("# HELP etcd_server_proposals_applied_total The total number of consensus proposals applied.\n");
	P("# TYPE etcd_server_proposals_applied_total gauge\n");
	P("etcd_server_proposals_applied_total %" PRIu64 "\n", srv->applied);
	P("# HELP etcd_server_proposals_committed_total The total number of consensus proposals committed.\n");
	P("# TYPE etcd_server_proposals_committed_total gauge\n");
	P("etcd_server_proposals_committed_total %" PRIu64 "\n", wal_durable_index(srv->wal));
	P("# HELP etcd_server_proposals_pending The current number of pending proposals to commit.\n");
	P("# TYPE etcd_server_proposals_pending gauge\n");
	P("etcd_server_proposals_pending %zu\n", srv->q.n);
	P("# HELP etcd_server_proposals_failed_total The total number of failed proposals seen.\n");
	P("# TYPE etcd_server_proposals_failed_total counter\n");
	P("etcd_server_proposals_failed_total %" PRIu64 "\n", srv->proposals_failed);
#undef P
	return rc;
}

static int
method_slot(enum http_method m)
{
	return (int)m >= 0 && (int)m < N_METHODS ? (int)m : 0;
}

static void
http_logged(void *arg, const struct http_req *req, int status, uint64_t latency_us, uint64_t body_bytes)
{
	struct etcd_server *srv = arg;
	int m = method_slot(req->method_id);

	(void)body_bytes;
	srv->http_received[m]++;
	if (status >= 100 && status < 600)
		srv->http_status[m][status - 100]++;
	if (status < 400) {
		/* Watches are held for as long as nothing happens; leave them out
		 * of the latency histogram as etcd does. */
		if (m == HTTP_GET) {
			const char *w = http_req_value(req, HTTP_SRC_FORM, "wait");
			int b = 0;

			if (w != NULL && flags_parse_bool(w, &b) == 0 && b)
				return;
		}
		store_histogram_observe(&srv->http_hist[m], (double)latency_us / 1e6);
	}
}

/* ------------------------------------------------------------------ */
/* HTTP front doors                                                    */
/* ------------------------------------------------------------------ */

static void
client_handler(struct http_req *req, void *arg)
{
	struct etcd_server *srv = arg;

	if (req->method_id == HTTP_OPTIONS) {
		/* etcd's CORS handler answers every OPTIONS itself. */
		http_resp_start(req, 200, NULL);
		store_cors_headers(srv, req);
		http_resp_body(req, "", 0);
		return;
	}
	store_misc_handle(srv, req, req->path, req->path_len);
}

static void
peer_handler(struct http_req *req, void *arg)
{
	store_peer_handle(arg, req);
}

/* ------------------------------------------------------------------ */
/* Data directory                                                      */
/* ------------------------------------------------------------------ */

static char *
path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = mem_alloc(la + lb + 2);

	if (p == NULL)
		fatal("etcdmain", "out of memory", NULL);
	memcpy(p, a, la);
	p[la] = '/';
	memcpy(p + la + 1, b, lb + 1);
	return p;
}

static int
mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, mode) != 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Builds the attributes JSON etcd publishes: {"name":..,"clientURLs":[..]}. */
static int
attributes_json(struct etcd_server *srv, struct buf *out)
{
	struct json_gen *g = json_gen_new(out);
	int rc;

	if (g == NULL)
		return -ERR_NOMEM;
	json_obj_begin(g);
	if (srv->name[0] != '\0') {
		json_key(g, "name");
		json_strz(g, srv->name);
	}
	if (srv->acurls.n > 0) {
		json_key(g, "clientURLs");
		json_arr_begin(g);
		for (size_t i = 0; i < srv->acurls.n; i++)
			json_strz(g, srv->acurls.v[i]);
		json_arr_end(g);
	}
	json_obj_end(g);
	rc = json_gen_error(g);
	json_gen_free(g);
	return rc;
}

static int
raft_attributes_json(const struct url_list *peers, struct buf *out)
{
	struct json_gen *g = json_gen_new(out);
	int rc;

	if (g == NULL)
		return -ERR_NOMEM;
	json_obj_begin(g);
	json_key(g, "peerURLs");
	json_arr_begin(g);
	for (size_t i = 0; i < peers->n; i++)
		json_strz(g, peers->v[i]);
	json_arr_end(g);
	json_obj_end(g);
	rc = json_gen_error(g);
	json_gen_free(g);
	return rc;
}

/*
 * etcd's types.NewURLsMap over --initial-cluster: "name=url,name=url".
 * Returns the URLs given for name (sorted) in *mine and the number of
 * distinct names in *nnames; msg on error.
 */
static int
parse_initial_cluster(const char *s, const char *name, struct url_list *mine, size_t *nnames, char *msg,
	size_t msgsz)
{
	char names[URLS_MAX][256];
	size_t nn = 0;
	struct buf joined = BUF_INIT;
	struct buf all = BUF_INIT;
	const char *p = s;
	int rc = 0;

	memset(mine, 0, sizeof(*mine));
	*nnames = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *e = comma ? comma : p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(e - p));
		char nm[256], url[1024];
		ssize_t nl, ul;
		size_t k;

		if (e > p) {
			size_t rawn = eq ? (size_t)(eq - p) : (size_t)(e - p);
			size_t rawu = eq ? (size_t)(e - eq - 1) : 0;

			if (rawn >= sizeof(nm) || rawu >= sizeof(url)) {
				snprintf(msg, msgsz, "initial cluster entry too long");
				rc = -ERR_LIMIT;
				break;
			}
			nl = http_pct_decode(nm, p, rawn, true, NULL);
			ul = eq ? http_pct_decode(url, eq + 1, rawu, true, NULL) : 0;
			if (nl < 0 || ul < 0) {
				snprintf(msg, msgsz, "invalid URL escape in initial cluster %s", s);
				rc = -ERR_PARSE;
				break;
			}
			nm[nl] = '\0';
			url[ul] = '\0';
			if (ul == 0) {
				snprintf(msg, msgsz, "empty URL given for \"%s\"", nm);
				rc = -ERR_PARSE;
				break;
			}
			{
				struct url_list one;

				rc = url_list_parse(url, &one, msg, msgsz);
				url_list_free(&one);
				if (rc != 0)
					break;
			}
			for (k = 0; k < nn; k++)
				if (strcmp(names[k], nm) == 0)
					break;
			if (k == nn) {
				if (nn == URLS_MAX) {
					snprintf(msg, msgsz, "too many members in initial cluster");
					rc = -ERR_LIMIT;
					break;
				}
				snprintf(names[nn++], sizeof(names[0]), "%s", nm);
			}
			/* Duplicate URLs anywhere in the cluster are refused. */
			{
				const char *a = all.data ? buf_cstr(&all) : "";
				size_t ulen = strlen(url);

				for (const char *q = a; *q;) {
					const char *nl2 = strchr(q, '\n');
					size_t ql = (size_t)(nl2 - q);

					if (ql == ulen && memcmp(q, url, ulen) == 0) {
						snprintf(msg, msgsz, "initial cluster %s has duplicate url", s);
						rc = -ERR_PARSE;
						break;
					}
					q = nl2 + 1;
				}
				if (rc != 0)
					break;
				buf_printf(&all, "%s\n", url);
			}
			if (strcmp(nm, name) == 0)
				buf_printf(&joined, "%s%s", joined.len ? "," : "", url);
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (rc == 0 && joined.len > 0)
		rc = url_list_parse(buf_cstr(&joined), mine, msg, msgsz);
	buf_free(&joined);
	buf_free(&all);
	*nnames = nn;
	return rc;
}

/* The comma-joined "name=url" pairs of etcd's URLsMap.String for one name. */
static void
urls_map_str(const char *name, const struct url_list *l, char *out, size_t outsz)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < l->n && n < outsz; i++)
		n += (size_t)snprintf(out + n, outsz - n, "%s%s=%s", i ? "," : "", name, l->v[i]);
}

static void
urls_str(const struct url_list *l, char *out, size_t outsz)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < l->n && n < outsz; i++)
		n += (size_t)snprintf(out + n, outsz - n, "%s%s", i ? "," : "", l->v[i]);
}

/* Appends the entries a member appends when it takes office: the term's
 * empty entry, its attributes, and (first boot) the cluster version. */
static void
propose_startup(struct etcd_server *srv, bool set_version)
{
	struct store_proposal p;
	struct buf attrs = BUF_INIT;
	struct wal_entry e;
	struct pend pe;
	char key[96], hex[17];
	int rc;

	/* The empty entry of the new term (raft's leader no-op). */
	memset(&e, 0, sizeof(e));
	e.index = wal_last_index(srv->wal) + 1;
	e.term = srv->term;
	rc = wal_append_entries(srv->wal, &e, 1);
	if (rc != 0)
		fatal("wal", "cannot append", "err=%s", log_q(wal_errmsg(srv->wal)));
	memset(&pe, 0, sizeof(pe));
	pe.index = e.index;
	if (pq_push(&srv->q, &pe) != 0)
		fatal("etcdserver", "out of memory", NULL);

	/* Publish this member's name and client URLs. */
	if (attributes_json(srv, &attrs) != 0)
		fatal("etcdserver", "out of memory", NULL);
	store_id_str(srv->id, hex);
	memcpy(key, STORE_INTERNAL_DIR, STORE_INTERNAL_DIR_LEN);
	memset(&p, 0, sizeof(p));
	p.op = STORE_OP_PUT;
	p.time_ns = store_now_ns(srv);
	p.path = key;
	p.path_len = STORE_INTERNAL_DIR_LEN +
		(size_t)snprintf(key + STORE_INTERNAL_DIR_LEN, sizeof(key) - STORE_INTERNAL_DIR_LEN,
			"/members/%s/attributes", hex);
	p.value = attrs.data;
	p.value_len = attrs.len;
	if (store_propose(srv, &p, STORE_ENTRY_NORMAL, NULL, false) != 0)
		fatal("etcdserver", "cannot propose member attributes", NULL);
	buf_free(&attrs);

	if (set_version) {
		memcpy(key, STORE_INTERNAL_DIR "/version", STORE_INTERNAL_DIR_LEN + 8);
		memset(&p, 0, sizeof(p));
		p.op = STORE_OP_PUT;
		p.time_ns = store_now_ns(srv);
		p.path = key;
		p.path_len = STORE_INTERNAL_DIR_LEN + 8;
		p.value = STORE_CLUSTER_VERSION_VALUE;
		p.value_len = strlen(STORE_CLUSTER_VERSION_VALUE);
		if (store_propose(srv, &p, STORE_ENTRY_NORMAL, NULL, false) != 0)
			fatal("etcdserver", "cannot propose cluster version", NULL);
	}
}

static void
log_broken_snapshot(void *arg, const char *msg)
{
	(void)arg;
	log_warn("snap", "skipped a broken snapshot file", "err=%s", log_q(msg));
}

/* A new member: checks the bootstrap flags as etcd does, creates the WAL
 * and writes the membership entry. Exits on any error. */
static void
bootstrap_new(struct etcd_server *srv)
{
	struct url_list mine;
	size_t nnames = 0;
	char msg[512], want[1024], have[1024];
	struct wal_metadata md;
	struct wal_options wo;
	struct wal_hardstate hs;
	struct wal_entry e;
	struct store_proposal p;
	struct buf ra = BUF_INIT, enc = BUF_INIT;
	struct pend pe;
	int rc;

	{
		struct snapfile_info *list = NULL;
		size_t n = 0;

		/* Snapshots without a WAL are another member's leftovers: starting
		 * a new member next to them would load them at the next restart. */
		if (snapfile_list(srv->snap_dir, &list, &n, msg, sizeof(msg)) == 0 && n > 0) {
			mem_free(list);
			fatal("etcdmain", "the data directory has snapshots but no WAL", "snap_dir=%s wal_dir=%s",
				log_q(srv->snap_dir), log_q(srv->wal_dir));
		}
		mem_free(list);
	}
	if (strcmp(srv->cfg.initial_cluster_state, "existing") == 0)
		fatal("etcdmain", "cannot join an existing cluster",
			"err=%s", log_q("--initial-cluster-state=existing needs a running cluster to join; "
				"corebox etcd runs a single member and cannot join one"));
	if (srv->cfg.discovery[0] != '\0' || srv->cfg.discovery_srv[0] != '\0')
		fatal("etcdmain", "discovery is not supported", "err=%s",
			log_q("corebox etcd bootstraps a single member from --initial-cluster; "
				"--discovery and --discovery-srv are not supported"));
	rc = parse_initial_cluster(srv->cfg.initial_cluster, srv->name, &mine, &nnames, msg, sizeof(msg));
	if (rc != 0)
		fatal("etcdmain", "error setting up initial cluster", "err=%s", log_q(msg));
	if (mine.n == 0) {
		url_list_free(&mine);
		snprintf(msg, sizeof(msg), "couldn't find local name \"%s\" in the initial cluster configuration",
			srv->name);
		fatal("etcdmain", "error verifying bootstrap config", "err=%s", log_q(msg));
	}
	bool same = mine.n == srv->apurls.n;

	for (size_t i = 0; same && i < mine.n; i++)
		same = strcmp(mine.v[i], srv->apurls.v[i]) == 0;
	if (!same) {
		urls_map_str(srv->name, &srv->apurls, want, sizeof(want));
		urls_str(&srv->apurls, have, sizeof(have));
		snprintf(msg, sizeof(msg), "--initial-cluster must include %s given --initial-advertise-peer-urls=%s",
			want, have);
		url_list_free(&mine);
		fatal("etcdmain", "error verifying bootstrap config", "err=%s", log_q(msg));
	}
	if (nnames > 1) {
		url_list_free(&mine);
		fatal("etcdmain", "multi-member clusters are not supported", "members=%zu err=%s", nnames,
			log_q("corebox etcd runs a single member: --initial-cluster must list only this member"));
	}
	srv->id = store_member_id((const char *const *)mine.v, mine.n, srv->cfg.initial_cluster_token);
	srv->cluster_id = store_cluster_id(&srv->id, 1);

	memset(&md, 0, sizeof(md));
	md.node_id = srv->id;
	md.cluster_id = srv->cluster_id;
	md.data = "corebox-etcd-1";
	md.len = strlen("corebox-etcd-1");
	memset(&wo, 0, sizeof(wo));
	wo.dir = srv->wal_dir;
	wo.segment_bytes = srv->cfg.wal_segment_bytes;
	wo.sync_mode = srv->thread_sync ? WAL_SYNC_THREAD : WAL_SYNC_INLINE;
	srv->wal = wal_new(&wo);
	if (srv->wal == NULL)
		fatal("wal", "cannot set up the WAL", "dir=%s", log_q(srv->wal_dir));
	rc = wal_create(srv->wal, &md);
	if (rc != 0)
		fatal("wal", "cannot create the WAL", "err=%s", log_q(wal_errmsg(srv->wal)));

	/* Entry 1, term 1: the conf change adding this member, as raft
	 * bootstraps a new cluster. */
	if (raft_attributes_json(&mine, &ra) != 0)
		fatal("etcdserver", "out of memory", NULL);
	memset(&p, 0, sizeof(p));
	p.op = STORE_OP_MEMBER_ADD;
	p.time_ns = store_now_ns(srv);
	p.member_id = srv->id;
	p.value = ra.data;
	p.value_len = ra.len;
	if (store_proposal_encode(&p, &enc) != 0)
		fatal("etcdserver", "out of memory", NULL);
	memset(&e, 0, sizeof(e));
	e.index = 1;
	e.term = 1;
	e.kind = STORE_ENTRY_CONF_CHANGE;
	e.data = enc.data;
	e.len = enc.len;
	if (wal_append_entries(srv->wal, &e, 1) != 0)
		fatal("wal", "cannot append", "err=%s", log_q(wal_errmsg(srv->wal)));
	memset(&pe, 0, sizeof(pe));
	pe.index = 1;
	pe.data = buf_steal(&enc, &pe.len);
	if (pq_push(&srv->q, &pe) != 0)
		fatal("etcdserver", "out of memory", NULL);
	hs.term = 1;
	hs.vote = 0;
	hs.commit = 1;
	wal_set_hardstate(srv->wal, &hs);
	srv->term = 1;
	buf_free(&ra);
	buf_free(&enc);
	url_list_free(&mine);
}

/* An existing member: snapshot + WAL replay. Exits on any error but a
 * torn tail, which is truncated and logged. */
static void
recover(struct etcd_server *srv)
{
	struct snapfile_data sd;
	struct wal_snapshot ws = { 0, 0 };
	struct wal_replay rp;
	struct wal_options wo;
	char msg[512];
	uint64_t t0 = time_mono_us();
	uint64_t last_term;
	bool loaded_snapshot = false;
	int rc;

	memset(&sd, 0, sizeof(sd));
	rc = snapfile_load_newest(srv->snap_dir, NULL, 0, &sd, log_broken_snapshot, srv, msg, sizeof(msg));
	if (rc == 0) {
		struct tree *t = NULL;

		rc = tree_snapshot_load(sd.data, sd.len, (uint64_t)time_real_ns(), srv->hub, &t, msg, sizeof(msg));
		if (rc != 0)
			fatal("etcdserver", "cannot load snapshot", "file=%s err=%s", log_q(sd.name), log_q(msg));
		tree_free(srv->tree);
		srv->tree = t;
		ws.term = sd.term;
		ws.index = sd.index;
		srv->snap_index = sd.index;
		srv->snap_saved_index = sd.index;
		srv->snap_term = sd.term;
		log_info("etcdserver", "recovered store from snapshot", "index=%" PRIu64 " file=%s", sd.index,
			log_q(sd.name));
		snapfile_data_free(&sd);
		loaded_snapshot = true;
	} else if (rc != -ERR_NOTFOUND) {
		fatal("etcdserver", "cannot read snapshots", "dir=%s err=%s", log_q(srv->snap_dir), log_q(msg));
	}

	memset(&wo, 0, sizeof(wo));
	wo.dir = srv->wal_dir;
	wo.segment_bytes = srv->cfg.wal_segment_bytes;
	wo.sync_mode = srv->thread_sync ? WAL_SYNC_THREAD : WAL_SYNC_INLINE;
	srv->wal = wal_new(&wo);
	if (srv->wal == NULL)
		fatal("wal", "cannot set up the WAL", "dir=%s", log_q(srv->wal_dir));
	rc = wal_open(srv->wal, &ws, &rp);
	if (rc != 0) {
		wal_replay_free(&rp);
		fatal("wal", "cannot open the WAL", "err=%s", log_q(wal_errmsg(srv->wal)));
	}
	if (rp.torn)
		log_warn("wal", "truncated a torn tail", "file=%s offset=%" PRIu64 " detail=%s", log_q(rp.torn_file),
			rp.torn_offset, log_q(rp.notice));
	srv->id = rp.meta.node_id;
	srv->cluster_id = rp.meta.cluster_id;
	if (srv->id == 0)
		fatal("wal", "the WAL metadata names no member", "dir=%s", log_q(srv->wal_dir));
	store_id_str(srv->id, srv->id_str);
	store_id_str(srv->cluster_id, srv->cluster_id_str);
	if (loaded_snapshot)
		members_load_tree(srv);
	log_info("etcdserver", "restarting member", "id=%s cluster=%s commit_index=%" PRIu64, srv->id_str,
		srv->cluster_id_str, rp.last_index);

	srv->applied = ws.index;
	last_term = rp.hs.term > ws.term ? rp.hs.term : ws.term;
	for (size_t i = 0; i < rp.n_entries; i++) {
		const struct wal_entry *e = &rp.entries[i];

		if (e->index != srv->applied + 1)
			fatal("wal", "the WAL has a gap", "want=%" PRIu64 " got=%" PRIu64, srv->applied + 1, e->index);
		apply_entry(srv, e->index, e->data, e->len, NULL);
		if (e->term > last_term)
			last_term = e->term;
	}
	if (rp.last_index > srv->applied)
		srv->applied = rp.last_index; /* a marker beyond the entries */
	srv->term = last_term;
	wal_replay_free(&rp);
	log_info("etcdserver", "replayed the WAL", "entries_applied=%" PRIu64 " store_index=%" PRIu64
		" ms=%" PRIu64, srv->applied - ws.index, tree_index(srv->tree), (time_mono_us() - t0) / 1000);
}

/* The IDs of the members recorded in the store (the children of the
 * internal members directory), into a new array. */
static int
members_list_ids(struct etcd_server *srv, uint64_t **ids, size_t *n)
{
	char key[32];
	struct tree_event ev;
	struct tree_error err = TREE_ERROR_INIT;
	struct buf b = BUF_INIT;
	struct json_doc *doc = NULL;
	const struct json_node *nodes;
	size_t kl = STORE_INTERNAL_DIR_LEN + 8;
	int rc;

	*ids = NULL;
	*n = 0;
	memcpy(key, STORE_INTERNAL_DIR "/members", kl);
	rc = tree_get(srv->tree, key, kl, false, false, &ev, &err);
	tree_error_free(&err);
	if (rc != 0)
		return 0; /* no members directory: no members */
	rc = tree_event_json(&b, &ev, store_now_ns(srv));
	if (rc == 0)
		rc = json_parse(b.data, b.len, NULL, &doc, NULL, 0);
	buf_free(&b);
	if (rc != 0)
		return rc;
	nodes = json_get(json_get(json_doc_root(doc), "node"), "nodes");
	if (nodes != NULL && json_len(nodes) > 0) {
		*ids = mem_calloc(json_len(nodes), sizeof(**ids));
		if (*ids == NULL) {
			json_doc_free(doc);
			return -ERR_NOMEM;
		}
		for (const struct json_node *c = json_first(nodes); c != NULL; c = c->next) {
			const char *k, *slash;
			size_t l;
			uint64_t id = 0;

			if (json_get_str(json_get(c, "key"), &k, &l) != 0)
				continue;
			slash = memrchr(k, '/', l);
			if (slash == NULL)
				continue;
			for (const char *h = slash + 1; h < k + l; h++)
				id = id << 4 | (uint64_t)(*h <= '9' ? *h - '0' : (*h | 0x20) - 'a' + 10);
			(*ids)[(*n)++] = id;
		}
	}
	json_doc_free(doc);
	return 0;
}

/*
 * --force-new-cluster on an existing data dir, as etcd 2.3's
 * restartAsStandaloneNode: every other member is removed and, if the WAL's
 * member is not in the membership (a restored backup has a new ID), it is
 * added with etcd's default peer URL. Through the log, so it is replayed.
 */
static void
force_new_cluster(struct etcd_server *srv)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	bool found = false;
	struct store_proposal p;

	if (members_list_ids(srv, &ids, &n) != 0)
		fatal("etcdserver", "force-new-cluster: cannot read the membership", NULL);
	for (size_t i = 0; i < n; i++) {
		char hex[17];

		if (ids[i] == srv->id) {
			found = true;
			continue;
		}
		memset(&p, 0, sizeof(p));
		p.op = STORE_OP_MEMBER_REMOVE;
		p.time_ns = store_now_ns(srv);
		p.member_id = ids[i];
		if (store_propose(srv, &p, STORE_ENTRY_CONF_CHANGE, NULL, false) != 0)
			fatal("etcdserver", "force-new-cluster: cannot remove a member", NULL);
		store_id_str(ids[i], hex);
		log_info("etcdserver/membership", "removed member", "id=%s cluster=%s", hex, srv->cluster_id_str);
	}
	mem_free(ids);
	if (!found) {
		static const char attrs[] = "{\"peerURLs\":[\"http://localhost:2380\"]}";

		memset(&p, 0, sizeof(p));
		p.op = STORE_OP_MEMBER_ADD;
		p.time_ns = store_now_ns(srv);
		p.member_id = srv->id;
		p.value = attrs;
		p.value_len = sizeof(attrs) - 1;
		if (store_propose(srv, &p, STORE_ENTRY_CONF_CHANGE, NULL, false) != 0)
			fatal("etcdserver", "force-new-cluster: cannot add this member", NULL);
		log_info("etcdserver/membership", "added member", "id=%s peer_urls=http://localhost:2380 cluster=%s",
			srv->id_str, srv->cluster_id_str);
	}
}

/* ------------------------------------------------------------------ */
/* Signals and shutdown                                                */
/* ------------------------------------------------------------------ */

static void
on_signal(struct loop *l, int signo, void *arg)
{
	struct etcd_server *srv = arg;

	(void)l;
	if (srv->stopping)
		return;
	log_notice("etcdmain", "received signal, shutting down", "signal=%s",
		signo == SIGINT ? "interrupt" : "terminated");
	srv->stopping = true;
	http_server_stop_listening(srv->client);
	http_server_stop_listening(srv->peer);
	if (srv->expire_timer != 0) {
		loop_timer_del(srv->loop, srv->expire_timer);
		srv->expire_timer = 0;
	}
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	/* As Go 1.19 does for every program: a watch per connection needs many
	 * descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static size_t
conns_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return 65536;
	if (rl.rlim_cur < 1124)
		return 1024;
	return rl.rlim_cur - 100 > 1000000 ? 1000000 : (size_t)(rl.rlim_cur - 100);
}

static void
flags_note(void *arg, enum flags_note_level level, const char *msg)
{
	(void)arg;
	if (level == FLAGS_NOTE_WARN)
		log_warn("pkg/flags", "environment", "note=%s", log_q(msg));
	else
		log_info("pkg/flags", "environment", "note=%s", log_q(msg));
}

static void
server_free(struct etcd_server *srv)
{
	struct pend *pe;

	if (srv->snap_child > 0) {
		/* A snapshot is optional: the WAL has everything. Its half-written
		 * temporary file is removed at the next start. */
		int status;

		kill(srv->snap_child, SIGKILL);
		while (waitpid(srv->snap_child, &status, 0) < 0 && errno == EINTR)
			;
		srv->snap_child = 0;
	}

	/* Held requests get their close callbacks from http_server_free;
	 * watches are cancelled there. */
	http_server_free(srv->client);
	http_server_free(srv->peer);
	srv->client = srv->peer = NULL;
	while ((pe = pq_front(&srv->q)) != NULL) {
		mem_free(pe->data);
		if (pe->hold != NULL && pe->hold->answer != NULL)
			pe->hold->answer(srv, NULL, NULL, pe->hold->answer_arg);
		store_hold_done(pe->hold);
		pq_pop(&srv->q);
	}
	mem_free(srv->q.v);
	if (srv->ev_cache != NULL)
		tree_event_unref(srv->ev_cache);
	buf_free(&srv->ev_cache_buf);
	if (srv->tree != NULL)
		tree_free(srv->tree);
	if (srv->hub != NULL)
		watch_hub_free(srv->hub);
	wal_close(srv->wal);
	member_free_urls(&srv->member.peer_urls, &srv->member.n_peer);
	member_free_urls(&srv->member.client_urls, &srv->member.n_client);
	mem_free(srv->cluster_version);
	url_list_free(&srv->lpurls);
	url_list_free(&srv->lcurls);
	url_list_free(&srv->apurls);
	url_list_free(&srv->acurls);
	for (size_t i = 0; i < srv->ncors; i++)
		mem_free(srv->cors[i]);
	mem_free(srv->cors);
	mem_free(srv->data_dir);
	mem_free(srv->member_dir);
	mem_free(srv->wal_dir);
	mem_free(srv->snap_dir);
	if (srv->loop != NULL)
		loop_free(srv->loop);
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static const struct flags_set etcd_flagset = {
	.prog = "etcd",
	.usage = etcd_usage,
	.help_text = etcd_help,
	.env_prefix = "ETCD",
	.specs = etcd_specs,
	.nspecs = ETCD_NSPECS,
	.opts = FLAGS_OPT_ENV_WARN_UNKNOWN | FLAGS_OPT_HELP_STDOUT,
};

/* etcd 2.3's config.Parse checks after the flags themselves parsed. */
static int
config_check(struct etcd_server *srv, struct flags_ctx *ctx, char *msg, size_t msgsz)
{
	struct etcd_config *c = &srv->cfg;
	int nboot = 0;
	int rc;

	if (ctx->nargs > 0) {
		snprintf(msg, msgsz, "'%s' is not a valid flag", ctx->args[0]);
		return -ERR_INVAL;
	}
	nboot += flags_is_set(&etcd_flagset, ctx, "discovery");
	nboot += flags_is_set(&etcd_flagset, ctx, "initial-cluster");
	nboot += flags_is_set(&etcd_flagset, ctx, "discovery-srv");
	if (nboot > 1) {
		snprintf(msg, msgsz, "multiple discovery or bootstrap flags are set. Choose one of "
			"\"initial-cluster\", \"discovery\" or \"discovery-srv\"");
		return -ERR_INVAL;
	}
	/* The 0.4-style address flags stand in for the URL flags. */
	struct {
		const char *urls, *addr, *bind;
		const char **uval;
		const char *aval, *bval;
		struct url_list *out;
	} pairs[4] = {
		{ "listen-peer-urls", "peer-bind-addr", "peer-addr", &c->listen_peer_urls, c->peer_bind_addr,
		  c->peer_addr, &srv->lpurls },
		{ "initial-advertise-peer-urls", "peer-addr", NULL, &c->initial_advertise_peer_urls, c->peer_addr,
		  NULL, &srv->apurls },
		{ "listen-client-urls", "bind-addr", "addr", &c->listen_client_urls, c->bind_addr, c->addr,
		  &srv->lcurls },
		{ "advertise-client-urls", "addr", NULL, &c->advertise_client_urls, c->addr, NULL, &srv->acurls },
	};
	char (*addr_urls)[300] = srv->addr_urls;

	for (int i = 0; i < 4; i++) {
		const char *val = *pairs[i].uval;
		bool addr_set = flags_is_set(&etcd_flagset, ctx, pairs[i].addr);

		/* SetBindAddrFromAddr: bind-addr defaults to [::]:port of addr. */
		if (!addr_set && pairs[i].bind != NULL && flags_is_set(&etcd_flagset, ctx, pairs[i].bind) &&
		    pairs[i].bval[0] != '\0') {
			const char *colon = strrchr(pairs[i].bval, ':');

			snprintf(addr_urls[i], sizeof(addr_urls[i]), "http://[::]%s", colon ? colon : ":");
			val = addr_urls[i];
		}
		if (addr_set) {
			if (flags_is_set(&etcd_flagset, ctx, pairs[i].urls)) {
				snprintf(msg, msgsz, "Set only one of flags -%s and -%s", pairs[i].urls, pairs[i].addr);
				return -ERR_INVAL;
			}
			snprintf(addr_urls[i], sizeof(addr_urls[i]), "http://%s", pairs[i].aval);
			val = addr_urls[i];
		}
		rc = url_list_parse(val, pairs[i].out, msg, msgsz);
		if (rc != 0)
			return rc;
	}
	if (strcmp(c->proxy, "off") == 0 && flags_is_set(&etcd_flagset, ctx, "listen-client-urls") &&
	    !flags_is_set(&etcd_flagset, ctx, "advertise-client-urls")) {
		snprintf(msg, msgsz, "-advertise-client-urls is required when -listen-client-urls is set explicitly");
		return -ERR_INVAL;
	}
	if (5 * c->heartbeat_interval > c->election_timeout) {
		snprintf(msg, msgsz, "-election-timeout[%" PRIu64 "ms] should be at least as 5 times as "
			"-heartbeat-interval[%" PRIu64 "ms]", c->election_timeout, c->heartbeat_interval);
		return -ERR_INVAL;
	}
	if (c->election_timeout > 50000) {
		snprintf(msg, msgsz, "-election-timeout[%" PRIu64 "ms] is too long, and should be set less than 50000ms",
			c->election_timeout);
		return -ERR_INVAL;
	}
	return 0;
}

static int
parse_cors(struct etcd_server *srv, bool given)
{
	/* etcd 3.4 allows every origin unless told otherwise (2.3 allowed
	 * none); the reference clients see 3.4's headers. */
	const char *p = given ? srv->cfg.cors : "*";

	while (*p) {
		const char *comma = strchr(p, ',');
		const char *e = comma ? comma : p + strlen(p);
		const char *b = p;
		char **nv;

		while (b < e && *b == ' ')
			b++;
		while (e > b && e[-1] == ' ')
			e--;
		if (e > b) {
			nv = mem_realloc(srv->cors, (srv->ncors + 1) * sizeof(*nv));
			if (nv == NULL)
				return -ERR_NOMEM;
			srv->cors = nv;
			srv->cors[srv->ncors] = mem_strndup(b, (size_t)(e - b));
			if (srv->cors[srv->ncors] == NULL)
				return -ERR_NOMEM;
			if (strcmp(srv->cors[srv->ncors], "*") == 0)
				srv->cors_all = true;
			srv->ncors++;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return 0;
}

static void
listen_all(struct etcd_server *srv, struct http_server *hs, const struct url_list *urls, const char *what)
{
	for (size_t i = 0; i < urls->n; i++) {
		int port = 0;
		int rc = http_listen_url(hs, urls->v[i], &port);

		if (rc != 0) {
			if (rc == -ERR_UNSUPPORTED && strncmp(urls->v[i], "https:", 6) == 0)
				fatal("etcdmain", "TLS is not supported yet", "url=%s", log_q(urls->v[i]));
			fatal("etcdmain", "cannot listen", "url=%s err=%s", log_q(urls->v[i]),
				log_q(http_server_errmsg(hs)));
		}
		log_info("etcdmain", what, "url=%s", log_q(urls->v[i]));
	}
	(void)srv;
}

int
etcd_main(int argc, char **argv)
{
	struct etcd_server *srv;
	struct flags_ctx ctx;
	struct http_limits lim;
	char msg[FLAGS_ERRMSG_BYTES_MAX + 64];
	char lcs[2048], acs[2048], aps[2048];
	int rc, code;

	srv = mem_calloc(1, sizeof(*srv));
	if (srv == NULL) {
		fprintf(stderr, "etcd: out of memory\n");
		return 1;
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.note = flags_note;
	rc = flags_parse(&etcd_flagset, &srv->cfg, argc, argv, &ctx);
	code = -1;
	if (rc == 0 && ctx.help) {
		/* etcd prints its whole flag list for -h, to stdout. */
		flags_print_usage(&etcd_flagset, stdout);
		code = 0;
	} else if (rc != 0 && ctx.exit_code == 2) {
		/* A command-line error: Go's message, then etcd's short usage. */
		fprintf(stderr, "%s\n", ctx.errmsg);
		fputs(etcd_usage, stdout);
		code = 2;
	} else if (rc != 0) {
		/* An environment variable with a bad value: etcd logs it fatally. */
		log_error("etcdmain", "error parsing flags from the environment", "err=%s", log_q(ctx.errmsg));
		code = 1;
	}
	if (code >= 0) {
		flags_free(&etcd_flagset, &srv->cfg);
		mem_free(srv);
		return code;
	}
	if (srv->cfg.version) {
		fputs(applet_find("etcd")->version, stdout);
		flags_free(&etcd_flagset, &srv->cfg);
		mem_free(srv);
		return 0;
	}
	if (srv->cfg.debug)
		log_set_level(LOG_LEVEL_DEBUG);
	if (srv->cfg.log_level[0] != '\0') {
		int lvl = log_level_parse(srv->cfg.log_level);

		if (lvl < 0) {
			log_error("etcdmain", "error verifying flags", "err=%s",
				log_q("unknown --log-level (want debug, info, warn or error)"));
			return 1;
		}
		log_set_level(lvl);
	}
	rc = config_check(srv, &ctx, msg, sizeof(msg));
	if (rc != 0) {
		log_error("etcdmain", "error verifying flags, see 'etcd --help'", "err=%s", log_q(msg));
		if (strstr(msg, "-advertise-client-urls is required") != NULL)
			log_error("etcdmain", "When listening on specific address(es), this etcd process must advertise "
				"accessible url(s) to each connected client.", NULL);
		server_free(srv);
		flags_free(&etcd_flagset, &srv->cfg);
		mem_free(srv);
		return 1;
	}
	for (int i = 0; i < 13; i++)
		if (srv->cfg.ignored[i])
			log_warn("etcdmain", "flag is no longer supported - ignoring", "flag=-%s", ignored_flags[i]);
	if (strcmp(srv->cfg.proxy, "off") != 0)
		fatal("etcdmain", "proxy mode is not supported", "proxy=%s", log_q(srv->cfg.proxy));
	if (parse_cors(srv, flags_is_set(&etcd_flagset, &ctx, "cors")) != 0)
		fatal("etcdmain", "out of memory", NULL);

	snprintf(srv->name, sizeof(srv->name), "%s", srv->cfg.name);
	/* etcd 2.3: a renamed member without --initial-cluster uses its name. */
	if (!flags_is_set(&etcd_flagset, &ctx, "initial-cluster") && strcmp(srv->name, "default") != 0) {
		snprintf(srv->default_cluster, sizeof(srv->default_cluster),
			"%s=http://localhost:2380,%s=http://localhost:7001", srv->name, srv->name);
		srv->cfg.initial_cluster = srv->default_cluster;
	}
	srv->thread_sync = strcmp(srv->cfg.wal_sync, "inline") != 0;
	srv->fork_snapshots = srv->cfg.snapshot_fork != 0;
	if (srv->cfg.wal_segment_bytes == 0)
		srv->cfg.wal_segment_bytes = SERVER_WAL_SEGMENT_BYTES;
	if (srv->cfg.wal_segment_bytes < WAL_SEGMENT_BYTES_MIN)
		srv->cfg.wal_segment_bytes = WAL_SEGMENT_BYTES_MIN;

	/* Paths. */
	if (srv->cfg.data_dir[0] != '\0') {
		srv->data_dir = mem_strdup(srv->cfg.data_dir);
	} else {
		srv->data_dir = mem_alloc(strlen(srv->name) + 6);
		if (srv->data_dir != NULL)
			sprintf(srv->data_dir, "%s.etcd", srv->name);
	}
	if (srv->data_dir == NULL)
		fatal("etcdmain", "out of memory", NULL);
	srv->member_dir = path_join(srv->data_dir, "member");
	srv->wal_dir = srv->cfg.wal_dir[0] ? mem_strdup(srv->cfg.wal_dir) : path_join(srv->member_dir, "wal");
	srv->snap_dir = path_join(srv->member_dir, "snap");

	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	log_info("etcdmain", "etcd Version: " STORE_SERVER_VERSION, "git_sha=corebox-%s", COREBOX_VERSION);
	log_info("etcdmain", "Go OS/Arch: linux/amd64 (corebox is C)", NULL);

	srv->loop = loop_new();
	if (srv->loop == NULL)
		fatal("etcdmain", "cannot create the event loop", NULL);
	/* Signals are blocked (signalfd) before the WAL's helper thread exists,
	 * so that the thread inherits the mask and SIGTERM reaches the loop. */
	if (loop_signal_add(srv->loop, SIGINT, on_signal, srv) != 0 ||
	    loop_signal_add(srv->loop, SIGTERM, on_signal, srv) != 0)
		fatal("etcdmain", "cannot handle signals", NULL);
	/* The WAL sync hook goes first so that answers made by it are flushed
	 * by the http server's own hook in the same turn. */
	if (loop_hook_add(srv->loop, LOOP_BEFORE_SLEEP, before_sleep, srv) != 0)
		fatal("etcdmain", "out of memory", NULL);
	http_limits_default(&lim);
	lim.conns_max = conns_limit();
	/* etcd's v2 API takes form bodies up to Go's 10 MiB and answers larger
	 * ones with error 210 itself: let a little more through to say so. */
	lim.body_bytes_max = SERVER_BODY_BYTES_MAX;
	srv->client = http_server_new(srv->loop, &lim, client_handler, srv);
	srv->peer = http_server_new(srv->loop, &lim, peer_handler, srv);
	if (srv->client == NULL || srv->peer == NULL)
		fatal("etcdmain", "out of memory", NULL);
	http_server_set_log(srv->client, http_logged, srv);

	/* Listeners first, as etcd: the ports are ours before any disk work. */
	listen_all(srv, srv->peer, &srv->lpurls, "listening for peers");
	listen_all(srv, srv->client, &srv->lcurls, "listening for client requests");

	urls_str(&srv->lcurls, lcs, sizeof(lcs));
	urls_str(&srv->acurls, acs, sizeof(acs));
	urls_str(&srv->apurls, aps, sizeof(aps));
	log_info("etcdserver", "config", "name=%s data_dir=%s member_dir=%s heartbeat=%" PRIu64 "ms election=%"
		PRIu64 "ms snapshot_count=%" PRIu64 " advertise_client_urls=%s", log_q(srv->name), log_q(srv->data_dir),
		log_q(srv->member_dir), srv->cfg.heartbeat_interval, srv->cfg.election_timeout,
		srv->cfg.snapshot_count, log_q(acs));

	srv->hub = watch_hub_new(0);
	srv->tree = tree_new((uint64_t)time_real_ns() ^ (uint64_t)getpid() << 32, srv->hub);
	if (srv->hub == NULL || srv->tree == NULL)
		fatal("etcdmain", "out of memory", NULL);
	if (mkdir_p(srv->data_dir, 0700) != 0 || mkdir_p(srv->member_dir, 0700) != 0 ||
	    mkdir_p(srv->snap_dir, 0700) != 0)
		fatal("etcdmain", "cannot create data dir", "dir=%s err=%s", log_q(srv->data_dir),
			log_q(strerror(errno)));
	if (access(srv->data_dir, W_OK) != 0)
		fatal("etcdmain", "cannot access data directory", "dir=%s err=%s", log_q(srv->data_dir),
			log_q(strerror(errno)));

	srv->self.start_ns = store_now_ns(srv);
	srv->fsync_hist.bounds = fsync_bounds;
	srv->fsync_hist.n = sizeof(fsync_bounds) / sizeof(fsync_bounds[0]);
	srv->fsync_hist.counts = srv->fsync_hist_counts;
	for (int m = 0; m < N_METHODS; m++) {
		srv->http_hist[m].bounds = http_bounds;
		srv->http_hist[m].n = sizeof(http_bounds) / sizeof(http_bounds[0]);
		srv->http_hist[m].counts = srv->http_hist_counts[m];
	}

	bool fresh = !wal_exists(srv->wal_dir);

	if (fresh) {
		log_info("etcdserver", "initial cluster", "initial_advertise_peer_urls=%s initial_cluster=%s",
			log_q(aps), log_q(srv->cfg.initial_cluster));
		bootstrap_new(srv);
		store_id_str(srv->id, srv->id_str);
		store_id_str(srv->cluster_id, srv->cluster_id_str);
		log_info("etcdserver", "starting member", "id=%s cluster=%s", srv->id_str, srv->cluster_id_str);
		log_info("etcdserver/membership", "added member", "id=%s peer_urls=%s cluster=%s", srv->id_str,
			log_q(aps), srv->cluster_id_str);
	} else {
		log_notice("etcdmain", "the server is already initialized as member before, starting as etcd member...",
			NULL);
		recover(srv);
	}

	/* Take office: a new term, as raft's election would give. */
	srv->term++;
	{
		struct wal_hardstate hs = { srv->term, srv->id, wal_last_index(srv->wal) };

		if (wal_set_hardstate(srv->wal, &hs) != 0)
			fatal("wal", "cannot record the term", "err=%s", log_q(wal_errmsg(srv->wal)));
	}
	if (!fresh && srv->cfg.force_new_cluster)
		force_new_cluster(srv);
	srv->self.leader_start_ns = store_now_ns(srv);
	log_info("raft", "became leader", "id=%s term=%" PRIu64, srv->id_str, srv->term);
	propose_startup(srv, srv->cluster_version == NULL);
	/* Make the start-up entries durable and applied before the first
	 * client is served, so that membership, the cluster version and the
	 * store index are settled when the first answer goes out. */
	{
		uint64_t durable;

		srv->sync_start_us = time_mono_us();
		srv->syncs_started++;
		if (wal_sync(srv->wal, &durable) != 0)
			sync_failed(srv, -ERR_IO);
		sync_finished(srv, durable);
	}
	if (srv->thread_sync) {
		int fd = wal_sync_fd(srv->wal);

		if (fd < 0 || loop_fd_add(srv->loop, fd, LOOP_READ, sync_fd_ready, srv) != 0)
			fatal("wal", "cannot watch the sync eventfd", NULL);
	}
	rearm_expiry(srv);
	log_info("etcdserver", "published", "name=%s client_urls=%s cluster=%s", log_q(srv->name), log_q(acs),
		srv->cluster_id_str);
	log_info("etcdmain", "ready to serve client requests", NULL);
	log_notice("etcdmain", "serving insecure client requests, this is strongly discouraged!", "urls=%s", log_q(lcs));

	rc = loop_run(srv->loop);
	if (rc != 0)
		log_error("etcdmain", "event loop failed", "err=%s", log_q(err_str(rc)));

	/* Graceful stop: every entry is durable and applied (before_sleep only
	 * stops the loop then); give the answers a few bounded turns to go out
	 * before the connections are closed. */
	{
		uint64_t until = time_mono_ms() + SHUTDOWN_FLUSH_MS;

		for (int i = 0; i < 5 && time_mono_ms() < until; i++)
			loop_run_once(srv->loop, 10);
	}
	log_info("etcdmain", "stopped", "applied_index=%" PRIu64, srv->applied);
	/* Watches end with their connections. */
	server_free(srv);
	flags_free(&etcd_flagset, &srv->cfg);
	mem_free(srv);
	return rc != 0 ? 1 : 0;
}
