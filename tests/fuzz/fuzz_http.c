/*
 * Fuzz harness for core/http_parser. The first byte picks what the rest is
 * fed to: a request stream (heads, Content-Length and chunked bodies,
 * pipelined, as the server reads them), a response stream (as the client
 * reads them), the query/form decoder, or the URL parser. Each stream is
 * also fed again in small random-sized pieces taken from the flag byte, so
 * incremental parsing is exercised at odd split points. It must never
 * crash, leak or read out of bounds whatever the input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/http.h"
#include "corebox/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADERS_MAX 32
#define HEAD_MAX 4096
#define BODY_MAX 8192

/*
 * Feeds data in pieces of `step` bytes (0: all at once) to a miniature
 * connection reader, like the server's (request) or client's (response).
 */
static void
stream(const uint8_t *data, size_t size, bool response, size_t step)
{
	char *buf = mem_alloc(size + 1);
	struct http_header hd[HEADERS_MAX];
	struct http_chunked ck;
	size_t len = 0, pos = 0, scanned = 0, bin = 0, bout = 0;
	int state = 0; /* 0 head, 1 length body, 2 chunked, 3 until close */
	uint64_t left = 0;

	if (buf == NULL)
		return;
	while (len < size) {
		size_t n = step == 0 ? size - len : step;

		if (n > size - len)
			n = size - len;
		memcpy(buf + len, data + len, n);
		len += n;
		for (;;) {
			if (state == 0) {
				struct http_head h;
				int hl = response ?
					http_parse_response_head(buf + pos, len - pos, &scanned, HEAD_MAX, &h, hd,
						HEADERS_MAX) :
					http_parse_request_head(buf + pos, len - pos, &scanned, HEAD_MAX, &h, hd,
						HEADERS_MAX);

				if (hl == -ERR_AGAIN)
					break;
				if (hl < 0)
					goto out;
				/* Everything the parser hands out must be within the head. */
				for (size_t i = 0; i < h.nheaders; i++) {
					if (hd[i].name < buf + pos || hd[i].value + hd[i].value_len > buf + pos + hl ||
					    strlen(hd[i].name) != hd[i].name_len ||
					    strlen(hd[i].value) != hd[i].value_len)
						abort();
					if (http_header_find(hd, h.nheaders, hd[i].name) == NULL)
						abort();
				}
				(void)http_head_keep_alive(&h);
				if (!response && h.method_len != strlen(h.method))
					abort();
				pos += (size_t)hl;
				scanned = 0;
				bin = bout = 0;
				if (h.flags & HTTP_HEAD_CHUNKED) {
					http_chunked_init(&ck);
					state = 2;
				} else if (h.content_length >= 0) {
					if (h.content_length > BODY_MAX)
						goto out;
					left = (uint64_t)h.content_length;
					state = 1;
				} else {
					state = response ? 3 : 1;
					left = 0;
				}
			}
			if (state == 1) {
				if (len - pos < left)
					break;
				pos += left;
				state = 0;
				continue;
			}
			if (state == 2) {
				size_t in = pos + bin, out = pos + bout;
				int rc = http_chunked_decode(&ck, buf, &in, len, &out, BODY_MAX, HEAD_MAX);

				if (out > in || in > len)
					abort();
				bin = in - pos;
				bout = out - pos;
				if (rc < 0)
					goto out;
				if (rc == 0)
					break;
				pos = in;
				state = 0;
				continue;
			}
			if (state == 3) {
				pos = len;
				break;
			}
			break;
		}
	}
out:
	mem_free(buf);
}

static void
params(const uint8_t *data, size_t size)
{
	struct buf store = BUF_INIT;
	struct http_param *p;
	size_t n = 0, np = http_params_count((const char *)data, size);
	char err[HTTP_PARAM_ERR_MAX];
	char *dec;

	p = mem_calloc(np, sizeof(*p));
	if (p == NULL || buf_reserve(&store, HTTP_PARAMS_STORE(size)) < 0)
		goto out;
	if (http_params_parse((const char *)data, size, HTTP_SRC_QUERY, &store, p, np, &n, err) != 0)
		abort();
	if (strlen(err) >= HTTP_PARAM_ERR_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if (p[i].name[p[i].name_len] != '\0' || p[i].value[p[i].value_len] != '\0' ||
		    p[i].name < store.data || p[i].value + p[i].value_len >= store.data + store.cap)
			abort();
	dec = mem_alloc(size + 1);
	if (dec != NULL) {
		ssize_t dl = http_pct_decode(dec, (const char *)data, size, true, NULL);

		if (dl > (ssize_t)size)
			abort();
		mem_free(dec);
	}
out:
	mem_free(p);
	buf_free(&store);
}

static void
url(const uint8_t *data, size_t size)
{
	char *s = mem_strndup((const char *)data, size);
	struct http_url u;

	if (s == NULL)
		return;
	if (http_url_parse(s, &u) == 0 && (strlen(u.host) == 0 || u.path < s || u.path > s + strlen(s)))
		abort();
	mem_free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t flag;

	if (size < 1)
		return 0;
	flag = data[0];
	data++;
	size--;
	switch (flag & 3) {
	case 0:
	case 1:
		stream(data, size, flag & 1, 0);
		stream(data, size, flag & 1, 1 + (flag >> 2));
		break;
	case 2:
		params(data, size);
		break;
	case 3:
		url(data, size);
		break;
	}
	return 0;
}
