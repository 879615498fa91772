/*
 * MCP protocol rules that do not depend on nginx events: supported
 * protocol revisions, validation of a tool definition received from a
 * reverse server, and the mapping of MCP log levels to nginx levels.
 */

#ifndef _NGX_HTTP_REVERSE_MCP_MCP_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_MCP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <yajl/yajl_tree.h>


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

/* nginx log level for an MCP logging level; NGX_LOG_INFO if unknown */
ngx_uint_t ngx_http_reverse_mcp_log_level(ngx_str_t *level);


#endif /* _NGX_HTTP_REVERSE_MCP_MCP_H_INCLUDED_ */
