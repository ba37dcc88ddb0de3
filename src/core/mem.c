/*
 * The one allocation hook. Failure injection lets tests make the Nth
 * allocation fail; it must never be armed outside tests.
 */
#include <stdlib.h>
#include <string.h>

#include "corebox/mem.h"

/* Test-only knob; process-wide by design (allocation has no context). */
static long fail_after = -1;

static int
should_fail(void)
{
	if (fail_after < 0)
		return 0;
	if (fail_after == 0)
		return 1;
	fail_after--;
	return 0;
}

void *
mem_alloc(size_t n)
{
	if (should_fail())
		return NULL;
	return malloc(n ? n : 1);
}

void *
mem_calloc(size_t nmemb, size_t size)
{
	if (should_fail())
		return NULL;
	return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *
mem_realloc(void *p, size_t n)
{
	if (should_fail())
		return NULL;
	return realloc(p, n ? n : 1);
}

char *
mem_strndup(const char *s, size_t n)
{
	char *d = mem_alloc(n + 1);

	if (d == NULL)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *
mem_strdup(const char *s)
{
	return mem_strndup(s, strlen(s));
}

void
mem_free(void *p)
{
	free(p);
}

void
mem_fail_after(long n)
{
	fail_after = n;
}

void
mem_fail_reset(void)
{
	fail_after = -1;
}
