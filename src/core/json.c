/*
 * JSON through yajl: a generator whose bytes match Go's encoding/json, and
 * an event parser that builds a bounded tree in one arena per document.
 *
 * yajl keeps the structure of generated output (separators, nesting, one
 * top-level value); every string and number is formatted here, because
 * yajl's escaping is not Go's. The parser must never trust the input: every
 * limit in struct json_limits is checked before the memory is committed,
 * and a failed parse frees everything it built.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/json.h"
#include "corebox/mem.h"
#include "corebox/utf8.h"

/* yajl_gen fails when its depth reaches YAJL_MAX_DEPTH (128): 127 usable. */
#define GEN_DEPTH_MAX 127

/* ---- Go's string escaping ---- */

/* The bytes Go escapes (besides invalid UTF-8 and U+2028/9). */
static int
needs_escape(unsigned char c, int html)
{
	if (c < 0x20 || c == '"' || c == '\\')
		return 1;
	return html && (c == '<' || c == '>' || c == '&');
}

int
json_escape_go_html(struct buf *b, const char *str, size_t len, int html)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t start = b->len, i = 0, run = 0;
	char esc[8];
	int rc;

	/* Worst case 6 bytes out per byte in: reserve once for the common case. */
	rc = buf_reserve(b, len + 2);
	if (rc < 0)
		return rc;
	b->data[b->len++] = '"';
	while (i < len) {
		unsigned char c = s[i];
		size_t n = 0, w;
		uint32_t r;

		if (c < 0x80) {
			if (!needs_escape(c, html)) {
				i++;
				continue;
			}
			esc[n++] = '\\';
			switch (c) {
			case '"': esc[n++] = '"'; break;
			case '\\': esc[n++] = '\\'; break;
			case '\n': esc[n++] = 'n'; break;
			case '\r': esc[n++] = 'r'; break;
			case '\t': esc[n++] = 't'; break;
			default:
				esc[n++] = 'u';
				esc[n++] = '0';
				esc[n++] = '0';
				esc[n++] = hex[c >> 4];
				esc[n++] = hex[c & 15];
				break;
			}
			w = 1;
		} else {
			w = utf8_decode(s + i, len - i, &r);
			if (w != 0 && r != 0x2028 && r != 0x2029) {
				i += w;
				continue;
			}
			if (w == 0) {
				memcpy(esc, "\\ufffd", 6);
				w = 1;
			} else {
				memcpy(esc, r == 0x2028 ? "\\u2028" : "\\u2029", 6);
			}
			n = 6;
		}
		/* Flush the plain run before this escape. */
		if (buf_append(b, s + run, i - run) < 0 || buf_append(b, esc, n) < 0)
			goto nomem;
		i += w;
		run = i;
	}
	if (buf_append(b, s + run, i - run) < 0 || buf_putc(b, '"') < 0)
		goto nomem;
	return 0;
nomem:
	b->len = start;
	return -ERR_NOMEM;
}

int
json_escape_go(struct buf *b, const char *s, size_t len)
{
	return json_escape_go_html(b, s, len, 1);
}

/* ---- Go's float64 formatting ---- */

/*
 * Writes Go's encoding/json form of v into out (at least 40 bytes); returns
 * the length, or -ERR_INVAL for NaN and infinities.
 */
static int
format_double(char *out, double v)
{
	char tmp[40], digits[24];
	int prec, exp10, nd = 0, n = 0, efmt;
	double a = fabs(v);
	const char *p;

	if (isnan(v) || isinf(v))
		return -ERR_INVAL;
	if (v == 0)
		return sprintf(out, signbit(v) ? "-0" : "0");
	/* The fewest significant digits that read back as v. */
	for (prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	p = tmp;
	if (*p == '-')
		p++;
	for (; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	exp10 = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	efmt = a < 1e-6 || a >= 1e21;
	if (v < 0)
		out[n++] = '-';
	if (efmt) {
		out[n++] = digits[0];
		if (nd > 1) {
			out[n++] = '.';
			memcpy(out + n, digits + 1, (size_t)nd - 1);
			n += nd - 1;
		}
		out[n++] = 'e';
		out[n++] = exp10 < 0 ? '-' : '+';
		if (exp10 < 0)
			exp10 = -exp10;
		/* Go writes at least two exponent digits, then encoding/json
		 * shortens e-07 to e-7 (negative exponents only). */
		if (exp10 < 10 && out[n - 1] == '+')
			out[n++] = '0';
		n += sprintf(out + n, "%d", exp10);
		return n;
	}
	if (exp10 < 0) {
		out[n++] = '0';
		out[n++] = '.';
		for (int i = -1; i > exp10; i--)
			out[n++] = '0';
		memcpy(out + n, digits, (size_t)nd);
		return n + nd;
	}
	for (int i = 0; i <= exp10; i++)
		out[n++] = i < nd ? digits[i] : '0';
	if (nd > exp10 + 1) {
		out[n++] = '.';
		memcpy(out + n, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
		n += nd - exp10 - 1;
	}
	return n;
}

int
json_format_double(struct buf *b, double v)
{
	char tmp[48];
	int n = format_double(tmp, v);

	if (n < 0)
		return n;
	return buf_append(b, tmp, (size_t)n);
}

/* ---- generator ---- */

struct json_gen {
	yajl_gen y;
	struct buf *out;
	int err;        /* sticky: the first failure */
	int nomem;      /* the print callback could not append */
	int html;
	int depth;
	/* Per open container: is it an object, and is a key waiting for its value. */
	unsigned char is_obj[GEN_DEPTH_MAX + 1];
	unsigned char want_val[GEN_DEPTH_MAX + 1];
};

static void
gen_print(void *ctx, const char *s, size_t len)
{
	struct json_gen *g = ctx;

	if (g->nomem)
		return;
	if (buf_append(g->out, s, len) < 0)
		g->nomem = 1;
}

struct json_gen *
json_gen_new(struct buf *out)
{
	struct json_gen *g = mem_calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	/* yajl's allocations use its default allocator: it cannot cope with a
	 * failing malloc, and the generator allocates only at creation. */
	g->y = yajl_gen_alloc(NULL);
	if (g->y == NULL) {
		mem_free(g);
		return NULL;
	}
	yajl_gen_config(g->y, yajl_gen_print_callback, gen_print, g);
	g->out = out;
	g->html = 1;
	return g;
}

void
json_gen_free(struct json_gen *g)
{
	if (g == NULL)
		return;
	yajl_gen_free(g->y);
	mem_free(g);
}

void
json_gen_reset(struct json_gen *g)
{
	yajl_gen_reset(g->y, NULL);
	g->err = 0;
	g->nomem = 0;
	g->depth = 0;
	g->is_obj[0] = 0;
	g->want_val[0] = 0;
}

int
json_gen_error(const struct json_gen *g)
{
	return g->err;
}

void
json_gen_set_escape_html(struct json_gen *g, int html)
{
	g->html = html != 0;
}

static int
gen_fail(struct json_gen *g, int rc)
{
	if (g->err == 0)
		g->err = rc;
	return g->err;
}

static int
gen_status(struct json_gen *g, yajl_gen_status st)
{
	if (g->nomem)
		return gen_fail(g, -ERR_NOMEM);
	switch (st) {
	case yajl_gen_status_ok:
		return 0;
	case yajl_gen_invalid_number:
	case yajl_gen_invalid_string:
		return gen_fail(g, -ERR_INVAL);
	default:
		return gen_fail(g, -ERR_STATE);
	}
}

/* A value is due here: checks our structure before yajl prints anything. */
static int
gen_value_ok(struct json_gen *g)
{
	if (g->err)
		return g->err;
	if (g->depth > 0 && g->is_obj[g->depth] && !g->want_val[g->depth])
		return gen_fail(g, -ERR_STATE);
	return 0;
}

static void
gen_value_done(struct json_gen *g)
{
	g->want_val[g->depth] = 0;
}

/*
 * Emits the separator yajl wants before a value and marks a value as
 * written, then appends text (already formatted) to the buf. An empty
 * "number" makes yajl print exactly the separator.
 */
static int
gen_text(struct json_gen *g, const char *text, size_t len)
{
	int rc = gen_value_ok(g);

	if (rc < 0)
		return rc;
	rc = gen_status(g, yajl_gen_number(g->y, text, len));
	if (rc < 0)
		return rc;
	gen_value_done(g);
	return 0;
}

int
json_raw(struct json_gen *g, const char *json, size_t len)
{
	return gen_text(g, json, len);
}

int
json_str(struct json_gen *g, const char *s, size_t len)
{
	int rc = gen_text(g, "", 0);

	if (rc < 0)
		return rc;
	rc = json_escape_go_html(g->out, s, len, g->html);
	return rc < 0 ? gen_fail(g, rc) : 0;
}

int
json_strz(struct json_gen *g, const char *s)
{
	return json_str(g, s, strlen(s));
}

int
json_keyn(struct json_gen *g, const char *key, size_t len)
{
	int rc;

	if (g->err)
		return g->err;
	if (g->depth == 0 || !g->is_obj[g->depth] || g->want_val[g->depth])
		return gen_fail(g, -ERR_STATE);
	/*
	 * yajl prints the separator and `""` for an empty key; the quotes are
	 * replaced by the key escaped Go's way. The ':' comes with the value.
	 */
	rc = gen_status(g, yajl_gen_string(g->y, (const unsigned char *)"", 0));
	if (rc < 0)
		return rc;
	g->out->len -= 2;
	rc = json_escape_go_html(g->out, key, len, g->html);
	if (rc < 0)
		return gen_fail(g, rc);
	g->want_val[g->depth] = 1;
	return 0;
}

int
json_key(struct json_gen *g, const char *key)
{
	return json_keyn(g, key, strlen(key));
}

int
json_int(struct json_gen *g, int64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);

	return gen_text(g, tmp, (size_t)n);
}

int
json_uint(struct json_gen *g, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);

	return gen_text(g, tmp, (size_t)n);
}

int
json_bool(struct json_gen *g, int v)
{
	return v ? gen_text(g, "true", 4) : gen_text(g, "false", 5);
}

int
json_null(struct json_gen *g)
{
	return gen_text(g, "null", 4);
}

int
json_double(struct json_gen *g, double v)
{
	char tmp[48];
	int n;

	if (g->err)
		return g->err;
	n = format_double(tmp, v);
	if (n < 0)
		return gen_fail(g, n);
	return gen_text(g, tmp, (size_t)n);
}

static int
gen_open(struct json_gen *g, int obj)
{
	int rc = gen_value_ok(g);

	if (rc < 0)
		return rc;
	if (g->depth >= GEN_DEPTH_MAX)
		return gen_fail(g, -ERR_STATE);
	rc = gen_status(g, obj ? yajl_gen_map_open(g->y) : yajl_gen_array_open(g->y));
	if (rc < 0)
		return rc;
	g->depth++;
	g->is_obj[g->depth] = (unsigned char)obj;
	g->want_val[g->depth] = 0;
	return 0;
}

static int
gen_close(struct json_gen *g, int obj)
{
	int rc;

	if (g->err)
		return g->err;
	if (g->depth == 0 || g->is_obj[g->depth] != obj || g->want_val[g->depth])
		return gen_fail(g, -ERR_STATE);
	rc = gen_status(g, obj ? yajl_gen_map_close(g->y) : yajl_gen_array_close(g->y));
	if (rc < 0)
		return rc;
	g->depth--;
	gen_value_done(g);
	return 0;
}

int
json_obj_begin(struct json_gen *g)
{
	return gen_open(g, 1);
}

int
json_obj_end(struct json_gen *g)
{
	return gen_close(g, 1);
}

int
json_arr_begin(struct json_gen *g)
{
	return gen_open(g, 0);
}

int
json_arr_end(struct json_gen *g)
{
	return gen_close(g, 0);
}

int
json_gen_node(struct json_gen *g, const struct json_node *n)
{
	const struct json_node *c;
	int rc;

	if (n == NULL)
		return gen_fail(g, -ERR_INVAL);
	switch (n->type) {
	case JSON_NULL:
		return json_null(g);
	case JSON_BOOL:
		return json_bool(g, n->u.b);
	case JSON_NUMBER:
		return gen_text(g, n->u.num.text, n->u.num.len);
	case JSON_STRING:
		return json_str(g, n->u.str.s, n->u.str.len);
	case JSON_ARRAY:
	case JSON_OBJECT:
		rc = n->type == JSON_OBJECT ? json_obj_begin(g) : json_arr_begin(g);
		for (c = n->u.kids.first; rc == 0 && c != NULL; c = c->next) {
			if (n->type == JSON_OBJECT)
				rc = json_keyn(g, c->key, c->key_len);
			if (rc == 0)
				rc = json_gen_node(g, c);
		}
		if (rc < 0)
			return rc;
		return n->type == JSON_OBJECT ? json_obj_end(g) : json_arr_end(g);
	}
	return gen_fail(g, -ERR_INVAL);
}

/* ---- arena ---- */

#define ARENA_CHUNK_BYTES 4096

struct arena_chunk {
	struct arena_chunk *next;
	size_t used;
	size_t cap;
	alignas(max_align_t) unsigned char data[];
};

struct json_doc {
	struct arena_chunk *chunks; /* newest first */
	struct json_node *root;
};

static void *
arena_alloc(struct json_doc *doc, size_t n)
{
	struct arena_chunk *c = doc->chunks;
	size_t align = alignof(max_align_t), off;

	if (c != NULL) {
		off = (c->used + align - 1) & ~(align - 1);
		if (off <= c->cap && n <= c->cap - off) {
			c->used = off + n;
			return c->data + off;
		}
	}
	if (n > SIZE_MAX / 2)
		return NULL;
	size_t cap = n > ARENA_CHUNK_BYTES ? n : ARENA_CHUNK_BYTES;
	c = mem_alloc(sizeof(*c) + cap);
	if (c == NULL)
		return NULL;
	c->cap = cap;
	c->used = n;
	c->next = doc->chunks;
	doc->chunks = c;
	return c->data;
}

/* Gives back the tail of the last allocation p (which had size had). */
static void
arena_shrink(struct json_doc *doc, void *p, size_t had, size_t keep)
{
	struct arena_chunk *c = doc->chunks;

	if (c != NULL && (unsigned char *)p + had == c->data + c->used)
		c->used -= had - keep;
}

void
json_doc_free(struct json_doc *doc)
{
	struct arena_chunk *c, *next;

	if (doc == NULL)
		return;
	for (c = doc->chunks; c != NULL; c = next) {
		next = c->next;
		mem_free(c);
	}
	mem_free(doc);
}

const struct json_node *
json_doc_root(const struct json_doc *doc)
{
	return doc->root;
}

/* ---- parser ---- */

struct frame {
	struct json_node *node;
	struct json_node *last;
};

struct pstate {
	struct json_doc *doc;
	struct json_limits lim;
	yajl_handle h;
	const char *text;
	size_t len;
	int err;
	char *errmsg;
	size_t errmsg_size;
	size_t nodes;
	struct frame *stack;  /* open containers; stack[depth - 1] is the innermost */
	unsigned depth;
	unsigned stack_cap;
	const char *key;      /* pending member name */
	size_t key_len;
};

static size_t
pos(struct pstate *ps)
{
	return ps->h ? yajl_get_bytes_consumed(ps->h) : 0;
}

static int
cancel(struct pstate *ps, int rc, const char *fmt, size_t limit)
{
	ps->err = rc;
	if (ps->errmsg != NULL && ps->errmsg_size > 0) {
		if (rc == -ERR_NOMEM)
			snprintf(ps->errmsg, ps->errmsg_size, "json: out of memory at offset %zu", pos(ps));
		else
			snprintf(ps->errmsg, ps->errmsg_size, fmt, limit, pos(ps));
	}
	return 0;
}

static void
put_utf8(unsigned char *out, size_t *w, uint32_t r)
{
	if (r < 0x80) {
		out[(*w)++] = (unsigned char)r;
	} else if (r < 0x800) {
		out[(*w)++] = (unsigned char)(0xc0 | (r >> 6));
		out[(*w)++] = (unsigned char)(0x80 | (r & 0x3f));
	} else if (r < 0x10000) {
		out[(*w)++] = (unsigned char)(0xe0 | (r >> 12));
		out[(*w)++] = (unsigned char)(0x80 | ((r >> 6) & 0x3f));
		out[(*w)++] = (unsigned char)(0x80 | (r & 0x3f));
	} else {
		out[(*w)++] = (unsigned char)(0xf0 | (r >> 18));
		out[(*w)++] = (unsigned char)(0x80 | ((r >> 12) & 0x3f));
		out[(*w)++] = (unsigned char)(0x80 | ((r >> 6) & 0x3f));
		out[(*w)++] = (unsigned char)(0x80 | (r & 0x3f));
	}
}

static int
hex4(const unsigned char *s, size_t n, uint32_t *out)
{
	uint32_t v = 0;

	if (n < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/*
 * Decodes a raw JSON string body (between the quotes, already checked by
 * yajl's lexer) as Go's unquote does: escapes, surrogate pairs, a lone
 * surrogate as U+FFFD, each invalid UTF-8 byte as U+FFFD. out has room for
 * 3 * n bytes. Returns the decoded length.
 */
static size_t
decode_go(const unsigned char *s, size_t n, unsigned char *out)
{
	size_t i = 0, w = 0;

	while (i < n) {
		unsigned char c = s[i];
		uint32_t r, r2;
		size_t k;

		if (c == '\\' && i + 1 < n) {
			c = s[i + 1];
			i += 2;
			switch (c) {
			case 'b': out[w++] = '\b'; break;
			case 'f': out[w++] = '\f'; break;
			case 'n': out[w++] = '\n'; break;
			case 'r': out[w++] = '\r'; break;
			case 't': out[w++] = '\t'; break;
			case 'u':
				if (hex4(s + i, n - i, &r) < 0) {
					/* The lexer rejects this; keep the text as is. */
					out[w++] = '\\';
					out[w++] = 'u';
					break;
				}
				i += 4;
				if (r >= 0xd800 && r < 0xe000) {
					if (r < 0xdc00 && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u' &&
					    hex4(s + i + 2, n - i - 2, &r2) == 0 && r2 >= 0xdc00 && r2 < 0xe000) {
						r = 0x10000 + ((r - 0xd800) << 10) + (r2 - 0xdc00);
						i += 6;
					} else {
						r = 0xfffd;
					}
				}
				put_utf8(out, &w, r);
				break;
			default: /* '"', '\\', '/' */
				out[w++] = c;
				break;
			}
			continue;
		}
		if (c < 0x80) {
			out[w++] = c;
			i++;
			continue;
		}
		k = utf8_decode(s + i, n - i, &r);
		if (k == 0) {
			put_utf8(out, &w, 0xfffd);
			i++;
			continue;
		}
		memcpy(out + w, s + i, k);
		w += k;
		i += k;
	}
	return w;
}

/*
 * The raw body of the string token that ends just before the current
 * offset: its closing quote is the byte before, the opening quote the
 * nearest earlier '"' not preceded by an odd run of backslashes.
 */
static int
raw_token(struct pstate *ps, const unsigned char **raw, size_t *raw_len)
{
	size_t end = pos(ps), i, bs;

	if (end < 2 || end > ps->len || ps->text[end - 1] != '"')
		return -1;
	for (i = end - 1; i-- > 0;) {
		if (ps->text[i] != '"')
			continue;
		for (bs = 0; bs < i && ps->text[i - 1 - bs] == '\\'; bs++)
			;
		if (bs % 2 == 0) {
			*raw = (const unsigned char *)ps->text + i + 1;
			*raw_len = end - 1 - (i + 1);
			return 0;
		}
	}
	return -1;
}

/*
 * Copies a string into the arena with Go's decoding. yajl's decoded bytes
 * (s, n) are the fallback should the raw token not be found.
 */
static int
copy_string(struct pstate *ps, const unsigned char *s, size_t n, const char **out, size_t *out_len)
{
	const unsigned char *raw;
	size_t raw_len, cap, w;
	unsigned char *p;

	if (raw_token(ps, &raw, &raw_len) < 0) {
		raw = s;
		raw_len = n;
	}
	/* Decoding never grows a string by more than 3x (one byte to U+FFFD). */
	if (ps->lim.string_bytes_max < SIZE_MAX / 8 && raw_len > ps->lim.string_bytes_max * 6)
		return cancel(ps, -ERR_LIMIT, "json: string limit %zu bytes exceeded at offset %zu",
			ps->lim.string_bytes_max);
	cap = raw_len * 3 + 1;
	p = arena_alloc(ps->doc, cap);
	if (p == NULL)
		return cancel(ps, -ERR_NOMEM, NULL, 0);
	w = decode_go(raw, raw_len, p);
	p[w] = '\0';
	arena_shrink(ps->doc, p, cap, w + 1);
	if (w > ps->lim.string_bytes_max)
		return cancel(ps, -ERR_LIMIT, "json: string limit %zu bytes exceeded at offset %zu",
			ps->lim.string_bytes_max);
	*out = (const char *)p;
	*out_len = w;
	return 1;
}

/* A new node, linked into the innermost open container. NULL: cancelled. */
static struct json_node *
add_node(struct pstate *ps, enum json_type type)
{
	struct json_node *n;
	struct frame *f;

	if (ps->nodes >= ps->lim.nodes_max) {
		cancel(ps, -ERR_LIMIT, "json: node limit %zu exceeded at offset %zu", ps->lim.nodes_max);
		return NULL;
	}
	n = arena_alloc(ps->doc, sizeof(*n));
	if (n == NULL) {
		cancel(ps, -ERR_NOMEM, NULL, 0);
		return NULL;
	}
	memset(n, 0, sizeof(*n));
	n->type = type;
	ps->nodes++;
	if (ps->depth == 0) {
		ps->doc->root = n;
		return n;
	}
	f = &ps->stack[ps->depth - 1];
	if (f->node->type == JSON_OBJECT) {
		n->key = ps->key;
		n->key_len = ps->key_len;
		ps->key = NULL;
	}
	if (f->last != NULL)
		f->last->next = n;
	else
		f->node->u.kids.first = n;
	f->last = n;
	f->node->u.kids.n++;
	return n;
}

static int
cb_null(void *ctx)
{
	return add_node(ctx, JSON_NULL) != NULL;
}

static int
cb_bool(void *ctx, int v)
{
	struct json_node *n = add_node(ctx, JSON_BOOL);

	if (n == NULL)
		return 0;
	n->u.b = v != 0;
	return 1;
}

static int
cb_number(void *ctx, const char *s, size_t len)
{
	struct pstate *ps = ctx;
	struct json_node *n = add_node(ps, JSON_NUMBER);
	char *t;

	if (n == NULL)
		return 0;
	t = arena_alloc(ps->doc, len + 1);
	if (t == NULL)
		return cancel(ps, -ERR_NOMEM, NULL, 0);
	memcpy(t, s, len);
	t[len] = '\0';
	n->u.num.text = t;
	n->u.num.len = len;
	return 1;
}

static int
cb_string(void *ctx, const unsigned char *s, size_t len)
{
	struct pstate *ps = ctx;
	struct json_node *n = add_node(ps, JSON_STRING);

	if (n == NULL)
		return 0;
	return copy_string(ps, s, len, &n->u.str.s, &n->u.str.len);
}

static int
cb_key(void *ctx, const unsigned char *s, size_t len)
{
	struct pstate *ps = ctx;

	return copy_string(ps, s, len, &ps->key, &ps->key_len);
}

static int
push(struct pstate *ps, enum json_type type)
{
	struct json_node *n;

	if (ps->depth + 1 > ps->lim.depth_max)
		return cancel(ps, -ERR_LIMIT, "json: depth limit %zu exceeded at offset %zu",
			(size_t)ps->lim.depth_max);
	n = add_node(ps, type);
	if (n == NULL)
		return 0;
	if (ps->depth == ps->stack_cap) {
		unsigned cap = ps->stack_cap ? ps->stack_cap * 2 : 16;
		struct frame *st = mem_realloc(ps->stack, cap * sizeof(*st));

		if (st == NULL)
			return cancel(ps, -ERR_NOMEM, NULL, 0);
		ps->stack = st;
		ps->stack_cap = cap;
	}
	ps->stack[ps->depth].node = n;
	ps->stack[ps->depth].last = NULL;
	ps->depth++;
	return 1;
}

static int
pop(void *ctx)
{
	struct pstate *ps = ctx;

	ps->depth--;
	return 1;
}

static int
cb_start_map(void *ctx)
{
	return push(ctx, JSON_OBJECT);
}

static int
cb_start_array(void *ctx)
{
	return push(ctx, JSON_ARRAY);
}

static const yajl_callbacks parse_callbacks = {
	.yajl_null = cb_null,
	.yajl_boolean = cb_bool,
	.yajl_number = cb_number,
	.yajl_string = cb_string,
	.yajl_start_map = cb_start_map,
	.yajl_map_key = cb_key,
	.yajl_end_map = pop,
	.yajl_start_array = cb_start_array,
	.yajl_end_array = pop,
};

/*
 * yajl's message on one line ("parse error: trailing garbage"), with the
 * offset. yajl's offset for a lexical error is near the bad byte, not on it.
 */
static void
yajl_message(struct pstate *ps, size_t offset)
{
	unsigned char *e;
	size_t n;

	if (ps->errmsg == NULL || ps->errmsg_size == 0)
		return;
	e = yajl_get_error(ps->h, 0, (const unsigned char *)ps->text, ps->len);
	if (e == NULL) {
		snprintf(ps->errmsg, ps->errmsg_size, "json: parse error at offset %zu", offset);
		return;
	}
	n = strlen((char *)e);
	while (n > 0 && (e[n - 1] == '\n' || e[n - 1] == ' ' || e[n - 1] == '.'))
		n--;
	snprintf(ps->errmsg, ps->errmsg_size, "json: %.*s at offset %zu", (int)n, (char *)e, offset);
	yajl_free_error(ps->h, e);
}

int
json_parse(const char *text, size_t len, const struct json_limits *lim,
	struct json_doc **out, char *errmsg, size_t errmsg_size)
{
	static const struct json_limits defaults = JSON_LIMITS_DEFAULT;
	struct pstate ps;
	yajl_status st;
	int rc = 0, at_end = 0;

	*out = NULL;
	memset(&ps, 0, sizeof(ps));
	ps.lim = lim ? *lim : defaults;
	ps.text = text;
	ps.len = len;
	ps.errmsg = errmsg;
	ps.errmsg_size = errmsg_size;
	if (errmsg != NULL && errmsg_size > 0)
		errmsg[0] = '\0';
	if (len > ps.lim.input_bytes_max) {
		if (errmsg != NULL && errmsg_size > 0)
			snprintf(errmsg, errmsg_size, "json: input limit %zu bytes exceeded (%zu bytes)",
				ps.lim.input_bytes_max, len);
		return -ERR_LIMIT;
	}
	ps.doc = mem_calloc(1, sizeof(*ps.doc));
	if (ps.doc == NULL) {
		cancel(&ps, -ERR_NOMEM, NULL, 0);
		return -ERR_NOMEM;
	}
	/* yajl's internals use its own allocator: it cannot survive a failing malloc. */
	ps.h = yajl_alloc(&parse_callbacks, NULL, &ps);
	if (ps.h == NULL) {
		json_doc_free(ps.doc);
		cancel(&ps, -ERR_NOMEM, NULL, 0);
		return -ERR_NOMEM;
	}
	/* Go accepts invalid UTF-8 in strings (as U+FFFD): decode_go handles it. */
	yajl_config(ps.h, yajl_dont_validate_strings, 1);
	st = yajl_parse(ps.h, (const unsigned char *)text, len);
	if (st == yajl_status_ok) {
		st = yajl_complete_parse(ps.h);
		/* The final pass counts its own offsets: the error is at the end. */
		at_end = 1;
	}
	if (st == yajl_status_client_canceled) {
		rc = ps.err ? ps.err : -ERR_PARSE;
	} else if (st != yajl_status_ok) {
		yajl_message(&ps, at_end ? len : pos(&ps));
		rc = -ERR_PARSE;
	} else if (ps.doc->root == NULL || ps.depth != 0) {
		/* yajl reports these itself; never hand out a document without a root. */
		if (errmsg != NULL && errmsg_size > 0)
			snprintf(errmsg, errmsg_size, "json: unexpected end of input at offset %zu", len);
		rc = -ERR_PARSE;
	}
	yajl_free(ps.h);
	mem_free(ps.stack);
	if (rc < 0) {
		json_doc_free(ps.doc);
		return rc;
	}
	*out = ps.doc;
	return 0;
}

/* ---- lookup and accessors ---- */

const struct json_node *
json_getn(const struct json_node *obj, const char *key, size_t len)
{
	const struct json_node *c, *found = NULL;

	if (obj == NULL || obj->type != JSON_OBJECT)
		return NULL;
	for (c = obj->u.kids.first; c != NULL; c = c->next)
		if (c->key_len == len && memcmp(c->key, key, len) == 0)
			found = c;
	return found;
}

const struct json_node *
json_get(const struct json_node *obj, const char *key)
{
	return json_getn(obj, key, strlen(key));
}

static int
fold_eq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return 0;
	}
	return 1;
}

const struct json_node *
json_get_fold(const struct json_node *obj, const char *key)
{
	const struct json_node *c, *found = NULL;
	size_t len = strlen(key);

	if (obj == NULL || obj->type != JSON_OBJECT)
		return NULL;
	for (c = obj->u.kids.first; c != NULL; c = c->next)
		if (c->key_len == len && fold_eq(c->key, key, len))
			found = c;
	return found;
}

const struct json_node *
json_first(const struct json_node *n)
{
	if (n == NULL || (n->type != JSON_ARRAY && n->type != JSON_OBJECT))
		return NULL;
	return n->u.kids.first;
}

size_t
json_len(const struct json_node *n)
{
	if (n == NULL || (n->type != JSON_ARRAY && n->type != JSON_OBJECT))
		return 0;
	return n->u.kids.n;
}

const struct json_node *
json_at(const struct json_node *n, size_t i)
{
	const struct json_node *c = json_first(n);

	while (c != NULL && i > 0) {
		c = c->next;
		i--;
	}
	return c;
}

int
json_is_null(const struct json_node *n)
{
	return n == NULL || n->type == JSON_NULL;
}

int
json_get_bool(const struct json_node *n, int *out)
{
	if (n == NULL || n->type != JSON_BOOL)
		return -ERR_INVAL;
	*out = n->u.b;
	return 0;
}

int
json_get_str(const struct json_node *n, const char **s, size_t *len)
{
	if (n == NULL || n->type != JSON_STRING)
		return -ERR_INVAL;
	*s = n->u.str.s;
	if (len != NULL)
		*len = n->u.str.len;
	return 0;
}

/* The magnitude of an integer number's text; -ERR_RANGE on fraction, exponent or overflow. */
static int
number_magnitude(const struct json_node *n, int *neg, uint64_t *mag)
{
	const char *p;
	uint64_t v = 0;

	if (n == NULL || n->type != JSON_NUMBER)
		return -ERR_INVAL;
	p = n->u.num.text;
	*neg = *p == '-';
	if (*neg)
		p++;
	if (*p == '\0')
		return -ERR_RANGE;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -ERR_RANGE;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERR_RANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*mag = v;
	return 0;
}

int
json_get_int(const struct json_node *n, int64_t *out)
{
	uint64_t mag;
	int neg, rc = number_magnitude(n, &neg, &mag);

	if (rc < 0)
		return rc;
	if (!neg && mag > (uint64_t)INT64_MAX)
		return -ERR_RANGE;
	if (neg && mag > (uint64_t)INT64_MAX + 1)
		return -ERR_RANGE;
	*out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
	return 0;
}

int
json_get_uint(const struct json_node *n, uint64_t *out)
{
	uint64_t mag;
	int neg, rc = number_magnitude(n, &neg, &mag);

	if (rc < 0)
		return rc;
	/* Go's ParseUint refuses any sign, even "-0". */
	if (neg)
		return -ERR_RANGE;
	*out = mag;
	return 0;
}

int
json_get_double(const struct json_node *n, double *out)
{
	double v;

	if (n == NULL || n->type != JSON_NUMBER)
		return -ERR_INVAL;
	errno = 0;
	v = strtod(n->u.num.text, NULL);
	/* Go's ParseFloat fails on overflow only; underflow rounds to 0. */
	if (isinf(v))
		return -ERR_RANGE;
	*out = v;
	return 0;
}
