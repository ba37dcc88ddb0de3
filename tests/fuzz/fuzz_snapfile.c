/*
 * Fuzz harness for the snapshot frame decoder: any bytes as a whole
 * snapshot file image. On success the header must describe exactly the
 * bytes after it; on failure there must be a message. Never touches files.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "corebox/snapfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snapfile_header h;
	const void *payload = NULL;
	char msg[256];
	int rc;

	msg[0] = '\0';
	rc = snapfile_decode(data, size, &h, &payload, msg, sizeof(msg));
	if (rc != 0) {
		if (msg[0] == '\0')
			abort();
		return 0;
	}
	if (size < SNAPFILE_HEADER_BYTES || h.length != size - SNAPFILE_HEADER_BYTES ||
	    payload != data + SNAPFILE_HEADER_BYTES || h.version != SNAPFILE_VERSION)
		abort();
	return 0;
}
