/*
 * Calls to reverse MCP servers from any worker (the caller's side).
 *
 * Owns: finding the owner of a server in the registry, choosing the local
 * path (the connector in this worker) or the owner's mailbox, making the
 * caller's progress token unique across callers (it is rewritten on the
 * way out and restored on every progress notification coming back), the
 * gateway's own error objects, delivering done() exactly once, never
 * from inside call_start(), the way back of a caller's answer to a
 * relayed request of the server (this worker's calls by key; another
 * worker's through its mailbox), and letting a call go parked (detach)
 * for a 2026-07-28 retry that resumes it (call->park).
 */

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_call.h"
#include "ngx_http_reverse_mcp_registry.h"
#include "ngx_http_reverse_mcp_json.h"
#include "ngx_http_reverse_mcp_mailbox.h"


typedef struct {
    ngx_rbtree_node_t                      node;        /* key: call->key */
    ngx_http_reverse_mcp_call_t           *call;
    ngx_pool_t                            *pool;
    ngx_http_reverse_mcp_call_notify_pt    notify;
    ngx_http_reverse_mcp_call_done_pt      done;
    ngx_str_t                              params;      /* the caller's */
    ngx_str_t                              token;       /* the caller's */
    ngx_int_t                              err_code;    /* posted error */
    u_char                                 err_msg[256];
    void                                  *mailbox;
} ngx_http_reverse_mcp_call_priv_t;


static ngx_int_t ngx_http_reverse_mcp_call_rewrite_token(
    ngx_http_reverse_mcp_call_t *call, ngx_http_reverse_mcp_call_priv_t *priv);
static void ngx_http_reverse_mcp_call_notify(ngx_http_reverse_mcp_call_t *call,
    ngx_str_t *json);
static void ngx_http_reverse_mcp_call_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json);
static void ngx_http_reverse_mcp_call_post_error(
    ngx_http_reverse_mcp_call_t *call, ngx_int_t code, const char *fmt, ...);
static void ngx_http_reverse_mcp_call_posted(ngx_event_t *ev);
static void ngx_http_reverse_mcp_call_release(
    ngx_http_reverse_mcp_call_t *call);
static void ngx_http_reverse_mcp_call_end(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t detach);


static ngx_uint_t         ngx_http_reverse_mcp_token_seq;
static uint64_t           ngx_http_reverse_mcp_call_seq;

/* this worker's calls by key, for the answers to relayed requests */
static ngx_rbtree_t       ngx_http_reverse_mcp_calls;
static ngx_rbtree_node_t  ngx_http_reverse_mcp_calls_sentinel;


ngx_int_t
ngx_http_reverse_mcp_call_start(ngx_http_reverse_mcp_call_t *call)
{
    ngx_int_t                          rc;
    ngx_pool_t                        *pool;
    ngx_http_reverse_mcp_main_conf_t  *mcf;
    ngx_http_reverse_mcp_call_priv_t  *priv;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_reverse_mcp_module);

    pool = ngx_create_pool(1024, call->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    priv = ngx_pcalloc(pool, sizeof(ngx_http_reverse_mcp_call_priv_t));
    if (priv == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    priv->pool = pool;
    priv->call = call;
    priv->notify = call->notify;
    priv->done = call->done;
    priv->params = call->params;
    priv->token = call->progress_token;

    if (ngx_http_reverse_mcp_calls.root == NULL) {
        ngx_rbtree_init(&ngx_http_reverse_mcp_calls,
                        &ngx_http_reverse_mcp_calls_sentinel,
                        ngx_rbtree_insert_value);
    }

    call->caller_pid = ngx_pid;
    call->key = ++ngx_http_reverse_mcp_call_seq;
    priv->node.key = (ngx_rbtree_key_t) call->key;
    ngx_rbtree_insert(&ngx_http_reverse_mcp_calls, &priv->node);

    call->priv = priv;
    call->pending = NULL;
    call->finished = 0;
    call->remote = 0;
    call->notify = ngx_http_reverse_mcp_call_notify;
    call->done = ngx_http_reverse_mcp_call_done;

    ngx_memzero(&call->posted, sizeof(ngx_event_t));
    call->posted.handler = ngx_http_reverse_mcp_call_posted;
    call->posted.data = call;
    call->posted.log = call->log;

    if (call->park) {
        /*
         * a 2026-07-28 retry: the call is parked on its owner (owner_pid,
         * conn_id: from the caller's requestState); its progress token is
         * the first round's, the caller's own comes back on notifications
         */
        ngx_str_null(&call->progress_token);
        rc = NGX_OK;

    } else {
        if (call->progress_token.len
            && ngx_http_reverse_mcp_call_rewrite_token(call, priv) != NGX_OK)
        {
            ngx_http_reverse_mcp_call_release(call);
            return NGX_ERROR;
        }

        rc = ngx_http_reverse_mcp_registry_resolve(mcf->shm_zone,
                                                   &call->agent,
                                                   &call->server, NULL,
                                                   &call->owner_pid,
                                                   &call->conn_id);
    }

    if (rc != NGX_OK) {
        ngx_http_reverse_mcp_call_post_error(call,
            NGX_HTTP_REVERSE_MCP_ERR_UNAVAILABLE,
            "server \"%V\" is not connected", &call->server);
        return NGX_OK;
    }

    if (call->owner_pid != ngx_pid || call->force_mailbox) {
        call->remote = 1;

        rc = ngx_http_reverse_mcp_mailbox_call(call, &priv->mailbox);

        if (rc == NGX_OK) {
            return NGX_OK;
        }

        if (rc == NGX_DECLINED) {
            ngx_http_reverse_mcp_call_post_error(call,
                NGX_HTTP_REVERSE_MCP_ERR_GONE,
                "the worker holding server \"%V\" (pid %P) is gone%s",
                &call->server, call->owner_pid,
                call->park ? ", and the call waiting for input with it" : "");
            return NGX_OK;
        }

        if (rc == NGX_BUSY) {
            ngx_http_reverse_mcp_call_post_error(call,
                NGX_HTTP_REVERSE_MCP_ERR_BUSY,
                "the worker holding server \"%V\" (pid %P) is busy, "
                "try again", &call->server, call->owner_pid);
            return NGX_OK;
        }

        ngx_http_reverse_mcp_call_release(call);
        return NGX_ERROR;
    }

    rc = call->park
         ? ngx_http_reverse_mcp_connector_resume(call->conn_id, call)
         : ngx_http_reverse_mcp_connector_call(call->conn_id, call);

    switch (rc) {

    case NGX_OK:
        return NGX_OK;

    case NGX_DECLINED:
        if (call->park) {
            ngx_http_reverse_mcp_call_post_error(call,
                NGX_HTTP_REVERSE_MCP_ERR_PARAMS,
                "Invalid params: requestState names no call of server "
                "\"%V\" waiting for input (it ended, timed out, or "
                "another retry took it over)", &call->server);
            return NGX_OK;
        }

        ngx_http_reverse_mcp_call_post_error(call,
            NGX_HTTP_REVERSE_MCP_ERR_UNAVAILABLE,
            "server \"%V\" is not ready", &call->server);
        return NGX_OK;

    case NGX_BUSY:
        ngx_http_reverse_mcp_call_post_error(call,
            NGX_HTTP_REVERSE_MCP_ERR_BUSY,
            "server \"%V\" does not read its socket (send queue full)",
            &call->server);
        return NGX_OK;

    case NGX_AGAIN:
        ngx_http_reverse_mcp_call_post_error(call,
            NGX_HTTP_REVERSE_MCP_ERR_BUSY,
            "server \"%V\" has too many calls in flight "
            "(reverse_mcp_max_pending), try again", &call->server);
        return NGX_OK;

    default:
        ngx_http_reverse_mcp_call_release(call);
        return NGX_ERROR;
    }
}


void
ngx_http_reverse_mcp_call_cancel(ngx_http_reverse_mcp_call_t *call)
{
    ngx_http_reverse_mcp_call_end(call, 0);
}


void
ngx_http_reverse_mcp_call_detach(ngx_http_reverse_mcp_call_t *call)
{
    ngx_http_reverse_mcp_call_end(call, 1);
}


/* the caller lets the call go: cancelled, or detached (parked) */
static void
ngx_http_reverse_mcp_call_end(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t detach)
{
    ngx_http_reverse_mcp_call_priv_t  *priv;

    priv = call->priv;

    if (priv == NULL || call->finished) {
        return;
    }

    if (call->posted.posted) {
        ngx_delete_posted_event(&call->posted);
    }

    if (call->remote) {
        if (priv->mailbox) {
            if (detach) {
                ngx_http_reverse_mcp_mailbox_detach(priv->mailbox);

            } else {
                ngx_http_reverse_mcp_mailbox_cancel(priv->mailbox);
            }

            priv->mailbox = NULL;
        }

    } else if (detach) {
        ngx_http_reverse_mcp_connector_detach(call);

    } else {
        ngx_http_reverse_mcp_connector_cancel(call, "the caller cancelled");
    }

    ngx_http_reverse_mcp_call_release(call);
}


/* the mailbox client reports the end of a remote call here */
void
ngx_http_reverse_mcp_call_remote_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json)
{
    ngx_http_reverse_mcp_call_priv_t  *priv;

    priv = call->priv;
    priv->mailbox = NULL;

    call->done(call, is_error, json);
}


ngx_int_t
ngx_http_reverse_mcp_call_answer(ngx_str_t *id, ngx_str_t *session,
    ngx_str_t *json, ngx_log_t *log)
{
    uint64_t   key, seq;
    ngx_pid_t  pid;

    if (ngx_http_reverse_mcp_relay_id_parse(id, &pid, &key, &seq) != NGX_OK) {
        return NGX_ABORT;
    }

    if (pid == ngx_pid) {
        return ngx_http_reverse_mcp_call_answer_local(key, session, json,
                                                      log);
    }

    return ngx_http_reverse_mcp_mailbox_route(pid, key, session, json, log);
}


ngx_int_t
ngx_http_reverse_mcp_call_answer_local(uint64_t key, ngx_str_t *session,
    ngx_str_t *json, ngx_log_t *log)
{
    ngx_int_t                          rc;
    ngx_rbtree_node_t                 *node, *sentinel;
    ngx_http_reverse_mcp_call_t       *call;
    ngx_http_reverse_mcp_call_priv_t  *priv;

    priv = NULL;

    if (ngx_http_reverse_mcp_calls.root) {
        node = ngx_http_reverse_mcp_calls.root;
        sentinel = ngx_http_reverse_mcp_calls.sentinel;

        while (node != sentinel) {
            if ((ngx_rbtree_key_t) key == node->key) {
                priv = (ngx_http_reverse_mcp_call_priv_t *) node;
                break;
            }

            node = ((ngx_rbtree_key_t) key < node->key) ? node->left
                                                        : node->right;
        }
    }

    if (priv == NULL) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "reverse_mcp: an answer to a relayed request of a call "
                      "that has ended (call %uL), dropped", key);
        return NGX_DECLINED;
    }

    call = priv->call;

    if (call->session.len
        && (session->len != call->session.len
            || ngx_strncmp(session->data, call->session.data,
                           session->len) != 0))
    {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "reverse_mcp: an answer to a relayed request of call "
                      "%uL came from another session, dropped", key);
        return NGX_DECLINED;
    }

    if (call->remote) {
        rc = priv->mailbox
             ? ngx_http_reverse_mcp_mailbox_answer(priv->mailbox, json)
             : NGX_DECLINED;

    } else {
        rc = ngx_http_reverse_mcp_connector_answer(call, json);
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "reverse_mcp: an answer to a relayed request of call "
                      "%uL that no longer waits for it, dropped", key);
    }

    return rc;
}


static ngx_int_t
ngx_http_reverse_mcp_call_rewrite_token(ngx_http_reverse_mcp_call_t *call,
    ngx_http_reverse_mcp_call_priv_t *priv)
{
    char        err[128];
    u_char     *p;
    yajl_val    root, meta;
    ngx_str_t   token;

    /* "rmcp-<pid>-<seq>": unique among every caller of every worker */

    token.data = ngx_pnalloc(priv->pool, NGX_INT64_LEN * 2 + 8);
    if (token.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(token.data, "\"rmcp-%P-%ui\"", ngx_pid,
                    ++ngx_http_reverse_mcp_token_seq);
    token.len = p - token.data;

    root = ngx_http_reverse_mcp_json_parse(call->params.data,
                                           call->params.len, err,
                                           sizeof(err));
    if (root == NULL) {
        return NGX_ERROR;
    }

    meta = ngx_http_reverse_mcp_json_get(root, "_meta");

    if (ngx_http_reverse_mcp_json_get(meta, "progressToken") == NULL
        || ngx_http_reverse_mcp_json_dump_replace(priv->pool, root,
                   ngx_http_reverse_mcp_json_get(meta, "progressToken"),
                   &token, &call->params)
           != NGX_OK)
    {
        yajl_tree_free(root);
        return NGX_ERROR;
    }

    yajl_tree_free(root);

    call->progress_token = token;

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_call_notify(ngx_http_reverse_mcp_call_t *call,
    ngx_str_t *json)
{
    char                               err[128];
    yajl_val                           root, token;
    ngx_str_t                          out;
    ngx_pool_t                        *pool;
    ngx_http_reverse_mcp_call_priv_t  *priv;

    priv = call->priv;

    if (priv->notify == NULL) {
        return;
    }

    if (priv->token.len == 0) {
        priv->notify(call, json);
        return;
    }

    root = ngx_http_reverse_mcp_json_parse(json->data, json->len, err,
                                           sizeof(err));
    if (root == NULL) {
        return;
    }

    token = ngx_http_reverse_mcp_json_get(
                ngx_http_reverse_mcp_json_get(root, "params"),
                "progressToken");

    if (token == NULL) {
        yajl_tree_free(root);
        priv->notify(call, json);
        return;
    }

    pool = ngx_create_pool(1024, call->log);
    if (pool == NULL) {
        yajl_tree_free(root);
        return;
    }

    if (ngx_http_reverse_mcp_json_dump_replace(pool, root, token,
                                               &priv->token, &out)
        == NGX_OK)
    {
        priv->notify(call, &out);
    }

    yajl_tree_free(root);
    ngx_destroy_pool(pool);
}


static void
ngx_http_reverse_mcp_call_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json)
{
    ngx_http_reverse_mcp_call_done_pt  done;
    ngx_http_reverse_mcp_call_priv_t  *priv;

    priv = call->priv;
    done = priv->done;

    ngx_http_reverse_mcp_call_release(call);

    done(call, is_error, json);
}


/* give the caller back its call as it filled it */
static void
ngx_http_reverse_mcp_call_release(ngx_http_reverse_mcp_call_t *call)
{
    ngx_http_reverse_mcp_call_priv_t  *priv;

    priv = call->priv;

    ngx_rbtree_delete(&ngx_http_reverse_mcp_calls, &priv->node);

    call->finished = 1;
    call->notify = priv->notify;
    call->done = priv->done;
    call->params = priv->params;
    call->progress_token = priv->token;
    call->priv = NULL;
    call->pending = NULL;

    ngx_destroy_pool(priv->pool);
}


static void
ngx_http_reverse_mcp_call_post_error(ngx_http_reverse_mcp_call_t *call,
    ngx_int_t code, const char *fmt, ...)
{
    u_char                            *p;
    va_list                            args;
    ngx_http_reverse_mcp_call_priv_t  *priv;

    priv = call->priv;
    priv->err_code = code;

    va_start(args, fmt);
    p = ngx_vslprintf(priv->err_msg, priv->err_msg + sizeof(priv->err_msg) - 1,
                      fmt, args);
    va_end(args);

    *p = '\0';

    ngx_log_error(NGX_LOG_INFO, call->log, 0, "reverse_mcp: %s",
                  priv->err_msg);

    ngx_post_event(&call->posted, &ngx_posted_events);
}


static void
ngx_http_reverse_mcp_call_posted(ngx_event_t *ev)
{
    ngx_http_reverse_mcp_call_t  *call = ev->data;

    u_char                             buf[NGX_HTTP_REVERSE_MCP_ERROR_TEXT];
    ngx_str_t                          msg, json;
    ngx_http_reverse_mcp_call_priv_t  *priv;

    priv = call->priv;

    msg.data = priv->err_msg;
    msg.len = ngx_strlen(priv->err_msg);

    json.data = buf;
    json.len = ngx_http_reverse_mcp_call_error_text(buf, priv->err_code, &msg)
               - buf;

    call->done(call, 1, &json);
}


u_char *
ngx_http_reverse_mcp_call_error_text(u_char *buf, ngx_int_t code,
    ngx_str_t *message)
{
    u_char     *p;
    ngx_str_t   m;

    m = *message;

    if (m.len > 256) {
        m.len = 256;
    }

    p = ngx_sprintf(buf, "{\"code\":%i,\"message\":", code);
    p = ngx_http_reverse_mcp_json_escape(p, &m);
    *p++ = '}';

    return p;
}


ngx_int_t
ngx_http_reverse_mcp_call_error_json(ngx_pool_t *pool, ngx_int_t code,
    ngx_str_t *message, ngx_str_t *out)
{
    u_char  *p;

    p = ngx_pnalloc(pool, 64 + 6 * ngx_min(message->len, 256));
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    out->len = ngx_http_reverse_mcp_call_error_text(p, code, message) - p;

    return NGX_OK;
}
