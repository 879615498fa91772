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
 *
 * Requests of the server during the call (sampling/createMessage,
 * elicitation/create, roots/list) are relayed to the caller when the owner
 * can tell which call they belong to and the caller can answer them
 * (call->relay): the owner gives the request a gateway id,
 * "rmcp:<pid>:<key>:<seq>" (pid and key: the worker holding the call and
 * the call there), and request() delivers it.  The caller's answer, which
 * may reach any worker, goes to call_answer(): to the holding worker (its
 * mailbox), to the call, to the owner, which restores the server's id.
 *
 * A 2026-07-28 caller (RELAY_MODERN) answers input_required instead and
 * detaches: the call stays in flight on its owner, parked, until the
 * caller's retry starts a call with park set (from its requestState),
 * which takes the parked call over and brings the answers.
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
#define NGX_HTTP_REVERSE_MCP_ERR_CAPABILITY   -32021 /* 2026-07-28: the
                                                      server asked for a
                                                      client capability
                                                      the caller lacks */
#define NGX_HTTP_REVERSE_MCP_ERR_INTERNAL     -32603
#define NGX_HTTP_REVERSE_MCP_ERR_PARAMS       -32602 /* a requestState
                                                        that names nothing */



#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_mcp.h"


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

/*
 * A JSON-RPC request of the server for the caller, with its gateway id
 * (json stays valid during the handler only).  NGX_OK: delivered, the
 * answer comes through call_answer(); NGX_ERROR: it could not be, the
 * server gets an error.
 */
typedef ngx_int_t (*ngx_http_reverse_mcp_call_request_pt)(
    ngx_http_reverse_mcp_call_t *call, ngx_str_t *json);


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
    ngx_uint_t                             relay;     /* RELAY_* */
    ngx_http_reverse_mcp_call_request_pt   request;   /* with relay */
    ngx_str_t                              session;   /* who may answer
                                                  (empty: anyone) */
    uint64_t                               park;      /* a retry: the
                                                  parked call (owner_pid and
                                                  conn_id filled too);
                                                  params: its answers */

    /* filled by call_start */
    ngx_pid_t                              owner_pid;
    uint64_t                               conn_id;
    ngx_pid_t                              caller_pid; /* the worker and */
    uint64_t                               key;        /* the call there */

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

/*
 * Let a call go without cancelling it: it stays in flight on its owner,
 * parked, for a retry (park) to take over.  done() will not run.
 */
void ngx_http_reverse_mcp_call_detach(ngx_http_reverse_mcp_call_t *call);

/*
 * A caller's answer (json: the whole JSON-RPC response) to a relayed
 * request whose gateway id is id (the string's value), from a caller of
 * session (empty: none).  NGX_OK: passed on toward the server (to the
 * worker holding the call when that is another one); NGX_DECLINED: no such
 * request waits here (the call ended, another session): logged at info;
 * NGX_ABORT: id is not a gateway id; NGX_ERROR.
 */
ngx_int_t ngx_http_reverse_mcp_call_answer(ngx_str_t *id, ngx_str_t *session,
    ngx_str_t *json, ngx_log_t *log);

/* the same for a call of this worker (the mailbox's ROUTE frame) */
ngx_int_t ngx_http_reverse_mcp_call_answer_local(uint64_t key,
    ngx_str_t *session, ngx_str_t *json, ngx_log_t *log);

/* helpers for the caller: build a gateway error object into pool memory */
ngx_int_t ngx_http_reverse_mcp_call_error_json(ngx_pool_t *pool,
    ngx_int_t code, ngx_str_t *message, ngx_str_t *out);

/* the same into buf (at least NGX_HTTP_REVERSE_MCP_ERROR_TEXT bytes; the
 * message is cut at 256 bytes); returns the end */
#define NGX_HTTP_REVERSE_MCP_ERROR_TEXT  1700
u_char *ngx_http_reverse_mcp_call_error_text(u_char *buf, ngx_int_t code,
    ngx_str_t *message);


#endif /* _NGX_HTTP_REVERSE_MCP_CALL_H_INCLUDED_ */
