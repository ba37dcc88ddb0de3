/*
 * flags: command-line and environment parsing as Go's `flag` package does it.
 *
 * etcd, fleet, locksmith and flannel parse their command lines with Go's
 * `flag`, and etcd also reads every flag from ETCD_<FLAG_UPPER_SNAKE>. An
 * applet describes its flags once, in a static const table of struct
 * flags_spec whose destinations are offsets into the applet's own config
 * struct; the same table yields parsing, environment overrides and --help.
 * The library keeps no state of its own and never calls exit().
 *
 * Syntax (Go's flag.FlagSet.Parse):
 *   -name value   --name value   -name=value   --name=value
 *   -b  -b=true|false|1|0|t|f|T|F|TRUE|FALSE|True|False  (a bool flag never
 *       takes the next argument: `-b false` sets b and stops at "false")
 *   --            ends the flags; everything after it is positional
 *   -             (a lone dash) is a positional argument
 * Parsing stops at the first positional argument unless the set has
 * FLAGS_OPT_INTERSPERSED (then flags and positionals may mix, as etcdctl's
 * per-command flags need; positionals keep their order).
 * A name given twice: the last value wins, except list flags, which collect
 * every occurrence (see FLAGS_LIST).
 * -h, -help, --h and --help print the help and are not an error (exit 0),
 * unless the table itself defines a flag of that name.
 *
 * Messages are Go's, byte for byte (checked against Go 1.19 and etcd 3.4):
 *   flag provided but not defined: -foo
 *   bad flag syntax: ---x
 *   flag needs an argument: -name
 *   invalid value "abc" for flag -snapshot-count: parse error
 *   invalid value "99999999999999999999" for flag -x: value out of range
 *   invalid boolean value "maybe" for -debug: parse error
 * (the name is always shown with one dash, as Go does). They are followed by
 * the usage on the error stream and exit code 2. Values are quoted like Go's
 * %q: printable ASCII as is, \a \b \f \n \r \t \v \\ \", other control bytes
 * and DEL as \xNN, invalid UTF-8 bytes as \xNN; valid multi-byte UTF-8 is
 * passed through (Go would escape the few non-printable runes as \uNNNN).
 *
 * Environment (when the set has env_prefix, e.g. "ETCD"): every flag not
 * given on the command line is read from its variable, by default
 * <PREFIX>_<NAME upper-cased with '-' as '_'> (--data-dir: ETCD_DATA_DIR), or
 * from spec->env. The command line wins. As etcd 3.4 does:
 *   - a bad value: `invalid value "x" for ETCD_SNAPSHOT_COUNT: parse error`,
 *     exit code 1 (etcd prints it inside its own log line; the etcd applet
 *     adds that frame, this library gives the message);
 *   - FLAGS_OPT_ENV_CONFLICT: a variable set while the same flag is on the
 *     command line is an error: `conflicting environment variable
 *     "ETCD_NAME" is shadowed by corresponding command-line flag (either
 *     unset environment variable or disable flag)`, exit code 1;
 *   - each variable used gives an info note `recognized and used environment
 *     variable ETCD_NAME=a`;
 *   - FLAGS_OPT_ENV_WARN_UNKNOWN: a variable that starts with PREFIX_ but
 *     names no flag gives a warning note `unrecognized environment variable
 *     ETCD_FOO=1`.
 * etcd prints those notes through its logger ("W | pkg/flags: ..."); here
 * they go to ctx->note (the applet passes them to core/log), or, without
 * one, warnings are printed to the error stream and info notes dropped.
 *
 * Ownership: string destinations (const char *) point into argv, into the
 * environment, or at the spec's default literal; nothing is copied, so they
 * live as long as the process's argv/environ (or the envp the caller gave).
 * List destinations (struct flags_list) own their arrays and strings; the
 * config owns them and flags_free() releases them. The config struct must be
 * zeroed (or flags_free()d) before flags_parse(), which overwrites every
 * destination in the table with its default first.
 */
#ifndef COREBOX_FLAGS_H
#define COREBOX_FLAGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum flags_type {
	/* const char *; default NULL means "" (the field is set to ""). */
	FLAGS_STRING,
	/* int (0 or 1); strconv.ParseBool syntax. */
	FLAGS_BOOL,
	/* int64_t; strconv.ParseInt(s, 0, 64): 0x/0o/0b/leading-0 (octal)
	 * prefixes, a sign, '_' between digits (Go's underscoreOK rule). */
	FLAGS_INT,
	/* uint64_t; strconv.ParseUint(s, 0, 64): as FLAGS_INT without a sign. */
	FLAGS_UINT,
	/* int64_t nanoseconds; time.ParseDuration: "300ms", "1.5h", "2h45m",
	 * "-1s", units ns us µs ms s m h; a bare "0" is allowed. */
	FLAGS_DURATION,
	/*
	 * struct flags_list; comma-separated, empty elements dropped. Every
	 * occurrence appends, and the first occurrence on the command line (or
	 * the environment value) replaces the default. With FLAGS_F_LAST_WINS
	 * each occurrence replaces the list instead (Go's flag.Value types in
	 * etcd, such as URLsValue, behave so).
	 */
	FLAGS_LIST,
};

struct flags_list {
	char **v; /* n strings, each NUL-terminated; owned by the list */
	size_t n;
};

/*
 * Optional check of a value after type parsing succeeded (e.g. one of a set
 * of words, or a URL list). dst is the destination just written. On
 * rejection return a negative -ERR_xxx and write the reason (what Go's
 * Value.Set would return, e.g. "valid values are: new, existing") into msg;
 * the parser restores the previous value and reports
 * `invalid value "v" for flag -name: <msg>`.
 */
typedef int flags_check_fn(const char *value, void *dst, char *msg, size_t msg_size);

/* spec->flags bits */
enum {
	FLAGS_F_HIDDEN = 1 << 0,    /* not shown by the generated help */
	FLAGS_F_NOENV = 1 << 1,     /* never read from the environment */
	FLAGS_F_LAST_WINS = 1 << 2, /* FLAGS_LIST: each occurrence replaces */
};

struct flags_spec {
	const char *name;     /* without dashes: "data-dir", "o" */
	enum flags_type type;
	size_t offset;        /* of the destination in the config struct */
	const char *def;      /* default as command-line text; NULL: zero value */
	const char *help;     /* one line or more; Go's `name` back-quote rule applies */
	const char *env;      /* NULL: <PREFIX>_<NAME>; "": no environment */
	const char *alias;    /* NULL or comma-separated other names ("output,o"): same flag */
	/*
	 * NULL or comma-separated old names, accepted but hidden from help.
	 * Using one emits a warning note: deprecated if set, else
	 * `flag -<old> is deprecated, use -<name>`.
	 */
	const char *old;
	/* NULL, or the warning note emitted whenever this flag is used. */
	const char *deprecated;
	flags_check_fn *check; /* NULL or an extra check, see flags_check_fn */
	unsigned flags;        /* FLAGS_F_* */
};

/* Declaring table rows; T is the config struct type, F its field. */
#define FLAGS_SPEC(nm, ty, T, F, dflt, hlp) \
	{ .name = (nm), .type = (ty), .offset = offsetof(T, F), .def = (dflt), .help = (hlp) }

/* set->opts bits */
enum {
	/* Flags may follow positional arguments (not Go's flag; cli-style). */
	FLAGS_OPT_INTERSPERSED = 1 << 0,
	/* A flag set on both the command line and the environment is an error. */
	FLAGS_OPT_ENV_CONFLICT = 1 << 1,
	/* Warn about <PREFIX>_* variables that name no flag. */
	FLAGS_OPT_ENV_WARN_UNKNOWN = 1 << 2,
	/* -h/--help prints to the output stream (Go and etcd print to stderr). */
	FLAGS_OPT_HELP_STDOUT = 1 << 3,
};

/* At most this many specs per set (etcd 3.4 has about 100 flags). */
#define FLAGS_SPECS_MAX 256
/* Messages longer than this are truncated (values are quoted in them). */
#define FLAGS_ERRMSG_BYTES_MAX 512

struct flags_set {
	const char *prog;       /* "etcd": the name in generated help */
	/*
	 * Printed first by the help and after every error, followed by a
	 * newline (the applet passes applet_usage("etcd")). NULL: Go's
	 * "Usage of <prog>:".
	 */
	const char *usage;
	/*
	 * NULL: the flag list is generated from the table in Go's
	 * PrintDefaults format. Otherwise this text is printed after the usage
	 * instead (etcd's hand-written help).
	 */
	const char *help_text;
	const char *env_prefix; /* "ETCD", or NULL for no environment */
	const struct flags_spec *specs;
	size_t nspecs;
	unsigned opts;          /* FLAGS_OPT_* */
};

enum flags_note_level {
	FLAGS_NOTE_INFO,
	FLAGS_NOTE_WARN,
};
/* msg is only valid during the call. */
typedef void flags_note_fn(void *arg, enum flags_note_level level, const char *msg);

/* Where a destination's value came from, per spec index. */
enum flags_source {
	FLAGS_SRC_DEFAULT = 0,
	FLAGS_SRC_CMDLINE,
	FLAGS_SRC_ENV,
};

/*
 * Per-parse context: the caller zeroes it, may fill the inputs, and reads
 * the outputs. Nothing in it is allocated; it needs no freeing.
 */
struct flags_ctx {
	/* inputs, all optional */
	char **envp;            /* NULL: the process environment (environ) */
	FILE *out;              /* NULL: stdout */
	FILE *err;              /* NULL: stderr */
	flags_note_fn *note;    /* NULL: warnings printed to err, info dropped */
	void *note_arg;
	/*
	 * NULL: set->usage. Lets a static const table take its usage line at
	 * run time: ctx.usage = applet_usage("etcd"). Used by flags_process.
	 */
	const char *usage;
	/* outputs */
	char **args;            /* positional arguments: args[0 .. nargs) */
	int nargs;
	int help;               /* -h/--help was given; parsing stopped there */
	int exit_code;          /* on error: 2 (command line) or 1 (environment) */
	char errmsg[FLAGS_ERRMSG_BYTES_MAX]; /* on error: Go's message, no newline */
	unsigned char source[FLAGS_SPECS_MAX]; /* enum flags_source per spec */
};

/*
 * Sets defaults, parses argv[1 .. argc) and then the environment into cfg.
 * Positional arguments are returned in ctx->args: a pointer into argv; with
 * FLAGS_OPT_INTERSPERSED the positionals are first moved, in order, to
 * argv[1 ..] (the pointers are permuted, the strings untouched).
 * Returns 0 (check ctx->help), or on error with ctx->errmsg and
 * ctx->exit_code set (nothing is printed):
 *   -ERR_INVAL  undefined flag, bad syntax, missing argument, env conflict
 *   -ERR_PARSE  a value that does not parse (or a check rejected)
 *   -ERR_RANGE  an integer out of range
 *   -ERR_NOMEM  allocation failed (list flags)
 *   -ERR_LIMIT  the table has more than FLAGS_SPECS_MAX specs
 * On error cfg holds defaults and whatever was parsed before the error; it
 * still must be released with flags_free().
 */
int flags_parse(const struct flags_set *set, void *cfg, int argc, char **argv,
	struct flags_ctx *ctx);

/*
 * The usual applet entry: flags_parse, then print what Go prints. Returns
 * -1 if the applet should go on running, otherwise the exit code to return
 * from main: 0 after -h/--help (help printed), 2 after a command-line error
 * (message and usage printed to the error stream), 1 after an environment
 * error (message printed, no usage), 1 on allocation failure.
 */
int flags_process(const struct flags_set *set, void *cfg, int argc, char **argv,
	struct flags_ctx *ctx);

/*
 * Writes the help: the usage line(s), then set->help_text or the generated
 * flag list (flags_print_defaults). Returns 0 or -ERR_IO.
 */
int flags_print_usage(const struct flags_set *set, FILE *f);

/*
 * Go's FlagSet.PrintDefaults: visible flags and aliases sorted by name, as
 *   "  -name type\n    \thelp (default \"x\")\n"
 * with a one-letter, typeless flag on one line ("  -x\thelp"), the type word
 * from Go's UnquoteUsage (string, int, uint, duration, value for lists,
 * none for bool, or a back-quoted word in the help), and the default shown
 * unless it is the type's zero value (strings quoted, durations in Go's
 * Duration.String form). Returns 0 or -ERR_IO.
 */
int flags_print_defaults(const struct flags_set *set, FILE *f);

/* Releases every FLAGS_LIST destination in cfg and zeroes it. */
void flags_free(const struct flags_set *set, void *cfg);

/*
 * Whether the flag called name (its primary name or any alias) was given on
 * the command line or in the environment, after a flags_parse with ctx.
 * 0 for unknown names.
 */
int flags_is_set(const struct flags_set *set, const struct flags_ctx *ctx, const char *name);

/* Value parsers shared with other modules (config files, etcdctl).
 * Each returns 0, -ERR_PARSE or -ERR_RANGE, and writes *out only on 0. */
int flags_parse_bool(const char *s, int *out);
int flags_parse_int(const char *s, int64_t *out);
int flags_parse_uint(const char *s, uint64_t *out);
int flags_parse_duration(const char *s, int64_t *ns_out);

/*
 * Go's time.Duration.String() ("1h2m3.5s", "500ms", "0s") into out; returns
 * the length, truncating like snprintf.
 */
int flags_duration_str(int64_t ns, char *out, size_t out_size);

/* Nanoseconds per unit, for converting FLAGS_DURATION values. */
#define FLAGS_NS_PER_MS INT64_C(1000000)
#define FLAGS_NS_PER_S INT64_C(1000000000)

#endif
