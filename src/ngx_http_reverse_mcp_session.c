/*
 * MCP endpoint sessions in the shared zone.  Work in progress.
 */

#include "ngx_http_reverse_mcp_module.h"
