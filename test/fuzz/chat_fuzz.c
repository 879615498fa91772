/*
 * libFuzzer target for the chat API and A2A front ends
 * (src/ngx_http_reverse_mcp_a2a.c, included; the chat handler of
 * src/ngx_http_reverse_mcp_chat.c through its public entry): what HTTP
 * callers send to a chat location (a JSON body with "message" and
 * "context_id", "/commands") and to an A2A location (the Agent Card,
 * JSON-RPC message/send, message/stream, tasks/get, tasks/cancel, push
 * config, unknown methods), conversations in a real history zone, agent
 * "a" with an OpenAI-compatible "llm" and server "s2" (two tools).  No
 * LLM is reachable: a turn that needs the model fails with the LLM
 * client's error (no curl in this worker), which the front ends report
 * (see http_fixture.h for the rest).
 *
 * Input: byte 0 = flags (bit 0: our writes block at first), then records
 * separated by "\n---\n", each a whole HTTP request; a URI starting with
 * /a2a goes to the A2A handler, any other to the chat handler.
 * Checked: one response header per finalized request, no newline in a
 * header; nothing leaks; no connection, timer or posted event is left.
 */

#define FUZZ_MODULE_SRC  "../../src/ngx_http_reverse_mcp_a2a.c"

#include "http_fixture.h"

#include "ngx_http_reverse_mcp_history.h"
#include "ngx_http_reverse_mcp_llm.h"


#define FUZZ_HISTORY_SIZE  (512 * 1024)


static ngx_shm_zone_t                    fuzz_history;
static ngx_http_reverse_mcp_llm_conf_t   fuzz_llm;
static ngx_http_reverse_mcp_chat_main_t  fuzz_chat_main;
static ngx_http_reverse_mcp_chat_loc_t   fuzz_chat_loc;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_http_init();

    fuzz_llm.provider = NGX_HTTP_REVERSE_MCP_LLM_OPENAI;
    ngx_str_set(&fuzz_llm.model, "fuzz-model");
    ngx_str_set(&fuzz_llm.base_url, "http://127.0.0.1:1/v1");
    ngx_str_set(&fuzz_llm.url, "http://127.0.0.1:1/v1/chat/completions");
    ngx_str_set(&fuzz_llm.system, "You are a test.");
    ngx_str_set(&fuzz_llm.description, "A fuzzed agent");
    ngx_str_set(&fuzz_llm.anthropic_version, "2023-06-01");
    fuzz_llm.max_rounds = 4;
    fuzz_llm.timeout = 10000;
    fuzz_llm.connect_timeout = 1000;
    fuzz_llm.stream = 1;
    fuzz_llm.configured = 1;

    fuzz_acf->llm = &fuzz_llm;

    fuzz_shm_zone(&fuzz_history, "fuzz_history", FUZZ_HISTORY_SIZE);

    fuzz_chat_main.zone = &fuzz_history;
    fuzz_chat_main.idle = 1800;
    fuzz_chat_main.max_history = 65536;
    fuzz_mcf.chat = &fuzz_chat_main;

    ngx_str_set(&fuzz_chat_loc.agent, "a");
    fuzz_chat_loc.a2a = 1;
    fuzz_lcf.chat = &fuzz_chat_loc;

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char              *copy;
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

    fuzz_shm_reset(&fuzz_history);
    ngx_fuzz_check(ngx_http_reverse_mcp_history_init_zone(&fuzz_history,
                                                          NULL)
                   == NGX_OK, "history zone");

    for (n = 0; n < 8 && ngx_fuzz_next_record(&in, &rec) == NGX_OK; n++) {

        ngx_memzero(&st, sizeof(ngx_fuzz_stream_t));
        st.pos = rec.data;
        st.end = rec.data;
        st.open = 1;

        ngx_memzero(&sink, sizeof(ngx_fuzz_sink_t));
        sink.block = data[0] & 1;

        fuzz_headers_sent = 0;

        r = fuzz_request(rec.data, rec.len, &st, &sink);

        if (r == NULL) {
            ngx_log_error(NGX_LOG_INFO, &ngx_fuzz_log, 0,
                          "fuzz: request %ui is not valid HTTP", n);
            continue;
        }

        c = r->connection;

        if (r->uri.len >= 4 && ngx_strncmp(r->uri.data, "/a2a", 4) == 0) {
            rc = ngx_http_reverse_mcp_a2a_handler(r);

        } else {
            rc = ngx_http_reverse_mcp_chat_handler(r);
        }

        /* ngx_http_core_content_phase() */
        __wrap_ngx_http_finalize_request(r, rc);

        ngx_fuzz_run_posted();

        if (!fuzz_finalized && sink.block) {
            sink.block = 0;
            c->write->handler(c->write);
            ngx_fuzz_run_posted();
        }

        ngx_fuzz_expire_timers();

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
    }

    ngx_fuzz_expire_timers();
    ngx_fuzz_check_clean();

    free(copy);

    return 0;
}
