/*
 * JSON helpers on top of yajl (see ngx_http_reverse_mcp_json.h).
 */

#include "ngx_http_reverse_mcp_json.h"


static ngx_int_t ngx_http_reverse_mcp_json_depth_ok(const u_char *p,
    size_t len, ngx_uint_t max);


/*
 * yajl_tree frees values recursively, so a hostile peer must not be able
 * to build a deep tree: count nesting outside strings before parsing.
 */
static ngx_int_t
ngx_http_reverse_mcp_json_depth_ok(const u_char *p, size_t len,
    ngx_uint_t max)
{
    ngx_uint_t    depth, in_str, esc;
    const u_char *end;

    depth = 0;
    in_str = 0;
    esc = 0;

    for (end = p + len; p < end; p++) {

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

        case '"':
            in_str = 1;
            break;

        case '{':
        case '[':
            if (++depth > max) {
                return NGX_DECLINED;
            }
            break;

        case '}':
        case ']':
            if (depth) {
                depth--;
            }
            break;
        }
    }

    return NGX_OK;
}


yajl_val
ngx_http_reverse_mcp_json_parse(const u_char *data, size_t len, char *err,
    size_t errlen)
{
    u_char    *copy;
    yajl_val   v;

    if (errlen) {
        err[0] = '\0';
    }

    if (len == 0) {
        ngx_cpystrn((u_char *) err, (u_char *) "empty JSON text", errlen);
        return NULL;
    }

    if (ngx_http_reverse_mcp_json_depth_ok(data, len,
                                           NGX_HTTP_REVERSE_MCP_JSON_MAX_DEPTH)
        != NGX_OK)
    {
        ngx_cpystrn((u_char *) err, (u_char *) "nesting too deep", errlen);
        return NULL;
    }

    copy = ngx_alloc(len + 1, ngx_cycle->log);
    if (copy == NULL) {
        ngx_cpystrn((u_char *) err, (u_char *) "out of memory", errlen);
        return NULL;
    }

    ngx_memcpy(copy, data, len);
    copy[len] = '\0';

    if (ngx_strlen(copy) != len) {
        ngx_free(copy);
        ngx_cpystrn((u_char *) err, (u_char *) "NUL byte in JSON text",
                    errlen);
        return NULL;
    }

    v = yajl_tree_parse((const char *) copy, err, errlen);

    ngx_free(copy);

    if (v == NULL && errlen && err[0] == '\0') {
        ngx_cpystrn((u_char *) err, (u_char *) "parse error", errlen);
    }

    if (v == NULL && errlen) {
        /* yajl's messages span lines and pad with blanks: one line */
        u_char  *dst;

        dst = (u_char *) err;

        for (copy = (u_char *) err; *copy; copy++) {
            if (*copy == '\n' || *copy == '\r' || *copy == '\t') {
                *copy = ' ';
            }

            if (*copy == ' ' && (dst == (u_char *) err || dst[-1] == ' ')) {
                continue;
            }

            *dst++ = *copy;
        }

        while (dst > (u_char *) err && dst[-1] == ' ') {
            dst--;
        }

        *dst = '\0';
    }

    return v;
}


yajl_val
ngx_http_reverse_mcp_json_get(yajl_val obj, const char *key)
{
    size_t  i, n;

    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        return NULL;
    }

    n = obj->u.object.len;

    for (i = 0; i < n; i++) {
        if (ngx_strcmp(obj->u.object.keys[i], key) == 0) {
            return obj->u.object.values[i];
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_reverse_mcp_json_get_str(yajl_val obj, const char *key,
    ngx_str_t *out)
{
    yajl_val  v;

    v = ngx_http_reverse_mcp_json_get(obj, key);

    if (v == NULL || !YAJL_IS_STRING(v)) {
        return NGX_DECLINED;
    }

    out->data = (u_char *) v->u.string;
    out->len = ngx_strlen(v->u.string);

    return NGX_OK;
}


static ngx_int_t ngx_http_reverse_mcp_json_gen_replace(yajl_gen g,
    yajl_val v, yajl_val target, ngx_str_t *literal);


ngx_int_t
ngx_http_reverse_mcp_json_gen(yajl_gen g, yajl_val v)
{
    return ngx_http_reverse_mcp_json_gen_replace(g, v, NULL, NULL);
}


static ngx_int_t
ngx_http_reverse_mcp_json_gen_replace(yajl_gen g, yajl_val v,
    yajl_val target, ngx_str_t *literal)
{
    size_t       i, n;
    const char  *s;

    if (target && v == target) {
        /* yajl writes a "number" verbatim: that inserts any literal */
        return yajl_gen_number(g, (const char *) literal->data, literal->len)
               == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
    }

    if (v == NULL) {
        return yajl_gen_null(g) == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
    }

    switch (v->type) {

    case yajl_t_string:
        s = v->u.string;
        if (yajl_gen_string(g, (const unsigned char *) s, ngx_strlen(s))
            != yajl_gen_status_ok)
        {
            return NGX_ERROR;
        }
        return NGX_OK;

    case yajl_t_number:
        s = v->u.number.r;
        if (yajl_gen_number(g, s, ngx_strlen(s)) != yajl_gen_status_ok) {
            return NGX_ERROR;
        }
        return NGX_OK;

    case yajl_t_object:
        if (yajl_gen_map_open(g) != yajl_gen_status_ok) {
            return NGX_ERROR;
        }

        n = v->u.object.len;

        for (i = 0; i < n; i++) {
            s = v->u.object.keys[i];

            if (yajl_gen_string(g, (const unsigned char *) s, ngx_strlen(s))
                != yajl_gen_status_ok
                || ngx_http_reverse_mcp_json_gen_replace(g,
                       v->u.object.values[i], target, literal)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        return yajl_gen_map_close(g) == yajl_gen_status_ok ? NGX_OK
                                                           : NGX_ERROR;

    case yajl_t_array:
        if (yajl_gen_array_open(g) != yajl_gen_status_ok) {
            return NGX_ERROR;
        }

        n = v->u.array.len;

        for (i = 0; i < n; i++) {
            if (ngx_http_reverse_mcp_json_gen_replace(g, v->u.array.values[i],
                                                      target, literal)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        return yajl_gen_array_close(g) == yajl_gen_status_ok ? NGX_OK
                                                             : NGX_ERROR;

    case yajl_t_true:
        return yajl_gen_bool(g, 1) == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;

    case yajl_t_false:
        return yajl_gen_bool(g, 0) == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;

    default:
        return yajl_gen_null(g) == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
    }
}


ngx_int_t
ngx_http_reverse_mcp_json_dump(ngx_pool_t *pool, yajl_val v, ngx_str_t *out)
{
    return ngx_http_reverse_mcp_json_dump_replace(pool, v, NULL, NULL, out);
}


ngx_int_t
ngx_http_reverse_mcp_json_dump_replace(ngx_pool_t *pool, yajl_val v,
    yajl_val target, ngx_str_t *literal, ngx_str_t *out)
{
    size_t                len;
    yajl_gen              g;
    const unsigned char  *buf;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_reverse_mcp_json_gen_replace(g, v, target, literal)
           != NGX_OK
        || yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
    {
        yajl_gen_free(g);
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        yajl_gen_free(g);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, buf, len);
    out->len = len;

    yajl_gen_free(g);

    return NGX_OK;
}


ngx_int_t
ngx_http_reverse_mcp_json_dump_members(ngx_pool_t *pool, yajl_val obj,
    const char *skip, ngx_str_t *out)
{
    size_t                i, n, len;
    yajl_gen              g;
    const char           *k;
    const unsigned char  *buf;

    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        return NGX_ERROR;
    }

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    if (yajl_gen_map_open(g) != yajl_gen_status_ok) {
        goto failed;
    }

    n = obj->u.object.len;

    for (i = 0; i < n; i++) {
        k = obj->u.object.keys[i];

        if (skip && ngx_strcmp(k, skip) == 0) {
            continue;
        }

        if (yajl_gen_string(g, (const unsigned char *) k, ngx_strlen(k))
            != yajl_gen_status_ok
            || ngx_http_reverse_mcp_json_gen(g, obj->u.object.values[i])
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

    /* drop the braces */
    out->len = len - 2;
    out->data = ngx_pnalloc(pool, out->len + 1);
    if (out->data == NULL) {
        goto failed;
    }

    ngx_memcpy(out->data, buf + 1, out->len);

    yajl_gen_free(g);

    return NGX_OK;

failed:

    yajl_gen_free(g);

    return NGX_ERROR;
}


size_t
ngx_http_reverse_mcp_json_escaped_len(ngx_str_t *s)
{
    size_t   len, i;
    u_char   c;

    len = 2;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t'
            || c == '\b' || c == '\f')
        {
            len += 2;

        } else if (c < 0x20) {
            len += 6;

        } else {
            len++;
        }
    }

    return len;
}


u_char *
ngx_http_reverse_mcp_json_escape(u_char *dst, ngx_str_t *s)
{
    size_t         i;
    u_char         c;
    static u_char  hex[] = "0123456789abcdef";

    *dst++ = '"';

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        switch (c) {
        case '"':  *dst++ = '\\'; *dst++ = '"'; break;
        case '\\': *dst++ = '\\'; *dst++ = '\\'; break;
        case '\n': *dst++ = '\\'; *dst++ = 'n'; break;
        case '\r': *dst++ = '\\'; *dst++ = 'r'; break;
        case '\t': *dst++ = '\\'; *dst++ = 't'; break;
        case '\b': *dst++ = '\\'; *dst++ = 'b'; break;
        case '\f': *dst++ = '\\'; *dst++ = 'f'; break;

        default:
            if (c < 0x20) {
                *dst++ = '\\'; *dst++ = 'u'; *dst++ = '0'; *dst++ = '0';
                *dst++ = hex[c >> 4];
                *dst++ = hex[c & 0xf];

            } else {
                *dst++ = c;
            }
        }
    }

    *dst++ = '"';

    return dst;
}


/*
 * A validating scanner for the fast path of responses: RFC 8259 grammar,
 * nesting as ngx_http_reverse_mcp_json_parse() allows it, no tree.  Each
 * function gets p at the first byte of its token and returns the byte
 * after it, or NULL when the text is not valid JSON.  UTF-8 is not
 * checked here: the WebSocket codec has checked the text message.
 */

static const u_char *ngx_http_reverse_mcp_json_scan_value(const u_char *p,
    const u_char *end, ngx_uint_t depth);


static ngx_inline const u_char *
ngx_http_reverse_mcp_json_scan_ws(const u_char *p, const u_char *end)
{
    while (p < end
           && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    {
        p++;
    }

    return p;
}


#define NGX_HTTP_REVERSE_MCP_JSON_ONES   0x0101010101010101ULL
#define NGX_HTTP_REVERSE_MCP_JSON_HIGHS  0x8080808080808080ULL


/* non-zero when one of the 8 bytes of w is '"', '\\' or below 0x20 */
static ngx_inline uint64_t
ngx_http_reverse_mcp_json_special8(uint64_t w)
{
    uint64_t  q, b;

    q = w ^ (NGX_HTTP_REVERSE_MCP_JSON_ONES * '"');
    b = w ^ (NGX_HTTP_REVERSE_MCP_JSON_ONES * '\\');

    return (((q - NGX_HTTP_REVERSE_MCP_JSON_ONES) & ~q)
            | ((b - NGX_HTTP_REVERSE_MCP_JSON_ONES) & ~b)
            | ((w - NGX_HTTP_REVERSE_MCP_JSON_ONES * 0x20) & ~w))
           & NGX_HTTP_REVERSE_MCP_JSON_HIGHS;
}


static const u_char *
ngx_http_reverse_mcp_json_scan_string(const u_char *p, const u_char *end,
    ngx_uint_t *escaped)
{
    uint64_t    w;
    ngx_uint_t  i;

    /* p is at the opening quote */

    for (p++; p < end; p++) {

        /* plain text, 8 bytes at a time */

        while (end - p >= 8) {
            ngx_memcpy(&w, p, 8);

            if (ngx_http_reverse_mcp_json_special8(w)) {
                break;
            }

            p += 8;
        }

        if (p == end) {
            break;
        }

        if (*p == '"') {
            return p + 1;
        }

        if (*p < 0x20) {
            return NULL;
        }

        if (*p != '\\') {
            continue;
        }

        if (escaped) {
            *escaped = 1;
        }

        if (++p == end) {
            return NULL;
        }

        switch (*p) {

        case '"': case '\\': case '/': case 'b': case 'f': case 'n':
        case 'r': case 't':
            break;

        case 'u':
            if (end - p < 5) {
                return NULL;
            }

            for (i = 1; i <= 4; i++) {
                if (!isxdigit(p[i])) {
                    return NULL;
                }
            }

            p += 4;
            break;

        default:
            return NULL;
        }
    }

    return NULL;
}


static const u_char *
ngx_http_reverse_mcp_json_scan_number(const u_char *p, const u_char *end)
{
    if (p < end && *p == '-') {
        p++;
    }

    if (p == end) {
        return NULL;
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        return NULL;
    }

    if (p < end && *p == '.') {
        if (++p == end || *p < '0' || *p > '9') {
            return NULL;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            return NULL;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    return p;
}


static const u_char *
ngx_http_reverse_mcp_json_scan_container(const u_char *p, const u_char *end,
    ngx_uint_t depth)
{
    u_char  close;

    if (depth >= NGX_HTTP_REVERSE_MCP_JSON_MAX_DEPTH) {
        return NULL;
    }

    close = (*p == '{') ? '}' : ']';

    p = ngx_http_reverse_mcp_json_scan_ws(p + 1, end);

    if (p < end && *p == close) {
        return p + 1;
    }

    for ( ;; ) {

        if (close == '}') {
            if (p == end || *p != '"') {
                return NULL;
            }

            p = ngx_http_reverse_mcp_json_scan_string(p, end, NULL);
            if (p == NULL) {
                return NULL;
            }

            p = ngx_http_reverse_mcp_json_scan_ws(p, end);

            if (p == end || *p != ':') {
                return NULL;
            }

            p = ngx_http_reverse_mcp_json_scan_ws(p + 1, end);
        }

        p = ngx_http_reverse_mcp_json_scan_value(p, end, depth + 1);
        if (p == NULL) {
            return NULL;
        }

        p = ngx_http_reverse_mcp_json_scan_ws(p, end);

        if (p == end) {
            return NULL;
        }

        if (*p == close) {
            return p + 1;
        }

        if (*p != ',') {
            return NULL;
        }

        p = ngx_http_reverse_mcp_json_scan_ws(p + 1, end);
    }
}


static const u_char *
ngx_http_reverse_mcp_json_scan_value(const u_char *p, const u_char *end,
    ngx_uint_t depth)
{
    if (p == end) {
        return NULL;
    }

    switch (*p) {

    case '"':
        return ngx_http_reverse_mcp_json_scan_string(p, end, NULL);

    case '{':
    case '[':
        return ngx_http_reverse_mcp_json_scan_container(p, end, depth);

    case 't':
        return (end - p >= 4 && ngx_strncmp(p, "true", 4) == 0)
               ? p + 4 : NULL;

    case 'f':
        return (end - p >= 5 && ngx_strncmp(p, "false", 5) == 0)
               ? p + 5 : NULL;

    case 'n':
        return (end - p >= 4 && ngx_strncmp(p, "null", 4) == 0)
               ? p + 4 : NULL;

    default:
        return ngx_http_reverse_mcp_json_scan_number(p, end);
    }
}


ngx_int_t
ngx_http_reverse_mcp_json_scan_response(const u_char *p, size_t len,
    int64_t *id, ngx_str_t *value, ngx_uint_t *is_error)
{
    size_t         klen;
    int64_t        n;
    uint64_t       u;
    ngx_uint_t     escaped, seen, neg;
    const u_char  *end, *key, *v, *q;

    enum {
        SEEN_JSONRPC = 1, SEEN_ID = 2, SEEN_RESULT = 4, SEEN_ERROR = 8
    };

    end = p + len;
    seen = 0;
    n = 0;

    p = ngx_http_reverse_mcp_json_scan_ws(p, end);

    if (p == end || *p != '{') {
        return NGX_DECLINED;
    }

    p = ngx_http_reverse_mcp_json_scan_ws(p + 1, end);

    for ( ;; ) {

        if (p == end || *p != '"') {
            return NGX_DECLINED;
        }

        escaped = 0;
        key = p + 1;

        p = ngx_http_reverse_mcp_json_scan_string(p, end, &escaped);
        if (p == NULL || escaped) {
            /* an escaped key might be one of ours: let the parser decide */
            return NGX_DECLINED;
        }

        klen = p - 1 - key;

        p = ngx_http_reverse_mcp_json_scan_ws(p, end);

        if (p == end || *p != ':') {
            return NGX_DECLINED;
        }

        v = ngx_http_reverse_mcp_json_scan_ws(p + 1, end);

        p = ngx_http_reverse_mcp_json_scan_value(v, end, 1);
        if (p == NULL) {
            return NGX_DECLINED;
        }

        if (klen == 7 && ngx_strncmp(key, "jsonrpc", 7) == 0) {
            if ((seen & SEEN_JSONRPC) || p - v != 5
                || ngx_strncmp(v, "\"2.0\"", 5) != 0)
            {
                return NGX_DECLINED;
            }

            seen |= SEEN_JSONRPC;

        } else if (klen == 2 && ngx_strncmp(key, "id", 2) == 0) {
            if (seen & SEEN_ID) {
                return NGX_DECLINED;
            }

            seen |= SEEN_ID;

            /* an integer that fits: no fraction, no exponent */

            neg = (*v == '-');
            u = 0;

            for (q = v + neg; q < p; q++) {
                if (*q < '0' || *q > '9'
                    || u > (uint64_t) (INT64_MAX - (*q - '0')) / 10)
                {
                    return NGX_DECLINED;
                }

                u = u * 10 + (*q - '0');
            }

            n = neg ? - (int64_t) u : (int64_t) u;

        } else if (klen == 6 && ngx_strncmp(key, "result", 6) == 0) {
            if (seen & (SEEN_RESULT|SEEN_ERROR)) {
                return NGX_DECLINED;
            }

            seen |= SEEN_RESULT;
            value->data = (u_char *) v;
            value->len = p - v;

        } else if (klen == 5 && ngx_strncmp(key, "error", 5) == 0) {
            if ((seen & (SEEN_RESULT|SEEN_ERROR)) || *v != '{') {
                return NGX_DECLINED;
            }

            seen |= SEEN_ERROR;
            value->data = (u_char *) v;
            value->len = p - v;

        } else if (klen == 6 && ngx_strncmp(key, "method", 6) == 0) {
            return NGX_DECLINED;
        }

        p = ngx_http_reverse_mcp_json_scan_ws(p, end);

        if (p == end) {
            return NGX_DECLINED;
        }

        if (*p == '}') {
            break;
        }

        if (*p != ',') {
            return NGX_DECLINED;
        }

        p = ngx_http_reverse_mcp_json_scan_ws(p + 1, end);
    }

    if (ngx_http_reverse_mcp_json_scan_ws(p + 1, end) != end
        || (seen & (SEEN_JSONRPC|SEEN_ID)) != (SEEN_JSONRPC|SEEN_ID)
        || !(seen & (SEEN_RESULT|SEEN_ERROR)))
    {
        return NGX_DECLINED;
    }

    *id = n;
    *is_error = (seen & SEEN_ERROR) ? 1 : 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_reverse_mcp_json_gen_done(ngx_pool_t *pool, yajl_gen g,
    ngx_str_t *out)
{
    size_t                len;
    const unsigned char  *buf;

    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        yajl_gen_free(g);
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        yajl_gen_free(g);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, buf, len);
    out->len = len;

    yajl_gen_free(g);

    return NGX_OK;
}
