/*
 * ngx_http_reverse_mcp_module: the module definition.
 *
 * Owns: the directives and their validation (so "nginx -t" names the
 * directive and file:line of a bad value), configuration structures, the
 * agent blocks and their registered servers and tokens (kept only as
 * SHA-256 digests), and the process hooks that start and stop the
 * per-worker registry heartbeat.
 */

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_registry.h"
#include "ngx_http_reverse_mcp_chat.h"
#include "ngx_http_reverse_mcp_llm.h"
#include "ngx_http_reverse_mcp_names.h"

#include <openssl/sha.h>


#define NGX_HTTP_REVERSE_MCP_HEARTBEAT   250   /* ms */
#define NGX_HTTP_REVERSE_MCP_SWEEP_EVERY 4     /* heartbeats */


typedef struct {
    ngx_str_t                  name;
    u_char                    *file;
    ngx_uint_t                 line;
    ngx_http_complex_value_t  *agent;
} ngx_http_reverse_mcp_conf_ref_t;


static void *ngx_http_reverse_mcp_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_reverse_mcp_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_reverse_mcp_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_reverse_mcp_postconfiguration(ngx_conf_t *cf);
static char *ngx_http_reverse_mcp_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_reverse_mcp_agent(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_reverse_mcp_agent_line(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf);
static char *ngx_http_reverse_mcp_server_line(ngx_conf_t *cf,
    ngx_http_reverse_mcp_agent_conf_t *acf);
static char *ngx_http_reverse_mcp_token_file(ngx_conf_t *cf, ngx_str_t *path,
    u_char *digest);
static ngx_int_t ngx_http_reverse_mcp_hex_digest(ngx_str_t *hex,
    u_char *digest);
static char *ngx_http_reverse_mcp_connector(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_reverse_mcp_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_reverse_mcp_endpoint(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_reverse_mcp_tool_separator(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_reverse_mcp_endpoint_token(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_reverse_mcp_msec_min(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_reverse_mcp_size_min(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_reverse_mcp_send_queue(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_reverse_mcp_rewrite_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_reverse_mcp_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_reverse_mcp_init_process(ngx_cycle_t *cycle);
static void ngx_http_reverse_mcp_exit_process(ngx_cycle_t *cycle);
static void ngx_http_reverse_mcp_heartbeat_handler(ngx_event_t *ev);


static ngx_conf_enum_t  ngx_http_reverse_mcp_duplicate_enum[] = {
    { ngx_string("replace"), NGX_HTTP_REVERSE_MCP_DUP_REPLACE },
    { ngx_string("reject"), NGX_HTTP_REVERSE_MCP_DUP_REJECT },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_reverse_mcp_shutdown_enum[] = {
    { ngx_string("keep"), NGX_HTTP_REVERSE_MCP_SHUTDOWN_KEEP },
    { ngx_string("close"), NGX_HTTP_REVERSE_MCP_SHUTDOWN_CLOSE },
    { ngx_null_string, 0 }
};


static ngx_conf_post_t  ngx_http_reverse_mcp_msec_post =
    { ngx_http_reverse_mcp_msec_min };

static ngx_conf_post_t  ngx_http_reverse_mcp_size_post =
    { ngx_http_reverse_mcp_size_min };


static ngx_command_t  ngx_http_reverse_mcp_commands[] = {

    { ngx_string("reverse_mcp_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_reverse_mcp_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("reverse_mcp_agent"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_reverse_mcp_agent,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("reverse_mcp_connector"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_reverse_mcp_connector,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("reverse_mcp_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_reverse_mcp_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("reverse_mcp_runtime_dir"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_main_conf_t, runtime_dir),
      NULL },

    { ngx_string("reverse_mcp_endpoint"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_reverse_mcp_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("reverse_mcp_chat"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_reverse_mcp_chat_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("reverse_mcp_a2a"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_reverse_mcp_chat_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("reverse_mcp_chat_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_reverse_mcp_chat_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("reverse_mcp_endpoint_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_reverse_mcp_endpoint_token,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("reverse_mcp_tool_separator"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_reverse_mcp_tool_separator,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, tool_separator),
      NULL },

    { ngx_string("reverse_mcp_session_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, session_timeout),
      &ngx_http_reverse_mcp_msec_post },

    { ngx_string("reverse_mcp_force_mailbox"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, force_mailbox),
      NULL },

    { ngx_string("reverse_mcp_allowed_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, allowed_origins),
      NULL },

    { ngx_string("reverse_mcp_page_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, page_size),
      NULL },

    { ngx_string("reverse_mcp_max_sessions"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, max_sessions),
      NULL },

    { ngx_string("reverse_mcp_query_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, query_token),
      NULL },

    { ngx_string("reverse_mcp_duplicate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, duplicate),
      &ngx_http_reverse_mcp_duplicate_enum },

    { ngx_string("reverse_mcp_shutdown"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, shutdown),
      &ngx_http_reverse_mcp_shutdown_enum },

    { ngx_string("reverse_mcp_handshake_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, handshake_timeout),
      &ngx_http_reverse_mcp_msec_post },

    { ngx_string("reverse_mcp_call_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, call_timeout),
      &ngx_http_reverse_mcp_msec_post },

    { ngx_string("reverse_mcp_ping_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, ping_interval),
      &ngx_http_reverse_mcp_msec_post },

    { ngx_string("reverse_mcp_ping_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, ping_timeout),
      &ngx_http_reverse_mcp_msec_post },

    { ngx_string("reverse_mcp_max_message"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, max_message),
      &ngx_http_reverse_mcp_size_post },

    { ngx_string("reverse_mcp_send_queue"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_reverse_mcp_send_queue,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, send_queue),
      NULL },

    { ngx_string("reverse_mcp_max_pending"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, max_pending),
      NULL },

    { ngx_string("reverse_mcp_max_description"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, max_description),
      NULL },

    { ngx_string("reverse_mcp_client_cert_binding"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_reverse_mcp_loc_conf_t, cert_binding),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_reverse_mcp_module_ctx = {
    ngx_http_reverse_mcp_endpoint_variables, /* preconfiguration */
    ngx_http_reverse_mcp_postconfiguration, /* postconfiguration */

    ngx_http_reverse_mcp_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_reverse_mcp_create_loc_conf,  /* create location configuration */
    ngx_http_reverse_mcp_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_reverse_mcp_module = {
    NGX_MODULE_V1,
    &ngx_http_reverse_mcp_module_ctx,      /* module context */
    ngx_http_reverse_mcp_commands,         /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_reverse_mcp_init_module,      /* init module */
    ngx_http_reverse_mcp_init_process,     /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_reverse_mcp_exit_process,     /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* locations that need the zone or an agent, checked after parsing */
static ngx_array_t  *ngx_http_reverse_mcp_refs;

static ngx_event_t   ngx_http_reverse_mcp_heartbeat_ev;
static ngx_uint_t    ngx_http_reverse_mcp_heartbeats;


static void *
ngx_http_reverse_mcp_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_reverse_mcp_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_reverse_mcp_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&mcf->agents, cf->pool, 4,
                       sizeof(ngx_http_reverse_mcp_agent_conf_t))
        != NGX_OK)
    {
        return NULL;
    }

    ngx_http_reverse_mcp_refs = ngx_array_create(cf->pool, 4,
                                    sizeof(ngx_http_reverse_mcp_conf_ref_t));
    if (ngx_http_reverse_mcp_refs == NULL) {
        return NULL;
    }

    return mcf;
}


static void *
ngx_http_reverse_mcp_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_reverse_mcp_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_reverse_mcp_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    /* lcf->connector = NULL; */

    lcf->status = NGX_CONF_UNSET;
    lcf->query_token = NGX_CONF_UNSET;
    lcf->duplicate = NGX_CONF_UNSET_UINT;
    lcf->shutdown = NGX_CONF_UNSET_UINT;
    lcf->handshake_timeout = NGX_CONF_UNSET_MSEC;
    lcf->call_timeout = NGX_CONF_UNSET_MSEC;
    lcf->ping_interval = NGX_CONF_UNSET_MSEC;
    lcf->ping_timeout = NGX_CONF_UNSET_MSEC;
    lcf->max_message = NGX_CONF_UNSET_SIZE;
    lcf->send_queue = NGX_CONF_UNSET_SIZE;
    lcf->max_pending = NGX_CONF_UNSET;
    lcf->max_description = NGX_CONF_UNSET_SIZE;
    lcf->cert_binding = NGX_CONF_UNSET;
    lcf->session_timeout = NGX_CONF_UNSET_MSEC;
    lcf->endpoint_tokens = NGX_CONF_UNSET_PTR;
    lcf->force_mailbox = NGX_CONF_UNSET;
    lcf->allowed_origins = NGX_CONF_UNSET_PTR;
    lcf->page_size = NGX_CONF_UNSET;
    lcf->max_sessions = NGX_CONF_UNSET;

    return lcf;
}


static char *
ngx_http_reverse_mcp_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_reverse_mcp_loc_conf_t  *prev = parent;
    ngx_http_reverse_mcp_loc_conf_t  *conf = child;

    u_char                           *p;
    ngx_str_t                        *origin;
    ngx_uint_t                        i;

    ngx_conf_merge_value(conf->status, prev->status, 0);
    ngx_conf_merge_value(conf->query_token, prev->query_token, 1);
    ngx_conf_merge_uint_value(conf->duplicate, prev->duplicate,
                              NGX_HTTP_REVERSE_MCP_DUP_REPLACE);
    ngx_conf_merge_uint_value(conf->shutdown, prev->shutdown,
                              NGX_HTTP_REVERSE_MCP_SHUTDOWN_KEEP);
    ngx_conf_merge_msec_value(conf->handshake_timeout,
                              prev->handshake_timeout, 10000);
    ngx_conf_merge_msec_value(conf->call_timeout, prev->call_timeout, 60000);
    ngx_conf_merge_msec_value(conf->ping_interval, prev->ping_interval,
                              30000);
    ngx_conf_merge_msec_value(conf->ping_timeout, prev->ping_timeout, 10000);
    ngx_conf_merge_size_value(conf->max_message, prev->max_message,
                              16 * 1024 * 1024);
    ngx_conf_merge_size_value(conf->send_queue, prev->send_queue,
                              2 * conf->max_message + 65536);
    ngx_conf_merge_value(conf->max_pending, prev->max_pending, 1024);
    ngx_conf_merge_size_value(conf->max_description, prev->max_description,
                              64 * 1024);
    ngx_conf_merge_value(conf->cert_binding, prev->cert_binding, 0);

    ngx_conf_merge_str_value(conf->tool_separator, prev->tool_separator,
                             "__");
    ngx_conf_merge_msec_value(conf->session_timeout, prev->session_timeout,
                              3600000);
    ngx_conf_merge_value(conf->force_mailbox, prev->force_mailbox, 0);
    ngx_conf_merge_ptr_value(conf->endpoint_tokens, prev->endpoint_tokens,
                             NULL);
    ngx_conf_merge_ptr_value(conf->allowed_origins, prev->allowed_origins,
                             NULL);
    ngx_conf_merge_value(conf->page_size, prev->page_size, 1000);
    ngx_conf_merge_value(conf->max_sessions, prev->max_sessions, 10000);

    if (conf->page_size < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"reverse_mcp_page_size\" must be at least 1");
        return NGX_CONF_ERROR;
    }

    if (conf->max_pending < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"reverse_mcp_max_pending\" must be at least 1");
        return NGX_CONF_ERROR;
    }

    if (conf->max_sessions < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"reverse_mcp_max_sessions\" must be at least 1");
        return NGX_CONF_ERROR;
    }

    if (conf->allowed_origins && conf->allowed_origins != prev->allowed_origins)
    {
        origin = conf->allowed_origins->elts;

        for (i = 0; i < conf->allowed_origins->nelts; i++) {
            if (origin[i].len == 1 && origin[i].data[0] == '*') {
                continue;
            }

            p = ngx_strlchr(origin[i].data, origin[i].data + origin[i].len,
                            ':');

            if (p == NULL
                || origin[i].data + origin[i].len - p < 4
                || ngx_strncmp(p, "://", 3) != 0
                || ngx_strlchr(p + 3, origin[i].data + origin[i].len, '/'))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"reverse_mcp_allowed_origins\" "
                                   "value \"%V\": an origin is "
                                   "scheme://host[:port] (no path), or \"*\"",
                                   &origin[i]);
                return NGX_CONF_ERROR;
            }
        }
    }

    if (conf->send_queue_file == NULL) {
        conf->send_queue_file = prev->send_queue_file;
        conf->send_queue_line = prev->send_queue_line;
    }

    if (conf->send_queue < conf->max_message) {
        /* merged after the block: name the send_queue line */
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"reverse_mcp_send_queue\" (%uz) must not be "
                      "smaller than \"reverse_mcp_max_message\" (%uz) in "
                      "%s:%ui", conf->send_queue, conf->max_message,
                      conf->send_queue_file, conf->send_queue_line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_reverse_mcp_msec_min(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms < 10) {
        return "must be at least 10ms";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_reverse_mcp_size_min(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *sp = data;

    if (*sp < 1024) {
        return "must be at least 1k";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_reverse_mcp_send_queue(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_reverse_mcp_loc_conf_t  *lcf = conf;

    char  *rv;

    rv = ngx_conf_set_size_slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK) {
        lcf->send_queue_file = cf->conf_file->file.name.data;
        lcf->send_queue_line = cf->conf_file->line;
    }

    return rv;
}


static ngx_int_t
ngx_http_reverse_mcp_rewrite_handler(ngx_http_request_t *r)
{
    ngx_http_reverse_mcp_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_reverse_mcp_module);

    if (lcf->connector
        && ngx_http_reverse_mcp_connector_redact(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_reverse_mcp_postconfiguration(ngx_conf_t *cf)
{
    ngx_str_t                          name;
    ngx_uint_t                         i;
    ngx_http_handler_pt               *h;
    ngx_http_core_main_conf_t         *cmcf;
    ngx_http_reverse_mcp_conf_ref_t   *ref;
    ngx_http_reverse_mcp_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_reverse_mcp_module);

    if (mcf->runtime_dir.len == 0) {
        ngx_str_set(&mcf->runtime_dir, "reverse_mcp");
    }

    if (ngx_conf_full_name(cf->cycle, &mcf->runtime_dir, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_reverse_mcp_chat_postconfiguration(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* tokens and keys out of every error log line, debug included */
    if (ngx_http_reverse_mcp_log_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_reverse_mcp_refs == NULL) {
        return NGX_OK;
    }

    /* redact ?token= before access checks of connector locations log */
    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_reverse_mcp_rewrite_handler;

    ref = ngx_http_reverse_mcp_refs->elts;

    for (i = 0; i < ngx_http_reverse_mcp_refs->nelts; i++) {

        if (mcf->shm_zone == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"%V\" requires \"reverse_mcp_zone\" in the http "
                          "block in %s:%ui", &ref[i].name, ref[i].file,
                          ref[i].line);
            return NGX_ERROR;
        }

        if (ref[i].agent == NULL || ref[i].agent->lengths) {
            continue;
        }

        name = ref[i].agent->value;

        if (ngx_http_reverse_mcp_find_agent(mcf, &name) == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"%V\" names unknown agent \"%V\" in %s:%ui "
                          "(define it with \"reverse_mcp_agent %V { ... }\")",
                          &ref[i].name, &name, ref[i].file, ref[i].line,
                          &name);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_reverse_mcp_add_ref(ngx_conf_t *cf, ngx_str_t *name,
    ngx_http_complex_value_t *agent)
{
    ngx_http_reverse_mcp_conf_ref_t  *ref;

    ref = ngx_array_push(ngx_http_reverse_mcp_refs);
    if (ref == NULL) {
        return NGX_ERROR;
    }

    ref->name = *name;
    ref->file = cf->conf_file->file.name.data;
    ref->line = cf->conf_file->line;
    ref->agent = agent;

    return NGX_OK;
}


ngx_int_t
ngx_http_reverse_mcp_name_valid(ngx_str_t *name)
{
    return ngx_http_reverse_mcp_names_server_valid(name->data, name->len);
}


/* the separator of exposed names: a part of a model's function name */
static char *
ngx_http_reverse_mcp_tool_separator(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_reverse_mcp_loc_conf_t  *lcf = conf;

    char       *rv;
    ngx_str_t  *value;

    rv = ngx_conf_set_str_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;

    if (!ngx_http_reverse_mcp_names_sep_valid(lcf->tool_separator.data,
                                              lcf->tool_separator.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"reverse_mcp_tool_separator\" \"%V\": "
                           "use 1-%d of [A-Za-z0-9_-] (exposed tool names "
                           "are function names for language models)",
                           &value[1], NGX_HTTP_REVERSE_MCP_NAMES_SEP_MAX);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_http_reverse_mcp_agent_conf_t *
ngx_http_reverse_mcp_find_agent(ngx_http_reverse_mcp_main_conf_t *mcf,
    ngx_str_t *name)
{
    ngx_uint_t                          i;
    ngx_http_reverse_mcp_agent_conf_t  *acf;

    acf = mcf->agents.elts;

    for (i = 0; i < mcf->agents.nelts; i++) {
        if (acf[i].name.len == name->len
            && ngx_strncmp(acf[i].name.data, name->data, name->len) == 0)
        {
            return &acf[i];
        }
    }

    return NULL;
}


ngx_http_reverse_mcp_server_conf_t *
ngx_http_reverse_mcp_find_server(ngx_http_reverse_mcp_agent_conf_t *acf,
    ngx_str_t *name)
{
    ngx_uint_t                           i;
    ngx_http_reverse_mcp_server_conf_t  *scf;

    scf = acf->servers.elts;

    for (i = 0; i < acf->servers.nelts; i++) {
        if (scf[i].name.len == name->len
            && ngx_strncmp(scf[i].name.data, name->data, name->len) == 0)
        {
            return &scf[i];
        }
    }

    return NULL;
}


static char *
ngx_http_reverse_mcp_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_reverse_mcp_main_conf_t  *mcf = conf;

    u_char     *p;
    ssize_t     size;
    ngx_str_t  *value, name, s;
    void       *ctx;

    if (mcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = (u_char *) ngx_strlchr(value[1].data, value[1].data + value[1].len,
                               ':');
    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected name:size "
                           "(e.g. reverse_mcp:10m)", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &s);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (64 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small: %V, at least %uzk",
                           &name, &s, (64 * ngx_pagesize) >> 10);
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, 2 * sizeof(void *));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    mcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                          &ngx_http_reverse_mcp_module);
    if (mcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &name);
        return NGX_CONF_ERROR;
    }

    mcf->shm_zone->init = ngx_http_reverse_mcp_registry_init_zone;
    mcf->shm_zone->data = ctx;

    return NGX_CONF_OK;
}


static char *
ngx_http_reverse_mcp_agent(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_reverse_mcp_main_conf_t  *mcf = conf;

    char                               *rv;
    ngx_str_t                          *value;
    ngx_conf_t                          save;
    ngx_http_reverse_mcp_agent_conf_t  *acf;

    value = cf->args->elts;

    if (!ngx_http_reverse_mcp_name_valid(&value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agent name \"%V\": use 1-%d of "
                           "[A-Za-z0-9_-], without \"__\" and not ending "
                           "in \"_\"", &value[1],
                           NGX_HTTP_REVERSE_MCP_NAME_MAX);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_reverse_mcp_find_agent(mcf, &value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate agent \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    acf = ngx_array_push(&mcf->agents);
    if (acf == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(acf, sizeof(ngx_http_reverse_mcp_agent_conf_t));

    acf->name = value[1];
    acf->max_servers = 64;
    acf->max_tools = 4096;

    if (ngx_array_init(&acf->servers, cf->pool, 4,
                       sizeof(ngx_http_reverse_mcp_server_conf_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    save = *cf;
    cf->handler = ngx_http_reverse_mcp_agent_line;
    cf->handler_conf = (char *) acf;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (acf->servers.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "agent \"%V\" has no \"server\" entries: no "
                           "reverse server can connect to it", &acf->name);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_reverse_mcp_agent_line(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf)
{
    ngx_http_reverse_mcp_agent_conf_t  *acf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (value[0].len == 6 && ngx_strncmp(value[0].data, "server", 6) == 0) {
        return ngx_http_reverse_mcp_server_line(cf, acf);
    }

    if ((value[0].len == 11
         && ngx_strncmp(value[0].data, "max_servers", 11) == 0)
        || (value[0].len == 9
            && ngx_strncmp(value[0].data, "max_tools", 9) == 0)
        || (value[0].len == 16
            && ngx_strncmp(value[0].data, "max_server_tools", 16) == 0))
    {
        if (cf->args->nelts != 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" takes one number", &value[0]);
            return NGX_CONF_ERROR;
        }

        n = ngx_atoi(value[1].data, value[1].len);

        if (n == NGX_ERROR || n == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"%V\" value \"%V\": a positive "
                               "number is required", &value[0], &value[1]);
            return NGX_CONF_ERROR;
        }

        if (value[0].len == 11) {
            acf->max_servers = n;

        } else if (value[0].len == 9) {
            acf->max_tools = n;

        } else {
            acf->max_server_tools = n;
        }

        return NGX_CONF_OK;
    }

    n = ngx_http_reverse_mcp_llm_agent_line(cf, acf);

    if (n != NGX_DECLINED) {
        return n == NGX_OK ? NGX_CONF_OK : NGX_CONF_ERROR;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in reverse_mcp_agent "
                       "\"%V\" (expected server, max_servers, max_tools, "
                       "max_server_tools)",
                       &value[0], &acf->name);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_reverse_mcp_server_line(ngx_conf_t *cf,
    ngx_http_reverse_mcp_agent_conf_t *acf)
{
    ngx_int_t                            rc;
    ngx_str_t                           *value, what;
    ngx_uint_t                           i, have_token;
    ngx_http_reverse_mcp_server_conf_t  *scf;

    value = cf->args->elts;

    if (cf->args->nelts < 3) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"server\" needs a name and one of token=, "
                           "token_file=, token_sha256= or no_auth");
        return NGX_CONF_ERROR;
    }

    if (!ngx_http_reverse_mcp_name_valid(&value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid server name \"%V\": use 1-%d of "
                           "[A-Za-z0-9_-], without \"__\" and not ending "
                           "in \"_\" (\"<server>__<tool>\" must split at "
                           "its first \"__\")", &value[1],
                           NGX_HTTP_REVERSE_MCP_NAME_MAX);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_reverse_mcp_find_server(acf, &value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate server \"%V\" in agent \"%V\"",
                           &value[1], &acf->name);
        return NGX_CONF_ERROR;
    }

    scf = ngx_array_push(&acf->servers);
    if (scf == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(scf, sizeof(ngx_http_reverse_mcp_server_conf_t));
    scf->name = value[1];

    what.data = ngx_pnalloc(cf->pool, value[1].len + sizeof("server \"\""));
    if (what.data == NULL) {
        return NGX_CONF_ERROR;
    }

    what.len = ngx_sprintf(what.data, "server \"%V\"", &value[1])
               - what.data;

    have_token = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        rc = ngx_http_reverse_mcp_parse_token(cf, &value[i], &what,
                                              scf->token_sha256);

        if (rc == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_OK) {
            have_token++;
            continue;
        }

        if (value[i].len == 7 && ngx_strncmp(value[i].data, "no_auth", 7) == 0)
        {
            scf->no_auth = 1;
            have_token++;
            continue;
        }

        if (value[i].len == 8
            && ngx_strncmp(value[i].data, "disabled", 8) == 0)
        {
            scf->disabled = 1;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" for server \"%V\"",
                           &value[i], &scf->name);
        return NGX_CONF_ERROR;
    }

    if (have_token != 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "server \"%V\" needs exactly one of token=, "
                           "token_file=, token_sha256= or no_auth",
                           &scf->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * One "token=", "token_file=" or "token_sha256=" parameter into a SHA-256
 * digest: NGX_OK, NGX_DECLINED (not a token parameter), NGX_ERROR (logged,
 * naming what: a server or the endpoint).
 */
ngx_int_t
ngx_http_reverse_mcp_parse_token(ngx_conf_t *cf, ngx_str_t *param,
    ngx_str_t *what, u_char *digest)
{
    ngx_str_t  s;

    if (ngx_strncmp(param->data, "token=", 6) == 0) {
        s.data = param->data + 6;
        s.len = param->len - 6;

        if (s.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty token for %V",
                               what);
            return NGX_ERROR;
        }

        (void) SHA256(s.data, s.len, digest);
        return NGX_OK;
    }

    if (ngx_strncmp(param->data, "token_file=", 11) == 0) {
        s.data = param->data + 11;
        s.len = param->len - 11;

        return ngx_http_reverse_mcp_token_file(cf, &s, digest) == NGX_CONF_OK
               ? NGX_OK : NGX_ERROR;
    }

    if (ngx_strncmp(param->data, "token_sha256=", 13) == 0) {
        s.data = param->data + 13;
        s.len = param->len - 13;

        if (ngx_http_reverse_mcp_hex_digest(&s, digest) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid token_sha256 for %V: 64 hex digits "
                               "are required", what);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    return NGX_DECLINED;
}


static char *
ngx_http_reverse_mcp_token_file(ngx_conf_t *cf, ngx_str_t *path,
    u_char *digest)
{
    u_char           buf[4096];
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_str_t        name;
    ngx_uint_t       len;

    name = *path;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open token file \"%s\"", name.data);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, buf, sizeof(buf));

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name.data);
    }

    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read token file \"%s\"", name.data);
        return NGX_CONF_ERROR;
    }

    if (n == (ssize_t) sizeof(buf)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "token file \"%s\" is too large", name.data);
        return NGX_CONF_ERROR;
    }

    len = n;

    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'
                   || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
    {
        len--;
    }

    if (len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "token file \"%s\" is empty", name.data);
        return NGX_CONF_ERROR;
    }

    (void) SHA256(buf, len, digest);

    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_reverse_mcp_hex_digest(ngx_str_t *hex, u_char *digest)
{
    ngx_int_t   hi, lo;
    ngx_uint_t  i;

    if (hex->len != 64) {
        return NGX_ERROR;
    }

    for (i = 0; i < 32; i++) {
        hi = ngx_hextoi(&hex->data[2 * i], 1);
        lo = ngx_hextoi(&hex->data[2 * i + 1], 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            return NGX_ERROR;
        }

        digest[i] = (u_char) (hi * 16 + lo);
    }

    return NGX_OK;
}


static char *
ngx_http_reverse_mcp_connector(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_reverse_mcp_loc_conf_t  *lcf = conf;

    ngx_str_t                         *value;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_compile_complex_value_t   ccv;

    if (lcf->connector) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->connector = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (lcf->connector == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = lcf->connector;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (lcf->connector->lengths == NULL
        && !ngx_http_reverse_mcp_name_valid(&value[1]))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agent name \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_reverse_mcp_add_ref(cf, &cmd->name, lcf->connector)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_reverse_mcp_connector_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_reverse_mcp_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_reverse_mcp_loc_conf_t  *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->status == 1) {
        return "is duplicate";
    }

    lcf->status = 1;

    if (ngx_http_reverse_mcp_add_ref(cf, &cmd->name, NULL) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_reverse_mcp_status_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_reverse_mcp_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_reverse_mcp_loc_conf_t  *lcf = conf;

    ngx_str_t                         *value;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_compile_complex_value_t   ccv;

    if (lcf->endpoint) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->endpoint = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (lcf->endpoint == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = lcf->endpoint;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (lcf->endpoint->lengths == NULL
        && !ngx_http_reverse_mcp_name_valid(&value[1]))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agent name \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_reverse_mcp_add_ref(cf, &cmd->name, lcf->endpoint)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_reverse_mcp_endpoint_handler;

    return NGX_CONF_OK;
}


/* the master (still root) prepares the mailbox directory for workers */
/* reverse_mcp_endpoint_token token=...|token_file=...|token_sha256=...; */
static char *
ngx_http_reverse_mcp_endpoint_token(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_reverse_mcp_loc_conf_t  *lcf = conf;

    u_char     *digest;
    ngx_int_t   rc;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (lcf->endpoint_tokens == NGX_CONF_UNSET_PTR) {
        lcf->endpoint_tokens = ngx_array_create(cf->pool, 2, 32);
        if (lcf->endpoint_tokens == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    digest = ngx_array_push(lcf->endpoint_tokens);
    if (digest == NULL) {
        return NGX_CONF_ERROR;
    }

    rc = ngx_http_reverse_mcp_parse_token(cf, &value[1], &cmd->name, digest);

    if (rc == NGX_DECLINED) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": expected token=, "
                           "token_file= or token_sha256=", &value[1]);
        return NGX_CONF_ERROR;
    }

    return rc == NGX_OK ? NGX_CONF_OK : NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_reverse_mcp_init_module(ngx_cycle_t *cycle)
{
    ngx_file_info_t                    fi;
    ngx_core_conf_t                   *ccf;
    ngx_http_reverse_mcp_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_reverse_mcp_module);

    if (ngx_test_config || mcf == NULL || mcf->shm_zone == NULL) {
        return NGX_OK;
    }

    if (ngx_create_dir(mcf->runtime_dir.data, 0700) == NGX_FILE_ERROR
        && ngx_errno != NGX_EEXIST)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      ngx_create_dir_n " \"%V\" failed (reverse_mcp_runtime_dir)",
                      &mcf->runtime_dir);
        return NGX_ERROR;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (geteuid() == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        if (ngx_file_info(mcf->runtime_dir.data, &fi) != NGX_FILE_ERROR
            && fi.st_uid != ccf->user
            && chown((const char *) mcf->runtime_dir.data, ccf->user, -1)
               == -1)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "chown(\"%V\", %d) failed (reverse_mcp_runtime_dir)",
                          &mcf->runtime_dir, ccf->user);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_reverse_mcp_init_process(ngx_cycle_t *cycle)
{
    ngx_http_reverse_mcp_main_conf_t  *mcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_reverse_mcp_module);

    if (mcf == NULL || mcf->shm_zone == NULL) {
        return NGX_OK;
    }

    ngx_http_reverse_mcp_registry_worker_start(mcf->shm_zone, cycle->log);

    /* a failure is logged; the worker still serves what is local */
    (void) ngx_http_reverse_mcp_mailbox_init(cycle);

    /* the chat's LLM client: one curl multi handle per worker */
    (void) ngx_http_reverse_mcp_llm_init_process(cycle);

    ngx_http_reverse_mcp_heartbeat_ev.handler =
                                        ngx_http_reverse_mcp_heartbeat_handler;
    ngx_http_reverse_mcp_heartbeat_ev.data = cycle;
    ngx_http_reverse_mcp_heartbeat_ev.log = cycle->log;
    ngx_http_reverse_mcp_heartbeat_ev.cancelable = 1;

    ngx_add_timer(&ngx_http_reverse_mcp_heartbeat_ev,
                  NGX_HTTP_REVERSE_MCP_HEARTBEAT);

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_heartbeat_handler(ngx_event_t *ev)
{
    ngx_cycle_t                       *cycle = ev->data;
    ngx_http_reverse_mcp_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_reverse_mcp_module);

    ngx_http_reverse_mcp_connector_heartbeat(cycle);

    if (++ngx_http_reverse_mcp_heartbeats % NGX_HTTP_REVERSE_MCP_SWEEP_EVERY
        == 0)
    {
        (void) ngx_http_reverse_mcp_registry_sweep(mcf->shm_zone, ev->log);
    }

    ngx_add_timer(ev, NGX_HTTP_REVERSE_MCP_HEARTBEAT);
}


static void
ngx_http_reverse_mcp_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                         n;
    ngx_http_reverse_mcp_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_reverse_mcp_module);

    if (mcf == NULL || mcf->shm_zone == NULL) {
        return;
    }

    if (ngx_http_reverse_mcp_heartbeat_ev.timer_set) {
        ngx_del_timer(&ngx_http_reverse_mcp_heartbeat_ev);
    }

    ngx_http_reverse_mcp_llm_exit_process(cycle);
    ngx_http_reverse_mcp_connector_exit(cycle);
    ngx_http_reverse_mcp_mailbox_exit(cycle);

    /* anything left of ours (should be nothing) goes too */
    n = ngx_http_reverse_mcp_registry_purge_pid(mcf->shm_zone, ngx_pid,
                                                cycle->log);
    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "reverse_mcp: removed %ui server(s) at worker exit", n);
    }

    ngx_http_reverse_mcp_registry_worker_stop(mcf->shm_zone);
}
