/*
 * The chat agent: the tool loop between the agent's LLM and the tools of
 * the reverse servers connected to the agent, behind two front ends: the
 * plain JSON + SSE chat API ("reverse_mcp_chat agent;") and A2A
 * ("reverse_mcp_a2a agent;").
 *
 * Owns: the configuration of chat locations and the history zone, the
 * conversation of one message (history from the shared zone, rounds of
 * LLM request -> tool calls through the call API -> tool results, the
 * final answer saved back), the CLI commands answered without the LLM
 * (/tools, /servers, /history, /hello, /bye, /help), and the conversion of
 * MCP tool results of every content type into text for the model.
 */

#ifndef _NGX_HTTP_REVERSE_MCP_CHAT_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_CHAT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_reverse_mcp_module.h"


#define NGX_HTTP_REVERSE_MCP_CHAT_CONTEXT_MAX  128

/* progress kinds */
#define NGX_HTTP_REVERSE_MCP_CHAT_THINKING     1
#define NGX_HTTP_REVERSE_MCP_CHAT_TOOL_CALL    2
#define NGX_HTTP_REVERSE_MCP_CHAT_TOOL_RESULT  3
#define NGX_HTTP_REVERSE_MCP_CHAT_TEXT         4


typedef struct ngx_http_reverse_mcp_chat_s  ngx_http_reverse_mcp_chat_t;


/* http-level: the history zone (mcf->chat) */
typedef struct {
    ngx_shm_zone_t            *zone;
    time_t                     idle;          /* seconds */
    size_t                     max_history;   /* bytes per conversation */
    ngx_array_t               *refs;          /* chat_ref_t, nginx -t */
} ngx_http_reverse_mcp_chat_main_t;


/* location: "reverse_mcp_chat agent;" or "reverse_mcp_a2a agent;" */
typedef struct {
    ngx_str_t                  agent;
    ngx_uint_t                 a2a;
} ngx_http_reverse_mcp_chat_loc_t;


/*
 * Progress of the loop: kind, a short text ("thinking", "Using tool: X",
 * a text delta) and a JSON object with the details (may be empty).
 * Runs from events of the loop (TEXT: from inside curl's write callback:
 * write, never finalize).
 */
typedef void (*ngx_http_reverse_mcp_chat_progress_pt)(
    ngx_http_reverse_mcp_chat_t *chat, ngx_uint_t kind, ngx_str_t *text,
    ngx_str_t *json);

/* the end: answer or error filled in; from a posted event */
typedef void (*ngx_http_reverse_mcp_chat_end_pt)(
    ngx_http_reverse_mcp_chat_t *chat);


struct ngx_http_reverse_mcp_chat_s {
    /* the front end fills these */
    ngx_http_request_t                     *request;
    ngx_str_t                               agent;
    ngx_str_t                               context_id;
    ngx_str_t                               message;
    ngx_http_reverse_mcp_chat_progress_pt   progress;   /* may be NULL */
    ngx_http_reverse_mcp_chat_end_pt        end;
    void                                   *data;

    /* the outcome */
    ngx_str_t                               answer;
    ngx_str_t                               tool_calls; /* JSON array */
    ngx_str_t                               command;    /* "/tools" ... */
    ngx_str_t                               stop;       /* "end_turn",
                                                           "max_rounds" */
    ngx_uint_t                              rounds;
    ngx_uint_t                              status;     /* HTTP, errors */
    const char                             *error_type; /* NULL: success */
    ngx_str_t                               error;
    ngx_uint_t                              upstream_status;

    void                                   *priv;
};


/*
 * Run one message.  NGX_DONE: the loop runs, end() comes later (from an
 * event); NGX_OK: the outcome is already there (a command, a busy
 * conversation, a configuration error); NGX_ERROR: no memory.
 */
ngx_int_t ngx_http_reverse_mcp_chat_run(ngx_http_reverse_mcp_chat_t *chat);

/* stop a running message (NGX_DONE of run): end() will not run; the
 * conversation is released unsaved; chat->error_type is "canceled" */
void ngx_http_reverse_mcp_chat_cancel(ngx_http_reverse_mcp_chat_t *chat);

/* a new context id (32 hex digits) into pool memory */
ngx_int_t ngx_http_reverse_mcp_chat_new_id(ngx_pool_t *pool, ngx_str_t *id);

/* 1 if id is 1-128 of [A-Za-z0-9._:-] */
ngx_uint_t ngx_http_reverse_mcp_chat_id_valid(ngx_str_t *id);

/* the outcome as the chat API's JSON object */
ngx_int_t ngx_http_reverse_mcp_chat_result_json(ngx_pool_t *pool,
    ngx_http_reverse_mcp_chat_t *chat, ngx_str_t *out);

/* configuration (called from ngx_http_reverse_mcp_module.c) */
char *ngx_http_reverse_mcp_chat_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_reverse_mcp_chat_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_reverse_mcp_chat_postconfiguration(ngx_conf_t *cf);

/* handlers */
ngx_int_t ngx_http_reverse_mcp_chat_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_reverse_mcp_a2a_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_REVERSE_MCP_CHAT_H_INCLUDED_ */
