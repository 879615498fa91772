/*
 * The agent-facing MCP endpoint (Streamable HTTP).  Work in progress: the
 * handler is being written; until then the location answers 501.
 */

#include "ngx_http_reverse_mcp_module.h"


ngx_int_t
ngx_http_reverse_mcp_endpoint_handler(ngx_http_request_t *r)
{
    return NGX_HTTP_NOT_IMPLEMENTED;
}
