/*
 * Outgoing frame queues (see ngx_http_reverse_mcp_outq.h).
 */

#include "ngx_http_reverse_mcp_outq.h"

#include <ngx_event.h>


typedef struct {
    ngx_chain_t                cl;
    ngx_buf_t                  buf;
    size_t                     size;
} ngx_http_reverse_mcp_outq_frame_t;


void
ngx_http_reverse_mcp_outq_init(ngx_http_reverse_mcp_outq_t *q)
{
    q->out = NULL;
    q->last = &q->out;
    q->bytes = 0;
}


u_char *
ngx_http_reverse_mcp_outq_add(ngx_http_reverse_mcp_outq_t *q, size_t size,
    size_t limit, ngx_log_t *log)
{
    u_char                             *p;
    size_t                              total;
    ngx_http_reverse_mcp_outq_frame_t  *f;

    total = sizeof(ngx_http_reverse_mcp_outq_frame_t) + size;

    if (limit && q->bytes + total > limit) {
        return NULL;
    }

    f = ngx_alloc(total, log);
    if (f == NULL) {
        return NULL;
    }

    ngx_memzero(f, sizeof(ngx_http_reverse_mcp_outq_frame_t));

    p = (u_char *) (f + 1);

    f->buf.start = p;
    f->buf.pos = p;
    f->buf.last = p + size;
    f->buf.end = p + size;
    f->buf.memory = 1;
    f->buf.flush = 1;
    f->size = total;

    f->cl.buf = &f->buf;
    f->cl.next = NULL;

    *q->last = &f->cl;
    q->last = &f->cl.next;
    q->bytes += total;

    return p;
}


ngx_int_t
ngx_http_reverse_mcp_outq_flush(ngx_http_reverse_mcp_outq_t *q,
    ngx_connection_t *c)
{
    ngx_chain_t                        *cl;
    ngx_http_reverse_mcp_outq_frame_t  *f;

    /* TLS may hold the tail in its own buffer: flushed with a NULL chain */

    while (q->out || (c->buffered & NGX_LOWLEVEL_BUFFERED)) {

        cl = c->send_chain(c, q->out, 0);

        if (cl == NGX_CHAIN_ERROR) {
            return NGX_ERROR;
        }

        while (q->out && ngx_buf_size(q->out->buf) == 0) {
            f = (ngx_http_reverse_mcp_outq_frame_t *) q->out;
            q->out = q->out->next;
            q->bytes -= f->size;
            ngx_free(f);
        }

        if (q->out || (c->buffered & NGX_LOWLEVEL_BUFFERED)) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                return NGX_ERROR;
            }

            return NGX_AGAIN;
        }
    }

    q->last = &q->out;

    return NGX_OK;
}


void
ngx_http_reverse_mcp_outq_free(ngx_http_reverse_mcp_outq_t *q)
{
    ngx_chain_t  *cl, *next;

    for (cl = q->out; cl; cl = next) {
        next = cl->next;
        ngx_free(cl);
    }

    ngx_http_reverse_mcp_outq_init(q);
}
