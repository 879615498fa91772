/*
 * libFuzzer target for the LLM client's reply parsing
 * (src/ngx_http_reverse_mcp_llm.c): the SSE line splitter, OpenAI
 * chat-completion chunks and Anthropic message events when streamed, the
 * whole JSON bodies when not, HTTP error bodies, and the assembly of the
 * result (text, tool calls, stop reason) handed to the chat loop.
 *
 * The reply takes the path curl would give it: the real write callback
 * (with curl_easy_getinfo() answering the status and Content-Type chosen
 * by the input), in chunks chosen by the input, then the real finish()
 * with a curl result code, then the posted done event, whose handler
 * delivers the result to done() and frees the request.
 *
 * Input: byte 0 = provider (bit 0: Anthropic), stream (bit 1), status
 * (bits 2-4: 200 201 400 401 429 500 503 302), curl code (bits 5-7);
 * byte 1 = chunk size (0: one write); the rest is the HTTP body.
 * Checked: the result is consistent (each tool call has an id and a name
 * buffer, text never NULL), the error text is bounded and never contains
 * the API key, the streamed text equals the final text.
 */

#include "ngx_fuzz.h"

#include <curl/curl.h>


static long         fuzz_status;
static const char  *fuzz_content_type;


static CURLcode
fuzz_curl_easy_getinfo(CURL *easy, CURLINFO info, ...)
{
    va_list  args;

    va_start(args, info);

    if (info == CURLINFO_RESPONSE_CODE) {
        *va_arg(args, long *) = fuzz_status;

    } else if (info == CURLINFO_CONTENT_TYPE) {
        *va_arg(args, const char **) = fuzz_content_type;
    }

    va_end(args);

    return CURLE_OK;
}


#undef curl_easy_getinfo
#define curl_easy_getinfo  fuzz_curl_easy_getinfo

#include "../../src/ngx_http_reverse_mcp_llm.c"


#define FUZZ_KEY  "sk-fuzz-SECRET-key-0123456789"


static ngx_http_reverse_mcp_llm_conf_t  conf;
static u_char                           streamed[1 << 20];
static size_t                           streamed_len;
static ngx_uint_t                       streamed_over;
static ngx_uint_t                       done_calls;


static void
fuzz_on_text(ngx_http_reverse_mcp_llm_req_t *req, ngx_str_t *text)
{
    ngx_fuzz_check(text->len > 0, "empty streamed text");

    if (streamed_len + text->len > sizeof(streamed)) {
        streamed_over = 1;
        return;
    }

    ngx_memcpy(streamed + streamed_len, text->data, text->len);
    streamed_len += text->len;
}


static void
fuzz_done(ngx_http_reverse_mcp_llm_req_t *req)
{
    ngx_uint_t                             i;
    ngx_http_reverse_mcp_llm_result_t     *res;
    ngx_http_reverse_mcp_llm_tool_call_t  *tc;

    done_calls++;
    res = &req->result;

    if (res->error_type) {
        ngx_fuzz_check(res->error.len > 0
                       && res->error.len <= NGX_HTTP_REVERSE_MCP_LLM_ERR_MAX,
                       "error text empty or too long");
        ngx_fuzz_check(ngx_strnstr(res->error.data, FUZZ_KEY,
                                   res->error.len) == NULL,
                       "the API key is in an error message");
        ngx_fuzz_check(res->error_type <= NGX_HTTP_REVERSE_MCP_LLM_ERR_SHUTDOWN,
                       "unknown error type");
        (void) ngx_http_reverse_mcp_llm_error_name(res->error_type);
        return;
    }

    ngx_fuzz_check(res->text.data != NULL && res->stop_reason.data != NULL
                   && res->tool_calls != NULL, "incomplete result");

    if (!streamed_over && conf.stream) {
        ngx_fuzz_check(streamed_len == res->text.len
                       && ngx_memcmp(streamed, res->text.data, streamed_len)
                          == 0,
                       "the streamed text is not the final text");
    }

    tc = res->tool_calls->elts;

    for (i = 0; i < res->tool_calls->nelts; i++) {
        ngx_fuzz_check(tc[i].id.len > 0, "a tool call without an id");
        ngx_fuzz_check(tc[i].name.data != NULL, "a tool call name is NULL");
        ngx_fuzz_check(tc[i].arguments.len > 0, "empty arguments");

        /* every byte is readable (ASan checks) */
        (void) ngx_strlchr(tc[i].id.data, tc[i].id.data + tc[i].id.len, 0);
        if (tc[i].name.len) {
            (void) ngx_strlchr(tc[i].name.data,
                               tc[i].name.data + tc[i].name.len, 0);
        }
        (void) ngx_strlchr(tc[i].arguments.data,
                           tc[i].arguments.data + tc[i].arguments.len, 0);
    }
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();

    ngx_queue_init(&ngx_http_reverse_mcp_llm_reqs);
    ngx_queue_init(&ngx_http_reverse_mcp_llm_socks);

    ngx_str_set(&conf.api_key, FUZZ_KEY);
    ngx_str_set(&conf.base_url, "http://127.0.0.1:1/v1");
    ngx_str_set(&conf.url, "http://127.0.0.1:1/v1/chat/completions");
    ngx_str_set(&conf.model, "fuzz-model");
    conf.timeout = 60000;

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                           chunk, n;
    u_char                          *body, *p, *end;
    CURLcode                         code;
    ngx_pool_t                      *pool;
    ngx_http_reverse_mcp_llm_ctx_t  *ctx;

    static const long      statuses[] = { 200, 201, 400, 401, 429, 500, 503,
                                          302 };
    static const CURLcode  codes[] = { CURLE_OK, CURLE_OK, CURLE_OK, CURLE_OK,
                                       CURLE_PARTIAL_FILE,
                                       CURLE_OPERATION_TIMEDOUT,
                                       CURLE_COULDNT_CONNECT,
                                       CURLE_SSL_CONNECT_ERROR };

    if (size < 2) {
        return 0;
    }

    conf.provider = (data[0] & 1) ? NGX_HTTP_REVERSE_MCP_LLM_ANTHROPIC
                                  : NGX_HTTP_REVERSE_MCP_LLM_OPENAI;
    conf.stream = (data[0] >> 1) & 1;
    fuzz_status = statuses[(data[0] >> 2) & 7];
    code = codes[(data[0] >> 5) & 7];
    fuzz_content_type = conf.stream ? "text/event-stream; charset=utf-8"
                                    : "application/json";
    chunk = data[1];

    streamed_len = 0;
    streamed_over = 0;
    done_calls = 0;

    /* the request as ngx_http_reverse_mcp_llm_start() sets it up */

    pool = ngx_create_pool(4096, &ngx_fuzz_log);
    ngx_fuzz_check(pool != NULL, "pool");

    ctx = ngx_pcalloc(pool, sizeof(ngx_http_reverse_mcp_llm_ctx_t));
    ngx_fuzz_check(ctx != NULL, "ctx");

    ctx->pool = pool;
    ctx->pub.conf = &conf;
    ctx->pub.done = fuzz_done;
    ctx->pub.on_text = fuzz_on_text;
    ctx->pub.log = &ngx_fuzz_log;
    ctx->pub.priv = ctx;
    ctx->start = ngx_current_msec;
    ctx->done_ev.handler = ngx_http_reverse_mcp_llm_done_handler;
    ctx->done_ev.data = ctx;
    ctx->done_ev.log = &ngx_fuzz_log;

    ngx_fuzz_check(ngx_array_init(&ctx->slots, pool, 4,
                                  sizeof(ngx_http_reverse_mcp_llm_slot_t))
                   == NGX_OK, "slots");

    /* the body, in writes of the chosen size */

    body = ngx_fuzz_copy(data + 2, size - 2);
    end = body + (size - 2);

    for (p = body; p < end; p += n) {
        n = chunk ? ngx_min(chunk, (size_t) (end - p)) : (size_t) (end - p);

        if (ngx_http_reverse_mcp_llm_write_cb((char *) p, 1, n, ctx) != n) {
            code = CURLE_WRITE_ERROR;
            ngx_fuzz_check(ctx->err_type != 0,
                           "a write was refused without an error");
            break;
        }
    }

    ngx_http_reverse_mcp_llm_finish(ctx, code);

    ngx_fuzz_check(ctx->done_ev.posted, "finish() did not post done");

    ngx_fuzz_run_posted();

    ngx_fuzz_check(done_calls == 1, "done() not called exactly once");
    ngx_fuzz_check_clean();

    free(body);

    return 0;
}
