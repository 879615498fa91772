/*
 * libFuzzer target for the reverse connector's WebSocket opening
 * handshake (src/ngx_http_reverse_mcp_connector.c,
 * ngx_http_reverse_mcp_connector_handler and its helpers): the Upgrade,
 * Connection, Sec-WebSocket-Version/Key/Protocol checks, the server name
 * from X-MCP-Server-Name or ?server_name=, the token from Authorization
 * or ?token=, the redaction of query tokens from the request line, then,
 * once accepted, whatever the client pipelined after the request and
 * sends later (WebSocket frames).  See http_fixture.h for what is
 * real and what is stubbed.
 *
 * Input: byte 0 = flags (bit 0: our writes block at first; bit 1: recv()
 * says NGX_AGAIN between chunks; bit 2: duplicate servers are rejected),
 * byte 1 = recv() chunk size, then the request (parsed by nginx's
 * parsers; the bytes after its header are pipelined), optionally
 * followed by "\n---\n" and the bytes that arrive later.
 * Checked: an accepted handshake answers 101 with a Sec-WebSocket-Accept
 * header, a refused one sets a 4xx status; no query token of the request
 * is left in $request or $request_uri; nothing leaks, no connection,
 * timer or posted event is left.
 */

#define FUZZ_MODULE_SRC  "../../src/ngx_http_reverse_mcp_connector.c"

#include "http_fixture.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_http_init();
    return 0;
}


/* the query token nginx's $arg_token sees is not in s as an argument */
static void
fuzz_check_redacted(ngx_http_request_t *r, ngx_str_t *s)
{
    u_char     *p, *end;
    ngx_str_t   v, needle;

    if (r->args.len == 0
        || ngx_http_arg(r, (u_char *) "token", 5, &v) != NGX_OK
        || v.len == 0 || (v.len == 3 && ngx_strncmp(v.data, "***", 3) == 0))
    {
        return;
    }

    needle.data = v.data - 6;         /* "token=" as the client wrote it */
    needle.len = v.len + 6;

    end = s->data + s->len;

    /* the arguments: after the first "?" */
    p = ngx_strlchr(s->data, end, '?');

    for ( /* void */ ; p && p < end; p++) {
        p = ngx_strlcasestrn(p, end, needle.data, needle.len - 1);

        if (p == NULL) {
            break;
        }

        if ((p[-1] == '?' || p[-1] == '&')
            && (p + needle.len == end || p[needle.len] == '&'
                || p[needle.len] == ' '))
        {
            fprintf(stderr, "token \"%.*s\" in \"%.*s\"\n",
                    (int) needle.len, needle.data, (int) s->len, s->data);
            ngx_fuzz_check(0, "a query token is left in a logged string");
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char              *copy;
    ngx_int_t            rc;
    ngx_str_t            req, later;
    ngx_fuzz_sink_t      sink;
    ngx_fuzz_input_t     in;
    ngx_fuzz_stream_t    st;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    if (size < 2) {
        return 0;
    }

    copy = ngx_fuzz_copy(data + 2, size - 2);

    in.pos = copy;
    in.end = copy + (size - 2);

    (void) ngx_fuzz_next_record(&in, &req);

    if (ngx_fuzz_next_record(&in, &later) != NGX_OK) {
        later.data = copy;
        later.len = 0;
    }

    ngx_memzero(&st, sizeof(ngx_fuzz_stream_t));
    st.pos = later.data;
    st.end = later.data + later.len;
    st.chunk = data[1];
    st.again = (data[0] >> 1) & 1;

    ngx_memzero(&sink, sizeof(ngx_fuzz_sink_t));
    sink.block = data[0] & 1;

    fuzz_lcf.duplicate = (data[0] >> 2) & 1;
    fuzz_zone_reset();

    r = fuzz_request(req.data, req.len, &st, &sink);

    if (r == NULL) {
        goto done;
    }

    c = r->connection;

    rc = ngx_http_reverse_mcp_connector_handler(r);

    fuzz_check_redacted(r, &r->request_line);
    fuzz_check_redacted(r, &r->unparsed_uri);

    if (rc == NGX_DONE) {
        ngx_fuzz_check(r->headers_out.status == NGX_HTTP_SWITCHING_PROTOCOLS,
                       "accepted without 101");
        fuzz_drive(c, &st, &sink);
        fuzz_finish(r, c, &sink);

    } else {
        ngx_fuzz_check(rc == NGX_HTTP_INTERNAL_SERVER_ERROR
                       || (r->headers_out.status >= 400
                           && r->headers_out.status < 500),
                       "refused without a 4xx status");
        fuzz_close(r, c);
    }

done:

    ngx_fuzz_run_posted();
    ngx_fuzz_check_clean();

    free(copy);

    return 0;
}
