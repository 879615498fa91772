/*
 * Small HTTP helpers shared by request handlers (see
 * ngx_http_reverse_mcp_http.h).
 */

#include "ngx_http_reverse_mcp_http.h"


static void ngx_http_reverse_mcp_http_writer(ngx_http_request_t *r);


ngx_int_t
ngx_http_reverse_mcp_http_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    off_t         len;
    size_t        size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? b->file_last - b->file_pos : b->last - b->pos;
    }

    if (len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            size = (size_t) (b->file_last - b->file_pos);

            n = ngx_read_file(b->file, p, size, b->file_pos);

            if (n == NGX_ERROR) {
                return NGX_ERROR;
            }

            if ((size_t) n != size) {
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                              "reverse_mcp: read only %z of %uz bytes of "
                              "the request body from \"%V\"", n, size,
                              &b->file->name);
                return NGX_ERROR;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    body->len = p - body->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_reverse_mcp_http_send(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;

    if (body == NULL || body->len == 0) {
        r->headers_out.content_length_n = 0;
        r->header_only = 1;

        return ngx_http_send_header(r);
    }

    r->headers_out.content_length_n = body->len;

    if (type == NULL) {
        type = "application/json";
    }

    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_reverse_mcp_http_add_header(ngx_http_request_t *r, const char *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;

    return NGX_OK;
}


ngx_table_elt_t *
ngx_http_reverse_mcp_http_header_in(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


ngx_uint_t
ngx_http_reverse_mcp_http_accepts_sse(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == 6
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Accept", 6) == 0
            && ngx_strlcasestrn(h[i].value.data,
                                h[i].value.data + h[i].value.len,
                                (u_char *) "text/event-stream", 17 - 1))
        {
            return 1;
        }
    }

    return 0;
}


ngx_uint_t
ngx_http_reverse_mcp_http_json_content(ngx_http_request_t *r)
{
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    ct = &r->headers_in.content_type->value;

    return ct->len >= 16
           && ngx_strncasecmp(ct->data, (u_char *) "application/json", 16)
              == 0
           && (ct->len == 16 || ct->data[16] == ';' || ct->data[16] == ' '
               || ct->data[16] == '\t');
}


ngx_int_t
ngx_http_reverse_mcp_http_sse_open(ngx_http_request_t *r)
{
    ngx_int_t  rc;
    ngx_str_t  value;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    ngx_str_set(&value, "no-cache");

    if (ngx_http_reverse_mcp_http_add_header(r, "Cache-Control", &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* for proxies in front of us, nginx among them */
    ngx_str_set(&value, "no");

    if (ngx_http_reverse_mcp_http_add_header(r, "X-Accel-Buffering", &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc == NGX_OK ? NGX_ERROR : rc;
    }

    r->write_event_handler = ngx_http_reverse_mcp_http_writer;

    rc = ngx_http_send_special(r, NGX_HTTP_FLUSH);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    return ngx_http_reverse_mcp_http_pending(r);
}


ngx_int_t
ngx_http_reverse_mcp_http_sse_event(ngx_http_request_t *r, const char *name,
    ngx_str_t *data, ngx_uint_t last)
{
    u_char       *p, *s, *end;
    size_t        nlen;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    nlen = name ? ngx_strlen(name) : 0;

    b = ngx_create_temp_buf(r->pool, sizeof("event: \ndata: \n\n") - 1
                                     + nlen + (data ? data->len : 0));
    if (b == NULL) {
        return NGX_ERROR;
    }

    p = b->last;

    if (nlen == 1 && name[0] == ':') {
        p = ngx_cpymem(p, ": ", 2);
        if (data) {
            p = ngx_cpymem(p, data->data, data->len);
        }

        *p++ = '\n';
        *p++ = '\n';
        goto send;
    }

    if (nlen) {
        p = ngx_cpymem(p, "event: ", 7);
        p = ngx_cpymem(p, name, nlen);
        *p++ = '\n';
    }

    p = ngx_cpymem(p, "data: ", 6);

    if (data) {
        end = data->data + data->len;

        for (s = data->data; s < end; s++) {
            *p++ = (*s == '\n' || *s == '\r') ? ' ' : *s;
        }
    }

    *p++ = '\n';
    *p++ = '\n';

send:

    b->last = p;
    b->flush = 1;

    if (last) {
        b->last_buf = (r == r->main) ? 1 : 0;
        b->last_in_chain = 1;
    }

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_output_filter(r, &out);

    if (rc == NGX_ERROR || last) {
        return rc;
    }

    return ngx_http_reverse_mcp_http_pending(r);
}


/* output the client did not take yet: wait for it, within send_timeout */
ngx_int_t
ngx_http_reverse_mcp_http_pending(ngx_http_request_t *r)
{
    ngx_connection_t          *c;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;

    if (!r->buffered && !c->buffered) {
        return NGX_OK;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (!c->write->delayed && !c->write->timer_set) {
        ngx_add_timer(c->write, clcf->send_timeout);
    }

    if (ngx_handle_write_event(c->write, clcf->send_lowat) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_http_writer(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    wev = c->write;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "reverse_mcp: client timed out reading the stream");
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    rc = ngx_http_output_filter(r, NULL);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->buffered || c->buffered) {
        if (!wev->delayed) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_ERROR);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }
}
