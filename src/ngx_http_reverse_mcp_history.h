/*
 * Conversation history of the chat API in its own shared memory zone
 * ("reverse_mcp_chat_zone"), so that any worker continues a conversation.
 *
 * Owns: one entry per key (the chat code uses "<agent>\0<context id>",
 * so one agent never sees another's), a value blob each (the caller's
 * JSON text), the idle expiry of entries (least recently used first),
 * eviction of the least recently used entries when the zone is full, and
 * a busy mark so one conversation runs one message at a time.  Locking:
 * the slab pool's mutex only.
 */

#ifndef _NGX_HTTP_REVERSE_MCP_HISTORY_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_HISTORY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_REVERSE_MCP_HISTORY_KEY_MAX  256


typedef struct {
    ngx_uint_t                 entries;
    ngx_uint_t                 expired;
    ngx_uint_t                 evicted;
    ngx_uint_t                 refused;     /* no room even after eviction */
} ngx_http_reverse_mcp_history_stats_t;


ngx_int_t ngx_http_reverse_mcp_history_init_zone(ngx_shm_zone_t *zone,
    void *data);

/*
 * Take the entry of key for one message: its value is copied into pool
 * memory (empty for a new conversation) and the entry is busy for at most
 * busy seconds.  NGX_OK, NGX_BUSY (another message holds it), NGX_ERROR
 * (the zone has no room even for the key).
 */
ngx_int_t ngx_http_reverse_mcp_history_acquire(ngx_shm_zone_t *zone,
    ngx_pool_t *pool, ngx_str_t *key, time_t idle, time_t busy,
    ngx_str_t *value);

/*
 * The end of the message: value (may be NULL: keep the old one) becomes
 * the entry's; remove: the entry goes.  NGX_OK or NGX_ERROR (no room for
 * the value even after evicting every idle entry: the old value stays).
 */
ngx_int_t ngx_http_reverse_mcp_history_release(ngx_shm_zone_t *zone,
    ngx_str_t *key, ngx_str_t *value, ngx_uint_t remove, time_t idle,
    ngx_log_t *log);

/*
 * Set the value of key without taking the entry (A2A task records): only
 * when the current value contains expect (NULL: always; a missing entry
 * never matches a non-NULL expect).  NGX_OK, NGX_DECLINED (expect did
 * not match), NGX_ERROR (no room).
 */
ngx_int_t ngx_http_reverse_mcp_history_put(ngx_shm_zone_t *zone,
    ngx_str_t *key, ngx_str_t *value, const char *expect, ngx_log_t *log);

/* a copy of the value without taking the entry: NGX_OK, NGX_DECLINED */
ngx_int_t ngx_http_reverse_mcp_history_get(ngx_shm_zone_t *zone,
    ngx_pool_t *pool, ngx_str_t *key, time_t idle, ngx_str_t *value);

void ngx_http_reverse_mcp_history_stats(ngx_shm_zone_t *zone,
    ngx_http_reverse_mcp_history_stats_t *stats);


#endif /* _NGX_HTTP_REVERSE_MCP_HISTORY_H_INCLUDED_ */
