/* Unit tests for the pure parts of the etcdctl applet: urfave/cli-style
 * argument parsing and help rendering, URL building, response decoding and
 * the three output formats, error texts, member and peer-URL handling,
 * exec-watch's argument split and environment, and the DNS SRV codec.
 * Expected strings were captured from Debian's etcdctl 3.4 (ETCDCTL_API=2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/etcdctl.h"
#include "corebox/mem.h"

static const struct ctl_flag set_flags[] = {
	{ "ttl", CTL_F_INT, "--ttl value", "key time-to-live in seconds (default: 0)" },
	{ "swap-with-value", CTL_F_STRING, "--swap-with-value value", "previous value" },
	{ "swap-with-index", CTL_F_INT, "--swap-with-index value", "previous index (default: 0)" },
	{ "help, h", CTL_F_BOOL, "--help, -h", "show help" },
};
#define NSET (sizeof(set_flags) / sizeof(set_flags[0]))

static const struct ctl_flag ls_flags[] = {
	{ "sort", CTL_F_BOOL, "--sort", "returns result in sorted order" },
	{ "recursive, r", CTL_F_BOOL, "--recursive, -r", "returns all key names recursively for the given path" },
	{ "p", CTL_F_BOOL, "-p", "append slash (/) to directories" },
	{ "quorum, q", CTL_F_BOOL, "--quorum, -q", "require quorum for get request" },
	{ "roles", CTL_F_SLICE, "--roles value", "roles" },
	{ "timeout", CTL_F_DURATION, "--timeout value", "t" },
};
#define NLS (sizeof(ls_flags) / sizeof(ls_flags[0]))

/* Parses a space-separated command line; returns the rc, rest joined by '|'. */
static int
parse(const struct ctl_flag *flags, size_t n, struct ctl_val *vals, bool reorder, const char *line,
	char *rest_out, size_t cap, char *errmsg)
{
	char copy[512], *argv[32], **rest = NULL;
	int argc = 0, nrest = 0, rc;

	snprintf(copy, sizeof(copy), "%s", line);
	for (char *t = strtok(copy, " "); t != NULL && argc < 32; t = strtok(NULL, " "))
		argv[argc++] = t;
	memset(vals, 0, n * sizeof(*vals));
	rc = ctl_flags_parse(flags, n, vals, reorder, argc, argv, &rest, &nrest, errmsg, CTL_ERRMSG_BYTES);
	rest_out[0] = '\0';
	for (int i = 0; i < nrest; i++) {
		strncat(rest_out, i ? "|" : "", cap - strlen(rest_out) - 1);
		strncat(rest_out, rest[i], cap - strlen(rest_out) - 1);
	}
	mem_free(rest);
	return rc;
}

static void
test_parse_reorder(void **state)
{
	struct ctl_val v[NSET];
	char rest[256], err[CTL_ERRMSG_BYTES];

	(void)state;
	/* Flags after the positionals are moved in front (urfave v1.22). */
	assert_int_equal(parse(set_flags, NSET, v, true, "/foo bar --ttl 5", rest, sizeof(rest), err), 0);
	assert_int_equal(v[0].i, 5);
	assert_string_equal(rest, "/foo|bar");
	assert_int_equal(parse(set_flags, NSET, v, true, "/r2 --ttl 30 v", rest, sizeof(rest), err), 0);
	assert_int_equal(v[0].i, 30);
	assert_string_equal(rest, "/r2|v");
	/* "--" moves to the front of the positionals and ends the flags. */
	assert_int_equal(parse(set_flags, NSET, v, true, "/r4 -- -v", rest, sizeof(rest), err), 0);
	assert_string_equal(rest, "/r4|-v");
	assert_int_equal(parse(set_flags, NSET, v, true, "-- /r3 -v", rest, sizeof(rest), err), 0);
	assert_string_equal(rest, "/r3|-v");
	/* An unknown flag after a positional is a positional. */
	assert_int_equal(parse(set_flags, NSET, v, true, "/x --bogus", rest, sizeof(rest), err), 0);
	assert_string_equal(rest, "/x|--bogus");
	/* A negative number is taken as the value of the flag before it. */
	assert_int_equal(parse(set_flags, NSET, v, true, "--ttl -5 /x y", rest, sizeof(rest), err), 0);
	assert_int_equal(v[0].i, -5);
	assert_string_equal(rest, "/x|y");
	/* --help anywhere in a command's arguments. */
	assert_int_equal(parse(set_flags, NSET, v, true, "/r5 v --help", rest, sizeof(rest), err), 0);
	assert_true(v[3].b);
	/* exec-watch's quirk: without a bool flag before the key, "--" ends up first. */
	assert_int_equal(parse(set_flags, NSET, v, true, "--ttl 1 /x/a -- echo hi", rest, sizeof(rest), err), 0);
	assert_string_equal(rest, "/x/a|echo|hi");
	/* No reordering for the global flags: parsing stops at the command. */
	assert_int_equal(parse(set_flags, NSET, v, false, "get --ttl 5", rest, sizeof(rest), err), 0);
	assert_int_equal(v[0].set, 0);
	assert_string_equal(rest, "get|--ttl|5");
}

static void
test_parse_syntax(void **state)
{
	struct ctl_val v[NLS];
	char rest[256], err[CTL_ERRMSG_BYTES];

	(void)state;
	assert_int_equal(parse(ls_flags, NLS, v, false, "-r --sort=false -q=1 -p /a", rest, sizeof(rest), err), 0);
	assert_true(v[1].b);
	assert_false(v[0].b);
	assert_true(v[0].set);
	assert_true(v[3].b);
	assert_true(v[2].b);
	assert_string_equal(rest, "/a");
	/* A bool flag never takes the next argument. */
	assert_int_equal(parse(ls_flags, NLS, v, false, "--sort false", rest, sizeof(rest), err), 0);
	assert_true(v[0].b);
	assert_string_equal(rest, "false");
	assert_int_equal(parse(ls_flags, NLS, v, false, "--roles a --roles=b,c", rest, sizeof(rest), err), 0);
	assert_int_equal(v[4].nlist, 2);
	assert_string_equal(v[4].list[0], "a");
	assert_string_equal(v[4].list[1], "b,c");
	ctl_vals_free(ls_flags, NLS, v);
	assert_int_equal(parse(ls_flags, NLS, v, false, "--timeout 1.5s", rest, sizeof(rest), err), 0);
	assert_int_equal(v[5].i, 1500000000);
	assert_int_equal(parse(ls_flags, NLS, v, false, "- -r", rest, sizeof(rest), err), 0);
	assert_string_equal(rest, "-|-r");
}

static void
test_parse_errors(void **state)
{
	struct ctl_val v[NLS];
	struct ctl_val s[NSET];
	char rest[256], err[CTL_ERRMSG_BYTES];

	(void)state;
	assert_int_equal(parse(ls_flags, NLS, v, false, "--bogus /x", rest, sizeof(rest), err), -ERR_INVAL);
	assert_string_equal(err, "flag provided but not defined: -bogus");
	assert_int_equal(parse(ls_flags, NLS, v, false, "---sort", rest, sizeof(rest), err), -ERR_INVAL);
	assert_string_equal(err, "bad flag syntax: ---sort");
	assert_int_equal(parse(ls_flags, NLS, v, false, "-=x", rest, sizeof(rest), err), -ERR_INVAL);
	assert_string_equal(err, "bad flag syntax: -=x");
	assert_int_equal(parse(ls_flags, NLS, v, false, "--sort=nope", rest, sizeof(rest), err), -ERR_INVAL);
	assert_string_equal(err, "invalid boolean value \"nope\" for -sort: parse error");
	assert_int_equal(parse(set_flags, NSET, s, true, "--ttl", rest, sizeof(rest), err), -ERR_INVAL);
	assert_string_equal(err, "flag needs an argument: -ttl");
	assert_int_equal(parse(set_flags, NSET, s, true, "--ttl abc /x y", rest, sizeof(rest), err), -ERR_INVAL);
	assert_string_equal(err, "invalid value \"abc\" for flag -ttl: parse error");
	assert_int_equal(parse(set_flags, NSET, s, true, "--ttl 99999999999999999999 /x", rest, sizeof(rest), err),
		-ERR_INVAL);
	assert_string_equal(err, "invalid value \"99999999999999999999\" for flag -ttl: value out of range");
	assert_int_equal(parse(ls_flags, NLS, v, false, "--timeout 1", rest, sizeof(rest), err), -ERR_INVAL);
	assert_string_equal(err, "invalid value \"1\" for flag -timeout: parse error");
	/* The names come in declaration order, later one first, whatever the command line's order. */
	assert_int_equal(parse(ls_flags, NLS, v, false, "-q --quorum /x", rest, sizeof(rest), err), -ERR_EXIST);
	assert_string_equal(err, "Cannot use two forms of the same flag: q quorum");
	assert_int_equal(parse(ls_flags, NLS, v, false, "--quorum -q", rest, sizeof(rest), err), -ERR_EXIST);
	assert_string_equal(err, "Cannot use two forms of the same flag: q quorum");
	/* The value is quoted as Go's %q. */
	assert_int_equal(parse(set_flags, NSET, s, true, "--ttl=a\"b\x01", rest, sizeof(rest), err), -ERR_INVAL);
	assert_string_equal(err, "invalid value \"a\\\"b\\x01\" for flag -ttl: parse error");
}

static void
test_parse_nomem(void **state)
{
	struct ctl_val v[NSET];
	char rest[256], err[CTL_ERRMSG_BYTES];

	(void)state;
	for (long n = 0; n < 3; n++) {
		int rc;

		mem_fail_after(n);
		rc = parse(set_flags, NSET, v, true, "/foo bar --ttl 5", rest, sizeof(rest), err);
		mem_fail_reset();
		assert_true(rc == 0 || rc == -ERR_NOMEM);
	}
}

static void
test_quote(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(ctl_quote(&b, "a\"\\\n\t\x7f\xff\xc3\xa9\xe2\x80\xa8", 12), 0);
	assert_string_equal(buf_cstr(&b), "\"a\\\"\\\\\\n\\t\\x7f\\xff\xc3\xa9\\u2028\"");
	buf_free(&b);
}

static const struct ctl_cmd set_cmd = {
	"set", NULL, "set the value of a key", "<key> <value>",
	"Set sets the value of a key.\n\n"
	"   When <value> begins with '-', <value> is interpreted as a flag.\n"
	"   Insert '--' for workaround:\n\n"
	"   $ set -- <key> <value>",
	set_flags, 3, NULL, 0, NULL,
};

static const struct ctl_cmd member_subs[] = {
	{ "list", NULL, "enumerate existing cluster members", " ", NULL, NULL, 0, NULL, 0, NULL },
	{ "add", NULL, "add a new member to the etcd cluster", "<name> <peerURL>", NULL, NULL, 0, NULL, 0, NULL },
	{ "remove", NULL, "remove an existing member from the etcd cluster", "<memberID>", NULL, NULL, 0, NULL, 0,
		NULL },
	{ "update", NULL, "update an existing member in the etcd cluster", "<memberID> <peerURLs>", NULL, NULL, 0,
		NULL, 0, NULL },
};

static const struct ctl_cmd member_cmd = {
	"member", NULL, "member add, remove and list subcommands", NULL, NULL, NULL, 0, member_subs, 4, NULL,
};

static void
test_help_texts(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(ctl_help_cmd(&b, "etcdctl", &set_cmd), 0);
	assert_string_equal(buf_cstr(&b),
		"NAME:\n   etcdctl set - set the value of a key\n\nUSAGE:\n"
		"   etcdctl set [command options] <key> <value>\n\nDESCRIPTION:\n   Set sets the value of a key.\n\n"
		"   When <value> begins with '-', <value> is interpreted as a flag.\n   Insert '--' for workaround:\n\n"
		"   $ set -- <key> <value>\n\nOPTIONS:\n"
		"   --ttl value              key time-to-live in seconds (default: 0)\n"
		"   --swap-with-value value  previous value\n"
		"   --swap-with-index value  previous index (default: 0)\n   \n");
	buf_reset(&b);
	assert_int_equal(ctl_help_cmd(&b, "etcdctl member", &member_subs[0]), 0);
	assert_string_equal(buf_cstr(&b),
		"NAME:\n   etcdctl member list - enumerate existing cluster members\n\nUSAGE:\n   etcdctl member list  \n");
	buf_reset(&b);
	assert_int_equal(ctl_help_cmd(&b, "etcdctl", &member_cmd), 0);
	assert_string_equal(buf_cstr(&b),
		"NAME:\n   etcdctl member - member add, remove and list subcommands\n\nUSAGE:\n"
		"   etcdctl member [arguments...]\n");
	buf_reset(&b);
	assert_int_equal(ctl_help_group(&b, "etcdctl", &member_cmd), 0);
	assert_string_equal(buf_cstr(&b),
		"NAME:\n   etcdctl member - member add, remove and list subcommands\n\nUSAGE:\n"
		"   etcdctl member command [command options] [arguments...]\n\nCOMMANDS:\n"
		"   list    enumerate existing cluster members\n"
		"   add     add a new member to the etcd cluster\n"
		"   remove  remove an existing member from the etcd cluster\n"
		"   update  update an existing member in the etcd cluster\n\nOPTIONS:\n"
		"   --help, -h  show help\n   \n");
	buf_reset(&b);
	assert_int_equal(ctl_help_group_app(&b, "etcdctl", &member_cmd, "2.3.8"), 0);
	assert_string_equal(buf_cstr(&b),
		"NAME:\n   etcdctl member - member add, remove and list subcommands\n\nUSAGE:\n"
		"   etcdctl member [global options] command [command options] [arguments...]\n\nVERSION:\n   2.3.8\n\n"
		"COMMANDS:\n"
		"   list    enumerate existing cluster members\n"
		"   add     add a new member to the etcd cluster\n"
		"   remove  remove an existing member from the etcd cluster\n"
		"   update  update an existing member in the etcd cluster\n\nGLOBAL OPTIONS:\n"
		"   --help, -h  show help\n");
	buf_reset(&b);
	assert_int_equal(ctl_help_app(&b, "etcdctl", "A simple command line client for etcd.", "2.3.8", member_subs, 2,
		set_flags, NSET), 0);
	assert_string_equal(buf_cstr(&b),
		"NAME:\n   etcdctl - A simple command line client for etcd.\n\nUSAGE:\n"
		"   etcdctl [global options] command [command options] [arguments...]\n\nVERSION:\n   2.3.8\n\n"
		"COMMANDS:\n   list  enumerate existing cluster members\n   add   add a new member to the etcd cluster\n\n"
		"GLOBAL OPTIONS:\n"
		"   --ttl value              key time-to-live in seconds (default: 0)\n"
		"   --swap-with-value value  previous value\n"
		"   --swap-with-index value  previous index (default: 0)\n"
		"   --help, -h               show help\n");
	buf_free(&b);
	assert_ptr_equal(ctl_cmd_find(member_subs, 4, "remove"), &member_subs[2]);
	assert_null(ctl_cmd_find(member_subs, 4, "h"));
}

static void
test_global_flags_help(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(ctl_help_app(&b, "etcdctl", "u", "2.3.8", NULL, 0, ctl_global_flags, CTL_G_COUNT), 0);
	assert_non_null(strstr(buf_cstr(&b),
		"   --output simple, -o simple       output response in the given format (simple, `extended` or `json`) (default: \"simple\")\n"));
	assert_non_null(strstr(buf_cstr(&b),
		"   --timeout value                  connection timeout per request (default: 2s)\n"));
	assert_non_null(strstr(buf_cstr(&b), "   --version, -v                    print the version\n"));
	buf_free(&b);
	assert_int_equal(ctl_flag_find(ctl_global_flags, CTL_G_COUNT, "C"), CTL_G_PEERS);
	assert_int_equal(ctl_flag_find(ctl_global_flags, CTL_G_COUNT, "D"), CTL_G_DISCOVERY_SRV);
	assert_int_equal(ctl_flag_find(ctl_global_flags, CTL_G_COUNT, "u"), CTL_G_USERNAME);
	assert_int_equal(ctl_flag_find(ctl_global_flags, CTL_G_COUNT, "nope"), -1);
}

static void
test_url_escaping(void **state)
{
	struct buf b = BUF_INIT;
	struct ctl_params ps = { .n = 0 };

	(void)state;
	assert_int_equal(ctl_url_escape_path(&b, "/sp ace/q?x#y%z!*()$&+,:;=@~", 28), 0);
	assert_string_equal(buf_cstr(&b), "/sp%20ace/q%3Fx%23y%25z%21%2A%28%29$&+,:;=@~");
	buf_reset(&b);
	assert_int_equal(ctl_url_escape_query(&b, "v a&l=u+e/\xc3\xa9", 12), 0);
	assert_string_equal(buf_cstr(&b), "v+a%26l%3Du%2Be%2F%C3%A9");
	buf_reset(&b);
	ctl_params_set(&ps, "sorted", "false");
	ctl_params_set(&ps, "quorum", "false");
	ctl_params_set(&ps, "recursive", "true");
	ctl_params_set(&ps, "recursive", "false");
	assert_int_equal(ctl_params_encode(&b, &ps), 0);
	assert_string_equal(buf_cstr(&b), "quorum=false&recursive=false&sorted=false");
	buf_free(&b);
}

static void
check_canon(const char *in, const char *want)
{
	struct buf b = BUF_INIT;

	assert_int_equal(ctl_url_canonical_path(&b, in, strlen(in)), 0);
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
}

static void
test_canonical_path(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	check_canon("", "/");
	check_canon("foo", "/foo");
	check_canon("/v2/keys/", "/v2/keys/");
	check_canon("/v2/keys//a/./b/../c/", "/v2/keys/a/c/");
	check_canon("/foo//x", "/foo/x");
	check_canon("/../..", "/");
	check_canon("/a/b/..", "/a");
	assert_int_equal(ctl_url_join_path(&b, "", "/v2/members"), 0);
	assert_string_equal(buf_cstr(&b), "/v2/members");
	buf_reset(&b);
	assert_int_equal(ctl_url_join_path(&b, "/v2/auth/users", "a/../b"), 0);
	assert_string_equal(buf_cstr(&b), "/v2/auth/users/b");
	buf_free(&b);
}

static void
test_endpoint_parse(void **state)
{
	struct ctl_endpoint ep;
	char err[256];

	(void)state;
	assert_int_equal(ctl_endpoint_parse("http://127.0.0.1:2379", &ep, err, sizeof(err)), 0);
	assert_string_equal(ep.str, "http://127.0.0.1:2379");
	assert_string_equal(ep.scheme_host, "http://127.0.0.1:2379");
	assert_string_equal(ep.path, "");
	ctl_endpoint_free(&ep);
	assert_int_equal(ctl_endpoint_parse("HTTP://h:1/pre/fix", &ep, err, sizeof(err)), 0);
	assert_string_equal(ep.str, "http://h:1/pre/fix");
	assert_string_equal(ep.path, "/pre/fix");
	ctl_endpoint_free(&ep);
	assert_int_equal(ctl_endpoint_parse("127.0.0.1:2379", &ep, err, sizeof(err)), -ERR_PARSE);
	assert_string_equal(err, "parse \"127.0.0.1:2379\": first path segment in URL cannot contain colon");
}

static void
test_client_endpoints(void **state)
{
	struct ctl_client cl;
	char *eps[3] = { "http://a:1", "http://b:2", "http://c:3" };
	char err[256];
	struct buf b = BUF_INIT;

	(void)state;
	memset(&cl, 0, sizeof(cl));
	cl.rand_state = 42;
	assert_int_equal(ctl_client_set_endpoints(&cl, eps, 0, err, sizeof(err)), -ERR_INVAL);
	assert_string_equal(err, "client: no endpoints available");
	assert_int_equal(ctl_client_set_endpoints(&cl, eps, 3, err, sizeof(err)), 0);
	assert_int_equal(cl.neps, 3);
	/* A permutation of the three. */
	assert_int_equal(ctl_client_endpoints_str(&b, &cl, ","), 0);
	assert_int_equal(strlen(buf_cstr(&b)), strlen("http://a:1,http://b:2,http://c:3"));
	assert_non_null(strstr(buf_cstr(&b), "http://a:1"));
	assert_non_null(strstr(buf_cstr(&b), "http://b:2"));
	assert_non_null(strstr(buf_cstr(&b), "http://c:3"));
	buf_free(&b);
	ctl_client_free(&cl);
}

static const char *resp_body =
	"{\"action\":\"set\",\"node\":{\"key\":\"/j\",\"value\":\"a<b>&c\\\"d\\\\e\\tf\\bg\\fh\\u0001i\\u007fj\\u2028k\\ufffdl\xc3\xa9m/n\","
	"\"modifiedIndex\":38,\"createdIndex\":37,\"ttl\":100,\"expiration\":\"2026-11-22T03:40:32.881447600Z\"},"
	"\"prevNode\":{\"key\":\"/j\",\"value\":\"old\",\"modifiedIndex\":5,\"createdIndex\":5}}";

static void
test_response_formats(void **state)
{
	struct ctl_resp r;
	struct buf out = BUF_INIT, err = BUF_INIT;
	char msg[128];

	(void)state;
	assert_int_equal(ctl_resp_parse(&r, resp_body, strlen(resp_body), "39", msg, sizeof(msg)), 0);
	assert_int_equal(r.index, 39);
	assert_int_equal(ctl_print_response(&out, &err, &r, CTL_FMT_SIMPLE, "simple"), 0);
	assert_string_equal(buf_cstr(&out), "a<b>&c\"d\\e\tf\bg\fh\001i\177j\xe2\x80\xa8k\xef\xbf\xbdl\xc3\xa9m/n\n");
	buf_reset(&out);
	assert_int_equal(ctl_print_response(&out, &err, &r, CTL_FMT_EXTENDED, "extended"), 0);
	assert_string_equal(buf_cstr(&out), "Key: /j\nCreated-Index: 37\nModified-Index: 38\nPrevNode.Value: old\n"
		"TTL: 100\nIndex: 39\n\na<b>&c\"d\\e\tf\bg\fh\001i\177j\xe2\x80\xa8k\xef\xbf\xbdl\xc3\xa9m/n\n");
	buf_reset(&out);
	assert_int_equal(ctl_print_response(&out, &err, &r, CTL_FMT_JSON, "json"), 0);
	/* Go's json.Marshal of client.Response: field order, HTML escaping,
	 * \u0008 and \u000c, trailing zeros of the time's fraction dropped. */
	assert_string_equal(buf_cstr(&out),
		"{\"action\":\"set\",\"node\":{\"key\":\"/j\",\"value\":\"a\\u003cb\\u003e\\u0026c\\\"d\\\\e\\tf\\u0008g\\u000ch\\u0001i\x7fj\\u2028k\xef\xbf\xbdl\xc3\xa9m/n\","
		"\"nodes\":null,\"createdIndex\":37,\"modifiedIndex\":38,\"expiration\":\"2026-11-22T03:40:32.8814476Z\",\"ttl\":100},"
		"\"prevNode\":{\"key\":\"/j\",\"value\":\"old\",\"nodes\":null,\"createdIndex\":5,\"modifiedIndex\":5}}\n");
	buf_reset(&out);
	assert_int_equal(ctl_print_response(&out, &err, &r, CTL_FMT_OTHER, "yaml"), 0);
	assert_string_equal(buf_cstr(&out), "");
	assert_string_equal(buf_cstr(&err), "Unsupported output format: yaml\n");
	ctl_resp_free(&r);
	buf_free(&out);
	buf_free(&err);
}

static void
test_response_delete_and_ls(void **state)
{
	static const char del[] = "{\"action\":\"delete\",\"node\":{\"key\":\"/foo\",\"modifiedIndex\":9,\"createdIndex\":6},"
		"\"prevNode\":{\"key\":\"/foo\",\"value\":\"bar3\",\"modifiedIndex\":6,\"createdIndex\":6}}";
	static const char ls[] = "{\"action\":\"get\",\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/d\",\"dir\":true,"
		"\"nodes\":[{\"key\":\"/d/a\",\"value\":\"1\",\"modifiedIndex\":8,\"createdIndex\":8},{\"key\":\"/d/b\",\"dir\":true,"
		"\"nodes\":[],\"modifiedIndex\":9,\"createdIndex\":9}],\"modifiedIndex\":7,\"createdIndex\":7},"
		"{\"key\":\"/foo\",\"value\":\"x\",\"modifiedIndex\":6,\"createdIndex\":6}]}}";
	struct ctl_resp r;
	struct buf out = BUF_INIT, err = BUF_INIT;
	char msg[128];

	(void)state;
	assert_int_equal(ctl_resp_parse(&r, del, strlen(del), "9", msg, sizeof(msg)), 0);
	assert_int_equal(ctl_print_response(&out, &err, &r, CTL_FMT_SIMPLE, "simple"), 0);
	assert_string_equal(buf_cstr(&out), "PrevNode.Value: bar3\n");
	buf_reset(&out);
	assert_int_equal(ctl_print_response(&out, &err, &r, CTL_FMT_EXTENDED, "extended"), 0);
	assert_string_equal(buf_cstr(&out),
		"Key: /foo\nCreated-Index: 6\nModified-Index: 9\nPrevNode.Value: bar3\nTTL: 0\nIndex: 9\n");
	buf_reset(&out);
	ctl_resp_free(&r);

	assert_int_equal(ctl_resp_parse(&r, ls, strlen(ls), NULL, msg, sizeof(msg)), 0);
	assert_int_equal(ctl_print_ls(&out, &err, &r, CTL_FMT_SIMPLE, "simple", true), 0);
	assert_string_equal(buf_cstr(&out), "/d/\n/d/a\n/d/b/\n/foo\n");
	buf_reset(&out);
	assert_int_equal(ctl_print_ls(&out, &err, &r, CTL_FMT_SIMPLE, "simple", false), 0);
	assert_string_equal(buf_cstr(&out), "/d\n/d/a\n/d/b\n/foo\n");
	buf_reset(&out);
	assert_int_equal(ctl_print_ls(&out, &err, &r, CTL_FMT_JSON, "json", false), 0);
	assert_string_equal(buf_cstr(&out),
		"{\"action\":\"get\",\"node\":{\"key\":\"\",\"dir\":true,\"value\":\"\",\"nodes\":[{\"key\":\"/d\",\"dir\":true,"
		"\"value\":\"\",\"nodes\":[{\"key\":\"/d/a\",\"value\":\"1\",\"nodes\":null,\"createdIndex\":8,\"modifiedIndex\":8},"
		"{\"key\":\"/d/b\",\"dir\":true,\"value\":\"\",\"nodes\":[],\"createdIndex\":9,\"modifiedIndex\":9}],"
		"\"createdIndex\":7,\"modifiedIndex\":7},{\"key\":\"/foo\",\"value\":\"x\",\"nodes\":null,\"createdIndex\":6,"
		"\"modifiedIndex\":6}],\"createdIndex\":0,\"modifiedIndex\":0},\"prevNode\":null}\n");
	ctl_resp_free(&r);
	buf_free(&out);
	buf_free(&err);
}

static void
test_response_rejects(void **state)
{
	static const char *bad[] = {
		"not json", "[1]", "{\"node\":{\"key\":5}}", "{\"node\":{\"createdIndex\":-1}}",
		"{\"node\":{\"createdIndex\":1.5}}", "{\"node\":{\"expiration\":\"yesterday\"}}",
		"{\"node\":{\"nodes\":{}}}", "{\"action\":7}", "{\"node\":{\"dir\":\"yes\"}}",
	};
	struct ctl_resp r;
	char msg[128];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ctl_resp_parse(&r, bad[i], strlen(bad[i]), NULL, msg, sizeof(msg)), -ERR_PARSE);
	assert_int_equal(ctl_resp_parse(&r, "{}", 2, "12x", msg, sizeof(msg)), -ERR_RANGE);
	assert_string_equal(msg, "strconv.ParseUint: parsing \"12x\": invalid syntax");
	/* Offsets other than zero stay; a zero offset becomes Z. */
	{
		static const char t1[] = "{\"node\":{\"expiration\":\"2026-01-02T03:04:05.500+02:00\"}}";

		assert_int_equal(ctl_resp_parse(&r, t1, strlen(t1), NULL, msg, sizeof(msg)), 0);
	}
	assert_string_equal(r.node->expiration, "2026-01-02T03:04:05.5+02:00");
	ctl_resp_free(&r);
	{
		static const char t2[] = "{\"node\":{\"expiration\":\"2026-01-02T03:04:05.000+00:00\"}}";

		assert_int_equal(ctl_resp_parse(&r, t2, strlen(t2), NULL, msg, sizeof(msg)), 0);
	}
	assert_string_equal(r.node->expiration, "2026-01-02T03:04:05Z");
	ctl_resp_free(&r);
}

static void
test_errors(void **state)
{
	struct ctl_err e = { 0 };
	struct buf b = BUF_INIT;
	static const char body[] = "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/foo\",\"index\":12}";

	(void)state;
	assert_int_equal(ctl_err_from_body(&e, body, strlen(body)), 0);
	assert_int_equal(ctl_err_handle_text(&b, &e), 0);
	assert_string_equal(buf_cstr(&b), "Error:  100: Key not found (/foo) [12]\n");
	assert_false(ctl_err_is_conn(&e));
	buf_reset(&b);
	/* Keys match case-insensitively, as json.Unmarshal into a struct. */
	assert_int_equal(ctl_err_from_body(&e, "{\"ERRORCODE\":110,\"Message\":\"m\"}", 31), 0);
	assert_int_equal(ctl_err_text(&b, &e), 0);
	assert_string_equal(buf_cstr(&b), "110: m () [0]");
	buf_reset(&b);
	assert_int_equal(ctl_err_from_body(&e, "404 page not found", 18), -ERR_PARSE);
	assert_int_equal(ctl_err_from_body(&e, "{\"errorCode\":\"x\"}", 17), -ERR_PARSE);

	ctl_err_free(&e);
	e.kind = CTL_E_CLUSTER;
	e.n = 2;
	snprintf(e.cmsg[0], sizeof(e.cmsg[0]), "dial tcp 127.0.0.1:1: connect: connection refused");
	snprintf(e.cmsg[1], sizeof(e.cmsg[1]), "dial tcp 127.0.0.1:2: connect: connection refused");
	e.cconn[0] = e.cconn[1] = true;
	assert_true(ctl_err_is_conn(&e));
	assert_int_equal(ctl_err_handle_text(&b, &e), 0);
	assert_string_equal(buf_cstr(&b),
		"Error:  client: etcd cluster is unavailable or misconfigured; error #0: dial tcp 127.0.0.1:1: connect: connection refused\n"
		"; error #1: dial tcp 127.0.0.1:2: connect: connection refused\n\n"
		"error #0: dial tcp 127.0.0.1:1: connect: connection refused\n"
		"error #1: dial tcp 127.0.0.1:2: connect: connection refused\n\n");
	e.cconn[1] = false;
	assert_false(ctl_err_is_conn(&e));
	buf_reset(&b);
	ctl_err_msg(&e, true, "context deadline exceeded");
	assert_true(ctl_err_is_conn(&e));
	assert_int_equal(ctl_err_handle_text(&b, &e), 0);
	assert_string_equal(buf_cstr(&b), "Error:  context deadline exceeded\n");
	ctl_err_free(&e);
	buf_free(&b);
}

static void
test_go_json_error(void **state)
{
	char msg[128];

	(void)state;
	ctl_go_json_error("404 page not found\n", 19, msg, sizeof(msg));
	assert_string_equal(msg, "invalid character 'p' after top-level value");
	ctl_go_json_error("<html>", 6, msg, sizeof(msg));
	assert_string_equal(msg, "invalid character '<' looking for beginning of value");
	ctl_go_json_error("  ", 2, msg, sizeof(msg));
	assert_string_equal(msg, "unexpected end of JSON input");
	ctl_go_json_error("\n x", 3, msg, sizeof(msg));
	assert_string_equal(msg, "invalid character 'x' looking for beginning of value");
}

static void
test_err_from_message(void **state)
{
	char body[64];
	struct ctl_result res = { 0 };
	struct ctl_err e = { 0 };

	(void)state;
	/* The auth and members APIs: "message" in any case, else empty. */
	snprintf(body, sizeof(body), "{\"MESSAGE\":\"User foo not found\"}");
	res.status = 404;
	res.body = body;
	res.body_len = strlen(body);
	ctl_err_from_message(&e, &res);
	assert_int_equal(e.kind, CTL_E_MSG);
	assert_false(e.conn);
	assert_string_equal(e.msg, "User foo not found");
	ctl_err_free(&e);

	memset(&e, 0, sizeof(e));
	snprintf(body, sizeof(body), "{\"error\":\"x\"}");
	res.body_len = strlen(body);
	ctl_err_from_message(&e, &res);
	assert_int_equal(e.kind, CTL_E_MSG);
	assert_string_equal(e.msg, "");
	ctl_err_free(&e);

	/* Not JSON: Go's decoder error, the same text ctl_err_go_json gives. */
	memset(&e, 0, sizeof(e));
	snprintf(body, sizeof(body), "404 page not found\n");
	res.body_len = strlen(body);
	ctl_err_from_message(&e, &res);
	assert_int_equal(e.kind, CTL_E_MSG);
	assert_string_equal(e.msg, "invalid character 'p' after top-level value");
	ctl_err_free(&e);

	memset(&e, 0, sizeof(e));
	ctl_err_go_json(&e, "<html>", 6);
	assert_int_equal(e.kind, CTL_E_MSG);
	assert_false(e.conn);
	assert_string_equal(e.msg, "invalid character '<' looking for beginning of value");
	ctl_err_free(&e);
}

static void
test_members(void **state)
{
	static const char body[] = "{\"members\":[{\"id\":\"ffc390b1cf7918f\",\"name\":\"\",\"peerURLs\":[\"http://127.0.0.1:23811\"],"
		"\"clientURLs\":[]},{\"ID\":\"bdae9bbc11dd390d\",\"Name\":\"default\",\"peerURLs\":[\"http://127.0.0.1:23801\"],"
		"\"clientURLs\":[\"http://127.0.0.1:23791\",\"http://127.0.0.1:4001\"]}]}";
	struct ctl_members ms;
	struct ctl_member m;

	(void)state;
	assert_int_equal(ctl_members_parse(&ms, body, strlen(body)), 0);
	assert_int_equal(ms.n, 2);
	assert_string_equal(ms.m[0].id, "ffc390b1cf7918f");
	assert_string_equal(ms.m[0].name, "");
	assert_int_equal(ms.m[0].nclient, 0);
	assert_string_equal(ms.m[1].id, "bdae9bbc11dd390d");
	assert_string_equal(ms.m[1].name, "default");
	assert_int_equal(ms.m[1].nclient, 2);
	assert_string_equal(ms.m[1].client_urls[1], "http://127.0.0.1:4001");
	ctl_members_free(&ms);
	assert_int_equal(ctl_members_parse(&ms, "{}", 2), 0);
	assert_int_equal(ms.n, 0);
	assert_int_equal(ctl_members_parse(&ms, "{\"members\":[{\"id\":1}]}", 22), -ERR_PARSE);
	assert_int_equal(ctl_members_parse(&ms, "{\"members\":{}}", 14), -ERR_PARSE);
	assert_int_equal(ctl_member_parse_one(&m, "{\"id\":\"a\",\"peerURLs\":[\"u\"]}", 27), 0);
	assert_string_equal(m.id, "a");
	assert_int_equal(m.npeer, 1);
	ctl_member_free(&m);
}

static void
check_peer(const char *list, int want, const char *text)
{
	char copy[256], *urls[8], err[256];
	size_t n = 0;
	struct buf b = BUF_INIT;

	snprintf(copy, sizeof(copy), "%s", list);
	for (char *t = strtok(copy, ","); t != NULL && n < 8; t = strtok(NULL, ","))
		urls[n++] = t;
	assert_int_equal(ctl_peer_urls_body(&b, urls, n, err, sizeof(err)), want);
	assert_string_equal(want == 0 ? buf_cstr(&b) : err, text);
	buf_free(&b);
}

static void
test_peer_urls(void **state)
{
	(void)state;
	check_peer("http://127.0.0.1:2,http://127.0.0.1:1", 0, "{\"peerURLs\":[\"http://127.0.0.1:1\",\"http://127.0.0.1:2\"]}");
	check_peer(" https://[::1]:2380 ", 0, "{\"peerURLs\":[\"https://[::1]:2380\"]}");
	check_peer("bogus", -ERR_PARSE, "URL scheme must be http, https, unix, or unixs: bogus");
	check_peer("http://127.0.0.1", -ERR_PARSE, "URL address does not have the form \"host:port\": http://127.0.0.1");
	check_peer("http://127.0.0.1:1/path", -ERR_PARSE, "URL must not contain a path: http://127.0.0.1:1/path");
	check_peer("", -ERR_PARSE, "no valid URLs given");
}

static void
test_exec_watch_helpers(void **state)
{
	char *a1[] = { "/x", "--", "sh", "-c", "echo" };
	char *a2[] = { "echo", "hi", "/x/a" };
	char *envp[] = { "PATH=/bin", "ETCD_WATCH_KEY=old", "HOME=/root", NULL };
	const char *key;
	int off, n;
	char **env;

	(void)state;
	ctl_exec_watch_split(5, a1, &key, &off, &n);
	assert_string_equal(key, "/x");
	assert_int_equal(off, 2);
	assert_int_equal(n, 3);
	ctl_exec_watch_split(3, a2, &key, &off, &n);
	assert_string_equal(key, "/x/a");
	assert_int_equal(off, 0);
	assert_int_equal(n, 2);
	env = ctl_exec_watch_env(envp, "set", 42, "/k", 2, "v\0w", 3);
	assert_non_null(env);
	assert_string_equal(env[0], "PATH=/bin");
	assert_string_equal(env[1], "HOME=/root");
	assert_string_equal(env[2], "ETCD_WATCH_ACTION=set");
	assert_string_equal(env[3], "ETCD_WATCH_MODIFIED_INDEX=42");
	assert_string_equal(env[4], "ETCD_WATCH_KEY=/k");
	assert_string_equal(env[5], "ETCD_WATCH_VALUE=v");
	assert_null(env[6]);
	ctl_env_free(env);
	for (long k = 0; k < 8; k++) {
		mem_fail_after(k);
		env = ctl_exec_watch_env(envp, "set", 1, "/k", 2, "v", 1);
		mem_fail_reset();
		ctl_env_free(env);
	}
}

static void
test_dns(void **state)
{
	unsigned char q[512], a[512];
	char hosts[4][CTL_DNS_NAME_BYTES_MAX + 8];
	int qlen, len;

	(void)state;
	qlen = ctl_dns_build_query(q, sizeof(q), 0x1234, "_etcd-client._tcp.example.com");
	assert_int_equal(qlen, 12 + 31 + 4);
	assert_int_equal(q[0], 0x12);
	assert_int_equal(q[1], 0x34);
	assert_int_equal(q[2], 0x01);
	assert_int_equal(q[12], 12);
	assert_memory_equal(q + 13, "_etcd-client", 12);
	assert_int_equal(ctl_dns_build_query(q, sizeof(q), 1, "a..b"), -ERR_INVAL);
	assert_int_equal(ctl_dns_build_query(q, sizeof(q), 1, ""), -ERR_INVAL);
	/* A refused name leaves the buffer as it was. */
	assert_int_equal(q[1], 0x34);

	/* An answer: the question echoed, then two SRV records (the second with a
	 * compressed target pointing into the first), priorities 20 and 10. */
	memcpy(a, q, (size_t)qlen);
	a[2] = 0x81;
	a[3] = 0x80;
	a[7] = 2;
	len = qlen;
	{
		static const unsigned char rr1[] = {
			0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60, 0, 25,
			0, 20, 0, 5, 0x09, 0x53, /* prio 20, weight 5, port 2387 */
			5, 'e', 't', 'c', 'd', '1', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
		};
		static const unsigned char rr2[] = {
			0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60, 0, 14,
			0, 10, 0, 5, 0x09, 0x53,
			5, 'e', 't', 'c', 'd', '2', 0xc0, 0, /* pointer patched below */
		};
		unsigned char r2[sizeof(rr2)];
		size_t ex_off = (size_t)len + 12 + 6 + 6;

		memcpy(a + len, rr1, sizeof(rr1));
		len += (int)sizeof(rr1);
		memcpy(r2, rr2, sizeof(rr2));
		r2[sizeof(r2) - 1] = (unsigned char)ex_off;
		memcpy(a + len, r2, sizeof(r2));
		len += (int)sizeof(r2);
	}
	assert_int_equal(ctl_dns_parse_srv(a, (size_t)len, 0x1234, hosts, 4), 2);
	assert_string_equal(hosts[0], "etcd2.example.com.:2387");
	assert_string_equal(hosts[1], "etcd1.example.com.:2387");
	/* Wrong id, truncated packet, pointer loop, NXDOMAIN. */
	assert_int_equal(ctl_dns_parse_srv(a, (size_t)len, 0x1235, hosts, 4), -ERR_PARSE);
	assert_int_equal(ctl_dns_parse_srv(a, (size_t)len - 3, 0x1234, hosts, 4), -ERR_PARSE);
	a[len - 1] = (unsigned char)(len - 2);
	a[len - 2] = 0xc0;
	assert_int_equal(ctl_dns_parse_srv(a, (size_t)len, 0x1234, hosts, 4), -ERR_PARSE);
	a[3] = 0x83;
	assert_int_equal(ctl_dns_parse_srv(a, (size_t)len, 0x1234, hosts, 4), -ERR_NOTFOUND);
	/* Every truncation of a valid answer is refused or parsed, never overread. */
	for (int cut = 0; cut < qlen; cut++)
		assert_true(ctl_dns_parse_srv(q, (size_t)cut, 0x1234, hosts, 4) < 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_reorder),
		cmocka_unit_test(test_parse_syntax),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_nomem),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_help_texts),
		cmocka_unit_test(test_global_flags_help),
		cmocka_unit_test(test_url_escaping),
		cmocka_unit_test(test_canonical_path),
		cmocka_unit_test(test_endpoint_parse),
		cmocka_unit_test(test_client_endpoints),
		cmocka_unit_test(test_response_formats),
		cmocka_unit_test(test_response_delete_and_ls),
		cmocka_unit_test(test_response_rejects),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_go_json_error),
		cmocka_unit_test(test_err_from_message),
		cmocka_unit_test(test_members),
		cmocka_unit_test(test_peer_urls),
		cmocka_unit_test(test_exec_watch_helpers),
		cmocka_unit_test(test_dns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
