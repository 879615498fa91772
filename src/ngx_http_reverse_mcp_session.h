/*
 * MCP sessions of the agent-facing endpoint, in the registry's shared
 * zone, so that any worker accepts a session another worker created.
 *
 * Owns: session ids (32 lowercase hex digits from RAND_bytes), the
 * session's agent, negotiated protocol revision, the client's capabilities
 * (what requests of the servers it can be relayed), logging level and idle
 * expiry; the per-agent session count and its cap; and a small ring of
 * cancellations (notifications/cancelled, DELETE) that the worker holding
 * the cancelled call picks up.  Locking: the slab pool's mutex only.
 */

#ifndef _NGX_HTTP_REVERSE_MCP_SESSION_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_SESSION_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN      32
#define NGX_HTTP_REVERSE_MCP_SESSION_VERSION_MAX 16
#define NGX_HTTP_REVERSE_MCP_REQUEST_ID_MAX      64


typedef struct {
    ngx_str_t                  version;     /* points into version_data */
    u_char                     version_data[
                                   NGX_HTTP_REVERSE_MCP_SESSION_VERSION_MAX];
    ngx_uint_t                 log_level;   /* 0: never set (no
                                               logging/setLevel); else 1 +
                                               0 (debug) .. 7 (emergency) */
    ngx_uint_t                 client_caps; /* NGX_HTTP_REVERSE_MCP_RELAY_*
                                               of its initialize */
} ngx_http_reverse_mcp_session_info_t;


/* one cancellation copied out of the ring */
typedef struct {
    u_char                     id[NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN];
    ngx_uint_t                 all;         /* every call of the session */
    size_t                     request_id_len;
    u_char                     request_id[NGX_HTTP_REVERSE_MCP_REQUEST_ID_MAX];
} ngx_http_reverse_mcp_session_cancel_t;


/*
 * A new session of agent with the negotiated version and the client's
 * capabilities (NGX_HTTP_REVERSE_MCP_RELAY_*); its id is written
 * to id (SESSION_ID_LEN bytes).  Returns NGX_OK, NGX_BUSY (the agent has
 * max sessions already, or the zone is short of memory: *reason says
 * which) or NGX_ERROR (no random bytes, or no memory: *reason).
 */
ngx_int_t ngx_http_reverse_mcp_session_create(ngx_shm_zone_t *zone,
    ngx_str_t *agent, ngx_str_t *version, ngx_uint_t client_caps,
    ngx_msec_t timeout,
    ngx_uint_t max, u_char *id, const char **reason);

/*
 * Look a session up for agent and mark it used.  NGX_OK (info filled, may
 * be NULL), NGX_DECLINED (unknown, expired, or another agent's).
 */
ngx_int_t ngx_http_reverse_mcp_session_touch(ngx_shm_zone_t *zone,
    ngx_str_t *id, ngx_str_t *agent,
    ngx_http_reverse_mcp_session_info_t *info);

/* logging/setLevel (level 0..7): NGX_OK or NGX_DECLINED (no session) */
ngx_int_t ngx_http_reverse_mcp_session_set_level(ngx_shm_zone_t *zone,
    ngx_str_t *id, ngx_str_t *agent, ngx_uint_t level);

/* DELETE: NGX_OK or NGX_DECLINED (no such session) */
ngx_int_t ngx_http_reverse_mcp_session_delete(ngx_shm_zone_t *zone,
    ngx_str_t *id, ngx_str_t *agent);

/* sessions of an agent now (expired ones not yet swept included) */
ngx_uint_t ngx_http_reverse_mcp_session_count(ngx_shm_zone_t *zone,
    ngx_str_t *agent);

/*
 * Cancellation across workers: post one (request_id NULL: every call of
 * the session), read the ring's sequence number without the lock, and
 * copy the entries newer than *seen (at most n) into out, advancing
 * *seen.  Returns the number copied.
 */
void ngx_http_reverse_mcp_session_cancel_post(ngx_shm_zone_t *zone,
    ngx_str_t *id, ngx_str_t *request_id);
ngx_atomic_uint_t ngx_http_reverse_mcp_session_cancel_seq(
    ngx_shm_zone_t *zone);
ngx_uint_t ngx_http_reverse_mcp_session_cancels(ngx_shm_zone_t *zone,
    ngx_atomic_uint_t *seen, ngx_http_reverse_mcp_session_cancel_t *out,
    ngx_uint_t n);


#endif /* _NGX_HTTP_REVERSE_MCP_SESSION_H_INCLUDED_ */
