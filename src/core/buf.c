/*
 * Growable byte buffer. Every network and file path uses it, so it must
 * never lose data on allocation failure: a failed append leaves the buffer
 * exactly as it was.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/mem.h"

void
buf_init(struct buf *b)
{
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

void
buf_free(struct buf *b)
{
	mem_free(b->data);
	buf_init(b);
}

void
buf_reset(struct buf *b)
{
	b->off = b->len = 0;
}

void
buf_compact(struct buf *b)
{
	if (b->off == 0)
		return;
	memmove(b->data, b->data + b->off, b->len - b->off);
	b->len -= b->off;
	b->off = 0;
}

int
buf_reserve(struct buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (n > (size_t)-1 / 2 - b->len)
		return -ERR_NOMEM;
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	/* Reclaim the consumed prefix before growing. */
	if (b->off > 0 && need - b->off <= b->cap) {
		buf_compact(b);
		return 0;
	}
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = mem_realloc(b->data, cap);
	if (p == NULL)
		return -ERR_NOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	int rc = buf_reserve(b, n);

	if (rc < 0)
		return rc;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n, rc;

	va_copy(ap2, ap);
	rc = buf_reserve(b, 64);
	if (rc < 0) {
		va_end(ap2);
		return rc;
	}
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	if (n < 0) {
		va_end(ap2);
		return -ERR_INVAL;
	}
	if ((size_t)n >= b->cap - b->len) {
		rc = buf_reserve(b, (size_t)n);
		if (rc < 0) {
			va_end(ap2);
			return rc;
		}
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
	}
	va_end(ap2);
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len - b->off) {
		b->off = b->len = 0;
		return;
	}
	b->off += n;
}

char *
buf_cstr(struct buf *b)
{
	if (b->data == NULL && buf_reserve(b, 0) < 0)
		return NULL;
	b->data[b->len] = '\0';
	return b->data + b->off;
}

char *
buf_steal(struct buf *b, size_t *len)
{
	char *p;

	buf_compact(b);
	if (buf_cstr(b) == NULL)
		return NULL;
	p = b->data;
	if (len != NULL)
		*len = b->len;
	buf_init(b);
	return p;
}
