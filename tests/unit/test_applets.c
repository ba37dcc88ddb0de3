/* Unit tests for the multicall table: sorted, found by name, unknown names
 * rejected with 127. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "corebox/applets.h"

static void
test_table_sorted_unique(void **state)
{
	(void)state;
	for (unsigned i = 1; i < applet_count; i++)
		assert_true(strcmp(applet_table[i - 1].name, applet_table[i].name) < 0);
	assert_null(applet_table[applet_count].name);
}

static void
test_find_each(void **state)
{
	(void)state;
	for (unsigned i = 0; i < applet_count; i++) {
		assert_ptr_equal(applet_find(applet_table[i].name), &applet_table[i]);
		assert_string_equal(applet_usage(applet_table[i].name), applet_table[i].usage);
		assert_non_null(applet_table[i].version);
	}
	assert_null(applet_find("no-such-applet"));
	assert_string_equal(applet_usage("no-such-applet"), "");
}

static void
test_unknown_applet_127(void **state)
{
	char *argv1[] = { "/usr/bin/no-such-applet", NULL };
	char *argv2[] = { "corebox", "no-such-applet", NULL };
	char *argv3[] = { "-no-such-applet", NULL };

	(void)state;
	assert_int_equal(applet_dispatch(1, argv1), 127);
	assert_int_equal(applet_dispatch(2, argv2), 127);
	assert_int_equal(applet_dispatch(1, argv3), 127);
}

static void
test_corebox_list_version(void **state)
{
	char *argv1[] = { "/x/corebox", "--list", NULL };
	char *argv2[] = { "corebox", "--version", NULL };

	(void)state;
	assert_int_equal(applet_dispatch(2, argv1), 0);
	assert_int_equal(applet_dispatch(2, argv2), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_sorted_unique),
		cmocka_unit_test(test_find_each),
		cmocka_unit_test(test_unknown_applet_127),
		cmocka_unit_test(test_corebox_list_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
