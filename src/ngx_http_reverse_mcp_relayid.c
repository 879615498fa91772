/*
 * Gateway ids of relayed requests (see ngx_http_reverse_mcp_relayid.h).
 */

#include <string.h>

#include "ngx_http_reverse_mcp_relayid.h"


static unsigned char *ngx_http_reverse_mcp_relayid_num(unsigned char *p,
    uint64_t n);
static const unsigned char *ngx_http_reverse_mcp_relayid_scan(
    const unsigned char *p, const unsigned char *end, uint64_t *n);


static unsigned char *
ngx_http_reverse_mcp_relayid_num(unsigned char *p, uint64_t n)
{
    unsigned char  tmp[20], *t;

    t = tmp + sizeof(tmp);

    do {
        *--t = (unsigned char) ('0' + n % 10);
        n /= 10;
    } while (n);

    while (t < tmp + sizeof(tmp)) {
        *p++ = *t++;
    }

    return p;
}


size_t
ngx_http_reverse_mcp_relayid_format(unsigned char *buf, uint64_t pid,
    uint64_t key, uint64_t seq)
{
    unsigned char  *p;

    p = buf;

    memcpy(p, "rmcp:", 5);
    p = ngx_http_reverse_mcp_relayid_num(p + 5, pid);
    *p++ = ':';
    p = ngx_http_reverse_mcp_relayid_num(p, key);
    *p++ = ':';
    p = ngx_http_reverse_mcp_relayid_num(p, seq);

    return (size_t) (p - buf);
}


/* one decimal number in canonical form; NULL if there is none */
static const unsigned char *
ngx_http_reverse_mcp_relayid_scan(const unsigned char *p,
    const unsigned char *end, uint64_t *n)
{
    unsigned              d;
    uint64_t              v;
    const unsigned char  *start;

    start = p;
    v = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        d = (unsigned) (*p - '0');

        if (v > (UINT64_MAX - d) / 10) {
            return NULL;                            /* overflow */
        }

        v = v * 10 + d;
        p++;
    }

    if (p == start || (*start == '0' && p - start > 1)) {
        return NULL;                                /* none, leading 0 */
    }

    *n = v;

    return p;
}


int
ngx_http_reverse_mcp_relayid_parse(const unsigned char *s, size_t len,
    uint64_t *pid, uint64_t *key, uint64_t *seq)
{
    uint64_t              n[3];
    unsigned              i;
    const unsigned char  *p, *end;

    if (len < sizeof("rmcp:") - 1 || memcmp(s, "rmcp:", 5) != 0) {
        return -1;
    }

    p = s + 5;
    end = s + len;

    for (i = 0; i < 3; i++) {
        p = ngx_http_reverse_mcp_relayid_scan(p, end, &n[i]);

        if (p == NULL) {
            return -1;
        }

        if (i < 2) {
            if (p == end || *p != ':') {
                return -1;
            }

            p++;
        }
    }

    if (p != end || n[0] == 0 || n[0] > NGX_HTTP_REVERSE_MCP_RELAYID_PID_MAX)
    {
        return -1;
    }

    *pid = n[0];
    *key = n[1];
    *seq = n[2];

    return 0;
}
