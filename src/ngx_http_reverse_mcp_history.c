/*
 * Conversation history in shared memory (see
 * ngx_http_reverse_mcp_history.h).
 */

#include "ngx_http_reverse_mcp_history.h"


#define NGX_HTTP_REVERSE_MCP_HISTORY_SWEEP  16   /* expired entries freed
                                                    per operation, at most */


typedef struct {
    ngx_rbtree_node_t                     node;    /* key: crc32 */
    ngx_queue_t                           lru;     /* head: most recent */
    time_t                                used;
    time_t                                busy_until;
    ngx_pid_t                             busy_pid;
    u_char                               *value;
    size_t                                value_len;
    size_t                                key_len;
    u_char                                key[1];
} ngx_http_reverse_mcp_history_node_t;


typedef struct {
    ngx_rbtree_t                          rbtree;
    ngx_rbtree_node_t                     sentinel;
    ngx_queue_t                           lru;
    ngx_http_reverse_mcp_history_stats_t  stats;
} ngx_http_reverse_mcp_history_sh_t;


typedef struct {
    ngx_http_reverse_mcp_history_sh_t    *sh;
    ngx_slab_pool_t                      *shpool;
} ngx_http_reverse_mcp_history_ctx_t;


static ngx_http_reverse_mcp_history_node_t *
    ngx_http_reverse_mcp_history_lookup(ngx_http_reverse_mcp_history_ctx_t *ctx,
    ngx_str_t *key, uint32_t hash);
static void ngx_http_reverse_mcp_history_free(
    ngx_http_reverse_mcp_history_ctx_t *ctx,
    ngx_http_reverse_mcp_history_node_t *hn);
static void ngx_http_reverse_mcp_history_expire(
    ngx_http_reverse_mcp_history_ctx_t *ctx, time_t idle, ngx_uint_t n);
static void *ngx_http_reverse_mcp_history_alloc(
    ngx_http_reverse_mcp_history_ctx_t *ctx, size_t size,
    ngx_http_reverse_mcp_history_node_t *keep);
static void ngx_http_reverse_mcp_history_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


ngx_int_t
ngx_http_reverse_mcp_history_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_reverse_mcp_history_ctx_t  *octx = data;

    size_t                               len;
    ngx_http_reverse_mcp_history_ctx_t  *ctx;

    ctx = zone->data;

    if (octx) {
        /* reload: the conversations stay */
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        ctx->sh = ctx->shpool->data;
        return NGX_OK;
    }

    ctx->sh = ngx_slab_alloc(ctx->shpool,
                             sizeof(ngx_http_reverse_mcp_history_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(ctx->sh, sizeof(ngx_http_reverse_mcp_history_sh_t));

    ctx->shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_http_reverse_mcp_history_insert);
    ngx_queue_init(&ctx->sh->lru);

    len = sizeof(" in reverse_mcp_chat_zone \"\"") + zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in reverse_mcp_chat_zone \"%V\"%Z",
                &zone->shm.name);

    /* a full zone is handled by evicting: no "ngx_slab_alloc() failed" */
    ctx->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_reverse_mcp_history_acquire(ngx_shm_zone_t *zone, ngx_pool_t *pool,
    ngx_str_t *key, time_t idle, time_t busy, ngx_str_t *value)
{
    time_t                                now;
    uint32_t                              hash;
    ngx_http_reverse_mcp_history_ctx_t   *ctx;
    ngx_http_reverse_mcp_history_node_t  *hn;

    ctx = zone->data;
    now = ngx_time();
    hash = ngx_crc32_short(key->data, key->len);

    ngx_str_null(value);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_http_reverse_mcp_history_expire(ctx, idle,
                                        NGX_HTTP_REVERSE_MCP_HISTORY_SWEEP);

    hn = ngx_http_reverse_mcp_history_lookup(ctx, key, hash);

    if (hn && hn->busy_until <= now && hn->used + idle <= now) {
        ngx_http_reverse_mcp_history_free(ctx, hn);
        ctx->sh->stats.expired++;
        hn = NULL;
    }

    if (hn) {
        if (hn->busy_until > now
            && (hn->busy_pid == ngx_pid
                || kill(hn->busy_pid, 0) == 0 || ngx_errno != NGX_ESRCH))
        {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_BUSY;
        }

        /* free, or held by a worker that died */

        if (hn->value_len) {
            value->data = ngx_pnalloc(pool, hn->value_len);
            if (value->data == NULL) {
                ngx_shmtx_unlock(&ctx->shpool->mutex);
                return NGX_ERROR;
            }

            ngx_memcpy(value->data, hn->value, hn->value_len);
            value->len = hn->value_len;
        }

        ngx_queue_remove(&hn->lru);

    } else {
        hn = ngx_http_reverse_mcp_history_alloc(ctx,
                 offsetof(ngx_http_reverse_mcp_history_node_t, key)
                 + key->len, NULL);

        if (hn == NULL) {
            ctx->sh->stats.refused++;
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_ERROR;
        }

        hn->node.key = hash;
        hn->key_len = key->len;
        ngx_memcpy(hn->key, key->data, key->len);
        hn->value = NULL;
        hn->value_len = 0;

        ngx_rbtree_insert(&ctx->sh->rbtree, &hn->node);
        ctx->sh->stats.entries++;
    }

    hn->used = now;
    hn->busy_until = now + busy;
    hn->busy_pid = ngx_pid;
    ngx_queue_insert_head(&ctx->sh->lru, &hn->lru);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}


ngx_int_t
ngx_http_reverse_mcp_history_release(ngx_shm_zone_t *zone, ngx_str_t *key,
    ngx_str_t *value, ngx_uint_t remove, time_t idle, ngx_log_t *log)
{
    u_char                               *v;
    uint32_t                              hash;
    ngx_int_t                             rc;
    ngx_http_reverse_mcp_history_ctx_t   *ctx;
    ngx_http_reverse_mcp_history_node_t  *hn;

    ctx = zone->data;
    hash = ngx_crc32_short(key->data, key->len);
    rc = NGX_OK;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    hn = ngx_http_reverse_mcp_history_lookup(ctx, key, hash);

    if (hn == NULL) {
        /* expired or evicted meanwhile: start it again */
        if (remove || value == NULL || value->len == 0) {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_OK;
        }

        hn = ngx_http_reverse_mcp_history_alloc(ctx,
                 offsetof(ngx_http_reverse_mcp_history_node_t, key)
                 + key->len, NULL);

        if (hn == NULL) {
            ctx->sh->stats.refused++;
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "reverse_mcp: chat history not saved: the chat "
                          "zone is full");
            return NGX_ERROR;
        }

        hn->node.key = hash;
        hn->key_len = key->len;
        ngx_memcpy(hn->key, key->data, key->len);
        hn->value = NULL;
        hn->value_len = 0;

        ngx_rbtree_insert(&ctx->sh->rbtree, &hn->node);
        ngx_queue_insert_head(&ctx->sh->lru, &hn->lru);
        ctx->sh->stats.entries++;
    }

    if (remove) {
        ngx_http_reverse_mcp_history_free(ctx, hn);
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_OK;
    }

    hn->busy_until = 0;
    hn->used = ngx_time();
    ngx_queue_remove(&hn->lru);
    ngx_queue_insert_head(&ctx->sh->lru, &hn->lru);

    if (value && value->len) {
        /* the entry itself is first in the LRU list: never evicted here */
        v = ngx_http_reverse_mcp_history_alloc(ctx, value->len, hn);

        if (v == NULL) {
            ctx->sh->stats.refused++;
            rc = NGX_ERROR;

        } else {
            ngx_memcpy(v, value->data, value->len);

            if (hn->value) {
                ngx_slab_free_locked(ctx->shpool, hn->value);
            }

            hn->value = v;
            hn->value_len = value->len;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "reverse_mcp: chat history not saved: the chat zone "
                      "has no room for %uz bytes", value->len);
    }

    return rc;
}


ngx_int_t
ngx_http_reverse_mcp_history_put(ngx_shm_zone_t *zone, ngx_str_t *key,
    ngx_str_t *value, const char *expect, ngx_log_t *log)
{
    u_char                               *v;
    size_t                                n;
    uint32_t                              hash;
    ngx_http_reverse_mcp_history_ctx_t   *ctx;
    ngx_http_reverse_mcp_history_node_t  *hn;

    ctx = zone->data;
    hash = ngx_crc32_short(key->data, key->len);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    hn = ngx_http_reverse_mcp_history_lookup(ctx, key, hash);

    if (expect) {
        n = ngx_strlen(expect);

        if (hn == NULL || hn->value_len < n
            || ngx_strlcasestrn(hn->value, hn->value + hn->value_len,
                                (u_char *) expect, n - 1)
               == NULL)
        {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_DECLINED;
        }
    }

    if (hn == NULL) {
        hn = ngx_http_reverse_mcp_history_alloc(ctx,
                 offsetof(ngx_http_reverse_mcp_history_node_t, key)
                 + key->len, NULL);

        if (hn == NULL) {
            goto full;
        }

        hn->node.key = hash;
        hn->key_len = key->len;
        ngx_memcpy(hn->key, key->data, key->len);
        hn->value = NULL;
        hn->value_len = 0;
        hn->busy_until = 0;

        ngx_rbtree_insert(&ctx->sh->rbtree, &hn->node);
        ngx_queue_insert_head(&ctx->sh->lru, &hn->lru);
        ctx->sh->stats.entries++;

    } else {
        ngx_queue_remove(&hn->lru);
        ngx_queue_insert_head(&ctx->sh->lru, &hn->lru);
    }

    hn->used = ngx_time();

    v = ngx_http_reverse_mcp_history_alloc(ctx, value->len, hn);
    if (v == NULL) {
        goto full;
    }

    ngx_memcpy(v, value->data, value->len);

    if (hn->value) {
        ngx_slab_free_locked(ctx->shpool, hn->value);
    }

    hn->value = v;
    hn->value_len = value->len;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;

full:

    ctx->sh->stats.refused++;
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "reverse_mcp: the chat zone has no room for %uz bytes",
                  value->len);

    return NGX_ERROR;
}


ngx_int_t
ngx_http_reverse_mcp_history_get(ngx_shm_zone_t *zone, ngx_pool_t *pool,
    ngx_str_t *key, time_t idle, ngx_str_t *value)
{
    uint32_t                              hash;
    ngx_int_t                             rc;
    ngx_http_reverse_mcp_history_ctx_t   *ctx;
    ngx_http_reverse_mcp_history_node_t  *hn;

    ctx = zone->data;
    hash = ngx_crc32_short(key->data, key->len);
    rc = NGX_DECLINED;

    ngx_str_null(value);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_http_reverse_mcp_history_expire(ctx, idle,
                                        NGX_HTTP_REVERSE_MCP_HISTORY_SWEEP);

    hn = ngx_http_reverse_mcp_history_lookup(ctx, key, hash);

    if (hn && hn->busy_until <= ngx_time() && hn->used + idle <= ngx_time()) {
        hn = NULL;
    }

    if (hn) {
        rc = NGX_OK;

        if (hn->value_len) {
            value->data = ngx_pnalloc(pool, hn->value_len);

            if (value->data == NULL) {
                rc = NGX_ERROR;

            } else {
                ngx_memcpy(value->data, hn->value, hn->value_len);
                value->len = hn->value_len;
            }
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


void
ngx_http_reverse_mcp_history_stats(ngx_shm_zone_t *zone,
    ngx_http_reverse_mcp_history_stats_t *stats)
{
    ngx_http_reverse_mcp_history_ctx_t  *ctx;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);
    *stats = ctx->sh->stats;
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


static ngx_http_reverse_mcp_history_node_t *
ngx_http_reverse_mcp_history_lookup(ngx_http_reverse_mcp_history_ctx_t *ctx,
    ngx_str_t *key, uint32_t hash)
{
    ngx_int_t                             rc;
    ngx_rbtree_node_t                    *node, *sentinel;
    ngx_http_reverse_mcp_history_node_t  *hn;

    node = ctx->sh->rbtree.root;
    sentinel = ctx->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        hn = (ngx_http_reverse_mcp_history_node_t *) node;

        rc = ngx_memn2cmp(key->data, hn->key, key->len, hn->key_len);

        if (rc == 0) {
            return hn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_reverse_mcp_history_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t                    **p;
    ngx_http_reverse_mcp_history_node_t   *hn, *hnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            hn = (ngx_http_reverse_mcp_history_node_t *) node;
            hnt = (ngx_http_reverse_mcp_history_node_t *) temp;

            p = (ngx_memn2cmp(hn->key, hnt->key, hn->key_len, hnt->key_len)
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


static void
ngx_http_reverse_mcp_history_free(ngx_http_reverse_mcp_history_ctx_t *ctx,
    ngx_http_reverse_mcp_history_node_t *hn)
{
    ngx_queue_remove(&hn->lru);
    ngx_rbtree_delete(&ctx->sh->rbtree, &hn->node);

    if (hn->value) {
        ngx_slab_free_locked(ctx->shpool, hn->value);
    }

    ngx_slab_free_locked(ctx->shpool, hn);

    ctx->sh->stats.entries--;
}


/* entries unused for idle seconds go, oldest first (busy ones stay) */
static void
ngx_http_reverse_mcp_history_expire(ngx_http_reverse_mcp_history_ctx_t *ctx,
    time_t idle, ngx_uint_t n)
{
    time_t                                now;
    ngx_queue_t                          *q;
    ngx_http_reverse_mcp_history_node_t  *hn;

    now = ngx_time();

    while (n-- && !ngx_queue_empty(&ctx->sh->lru)) {
        q = ngx_queue_last(&ctx->sh->lru);
        hn = ngx_queue_data(q, ngx_http_reverse_mcp_history_node_t, lru);

        if (hn->used + idle > now || hn->busy_until > now) {
            return;
        }

        ngx_http_reverse_mcp_history_free(ctx, hn);
        ctx->sh->stats.expired++;
    }
}


/* slab memory; when the zone is full the least recently used idle
 * entries go, but never keep (nor busy ones) */
static void *
ngx_http_reverse_mcp_history_alloc(ngx_http_reverse_mcp_history_ctx_t *ctx,
    size_t size, ngx_http_reverse_mcp_history_node_t *keep)
{
    void                                 *p;
    time_t                                now;
    ngx_queue_t                          *q, *prev;
    ngx_http_reverse_mcp_history_node_t  *hn;

    now = ngx_time();
    hn = NULL;

    for ( ;; ) {
        p = ngx_slab_alloc_locked(ctx->shpool, size);
        if (p) {
            return p;
        }

        for (q = ngx_queue_last(&ctx->sh->lru);
             q != ngx_queue_sentinel(&ctx->sh->lru);
             q = prev)
        {
            prev = ngx_queue_prev(q);
            hn = ngx_queue_data(q, ngx_http_reverse_mcp_history_node_t, lru);

            if (hn != keep && hn->busy_until <= now) {
                break;
            }
        }

        if (q == ngx_queue_sentinel(&ctx->sh->lru)) {
            return NULL;
        }

        ngx_http_reverse_mcp_history_free(ctx, hn);
        ctx->sh->stats.evicted++;
    }
}
