/* Unit tests for core/buf and core/mem: growth, consume, printf, and that a
 * failed allocation leaves the buffer as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/mem.h"

static void
test_append_and_grow(void **state)
{
	struct buf b = BUF_INIT;
	char big[5000];

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(buf_puts(&b, "hello"), 0);
	assert_int_equal(buf_append(&b, big, sizeof(big)), 0);
	assert_int_equal(buf_avail(&b), 5 + sizeof(big));
	assert_memory_equal(buf_head(&b), "hellox", 6);
	assert_true(b.cap > b.len);
	buf_free(&b);
	assert_null(b.data);
}

static void
test_consume_compact(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(buf_puts(&b, "abcdef"), 0);
	buf_consume(&b, 2);
	assert_int_equal(buf_avail(&b), 4);
	assert_string_equal(buf_cstr(&b), "cdef");
	buf_compact(&b);
	assert_int_equal(b.off, 0);
	assert_string_equal(buf_cstr(&b), "cdef");
	buf_consume(&b, 100);
	assert_int_equal(buf_avail(&b), 0);
	assert_int_equal(b.off, 0);
	buf_free(&b);
}

static void
test_printf_long(void **state)
{
	struct buf b = BUF_INIT;
	char want[1001];

	(void)state;
	memset(want, 'y', 1000);
	want[1000] = '\0';
	assert_int_equal(buf_printf(&b, "%d-%s", 42, want), 0);
	assert_int_equal(buf_avail(&b), 3 + 1000);
	assert_memory_equal(buf_head(&b), "42-yyy", 6);
	assert_int_equal(buf_cstr(&b)[1003], '\0');
	buf_free(&b);
}

static void
test_steal(void **state)
{
	struct buf b = BUF_INIT;
	size_t n;
	char *s;

	(void)state;
	assert_int_equal(buf_puts(&b, "xxkeep"), 0);
	buf_consume(&b, 2);
	s = buf_steal(&b, &n);
	assert_string_equal(s, "keep");
	assert_int_equal(n, 4);
	assert_null(b.data);
	mem_free(s);
}

static void
test_alloc_failure_keeps_data(void **state)
{
	struct buf b = BUF_INIT;
	char big[4096];

	(void)state;
	memset(big, 'z', sizeof(big));
	assert_int_equal(buf_puts(&b, "keep"), 0);
	mem_fail_after(0);
	assert_int_equal(buf_append(&b, big, sizeof(big)), -ERR_NOMEM);
	assert_int_equal(buf_printf(&b, "%s", "abc"), 0); /* fits: no allocation */
	mem_fail_reset();
	assert_string_equal(buf_cstr(&b), "keepabc");
	buf_free(&b);
}

static void
test_err_str(void **state)
{
	(void)state;
	assert_string_equal(err_str(-ERR_NOMEM), "out of memory");
	assert_string_equal(err_str(ERR_CRC), "checksum mismatch");
	assert_string_equal(err_str(0), "success");
	assert_string_equal(err_str(12345678), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_and_grow),
		cmocka_unit_test(test_consume_compact),
		cmocka_unit_test(test_printf_long),
		cmocka_unit_test(test_steal),
		cmocka_unit_test(test_alloc_failure_keeps_data),
		cmocka_unit_test(test_err_str),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
