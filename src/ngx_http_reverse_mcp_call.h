/*
 * Calls from any worker to a reverse MCP server, wherever its socket lives.
 *
 * A caller (the MCP endpoint, later the chat loop) fills a call and starts
 * it.  When the server's socket is owned by this worker the call goes to
 * the connector directly; otherwise it crosses to the owner's mailbox (a
 * per-worker unix socket) on one connection per call.  The owner rewrites
 * JSON-RPC ids (many callers share one socket) and routes progress
 * notifications back by progress token.  Closing the call = cancel: the
 * server receives notifications/cancelled.
 */

#ifndef _NGX_HTTP_REVERSE_MCP_CALL_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_CALL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* JSON-RPC error codes the gateway produces for a call */
#define NGX_HTTP_REVERSE_MCP_ERR_UNAVAILABLE  -32001 /* server not connected */
#define NGX_HTTP_REVERSE_MCP_ERR_TIMEOUT      -32002 /* call timed out */
#define NGX_HTTP_REVERSE_MCP_ERR_GONE         -32003 /* socket/owner died */
#define NGX_HTTP_REVERSE_MCP_ERR_BUSY         -32004 /* send queue full */
#define NGX_HTTP_REVERSE_MCP_ERR_INTERNAL     -32603


#include "ngx_http_reverse_mcp_module.h"


/*
 * A JSON-RPC notification the server sent for this call (progress with the
 * call's token, or a log message while it was the only call in flight).
 * json is the whole message; it stays valid during the handler only.
 */
typedef void (*ngx_http_reverse_mcp_call_notify_pt)(
    ngx_http_reverse_mcp_call_t *call, ngx_str_t *json);

/*
 * The end of the call, exactly once (never from inside call_start()):
 * is_error == 0: json is the "result" value; is_error == 1: json is the
 * "error" object (from the server, or built by the gateway: code and
 * message).  json stays valid during the handler only.
 */
typedef void (*ngx_http_reverse_mcp_call_done_pt)(
    ngx_http_reverse_mcp_call_t *call, ngx_uint_t is_error, ngx_str_t *json);


struct ngx_http_reverse_mcp_call_s {
    /* filled by the caller */
    ngx_str_t                              agent;
    ngx_str_t                              server;
    ngx_str_t                              method;    /* e.g. tools/call */
    ngx_str_t                              params;    /* JSON, or empty */
    ngx_str_t                              progress_token; /* JSON string
                                                  literal inside params, or
                                                  empty */
    ngx_msec_t                             timeout;   /* 0: the owner's
                                                  reverse_mcp_call_timeout */
    ngx_http_reverse_mcp_call_notify_pt    notify;    /* may be NULL */
    ngx_http_reverse_mcp_call_done_pt      done;
    void                                  *data;
    ngx_log_t                             *log;
    ngx_uint_t                             force_mailbox; /* tests */

    /* filled by call_start */
    ngx_pid_t                              owner_pid;
    uint64_t                               conn_id;

    /* private */
    void                                  *priv;      /* caller side */
    void                                  *pending;   /* owner side */
    ngx_event_t                            posted;
    unsigned                               finished:1;
    unsigned                               remote:1;
};


/*
 * Start a call.  While it runs, params and progress_token may point to the
 * gateway's copies (the token is made unique); they are given back with
 * the notify/done handlers when the call ends.
 * The call (and the strings it points to) must stay valid
 * until done() runs or call_cancel() returns.  Errors found at once (the
 * server is not connected) are also reported through done(), from a
 * posted event.  Returns NGX_OK, or NGX_ERROR when nothing could be set up
 * (no memory): then done() will not run.
 */
ngx_int_t ngx_http_reverse_mcp_call_start(ngx_http_reverse_mcp_call_t *call);

/* give up a call: done() will not run; the server is told it is cancelled */
void ngx_http_reverse_mcp_call_cancel(ngx_http_reverse_mcp_call_t *call);

/* helpers for the caller: build a gateway error object into pool memory */
ngx_int_t ngx_http_reverse_mcp_call_error_json(ngx_pool_t *pool,
    ngx_int_t code, ngx_str_t *message, ngx_str_t *out);

/* the same into buf (at least NGX_HTTP_REVERSE_MCP_ERROR_TEXT bytes; the
 * message is cut at 256 bytes); returns the end */
#define NGX_HTTP_REVERSE_MCP_ERROR_TEXT  1700
u_char *ngx_http_reverse_mcp_call_error_text(u_char *buf, ngx_int_t code,
    ngx_str_t *message);


#endif /* _NGX_HTTP_REVERSE_MCP_CALL_H_INCLUDED_ */
