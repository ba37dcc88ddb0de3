/*
 * tls_bench: a timing program for core/tls, run by hand (never by meson
 * test; it prints figures and has no pass/fail).
 *
 *   tls_bench [HANDSHAKES [MIB]]   full handshakes between a corebox client
 *                                  and server in this process over loopback
 *                                  TCP, with and without client-certificate
 *                                  auth, then MIB of bulk data one way
 *   tls_bench serve SECONDS        a corebox TLS server on 127.0.0.1 for an
 *                                  external client (openssl s_time)
 *
 * Certificates (ECDSA P-256) are generated with the openssl command into a
 * temporary directory and removed at the end. For figures, link it against
 * a release build rather than the sanitizer build, e.g.:
 *   cc -O2 -D_GNU_SOURCE -specs=/usr/lib/x86_64-linux-musl/musl-gcc.specs -static \
 *      -Iinclude -Isubprojects/mbedtls/include tests/unit/tls_bench.c \
 *      build-tls/libcorebox.a build-tls/subprojects/mbedtls/libmbedtls.a -o /tmp/tls_bench
 * It must never listen anywhere but 127.0.0.1.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corebox/err.h"
#include "corebox/loop.h"
#include "corebox/tls.h"

#define BENCH_SECONDS_MAX 600

static const char gen[] =
	"set -e; cd \"$D\"\n"
	"k() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1.key; }\n"
	"k ca; openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 2 -sha256 "
	"-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -out ca.pem\n"
	"for n in server client; do k $n; openssl req -new -key $n.key -subj /CN=$n -out $n.csr;\n"
	"printf 'subjectAltName=IP:127.0.0.1\\nkeyUsage=critical,digitalSignature\\n' > $n.ext;\n"
	"openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 "
	"-extfile $n.ext -out $n.pem; done\n";

struct side {
	struct loop *l;
	struct tls_conn *t;
	int fd;
	int mask;
	const char *out;
	size_t out_len, sent;
	size_t in_len, in_want;
	int err;
};

struct bench {
	struct loop *l;
	char dir[64];
	struct side s, c;
};

static void side_io(struct loop *l, int fd, void *arg);

static void
side_mask(struct loop *l, struct side *d, int mask)
{
	if (d->mask & ~mask)
		loop_fd_del(l, d->fd, d->mask & ~mask);
	if ((mask & ~d->mask) && loop_fd_add(l, d->fd, mask & ~d->mask, side_io, d) < 0)
		d->err = -ERR_NOMEM;
	d->mask = mask;
}

static void
side_pump(struct side *d)
{
	char tmp[1 << 16];
	int rwant = LOOP_READ, wwant = 0, want = 0;
	ssize_t r;

	while (d->err == 0 && d->sent < d->out_len) {
		/* The payload repeats a 1 MiB buffer; a write never crosses its end. */
		size_t off = d->sent % (1 << 20), n = d->out_len - d->sent;

		if (n > (1 << 20) - off)
			n = (1 << 20) - off;
		r = tls_conn_write(d->t, d->out + off, n, &want);
		if (r > 0)
			d->sent += (size_t)r;
		else if (r == -ERR_AGAIN) {
			wwant = want;
			break;
		} else
			d->err = (int)r;
	}
	while (d->err == 0 && d->in_len < d->in_want) {
		r = tls_conn_read(d->t, tmp, sizeof(tmp), &want);
		if (r > 0)
			d->in_len += (size_t)r;
		else if (r == -ERR_AGAIN) {
			rwant = want;
			break;
		} else
			d->err = r == 0 ? -ERR_CLOSED : (int)r;
	}
	side_mask(d->l, d, d->err ? 0 : (d->in_len < d->in_want ? rwant : 0) |
		(d->sent < d->out_len ? wwant : 0));
}

static void
side_io(struct loop *l, int fd, void *arg)
{
	(void)l;
	(void)fd;
	side_pump(arg);
}

/* CPU time of this process in µs: on a shared machine the wall clock flatters nobody. */
static uint64_t
cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
		(uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int
listen_lo(struct sockaddr_in *a)
{
	socklen_t al = sizeof(*a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)a, sizeof(*a)) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)a, &al) < 0) {
		perror("listen");
		exit(1);
	}
	return fd;
}

static bool
settled(const struct bench *b)
{
	return b->s.err || b->c.err ||
		(b->s.sent == b->s.out_len && b->c.sent == b->c.out_len &&
		 b->s.in_len >= b->s.in_want && b->c.in_len >= b->c.in_want);
}

/* One connection: handshake, s_bytes from the server and 1 byte back. Returns 0 or the error. */
static int
one_conn(struct bench *b, int lfd, const struct sockaddr_in *a, struct tls_config *scfg,
	struct tls_config *ccfg, const char *payload, size_t s_bytes)
{
	int one = 1, cfd, sfd, err;

	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (const struct sockaddr *)a, sizeof(*a)) < 0)
		return -ERR_CONNECT;
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (sfd < 0)
		return -ERR_CONNECT;
	fcntl(cfd, F_SETFL, O_NONBLOCK);
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&b->s, 0, sizeof(b->s));
	memset(&b->c, 0, sizeof(b->c));
	b->s.l = b->c.l = b->l;
	b->s.fd = sfd;
	b->c.fd = cfd;
	if (tls_conn_open(scfg, b->l, sfd, NULL, &b->s.t) < 0 ||
	    tls_conn_open(ccfg, b->l, cfd, "127.0.0.1", &b->c.t) < 0)
		return -ERR_NOMEM;
	b->s.out = payload;
	b->s.out_len = s_bytes;
	b->s.in_want = 1;
	b->c.out = "x";
	b->c.out_len = 1;
	b->c.in_want = s_bytes;
	side_pump(&b->c);
	side_pump(&b->s);
	while (!settled(b))
		loop_run_once(b->l, 1000);
	err = b->s.err ? b->s.err : b->c.err;
	if (err)
		fprintf(stderr, "server: %s / client: %s\n", tls_conn_errmsg(b->s.t), tls_conn_errmsg(b->c.t));
	side_mask(b->l, &b->s, 0);
	side_mask(b->l, &b->c, 0);
	tls_conn_close(b->s.t, sfd);
	tls_conn_close(b->c.t, cfd);
	return err;
}

static const char *
file(const struct bench *b, const char *name)
{
	static char p[4][128];
	static int i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", b->dir, name);
	return p[i];
}

static void
run_handshakes(struct bench *b, int lfd, const struct sockaddr_in *a, bool auth, long n)
{
	char err[TLS_ERRMSG_MAX];
	struct tls_config *scfg, *ccfg;
	uint64_t t0, dt, c0, dc;

	scfg = tls_config_new_server(file(b, "server.pem"), file(b, "server.key"),
		file(b, "ca.pem"), auth, err);
	ccfg = tls_config_new_client(auth ? file(b, "client.pem") : NULL, auth ? file(b, "client.key") : NULL,
		file(b, "ca.pem"), NULL, err);
	if (scfg == NULL || ccfg == NULL) {
		fprintf(stderr, "config: %s\n", err);
		exit(1);
	}
	t0 = time_mono_us();
	c0 = cpu_us();
	for (long i = 0; i < n; i++) {
		if (one_conn(b, lfd, a, scfg, ccfg, "y", 1) != 0)
			exit(1);
	}
	dt = time_mono_us() - t0;
	dc = cpu_us() - c0;
	printf("handshakes %-20s %5ld in %6.2f s: %6.1f /s wall, %6.1f per CPU-second "
		"(client and server in one thread)\n", auth ? "(client cert auth)" : "(server auth only)",
		n, dt / 1e6, n * 1e6 / (double)dt, n * 1e6 / (double)dc);
	tls_config_free(scfg);
	tls_config_free(ccfg);
}

static void
run_bulk(struct bench *b, int lfd, const struct sockaddr_in *a, long mib)
{
	char err[TLS_ERRMSG_MAX];
	struct tls_config *scfg, *ccfg;
	char *payload = malloc(1 << 20);
	uint64_t t0, dt;

	scfg = tls_config_new_server(file(b, "server.pem"), file(b, "server.key"), NULL, false, err);
	ccfg = tls_config_new_client(NULL, NULL, file(b, "ca.pem"), NULL, err);
	if (scfg == NULL || ccfg == NULL || payload == NULL) {
		fprintf(stderr, "config: %s\n", err);
		exit(1);
	}
	memset(payload, 'z', 1 << 20);
	t0 = time_mono_us();
	if (one_conn(b, lfd, a, scfg, ccfg, payload, (size_t)mib << 20) != 0)
		exit(1);
	dt = time_mono_us() - t0;
	printf("bulk %ld MiB one way (AES-128-GCM, encrypt+decrypt in one thread): %.1f MiB/s\n",
		mib, mib * 1e6 / (double)dt);
	free(payload);
	tls_config_free(scfg);
	tls_config_free(ccfg);
}

/* Serving for an external client: accept, handshake, answer, close. */
struct served {
	struct loop *l;
	struct tls_config *cfg;
	long done, failed;
};

struct sconn {
	struct served *sv;
	struct tls_conn *t;
	int fd;
};

static void
sconn_io(struct loop *l, int fd, void *arg)
{
	struct sconn *sc = arg;
	char buf[4096];
	int want = LOOP_READ;
	ssize_t r = tls_conn_read(sc->t, buf, sizeof(buf), &want);

	if (r == -ERR_AGAIN) {
		loop_fd_del(l, fd, LOOP_READ | LOOP_WRITE);
		loop_fd_add(l, fd, want, sconn_io, sc);
		return;
	}
	/* A client that hangs up after its handshake (s_time) still counts. */
	if (tls_conn_handshake_done(sc->t))
		sc->sv->done++;
	else
		sc->sv->failed++;
	loop_fd_del(l, fd, LOOP_READ | LOOP_WRITE);
	tls_conn_close(sc->t, fd);
	free(sc);
}

static void
serve_accept(struct loop *l, int lfd, void *arg)
{
	struct served *sv = arg;

	for (int i = 0; i < 64; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct sconn *sc;
		int one = 1;

		if (fd < 0)
			return;
		/* mbedtls sends each handshake message with its own write. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		sc = calloc(1, sizeof(*sc));
		if (sc == NULL || tls_conn_open(sv->cfg, l, fd, NULL, &sc->t) < 0) {
			free(sc);
			close(fd);
			continue;
		}
		sc->sv = sv;
		sc->fd = fd;
		sconn_io(l, fd, sc);
	}
}

static int64_t
stop_fn(struct loop *l, uint64_t id, void *arg)
{
	(void)id;
	(void)arg;
	loop_stop(l);
	return LOOP_TIMER_DONE;
}

static void
serve(struct bench *b, long seconds)
{
	char err[TLS_ERRMSG_MAX];
	struct sockaddr_in a;
	struct served sv = { .l = b->l };
	int lfd = listen_lo(&a);
	uint64_t c0;

	fcntl(lfd, F_SETFL, O_NONBLOCK);
	sv.cfg = tls_config_new_server(file(b, "server.pem"), file(b, "server.key"), NULL, false, err);
	if (sv.cfg == NULL) {
		fprintf(stderr, "config: %s\n", err);
		exit(1);
	}
	printf("serving on 127.0.0.1:%d for %ld s; CA %s\n", ntohs(a.sin_port), seconds, file(b, "ca.pem"));
	fflush(stdout);
	c0 = cpu_us();
	loop_fd_add(b->l, lfd, LOOP_READ, serve_accept, &sv);
	loop_timer_add(b->l, (uint64_t)seconds * 1000, stop_fn, NULL);
	loop_run(b->l);
	printf("served %ld handshakes (%ld connections failed before finishing one), %.1f per CPU-second\n",
		sv.done, sv.failed, sv.done * 1e6 / (double)(cpu_us() - c0));
	close(lfd);
	tls_config_free(sv.cfg);
}

int
main(int argc, char **argv)
{
	struct bench b;
	struct sockaddr_in a;
	char cmd[512];
	long n = 1000, mib = 256;
	int lfd;

	memset(&b, 0, sizeof(b));
	snprintf(b.dir, sizeof(b.dir), "/tmp/corebox-tls-bench-XXXXXX");
	if (mkdtemp(b.dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	{
		char script[128];
		FILE *f;

		snprintf(script, sizeof(script), "%s/gen.sh", b.dir);
		f = fopen(script, "w");
		if (f == NULL || fputs(gen, f) < 0 || fclose(f) != 0)
			return 1;
		snprintf(cmd, sizeof(cmd), "D='%s' sh '%s' >'%s/gen.log' 2>&1", b.dir, script, b.dir);
		if (system(cmd) != 0) {
			fprintf(stderr, "openssl failed, see %s/gen.log\n", b.dir);
			return 1;
		}
	}
	b.l = loop_new();
	if (b.l == NULL)
		return 1;
	if (argc >= 3 && strcmp(argv[1], "serve") == 0) {
		long s = atol(argv[2]);

		serve(&b, s > 0 && s <= BENCH_SECONDS_MAX ? s : 10);
	} else {
		if (argc >= 2)
			n = atol(argv[1]);
		if (argc >= 3)
			mib = atol(argv[2]);
		lfd = listen_lo(&a);
		run_handshakes(&b, lfd, &a, false, n);
		run_handshakes(&b, lfd, &a, true, n);
		run_bulk(&b, lfd, &a, mib);
		close(lfd);
	}
	loop_free(b.l);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b.dir);
	return system(cmd) == 0 ? 0 : 1;
}
