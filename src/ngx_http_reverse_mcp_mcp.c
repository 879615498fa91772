/*
 * MCP protocol rules (see ngx_http_reverse_mcp_mcp.h).
 */

#include "ngx_http_reverse_mcp_mcp.h"
#include "ngx_http_reverse_mcp_json.h"
#include "ngx_http_reverse_mcp_relayid.h"
#include "ngx_http_reverse_mcp_names.h"


static ngx_int_t ngx_http_reverse_mcp_param_walk(yajl_val node,
    ngx_uint_t reachable, ngx_http_reverse_mcp_param_t *at,
    ngx_http_reverse_mcp_param_t *params, ngx_uint_t *n, ngx_uint_t level,
    const char **err);


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
    yajl_val    v;
    ngx_str_t   type;
    ngx_uint_t  n;

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

    if (ngx_http_reverse_mcp_param_headers(v, NULL, &n, err) != NGX_OK) {
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


ngx_int_t
ngx_http_reverse_mcp_param_headers(yajl_val schema,
    ngx_http_reverse_mcp_param_t *params, ngx_uint_t *n, const char **err)
{
    ngx_http_reverse_mcp_param_t  at, found[NGX_HTTP_REVERSE_MCP_PARAM_MAX];

    *n = 0;
    ngx_memzero(&at, sizeof(ngx_http_reverse_mcp_param_t));

    /* "x-mcp-header" is rare: most schemas need no walk */
    if (schema == NULL) {
        return NGX_OK;
    }

    return ngx_http_reverse_mcp_param_walk(schema, 1, &at,
                                           params ? params : found, n, 0,
                                           err);
}


/*
 * One node of the schema; reachable: reached from the root through
 * "properties" keys only (at->path says how).
 */
static ngx_int_t
ngx_http_reverse_mcp_param_walk(yajl_val node, ngx_uint_t reachable,
    ngx_http_reverse_mcp_param_t *at, ngx_http_reverse_mcp_param_t *params,
    ngx_uint_t *n, ngx_uint_t level, const char **err)
{
    u_char                        c;
    size_t                        i, j;
    yajl_val                      v, props;
    ngx_str_t                     name, type;
    ngx_uint_t                    k;
    ngx_http_reverse_mcp_param_t  *p;

    if (level > 64) {
        *err = "x-mcp-header: the inputSchema is nested too deep";
        return NGX_DECLINED;
    }

    if (YAJL_IS_ARRAY(node)) {
        for (i = 0; i < node->u.array.len; i++) {
            if (ngx_http_reverse_mcp_param_walk(node->u.array.values[i], 0,
                                                at, params, n, level + 1,
                                                err)
                != NGX_OK)
            {
                return NGX_DECLINED;
            }
        }

        return NGX_OK;
    }

    if (!YAJL_IS_OBJECT(node)) {
        return NGX_OK;
    }

    v = ngx_http_reverse_mcp_json_get(node, "x-mcp-header");

    if (v) {
        if (!reachable || at->depth == 0) {
            *err = "x-mcp-header is not on a parameter reached through "
                   "\"properties\" only";
            return NGX_DECLINED;
        }

        if (ngx_http_reverse_mcp_json_get_str(node, "x-mcp-header", &name)
            != NGX_OK
            || name.len == 0)
        {
            *err = "x-mcp-header is not a non-empty string";
            return NGX_DECLINED;
        }

        /* RFC 9110 tchar */
        for (i = 0; i < name.len; i++) {
            c = name.data[i];

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9')
                  || (c && ngx_strchr("!#$%&'*+-.^_`|~", c))))
            {
                *err = "x-mcp-header is not an HTTP token";
                return NGX_DECLINED;
            }
        }

        if (ngx_http_reverse_mcp_json_get_str(node, "type", &type) != NGX_OK
            || !((type.len == 6 && ngx_strncmp(type.data, "string", 6) == 0)
                 || (type.len == 7
                     && ngx_strncmp(type.data, "integer", 7) == 0)
                 || (type.len == 7
                     && ngx_strncmp(type.data, "boolean", 7) == 0)))
        {
            *err = "x-mcp-header is on a parameter whose type is not "
                   "string, integer or boolean";
            return NGX_DECLINED;
        }

        for (k = 0; k < *n; k++) {
            if (params[k].name.len == name.len
                && ngx_strncasecmp(params[k].name.data, name.data, name.len)
                   == 0)
            {
                *err = "x-mcp-header names a header twice";
                return NGX_DECLINED;
            }
        }

        if (*n == NGX_HTTP_REVERSE_MCP_PARAM_MAX) {
            *err = "more than 16 x-mcp-header parameters";
            return NGX_DECLINED;
        }

        p = &params[(*n)++];
        *p = *at;
        p->name = name;
        p->type = (type.data[0] == 's') ? NGX_HTTP_REVERSE_MCP_PARAM_STRING
                  : (type.data[0] == 'i') ? NGX_HTTP_REVERSE_MCP_PARAM_INTEGER
                  : NGX_HTTP_REVERSE_MCP_PARAM_BOOLEAN;
    }

    for (i = 0; i < node->u.object.len; i++) {
        v = node->u.object.values[i];

        if (ngx_strcmp(node->u.object.keys[i], "x-mcp-header") == 0) {
            continue;
        }

        if (ngx_strcmp(node->u.object.keys[i], "properties") != 0
            || !YAJL_IS_OBJECT(v))
        {
            /* items, oneOf, $defs, ...: nothing there may be mirrored */
            if (ngx_http_reverse_mcp_param_walk(v, 0, at, params, n,
                                                level + 1, err)
                != NGX_OK)
            {
                return NGX_DECLINED;
            }

            continue;
        }

        props = v;

        for (j = 0; j < props->u.object.len; j++) {

            if (reachable && at->depth == NGX_HTTP_REVERSE_MCP_PARAM_DEPTH) {
                /* deeper than any header parameter may be */
                reachable = 0;
            }

            if (reachable) {
                at->path[at->depth++] = props->u.object.keys[j];
            }

            if (ngx_http_reverse_mcp_param_walk(props->u.object.values[j],
                                                reachable, at, params, n,
                                                level + 1, err)
                != NGX_OK)
            {
                return NGX_DECLINED;
            }

            if (reachable) {
                at->depth--;
            }
        }
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


ngx_uint_t
ngx_http_reverse_mcp_relay_need(ngx_str_t *method, yajl_val params,
    const char **name)
{
    ngx_str_t  mode;

    if (method->len == sizeof("sampling/createMessage") - 1
        && ngx_strncmp(method->data, "sampling/createMessage", method->len)
           == 0)
    {
        *name = "sampling";
        return NGX_HTTP_REVERSE_MCP_RELAY_SAMPLING;
    }

    if (method->len == sizeof("elicitation/create") - 1
        && ngx_strncmp(method->data, "elicitation/create", method->len) == 0)
    {
        if (ngx_http_reverse_mcp_json_get_str(params, "mode", &mode)
            == NGX_OK
            && mode.len == 3 && ngx_strncmp(mode.data, "url", 3) == 0)
        {
            *name = "elicitation (url mode)";
            return NGX_HTTP_REVERSE_MCP_RELAY_ELICIT_URL;
        }

        *name = "elicitation";
        return NGX_HTTP_REVERSE_MCP_RELAY_ELICIT;
    }

    if (method->len == sizeof("roots/list") - 1
        && ngx_strncmp(method->data, "roots/list", method->len) == 0)
    {
        *name = "roots";
        return NGX_HTTP_REVERSE_MCP_RELAY_ROOTS;
    }

    *name = NULL;
    return 0;
}


ngx_uint_t
ngx_http_reverse_mcp_client_caps(yajl_val caps)
{
    yajl_val    v;
    ngx_uint_t  bits;

    bits = 0;

    if (caps == NULL || !YAJL_IS_OBJECT(caps)) {
        return 0;
    }

    v = ngx_http_reverse_mcp_json_get(caps, "sampling");
    if (v && YAJL_IS_OBJECT(v)) {
        bits |= NGX_HTTP_REVERSE_MCP_RELAY_SAMPLING;
    }

    v = ngx_http_reverse_mcp_json_get(caps, "roots");
    if (v && YAJL_IS_OBJECT(v)) {
        bits |= NGX_HTTP_REVERSE_MCP_RELAY_ROOTS;
    }

    v = ngx_http_reverse_mcp_json_get(caps, "elicitation");

    if (v && YAJL_IS_OBJECT(v)) {
        /* {} is form mode (2025-06-18); 2025-11-25 names the modes */

        if (ngx_http_reverse_mcp_json_get(v, "form")
            || ngx_http_reverse_mcp_json_get(v, "url") == NULL)
        {
            bits |= NGX_HTTP_REVERSE_MCP_RELAY_ELICIT;
        }

        if (ngx_http_reverse_mcp_json_get(v, "url")) {
            bits |= NGX_HTTP_REVERSE_MCP_RELAY_ELICIT_URL;
        }
    }

    return bits;
}


u_char *
ngx_http_reverse_mcp_relay_id(u_char *buf, ngx_pid_t pid, uint64_t key,
    uint64_t seq)
{
    return buf + ngx_http_reverse_mcp_relayid_format(buf, (uint64_t) pid,
                                                      key, seq);
}


ngx_int_t
ngx_http_reverse_mcp_relay_id_parse(ngx_str_t *id, ngx_pid_t *pid,
    uint64_t *key, uint64_t *seq)
{
    uint64_t  p;

    if (ngx_http_reverse_mcp_relayid_parse(id->data, id->len, &p, key, seq)
        != 0)
    {
        return NGX_DECLINED;
    }

    *pid = (ngx_pid_t) p;

    return NGX_OK;
}
