/*
 * Shared declarations of ngx_http_reverse_mcp_module: configuration
 * structures (http-level zone and agents, location-level connector and
 * status settings) and the functions each source file offers the others.
 */

#ifndef _NGX_HTTP_REVERSE_MCP_MODULE_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_HTTP_REVERSE_MCP_VERSION        "0.1.0"
#define NGX_HTTP_REVERSE_MCP_NAME_MAX       64
#define NGX_HTTP_REVERSE_MCP_TOOL_NAME_MAX  128

#define NGX_HTTP_REVERSE_MCP_DUP_REPLACE    0
#define NGX_HTTP_REVERSE_MCP_DUP_REJECT     1

#define NGX_HTTP_REVERSE_MCP_SHUTDOWN_KEEP  0
#define NGX_HTTP_REVERSE_MCP_SHUTDOWN_CLOSE 1


typedef struct ngx_http_reverse_mcp_conn_s  ngx_http_reverse_mcp_conn_t;
typedef struct ngx_http_reverse_mcp_call_s  ngx_http_reverse_mcp_call_t;


/* one "server" line inside a reverse_mcp_agent block */
typedef struct {
    ngx_str_t                  name;
    u_char                     token_sha256[32];
    unsigned                   no_auth:1;
    unsigned                   disabled:1;
} ngx_http_reverse_mcp_server_conf_t;


typedef struct {
    ngx_str_t                  name;
    ngx_array_t                servers;   /* server_conf_t */
    ngx_uint_t                 max_servers;
    ngx_uint_t                 max_tools;
    ngx_uint_t                 max_server_tools; /* 0: max_tools */
    void                      *llm;       /* llm_conf_t (chat), or NULL */
} ngx_http_reverse_mcp_agent_conf_t;


typedef struct {
    ngx_shm_zone_t            *shm_zone;
    ngx_array_t                agents;    /* agent_conf_t */
    ngx_str_t                  runtime_dir; /* worker mailboxes */
    void                      *chat;      /* chat_main_t, or NULL */
} ngx_http_reverse_mcp_main_conf_t;


typedef struct {
    ngx_http_complex_value_t  *connector; /* agent name; NULL: off */
    ngx_flag_t                 status;
    ngx_flag_t                 query_token;
    ngx_uint_t                 duplicate;
    ngx_uint_t                 shutdown;
    ngx_msec_t                 handshake_timeout;
    ngx_msec_t                 call_timeout;
    ngx_msec_t                 ping_interval;
    ngx_msec_t                 ping_timeout;
    size_t                     max_message;
    size_t                     send_queue;
    u_char                    *send_queue_file;   /* for nginx -t */
    ngx_uint_t                 send_queue_line;
    ngx_int_t                  max_pending;     /* calls per socket */
    size_t                     max_description; /* of one tool */
    ngx_flag_t                 cert_binding;    /* client cert = name */

    /* the agent-facing MCP endpoint (ngx_http_reverse_mcp_endpoint.c) */
    ngx_http_complex_value_t  *endpoint;  /* agent name; NULL: off */
    ngx_str_t                  tool_separator;
    ngx_msec_t                 session_timeout;
    ngx_flag_t                 force_mailbox;
    ngx_array_t               *endpoint_tokens;  /* SHA-256 digests */
    ngx_array_t               *allowed_origins; /* ngx_str_t; NULL: none */
    ngx_int_t                  page_size;       /* tools/list page */
    ngx_int_t                  max_sessions;    /* per agent */

    /* chat API and A2A (ngx_http_reverse_mcp_chat.c) */
    void                      *chat;      /* chat_loc_t, or NULL */
} ngx_http_reverse_mcp_loc_conf_t;


extern ngx_module_t  ngx_http_reverse_mcp_module;


/* ngx_http_reverse_mcp_module.c */
ngx_http_reverse_mcp_agent_conf_t *ngx_http_reverse_mcp_find_agent(
    ngx_http_reverse_mcp_main_conf_t *mcf, ngx_str_t *name);
ngx_http_reverse_mcp_server_conf_t *ngx_http_reverse_mcp_find_server(
    ngx_http_reverse_mcp_agent_conf_t *acf, ngx_str_t *name);
ngx_int_t ngx_http_reverse_mcp_name_valid(ngx_str_t *name);
ngx_int_t ngx_http_reverse_mcp_parse_token(ngx_conf_t *cf, ngx_str_t *param,
    ngx_str_t *what, u_char *digest);

/* ngx_http_reverse_mcp_connector.c */
ngx_int_t ngx_http_reverse_mcp_connector_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_reverse_mcp_connector_redact(ngx_http_request_t *r);
void ngx_http_reverse_mcp_connector_heartbeat(ngx_cycle_t *cycle);
void ngx_http_reverse_mcp_connector_exit(ngx_cycle_t *cycle);
/*
 * Send a call on the local socket with this connection id: NGX_OK (done()
 * runs later), NGX_DECLINED (no such ready socket here), NGX_BUSY (its
 * send queue is full), NGX_AGAIN (reverse_mcp_max_pending calls are in
 * flight on it), NGX_ERROR.
 */
ngx_int_t ngx_http_reverse_mcp_connector_call(uint64_t conn_id,
    ngx_http_reverse_mcp_call_t *call);
void ngx_http_reverse_mcp_connector_cancel(ngx_http_reverse_mcp_call_t *call,
    const char *reason);
/*
 * The caller's answer to a relayed request of the server (json: the
 * response with the gateway id): NGX_OK (sent to the server with its own
 * id), NGX_DECLINED (the call or that request is no longer waiting),
 * NGX_ERROR.
 */
ngx_int_t ngx_http_reverse_mcp_connector_answer(
    ngx_http_reverse_mcp_call_t *call, ngx_str_t *json);
/*
 * 2026-07-28 rounds: the caller lets a call go, which stays in flight,
 * parked; a retry (call->park) takes it over: NGX_OK, NGX_DECLINED (no such
 * parked call on this connection), NGX_ERROR.
 */
void ngx_http_reverse_mcp_connector_detach(ngx_http_reverse_mcp_call_t *call);
ngx_int_t ngx_http_reverse_mcp_connector_resume(uint64_t conn_id,
    ngx_http_reverse_mcp_call_t *call);

/* ngx_http_reverse_mcp_endpoint.c */
ngx_int_t ngx_http_reverse_mcp_endpoint_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_reverse_mcp_endpoint_variables(ngx_conf_t *cf);

/* ngx_http_reverse_mcp_log.c */
ngx_int_t ngx_http_reverse_mcp_log_init(ngx_conf_t *cf);
size_t ngx_http_reverse_mcp_redact_line(u_char *dst, size_t cap, u_char *src,
    size_t len);

/* ngx_http_reverse_mcp_mailbox.c */
ngx_int_t ngx_http_reverse_mcp_mailbox_init(ngx_cycle_t *cycle);
void ngx_http_reverse_mcp_mailbox_exit(ngx_cycle_t *cycle);

/* ngx_http_reverse_mcp_status.c */
ngx_int_t ngx_http_reverse_mcp_status_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_REVERSE_MCP_MODULE_H_INCLUDED_ */
