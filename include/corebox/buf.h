/*
 * buf: a growable byte buffer with a read offset.
 *
 * Data lives in data[off .. len). The buffer owns data; buf_free releases it.
 * All appends keep one spare byte so data[len] can be set to '\0' by
 * buf_cstr() without another allocation. Functions return 0 or -ERR_NOMEM.
 */
#ifndef COREBOX_BUF_H
#define COREBOX_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t off; /* first unread byte */
	size_t len; /* end of data */
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0, 0 }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* Drops all data, keeps the allocation. */
void buf_reset(struct buf *b);
/* Makes room for n more bytes after len (plus the spare NUL byte). */
int buf_reserve(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Unread bytes. */
static inline size_t buf_avail(const struct buf *b) { return b->len - b->off; }
static inline char *buf_head(const struct buf *b) { return b->data + b->off; }
/* Marks n unread bytes read; compacts when everything is read. */
void buf_consume(struct buf *b, size_t n);
/* Moves unread bytes to the start of the allocation. */
void buf_compact(struct buf *b);
/* NUL-terminates the data (not counted in len) and returns buf_head(). */
char *buf_cstr(struct buf *b);
/* Takes ownership of the data (from off) as a NUL-terminated string. */
char *buf_steal(struct buf *b, size_t *len);

#endif
