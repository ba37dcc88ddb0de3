/*
 * err: the one error enum. Functions return 0 or -ERR_xxx.
 *
 * The X-macro table gives each code its message; err_str(-ERR_IO) and
 * err_str(ERR_IO) both return "i/o error". Add codes at the end of a group;
 * the numbers are never written to disk or the wire.
 */
#ifndef COREBOX_ERR_H
#define COREBOX_ERR_H

#define ERR_LIST(X) \
	X(ERR_NOMEM, "out of memory") \
	X(ERR_IO, "i/o error") \
	X(ERR_INVAL, "invalid argument") \
	X(ERR_RANGE, "value out of range") \
	X(ERR_LIMIT, "limit exceeded") \
	X(ERR_PARSE, "malformed input") \
	X(ERR_CRC, "checksum mismatch") \
	X(ERR_CORRUPT, "corrupt data") \
	X(ERR_NOTFOUND, "not found") \
	X(ERR_EXIST, "already exists") \
	X(ERR_AGAIN, "try again") \
	X(ERR_TIMEOUT, "timed out") \
	X(ERR_CLOSED, "connection closed") \
	X(ERR_CONNECT, "connection failed") \
	X(ERR_UNSUPPORTED, "not supported") \
	X(ERR_STATE, "wrong state") \
	X(ERR_TLS, "tls error")

enum err_code {
	ERR_OK = 0,
#define ERR_ENUM(name, msg) name,
	ERR_FIRST_ = 1000,
	ERR_LIST(ERR_ENUM)
#undef ERR_ENUM
	ERR_LAST_
};

/* Message for a code (sign ignored); "unknown error" for anything else. */
const char *err_str(int code);

#endif
