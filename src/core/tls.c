/*
 * tls: TLS 1.2 connections on mbedtls 2.28, for the HTTP server and client
 * (and anything else that moves bytes over a non-blocking fd on the loop).
 *
 * A config holds what every connection of one role shares: the mbedtls
 * config, the certificate chain and key, the CA, one entropy source and
 * CTR-DRBG, and (servers) the session ticket keys. A conn is one mbedtls
 * context whose I/O callbacks use the fd directly, so the owner only sees
 * read/write calls that return -ERR_AGAIN with the readiness to wait for.
 *
 * It must never block, never accept a peer that failed verification (no
 * "optional" verification modes are offered), never offer anything older
 * than TLS 1.2 or a suite without ECDHE and an AEAD, and never free or close
 * anything its owner still holds: a handshake timeout only shuts the socket
 * down and lets the owner's normal error path close it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

#include "corebox/err.h"
#include "corebox/http.h"
#include "corebox/loop.h"
#include "corebox/mem.h"
#include "corebox/tls.h"

/* Where distributions keep the CA bundle (the list Go's crypto/x509 tries). */
static const char *const system_ca_files[] = {
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
};

/* ECDHE with an AEAD only, strongest-and-fastest first (as Go orders them). */
static const int suites[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	0,
};

static const mbedtls_ecp_group_id groups[] = {
	MBEDTLS_ECP_DP_CURVE25519,
	MBEDTLS_ECP_DP_SECP256R1,
	MBEDTLS_ECP_DP_SECP384R1,
	MBEDTLS_ECP_DP_SECP521R1,
	MBEDTLS_ECP_DP_NONE,
};

/* No SHA-1 (or older) in handshake signatures. */
static const int sig_hashes[] = {
	MBEDTLS_MD_SHA256,
	MBEDTLS_MD_SHA384,
	MBEDTLS_MD_SHA512,
	MBEDTLS_MD_NONE,
};

static const char drbg_personalization[] = "corebox tls drbg";

struct tls_config {
	int refs;                   /* the creator's, plus one per open conn */
	bool server;
	bool client_cert_auth;
	uint64_t handshake_ms;
	char *server_name;          /* client: overrides the dialled host */
	mbedtls_ssl_config conf;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt ca;
	mbedtls_x509_crt crt;
	mbedtls_pk_context key;
	mbedtls_ssl_ticket_context ticket;
};

struct tls_conn {
	struct tls_config *cfg;
	struct loop *loop;
	int fd;
	mbedtls_ssl_context ssl;
	uint64_t timer;             /* handshake deadline, 0 when none */
	int err;                    /* sticky failure (-ERR_xxx), 0 while none */
	int io_errno;               /* errno of the last failed recv/send */
	size_t wpend;               /* length of a record built but not yet sent */
	bool hs_done;
	bool eof;
	char *name;                 /* client: the name or IP the leaf must match */
	unsigned char ip[16];       /* name as an address, when it is an IP literal */
	size_t ip_len;              /* 4, 16, or 0 for a DNS name */
	char hostmsg[192];          /* Go's words for a host mismatch, from the callback */
	char errmsg[TLS_ERRMSG_MAX];
};

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

static void
set_msg(char *errmsg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_msg(char *errmsg, const char *fmt, ...)
{
	va_list ap;

	if (errmsg == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(errmsg, TLS_ERRMSG_MAX, fmt, ap);
	va_end(ap);
}

/* strerror in Go's lower-case wording ("no such file or directory"). */
static void
errno_text(int e, char *out, size_t cap)
{
	snprintf(out, cap, "%s", strerror(e));
	if (out[0] != '\0' && isupper((unsigned char)out[0]) &&
	    !(out[1] != '\0' && isupper((unsigned char)out[1])))
		out[0] = (char)tolower((unsigned char)out[0]);
}

static void
mbed_text(int ret, char *out, size_t cap)
{
	mbedtls_strerror(ret, out, cap);
}

/*
 * Copies peer-chosen bytes (certificate names) into out for a message,
 * replacing anything that is not printable ASCII. Returns the length.
 */
static size_t
copy_printable(char *out, size_t cap, const unsigned char *p, size_t n)
{
	size_t i;

	if (cap == 0)
		return 0;
	if (n > cap - 1)
		n = cap - 1;
	for (i = 0; i < n; i++)
		out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	out[n] = '\0';
	return n;
}

/* Go's names for TLS alerts (crypto/tls alert.go). */
static const char *
alert_text(unsigned a)
{
	switch (a) {
	case MBEDTLS_SSL_ALERT_MSG_CLOSE_NOTIFY: return "close notify";
	case MBEDTLS_SSL_ALERT_MSG_UNEXPECTED_MESSAGE: return "unexpected message";
	case MBEDTLS_SSL_ALERT_MSG_BAD_RECORD_MAC: return "bad record MAC";
	case MBEDTLS_SSL_ALERT_MSG_DECRYPTION_FAILED: return "decryption failed";
	case MBEDTLS_SSL_ALERT_MSG_RECORD_OVERFLOW: return "record overflow";
	case MBEDTLS_SSL_ALERT_MSG_DECOMPRESSION_FAILURE: return "decompression failure";
	case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE: return "handshake failure";
	case MBEDTLS_SSL_ALERT_MSG_BAD_CERT: return "bad certificate";
	case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT: return "unsupported certificate";
	case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED: return "revoked certificate";
	case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED: return "expired certificate";
	case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN: return "unknown certificate";
	case MBEDTLS_SSL_ALERT_MSG_ILLEGAL_PARAMETER: return "illegal parameter";
	case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA: return "unknown certificate authority";
	case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED: return "access denied";
	case MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR: return "error decoding message";
	case MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR: return "error decrypting message";
	case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION: return "protocol version not supported";
	case MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY: return "insufficient security level";
	case MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR: return "internal error";
	case MBEDTLS_SSL_ALERT_MSG_INAPROPRIATE_FALLBACK: return "inappropriate fallback";
	case MBEDTLS_SSL_ALERT_MSG_USER_CANCELED: return "user canceled";
	case MBEDTLS_SSL_ALERT_MSG_NO_RENEGOTIATION: return "no renegotiation";
	case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_EXT: return "unsupported extension";
	case MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME: return "unrecognized name";
	case MBEDTLS_SSL_ALERT_MSG_NO_APPLICATION_PROTOCOL: return "no application protocol";
	default: return NULL;
	}
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

/*
 * Reads a whole file (at most TLS_FILE_BYTES_MAX) into a NUL-terminated
 * buffer the caller frees with free_file. what names the file in messages.
 */
static int
load_file(const char *path, unsigned char **data, size_t *len, char *errmsg)
{
	struct stat st;
	unsigned char *p;
	size_t got = 0;
	char et[128];
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errno_text(errno, et, sizeof(et));
		set_msg(errmsg, "open %s: %s", path, et);
		return -ERR_IO;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		set_msg(errmsg, "read %s: not a regular file", path);
		close(fd);
		return -ERR_INVAL;
	}
	if ((uint64_t)st.st_size > TLS_FILE_BYTES_MAX) {
		set_msg(errmsg, "read %s: larger than %u bytes", path, TLS_FILE_BYTES_MAX);
		close(fd);
		return -ERR_LIMIT;
	}
	p = mem_alloc((size_t)st.st_size + 1);
	if (p == NULL) {
		set_msg(errmsg, "read %s: out of memory", path);
		close(fd);
		return -ERR_NOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			errno_text(errno, et, sizeof(et));
			set_msg(errmsg, "read %s: %s", path, et);
			mem_free(p);
			close(fd);
			return -ERR_IO;
		}
		if (r == 0)
			break; /* shrank while we read: take what is there */
		got += (size_t)r;
	}
	close(fd);
	p[got] = '\0';
	*data = p;
	*len = got;
	return 0;
}

/* Key material is wiped before the memory goes back. */
static void
free_file(unsigned char *data, size_t len)
{
	if (data == NULL)
		return;
	mbedtls_platform_zeroize(data, len + 1);
	mem_free(data);
}

/* PEM input goes to mbedtls with its NUL, DER without. */
static size_t
parse_len(const unsigned char *data, size_t len)
{
	return strstr((const char *)data, "-----BEGIN ") != NULL ? len + 1 : len;
}

/*
 * Parses a certificate file into chain. With need_all every certificate in
 * it must parse (our own chain); otherwise one is enough (a CA bundle may
 * hold certificates mbedtls does not understand).
 */
static int
load_certs(mbedtls_x509_crt *chain, const char *path, bool need_all, char *errmsg)
{
	unsigned char *data;
	size_t len;
	char mt[128];
	int rc, ret;

	rc = load_file(path, &data, &len, errmsg);
	if (rc < 0)
		return rc;
	/* DER starts with a SEQUENCE (0x30); anything else must hold a PEM certificate. */
	if (len == 0 || (data[0] != 0x30 && strstr((const char *)data, "-----BEGIN CERTIFICATE-----") == NULL)) {
		set_msg(errmsg, "%s: tls: failed to find any PEM data in certificate input", path);
		free_file(data, len);
		return -ERR_PARSE;
	}
	ret = mbedtls_x509_crt_parse(chain, data, parse_len(data, len));
	free_file(data, len);
	if (ret == MBEDTLS_ERR_X509_ALLOC_FAILED || ret == MBEDTLS_ERR_PEM_ALLOC_FAILED) {
		set_msg(errmsg, "%s: out of memory", path);
		return -ERR_NOMEM;
	}
	if (ret < 0 || (ret > 0 && need_all) || chain->version == 0) {
		if (ret < 0)
			mbed_text(ret, mt, sizeof(mt));
		else
			snprintf(mt, sizeof(mt), "%d certificate(s) did not parse", ret);
		set_msg(errmsg, "%s: tls: failed to parse certificate: %s", path, mt);
		return -ERR_PARSE;
	}
	return 0;
}

static int
load_key(mbedtls_pk_context *key, const char *path, char *errmsg)
{
	unsigned char *data;
	size_t len;
	char mt[128];
	int rc, ret;

	rc = load_file(path, &data, &len, errmsg);
	if (rc < 0)
		return rc;
	if (len == 0) {
		set_msg(errmsg, "%s: tls: failed to find any PEM data in key input", path);
		free_file(data, len);
		return -ERR_PARSE;
	}
	ret = mbedtls_pk_parse_key(key, data, parse_len(data, len), NULL, 0);
	free_file(data, len);
	if (ret == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || ret == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
		set_msg(errmsg, "%s: tls: encrypted private keys are not supported", path);
		return -ERR_UNSUPPORTED;
	}
	if (ret == MBEDTLS_ERR_PK_ALLOC_FAILED) {
		set_msg(errmsg, "%s: out of memory", path);
		return -ERR_NOMEM;
	}
	if (ret != 0) {
		mbed_text(ret, mt, sizeof(mt));
		set_msg(errmsg, "%s: tls: failed to parse private key: %s", path, mt);
		return -ERR_PARSE;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Config                                                              */
/* ------------------------------------------------------------------ */

static void
config_unref(struct tls_config *cfg)
{
	if (cfg == NULL || --cfg->refs > 0)
		return;
	mbedtls_ssl_config_free(&cfg->conf);
	mbedtls_ssl_ticket_free(&cfg->ticket);
	mbedtls_x509_crt_free(&cfg->ca);
	mbedtls_x509_crt_free(&cfg->crt);
	mbedtls_pk_free(&cfg->key);
	mbedtls_ctr_drbg_free(&cfg->drbg);
	mbedtls_entropy_free(&cfg->entropy);
	mem_free(cfg->server_name);
	mem_free(cfg);
}

static struct tls_config *
config_alloc(bool server, char *errmsg)
{
	struct tls_config *cfg;
	char mt[128];
	int ret;

	cfg = mem_calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		set_msg(errmsg, "tls: out of memory");
		return NULL;
	}
	cfg->refs = 1;
	cfg->server = server;
	cfg->handshake_ms = TLS_HANDSHAKE_MS_DEFAULT;
	mbedtls_ssl_config_init(&cfg->conf);
	mbedtls_ssl_ticket_init(&cfg->ticket);
	mbedtls_x509_crt_init(&cfg->ca);
	mbedtls_x509_crt_init(&cfg->crt);
	mbedtls_pk_init(&cfg->key);
	mbedtls_entropy_init(&cfg->entropy);
	mbedtls_ctr_drbg_init(&cfg->drbg);
	/* One seeded generator per config: connections draw from it. */
	ret = mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy,
		(const unsigned char *)drbg_personalization, sizeof(drbg_personalization) - 1);
	if (ret == 0)
		ret = mbedtls_ssl_config_defaults(&cfg->conf,
			server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
			MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret != 0) {
		mbed_text(ret, mt, sizeof(mt));
		set_msg(errmsg, "tls: set-up failed: %s", mt);
		config_unref(cfg);
		return NULL;
	}
	mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &cfg->drbg);
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(&cfg->conf, suites);
	mbedtls_ssl_conf_curves(&cfg->conf, groups);
	mbedtls_ssl_conf_sig_hashes(&cfg->conf, sig_hashes);
	mbedtls_ssl_conf_renegotiation(&cfg->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	return cfg;
}

static int
config_own_cert(struct tls_config *cfg, const char *cert_file, const char *key_file, char *errmsg)
{
	char mt[128];
	int rc, ret;

	rc = load_certs(&cfg->crt, cert_file, true, errmsg);
	if (rc < 0)
		return rc;
	rc = load_key(&cfg->key, key_file, errmsg);
	if (rc < 0)
		return rc;
	if (mbedtls_pk_check_pair(&cfg->crt.pk, &cfg->key) != 0) {
		set_msg(errmsg, "tls: private key does not match public key");
		return -ERR_INVAL;
	}
	ret = mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->crt, &cfg->key);
	if (ret != 0) {
		mbed_text(ret, mt, sizeof(mt));
		set_msg(errmsg, "tls: %s", mt);
		return ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ERR_NOMEM : -ERR_TLS;
	}
	return 0;
}

struct tls_config *
tls_config_new_server(const char *cert_file, const char *key_file, const char *trusted_ca_file,
	bool client_cert_auth, char *errmsg)
{
	struct tls_config *cfg;
	char mt[128];
	int ret;

	set_msg(errmsg, "%s", "");
	if (cert_file == NULL || *cert_file == '\0' || key_file == NULL || *key_file == '\0') {
		set_msg(errmsg, "tls: a server needs both a cert file and a key file");
		return NULL;
	}
	if (client_cert_auth && (trusted_ca_file == NULL || *trusted_ca_file == '\0')) {
		set_msg(errmsg, "tls: client certificate auth needs a trusted CA file");
		return NULL;
	}
	cfg = config_alloc(true, errmsg);
	if (cfg == NULL)
		return NULL;
	cfg->client_cert_auth = client_cert_auth;
	if (config_own_cert(cfg, cert_file, key_file, errmsg) < 0)
		goto fail;
	/*
	 * mbedtls would refuse every handshake with such a certificate (and so
	 * would every client): say so at start-up instead. Client certificates
	 * are not checked, as servers without client auth never look at them.
	 */
	if (mbedtls_x509_crt_check_extended_key_usage(&cfg->crt, MBEDTLS_OID_SERVER_AUTH,
		MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0) {
		set_msg(errmsg, "%s: tls: certificate is not for server authentication (extended key usage)",
			cert_file);
		goto fail;
	}
	if (mbedtls_x509_crt_check_key_usage(&cfg->crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0) {
		set_msg(errmsg, "%s: tls: certificate key usage does not allow digital signatures", cert_file);
		goto fail;
	}
	if (client_cert_auth) {
		if (load_certs(&cfg->ca, trusted_ca_file, false, errmsg) < 0)
			goto fail;
		mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
		mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	} else {
		mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_NONE);
	}
	/* Tickets keep no per-client state on the server, so resumption costs nothing to offer. */
	ret = mbedtls_ssl_ticket_setup(&cfg->ticket, mbedtls_ctr_drbg_random, &cfg->drbg,
		MBEDTLS_CIPHER_AES_256_GCM, TLS_TICKET_LIFETIME_S);
	if (ret != 0) {
		mbed_text(ret, mt, sizeof(mt));
		set_msg(errmsg, "tls: session tickets: %s", mt);
		goto fail;
	}
	mbedtls_ssl_conf_session_tickets_cb(&cfg->conf, mbedtls_ssl_ticket_write,
		mbedtls_ssl_ticket_parse, &cfg->ticket);
	return cfg;
fail:
	config_unref(cfg);
	return NULL;
}

/* The CA bundle a client uses when none is given: $SSL_CERT_FILE, else the first that exists. */
static int
load_system_ca(mbedtls_x509_crt *ca, char *errmsg)
{
	const char *env = getenv("SSL_CERT_FILE");
	size_t i;

	if (env != NULL && *env != '\0')
		return load_certs(ca, env, false, errmsg);
	for (i = 0; i < sizeof(system_ca_files) / sizeof(system_ca_files[0]); i++) {
		if (access(system_ca_files[i], R_OK) == 0)
			return load_certs(ca, system_ca_files[i], false, errmsg);
	}
	set_msg(errmsg, "tls: no CA file given and no system CA bundle found");
	return -ERR_NOTFOUND;
}

struct tls_config *
tls_config_new_client(const char *cert_file, const char *key_file, const char *ca_file,
	const char *server_name, char *errmsg)
{
	struct tls_config *cfg;
	bool has_cert = cert_file != NULL && *cert_file != '\0';
	bool has_key = key_file != NULL && *key_file != '\0';

	set_msg(errmsg, "%s", "");
	if (has_cert != has_key) {
		set_msg(errmsg, "tls: a client certificate needs both a cert file and a key file");
		return NULL;
	}
	if (server_name != NULL && strlen(server_name) > 255) {
		set_msg(errmsg, "tls: server name longer than 255 bytes");
		return NULL;
	}
	cfg = config_alloc(false, errmsg);
	if (cfg == NULL)
		return NULL;
	if (server_name != NULL && *server_name != '\0') {
		cfg->server_name = mem_strdup(server_name);
		if (cfg->server_name == NULL) {
			set_msg(errmsg, "tls: out of memory");
			goto fail;
		}
	}
	if (has_cert && config_own_cert(cfg, cert_file, key_file, errmsg) < 0)
		goto fail;
	if (ca_file != NULL && *ca_file != '\0') {
		if (load_certs(&cfg->ca, ca_file, false, errmsg) < 0)
			goto fail;
	} else if (load_system_ca(&cfg->ca, errmsg) < 0) {
		goto fail;
	}
	mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
	mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	/* The client keeps no sessions, so tickets would only cost bytes. */
	mbedtls_ssl_conf_session_tickets(&cfg->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
	return cfg;
fail:
	config_unref(cfg);
	return NULL;
}

struct tls_config *
tls_config_ref(struct tls_config *cfg)
{
	cfg->refs++;
	return cfg;
}

void
tls_config_free(struct tls_config *cfg)
{
	config_unref(cfg);
}

void
tls_config_set_handshake_timeout(struct tls_config *cfg, uint64_t handshake_ms)
{
	cfg->handshake_ms = handshake_ms;
}

bool
tls_config_is_server(const struct tls_config *cfg)
{
	return cfg->server;
}

/* ------------------------------------------------------------------ */
/* Verification                                                        */
/* ------------------------------------------------------------------ */

/* The context-specific tags of GeneralName choices in a SAN sequence. */
static bool
san_is(const mbedtls_x509_buf *b, int type)
{
	return (b->tag & MBEDTLS_ASN1_TAG_CLASS_MASK) == MBEDTLS_ASN1_CONTEXT_SPECIFIC &&
		(b->tag & MBEDTLS_ASN1_TAG_VALUE_MASK) == type;
}

static const unsigned char v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Address equality as Go's net.IP.Equal: a v4-mapped v6 address equals its v4 form. */
static bool
ip_equal(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	if (alen == blen)
		return memcmp(a, b, alen) == 0;
	if (alen == 16 && blen == 4)
		return memcmp(a, v4_mapped_prefix, 12) == 0 && memcmp(a + 12, b, 4) == 0;
	if (alen == 4 && blen == 16)
		return ip_equal(b, blen, a, alen);
	return false;
}

/*
 * mbedtls 2.28 matches the host only against dNSName SANs and the CN, so an
 * IP literal is checked here against the raw iPAddress entries.
 */
static bool
crt_has_ip(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t ip_len)
{
	const mbedtls_x509_sequence *cur;

	if (!(crt->ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME))
		return false;
	for (cur = &crt->subject_alt_names; cur != NULL; cur = cur->next) {
		if (cur->buf.p == NULL || !san_is(&cur->buf, MBEDTLS_X509_SAN_IP_ADDRESS))
			continue;
		if ((cur->buf.len == 4 || cur->buf.len == 16) &&
		    ip_equal(cur->buf.p, cur->buf.len, ip, ip_len))
			return true;
	}
	return false;
}

/* Appends ", " and s to out (cap bytes) while it fits. */
static void
list_add(char *out, size_t cap, const char *s)
{
	size_t used = strlen(out);

	snprintf(out + used, cap - used, "%s%s", used > 0 ? ", " : "", s);
}

static int
crt_cn(const mbedtls_x509_crt *crt, char *out, size_t cap)
{
	const mbedtls_x509_name *name;

	for (name = &crt->subject; name != NULL; name = name->next) {
		if (name->oid.p != NULL && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &name->oid) == 0)
			return (int)copy_printable(out, cap, name->val.p, name->val.len);
	}
	if (cap > 0)
		out[0] = '\0';
	return -ERR_NOTFOUND;
}

/* Go's x509.HostnameError text for the leaf. */
static void
hostname_message(struct tls_conn *t, const mbedtls_x509_crt *crt, char *out, size_t cap)
{
	const mbedtls_x509_sequence *cur;
	char valid[160] = "";
	char one[INET6_ADDRSTRLEN + 1];
	bool has_san = (crt->ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME) != 0;

	for (cur = has_san ? &crt->subject_alt_names : NULL; cur != NULL; cur = cur->next) {
		if (cur->buf.p == NULL)
			continue;
		if (t->ip_len > 0 && san_is(&cur->buf, MBEDTLS_X509_SAN_IP_ADDRESS)) {
			if (cur->buf.len == 4)
				inet_ntop(AF_INET, cur->buf.p, one, sizeof(one));
			else if (cur->buf.len == 16 && memcmp(cur->buf.p, v4_mapped_prefix, 12) == 0)
				inet_ntop(AF_INET, cur->buf.p + 12, one, sizeof(one));
			else if (cur->buf.len == 16)
				inet_ntop(AF_INET6, cur->buf.p, one, sizeof(one));
			else
				continue;
			list_add(valid, sizeof(valid), one);
		} else if (t->ip_len == 0 && san_is(&cur->buf, MBEDTLS_X509_SAN_DNS_NAME)) {
			char dns[128];

			copy_printable(dns, sizeof(dns), cur->buf.p, cur->buf.len);
			list_add(valid, sizeof(valid), dns);
		}
	}
	if (t->ip_len > 0 && valid[0] == '\0') {
		snprintf(out, cap, "x509: cannot validate certificate for %s because it doesn't contain any IP SANs",
			t->name);
		return;
	}
	if (valid[0] == '\0')
		crt_cn(crt, valid, sizeof(valid));
	snprintf(out, cap, "x509: certificate is valid for %s, not %s", valid, t->name);
}

/*
 * Called by mbedtls for each certificate of the chain, top first, the leaf
 * (depth 0) last. Adds the IP check on the leaf, and words a host name
 * mismatch while the leaf is at hand (mbedtls frees a refused chain).
 */
static int
verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct tls_conn *t = arg;

	if (depth != 0)
		return 0;
	if (!t->cfg->server && t->ip_len > 0 && !crt_has_ip(crt, t->ip, t->ip_len))
		*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
	if (*flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
		hostname_message(t, crt, t->hostmsg, sizeof(t->hostmsg));
	return 0;
}

/*
 * Words a verification failure the way Go would, from the flags of the
 * whole chain (usage flags are added by mbedtls after the callback), taking
 * the first of Go's checks that fails: validity, host name, authority, usage.
 */
static void
verify_message(struct tls_conn *t, char *out, size_t cap)
{
	const char *prefix = t->cfg->server ? "tls: failed to verify client's certificate: " : "";
	uint32_t f = mbedtls_ssl_get_verify_result(&t->ssl);
	char info[160];
	size_t n;

	if (f == 0 || f == (uint32_t)-1) {
		snprintf(out, cap, "%sx509: certificate verification failed", prefix);
	} else if (f & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE)) {
		snprintf(out, cap, "%sx509: certificate has expired or is not yet valid", prefix);
	} else if ((f & MBEDTLS_X509_BADCERT_CN_MISMATCH) && t->hostmsg[0] != '\0') {
		snprintf(out, cap, "%s%s", prefix, t->hostmsg);
	} else if (f & MBEDTLS_X509_BADCERT_NOT_TRUSTED) {
		snprintf(out, cap, "%sx509: certificate signed by unknown authority", prefix);
	} else if (f & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
			MBEDTLS_X509_BADCERT_NS_CERT_TYPE)) {
		snprintf(out, cap, "%sx509: certificate specifies an incompatible key usage", prefix);
	} else {
		if (mbedtls_x509_crt_verify_info(info, sizeof(info), "", f) < 0)
			snprintf(info, sizeof(info), "verification failed (flags 0x%x)", (unsigned)f);
		n = strcspn(info, "\n");
		info[n] = '\0';
		snprintf(out, cap, "%sx509: %s", prefix, info);
	}
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

static int
bio_send(void *arg, const unsigned char *p, size_t n)
{
	struct tls_conn *t = arg;
	ssize_t r;

	do
		r = send(t->fd, p, n, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r >= 0)
		return (int)r;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	t->io_errno = errno;
	return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int
bio_recv(void *arg, unsigned char *p, size_t n)
{
	struct tls_conn *t = arg;
	ssize_t r;

	do
		r = recv(t->fd, p, n, 0);
	while (r < 0 && errno == EINTR);
	if (r >= 0)
		return (int)r;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return MBEDTLS_ERR_SSL_WANT_READ;
	t->io_errno = errno;
	return MBEDTLS_ERR_NET_RECV_FAILED;
}

/* Records the first failure; later ones keep it. Returns t->err. */
static int
conn_fail(struct tls_conn *t, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
conn_fail(struct tls_conn *t, int err, const char *fmt, ...)
{
	va_list ap;

	if (t->err != 0)
		return t->err;
	t->err = err;
	va_start(ap, fmt);
	vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
	va_end(ap);
	if (t->timer != 0) {
		loop_timer_del(t->loop, t->timer);
		t->timer = 0;
	}
	return err;
}

/* Turns an mbedtls error into a sticky -ERR_xxx with a message. */
static int
conn_fail_mbed(struct tls_conn *t, int ret)
{
	char mt[128], mt2[TLS_ERRMSG_MAX];
	uint32_t vr;
	const char *a;

	switch (ret) {
	case MBEDTLS_ERR_NET_RECV_FAILED:
	case MBEDTLS_ERR_NET_SEND_FAILED:
		errno_text(t->io_errno, mt, sizeof(mt));
		if (t->io_errno == ECONNRESET || t->io_errno == EPIPE)
			return conn_fail(t, -ERR_CLOSED, "%s: %s",
				ret == MBEDTLS_ERR_NET_RECV_FAILED ? "read" : "write", mt);
		return conn_fail(t, -ERR_IO, "%s: %s",
			ret == MBEDTLS_ERR_NET_RECV_FAILED ? "read" : "write", mt);
	case MBEDTLS_ERR_SSL_CONN_EOF:
	case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
		return conn_fail(t, -ERR_CLOSED, "EOF");
	case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
		a = t->ssl.in_msg != NULL ? alert_text(t->ssl.in_msg[1]) : NULL;
		if (a != NULL)
			return conn_fail(t, -ERR_TLS, "remote error: tls: %s", a);
		return conn_fail(t, -ERR_TLS, "remote error: tls: alert(%u)",
			t->ssl.in_msg != NULL ? (unsigned)t->ssl.in_msg[1] : 0u);
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
	case MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE:
		vr = mbedtls_ssl_get_verify_result(&t->ssl);
		/* Without verification flags it was a malformed message, not a refused certificate. */
		if (ret == MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE && (vr == 0 || vr == (uint32_t)-1))
			break;
		verify_message(t, mt2, sizeof(mt2));
		return conn_fail(t, -ERR_TLS, "%s", mt2);
	case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
		/* mbedtls sends no alert here; Go answers bad_certificate. */
		mbedtls_ssl_send_alert_message(&t->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
			MBEDTLS_SSL_ALERT_MSG_BAD_CERT);
		return conn_fail(t, -ERR_TLS, "tls: client didn't provide a certificate");
	case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
		return conn_fail(t, -ERR_TLS, "tls: unsupported protocol version (TLS 1.2 required)");
	case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
	case MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE:
		return conn_fail(t, -ERR_TLS, "tls: no cipher suite supported by both client and server");
	case MBEDTLS_ERR_SSL_ALLOC_FAILED:
		return conn_fail(t, -ERR_NOMEM, "tls: out of memory");
	default:
		break;
	}
	mbed_text(ret, mt, sizeof(mt));
	return conn_fail(t, -ERR_TLS, "tls: %s%s", t->hs_done ? "" : "handshake failed: ", mt);
}

/*
 * The deadline only marks the conn and shuts the socket down: the owner's
 * handlers see the hang-up and its next read or write returns -ERR_TIMEOUT,
 * so the owner closes the conn on its usual path.
 */
static int64_t
handshake_timeout_fn(struct loop *l, uint64_t id, void *arg)
{
	struct tls_conn *t = arg;

	(void)l;
	(void)id;
	t->timer = 0;
	if (!t->hs_done && t->err == 0) {
		conn_fail(t, -ERR_TIMEOUT, "net/http: TLS handshake timeout");
		shutdown(t->fd, SHUT_RDWR);
	}
	return LOOP_TIMER_DONE;
}

static int
want_of(int ret, int *want)
{
	if (want != NULL)
		*want = ret == MBEDTLS_ERR_SSL_WANT_WRITE ? LOOP_WRITE : LOOP_READ;
	return -ERR_AGAIN;
}

static bool
is_want(int ret)
{
	return ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE;
}

/* 0 when the session is up; else -ERR_AGAIN (with *want) or the failure. */
static int
conn_ready(struct tls_conn *t, int *want)
{
	int ret;

	if (t->err != 0)
		return t->err;
	if (t->hs_done)
		return 0;
	ret = mbedtls_ssl_handshake(&t->ssl);
	if (is_want(ret))
		return want_of(ret, want);
	if (ret != 0)
		return conn_fail_mbed(t, ret);
	t->hs_done = true;
	if (t->timer != 0) {
		loop_timer_del(t->loop, t->timer);
		t->timer = 0;
	}
	return 0;
}

int
tls_conn_open(struct tls_config *cfg, struct loop *l, int fd, const char *host, struct tls_conn **out)
{
	struct tls_conn *t;
	const char *name = NULL;
	int ret;

	if (cfg == NULL || fd < 0 || out == NULL)
		return -ERR_INVAL;
	*out = NULL;
	if (!cfg->server) {
		name = cfg->server_name != NULL ? cfg->server_name : host;
		/* Go refuses too: "either ServerName or InsecureSkipVerify must be specified". */
		if (name == NULL || *name == '\0' || strlen(name) > 255)
			return -ERR_INVAL;
	}
	t = mem_calloc(1, sizeof(*t));
	if (t == NULL)
		return -ERR_NOMEM;
	t->cfg = cfg;
	t->loop = l;
	t->fd = fd;
	mbedtls_ssl_init(&t->ssl);
	if (name != NULL) {
		t->name = mem_strdup(name);
		if (t->name == NULL) {
			mbedtls_ssl_free(&t->ssl);
			mem_free(t);
			return -ERR_NOMEM;
		}
	}
	ret = mbedtls_ssl_setup(&t->ssl, &cfg->conf);
	if (ret == 0 && name != NULL) {
		if (inet_pton(AF_INET, name, t->ip) == 1) {
			t->ip_len = 4;
		} else if (inet_pton(AF_INET6, name, t->ip) == 1) {
			t->ip_len = 16;
		} else {
			/* A DNS name: sent as SNI and matched by mbedtls. IPs get neither. */
			ret = mbedtls_ssl_set_hostname(&t->ssl, name);
		}
	}
	if (ret != 0) {
		mbedtls_ssl_free(&t->ssl);
		mem_free(t->name);
		mem_free(t);
		return ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ERR_NOMEM : -ERR_TLS;
	}
	mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
	mbedtls_ssl_set_verify(&t->ssl, verify_cb, t);
	if (l != NULL && cfg->handshake_ms > 0) {
		t->timer = loop_timer_add(l, cfg->handshake_ms, handshake_timeout_fn, t);
		if (t->timer == 0) {
			mbedtls_ssl_free(&t->ssl);
			mem_free(t->name);
			mem_free(t);
			return -ERR_NOMEM;
		}
	}
	cfg->refs++;
	*out = t;
	return 0;
}

ssize_t
tls_conn_read(struct tls_conn *t, void *p, size_t n, int *want)
{
	unsigned char *dst = p;
	size_t got = 0;
	int ret;

	if (n == 0)
		return -ERR_INVAL;
	ret = conn_ready(t, want);
	if (ret != 0)
		return ret;
	if (t->eof)
		return 0;
	while (got < n) {
		ret = mbedtls_ssl_read(&t->ssl, dst + got, n - got);
		if (ret > 0) {
			got += (size_t)ret;
			continue;
		}
		if (is_want(ret)) {
			if (got > 0)
				break;
			return want_of(ret, want);
		}
		if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
			/* A transport EOF without close_notify ends the stream too, as in
			 * Go; HTTP framing catches a truncated message. */
			t->eof = true;
			break;
		}
		/* Bytes already read go up first; the failure is returned next time. */
		conn_fail_mbed(t, ret);
		if (got > 0)
			break;
		return t->err;
	}
	return (ssize_t)got;
}

ssize_t
tls_conn_write(struct tls_conn *t, const void *p, size_t n, int *want)
{
	size_t len;
	int ret;

	ret = conn_ready(t, want);
	if (ret != 0)
		return ret;
	if (n == 0)
		return 0;
	if (t->wpend > 0) {
		/* mbedtls already holds a record of these bytes: finish sending it. */
		if (n < t->wpend)
			return -ERR_INVAL;
		len = t->wpend;
	} else {
		/*
		 * Output left over from something else (an alert) must go first:
		 * mbedtls would otherwise take this call as the retry of that
		 * output and report p as sent without sending it.
		 */
		if (t->ssl.out_left != 0) {
			ret = mbedtls_ssl_write(&t->ssl, p, 0);
			if (is_want(ret))
				return want_of(ret, want);
			if (ret < 0)
				return conn_fail_mbed(t, ret);
		}
		ret = mbedtls_ssl_get_max_out_record_payload(&t->ssl);
		if (ret <= 0)
			return conn_fail_mbed(t, ret);
		len = n < (size_t)ret ? n : (size_t)ret;
	}
	ret = mbedtls_ssl_write(&t->ssl, p, len);
	if (ret >= 0) {
		t->wpend = 0;
		return ret;
	}
	if (is_want(ret)) {
		t->wpend = len;
		return want_of(ret, want);
	}
	return conn_fail_mbed(t, ret);
}

bool
tls_conn_pending(const struct tls_conn *t)
{
	return t->err == 0 && t->hs_done && !t->eof && mbedtls_ssl_get_bytes_avail(&t->ssl) > 0;
}

void
tls_conn_close(struct tls_conn *t, int fd)
{
	if (t != NULL) {
		/* A courtesy: never waits, and a failed send changes nothing. */
		if (t->hs_done && t->err == 0)
			mbedtls_ssl_close_notify(&t->ssl);
		if (t->timer != 0)
			loop_timer_del(t->loop, t->timer);
		mbedtls_ssl_free(&t->ssl);
		config_unref(t->cfg);
		mem_free(t->name);
		mem_free(t);
	}
	if (fd >= 0)
		close(fd);
}

const char *
tls_conn_errmsg(const struct tls_conn *t)
{
	return t->errmsg;
}

bool
tls_conn_handshake_done(const struct tls_conn *t)
{
	return t->hs_done;
}

const char *
tls_conn_version(const struct tls_conn *t)
{
	return t->hs_done ? mbedtls_ssl_get_version(&t->ssl) : "";
}

const char *
tls_conn_cipher(const struct tls_conn *t)
{
	const char *s = t->hs_done ? mbedtls_ssl_get_ciphersuite(&t->ssl) : NULL;

	return s != NULL ? s : "";
}

int
tls_conn_peer_cn(const struct tls_conn *t, char *out, size_t cap)
{
	const mbedtls_x509_crt *crt = t->hs_done ? mbedtls_ssl_get_peer_cert(&t->ssl) : NULL;

	if (cap > 0)
		out[0] = '\0';
	if (crt == NULL)
		return -ERR_NOTFOUND;
	return crt_cn(crt, out, cap);
}

/* ------------------------------------------------------------------ */
/* HTTP transport                                                      */
/* ------------------------------------------------------------------ */

static int
tp_open(void *targ, struct loop *l, int fd, const char *host, void **ctx)
{
	struct tls_conn *t = NULL;
	int rc = tls_conn_open(targ, l, fd, host, &t);

	*ctx = t;
	return rc;
}

static ssize_t
tp_read(void *ctx, int fd, void *p, size_t n, int *want)
{
	(void)fd;
	return tls_conn_read(ctx, p, n, want);
}

static ssize_t
tp_write(void *ctx, int fd, const void *p, size_t n, int *want)
{
	(void)fd;
	return tls_conn_write(ctx, p, n, want);
}

static void
tp_close(void *ctx, int fd)
{
	tls_conn_close(ctx, fd);
}

static bool
tp_pending(void *ctx)
{
	return tls_conn_pending(ctx);
}

static const char *
tp_errmsg(void *ctx)
{
	return ctx != NULL ? tls_conn_errmsg(ctx) : "";
}

const struct http_transport tls_http_transport = {
	.name = "tls",
	.open = tp_open,
	.read = tp_read,
	.write = tp_write,
	.close = tp_close,
	.pending = tp_pending,
	.errmsg = tp_errmsg,
};
