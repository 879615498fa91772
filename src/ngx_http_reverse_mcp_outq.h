/*
 * A bounded queue of outgoing frames for a raw connection (a WebSocket
 * after the upgrade, a mailbox connection): each frame is one allocation,
 * written with c->send_chain and freed as soon as it is sent, so an idle
 * connection holds no output memory.
 */

#ifndef _NGX_HTTP_REVERSE_MCP_OUTQ_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_OUTQ_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct {
    ngx_chain_t               *out;
    ngx_chain_t              **last;
    size_t                     bytes;     /* queued, overhead included */
} ngx_http_reverse_mcp_outq_t;


void ngx_http_reverse_mcp_outq_init(ngx_http_reverse_mcp_outq_t *q);

/*
 * Append a frame of size bytes and return where to write them, or NULL
 * (no memory, or the queue would exceed limit; limit 0: no limit).
 */
u_char *ngx_http_reverse_mcp_outq_add(ngx_http_reverse_mcp_outq_t *q,
    size_t size, size_t limit, ngx_log_t *log);

/* NGX_OK: all sent; NGX_AGAIN: more to send (write event armed); NGX_ERROR */
ngx_int_t ngx_http_reverse_mcp_outq_flush(ngx_http_reverse_mcp_outq_t *q,
    ngx_connection_t *c);

void ngx_http_reverse_mcp_outq_free(ngx_http_reverse_mcp_outq_t *q);


#endif /* _NGX_HTTP_REVERSE_MCP_OUTQ_H_INCLUDED_ */
