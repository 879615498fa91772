/*
 * A2A for the chat agent ("reverse_mcp_a2a agent;"): the protocol of the
 * seed's CLI, A2A v0.3 over JSON-RPC 2.0.
 *
 *   GET  .../.well-known/agent-card.json (or agent.json, or any GET of the
 *        location): the Agent Card, one chat skill, streaming; its "url"
 *        is the location's URI with the well-known suffix removed
 *   POST JSON-RPC: message/send (blocking), message/stream (SSE: the task,
 *        status-update events "thinking" / "Using tool: X" / tool results,
 *        the answer as an artifact-update, the final status-update),
 *        tasks/get, tasks/cancel
 *
 * Each message is a new task of the conversation its contextId names (the
 * chat engine, ngx_http_reverse_mcp_chat.c, with the same history as the
 * plain chat API).  Task records live in the chat zone under
 * "a2a-task\0<agent>\0<id>", so any worker answers tasks/get and
 * tasks/cancel; the worker running a task polls its record and stops when
 * another request canceled it.  A failed LLM request makes a "failed" task
 * whose status message says why; a busy conversation a "rejected" one.
 */

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_chat.h"
#include "ngx_http_reverse_mcp_llm.h"
#include "ngx_http_reverse_mcp_http.h"
#include "ngx_http_reverse_mcp_history.h"
#include "ngx_http_reverse_mcp_json.h"

#include <openssl/rand.h>


#define NGX_HTTP_REVERSE_MCP_A2A_VERSION       "0.3.0"
#define NGX_HTTP_REVERSE_MCP_A2A_POLL          200      /* ms */

/* JSON-RPC and A2A error codes */
#define NGX_HTTP_REVERSE_MCP_A2A_PARSE_ERROR      -32700
#define NGX_HTTP_REVERSE_MCP_A2A_INVALID_REQUEST  -32600
#define NGX_HTTP_REVERSE_MCP_A2A_NO_METHOD        -32601
#define NGX_HTTP_REVERSE_MCP_A2A_INVALID_PARAMS   -32602
#define NGX_HTTP_REVERSE_MCP_A2A_INTERNAL         -32603
#define NGX_HTTP_REVERSE_MCP_A2A_TASK_NOT_FOUND   -32001
#define NGX_HTTP_REVERSE_MCP_A2A_NOT_CANCELABLE   -32002
#define NGX_HTTP_REVERSE_MCP_A2A_NO_PUSH          -32003
#define NGX_HTTP_REVERSE_MCP_A2A_UNSUPPORTED      -32004


typedef struct {
    ngx_http_reverse_mcp_chat_t            chat;
    ngx_http_request_t                    *request;
    ngx_shm_zone_t                        *zone;
    ngx_str_t                              rpc_id;     /* JSON text */
    ngx_str_t                              task_id;
    ngx_str_t                              task_key;
    ngx_str_t                              message_id; /* the user's */
    ngx_event_t                            poll_ev;
    unsigned                               stream:1;
    unsigned                               header_sent:1;
    unsigned                               failed:1;
    unsigned                               running:1;
} ngx_http_reverse_mcp_a2a_ctx_t;


static ngx_int_t ngx_http_reverse_mcp_a2a_card(ngx_http_request_t *r,
    ngx_http_reverse_mcp_chat_loc_t *cl);
static void ngx_http_reverse_mcp_a2a_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_reverse_mcp_a2a_message(
    ngx_http_reverse_mcp_a2a_ctx_t *ctx, yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_a2a_get(
    ngx_http_reverse_mcp_a2a_ctx_t *ctx, yajl_val params, ngx_uint_t cancel);
static ngx_int_t ngx_http_reverse_mcp_a2a_task_key(
    ngx_http_reverse_mcp_a2a_ctx_t *ctx, ngx_str_t *id, ngx_str_t *key);
static ngx_int_t ngx_http_reverse_mcp_a2a_task(
    ngx_http_reverse_mcp_a2a_ctx_t *ctx, const char *state,
    ngx_str_t *status_text, ngx_uint_t final, ngx_str_t *out);
static void ngx_http_reverse_mcp_a2a_gen_message(
    ngx_http_reverse_mcp_a2a_ctx_t *ctx, yajl_gen g, const char *role,
    ngx_str_t *id, ngx_str_t *text);
static void ngx_http_reverse_mcp_a2a_gen_status(
    ngx_http_reverse_mcp_a2a_ctx_t *ctx, yajl_gen g, const char *state,
    ngx_str_t *text);
static void ngx_http_reverse_mcp_a2a_progress(
    ngx_http_reverse_mcp_chat_t *chat, ngx_uint_t kind, ngx_str_t *text,
    ngx_str_t *json);
static void ngx_http_reverse_mcp_a2a_end(ngx_http_reverse_mcp_chat_t *chat);
static ngx_int_t ngx_http_reverse_mcp_a2a_finish(
    ngx_http_reverse_mcp_a2a_ctx_t *ctx);
static void ngx_http_reverse_mcp_a2a_poll(ngx_event_t *ev);
static void ngx_http_reverse_mcp_a2a_cleanup(void *data);
static ngx_int_t ngx_http_reverse_mcp_a2a_stream_open(
    ngx_http_reverse_mcp_a2a_ctx_t *ctx);
static ngx_int_t ngx_http_reverse_mcp_a2a_event(
    ngx_http_reverse_mcp_a2a_ctx_t *ctx, ngx_str_t *result, ngx_uint_t last);
static ngx_int_t ngx_http_reverse_mcp_a2a_result(
    ngx_http_reverse_mcp_a2a_ctx_t *ctx, ngx_str_t *result);
static ngx_int_t ngx_http_reverse_mcp_a2a_error(
    ngx_http_reverse_mcp_a2a_ctx_t *ctx, ngx_int_t code, const char *fmt,
    ...);
static ngx_int_t ngx_http_reverse_mcp_a2a_uuid(ngx_pool_t *pool,
    ngx_str_t *out);
static u_char *ngx_http_reverse_mcp_a2a_time(u_char *buf);
static ngx_int_t ngx_http_reverse_mcp_a2a_str_eq(ngx_str_t *s,
    const char *c);


#define ngx_http_reverse_mcp_a2a_lit(g, s)                                    \
    yajl_gen_string(g, (const unsigned char *) s, sizeof(s) - 1)

#define ngx_http_reverse_mcp_a2a_gstr(g, s)                                   \
    yajl_gen_string(g, (const unsigned char *) (s)->data, (s)->len)

#define ngx_http_reverse_mcp_a2a_cstr(g, s)                                   \
    yajl_gen_string(g, (const unsigned char *) s, ngx_strlen(s))

#define ngx_http_reverse_mcp_a2a_raw(g, s)                                    \
    yajl_gen_number(g, (const char *) (s)->data, (s)->len)


ngx_int_t
ngx_http_reverse_mcp_a2a_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_str_t                         allow;
    ngx_http_reverse_mcp_chat_loc_t  *cl;
    ngx_http_reverse_mcp_loc_conf_t  *lcf;
    ngx_http_reverse_mcp_a2a_ctx_t   *ctx;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_reverse_mcp_module);
    cl = lcf->chat;

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_reverse_mcp_a2a_card(r, cl);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_reverse_mcp_a2a_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ngx_str_set(&ctx->rpc_id, "null");

    ngx_http_set_ctx(r, ctx, ngx_http_reverse_mcp_module);

    if (r->method != NGX_HTTP_POST) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&allow, "GET, POST");

        if (ngx_http_reverse_mcp_http_add_header(r, "Allow", &allow)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_NOT_ALLOWED;
    }

    if (!ngx_http_reverse_mcp_http_json_content(r)) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_UNSUPPORTED_MEDIA_TYPE;
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_reverse_mcp_a2a_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* the Agent Card (A2A v0.3) */
static ngx_int_t
ngx_http_reverse_mcp_a2a_card(ngx_http_request_t *r,
    ngx_http_reverse_mcp_chat_loc_t *cl)
{
    yajl_gen                            g;
    ngx_str_t                           url, uri, body, desc, host;
    ngx_uint_t                          i;
    ngx_http_reverse_mcp_llm_conf_t    *llm;
    ngx_http_reverse_mcp_main_conf_t   *mcf;
    ngx_http_reverse_mcp_agent_conf_t  *acf;

    static ngx_str_t  suffixes[] = {
        ngx_string(".well-known/agent-card.json"),
        ngx_string(".well-known/agent.json"),
        ngx_null_string
    };

    mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);
    acf = ngx_http_reverse_mcp_find_agent(mcf, &cl->agent);
    llm = acf ? acf->llm : NULL;

    /* the endpoint: this URI without the well-known part */

    uri = r->uri;

    for (i = 0; suffixes[i].len; i++) {
        if (uri.len >= suffixes[i].len
            && ngx_strncmp(uri.data + uri.len - suffixes[i].len,
                           suffixes[i].data, suffixes[i].len) == 0)
        {
            uri.len -= suffixes[i].len;
            break;
        }
    }

    if (r->headers_in.server.len) {
        host = r->headers_in.server;

    } else {
        ngx_str_set(&host, "localhost");
    }

    if (r->headers_in.host) {
        host = r->headers_in.host->value;
    }

    url.len = sizeof("https://") - 1 + host.len + uri.len;
    url.data = ngx_pnalloc(r->pool, url.len);
    if (url.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    url.len = ngx_sprintf(url.data, "%s://%V%V",
#if (NGX_HTTP_SSL)
                          r->connection->ssl ? "https" : "http",
#else
                          "http",
#endif
                          &host, &uri)
              - url.data;

    if (llm && llm->description.len) {
        desc = llm->description;

    } else {
        ngx_str_set(&desc, "An AI agent inside nginx that uses the tools of "
                           "the MCP servers connected to it");
    }

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "protocolVersion");
    ngx_http_reverse_mcp_a2a_lit(g, NGX_HTTP_REVERSE_MCP_A2A_VERSION);
    ngx_http_reverse_mcp_a2a_lit(g, "name");
    ngx_http_reverse_mcp_a2a_gstr(g, &cl->agent);
    ngx_http_reverse_mcp_a2a_lit(g, "description");
    ngx_http_reverse_mcp_a2a_gstr(g, &desc);
    ngx_http_reverse_mcp_a2a_lit(g, "url");
    ngx_http_reverse_mcp_a2a_gstr(g, &url);
    ngx_http_reverse_mcp_a2a_lit(g, "preferredTransport");
    ngx_http_reverse_mcp_a2a_lit(g, "JSONRPC");
    ngx_http_reverse_mcp_a2a_lit(g, "version");
    ngx_http_reverse_mcp_a2a_lit(g, NGX_HTTP_REVERSE_MCP_VERSION);
    ngx_http_reverse_mcp_a2a_lit(g, "provider");
    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "organization");
    ngx_http_reverse_mcp_a2a_lit(g, "ngx_http_reverse_mcp_module");
    ngx_http_reverse_mcp_a2a_lit(g, "url");
    ngx_http_reverse_mcp_a2a_gstr(g, &url);
    yajl_gen_map_close(g);
    ngx_http_reverse_mcp_a2a_lit(g, "capabilities");
    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "streaming");
    yajl_gen_bool(g, 1);
    ngx_http_reverse_mcp_a2a_lit(g, "pushNotifications");
    yajl_gen_bool(g, 0);
    ngx_http_reverse_mcp_a2a_lit(g, "stateTransitionHistory");
    yajl_gen_bool(g, 0);
    yajl_gen_map_close(g);
    ngx_http_reverse_mcp_a2a_lit(g, "defaultInputModes");
    yajl_gen_array_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "text/plain");
    yajl_gen_array_close(g);
    ngx_http_reverse_mcp_a2a_lit(g, "defaultOutputModes");
    yajl_gen_array_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "text/plain");
    yajl_gen_array_close(g);
    ngx_http_reverse_mcp_a2a_lit(g, "skills");
    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "id");
    ngx_http_reverse_mcp_a2a_lit(g, "ai_chat");
    ngx_http_reverse_mcp_a2a_lit(g, "name");
    ngx_http_reverse_mcp_a2a_lit(g, "Communicate with AI");
    ngx_http_reverse_mcp_a2a_lit(g, "description");
    ngx_http_reverse_mcp_a2a_lit(g, "Chat with the agent; it uses the tools "
                                    "of the MCP servers connected to it. "
                                    "Commands: /tools, /servers, /history, "
                                    "/hello, /bye, /help.");
    ngx_http_reverse_mcp_a2a_lit(g, "tags");
    yajl_gen_array_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "chat");
    ngx_http_reverse_mcp_a2a_lit(g, "mcp");
    yajl_gen_array_close(g);
    ngx_http_reverse_mcp_a2a_lit(g, "examples");
    yajl_gen_array_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "/tools");
    ngx_http_reverse_mcp_a2a_lit(g, "check what is in root, run ls -l /");
    yajl_gen_array_close(g);
    ngx_http_reverse_mcp_a2a_lit(g, "inputModes");
    yajl_gen_array_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "text/plain");
    yajl_gen_array_close(g);
    ngx_http_reverse_mcp_a2a_lit(g, "outputModes");
    yajl_gen_array_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "text/plain");
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);

    if (ngx_http_reverse_mcp_json_gen_done(r->pool, g, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_reverse_mcp_http_send(r, NGX_HTTP_OK, NULL, &body);
}


static void
ngx_http_reverse_mcp_a2a_body(ngx_http_request_t *r)
{
    char                               err[128];
    yajl_val                           root, v, params;
    ngx_int_t                          rc;
    ngx_str_t                          body, method;
    ngx_pool_cleanup_t                *cln;
    ngx_http_reverse_mcp_a2a_ctx_t    *ctx;
    ngx_http_reverse_mcp_chat_loc_t   *cl;
    ngx_http_reverse_mcp_loc_conf_t   *lcf;
    ngx_http_reverse_mcp_main_conf_t  *mcf;
    ngx_http_reverse_mcp_chat_main_t  *cm;

    ctx = ngx_http_get_module_ctx(r, ngx_http_reverse_mcp_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_reverse_mcp_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);
    cl = lcf->chat;
    cm = mcf->chat;

    ctx->zone = cm ? cm->zone : NULL;
    ctx->chat.agent = cl->agent;
    ctx->chat.request = r;

    if (ngx_http_reverse_mcp_http_read_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    root = ngx_http_reverse_mcp_json_parse(body.data, body.len, err,
                                           sizeof(err));
    if (root == NULL) {
        ngx_http_finalize_request(r,
            ngx_http_reverse_mcp_a2a_error(ctx,
                                           NGX_HTTP_REVERSE_MCP_A2A_PARSE_ERROR,
                                           "Parse error: %s", err));
        return;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        yajl_tree_free(root);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = (ngx_pool_cleanup_pt) yajl_tree_free;
    cln->data = root;

    v = ngx_http_reverse_mcp_json_get(root, "id");

    if (v && (YAJL_IS_STRING(v) || YAJL_IS_NUMBER(v))) {
        if (ngx_http_reverse_mcp_json_dump(r->pool, v, &ctx->rpc_id)
            != NGX_OK)
        {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    if (!YAJL_IS_OBJECT(root)
        || ngx_http_reverse_mcp_json_get_str(root, "jsonrpc", &method)
           != NGX_OK
        || !ngx_http_reverse_mcp_a2a_str_eq(&method, "2.0")
        || ngx_http_reverse_mcp_json_get_str(root, "method", &method)
           != NGX_OK
        || (v && !YAJL_IS_STRING(v) && !YAJL_IS_NUMBER(v) && !YAJL_IS_NULL(v)))
    {
        ngx_http_finalize_request(r,
            ngx_http_reverse_mcp_a2a_error(ctx,
                                  NGX_HTTP_REVERSE_MCP_A2A_INVALID_REQUEST,
                                  "Invalid Request: a JSON-RPC 2.0 request "
                                  "object is required"));
        return;
    }

    params = ngx_http_reverse_mcp_json_get(root, "params");

    if (params && !YAJL_IS_OBJECT(params)) {
        ngx_http_finalize_request(r,
            ngx_http_reverse_mcp_a2a_error(ctx,
                                  NGX_HTTP_REVERSE_MCP_A2A_INVALID_PARAMS,
                                  "Invalid params: an object is required"));
        return;
    }

    if (ctx->zone == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_reverse_mcp_a2a_str_eq(&method, "message/send")
        || ngx_http_reverse_mcp_a2a_str_eq(&method, "message/stream"))
    {
        ctx->stream = (method.data[8] == 's' && method.data[9] == 't');
        rc = ngx_http_reverse_mcp_a2a_message(ctx, params);

    } else if (ngx_http_reverse_mcp_a2a_str_eq(&method, "tasks/get")) {
        rc = ngx_http_reverse_mcp_a2a_get(ctx, params, 0);

    } else if (ngx_http_reverse_mcp_a2a_str_eq(&method, "tasks/cancel")) {
        rc = ngx_http_reverse_mcp_a2a_get(ctx, params, 1);

    } else if (method.len > 28
               && ngx_strncmp(method.data, "tasks/pushNotificationConfig/",
                              29) == 0)
    {
        rc = ngx_http_reverse_mcp_a2a_error(ctx,
                                     NGX_HTTP_REVERSE_MCP_A2A_NO_PUSH,
                                     "Push Notification is not supported");

    } else if (ngx_http_reverse_mcp_a2a_str_eq(&method, "tasks/resubscribe")
               || ngx_http_reverse_mcp_a2a_str_eq(&method,
                                     "agent/getAuthenticatedExtendedCard"))
    {
        rc = ngx_http_reverse_mcp_a2a_error(ctx,
                                     NGX_HTTP_REVERSE_MCP_A2A_UNSUPPORTED,
                                     "This operation is not supported: %V",
                                     &method);

    } else {
        rc = ngx_http_reverse_mcp_a2a_error(ctx,
                                     NGX_HTTP_REVERSE_MCP_A2A_NO_METHOD,
                                     "Method not found: %V", &method);
    }

    if (rc == NGX_DONE) {
        return;
    }

    ngx_http_finalize_request(r, rc);
}


/* message/send and message/stream */
static ngx_int_t
ngx_http_reverse_mcp_a2a_message(ngx_http_reverse_mcp_a2a_ctx_t *ctx,
    yajl_val params)
{
    u_char                       *d;
    size_t                        i, len;
    yajl_val                      msg, parts, part, v;
    ngx_int_t                     rc;
    ngx_str_t                     s, kind, text, record;
    ngx_http_request_t           *r;
    ngx_http_cleanup_t           *cln;
    ngx_http_reverse_mcp_chat_t  *chat;

    r = ctx->request;
    chat = &ctx->chat;

    msg = ngx_http_reverse_mcp_json_get(params, "message");
    parts = ngx_http_reverse_mcp_json_get(msg, "parts");

    if (msg == NULL || !YAJL_IS_OBJECT(msg) || parts == NULL
        || !YAJL_IS_ARRAY(parts))
    {
        return ngx_http_reverse_mcp_a2a_error(ctx,
                                   NGX_HTTP_REVERSE_MCP_A2A_INVALID_PARAMS,
                                   "Invalid params: \"message\" with "
                                   "\"parts\" is required");
    }

    /* the text: text parts, data parts as JSON, files named */

    len = 0;

    for (i = 0; i < parts->u.array.len; i++) {
        part = parts->u.array.values[i];

        if (ngx_http_reverse_mcp_json_get_str(part, "text", &s) == NGX_OK) {
            len += s.len + 1;

        } else if ((v = ngx_http_reverse_mcp_json_get(part, "data"))) {
            if (ngx_http_reverse_mcp_json_dump(r->pool, v, &s) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            len += s.len + 1;

        } else {
            len += 128;
        }
    }

    text.data = ngx_pnalloc(r->pool, len + 1);
    if (text.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    d = text.data;

    for (i = 0; i < parts->u.array.len; i++) {
        part = parts->u.array.values[i];

        if (d > text.data) {
            *d++ = '\n';
        }

        if (ngx_http_reverse_mcp_json_get_str(part, "text", &s) == NGX_OK) {
            d = ngx_cpymem(d, s.data, s.len);
            continue;
        }

        if ((v = ngx_http_reverse_mcp_json_get(part, "data"))) {
            (void) ngx_http_reverse_mcp_json_dump(r->pool, v, &s);
            d = ngx_cpymem(d, s.data, s.len);
            continue;
        }

        ngx_str_set(&kind, "file");
        (void) ngx_http_reverse_mcp_json_get_str(part, "kind", &kind);

        if (kind.len > 32) {
            kind.len = 32;
        }

        d = ngx_slprintf(d, d + 127, "[%V part not shown]", &kind);
    }

    text.len = d - text.data;

    while (text.len && (text.data[text.len - 1] == '\n')) {
        text.len--;
    }

    if (text.len == 0) {
        return ngx_http_reverse_mcp_a2a_error(ctx,
                                   NGX_HTTP_REVERSE_MCP_A2A_INVALID_PARAMS,
                                   "Invalid params: the message has no text");
    }

    chat->message = text;

    if (ngx_http_reverse_mcp_json_get_str(msg, "messageId", &s) == NGX_OK
        && s.len)
    {
        ctx->message_id.data = ngx_pstrdup(r->pool, &s);
        ctx->message_id.len = s.len;

    } else if (ngx_http_reverse_mcp_a2a_uuid(r->pool, &ctx->message_id)
               != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_reverse_mcp_json_get_str(msg, "contextId", &s) == NGX_OK) {
        if (!ngx_http_reverse_mcp_chat_id_valid(&s)) {
            return ngx_http_reverse_mcp_a2a_error(ctx,
                                   NGX_HTTP_REVERSE_MCP_A2A_INVALID_PARAMS,
                                   "Invalid params: invalid contextId (use "
                                   "1-128 of [A-Za-z0-9._:-])");
        }

        chat->context_id.data = ngx_pstrdup(r->pool, &s);
        chat->context_id.len = s.len;

    } else if (ngx_http_reverse_mcp_a2a_uuid(r->pool, &chat->context_id)
               != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->message_id.data == NULL || chat->context_id.data == NULL
        || ngx_http_reverse_mcp_a2a_uuid(r->pool, &ctx->task_id) != NGX_OK
        || ngx_http_reverse_mcp_a2a_task_key(ctx, &ctx->task_id,
                                             &ctx->task_key)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the task record, for tasks/get and tasks/cancel from any worker */

    if (ngx_http_reverse_mcp_a2a_task(ctx, "working", NULL, 0, &record)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_reverse_mcp_history_put(ctx->zone, &ctx->task_key, &record,
                                         NULL, r->connection->log)
        != NGX_OK)
    {
        return ngx_http_reverse_mcp_a2a_error(ctx,
                                   NGX_HTTP_REVERSE_MCP_A2A_INTERNAL,
                                   "Internal error: the chat zone is full");
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_reverse_mcp_a2a_cleanup;
    cln->data = ctx;

    chat->request = r;
    chat->progress = ctx->stream ? ngx_http_reverse_mcp_a2a_progress : NULL;
    chat->end = ngx_http_reverse_mcp_a2a_end;
    chat->data = ctx;

    rc = ngx_http_reverse_mcp_chat_run(chat);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        /* a command, a busy conversation: the outcome is there */
        return ngx_http_reverse_mcp_a2a_finish(ctx);
    }

    ctx->running = 1;

    ctx->poll_ev.handler = ngx_http_reverse_mcp_a2a_poll;
    ctx->poll_ev.data = ctx;
    ctx->poll_ev.log = r->connection->log;
    ctx->poll_ev.cancelable = 1;

    ngx_add_timer(&ctx->poll_ev, NGX_HTTP_REVERSE_MCP_A2A_POLL);

    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


/* tasks/get, tasks/cancel */
static ngx_int_t
ngx_http_reverse_mcp_a2a_get(ngx_http_reverse_mcp_a2a_ctx_t *ctx,
    yajl_val params, ngx_uint_t cancel)
{
    char                 err[128];
    yajl_val             root, status;
    ngx_int_t            rc;
    ngx_str_t            id, key, record, state, lit, out;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ngx_http_reverse_mcp_json_get_str(params, "id", &id) != NGX_OK
        || id.len == 0 || id.len > 128)
    {
        return ngx_http_reverse_mcp_a2a_error(ctx,
                                   NGX_HTTP_REVERSE_MCP_A2A_INVALID_PARAMS,
                                   "Invalid params: \"id\" (a task id) is "
                                   "required");
    }

    if (ngx_http_reverse_mcp_a2a_task_key(ctx, &id, &key) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for ( ;; ) {
        rc = ngx_http_reverse_mcp_history_get(ctx->zone, r->pool, &key,
                                              86400 * 365, &record);
        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_DECLINED || record.len == 0) {
            return ngx_http_reverse_mcp_a2a_error(ctx,
                                   NGX_HTTP_REVERSE_MCP_A2A_TASK_NOT_FOUND,
                                   "Task not found: %V", &id);
        }

        if (!cancel) {
            return ngx_http_reverse_mcp_a2a_result(ctx, &record);
        }

        root = ngx_http_reverse_mcp_json_parse(record.data, record.len, err,
                                               sizeof(err));
        if (root == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        status = ngx_http_reverse_mcp_json_get(root, "status");
        ngx_str_null(&state);
        (void) ngx_http_reverse_mcp_json_get_str(status, "state", &state);

        if (!ngx_http_reverse_mcp_a2a_str_eq(&state, "working")
            && !ngx_http_reverse_mcp_a2a_str_eq(&state, "submitted"))
        {
            rc = ngx_http_reverse_mcp_a2a_error(ctx,
                                   NGX_HTTP_REVERSE_MCP_A2A_NOT_CANCELABLE,
                                   "Task cannot be canceled: it is %V",
                                   &state);
            yajl_tree_free(root);
            return rc;
        }

        /* the same record, canceled; only if it still runs */

        lit.data = ngx_pnalloc(r->pool, 128);
        if (lit.data == NULL) {
            yajl_tree_free(root);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        lit.len = ngx_sprintf(lit.data, "{\"state\":\"canceled\","
                              "\"timestamp\":\"") - lit.data;
        lit.len = ngx_http_reverse_mcp_a2a_time(lit.data + lit.len)
                  - lit.data;
        lit.data[lit.len++] = '"';
        lit.data[lit.len++] = '}';

        rc = ngx_http_reverse_mcp_json_dump_replace(r->pool, root, status,
                                                    &lit, &out);
        yajl_tree_free(root);

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_reverse_mcp_history_put(ctx->zone, &key, &out,
                                              "\"state\":\"working\"",
                                              r->connection->log);
        if (rc == NGX_OK) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "reverse_mcp: a2a task %V canceled", &id);

            return ngx_http_reverse_mcp_a2a_result(ctx, &out);
        }

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* it ended meanwhile: look again */
    }
}


static ngx_int_t
ngx_http_reverse_mcp_a2a_task_key(ngx_http_reverse_mcp_a2a_ctx_t *ctx,
    ngx_str_t *id, ngx_str_t *key)
{
    u_char  *p;

    key->len = sizeof("a2a-task") + ctx->chat.agent.len + 1 + id->len;
    key->data = ngx_pnalloc(ctx->request->pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key->data, "a2a-task", sizeof("a2a-task"));
    p = ngx_cpymem(p, ctx->chat.agent.data, ctx->chat.agent.len);
    *p++ = '\0';
    ngx_memcpy(p, id->data, id->len);

    return NGX_OK;
}


/*
 * The task object: {"kind":"task","id","contextId","status":{...},
 * "artifacts":[...],"history":[the user's message],"metadata":{...}}.
 * final: with the answer or the error.
 */
static ngx_int_t
ngx_http_reverse_mcp_a2a_task(ngx_http_reverse_mcp_a2a_ctx_t *ctx,
    const char *state, ngx_str_t *status_text, ngx_uint_t final,
    ngx_str_t *out)
{
    yajl_gen                      g;
    ngx_str_t                     artifact;
    ngx_http_reverse_mcp_chat_t  *chat;

    chat = &ctx->chat;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "kind");
    ngx_http_reverse_mcp_a2a_lit(g, "task");
    ngx_http_reverse_mcp_a2a_lit(g, "id");
    ngx_http_reverse_mcp_a2a_gstr(g, &ctx->task_id);
    ngx_http_reverse_mcp_a2a_lit(g, "contextId");
    ngx_http_reverse_mcp_a2a_gstr(g, &chat->context_id);
    ngx_http_reverse_mcp_a2a_lit(g, "status");
    ngx_http_reverse_mcp_a2a_gen_status(ctx, g, state, status_text);

    if (final && chat->error_type == NULL && chat->answer.len) {
        ngx_http_reverse_mcp_a2a_lit(g, "artifacts");
        yajl_gen_array_open(g);
        yajl_gen_map_open(g);
        ngx_http_reverse_mcp_a2a_lit(g, "artifactId");

        if (ngx_http_reverse_mcp_a2a_uuid(ctx->request->pool, &artifact)
            != NGX_OK)
        {
            yajl_gen_free(g);
            return NGX_ERROR;
        }

        ngx_http_reverse_mcp_a2a_gstr(g, &artifact);
        ngx_http_reverse_mcp_a2a_lit(g, "name");
        ngx_http_reverse_mcp_a2a_lit(g, "answer");
        ngx_http_reverse_mcp_a2a_lit(g, "parts");
        yajl_gen_array_open(g);
        yajl_gen_map_open(g);
        ngx_http_reverse_mcp_a2a_lit(g, "kind");
        ngx_http_reverse_mcp_a2a_lit(g, "text");
        ngx_http_reverse_mcp_a2a_lit(g, "text");
        ngx_http_reverse_mcp_a2a_gstr(g, &chat->answer);
        yajl_gen_map_close(g);
        yajl_gen_array_close(g);
        yajl_gen_map_close(g);
        yajl_gen_array_close(g);
    }

    ngx_http_reverse_mcp_a2a_lit(g, "history");
    yajl_gen_array_open(g);
    ngx_http_reverse_mcp_a2a_gen_message(ctx, g, "user", &ctx->message_id,
                                         &chat->message);
    yajl_gen_array_close(g);

    if (final) {
        ngx_http_reverse_mcp_a2a_lit(g, "metadata");
        yajl_gen_map_open(g);
        ngx_http_reverse_mcp_a2a_lit(g, "agent");
        ngx_http_reverse_mcp_a2a_gstr(g, &chat->agent);
        ngx_http_reverse_mcp_a2a_lit(g, "rounds");
        yajl_gen_integer(g, chat->rounds);
        ngx_http_reverse_mcp_a2a_lit(g, "tool_calls");

        if (chat->tool_calls.len) {
            ngx_http_reverse_mcp_a2a_raw(g, &chat->tool_calls);

        } else {
            yajl_gen_array_open(g);
            yajl_gen_array_close(g);
        }

        if (chat->error_type) {
            ngx_http_reverse_mcp_a2a_lit(g, "error");
            yajl_gen_map_open(g);
            ngx_http_reverse_mcp_a2a_lit(g, "type");
            ngx_http_reverse_mcp_a2a_cstr(g, chat->error_type);
            ngx_http_reverse_mcp_a2a_lit(g, "message");
            ngx_http_reverse_mcp_a2a_gstr(g, &chat->error);

            if (chat->upstream_status) {
                ngx_http_reverse_mcp_a2a_lit(g, "upstream_status");
                yajl_gen_integer(g, chat->upstream_status);
            }

            yajl_gen_map_close(g);
        }

        yajl_gen_map_close(g);
    }

    yajl_gen_map_close(g);

    return ngx_http_reverse_mcp_json_gen_done(ctx->request->pool, g, out);
}


static void
ngx_http_reverse_mcp_a2a_gen_message(ngx_http_reverse_mcp_a2a_ctx_t *ctx,
    yajl_gen g, const char *role, ngx_str_t *id, ngx_str_t *text)
{
    ngx_str_t  mid;

    if (id == NULL) {
        if (ngx_http_reverse_mcp_a2a_uuid(ctx->request->pool, &mid)
            != NGX_OK)
        {
            ngx_str_set(&mid, "message");
        }

        id = &mid;
    }

    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "kind");
    ngx_http_reverse_mcp_a2a_lit(g, "message");
    ngx_http_reverse_mcp_a2a_lit(g, "messageId");
    ngx_http_reverse_mcp_a2a_gstr(g, id);
    ngx_http_reverse_mcp_a2a_lit(g, "role");
    ngx_http_reverse_mcp_a2a_cstr(g, role);
    ngx_http_reverse_mcp_a2a_lit(g, "parts");
    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "kind");
    ngx_http_reverse_mcp_a2a_lit(g, "text");
    ngx_http_reverse_mcp_a2a_lit(g, "text");
    ngx_http_reverse_mcp_a2a_gstr(g, text);
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
    ngx_http_reverse_mcp_a2a_lit(g, "contextId");
    ngx_http_reverse_mcp_a2a_gstr(g, &ctx->chat.context_id);
    ngx_http_reverse_mcp_a2a_lit(g, "taskId");
    ngx_http_reverse_mcp_a2a_gstr(g, &ctx->task_id);
    yajl_gen_map_close(g);
}


/* {"state":..,"message":{agent text}?,"timestamp":..} */
static void
ngx_http_reverse_mcp_a2a_gen_status(ngx_http_reverse_mcp_a2a_ctx_t *ctx,
    yajl_gen g, const char *state, ngx_str_t *text)
{
    u_char  ts[64], *p;

    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "state");
    ngx_http_reverse_mcp_a2a_cstr(g, state);

    if (text && text->len) {
        ngx_http_reverse_mcp_a2a_lit(g, "message");
        ngx_http_reverse_mcp_a2a_gen_message(ctx, g, "agent", NULL, text);
    }

    p = ngx_http_reverse_mcp_a2a_time(ts);
    ngx_http_reverse_mcp_a2a_lit(g, "timestamp");
    yajl_gen_string(g, ts, p - ts);
    yajl_gen_map_close(g);
}


/* status-update events while the loop runs (message/stream) */
static void
ngx_http_reverse_mcp_a2a_progress(ngx_http_reverse_mcp_chat_t *chat,
    ngx_uint_t kind, ngx_str_t *text, ngx_str_t *json)
{
    char                             err[64];
    u_char                          *d;
    yajl_gen                         g;
    yajl_val                         v, ie;
    ngx_str_t                        t, event;
    ngx_http_reverse_mcp_a2a_ctx_t  *ctx;

    ctx = chat->data;

    if (ctx->failed || kind == NGX_HTTP_REVERSE_MCP_CHAT_TEXT) {
        return;
    }

    t = *text;

    if (kind == NGX_HTTP_REVERSE_MCP_CHAT_TOOL_RESULT) {
        /* "Tool X returned" or "Tool X failed" */
        v = ngx_http_reverse_mcp_json_parse(json->data, json->len, err,
                                            sizeof(err));
        ie = ngx_http_reverse_mcp_json_get(v, "is_error");

        d = ngx_pnalloc(ctx->request->pool, text->len + 32);
        if (d == NULL) {
            if (v) {
                yajl_tree_free(v);
            }

            return;
        }

        t.data = d;
        t.len = ngx_sprintf(d, "Tool %V %s", text,
                            (ie && YAJL_IS_TRUE(ie)) ? "failed" : "returned")
                - d;

        if (v) {
            yajl_tree_free(v);
        }
    }

    if (!ctx->header_sent && ngx_http_reverse_mcp_a2a_stream_open(ctx)
                             != NGX_OK)
    {
        ctx->failed = 1;
        return;
    }

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return;
    }

    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "kind");
    ngx_http_reverse_mcp_a2a_lit(g, "status-update");
    ngx_http_reverse_mcp_a2a_lit(g, "taskId");
    ngx_http_reverse_mcp_a2a_gstr(g, &ctx->task_id);
    ngx_http_reverse_mcp_a2a_lit(g, "contextId");
    ngx_http_reverse_mcp_a2a_gstr(g, &chat->context_id);
    ngx_http_reverse_mcp_a2a_lit(g, "status");
    ngx_http_reverse_mcp_a2a_gen_status(ctx, g, "working", &t);
    ngx_http_reverse_mcp_a2a_lit(g, "final");
    yajl_gen_bool(g, 0);
    ngx_http_reverse_mcp_a2a_lit(g, "metadata");
    ngx_http_reverse_mcp_a2a_raw(g, json);
    yajl_gen_map_close(g);

    if (ngx_http_reverse_mcp_json_gen_done(ctx->request->pool, g, &event)
        != NGX_OK)
    {
        return;
    }

    if (ngx_http_reverse_mcp_a2a_event(ctx, &event, 0) == NGX_ERROR) {
        ctx->failed = 1;
    }
}


static void
ngx_http_reverse_mcp_a2a_end(ngx_http_reverse_mcp_chat_t *chat)
{
    ngx_int_t                        rc;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_reverse_mcp_a2a_ctx_t  *ctx;

    ctx = chat->data;
    r = ctx->request;
    c = r->connection;

    ctx->running = 0;

    if (ctx->poll_ev.timer_set) {
        ngx_del_timer(&ctx->poll_ev);
    }

    rc = ngx_http_reverse_mcp_a2a_finish(ctx);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the final task: recorded (unless canceled meanwhile), then answered */
static ngx_int_t
ngx_http_reverse_mcp_a2a_finish(ngx_http_reverse_mcp_a2a_ctx_t *ctx)
{
    yajl_gen                      g;
    ngx_int_t                     rc;
    ngx_str_t                     record, event, *text, artifact;
    const char                   *state;
    ngx_http_request_t           *r;
    ngx_http_reverse_mcp_chat_t  *chat;

    r = ctx->request;
    chat = &ctx->chat;
    text = NULL;

    if (chat->error_type == NULL) {
        state = "completed";

    } else if (ngx_strcmp(chat->error_type, "canceled") == 0) {
        state = "canceled";

    } else if (ngx_strcmp(chat->error_type, "busy") == 0) {
        state = "rejected";
        text = &chat->error;

    } else {
        state = "failed";
        text = &chat->error;
    }

    if (ngx_http_reverse_mcp_a2a_task(ctx, state, text, 1, &record)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_strcmp(state, "canceled") != 0) {
        rc = ngx_http_reverse_mcp_history_put(ctx->zone, &ctx->task_key,
                                              &record,
                                              "\"state\":\"working\"",
                                              r->connection->log);

        if (rc == NGX_DECLINED) {
            /* canceled by tasks/cancel just now: that record stands */
            (void) ngx_http_reverse_mcp_history_get(ctx->zone, r->pool,
                                                    &ctx->task_key,
                                                    86400 * 365, &record);
        }

    } else {
        (void) ngx_http_reverse_mcp_history_get(ctx->zone, r->pool,
                                                &ctx->task_key, 86400 * 365,
                                                &record);
    }

    if (ctx->failed) {
        return ctx->header_sent ? NGX_ERROR : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!ctx->stream) {
        return ngx_http_reverse_mcp_a2a_result(ctx, &record);
    }

    /* the stream: the answer as an artifact, then the final status */

    if (!ctx->header_sent && ngx_http_reverse_mcp_a2a_stream_open(ctx)
                             != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (chat->error_type == NULL && chat->answer.len) {
        g = yajl_gen_alloc(NULL);
        if (g == NULL
            || ngx_http_reverse_mcp_a2a_uuid(r->pool, &artifact) != NGX_OK)
        {
            return NGX_ERROR;
        }

        yajl_gen_map_open(g);
        ngx_http_reverse_mcp_a2a_lit(g, "kind");
        ngx_http_reverse_mcp_a2a_lit(g, "artifact-update");
        ngx_http_reverse_mcp_a2a_lit(g, "taskId");
        ngx_http_reverse_mcp_a2a_gstr(g, &ctx->task_id);
        ngx_http_reverse_mcp_a2a_lit(g, "contextId");
        ngx_http_reverse_mcp_a2a_gstr(g, &chat->context_id);
        ngx_http_reverse_mcp_a2a_lit(g, "artifact");
        yajl_gen_map_open(g);
        ngx_http_reverse_mcp_a2a_lit(g, "artifactId");
        ngx_http_reverse_mcp_a2a_gstr(g, &artifact);
        ngx_http_reverse_mcp_a2a_lit(g, "name");
        ngx_http_reverse_mcp_a2a_lit(g, "answer");
        ngx_http_reverse_mcp_a2a_lit(g, "parts");
        yajl_gen_array_open(g);
        yajl_gen_map_open(g);
        ngx_http_reverse_mcp_a2a_lit(g, "kind");
        ngx_http_reverse_mcp_a2a_lit(g, "text");
        ngx_http_reverse_mcp_a2a_lit(g, "text");
        ngx_http_reverse_mcp_a2a_gstr(g, &chat->answer);
        yajl_gen_map_close(g);
        yajl_gen_array_close(g);
        yajl_gen_map_close(g);
        ngx_http_reverse_mcp_a2a_lit(g, "lastChunk");
        yajl_gen_bool(g, 1);
        yajl_gen_map_close(g);

        if (ngx_http_reverse_mcp_json_gen_done(r->pool, g, &event) != NGX_OK
            || ngx_http_reverse_mcp_a2a_event(ctx, &event, 0) == NGX_ERROR)
        {
            return NGX_ERROR;
        }
    }

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_a2a_lit(g, "kind");
    ngx_http_reverse_mcp_a2a_lit(g, "status-update");
    ngx_http_reverse_mcp_a2a_lit(g, "taskId");
    ngx_http_reverse_mcp_a2a_gstr(g, &ctx->task_id);
    ngx_http_reverse_mcp_a2a_lit(g, "contextId");
    ngx_http_reverse_mcp_a2a_gstr(g, &chat->context_id);
    ngx_http_reverse_mcp_a2a_lit(g, "status");
    ngx_http_reverse_mcp_a2a_gen_status(ctx, g, state, text);
    ngx_http_reverse_mcp_a2a_lit(g, "final");
    yajl_gen_bool(g, 1);
    yajl_gen_map_close(g);

    if (ngx_http_reverse_mcp_json_gen_done(r->pool, g, &event) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_reverse_mcp_a2a_event(ctx, &event, 1);
}


/* tasks/cancel of another request (any worker): stop here too */
static void
ngx_http_reverse_mcp_a2a_poll(ngx_event_t *ev)
{
    ngx_http_reverse_mcp_a2a_ctx_t  *ctx = ev->data;

    ngx_int_t            rc;
    ngx_str_t            record;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    if (!ctx->running) {
        return;
    }

    rc = ngx_http_reverse_mcp_history_get(ctx->zone, r->pool, &ctx->task_key,
                                          86400 * 365, &record);

    if (rc != NGX_OK
        || ngx_strlcasestrn(record.data, record.data + record.len,
                            (u_char *) "\"state\":\"canceled\"", 17)
           == NULL)
    {
        ngx_add_timer(ev, NGX_HTTP_REVERSE_MCP_A2A_POLL);
        return;
    }

    ctx->running = 0;

    ngx_http_reverse_mcp_chat_cancel(&ctx->chat);

    rc = ngx_http_reverse_mcp_a2a_finish(ctx);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the client went away: the task failed (unless it ended) */
static void
ngx_http_reverse_mcp_a2a_cleanup(void *data)
{
    ngx_http_reverse_mcp_a2a_ctx_t  *ctx = data;

    ngx_str_t  record;

    if (ctx->poll_ev.timer_set) {
        ngx_del_timer(&ctx->poll_ev);
    }

    if (!ctx->running) {
        return;
    }

    ctx->running = 0;

    /* the chat's own cleanup (registered earlier) stops the loop */

    if (ctx->chat.error_type == NULL) {
        ctx->chat.error_type = "client_gone";
        ngx_str_set(&ctx->chat.error, "the client went away");
    }

    if (ngx_http_reverse_mcp_a2a_task(ctx, "failed", &ctx->chat.error, 1,
                                      &record)
        == NGX_OK)
    {
        (void) ngx_http_reverse_mcp_history_put(ctx->zone, &ctx->task_key,
                                                &record,
                                                "\"state\":\"working\"",
                                                ctx->request->connection->log);
    }
}


static ngx_int_t
ngx_http_reverse_mcp_a2a_stream_open(ngx_http_reverse_mcp_a2a_ctx_t *ctx)
{
    ngx_int_t  rc;
    ngx_str_t  task;

    ctx->header_sent = 1;

    rc = ngx_http_reverse_mcp_http_sse_open(ctx->request);
    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    /* the first event: the task */

    if (ngx_http_reverse_mcp_a2a_task(ctx, "submitted", NULL, 0, &task)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_reverse_mcp_a2a_event(ctx, &task, 0) == NGX_ERROR
           ? NGX_ERROR : NGX_OK;
}


/* one SSE event: {"jsonrpc":"2.0","id":ID,"result":RESULT} */
static ngx_int_t
ngx_http_reverse_mcp_a2a_event(ngx_http_reverse_mcp_a2a_ctx_t *ctx,
    ngx_str_t *result, ngx_uint_t last)
{
    ngx_str_t  data;

    data.len = sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"result\":}") - 1
               + ctx->rpc_id.len + result->len;
    data.data = ngx_pnalloc(ctx->request->pool, data.len);
    if (data.data == NULL) {
        return NGX_ERROR;
    }

    data.len = ngx_sprintf(data.data, "{\"jsonrpc\":\"2.0\",\"id\":%V,"
                           "\"result\":%V}", &ctx->rpc_id, result)
               - data.data;

    return ngx_http_reverse_mcp_http_sse_event(ctx->request, NULL, &data,
                                               last);
}


static ngx_int_t
ngx_http_reverse_mcp_a2a_result(ngx_http_reverse_mcp_a2a_ctx_t *ctx,
    ngx_str_t *result)
{
    ngx_str_t  body;

    body.len = sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"result\":}") - 1
               + ctx->rpc_id.len + result->len;
    body.data = ngx_pnalloc(ctx->request->pool, body.len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.len = ngx_sprintf(body.data, "{\"jsonrpc\":\"2.0\",\"id\":%V,"
                           "\"result\":%V}", &ctx->rpc_id, result)
               - body.data;

    return ngx_http_reverse_mcp_http_send(ctx->request, NGX_HTTP_OK, NULL,
                                          &body);
}


/* a JSON-RPC error (HTTP 200, as JSON-RPC over HTTP answers) */
static ngx_int_t
ngx_http_reverse_mcp_a2a_error(ngx_http_reverse_mcp_a2a_ctx_t *ctx,
    ngx_int_t code, const char *fmt, ...)
{
    u_char     msg[512], *p;
    va_list    args;
    ngx_str_t  text, body;

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    text.data = msg;
    text.len = p - msg;

    body.len = sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"error\":{\"code\":,"
                      "\"message\":}}") - 1 + ctx->rpc_id.len + NGX_INT_T_LEN
               + ngx_http_reverse_mcp_json_escaped_len(&text);
    body.data = ngx_pnalloc(ctx->request->pool, body.len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body.data, "{\"jsonrpc\":\"2.0\",\"id\":%V,\"error\":"
                    "{\"code\":%i,\"message\":", &ctx->rpc_id, code);
    p = ngx_http_reverse_mcp_json_escape(p, &text);
    *p++ = '}';
    *p++ = '}';

    body.len = p - body.data;

    return ngx_http_reverse_mcp_http_send(ctx->request, NGX_HTTP_OK, NULL,
                                          &body);
}


/* a random UUID (version 4) */
static ngx_int_t
ngx_http_reverse_mcp_a2a_uuid(ngx_pool_t *pool, ngx_str_t *out)
{
    u_char  rnd[16], hex[32];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return NGX_ERROR;
    }

    rnd[6] = (rnd[6] & 0x0f) | 0x40;
    rnd[8] = (rnd[8] & 0x3f) | 0x80;

    ngx_hex_dump(hex, rnd, sizeof(rnd));

    out->data = ngx_pnalloc(pool, 36);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_sprintf(out->data, "%*s-%*s-%*s-%*s-%*s",
                           (size_t) 8, hex, (size_t) 4, hex + 8,
                           (size_t) 4, hex + 12, (size_t) 4, hex + 16,
                           (size_t) 12, hex + 20)
               - out->data;

    return NGX_OK;
}


/* 2025-11-25T14:20:01.123Z */
static u_char *
ngx_http_reverse_mcp_a2a_time(u_char *buf)
{
    ngx_tm_t     tm;
    ngx_time_t  *tp;

    tp = ngx_timeofday();
    ngx_gmtime(tp->sec, &tm);

    return ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02d.%03MZ",
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                       tp->msec);
}


static ngx_int_t
ngx_http_reverse_mcp_a2a_str_eq(ngx_str_t *s, const char *c)
{
    size_t  n;

    n = ngx_strlen(c);

    return s->len == n && ngx_strncmp(s->data, c, n) == 0;
}
