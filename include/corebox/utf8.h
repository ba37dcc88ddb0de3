/*
 * utf8: decoding one UTF-8 sequence the way Go's utf8.DecodeRune accepts it
 * (shortest form only, no surrogates, nothing above U+10FFFF), so that
 * flags, JSON escaping and etcdctl's quoting agree with the Go originals
 * on which bytes are valid. Never allocates; the input stays the caller's.
 */
#ifndef COREBOX_UTF8_H
#define COREBOX_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * Length (1..4) of the valid UTF-8 sequence at s, which has n >= 1 bytes
 * left, with its rune in *r; 0 for an invalid or truncated sequence (*r is
 * then unspecified and Go would yield U+FFFD for the one byte s[0]).
 */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *r);

#endif
