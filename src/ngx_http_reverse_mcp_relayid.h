/*
 * Gateway ids of relayed requests: pure C, no nginx dependency.
 *
 * Owns the text form "rmcp:<pid>:<key>:<seq>" of the id under which a
 * reverse server's request (sampling/createMessage, elicitation/create,
 * roots/list) reaches the caller of a call, and of the requestState of a
 * 2026-07-28 caller ("rmcp:<owner pid>:<connection>:<park>"): three
 * decimal numbers, no sign, no leading zero, pid 1..2^31-1, the others
 * 0..2^64-1.  Such ids come back from callers, so parsing is strict: one
 * text form per triple.  Unit-tested in test/unit.
 */

#ifndef _NGX_HTTP_REVERSE_MCP_RELAYID_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_RELAYID_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_REVERSE_MCP_RELAYID_MAX  (sizeof("rmcp:::") - 1 + 10 + 20 + 20)
#define NGX_HTTP_REVERSE_MCP_RELAYID_PID_MAX  2147483647


/* writes the id (at most RELAYID_MAX bytes, not terminated); its length */
size_t ngx_http_reverse_mcp_relayid_format(unsigned char *buf, uint64_t pid,
    uint64_t key, uint64_t seq);

/* 0 and the three numbers, or -1: not an id the gateway makes */
int ngx_http_reverse_mcp_relayid_parse(const unsigned char *s, size_t len,
    uint64_t *pid, uint64_t *key, uint64_t *seq);


#endif /* _NGX_HTTP_REVERSE_MCP_RELAYID_H_INCLUDED_ */
