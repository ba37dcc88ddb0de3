/*
 * discovery_probe: runs one discovery (store/discovery's blocking wrapper)
 * from the command line, for tests/integration/test_discovery.py, which
 * starts several at once against real stores. Not installed, not an applet.
 *
 *	discovery_probe join URL NAME IDHEX PEERURL[,PEERURL...] [RETRIES [BACKOFF_MS]]
 *	discovery_probe get URL [RETRIES [BACKOFF_MS]]
 *
 * Success: the initial-cluster string on stdout (get: then the sorted peer
 * URLs joined by ','), exit 0. Failure: "CODE_NAME: message" on stdout,
 * exit 1. Bad usage: exit 2. It must never retry or wait without the bounds
 * given to it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corebox/discovery.h"
#include "corebox/log.h"
#include "corebox/mem.h"

#define PROBE_PEERS_MAX 16

static int
usage(void)
{
	fprintf(stderr, "usage: discovery_probe join URL NAME IDHEX PEERURL[,PEERURL...] [RETRIES [BACKOFF_MS]]\n"
		"       discovery_probe get URL [RETRIES [BACKOFF_MS]]\n");
	return 2;
}

static int
num(const char *s, int base, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, base);
	return errno != 0 || *s == '\0' || *end != '\0' ? -1 : 0;
}

int
main(int argc, char **argv)
{
	struct discovery_config cfg;
	struct discovery_outcome out;
	const char *peers[PROBE_PEERS_MAX];
	char *peerbuf = NULL;
	unsigned long long v;
	int join, rest, rc;

	if (argc < 3)
		return usage();
	join = strcmp(argv[1], "join") == 0;
	if (!join && strcmp(argv[1], "get") != 0)
		return usage();
	discovery_config_default(&cfg);
	cfg.url = argv[2];
	if (getenv("DISCOVERY_PROBE_PROXY") != NULL)
		cfg.proxy = getenv("DISCOVERY_PROBE_PROXY");
	rest = 3;
	if (join) {
		size_t n = 0;

		if (argc < 6)
			return usage();
		cfg.name = argv[3];
		if (num(argv[4], 16, &v) != 0)
			return usage();
		cfg.id = v;
		peerbuf = mem_strdup(argv[5]);
		if (peerbuf == NULL)
			return 1;
		for (char *p = strtok(peerbuf, ","); p != NULL; p = strtok(NULL, ",")) {
			if (n == PROBE_PEERS_MAX) {
				mem_free(peerbuf);
				return usage();
			}
			peers[n++] = p;
		}
		cfg.peer_urls = peers;
		cfg.npeer_urls = n;
		rest = 6;
	}
	if (argc > rest) {
		if (num(argv[rest], 10, &v) != 0 || v > 100) {
			mem_free(peerbuf);
			return usage();
		}
		cfg.retries_max = (unsigned)v;
	}
	if (argc > rest + 1) {
		if (num(argv[rest + 1], 10, &v) != 0 || v > 60000) {
			mem_free(peerbuf);
			return usage();
		}
		cfg.backoff_ms = v;
		cfg.backoff_max_ms = v * 4;
	}
	if (argc > rest + 2) {
		mem_free(peerbuf);
		return usage();
	}
	log_set_level(LOG_LEVEL_WARN);
	rc = join ? discovery_join_sync(&cfg, &out) : discovery_get_cluster_sync(&cfg, &out);
	mem_free(peerbuf);
	if (rc != 0) {
		printf("DISCOVERY_ERR_OTHER: cannot run discovery (%d)\n", rc);
		return 1;
	}
	if (out.code != DISCOVERY_OK) {
		printf("%s: %s\n", discovery_code_name(out.code), out.errmsg);
		discovery_outcome_free(&out);
		return 1;
	}
	printf("%s\n", out.cluster);
	if (!join) {
		char **urls = NULL, msg[256];
		size_t n = 0;

		if (discovery_cluster_urls(out.cluster, &urls, &n, msg, sizeof(msg)) != 0) {
			printf("DISCOVERY_ERR_INVALID_URL: %s\n", msg);
			discovery_outcome_free(&out);
			return 1;
		}
		for (size_t i = 0; i < n; i++)
			printf("%s%s", i ? "," : "", urls[i]);
		printf("\n");
		discovery_urls_free(urls, n);
	}
	discovery_outcome_free(&out);
	return 0;
}
