/* Unit tests for corebox/le.h: byte order, round trips at the edges, and
 * that a put writes exactly 4 or 8 bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "corebox/le.h"

static void
test_put_layout(void **state)
{
	uint8_t b[10];

	(void)state;
	memset(b, 0xee, sizeof(b));
	le_put32(b + 1, 0x11223344u);
	assert_int_equal(b[0], 0xee);
	assert_int_equal(b[1], 0x44);
	assert_int_equal(b[2], 0x33);
	assert_int_equal(b[3], 0x22);
	assert_int_equal(b[4], 0x11);
	assert_int_equal(b[5], 0xee);
	memset(b, 0xee, sizeof(b));
	le_put64(b + 1, 0x0102030405060708ull);
	assert_int_equal(b[0], 0xee);
	for (int i = 0; i < 8; i++)
		assert_int_equal(b[1 + i], 8 - i);
	assert_int_equal(b[9], 0xee);
}

static void
test_get_layout(void **state)
{
	const uint8_t b[8] = { 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x81 };

	(void)state;
	assert_int_equal(le_get32(b), 0x05060708u);
	assert_true(le_get64(b) == 0x8102030405060708ull);
}

static void
test_round_trip(void **state)
{
	const uint64_t v64[] = { 0, 1, 0xff, 0x100, 0x7fffffffffffffffull, 0x8000000000000000ull,
		UINT64_MAX };
	const uint32_t v32[] = { 0, 1, 0x80, 0xffff, 0x80000000u, UINT32_MAX };
	uint8_t b[8];

	(void)state;
	for (size_t i = 0; i < sizeof(v64) / sizeof(v64[0]); i++) {
		le_put64(b, v64[i]);
		assert_true(le_get64(b) == v64[i]);
	}
	for (size_t i = 0; i < sizeof(v32) / sizeof(v32[0]); i++) {
		le_put32(b, v32[i]);
		assert_int_equal(le_get32(b), v32[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_layout),
		cmocka_unit_test(test_get_layout),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
