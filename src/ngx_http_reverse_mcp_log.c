/*
 * Secrets out of the error log, at every level.
 *
 * Owns: a log writer installed on every file error log of the http block
 * (the main error_log and those of every server and location) when the
 * module is configured.  It rewrites each line before it is written: the
 * value after "token=", "api_key=", "Bearer " and the value of
 * "Authorization:" (less its scheme) and "X-Api-Key:" become "***".
 * nginx itself prints request lines and request headers at the debug
 * level (and request lines in the context of many error lines) before any
 * module runs, so redacting requests in a handler alone cannot keep a
 * reverse server's token, a caller's Bearer token or an LLM key out of a
 * debug log.
 * Logs that already have a writer (syslog:, memory:) are left alone.
 *
 * nginx keeps logging through these logs while it tears a cycle down,
 * after a dynamic module is unloaded (and copies the worker's log for its
 * last lines), so the module pins itself in memory (RTLD_NODELETE) before
 * it installs the writer; when that fails, nothing is installed.
 */

#include "ngx_http_reverse_mcp_module.h"

#include <dlfcn.h>


#define NGX_HTTP_REVERSE_MCP_REDACT_TO_EOL  1   /* the whole header value */


typedef struct {
    const char   *marker;      /* lower case */
    size_t        len;
    ngx_uint_t    flags;
} ngx_http_reverse_mcp_marker_t;


static ngx_http_reverse_mcp_marker_t  ngx_http_reverse_mcp_markers[] = {
    { "authorization:", 14, NGX_HTTP_REVERSE_MCP_REDACT_TO_EOL },
    { "x-api-key:", 10, NGX_HTTP_REVERSE_MCP_REDACT_TO_EOL },
    { "bearer ", 7, 0 },
    { "token=", 6, 0 },
    { "api_key=", 8, 0 },
    { NULL, 0, 0 }
};


static void ngx_http_reverse_mcp_log_writer(ngx_log_t *log, ngx_uint_t level,
    u_char *buf, size_t len);
static ngx_int_t ngx_http_reverse_mcp_log_pin(ngx_conf_t *cf);
static void ngx_http_reverse_mcp_log_hook_chain(ngx_log_t *log);
static void ngx_http_reverse_mcp_log_hook_loc(ngx_http_core_loc_conf_t *clcf);
static void ngx_http_reverse_mcp_log_hook_tree(
    ngx_http_location_tree_node_t *node);


/*
 * Copies src to dst (cap bytes, at least 4) with the secrets replaced by
 * "***"; returns the length written (a line that does not fit is cut).
 */
size_t
ngx_http_reverse_mcp_redact_line(u_char *dst, size_t cap, u_char *src,
    size_t len)
{
    u_char                         *s, *end, *d, *dend, *p, c;
    size_t                          i;
    ngx_http_reverse_mcp_marker_t  *m;

    s = src;
    end = src + len;
    d = dst;
    dend = dst + cap;

    while (s < end && d < dend) {

        for (m = ngx_http_reverse_mcp_markers; m->marker; m++) {

            if ((size_t) (end - s) < m->len) {
                continue;
            }

            for (i = 0; i < m->len; i++) {
                if (ngx_tolower(s[i]) != (u_char) m->marker[i]) {
                    break;
                }
            }

            if (i == m->len) {
                break;
            }
        }

        if (m->marker == NULL) {
            *d++ = *s++;
            continue;
        }

        /* the marker itself is kept */

        if ((size_t) (dend - d) < m->len + 4) {
            break;
        }

        d = ngx_cpymem(d, s, m->len);
        s += m->len;

        while (s < end && *s == ' ' && dend - d > 3) {
            *d++ = *s++;
        }

        if (m->flags & NGX_HTTP_REVERSE_MCP_REDACT_TO_EOL) {
            /* the scheme ("Bearer ", "Basic ") stays */
            for (p = s;
                 p < end && ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z');
                 p++)
            {
                /* void */
            }

            if (p < end && *p == ' ' && p > s
                && (size_t) (dend - d) > (size_t) (p - s) + 4)
            {
                d = ngx_cpymem(d, s, p + 1 - s);
                s = p + 1;
            }
        }

        if (s == end || *s == '"' || *s == '\n' || *s == '\r') {
            continue;
        }

        /* the placeholder of the module's own messages */
        if ((size_t) (end - s) >= 7 && ngx_strncmp(s, "<token>", 7) == 0) {
            continue;
        }

        while (s < end) {
            c = *s;

            if (c == '"' || c == '\n' || c == '\r') {
                break;
            }

            if (!(m->flags & NGX_HTTP_REVERSE_MCP_REDACT_TO_EOL)
                && (c == '&' || c == ' ' || c == '\'' || c == ','
                    || c == ';' || c == '\t'))
            {
                break;
            }

            s++;
        }

        d = ngx_cpymem(d, "***", 3);
    }

    return d - dst;
}


/* called from the module's postconfiguration */
ngx_int_t
ngx_http_reverse_mcp_log_init(ngx_conf_t *cf)
{
    ngx_uint_t                  s;
    ngx_http_core_loc_conf_t   *clcf, **named;
    ngx_http_core_srv_conf_t  **cscfp;
    ngx_http_core_main_conf_t  *cmcf;

    if (ngx_http_reverse_mcp_log_pin(cf) != NGX_OK) {
        return NGX_OK;
    }

    ngx_http_reverse_mcp_log_hook_chain(&cf->cycle->new_log);

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    ngx_http_reverse_mcp_log_hook_loc(clcf);

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    cscfp = cmcf->servers.elts;

    for (s = 0; s < cmcf->servers.nelts; s++) {
        clcf = cscfp[s]->ctx->loc_conf[ngx_http_core_module.ctx_index];
        ngx_http_reverse_mcp_log_hook_loc(clcf);

        for (named = cscfp[s]->named_locations; named && *named; named++) {
            ngx_http_reverse_mcp_log_hook_loc(*named);
        }
    }

    return NGX_OK;
}


/* the writer's code must outlive every log that points to it */

static ngx_int_t
ngx_http_reverse_mcp_log_pin(ngx_conf_t *cf)
{
    void     *h;
    Dl_info   mod, core;

    if (dladdr((void *) ngx_http_reverse_mcp_log_writer, &mod) == 0
        || dladdr((void *) &ngx_cycle, &core) == 0)
    {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "reverse_mcp: dladdr() failed, secrets are not "
                      "redacted from the error log");
        return NGX_DECLINED;
    }

    if (mod.dli_fbase == core.dli_fbase) {
        return NGX_OK;               /* built into nginx: never unloaded */
    }

    h = dlopen(mod.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);

    if (h == NULL) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "reverse_mcp: dlopen(\"%s\", RTLD_NODELETE) failed "
                      "(%s), secrets are not redacted from the error log",
                      mod.dli_fname, dlerror());
        return NGX_DECLINED;
    }

    /* the reference is kept: the module stays mapped until exit */

    return NGX_OK;
}


static void
ngx_http_reverse_mcp_log_hook_loc(ngx_http_core_loc_conf_t *clcf)
{
#if (NGX_PCRE)
    ngx_http_core_loc_conf_t  **regex;
#endif

    if (clcf == NULL) {
        return;
    }

    ngx_http_reverse_mcp_log_hook_chain(clcf->error_log);

    ngx_http_reverse_mcp_log_hook_tree(clcf->static_locations);

#if (NGX_PCRE)
    for (regex = clcf->regex_locations; regex && *regex; regex++) {
        ngx_http_reverse_mcp_log_hook_loc(*regex);
    }
#endif
}


static void
ngx_http_reverse_mcp_log_hook_tree(ngx_http_location_tree_node_t *node)
{
    if (node == NULL) {
        return;
    }

    ngx_http_reverse_mcp_log_hook_loc(node->exact);
    ngx_http_reverse_mcp_log_hook_loc(node->inclusive);
    ngx_http_reverse_mcp_log_hook_tree(node->left);
    ngx_http_reverse_mcp_log_hook_tree(node->right);
    ngx_http_reverse_mcp_log_hook_tree(node->tree);
}


static void
ngx_http_reverse_mcp_log_hook_chain(ngx_log_t *log)
{
    for ( /* void */ ; log; log = log->next) {
        if (log->writer == NULL) {
            log->writer = ngx_http_reverse_mcp_log_writer;
        }
    }
}


static void
ngx_http_reverse_mcp_log_writer(ngx_log_t *log, ngx_uint_t level,
    u_char *buf, size_t len)
{
    u_char   out[NGX_MAX_ERROR_STR + 64];
    size_t   n;

    if (log->file == NULL) {
        return;
    }

    if (ngx_time() == log->disk_full_time) {
        return;
    }

    n = ngx_http_reverse_mcp_redact_line(out, sizeof(out) - 1, buf, len);

    if (n == 0 || out[n - 1] != LF) {
        out[n++] = LF;               /* cut: still one line */
    }

    if (ngx_write_fd(log->file->fd, out, n) == -1
        && ngx_errno == NGX_ENOSPC)
    {
        log->disk_full_time = ngx_time();
    }
}
