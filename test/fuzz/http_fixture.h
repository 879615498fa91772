/*
 * The reverse connector (src/ngx_http_reverse_mcp_connector.c) in a fake
 * worker, for the handshake and rpc_in fuzz targets.
 *
 * What is real: the whole connector (handshake checks, the upgraded
 * connection, the frame codec, the MCP client role, calls and their
 * notifications), the registry in a shared zone (a slab pool in malloc'ed
 * memory, fresh for every input), the configuration lookups of the
 * module, nginx's own request line and header parsers (the request is
 * parsed from bytes as nginx would).  What is stubbed: nginx's HTTP
 * output (send_header, output_filter, send_special: the bytes are read
 * and dropped), discard_request_body, finalize_request (recorded; the
 * request is freed at the end as nginx would free it), the agent name
 * (a complex value evaluating to "a").
 *
 * Configuration: agent "a" with servers "s1" (token "secret"), "s2"
 * (no auth), "s3" (disabled), max_servers 4, max_tools 16;
 * reverse_mcp_query_token on; max_message 65536; send_queue 65536.
 */

#ifndef _CONNECTOR_FIXTURE_H_INCLUDED_
#define _CONNECTOR_FIXTURE_H_INCLUDED_


#include "ngx_fuzz.h"

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_registry.h"
#include "ngx_http_reverse_mcp_call.h"

#include <openssl/sha.h>


#define FUZZ_ZONE_SIZE  (1024 * 1024)


static ngx_uint_t  fuzz_finalized;


static ngx_int_t
fuzz_read_chain(ngx_chain_t *in)
{
    volatile u_char  sum;
    u_char          *p;

    sum = 0;

    for ( /* void */ ; in; in = in->next) {
        if (in->buf->pos == NULL) {
            continue;
        }

        for (p = in->buf->pos; p < in->buf->last; p++) {
            sum += *p;
        }
    }

    (void) sum;

    return NGX_OK;
}


static ngx_int_t
fuzz_send_header(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    r->header_sent = 1;

    /* every header we set is readable */
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

        (void) ngx_strlchr(h[i].value.data, h[i].value.data + h[i].value.len,
                           0);
    }

    return NGX_OK;
}


static ngx_int_t
fuzz_output_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    return fuzz_read_chain(in);
}


static ngx_int_t
fuzz_send_special(ngx_http_request_t *r, ngx_uint_t flags)
{
    return NGX_OK;
}


static ngx_int_t
fuzz_discard_request_body(ngx_http_request_t *r)
{
    return NGX_OK;
}


static ngx_int_t
fuzz_complex_value(ngx_http_request_t *r, ngx_http_complex_value_t *val,
    ngx_str_t *value)
{
    ngx_str_set(value, "a");
    return NGX_OK;
}


static void
fuzz_finalize_request(ngx_http_request_t *r, ngx_int_t rc)
{
    fuzz_finalized++;
}


static void
fuzz_run_posted_requests(ngx_connection_t *c)
{
}


#define ngx_http_send_header           fuzz_send_header
#define ngx_http_output_filter         fuzz_output_filter
#define ngx_http_send_special          fuzz_send_special
#define ngx_http_discard_request_body  fuzz_discard_request_body
#define ngx_http_complex_value         fuzz_complex_value
#define ngx_http_finalize_request      fuzz_finalize_request
#define ngx_http_run_posted_requests   fuzz_run_posted_requests

#include "../../src/ngx_http_reverse_mcp_connector.c"

#undef ngx_http_send_header
#undef ngx_http_output_filter
#undef ngx_http_send_special
#undef ngx_http_discard_request_body
#undef ngx_http_complex_value
#undef ngx_http_finalize_request
#undef ngx_http_run_posted_requests


static ngx_http_reverse_mcp_main_conf_t   fuzz_mcf;
static ngx_http_reverse_mcp_loc_conf_t    fuzz_lcf;
static ngx_http_core_loc_conf_t           fuzz_clcf;
static ngx_http_complex_value_t           fuzz_cv;
static ngx_shm_zone_t                     fuzz_zone;
static u_char                            *fuzz_zone_mem;
static void                              *fuzz_main_conf[4];
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


/* a fresh registry zone: what nginx does for a new shared zone */
static void
fuzz_zone_reset(void)
{
    ngx_slab_pool_t  *sp;

    ngx_memzero(fuzz_zone_mem, sizeof(ngx_slab_pool_t));

    sp = (ngx_slab_pool_t *) fuzz_zone_mem;
    sp->end = fuzz_zone_mem + FUZZ_ZONE_SIZE;
    sp->min_shift = 3;
    sp->addr = fuzz_zone_mem;

    ngx_fuzz_check(ngx_shmtx_create(&sp->mutex, &sp->lock, NULL) == NGX_OK,
                   "shmtx");
    ngx_slab_init(sp);

    ngx_fuzz_check(ngx_http_reverse_mcp_registry_init_zone(&fuzz_zone, NULL)
                   == NGX_OK, "registry zone");
}


static void
fuzz_connector_init(void)
{
    void                               *zctx;
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

    fuzz_clcf.send_timeout = 60000;

    fuzz_main_conf[1] = &fuzz_mcf;
    fuzz_loc_conf[0] = &fuzz_clcf;
    fuzz_loc_conf[1] = &fuzz_lcf;

    /* the registry zone */

    fuzz_zone_mem = ngx_memalign(ngx_pagesize, FUZZ_ZONE_SIZE, &ngx_fuzz_log);
    ngx_fuzz_check(fuzz_zone_mem != NULL, "zone memory");

    zctx = ngx_pcalloc(ngx_fuzz_cycle.pool, 64);
    ngx_fuzz_check(zctx != NULL, "zone ctx");

    ngx_str_set(&fuzz_zone.shm.name, "fuzz");
    fuzz_zone.shm.addr = fuzz_zone_mem;
    fuzz_zone.shm.size = FUZZ_ZONE_SIZE;
    fuzz_zone.shm.log = &ngx_fuzz_log;
    fuzz_zone.data = zctx;

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
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_pool_t          *pool;
    ngx_table_elt_t     *h;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    pool = ngx_create_pool(4096, &ngx_fuzz_log);
    ngx_fuzz_check(pool != NULL, "pool");

    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    b = ngx_create_temp_buf(pool, len ? len : 1);
    ngx_fuzz_check(r != NULL && b != NULL, "request");

    b->last = ngx_cpymem(b->pos, data, len);

    c = ngx_fuzz_connection(in, out);
    c->pool = ngx_create_pool(1024, &ngx_fuzz_log);
    ngx_fuzz_check(c->pool != NULL, "connection pool");
    c->data = r;
    c->read->handler = fuzz_request_handler;
    c->write->handler = fuzz_request_handler;

    r->read_event_handler = fuzz_request_noop;
    r->write_event_handler = fuzz_request_noop;
    r->pool = pool;
    r->connection = c;
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


/* as nginx frees a request and closes its connection */
static void
fuzz_request_free(ngx_http_request_t *r)
{
    ngx_pool_t        *pool;
    ngx_connection_t  *c;

    c = r->connection;
    pool = c->pool;

    c->destroyed = 1;

    ngx_destroy_pool(r->pool);        /* the connector's cleanup runs */

    c->pool = NULL;
    ngx_close_connection(c);
    ngx_destroy_pool(pool);
}


/*
 * Drive an accepted connection: read events while there is input, posted
 * events after each, the write handler when the sink opens, and at the
 * end every timer, until the request is finalized.
 */
static void
fuzz_drive(ngx_http_request_t *r, ngx_fuzz_stream_t *in,
    ngx_fuzz_sink_t *out)
{
    ngx_uint_t  n;

    for (n = 0; n < 100000 && !fuzz_finalized && in->pos < in->end; n++) {
        r->read_event_handler(r);
        ngx_fuzz_run_posted();

        if (out->block && (n & 7) == 7) {
            out->block = 0;
            r->write_event_handler(r);
            ngx_fuzz_run_posted();
        }
    }
}


static void
fuzz_finish(ngx_http_request_t *r, ngx_fuzz_sink_t *out)
{
    if (!fuzz_finalized) {
        out->block = 0;
        r->write_event_handler(r);
        ngx_fuzz_run_posted();
    }

    if (!fuzz_finalized) {
        /* the peer's EOF */
        r->read_event_handler(r);
        ngx_fuzz_run_posted();
    }

    ngx_fuzz_expire_timers();

    fuzz_request_free(r);

    ngx_fuzz_run_posted();
}


#endif /* _CONNECTOR_FIXTURE_H_INCLUDED_ */
