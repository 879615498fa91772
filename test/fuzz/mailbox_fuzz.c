/*
 * libFuzzer target for the worker mailboxes
 * (src/ngx_http_reverse_mcp_mailbox.c): the frame decoder on both sides
 * of a cross-worker call.
 *
 *   owner side: the bytes a caller worker writes to this worker's mailbox
 *     socket (a CALL frame: a JSON header line, then params) go through
 *     the real peer read handler; the call it makes is answered by a stub
 *     connector (connector_call's result, then notifications and a result
 *     or error chosen by the input), whose frames the peer writes back;
 *   caller side: the bytes the owner worker writes back (NOTIFY, RESULT,
 *     ERROR frames, or garbage) go through the real client read handler.
 *
 * Input: byte 0 = flags (bit 0: caller side; bits 1-2: connector_call
 * result OK/DECLINED/BUSY/ERROR; bit 3: the peer's writes block at first;
 * bit 4: recv() says NGX_AGAIN between chunks; bit 5: recv() ends with an
 * error instead of EOF), byte 1 = recv() chunk size (0: all at once), then
 * records separated by "\n---\n": the socket bytes, then (owner side) the
 * connector's events: "N<json>" a notification, "R<json>" the result,
 * "E<json>" an error.
 * Checked: the call ends exactly once (caller: call_remote_done; owner:
 * the connection is closed), connector_cancel only for a call in flight,
 * nothing leaks, no connection, timer or posted event is left.
 */

#include "ngx_fuzz.h"

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_call.h"


static ngx_int_t                     fuzz_call_rc;
static ngx_http_reverse_mcp_call_t  *fuzz_in_flight;
static ngx_uint_t                    fuzz_remote_done;


static ngx_int_t
fuzz_connector_call(uint64_t conn_id, ngx_http_reverse_mcp_call_t *call)
{
    ngx_fuzz_check(call->method.data != NULL, "call without a method");
    if (call->params.len) {
        (void) ngx_strlchr(call->params.data,
                           call->params.data + call->params.len, 0);
    }

    if (call->progress_token.len) {
        (void) ngx_strlchr(call->progress_token.data,
                           call->progress_token.data
                           + call->progress_token.len, 0);
    }

    if (fuzz_call_rc == NGX_OK) {
        fuzz_in_flight = call;
    }

    return fuzz_call_rc;
}


static void
fuzz_connector_cancel(ngx_http_reverse_mcp_call_t *call, const char *reason)
{
    ngx_fuzz_check(call == fuzz_in_flight, "cancel of a call not in flight");
    fuzz_in_flight = NULL;
}


static void
fuzz_call_remote_done(ngx_http_reverse_mcp_call_t *call, ngx_uint_t is_error,
    ngx_str_t *json)
{
    fuzz_remote_done++;
    (void) ngx_strlchr(json->data, json->data + json->len, 0);
}


#define ngx_http_reverse_mcp_connector_call    fuzz_connector_call
#define ngx_http_reverse_mcp_connector_cancel  fuzz_connector_cancel
#define ngx_http_reverse_mcp_call_remote_done  fuzz_call_remote_done

#include "../../src/ngx_http_reverse_mcp_mailbox.c"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();
    return 0;
}


static void
fuzz_owner(ngx_fuzz_input_t *in, ngx_fuzz_stream_t *st, ngx_uint_t block)
{
    ngx_str_t                        rec, json;
    ngx_uint_t                       n;
    ngx_pool_t                      *pool;
    ngx_fuzz_sink_t                  sink;
    ngx_connection_t                *c;
    ngx_http_reverse_mcp_call_t     *call;
    ngx_http_reverse_mcp_mb_peer_t  *peer;

    ngx_memzero(&sink, sizeof(ngx_fuzz_sink_t));
    sink.block = block;

    /* as ngx_http_reverse_mcp_mb_accept() sets up a peer */

    pool = ngx_create_pool(1024, &ngx_fuzz_log);
    ngx_fuzz_check(pool != NULL, "pool");

    peer = ngx_pcalloc(pool, sizeof(ngx_http_reverse_mcp_mb_peer_t));
    ngx_fuzz_check(peer != NULL, "peer");

    c = ngx_fuzz_connection(st, &sink);

    peer->connection = c;
    peer->pool = pool;
    ngx_http_reverse_mcp_outq_init(&peer->outq);

    c->data = peer;
    c->pool = pool;
    c->read->handler = ngx_http_reverse_mcp_mb_peer_read;
    c->write->handler = ngx_http_reverse_mcp_mb_peer_write;

    /* read until the call is made or the peer is closed */

    for (n = 0; n < 10000 && c->fd != (ngx_socket_t) -1
                && fuzz_in_flight == NULL; n++)
    {
        c->read->handler(c->read);
    }

    /* the connector's events */

    while (c->fd != (ngx_socket_t) -1 && fuzz_in_flight
           && ngx_fuzz_next_record(in, &rec) == NGX_OK)
    {
        if (rec.len == 0) {
            continue;
        }

        json.data = ngx_fuzz_copy(rec.data + 1, rec.len - 1);
        json.len = rec.len - 1;

        switch (rec.data[0]) {

        case 'N':
            fuzz_in_flight->notify(fuzz_in_flight, &json);
            break;

        case 'R':
        case 'E':
            call = fuzz_in_flight;
            fuzz_in_flight = NULL;
            call->done(call, rec.data[0] == 'E', &json);
            break;

        default:
            /* the caller reads on: its socket may give EOF now */
            if (c->fd != (ngx_socket_t) -1) {
                c->read->handler(c->read);
            }
        }

        free(json.data);

        if (c->fd != (ngx_socket_t) -1 && sink.block) {
            sink.block = 0;
            c->write->handler(c->write);
        }
    }

    if (c->fd != (ngx_socket_t) -1 && fuzz_in_flight) {
        /* the connector ends it: the server went away */
        call = fuzz_in_flight;
        ngx_str_set(&json, "{\"code\":-32001,\"message\":\"gone\"}");
        fuzz_in_flight = NULL;
        call->done(call, 1, &json);
    }

    if (c->fd != (ngx_socket_t) -1 && sink.block) {
        sink.block = 0;
        c->write->handler(c->write);
    }

    ngx_fuzz_check(fuzz_in_flight == NULL, "call left in flight");

    if (c->fd != (ngx_socket_t) -1) {
        /* done and written: only the caller's EOF is missing */
        for (n = 0; n < 10000 && c->fd != (ngx_socket_t) -1; n++) {
            c->read->handler(c->read);
        }
    }

    ngx_fuzz_check(c->fd == (ngx_socket_t) -1, "peer never closed");
}


static void
fuzz_caller(ngx_fuzz_stream_t *st)
{
    ngx_uint_t                         n;
    ngx_connection_t                  *c;
    ngx_http_reverse_mcp_call_t        call;
    ngx_http_reverse_mcp_mb_client_t  *cl;

    ngx_memzero(&call, sizeof(ngx_http_reverse_mcp_call_t));
    ngx_str_set(&call.server, "fuzz");
    ngx_str_set(&call.method, "tools/call");
    call.log = &ngx_fuzz_log;
    call.owner_pid = 1;

    /* as ngx_http_reverse_mcp_mailbox_call() leaves it once connected */

    cl = ngx_calloc(sizeof(ngx_http_reverse_mcp_mb_client_t), &ngx_fuzz_log);
    ngx_fuzz_check(cl != NULL, "client");

    cl->call = &call;
    cl->log = &ngx_fuzz_log;
    ngx_http_reverse_mcp_outq_init(&cl->outq);

    c = ngx_fuzz_connection(st, NULL);
    cl->pc.connection = c;
    c->data = cl;
    c->read->handler = ngx_http_reverse_mcp_mb_client_read;
    c->write->handler = ngx_http_reverse_mcp_mb_client_write;

    for (n = 0; n < 10000 && fuzz_remote_done == 0; n++) {
        c->read->handler(c->read);
    }

    ngx_fuzz_check(fuzz_remote_done == 1, "the call did not end once");
    ngx_fuzz_check(c->fd == (ngx_socket_t) -1, "client never closed");
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char             *copy;
    ngx_str_t           bytes;
    ngx_fuzz_input_t    in;
    ngx_fuzz_stream_t   st;

    static const ngx_int_t  rcs[] = { NGX_OK, NGX_DECLINED, NGX_BUSY,
                                      NGX_ERROR };

    if (size < 2) {
        return 0;
    }

    copy = ngx_fuzz_copy(data + 2, size - 2);

    in.pos = copy;
    in.end = copy + (size - 2);

    (void) ngx_fuzz_next_record(&in, &bytes);

    ngx_memzero(&st, sizeof(ngx_fuzz_stream_t));
    st.pos = bytes.data;
    st.end = bytes.data + bytes.len;
    st.chunk = data[1];
    st.again = (data[0] >> 4) & 1;
    st.error = (data[0] >> 5) & 1;

    fuzz_call_rc = rcs[(data[0] >> 1) & 3];
    fuzz_in_flight = NULL;
    fuzz_remote_done = 0;

    if (data[0] & 1) {
        fuzz_caller(&st);

    } else {
        fuzz_owner(&in, &st, (data[0] >> 3) & 1);
    }

    ngx_fuzz_run_posted();
    ngx_fuzz_check_clean();

    free(copy);

    return 0;
}
