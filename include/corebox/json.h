/*
 * json: JSON out exactly as Go's encoding/json writes it, and JSON in with
 * limits, both through yajl.
 *
 * Generator. Writes compact JSON straight into a caller's struct buf. yajl
 * keeps the structure (commas, colons, nesting, "one top-level value"); the
 * bytes of strings and numbers are formatted here as Go's encoding/json
 * (Go 1.19, json.Marshal / json.Encoder with the default SetEscapeHTML(true),
 * which is what etcd, fleet and flannel use):
 *   - no whitespace anywhere; json.Encoder's trailing "\n" is NOT written
 *     (etcd's bodies end with it: the caller appends it);
 *   - strings: `"` -> \"   `\` -> \\   newline, CR, tab -> \n \r \t;
 *     every other byte < 0x20 -> \u00XX with lowercase hex (\u0008, \u000c,
 *     \u001b); `<` `>` `&` -> \u003c \u003e \u0026; U+2028, U+2029 ->
 *     \u2028 \u2029; '/' and DEL (0x7f) and valid UTF-8 unchanged; each byte
 *     of an invalid UTF-8 sequence (including encoded surrogates and
 *     overlong forms) -> \ufffd, as utf8.DecodeRuneInString sees it;
 *   - map keys are escaped by the same rules (Go escapes keys too);
 *   - integers in decimal; float64 as Go's strconv 'f'/'e' shortest form
 *     (see json_double).
 * Once a call fails, the generator keeps failing with the same code
 * (sticky), and the buf holds a truncated document the caller must discard.
 *
 * Parser. yajl's event parser (not yajl_tree) builds a small tree in one
 * arena per document, so one json_doc_free() releases everything. Limits on
 * everything the peer controls (struct json_limits), errors as -ERR_PARSE or
 * -ERR_LIMIT with a message naming the byte offset. Semantics follow Go's
 * json.Unmarshal where they can be checked cheaply:
 *   - exactly one value, surrounded by optional whitespace; no comments;
 *   - invalid UTF-8 inside strings is accepted and each bad byte becomes
 *     U+FFFD (as Go does); strings may contain NUL (use the length);
 *     an escaped lone surrogate becomes U+FFFD (yajl gives '?' for a lone
 *     high surrogate; that one difference from Go remains);
 *   - objects keep their members in input order, duplicates included;
 *     json_get() returns the LAST member of that name, which is the one Go
 *     keeps; json_get_fold() also matches keys case-insensitively (ASCII
 *     only) as Go does when decoding into a struct;
 *   - numbers keep their source text; accessors convert on demand.
 * Error messages are yajl's wording with a byte offset (for limits: just
 * past the token that broke it; for a premature end: the input length; for
 * syntax errors: yajl's, near the offending token), not Go's ("invalid character 'x' looking for beginning of
 * value"); callers that must echo Go's text should use their own message.
 */
#ifndef COREBOX_JSON_H
#define COREBOX_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "corebox/buf.h"

/* ---- generator ---- */

struct json_gen;

/*
 * A generator appending to out (not owned; must outlive the generator).
 * Returns NULL on allocation failure.
 */
struct json_gen *json_gen_new(struct buf *out);
void json_gen_free(struct json_gen *g);
/* Allows another top-level value (and clears a sticky error); out is kept. */
void json_gen_reset(struct json_gen *g);
/* 0, or the sticky error of the first failed call. */
int json_gen_error(const struct json_gen *g);
/* html != 0 (the default): escape < > & as Go's default encoder does. */
void json_gen_set_escape_html(struct json_gen *g, int html);

/*
 * Each returns 0 or:
 *   -ERR_NOMEM  the buf could not grow
 *   -ERR_STATE  misuse: a non-key where a key is due, a second top-level
 *               value, an unbalanced end, nesting deeper than 127 (yajl's limit)
 *   -ERR_INVAL  json_double of NaN or an infinity (Go's UnsupportedValueError)
 */
int json_obj_begin(struct json_gen *g);
int json_obj_end(struct json_gen *g);
int json_arr_begin(struct json_gen *g);
int json_arr_end(struct json_gen *g);
/* A member name; must be followed by exactly one value. */
int json_key(struct json_gen *g, const char *key);
int json_keyn(struct json_gen *g, const char *key, size_t len);
/* A string value of len bytes (may contain NUL and any bytes). */
int json_str(struct json_gen *g, const char *s, size_t len);
/* A NUL-terminated string value. */
int json_strz(struct json_gen *g, const char *s);
int json_int(struct json_gen *g, int64_t v);
int json_uint(struct json_gen *g, uint64_t v);
int json_bool(struct json_gen *g, int v);
int json_null(struct json_gen *g);
/*
 * float64 as Go's encoding/json: shortest digits that read back as the same
 * double; 'f' notation (no exponent, no trailing ".0": 1, 0.5, 1e20 as
 * 100000000000000000000) unless |v| < 1e-6 or |v| >= 1e21, then 'e'
 * notation with Go's exponent form: 1e-07 is written 1e-7, 1e+21 stays.
 * The shortest digits come from the C library's correctly rounded %.*e at
 * increasing precision: at an exact power of two a shorter non-nearest
 * string can exist that Go would pick; that rare case prints one digit more.
 */
int json_double(struct json_gen *g, double v);
/*
 * Already-encoded JSON inserted as one value (e.g. a stored JSON document).
 * It is not validated: the caller guarantees it is exactly one value.
 */
int json_raw(struct json_gen *g, const char *json, size_t len);

/*
 * Appends s as a quoted JSON string with Go's escaping (HTML-safe) to b, for
 * callers that write text themselves. Returns 0 or -ERR_NOMEM (b unchanged
 * on failure).
 */
int json_escape_go(struct buf *b, const char *s, size_t len);
/* As json_escape_go; html = 0 leaves < > & alone (SetEscapeHTML(false)). */
int json_escape_go_html(struct buf *b, const char *s, size_t len, int html);
/* Appends Go's float64 encoding of v (json_double's text); -ERR_INVAL for NaN/Inf. */
int json_format_double(struct buf *b, double v);

/* ---- parser ---- */

enum json_type {
	JSON_NULL,
	JSON_BOOL,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

/*
 * A parsed value. Nodes, keys and strings live in the document's arena:
 * valid until json_doc_free(). Read the fields directly or use the helpers.
 */
struct json_node {
	enum json_type type;
	struct json_node *next;   /* next array element or object member */
	const char *key;          /* member name (NUL-terminated) if in an object, else NULL */
	size_t key_len;
	union {
		int b;                /* JSON_BOOL */
		struct {
			const char *s;    /* NUL-terminated; may contain NUL: use len */
			size_t len;
		} str;                /* JSON_STRING */
		struct {
			const char *text; /* the source text, NUL-terminated */
			size_t len;
		} num;                /* JSON_NUMBER */
		struct {
			struct json_node *first; /* children in input order, linked by next */
			size_t n;
		} kids;               /* JSON_ARRAY, JSON_OBJECT */
	} u;
};

struct json_limits {
	size_t input_bytes_max;  /* whole document */
	unsigned depth_max;      /* nested arrays/objects; the top value is depth 1 */
	size_t nodes_max;        /* values of any kind, containers included */
	size_t string_bytes_max; /* one string or key, after unescaping */
};

#define JSON_INPUT_BYTES_MAX_DEFAULT ((size_t)4 << 20)
#define JSON_DEPTH_MAX_DEFAULT 64u
#define JSON_NODES_MAX_DEFAULT ((size_t)1 << 20)
#define JSON_STRING_BYTES_MAX_DEFAULT ((size_t)1 << 20)
#define JSON_LIMITS_DEFAULT { JSON_INPUT_BYTES_MAX_DEFAULT, JSON_DEPTH_MAX_DEFAULT, \
	JSON_NODES_MAX_DEFAULT, JSON_STRING_BYTES_MAX_DEFAULT }

/* Longest message written to errmsg (including the NUL). */
#define JSON_ERRMSG_BYTES_MAX 256

struct json_doc;

/*
 * Parses text[0 .. len) (need not be NUL-terminated). lim NULL: defaults.
 * On success *out is a new document (caller frees with json_doc_free()).
 * Returns 0, -ERR_PARSE (not JSON), -ERR_LIMIT (a limit exceeded) or
 * -ERR_NOMEM; on failure *out is NULL and, if errmsg is not NULL, a message
 * such as "json: depth limit 64 exceeded at offset 123" or
 * "json: parse error at offset 5: invalid object key (must be a string)"
 * is written (truncated to errmsg_size).
 */
int json_parse(const char *text, size_t len, const struct json_limits *lim,
	struct json_doc **out, char *errmsg, size_t errmsg_size);
/* NULL is accepted. */
void json_doc_free(struct json_doc *doc);
/* The top-level value (never NULL for a parsed document). */
const struct json_node *json_doc_root(const struct json_doc *doc);

/* Last member named key (NUL-terminated) of an object; NULL if none or not an object. */
const struct json_node *json_get(const struct json_node *obj, const char *key);
const struct json_node *json_getn(const struct json_node *obj, const char *key, size_t len);
/* As json_get, but keys compare case-insensitively (ASCII), as Go's struct decoding. */
const struct json_node *json_get_fold(const struct json_node *obj, const char *key);
/* The i-th element of an array or member of an object (O(i)); NULL if out of range. */
const struct json_node *json_at(const struct json_node *n, size_t i);
/* Number of elements/members; 0 for scalars. */
size_t json_len(const struct json_node *n);
/* Iteration: for (c = json_first(n); c; c = c->next). NULL for scalars. */
const struct json_node *json_first(const struct json_node *n);

/*
 * Typed accessors: 0 on success, -ERR_INVAL if n is NULL or of another
 * type, -ERR_RANGE if a number does not fit (or, for the integer ones, has
 * a fraction or exponent: Go refuses "1.0" for an int64 field). *out is
 * written only on success. json_get_str gives the arena's bytes (not copied).
 */
int json_get_bool(const struct json_node *n, int *out);
int json_get_int(const struct json_node *n, int64_t *out);
int json_get_uint(const struct json_node *n, uint64_t *out);
int json_get_double(const struct json_node *n, double *out);
int json_get_str(const struct json_node *n, const char **s, size_t *len);
/* 1 if n is JSON null or NULL (absent), else 0. */
int json_is_null(const struct json_node *n);

/*
 * Writes a parsed value back through g: strings re-escaped Go's way,
 * numbers as their source text, members in order (duplicates kept).
 * Returns as the generator calls do.
 */
int json_gen_node(struct json_gen *g, const struct json_node *n);

#endif
