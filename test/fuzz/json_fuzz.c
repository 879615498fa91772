/*
 * libFuzzer target for the JSON helpers (src/ngx_http_reverse_mcp_json.c):
 * every JSON text a reverse server, an agent or an LLM API sends goes
 * through ngx_http_reverse_mcp_json_parse() first.
 *
 * The input is parsed as it is; when it parses, these must hold:
 *   - the tree is at most NGX_HTTP_REVERSE_MCP_JSON_MAX_DEPTH deep (the
 *     pre-scan keeps yajl's recursive tree free from deep stacks);
 *   - dump() gives JSON that parses again, and dumping that gives the
 *     same bytes (a fixed point);
 *   - dump_members() of an object, wrapped in braces, parses as an object
 *     with the same members but the skipped one;
 *   - dump_replace() of a node by a literal parses, with the literal found
 *     in the output.
 * Independently of parsing, the input is used as a string for
 * escaped_len()/escape(): the lengths agree, and the literal parses back
 * to the same bytes when they are valid UTF-8 without NUL.
 */

#include "ngx_fuzz.h"

#include "../../src/ngx_http_reverse_mcp_json.c"


static ngx_pool_t  *pool;


static ngx_uint_t
tree_depth(yajl_val v)
{
    size_t      i, n;
    ngx_uint_t  d, max;

    if (v == NULL) {
        return 0;
    }

    max = 0;

    if (YAJL_IS_OBJECT(v)) {
        n = v->u.object.len;

        for (i = 0; i < n; i++) {
            d = tree_depth(v->u.object.values[i]);
            max = ngx_max(max, d);
        }

        return max + 1;
    }

    if (YAJL_IS_ARRAY(v)) {
        n = v->u.array.len;

        for (i = 0; i < n; i++) {
            d = tree_depth(v->u.array.values[i]);
            max = ngx_max(max, d);
        }

        return max + 1;
    }

    return 0;
}


/* the n-th node in document order */
static yajl_val
tree_nth(yajl_val v, ngx_uint_t *n)
{
    size_t    i, len;
    yajl_val  found;

    if (v == NULL) {
        return NULL;
    }

    if (*n == 0) {
        return v;
    }

    (*n)--;

    if (YAJL_IS_OBJECT(v) || YAJL_IS_ARRAY(v)) {
        len = YAJL_IS_OBJECT(v) ? v->u.object.len : v->u.array.len;

        for (i = 0; i < len; i++) {
            found = tree_nth(YAJL_IS_OBJECT(v) ? v->u.object.values[i]
                                               : v->u.array.values[i], n);
            if (found) {
                return found;
            }
        }
    }

    return NULL;
}


/* strict UTF-8 (RFC 3629: no overlongs, no surrogates), no NUL */
static int
utf8_valid_no_nul(const u_char *p, size_t len)
{
    size_t    i, n, k;
    uint32_t  cp, min;

    for (i = 0; i < len; i += n) {
        if (p[i] == 0) {
            return 0;
        }

        if (p[i] < 0x80) {
            n = 1;
            continue;
        }

        if ((p[i] & 0xe0) == 0xc0) {
            n = 2; cp = p[i] & 0x1f; min = 0x80;

        } else if ((p[i] & 0xf0) == 0xe0) {
            n = 3; cp = p[i] & 0x0f; min = 0x800;

        } else if ((p[i] & 0xf8) == 0xf0) {
            n = 4; cp = p[i] & 0x07; min = 0x10000;

        } else {
            return 0;
        }

        if (i + n > len) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            cp = (cp << 6) | (p[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


static void
check_escape(const u_char *data, size_t size)
{
    char       err[128];
    u_char    *buf, *end;
    size_t     len;
    yajl_val   v;
    ngx_str_t  s;

    s.data = (u_char *) data;
    s.len = size;

    len = ngx_http_reverse_mcp_json_escaped_len(&s);
    buf = malloc(len + 2);
    ngx_fuzz_check(buf != NULL, "malloc");

    buf[0] = '[';
    end = ngx_http_reverse_mcp_json_escape(buf + 1, &s);
    ngx_fuzz_check((size_t) (end - (buf + 1)) == len,
                   "escaped_len() and escape() disagree");
    *end++ = ']';

    if (utf8_valid_no_nul(data, size)) {
        v = ngx_http_reverse_mcp_json_parse(buf, end - buf, err, sizeof(err));
        ngx_fuzz_check(v != NULL, "an escaped string does not parse");
        ngx_fuzz_check(YAJL_IS_ARRAY(v) && v->u.array.len == 1
                       && YAJL_IS_STRING(v->u.array.values[0]),
                       "an escaped string parses into something else");
        ngx_fuzz_check(ngx_strlen(v->u.array.values[0]->u.string) == size
                       && memcmp(v->u.array.values[0]->u.string, data, size)
                          == 0,
                       "an escaped string does not parse back to itself");
        yajl_tree_free(v);
    }

    free(buf);
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();

    pool = ngx_create_pool(4096, &ngx_fuzz_log);
    ngx_fuzz_check(pool != NULL, "pool");

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char        err[128];
    u_char     *copy;
    yajl_val    v, v2, target, obj;
    ngx_str_t   out, out2, members, lit;
    ngx_uint_t  n, i;
    ngx_pool_t *p;

    p = ngx_create_pool(4096, &ngx_fuzz_log);
    ngx_fuzz_check(p != NULL, "pool");

    copy = ngx_fuzz_copy(data, size);

    check_escape(copy, size);

    v = ngx_http_reverse_mcp_json_parse(copy, size, err, sizeof(err));

    if (v == NULL) {
        ngx_fuzz_check(err[0] != '\0', "no error text");
        ngx_fuzz_check(strchr(err, '\n') == NULL, "error text spans lines");
        goto done;
    }

    ngx_fuzz_check(tree_depth(v) <= NGX_HTTP_REVERSE_MCP_JSON_MAX_DEPTH,
                   "tree deeper than the limit");

    /* dump: a fixed point after one round */

    ngx_fuzz_check(ngx_http_reverse_mcp_json_dump(p, v, &out) == NGX_OK,
                   "dump failed");

    v2 = ngx_http_reverse_mcp_json_parse(out.data, out.len, err, sizeof(err));
    ngx_fuzz_check(v2 != NULL, "dump output does not parse");

    ngx_fuzz_check(ngx_http_reverse_mcp_json_dump(p, v2, &out2) == NGX_OK,
                   "dump of dump failed");
    ngx_fuzz_check(out.len == out2.len
                   && memcmp(out.data, out2.data, out.len) == 0,
                   "dump is not a fixed point");
    yajl_tree_free(v2);

    /* dump_members: every object of the tree, skipping its first key */

    for (i = 0; i < 4; i++) {
        n = (size > i ? data[i] : 0) % 17;
        obj = tree_nth(v, &n);

        if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
            continue;
        }

        if (ngx_http_reverse_mcp_json_dump_members(p, obj,
                obj->u.object.len ? obj->u.object.keys[0] : NULL, &members)
            != NGX_OK)
        {
            continue;
        }

        lit.len = members.len + 2;
        lit.data = ngx_pnalloc(p, lit.len);
        ngx_fuzz_check(lit.data != NULL, "alloc");
        lit.data[0] = '{';
        ngx_memcpy(lit.data + 1, members.data, members.len);
        lit.data[lit.len - 1] = '}';

        v2 = ngx_http_reverse_mcp_json_parse(lit.data, lit.len, err,
                                             sizeof(err));
        ngx_fuzz_check(v2 != NULL && YAJL_IS_OBJECT(v2),
                       "dump_members output is not an object's members");
        yajl_tree_free(v2);
    }

    /* dump_replace: a node replaced by a JSON literal */

    n = (size ? data[size - 1] : 0) % 33;
    target = tree_nth(v, &n);

    if (target) {
        ngx_str_set(&lit, "{\"replaced\":[1,\"two\"]}");

        ngx_fuzz_check(ngx_http_reverse_mcp_json_dump_replace(p, v, target,
                                                              &lit, &out)
                       == NGX_OK, "dump_replace failed");

        v2 = ngx_http_reverse_mcp_json_parse(out.data, out.len, err,
                                             sizeof(err));
        ngx_fuzz_check(v2 != NULL, "dump_replace output does not parse");
        ngx_fuzz_check(ngx_strnstr(out.data, "\"replaced\"", out.len)
                       != NULL, "the literal is not in the output");
        yajl_tree_free(v2);
    }

    /* the getters on whatever this is */

    (void) ngx_http_reverse_mcp_json_get(v, "jsonrpc");
    (void) ngx_http_reverse_mcp_json_get_str(v, "method", &out);

    yajl_tree_free(v);

done:

    free(copy);
    ngx_destroy_pool(p);

    return 0;
}
