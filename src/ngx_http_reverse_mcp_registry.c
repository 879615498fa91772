/*
 * The shared-memory registry of connected reverse MCP servers.
 *
 * Layout: one root (shpool->data) with an rbtree of agents; each agent has
 * an rbtree of servers.  A server entry is ONE slab allocation: the fixed
 * part, then its tool index (sorted by name, for binary search) and the
 * bytes of its name, protocol version, serverInfo, capabilities and tool
 * JSON.  Updating a tool list allocates a new entry, links it, then frees
 * the old one, so a failed allocation never loses the live entry.
 *
 * Only shpool->mutex is taken; nothing slow (parsing, I/O, logging storms)
 * happens while it is held.
 */

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_registry.h"
#include "ngx_http_reverse_mcp_json.h"
#include "ngx_http_reverse_mcp_names.h"

#include <signal.h>


typedef struct {
    u_char                    *name;
    size_t                     name_len;
    u_char                    *json;
    size_t                     json_len;
} ngx_http_reverse_mcp_shm_tool_t;


typedef struct {
    ngx_str_node_t             sn;          /* key: server name */
    uint64_t                   conn_id;
    ngx_pid_t                  owner_pid;
    ngx_int_t                  owner_slot;
    time_t                     connected_at;
    time_t                     updated_at;
    ngx_uint_t                 ntools;
    ngx_uint_t                 tools_rejected;
    ngx_uint_t                 relists;
    ngx_str_t                  protocol_version;
    ngx_str_t                  server_info;
    ngx_str_t                  capabilities;
    size_t                     tools_bytes;
    ngx_http_reverse_mcp_shm_tool_t  *tools;
} ngx_http_reverse_mcp_shm_server_t;


typedef struct {
    ngx_str_node_t             sn;          /* key: agent name */
    ngx_rbtree_t               servers;
    ngx_rbtree_node_t          sentinel;
    ngx_uint_t                 nservers;
    ngx_uint_t                 ntools;
    ngx_uint_t                 generation;
    ngx_uint_t                 gens[NGX_HTTP_REVERSE_MCP_LISTS];
                                            /* prompts, resources: their
                                               lists changed */
} ngx_http_reverse_mcp_shm_agent_t;


typedef struct {
    ngx_pid_t                  pid;
    ngx_atomic_t               kicks;
} ngx_http_reverse_mcp_shm_worker_t;


typedef struct {
    ngx_rbtree_t               agents;
    ngx_rbtree_node_t          sentinel;
    uint64_t                   next_conn_id;
    ngx_uint_t                 generation;     /* bumped on reload */
    void                      *sessions;       /* the endpoint's root */
    ngx_http_reverse_mcp_stats_t       stats;
    ngx_http_reverse_mcp_shm_worker_t  workers[NGX_MAX_PROCESSES];
} ngx_http_reverse_mcp_shm_t;


typedef struct {
    ngx_http_reverse_mcp_shm_t *sh;
    ngx_slab_pool_t            *shpool;
} ngx_http_reverse_mcp_zone_ctx_t;


/* a growing output buffer for rendering */
typedef struct {
    ngx_pool_t                *pool;
    u_char                    *start;
    u_char                    *pos;
    u_char                    *end;
    ngx_uint_t                 failed;
} ngx_http_reverse_mcp_out_t;


static ngx_http_reverse_mcp_shm_agent_t *ngx_http_reverse_mcp_agent_lookup(
    ngx_http_reverse_mcp_zone_ctx_t *ctx, ngx_str_t *name, ngx_uint_t create);
static ngx_http_reverse_mcp_shm_server_t *ngx_http_reverse_mcp_server_lookup(
    ngx_http_reverse_mcp_shm_agent_t *agent, ngx_str_t *name);
static void ngx_http_reverse_mcp_server_unlink(
    ngx_http_reverse_mcp_zone_ctx_t *ctx,
    ngx_http_reverse_mcp_shm_agent_t *agent,
    ngx_http_reverse_mcp_shm_server_t *srv);
static ngx_int_t ngx_http_reverse_mcp_tool_cmp(const void *a, const void *b);
static u_char *ngx_http_reverse_mcp_copy(u_char *p, ngx_str_t *s);
static void ngx_http_reverse_mcp_kick(ngx_http_reverse_mcp_zone_ctx_t *ctx,
    ngx_http_reverse_mcp_shm_server_t *srv);
static ngx_uint_t ngx_http_reverse_mcp_purge_locked(
    ngx_http_reverse_mcp_zone_ctx_t *ctx, ngx_pid_t pid);
static ngx_int_t ngx_http_reverse_mcp_pid_dead(ngx_pid_t pid);
static void ngx_http_reverse_mcp_out(ngx_http_reverse_mcp_out_t *o,
    const void *data, size_t len);
static void ngx_http_reverse_mcp_outf(ngx_http_reverse_mcp_out_t *o,
    const char *fmt, ...);
static void ngx_http_reverse_mcp_out_str(ngx_http_reverse_mcp_out_t *o,
    ngx_str_t *s);
static void ngx_http_reverse_mcp_render_server(ngx_http_reverse_mcp_out_t *o,
    ngx_http_reverse_mcp_shm_server_t *srv);
static int ngx_libc_cdecl ngx_http_reverse_mcp_server_ptr_cmp(const void *a,
    const void *b);
static void ngx_http_reverse_mcp_render_tool(ngx_http_reverse_mcp_out_t *o,
    ngx_str_t *name, ngx_http_reverse_mcp_shm_tool_t *t);
static ngx_int_t ngx_http_reverse_mcp_render_exposed(
    ngx_http_reverse_mcp_out_t *o, ngx_http_reverse_mcp_shm_agent_t *a,
    ngx_str_t *sep, ngx_array_t *dropped);


ngx_int_t
ngx_http_reverse_mcp_registry_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_reverse_mcp_zone_ctx_t  *octx = data;

    size_t                            len;
    ngx_slab_pool_t                  *shpool;
    ngx_http_reverse_mcp_zone_ctx_t  *ctx;

    ctx = zone->data;

    if (octx) {
        /* reload: the zone is reused, keep every live entry */
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        ctx->sh->generation++;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (shpool->data) {
        ctx->sh = shpool->data;
        ctx->shpool = shpool;
        return NGX_OK;
    }

    ctx->shpool = shpool;

    ctx->sh = ngx_slab_calloc(shpool, sizeof(ngx_http_reverse_mcp_shm_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->agents, &ctx->sh->sentinel,
                    ngx_str_rbtree_insert_value);

    ctx->sh->next_conn_id = 1;

    len = sizeof(" in reverse_mcp zone \"\"") + zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in reverse_mcp zone \"%V\"%Z",
                &zone->shm.name);

    /* allocation failures are reported by us, with context */
    shpool->log_nomem = 0;

    return NGX_OK;
}


void
ngx_http_reverse_mcp_registry_worker_start(ngx_shm_zone_t *zone,
    ngx_log_t *log)
{
    ngx_pid_t                         old;
    ngx_uint_t                        n;
    ngx_http_reverse_mcp_zone_ctx_t  *ctx;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    old = ctx->sh->workers[ngx_process_slot].pid;
    ctx->sh->workers[ngx_process_slot].pid = ngx_pid;

    n = 0;

    if (old && old != ngx_pid && ngx_http_reverse_mcp_pid_dead(old)) {
        /* we replace a worker that died in this slot */
        n = ngx_http_reverse_mcp_purge_locked(ctx, old);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (n) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "reverse_mcp: purged %ui server(s) of dead worker %P",
                      n, old);
    }

    (void) ngx_http_reverse_mcp_registry_sweep(zone, log);
}


void
ngx_http_reverse_mcp_registry_worker_stop(ngx_shm_zone_t *zone)
{
    ngx_http_reverse_mcp_zone_ctx_t  *ctx;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (ctx->sh->workers[ngx_process_slot].pid == ngx_pid) {
        ctx->sh->workers[ngx_process_slot].pid = 0;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


ngx_http_reverse_mcp_stats_t *
ngx_http_reverse_mcp_registry_stats(ngx_shm_zone_t *zone)
{
    ngx_http_reverse_mcp_zone_ctx_t  *ctx;

    ctx = zone->data;

    return &ctx->sh->stats;
}


uint64_t
ngx_http_reverse_mcp_registry_next_id(ngx_shm_zone_t *zone)
{
    uint64_t                          id;
    ngx_http_reverse_mcp_zone_ctx_t  *ctx;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);
    id = ctx->sh->next_conn_id++;
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return id;
}


ngx_atomic_uint_t
ngx_http_reverse_mcp_registry_kicks(ngx_shm_zone_t *zone)
{
    ngx_http_reverse_mcp_zone_ctx_t  *ctx;

    ctx = zone->data;

    return ctx->sh->workers[ngx_process_slot].kicks;
}


static ngx_http_reverse_mcp_shm_agent_t *
ngx_http_reverse_mcp_agent_lookup(ngx_http_reverse_mcp_zone_ctx_t *ctx,
    ngx_str_t *name, ngx_uint_t create)
{
    uint32_t                           hash;
    ngx_str_node_t                    *sn;
    ngx_http_reverse_mcp_shm_agent_t  *agent;

    hash = ngx_crc32_short(name->data, name->len);

    sn = ngx_str_rbtree_lookup(&ctx->sh->agents, name, hash);
    if (sn) {
        return (ngx_http_reverse_mcp_shm_agent_t *) sn;
    }

    if (!create) {
        return NULL;
    }

    agent = ngx_slab_calloc_locked(ctx->shpool,
                         sizeof(ngx_http_reverse_mcp_shm_agent_t) + name->len);
    if (agent == NULL) {
        return NULL;
    }

    agent->sn.str.data = (u_char *) agent
                         + sizeof(ngx_http_reverse_mcp_shm_agent_t);
    agent->sn.str.len = name->len;
    ngx_memcpy(agent->sn.str.data, name->data, name->len);
    agent->sn.node.key = hash;

    ngx_rbtree_init(&agent->servers, &agent->sentinel,
                    ngx_str_rbtree_insert_value);

    ngx_rbtree_insert(&ctx->sh->agents, &agent->sn.node);

    return agent;
}


static ngx_http_reverse_mcp_shm_server_t *
ngx_http_reverse_mcp_server_lookup(ngx_http_reverse_mcp_shm_agent_t *agent,
    ngx_str_t *name)
{
    uint32_t  hash;

    hash = ngx_crc32_short(name->data, name->len);

    return (ngx_http_reverse_mcp_shm_server_t *)
               ngx_str_rbtree_lookup(&agent->servers, name, hash);
}


ngx_int_t
ngx_http_reverse_mcp_registry_lookup(ngx_shm_zone_t *zone, ngx_str_t *agent,
    ngx_str_t *server, ngx_uint_t *nservers)
{
    ngx_int_t                          found;
    ngx_http_reverse_mcp_shm_agent_t  *a;
    ngx_http_reverse_mcp_zone_ctx_t   *ctx;

    ctx = zone->data;
    found = 0;
    *nservers = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    a = ngx_http_reverse_mcp_agent_lookup(ctx, agent, 0);

    if (a) {
        *nservers = a->nservers;
        found = ngx_http_reverse_mcp_server_lookup(a, server) != NULL;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return found;
}


ngx_int_t
ngx_http_reverse_mcp_registry_owns(ngx_shm_zone_t *zone, ngx_str_t *agent,
    ngx_str_t *server, uint64_t conn_id)
{
    ngx_int_t                           owns;
    ngx_http_reverse_mcp_shm_agent_t   *a;
    ngx_http_reverse_mcp_zone_ctx_t    *ctx;
    ngx_http_reverse_mcp_shm_server_t  *srv;

    ctx = zone->data;
    owns = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    a = ngx_http_reverse_mcp_agent_lookup(ctx, agent, 0);

    if (a) {
        srv = ngx_http_reverse_mcp_server_lookup(a, server);
        owns = (srv && srv->conn_id == conn_id);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return owns;
}


/* an empty string may have a NULL data pointer: memcpy() must not see it */
static u_char *
ngx_http_reverse_mcp_copy(u_char *p, ngx_str_t *s)
{
    return s->len ? ngx_cpymem(p, s->data, s->len) : p;
}


static ngx_int_t
ngx_http_reverse_mcp_tool_cmp(const void *one, const void *two)
{
    const ngx_http_reverse_mcp_tool_t  *a = one;
    const ngx_http_reverse_mcp_tool_t  *b = two;

    return ngx_memn2cmp(a->name.data, b->name.data, a->name.len, b->name.len);
}


ngx_int_t
ngx_http_reverse_mcp_registry_put(ngx_shm_zone_t *zone,
    ngx_http_reverse_mcp_reg_entry_t *e, ngx_log_t *log, const char **reason)
{
    u_char                             *p;
    size_t                              size;
    uint32_t                            hash;
    ngx_uint_t                          i, ntools, other_tools;
    ngx_http_reverse_mcp_tool_t        *tools;
    ngx_http_reverse_mcp_shm_tool_t    *st;
    ngx_http_reverse_mcp_shm_agent_t   *agent;
    ngx_http_reverse_mcp_zone_ctx_t    *ctx;
    ngx_http_reverse_mcp_shm_server_t  *old, *srv;

    ctx = zone->data;

    ntools = e->tools ? e->tools->nelts : 0;
    tools = e->tools ? e->tools->elts : NULL;

    /* sort outside the lock; names are unique (the connector checked) */
    if (ntools > 1) {
        ngx_sort(tools, ntools, sizeof(ngx_http_reverse_mcp_tool_t),
                 ngx_http_reverse_mcp_tool_cmp);
    }

    size = sizeof(ngx_http_reverse_mcp_shm_server_t)
           + ntools * sizeof(ngx_http_reverse_mcp_shm_tool_t)
           + e->server.len + e->protocol_version.len + e->server_info.len
           + e->capabilities.len;

    for (i = 0; i < ntools; i++) {
        size += tools[i].name.len + tools[i].json.len;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    agent = ngx_http_reverse_mcp_agent_lookup(ctx, &e->agent, 1);
    if (agent == NULL) {
        goto nomem;
    }

    old = ngx_http_reverse_mcp_server_lookup(agent, &e->server);

    if (old && old->conn_id != e->conn_id
        && e->duplicate == NGX_HTTP_REVERSE_MCP_DUP_REJECT)
    {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        *reason = "server name already connected";
        return NGX_DECLINED;
    }

    if (old == NULL && e->max_servers && agent->nservers >= e->max_servers) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        *reason = "agent server limit reached";
        return NGX_BUSY;
    }

    other_tools = agent->ntools - (old ? old->ntools : 0);

    if (e->max_tools && other_tools + ntools > e->max_tools) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        *reason = "agent tool limit reached";
        return NGX_BUSY;
    }

    srv = ngx_slab_alloc_locked(ctx->shpool, size);
    if (srv == NULL) {
        goto nomem;
    }

    ngx_memzero(srv, sizeof(ngx_http_reverse_mcp_shm_server_t));

    srv->conn_id = e->conn_id;
    srv->owner_pid = ngx_pid;
    srv->owner_slot = ngx_process_slot;
    srv->connected_at = e->connected_at;
    srv->updated_at = ngx_time();
    srv->ntools = ntools;
    srv->tools_rejected = e->tools_rejected;

    st = (ngx_http_reverse_mcp_shm_tool_t *) (srv + 1);
    srv->tools = st;
    p = (u_char *) (st + ntools);

    srv->sn.str.data = p;
    srv->sn.str.len = e->server.len;
    p = ngx_http_reverse_mcp_copy(p, &e->server);

    srv->protocol_version.data = p;
    srv->protocol_version.len = e->protocol_version.len;
    p = ngx_http_reverse_mcp_copy(p, &e->protocol_version);

    srv->server_info.data = p;
    srv->server_info.len = e->server_info.len;
    p = ngx_http_reverse_mcp_copy(p, &e->server_info);

    srv->capabilities.data = p;
    srv->capabilities.len = e->capabilities.len;
    p = ngx_http_reverse_mcp_copy(p, &e->capabilities);

    for (i = 0; i < ntools; i++) {
        st[i].name = p;
        st[i].name_len = tools[i].name.len;
        p = ngx_http_reverse_mcp_copy(p, &tools[i].name);

        st[i].json = p;
        st[i].json_len = tools[i].json.len;
        p = ngx_http_reverse_mcp_copy(p, &tools[i].json);

        srv->tools_bytes += tools[i].json.len;
    }

    hash = ngx_crc32_short(e->server.data, e->server.len);
    srv->sn.node.key = hash;

    if (old && old->conn_id == e->conn_id) {
        /* a re-list by the same connection */
        srv->relists = old->relists + 1;
        (void) ngx_atomic_fetch_add(&ctx->sh->stats.relists, 1);

    } else {
        if (old) {
            /* a newer connection replaces the old one */
            ngx_http_reverse_mcp_kick(ctx, old);
            (void) ngx_atomic_fetch_add(&ctx->sh->stats.replaced, 1);
        }

        (void) ngx_atomic_fetch_add(&ctx->sh->stats.registrations, 1);

        /* a new server: its prompts and resources join the aggregate */
        agent->gens[NGX_HTTP_REVERSE_MCP_LIST_PROMPTS]++;
        agent->gens[NGX_HTTP_REVERSE_MCP_LIST_RESOURCES]++;
    }

    if (old) {
        ngx_http_reverse_mcp_server_unlink(ctx, agent, old);
    }

    ngx_rbtree_insert(&agent->servers, &srv->sn.node);
    agent->nservers++;
    agent->ntools += ntools;
    agent->generation++;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;

nomem:

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "reverse_mcp: zone \"%V\" is full: cannot register server "
                  "\"%V\" of agent \"%V\" (%uz bytes, %ui tools)",
                  &zone->shm.name, &e->server, &e->agent, size, ntools);

    *reason = "registry zone is full";

    return NGX_ERROR;
}


static void
ngx_http_reverse_mcp_server_unlink(ngx_http_reverse_mcp_zone_ctx_t *ctx,
    ngx_http_reverse_mcp_shm_agent_t *agent,
    ngx_http_reverse_mcp_shm_server_t *srv)
{
    ngx_rbtree_delete(&agent->servers, &srv->sn.node);

    agent->nservers--;
    agent->ntools -= srv->ntools;
    agent->generation++;

    /* the aggregate's prompts and resources lose the server's */
    agent->gens[NGX_HTTP_REVERSE_MCP_LIST_PROMPTS]++;
    agent->gens[NGX_HTTP_REVERSE_MCP_LIST_RESOURCES]++;

    ngx_slab_free_locked(ctx->shpool, srv);
}


static void
ngx_http_reverse_mcp_kick(ngx_http_reverse_mcp_zone_ctx_t *ctx,
    ngx_http_reverse_mcp_shm_server_t *srv)
{
    ngx_http_reverse_mcp_shm_worker_t  *w;

    if (srv->owner_slot < 0 || srv->owner_slot >= NGX_MAX_PROCESSES) {
        return;
    }

    w = &ctx->sh->workers[srv->owner_slot];

    if (w->pid == srv->owner_pid) {
        (void) ngx_atomic_fetch_add(&w->kicks, 1);
    }
}


ngx_int_t
ngx_http_reverse_mcp_registry_delete(ngx_shm_zone_t *zone, ngx_str_t *agent,
    ngx_str_t *server, uint64_t conn_id)
{
    ngx_int_t                           rc;
    ngx_http_reverse_mcp_shm_agent_t   *a;
    ngx_http_reverse_mcp_zone_ctx_t    *ctx;
    ngx_http_reverse_mcp_shm_server_t  *srv;

    ctx = zone->data;
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    a = ngx_http_reverse_mcp_agent_lookup(ctx, agent, 0);

    if (a) {
        srv = ngx_http_reverse_mcp_server_lookup(a, server);

        if (srv && srv->conn_id == conn_id) {
            ngx_http_reverse_mcp_server_unlink(ctx, a, srv);
            (void) ngx_atomic_fetch_add(&ctx->sh->stats.deregistrations, 1);
            rc = NGX_OK;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


static ngx_int_t
ngx_http_reverse_mcp_pid_dead(ngx_pid_t pid)
{
    if (pid <= 0) {
        return 1;
    }

    /* EPERM means alive (another user); only ESRCH proves death */
    return kill(pid, 0) == -1 && ngx_errno == ESRCH;
}


static ngx_uint_t
ngx_http_reverse_mcp_purge_locked(ngx_http_reverse_mcp_zone_ctx_t *ctx,
    ngx_pid_t pid)
{
    ngx_uint_t                          n;
    ngx_rbtree_node_t                  *an, *node, *next;
    ngx_http_reverse_mcp_shm_agent_t   *agent;
    ngx_http_reverse_mcp_shm_server_t  *srv;

    n = 0;

    if (ctx->sh->agents.root == ctx->sh->agents.sentinel) {
        return 0;
    }

    for (an = ngx_rbtree_min(ctx->sh->agents.root, ctx->sh->agents.sentinel);
         an;
         an = ngx_rbtree_next(&ctx->sh->agents, an))
    {
        agent = (ngx_http_reverse_mcp_shm_agent_t *) an;

        if (agent->servers.root == agent->servers.sentinel) {
            continue;
        }

        node = ngx_rbtree_min(agent->servers.root, agent->servers.sentinel);

        while (node) {
            /* nginx's delete relinks nodes, "next" stays valid */
            next = ngx_rbtree_next(&agent->servers, node);
            srv = (ngx_http_reverse_mcp_shm_server_t *) node;

            if (srv->owner_pid == pid) {
                ngx_http_reverse_mcp_server_unlink(ctx, agent, srv);
                n++;
            }

            node = next;
        }
    }

    (void) ngx_atomic_fetch_add(&ctx->sh->stats.purged, n);

    return n;
}


ngx_uint_t
ngx_http_reverse_mcp_registry_purge_pid(ngx_shm_zone_t *zone, ngx_pid_t pid,
    ngx_log_t *log)
{
    ngx_uint_t                        n;
    ngx_http_reverse_mcp_zone_ctx_t  *ctx;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);
    n = ngx_http_reverse_mcp_purge_locked(ctx, pid);
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return n;
}


ngx_uint_t
ngx_http_reverse_mcp_registry_sweep(ngx_shm_zone_t *zone, ngx_log_t *log)
{
    ngx_uint_t                          i, n, npids, total;
    ngx_pid_t                           pids[64];
    ngx_rbtree_node_t                  *an, *node;
    ngx_http_reverse_mcp_shm_agent_t   *agent;
    ngx_http_reverse_mcp_zone_ctx_t    *ctx;
    ngx_http_reverse_mcp_shm_server_t  *srv;

    ctx = zone->data;
    npids = 0;

    /* collect distinct owner pids under the lock, probe them outside */

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (ctx->sh->agents.root != ctx->sh->agents.sentinel) {

        for (an = ngx_rbtree_min(ctx->sh->agents.root,
                                 ctx->sh->agents.sentinel);
             an && npids < 64;
             an = ngx_rbtree_next(&ctx->sh->agents, an))
        {
            agent = (ngx_http_reverse_mcp_shm_agent_t *) an;

            if (agent->servers.root == agent->servers.sentinel) {
                continue;
            }

            for (node = ngx_rbtree_min(agent->servers.root,
                                       agent->servers.sentinel);
                 node && npids < 64;
                 node = ngx_rbtree_next(&agent->servers, node))
            {
                srv = (ngx_http_reverse_mcp_shm_server_t *) node;

                for (i = 0; i < npids; i++) {
                    if (pids[i] == srv->owner_pid) {
                        break;
                    }
                }

                if (i == npids) {
                    pids[npids++] = srv->owner_pid;
                }
            }
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    total = 0;

    for (i = 0; i < npids; i++) {

        if (pids[i] == ngx_pid || !ngx_http_reverse_mcp_pid_dead(pids[i])) {
            continue;
        }

        n = ngx_http_reverse_mcp_registry_purge_pid(zone, pids[i], log);

        if (n) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "reverse_mcp: purged %ui server(s) of dead "
                          "worker %P", n, pids[i]);
        }

        total += n;
    }

    return total;
}


/* rendering */


static void
ngx_http_reverse_mcp_out(ngx_http_reverse_mcp_out_t *o, const void *data,
    size_t len)
{
    size_t   size, used;
    u_char  *p;

    if (o->failed) {
        return;
    }

    if ((size_t) (o->end - o->pos) < len) {
        used = o->pos - o->start;
        size = 2 * (o->end - o->start) + len;

        p = ngx_pnalloc(o->pool, size);
        if (p == NULL) {
            o->failed = 1;
            return;
        }

        ngx_memcpy(p, o->start, used);
        o->start = p;
        o->pos = p + used;
        o->end = p + size;
    }

    o->pos = ngx_cpymem(o->pos, data, len);
}


static void
ngx_http_reverse_mcp_outf(ngx_http_reverse_mcp_out_t *o, const char *fmt,
    ...)
{
    u_char   buf[256], *p;
    va_list  args;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    ngx_http_reverse_mcp_out(o, buf, p - buf);
}


static void
ngx_http_reverse_mcp_out_str(ngx_http_reverse_mcp_out_t *o, ngx_str_t *s)
{
    u_char  *p;
    size_t   len;

    len = ngx_http_reverse_mcp_json_escaped_len(s);

    p = ngx_pnalloc(o->pool, len);
    if (p == NULL) {
        o->failed = 1;
        return;
    }

    (void) ngx_http_reverse_mcp_json_escape(p, s);

    ngx_http_reverse_mcp_out(o, p, len);
}


static int ngx_libc_cdecl
ngx_http_reverse_mcp_server_ptr_cmp(const void *one, const void *two)
{
    ngx_http_reverse_mcp_shm_server_t  *a, *b;

    a = *(ngx_http_reverse_mcp_shm_server_t **) one;
    b = *(ngx_http_reverse_mcp_shm_server_t **) two;

    return ngx_memn2cmp(a->sn.str.data, b->sn.str.data, a->sn.str.len,
                        b->sn.str.len);
}


static void
ngx_http_reverse_mcp_render_server(ngx_http_reverse_mcp_out_t *o,
    ngx_http_reverse_mcp_shm_server_t *srv)
{
    u_char      iso[sizeof("1970-09-28T12:00:00Z")];
    ngx_tm_t    tm;
    ngx_uint_t  i;

    ngx_gmtime(srv->connected_at, &tm);
    (void) ngx_sprintf(iso, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    ngx_http_reverse_mcp_out(o, "{\"name\":", 8);
    ngx_http_reverse_mcp_out_str(o, &srv->sn.str);
    ngx_http_reverse_mcp_outf(o,
        ",\"connection_id\":%uL,\"owner_pid\":%P,\"connected_at\":\"%*s\","
        "\"connected_since\":%T,\"updated_at\":%T,\"relists\":%ui,"
        "\"tools_count\":%ui,\"tools_rejected\":%ui,\"protocol_version\":",
        srv->conn_id, srv->owner_pid, sizeof(iso) - 1, iso,
        srv->connected_at, srv->updated_at, srv->relists, srv->ntools,
        srv->tools_rejected);

    ngx_http_reverse_mcp_out_str(o, &srv->protocol_version);

    ngx_http_reverse_mcp_out(o, ",\"server_info\":", 15);

    if (srv->server_info.len) {
        ngx_http_reverse_mcp_out(o, srv->server_info.data,
                                 srv->server_info.len);
    } else {
        ngx_http_reverse_mcp_out(o, "null", 4);
    }

    ngx_http_reverse_mcp_out(o, ",\"capabilities\":", 16);

    if (srv->capabilities.len) {
        ngx_http_reverse_mcp_out(o, srv->capabilities.data,
                                 srv->capabilities.len);
    } else {
        ngx_http_reverse_mcp_out(o, "{}", 2);
    }

    ngx_http_reverse_mcp_out(o, ",\"tools\":[", 10);

    for (i = 0; i < srv->ntools; i++) {
        if (i) {
            ngx_http_reverse_mcp_out(o, ",", 1);
        }

        ngx_http_reverse_mcp_render_tool(o, NULL, &srv->tools[i]);
    }

    ngx_http_reverse_mcp_out(o, "]}", 2);
}


ngx_int_t
ngx_http_reverse_mcp_registry_render(ngx_shm_zone_t *zone, ngx_pool_t *pool,
    ngx_array_t *agents, ngx_str_t *filter, ngx_str_t *out)
{
    ngx_uint_t                            i, j, n, first, pages, cap;
    ngx_rbtree_node_t                    *node;
    ngx_http_reverse_mcp_out_t            o;
    ngx_http_reverse_mcp_stats_t         *st;
    ngx_http_reverse_mcp_zone_ctx_t      *ctx;
    ngx_http_reverse_mcp_shm_agent_t     *agent;
    ngx_http_reverse_mcp_shm_server_t   **list;
    ngx_http_reverse_mcp_render_agent_t  *ra;

    ctx = zone->data;
    st = &ctx->sh->stats;

    o.pool = pool;
    o.start = ngx_pnalloc(pool, 4096);
    if (o.start == NULL) {
        return NGX_ERROR;
    }

    o.pos = o.start;
    o.end = o.start + 4096;
    o.failed = 0;

    pages = (ctx->shpool->end - ctx->shpool->start) / ngx_pagesize;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_http_reverse_mcp_outf(&o,
        "{\"module_version\":\"" NGX_HTTP_REVERSE_MCP_VERSION "\","
        "\"nginx_version\":\"" NGINX_VERSION "\",\"pid\":%P,\"time\":%T,"
        "\"zone\":{\"name\":\"%V\",\"size\":%uz,\"pages_total\":%ui,"
        "\"pages_free\":%ui,\"generation\":%ui},",
        ngx_pid, ngx_time(), &zone->shm.name, zone->shm.size, pages,
        ctx->shpool->pfree, ctx->sh->generation);

    ngx_http_reverse_mcp_outf(&o,
        "\"counters\":{\"connections\":%uA,\"handshakes\":%uA,"
        "\"handshakes_refused\":%uA,\"registrations\":%uA,",
        st->connections, st->handshakes, st->handshakes_refused,
        st->registrations);

    ngx_http_reverse_mcp_outf(&o,
        "\"registrations_refused\":%uA,\"replaced\":%uA,\"relists\":%uA,"
        "\"deregistrations\":%uA,\"purged\":%uA,\"messages_in\":%uA,"
        "\"messages_out\":%uA},\"workers\":[",
        st->registrations_refused, st->replaced, st->relists,
        st->deregistrations, st->purged, st->messages_in, st->messages_out);

    first = 1;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        if (ctx->sh->workers[i].pid == 0) {
            continue;
        }

        ngx_http_reverse_mcp_outf(&o, "%s{\"slot\":%ui,\"pid\":%P}",
                                  first ? "" : ",", i,
                                  ctx->sh->workers[i].pid);
        first = 0;
    }

    ngx_http_reverse_mcp_out(&o, "],\"agents\":[", 12);

    ra = agents->elts;
    first = 1;

    for (i = 0; i < agents->nelts; i++) {

        if (filter->len
            && (filter->len != ra[i].name.len
                || ngx_strncmp(filter->data, ra[i].name.data, filter->len)))
        {
            continue;
        }

        agent = ngx_http_reverse_mcp_agent_lookup(ctx, &ra[i].name, 0);

        if (!first) {
            ngx_http_reverse_mcp_out(&o, ",", 1);
        }

        first = 0;

        ngx_http_reverse_mcp_out(&o, "{\"name\":", 8);
        ngx_http_reverse_mcp_out_str(&o, &ra[i].name);
        ngx_http_reverse_mcp_outf(&o,
            ",\"generation\":%ui,\"servers_count\":%ui,\"tools_count\":%ui,"
            "\"max_servers\":%ui,\"max_tools\":%ui,\"servers\":[",
            agent ? agent->generation : 0, agent ? agent->nservers : 0,
            agent ? agent->ntools : 0, ra[i].max_servers, ra[i].max_tools);

        if (agent && agent->nservers) {
            cap = agent->nservers;
            list = ngx_palloc(pool, cap * sizeof(void *));
            if (list == NULL) {
                o.failed = 1;
                break;
            }

            n = 0;

            for (node = ngx_rbtree_min(agent->servers.root,
                                       agent->servers.sentinel);
                 node && n < cap;
                 node = ngx_rbtree_next(&agent->servers, node))
            {
                list[n++] = (ngx_http_reverse_mcp_shm_server_t *) node;
            }

            ngx_qsort(list, n, sizeof(void *),
                      ngx_http_reverse_mcp_server_ptr_cmp);

            for (j = 0; j < n; j++) {
                if (j) {
                    ngx_http_reverse_mcp_out(&o, ",", 1);
                }

                ngx_http_reverse_mcp_render_server(&o, list[j]);
            }
        }

        ngx_http_reverse_mcp_out(&o, "]}", 2);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_http_reverse_mcp_out(&o, "]}\n", 3);

    if (o.failed) {
        return NGX_ERROR;
    }

    out->data = o.start;
    out->len = o.pos - o.start;

    return NGX_OK;
}


/* {"name":<name, or the tool's own>,<members>} */
static void
ngx_http_reverse_mcp_render_tool(ngx_http_reverse_mcp_out_t *o,
    ngx_str_t *name, ngx_http_reverse_mcp_shm_tool_t *t)
{
    ngx_str_t  own;

    if (name == NULL) {
        own.data = t->name;
        own.len = t->name_len;
        name = &own;
    }

    ngx_http_reverse_mcp_out(o, "{\"name\":", 8);
    ngx_http_reverse_mcp_out_str(o, name);

    if (t->json_len) {
        ngx_http_reverse_mcp_out(o, ",", 1);
        ngx_http_reverse_mcp_out(o, t->json, t->json_len);
    }

    ngx_http_reverse_mcp_out(o, "}", 1);
}


/*
 * The tools of every server of an agent under their exposed names
 * (ngx_http_reverse_mcp_names.h), sorted by server then tool; tools whose
 * exposed names collide are all left out and their (server, tool) names
 * copied to dropped (names_entry_t) for the caller to log.  Called with
 * the zone locked.
 */
static ngx_int_t
ngx_http_reverse_mcp_render_exposed(ngx_http_reverse_mcp_out_t *o,
    ngx_http_reverse_mcp_shm_agent_t *a, ngx_str_t *sep,
    ngx_array_t *dropped)
{
    u_char                               *p;
    ngx_str_t                             name;
    ngx_uint_t                            i, j, k, n, ntools, first;
    ngx_rbtree_node_t                    *node;
    ngx_http_reverse_mcp_shm_server_t   **list;
    ngx_http_reverse_mcp_names_entry_t   *entries, **order, *e, *d;

    list = ngx_palloc(o->pool, a->nservers * sizeof(void *));
    if (list == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    ntools = 0;

    for (node = ngx_rbtree_min(a->servers.root, a->servers.sentinel);
         node && n < a->nservers;
         node = ngx_rbtree_next(&a->servers, node))
    {
        list[n] = (ngx_http_reverse_mcp_shm_server_t *) node;
        ntools += list[n++]->ntools;
    }

    if (ntools == 0) {
        return NGX_OK;
    }

    ngx_qsort(list, n, sizeof(void *), ngx_http_reverse_mcp_server_ptr_cmp);

    entries = ngx_palloc(o->pool, ntools * (sizeof(*entries) + sizeof(e)));
    if (entries == NULL) {
        return NGX_ERROR;
    }

    order = (ngx_http_reverse_mcp_names_entry_t **) (entries + ntools);

    k = 0;

    for (j = 0; j < n; j++) {
        for (i = 0; i < list[j]->ntools; i++) {
            e = &entries[k++];
            e->server = list[j]->sn.str.data;
            e->server_len = list[j]->sn.str.len;
            e->tool = list[j]->tools[i].name;
            e->tool_len = list[j]->tools[i].name_len;
        }
    }

    (void) ngx_http_reverse_mcp_names_mark(entries, ntools, sep->data,
                                           sep->len, order);

    first = 1;
    k = 0;

    for (j = 0; j < n; j++) {
        for (i = 0; i < list[j]->ntools; i++) {
            e = &entries[k++];

            if (e->collides) {
                /* copied: the zone is unlocked before the caller logs */
                d = ngx_array_push(dropped);
                p = ngx_pnalloc(o->pool, e->server_len + e->tool_len);

                if (d == NULL || p == NULL) {
                    return NGX_ERROR;
                }

                *d = *e;
                d->server = p;
                d->tool = ngx_cpymem(p, e->server, e->server_len);
                ngx_memcpy(p + e->server_len, e->tool, e->tool_len);
                continue;
            }

            if (!first) {
                ngx_http_reverse_mcp_out(o, ",", 1);
            }

            first = 0;

            name.data = e->name;
            name.len = e->name_len;

            ngx_http_reverse_mcp_render_tool(o, &name, &list[j]->tools[i]);
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_reverse_mcp_registry_tools(ngx_shm_zone_t *zone, ngx_pool_t *pool,
    ngx_str_t *agent, ngx_str_t *server, ngx_str_t *sep, ngx_str_t *out,
    ngx_uint_t *generation, ngx_log_t *log)
{
    ngx_int_t                            rc;
    ngx_uint_t                           i;
    ngx_array_t                          dropped;
    ngx_http_reverse_mcp_out_t           o;
    ngx_http_reverse_mcp_zone_ctx_t     *ctx;
    ngx_http_reverse_mcp_shm_agent_t    *a;
    ngx_http_reverse_mcp_shm_server_t   *srv;
    ngx_http_reverse_mcp_names_entry_t  *d;

    ctx = zone->data;

    if (ngx_array_init(&dropped, pool, 1,
                       sizeof(ngx_http_reverse_mcp_names_entry_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    o.pool = pool;
    o.start = ngx_pnalloc(pool, 4096);
    if (o.start == NULL) {
        return NGX_ERROR;
    }

    o.pos = o.start;
    o.end = o.start + 4096;
    o.failed = 0;

    *generation = 0;
    rc = NGX_OK;

    ngx_http_reverse_mcp_out(&o, "[", 1);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    a = ngx_http_reverse_mcp_agent_lookup(ctx, agent, 0);

    if (a) {
        *generation = a->generation;
    }

    if (server->len) {
        srv = a ? ngx_http_reverse_mcp_server_lookup(a, server) : NULL;

        if (srv == NULL) {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_DECLINED;
        }

        for (i = 0; i < srv->ntools; i++) {
            if (i) {
                ngx_http_reverse_mcp_out(&o, ",", 1);
            }

            ngx_http_reverse_mcp_render_tool(&o, NULL, &srv->tools[i]);
        }

    } else if (a && a->nservers) {
        rc = ngx_http_reverse_mcp_render_exposed(&o, a, sep, &dropped);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    d = dropped.elts;

    for (i = 0; i < dropped.nelts; i++) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "reverse_mcp: tool \"%*s\" of server \"%*s\" of agent "
                      "\"%V\" is left out: its exposed name \"%*s\" is also "
                      "another tool's",
                      d[i].tool_len, d[i].tool, d[i].server_len,
                      d[i].server, agent, d[i].name_len, d[i].name);
    }

    ngx_http_reverse_mcp_out(&o, "]", 1);

    if (rc != NGX_OK || o.failed) {
        return NGX_ERROR;
    }

    out->data = o.start;
    out->len = o.pos - o.start;

    return NGX_OK;
}


/*
 * The (server, tool) pairs of an agent's connected servers, copied to the
 * pool (names_entry_t with server and tool set): for mapping a shortened
 * exposed name back.
 */
ngx_int_t
ngx_http_reverse_mcp_registry_pairs(ngx_shm_zone_t *zone, ngx_pool_t *pool,
    ngx_str_t *agent, ngx_array_t *out)
{
    u_char                              *p;
    ngx_uint_t                           i;
    ngx_rbtree_node_t                   *node;
    ngx_http_reverse_mcp_zone_ctx_t     *ctx;
    ngx_http_reverse_mcp_shm_agent_t    *a;
    ngx_http_reverse_mcp_shm_server_t   *srv;
    ngx_http_reverse_mcp_names_entry_t  *e;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    a = ngx_http_reverse_mcp_agent_lookup(ctx, agent, 0);

    if (a == NULL || a->nservers == 0) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_OK;
    }

    for (node = ngx_rbtree_min(a->servers.root, a->servers.sentinel);
         node;
         node = ngx_rbtree_next(&a->servers, node))
    {
        srv = (ngx_http_reverse_mcp_shm_server_t *) node;

        for (i = 0; i < srv->ntools; i++) {
            e = ngx_array_push(out);
            p = ngx_pnalloc(pool, srv->sn.str.len + srv->tools[i].name_len);

            if (e == NULL || p == NULL) {
                ngx_shmtx_unlock(&ctx->shpool->mutex);
                return NGX_ERROR;
            }

            e->server = p;
            e->server_len = srv->sn.str.len;
            e->tool = ngx_cpymem(p, srv->sn.str.data, srv->sn.str.len);
            e->tool_len = srv->tools[i].name_len;
            ngx_memcpy(p + e->server_len, srv->tools[i].name, e->tool_len);
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}


/* a tool of a server by name (the index is sorted); locked */
static ngx_http_reverse_mcp_shm_tool_t *
ngx_http_reverse_mcp_tool_find(ngx_http_reverse_mcp_shm_server_t *srv,
    ngx_str_t *tool)
{
    ngx_int_t                         cmp;
    ngx_uint_t                        lo, hi, mid;
    ngx_http_reverse_mcp_shm_tool_t  *t;

    lo = 0;
    hi = srv->ntools;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        t = &srv->tools[mid];
        cmp = ngx_memn2cmp(t->name, tool->data, t->name_len, tool->len);

        if (cmp == 0) {
            return t;
        }

        if (cmp > 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_reverse_mcp_registry_resolve(ngx_shm_zone_t *zone, ngx_str_t *agent,
    ngx_str_t *server, ngx_str_t *tool, ngx_pid_t *pid, uint64_t *conn_id)
{
    ngx_int_t                           rc;
    ngx_http_reverse_mcp_shm_agent_t   *a;
    ngx_http_reverse_mcp_zone_ctx_t    *ctx;
    ngx_http_reverse_mcp_shm_server_t  *srv;

    ctx = zone->data;
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    a = ngx_http_reverse_mcp_agent_lookup(ctx, agent, 0);
    srv = a ? ngx_http_reverse_mcp_server_lookup(a, server) : NULL;

    if (srv) {
        *pid = srv->owner_pid;
        *conn_id = srv->conn_id;
        rc = NGX_OK;

        if (tool && ngx_http_reverse_mcp_tool_find(srv, tool) == NULL) {
            rc = NGX_ABORT;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


ngx_int_t
ngx_http_reverse_mcp_registry_tool(ngx_shm_zone_t *zone, ngx_pool_t *pool,
    ngx_str_t *agent, ngx_str_t *server, ngx_str_t *tool, ngx_str_t *json)
{
    ngx_int_t                           rc;
    ngx_http_reverse_mcp_shm_tool_t    *t;
    ngx_http_reverse_mcp_shm_agent_t   *a;
    ngx_http_reverse_mcp_zone_ctx_t    *ctx;
    ngx_http_reverse_mcp_shm_server_t  *srv;

    ctx = zone->data;
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    a = ngx_http_reverse_mcp_agent_lookup(ctx, agent, 0);
    srv = a ? ngx_http_reverse_mcp_server_lookup(a, server) : NULL;
    t = srv ? ngx_http_reverse_mcp_tool_find(srv, tool) : NULL;

    if (t) {
        /* {<members>} */
        json->len = t->json_len + 2;
        json->data = ngx_pnalloc(pool, json->len);
        rc = NGX_ERROR;

        if (json->data) {
            json->data[0] = '{';
            ngx_memcpy(json->data + 1, t->json, t->json_len);
            json->data[json->len - 1] = '}';
            rc = NGX_OK;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


ngx_uint_t
ngx_http_reverse_mcp_registry_generation(ngx_shm_zone_t *zone,
    ngx_str_t *agent)
{
    ngx_uint_t                         gen;
    ngx_http_reverse_mcp_zone_ctx_t   *ctx;
    ngx_http_reverse_mcp_shm_agent_t  *a;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);
    a = ngx_http_reverse_mcp_agent_lookup(ctx, agent, 0);
    gen = a ? a->generation : 0;
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return gen;
}


void
ngx_http_reverse_mcp_registry_list_gens(ngx_shm_zone_t *zone,
    ngx_str_t *agent, ngx_uint_t *gens)
{
    ngx_uint_t                         i;
    ngx_http_reverse_mcp_zone_ctx_t   *ctx;
    ngx_http_reverse_mcp_shm_agent_t  *a;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    a = ngx_http_reverse_mcp_agent_lookup(ctx, agent, 0);

    for (i = 0; i < NGX_HTTP_REVERSE_MCP_LISTS; i++) {
        gens[i] = a ? (i == NGX_HTTP_REVERSE_MCP_LIST_TOOLS ? a->generation
                                                             : a->gens[i])
                    : 0;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


void
ngx_http_reverse_mcp_registry_list_changed(ngx_shm_zone_t *zone,
    ngx_str_t *agent, ngx_str_t *server, uint64_t conn_id, ngx_uint_t list)
{
    ngx_http_reverse_mcp_zone_ctx_t    *ctx;
    ngx_http_reverse_mcp_shm_agent_t   *a;
    ngx_http_reverse_mcp_shm_server_t  *srv;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    a = ngx_http_reverse_mcp_agent_lookup(ctx, agent, 0);
    srv = a ? ngx_http_reverse_mcp_server_lookup(a, server) : NULL;

    /* only the connection that owns the entry speaks for the server */
    if (srv && srv->conn_id == conn_id
        && list > NGX_HTTP_REVERSE_MCP_LIST_TOOLS
        && list < NGX_HTTP_REVERSE_MCP_LISTS)
    {
        a->gens[list]++;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


ngx_slab_pool_t *
ngx_http_reverse_mcp_registry_shpool(ngx_shm_zone_t *zone)
{
    ngx_http_reverse_mcp_zone_ctx_t  *ctx;

    ctx = zone->data;

    return ctx->shpool;
}


void **
ngx_http_reverse_mcp_registry_sessions_root(ngx_shm_zone_t *zone)
{
    ngx_http_reverse_mcp_zone_ctx_t  *ctx;

    ctx = zone->data;

    return &ctx->sh->sessions;
}


ngx_int_t
ngx_http_reverse_mcp_registry_capabilities(ngx_shm_zone_t *zone,
    ngx_pool_t *pool, ngx_str_t *agent, ngx_str_t *server, ngx_str_t *out)
{
    ngx_int_t                           rc;
    ngx_http_reverse_mcp_zone_ctx_t    *ctx;
    ngx_http_reverse_mcp_shm_agent_t   *a;
    ngx_http_reverse_mcp_shm_server_t  *srv;

    ctx = zone->data;
    rc = NGX_DECLINED;

    ngx_str_null(out);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    a = ngx_http_reverse_mcp_agent_lookup(ctx, agent, 0);
    srv = a ? ngx_http_reverse_mcp_server_lookup(a, server) : NULL;

    if (srv) {
        rc = NGX_OK;

        if (srv->capabilities.len) {
            out->data = ngx_pnalloc(pool, srv->capabilities.len);

            if (out->data == NULL) {
                rc = NGX_ERROR;

            } else {
                ngx_memcpy(out->data, srv->capabilities.data,
                           srv->capabilities.len);
                out->len = srv->capabilities.len;
            }
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}
