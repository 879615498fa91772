/*
 * The registry of connected reverse MCP servers in a shared memory zone.
 *
 * Owns: the zone (slab pool, reused across reload), agents -> servers ->
 * tools, owner pids and connection ids, compare-and-delete, purging of
 * dead owners, per-agent generations, counters and the JSON rendering of
 * the whole registry for the status page.  Locking: the slab pool's own
 * mutex only (the master force-unlocks it when a worker dies).
 */

#ifndef _NGX_HTTP_REVERSE_MCP_REGISTRY_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_REGISTRY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* the lists of an agent whose changes are announced */
#define NGX_HTTP_REVERSE_MCP_LIST_TOOLS      0
#define NGX_HTTP_REVERSE_MCP_LIST_PROMPTS    1
#define NGX_HTTP_REVERSE_MCP_LIST_RESOURCES  2
#define NGX_HTTP_REVERSE_MCP_LISTS           3


typedef struct {
    ngx_str_t                  name;
    ngx_str_t                  json;       /* the tool object's members but
                                              "name", serialised without
                                              braces (may be empty) */
} ngx_http_reverse_mcp_tool_t;


/* what a connection registers (copied into the zone) */
typedef struct {
    ngx_str_t                  agent;
    ngx_str_t                  server;
    uint64_t                   conn_id;
    time_t                     connected_at;
    ngx_str_t                  protocol_version;
    ngx_str_t                  server_info;    /* JSON object, or empty */
    ngx_str_t                  capabilities;   /* JSON object, or empty */
    ngx_array_t               *tools;          /* tool_t */
    ngx_uint_t                 tools_rejected;
    ngx_uint_t                 duplicate;      /* replace or reject */
    ngx_uint_t                 max_servers;
    ngx_uint_t                 max_tools;
} ngx_http_reverse_mcp_reg_entry_t;


typedef struct {
    ngx_atomic_t               handshakes;         /* 101 sent */
    ngx_atomic_t               handshakes_refused; /* HTTP error */
    ngx_atomic_t               registrations;
    ngx_atomic_t               registrations_refused;
    ngx_atomic_t               replaced;
    ngx_atomic_t               relists;
    ngx_atomic_t               deregistrations;
    ngx_atomic_t               purged;
    ngx_atomic_t               connections;        /* open sockets now */
    ngx_atomic_t               messages_in;
    ngx_atomic_t               messages_out;
} ngx_http_reverse_mcp_stats_t;


typedef struct {
    ngx_str_t                  name;
    ngx_uint_t                 max_servers;
    ngx_uint_t                 max_tools;
} ngx_http_reverse_mcp_render_agent_t;


ngx_int_t ngx_http_reverse_mcp_registry_init_zone(ngx_shm_zone_t *zone,
    void *data);

/* per worker: record our pid in our slot, purge dead owners */
void ngx_http_reverse_mcp_registry_worker_start(ngx_shm_zone_t *zone,
    ngx_log_t *log);
/* per worker at exit: drop our slot */
void ngx_http_reverse_mcp_registry_worker_stop(ngx_shm_zone_t *zone);

ngx_http_reverse_mcp_stats_t *ngx_http_reverse_mcp_registry_stats(
    ngx_shm_zone_t *zone);

uint64_t ngx_http_reverse_mcp_registry_next_id(ngx_shm_zone_t *zone);

/* 1 if (agent, server) is registered; *nservers = servers of the agent */
ngx_int_t ngx_http_reverse_mcp_registry_lookup(ngx_shm_zone_t *zone,
    ngx_str_t *agent, ngx_str_t *server, ngx_uint_t *nservers);

/* 1 if (agent, server) is registered with this connection id */
ngx_int_t ngx_http_reverse_mcp_registry_owns(ngx_shm_zone_t *zone,
    ngx_str_t *agent, ngx_str_t *server, uint64_t conn_id);

/*
 * Register or update (same conn_id) a server.  Returns NGX_OK, NGX_DECLINED
 * (name taken and the policy is reject), NGX_BUSY (a limit; *reason says
 * which), NGX_ERROR (zone full: *reason says so).
 */
ngx_int_t ngx_http_reverse_mcp_registry_put(ngx_shm_zone_t *zone,
    ngx_http_reverse_mcp_reg_entry_t *e, ngx_log_t *log,
    const char **reason);

/* compare-and-delete: only if the entry still carries conn_id */
ngx_int_t ngx_http_reverse_mcp_registry_delete(ngx_shm_zone_t *zone,
    ngx_str_t *agent, ngx_str_t *server, uint64_t conn_id);

/* the kick counter of our slot: changes when another worker replaced one
 * of our servers */
ngx_atomic_uint_t ngx_http_reverse_mcp_registry_kicks(ngx_shm_zone_t *zone);

/* purge entries whose owner process is gone; returns the number purged */
ngx_uint_t ngx_http_reverse_mcp_registry_sweep(ngx_shm_zone_t *zone,
    ngx_log_t *log);

/* purge every entry of one owner pid */
ngx_uint_t ngx_http_reverse_mcp_registry_purge_pid(ngx_shm_zone_t *zone,
    ngx_pid_t pid, ngx_log_t *log);

/*
 * The tools of an agent as a JSON array of tool objects, sorted by server
 * then tool name.  server empty: every server, under their exposed names
 * (ngx_http_reverse_mcp_names.h; tools whose exposed names collide are
 * left out and logged at warn); server given: that server only, names
 * unchanged (NGX_DECLINED if it is not connected).  *generation: the
 * agent's tool-set generation.
 */
ngx_int_t ngx_http_reverse_mcp_registry_tools(ngx_shm_zone_t *zone,
    ngx_pool_t *pool, ngx_str_t *agent, ngx_str_t *server, ngx_str_t *sep,
    ngx_str_t *out, ngx_uint_t *generation, ngx_log_t *log);

/*
 * Every (server, tool) pair of the agent's connected servers, appended to
 * out (an array of ngx_http_reverse_mcp_names_entry_t, names copied into
 * pool; exposed names not computed).
 */
ngx_int_t ngx_http_reverse_mcp_registry_pairs(ngx_shm_zone_t *zone,
    ngx_pool_t *pool, ngx_str_t *agent, ngx_array_t *out);

/*
 * Where a tool lives: NGX_OK with the owner pid and connection id,
 * NGX_DECLINED when the server is not connected, NGX_ABORT when it is but
 * has no such tool (tool may be NULL: only the server is looked up).
 */
ngx_int_t ngx_http_reverse_mcp_registry_resolve(ngx_shm_zone_t *zone,
    ngx_str_t *agent, ngx_str_t *server, ngx_str_t *tool, ngx_pid_t *pid,
    uint64_t *conn_id);

/*
 * A tool's definition without its name, as a JSON object copied into the
 * pool: NGX_OK, NGX_DECLINED (no such server or tool), NGX_ERROR.
 */
ngx_int_t ngx_http_reverse_mcp_registry_tool(ngx_shm_zone_t *zone,
    ngx_pool_t *pool, ngx_str_t *agent, ngx_str_t *server, ngx_str_t *tool,
    ngx_str_t *json);

/*
 * The generations of the agent's lists (NGX_HTTP_REVERSE_MCP_LISTS of
 * them, by NGX_HTTP_REVERSE_MCP_LIST_*): tools as below; prompts and
 * resources change when a server comes or goes or says its list changed.
 */
void ngx_http_reverse_mcp_registry_list_gens(ngx_shm_zone_t *zone,
    ngx_str_t *agent, ngx_uint_t *gens);

/* a server's notifications/{prompts,resources}/list_changed */
void ngx_http_reverse_mcp_registry_list_changed(ngx_shm_zone_t *zone,
    ngx_str_t *agent, ngx_str_t *server, uint64_t conn_id, ngx_uint_t list);

/* the agent's tool-set generation (0 if it never had a server) */
ngx_uint_t ngx_http_reverse_mcp_registry_generation(ngx_shm_zone_t *zone,
    ngx_str_t *agent);

/*
 * For other users of the same zone (the endpoint's sessions): the slab
 * pool (lock its mutex around any use) and a root pointer they own,
 * NULL until they set it, kept across reloads with the zone.
 */
ngx_slab_pool_t *ngx_http_reverse_mcp_registry_shpool(ngx_shm_zone_t *zone);
void **ngx_http_reverse_mcp_registry_sessions_root(ngx_shm_zone_t *zone);

/*
 * A server's capabilities as it declared them in initialize (a JSON
 * object copied into pool memory; empty when it declared none): NGX_OK,
 * NGX_DECLINED when the server is not connected, NGX_ERROR (no memory).
 */
ngx_int_t ngx_http_reverse_mcp_registry_capabilities(ngx_shm_zone_t *zone,
    ngx_pool_t *pool, ngx_str_t *agent, ngx_str_t *server, ngx_str_t *out);

/* the registry as JSON (status page); agent filter may be empty */
ngx_int_t ngx_http_reverse_mcp_registry_render(ngx_shm_zone_t *zone,
    ngx_pool_t *pool, ngx_array_t *agents, ngx_str_t *filter,
    ngx_str_t *out);


#endif /* _NGX_HTTP_REVERSE_MCP_REGISTRY_H_INCLUDED_ */
