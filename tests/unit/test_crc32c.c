/* Unit tests for core/crc32c: RFC 3720 vectors, a bitwise reference, and
 * that the SSE4.2 and slicing-by-8 paths agree on every length and
 * alignment of random data, including when a CRC is extended piecewise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "corebox/crc32c.h"

/* The definition itself: one bit at a time, no table. */
static uint32_t
crc_bitwise(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return ~c;
}

/* xorshift64: deterministic data without libc's rand state. */
static uint64_t
next_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static void
check_all(const uint8_t *p, size_t n, uint32_t want)
{
	assert_int_equal(crc32c(0, p, n), want);
	assert_int_equal(crc32c_sw(0, p, n), want);
	assert_int_equal(crc32c_hw(0, p, n), want);
}

static void
test_rfc3720_vectors(void **state)
{
	uint8_t b[48];

	(void)state;
	/* RFC 3720 appendix B.4. */
	memset(b, 0, 32);
	check_all(b, 32, 0x8a9136aau);
	memset(b, 0xff, 32);
	check_all(b, 32, 0x62a8ab43u);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	check_all(b, 32, 0x46dd794eu);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	check_all(b, 32, 0x113fdb5cu);
	{
		static const uint8_t scsi_read[48] = {
			0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
			0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
			0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
			0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
			0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
			0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		};

		check_all(scsi_read, sizeof(scsi_read), 0xd9963a56u);
	}
	/* The usual check value. */
	check_all((const uint8_t *)"123456789", 9, 0xe3069283u);
	/* Empty input leaves the CRC as it was. */
	assert_int_equal(crc32c(0, NULL, 0), 0);
	assert_int_equal(crc32c(0x12345678u, NULL, 0), 0x12345678u);
}

static void
test_table_matches_bitwise(void **state)
{
	uint8_t b[300];
	uint64_t s = 0x9e3779b97f4a7c15ull;

	(void)state;
	/* Every byte value through every table slot, at many lengths. */
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)next_rand(&s);
	for (size_t n = 0; n <= sizeof(b); n++)
		assert_int_equal(crc32c_sw(0, b, n), crc_bitwise(b, n));
	for (int v = 0; v < 256; v++) {
		uint8_t one = (uint8_t)v;

		assert_int_equal(crc32c_sw(0, &one, 1), crc_bitwise(&one, 1));
	}
}

static void
test_hw_equals_sw_random(void **state)
{
	static uint8_t b[70000];
	uint64_t s = 12345;

	(void)state;
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)next_rand(&s);
	/* Every start alignment and a spread of lengths, small and large. */
	for (size_t off = 0; off < 16; off++) {
		for (size_t n = 0; n < 200; n++)
			assert_int_equal(crc32c_hw(0, b + off, n), crc32c_sw(0, b + off, n));
		assert_int_equal(crc32c_hw(0, b + off, sizeof(b) - 16), crc32c_sw(0, b + off, sizeof(b) - 16));
	}
	for (int round = 0; round < 2000; round++) {
		size_t off = next_rand(&s) % 1024, n = next_rand(&s) % (sizeof(b) - 1024);
		uint32_t seed = (uint32_t)next_rand(&s);

		assert_int_equal(crc32c_hw(seed, b + off, n), crc32c_sw(seed, b + off, n));
	}
	assert_int_equal(crc32c(0, b, sizeof(b)), crc_bitwise(b, sizeof(b)));
}

static void
test_extend(void **state)
{
	uint8_t b[1000];
	uint64_t s = 777;

	(void)state;
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)next_rand(&s);
	/* crc(a || b) == crc(crc(a), b) for every split point, both paths. */
	for (size_t cut = 0; cut <= sizeof(b); cut += 7) {
		uint32_t whole = crc32c(0, b, sizeof(b));

		assert_int_equal(crc32c(crc32c(0, b, cut), b + cut, sizeof(b) - cut), whole);
		assert_int_equal(crc32c_sw(crc32c_sw(0, b, cut), b + cut, sizeof(b) - cut), whole);
		assert_int_equal(crc32c_hw(crc32c_hw(0, b, cut), b + cut, sizeof(b) - cut), whole);
	}
}

static void
test_hw_detection(void **state)
{
	int hw = crc32c_hw_available();

	(void)state;
	assert_true(hw == 0 || hw == 1);
	/* Stable: the answer describes the CPU, not some state. */
	assert_int_equal(crc32c_hw_available(), hw);
	print_message("crc32c: hardware path %s\n", hw ? "available" : "not available");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3720_vectors),
		cmocka_unit_test(test_table_matches_bitwise),
		cmocka_unit_test(test_hw_equals_sw_random),
		cmocka_unit_test(test_extend),
		cmocka_unit_test(test_hw_detection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
