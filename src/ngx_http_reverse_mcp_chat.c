/*
 * The chat agent (see ngx_http_reverse_mcp_chat.h): the tool loop, the
 * commands, the history, and the plain JSON + SSE chat API.
 *
 * One message: take the conversation (busy while the message runs), then
 * rounds of
 *     tools of the servers connected now (the registry, every round)
 *     -> the LLM request (ngx_http_reverse_mcp_llm.c, non-blocking)
 *     -> tool calls, all at once, through ngx_http_reverse_mcp_call_*
 *        (any worker owns the socket), results turned into text
 * until the model answers without tool calls, or max_rounds rounds of
 * tools were run.  The answer is saved in the history (user message and
 * answer per turn; tool exchanges are not kept across turns) and the
 * conversation released.  A client that goes away cancels the LLM request
 * and the tool calls (request cleanup).  A server that asks for a sample
 * during its tool call (sampling/createMessage) is answered by the same
 * model (ngx_http_reverse_mcp_chat_sample).
 */

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_chat.h"
#include "ngx_http_reverse_mcp_llm.h"
#include "ngx_http_reverse_mcp_http.h"
#include "ngx_http_reverse_mcp_history.h"
#include "ngx_http_reverse_mcp_registry.h"
#include "ngx_http_reverse_mcp_call.h"
#include "ngx_http_reverse_mcp_json.h"
#include "ngx_http_reverse_mcp_names.h"

#include <openssl/rand.h>


#define NGX_HTTP_REVERSE_MCP_CHAT_RESULT_MAX   (256 * 1024)
#define NGX_HTTP_REVERSE_MCP_CHAT_SUMMARY_MAX  4096
#define NGX_HTTP_REVERSE_MCP_CHAT_ERR_MAX      512


typedef struct {
    ngx_str_t                              name;   /* as the model sees it */
    ngx_str_t                              server;
    ngx_str_t                              tool;
} ngx_http_reverse_mcp_chat_route_t;


typedef struct ngx_http_reverse_mcp_chat_priv_s
    ngx_http_reverse_mcp_chat_priv_t;


typedef struct {
    ngx_http_reverse_mcp_chat_priv_t      *p;
    ngx_http_reverse_mcp_call_t            call;
    ngx_str_t                              id;
    ngx_str_t                              name;
    ngx_str_t                              server;
    ngx_str_t                              tool;
    ngx_str_t                              arguments;
    ngx_str_t                              params;
    ngx_str_t                              result;
    ngx_uint_t                             is_error;
    ngx_msec_t                             start;
    ngx_msec_t                             elapsed;

    /* the server's sampling/createMessage, answered by the chat's model */
    ngx_http_reverse_mcp_llm_req_t        *sample;
    ngx_pool_t                            *sample_pool;
    ngx_str_t                              sample_id;  /* gateway id */
    ngx_http_reverse_mcp_llm_conf_t        sample_conf;

    unsigned                               active:1;
} ngx_http_reverse_mcp_chat_call_t;


struct ngx_http_reverse_mcp_chat_priv_s {
    ngx_http_reverse_mcp_chat_t           *chat;
    ngx_http_request_t                    *request;
    ngx_pool_t                            *pool;
    ngx_http_reverse_mcp_llm_conf_t       *llm;
    ngx_http_reverse_mcp_chat_main_t      *cm;
    ngx_http_reverse_mcp_main_conf_t      *mcf;
    ngx_http_reverse_mcp_agent_conf_t     *acf;
    ngx_http_reverse_mcp_loc_conf_t       *lcf;

    ngx_str_t                              key;      /* agent \0 context */
    ngx_array_t                            history;  /* llm_msg_t */
    ngx_array_t                            turn;     /* llm_msg_t */
    ngx_array_t                           *tools;    /* llm_tool_t */
    ngx_array_t                           *routes;   /* route_t */
    ngx_array_t                            summary;  /* ngx_str_t JSON */

    ngx_http_reverse_mcp_llm_req_t        *llm_req;
    ngx_http_reverse_mcp_chat_call_t      *calls;
    ngx_uint_t                             ncalls;
    ngx_uint_t                             pending;
    ngx_event_t                            next_ev;
    ngx_msec_t                             llm_time;

    unsigned                               acquired:1;
    unsigned                               ended:1;
    unsigned                               closed:1;
};


/* the plain front end */
typedef struct {
    ngx_http_reverse_mcp_chat_t            chat;
    unsigned                               sse:1;
    unsigned                               header_sent:1;
    unsigned                               failed:1;
} ngx_http_reverse_mcp_chat_front_t;


typedef struct {
    ngx_str_t                              name;
    u_char                                *file;
    ngx_uint_t                             line;
} ngx_http_reverse_mcp_chat_ref_t;


static ngx_int_t ngx_http_reverse_mcp_chat_command(
    ngx_http_reverse_mcp_chat_priv_t *p, ngx_str_t *cmd);
static ngx_int_t ngx_http_reverse_mcp_chat_list(
    ngx_http_reverse_mcp_chat_priv_t *p, ngx_uint_t servers, ngx_str_t *out);
static ngx_int_t ngx_http_reverse_mcp_chat_history_text(
    ngx_http_reverse_mcp_chat_priv_t *p, ngx_str_t *out);
static ngx_int_t ngx_http_reverse_mcp_chat_parse_history(
    ngx_http_reverse_mcp_chat_priv_t *p, ngx_str_t *blob);
static ngx_int_t ngx_http_reverse_mcp_chat_save(
    ngx_http_reverse_mcp_chat_priv_t *p);
static ngx_int_t ngx_http_reverse_mcp_chat_round(
    ngx_http_reverse_mcp_chat_priv_t *p);
static ngx_int_t ngx_http_reverse_mcp_chat_tools(
    ngx_http_reverse_mcp_chat_priv_t *p);
static ngx_int_t ngx_http_reverse_mcp_chat_tool_names(
    ngx_http_reverse_mcp_chat_priv_t *p);
static void ngx_http_reverse_mcp_chat_llm_done(
    ngx_http_reverse_mcp_llm_req_t *req);
static void ngx_http_reverse_mcp_chat_llm_text(
    ngx_http_reverse_mcp_llm_req_t *req, ngx_str_t *text);
static ngx_int_t ngx_http_reverse_mcp_chat_start_calls(
    ngx_http_reverse_mcp_chat_priv_t *p, ngx_array_t *tcs);
static ngx_int_t ngx_http_reverse_mcp_chat_sample(
    ngx_http_reverse_mcp_call_t *call, ngx_str_t *json);
static void ngx_http_reverse_mcp_chat_sampled(
    ngx_http_reverse_mcp_llm_req_t *req);
static void ngx_http_reverse_mcp_chat_sample_stop(
    ngx_http_reverse_mcp_chat_call_t *cc);
static void ngx_http_reverse_mcp_chat_call_done(
    ngx_http_reverse_mcp_call_t *call, ngx_uint_t is_error, ngx_str_t *json);
static void ngx_http_reverse_mcp_chat_next(ngx_event_t *ev);
static ngx_int_t ngx_http_reverse_mcp_chat_result_text(ngx_pool_t *pool,
    ngx_uint_t is_error, ngx_str_t *json, ngx_str_t *text,
    ngx_uint_t *error);
static void ngx_http_reverse_mcp_chat_fail(ngx_http_reverse_mcp_chat_priv_t *p,
    ngx_uint_t status, const char *type, const char *fmt, ...);
static void ngx_http_reverse_mcp_chat_finish(
    ngx_http_reverse_mcp_chat_priv_t *p);
static void ngx_http_reverse_mcp_chat_release(
    ngx_http_reverse_mcp_chat_priv_t *p, ngx_uint_t save);
static void ngx_http_reverse_mcp_chat_cleanup(void *data);
static ngx_int_t ngx_http_reverse_mcp_chat_summary(
    ngx_http_reverse_mcp_chat_priv_t *p,
    ngx_http_reverse_mcp_chat_call_t *cc, ngx_uint_t round);
static void ngx_http_reverse_mcp_chat_progress(
    ngx_http_reverse_mcp_chat_priv_t *p, ngx_uint_t kind, ngx_str_t *text,
    yajl_gen g);
static ngx_int_t ngx_http_reverse_mcp_chat_str_eq(ngx_str_t *s,
    const char *c);

static void ngx_http_reverse_mcp_chat_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_reverse_mcp_chat_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *type, const char *fmt, ...);
static void ngx_http_reverse_mcp_chat_front_progress(
    ngx_http_reverse_mcp_chat_t *chat, ngx_uint_t kind, ngx_str_t *text,
    ngx_str_t *json);
static void ngx_http_reverse_mcp_chat_front_end(
    ngx_http_reverse_mcp_chat_t *chat);
static ngx_int_t ngx_http_reverse_mcp_chat_respond(
    ngx_http_reverse_mcp_chat_front_t *f);


#define ngx_http_reverse_mcp_chat_lit(g, s)                                  \
    yajl_gen_string(g, (const unsigned char *) s, sizeof(s) - 1)

#define ngx_http_reverse_mcp_chat_gstr(g, s)                                 \
    yajl_gen_string(g, (const unsigned char *) (s)->data, (s)->len)

#define ngx_http_reverse_mcp_chat_raw(g, s)                                  \
    yajl_gen_number(g, (const char *) (s)->data, (s)->len)


/* ------------------------------------------------------------------ */
/* configuration                                                        */
/* ------------------------------------------------------------------ */


static ngx_http_reverse_mcp_chat_main_t *
ngx_http_reverse_mcp_chat_main(ngx_conf_t *cf)
{
    ngx_http_reverse_mcp_main_conf_t  *mcf;
    ngx_http_reverse_mcp_chat_main_t  *cm;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_reverse_mcp_module);

    if (mcf->chat) {
        return mcf->chat;
    }

    cm = ngx_pcalloc(cf->pool, sizeof(ngx_http_reverse_mcp_chat_main_t));
    if (cm == NULL) {
        return NULL;
    }

    cm->idle = 1800;
    cm->max_history = 64 * 1024;

    cm->refs = ngx_array_create(cf->pool, 2,
                                sizeof(ngx_http_reverse_mcp_chat_ref_t));
    if (cm->refs == NULL) {
        return NULL;
    }

    mcf->chat = cm;

    return cm;
}


/* reverse_mcp_chat agent;  reverse_mcp_a2a agent; */
char *
ngx_http_reverse_mcp_chat_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_reverse_mcp_loc_conf_t  *lcf = conf;

    ngx_str_t                         *value;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_reverse_mcp_chat_ref_t   *ref;
    ngx_http_reverse_mcp_chat_loc_t   *cl;
    ngx_http_reverse_mcp_chat_main_t  *cm;

    if (lcf->chat) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (!ngx_http_reverse_mcp_name_valid(&value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agent name \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    cm = ngx_http_reverse_mcp_chat_main(cf);
    if (cm == NULL) {
        return NGX_CONF_ERROR;
    }

    cl = ngx_pcalloc(cf->pool, sizeof(ngx_http_reverse_mcp_chat_loc_t));
    if (cl == NULL) {
        return NGX_CONF_ERROR;
    }

    cl->agent = value[1];
    cl->a2a = (cmd->name.len == sizeof("reverse_mcp_a2a") - 1);

    ref = ngx_array_push(cm->refs);
    if (ref == NULL) {
        return NGX_CONF_ERROR;
    }

    ref->name = value[1];
    ref->file = cf->conf_file->file.name.data;
    ref->line = cf->conf_file->line;

    lcf->chat = cl;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = cl->a2a ? ngx_http_reverse_mcp_a2a_handler
                            : ngx_http_reverse_mcp_chat_handler;

    return NGX_CONF_OK;
}


/* reverse_mcp_chat_zone name:size [idle=TIME] [max_history=SIZE]; */
char *
ngx_http_reverse_mcp_chat_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    u_char                            *p;
    void                              *ctx;
    ssize_t                            size, max;
    ngx_str_t                         *value, name, s;
    ngx_int_t                          t;
    ngx_uint_t                         i;
    ngx_http_reverse_mcp_chat_main_t  *cm;

    cm = ngx_http_reverse_mcp_chat_main(cf);
    if (cm == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cm->zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = ngx_strlchr(value[1].data, value[1].data + value[1].len, ':');

    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected name:size "
                           "(e.g. chat:10m)", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;
    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\": at least %uzk",
                           &s, (8 * ngx_pagesize) >> 10);
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "idle=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            t = ngx_parse_time(&s, 1);

            if (t == NGX_ERROR || t < 1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid idle \"%V\": a time of at least "
                                   "1s is required", &s);
                return NGX_CONF_ERROR;
            }

            cm->idle = t;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_history=", 12) == 0) {
            s.data = value[i].data + 12;
            s.len = value[i].len - 12;

            max = ngx_parse_size(&s);

            if (max == NGX_ERROR || max < 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid max_history \"%V\": a size of "
                                   "at least 1k is required", &s);
                return NGX_CONF_ERROR;
            }

            cm->max_history = max;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" (expected idle= or "
                           "max_history=)", &value[i]);
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, 2 * sizeof(void *));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    cm->zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_reverse_mcp_module);
    if (cm->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cm->zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &name);
        return NGX_CONF_ERROR;
    }

    cm->zone->init = ngx_http_reverse_mcp_history_init_zone;
    cm->zone->data = ctx;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_reverse_mcp_chat_postconfiguration(ngx_conf_t *cf)
{
    void                               *ctx;
    ngx_str_t                           name;
    ngx_uint_t                          i;
    ngx_http_reverse_mcp_llm_conf_t    *llm;
    ngx_http_reverse_mcp_chat_ref_t    *ref;
    ngx_http_reverse_mcp_main_conf_t   *mcf;
    ngx_http_reverse_mcp_chat_main_t   *cm;
    ngx_http_reverse_mcp_agent_conf_t  *acf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_reverse_mcp_module);
    cm = mcf->chat;

    if (cm == NULL || cm->refs->nelts == 0) {
        return NGX_OK;
    }

    ref = cm->refs->elts;

    for (i = 0; i < cm->refs->nelts; i++) {

        if (mcf->shm_zone == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "chat and A2A locations require "
                          "\"reverse_mcp_zone\" in the http block in %s:%ui",
                          ref[i].file, ref[i].line);
            return NGX_ERROR;
        }

        acf = ngx_http_reverse_mcp_find_agent(mcf, &ref[i].name);

        if (acf == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown agent \"%V\" in %s:%ui (define it with "
                          "\"reverse_mcp_agent %V { ... }\")", &ref[i].name,
                          ref[i].file, ref[i].line, &ref[i].name);
            return NGX_ERROR;
        }

        llm = acf->llm;

        if (llm == NULL || !llm->configured) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "agent \"%V\" has no \"llm\" line (the model the "
                          "chat uses) in %s:%ui", &ref[i].name,
                          ref[i].file, ref[i].line);
            return NGX_ERROR;
        }
    }

    if (cm->zone == NULL) {
        /* the default: 1m, idle 30m, 64k per conversation */
        ngx_str_set(&name, "reverse_mcp_chat_history");

        ctx = ngx_pcalloc(cf->pool, 2 * sizeof(void *));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        cm->zone = ngx_shared_memory_add(cf, &name, 1024 * 1024,
                                         &ngx_http_reverse_mcp_module);
        if (cm->zone == NULL) {
            return NGX_ERROR;
        }

        cm->zone->init = ngx_http_reverse_mcp_history_init_zone;
        cm->zone->data = ctx;
    }

    return NGX_OK;
}


/* ------------------------------------------------------------------ */
/* the engine                                                           */
/* ------------------------------------------------------------------ */


ngx_int_t
ngx_http_reverse_mcp_chat_run(ngx_http_reverse_mcp_chat_t *chat)
{
    u_char                            *s, *e;
    time_t                             busy;
    ngx_int_t                          rc;
    ngx_str_t                          blob, cmd;
    ngx_pool_t                        *pool;
    ngx_http_request_t                *r;
    ngx_http_cleanup_t                *cln;
    ngx_http_reverse_mcp_llm_msg_t    *m;
    ngx_http_reverse_mcp_chat_priv_t  *p;

    r = chat->request;
    pool = r->pool;

    p = ngx_pcalloc(pool, sizeof(ngx_http_reverse_mcp_chat_priv_t));
    if (p == NULL) {
        return NGX_ERROR;
    }

    chat->priv = p;
    p->chat = chat;
    p->request = r;
    p->pool = pool;
    p->mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);
    p->lcf = ngx_http_get_module_loc_conf(r, ngx_http_reverse_mcp_module);
    p->cm = p->mcf->chat;

    ngx_str_set(&chat->tool_calls, "[]");

    if (ngx_array_init(&p->history, pool, 8,
                       sizeof(ngx_http_reverse_mcp_llm_msg_t)) != NGX_OK
        || ngx_array_init(&p->turn, pool, 8,
                          sizeof(ngx_http_reverse_mcp_llm_msg_t)) != NGX_OK
        || ngx_array_init(&p->summary, pool, 4, sizeof(ngx_str_t)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p->acf = ngx_http_reverse_mcp_find_agent(p->mcf, &chat->agent);

    if (p->acf == NULL || p->acf->llm == NULL || p->cm == NULL
        || p->cm->zone == NULL || p->mcf->shm_zone == NULL)
    {
        ngx_http_reverse_mcp_chat_fail(p, NGX_HTTP_NOT_FOUND, "unknown_agent",
                                       "unknown agent \"%V\"", &chat->agent);
        return NGX_OK;
    }

    p->llm = p->acf->llm;

    /* agent \0 context: one agent never sees another's conversations */

    p->key.len = chat->agent.len + 1 + chat->context_id.len;
    p->key.data = ngx_pnalloc(pool, p->key.len);
    if (p->key.data == NULL) {
        return NGX_ERROR;
    }

    s = ngx_cpymem(p->key.data, chat->agent.data, chat->agent.len);
    *s++ = '\0';
    ngx_memcpy(s, chat->context_id.data, chat->context_id.len);

    /* a command: one word "/name" */

    s = chat->message.data;
    e = s + chat->message.len;

    while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
        s++;
    }

    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'
                     || e[-1] == '\r'))
    {
        e--;
    }

    if (e - s > 1 && *s == '/') {
        cmd.data = s;
        cmd.len = e - s;

        for (s = cmd.data + 1; s < e; s++) {
            if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) {
                break;
            }
        }

        if (s == e) {
            rc = ngx_http_reverse_mcp_chat_command(p, &cmd);
            return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
        }
    }

    /* the conversation, busy while this message runs (bounded) */

    busy = (time_t) ((p->llm->timeout + p->lcf->call_timeout) / 1000 + 1)
           * (time_t) (p->llm->max_rounds + 1) + 10;

    rc = ngx_http_reverse_mcp_history_acquire(p->cm->zone, pool, &p->key,
                                              p->cm->idle, busy, &blob);

    if (rc == NGX_BUSY) {
        ngx_http_reverse_mcp_chat_fail(p, NGX_HTTP_CONFLICT, "busy",
                     "the conversation \"%V\" is answering another "
                     "message: try again when it is done",
                     &chat->context_id);
        return NGX_OK;
    }

    if (rc != NGX_OK) {
        ngx_http_reverse_mcp_chat_fail(p, NGX_HTTP_SERVICE_UNAVAILABLE,
                     "history_full", "the chat history zone is full");
        return NGX_OK;
    }

    p->acquired = 1;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        ngx_http_reverse_mcp_chat_release(p, 0);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_reverse_mcp_chat_cleanup;
    cln->data = p;

    if (blob.len
        && ngx_http_reverse_mcp_chat_parse_history(p, &blob) != NGX_OK)
    {
        /* a damaged entry is dropped rather than kept failing */
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "reverse_mcp: chat history of \"%V\" is not valid, "
                      "starting over", &chat->context_id);
        p->history.nelts = 0;
    }

    m = ngx_array_push(&p->turn);
    if (m == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(m, sizeof(ngx_http_reverse_mcp_llm_msg_t));
    m->role = NGX_HTTP_REVERSE_MCP_LLM_USER;
    m->content = chat->message;

    p->next_ev.handler = ngx_http_reverse_mcp_chat_next;
    p->next_ev.data = p;
    p->next_ev.log = r->connection->log;

    if (ngx_http_reverse_mcp_chat_round(p) != NGX_OK) {
        ngx_http_reverse_mcp_chat_release(p, 0);
        p->ended = 1;
        return NGX_OK;
    }

    return NGX_DONE;
}


/* one LLM request with the tools of now */
static ngx_int_t
ngx_http_reverse_mcp_chat_round(ngx_http_reverse_mcp_chat_priv_t *p)
{
    u_char                          *q;
    yajl_gen                         g;
    ngx_str_t                        body, text;
    ngx_array_t                      msgs;
    ngx_http_reverse_mcp_llm_msg_t  *m;

    p->chat->rounds++;

    if (ngx_http_reverse_mcp_chat_tools(p) != NGX_OK) {
        ngx_http_reverse_mcp_chat_fail(p, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       "internal", "could not list the "
                                       "tools");
        return NGX_ERROR;
    }

    if (ngx_array_init(&msgs, p->pool, p->history.nelts + p->turn.nelts,
                       sizeof(ngx_http_reverse_mcp_llm_msg_t))
        != NGX_OK
        || (m = ngx_array_push_n(&msgs, p->history.nelts + p->turn.nelts))
           == NULL)
    {
        ngx_http_reverse_mcp_chat_fail(p, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       "internal", "out of memory");
        return NGX_ERROR;
    }

    q = ngx_cpymem(m, p->history.elts,
                   p->history.nelts * sizeof(ngx_http_reverse_mcp_llm_msg_t));
    ngx_memcpy(q, p->turn.elts,
               p->turn.nelts * sizeof(ngx_http_reverse_mcp_llm_msg_t));

    if (ngx_http_reverse_mcp_llm_build(p->pool, p->llm, &msgs, p->tools,
                                       &body)
        != NGX_OK)
    {
        ngx_http_reverse_mcp_chat_fail(p, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       "internal", "could not build the LLM "
                                       "request");
        return NGX_ERROR;
    }

    p->llm_req = ngx_http_reverse_mcp_llm_start(p->llm, &body,
                                         p->request->connection->log,
                                         ngx_http_reverse_mcp_chat_llm_done,
                                         p->chat->progress
                                         ? ngx_http_reverse_mcp_chat_llm_text
                                         : NULL, p);
    if (p->llm_req == NULL) {
        ngx_http_reverse_mcp_chat_fail(p, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       "internal", "could not start the LLM "
                                       "request");
        return NGX_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, p->request->connection->log, 0,
                   "reverse_mcp: chat round %ui: %ui tools, %uz bytes",
                   p->chat->rounds, p->tools->nelts, body.len);

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_OK;
    }

    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_chat_lit(g, "state");
    ngx_http_reverse_mcp_chat_lit(g, "thinking");
    ngx_http_reverse_mcp_chat_lit(g, "text");
    ngx_http_reverse_mcp_chat_lit(g, "thinking");
    ngx_http_reverse_mcp_chat_lit(g, "round");
    yajl_gen_integer(g, p->chat->rounds);
    ngx_http_reverse_mcp_chat_lit(g, "tools");
    yajl_gen_integer(g, p->tools->nelts);
    yajl_gen_map_close(g);

    ngx_str_set(&text, "thinking");
    ngx_http_reverse_mcp_chat_progress(p, NGX_HTTP_REVERSE_MCP_CHAT_THINKING,
                                       &text, g);

    return NGX_OK;
}


/* the tools of the servers connected now, named for the model */
static ngx_int_t
ngx_http_reverse_mcp_chat_tools(ngx_http_reverse_mcp_chat_priv_t *p)
{
    char                                 err[128];
    size_t                               j;
    yajl_val                             arr, t, v;
    ngx_int_t                            rc;
    ngx_str_t                            json, name, *sep;
    ngx_uint_t                           i, gen;
    ngx_http_reverse_mcp_llm_tool_t     *lt;
    ngx_http_reverse_mcp_chat_route_t   *route;
    ngx_http_reverse_mcp_server_conf_t  *scf;

    p->tools = ngx_array_create(p->pool, 8,
                                sizeof(ngx_http_reverse_mcp_llm_tool_t));
    p->routes = ngx_array_create(p->pool, 8,
                                 sizeof(ngx_http_reverse_mcp_chat_route_t));

    if (p->tools == NULL || p->routes == NULL) {
        return NGX_ERROR;
    }

    sep = &p->lcf->tool_separator;
    scf = p->acf->servers.elts;

    for (i = 0; i < p->acf->servers.nelts; i++) {

        rc = ngx_http_reverse_mcp_registry_tools(p->mcf->shm_zone, p->pool,
                                                 &p->chat->agent,
                                                 &scf[i].name, sep, &json,
                                                 &gen,
                                                 p->request->connection->log);
        if (rc == NGX_DECLINED) {
            continue;                             /* not connected */
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        arr = ngx_http_reverse_mcp_json_parse(json.data, json.len, err,
                                              sizeof(err));
        if (arr == NULL) {
            return NGX_ERROR;
        }

        for (j = 0; YAJL_IS_ARRAY(arr) && j < arr->u.array.len; j++) {
            t = arr->u.array.values[j];

            if (ngx_http_reverse_mcp_json_get_str(t, "name", &name)
                != NGX_OK)
            {
                continue;
            }

            lt = ngx_array_push(p->tools);
            route = ngx_array_push(p->routes);

            if (lt == NULL || route == NULL) {
                yajl_tree_free(arr);
                return NGX_ERROR;
            }

            ngx_memzero(lt, sizeof(ngx_http_reverse_mcp_llm_tool_t));

            route->server = scf[i].name;

            route->tool.data = ngx_pstrdup(p->pool, &name);
            route->tool.len = name.len;

            if (route->tool.data == NULL) {
                yajl_tree_free(arr);
                return NGX_ERROR;
            }

            if (ngx_http_reverse_mcp_json_get_str(t, "description", &name)
                == NGX_OK)
            {
                lt->description.data = ngx_pstrdup(p->pool, &name);
                lt->description.len = name.len;
            }

            v = ngx_http_reverse_mcp_json_get(t, "inputSchema");

            if (v == NULL || !YAJL_IS_OBJECT(v)) {
                ngx_str_set(&lt->schema, "{\"type\":\"object\"}");

            } else if (ngx_http_reverse_mcp_json_dump(p->pool, v,
                                                      &lt->schema)
                       != NGX_OK)
            {
                yajl_tree_free(arr);
                return NGX_ERROR;
            }
        }

        yajl_tree_free(arr);
    }

    return ngx_http_reverse_mcp_chat_tool_names(p);
}


/*
 * The names the model sees: the aggregate endpoint's exposed names
 * (ngx_http_reverse_mcp_names.h), one rule for both.  Tools whose names
 * collide are all left out (logged at warn), so no tool shadows another.
 */
static ngx_int_t
ngx_http_reverse_mcp_chat_tool_names(ngx_http_reverse_mcp_chat_priv_t *p)
{
    ngx_str_t                            *sep;
    ngx_uint_t                            i, n;
    ngx_http_reverse_mcp_llm_tool_t      *lt;
    ngx_http_reverse_mcp_chat_route_t    *route;
    ngx_http_reverse_mcp_names_entry_t   *e, **order;

    n = p->routes->nelts;

    if (n == 0) {
        return NGX_OK;
    }

    sep = &p->lcf->tool_separator;
    route = p->routes->elts;
    lt = p->tools->elts;

    e = ngx_palloc(p->pool, n * (sizeof(*e) + sizeof(order[0])));
    if (e == NULL) {
        return NGX_ERROR;
    }

    order = (ngx_http_reverse_mcp_names_entry_t **) (e + n);

    for (i = 0; i < n; i++) {
        e[i].server = route[i].server.data;
        e[i].server_len = route[i].server.len;
        e[i].tool = route[i].tool.data;
        e[i].tool_len = route[i].tool.len;
    }

    (void) ngx_http_reverse_mcp_names_mark(e, n, sep->data, sep->len, order);

    p->routes->nelts = 0;
    p->tools->nelts = 0;

    for (i = 0; i < n; i++) {

        if (e[i].collides) {
            ngx_log_error(NGX_LOG_WARN, p->request->connection->log, 0,
                          "reverse_mcp: tool \"%V\" of server \"%V\" of "
                          "agent \"%V\" is left out: its exposed name "
                          "\"%*s\" is also another tool's",
                          &route[i].tool, &route[i].server, &p->chat->agent,
                          e[i].name_len, e[i].name);
            continue;
        }

        route[i].name.data = ngx_pnalloc(p->pool, e[i].name_len);
        if (route[i].name.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(route[i].name.data, e[i].name, e[i].name_len);
        route[i].name.len = e[i].name_len;

        /* compacted in place: the kept entries move down */
        route[p->routes->nelts] = route[i];
        lt[p->tools->nelts] = lt[i];
        lt[p->tools->nelts].name = route[i].name;

        p->routes->nelts++;
        p->tools->nelts++;
    }

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_chat_llm_text(ngx_http_reverse_mcp_llm_req_t *req,
    ngx_str_t *text)
{
    yajl_gen                           g;
    ngx_http_reverse_mcp_chat_priv_t  *p;

    p = req->data;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return;
    }

    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_chat_lit(g, "text");
    ngx_http_reverse_mcp_chat_gstr(g, text);
    yajl_gen_map_close(g);

    ngx_http_reverse_mcp_chat_progress(p, NGX_HTTP_REVERSE_MCP_CHAT_TEXT,
                                       text, g);
}


static void
ngx_http_reverse_mcp_chat_llm_done(ngx_http_reverse_mcp_llm_req_t *req)
{
    ngx_uint_t                             i, status;
    ngx_http_reverse_mcp_llm_msg_t        *m;
    ngx_http_reverse_mcp_llm_result_t     *res;
    ngx_http_reverse_mcp_chat_priv_t      *p;
    ngx_http_reverse_mcp_llm_tool_call_t  *tc, *src;

    p = req->data;
    p->llm_req = NULL;
    res = &req->result;

    p->llm_time += res->elapsed;

    if (res->error_type) {
        switch (res->error_type) {

        case NGX_HTTP_REVERSE_MCP_LLM_ERR_TIMEOUT:
            status = NGX_HTTP_GATEWAY_TIME_OUT;
            break;

        case NGX_HTTP_REVERSE_MCP_LLM_ERR_CONFIG:
        case NGX_HTTP_REVERSE_MCP_LLM_ERR_INTERNAL:
            status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            break;

        case NGX_HTTP_REVERSE_MCP_LLM_ERR_SHUTDOWN:
            status = NGX_HTTP_SERVICE_UNAVAILABLE;
            break;

        default:
            status = NGX_HTTP_BAD_GATEWAY;
        }

        ngx_http_reverse_mcp_chat_fail(p, status,
                     ngx_http_reverse_mcp_llm_error_name(res->error_type),
                     "%V", &res->error);
        p->chat->upstream_status = res->http_status;

        ngx_http_reverse_mcp_chat_finish(p);
        return;
    }

    /* the assistant's message, in our pool (the result goes away) */

    m = ngx_array_push(&p->turn);
    if (m == NULL) {
        goto nomem;
    }

    ngx_memzero(m, sizeof(ngx_http_reverse_mcp_llm_msg_t));
    m->role = NGX_HTTP_REVERSE_MCP_LLM_ASSISTANT;

    m->content.data = ngx_pstrdup(p->pool, &res->text);
    m->content.len = res->text.len;

    if (res->text.len && m->content.data == NULL) {
        goto nomem;
    }

    p->chat->stop.data = ngx_pstrdup(p->pool, &res->stop_reason);
    p->chat->stop.len = res->stop_reason.len;

    if (res->tool_calls && res->tool_calls->nelts) {
        m->tool_calls = ngx_array_create(p->pool, res->tool_calls->nelts,
                                 sizeof(ngx_http_reverse_mcp_llm_tool_call_t));
        if (m->tool_calls == NULL) {
            goto nomem;
        }

        src = res->tool_calls->elts;

        for (i = 0; i < res->tool_calls->nelts; i++) {
            tc = ngx_array_push(m->tool_calls);
            if (tc == NULL) {
                goto nomem;
            }

            tc->id.data = ngx_pstrdup(p->pool, &src[i].id);
            tc->id.len = src[i].id.len;
            tc->name.data = ngx_pstrdup(p->pool, &src[i].name);
            tc->name.len = src[i].name.len;
            tc->arguments.data = ngx_pstrdup(p->pool, &src[i].arguments);
            tc->arguments.len = src[i].arguments.len;

            if (tc->id.data == NULL || tc->arguments.data == NULL
                || (src[i].name.len && tc->name.data == NULL))
            {
                goto nomem;
            }
        }
    }

    if (m->tool_calls == NULL) {
        /* the answer */
        p->chat->answer = m->content;
        ngx_http_reverse_mcp_chat_finish(p);
        return;
    }

    if (p->chat->rounds > p->llm->max_rounds) {
        /* the model still wants tools: stop, say so */
        ngx_str_set(&p->chat->stop, "max_rounds");

        p->chat->answer.data = ngx_pnalloc(p->pool, m->content.len + 256);
        if (p->chat->answer.data == NULL) {
            goto nomem;
        }

        p->chat->answer.len = ngx_sprintf(p->chat->answer.data,
                     "%V%sStopped: the model was still calling tools after "
                     "%ui rounds (max_rounds=%ui); no final answer.",
                     &m->content, m->content.len ? "\n\n" : "",
                     p->llm->max_rounds, p->llm->max_rounds)
                     - p->chat->answer.data;

        /* the unanswered tool calls are not part of the conversation */
        m->tool_calls = NULL;

        ngx_log_error(NGX_LOG_INFO, p->request->connection->log, 0,
                      "reverse_mcp: chat of \"%V\" stopped after %ui tool "
                      "rounds (max_rounds)", &p->chat->context_id,
                      p->llm->max_rounds);

        ngx_http_reverse_mcp_chat_finish(p);
        return;
    }

    if (ngx_http_reverse_mcp_chat_start_calls(p, m->tool_calls) != NGX_OK) {
        goto nomem;
    }

    if (p->pending == 0 && !p->next_ev.posted) {
        ngx_post_event(&p->next_ev, &ngx_posted_events);
    }

    return;

nomem:

    ngx_http_reverse_mcp_chat_fail(p, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "internal", "out of memory");
    ngx_http_reverse_mcp_chat_finish(p);
}


/* every tool call of the round at once; failures become error results */
static ngx_int_t
ngx_http_reverse_mcp_chat_start_calls(ngx_http_reverse_mcp_chat_priv_t *p,
    ngx_array_t *tcs)
{
    char                                   err[128];
    u_char                                *d;
    yajl_gen                               g;
    yajl_val                               args;
    ngx_str_t                              text;
    ngx_uint_t                             i, j;
    ngx_http_reverse_mcp_chat_call_t      *cc;
    ngx_http_reverse_mcp_chat_route_t     *route;
    ngx_http_reverse_mcp_llm_tool_call_t  *tc;

    tc = tcs->elts;

    p->ncalls = tcs->nelts;
    p->pending = 0;
    p->calls = ngx_pcalloc(p->pool,
                           p->ncalls * sizeof(ngx_http_reverse_mcp_chat_call_t));
    if (p->calls == NULL) {
        return NGX_ERROR;
    }

    route = p->routes->elts;

    for (i = 0; i < p->ncalls; i++) {
        cc = &p->calls[i];
        cc->p = p;
        cc->id = tc[i].id;
        cc->name = tc[i].name;
        cc->arguments = tc[i].arguments;
        cc->start = ngx_current_msec;

        /* arguments: a JSON object ("" means none) */

        args = NULL;

        if (tc[i].arguments.len) {
            args = ngx_http_reverse_mcp_json_parse(tc[i].arguments.data,
                                                   tc[i].arguments.len, err,
                                                   sizeof(err));
        }

        if (tc[i].arguments.len == 0 || (args && YAJL_IS_OBJECT(args))) {
            if (args) {
                yajl_tree_free(args);
            }

        } else {
            if (args) {
                yajl_tree_free(args);
                ngx_cpystrn((u_char *) err, (u_char *) "not an object",
                            sizeof(err));
            }

            cc->is_error = 1;
            cc->result.data = ngx_pnalloc(p->pool, 256 + sizeof(err));
            if (cc->result.data == NULL) {
                return NGX_ERROR;
            }

            cc->result.len = ngx_sprintf(cc->result.data,
                                 "Error: the arguments of %V are not a "
                                 "valid JSON object (%s)", &cc->name, err)
                             - cc->result.data;

            /* the conversation must stay valid JSON for the provider */
            ngx_str_set(&tc[i].arguments, "{}");
            cc->arguments = tc[i].arguments;
            continue;
        }

        if (tc[i].arguments.len == 0) {
            ngx_str_set(&tc[i].arguments, "{}");
            cc->arguments = tc[i].arguments;
        }

        for (j = 0; j < p->routes->nelts; j++) {
            if (route[j].name.len == cc->name.len
                && ngx_strncmp(route[j].name.data, cc->name.data,
                               cc->name.len) == 0)
            {
                break;
            }
        }

        if (j == p->routes->nelts) {
            cc->is_error = 1;
            cc->result.data = ngx_pnalloc(p->pool, 128 + cc->name.len);
            if (cc->result.data == NULL) {
                return NGX_ERROR;
            }

            cc->result.len = ngx_sprintf(cc->result.data,
                                 "Error: unknown tool \"%V\": it is not "
                                 "available now", &cc->name)
                             - cc->result.data;
            continue;
        }

        cc->server = route[j].server;
        cc->tool = route[j].tool;

        /* {"name":TOOL,"arguments":ARGS} */

        cc->params.len = sizeof("{\"name\":,\"arguments\":}") - 1
                         + ngx_http_reverse_mcp_json_escaped_len(&cc->tool)
                         + cc->arguments.len;
        cc->params.data = ngx_pnalloc(p->pool, cc->params.len);
        if (cc->params.data == NULL) {
            return NGX_ERROR;
        }

        d = ngx_cpymem(cc->params.data, "{\"name\":", 8);
        d = ngx_http_reverse_mcp_json_escape(d, &cc->tool);
        d = ngx_sprintf(d, ",\"arguments\":%V}", &cc->arguments);
        cc->params.len = d - cc->params.data;

        cc->call.agent = p->chat->agent;
        cc->call.server = cc->server;
        ngx_str_set(&cc->call.method, "tools/call");
        cc->call.params = cc->params;
        cc->call.timeout = 0;
        cc->call.notify = NULL;
        cc->call.done = ngx_http_reverse_mcp_chat_call_done;
        cc->call.data = cc;
        cc->call.log = p->request->connection->log;
        cc->call.force_mailbox = p->lcf->force_mailbox;

        /*
         * the servers' sampling requests are answered by the chat's own
         * model; elicitation and roots need a user: they get an error
         */
        cc->call.relay = NGX_HTTP_REVERSE_MCP_RELAY_SAMPLING
                         |NGX_HTTP_REVERSE_MCP_RELAY_STREAM;
        cc->call.request = ngx_http_reverse_mcp_chat_sample;
        ngx_str_null(&cc->call.session);
        cc->sample = NULL;
        cc->sample_pool = NULL;

        g = yajl_gen_alloc(NULL);

        if (g) {
            yajl_gen_map_open(g);
            ngx_http_reverse_mcp_chat_lit(g, "state");
            ngx_http_reverse_mcp_chat_lit(g, "tool");
            ngx_http_reverse_mcp_chat_lit(g, "text");
            text.data = ngx_pnalloc(p->pool, cc->name.len + 16);
            text.len = text.data ? (size_t) (ngx_sprintf(text.data,
                                                         "Using tool: %V",
                                                         &cc->name)
                                             - text.data)
                                 : 0;
            ngx_http_reverse_mcp_chat_gstr(g, &text);
            ngx_http_reverse_mcp_chat_lit(g, "tool");
            ngx_http_reverse_mcp_chat_gstr(g, &cc->name);
            ngx_http_reverse_mcp_chat_lit(g, "server");
            ngx_http_reverse_mcp_chat_gstr(g, &cc->server);
            ngx_http_reverse_mcp_chat_lit(g, "arguments");
            ngx_http_reverse_mcp_chat_raw(g, &cc->arguments);
            ngx_http_reverse_mcp_chat_lit(g, "round");
            yajl_gen_integer(g, p->chat->rounds);
            yajl_gen_map_close(g);

            ngx_http_reverse_mcp_chat_progress(p,
                              NGX_HTTP_REVERSE_MCP_CHAT_TOOL_CALL, &text, g);
        }

        if (ngx_http_reverse_mcp_call_start(&cc->call) != NGX_OK) {
            cc->is_error = 1;
            ngx_str_set(&cc->result, "Error: the gateway could not start "
                                     "the tool call");
            continue;
        }

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, p->request->connection->log, 0,
                       "reverse_mcp: chat calls %V/%V: %V", &cc->server,
                       &cc->tool, &cc->arguments);

        cc->active = 1;
        p->pending++;
    }

    return NGX_OK;
}


/*
 * A reverse server's sampling/createMessage during one of the chat's tool
 * calls: the chat's model answers it (the request's messages, its
 * systemPrompt and maxTokens; no tools), one at a time per call.
 * NGX_ERROR: the server gets an error.
 */
static ngx_int_t
ngx_http_reverse_mcp_chat_sample(ngx_http_reverse_mcp_call_t *call,
    ngx_str_t *json)
{
    char                               err[128];
    size_t                             i, j;
    yajl_val                           msg, params, list, m, content, part, v;
    ngx_str_t                          method, id, role, text, type, body;
    ngx_pool_t                        *pool;
    ngx_array_t                        msgs;
    ngx_http_reverse_mcp_llm_msg_t    *lm;
    ngx_http_reverse_mcp_chat_call_t  *cc;

    cc = call->data;

    if (!cc->active || cc->sample || cc->p->llm == NULL) {
        return NGX_ERROR;
    }

    msg = ngx_http_reverse_mcp_json_parse(json->data, json->len, err,
                                          sizeof(err));
    if (msg == NULL) {
        return NGX_ERROR;
    }

    pool = ngx_create_pool(4096, call->log);
    if (pool == NULL) {
        goto failed;
    }

    params = ngx_http_reverse_mcp_json_get(msg, "params");
    list = ngx_http_reverse_mcp_json_get(params, "messages");

    if (ngx_http_reverse_mcp_json_get_str(msg, "method", &method) != NGX_OK
        || method.len != sizeof("sampling/createMessage") - 1
        || ngx_strncmp(method.data, "sampling/createMessage", method.len)
           != 0
        || ngx_http_reverse_mcp_json_get_str(msg, "id", &id) != NGX_OK
        || list == NULL || !YAJL_IS_ARRAY(list)
        || ngx_array_init(&msgs, pool, list->u.array.len + 1,
                          sizeof(ngx_http_reverse_mcp_llm_msg_t))
           != NGX_OK)
    {
        goto failed;
    }

    cc->sample_id.data = ngx_pstrdup(pool, &id);
    if (cc->sample_id.data == NULL) {
        goto failed;
    }

    cc->sample_id.len = id.len;

    /* the messages: their text (other content is named, not sent) */

    for (i = 0; i < list->u.array.len; i++) {
        m = list->u.array.values[i];
        content = ngx_http_reverse_mcp_json_get(m, "content");

        if (ngx_http_reverse_mcp_json_get_str(m, "role", &role) != NGX_OK
            || content == NULL)
        {
            goto failed;
        }

        lm = ngx_array_push(&msgs);
        if (lm == NULL) {
            goto failed;
        }

        ngx_memzero(lm, sizeof(ngx_http_reverse_mcp_llm_msg_t));
        lm->role = (role.len == 9
                    && ngx_strncmp(role.data, "assistant", 9) == 0)
                   ? NGX_HTTP_REVERSE_MCP_LLM_ASSISTANT
                   : NGX_HTTP_REVERSE_MCP_LLM_USER;

        for (j = 0; j < (YAJL_IS_ARRAY(content) ? content->u.array.len : 1);
             j++)
        {
            part = YAJL_IS_ARRAY(content) ? content->u.array.values[j]
                                          : content;

            if (ngx_http_reverse_mcp_json_get_str(part, "type", &type)
                != NGX_OK)
            {
                continue;
            }

            if (ngx_http_reverse_mcp_json_get_str(part, "text", &text)
                != NGX_OK)
            {
                /* an image or audio the model is not shown */
                text.len = type.len + sizeof("[ content not shown]") - 1;
                text.data = ngx_pnalloc(pool, text.len);
                if (text.data == NULL) {
                    goto failed;
                }

                (void) ngx_sprintf(text.data, "[%V content not shown]",
                                   &type);
            }

            body.len = lm->content.len + (lm->content.len ? 1 : 0)
                       + text.len;
            body.data = ngx_pnalloc(pool, body.len);
            if (body.data == NULL) {
                goto failed;
            }

            (void) ngx_sprintf(body.data, "%V%s%V", &lm->content,
                               lm->content.len ? "\n" : "", &text);
            lm->content = body;
        }
    }

    /* the agent's model, with the request's own system prompt and limit */

    cc->sample_conf = *cc->p->llm;
    ngx_str_null(&cc->sample_conf.system);

    if (ngx_http_reverse_mcp_json_get_str(params, "systemPrompt", &text)
        == NGX_OK
        && (cc->sample_conf.system.data = ngx_pstrdup(pool, &text)) != NULL)
    {
        cc->sample_conf.system.len = text.len;
    }

    v = ngx_http_reverse_mcp_json_get(params, "maxTokens");

    if (v && YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) > 0) {
        cc->sample_conf.max_tokens = (ngx_uint_t) YAJL_GET_INTEGER(v);
    }

    if (ngx_http_reverse_mcp_llm_build(pool, &cc->sample_conf, &msgs, NULL,
                                       &body)
        != NGX_OK)
    {
        goto failed;
    }

    cc->sample = ngx_http_reverse_mcp_llm_start(&cc->sample_conf, &body,
                     call->log, ngx_http_reverse_mcp_chat_sampled, NULL, cc);
    if (cc->sample == NULL) {
        goto failed;
    }

    cc->sample_pool = pool;
    yajl_tree_free(msg);

    ngx_log_error(NGX_LOG_INFO, call->log, 0,
                  "reverse_mcp: chat: server \"%V\" asks for a sample, "
                  "the chat's model answers it", &cc->server);

    return NGX_OK;

failed:

    yajl_tree_free(msg);

    if (pool) {
        ngx_destroy_pool(pool);
    }

    return NGX_ERROR;
}


/* the model's answer (or failure) to the server, with the gateway id */
static void
ngx_http_reverse_mcp_chat_sampled(ngx_http_reverse_mcp_llm_req_t *req)
{
    u_char                             *p;
    size_t                              len;
    ngx_str_t                           answer, text, model, stop, empty;
    ngx_pool_t                         *pool;
    ngx_http_reverse_mcp_chat_call_t   *cc;
    ngx_http_reverse_mcp_llm_result_t  *res;

    cc = req->data;
    res = &req->result;

    /* ours now: the answer may end the call (and stop the sampling) */
    pool = cc->sample_pool;
    cc->sample_pool = NULL;
    cc->sample = NULL;

    ngx_str_null(&empty);

    if (res->error_type == NGX_HTTP_REVERSE_MCP_LLM_OK) {
        text = res->text;
        model = cc->sample_conf.model;

        if ((res->stop_reason.len == 6
             && ngx_strncmp(res->stop_reason.data, "length", 6) == 0)
            || (res->stop_reason.len == 10
                && ngx_strncmp(res->stop_reason.data, "max_tokens", 10)
                   == 0))
        {
            ngx_str_set(&stop, "maxTokens");

        } else {
            ngx_str_set(&stop, "endTurn");
        }

        len = sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"result\":{\"role\":"
                     "\"assistant\",\"content\":{\"type\":\"text\","
                     "\"text\":},\"model\":,\"stopReason\":}}")
              + ngx_http_reverse_mcp_json_escaped_len(&cc->sample_id)
              + ngx_http_reverse_mcp_json_escaped_len(&text)
              + ngx_http_reverse_mcp_json_escaped_len(&model)
              + ngx_http_reverse_mcp_json_escaped_len(&stop);

    } else {
        text = res->error;
        len = sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"error\":{\"code\":"
                     "-32603,\"message\":}}")
              + ngx_http_reverse_mcp_json_escaped_len(&cc->sample_id)
              + ngx_http_reverse_mcp_json_escaped_len(&text);
    }

    answer.data = ngx_pnalloc(pool, len);

    if (answer.data) {
        p = ngx_cpymem(answer.data, "{\"jsonrpc\":\"2.0\",\"id\":",
                       sizeof("{\"jsonrpc\":\"2.0\",\"id\":") - 1);
        p = ngx_http_reverse_mcp_json_escape(p, &cc->sample_id);

        if (res->error_type == NGX_HTTP_REVERSE_MCP_LLM_OK) {
            p = ngx_cpymem(p, ",\"result\":{\"role\":\"assistant\","
                           "\"content\":{\"type\":\"text\",\"text\":",
                           sizeof(",\"result\":{\"role\":\"assistant\","
                                  "\"content\":{\"type\":\"text\","
                                  "\"text\":") - 1);
            p = ngx_http_reverse_mcp_json_escape(p, &text);
            p = ngx_cpymem(p, "},\"model\":", sizeof("},\"model\":") - 1);
            p = ngx_http_reverse_mcp_json_escape(p, &model);
            p = ngx_cpymem(p, ",\"stopReason\":",
                           sizeof(",\"stopReason\":") - 1);
            p = ngx_http_reverse_mcp_json_escape(p, &stop);
            p = ngx_cpymem(p, "}}", 2);

        } else {
            ngx_log_error(NGX_LOG_WARN, req->log, 0,
                          "reverse_mcp: chat: the model could not answer "
                          "the sample server \"%V\" asked for: %V",
                          &cc->server, &text);

            p = ngx_cpymem(p, ",\"error\":{\"code\":-32603,\"message\":",
                           sizeof(",\"error\":{\"code\":-32603,"
                                  "\"message\":") - 1);
            p = ngx_http_reverse_mcp_json_escape(p, &text);
            p = ngx_cpymem(p, "}}", 2);
        }

        answer.len = p - answer.data;

        (void) ngx_http_reverse_mcp_call_answer(&cc->sample_id, &empty,
                                                &answer, req->log);
    }

    ngx_destroy_pool(pool);
}


/* the call ends or the chat stops: the model's sampling work goes */
static void
ngx_http_reverse_mcp_chat_sample_stop(ngx_http_reverse_mcp_chat_call_t *cc)
{
    if (cc->sample) {
        ngx_http_reverse_mcp_llm_cancel(cc->sample);
        cc->sample = NULL;
    }

    if (cc->sample_pool) {
        ngx_destroy_pool(cc->sample_pool);
        cc->sample_pool = NULL;
    }
}


static void
ngx_http_reverse_mcp_chat_call_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json)
{
    ngx_http_reverse_mcp_chat_call_t  *cc;
    ngx_http_reverse_mcp_chat_priv_t  *p;

    cc = call->data;
    p = cc->p;

    if (!cc->active) {
        return;
    }

    cc->active = 0;
    cc->elapsed = ngx_current_msec - cc->start;

    /* the call is over: a sampling request of its server is moot */
    ngx_http_reverse_mcp_chat_sample_stop(cc);

    if (ngx_http_reverse_mcp_chat_result_text(p->pool, is_error, json,
                                              &cc->result, &cc->is_error)
        != NGX_OK)
    {
        cc->is_error = 1;
        ngx_str_set(&cc->result, "Error: the tool result could not be "
                                 "read");
    }

    /* the loop goes on from a posted event, not from inside the call */
    if (--p->pending == 0 && !p->next_ev.posted) {
        ngx_post_event(&p->next_ev, &ngx_posted_events);
    }
}


/* the round's tool calls are all done: results to the model */
static void
ngx_http_reverse_mcp_chat_next(ngx_event_t *ev)
{
    ngx_http_reverse_mcp_chat_priv_t  *p = ev->data;

    yajl_gen                           g;
    ngx_str_t                          s;
    ngx_uint_t                         i;
    ngx_connection_t                  *c;
    ngx_http_reverse_mcp_llm_msg_t    *m;
    ngx_http_reverse_mcp_chat_call_t  *cc;

    c = p->request->connection;

    for (i = 0; i < p->ncalls; i++) {
        cc = &p->calls[i];

        m = ngx_array_push(&p->turn);
        if (m == NULL) {
            goto nomem;
        }

        ngx_memzero(m, sizeof(ngx_http_reverse_mcp_llm_msg_t));
        m->role = NGX_HTTP_REVERSE_MCP_LLM_TOOL;
        m->tool_call_id = cc->id;
        m->name = cc->name;
        m->content = cc->result;
        m->is_error = cc->is_error;

        if (ngx_http_reverse_mcp_chat_summary(p, cc, p->chat->rounds)
            != NGX_OK)
        {
            goto nomem;
        }

        if (p->chat->progress == NULL) {
            continue;
        }

        g = yajl_gen_alloc(NULL);
        if (g == NULL) {
            continue;
        }

        s = cc->result;

        if (s.len > NGX_HTTP_REVERSE_MCP_CHAT_SUMMARY_MAX) {
            s.len = NGX_HTTP_REVERSE_MCP_CHAT_SUMMARY_MAX;
        }

        yajl_gen_map_open(g);
        ngx_http_reverse_mcp_chat_lit(g, "tool");
        ngx_http_reverse_mcp_chat_gstr(g, &cc->name);
        ngx_http_reverse_mcp_chat_lit(g, "is_error");
        yajl_gen_bool(g, cc->is_error ? 1 : 0);
        ngx_http_reverse_mcp_chat_lit(g, "result");
        ngx_http_reverse_mcp_chat_gstr(g, &s);
        ngx_http_reverse_mcp_chat_lit(g, "ms");
        yajl_gen_integer(g, cc->elapsed);
        yajl_gen_map_close(g);

        ngx_http_reverse_mcp_chat_progress(p,
                             NGX_HTTP_REVERSE_MCP_CHAT_TOOL_RESULT, &cc->name,
                             g);
    }

    p->ncalls = 0;

    if (ngx_http_reverse_mcp_chat_round(p) != NGX_OK) {
        ngx_http_reverse_mcp_chat_finish(p);
    }

    ngx_http_run_posted_requests(c);
    return;

nomem:

    ngx_http_reverse_mcp_chat_fail(p, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "internal", "out of memory");
    ngx_http_reverse_mcp_chat_finish(p);
    ngx_http_run_posted_requests(c);
}


/*
 * A tools/call outcome as text for the model: text content concatenated,
 * other content described (images, audio, resources, links), the
 * structured content when there is nothing else; errors (the server's
 * JSON-RPC error, the gateway's, or isError) marked as such.
 */
static ngx_int_t
ngx_http_reverse_mcp_chat_result_text(ngx_pool_t *pool, ngx_uint_t is_error,
    ngx_str_t *json, ngx_str_t *text, ngx_uint_t *error)
{
    char        err[128];
    u_char     *d, *end;
    size_t      i, len;
    yajl_val    root, content, item, v, res;
    ngx_str_t   type, s, mime, uri, name, dump;
    ngx_uint_t  n;

    root = ngx_http_reverse_mcp_json_parse(json->data, json->len, err,
                                           sizeof(err));
    if (root == NULL) {
        return NGX_ERROR;
    }

    len = NGX_HTTP_REVERSE_MCP_CHAT_RESULT_MAX;
    d = ngx_pnalloc(pool, len + 64);
    if (d == NULL) {
        yajl_tree_free(root);
        return NGX_ERROR;
    }

    text->data = d;
    end = d + len;

    if (is_error) {
        *error = 1;

        ngx_str_set(&s, "(no message)");
        (void) ngx_http_reverse_mcp_json_get_str(root, "message", &s);

        v = ngx_http_reverse_mcp_json_get(root, "code");

        d = ngx_slprintf(d, end, "Error calling the tool: %V", &s);

        if (v && YAJL_IS_INTEGER(v)
            && YAJL_GET_INTEGER(v) == NGX_HTTP_REVERSE_MCP_ERR_UNAVAILABLE)
        {
            d = ngx_slprintf(d, end, " (its server is not connected)");
        }

        text->len = d - text->data;
        yajl_tree_free(root);
        return NGX_OK;
    }

    v = ngx_http_reverse_mcp_json_get(root, "isError");
    *error = (v && YAJL_IS_TRUE(v)) ? 1 : 0;

    content = ngx_http_reverse_mcp_json_get(root, "content");
    n = 0;

    for (i = 0; content && YAJL_IS_ARRAY(content) && i < content->u.array.len;
         i++)
    {
        item = content->u.array.values[i];

        if (ngx_http_reverse_mcp_json_get_str(item, "type", &type) != NGX_OK) {
            continue;
        }

        if (n++) {
            d = ngx_slprintf(d, end, "\n");
        }

        ngx_str_null(&mime);
        (void) ngx_http_reverse_mcp_json_get_str(item, "mimeType", &mime);

        if (ngx_http_reverse_mcp_chat_str_eq(&type, "text")) {
            ngx_str_null(&s);
            (void) ngx_http_reverse_mcp_json_get_str(item, "text", &s);
            d = ngx_slprintf(d, end, "%V", &s);
            continue;
        }

        if (ngx_http_reverse_mcp_chat_str_eq(&type, "image")
            || ngx_http_reverse_mcp_chat_str_eq(&type, "audio"))
        {
            ngx_str_null(&s);
            (void) ngx_http_reverse_mcp_json_get_str(item, "data", &s);
            d = ngx_slprintf(d, end, "[%V: %V, %uz bytes (base64) not "
                             "shown]", &type, &mime, s.len / 4 * 3);
            continue;
        }

        if (ngx_http_reverse_mcp_chat_str_eq(&type, "resource")) {
            res = ngx_http_reverse_mcp_json_get(item, "resource");

            ngx_str_null(&uri);
            ngx_str_null(&mime);
            (void) ngx_http_reverse_mcp_json_get_str(res, "uri", &uri);
            (void) ngx_http_reverse_mcp_json_get_str(res, "mimeType", &mime);

            if (ngx_http_reverse_mcp_json_get_str(res, "text", &s) == NGX_OK)
            {
                d = ngx_slprintf(d, end, "[resource %V%s%V%s]\n%V", &uri,
                                 mime.len ? " (" : "", &mime,
                                 mime.len ? ")" : "", &s);

            } else {
                ngx_str_null(&s);
                (void) ngx_http_reverse_mcp_json_get_str(res, "blob", &s);
                d = ngx_slprintf(d, end, "[resource %V%s%V%s: %uz bytes "
                                 "(base64) not shown]", &uri,
                                 mime.len ? " (" : "", &mime,
                                 mime.len ? ")" : "", s.len / 4 * 3);
            }

            continue;
        }

        if (ngx_http_reverse_mcp_chat_str_eq(&type, "resource_link")) {
            ngx_str_null(&uri);
            ngx_str_null(&name);
            (void) ngx_http_reverse_mcp_json_get_str(item, "uri", &uri);
            (void) ngx_http_reverse_mcp_json_get_str(item, "name", &name);

            d = ngx_slprintf(d, end, "[resource link: %V <%V>%s%V%s]", &name,
                             &uri, mime.len ? " (" : "", &mime,
                             mime.len ? ")" : "");
            continue;
        }

        d = ngx_slprintf(d, end, "[%V content not shown]", &type);
    }

    if (n == 0) {
        v = ngx_http_reverse_mcp_json_get(root, "structuredContent");

        if (v && ngx_http_reverse_mcp_json_dump(pool, v, &dump) == NGX_OK) {
            d = ngx_slprintf(d, end, "%V", &dump);
        }
    }

    if (d == end) {
        d = ngx_cpymem(d, "\n... (truncated)", 16);
    }

    text->len = d - text->data;

    if (*error && text->len == 0) {
        ngx_str_set(text, "Error: the tool failed without a message");
    }

    yajl_tree_free(root);

    return NGX_OK;
}


/* one entry of the response's "tool_calls" */
static ngx_int_t
ngx_http_reverse_mcp_chat_summary(ngx_http_reverse_mcp_chat_priv_t *p,
    ngx_http_reverse_mcp_chat_call_t *cc, ngx_uint_t round)
{
    yajl_gen    g;
    ngx_str_t  *entry, s;

    entry = ngx_array_push(&p->summary);
    if (entry == NULL) {
        return NGX_ERROR;
    }

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    s = cc->result;

    if (s.len > NGX_HTTP_REVERSE_MCP_CHAT_SUMMARY_MAX) {
        s.len = NGX_HTTP_REVERSE_MCP_CHAT_SUMMARY_MAX;
    }

    yajl_gen_map_open(g);
    ngx_http_reverse_mcp_chat_lit(g, "name");
    ngx_http_reverse_mcp_chat_gstr(g, &cc->name);

    if (cc->server.len) {
        ngx_http_reverse_mcp_chat_lit(g, "server");
        ngx_http_reverse_mcp_chat_gstr(g, &cc->server);
        ngx_http_reverse_mcp_chat_lit(g, "tool");
        ngx_http_reverse_mcp_chat_gstr(g, &cc->tool);
    }

    ngx_http_reverse_mcp_chat_lit(g, "arguments");
    ngx_http_reverse_mcp_chat_raw(g, &cc->arguments);
    ngx_http_reverse_mcp_chat_lit(g, "is_error");
    yajl_gen_bool(g, cc->is_error ? 1 : 0);
    ngx_http_reverse_mcp_chat_lit(g, "result");
    ngx_http_reverse_mcp_chat_gstr(g, &s);
    ngx_http_reverse_mcp_chat_lit(g, "round");
    yajl_gen_integer(g, round);
    ngx_http_reverse_mcp_chat_lit(g, "ms");
    yajl_gen_integer(g, cc->elapsed);
    yajl_gen_map_close(g);

    return ngx_http_reverse_mcp_json_gen_done(p->pool, g, entry);
}


static void
ngx_http_reverse_mcp_chat_progress(ngx_http_reverse_mcp_chat_priv_t *p,
    ngx_uint_t kind, ngx_str_t *text, yajl_gen g)
{
    ngx_str_t  json;

    if (p->chat->progress == NULL || p->closed) {
        yajl_gen_free(g);
        return;
    }

    if (ngx_http_reverse_mcp_json_gen_done(p->pool, g, &json) != NGX_OK) {
        return;
    }

    p->chat->progress(p->chat, kind, text, &json);
}


static void
ngx_http_reverse_mcp_chat_fail(ngx_http_reverse_mcp_chat_priv_t *p,
    ngx_uint_t status, const char *type, const char *fmt, ...)
{
    u_char   *d;
    va_list   args;

    if (p->chat->error_type) {
        return;
    }

    p->chat->status = status;
    p->chat->error_type = type;

    d = ngx_pnalloc(p->pool, NGX_HTTP_REVERSE_MCP_CHAT_ERR_MAX);
    if (d == NULL) {
        ngx_str_set(&p->chat->error, "out of memory");
        return;
    }

    va_start(args, fmt);
    p->chat->error.len = ngx_vslprintf(d, d + NGX_HTTP_REVERSE_MCP_CHAT_ERR_MAX,
                                       fmt, args)
                         - d;
    va_end(args);

    p->chat->error.data = d;
}


/* the end of the loop: history, then the front end */
static void
ngx_http_reverse_mcp_chat_finish(ngx_http_reverse_mcp_chat_priv_t *p)
{
    u_char      *d;
    size_t       len;
    ngx_str_t   *s;
    ngx_uint_t   i;

    if (p->ended) {
        return;
    }

    p->ended = 1;

    if (p->summary.nelts) {
        s = p->summary.elts;
        len = 2;

        for (i = 0; i < p->summary.nelts; i++) {
            len += s[i].len + 1;
        }

        d = ngx_pnalloc(p->pool, len);

        if (d) {
            p->chat->tool_calls.data = d;
            *d++ = '[';

            for (i = 0; i < p->summary.nelts; i++) {
                if (i) {
                    *d++ = ',';
                }

                d = ngx_cpymem(d, s[i].data, s[i].len);
            }

            *d++ = ']';
            p->chat->tool_calls.len = d - p->chat->tool_calls.data;
        }
    }

    ngx_http_reverse_mcp_chat_release(p, p->chat->error_type == NULL);

    ngx_log_error(NGX_LOG_INFO, p->request->connection->log, 0,
                  "reverse_mcp: chat of agent \"%V\" context \"%V\": %s "
                  "after %ui round(s), %ui tool call(s), %Mms in the LLM",
                  &p->chat->agent, &p->chat->context_id,
                  p->chat->error_type ? p->chat->error_type : "answered",
                  p->chat->rounds, p->summary.nelts, p->llm_time);

    p->chat->end(p->chat);
}


static void
ngx_http_reverse_mcp_chat_release(ngx_http_reverse_mcp_chat_priv_t *p,
    ngx_uint_t save)
{
    if (!p->acquired) {
        return;
    }

    p->acquired = 0;

    if (save && ngx_http_reverse_mcp_chat_save(p) == NGX_OK) {
        return;
    }

    (void) ngx_http_reverse_mcp_history_release(p->cm->zone, &p->key, NULL, 0,
                                                p->cm->idle,
                                                p->request->connection->log);
}


void
ngx_http_reverse_mcp_chat_cancel(ngx_http_reverse_mcp_chat_t *chat)
{
    ngx_uint_t                         i;
    ngx_http_reverse_mcp_chat_priv_t  *p;

    p = chat->priv;

    if (p == NULL || p->ended) {
        return;
    }

    ngx_http_reverse_mcp_chat_fail(p, NGX_HTTP_OK, "canceled",
                                   "the task was canceled");

    if (p->llm_req) {
        ngx_http_reverse_mcp_llm_cancel(p->llm_req);
        p->llm_req = NULL;
    }

    for (i = 0; i < p->ncalls; i++) {
        ngx_http_reverse_mcp_chat_sample_stop(&p->calls[i]);

        if (p->calls[i].active) {
            p->calls[i].active = 0;
            ngx_http_reverse_mcp_call_cancel(&p->calls[i].call);
        }
    }

    if (p->next_ev.posted) {
        ngx_delete_posted_event(&p->next_ev);
    }

    p->ended = 1;

    ngx_http_reverse_mcp_chat_release(p, 0);

    ngx_log_error(NGX_LOG_INFO, p->request->connection->log, 0,
                  "reverse_mcp: chat of context \"%V\" canceled",
                  &chat->context_id);
}


/* the client went away, or the request ends: stop what still runs */
static void
ngx_http_reverse_mcp_chat_cleanup(void *data)
{
    ngx_http_reverse_mcp_chat_priv_t  *p = data;

    ngx_uint_t  i;

    p->closed = 1;

    if (p->llm_req) {
        ngx_http_reverse_mcp_llm_cancel(p->llm_req);
        p->llm_req = NULL;
    }

    for (i = 0; i < p->ncalls; i++) {
        ngx_http_reverse_mcp_chat_sample_stop(&p->calls[i]);

        if (p->calls[i].active) {
            p->calls[i].active = 0;
            ngx_http_reverse_mcp_call_cancel(&p->calls[i].call);
        }
    }

    if (p->next_ev.posted) {
        ngx_delete_posted_event(&p->next_ev);
    }

    if (!p->ended) {
        ngx_log_error(NGX_LOG_INFO, p->request->connection->log, 0,
                      "reverse_mcp: chat of context \"%V\" cancelled: the "
                      "client went away", &p->chat->context_id);
    }

    p->ended = 1;

    ngx_http_reverse_mcp_chat_release(p, 0);
}


/* ------------------------------------------------------------------ */
/* history: [{"role":"user"|"assistant","content":TEXT}, ...]          */
/* ------------------------------------------------------------------ */


static ngx_int_t
ngx_http_reverse_mcp_chat_parse_history(ngx_http_reverse_mcp_chat_priv_t *p,
    ngx_str_t *blob)
{
    char                             err[128];
    size_t                           i;
    yajl_val                         root, item;
    ngx_str_t                        role, content;
    ngx_http_reverse_mcp_llm_msg_t  *m;

    root = ngx_http_reverse_mcp_json_parse(blob->data, blob->len, err,
                                           sizeof(err));
    if (root == NULL) {
        return NGX_ERROR;
    }

    if (!YAJL_IS_ARRAY(root)) {
        yajl_tree_free(root);
        return NGX_ERROR;
    }

    for (i = 0; i < root->u.array.len; i++) {
        item = root->u.array.values[i];

        if (ngx_http_reverse_mcp_json_get_str(item, "role", &role) != NGX_OK
            || ngx_http_reverse_mcp_json_get_str(item, "content", &content)
               != NGX_OK)
        {
            continue;
        }

        m = ngx_array_push(&p->history);
        if (m == NULL) {
            yajl_tree_free(root);
            return NGX_ERROR;
        }

        ngx_memzero(m, sizeof(ngx_http_reverse_mcp_llm_msg_t));

        m->role = ngx_http_reverse_mcp_chat_str_eq(&role, "user")
                  ? NGX_HTTP_REVERSE_MCP_LLM_USER
                  : NGX_HTTP_REVERSE_MCP_LLM_ASSISTANT;

        m->content.data = ngx_pstrdup(p->pool, &content);
        m->content.len = content.len;

        if (content.len && m->content.data == NULL) {
            yajl_tree_free(root);
            return NGX_ERROR;
        }
    }

    yajl_tree_free(root);

    return NGX_OK;
}


/* history + this turn (user message, answer), oldest turns dropped to fit
 * max_history */
static ngx_int_t
ngx_http_reverse_mcp_chat_save(ngx_http_reverse_mcp_chat_priv_t *p)
{
    u_char                          *d;
    size_t                           total, *sizes;
    yajl_gen                         g;
    ngx_str_t                        blob, *items;
    ngx_uint_t                       i, n, first;
    ngx_http_reverse_mcp_llm_msg_t  *m, *turn;

    n = p->history.nelts + 2;

    items = ngx_pcalloc(p->pool, n * sizeof(ngx_str_t));
    sizes = ngx_pcalloc(p->pool, n * sizeof(size_t));

    if (items == NULL || sizes == NULL) {
        return NGX_ERROR;
    }

    m = p->history.elts;
    turn = p->turn.elts;

    for (i = 0; i < n; i++) {
        g = yajl_gen_alloc(NULL);
        if (g == NULL) {
            return NGX_ERROR;
        }

        yajl_gen_map_open(g);
        ngx_http_reverse_mcp_chat_lit(g, "role");

        if (i < p->history.nelts) {
            if (m[i].role == NGX_HTTP_REVERSE_MCP_LLM_USER) {
                ngx_http_reverse_mcp_chat_lit(g, "user");

            } else {
                ngx_http_reverse_mcp_chat_lit(g, "assistant");
            }

            ngx_http_reverse_mcp_chat_lit(g, "content");
            ngx_http_reverse_mcp_chat_gstr(g, &m[i].content);

        } else if (i == p->history.nelts) {
            ngx_http_reverse_mcp_chat_lit(g, "user");
            ngx_http_reverse_mcp_chat_lit(g, "content");
            ngx_http_reverse_mcp_chat_gstr(g, &turn[0].content);

        } else {
            ngx_http_reverse_mcp_chat_lit(g, "assistant");
            ngx_http_reverse_mcp_chat_lit(g, "content");
            ngx_http_reverse_mcp_chat_gstr(g, &p->chat->answer);
        }

        yajl_gen_map_close(g);

        if (ngx_http_reverse_mcp_json_gen_done(p->pool, g, &items[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        sizes[i] = items[i].len + 1;
    }

    /* drop the oldest turns (a user message and what follows) to fit */

    total = 1;

    for (i = 0; i < n; i++) {
        total += sizes[i];
    }

    first = 0;

    while (total > p->cm->max_history && first < p->history.nelts) {
        total -= sizes[first++];

        while (first < p->history.nelts
               && m[first].role != NGX_HTTP_REVERSE_MCP_LLM_USER)
        {
            total -= sizes[first++];
        }
    }

    if (total > p->cm->max_history) {
        first = n;
    }

    if (first >= n) {
        ngx_log_error(NGX_LOG_INFO, p->request->connection->log, 0,
                      "reverse_mcp: chat turn of \"%V\" is larger than "
                      "max_history: the history is emptied",
                      &p->chat->context_id);
        ngx_str_set(&blob, "[]");

    } else {
        blob.data = ngx_pnalloc(p->pool, total + 1);
        if (blob.data == NULL) {
            return NGX_ERROR;
        }

        d = blob.data;
        *d++ = '[';

        for (i = first; i < n; i++) {
            if (i > first) {
                *d++ = ',';
            }

            d = ngx_cpymem(d, items[i].data, items[i].len);
        }

        *d++ = ']';
        blob.len = d - blob.data;
    }

    return ngx_http_reverse_mcp_history_release(p->cm->zone, &p->key, &blob,
                                                0, p->cm->idle,
                                                p->request->connection->log);
}


/* ------------------------------------------------------------------ */
/* commands                                                             */
/* ------------------------------------------------------------------ */


static ngx_int_t
ngx_http_reverse_mcp_chat_command(ngx_http_reverse_mcp_chat_priv_t *p,
    ngx_str_t *cmd)
{
    u_char                      *d;
    ngx_int_t                    rc;
    ngx_str_t                    blob, lower;
    ngx_http_reverse_mcp_chat_t  *chat;

    chat = p->chat;

    lower.len = cmd->len;
    lower.data = ngx_pnalloc(p->pool, cmd->len);
    if (lower.data == NULL) {
        return NGX_ERROR;
    }

    ngx_strlow(lower.data, cmd->data, cmd->len);
    chat->command = lower;
    ngx_str_set(&chat->stop, "command");

    if (ngx_http_reverse_mcp_chat_str_eq(&lower, "/tools")) {
        return ngx_http_reverse_mcp_chat_list(p, 0, &chat->answer);
    }

    if (ngx_http_reverse_mcp_chat_str_eq(&lower, "/servers")) {
        return ngx_http_reverse_mcp_chat_list(p, 1, &chat->answer);
    }

    if (ngx_http_reverse_mcp_chat_str_eq(&lower, "/hello")) {
        ngx_str_set(&chat->answer, "hello!");
        return NGX_OK;
    }

    if (ngx_http_reverse_mcp_chat_str_eq(&lower, "/history")) {
        return ngx_http_reverse_mcp_chat_history_text(p, &chat->answer);
    }

    if (ngx_http_reverse_mcp_chat_str_eq(&lower, "/bye")
        || ngx_http_reverse_mcp_chat_str_eq(&lower, "/quit")
        || ngx_http_reverse_mcp_chat_str_eq(&lower, "/exit"))
    {
        rc = ngx_http_reverse_mcp_history_acquire(p->cm->zone, p->pool,
                                                  &p->key, p->cm->idle, 60,
                                                  &blob);
        if (rc == NGX_BUSY) {
            ngx_http_reverse_mcp_chat_fail(p, NGX_HTTP_CONFLICT, "busy",
                         "the conversation \"%V\" is answering another "
                         "message", &chat->context_id);
            return NGX_OK;
        }

        if (rc == NGX_OK) {
            (void) ngx_http_reverse_mcp_history_release(p->cm->zone, &p->key,
                                                  NULL, 1, p->cm->idle,
                                                  p->request->connection->log);
        }

        ngx_str_set(&chat->answer, "Bye! The conversation is closed.");
        return NGX_OK;
    }

    if (ngx_http_reverse_mcp_chat_str_eq(&lower, "/help")) {
        ngx_str_set(&chat->answer,
                    "Commands: /tools (the tools of the connected servers), "
                    "/servers (the connected servers), /history (this "
                    "conversation), /hello, /bye (ends the conversation; "
                    "also /quit, /exit), /help. Anything else goes to the "
                    "model.");
        return NGX_OK;
    }

    d = ngx_pnalloc(p->pool, cmd->len + 128);
    if (d == NULL) {
        return NGX_ERROR;
    }

    chat->answer.data = d;
    chat->answer.len = ngx_sprintf(d, "Unknown command: %V. Commands: "
                                   "/tools, /servers, /history, /hello, "
                                   "/bye, /help.", cmd)
                       - d;

    return NGX_OK;
}


/*
 * /tools (as the seed's CLI prints it):
 *     Available Tools:\n\n- server\n  - tool: description\n\n
 * /servers:
 *     Available Servers:\n\n- server\n  Transport: ...\n  Tools: N\n...
 */
static ngx_int_t
ngx_http_reverse_mcp_chat_list(ngx_http_reverse_mcp_chat_priv_t *p,
    ngx_uint_t servers, ngx_str_t *out)
{
    char                                 err[128];
    size_t                               j, size;
    u_char                              *d, *end;
    yajl_val                             arr, t;
    ngx_int_t                            rc;
    ngx_str_t                            json, name, desc, *sep;
    ngx_uint_t                           i, gen, found;
    ngx_array_t                         *lists;
    ngx_http_reverse_mcp_server_conf_t  *scf;

    typedef struct {
        ngx_str_t    server;
        ngx_str_t    json;
    } list_t;

    list_t  *l;

    sep = &p->lcf->tool_separator;
    scf = p->acf->servers.elts;

    lists = ngx_array_create(p->pool, 4, sizeof(list_t));
    if (lists == NULL) {
        return NGX_ERROR;
    }

    size = 64;

    for (i = 0; i < p->acf->servers.nelts; i++) {
        rc = ngx_http_reverse_mcp_registry_tools(p->mcf->shm_zone, p->pool,
                                                 &p->chat->agent,
                                                 &scf[i].name, sep, &json,
                                                 &gen,
                                                 p->request->connection->log);
        if (rc == NGX_DECLINED) {
            continue;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        l = ngx_array_push(lists);
        if (l == NULL) {
            return NGX_ERROR;
        }

        l->server = scf[i].name;
        l->json = json;

        /* names and descriptions are shorter than their JSON */
        size += 128 + scf[i].name.len + json.len;
    }

    if (lists->nelts == 0) {
        if (servers) {
            ngx_str_set(out, "No servers connected.\n");

        } else {
            ngx_str_set(out, "No tools available.\n");
        }

        return NGX_OK;
    }

    d = ngx_pnalloc(p->pool, size);
    if (d == NULL) {
        return NGX_ERROR;
    }

    out->data = d;
    end = d + size;

    d = ngx_slprintf(d, end, servers ? "Available Servers:\n\n"
                                     : "Available Tools:\n\n");

    l = lists->elts;

    for (i = 0; i < lists->nelts; i++) {
        arr = ngx_http_reverse_mcp_json_parse(l[i].json.data, l[i].json.len,
                                              err, sizeof(err));
        if (arr == NULL) {
            return NGX_ERROR;
        }

        found = YAJL_IS_ARRAY(arr) ? arr->u.array.len : 0;

        d = ngx_slprintf(d, end, "- %V\n", &l[i].server);

        if (servers) {
            d = ngx_slprintf(d, end, "  Transport: reverse MCP (WebSocket)\n"
                             "  (Remote MCP server connected to this "
                             "instance)\n");

            if (found) {
                d = ngx_slprintf(d, end, "  Tools: %ui\n", found);
            }

        } else if (found == 0) {
            d = ngx_slprintf(d, end, "  No tools available\n");
        }

        for (j = 0; j < found; j++) {
            t = arr->u.array.values[j];

            if (ngx_http_reverse_mcp_json_get_str(t, "name", &name)
                != NGX_OK)
            {
                continue;
            }

            d = ngx_slprintf(d, end, servers ? "    - %V" : "  - %V", &name);

            if (ngx_http_reverse_mcp_json_get_str(t, "description", &desc)
                == NGX_OK && desc.len)
            {
                d = ngx_slprintf(d, end, ": %V", &desc);
            }

            d = ngx_slprintf(d, end, "\n");
        }

        d = ngx_slprintf(d, end, "\n");

        yajl_tree_free(arr);
    }

    out->len = d - out->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_reverse_mcp_chat_history_text(ngx_http_reverse_mcp_chat_priv_t *p,
    ngx_str_t *out)
{
    u_char                          *d, *end;
    size_t                           size;
    ngx_int_t                        rc;
    ngx_str_t                        blob;
    ngx_uint_t                       i;
    ngx_http_reverse_mcp_llm_msg_t  *m;

    rc = ngx_http_reverse_mcp_history_get(p->cm->zone, p->pool, &p->key,
                                          p->cm->idle, &blob);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED || blob.len == 0
        || ngx_http_reverse_mcp_chat_parse_history(p, &blob) != NGX_OK
        || p->history.nelts == 0)
    {
        ngx_str_set(out, "No conversation history.\n");
        return NGX_OK;
    }

    m = p->history.elts;
    size = 64;

    for (i = 0; i < p->history.nelts; i++) {
        size += m[i].content.len + 32;
    }

    d = ngx_pnalloc(p->pool, size);
    if (d == NULL) {
        return NGX_ERROR;
    }

    out->data = d;
    end = d + size;

    d = ngx_slprintf(d, end, "Conversation History:\n\n");

    for (i = 0; i < p->history.nelts; i++) {
        d = ngx_slprintf(d, end, "--- %s ---\n%V\n\n",
                         m[i].role == NGX_HTTP_REVERSE_MCP_LLM_USER
                         ? "User" : "Assistant", &m[i].content);
    }

    out->len = d - out->data;

    return NGX_OK;
}


/* ------------------------------------------------------------------ */
/* helpers                                                              */
/* ------------------------------------------------------------------ */


ngx_int_t
ngx_http_reverse_mcp_chat_new_id(ngx_pool_t *pool, ngx_str_t *id)
{
    u_char  rnd[16];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return NGX_ERROR;
    }

    id->data = ngx_pnalloc(pool, 32);
    if (id->data == NULL) {
        return NGX_ERROR;
    }

    ngx_hex_dump(id->data, rnd, sizeof(rnd));
    id->len = 32;

    return NGX_OK;
}


ngx_uint_t
ngx_http_reverse_mcp_chat_id_valid(ngx_str_t *id)
{
    u_char      c;
    ngx_uint_t  i;

    if (id->len == 0 || id->len > NGX_HTTP_REVERSE_MCP_CHAT_CONTEXT_MAX) {
        return 0;
    }

    for (i = 0; i < id->len; i++) {
        c = id->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
              || c == ':'))
        {
            return 0;
        }
    }

    return 1;
}


ngx_int_t
ngx_http_reverse_mcp_chat_result_json(ngx_pool_t *pool,
    ngx_http_reverse_mcp_chat_t *chat, ngx_str_t *out)
{
    yajl_gen   g;
    ngx_str_t  msg;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    yajl_gen_map_open(g);

    if (chat->error_type) {
        ngx_http_reverse_mcp_chat_lit(g, "error");
        yajl_gen_map_open(g);
        ngx_http_reverse_mcp_chat_lit(g, "type");
        yajl_gen_string(g, (const unsigned char *) chat->error_type,
                        ngx_strlen(chat->error_type));
        ngx_http_reverse_mcp_chat_lit(g, "message");
        msg = chat->error;
        ngx_http_reverse_mcp_chat_gstr(g, &msg);

        if (chat->upstream_status) {
            ngx_http_reverse_mcp_chat_lit(g, "upstream_status");
            yajl_gen_integer(g, chat->upstream_status);
        }

        yajl_gen_map_close(g);

    } else {
        ngx_http_reverse_mcp_chat_lit(g, "answer");
        ngx_http_reverse_mcp_chat_gstr(g, &chat->answer);
    }

    ngx_http_reverse_mcp_chat_lit(g, "tool_calls");
    ngx_http_reverse_mcp_chat_raw(g, &chat->tool_calls);

    if (chat->context_id.len) {
        ngx_http_reverse_mcp_chat_lit(g, "context_id");
        ngx_http_reverse_mcp_chat_gstr(g, &chat->context_id);
    }

    if (chat->command.len) {
        ngx_http_reverse_mcp_chat_lit(g, "command");
        ngx_http_reverse_mcp_chat_gstr(g, &chat->command);
    }

    ngx_http_reverse_mcp_chat_lit(g, "rounds");
    yajl_gen_integer(g, chat->rounds);

    if (chat->stop.len) {
        ngx_http_reverse_mcp_chat_lit(g, "stop");
        ngx_http_reverse_mcp_chat_gstr(g, &chat->stop);
    }

    yajl_gen_map_close(g);

    return ngx_http_reverse_mcp_json_gen_done(pool, g, out);
}


static ngx_int_t
ngx_http_reverse_mcp_chat_str_eq(ngx_str_t *s, const char *c)
{
    size_t  n;

    n = ngx_strlen(c);

    return s->len == n && ngx_strncmp(s->data, c, n) == 0;
}


/* ------------------------------------------------------------------ */
/* the plain chat API: POST {"message":..,"context_id":..}             */
/* ------------------------------------------------------------------ */


ngx_int_t
ngx_http_reverse_mcp_chat_handler(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_str_t                           allow;
    ngx_http_reverse_mcp_chat_front_t  *f;

    if (r->method != NGX_HTTP_POST) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&allow, "POST");

        if (ngx_http_reverse_mcp_http_add_header(r, "Allow", &allow)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_reverse_mcp_chat_error(r, NGX_HTTP_NOT_ALLOWED,
                                               "bad_request",
                                               "use POST with a JSON body");
    }

    if (!ngx_http_reverse_mcp_http_json_content(r)) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_reverse_mcp_chat_error(r,
                                       NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                       "bad_request",
                                       "Content-Type must be "
                                       "application/json");
    }

    f = ngx_pcalloc(r->pool, sizeof(ngx_http_reverse_mcp_chat_front_t));
    if (f == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    f->sse = ngx_http_reverse_mcp_http_accepts_sse(r);

    ngx_http_set_ctx(r, f, ngx_http_reverse_mcp_module);

    rc = ngx_http_read_client_request_body(r, ngx_http_reverse_mcp_chat_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_reverse_mcp_chat_body(ngx_http_request_t *r)
{
    char                                err[128];
    yajl_val                            root, v;
    ngx_int_t                           rc;
    ngx_str_t                           body, s;
    ngx_http_reverse_mcp_chat_t        *chat;
    ngx_http_reverse_mcp_chat_loc_t    *cl;
    ngx_http_reverse_mcp_loc_conf_t    *lcf;
    ngx_http_reverse_mcp_chat_front_t  *f;

    f = ngx_http_get_module_ctx(r, ngx_http_reverse_mcp_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_reverse_mcp_module);
    cl = lcf->chat;
    chat = &f->chat;

    if (ngx_http_reverse_mcp_http_read_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    root = ngx_http_reverse_mcp_json_parse(body.data, body.len, err,
                                           sizeof(err));
    if (root == NULL) {
        ngx_http_finalize_request(r,
            ngx_http_reverse_mcp_chat_error(r, NGX_HTTP_BAD_REQUEST,
                                            "bad_request",
                                            "the body is not JSON: %s", err));
        return;
    }

    if (!YAJL_IS_OBJECT(root)
        || ngx_http_reverse_mcp_json_get_str(root, "message", &s) != NGX_OK
        || s.len == 0)
    {
        yajl_tree_free(root);
        ngx_http_finalize_request(r,
            ngx_http_reverse_mcp_chat_error(r, NGX_HTTP_BAD_REQUEST,
                                            "bad_request",
                                            "\"message\" (a non-empty "
                                            "string) is required"));
        return;
    }

    chat->message.data = ngx_pstrdup(r->pool, &s);
    chat->message.len = s.len;

    v = ngx_http_reverse_mcp_json_get(root, "context_id");

    if (v && !YAJL_IS_NULL(v)) {
        if (!YAJL_IS_STRING(v)) {
            yajl_tree_free(root);
            ngx_http_finalize_request(r,
                ngx_http_reverse_mcp_chat_error(r, NGX_HTTP_BAD_REQUEST,
                                                "bad_request",
                                                "\"context_id\" must be a "
                                                "string"));
            return;
        }

        s.data = (u_char *) v->u.string;
        s.len = ngx_strlen(v->u.string);

        if (!ngx_http_reverse_mcp_chat_id_valid(&s)) {
            yajl_tree_free(root);
            ngx_http_finalize_request(r,
                ngx_http_reverse_mcp_chat_error(r, NGX_HTTP_BAD_REQUEST,
                                                "bad_request",
                                                "invalid \"context_id\": "
                                                "use 1-128 of "
                                                "[A-Za-z0-9._:-]"));
            return;
        }

        chat->context_id.data = ngx_pstrdup(r->pool, &s);
        chat->context_id.len = s.len;

    } else if (ngx_http_reverse_mcp_chat_new_id(r->pool, &chat->context_id)
               != NGX_OK)
    {
        yajl_tree_free(root);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    yajl_tree_free(root);

    if (chat->message.data == NULL || chat->context_id.data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    chat->request = r;
    chat->agent = cl->agent;
    chat->progress = f->sse ? ngx_http_reverse_mcp_chat_front_progress : NULL;
    chat->end = ngx_http_reverse_mcp_chat_front_end;
    chat->data = f;

    rc = ngx_http_reverse_mcp_chat_run(chat);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rc == NGX_OK) {
        ngx_http_finalize_request(r, ngx_http_reverse_mcp_chat_respond(f));
        return;
    }

    /* NGX_DONE: a client that goes away ends it (request cleanup) */
    r->read_event_handler = ngx_http_test_reading;
}


static void
ngx_http_reverse_mcp_chat_front_progress(ngx_http_reverse_mcp_chat_t *chat,
    ngx_uint_t kind, ngx_str_t *text, ngx_str_t *json)
{
    ngx_int_t                           rc;
    const char                         *name;
    ngx_http_request_t                 *r;
    ngx_http_reverse_mcp_chat_front_t  *f;

    f = chat->data;
    r = chat->request;

    if (f->failed) {
        return;
    }

    if (!f->header_sent) {
        f->header_sent = 1;

        rc = ngx_http_reverse_mcp_http_sse_open(r);

        if (rc != NGX_OK) {
            f->failed = 1;
            return;
        }
    }

    switch (kind) {

    case NGX_HTTP_REVERSE_MCP_CHAT_TOOL_RESULT:
        name = "tool_result";
        break;

    case NGX_HTTP_REVERSE_MCP_CHAT_TEXT:
        name = "delta";
        break;

    default:
        name = "status";
    }

    if (ngx_http_reverse_mcp_http_sse_event(r, name, json, 0) == NGX_ERROR) {
        /* the end comes with the loop; the client is gone meanwhile */
        f->failed = 1;
    }
}


static void
ngx_http_reverse_mcp_chat_front_end(ngx_http_reverse_mcp_chat_t *chat)
{
    ngx_int_t                           rc;
    ngx_connection_t                   *c;
    ngx_http_request_t                 *r;
    ngx_http_reverse_mcp_chat_front_t  *f;

    f = chat->data;
    r = chat->request;
    c = r->connection;

    if (f->failed) {
        ngx_http_finalize_request(r, f->header_sent
                                     ? NGX_ERROR
                                     : NGX_HTTP_INTERNAL_SERVER_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    rc = ngx_http_reverse_mcp_chat_respond(f);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the outcome: a JSON reply, or the last SSE event */
static ngx_int_t
ngx_http_reverse_mcp_chat_respond(ngx_http_reverse_mcp_chat_front_t *f)
{
    ngx_int_t                     rc;
    ngx_str_t                     json;
    ngx_http_request_t           *r;
    ngx_http_reverse_mcp_chat_t  *chat;

    chat = &f->chat;
    r = chat->request;

    if (ngx_http_reverse_mcp_chat_result_json(r->pool, chat, &json) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!f->sse || (!f->header_sent && chat->error_type)) {
        return ngx_http_reverse_mcp_http_send(r,
                                      chat->error_type ? chat->status
                                                       : NGX_HTTP_OK,
                                      NULL, &json);
    }

    if (!f->header_sent) {
        f->header_sent = 1;

        rc = ngx_http_reverse_mcp_http_sse_open(r);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    return ngx_http_reverse_mcp_http_sse_event(r, chat->error_type
                                                  ? "error" : "answer",
                                               &json, 1);
}


static ngx_int_t
ngx_http_reverse_mcp_chat_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *fmt, ...)
{
    u_char                        *d;
    va_list                        args;
    ngx_str_t                      json;
    ngx_http_reverse_mcp_chat_t    chat;

    ngx_memzero(&chat, sizeof(ngx_http_reverse_mcp_chat_t));

    d = ngx_pnalloc(r->pool, NGX_HTTP_REVERSE_MCP_CHAT_ERR_MAX);
    if (d == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    va_start(args, fmt);
    chat.error.len = ngx_vslprintf(d, d + NGX_HTTP_REVERSE_MCP_CHAT_ERR_MAX,
                                   fmt, args)
                     - d;
    va_end(args);

    chat.error.data = d;
    chat.error_type = type;
    ngx_str_set(&chat.tool_calls, "[]");

    if (ngx_http_reverse_mcp_chat_result_json(r->pool, &chat, &json)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_reverse_mcp_http_send(r, status, NULL, &json);
}


