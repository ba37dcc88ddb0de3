/* Unit tests for core/tls: real handshakes between a corebox server and
 * client (and Debian's openssl on the other side) over socketpairs and
 * loopback TCP, driven by the loop. Every certificate is generated at run
 * time with the openssl command into a temporary directory that is removed
 * afterwards: a CA, an unknown CA, an intermediate, server certificates
 * (good, RSA, expired, not yet valid, wrong SANs, no SAN, wrong key usage,
 * behind an intermediate) and client certificates (good, expired, unknown
 * CA). Covers: success with valid chains, each refusal with Go's wording,
 * client-certificate auth, the handshake timeout, large transfers, buffered
 * plaintext, the write-retry contract, peers closing or talking garbage
 * mid-handshake, config errors and allocation failures; then https through
 * the HTTP server and client (and http_fetch), with large bodies, tiny read
 * budgets (plaintext left inside the TLS layer), keep-alive reuse, refusals
 * and the handshake timeout cutting a silent client off a listener. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/http.h"
#include "corebox/log.h"
#include "corebox/loop.h"
#include "corebox/mem.h"
#include "corebox/tls.h"

/* Upper bound for any wait, so a bug fails instead of hanging. */
#define WAIT_MS_MAX 8000

/* The directory with the generated certificates (set up once for the group). */
static char dir[64];

static const char gen_script[] =
	"set -e\n"
	"cd \"$D\"\n"
	"mkdir -p newcerts; : > index.txt; echo 1000 > serial\n"
	"cat > ca.cnf <<'EOF'\n"
	"[ca]\ndefault_ca = testca\n"
	"[testca]\ndir = .\ndatabase = ./index.txt\nnew_certs_dir = ./newcerts\n"
	"serial = ./serial\ndefault_md = sha256\npolicy = anything\nunique_subject = no\n"
	"copy_extensions = none\nemail_in_dn = no\n"
	"[anything]\ncommonName = supplied\n"
	"EOF\n"
	"ext() { f=$1; shift; printf '[v3]\\n' > $f.ext; for l in \"$@\"; do printf '%s\\n' \"$l\" >> $f.ext; done; }\n"
	"eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1.key; }\n"
	"mkca() { eckey $1; openssl req -x509 -new -key $1.key -subj \"/CN=$2\" -days 3650 -sha256 "
	"-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out $1.pem; }\n"
	/* issue NAME CA CN START END (START/END '-' for now .. now+30 days); NAME.ext must exist */
	"issue() { [ -f $1.key ] || eckey $1;\n"
	"  openssl req -new -key $1.key -subj \"/CN=$3\" -out $1.csr;\n"
	"  if [ \"$4\" = - ]; then d='-days 30'; else d=\"-startdate $4 -enddate $5\"; fi;\n"
	"  openssl ca -batch -config ca.cnf -cert $2.pem -keyfile $2.key -in $1.csr -out $1.pem "
	"-notext $d -extfile $1.ext -extensions v3 2>>ca.log; }\n"
	"SRV='extendedKeyUsage = serverAuth'\n"
	"CLI='extendedKeyUsage = clientAuth'\n"
	"KU='keyUsage = critical, digitalSignature, keyEncipherment'\n"
	"SAN='subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost'\n"
	"mkca ca 'corebox test CA'\n"
	"mkca ca2 'corebox unknown CA'\n"
	"ext inter 'basicConstraints = critical, CA:TRUE' 'keyUsage = critical, keyCertSign, cRLSign'\n"
	"issue inter ca 'corebox intermediate' -\n"
	"ext server \"$KU\" \"$SRV\" \"$SAN\"\n"
	"issue server ca server -\n"
	"openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server_rsa.key\n"
	"ext server_rsa \"$KU\" \"$SRV\" \"$SAN\"\n"
	"issue server_rsa ca server-rsa -\n"
	"ext server_expired \"$KU\" \"$SRV\" \"$SAN\"\n"
	"issue server_expired ca server 20200101000000Z 20210101000000Z\n"
	"ext server_future \"$KU\" \"$SRV\" \"$SAN\"\n"
	"issue server_future ca server 20900101000000Z 20910101000000Z\n"
	"ext server_wrongsan \"$KU\" \"$SRV\" 'subjectAltName = IP:127.0.0.2, DNS:example.com'\n"
	"issue server_wrongsan ca server -\n"
	"ext server_mapped \"$KU\" \"$SRV\" 'subjectAltName = IP:::ffff:127.0.0.1'\n"
	"issue server_mapped ca server -\n"
	"ext server_nosan \"$KU\" \"$SRV\"\n"
	"issue server_nosan ca localhost -\n"
	"ext server_usage \"$KU\" \"$CLI\" \"$SAN\"\n"
	"issue server_usage ca server -\n"
	"ext server_unknown \"$KU\" \"$SRV\" \"$SAN\"\n"
	"issue server_unknown ca2 server -\n"
	"ext server_inter \"$KU\" \"$SRV\" \"$SAN\"\n"
	"issue server_inter inter server -\n"
	"cat server_inter.pem inter.pem > server_inter_chain.pem\n"
	"ext client \"$KU\" \"$CLI\"\n"
	"issue client ca client -\n"
	"ext client_expired \"$KU\" \"$CLI\"\n"
	"issue client_expired ca client 20200101000000Z 20210101000000Z\n"
	"ext client_unknown \"$KU\" \"$CLI\"\n"
	"issue client_unknown ca2 client -\n"
	"openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:secret -out encrypted.key\n"
	"echo 'not a certificate' > garbage.pem\n"
	": > empty.pem\n";

static const char *
path(const char *name)
{
	static char p[8][128];
	static int i;

	i = (i + 1) % 8;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return p[i];
}

static int
gen_certs(void **state)
{
	char cmd[256];
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/corebox-tls-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	f = fopen(path("gen.sh"), "w");
	if (f == NULL)
		return -1;
	fputs(gen_script, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "D='%s' sh '%s/gen.sh' >'%s/gen.log' 2>&1", dir, dir, dir);
	if (system(cmd) != 0) {
		snprintf(cmd, sizeof(cmd), "cat '%s/gen.log' '%s/ca.log'", dir, dir);
		if (system(cmd) != 0)
			fprintf(stderr, "no log\n");
		fprintf(stderr, "certificate generation with openssl failed\n");
		return -1;
	}
	return 0;
}

static int
rm_certs(void **state)
{
	char cmd[128];

	(void)state;
	if (dir[0] == '\0')
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Configs                                                             */
/* ------------------------------------------------------------------ */

static struct tls_config *
server_cfg(const char *name, bool auth)
{
	char cert[64], key[64], err[TLS_ERRMSG_MAX];
	struct tls_config *cfg;

	snprintf(cert, sizeof(cert), "%s.pem", name);
	snprintf(key, sizeof(key), "%s.key", name);
	if (strcmp(name, "server_inter_chain") == 0)
		snprintf(key, sizeof(key), "server_inter.key");
	cfg = tls_config_new_server(path(cert), path(key), auth ? path("ca.pem") : NULL, auth, err);
	if (cfg == NULL)
		fprintf(stderr, "server config %s: %s\n", name, err);
	assert_non_null(cfg);
	assert_true(tls_config_is_server(cfg));
	return cfg;
}

static struct tls_config *
client_cfg(const char *name, const char *server_name)
{
	char cert[64], key[64], err[TLS_ERRMSG_MAX];
	struct tls_config *cfg;

	snprintf(cert, sizeof(cert), "%s.pem", name ? name : "");
	snprintf(key, sizeof(key), "%s.key", name ? name : "");
	cfg = tls_config_new_client(name ? path(cert) : NULL, name ? path(key) : NULL,
		path("ca.pem"), server_name, err);
	if (cfg == NULL)
		fprintf(stderr, "client config %s: %s\n", name ? name : "-", err);
	assert_non_null(cfg);
	assert_false(tls_config_is_server(cfg));
	return cfg;
}

/* ------------------------------------------------------------------ */
/* One end of a connection, pumped by the loop                         */
/* ------------------------------------------------------------------ */

struct end {
	struct loop *l;
	struct tls_conn *t;
	int fd;
	int mask;
	struct buf in;
	const unsigned char *out;
	size_t out_len, sent;
	size_t read_chunk;     /* bytes offered per read call */
	int err;
	bool eof;
};

static void end_io(struct loop *l, int fd, void *arg);

static void
end_set_mask(struct end *e, int mask)
{
	if (e->mask & ~mask)
		loop_fd_del(e->l, e->fd, e->mask & ~mask);
	if (mask & ~e->mask)
		assert_int_equal(loop_fd_add(e->l, e->fd, mask & ~e->mask, end_io, e), 0);
	e->mask = mask;
}

/* Writes what is left, reads until the conn would block, then waits for what it asked. */
static void
end_pump(struct end *e)
{
	unsigned char tmp[65536];
	int rwant = LOOP_READ, wwant = 0, want;
	ssize_t r;

	while (e->err == 0 && e->sent < e->out_len) {
		want = 0;
		r = tls_conn_write(e->t, e->out + e->sent, e->out_len - e->sent, &want);
		if (r > 0) {
			e->sent += (size_t)r;
		} else if (r == -ERR_AGAIN) {
			assert_true(want == LOOP_READ || want == LOOP_WRITE);
			wwant = want;
			break;
		} else {
			assert_true(r < 0);
			e->err = (int)r;
		}
	}
	while (e->err == 0 && !e->eof) {
		size_t n = e->read_chunk ? e->read_chunk : sizeof(tmp);

		want = 0;
		r = tls_conn_read(e->t, tmp, n, &want);
		if (r > 0) {
			assert_true((size_t)r <= n);
			assert_int_equal(buf_append(&e->in, tmp, (size_t)r), 0);
		} else if (r == 0) {
			e->eof = true;
		} else if (r == -ERR_AGAIN) {
			assert_true(want == LOOP_READ || want == LOOP_WRITE);
			rwant = want;
			break;
		} else {
			e->err = (int)r;
		}
	}
	if (e->err != 0)
		end_set_mask(e, 0);
	else
		end_set_mask(e, (e->eof ? 0 : rwant) | wwant);
}

static void
end_io(struct loop *l, int fd, void *arg)
{
	(void)l;
	(void)fd;
	end_pump(arg);
}

static void
end_init(struct end *e, struct loop *l, struct tls_config *cfg, int fd, const char *host)
{
	memset(e, 0, sizeof(*e));
	e->l = l;
	e->fd = fd;
	buf_init(&e->in);
	assert_int_equal(tls_conn_open(cfg, l, fd, host, &e->t), 0);
	assert_non_null(e->t);
	assert_string_equal(tls_conn_errmsg(e->t), "");
	assert_false(tls_conn_handshake_done(e->t));
	assert_string_equal(tls_conn_version(e->t), "");
}

static void
end_close(struct end *e)
{
	end_set_mask(e, 0);
	tls_conn_close(e->t, e->fd);
	e->t = NULL;
	e->fd = -1;
	buf_free(&e->in);
}

typedef bool done_fn(void *arg);

static uint64_t
run_until(struct loop *l, done_fn *done, void *arg, uint64_t max_ms)
{
	uint64_t start = time_mono_ms();

	while (!done(arg) && time_mono_ms() - start < max_ms)
		assert_int_equal(loop_run_once(l, 20), 0);
	return time_mono_ms() - start;
}

struct pair {
	struct loop *l;
	struct end s, c;
};

/* Both handshakes finished, or either side failed. */
static bool
pair_settled(void *arg)
{
	struct pair *p = arg;

	return p->s.err != 0 || p->c.err != 0 ||
		(tls_conn_handshake_done(p->s.t) && tls_conn_handshake_done(p->c.t) &&
		 p->s.sent == p->s.out_len && p->c.sent == p->c.out_len &&
		 p->s.in.len >= p->c.out_len && p->c.in.len >= p->s.out_len);
}

/* Both sides settled: failures must reach both (the failing side alerts the other). */
static bool
pair_both_failed_or_done(void *arg)
{
	struct pair *p = arg;

	if (p->s.err != 0 && p->c.err != 0)
		return true;
	return p->s.err == 0 && p->c.err == 0 && pair_settled(arg);
}

static void
tcp_fds(int *sfd, int *cfd)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int lfd, one = 1;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
	*cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(*cfd >= 0);
	assert_int_equal(connect(*cfd, (struct sockaddr *)&a, sizeof(a)), 0);
	*sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	assert_true(*sfd >= 0);
	close(lfd);
	assert_int_equal(fcntl(*cfd, F_SETFL, O_NONBLOCK), 0);
	setsockopt(*sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void
pair_fds(bool tcp, int *sfd, int *cfd)
{
	int sv[2];

	if (tcp) {
		tcp_fds(sfd, cfd);
		return;
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	*sfd = sv[0];
	*cfd = sv[1];
}

static void
pair_open(struct pair *p, struct tls_config *scfg, struct tls_config *ccfg, const char *host, bool tcp)
{
	int sfd, cfd;

	memset(p, 0, sizeof(*p));
	p->l = loop_new();
	assert_non_null(p->l);
	pair_fds(tcp, &sfd, &cfd);
	end_init(&p->s, p->l, scfg, sfd, NULL);
	end_init(&p->c, p->l, ccfg, cfd, host);
}

static void
pair_start(struct pair *p, const void *s_out, size_t s_len, const void *c_out, size_t c_len)
{
	p->s.out = s_out;
	p->s.out_len = s_len;
	p->c.out = c_out;
	p->c.out_len = c_len;
	end_pump(&p->c);
	end_pump(&p->s);
}

static void
pair_close(struct pair *p)
{
	end_close(&p->s);
	end_close(&p->c);
	loop_free(p->l);
}

/*
 * A full exchange: handshake, "ping" from the client, "pong" back. Returns
 * with both ends still open for more checks; the caller closes.
 */
static void
pair_exchange(struct pair *p, struct tls_config *scfg, struct tls_config *ccfg, const char *host, bool tcp)
{
	pair_open(p, scfg, ccfg, host, tcp);
	pair_start(p, "pong", 4, "ping", 4);
	run_until(p->l, pair_settled, p, WAIT_MS_MAX);
	if (p->c.err != 0 || p->s.err != 0)
		fprintf(stderr, "client: %s | server: %s\n", tls_conn_errmsg(p->c.t), tls_conn_errmsg(p->s.t));
	assert_int_equal(p->c.err, 0);
	assert_int_equal(p->s.err, 0);
	assert_true(tls_conn_handshake_done(p->s.t));
	assert_true(tls_conn_handshake_done(p->c.t));
	assert_int_equal(p->s.in.len, 4);
	assert_memory_equal(p->s.in.data, "ping", 4);
	assert_int_equal(p->c.in.len, 4);
	assert_memory_equal(p->c.in.data, "pong", 4);
	assert_string_equal(tls_conn_version(p->c.t), "TLSv1.2");
	assert_string_equal(tls_conn_version(p->s.t), "TLSv1.2");
	assert_string_equal(tls_conn_cipher(p->c.t), tls_conn_cipher(p->s.t));
}

/* Expects the handshake to fail on both sides with these messages. */
static void
expect_refusal(struct tls_config *scfg, struct tls_config *ccfg, const char *host,
	int c_err, const char *c_msg, int s_err, const char *s_msg)
{
	struct pair p;

	pair_open(&p, scfg, ccfg, host, false);
	pair_start(&p, "pong", 4, "ping", 4);
	run_until(p.l, pair_both_failed_or_done, &p, WAIT_MS_MAX);
	if (strcmp(tls_conn_errmsg(p.c.t), c_msg) != 0 || strcmp(tls_conn_errmsg(p.s.t), s_msg) != 0)
		fprintf(stderr, "host %s: client [%s] server [%s]\n", host,
			tls_conn_errmsg(p.c.t), tls_conn_errmsg(p.s.t));
	assert_int_equal(p.c.err, c_err);
	assert_string_equal(tls_conn_errmsg(p.c.t), c_msg);
	assert_int_equal(p.s.err, s_err);
	assert_string_equal(tls_conn_errmsg(p.s.t), s_msg);
	/* No application byte crossed, and the failure is sticky. */
	assert_int_equal(p.s.in.len, 0);
	assert_int_equal(p.c.in.len, 0);
	{
		char b[8];
		int want;

		assert_int_equal(tls_conn_read(p.c.t, b, sizeof(b), &want), c_err);
		assert_int_equal(tls_conn_write(p.c.t, "x", 1, &want), c_err);
	}
	pair_close(&p);
}

/* ------------------------------------------------------------------ */
/* Success                                                             */
/* ------------------------------------------------------------------ */

static void
test_valid_chain_ip_and_client_cert(void **state)
{
	struct tls_config *scfg = server_cfg("server", true);
	struct tls_config *ccfg = client_cfg("client", NULL);
	struct pair p;
	char cn[64];

	(void)state;
	pair_exchange(&p, scfg, ccfg, "127.0.0.1", true);
	/* ECDSA certificate: the first ECDHE-ECDSA AEAD suite is chosen. */
	assert_string_equal(tls_conn_cipher(p.c.t), "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256");
	assert_int_equal(tls_conn_peer_cn(p.s.t, cn, sizeof(cn)), 6);
	assert_string_equal(cn, "client");
	assert_int_equal(tls_conn_peer_cn(p.c.t, cn, sizeof(cn)), 6);
	assert_string_equal(cn, "server");
	assert_int_equal(tls_conn_peer_cn(p.c.t, cn, 4), 3);
	assert_string_equal(cn, "ser");
	assert_false(tls_conn_pending(p.c.t));
	pair_close(&p);
	tls_config_free(scfg);
	tls_config_free(ccfg);
}

static void
test_valid_dns_ipv6_and_server_name(void **state)
{
	struct tls_config *scfg = server_cfg("server", false);
	struct tls_config *ccfg = client_cfg(NULL, NULL);
	struct tls_config *named = client_cfg(NULL, "localhost");
	struct tls_config *wrong = server_cfg("server_wrongsan", false);
	struct tls_config *named2 = client_cfg(NULL, "example.com");
	struct tls_config *nosan = server_cfg("server_nosan", false);
	struct pair p;
	char cn[64];

	(void)state;
	pair_exchange(&p, scfg, ccfg, "localhost", false);
	/* No client certificate asked for, none shown. */
	assert_int_equal(tls_conn_peer_cn(p.s.t, cn, sizeof(cn)), -ERR_NOTFOUND);
	pair_close(&p);
	pair_exchange(&p, scfg, ccfg, "::1", false);
	pair_close(&p);
	/* The config's server name replaces the dialled host. */
	pair_exchange(&p, scfg, named, "127.0.0.9", false);
	pair_close(&p);
	pair_exchange(&p, wrong, named2, "127.0.0.1", false);
	pair_close(&p);
	/* Without a SAN extension the CN is the DNS name (as Go did for etcd 2). */
	pair_exchange(&p, nosan, ccfg, "localhost", false);
	pair_close(&p);
	/* A v4-mapped IPv6 SAN matches its IPv4 form, as net.IP.Equal has it. */
	tls_config_free(nosan);
	nosan = server_cfg("server_mapped", false);
	pair_exchange(&p, nosan, ccfg, "127.0.0.1", false);
	pair_close(&p);
	expect_refusal(nosan, ccfg, "127.0.0.2", -ERR_TLS, "x509: certificate is valid for 127.0.0.1, not 127.0.0.2",
		-ERR_TLS, "remote error: tls: bad certificate");
	tls_config_free(scfg);
	tls_config_free(ccfg);
	tls_config_free(named);
	tls_config_free(wrong);
	tls_config_free(named2);
	tls_config_free(nosan);
}

static void
test_rsa_and_intermediate(void **state)
{
	struct tls_config *rsa = server_cfg("server_rsa", true);
	struct tls_config *inter = server_cfg("server_inter_chain", false);
	struct tls_config *ccfg = client_cfg("client", NULL);
	struct pair p;

	(void)state;
	pair_exchange(&p, rsa, ccfg, "127.0.0.1", true);
	assert_string_equal(tls_conn_cipher(p.c.t), "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256");
	pair_close(&p);
	pair_exchange(&p, inter, ccfg, "localhost", true);
	pair_close(&p);
	tls_config_free(rsa);
	tls_config_free(inter);
	tls_config_free(ccfg);
}

/* ------------------------------------------------------------------ */
/* Refusals                                                            */
/* ------------------------------------------------------------------ */

static void
test_server_cert_refused(void **state)
{
	struct tls_config *ccfg = client_cfg(NULL, NULL);
	struct {
		const char *cert, *host, *c_msg, *s_msg;
	} cases[] = {
		{ "server_unknown", "127.0.0.1", "x509: certificate signed by unknown authority",
		  "remote error: tls: unknown certificate authority" },
		{ "server_expired", "127.0.0.1", "x509: certificate has expired or is not yet valid",
		  "remote error: tls: expired certificate" },
		/* mbedtls has no alert for "not yet valid" and sends certificate_unknown. */
		{ "server_future", "localhost", "x509: certificate has expired or is not yet valid",
		  "remote error: tls: unknown certificate" },
		{ "server_wrongsan", "127.0.0.1", "x509: certificate is valid for 127.0.0.2, not 127.0.0.1",
		  "remote error: tls: bad certificate" },
		{ "server_wrongsan", "::1", "x509: certificate is valid for 127.0.0.2, not ::1",
		  "remote error: tls: bad certificate" },
		{ "server_wrongsan", "localhost", "x509: certificate is valid for example.com, not localhost",
		  "remote error: tls: bad certificate" },
		{ "server", "127.0.0.3", "x509: certificate is valid for 127.0.0.1, ::1, not 127.0.0.3",
		  "remote error: tls: bad certificate" },
		{ "server", "corebox.invalid", "x509: certificate is valid for localhost, not corebox.invalid",
		  "remote error: tls: bad certificate" },
		{ "server_nosan", "127.0.0.1",
		  "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs",
		  "remote error: tls: bad certificate" },
		{ "server_nosan", "example.com", "x509: certificate is valid for localhost, not example.com",
		  "remote error: tls: bad certificate" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tls_config *scfg = server_cfg(cases[i].cert, false);

		expect_refusal(scfg, ccfg, cases[i].host, -ERR_TLS, cases[i].c_msg, -ERR_TLS, cases[i].s_msg);
		tls_config_free(scfg);
	}
	tls_config_free(ccfg);
}

static void
test_client_cert_auth(void **state)
{
	struct tls_config *scfg = server_cfg("server", true);
	struct tls_config *none = client_cfg(NULL, NULL);
	struct tls_config *expired = client_cfg("client_expired", NULL);
	struct tls_config *unknown = client_cfg("client_unknown", NULL);
	struct tls_config *good = client_cfg("client", NULL);
	struct pair p;

	(void)state;
	expect_refusal(scfg, none, "127.0.0.1", -ERR_TLS, "remote error: tls: bad certificate",
		-ERR_TLS, "tls: client didn't provide a certificate");
	expect_refusal(scfg, expired, "127.0.0.1", -ERR_TLS, "remote error: tls: expired certificate",
		-ERR_TLS, "tls: failed to verify client's certificate: x509: certificate has expired or is not yet valid");
	expect_refusal(scfg, unknown, "127.0.0.1", -ERR_TLS, "remote error: tls: unknown certificate authority",
		-ERR_TLS, "tls: failed to verify client's certificate: x509: certificate signed by unknown authority");
	/* A server certificate (serverAuth only) is no client certificate. */
	{
		char err[TLS_ERRMSG_MAX];
		struct tls_config *srvcert = tls_config_new_client(path("server.pem"), path("server.key"),
			path("ca.pem"), NULL, err);

		assert_non_null(srvcert);
		expect_refusal(scfg, srvcert, "127.0.0.1", -ERR_TLS, "remote error: tls: unsupported certificate",
			-ERR_TLS, "tls: failed to verify client's certificate: x509: certificate specifies an incompatible key usage");
		tls_config_free(srvcert);
	}
	pair_exchange(&p, scfg, good, "127.0.0.1", false);
	pair_close(&p);
	tls_config_free(scfg);
	tls_config_free(none);
	tls_config_free(expired);
	tls_config_free(unknown);
	tls_config_free(good);
}

/* ------------------------------------------------------------------ */
/* Timeouts, closes, garbage                                           */
/* ------------------------------------------------------------------ */

static bool
end_failed(void *arg)
{
	return ((struct end *)arg)->err != 0;
}

static void
test_handshake_timeout(void **state)
{
	struct tls_config *scfg = server_cfg("server", false);
	struct tls_config *ccfg = client_cfg(NULL, NULL);
	struct loop *l = loop_new();
	struct end e;
	uint64_t ms;
	char b[16];
	int sfd, cfd;

	(void)state;
	assert_non_null(l);
	/* A client that connects and says nothing loses its slot on time. */
	tls_config_set_handshake_timeout(scfg, 150);
	pair_fds(true, &sfd, &cfd);
	end_init(&e, l, scfg, sfd, NULL);
	end_pump(&e);
	ms = run_until(l, end_failed, &e, WAIT_MS_MAX);
	assert_int_equal(e.err, -ERR_TIMEOUT);
	assert_string_equal(tls_conn_errmsg(e.t), "net/http: TLS handshake timeout");
	assert_true(ms >= 100 && ms < 3000);
	/* The socket was shut down: the silent peer sees the end. */
	assert_int_equal(read(cfd, b, sizeof(b)), 0);
	end_close(&e);
	close(cfd);

	/* A server that accepts and never answers fails the client the same way. */
	tls_config_set_handshake_timeout(ccfg, 150);
	pair_fds(false, &sfd, &cfd);
	end_init(&e, l, ccfg, cfd, "127.0.0.1");
	end_pump(&e);
	ms = run_until(l, end_failed, &e, WAIT_MS_MAX);
	assert_int_equal(e.err, -ERR_TIMEOUT);
	assert_true(ms >= 100 && ms < 3000);
	/* The ClientHello went out before the silence. */
	assert_true(read(sfd, b, sizeof(b)) > 0);
	end_close(&e);
	close(sfd);

	/* A finished handshake is never timed out afterwards; 0 disables the timer. */
	{
		struct pair p;

		tls_config_set_handshake_timeout(scfg, 100);
		tls_config_set_handshake_timeout(ccfg, 0);
		pair_exchange(&p, scfg, ccfg, "127.0.0.1", false);
		ms = run_until(p.l, end_failed, &p.s, 300);
		assert_true(ms >= 300);
		assert_int_equal(p.s.err, 0);
		assert_int_equal(p.c.err, 0);
		buf_reset(&p.s.in);
		p.c.out = (const unsigned char *)"again";
		p.c.out_len = 5;
		p.c.sent = 0;
		end_pump(&p.c);
		run_until(p.l, pair_settled, &p, WAIT_MS_MAX);
		assert_int_equal(p.s.in.len, 5);
		assert_memory_equal(p.s.in.data, "again", 5);
		pair_close(&p);
	}
	/* Without a loop there is no timer at all. */
	{
		struct tls_conn *t;

		pair_fds(false, &sfd, &cfd);
		assert_int_equal(tls_conn_open(scfg, NULL, sfd, NULL, &t), 0);
		tls_conn_close(t, sfd);
		close(cfd);
	}
	loop_free(l);
	tls_config_free(scfg);
	tls_config_free(ccfg);
}

/* Run until the server has seen the client's first flight. */
static bool
fd_readable_peer_wrote(void *arg)
{
	struct pair *p = arg;
	char b;

	return recv(p->s.fd, &b, 1, MSG_PEEK) == 1;
}

static void
test_peer_closes_mid_handshake(void **state)
{
	struct tls_config *scfg = server_cfg("server", true);
	struct tls_config *ccfg = client_cfg("client", NULL);
	struct pair p;

	(void)state;
	/* The client sends its hello and goes away. */
	pair_open(&p, scfg, ccfg, "127.0.0.1", true);
	end_pump(&p.c);
	run_until(p.l, fd_readable_peer_wrote, &p, WAIT_MS_MAX);
	end_set_mask(&p.c, 0);
	tls_conn_close(p.c.t, p.c.fd);
	p.c.t = NULL;
	end_pump(&p.s);
	run_until(p.l, end_failed, &p.s, WAIT_MS_MAX);
	/* Depending on timing the server sees the end or a failed write of its reply. */
	assert_int_equal(p.s.err, -ERR_CLOSED);
	if (strcmp(tls_conn_errmsg(p.s.t), "EOF") != 0)
		assert_string_equal(tls_conn_errmsg(p.s.t), "write: broken pipe");
	end_close(&p.s);
	buf_free(&p.c.in);
	loop_free(p.l);

	/* The server reads the hello and goes away. */
	pair_open(&p, scfg, ccfg, "127.0.0.1", true);
	end_pump(&p.c);
	end_pump(&p.s);
	assert_int_equal(loop_run_once(p.l, 50), 0);
	end_set_mask(&p.s, 0);
	tls_conn_close(p.s.t, p.s.fd);
	p.s.t = NULL;
	run_until(p.l, end_failed, &p.c, WAIT_MS_MAX);
	assert_int_equal(p.c.err, -ERR_CLOSED);
	end_close(&p.c);
	buf_free(&p.s.in);
	loop_free(p.l);
	tls_config_free(scfg);
	tls_config_free(ccfg);
}

static void
test_garbage_from_client(void **state)
{
	struct tls_config *scfg = server_cfg("server", false);
	/* Plain HTTP, a hello too short, a record too long, a fatal alert. */
	static const struct {
		const char *p;
		size_t n;
		const char *msg;
	} inputs[] = {
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, NULL },
		{ "\x16\x03\x01\x00\x05hello", 10, NULL },
		{ "\x16\x03\x03\xff\xff", 5, NULL },
		{ "\x15\x03\x03\x00\x02\x02\x28", 7, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct loop *l = loop_new();
		struct end e;
		int sfd, cfd;

		pair_fds(false, &sfd, &cfd);
		end_init(&e, l, scfg, sfd, NULL);
		end_pump(&e);
		assert_int_equal(write(cfd, inputs[i].p, inputs[i].n), (ssize_t)inputs[i].n);
		shutdown(cfd, SHUT_WR);
		run_until(l, end_failed, &e, WAIT_MS_MAX);
		if (e.err != -ERR_TLS)
			fprintf(stderr, "input %zu: %d %s\n", i, e.err, tls_conn_errmsg(e.t));
		assert_int_equal(e.err, -ERR_TLS);
		if (inputs[i].msg != NULL)
			assert_string_equal(tls_conn_errmsg(e.t), inputs[i].msg);
		else
			assert_non_null(strstr(tls_conn_errmsg(e.t), "tls: handshake failed: "));
		end_close(&e);
		close(cfd);
		loop_free(l);
	}
	tls_config_free(scfg);
}

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

static void
fill_random(unsigned char *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(seed >> 16);
	}
}

static void
test_large_transfer(void **state)
{
	const size_t n = 8u << 20;
	unsigned char *a = malloc(n), *b = malloc(n);
	struct tls_config *scfg = server_cfg("server", true);
	struct tls_config *ccfg = client_cfg("client", NULL);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	fill_random(a, n, 1);
	fill_random(b, n, 2);
	for (int tcp = 0; tcp <= 1; tcp++) {
		struct pair p;

		pair_open(&p, scfg, ccfg, "127.0.0.1", tcp);
		/* Small reads on one side leave plaintext buffered between calls. */
		p.c.read_chunk = 1000;
		if (!tcp) {
			int sz = 4096;

			setsockopt(p.c.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
			setsockopt(p.s.fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		}
		pair_start(&p, a, n, b, n);
		run_until(p.l, pair_settled, &p, 60000);
		assert_int_equal(p.s.err, 0);
		assert_int_equal(p.c.err, 0);
		assert_int_equal(p.c.in.len, n);
		assert_int_equal(p.s.in.len, n);
		assert_true(memcmp(p.c.in.data, a, n) == 0);
		assert_true(memcmp(p.s.in.data, b, n) == 0);
		/* An orderly close reads as the end of the stream. */
		end_set_mask(&p.c, 0);
		tls_conn_close(p.c.t, p.c.fd);
		p.c.t = NULL;
		p.c.fd = -1;
		buf_free(&p.c.in);
		while (!p.s.eof && p.s.err == 0 && loop_run_once(p.l, 100) == 0 && !p.s.eof) {
		}
		assert_true(p.s.eof);
		assert_int_equal(p.s.err, 0);
		end_close(&p.s);
		loop_free(p.l);
	}
	free(a);
	free(b);
	tls_config_free(scfg);
	tls_config_free(ccfg);
}

static void
test_pending_and_write_retry(void **state)
{
	struct tls_config *scfg = server_cfg("server", false);
	struct tls_config *ccfg = client_cfg(NULL, NULL);
	static unsigned char big[1 << 20], got[1 << 20];
	size_t total = 0, rcvd = 0;
	struct pair p;
	ssize_t r;
	int want, sz = 4096;

	(void)state;
	fill_random(big, sizeof(big), 7);
	pair_exchange(&p, scfg, ccfg, "127.0.0.1", false);
	end_set_mask(&p.s, 0);
	end_set_mask(&p.c, 0);

	/* One 16000-byte record, read 100 bytes at a time: the rest waits inside the conn. */
	assert_int_equal(tls_conn_write(p.s.t, big, 16000, &want), 16000);
	assert_int_equal(tls_conn_read(p.c.t, got, 100, &want), 100);
	assert_true(tls_conn_pending(p.c.t));
	assert_int_equal(tls_conn_read(p.c.t, got + 100, sizeof(got) - 100, &want), 15900);
	assert_false(tls_conn_pending(p.c.t));
	assert_memory_equal(got, big, 16000);
	assert_int_equal(tls_conn_read(p.c.t, got, sizeof(got), &want), -ERR_AGAIN);
	assert_int_equal(want, LOOP_READ);

	/* Fill the socket with 1000-byte records until one is left half sent. */
	setsockopt(p.s.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(p.c.fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	for (;;) {
		r = tls_conn_write(p.s.t, big + total, 1000, &want);
		if (r == -ERR_AGAIN)
			break;
		assert_int_equal(r, 1000);
		total += (size_t)r;
		assert_true(total < sizeof(big) / 2);
	}
	assert_int_equal(want, LOOP_WRITE);
	/* Offering fewer bytes than the record already built is refused. */
	assert_int_equal(tls_conn_write(p.s.t, big + total, 10, &want), -ERR_INVAL);
	/* Drain, then offer more than before: only the built record is reported. */
	for (int i = 0; i < 1000; i++) {
		r = tls_conn_read(p.c.t, got + rcvd, sizeof(got) - rcvd, &want);
		if (r > 0)
			rcvd += (size_t)r;
		r = tls_conn_write(p.s.t, big + total, sizeof(big) - total, &want);
		if (r > 0) {
			assert_int_equal(r, 1000);
			total += (size_t)r;
			break;
		}
		assert_int_equal(r, -ERR_AGAIN);
	}
	for (int i = 0; i < 1000 && rcvd < total; i++) {
		r = tls_conn_read(p.c.t, got + rcvd, sizeof(got) - rcvd, &want);
		if (r > 0)
			rcvd += (size_t)r;
		else
			assert_int_equal(r, -ERR_AGAIN);
	}
	assert_int_equal(rcvd, total);
	assert_memory_equal(got, big, total);
	assert_int_equal(tls_conn_read(p.c.t, got, 0, &want), -ERR_INVAL);
	assert_int_equal(tls_conn_write(p.c.t, got, 0, &want), 0);
	pair_close(&p);
	tls_config_free(scfg);
	tls_config_free(ccfg);
}

/* ------------------------------------------------------------------ */
/* Configs                                                             */
/* ------------------------------------------------------------------ */

static void
expect_server_error(const char *cert, const char *key, const char *ca, bool auth, const char *msg)
{
	char err[TLS_ERRMSG_MAX];

	assert_null(tls_config_new_server(cert, key, ca, auth, err));
	if (strstr(err, msg) == NULL)
		fprintf(stderr, "got [%s], want [%s]\n", err, msg);
	assert_non_null(strstr(err, msg));
}

static void
test_config_errors(void **state)
{
	char err[TLS_ERRMSG_MAX];
	char want[TLS_ERRMSG_MAX];
	struct tls_config *cfg;
	struct tls_conn *t;
	int sv[2];

	(void)state;
	expect_server_error("/nonexistent/s.pem", path("server.key"), NULL, false,
		"open /nonexistent/s.pem: no such file or directory");
	expect_server_error(path("garbage.pem"), path("server.key"), NULL, false,
		"tls: failed to find any PEM data in certificate input");
	expect_server_error(path("empty.pem"), path("server.key"), NULL, false,
		"tls: failed to find any PEM data in certificate input");
	expect_server_error(path("server.key"), path("server.key"), NULL, false,
		"tls: failed to find any PEM data in certificate input");
	expect_server_error(dir, path("server.key"), NULL, false, "not a regular file");
	expect_server_error(path("server.pem"), path("client.key"), NULL, false,
		"tls: private key does not match public key");
	expect_server_error(path("server.pem"), path("encrypted.key"), NULL, false,
		"tls: encrypted private keys are not supported");
	expect_server_error(path("server.pem"), path("garbage.pem"), NULL, false,
		"tls: failed to parse private key");
	expect_server_error(path("server.pem"), path("server.key"), NULL, true,
		"tls: client certificate auth needs a trusted CA file");
	expect_server_error(path("server.pem"), path("server.key"), path("garbage.pem"), true,
		"tls: failed to find any PEM data in certificate input");
	expect_server_error(NULL, path("server.key"), NULL, false, "needs both a cert file and a key file");
	/* A certificate for clients only can never serve: refused at start-up. */
	expect_server_error(path("server_usage.pem"), path("server_usage.key"), NULL, false,
		"tls: certificate is not for server authentication (extended key usage)");
	/* NULL errmsg is allowed. */
	assert_null(tls_config_new_server(NULL, NULL, NULL, false, NULL));

	assert_null(tls_config_new_client(path("client.pem"), NULL, path("ca.pem"), NULL, err));
	assert_non_null(strstr(err, "needs both a cert file and a key file"));
	assert_null(tls_config_new_client(NULL, NULL, "/nonexistent/ca.pem", NULL, err));
	assert_string_equal(err, "open /nonexistent/ca.pem: no such file or directory");

	/* No CA file: $SSL_CERT_FILE (or the system bundle) is used. */
	setenv("SSL_CERT_FILE", path("ca.pem"), 1);
	cfg = tls_config_new_client(NULL, NULL, NULL, NULL, err);
	assert_non_null(cfg);
	{
		struct tls_config *scfg = server_cfg("server", false);
		struct pair p;

		pair_exchange(&p, scfg, cfg, "127.0.0.1", false);
		pair_close(&p);
		tls_config_free(scfg);
	}
	/* A client with no name to check refuses to start. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(tls_conn_open(cfg, NULL, sv[0], NULL, &t), -ERR_INVAL);
	assert_null(t);
	assert_int_equal(tls_conn_open(cfg, NULL, sv[0], "", &t), -ERR_INVAL);
	assert_int_equal(tls_conn_open(cfg, NULL, -1, "localhost", &t), -ERR_INVAL);
	tls_config_free(cfg);
	setenv("SSL_CERT_FILE", "/nonexistent/bundle.pem", 1);
	assert_null(tls_config_new_client(NULL, NULL, NULL, NULL, err));
	snprintf(want, sizeof(want), "open /nonexistent/bundle.pem: no such file or directory");
	assert_string_equal(err, want);
	unsetenv("SSL_CERT_FILE");
	close(sv[0]);
	close(sv[1]);
	tls_conn_close(NULL, -1);
	tls_config_free(NULL);
}

static void
test_alloc_failures(void **state)
{
	struct tls_config *cfg = NULL;
	struct tls_conn *t = NULL;
	char err[TLS_ERRMSG_MAX];
	int sv[2], rc = -1;
	long i;

	(void)state;
	for (i = 0; i < 100 && cfg == NULL; i++) {
		mem_fail_after(i);
		cfg = tls_config_new_server(path("server.pem"), path("server.key"), path("ca.pem"), true, err);
		mem_fail_reset();
		if (cfg == NULL)
			assert_true(strlen(err) > 0);
	}
	assert_non_null(cfg);
	assert_true(i > 1);
	for (i = 0; i < 100 && rc != 0; i++) {
		struct loop *l = loop_new();

		assert_non_null(l);
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
		mem_fail_after(i);
		rc = tls_conn_open(cfg, l, sv[0], NULL, &t);
		mem_fail_reset();
		if (rc == 0) {
			tls_conn_close(t, sv[0]);
		} else {
			assert_int_equal(rc, -ERR_NOMEM);
			close(sv[0]);
		}
		close(sv[1]);
		loop_free(l);
	}
	assert_int_equal(rc, 0);
	tls_config_free(cfg);
	cfg = NULL;
	for (i = 0; i < 100 && cfg == NULL; i++) {
		mem_fail_after(i);
		cfg = tls_config_new_client(path("client.pem"), path("client.key"), path("ca.pem"), "localhost", err);
		mem_fail_reset();
	}
	assert_non_null(cfg);
	tls_config_free(cfg);
}

/* The creator may drop its reference while conns still use the config. */
static void
test_config_outlives_free(void **state)
{
	struct tls_config *scfg = server_cfg("server", true);
	struct tls_config *ccfg = client_cfg("client", NULL);
	struct pair p;

	(void)state;
	pair_open(&p, scfg, ccfg, "localhost", false);
	tls_config_free(scfg);
	tls_config_free(ccfg);
	pair_start(&p, "pong", 4, "ping", 4);
	run_until(p.l, pair_settled, &p, WAIT_MS_MAX);
	assert_int_equal(p.s.err, 0);
	assert_int_equal(p.c.err, 0);
	assert_int_equal(p.s.in.len, 4);
	pair_close(&p);
}

/* ------------------------------------------------------------------ */
/* Interoperability with OpenSSL                                       */
/* ------------------------------------------------------------------ */

struct child {
	pid_t pid;
	int status;
	bool exited;
};

static void
on_child(struct loop *l, pid_t pid, int status, void *arg)
{
	struct child *ch = arg;

	(void)l;
	(void)pid;
	ch->status = status;
	ch->exited = true;
}

/* Starts argv with stdin from a pipe that gets `input` and EOF, output to out_file. */
static void
spawn(struct loop *l, struct child *ch, char *const argv[], const char *input, const char *out_file)
{
	int in[2];

	assert_int_equal(pipe(in), 0);
	memset(ch, 0, sizeof(*ch));
	ch->pid = fork();
	assert_true(ch->pid >= 0);
	if (ch->pid == 0) {
		int fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		loop_exec_prepare();
		dup2(in[0], 0);
		dup2(fd, 1);
		dup2(fd, 2);
		close(in[0]);
		close(in[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	if (input != NULL && write(in[1], input, strlen(input)) < 0)
		fail();
	close(in[1]);
	assert_int_equal(loop_child_add(l, ch->pid, on_child, ch), 0);
}

struct srv1 {
	struct loop *l;
	struct tls_config *cfg;
	int lfd;
	struct end e;
	bool accepted;
	struct child ch;
};

static void
srv1_accept(struct loop *l, int fd, void *arg)
{
	struct srv1 *s = arg;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (cfd < 0)
		return;
	loop_fd_del(l, fd, LOOP_READ);
	end_init(&s->e, l, s->cfg, cfd, NULL);
	s->accepted = true;
	end_pump(&s->e);
}

static bool
srv1_done(void *arg)
{
	struct srv1 *s = arg;

	return s->ch.exited && (!s->accepted || s->e.err != 0 || s->e.eof);
}

/*
 * Runs one `openssl s_client` (extra args appended) against a corebox
 * server; returns the server end's error (0 on success) and fills out with
 * what the server received. The child's output is in dir/sclient.out.
 */
static int
s_client_run(struct tls_config *cfg, const char *const *extra, size_t nextra, char *out, size_t cap,
	int *exit_status)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	struct srv1 s;
	char port[32];
	char *argv[32];
	size_t n = 0;
	int err;

	memset(&s, 0, sizeof(s));
	s.l = loop_new();
	s.cfg = cfg;
	s.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s.lfd, 4), 0);
	assert_int_equal(getsockname(s.lfd, (struct sockaddr *)&a, &al), 0);
	snprintf(port, sizeof(port), "127.0.0.1:%d", ntohs(a.sin_port));
	assert_int_equal(loop_fd_add(s.l, s.lfd, LOOP_READ, srv1_accept, &s), 0);
	argv[n++] = (char *)"openssl";
	argv[n++] = (char *)"s_client";
	argv[n++] = (char *)"-connect";
	argv[n++] = port;
	argv[n++] = (char *)"-CAfile";
	argv[n++] = (char *)path("ca.pem");
	argv[n++] = (char *)"-verify_return_error";
	for (size_t i = 0; i < nextra; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	spawn(s.l, &s.ch, argv, "hello\n", path("sclient.out"));
	run_until(s.l, srv1_done, &s, WAIT_MS_MAX);
	assert_true(s.ch.exited);
	*exit_status = WIFEXITED(s.ch.status) ? WEXITSTATUS(s.ch.status) : -1;
	err = s.accepted ? s.e.err : -ERR_CONNECT;
	snprintf(out, cap, "%.*s", s.accepted ? (int)s.e.in.len : 0, s.accepted ? s.e.in.data : "");
	if (s.accepted) {
		if (err != 0)
			snprintf(out, cap, "%s", tls_conn_errmsg(s.e.t));
		end_close(&s.e);
	}
	close(s.lfd);
	loop_free(s.l);
	return err;
}

static bool
file_has(const char *file, const char *needle)
{
	char b[16384];
	FILE *f = fopen(file, "r");
	size_t n;

	if (f == NULL)
		return false;
	n = fread(b, 1, sizeof(b) - 1, f);
	fclose(f);
	b[n] = '\0';
	return strstr(b, needle) != NULL;
}

static void
test_openssl_s_client(void **state)
{
	struct tls_config *auth = server_cfg("server", true);
	struct tls_config *plain = server_cfg("server", false);
	const char *const ok[] = { "-cert", path("client.pem"), "-key", path("client.key"),
		"-verify_ip", "127.0.0.1" };
	const char *const nocert[] = { "-verify_ip", "127.0.0.1" };
	const char *const tls11[] = { "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0" };
	const char *const cbc[] = { "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA" };
	const char *const noecdhe[] = { "-tls1_2", "-cipher", "AES128-GCM-SHA256:AES256-GCM-SHA384" };
	char sess_out[160], sess_in[160];
	const char *resume1[2], *resume2[2];
	char got[256];
	int st, err;

	(void)state;
	err = s_client_run(auth, ok, 6, got, sizeof(got), &st);
	if (err != 0 || st != 0) {
		fprintf(stderr, "server: %s\n", got);
		assert_true(system("cat /tmp/corebox-tls-*/sclient.out >&2") >= 0);
	}
	assert_int_equal(err, 0);
	assert_int_equal(st, 0);
	assert_string_equal(got, "hello\n");
	assert_true(file_has(path("sclient.out"), "Verification: OK") ||
		file_has(path("sclient.out"), "Verify return code: 0 (ok)"));

	/* Client-certificate auth refuses OpenSSL without a certificate too. */
	err = s_client_run(auth, nocert, 2, got, sizeof(got), &st);
	assert_int_equal(err, -ERR_TLS);
	assert_string_equal(got, "tls: client didn't provide a certificate");

	/* Old protocols and suites without ECDHE + AEAD are refused. */
	err = s_client_run(plain, tls11, 3, got, sizeof(got), &st);
	assert_int_equal(err, -ERR_TLS);
	assert_string_equal(got, "tls: unsupported protocol version (TLS 1.2 required)");
	assert_int_not_equal(st, 0);
	err = s_client_run(plain, cbc, 3, got, sizeof(got), &st);
	assert_int_equal(err, -ERR_TLS);
	assert_string_equal(got, "tls: no cipher suite supported by both client and server");
	assert_int_not_equal(st, 0);
	err = s_client_run(plain, noecdhe, 3, got, sizeof(got), &st);
	assert_int_equal(err, -ERR_TLS);
	assert_string_equal(got, "tls: no cipher suite supported by both client and server");

	/* Session tickets: a second connection resumes. */
	snprintf(sess_out, sizeof(sess_out), "%s", path("sess.pem"));
	snprintf(sess_in, sizeof(sess_in), "%s", path("sess.pem"));
	resume1[0] = "-sess_out";
	resume1[1] = sess_out;
	resume2[0] = "-sess_in";
	resume2[1] = sess_in;
	err = s_client_run(plain, resume1, 2, got, sizeof(got), &st);
	assert_int_equal(err, 0);
	assert_true(file_has(path("sclient.out"), "New, TLSv1.2"));
	err = s_client_run(plain, resume2, 2, got, sizeof(got), &st);
	assert_int_equal(err, 0);
	assert_string_equal(got, "hello\n");
	assert_true(file_has(path("sclient.out"), "Reused, TLSv1.2"));
	tls_config_free(auth);
	tls_config_free(plain);
}

/* Our client against `openssl s_server`: works on TLS 1.2, refused by a TLS 1.3-only server. */
static bool
end_done_or_failed(void *arg)
{
	struct end *e = arg;

	return e->err != 0 || e->eof;
}

static int
s_server_run(struct tls_config *ccfg, const char *name, const char *proto, char *out, size_t cap)
{
	char cert[128], key[128];
	struct loop *l = loop_new();
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	struct child ch;
	struct end e;
	char port[16];
	int fd, err, rc = -1;
	char *argv[] = { "openssl", "s_server", "-accept", port, "-naccept", "1", "-www",
		"-cert", cert, "-key", key, (char *)proto, NULL };

	snprintf(cert, sizeof(cert), "%s/%s.pem", dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", dir, name);

	/* A free port: bind to 0, note it, let go (s_server binds it next). */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	close(fd);
	snprintf(port, sizeof(port), "%d", ntohs(a.sin_port));
	spawn(l, &ch, argv, NULL, path("sserver.out"));
	for (int i = 0; i < 300 && rc != 0; i++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
		if (rc != 0) {
			close(fd);
			usleep(10000);
		}
	}
	assert_int_equal(rc, 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	end_init(&e, l, ccfg, fd, "127.0.0.1");
	e.out = (const unsigned char *)"GET / HTTP/1.0\r\n\r\n";
	e.out_len = strlen((const char *)e.out);
	end_pump(&e);
	run_until(l, end_done_or_failed, &e, WAIT_MS_MAX);
	err = e.err;
	snprintf(out, cap, "%s", err != 0 ? tls_conn_errmsg(e.t) : tls_conn_cipher(e.t));
	if (err == 0 && e.in.len < 12)
		err = -ERR_PARSE;
	if (err == 0 && memcmp(e.in.data, "HTTP/1.0 200", 12) != 0)
		err = -ERR_PARSE;
	end_close(&e);
	if (!ch.exited)
		kill(ch.pid, SIGTERM);
	while (!ch.exited)
		assert_int_equal(loop_run_once(l, 100), 0);
	loop_free(l);
	return err;
}

static void
test_openssl_s_server(void **state)
{
	struct tls_config *ccfg = client_cfg(NULL, NULL);
	char got[TLS_ERRMSG_MAX];

	(void)state;
	assert_int_equal(s_server_run(ccfg, "server", "-tls1_2", got, sizeof(got)), 0);
	assert_string_equal(got, "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256");
	/* mbedtls 2.28 speaks no TLS 1.3: a 1.3-only server is refused, not downgraded. */
	assert_int_equal(s_server_run(ccfg, "server", "-tls1_3", got, sizeof(got)), -ERR_TLS);
	assert_string_equal(got, "remote error: tls: protocol version not supported");
	/* A server certificate whose extended key usage is clientAuth only is refused. */
	assert_int_equal(s_server_run(ccfg, "server_usage", "-tls1_2", got, sizeof(got)), -ERR_TLS);
	assert_string_equal(got, "x509: certificate specifies an incompatible key usage");
	tls_config_free(ccfg);
}


/* ------------------------------------------------------------------ */
/* https through the HTTP server and client                            */
/* ------------------------------------------------------------------ */

#define BIG_BYTES (3u << 20)

struct web {
	struct loop *l;
	struct http_server *s;
	struct http_client *c;
	int port;
	unsigned char *big;
	int handled;
	char peer_cn[64];
	/* the last call */
	bool done;
	int err;
	int status;
	struct buf body;
	char errmsg[256];
};

static void
web_handler(struct http_req *req, void *arg)
{
	struct web *w = arg;

	w->handled++;
	if (strcmp(req->path, "/big") == 0) {
		http_resp_simple(req, 200, "application/octet-stream", w->big, BIG_BYTES);
	} else if (strcmp(req->path, "/echo") == 0) {
		http_resp_simple(req, 200, "application/octet-stream", req->body, req->body_len);
	} else if (strcmp(req->path, "/chunks") == 0) {
		http_resp_start(req, 200, NULL);
		http_resp_chunked(req);
		for (int i = 0; i < 50; i++)
			http_resp_chunk(req, w->big + i * 20000, 20000);
		http_resp_end(req);
	} else {
		http_resp_simple(req, 200, "text/plain", "hello\n", 6);
	}
}

static void
web_done(struct http_call *call, int err, const struct http_response *resp, void *arg)
{
	struct web *w = arg;

	w->done = true;
	w->err = err;
	w->status = resp != NULL ? resp->status : 0;
	buf_reset(&w->body);
	if (err == 0)
		assert_int_equal(buf_append(&w->body, resp->body, resp->body_len), 0);
	snprintf(w->errmsg, sizeof(w->errmsg), "%s", http_call_errmsg(call));
}

static bool
web_call_done(void *arg)
{
	return ((struct web *)arg)->done;
}

static int
web_call(struct web *w, const char *method, const char *url, const void *body, size_t n)
{
	struct http_call_spec sp;

	memset(&sp, 0, sizeof(sp));
	sp.method = method;
	sp.url = url;
	sp.body = body;
	sp.body_len = n;
	sp.timeout_ms = WAIT_MS_MAX;
	sp.on_done = web_done;
	sp.arg = w;
	w->done = false;
	w->err = 1;
	assert_int_equal(http_call_start(w->c, &sp, NULL), 0);
	run_until(w->l, web_call_done, w, WAIT_MS_MAX + 1000);
	assert_true(w->done);
	return w->err;
}

static void
web_open(struct web *w, struct tls_config *scfg, const struct http_limits *lim,
	struct tls_config *ccfg, size_t read_bytes_max)
{
	struct http_client_opts o;

	memset(w, 0, sizeof(*w));
	buf_init(&w->body);
	w->l = loop_new();
	assert_non_null(w->l);
	w->big = malloc(BIG_BYTES);
	assert_non_null(w->big);
	fill_random(w->big, BIG_BYTES, 11);
	w->s = http_server_new(w->l, lim, web_handler, w);
	assert_non_null(w->s);
	assert_int_equal(http_server_set_tls(w->s, scfg), 0);
	assert_int_equal(http_listen_url(w->s, "https://127.0.0.1:0", &w->port), 0);
	http_client_opts_default(&o);
	o.tls = ccfg;
	if (read_bytes_max)
		o.read_bytes_max = read_bytes_max;
	w->c = http_client_new(w->l, &o);
	assert_non_null(w->c);
}

static void
web_close(struct web *w)
{
	http_client_free(w->c);
	http_server_free(w->s);
	/* Closed connections are freed by the loop's next turns. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(loop_run_once(w->l, 0), 0);
	loop_free(w->l);
	buf_free(&w->body);
	free(w->big);
}

static void
test_https_server_and_client(void **state)
{
	struct tls_config *scfg = server_cfg("server", true);
	struct tls_config *ccfg = client_cfg("client", NULL);
	struct http_server_stats st;
	struct web w;
	char url[128];

	(void)state;
	web_open(&w, scfg, NULL, ccfg, 0);
	/* The server and client hold references of their own. */
	tls_config_free(scfg);
	tls_config_free(ccfg);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/hello", w.port);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), 0);
	assert_int_equal(w.status, 200);
	assert_int_equal(w.body.len, 6);
	assert_memory_equal(w.body.data, "hello\n", 6);
	/* Large bodies both ways on the same (pooled) connection. */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/big", w.port);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), 0);
	assert_int_equal(w.body.len, BIG_BYTES);
	assert_true(memcmp(w.body.data, w.big, BIG_BYTES) == 0);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/echo", w.port);
	assert_int_equal(web_call(&w, "PUT", url, w.big, 1u << 20), 0);
	assert_int_equal(w.body.len, 1u << 20);
	assert_true(memcmp(w.body.data, w.big, 1u << 20) == 0);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/chunks", w.port);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), 0);
	assert_int_equal(w.body.len, 50 * 20000);
	assert_true(memcmp(w.body.data, w.big, 50 * 20000) == 0);
	assert_int_equal(http_client_connects(w.c), 1);
	http_server_stats(w.s, &st);
	assert_int_equal(st.conns_accepted, 1);
	/* A new client config: the pooled connection, verified under the old one, is not reused. */
	ccfg = client_cfg("client", "localhost");
	assert_int_equal(http_client_set_tls(w.c, ccfg), 0);
	tls_config_free(ccfg);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/hello", w.port);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), 0);
	assert_int_equal(http_client_connects(w.c), 2);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), 0);
	assert_int_equal(http_client_connects(w.c), 2);
	web_close(&w);
}

/* Read budgets far below a TLS record leave plaintext inside the TLS layer on both sides. */
static void
test_https_small_reads(void **state)
{
	struct tls_config *scfg = server_cfg("server", false);
	struct tls_config *ccfg = client_cfg(NULL, NULL);
	struct http_limits lim;
	struct web w;
	char url[128];

	(void)state;
	memset(&lim, 0, sizeof(lim));
	lim.read_bytes_max = 700;
	web_open(&w, scfg, &lim, ccfg, 900);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/echo", w.port);
	assert_int_equal(web_call(&w, "POST", url, w.big, 300000), 0);
	assert_int_equal(w.body.len, 300000);
	assert_true(memcmp(w.body.data, w.big, 300000) == 0);
	/* A small request in one record, answered from bytes the fd never announced. */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/hello", w.port);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), 0);
	assert_int_equal(w.body.len, 6);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/big", w.port);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), 0);
	assert_int_equal(w.body.len, BIG_BYTES);
	assert_true(memcmp(w.body.data, w.big, BIG_BYTES) == 0);
	assert_int_equal(http_client_connects(w.c), 1);
	web_close(&w);
	tls_config_free(scfg);
	tls_config_free(ccfg);
}

static void
test_https_refusals(void **state)
{
	struct tls_config *scfg = server_cfg("server", true);
	struct tls_config *good = client_cfg("client", NULL);
	struct tls_config *nocert = client_cfg(NULL, NULL);
	struct tls_config *named = client_cfg("client", "example.com");
	char err[TLS_ERRMSG_MAX], url[128], logbuf[4096];
	struct tls_config *other_ca = tls_config_new_client(path("client.pem"), path("client.key"),
		path("ca2.pem"), NULL, err);
	FILE *logf = tmpfile();
	struct web w;
	size_t n;

	(void)state;
	assert_non_null(other_ca);
	assert_non_null(logf);
	log_set_output(logf);
	web_open(&w, scfg, NULL, other_ca, 0);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/hello", w.port);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), -ERR_TLS);
	assert_string_equal(w.errmsg, "x509: certificate signed by unknown authority");
	/* The config's server name is what the certificate must match. */
	assert_int_equal(http_client_set_tls(w.c, named), 0);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), -ERR_TLS);
	assert_string_equal(w.errmsg, "x509: certificate is valid for localhost, not example.com");
	/* No client certificate for a server that wants one. */
	assert_int_equal(http_client_set_tls(w.c, nocert), 0);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), -ERR_TLS);
	assert_string_equal(w.errmsg, "remote error: tls: bad certificate");
	/* Nothing reached the handler; then the right config works on the same client. */
	assert_int_equal(w.handled, 0);
	assert_int_equal(http_client_set_tls(w.c, good), 0);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), 0);
	assert_int_equal(w.handled, 1);
	/* Plain http to an https listener: the server sees no TLS and closes. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hello", w.port);
	assert_true(web_call(&w, "GET", url, NULL, 0) < 0);
	/* Without a config https is refused before anything is sent. */
	assert_int_equal(http_client_set_tls(w.c, NULL), 0);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/hello", w.port);
	{
		struct http_call_spec sp = { .method = "GET", .url = url, .on_done = web_done, .arg = &w };

		assert_int_equal(http_call_start(w.c, &sp, NULL), -ERR_UNSUPPORTED);
		assert_non_null(strstr(http_client_errmsg(w.c), "https is not supported without a TLS config"));
	}
	/* Configs of the wrong side are refused. */
	assert_int_equal(http_client_set_tls(w.c, scfg), -ERR_INVAL);
	assert_int_equal(http_server_set_tls(w.s, good), -ERR_INVAL);
	web_close(&w);
	/* The server logged each refused handshake with the client's address. */
	log_set_output(NULL);
	fflush(logf);
	rewind(logf);
	n = fread(logbuf, 1, sizeof(logbuf) - 1, logf);
	logbuf[n] = '\0';
	fclose(logf);
	assert_non_null(strstr(logbuf, "msg=\"TLS error\" transport=tls remote=127.0.0.1:"));
	assert_non_null(strstr(logbuf, "err=\"tls: client didn't provide a certificate\""));
	assert_non_null(strstr(logbuf, "err=\"remote error: tls: unknown certificate authority\""));
	{
		struct http_client_opts o;

		http_client_opts_default(&o);
		o.tls = scfg;
		assert_null(http_client_new(w.l = loop_new(), &o));
		loop_free(w.l);
	}
	tls_config_free(scfg);
	tls_config_free(good);
	tls_config_free(nocert);
	tls_config_free(named);
	tls_config_free(other_ca);
}

static void
test_https_localhost_ipv6_and_fetch(void **state)
{
	struct tls_config *scfg = server_cfg("server", false);
	struct tls_config *ccfg = client_cfg(NULL, NULL);
	struct http_result res;
	struct http_call_spec sp;
	struct http_sync *sync;
	struct web w;
	char url[128];
	int port = 0;

	(void)state;
	web_open(&w, scfg, NULL, ccfg, 0);
	/* https://localhost listens on 127.0.0.1 (and ::1 when there is IPv6). */
	assert_int_equal(http_listen_url(w.s, "https://localhost:0", &port), 0);
	snprintf(url, sizeof(url), "https://localhost:%d/hello", port);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), 0);
	assert_int_equal(w.status, 200);
	if (http_listen_url(w.s, "https://[::1]:0", &port) == 0) {
		snprintf(url, sizeof(url), "https://[::1]:%d/hello", port);
		assert_int_equal(web_call(&w, "GET", url, NULL, 0), 0);
		assert_int_equal(w.status, 200);
	}
	/* A plain listener on the same server stays plain. */
	assert_int_equal(http_listen_url(w.s, "http://127.0.0.1:0", &port), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hello", port);
	assert_int_equal(web_call(&w, "GET", url, NULL, 0), 0);
	assert_int_equal(w.body.len, 6);

	/* The blocking wrapper the CLIs use: it runs its own loop, so the server
	 * is moved to a child process here. */
	{
		pid_t pid;
		int st;

		snprintf(url, sizeof(url), "https://127.0.0.1:%d/hello", w.port);
		w.handled = 0;
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			uint64_t start = time_mono_ms();

			while (w.handled < 2 && time_mono_ms() - start < WAIT_MS_MAX)
				loop_run_once(w.l, 50);
			/* Let the last answer drain. */
			for (int i = 0; i < 10; i++)
				loop_run_once(w.l, 10);
			_exit(w.handled >= 2 ? 0 : 1);
		}
		sync = http_sync_new();
		assert_non_null(sync);
		memset(&sp, 0, sizeof(sp));
		sp.method = "GET";
		sp.url = url;
		sp.timeout_ms = WAIT_MS_MAX;
		/* No TLS config yet: refused with a clear message. */
		assert_int_equal(http_fetch(sync, &sp, &res), -ERR_UNSUPPORTED);
		assert_non_null(strstr(res.errmsg, "https is not supported without a TLS config"));
		http_result_free(&res);
		assert_int_equal(http_sync_set_tls(sync, ccfg), 0);
		if (http_fetch(sync, &sp, &res) != 0)
			fprintf(stderr, "fetch: %s\n", res.errmsg);
		assert_int_equal(res.errmsg[0], '\0');
		assert_int_equal(res.status, 200);
		assert_string_equal(res.body, "hello\n");
		http_result_free(&res);
		assert_int_equal(http_fetch(sync, &sp, &res), 0);
		http_result_free(&res);
		http_sync_free(sync);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	web_close(&w);
	tls_config_free(scfg);
	tls_config_free(ccfg);
}

static bool
raw_closed(void *arg)
{
	int fd = *(int *)arg;
	char b[8];
	ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);

	return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* A client that connects to an https listener and says nothing loses its slot. */
static void
test_https_handshake_timeout(void **state)
{
	struct tls_config *scfg = server_cfg("server", false);
	struct tls_config *ccfg = client_cfg(NULL, NULL);
	struct http_server_stats st;
	struct sockaddr_in a;
	struct web w;
	FILE *logf = tmpfile();
	char logbuf[2048];
	uint64_t ms;
	size_t n;
	int fd;

	(void)state;
	assert_non_null(logf);
	log_set_output(logf);
	tls_config_set_handshake_timeout(scfg, 200);
	web_open(&w, scfg, NULL, ccfg, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)w.port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(loop_run_once(w.l, 50), 0);
	http_server_stats(w.s, &st);
	assert_int_equal(st.conns_open, 1);
	ms = run_until(w.l, raw_closed, &fd, WAIT_MS_MAX);
	assert_true(ms < 3000);
	assert_true(raw_closed(&fd));
	close(fd);
	/* The server closes its side on the next turns. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(loop_run_once(w.l, 10), 0);
	http_server_stats(w.s, &st);
	assert_int_equal(st.conns_open, 0);
	web_close(&w);
	log_set_output(NULL);
	rewind(logf);
	n = fread(logbuf, 1, sizeof(logbuf) - 1, logf);
	logbuf[n] = '\0';
	fclose(logf);
	assert_non_null(strstr(logbuf, "err=\"net/http: TLS handshake timeout\""));
	tls_config_free(scfg);
	tls_config_free(ccfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_chain_ip_and_client_cert),
		cmocka_unit_test(test_valid_dns_ipv6_and_server_name),
		cmocka_unit_test(test_rsa_and_intermediate),
		cmocka_unit_test(test_server_cert_refused),
		cmocka_unit_test(test_client_cert_auth),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_peer_closes_mid_handshake),
		cmocka_unit_test(test_garbage_from_client),
		cmocka_unit_test(test_large_transfer),
		cmocka_unit_test(test_pending_and_write_retry),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_config_outlives_free),
		cmocka_unit_test(test_openssl_s_client),
		cmocka_unit_test(test_openssl_s_server),
		cmocka_unit_test(test_https_server_and_client),
		cmocka_unit_test(test_https_small_reads),
		cmocka_unit_test(test_https_refusals),
		cmocka_unit_test(test_https_localhost_ipv6_and_fetch),
		cmocka_unit_test(test_https_handshake_timeout),
	};

	return cmocka_run_group_tests(tests, gen_certs, rm_certs);
}
