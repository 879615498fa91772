/*
 * reverse-mcp-bridge: TLS with OpenSSL.
 *
 * Owns: the client SSL_CTX (TLS 1.2+, peer verification against the system
 * CAs or --ca-file unless --insecure, the client certificate and key for
 * mTLS, ALPN http/1.1), the per-connection SSL (SNI for host names, host
 * name or IP address verification), the non-blocking handshake, reads and
 * writes with their WANT_READ / WANT_WRITE poll directions, and turning
 * OpenSSL's error queue and the verification result into one log message.
 */


#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "bridge.h"


static const u_char  rmb_alpn[] = "\x08http/1.1";


/* the reasons in OpenSSL's error queue, "a: b", emptying it */

void
rmb_tls_errors(char *out, size_t size)
{
    size_t          n;
    const char     *r;
    unsigned long   e;

    n = 0;
    out[0] = '\0';

    while ((e = ERR_get_error()) != 0) {
        r = ERR_reason_error_string(e);

        if (r == NULL || n + 3 >= size) {
            continue;
        }

        if (n && strstr(out, r) != NULL) {
            continue;
        }

        n += (size_t) snprintf(out + n, size - n, "%s%s", n ? ": " : "", r);

        if (n >= size) {
            n = size - 1;
        }
    }
}


static void
rmb_tls_fail(char *err, size_t errlen, const char *what)
{
    char  reasons[256];

    rmb_tls_errors(reasons, sizeof(reasons));

    (void) snprintf(err, errlen, "%s%s%s", what, reasons[0] ? ": " : "",
                    reasons);
}


SSL_CTX *
rmb_tls_ctx(rmb_opts_t *o, char *err, size_t errlen)
{
    char      buf[RMB_ERRLEN];
    SSL_CTX  *ctx;

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        rmb_tls_fail(err, errlen, "SSL_CTX_new() failed");
        return NULL;
    }

    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        rmb_tls_fail(err, errlen, "SSL_CTX_set_min_proto_version() failed");
        goto failed;
    }

    (void) SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                                 | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    (void) SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
#ifdef SSL_OP_NO_RENEGOTIATION
    (void) SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
#endif

    if (o->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

        if (o->ca_file) {
            if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
                (void) snprintf(buf, sizeof(buf), "cannot load --ca-file "
                                "\"%s\"", o->ca_file);
                rmb_tls_fail(err, errlen, buf);
                goto failed;
            }

        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            rmb_tls_fail(err, errlen, "cannot load the system CA "
                         "certificates");
            goto failed;
        }
    }

    if (o->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
            (void) snprintf(buf, sizeof(buf), "cannot load --cert \"%s\"",
                            o->cert_file);
            rmb_tls_fail(err, errlen, buf);
            goto failed;
        }

        if (SSL_CTX_use_PrivateKey_file(ctx,
                                        o->key_file ? o->key_file
                                                    : o->cert_file,
                                        SSL_FILETYPE_PEM)
            != 1)
        {
            (void) snprintf(buf, sizeof(buf), "cannot load --key \"%s\"",
                            o->key_file ? o->key_file : o->cert_file);
            rmb_tls_fail(err, errlen, buf);
            goto failed;
        }

        if (SSL_CTX_check_private_key(ctx) != 1) {
            rmb_tls_fail(err, errlen, "--key does not match --cert");
            goto failed;
        }
    }

    if (SSL_CTX_set_alpn_protos(ctx, rmb_alpn, sizeof(rmb_alpn) - 1) != 0) {
        rmb_tls_fail(err, errlen, "SSL_CTX_set_alpn_protos() failed");
        goto failed;
    }

    return ctx;

failed:

    SSL_CTX_free(ctx);

    return NULL;
}


SSL *
rmb_tls_new(SSL_CTX *ctx, int fd, rmb_url_t *u, char *err, size_t errlen)
{
    SSL  *ssl;

    ERR_clear_error();

    ssl = SSL_new(ctx);
    if (ssl == NULL) {
        rmb_tls_fail(err, errlen, "SSL_new() failed");
        return NULL;
    }

    if (SSL_set_fd(ssl, fd) != 1) {
        rmb_tls_fail(err, errlen, "SSL_set_fd() failed");
        goto failed;
    }

    if (!u->ip && SSL_set_tlsext_host_name(ssl, u->host) != 1) {
        rmb_tls_fail(err, errlen, "SSL_set_tlsext_host_name() failed");
        goto failed;
    }

    if (SSL_CTX_get_verify_mode(ctx) != SSL_VERIFY_NONE) {

        if (u->ip) {
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u->host)
                != 1)
            {
                rmb_tls_fail(err, errlen, "X509_VERIFY_PARAM_set1_ip_asc() "
                             "failed");
                goto failed;
            }

        } else {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);

            if (SSL_set1_host(ssl, u->host) != 1) {
                rmb_tls_fail(err, errlen, "SSL_set1_host() failed");
                goto failed;
            }
        }
    }

    SSL_set_connect_state(ssl);

    return ssl;

failed:

    SSL_free(ssl);

    return NULL;
}


static int
rmb_tls_again(SSL *ssl, int rc, short *ev)
{
    switch (SSL_get_error(ssl, rc)) {

    case SSL_ERROR_WANT_READ:
        *ev = POLLIN;
        return 1;

    case SSL_ERROR_WANT_WRITE:
        *ev = POLLOUT;
        return 1;

    default:
        return 0;
    }
}


int
rmb_tls_handshake(SSL *ssl, short *ev, char *err, size_t errlen)
{
    int    rc, e;
    long   verify;
    char   reasons[256];

    ERR_clear_error();
    errno = 0;

    rc = SSL_connect(ssl);

    if (rc == 1) {
        return RMB_OK;
    }

    if (rmb_tls_again(ssl, rc, ev)) {
        return RMB_AGAIN;
    }

    e = SSL_get_error(ssl, rc);
    verify = SSL_get_verify_result(ssl);

    rmb_tls_errors(reasons, sizeof(reasons));

    if (verify != X509_V_OK) {
        if (strcmp(reasons, "certificate verify failed") == 0) {
            reasons[0] = '\0';
        }

        (void) snprintf(err, errlen, "certificate verify failed (%s)%s%s",
                        X509_verify_cert_error_string(verify),
                        reasons[0] ? ": " : "", reasons);

    } else if (e == SSL_ERROR_SYSCALL && reasons[0] == '\0') {
        (void) snprintf(err, errlen, "%s", errno
                        ? strerror(errno)
                        : "the peer closed the connection in the handshake");

    } else {
        (void) snprintf(err, errlen, "%s",
                        reasons[0] ? reasons : "handshake failed");
    }

    return RMB_ERROR;
}


/* >0 bytes, 0 at end of stream, RMB_AGAIN (*ev set), RMB_ERROR */

ssize_t
rmb_tls_read(SSL *ssl, u_char *buf, size_t len, short *ev, char *err,
    size_t errlen)
{
    int   rc, e;
    char  reasons[256];

    ERR_clear_error();
    errno = 0;

    rc = SSL_read(ssl, buf, len > INT32_MAX ? INT32_MAX : (int) len);

    if (rc > 0) {
        return rc;
    }

    if (rmb_tls_again(ssl, rc, ev)) {
        return RMB_AGAIN;
    }

    e = SSL_get_error(ssl, rc);

    if (e == SSL_ERROR_ZERO_RETURN) {
        return 0;
    }

    rmb_tls_errors(reasons, sizeof(reasons));

    if (e == SSL_ERROR_SYSCALL && reasons[0] == '\0') {
        if (errno == 0) {
            return 0;
        }

        (void) snprintf(err, errlen, "%s", strerror(errno));

    } else {
        (void) snprintf(err, errlen, "TLS: %s",
                        reasons[0] ? reasons : "SSL_read() failed");
    }

    return RMB_ERROR;
}


ssize_t
rmb_tls_write(SSL *ssl, const u_char *buf, size_t len, short *ev, char *err,
    size_t errlen)
{
    int   rc, e;
    char  reasons[256];

    ERR_clear_error();
    errno = 0;

    rc = SSL_write(ssl, buf, len > INT32_MAX ? INT32_MAX : (int) len);

    if (rc > 0) {
        return rc;
    }

    if (rmb_tls_again(ssl, rc, ev)) {
        return RMB_AGAIN;
    }

    e = SSL_get_error(ssl, rc);

    rmb_tls_errors(reasons, sizeof(reasons));

    if (e == SSL_ERROR_SYSCALL && reasons[0] == '\0') {
        (void) snprintf(err, errlen, "%s",
                        errno ? strerror(errno) : "connection closed");

    } else {
        (void) snprintf(err, errlen, "TLS: %s",
                        reasons[0] ? reasons : "SSL_write() failed");
    }

    return RMB_ERROR;
}
