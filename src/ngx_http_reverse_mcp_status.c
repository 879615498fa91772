/*
 * The JSON status page ("reverse_mcp_status"): configured agents with
 * their connected servers, owning worker pids, connected-since times,
 * tools with their schemas, zone usage and counters.  "?agent=NAME"
 * narrows it to one agent.  Read-only; GET and HEAD only.
 */

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_registry.h"


ngx_int_t
ngx_http_reverse_mcp_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                             rc;
    ngx_str_t                             json, filter, arg;
    ngx_buf_t                            *b;
    ngx_uint_t                            i;
    ngx_chain_t                           out;
    ngx_array_t                          *agents;
    ngx_table_elt_t                      *cc;
    ngx_http_reverse_mcp_agent_conf_t    *acf;
    ngx_http_reverse_mcp_main_conf_t     *mcf;
    ngx_http_reverse_mcp_render_agent_t  *ra;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);

    ngx_str_null(&filter);

    if (ngx_http_arg(r, (u_char *) "agent", 5, &arg) == NGX_OK) {
        filter = arg;

        if (ngx_http_reverse_mcp_find_agent(mcf, &filter) == NULL) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "reverse_mcp: status for unknown agent \"%V\"",
                          &filter);
            return NGX_HTTP_NOT_FOUND;
        }
    }

    agents = ngx_array_create(r->pool, mcf->agents.nelts + 1,
                              sizeof(ngx_http_reverse_mcp_render_agent_t));
    if (agents == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    acf = mcf->agents.elts;

    for (i = 0; i < mcf->agents.nelts; i++) {
        ra = ngx_array_push(agents);
        if (ra == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ra->name = acf[i].name;
        ra->max_servers = acf[i].max_servers;
        ra->max_tools = acf[i].max_tools;
    }

    if (ngx_http_reverse_mcp_registry_render(mcf->shm_zone, r->pool, agents,
                                             &filter, &json)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "reverse_mcp: could not render the status page");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = json.len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    cc = ngx_list_push(&r->headers_out.headers);
    if (cc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cc->hash = 1;
    ngx_str_set(&cc->key, "Cache-Control");
    ngx_str_set(&cc->value, "no-store");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = json.data;
    b->last = json.data + json.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
