/*
 * tls: TLS for corebox connections, on mbedtls 2.28, driven by the shared
 * loop without ever blocking.
 *
 * Protocol: TLS 1.2 only. mbedtls 2.28 has no production TLS 1.3 (its 1.3
 * code is an experimental prototype, not compiled in), and 1.0/1.1 are
 * refused. Cipher suites: ECDHE key exchange with AES-GCM or
 * ChaCha20-Poly1305 only (ECDSA or RSA certificates); groups X25519, P-256,
 * P-384, P-521. Renegotiation is off.
 *
 * Verification: the peer's chain must lead to the configured CA (client: the
 * CA file, or the system bundle; server with client_cert_auth: the trusted
 * CA file), every certificate must be inside its validity dates, key usage
 * and extended key usage must allow the role, and on the client the leaf
 * must match the host: DNS names through mbedtls, IP literals against the
 * certificate's iPAddress SANs (checked here, as mbedtls 2.28 cannot).
 * A server with client_cert_auth refuses a client without a valid
 * certificate during the handshake.
 *
 * A connection is a struct tls_conn on a non-blocking fd. tls_conn_read and
 * tls_conn_write run the handshake first, so an owner just reads and writes
 * and waits for the readiness *want names. A handshake that does not finish
 * within the config's handshake timeout is failed: the conn shuts the socket
 * down (the fd stays open), which wakes the owner's fd handlers, and its
 * next read or write returns -ERR_TIMEOUT.
 *
 * Errors are 0 or -ERR_xxx. A failed conn keeps a message worded like Go's
 * crypto/tls and crypto/x509 ("x509: certificate signed by unknown
 * authority"), so corebox prints what the original tools print.
 *
 * Memory: a conn holds mbedtls' two record buffers (16.7 KiB each), its
 * context, and the handshake state until the handshake ends.
 *
 * Single-threaded: a config and its conns are used from one loop's thread.
 */
#ifndef COREBOX_TLS_H
#define COREBOX_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct http_transport;
struct loop;
struct tls_config;
struct tls_conn;

/* Room for an error message written by this module, NUL included. */
#define TLS_ERRMSG_MAX 256
/* Default handshake timeout (Go's http.Transport TLSHandshakeTimeout). */
#define TLS_HANDSHAKE_MS_DEFAULT 10000
/* Certificate, key and CA files larger than this are refused. */
#define TLS_FILE_BYTES_MAX (4u << 20)
/* Lifetime of a server's session tickets (and of its ticket keys), seconds. */
#define TLS_TICKET_LIFETIME_S 3600

/*
 * Server config: cert_file is a PEM chain (leaf first), key_file its PEM
 * private key (RSA or EC, PKCS#1, SEC1 or PKCS#8, unencrypted). With
 * client_cert_auth, clients must present a certificate that chains to
 * trusted_ca_file (required then; ignored otherwise). The certificate must
 * allow server authentication (extended key usage serverAuth, key usage
 * digitalSignature, where those extensions are present): mbedtls would fail
 * every handshake otherwise, so that is refused here. Session tickets are
 * issued so clients can resume.
 *
 * Returns NULL on failure, with the reason in errmsg (TLS_ERRMSG_MAX bytes,
 * may be NULL): "open /x/server.crt: no such file or directory",
 * "tls: private key does not match public key", ... The paths are only read
 * during the call.
 */
struct tls_config *tls_config_new_server(const char *cert_file, const char *key_file,
	const char *trusted_ca_file, bool client_cert_auth, char *errmsg);
/*
 * Client config: cert_file/key_file (both or neither) are the certificate
 * shown to servers that ask for one. ca_file is the CA the server's chain
 * must lead to; NULL means the system bundle ($SSL_CERT_FILE, else the
 * usual distribution paths). server_name, if not NULL, is the name the
 * server's certificate must match instead of the host each connection is
 * opened for (Go's tls.Config.ServerName); it is copied. Returns NULL on
 * failure with errmsg as above.
 */
struct tls_config *tls_config_new_client(const char *cert_file, const char *key_file,
	const char *ca_file, const char *server_name, char *errmsg);
/* Takes another reference (dropped with tls_config_free); returns cfg. */
struct tls_config *tls_config_ref(struct tls_config *cfg);
/*
 * Drops the caller's reference. Open conns keep their config alive, so this
 * may be called while they still run; the config is freed with the last one.
 * NULL is ignored.
 */
void tls_config_free(struct tls_config *cfg);
/* 0 disables the timeout. Applies to conns opened afterwards. */
void tls_config_set_handshake_timeout(struct tls_config *cfg, uint64_t handshake_ms);
bool tls_config_is_server(const struct tls_config *cfg);

/*
 * Starts TLS on fd (connected or accepted, non-blocking); nothing is sent
 * before the first read or write. The conn does not own fd until
 * tls_conn_close. host (client configs only; copied) is the name or IP
 * literal dialled ("127.0.0.1", "::1" without brackets, "localhost"); the
 * config's server_name replaces it when set. l (may be NULL: no handshake
 * timeout) must outlive the conn. Returns 0 with *out set, -ERR_INVAL (a
 * client without any name to verify), -ERR_NOMEM or -ERR_TLS.
 */
int tls_conn_open(struct tls_config *cfg, struct loop *l, int fd, const char *host, struct tls_conn **out);
/*
 * Reads decrypted bytes into p (n > 0), running the handshake first if it is
 * not done. Returns the count; 0 at the end of the stream (the peer's
 * close_notify, or the transport closed after the handshake); -ERR_AGAIN
 * with *want = LOOP_READ or LOOP_WRITE; -ERR_TLS (handshake or protocol
 * failure: see tls_conn_errmsg), -ERR_TIMEOUT (handshake timeout),
 * -ERR_CLOSED (the peer went away, during the handshake too), -ERR_IO,
 * -ERR_INVAL (n == 0). A failure is sticky: later calls return it again.
 * Reads as many records as fit in n; bytes of a record that did not fit stay
 * buffered inside the conn (see tls_conn_pending).
 */
ssize_t tls_conn_read(struct tls_conn *t, void *p, size_t n, int *want);
/*
 * Encrypts and sends up to n bytes from p (one record, at most 16 KiB, per
 * call). Returns the count taken, or an error as tls_conn_read. After
 * -ERR_AGAIN once the handshake is done, a record may already be built from
 * the first bytes of p: the next call must offer the same bytes again (p may
 * move, n may grow but not shrink), as an output buffer that is consumed
 * only by what write returned does; otherwise it fails with -ERR_INVAL.
 */
ssize_t tls_conn_write(struct tls_conn *t, const void *p, size_t n, int *want);
/*
 * Decrypted bytes are buffered inside the conn: a read would return data
 * without waiting for the fd. An owner that stops reading before -ERR_AGAIN
 * must check this, since the fd will not become readable for them.
 */
bool tls_conn_pending(const struct tls_conn *t);
/*
 * Sends close_notify if the session is up (best effort, never waits), closes
 * fd if fd >= 0 and frees the conn. NULL t is ignored (fd is still closed).
 */
void tls_conn_close(struct tls_conn *t, int fd);

/* Why the conn failed ("" while it has not). Owned by the conn. */
const char *tls_conn_errmsg(const struct tls_conn *t);
bool tls_conn_handshake_done(const struct tls_conn *t);
/* "TLSv1.2" and "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256" once the handshake is done, else "". Static. */
const char *tls_conn_version(const struct tls_conn *t);
const char *tls_conn_cipher(const struct tls_conn *t);
/*
 * The verified peer certificate's subject common name into out (cap bytes,
 * NUL-terminated, cut to fit). Returns its length, or -ERR_NOTFOUND (no
 * peer certificate, or no CN).
 */
int tls_conn_peer_cn(const struct tls_conn *t, char *out, size_t cap);

/*
 * The HTTP transport (corebox/http.h) over these conns: targ is the struct
 * tls_config *, open gets the host to verify (client) or NULL (server).
 * http_server_set_tls and http_client_opts.tls use it; nothing else needs to.
 */
extern const struct http_transport tls_http_transport;

#endif
