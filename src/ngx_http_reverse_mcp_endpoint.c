/*
 * The agent-facing MCP endpoint ("reverse_mcp_endpoint agent;"): an MCP
 * server over Streamable HTTP (revisions 2025-03-26, 2025-06-18 and
 * 2025-11-25, with sessions) whose tools are those of the reverse servers
 * connected to the agent.
 *
 * URIs: the location's own URI serves every server of the agent, with
 * tools named "<server><sep><tool>"; "<location>/<server>" serves that
 * one server with its tools' own names.  In "location /mcp { ... }" that
 * is /mcp and /mcp/<server>; exact and regex locations serve the
 * aggregate only.
 *
 * Methods: POST carries one JSON-RPC message (no batches); DELETE ends a
 * session; GET opens the session's stream of server-initiated messages
 * (notifications/tools/list_changed when the agent's tools change).
 * Sessions live in the shared zone (ngx_http_reverse_mcp_session.c), so
 * any worker serves any session.  tools/call is forwarded with
 * ngx_http_reverse_mcp_call_* to whichever worker owns the server's
 * socket; the reply is JSON, or an SSE stream when the caller gave a
 * progress token or its session called logging/setLevel (progress and log
 * notifications of the call are streamed before the result; log messages
 * below the level are dropped).  A client that goes away,
 * notifications/cancelled for the request (from any worker) and DELETE of
 * the session cancel the call.
 *
 * Resources, prompts and completion of the reverse servers: on
 * "<location>/<server>" the resources/..., prompts/... and
 * completion/complete requests are forwarded as they are when the server
 * declared the capability in its initialize (else -32601).  On the
 * aggregate, the lists (prompts/list, resources/list,
 * resources/templates/list) fan out to every connected server that
 * declares them and are merged (every page of every server, no cursor; a
 * server that fails is left out), prompt names become
 * "<server><sep><prompt>" and are mapped back for prompts/get and
 * completion/complete; URIs are global, so resources/read,
 * resources/subscribe and resources/unsubscribe (and completion of a
 * ref/resource) go to the servers that declare resources one after
 * another, in name order, until one answers without an error.
 *
 * 2026-07-28 (stateless) on the same location: a request whose
 * params._meta carries io.modelcontextprotocol/protocolVersion (and that
 * is not an initialize) has no session; its MCP-Protocol-Version,
 * Mcp-Method and Mcp-Name headers must match the body (-32020), and so
 * must the Mcp-Param-* headers of a tool's x-mcp-header parameters
 * (ngx_http_reverse_mcp_ep_param_check); other versions are -32022,
 * unknown and removed methods (ping, logging/setLevel,
 * resources/(un)subscribe) HTTP 404 + -32601; results get resultType
 * (and ttlMs/cacheScope when cacheable); server/discover;
 * subscriptions/listen shares the GET stream's generation polling
 * (ngx_http_reverse_mcp_ep_stream) for tools, prompts and resources
 * list_changed; a call whose server needs a client capability the caller
 * did not declare ends with 400 + -32021.
 *
 * A reverse server's requests during a call (sampling, elicitation,
 * roots/list) reach its caller: legacy revisions on the POST's stream
 * (ngx_http_reverse_mcp_ep_request), the caller's answer comes in a POST
 * of its own to any worker (ngx_http_reverse_mcp_ep_answer, 202); a
 * 2026-07-28 caller gets input_required and its retry, with requestState
 * and inputResponses (ngx_http_reverse_mcp_ep_rounds), takes over the
 * call parked on its owner.
 *
 * Nothing of the caller's HTTP request but the call's params reaches the
 * reverse server: not its Authorization header, not its cookies.
 */

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_registry.h"
#include "ngx_http_reverse_mcp_json.h"
#include "ngx_http_reverse_mcp_call.h"
#include "ngx_http_reverse_mcp_session.h"
#include "ngx_http_reverse_mcp_http.h"
#include "ngx_http_reverse_mcp_names.h"
#include "ngx_http_reverse_mcp_mcp.h"

#include <openssl/sha.h>
#include <openssl/crypto.h>


#define NGX_HTTP_REVERSE_MCP_EP_LATEST     "2025-11-25"
#define NGX_HTTP_REVERSE_MCP_EP_SUPPORTED  \
    "2025-03-26, 2025-06-18, 2025-11-25"

/* the stateless revision, served on the same location (dual era) */
#define NGX_HTTP_REVERSE_MCP_EP_MODERN     "2026-07-28"
#define NGX_HTTP_REVERSE_MCP_EP_ALL_VERSIONS                                 \
    "[\"2026-07-28\",\"2025-11-25\",\"2025-06-18\",\"2025-03-26\"]"
#define NGX_HTTP_REVERSE_MCP_EP_TTL_MS     0     /* list results: stale at
                                                    once (servers come and
                                                    go at any time) */
#define NGX_HTTP_REVERSE_MCP_EP_META       "io.modelcontextprotocol/"

/* by NGX_HTTP_REVERSE_MCP_LIST_*: notifications/<name>/list_changed and
 * the subscriptions/listen filter's <name>ListChanged */
static const char  *ngx_http_reverse_mcp_ep_lists[] = {
    "tools", "prompts", "resources"
};


/* the aggregate's instructions: agent, separator */
#define NGX_HTTP_REVERSE_MCP_EP_AGGREGATE                                    \
    "Tools of the reverse MCP servers connected to agent \"%V\", named "    \
    "<server>%V<tool>; a name that would be longer than 64 characters or "   \
    "have characters other than [A-Za-z0-9_-] is shortened and ends in "    \
    "\"_\" and 10 hex digits."

#define NGX_HTTP_REVERSE_MCP_EP_POLL       100   /* ms, cancellation ring */
#define NGX_HTTP_REVERSE_MCP_EP_LISTEN     250   /* ms, GET stream checks */
#define NGX_HTTP_REVERSE_MCP_EP_KEEPALIVE  15    /* s, SSE comment */
#define NGX_HTTP_REVERSE_MCP_EP_CANCELS    64
#define NGX_HTTP_REVERSE_MCP_EP_MSG_MAX    512
#define NGX_HTTP_REVERSE_MCP_NOT_ACCEPTABLE 406
#define NGX_HTTP_REVERSE_MCP_EP_MAX_PAGES  100   /* per server, aggregate */

/* capabilities a reverse server declares, for the methods that need them */
#define NGX_HTTP_REVERSE_MCP_EP_CAP_RESOURCES    0x01
#define NGX_HTTP_REVERSE_MCP_EP_CAP_PROMPTS      0x02
#define NGX_HTTP_REVERSE_MCP_EP_CAP_COMPLETIONS  0x04

/* how the aggregate serves a forwarded method */
#define NGX_HTTP_REVERSE_MCP_EP_FAN_LIST      1  /* every server, merged */
#define NGX_HTTP_REVERSE_MCP_EP_FAN_FIRST     2  /* in turn, until one
                                                    answers */
#define NGX_HTTP_REVERSE_MCP_EP_FAN_NAMED     3  /* "<server><sep><name>" */
#define NGX_HTTP_REVERSE_MCP_EP_FAN_COMPLETE  4  /* by its ref */

/* JSON-RPC codes */
#define NGX_HTTP_REVERSE_MCP_PARSE_ERROR       -32700
#define NGX_HTTP_REVERSE_MCP_INVALID_REQUEST   -32600
#define NGX_HTTP_REVERSE_MCP_METHOD_NOT_FOUND  -32601
#define NGX_HTTP_REVERSE_MCP_INVALID_PARAMS    -32602
#define NGX_HTTP_REVERSE_MCP_INTERNAL_ERROR    -32603
/* as the MCP TypeScript SDK's server answers transport-level errors */
#define NGX_HTTP_REVERSE_MCP_BAD_REQUEST       -32000
#define NGX_HTTP_REVERSE_MCP_NO_SESSION        -32001
/* MCP 2026-07-28 */
#define NGX_HTTP_REVERSE_MCP_HEADER_MISMATCH   -32020
#define NGX_HTTP_REVERSE_MCP_UNSUPPORTED_VERSION -32022


typedef struct ngx_http_reverse_mcp_ep_ctx_s  ngx_http_reverse_mcp_ep_ctx_t;


/* a method forwarded to reverse servers, other than tools/call */
typedef struct {
    ngx_str_t                             method;
    ngx_uint_t                            cap;      /* what it needs */
    ngx_uint_t                            fan;      /* on the aggregate */
    const char                           *key;      /* FAN_LIST: the
                                                       result's array */
} ngx_http_reverse_mcp_ep_method_t;


/*
 * Rendered tool lists, per worker: one per (agent, server part, tool
 * separator), kept while the agent's tool-set generation stays the same.
 */
#define NGX_HTTP_REVERSE_MCP_EP_TOOLS_CACHE  8

typedef struct {
    ngx_pool_t               *pool;     /* NULL: the slot is free */
    ngx_str_t                 agent;
    ngx_str_t                 server;
    ngx_str_t                 sep;
    ngx_uint_t                generation;
    ngx_array_t               elts;     /* ngx_str_t, the tool objects */
} ngx_http_reverse_mcp_ep_tools_t;


/* what a reply puts before a "result" value (one byte less for "error") */
#define NGX_HTTP_REVERSE_MCP_EP_REPLY_HEAD                                   \
    "{\"jsonrpc\":\"2.0\",\"id\":,\"result\":"


/* one server's part of a request the aggregate sends to several */
typedef struct {
    ngx_http_reverse_mcp_call_t           call;
    ngx_http_reverse_mcp_ep_ctx_t        *ctx;
    ngx_str_t                             server;
    ngx_str_t                             params;   /* of the next start */
    ngx_str_t                             result;   /* not looked at yet */
    ngx_array_t                           items;    /* FAN_LIST: ngx_str_t */
    ngx_uint_t                            pages;
    unsigned                              active:1;
    unsigned                              answered:1;
    unsigned                              is_error:1;
} ngx_http_reverse_mcp_ep_sub_t;


struct ngx_http_reverse_mcp_ep_ctx_s {
    ngx_http_request_t                   *request;
    ngx_http_reverse_mcp_loc_conf_t      *lcf;
    ngx_shm_zone_t                       *zone;

    ngx_str_t                             agent;
    ngx_str_t                             server;   /* from the URI */
    ngx_str_t                             session;  /* Mcp-Session-Id */
    ngx_str_t                             id;       /* JSON text */
    ngx_uint_t                            log_level; /* 0: none asked for,
                                                        else 1 + level */
    ngx_uint_t                            client_caps; /* RELAY_* the
                                                        caller declared */

    /* 2026-07-28 rounds: the servers' requests for the caller, and a
     * retry's answers and the parked call it names (requestState) */
    ngx_array_t                          *inputs;   /* ngx_str_t */
    ngx_str_t                             input_responses;
    uint64_t                              park;
    uint64_t                              park_conn;
    ngx_pid_t                             park_pid;

    /* tools/call and the other forwarded requests */
    ngx_http_reverse_mcp_call_t           call;
    ngx_str_t                             tool;     /* as the caller named it */
    ngx_str_t                             label;    /* the call, for logs */
    ngx_queue_t                           queue;    /* calls in flight */
    ngx_event_t                           done_ev;
    ngx_str_t                             result;
    u_char                               *result_room; /* result.data when
                                                  the reply fits around it */
    ngx_uint_t                            is_error;

    unsigned                              accept_json:1;
    unsigned                              accept_sse:1;
    unsigned                              sse:1;
    unsigned                              header_sent:1;
    unsigned                              active:1;   /* call started, not
                                                         ended */
    unsigned                              in_queue:1;
    unsigned                              cancelled:1;
    unsigned                              failed:1;
    unsigned                              modern:1;   /* 2026-07-28 */
    unsigned                              subs_lists:3; /* listen: the
                                                           list_changed
                                                           wanted, bit per
                                                           LIST_* */
    unsigned                              input_required:1;

    /* for the access log variables */
    ngx_str_t                             method;
    ngx_str_t                             call_server;
    const char                           *outcome;
    ngx_msec_t                            call_start;
    ngx_msec_t                            call_time;
    unsigned                              call_timed:1;

    /* a GET stream: server-initiated notifications */
    ngx_event_t                           listen_ev;
    ngx_uint_t                            listen_gens[
                                              NGX_HTTP_REVERSE_MCP_LISTS];
    time_t                                listen_write;

    /* a request the aggregate sends to several servers */
    ngx_http_reverse_mcp_ep_method_t     *fan;
    ngx_uint_t                            fan_mode;
    ngx_http_reverse_mcp_ep_sub_t        *subs;
    ngx_uint_t                            nsubs;
    ngx_uint_t                            nactive;
    ngx_uint_t                            next;     /* FAN_FIRST */
    ngx_str_t                             first_error;
};


static ngx_int_t ngx_http_reverse_mcp_ep_server(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx);
static ngx_int_t ngx_http_reverse_mcp_ep_origin_ok(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *origin);
static ngx_int_t ngx_http_reverse_mcp_ep_host_trusted(ngx_http_request_t *r,
    ngx_str_t *host);
static void ngx_http_reverse_mcp_ep_split_host(ngx_str_t *hostport,
    ngx_str_t *host, ngx_str_t *port);
static void ngx_http_reverse_mcp_ep_accept(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx);
static ngx_int_t ngx_http_reverse_mcp_ep_delete(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx);
static void ngx_http_reverse_mcp_ep_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_reverse_mcp_ep_process(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_http_reverse_mcp_ep_version_ok(ngx_str_t *v);
static ngx_int_t ngx_http_reverse_mcp_ep_notification(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *method, yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_ep_initialize(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_ep_set_level(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_ep_tools_list(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params);
static ngx_http_reverse_mcp_ep_tools_t *ngx_http_reverse_mcp_ep_tools(
    ngx_http_request_t *r, ngx_http_reverse_mcp_ep_ctx_t *ctx);
static ngx_uint_t ngx_http_reverse_mcp_ep_str_same(ngx_str_t *a,
    ngx_str_t *b);
static ngx_int_t ngx_http_reverse_mcp_ep_split_array(ngx_str_t *json,
    ngx_array_t *elts);
static ngx_int_t ngx_http_reverse_mcp_ep_cursor(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_uint_t generation,
    ngx_uint_t offset, ngx_str_t *cursor, ngx_uint_t decode,
    ngx_uint_t *out);
static ngx_int_t ngx_http_reverse_mcp_ep_tools_call(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_ep_route(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *name, ngx_str_t *server,
    ngx_str_t *tool);
static ngx_int_t ngx_http_reverse_mcp_ep_forward_params(ngx_pool_t *pool,
    yajl_val params, ngx_str_t *tool, ngx_str_t *out);
static ngx_int_t ngx_http_reverse_mcp_ep_progress(ngx_http_request_t *r,
    yajl_val params, ngx_str_t *progress);
static ngx_int_t ngx_http_reverse_mcp_ep_call(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *server, ngx_str_t *method,
    ngx_str_t *params, ngx_str_t *progress);
static ngx_int_t ngx_http_reverse_mcp_ep_request(
    ngx_http_reverse_mcp_call_t *call, ngx_str_t *json);
static ngx_int_t ngx_http_reverse_mcp_ep_answer(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val id, ngx_str_t *body);
static ngx_int_t ngx_http_reverse_mcp_ep_rounds(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_ep_input_required(
    ngx_http_request_t *r, ngx_http_reverse_mcp_ep_ctx_t *ctx);
static void ngx_http_reverse_mcp_ep_remove_member(yajl_val obj,
    yajl_val value);
static ngx_int_t ngx_http_reverse_mcp_ep_track(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx);
static ngx_int_t ngx_http_reverse_mcp_ep_caps(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *server, ngx_uint_t *flags,
    yajl_val *tree);
static ngx_int_t ngx_http_reverse_mcp_ep_init_caps(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *out);
static ngx_int_t ngx_http_reverse_mcp_ep_gen_cap(yajl_gen g, yajl_val obj,
    ngx_uint_t list_changed);
static ngx_int_t ngx_http_reverse_mcp_ep_forward(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_method_t *m,
    yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_ep_aggregate(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_method_t *m,
    yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_ep_candidates(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_uint_t cap, ngx_array_t *names);
static int ngx_libc_cdecl ngx_http_reverse_mcp_ep_name_cmp(const void *one,
    const void *two);
static ngx_int_t ngx_http_reverse_mcp_ep_split(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *name, ngx_array_t *names,
    ngx_str_t *server, ngx_str_t *local);
static ngx_int_t ngx_http_reverse_mcp_ep_named(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_method_t *m,
    ngx_array_t *names, yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_ep_complete(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_method_t *m,
    ngx_array_t *names, yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_ep_fan_start(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_method_t *m,
    ngx_uint_t mode, ngx_array_t *names, ngx_str_t *params);
static ngx_int_t ngx_http_reverse_mcp_ep_sub_start(
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_sub_t *sub);
static void ngx_http_reverse_mcp_ep_sub_done(
    ngx_http_reverse_mcp_call_t *call, ngx_uint_t is_error, ngx_str_t *json);
static ngx_int_t ngx_http_reverse_mcp_ep_fan_step(
    ngx_http_reverse_mcp_ep_ctx_t *ctx);
static ngx_int_t ngx_http_reverse_mcp_ep_fan_page(
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_sub_t *sub);
static ngx_int_t ngx_http_reverse_mcp_ep_fan_merge(
    ngx_http_reverse_mcp_ep_ctx_t *ctx);
static void ngx_http_reverse_mcp_ep_notify(ngx_http_reverse_mcp_call_t *call,
    ngx_str_t *json);
static void ngx_http_reverse_mcp_ep_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json);
static void ngx_http_reverse_mcp_ep_done_handler(ngx_event_t *ev);
static void ngx_http_reverse_mcp_ep_cleanup(void *data);
static void ngx_http_reverse_mcp_ep_json_free(void *data);
static void ngx_http_reverse_mcp_ep_stop(ngx_http_reverse_mcp_ep_ctx_t *ctx,
    ngx_uint_t cancel);
static ngx_uint_t ngx_http_reverse_mcp_ep_cancel_local(ngx_str_t *session,
    ngx_str_t *request_id);
static void ngx_http_reverse_mcp_ep_poll_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_reverse_mcp_ep_token_ok(ngx_http_request_t *r,
    ngx_array_t *tokens, const char **reason);
static ngx_int_t ngx_http_reverse_mcp_ep_listen(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx);
static ngx_int_t ngx_http_reverse_mcp_ep_stream(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx);
static ngx_int_t ngx_http_reverse_mcp_ep_stream_write(ngx_http_request_t *r,
    ngx_str_t *text);
static ngx_int_t ngx_http_reverse_mcp_ep_instructions(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *instr);
static ngx_int_t ngx_http_reverse_mcp_ep_modern_version(ngx_http_request_t *r,
    yajl_val params, ngx_str_t *version);
static ngx_int_t ngx_http_reverse_mcp_ep_modern(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val id, ngx_str_t *method,
    yajl_val params, ngx_str_t *version);
static ngx_int_t ngx_http_reverse_mcp_ep_unsupported(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *version);
static ngx_int_t ngx_http_reverse_mcp_ep_header_text(ngx_pool_t *pool,
    ngx_str_t *header, ngx_str_t *text);
static ngx_int_t ngx_http_reverse_mcp_ep_name_ok(ngx_pool_t *pool,
    ngx_str_t *header, ngx_str_t *body);
static ngx_int_t ngx_http_reverse_mcp_ep_param_check(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *server, ngx_str_t *tool,
    yajl_val params, ngx_str_t *mismatch);
static ngx_int_t ngx_http_reverse_mcp_ep_param_value(ngx_pool_t *pool,
    yajl_val v, ngx_str_t *text);
static void ngx_http_reverse_mcp_ep_strip_meta(yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_ep_discover(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx);
static ngx_int_t ngx_http_reverse_mcp_ep_subscribe(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params);
static ngx_int_t ngx_http_reverse_mcp_ep_has_key(ngx_str_t *json,
    const char *key);
static ngx_int_t ngx_http_reverse_mcp_ep_modern_result(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *value, ngx_str_t *out);
static void ngx_http_reverse_mcp_ep_listen_handler(ngx_event_t *ev);
static void ngx_http_reverse_mcp_ep_listen_cleanup(void *data);
static ngx_int_t ngx_http_reverse_mcp_ep_reply(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_uint_t is_error,
    ngx_str_t *value);
static ngx_int_t ngx_http_reverse_mcp_ep_error(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_uint_t status, ngx_int_t code,
    const char *fmt, ...);
static ngx_int_t ngx_http_reverse_mcp_ep_sse_open(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx);
static ngx_int_t ngx_http_reverse_mcp_ep_level(ngx_str_t *name);
static ngx_int_t ngx_http_reverse_mcp_ep_str_eq(ngx_str_t *s, const char *c);
static ngx_int_t ngx_http_reverse_mcp_ep_media_eq(ngx_str_t *s,
    const char *c);


static ngx_str_t  ngx_http_reverse_mcp_ep_versions[] = {
    ngx_string("2025-11-25"),
    ngx_string("2025-06-18"),
    ngx_string("2025-03-26"),
    ngx_null_string
};


/* MCP logging levels, least severe first (RFC 5424 order) */
static ngx_str_t  ngx_http_reverse_mcp_ep_levels[] = {
    ngx_string("debug"),
    ngx_string("info"),
    ngx_string("notice"),
    ngx_string("warning"),
    ngx_string("error"),
    ngx_string("critical"),
    ngx_string("alert"),
    ngx_string("emergency"),
    ngx_null_string
};


/*
 * Forwarded methods besides tools/call.  Per server they all go to the
 * server as they are; "fan" says how the aggregate serves them.
 */
static ngx_http_reverse_mcp_ep_method_t  ngx_http_reverse_mcp_ep_methods[] = {
    { ngx_string("resources/list"), NGX_HTTP_REVERSE_MCP_EP_CAP_RESOURCES,
      NGX_HTTP_REVERSE_MCP_EP_FAN_LIST, "resources" },
    { ngx_string("resources/templates/list"),
      NGX_HTTP_REVERSE_MCP_EP_CAP_RESOURCES,
      NGX_HTTP_REVERSE_MCP_EP_FAN_LIST, "resourceTemplates" },
    { ngx_string("resources/read"), NGX_HTTP_REVERSE_MCP_EP_CAP_RESOURCES,
      NGX_HTTP_REVERSE_MCP_EP_FAN_FIRST, NULL },
    { ngx_string("resources/subscribe"),
      NGX_HTTP_REVERSE_MCP_EP_CAP_RESOURCES,
      NGX_HTTP_REVERSE_MCP_EP_FAN_FIRST, NULL },
    { ngx_string("resources/unsubscribe"),
      NGX_HTTP_REVERSE_MCP_EP_CAP_RESOURCES,
      NGX_HTTP_REVERSE_MCP_EP_FAN_FIRST, NULL },
    { ngx_string("prompts/list"), NGX_HTTP_REVERSE_MCP_EP_CAP_PROMPTS,
      NGX_HTTP_REVERSE_MCP_EP_FAN_LIST, "prompts" },
    { ngx_string("prompts/get"), NGX_HTTP_REVERSE_MCP_EP_CAP_PROMPTS,
      NGX_HTTP_REVERSE_MCP_EP_FAN_NAMED, NULL },
    { ngx_string("completion/complete"),
      NGX_HTTP_REVERSE_MCP_EP_CAP_COMPLETIONS,
      NGX_HTTP_REVERSE_MCP_EP_FAN_COMPLETE, NULL },
    { ngx_null_string, 0, 0, NULL }
};


/* the capability members, in the order of the CAP_* bits */
static const char  *ngx_http_reverse_mcp_ep_cap_names[] = {
    "resources", "prompts", "completions"
};


/* this worker's forwarded requests in flight, for cancellation */
static ngx_queue_t        ngx_http_reverse_mcp_ep_calls;
static ngx_uint_t         ngx_http_reverse_mcp_ep_calls_init;


static ngx_http_reverse_mcp_ep_tools_t
    ngx_http_reverse_mcp_ep_tools_cache[NGX_HTTP_REVERSE_MCP_EP_TOOLS_CACHE];
static ngx_uint_t         ngx_http_reverse_mcp_ep_tools_next;
static ngx_event_t        ngx_http_reverse_mcp_ep_poll_ev;
/* the poll timer's owner: nginx's debug log reads ev->data as a connection */
static ngx_connection_t   ngx_http_reverse_mcp_ep_poll_conn;
static ngx_atomic_uint_t  ngx_http_reverse_mcp_ep_cancel_seen;
static ngx_shm_zone_t    *ngx_http_reverse_mcp_ep_zone;


ngx_int_t
ngx_http_reverse_mcp_endpoint_handler(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    ngx_str_t                          allow;
    const char                        *reason;
    ngx_table_elt_t                   *h;
    ngx_http_reverse_mcp_ep_ctx_t     *ctx;
    ngx_http_reverse_mcp_loc_conf_t   *lcf;
    ngx_http_reverse_mcp_main_conf_t  *mcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_reverse_mcp_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_reverse_mcp_ep_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->lcf = lcf;
    ctx->zone = mcf->shm_zone;
    ngx_str_set(&ctx->id, "null");

    ngx_http_set_ctx(r, ctx, ngx_http_reverse_mcp_module);

    if (!(r->method
          & (NGX_HTTP_POST|NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE)))
    {
        goto not_allowed;
    }

    if (lcf->endpoint_tokens
        && ngx_http_reverse_mcp_ep_token_ok(r, lcf->endpoint_tokens, &reason)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "reverse_mcp: endpoint refused the caller: %s", reason);

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&allow, "Bearer realm=\"reverse-mcp\"");

        if (ngx_http_reverse_mcp_http_add_header(r, "WWW-Authenticate", &allow)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_UNAUTHORIZED,
                                             NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                             "Unauthorized: %s", reason);
    }

    if (ngx_http_complex_value(r, lcf->endpoint, &ctx->agent) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_reverse_mcp_find_agent(mcf, &ctx->agent) == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "reverse_mcp: endpoint of unknown agent \"%V\"",
                      &ctx->agent);

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_NOT_FOUND,
                                             NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                             "Unknown agent");
    }

    rc = ngx_http_reverse_mcp_ep_server(r, ctx);

    if (rc != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_NOT_FOUND,
                                             NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                             "Unknown MCP server: this agent "
                                             "has no server at \"%V\"",
                                             &r->uri);
    }

    /* DNS rebinding: a browser's cross-site request carries Origin */

    h = ngx_http_reverse_mcp_http_header_in(r, "Origin", 6);

    if (h && !ngx_http_reverse_mcp_ep_origin_ok(r, ctx, &h->value)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint refused Origin \"%V\"",
                      &h->value);

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_FORBIDDEN,
                                             NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                             "Forbidden: Origin not allowed");
    }

    if (r->method == NGX_HTTP_DELETE) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_reverse_mcp_ep_delete(r, ctx);
    }

    if (r->method == NGX_HTTP_GET) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_reverse_mcp_ep_listen(r, ctx);
    }

    if (r->method != NGX_HTTP_POST) {
        goto not_allowed;
    }

    ngx_http_reverse_mcp_ep_accept(r, ctx);

    if (!ctx->accept_json && !ctx->accept_sse) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_REVERSE_MCP_NOT_ACCEPTABLE,
                                 NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                 "Not Acceptable: Client must accept "
                                 "application/json or text/event-stream");
    }

    if (!ngx_http_reverse_mcp_http_json_content(r)) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                 NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                 "Unsupported Media Type: Content-Type must "
                                 "be application/json");
    }

    rc = ngx_http_read_client_request_body(r,
                                         ngx_http_reverse_mcp_ep_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;

not_allowed:

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&allow, "GET, POST, DELETE");

    if (ngx_http_reverse_mcp_http_add_header(r, "Allow", &allow) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_NOT_ALLOWED,
                                         NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                         "Method Not Allowed");
}


/*
 * The server part of the URI: what follows the location's prefix, one
 * path segment, a server name of the agent.  Empty: every server.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_server(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    ngx_str_t                           rest, *name;
    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_reverse_mcp_agent_conf_t  *acf;
    ngx_http_reverse_mcp_main_conf_t   *mcf;

    ngx_str_null(&ctx->server);

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    name = &clcf->name;

    if (clcf->exact_match
#if (NGX_PCRE)
        || clcf->regex
#endif
        || clcf->named
        || r->uri.len < name->len
        || ngx_strncmp(r->uri.data, name->data, name->len) != 0)
    {
        return NGX_OK;
    }

    rest.data = r->uri.data + name->len;
    rest.len = r->uri.len - name->len;

    if (rest.len == 0) {
        return NGX_OK;
    }

    if (name->len == 0 || name->data[name->len - 1] != '/') {
        /* "location /mcp": /mcpx is not /mcp/x */
        if (rest.data[0] != '/') {
            goto invalid;
        }

        rest.data++;
        rest.len--;
    }

    if (rest.len && rest.data[rest.len - 1] == '/') {
        rest.len--;
    }

    if (rest.len == 0) {
        return NGX_OK;
    }

    if (!ngx_http_reverse_mcp_name_valid(&rest)) {
        goto invalid;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);
    acf = ngx_http_reverse_mcp_find_agent(mcf, &ctx->agent);

    if (acf == NULL || ngx_http_reverse_mcp_find_server(acf, &rest) == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint for server \"%V\", which agent "
                      "\"%V\" does not have", &rest, &ctx->agent);
        return NGX_DECLINED;
    }

    ctx->server = rest;

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "reverse_mcp: endpoint URI \"%V\" names no server of "
                  "agent \"%V\"", &r->uri, &ctx->agent);

    return NGX_DECLINED;
}


/*
 * An Origin is allowed when it is listed in reverse_mcp_allowed_origins
 * ("*": any), or when it is the request's own origin (the connection's
 * scheme, the host and port of the Host header) on a host name this
 * server{} is configured with (server_name, exact or wildcard) or a
 * loopback name.  A page on a rebound DNS name has a matching Origin and
 * Host too, but not a host name nginx was told about.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_origin_ok(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *origin)
{
    u_char      *p;
    ngx_str_t   *allowed, rest, ohost, oport, hhost, hport, dport;
    ngx_uint_t   i, https;

    if (ctx->lcf->allowed_origins) {
        allowed = ctx->lcf->allowed_origins->elts;

        for (i = 0; i < ctx->lcf->allowed_origins->nelts; i++) {
            if (allowed[i].len == 1 && allowed[i].data[0] == '*') {
                return 1;
            }

            if (allowed[i].len == origin->len
                && ngx_strncasecmp(allowed[i].data, origin->data,
                                   origin->len) == 0)
            {
                return 1;
            }
        }
    }

#if (NGX_HTTP_SSL)
    https = (r->connection->ssl != NULL);
#else
    https = 0;
#endif

    /* the same origin: the scheme of this connection too */

    if (!https
        && origin->len > 7
        && ngx_strncasecmp(origin->data, (u_char *) "http://", 7) == 0)
    {
        rest.data = origin->data + 7;
        rest.len = origin->len - 7;
        ngx_str_set(&dport, "80");

    } else if (https
               && origin->len > 8
               && ngx_strncasecmp(origin->data, (u_char *) "https://", 8)
                  == 0)
    {
        rest.data = origin->data + 8;
        rest.len = origin->len - 8;
        ngx_str_set(&dport, "443");

    } else {
        return 0;   /* "null", other schemes */
    }

    p = ngx_strlchr(rest.data, rest.data + rest.len, '/');
    if (p) {
        return 0;
    }

    if (r->headers_in.host == NULL) {
        return 0;
    }

    ngx_http_reverse_mcp_ep_split_host(&rest, &ohost, &oport);
    ngx_http_reverse_mcp_ep_split_host(&r->headers_in.host->value, &hhost,
                                       &hport);

    if (oport.len == 0) {
        oport = dport;
    }

    if (hport.len == 0) {
        hport = dport;
    }

    if (ohost.len == 0
        || ohost.len != hhost.len
        || ngx_strncasecmp(ohost.data, hhost.data, ohost.len) != 0
        || oport.len != hport.len
        || ngx_strncmp(oport.data, hport.data, oport.len) != 0)
    {
        return 0;
    }

    return ngx_http_reverse_mcp_ep_host_trusted(r, &hhost);
}


static void
ngx_http_reverse_mcp_ep_split_host(ngx_str_t *hostport, ngx_str_t *host,
    ngx_str_t *port)
{
    u_char  *p, *end;

    end = hostport->data + hostport->len;

    *host = *hostport;
    ngx_str_null(port);

    if (hostport->len && hostport->data[0] == '[') {
        p = ngx_strlchr(hostport->data, end, ']');
        if (p == NULL) {
            return;
        }

        host->len = p + 1 - hostport->data;
        p++;

    } else {
        p = ngx_strlchr(hostport->data, end, ':');
        if (p == NULL) {
            return;
        }

        host->len = p - hostport->data;
    }

    if (p < end && *p == ':') {
        port->data = p + 1;
        port->len = end - p - 1;
    }
}


/*
 * A host name this server{} answers to by name: its first server_name,
 * or a name (exact or wildcard) of the listening address's virtual names
 * that leads to this very server{}; loopback names too.  (The
 * server_names array itself lives in the configuration's temporary pool.)
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_host_trusted(ngx_http_request_t *r, ngx_str_t *host)
{
    u_char                     *low;
    ngx_uint_t                  i, key;
    ngx_http_connection_t      *hc;
    ngx_http_core_srv_conf_t   *cscf, *found;
    ngx_http_virtual_names_t   *vn;

    static ngx_str_t  loopback[] = {
        ngx_string("localhost"),
        ngx_string("127.0.0.1"),
        ngx_string("[::1]"),
        ngx_null_string
    };

    for (i = 0; loopback[i].len; i++) {
        if (host->len == loopback[i].len
            && ngx_strncasecmp(host->data, loopback[i].data, host->len) == 0)
        {
            return 1;
        }
    }

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    if (cscf->server_name.len == host->len
        && ngx_strncasecmp(cscf->server_name.data, host->data, host->len)
           == 0)
    {
        return 1;
    }

    hc = r->http_connection;

    if (hc == NULL || hc->addr_conf == NULL
        || hc->addr_conf->virtual_names == NULL
        || host->len == 0)
    {
        return 0;
    }

    vn = hc->addr_conf->virtual_names;

    low = ngx_pnalloc(r->pool, host->len);
    if (low == NULL) {
        return 0;
    }

    key = ngx_hash_strlow(low, host->data, host->len);

    found = ngx_hash_find_combined(&vn->names, key, low, host->len);

    return found == cscf;
}


/* media ranges of Accept (all of its lines); none at all: anything */
static void
ngx_http_reverse_mcp_ep_accept(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    u_char           *p, *end, *item, *semi, *last;
    ngx_str_t         media;
    ngx_uint_t        i, found;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    found = 0;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != 6
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Accept", 6) != 0)
        {
            continue;
        }

        found = 1;
        p = h[i].value.data;
        end = p + h[i].value.len;

        while (p < end) {
            item = p;
            p = ngx_strlchr(item, end, ',');
            if (p == NULL) {
                p = end;
            }

            last = p++;
            semi = ngx_strlchr(item, last, ';');

            /* "q=0" means "not acceptable" */
            if (semi && ngx_strlcasestrn(semi, last, (u_char *) "q=0", 2)
                && !ngx_strlcasestrn(semi, last, (u_char *) "q=0.", 3))
            {
                continue;
            }

            if (semi) {
                last = semi;
            }

            while (item < last && (*item == ' ' || *item == '\t')) {
                item++;
            }

            while (last > item && (last[-1] == ' ' || last[-1] == '\t')) {
                last--;
            }

            media.data = item;
            media.len = last - item;

            if (ngx_http_reverse_mcp_ep_media_eq(&media, "*/*")) {
                ctx->accept_json = 1;
                ctx->accept_sse = 1;

            } else if (ngx_http_reverse_mcp_ep_media_eq(&media,
                                                        "application/json")
                       || ngx_http_reverse_mcp_ep_media_eq(&media,
                                                           "application/*"))
            {
                ctx->accept_json = 1;

            } else if (ngx_http_reverse_mcp_ep_media_eq(&media,
                                                        "text/event-stream")
                       || ngx_http_reverse_mcp_ep_media_eq(&media, "text/*"))
            {
                ctx->accept_sse = 1;
            }
        }
    }

    if (!found) {
        ctx->accept_json = 1;
        ctx->accept_sse = 1;
    }
}


/* JSON-RPC methods and the like: case matters */
static ngx_int_t
ngx_http_reverse_mcp_ep_str_eq(ngx_str_t *s, const char *c)
{
    size_t  len;

    len = ngx_strlen(c);

    return s->len == len && ngx_strncmp(s->data, c, len) == 0;
}


/* media types: case does not matter */
static ngx_int_t
ngx_http_reverse_mcp_ep_media_eq(ngx_str_t *s, const char *c)
{
    size_t  len;

    len = ngx_strlen(c);

    return s->len == len && ngx_strncasecmp(s->data, (u_char *) c, len) == 0;
}


static ngx_int_t
ngx_http_reverse_mcp_ep_delete(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    ngx_table_elt_t  *h;

    h = ngx_http_reverse_mcp_http_header_in(r, "Mcp-Session-Id", 14);

    if (h == NULL) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                 "Bad Request: Mcp-Session-Id header is "
                                 "required");
    }

    ctx->session = h->value;

    if (ngx_http_reverse_mcp_session_delete(ctx->zone, &ctx->session,
                                            &ctx->agent)
        != NGX_OK)
    {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_NOT_FOUND,
                                             NGX_HTTP_REVERSE_MCP_NO_SESSION,
                                             "Session not found");
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "reverse_mcp: session %V deleted", &ctx->session);

    /* its calls in flight end too, here and in the other workers */

    if (ngx_http_reverse_mcp_ep_cancel_local(&ctx->session, NULL) == 0) {
        ngx_http_reverse_mcp_session_cancel_post(ctx->zone, &ctx->session,
                                                 NULL);
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->header_only = 1;
    r->headers_out.content_length_n = 0;

    return ngx_http_send_header(r);
}


static void
ngx_http_reverse_mcp_ep_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_str_t                       body;
    ngx_http_reverse_mcp_ep_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_reverse_mcp_module);

    if (ngx_http_reverse_mcp_http_read_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_reverse_mcp_ep_process(r, ctx, &body);

    if (rc == NGX_DONE) {
        /* a call in flight: its done handler finalizes */
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_reverse_mcp_ep_process(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *body)
{
    char                                 err[128];
    yajl_val                             msg, id, params = NULL;
    ngx_int_t                            rc;
    ngx_str_t                            method, version, empty;
    ngx_table_elt_t                     *h;
    ngx_pool_cleanup_t                  *cln;
    ngx_http_reverse_mcp_ep_method_t    *m;
    ngx_http_reverse_mcp_session_info_t  info;

    if (body->len == 0) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                             NGX_HTTP_REVERSE_MCP_PARSE_ERROR,
                                             "Parse error: empty body");
    }

    msg = ngx_http_reverse_mcp_json_parse(body->data, body->len, err,
                                          sizeof(err));
    if (msg == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint request is not JSON: %s", err);

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                             NGX_HTTP_REVERSE_MCP_PARSE_ERROR,
                                             "Parse error: %s", err);
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        yajl_tree_free(msg);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_reverse_mcp_ep_json_free;
    cln->data = msg;

    if (YAJL_IS_ARRAY(msg)) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_INVALID_REQUEST,
                                 "Invalid Request: batches are not "
                                 "supported, send one message per POST");
    }

    if (!YAJL_IS_OBJECT(msg)
        || ngx_http_reverse_mcp_json_get_str(msg, "jsonrpc", &version)
           != NGX_OK
        || !ngx_http_reverse_mcp_ep_str_eq(&version, "2.0"))
    {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_INVALID_REQUEST,
                                 "Invalid Request: not a JSON-RPC 2.0 "
                                 "message");
    }

    id = ngx_http_reverse_mcp_json_get(msg, "id");

    if (id) {
        if (!YAJL_IS_STRING(id) && !YAJL_IS_NUMBER(id)) {
            return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_INVALID_REQUEST,
                                 "Invalid Request: \"id\" must be a string "
                                 "or a number");
        }

        if (ngx_http_reverse_mcp_json_dump(r->pool, id, &ctx->id) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_reverse_mcp_json_get_str(msg, "method", &method)
        != NGX_OK)
    {
        if (ngx_http_reverse_mcp_json_get(msg, "method") == NULL
            && id
            && (ngx_http_reverse_mcp_json_get(msg, "result")
                || ngx_http_reverse_mcp_json_get(msg, "error")))
        {
            /* a response: the gateway sends no requests, nothing waits */
            ngx_str_null(&method);
            goto session;
        }

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_INVALID_REQUEST,
                                 "Invalid Request: no \"method\"");
    }

    ctx->method = method;

    params = ngx_http_reverse_mcp_json_get(msg, "params");

    if (params && !YAJL_IS_OBJECT(params)) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: \"params\" must be an "
                                 "object");
    }

    if (id && ngx_http_reverse_mcp_ep_str_eq(&method, "initialize")) {
        return ngx_http_reverse_mcp_ep_initialize(r, ctx, params);
    }

    /* 2026-07-28: the version in the body's _meta, no session */

    rc = ngx_http_reverse_mcp_ep_modern_version(r, params, &version);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        return ngx_http_reverse_mcp_ep_modern(r, ctx, id, &method, params,
                                              &version);
    }

    h = ngx_http_reverse_mcp_http_header_in(r, "MCP-Protocol-Version", 20);

    if (h && ngx_http_reverse_mcp_ep_str_eq(&h->value,
                                            NGX_HTTP_REVERSE_MCP_EP_MODERN))
    {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_HEADER_MISMATCH,
                                 "Header mismatch: MCP-Protocol-Version is "
                                 NGX_HTTP_REVERSE_MCP_EP_MODERN " but the "
                                 "body has no _meta[\""
                                 NGX_HTTP_REVERSE_MCP_EP_META
                                 "protocolVersion\"]");
    }

session:

    /* every message after initialize: protocol version and session */

    h = ngx_http_reverse_mcp_http_header_in(r, "MCP-Protocol-Version", 20);

    if (h && !ngx_http_reverse_mcp_ep_version_ok(&h->value)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint request with unsupported "
                      "MCP-Protocol-Version \"%V\"", &h->value);

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                 "Bad Request: Unsupported protocol version: "
                                 "%V (supported versions: "
                                 NGX_HTTP_REVERSE_MCP_EP_SUPPORTED ")",
                                 &h->value);
    }

    h = ngx_http_reverse_mcp_http_header_in(r, "Mcp-Session-Id", 14);

    if (h == NULL) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                 "Bad Request: Mcp-Session-Id header is "
                                 "required");
    }

    ctx->session = h->value;

    if (ngx_http_reverse_mcp_session_touch(ctx->zone, &ctx->session,
                                           &ctx->agent, &info)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint request for unknown or expired "
                      "session \"%V\"", &ctx->session);

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_NOT_FOUND,
                                             NGX_HTTP_REVERSE_MCP_NO_SESSION,
                                             "Session not found");
    }

    ctx->log_level = info.log_level;
    ctx->client_caps = info.client_caps;

    if (method.len == 0) {
        /* the caller's answer to a request relayed from a server */
        return ngx_http_reverse_mcp_ep_answer(r, ctx, id, body);
    }

    if (id == NULL) {
        return ngx_http_reverse_mcp_ep_notification(r, ctx, &method, params);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "reverse_mcp: endpoint %V id %V session %V", &method,
                   &ctx->id, &ctx->session);

    if (ngx_http_reverse_mcp_ep_str_eq(&method, "tools/call")) {
        return ngx_http_reverse_mcp_ep_tools_call(r, ctx, params);
    }

    if (ngx_http_reverse_mcp_ep_str_eq(&method, "tools/list")) {
        return ngx_http_reverse_mcp_ep_tools_list(r, ctx, params);
    }

    if (ngx_http_reverse_mcp_ep_str_eq(&method, "ping")) {
        ngx_str_set(&empty, "{}");
        return ngx_http_reverse_mcp_ep_reply(r, ctx, 0, &empty);
    }

    if (ngx_http_reverse_mcp_ep_str_eq(&method, "logging/setLevel")) {
        return ngx_http_reverse_mcp_ep_set_level(r, ctx, params);
    }

    if (ngx_http_reverse_mcp_ep_str_eq(&method, "initialize")) {
        /* unreachable: handled above */
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (m = ngx_http_reverse_mcp_ep_methods; m->method.len; m++) {
        if (m->method.len == method.len
            && ngx_strncmp(m->method.data, method.data, method.len) == 0)
        {
            return ngx_http_reverse_mcp_ep_forward(r, ctx, m, params);
        }
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "reverse_mcp: endpoint method \"%V\" not supported",
                  &method);

    return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                         NGX_HTTP_REVERSE_MCP_METHOD_NOT_FOUND,
                                         "Method not found: %V", &method);
}


static ngx_int_t
ngx_http_reverse_mcp_ep_version_ok(ngx_str_t *v)
{
    ngx_str_t  *s;

    for (s = ngx_http_reverse_mcp_ep_versions; s->len; s++) {
        if (s->len == v->len && ngx_strncmp(s->data, v->data, v->len) == 0) {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_reverse_mcp_ep_notification(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *method, yajl_val params)
{
    yajl_val   rid;
    ngx_str_t  request_id;

    if (ngx_http_reverse_mcp_ep_str_eq(method, "notifications/cancelled")) {

        rid = ngx_http_reverse_mcp_json_get(params, "requestId");

        if (rid && (YAJL_IS_STRING(rid) || YAJL_IS_NUMBER(rid))) {

            if (ngx_http_reverse_mcp_json_dump(r->pool, rid, &request_id)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "reverse_mcp: cancel %V of session %V",
                           &request_id, &ctx->session);

            if (ngx_http_reverse_mcp_ep_cancel_local(&ctx->session,
                                                     &request_id)
                == 0)
            {
                /* another worker may hold it */
                ngx_http_reverse_mcp_session_cancel_post(ctx->zone,
                                                         &ctx->session,
                                                         &request_id);
            }
        }
    }

    /* notifications/initialized, .../roots/list_changed, ...: noted */

    return ngx_http_reverse_mcp_http_send(r, NGX_HTTP_ACCEPTED, NULL, NULL);
}


static ngx_int_t
ngx_http_reverse_mcp_ep_initialize(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params)
{
    u_char                            id[NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN];
    u_char                           *p;
    size_t                            len;
    ngx_int_t                         rc;
    ngx_str_t                         requested, version, sid, result;
    ngx_str_t                        *v, instr, caps;
    const char                       *reason;

    if (ngx_http_reverse_mcp_json_get_str(params, "protocolVersion",
                                          &requested)
        != NGX_OK)
    {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: \"protocolVersion\" is "
                                 "required");
    }

    ngx_str_set(&version, NGX_HTTP_REVERSE_MCP_EP_LATEST);

    for (v = ngx_http_reverse_mcp_ep_versions; v->len; v++) {
        if (v->len == requested.len
            && ngx_strncmp(v->data, requested.data, v->len) == 0)
        {
            version = *v;
            break;
        }
    }

    /* what requests of the servers this client can be relayed */
    ctx->client_caps = ngx_http_reverse_mcp_client_caps(
                           ngx_http_reverse_mcp_json_get(params,
                                                         "capabilities"));

    rc = ngx_http_reverse_mcp_session_create(ctx->zone, &ctx->agent,
                                             &version, ctx->client_caps,
                                             ctx->lcf->session_timeout,
                                             ctx->lcf->max_sessions, id,
                                             &reason);
    if (rc == NGX_BUSY) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "reverse_mcp: no new session for agent \"%V\": %s",
                      &ctx->agent, reason);

        return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_SERVICE_UNAVAILABLE,
                                 NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                 "Too many sessions: %s", reason);
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "reverse_mcp: could not create a session for agent "
                      "\"%V\": %s", &ctx->agent, reason);

        return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_INTERNAL_SERVER_ERROR,
                                 NGX_HTTP_REVERSE_MCP_INTERNAL_ERROR,
                                 "Internal error: no session (%s)", reason);
    }

    sid.data = ngx_pnalloc(r->pool, NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN);
    if (sid.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sid.len = NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN;
    ngx_memcpy(sid.data, id, sid.len);
    ctx->session = sid;

    if (ngx_http_reverse_mcp_http_add_header(r, "Mcp-Session-Id", &sid)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_reverse_mcp_ep_instructions(r, ctx, &instr) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* resources, prompts, completions: as the reverse servers have them */

    if (ngx_http_reverse_mcp_ep_init_caps(r, ctx, &caps) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"protocolVersion\":\"\",\"capabilities\":{\"tools\":"
                 "{\"listChanged\":true},\"logging\":{}},\"serverInfo\":"
                 "{\"name\":\"ngx_http_reverse_mcp_module\",\"version\":"
                 "\"" NGX_HTTP_REVERSE_MCP_VERSION "\"},\"instructions\":}")
          + version.len + caps.len
          + ngx_http_reverse_mcp_json_escaped_len(&instr);

    result.data = ngx_pnalloc(r->pool, len);
    if (result.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(result.data,
                    "{\"protocolVersion\":\"%V\",\"capabilities\":{\"tools\":"
                    "{\"listChanged\":true},\"logging\":{}%V},\"serverInfo\":"
                    "{\"name\":\"ngx_http_reverse_mcp_module\",\"version\":"
                    "\"" NGX_HTTP_REVERSE_MCP_VERSION "\"},\"instructions\":",
                    &version, &caps);
    p = ngx_http_reverse_mcp_json_escape(p, &instr);
    *p++ = '}';

    result.len = p - result.data;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "reverse_mcp: endpoint session %*s... for agent \"%V\" "
                  "(protocol %V, client asked for %V)", (size_t) 8, sid.data,
                  &ctx->agent, &version, &requested);

    return ngx_http_reverse_mcp_ep_reply(r, ctx, 0, &result);
}


static ngx_int_t
ngx_http_reverse_mcp_ep_level(ngx_str_t *name)
{
    ngx_int_t  i;

    for (i = 0; ngx_http_reverse_mcp_ep_levels[i].len; i++) {
        if (ngx_http_reverse_mcp_ep_levels[i].len == name->len
            && ngx_strncmp(ngx_http_reverse_mcp_ep_levels[i].data,
                           name->data, name->len) == 0)
        {
            return i;
        }
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_reverse_mcp_ep_set_level(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params)
{
    ngx_int_t  level;
    ngx_str_t  name, empty;

    if (ngx_http_reverse_mcp_json_get_str(params, "level", &name) != NGX_OK
        || (level = ngx_http_reverse_mcp_ep_level(&name)) == NGX_ERROR)
    {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: \"level\" must be one of "
                                 "debug, info, notice, warning, error, "
                                 "critical, alert, emergency");
    }

    if (ngx_http_reverse_mcp_session_set_level(ctx->zone, &ctx->session,
                                               &ctx->agent, level)
        != NGX_OK)
    {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_NOT_FOUND,
                                             NGX_HTTP_REVERSE_MCP_NO_SESSION,
                                             "Session not found");
    }

    ngx_str_set(&empty, "{}");

    return ngx_http_reverse_mcp_ep_reply(r, ctx, 0, &empty);
}


/*
 * tools/list: the registry's array, a page of reverse_mcp_page_size tools
 * at a time.  The cursor is base64url("v1:<generation>:<offset>:<crc>"),
 * crc binding it to this endpoint's server part; a cursor of another
 * generation (the tool set changed meanwhile) is refused with -32602.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_tools_list(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params)
{
    u_char                           *p;
    size_t                            len;
    ngx_str_t                         cursor, next, result, *elt;
    ngx_uint_t                        generation, offset, end, i;
    ngx_array_t                       elts;
    ngx_http_reverse_mcp_ep_tools_t  *tl;

    ngx_str_null(&cursor);

    if (ngx_http_reverse_mcp_json_get(params, "cursor")
        && ngx_http_reverse_mcp_json_get_str(params, "cursor", &cursor)
           != NGX_OK)
    {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: \"cursor\" must be a "
                                 "string");
    }

    tl = ngx_http_reverse_mcp_ep_tools(r, ctx);

    if (tl == NULL) {
        return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_INTERNAL_SERVER_ERROR,
                                 NGX_HTTP_REVERSE_MCP_INTERNAL_ERROR,
                                 "Internal error");
    }

    elts = tl->elts;
    generation = tl->generation;

    offset = 0;

    if (cursor.len) {
        if (ngx_http_reverse_mcp_ep_cursor(r, ctx, generation, 0, &cursor, 1,
                                           &offset)
            != NGX_OK
            || offset >= elts.nelts)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "reverse_mcp: endpoint tools/list with an invalid "
                          "or stale cursor \"%V\"", &cursor);

            return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: invalid cursor (the tool "
                                 "list may have changed: list again from "
                                 "the start)");
        }
    }

    end = offset + ctx->lcf->page_size;

    if (end > elts.nelts) {
        end = elts.nelts;
    }

    ngx_str_null(&next);

    if (end < elts.nelts) {
        if (ngx_http_reverse_mcp_ep_cursor(r, ctx, generation, end, &next, 0,
                                           NULL)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    elt = elts.elts;
    len = sizeof("{\"tools\":[],\"nextCursor\":\"\"}") + next.len;

    for (i = offset; i < end; i++) {
        len += elt[i].len + 1;
    }

    result.data = ngx_pnalloc(r->pool, len);
    if (result.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(result.data, "{\"tools\":[", 10);

    for (i = offset; i < end; i++) {
        if (i != offset) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, elt[i].data, elt[i].len);
    }

    *p++ = ']';

    if (next.len) {
        p = ngx_sprintf(p, ",\"nextCursor\":\"%V\"", &next);
    }

    *p++ = '}';

    result.len = p - result.data;

    return ngx_http_reverse_mcp_ep_reply(r, ctx, 0, &result);
}


/*
 * The agent's (or the URI's server's) tools, from this worker's cache while
 * the tool-set generation has not moved, else rendered from the registry
 * and kept.  NULL on errors (logged).
 */
static ngx_http_reverse_mcp_ep_tools_t *
ngx_http_reverse_mcp_ep_tools(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    ngx_int_t                         rc;
    ngx_str_t                         json, *sep;
    ngx_uint_t                        i, generation;
    ngx_pool_t                       *pool;
    ngx_http_reverse_mcp_ep_tools_t  *tl;

    sep = &ctx->lcf->tool_separator;

    generation = ngx_http_reverse_mcp_registry_generation(ctx->zone,
                                                          &ctx->agent);

    for (i = 0; i < NGX_HTTP_REVERSE_MCP_EP_TOOLS_CACHE; i++) {
        tl = &ngx_http_reverse_mcp_ep_tools_cache[i];

        if (tl->pool && tl->generation == generation
            && ngx_http_reverse_mcp_ep_str_same(&tl->agent, &ctx->agent)
            && ngx_http_reverse_mcp_ep_str_same(&tl->server, &ctx->server)
            && ngx_http_reverse_mcp_ep_str_same(&tl->sep, sep))
        {
            return tl;
        }
    }

    pool = ngx_create_pool(16384, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    rc = ngx_http_reverse_mcp_registry_tools(ctx->zone, pool, &ctx->agent,
                                             &ctx->server, sep, &json,
                                             &generation, r->connection->log);
    if (rc == NGX_DECLINED) {
        /* the server is not connected now: no tools */
        ngx_str_set(&json, "[]");

    } else if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "reverse_mcp: could not render the tools of agent "
                      "\"%V\"", &ctx->agent);
        goto failed;
    }

    tl = &ngx_http_reverse_mcp_ep_tools_cache[
             ngx_http_reverse_mcp_ep_tools_next];

    if (tl->pool) {
        ngx_destroy_pool(tl->pool);
        tl->pool = NULL;
    }

    if (ngx_array_init(&tl->elts, pool, 64, sizeof(ngx_str_t)) != NGX_OK) {
        goto failed;
    }

    if (ngx_http_reverse_mcp_ep_split_array(&json, &tl->elts) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "reverse_mcp: the registry rendered an invalid tool "
                      "array for agent \"%V\"", &ctx->agent);
        goto failed;
    }

    tl->agent.data = ngx_pstrdup(pool, &ctx->agent);
    tl->server.data = ngx_pstrdup(pool, &ctx->server);
    tl->sep.data = ngx_pstrdup(pool, sep);

    if ((ctx->agent.len && tl->agent.data == NULL)
        || (ctx->server.len && tl->server.data == NULL)
        || (sep->len && tl->sep.data == NULL))
    {
        goto failed;
    }

    tl->agent.len = ctx->agent.len;
    tl->server.len = ctx->server.len;
    tl->sep.len = sep->len;

    /* a server that is not connected is not kept: its generation may not
     * be the agent's */
    tl->generation = (rc == NGX_DECLINED) ? (ngx_uint_t) -1 : generation;
    tl->pool = pool;

    ngx_http_reverse_mcp_ep_tools_next = (ngx_http_reverse_mcp_ep_tools_next
                                          + 1)
                                         % NGX_HTTP_REVERSE_MCP_EP_TOOLS_CACHE;

    return tl;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


static ngx_uint_t
ngx_http_reverse_mcp_ep_str_same(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || ngx_memcmp(a->data, b->data, a->len) == 0);
}


/* the top-level elements of a JSON array known to be valid */
static ngx_int_t
ngx_http_reverse_mcp_ep_split_array(ngx_str_t *json, ngx_array_t *elts)
{
    u_char      *p, *end, *start, *last;
    ngx_str_t   *e;
    ngx_uint_t   depth, in_str, esc;

    p = json->data;
    end = p + json->len;

    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    {
        p++;
    }

    if (p == end || *p != '[') {
        return NGX_ERROR;
    }

    p++;
    start = NULL;
    depth = 0;
    in_str = 0;
    esc = 0;

    for ( /* void */ ; p < end; p++) {

        if (in_str) {
            if (esc) {
                esc = 0;

            } else if (*p == '\\') {
                esc = 1;

            } else if (*p == '"') {
                in_str = 0;
            }

            continue;
        }

        switch (*p) {

        case ' ': case '\n': case '\r': case '\t':
            continue;

        case '"':
            in_str = 1;
            break;

        case '{': case '[':
            depth++;
            break;

        case '}': case ']':
            if (depth) {
                depth--;
                break;
            }

            if (*p == '}') {
                return NGX_ERROR;
            }

            /* the end of the array */

            /* fall through */

        case ',':
            if (depth) {
                break;
            }

            if (start) {
                last = p;

                while (last > start
                       && (last[-1] == ' ' || last[-1] == '\n'
                           || last[-1] == '\r' || last[-1] == '\t'))
                {
                    last--;
                }

                e = ngx_array_push(elts);
                if (e == NULL) {
                    return NGX_ERROR;
                }

                e->data = start;
                e->len = last - start;
                start = NULL;

            } else if (*p == ',') {
                return NGX_ERROR;
            }

            if (*p == ']') {
                return NGX_OK;
            }

            continue;
        }

        if (start == NULL) {
            start = p;
        }
    }

    return NGX_ERROR;
}


/* encode (decode == 0: offset -> *cursor) or decode (*cursor -> *out) */
static ngx_int_t
ngx_http_reverse_mcp_ep_cursor(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_uint_t generation,
    ngx_uint_t offset, ngx_str_t *cursor, ngx_uint_t decode, ngx_uint_t *out)
{
    u_char     buf[NGX_INT_T_LEN * 3 + 8], *p, *last, *q;
    uint32_t   crc;
    ngx_int_t  n;
    ngx_str_t  text;

    crc = ngx_crc32_short(ctx->server.data, ctx->server.len);

    if (!decode) {
        p = ngx_sprintf(buf, "v1:%ui:%ui:%uD", generation, offset, crc);

        text.data = buf;
        text.len = p - buf;

        cursor->data = ngx_pnalloc(r->pool,
                                   ngx_base64_encoded_length(text.len));
        if (cursor->data == NULL) {
            return NGX_ERROR;
        }

        ngx_encode_base64url(cursor, &text);

        return NGX_OK;
    }

    if (ngx_base64_decoded_length(cursor->len) > sizeof(buf)) {
        return NGX_DECLINED;
    }

    text.data = buf;

    if (ngx_decode_base64url(&text, cursor) != NGX_OK) {
        return NGX_DECLINED;
    }

    p = text.data;
    last = p + text.len;

    if (text.len < sizeof("v1:0:0:0") - 1
        || ngx_strncmp(p, "v1:", 3) != 0)
    {
        return NGX_DECLINED;
    }

    p += 3;

    /* generation */
    q = ngx_strlchr(p, last, ':');
    if (q == NULL) {
        return NGX_DECLINED;
    }

    n = ngx_atoi(p, q - p);
    if (n == NGX_ERROR || (ngx_uint_t) n != generation) {
        return NGX_DECLINED;
    }

    /* offset */
    p = q + 1;
    q = ngx_strlchr(p, last, ':');
    if (q == NULL) {
        return NGX_DECLINED;
    }

    n = ngx_atoi(p, q - p);
    if (n == NGX_ERROR) {
        return NGX_DECLINED;
    }

    *out = n;

    /* the endpoint it was issued by */
    p = q + 1;
    n = ngx_atoi(p, last - p);
    if (n == NGX_ERROR || (uint32_t) n != crc) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_reverse_mcp_ep_tools_call(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params)
{
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t   name, server, tool, fwd, progress, method, mismatch;

    if (ngx_http_reverse_mcp_json_get_str(params, "name", &name) != NGX_OK) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: \"name\" is required");
    }

    ctx->tool = name;

    p = ngx_pnalloc(r->pool, sizeof("tool \"\"") - 1 + name.len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->label.data = p;
    ctx->label.len = ngx_sprintf(p, "tool \"%V\"", &name) - p;

    ngx_str_null(&server);
    ngx_str_null(&tool);

    rc = ngx_http_reverse_mcp_ep_route(r, ctx, &name, &server, &tool);

    ctx->call_server = server;

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint call of tool \"%V\" of server "
                      "\"%V\", which is not connected", &name, &server);

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_ERR_UNAVAILABLE,
                                 "Server not connected: %V (tool %V)",
                                 &server, &name);
    }

    if (rc == NGX_BUSY) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint call of tool \"%V\", a name "
                      "that two tools of agent \"%V\" have", &name,
                      &ctx->agent);

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Ambiguous tool name: %V is the exposed "
                                 "name of more than one tool, so none is "
                                 "served (see the error log)", &name);
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint call of unknown tool \"%V\"",
                      &name);

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Unknown tool: %V", &name);
    }

    if (ctx->modern) {
        rc = ngx_http_reverse_mcp_ep_param_check(r, ctx, &server, &tool,
                                                 params, &mismatch);
        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "reverse_mcp: endpoint call of tool \"%V\" "
                          "refused: %V", &name, &mismatch);

            return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_HEADER_MISMATCH,
                                 "%V", &mismatch);
        }
    }

    if (ngx_http_reverse_mcp_ep_forward_params(r->pool, params, &tool, &fwd)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_reverse_mcp_ep_progress(r, params, &progress) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&method, "tools/call");

    return ngx_http_reverse_mcp_ep_call(r, ctx, &server, &method, &fwd,
                                        &progress);
}


/* params._meta.progressToken as JSON text, or empty */
static ngx_int_t
ngx_http_reverse_mcp_ep_progress(ngx_http_request_t *r, yajl_val params,
    ngx_str_t *progress)
{
    yajl_val  meta, token;

    ngx_str_null(progress);

    meta = ngx_http_reverse_mcp_json_get(params, "_meta");
    token = ngx_http_reverse_mcp_json_get(meta, "progressToken");

    if (token && (YAJL_IS_STRING(token) || YAJL_IS_NUMBER(token))) {
        return ngx_http_reverse_mcp_json_dump(r->pool, token, progress);
    }

    return NGX_OK;
}


/*
 * Forward one request to one server; its result or error is the reply.
 * The label (for the logs) is set.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_call(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *server, ngx_str_t *method,
    ngx_str_t *params, ngx_str_t *progress)
{
    ngx_pool_cleanup_t           *cln;
    ngx_http_reverse_mcp_call_t  *call;

    /*
     * A stream, when the client takes one, for a call with a progress
     * token, or in a session that asked for log messages: they can only
     * reach the client on the stream of the request they belong to (no
     * GET stream yet).  Otherwise a plain JSON reply.
     */
    ctx->sse = ((progress->len || ctx->log_level) && ctx->accept_sse)
               || !ctx->accept_json;

    call = &ctx->call;

    call->agent = ctx->agent;
    call->server = *server;
    call->method = *method;
    call->params = *params;
    call->progress_token = *progress;
    call->timeout = 0;
    call->notify = ngx_http_reverse_mcp_ep_notify;
    call->done = ngx_http_reverse_mcp_ep_done;
    call->data = ctx;
    call->log = r->connection->log;
    call->force_mailbox = ctx->lcf->force_mailbox;

    /*
     * the servers' requests during the call reach the caller on the
     * stream of this POST (it becomes one when the reply was to be JSON)
     */
    call->session = ctx->session;
    call->request = ngx_http_reverse_mcp_ep_request;
    call->relay = ctx->client_caps;

    if (ctx->modern) {
        /* answered with input_required, the retry brings the answers */
        call->relay |= (ngx_http_reverse_mcp_ep_str_eq(method, "tools/call")
                        || ngx_http_reverse_mcp_ep_str_eq(method,
                                                          "prompts/get")
                        || ngx_http_reverse_mcp_ep_str_eq(method,
                                                          "resources/read"))
                       ? NGX_HTTP_REVERSE_MCP_RELAY_MODERN
                       : NGX_HTTP_REVERSE_MCP_RELAY_NO_INPUT;

        if (ctx->park) {
            /* a retry: it takes over the call parked on its owner */
            call->park = ctx->park;
            call->owner_pid = ctx->park_pid;
            call->conn_id = ctx->park_conn;
            call->params = ctx->input_responses;
        }

    } else if (ctx->accept_sse) {
        call->relay |= NGX_HTTP_REVERSE_MCP_RELAY_STREAM;

    } else {
        call->relay |= NGX_HTTP_REVERSE_MCP_RELAY_JSON_ONLY;
    }

    ctx->done_ev.handler = ngx_http_reverse_mcp_ep_done_handler;
    ctx->done_ev.data = ctx;
    ctx->done_ev.log = r->connection->log;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_reverse_mcp_ep_cleanup;
    cln->data = ctx;

    if (ngx_http_reverse_mcp_call_start(call) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "reverse_mcp: could not start the call of %V of "
                      "server \"%V\"", &ctx->label, server);

        return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_INTERNAL_SERVER_ERROR,
                                 NGX_HTTP_REVERSE_MCP_INTERNAL_ERROR,
                                 "Internal error: the call could not be "
                                 "started");
    }

    ctx->active = 1;
    ctx->call_start = ngx_current_msec;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "reverse_mcp: endpoint call %V -> %V %V (sse: %ui)",
                   &ctx->label, server, method, (ngx_uint_t) ctx->sse);

    return ngx_http_reverse_mcp_ep_track(r, ctx);
}


/*
 * A request whose call(s) started: cancellable by notifications/cancelled
 * from any worker, by DELETE and by a client that goes away; its stream
 * opened when it has one.  NGX_DONE: done_ev finalizes.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_track(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (!ngx_http_reverse_mcp_ep_calls_init) {
        ngx_queue_init(&ngx_http_reverse_mcp_ep_calls);
        ngx_http_reverse_mcp_ep_calls_init = 1;
    }

    if (ngx_queue_empty(&ngx_http_reverse_mcp_ep_calls)) {
        ngx_http_reverse_mcp_ep_cancel_seen =
                       ngx_http_reverse_mcp_session_cancel_seq(ctx->zone);
    }

    ngx_queue_insert_tail(&ngx_http_reverse_mcp_ep_calls, &ctx->queue);
    ctx->in_queue = 1;

    ngx_http_reverse_mcp_ep_zone = ctx->zone;

    if (!ngx_http_reverse_mcp_ep_poll_ev.timer_set) {
        ngx_http_reverse_mcp_ep_poll_conn.fd = (ngx_socket_t) -1;
        ngx_http_reverse_mcp_ep_poll_ev.data =
                                        &ngx_http_reverse_mcp_ep_poll_conn;
        ngx_http_reverse_mcp_ep_poll_ev.handler =
                                        ngx_http_reverse_mcp_ep_poll_handler;
        /* ngx_add_timer logs ev->data as a connection in debug builds */
        ngx_http_reverse_mcp_ep_poll_ev.data = (void *) ngx_cycle;
        ngx_http_reverse_mcp_ep_poll_ev.log = ngx_cycle->log;
        ngx_http_reverse_mcp_ep_poll_ev.cancelable = 1;
        ngx_add_timer(&ngx_http_reverse_mcp_ep_poll_ev,
                      NGX_HTTP_REVERSE_MCP_EP_POLL);
    }

    /* a client that goes away cancels the call (pool cleanup) */
    r->read_event_handler = ngx_http_test_reading;

    if (ctx->sse) {
        rc = ngx_http_reverse_mcp_ep_sse_open(r, ctx);

        if (rc == NGX_ERROR || rc > NGX_OK) {
            ngx_http_reverse_mcp_ep_stop(ctx, 1);
            return rc == NGX_ERROR ? NGX_ERROR : rc;
        }
    }

    return NGX_DONE;
}


/*
 * The server and tool a caller's tool name stands for.  Per-server
 * endpoint: the name is the tool's.  Aggregate: the reverse of the
 * exposed name (ngx_http_reverse_mcp_names.h): a natural name by its
 * first split, a shortened one by a lookup over the agent's tools.
 * NGX_OK; NGX_DECLINED: *server is a server of the agent that is not
 * connected; NGX_BUSY: two tools have this exposed name (neither is
 * listed); NGX_ABORT: unknown; NGX_ERROR.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_route(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *name, ngx_str_t *server,
    ngx_str_t *tool)
{
    u_char                              buf[NGX_HTTP_REVERSE_MCP_NAMES_MAX];
    int                                 shortened;
    long                                found;
    size_t                              len, n;
    uint64_t                            conn_id;
    ngx_pid_t                           pid;
    ngx_str_t                          *sep, s, t;
    ngx_array_t                         pairs;
    ngx_http_reverse_mcp_agent_conf_t  *acf;
    ngx_http_reverse_mcp_main_conf_t   *mcf;
    ngx_http_reverse_mcp_names_entry_t *e, **order;

    if (ctx->server.len) {
        *server = ctx->server;
        *tool = *name;

        return ngx_http_reverse_mcp_registry_resolve(ctx->zone, &ctx->agent,
                                                     server, tool, &pid,
                                                     &conn_id);
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);
    acf = ngx_http_reverse_mcp_find_agent(mcf, &ctx->agent);

    if (acf == NULL) {
        return NGX_ABORT;
    }

    sep = &ctx->lcf->tool_separator;
    ngx_str_null(&s);

    if (ngx_http_reverse_mcp_names_split(name->data, name->len, sep->data,
                                         sep->len, &n))
    {
        s.data = name->data;
        s.len = n;
        t.data = name->data + n + sep->len;
        t.len = name->len - n - sep->len;

        if (ngx_http_reverse_mcp_find_server(acf, &s) == NULL) {
            ngx_str_null(&s);
        }
    }

    if (s.len
        && !ngx_http_reverse_mcp_names_shortened(name->data, name->len))
    {
        len = ngx_http_reverse_mcp_names_expose(s.data, s.len, sep->data,
                                                sep->len, t.data, t.len,
                                                buf, &shortened);

        if (len == name->len && ngx_memcmp(buf, name->data, len) == 0) {
            /* a natural name */
            *server = s;
            *tool = t;

            return ngx_http_reverse_mcp_registry_resolve(ctx->zone,
                                                         &ctx->agent, &s, &t,
                                                         &pid, &conn_id);
        }
    }

    if (ngx_http_reverse_mcp_names_shortened(name->data, name->len)) {

        if (ngx_array_init(&pairs, r->pool, 16,
                           sizeof(ngx_http_reverse_mcp_names_entry_t))
            != NGX_OK
            || ngx_http_reverse_mcp_registry_pairs(ctx->zone, r->pool,
                                                   &ctx->agent, &pairs)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        order = ngx_palloc(r->pool, (pairs.nelts + 1) * sizeof(void *));
        if (order == NULL) {
            return NGX_ERROR;
        }

        (void) ngx_http_reverse_mcp_names_mark(pairs.elts, pairs.nelts,
                                               sep->data, sep->len, order);

        found = ngx_http_reverse_mcp_names_find(pairs.elts, pairs.nelts,
                                                name->data, name->len);

        if (found == NGX_HTTP_REVERSE_MCP_NAMES_AMBIGUOUS) {
            return NGX_BUSY;
        }

        if (found >= 0) {
            e = (ngx_http_reverse_mcp_names_entry_t *) pairs.elts + found;

            server->data = (u_char *) e->server;
            server->len = e->server_len;
            tool->data = (u_char *) e->tool;
            tool->len = e->tool_len;

            return ngx_http_reverse_mcp_registry_resolve(ctx->zone,
                                                         &ctx->agent, server,
                                                         tool, &pid,
                                                         &conn_id);
        }
    }

    /* unknown; say so if it looks like a tool of a server that is down */

    if (s.len
        && ngx_http_reverse_mcp_registry_resolve(ctx->zone, &ctx->agent, &s,
                                                 NULL, &pid, &conn_id)
           == NGX_DECLINED)
    {
        *server = s;
        return NGX_DECLINED;
    }

    return NGX_ABORT;
}


/* params with "name" replaced by the server's own tool name */
static ngx_int_t
ngx_http_reverse_mcp_ep_forward_params(ngx_pool_t *pool, yajl_val params,
    ngx_str_t *tool, ngx_str_t *out)
{
    size_t                i, n, len;
    yajl_gen              g;
    const char           *k;
    const unsigned char  *buf;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    if (yajl_gen_map_open(g) != yajl_gen_status_ok) {
        goto failed;
    }

    n = params->u.object.len;

    for (i = 0; i < n; i++) {
        k = params->u.object.keys[i];

        if (yajl_gen_string(g, (const unsigned char *) k, ngx_strlen(k))
            != yajl_gen_status_ok)
        {
            goto failed;
        }

        if (ngx_strcmp(k, "name") == 0) {
            if (yajl_gen_string(g, tool->data, tool->len)
                != yajl_gen_status_ok)
            {
                goto failed;
            }

            continue;
        }

        if (ngx_http_reverse_mcp_json_gen(g, params->u.object.values[i])
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (yajl_gen_map_close(g) != yajl_gen_status_ok
        || yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
    {
        goto failed;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        goto failed;
    }

    ngx_memcpy(out->data, buf, len);
    out->len = len;

    yajl_gen_free(g);

    return NGX_OK;

failed:

    yajl_gen_free(g);

    return NGX_ERROR;
}


/*
 * What a server declared (CAP_* bits of the resources, prompts and
 * completions objects of its capabilities); tree, when asked for: the
 * parsed capabilities (freed with the request), or NULL.  NGX_DECLINED:
 * the server is not connected.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_caps(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *server, ngx_uint_t *flags,
    yajl_val *tree)
{
    char                 err[64];
    yajl_val             caps;
    ngx_int_t            rc;
    ngx_str_t            json;
    ngx_uint_t           i;
    ngx_pool_cleanup_t  *cln;

    *flags = 0;

    if (tree) {
        *tree = NULL;
    }

    rc = ngx_http_reverse_mcp_registry_capabilities(ctx->zone, r->pool,
                                                    &ctx->agent, server,
                                                    &json);
    if (rc != NGX_OK || json.len == 0) {
        return rc;
    }

    caps = ngx_http_reverse_mcp_json_parse(json.data, json.len, err,
                                           sizeof(err));
    if (caps == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "reverse_mcp: the registered capabilities of server "
                      "\"%V\" are not JSON: %s", server, err);
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        yajl_tree_free(caps);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_reverse_mcp_ep_json_free;
    cln->data = caps;

    for (i = 0; i < 3; i++) {
        if (YAJL_IS_OBJECT(ngx_http_reverse_mcp_json_get(caps,
                                     ngx_http_reverse_mcp_ep_cap_names[i])))
        {
            *flags |= (ngx_uint_t) 1 << i;
        }
    }

    if (tree) {
        *tree = caps;
    }

    return NGX_OK;
}


/*
 * The capabilities initialize declares besides tools and logging, as
 * members text (",\"prompts\":{}...", or empty).  Per server: its own
 * resources, prompts and completions objects as it registered them, less
 * "listChanged" and "subscribe" (the gateway does not relay the
 * notifications they announce).  Aggregate: an empty object for each that
 * a connected server declares.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_init_caps(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *out)
{
    size_t                               len;
    yajl_gen                             g;
    yajl_val                             tree;
    ngx_int_t                            rc;
    ngx_uint_t                           i, flags, all;
    const char                          *name;
    const unsigned char                 *buf;
    ngx_http_reverse_mcp_agent_conf_t   *acf;
    ngx_http_reverse_mcp_server_conf_t  *scf;
    ngx_http_reverse_mcp_main_conf_t    *mcf;

    ngx_str_null(out);

    tree = NULL;
    all = 0;

    if (ctx->server.len) {
        rc = ngx_http_reverse_mcp_ep_caps(r, ctx, &ctx->server, &all, &tree);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

    } else {
        mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);
        acf = ngx_http_reverse_mcp_find_agent(mcf, &ctx->agent);

        if (acf == NULL) {
            return NGX_OK;
        }

        scf = acf->servers.elts;

        for (i = 0; i < acf->servers.nelts; i++) {
            rc = ngx_http_reverse_mcp_ep_caps(r, ctx, &scf[i].name, &flags,
                                              NULL);
            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (rc == NGX_OK) {
                all |= flags;
            }
        }
    }

    if (all == 0) {
        return NGX_OK;
    }

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    if (yajl_gen_map_open(g) != yajl_gen_status_ok) {
        goto failed;
    }

    for (i = 0; i < 3; i++) {
        if (!(all & ((ngx_uint_t) 1 << i))) {
            continue;
        }

        name = ngx_http_reverse_mcp_ep_cap_names[i];

        if (yajl_gen_string(g, (const unsigned char *) name,
                            ngx_strlen(name))
            != yajl_gen_status_ok
            || ngx_http_reverse_mcp_ep_gen_cap(g,
                                    ngx_http_reverse_mcp_json_get(tree, name),
                                    ctx->modern && i < 2)
               != NGX_OK)
        {
            goto failed;
        }
    }

    if (yajl_gen_map_close(g) != yajl_gen_status_ok
        || yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok
        || len < 2)
    {
        goto failed;
    }

    /* "{...}" becomes ",..." */

    out->data = ngx_pnalloc(r->pool, len - 1);
    if (out->data == NULL) {
        goto failed;
    }

    out->data[0] = ',';
    ngx_memcpy(out->data + 1, buf + 1, len - 2);
    out->len = len - 1;

    yajl_gen_free(g);

    return NGX_OK;

failed:

    yajl_gen_free(g);

    return NGX_ERROR;
}


/*
 * A capability object but its notification flags; obj NULL: {}.
 * list_changed: "listChanged":true (2026-07-28: subscriptions/listen
 * carries prompts and resources list_changed).
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_gen_cap(yajl_gen g, yajl_val obj,
    ngx_uint_t list_changed)
{
    size_t       i;
    const char  *k;

    if (yajl_gen_map_open(g) != yajl_gen_status_ok) {
        return NGX_ERROR;
    }

    for (i = 0; YAJL_IS_OBJECT(obj) && i < obj->u.object.len; i++) {
        k = obj->u.object.keys[i];

        if (ngx_strcmp(k, "listChanged") == 0
            || ngx_strcmp(k, "subscribe") == 0)
        {
            continue;
        }

        if (yajl_gen_string(g, (const unsigned char *) k, ngx_strlen(k))
            != yajl_gen_status_ok
            || ngx_http_reverse_mcp_json_gen(g, obj->u.object.values[i])
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (list_changed
        && (yajl_gen_string(g, (const unsigned char *) "listChanged", 11)
            != yajl_gen_status_ok
            || yajl_gen_bool(g, 1) != yajl_gen_status_ok))
    {
        return NGX_ERROR;
    }

    if (yajl_gen_map_close(g) != yajl_gen_status_ok) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * resources/..., prompts/..., completion/complete.  Per server: forwarded
 * as they are when the server declares what they need; the aggregate:
 * ngx_http_reverse_mcp_ep_aggregate().
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_forward(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_method_t *m,
    yajl_val params)
{
    ngx_int_t   rc;
    ngx_str_t   fwd, progress;
    ngx_uint_t  flags;

    ctx->label = m->method;

    if (ctx->server.len == 0) {
        return ngx_http_reverse_mcp_ep_aggregate(r, ctx, m, params);
    }

    ctx->call_server = ctx->server;

    rc = ngx_http_reverse_mcp_ep_caps(r, ctx, &ctx->server, &flags, NULL);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint %V for server \"%V\", which is "
                      "not connected", &m->method, &ctx->server);

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_ERR_UNAVAILABLE,
                                 "Server not connected: %V", &ctx->server);
    }

    if (!(flags & m->cap)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint %V for server \"%V\", which "
                      "does not declare it", &m->method, &ctx->server);

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_METHOD_NOT_FOUND,
                                 "Method not found: %V (server %V does not "
                                 "declare that capability)", &m->method,
                                 &ctx->server);
    }

    ngx_str_null(&fwd);

    if (params
        && ngx_http_reverse_mcp_json_dump(r->pool, params, &fwd) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_reverse_mcp_ep_progress(r, params, &progress) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_reverse_mcp_ep_call(r, ctx, &ctx->server, &m->method,
                                        &fwd, &progress);
}


/*
 * The aggregate's resources, prompts and completion, over the connected
 * servers that declare what the method needs (-32601 when none does).
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_aggregate(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_method_t *m,
    yajl_val params)
{
    ngx_str_t    fwd;
    ngx_array_t  names;

    if (ngx_http_reverse_mcp_ep_candidates(r, ctx, m->cap, &names)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (names.nelts == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint %V: no connected server of "
                      "agent \"%V\" declares it", &m->method, &ctx->agent);

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_METHOD_NOT_FOUND,
                                 "Method not found: %V (no connected server "
                                 "declares that capability)", &m->method);
    }

    switch (m->fan) {

    case NGX_HTTP_REVERSE_MCP_EP_FAN_LIST:

        if (ngx_http_reverse_mcp_json_get(params, "cursor")) {
            return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: invalid cursor (the "
                                 "aggregate answers with every item at once)");
        }

        return ngx_http_reverse_mcp_ep_fan_start(r, ctx, m,
                                          NGX_HTTP_REVERSE_MCP_EP_FAN_LIST,
                                          &names, NULL);

    case NGX_HTTP_REVERSE_MCP_EP_FAN_FIRST:

        ngx_str_null(&fwd);

        if (params
            && ngx_http_reverse_mcp_json_dump(r->pool, params, &fwd)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_reverse_mcp_ep_fan_start(r, ctx, m,
                                              NGX_HTTP_REVERSE_MCP_EP_FAN_FIRST,
                                              &names, &fwd);

    case NGX_HTTP_REVERSE_MCP_EP_FAN_NAMED:
        return ngx_http_reverse_mcp_ep_named(r, ctx, m, &names, params);

    default: /* NGX_HTTP_REVERSE_MCP_EP_FAN_COMPLETE */
        return ngx_http_reverse_mcp_ep_complete(r, ctx, m, &names, params);
    }
}


/* the agent's connected servers that declare cap, by name */
static ngx_int_t
ngx_http_reverse_mcp_ep_candidates(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_uint_t cap, ngx_array_t *names)
{
    ngx_int_t                            rc;
    ngx_str_t                           *name;
    ngx_uint_t                           i, flags;
    ngx_http_reverse_mcp_agent_conf_t   *acf;
    ngx_http_reverse_mcp_server_conf_t  *scf;
    ngx_http_reverse_mcp_main_conf_t    *mcf;

    if (ngx_array_init(names, r->pool, 4, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);
    acf = ngx_http_reverse_mcp_find_agent(mcf, &ctx->agent);

    if (acf == NULL) {
        return NGX_OK;
    }

    scf = acf->servers.elts;

    for (i = 0; i < acf->servers.nelts; i++) {
        rc = ngx_http_reverse_mcp_ep_caps(r, ctx, &scf[i].name, &flags,
                                          NULL);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc != NGX_OK || !(flags & cap)) {
            continue;
        }

        name = ngx_array_push(names);
        if (name == NULL) {
            return NGX_ERROR;
        }

        *name = scf[i].name;
    }

    ngx_qsort(names->elts, names->nelts, sizeof(ngx_str_t),
              ngx_http_reverse_mcp_ep_name_cmp);

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_http_reverse_mcp_ep_name_cmp(const void *one, const void *two)
{
    const ngx_str_t  *a = one;
    const ngx_str_t  *b = two;

    return (int) ngx_memn2cmp(a->data, b->data, a->len, b->len);
}


/*
 * "<server><sep><name>" of the aggregate: the split whose server part is
 * one of names (tried left to right, as tool names are).  NGX_OK;
 * NGX_DECLINED: *server is a server of the agent that is not connected;
 * NGX_ABORT: unknown.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_split(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *name, ngx_array_t *names,
    ngx_str_t *server, ngx_str_t *local)
{
    u_char                             *p, *end;
    uint64_t                            conn_id;
    ngx_pid_t                           pid;
    ngx_str_t                          *sep, *n, s, down;
    ngx_uint_t                          i;
    ngx_http_reverse_mcp_agent_conf_t  *acf;
    ngx_http_reverse_mcp_main_conf_t   *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_reverse_mcp_module);
    acf = ngx_http_reverse_mcp_find_agent(mcf, &ctx->agent);

    sep = &ctx->lcf->tool_separator;
    end = name->data + name->len;
    n = names->elts;
    ngx_str_null(&down);

    for (p = name->data + 1; p + sep->len < end; p++) {

        if (ngx_memcmp(p, sep->data, sep->len) != 0) {
            continue;
        }

        s.data = name->data;
        s.len = p - name->data;

        for (i = 0; i < names->nelts; i++) {
            if (n[i].len == s.len
                && ngx_strncmp(n[i].data, s.data, s.len) == 0)
            {
                *server = n[i];
                local->data = p + sep->len;
                local->len = end - local->data;
                return NGX_OK;
            }
        }

        if (down.len == 0
            && acf
            && ngx_http_reverse_mcp_find_server(acf, &s)
            && ngx_http_reverse_mcp_registry_resolve(ctx->zone, &ctx->agent,
                                                     &s, NULL, &pid,
                                                     &conn_id)
               != NGX_OK)
        {
            down = s;
        }
    }

    if (down.len) {
        *server = down;
        return NGX_DECLINED;
    }

    return NGX_ABORT;
}


/* prompts/get of the aggregate: the name mapped back, like tools/call */
static ngx_int_t
ngx_http_reverse_mcp_ep_named(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_method_t *m,
    ngx_array_t *names, yajl_val params)
{
    ngx_int_t  rc;
    ngx_str_t  name, server, local, fwd, progress;

    if (ngx_http_reverse_mcp_json_get_str(params, "name", &name) != NGX_OK) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: \"name\" is required");
    }

    ngx_str_null(&server);

    rc = ngx_http_reverse_mcp_ep_split(r, ctx, &name, names, &server, &local);

    ctx->call_server = server;

    if (rc == NGX_DECLINED) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_ERR_UNAVAILABLE,
                                 "Server not connected: %V (prompt %V)",
                                 &server, &name);
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint %V of unknown prompt \"%V\"",
                      &m->method, &name);

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Unknown prompt: %V", &name);
    }

    if (ngx_http_reverse_mcp_ep_forward_params(r->pool, params, &local, &fwd)
        != NGX_OK
        || ngx_http_reverse_mcp_ep_progress(r, params, &progress) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_reverse_mcp_ep_call(r, ctx, &server, &m->method, &fwd,
                                        &progress);
}


/*
 * completion/complete of the aggregate: a ref/prompt goes to the prompt's
 * server with its own name; a ref/resource (a URI template) to the
 * servers that declare completions, in turn.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_complete(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_method_t *m,
    ngx_array_t *names, yajl_val params)
{
    yajl_val   ref, node;
    ngx_int_t  rc;
    ngx_str_t  type, name, server, local, literal, fwd, progress;

    ref = ngx_http_reverse_mcp_json_get(params, "ref");

    if (ngx_http_reverse_mcp_json_get_str(ref, "type", &type) != NGX_OK) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: \"ref\" with a \"type\" "
                                 "is required");
    }

    if (ngx_http_reverse_mcp_ep_str_eq(&type, "ref/resource")) {
        if (ngx_http_reverse_mcp_json_dump(r->pool, params, &fwd) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_reverse_mcp_ep_fan_start(r, ctx, m,
                                              NGX_HTTP_REVERSE_MCP_EP_FAN_FIRST,
                                              names, &fwd);
    }

    node = ngx_http_reverse_mcp_json_get(ref, "name");

    if (!ngx_http_reverse_mcp_ep_str_eq(&type, "ref/prompt")
        || ngx_http_reverse_mcp_json_get_str(ref, "name", &name) != NGX_OK)
    {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: \"ref\" must be a "
                                 "ref/prompt with a name or a ref/resource");
    }

    ngx_str_null(&server);

    rc = ngx_http_reverse_mcp_ep_split(r, ctx, &name, names, &server, &local);

    ctx->call_server = server;

    if (rc == NGX_DECLINED) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_ERR_UNAVAILABLE,
                                 "Server not connected: %V (prompt %V)",
                                 &server, &name);
    }

    if (rc != NGX_OK) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Unknown prompt: %V", &name);
    }

    literal.len = ngx_http_reverse_mcp_json_escaped_len(&local);
    literal.data = ngx_pnalloc(r->pool, literal.len);
    if (literal.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    literal.len = ngx_http_reverse_mcp_json_escape(literal.data, &local)
                  - literal.data;

    if (ngx_http_reverse_mcp_json_dump_replace(r->pool, params, node,
                                               &literal, &fwd)
        != NGX_OK
        || ngx_http_reverse_mcp_ep_progress(r, params, &progress) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_reverse_mcp_ep_call(r, ctx, &server, &m->method, &fwd,
                                        &progress);
}


/*
 * A request of the aggregate for several servers (names): FAN_LIST starts
 * them all and merges their lists; FAN_FIRST tries them one after another
 * until one answers without an error.  The subs' done() handlers post
 * done_ev; ngx_http_reverse_mcp_ep_fan_step() goes on from there.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_fan_start(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_http_reverse_mcp_ep_method_t *m,
    ngx_uint_t mode, ngx_array_t *names, ngx_str_t *params)
{
    ngx_str_t                      *name;
    ngx_uint_t                      i;
    ngx_pool_cleanup_t             *cln;
    ngx_http_reverse_mcp_call_t    *call;
    ngx_http_reverse_mcp_ep_sub_t  *sub;

    name = names->elts;

    ctx->subs = ngx_pcalloc(r->pool, names->nelts
                                     * sizeof(ngx_http_reverse_mcp_ep_sub_t));
    if (ctx->subs == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->fan = m;
    ctx->fan_mode = mode;
    ctx->nsubs = names->nelts;

    /* no progress or log messages to stream: a stream only if asked */
    ctx->sse = !ctx->accept_json;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        sub->ctx = ctx;
        sub->server = name[i];

        if (params) {
            sub->params = *params;
        }

        if (mode == NGX_HTTP_REVERSE_MCP_EP_FAN_LIST
            && ngx_array_init(&sub->items, r->pool, 16, sizeof(ngx_str_t))
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        call = &sub->call;

        call->agent = ctx->agent;
        call->server = sub->server;
        call->method = m->method;
        call->timeout = 0;
        call->notify = NULL;
        call->done = ngx_http_reverse_mcp_ep_sub_done;
        call->data = sub;
        call->log = r->connection->log;
        call->force_mailbox = ctx->lcf->force_mailbox;
    }

    ctx->done_ev.handler = ngx_http_reverse_mcp_ep_done_handler;
    ctx->done_ev.data = ctx;
    ctx->done_ev.log = r->connection->log;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_reverse_mcp_ep_cleanup;
    cln->data = ctx;

    ctx->active = 1;
    ctx->call_start = ngx_current_msec;

    for (i = 0; i < ctx->nsubs; i++) {
        ctx->next = i + 1;

        if (ngx_http_reverse_mcp_ep_sub_start(ctx, &ctx->subs[i]) != NGX_OK)
        {
            continue;
        }

        if (mode == NGX_HTTP_REVERSE_MCP_EP_FAN_FIRST) {
            break;
        }
    }

    if (ctx->nactive == 0) {
        ctx->active = 0;

        return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_INTERNAL_SERVER_ERROR,
                                 NGX_HTTP_REVERSE_MCP_INTERNAL_ERROR,
                                 "Internal error: the call could not be "
                                 "started");
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "reverse_mcp: endpoint %V over %ui server(s), mode %ui",
                   &m->method, ctx->nsubs, mode);

    return ngx_http_reverse_mcp_ep_track(r, ctx);
}


static ngx_int_t
ngx_http_reverse_mcp_ep_sub_start(ngx_http_reverse_mcp_ep_ctx_t *ctx,
    ngx_http_reverse_mcp_ep_sub_t *sub)
{
    sub->call.params = sub->params;
    ngx_str_null(&sub->call.progress_token);

    if (ngx_http_reverse_mcp_call_start(&sub->call) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "reverse_mcp: could not start %V of server \"%V\"",
                      &sub->call.method, &sub->server);
        return NGX_ERROR;
    }

    sub->active = 1;
    ctx->nactive++;

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_ep_sub_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json)
{
    ngx_http_reverse_mcp_ep_ctx_t  *ctx;
    ngx_http_reverse_mcp_ep_sub_t  *sub;

    sub = call->data;
    ctx = sub->ctx;

    if (!sub->active) {
        return;
    }

    sub->active = 0;
    ctx->nactive--;

    sub->answered = 1;
    sub->is_error = is_error;
    sub->result.data = ngx_pnalloc(ctx->request->pool, json->len);

    if (sub->result.data == NULL) {
        ctx->failed = 1;

    } else {
        ngx_memcpy(sub->result.data, json->data, json->len);
        sub->result.len = json->len;
    }

    /* as for one call: go on from a posted event */

    if (!ctx->done_ev.posted) {
        ngx_post_event(&ctx->done_ev, &ngx_posted_events);
    }
}


/*
 * The subs that answered since the last step: NGX_AGAIN while some run;
 * NGX_OK when the reply is ctx->result (an error when ctx->is_error), the
 * request no longer active; NGX_ERROR (no memory).
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_fan_step(ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    ngx_uint_t                      i;
    ngx_http_reverse_mcp_ep_sub_t  *sub;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (!sub->answered) {
            continue;
        }

        sub->answered = 0;

        if (ctx->fan_mode == NGX_HTTP_REVERSE_MCP_EP_FAN_LIST) {
            if (ngx_http_reverse_mcp_ep_fan_page(ctx, sub) != NGX_OK) {
                return NGX_ERROR;
            }

            continue;
        }

        /* FAN_FIRST: the first success, in the order of the names */

        if (!sub->is_error) {
            ctx->result = sub->result;
            ctx->is_error = 0;
            ctx->call_server = sub->server;
            ctx->call.owner_pid = sub->call.owner_pid;
            goto done;
        }

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "reverse_mcp: endpoint %V: server \"%V\" answered %V",
                       &ctx->fan->method, &sub->server, &sub->result);

        if (ctx->first_error.len == 0) {
            ctx->first_error = sub->result;
            ctx->call_server = sub->server;
        }

        while (ctx->nactive == 0 && ctx->next < ctx->nsubs) {
            (void) ngx_http_reverse_mcp_ep_sub_start(ctx,
                                                 &ctx->subs[ctx->next++]);
        }
    }

    if (ctx->nactive) {
        return NGX_AGAIN;
    }

    if (ctx->fan_mode == NGX_HTTP_REVERSE_MCP_EP_FAN_LIST) {
        if (ngx_http_reverse_mcp_ep_fan_merge(ctx) != NGX_OK) {
            return NGX_ERROR;
        }

    } else {
        /* no server answered without an error: the first error */
        ctx->result = ctx->first_error;
        ctx->is_error = 1;
    }

done:

    ctx->call_time = ngx_current_msec - ctx->call_start;
    ctx->call_timed = 1;

    ngx_http_reverse_mcp_ep_stop(ctx, 1);

    return NGX_OK;
}


/*
 * A page of one server's list: its items join the sub's (prompt names
 * prefixed with the server); a nextCursor asks for the next page.  A
 * server that fails is left out of the list, with a warning.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_fan_page(ngx_http_reverse_mcp_ep_ctx_t *ctx,
    ngx_http_reverse_mcp_ep_sub_t *sub)
{
    u_char              *p;
    char                 err[64];
    size_t               i;
    yajl_val             root, list, elt, name;
    ngx_str_t            text, full, literal, cursor, *item;
    ngx_uint_t           rename;
    ngx_log_t           *log;
    ngx_pool_t          *pool;

    log = ctx->request->connection->log;
    pool = ctx->request->pool;

    if (sub->is_error) {
        text = sub->result;

        if (text.len > 256) {
            text.len = 256;
        }

        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "reverse_mcp: %V of server \"%V\" failed, left out of "
                      "the aggregate: %V", &ctx->fan->method, &sub->server,
                      &text);

        sub->items.nelts = 0;
        return NGX_OK;
    }

    root = ngx_http_reverse_mcp_json_parse(sub->result.data, sub->result.len,
                                           err, sizeof(err));

    list = ngx_http_reverse_mcp_json_get(root, ctx->fan->key);

    if (!YAJL_IS_ARRAY(list)) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "reverse_mcp: %V of server \"%V\" has no \"%s\" array, "
                      "left out of the aggregate", &ctx->fan->method,
                      &sub->server, ctx->fan->key);

        if (root) {
            yajl_tree_free(root);
        }

        sub->items.nelts = 0;
        return NGX_OK;
    }

    rename = (ctx->fan->cap == NGX_HTTP_REVERSE_MCP_EP_CAP_PROMPTS);

    for (i = 0; i < list->u.array.len; i++) {
        elt = list->u.array.values[i];

        item = ngx_array_push(&sub->items);
        if (item == NULL) {
            goto failed;
        }

        if (!rename) {
            if (ngx_http_reverse_mcp_json_dump(pool, elt, item) != NGX_OK) {
                goto failed;
            }

            continue;
        }

        /* "<server><sep><prompt>" */

        name = ngx_http_reverse_mcp_json_get(elt, "name");

        if (!YAJL_IS_STRING(name)) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "reverse_mcp: a prompt of server \"%V\" without a "
                          "name, left out", &sub->server);
            sub->items.nelts--;
            continue;
        }

        text.data = (u_char *) name->u.string;
        text.len = ngx_strlen(name->u.string);

        full.len = sub->server.len + ctx->lcf->tool_separator.len + text.len;
        full.data = ngx_pnalloc(pool, full.len);
        if (full.data == NULL) {
            goto failed;
        }

        p = ngx_cpymem(full.data, sub->server.data, sub->server.len);
        p = ngx_cpymem(p, ctx->lcf->tool_separator.data,
                       ctx->lcf->tool_separator.len);
        ngx_memcpy(p, text.data, text.len);

        literal.data = ngx_pnalloc(pool,
                                ngx_http_reverse_mcp_json_escaped_len(&full));
        if (literal.data == NULL) {
            goto failed;
        }

        literal.len = ngx_http_reverse_mcp_json_escape(literal.data, &full)
                      - literal.data;

        if (ngx_http_reverse_mcp_json_dump_replace(pool, elt, name, &literal,
                                                   item)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (ngx_http_reverse_mcp_json_get_str(root, "nextCursor", &text)
        == NGX_OK
        && text.len)
    {
        if (++sub->pages >= NGX_HTTP_REVERSE_MCP_EP_MAX_PAGES) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "reverse_mcp: %V of server \"%V\" has more than %d "
                          "pages, the rest is left out of the aggregate",
                          &ctx->fan->method, &sub->server,
                          NGX_HTTP_REVERSE_MCP_EP_MAX_PAGES);

        } else {
            cursor.len = sizeof("{\"cursor\":}") - 1
                         + ngx_http_reverse_mcp_json_escaped_len(&text);
            cursor.data = ngx_pnalloc(pool, cursor.len);
            if (cursor.data == NULL) {
                goto failed;
            }

            p = ngx_cpymem(cursor.data, "{\"cursor\":", 10);
            p = ngx_http_reverse_mcp_json_escape(p, &text);
            *p++ = '}';
            cursor.len = p - cursor.data;

            sub->params = cursor;

            if (ngx_http_reverse_mcp_ep_sub_start(ctx, sub) != NGX_OK) {
                sub->items.nelts = 0;
            }
        }
    }

    yajl_tree_free(root);

    return NGX_OK;

failed:

    yajl_tree_free(root);

    return NGX_ERROR;
}


/* {"<key>":[every item of every server, in the order of the servers]} */
static ngx_int_t
ngx_http_reverse_mcp_ep_fan_merge(ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    u_char                         *p;
    size_t                          len;
    ngx_str_t                      *item;
    ngx_uint_t                      i, j, first;
    ngx_http_reverse_mcp_ep_sub_t  *sub;

    len = sizeof("{\"\":[]}") + ngx_strlen(ctx->fan->key);

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];
        item = sub->items.elts;

        for (j = 0; j < sub->items.nelts; j++) {
            len += item[j].len + 1;
        }
    }

    p = ngx_pnalloc(ctx->request->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->result.data = p;
    p = ngx_sprintf(p, "{\"%s\":[", ctx->fan->key);
    first = 1;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];
        item = sub->items.elts;

        for (j = 0; j < sub->items.nelts; j++) {
            if (!first) {
                *p++ = ',';
            }

            first = 0;
            p = ngx_cpymem(p, item[j].data, item[j].len);
        }
    }

    *p++ = ']';
    *p++ = '}';

    ctx->result.len = p - ctx->result.data;
    ctx->is_error = 0;

    return NGX_OK;
}


/* a notification of the call: streamed when the reply is a stream */
static void
ngx_http_reverse_mcp_ep_notify(ngx_http_reverse_mcp_call_t *call,
    ngx_str_t *json)
{
    char                            err[64];
    yajl_val                        msg, params;
    ngx_int_t                       level, rc;
    ngx_str_t                       method, name;
    ngx_uint_t                      is_log;
    ngx_http_request_t             *r;
    ngx_http_reverse_mcp_ep_ctx_t  *ctx;

    ctx = call->data;
    r = ctx->request;

    if (!ctx->active || !ctx->sse || ctx->failed) {
        return;
    }

    /*
     * log messages below the session's logging/setLevel are dropped; in
     * 2026-07-28 all of them unless the request asked for a logLevel
     */

    if ((ctx->log_level > 1 || (ctx->modern && ctx->log_level == 0))
        && ngx_strlcasestrn(json->data, json->data + json->len,
                            (u_char *) "notifications/message", 20))
    {
        msg = ngx_http_reverse_mcp_json_parse(json->data, json->len, err,
                                              sizeof(err));
        if (msg == NULL) {
            return;
        }

        params = ngx_http_reverse_mcp_json_get(msg, "params");
        level = NGX_ERROR;
        is_log = 0;

        if (ngx_http_reverse_mcp_json_get_str(msg, "method", &method)
            == NGX_OK
            && ngx_http_reverse_mcp_ep_str_eq(&method,
                                              "notifications/message"))
        {
            is_log = 1;

            if (ngx_http_reverse_mcp_json_get_str(params, "level", &name)
                == NGX_OK)
            {
                level = ngx_http_reverse_mcp_ep_level(&name);
            }
        }

        yajl_tree_free(msg);

        if (level != NGX_ERROR
            && (ngx_uint_t) level + 1 < ctx->log_level)
        {
            return;
        }

        if (is_log && ctx->log_level == 0) {
            /* 2026-07-28 without a logLevel */
            return;
        }
    }

    rc = ngx_http_reverse_mcp_http_sse_event(r, "message", json, 0);

    if (rc == NGX_ERROR) {
        /* the client is gone: end it from a posted event, not from here */
        ctx->failed = 1;

        if (!ctx->done_ev.posted) {
            ngx_post_event(&ctx->done_ev, &ngx_posted_events);
        }
    }
}


/*
 * A request of the server for the caller, with the gateway's id: an event
 * of the POST's stream, before the result.  Never ends the call from
 * here: a failure posts done_ev, which cancels it.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_request(ngx_http_reverse_mcp_call_t *call,
    ngx_str_t *json)
{
    ngx_int_t                       rc;
    ngx_str_t                      *input;
    ngx_http_request_t             *r;
    ngx_http_reverse_mcp_ep_ctx_t  *ctx;

    ctx = call->data;
    r = ctx->request;

    if (!ctx->active || ctx->failed) {
        return NGX_ERROR;
    }

    if (ctx->modern) {
        /* collected for input_required, answered from done_ev */

        if (ctx->inputs == NULL) {
            ctx->inputs = ngx_array_create(r->pool, 2, sizeof(ngx_str_t));
            if (ctx->inputs == NULL) {
                return NGX_ERROR;
            }
        }

        input = ngx_array_push(ctx->inputs);
        if (input == NULL) {
            return NGX_ERROR;
        }

        input->data = ngx_pstrdup(r->pool, json);
        if (input->data == NULL) {
            ctx->inputs->nelts--;
            return NGX_ERROR;
        }

        input->len = json->len;
        ctx->input_required = 1;

        if (!ctx->done_ev.posted) {
            ngx_post_event(&ctx->done_ev, &ngx_posted_events);
        }

        return NGX_OK;
    }

    if (!ctx->accept_sse) {
        return NGX_ERROR;
    }

    rc = NGX_OK;

    if (!ctx->header_sent) {
        /* the reply was to be JSON: it becomes a stream now */
        ctx->sse = 1;
        rc = ngx_http_reverse_mcp_ep_sse_open(r, ctx);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_reverse_mcp_http_sse_event(r, "message", json, 0);
    }

    if (rc != NGX_OK) {
        ctx->failed = 1;

        if (!ctx->done_ev.posted) {
            ngx_post_event(&ctx->done_ev, &ngx_posted_events);
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * 2026-07-28: a tools/call, prompts/get or resources/read that may be a
 * retry: requestState (one the gateway gave out: "rmcp:<owner pid>:
 * <connection>:<park>") names the call parked on its owner, inputResponses
 * its answers.  Both are taken out of params (the server never sees them).
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_rounds(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params)
{
    yajl_val   state, responses;
    ngx_str_t  s;

    state = ngx_http_reverse_mcp_json_get(params, "requestState");
    responses = ngx_http_reverse_mcp_json_get(params, "inputResponses");

    if (state) {
        s.data = YAJL_IS_STRING(state) ? (u_char *) YAJL_GET_STRING(state)
                                       : NULL;
        s.len = s.data ? ngx_strlen(s.data) : 0;

        if (s.data == NULL
            || ngx_http_reverse_mcp_relay_id_parse(&s, &ctx->park_pid,
                                                   &ctx->park_conn,
                                                   &ctx->park)
               != NGX_OK)
        {
            return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: requestState is not one "
                                 "this gateway gave out");
        }
    }

    if (responses) {
        if (!YAJL_IS_OBJECT(responses)) {
            return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: inputResponses must be an "
                                 "object");
        }

        if (state
            && ngx_http_reverse_mcp_json_dump(r->pool, responses,
                                              &ctx->input_responses)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (state && ctx->input_responses.len == 0) {
        ngx_str_set(&ctx->input_responses, "{}");
    }

    ngx_http_reverse_mcp_ep_remove_member(params, state);
    ngx_http_reverse_mcp_ep_remove_member(params, responses);

    return NGX_OK;
}


/*
 * The servers' requests of this round for a 2026-07-28 caller: an
 * InputRequiredResult ({"resultType":"input_required","inputRequests":
 * {GATEWAY ID:{"method":..,"params":..}},"requestState":..}); the call
 * stays in flight on its owner, parked, for the retry.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_input_required(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    char                          err[128];
    u_char                       *p;
    size_t                        len;
    uint64_t                      key, park, seq;
    yajl_val                      msg;
    ngx_pid_t                     pid;
    ngx_str_t                    *in, *part, gid, method, result;
    ngx_uint_t                    i, n;
    ngx_http_reverse_mcp_call_t  *call;

    call = &ctx->call;
    in = ctx->inputs->elts;
    n = ctx->inputs->nelts;

    /* each request: its gateway id, method and params, as JSON text */

    part = ngx_palloc(r->pool, 3 * n * sizeof(ngx_str_t));
    if (part == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"resultType\":\"input_required\",\"inputRequests\":{"
                 "},\"requestState\":\"\"}")
          + NGX_HTTP_REVERSE_MCP_RELAY_ID_LEN;
    park = 0;

    for (i = 0; i < n; i++) {
        msg = ngx_http_reverse_mcp_json_parse(in[i].data, in[i].len, err,
                                              sizeof(err));
        if (msg == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_http_reverse_mcp_json_get_str(msg, "id", &gid) != NGX_OK
            || ngx_http_reverse_mcp_json_get_str(msg, "method", &method)
               != NGX_OK
            || ngx_http_reverse_mcp_relay_id_parse(&gid, &pid, &key, &seq)
               != NGX_OK
            || ngx_http_reverse_mcp_json_dump(r->pool,
                   ngx_http_reverse_mcp_json_get(msg, "id"), &part[3 * i])
               != NGX_OK
            || ngx_http_reverse_mcp_json_dump(r->pool,
                   ngx_http_reverse_mcp_json_get(msg, "method"),
                   &part[3 * i + 1])
               != NGX_OK)
        {
            yajl_tree_free(msg);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&part[3 * i + 2], "{}");

        if (ngx_http_reverse_mcp_json_get(msg, "params")
            && ngx_http_reverse_mcp_json_dump(r->pool,
                   ngx_http_reverse_mcp_json_get(msg, "params"),
                   &part[3 * i + 2])
               != NGX_OK)
        {
            yajl_tree_free(msg);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        yajl_tree_free(msg);

        if (park == 0) {
            park = seq;     /* it names the parked call */
        }

        len += part[3 * i].len + part[3 * i + 1].len + part[3 * i + 2].len
               + sizeof(":{\"method\":,\"params\":},") - 1;
    }

    result.data = ngx_pnalloc(r->pool, len);
    if (result.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(result.data, "{\"resultType\":\"input_required\","
                   "\"inputRequests\":{",
                   sizeof("{\"resultType\":\"input_required\","
                          "\"inputRequests\":{") - 1);

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "%s%V:{\"method\":%V,\"params\":%V}",
                        i ? "," : "", &part[3 * i], &part[3 * i + 1],
                        &part[3 * i + 2]);
    }

    p = ngx_cpymem(p, "},\"requestState\":\"",
                   sizeof("},\"requestState\":\"") - 1);
    p = ngx_http_reverse_mcp_relay_id(p, call->owner_pid, call->conn_id,
                                      park);
    p = ngx_cpymem(p, "\"}", 2);

    result.len = p - result.data;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "reverse_mcp: endpoint call of %V waits for the caller's "
                  "input (%ui request%s): input_required", &ctx->label,
                  n, n == 1 ? "" : "s");

    ngx_http_reverse_mcp_call_detach(call);
    ngx_http_reverse_mcp_ep_stop(ctx, 0);

    return ngx_http_reverse_mcp_ep_reply(r, ctx, 0, &result);
}


/* take one member (by its value) out of an object */
static void
ngx_http_reverse_mcp_ep_remove_member(yajl_val obj, yajl_val value)
{
    size_t  i, n;

    if (value == NULL || obj == NULL || !YAJL_IS_OBJECT(obj)) {
        return;
    }

    n = 0;

    for (i = 0; i < obj->u.object.len; i++) {
        if (obj->u.object.values[i] == value) {
            free((char *) obj->u.object.keys[i]);
            yajl_tree_free(value);
            continue;
        }

        obj->u.object.keys[n] = obj->u.object.keys[i];
        obj->u.object.values[n] = obj->u.object.values[i];
        n++;
    }

    obj->u.object.len = n;
}


/*
 * A JSON-RPC response from the caller: the answer to a request a server
 * sent during one of its calls (the id is the gateway's, it says which
 * worker holds the call).  202 once it is passed on, wherever it goes
 * from there; a call that ended in the meantime is logged at info.  An id
 * the gateway never gave out: 400.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_answer(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val id, ngx_str_t *body)
{
    ngx_int_t  rc;
    ngx_str_t  gid;

    rc = NGX_ABORT;

    if (YAJL_IS_STRING(id)) {
        gid.data = (u_char *) YAJL_GET_STRING(id);
        gid.len = ngx_strlen(gid.data);

        rc = ngx_http_reverse_mcp_call_answer(&gid, &ctx->session, body,
                                              r->connection->log);
    }

    if (rc == NGX_ABORT) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "reverse_mcp: endpoint got a response with id %V, "
                      "which is not the id of a relayed request", &ctx->id);

        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_INVALID_REQUEST,
                                 "Invalid Request: the gateway sent no "
                                 "request with id %V", &ctx->id);
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_reverse_mcp_http_send(r, NGX_HTTP_ACCEPTED, NULL, NULL);
}


static void
ngx_http_reverse_mcp_ep_done(ngx_http_reverse_mcp_call_t *call,
    ngx_uint_t is_error, ngx_str_t *json)
{
    u_char                         *p;
    size_t                          room;
    ngx_http_reverse_mcp_ep_ctx_t  *ctx;

    ctx = call->data;

    if (!ctx->active) {
        return;
    }

    ctx->call_time = ngx_current_msec - ctx->call_start;
    ctx->call_timed = 1;

    ngx_http_reverse_mcp_ep_stop(ctx, 0);

    ctx->is_error = is_error;

    /* with room for the reply's head and tail: it is built in place */

    room = sizeof(NGX_HTTP_REVERSE_MCP_EP_REPLY_HEAD) - 1 + ctx->id.len;

    p = ngx_pnalloc(ctx->request->pool, room + json->len + 1);

    if (p == NULL) {
        ctx->failed = 1;

    } else {
        ctx->result.data = p + room;
        ctx->result.len = json->len;
        ctx->result_room = ctx->result.data;
        ngx_memcpy(ctx->result.data, json->data, json->len);
    }

    /*
     * the response is sent from a posted event: the request (and the
     * call in it) may be freed then, which the caller of done() must not
     * see
     */

    if (!ctx->done_ev.posted) {
        ngx_post_event(&ctx->done_ev, &ngx_posted_events);
    }
}


static void
ngx_http_reverse_mcp_ep_done_handler(ngx_event_t *ev)
{
    ngx_int_t                       rc;
    ngx_str_t                       value;
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_reverse_mcp_ep_ctx_t  *ctx;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    if (ctx->input_required && ctx->active && !ctx->failed
        && !ctx->cancelled)
    {
        /* 2026-07-28: the server asks the caller: this round ends */
        rc = ngx_http_reverse_mcp_ep_input_required(r, ctx);

        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(c);
        return;
    }

    if (ctx->fan && ctx->active && !ctx->failed && !ctx->cancelled) {
        rc = ngx_http_reverse_mcp_ep_fan_step(ctx);

        if (rc == NGX_AGAIN) {
            return;
        }

        if (rc != NGX_OK) {
            ctx->failed = 1;
        }
    }

    if (ctx->active) {
        /* a write error while streaming */
        ngx_http_reverse_mcp_ep_stop(ctx, 1);
    }

    if (ctx->failed) {
        ctx->outcome = "failed";
        ngx_http_finalize_request(r, ctx->header_sent
                                     ? NGX_ERROR
                                     : NGX_HTTP_INTERNAL_SERVER_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    if (ctx->cancelled) {
        ctx->outcome = "cancelled";

        /* cancelled requests get no response (MCP cancellation) */
        if (ctx->header_sent) {
            rc = ngx_http_send_special(r, NGX_HTTP_LAST);

        } else {
            rc = ngx_http_reverse_mcp_http_send(r, NGX_HTTP_ACCEPTED,
                                                NULL, NULL);
        }

        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "reverse_mcp: endpoint call of %V done (error: %ui)",
                   &ctx->label, ctx->is_error);

    value = ctx->result;

    rc = ngx_http_reverse_mcp_ep_reply(r, ctx, ctx->is_error, &value);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the call is over for us: off the queue, and cancelled if still running */
static void
ngx_http_reverse_mcp_ep_stop(ngx_http_reverse_mcp_ep_ctx_t *ctx,
    ngx_uint_t cancel)
{
    ngx_uint_t  i;

    if (ctx->in_queue) {
        ngx_queue_remove(&ctx->queue);
        ctx->in_queue = 0;
    }

    if (ctx->active) {
        ctx->active = 0;

        if (!cancel) {
            return;
        }

        if (ctx->fan == NULL) {
            ngx_http_reverse_mcp_call_cancel(&ctx->call);
            return;
        }

        for (i = 0; i < ctx->nsubs; i++) {
            if (ctx->subs[i].active) {
                ctx->subs[i].active = 0;
                ngx_http_reverse_mcp_call_cancel(&ctx->subs[i].call);
            }
        }

        ctx->nactive = 0;
    }
}


static void
ngx_http_reverse_mcp_ep_cleanup(void *data)
{
    ngx_http_reverse_mcp_ep_ctx_t  *ctx = data;

    if (ctx->active) {
        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "reverse_mcp: endpoint call of %V cancelled: "
                      "the client went away", &ctx->label);
    }

    ngx_http_reverse_mcp_ep_stop(ctx, 1);

    if (ctx->done_ev.posted) {
        ngx_delete_posted_event(&ctx->done_ev);
    }
}


static void
ngx_http_reverse_mcp_ep_json_free(void *data)
{
    yajl_tree_free(data);
}


/*
 * Cancel this worker's calls of a session (request_id NULL: all of them);
 * returns how many.
 */
static ngx_uint_t
ngx_http_reverse_mcp_ep_cancel_local(ngx_str_t *session,
    ngx_str_t *request_id)
{
    ngx_uint_t                      n;
    ngx_queue_t                    *q, *next;
    ngx_http_reverse_mcp_ep_ctx_t  *ctx;

    if (!ngx_http_reverse_mcp_ep_calls_init) {
        return 0;
    }

    n = 0;

    for (q = ngx_queue_head(&ngx_http_reverse_mcp_ep_calls);
         q != ngx_queue_sentinel(&ngx_http_reverse_mcp_ep_calls);
         q = next)
    {
        next = ngx_queue_next(q);
        ctx = ngx_queue_data(q, ngx_http_reverse_mcp_ep_ctx_t, queue);

        if (ctx->session.len != session->len
            || ngx_strncmp(ctx->session.data, session->data, session->len)
               != 0)
        {
            continue;
        }

        if (request_id
            && (ctx->id.len != request_id->len
                || ngx_strncmp(ctx->id.data, request_id->data,
                               request_id->len) != 0))
        {
            continue;
        }

        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "reverse_mcp: endpoint call of %V cancelled "
                      "by the client", &ctx->label);

        ngx_http_reverse_mcp_ep_stop(ctx, 1);
        ctx->cancelled = 1;

        if (!ctx->done_ev.posted) {
            ngx_post_event(&ctx->done_ev, &ngx_posted_events);
        }

        n++;
    }

    return n;
}


/* while calls are in flight: cancellations posted by other workers */
static void
ngx_http_reverse_mcp_ep_poll_handler(ngx_event_t *ev)
{
    ngx_str_t                               session, request_id;
    ngx_uint_t                              i, n;
    ngx_http_reverse_mcp_session_cancel_t   cancels[
                                             NGX_HTTP_REVERSE_MCP_EP_CANCELS];

    if (!ngx_http_reverse_mcp_ep_calls_init
        || ngx_queue_empty(&ngx_http_reverse_mcp_ep_calls)
        || ngx_http_reverse_mcp_ep_zone == NULL)
    {
        return;
    }

    if (ngx_http_reverse_mcp_session_cancel_seq(ngx_http_reverse_mcp_ep_zone)
        != ngx_http_reverse_mcp_ep_cancel_seen)
    {
        n = ngx_http_reverse_mcp_session_cancels(ngx_http_reverse_mcp_ep_zone,
                                        &ngx_http_reverse_mcp_ep_cancel_seen,
                                        cancels,
                                        NGX_HTTP_REVERSE_MCP_EP_CANCELS);

        for (i = 0; i < n; i++) {
            session.data = cancels[i].id;
            session.len = NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN;
            request_id.data = cancels[i].request_id;
            request_id.len = cancels[i].request_id_len;

            (void) ngx_http_reverse_mcp_ep_cancel_local(&session,
                                         cancels[i].all ? NULL : &request_id);
        }
    }

    if (!ngx_queue_empty(&ngx_http_reverse_mcp_ep_calls)) {
        ngx_add_timer(ev, NGX_HTTP_REVERSE_MCP_EP_POLL);
    }
}


/* {"jsonrpc":"2.0","id":ID,"result"|"error":VALUE}, JSON or one SSE event */
static ngx_int_t
ngx_http_reverse_mcp_ep_reply(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_uint_t is_error,
    ngx_str_t *value)
{
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t   body, modern;

    ctx->outcome = is_error ? "error" : "ok";

    if (ctx->modern && !is_error) {
        if (ngx_http_reverse_mcp_ep_modern_result(r, ctx, value, &modern)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        value = &modern;
    }

    if (value->data == ctx->result_room) {
        /* the value came with room around it: no copy of a large result */

        body.data = value->data - (sizeof(NGX_HTTP_REVERSE_MCP_EP_REPLY_HEAD)
                                   - 1 + ctx->id.len - (is_error ? 1 : 0));

        p = ngx_sprintf(body.data, "{\"jsonrpc\":\"2.0\",\"id\":%V,\"%s\":",
                        &ctx->id, is_error ? "error" : "result");

        p += value->len;
        *p++ = '}';

    } else {
        body.len = sizeof(NGX_HTTP_REVERSE_MCP_EP_REPLY_HEAD "}") - 1
                   + ctx->id.len + value->len;

        body.data = ngx_pnalloc(r->pool, body.len);
        if (body.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_sprintf(body.data, "{\"jsonrpc\":\"2.0\",\"id\":%V,\"%s\":%V}",
                        &ctx->id, is_error ? "error" : "result", value);
    }

    body.len = p - body.data;

    if (ctx->modern && is_error && !ctx->header_sent
        && value->len > sizeof("{\"code\":-32021,") - 1
        && ngx_strncmp(value->data, "{\"code\":-32021,",
                       sizeof("{\"code\":-32021,") - 1) == 0)
    {
        /* MissingRequiredClientCapability: 400 on HTTP, not a stream */
        return ngx_http_reverse_mcp_http_send(r, NGX_HTTP_BAD_REQUEST, NULL,
                                              &body);
    }

    if (!ctx->sse && ctx->accept_json) {
        return ngx_http_reverse_mcp_http_send(r, NGX_HTTP_OK, NULL, &body);
    }

    if (!ctx->header_sent) {
        rc = ngx_http_reverse_mcp_ep_sse_open(r, ctx);

        if (rc == NGX_ERROR || rc > NGX_OK) {
            return rc;
        }
    }

    return ngx_http_reverse_mcp_http_sse_event(r, "message", &body, 1);
}


/* a JSON-RPC error response with the given HTTP status; fmt: message */
static ngx_int_t
ngx_http_reverse_mcp_ep_error(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_uint_t status, ngx_int_t code,
    const char *fmt, ...)
{
    u_char     msg[NGX_HTTP_REVERSE_MCP_EP_MSG_MAX], *p;
    va_list    args;
    ngx_str_t  text, value, body;

    ctx->outcome = "error";

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    text.data = msg;
    text.len = p - msg;

    value.len = sizeof("{\"code\":,\"message\":}") - 1 + NGX_INT_T_LEN
                + ngx_http_reverse_mcp_json_escaped_len(&text);

    value.data = ngx_pnalloc(r->pool, value.len);
    if (value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(value.data, "{\"code\":%i,\"message\":", code);
    p = ngx_http_reverse_mcp_json_escape(p, &text);
    *p++ = '}';

    value.len = p - value.data;

    if (ctx->modern && status == NGX_HTTP_OK
        && code == NGX_HTTP_REVERSE_MCP_METHOD_NOT_FOUND)
    {
        /* 2026-07-28: a method the server does not implement is a 404 */
        status = NGX_HTTP_NOT_FOUND;
    }

    if (status == NGX_HTTP_OK) {
        /* an error of the request: the reply it asked for, in its form */
        return ngx_http_reverse_mcp_ep_reply(r, ctx, 1, &value);
    }

    body.len = sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"error\":}") - 1
               + ctx->id.len + value.len;

    body.data = ngx_pnalloc(r->pool, body.len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body.data, "{\"jsonrpc\":\"2.0\",\"id\":%V,\"error\":%V}",
                    &ctx->id, &value);

    body.len = p - body.data;

    return ngx_http_reverse_mcp_http_send(r, status, NULL, &body);
}


/* the POST's response becomes an SSE stream */
static ngx_int_t
ngx_http_reverse_mcp_ep_sse_open(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    ctx->header_sent = 1;

    return ngx_http_reverse_mcp_http_sse_open(r);
}


/*
 * GET: the session's stream of server-initiated messages.  It carries
 * notifications/tools/list_changed whenever the agent's tool set changes
 * (a server connects, leaves or re-lists, in any worker: the agent's
 * generation in the shared zone moves), and an SSE comment every
 * NGX_HTTP_REVERSE_MCP_EP_KEEPALIVE seconds.  It ends when the session
 * ends (DELETE, expiry) or the worker shuts down; its timer is not
 * cancelable, so a draining worker closes the stream instead of dropping
 * it.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_listen(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    ngx_http_reverse_mcp_ep_accept(r, ctx);

    if (!ctx->accept_sse) {
        return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_REVERSE_MCP_NOT_ACCEPTABLE,
                                 NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                 "Not Acceptable: Client must accept "
                                 "text/event-stream");
    }

    h = ngx_http_reverse_mcp_http_header_in(r, "Mcp-Session-Id", 14);

    if (h == NULL) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                 "Bad Request: Mcp-Session-Id header is "
                                 "required");
    }

    ctx->session = h->value;

    if (ngx_http_reverse_mcp_session_touch(ctx->zone, &ctx->session,
                                           &ctx->agent, NULL)
        != NGX_OK)
    {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_NOT_FOUND,
                                             NGX_HTTP_REVERSE_MCP_NO_SESSION,
                                             "Session not found");
    }

    rc = ngx_http_reverse_mcp_ep_stream(r, ctx);

    if (rc != NGX_OK) {
        return rc == NGX_ERROR ? NGX_HTTP_INTERNAL_SERVER_ERROR : rc;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "reverse_mcp: GET stream of session %V", &ctx->session);

    /* the content handler's NGX_DONE takes one reference */
    r->main->count++;

    return NGX_DONE;
}


/*
 * A long-lived stream of change notifications, shared by the GET stream
 * (legacy sessions) and subscriptions/listen (2026-07-28): the SSE
 * headers are sent, then every NGX_HTTP_REVERSE_MCP_EP_LISTEN ms the
 * agent's generation in the shared zone is compared with the last one
 * seen (ngx_http_reverse_mcp_ep_listen_handler).  A client that goes
 * away ends it (ngx_http_test_reading finalizes, the cleanup deletes the
 * timer).  The caller finalizes once more when it returns NGX_OK.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_stream(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_reverse_mcp_ep_listen_cleanup;
    cln->data = ctx;

    ngx_http_reverse_mcp_registry_list_gens(ctx->zone, &ctx->agent,
                                            ctx->listen_gens);
    ctx->listen_write = ngx_time();

    ctx->listen_ev.handler = ngx_http_reverse_mcp_ep_listen_handler;
    ctx->listen_ev.data = ctx;
    ctx->listen_ev.log = r->connection->log;

    rc = ngx_http_reverse_mcp_ep_sse_open(r, ctx);

    if (rc != NGX_OK) {
        return rc;
    }

    r->read_event_handler = ngx_http_test_reading;

    ngx_add_timer(&ctx->listen_ev, NGX_HTTP_REVERSE_MCP_EP_LISTEN);

    return NGX_OK;
}


/* raw SSE text (a comment, an event), flushed */
static ngx_int_t
ngx_http_reverse_mcp_ep_stream_write(ngx_http_request_t *r, ngx_str_t *text)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = text->data;
    b->last = text->data + text->len;
    b->memory = 1;
    b->flush = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_output_filter(r, &out);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    return ngx_http_reverse_mcp_http_pending(r);
}


static void
ngx_http_reverse_mcp_ep_listen_handler(ngx_event_t *ev)
{
    ngx_http_reverse_mcp_ep_ctx_t  *ctx = ev->data;

    u_char              *p;
    ngx_int_t            rc;
    ngx_str_t            json, closed;
    ngx_uint_t           i, gens[NGX_HTTP_REVERSE_MCP_LISTS];
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    static u_char  changed[] =
        "{\"jsonrpc\":\"2.0\","
        "\"method\":\"notifications/tools/list_changed\"}";

    r = ctx->request;
    c = r->connection;

    if (ngx_exiting || ngx_terminate
        || (!ctx->modern
            && ngx_http_reverse_mcp_session_touch(ctx->zone, &ctx->session,
                                                  &ctx->agent, NULL)
               != NGX_OK))
    {
        /*
         * the session or the worker ends: so does the stream; a
         * subscription ends with its (empty) result
         */
        rc = NGX_OK;

        if (ctx->modern) {
            p = ngx_pnalloc(r->pool, sizeof("{\"_meta\":{\""
                                            NGX_HTTP_REVERSE_MCP_EP_META
                                            "subscriptionId\":}}")
                                     + ctx->id.len);
            if (p == NULL) {
                rc = NGX_ERROR;

            } else {
                closed.data = p;
                closed.len = ngx_sprintf(p, "{\"_meta\":{\""
                                         NGX_HTTP_REVERSE_MCP_EP_META
                                         "subscriptionId\":%V}}", &ctx->id)
                             - p;
                rc = ngx_http_reverse_mcp_ep_reply(r, ctx, 0, &closed);
            }

        } else {
            rc = ngx_http_send_special(r, NGX_HTTP_LAST);
        }

        ngx_http_finalize_request(r, rc == NGX_ERROR ? NGX_ERROR : NGX_OK);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_http_reverse_mcp_registry_list_gens(ctx->zone, &ctx->agent, gens);
    rc = NGX_OK;

    for (i = 0; i < NGX_HTTP_REVERSE_MCP_LISTS && rc == NGX_OK; i++) {

        if (gens[i] == ctx->listen_gens[i]) {
            continue;
        }

        ctx->listen_gens[i] = gens[i];

        if (!ctx->modern) {
            /* a legacy session's GET stream: tools only */
            if (i != NGX_HTTP_REVERSE_MCP_LIST_TOOLS) {
                continue;
            }

            json.data = changed;
            json.len = sizeof(changed) - 1;

        } else if (ctx->subs_lists & (1 << i)) {
            /* on a subscription: with the subscription's id */
            p = ngx_pnalloc(r->pool, sizeof("{\"jsonrpc\":\"2.0\",\"method\":"
                                        "\"notifications//list_changed\","
                                        "\"params\":{\"_meta\":{\""
                                        NGX_HTTP_REVERSE_MCP_EP_META
                                        "subscriptionId\":}}}")
                                 + sizeof("resources") + ctx->id.len);
            if (p == NULL) {
                rc = NGX_ERROR;
                break;
            }

            json.data = p;
            json.len = ngx_sprintf(p, "{\"jsonrpc\":\"2.0\",\"method\":"
                                   "\"notifications/%s/list_changed\","
                                   "\"params\":{\"_meta\":{\""
                                   NGX_HTTP_REVERSE_MCP_EP_META
                                   "subscriptionId\":%V}}}",
                                   ngx_http_reverse_mcp_ep_lists[i], &ctx->id)
                       - p;

        } else {
            continue;
        }

        ctx->listen_write = ngx_time();

        rc = ngx_http_reverse_mcp_http_sse_event(r, "message", &json, 0);
    }

    if (rc == NGX_OK
        && ngx_time() - ctx->listen_write >= NGX_HTTP_REVERSE_MCP_EP_KEEPALIVE)
    {
        ctx->listen_write = ngx_time();
        ngx_str_set(&json, ": keepalive\n\n");
        rc = ngx_http_reverse_mcp_ep_stream_write(r, &json);
    }

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_add_timer(ev, NGX_HTTP_REVERSE_MCP_EP_LISTEN);
}


static void
ngx_http_reverse_mcp_ep_listen_cleanup(void *data)
{
    ngx_http_reverse_mcp_ep_ctx_t  *ctx = data;

    if (ctx->listen_ev.timer_set) {
        ngx_del_timer(&ctx->listen_ev);
    }
}


/*
 * MCP 2026-07-28 (stateless) on the same location: a request whose
 * params._meta carries "io.modelcontextprotocol/protocolVersion" (and is
 * not an initialize) is served without a session.
 */


/* the description of what this endpoint serves, for initialize/discover */
static ngx_int_t
ngx_http_reverse_mcp_ep_instructions(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *instr)
{
    u_char  *p;
    size_t   len;

    len = sizeof("Tools of the reverse MCP server \"\" of agent \"\".") - 1
          + ctx->server.len + ctx->agent.len
          + sizeof(NGX_HTTP_REVERSE_MCP_EP_AGGREGATE) - 1
          + ctx->lcf->tool_separator.len;

    instr->data = ngx_pnalloc(r->pool, len);
    if (instr->data == NULL) {
        return NGX_ERROR;
    }

    if (ctx->server.len) {
        p = ngx_sprintf(instr->data,
                        "Tools of the reverse MCP server \"%V\" of agent "
                        "\"%V\".", &ctx->server, &ctx->agent);
    } else {
        p = ngx_sprintf(instr->data, NGX_HTTP_REVERSE_MCP_EP_AGGREGATE,
                        &ctx->agent, &ctx->lcf->tool_separator);
    }

    instr->len = p - instr->data;

    return NGX_OK;
}


/*
 * params._meta["io.modelcontextprotocol/protocolVersion"], copied to the
 * pool: NGX_OK, NGX_DECLINED (none: a legacy message), NGX_ERROR.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_modern_version(ngx_http_request_t *r,
    yajl_val params, ngx_str_t *version)
{
    yajl_val   meta, v;
    ngx_str_t  str;

    meta = ngx_http_reverse_mcp_json_get(params, "_meta");
    v = ngx_http_reverse_mcp_json_get(meta,
                                NGX_HTTP_REVERSE_MCP_EP_META "protocolVersion");

    if (v == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_reverse_mcp_json_get_str(meta,
                                NGX_HTTP_REVERSE_MCP_EP_META "protocolVersion",
                                &str)
        != NGX_OK)
    {
        /* not a version: unsupported, shown as JSON text */
        return ngx_http_reverse_mcp_json_dump(r->pool, v, version);
    }

    version->len = str.len;
    version->data = ngx_pnalloc(r->pool, str.len + 1);
    if (version->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(version->data, str.data, str.len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_reverse_mcp_ep_modern(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val id, ngx_str_t *method,
    yajl_val params, ngx_str_t *version)
{
    yajl_val                           meta;
    ngx_int_t                          level, rc;
    ngx_str_t                          value, hname, level_name;
    const char                        *key;
    ngx_table_elt_t                   *h;
    ngx_http_reverse_mcp_ep_method_t  *m;

    ctx->modern = 1;

    /* no sessions in this revision: Mcp-Session-Id is ignored */
    ngx_str_null(&ctx->session);

    h = ngx_http_reverse_mcp_http_header_in(r, "MCP-Protocol-Version", 20);

    if (h == NULL) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_HEADER_MISMATCH,
                                 "Header mismatch: the MCP-Protocol-Version "
                                 "header is required");
    }

    if (h->value.len != version->len
        || ngx_strncmp(h->value.data, version->data, version->len) != 0)
    {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_HEADER_MISMATCH,
                                 "Header mismatch: MCP-Protocol-Version "
                                 "header value '%V' does not match body "
                                 "value '%V'", &h->value, version);
    }

    if (!ngx_http_reverse_mcp_ep_str_eq(version,
                                        NGX_HTTP_REVERSE_MCP_EP_MODERN))
    {
        return ngx_http_reverse_mcp_ep_unsupported(r, ctx, version);
    }

    if (id == NULL) {
        /* this revision defines no client notifications over HTTP */
        return ngx_http_reverse_mcp_http_send(r, NGX_HTTP_ACCEPTED, NULL,
                                              NULL);
    }

    /* the request metadata headers must match the body */

    h = ngx_http_reverse_mcp_http_header_in(r, "Mcp-Method", 10);

    if (h == NULL) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_HEADER_MISMATCH,
                                 "Header mismatch: the Mcp-Method header is "
                                 "required");
    }

    if (h->value.len != method->len
        || ngx_strncmp(h->value.data, method->data, method->len) != 0)
    {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_HEADER_MISMATCH,
                                 "Header mismatch: Mcp-Method header value "
                                 "'%V' does not match body value '%V'",
                                 &h->value, method);
    }

    key = NULL;

    if (ngx_http_reverse_mcp_ep_str_eq(method, "tools/call")
        || ngx_http_reverse_mcp_ep_str_eq(method, "prompts/get"))
    {
        key = "name";

    } else if (ngx_http_reverse_mcp_ep_str_eq(method, "resources/read")) {
        key = "uri";
    }

    if (key) {
        h = ngx_http_reverse_mcp_http_header_in(r, "Mcp-Name", 8);

        if (ngx_http_reverse_mcp_json_get_str(params, key, &value)
            != NGX_OK)
        {
            ngx_str_null(&value);
        }

        if (h == NULL && value.data) {
            return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_HEADER_MISMATCH,
                                 "Header mismatch: the Mcp-Name header is "
                                 "required for %V", method);
        }

        if (h) {
            hname = h->value;

            if (value.data == NULL
                || ngx_http_reverse_mcp_ep_name_ok(r->pool, &hname, &value)
                   != NGX_OK)
            {
                return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_BAD_REQUEST,
                                 NGX_HTTP_REVERSE_MCP_HEADER_MISMATCH,
                                 "Header mismatch: Mcp-Name header value "
                                 "'%V' does not match body value of "
                                 "params.%s", &hname, key);
            }
        }
    }

    /* a log level for this request replaces logging/setLevel */

    meta = ngx_http_reverse_mcp_json_get(params, "_meta");

    if (ngx_http_reverse_mcp_json_get_str(meta,
                                     NGX_HTTP_REVERSE_MCP_EP_META "logLevel",
                                     &level_name)
        == NGX_OK)
    {
        level = ngx_http_reverse_mcp_ep_level(&level_name);

        if (level == NGX_ERROR) {
            return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: unknown log level");
        }

        ctx->log_level = level + 1;
    }

    ctx->client_caps = ngx_http_reverse_mcp_client_caps(
                           ngx_http_reverse_mcp_json_get(meta,
                               NGX_HTTP_REVERSE_MCP_EP_META
                               "clientCapabilities"));

    /* the reverse servers speak a legacy revision: not theirs */
    ngx_http_reverse_mcp_ep_strip_meta(params);

    if (ngx_http_reverse_mcp_ep_str_eq(method, "tools/call")
        || ngx_http_reverse_mcp_ep_str_eq(method, "prompts/get")
        || ngx_http_reverse_mcp_ep_str_eq(method, "resources/read"))
    {
        rc = ngx_http_reverse_mcp_ep_rounds(r, ctx, params);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "reverse_mcp: endpoint %V id %V (2026-07-28)", method,
                   &ctx->id);

    if (ngx_http_reverse_mcp_ep_str_eq(method, "server/discover")) {
        return ngx_http_reverse_mcp_ep_discover(r, ctx);
    }

    if (ngx_http_reverse_mcp_ep_str_eq(method, "tools/call")) {
        return ngx_http_reverse_mcp_ep_tools_call(r, ctx, params);
    }

    if (ngx_http_reverse_mcp_ep_str_eq(method, "tools/list")) {
        return ngx_http_reverse_mcp_ep_tools_list(r, ctx, params);
    }

    if (ngx_http_reverse_mcp_ep_str_eq(method, "subscriptions/listen")) {
        return ngx_http_reverse_mcp_ep_subscribe(r, ctx, params);
    }

    /* resources/subscribe and /unsubscribe are gone in this revision */

    for (m = ngx_http_reverse_mcp_ep_methods; m->method.len; m++) {
        if (m->method.len == method->len
            && ngx_strncmp(m->method.data, method->data, method->len) == 0
            && !ngx_http_reverse_mcp_ep_str_eq(method, "resources/subscribe")
            && !ngx_http_reverse_mcp_ep_str_eq(method,
                                               "resources/unsubscribe"))
        {
            return ngx_http_reverse_mcp_ep_forward(r, ctx, m, params);
        }
    }

    /* ping, logging/setLevel, ...: not in this revision */

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "reverse_mcp: endpoint method \"%V\" not supported in "
                  NGX_HTTP_REVERSE_MCP_EP_MODERN, method);

    return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_NOT_FOUND,
                                         NGX_HTTP_REVERSE_MCP_METHOD_NOT_FOUND,
                                         "Method not found: %V", method);
}


/* 400, -32022, with the supported versions and the requested one */
static ngx_int_t
ngx_http_reverse_mcp_ep_unsupported(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *version)
{
    u_char     *p;
    ngx_str_t   body;

    ctx->outcome = "error";

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "reverse_mcp: endpoint request with unsupported protocol "
                  "version \"%V\"", version);

    body.len = sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"error\":{\"code\":,"
                      "\"message\":\"Unsupported protocol version\","
                      "\"data\":{\"supported\":"
                      NGX_HTTP_REVERSE_MCP_EP_ALL_VERSIONS
                      ",\"requested\":}}}")
               + ctx->id.len + NGX_INT_T_LEN
               + ngx_http_reverse_mcp_json_escaped_len(version);

    body.data = ngx_pnalloc(r->pool, body.len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body.data, "{\"jsonrpc\":\"2.0\",\"id\":%V,\"error\":"
                    "{\"code\":%i,\"message\":\"Unsupported protocol "
                    "version\",\"data\":{\"supported\":"
                    NGX_HTTP_REVERSE_MCP_EP_ALL_VERSIONS ",\"requested\":",
                    &ctx->id,
                    (ngx_int_t) NGX_HTTP_REVERSE_MCP_UNSUPPORTED_VERSION);
    p = ngx_http_reverse_mcp_json_escape(p, version);
    p = ngx_cpymem(p, "}}}", 3);

    body.len = p - body.data;

    return ngx_http_reverse_mcp_http_send(r, NGX_HTTP_BAD_REQUEST, NULL,
                                          &body);
}


/*
 * The text a request metadata header (Mcp-Name, Mcp-Param-*) stands for:
 * plain visible ASCII (and inner spaces and tabs), or
 * "=?base64?<base64 of the UTF-8 value>?=" decoded into the pool;
 * NGX_DECLINED when it is neither.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_header_text(ngx_pool_t *pool, ngx_str_t *header,
    ngx_str_t *text)
{
    ngx_str_t   src;
    ngx_uint_t  i;

    if (header->len >= 9 + 2
        && ngx_strncmp(header->data, "=?base64?", 9) == 0
        && ngx_strncmp(header->data + header->len - 2, "?=", 2) == 0)
    {
        src.data = header->data + 9;
        src.len = header->len - 11;

        text->data = ngx_pnalloc(pool, ngx_base64_decoded_length(src.len)
                                       + 1);
        if (text->data == NULL) {
            return NGX_ERROR;
        }

        if (ngx_decode_base64(text, &src) != NGX_OK) {
            return NGX_DECLINED;
        }

        return NGX_OK;
    }

    for (i = 0; i < header->len; i++) {
        if (header->data[i] != '\t'
            && (header->data[i] < 0x20 || header->data[i] > 0x7e))
        {
            return NGX_DECLINED;
        }
    }

    *text = *header;

    return NGX_OK;
}


/* an Mcp-Name header against the body's value */
static ngx_int_t
ngx_http_reverse_mcp_ep_name_ok(ngx_pool_t *pool, ngx_str_t *header,
    ngx_str_t *body)
{
    ngx_str_t  text;

    if (ngx_http_reverse_mcp_ep_header_text(pool, header, &text) != NGX_OK
        || text.len != body->len
        || ngx_memcmp(text.data, body->data, body->len) != 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * 2026-07-28 tools/call: the Mcp-Param-<name> headers of the tool's
 * x-mcp-header parameters (ngx_http_reverse_mcp_param_headers) against
 * the arguments: a value in the body needs its header, a header needs
 * its value, and they must be equal (integers compared as numbers).
 * NGX_OK; NGX_DECLINED with *mismatch (for a 400 with -32020);
 * NGX_ERROR.  Mcp-Param-* headers the tool does not declare are ignored.  The values reach the reverse server in the arguments (a
 * WebSocket carries no headers); nothing else of the request does.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_param_check(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *server, ngx_str_t *tool,
    yajl_val params, ngx_str_t *mismatch)
{
    u_char                        *p, *last, msg[512];
    char                           err[128];
    char                          *end = NULL;
    double                         hd;
    yajl_val                       def, v;
    ngx_int_t                      rc;
    ngx_str_t                      json, hname, text, body, m;
    ngx_uint_t                     i, d, n;
    const char                    *e;
    ngx_table_elt_t               *h;
    ngx_http_reverse_mcp_param_t   hp[NGX_HTTP_REVERSE_MCP_PARAM_MAX];

    rc = ngx_http_reverse_mcp_registry_tool(ctx->zone, r->pool, &ctx->agent,
                                            server, tool, &json);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    /* gone meanwhile (the call says so), or no header parameters */
    if (rc != NGX_OK
        || ngx_strnstr(json.data, "\"x-mcp-header\"", json.len) == NULL)
    {
        return NGX_OK;
    }

    def = ngx_http_reverse_mcp_json_parse(json.data, json.len, err,
                                          sizeof(err));
    if (def == NULL) {
        return NGX_ERROR;
    }

    /* checked when the server listed the tool */
    if (ngx_http_reverse_mcp_param_headers(
            ngx_http_reverse_mcp_json_get(def, "inputSchema"), hp, &n, &e)
        != NGX_OK)
    {
        n = 0;
    }

    last = msg + sizeof(msg);
    p = NULL;

    for (i = 0; i < n && p == NULL; i++) {

        v = ngx_http_reverse_mcp_json_get(params, "arguments");

        for (d = 0; d < hp[i].depth; d++) {
            v = ngx_http_reverse_mcp_json_get(v, hp[i].path[d]);
        }

        hname.len = sizeof("Mcp-Param-") - 1 + hp[i].name.len;
        hname.data = ngx_pnalloc(r->pool, hname.len);
        if (hname.data == NULL) {
            yajl_tree_free(def);
            return NGX_ERROR;
        }

        ngx_memcpy(ngx_cpymem(hname.data, "Mcp-Param-", 10), hp[i].name.data,
                   hp[i].name.len);

        h = ngx_http_reverse_mcp_http_header_in(r, (char *) hname.data,
                                                hname.len);

        if (v == NULL || YAJL_IS_NULL(v)) {
            if (h) {
                p = ngx_slprintf(msg, last, "Header mismatch: %V is sent "
                                 "but the arguments have no value for it",
                                 &hname);
            }

            continue;
        }

        if (h == NULL) {
            p = ngx_slprintf(msg, last, "Header mismatch: the %V header is "
                             "required (the arguments have its value)",
                             &hname);
            continue;
        }

        rc = ngx_http_reverse_mcp_ep_header_text(r->pool, &h->value, &text);

        if (rc == NGX_ERROR) {
            yajl_tree_free(def);
            return NGX_ERROR;
        }

        if (rc != NGX_OK) {
            p = ngx_slprintf(msg, last, "Header mismatch: %V header value "
                             "has invalid characters", &hname);
            continue;
        }

        if (YAJL_IS_NUMBER(v)) {
            /* compared as numbers: "42" and 42.0 are equal */
            body.data = ngx_pnalloc(r->pool, text.len + 1);
            if (body.data == NULL) {
                yajl_tree_free(def);
                return NGX_ERROR;
            }

            *ngx_cpymem(body.data, text.data, text.len) = '\0';

            for (d = 0; d < text.len; d++) {
                if (ngx_strchr("+-.0123456789eE", text.data[d]) == NULL
                    || text.data[d] == '\0')
                {
                    break;
                }
            }

            if (d < text.len) {
                text.len = 0;              /* not a number: a mismatch */
            }

            if (text.len) {
                errno = 0;
                hd = strtod((char *) body.data, &end);

                if (errno == 0
                    && end == (char *) body.data + text.len
                    && hd == YAJL_GET_DOUBLE(v))
                {
                    continue;
                }
            }

        } else if (ngx_http_reverse_mcp_ep_param_value(r->pool, v, &body)
                   == NGX_OK
                   && body.len == text.len
                   && ngx_memcmp(body.data, text.data, text.len) == 0)
        {
            continue;
        }

        m = h->value;

        p = ngx_slprintf(msg, last, "Header mismatch: %V header value '%V' "
                         "does not match the body value", &hname, &m);
    }

    yajl_tree_free(def);

    if (p == NULL) {
        return NGX_OK;
    }

    mismatch->len = p - msg;
    mismatch->data = ngx_pnalloc(r->pool, mismatch->len);
    if (mismatch->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(mismatch->data, msg, mismatch->len);

    return NGX_DECLINED;
}


/* a string or boolean argument as its header text */
static ngx_int_t
ngx_http_reverse_mcp_ep_param_value(ngx_pool_t *pool, yajl_val v,
    ngx_str_t *text)
{
    if (YAJL_IS_STRING(v)) {
        text->data = (u_char *) v->u.string;
        text->len = ngx_strlen(v->u.string);
        return NGX_OK;
    }

    if (YAJL_IS_TRUE(v)) {
        ngx_str_set(text, "true");
        return NGX_OK;
    }

    if (YAJL_IS_FALSE(v)) {
        ngx_str_set(text, "false");
        return NGX_OK;
    }

    /* an object or array cannot be mirrored */
    return NGX_DECLINED;
}


/* params._meta without the io.modelcontextprotocol/ keys */
static void
ngx_http_reverse_mcp_ep_strip_meta(yajl_val params)
{
    size_t    i, n;
    yajl_val  meta;

    meta = ngx_http_reverse_mcp_json_get(params, "_meta");

    if (meta == NULL || !YAJL_IS_OBJECT(meta)) {
        return;
    }

    n = 0;

    for (i = 0; i < meta->u.object.len; i++) {
        if (ngx_strncmp(meta->u.object.keys[i], NGX_HTTP_REVERSE_MCP_EP_META,
                        sizeof(NGX_HTTP_REVERSE_MCP_EP_META) - 1)
            == 0)
        {
            free((char *) meta->u.object.keys[i]);
            yajl_tree_free(meta->u.object.values[i]);
            continue;
        }

        meta->u.object.keys[n] = meta->u.object.keys[i];
        meta->u.object.values[n] = meta->u.object.values[i];
        n++;
    }

    meta->u.object.len = n;

    if (n) {
        return;
    }

    /* nothing left: no _meta at all, as a legacy client sends it */

    ngx_http_reverse_mcp_ep_remove_member(params, meta);
}


/* server/discover: versions, capabilities, instructions */
static ngx_int_t
ngx_http_reverse_mcp_ep_discover(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   instr, caps, result;

    if (ngx_http_reverse_mcp_ep_instructions(r, ctx, &instr) != NGX_OK
        || ngx_http_reverse_mcp_ep_init_caps(r, ctx, &caps) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"supportedVersions\":" NGX_HTTP_REVERSE_MCP_EP_ALL_VERSIONS
                 ",\"capabilities\":{\"tools\":{\"listChanged\":true},"
                 "\"logging\":{}},\"instructions\":}")
          + caps.len + ngx_http_reverse_mcp_json_escaped_len(&instr);

    result.data = ngx_pnalloc(r->pool, len);
    if (result.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(result.data, "{\"supportedVersions\":"
                    NGX_HTTP_REVERSE_MCP_EP_ALL_VERSIONS
                    ",\"capabilities\":{\"tools\":{\"listChanged\":true},"
                    "\"logging\":{}%V},\"instructions\":", &caps);
    p = ngx_http_reverse_mcp_json_escape(p, &instr);
    *p++ = '}';

    result.len = p - result.data;

    return ngx_http_reverse_mcp_ep_reply(r, ctx, 0, &result);
}


/*
 * subscriptions/listen: a long-lived response stream, first
 * notifications/subscriptions/acknowledged with what it will carry (of
 * toolsListChanged, promptsListChanged and resourcesListChanged, those
 * asked for; resourceSubscriptions are not offered), then
 * notifications/{tools,prompts,resources}/list_changed when the agent's
 * lists change in the registry (a server comes, goes, re-lists its tools
 * or says its prompts or resources changed); it ends when the client
 * closes it, or with its result when the worker shuts down.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_subscribe(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, yajl_val params)
{
    u_char      *p, *q, key[sizeof("resourcesListChanged")];
    size_t       len;
    yajl_val     filter, v;
    ngx_int_t    rc;
    ngx_str_t    ack;
    ngx_uint_t   i;

    filter = ngx_http_reverse_mcp_json_get(params, "notifications");

    if (filter == NULL || !YAJL_IS_OBJECT(filter)) {
        return ngx_http_reverse_mcp_ep_error(r, ctx, NGX_HTTP_OK,
                                 NGX_HTTP_REVERSE_MCP_INVALID_PARAMS,
                                 "Invalid params: \"notifications\" must be "
                                 "an object");
    }

    if (!ctx->accept_sse) {
        return ngx_http_reverse_mcp_ep_error(r, ctx,
                                 NGX_HTTP_REVERSE_MCP_NOT_ACCEPTABLE,
                                 NGX_HTTP_REVERSE_MCP_BAD_REQUEST,
                                 "Not Acceptable: subscriptions/listen needs "
                                 "text/event-stream");
    }

    /* the ack says which of the wanted ones this stream carries: all */

    len = sizeof("{\"jsonrpc\":\"2.0\",\"method\":"
                 "\"notifications/subscriptions/acknowledged\",\"params\":"
                 "{\"_meta\":{\"" NGX_HTTP_REVERSE_MCP_EP_META
                 "subscriptionId\":},\"notifications\":{}}}")
          + ctx->id.len
          + NGX_HTTP_REVERSE_MCP_LISTS
            * sizeof("\"resourcesListChanged\":true,");

    ack.data = ngx_pnalloc(r->pool, len);
    if (ack.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(ack.data, "{\"jsonrpc\":\"2.0\",\"method\":"
                    "\"notifications/subscriptions/acknowledged\",\"params\":"
                    "{\"_meta\":{\"" NGX_HTTP_REVERSE_MCP_EP_META
                    "subscriptionId\":%V},\"notifications\":{", &ctx->id);

    ctx->subs_lists = 0;

    for (i = 0; i < NGX_HTTP_REVERSE_MCP_LISTS; i++) {
        q = ngx_sprintf(key, "%sListChanged%Z",
                        ngx_http_reverse_mcp_ep_lists[i]);
        v = ngx_http_reverse_mcp_json_get(filter, (char *) key);

        if (v == NULL || !YAJL_IS_TRUE(v)) {
            continue;
        }

        p = ngx_sprintf(p, "%s\"%*s\":true", ctx->subs_lists ? "," : "",
                        (size_t) (q - 1 - key), key);

        ctx->subs_lists |= 1 << i;
    }

    p = ngx_cpymem(p, "}}}", 3);

    ack.len = p - ack.data;

    ctx->sse = 1;

    rc = ngx_http_reverse_mcp_ep_stream(r, ctx);

    if (rc != NGX_OK) {
        return rc == NGX_ERROR ? NGX_HTTP_INTERNAL_SERVER_ERROR : rc;
    }

    if (ngx_http_reverse_mcp_http_sse_event(r, "message", &ack, 0)
        == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "reverse_mcp: subscription %V (lists: %ui)", &ctx->id,
                   (ngx_uint_t) ctx->subs_lists);

    /* the body handler's reference: the stream finalizes */
    return NGX_DONE;
}


/* whether a JSON object text has a top-level member key */
static ngx_int_t
ngx_http_reverse_mcp_ep_has_key(ngx_str_t *json, const char *key)
{
    u_char     quoted[64], *p;
    char       err[64];
    yajl_val   v;
    ngx_int_t  found;

    p = ngx_snprintf(quoted, sizeof(quoted) - 1, "\"%s\"", key);
    *p = '\0';

    if (ngx_strnstr(json->data, (char *) quoted, json->len) == NULL) {
        return 0;
    }

    v = ngx_http_reverse_mcp_json_parse(json->data, json->len, err,
                                        sizeof(err));
    if (v == NULL) {
        return 0;
    }

    found = (ngx_http_reverse_mcp_json_get(v, key) != NULL);

    yajl_tree_free(v);

    return found;
}


/*
 * A result in this revision: "resultType":"complete" (the reverse
 * servers' legacy results have none), ttlMs and cacheScope on the
 * cacheable ones (the lists, resources/read, server/discover), and the
 * gateway in _meta (when the result has no _meta of its own).
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_modern_result(ngx_http_request_t *r,
    ngx_http_reverse_mcp_ep_ctx_t *ctx, ngx_str_t *value, ngx_str_t *out)
{
    u_char      *p, *s, *end, *q;
    size_t       len;
    ngx_uint_t   type, cache, meta, empty, i;

    static const char  *cacheable[] = {
        "tools/list", "prompts/list", "resources/list",
        "resources/templates/list", "resources/read", "server/discover",
        NULL
    };

    *out = *value;

    s = value->data;
    end = s + value->len;

    while (s < end && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
    }

    if (s == end || *s != '{') {
        return NGX_OK;
    }

    s++;

    for (q = s; q < end
                && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n');
         q++)
    { /* void */ }

    empty = (q < end && *q == '}');

    cache = 0;

    for (i = 0; cacheable[i]; i++) {
        if (ngx_http_reverse_mcp_ep_str_eq(&ctx->method, cacheable[i])) {
            cache = 1;
            break;
        }
    }

    type = !ngx_http_reverse_mcp_ep_has_key(value, "resultType");
    meta = !ngx_http_reverse_mcp_ep_has_key(value, "_meta");

    if (cache) {
        cache = !ngx_http_reverse_mcp_ep_has_key(value, "ttlMs");
    }

    if (!type && !cache && !meta) {
        return NGX_OK;
    }

    len = value->len + sizeof("\"resultType\":\"complete\",") - 1
          + sizeof("\"ttlMs\":,\"cacheScope\":\"private\",") - 1
          + NGX_INT_T_LEN
          + sizeof("\"_meta\":{\"" NGX_HTTP_REVERSE_MCP_EP_META
                   "serverInfo\":{\"name\":\"ngx_http_reverse_mcp_module\","
                   "\"version\":\"" NGX_HTTP_REVERSE_MCP_VERSION "\"}},") - 1;

    out->data = ngx_pnalloc(r->pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(out->data, value->data, s - value->data);

    if (type) {
        p = ngx_cpymem(p, "\"resultType\":\"complete\",", 24);
    }

    if (cache) {
        p = ngx_sprintf(p, "\"ttlMs\":%d,\"cacheScope\":\"private\",",
                        NGX_HTTP_REVERSE_MCP_EP_TTL_MS);
    }

    if (meta) {
        p = ngx_cpymem(p, "\"_meta\":{\"" NGX_HTTP_REVERSE_MCP_EP_META
                       "serverInfo\":{\"name\":\"ngx_http_reverse_mcp_module\","
                       "\"version\":\"" NGX_HTTP_REVERSE_MCP_VERSION "\"}},",
                       sizeof("\"_meta\":{\"" NGX_HTTP_REVERSE_MCP_EP_META
                       "serverInfo\":{\"name\":\"ngx_http_reverse_mcp_module\","
                       "\"version\":\"" NGX_HTTP_REVERSE_MCP_VERSION "\"}},")
                       - 1);
    }

    if (empty) {
        p--;   /* no member follows: drop the last comma */
    }

    p = ngx_cpymem(p, s, end - s);

    out->len = p - out->data;

    return NGX_OK;
}


/* access log variables */


typedef enum {
    ngx_http_reverse_mcp_var_agent = 0,
    ngx_http_reverse_mcp_var_server,
    ngx_http_reverse_mcp_var_tool,
    ngx_http_reverse_mcp_var_method,
    ngx_http_reverse_mcp_var_outcome,
    ngx_http_reverse_mcp_var_call_time,
    ngx_http_reverse_mcp_var_owner_pid
} ngx_http_reverse_mcp_var_e;


static ngx_int_t
ngx_http_reverse_mcp_ep_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                           *p;
    ngx_str_t                         s;
    ngx_http_reverse_mcp_ep_ctx_t    *ctx;
    ngx_http_reverse_mcp_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_reverse_mcp_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_reverse_mcp_module);

    /* only the endpoint's requests carry an endpoint context */
    if (lcf->endpoint == NULL || ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_str_null(&s);

    switch (data) {

    case ngx_http_reverse_mcp_var_agent:
        s = ctx->agent;
        break;

    case ngx_http_reverse_mcp_var_server:
        s = ctx->call_server.len ? ctx->call_server : ctx->server;
        break;

    case ngx_http_reverse_mcp_var_tool:
        s = ctx->tool;
        break;

    case ngx_http_reverse_mcp_var_method:
        s = ctx->method;
        break;

    case ngx_http_reverse_mcp_var_outcome:
        if (ctx->outcome) {
            s.data = (u_char *) ctx->outcome;
            s.len = ngx_strlen(ctx->outcome);
        }
        break;

    case ngx_http_reverse_mcp_var_call_time:
        if (!ctx->call_timed) {
            break;
        }

        p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 4);
        if (p == NULL) {
            return NGX_ERROR;
        }

        s.data = p;
        s.len = ngx_sprintf(p, "%T.%03M", (time_t) ctx->call_time / 1000,
                            ctx->call_time % 1000) - p;
        break;

    default: /* owner pid */
        if (ctx->call.owner_pid == 0) {
            break;
        }

        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        s.data = p;
        s.len = ngx_sprintf(p, "%P", ctx->call.owner_pid) - p;
        break;
    }

    if (s.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = s.data;

    return NGX_OK;
}


ngx_int_t
ngx_http_reverse_mcp_endpoint_variables(ngx_conf_t *cf)
{
    ngx_uint_t            i;
    ngx_http_variable_t  *var;

    static ngx_str_t  names[] = {
        ngx_string("reverse_mcp_agent"),
        ngx_string("reverse_mcp_server"),
        ngx_string("reverse_mcp_tool"),
        ngx_string("reverse_mcp_method"),
        ngx_string("reverse_mcp_outcome"),
        ngx_string("reverse_mcp_call_time"),
        ngx_string("reverse_mcp_owner_pid")
    };

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        var = ngx_http_add_variable(cf, &names[i], NGX_HTTP_VAR_NOCACHEABLE);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = ngx_http_reverse_mcp_ep_variable;
        var->data = i;
    }

    return NGX_OK;
}


/*
 * reverse_mcp_endpoint_token: the caller's "Authorization: Bearer" must be
 * one of the configured tokens (SHA-256 digests, compared in constant time
 * against every one).  The header is never forwarded anywhere.
 */
static ngx_int_t
ngx_http_reverse_mcp_ep_token_ok(ngx_http_request_t *r, ngx_array_t *tokens,
    const char **reason)
{
    u_char           digest[32], *d;
    ngx_str_t        token;
    ngx_uint_t       i, match;
    ngx_table_elt_t *h;

    h = r->headers_in.authorization;

    if (h == NULL) {
        *reason = "no Authorization header";
        return NGX_DECLINED;
    }

    if (h->value.len < 8
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) != 0)
    {
        *reason = "the Authorization header is not \"Bearer <token>\"";
        return NGX_DECLINED;
    }

    token.data = h->value.data + 7;
    token.len = h->value.len - 7;

    while (token.len && token.data[0] == ' ') {
        token.data++;
        token.len--;
    }

    (void) SHA256(token.data, token.len, digest);

    d = tokens->elts;
    match = 0;

    for (i = 0; i < tokens->nelts; i++) {
        match |= (CRYPTO_memcmp(digest, d + 32 * i, 32) == 0);
    }

    if (!match) {
        *reason = "wrong token";
        return NGX_DECLINED;
    }

    return NGX_OK;
}
