/*
 * crc32c: CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected 0x82F63B78),
 * the checksum of every WAL record and snapshot file.
 *
 * crc32c() uses the SSE4.2 crc32 instruction when the CPU has it and a
 * table-driven slicing-by-8 loop otherwise; both give the same result (the
 * unit test checks them against each other and against RFC 3720's vectors).
 * No function here allocates, fails or keeps state between calls; the input
 * buffer is only read and stays owned by the caller.
 */
#ifndef COREBOX_CRC32C_H
#define COREBOX_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Extends crc (the finished CRC of the bytes before buf; 0 to start) by len
 * bytes of buf and returns the finished CRC, so that
 * crc32c(crc32c(0, a, n), b, m) == crc32c(0, a || b, n + m).
 * crc32c(0, "123456789", 9) == 0xE3069283. buf may be NULL when len is 0.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable slicing-by-8 implementation, always available. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

/*
 * The SSE4.2 implementation. Call it only when crc32c_hw_available() is
 * true; on other CPUs and architectures it falls back to crc32c_sw().
 */
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);

/* 1 if this CPU has the crc32 instruction (x86 SSE4.2), else 0. */
int crc32c_hw_available(void);

#endif
