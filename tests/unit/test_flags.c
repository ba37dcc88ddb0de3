/* Unit tests for core/flags: Go flag syntax and messages, etcd's
 * environment rules, lists, aliases, help output and the value parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corebox/err.h"
#include "corebox/flags.h"
#include "corebox/mem.h"

struct cfg {
	const char *name;
	const char *data_dir;
	int debug;
	int64_t count;
	uint64_t snap;
	int64_t timeout;
	struct flags_list urls;
	struct flags_list peers;
	const char *state;
	const char *output;
	const char *secret;
};

static int
check_state(const char *value, void *dst, char *msg, size_t msg_size)
{
	const char *v = *(const char **)dst;

	if (strcmp(v, "new") == 0 || strcmp(v, "existing") == 0)
		return 0;
	snprintf(msg, msg_size, "valid values are: new, existing (got %s)", value);
	return -ERR_PARSE;
}

static const struct flags_spec specs[] = {
	FLAGS_SPEC("name", FLAGS_STRING, struct cfg, name, "default", "Human-readable name for this member."),
	FLAGS_SPEC("data-dir", FLAGS_STRING, struct cfg, data_dir, NULL, "Path to the data directory."),
	FLAGS_SPEC("debug", FLAGS_BOOL, struct cfg, debug, NULL, "Enable debug-level logging."),
	FLAGS_SPEC("count", FLAGS_INT, struct cfg, count, "-3", "A signed `number`."),
	FLAGS_SPEC("snapshot-count", FLAGS_UINT, struct cfg, snap, "10000", "Committed transactions\nper snapshot."),
	FLAGS_SPEC("timeout", FLAGS_DURATION, struct cfg, timeout, "1000ms", "Request timeout."),
	{ .name = "listen-client-urls", .type = FLAGS_LIST, .offset = offsetof(struct cfg, urls),
	  .def = "http://localhost:2379,http://localhost:4001", .help = "URLs to listen on.",
	  .flags = FLAGS_F_LAST_WINS },
	{ .name = "endpoints", .type = FLAGS_LIST, .offset = offsetof(struct cfg, peers),
	  .def = "http://127.0.0.1:2379", .help = "Endpoints.", .old = "peers,C" },
	{ .name = "initial-cluster-state", .type = FLAGS_STRING, .offset = offsetof(struct cfg, state),
	  .def = "new", .help = "Initial cluster state.", .check = check_state },
	{ .name = "output", .type = FLAGS_STRING, .offset = offsetof(struct cfg, output),
	  .def = "simple", .help = "Output format.", .alias = "o", .env = "MYOUT" },
	{ .name = "secret", .type = FLAGS_STRING, .offset = offsetof(struct cfg, secret),
	  .help = "Not from the environment.", .flags = FLAGS_F_NOENV | FLAGS_F_HIDDEN,
	  .deprecated = "secret is deprecated" },
};

static const struct flags_set set = {
	.prog = "etcd",
	.usage = "usage: etcd [flags]",
	.env_prefix = "ETCD",
	.specs = specs,
	.nspecs = sizeof(specs) / sizeof(specs[0]),
};

/* Notes collected by a test. */
struct notes {
	char text[2048];
};

static void
collect(void *arg, enum flags_note_level level, const char *msg)
{
	struct notes *n = arg;
	size_t len = strlen(n->text);

	snprintf(n->text + len, sizeof(n->text) - len, "%s:%s\n",
		level == FLAGS_NOTE_WARN ? "W" : "I", msg);
}

static char *empty_env[] = { NULL };

/* Parses a NULL-terminated list of arguments (argv[0] is added). */
static int
parse_env(const struct flags_set *s, struct cfg *c, struct flags_ctx *ctx, char **env,
	struct notes *notes, char **argv_out, ...)
{
	va_list ap;
	int argc = 1;
	const char *a;

	argv_out[0] = "etcd";
	va_start(ap, argv_out);
	while ((a = va_arg(ap, const char *)) != NULL)
		argv_out[argc++] = (char *)a;
	va_end(ap);
	argv_out[argc] = NULL;
	memset(ctx, 0, sizeof(*ctx));
	ctx->envp = env;
	if (notes != NULL) {
		notes->text[0] = '\0';
		ctx->note = collect;
		ctx->note_arg = notes;
	}
	return flags_parse(s, c, argc, argv_out, ctx);
}

#define PARSE(c, ctx, argv, ...) parse_env(&set, (c), (ctx), empty_env, NULL, (argv), __VA_ARGS__, NULL)

static void
test_defaults(void **state)
{
	struct cfg c;
	struct flags_ctx ctx;
	char *argv[4];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse_env(&set, &c, &ctx, empty_env, NULL, argv, NULL), 0);
	assert_string_equal(c.name, "default");
	assert_string_equal(c.data_dir, "");
	assert_int_equal(c.debug, 0);
	assert_int_equal(c.count, -3);
	assert_int_equal(c.snap, 10000);
	assert_int_equal(c.timeout, 1000 * FLAGS_NS_PER_MS);
	assert_int_equal(c.urls.n, 2);
	assert_string_equal(c.urls.v[1], "http://localhost:4001");
	assert_string_equal(c.state, "new");
	assert_int_equal(ctx.nargs, 0);
	assert_int_equal(flags_is_set(&set, &ctx, "name"), 0);
	flags_free(&set, &c);
	assert_null(c.urls.v);
}

static void
test_syntax_forms(void **state)
{
	struct cfg c;
	struct flags_ctx ctx;
	char *argv[16];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(PARSE(&c, &ctx, argv, "-name", "a", "--data-dir", "/d", "-count=7",
		"--snapshot-count=0x10", "-o", "json", "rest", "-debug"), 0);
	assert_string_equal(c.name, "a");
	assert_string_equal(c.data_dir, "/d");
	assert_int_equal(c.count, 7);
	assert_int_equal(c.snap, 16);
	assert_string_equal(c.output, "json");
	/* Go stops at the first positional argument. */
	assert_int_equal(c.debug, 0);
	assert_int_equal(ctx.nargs, 2);
	assert_string_equal(ctx.args[0], "rest");
	assert_string_equal(ctx.args[1], "-debug");
	assert_true(flags_is_set(&set, &ctx, "name"));
	assert_true(flags_is_set(&set, &ctx, "o"));
	assert_false(flags_is_set(&set, &ctx, "debug"));
	assert_false(flags_is_set(&set, &ctx, "nope"));
	assert_int_equal(ctx.source[0], FLAGS_SRC_CMDLINE);
	flags_free(&set, &c);

	/* "=" inside the value is kept; an empty value is a value. */
	assert_int_equal(PARSE(&c, &ctx, argv, "-name=a=b", "--data-dir="), 0);
	assert_string_equal(c.name, "a=b");
	assert_string_equal(c.data_dir, "");
	flags_free(&set, &c);

	/* The last occurrence wins for scalars. */
	assert_int_equal(PARSE(&c, &ctx, argv, "-name", "a", "-name", "b"), 0);
	assert_string_equal(c.name, "b");
	flags_free(&set, &c);
}

static void
test_bool_forms(void **state)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };
	struct cfg c;
	struct flags_ctx ctx;
	char *argv[8], arg[32];

	(void)state;
	memset(&c, 0, sizeof(c));
	for (size_t i = 0; i < 6; i++) {
		snprintf(arg, sizeof(arg), "-debug=%s", yes[i]);
		assert_int_equal(PARSE(&c, &ctx, argv, arg), 0);
		assert_int_equal(c.debug, 1);
		flags_free(&set, &c);
		snprintf(arg, sizeof(arg), "--debug=%s", no[i]);
		assert_int_equal(PARSE(&c, &ctx, argv, "-debug", arg), 0);
		assert_int_equal(c.debug, 0);
		flags_free(&set, &c);
	}
	/* A bool never takes the next argument: "false" is positional. */
	assert_int_equal(PARSE(&c, &ctx, argv, "--debug", "false", "-name", "x"), 0);
	assert_int_equal(c.debug, 1);
	assert_string_equal(c.name, "default");
	assert_int_equal(ctx.nargs, 3);
	assert_string_equal(ctx.args[0], "false");
	flags_free(&set, &c);

	assert_int_equal(PARSE(&c, &ctx, argv, "-debug=maybe"), -ERR_PARSE);
	assert_string_equal(ctx.errmsg, "invalid boolean value \"maybe\" for -debug: parse error");
	assert_int_equal(ctx.exit_code, 2);
	flags_free(&set, &c);
	assert_int_equal(PARSE(&c, &ctx, argv, "-debug="), -ERR_PARSE);
	assert_string_equal(ctx.errmsg, "invalid boolean value \"\" for -debug: parse error");
	flags_free(&set, &c);
}

static void
test_terminators(void **state)
{
	struct cfg c;
	struct flags_ctx ctx;
	char *argv[8];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(PARSE(&c, &ctx, argv, "-debug", "--", "-name", "x"), 0);
	assert_int_equal(c.debug, 1);
	assert_string_equal(c.name, "default");
	assert_int_equal(ctx.nargs, 2);
	assert_string_equal(ctx.args[0], "-name");
	flags_free(&set, &c);

	/* A lone dash is an argument. */
	assert_int_equal(PARSE(&c, &ctx, argv, "-", "-debug"), 0);
	assert_int_equal(c.debug, 0);
	assert_int_equal(ctx.nargs, 2);
	assert_string_equal(ctx.args[0], "-");
	flags_free(&set, &c);

	/* Nothing at all: argc 1, and even argc 0. */
	assert_int_equal(PARSE(&c, &ctx, argv, NULL), 0);
	assert_int_equal(ctx.nargs, 0);
	flags_free(&set, &c);
	memset(&ctx, 0, sizeof(ctx));
	ctx.envp = empty_env;
	assert_int_equal(flags_parse(&set, &c, 0, argv, &ctx), 0);
	assert_int_equal(ctx.nargs, 0);
	flags_free(&set, &c);
}

static void
test_interspersed(void **state)
{
	struct flags_set s = set;
	struct cfg c;
	struct flags_ctx ctx;
	char *argv[12];

	(void)state;
	s.opts = FLAGS_OPT_INTERSPERSED;
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse_env(&s, &c, &ctx, empty_env, NULL, argv, "get", "-o", "json", "/foo",
		"--debug", "--", "-x", NULL), 0);
	assert_string_equal(c.output, "json");
	assert_int_equal(c.debug, 1);
	assert_int_equal(ctx.nargs, 3);
	assert_string_equal(ctx.args[0], "get");
	assert_string_equal(ctx.args[1], "/foo");
	assert_string_equal(ctx.args[2], "-x");
	flags_free(&s, &c);
}

static void
test_errors(void **state)
{
	struct cfg c;
	struct flags_ctx ctx;
	char *argv[8];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(PARSE(&c, &ctx, argv, "--foo", "x"), -ERR_INVAL);
	assert_string_equal(ctx.errmsg, "flag provided but not defined: -foo");
	assert_int_equal(ctx.exit_code, 2);
	flags_free(&set, &c);

	assert_int_equal(PARSE(&c, &ctx, argv, "-foo=bar"), -ERR_INVAL);
	assert_string_equal(ctx.errmsg, "flag provided but not defined: -foo");
	flags_free(&set, &c);

	assert_int_equal(PARSE(&c, &ctx, argv, "---x"), -ERR_INVAL);
	assert_string_equal(ctx.errmsg, "bad flag syntax: ---x");
	flags_free(&set, &c);
	assert_int_equal(PARSE(&c, &ctx, argv, "-=x"), -ERR_INVAL);
	assert_string_equal(ctx.errmsg, "bad flag syntax: -=x");
	flags_free(&set, &c);

	assert_int_equal(PARSE(&c, &ctx, argv, "--name"), -ERR_INVAL);
	assert_string_equal(ctx.errmsg, "flag needs an argument: -name");
	flags_free(&set, &c);

	assert_int_equal(PARSE(&c, &ctx, argv, "--snapshot-count", "abc"), -ERR_PARSE);
	assert_string_equal(ctx.errmsg, "invalid value \"abc\" for flag -snapshot-count: parse error");
	flags_free(&set, &c);

	assert_int_equal(PARSE(&c, &ctx, argv, "--snapshot-count=99999999999999999999999"), -ERR_RANGE);
	assert_string_equal(ctx.errmsg,
		"invalid value \"99999999999999999999999\" for flag -snapshot-count: value out of range");
	flags_free(&set, &c);

	assert_int_equal(PARSE(&c, &ctx, argv, "--snapshot-count=-1"), -ERR_PARSE);
	assert_string_equal(ctx.errmsg, "invalid value \"-1\" for flag -snapshot-count: parse error");
	flags_free(&set, &c);

	assert_int_equal(PARSE(&c, &ctx, argv, "-timeout", "5"), -ERR_PARSE);
	assert_string_equal(ctx.errmsg, "invalid value \"5\" for flag -timeout: parse error");
	flags_free(&set, &c);

	/* Values are quoted as Go's %q. */
	assert_int_equal(PARSE(&c, &ctx, argv, "-count", "a\"b\\c\n\x01\x7f\xff\xc3\xa9"), -ERR_PARSE);
	assert_string_equal(ctx.errmsg,
		"invalid value \"a\\\"b\\\\c\\n\\x01\\x7f\\xff\xc3\xa9\" for flag -count: parse error");
	flags_free(&set, &c);
	assert_int_equal(PARSE(&c, &ctx, argv, "-count", "\xc2\xa0\xe2\x80\xa8\t\a"), -ERR_PARSE);
	assert_string_equal(ctx.errmsg,
		"invalid value \"\\u00a0\\u2028\\t\\a\" for flag -count: parse error");
	flags_free(&set, &c);
}

static void
test_check_callback(void **state)
{
	struct cfg c;
	struct flags_ctx ctx;
	char *argv[8];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(PARSE(&c, &ctx, argv, "--initial-cluster-state", "existing"), 0);
	assert_string_equal(c.state, "existing");
	flags_free(&set, &c);
	assert_int_equal(PARSE(&c, &ctx, argv, "--initial-cluster-state=bogus"), -ERR_PARSE);
	assert_string_equal(ctx.errmsg, "invalid value \"bogus\" for flag -initial-cluster-state: "
		"valid values are: new, existing (got bogus)");
	/* The rejected value did not replace the default. */
	assert_string_equal(c.state, "new");
	flags_free(&set, &c);
}

static void
test_lists(void **state)
{
	struct cfg c;
	struct flags_ctx ctx;
	char *argv[12];

	(void)state;
	memset(&c, 0, sizeof(c));
	/* Appending list: the first occurrence drops the default. */
	assert_int_equal(PARSE(&c, &ctx, argv, "--endpoints", "a,b", "-endpoints=c", "--endpoints", ",,d,"), 0);
	assert_int_equal(c.peers.n, 4);
	assert_string_equal(c.peers.v[0], "a");
	assert_string_equal(c.peers.v[2], "c");
	assert_string_equal(c.peers.v[3], "d");
	flags_free(&set, &c);

	/* Last-wins list (Go Value semantics). */
	assert_int_equal(PARSE(&c, &ctx, argv, "--listen-client-urls", "a,b", "--listen-client-urls", "c"), 0);
	assert_int_equal(c.urls.n, 1);
	assert_string_equal(c.urls.v[0], "c");
	flags_free(&set, &c);

	/* An empty value empties the list. */
	assert_int_equal(PARSE(&c, &ctx, argv, "--listen-client-urls="), 0);
	assert_int_equal(c.urls.n, 0);
	flags_free(&set, &c);
}

static void
test_alias_old_deprecated(void **state)
{
	struct cfg c;
	struct flags_ctx ctx;
	struct notes notes;
	char *argv[12];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse_env(&set, &c, &ctx, empty_env, &notes, argv, "-C", "x", "--peers=y",
		"--secret", "s", NULL), 0);
	assert_int_equal(c.peers.n, 2);
	assert_string_equal(c.peers.v[1], "y");
	assert_string_equal(c.secret, "s");
	assert_string_equal(notes.text,
		"W:flag -C is deprecated, use -endpoints\n"
		"W:flag -peers is deprecated, use -endpoints\n"
		"W:secret is deprecated\n");
	assert_true(flags_is_set(&set, &ctx, "peers"));
	flags_free(&set, &c);

	/* Without a note callback, warnings go to the error stream. */
	{
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		memset(&ctx, 0, sizeof(ctx));
		ctx.envp = empty_env;
		ctx.err = f;
		argv[0] = "etcd";
		argv[1] = "-C";
		argv[2] = "z";
		argv[3] = NULL;
		assert_int_equal(flags_parse(&set, &c, 3, argv, &ctx), 0);
		fclose(f);
		assert_string_equal(text, "flag -C is deprecated, use -endpoints\n");
		free(text);
		flags_free(&set, &c);
	}
}

static void
test_env(void **state)
{
	char *env[] = {
		"ETCD_DATA_DIR=/env/dir", "ETCD_DEBUG=true", "ETCD_SNAPSHOT_COUNT=5",
		"ETCD_NAME=", "MYOUT=extended", "ETCD_SECRET=no", "ETCD_ENDPOINTS=e1,e2",
		"PATH=/bin", NULL,
	};
	struct cfg c;
	struct flags_ctx ctx;
	struct notes notes;
	char *argv[12];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse_env(&set, &c, &ctx, env, &notes, argv, "--snapshot-count", "9", NULL), 0);
	assert_string_equal(c.data_dir, "/env/dir");
	assert_int_equal(c.debug, 1);
	assert_int_equal(c.snap, 9); /* the command line wins */
	assert_string_equal(c.name, "default"); /* empty variables are ignored */
	assert_string_equal(c.output, "extended"); /* spec->env */
	assert_string_equal(c.secret, ""); /* FLAGS_F_NOENV */
	assert_int_equal(c.peers.n, 2);
	assert_int_equal(ctx.source[1], FLAGS_SRC_ENV);
	assert_true(flags_is_set(&set, &ctx, "data-dir"));
	assert_string_equal(notes.text,
		"I:recognized and used environment variable ETCD_DATA_DIR=/env/dir\n"
		"I:recognized and used environment variable ETCD_DEBUG=true\n"
		"I:recognized and used environment variable ETCD_ENDPOINTS=e1,e2\n"
		"I:recognized and used environment variable MYOUT=extended\n");
	flags_free(&set, &c);
}

static void
test_env_errors(void **state)
{
	char *bad[] = { "ETCD_SNAPSHOT_COUNT=x", NULL };
	char *both[] = { "ETCD_NAME=a", NULL };
	char *unknown[] = { "ETCD_FOO=1", "ETCDCTL_API=2", "ETCD_NAME=n", NULL };
	struct flags_set s = set;
	struct cfg c;
	struct flags_ctx ctx;
	struct notes notes;
	char *argv[8];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse_env(&set, &c, &ctx, bad, NULL, argv, NULL), -ERR_PARSE);
	assert_string_equal(ctx.errmsg, "invalid value \"x\" for ETCD_SNAPSHOT_COUNT: parse error");
	assert_int_equal(ctx.exit_code, 1);
	flags_free(&set, &c);

	/* Shadowing is fine by default, an error with FLAGS_OPT_ENV_CONFLICT. */
	assert_int_equal(parse_env(&set, &c, &ctx, both, NULL, argv, "--name", "b", NULL), 0);
	assert_string_equal(c.name, "b");
	flags_free(&set, &c);
	s.opts = FLAGS_OPT_ENV_CONFLICT | FLAGS_OPT_ENV_WARN_UNKNOWN;
	assert_int_equal(parse_env(&s, &c, &ctx, both, NULL, argv, "--name", "b", NULL), -ERR_INVAL);
	assert_string_equal(ctx.errmsg, "conflicting environment variable \"ETCD_NAME\" is shadowed by "
		"corresponding command-line flag (either unset environment variable or disable flag)");
	assert_int_equal(ctx.exit_code, 1);
	flags_free(&s, &c);

	assert_int_equal(parse_env(&s, &c, &ctx, unknown, &notes, argv, NULL), 0);
	assert_string_equal(notes.text,
		"I:recognized and used environment variable ETCD_NAME=n\n"
		"W:unrecognized environment variable ETCD_FOO=1\n");
	flags_free(&s, &c);
}

/* Runs flags_process with captured streams; returns its result. */
static int
process(const struct flags_set *s, char **argv, int argc, char **out_text, char **err_text)
{
	struct cfg c;
	struct flags_ctx ctx;
	size_t ol = 0, el = 0;
	FILE *out = open_memstream(out_text, &ol), *err = open_memstream(err_text, &el);
	int rc;

	memset(&c, 0, sizeof(c));
	memset(&ctx, 0, sizeof(ctx));
	ctx.envp = empty_env;
	ctx.out = out;
	ctx.err = err;
	rc = flags_process(s, &c, argc, argv, &ctx);
	fclose(out);
	fclose(err);
	flags_free(s, &c);
	return rc;
}

static const char expected_defaults[] =
	"  -count number\n"
	"    \tA signed number. (default -3)\n"
	"  -data-dir string\n"
	"    \tPath to the data directory.\n"
	"  -debug\n"
	"    \tEnable debug-level logging.\n"
	"  -endpoints value\n"
	"    \tEndpoints. (default http://127.0.0.1:2379)\n"
	"  -initial-cluster-state string\n"
	"    \tInitial cluster state. (default \"new\")\n"
	"  -listen-client-urls value\n"
	"    \tURLs to listen on. (default http://localhost:2379,http://localhost:4001)\n"
	"  -name string\n"
	"    \tHuman-readable name for this member. (default \"default\")\n"
	"  -o string\n"
	"    \tOutput format. (default \"simple\")\n"
	"  -output string\n"
	"    \tOutput format. (default \"simple\")\n"
	"  -snapshot-count uint\n"
	"    \tCommitted transactions\n"
	"    \tper snapshot. (default 10000)\n"
	"  -timeout duration\n"
	"    \tRequest timeout. (default 1s)\n";

static void
test_process_and_help(void **state)
{
	char *argv[4] = { "etcd", NULL, NULL, NULL };
	char *out = NULL, *err = NULL;
	struct flags_set s = set;

	(void)state;
	argv[1] = "--help";
	assert_int_equal(process(&set, argv, 2, &out, &err), 0);
	assert_string_equal(out, "");
	assert_true(strncmp(err, "usage: etcd [flags]\n", 20) == 0);
	assert_string_equal(err + 20, expected_defaults);
	free(out);
	free(err);

	s.opts = FLAGS_OPT_HELP_STDOUT;
	s.help_text = "custom help\n";
	argv[1] = "-h";
	assert_int_equal(process(&s, argv, 2, &out, &err), 0);
	assert_string_equal(out, "usage: etcd [flags]\ncustom help\n");
	assert_string_equal(err, "");
	free(out);
	free(err);

	argv[1] = "-foo";
	assert_int_equal(process(&s, argv, 2, &out, &err), 2);
	assert_string_equal(err, "flag provided but not defined: -foo\nusage: etcd [flags]\ncustom help\n");
	free(out);
	free(err);

	argv[1] = "-name";
	argv[2] = "x";
	assert_int_equal(process(&s, argv, 3, &out, &err), -1);
	assert_string_equal(err, "");
	free(out);
	free(err);

	/* The usage line can come from the context (applet_usage at run time). */
	{
		struct cfg c;
		struct flags_ctx ctx;
		size_t el = 0;
		FILE *f;

		err = NULL;
		f = open_memstream(&err, &el);
		memset(&c, 0, sizeof(c));
		memset(&ctx, 0, sizeof(ctx));
		ctx.envp = empty_env;
		ctx.err = f;
		ctx.usage = "Usage: etcd [flags]";
		argv[1] = "-nope";
		assert_int_equal(flags_process(&s, &c, 2, argv, &ctx), 2);
		fclose(f);
		assert_string_equal(err, "flag provided but not defined: -nope\nUsage: etcd [flags]\ncustom help\n");
		free(err);
		flags_free(&s, &c);
	}

	/* Go's default usage line without one from the caller. */
	s.usage = NULL;
	s.help_text = NULL;
	s.specs = specs + 2;
	s.nspecs = 1;
	argv[1] = "-help";
	assert_int_equal(process(&s, argv, 2, &out, &err), 0);
	assert_string_equal(out, "Usage of etcd:\n  -debug\n    \tEnable debug-level logging.\n");
	free(out);
	free(err);
}

static void
test_print_defaults_one_letter(void **state)
{
	struct tiny {
		int v;
		const char *s;
	};
	static const struct flags_spec tspecs[] = {
		FLAGS_SPEC("v", FLAGS_BOOL, struct tiny, v, "true", "verbose"),
		FLAGS_SPEC("s", FLAGS_STRING, struct tiny, s, "a\"b", "the `path` to use"),
	};
	struct flags_set ts = { .prog = "t", .specs = tspecs, .nspecs = 2 };
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_int_equal(flags_print_defaults(&ts, f), 0);
	fclose(f);
	assert_string_equal(text,
		"  -s path\n    \tthe path to use (default \"a\\\"b\")\n"
		"  -v\tverbose (default true)\n");
	free(text);
}

static void
test_parse_int_uint(void **state)
{
	int64_t i;
	uint64_t u;

	(void)state;
	assert_int_equal(flags_parse_int("42", &i), 0);
	assert_int_equal(i, 42);
	assert_int_equal(flags_parse_int("-0x1F", &i), 0);
	assert_int_equal(i, -31);
	assert_int_equal(flags_parse_int("+0o17", &i), 0);
	assert_int_equal(i, 15);
	assert_int_equal(flags_parse_int("017", &i), 0);
	assert_int_equal(i, 15);
	assert_int_equal(flags_parse_int("0b101", &i), 0);
	assert_int_equal(i, 5);
	assert_int_equal(flags_parse_int("0", &i), 0);
	assert_int_equal(i, 0);
	assert_int_equal(flags_parse_int("1_000", &i), 0);
	assert_int_equal(i, 1000);
	assert_int_equal(flags_parse_int("0x_1f", &i), 0);
	assert_int_equal(i, 31);
	assert_int_equal(flags_parse_int("9223372036854775807", &i), 0);
	assert_true(i == INT64_MAX);
	assert_int_equal(flags_parse_int("-9223372036854775808", &i), 0);
	assert_true(i == INT64_MIN);
	i = 77;
	assert_int_equal(flags_parse_int("9223372036854775808", &i), -ERR_RANGE);
	assert_int_equal(flags_parse_int("-9223372036854775809", &i), -ERR_RANGE);
	assert_int_equal(i, 77);
	assert_int_equal(flags_parse_int("", &i), -ERR_PARSE);
	assert_int_equal(flags_parse_int("-", &i), -ERR_PARSE);
	assert_int_equal(flags_parse_int("1__0", &i), -ERR_PARSE);
	assert_int_equal(flags_parse_int("_1", &i), -ERR_PARSE);
	assert_int_equal(flags_parse_int("1_", &i), -ERR_PARSE);
	assert_int_equal(flags_parse_int("08", &i), -ERR_PARSE);
	assert_int_equal(flags_parse_int("0x", &i), -ERR_PARSE);
	assert_int_equal(flags_parse_int("12a", &i), -ERR_PARSE);
	assert_int_equal(flags_parse_int(" 1", &i), -ERR_PARSE);
	assert_int_equal(flags_parse_int("+-1", &i), -ERR_PARSE);
	assert_int_equal(i, 77);

	assert_int_equal(flags_parse_uint("18446744073709551615", &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(flags_parse_uint("0xffffffffffffffff", &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(flags_parse_uint("18446744073709551616", &u), -ERR_RANGE);
	/* Go reports the overflow even if a bad character follows. */
	assert_int_equal(flags_parse_uint("99999999999999999999x", &u), -ERR_RANGE);
	assert_int_equal(flags_parse_uint("+1", &u), -ERR_PARSE);
	assert_int_equal(flags_parse_uint("-1", &u), -ERR_PARSE);
}

static void
test_parse_bool(void **state)
{
	int b = 5;

	(void)state;
	assert_int_equal(flags_parse_bool("tRuE", &b), -ERR_PARSE);
	assert_int_equal(flags_parse_bool("yes", &b), -ERR_PARSE);
	assert_int_equal(flags_parse_bool("", &b), -ERR_PARSE);
	assert_int_equal(b, 5);
	assert_int_equal(flags_parse_bool("True", &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(flags_parse_bool("F", &b), 0);
	assert_int_equal(b, 0);
}

static void
test_duration(void **state)
{
	static const struct {
		const char *in;
		int64_t ns;
		const char *str;
	} ok[] = {
		{ "0", 0, "0s" },
		{ "-0", 0, "0s" },
		{ "1s", 1000000000, "1s" },
		{ "500ms", 500000000, "500ms" },
		{ "1.5h", INT64_C(5400000000000), "1h30m0s" },
		{ "2h45m", INT64_C(9900000000000), "2h45m0s" },
		{ "1m1.5s", INT64_C(61500000000), "1m1.5s" },
		{ "-1.5s", -1500000000, "-1.5s" },
		{ "+3us", 3000, "3\xc2\xb5s" },
		{ "3\xc2\xb5s", 3000, "3\xc2\xb5s" },
		{ "3\xce\xbcs", 3000, "3\xc2\xb5s" },
		{ "1.2ms", 1200000, "1.2ms" },
		{ "7ns", 7, "7ns" },
		{ ".5s", 500000000, "500ms" },
		{ "5.s", 5000000000, "5s" },
		{ "1h1m1s1ms1us1ns", INT64_C(3661001001001), "1h1m1.001001001s" },
		{ "2562047h47m16.854775807s", INT64_MAX, "2562047h47m16.854775807s" },
		{ "-2562047h47m16.854775808s", INT64_MIN, "-2562047h47m16.854775808s" },
	};
	static const char *const bad[] = {
		"", "1", "-", "s", ".s", "1x", "1.5", "1s2", "--1s", "1 s",
	};
	char str[64];
	int64_t ns;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(flags_parse_duration(ok[i].in, &ns), 0);
		assert_true(ns == ok[i].ns);
		flags_duration_str(ns, str, sizeof(str));
		assert_string_equal(str, ok[i].str);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(flags_parse_duration(bad[i], &ns), -ERR_PARSE);
	assert_int_equal(flags_parse_duration("2562047h47m16.854775808s", &ns), -ERR_RANGE);
	assert_int_equal(flags_parse_duration("9999999999999999999h", &ns), -ERR_RANGE);
	/* Truncation like snprintf. */
	assert_int_equal(flags_duration_str(INT64_C(3600000000000), str, 3), 6);
	assert_string_equal(str, "1h");
}

static void
test_alloc_failure(void **state)
{
	struct cfg c;
	struct flags_ctx ctx;
	char *argv[8];
	int rc = -1;

	(void)state;
	memset(&c, 0, sizeof(c));
	for (long n = 0; n < 200; n++) {
		mem_fail_after(n);
		rc = PARSE(&c, &ctx, argv, "--endpoints", "a,b,c", "--listen-client-urls", "x,y");
		mem_fail_reset();
		if (rc == 0)
			break;
		assert_int_equal(rc, -ERR_NOMEM);
		/* Lists never hold a half-built array. */
		for (size_t i = 0; i < c.peers.n; i++)
			assert_non_null(c.peers.v[i]);
		flags_free(&set, &c);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(c.peers.n, 3);
	assert_int_equal(c.urls.n, 2);
	flags_free(&set, &c);

	/* flags_process reports it with exit code 1. */
	{
		char *out = NULL, *err = NULL;

		argv[0] = "etcd";
		argv[1] = NULL;
		mem_fail_after(0);
		assert_int_equal(process(&set, argv, 1, &out, &err), 1);
		mem_fail_reset();
		assert_string_equal(err, "etcd: out of memory\n");
		free(out);
		free(err);
	}
}

static void
test_bad_table(void **state)
{
	struct tiny {
		int64_t n;
	} t;
	static const struct flags_spec tspecs[] = {
		FLAGS_SPEC("n", FLAGS_INT, struct tiny, n, "ten", "number"),
	};
	struct flags_set ts = { .prog = "t", .specs = tspecs, .nspecs = 1 };
	struct flags_ctx ctx;
	char *argv[] = { "t", NULL };

	(void)state;
	memset(&ctx, 0, sizeof(ctx));
	assert_int_equal(flags_parse(&ts, &t, 1, argv, &ctx), -ERR_INVAL);
	assert_string_equal(ctx.errmsg, "bad default for flag -n: parse error");
	ts.nspecs = FLAGS_SPECS_MAX + 1;
	assert_int_equal(flags_parse(&ts, &t, 1, argv, &ctx), -ERR_LIMIT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_syntax_forms),
		cmocka_unit_test(test_bool_forms),
		cmocka_unit_test(test_terminators),
		cmocka_unit_test(test_interspersed),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_check_callback),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_alias_old_deprecated),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_env_errors),
		cmocka_unit_test(test_process_and_help),
		cmocka_unit_test(test_print_defaults_one_letter),
		cmocka_unit_test(test_parse_int_uint),
		cmocka_unit_test(test_parse_bool),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_alloc_failure),
		cmocka_unit_test(test_bad_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
