/*
 * http: HTTP/1.1 server and client on the shared loop, and the pure
 * incremental parser they share.
 *
 * Three layers, each usable alone:
 *   1. Pure parsing (http_parser.c): request and response heads, chunked
 *      bodies, URLs, percent and form decoding. No I/O, no allocation except
 *      where a function says so; fuzzed by tests/fuzz/fuzz_http.c.
 *   2. Server (http_server.c): listeners from URLs, keep-alive, pipelining
 *      with responses strictly in request order, held (long-poll) requests
 *      with a cancel callback, limits on everything a peer controls.
 *   3. Client (http_client.c): asynchronous calls with a keep-alive pool per
 *      host:port, streaming bodies, timeouts, cancellation; and http_fetch, a
 *      blocking wrapper for the CLIs.
 *
 * Errors are 0 or -ERR_xxx (corebox/err.h). Long-lived objects (server,
 * client) keep an errmsg buffer describing the last failure.
 *
 * Every connection does its I/O through a struct http_transport: plain TCP,
 * or TLS (corebox/tls.h) for https:// listeners (http_server_set_tls) and
 * https:// URLs in the client (http_client_opts.tls, http_sync_set_tls).
 * Handlers never see the difference. The plain path costs nothing extra:
 * the TLS-only hooks are NULL checks.
 */
#ifndef COREBOX_HTTP_H
#define COREBOX_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "corebox/buf.h"

struct loop;
struct tls_config;

/* ------------------------------------------------------------------ */
/* Shared types                                                        */
/* ------------------------------------------------------------------ */

/*
 * One header field. name and value are NUL-terminated (values never contain
 * NUL: the parser rejects control characters) and the lengths exclude the
 * NUL. The value has its leading and trailing whitespace removed. Who owns
 * the bytes is said where a header array is handed out.
 */
struct http_header {
	const char *name;
	const char *value;
	size_t name_len;
	size_t value_len;
};

/* Case-insensitive lookup of the first header called name; NULL if absent. */
const struct http_header *http_header_find(const struct http_header *h, size_t n, const char *name);

enum http_method {
	HTTP_OTHER = 0, /* any other token: look at the method string */
	HTTP_GET,
	HTTP_HEAD,
	HTTP_POST,
	HTTP_PUT,
	HTTP_DELETE,
	HTTP_OPTIONS,
	HTTP_PATCH,
};

/* The standard reason phrase for a status ("Not Found"), or "" if unknown. */
const char *http_reason(int status);

/*
 * Formats t (seconds since the epoch) as an HTTP date the way Go does:
 * "Sun, 22 Nov 2026 03:40:01 GMT" (29 characters). out must hold 30 bytes.
 * Returns the length.
 */
size_t http_date(char out[30], int64_t t);

/*
 * The text Go prints for a socket errno ("connection refused", "address
 * already in use"), the same with glibc and musl, so messages such as
 * "dial tcp 127.0.0.1:2379: connect: connection refused" match the original.
 * Static string.
 */
const char *http_errno_str(int e);

/* ------------------------------------------------------------------ */
/* Pure parser                                                         */
/* ------------------------------------------------------------------ */

/* Framing facts the head parser derives from the header fields. */
enum {
	HTTP_HEAD_CHUNKED = 1 << 0,         /* Transfer-Encoding: chunked */
	HTTP_HEAD_CONN_CLOSE = 1 << 1,      /* Connection: close */
	HTTP_HEAD_CONN_KEEPALIVE = 1 << 2,  /* Connection: keep-alive */
	HTTP_HEAD_EXPECT_CONTINUE = 1 << 3, /* Expect: 100-continue */
	HTTP_HEAD_EXPECT_OTHER = 1 << 4,    /* any other Expect value (417) */
	HTTP_HEAD_HOST = 1 << 5,            /* a Host field was present */
	HTTP_HEAD_CONN_UPGRADE = 1 << 6,    /* Connection: upgrade */
};

/*
 * A parsed request or response head. Every pointer points into the buffer
 * given to the parse function, which the caller owns; the parser
 * NUL-terminates method, target, reason and each header name and value in
 * place (overwriting the byte after each), so the buffer must be writable
 * and the head must not be parsed twice.
 */
struct http_head {
	/* Request line (requests only). */
	const char *method;
	size_t method_len;
	enum http_method method_id;
	const char *target; /* request-target as received */
	size_t target_len;
	/* Status line (responses only). */
	int status;
	const char *reason; /* may be "" */
	size_t reason_len;
	int version_minor; /* 0 or 1: HTTP/1.0 or HTTP/1.1 (1.2..1.9 read as 1) */
	struct http_header *headers; /* the array given by the caller */
	size_t nheaders;
	int64_t content_length; /* -1 when absent */
	unsigned flags;         /* HTTP_HEAD_xxx */
	/* On failure: the status a server should answer (400, 431, 501, 505). */
	int err_status;
};

/*
 * Parses a request head from buf[0 .. len). *scanned carries how far a
 * previous call on the same (grown) buffer looked for the end of the head,
 * so a head arriving byte by byte is scanned once; start it at 0.
 * headers/headers_max is the caller's array for the fields.
 *
 * Returns the length of the head (> 0, including the blank line) when it is
 * complete; -ERR_AGAIN when more bytes are needed; -ERR_LIMIT when the head
 * is longer than head_bytes_max or has more than headers_max fields (431);
 * -ERR_PARSE when malformed (400: bad request line, obs-fold continuation
 * lines, space before a colon, control characters, bad or conflicting
 * Content-Length, both Content-Length and Transfer-Encoding, missing Host on
 * HTTP/1.1); -ERR_UNSUPPORTED for an HTTP major version other than 1 (505)
 * or a transfer coding other than chunked (501). h->err_status holds the
 * status to answer on failure. Lines may end in CRLF or a bare LF.
 */
int http_parse_request_head(char *buf, size_t len, size_t *scanned, size_t head_bytes_max,
	struct http_head *h, struct http_header *headers, size_t headers_max);
/* The same for a response head ("HTTP/1.1 200 OK"). Missing Host is fine. */
int http_parse_response_head(char *buf, size_t len, size_t *scanned, size_t head_bytes_max,
	struct http_head *h, struct http_header *headers, size_t headers_max);

/* Whether the connection stays open after this exchange (version and Connection). */
bool http_head_keep_alive(const struct http_head *h);

/*
 * Incremental, in-place decoder of a chunked body. Zero-initialise it (or
 * call http_chunked_init) before the first byte of the body.
 */
struct http_chunked {
	int state;
	uint64_t left;       /* bytes left in the current chunk */
	uint64_t total;      /* payload bytes decoded so far */
	size_t line_len;     /* length of the current size line */
	unsigned digits;     /* hex digits seen in the current size line */
	size_t trailer_len;  /* bytes of trailer fields so far */
};
void http_chunked_init(struct http_chunked *c);
/*
 * Decodes buf[*in .. len): payload bytes are moved down to buf[*out ..]
 * (*out <= *in always, so decoding in place is safe); both offsets advance.
 * Chunk extensions are ignored; trailer fields are checked and dropped.
 * Returns 1 when the last chunk and the trailers are complete (*in is then
 * just after the body), 0 when more bytes are needed, -ERR_PARSE on a bad
 * chunk size or framing, -ERR_LIMIT when the payload would exceed
 * body_bytes_max or a size/trailer line exceeds HTTP_CHUNK_LINE_MAX /
 * trailer_bytes_max.
 */
#define HTTP_CHUNK_LINE_MAX 4096
int http_chunked_decode(struct http_chunked *c, char *buf, size_t *in, size_t len, size_t *out,
	uint64_t body_bytes_max, size_t trailer_bytes_max);

/*
 * Percent-decodes src[0 .. len) into dst (which may equal src; decoding
 * never grows). With plus_space, '+' becomes ' ' (query and form encoding).
 * dst is not NUL-terminated. Returns the decoded length, or -ERR_PARSE on an
 * invalid escape ('%' not followed by two hex digits); then, if bad is not
 * NULL, *bad is the offset of the offending '%' in src.
 */
ssize_t http_pct_decode(char *dst, const char *src, size_t len, bool plus_space, size_t *bad);

/*
 * One decoded query or form parameter. name and value are NUL-terminated
 * (they may also contain NUL bytes from %00: use the lengths). has_value
 * distinguishes "?recursive" (false, value "") from "?recursive=" (true,
 * value "").
 */
enum http_param_src {
	HTTP_SRC_QUERY = 1,
	HTTP_SRC_BODY = 2, /* application/x-www-form-urlencoded body */
	HTTP_SRC_FORM = 3, /* both, body first: Go's Request.Form */
};
struct http_param {
	const char *name;
	const char *value;
	size_t name_len;
	size_t value_len;
	uint8_t src;       /* HTTP_SRC_QUERY or HTTP_SRC_BODY */
	bool has_value;    /* an '=' was present */
};

/*
 * Decodes "a=1&b&c=x+y" (the part after '?', or a form body) the way
 * etcd 2.3's Go did: pairs separated by '&' or ';', empty pairs skipped,
 * '+' is a space, repeated names kept in order. A pair with an invalid
 * escape is skipped and the first such error is reported in err (if not
 * NULL; err must hold HTTP_PARAM_ERR_MAX bytes) as Go words it:
 * `invalid URL escape "%zz"`; err is "" when there was none.
 *
 * Decoded text goes to *store (appended; never reallocated by this call:
 * the caller reserves HTTP_PARAMS_STORE(len) bytes first), parameters are
 * appended to params (capacity params_max; count at least
 * http_params_count(s, len)). *n is advanced. src tags the parameters.
 * Returns 0, or -ERR_LIMIT when params_max or the store would be exceeded
 * (nothing is then half-written).
 */
#define HTTP_PARAM_ERR_MAX 64
#define HTTP_PARAMS_STORE(len) (2 * (size_t)(len) + 2)
size_t http_params_count(const char *s, size_t len);
int http_params_parse(const char *s, size_t len, uint8_t src, struct buf *store,
	struct http_param *params, size_t params_max, size_t *n, char *err);

/*
 * A parsed http:// or https:// URL. host is copied (without brackets for
 * IPv6); path points into the string given to http_url_parse.
 */
struct http_url {
	bool tls;           /* https */
	bool ipv6;          /* host was written in [brackets] */
	char host[256];     /* "127.0.0.1", "::1", "localhost", "example.com" */
	uint16_t port;      /* explicit port, or 80 / 443 */
	bool port_given;
	const char *path;   /* from the url string: "/v2/keys?x=1", or "" */
};
/*
 * Parses scheme://host[:port][/path...]. url must stay valid while u->path
 * is used. Returns 0, -ERR_PARSE (malformed: the scheme must be http or
 * https, the port 0..65535, the host non-empty and at most 255 bytes).
 */
int http_url_parse(const char *url, struct http_url *u);

/* ------------------------------------------------------------------ */
/* Transport hook (plain TCP, TLS)                                     */
/* ------------------------------------------------------------------ */

/*
 * How a connection moves bytes. read/write return the byte count (read: 0
 * means the peer closed), or -ERR_AGAIN when they would block, setting
 * *want to LOOP_READ or LOOP_WRITE to say which readiness to wait for (TLS
 * may need to write while reading); -ERR_CLOSED / -ERR_IO / -ERR_TLS /
 * -ERR_TIMEOUT on failure. After -ERR_AGAIN, write is called again with the
 * same bytes first (an output buffer consumed only by what write returned).
 * close releases ctx and closes fd.
 *
 * Optional hooks (NULL for plain TCP):
 *   open: builds ctx for a new fd (server: accepted, host NULL; client:
 *     connected, host is the URL's host, to verify the peer against). l is
 *     the loop the connection runs on. targ is the listener's or client's.
 *   pending: bytes are buffered inside the transport, so a read would return
 *     data although the fd is not readable; the owner must read again
 *     without waiting for the fd.
 *   errmsg: why the transport failed, worded like Go ("x509: certificate
 *     signed by unknown authority"), "" if it did not.
 */
struct http_transport {
	const char *name;
	int (*open)(void *targ, struct loop *l, int fd, const char *host, void **ctx);
	ssize_t (*read)(void *ctx, int fd, void *p, size_t n, int *want);
	ssize_t (*write)(void *ctx, int fd, const void *p, size_t n, int *want);
	void (*close)(void *ctx, int fd);
	bool (*pending)(void *ctx);
	const char *(*errmsg)(void *ctx);
};
/* Plain TCP (read/write/close on the fd). */
extern const struct http_transport http_transport_plain;

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/*
 * Limits on what a peer controls. http_limits_default() fills the defaults
 * given here; a zero field in a struct given to http_server_new means the
 * default too.
 */
struct http_limits {
	size_t header_bytes_max; /* request line + fields: 1 MiB (Go's DefaultMaxHeaderBytes) -> 431 */
	size_t headers_max;      /* header fields per request: 256 -> 431 */
	size_t body_bytes_max;   /* request body: 1.5 MiB (etcd's request limit) -> 413 */
	size_t conns_max;        /* open connections: 4096 -> 503 and close */
	size_t pipeline_max;     /* requests in flight per connection: 64 (then stop reading) */
	uint64_t header_read_ms; /* first byte of a request to the end of its body: 30000 -> 408 */
	uint64_t idle_ms;        /* keep-alive connection with nothing in flight: 300000 (Go ReadTimeout in etcd) */
	size_t out_bytes_max;    /* unsent output per connection: 64 MiB, then the reader is cut off */
	size_t read_bytes_max;   /* bytes read per readable event: 64 KiB */
	size_t write_bytes_max;  /* bytes written per writable event: 1 MiB */
	size_t accept_max;       /* connections accepted per listener event: 64 */
};
void http_limits_default(struct http_limits *lim);

struct http_server;

/*
 * A request handed to the handler. Every field is read-only for the owner.
 * All strings are NUL-terminated and owned by the server; they stay valid
 * (at the same addresses) until the request ends: when a finishing call
 * returns (http_resp_body, http_resp_finish, http_resp_end,
 * http_resp_simple, http_req_abort) or when on_close returns.
 */
struct http_req {
	enum http_method method_id;
	const char *method;     /* "GET", or any token */
	int version_minor;      /* 0: HTTP/1.0, 1: HTTP/1.1 */
	const char *path_raw;   /* as received, still percent-encoded: "/v2/keys/a%2Fb"
	                         * (absolute-form targets: their path part) */
	size_t path_raw_len;
	const char *path;       /* percent-decoded ('+' stays '+'): "/v2/keys/a/b" */
	size_t path_len;        /* may contain NUL bytes from %00 */
	const char *query_raw;  /* after '?', undecoded; "" when absent */
	size_t query_raw_len;
	bool has_query;         /* a '?' was present */
	const struct http_header *headers;
	size_t nheaders;
	const char *body;       /* decoded (de-chunked) body, NUL-terminated; "" when none */
	size_t body_len;
	/* Form-body parameters (if the body is form-urlencoded and the method
	 * POST, PUT or PATCH), then query parameters; see http_req_param. */
	const struct http_param *params;
	size_t nparams;
	/* NULL, or Go's message for the first bad escape in query or form
	 * (`invalid URL escape "%zz"`); etcd answers it with error 209. */
	const char *form_error;
	uint64_t start_us;      /* time_mono_us() when the head was complete */
	struct sockaddr_storage peer;
	struct http_server *server;
};

/*
 * The handler gets each request once its body is complete, in arrival order.
 * It must do exactly one of:
 *   - answer before returning (http_resp_simple, or start + headers + a
 *     finishing call);
 *   - call http_req_hold() and answer later (long poll, write after commit,
 *     streaming watch); the later answer may come from any loop callback;
 *   - call http_req_abort().
 * A handler that returns having done none of these gets a 500 sent for it.
 * While requests are held the connection keeps reading: later pipelined
 * requests are handed over too and their answers are queued behind the held
 * one, so responses always go out in request order.
 */
typedef void http_handler_fn(struct http_req *req, void *arg);

/*
 * Called once when a held request's client goes away (EOF, reset, timeout,
 * slow reader cut off, server freed) before it was finished. Never called
 * from inside an http_* call made by the owner, nor from the handler; it
 * comes from the server's own loop callbacks (or from http_server_free).
 * After it returns the request pointer is dead: answering is impossible.
 */
typedef void http_req_close_fn(struct http_req *req, void *arg);

/* Per-response statistics: called when a response is complete (last byte queued). */
typedef void http_log_fn(void *arg, const struct http_req *req, int status,
	uint64_t latency_us, uint64_t body_bytes);

struct http_server_stats {
	uint64_t conns_open;
	uint64_t conns_accepted;
	uint64_t conns_rejected;  /* over conns_max (503) */
	uint64_t requests;        /* handed to the handler */
	uint64_t requests_held;   /* currently held */
	uint64_t responses;       /* completed, including the server's own errors */
	uint64_t errors_4xx;      /* answered by the server itself: 400/408/413/431... */
	uint64_t cut_slow;        /* connections cut off for out_bytes_max */
};

/*
 * Makes a server on l. lim may be NULL (defaults). The handler and arg are
 * called for every request. Returns NULL on allocation failure.
 */
struct http_server *http_server_new(struct loop *l, const struct http_limits *lim,
	http_handler_fn *handler, void *arg);
/*
 * Closes listeners and every connection; on_close fires for each held
 * request from inside this call. Safe with NULL. Must not be called from
 * inside the handler or on_close.
 */
void http_server_free(struct http_server *s);
/* The last error text ("listen http://127.0.0.1:2379: address in use"). */
const char *http_server_errmsg(const struct http_server *s);

/*
 * Listens on one URL: http://127.0.0.1:2379, http://[::1]:2379,
 * http://localhost:2379 (127.0.0.1 and, if the host has IPv6, ::1), or
 * http://0.0.0.0:port / http://[::]:port. Port 0 picks a free port; *port
 * (if not NULL) receives the bound port. Names other than localhost are
 * refused (etcd listens on IPs only). https:// URLs serve TLS with the
 * config given to http_server_set_tls (-ERR_UNSUPPORTED without one).
 * Returns 0 or -ERR_xxx with errmsg set.
 */
int http_listen_url(struct http_server *s, const char *url, int *port);
/*
 * The TLS config for https:// listeners added after this call (cfg must be a
 * server config: tls_config_new_server; -ERR_INVAL otherwise). The server
 * and each listener take their own reference, so the caller may free its
 * own at once. NULL forgets the config (listeners keep theirs). A client
 * that fails the handshake is closed and logged at info level; a handshake
 * that stalls is cut off after the config's handshake timeout. Returns 0 or
 * -ERR_INVAL.
 */
int http_server_set_tls(struct http_server *s, struct tls_config *cfg);
/* Adopts an already listening socket (made non-blocking here). */
int http_listen_fd(struct http_server *s, int fd);
/* Stops accepting (listeners closed); open connections continue. */
void http_server_stop_listening(struct http_server *s);

void http_server_set_log(struct http_server *s, http_log_fn *fn, void *arg);
void http_server_stats(const struct http_server *s, struct http_server_stats *out);

/* Request accessors. */

/* Case-insensitive header lookup; NULL if absent. Owned by the request. */
const char *http_req_header(const struct http_req *req, const char *name);
/*
 * First parameter called name from src (HTTP_SRC_QUERY, HTTP_SRC_BODY, or
 * HTTP_SRC_FORM = body then query, like Go's r.FormValue); NULL if absent.
 * Iterate repeated names with http_req_param_next(req, prev, src).
 */
const struct http_param *http_req_param(const struct http_req *req, int src, const char *name);
const struct http_param *http_req_param_next(const struct http_req *req,
	const struct http_param *prev, int src);
/* Value of the first such parameter (Go's FormValue), "" if present without a value, NULL if absent. */
const char *http_req_value(const struct http_req *req, int src, const char *name);
/* Number of parameters called name in src. */
size_t http_req_param_count(const struct http_req *req, int src, const char *name);

/*
 * Keeps the request past the handler's return (see http_handler_fn).
 * on_close must not be NULL. Call it from the handler only; it does nothing
 * on a request already answered.
 */
void http_req_hold(struct http_req *req, http_req_close_fn *on_close, void *arg);
/*
 * Gives up on the request: the connection is closed once the responses
 * before it are sent; on_close does not fire. The request is dead on return.
 */
void http_req_abort(struct http_req *req);
/* True when the connection is already gone (answers would be dropped). */
bool http_req_gone(const struct http_req *req);

/*
 * Responses. Bytes are written straight into the connection's output buffer
 * when the request is first in line, else into the request's own buffer
 * that is moved to the connection when its turn comes.
 *
 * http_resp_start writes the status line (reason NULL = the standard one)
 * and the Date header. http_resp_header adds a field (the caller sets
 * Content-Type; Content-Length, Transfer-Encoding, Date and Connection are
 * the server's). Then exactly one of:
 *   - http_resp_body(req, p, n): the whole body at once; finishes.
 *   - http_resp_body_buf(req): a buffer to append the body to (generate
 *     JSON in place), then http_resp_finish(req) computes Content-Length and
 *     finishes. Append only: never consume, reset or free that buffer, and
 *     do not keep the pointer after http_resp_finish.
 *   - http_resp_chunked(req): ends the head with Transfer-Encoding:
 *     chunked (HTTP/1.0: no chunking, the connection closes at the end);
 *     then http_resp_chunk() as often as needed (a zero-length chunk is
 *     skipped) and http_resp_end() to finish. Chunks are flushed at the end
 *     of each loop turn.
 * HEAD requests get the same headers (Content-Length of the body given) and
 * no body.
 *
 * Errors: -ERR_STATE (calls out of order; nothing written), -ERR_NOMEM,
 * -ERR_LIMIT (the connection's unsent output passed out_bytes_max: the
 * reader is cut off), -ERR_CLOSED (the client is gone), -ERR_INVAL (a
 * status outside 200..999, a field name that is not a token, a value with
 * CR or LF, or a field the server sets itself). A finishing call ends the
 * request whatever it returns, except -ERR_STATE. After a non-finishing call fails,
 * the owner either calls http_req_abort() or waits for on_close (held
 * requests); it must not keep writing.
 */
int http_resp_start(struct http_req *req, int status, const char *reason);
int http_resp_header(struct http_req *req, const char *name, const char *value);
int http_resp_headerf(struct http_req *req, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int http_resp_body(struct http_req *req, const void *p, size_t n);
/* NULL when called out of order (no http_resp_start before it). */
struct buf *http_resp_body_buf(struct http_req *req);
int http_resp_finish(struct http_req *req);
int http_resp_chunked(struct http_req *req);
int http_resp_chunk(struct http_req *req, const void *p, size_t n);
int http_resp_end(struct http_req *req);
/* start + Content-Type (if not NULL) + body: one call for simple answers. */
int http_resp_simple(struct http_req *req, int status, const char *content_type,
	const void *body, size_t n);
/* Whether the connection will close after this response (HTTP/1.0, Connection: close, ...). */
bool http_resp_will_close(const struct http_req *req);

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

struct http_client_opts {
	size_t header_bytes_max;    /* response head: 1 MiB */
	size_t headers_max;         /* 256 */
	size_t body_bytes_max;      /* buffered (non-streamed) response body: 256 MiB */
	size_t idle_per_host_max;   /* idle keep-alive connections kept per host:port: 8 */
	uint64_t idle_ms;           /* an idle pooled connection is closed after: 90000 */
	size_t read_bytes_max;      /* per readable event: 64 KiB */
	bool resolve_blocking;      /* allow getaddrinfo for names (CLIs only) */
	struct tls_config *tls;     /* client config for https:// URLs (NULL: https refused);
	                             * the client takes its own reference */
};
void http_client_opts_default(struct http_client_opts *o);

/*
 * A response as the client sees it. Headers and strings are owned by the
 * call; valid only during the callback they are passed to.
 */
struct http_response {
	int status;
	const char *reason;
	int version_minor;
	const struct http_header *headers;
	size_t nheaders;
	const char *body;   /* buffered body (NUL-terminated), "" when streamed or none */
	size_t body_len;
};
const char *http_response_header(const struct http_response *r, const char *name);

struct http_client;
struct http_call;

/* Head of the response has arrived (before any body byte). */
typedef void http_call_head_fn(struct http_call *call, const struct http_response *resp, void *arg);
/* Streamed body bytes (only with spec.stream); p is valid during the call. */
typedef void http_call_data_fn(struct http_call *call, const char *p, size_t n, void *arg);
/*
 * The call ended: err 0 and resp complete, or -ERR_TIMEOUT, -ERR_CONNECT,
 * -ERR_CLOSED (peer closed early), -ERR_PARSE (bad response), -ERR_LIMIT,
 * -ERR_TLS (handshake refused: http_call_errmsg says why), -ERR_NOMEM, with
 * resp NULL (or the head so far, if it had arrived, for a stream that
 * broke). After it returns the call pointer is dead.
 */
typedef void http_call_done_fn(struct http_call *call, int err, const struct http_response *resp, void *arg);

struct http_call_spec {
	const char *method;            /* "GET" */
	const char *url;               /* http://host:port/path?query */
	const struct http_header *headers; /* extra request fields; copied */
	size_t nheaders;
	const void *body;              /* copied at start; Content-Length is set */
	size_t body_len;
	bool has_body;                 /* send Content-Length even when body_len is 0 */
	uint64_t connect_timeout_ms;   /* 0: no limit */
	uint64_t timeout_ms;           /* whole call, 0: no limit (watch streams) */
	bool stream;                   /* body via on_data instead of buffered */
	http_call_head_fn *on_head;    /* may be NULL */
	http_call_data_fn *on_data;    /* required with stream */
	http_call_done_fn *on_done;    /* required */
	void *arg;
};

/*
 * Async path: hosts must be numeric (127.0.0.1, [::1]) or localhost (tries
 * 127.0.0.1 then ::1) unless opts.resolve_blocking. http:// URLs use
 * http_transport_plain, https:// URLs TLS with opts.tls, verifying the
 * server against the URL's host (or the config's server name); http and
 * https connections to the same host:port are pooled apart.
 * A pooled connection found closed by the server before any response byte
 * arrived is retried once on a new connection. Returns NULL on allocation
 * failure. Not to be freed from inside one of its callbacks.
 */
struct http_client *http_client_new(struct loop *l, const struct http_client_opts *o);
/* Cancels every call (their on_done does not fire) and closes pooled connections. */
void http_client_free(struct http_client *c);
/*
 * Replaces opts.tls for calls started afterwards (cfg must be a client
 * config; -ERR_INVAL otherwise; NULL refuses https again). Takes its own
 * reference. Idle pooled https connections are closed, as they were
 * verified under the old config; busy ones finish their call and close.
 */
int http_client_set_tls(struct http_client *c, struct tls_config *cfg);
const char *http_client_errmsg(const struct http_client *c);
/* Open connections (busy + idle), for tests and stats. */
size_t http_client_conns(const struct http_client *c);
/* Connections opened since creation (pool reuse shows as no increase). */
uint64_t http_client_connects(const struct http_client *c);

/*
 * Starts a call. spec and everything it points to may be freed after the
 * call returns (copied). On success *out (may be NULL) is the handle, valid
 * until on_done returns or http_call_cancel. Callbacks never run inside
 * http_call_start. Returns 0, -ERR_PARSE (bad URL), -ERR_UNSUPPORTED
 * (https without opts.tls, or a name without resolve_blocking), -ERR_NOMEM.
 */
int http_call_start(struct http_client *c, const struct http_call_spec *spec, struct http_call **out);
/*
 * Cancels a call: no callback fires afterwards and the pointer is dead.
 * Allowed from inside its own on_head/on_data (not from on_done).
 */
void http_call_cancel(struct http_call *call);
/*
 * Why the call failed, worded like Go ("dial tcp 127.0.0.1:2379: connect:
 * connection refused", "net/http: timeout awaiting response headers");
 * "" when it did not. Valid inside on_done only.
 */
const char *http_call_errmsg(const struct http_call *call);

/*
 * Blocking wrapper for the CLIs: runs a private loop until the response is
 * complete or spec->timeout_ms expires. Names resolve with getaddrinfo.
 * spec callbacks are ignored except on_data (streams the body instead of
 * buffering it). A struct http_sync keeps a loop and keep-alive pool across
 * calls; pass NULL for one-shot use.
 *
 * Returns 0 with *res filled (any HTTP status), or -ERR_xxx with
 * res->errmsg saying why ("dial tcp 127.0.0.1:2379: connection refused").
 * Free res with http_result_free in both cases.
 */
struct http_result {
	int status;
	struct http_header *headers; /* owned by res */
	size_t nheaders;
	char *body;                  /* owned by res, NUL-terminated */
	size_t body_len;
	char errmsg[256];
};
struct http_sync;
struct http_sync *http_sync_new(void);
void http_sync_free(struct http_sync *s);
/* The client TLS config for https:// URLs, as http_client_set_tls. */
int http_sync_set_tls(struct http_sync *s, struct tls_config *cfg);
int http_fetch(struct http_sync *s, const struct http_call_spec *spec, struct http_result *res);
const char *http_result_header(const struct http_result *res, const char *name);
void http_result_free(struct http_result *res);

#endif
