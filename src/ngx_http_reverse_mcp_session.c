/*
 * MCP endpoint sessions in the registry's shared zone (see
 * ngx_http_reverse_mcp_session.h).
 *
 * Layout: one root (the registry's sessions slot, allocated on first use
 * and kept across reloads with the zone) holding an rbtree of sessions
 * keyed by a CRC32 of the id (ties broken by the id bytes), an LRU queue
 * (most recently used first) for idle expiry, the per-agent session
 * counts and the cancellation ring.  Each session is one small slab
 * allocation.  Expired sessions are removed lazily: the one looked up,
 * and a few from the LRU tail on every lookup and creation.
 *
 * Sessions share the zone with the registry: a new session is refused
 * while less than a quarter of the zone's pages are free, so that an
 * initialize flood cannot keep reverse servers from registering.
 */

#include "ngx_http_reverse_mcp_module.h"
#include "ngx_http_reverse_mcp_registry.h"
#include "ngx_http_reverse_mcp_session.h"

#include <openssl/rand.h>


#define NGX_HTTP_REVERSE_MCP_SESSIONS_MAGIC  0x524d435053455332ULL
#define NGX_HTTP_REVERSE_MCP_CANCEL_RING     64
#define NGX_HTTP_REVERSE_MCP_SWEEP_TOUCH     8
#define NGX_HTTP_REVERSE_MCP_SWEEP_CREATE    64


typedef struct {
    ngx_queue_t                queue;
    ngx_uint_t                 count;
    size_t                     name_len;
    u_char                     name[NGX_HTTP_REVERSE_MCP_NAME_MAX];
} ngx_http_reverse_mcp_sess_agent_t;


typedef struct {
    ngx_rbtree_node_t          node;        /* key: crc32 of id */
    ngx_queue_t                lru;
    ngx_http_reverse_mcp_sess_agent_t  *agent;
    uint64_t                   last_used;   /* ms since the epoch */
    ngx_msec_t                 timeout;
    ngx_uint_t                 log_level;
    ngx_uint_t                 client_caps;
    size_t                     version_len;
    u_char                     version[
                                   NGX_HTTP_REVERSE_MCP_SESSION_VERSION_MAX];
    u_char                     id[NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN];
} ngx_http_reverse_mcp_sess_t;


typedef struct {
    uint64_t                   magic;
    ngx_rbtree_t               rbtree;
    ngx_rbtree_node_t          sentinel;
    ngx_queue_t                lru;
    ngx_queue_t                agents;
    ngx_uint_t                 count;
    ngx_atomic_t               cancel_seq;  /* written under the lock */
    ngx_http_reverse_mcp_session_cancel_t
                               cancels[NGX_HTTP_REVERSE_MCP_CANCEL_RING];
} ngx_http_reverse_mcp_sess_root_t;


static ngx_http_reverse_mcp_sess_root_t *ngx_http_reverse_mcp_sess_root(
    ngx_shm_zone_t *zone, ngx_slab_pool_t *shpool, ngx_uint_t create);
static void ngx_http_reverse_mcp_sess_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_reverse_mcp_sess_t *ngx_http_reverse_mcp_sess_find(
    ngx_http_reverse_mcp_sess_root_t *root, ngx_str_t *id);
static ngx_http_reverse_mcp_sess_agent_t *ngx_http_reverse_mcp_sess_agent(
    ngx_http_reverse_mcp_sess_root_t *root, ngx_slab_pool_t *shpool,
    ngx_str_t *name, ngx_uint_t create);
static void ngx_http_reverse_mcp_sess_free(
    ngx_http_reverse_mcp_sess_root_t *root, ngx_slab_pool_t *shpool,
    ngx_http_reverse_mcp_sess_t *s);
static void ngx_http_reverse_mcp_sess_sweep(
    ngx_http_reverse_mcp_sess_root_t *root, ngx_slab_pool_t *shpool,
    uint64_t now, ngx_uint_t max);
static ngx_int_t ngx_http_reverse_mcp_sess_expired(
    ngx_http_reverse_mcp_sess_t *s, uint64_t now);
static ngx_http_reverse_mcp_sess_t *ngx_http_reverse_mcp_sess_get(
    ngx_http_reverse_mcp_sess_root_t *root, ngx_slab_pool_t *shpool,
    ngx_str_t *id, ngx_str_t *agent, uint64_t now);
static uint64_t ngx_http_reverse_mcp_sess_now(void);


static uint64_t
ngx_http_reverse_mcp_sess_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


/* called with the mutex held */
static ngx_http_reverse_mcp_sess_root_t *
ngx_http_reverse_mcp_sess_root(ngx_shm_zone_t *zone, ngx_slab_pool_t *shpool,
    ngx_uint_t create)
{
    void                              **slot;
    ngx_http_reverse_mcp_sess_root_t   *root;

    slot = ngx_http_reverse_mcp_registry_sessions_root(zone);
    root = *slot;

    if (root && root->magic == NGX_HTTP_REVERSE_MCP_SESSIONS_MAGIC) {
        return root;
    }

    if (!create) {
        return NULL;
    }

    /*
     * no root yet, or one of an incompatible build (a binary upgrade with
     * the same zone): start afresh; the old one is left alone
     */

    root = ngx_slab_calloc_locked(shpool,
                                  sizeof(ngx_http_reverse_mcp_sess_root_t));
    if (root == NULL) {
        return NULL;
    }

    root->magic = NGX_HTTP_REVERSE_MCP_SESSIONS_MAGIC;
    ngx_rbtree_init(&root->rbtree, &root->sentinel,
                    ngx_http_reverse_mcp_sess_insert);
    ngx_queue_init(&root->lru);
    ngx_queue_init(&root->agents);

    *slot = root;

    return root;
}


static void
ngx_http_reverse_mcp_sess_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t            **p;
    ngx_http_reverse_mcp_sess_t   *s, *t;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            s = (ngx_http_reverse_mcp_sess_t *) node;
            t = (ngx_http_reverse_mcp_sess_t *) temp;

            p = (ngx_memcmp(s->id, t->id, NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN)
                 < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_http_reverse_mcp_sess_t *
ngx_http_reverse_mcp_sess_find(ngx_http_reverse_mcp_sess_root_t *root,
    ngx_str_t *id)
{
    ngx_int_t                     rc;
    ngx_uint_t                    key;
    ngx_rbtree_node_t            *node, *sentinel;
    ngx_http_reverse_mcp_sess_t  *s;

    if (id->len != NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN) {
        return NULL;
    }

    key = ngx_crc32_short(id->data, id->len);

    node = root->rbtree.root;
    sentinel = root->rbtree.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        s = (ngx_http_reverse_mcp_sess_t *) node;

        rc = ngx_memcmp(id->data, s->id, NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN);

        if (rc == 0) {
            return s;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_http_reverse_mcp_sess_agent_t *
ngx_http_reverse_mcp_sess_agent(ngx_http_reverse_mcp_sess_root_t *root,
    ngx_slab_pool_t *shpool, ngx_str_t *name, ngx_uint_t create)
{
    ngx_queue_t                        *q;
    ngx_http_reverse_mcp_sess_agent_t  *a;

    if (name->len == 0 || name->len > NGX_HTTP_REVERSE_MCP_NAME_MAX) {
        return NULL;
    }

    for (q = ngx_queue_head(&root->agents);
         q != ngx_queue_sentinel(&root->agents);
         q = ngx_queue_next(q))
    {
        a = ngx_queue_data(q, ngx_http_reverse_mcp_sess_agent_t, queue);

        if (a->name_len == name->len
            && ngx_memcmp(a->name, name->data, name->len) == 0)
        {
            return a;
        }
    }

    if (!create) {
        return NULL;
    }

    /* agents are few and small: their counters are never freed */

    a = ngx_slab_calloc_locked(shpool,
                               sizeof(ngx_http_reverse_mcp_sess_agent_t));
    if (a == NULL) {
        return NULL;
    }

    a->name_len = name->len;
    ngx_memcpy(a->name, name->data, name->len);
    ngx_queue_insert_tail(&root->agents, &a->queue);

    return a;
}


static ngx_int_t
ngx_http_reverse_mcp_sess_expired(ngx_http_reverse_mcp_sess_t *s,
    uint64_t now)
{
    /* a clock that went back does not expire anything */
    return now > s->last_used && now - s->last_used >= s->timeout;
}


static void
ngx_http_reverse_mcp_sess_free(ngx_http_reverse_mcp_sess_root_t *root,
    ngx_slab_pool_t *shpool, ngx_http_reverse_mcp_sess_t *s)
{
    ngx_rbtree_delete(&root->rbtree, &s->node);
    ngx_queue_remove(&s->lru);

    if (s->agent->count) {
        s->agent->count--;
    }

    if (root->count) {
        root->count--;
    }

    ngx_slab_free_locked(shpool, s);
}


/*
 * The LRU tail holds the least recently used sessions; sessions may have
 * different timeouts (set per location), so a live one does not stop the
 * walk: at most max entries are looked at.
 */
static void
ngx_http_reverse_mcp_sess_sweep(ngx_http_reverse_mcp_sess_root_t *root,
    ngx_slab_pool_t *shpool, uint64_t now, ngx_uint_t max)
{
    ngx_queue_t                  *q, *prev;
    ngx_http_reverse_mcp_sess_t  *s;

    q = ngx_queue_last(&root->lru);

    while (max-- && q != ngx_queue_sentinel(&root->lru)) {
        prev = ngx_queue_prev(q);
        s = ngx_queue_data(q, ngx_http_reverse_mcp_sess_t, lru);

        if (ngx_http_reverse_mcp_sess_expired(s, now)) {
            ngx_http_reverse_mcp_sess_free(root, shpool, s);
        }

        q = prev;
    }
}


/* a live session of agent, or NULL (an expired one is freed); locked */
static ngx_http_reverse_mcp_sess_t *
ngx_http_reverse_mcp_sess_get(ngx_http_reverse_mcp_sess_root_t *root,
    ngx_slab_pool_t *shpool, ngx_str_t *id, ngx_str_t *agent, uint64_t now)
{
    ngx_http_reverse_mcp_sess_t  *s;

    s = ngx_http_reverse_mcp_sess_find(root, id);

    if (s == NULL) {
        return NULL;
    }

    if (ngx_http_reverse_mcp_sess_expired(s, now)) {
        ngx_http_reverse_mcp_sess_free(root, shpool, s);
        return NULL;
    }

    if (s->agent->name_len != agent->len
        || ngx_memcmp(s->agent->name, agent->data, agent->len) != 0)
    {
        return NULL;
    }

    return s;
}


ngx_int_t
ngx_http_reverse_mcp_session_create(ngx_shm_zone_t *zone, ngx_str_t *agent,
    ngx_str_t *version, ngx_uint_t client_caps, ngx_msec_t timeout,
    ngx_uint_t max, u_char *id, const char **reason)
{
    u_char                              rnd[NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN
                                            / 2];
    uint64_t                            now;
    ngx_str_t                           sid;
    ngx_uint_t                          pages;
    ngx_slab_pool_t                    *shpool;
    ngx_http_reverse_mcp_sess_t        *s;
    ngx_http_reverse_mcp_sess_root_t   *root;
    ngx_http_reverse_mcp_sess_agent_t  *a;

    if (version->len == 0
        || version->len > NGX_HTTP_REVERSE_MCP_SESSION_VERSION_MAX)
    {
        *reason = "invalid protocol version";
        return NGX_ERROR;
    }

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        *reason = "RAND_bytes() failed";
        return NGX_ERROR;
    }

    ngx_hex_dump(id, rnd, sizeof(rnd));
    ngx_explicit_memzero(rnd, sizeof(rnd));

    sid.data = id;
    sid.len = NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN;

    now = ngx_http_reverse_mcp_sess_now();
    shpool = ngx_http_reverse_mcp_registry_shpool(zone);

    ngx_shmtx_lock(&shpool->mutex);

    root = ngx_http_reverse_mcp_sess_root(zone, shpool, 1);
    if (root == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        *reason = "the zone is full";
        return NGX_ERROR;
    }

    ngx_http_reverse_mcp_sess_sweep(root, shpool, now,
                                    NGX_HTTP_REVERSE_MCP_SWEEP_CREATE);

    a = ngx_http_reverse_mcp_sess_agent(root, shpool, agent, 1);
    if (a == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        *reason = "the zone is full";
        return NGX_ERROR;
    }

    if (a->count >= max) {
        ngx_shmtx_unlock(&shpool->mutex);
        *reason = "the agent has reached reverse_mcp_max_sessions";
        return NGX_BUSY;
    }

    pages = (shpool->end - shpool->start) / ngx_pagesize;

    if (shpool->pfree < pages / 4) {
        ngx_shmtx_unlock(&shpool->mutex);
        *reason = "less than a quarter of the zone is free (kept for the "
                  "registry)";
        return NGX_BUSY;
    }

    /* 128 random bits: a collision means a broken generator */

    if (ngx_http_reverse_mcp_sess_find(root, &sid)) {
        ngx_shmtx_unlock(&shpool->mutex);
        *reason = "session id collision";
        return NGX_ERROR;
    }

    s = ngx_slab_calloc_locked(shpool, sizeof(ngx_http_reverse_mcp_sess_t));
    if (s == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        *reason = "the zone is full";
        return NGX_ERROR;
    }

    ngx_memcpy(s->id, id, NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN);
    s->node.key = ngx_crc32_short(id, NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN);
    s->agent = a;
    s->last_used = now;
    s->timeout = timeout;
    s->log_level = 0;
    s->client_caps = client_caps;
    s->version_len = version->len;
    ngx_memcpy(s->version, version->data, version->len);

    ngx_rbtree_insert(&root->rbtree, &s->node);
    ngx_queue_insert_head(&root->lru, &s->lru);
    a->count++;
    root->count++;

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


ngx_int_t
ngx_http_reverse_mcp_session_touch(ngx_shm_zone_t *zone, ngx_str_t *id,
    ngx_str_t *agent, ngx_http_reverse_mcp_session_info_t *info)
{
    uint64_t                           now;
    ngx_slab_pool_t                   *shpool;
    ngx_http_reverse_mcp_sess_t       *s;
    ngx_http_reverse_mcp_sess_root_t  *root;

    now = ngx_http_reverse_mcp_sess_now();
    shpool = ngx_http_reverse_mcp_registry_shpool(zone);

    ngx_shmtx_lock(&shpool->mutex);

    root = ngx_http_reverse_mcp_sess_root(zone, shpool, 0);
    if (root == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_DECLINED;
    }

    s = ngx_http_reverse_mcp_sess_get(root, shpool, id, agent, now);

    if (s) {
        s->last_used = now;
        ngx_queue_remove(&s->lru);
        ngx_queue_insert_head(&root->lru, &s->lru);

        if (info) {
            ngx_memcpy(info->version_data, s->version, s->version_len);
            info->version.data = info->version_data;
            info->version.len = s->version_len;
            info->log_level = s->log_level;
            info->client_caps = s->client_caps;
        }
    }

    ngx_http_reverse_mcp_sess_sweep(root, shpool, now,
                                    NGX_HTTP_REVERSE_MCP_SWEEP_TOUCH);

    ngx_shmtx_unlock(&shpool->mutex);

    return s ? NGX_OK : NGX_DECLINED;
}


ngx_int_t
ngx_http_reverse_mcp_session_set_level(ngx_shm_zone_t *zone, ngx_str_t *id,
    ngx_str_t *agent, ngx_uint_t level)
{
    ngx_slab_pool_t                   *shpool;
    ngx_http_reverse_mcp_sess_t       *s;
    ngx_http_reverse_mcp_sess_root_t  *root;

    shpool = ngx_http_reverse_mcp_registry_shpool(zone);

    ngx_shmtx_lock(&shpool->mutex);

    root = ngx_http_reverse_mcp_sess_root(zone, shpool, 0);
    s = root ? ngx_http_reverse_mcp_sess_get(root, shpool, id, agent,
                                             ngx_http_reverse_mcp_sess_now())
             : NULL;

    if (s) {
        s->log_level = level + 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return s ? NGX_OK : NGX_DECLINED;
}


ngx_int_t
ngx_http_reverse_mcp_session_delete(ngx_shm_zone_t *zone, ngx_str_t *id,
    ngx_str_t *agent)
{
    ngx_slab_pool_t                   *shpool;
    ngx_http_reverse_mcp_sess_t       *s;
    ngx_http_reverse_mcp_sess_root_t  *root;

    shpool = ngx_http_reverse_mcp_registry_shpool(zone);

    ngx_shmtx_lock(&shpool->mutex);

    root = ngx_http_reverse_mcp_sess_root(zone, shpool, 0);
    s = root ? ngx_http_reverse_mcp_sess_get(root, shpool, id, agent,
                                             ngx_http_reverse_mcp_sess_now())
             : NULL;

    if (s) {
        ngx_http_reverse_mcp_sess_free(root, shpool, s);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return s ? NGX_OK : NGX_DECLINED;
}


ngx_uint_t
ngx_http_reverse_mcp_session_count(ngx_shm_zone_t *zone, ngx_str_t *agent)
{
    ngx_uint_t                          n;
    ngx_slab_pool_t                    *shpool;
    ngx_http_reverse_mcp_sess_root_t   *root;
    ngx_http_reverse_mcp_sess_agent_t  *a;

    shpool = ngx_http_reverse_mcp_registry_shpool(zone);

    ngx_shmtx_lock(&shpool->mutex);

    root = ngx_http_reverse_mcp_sess_root(zone, shpool, 0);
    a = root ? ngx_http_reverse_mcp_sess_agent(root, shpool, agent, 0) : NULL;
    n = a ? a->count : 0;

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


void
ngx_http_reverse_mcp_session_cancel_post(ngx_shm_zone_t *zone, ngx_str_t *id,
    ngx_str_t *request_id)
{
    ngx_slab_pool_t                        *shpool;
    ngx_http_reverse_mcp_sess_root_t       *root;
    ngx_http_reverse_mcp_session_cancel_t  *c;

    if (id->len != NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN
        || (request_id
            && request_id->len > NGX_HTTP_REVERSE_MCP_REQUEST_ID_MAX))
    {
        return;
    }

    shpool = ngx_http_reverse_mcp_registry_shpool(zone);

    ngx_shmtx_lock(&shpool->mutex);

    root = ngx_http_reverse_mcp_sess_root(zone, shpool, 0);

    if (root) {
        c = &root->cancels[(root->cancel_seq)
                           % NGX_HTTP_REVERSE_MCP_CANCEL_RING];

        ngx_memcpy(c->id, id->data, NGX_HTTP_REVERSE_MCP_SESSION_ID_LEN);

        if (request_id) {
            c->all = 0;
            c->request_id_len = request_id->len;
            ngx_memcpy(c->request_id, request_id->data, request_id->len);

        } else {
            c->all = 1;
            c->request_id_len = 0;
        }

        ngx_memory_barrier();

        root->cancel_seq++;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


ngx_atomic_uint_t
ngx_http_reverse_mcp_session_cancel_seq(ngx_shm_zone_t *zone)
{
    void                              **slot;
    ngx_http_reverse_mcp_sess_root_t   *root;

    /* a racy read is fine: the caller looks again under the lock */

    slot = ngx_http_reverse_mcp_registry_sessions_root(zone);
    root = *slot;

    if (root == NULL || root->magic != NGX_HTTP_REVERSE_MCP_SESSIONS_MAGIC) {
        return 0;
    }

    return root->cancel_seq;
}


ngx_uint_t
ngx_http_reverse_mcp_session_cancels(ngx_shm_zone_t *zone,
    ngx_atomic_uint_t *seen, ngx_http_reverse_mcp_session_cancel_t *out,
    ngx_uint_t n)
{
    ngx_uint_t                         k;
    ngx_atomic_uint_t                  seq, from;
    ngx_slab_pool_t                   *shpool;
    ngx_http_reverse_mcp_sess_root_t  *root;

    shpool = ngx_http_reverse_mcp_registry_shpool(zone);

    ngx_shmtx_lock(&shpool->mutex);

    root = ngx_http_reverse_mcp_sess_root(zone, shpool, 0);

    if (root == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        return 0;
    }

    seq = root->cancel_seq;
    from = *seen;

    /* older entries than the ring holds are lost: it is a best effort */

    if (seq - from > NGX_HTTP_REVERSE_MCP_CANCEL_RING) {
        from = seq - NGX_HTTP_REVERSE_MCP_CANCEL_RING;
    }

    if (seq - from > n) {
        from = seq - n;
    }

    for (k = 0; from != seq; from++, k++) {
        out[k] = root->cancels[from % NGX_HTTP_REVERSE_MCP_CANCEL_RING];
    }

    *seen = seq;

    ngx_shmtx_unlock(&shpool->mutex);

    return k;
}
