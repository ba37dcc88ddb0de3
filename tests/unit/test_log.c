/* Unit tests for core/log: the line format, levels, quoting, that hostile
 * values cannot break the one-line-per-event rule, cutting of long lines, and
 * fatal's exit status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "corebox/err.h"
#include "corebox/log.h"

/* Captures the logger's output in a temporary file. */
struct capture {
	FILE *f;
	char text[3 * LOG_LINE_BYTES_MAX];
};

static void
capture_start(struct capture *c)
{
	c->f = tmpfile();
	assert_non_null(c->f);
	log_set_output(c->f);
}

/* Stops capturing and returns what was written. */
static const char *
capture_end(struct capture *c)
{
	size_t n;

	log_set_output(NULL);
	rewind(c->f);
	n = fread(c->text, 1, sizeof(c->text) - 1, c->f);
	c->text[n] = '\0';
	fclose(c->f);
	log_set_level(LOG_LEVEL_INFO);
	return c->text;
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void
test_line_format(void **state)
{
	struct capture c;
	const char *out;
	struct tm tm;
	time_t t;

	(void)state;
	capture_start(&c);
	log_info("etcdserver", "published member", "name=%s id=%d", "default", 42);
	out = capture_end(&c);
	/* 2026-11-22T03:40:01.123456Z: 27 bytes, then the fields. */
	assert_true(strlen(out) > 28);
	for (int i = 0; i < 26; i++) {
		char ch = out[i];

		if (i == 4 || i == 7)
			assert_int_equal(ch, '-');
		else if (i == 10)
			assert_int_equal(ch, 'T');
		else if (i == 13 || i == 16)
			assert_int_equal(ch, ':');
		else if (i == 19)
			assert_int_equal(ch, '.');
		else
			assert_true(ch >= '0' && ch <= '9');
	}
	assert_int_equal(out[26], 'Z');
	assert_string_equal(out + 27,
		" level=info pkg=etcdserver msg=\"published member\" name=default id=42\n");
	/* The timestamp is now, in UTC. */
	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(out, "%Y-%m-%dT%H:%M:%S", &tm));
	t = timegm(&tm);
	assert_true(llabs((long long)(t - time(NULL))) <= 5);
}

static void
test_no_fields_and_null_parts(void **state)
{
	struct capture c;
	const char *out;

	(void)state;
	capture_start(&c);
	log_warn("raft", "ready", NULL);
	log_error(NULL, NULL, NULL);
	log_notice("p", "say \"hi\"", "k=%s", "v");
	out = capture_end(&c);
	assert_int_equal(count_lines(out), 3);
	assert_non_null(strstr(out, " level=warn pkg=raft msg=ready\n"));
	assert_non_null(strstr(out, " level=error pkg=- msg=-\n"));
	assert_non_null(strstr(out, " level=notice pkg=p msg=\"say \\\"hi\\\"\" k=v\n"));
}

static int evaluated;

static const char *
side_effect(void)
{
	evaluated++;
	return "x";
}

static void
test_levels(void **state)
{
	struct capture c;
	const char *out;

	(void)state;
	assert_int_equal(log_get_level(), LOG_LEVEL_INFO);
	capture_start(&c);
	log_debug("p", "hidden", "v=%s", side_effect());
	assert_int_equal(evaluated, 0);
	log_set_level(LOG_LEVEL_WARN);
	log_info("p", "hidden too", NULL);
	log_notice("p", "hidden three", NULL);
	log_warn("p", "shown warn", NULL);
	log_error("p", "shown error", NULL);
	log_msg(LOG_LEVEL_INFO, "p", "direct hidden", NULL);
	log_set_level(LOG_LEVEL_DEBUG);
	log_debug("p", "shown debug", "v=%s", side_effect());
	assert_int_equal(evaluated, 1);
	out = capture_end(&c);
	assert_int_equal(count_lines(out), 3);
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, "level=warn pkg=p msg=\"shown warn\""));
	assert_non_null(strstr(out, "level=error pkg=p msg=\"shown error\""));
	assert_non_null(strstr(out, "level=debug pkg=p msg=\"shown debug\" v=x"));
	/* Out-of-range levels are clamped. */
	log_set_level(-5);
	assert_int_equal(log_get_level(), LOG_LEVEL_DEBUG);
	log_set_level(99);
	assert_int_equal(log_get_level(), LOG_LEVEL_ERROR);
	assert_false(log_enabled(LOG_LEVEL_WARN));
	assert_true(log_enabled(LOG_LEVEL_ERROR));
	log_set_level(LOG_LEVEL_INFO);
}

static void
test_level_parse(void **state)
{
	(void)state;
	assert_int_equal(log_level_parse("debug"), LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("INFO"), LOG_LEVEL_INFO);
	assert_int_equal(log_level_parse("notice"), LOG_LEVEL_NOTICE);
	assert_int_equal(log_level_parse("warn"), LOG_LEVEL_WARN);
	assert_int_equal(log_level_parse("Warning"), LOG_LEVEL_WARN);
	assert_int_equal(log_level_parse("error"), LOG_LEVEL_ERROR);
	assert_int_equal(log_level_parse("verbose"), -ERR_INVAL);
	assert_int_equal(log_level_parse(""), -ERR_INVAL);
	assert_int_equal(log_level_parse(NULL), -ERR_INVAL);
	assert_string_equal(log_level_name(LOG_LEVEL_NOTICE), "notice");
	assert_string_equal(log_level_name(17), "unknown");
	assert_string_equal(log_level_name(-1), "unknown");
}

static void
test_quote(void **state)
{
	char buf[64];
	const char *bare = "node-1.example:2379/v2";

	(void)state;
	/* Bare words come back as they are, without a copy. */
	assert_ptr_equal(log_quote(buf, sizeof(buf), bare), bare);
	assert_string_equal(log_quote(buf, sizeof(buf), "a b"), "\"a b\"");
	assert_string_equal(log_quote(buf, sizeof(buf), ""), "\"\"");
	assert_string_equal(log_quote(buf, sizeof(buf), NULL), "null");
	assert_string_equal(log_quote(buf, sizeof(buf), "k=v"), "\"k=v\"");
	assert_string_equal(log_quote(buf, sizeof(buf), "say \"x\"\\"), "\"say \\\"x\\\"\\\\\"");
	assert_string_equal(log_quote(buf, sizeof(buf), "a\nb\tc\rd\001e\177"),
		"\"a\\nb\\tc\\rd\\x01e\\x7f\"");
	/* UTF-8 passes through untouched. */
	assert_string_equal(log_quote(buf, sizeof(buf), "h\xc3\xa9llo w"), "\"h\xc3\xa9llo w\"");
	assert_string_equal(log_quote(buf, 4, "a b"), "");
	assert_string_equal(log_q("x y"), "\"x y\"");
}

static void
test_quote_cut(void **state)
{
	char buf[16], big[1000];

	(void)state;
	/* 14 bytes quoted fit in 16 with the NUL: not cut. */
	assert_string_equal(log_quote(buf, sizeof(buf), "a b c d e f "), "\"a b c d e f \"");
	/* One more byte does not: cut, marked, still terminated. */
	assert_string_equal(log_quote(buf, sizeof(buf), "a b c d e f gh"), "\"a b c d e ...\"");
	assert_int_equal(strlen(buf), 15);
	/* An escape is never split. */
	assert_string_equal(log_quote(buf, sizeof(buf), "a b c d e\nfghij"), "\"a b c d e...\"");
	memset(big, 'x', sizeof(big));
	big[0] = ' ';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(strlen(log_q(big)), LOG_QUOTE_BYTES - 1);
	assert_string_equal(log_q(big) + LOG_QUOTE_BYTES - 5, "...\"");
}

static void
test_one_line_whatever_the_input(void **state)
{
	struct capture c;
	const char *out;

	(void)state;
	capture_start(&c);
	/* A careless caller passes a peer's value without log_q. */
	log_info("http", "bad request", "key=%s", "x\nlevel=error msg=forged\r\x1b[2J");
	log_info("pk\ng", "m\nsg", "k=%s", log_q("v\nw"));
	out = capture_end(&c);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, "key=x\\nlevel=error msg=forged\\r\\x1b[2J\n"));
	assert_non_null(strstr(out, "pkg=\"pk\\ng\" msg=\"m\\nsg\" k=\"v\\nw\"\n"));
}

static void
test_long_line_cut(void **state)
{
	struct capture c;
	const char *out;
	char *big = malloc(10000);
	size_t n;

	(void)state;
	assert_non_null(big);
	memset(big, 'v', 9999);
	big[9999] = '\0';
	capture_start(&c);
	log_info("p", "long", "k=%s", big);
	log_info("p", "after", NULL);
	out = capture_end(&c);
	free(big);
	assert_int_equal(count_lines(out), 2);
	n = (size_t)(strchr(out, '\n') - out) + 1;
	assert_int_equal(n, LOG_LINE_BYTES_MAX);
	assert_memory_equal(out + n - 4, "...\n", 4);
	assert_non_null(strstr(out + n, "msg=after\n"));
}

static void
test_fatal_exits_1(void **state)
{
	char text[256];
	int p[2], st;
	ssize_t n;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		FILE *f = fdopen(p[1], "w");

		close(p[0]);
		if (f == NULL)
			_exit(3);
		log_set_output(f);
		log_set_level(LOG_LEVEL_ERROR);
		fatal("main", "cannot listen", "addr=%s", "127.0.0.1:1");
	}
	close(p[1]);
	n = read(p[0], text, sizeof(text) - 1);
	close(p[0]);
	assert_true(n > 0);
	text[n] = '\0';
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	assert_non_null(strstr(text, " level=error pkg=main msg=\"cannot listen\" addr=127.0.0.1:1\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_format),
		cmocka_unit_test(test_no_fields_and_null_parts),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_quote_cut),
		cmocka_unit_test(test_one_line_whatever_the_input),
		cmocka_unit_test(test_long_line_cut),
		cmocka_unit_test(test_fatal_exits_1),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
