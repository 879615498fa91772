/*
 * A request handler of the module in a fake worker, for the handshake,
 * rpc_in and endpoint fuzz targets.  The target defines FUZZ_MODULE_SRC
 * (the module .c file under test, included here so its static functions
 * are reachable) before including this file.
 *
 * What is real: the module file under test and every other module file
 * (linked from mod.a: the registry and sessions in a shared zone, a slab
 * pool in malloc'ed memory, fresh for every input; calls; HTTP helpers),
 * nginx's request line and header parsers (the request is parsed from
 * bytes as nginx would), ngx_http_send_header() and
 * ngx_http_output_filter() down to the top header and body filters.
 * What is stubbed: the filters themselves (the bytes are read and
 * dropped; a second header is an error), and, through the linker's
 * --wrap (Makefile), ngx_http_finalize_request (recorded; the request is
 * freed at the end as nginx would free it), ngx_http_run_posted_requests,
 * ngx_http_discard_request_body, ngx_http_read_client_request_body (the
 * body is what follows the header, up to Content-Length) and
 * ngx_http_complex_value (the agent name "a").
 *
 * Configuration: agent "a" with servers "s1" (token "secret"), "s2"
 * (no auth), "s3" (disabled), max_servers 4, max_tools 16;
 * reverse_mcp_query_token on; max_message 65536; send_queue 65536; the
 * endpoint at location /mcp with the defaults.
 */

#ifndef _HTTP_FIXTURE_H_INCLUDED_
#define _HTTP_FIXTURE_H_INCLUDED_


#include "ngx_fuzz.h"

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_registry.h"
#include "ngx_http_reverse_mcp_call.h"

#include <openssl/sha.h>


#define FUZZ_ZONE_SIZE  (1024 * 1024)


static ngx_uint_t  fuzz_finalized;
static ngx_uint_t  fuzz_request_freed;
static ngx_uint_t  fuzz_conn_closed;
static ngx_int_t   fuzz_finalized_rc;
static ngx_uint_t  fuzz_headers_sent;


static ngx_int_t
fuzz_read_chain(ngx_chain_t *in)
{
    volatile u_char  sum;
    u_char          *p;

    sum = 0;

    for ( /* void */ ; in; in = in->next) {
        if (in->buf->pos == NULL || in->buf->in_file) {
            continue;
        }

        for (p = in->buf->pos; p < in->buf->last; p++) {
            sum += *p;
        }

        in->buf->pos = in->buf->last;
    }

    (void) sum;

    return NGX_OK;
}


/* the last header filter: what ngx_http_header_filter() would send */
static ngx_int_t
fuzz_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    fuzz_headers_sent++;
    r->header_sent = 1;

    ngx_fuzz_check(r->headers_out.status >= 100
                   && r->headers_out.status < 600, "no response status");

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        ngx_fuzz_check(ngx_strlchr(h[i].value.data,
                                   h[i].value.data + h[i].value.len, '\n')
                       == NULL, "a newline in a response header");
    }

    return NGX_OK;
}


static ngx_int_t
fuzz_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_fuzz_check(r->header_sent, "a body before the header");

    return fuzz_read_chain(in);
}


void __wrap_ngx_http_free_request(ngx_http_request_t *r, ngx_int_t rc);
void __wrap_ngx_http_close_connection(ngx_connection_t *c);
void __wrap_ngx_http_finalize_request(ngx_http_request_t *r, ngx_int_t rc);
void __wrap_ngx_http_run_posted_requests(ngx_connection_t *c);
ngx_int_t __wrap_ngx_http_discard_request_body(ngx_http_request_t *r);
ngx_int_t __wrap_ngx_http_read_client_request_body(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt post_handler);
ngx_int_t __wrap_ngx_http_complex_value(ngx_http_request_t *r,
    ngx_http_complex_value_t *val, ngx_str_t *value);


/* ngx_http_free_request(): cleanups, then the request pool */
void
__wrap_ngx_http_free_request(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_pool_t          *pool;
    ngx_http_cleanup_t  *cln;

    ngx_fuzz_check(!fuzz_request_freed, "a request freed twice");

    cln = r->cleanup;
    r->cleanup = NULL;

    while (cln) {
        if (cln->handler) {
            cln->handler(cln->data);
        }

        cln = cln->next;
    }

    r->connection->destroyed = 1;

    pool = r->pool;
    r->pool = NULL;
    ngx_destroy_pool(pool);

    fuzz_request_freed = 1;
}


/* ngx_http_close_connection() */
void
__wrap_ngx_http_close_connection(ngx_connection_t *c)
{
    ngx_pool_t  *pool;

    ngx_fuzz_check(!fuzz_conn_closed, "a connection closed twice");

    c->destroyed = 1;
    pool = c->pool;

    ngx_close_connection(c);
    ngx_destroy_pool(pool);

    fuzz_conn_closed = 1;
}


void
__wrap_ngx_http_finalize_request(ngx_http_request_t *r, ngx_int_t rc)
{
    if (rc == NGX_DONE) {
        /* the handler keeps the request: nginx only drops a reference */
        return;
    }

    fuzz_finalized_rc = rc;

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE && rc != NGX_HTTP_CLOSE
        && !r->header_sent)
    {
        /* nginx would send its error page */
        r->headers_out.status = rc;
        (void) ngx_http_send_header(r);
    }

    fuzz_finalized++;
}


void
__wrap_ngx_http_run_posted_requests(ngx_connection_t *c)
{
}


ngx_int_t
__wrap_ngx_http_discard_request_body(ngx_http_request_t *r)
{
    r->discard_body = 1;
    return NGX_OK;
}


/* the body: what follows the header, up to Content-Length */
ngx_int_t
__wrap_ngx_http_read_client_request_body(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt post_handler)
{
    size_t                     len;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_http_request_body_t   *rb;

    ngx_fuzz_check(r->request_body == NULL && !r->discard_body,
                   "the body is read twice");

    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    ngx_fuzz_check(rb != NULL, "request body");
    r->request_body = rb;

    len = r->header_in->last - r->header_in->pos;

    if (r->headers_in.content_length_n >= 0
        && (off_t) len > r->headers_in.content_length_n)
    {
        len = (size_t) r->headers_in.content_length_n;
    }

    if (len) {
        /* a copy of its own size: reads past the body are caught */
        b = ngx_create_temp_buf(r->pool, len);
        cl = ngx_alloc_chain_link(r->pool);
        ngx_fuzz_check(b != NULL && cl != NULL, "body buffer");

        b->last = ngx_cpymem(b->pos, r->header_in->pos, len);
        b->last_buf = 1;
        r->header_in->pos += len;

        cl->buf = b;
        cl->next = NULL;
        rb->bufs = cl;
    }

    r->main->count++;

    post_handler(r);

    return NGX_OK;
}


ngx_int_t
__wrap_ngx_http_complex_value(ngx_http_request_t *r,
    ngx_http_complex_value_t *val, ngx_str_t *value)
{
    ngx_str_set(value, "a");
    return NGX_OK;
}


#include FUZZ_MODULE_SRC


static ngx_http_reverse_mcp_main_conf_t   fuzz_mcf;
static ngx_http_reverse_mcp_loc_conf_t    fuzz_lcf;
static ngx_http_core_loc_conf_t           fuzz_clcf;
static ngx_http_complex_value_t           fuzz_cv;
static ngx_shm_zone_t                     fuzz_zone;
static ngx_http_reverse_mcp_agent_conf_t *fuzz_acf;
static void                              *fuzz_main_conf[4];
static void                            ***fuzz_conf_ctx[1];
static ngx_http_conf_ctx_t                fuzz_http_ctx;
static void                              *fuzz_loc_conf[4];


static void
fuzz_add_server(ngx_http_reverse_mcp_agent_conf_t *acf, const char *name,
    const char *token, ngx_uint_t disabled)
{
    ngx_http_reverse_mcp_server_conf_t  *scf;

    scf = ngx_array_push(&acf->servers);
    ngx_fuzz_check(scf != NULL, "server conf");
    ngx_memzero(scf, sizeof(ngx_http_reverse_mcp_server_conf_t));

    scf->name.data = (u_char *) name;
    scf->name.len = ngx_strlen(name);
    scf->disabled = disabled;

    if (token) {
        (void) SHA256((u_char *) token, ngx_strlen(token), scf->token_sha256);

    } else {
        scf->no_auth = 1;
    }
}


/* a fresh slab pool in zone memory: what nginx does for a new zone */
static void
fuzz_shm_reset(ngx_shm_zone_t *zone)
{
    u_char           *mem;
    ngx_slab_pool_t  *sp;

    mem = zone->shm.addr;

    ngx_memzero(mem, sizeof(ngx_slab_pool_t));

    sp = (ngx_slab_pool_t *) mem;
    sp->end = mem + zone->shm.size;
    sp->min_shift = 3;
    sp->addr = mem;

    ngx_fuzz_check(ngx_shmtx_create(&sp->mutex, &sp->lock, NULL) == NGX_OK,
                   "shmtx");
    ngx_slab_init(sp);
}


static void
fuzz_shm_zone(ngx_shm_zone_t *zone, const char *name, size_t size)
{
    zone->shm.addr = ngx_memalign(ngx_pagesize, size, &ngx_fuzz_log);
    ngx_fuzz_check(zone->shm.addr != NULL, "zone memory");

    zone->shm.name.data = (u_char *) name;
    zone->shm.name.len = ngx_strlen(name);
    zone->shm.size = size;
    zone->shm.log = &ngx_fuzz_log;

    zone->data = ngx_pcalloc(ngx_fuzz_cycle.pool, 64);
    ngx_fuzz_check(zone->data != NULL, "zone ctx");
}


/* a fresh registry and session zone */
static void
fuzz_zone_reset(void)
{
    fuzz_shm_reset(&fuzz_zone);

    ngx_fuzz_check(ngx_http_reverse_mcp_registry_init_zone(&fuzz_zone, NULL)
                   == NGX_OK, "registry zone");
}


/* server "s2" of agent "a" with the tools echo and add */
static void
fuzz_register_server(void)
{
    const char                         *reason;
    ngx_array_t                         tools;
    ngx_http_reverse_mcp_tool_t        *t;
    ngx_http_reverse_mcp_reg_entry_t    e;

    ngx_fuzz_check(ngx_array_init(&tools, ngx_fuzz_cycle.pool, 2,
                                  sizeof(ngx_http_reverse_mcp_tool_t))
                   == NGX_OK, "tools");

    t = ngx_array_push_n(&tools, 2);
    ngx_fuzz_check(t != NULL, "tools");

    ngx_str_set(&t[0].name, "echo");
    ngx_str_set(&t[0].json, "\"description\":\"Echo a text\","
                "\"inputSchema\":{\"type\":\"object\",\"properties\":"
                "{\"text\":{\"type\":\"string\"}}}");
    ngx_str_set(&t[1].name, "add");
    ngx_str_set(&t[1].json, "\"inputSchema\":{\"type\":\"object\"}");

    ngx_memzero(&e, sizeof(ngx_http_reverse_mcp_reg_entry_t));
    ngx_str_set(&e.agent, "a");
    ngx_str_set(&e.server, "s2");
    e.conn_id = 1000;
    e.connected_at = ngx_time();
    ngx_str_set(&e.protocol_version, "2025-06-18");
    ngx_str_set(&e.server_info, "{\"name\":\"demo\",\"version\":\"1\"}");
    ngx_str_set(&e.capabilities, "{\"tools\":{},\"resources\":{},"
                "\"prompts\":{},\"logging\":{},\"completions\":{}}");
    e.tools = &tools;
    e.max_servers = 4;
    e.max_tools = 16;

    reason = "";

    ngx_fuzz_check(ngx_http_reverse_mcp_registry_put(&fuzz_zone, &e,
                                                     &ngx_fuzz_log, &reason)
                   == NGX_OK, "registry_put");
}


static void
fuzz_http_init(void)
{
    ngx_http_reverse_mcp_agent_conf_t  *acf;

    ngx_fuzz_init();

    /* the module's configuration */

    ngx_http_reverse_mcp_module.ctx_index = 1;
    ngx_http_core_module.ctx_index = 0;
    ngx_http_max_module = 4;

    ngx_fuzz_check(ngx_array_init(&fuzz_mcf.agents, ngx_fuzz_cycle.pool, 1,
                                  sizeof(ngx_http_reverse_mcp_agent_conf_t))
                   == NGX_OK, "agents");

    acf = ngx_array_push(&fuzz_mcf.agents);
    ngx_fuzz_check(acf != NULL, "agent");
    ngx_memzero(acf, sizeof(ngx_http_reverse_mcp_agent_conf_t));
    ngx_str_set(&acf->name, "a");
    acf->max_servers = 4;
    acf->max_tools = 16;
    fuzz_acf = acf;

    ngx_fuzz_check(ngx_array_init(&acf->servers, ngx_fuzz_cycle.pool, 4,
                                  sizeof(ngx_http_reverse_mcp_server_conf_t))
                   == NGX_OK, "servers");

    fuzz_add_server(acf, "s1", "secret", 0);
    fuzz_add_server(acf, "s2", NULL, 0);
    fuzz_add_server(acf, "s3", "secret", 1);

    fuzz_lcf.connector = &fuzz_cv;
    fuzz_lcf.query_token = 1;
    fuzz_lcf.duplicate = NGX_HTTP_REVERSE_MCP_DUP_REPLACE;
    fuzz_lcf.handshake_timeout = 10000;
    fuzz_lcf.call_timeout = 30000;
    fuzz_lcf.ping_interval = 30000;
    fuzz_lcf.ping_timeout = 10000;
    fuzz_lcf.max_message = 65536;
    fuzz_lcf.send_queue = 65536;

    fuzz_lcf.endpoint = &fuzz_cv;
    ngx_str_set(&fuzz_lcf.tool_separator, "__");
    fuzz_lcf.session_timeout = 3600000;
    fuzz_lcf.endpoint_tokens = NULL;
    fuzz_lcf.allowed_origins = NULL;
    fuzz_lcf.page_size = 2;
    fuzz_lcf.max_sessions = 8;

    fuzz_clcf.send_timeout = 60000;
    ngx_str_set(&fuzz_clcf.name, "/mcp");

    ngx_http_top_header_filter = fuzz_header_filter;
    ngx_http_top_body_filter = fuzz_body_filter;

    fuzz_main_conf[1] = &fuzz_mcf;

    /* ngx_http_cycle_get_module_main_conf(ngx_cycle, ...) */
    ngx_http_module.index = 0;
    fuzz_http_ctx.main_conf = fuzz_main_conf;
    fuzz_http_ctx.loc_conf = fuzz_loc_conf;
    fuzz_conf_ctx[0] = (void ***) &fuzz_http_ctx;
    ngx_fuzz_cycle.conf_ctx = fuzz_conf_ctx;
    fuzz_loc_conf[0] = &fuzz_clcf;
    fuzz_loc_conf[1] = &fuzz_lcf;

    /* the registry zone */

    fuzz_shm_zone(&fuzz_zone, "fuzz", FUZZ_ZONE_SIZE);
    fuzz_mcf.shm_zone = &fuzz_zone;
}


/* ngx_http_request_handler(): events of the connection go to r */
static void
fuzz_request_handler(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    c = ev->data;
    r = c->data;

    if (ev->write) {
        r->write_event_handler(r);

    } else {
        r->read_event_handler(r);
    }
}


static void
fuzz_request_noop(ngx_http_request_t *r)
{
}


/*
 * A request parsed from bytes by nginx's parsers, as
 * ngx_http_process_request_line() and _headers() leave it; the bytes
 * after the header stay in r->header_in (pipelined).  NULL when nginx
 * would not have passed it to a handler.
 */
static ngx_http_request_t *
fuzz_request(const u_char *data, size_t len, ngx_fuzz_stream_t *in,
    ngx_fuzz_sink_t *out)
{
    u_char              *p;
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_pool_t          *pool;
    ngx_table_elt_t     *h;
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_connection_t  *hc;

    pool = ngx_create_pool(4096, &ngx_fuzz_log);
    ngx_fuzz_check(pool != NULL, "pool");

    fuzz_finalized = 0;
    fuzz_request_freed = 0;
    fuzz_conn_closed = 0;

    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    b = ngx_create_temp_buf(pool, len ? len : 1);
    ngx_fuzz_check(r != NULL && b != NULL, "request");

    b->last = ngx_cpymem(b->pos, data, len);

    c = ngx_fuzz_connection(in, out);
    c->pool = ngx_create_pool(1024, &ngx_fuzz_log);
    ngx_fuzz_check(c->pool != NULL, "connection pool");
    hc = ngx_pcalloc(c->pool, sizeof(ngx_http_connection_t));
    ngx_fuzz_check(hc != NULL, "http connection");

    c->data = r;
    c->read->handler = fuzz_request_handler;
    c->write->handler = fuzz_request_handler;

    r->read_event_handler = fuzz_request_noop;
    r->write_event_handler = fuzz_request_noop;
    r->pool = pool;
    r->connection = c;
    r->http_connection = hc;
    r->main = r;
    r->count = 1;
    r->header_in = b;
    r->main_conf = fuzz_main_conf;
    r->loc_conf = fuzz_loc_conf;
    r->ctx = ngx_pcalloc(pool, sizeof(void *) * ngx_http_max_module);
    r->headers_in.content_length_n = -1;
    r->headers_out.content_length_n = -1;

    ngx_fuzz_check(r->ctx != NULL
                   && ngx_list_init(&r->headers_in.headers, pool, 20,
                                    sizeof(ngx_table_elt_t)) == NGX_OK
                   && ngx_list_init(&r->headers_out.headers, pool, 20,
                                    sizeof(ngx_table_elt_t)) == NGX_OK,
                   "request lists");

    rc = ngx_http_parse_request_line(r, b);

    if (rc != NGX_OK) {
        goto refused;
    }

    r->request_line.data = r->request_start;
    r->request_line.len = r->request_end - r->request_start;
    r->unparsed_uri.data = r->uri_start;
    r->unparsed_uri.len = r->uri_end - r->uri_start;

    r->uri.data = r->uri_start;
    r->uri.len = (r->args_start ? r->args_start - 1 : r->uri_end)
                 - r->uri_start;

    if (r->args_start) {
        r->args.data = r->args_start;
        r->args.len = r->uri_end - r->args_start;
    }

    for ( ;; ) {
        rc = ngx_http_parse_header_line(r, b, 1);

        if (rc == NGX_HTTP_PARSE_HEADER_DONE) {
            break;
        }

        if (rc != NGX_OK) {
            goto refused;
        }

        h = ngx_list_push(&r->headers_in.headers);
        ngx_fuzz_check(h != NULL, "header");

        h->hash = r->header_hash;
        h->key.data = r->header_name_start;
        h->key.len = r->header_name_end - r->header_name_start;
        h->value.data = r->header_start;
        h->value.len = r->header_end - r->header_start;

        h->lowcase_key = ngx_pnalloc(pool, h->key.len ? h->key.len : 1);
        ngx_fuzz_check(h->lowcase_key != NULL, "lowcase key");
        ngx_strlow(h->lowcase_key, h->key.data, h->key.len);

        if (h->key.len == 13
            && ngx_strncmp(h->lowcase_key, "authorization", 13) == 0)
        {
            if (r->headers_in.authorization) {
                goto refused;      /* nginx: "client sent duplicate" */
            }

            r->headers_in.authorization = h;

        } else if (h->key.len == 14
                   && ngx_strncmp(h->lowcase_key, "content-length", 14) == 0)
        {
            r->headers_in.content_length_n = ngx_atoof(h->value.data,
                                                       h->value.len);
            if (r->headers_in.content_length_n == NGX_ERROR) {
                goto refused;
            }

        } else if (h->key.len == 17
                   && ngx_strncmp(h->lowcase_key, "transfer-encoding", 17)
                      == 0)
        {
            r->headers_in.chunked = 1;

        } else if (h->key.len == 12
                   && ngx_strncmp(h->lowcase_key, "content-type", 12) == 0)
        {
            r->headers_in.content_type = h;

        } else if (h->key.len == 4
                   && ngx_strncmp(h->lowcase_key, "host", 4) == 0)
        {
            if (r->headers_in.host) {
                goto refused;      /* nginx: "client sent duplicate" */
            }

            /* ngx_http_validate_host(), roughly: no port, lower case */
            r->headers_in.host = h;
            r->headers_in.server = h->value;

            p = ngx_strlchr(h->value.data, h->value.data + h->value.len,
                            ':');
            if (p) {
                r->headers_in.server.len = p - h->value.data;
            }

            if (r->headers_in.server.len == 0
                || ngx_strlchr(r->headers_in.server.data,
                               r->headers_in.server.data
                               + r->headers_in.server.len, '/'))
            {
                goto refused;
            }
        }
    }

    return r;

refused:

    ngx_destroy_pool(c->pool);
    c->pool = NULL;
    ngx_close_connection(c);
    ngx_destroy_pool(pool);

    return NULL;
}


/*
 * The end of a request's connection, as nginx would end it: a request
 * still attached is freed with its connection (ngx_http_close_request());
 * a connection the handler kept after freeing its request (the upgraded
 * connector) is closed the way a worker shutting down closes it.
 */
static void
fuzz_close(ngx_http_request_t *r, ngx_connection_t *c)
{
    if (!fuzz_request_freed) {
        __wrap_ngx_http_free_request(r, 0);
        __wrap_ngx_http_close_connection(c);
        return;
    }

    if (!fuzz_conn_closed) {
        c->close = 1;
        c->read->handler(c->read);
        ngx_fuzz_run_posted();
    }

    if (!fuzz_conn_closed) {
        __wrap_ngx_http_close_connection(c);
    }
}


static ngx_uint_t
fuzz_done(void)
{
    return fuzz_finalized || fuzz_conn_closed;
}


/*
 * Drive a connection: read events while there is input, posted events
 * after each, write events when the sink opens.
 */
static void
fuzz_drive(ngx_connection_t *c, ngx_fuzz_stream_t *in, ngx_fuzz_sink_t *out)
{
    ngx_uint_t  n;

    for (n = 0; n < 100000 && !fuzz_done() && in->pos < in->end; n++) {
        c->read->handler(c->read);
        ngx_fuzz_run_posted();

        if (!fuzz_done() && out->block && (n & 7) == 7) {
            out->block = 0;
            c->write->handler(c->write);
            ngx_fuzz_run_posted();
        }
    }
}


/* the peer's EOF, every timer, then the end of the connection */
static void
fuzz_finish(ngx_http_request_t *r, ngx_connection_t *c, ngx_fuzz_sink_t *out)
{
    ngx_fuzz_run_posted();

    if (!fuzz_done()) {
        out->block = 0;
        c->write->handler(c->write);
        ngx_fuzz_run_posted();
    }

    if (!fuzz_done()) {
        c->read->handler(c->read);
        ngx_fuzz_run_posted();
    }

    ngx_fuzz_expire_timers();

    fuzz_close(r, c);

    ngx_fuzz_run_posted();
}


#endif /* _HTTP_FIXTURE_H_INCLUDED_ */
