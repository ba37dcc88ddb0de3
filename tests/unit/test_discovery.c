/* Unit tests for store/discovery: the pure parts (URL parsing, size keys,
 * registration values, listings, selection, initial-cluster strings, error
 * texts), the client against a scripted fake discovery service on the same
 * loop (exact requests, retries with back-off, hostile bodies, every error
 * path, cancellation), and the client against real stores started here:
 * Debian's etcd (--enable-v2) and corebox's own etcd applet from this build
 * directory, each skipped with the reason when it cannot run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "corebox/buf.h"
#include "corebox/discovery.h"
#include "corebox/err.h"
#include "corebox/http.h"
#include "corebox/log.h"
#include "corebox/loop.h"
#include "corebox/mem.h"

/* Bounds for this file: no test waits longer, no loop spins forever. */
#define RUN_DEADLINE_MS 15000
#define SERVER_READY_MS 15000

/* ------------------------------------------------------------------ */
/* Pure helpers                                                        */
/* ------------------------------------------------------------------ */

static void
test_error_texts(void **state)
{
	(void)state;
	/* etcd 2.3 discovery.go's texts, byte for byte. */
	assert_string_equal(discovery_code_str(DISCOVERY_ERR_INVALID_URL), "discovery: invalid URL");
	assert_string_equal(discovery_code_str(DISCOVERY_ERR_BAD_SIZE_KEY), "discovery: size key is bad");
	assert_string_equal(discovery_code_str(DISCOVERY_ERR_SIZE_NOT_FOUND), "discovery: size key not found");
	assert_string_equal(discovery_code_str(DISCOVERY_ERR_TOKEN_NOT_FOUND), "discovery: token not found");
	assert_string_equal(discovery_code_str(DISCOVERY_ERR_DUPLICATE_ID), "discovery: found duplicate id");
	assert_string_equal(discovery_code_str(DISCOVERY_ERR_DUPLICATE_NAME), "discovery: found duplicate name");
	assert_string_equal(discovery_code_str(DISCOVERY_ERR_FULL_CLUSTER), "discovery: cluster is full");
	assert_string_equal(discovery_code_str(DISCOVERY_ERR_TOO_MANY_RETRIES), "discovery: too many retries");
	assert_string_equal(discovery_code_str(DISCOVERY_ERR_BAD_ENDPOINT), "discovery: bad discovery endpoint");
	assert_string_equal(discovery_code_str(DISCOVERY_OK), "");
	assert_string_equal(discovery_code_str(-1), "unknown error");
	assert_string_equal(discovery_code_str(DISCOVERY_CODE_COUNT_), "unknown error");
	assert_string_equal(discovery_code_name(DISCOVERY_ERR_FULL_CLUSTER), "DISCOVERY_ERR_FULL_CLUSTER");
}

static void
test_url_parse(void **state)
{
	struct discovery_url u;
	char msg[256], longurl[DISCOVERY_PATH_BYTES_MAX + 20];

	(void)state;
	assert_int_equal(discovery_url_parse("http://127.0.0.1:2379/v2/keys/_etcd/registry/abc", &u, msg,
		sizeof(msg)), 0);
	assert_string_equal(u.endpoint, "http://127.0.0.1:2379");
	assert_string_equal(u.prefix, "/v2/keys/_etcd/registry/abc");
	assert_string_equal(u.token, "abc");
	/* Trailing and doubled slashes, dot segments: path.Clean. */
	assert_int_equal(discovery_url_parse("http://h:1//v2/keys/./x/../_etcd/registry/t0k/", &u, NULL, 0), 0);
	assert_string_equal(u.endpoint, "http://h:1");
	assert_string_equal(u.prefix, "/v2/keys/_etcd/registry/t0k");
	assert_string_equal(u.token, "t0k");
	/* A masked URL (discovery.etcd.io style): the whole path is the prefix. */
	assert_int_equal(discovery_url_parse("http://[::1]:8087/3e86b59982e49066", &u, NULL, 0), 0);
	assert_string_equal(u.endpoint, "http://[::1]:8087");
	assert_string_equal(u.prefix, "/3e86b59982e49066");
	assert_string_equal(u.token, "3e86b59982e49066");
	assert_int_equal(discovery_url_parse("HTTP://example.com/tok", &u, NULL, 0), 0);
	assert_string_equal(u.endpoint, "HTTP://example.com");

	assert_int_equal(discovery_url_parse("https://discovery.etcd.io/abc", &u, msg, sizeof(msg)),
		-ERR_UNSUPPORTED);
	assert_non_null(strstr(msg, "https"));
	assert_int_equal(discovery_url_parse("http://h:1", &u, msg, sizeof(msg)), -ERR_PARSE);
	assert_non_null(strstr(msg, "token"));
	assert_int_equal(discovery_url_parse("http://h:1/", &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse("http://h:1/..", &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse("ftp://h/x", &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse("h:1/x", &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse("", &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse(NULL, &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse("http://h:1/x?y=1", &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse("http://h:1/x#f", &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse("http://u:p@h:1/x", &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse("http://h:1/a b", &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse("http://h:1/a\nb", &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse("http://h:99999/x", &u, NULL, 0), -ERR_PARSE);
	assert_int_equal(discovery_url_parse("http://:1/x", &u, NULL, 0), -ERR_PARSE);
	memset(longurl, 'a', sizeof(longurl) - 1);
	longurl[sizeof(longurl) - 1] = '\0';
	memcpy(longurl, "http://h:1/", 11);
	assert_int_equal(discovery_url_parse(longurl, &u, NULL, 0), -ERR_LIMIT);
}

static void
test_parse_size(void **state)
{
	int64_t n = 0;

	(void)state;
	assert_int_equal(discovery_parse_size("3", 1, &n), DISCOVERY_OK);
	assert_int_equal(n, 3);
	assert_int_equal(discovery_parse_size("+5", 2, &n), DISCOVERY_OK);
	assert_int_equal(n, 5);
	assert_int_equal(discovery_parse_size("0007", 4, &n), DISCOVERY_OK);
	assert_int_equal(n, 7);
	assert_int_equal(discovery_parse_size("1024", 4, &n), DISCOVERY_OK);
	n = 99;
	assert_int_equal(discovery_parse_size("1025", 4, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_int_equal(n, 99);
	assert_int_equal(discovery_parse_size("0", 1, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_int_equal(discovery_parse_size("-3", 2, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_int_equal(discovery_parse_size("", 0, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_int_equal(discovery_parse_size("+", 1, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_int_equal(discovery_parse_size("3 ", 2, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_int_equal(discovery_parse_size(" 3", 2, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_int_equal(discovery_parse_size("3.0", 3, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_int_equal(discovery_parse_size("1_0", 3, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_int_equal(discovery_parse_size("0x3", 3, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_int_equal(discovery_parse_size("abc", 3, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_int_equal(discovery_parse_size("99999999999999999999999", 23, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
	/* The length counts, not the NUL. */
	assert_int_equal(discovery_parse_size("3\0" "4", 3, &n), DISCOVERY_ERR_BAD_SIZE_KEY);
}

static void
test_self_value(void **state)
{
	const char *one[] = { "http://192.0.2.10:2380" };
	const char *two[] = { "HTTP://192.0.2.10:7001", "http://192.0.2.10:2380" };
	const char *bad[] = { "http://a:1,http://b:2" };
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(discovery_self_value("infra0", one, 1, &b), 0);
	assert_string_equal(buf_cstr(&b), "infra0=http://192.0.2.10:2380");
	buf_reset(&b);
	/* URLsMap.String(): pairs sorted, scheme lower-cased. */
	assert_int_equal(discovery_self_value("infra0", two, 2, &b), 0);
	assert_string_equal(buf_cstr(&b), "infra0=http://192.0.2.10:2380,infra0=http://192.0.2.10:7001");
	buf_reset(&b);
	assert_int_equal(discovery_self_value("", one, 1, &b), -ERR_INVAL);
	assert_int_equal(discovery_self_value("a=b", one, 1, &b), -ERR_INVAL);
	assert_int_equal(discovery_self_value("a,b", one, 1, &b), -ERR_INVAL);
	assert_int_equal(discovery_self_value("a", one, 0, &b), -ERR_INVAL);
	assert_int_equal(discovery_self_value("a", bad, 1, &b), -ERR_INVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static const char LISTING[] =
	"{\"action\":\"get\",\"node\":{\"key\":\"/_etcd/registry/tok\",\"dir\":true,\"nodes\":["
	"{\"key\":\"/_etcd/registry/tok/c\",\"value\":\"n3=http://127.0.0.1:3\",\"modifiedIndex\":9,\"createdIndex\":9},"
	"{\"key\":\"/_etcd/registry/tok/_config\",\"dir\":true,\"modifiedIndex\":4,\"createdIndex\":4},"
	"{\"key\":\"/_etcd/registry/tok/a\",\"value\":\"n1=http://127.0.0.1:1\",\"modifiedIndex\":5,\"createdIndex\":5},"
	"{\"key\":\"/_etcd/registry/tok/b\",\"value\":\"n2=http://127.0.0.1:2\",\"modifiedIndex\":7,\"createdIndex\":7}"
	"],\"modifiedIndex\":4,\"createdIndex\":4}}";

static void
test_nodes_parse_sort_check(void **state)
{
	struct discovery_nodes ns = { NULL, 0, 0 };
	char *dk = NULL, msg[256];
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(discovery_nodes_parse(LISTING, strlen(LISTING), &ns, &dk, msg, sizeof(msg)), DISCOVERY_OK);
	assert_string_equal(dk, "/_etcd/registry/tok");
	assert_int_equal(ns.n, 3); /* _config skipped */
	discovery_nodes_sort(&ns);
	assert_string_equal(ns.v[0].key, "/_etcd/registry/tok/a");
	assert_string_equal(ns.v[1].key, "/_etcd/registry/tok/b");
	assert_string_equal(ns.v[2].key, "/_etcd/registry/tok/c");
	assert_int_equal(ns.v[2].created_index, 9);
	assert_int_equal(discovery_nodes_find(&ns, "b"), 1);
	assert_int_equal(discovery_nodes_find(&ns, "zz"), -1);

	/* Self among the first size, or fewer than size registered: fine. */
	assert_int_equal(discovery_nodes_check(&ns, 3, "c"), DISCOVERY_OK);
	assert_int_equal(discovery_nodes_check(&ns, 2, "b"), DISCOVERY_OK);
	assert_int_equal(discovery_nodes_check(&ns, 5, "new"), DISCOVERY_OK);
	/* size others registered before self, or self missing from a full list. */
	assert_int_equal(discovery_nodes_check(&ns, 2, "c"), DISCOVERY_ERR_FULL_CLUSTER);
	assert_int_equal(discovery_nodes_check(&ns, 3, "new"), DISCOVERY_ERR_FULL_CLUSTER);
	assert_int_equal(discovery_nodes_check(&ns, 1, "b"), DISCOVERY_ERR_FULL_CLUSTER);

	/* Registration order, values joined. */
	assert_int_equal(discovery_nodes_to_cluster(&ns, 3, 3, &b), DISCOVERY_OK);
	assert_string_equal(buf_cstr(&b), "n1=http://127.0.0.1:1,n2=http://127.0.0.1:2,n3=http://127.0.0.1:3");
	buf_reset(&b);
	assert_int_equal(discovery_nodes_to_cluster(&ns, 2, 2, &b), DISCOVERY_OK);
	assert_string_equal(buf_cstr(&b), "n1=http://127.0.0.1:1,n2=http://127.0.0.1:2");
	buf_reset(&b);
	/* Fewer names than size: the cluster cannot be built. */
	assert_int_equal(discovery_nodes_to_cluster(&ns, 2, 3, &b), DISCOVERY_ERR_DUPLICATE_NAME);
	buf_free(&b);
	mem_free(dk);
	discovery_nodes_free(&ns);
	assert_null(ns.v);
	assert_int_equal(ns.n, 0);
}

/* Builds a node list from "key|value|createdIndex" strings. */
static void
nodes_make(struct discovery_nodes *ns, const char *const *spec, size_t n)
{
	struct buf body = BUF_INIT;
	char msg[256];

	buf_puts(&body, "{\"node\":{\"key\":\"/t\",\"dir\":true,\"nodes\":[");
	for (size_t i = 0; i < n; i++) {
		const char *bar1 = strchr(spec[i], '|');
		const char *bar2 = bar1 != NULL ? strchr(bar1 + 1, '|') : NULL;
		unsigned ci;

		assert_non_null(bar2);
		ci = (unsigned)strtoul(bar2 + 1, NULL, 10);
		buf_printf(&body, "%s{\"key\":\"/t/%.*s\",\"value\":\"%.*s\",\"createdIndex\":%u,\"modifiedIndex\":%u}",
			i ? "," : "", (int)(bar1 - spec[i]), spec[i], (int)(bar2 - bar1 - 1), bar1 + 1, ci, ci);
	}
	buf_puts(&body, "]}}");
	assert_int_equal(discovery_nodes_parse(body.data, body.len, ns, NULL, msg, sizeof(msg)), DISCOVERY_OK);
	discovery_nodes_sort(ns);
	buf_free(&body);
}

static void
test_nodes_to_cluster_errors(void **state)
{
	const char *dupname[] = { "a|x=http://h:1|1", "b|x=http://h:2|2", "c|y=http://h:3|3" };
	const char *multi[] = { "a|x=http://h:1,x=http://h:11|1", "b|y=http://h:2|2" };
	const char *badurl[] = { "a|x=http://h:1|1", "b|y=ftp://h:2|2" };
	const char *nopath[] = { "a|x=http://h:1/p|1" };
	const char *noport[] = { "a|x=http://h|1" };
	const char *badport[] = { "a|x=http://h:abc|1" };
	const char *spaces[] = { "a|x= http://h:1 |1" };
	const char *v6[] = { "a|x=http://[::1]:1|1" };
	const char *empty[] = { "a||1", "b|y=http://h:2|2" };
	struct discovery_nodes ns = { NULL, 0, 0 };
	struct buf b = BUF_INIT;

	(void)state;
	nodes_make(&ns, dupname, 3);
	assert_int_equal(discovery_nodes_to_cluster(&ns, 3, 3, &b), DISCOVERY_ERR_DUPLICATE_NAME);
	/* The joined string is there even on failure (etcd returns it too). */
	assert_string_equal(buf_cstr(&b), "x=http://h:1,x=http://h:2,y=http://h:3");
	discovery_nodes_free(&ns);
	buf_reset(&b);

	/* One member with two URLs is one name. */
	nodes_make(&ns, multi, 2);
	assert_int_equal(discovery_nodes_to_cluster(&ns, 2, 2, &b), DISCOVERY_OK);
	assert_string_equal(buf_cstr(&b), "x=http://h:1,x=http://h:11,y=http://h:2");
	discovery_nodes_free(&ns);
	buf_reset(&b);

	nodes_make(&ns, badurl, 2);
	assert_int_equal(discovery_nodes_to_cluster(&ns, 2, 2, &b), DISCOVERY_ERR_INVALID_URL);
	discovery_nodes_free(&ns);
	buf_reset(&b);
	nodes_make(&ns, nopath, 1);
	assert_int_equal(discovery_nodes_to_cluster(&ns, 1, 1, &b), DISCOVERY_ERR_INVALID_URL);
	discovery_nodes_free(&ns);
	buf_reset(&b);
	nodes_make(&ns, noport, 1);
	assert_int_equal(discovery_nodes_to_cluster(&ns, 1, 1, &b), DISCOVERY_ERR_INVALID_URL);
	discovery_nodes_free(&ns);
	buf_reset(&b);
	nodes_make(&ns, badport, 1);
	assert_int_equal(discovery_nodes_to_cluster(&ns, 1, 1, &b), DISCOVERY_ERR_INVALID_URL);
	discovery_nodes_free(&ns);
	buf_reset(&b);
	/* strings.TrimSpace around each URL. */
	nodes_make(&ns, spaces, 1);
	assert_int_equal(discovery_nodes_to_cluster(&ns, 1, 1, &b), DISCOVERY_OK);
	discovery_nodes_free(&ns);
	buf_reset(&b);
	nodes_make(&ns, v6, 1);
	assert_int_equal(discovery_nodes_to_cluster(&ns, 1, 1, &b), DISCOVERY_OK);
	discovery_nodes_free(&ns);
	buf_reset(&b);
	/* An empty registration adds no name. */
	nodes_make(&ns, empty, 2);
	assert_int_equal(discovery_nodes_to_cluster(&ns, 2, 2, &b), DISCOVERY_ERR_DUPLICATE_NAME);
	discovery_nodes_free(&ns);
	buf_free(&b);
}

static void
test_cluster_urls(void **state)
{
	char **urls = NULL, msg[256];
	size_t n = 0;

	(void)state;
	assert_int_equal(discovery_cluster_urls("b=http://h:2,a=HTTP://h:9,a=http://h:1", &urls, &n, msg,
		sizeof(msg)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(urls[0], "http://h:1");
	assert_string_equal(urls[1], "http://h:2");
	assert_string_equal(urls[2], "http://h:9");
	discovery_urls_free(urls, n);
	assert_int_equal(discovery_cluster_urls("a=http://h:1,b=h:2", &urls, &n, msg, sizeof(msg)), -ERR_PARSE);
	assert_string_equal(msg, "URL scheme must be http or https: h:2");
	assert_null(urls);
	assert_int_equal(n, 0);
	assert_int_equal(discovery_cluster_urls("", &urls, &n, msg, sizeof(msg)), 0);
	assert_int_equal(n, 0);
	discovery_urls_free(urls, n);
}

static void
expect_bad_listing(const char *body)
{
	struct discovery_nodes ns = { NULL, 0, 0 };
	char msg[256], *dk = (char *)"untouched";

	assert_int_equal(discovery_nodes_parse(body, strlen(body), &ns, &dk, msg, sizeof(msg)),
		DISCOVERY_ERR_BAD_ENDPOINT);
	assert_true(msg[0] != '\0');
	assert_null(dk);
	assert_int_equal(ns.n, 0);
}

static void
test_nodes_parse_hostile(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	expect_bad_listing("");
	expect_bad_listing("not json");
	expect_bad_listing("[]");
	expect_bad_listing("{}");
	expect_bad_listing("{\"node\":7}");
	expect_bad_listing("{\"node\":{\"key\":5}}");
	expect_bad_listing("{\"node\":{\"nodes\":{}}}");
	expect_bad_listing("{\"node\":{\"nodes\":[1]}}");
	expect_bad_listing("{\"node\":{\"nodes\":[{\"value\":\"x\"}]}}");
	expect_bad_listing("{\"node\":{\"nodes\":[{\"key\":\"/t/a\",\"value\":3}]}}");
	expect_bad_listing("{\"node\":{\"nodes\":[{\"key\":\"/t/a\",\"createdIndex\":-1}]}}");
	expect_bad_listing("{\"node\":{\"nodes\":[{\"key\":\"/t/a\",\"createdIndex\":1.5}]}}");
	expect_bad_listing("{\"node\":{\"nodes\":[{\"key\":\"/t/a\",\"dir\":\"yes\"}]}}");
	expect_bad_listing("{\"node\":{\"nodes\":[{\"key\":\"/t/a\\u0000b\"}]}}");
	expect_bad_listing("{\"node\":{\"key\":\"/t\"}} trailing");
	/* Too deep. */
	for (int i = 0; i < 40; i++)
		buf_puts(&b, "{\"node\":");
	buf_puts(&b, "1");
	for (int i = 0; i < 40; i++)
		buf_putc(&b, '}');
	expect_bad_listing(buf_cstr(&b));
	/* Too many registrations. */
	buf_reset(&b);
	buf_puts(&b, "{\"node\":{\"key\":\"/t\",\"nodes\":[");
	for (int i = 0; i <= DISCOVERY_NODES_MAX; i++)
		buf_printf(&b, "%s{\"key\":\"/t/%x\"}", i ? "," : "", i);
	buf_puts(&b, "]}}");
	expect_bad_listing(buf_cstr(&b));
	/* A string over the limit. */
	buf_reset(&b);
	buf_puts(&b, "{\"node\":{\"key\":\"/t\",\"nodes\":[{\"key\":\"/t/a\",\"value\":\"");
	for (size_t i = 0; i <= DISCOVERY_STRING_BYTES_MAX; i++)
		buf_putc(&b, 'v');
	buf_puts(&b, "\"}]}}");
	expect_bad_listing(buf_cstr(&b));
	buf_free(&b);

	/* Absent or null nodes: an empty directory, not an error. */
	{
		struct discovery_nodes ns = { NULL, 0, 0 };
		const char *e1 = "{\"node\":{\"key\":\"/t\",\"dir\":true}}";
		const char *e2 = "{\"node\":{\"key\":\"/t\",\"nodes\":null}}";

		assert_int_equal(discovery_nodes_parse(e1, strlen(e1), &ns, NULL, NULL, 0), DISCOVERY_OK);
		assert_int_equal(discovery_nodes_parse(e2, strlen(e2), &ns, NULL, NULL, 0), DISCOVERY_OK);
		assert_int_equal(ns.n, 0);
		discovery_nodes_free(&ns);
	}
}

/* Every allocation failure leaves the list as it was and leaks nothing (ASan checks). */
static void
test_nodes_parse_alloc_failures(void **state)
{
	int ok = 0;

	(void)state;
	for (long n = 0; n < 400 && !ok; n++) {
		struct discovery_nodes ns = { NULL, 0, 0 };
		char *dk = NULL, msg[256];
		int rc;

		mem_fail_after(n);
		rc = discovery_nodes_parse(LISTING, strlen(LISTING), &ns, &dk, msg, sizeof(msg));
		mem_fail_reset();
		if (rc == DISCOVERY_OK) {
			assert_int_equal(ns.n, 3);
			ok = 1;
		} else {
			assert_int_equal(rc, DISCOVERY_ERR_OTHER);
			assert_int_equal(ns.n, 0);
			assert_null(dk);
		}
		mem_free(dk);
		discovery_nodes_free(&ns);
	}
	assert_true(ok);
}

/* ------------------------------------------------------------------ */
/* Running discoveries on a loop                                       */
/* ------------------------------------------------------------------ */

struct res {
	bool done;
	int calls;
	int code;
	unsigned retries;
	char cluster[2048];
	char errmsg[DISCOVERY_ERRMSG_BYTES];
	bool free_in_cb;
};

static void
on_result(struct discovery *d, const struct discovery_result *r, void *arg)
{
	struct res *res = arg;

	res->done = true;
	res->calls++;
	res->code = r->code;
	res->retries = discovery_retries(d);
	snprintf(res->cluster, sizeof(res->cluster), "%s", r->cluster ? r->cluster : "(null)");
	snprintf(res->errmsg, sizeof(res->errmsg), "%s", r->errmsg);
	if (res->free_in_cb)
		discovery_free(d);
}

/* Runs l until every res[i] is done or the deadline passes (which fails the test). */
static void
run_until(struct loop *l, struct res **rs, size_t n, uint64_t deadline_ms)
{
	uint64_t end = time_mono_ms() + deadline_ms;

	for (;;) {
		size_t done = 0;

		for (size_t i = 0; i < n; i++)
			done += rs[i]->done;
		if (done == n)
			return;
		if (time_mono_ms() >= end)
			fail_msg("discovery did not finish within %" PRIu64 " ms", deadline_ms);
		assert_int_equal(loop_run_once(l, 50), 0);
	}
}

/* Runs l for ms milliseconds, whatever happens. */
static void
run_for(struct loop *l, uint64_t ms)
{
	uint64_t end = time_mono_ms() + ms;

	while (time_mono_ms() < end)
		assert_int_equal(loop_run_once(l, 10), 0);
}

/* Runs l until cond holds; a test that waits longer than RUN_DEADLINE_MS fails. */
#define RUN_UNTIL(l, cond) \
	do { \
		uint64_t end_ = time_mono_ms() + RUN_DEADLINE_MS; \
		while (!(cond)) { \
			if (time_mono_ms() >= end_) \
				fail_msg("timed out waiting for %s", #cond); \
			assert_int_equal(loop_run_once((l), 20), 0); \
		} \
	} while (0)

static void
quick_config(struct discovery_config *c, const char *url)
{
	discovery_config_default(c);
	c->url = url;
	c->request_timeout_ms = 2000;
	c->connect_timeout_ms = 1000;
	c->watch_timeout_ms = 5000;
	c->retries_max = 3;
	c->backoff_ms = 2;
	c->backoff_max_ms = 20;
}

static int
free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* ------------------------------------------------------------------ */
/* A scripted fake discovery service                                   */
/* ------------------------------------------------------------------ */

struct fake;
typedef bool fake_fn(struct fake *f, struct http_req *req);

/*
 * A tiny etcd for one token (/v2/keys/_etcd/registry/tok): _config/size,
 * the listing, prevExist=false creates, and watches answered from the
 * registrations (held when there is nothing new). Tests override single
 * requests with a hook that returns true when it answered.
 */
struct fake {
	struct loop *l;
	struct http_server *s;
	int port;
	char url[128];
	struct buf log;          /* "METHOD target body\n" per request */
	int nreq;
	int nsize, ndir, nput, nwatch;
	const char *size_value;  /* NULL: the size key does not exist */
	bool no_token;           /* the token directory does not exist */
	struct {
		char id[32];
		char value[256];
		uint64_t index;
	} regs[16];
	size_t nregs;
	uint64_t index;          /* X-Etcd-Index */
	struct http_req *held[8]; /* long polls waiting for a registration */
	uint64_t held_wait[8];
	size_t nheld;
	fake_fn *hook;
	int scratch;
};

static void
fake_reply(struct fake *f, struct http_req *req, int status, const char *body)
{
	assert_int_equal(http_resp_start(req, status, NULL), 0);
	http_resp_header(req, "Content-Type", "application/json");
	http_resp_headerf(req, "X-Etcd-Index", "%" PRIu64, f->index);
	http_resp_body(req, body, strlen(body));
}

static void
fake_event(struct fake *f, struct http_req *req, size_t i)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"action\":\"create\",\"node\":{\"key\":\"/_etcd/registry/tok/%s\","
		"\"value\":\"%s\",\"modifiedIndex\":%" PRIu64 ",\"createdIndex\":%" PRIu64 "}}",
		f->regs[i].id, f->regs[i].value, f->regs[i].index, f->regs[i].index);
	fake_reply(f, req, 200, body);
}

static void
fake_unhold(struct fake *f, size_t i)
{
	f->nheld--;
	f->held[i] = f->held[f->nheld];
	f->held_wait[i] = f->held_wait[f->nheld];
}

static void
fake_held_closed(struct http_req *req, void *arg)
{
	struct fake *f = arg;

	for (size_t i = 0; i < f->nheld; i++)
		if (f->held[i] == req) {
			fake_unhold(f, i);
			return;
		}
	fail_msg("closed request was not held");
}

/* Adds a registration and wakes a held watch that wants it. */
static void
fake_register(struct fake *f, const char *id, const char *value)
{
	assert_true(f->nregs < 16);
	snprintf(f->regs[f->nregs].id, sizeof(f->regs[0].id), "%s", id);
	snprintf(f->regs[f->nregs].value, sizeof(f->regs[0].value), "%s", value);
	f->regs[f->nregs].index = ++f->index;
	f->nregs++;
	for (size_t i = 0; i < f->nheld;) {
		if (f->held_wait[i] <= f->index) {
			struct http_req *h = f->held[i];

			fake_unhold(f, i);
			fake_event(f, h, f->nregs - 1);
		} else {
			i++;
		}
	}
}

static void
fake_listing(struct fake *f, struct http_req *req)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, "{\"action\":\"get\",\"node\":{\"key\":\"/_etcd/registry/tok\",\"dir\":true,\"nodes\":["
		"{\"key\":\"/_etcd/registry/tok/_config\",\"dir\":true,\"modifiedIndex\":1,\"createdIndex\":1}");
	for (size_t i = 0; i < f->nregs; i++)
		buf_printf(&b, ",{\"key\":\"/_etcd/registry/tok/%s\",\"value\":\"%s\",\"modifiedIndex\":%" PRIu64
			",\"createdIndex\":%" PRIu64 "}", f->regs[i].id, f->regs[i].value, f->regs[i].index,
			f->regs[i].index);
	buf_puts(&b, "],\"modifiedIndex\":1,\"createdIndex\":1}}");
	fake_reply(f, req, 200, buf_cstr(&b));
	buf_free(&b);
}

static void
fake_handler(struct http_req *req, void *arg)
{
	struct fake *f = arg;
	const char *base = "/v2/keys/_etcd/registry/tok";
	size_t bl = strlen(base);
	const char *rest;

	f->nreq++;
	buf_printf(&f->log, "%s %s%s%s%s%s\n", req->method, req->path_raw, req->has_query ? "?" : "",
		req->query_raw, req->body_len ? " " : "", req->body);
	if (strncmp(req->path, base, bl) != 0) {
		fake_reply(f, req, 404, "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/x\",\"index\":1}");
		return;
	}
	rest = req->path + bl;
	if (strcmp(rest, "/_config/size") == 0)
		f->nsize++;
	else if (rest[0] == '\0' && http_req_value(req, HTTP_SRC_QUERY, "wait") != NULL)
		f->nwatch++;
	else if (rest[0] == '\0')
		f->ndir++;
	else if (req->method_id == HTTP_PUT)
		f->nput++;
	if (f->hook != NULL && f->hook(f, req))
		return;
	if (strcmp(rest, "/_config/size") == 0) {
		char body[256];

		if (f->size_value == NULL || f->no_token) {
			fake_reply(f, req, 404, f->no_token ?
				"{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/_etcd/registry/tok\",\"index\":1}" :
				"{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/_etcd/registry/tok/_config\",\"index\":1}");
			return;
		}
		snprintf(body, sizeof(body), "{\"action\":\"get\",\"node\":{\"key\":\"/_etcd/registry/tok/_config/size\","
			"\"value\":\"%s\",\"modifiedIndex\":2,\"createdIndex\":2}}", f->size_value);
		fake_reply(f, req, 200, body);
		return;
	}
	if (rest[0] == '\0' && http_req_value(req, HTTP_SRC_QUERY, "wait") != NULL) {
		const char *wi = http_req_value(req, HTTP_SRC_QUERY, "waitIndex");
		uint64_t want = wi ? strtoull(wi, NULL, 10) : 0;

		for (size_t i = 0; i < f->nregs; i++)
			if (f->regs[i].index >= want) {
				fake_event(f, req, i);
				return;
			}
		assert_true(f->nheld < 8);
		f->held[f->nheld] = req;
		f->held_wait[f->nheld] = want;
		f->nheld++;
		http_req_hold(req, fake_held_closed, f);
		return;
	}
	if (rest[0] == '\0') {
		if (f->no_token) {
			fake_reply(f, req, 404,
				"{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/_etcd/registry/tok\",\"index\":1}");
			return;
		}
		fake_listing(f, req);
		return;
	}
	if (req->method_id == HTTP_PUT) {
		const char *v = http_req_value(req, HTTP_SRC_BODY, "value");
		char body[512];

		for (size_t i = 0; i < f->nregs; i++)
			if (strcmp(f->regs[i].id, rest + 1) == 0) {
				fake_reply(f, req, 412, "{\"errorCode\":105,\"message\":\"Key already exists\","
					"\"cause\":\"/_etcd/registry/tok/x\",\"index\":3}");
				return;
			}
		fake_register(f, rest + 1, v ? v : "");
		snprintf(body, sizeof(body), "{\"action\":\"create\",\"node\":{\"key\":\"/_etcd/registry/tok%s\","
			"\"value\":\"%s\",\"modifiedIndex\":%" PRIu64 ",\"createdIndex\":%" PRIu64 "}}", rest,
			f->regs[f->nregs - 1].value, f->index, f->index);
		fake_reply(f, req, 201, body);
		return;
	}
	/* The self watch: GET <token>/<id>?wait=true&waitIndex=N. */
	for (size_t i = 0; i < f->nregs; i++)
		if (strcmp(f->regs[i].id, rest + 1) == 0) {
			fake_event(f, req, i);
			return;
		}
	fake_reply(f, req, 404, "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/x\",\"index\":1}");
}

static struct fake *
fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->l = loop_new();
	assert_non_null(f->l);
	f->s = http_server_new(f->l, NULL, fake_handler, f);
	assert_non_null(f->s);
	assert_int_equal(http_listen_url(f->s, "http://127.0.0.1:0", &f->port), 0);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/v2/keys/_etcd/registry/tok", f->port);
	f->size_value = "1";
	f->index = 2;
	buf_init(&f->log);
	return f;
}

static void
fake_free(struct fake *f)
{
	http_server_free(f->s);
	loop_free(f->l);
	buf_free(&f->log);
	free(f);
}

static int
fake_join(struct fake *f, const char *name, uint64_t id, const char *peer, struct discovery_config *cfg,
	struct res *res, struct discovery **out)
{
	const char *urls[1] = { peer };

	cfg->name = name;
	cfg->id = id;
	cfg->peer_urls = urls;
	cfg->npeer_urls = 1;
	return discovery_join_start(f->l, cfg, on_result, res, out);
}

static void
test_fake_join_transcript(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { 0 };
	struct res *rs[] = { &res };
	char want[2048];

	(void)state;
	quick_config(&cfg, f->url);
	assert_int_equal(fake_join(f, "me", 0x1f, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	assert_non_null(d);
	assert_false(res.done); /* never inside start */
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_OK);
	assert_string_equal(res.cluster, "me=http://127.0.0.1:2380");
	assert_string_equal(res.errmsg, "");
	assert_int_equal(res.calls, 1);
	/* The exact requests etcd 2.3's client makes, in order. */
	snprintf(want, sizeof(want),
		"GET /v2/keys/_etcd/registry/tok/_config/size?quorum=false&recursive=false&sorted=false\n"
		"GET /v2/keys/_etcd/registry/tok?quorum=false&recursive=false&sorted=false\n"
		"PUT /v2/keys/_etcd/registry/tok/1f?prevExist=false value=me%%3Dhttp%%3A%%2F%%2F127.0.0.1%%3A2380\n"
		"GET /v2/keys/_etcd/registry/tok/1f?recursive=false&wait=true&waitIndex=3\n"
		"GET /v2/keys/_etcd/registry/tok/_config/size?quorum=false&recursive=false&sorted=false\n"
		"GET /v2/keys/_etcd/registry/tok?quorum=false&recursive=false&sorted=false\n");
	assert_string_equal(buf_cstr(&f->log), want);
	discovery_free(d);
	fake_free(f);
}

/* Size 2: one peer registers while we wait; the watch carries it. */
static void
test_fake_join_waits(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { .free_in_cb = true };
	struct res *rs[] = { &res };

	(void)state;
	f->size_value = "2";
	quick_config(&cfg, f->url);
	/* A quiet long poll is reissued, not counted as a failure. */
	cfg.watch_timeout_ms = 100;
	assert_int_equal(fake_join(f, "a", 0xa, "http://127.0.0.1:1", &cfg, &res, &d), 0);
	RUN_UNTIL(f->l, f->nwatch >= 3 && f->nheld >= 1);
	assert_false(res.done);
	assert_int_equal(discovery_retries(d), 0);
	assert_non_null(strstr(buf_cstr(&f->log), "GET /v2/keys/_etcd/registry/tok?recursive=true&wait=true&waitIndex=4\n"));
	fake_register(f, "b", "b=http://127.0.0.1:2");
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_OK);
	assert_string_equal(res.cluster, "a=http://127.0.0.1:1,b=http://127.0.0.1:2");
	fake_free(f);
}

static bool
hook_5xx_twice(struct fake *f, struct http_req *req)
{
	if (strstr(req->path, "_config/size") != NULL && f->scratch < 2) {
		f->scratch++;
		fake_reply(f, req, f->scratch == 1 ? 503 : 502, "oops");
		return true;
	}
	return false;
}

static void
test_fake_retries_then_ok(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { .free_in_cb = true };
	struct res *rs[] = { &res };

	(void)state;
	f->hook = hook_5xx_twice;
	quick_config(&cfg, f->url);
	assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_OK);
	assert_int_equal(res.retries, 2);
	assert_int_equal(f->nput, 1);
	fake_free(f);
}

static bool
hook_always_500(struct fake *f, struct http_req *req)
{
	fake_reply(f, req, 500, "{\"message\":\"no leader\"}");
	return true;
}

static void
test_fake_too_many_retries(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { .free_in_cb = true };
	struct res *rs[] = { &res };
	uint64_t t0;

	(void)state;
	f->hook = hook_always_500;
	quick_config(&cfg, f->url);
	cfg.retries_max = 3;
	cfg.backoff_ms = 10;
	cfg.backoff_max_ms = 30;
	t0 = time_mono_ms();
	assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_TOO_MANY_RETRIES);
	assert_string_equal(res.errmsg, "discovery: too many retries");
	assert_int_equal(res.retries, 3);
	assert_int_equal(f->nsize, 4); /* the first try and three retries */
	assert_int_equal(f->nput, 0);
	/* Back-off waited 20 + 30 (capped) + 30 ms at least. */
	assert_true(time_mono_ms() - t0 >= 80);
	fake_free(f);
}

static void
test_refused_endpoint(void **state)
{
	struct loop *l = loop_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { .free_in_cb = true };
	struct res *rs[] = { &res };
	char url[128];
	const char *urls[] = { "http://127.0.0.1:2380" };

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v2/keys/_etcd/registry/tok", free_port());
	quick_config(&cfg, url);
	cfg.retries_max = 2;
	cfg.name = "me";
	cfg.id = 1;
	cfg.peer_urls = urls;
	cfg.npeer_urls = 1;
	assert_int_equal(discovery_join_start(l, &cfg, on_result, &res, &d), 0);
	run_until(l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_TOO_MANY_RETRIES);
	assert_int_equal(res.retries, 2);
	/* The proxy-side read gives up the same way. */
	memset(&res, 0, sizeof(res));
	res.free_in_cb = true;
	assert_int_equal(discovery_get_cluster_start(l, &cfg, on_result, &res, &d), 0);
	run_until(l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_TOO_MANY_RETRIES);
	loop_free(l);
}

static void
test_fake_size_and_token(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { .free_in_cb = true };
	struct res *rs[] = { &res };
	static const char *const bad_sizes[] = { "abc", "0", "-3", "", "3.5", "1025" };

	(void)state;
	quick_config(&cfg, f->url);
	f->size_value = NULL;
	assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_SIZE_NOT_FOUND);
	assert_string_equal(res.errmsg, "discovery: size key not found");
	assert_int_equal(res.retries, 0);

	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		memset(&res, 0, sizeof(res));
		res.free_in_cb = true;
		f->size_value = bad_sizes[i];
		assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
		run_until(f->l, rs, 1, RUN_DEADLINE_MS);
		assert_int_equal(res.code, DISCOVERY_ERR_BAD_SIZE_KEY);
		assert_string_equal(res.errmsg, "discovery: size key is bad");
	}

	/* A token that does not exist at all: etcd reports the missing size key. */
	memset(&res, 0, sizeof(res));
	res.free_in_cb = true;
	f->size_value = "3";
	f->no_token = true;
	assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_SIZE_NOT_FOUND);
	assert_int_equal(f->nput, 0);
	fake_free(f);
}

static bool
hook_dir_404(struct fake *f, struct http_req *req)
{
	if (strcmp(req->path, "/v2/keys/_etcd/registry/tok") == 0) {
		fake_reply(f, req, 404,
			"{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/_etcd/registry/tok\",\"index\":9}");
		return true;
	}
	return false;
}

static void
test_fake_token_not_found(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { .free_in_cb = true };
	struct res *rs[] = { &res };

	(void)state;
	f->hook = hook_dir_404;
	quick_config(&cfg, f->url);
	assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_TOKEN_NOT_FOUND);
	assert_string_equal(res.errmsg, "discovery: token not found");
	assert_int_equal(f->nput, 0);
	fake_free(f);
}

static void
test_fake_full_and_duplicates(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { .free_in_cb = true };
	struct res *rs[] = { &res };

	(void)state;
	quick_config(&cfg, f->url);
	f->size_value = "2";
	fake_register(f, "a", "a=http://127.0.0.1:1");
	fake_register(f, "b", "b=http://127.0.0.1:2");
	/* Full before registering: fails fast, registers nothing. */
	assert_int_equal(fake_join(f, "c", 0xc, "http://127.0.0.1:3", &cfg, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_FULL_CLUSTER);
	assert_string_equal(res.errmsg, "discovery: cluster is full");
	assert_int_equal(f->nput, 0);
	assert_int_equal(f->nregs, 2);

	/* Our id is already registered: the create fails. */
	memset(&res, 0, sizeof(res));
	res.free_in_cb = true;
	assert_int_equal(fake_join(f, "a", 0xa, "http://127.0.0.1:1", &cfg, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_DUPLICATE_ID);
	assert_string_equal(res.errmsg, "discovery: found duplicate id");
	assert_int_equal(f->nput, 1);

	/* The proxy's read of a full directory is the cluster. */
	memset(&res, 0, sizeof(res));
	res.free_in_cb = true;
	fake_register(f, "c", "c=http://127.0.0.1:3");
	assert_int_equal(discovery_get_cluster_start(f->l, &cfg, on_result, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_OK);
	assert_string_equal(res.cluster, "a=http://127.0.0.1:1,b=http://127.0.0.1:2");
	fake_free(f);

	/* Two members with one name. */
	f = fake_new();
	quick_config(&cfg, f->url);
	f->size_value = "2";
	fake_register(f, "a", "same=http://127.0.0.1:1");
	memset(&res, 0, sizeof(res));
	res.free_in_cb = true;
	assert_int_equal(fake_join(f, "same", 0xb, "http://127.0.0.1:2", &cfg, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_DUPLICATE_NAME);
	assert_string_equal(res.errmsg, "discovery: found duplicate name");
	fake_free(f);
}

/* Hostile answers to each step. */
struct hostile {
	const char *step; /* "size", "dir", "put", "watch" */
	int status;
	const char *body;
	int code;
	const char *errmsg; /* NULL: the code's text */
};

static const struct hostile *cur_hostile;

static bool
hook_hostile(struct fake *f, struct http_req *req)
{
	const struct hostile *h = cur_hostile;
	bool is_size = strstr(req->path, "_config/size") != NULL;
	bool is_dir = strcmp(req->path, "/v2/keys/_etcd/registry/tok") == 0;
	bool is_watch = is_dir && http_req_value(req, HTTP_SRC_QUERY, "wait") != NULL;
	bool hit = (strcmp(h->step, "size") == 0 && is_size) || (strcmp(h->step, "dir") == 0 && is_dir && !is_watch) ||
		(strcmp(h->step, "put") == 0 && req->method_id == HTTP_PUT) ||
		(strcmp(h->step, "watch") == 0 && is_watch);

	if (!hit)
		return false;
	fake_reply(f, req, h->status, h->body);
	return true;
}

static void
test_fake_hostile_bodies(void **state)
{
	static const struct hostile cases[] = {
		{ "size", 200, "not json", DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "size", 200, "", DISCOVERY_ERR_OTHER, "client: response body is empty" },
		{ "size", 200, "{}", DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "size", 200, "{\"node\":{\"value\":3}}", DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "size", 200, "{\"node\":{\"dir\":true}}", DISCOVERY_ERR_BAD_SIZE_KEY, NULL },
		{ "size", 404, "<html>nope</html>", DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "size", 403, "{\"errorCode\":110,\"message\":\"The request requires user authentication\","
			"\"cause\":\"Insufficient credentials\",\"index\":0}", DISCOVERY_ERR_OTHER,
			"110: The request requires user authentication (Insufficient credentials) [0]" },
		{ "size", 400, "{\"errorCode\":\"x\"}", DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "dir", 200, "[1,2,3]", DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "dir", 200, "{\"node\":{\"nodes\":[{\"key\":7}]}}", DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "put", 201, "{\"node\":{\"key\":\"/x\"}}", DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "put", 201, "{\"node\":", DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "put", 403, "{\"errorCode\":110,\"message\":\"m\",\"cause\":\"c\",\"index\":4}", DISCOVERY_ERR_OTHER,
			"110: m (c) [4]" },
		{ "watch", 200, "{\"action\":\"create\",\"node\":{\"key\":\"/_etcd/registry/tok/zz\","
			"\"value\":\"z=http://h:9\",\"modifiedIndex\":1,\"createdIndex\":1}}",
			DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "watch", 200, "{\"action\":5,\"node\":{\"key\":\"/k\",\"modifiedIndex\":99}}",
			DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "watch", 200, "{\"action\":\"create\"}", DISCOVERY_ERR_BAD_ENDPOINT, NULL },
		{ "watch", 404, "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/t\",\"index\":7}",
			DISCOVERY_ERR_OTHER, "100: Key not found (/t) [7]" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake *f = fake_new();
		struct discovery_config cfg;
		struct discovery *d = NULL;
		struct res res = { .free_in_cb = true };
		struct res *rs[] = { &res };

		cur_hostile = &cases[i];
		f->hook = hook_hostile;
		f->size_value = "2"; /* so that the watch step is reached */
		quick_config(&cfg, f->url);
		assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
		run_until(f->l, rs, 1, RUN_DEADLINE_MS);
		if (res.code != cases[i].code)
			fail_msg("case %zu (%s %d %s): got %s (%s)", i, cases[i].step, cases[i].status, cases[i].body,
				discovery_code_name(res.code), res.errmsg);
		assert_string_equal(res.errmsg, cases[i].errmsg ? cases[i].errmsg : discovery_code_str(cases[i].code));
		assert_int_equal(res.retries, 0);
		fake_free(f);
	}
}

/* Watch answers that are not new registrations are skipped; a cleared history re-reads. */
static bool
hook_watch_noise(struct fake *f, struct http_req *req)
{
	const char *wi;
	char body[512];

	if (strcmp(req->path, "/v2/keys/_etcd/registry/tok") != 0 ||
	    http_req_value(req, HTTP_SRC_QUERY, "wait") == NULL)
		return false;
	wi = http_req_value(req, HTTP_SRC_QUERY, "waitIndex");
	f->scratch++;
	switch (f->scratch) {
	case 1: /* a delete */
		snprintf(body, sizeof(body), "{\"action\":\"delete\",\"node\":{\"key\":\"/_etcd/registry/tok/old\","
			"\"modifiedIndex\":%s,\"createdIndex\":1}}", wi);
		break;
	case 2: /* the size key rewritten */
		snprintf(body, sizeof(body), "{\"action\":\"set\",\"node\":{\"key\":\"/_etcd/registry/tok/_config/size\","
			"\"value\":\"2\",\"modifiedIndex\":%s,\"createdIndex\":%s}}", wi, wi);
		break;
	case 3: /* a key elsewhere */
		snprintf(body, sizeof(body), "{\"action\":\"set\",\"node\":{\"key\":\"/_etcd/registry/other/x\","
			"\"value\":\"q=http://h:1\",\"modifiedIndex\":%s,\"createdIndex\":%s}}", wi, wi);
		break;
	case 4: /* a directory */
		snprintf(body, sizeof(body), "{\"action\":\"set\",\"node\":{\"key\":\"/_etcd/registry/tok/d\","
			"\"dir\":true,\"modifiedIndex\":%s,\"createdIndex\":%s}}", wi, wi);
		break;
	case 5: /* ourselves again */
		snprintf(body, sizeof(body), "{\"action\":\"set\",\"node\":{\"key\":\"/_etcd/registry/tok/1\","
			"\"value\":\"me=http://127.0.0.1:2380\",\"modifiedIndex\":%s,\"createdIndex\":%s}}", wi, wi);
		break;
	case 6: /* the long poll ended without an event */
		http_resp_start(req, 200, NULL);
		http_resp_body(req, "", 0);
		return true;
	case 7: /* history cleared: re-read the directory (a retry) */
		fake_reply(f, req, 400, "{\"errorCode\":401,\"message\":\"The event in requested index is outdated "
			"and cleared\",\"cause\":\"the requested history has been cleared [9/3]\",\"index\":1008}");
		return true;
	default:
		fake_register(f, "b", "b=http://127.0.0.1:2");
		return false;
	}
	fake_reply(f, req, 200, body);
	return true;
}

static void
test_fake_watch_noise(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { .free_in_cb = true };
	struct res *rs[] = { &res };

	(void)state;
	f->hook = hook_watch_noise;
	f->size_value = "2";
	quick_config(&cfg, f->url);
	assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_OK);
	assert_string_equal(res.cluster, "me=http://127.0.0.1:2380,b=http://127.0.0.1:2");
	assert_int_equal(res.retries, 1);
	assert_int_equal(f->nwatch, 8);
	assert_int_equal(f->nput, 1);
	fake_free(f);
}

static bool
hook_big_listing(struct fake *f, struct http_req *req)
{
	struct buf b = BUF_INIT;

	if (strcmp(req->path, "/v2/keys/_etcd/registry/tok") != 0)
		return false;
	buf_puts(&b, "{\"node\":{\"key\":\"/_etcd/registry/tok\",\"nodes\":[");
	for (int i = 0; i < 200; i++)
		buf_printf(&b, "%s{\"key\":\"/_etcd/registry/tok/%x\",\"value\":\"n%d=http://h:%d\"}", i ? "," : "",
			i + 100, i, i + 1);
	buf_puts(&b, "]}}");
	fake_reply(f, req, 200, buf_cstr(&b));
	buf_free(&b);
	return true;
}

static void
test_fake_body_limit(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { .free_in_cb = true };
	struct res *rs[] = { &res };

	(void)state;
	f->hook = hook_big_listing;
	quick_config(&cfg, f->url);
	cfg.body_bytes_max = 4096;
	assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_BAD_ENDPOINT);
	assert_int_equal(res.retries, 0);
	fake_free(f);
}

static bool
hook_put_drops(struct fake *f, struct http_req *req)
{
	(void)f;
	if (req->method_id != HTTP_PUT)
		return false;
	http_req_abort(req);
	return true;
}

static void
test_fake_register_failure_is_final(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { .free_in_cb = true };
	struct res *rs[] = { &res };
	int nsize;

	(void)state;
	f->hook = hook_put_drops;
	quick_config(&cfg, f->url);
	assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	run_until(f->l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_OTHER);
	assert_non_null(strstr(res.errmsg, "client: etcd cluster is unavailable or misconfigured; error #0: "));
	assert_int_equal(res.retries, 0);
	nsize = f->nsize;
	run_for(f->l, 50);
	assert_int_equal(f->nsize, nsize); /* nothing after the end */
	fake_free(f);
}

static void
test_config_errors(void **state)
{
	struct loop *l = loop_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { .free_in_cb = true };
	struct res *rs[] = { &res };
	const char *urls[] = { "http://127.0.0.1:2380" };
	static const struct {
		const char *url;
		const char *proxy;
		int code;
		const char *needle;
	} cases[] = {
		{ "ftp://h/x", NULL, DISCOVERY_ERR_INVALID_URL, "discovery: invalid URL" },
		{ "http://127.0.0.1:1", NULL, DISCOVERY_ERR_INVALID_URL, "discovery: invalid URL" },
		{ "http://127.0.0.1:1/t?x=1", NULL, DISCOVERY_ERR_INVALID_URL, "discovery: invalid URL" },
		{ "https://127.0.0.1:1/t", NULL, DISCOVERY_ERR_UNSUPPORTED, "https" },
		{ "http://127.0.0.1:1/t", "http://proxy:3128", DISCOVERY_ERR_UNSUPPORTED, "--discovery-proxy" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&res, 0, sizeof(res));
		res.free_in_cb = true;
		quick_config(&cfg, cases[i].url);
		cfg.proxy = cases[i].proxy;
		cfg.name = "me";
		cfg.id = 1;
		cfg.peer_urls = urls;
		cfg.npeer_urls = 1;
		assert_int_equal(discovery_join_start(l, &cfg, on_result, &res, &d), 0);
		assert_false(res.done);
		run_until(l, rs, 1, RUN_DEADLINE_MS);
		assert_int_equal(res.code, cases[i].code);
		assert_non_null(strstr(res.errmsg, cases[i].needle));
	}
	/* A peer URL that is not a URL cannot be registered. */
	memset(&res, 0, sizeof(res));
	res.free_in_cb = true;
	quick_config(&cfg, "http://127.0.0.1:1/t");
	cfg.name = "me";
	cfg.peer_urls = (const char *const[]){ "http://a:1,http://b:2" };
	cfg.npeer_urls = 1;
	assert_int_equal(discovery_join_start(l, &cfg, on_result, &res, &d), 0);
	run_until(l, rs, 1, RUN_DEADLINE_MS);
	assert_int_equal(res.code, DISCOVERY_ERR_INVALID_URL);

	/* Programming errors are refused at once, without a callback. */
	quick_config(&cfg, "http://127.0.0.1:1/t");
	assert_int_equal(discovery_join_start(NULL, &cfg, on_result, &res, &d), -ERR_INVAL);
	assert_null(d);
	assert_int_equal(discovery_join_start(l, &cfg, NULL, &res, &d), -ERR_INVAL);
	assert_int_equal(discovery_join_start(l, &cfg, on_result, &res, &d), -ERR_INVAL); /* no name */
	cfg.url = NULL;
	assert_int_equal(discovery_get_cluster_start(l, &cfg, on_result, &res, &d), -ERR_INVAL);
	discovery_free(NULL);
	loop_free(l);
}

/* Freeing while a call is held, or while the result is queued: no callback, no leak. */
static void
test_free_in_flight(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg;
	struct discovery *d = NULL;
	struct res res = { 0 };

	(void)state;
	f->size_value = "2";
	quick_config(&cfg, f->url);
	assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	RUN_UNTIL(f->l, f->nheld == 1); /* waiting on the long poll */
	discovery_free(d);
	RUN_UNTIL(f->l, f->nheld == 0); /* the server saw the client go */
	assert_false(res.done);

	/* A result already queued (bad URL) is dropped by free. */
	quick_config(&cfg, "ftp://x/y");
	assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	discovery_free(d);
	run_for(f->l, 20);
	assert_false(res.done);

	/* Cancelled during back-off. */
	f->hook = hook_always_500;
	quick_config(&cfg, f->url);
	cfg.backoff_ms = 1000;
	cfg.backoff_max_ms = 5000;
	assert_int_equal(fake_join(f, "me", 1, "http://127.0.0.1:2380", &cfg, &res, &d), 0);
	RUN_UNTIL(f->l, discovery_retries(d) == 1);
	run_for(f->l, 20);
	assert_int_equal(discovery_retries(d), 1);
	discovery_free(d);
	run_for(f->l, 20);
	assert_false(res.done);
	fake_free(f);
}

/* Several joins on one fake loop, as the real-store test does on etcd. */
static void
test_fake_three_in_one_loop(void **state)
{
	struct fake *f = fake_new();
	struct discovery_config cfg[4];
	struct discovery *d[4] = { NULL };
	struct res res[4] = { { 0 } };
	struct res *rs[] = { &res[0], &res[1], &res[2] };
	char name[8], peer[64];

	(void)state;
	f->size_value = "3";
	for (int i = 0; i < 3; i++) {
		res[i].free_in_cb = true;
		quick_config(&cfg[i], f->url);
		snprintf(name, sizeof(name), "n%d", i);
		snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", 7000 + i);
		/* The config and the strings it points to are copied by start. */
		assert_int_equal(fake_join(f, name, 0x100 + (uint64_t)i, peer, &cfg[i], &res[i], &d[i]), 0);
	}
	run_until(f->l, rs, 3, RUN_DEADLINE_MS);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(res[i].code, DISCOVERY_OK);
		assert_string_equal(res[i].cluster, res[0].cluster);
	}
	assert_non_null(strstr(res[0].cluster, "n0=http://127.0.0.1:7000"));
	assert_non_null(strstr(res[0].cluster, "n2=http://127.0.0.1:7002"));
	fake_free(f);
}

/* ------------------------------------------------------------------ */
/* Real stores                                                         */
/* ------------------------------------------------------------------ */

struct real {
	const char *kind;
	char skip[512];
	pid_t pid;
	int port;
	char base[128]; /* http://127.0.0.1:port */
	char tmp[PATH_MAX];
	int seq;
};

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static int
http_do(const char *method, const char *url, const char *form, int *status, char *body, size_t bodysz)
{
	struct http_call_spec spec;
	struct http_result r;
	struct http_header ct = { "Content-Type", "application/x-www-form-urlencoded", 12, 33 };
	int rc;

	memset(&spec, 0, sizeof(spec));
	spec.method = method;
	spec.url = url;
	spec.timeout_ms = 3000;
	spec.connect_timeout_ms = 1000;
	if (form != NULL) {
		spec.headers = &ct;
		spec.nheaders = 1;
		spec.body = form;
		spec.body_len = strlen(form);
		spec.has_body = true;
	}
	rc = http_fetch(NULL, &spec, &r);
	if (rc == 0) {
		*status = r.status;
		if (body != NULL)
			snprintf(body, bodysz, "%s", r.body);
	}
	http_result_free(&r);
	return rc;
}

/* The corebox binary of this build directory: <build>/corebox next to <build>/tests/unit/. */
static void
corebox_path(char *out, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *s;

	out[0] = '\0';
	if (n <= 0)
		return;
	self[n] = '\0';
	s = strstr(self, "/tests/unit/");
	if (s == NULL)
		return;
	*s = '\0';
	snprintf(out, cap, "%.3000s/corebox", self);
}

static int
real_setup(void **state, const char *kind)
{
	struct real *r = calloc(1, sizeof(*r));
	char bin[PATH_MAX], peer[128], data[PATH_MAX + 8], logp[PATH_MAX + 16], url[160];
	uint64_t end;
	int status = 0;
	pid_t parent;

	assert_non_null(r);
	r->kind = kind;
	*state = r;
	if (strcmp(kind, "etcd") == 0)
		snprintf(bin, sizeof(bin), "/usr/bin/etcd");
	else
		corebox_path(bin, sizeof(bin));
	if (bin[0] == '\0' || access(bin, X_OK) != 0) {
		snprintf(r->skip, sizeof(r->skip), "%s server %.300s is missing", kind, bin[0] ? bin : "(corebox)");
		return 0;
	}
	snprintf(r->tmp, sizeof(r->tmp), "/tmp/corebox-disc-%s-XXXXXX", kind);
	assert_non_null(mkdtemp(r->tmp));
	snprintf(data, sizeof(data), "%s/data", r->tmp);
	snprintf(logp, sizeof(logp), "%s/server.log", r->tmp);
	r->port = free_port();
	snprintf(r->base, sizeof(r->base), "http://127.0.0.1:%d", r->port);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", free_port());
	parent = getpid();
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		char ic[200];
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		/* Never outlive the test, however it ends. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		snprintf(ic, sizeof(ic), "default=%s", peer);
		if (strcmp(kind, "etcd") == 0)
			execl(bin, bin, "--enable-v2=true", "--name", "default", "--data-dir", data,
				"--listen-client-urls", r->base, "--advertise-client-urls", r->base,
				"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
				"--initial-cluster", ic, (char *)NULL);
		else
			execl(bin, bin, "etcd", "--name", "default", "--data-dir", data,
				"--listen-client-urls", r->base, "--advertise-client-urls", r->base,
				"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
				"--initial-cluster", ic, (char *)NULL);
		_exit(127);
	}
	end = time_mono_ms() + SERVER_READY_MS;
	snprintf(url, sizeof(url), "%s/v2/keys/", r->base);
	while (time_mono_ms() < end) {
		if (http_do("GET", url, NULL, &status, NULL, 0) == 0 && status == 200)
			return 0;
		if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
			r->pid = 0;
			snprintf(r->skip, sizeof(r->skip), "%s server exited at start-up (see %.300s)", kind, logp);
			return 0;
		}
		usleep(50 * 1000);
	}
	snprintf(r->skip, sizeof(r->skip), "%s server not ready within %d ms (see %.300s)", kind, SERVER_READY_MS, logp);
	return 0;
}

static int
setup_debian(void **state)
{
	return real_setup(state, "etcd");
}

static int
setup_corebox(void **state)
{
	return real_setup(state, "corebox");
}

static int
real_teardown(void **state)
{
	struct real *r = *state;

	if (r->pid > 0) {
		int st;
		uint64_t end = time_mono_ms() + 5000;

		kill(r->pid, SIGTERM);
		while (waitpid(r->pid, &st, WNOHANG) == 0) {
			if (time_mono_ms() > end) {
				kill(r->pid, SIGKILL);
				waitpid(r->pid, &st, 0);
				break;
			}
			usleep(20 * 1000);
		}
	}
	if (r->tmp[0] != '\0')
		nftw(r->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(r);
	return 0;
}

static struct real *
real_get(void **state)
{
	struct real *r = *state;

	if (r->skip[0] != '\0') {
		print_message("skipped: %s\n", r->skip);
		skip();
	}
	return r;
}

/* A fresh token on r with an optional size value; url gets the discovery URL. */
static void
real_token(struct real *r, const char *size, char *url, size_t cap)
{
	char key[256], form[64];
	int status = 0;

	snprintf(url, cap, "%s/v2/keys/_etcd/registry/t%d-%d", r->base, (int)getpid(), ++r->seq);
	if (size != NULL) {
		snprintf(key, sizeof(key), "%s/_config/size", url);
		snprintf(form, sizeof(form), "value=%s", size);
		assert_int_equal(http_do("PUT", key, form, &status, NULL, 0), 0);
		assert_int_equal(status, 201);
	}
}

static void
real_join_cfg(struct discovery_config *cfg, const char *url, const char *name, uint64_t id, const char *const *peer)
{
	quick_config(cfg, url);
	cfg->name = name;
	cfg->id = id;
	cfg->peer_urls = peer;
	cfg->npeer_urls = 1;
}

static void
test_real_size_errors(void **state)
{
	struct real *r = real_get(state);
	struct discovery_config cfg;
	struct discovery_outcome out;
	const char *peer[] = { "http://127.0.0.1:2380" };
	char url[256];

	real_token(r, NULL, url, sizeof(url));
	real_join_cfg(&cfg, url, "me", 1, peer);
	/* The blocking wrapper, as the server's start-up path uses it. */
	assert_int_equal(discovery_join_sync(&cfg, &out), 0);
	assert_int_equal(out.code, DISCOVERY_ERR_SIZE_NOT_FOUND);
	assert_string_equal(out.errmsg, "discovery: size key not found");
	assert_null(out.cluster);
	discovery_outcome_free(&out);

	real_token(r, "three", url, sizeof(url));
	real_join_cfg(&cfg, url, "me", 1, peer);
	assert_int_equal(discovery_join_sync(&cfg, &out), 0);
	assert_int_equal(out.code, DISCOVERY_ERR_BAD_SIZE_KEY);
	assert_string_equal(out.errmsg, "discovery: size key is bad");
	discovery_outcome_free(&out);

	real_token(r, "0", url, sizeof(url));
	real_join_cfg(&cfg, url, "me", 1, peer);
	assert_int_equal(discovery_get_cluster_sync(&cfg, &out), 0);
	assert_int_equal(out.code, DISCOVERY_ERR_BAD_SIZE_KEY);
	discovery_outcome_free(&out);
}

static void
test_real_three_then_full(void **state)
{
	struct real *r = real_get(state);
	struct loop *l = loop_new();
	struct discovery_config cfg[3];
	struct discovery *d[3] = { NULL };
	struct res res[3] = { { 0 } };
	struct res *rs[] = { &res[0], &res[1], &res[2] };
	const char *peers[3][1] = { { "http://127.0.0.1:12380" }, { "http://127.0.0.1:22380" },
		{ "http://127.0.0.1:32380" } };
	const char *names[3] = { "infra0", "infra1", "infra2" };
	const char *p4[] = { "http://127.0.0.1:42380" };
	struct discovery_outcome out;
	struct discovery_config c4;
	char url[256], key[320];
	int status = 0;

	real_token(r, "3", url, sizeof(url));
	for (int i = 0; i < 3; i++) {
		res[i].free_in_cb = true;
		real_join_cfg(&cfg[i], url, names[i], 0x8e9e05c52164694dULL + (uint64_t)i, peers[i]);
		assert_int_equal(discovery_join_start(l, &cfg[i], on_result, &res[i], &d[i]), 0);
	}
	run_until(l, rs, 3, RUN_DEADLINE_MS);
	for (int i = 0; i < 3; i++) {
		if (res[i].code != DISCOVERY_OK)
			fail_msg("member %d: %s", i, res[i].errmsg);
		assert_string_equal(res[i].cluster, res[0].cluster);
	}
	for (int i = 0; i < 3; i++) {
		char pair[128];

		snprintf(pair, sizeof(pair), "%s=%s", names[i], peers[i][0]);
		assert_non_null(strstr(res[0].cluster, pair));
	}
	assert_int_equal(strlen(res[0].cluster), 3 * strlen("infra0=http://127.0.0.1:12380") + 2);
	loop_free(l);

	/* A fourth member: the cluster is full and it does not register. */
	real_join_cfg(&c4, url, "infra3", 0x1234, p4);
	assert_int_equal(discovery_join_sync(&c4, &out), 0);
	assert_int_equal(out.code, DISCOVERY_ERR_FULL_CLUSTER);
	assert_string_equal(out.errmsg, "discovery: cluster is full");
	discovery_outcome_free(&out);
	snprintf(key, sizeof(key), "%s/1234", url);
	assert_int_equal(http_do("GET", key, NULL, &status, NULL, 0), 0);
	assert_int_equal(status, 404);

	/* A restarted member whose registration is there: duplicate id. */
	real_join_cfg(&c4, url, "infra0", 0x8e9e05c52164694dULL, peers[0]);
	assert_int_equal(discovery_join_sync(&c4, &out), 0);
	assert_int_equal(out.code, DISCOVERY_ERR_DUPLICATE_ID);
	assert_string_equal(out.errmsg, "discovery: found duplicate id");
	discovery_outcome_free(&out);

	/* The proxy's read gives the same cluster, and its peer URLs. */
	assert_int_equal(discovery_get_cluster_sync(&c4, &out), 0);
	assert_int_equal(out.code, DISCOVERY_OK);
	assert_string_equal(out.cluster, res[0].cluster);
	{
		char **urls = NULL, msg[128];
		size_t n = 0;

		assert_int_equal(discovery_cluster_urls(out.cluster, &urls, &n, msg, sizeof(msg)), 0);
		assert_int_equal(n, 3);
		assert_string_equal(urls[0], "http://127.0.0.1:12380");
		assert_string_equal(urls[2], "http://127.0.0.1:32380");
		discovery_urls_free(urls, n);
	}
	discovery_outcome_free(&out);
}

static void
test_real_wait_and_duplicate_name(void **state)
{
	struct real *r = real_get(state);
	struct loop *l = loop_new();
	struct discovery_config ca, cb;
	struct discovery *da = NULL, *db = NULL;
	struct res ra = { .free_in_cb = true }, rb = { .free_in_cb = true };
	struct res *rs[] = { &ra, &rb };
	const char *pa[] = { "http://127.0.0.1:1001" }, *pb[] = { "http://127.0.0.1:1002" };
	char url[256], key[320];
	int status = 0;

	/* A waits alone; a rewrite of the size key must not count as a member; then B comes. */
	real_token(r, "2", url, sizeof(url));
	real_join_cfg(&ca, url, "a", 0xa, pa);
	assert_int_equal(discovery_join_start(l, &ca, on_result, &ra, &da), 0);
	run_for(l, 400);
	assert_false(ra.done);
	snprintf(key, sizeof(key), "%s/_config/size", url);
	assert_int_equal(http_do("PUT", key, "value=2", &status, NULL, 0), 0);
	run_for(l, 200);
	assert_false(ra.done);
	real_join_cfg(&cb, url, "b", 0xb, pb);
	assert_int_equal(discovery_join_start(l, &cb, on_result, &rb, &db), 0);
	run_until(l, rs, 2, RUN_DEADLINE_MS);
	assert_int_equal(ra.code, DISCOVERY_OK);
	assert_int_equal(rb.code, DISCOVERY_OK);
	assert_string_equal(ra.cluster, "a=http://127.0.0.1:1001,b=http://127.0.0.1:1002");
	assert_string_equal(rb.cluster, ra.cluster);

	/* Two members with one name: both refuse the cluster. */
	memset(&ra, 0, sizeof(ra));
	memset(&rb, 0, sizeof(rb));
	ra.free_in_cb = rb.free_in_cb = true;
	real_token(r, "2", url, sizeof(url));
	real_join_cfg(&ca, url, "same", 0xa, pa);
	real_join_cfg(&cb, url, "same", 0xb, pb);
	assert_int_equal(discovery_join_start(l, &ca, on_result, &ra, &da), 0);
	assert_int_equal(discovery_join_start(l, &cb, on_result, &rb, &db), 0);
	run_until(l, rs, 2, RUN_DEADLINE_MS);
	assert_int_equal(ra.code, DISCOVERY_ERR_DUPLICATE_NAME);
	assert_int_equal(rb.code, DISCOVERY_ERR_DUPLICATE_NAME);
	assert_string_equal(ra.errmsg, "discovery: found duplicate name");
	loop_free(l);
}

int
main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_error_texts),
		cmocka_unit_test(test_url_parse),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_self_value),
		cmocka_unit_test(test_nodes_parse_sort_check),
		cmocka_unit_test(test_nodes_to_cluster_errors),
		cmocka_unit_test(test_cluster_urls),
		cmocka_unit_test(test_nodes_parse_hostile),
		cmocka_unit_test(test_nodes_parse_alloc_failures),
	};
	const struct CMUnitTest fake[] = {
		cmocka_unit_test(test_fake_join_transcript),
		cmocka_unit_test(test_fake_join_waits),
		cmocka_unit_test(test_fake_retries_then_ok),
		cmocka_unit_test(test_fake_too_many_retries),
		cmocka_unit_test(test_refused_endpoint),
		cmocka_unit_test(test_fake_size_and_token),
		cmocka_unit_test(test_fake_token_not_found),
		cmocka_unit_test(test_fake_full_and_duplicates),
		cmocka_unit_test(test_fake_hostile_bodies),
		cmocka_unit_test(test_fake_watch_noise),
		cmocka_unit_test(test_fake_body_limit),
		cmocka_unit_test(test_fake_register_failure_is_final),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_free_in_flight),
		cmocka_unit_test(test_fake_three_in_one_loop),
	};
	const struct CMUnitTest real[] = {
		cmocka_unit_test(test_real_size_errors),
		cmocka_unit_test(test_real_three_then_full),
		cmocka_unit_test(test_real_wait_and_duplicate_name),
	};
	int fails = 0;

	/* Discovery logs every step; keep the test output to failures. */
	log_set_level(LOG_LEVEL_ERROR);
	fails += cmocka_run_group_tests_name("discovery_pure", pure, NULL, NULL);
	fails += cmocka_run_group_tests_name("discovery_fake", fake, NULL, NULL);
	fails += cmocka_run_group_tests_name("discovery_debian_etcd", real, setup_debian, real_teardown);
	fails += cmocka_run_group_tests_name("discovery_corebox_etcd", real, setup_corebox, real_teardown);
	return fails;
}
