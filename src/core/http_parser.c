/*
 * http_parser: the pure half of core/http. Request and response heads,
 * chunked bodies, percent and form decoding, URLs, reason phrases and the
 * Date format. Everything a peer sends passes through here first, so every
 * function takes explicit bounds, never reads past len, never allocates
 * (the parameter store is reserved by the caller) and never does I/O. It is
 * fuzzed by tests/fuzz/fuzz_http.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/http.h"

/* RFC 7230 tchar: the characters of a token (method, header name). */
static const unsigned char tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
	['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
	['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
	['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
	['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
	['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
	['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
	['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
	['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
	['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Field-value characters: HTAB, visible ASCII, SP and obs-text. */
static bool
is_vchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool
ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	return alen == blen && strncasecmp(a, b, alen) == 0;
}

const struct http_header *
http_header_find(const struct http_header *h, size_t n, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < n; i++)
		if (h[i].name_len == len && strncasecmp(h[i].name, name, len) == 0)
			return &h[i];
	return NULL;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Request Entity Too Large";
	case 414: return "Request URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "";
	}
}

size_t
http_date(char out[30], int64_t t)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;
	unsigned year;

	if (gmtime_r(&tt, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = 70;
		tm.tm_mday = 1;
		tm.tm_wday = 4;
	}
	year = (unsigned)(tm.tm_year + 1900);
	/* "Sun, 22 Nov 2026 03:40:01 GMT", written by hand: no locale, no printf. */
	memcpy(out, days[tm.tm_wday % 7], 3);
	out[3] = ',';
	out[4] = ' ';
	out[5] = (char)('0' + tm.tm_mday / 10);
	out[6] = (char)('0' + tm.tm_mday % 10);
	out[7] = ' ';
	memcpy(out + 8, months[tm.tm_mon % 12], 3);
	out[11] = ' ';
	out[12] = (char)('0' + year / 1000);
	out[13] = (char)('0' + year / 100 % 10);
	out[14] = (char)('0' + year / 10 % 10);
	out[15] = (char)('0' + year % 10);
	out[16] = ' ';
	out[17] = (char)('0' + tm.tm_hour / 10);
	out[18] = (char)('0' + tm.tm_hour % 10);
	out[19] = ':';
	out[20] = (char)('0' + tm.tm_min / 10);
	out[21] = (char)('0' + tm.tm_min % 10);
	out[22] = ':';
	out[23] = (char)('0' + tm.tm_sec / 10);
	out[24] = (char)('0' + tm.tm_sec % 10);
	memcpy(out + 25, " GMT", 5);
	return 29;
}

const char *
http_errno_str(int e)
{
	switch (e) {
	case EADDRINUSE: return "address already in use";
	case EADDRNOTAVAIL: return "cannot assign requested address";
	case EAFNOSUPPORT: return "address family not supported by protocol";
	case EACCES: return "permission denied";
	case ECONNREFUSED: return "connection refused";
	case ECONNRESET: return "connection reset by peer";
	case ECONNABORTED: return "software caused connection abort";
	case ETIMEDOUT: return "connection timed out";
	case ENETUNREACH: return "network is unreachable";
	case EHOSTUNREACH: return "no route to host";
	case EMFILE: return "too many open files";
	case ENFILE: return "too many open files in system";
	case ENOBUFS: return "no buffer space available";
	case EPIPE: return "broken pipe";
	case EINVAL: return "invalid argument";
	case ENOMEM: return "cannot allocate memory";
	default: return "i/o error";
	}
}

/* ------------------------------------------------------------------ */
/* Heads                                                               */
/* ------------------------------------------------------------------ */

static enum http_method
method_id(const char *m, size_t n)
{
	switch (n) {
	case 3:
		if (memcmp(m, "GET", 3) == 0)
			return HTTP_GET;
		if (memcmp(m, "PUT", 3) == 0)
			return HTTP_PUT;
		break;
	case 4:
		if (memcmp(m, "HEAD", 4) == 0)
			return HTTP_HEAD;
		if (memcmp(m, "POST", 4) == 0)
			return HTTP_POST;
		break;
	case 5:
		if (memcmp(m, "PATCH", 5) == 0)
			return HTTP_PATCH;
		break;
	case 6:
		if (memcmp(m, "DELETE", 6) == 0)
			return HTTP_DELETE;
		break;
	case 7:
		if (memcmp(m, "OPTIONS", 7) == 0)
			return HTTP_OPTIONS;
		break;
	}
	return HTTP_OTHER;
}

/*
 * Finds the blank line that ends the head. Leading empty lines (RFC 7230
 * 3.5) are skipped and reported in *skip. Returns the head length or 0.
 */
static size_t
find_head_end(const char *buf, size_t len, size_t *scanned, size_t *skip)
{
	size_t start = 0, i;
	const char *nl;

	while (start < len && (buf[start] == '\n' || (buf[start] == '\r' &&
		start + 1 < len && buf[start + 1] == '\n')))
		start += buf[start] == '\r' ? 2 : 1;
	*skip = start;
	i = *scanned > start ? *scanned : start;
	while (i < len && (nl = memchr(buf + i, '\n', len - i)) != NULL) {
		i = (size_t)(nl - buf);
		if (i > start && buf[i - 1] == '\n')
			return i + 1;
		if (i > start + 1 && buf[i - 1] == '\r' && buf[i - 2] == '\n')
			return i + 1;
		i++;
	}
	*scanned = len;
	return 0;
}

/* The end of the line starting at p (the '\n'), and its content length without CR. */
static size_t
line_len(const char *p, const char *end, const char **next)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	size_t n;

	/* find_head_end guarantees a '\n' before end. */
	if (nl == NULL)
		nl = end - 1;
	*next = nl + 1;
	n = (size_t)(nl - p);
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

/* Parses "HTTP/1.1": 0 on success with *minor set, -ERR_PARSE or -ERR_UNSUPPORTED. */
static int
parse_version(const char *p, size_t n, int *minor)
{
	if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' ||
	    p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9')
		return -ERR_PARSE;
	if (p[5] != '1')
		return -ERR_UNSUPPORTED;
	*minor = p[7] == '0' ? 0 : 1;
	return 0;
}

/* Comma-separated tokens of a Connection value. */
static unsigned
connection_flags(const char *v, size_t n)
{
	unsigned f = 0;
	size_t i = 0;

	while (i < n) {
		size_t s, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (ieq(v + s, e - s, "close"))
			f |= HTTP_HEAD_CONN_CLOSE;
		else if (ieq(v + s, e - s, "keep-alive"))
			f |= HTTP_HEAD_CONN_KEEPALIVE;
		else if (ieq(v + s, e - s, "upgrade"))
			f |= HTTP_HEAD_CONN_UPGRADE;
	}
	return f;
}

static int
fail(struct http_head *h, int err, int status)
{
	h->err_status = status;
	return err;
}

/*
 * Parses the header fields in [p, end) into h. The caller has checked that
 * the head ends with a blank line.
 */
static int
parse_fields(char *p, char *end, bool request, struct http_head *h,
	struct http_header *headers, size_t headers_max)
{
	bool have_cl = false, have_te = false, te_chunked = false;
	int hosts = 0;

	for (;;) {
		const char *next;
		size_t n = line_len(p, end, &next);
		char *colon, *v, *ve;

		if (n == 0)
			break;
		if (p[0] == ' ' || p[0] == '\t')
			return fail(h, -ERR_PARSE, 400); /* obs-fold */
		colon = memchr(p, ':', n);
		if (colon == NULL || colon == p)
			return fail(h, -ERR_PARSE, 400);
		for (char *q = p; q < colon; q++)
			if (!tchar[(unsigned char)*q])
				return fail(h, -ERR_PARSE, 400);
		v = colon + 1;
		ve = p + n;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (char *q = v; q < ve; q++)
			if (!is_vchar((unsigned char)*q))
				return fail(h, -ERR_PARSE, 400);
		if (h->nheaders >= headers_max)
			return fail(h, -ERR_LIMIT, 431);
		*colon = '\0';
		*ve = '\0';
		headers[h->nheaders].name = p;
		headers[h->nheaders].name_len = (size_t)(colon - p);
		headers[h->nheaders].value = v;
		headers[h->nheaders].value_len = (size_t)(ve - v);
		h->nheaders++;

		size_t nl = (size_t)(colon - p), vl = (size_t)(ve - v);
		if (ieq(p, nl, "content-length")) {
			int64_t cl = 0;

			if (vl == 0 || vl > 18)
				return fail(h, -ERR_PARSE, 400);
			for (size_t i = 0; i < vl; i++) {
				if (v[i] < '0' || v[i] > '9')
					return fail(h, -ERR_PARSE, 400);
				cl = cl * 10 + (v[i] - '0');
			}
			if (have_cl && cl != h->content_length)
				return fail(h, -ERR_PARSE, 400);
			have_cl = true;
			h->content_length = cl;
		} else if (ieq(p, nl, "transfer-encoding")) {
			if (have_te || !ieq(v, vl, "chunked"))
				te_chunked = false;
			else
				te_chunked = true;
			have_te = true;
		} else if (ieq(p, nl, "connection")) {
			h->flags |= connection_flags(v, vl);
		} else if (request && ieq(p, nl, "expect")) {
			if (ieq(v, vl, "100-continue"))
				h->flags |= HTTP_HEAD_EXPECT_CONTINUE;
			else if (vl > 0)
				h->flags |= HTTP_HEAD_EXPECT_OTHER;
		} else if (request && ieq(p, nl, "host")) {
			hosts++;
			h->flags |= HTTP_HEAD_HOST;
		}
		p = (char *)next;
	}
	/* Go ignores Transfer-Encoding on HTTP/1.0 messages; so do we. */
	if (have_te && h->version_minor >= 1) {
		if (!te_chunked)
			return fail(h, -ERR_UNSUPPORTED, 501);
		/* Both framings at once is how requests are smuggled. */
		if (have_cl)
			return fail(h, -ERR_PARSE, 400);
		h->flags |= HTTP_HEAD_CHUNKED;
	}
	if (request && hosts > 1)
		return fail(h, -ERR_PARSE, 400);
	if (request && h->version_minor >= 1 && hosts == 0)
		return fail(h, -ERR_PARSE, 400);
	return 0;
}

static void
head_reset(struct http_head *h, struct http_header *headers)
{
	memset(h, 0, sizeof(*h));
	h->headers = headers;
	h->content_length = -1;
	h->method = "";
	h->target = "";
	h->reason = "";
}

int
http_parse_request_head(char *buf, size_t len, size_t *scanned, size_t head_bytes_max,
	struct http_head *h, struct http_header *headers, size_t headers_max)
{
	size_t skip, hl, n, i;
	char *p, *end, *sp1, *sp2;
	const char *next;
	int rc;

	head_reset(h, headers);
	hl = find_head_end(buf, len, scanned, &skip);
	if (hl == 0) {
		if (len >= head_bytes_max)
			return fail(h, -ERR_LIMIT, 431);
		return -ERR_AGAIN;
	}
	if (hl > head_bytes_max)
		return fail(h, -ERR_LIMIT, 431);
	p = buf + skip;
	end = buf + hl;
	n = line_len(p, end, &next);
	sp1 = memchr(p, ' ', n);
	if (sp1 == NULL || sp1 == p)
		return fail(h, -ERR_PARSE, 400);
	for (char *q = p; q < sp1; q++)
		if (!tchar[(unsigned char)*q])
			return fail(h, -ERR_PARSE, 400);
	sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - p));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return fail(h, -ERR_PARSE, 400);
	for (char *q = sp1 + 1; q < sp2; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return fail(h, -ERR_PARSE, 400);
	rc = parse_version(sp2 + 1, n - (size_t)(sp2 + 1 - p), &h->version_minor);
	if (rc < 0)
		return fail(h, rc, rc == -ERR_UNSUPPORTED ? 505 : 400);
	h->method = p;
	h->method_len = (size_t)(sp1 - p);
	h->method_id = method_id(p, h->method_len);
	h->target = sp1 + 1;
	h->target_len = (size_t)(sp2 - sp1 - 1);
	/* Only origin-form, absolute-form and OPTIONS * are served. */
	if (h->target[0] != '/' && !(h->target_len == 1 && h->target[0] == '*' &&
	    h->method_id == HTTP_OPTIONS)) {
		for (i = 0; i < h->target_len && h->target[i] != ':' && h->target[i] != '/'; i++)
			;
		if (i + 2 >= h->target_len || h->target[i] != ':' || h->target[i + 1] != '/' ||
		    h->target[i + 2] != '/')
			return fail(h, -ERR_PARSE, 400);
	}
	rc = parse_fields((char *)next, end, true, h, headers, headers_max);
	if (rc < 0)
		return rc;
	*sp1 = '\0';
	*sp2 = '\0';
	return (int)hl;
}

int
http_parse_response_head(char *buf, size_t len, size_t *scanned, size_t head_bytes_max,
	struct http_head *h, struct http_header *headers, size_t headers_max)
{
	size_t skip, hl, n;
	char *p, *end;
	const char *next;
	int rc;

	head_reset(h, headers);
	hl = find_head_end(buf, len, scanned, &skip);
	if (hl == 0) {
		if (len >= head_bytes_max)
			return fail(h, -ERR_LIMIT, 431);
		return -ERR_AGAIN;
	}
	if (hl > head_bytes_max)
		return fail(h, -ERR_LIMIT, 431);
	p = buf + skip;
	end = buf + hl;
	n = line_len(p, end, &next);
	/* "HTTP/1.1 200" then optionally " reason". */
	if (n < 12 || p[8] != ' ')
		return fail(h, -ERR_PARSE, 400);
	rc = parse_version(p, 8, &h->version_minor);
	if (rc < 0)
		return fail(h, -ERR_PARSE, 400);
	for (int i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return fail(h, -ERR_PARSE, 400);
	h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (h->status < 100)
		return fail(h, -ERR_PARSE, 400);
	if (n > 12 && p[12] != ' ')
		return fail(h, -ERR_PARSE, 400);
	for (size_t i = 13; i < n; i++)
		if (!is_vchar((unsigned char)p[i]))
			return fail(h, -ERR_PARSE, 400);
	rc = parse_fields((char *)next, end, false, h, headers, headers_max);
	if (rc < 0)
		return rc;
	if (n > 13) {
		h->reason = p + 13;
		h->reason_len = n - 13;
		p[n] = '\0';
	}
	return (int)hl;
}

bool
http_head_keep_alive(const struct http_head *h)
{
	if (h->flags & HTTP_HEAD_CONN_CLOSE)
		return false;
	if (h->version_minor == 0)
		return (h->flags & HTTP_HEAD_CONN_KEEPALIVE) != 0;
	return true;
}

/* ------------------------------------------------------------------ */
/* Chunked bodies                                                      */
/* ------------------------------------------------------------------ */

enum {
	CK_SIZE,        /* hex digits */
	CK_SIZE_WS,     /* whitespace after the digits */
	CK_EXT,         /* ;extension until end of line */
	CK_SIZE_LF,     /* CR seen, LF expected */
	CK_DATA,
	CK_DATA_CR,     /* CRLF after the data */
	CK_DATA_LF,
	CK_TR_START,    /* start of a trailer line or the final blank line */
	CK_TR_NAME,
	CK_TR_VALUE,
	CK_TR_LF,       /* CR inside a trailer line: LF expected */
	CK_END_LF,      /* CR of the final blank line: LF expected */
	CK_DONE,
};

void
http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

/* The size line is complete: start the data or the trailers. */
static int
size_done(struct http_chunked *c, uint64_t body_bytes_max)
{
	if (c->left == 0) {
		c->state = CK_TR_START;
		return 0;
	}
	if (c->left > body_bytes_max || c->total > body_bytes_max - c->left)
		return -ERR_LIMIT;
	c->state = CK_DATA;
	return 0;
}

int
http_chunked_decode(struct http_chunked *c, char *buf, size_t *in, size_t len, size_t *out,
	uint64_t body_bytes_max, size_t trailer_bytes_max)
{
	size_t i = *in, o = *out;
	int rc = 0;

	while (i < len && c->state != CK_DONE) {
		unsigned char ch = (unsigned char)buf[i];

		if (c->state == CK_DATA) {
			size_t n = len - i;

			if (n > c->left)
				n = (size_t)c->left;
			if (o != i)
				memmove(buf + o, buf + i, n);
			o += n;
			i += n;
			c->left -= n;
			c->total += n;
			if (c->left == 0)
				c->state = CK_DATA_CR;
			continue;
		}
		i++;
		switch (c->state) {
		case CK_SIZE: {
			int v = hexval(ch);

			if (v >= 0) {
				if (c->left > (UINT64_MAX >> 4)) {
					rc = -ERR_PARSE;
					goto out;
				}
				c->left = c->left * 16 + (uint64_t)v;
				c->digits++;
				break;
			}
			if (c->digits == 0) {
				rc = -ERR_PARSE;
				goto out;
			}
			if (ch == ' ' || ch == '\t')
				c->state = CK_SIZE_WS;
			else if (ch == ';')
				c->state = CK_EXT;
			else if (ch == '\r')
				c->state = CK_SIZE_LF;
			else if (ch == '\n') {
				if ((rc = size_done(c, body_bytes_max)) < 0)
					goto out;
			} else {
				rc = -ERR_PARSE;
				goto out;
			}
			break;
		}
		case CK_SIZE_WS:
			if (ch == ' ' || ch == '\t')
				;
			else if (ch == ';')
				c->state = CK_EXT;
			else if (ch == '\r')
				c->state = CK_SIZE_LF;
			else if (ch == '\n') {
				if ((rc = size_done(c, body_bytes_max)) < 0)
					goto out;
			} else {
				rc = -ERR_PARSE;
				goto out;
			}
			break;
		case CK_EXT:
			if (ch == '\r')
				c->state = CK_SIZE_LF;
			else if (ch == '\n') {
				if ((rc = size_done(c, body_bytes_max)) < 0)
					goto out;
			} else if (!is_vchar(ch)) {
				rc = -ERR_PARSE;
				goto out;
			}
			break;
		case CK_SIZE_LF:
			if (ch != '\n') {
				rc = -ERR_PARSE;
				goto out;
			}
			if ((rc = size_done(c, body_bytes_max)) < 0)
				goto out;
			break;
		case CK_DATA_CR:
			if (ch == '\r')
				c->state = CK_DATA_LF;
			else if (ch == '\n')
				goto next_chunk;
			else {
				rc = -ERR_PARSE;
				goto out;
			}
			break;
		case CK_DATA_LF:
			if (ch != '\n') {
				rc = -ERR_PARSE;
				goto out;
			}
next_chunk:
			c->state = CK_SIZE;
			c->left = 0;
			c->line_len = 0;
			c->digits = 0;
			continue;
		case CK_TR_START:
			if (ch == '\r')
				c->state = CK_END_LF;
			else if (ch == '\n')
				c->state = CK_DONE;
			else if (tchar[ch])
				c->state = CK_TR_NAME;
			else {
				rc = -ERR_PARSE;
				goto out;
			}
			break;
		case CK_TR_NAME:
			if (ch == ':')
				c->state = CK_TR_VALUE;
			else if (!tchar[ch]) {
				rc = -ERR_PARSE;
				goto out;
			}
			break;
		case CK_TR_VALUE:
			if (ch == '\r')
				c->state = CK_TR_LF;
			else if (ch == '\n')
				c->state = CK_TR_START;
			else if (!is_vchar(ch)) {
				rc = -ERR_PARSE;
				goto out;
			}
			break;
		case CK_TR_LF:
			if (ch != '\n') {
				rc = -ERR_PARSE;
				goto out;
			}
			c->state = CK_TR_START;
			break;
		case CK_END_LF:
			if (ch != '\n') {
				rc = -ERR_PARSE;
				goto out;
			}
			c->state = CK_DONE;
			break;
		}
		/* Bound the size line (with extensions) and the trailers. */
		if (c->state == CK_SIZE || c->state == CK_SIZE_WS || c->state == CK_EXT ||
		    c->state == CK_SIZE_LF) {
			if (++c->line_len > HTTP_CHUNK_LINE_MAX) {
				rc = -ERR_LIMIT;
				goto out;
			}
		} else if (c->state >= CK_TR_NAME && c->state <= CK_END_LF) {
			if (++c->trailer_len > trailer_bytes_max) {
				rc = -ERR_LIMIT;
				goto out;
			}
		}
	}
	if (c->state == CK_DONE)
		rc = 1;
out:
	*in = i;
	*out = o;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Percent and form decoding                                           */
/* ------------------------------------------------------------------ */

ssize_t
http_pct_decode(char *dst, const char *src, size_t len, bool plus_space, size_t *bad)
{
	size_t i = 0, o = 0;

	while (i < len) {
		unsigned char ch = (unsigned char)src[i];

		if (ch == '%') {
			int hi, lo;

			if (len - i < 3 || (hi = hexval((unsigned char)src[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)src[i + 2])) < 0) {
				if (bad != NULL)
					*bad = i;
				return -ERR_PARSE;
			}
			dst[o++] = (char)(hi * 16 + lo);
			i += 3;
		} else if (ch == '+' && plus_space) {
			dst[o++] = ' ';
			i++;
		} else {
			dst[o++] = (char)ch;
			i++;
		}
	}
	return (ssize_t)o;
}

/* Go's strconv.Quote of the (at most three) bytes of a bad escape. */
static void
go_quote(char *out, size_t outlen, const char *s, size_t n)
{
	char tmp[HTTP_PARAM_ERR_MAX];
	size_t o = 0, i = 0;

	tmp[o++] = '"';
	while (i < n && o + 6 < sizeof(tmp)) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			tmp[o++] = '\\';
			tmp[o++] = (char)c;
			i++;
		} else if (c >= 0x20 && c < 0x7f) {
			tmp[o++] = (char)c;
			i++;
		} else if (c >= 0xc2 && c <= 0xdf && i + 1 < n &&
			   ((unsigned char)s[i + 1] & 0xc0) == 0x80) {
			/* A whole two-byte UTF-8 rune prints as itself. */
			tmp[o++] = (char)c;
			tmp[o++] = s[i + 1];
			i += 2;
		} else {
			static const char esc[] = "\a\b\f\n\r\t\v";
			static const char let[] = "abfnrtv";
			const char *e = c != 0 ? strchr(esc, c) : NULL;

			if (e != NULL) {
				tmp[o++] = '\\';
				tmp[o++] = let[e - esc];
			} else {
				o += (size_t)snprintf(tmp + o, sizeof(tmp) - o, "\\x%02x", c);
			}
			i++;
		}
	}
	tmp[o++] = '"';
	tmp[o] = '\0';
	snprintf(out, outlen, "invalid URL escape %s", tmp);
}

size_t
http_params_count(const char *s, size_t len)
{
	size_t n = 1;

	for (size_t i = 0; i < len; i++)
		if (s[i] == '&' || s[i] == ';')
			n++;
	return n;
}

int
http_params_parse(const char *s, size_t len, uint8_t src, struct buf *store,
	struct http_param *params, size_t params_max, size_t *n, char *err)
{
	size_t i = 0, n0 = *n, len0 = store->len;

	if (err != NULL)
		err[0] = '\0';
	if (store->cap - store->len < HTTP_PARAMS_STORE(len))
		return -ERR_LIMIT;
	while (i < len) {
		size_t s0 = i, e, eq;
		char *kd, *vd;
		ssize_t kl, vl;
		size_t bad;

		while (i < len && s[i] != '&' && s[i] != ';')
			i++;
		e = i;
		if (i < len)
			i++;
		if (e == s0)
			continue;
		for (eq = s0; eq < e && s[eq] != '='; eq++)
			;
		kd = store->data + store->len;
		kl = http_pct_decode(kd, s + s0, eq - s0, true, &bad);
		if (kl < 0) {
			if (err != NULL && err[0] == '\0') {
				size_t l = eq - s0 - bad;
				go_quote(err, HTTP_PARAM_ERR_MAX, s + s0 + bad, l > 3 ? 3 : l);
			}
			continue;
		}
		vd = kd + kl + 1;
		vl = 0;
		if (eq < e) {
			vl = http_pct_decode(vd, s + eq + 1, e - eq - 1, true, &bad);
			if (vl < 0) {
				if (err != NULL && err[0] == '\0') {
					size_t l = e - eq - 1 - bad;
					go_quote(err, HTTP_PARAM_ERR_MAX, s + eq + 1 + bad, l > 3 ? 3 : l);
				}
				continue;
			}
		}
		if (*n >= params_max) {
			*n = n0;
			store->len = len0;
			return -ERR_LIMIT;
		}
		kd[kl] = '\0';
		vd[vl] = '\0';
		store->len += (size_t)kl + 1 + (size_t)vl + 1;
		params[*n].name = kd;
		params[*n].name_len = (size_t)kl;
		params[*n].value = vd;
		params[*n].value_len = (size_t)vl;
		params[*n].src = src;
		params[*n].has_value = eq < e;
		(*n)++;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* URLs                                                                */
/* ------------------------------------------------------------------ */

int
http_url_parse(const char *url, struct http_url *u)
{
	const char *p, *h, *he;
	size_t hl;

	memset(u, 0, sizeof(*u));
	if (strncasecmp(url, "http://", 7) == 0) {
		p = url + 7;
	} else if (strncasecmp(url, "https://", 8) == 0) {
		p = url + 8;
		u->tls = true;
	} else {
		return -ERR_PARSE;
	}
	if (*p == '[') {
		h = p + 1;
		he = strchr(h, ']');
		if (he == NULL)
			return -ERR_PARSE;
		p = he + 1;
		u->ipv6 = true;
		for (const char *q = h; q < he; q++)
			if (hexval((unsigned char)*q) < 0 && *q != ':' && *q != '.' && *q != '%')
				return -ERR_PARSE;
	} else {
		h = p;
		while (*p != '\0' && *p != ':' && *p != '/' && *p != '?' && *p != '#')
			p++;
		he = p;
		for (const char *q = h; q < he; q++)
			if ((unsigned char)*q <= 0x20 || *q == 0x7f || *q == '@' || *q == '[' ||
			    *q == ']' || *q == '\\')
				return -ERR_PARSE;
	}
	hl = (size_t)(he - h);
	if (hl == 0 || hl >= sizeof(u->host))
		return -ERR_PARSE;
	memcpy(u->host, h, hl);
	u->host[hl] = '\0';
	u->port = u->tls ? 443 : 80;
	if (*p == ':') {
		unsigned long port = 0;
		int digits = 0;

		p++;
		while (*p >= '0' && *p <= '9') {
			port = port * 10 + (unsigned long)(*p - '0');
			if (port > 65535)
				return -ERR_PARSE;
			p++;
			digits++;
		}
		if (digits == 0)
			return -ERR_PARSE;
		u->port = (uint16_t)port;
		u->port_given = true;
	}
	if (*p != '\0' && *p != '/' && *p != '?' && *p != '#')
		return -ERR_PARSE;
	for (const char *q = p; *q != '\0'; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return -ERR_PARSE;
	u->path = p;
	return 0;
}
