/*
 * The LLM client of the chat API: libcurl's multi interface driven by
 * nginx's event loop, and the two wire formats (OpenAI-compatible chat
 * completions, Anthropic messages), streamed (SSE) or not.
 *
 * Owns: the per-worker CURLM (created in init_process, cleaned up in
 * exit_process), the sockets curl uses (opened and closed by us through
 * CURLOPT_OPENSOCKETFUNCTION / CLOSESOCKETFUNCTION, each an
 * ngx_connection_t with level-triggered events), the one timer curl asks
 * for, the provider request bodies, and the incremental parsing of the
 * replies into text and tool calls.  Nothing is ever called into curl from
 * one of its own callbacks; done() is delivered from a posted event.
 *
 * Also: the "llm", "llm_system" and "description" lines of a
 * reverse_mcp_agent block.  API keys live only in configuration memory
 * and in the request header list (wiped when freed); they never reach a
 * log line or an error message (upstream messages are scrubbed).
 */

#ifndef _NGX_HTTP_REVERSE_MCP_LLM_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_LLM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_reverse_mcp_module.h"


#define NGX_HTTP_REVERSE_MCP_LLM_OPENAI     1
#define NGX_HTTP_REVERSE_MCP_LLM_ANTHROPIC  2

/* conversation roles */
#define NGX_HTTP_REVERSE_MCP_LLM_USER       1
#define NGX_HTTP_REVERSE_MCP_LLM_ASSISTANT  2
#define NGX_HTTP_REVERSE_MCP_LLM_TOOL       3

/* failure classes (result.error_type) */
#define NGX_HTTP_REVERSE_MCP_LLM_OK           0
#define NGX_HTTP_REVERSE_MCP_LLM_ERR_CONFIG   1  /* no API key ... */
#define NGX_HTTP_REVERSE_MCP_LLM_ERR_CONNECT  2  /* refused, DNS, ... */
#define NGX_HTTP_REVERSE_MCP_LLM_ERR_TLS      3
#define NGX_HTTP_REVERSE_MCP_LLM_ERR_TIMEOUT  4
#define NGX_HTTP_REVERSE_MCP_LLM_ERR_HTTP     5  /* 4xx/5xx */
#define NGX_HTTP_REVERSE_MCP_LLM_ERR_BAD      6  /* malformed reply */
#define NGX_HTTP_REVERSE_MCP_LLM_ERR_CUT      7  /* stream ended early */
#define NGX_HTTP_REVERSE_MCP_LLM_ERR_API      8  /* error event in stream */
#define NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL 9
#define NGX_HTTP_REVERSE_MCP_LLM_ERR_SHUTDOWN 10


typedef struct {
    ngx_uint_t                  provider;
    ngx_str_t                   model;
    ngx_str_t                   base_url;
    ngx_str_t                   url;          /* NUL-terminated */
    ngx_str_t                   api_key;      /* empty: none */
    ngx_str_t                   api_key_env;  /* resolved per worker */
    ngx_str_t                   system;
    ngx_str_t                   temperature;  /* number text; empty: unset */
    ngx_uint_t                  max_tokens;   /* 0: unset */
    ngx_uint_t                  max_rounds;
    ngx_msec_t                  timeout;
    ngx_msec_t                  connect_timeout;
    ngx_flag_t                  stream;
    ngx_str_t                   ca_file;      /* NUL-terminated or empty */
    ngx_str_t                   anthropic_version;
    ngx_str_t                   description;  /* the agent's, A2A card */
    unsigned                    configured:1; /* an "llm" line was seen */
    unsigned                    key_missing:1; /* api_key_env not set */
} ngx_http_reverse_mcp_llm_conf_t;


/* a tool the model may call (its name as the model sees it) */
typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   description;
    ngx_str_t                   schema;       /* JSON object text */
} ngx_http_reverse_mcp_llm_tool_t;


typedef struct {
    ngx_str_t                   id;
    ngx_str_t                   name;
    ngx_str_t                   arguments;    /* JSON text (an object, once
                                                 validated by the caller) */
} ngx_http_reverse_mcp_llm_tool_call_t;


/* one message of a conversation, provider-neutral */
typedef struct {
    ngx_uint_t                  role;
    ngx_str_t                   content;      /* text */
    ngx_array_t                *tool_calls;   /* assistant: tool_call_t */
    ngx_str_t                   tool_call_id; /* tool */
    ngx_str_t                   name;         /* tool */
    ngx_uint_t                  is_error;     /* tool */
} ngx_http_reverse_mcp_llm_msg_t;


typedef struct {
    ngx_str_t                   text;
    ngx_array_t                *tool_calls;   /* tool_call_t */
    ngx_str_t                   stop_reason;
    ngx_uint_t                  error_type;   /* 0: success */
    ngx_str_t                   error;        /* a clear message */
    ngx_uint_t                  http_status;  /* of the LLM API, or 0 */
    ngx_msec_t                  elapsed;
} ngx_http_reverse_mcp_llm_result_t;


typedef struct ngx_http_reverse_mcp_llm_req_s  ngx_http_reverse_mcp_llm_req_t;

/* the end of a request, exactly once, from a posted event; the request
 * (and its result) is freed when the handler returns */
typedef void (*ngx_http_reverse_mcp_llm_done_pt)(
    ngx_http_reverse_mcp_llm_req_t *req);

/* streamed text as it arrives (may be NULL); runs inside curl's write
 * callback: it must not finalize anything nor cancel the request */
typedef void (*ngx_http_reverse_mcp_llm_text_pt)(
    ngx_http_reverse_mcp_llm_req_t *req, ngx_str_t *text);


struct ngx_http_reverse_mcp_llm_req_s {
    ngx_http_reverse_mcp_llm_conf_t    *conf;
    ngx_http_reverse_mcp_llm_done_pt    done;
    ngx_http_reverse_mcp_llm_text_pt    on_text;
    void                               *data;
    ngx_log_t                          *log;
    ngx_http_reverse_mcp_llm_result_t   result;
    void                               *priv;
};


/* agent block lines: NGX_OK, NGX_ERROR (logged), NGX_DECLINED (not ours) */
ngx_int_t ngx_http_reverse_mcp_llm_agent_line(ngx_conf_t *cf,
    ngx_http_reverse_mcp_agent_conf_t *acf);

/* per worker */
ngx_int_t ngx_http_reverse_mcp_llm_init_process(ngx_cycle_t *cycle);
void ngx_http_reverse_mcp_llm_exit_process(ngx_cycle_t *cycle);

/*
 * The request body for the conf's provider: the system text, the
 * messages, the tools (may be NULL or empty).
 */
ngx_int_t ngx_http_reverse_mcp_llm_build(ngx_pool_t *pool,
    ngx_http_reverse_mcp_llm_conf_t *conf, ngx_array_t *messages,
    ngx_array_t *tools, ngx_str_t *body);

/*
 * Start a request with body (copied).  NULL when nothing could be set up
 * (no memory, no curl): then done() will not run.  Every other failure
 * comes through done() with result.error_type set.
 */
ngx_http_reverse_mcp_llm_req_t *ngx_http_reverse_mcp_llm_start(
    ngx_http_reverse_mcp_llm_conf_t *conf, ngx_str_t *body, ngx_log_t *log,
    ngx_http_reverse_mcp_llm_done_pt done,
    ngx_http_reverse_mcp_llm_text_pt on_text, void *data);

/* give up a request: done() will not run; never from on_text */
void ngx_http_reverse_mcp_llm_cancel(ngx_http_reverse_mcp_llm_req_t *req);

/* requests in flight in this worker (tests, status) */
ngx_uint_t ngx_http_reverse_mcp_llm_active(void);

/* a short name of the failure class: "llm_http", "llm_timeout", ... */
const char *ngx_http_reverse_mcp_llm_error_name(ngx_uint_t type);


#endif /* _NGX_HTTP_REVERSE_MCP_LLM_H_INCLUDED_ */
