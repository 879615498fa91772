/*
 * libFuzzer target for the JSON-RPC / MCP messages a reverse server sends
 * (src/ngx_http_reverse_mcp_connector.c: handle_frame, handle_message,
 * responses to initialize and tools/list with cursors, registration in
 * the registry, ping and other requests, notifications (list_changed,
 * logging, progress routed to calls), results and errors of calls the
 * gateway made, batches, newline-delimited messages, garbage), on a
 * connection accepted by the real handshake (server "s2", see
 * http_fixture.h), interleaved with what the gateway does on its own:
 * calls from agents, their cancellation, the ping and protocol timers,
 * a socket that stops taking data.
 *
 * Input: byte 0 = flags (bit 0: our writes block at first), then records
 * separated by "\n---\n", each one action:
 *   T<text>     a text frame from the server (masked, as clients must)
 *   B<bytes>    a binary frame
 *   F<bytes>    raw bytes on the socket (frames of any kind, fragments)
 *   C<method>\n<params>   the gateway calls the server (progress token
 *               "rmcp-fuzz-N" when params mention "progressToken")
 *   X           the oldest call in flight is cancelled by its caller
 *   P / H       the ping timer / the handshake or tools/list timer fires
 *   W / w       the socket takes data again / stops taking data
 * Checked: each call ends exactly once (done) unless cancelled, never
 * after; nothing leaks; no connection, timer or posted event is left.
 */

#define FUZZ_MODULE_SRC  "../../src/ngx_http_reverse_mcp_connector.c"

#include "http_fixture.h"


#define FUZZ_CALLS  16


typedef struct {
    ngx_http_reverse_mcp_call_t   call;
    u_char                        token[32];
    ngx_uint_t                    started;
    ngx_uint_t                    done;
    ngx_uint_t                    notified;
    ngx_uint_t                    cancelled;
} fuzz_call_t;


static fuzz_call_t  fuzz_calls[FUZZ_CALLS];
static ngx_uint_t   fuzz_ncalls;


static u_char  fuzz_request_bytes[] =
    "GET /ws HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: mcp\r\n"
    "X-MCP-Server-Name: s2\r\n"
    "\r\n";


static void
fuzz_call_notify(ngx_http_reverse_mcp_call_t *call, ngx_str_t *json)
{
    fuzz_call_t  *fc = (fuzz_call_t *) call;

    ngx_fuzz_check(fc->started && !fc->done && !fc->cancelled,
                   "a notification for a call not in flight");
    ngx_fuzz_check(json->len > 0, "an empty notification");
    (void) ngx_strlchr(json->data, json->data + json->len, 0);

    fc->notified++;
}


static void
fuzz_call_done(ngx_http_reverse_mcp_call_t *call, ngx_uint_t is_error,
    ngx_str_t *json)
{
    fuzz_call_t  *fc = (fuzz_call_t *) call;

    ngx_fuzz_check(!fc->done, "a call ended twice");
    ngx_fuzz_check(!fc->cancelled, "a cancelled call ended");
    ngx_fuzz_check(json->len > 0, "an empty result");
    (void) ngx_strlchr(json->data, json->data + json->len, 0);

    fc->done = 1;
}


/* a client frame with the mask key 0: the payload is sent as it is */
static u_char *
fuzz_frame(int opcode, ngx_str_t *payload, size_t *len)
{
    u_char  *buf, *p;

    buf = malloc(payload->len + 14);
    ngx_fuzz_check(buf != NULL, "malloc");

    static u_char  key[4];

    p = buf + ngx_http_reverse_mcp_ws_frame_header(buf, opcode, payload->len,
                                                   key);

    if (payload->len) {
        p = ngx_cpymem(p, payload->data, payload->len);
    }

    *len = p - buf;

    return buf;
}


static void
fuzz_feed(ngx_connection_t *c, ngx_fuzz_stream_t *st, u_char *data,
    size_t len)
{
    ngx_uint_t  n;

    st->pos = data;
    st->end = data + len;

    for (n = 0; n < 1000 && !fuzz_done() && st->pos < st->end; n++) {
        c->read->handler(c->read);
        ngx_fuzz_run_posted();
    }

}


static void
fuzz_call(ngx_http_reverse_mcp_conn_t *ctx, ngx_str_t *rec)
{
    u_char       *nl;
    ngx_int_t     rc;
    fuzz_call_t  *fc;

    if (fuzz_ncalls == FUZZ_CALLS) {
        return;
    }

    fc = &fuzz_calls[fuzz_ncalls];
    ngx_memzero(fc, sizeof(fuzz_call_t));

    nl = ngx_strlchr(rec->data, rec->data + rec->len, '\n');

    fc->call.method.data = rec->data;
    fc->call.method.len = nl ? (size_t) (nl - rec->data) : rec->len;

    if (nl) {
        fc->call.params.data = nl + 1;
        fc->call.params.len = rec->data + rec->len - (nl + 1);
    }

    if (fc->call.params.len
        && ngx_strnstr(fc->call.params.data, "progressToken",
                       fc->call.params.len))
    {
        fc->call.progress_token.data = fc->token;
        fc->call.progress_token.len = ngx_sprintf(fc->token,
                                                  "\"rmcp-fuzz-%ui\"",
                                                  fuzz_ncalls)
                                      - fc->token;
    }

    ngx_str_set(&fc->call.agent, "a");
    ngx_str_set(&fc->call.server, "s2");
    fc->call.notify = fuzz_call_notify;
    fc->call.done = fuzz_call_done;
    fc->call.log = &ngx_fuzz_log;
    fc->call.owner_pid = ngx_pid;
    fc->call.conn_id = ctx->conn_id;
    fc->call.timeout = (fuzz_ncalls & 1) ? 100 : 0;

    fuzz_ncalls++;

    rc = ngx_http_reverse_mcp_connector_call(ctx->conn_id, &fc->call);

    if (rc == NGX_OK) {
        fc->started = 1;

    } else {
        ngx_fuzz_check(!fc->done, "a refused call ended");
    }

    ngx_fuzz_run_posted();
}


static void
fuzz_cancel(void)
{
    ngx_uint_t  i;

    for (i = 0; i < fuzz_ncalls; i++) {
        if (fuzz_calls[i].started && !fuzz_calls[i].done
            && !fuzz_calls[i].cancelled)
        {
            fuzz_calls[i].cancelled = 1;
            ngx_http_reverse_mcp_connector_cancel(&fuzz_calls[i].call,
                                                  "the caller cancelled");
            ngx_fuzz_run_posted();
            return;
        }
    }
}


static void
fuzz_fire(ngx_event_t *ev)
{
    if (!ev->timer_set) {
        return;
    }

    ngx_del_timer(ev);
    ev->timedout = 1;
    ev->handler(ev);
    ngx_fuzz_run_posted();
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
    u_char                       *copy, *frame;
    size_t                        len;
    ngx_int_t                     rc;
    ngx_str_t                     rec, payload;
    ngx_uint_t                    i;
    ngx_fuzz_sink_t               sink;
    ngx_fuzz_input_t              in;
    ngx_fuzz_stream_t             st;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_reverse_mcp_conn_t  *ctx;

    if (size < 1) {
        return 0;
    }

    copy = ngx_fuzz_copy(data + 1, size - 1);

    in.pos = copy;
    in.end = copy + (size - 1);

    ngx_memzero(&st, sizeof(ngx_fuzz_stream_t));
    st.pos = copy;
    st.end = copy;
    st.open = 1;            /* no EOF until the end */

    ngx_memzero(&sink, sizeof(ngx_fuzz_sink_t));
    sink.block = data[0] & 1;

    fuzz_ncalls = 0;
    fuzz_zone_reset();

    r = fuzz_request(fuzz_request_bytes, sizeof(fuzz_request_bytes) - 1, &st,
                     &sink);
    ngx_fuzz_check(r != NULL, "the fixed request does not parse");

    c = r->connection;

    rc = ngx_http_reverse_mcp_connector_handler(r);
    ngx_fuzz_check(rc == NGX_DONE, "the fixed handshake is refused");

    ctx = ngx_http_get_module_ctx(r, ngx_http_reverse_mcp_module);
    ngx_fuzz_check(ctx != NULL, "no connector context");

    while (!fuzz_done() && ngx_fuzz_next_record(&in, &rec) == NGX_OK) {

        if (rec.len == 0) {
            continue;
        }

        payload.data = rec.data + 1;
        payload.len = rec.len - 1;

        switch (rec.data[0]) {

        case 'T':
        case 'B':
            frame = fuzz_frame(rec.data[0] == 'T'
                               ? NGX_HTTP_REVERSE_MCP_WS_OP_TEXT
                               : NGX_HTTP_REVERSE_MCP_WS_OP_BINARY,
                               &payload, &len);
            fuzz_feed(c, &st, frame, len);
            free(frame);
            break;

        case 'F':
            fuzz_feed(c, &st, payload.data, payload.len);
            break;

        case 'C':
            fuzz_call(ctx, &payload);
            break;

        case 'X':
            fuzz_cancel();
            break;

        case 'P':
            fuzz_fire(&ctx->ping_ev);
            break;

        case 'H':
            fuzz_fire(&ctx->timer_ev);
            break;

        case 'W':
            sink.block = 0;
            c->write->handler(c->write);
            ngx_fuzz_run_posted();
            break;

        case 'w':
            sink.block = 1;
            break;

        default:
            break;
        }
    }

    st.pos = st.end;
    st.open = 0;

    fuzz_finish(r, c, &sink);

    for (i = 0; i < fuzz_ncalls; i++) {
        ngx_fuzz_check(!fuzz_calls[i].started || fuzz_calls[i].done
                       || fuzz_calls[i].cancelled, "a call never ended");
    }

    ngx_fuzz_check_clean();

    free(copy);

    return 0;
}
