/*
 * Per-worker mailboxes: how a call crosses from the worker that holds the
 * HTTP request to the worker that owns the reverse server's socket.
 *
 * Each worker listens on <runtime_dir>/mcp.<pid>.sock (created in
 * init_process, not in cycle->listening, so an old worker stays reachable
 * while it drains after a reload).  One unix stream connection per call;
 * frames are an 8-byte header (32-bit big-endian body length, type, 3 zero
 * bytes) and a body:
 *   CALL    caller -> owner   header JSON, "\n", params JSON
 *   NOTIFY  owner -> caller   a JSON-RPC notification for the call
 *   RESULT  owner -> caller   the result value, then the owner closes
 *   ERROR   owner -> caller   the error object, then the owner closes
 *   REQUEST owner -> caller   a request of the server for the caller, with
 *                             its gateway id
 *   ANSWER  caller -> owner   the caller's response to a REQUEST
 *   DETACH  caller -> owner   the caller lets the call go, parked (2026-07-28
 *                             rounds); then it closes
 * A CALL whose header has "park" resumes a parked call instead.
 * The caller closing the connection cancels the call; the owner closing
 * it before RESULT/ERROR (it died) fails the call.
 *
 * A caller's answer that reaches another worker than the one holding the
 * call comes to that worker on a connection of its own, one frame, then
 * closed:
 *   ROUTE   any -> holder     header JSON {"key":K,"session":S}, "\n",
 *                             the response
 */

#ifndef _NGX_HTTP_REVERSE_MCP_MAILBOX_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_MAILBOX_H_INCLUDED_


#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_call.h"


#define NGX_HTTP_REVERSE_MCP_MB_CALL     1
#define NGX_HTTP_REVERSE_MCP_MB_NOTIFY   2
#define NGX_HTTP_REVERSE_MCP_MB_RESULT   3
#define NGX_HTTP_REVERSE_MCP_MB_ERROR    4
#define NGX_HTTP_REVERSE_MCP_MB_REQUEST  5
#define NGX_HTTP_REVERSE_MCP_MB_ANSWER   6
#define NGX_HTTP_REVERSE_MCP_MB_ROUTE    7
#define NGX_HTTP_REVERSE_MCP_MB_DETACH   8

#define NGX_HTTP_REVERSE_MCP_MB_HEADER   8
#define NGX_HTTP_REVERSE_MCP_MB_MAX      (64 * 1024 * 1024)


/*
 * Send a call to its owner's mailbox.  NGX_OK: done() runs later;
 * NGX_DECLINED: the owner is gone (its entries are purged); NGX_BUSY: its
 * mailbox refused for now; NGX_ERROR.
 */
ngx_int_t ngx_http_reverse_mcp_mailbox_call(ngx_http_reverse_mcp_call_t *call,
    void **handle);
void ngx_http_reverse_mcp_mailbox_cancel(void *handle);

/* the caller lets the call go, parked on the owner; the handle is gone */
void ngx_http_reverse_mcp_mailbox_detach(void *handle);

/* the caller's answer to a relayed request, to the owner: NGX_OK, NGX_ERROR */
ngx_int_t ngx_http_reverse_mcp_mailbox_answer(void *handle, ngx_str_t *json);

/*
 * The same for a call that worker pid holds: NGX_OK (sent; what becomes
 * of it is logged there), NGX_DECLINED (no such worker), NGX_ERROR.
 */
ngx_int_t ngx_http_reverse_mcp_mailbox_route(ngx_pid_t pid, uint64_t key,
    ngx_str_t *session, ngx_str_t *json, ngx_log_t *log);

/* call.c: the end of a remote call */
void ngx_http_reverse_mcp_call_remote_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json);


#endif /* _NGX_HTTP_REVERSE_MCP_MAILBOX_H_INCLUDED_ */
