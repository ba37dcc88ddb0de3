/*
 * mem: the one allocation hook.
 *
 * Every allocation in corebox goes through these functions so that tests can
 * make the Nth allocation fail (mem_fail_after) and check that the caller
 * copes. They return NULL on failure like malloc; they never abort.
 */
#ifndef COREBOX_MEM_H
#define COREBOX_MEM_H

#include <stddef.h>

void *mem_alloc(size_t n);
void *mem_calloc(size_t nmemb, size_t size);
void *mem_realloc(void *p, size_t n);
/* Returns a NUL-terminated copy of the first n bytes of s; caller frees. */
char *mem_strndup(const char *s, size_t n);
char *mem_strdup(const char *s);
void mem_free(void *p);

/*
 * Test hook: after n more successful allocations, every allocation fails
 * until mem_fail_reset(). n < 0 disables failure injection (the default).
 */
void mem_fail_after(long n);
void mem_fail_reset(void);

#endif
