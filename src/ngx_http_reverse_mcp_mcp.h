/*
 * MCP protocol rules that do not depend on nginx events: supported
 * protocol revisions, validation of a tool definition received from a
 * reverse server (its x-mcp-header annotations included), the mapping of
 * MCP log levels to nginx levels, and the rules of relaying a server's
 * requests to the caller of a call (which client capability a request
 * needs, what a client declared, the gateway ids of relayed requests).
 */

#ifndef _NGX_HTTP_REVERSE_MCP_MCP_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_MCP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <yajl/yajl_tree.h>

#include "ngx_http_reverse_mcp_relayid.h"


/* call->relay (ngx_http_reverse_mcp_call.h): what a caller can answer of the server's requests */
#define NGX_HTTP_REVERSE_MCP_RELAY_SAMPLING    0x01  /* sampling/... */
#define NGX_HTTP_REVERSE_MCP_RELAY_ELICIT      0x02  /* elicitation, form */
#define NGX_HTTP_REVERSE_MCP_RELAY_ELICIT_URL  0x04  /* elicitation, url */
#define NGX_HTTP_REVERSE_MCP_RELAY_ROOTS       0x08  /* roots/list */
#define NGX_HTTP_REVERSE_MCP_RELAY_CAPS        0x0f
#define NGX_HTTP_REVERSE_MCP_RELAY_STREAM      0x10  /* it can be reached */
/* why it cannot be reached, for the server's error */
#define NGX_HTTP_REVERSE_MCP_RELAY_JSON_ONLY   0x20  /* no text/event-stream */
#define NGX_HTTP_REVERSE_MCP_RELAY_MODERN      0x40  /* 2026-07-28 caller:
                                                        input_required */
#define NGX_HTTP_REVERSE_MCP_RELAY_NO_INPUT    0x80  /* 2026-07-28, a method
                                                        without input
                                                        requests */

/* the revision the gateway asks for in initialize */
#define NGX_HTTP_REVERSE_MCP_PROTOCOL_VERSION  "2025-06-18"


/* 1 if a reverse server may answer initialize with this revision */
ngx_int_t ngx_http_reverse_mcp_version_supported(ngx_str_t *version);

/*
 * Check one element of tools/list "tools": an object with a valid "name"
 * (1-128 of [A-Za-z0-9_.-]), an "inputSchema" object whose "type", when
 * present, is "object", and optional "description" (string),
 * "outputSchema" (object), "annotations" (object), "title" (string).
 * On success *name points into the tree; on failure *err says why.
 */
ngx_int_t ngx_http_reverse_mcp_tool_check(yajl_val tool, ngx_str_t *name,
    const char **err);

/*
 * A tool parameter mirrored into an "Mcp-Param-<name>" HTTP header
 * (2026-07-28 "x-mcp-header" in the inputSchema): its header name, the
 * chain of "properties" keys leading to it (pointers into the tree) and
 * its type.
 */
#define NGX_HTTP_REVERSE_MCP_PARAM_MAX      16
#define NGX_HTTP_REVERSE_MCP_PARAM_DEPTH    8

#define NGX_HTTP_REVERSE_MCP_PARAM_STRING   0
#define NGX_HTTP_REVERSE_MCP_PARAM_INTEGER  1
#define NGX_HTTP_REVERSE_MCP_PARAM_BOOLEAN  2

typedef struct {
    ngx_str_t                  name;
    const char                *path[NGX_HTTP_REVERSE_MCP_PARAM_DEPTH];
    ngx_uint_t                 depth;
    ngx_uint_t                 type;
} ngx_http_reverse_mcp_param_t;

/*
 * The x-mcp-header annotations of an inputSchema, checked against the
 * spec's constraints (a non-empty token, case-insensitively unique, on a
 * string, integer or boolean parameter reached from the root through
 * "properties" keys only; at most NGX_HTTP_REVERSE_MCP_PARAM_MAX of them,
 * NGX_HTTP_REVERSE_MCP_PARAM_DEPTH deep): NGX_OK with *n of them in
 * params (which may be NULL: only checked), NGX_DECLINED with *err.
 */
ngx_int_t ngx_http_reverse_mcp_param_headers(yajl_val schema,
    ngx_http_reverse_mcp_param_t *params, ngx_uint_t *n, const char **err);

/* nginx log level for an MCP logging level; NGX_LOG_INFO if unknown */
ngx_uint_t ngx_http_reverse_mcp_log_level(ngx_str_t *level);

/*
 * The client capability (NGX_HTTP_REVERSE_MCP_RELAY_*) a server's request
 * needs, with the capability's name in *name; 0: the gateway does not relay the method.
 */
ngx_uint_t ngx_http_reverse_mcp_relay_need(ngx_str_t *method,
    yajl_val params, const char **name);

/* RELAY_* capabilities of a client's "capabilities" object */
ngx_uint_t ngx_http_reverse_mcp_client_caps(yajl_val caps);

/*
 * The gateway id of a relayed request, "rmcp:<pid>:<key>:<seq>", with
 * nginx types (ngx_http_reverse_mcp_relayid.h has the rules)
 */
#define NGX_HTTP_REVERSE_MCP_RELAY_ID_LEN  NGX_HTTP_REVERSE_MCP_RELAYID_MAX

u_char *ngx_http_reverse_mcp_relay_id(u_char *buf, ngx_pid_t pid,
    uint64_t key, uint64_t seq);

/* parse one (the string's value): NGX_OK or NGX_DECLINED */
ngx_int_t ngx_http_reverse_mcp_relay_id_parse(ngx_str_t *id, ngx_pid_t *pid,
    uint64_t *key, uint64_t *seq);


#endif /* _NGX_HTTP_REVERSE_MCP_MCP_H_INCLUDED_ */
