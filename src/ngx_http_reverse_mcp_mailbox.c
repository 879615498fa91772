/*
 * Per-worker mailboxes (see ngx_http_reverse_mcp_mailbox.h for the frame
 * format).  Owns: this worker's listening unix socket, the owner side of
 * forwarded calls (a proxy call handed to the connector, its notifications,
 * relayed requests and result written back as frames, the caller's
 * answers read), the caller side (connect to the owner's socket, send
 * CALL, read frames until RESULT/ERROR, write ANSWER frames), and ROUTE:
 * a caller's answer carried to the worker that holds its call.
 *
 * The caller side waits for the answer with a timer that is not
 * cancelable: a worker that drains (reload, binary upgrade) stays until
 * its remote calls are answered, as it does for local ones; it also ends
 * a call whose owner stopped answering (the call's own timeout plus 5 s,
 * else an hour: the owner enforces its reverse_mcp_call_timeout).
 */

#include "ngx_http_reverse_mcp_mailbox.h"
#include "ngx_http_reverse_mcp_registry.h"
#include "ngx_http_reverse_mcp_json.h"
#include "ngx_http_reverse_mcp_outq.h"

#include <sys/un.h>


#define NGX_HTTP_REVERSE_MCP_MB_WAIT_MAX    3600000
#define NGX_HTTP_REVERSE_MCP_MB_WAIT_EXTRA  5000


typedef struct {
    u_char                        hdr[NGX_HTTP_REVERSE_MCP_MB_HEADER];
    size_t                        hdr_got;
    u_char                       *body;
    size_t                        len;
    size_t                        got;
    ngx_uint_t                    type;
    unsigned                      in_body:1;
    unsigned                      eof:1;
} ngx_http_reverse_mcp_mb_reader_t;


/* the owner's side of one forwarded call */
typedef struct {
    ngx_connection_t             *connection;
    ngx_pool_t                   *pool;
    ngx_http_reverse_mcp_outq_t   outq;
    ngx_http_reverse_mcp_mb_reader_t  rd;
    ngx_http_reverse_mcp_call_t   call;
    u_char                       *frame;     /* the CALL body */
    unsigned                      calling:1;
    unsigned                      done:1;
} ngx_http_reverse_mcp_mb_peer_t;


/* the caller's side */
typedef struct {
    ngx_peer_connection_t         pc;
    struct sockaddr_un            sun;
    ngx_str_t                     name;
    ngx_http_reverse_mcp_call_t  *call;
    ngx_http_reverse_mcp_outq_t   outq;
    ngx_http_reverse_mcp_mb_reader_t  rd;
    ngx_log_t                    *log;
} ngx_http_reverse_mcp_mb_client_t;


static ngx_int_t ngx_http_reverse_mcp_mb_path(ngx_cycle_t *cycle,
    ngx_pid_t pid, struct sockaddr_un *sun);
static void ngx_http_reverse_mcp_mb_accept(ngx_event_t *ev);
static ngx_int_t ngx_http_reverse_mcp_mb_read(ngx_connection_t *c,
    ngx_http_reverse_mcp_mb_reader_t *rd);
static void ngx_http_reverse_mcp_mb_reader_reset(
    ngx_http_reverse_mcp_mb_reader_t *rd);
static ngx_int_t ngx_http_reverse_mcp_mb_frame(
    ngx_http_reverse_mcp_outq_t *q, ngx_uint_t type, ngx_str_t *a,
    ngx_str_t *b, ngx_log_t *log);

static void ngx_http_reverse_mcp_mb_peer_read(ngx_event_t *ev);
static void ngx_http_reverse_mcp_mb_peer_write(ngx_event_t *ev);
static void ngx_http_reverse_mcp_mb_peer_call(
    ngx_http_reverse_mcp_mb_peer_t *peer);
static void ngx_http_reverse_mcp_mb_peer_route(
    ngx_http_reverse_mcp_mb_peer_t *peer);
static ngx_int_t ngx_http_reverse_mcp_mb_peer_request(
    ngx_http_reverse_mcp_call_t *call, ngx_str_t *json);
static void ngx_http_reverse_mcp_mb_peer_notify(
    ngx_http_reverse_mcp_call_t *call, ngx_str_t *json);
static void ngx_http_reverse_mcp_mb_peer_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json);
static void ngx_http_reverse_mcp_mb_peer_error(
    ngx_http_reverse_mcp_mb_peer_t *peer, ngx_int_t code, const char *msg);
static void ngx_http_reverse_mcp_mb_peer_close(
    ngx_http_reverse_mcp_mb_peer_t *peer);

static ngx_int_t ngx_http_reverse_mcp_mb_connect(
    ngx_http_reverse_mcp_mb_client_t *cl, ngx_uint_t log_error);
static void ngx_http_reverse_mcp_mb_client_write(ngx_event_t *ev);
static void ngx_http_reverse_mcp_mb_client_read(ngx_event_t *ev);
static void ngx_http_reverse_mcp_mb_client_fail(
    ngx_http_reverse_mcp_mb_client_t *cl, ngx_int_t code, const char *msg);
static void ngx_http_reverse_mcp_mb_client_close(
    ngx_http_reverse_mcp_mb_client_t *cl);


static ngx_connection_t  *ngx_http_reverse_mcp_mb_listener;
static ngx_str_t          ngx_http_reverse_mcp_mb_own_path;


static ngx_int_t
ngx_http_reverse_mcp_mb_path(ngx_cycle_t *cycle, ngx_pid_t pid,
    struct sockaddr_un *sun)
{
    u_char                            *p;
    ngx_http_reverse_mcp_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_reverse_mcp_module);

    ngx_memzero(sun, sizeof(struct sockaddr_un));
    sun->sun_family = AF_UNIX;

    if (mcf->runtime_dir.len + sizeof("/mcp..sock") + NGX_INT64_LEN
        > sizeof(sun->sun_path))
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "reverse_mcp: runtime dir \"%V\" is too long for a "
                      "unix socket path", &mcf->runtime_dir);
        return NGX_ERROR;
    }

    p = ngx_cpymem(sun->sun_path, mcf->runtime_dir.data,
                   mcf->runtime_dir.len);
    (void) ngx_sprintf(p, "/mcp.%P.sock%Z", pid);

    return NGX_OK;
}


ngx_int_t
ngx_http_reverse_mcp_mailbox_init(ngx_cycle_t *cycle)
{
    ngx_socket_t         s;
    ngx_connection_t    *c;
    struct sockaddr_un   sun;

    if (ngx_http_reverse_mcp_mb_path(cycle, ngx_pid, &sun) != NGX_OK) {
        return NGX_ERROR;
    }

    s = ngx_socket(AF_UNIX, SOCK_STREAM, 0);
    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_socket_errno,
                      "reverse_mcp: mailbox socket() failed");
        return NGX_ERROR;
    }

    if (ngx_nonblocking(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_socket_errno,
                      "reverse_mcp: mailbox " ngx_nonblocking_n " failed");
        goto failed;
    }

    (void) unlink(sun.sun_path);

    if (bind(s, (struct sockaddr *) &sun, sizeof(struct sockaddr_un)) == -1
        || listen(s, 511) == -1)
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_socket_errno,
                      "reverse_mcp: cannot listen on mailbox \"%s\" (is "
                      "reverse_mcp_runtime_dir writable by the workers?); "
                      "calls to servers of this worker will fail",
                      sun.sun_path);
        goto failed;
    }

    c = ngx_get_connection(s, cycle->log);
    if (c == NULL) {
        goto failed;
    }

    c->log = cycle->log;
    c->read->log = cycle->log;
    c->write->log = cycle->log;
    c->read->handler = ngx_http_reverse_mcp_mb_accept;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_close_connection(c);
        (void) unlink(sun.sun_path);
        return NGX_ERROR;
    }

    ngx_http_reverse_mcp_mb_listener = c;

    ngx_http_reverse_mcp_mb_own_path.len = ngx_strlen(sun.sun_path);
    ngx_http_reverse_mcp_mb_own_path.data = ngx_alloc(
                           ngx_http_reverse_mcp_mb_own_path.len + 1,
                           cycle->log);
    if (ngx_http_reverse_mcp_mb_own_path.data) {
        ngx_memcpy(ngx_http_reverse_mcp_mb_own_path.data, sun.sun_path,
                   ngx_http_reverse_mcp_mb_own_path.len + 1);
    }

    ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                  "reverse_mcp: mailbox listening on \"%s\"", sun.sun_path);

    return NGX_OK;

failed:

    (void) ngx_close_socket(s);

    return NGX_ERROR;
}


void
ngx_http_reverse_mcp_mailbox_exit(ngx_cycle_t *cycle)
{
    if (ngx_http_reverse_mcp_mb_listener) {
        ngx_close_connection(ngx_http_reverse_mcp_mb_listener);
        ngx_http_reverse_mcp_mb_listener = NULL;
    }

    if (ngx_http_reverse_mcp_mb_own_path.data) {
        (void) unlink((char *) ngx_http_reverse_mcp_mb_own_path.data);
        ngx_free(ngx_http_reverse_mcp_mb_own_path.data);
        ngx_http_reverse_mcp_mb_own_path.data = NULL;
    }
}


/* frames */


static ngx_int_t
ngx_http_reverse_mcp_mb_frame(ngx_http_reverse_mcp_outq_t *q, ngx_uint_t type,
    ngx_str_t *a, ngx_str_t *b, ngx_log_t *log)
{
    u_char  *p;
    size_t   len;

    len = a->len + (b ? b->len : 0);

    if (len > NGX_HTTP_REVERSE_MCP_MB_MAX) {
        return NGX_DECLINED;
    }

    p = ngx_http_reverse_mcp_outq_add(q, NGX_HTTP_REVERSE_MCP_MB_HEADER + len,
                                      0, log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *p++ = (u_char) (len >> 24);
    *p++ = (u_char) (len >> 16);
    *p++ = (u_char) (len >> 8);
    *p++ = (u_char) len;
    *p++ = (u_char) type;
    *p++ = 0;
    *p++ = 0;
    *p++ = 0;

    if (a->len) {
        p = ngx_cpymem(p, a->data, a->len);
    }

    if (b && b->len) {
        ngx_memcpy(p, b->data, b->len);
    }

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_mb_reader_reset(ngx_http_reverse_mcp_mb_reader_t *rd)
{
    if (rd->body) {
        ngx_free(rd->body);
    }

    rd->body = NULL;
    rd->hdr_got = 0;
    rd->len = 0;
    rd->got = 0;
    rd->in_body = 0;
}


/*
 * NGX_OK: a whole frame is in rd (type, body, len); NGX_AGAIN: wait;
 * NGX_ERROR: the peer closed (rd->eof), failed, or broke the format.
 */
static ngx_int_t
ngx_http_reverse_mcp_mb_read(ngx_connection_t *c,
    ngx_http_reverse_mcp_mb_reader_t *rd)
{
    u_char   *h;
    ssize_t   n;

    for ( ;; ) {

        if (!rd->in_body) {
            n = c->recv(c, rd->hdr + rd->hdr_got,
                        NGX_HTTP_REVERSE_MCP_MB_HEADER - rd->hdr_got);

        } else if (rd->got < rd->len) {
            n = c->recv(c, rd->body + rd->got, rd->len - rd->got);

        } else {
            return NGX_OK;
        }

        if (n == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (n == 0) {
            rd->eof = 1;
            return NGX_ERROR;
        }

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (!rd->in_body) {
            rd->hdr_got += n;

            if (rd->hdr_got < NGX_HTTP_REVERSE_MCP_MB_HEADER) {
                continue;
            }

            h = rd->hdr;
            rd->len = ((size_t) h[0] << 24) | ((size_t) h[1] << 16)
                      | ((size_t) h[2] << 8) | h[3];
            rd->type = h[4];

            if (rd->len > NGX_HTTP_REVERSE_MCP_MB_MAX
                || rd->type < NGX_HTTP_REVERSE_MCP_MB_CALL
                || rd->type > NGX_HTTP_REVERSE_MCP_MB_DETACH)
            {
                ngx_log_error(NGX_LOG_ERR, c->log, 0,
                              "reverse_mcp: invalid mailbox frame (type %ui,"
                              " %uz bytes)", rd->type, rd->len);
                return NGX_ERROR;
            }

            rd->body = ngx_alloc(rd->len + 1, c->log);
            if (rd->body == NULL) {
                return NGX_ERROR;
            }

            rd->in_body = 1;
            rd->got = 0;
            continue;
        }

        rd->got += n;
    }
}


/* the owner's side */


static void
ngx_http_reverse_mcp_mb_accept(ngx_event_t *ev)
{
    ngx_socket_t                     s;
    ngx_pool_t                      *pool;
    ngx_connection_t                *lc, *c;
    ngx_http_reverse_mcp_mb_peer_t  *peer;

    lc = ev->data;

    for ( ;; ) {
        s = accept4(lc->fd, NULL, NULL, SOCK_NONBLOCK);

        if (s == (ngx_socket_t) -1) {
            if (ngx_socket_errno != NGX_EAGAIN
                && ngx_socket_errno != EINTR)
            {
                ngx_log_error(NGX_LOG_ERR, ev->log, ngx_socket_errno,
                              "reverse_mcp: mailbox accept4() failed");
            }

            return;
        }

        pool = ngx_create_pool(1024, ev->log);
        if (pool == NULL) {
            (void) ngx_close_socket(s);
            continue;
        }

        peer = ngx_pcalloc(pool, sizeof(ngx_http_reverse_mcp_mb_peer_t));
        c = peer ? ngx_get_connection(s, ev->log) : NULL;

        if (c == NULL) {
            (void) ngx_close_socket(s);
            ngx_destroy_pool(pool);
            continue;
        }

        peer->connection = c;
        peer->pool = pool;
        ngx_http_reverse_mcp_outq_init(&peer->outq);

        c->data = peer;
        c->log = ev->log;
        c->pool = pool;
        c->recv = ngx_recv;
        c->send = ngx_send;
        c->recv_chain = ngx_recv_chain;
        c->send_chain = ngx_send_chain;
        c->read->log = ev->log;
        c->write->log = ev->log;
        c->read->handler = ngx_http_reverse_mcp_mb_peer_read;
        c->write->handler = ngx_http_reverse_mcp_mb_peer_write;

        ngx_http_reverse_mcp_mb_peer_read(c->read);
    }
}


static void
ngx_http_reverse_mcp_mb_peer_read(ngx_event_t *ev)
{
    ngx_int_t                        rc;
    ngx_str_t                        json;
    ngx_connection_t                *c;
    ngx_http_reverse_mcp_mb_peer_t  *peer;

    c = ev->data;
    peer = c->data;

    if (peer->done) {
        /* only EOF is expected now */
        u_char   buf[1];
        ssize_t  n;

        n = c->recv(c, buf, 1);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_reverse_mcp_mb_peer_close(peer);
            }
            return;
        }

        ngx_http_reverse_mcp_mb_peer_close(peer);
        return;
    }

    for ( ;; ) {
        rc = ngx_http_reverse_mcp_mb_read(c, &peer->rd);

        if (rc == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                if (peer->calling) {
                    ngx_http_reverse_mcp_connector_cancel(&peer->call,
                                                          "mailbox failure");
                }

                ngx_http_reverse_mcp_mb_peer_close(peer);
            }
            return;
        }

        if (rc == NGX_ERROR) {
            /* the caller gave up (closed), or broke the format */
            if (peer->calling) {
                ngx_http_reverse_mcp_connector_cancel(&peer->call,
                                                      "the caller cancelled");
            }

            ngx_http_reverse_mcp_mb_peer_close(peer);
            return;
        }

        if (!peer->calling) {
            if (peer->rd.type == NGX_HTTP_REVERSE_MCP_MB_CALL) {
                /* the peer may be gone when it returns */
                ngx_http_reverse_mcp_mb_peer_call(peer);
                return;
            }

            if (peer->rd.type == NGX_HTTP_REVERSE_MCP_MB_ROUTE) {
                ngx_http_reverse_mcp_mb_peer_route(peer);
                return;
            }

            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "reverse_mcp: mailbox frame of type %ui where a "
                          "call was expected", peer->rd.type);
            ngx_http_reverse_mcp_mb_peer_close(peer);
            return;
        }

        if (peer->rd.type == NGX_HTTP_REVERSE_MCP_MB_DETACH) {
            /* the call stays, parked; the connection goes */
            ngx_http_reverse_mcp_connector_detach(&peer->call);
            peer->calling = 0;
            ngx_http_reverse_mcp_mb_peer_close(peer);
            return;
        }

        if (peer->rd.type != NGX_HTTP_REVERSE_MCP_MB_ANSWER) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "reverse_mcp: mailbox frame of type %ui during a "
                          "call", peer->rd.type);
            ngx_http_reverse_mcp_connector_cancel(&peer->call,
                                                  "mailbox failure");
            ngx_http_reverse_mcp_mb_peer_close(peer);
            return;
        }

        /* the caller's answer to a relayed request: to the server (the
         * call's end, if it comes of it, is written from a posted event) */

        json.data = peer->rd.body;
        json.len = peer->rd.len;

        if (ngx_http_reverse_mcp_connector_answer(&peer->call, &json)
            == NGX_DECLINED)
        {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "reverse_mcp: an answer to a relayed request of "
                          "server \"%V\" that no longer waits for it, "
                          "dropped", &peer->call.server);
        }

        ngx_http_reverse_mcp_mb_reader_reset(&peer->rd);
    }
}


/* ROUTE: a caller's answer for a call of this worker */
static void
ngx_http_reverse_mcp_mb_peer_route(ngx_http_reverse_mcp_mb_peer_t *peer)
{
    char       err[128];
    u_char    *nl, *body;
    uint64_t   key;
    yajl_val   hdr, v;
    ngx_str_t  session, json;

    body = peer->rd.body;
    nl = ngx_strlchr(body, body + peer->rd.len, '\n');

    hdr = nl ? ngx_http_reverse_mcp_json_parse(body, nl - body, err,
                                               sizeof(err))
             : NULL;

    v = ngx_http_reverse_mcp_json_get(hdr, "key");

    if (hdr == NULL || v == NULL || !YAJL_IS_INTEGER(v)) {
        ngx_log_error(NGX_LOG_ERR, peer->connection->log, 0,
                      "reverse_mcp: invalid mailbox route header");

        if (hdr) {
            yajl_tree_free(hdr);
        }

        ngx_http_reverse_mcp_mb_peer_close(peer);
        return;
    }

    key = (uint64_t) YAJL_GET_INTEGER(v);

    if (ngx_http_reverse_mcp_json_get_str(hdr, "session", &session)
        != NGX_OK)
    {
        ngx_str_null(&session);
    }

    json.data = nl + 1;
    json.len = body + peer->rd.len - json.data;

    (void) ngx_http_reverse_mcp_call_answer_local(key, &session, &json,
                                                  peer->connection->log);

    yajl_tree_free(hdr);

    ngx_http_reverse_mcp_mb_peer_close(peer);
}


static void
ngx_http_reverse_mcp_mb_peer_call(ngx_http_reverse_mcp_mb_peer_t *peer)
{
    char                          err[128];
    u_char                       *nl, *body;
    size_t                        len;
    uint64_t                      conn_id;
    yajl_val                      hdr, v;
    ngx_int_t                     rc;
    ngx_str_t                     s;
    ngx_http_reverse_mcp_call_t  *call;

    call = &peer->call;
    body = peer->rd.body;
    peer->frame = body;
    len = peer->rd.len;

    /* the body is the frame's now: the reader waits for ANSWER frames */
    peer->rd.body = NULL;
    ngx_http_reverse_mcp_mb_reader_reset(&peer->rd);

    nl = ngx_strlchr(body, body + len, '\n');

    hdr = nl ? ngx_http_reverse_mcp_json_parse(body, nl - body, err,
                                               sizeof(err))
             : NULL;

    if (hdr == NULL) {
        ngx_log_error(NGX_LOG_ERR, peer->connection->log, 0,
                      "reverse_mcp: invalid mailbox call header");
        ngx_http_reverse_mcp_mb_peer_close(peer);
        return;
    }

    call->log = peer->connection->log;
    call->notify = ngx_http_reverse_mcp_mb_peer_notify;
    call->done = ngx_http_reverse_mcp_mb_peer_done;
    call->data = peer;

    call->params.data = nl + 1;
    call->params.len = body + len - (nl + 1);

    conn_id = 0;
    v = ngx_http_reverse_mcp_json_get(hdr, "conn_id");
    if (v && YAJL_IS_INTEGER(v)) {
        conn_id = (uint64_t) YAJL_GET_INTEGER(v);
    }

    v = ngx_http_reverse_mcp_json_get(hdr, "timeout");
    if (v && YAJL_IS_INTEGER(v)) {
        call->timeout = (ngx_msec_t) YAJL_GET_INTEGER(v);
    }

    /* where the caller's answers to relayed requests come from */

    v = ngx_http_reverse_mcp_json_get(hdr, "pid");
    if (v && YAJL_IS_INTEGER(v)) {
        call->caller_pid = (ngx_pid_t) YAJL_GET_INTEGER(v);
    }

    v = ngx_http_reverse_mcp_json_get(hdr, "key");
    if (v && YAJL_IS_INTEGER(v)) {
        call->key = (uint64_t) YAJL_GET_INTEGER(v);
    }

    v = ngx_http_reverse_mcp_json_get(hdr, "relay");
    if (v && YAJL_IS_INTEGER(v)) {
        call->relay = (ngx_uint_t) YAJL_GET_INTEGER(v);
    }

    v = ngx_http_reverse_mcp_json_get(hdr, "requests");
    if (v && YAJL_IS_TRUE(v)) {
        call->request = ngx_http_reverse_mcp_mb_peer_request;
    }

    v = ngx_http_reverse_mcp_json_get(hdr, "park");
    if (v && YAJL_IS_INTEGER(v)) {
        call->park = (uint64_t) YAJL_GET_INTEGER(v);
    }

    if (ngx_http_reverse_mcp_json_get_str(hdr, "agent", &s) == NGX_OK) {
        call->agent.data = ngx_pstrdup(peer->pool, &s);
        call->agent.len = call->agent.data ? s.len : 0;
    }

    if (ngx_http_reverse_mcp_json_get_str(hdr, "method", &s) != NGX_OK
        || (call->method.data = ngx_pstrdup(peer->pool, &s)) == NULL)
    {
        yajl_tree_free(hdr);
        ngx_http_reverse_mcp_mb_peer_close(peer);
        return;
    }

    call->method.len = s.len;

    if (ngx_http_reverse_mcp_json_get_str(hdr, "server", &s) == NGX_OK) {
        call->server.data = ngx_pstrdup(peer->pool, &s);
        call->server.len = call->server.data ? s.len : 0;
    }

    if (ngx_http_reverse_mcp_json_get_str(hdr, "token", &s) == NGX_OK
        && s.len)
    {
        /* the caller's unique token, as the JSON string literal */
        call->progress_token.len = ngx_http_reverse_mcp_json_escaped_len(&s);
        call->progress_token.data = ngx_pnalloc(peer->pool,
                                                call->progress_token.len);
        if (call->progress_token.data == NULL) {
            yajl_tree_free(hdr);
            ngx_http_reverse_mcp_mb_peer_close(peer);
            return;
        }

        (void) ngx_http_reverse_mcp_json_escape(call->progress_token.data,
                                                &s);
    }

    yajl_tree_free(hdr);

    rc = call->park ? ngx_http_reverse_mcp_connector_resume(conn_id, call)
                    : ngx_http_reverse_mcp_connector_call(conn_id, call);

    if (rc == NGX_DECLINED && call->park) {
        ngx_http_reverse_mcp_mb_peer_error(peer,
            NGX_HTTP_REVERSE_MCP_ERR_PARAMS,
            "Invalid params: requestState names no call waiting for input "
            "(it ended, timed out, or another retry took it over)");
        return;
    }

    switch (rc) {

    case NGX_OK:
        peer->calling = 1;
        /* watch for the caller going away */
        if (ngx_handle_read_event(peer->connection->read, 0) != NGX_OK) {
            ngx_http_reverse_mcp_connector_cancel(call, "mailbox failure");
            ngx_http_reverse_mcp_mb_peer_close(peer);
        }
        return;

    case NGX_DECLINED:
        ngx_http_reverse_mcp_mb_peer_error(peer,
            NGX_HTTP_REVERSE_MCP_ERR_UNAVAILABLE,
            "the server is no longer connected to its worker");
        return;

    case NGX_BUSY:
        ngx_http_reverse_mcp_mb_peer_error(peer,
            NGX_HTTP_REVERSE_MCP_ERR_BUSY,
            "the server does not read its socket (send queue full)");
        return;

    case NGX_AGAIN:
        ngx_http_reverse_mcp_mb_peer_error(peer,
            NGX_HTTP_REVERSE_MCP_ERR_BUSY,
            "the server has too many calls in flight "
            "(reverse_mcp_max_pending), try again");
        return;

    default:
        ngx_http_reverse_mcp_mb_peer_error(peer,
            NGX_HTTP_REVERSE_MCP_ERR_INTERNAL,
            "internal error in the owner worker");
        return;
    }
}


static void
ngx_http_reverse_mcp_mb_peer_notify(ngx_http_reverse_mcp_call_t *call,
    ngx_str_t *json)
{
    ngx_http_reverse_mcp_mb_peer_t  *peer = call->data;

    if (ngx_http_reverse_mcp_mb_frame(&peer->outq,
                                      NGX_HTTP_REVERSE_MCP_MB_NOTIFY, json,
                                      NULL, peer->connection->log)
        != NGX_OK)
    {
        return;
    }

    ngx_http_reverse_mcp_mb_peer_write(peer->connection->write);
}


static void
ngx_http_reverse_mcp_mb_peer_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json)
{
    ngx_http_reverse_mcp_mb_peer_t  *peer = call->data;

    peer->calling = 0;
    peer->done = 1;

    if (ngx_http_reverse_mcp_mb_frame(&peer->outq,
                                      is_error
                                      ? NGX_HTTP_REVERSE_MCP_MB_ERROR
                                      : NGX_HTTP_REVERSE_MCP_MB_RESULT,
                                      json, NULL, peer->connection->log)
        != NGX_OK)
    {
        peer->connection->error = 1;
    }

    /*
     * written (and the peer closed) from a posted event: done() may run
     * inside the peer's own read handler (an ANSWER that ends the socket)
     */
    ngx_post_event(peer->connection->write, &ngx_posted_events);
}


/* a request of the server for the caller, written from a posted event */
static ngx_int_t
ngx_http_reverse_mcp_mb_peer_request(ngx_http_reverse_mcp_call_t *call,
    ngx_str_t *json)
{
    ngx_http_reverse_mcp_mb_peer_t  *peer = call->data;

    if (ngx_http_reverse_mcp_mb_frame(&peer->outq,
                                      NGX_HTTP_REVERSE_MCP_MB_REQUEST, json,
                                      NULL, peer->connection->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!peer->connection->write->posted) {
        ngx_post_event(peer->connection->write, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_mb_peer_error(ngx_http_reverse_mcp_mb_peer_t *peer,
    ngx_int_t code, const char *msg)
{
    u_char     buf[NGX_HTTP_REVERSE_MCP_ERROR_TEXT];
    ngx_str_t  m, json;

    m.data = (u_char *) msg;
    m.len = ngx_strlen(msg);

    json.data = buf;
    json.len = ngx_http_reverse_mcp_call_error_text(buf, code, &m) - buf;

    ngx_http_reverse_mcp_mb_peer_done(&peer->call, 1, &json);
}


static void
ngx_http_reverse_mcp_mb_peer_write(ngx_event_t *ev)
{
    ngx_int_t                        rc;
    ngx_connection_t                *c;
    ngx_http_reverse_mcp_mb_peer_t  *peer;

    c = ev->data;
    peer = c->data;

    rc = ngx_http_reverse_mcp_outq_flush(&peer->outq, c);

    if (rc == NGX_ERROR) {
        if (peer->calling) {
            ngx_http_reverse_mcp_connector_cancel(&peer->call,
                                                  "the caller went away");
            peer->calling = 0;
        }

        /* closing inside notify/done is safe: the connector is done
         * with this call's data once the handler returns, and the peer
         * memory lives until the posted close */
        peer->done = 1;
        c->error = 1;
    }

    if (peer->done && (rc != NGX_AGAIN)) {
        ngx_http_reverse_mcp_mb_peer_close(peer);
    }
}


static void
ngx_http_reverse_mcp_mb_peer_close(ngx_http_reverse_mcp_mb_peer_t *peer)
{
    ngx_pool_t  *pool;

    ngx_http_reverse_mcp_mb_reader_reset(&peer->rd);
    ngx_http_reverse_mcp_outq_free(&peer->outq);

    if (peer->frame) {
        ngx_free(peer->frame);
        peer->frame = NULL;
    }

    pool = peer->pool;

    /* c->pool is ours: keep ngx_close_connection from destroying it */
    peer->connection->pool = NULL;
    ngx_close_connection(peer->connection);
    ngx_destroy_pool(pool);
}


/* the caller's side */


/*
 * Connect cl to the mailbox at cl->sun: ngx_event_connect_peer()'s
 * result; on a failure the connection and the queued frames are gone.
 */
static ngx_int_t
ngx_http_reverse_mcp_mb_connect(ngx_http_reverse_mcp_mb_client_t *cl,
    ngx_uint_t log_error)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    cl->name.data = (u_char *) cl->sun.sun_path;
    cl->name.len = ngx_strlen(cl->sun.sun_path);

    cl->pc.sockaddr = (struct sockaddr *) &cl->sun;
    cl->pc.socklen = sizeof(struct sockaddr_un);
    cl->pc.name = &cl->name;
    cl->pc.get = ngx_event_get_peer;
    cl->pc.log = cl->log;
    cl->pc.log_error = log_error;

    rc = ngx_event_connect_peer(&cl->pc);

    if (rc == NGX_ERROR || rc == NGX_DECLINED || rc == NGX_BUSY) {

        if (cl->pc.connection) {
            ngx_close_connection(cl->pc.connection);
            cl->pc.connection = NULL;
        }

        ngx_http_reverse_mcp_outq_free(&cl->outq);
        return rc;
    }

    c = cl->pc.connection;
    c->data = cl;
    c->write->handler = ngx_http_reverse_mcp_mb_client_write;

    return rc;
}


ngx_int_t
ngx_http_reverse_mcp_mailbox_call(ngx_http_reverse_mcp_call_t *call,
    void **handle)
{
    u_char                            *p;
    size_t                             len;
    ngx_int_t                          rc;
    ngx_str_t                          hdr, lit;
    ngx_connection_t                  *c;
    ngx_http_reverse_mcp_main_conf_t  *mcf;
    ngx_http_reverse_mcp_mb_client_t  *cl;

    cl = ngx_calloc(sizeof(ngx_http_reverse_mcp_mb_client_t), call->log);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->call = call;
    cl->log = call->log;
    ngx_http_reverse_mcp_outq_init(&cl->outq);

    if (ngx_http_reverse_mcp_mb_path((ngx_cycle_t *) ngx_cycle,
                                     call->owner_pid, &cl->sun)
        != NGX_OK)
    {
        ngx_free(cl);
        return NGX_ERROR;
    }

    /* the header: a small JSON object, then "\n", then params */

    lit.len = 0;

    if (call->progress_token.len > 2) {
        /* the token is our own "rmcp-..." string literal: strip quotes */
        lit.data = call->progress_token.data + 1;
        lit.len = call->progress_token.len - 2;
    }

    len = sizeof("{\"conn_id\":,\"timeout\":,\"method\":,\"server\":,"
                 "\"token\":,\"pid\":,\"key\":,\"relay\":,"
                 "\"requests\":false,\"park\":,\"agent\":}\n")
          + 6 * NGX_INT64_LEN
          + ngx_http_reverse_mcp_json_escaped_len(&call->agent)
          + ngx_http_reverse_mcp_json_escaped_len(&call->method)
          + ngx_http_reverse_mcp_json_escaped_len(&call->server)
          + ngx_http_reverse_mcp_json_escaped_len(&lit);

    hdr.data = ngx_alloc(len, call->log);
    if (hdr.data == NULL) {
        ngx_free(cl);
        return NGX_ERROR;
    }

    p = ngx_sprintf(hdr.data, "{\"conn_id\":%uL,\"timeout\":%M,\"method\":",
                    call->conn_id, call->timeout);
    p = ngx_http_reverse_mcp_json_escape(p, &call->method);
    p = ngx_cpymem(p, ",\"server\":", 10);
    p = ngx_http_reverse_mcp_json_escape(p, &call->server);
    p = ngx_cpymem(p, ",\"token\":", 9);
    p = ngx_http_reverse_mcp_json_escape(p, &lit);
    p = ngx_sprintf(p, ",\"pid\":%P,\"key\":%uL,\"relay\":%ui,"
                    "\"requests\":%s,\"park\":%uL,\"agent\":",
                    call->caller_pid, call->key, call->relay,
                    call->request ? "true" : "false", call->park);
    p = ngx_http_reverse_mcp_json_escape(p, &call->agent);
    *p++ = '}';
    *p++ = '\n';
    hdr.len = p - hdr.data;

    rc = ngx_http_reverse_mcp_mb_frame(&cl->outq, NGX_HTTP_REVERSE_MCP_MB_CALL,
                                       &hdr, &call->params, call->log);
    ngx_free(hdr.data);

    if (rc != NGX_OK) {
        ngx_free(cl);
        return NGX_ERROR;
    }

    rc = ngx_http_reverse_mcp_mb_connect(cl, NGX_ERROR_ERR);

    if (rc == NGX_ERROR || rc == NGX_DECLINED || rc == NGX_BUSY) {
        ngx_free(cl);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (kill(call->owner_pid, 0) == -1 && ngx_errno == ESRCH) {
            mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                                 ngx_http_reverse_mcp_module);

            (void) ngx_http_reverse_mcp_registry_purge_pid(mcf->shm_zone,
                                                           call->owner_pid,
                                                           call->log);
            return NGX_DECLINED;
        }

        /* EAGAIN (a full backlog) or a missing socket of a live worker */
        return NGX_BUSY;
    }

    c = cl->pc.connection;
    c->read->handler = ngx_http_reverse_mcp_mb_client_read;

    ngx_add_timer(c->read,
                  call->timeout
                  ? call->timeout + NGX_HTTP_REVERSE_MCP_MB_WAIT_EXTRA
                  : NGX_HTTP_REVERSE_MCP_MB_WAIT_MAX);

    *handle = cl;

    if (rc == NGX_OK) {
        ngx_http_reverse_mcp_mb_client_write(c->write);
    }

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_mb_client_write(ngx_event_t *ev)
{
    ngx_int_t                          rc;
    ngx_connection_t                  *c;
    ngx_http_reverse_mcp_mb_client_t  *cl;

    c = ev->data;
    cl = c->data;

    rc = ngx_http_reverse_mcp_outq_flush(&cl->outq, c);

    if (cl->call == NULL) {
        /* ROUTE: one frame, then closed */

        if (rc == NGX_AGAIN) {
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_WARN, cl->log, 0,
                          "reverse_mcp: a relayed answer could not be "
                          "written to the mailbox \"%V\"", &cl->name);
        }

        ngx_http_reverse_mcp_mb_client_close(cl);
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_http_reverse_mcp_mb_client_fail(cl, NGX_HTTP_REVERSE_MCP_ERR_GONE,
                                            "cannot write to the owner "
                                            "worker's mailbox");
        return;
    }

    if (rc == NGX_OK) {
        ngx_http_reverse_mcp_mb_client_read(c->read);
    }
}


static void
ngx_http_reverse_mcp_mb_client_read(ngx_event_t *ev)
{
    ngx_int_t                          rc;
    ngx_str_t                          json;
    ngx_connection_t                  *c;
    ngx_http_reverse_mcp_call_t       *call;
    ngx_http_reverse_mcp_mb_client_t  *cl;

    c = ev->data;
    cl = c->data;
    call = cl->call;

    if (ev->timedout) {
        ngx_http_reverse_mcp_mb_client_fail(cl,
                                            NGX_HTTP_REVERSE_MCP_ERR_TIMEOUT,
                                            "no answer from the worker "
                                            "holding the server");
        return;
    }

    for ( ;; ) {
        rc = ngx_http_reverse_mcp_mb_read(c, &cl->rd);

        if (rc == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_reverse_mcp_mb_client_fail(cl,
                    NGX_HTTP_REVERSE_MCP_ERR_GONE, "mailbox failure");
            }
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_http_reverse_mcp_mb_client_fail(cl,
                NGX_HTTP_REVERSE_MCP_ERR_GONE,
                "the worker holding the server closed the call "
                "(did it exit?)");
            return;
        }

        json.data = cl->rd.body;
        json.len = cl->rd.len;

        if (cl->rd.type == NGX_HTTP_REVERSE_MCP_MB_NOTIFY) {
            if (call->notify) {
                call->notify(call, &json);
            }

            ngx_http_reverse_mcp_mb_reader_reset(&cl->rd);
            continue;
        }

        if (cl->rd.type == NGX_HTTP_REVERSE_MCP_MB_REQUEST) {
            /*
             * a request of the server for the caller; when it cannot be
             * delivered the caller ends the call (a posted event), which
             * answers the server
             */
            if (call->request) {
                (void) call->request(call, &json);
            }

            ngx_http_reverse_mcp_mb_reader_reset(&cl->rd);
            continue;
        }

        if (cl->rd.type == NGX_HTTP_REVERSE_MCP_MB_RESULT
            || cl->rd.type == NGX_HTTP_REVERSE_MCP_MB_ERROR)
        {
            /* the body outlives done(): it is freed with the client */
            ngx_close_connection(c);
            cl->pc.connection = NULL;

            ngx_http_reverse_mcp_call_remote_done(call,
                cl->rd.type == NGX_HTTP_REVERSE_MCP_MB_ERROR, &json);

            ngx_http_reverse_mcp_mb_client_close(cl);
            return;
        }

        ngx_http_reverse_mcp_mb_client_fail(cl, NGX_HTTP_REVERSE_MCP_ERR_GONE,
                                            "invalid mailbox frame");
        return;
    }
}


static void
ngx_http_reverse_mcp_mb_client_fail(ngx_http_reverse_mcp_mb_client_t *cl,
    ngx_int_t code, const char *msg)
{
    u_char                        buf[NGX_HTTP_REVERSE_MCP_ERROR_TEXT];
    u_char                        text[256], *p;
    ngx_str_t                     m, json;
    ngx_http_reverse_mcp_call_t  *call;

    call = cl->call;

    p = ngx_snprintf(text, sizeof(text), "server \"%V\": %s (worker %P)",
                     &call->server, msg, call->owner_pid);

    m.data = text;
    m.len = p - text;

    ngx_log_error(NGX_LOG_WARN, cl->log, 0, "reverse_mcp: call failed: %V",
                  &m);

    json.data = buf;
    json.len = ngx_http_reverse_mcp_call_error_text(buf, code, &m) - buf;

    if (cl->pc.connection) {
        ngx_close_connection(cl->pc.connection);
        cl->pc.connection = NULL;
    }

    ngx_http_reverse_mcp_call_remote_done(call, 1, &json);

    ngx_http_reverse_mcp_mb_client_close(cl);
}


void
ngx_http_reverse_mcp_mailbox_cancel(void *handle)
{
    ngx_http_reverse_mcp_mb_client_close(handle);
}


void
ngx_http_reverse_mcp_mailbox_detach(void *handle)
{
    ngx_http_reverse_mcp_mb_client_t  *cl = handle;

    ngx_str_t          empty;
    ngx_connection_t  *c;

    c = cl->pc.connection;

    ngx_str_null(&empty);

    if (c == NULL
        || ngx_http_reverse_mcp_mb_frame(&cl->outq,
                                         NGX_HTTP_REVERSE_MCP_MB_DETACH,
                                         &empty, NULL, cl->log)
           != NGX_OK)
    {
        /* the owner sees the connection close: the call is cancelled */
        ngx_http_reverse_mcp_mb_client_close(cl);
        return;
    }

    /* no call any more: written, then closed (as ROUTE) */
    cl->call = NULL;
    c->read->handler = ngx_http_reverse_mcp_mb_client_write;

    if (!c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


ngx_int_t
ngx_http_reverse_mcp_mailbox_answer(void *handle, ngx_str_t *json)
{
    ngx_http_reverse_mcp_mb_client_t  *cl = handle;

    ngx_connection_t  *c;

    c = cl->pc.connection;

    if (c == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_reverse_mcp_mb_frame(&cl->outq,
                                      NGX_HTTP_REVERSE_MCP_MB_ANSWER, json,
                                      NULL, cl->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* written from a posted event: the call may end on a write error */
    if (!c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_reverse_mcp_mailbox_route(ngx_pid_t pid, uint64_t key,
    ngx_str_t *session, ngx_str_t *json, ngx_log_t *log)
{
    u_char                            *p;
    ngx_int_t                          rc;
    ngx_str_t                          hdr;
    ngx_file_info_t                    fi;
    ngx_connection_t                  *c;
    ngx_http_reverse_mcp_mb_client_t  *cl;

    cl = ngx_calloc(sizeof(ngx_http_reverse_mcp_mb_client_t), log);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->log = log;
    ngx_http_reverse_mcp_outq_init(&cl->outq);

    if (ngx_http_reverse_mcp_mb_path((ngx_cycle_t *) ngx_cycle, pid,
                                     &cl->sun)
        != NGX_OK)
    {
        ngx_free(cl);
        return NGX_ERROR;
    }

    /* the pid comes from the caller: no worker, no mailbox, no connect */

    if (ngx_file_info(cl->sun.sun_path, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "reverse_mcp: an answer to a relayed request of a call "
                      "of worker %P, which has no mailbox (gone?), dropped",
                      pid);
        ngx_free(cl);
        return NGX_DECLINED;
    }

    hdr.len = sizeof("{\"key\":,\"session\":}\n") + NGX_INT64_LEN
              + ngx_http_reverse_mcp_json_escaped_len(session);
    hdr.data = ngx_alloc(hdr.len, log);
    if (hdr.data == NULL) {
        ngx_free(cl);
        return NGX_ERROR;
    }

    p = ngx_sprintf(hdr.data, "{\"key\":%uL,\"session\":", key);
    p = ngx_http_reverse_mcp_json_escape(p, session);
    *p++ = '}';
    *p++ = '\n';
    hdr.len = p - hdr.data;

    rc = ngx_http_reverse_mcp_mb_frame(&cl->outq,
                                       NGX_HTTP_REVERSE_MCP_MB_ROUTE, &hdr,
                                       json, log);
    ngx_free(hdr.data);

    if (rc != NGX_OK) {
        ngx_free(cl);
        return NGX_ERROR;
    }

    rc = ngx_http_reverse_mcp_mb_connect(cl, NGX_ERROR_INFO);

    if (rc == NGX_ERROR || rc == NGX_DECLINED || rc == NGX_BUSY) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "reverse_mcp: an answer to a relayed request of a call "
                      "of worker %P, which cannot be reached, dropped",
                      pid);
        ngx_free(cl);

        return rc == NGX_ERROR ? NGX_ERROR : NGX_DECLINED;
    }

    /* nothing is read: the owner closes once it has the frame */
    c = cl->pc.connection;
    c->read->handler = ngx_http_reverse_mcp_mb_client_write;

    if (rc == NGX_OK) {
        ngx_http_reverse_mcp_mb_client_write(c->write);
    }

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_mb_client_close(ngx_http_reverse_mcp_mb_client_t *cl)
{
    if (cl->pc.connection) {
        ngx_close_connection(cl->pc.connection);
        cl->pc.connection = NULL;
    }

    ngx_http_reverse_mcp_mb_reader_reset(&cl->rd);
    ngx_http_reverse_mcp_outq_free(&cl->outq);
    ngx_free(cl);
}
