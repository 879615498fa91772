/*
 * Small HTTP helpers shared by the request handlers of the module (the MCP
 * endpoint, the chat API and A2A): the request body in one piece, a
 * complete JSON reply, an SSE stream (open, one event, flush within
 * send_timeout), an output header.
 */

#ifndef _NGX_HTTP_REVERSE_MCP_HTTP_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_HTTP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the request body from memory buffers or the temp file (empty: none) */
ngx_int_t ngx_http_reverse_mcp_http_read_body(ngx_http_request_t *r,
    ngx_str_t *body);

/* a complete reply with this content type (NULL: application/json) */
ngx_int_t ngx_http_reverse_mcp_http_send(ngx_http_request_t *r,
    ngx_uint_t status, const char *type, ngx_str_t *body);

ngx_int_t ngx_http_reverse_mcp_http_add_header(ngx_http_request_t *r,
    const char *key, ngx_str_t *value);

/* the first request header of this name (case-insensitive), or NULL */
ngx_table_elt_t *ngx_http_reverse_mcp_http_header_in(ngx_http_request_t *r,
    const char *name, size_t len);

/* 1 if the Accept header names text/event-stream */
ngx_uint_t ngx_http_reverse_mcp_http_accepts_sse(ngx_http_request_t *r);

/* 1 if Content-Type is application/json (parameters allowed) */
ngx_uint_t ngx_http_reverse_mcp_http_json_content(ngx_http_request_t *r);

/*
 * 200 text/event-stream headers, sent and flushed; the write handler then
 * flushes slow clients within send_timeout.  NGX_OK, NGX_ERROR or an HTTP
 * status.
 */
ngx_int_t ngx_http_reverse_mcp_http_sse_open(ngx_http_request_t *r);

/*
 * One event "event: NAME\ndata: DATA\n\n" (name NULL: no event line;
 * line breaks in data become spaces: data is JSON), flushed; last: the end
 * of the response.  A comment when name is ":" (keep-alive).
 */
ngx_int_t ngx_http_reverse_mcp_http_sse_event(ngx_http_request_t *r,
    const char *name, ngx_str_t *data, ngx_uint_t last);

/* output the client did not take yet: wait for it, within send_timeout */
ngx_int_t ngx_http_reverse_mcp_http_pending(ngx_http_request_t *r);


#endif /* _NGX_HTTP_REVERSE_MCP_HTTP_H_INCLUDED_ */
