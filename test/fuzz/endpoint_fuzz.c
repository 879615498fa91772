/*
 * libFuzzer target for the agent-facing MCP endpoint
 * (src/ngx_http_reverse_mcp_endpoint.c): what HTTP callers send to
 * /mcp and /mcp/<server>: the method, Accept, Content-Type, Origin,
 * MCP-Protocol-Version, Mcp-Session-Id, Mcp-Method/Mcp-Name headers, the
 * JSON-RPC body (parse errors, batches, responses, notifications,
 * initialize, tools/list with cursors, tools/call, logging/setLevel,
 * forwarded methods, the stateless 2026-07-28 revision with _meta),
 * DELETE and GET (listen) requests; sessions in the shared zone, the
 * registry holding server "s2" with two tools; calls end with the error
 * of a server that is not connected to this worker (see http_fixture.h).
 *
 * Input: byte 0 = flags (bit 0: our writes block at first), then records
 * separated by "\n---\n", each a whole HTTP request (parsed by nginx's
 * parsers; the body is what follows the header, up to Content-Length).
 * "@SID@" in a record is replaced by the last Mcp-Session-Id the
 * endpoint issued, so that a sequence can use its session.
 * Checked: every request is answered with one status and header (by the
 * endpoint or, for an error code, by nginx), never a body without a
 * header, no newline in a response header; nothing leaks; no connection,
 * timer or posted event is left.
 */

#define FUZZ_MODULE_SRC  "../../src/ngx_http_reverse_mcp_endpoint.c"

#include "http_fixture.h"


static u_char  fuzz_sid[128];
static size_t  fuzz_sid_len;


/* the session id the endpoint issued, if any */
static void
fuzz_note_session(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                return;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash && h[i].key.len == 14
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Mcp-Session-Id",
                               14) == 0
            && h[i].value.len <= sizeof(fuzz_sid))
        {
            ngx_memcpy(fuzz_sid, h[i].value.data, h[i].value.len);
            fuzz_sid_len = h[i].value.len;
        }
    }
}


/* the record with "@SID@" replaced, in malloc'ed memory */
static u_char *
fuzz_expand(ngx_str_t *rec, size_t *len)
{
    u_char  *buf, *p, *s, *end;

    buf = malloc(rec->len * (sizeof(fuzz_sid) / 5 + 1) + 1);
    ngx_fuzz_check(buf != NULL, "malloc");

    p = buf;
    end = rec->data + rec->len;

    for (s = rec->data; s < end; /* void */ ) {
        if (end - s >= 5 && ngx_strncmp(s, "@SID@", 5) == 0) {
            p = ngx_cpymem(p, fuzz_sid, fuzz_sid_len);
            s += 5;
            continue;
        }

        *p++ = *s++;
    }

    *len = p - buf;

    return buf;
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_http_init();
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char              *copy, *req;
    size_t               len;
    ngx_int_t            rc;
    ngx_str_t            rec;
    ngx_uint_t           n;
    ngx_fuzz_sink_t      sink;
    ngx_fuzz_input_t     in;
    ngx_fuzz_stream_t    st;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    if (size < 1) {
        return 0;
    }

    copy = ngx_fuzz_copy(data + 1, size - 1);

    in.pos = copy;
    in.end = copy + (size - 1);

    fuzz_zone_reset();
    fuzz_register_server();
    fuzz_sid_len = 0;

    for (n = 0; n < 8 && ngx_fuzz_next_record(&in, &rec) == NGX_OK; n++) {

        req = fuzz_expand(&rec, &len);

        ngx_memzero(&st, sizeof(ngx_fuzz_stream_t));
        st.pos = req;
        st.end = req;
        st.open = 1;

        ngx_memzero(&sink, sizeof(ngx_fuzz_sink_t));
        sink.block = data[0] & 1;

        fuzz_headers_sent = 0;

        r = fuzz_request(req, len, &st, &sink);

        if (r == NULL) {
            ngx_log_error(NGX_LOG_INFO, &ngx_fuzz_log, 0,
                          "fuzz: request %ui is not valid HTTP", n);
            free(req);
            continue;
        }

        c = r->connection;

        rc = ngx_http_reverse_mcp_endpoint_handler(r);

        /* ngx_http_core_content_phase() */
        __wrap_ngx_http_finalize_request(r, rc);

        ngx_fuzz_run_posted();

        if (!fuzz_finalized && sink.block) {
            sink.block = 0;
            c->write->handler(c->write);
            ngx_fuzz_run_posted();
        }

        /* a call or a stream in flight: its timers, then the client goes */
        ngx_fuzz_expire_timers();

        if (fuzz_headers_sent) {
            fuzz_note_session(r);
        }

        ngx_log_error(NGX_LOG_INFO, &ngx_fuzz_log, 0,
                      "fuzz: request %ui: handler %i, status %ui, "
                      "finalized %ui", n, rc, r->headers_out.status,
                      fuzz_finalized);

        ngx_fuzz_check(!fuzz_finalized || fuzz_headers_sent == 1
                       || fuzz_finalized_rc == NGX_ERROR
                       || fuzz_finalized_rc == NGX_HTTP_CLOSE,
                       "a finalized request without one response header");

        fuzz_close(r, c);
        ngx_fuzz_run_posted();

        free(req);
    }

    ngx_fuzz_expire_timers();
    ngx_fuzz_check_clean();

    free(copy);

    return 0;
}
