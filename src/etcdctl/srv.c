/*
 * etcdctl -D / --discovery-srv: the cluster's client URLs from DNS SRV
 * records (_etcd-client-ssl._tcp.<domain> as https, _etcd-client._tcp.<domain>
 * as http), looked up with a small resolver: one UDP query to the first
 * nameserver of /etc/resolv.conf, as Go's resolver would send it.
 *
 * The answer is hostile input: every length and compression pointer is
 * checked against the packet, pointer chains are bounded, and no record is
 * trusted beyond CTL_SRV_RECORDS_MAX. It never sends anything but the query
 * to the configured nameserver.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/etcdctl.h"
#include "corebox/loop.h"
#include "corebox/mem.h"

#define DNS_HEADER_BYTES 12
#define DNS_TYPE_SRV 33
#define DNS_CLASS_IN 1
/* UDP answers are at most this big without EDNS. */
#define DNS_UDP_BYTES_MAX 512
/* Compression pointers followed per name. */
#define DNS_POINTERS_MAX 32
/* Per-attempt wait and attempts (Go's resolver: 5 s, 2). */
#define DNS_TIMEOUT_MS 5000
#define DNS_ATTEMPTS 2
/* resolv.conf lines read at most. */
#define RESOLV_BYTES_MAX 65536

int
ctl_dns_build_query(unsigned char *q, size_t cap, uint16_t id, const char *name)
{
	size_t len = strlen(name), off = DNS_HEADER_BYTES;
	const char *p = name;

	if (len == 0 || len > CTL_DNS_NAME_BYTES_MAX || cap < DNS_HEADER_BYTES + len + 2 + 4)
		return -ERR_INVAL;
	/* Every label is checked before anything is written. */
	while (*p != '\0') {
		size_t l = strcspn(p, ".");

		if (l == 0 || l > 63)
			return -ERR_INVAL;
		p += l;
		if (*p == '.')
			p++;
	}
	p = name;
	memset(q, 0, DNS_HEADER_BYTES);
	q[0] = (unsigned char)(id >> 8);
	q[1] = (unsigned char)id;
	q[2] = 0x01; /* RD */
	q[5] = 1;    /* QDCOUNT */
	while (*p != '\0') {
		size_t l = strcspn(p, ".");

		q[off++] = (unsigned char)l;
		memcpy(q + off, p, l);
		off += l;
		p += l;
		if (*p == '.')
			p++;
	}
	q[off++] = 0;
	q[off++] = 0;
	q[off++] = DNS_TYPE_SRV;
	q[off++] = 0;
	q[off++] = DNS_CLASS_IN;
	return (int)off;
}

/* Reads a (possibly compressed) name at *off into out ("a.b.c."); advances *off past it. */
static int
read_name(const unsigned char *a, size_t len, size_t *off, char *out, size_t cap)
{
	size_t o = *off, n = 0, end = 0;
	int jumps = 0;

	for (;;) {
		unsigned char l;

		if (o >= len)
			return -ERR_PARSE;
		l = a[o];
		if ((l & 0xc0) == 0xc0) {
			if (o + 1 >= len || ++jumps > DNS_POINTERS_MAX)
				return -ERR_PARSE;
			if (end == 0)
				end = o + 2;
			o = ((size_t)(l & 0x3f) << 8) | a[o + 1];
			continue;
		}
		if ((l & 0xc0) != 0)
			return -ERR_PARSE;
		o++;
		if (l == 0)
			break;
		if (o + l > len || n + l + 2 > cap)
			return -ERR_PARSE;
		memcpy(out + n, a + o, l);
		n += l;
		out[n++] = '.';
		o += l;
	}
	if (n == 0) {
		if (cap < 2)
			return -ERR_PARSE;
		out[n++] = '.';
	}
	out[n] = '\0';
	*off = end != 0 ? end : o;
	return 0;
}

struct srv_rec {
	uint16_t prio;
	size_t order;
	char hostport[CTL_DNS_NAME_BYTES_MAX + 8];
};

static int
srv_cmp(const void *x, const void *y)
{
	const struct srv_rec *a = x, *b = y;

	if (a->prio != b->prio)
		return a->prio < b->prio ? -1 : 1;
	return a->order < b->order ? -1 : a->order > b->order;
}

int
ctl_dns_parse_srv(const unsigned char *a, size_t len, uint16_t id, char hosts[][CTL_DNS_NAME_BYTES_MAX + 8],
	size_t max)
{
	char name[CTL_DNS_NAME_BYTES_MAX + 2];
	struct srv_rec *recs;
	size_t off = DNS_HEADER_BYTES, nrec = 0;
	unsigned qd, an;

	if (len < DNS_HEADER_BYTES || ((unsigned)a[0] << 8 | a[1]) != id || (a[2] & 0x80) == 0)
		return -ERR_PARSE;
	if ((a[3] & 0x0f) == 3)
		return -ERR_NOTFOUND;
	if ((a[3] & 0x0f) != 0 || (a[2] & 0x02) != 0)
		return -ERR_PARSE;
	qd = (unsigned)a[4] << 8 | a[5];
	an = (unsigned)a[6] << 8 | a[7];
	for (unsigned i = 0; i < qd; i++) {
		if (read_name(a, len, &off, name, sizeof(name)) < 0 || off + 4 > len)
			return -ERR_PARSE;
		off += 4;
	}
	recs = mem_calloc(max > 0 ? max : 1, sizeof(*recs));
	if (recs == NULL)
		return -ERR_NOMEM;
	for (unsigned i = 0; i < an; i++) {
		unsigned type, rdlen;
		size_t rd;

		if (read_name(a, len, &off, name, sizeof(name)) < 0 || off + 10 > len)
			goto bad;
		type = (unsigned)a[off] << 8 | a[off + 1];
		rdlen = (unsigned)a[off + 8] << 8 | a[off + 9];
		off += 10;
		if (off + rdlen > len)
			goto bad;
		rd = off;
		off += rdlen;
		if (type != DNS_TYPE_SRV || nrec >= max)
			continue;
		if (rdlen < 7)
			goto bad;
		recs[nrec].prio = (uint16_t)((unsigned)a[rd] << 8 | a[rd + 1]);
		{
			unsigned port = (unsigned)a[rd + 4] << 8 | a[rd + 5];
			size_t t = rd + 6;

			if (read_name(a, len, &t, name, sizeof(name)) < 0 || t > off)
				goto bad;
			/* net.JoinHostPort keeps the target's trailing dot, as Go does. */
			snprintf(recs[nrec].hostport, sizeof(recs[nrec].hostport), "%s:%u", name, port);
		}
		recs[nrec].order = nrec;
		nrec++;
	}
	if (nrec == 0) {
		mem_free(recs);
		return -ERR_NOTFOUND;
	}
	qsort(recs, nrec, sizeof(*recs), srv_cmp);
	for (size_t i = 0; i < nrec; i++)
		memcpy(hosts[i], recs[i].hostport, sizeof(hosts[i]));
	mem_free(recs);
	return (int)nrec;
bad:
	mem_free(recs);
	return -ERR_PARSE;
}

/* The first nameserver of /etc/resolv.conf (Go's default: 127.0.0.1). */
static void
first_nameserver(char *out, size_t cap)
{
	FILE *f = fopen("/etc/resolv.conf", "re");
	char line[512];
	size_t read_bytes = 0;

	snprintf(out, cap, "127.0.0.1");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL && read_bytes < RESOLV_BYTES_MAX) {
		char *p = line, *end;

		read_bytes += strlen(line);
		if (strncmp(p, "nameserver", 10) != 0 || (p[10] != ' ' && p[10] != '\t'))
			continue;
		p += 10;
		while (*p == ' ' || *p == '\t')
			p++;
		end = p + strcspn(p, " \t\r\n%");
		*end = '\0';
		if (*p != '\0') {
			snprintf(out, cap, "%.*s", (int)(cap - 1), p);
			break;
		}
	}
	fclose(f);
}

/* One lookup; on failure why is Go's text ("lookup X on NS:53: no such host"). */
static int
lookup_srv(const char *name, const char *ns, char hosts[][CTL_DNS_NAME_BYTES_MAX + 8], size_t max,
	char *why, size_t whylen)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	unsigned char q[DNS_UDP_BYTES_MAX], a[DNS_UDP_BYTES_MAX];
	char nsdisp[80];
	uint16_t id = (uint16_t)(time_real_ns() ^ (uint64_t)getpid());
	int qlen, fd, rc = -ERR_TIMEOUT;

	memset(&sa, 0, sizeof(sa));
	if (strchr(ns, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(53);
		if (inet_pton(AF_INET6, ns, &s6->sin6_addr) != 1)
			goto badns;
		salen = sizeof(*s6);
		snprintf(nsdisp, sizeof(nsdisp), "[%s]:53", ns);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(53);
		if (inet_pton(AF_INET, ns, &s4->sin_addr) != 1)
			goto badns;
		salen = sizeof(*s4);
		snprintf(nsdisp, sizeof(nsdisp), "%s:53", ns);
	}
	qlen = ctl_dns_build_query(q, sizeof(q), id, name);
	if (qlen < 0) {
		snprintf(why, whylen, "lookup %.300s: invalid domain name", name);
		return -ERR_INVAL;
	}
	fd = socket(sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "lookup %.300s on %.70s: socket: %s", name, nsdisp, strerror(errno));
		return -ERR_IO;
	}
	/* connect() makes the kernel drop datagrams from anyone but the nameserver. */
	if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
		snprintf(why, whylen, "lookup %.300s on %.70s: connect: %s", name, nsdisp, strerror(errno));
		close(fd);
		return -ERR_IO;
	}
	for (int attempt = 0; attempt < DNS_ATTEMPTS && rc == -ERR_TIMEOUT; attempt++) {
		uint64_t deadline = time_mono_ms() + DNS_TIMEOUT_MS;

		if (send(fd, q, (size_t)qlen, 0) < 0)
			continue;
		for (;;) {
			struct pollfd pfd = { fd, POLLIN, 0 };
			uint64_t now = time_mono_ms();
			ssize_t n;

			if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
				break;
			n = recv(fd, a, sizeof(a), 0);
			if (n < 0)
				break;
			rc = ctl_dns_parse_srv(a, (size_t)n, id, hosts, max);
			if (rc == -ERR_PARSE && (n < 2 || ((unsigned)a[0] << 8 | a[1]) != id)) {
				rc = -ERR_TIMEOUT; /* not our answer: keep waiting */
				continue;
			}
			break;
		}
	}
	close(fd);
	if (rc == -ERR_TIMEOUT)
		snprintf(why, whylen, "lookup %.300s on %.70s: i/o timeout", name, nsdisp);
	else if (rc == -ERR_NOTFOUND)
		snprintf(why, whylen, "lookup %.300s on %.70s: no such host", name, nsdisp);
	else if (rc < 0)
		snprintf(why, whylen, "lookup %.300s on %.70s: server misbehaving", name, nsdisp);
	return rc;
badns:
	snprintf(why, whylen, "lookup %.300s: bad nameserver address %s in /etc/resolv.conf", name, ns);
	return -ERR_INVAL;
}

int
ctl_srv_discover(const char *domain, const char *service, char **eps, size_t max, struct ctl_err *e)
{
	static const struct {
		const char *suffix;
		const char *scheme;
	} kinds[2] = { { "-ssl", "https" }, { "", "http" } };
	char (*hosts)[CTL_DNS_NAME_BYTES_MAX + 8];
	char ns[64], why[2][CTL_ERR_TEXT_BYTES + 256];
	size_t n = 0;
	int ok = 0;

	hosts = mem_calloc(CTL_SRV_RECORDS_MAX, sizeof(*hosts));
	if (hosts == NULL) {
		ctl_err_msg(e, false, "out of memory");
		return -1;
	}
	first_nameserver(ns, sizeof(ns));
	for (int k = 0; k < 2; k++) {
		char name[CTL_DNS_NAME_BYTES_MAX + 64];
		int r;

		/* GetSRVService: etcd-client[-ssl][-<service name>]. */
		snprintf(name, sizeof(name), "_etcd-client%s%s%s._tcp.%s", kinds[k].suffix, service[0] ? "-" : "",
			service, domain);
		r = lookup_srv(name, ns, hosts, CTL_SRV_RECORDS_MAX, why[k], sizeof(why[k]));
		if (r < 0)
			continue;
		ok++;
		for (int i = 0; i < r && n < max; i++) {
			struct buf b = BUF_INIT;

			if (buf_printf(&b, "%s://%s", kinds[k].scheme, hosts[i]) < 0 ||
			    (eps[n] = buf_steal(&b, NULL)) == NULL) {
				buf_free(&b);
				for (size_t j = 0; j < n; j++)
					mem_free(eps[j]);
				mem_free(hosts);
				ctl_err_msg(e, false, "out of memory");
				return -1;
			}
			n++;
		}
	}
	mem_free(hosts);
	if (ok == 0) {
		ctl_err_msg(e, false, "dns lookup errors: %s and %s", why[0], why[1]);
		return -1;
	}
	return (int)n;
}
