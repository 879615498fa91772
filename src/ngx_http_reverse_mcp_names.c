/*
 * Tool-name mapping (see ngx_http_reverse_mcp_names.h): the name rules,
 * the exposed name of a (server, tool) pair, its reverse and collision
 * marking.  Pure C with OpenSSL's SHA-256; no nginx dependency.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "ngx_http_reverse_mcp_names.h"


static int ngx_http_reverse_mcp_names_fn_char(unsigned char c);
static int ngx_http_reverse_mcp_names_cmp(const void *one, const void *two);


/* [A-Za-z0-9_-] */
static int
ngx_http_reverse_mcp_names_fn_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
}


int
ngx_http_reverse_mcp_names_tool_valid(const unsigned char *name, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_REVERSE_MCP_NAMES_TOOL_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!ngx_http_reverse_mcp_names_fn_char(name[i]) && name[i] != '.') {
            return 0;
        }
    }

    return 1;
}


int
ngx_http_reverse_mcp_names_function_valid(const unsigned char *name,
    size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_REVERSE_MCP_NAMES_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!ngx_http_reverse_mcp_names_fn_char(name[i])) {
            return 0;
        }
    }

    return 1;
}


int
ngx_http_reverse_mcp_names_server_valid(const unsigned char *name,
    size_t len)
{
    size_t  i;

    if (!ngx_http_reverse_mcp_names_function_valid(name, len)
        || name[len - 1] == '_')
    {
        return 0;
    }

    for (i = 0; i + 1 < len; i++) {
        if (name[i] == '_' && name[i + 1] == '_') {
            return 0;
        }
    }

    return 1;
}


int
ngx_http_reverse_mcp_names_sep_valid(const unsigned char *sep, size_t len)
{
    return len <= NGX_HTTP_REVERSE_MCP_NAMES_SEP_MAX
           && ngx_http_reverse_mcp_names_function_valid(sep, len);
}


int
ngx_http_reverse_mcp_names_split(const unsigned char *name, size_t len,
    const unsigned char *sep, size_t sep_len, size_t *server_len)
{
    size_t  i;

    if (sep_len == 0) {
        return 0;
    }

    /* the server part is not empty, nor is the tool part */
    for (i = 1; i + sep_len < len; i++) {
        if (memcmp(name + i, sep, sep_len) == 0) {
            *server_len = i;
            return 1;
        }
    }

    return 0;
}


size_t
ngx_http_reverse_mcp_names_expose(const unsigned char *server,
    size_t server_len, const unsigned char *sep, size_t sep_len,
    const unsigned char *tool, size_t tool_len, unsigned char *out,
    int *shortened)
{
    size_t          len, n, i, split;
    unsigned char   c, md[SHA256_DIGEST_LENGTH];
    unsigned char   pair[NGX_HTTP_REVERSE_MCP_NAMES_MAX + 1
                         + NGX_HTTP_REVERSE_MCP_NAMES_TOOL_MAX];

    static const char  hex[] = "0123456789abcdef";

    *shortened = 0;

    if (server_len == 0 || server_len > NGX_HTTP_REVERSE_MCP_NAMES_MAX
        || tool_len == 0 || tool_len > NGX_HTTP_REVERSE_MCP_NAMES_TOOL_MAX
        || sep_len == 0 || sep_len > NGX_HTTP_REVERSE_MCP_NAMES_SEP_MAX)
    {
        return 0;
    }

    len = server_len + sep_len + tool_len;

    if (len <= NGX_HTTP_REVERSE_MCP_NAMES_MAX) {
        memcpy(out, server, server_len);
        memcpy(out + server_len, sep, sep_len);
        memcpy(out + server_len + sep_len, tool, tool_len);

        if (ngx_http_reverse_mcp_names_function_valid(out, len)
            && ngx_http_reverse_mcp_names_split(out, len, sep, sep_len,
                                                &split)
            && split == server_len)
        {
            return len;
        }
    }

    /* a readable prefix of the composed name, then the hash of the pair */

    n = 0;

    for (i = 0; i < len && n < NGX_HTTP_REVERSE_MCP_NAMES_PREFIX; i++) {
        if (i < server_len) {
            c = server[i];

        } else if (i < server_len + sep_len) {
            c = sep[i - server_len];

        } else {
            c = tool[i - server_len - sep_len];
        }

        out[n++] = ngx_http_reverse_mcp_names_fn_char(c) ? c : '_';
    }

    /* server NUL tool: neither name has a NUL, so pairs never meet */
    memcpy(pair, server, server_len);
    pair[server_len] = '\0';
    memcpy(pair + server_len + 1, tool, tool_len);

    (void) SHA256(pair, server_len + 1 + tool_len, md);

    out[n++] = '_';

    for (i = 0; i < NGX_HTTP_REVERSE_MCP_NAMES_HASH; i++) {
        c = md[i / 2];
        out[n++] = hex[(i % 2) ? (c & 0xf) : (c >> 4)];
    }

    *shortened = 1;

    return n;
}


int
ngx_http_reverse_mcp_names_shortened(const unsigned char *name, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (len < NGX_HTTP_REVERSE_MCP_NAMES_HASH + 2
        || len > NGX_HTTP_REVERSE_MCP_NAMES_MAX
        || name[len - NGX_HTTP_REVERSE_MCP_NAMES_HASH - 1] != '_')
    {
        return 0;
    }

    for (i = len - NGX_HTTP_REVERSE_MCP_NAMES_HASH; i < len; i++) {
        c = name[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }

    return 1;
}


static int
ngx_http_reverse_mcp_names_cmp(const void *one, const void *two)
{
    int                                        rc;
    size_t                                     len;
    const ngx_http_reverse_mcp_names_entry_t  *a, *b;

    a = *(ngx_http_reverse_mcp_names_entry_t * const *) one;
    b = *(ngx_http_reverse_mcp_names_entry_t * const *) two;

    len = a->name_len < b->name_len ? a->name_len : b->name_len;

    rc = memcmp(a->name, b->name, len);

    if (rc == 0) {
        rc = (a->name_len > b->name_len) - (a->name_len < b->name_len);
    }

    if (rc == 0) {
        /* a total order: the sort is the same on every libc */
        rc = (a > b) - (a < b);
    }

    return rc;
}


size_t
ngx_http_reverse_mcp_names_mark(ngx_http_reverse_mcp_names_entry_t *entries,
    size_t n, const unsigned char *sep, size_t sep_len,
    ngx_http_reverse_mcp_names_entry_t **order)
{
    int                                  shortened;
    size_t                               i, marked;
    ngx_http_reverse_mcp_names_entry_t  *e, *prev;

    for (i = 0; i < n; i++) {
        e = &entries[i];

        e->name_len = ngx_http_reverse_mcp_names_expose(e->server,
                                                        e->server_len,
                                                        sep, sep_len,
                                                        e->tool, e->tool_len,
                                                        e->name, &shortened);
        e->shortened = shortened ? 1 : 0;
        e->collides = (e->name_len == 0);
        order[i] = e;
    }

    marked = 0;

    for (i = 0; i < n; i++) {
        marked += entries[i].collides;
    }

    if (n < 2) {
        return marked;
    }

    qsort(order, n, sizeof(ngx_http_reverse_mcp_names_entry_t *),
          ngx_http_reverse_mcp_names_cmp);

    for (i = 1; i < n; i++) {
        prev = order[i - 1];
        e = order[i];

        if (e->name_len == 0
            || prev->name_len != e->name_len
            || memcmp(prev->name, e->name, e->name_len) != 0)
        {
            continue;
        }

        if (!prev->collides) {
            prev->collides = 1;
            marked++;
        }

        e->collides = 1;
        marked++;
    }

    return marked;
}


long
ngx_http_reverse_mcp_names_find(
    const ngx_http_reverse_mcp_names_entry_t *entries, size_t n,
    const unsigned char *name, size_t len)
{
    long    found;
    size_t  i;

    found = NGX_HTTP_REVERSE_MCP_NAMES_NONE;

    for (i = 0; i < n; i++) {
        if (entries[i].name_len != len
            || memcmp(entries[i].name, name, len) != 0)
        {
            continue;
        }

        if (found != NGX_HTTP_REVERSE_MCP_NAMES_NONE) {
            return NGX_HTTP_REVERSE_MCP_NAMES_AMBIGUOUS;
        }

        found = (long) i;
    }

    return found;
}
