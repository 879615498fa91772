/*
 * Tool-name mapping: pure C, no nginx dependency.
 *
 * Owns: the rules for names (MCP tool names, model function names, server
 * names, the separator), the exposed name of a (server, tool) pair on the
 * aggregate endpoint and in the chat, its reverse (the split, and whether
 * a name has the shape of a shortened one), and collision marking over a
 * list of exposed names.  Unit-tested in test/unit and fuzzed in
 * test/fuzz; the nginx glue (registry lookups, logging) is in the callers.
 *
 * One rule for the aggregate endpoint and the chat: the exposed name is
 * "<server><sep><tool>" when that is a valid function name for OpenAI and
 * Anthropic ([A-Za-z0-9_-]{1,64}, which is also a valid MCP tool name)
 * AND splitting it at the first separator gives back the same pair.
 * Otherwise it is shortened: the composed name with characters outside
 * [A-Za-z0-9_-] replaced by "_", cut to 53 characters, then "_" and the
 * first 10 hex digits of SHA-256(server NUL tool): at most 64 characters,
 * deterministic, the same in every worker and across restarts.  A natural
 * name maps back by its first split; a shortened one by a lookup over the
 * agent's current tools (ngx_http_reverse_mcp_names_find).
 */

#ifndef _NGX_HTTP_REVERSE_MCP_NAMES_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_NAMES_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_REVERSE_MCP_NAMES_MAX       64   /* an exposed name */
#define NGX_HTTP_REVERSE_MCP_NAMES_TOOL_MAX  128  /* an MCP tool name */
#define NGX_HTTP_REVERSE_MCP_NAMES_SEP_MAX   8
#define NGX_HTTP_REVERSE_MCP_NAMES_HASH      10   /* hex digits */
#define NGX_HTTP_REVERSE_MCP_NAMES_PREFIX                                    \
    (NGX_HTTP_REVERSE_MCP_NAMES_MAX - 1 - NGX_HTTP_REVERSE_MCP_NAMES_HASH)

/* results of ngx_http_reverse_mcp_names_find() */
#define NGX_HTTP_REVERSE_MCP_NAMES_NONE      -1
#define NGX_HTTP_REVERSE_MCP_NAMES_AMBIGUOUS -2


/* one pair and its exposed name, for marking and lookups */
typedef struct {
    const unsigned char       *server;
    size_t                     server_len;
    const unsigned char       *tool;
    size_t                     tool_len;
    unsigned char              name[NGX_HTTP_REVERSE_MCP_NAMES_MAX];
    size_t                     name_len;
    unsigned                   shortened:1;
    unsigned                   collides:1;
} ngx_http_reverse_mcp_names_entry_t;


/* an MCP tool name (2025-11-25): 1-128 of [A-Za-z0-9_.-] */
int ngx_http_reverse_mcp_names_tool_valid(const unsigned char *name,
    size_t len);

/* a function name for OpenAI and Anthropic: 1-64 of [A-Za-z0-9_-] */
int ngx_http_reverse_mcp_names_function_valid(const unsigned char *name,
    size_t len);

/*
 * An agent or server name: 1-64 of [A-Za-z0-9_-], without "__" and not
 * ending in "_", so that "<server>__<tool>" splits at its first "__".
 */
int ngx_http_reverse_mcp_names_server_valid(const unsigned char *name,
    size_t len);

/* a separator: 1-8 of [A-Za-z0-9_-] */
int ngx_http_reverse_mcp_names_sep_valid(const unsigned char *sep,
    size_t len);

/*
 * Split at the first separator: 1 with *server_len (the tool follows the
 * separator) when both parts are non-empty, else 0.
 */
int ngx_http_reverse_mcp_names_split(const unsigned char *name, size_t len,
    const unsigned char *sep, size_t sep_len, size_t *server_len);

/*
 * The exposed name of (server, tool): written to out (64 bytes at most),
 * returns its length; *shortened tells which form it has.  0 when a part
 * is empty or too long (server 64, tool 128, separator 8): no name.
 */
size_t ngx_http_reverse_mcp_names_expose(const unsigned char *server,
    size_t server_len, const unsigned char *sep, size_t sep_len,
    const unsigned char *tool, size_t tool_len, unsigned char *out,
    int *shortened);

/* 1 if a name has the shape of a shortened one ("..._" + 10 hex digits) */
int ngx_http_reverse_mcp_names_shortened(const unsigned char *name,
    size_t len);

/*
 * Fill in the exposed names of n entries (server and tool set) and mark
 * every entry whose name is also another's (all of them: none wins) or
 * that has no name (a part out of bounds).
 * order: scratch space for n pointers.  Returns the number marked.
 */
size_t ngx_http_reverse_mcp_names_mark(
    ngx_http_reverse_mcp_names_entry_t *entries, size_t n,
    const unsigned char *sep, size_t sep_len,
    ngx_http_reverse_mcp_names_entry_t **order);

/*
 * The entry whose exposed name is name (entries filled in by
 * ngx_http_reverse_mcp_names_mark or _expose): its index,
 * NGX_HTTP_REVERSE_MCP_NAMES_NONE or NGX_HTTP_REVERSE_MCP_NAMES_AMBIGUOUS.
 */
long ngx_http_reverse_mcp_names_find(
    const ngx_http_reverse_mcp_names_entry_t *entries, size_t n,
    const unsigned char *name, size_t len);


#endif /* _NGX_HTTP_REVERSE_MCP_NAMES_H_INCLUDED_ */
