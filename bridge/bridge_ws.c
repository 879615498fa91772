/*
 * reverse-mcp-bridge: the WebSocket client.
 *
 * Owns: one connection to the gateway's connector and its states (TCP
 * connect over each resolved address, the proxy's CONNECT, the TLS
 * handshake, the HTTP upgrade with the server name and token, the
 * response of a refusal, open, closing), the socket buffers and their
 * flushing, frames (sent masked, parsed with the shared codec in
 * src/ngx_http_reverse_mcp_ws_codec.c with server_side = 0), ping/pong
 * keepalive and the dead-peer timeout, the close handshake, and the
 * timeouts of each stage.  It reports to the event loop through
 * rmb_ws_handler_t and never decides about reconnecting.
 */


#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bridge.h"


#define RMB_WS_READ        65536
#define RMB_WS_MAX_HEADER  16384
#define RMB_WS_MAX_BODY    4096
#define RMB_WS_TLS_WRITE   65536


static void rmb_ws_next_addr(rmb_ws_t *ws, const char *err);
static void rmb_ws_connected(rmb_ws_t *ws);
static void rmb_ws_start_tls(rmb_ws_t *ws);
static void rmb_ws_tls_step(rmb_ws_t *ws);
static int rmb_ws_request(rmb_ws_t *ws);
static int rmb_ws_flush(rmb_ws_t *ws);
static void rmb_ws_read(rmb_ws_t *ws);
static int rmb_ws_frames(rmb_ws_t *ws);
static void rmb_ws_fail(rmb_ws_t *ws, int code, const char *why);
static void rmb_ws_eof(rmb_ws_t *ws);
static size_t rmb_ws_header_end(rmb_ws_t *ws);
static void rmb_ws_proxy_response(rmb_ws_t *ws, size_t hlen);
static void rmb_ws_upgrade_response(rmb_ws_t *ws, size_t hlen);
static void rmb_ws_refused_check(rmb_ws_t *ws, int eof);
static void rmb_ws_refused(rmb_ws_t *ws);
static void rmb_ws_finish(rmb_ws_t *ws);
static int rmb_ws_on_message(void *data, int opcode, const u_char *p,
    size_t len);
static int rmb_ws_on_control(void *data, int opcode, const u_char *p,
    size_t len);


void
rmb_ws_init(rmb_ws_t *ws)
{
    ws->state = RMB_WS_IDLE;
    ws->fd = -1;
    ws->ssl = NULL;
    ws->addrs = NULL;
    ws->addr = NULL;

    memset(&ws->in, 0, sizeof(rmb_buf_t));
    memset(&ws->out, 0, sizeof(rmb_buf_t));

    memset(&ws->parser, 0, sizeof(ws->parser));
    ws->parser.max_message = ws->opts->max_message;
    ws->parser.server_side = 0;
    ws->parser.on_message = rmb_ws_on_message;
    ws->parser.on_control = rmb_ws_on_control;
    ws->parser.data = ws;
    ngx_http_reverse_mcp_ws_parser_init(&ws->parser);
}


/* where we connect: the proxy, or the gateway */

static const char *
rmb_ws_target(rmb_ws_t *ws)
{
    return ws->proxy ? ws->proxy->display : ws->url->hostport;
}


/*
 * Starts a connection attempt.  Name resolution blocks.  On a failure
 * before any socket is open, on_close runs before this returns.
 */

int
rmb_ws_connect(rmb_ws_t *ws)
{
    char  err[RMB_ERRLEN];

    if (ws->state != RMB_WS_IDLE) {
        return RMB_ERROR;
    }

    ws->was_open = 0;
    ws->fatal = 0;
    ws->close_code = 0;
    ws->status = 0;
    ws->reason[0] = '\0';
    ws->content_length = -1;
    ws->body_start = 0;
    ws->hdr_scan = 0;
    ws->rd_ev = POLLIN;
    ws->wr_ev = POLLOUT;
    ws->ssl_wretry = 0;
    ws->paused = 0;
    ws->kick = 0;
    ws->close_after_flush = 0;
    ws->close_received = 0;
    ws->ping_out = 0;

    ws->started = rmb_now();
    ws->deadline = ws->started + ws->opts->connect_timeout;

    rmb_log(RMB_LOG_DEBUG, "connecting to %s%s%s", rmb_ws_target(ws),
            ws->proxy ? " (proxy) for " : "",
            ws->proxy ? ws->url->hostport : "");

    if (rmb_resolve(ws->proxy ? ws->proxy->host : ws->url->host,
                    ws->proxy ? ws->proxy->port : ws->url->port,
                    &ws->addrs, err, sizeof(err))
        != RMB_OK)
    {
        rmb_log(RMB_LOG_WARN, "%s%s", ws->proxy ? "proxy: " : "", err);
        ws->state = RMB_WS_CONNECT;
        rmb_ws_finish(ws);
        return RMB_ERROR;
    }

    ws->addr = NULL;
    ws->state = RMB_WS_CONNECT;

    rmb_ws_next_addr(ws, NULL);

    return ws->state == RMB_WS_IDLE ? RMB_ERROR : RMB_OK;
}


static void
rmb_ws_next_addr(rmb_ws_t *ws, const char *err)
{
    int   fd;
    char  host[NI_MAXHOST], serv[NI_MAXSERV], last[RMB_ERRLEN];

    if (ws->fd != -1) {
        (void) close(ws->fd);
        ws->fd = -1;
    }

    (void) snprintf(last, sizeof(last), "%s", err ? err : "no address");

    if (err) {
        rmb_log(RMB_LOG_DEBUG, "%s: %s", ws->peer, err);
    }

    for ( ;; ) {
        ws->addr = ws->addr ? ws->addr->ai_next : ws->addrs;

        if (ws->addr == NULL) {
            rmb_log(RMB_LOG_WARN, "cannot connect to %s%s: %s",
                    ws->proxy ? "the proxy " : "", rmb_ws_target(ws), last);
            rmb_ws_finish(ws);
            return;
        }

        if (getnameinfo(ws->addr->ai_addr, ws->addr->ai_addrlen,
                        host, sizeof(host), serv, sizeof(serv),
                        NI_NUMERICHOST | NI_NUMERICSERV)
            != 0)
        {
            (void) snprintf(host, sizeof(host), "?");
            (void) snprintf(serv, sizeof(serv), "?");
        }

        (void) snprintf(ws->peer, sizeof(ws->peer),
                        ws->addr->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
                        host, serv);

        fd = rmb_tcp_connect(ws->addr, last, sizeof(last));

        if (fd != -1) {
            ws->fd = fd;
            return;
        }

        rmb_log(RMB_LOG_DEBUG, "%s: %s", ws->peer, last);
    }
}


short
rmb_ws_events(rmb_ws_t *ws)
{
    short  ev;

    switch (ws->state) {

    case RMB_WS_IDLE:
        return 0;

    case RMB_WS_CONNECT:
        return POLLOUT;

    case RMB_WS_TLS:
        return ws->rd_ev;

    default:
        ev = 0;

        if (!ws->paused) {
            ev |= ws->rd_ev;
        }

        if (rmb_buf_len(&ws->out) || ws->ssl_wretry) {
            ev |= ws->wr_ev;
        }

        return ev;
    }
}


void
rmb_ws_run(rmb_ws_t *ws)
{
    int   state;
    char  err[RMB_ERRLEN];

    ws->kick = 0;

    if (ws->state == RMB_WS_CONNECT) {
        struct pollfd  pfd;

        /* a connect in progress reports nothing through SO_ERROR */

        pfd.fd = ws->fd;
        pfd.events = POLLOUT;
        pfd.revents = 0;

        if (poll(&pfd, 1, 0) <= 0) {
            return;
        }

        if (rmb_tcp_connected(ws->fd, err, sizeof(err)) != RMB_OK) {
            rmb_ws_next_addr(ws, err);
            return;
        }

        rmb_ws_connected(ws);
    }

    do {
        state = ws->state;

        switch (ws->state) {

        case RMB_WS_IDLE:
        case RMB_WS_CONNECT:
            return;

        case RMB_WS_TLS:
            rmb_ws_tls_step(ws);
            break;

        default:
            if (rmb_ws_flush(ws) != RMB_OK) {
                return;
            }

            if (ws->close_after_flush && rmb_buf_len(&ws->out) == 0
                && ws->ssl_wretry == 0)
            {
                rmb_ws_finish(ws);
                return;
            }

            rmb_ws_read(ws);

            /* a response may have queued bytes (or the next stage) */

            if (ws->state != RMB_WS_IDLE && rmb_buf_len(&ws->out)
                && ws->state == state)
            {
                if (rmb_ws_flush(ws) != RMB_OK) {
                    return;
                }

                if (ws->close_after_flush && rmb_buf_len(&ws->out) == 0
                    && ws->ssl_wretry == 0)
                {
                    rmb_ws_finish(ws);
                    return;
                }
            }

            break;
        }

    } while (ws->state != state);
}


static void
rmb_ws_connected(rmb_ws_t *ws)
{
    int    n;
    char  *auth, target[300];

    rmb_log(RMB_LOG_DEBUG, "TCP connection to %s established", ws->peer);

    if (ws->proxy) {
        auth = ws->proxy->auth;

        ws->state = RMB_WS_PROXY;

        /* host:port, always with the port, IPv6 in brackets */

        (void) snprintf(target, sizeof(target),
                        ws->url->ipv6 ? "[%s]:%s" : "%s:%s",
                        ws->url->host, ws->url->port);

        if (rmb_buf_reserve(&ws->out, 2048) != RMB_OK) {
            rmb_ws_finish(ws);
            return;
        }

        n = snprintf((char *) ws->out.data + ws->out.last,
                     ws->out.cap - ws->out.last,
                     "CONNECT %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "User-Agent: " RMB_NAME "/" RMB_VERSION "\r\n"
                     "%s%s%s"
                     "\r\n",
                     target, target,
                     auth ? "Proxy-Authorization: Basic " : "",
                     auth ? auth : "", auth ? "\r\n" : "");

        if (n < 0 || (size_t) n >= ws->out.cap - ws->out.last) {
            rmb_log(RMB_LOG_ERR, "the CONNECT request is too long");
            rmb_ws_finish(ws);
            return;
        }

        ws->out.last += (size_t) n;
        return;
    }

    if (ws->ssl_ctx) {
        rmb_ws_start_tls(ws);
        return;
    }

    if (rmb_ws_request(ws) == RMB_OK) {
        ws->state = RMB_WS_UPGRADE;
    }
}


static void
rmb_ws_start_tls(rmb_ws_t *ws)
{
    char  err[RMB_ERRLEN];

    ws->ssl = rmb_tls_new(ws->ssl_ctx, ws->fd, ws->url, err, sizeof(err));

    if (ws->ssl == NULL) {
        rmb_log(RMB_LOG_ERR, "%s", err);
        rmb_ws_finish(ws);
        return;
    }

    ws->state = RMB_WS_TLS;
    ws->rd_ev = POLLOUT;
}


static void
rmb_ws_tls_step(rmb_ws_t *ws)
{
    int   rc;
    char  err[RMB_ERRLEN];

    rc = rmb_tls_handshake(ws->ssl, &ws->rd_ev, err, sizeof(err));

    if (rc == RMB_AGAIN) {
        return;
    }

    if (rc != RMB_OK) {
        rmb_log(RMB_LOG_ERR, "TLS handshake with %s (%s) failed: %s",
                ws->url->hostport, ws->peer, err);
        rmb_ws_finish(ws);
        return;
    }

    rmb_log(RMB_LOG_DEBUG, "TLS handshake with %s done: %s, %s%s",
            ws->url->hostport, SSL_get_version(ws->ssl),
            SSL_get_cipher_name(ws->ssl),
            SSL_get_verify_mode(ws->ssl) == SSL_VERIFY_NONE
            ? ", certificate NOT verified (--insecure)" : "");

    ws->rd_ev = POLLIN;
    ws->wr_ev = POLLOUT;

    if (rmb_ws_request(ws) == RMB_OK) {
        ws->state = RMB_WS_UPGRADE;
    }
}


/* queues the upgrade request */

static int
rmb_ws_request(rmb_ws_t *ws)
{
    int          n;
    char        *name, *token, *key;
    size_t       len;
    u_char       raw[16];
    rmb_opts_t  *o;

    o = ws->opts;

    if (rmb_random(raw, sizeof(raw)) != RMB_OK) {
        rmb_ws_finish(ws);
        return RMB_ERROR;
    }

    key = rmb_base64(raw, sizeof(raw));
    name = rmb_url_encode(o->name);
    token = (o->token && o->query_token) ? rmb_url_encode(o->token) : NULL;

    if (key == NULL || name == NULL
        || (o->token && o->query_token && token == NULL))
    {
        rmb_log(RMB_LOG_ERR, "out of memory");
        free(key);
        free(name);
        free(token);
        rmb_ws_finish(ws);
        return RMB_ERROR;
    }

    (void) snprintf(ws->key, sizeof(ws->key), "%s", key);
    free(key);

    len = strlen(ws->url->path) + strlen(name) * 2 + strlen(o->name)
          + (o->token ? strlen(o->token) * 4 : 0) + strlen(ws->url->hostport)
          + 512;

    if (rmb_buf_reserve(&ws->out, len) != RMB_OK) {
        free(name);
        free(token);
        rmb_ws_finish(ws);
        return RMB_ERROR;
    }

    n = snprintf((char *) ws->out.data + ws->out.last,
                 ws->out.cap - ws->out.last,
                 "GET %s%sserver_name=%s%s%s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "X-MCP-Server-Name: %s\r\n"
                 "%s%s%s"
                 "User-Agent: " RMB_NAME "/" RMB_VERSION "\r\n"
                 "\r\n",
                 ws->url->path, strchr(ws->url->path, '?') ? "&" : "?",
                 name, token ? "&token=" : "", token ? token : "",
                 ws->url->hostport, ws->key, o->name,
                 o->token ? "Authorization: Bearer " : "",
                 o->token ? o->token : "", o->token ? "\r\n" : "");

    if (token) {
        explicit_bzero(token, strlen(token));
    }

    free(name);
    free(token);

    if (n < 0 || (size_t) n >= ws->out.cap - ws->out.last) {
        rmb_log(RMB_LOG_ERR, "the upgrade request is too long");
        rmb_ws_finish(ws);
        return RMB_ERROR;
    }

    ws->out.last += (size_t) n;
    ws->hdr_scan = 0;

    return RMB_OK;
}


static ssize_t
rmb_ws_send_raw(rmb_ws_t *ws, const u_char *p, size_t len, char *err,
    size_t errlen)
{
    ssize_t  n;

    if (ws->ssl) {
        return rmb_tls_write(ws->ssl, p, len, &ws->wr_ev, err, errlen);
    }

    do {
        n = send(ws->fd, p, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            ws->wr_ev = POLLOUT;
            return RMB_AGAIN;
        }

        (void) snprintf(err, errlen, "%s", strerror(errno));
        return RMB_ERROR;
    }

    return n;
}


static ssize_t
rmb_ws_recv_raw(rmb_ws_t *ws, u_char *p, size_t len, char *err,
    size_t errlen)
{
    ssize_t  n;

    if (ws->ssl) {
        return rmb_tls_read(ws->ssl, p, len, &ws->rd_ev, err, errlen);
    }

    do {
        n = recv(ws->fd, p, len, 0);
    } while (n < 0 && errno == EINTR);

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            ws->rd_ev = POLLIN;
            return RMB_AGAIN;
        }

        (void) snprintf(err, errlen, "%s", strerror(errno));
        return RMB_ERROR;
    }

    return n;
}


static int
rmb_ws_flush(rmb_ws_t *ws)
{
    char     err[RMB_ERRLEN];
    size_t   len;
    ssize_t  n;

    while (rmb_buf_len(&ws->out)) {
        len = rmb_buf_len(&ws->out);

        if (ws->ssl) {
            if (ws->ssl_wretry) {
                len = ws->ssl_wretry;

            } else if (len > RMB_WS_TLS_WRITE) {
                len = RMB_WS_TLS_WRITE;
            }
        }

        n = rmb_ws_send_raw(ws, rmb_buf_start(&ws->out), len, err,
                            sizeof(err));

        if (n == RMB_AGAIN) {
            if (ws->ssl) {
                ws->ssl_wretry = len;
            }

            return RMB_OK;
        }

        if (n < 0) {
            rmb_log(RMB_LOG_WARN, "sending to %s failed: %s",
                    ws->url->hostport, err);
            rmb_ws_finish(ws);
            return RMB_ERROR;
        }

        ws->ssl_wretry = 0;
        rmb_buf_consume(&ws->out, (size_t) n);
    }

    return RMB_OK;
}


static void
rmb_ws_read(rmb_ws_t *ws)
{
    char     err[RMB_ERRLEN];
    size_t   hlen, want;
    ssize_t  n;

    while (ws->state != RMB_WS_IDLE) {

        if (ws->state == RMB_WS_OPEN || ws->state == RMB_WS_CLOSING) {

            if (ws->close_after_flush) {
                /* nothing more is read once the close handshake is over */
                rmb_buf_reset(&ws->in);
                return;
            }

            if (ws->paused) {
                return;
            }

            if (rmb_buf_len(&ws->in)) {
                if (rmb_ws_frames(ws) != RMB_OK) {
                    return;
                }

                continue;
            }
        }

        want = RMB_WS_READ;

        if (ws->state < RMB_WS_OPEN) {
            if (rmb_buf_len(&ws->in) >= RMB_WS_MAX_HEADER + RMB_WS_MAX_BODY) {
                if (ws->state == RMB_WS_REFUSED) {
                    /* a refusal with more body than we show: enough */
                    rmb_ws_refused(ws);

                } else {
                    rmb_log(RMB_LOG_WARN, "%s sent too long a response "
                            "header", rmb_ws_target(ws));
                    rmb_ws_finish(ws);
                }

                return;
            }

            want = RMB_WS_MAX_HEADER + RMB_WS_MAX_BODY
                   - rmb_buf_len(&ws->in);
        }

        if (rmb_buf_reserve(&ws->in, want) != RMB_OK) {
            rmb_ws_finish(ws);
            return;
        }

        n = rmb_ws_recv_raw(ws, ws->in.data + ws->in.last, want, err,
                            sizeof(err));

        if (n == RMB_AGAIN) {
            return;
        }

        if (n < 0) {
            if (ws->state == RMB_WS_REFUSED) {
                rmb_ws_refused(ws);
                return;
            }

            rmb_log(RMB_LOG_WARN, "reading from %s failed: %s",
                    ws->url->hostport, err);
            rmb_ws_finish(ws);
            return;
        }

        if (n == 0) {
            rmb_ws_eof(ws);
            return;
        }

        ws->in.last += (size_t) n;
        ws->ping_out = 0;

        switch (ws->state) {

        case RMB_WS_PROXY:
        case RMB_WS_UPGRADE:
            hlen = rmb_ws_header_end(ws);

            if (hlen == 0) {
                if (rmb_buf_len(&ws->in) > RMB_WS_MAX_HEADER) {
                    rmb_log(RMB_LOG_WARN, "%s sent a response header longer "
                            "than %d bytes", ws->state == RMB_WS_PROXY
                            ? "the proxy" : "the gateway", RMB_WS_MAX_HEADER);
                    rmb_ws_finish(ws);
                    return;
                }

                break;
            }

            if (ws->state == RMB_WS_PROXY) {
                rmb_ws_proxy_response(ws, hlen);

                /* TLS or the upgrade request: back to the driver */
                return;
            }

            rmb_ws_upgrade_response(ws, hlen);
            break;

        case RMB_WS_REFUSED:
            rmb_ws_refused_check(ws, 0);
            break;

        default:
            break;
        }
    }
}


static int
rmb_ws_frames(rmb_ws_t *ws)
{
    int     rc;
    char    why[160];
    size_t  consumed;

    rc = ngx_http_reverse_mcp_ws_parse(&ws->parser, rmb_buf_start(&ws->in),
                                       rmb_buf_len(&ws->in), &consumed);

    if (ws->state == RMB_WS_IDLE) {
        return RMB_ERROR;
    }

    if (rc == NGX_HTTP_REVERSE_MCP_WS_FAIL) {
        (void) snprintf(why, sizeof(why), "%s", ws->parser.error
                                                ? ws->parser.error
                                                : "invalid frame");
        rmb_buf_reset(&ws->in);
        rmb_ws_fail(ws, ws->parser.close_code, why);
        return RMB_ERROR;
    }

    rmb_buf_consume(&ws->in, consumed);

    return RMB_OK;
}


/* a protocol error on the gateway's side: close with the code, hang up */

static void
rmb_ws_fail(rmb_ws_t *ws, int code, const char *why)
{
    size_t  n;
    u_char  payload[125];

    rmb_log(RMB_LOG_WARN, "the gateway broke the WebSocket protocol (%s): "
            "closing with %d", why, code);

    if (ws->state == RMB_WS_OPEN) {
        n = ngx_http_reverse_mcp_ws_close_payload(payload, code, why,
                                                  strlen(why));
        (void) rmb_ws_send(ws, NGX_HTTP_REVERSE_MCP_WS_OP_CLOSE, payload, n);
    }

    ws->state = RMB_WS_CLOSING;
    ws->close_after_flush = 1;
    ws->deadline = rmb_now() + RMB_CLOSE_WAIT;
    ws->kick = 1;
}


static void
rmb_ws_eof(rmb_ws_t *ws)
{
    switch (ws->state) {

    case RMB_WS_PROXY:
        rmb_log(RMB_LOG_WARN, "the proxy %s closed the connection before "
                "answering CONNECT", rmb_ws_target(ws));
        break;

    case RMB_WS_UPGRADE:
        rmb_log(RMB_LOG_WARN, "%s closed the connection before answering "
                "the WebSocket upgrade", ws->url->hostport);
        break;

    case RMB_WS_REFUSED:
        rmb_ws_refused_check(ws, 1);
        return;

    case RMB_WS_OPEN:
        rmb_log(RMB_LOG_WARN, "the gateway closed the connection without "
                "a close frame");
        break;

    default: /* RMB_WS_CLOSING */
        if (!ws->close_received) {
            rmb_log(RMB_LOG_INFO, "the gateway closed the connection "
                    "without answering our close frame");
        }

        break;
    }

    rmb_ws_finish(ws);
}


/* the length of the response header with its empty line, or 0 */

static size_t
rmb_ws_header_end(rmb_ws_t *ws)
{
    size_t   len, i;
    u_char  *p;

    p = rmb_buf_start(&ws->in);
    len = rmb_buf_len(&ws->in);

    for (i = ws->hdr_scan; i + 4 <= len; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r'
            && p[i + 3] == '\n')
        {
            return i + 4;
        }
    }

    ws->hdr_scan = len > 3 ? len - 3 : 0;

    return 0;
}


/*
 * The status line: returns the status, the reason in ws->reason, and
 * *next the start of the header lines; -1 if it is not HTTP/1.x
 */

static int
rmb_ws_status_line(rmb_ws_t *ws, char *h, char **next)
{
    int      status;
    char    *p, *eol;
    size_t   n;

    eol = strstr(h, "\r\n");

    if (eol == NULL || strncmp(h, "HTTP/1.", 7) != 0 || eol - h < 12
        || h[8] != ' ' || h[9] < '1' || h[9] > '5' || h[10] < '0'
        || h[10] > '9' || h[11] < '0' || h[11] > '9'
        || (h + 12 < eol && h[12] != ' '))
    {
        return -1;
    }

    status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');

    p = h + 12;
    while (p < eol && *p == ' ') {
        p++;
    }

    n = (size_t) (eol - p);
    if (n >= sizeof(ws->reason)) {
        n = sizeof(ws->reason) - 1;
    }

    memcpy(ws->reason, p, n);
    ws->reason[n] = '\0';

    *next = eol + 2;

    return status;
}


/*
 * The next header line of h: name and value (trimmed) NUL-terminated in
 * place; returns 0 at the empty line
 */

static int
rmb_ws_header_line(char **h, char **name, char **value)
{
    char  *p, *eol, *colon, *end;

    p = *h;
    eol = strstr(p, "\r\n");

    if (eol == NULL || eol == p) {
        return 0;
    }

    *eol = '\0';
    *h = eol + 2;

    colon = strchr(p, ':');

    if (colon == NULL) {
        *name = p;
        *value = eol;
        return 1;
    }

    *colon = '\0';
    *name = p;

    p = colon + 1;
    while (*p == ' ' || *p == '\t') {
        p++;
    }

    end = eol;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    *end = '\0';
    *value = p;

    return 1;
}


/* a comma-separated header value contains the token (case-insensitive) */

static int
rmb_ws_has_token(const char *v, const char *token)
{
    size_t       n, tl;
    const char  *p;

    tl = strlen(token);

    for (p = v; *p; ) {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }

        n = strcspn(p, ", \t");

        if (n == tl && strncasecmp(p, token, tl) == 0) {
            return 1;
        }

        p += n;
    }

    return 0;
}


/* a copy of the header block, NUL-terminated, or NULL */

static char *
rmb_ws_header_copy(rmb_ws_t *ws, size_t hlen)
{
    char  *h;

    h = malloc(hlen + 1);
    if (h == NULL) {
        rmb_log(RMB_LOG_ERR, "out of memory");
        return NULL;
    }

    memcpy(h, rmb_buf_start(&ws->in), hlen);
    h[hlen] = '\0';

    if (strlen(h) != hlen) {
        free(h);
        rmb_log(RMB_LOG_WARN, "a NUL byte in the response header");
        return NULL;
    }

    return h;
}


static void
rmb_ws_proxy_response(rmb_ws_t *ws, size_t hlen)
{
    int     status;
    char   *h, *next;

    h = rmb_ws_header_copy(ws, hlen);
    if (h == NULL) {
        rmb_ws_finish(ws);
        return;
    }

    status = rmb_ws_status_line(ws, h, &next);
    free(h);

    if (status < 0) {
        rmb_log(RMB_LOG_WARN, "the proxy %s answered CONNECT with something "
                "that is not HTTP/1.x", rmb_ws_target(ws));
        rmb_ws_finish(ws);
        return;
    }

    if (status < 200 || status > 299) {
        rmb_log(RMB_LOG_WARN, "the proxy %s refused CONNECT to %s: HTTP %d "
                "%s", rmb_ws_target(ws), ws->url->hostport, status,
                ws->reason);
        rmb_ws_finish(ws);
        return;
    }

    rmb_buf_consume(&ws->in, hlen);
    ws->hdr_scan = 0;

    rmb_log(RMB_LOG_INFO, "the proxy %s connected us to %s",
            rmb_ws_target(ws), ws->url->hostport);

    if (ws->ssl_ctx) {
        if (rmb_buf_len(&ws->in)) {
            rmb_log(RMB_LOG_WARN, "the proxy %s sent data before the TLS "
                    "handshake", rmb_ws_target(ws));
            rmb_ws_finish(ws);
            return;
        }

        rmb_ws_start_tls(ws);
        return;
    }

    if (rmb_ws_request(ws) == RMB_OK) {
        ws->state = RMB_WS_UPGRADE;
    }
}


static void
rmb_ws_upgrade_response(rmb_ws_t *ws, size_t hlen)
{
    int          status, upgrade, connection, accept;
    char        *h, *p, *name, *value, *end, *next;
    const char  *bad;
    u_char       expect[29];
    rmb_msec_t   now;

    h = rmb_ws_header_copy(ws, hlen);
    if (h == NULL) {
        rmb_ws_finish(ws);
        return;
    }

    status = rmb_ws_status_line(ws, h, &next);

    if (status < 0) {
        free(h);
        rmb_log(RMB_LOG_WARN, "%s answered the upgrade with something that "
                "is not HTTP/1.x", ws->url->hostport);
        rmb_ws_finish(ws);
        return;
    }

    ws->status = status;

    if (ngx_http_reverse_mcp_ws_accept_key((u_char *) ws->key,
                                           strlen(ws->key), expect)
        != 0)
    {
        free(h);
        rmb_log(RMB_LOG_ERR, "cannot compute Sec-WebSocket-Accept");
        rmb_ws_finish(ws);
        return;
    }

    expect[28] = '\0';

    upgrade = 0;
    connection = 0;
    accept = 0;
    bad = NULL;

    p = next;

    while (rmb_ws_header_line(&p, &name, &value)) {

        if (strcasecmp(name, "Content-Length") == 0) {
            errno = 0;
            ws->content_length = strtoll(value, &end, 10);

            if (errno || *end != '\0' || end == value
                || ws->content_length < 0)
            {
                ws->content_length = -1;
            }

        } else if (strcasecmp(name, "Upgrade") == 0) {
            upgrade = rmb_ws_has_token(value, "websocket");

        } else if (strcasecmp(name, "Connection") == 0) {
            connection = rmb_ws_has_token(value, "upgrade");

        } else if (strcasecmp(name, "Sec-WebSocket-Accept") == 0) {
            accept = (strcmp(value, (char *) expect) == 0) ? 1 : -1;

        } else if (strcasecmp(name, "Sec-WebSocket-Extensions") == 0) {
            bad = "an extension we did not ask for";

        } else if (strcasecmp(name, "Sec-WebSocket-Protocol") == 0) {
            bad = "a subprotocol we did not offer";
        }
    }

    free(h);

    if (status != 101) {
        ws->body_start = hlen;
        ws->state = RMB_WS_REFUSED;
        rmb_ws_refused_check(ws, 0);
        return;
    }

    if (!upgrade || !connection || accept != 1 || bad) {
        rmb_log(RMB_LOG_WARN, "%s answered 101 with an invalid upgrade: %s",
                ws->url->hostport,
                bad ? bad
                : !upgrade ? "no \"Upgrade: websocket\""
                : !connection ? "no \"Connection: Upgrade\""
                : accept == 0 ? "no Sec-WebSocket-Accept"
                : "a wrong Sec-WebSocket-Accept");
        rmb_ws_finish(ws);
        return;
    }

    rmb_buf_consume(&ws->in, hlen);

    /* the request carried the token */
    if (ws->out.data) {
        explicit_bzero(ws->out.data, ws->out.cap);
    }

    now = rmb_now();

    ws->state = RMB_WS_OPEN;
    ws->was_open = 1;
    ws->opened_at = now;
    ws->deadline = 0;
    ws->next_ping = now + ws->opts->ping_interval;
    ws->ping_out = 0;
    ws->pings = 0;

    ngx_http_reverse_mcp_ws_parser_init(&ws->parser);

    ws->handler->on_open(ws);
}


/* the body of a refusal: is there enough to report it? */

static void
rmb_ws_refused_check(rmb_ws_t *ws, int eof)
{
    size_t  have, want;

    have = rmb_buf_len(&ws->in) - ws->body_start;

    if (!eof) {
        if (ws->content_length < 0) {
            /* until the end of the connection or the deadline */
            if (have < RMB_WS_MAX_BODY) {
                return;
            }

        } else {
            want = (ws->content_length > RMB_WS_MAX_BODY)
                   ? RMB_WS_MAX_BODY : (size_t) ws->content_length;

            if (have < want) {
                return;
            }
        }
    }

    rmb_ws_refused(ws);
}


static void
rmb_ws_refused(rmb_ws_t *ws)
{
    char     quote[RMB_QUOTE * 4 + 8];
    size_t   have, i;
    u_char  *body;

    have = rmb_buf_len(&ws->in) - ws->body_start;
    body = rmb_buf_start(&ws->in) + ws->body_start;

    if (ws->content_length >= 0 && (long long) have > ws->content_length) {
        have = (size_t) ws->content_length;
    }

    /* one line for the log */

    while (have && (body[have - 1] == '\n' || body[have - 1] == '\r'
                    || body[have - 1] == ' '))
    {
        have--;
    }

    for (i = 0; i < have; i++) {
        if (body[i] == '\n' || body[i] == '\r' || body[i] == '\t') {
            body[i] = ' ';
        }
    }

    (void) rmb_quote(quote, sizeof(quote), body, have, RMB_QUOTE);

    if (ws->status == 401 || ws->status == 403) {
        ws->fatal = 1;

        rmb_log(RMB_LOG_ERR, "the gateway %s refused server \"%s\": HTTP %d "
                "%s: \"%s\" (a wrong name or token is not retried)",
                ws->url->hostport, ws->opts->name, ws->status, ws->reason,
                quote);

    } else {
        rmb_log(RMB_LOG_WARN, "the gateway %s answered the WebSocket "
                "upgrade with HTTP %d %s: \"%s\"", ws->url->hostport,
                ws->status, ws->reason, quote);
    }

    rmb_ws_finish(ws);
}


static void
rmb_ws_finish(rmb_ws_t *ws)
{
    if (ws->state == RMB_WS_IDLE) {
        return;
    }

    if (ws->ssl) {
        if (ws->state == RMB_WS_OPEN || ws->state == RMB_WS_CLOSING) {
            /* close_notify, best effort: the socket is non-blocking */
            (void) SSL_shutdown(ws->ssl);
        }

        SSL_free(ws->ssl);
        ws->ssl = NULL;
        ERR_clear_error();
    }

    if (ws->fd != -1) {
        (void) close(ws->fd);
        ws->fd = -1;
    }

    if (ws->addrs) {
        freeaddrinfo(ws->addrs);
        ws->addrs = NULL;
    }

    ws->addr = NULL;

    if (ws->out.data) {
        explicit_bzero(ws->out.data, ws->out.cap);
    }

    rmb_buf_reset(&ws->in);
    rmb_buf_reset(&ws->out);

    ngx_http_reverse_mcp_ws_parser_free(&ws->parser);
    ngx_http_reverse_mcp_ws_parser_init(&ws->parser);

    ws->state = RMB_WS_IDLE;
    ws->paused = 0;
    ws->kick = 0;
    ws->close_after_flush = 0;
    ws->ping_out = 0;
    ws->ssl_wretry = 0;
    ws->deadline = 0;

    ws->handler->on_close(ws);
}


void
rmb_ws_timer(rmb_ws_t *ws, rmb_msec_t now)
{
    char  t[32];

    switch (ws->state) {

    case RMB_WS_IDLE:
        return;

    case RMB_WS_OPEN:
        if (ws->paused) {
            /* we do not read (the child is slow): what came is unseen */
            ws->ping_out = 0;
        }

        if (ws->ping_out && now >= ws->ping_deadline) {
            rmb_format_msec(t, sizeof(t), ws->opts->ping_timeout);
            rmb_log(RMB_LOG_WARN, "nothing from the gateway within %s of a "
                    "ping: the connection is dead", t);
            rmb_ws_finish(ws);
            return;
        }

        if (now >= ws->next_ping) {
            ws->pings++;

            if (rmb_ws_send(ws, NGX_HTTP_REVERSE_MCP_WS_OP_PING,
                            (u_char *) &ws->pings, sizeof(ws->pings))
                != RMB_OK)
            {
                rmb_ws_finish(ws);
                return;
            }

            if (!ws->ping_out) {
                ws->ping_out = 1;
                ws->ping_deadline = now + ws->opts->ping_timeout;
            }

            ws->next_ping = now + ws->opts->ping_interval;
        }

        return;

    case RMB_WS_CLOSING:
        if (now >= ws->deadline) {
            if (!ws->close_after_flush) {
                rmb_log(RMB_LOG_INFO, "the gateway did not answer our close "
                        "frame in time");
            }

            rmb_ws_finish(ws);
        }

        return;

    case RMB_WS_REFUSED:
        if (now >= ws->deadline) {
            rmb_ws_refused(ws);
        }

        return;

    default:
        if (now >= ws->deadline) {
            rmb_format_msec(t, sizeof(t), ws->opts->connect_timeout);
            rmb_log(RMB_LOG_WARN, "connecting to %s timed out after %s (%s)",
                    ws->url->hostport, t,
                    ws->state == RMB_WS_CONNECT ? "TCP connect"
                    : ws->state == RMB_WS_PROXY ? "proxy CONNECT"
                    : ws->state == RMB_WS_TLS ? "TLS handshake"
                    : "WebSocket upgrade");
            rmb_ws_finish(ws);
        }

        return;
    }
}


/* the next time rmb_ws_timer() has something to do, or -1 */

rmb_msec_t
rmb_ws_next_timer(rmb_ws_t *ws)
{
    rmb_msec_t  t;

    switch (ws->state) {

    case RMB_WS_IDLE:
        return -1;

    case RMB_WS_OPEN:
        t = ws->next_ping;

        if (ws->ping_out && ws->ping_deadline < t) {
            t = ws->ping_deadline;
        }

        return t;

    default:
        return ws->deadline;
    }
}


/* queues one frame (masked); data frames only while open */

int
rmb_ws_send(rmb_ws_t *ws, int opcode, const u_char *p, size_t len)
{
    size_t  hlen;
    u_char  mask[4], hdr[NGX_HTTP_REVERSE_MCP_WS_MAX_HEADER];

    if (ws->state != RMB_WS_OPEN) {
        return RMB_ERROR;
    }

    if (rmb_random(mask, sizeof(mask)) != RMB_OK) {
        return RMB_ERROR;
    }

    hlen = ngx_http_reverse_mcp_ws_frame_header(hdr, opcode, len, mask);

    if (rmb_buf_reserve(&ws->out, hlen + len) != RMB_OK) {
        return RMB_ERROR;
    }

    memcpy(ws->out.data + ws->out.last, hdr, hlen);
    ws->out.last += hlen;

    if (len) {
        memcpy(ws->out.data + ws->out.last, p, len);
        ngx_http_reverse_mcp_ws_mask(ws->out.data + ws->out.last, len, mask,
                                     0);
        ws->out.last += len;
    }

    ws->kick = 1;

    return RMB_OK;
}


/*
 * Our close: the frame is queued, then we wait (RMB_CLOSE_WAIT) for the
 * gateway's.  Before the upgrade completed, the attempt just ends.
 */

void
rmb_ws_close(rmb_ws_t *ws, int code, const char *reason)
{
    size_t  n;
    u_char  payload[125];

    switch (ws->state) {

    case RMB_WS_IDLE:
    case RMB_WS_CLOSING:
        return;

    case RMB_WS_OPEN:
        rmb_log(RMB_LOG_INFO, "closing the WebSocket with %d \"%s\"", code,
                reason);

        n = ngx_http_reverse_mcp_ws_close_payload(payload, code, reason,
                                                  strlen(reason));

        if (rmb_ws_send(ws, NGX_HTTP_REVERSE_MCP_WS_OP_CLOSE, payload, n)
            != RMB_OK)
        {
            rmb_ws_finish(ws);
            return;
        }

        ws->state = RMB_WS_CLOSING;
        ws->deadline = rmb_now() + RMB_CLOSE_WAIT;
        return;

    default:
        rmb_log(RMB_LOG_INFO, "abandoning the connection attempt: %s",
                reason);
        rmb_ws_finish(ws);
        return;
    }
}


void
rmb_ws_abort(rmb_ws_t *ws, const char *why)
{
    if (ws->state == RMB_WS_IDLE) {
        return;
    }

    if (why) {
        rmb_log(RMB_LOG_INFO, "dropping the connection: %s", why);
    }

    rmb_ws_finish(ws);
}


void
rmb_ws_resume(rmb_ws_t *ws)
{
    if (ws->paused) {
        ws->paused = 0;
        ws->kick = 1;
    }
}


static int
rmb_ws_on_message(void *data, int opcode, const u_char *p, size_t len)
{
    rmb_ws_t  *ws = data;

    (void) opcode;

    if (ws->state != RMB_WS_OPEN) {
        /* after our close frame: data is dropped */
        return 0;
    }

    if (ws->handler->on_message(ws, p, len)) {
        ws->paused = 1;
        return 1;
    }

    return ws->state == RMB_WS_OPEN ? 0 : 1;
}


static int
rmb_ws_on_control(void *data, int opcode, const u_char *p, size_t len)
{
    rmb_ws_t  *ws = data;

    int      code;
    char     quote[160];
    u_char   payload[2];
    size_t   n;

    switch (opcode) {

    case NGX_HTTP_REVERSE_MCP_WS_OP_PING:
        if (ws->state == RMB_WS_OPEN
            && rmb_ws_send(ws, NGX_HTTP_REVERSE_MCP_WS_OP_PONG, p, len)
               != RMB_OK)
        {
            rmb_ws_fail(ws, NGX_HTTP_REVERSE_MCP_WS_CLOSE_INTERNAL,
                        "out of memory");
            return 1;
        }

        return 0;

    case NGX_HTTP_REVERSE_MCP_WS_OP_PONG:
        return 0;

    default: /* CLOSE */
        ws->close_received = 1;

        code = NGX_HTTP_REVERSE_MCP_WS_CLOSE_NO_STATUS;
        quote[0] = '\0';

        if (len >= 2) {
            code = (p[0] << 8) | p[1];
            (void) rmb_quote(quote, sizeof(quote), p + 2, len - 2, 123);
        }

        ws->close_code = code;

        if (ws->state == RMB_WS_OPEN) {
            rmb_log(code == NGX_HTTP_REVERSE_MCP_WS_CLOSE_NORMAL
                    || code == NGX_HTTP_REVERSE_MCP_WS_CLOSE_GOING_AWAY
                    ? RMB_LOG_NOTICE : RMB_LOG_WARN,
                    "the gateway closed the WebSocket with %d \"%s\"",
                    code, quote);

            /* echo the code (RFC 6455 5.5.1) */

            n = 0;

            if (len >= 2) {
                payload[0] = p[0];
                payload[1] = p[1];
                n = 2;
            }

            (void) rmb_ws_send(ws, NGX_HTTP_REVERSE_MCP_WS_OP_CLOSE, payload,
                               n);

            ws->state = RMB_WS_CLOSING;

        } else {
            rmb_log(RMB_LOG_INFO, "the gateway answered our close frame "
                    "with %d \"%s\"", code, quote);
        }

        ws->close_after_flush = 1;
        ws->deadline = rmb_now() + RMB_CLOSE_WAIT;
        ws->kick = 1;

        return 1;
    }
}
