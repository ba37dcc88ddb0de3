/* Unit tests for core/utf8: every length, the boundaries Go's decoder draws
 * (overlongs, surrogates, above U+10FFFF), truncation and stray bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "corebox/utf8.h"

static size_t
dec(const char *s, size_t n, uint32_t *r)
{
	return utf8_decode((const unsigned char *)s, n, r);
}

static void
test_valid(void **state)
{
	uint32_t r;

	(void)state;
	assert_int_equal(dec("A", 1, &r), 1);
	assert_int_equal(r, 0x41);
	assert_int_equal(dec("\0", 1, &r), 1);
	assert_int_equal(r, 0);
	assert_int_equal(dec("\x7f", 1, &r), 1);
	assert_int_equal(dec("\xc2\x80", 2, &r), 2);
	assert_int_equal(r, 0x80);
	assert_int_equal(dec("\xdf\xbf", 2, &r), 2);
	assert_int_equal(r, 0x7ff);
	assert_int_equal(dec("\xe0\xa0\x80", 3, &r), 3);
	assert_int_equal(r, 0x800);
	assert_int_equal(dec("\xe2\x82\xac", 3, &r), 3);
	assert_int_equal(r, 0x20ac);
	assert_int_equal(dec("\xed\x9f\xbf", 3, &r), 3);
	assert_int_equal(r, 0xd7ff);
	assert_int_equal(dec("\xee\x80\x80", 3, &r), 3);
	assert_int_equal(r, 0xe000);
	assert_int_equal(dec("\xef\xbf\xbf", 3, &r), 3);
	assert_int_equal(r, 0xffff);
	assert_int_equal(dec("\xf0\x90\x80\x80", 4, &r), 4);
	assert_int_equal(r, 0x10000);
	assert_int_equal(dec("\xf0\x9f\x98\x80", 4, &r), 4);
	assert_int_equal(r, 0x1f600);
	assert_int_equal(dec("\xf4\x8f\xbf\xbf", 4, &r), 4);
	assert_int_equal(r, 0x10ffff);
	/* Only the first sequence is decoded. */
	assert_int_equal(dec("\xc3\xa9xyz", 5, &r), 2);
	assert_int_equal(r, 0xe9);
}

static void
test_invalid(void **state)
{
	uint32_t r;

	(void)state;
	/* Stray continuation bytes and bytes that never start a sequence. */
	assert_int_equal(dec("\x80", 1, &r), 0);
	assert_int_equal(dec("\xbf", 1, &r), 0);
	assert_int_equal(dec("\xf5\x80\x80\x80", 4, &r), 0);
	assert_int_equal(dec("\xff", 1, &r), 0);
	/* Overlong forms. */
	assert_int_equal(dec("\xc0\x80", 2, &r), 0);
	assert_int_equal(dec("\xc1\xbf", 2, &r), 0);
	assert_int_equal(dec("\xe0\x9f\xbf", 3, &r), 0);
	assert_int_equal(dec("\xf0\x8f\xbf\xbf", 4, &r), 0);
	/* Surrogates. */
	assert_int_equal(dec("\xed\xa0\x80", 3, &r), 0);
	assert_int_equal(dec("\xed\xbf\xbf", 3, &r), 0);
	/* Above U+10FFFF. */
	assert_int_equal(dec("\xf4\x90\x80\x80", 4, &r), 0);
	/* Bad continuation bytes in each position. */
	assert_int_equal(dec("\xc3\x28", 2, &r), 0);
	assert_int_equal(dec("\xe2\x28\xac", 3, &r), 0);
	assert_int_equal(dec("\xe2\x82\x28", 3, &r), 0);
	assert_int_equal(dec("\xf0\x9f\x28\x80", 4, &r), 0);
	assert_int_equal(dec("\xf0\x9f\x98\x28", 4, &r), 0);
}

static void
test_truncated(void **state)
{
	/* n limits the read even when more bytes follow in memory. */
	uint32_t r;

	(void)state;
	assert_int_equal(dec("\xc3\xa9", 1, &r), 0);
	assert_int_equal(dec("\xe2\x82\xac", 2, &r), 0);
	assert_int_equal(dec("\xe2\x82\xac", 1, &r), 0);
	assert_int_equal(dec("\xf0\x9f\x98\x80", 3, &r), 0);
	assert_int_equal(dec("\xf0\x9f\x98\x80", 2, &r), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_truncated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
