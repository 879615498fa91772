/*
 * The reverse connector: where reverse MCP servers dial in.
 *
 * Owns: the WebSocket opening handshake and its checks (all errors are
 * HTTP responses before any 101), authentication of the server name and
 * token, the upgraded connection (reads through the frame codec, a bounded
 * send queue written with c->send_chain, ping/pong, the close handshake),
 * and the MCP client role on the socket: initialize, initialized,
 * tools/list with cursors, re-list on list_changed, answers to the
 * server's ping, log notifications written to the error log.  A server
 * lands in the registry only after its tools were listed; it leaves it
 * when its socket closes.
 *
 * Calls in flight (ngx_http_reverse_mcp_call.h) and what the server sends
 * during them: progress (by token) and other notifications (one call in
 * flight) go to the call's notify(); its requests for the client
 * (sampling/createMessage, elicitation/create, roots/list) go to the
 * call's caller when the call is known (one call in flight, or the one
 * whose progress token params._meta.progressToken names) and the caller
 * declared the capability and can be reached: under a gateway id, which
 * the caller's answer brings back (connector_answer) to be replaced by
 * the server's own.  Otherwise the server gets an error saying why.
 * A 2026-07-28 caller gets its requests as input_required and lets the
 * call go (connector_detach): the call stays here, parked, its requests
 * queued, until the caller's retry takes it over (connector_resume) with
 * the answers.
 */

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_registry.h"
#include "ngx_http_reverse_mcp_ws_codec.h"
#include "ngx_http_reverse_mcp_json.h"
#include "ngx_http_reverse_mcp_mcp.h"
#include "ngx_http_reverse_mcp_outq.h"
#include "ngx_http_reverse_mcp_call.h"
#include "ngx_http_reverse_mcp_http.h"

#include <openssl/sha.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#if (NGX_HTTP_SSL)
#include <openssl/x509v3.h>
#endif


#define NGX_HTTP_REVERSE_MCP_ST_INIT      0   /* initialize sent */
#define NGX_HTTP_REVERSE_MCP_ST_LIST      1   /* first tools/list */
#define NGX_HTTP_REVERSE_MCP_ST_READY     2   /* registered */
#define NGX_HTTP_REVERSE_MCP_ST_CLOSING   3   /* close frame sent */

#define NGX_HTTP_REVERSE_MCP_CLOSE_WAIT   2000  /* ms for the peer's close */
#define NGX_HTTP_REVERSE_MCP_MAX_PAGES    1000
#define NGX_HTTP_REVERSE_MCP_LOG_DATA_MAX 2048

#define NGX_HTTP_REVERSE_MCP_UPGRADE_REQUIRED  426

/* relayed requests of the server: errors to it, the longest id kept */
#define NGX_HTTP_REVERSE_MCP_RPC_INVALID         -32600
#define NGX_HTTP_REVERSE_MCP_RPC_NOT_FOUND       -32601
#define NGX_HTTP_REVERSE_MCP_RELAY_TEXT          512
#define NGX_HTTP_REVERSE_MCP_REQUEST_ID_TEXT     256


/* a call in flight on this socket, keyed by the id the gateway sent */
typedef struct {
    ngx_rbtree_node_t                   node;
    ngx_http_reverse_mcp_call_t        *call;
    ngx_http_reverse_mcp_conn_t        *ctx;
    ngx_event_t                         timer;
    ngx_str_t                           token;   /* JSON literal */
    ngx_queue_t                         relays;  /* the server's requests
                                                    its caller has */
    /* 2026-07-28: parked between a caller's rounds */
    ngx_http_reverse_mcp_call_t         stub;    /* the call meanwhile */
    uint64_t                            park;    /* names it: the seq of
                                                    the round's first
                                                    request */
    ngx_event_t                         resume_ev;
    unsigned                            parked:1;
} ngx_http_reverse_mcp_pending_t;


/* a request of the server relayed to the caller of a call */
typedef struct {
    ngx_queue_t                         queue;
    uint64_t                            seq;     /* in the gateway id */
    ngx_str_t                           id;      /* the server's, JSON */
    ngx_str_t                           msg;     /* as relayed: kept for
                                                    a 2026-07-28 caller's
                                                    next round */
} ngx_http_reverse_mcp_relay_t;


/*
 * ctx is malloc'd, not in the request pool: once the 101 is out the
 * request is freed (see ngx_http_reverse_mcp_detach()) and an idle socket
 * holds only the connection, its small pool and ctx.
 */
struct ngx_http_reverse_mcp_conn_s {
    ngx_http_request_t                 *request;  /* NULL once detached */
    ngx_connection_t                   *connection;
    ngx_pool_cleanup_t                 *cln;      /* in the request pool */
    ngx_http_reverse_mcp_loc_conf_t    *lcf;
    ngx_http_reverse_mcp_main_conf_t   *mcf;
    ngx_http_reverse_mcp_agent_conf_t  *acf;
    ngx_http_reverse_mcp_stats_t       *stats;

    ngx_str_t                           agent;
    ngx_str_t                           server;
    uint64_t                            conn_id;
    time_t                              connected_at;
    ngx_uint_t                          state;

    ngx_http_reverse_mcp_ws_parser_t    parser;

    ngx_http_reverse_mcp_outq_t         outq;

    ngx_event_t                         ping_ev;
    ngx_event_t                         timer_ev;
    ngx_event_t                         finalize_ev;  /* posted: detach,
                                                         then finalize */

    int64_t                             next_id;
    int64_t                             init_id;
    int64_t                             list_id;

    /* the tools/list in progress */
    ngx_pool_t                         *list_pool;
    ngx_array_t                        *tools;
    ngx_uint_t                          tools_rejected;
    ngx_str_t                           cursor;
    ngx_uint_t                          pages;

    /* one ngx_alloc'd block holds the three strings */
    u_char                             *meta;
    ngx_str_t                           protocol_version;
    ngx_str_t                           server_info;
    ngx_str_t                           capabilities;

    ngx_msec_t                          send_timeout;

    ngx_pool_t                         *tmp_pool;  /* per message */

    ngx_queue_t                         queue;
    ngx_rbtree_node_t                   id_node;     /* key: conn_id */

    ngx_rbtree_t                        pending;
    ngx_rbtree_node_t                   pending_sentinel;
    ngx_uint_t                          npending;

    unsigned                            header_pending:1;
    unsigned                            awaiting_pong:1;
    unsigned                            close_sent:1;
    unsigned                            close_received:1;
    unsigned                            registered:1;
    unsigned                            relist_pending:1;
    unsigned                            tools_cap:1;
    unsigned                            finalized:1;
    unsigned                            stop:1;
};


static ngx_int_t ngx_http_reverse_mcp_refuse(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t level, const char *reason,
    ngx_str_t *server);
static ngx_int_t ngx_http_reverse_mcp_header_has_token(ngx_table_elt_t *h,
    const char *token, size_t len);
static ngx_int_t ngx_http_reverse_mcp_redact(ngx_pool_t *pool, ngx_str_t *s,
    ngx_uint_t is_args);
static ngx_int_t ngx_http_reverse_mcp_get_arg(ngx_http_request_t *r,
    const char *name, size_t len, ngx_str_t *value);
static ngx_int_t ngx_http_reverse_mcp_check_cert(ngx_http_request_t *r,
    ngx_str_t *server, const char **reason);
static ngx_int_t ngx_http_reverse_mcp_check_token(ngx_http_request_t *r,
    ngx_http_reverse_mcp_loc_conf_t *lcf,
    ngx_http_reverse_mcp_server_conf_t *scf, const char **reason);

static void ngx_http_reverse_mcp_detach(ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_trim(ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_free_ctx(void *data);
static void ngx_http_reverse_mcp_read_event(ngx_event_t *rev);
static void ngx_http_reverse_mcp_write_event(ngx_event_t *wev);
static void ngx_http_reverse_mcp_read(ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_write(ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_run_posted(ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_goodbye(ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_cleanup(void *data);
static void ngx_http_reverse_mcp_read_handler(ngx_http_request_t *r);
static void ngx_http_reverse_mcp_write_handler(ngx_http_request_t *r);
static void ngx_http_reverse_mcp_ping_handler(ngx_event_t *ev);
static void ngx_http_reverse_mcp_timer_handler(ngx_event_t *ev);
static void ngx_http_reverse_mcp_feed(ngx_http_reverse_mcp_conn_t *ctx,
    u_char *buf, size_t len);
static int ngx_http_reverse_mcp_on_message(void *data, int opcode,
    const unsigned char *payload, size_t len);
static int ngx_http_reverse_mcp_on_control(void *data, int opcode,
    const unsigned char *payload, size_t len);

static ngx_int_t ngx_http_reverse_mcp_send(ngx_http_reverse_mcp_conn_t *ctx,
    int opcode, u_char *data, size_t len, ngx_uint_t force);
static ngx_int_t ngx_http_reverse_mcp_send_json(
    ngx_http_reverse_mcp_conn_t *ctx, u_char *data, size_t len);
static ngx_int_t ngx_http_reverse_mcp_flush(ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_close(ngx_http_reverse_mcp_conn_t *ctx,
    int code, const char *reason);
static void ngx_http_reverse_mcp_abort(ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_finalize(ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_finalize_handler(ngx_event_t *ev);
static void ngx_http_reverse_mcp_deregister(ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_maybe_done(ngx_http_reverse_mcp_conn_t *ctx);

static void ngx_http_reverse_mcp_handle_payload(
    ngx_http_reverse_mcp_conn_t *ctx, int opcode, const u_char *p,
    size_t len);
static ngx_int_t ngx_http_reverse_mcp_fast_response(
    ngx_http_reverse_mcp_conn_t *ctx, const u_char *p, size_t len);
static ngx_http_reverse_mcp_pending_t *ngx_http_reverse_mcp_pending_find(
    ngx_http_reverse_mcp_conn_t *ctx, int64_t id);
static void ngx_http_reverse_mcp_handle_frame(
    ngx_http_reverse_mcp_conn_t *ctx, const u_char *p, size_t len);
static void ngx_http_reverse_mcp_handle_message(
    ngx_http_reverse_mcp_conn_t *ctx, yajl_val msg);
static void ngx_http_reverse_mcp_handle_request(
    ngx_http_reverse_mcp_conn_t *ctx, ngx_str_t *method, yajl_val id,
    yajl_val msg);
static ngx_int_t ngx_http_reverse_mcp_relay(ngx_http_reverse_mcp_conn_t *ctx,
    ngx_str_t *method, yajl_val id, yajl_val msg, ngx_int_t *code,
    u_char *text, size_t size);
static ngx_int_t ngx_http_reverse_mcp_reply_error(
    ngx_http_reverse_mcp_conn_t *ctx, ngx_str_t *id, ngx_int_t code,
    ngx_str_t *message);
static void ngx_http_reverse_mcp_relays_fail(
    ngx_http_reverse_mcp_pending_t *pd, const char *why);
static void ngx_http_reverse_mcp_relay_free(ngx_http_reverse_mcp_relay_t *rl);
static void ngx_http_reverse_mcp_relay_cancelled(
    ngx_http_reverse_mcp_conn_t *ctx, yajl_val params, yajl_val msg);
static ngx_http_reverse_mcp_conn_t *ngx_http_reverse_mcp_conn_find(
    uint64_t conn_id);
static ngx_int_t ngx_http_reverse_mcp_parked_request(
    ngx_http_reverse_mcp_call_t *call, ngx_str_t *json);
static void ngx_http_reverse_mcp_parked_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json);
static void ngx_http_reverse_mcp_resume_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_reverse_mcp_relay_answer(
    ngx_http_reverse_mcp_conn_t *ctx, ngx_http_reverse_mcp_pending_t *pd,
    yajl_val responses);
static void ngx_http_reverse_mcp_handle_notification(
    ngx_http_reverse_mcp_conn_t *ctx, ngx_str_t *method, yajl_val params,
    yajl_val msg);
static void ngx_http_reverse_mcp_handle_response(
    ngx_http_reverse_mcp_conn_t *ctx, yajl_val msg, yajl_val id);
static void ngx_http_reverse_mcp_initialized(
    ngx_http_reverse_mcp_conn_t *ctx, yajl_val result, yajl_val error);
static void ngx_http_reverse_mcp_listed(ngx_http_reverse_mcp_conn_t *ctx,
    yajl_val result, yajl_val error);
static ngx_int_t ngx_http_reverse_mcp_list_tools(
    ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_register(ngx_http_reverse_mcp_conn_t *ctx);
static void ngx_http_reverse_mcp_log_notification(
    ngx_http_reverse_mcp_conn_t *ctx, yajl_val params);
static void ngx_http_reverse_mcp_rpc_failed(ngx_http_reverse_mcp_conn_t *ctx,
    const char *what, yajl_val error);


static void ngx_http_reverse_mcp_pending_finish(
    ngx_http_reverse_mcp_pending_t *p, ngx_uint_t is_error, ngx_str_t *json);
static void ngx_http_reverse_mcp_pending_timeout(ngx_event_t *ev);
static void ngx_http_reverse_mcp_missing_capability(
    ngx_http_reverse_mcp_conn_t *ctx, ngx_http_reverse_mcp_pending_t *pd,
    ngx_str_t *method, ngx_uint_t need);
static void ngx_http_reverse_mcp_fail_pending(
    ngx_http_reverse_mcp_conn_t *ctx, ngx_int_t code, const char *message);
static ngx_http_reverse_mcp_pending_t *ngx_http_reverse_mcp_pending_by_token(
    ngx_http_reverse_mcp_conn_t *ctx, ngx_str_t *token);
static void ngx_http_reverse_mcp_send_cancelled(
    ngx_http_reverse_mcp_conn_t *ctx, int64_t id, const char *reason);
static ngx_int_t ngx_http_reverse_mcp_route_notification(
    ngx_http_reverse_mcp_conn_t *ctx, ngx_str_t *method, yajl_val msg);


static ngx_queue_t        ngx_http_reverse_mcp_conns;
static ngx_rbtree_t       ngx_http_reverse_mcp_conn_ids;
static ngx_rbtree_node_t  ngx_http_reverse_mcp_conn_ids_sentinel;
static ngx_uint_t         ngx_http_reverse_mcp_conns_init;
static ngx_atomic_uint_t  ngx_http_reverse_mcp_kicks_seen;

/* one read buffer per worker: idle connections hold no read memory */
static u_char             ngx_http_reverse_mcp_rbuf[16384];


/* the opening handshake */


ngx_int_t
ngx_http_reverse_mcp_connector_handler(ngx_http_request_t *r)
{
    u_char                              *accept_key;
    ngx_int_t                            rc;
    ngx_str_t                            agent, server, value;
    ngx_uint_t                           nservers;
    const char                          *reason;
    ngx_table_elt_t                     *h, *key, *proto;
    ngx_pool_cleanup_t                  *cln;
    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_reverse_mcp_conn_t         *ctx;
    ngx_http_reverse_mcp_loc_conf_t     *lcf;
    ngx_http_reverse_mcp_main_conf_t    *mcf;
    ngx_http_reverse_mcp_agent_conf_t   *acf;
    ngx_http_reverse_mcp_server_conf_t  *scf;
    ngx_http_reverse_mcp_stats_t        *stats;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_reverse_mcp_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);
    stats = ngx_http_reverse_mcp_registry_stats(mcf->shm_zone);

    /* tokens in the query must never reach a log line */

    if (ngx_http_reverse_mcp_connector_redact(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r != r->main) {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_BAD_REQUEST,
                   NGX_LOG_ERR, "the connector cannot run in a subrequest",
                   NULL);
    }

#if (NGX_HTTP_V2)
    if (r->stream) {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_BAD_REQUEST,
                   NGX_LOG_INFO, "WebSocket over HTTP/2 is not supported, "
                   "connect with HTTP/1.1", NULL);
    }
#endif

    if (r->http_version != NGX_HTTP_VERSION_11) {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_BAD_REQUEST,
                   NGX_LOG_INFO, "WebSocket needs HTTP/1.1", NULL);
    }

    if (r->method != NGX_HTTP_GET) {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_NOT_ALLOWED,
                   NGX_LOG_INFO, "WebSocket handshake must use GET", NULL);
    }

    if (r->headers_in.content_length_n > 0 || r->headers_in.chunked) {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_BAD_REQUEST,
                   NGX_LOG_INFO, "WebSocket handshake must not have a body",
                   NULL);
    }

    h = ngx_http_reverse_mcp_http_header_in(r, "Upgrade", 7);

    if (h == NULL
        || !ngx_http_reverse_mcp_header_has_token(h, "websocket", 9))
    {
        return ngx_http_reverse_mcp_refuse(r,
                   NGX_HTTP_REVERSE_MCP_UPGRADE_REQUIRED, NGX_LOG_INFO,
                   "\"Upgrade: websocket\" header is required", NULL);
    }

    h = ngx_http_reverse_mcp_http_header_in(r, "Connection", 10);

    if (h == NULL || !ngx_http_reverse_mcp_header_has_token(h, "upgrade", 7))
    {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_BAD_REQUEST,
                   NGX_LOG_INFO, "\"Connection: Upgrade\" header is required",
                   NULL);
    }

    h = ngx_http_reverse_mcp_http_header_in(r, "Sec-WebSocket-Version", 21);

    if (h == NULL || h->value.len != 2
        || ngx_strncmp(h->value.data, "13", 2) != 0)
    {
        return ngx_http_reverse_mcp_refuse(r,
                   NGX_HTTP_REVERSE_MCP_UPGRADE_REQUIRED, NGX_LOG_INFO,
                   "\"Sec-WebSocket-Version: 13\" is required", NULL);
    }

    key = ngx_http_reverse_mcp_http_header_in(r, "Sec-WebSocket-Key", 17);

    if (key == NULL
        || !ngx_http_reverse_mcp_ws_key_valid(key->value.data,
                                              key->value.len))
    {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_BAD_REQUEST,
                   NGX_LOG_INFO, "missing or invalid Sec-WebSocket-Key",
                   NULL);
    }

    /* who is calling */

    h = ngx_http_reverse_mcp_http_header_in(r, "X-MCP-Server-Name", 17);

    if (h && h->value.len) {
        server = h->value;

    } else if (ngx_http_reverse_mcp_get_arg(r, "server_name", 11, &server)
               != NGX_OK || server.len == 0)
    {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_BAD_REQUEST,
                   NGX_LOG_INFO, "server name required: send the "
                   "X-MCP-Server-Name header or ?server_name=", NULL);
    }

    if (!ngx_http_reverse_mcp_name_valid(&server)) {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_BAD_REQUEST,
                   NGX_LOG_INFO, "invalid server name", NULL);
    }

    if (ngx_http_complex_value(r, lcf->connector, &agent) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    acf = ngx_http_reverse_mcp_find_agent(mcf, &agent);

    if (acf == NULL) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "reverse_mcp: connector agent \"%V\" is not defined",
                      &agent);
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_NOT_FOUND,
                   NGX_LOG_INFO, "unknown agent", &server);
    }

    scf = ngx_http_reverse_mcp_find_server(acf, &server);

    if (scf == NULL) {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_FORBIDDEN,
                   NGX_LOG_WARN, "server is not registered for this agent",
                   &server);
    }

    if (scf->disabled) {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_FORBIDDEN,
                   NGX_LOG_WARN, "server is disabled", &server);
    }

    if (ngx_http_reverse_mcp_check_token(r, lcf, scf, &reason) != NGX_OK) {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_UNAUTHORIZED,
                   NGX_LOG_WARN, reason, &server);
    }

    if (lcf->cert_binding
        && ngx_http_reverse_mcp_check_cert(r, &server, &reason) != NGX_OK)
    {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_FORBIDDEN,
                   NGX_LOG_WARN, reason, &server);
    }

    if (ngx_http_reverse_mcp_registry_lookup(mcf->shm_zone, &agent, &server,
                                             &nservers))
    {
        if (lcf->duplicate == NGX_HTTP_REVERSE_MCP_DUP_REJECT) {
            return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_CONFLICT,
                       NGX_LOG_WARN, "server name already connected",
                       &server);
        }

    } else if (nservers >= acf->max_servers) {
        return ngx_http_reverse_mcp_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                   NGX_LOG_WARN, "agent server limit reached", &server);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /* accept */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_calloc(sizeof(ngx_http_reverse_mcp_conn_t) + acf->name.len
                     + server.len, r->connection->log);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* until the connection is set up, the request pool only frees ctx */
    cln->handler = ngx_http_reverse_mcp_free_ctx;
    cln->data = ctx;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ctx->request = r;
    ctx->connection = r->connection;
    ctx->cln = cln;
    ctx->lcf = lcf;
    ctx->mcf = mcf;
    ctx->acf = acf;
    ctx->stats = stats;
    ctx->send_timeout = clcf->send_timeout;
    ngx_http_reverse_mcp_outq_init(&ctx->outq);
    ctx->next_id = 1;
    ctx->connected_at = ngx_time();

    ctx->agent.data = (u_char *) (ctx + 1);
    ctx->agent.len = acf->name.len;
    ngx_memcpy(ctx->agent.data, acf->name.data, acf->name.len);

    ctx->server.data = ctx->agent.data + ctx->agent.len;
    ctx->server.len = server.len;
    ngx_memcpy(ctx->server.data, server.data, server.len);

    accept_key = ngx_pnalloc(r->pool, 28);
    if (accept_key == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_reverse_mcp_ws_accept_key(key->value.data, key->value.len,
                                           accept_key)
        != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
    r->headers_out.content_length_n = -1;
    r->keepalive = 0;

    ngx_str_set(&value, "websocket");
    if (ngx_http_reverse_mcp_http_add_header(r, "Upgrade", &value) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    value.data = accept_key;
    value.len = 28;
    if (ngx_http_reverse_mcp_http_add_header(r, "Sec-WebSocket-Accept", &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    proto = ngx_http_reverse_mcp_http_header_in(r, "Sec-WebSocket-Protocol",
                                                22);

    if (proto && ngx_http_reverse_mcp_header_has_token(proto, "mcp", 3)) {
        ngx_str_set(&value, "mcp");
        if (ngx_http_reverse_mcp_http_add_header(r, "Sec-WebSocket-Protocol",
                                            &value)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ctx->conn_id = ngx_http_reverse_mcp_registry_next_id(mcf->shm_zone);

    ctx->parser.max_message = lcf->max_message;
    ctx->parser.server_side = 1;
    ctx->parser.on_message = ngx_http_reverse_mcp_on_message;
    ctx->parser.on_control = ngx_http_reverse_mcp_on_control;
    ctx->parser.data = ctx;
    ngx_http_reverse_mcp_ws_parser_init(&ctx->parser);

    ctx->ping_ev.handler = ngx_http_reverse_mcp_ping_handler;
    ctx->ping_ev.data = ctx;
    ctx->ping_ev.log = r->connection->log;

    ctx->timer_ev.handler = ngx_http_reverse_mcp_timer_handler;
    ctx->timer_ev.data = ctx;
    ctx->timer_ev.log = r->connection->log;

    ctx->finalize_ev.handler = ngx_http_reverse_mcp_finalize_handler;
    ctx->finalize_ev.data = ctx;
    ctx->finalize_ev.log = r->connection->log;

    if (!ngx_http_reverse_mcp_conns_init) {
        ngx_queue_init(&ngx_http_reverse_mcp_conns);
        ngx_rbtree_init(&ngx_http_reverse_mcp_conn_ids,
                        &ngx_http_reverse_mcp_conn_ids_sentinel,
                        ngx_rbtree_insert_value);
        ngx_http_reverse_mcp_conns_init = 1;
    }

    ngx_queue_insert_tail(&ngx_http_reverse_mcp_conns, &ctx->queue);

    ctx->id_node.key = (ngx_rbtree_key_t) ctx->conn_id;
    ngx_rbtree_insert(&ngx_http_reverse_mcp_conn_ids, &ctx->id_node);

    ngx_rbtree_init(&ctx->pending, &ctx->pending_sentinel,
                    ngx_rbtree_insert_value);

    cln->handler = ngx_http_reverse_mcp_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_reverse_mcp_module);

    (void) ngx_atomic_fetch_add(&stats->handshakes, 1);
    (void) ngx_atomic_fetch_add(&stats->connections, 1);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    if (ngx_http_send_special(r, NGX_HTTP_FLUSH) == NGX_ERROR) {
        return NGX_ERROR;
    }

    ctx->header_pending = (r->out != NULL);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "reverse_mcp: server \"%V\" of agent \"%V\" connected "
                  "(connection %uL)", &ctx->server, &ctx->agent,
                  ctx->conn_id);

    r->main->count++;
    r->read_event_handler = ngx_http_reverse_mcp_read_handler;
    r->write_event_handler = ngx_http_reverse_mcp_write_handler;

    if (!ctx->header_pending) {
        /* the request is freed once this handler has returned */
        ngx_post_event(&ctx->finalize_ev, &ngx_posted_events);
    }

    /* the handshake, the ping timer: both keep a draining worker alive */

    ngx_add_timer(&ctx->timer_ev, lcf->handshake_timeout);
    ngx_add_timer(&ctx->ping_ev, lcf->ping_interval);

    ctx->init_id = ctx->next_id++;

    /*
     * the client capabilities are those the gateway relays to the caller
     * of a call; each caller's own are checked when a request comes
     */

    {
        u_char  buf[512], *p;

        p = ngx_snprintf(buf, sizeof(buf),
                "{\"jsonrpc\":\"2.0\",\"id\":%L,\"method\":\"initialize\","
                "\"params\":{\"protocolVersion\":\""
                NGX_HTTP_REVERSE_MCP_PROTOCOL_VERSION "\","
                "\"capabilities\":{\"sampling\":{},\"elicitation\":"
                "{\"form\":{},\"url\":{}},\"roots\":{}},"
                "\"clientInfo\":{\"name\":"
                "\"ngx_http_reverse_mcp_module\",\"version\":\""
                NGX_HTTP_REVERSE_MCP_VERSION "\"}}}", ctx->init_id);

        (void) ngx_http_reverse_mcp_send_json(ctx, buf, p - buf);
    }

    /* bytes the client pipelined after the handshake */

    if (!ctx->finalized && r->header_in->pos < r->header_in->last) {
        u_char  *pos;
        size_t   n;

        pos = r->header_in->pos;
        n = r->header_in->last - pos;
        r->header_in->pos = r->header_in->last;

        ngx_http_reverse_mcp_feed(ctx, pos, n);
    }

    if (!ctx->finalized) {
        ngx_http_reverse_mcp_read(ctx);
    }

    return NGX_DONE;
}


/*
 * Once the 101 is out, the socket no longer needs its HTTP request: like
 * ngx_http_set_keepalive() this frees the request pool (its access log
 * line, status 101, is written now) and the header buffers, and points
 * the connection's events at ctx.  Runs as a posted event, after the
 * request's handlers have returned.
 */
static void
ngx_http_reverse_mcp_detach(ngx_http_reverse_mcp_conn_t *ctx)
{
    ngx_buf_t              *b;
    ngx_uint_t              i;
    ngx_chain_t            *cl, *ln;
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_connection_t  *hc;

    r = ctx->request;
    c = ctx->connection;
    hc = r->http_connection;

    ctx->cln->handler = NULL;
    ctx->cln = NULL;
    ctx->request = NULL;

    ngx_http_free_request(r, 0);

    c->destroyed = 0;
    c->data = ctx;
    c->read->handler = ngx_http_reverse_mcp_read_event;
    c->write->handler = ngx_http_reverse_mcp_write_event;
    c->log->action = NULL;

    b = c->buffer;

    if (b && b->start && ngx_pfree(c->pool, b->start) == NGX_OK) {
        b->start = NULL;
        b->pos = NULL;
        b->last = NULL;
        b->end = NULL;
    }

    /* the large header buffers */

    for (i = 0; i < 2; i++) {
        for (cl = i ? hc->busy : hc->free; cl; /* void */) {
            ln = cl;
            cl = cl->next;
            ngx_pfree(c->pool, ln->buf->start);
            ngx_free_chain(c->pool, ln);
        }
    }

    hc->free = NULL;
    hc->busy = NULL;
    hc->nbusy = 0;

    ngx_http_reverse_mcp_trim(ctx);

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/* an idle socket keeps no buffers: the frame parser's, the TLS write one */
static void
ngx_http_reverse_mcp_trim(ngx_http_reverse_mcp_conn_t *ctx)
{
    ngx_http_reverse_mcp_ws_parser_trim(&ctx->parser);

#if (NGX_HTTP_SSL)
    {
        ngx_connection_t  *c;

        c = ctx->connection;

        if (c->ssl && ctx->request == NULL && ctx->outq.out == NULL
            && !(c->buffered & NGX_SSL_BUFFERED))
        {
            ngx_ssl_free_buffer(c);
        }
    }
#endif
}


static void
ngx_http_reverse_mcp_free_ctx(void *data)
{
    ngx_http_reverse_mcp_conn_t  *ctx = data;

    if (ctx->meta) {
        ngx_free(ctx->meta);
    }

    ngx_free(ctx);
}


/* the events of a detached connection */

static void
ngx_http_reverse_mcp_read_event(ngx_event_t *rev)
{
    ngx_connection_t             *c;
    ngx_http_reverse_mcp_conn_t  *ctx;

    c = rev->data;
    ctx = c->data;

    if (c->close) {
        /* worker_shutdown_timeout: close now (goodbye in cleanup) */
        ngx_http_reverse_mcp_cleanup(ctx);
        ngx_http_close_connection(c);
        return;
    }

    ngx_http_reverse_mcp_read(ctx);
}


static void
ngx_http_reverse_mcp_write_event(ngx_event_t *wev)
{
    ngx_connection_t  *c;

    c = wev->data;

    ngx_http_reverse_mcp_write(c->data);
}


static ngx_int_t
ngx_http_reverse_mcp_refuse(ngx_http_request_t *r, ngx_uint_t status,
    ngx_uint_t level, const char *reason, ngx_str_t *server)
{
    size_t                             len;
    ngx_int_t                          rc;
    ngx_buf_t                         *b;
    ngx_str_t                          value;
    ngx_chain_t                        out;
    ngx_http_reverse_mcp_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);

    (void) ngx_atomic_fetch_add(
               &ngx_http_reverse_mcp_registry_stats(mcf->shm_zone)
                   ->handshakes_refused, 1);

    if (server) {
        ngx_log_error(level, r->connection->log, 0,
                      "reverse_mcp: refused server \"%V\": %s (%ui)",
                      server, reason, status);

    } else {
        ngx_log_error(level, r->connection->log, 0,
                      "reverse_mcp: refused WebSocket handshake: %s (%ui)",
                      reason, status);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    if (status == NGX_HTTP_UNAUTHORIZED) {
        ngx_str_set(&value, "Bearer realm=\"reverse-mcp\"");
        if (ngx_http_reverse_mcp_http_add_header(r, "WWW-Authenticate", &value)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (status == NGX_HTTP_REVERSE_MCP_UPGRADE_REQUIRED) {
        ngx_str_set(&value, "websocket");
        if (ngx_http_reverse_mcp_http_add_header(r, "Upgrade", &value)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&value, "13");
        if (ngx_http_reverse_mcp_http_add_header(r, "Sec-WebSocket-Version",
                                            &value)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (status == NGX_HTTP_NOT_ALLOWED) {
        ngx_str_set(&value, "GET");
        if (ngx_http_reverse_mcp_http_add_header(r, "Allow", &value)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    len = ngx_strlen(reason) + 1;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, reason, len - 1);
    *b->last++ = '\n';
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_reverse_mcp_check_token(ngx_http_request_t *r,
    ngx_http_reverse_mcp_loc_conf_t *lcf,
    ngx_http_reverse_mcp_server_conf_t *scf, const char **reason)
{
    u_char            digest[32];
    ngx_str_t         token;
    ngx_table_elt_t  *h;

    if (scf->no_auth) {
        return NGX_OK;
    }

    h = r->headers_in.authorization;

    if (h) {
        /* the header, when sent, is the token: it is never combined */
        if (h->value.len < 7
            || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) != 0)
        {
            *reason = "Authorization header is not \"Bearer <token>\"";
            return NGX_DECLINED;
        }

        token.data = h->value.data + 7;
        token.len = h->value.len - 7;

        while (token.len && token.data[0] == ' ') {
            token.data++;
            token.len--;
        }

        while (token.len && token.data[token.len - 1] == ' ') {
            token.len--;
        }

    } else if (ngx_http_reverse_mcp_get_arg(r, "token", 5, &token) == NGX_OK)
    {
        if (!lcf->query_token) {
            *reason = "query tokens are disabled, send "
                      "\"Authorization: Bearer <token>\"";
            return NGX_DECLINED;
        }

    } else {
        *reason = "token required";
        return NGX_DECLINED;
    }

    (void) SHA256(token.data, token.len, digest);

    if (CRYPTO_memcmp(digest, scf->token_sha256, 32) != 0) {
        *reason = "wrong token";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * reverse_mcp_client_cert_binding: the connection's client certificate,
 * verified by nginx (ssl_verify_client on or optional), must name the
 * server: a subjectAltName dNSName equal to it, or, when the certificate
 * has no dNSName, its subject CN (host name rules: case-insensitive, no
 * wildcards).
 */

static ngx_int_t
ngx_http_reverse_mcp_check_cert(ngx_http_request_t *r, ngx_str_t *server,
    const char **reason)
{
#if (NGX_HTTP_SSL)
    int    rc;
    X509  *cert;

    if (r->connection->ssl == NULL) {
        *reason = "a client certificate is required "
                  "(reverse_mcp_client_cert_binding), the connection is "
                  "not TLS";
        return NGX_DECLINED;
    }

    cert = SSL_get_peer_certificate(r->connection->ssl->connection);

    if (cert == NULL) {
        *reason = "a client certificate is required "
                  "(reverse_mcp_client_cert_binding)";
        return NGX_DECLINED;
    }

    if (SSL_get_verify_result(r->connection->ssl->connection) != X509_V_OK) {
        X509_free(cert);
        *reason = "the client certificate did not verify";
        return NGX_DECLINED;
    }

    rc = X509_check_host(cert, (const char *) server->data, server->len,
                         X509_CHECK_FLAG_NO_WILDCARDS, NULL);

    X509_free(cert);

    if (rc != 1) {
        *reason = "the client certificate does not name this server "
                  "(reverse_mcp_client_cert_binding)";
        return NGX_DECLINED;
    }

    return NGX_OK;

#else

    *reason = "reverse_mcp_client_cert_binding needs nginx with TLS";
    return NGX_DECLINED;

#endif
}


/* a comma-separated header value contains token (case-insensitive) */
static ngx_int_t
ngx_http_reverse_mcp_header_has_token(ngx_table_elt_t *h, const char *token,
    size_t len)
{
    u_char  *p, *end, *start, *last;

    p = h->value.data;
    end = p + h->value.len;

    while (p < end) {

        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        start = p;

        while (p < end && *p != ',') {
            p++;
        }

        last = p;

        while (last > start && (last[-1] == ' ' || last[-1] == '\t')) {
            last--;
        }

        if ((size_t) (last - start) == len
            && ngx_strncasecmp(start, (u_char *) token, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* a query argument, URL-decoded into request pool memory */
static ngx_int_t
ngx_http_reverse_mcp_get_arg(ngx_http_request_t *r, const char *name,
    size_t len, ngx_str_t *value)
{
    u_char     *dst, *src;
    ngx_str_t   raw;

    if (ngx_http_arg(r, (u_char *) name, len, &raw) != NGX_OK) {
        return NGX_DECLINED;
    }

    dst = ngx_pnalloc(r->pool, raw.len + 1);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    value->data = dst;
    src = raw.data;

    ngx_unescape_uri(&dst, &src, raw.len, NGX_UNESCAPE_URI);

    value->len = dst - value->data;

    return NGX_OK;
}


/*
 * Replace the value of every "token=" query argument in s with "***".
 * s is a request line or URI (arguments after '?').  The arguments
 * themselves (r->args) still carry the token for the handshake, but
 * $request, $request_uri and every error log line use the copies.
 */
static ngx_int_t
ngx_http_reverse_mcp_redact(ngx_pool_t *pool, ngx_str_t *s,
    ngx_uint_t is_args)
{
    u_char  *p, *end, *q, *dst, *start;

    p = s->data;
    end = s->data + s->len;

    if (!is_args) {
        p = ngx_strlchr(p, end, '?');
        if (p == NULL) {
            return NGX_OK;
        }

        p++;
    }

    start = p;

    /* quick check */
    if (ngx_strlcasestrn(start, end, (u_char *) "token=", 6 - 1) == NULL) {
        return NGX_OK;
    }

    dst = ngx_pnalloc(pool, s->len + 3 * 16);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    q = ngx_cpymem(dst, s->data, start - s->data);
    p = start;

    while (p < end) {

        /* any case: ngx_http_arg() finds "TOKEN=" too */
        if (end - p >= 6 && ngx_strncasecmp(p, (u_char *) "token=", 6) == 0
            && (p == start || p[-1] == '&' || p[-1] == ';'))
        {
            q = ngx_cpymem(q, p, 6);
            q = ngx_cpymem(q, "***", 3);
            p += 6;

            while (p < end && *p != '&' && *p != ';' && *p != ' '
                   && *p != '#')
            {
                p++;
            }

            if ((size_t) (q - dst) + (end - p) > s->len + 3 * 16) {
                return NGX_ERROR;
            }

            continue;
        }

        *q++ = *p++;
    }

    s->data = dst;
    s->len = q - dst;

    return NGX_OK;
}


/*
 * Also called in the rewrite phase of connector locations, so that
 * nginx's own refusals (deny, auth_request) log no token either.
 */
ngx_int_t
ngx_http_reverse_mcp_connector_redact(ngx_http_request_t *r)
{
    if (r->args.len == 0) {
        return NGX_OK;
    }

    if (ngx_http_reverse_mcp_redact(r->pool, &r->request_line, 0) != NGX_OK
        || ngx_http_reverse_mcp_redact(r->pool, &r->unparsed_uri, 0)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* connection lifetime */


/*
 * The worker goes away without the event loop (exit, or nginx closing
 * the connection at worker_shutdown_timeout): one best-effort write of a
 * close frame 1001, when nothing else is half-written on the socket.
 */
static void
ngx_http_reverse_mcp_goodbye(ngx_http_reverse_mcp_conn_t *ctx)
{
    u_char             buf[NGX_HTTP_REVERSE_MCP_WS_MAX_HEADER + 125];
    u_char             payload[125];
    size_t             n, hlen;
    ngx_connection_t  *c;

    if (ctx->close_sent || ctx->header_pending || ctx->outq.out) {
        return;
    }

    c = ctx->connection;

    n = ngx_http_reverse_mcp_ws_close_payload(payload,
            NGX_HTTP_REVERSE_MCP_WS_CLOSE_GOING_AWAY,
            "gateway shutting down", sizeof("gateway shutting down") - 1);
    hlen = ngx_http_reverse_mcp_ws_frame_header(buf,
               NGX_HTTP_REVERSE_MCP_WS_OP_CLOSE, n, NULL);
    ngx_memcpy(buf + hlen, payload, n);

    (void) c->send(c, buf, hlen + n);

    ctx->close_sent = 1;
}


static void
ngx_http_reverse_mcp_cleanup(void *data)
{
    ngx_http_reverse_mcp_conn_t  *ctx = data;

    ngx_connection_t              *c;

    c = ctx->connection;

    /*
     * nginx is closing us (worker_shutdown_timeout): say goodbye.  The
     * socket is still open here.
     */
    if ((ngx_exiting || ngx_terminate) && c->fd != (ngx_socket_t) -1) {
        ngx_http_reverse_mcp_goodbye(ctx);
    }

    ngx_http_reverse_mcp_deregister(ctx);

    ngx_http_reverse_mcp_fail_pending(ctx, NGX_HTTP_REVERSE_MCP_ERR_GONE,
                                      "the reverse server disconnected");

    if (ctx->ping_ev.timer_set) {
        ngx_del_timer(&ctx->ping_ev);
    }

    if (ctx->timer_ev.timer_set) {
        ngx_del_timer(&ctx->timer_ev);
    }

    if (ctx->finalize_ev.posted) {
        ngx_delete_posted_event(&ctx->finalize_ev);
    }

    ngx_http_reverse_mcp_ws_parser_free(&ctx->parser);

    ngx_http_reverse_mcp_outq_free(&ctx->outq);

    if (ctx->list_pool) {
        ngx_destroy_pool(ctx->list_pool);
        ctx->list_pool = NULL;
    }

    ngx_queue_remove(&ctx->queue);
    ngx_rbtree_delete(&ngx_http_reverse_mcp_conn_ids, &ctx->id_node);

    (void) ngx_atomic_fetch_add(&ctx->stats->connections, -1);

    ngx_http_reverse_mcp_free_ctx(ctx);
}


static void
ngx_http_reverse_mcp_deregister(ngx_http_reverse_mcp_conn_t *ctx)
{
    if (!ctx->registered) {
        return;
    }

    ctx->registered = 0;

    if (ngx_http_reverse_mcp_registry_delete(ctx->mcf->shm_zone, &ctx->agent,
                                             &ctx->server, ctx->conn_id)
        == NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                      "reverse_mcp: server \"%V\" of agent \"%V\" "
                      "unregistered (connection %uL)", &ctx->server,
                      &ctx->agent, ctx->conn_id);
    }
}


/*
 * Finalizing frees the request pool, and ctx with it, so it never happens
 * under a caller that may still use ctx: it is posted and runs after the
 * current event handler returned.
 */
static void
ngx_http_reverse_mcp_finalize(ngx_http_reverse_mcp_conn_t *ctx)
{
    if (ctx->finalized) {
        return;
    }

    ctx->finalized = 1;
    ctx->stop = 1;

    ngx_http_reverse_mcp_deregister(ctx);

    ngx_http_reverse_mcp_fail_pending(ctx, NGX_HTTP_REVERSE_MCP_ERR_GONE,
                                      "the reverse server disconnected");

    if (ctx->ping_ev.timer_set) {
        ngx_del_timer(&ctx->ping_ev);
    }

    if (ctx->timer_ev.timer_set) {
        ngx_del_timer(&ctx->timer_ev);
    }

    ngx_post_event(&ctx->finalize_ev, &ngx_posted_events);
}


static void
ngx_http_reverse_mcp_finalize_handler(ngx_event_t *ev)
{
    ngx_http_reverse_mcp_conn_t  *ctx = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = ctx->connection;

    if (!ctx->finalized) {
        /* posted after the 101 went out */
        if (r) {
            ngx_http_reverse_mcp_detach(ctx);
        }

        return;
    }

    /*
     * The close handshake is over (or impossible): close the TCP
     * connection now, without nginx's lingering close, as RFC 6455 7.1.1
     * asks of a server.
     */

    if (r == NULL) {
        ngx_http_reverse_mcp_cleanup(ctx);
        ngx_http_close_connection(c);
        return;
    }

    r->keepalive = 0;

    ngx_http_finalize_request(r, NGX_HTTP_CLOSE);
    ngx_http_run_posted_requests(c);
}


/* after a handler that may have finalized a request still attached */
static void
ngx_http_reverse_mcp_run_posted(ngx_http_reverse_mcp_conn_t *ctx)
{
    if (ctx->request) {
        ngx_http_run_posted_requests(ctx->connection);
    }
}


/* the peer is gone or the socket failed: no close handshake possible */
static void
ngx_http_reverse_mcp_abort(ngx_http_reverse_mcp_conn_t *ctx)
{
    ctx->connection->error = 1;
    ngx_http_reverse_mcp_finalize(ctx);
}


static void
ngx_http_reverse_mcp_close(ngx_http_reverse_mcp_conn_t *ctx, int code,
    const char *reason)
{
    u_char      payload[125];
    size_t      n;
    ngx_uint_t  level;

    ctx->stop = 1;

    if (ctx->state == NGX_HTTP_REVERSE_MCP_ST_CLOSING || ctx->finalized) {
        return;
    }

    level = (code == NGX_HTTP_REVERSE_MCP_WS_CLOSE_NORMAL
             || code == NGX_HTTP_REVERSE_MCP_WS_CLOSE_GOING_AWAY)
            ? NGX_LOG_INFO : NGX_LOG_WARN;

    ngx_log_error(level, ctx->connection->log, 0,
                  "reverse_mcp: closing server \"%V\" of agent \"%V\" with "
                  "%d: %s", &ctx->server, &ctx->agent, code, reason);

    ctx->state = NGX_HTTP_REVERSE_MCP_ST_CLOSING;

    ngx_http_reverse_mcp_deregister(ctx);

    ngx_http_reverse_mcp_fail_pending(ctx, NGX_HTTP_REVERSE_MCP_ERR_GONE,
                                      "the reverse server connection is "
                                      "closing");

    n = ngx_http_reverse_mcp_ws_close_payload(payload, code, reason,
                                              ngx_strlen(reason));

    if (ngx_http_reverse_mcp_send(ctx, NGX_HTTP_REVERSE_MCP_WS_OP_CLOSE,
                                  payload, n, 1)
        != NGX_OK)
    {
        ngx_http_reverse_mcp_abort(ctx);
        return;
    }

    ctx->close_sent = 1;

    if (ctx->timer_ev.timer_set) {
        ngx_del_timer(&ctx->timer_ev);
    }

    if (ctx->ping_ev.timer_set) {
        ngx_del_timer(&ctx->ping_ev);
    }

    ngx_add_timer(&ctx->timer_ev, NGX_HTTP_REVERSE_MCP_CLOSE_WAIT);

    if (ngx_http_reverse_mcp_flush(ctx) == NGX_ERROR) {
        ngx_http_reverse_mcp_abort(ctx);
        return;
    }

    ngx_http_reverse_mcp_maybe_done(ctx);
}


/* finalize once both close frames crossed and our queue is empty */
static void
ngx_http_reverse_mcp_maybe_done(ngx_http_reverse_mcp_conn_t *ctx)
{
    if (!ctx->finalized && ctx->close_sent && ctx->close_received
        && ctx->outq.out == NULL && !ctx->header_pending)
    {
        ngx_http_reverse_mcp_finalize(ctx);
    }
}


static void
ngx_http_reverse_mcp_timer_handler(ngx_event_t *ev)
{
    ngx_http_reverse_mcp_conn_t  *ctx = ev->data;

    ngx_connection_t  *c;

    c = ctx->connection;

    switch (ctx->state) {

    case NGX_HTTP_REVERSE_MCP_ST_INIT:
    case NGX_HTTP_REVERSE_MCP_ST_LIST:
        ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_POLICY,
                                   ctx->state == NGX_HTTP_REVERSE_MCP_ST_INIT
                                   ? "initialize timed out"
                                   : "tools/list timed out");
        break;

    case NGX_HTTP_REVERSE_MCP_ST_READY:
        /* a re-list timed out: keep the tools we have */
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "reverse_mcp: server \"%V\" did not answer tools/list "
                      "in %Mms, keeping its previous tools", &ctx->server,
                      ctx->lcf->call_timeout);
        ctx->list_id = 0;

        if (ctx->list_pool) {
            ngx_destroy_pool(ctx->list_pool);
            ctx->list_pool = NULL;
        }

        break;

    default: /* CLOSING */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "reverse_mcp: server \"%V\" did not answer the close "
                      "frame in time", &ctx->server);
        ngx_http_reverse_mcp_abort(ctx);
        break;
    }

    ngx_http_reverse_mcp_run_posted(ctx);
}


static void
ngx_http_reverse_mcp_ping_handler(ngx_event_t *ev)
{
    ngx_http_reverse_mcp_conn_t  *ctx = ev->data;

    ngx_connection_t  *c;

    c = ctx->connection;

    if (ctx->state == NGX_HTTP_REVERSE_MCP_ST_CLOSING) {
        /* nothing but the close frame goes out after it */
        return;
    }

    if (ctx->awaiting_pong) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "reverse_mcp: server \"%V\" of agent \"%V\" sent no "
                      "pong within %Mms, closing", &ctx->server, &ctx->agent,
                      ctx->lcf->ping_timeout);
        ngx_http_reverse_mcp_abort(ctx);
        ngx_http_reverse_mcp_run_posted(ctx);
        return;
    }

    if (ngx_http_reverse_mcp_send(ctx, NGX_HTTP_REVERSE_MCP_WS_OP_PING,
                                  (u_char *) "rmcp", 4, 1)
        != NGX_OK)
    {
        ngx_http_reverse_mcp_abort(ctx);
        ngx_http_reverse_mcp_run_posted(ctx);
        return;
    }

    ctx->awaiting_pong = 1;
    ngx_add_timer(&ctx->ping_ev, ctx->lcf->ping_timeout);

    if (ngx_http_reverse_mcp_flush(ctx) == NGX_ERROR) {
        ngx_http_reverse_mcp_abort(ctx);
        ngx_http_reverse_mcp_run_posted(ctx);
    }
}


/* reading */


static void
ngx_http_reverse_mcp_read_handler(ngx_http_request_t *r)
{
    ngx_http_reverse_mcp_conn_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_reverse_mcp_module);

    if (ctx) {
        ngx_http_reverse_mcp_read(ctx);
    }
}


static void
ngx_http_reverse_mcp_read(ngx_http_reverse_mcp_conn_t *ctx)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = ctx->connection;

    if (ctx->finalized) {
        return;
    }

    for ( ;; ) {

        n = c->recv(c, ngx_http_reverse_mcp_rbuf,
                    sizeof(ngx_http_reverse_mcp_rbuf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_reverse_mcp_abort(ctx);
                return;
            }

            ngx_http_reverse_mcp_trim(ctx);

            return;
        }

        if (n == 0 || n == NGX_ERROR) {
            if (!ctx->close_received) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "reverse_mcp: server \"%V\" of agent \"%V\" "
                              "closed the connection without a close frame",
                              &ctx->server, &ctx->agent);
            }

            ngx_http_reverse_mcp_abort(ctx);
            return;
        }

        ngx_http_reverse_mcp_feed(ctx, ngx_http_reverse_mcp_rbuf, n);

        if (ctx->finalized) {
            return;
        }
    }
}


static void
ngx_http_reverse_mcp_feed(ngx_http_reverse_mcp_conn_t *ctx, u_char *buf,
    size_t len)
{
    int     rc;
    size_t  used;

    while (len && !ctx->finalized) {

        if (ctx->close_received) {
            /* nothing may follow a close frame */
            break;
        }

        ctx->stop = 0;

        rc = ngx_http_reverse_mcp_ws_parse(&ctx->parser, buf, len, &used);

        if (rc == NGX_HTTP_REVERSE_MCP_WS_FAIL) {
            ngx_http_reverse_mcp_close(ctx, ctx->parser.close_code,
                                       ctx->parser.error);

            /*
             * "Fail the WebSocket Connection" (RFC 6455 7.1.7): nothing
             * more is read, TCP closes once the close frame is out
             */
            ctx->close_received = 1;
            ngx_http_reverse_mcp_maybe_done(ctx);
            return;
        }

        if (rc == NGX_HTTP_REVERSE_MCP_WS_OK) {
            break;
        }

        /* STOP: a callback changed the connection's state */
        buf += used;
        len -= used;
    }

    if (!ctx->finalized) {
        if (ngx_http_reverse_mcp_flush(ctx) == NGX_ERROR) {
            ngx_http_reverse_mcp_abort(ctx);
            return;
        }

        ngx_http_reverse_mcp_maybe_done(ctx);
    }
}


static int
ngx_http_reverse_mcp_on_control(void *data, int opcode,
    const unsigned char *payload, size_t len)
{
    ngx_http_reverse_mcp_conn_t  *ctx = data;

    int         code;
    ngx_str_t   reason;

    switch (opcode) {

    case NGX_HTTP_REVERSE_MCP_WS_OP_PING:
        if (ctx->state != NGX_HTTP_REVERSE_MCP_ST_CLOSING) {
            if (ngx_http_reverse_mcp_send(ctx,
                                          NGX_HTTP_REVERSE_MCP_WS_OP_PONG,
                                          (u_char *) payload, len, 1)
                != NGX_OK)
            {
                ngx_http_reverse_mcp_abort(ctx);
                return 1;
            }
        }

        return 0;

    case NGX_HTTP_REVERSE_MCP_WS_OP_PONG:
        if (ctx->awaiting_pong
            && ctx->state != NGX_HTTP_REVERSE_MCP_ST_CLOSING)
        {
            ctx->awaiting_pong = 0;

            if (ctx->ping_ev.timer_set) {
                ngx_del_timer(&ctx->ping_ev);
            }

            ngx_add_timer(&ctx->ping_ev, ctx->lcf->ping_interval);
        }

        return 0;

    default: /* CLOSE */
        ctx->close_received = 1;

        code = NGX_HTTP_REVERSE_MCP_WS_CLOSE_NO_STATUS;
        reason.len = 0;
        reason.data = NULL;

        if (len >= 2) {
            code = (payload[0] << 8) | payload[1];
            reason.data = (u_char *) payload + 2;
            reason.len = len - 2;
        }

        ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                      "reverse_mcp: server \"%V\" of agent \"%V\" closed "
                      "the WebSocket with %d \"%V\"", &ctx->server,
                      &ctx->agent, code, &reason);

        ngx_http_reverse_mcp_deregister(ctx);

        ngx_http_reverse_mcp_fail_pending(ctx, NGX_HTTP_REVERSE_MCP_ERR_GONE,
                                          "the reverse server closed the "
                                          "connection");

        if (!ctx->close_sent) {
            /* echo the code (RFC 6455 5.5.1) */
            if (ngx_http_reverse_mcp_send(ctx,
                                          NGX_HTTP_REVERSE_MCP_WS_OP_CLOSE,
                                          (u_char *) payload,
                                          len >= 2 ? 2 : 0, 1)
                != NGX_OK)
            {
                ngx_http_reverse_mcp_abort(ctx);
                return 1;
            }

            ctx->close_sent = 1;
            ctx->state = NGX_HTTP_REVERSE_MCP_ST_CLOSING;
        }

        return 1;
    }
}


static int
ngx_http_reverse_mcp_on_message(void *data, int opcode,
    const unsigned char *payload, size_t len)
{
    ngx_http_reverse_mcp_conn_t  *ctx = data;

    if (ctx->state == NGX_HTTP_REVERSE_MCP_ST_CLOSING) {
        return 0;
    }

    (void) ngx_atomic_fetch_add(&ctx->stats->messages_in, 1);

    ngx_http_reverse_mcp_handle_payload(ctx, opcode, payload, len);

    return ctx->stop;
}


/* writing */


static ngx_int_t
ngx_http_reverse_mcp_send(ngx_http_reverse_mcp_conn_t *ctx, int opcode,
    u_char *data, size_t len, ngx_uint_t force)
{
    u_char  *p, hdr[NGX_HTTP_REVERSE_MCP_WS_MAX_HEADER];
    size_t   hlen;

    if (ctx->finalized || (ctx->close_sent && !force)) {
        return NGX_ERROR;
    }

    hlen = ngx_http_reverse_mcp_ws_frame_header(hdr, opcode, len, NULL);

    /* control frames may exceed the queue limit, but only by a little */
    p = ngx_http_reverse_mcp_outq_add(&ctx->outq, hlen + len,
                                      ctx->lcf->send_queue
                                      + (force ? 65536 : 0),
                                      ctx->connection->log);
    if (p == NULL) {
        return NGX_BUSY;
    }

    p = ngx_cpymem(p, hdr, hlen);
    ngx_memcpy(p, data, len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_reverse_mcp_send_json(ngx_http_reverse_mcp_conn_t *ctx, u_char *data,
    size_t len)
{
    ngx_int_t  rc;

    rc = ngx_http_reverse_mcp_send(ctx, NGX_HTTP_REVERSE_MCP_WS_OP_TEXT, data,
                                   len, 0);

    if (rc == NGX_BUSY) {
        ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_POLICY,
                                   "send queue full: the server does not "
                                   "read");
        return NGX_ERROR;
    }

    if (rc != NGX_OK) {
        ngx_http_reverse_mcp_abort(ctx);
        return NGX_ERROR;
    }

    (void) ngx_atomic_fetch_add(&ctx->stats->messages_out, 1);

    if (ngx_http_reverse_mcp_flush(ctx) == NGX_ERROR) {
        ngx_http_reverse_mcp_abort(ctx);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_reverse_mcp_flush(ngx_http_reverse_mcp_conn_t *ctx)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    c = ctx->connection;
    r = ctx->request;

    if (ctx->finalized) {
        return NGX_OK;
    }

    if (ctx->header_pending) {
        /* the 101 response is still in nginx's output chain */
        if (ngx_http_output_filter(r, NULL) == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (r->out) {
            goto again;
        }

        ctx->header_pending = 0;

        /* the request is freed once the current handler has returned */
        ngx_post_event(&ctx->finalize_ev, &ngx_posted_events);
    }

    rc = ngx_http_reverse_mcp_outq_flush(&ctx->outq, c);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_AGAIN) {
        goto again;
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    return NGX_OK;

again:

    if (!c->write->timer_set) {
        ngx_add_timer(c->write, ctx->send_timeout);
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


static void
ngx_http_reverse_mcp_write_handler(ngx_http_request_t *r)
{
    ngx_http_reverse_mcp_conn_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_reverse_mcp_module);

    if (ctx) {
        ngx_http_reverse_mcp_write(ctx);
    }
}


static void
ngx_http_reverse_mcp_write(ngx_http_reverse_mcp_conn_t *ctx)
{
    ngx_connection_t  *c;

    c = ctx->connection;

    if (ctx->finalized) {
        return;
    }

    if (c->write->timedout) {
        c->write->timedout = 0;
        c->timedout = 1;
        ngx_log_error(NGX_LOG_WARN, c->log, NGX_ETIMEDOUT,
                      "reverse_mcp: server \"%V\" of agent \"%V\" does not "
                      "read, send timed out", &ctx->server, &ctx->agent);
        ngx_http_reverse_mcp_abort(ctx);
        return;
    }

    if (ngx_http_reverse_mcp_flush(ctx) == NGX_ERROR) {
        ngx_http_reverse_mcp_abort(ctx);
        return;
    }

    ngx_http_reverse_mcp_maybe_done(ctx);
}


/* the MCP client role */


static void
ngx_http_reverse_mcp_handle_payload(ngx_http_reverse_mcp_conn_t *ctx,
    int opcode, const u_char *p, size_t len)
{
    if (opcode == NGX_HTTP_REVERSE_MCP_WS_OP_TEXT && ctx->npending
        && ngx_http_reverse_mcp_fast_response(ctx, p, len) == NGX_OK)
    {
        return;
    }

    ctx->tmp_pool = ngx_create_pool(1024, ctx->connection->log);
    if (ctx->tmp_pool == NULL) {
        ngx_http_reverse_mcp_abort(ctx);
        return;
    }

    ngx_http_reverse_mcp_handle_frame(ctx, p, len);

    ngx_destroy_pool(ctx->tmp_pool);
    ctx->tmp_pool = NULL;
}


/*
 * The answer to a call, passed on as the server wrote it: no tree, no
 * regenerated JSON (the scanner still checks it all).  Anything else goes
 * to handle_frame().
 */
static ngx_int_t
ngx_http_reverse_mcp_fast_response(ngx_http_reverse_mcp_conn_t *ctx,
    const u_char *p, size_t len)
{
    int64_t                          id;
    ngx_str_t                        value;
    ngx_uint_t                       is_error;
    ngx_http_reverse_mcp_pending_t  *pd;

    if (ngx_http_reverse_mcp_json_scan_response(p, len, &id, &value,
                                                &is_error)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    pd = ngx_http_reverse_mcp_pending_find(ctx, id);

    if (pd == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_reverse_mcp_pending_finish(pd, is_error, &value);

    return NGX_OK;
}


static ngx_http_reverse_mcp_pending_t *
ngx_http_reverse_mcp_pending_find(ngx_http_reverse_mcp_conn_t *ctx,
    int64_t id)
{
    ngx_rbtree_node_t  *node, *sentinel;

    if (id <= 0) {
        return NULL;
    }

    node = ctx->pending.root;
    sentinel = ctx->pending.sentinel;

    while (node != sentinel) {
        if ((ngx_rbtree_key_t) id == node->key) {
            return (ngx_http_reverse_mcp_pending_t *) node;
        }

        node = ((ngx_rbtree_key_t) id < node->key) ? node->left
                                                   : node->right;
    }

    return NULL;
}


static void
ngx_http_reverse_mcp_handle_frame(ngx_http_reverse_mcp_conn_t *ctx,
    const u_char *p, size_t len)
{
    char          err[128];
    yajl_val      msg;
    const u_char *end, *line, *nl;

    end = p + len;

    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }

    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'
                       || end[-1] == '\n'))
    {
        end--;
    }

    if (p == end) {
        ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_BAD_DATA,
                                   "empty message");
        return;
    }

    msg = ngx_http_reverse_mcp_json_parse(p, end - p, err, sizeof(err));

    if (msg) {
        ngx_http_reverse_mcp_handle_message(ctx, msg);
        yajl_tree_free(msg);
        return;
    }

    if (ngx_strlchr((u_char *) p, (u_char *) end, '\n') == NULL) {
        goto invalid;
    }

    /* several newline-delimited messages in one frame (stdio framing) */

    for (line = p; line < end && !ctx->stop; line = nl + 1) {

        nl = ngx_strlchr((u_char *) line, (u_char *) end, '\n');
        if (nl == NULL) {
            nl = end;
        }

        if (nl - line == 0 || (nl - line == 1 && *line == '\r')) {
            continue;
        }

        msg = ngx_http_reverse_mcp_json_parse(line, nl - line, err,
                                              sizeof(err));
        if (msg == NULL) {
            goto invalid;
        }

        ngx_http_reverse_mcp_handle_message(ctx, msg);
        yajl_tree_free(msg);
    }

    return;

invalid:

    {
        u_char  reason[123];

        (void) ngx_snprintf(reason, sizeof(reason), "invalid JSON: %s%Z",
                            err);
        reason[sizeof(reason) - 1] = '\0';

        ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_BAD_DATA,
                                   (char *) reason);
    }
}


static void
ngx_http_reverse_mcp_handle_message(ngx_http_reverse_mcp_conn_t *ctx,
    yajl_val msg)
{
    size_t      i;
    yajl_val    id;
    ngx_str_t   method, version;

    if (YAJL_IS_ARRAY(msg)) {
        /* a JSON-RPC batch (2025-03-26 allows them) */
        if (msg->u.array.len == 0) {
            goto invalid;
        }

        for (i = 0; i < msg->u.array.len && !ctx->stop; i++) {
            if (YAJL_IS_ARRAY(msg->u.array.values[i])) {
                goto invalid;
            }

            ngx_http_reverse_mcp_handle_message(ctx, msg->u.array.values[i]);
        }

        return;
    }

    if (!YAJL_IS_OBJECT(msg)) {
        goto invalid;
    }

    if (ngx_http_reverse_mcp_json_get_str(msg, "jsonrpc", &version) != NGX_OK
        || version.len != 3 || ngx_strncmp(version.data, "2.0", 3) != 0)
    {
        goto invalid;
    }

    id = ngx_http_reverse_mcp_json_get(msg, "id");

    if (ngx_http_reverse_mcp_json_get(msg, "method")) {

        if (ngx_http_reverse_mcp_json_get_str(msg, "method", &method)
            != NGX_OK)
        {
            goto invalid;
        }

        if (id) {
            if (!YAJL_IS_STRING(id) && !YAJL_IS_INTEGER(id)) {
                goto invalid;
            }

            ngx_http_reverse_mcp_handle_request(ctx, &method, id, msg);

        } else {
            ngx_http_reverse_mcp_handle_notification(ctx, &method,
                           ngx_http_reverse_mcp_json_get(msg, "params"), msg);
        }

        return;
    }

    if (id && (ngx_http_reverse_mcp_json_get(msg, "result")
               || ngx_http_reverse_mcp_json_get(msg, "error")))
    {
        ngx_http_reverse_mcp_handle_response(ctx, msg, id);
        return;
    }

invalid:

    ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                               "invalid JSON-RPC 2.0 message");
}


static void
ngx_http_reverse_mcp_handle_request(ngx_http_reverse_mcp_conn_t *ctx,
    ngx_str_t *method, yajl_val id, yajl_val msg)
{
    u_char      text[NGX_HTTP_REVERSE_MCP_RELAY_TEXT];
    ngx_int_t   rc, code;
    ngx_str_t   idj, m;

    static u_char  pong[] = ",\"result\":{}}";

    if (ngx_http_reverse_mcp_json_dump(ctx->tmp_pool, id, &idj)
        != NGX_OK)
    {
        ngx_http_reverse_mcp_abort(ctx);
        return;
    }

    if (method->len == 4 && ngx_strncmp(method->data, "ping", 4) == 0) {
        u_char  *p, *buf;

        buf = ngx_pnalloc(ctx->tmp_pool, sizeof("{\"jsonrpc\":\"2.0\","
                                                "\"id\":") + idj.len
                                         + sizeof(pong));
        if (buf == NULL) {
            ngx_http_reverse_mcp_abort(ctx);
            return;
        }

        p = ngx_cpymem(buf, "{\"jsonrpc\":\"2.0\",\"id\":", 22);
        p = ngx_cpymem(p, idj.data, idj.len);
        p = ngx_cpymem(p, pong, sizeof(pong) - 1);

        (void) ngx_http_reverse_mcp_send_json(ctx, buf, p - buf);
        return;
    }

    rc = ngx_http_reverse_mcp_relay(ctx, method, id, msg, &code, text,
                                    sizeof(text));

    if (rc == NGX_OK || ctx->stop) {
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_http_reverse_mcp_abort(ctx);
        return;
    }

    m.data = text;
    m.len = ngx_strlen(text);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                      "reverse_mcp: server \"%V\" request \"%V\" not "
                      "relayed, answering %i: %V", &ctx->server, method,
                      code, &m);
    }

    (void) ngx_http_reverse_mcp_reply_error(ctx, &idj, code, &m);
}


/* {"jsonrpc":"2.0","id":ID,"error":{"code":C,"message":M}} to the server */
static ngx_int_t
ngx_http_reverse_mcp_reply_error(ngx_http_reverse_mcp_conn_t *ctx,
    ngx_str_t *id, ngx_int_t code, ngx_str_t *message)
{
    u_char  *p, buf[NGX_HTTP_REVERSE_MCP_ERROR_TEXT + 64
                    + NGX_HTTP_REVERSE_MCP_REQUEST_ID_TEXT];

    if (ctx->finalized || ctx->state == NGX_HTTP_REVERSE_MCP_ST_CLOSING
        || ctx->close_sent || ctx->connection->destroyed
        || ctx->connection->error
        || id->len > NGX_HTTP_REVERSE_MCP_REQUEST_ID_TEXT)
    {
        return NGX_DECLINED;
    }

    p = ngx_cpymem(buf, "{\"jsonrpc\":\"2.0\",\"id\":", 22);
    p = ngx_cpymem(p, id->data, id->len);
    p = ngx_cpymem(p, ",\"error\":", 9);
    p = ngx_http_reverse_mcp_call_error_text(p, code, message);
    *p++ = '}';

    return ngx_http_reverse_mcp_send_json(ctx, buf, p - buf);
}


/*
 * A request of the server for the client: to the caller of the call it
 * belongs to.  NGX_OK: on its way; NGX_DECLINED: *code and text say why
 * not; NGX_ABORT: the same, the gateway does not relay that method at all
 * (logged); NGX_ERROR: no memory.
 */
static ngx_int_t
ngx_http_reverse_mcp_relay(ngx_http_reverse_mcp_conn_t *ctx,
    ngx_str_t *method, yajl_val id, yajl_val msg, ngx_int_t *code,
    u_char *text, size_t size)
{
    u_char                          *last, lit[NGX_HTTP_REVERSE_MCP_RELAY_ID_LEN
                                               + 2];
    yajl_val                         params, hint;
    ngx_int_t                        rc;
    ngx_str_t                        idj, literal, json, token;
    ngx_uint_t                       need, relay;
    const char                      *cap;
    ngx_http_reverse_mcp_call_t     *call;
    ngx_http_reverse_mcp_relay_t    *rl;
    ngx_http_reverse_mcp_pending_t  *pd;

    uint64_t                         seq;

    last = text + size - 1;
    *code = NGX_HTTP_REVERSE_MCP_RPC_NOT_FOUND;

    params = ngx_http_reverse_mcp_json_get(msg, "params");
    need = ngx_http_reverse_mcp_relay_need(method, params, &cap);

    if (need == 0) {
        ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                      "reverse_mcp: server \"%V\" sent unsupported request "
                      "\"%V\", answering -32601", &ctx->server, method);

        *ngx_slprintf(text, last, "Method not found: %V", method) = '\0';
        return NGX_ABORT;
    }

    /* which call: the one params._meta.progressToken names, else the only
     * one in flight */

    pd = NULL;
    hint = ngx_http_reverse_mcp_json_get(
               ngx_http_reverse_mcp_json_get(params, "_meta"),
               "progressToken");

    if (hint && ctx->npending
        && ngx_http_reverse_mcp_json_dump(ctx->tmp_pool, hint, &token)
           == NGX_OK)
    {
        pd = ngx_http_reverse_mcp_pending_by_token(ctx, &token);
    }

    if (pd == NULL) {
        *code = NGX_HTTP_REVERSE_MCP_RPC_INVALID;

        if (ctx->npending == 0) {
            *ngx_slprintf(text, last, "%V: no call is in flight on this "
                          "connection, so no client can answer it",
                          method) = '\0';
            return NGX_DECLINED;
        }

        if (ctx->npending > 1) {
            *ngx_slprintf(text, last, "%V: ambiguous: %ui calls are in "
                          "flight on this connection (name the call with "
                          "params._meta.progressToken = its progress token)",
                          method, ctx->npending) = '\0';
            return NGX_DECLINED;
        }

        pd = (ngx_http_reverse_mcp_pending_t *)
                 ngx_rbtree_min(ctx->pending.root, ctx->pending.sentinel);
        *code = NGX_HTTP_REVERSE_MCP_RPC_NOT_FOUND;
    }

    call = pd->call;
    relay = call->relay;

    if ((relay & NGX_HTTP_REVERSE_MCP_RELAY_CAPS) == 0
        && !(relay & (NGX_HTTP_REVERSE_MCP_RELAY_JSON_ONLY
                      |NGX_HTTP_REVERSE_MCP_RELAY_MODERN))
        && call->request == NULL)
    {
        *ngx_slprintf(text, last, "%V: the caller of this call cannot "
                      "answer requests (the gateway's chat, or a request "
                      "sent to several servers at once)", method) = '\0';
        return NGX_DECLINED;
    }

    if (!(relay & need)) {
        *ngx_slprintf(text, last, "%V: the caller of this call did not "
                      "declare the %s capability", method, cap) = '\0';

        if (relay & NGX_HTTP_REVERSE_MCP_RELAY_MODERN) {
            /* the call cannot complete for this caller: it ends now */
            ngx_http_reverse_mcp_missing_capability(ctx, pd, method, need);
        }

        return NGX_DECLINED;
    }

    if (!(relay & (NGX_HTTP_REVERSE_MCP_RELAY_STREAM
                   |NGX_HTTP_REVERSE_MCP_RELAY_MODERN))
        || call->request == NULL)
    {
        *ngx_slprintf(text, last, "%V: the caller of this call cannot be "
                      "reached: %s", method,
                      (relay & NGX_HTTP_REVERSE_MCP_RELAY_NO_INPUT)
                      ? "it speaks MCP 2026-07-28, which carries input "
                        "requests only on tools/call, prompts/get and "
                        "resources/read"
                      : "it accepts only application/json responses, not "
                        "a stream") = '\0';
        return NGX_DECLINED;
    }

    /* the gateway id: where the caller's answer goes back to */

    if (ngx_http_reverse_mcp_json_dump(ctx->tmp_pool, id, &idj) != NGX_OK) {
        return NGX_ERROR;
    }

    if (idj.len > NGX_HTTP_REVERSE_MCP_REQUEST_ID_TEXT) {
        *code = NGX_HTTP_REVERSE_MCP_RPC_INVALID;
        *ngx_slprintf(text, last, "%V: the request id is longer than %d "
                      "bytes", method, NGX_HTTP_REVERSE_MCP_REQUEST_ID_TEXT)
            = '\0';
        return NGX_DECLINED;
    }

    /* random: a gateway id (and a requestState) cannot be guessed */

    if (RAND_bytes((u_char *) &seq, sizeof(seq)) != 1) {
        return NGX_ERROR;
    }

    seq &= 0x7fffffffffffffffULL;
    seq |= 1;

    rl = ngx_alloc(sizeof(ngx_http_reverse_mcp_relay_t) + idj.len,
                   ctx->connection->log);
    if (rl == NULL) {
        return NGX_ERROR;
    }

    rl->seq = seq;
    rl->id.data = (u_char *) (rl + 1);
    rl->id.len = idj.len;
    ngx_memcpy(rl->id.data, idj.data, idj.len);
    ngx_str_null(&rl->msg);

    literal.data = lit;
    lit[0] = '"';
    literal.len = ngx_http_reverse_mcp_relay_id(lit + 1, call->caller_pid,
                                                call->key, rl->seq) - lit;
    lit[literal.len++] = '"';

    if (ngx_http_reverse_mcp_json_dump_replace(ctx->tmp_pool, msg, id,
                                               &literal, &json)
        != NGX_OK)
    {
        ngx_free(rl);
        return NGX_ERROR;
    }

    if (relay & NGX_HTTP_REVERSE_MCP_RELAY_MODERN) {
        /* it may have to be asked again in the caller's next round */
        rl->msg.data = ngx_alloc(json.len, ctx->connection->log);
        if (rl->msg.data == NULL) {
            ngx_free(rl);
            return NGX_ERROR;
        }

        rl->msg.len = json.len;
        ngx_memcpy(rl->msg.data, json.data, json.len);

        if (pd->park == 0) {
            pd->park = rl->seq;
        }
    }

    ngx_queue_insert_tail(&pd->relays, &rl->queue);

    /* the gateway id is not logged: it answers the request (and names a
     * 2026-07-28 caller's parked call) */
    ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                  "reverse_mcp: server \"%V\" request \"%V\" %V relayed "
                  "to the caller of call %uL", &ctx->server, method, &idj,
                  (uint64_t) pd->node.key);

    /* request() never ends the call from inside */
    rc = call->request(call, &json);

    if (rc != NGX_OK) {
        ngx_queue_remove(&rl->queue);
        ngx_http_reverse_mcp_relay_free(rl);

        *ngx_slprintf(text, last, "%V: the caller of this call could not "
                      "be reached", method) = '\0';
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_handle_notification(ngx_http_reverse_mcp_conn_t *ctx,
    ngx_str_t *method, yajl_val params, yajl_val msg)
{
    if (method->len == sizeof("notifications/tools/list_changed") - 1
        && ngx_strncmp(method->data, "notifications/tools/list_changed",
                       method->len) == 0)
    {
        ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                      "reverse_mcp: server \"%V\" changed its tools",
                      &ctx->server);

        if (ctx->state == NGX_HTTP_REVERSE_MCP_ST_READY && ctx->list_id == 0)
        {
            if (ngx_http_reverse_mcp_list_tools(ctx) == NGX_OK) {
                if (ctx->timer_ev.timer_set) {
                    ngx_del_timer(&ctx->timer_ev);
                }

                ngx_add_timer(&ctx->timer_ev, ctx->lcf->call_timeout);
            }

        } else {
            ctx->relist_pending = 1;
        }

        return;
    }

    if ((method->len == sizeof("notifications/prompts/list_changed") - 1
         && ngx_strncmp(method->data, "notifications/prompts/list_changed",
                        method->len) == 0)
        || (method->len == sizeof("notifications/resources/list_changed") - 1
            && ngx_strncmp(method->data,
                           "notifications/resources/list_changed",
                           method->len) == 0))
    {
        /* subscriptions/listen of the endpoint announces it */
        if (ctx->registered) {
            ngx_http_reverse_mcp_registry_list_changed(ctx->mcf->shm_zone,
                                    &ctx->agent, &ctx->server, ctx->conn_id,
                                    method->data[14] == 'p'
                                    ? NGX_HTTP_REVERSE_MCP_LIST_PROMPTS
                                    : NGX_HTTP_REVERSE_MCP_LIST_RESOURCES);
        }

        return;
    }

    if (method->len == sizeof("notifications/cancelled") - 1
        && ngx_strncmp(method->data, "notifications/cancelled",
                       method->len) == 0)
    {
        /* the server gives up one of its requests: its caller is told */
        ngx_http_reverse_mcp_relay_cancelled(ctx, params, msg);
        return;
    }

    if (ctx->npending
        && ngx_http_reverse_mcp_route_notification(ctx, method, msg)
           == NGX_OK)
    {
        return;
    }

    if (method->len == sizeof("notifications/message") - 1
        && ngx_strncmp(method->data, "notifications/message", method->len)
           == 0)
    {
        ngx_http_reverse_mcp_log_notification(ctx, params);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->connection->log, 0,
                   "reverse_mcp: server \"%V\" notification \"%V\" ignored",
                   &ctx->server, method);
}


static void
ngx_http_reverse_mcp_log_notification(ngx_http_reverse_mcp_conn_t *ctx,
    yajl_val params)
{
    yajl_val    data;
    ngx_str_t   level, logger, text;
    ngx_uint_t  lvl;

    if (ngx_http_reverse_mcp_json_get_str(params, "level", &level) != NGX_OK)
    {
        ngx_str_set(&level, "info");
    }

    lvl = ngx_http_reverse_mcp_log_level(&level);

    if (ctx->connection->log->log_level < lvl) {
        return;
    }

    if (ngx_http_reverse_mcp_json_get_str(params, "logger", &logger)
        != NGX_OK)
    {
        ngx_str_set(&logger, "-");
    }

    data = ngx_http_reverse_mcp_json_get(params, "data");

    if (data && YAJL_IS_STRING(data)) {
        text.data = (u_char *) data->u.string;
        text.len = ngx_strlen(data->u.string);

    } else if (ngx_http_reverse_mcp_json_dump(ctx->tmp_pool, data, &text)
               != NGX_OK)
    {
        return;
    }

    /* one log line per message, whatever the server sends */
    if (text.len > NGX_HTTP_REVERSE_MCP_LOG_DATA_MAX) {
        text.len = NGX_HTTP_REVERSE_MCP_LOG_DATA_MAX;
    }

    if (ngx_strlchr(text.data, text.data + text.len, '\n')
        || ngx_strlchr(text.data, text.data + text.len, '\r'))
    {
        u_char  *p, *q;

        p = ngx_pnalloc(ctx->tmp_pool, text.len);
        if (p == NULL) {
            return;
        }

        ngx_memcpy(p, text.data, text.len);

        for (q = p; q < p + text.len; q++) {
            if (*q == '\n' || *q == '\r') {
                *q = ' ';
            }
        }

        text.data = p;
    }

    if (logger.len > 64) {
        logger.len = 64;
    }

    if (level.len > 16) {
        level.len = 16;
    }

    ngx_log_error(lvl, ctx->connection->log, 0,
                  "reverse_mcp: server \"%V\" log [%V] %V: %V",
                  &ctx->server, &level, &logger, &text);
}


static void
ngx_http_reverse_mcp_handle_response(ngx_http_reverse_mcp_conn_t *ctx,
    yajl_val msg, yajl_val id)
{
    int64_t                          n;
    yajl_val                         result, error;
    ngx_str_t                        json;
    ngx_http_reverse_mcp_pending_t  *pd;

    result = ngx_http_reverse_mcp_json_get(msg, "result");
    error = ngx_http_reverse_mcp_json_get(msg, "error");

    if (!YAJL_IS_INTEGER(id)) {
        goto unexpected;
    }

    n = YAJL_GET_INTEGER(id);

    pd = ngx_http_reverse_mcp_pending_find(ctx, n);

    if (pd) {
        if (error && !YAJL_IS_OBJECT(error)) {
            ngx_http_reverse_mcp_close(ctx,
                                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                                       "JSON-RPC error is not an object");
            return;
        }

        if (ngx_http_reverse_mcp_json_dump(ctx->tmp_pool,
                                           error ? error : result, &json)
            != NGX_OK)
        {
            ngx_http_reverse_mcp_abort(ctx);
            return;
        }

        ngx_http_reverse_mcp_pending_finish(pd, error != NULL, &json);
        return;
    }

    if (n == ctx->init_id && ctx->state == NGX_HTTP_REVERSE_MCP_ST_INIT) {
        ngx_http_reverse_mcp_initialized(ctx, result, error);
        return;
    }

    if (n != 0 && n == ctx->list_id) {
        ngx_http_reverse_mcp_listed(ctx, result, error);
        return;
    }

unexpected:

    ngx_log_error(NGX_LOG_WARN, ctx->connection->log, 0,
                  "reverse_mcp: server \"%V\" answered a request the "
                  "gateway did not send (or no longer waits for), ignored",
                  &ctx->server);
}


static void
ngx_http_reverse_mcp_rpc_failed(ngx_http_reverse_mcp_conn_t *ctx,
    const char *what, yajl_val error)
{
    u_char     reason[123];
    yajl_val   code;
    ngx_str_t  message;

    code = ngx_http_reverse_mcp_json_get(error, "code");

    if (ngx_http_reverse_mcp_json_get_str(error, "message", &message)
        != NGX_OK)
    {
        ngx_str_set(&message, "no message");
    }

    (void) ngx_snprintf(reason, sizeof(reason), "%s failed: %L %V%Z", what,
                        code && YAJL_IS_INTEGER(code)
                        ? YAJL_GET_INTEGER(code) : 0, &message);
    reason[sizeof(reason) - 1] = '\0';

    ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                               (char *) reason);
}


static void
ngx_http_reverse_mcp_initialized(ngx_http_reverse_mcp_conn_t *ctx,
    yajl_val result, yajl_val error)
{
    u_char      reason[123], *p;
    yajl_val    caps, info;
    ngx_str_t   version, caps_json, info_json;
    ngx_pool_t *pool;

    static u_char  initialized[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

    pool = ctx->tmp_pool;

    if (error || result == NULL || !YAJL_IS_OBJECT(result)) {
        if (error) {
            ngx_http_reverse_mcp_rpc_failed(ctx, "initialize", error);

        } else {
            ngx_http_reverse_mcp_close(ctx,
                                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                                       "initialize result is not an object");
        }

        return;
    }

    if (ngx_http_reverse_mcp_json_get_str(result, "protocolVersion", &version)
        != NGX_OK)
    {
        ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                                   "initialize result has no "
                                   "protocolVersion");
        return;
    }

    if (!ngx_http_reverse_mcp_version_supported(&version)) {
        if (version.len > 32) {
            version.len = 32;
        }

        (void) ngx_snprintf(reason, sizeof(reason),
                            "unsupported protocolVersion \"%V\"%Z", &version);
        reason[sizeof(reason) - 1] = '\0';

        ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                                   (char *) reason);
        return;
    }

    caps = ngx_http_reverse_mcp_json_get(result, "capabilities");

    if (caps && !YAJL_IS_OBJECT(caps)) {
        ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                                   "initialize capabilities is not an "
                                   "object");
        return;
    }

    info = ngx_http_reverse_mcp_json_get(result, "serverInfo");

    ngx_str_null(&caps_json);
    ngx_str_null(&info_json);

    if ((caps && ngx_http_reverse_mcp_json_dump(pool, caps, &caps_json)
                 != NGX_OK)
        || (info && YAJL_IS_OBJECT(info)
            && ngx_http_reverse_mcp_json_dump(pool, info, &info_json)
               != NGX_OK))
    {
        ngx_http_reverse_mcp_abort(ctx);
        return;
    }

    /* kept for re-registrations after a re-list, in one block */

    if (ctx->meta) {
        ngx_free(ctx->meta);
    }

    ctx->meta = ngx_alloc(version.len + caps_json.len + info_json.len + 1,
                          ctx->connection->log);
    if (ctx->meta == NULL) {
        ngx_http_reverse_mcp_abort(ctx);
        return;
    }

    ctx->protocol_version.data = ctx->meta;
    ctx->protocol_version.len = version.len;
    p = ngx_cpymem(ctx->meta, version.data, version.len);

    /* (no memcpy from the NULL data of an absent member: UB) */

    ctx->capabilities.data = caps_json.len ? p : NULL;
    ctx->capabilities.len = caps_json.len;

    if (caps_json.len) {
        p = ngx_cpymem(p, caps_json.data, caps_json.len);
    }

    ctx->server_info.data = info_json.len ? p : NULL;
    ctx->server_info.len = info_json.len;

    if (info_json.len) {
        (void) ngx_cpymem(p, info_json.data, info_json.len);
    }

    ctx->tools_cap = caps && ngx_http_reverse_mcp_json_get(caps, "tools");

    if (ngx_http_reverse_mcp_send_json(ctx, initialized,
                                       sizeof(initialized) - 1)
        != NGX_OK)
    {
        return;
    }

    if (!ctx->tools_cap) {
        /* no tools capability: registered with no tools */
        ngx_http_reverse_mcp_register(ctx);
        return;
    }

    ctx->state = NGX_HTTP_REVERSE_MCP_ST_LIST;
    ctx->relist_pending = 0;

    (void) ngx_http_reverse_mcp_list_tools(ctx);
}


static ngx_int_t
ngx_http_reverse_mcp_list_tools(ngx_http_reverse_mcp_conn_t *ctx)
{
    u_char  *p, *buf;
    size_t   len;

    if (ctx->list_pool == NULL) {
        ctx->list_pool = ngx_create_pool(4096, ctx->connection->log);
        if (ctx->list_pool == NULL) {
            ngx_http_reverse_mcp_abort(ctx);
            return NGX_ERROR;
        }

        ctx->tools = ngx_array_create(ctx->list_pool, 16,
                                      sizeof(ngx_http_reverse_mcp_tool_t));
        if (ctx->tools == NULL) {
            ngx_http_reverse_mcp_abort(ctx);
            return NGX_ERROR;
        }

        ctx->tools_rejected = 0;
        ctx->pages = 0;
        ngx_str_null(&ctx->cursor);
    }

    ctx->list_id = ctx->next_id++;
    ctx->pages++;

    len = sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"method\":\"tools/list\","
                 "\"params\":{\"cursor\":}}") + NGX_INT64_LEN;

    if (ctx->cursor.len) {
        len += ngx_http_reverse_mcp_json_escaped_len(&ctx->cursor);
    }

    buf = ngx_pnalloc(ctx->list_pool, len);
    if (buf == NULL) {
        ngx_http_reverse_mcp_abort(ctx);
        return NGX_ERROR;
    }

    p = ngx_sprintf(buf, "{\"jsonrpc\":\"2.0\",\"id\":%L,"
                    "\"method\":\"tools/list\"", ctx->list_id);

    if (ctx->cursor.len) {
        p = ngx_cpymem(p, ",\"params\":{\"cursor\":", 20);
        p = ngx_http_reverse_mcp_json_escape(p, &ctx->cursor);
        *p++ = '}';
    }

    *p++ = '}';

    return ngx_http_reverse_mcp_send_json(ctx, buf, p - buf);
}


static void
ngx_http_reverse_mcp_listed(ngx_http_reverse_mcp_conn_t *ctx,
    yajl_val result, yajl_val error)
{
    size_t                        i, n;
    yajl_val                      tools, next;
    ngx_str_t                     name, cursor, desc;
    ngx_uint_t                    j;
    const char                   *err;
    ngx_http_reverse_mcp_tool_t  *t, *tt;

    ctx->list_id = 0;

    if (error || result == NULL || !YAJL_IS_OBJECT(result)) {

        if (ctx->state == NGX_HTTP_REVERSE_MCP_ST_READY && error) {
            /* a failed re-list keeps the tools we have */
            ngx_log_error(NGX_LOG_WARN, ctx->connection->log, 0,
                          "reverse_mcp: server \"%V\" failed tools/list, "
                          "keeping its previous tools", &ctx->server);
            goto done;
        }

        if (error) {
            ngx_http_reverse_mcp_rpc_failed(ctx, "tools/list", error);

        } else {
            ngx_http_reverse_mcp_close(ctx,
                                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                                       "tools/list result is not an object");
        }

        return;
    }

    tools = ngx_http_reverse_mcp_json_get(result, "tools");

    if (tools == NULL || !YAJL_IS_ARRAY(tools)) {
        ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                                   "tools/list result has no \"tools\" "
                                   "array");
        return;
    }

    next = ngx_http_reverse_mcp_json_get(result, "nextCursor");

    if (next && !YAJL_IS_STRING(next) && !YAJL_IS_NULL(next)) {
        ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                                   "tools/list nextCursor is not a string");
        return;
    }

    n = tools->u.array.len;

    for (i = 0; i < n; i++) {

        if (ngx_http_reverse_mcp_tool_check(tools->u.array.values[i], &name,
                                            &err)
            != NGX_OK)
        {
            ctx->tools_rejected++;
            ngx_log_error(NGX_LOG_WARN, ctx->connection->log, 0,
                          "reverse_mcp: server \"%V\" tool #%uz rejected: %s",
                          &ctx->server,
                          ctx->tools->nelts + ctx->tools_rejected - 1, err);
            continue;
        }

        if (ngx_http_reverse_mcp_json_get_str(tools->u.array.values[i],
                                              "description", &desc)
            == NGX_OK
            && desc.len > ctx->lcf->max_description)
        {
            ctx->tools_rejected++;
            ngx_log_error(NGX_LOG_WARN, ctx->connection->log, 0,
                          "reverse_mcp: server \"%V\" tool \"%V\" "
                          "rejected: its description has %uz bytes, more "
                          "than reverse_mcp_max_description (%uz)",
                          &ctx->server, &name, desc.len,
                          ctx->lcf->max_description);
            continue;
        }

        tt = ctx->tools->elts;

        for (j = 0; j < ctx->tools->nelts; j++) {
            if (tt[j].name.len == name.len
                && ngx_strncmp(tt[j].name.data, name.data, name.len) == 0)
            {
                break;
            }
        }

        if (j < ctx->tools->nelts) {
            ctx->tools_rejected++;
            ngx_log_error(NGX_LOG_WARN, ctx->connection->log, 0,
                          "reverse_mcp: server \"%V\" listed tool \"%V\" "
                          "twice, the second is ignored", &ctx->server,
                          &name);
            continue;
        }

        t = ngx_array_push(ctx->tools);
        if (t == NULL) {
            ngx_http_reverse_mcp_abort(ctx);
            return;
        }

        if (ngx_http_reverse_mcp_json_dump_members(ctx->list_pool,
                                                   tools->u.array.values[i],
                                                   "name", &t->json)
            != NGX_OK)
        {
            ngx_http_reverse_mcp_abort(ctx);
            return;
        }

        t->name.data = ngx_pstrdup(ctx->list_pool, &name);
        if (t->name.data == NULL) {
            ngx_http_reverse_mcp_abort(ctx);
            return;
        }

        t->name.len = name.len;

        if (ctx->tools->nelts > ctx->acf->max_tools) {
            ngx_http_reverse_mcp_close(ctx,
                                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_POLICY,
                                       "agent tool limit reached");
            return;
        }

        if (ctx->acf->max_server_tools
            && ctx->tools->nelts > ctx->acf->max_server_tools)
        {
            ngx_http_reverse_mcp_close(ctx,
                                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_POLICY,
                                       "server tool limit reached "
                                       "(max_server_tools)");
            return;
        }
    }

    if (next && YAJL_IS_STRING(next) && next->u.string[0]) {
        cursor.data = (u_char *) next->u.string;
        cursor.len = ngx_strlen(next->u.string);

        if ((cursor.len == ctx->cursor.len
             && ngx_strncmp(cursor.data, ctx->cursor.data, cursor.len) == 0)
            || ctx->pages >= NGX_HTTP_REVERSE_MCP_MAX_PAGES)
        {
            ngx_http_reverse_mcp_close(ctx,
                                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                                       "tools/list pagination does not end");
            return;
        }

        ctx->cursor.data = ngx_pstrdup(ctx->list_pool, &cursor);
        if (ctx->cursor.data == NULL) {
            ngx_http_reverse_mcp_abort(ctx);
            return;
        }

        ctx->cursor.len = cursor.len;

        (void) ngx_http_reverse_mcp_list_tools(ctx);
        return;
    }

    ngx_http_reverse_mcp_register(ctx);

    if (ctx->state != NGX_HTTP_REVERSE_MCP_ST_READY) {
        return;
    }

done:

    if (ctx->list_pool) {
        ngx_destroy_pool(ctx->list_pool);
        ctx->list_pool = NULL;
        ctx->tools = NULL;
    }

    if (ctx->timer_ev.timer_set) {
        ngx_del_timer(&ctx->timer_ev);
    }

    if (ctx->relist_pending) {
        ctx->relist_pending = 0;

        if (ngx_http_reverse_mcp_list_tools(ctx) == NGX_OK) {
            ngx_add_timer(&ctx->timer_ev, ctx->lcf->call_timeout);
        }
    }
}


static void
ngx_http_reverse_mcp_register(ngx_http_reverse_mcp_conn_t *ctx)
{
    ngx_int_t                          rc;
    const char                        *reason;
    ngx_http_reverse_mcp_reg_entry_t   e;

    ngx_memzero(&e, sizeof(ngx_http_reverse_mcp_reg_entry_t));

    e.agent = ctx->agent;
    e.server = ctx->server;
    e.conn_id = ctx->conn_id;
    e.connected_at = ctx->connected_at;
    e.protocol_version = ctx->protocol_version;
    e.server_info = ctx->server_info;
    e.capabilities = ctx->capabilities;
    e.tools = ctx->tools;
    e.tools_rejected = ctx->tools_rejected;
    e.duplicate = ctx->lcf->duplicate;
    e.max_servers = ctx->acf->max_servers;
    e.max_tools = ctx->acf->max_tools;

    if (ctx->state == NGX_HTTP_REVERSE_MCP_ST_READY && !ctx->registered) {
        /* replaced meanwhile: the heartbeat closes us */
        return;
    }

    reason = "";

    rc = ngx_http_reverse_mcp_registry_put(ctx->mcf->shm_zone, &e,
                                           ctx->connection->log, &reason);

    switch (rc) {

    case NGX_OK:
        break;

    case NGX_ERROR:
        (void) ngx_atomic_fetch_add(&ctx->stats->registrations_refused, 1);
        ngx_http_reverse_mcp_close(ctx,
                                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_TRY_LATER,
                                   reason);
        return;

    default: /* NGX_DECLINED, NGX_BUSY */
        (void) ngx_atomic_fetch_add(&ctx->stats->registrations_refused, 1);
        ngx_http_reverse_mcp_close(ctx, NGX_HTTP_REVERSE_MCP_WS_CLOSE_POLICY,
                                   reason);
        return;
    }

    if (ctx->state != NGX_HTTP_REVERSE_MCP_ST_READY) {
        ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                      "reverse_mcp: server \"%V\" of agent \"%V\" registered "
                      "with %ui tool(s), protocol %V (connection %uL)",
                      &ctx->server, &ctx->agent,
                      ctx->tools ? ctx->tools->nelts : 0,
                      &ctx->protocol_version, ctx->conn_id);

        ctx->state = NGX_HTTP_REVERSE_MCP_ST_READY;
        ctx->registered = 1;

        if (ctx->timer_ev.timer_set) {
            ngx_del_timer(&ctx->timer_ev);
        }

    } else {
        ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                      "reverse_mcp: server \"%V\" of agent \"%V\" now has "
                      "%ui tool(s)", &ctx->server, &ctx->agent,
                      ctx->tools ? ctx->tools->nelts : 0);
    }
}


/* per-worker housekeeping */


void
ngx_http_reverse_mcp_connector_heartbeat(ngx_cycle_t *cycle)
{
    ngx_queue_t                       *q, *next;
    ngx_atomic_uint_t                  kicks;
    ngx_http_reverse_mcp_conn_t       *ctx;
    ngx_http_reverse_mcp_main_conf_t  *mcf;

    if (!ngx_http_reverse_mcp_conns_init) {
        return;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_reverse_mcp_module);

    kicks = ngx_http_reverse_mcp_registry_kicks(mcf->shm_zone);

    if (kicks == ngx_http_reverse_mcp_kicks_seen && !ngx_exiting) {
        return;
    }

    ngx_http_reverse_mcp_kicks_seen = kicks;

    for (q = ngx_queue_head(&ngx_http_reverse_mcp_conns);
         q != ngx_queue_sentinel(&ngx_http_reverse_mcp_conns);
         q = next)
    {
        next = ngx_queue_next(q);
        ctx = ngx_queue_data(q, ngx_http_reverse_mcp_conn_t, queue);

        if (ctx->finalized || ctx->state == NGX_HTTP_REVERSE_MCP_ST_CLOSING) {
            continue;
        }

        if (ngx_exiting
            && ctx->lcf->shutdown == NGX_HTTP_REVERSE_MCP_SHUTDOWN_CLOSE)
        {
            ngx_http_reverse_mcp_close(ctx,
                                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_GOING_AWAY,
                                   "gateway shutting down, reconnect");
            ngx_http_reverse_mcp_run_posted(ctx);
            continue;
        }

        if (ctx->registered
            && !ngx_http_reverse_mcp_registry_owns(ctx->mcf->shm_zone,
                                                   &ctx->agent, &ctx->server,
                                                   ctx->conn_id))
        {
            ctx->registered = 0;
            ngx_http_reverse_mcp_close(ctx,
                                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_POLICY,
                                   "replaced by a newer connection");
            ngx_http_reverse_mcp_run_posted(ctx);
        }
    }
}


void
ngx_http_reverse_mcp_connector_exit(ngx_cycle_t *cycle)
{
    ngx_queue_t                  *q;
    ngx_http_reverse_mcp_conn_t  *ctx;

    if (!ngx_http_reverse_mcp_conns_init) {
        return;
    }

    /* the worker exits with sockets still open (fast shutdown) */

    for (q = ngx_queue_head(&ngx_http_reverse_mcp_conns);
         q != ngx_queue_sentinel(&ngx_http_reverse_mcp_conns);
         q = ngx_queue_next(q))
    {
        ctx = ngx_queue_data(q, ngx_http_reverse_mcp_conn_t, queue);

        ngx_http_reverse_mcp_goodbye(ctx);

        ngx_http_reverse_mcp_deregister(ctx);
    }
}


/* calls from any worker (see ngx_http_reverse_mcp_call.h) */


ngx_int_t
ngx_http_reverse_mcp_connector_call(uint64_t conn_id,
    ngx_http_reverse_mcp_call_t *call)
{
    u_char                          *p, *buf;
    size_t                           len;
    ngx_int_t                        rc;
    ngx_msec_t                       timeout;
    ngx_http_reverse_mcp_conn_t     *ctx;
    ngx_http_reverse_mcp_pending_t  *pd;

    ctx = ngx_http_reverse_mcp_conn_find(conn_id);

    if (ctx == NULL) {
        return NGX_DECLINED;
    }

    if (ctx->npending >= (ngx_uint_t) ctx->lcf->max_pending) {
        ngx_log_error(NGX_LOG_WARN, ctx->connection->log, 0,
                      "reverse_mcp: server \"%V\" of agent \"%V\" has "
                      "%ui calls in flight (reverse_mcp_max_pending), "
                      "a \"%V\" call is refused", &ctx->server, &ctx->agent,
                      ctx->npending, &call->method);
        return NGX_AGAIN;
    }

    pd = ngx_calloc(sizeof(ngx_http_reverse_mcp_pending_t)
                    + call->progress_token.len, ctx->connection->log);
    if (pd == NULL) {
        return NGX_ERROR;
    }

    pd->call = call;
    pd->ctx = ctx;
    pd->node.key = (ngx_rbtree_key_t) ctx->next_id++;
    ngx_queue_init(&pd->relays);
    pd->resume_ev.handler = ngx_http_reverse_mcp_resume_handler;
    pd->resume_ev.data = pd;
    pd->resume_ev.log = ctx->connection->log;

    if (call->progress_token.len) {
        pd->token.data = (u_char *) (pd + 1);
        pd->token.len = call->progress_token.len;
        ngx_memcpy(pd->token.data, call->progress_token.data,
                   call->progress_token.len);
    }

    len = sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"method\":,\"params\":}")
          + NGX_INT64_LEN + ngx_http_reverse_mcp_json_escaped_len(&call->method)
          + call->params.len;

    buf = ngx_alloc(len, ctx->connection->log);
    if (buf == NULL) {
        ngx_free(pd);
        return NGX_ERROR;
    }

    p = ngx_sprintf(buf, "{\"jsonrpc\":\"2.0\",\"id\":%uL,\"method\":",
                    (uint64_t) pd->node.key);
    p = ngx_http_reverse_mcp_json_escape(p, &call->method);

    if (call->params.len) {
        p = ngx_cpymem(p, ",\"params\":", 10);
        p = ngx_cpymem(p, call->params.data, call->params.len);
    }

    *p++ = '}';

    rc = ngx_http_reverse_mcp_send(ctx, NGX_HTTP_REVERSE_MCP_WS_OP_TEXT, buf,
                                   p - buf, 0);

    ngx_free(buf);

    if (rc != NGX_OK) {
        ngx_free(pd);
        return rc == NGX_BUSY ? NGX_BUSY : NGX_ERROR;
    }

    (void) ngx_atomic_fetch_add(&ctx->stats->messages_out, 1);

    ngx_rbtree_insert(&ctx->pending, &pd->node);
    ctx->npending++;
    call->pending = pd;

    timeout = call->timeout ? call->timeout : ctx->lcf->call_timeout;

    pd->timer.handler = ngx_http_reverse_mcp_pending_timeout;
    pd->timer.data = pd;
    pd->timer.log = ctx->connection->log;
    ngx_add_timer(&pd->timer, timeout);

    if (ngx_http_reverse_mcp_flush(ctx) == NGX_ERROR) {
        /* the call fails through fail_pending, after call_start returned */
        ngx_http_reverse_mcp_abort(ctx);
    }

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_pending_remove(ngx_http_reverse_mcp_pending_t *pd,
    const char *why)
{
    ngx_http_reverse_mcp_conn_t  *ctx;

    ctx = pd->ctx;

    if (pd->parked) {
        ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                      "reverse_mcp: call %uL to server \"%V\", parked for "
                      "its caller's input, ended: %s",
                      (uint64_t) pd->node.key, &ctx->server, why);
    }

    ngx_rbtree_delete(&ctx->pending, &pd->node);
    ctx->npending--;

    if (pd->timer.timer_set) {
        ngx_del_timer(&pd->timer);
    }

    pd->call->pending = NULL;

    if (pd->resume_ev.posted) {
        ngx_delete_posted_event(&pd->resume_ev);
    }

    ngx_http_reverse_mcp_relays_fail(pd, why);
}


static void
ngx_http_reverse_mcp_relay_free(ngx_http_reverse_mcp_relay_t *rl)
{
    if (rl->msg.data) {
        ngx_free(rl->msg.data);
    }

    ngx_free(rl);
}


/* this worker's ready connection with this id, or NULL */
static ngx_http_reverse_mcp_conn_t *
ngx_http_reverse_mcp_conn_find(uint64_t conn_id)
{
    ngx_rbtree_node_t            *node, *sentinel;
    ngx_http_reverse_mcp_conn_t  *ctx;

    if (!ngx_http_reverse_mcp_conns_init) {
        return NULL;
    }

    node = ngx_http_reverse_mcp_conn_ids.root;
    sentinel = ngx_http_reverse_mcp_conn_ids.sentinel;

    while (node != sentinel) {
        if ((ngx_rbtree_key_t) conn_id == node->key) {
            ctx = (ngx_http_reverse_mcp_conn_t *)
                      ((u_char *) node
                       - offsetof(ngx_http_reverse_mcp_conn_t, id_node));

            if (ctx->finalized
                || ctx->state != NGX_HTTP_REVERSE_MCP_ST_READY)
            {
                return NULL;
            }

            return ctx;
        }

        node = ((ngx_rbtree_key_t) conn_id < node->key) ? node->left
                                                        : node->right;
    }

    return NULL;
}


/*
 * 2026-07-28: the caller answered input_required and lets the call go; it
 * stays in flight here, parked (the server's requests meanwhile are
 * queued, notifications dropped), until a retry takes it over or it ends.
 */
void
ngx_http_reverse_mcp_connector_detach(ngx_http_reverse_mcp_call_t *call)
{
    ngx_http_reverse_mcp_call_t     *stub;
    ngx_http_reverse_mcp_pending_t  *pd;

    pd = call->pending;

    if (pd == NULL) {
        return;
    }

    stub = &pd->stub;
    ngx_memzero(stub, sizeof(ngx_http_reverse_mcp_call_t));

    stub->server = pd->ctx->server;
    stub->relay = call->relay;
    stub->request = ngx_http_reverse_mcp_parked_request;
    stub->done = ngx_http_reverse_mcp_parked_done;
    stub->caller_pid = call->caller_pid;
    stub->key = call->key;
    stub->log = pd->ctx->connection->log;
    stub->data = pd;
    stub->pending = pd;

    pd->call = stub;
    pd->parked = 1;
    call->pending = NULL;

    ngx_log_error(NGX_LOG_INFO, pd->ctx->connection->log, 0,
                  "reverse_mcp: call %uL to server \"%V\" parked until its "
                  "caller's next round", (uint64_t) pd->node.key,
                  &pd->ctx->server);
}


/* a request of the server while parked: asked in the next round */
static ngx_int_t
ngx_http_reverse_mcp_parked_request(ngx_http_reverse_mcp_call_t *call,
    ngx_str_t *json)
{
    return NGX_OK;
}


/* the call ended while parked: nobody waits for it (the retry is told) */
static void
ngx_http_reverse_mcp_parked_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json)
{
}


/*
 * A 2026-07-28 retry (call->park, call->params: its inputResponses) takes
 * over the parked call: the answers go to the server, the requests still
 * unanswered go to the new caller (from a posted event: never inside
 * call_start()).  NGX_DECLINED: no such call waits here.
 */
ngx_int_t
ngx_http_reverse_mcp_connector_resume(uint64_t conn_id,
    ngx_http_reverse_mcp_call_t *call)
{
    ngx_rbtree_node_t               *node;
    ngx_http_reverse_mcp_conn_t     *ctx;
    ngx_http_reverse_mcp_pending_t  *pd;

    ctx = ngx_http_reverse_mcp_conn_find(conn_id);

    if (ctx == NULL || call->park == 0
        || ctx->agent.len != call->agent.len
        || ngx_strncmp(ctx->agent.data, call->agent.data, ctx->agent.len)
           != 0
        || ctx->server.len != call->server.len
        || ngx_strncmp(ctx->server.data, call->server.data, ctx->server.len)
           != 0)
    {
        return NGX_DECLINED;
    }

    pd = NULL;

    for (node = ctx->npending ? ngx_rbtree_min(ctx->pending.root,
                                               ctx->pending.sentinel)
                              : NULL;
         node;
         node = ngx_rbtree_next(&ctx->pending, node))
    {
        if (((ngx_http_reverse_mcp_pending_t *) node)->park == call->park) {
            pd = (ngx_http_reverse_mcp_pending_t *) node;
            break;
        }
    }

    if (pd == NULL) {
        return NGX_DECLINED;
    }

    /* the previous round's caller may not have let go yet (a mailbox
     * DETACH still on its way): it has no call any more */

    pd->call->pending = NULL;

    pd->call = call;
    pd->parked = 0;
    pd->park = 0;
    call->pending = pd;

    ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                  "reverse_mcp: call %uL to server \"%V\" resumed by its "
                  "caller's next round", (uint64_t) pd->node.key,
                  &ctx->server);

    /* the answers too: writing to the socket may end the call */
    ngx_post_event(&pd->resume_ev, &ngx_posted_events);

    return NGX_OK;
}


/*
 * inputResponses of a retry: each answers the request its key names.
 * NGX_ABORT: the socket is closing (the call, pd with it, is gone).
 */
static ngx_int_t
ngx_http_reverse_mcp_relay_answer(ngx_http_reverse_mcp_conn_t *ctx,
    ngx_http_reverse_mcp_pending_t *pd, yajl_val responses)
{
    u_char                        *p;
    size_t                         i, len;
    uint64_t                       key, seq;
    ngx_pid_t                      pid;
    ngx_str_t                      gid, value;
    ngx_pool_t                    *pool;
    ngx_queue_t                   *q;
    ngx_http_reverse_mcp_relay_t  *rl;

    if (!YAJL_IS_OBJECT(responses)) {
        return NGX_OK;
    }

    pool = ngx_create_pool(1024, ctx->connection->log);
    if (pool == NULL) {
        return NGX_OK;
    }

    for (i = 0; i < responses->u.object.len; i++) {
        gid.data = (u_char *) responses->u.object.keys[i];
        gid.len = ngx_strlen(gid.data);

        if (ngx_http_reverse_mcp_relay_id_parse(&gid, &pid, &key, &seq)
            != NGX_OK)
        {
            continue;   /* not ours: ignored, as the revision asks */
        }

        for (q = ngx_queue_head(&pd->relays);
             q != ngx_queue_sentinel(&pd->relays);
             q = ngx_queue_next(q))
        {
            rl = ngx_queue_data(q, ngx_http_reverse_mcp_relay_t, queue);

            if (rl->seq != seq) {
                continue;
            }

            if (ngx_http_reverse_mcp_json_dump(pool,
                                               responses->u.object.values[i],
                                               &value)
                != NGX_OK)
            {
                break;
            }

            len = sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"result\":}")
                  + rl->id.len + value.len;

            p = ngx_pnalloc(pool, len);
            if (p == NULL) {
                break;
            }

            len = ngx_sprintf(p, "{\"jsonrpc\":\"2.0\",\"id\":%V,"
                              "\"result\":%V}", &rl->id, &value) - p;

            ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                          "reverse_mcp: server \"%V\" request %V answered "
                          "by the caller's next round", &ctx->server,
                          &rl->id);

            ngx_queue_remove(q);
            ngx_http_reverse_mcp_relay_free(rl);

            if (ngx_http_reverse_mcp_send_json(ctx, p, len) != NGX_OK
                || ctx->finalized
                || ctx->state == NGX_HTTP_REVERSE_MCP_ST_CLOSING)
            {
                ngx_destroy_pool(pool);
                return NGX_ABORT;
            }

            break;
        }
    }

    ngx_destroy_pool(pool);

    return NGX_OK;
}


/*
 * After a retry took the parked call over: its answers to the server, the
 * requests it did not answer to the new caller.
 */
static void
ngx_http_reverse_mcp_resume_handler(ngx_event_t *ev)
{
    ngx_http_reverse_mcp_pending_t  *pd = ev->data;

    char                           err[128];
    yajl_val                       responses;
    ngx_int_t                      rc;
    ngx_queue_t                   *q, *next;
    ngx_http_reverse_mcp_conn_t   *ctx;
    ngx_http_reverse_mcp_call_t   *call;
    ngx_http_reverse_mcp_relay_t  *rl;

    ctx = pd->ctx;
    call = pd->call;

    if (call->params.len) {
        responses = ngx_http_reverse_mcp_json_parse(call->params.data,
                                                    call->params.len, err,
                                                    sizeof(err));
        if (responses) {
            rc = ngx_http_reverse_mcp_relay_answer(ctx, pd, responses);
            yajl_tree_free(responses);

            if (rc == NGX_ABORT) {
                return;
            }
        }
    }

    for (q = ngx_queue_head(&pd->relays);
         q != ngx_queue_sentinel(&pd->relays);
         q = next)
    {
        next = ngx_queue_next(q);
        rl = ngx_queue_data(q, ngx_http_reverse_mcp_relay_t, queue);
        call = pd->call;

        if (pd->park == 0) {
            pd->park = rl->seq;
        }

        if (rl->msg.len == 0
            || call->request == NULL
            || call->request(call, &rl->msg) != NGX_OK)
        {
            ngx_str_t  m;

            ngx_str_set(&m, "the caller of this call could not be reached");

            ngx_queue_remove(q);
            (void) ngx_http_reverse_mcp_reply_error(ctx, &rl->id,
                                        NGX_HTTP_REVERSE_MCP_RPC_NOT_FOUND,
                                        &m);
            ngx_http_reverse_mcp_relay_free(rl);

            if (ctx->finalized
                || ctx->state == NGX_HTTP_REVERSE_MCP_ST_CLOSING)
            {
                return;     /* the call is gone with the socket */
            }
        }
    }
}


/* the call ends: the server's requests its caller did not answer fail */
static void
ngx_http_reverse_mcp_relays_fail(ngx_http_reverse_mcp_pending_t *pd,
    const char *why)
{
    u_char                        text[256];
    ngx_str_t                     m;
    ngx_queue_t                  *q;
    ngx_http_reverse_mcp_conn_t  *ctx;
    ngx_http_reverse_mcp_relay_t *rl;

    ctx = pd->ctx;

    while (!ngx_queue_empty(&pd->relays)) {
        q = ngx_queue_head(&pd->relays);
        rl = ngx_queue_data(q, ngx_http_reverse_mcp_relay_t, queue);
        ngx_queue_remove(q);

        m.data = text;
        m.len = ngx_snprintf(text, sizeof(text), "the call this request "
                             "belongs to ended (%s) before its caller "
                             "answered", why) - text;

        ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                      "reverse_mcp: server \"%V\" request %V failed: %V",
                      &ctx->server, &rl->id, &m);

        (void) ngx_http_reverse_mcp_reply_error(ctx, &rl->id,
                                                NGX_HTTP_REVERSE_MCP_ERR_GONE,
                                                &m);
        ngx_http_reverse_mcp_relay_free(rl);
    }
}


/*
 * notifications/cancelled of the server for a request it relayed to a
 * caller: to that caller, with the gateway id; the request no longer waits
 * for an answer.  Others (the server sent no such request) are ignored.
 */
static void
ngx_http_reverse_mcp_relay_cancelled(ngx_http_reverse_mcp_conn_t *ctx,
    yajl_val params, yajl_val msg)
{
    u_char                          *p, lit[NGX_HTTP_REVERSE_MCP_RELAY_ID_LEN
                                            + 2];
    ngx_str_t                        rid, literal, json;
    ngx_queue_t                     *q;
    ngx_rbtree_node_t               *node;
    ngx_http_reverse_mcp_call_t     *call;
    ngx_http_reverse_mcp_relay_t    *rl;
    ngx_http_reverse_mcp_pending_t  *pd;

    if (ctx->npending == 0
        || ngx_http_reverse_mcp_json_get(params, "requestId") == NULL
        || ngx_http_reverse_mcp_json_dump(ctx->tmp_pool,
               ngx_http_reverse_mcp_json_get(params, "requestId"), &rid)
           != NGX_OK)
    {
        return;
    }

    for (node = ngx_rbtree_min(ctx->pending.root, ctx->pending.sentinel);
         node;
         node = ngx_rbtree_next(&ctx->pending, node))
    {
        pd = (ngx_http_reverse_mcp_pending_t *) node;

        for (q = ngx_queue_head(&pd->relays);
             q != ngx_queue_sentinel(&pd->relays);
             q = ngx_queue_next(q))
        {
            rl = ngx_queue_data(q, ngx_http_reverse_mcp_relay_t, queue);

            if (rl->id.len != rid.len
                || ngx_strncmp(rl->id.data, rid.data, rid.len) != 0)
            {
                continue;
            }

            call = pd->call;

            lit[0] = '"';
            p = ngx_http_reverse_mcp_relay_id(lit + 1, call->caller_pid,
                                              call->key, rl->seq);
            *p++ = '"';
            literal.data = lit;
            literal.len = p - lit;

            ngx_queue_remove(q);
            ngx_http_reverse_mcp_relay_free(rl);

            ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                          "reverse_mcp: server \"%V\" cancelled its request "
                          "%V (relayed to the caller of call %uL)",
                          &ctx->server, &rid, (uint64_t) pd->node.key);

            if (call->notify
                && ngx_http_reverse_mcp_json_dump_replace(ctx->tmp_pool, msg,
                       ngx_http_reverse_mcp_json_get(params, "requestId"),
                       &literal, &json)
                   == NGX_OK)
            {
                call->notify(call, &json);
            }

            return;
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->connection->log, 0,
                   "reverse_mcp: server \"%V\" cancelled %V, which is no "
                   "relayed request, ignored", &ctx->server, &rid);
}


/*
 * The caller's answer to a relayed request (a JSON-RPC response whose id
 * is the gateway's): to the server, with its own id.
 */
ngx_int_t
ngx_http_reverse_mcp_connector_answer(ngx_http_reverse_mcp_call_t *call,
    ngx_str_t *json)
{
    char                             err[128];
    uint64_t                         key, seq;
    yajl_val                         msg, id;
    ngx_int_t                        rc;
    ngx_pid_t                        pid;
    ngx_str_t                        gid, out;
    ngx_pool_t                      *pool;
    ngx_queue_t                     *q;
    ngx_http_reverse_mcp_conn_t     *ctx;
    ngx_http_reverse_mcp_relay_t    *rl;
    ngx_http_reverse_mcp_pending_t  *pd;

    pd = call->pending;

    if (pd == NULL) {
        return NGX_DECLINED;
    }

    ctx = pd->ctx;

    if (ctx->finalized || ctx->state == NGX_HTTP_REVERSE_MCP_ST_CLOSING) {
        return NGX_DECLINED;
    }

    msg = ngx_http_reverse_mcp_json_parse(json->data, json->len, err,
                                          sizeof(err));
    if (msg == NULL) {
        ngx_log_error(NGX_LOG_ERR, ctx->connection->log, 0,
                      "reverse_mcp: a relayed answer is not JSON: %s", err);
        return NGX_ERROR;
    }

    id = ngx_http_reverse_mcp_json_get(msg, "id");

    if (ngx_http_reverse_mcp_json_get_str(msg, "id", &gid) != NGX_OK
        || ngx_http_reverse_mcp_relay_id_parse(&gid, &pid, &key, &seq)
           != NGX_OK
        || pid != call->caller_pid || key != call->key)
    {
        yajl_tree_free(msg);
        return NGX_DECLINED;
    }

    rl = NULL;

    for (q = ngx_queue_head(&pd->relays);
         q != ngx_queue_sentinel(&pd->relays);
         q = ngx_queue_next(q))
    {
        rl = ngx_queue_data(q, ngx_http_reverse_mcp_relay_t, queue);

        if (rl->seq == seq) {
            break;
        }

        rl = NULL;
    }

    if (rl == NULL) {
        yajl_tree_free(msg);
        return NGX_DECLINED;
    }

    pool = ngx_create_pool(1024, ctx->connection->log);
    if (pool == NULL) {
        yajl_tree_free(msg);
        return NGX_ERROR;
    }

    rc = ngx_http_reverse_mcp_json_dump_replace(pool, msg, id, &rl->id, &out);

    yajl_tree_free(msg);

    if (rc != NGX_OK) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    ngx_queue_remove(&rl->queue);

    ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                  "reverse_mcp: server \"%V\" request %V answered by the "
                  "caller", &ctx->server, &rl->id);

    ngx_http_reverse_mcp_relay_free(rl);

    rc = ngx_http_reverse_mcp_send_json(ctx, out.data, out.len);

    ngx_destroy_pool(pool);

    return rc == NGX_OK ? NGX_OK : NGX_DECLINED;
}


static void
ngx_http_reverse_mcp_pending_finish(ngx_http_reverse_mcp_pending_t *pd,
    ngx_uint_t is_error, ngx_str_t *json)
{
    ngx_uint_t                    parked;
    ngx_http_reverse_mcp_call_t  *call;

    call = pd->call;
    parked = (call == &pd->stub);   /* nobody waits: the stub goes too */

    ngx_http_reverse_mcp_pending_remove(pd, is_error ? "it failed"
                                                     : "it has its result");
    ngx_free(pd);

    if (!parked) {
        call->done(call, is_error, json);
    }
}


static void
ngx_http_reverse_mcp_gateway_error(ngx_http_reverse_mcp_pending_t *pd,
    ngx_int_t code, const char *message)
{
    u_char     buf[NGX_HTTP_REVERSE_MCP_ERROR_TEXT];
    ngx_str_t  msg, json;

    msg.data = (u_char *) message;
    msg.len = ngx_strlen(message);

    json.data = buf;
    json.len = ngx_http_reverse_mcp_call_error_text(buf, code, &msg) - buf;

    ngx_http_reverse_mcp_pending_finish(pd, 1, &json);
}


/*
 * 2026-07-28: processing the call needs a client capability its caller
 * did not declare (the server asked for sampling, elicitation or roots):
 * the caller gets -32021 MissingRequiredClientCapability with
 * data.requiredCapabilities, the server notifications/cancelled.
 */
static void
ngx_http_reverse_mcp_missing_capability(ngx_http_reverse_mcp_conn_t *ctx,
    ngx_http_reverse_mcp_pending_t *pd, ngx_str_t *method, ngx_uint_t need)
{
    u_char      buf[512], *p, *last;
    ngx_str_t   json;
    const char  *caps;

    caps = (need & NGX_HTTP_REVERSE_MCP_RELAY_SAMPLING) ? "{\"sampling\":{}}"
           : (need & NGX_HTTP_REVERSE_MCP_RELAY_ELICIT_URL)
             ? "{\"elicitation\":{\"url\":{}}}"
           : (need & NGX_HTTP_REVERSE_MCP_RELAY_ELICIT)
             ? "{\"elicitation\":{}}"
           : "{\"roots\":{}}";

    last = buf + sizeof(buf);

    p = ngx_slprintf(buf, last, "{\"code\":%i,\"message\":\"Missing "
                     "required client capability: server \\\"%V\\\" "
                     "sent %V during the call\",\"data\":"
                     "{\"requiredCapabilities\":%s}}",
                     (ngx_int_t) NGX_HTTP_REVERSE_MCP_ERR_CAPABILITY,
                     &ctx->server, method, caps);

    json.data = buf;
    json.len = p - buf;

    ngx_log_error(NGX_LOG_INFO, ctx->connection->log, 0,
                  "reverse_mcp: call %uL to server \"%V\" ends with -32021: "
                  "it sent %V, which its caller cannot answer",
                  (uint64_t) pd->node.key, &ctx->server, method);

    ngx_http_reverse_mcp_send_cancelled(ctx, (int64_t) pd->node.key,
                                        "the client lacks a capability the "
                                        "request needs");

    ngx_http_reverse_mcp_pending_finish(pd, 1, &json);
}


static void
ngx_http_reverse_mcp_pending_timeout(ngx_event_t *ev)
{
    ngx_http_reverse_mcp_pending_t  *pd = ev->data;

    u_char                        msg[256];
    ngx_http_reverse_mcp_conn_t  *ctx;

    ctx = pd->ctx;

    (void) ngx_snprintf(msg, sizeof(msg),
                        "call to server \"%V\" timed out%Z", &ctx->server);

    ngx_log_error(NGX_LOG_WARN, ctx->connection->log, 0,
                  "reverse_mcp: call %uL to server \"%V\" of agent \"%V\" "
                  "timed out, cancelled", (uint64_t) pd->node.key,
                  &ctx->server, &ctx->agent);

    ngx_http_reverse_mcp_send_cancelled(ctx, (int64_t) pd->node.key,
                                        "timeout");

    ngx_http_reverse_mcp_gateway_error(pd, NGX_HTTP_REVERSE_MCP_ERR_TIMEOUT,
                                       (char *) msg);
}


static void
ngx_http_reverse_mcp_fail_pending(ngx_http_reverse_mcp_conn_t *ctx,
    ngx_int_t code, const char *message)
{
    u_char              msg[256];
    ngx_rbtree_node_t  *node;

    if (ctx->pending.root == NULL) {
        return;
    }

    (void) ngx_snprintf(msg, sizeof(msg), "server \"%V\": %s%Z",
                        &ctx->server, message);

    while (ctx->npending) {
        node = ngx_rbtree_min(ctx->pending.root, ctx->pending.sentinel);
        ngx_http_reverse_mcp_gateway_error(
            (ngx_http_reverse_mcp_pending_t *) node, code, (char *) msg);
    }
}


void
ngx_http_reverse_mcp_connector_cancel(ngx_http_reverse_mcp_call_t *call,
    const char *reason)
{
    ngx_http_reverse_mcp_pending_t  *pd;

    pd = call->pending;

    if (pd == NULL) {
        return;
    }

    ngx_http_reverse_mcp_send_cancelled(pd->ctx, (int64_t) pd->node.key,
                                        reason);

    ngx_http_reverse_mcp_pending_remove(pd, reason);
    ngx_free(pd);
}


static void
ngx_http_reverse_mcp_send_cancelled(ngx_http_reverse_mcp_conn_t *ctx,
    int64_t id, const char *reason)
{
    u_char     buf[512], *p;
    ngx_str_t  r;

    if (ctx->finalized || ctx->state == NGX_HTTP_REVERSE_MCP_ST_CLOSING) {
        return;
    }

    r.data = (u_char *) reason;
    r.len = ngx_min(ngx_strlen(reason), 200);

    p = ngx_sprintf(buf, "{\"jsonrpc\":\"2.0\",\"method\":"
                    "\"notifications/cancelled\",\"params\":{\"requestId\":"
                    "%L,\"reason\":", id);
    p = ngx_http_reverse_mcp_json_escape(p, &r);
    p = ngx_cpymem(p, "}}", 2);

    (void) ngx_http_reverse_mcp_send_json(ctx, buf, p - buf);
}


static ngx_http_reverse_mcp_pending_t *
ngx_http_reverse_mcp_pending_by_token(ngx_http_reverse_mcp_conn_t *ctx,
    ngx_str_t *token)
{
    ngx_rbtree_node_t               *node;
    ngx_http_reverse_mcp_pending_t  *pd;

    for (node = ngx_rbtree_min(ctx->pending.root, ctx->pending.sentinel);
         node;
         node = ngx_rbtree_next(&ctx->pending, node))
    {
        pd = (ngx_http_reverse_mcp_pending_t *) node;

        if (pd->token.len == token->len
            && ngx_strncmp(pd->token.data, token->data, token->len) == 0)
        {
            return pd;
        }
    }

    return NULL;
}


/*
 * A notification that belongs to a call in flight goes to its caller:
 * progress by its token, anything else (log messages) when exactly one
 * call is in flight on this socket.
 */
static ngx_int_t
ngx_http_reverse_mcp_route_notification(ngx_http_reverse_mcp_conn_t *ctx,
    ngx_str_t *method, yajl_val msg)
{
    yajl_val                         token;
    ngx_str_t                        json, lit;
    ngx_http_reverse_mcp_pending_t  *pd;

    pd = NULL;

    if (method->len == sizeof("notifications/progress") - 1
        && ngx_strncmp(method->data, "notifications/progress", method->len)
           == 0)
    {
        token = ngx_http_reverse_mcp_json_get(
                    ngx_http_reverse_mcp_json_get(msg, "params"),
                    "progressToken");

        if (token == NULL
            || ngx_http_reverse_mcp_json_dump(ctx->tmp_pool, token, &lit)
               != NGX_OK)
        {
            return NGX_DECLINED;
        }

        pd = ngx_http_reverse_mcp_pending_by_token(ctx, &lit);

    } else if (ctx->npending == 1) {
        pd = (ngx_http_reverse_mcp_pending_t *)
                 ngx_rbtree_min(ctx->pending.root, ctx->pending.sentinel);
    }

    if (pd == NULL || pd->call->notify == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_reverse_mcp_json_dump(ctx->tmp_pool, msg, &json) != NGX_OK) {
        return NGX_DECLINED;
    }

    pd->call->notify(pd->call, &json);

    return NGX_OK;
}
