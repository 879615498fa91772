/*
 * JSON helpers on top of yajl: parsing with a nesting limit, member access,
 * re-serialisation of parsed values (numbers keep their original text), and
 * string escaping.  No nginx event or request code lives here.
 */

#ifndef _NGX_HTTP_REVERSE_MCP_JSON_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <yajl/yajl_tree.h>
#include <yajl/yajl_gen.h>


#define NGX_HTTP_REVERSE_MCP_JSON_MAX_DEPTH  64


/*
 * Parse len bytes of JSON.  Returns NULL on error with a short reason in
 * err (errlen bytes, NUL-terminated).  Free the result with yajl_tree_free.
 */
yajl_val ngx_http_reverse_mcp_json_parse(const u_char *data, size_t len,
    char *err, size_t errlen);

/* object member by key, or NULL (also when obj is not an object) */
yajl_val ngx_http_reverse_mcp_json_get(yajl_val obj, const char *key);

/* string value as ngx_str_t (points into the tree); NGX_DECLINED if absent
 * or not a string */
ngx_int_t ngx_http_reverse_mcp_json_get_str(yajl_val obj, const char *key,
    ngx_str_t *out);

/* write a parsed value into a generator */
ngx_int_t ngx_http_reverse_mcp_json_gen(yajl_gen g, yajl_val v);

/* serialise a parsed value into pool memory */
ngx_int_t ngx_http_reverse_mcp_json_dump(ngx_pool_t *pool, yajl_val v,
    ngx_str_t *out);

/*
 * The members of an object but skip (may be NULL), serialised without the
 * surrounding braces: "a":1,"b":[2]  (empty when there are none).
 */
ngx_int_t ngx_http_reverse_mcp_json_dump_members(ngx_pool_t *pool,
    yajl_val obj, const char *skip, ngx_str_t *out);

/*
 * Serialise root, writing the JSON text literal in place of the value
 * target (a node inside root).
 */
ngx_int_t ngx_http_reverse_mcp_json_dump_replace(ngx_pool_t *pool,
    yajl_val root, yajl_val target, ngx_str_t *literal, ngx_str_t *out);

/*
 * The fast path for a JSON-RPC response, without a tree: len bytes are
 * checked to be valid JSON (nesting as json_parse allows; UTF-8 is left to
 * the caller) forming one object with "jsonrpc":"2.0", an integer "id" and
 * either "result" or "error" (an object), and no "method".  NGX_OK: *id,
 * *is_error and *value (the value's bytes, inside the input) are set.
 * NGX_DECLINED: anything else (also escaped or repeated keys): parse it.
 */
ngx_int_t ngx_http_reverse_mcp_json_scan_response(const u_char *p,
    size_t len, int64_t *id, ngx_str_t *value, ngx_uint_t *is_error);

/* length of s as a JSON string literal, quotes included */
/* the generated text into pool memory; frees g in every case */
ngx_int_t ngx_http_reverse_mcp_json_gen_done(ngx_pool_t *pool, yajl_gen g,
    ngx_str_t *out);

size_t ngx_http_reverse_mcp_json_escaped_len(ngx_str_t *s);

/* write s as a JSON string literal (quotes included), return the end */
u_char *ngx_http_reverse_mcp_json_escape(u_char *dst, ngx_str_t *s);


#endif /* _NGX_HTTP_REVERSE_MCP_JSON_H_INCLUDED_ */
