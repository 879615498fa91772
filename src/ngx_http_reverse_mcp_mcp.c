/*
 * MCP protocol rules (see ngx_http_reverse_mcp_mcp.h).
 */

#include "ngx_http_reverse_mcp_mcp.h"
#include "ngx_http_reverse_mcp_json.h"
#include "ngx_http_reverse_mcp_names.h"


static ngx_str_t  ngx_http_reverse_mcp_versions[] = {
    ngx_string("2024-11-05"),
    ngx_string("2025-03-26"),
    ngx_string("2025-06-18"),
    ngx_string("2025-11-25"),
    ngx_null_string
};


ngx_int_t
ngx_http_reverse_mcp_version_supported(ngx_str_t *version)
{
    ngx_str_t  *v;

    for (v = ngx_http_reverse_mcp_versions; v->len; v++) {
        if (v->len == version->len
            && ngx_strncmp(v->data, version->data, v->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_http_reverse_mcp_tool_check(yajl_val tool, ngx_str_t *name,
    const char **err)
{
    yajl_val   v;
    ngx_str_t  type;

    if (tool == NULL || !YAJL_IS_OBJECT(tool)) {
        *err = "tool is not an object";
        return NGX_DECLINED;
    }

    if (ngx_http_reverse_mcp_json_get_str(tool, "name", name) != NGX_OK) {
        *err = "tool has no string \"name\"";
        return NGX_DECLINED;
    }

    if (!ngx_http_reverse_mcp_names_tool_valid(name->data, name->len)) {
        *err = (name->len == 0
                || name->len > NGX_HTTP_REVERSE_MCP_NAMES_TOOL_MAX)
               ? "tool name must be 1-128 characters"
               : "tool name has characters outside [A-Za-z0-9_.-]";
        return NGX_DECLINED;
    }

    v = ngx_http_reverse_mcp_json_get(tool, "inputSchema");

    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        *err = "tool \"inputSchema\" is missing or not an object";
        return NGX_DECLINED;
    }

    if (ngx_http_reverse_mcp_json_get(v, "type")
        && (ngx_http_reverse_mcp_json_get_str(v, "type", &type) != NGX_OK
            || type.len != 6 || ngx_strncmp(type.data, "object", 6) != 0))
    {
        *err = "tool \"inputSchema\" type is not \"object\"";
        return NGX_DECLINED;
    }

    v = ngx_http_reverse_mcp_json_get(tool, "description");

    if (v && !YAJL_IS_STRING(v)) {
        *err = "tool \"description\" is not a string";
        return NGX_DECLINED;
    }

    v = ngx_http_reverse_mcp_json_get(tool, "title");

    if (v && !YAJL_IS_STRING(v)) {
        *err = "tool \"title\" is not a string";
        return NGX_DECLINED;
    }

    v = ngx_http_reverse_mcp_json_get(tool, "outputSchema");

    if (v && !YAJL_IS_OBJECT(v)) {
        *err = "tool \"outputSchema\" is not an object";
        return NGX_DECLINED;
    }

    v = ngx_http_reverse_mcp_json_get(tool, "annotations");

    if (v && !YAJL_IS_OBJECT(v)) {
        *err = "tool \"annotations\" is not an object";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_uint_t
ngx_http_reverse_mcp_log_level(ngx_str_t *level)
{
    ngx_uint_t  i;

    static struct {
        ngx_str_t   name;
        ngx_uint_t  level;
    } levels[] = {
        { ngx_string("debug"), NGX_LOG_DEBUG },
        { ngx_string("info"), NGX_LOG_INFO },
        { ngx_string("notice"), NGX_LOG_NOTICE },
        { ngx_string("warning"), NGX_LOG_WARN },
        { ngx_string("error"), NGX_LOG_ERR },
        { ngx_string("critical"), NGX_LOG_CRIT },
        { ngx_string("alert"), NGX_LOG_ALERT },
        { ngx_string("emergency"), NGX_LOG_EMERG }
    };

    for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (levels[i].name.len == level->len
            && ngx_strncmp(levels[i].name.data, level->data, level->len) == 0)
        {
            return levels[i].level;
        }
    }

    return NGX_LOG_INFO;
}
