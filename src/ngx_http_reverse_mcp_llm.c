/*
 * The LLM client of the chat API (see ngx_http_reverse_mcp_llm.h).
 *
 * libcurl inside the nginx event loop, after research/nginx-anchors.md
 * section 4:
 *   - one CURLM per worker, created in init_process, cleaned up in
 *     exit_process; CURLOPT_NOSIGNAL; never the blocking easy-perform call;
 *   - CURLOPT_OPENSOCKETFUNCTION / CLOSESOCKETFUNCTION: we create every
 *     socket and close it.  nginx watches a dup() of curl's descriptor in
 *     an ngx_connection_t of ours (ngx_get_connection: nginx's stale event
 *     protection applies): our registration never sits on a descriptor
 *     that curl closed, whose number the kernel may hand to a new client.
 *     That matters with libcurl 7.88 (Debian 12): a socket whose connect
 *     did not complete (cancelled, refused) is closed with sclose(),
 *     without the close callback, and CURL_POLL_REMOVE comes after the
 *     close (curl PR #11439, fixed in 8.2); we notice such a socket at
 *     CURL_POLL_REMOVE, on its next event, or when its number comes back
 *     from socket(), and release our descriptor then;
 *   - CURLMOPT_SOCKETFUNCTION only enables or disables level-triggered
 *     events (flags 0: no EPOLLET; never ngx_handle_read_event); a socket
 *     curl made itself (the threaded resolver's socketpair) is watched the
 *     same way until CURL_POLL_REMOVE;
 *   - CURLMOPT_TIMERFUNCTION drives one ngx_event_t ("now" is a posted
 *     event); it is not cancelable while transfers run, so a graceful
 *     shutdown waits for them (they are bounded by the request timeout);
 *   - no call into curl from curl's callbacks: they only touch nginx
 *     state; finished transfers are collected after
 *     curl_multi_socket_action returns and reported from a posted event.
 */

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_llm.h"
#include "ngx_http_reverse_mcp_json.h"

#include <curl/curl.h>


#define NGX_HTTP_REVERSE_MCP_LLM_LINE_MAX   (4 * 1024 * 1024)
#define NGX_HTTP_REVERSE_MCP_LLM_BODY_MAX   (16 * 1024 * 1024)
#define NGX_HTTP_REVERSE_MCP_LLM_ERR_MAX    512
#define NGX_HTTP_REVERSE_MCP_LLM_MSG_MAX    300   /* upstream messages */
#define NGX_HTTP_REVERSE_MCP_LLM_MAXCONNECTS 16

#define NGX_HTTP_REVERSE_MCP_LLM_SLOT_TEXT  1
#define NGX_HTTP_REVERSE_MCP_LLM_SLOT_TOOL  2


typedef struct {
    u_char                             *data;
    size_t                              len;
    size_t                              cap;
} ngx_http_reverse_mcp_llm_buf_t;


/* a content block (Anthropic) or a tool call index (OpenAI) */
typedef struct {
    ngx_int_t                           index;
    ngx_uint_t                          kind;
    ngx_http_reverse_mcp_llm_buf_t      id;
    ngx_http_reverse_mcp_llm_buf_t      name;
    ngx_http_reverse_mcp_llm_buf_t      args;
    ngx_http_reverse_mcp_llm_buf_t      input;   /* content_block_start */
} ngx_http_reverse_mcp_llm_slot_t;


typedef struct {
    ngx_http_reverse_mcp_llm_req_t      pub;

    ngx_pool_t                         *pool;
    CURL                               *easy;
    struct curl_slist                  *headers;
    char                                errbuf[CURL_ERROR_SIZE];
    ngx_str_t                           body;
    ngx_event_t                         done_ev;
    ngx_queue_t                         queue;     /* llm_reqs */
    ngx_msec_t                          start;
    ngx_uint_t                          status;

    /* the reply */
    ngx_http_reverse_mcp_llm_buf_t      line;
    ngx_http_reverse_mcp_llm_buf_t      data;      /* SSE event data */
    ngx_http_reverse_mcp_llm_buf_t      raw;       /* non-SSE body */
    ngx_http_reverse_mcp_llm_buf_t      text;
    ngx_http_reverse_mcp_llm_buf_t      stop;
    ngx_array_t                         slots;     /* slot_t */
    size_t                              received;

    ngx_uint_t                          err_type;
    u_char                              err[NGX_HTTP_REVERSE_MCP_LLM_ERR_MAX];
    size_t                              err_len;
    ngx_uint_t                          err_status;

    unsigned                            in_multi:1;
    unsigned                            in_queue:1;
    unsigned                            decided:1;
    unsigned                            sse:1;
    unsigned                            data_seen:1;
    unsigned                            complete:1;   /* [DONE] or
                                                         message_stop */
    unsigned                            finished:1;   /* finish_reason */
    unsigned                            delivering:1;
} ngx_http_reverse_mcp_llm_ctx_t;


/* a socket curl uses; c->data points here, c->fd is our dup() of it */
typedef struct {
    ngx_connection_t                   *conn;
    ngx_socket_t                        fd;        /* curl's descriptor */
    ngx_queue_t                         queue;
    unsigned                            owned:1;   /* our opensocket */
} ngx_http_reverse_mcp_llm_sock_t;


static ngx_int_t ngx_http_reverse_mcp_llm_line(ngx_conf_t *cf,
    ngx_http_reverse_mcp_llm_conf_t *lcf);
static ngx_int_t ngx_http_reverse_mcp_llm_key_file(ngx_conf_t *cf,
    ngx_str_t *path, ngx_str_t *key);
static ngx_http_reverse_mcp_llm_conf_t *ngx_http_reverse_mcp_llm_conf(
    ngx_conf_t *cf, ngx_http_reverse_mcp_agent_conf_t *acf);

static int ngx_http_reverse_mcp_llm_socket_cb(CURL *easy, curl_socket_t s,
    int what, void *userp, void *socketp);
static int ngx_http_reverse_mcp_llm_timer_cb(CURLM *multi, long timeout_ms,
    void *userp);
static curl_socket_t ngx_http_reverse_mcp_llm_open_cb(void *clientp,
    curlsocktype purpose, struct curl_sockaddr *addr);
static int ngx_http_reverse_mcp_llm_close_cb(void *clientp,
    curl_socket_t item);
static size_t ngx_http_reverse_mcp_llm_write_cb(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static void ngx_http_reverse_mcp_llm_event_handler(ngx_event_t *ev);
static void ngx_http_reverse_mcp_llm_timer_handler(ngx_event_t *ev);
static void ngx_http_reverse_mcp_llm_check_done(void);
static void ngx_http_reverse_mcp_llm_finish(
    ngx_http_reverse_mcp_llm_ctx_t *ctx, CURLcode code);
static void ngx_http_reverse_mcp_llm_done_handler(ngx_event_t *ev);
static void ngx_http_reverse_mcp_llm_destroy(
    ngx_http_reverse_mcp_llm_ctx_t *ctx);
static void ngx_http_reverse_mcp_llm_fail_all(ngx_uint_t type,
    const char *msg);
static void ngx_http_reverse_mcp_llm_update_timer(void);
static ngx_http_reverse_mcp_llm_sock_t *ngx_http_reverse_mcp_llm_find_sock(
    curl_socket_t s);
static void ngx_http_reverse_mcp_llm_drop_sock(
    ngx_http_reverse_mcp_llm_sock_t *sock);
static ngx_uint_t ngx_http_reverse_mcp_llm_fd_closed(ngx_socket_t fd);

static ngx_int_t ngx_http_reverse_mcp_llm_feed(
    ngx_http_reverse_mcp_llm_ctx_t *ctx, u_char *p, size_t n);
static ngx_int_t ngx_http_reverse_mcp_llm_sse_line(
    ngx_http_reverse_mcp_llm_ctx_t *ctx, u_char *p, size_t n);
static ngx_int_t ngx_http_reverse_mcp_llm_sse_event(
    ngx_http_reverse_mcp_llm_ctx_t *ctx);
static ngx_int_t ngx_http_reverse_mcp_llm_openai_chunk(
    ngx_http_reverse_mcp_llm_ctx_t *ctx, yajl_val root);
static ngx_int_t ngx_http_reverse_mcp_llm_anthropic_event(
    ngx_http_reverse_mcp_llm_ctx_t *ctx, yajl_val root);
static ngx_int_t ngx_http_reverse_mcp_llm_whole(
    ngx_http_reverse_mcp_llm_ctx_t *ctx);
static void ngx_http_reverse_mcp_llm_http_error(
    ngx_http_reverse_mcp_llm_ctx_t *ctx);
static ngx_int_t ngx_http_reverse_mcp_llm_api_error(
    ngx_http_reverse_mcp_llm_ctx_t *ctx, yajl_val err);
static ngx_int_t ngx_http_reverse_mcp_llm_assemble(
    ngx_http_reverse_mcp_llm_ctx_t *ctx);
static void ngx_http_reverse_mcp_llm_error(ngx_http_reverse_mcp_llm_ctx_t *ctx,
    ngx_uint_t type, const char *fmt, ...);
static ngx_http_reverse_mcp_llm_slot_t *ngx_http_reverse_mcp_llm_slot(
    ngx_http_reverse_mcp_llm_ctx_t *ctx, ngx_int_t index, ngx_uint_t kind);
static ngx_int_t ngx_http_reverse_mcp_llm_text(
    ngx_http_reverse_mcp_llm_ctx_t *ctx, u_char *p, size_t n,
    ngx_uint_t stream);

static ngx_int_t ngx_http_reverse_mcp_llm_buf_add(
    ngx_http_reverse_mcp_llm_buf_t *b, const u_char *p, size_t n);
static void ngx_http_reverse_mcp_llm_buf_free(
    ngx_http_reverse_mcp_llm_buf_t *b);
static ngx_int_t ngx_http_reverse_mcp_llm_buf_str(
    ngx_http_reverse_mcp_llm_buf_t *b, yajl_val v);
static ngx_int_t ngx_http_reverse_mcp_llm_str_eq(ngx_str_t *s,
    const char *c);


static CURLM             *ngx_http_reverse_mcp_llm_multi;
static ngx_event_t        ngx_http_reverse_mcp_llm_timer;
static ngx_connection_t   ngx_http_reverse_mcp_llm_dummy;
static ngx_queue_t        ngx_http_reverse_mcp_llm_socks;
static ngx_queue_t        ngx_http_reverse_mcp_llm_reqs;
static ngx_uint_t         ngx_http_reverse_mcp_llm_nreqs;
static ngx_uint_t         ngx_http_reverse_mcp_llm_global;
static ngx_log_t         *ngx_http_reverse_mcp_llm_log;
static ngx_uint_t         ngx_http_reverse_mcp_llm_id_seq;


static const char  *ngx_http_reverse_mcp_llm_errors[] = {
    "ok", "llm_config", "llm_connect", "llm_tls", "llm_timeout", "llm_http",
    "llm_bad_response", "llm_stream_cut", "llm_api_error", "internal",
    "shutting_down"
};


/* ------------------------------------------------------------------ */
/* configuration: lines of a reverse_mcp_agent block                  */
/* ------------------------------------------------------------------ */


ngx_int_t
ngx_http_reverse_mcp_llm_agent_line(ngx_conf_t *cf,
    ngx_http_reverse_mcp_agent_conf_t *acf)
{
    ngx_str_t                        *value;
    ngx_http_reverse_mcp_llm_conf_t  *lcf;

    value = cf->args->elts;

    if (ngx_http_reverse_mcp_llm_str_eq(&value[0], "llm")) {
        lcf = ngx_http_reverse_mcp_llm_conf(cf, acf);
        if (lcf == NULL) {
            return NGX_ERROR;
        }

        if (lcf->configured) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate \"llm\" in reverse_mcp_agent "
                               "\"%V\"", &acf->name);
            return NGX_ERROR;
        }

        return ngx_http_reverse_mcp_llm_line(cf, lcf);
    }

    if (ngx_http_reverse_mcp_llm_str_eq(&value[0], "llm_system")
        || ngx_http_reverse_mcp_llm_str_eq(&value[0], "description"))
    {
        if (cf->args->nelts != 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" takes one (quoted) text", &value[0]);
            return NGX_ERROR;
        }

        lcf = ngx_http_reverse_mcp_llm_conf(cf, acf);
        if (lcf == NULL) {
            return NGX_ERROR;
        }

        if (value[0].len == sizeof("llm_system") - 1) {
            lcf->system = value[1];

        } else {
            lcf->description = value[1];
        }

        return NGX_OK;
    }

    return NGX_DECLINED;
}


static ngx_http_reverse_mcp_llm_conf_t *
ngx_http_reverse_mcp_llm_conf(ngx_conf_t *cf,
    ngx_http_reverse_mcp_agent_conf_t *acf)
{
    ngx_http_reverse_mcp_llm_conf_t  *lcf;

    if (acf->llm) {
        return acf->llm;
    }

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_reverse_mcp_llm_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->max_rounds = 8;
    lcf->timeout = 60000;
    lcf->connect_timeout = 10000;
    lcf->stream = 1;
    ngx_str_set(&lcf->anthropic_version, "2023-06-01");

    acf->llm = lcf;

    return lcf;
}


/*
 * llm provider=openai|anthropic model=NAME [base_url=URL]
 *     [api_key=KEY | api_key_file=PATH | api_key_env=NAME] [system=TEXT]
 *     [temperature=T] [max_tokens=N] [max_rounds=N] [timeout=TIME]
 *     [connect_timeout=TIME] [stream=on|off] [ca_file=PATH]
 *     [anthropic_version=V];
 */
static ngx_int_t
ngx_http_reverse_mcp_llm_line(ngx_conf_t *cf,
    ngx_http_reverse_mcp_llm_conf_t *lcf)
{
    u_char           *p, *eq;
    ngx_int_t         n, dots;
    ngx_str_t        *value, key, val, path;
    ngx_uint_t        i, keys, j;
    ngx_msec_t        ms;
    ngx_core_conf_t  *ccf;
    ngx_str_t        *env;
    ngx_file_info_t   fi;

    value = cf->args->elts;
    keys = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        if (eq == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of \"llm\": "
                               "expected key=value", &value[i]);
            return NGX_ERROR;
        }

        key.data = value[i].data;
        key.len = eq - value[i].data;
        val.data = eq + 1;
        val.len = value[i].data + value[i].len - val.data;

        if (ngx_http_reverse_mcp_llm_str_eq(&key, "provider")) {
            if (ngx_http_reverse_mcp_llm_str_eq(&val, "openai")) {
                lcf->provider = NGX_HTTP_REVERSE_MCP_LLM_OPENAI;

            } else if (ngx_http_reverse_mcp_llm_str_eq(&val, "anthropic")) {
                lcf->provider = NGX_HTTP_REVERSE_MCP_LLM_ANTHROPIC;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"llm\" provider \"%V\": "
                                   "expected openai or anthropic", &val);
                return NGX_ERROR;
            }

            continue;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&key, "model")) {
            if (val.len == 0) {
                goto empty;
            }

            lcf->model = val;
            continue;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&key, "base_url")) {
            if (!(val.len > 7 && ngx_strncasecmp(val.data,
                                                 (u_char *) "http://", 7) == 0)
                && !(val.len > 8
                     && ngx_strncasecmp(val.data, (u_char *) "https://", 8)
                        == 0))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"llm\" base_url \"%V\": an "
                                   "http:// or https:// URL is required",
                                   &val);
                return NGX_ERROR;
            }

            while (val.len && val.data[val.len - 1] == '/') {
                val.len--;
            }

            lcf->base_url = val;
            continue;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&key, "api_key")
            || ngx_http_reverse_mcp_llm_str_eq(&key, "api_key_file")
            || ngx_http_reverse_mcp_llm_str_eq(&key, "api_key_env"))
        {
            if (++keys > 1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"llm\" takes only one of api_key=, "
                                   "api_key_file= and api_key_env=");
                return NGX_ERROR;
            }

            if (val.len == 0) {
                goto empty;
            }

            if (key.len == sizeof("api_key") - 1) {
                lcf->api_key = val;
                continue;
            }

            if (key.len == sizeof("api_key_file") - 1) {
                if (ngx_http_reverse_mcp_llm_key_file(cf, &val, &lcf->api_key)
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }

                continue;
            }

            for (j = 0; j < val.len; j++) {
                if (!((val.data[j] >= 'A' && val.data[j] <= 'Z')
                      || (val.data[j] >= 'a' && val.data[j] <= 'z')
                      || val.data[j] == '_'
                      || (j && val.data[j] >= '0' && val.data[j] <= '9')))
                {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid \"llm\" api_key_env \"%V\": "
                                       "an environment variable name is "
                                       "required", &val);
                    return NGX_ERROR;
                }
            }

            lcf->api_key_env = val;

            /* workers see only the variables of "env" directives */

            ccf = (ngx_core_conf_t *) ngx_get_conf(cf->cycle->conf_ctx,
                                                   ngx_core_module);
            env = ccf->env.elts;

            for (j = 0; j < ccf->env.nelts; j++) {
                if (env[j].len >= val.len
                    && ngx_strncmp(env[j].data, val.data, val.len) == 0
                    && (env[j].len == val.len || env[j].data[val.len] == '='))
                {
                    break;
                }
            }

            if (j == ccf->env.nelts) {
                ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                                   "\"llm\" api_key_env=%V: no \"env %V;\" "
                                   "before the http block, nginx workers "
                                   "will not see the variable", &val, &val);
            }

            continue;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&key, "system")) {
            lcf->system = val;
            continue;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&key, "temperature")) {
            dots = 0;

            for (j = 0; j < val.len; j++) {
                if (val.data[j] == '.') {
                    dots++;

                } else if (val.data[j] < '0' || val.data[j] > '9') {
                    break;
                }
            }

            if (val.len == 0 || j < val.len || dots > 1
                || val.data[0] == '.' || val.data[val.len - 1] == '.'
                || ngx_atofp(val.data, val.len, 2) > 200)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"llm\" temperature \"%V\": a "
                                   "number from 0 to 2 is required", &val);
                return NGX_ERROR;
            }

            lcf->temperature = val;
            continue;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&key, "max_tokens")
            || ngx_http_reverse_mcp_llm_str_eq(&key, "max_rounds"))
        {
            n = ngx_atoi(val.data, val.len);

            if (n == NGX_ERROR || n == 0
                || (key.len == sizeof("max_rounds") - 1
                    && key.data[4] == 'r' && n > 100))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"llm\" %V \"%V\": a number "
                                   "from 1%s is required", &key, &val,
                                   key.data[4] == 'r' ? " to 100" : "");
                return NGX_ERROR;
            }

            if (key.data[4] == 'r') {
                lcf->max_rounds = n;

            } else {
                lcf->max_tokens = n;
            }

            continue;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&key, "timeout")
            || ngx_http_reverse_mcp_llm_str_eq(&key, "connect_timeout"))
        {
            ms = ngx_parse_time(&val, 0);

            if (ms == (ngx_msec_t) NGX_ERROR || ms < 100) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"llm\" %V \"%V\": a time of "
                                   "at least 100ms is required", &key, &val);
                return NGX_ERROR;
            }

            if (key.len == sizeof("timeout") - 1) {
                lcf->timeout = ms;

            } else {
                lcf->connect_timeout = ms;
            }

            continue;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&key, "stream")) {
            if (ngx_http_reverse_mcp_llm_str_eq(&val, "on")) {
                lcf->stream = 1;

            } else if (ngx_http_reverse_mcp_llm_str_eq(&val, "off")) {
                lcf->stream = 0;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"llm\" stream \"%V\": expected "
                                   "on or off", &val);
                return NGX_ERROR;
            }

            continue;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&key, "ca_file")) {
            path = val;

            if (path.len == 0) {
                goto empty;
            }

            if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
                return NGX_ERROR;
            }

            if (ngx_file_info(path.data, &fi) == NGX_FILE_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                                   "\"llm\" ca_file \"%s\" cannot be used",
                                   path.data);
                return NGX_ERROR;
            }

            lcf->ca_file = path;
            continue;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&key, "anthropic_version")) {
            if (val.len == 0) {
                goto empty;
            }

            lcf->anthropic_version = val;
            continue;
        }

        /* the value is not echoed: it may be a mistyped key */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V=...\" of \"llm\"", &key);
        return NGX_ERROR;

    empty:

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty \"%V\" of \"llm\"", &key);
        return NGX_ERROR;
    }

    if (lcf->provider == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm\" needs provider=openai or "
                           "provider=anthropic");
        return NGX_ERROR;
    }

    if (lcf->model.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"llm\" needs model=");
        return NGX_ERROR;
    }

    if (lcf->base_url.len == 0) {
        if (lcf->provider == NGX_HTTP_REVERSE_MCP_LLM_OPENAI) {
            ngx_str_set(&lcf->base_url, "https://api.openai.com/v1");

        } else {
            ngx_str_set(&lcf->base_url, "https://api.anthropic.com/v1");
        }
    }

    if (lcf->provider == NGX_HTTP_REVERSE_MCP_LLM_ANTHROPIC
        && lcf->max_tokens == 0)
    {
        lcf->max_tokens = 4096;
    }

    if (lcf->connect_timeout > lcf->timeout) {
        lcf->connect_timeout = lcf->timeout;
    }

    lcf->url.len = lcf->base_url.len + sizeof("/chat/completions");
    lcf->url.data = ngx_pnalloc(cf->pool, lcf->url.len);
    if (lcf->url.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(lcf->url.data, "%V%s%Z", &lcf->base_url,
                    lcf->provider == NGX_HTTP_REVERSE_MCP_LLM_OPENAI
                    ? "/chat/completions" : "/messages");
    lcf->url.len = p - 1 - lcf->url.data;

    lcf->configured = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_reverse_mcp_llm_key_file(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *key)
{
    u_char     buf[4096];
    size_t     len;
    ssize_t    n;
    ngx_fd_t   fd;
    ngx_str_t  name;

    name = *path;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open \"llm\" api_key_file \"%s\"",
                           name.data);
        return NGX_ERROR;
    }

    n = ngx_read_fd(fd, buf, sizeof(buf));

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name.data);
    }

    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read \"llm\" api_key_file \"%s\"",
                           name.data);
        return NGX_ERROR;
    }

    if (n == (ssize_t) sizeof(buf)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm\" api_key_file \"%s\" is too large",
                           name.data);
        return NGX_ERROR;
    }

    len = n;

    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'
                   || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
    {
        len--;
    }

    if (len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm\" api_key_file \"%s\" is empty", name.data);
        return NGX_ERROR;
    }

    key->data = ngx_pnalloc(cf->pool, len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(key->data, buf, len);
    key->len = len;

    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_OK;
}


/* ------------------------------------------------------------------ */
/* the per-worker multi handle                                          */
/* ------------------------------------------------------------------ */


ngx_int_t
ngx_http_reverse_mcp_llm_init_process(ngx_cycle_t *cycle)
{
    char                              *v;
    u_char                            *p;
    size_t                             len;
    ngx_uint_t                         i, any;
    ngx_http_reverse_mcp_llm_conf_t   *lcf;
    ngx_http_reverse_mcp_agent_conf_t *acf;
    ngx_http_reverse_mcp_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_reverse_mcp_module);
    if (mcf == NULL) {
        return NGX_OK;
    }

    any = 0;
    acf = mcf->agents.elts;

    for (i = 0; i < mcf->agents.nelts; i++) {
        lcf = acf[i].llm;

        if (lcf == NULL || !lcf->configured) {
            continue;
        }

        any = 1;

        if (lcf->api_key_env.len == 0) {
            continue;
        }

        /* the worker's environment: what "env" directives passed */

        p = ngx_pnalloc(cycle->pool, lcf->api_key_env.len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        (void) ngx_cpystrn(p, lcf->api_key_env.data,
                           lcf->api_key_env.len + 1);

        v = getenv((char *) p);
        len = v ? ngx_strlen(v) : 0;

        if (len == 0) {
            lcf->key_missing = 1;
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "reverse_mcp: agent \"%V\": the environment "
                          "variable %V of \"llm\" api_key_env is not set in "
                          "the worker (add \"env %V;\" to nginx.conf)",
                          &acf[i].name, &lcf->api_key_env,
                          &lcf->api_key_env);
            continue;
        }

        lcf->api_key.data = ngx_pnalloc(cycle->pool, len);
        if (lcf->api_key.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(lcf->api_key.data, v, len);
        lcf->api_key.len = len;
        lcf->key_missing = 0;
    }

    if (!any) {
        return NGX_OK;
    }

    ngx_http_reverse_mcp_llm_log = cycle->log;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "reverse_mcp: curl_global_init() failed");
        return NGX_ERROR;
    }

    ngx_http_reverse_mcp_llm_global = 1;

    ngx_http_reverse_mcp_llm_multi = curl_multi_init();
    if (ngx_http_reverse_mcp_llm_multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "reverse_mcp: curl_multi_init() failed");
        return NGX_ERROR;
    }

    ngx_queue_init(&ngx_http_reverse_mcp_llm_socks);
    ngx_queue_init(&ngx_http_reverse_mcp_llm_reqs);

    /* ngx_add_timer logs ev->data as a connection in debug builds */
    ngx_http_reverse_mcp_llm_dummy.fd = (ngx_socket_t) -1;

    ngx_http_reverse_mcp_llm_timer.handler =
                                      ngx_http_reverse_mcp_llm_timer_handler;
    ngx_http_reverse_mcp_llm_timer.data = &ngx_http_reverse_mcp_llm_dummy;
    ngx_http_reverse_mcp_llm_timer.log = cycle->log;
    ngx_http_reverse_mcp_llm_timer.cancelable = 1;

    curl_multi_setopt(ngx_http_reverse_mcp_llm_multi,
                      CURLMOPT_SOCKETFUNCTION,
                      ngx_http_reverse_mcp_llm_socket_cb);
    curl_multi_setopt(ngx_http_reverse_mcp_llm_multi,
                      CURLMOPT_TIMERFUNCTION,
                      ngx_http_reverse_mcp_llm_timer_cb);
    curl_multi_setopt(ngx_http_reverse_mcp_llm_multi, CURLMOPT_MAXCONNECTS,
                      (long) NGX_HTTP_REVERSE_MCP_LLM_MAXCONNECTS);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "reverse_mcp: llm: curl multi handle ready");

    return NGX_OK;
}


void
ngx_http_reverse_mcp_llm_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                     *q;
    ngx_http_reverse_mcp_llm_ctx_t  *ctx;

    if (ngx_http_reverse_mcp_llm_multi) {

        while (!ngx_queue_empty(&ngx_http_reverse_mcp_llm_reqs)) {
            q = ngx_queue_head(&ngx_http_reverse_mcp_llm_reqs);
            ctx = ngx_queue_data(q, ngx_http_reverse_mcp_llm_ctx_t, queue);
            ngx_http_reverse_mcp_llm_destroy(ctx);
        }

        if (ngx_http_reverse_mcp_llm_timer.timer_set) {
            ngx_del_timer(&ngx_http_reverse_mcp_llm_timer);
        }

        if (ngx_http_reverse_mcp_llm_timer.posted) {
            ngx_delete_posted_event(&ngx_http_reverse_mcp_llm_timer);
        }

        /* closes the cached connections through our close callback */
        curl_multi_cleanup(ngx_http_reverse_mcp_llm_multi);
        ngx_http_reverse_mcp_llm_multi = NULL;

        /* whatever curl closed without telling us */
        while (!ngx_queue_empty(&ngx_http_reverse_mcp_llm_socks)) {
            q = ngx_queue_head(&ngx_http_reverse_mcp_llm_socks);
            ngx_http_reverse_mcp_llm_drop_sock(
                ngx_queue_data(q, ngx_http_reverse_mcp_llm_sock_t, queue));
        }

        if (ngx_http_reverse_mcp_llm_timer.timer_set) {
            ngx_del_timer(&ngx_http_reverse_mcp_llm_timer);
        }

        if (ngx_http_reverse_mcp_llm_timer.posted) {
            ngx_delete_posted_event(&ngx_http_reverse_mcp_llm_timer);
        }
    }

    if (ngx_http_reverse_mcp_llm_global) {
        curl_global_cleanup();
        ngx_http_reverse_mcp_llm_global = 0;
    }
}


ngx_uint_t
ngx_http_reverse_mcp_llm_active(void)
{
    return ngx_http_reverse_mcp_llm_nreqs;
}


const char *
ngx_http_reverse_mcp_llm_error_name(ngx_uint_t type)
{
    if (type > NGX_HTTP_REVERSE_MCP_LLM_ERR_SHUTDOWN) {
        type = NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL;
    }

    return ngx_http_reverse_mcp_llm_errors[type];
}


/* the curl timer keeps a draining worker alive only while transfers run */
static void
ngx_http_reverse_mcp_llm_update_timer(void)
{
    ngx_http_reverse_mcp_llm_timer.cancelable =
                                   (ngx_http_reverse_mcp_llm_nreqs == 0);
}


static ngx_http_reverse_mcp_llm_sock_t *
ngx_http_reverse_mcp_llm_find_sock(curl_socket_t s)
{
    ngx_queue_t                      *q;
    ngx_http_reverse_mcp_llm_sock_t  *sock;

    for (q = ngx_queue_head(&ngx_http_reverse_mcp_llm_socks);
         q != ngx_queue_sentinel(&ngx_http_reverse_mcp_llm_socks);
         q = ngx_queue_next(q))
    {
        sock = ngx_queue_data(q, ngx_http_reverse_mcp_llm_sock_t, queue);

        if (sock->fd == s) {
            return sock;
        }
    }

    return NULL;
}


static ngx_http_reverse_mcp_llm_sock_t *
ngx_http_reverse_mcp_llm_new_sock(curl_socket_t s, ngx_uint_t owned)
{
    ngx_socket_t                      d;
    ngx_connection_t                 *c;
    ngx_http_reverse_mcp_llm_sock_t  *sock;

    sock = ngx_alloc(sizeof(ngx_http_reverse_mcp_llm_sock_t),
                     ngx_http_reverse_mcp_llm_log);
    if (sock == NULL) {
        return NULL;
    }

    /* nginx watches our own descriptor of the same socket */

    d = fcntl(s, F_DUPFD_CLOEXEC, 0);

    if (d == -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_http_reverse_mcp_llm_log, ngx_errno,
                      "reverse_mcp: llm: dup() of socket %d failed", s);
        ngx_free(sock);
        return NULL;
    }

    c = ngx_get_connection(d, ngx_http_reverse_mcp_llm_log);
    if (c == NULL) {
        (void) ngx_close_socket(d);
        ngx_free(sock);
        return NULL;
    }

    c->data = sock;
    c->log = ngx_http_reverse_mcp_llm_log;
    c->read->log = c->log;
    c->write->log = c->log;
    c->read->handler = ngx_http_reverse_mcp_llm_event_handler;
    c->write->handler = ngx_http_reverse_mcp_llm_event_handler;

    sock->conn = c;
    sock->fd = s;
    sock->owned = owned;

    ngx_queue_insert_tail(&ngx_http_reverse_mcp_llm_socks, &sock->queue);

    return sock;
}


/*
 * Events off (explicitly: curl's descriptor may still hold the socket, so
 * closing ours alone would leave the epoll registration), then our
 * descriptor and connection go.
 */
static void
ngx_http_reverse_mcp_llm_drop_sock(ngx_http_reverse_mcp_llm_sock_t *sock)
{
    ngx_connection_t  *c;

    c = sock->conn;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    ngx_queue_remove(&sock->queue);

    ngx_close_connection(c);
    ngx_free(sock);
}


/* curl's descriptor was closed behind our back (see the top) */
static ngx_uint_t
ngx_http_reverse_mcp_llm_fd_closed(ngx_socket_t fd)
{
    return fcntl(fd, F_GETFD) == -1 && ngx_errno == EBADF;
}


/* CURLOPT_OPENSOCKETFUNCTION: the socket is ours */
static curl_socket_t
ngx_http_reverse_mcp_llm_open_cb(void *clientp, curlsocktype purpose,
    struct curl_sockaddr *addr)
{
    ngx_socket_t                      s;
    ngx_http_reverse_mcp_llm_sock_t  *sock;

    if (purpose != CURLSOCKTYPE_IPCXN) {
        return CURL_SOCKET_BAD;
    }

    s = ngx_socket(addr->family, addr->socktype, addr->protocol);

    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_reverse_mcp_llm_log,
                      ngx_socket_errno,
                      "reverse_mcp: llm: " ngx_socket_n " failed");
        return CURL_SOCKET_BAD;
    }

    /* the number is free again: curl closed the old socket itself */
    sock = ngx_http_reverse_mcp_llm_find_sock(s);

    if (sock) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_http_reverse_mcp_llm_log, 0,
                       "reverse_mcp: llm: socket %d was closed by curl", s);
        ngx_http_reverse_mcp_llm_drop_sock(sock);
    }

    sock = ngx_http_reverse_mcp_llm_new_sock(s, 1);

    if (sock == NULL) {
        (void) ngx_close_socket(s);
        return CURL_SOCKET_BAD;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_http_reverse_mcp_llm_log, 0,
                   "reverse_mcp: llm: socket %d opened (watched as %d)", s,
                   sock->conn->fd);

    return s;
}


/* CURLOPT_CLOSESOCKETFUNCTION */
static int
ngx_http_reverse_mcp_llm_close_cb(void *clientp, curl_socket_t item)
{
    ngx_http_reverse_mcp_llm_sock_t  *sock;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_http_reverse_mcp_llm_log, 0,
                   "reverse_mcp: llm: socket %d closed", item);

    sock = ngx_http_reverse_mcp_llm_find_sock(item);

    if (sock) {
        ngx_http_reverse_mcp_llm_drop_sock(sock);
    }

    return ngx_close_socket(item) == -1 ? 1 : 0;
}


/* CURLMOPT_SOCKETFUNCTION: level-triggered interest in one direction */
static int
ngx_http_reverse_mcp_llm_socket_cb(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_event_t                      *rev, *wev;
    ngx_connection_t                 *c;
    ngx_http_reverse_mcp_llm_sock_t  *sock;

    sock = ngx_http_reverse_mcp_llm_find_sock(s);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_http_reverse_mcp_llm_log, 0,
                   "reverse_mcp: llm: socket %d wants %d", s, what);

    if (sock == NULL) {
        if (what == CURL_POLL_REMOVE) {
            return 0;
        }

        /* a socket of curl's own (the threaded resolver's socketpair) */
        sock = ngx_http_reverse_mcp_llm_new_sock(s, 0);
        if (sock == NULL) {
            return -1;
        }
    }

    c = sock->conn;
    rev = c->read;
    wev = c->write;

    if (what == CURL_POLL_REMOVE) {
        if (!sock->owned || ngx_http_reverse_mcp_llm_fd_closed(s)) {
            /* curl closes it (or did) itself: our descriptor goes */
            ngx_http_reverse_mcp_llm_drop_sock(sock);
            return 0;
        }

        /* an idle connection in curl's cache: no events until reused */

        if (rev->active) {
            ngx_del_event(rev, NGX_READ_EVENT, 0);
        }

        if (wev->active) {
            ngx_del_event(wev, NGX_WRITE_EVENT, 0);
        }

        return 0;
    }

    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) {
        if (!rev->active && ngx_add_event(rev, NGX_READ_EVENT, 0) != NGX_OK) {
            return -1;
        }

    } else if (rev->active) {
        ngx_del_event(rev, NGX_READ_EVENT, 0);
    }

    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) {
        if (!wev->active && ngx_add_event(wev, NGX_WRITE_EVENT, 0) != NGX_OK)
        {
            return -1;
        }

    } else if (wev->active) {
        ngx_del_event(wev, NGX_WRITE_EVENT, 0);
    }

    return 0;
}


/* CURLMOPT_TIMERFUNCTION: one timer; "now" is a posted event */
static int
ngx_http_reverse_mcp_llm_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_event_t  *ev;

    ev = &ngx_http_reverse_mcp_llm_timer;

    if (timeout_ms < 0) {
        if (ev->timer_set) {
            ngx_del_timer(ev);
        }

        return 0;
    }

    if (timeout_ms == 0) {
        if (ev->timer_set) {
            ngx_del_timer(ev);
        }

        if (!ev->posted) {
            ngx_post_event(ev, &ngx_posted_events);
        }

        return 0;
    }

    ngx_add_timer(ev, (ngx_msec_t) timeout_ms);

    return 0;
}


static void
ngx_http_reverse_mcp_llm_timer_handler(ngx_event_t *ev)
{
    int  running;

    if (ngx_http_reverse_mcp_llm_multi == NULL) {
        return;
    }

    (void) curl_multi_socket_action(ngx_http_reverse_mcp_llm_multi,
                                    CURL_SOCKET_TIMEOUT, 0, &running);

    ngx_http_reverse_mcp_llm_check_done();
}


static void
ngx_http_reverse_mcp_llm_event_handler(ngx_event_t *ev)
{
    int                                running, mask;
    ngx_socket_t                       fd;
    ngx_connection_t                  *c;
    ngx_http_reverse_mcp_llm_sock_t   *sock;

    c = ev->data;

    if (ngx_http_reverse_mcp_llm_multi == NULL) {
        return;
    }

    if (c->close) {
        /* worker_shutdown_timeout: transfers in flight end now */
        c->close = 0;
        ngx_http_reverse_mcp_llm_fail_all(NGX_HTTP_REVERSE_MCP_LLM_ERR_SHUTDOWN,
                                          "the gateway is shutting down");
        return;
    }

    sock = c->data;
    fd = sock->fd;

    if (sock->owned && ngx_http_reverse_mcp_llm_fd_closed(fd)) {
        /* closed by curl without telling us: stop watching it */
        ngx_http_reverse_mcp_llm_drop_sock(sock);
        return;
    }

    mask = ev->write ? CURL_CSELECT_OUT : CURL_CSELECT_IN;

    if (ev->error) {
        mask |= CURL_CSELECT_ERR;
    }

    /* c may be closed (close callback) before this returns */
    (void) curl_multi_socket_action(ngx_http_reverse_mcp_llm_multi, fd, mask,
                                    &running);

    ngx_http_reverse_mcp_llm_check_done();
}


static void
ngx_http_reverse_mcp_llm_check_done(void)
{
    int                              left;
    CURL                            *easy;
    CURLMsg                         *msg;
    CURLcode                         code;
    ngx_http_reverse_mcp_llm_ctx_t  *ctx;

    while ((msg = curl_multi_info_read(ngx_http_reverse_mcp_llm_multi, &left))
           != NULL)
    {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        easy = msg->easy_handle;
        code = msg->data.result;
        ctx = NULL;

        (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &ctx);

        /* msg is invalid after this */
        curl_multi_remove_handle(ngx_http_reverse_mcp_llm_multi, easy);

        if (ctx == NULL) {
            continue;
        }

        ctx->in_multi = 0;

        ngx_http_reverse_mcp_llm_finish(ctx, code);
    }
}


/* ------------------------------------------------------------------ */
/* requests                                                             */
/* ------------------------------------------------------------------ */


ngx_http_reverse_mcp_llm_req_t *
ngx_http_reverse_mcp_llm_start(ngx_http_reverse_mcp_llm_conf_t *conf,
    ngx_str_t *body, ngx_log_t *log, ngx_http_reverse_mcp_llm_done_pt done,
    ngx_http_reverse_mcp_llm_text_pt on_text, void *data)
{
    u_char                          *p;
    CURL                            *easy;
    ngx_str_t                        h;
    ngx_pool_t                      *pool;
    struct curl_slist               *list;
    ngx_http_reverse_mcp_llm_ctx_t  *ctx;

    if (ngx_http_reverse_mcp_llm_multi == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "reverse_mcp: llm: no curl multi handle in this "
                      "worker");
        return NULL;
    }

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        return NULL;
    }

    ctx = ngx_pcalloc(pool, sizeof(ngx_http_reverse_mcp_llm_ctx_t));
    if (ctx == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    ctx->pool = pool;
    ctx->pub.conf = conf;
    ctx->pub.done = done;
    ctx->pub.on_text = on_text;
    ctx->pub.data = data;
    ctx->pub.log = log;
    ctx->pub.priv = ctx;
    ctx->start = ngx_current_msec;

    ctx->done_ev.handler = ngx_http_reverse_mcp_llm_done_handler;
    ctx->done_ev.data = ctx;
    ctx->done_ev.log = log;

    if (ngx_array_init(&ctx->slots, pool, 4,
                       sizeof(ngx_http_reverse_mcp_llm_slot_t))
        != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return NULL;
    }

    ngx_queue_insert_tail(&ngx_http_reverse_mcp_llm_reqs, &ctx->queue);
    ctx->in_queue = 1;
    ngx_http_reverse_mcp_llm_nreqs++;
    ngx_http_reverse_mcp_llm_update_timer();

    if (conf->key_missing) {
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_CONFIG,
                     "the LLM API key is not available: the environment "
                     "variable %V is not set for nginx workers (add "
                     "\"env %V;\")", &conf->api_key_env, &conf->api_key_env);
        ngx_post_event(&ctx->done_ev, &ngx_posted_events);
        return &ctx->pub;
    }

    ctx->body.data = ngx_pnalloc(pool, body->len);
    if (ctx->body.data == NULL) {
        goto failed;
    }

    ngx_memcpy(ctx->body.data, body->data, body->len);
    ctx->body.len = body->len;

    /* the header list: the key goes into curl's copy only */

    list = NULL;

#define ngx_http_reverse_mcp_llm_header(s)                                    \
    {                                                                         \
        struct curl_slist  *l = curl_slist_append(list, s);                   \
        if (l == NULL) {                                                      \
            goto failed;                                                      \
        }                                                                     \
        list = l;                                                             \
        ctx->headers = l;                                                     \
    }

    ngx_http_reverse_mcp_llm_header("Content-Type: application/json");

    if (conf->stream) {
        ngx_http_reverse_mcp_llm_header("Accept: text/event-stream");

    } else {
        ngx_http_reverse_mcp_llm_header("Accept: application/json");
    }

    /* no 100-continue round trip for large bodies */
    ngx_http_reverse_mcp_llm_header("Expect:");

    if (conf->provider == NGX_HTTP_REVERSE_MCP_LLM_ANTHROPIC) {
        h.len = sizeof("anthropic-version: ") + conf->anthropic_version.len;
        h.data = ngx_pnalloc(pool, h.len);
        if (h.data == NULL) {
            goto failed;
        }

        (void) ngx_sprintf(h.data, "anthropic-version: %V%Z",
                           &conf->anthropic_version);
        ngx_http_reverse_mcp_llm_header((char *) h.data);
    }

    if (conf->api_key.len) {
        h.len = sizeof("Authorization: Bearer ") + conf->api_key.len;
        h.data = ngx_pnalloc(pool, h.len);
        if (h.data == NULL) {
            goto failed;
        }

        if (conf->provider == NGX_HTTP_REVERSE_MCP_LLM_ANTHROPIC) {
            p = ngx_sprintf(h.data, "x-api-key: %V%Z", &conf->api_key);

        } else {
            p = ngx_sprintf(h.data, "Authorization: Bearer %V%Z",
                            &conf->api_key);
        }

        ngx_http_reverse_mcp_llm_header((char *) h.data);

        ngx_explicit_memzero(h.data, p - h.data);
    }

#undef ngx_http_reverse_mcp_llm_header

    easy = curl_easy_init();
    if (easy == NULL) {
        goto failed;
    }

    ctx->easy = easy;

    if (curl_easy_setopt(easy, CURLOPT_URL, conf->url.data) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_PRIVATE, ctx) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, ctx->errbuf)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_POST, 1L) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_POSTFIELDS, ctx->body.data)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t) ctx->body.len)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_HTTPHEADER, ctx->headers)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_USERAGENT,
                            "ngx_http_reverse_mcp_module/"
                            NGX_HTTP_REVERSE_MCP_VERSION)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                            ngx_http_reverse_mcp_llm_write_cb)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_WRITEDATA, ctx) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
                            ngx_http_reverse_mcp_llm_open_cb)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, NULL) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
                            ngx_http_reverse_mcp_llm_close_cb)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, NULL) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) conf->timeout)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                            (long) conf->connect_timeout)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 1L) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https")
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_MAXAGE_CONN, 60L) != CURLE_OK
        || (conf->ca_file.len
            && curl_easy_setopt(easy, CURLOPT_CAINFO, conf->ca_file.data)
               != CURLE_OK))
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "reverse_mcp: llm: curl_easy_setopt() failed");
        goto failed;
    }

    if (curl_multi_add_handle(ngx_http_reverse_mcp_llm_multi, easy)
        != CURLM_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "reverse_mcp: llm: curl_multi_add_handle() failed");
        goto failed;
    }

    ctx->in_multi = 1;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                   "reverse_mcp: llm: POST %V (%uz bytes, stream %i)",
                   &conf->url, ctx->body.len, conf->stream);

    return &ctx->pub;

failed:

    ngx_http_reverse_mcp_llm_destroy(ctx);

    return NULL;
}


void
ngx_http_reverse_mcp_llm_cancel(ngx_http_reverse_mcp_llm_req_t *req)
{
    ngx_http_reverse_mcp_llm_ctx_t  *ctx;

    if (req == NULL) {
        return;
    }

    ctx = req->priv;

    if (ctx->delivering) {
        /* from inside done(): freed when it returns */
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, req->log, 0,
                   "reverse_mcp: llm: request cancelled");

    ngx_http_reverse_mcp_llm_destroy(ctx);
}


static void
ngx_http_reverse_mcp_llm_destroy(ngx_http_reverse_mcp_llm_ctx_t *ctx)
{
    struct curl_slist                *l;
    ngx_uint_t                        i;
    ngx_http_reverse_mcp_llm_slot_t  *slot;

    if (ctx->easy) {
        if (ctx->in_multi) {
            curl_multi_remove_handle(ngx_http_reverse_mcp_llm_multi,
                                     ctx->easy);
            ctx->in_multi = 0;
        }

        curl_easy_cleanup(ctx->easy);
        ctx->easy = NULL;
    }

    if (ctx->headers) {
        /* the key was in one of them */
        for (l = ctx->headers; l; l = l->next) {
            ngx_explicit_memzero(l->data, ngx_strlen(l->data));
        }

        curl_slist_free_all(ctx->headers);
        ctx->headers = NULL;
    }

    if (ctx->done_ev.posted) {
        ngx_delete_posted_event(&ctx->done_ev);
    }

    if (ctx->in_queue) {
        ngx_queue_remove(&ctx->queue);
        ctx->in_queue = 0;
        ngx_http_reverse_mcp_llm_nreqs--;
        ngx_http_reverse_mcp_llm_update_timer();
    }

    ngx_http_reverse_mcp_llm_buf_free(&ctx->line);
    ngx_http_reverse_mcp_llm_buf_free(&ctx->data);
    ngx_http_reverse_mcp_llm_buf_free(&ctx->raw);
    ngx_http_reverse_mcp_llm_buf_free(&ctx->text);
    ngx_http_reverse_mcp_llm_buf_free(&ctx->stop);

    slot = ctx->slots.elts;

    for (i = 0; i < ctx->slots.nelts; i++) {
        ngx_http_reverse_mcp_llm_buf_free(&slot[i].id);
        ngx_http_reverse_mcp_llm_buf_free(&slot[i].name);
        ngx_http_reverse_mcp_llm_buf_free(&slot[i].args);
        ngx_http_reverse_mcp_llm_buf_free(&slot[i].input);
    }

    ngx_destroy_pool(ctx->pool);
}


/* every transfer in flight fails now (worker shutdown) */
static void
ngx_http_reverse_mcp_llm_fail_all(ngx_uint_t type, const char *msg)
{
    ngx_queue_t                     *q;
    ngx_http_reverse_mcp_llm_ctx_t  *ctx;

    for (q = ngx_queue_head(&ngx_http_reverse_mcp_llm_reqs);
         q != ngx_queue_sentinel(&ngx_http_reverse_mcp_llm_reqs);
         q = ngx_queue_next(q))
    {
        ctx = ngx_queue_data(q, ngx_http_reverse_mcp_llm_ctx_t, queue);

        if (!ctx->in_multi) {
            continue;
        }

        curl_multi_remove_handle(ngx_http_reverse_mcp_llm_multi, ctx->easy);
        ctx->in_multi = 0;

        ngx_http_reverse_mcp_llm_error(ctx, type, "%s", msg);

        if (!ctx->done_ev.posted) {
            ngx_post_event(&ctx->done_ev, &ngx_posted_events);
        }
    }
}


/* the transfer is over: turn what came into the result, report later */
static void
ngx_http_reverse_mcp_llm_finish(ngx_http_reverse_mcp_llm_ctx_t *ctx,
    CURLcode code)
{
    long                              status;
    ngx_http_reverse_mcp_llm_conf_t  *conf;

    conf = ctx->pub.conf;
    status = 0;

    (void) curl_easy_getinfo(ctx->easy, CURLINFO_RESPONSE_CODE, &status);
    ctx->status = status;

    if (ctx->err_type) {
        /* found while parsing: the write callback stopped the transfer */
        goto done;
    }

    switch (code) {

    case CURLE_OK:
        break;

    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_CONNECT,
                     "cannot connect to the LLM API at %V: %s",
                     &conf->base_url, ctx->errbuf[0] ? ctx->errbuf
                                                     : curl_easy_strerror(code));
        goto done;

    case CURLE_OPERATION_TIMEDOUT:
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_TIMEOUT,
                     "the LLM API at %V did not answer in time (timeout "
                     "%Mms): %s", &conf->base_url, conf->timeout,
                     ctx->errbuf[0] ? ctx->errbuf : curl_easy_strerror(code));
        goto done;

    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_TLS,
                     "TLS error with the LLM API at %V: %s",
                     &conf->base_url, ctx->errbuf[0] ? ctx->errbuf
                                                     : curl_easy_strerror(code));
        goto done;

    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_CUT,
                     "the connection to the LLM API at %V broke before the "
                     "reply was complete: %s", &conf->base_url,
                     ctx->errbuf[0] ? ctx->errbuf : curl_easy_strerror(code));
        goto done;

    default:
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_CONNECT,
                     "the request to the LLM API at %V failed: %s",
                     &conf->base_url, ctx->errbuf[0] ? ctx->errbuf
                                                     : curl_easy_strerror(code));
        goto done;
    }

    if (status < 200 || status > 299) {
        ngx_http_reverse_mcp_llm_http_error(ctx);
        goto done;
    }

    if (ctx->sse) {
        if (ctx->data.len
            && ngx_http_reverse_mcp_llm_sse_event(ctx) != NGX_OK)
        {
            goto done;
        }

        if (!ctx->complete && !ctx->finished) {
            ngx_http_reverse_mcp_llm_error(ctx,
                         NGX_HTTP_REVERSE_MCP_LLM_ERR_CUT,
                         "the LLM stream ended before the reply was "
                         "complete (%s)", ctx->data_seen
                                          ? "no final event"
                                          : "no event at all");
            goto done;
        }

    } else if (ngx_http_reverse_mcp_llm_whole(ctx) != NGX_OK) {
        goto done;
    }

    (void) ngx_http_reverse_mcp_llm_assemble(ctx);

done:

    ctx->pub.result.elapsed = ngx_current_msec - ctx->start;

    if (!ctx->done_ev.posted) {
        ngx_post_event(&ctx->done_ev, &ngx_posted_events);
    }
}


static void
ngx_http_reverse_mcp_llm_done_handler(ngx_event_t *ev)
{
    ngx_http_reverse_mcp_llm_ctx_t  *ctx = ev->data;

    ngx_http_reverse_mcp_llm_result_t  *res;

    res = &ctx->pub.result;

    if (ctx->err_type) {
        res->error_type = ctx->err_type;
        res->error.data = ctx->err;
        res->error.len = ctx->err_len;
        res->http_status = ctx->err_status;

        ngx_log_error(NGX_LOG_ERR, ctx->pub.log, 0,
                      "reverse_mcp: llm: %s: %V",
                      ngx_http_reverse_mcp_llm_error_name(ctx->err_type),
                      &res->error);

    } else {
        res->http_status = ctx->status;

        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ctx->pub.log, 0,
                       "reverse_mcp: llm: reply in %Mms: %uz bytes of "
                       "text, %ui tool calls, stop \"%V\"", res->elapsed,
                       res->text.len,
                       res->tool_calls ? res->tool_calls->nelts : 0,
                       &res->stop_reason);
    }

    ctx->delivering = 1;

    ctx->pub.done(&ctx->pub);

    ngx_http_reverse_mcp_llm_destroy(ctx);
}


/* ------------------------------------------------------------------ */
/* the reply                                                            */
/* ------------------------------------------------------------------ */


static size_t
ngx_http_reverse_mcp_llm_write_cb(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    ngx_http_reverse_mcp_llm_ctx_t  *ctx = userdata;

    long     status;
    char    *ct;
    size_t   n;

    n = size * nmemb;

    if (ctx->err_type) {
        return 0;
    }

    if (!ctx->decided) {
        ctx->decided = 1;
        status = 0;
        ct = NULL;

        (void) curl_easy_getinfo(ctx->easy, CURLINFO_RESPONSE_CODE, &status);
        (void) curl_easy_getinfo(ctx->easy, CURLINFO_CONTENT_TYPE, &ct);

        ctx->sse = (status >= 200 && status <= 299 && ct
                    && ngx_strncasecmp((u_char *) ct,
                                       (u_char *) "text/event-stream", 17)
                       == 0);
    }

    ctx->received += n;

    if (ctx->received > NGX_HTTP_REVERSE_MCP_LLM_BODY_MAX) {
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_BAD,
                     "the LLM API reply is larger than %uz bytes",
                     (size_t) NGX_HTTP_REVERSE_MCP_LLM_BODY_MAX);
        return 0;
    }

    if (ctx->sse) {
        return ngx_http_reverse_mcp_llm_feed(ctx, (u_char *) ptr, n) == NGX_OK
               ? n : 0;
    }

    if (ngx_http_reverse_mcp_llm_buf_add(&ctx->raw, (u_char *) ptr, n)
        != NGX_OK)
    {
        ngx_http_reverse_mcp_llm_error(ctx,
                     NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL, "out of memory");
        return 0;
    }

    return n;
}


/* SSE: split into lines, whatever the chunking */
static ngx_int_t
ngx_http_reverse_mcp_llm_feed(ngx_http_reverse_mcp_llm_ctx_t *ctx, u_char *p,
    size_t n)
{
    u_char  *end, *nl;

    end = p + n;

    while (p < end) {
        nl = ngx_strlchr(p, end, '\n');

        if (nl == NULL) {
            if (ctx->line.len + (end - p) > NGX_HTTP_REVERSE_MCP_LLM_LINE_MAX)
            {
                ngx_http_reverse_mcp_llm_error(ctx,
                             NGX_HTTP_REVERSE_MCP_LLM_ERR_BAD,
                             "the LLM stream has a line longer than %uz "
                             "bytes", (size_t) NGX_HTTP_REVERSE_MCP_LLM_LINE_MAX);
                return NGX_ERROR;
            }

            if (ngx_http_reverse_mcp_llm_buf_add(&ctx->line, p, end - p)
                != NGX_OK)
            {
                ngx_http_reverse_mcp_llm_error(ctx,
                             NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL,
                             "out of memory");
                return NGX_ERROR;
            }

            return NGX_OK;
        }

        if (ctx->line.len) {
            if (ngx_http_reverse_mcp_llm_buf_add(&ctx->line, p, nl - p)
                != NGX_OK)
            {
                ngx_http_reverse_mcp_llm_error(ctx,
                             NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL,
                             "out of memory");
                return NGX_ERROR;
            }

            if (ngx_http_reverse_mcp_llm_sse_line(ctx, ctx->line.data,
                                                  ctx->line.len)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            ctx->line.len = 0;

        } else if (ngx_http_reverse_mcp_llm_sse_line(ctx, p, nl - p)
                   != NGX_OK)
        {
            return NGX_ERROR;
        }

        p = nl + 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_reverse_mcp_llm_sse_line(ngx_http_reverse_mcp_llm_ctx_t *ctx,
    u_char *p, size_t n)
{
    if (n && p[n - 1] == '\r') {
        n--;
    }

    if (n == 0) {
        /* the end of an event */
        if (ctx->data.len == 0) {
            return NGX_OK;
        }

        return ngx_http_reverse_mcp_llm_sse_event(ctx);
    }

    if (p[0] == ':') {
        return NGX_OK;                           /* a comment */
    }

    if (n >= 5 && ngx_strncmp(p, "data:", 5) == 0) {
        p += 5;
        n -= 5;

        if (n && *p == ' ') {
            p++;
            n--;
        }

        if ((ctx->data.len
             && ngx_http_reverse_mcp_llm_buf_add(&ctx->data,
                                                 (u_char *) "\n", 1)
                != NGX_OK)
            || ngx_http_reverse_mcp_llm_buf_add(&ctx->data, p, n) != NGX_OK)
        {
            ngx_http_reverse_mcp_llm_error(ctx,
                         NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL,
                         "out of memory");
            return NGX_ERROR;
        }

        /* "data: [DONE]" is sometimes not followed by a blank line */
        if (ctx->data.len == 6
            && ngx_strncmp(ctx->data.data, "[DONE]", 6) == 0)
        {
            return ngx_http_reverse_mcp_llm_sse_event(ctx);
        }
    }

    /* "event:", "id:", "retry:": the JSON says it all */

    return NGX_OK;
}


static ngx_int_t
ngx_http_reverse_mcp_llm_sse_event(ngx_http_reverse_mcp_llm_ctx_t *ctx)
{
    char       err[128];
    yajl_val   root;
    ngx_int_t  rc;

    ctx->data_seen = 1;

    if (ctx->data.len == 6 && ngx_strncmp(ctx->data.data, "[DONE]", 6) == 0)
    {
        ctx->complete = 1;
        ctx->data.len = 0;
        return NGX_OK;
    }

    root = ngx_http_reverse_mcp_json_parse(ctx->data.data, ctx->data.len,
                                           err, sizeof(err));

    ctx->data.len = 0;

    if (root == NULL) {
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_BAD,
                     "the LLM API sent malformed JSON in its stream: %s",
                     err);
        return NGX_ERROR;
    }

    if (ctx->pub.conf->provider == NGX_HTTP_REVERSE_MCP_LLM_OPENAI) {
        rc = ngx_http_reverse_mcp_llm_openai_chunk(ctx, root);

    } else {
        rc = ngx_http_reverse_mcp_llm_anthropic_event(ctx, root);
    }

    yajl_tree_free(root);

    return rc;
}


/*
 * {"choices":[{"delta":{"content":"..","tool_calls":[{"index":0,"id":..,
 * "function":{"name":..,"arguments":".."}}]},"finish_reason":..}]}
 */
static ngx_int_t
ngx_http_reverse_mcp_llm_openai_chunk(ngx_http_reverse_mcp_llm_ctx_t *ctx,
    yajl_val root)
{
    size_t                            i;
    yajl_val                          choices, c0, delta, v, tcs, tc, fn, idx;
    ngx_int_t                         index;
    ngx_http_reverse_mcp_llm_slot_t  *slot;

    v = ngx_http_reverse_mcp_json_get(root, "error");

    if (v && YAJL_IS_OBJECT(v)) {
        return ngx_http_reverse_mcp_llm_api_error(ctx, v);
    }

    choices = ngx_http_reverse_mcp_json_get(root, "choices");

    if (choices == NULL || !YAJL_IS_ARRAY(choices)
        || choices->u.array.len == 0)
    {
        /* a usage chunk, a keep-alive: nothing for us */
        return NGX_OK;
    }

    c0 = choices->u.array.values[0];
    delta = ngx_http_reverse_mcp_json_get(c0, "delta");

    v = ngx_http_reverse_mcp_json_get(delta, "content");

    if (v && YAJL_IS_STRING(v) && v->u.string[0]) {
        if (ngx_http_reverse_mcp_llm_text(ctx, (u_char *) v->u.string,
                                          ngx_strlen(v->u.string), 1)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    tcs = ngx_http_reverse_mcp_json_get(delta, "tool_calls");

    if (tcs && YAJL_IS_ARRAY(tcs)) {
        for (i = 0; i < tcs->u.array.len; i++) {
            tc = tcs->u.array.values[i];
            idx = ngx_http_reverse_mcp_json_get(tc, "index");

            index = (idx && YAJL_IS_INTEGER(idx)) ? YAJL_GET_INTEGER(idx)
                                                   : (ngx_int_t) i;

            slot = ngx_http_reverse_mcp_llm_slot(ctx, index,
                                         NGX_HTTP_REVERSE_MCP_LLM_SLOT_TOOL);
            if (slot == NULL) {
                return NGX_ERROR;
            }

            v = ngx_http_reverse_mcp_json_get(tc, "id");

            if (v && YAJL_IS_STRING(v) && v->u.string[0]) {
                slot->id.len = 0;

                if (ngx_http_reverse_mcp_llm_buf_str(&slot->id, v) != NGX_OK) {
                    goto nomem;
                }
            }

            fn = ngx_http_reverse_mcp_json_get(tc, "function");
            v = ngx_http_reverse_mcp_json_get(fn, "name");

            /* some servers repeat the whole name in every chunk */
            if (v && YAJL_IS_STRING(v) && slot->name.len
                && slot->name.len == ngx_strlen(v->u.string)
                && ngx_memcmp(slot->name.data, v->u.string, slot->name.len)
                   == 0)
            {
                v = NULL;
            }

            if (ngx_http_reverse_mcp_llm_buf_str(&slot->name, v) != NGX_OK
                || ngx_http_reverse_mcp_llm_buf_str(&slot->args,
                    ngx_http_reverse_mcp_json_get(fn, "arguments")) != NGX_OK)
            {
                goto nomem;
            }
        }
    }

    v = ngx_http_reverse_mcp_json_get(c0, "finish_reason");

    if (v && YAJL_IS_STRING(v)) {
        ctx->finished = 1;
        ctx->stop.len = 0;

        if (ngx_http_reverse_mcp_llm_buf_str(&ctx->stop, v) != NGX_OK) {
            goto nomem;
        }
    }

    return NGX_OK;

nomem:

    ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL,
                                   "out of memory");
    return NGX_ERROR;
}


/* message_start, content_block_start/delta/stop, message_delta/stop */
static ngx_int_t
ngx_http_reverse_mcp_llm_anthropic_event(ngx_http_reverse_mcp_llm_ctx_t *ctx,
    yajl_val root)
{
    yajl_val                          v, cb, delta, idx;
    ngx_int_t                         index;
    ngx_str_t                         type, t, input;
    ngx_http_reverse_mcp_llm_slot_t  *slot;

    if (ngx_http_reverse_mcp_json_get_str(root, "type", &type) != NGX_OK) {
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_BAD,
                     "the LLM stream has an event without a type");
        return NGX_ERROR;
    }

    idx = ngx_http_reverse_mcp_json_get(root, "index");
    index = (idx && YAJL_IS_INTEGER(idx)) ? YAJL_GET_INTEGER(idx) : 0;

    if (ngx_http_reverse_mcp_llm_str_eq(&type, "error")) {
        return ngx_http_reverse_mcp_llm_api_error(ctx,
                               ngx_http_reverse_mcp_json_get(root, "error"));
    }

    if (ngx_http_reverse_mcp_llm_str_eq(&type, "content_block_start")) {
        cb = ngx_http_reverse_mcp_json_get(root, "content_block");

        if (ngx_http_reverse_mcp_json_get_str(cb, "type", &t) != NGX_OK) {
            return NGX_OK;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&t, "text")) {
            v = ngx_http_reverse_mcp_json_get(cb, "text");

            if (v && YAJL_IS_STRING(v) && v->u.string[0]) {
                return ngx_http_reverse_mcp_llm_text(ctx,
                                                 (u_char *) v->u.string,
                                                 ngx_strlen(v->u.string), 1);
            }

            return NGX_OK;
        }

        if (!ngx_http_reverse_mcp_llm_str_eq(&t, "tool_use")) {
            return NGX_OK;                /* thinking ... */
        }

        slot = ngx_http_reverse_mcp_llm_slot(ctx, index,
                                         NGX_HTTP_REVERSE_MCP_LLM_SLOT_TOOL);
        if (slot == NULL) {
            return NGX_ERROR;
        }

        if (ngx_http_reverse_mcp_llm_buf_str(&slot->id,
                       ngx_http_reverse_mcp_json_get(cb, "id")) != NGX_OK
            || ngx_http_reverse_mcp_llm_buf_str(&slot->name,
                       ngx_http_reverse_mcp_json_get(cb, "name")) != NGX_OK)
        {
            goto nomem;
        }

        v = ngx_http_reverse_mcp_json_get(cb, "input");

        if (v && YAJL_IS_OBJECT(v) && v->u.object.len) {
            if (ngx_http_reverse_mcp_json_dump(ctx->pool, v, &input)
                != NGX_OK
                || ngx_http_reverse_mcp_llm_buf_add(&slot->input, input.data,
                                                    input.len)
                   != NGX_OK)
            {
                goto nomem;
            }
        }

        return NGX_OK;
    }

    if (ngx_http_reverse_mcp_llm_str_eq(&type, "content_block_delta")) {
        delta = ngx_http_reverse_mcp_json_get(root, "delta");

        if (ngx_http_reverse_mcp_json_get_str(delta, "type", &t) != NGX_OK) {
            return NGX_OK;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&t, "text_delta")) {
            v = ngx_http_reverse_mcp_json_get(delta, "text");

            if (v && YAJL_IS_STRING(v) && v->u.string[0]) {
                return ngx_http_reverse_mcp_llm_text(ctx,
                                                 (u_char *) v->u.string,
                                                 ngx_strlen(v->u.string), 1);
            }

            return NGX_OK;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&t, "input_json_delta")) {
            slot = ngx_http_reverse_mcp_llm_slot(ctx, index,
                                         NGX_HTTP_REVERSE_MCP_LLM_SLOT_TOOL);
            if (slot == NULL) {
                return NGX_ERROR;
            }

            if (ngx_http_reverse_mcp_llm_buf_str(&slot->args,
                    ngx_http_reverse_mcp_json_get(delta, "partial_json"))
                != NGX_OK)
            {
                goto nomem;
            }
        }

        return NGX_OK;
    }

    if (ngx_http_reverse_mcp_llm_str_eq(&type, "message_delta")) {
        delta = ngx_http_reverse_mcp_json_get(root, "delta");
        v = ngx_http_reverse_mcp_json_get(delta, "stop_reason");

        if (v && YAJL_IS_STRING(v)) {
            ctx->stop.len = 0;

            if (ngx_http_reverse_mcp_llm_buf_str(&ctx->stop, v) != NGX_OK) {
                goto nomem;
            }
        }

        return NGX_OK;
    }

    if (ngx_http_reverse_mcp_llm_str_eq(&type, "message_stop")) {
        ctx->complete = 1;
    }

    /* message_start, content_block_stop, ping */

    return NGX_OK;

nomem:

    ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL,
                                   "out of memory");
    return NGX_ERROR;
}


/* a reply that is not a stream: one JSON document */
static ngx_int_t
ngx_http_reverse_mcp_llm_whole(ngx_http_reverse_mcp_llm_ctx_t *ctx)
{
    char                              err[128];
    size_t                            i;
    yajl_val                          root, choices, msg, v, tcs, tc, fn;
    yajl_val                          content, block;
    ngx_int_t                         rc;
    ngx_str_t                         t, s;
    ngx_http_reverse_mcp_llm_slot_t  *slot;

    root = ngx_http_reverse_mcp_json_parse(ctx->raw.data, ctx->raw.len, err,
                                           sizeof(err));
    if (root == NULL) {
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_BAD,
                     "the LLM API sent malformed JSON: %s", err);
        return NGX_ERROR;
    }

    rc = NGX_OK;

    v = ngx_http_reverse_mcp_json_get(root, "error");

    if (v && YAJL_IS_OBJECT(v)) {
        rc = ngx_http_reverse_mcp_llm_api_error(ctx, v);
        goto done;
    }

    if (ctx->pub.conf->provider == NGX_HTTP_REVERSE_MCP_LLM_OPENAI) {

        choices = ngx_http_reverse_mcp_json_get(root, "choices");

        if (choices == NULL || !YAJL_IS_ARRAY(choices)
            || choices->u.array.len == 0)
        {
            ngx_http_reverse_mcp_llm_error(ctx,
                         NGX_HTTP_REVERSE_MCP_LLM_ERR_BAD,
                         "the LLM API reply has no \"choices\"");
            rc = NGX_ERROR;
            goto done;
        }

        msg = ngx_http_reverse_mcp_json_get(choices->u.array.values[0],
                                            "message");
        v = ngx_http_reverse_mcp_json_get(msg, "content");

        if (v && YAJL_IS_STRING(v)
            && ngx_http_reverse_mcp_llm_text(ctx, (u_char *) v->u.string,
                                             ngx_strlen(v->u.string), 0)
               != NGX_OK)
        {
            rc = NGX_ERROR;
            goto done;
        }

        tcs = ngx_http_reverse_mcp_json_get(msg, "tool_calls");

        for (i = 0; tcs && YAJL_IS_ARRAY(tcs) && i < tcs->u.array.len; i++) {
            tc = tcs->u.array.values[i];
            fn = ngx_http_reverse_mcp_json_get(tc, "function");

            slot = ngx_http_reverse_mcp_llm_slot(ctx, i,
                                         NGX_HTTP_REVERSE_MCP_LLM_SLOT_TOOL);
            if (slot == NULL) {
                rc = NGX_ERROR;
                goto done;
            }

            if (ngx_http_reverse_mcp_llm_buf_str(&slot->id,
                        ngx_http_reverse_mcp_json_get(tc, "id")) != NGX_OK
                || ngx_http_reverse_mcp_llm_buf_str(&slot->name,
                        ngx_http_reverse_mcp_json_get(fn, "name")) != NGX_OK
                || ngx_http_reverse_mcp_llm_buf_str(&slot->args,
                        ngx_http_reverse_mcp_json_get(fn, "arguments"))
                   != NGX_OK)
            {
                goto nomem;
            }

            /* some servers send the arguments as an object */
            v = ngx_http_reverse_mcp_json_get(fn, "arguments");

            if (v && YAJL_IS_OBJECT(v)) {
                if (ngx_http_reverse_mcp_json_dump(ctx->pool, v, &s) != NGX_OK
                    || ngx_http_reverse_mcp_llm_buf_add(&slot->args, s.data,
                                                        s.len)
                       != NGX_OK)
                {
                    goto nomem;
                }
            }
        }

        v = ngx_http_reverse_mcp_json_get(choices->u.array.values[0],
                                          "finish_reason");

        if (ngx_http_reverse_mcp_llm_buf_str(&ctx->stop, v) != NGX_OK) {
            goto nomem;
        }

        goto done;
    }

    /* Anthropic: {"content":[{"type":"text"|"tool_use",...}],...} */

    content = ngx_http_reverse_mcp_json_get(root, "content");

    if (content == NULL || !YAJL_IS_ARRAY(content)) {
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_BAD,
                     "the LLM API reply has no \"content\"");
        rc = NGX_ERROR;
        goto done;
    }

    for (i = 0; i < content->u.array.len; i++) {
        block = content->u.array.values[i];

        if (ngx_http_reverse_mcp_json_get_str(block, "type", &t) != NGX_OK) {
            continue;
        }

        if (ngx_http_reverse_mcp_llm_str_eq(&t, "text")) {
            if (ngx_http_reverse_mcp_json_get_str(block, "text", &s) == NGX_OK
                && ngx_http_reverse_mcp_llm_text(ctx, s.data, s.len, 0)
                   != NGX_OK)
            {
                rc = NGX_ERROR;
                goto done;
            }

            continue;
        }

        if (!ngx_http_reverse_mcp_llm_str_eq(&t, "tool_use")) {
            continue;
        }

        slot = ngx_http_reverse_mcp_llm_slot(ctx, i,
                                         NGX_HTTP_REVERSE_MCP_LLM_SLOT_TOOL);
        if (slot == NULL) {
            rc = NGX_ERROR;
            goto done;
        }

        if (ngx_http_reverse_mcp_llm_buf_str(&slot->id,
                    ngx_http_reverse_mcp_json_get(block, "id")) != NGX_OK
            || ngx_http_reverse_mcp_llm_buf_str(&slot->name,
                    ngx_http_reverse_mcp_json_get(block, "name")) != NGX_OK)
        {
            goto nomem;
        }

        v = ngx_http_reverse_mcp_json_get(block, "input");

        if (v && YAJL_IS_OBJECT(v)) {
            if (ngx_http_reverse_mcp_json_dump(ctx->pool, v, &s) != NGX_OK
                || ngx_http_reverse_mcp_llm_buf_add(&slot->args, s.data, s.len)
                   != NGX_OK)
            {
                goto nomem;
            }
        }
    }

    v = ngx_http_reverse_mcp_json_get(root, "stop_reason");

    if (ngx_http_reverse_mcp_llm_buf_str(&ctx->stop, v) != NGX_OK) {
        goto nomem;
    }

done:

    yajl_tree_free(root);

    return rc;

nomem:

    yajl_tree_free(root);

    ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL,
                                   "out of memory");
    return NGX_ERROR;
}


/* HTTP 4xx/5xx: the provider's own message when it sent one */
static void
ngx_http_reverse_mcp_llm_http_error(ngx_http_reverse_mcp_llm_ctx_t *ctx)
{
    char        err[128];
    u_char     *p, *end;
    size_t      n;
    yajl_val    root, e;
    ngx_str_t   msg, type;

    ngx_str_null(&msg);
    ngx_str_null(&type);
    root = NULL;

    if (ctx->raw.len) {
        root = ngx_http_reverse_mcp_json_parse(ctx->raw.data, ctx->raw.len,
                                               err, sizeof(err));
    }

    if (root) {
        e = ngx_http_reverse_mcp_json_get(root, "error");

        if (e && YAJL_IS_STRING(e)) {
            msg.data = (u_char *) e->u.string;
            msg.len = ngx_strlen(e->u.string);

        } else {
            (void) ngx_http_reverse_mcp_json_get_str(e, "message", &msg);
            (void) ngx_http_reverse_mcp_json_get_str(e, "type", &type);
        }

        if (msg.len == 0) {
            (void) ngx_http_reverse_mcp_json_get_str(root, "message", &msg);
        }
    }

    if (msg.len == 0 && ctx->raw.len) {
        /* not JSON: the start of the text, on one line */
        msg.data = ctx->raw.data;
        msg.len = ngx_min(ctx->raw.len, NGX_HTTP_REVERSE_MCP_LLM_MSG_MAX);

        end = msg.data + msg.len;

        for (p = msg.data; p < end; p++) {
            if (*p < 0x20 || *p == 0x7f) {
                *p = ' ';
            }
        }
    }

    n = ngx_min(msg.len, NGX_HTTP_REVERSE_MCP_LLM_MSG_MAX);
    msg.len = n;

    if (msg.len) {
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_HTTP,
                     "the LLM API answered HTTP %ui%s%V%s: %V", ctx->status,
                     type.len ? " (" : "", &type, type.len ? ")" : "", &msg);

    } else {
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_HTTP,
                     "the LLM API answered HTTP %ui", ctx->status);
    }

    ctx->err_status = ctx->status;

    if (root) {
        yajl_tree_free(root);
    }
}


/* {"type":"overloaded_error","message":".."} inside a 200 reply */
static ngx_int_t
ngx_http_reverse_mcp_llm_api_error(ngx_http_reverse_mcp_llm_ctx_t *ctx,
    yajl_val err)
{
    ngx_str_t  msg, type;

    ngx_str_set(&msg, "(no message)");
    ngx_str_null(&type);

    (void) ngx_http_reverse_mcp_json_get_str(err, "message", &msg);
    (void) ngx_http_reverse_mcp_json_get_str(err, "type", &type);

    if (msg.len > NGX_HTTP_REVERSE_MCP_LLM_MSG_MAX) {
        msg.len = NGX_HTTP_REVERSE_MCP_LLM_MSG_MAX;
    }

    ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_API,
                 "the LLM API reported an error%s%V%s: %V",
                 type.len ? " (" : "", &type, type.len ? ")" : "", &msg);

    return NGX_ERROR;
}


/* the result, in the request's pool */
static ngx_int_t
ngx_http_reverse_mcp_llm_assemble(ngx_http_reverse_mcp_llm_ctx_t *ctx)
{
    ngx_uint_t                             i;
    ngx_http_reverse_mcp_llm_slot_t       *slot;
    ngx_http_reverse_mcp_llm_result_t     *res;
    ngx_http_reverse_mcp_llm_tool_call_t  *tc;

    res = &ctx->pub.result;

    res->text.len = ctx->text.len;
    res->text.data = ngx_pnalloc(ctx->pool, ctx->text.len + 1);
    res->stop_reason.len = ctx->stop.len;
    res->stop_reason.data = ngx_pnalloc(ctx->pool, ctx->stop.len + 1);
    res->tool_calls = ngx_array_create(ctx->pool, 4,
                                 sizeof(ngx_http_reverse_mcp_llm_tool_call_t));

    if (res->text.data == NULL || res->stop_reason.data == NULL
        || res->tool_calls == NULL)
    {
        goto nomem;
    }

    if (ctx->text.len) {
        ngx_memcpy(res->text.data, ctx->text.data, ctx->text.len);
    }

    if (ctx->stop.len) {
        ngx_memcpy(res->stop_reason.data, ctx->stop.data, ctx->stop.len);
    }

    slot = ctx->slots.elts;

    for (i = 0; i < ctx->slots.nelts; i++) {
        if (slot[i].kind != NGX_HTTP_REVERSE_MCP_LLM_SLOT_TOOL) {
            continue;
        }

        tc = ngx_array_push(res->tool_calls);
        if (tc == NULL) {
            goto nomem;
        }

        if (slot[i].id.len) {
            tc->id.data = ngx_pnalloc(ctx->pool, slot[i].id.len);
            if (tc->id.data == NULL) {
                goto nomem;
            }

            ngx_memcpy(tc->id.data, slot[i].id.data, slot[i].id.len);
            tc->id.len = slot[i].id.len;

        } else {
            tc->id.data = ngx_pnalloc(ctx->pool, NGX_INT_T_LEN + 16);
            if (tc->id.data == NULL) {
                goto nomem;
            }

            tc->id.len = ngx_sprintf(tc->id.data, "call_%P_%ui", ngx_pid,
                                     ++ngx_http_reverse_mcp_llm_id_seq)
                         - tc->id.data;
        }

        tc->name.len = slot[i].name.len;
        tc->name.data = ngx_pnalloc(ctx->pool, slot[i].name.len + 1);

        if (tc->name.data == NULL) {
            goto nomem;
        }

        if (slot[i].name.len) {
            ngx_memcpy(tc->name.data, slot[i].name.data, slot[i].name.len);
        }

        /* arguments: the streamed text, or the start's input, or {} */

        if (slot[i].args.len) {
            tc->arguments.len = slot[i].args.len;
            tc->arguments.data = ngx_pnalloc(ctx->pool, slot[i].args.len);
            if (tc->arguments.data == NULL) {
                goto nomem;
            }

            ngx_memcpy(tc->arguments.data, slot[i].args.data,
                       slot[i].args.len);

        } else if (slot[i].input.len) {
            tc->arguments.len = slot[i].input.len;
            tc->arguments.data = ngx_pnalloc(ctx->pool, slot[i].input.len);
            if (tc->arguments.data == NULL) {
                goto nomem;
            }

            ngx_memcpy(tc->arguments.data, slot[i].input.data,
                       slot[i].input.len);

        } else {
            ngx_str_set(&tc->arguments, "{}");
        }
    }

    return NGX_OK;

nomem:

    ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL,
                                   "out of memory");
    return NGX_ERROR;
}


/* the first error wins; the API key never appears in it */
static void
ngx_http_reverse_mcp_llm_error(ngx_http_reverse_mcp_llm_ctx_t *ctx,
    ngx_uint_t type, const char *fmt, ...)
{
    u_char     *p, *end, *k;
    size_t      n;
    va_list     args;
    ngx_str_t  *key;

    if (ctx->err_type) {
        return;
    }

    ctx->err_type = type;

    va_start(args, fmt);
    p = ngx_vslprintf(ctx->err, ctx->err + sizeof(ctx->err), fmt, args);
    va_end(args);

    ctx->err_len = p - ctx->err;

    key = &ctx->pub.conf->api_key;

    if (key->len < 4) {
        return;
    }

    end = ctx->err + ctx->err_len;
    p = ctx->err;

    for ( ;; ) {
        for (k = p; k + key->len <= end; k++) {
            if (ngx_memcmp(k, key->data, key->len) == 0) {
                break;
            }
        }

        if (k + key->len > end) {
            break;
        }

        /* "[redacted]" is 10 bytes: shorter keys are masked in place */
        n = ngx_min(key->len, 10);
        ngx_memcpy(k, "[redacted]", n);
        ngx_memmove(k + n, k + key->len, end - (k + key->len));
        end -= key->len - n;
        p = k + n;
    }

    ctx->err_len = end - ctx->err;
}


static ngx_http_reverse_mcp_llm_slot_t *
ngx_http_reverse_mcp_llm_slot(ngx_http_reverse_mcp_llm_ctx_t *ctx,
    ngx_int_t index, ngx_uint_t kind)
{
    ngx_uint_t                        i;
    ngx_http_reverse_mcp_llm_slot_t  *slot;

    slot = ctx->slots.elts;

    for (i = 0; i < ctx->slots.nelts; i++) {
        if (slot[i].index == index) {
            if (kind == NGX_HTTP_REVERSE_MCP_LLM_SLOT_TOOL) {
                slot[i].kind = kind;
            }

            return &slot[i];
        }
    }

    if (ctx->slots.nelts >= 128) {
        ngx_http_reverse_mcp_llm_error(ctx, NGX_HTTP_REVERSE_MCP_LLM_ERR_BAD,
                     "the LLM asked for more than 128 tool calls at once");
        return NULL;
    }

    slot = ngx_array_push(&ctx->slots);
    if (slot == NULL) {
        ngx_http_reverse_mcp_llm_error(ctx,
                     NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL, "out of memory");
        return NULL;
    }

    ngx_memzero(slot, sizeof(ngx_http_reverse_mcp_llm_slot_t));
    slot->index = index;
    slot->kind = kind;

    return slot;
}


static ngx_int_t
ngx_http_reverse_mcp_llm_text(ngx_http_reverse_mcp_llm_ctx_t *ctx, u_char *p,
    size_t n, ngx_uint_t stream)
{
    ngx_str_t  s;

    if (ngx_http_reverse_mcp_llm_buf_add(&ctx->text, p, n) != NGX_OK) {
        ngx_http_reverse_mcp_llm_error(ctx,
                     NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL, "out of memory");
        return NGX_ERROR;
    }

    if (stream && ctx->pub.on_text) {
        s.data = p;
        s.len = n;
        ctx->pub.on_text(&ctx->pub, &s);
    }

    return NGX_OK;
}


/* ------------------------------------------------------------------ */
/* request bodies                                                       */
/* ------------------------------------------------------------------ */


#define ngx_http_reverse_mcp_llm_gen_lit(g, s)                                \
    yajl_gen_string(g, (const unsigned char *) s, sizeof(s) - 1)

#define ngx_http_reverse_mcp_llm_gen_str(g, s)                                \
    yajl_gen_string(g, (const unsigned char *) (s)->data, (s)->len)

/* a JSON text we validated, inserted as it is */
#define ngx_http_reverse_mcp_llm_gen_raw(g, s)                                \
    yajl_gen_number(g, (const char *) (s)->data, (s)->len)


ngx_int_t
ngx_http_reverse_mcp_llm_build(ngx_pool_t *pool,
    ngx_http_reverse_mcp_llm_conf_t *conf, ngx_array_t *messages,
    ngx_array_t *tools, ngx_str_t *body)
{
    u_char                                *num;
    size_t                                 len;
    yajl_gen                               g;
    ngx_str_t                              empty;
    ngx_uint_t                             i, j, role, open, anthropic;
    const unsigned char                   *buf;
    ngx_http_reverse_mcp_llm_msg_t        *m;
    ngx_http_reverse_mcp_llm_tool_t       *t;
    ngx_http_reverse_mcp_llm_tool_call_t  *tc;
    u_char                                 nbuf[NGX_INT_T_LEN];

    anthropic = (conf->provider == NGX_HTTP_REVERSE_MCP_LLM_ANTHROPIC);
    ngx_str_set(&empty, "(no output)");

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    yajl_gen_map_open(g);

    ngx_http_reverse_mcp_llm_gen_lit(g, "model");
    ngx_http_reverse_mcp_llm_gen_str(g, &conf->model);

    if (conf->max_tokens) {
        ngx_http_reverse_mcp_llm_gen_lit(g, "max_tokens");
        num = ngx_sprintf(nbuf, "%ui", conf->max_tokens);
        yajl_gen_number(g, (const char *) nbuf, num - nbuf);
    }

    if (conf->temperature.len) {
        ngx_http_reverse_mcp_llm_gen_lit(g, "temperature");
        ngx_http_reverse_mcp_llm_gen_raw(g, &conf->temperature);
    }

    ngx_http_reverse_mcp_llm_gen_lit(g, "stream");
    yajl_gen_bool(g, conf->stream ? 1 : 0);

    if (anthropic && conf->system.len) {
        ngx_http_reverse_mcp_llm_gen_lit(g, "system");
        ngx_http_reverse_mcp_llm_gen_str(g, &conf->system);
    }

    ngx_http_reverse_mcp_llm_gen_lit(g, "messages");
    yajl_gen_array_open(g);

    if (!anthropic && conf->system.len) {
        yajl_gen_map_open(g);
        ngx_http_reverse_mcp_llm_gen_lit(g, "role");
        ngx_http_reverse_mcp_llm_gen_lit(g, "system");
        ngx_http_reverse_mcp_llm_gen_lit(g, "content");
        ngx_http_reverse_mcp_llm_gen_str(g, &conf->system);
        yajl_gen_map_close(g);
    }

    m = messages->elts;
    open = 0;

    for (i = 0; i < messages->nelts; i++) {

        if (!anthropic) {
            yajl_gen_map_open(g);
            ngx_http_reverse_mcp_llm_gen_lit(g, "role");

            switch (m[i].role) {

            case NGX_HTTP_REVERSE_MCP_LLM_USER:
                ngx_http_reverse_mcp_llm_gen_lit(g, "user");
                ngx_http_reverse_mcp_llm_gen_lit(g, "content");
                ngx_http_reverse_mcp_llm_gen_str(g, &m[i].content);
                break;

            case NGX_HTTP_REVERSE_MCP_LLM_ASSISTANT:
                ngx_http_reverse_mcp_llm_gen_lit(g, "assistant");
                ngx_http_reverse_mcp_llm_gen_lit(g, "content");

                if (m[i].content.len
                    || m[i].tool_calls == NULL
                    || m[i].tool_calls->nelts == 0)
                {
                    /* an assistant message needs content or tool calls */
                    ngx_http_reverse_mcp_llm_gen_str(g, &m[i].content);

                } else {
                    yajl_gen_null(g);
                }

                if (m[i].tool_calls && m[i].tool_calls->nelts) {
                    ngx_http_reverse_mcp_llm_gen_lit(g, "tool_calls");
                    yajl_gen_array_open(g);

                    tc = m[i].tool_calls->elts;

                    for (j = 0; j < m[i].tool_calls->nelts; j++) {
                        yajl_gen_map_open(g);
                        ngx_http_reverse_mcp_llm_gen_lit(g, "id");
                        ngx_http_reverse_mcp_llm_gen_str(g, &tc[j].id);
                        ngx_http_reverse_mcp_llm_gen_lit(g, "type");
                        ngx_http_reverse_mcp_llm_gen_lit(g, "function");
                        ngx_http_reverse_mcp_llm_gen_lit(g, "function");
                        yajl_gen_map_open(g);
                        ngx_http_reverse_mcp_llm_gen_lit(g, "name");
                        ngx_http_reverse_mcp_llm_gen_str(g, &tc[j].name);
                        ngx_http_reverse_mcp_llm_gen_lit(g, "arguments");
                        ngx_http_reverse_mcp_llm_gen_str(g, &tc[j].arguments);
                        yajl_gen_map_close(g);
                        yajl_gen_map_close(g);
                    }

                    yajl_gen_array_close(g);
                }

                break;

            default: /* tool */
                ngx_http_reverse_mcp_llm_gen_lit(g, "tool");
                ngx_http_reverse_mcp_llm_gen_lit(g, "tool_call_id");
                ngx_http_reverse_mcp_llm_gen_str(g, &m[i].tool_call_id);
                ngx_http_reverse_mcp_llm_gen_lit(g, "content");
                ngx_http_reverse_mcp_llm_gen_str(g, m[i].content.len
                                                    ? &m[i].content : &empty);
                break;
            }

            yajl_gen_map_close(g);
            continue;
        }

        /* Anthropic: alternating roles, content blocks; tool results are
         * user blocks; consecutive messages of one role are merged */

        if (m[i].role == NGX_HTTP_REVERSE_MCP_LLM_ASSISTANT
            && m[i].content.len == 0
            && (m[i].tool_calls == NULL || m[i].tool_calls->nelts == 0))
        {
            continue;                 /* nothing to say: no empty blocks */
        }

        role = (m[i].role == NGX_HTTP_REVERSE_MCP_LLM_ASSISTANT)
               ? NGX_HTTP_REVERSE_MCP_LLM_ASSISTANT
               : NGX_HTTP_REVERSE_MCP_LLM_USER;

        if (open != role) {
            if (open) {
                yajl_gen_array_close(g);
                yajl_gen_map_close(g);
            }

            yajl_gen_map_open(g);
            ngx_http_reverse_mcp_llm_gen_lit(g, "role");

            if (role == NGX_HTTP_REVERSE_MCP_LLM_USER) {
                ngx_http_reverse_mcp_llm_gen_lit(g, "user");

            } else {
                ngx_http_reverse_mcp_llm_gen_lit(g, "assistant");
            }

            ngx_http_reverse_mcp_llm_gen_lit(g, "content");
            yajl_gen_array_open(g);
            open = role;
        }

        if (m[i].role == NGX_HTTP_REVERSE_MCP_LLM_TOOL) {
            yajl_gen_map_open(g);
            ngx_http_reverse_mcp_llm_gen_lit(g, "type");
            ngx_http_reverse_mcp_llm_gen_lit(g, "tool_result");
            ngx_http_reverse_mcp_llm_gen_lit(g, "tool_use_id");
            ngx_http_reverse_mcp_llm_gen_str(g, &m[i].tool_call_id);
            ngx_http_reverse_mcp_llm_gen_lit(g, "content");
            ngx_http_reverse_mcp_llm_gen_str(g, m[i].content.len
                                                ? &m[i].content : &empty);

            if (m[i].is_error) {
                ngx_http_reverse_mcp_llm_gen_lit(g, "is_error");
                yajl_gen_bool(g, 1);
            }

            yajl_gen_map_close(g);
            continue;
        }

        if (m[i].content.len) {
            yajl_gen_map_open(g);
            ngx_http_reverse_mcp_llm_gen_lit(g, "type");
            ngx_http_reverse_mcp_llm_gen_lit(g, "text");
            ngx_http_reverse_mcp_llm_gen_lit(g, "text");
            ngx_http_reverse_mcp_llm_gen_str(g, &m[i].content);
            yajl_gen_map_close(g);
        }

        if (m[i].role != NGX_HTTP_REVERSE_MCP_LLM_ASSISTANT
            || m[i].tool_calls == NULL)
        {
            continue;
        }

        tc = m[i].tool_calls->elts;

        for (j = 0; j < m[i].tool_calls->nelts; j++) {
            yajl_gen_map_open(g);
            ngx_http_reverse_mcp_llm_gen_lit(g, "type");
            ngx_http_reverse_mcp_llm_gen_lit(g, "tool_use");
            ngx_http_reverse_mcp_llm_gen_lit(g, "id");
            ngx_http_reverse_mcp_llm_gen_str(g, &tc[j].id);
            ngx_http_reverse_mcp_llm_gen_lit(g, "name");
            ngx_http_reverse_mcp_llm_gen_str(g, &tc[j].name);
            ngx_http_reverse_mcp_llm_gen_lit(g, "input");
            ngx_http_reverse_mcp_llm_gen_raw(g, &tc[j].arguments);
            yajl_gen_map_close(g);
        }
    }

    if (open) {
        yajl_gen_array_close(g);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);

    if (tools && tools->nelts) {
        ngx_http_reverse_mcp_llm_gen_lit(g, "tools");
        yajl_gen_array_open(g);

        t = tools->elts;

        for (i = 0; i < tools->nelts; i++) {
            yajl_gen_map_open(g);

            if (anthropic) {
                ngx_http_reverse_mcp_llm_gen_lit(g, "name");
                ngx_http_reverse_mcp_llm_gen_str(g, &t[i].name);

                if (t[i].description.len) {
                    ngx_http_reverse_mcp_llm_gen_lit(g, "description");
                    ngx_http_reverse_mcp_llm_gen_str(g, &t[i].description);
                }

                ngx_http_reverse_mcp_llm_gen_lit(g, "input_schema");
                ngx_http_reverse_mcp_llm_gen_raw(g, &t[i].schema);

            } else {
                ngx_http_reverse_mcp_llm_gen_lit(g, "type");
                ngx_http_reverse_mcp_llm_gen_lit(g, "function");
                ngx_http_reverse_mcp_llm_gen_lit(g, "function");
                yajl_gen_map_open(g);
                ngx_http_reverse_mcp_llm_gen_lit(g, "name");
                ngx_http_reverse_mcp_llm_gen_str(g, &t[i].name);

                if (t[i].description.len) {
                    ngx_http_reverse_mcp_llm_gen_lit(g, "description");
                    ngx_http_reverse_mcp_llm_gen_str(g, &t[i].description);
                }

                ngx_http_reverse_mcp_llm_gen_lit(g, "parameters");
                ngx_http_reverse_mcp_llm_gen_raw(g, &t[i].schema);
                yajl_gen_map_close(g);
            }

            yajl_gen_map_close(g);
        }

        yajl_gen_array_close(g);
    }

    if (yajl_gen_map_close(g) != yajl_gen_status_ok
        || yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
    {
        yajl_gen_free(g);
        return NGX_ERROR;
    }

    body->data = ngx_pnalloc(pool, len);
    if (body->data == NULL) {
        yajl_gen_free(g);
        return NGX_ERROR;
    }

    ngx_memcpy(body->data, buf, len);
    body->len = len;

    yajl_gen_free(g);

    return NGX_OK;
}


/* ------------------------------------------------------------------ */
/* helpers                                                              */
/* ------------------------------------------------------------------ */


static ngx_int_t
ngx_http_reverse_mcp_llm_buf_add(ngx_http_reverse_mcp_llm_buf_t *b,
    const u_char *p, size_t n)
{
    u_char  *d;
    size_t   cap;

    if (n == 0) {
        return NGX_OK;
    }

    if (b->len + n > b->cap) {
        cap = ngx_max(b->cap * 2, b->len + n);
        cap = ngx_max(cap, 256);

        d = realloc(b->data, cap);
        if (d == NULL) {
            return NGX_ERROR;
        }

        b->data = d;
        b->cap = cap;
    }

    ngx_memcpy(b->data + b->len, p, n);
    b->len += n;

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_llm_buf_free(ngx_http_reverse_mcp_llm_buf_t *b)
{
    if (b->data) {
        free(b->data);
    }

    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}


/* append a JSON string value (absent or not a string: nothing) */
static ngx_int_t
ngx_http_reverse_mcp_llm_buf_str(ngx_http_reverse_mcp_llm_buf_t *b,
    yajl_val v)
{
    if (v == NULL || !YAJL_IS_STRING(v)) {
        return NGX_OK;
    }

    return ngx_http_reverse_mcp_llm_buf_add(b, (u_char *) v->u.string,
                                            ngx_strlen(v->u.string));
}


static ngx_int_t
ngx_http_reverse_mcp_llm_str_eq(ngx_str_t *s, const char *c)
{
    size_t  n;

    n = ngx_strlen(c);

    return s->len == n && ngx_strncmp(s->data, c, n) == 0;
}
