/*
 * WebSocket frame codec (RFC 6455): pure C (libc + OpenSSL SHA-1),
 * no nginx dependency.
 *
 * Owns: the incremental frame parser and its state machine, the size limit
 * (checked on the complete header, before any allocation), the message
 * buffer and its retention policy, UTF-8 and close-payload validation, the
 * frame header encoder, masking, close payload building and the
 * Sec-WebSocket-Key / Sec-WebSocket-Accept helpers.
 */


#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "ngx_http_reverse_mcp_ws_codec.h"


/* parser states (p->state) */
#define NGX_HTTP_REVERSE_MCP_WS_ST_HEADER   0
#define NGX_HTTP_REVERSE_MCP_WS_ST_PAYLOAD  1
#define NGX_HTTP_REVERSE_MCP_WS_ST_FAILED   2

/* max_message == 0 means this */
#define NGX_HTTP_REVERSE_MCP_WS_DEFAULT_MAX  (16 * 1024 * 1024)

/* a message buffer up to this size is kept between messages */
#define NGX_HTTP_REVERSE_MCP_WS_KEEP_BUFFER  4096

/* longest Sec-WebSocket-Key accepted by accept_key() */
#define NGX_HTTP_REVERSE_MCP_WS_MAX_KEY      128

#define NGX_HTTP_REVERSE_MCP_WS_GUID  "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#define ngx_http_reverse_mcp_ws_is_control(op)  ((op) & 0x8)


static int ngx_http_reverse_mcp_ws_fail(ngx_http_reverse_mcp_ws_parser_t *p,
    int code, const char *error);
static int ngx_http_reverse_mcp_ws_header_start(
    ngx_http_reverse_mcp_ws_parser_t *p);
static int ngx_http_reverse_mcp_ws_header_done(
    ngx_http_reverse_mcp_ws_parser_t *p);
static int ngx_http_reverse_mcp_ws_frame_done(
    ngx_http_reverse_mcp_ws_parser_t *p);
static int ngx_http_reverse_mcp_ws_control_done(
    ngx_http_reverse_mcp_ws_parser_t *p);
static int ngx_http_reverse_mcp_ws_message_done(
    ngx_http_reverse_mcp_ws_parser_t *p);
static void ngx_http_reverse_mcp_ws_mask_copy(unsigned char *dst,
    const unsigned char *src, size_t len, const unsigned char *key,
    size_t offset);


static const unsigned char  ngx_http_reverse_mcp_ws_empty[1] = { 0 };

static const char  *ngx_http_reverse_mcp_ws_bad_opcode[16] = {
    NULL, NULL, NULL,
    "unknown opcode 0x3", "unknown opcode 0x4", "unknown opcode 0x5",
    "unknown opcode 0x6", "unknown opcode 0x7",
    NULL, NULL, NULL,
    "unknown opcode 0xb", "unknown opcode 0xc", "unknown opcode 0xd",
    "unknown opcode 0xe", "unknown opcode 0xf"
};

static const unsigned char  ngx_http_reverse_mcp_ws_base64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


void
ngx_http_reverse_mcp_ws_parser_init(ngx_http_reverse_mcp_ws_parser_t *p)
{
    p->close_code = 0;
    p->error = NULL;

    p->state = NGX_HTTP_REVERSE_MCP_WS_ST_HEADER;
    memset(p->hdr, 0, sizeof(p->hdr));
    p->hdr_len = 0;
    p->hdr_need = 2;
    p->opcode = 0;
    p->fin = 0;
    p->masked = 0;
    memset(p->mask, 0, sizeof(p->mask));
    p->frame_len = 0;
    p->frame_got = 0;
    p->msg_opcode = 0;
    p->msg = NULL;
    p->msg_len = 0;
    p->msg_cap = 0;
    p->ctl_len = 0;
    p->frames = 0;
    p->messages = 0;
}


void
ngx_http_reverse_mcp_ws_parser_free(ngx_http_reverse_mcp_ws_parser_t *p)
{
    free(p->msg);

    p->msg = NULL;
    p->msg_len = 0;
    p->msg_cap = 0;
}


void
ngx_http_reverse_mcp_ws_parser_trim(ngx_http_reverse_mcp_ws_parser_t *p)
{
    if (p->msg && p->msg_opcode == 0) {
        free(p->msg);
        p->msg = NULL;
        p->msg_cap = 0;
    }
}


int
ngx_http_reverse_mcp_ws_parser_idle(ngx_http_reverse_mcp_ws_parser_t *p)
{
    return p->state == NGX_HTTP_REVERSE_MCP_WS_ST_HEADER
           && p->hdr_len == 0
           && p->msg_opcode == 0;
}


int
ngx_http_reverse_mcp_ws_parse(ngx_http_reverse_mcp_ws_parser_t *p,
    const unsigned char *buf, size_t len, size_t *consumed)
{
    int                   rc;
    size_t                n;
    uint64_t              rest;
    const unsigned char  *pos, *end;

    if (p->state == NGX_HTTP_REVERSE_MCP_WS_ST_FAILED || len == 0) {
        if (consumed) {
            *consumed = 0;
        }

        return (p->state == NGX_HTTP_REVERSE_MCP_WS_ST_FAILED)
               ? NGX_HTTP_REVERSE_MCP_WS_FAIL : NGX_HTTP_REVERSE_MCP_WS_OK;
    }

    pos = buf;
    end = buf + len;
    rc = NGX_HTTP_REVERSE_MCP_WS_OK;

    while (pos < end) {

        if (p->state == NGX_HTTP_REVERSE_MCP_WS_ST_HEADER) {

            n = p->hdr_need - p->hdr_len;
            if (n > (size_t) (end - pos)) {
                n = (size_t) (end - pos);
            }

            memcpy(p->hdr + p->hdr_len, pos, n);
            p->hdr_len += n;
            pos += n;

            if (p->hdr_len < p->hdr_need) {
                break;
            }

            if (p->hdr_len == 2) {
                rc = ngx_http_reverse_mcp_ws_header_start(p);
                if (rc != NGX_HTTP_REVERSE_MCP_WS_OK) {
                    goto done;
                }

                if (p->hdr_len < p->hdr_need) {
                    continue;
                }
            }

            rc = ngx_http_reverse_mcp_ws_header_done(p);
            if (rc != NGX_HTTP_REVERSE_MCP_WS_OK) {
                goto done;
            }

            if (p->frame_len == 0) {
                rc = ngx_http_reverse_mcp_ws_frame_done(p);
                if (rc != NGX_HTTP_REVERSE_MCP_WS_OK) {
                    goto done;
                }

                continue;
            }

            p->state = NGX_HTTP_REVERSE_MCP_WS_ST_PAYLOAD;
            continue;
        }

        /* NGX_HTTP_REVERSE_MCP_WS_ST_PAYLOAD */

        rest = p->frame_len - p->frame_got;
        n = (size_t) (end - pos);
        if ((uint64_t) n > rest) {
            n = (size_t) rest;
        }

        if (ngx_http_reverse_mcp_ws_is_control(p->opcode)) {
            ngx_http_reverse_mcp_ws_mask_copy(p->ctl + p->ctl_len, pos, n,
                                              p->masked ? p->mask : NULL,
                                              (size_t) p->frame_got);
            p->ctl_len += n;

        } else {
            ngx_http_reverse_mcp_ws_mask_copy(p->msg + p->msg_len, pos, n,
                                              p->masked ? p->mask : NULL,
                                              (size_t) p->frame_got);
            p->msg_len += n;
        }

        p->frame_got += n;
        pos += n;

        if (p->frame_got == p->frame_len) {
            rc = ngx_http_reverse_mcp_ws_frame_done(p);
            if (rc != NGX_HTTP_REVERSE_MCP_WS_OK) {
                goto done;
            }
        }
    }

done:

    if (consumed) {
        *consumed = (size_t) (pos - buf);
    }

    return rc;
}


static int
ngx_http_reverse_mcp_ws_fail(ngx_http_reverse_mcp_ws_parser_t *p, int code,
    const char *error)
{
    p->state = NGX_HTTP_REVERSE_MCP_WS_ST_FAILED;
    p->close_code = code;
    p->error = error;

    return NGX_HTTP_REVERSE_MCP_WS_FAIL;
}


/* the first two header bytes are in: check them, learn the header size */

static int
ngx_http_reverse_mcp_ws_header_start(ngx_http_reverse_mcp_ws_parser_t *p)
{
    size_t  len7;

    p->fin = (p->hdr[0] & 0x80) ? 1 : 0;
    p->opcode = p->hdr[0] & 0x0f;
    p->masked = (p->hdr[1] & 0x80) ? 1 : 0;
    len7 = p->hdr[1] & 0x7f;

    if (p->hdr[0] & 0x70) {
        return ngx_http_reverse_mcp_ws_fail(p,
                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL, "RSV bits set");
    }

    if (ngx_http_reverse_mcp_ws_bad_opcode[p->opcode]) {
        return ngx_http_reverse_mcp_ws_fail(p,
                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                   ngx_http_reverse_mcp_ws_bad_opcode[p->opcode]);
    }

    if (p->server_side && !p->masked) {
        return ngx_http_reverse_mcp_ws_fail(p,
                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                   "unmasked client frame");
    }

    if (!p->server_side && p->masked) {
        return ngx_http_reverse_mcp_ws_fail(p,
                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                   "masked server frame");
    }

    if (ngx_http_reverse_mcp_ws_is_control(p->opcode)) {

        if (!p->fin) {
            return ngx_http_reverse_mcp_ws_fail(p,
                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                       "fragmented control frame");
        }

        if (len7 > 125) {
            return ngx_http_reverse_mcp_ws_fail(p,
                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                       "control frame too long");
        }

    } else if (p->opcode == NGX_HTTP_REVERSE_MCP_WS_OP_CONT) {

        if (p->msg_opcode == 0) {
            return ngx_http_reverse_mcp_ws_fail(p,
                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                       "unexpected continuation frame");
        }

    } else if (p->msg_opcode != 0) {
        return ngx_http_reverse_mcp_ws_fail(p,
                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                   "new data frame inside fragmented message");
    }

    p->hdr_need = 2;

    if (len7 == 126) {
        p->hdr_need += 2;

    } else if (len7 == 127) {
        p->hdr_need += 8;
    }

    if (p->masked) {
        p->hdr_need += 4;
    }

    return NGX_HTTP_REVERSE_MCP_WS_OK;
}


/* the whole header is in: check the length, make room for the payload */

static int
ngx_http_reverse_mcp_ws_header_done(ngx_http_reverse_mcp_ws_parser_t *p)
{
    size_t          i, off, need, cap;
    uint64_t        len, max;
    unsigned char  *m;

    len = p->hdr[1] & 0x7f;
    off = 2;

    if (len == 126) {
        len = ((uint64_t) p->hdr[2] << 8) | p->hdr[3];
        off = 4;

        if (len < 126) {
            return ngx_http_reverse_mcp_ws_fail(p,
                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                       "non-minimal length encoding");
        }

    } else if (len == 127) {

        if (p->hdr[2] & 0x80) {
            return ngx_http_reverse_mcp_ws_fail(p,
                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                       "64-bit length with MSB set");
        }

        len = 0;
        for (i = 2; i < 10; i++) {
            len = (len << 8) | p->hdr[i];
        }

        off = 10;

        if (len <= 0xffff) {
            return ngx_http_reverse_mcp_ws_fail(p,
                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                       "non-minimal length encoding");
        }
    }

    if (p->masked) {
        memcpy(p->mask, p->hdr + off, 4);
    }

    p->frame_len = len;
    p->frame_got = 0;

    if (ngx_http_reverse_mcp_ws_is_control(p->opcode)) {
        p->ctl_len = 0;
        return NGX_HTTP_REVERSE_MCP_WS_OK;
    }

    /* data frame: the size limit applies to the whole message */

    max = p->max_message ? p->max_message
                         : NGX_HTTP_REVERSE_MCP_WS_DEFAULT_MAX;

    if (p->msg_len > max || len > max - p->msg_len) {
        return ngx_http_reverse_mcp_ws_fail(p,
                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_TOO_BIG, "message too big");
    }

#if (SIZE_MAX < UINT64_MAX)
    if (len > (uint64_t) (SIZE_MAX - p->msg_len)) {
        return ngx_http_reverse_mcp_ws_fail(p,
                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_TOO_BIG, "message too big");
    }
#endif

    if (p->opcode != NGX_HTTP_REVERSE_MCP_WS_OP_CONT) {
        p->msg_opcode = p->opcode;
        p->msg_len = 0;
    }

    need = p->msg_len + (size_t) len;

    if (need <= p->msg_cap) {
        return NGX_HTTP_REVERSE_MCP_WS_OK;
    }

    if (p->msg_len == 0) {

        /* first data: exactly the frame, nothing to keep */

        free(p->msg);
        p->msg = NULL;
        p->msg_cap = 0;

        m = malloc(need);

        cap = need;

    } else {

        /*
         * a continuation frame: grow geometrically (but never past the
         * limit) so that many small fragments cost amortised O(n)
         */

        cap = p->msg_cap * 2;

        if ((uint64_t) cap > max) {
            cap = (size_t) max;
        }

        if (cap < need) {
            cap = need;
        }

        m = realloc(p->msg, cap);
    }

    if (m == NULL) {
        return ngx_http_reverse_mcp_ws_fail(p,
                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_INTERNAL, "out of memory");
    }

    p->msg = m;
    p->msg_cap = cap;

    return NGX_HTTP_REVERSE_MCP_WS_OK;
}


static int
ngx_http_reverse_mcp_ws_frame_done(ngx_http_reverse_mcp_ws_parser_t *p)
{
    p->frames++;

    p->state = NGX_HTTP_REVERSE_MCP_WS_ST_HEADER;
    p->hdr_len = 0;
    p->hdr_need = 2;

    if (ngx_http_reverse_mcp_ws_is_control(p->opcode)) {
        return ngx_http_reverse_mcp_ws_control_done(p);
    }

    if (!p->fin) {
        return NGX_HTTP_REVERSE_MCP_WS_OK;
    }

    return ngx_http_reverse_mcp_ws_message_done(p);
}


static int
ngx_http_reverse_mcp_ws_control_done(ngx_http_reverse_mcp_ws_parser_t *p)
{
    int     code;
    size_t  len;

    len = p->ctl_len;
    p->ctl_len = 0;

    if (p->opcode == NGX_HTTP_REVERSE_MCP_WS_OP_CLOSE && len > 0) {

        if (len == 1) {
            return ngx_http_reverse_mcp_ws_fail(p,
                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                       "close payload of 1 byte");
        }

        code = (p->ctl[0] << 8) | p->ctl[1];

        if (!ngx_http_reverse_mcp_ws_close_code_valid(code)) {
            return ngx_http_reverse_mcp_ws_fail(p,
                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL,
                       "invalid close code");
        }

        if (!ngx_http_reverse_mcp_ws_utf8_valid(p->ctl + 2, len - 2)) {
            return ngx_http_reverse_mcp_ws_fail(p,
                       NGX_HTTP_REVERSE_MCP_WS_CLOSE_BAD_DATA,
                       "invalid UTF-8 in close reason");
        }
    }

    if (p->on_control
        && p->on_control(p->data, p->opcode, p->ctl, len) != 0)
    {
        return NGX_HTTP_REVERSE_MCP_WS_STOP;
    }

    return NGX_HTTP_REVERSE_MCP_WS_OK;
}


static int
ngx_http_reverse_mcp_ws_message_done(ngx_http_reverse_mcp_ws_parser_t *p)
{
    int                   rc, opcode;
    size_t                len;
    const unsigned char  *data;

    opcode = p->msg_opcode;
    len = p->msg_len;
    data = p->msg ? p->msg : ngx_http_reverse_mcp_ws_empty;

    if (opcode == NGX_HTTP_REVERSE_MCP_WS_OP_TEXT
        && !ngx_http_reverse_mcp_ws_utf8_valid(data, len))
    {
        return ngx_http_reverse_mcp_ws_fail(p,
                   NGX_HTTP_REVERSE_MCP_WS_CLOSE_BAD_DATA,
                   "invalid UTF-8 in text message");
    }

    /* the parser is ready for the next frame before the callback runs */

    p->msg_opcode = 0;
    p->msg_len = 0;
    p->messages++;

    rc = 0;

    if (p->on_message) {
        rc = p->on_message(p->data, opcode, data, len);
    }

    if (p->msg_cap > NGX_HTTP_REVERSE_MCP_WS_KEEP_BUFFER) {
        free(p->msg);
        p->msg = NULL;
        p->msg_cap = 0;
    }

    return rc ? NGX_HTTP_REVERSE_MCP_WS_STOP : NGX_HTTP_REVERSE_MCP_WS_OK;
}


/* copy len bytes, XOR-ing with key (if not NULL) from key offset "offset" */

static void
ngx_http_reverse_mcp_ws_mask_copy(unsigned char *dst, const unsigned char *src,
    size_t len, const unsigned char *key, size_t offset)
{
    size_t          i;
    uint64_t        w, k;
    unsigned char   kb[8];

    if (key == NULL) {
        if (dst != src) {
            memmove(dst, src, len);
        }

        return;
    }

    for (i = 0; i < 8; i++) {
        kb[i] = key[(offset + i) & 3];
    }

    memcpy(&k, kb, 8);

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, src + i, 8);
        w ^= k;
        memcpy(dst + i, &w, 8);
    }

    for ( /* void */ ; i < len; i++) {
        dst[i] = src[i] ^ kb[i & 7];
    }
}


size_t
ngx_http_reverse_mcp_ws_frame_header(unsigned char *out, int opcode,
    uint64_t len, const unsigned char *mask)
{
    size_t  n;
    int     i;

    out[0] = (unsigned char) (0x80 | (opcode & 0x0f));

    if (len < 126) {
        out[1] = (unsigned char) len;
        n = 2;

    } else if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char) (len >> 8);
        out[3] = (unsigned char) len;
        n = 4;

    } else {
        out[1] = 127;

        for (i = 0; i < 8; i++) {
            out[2 + i] = (unsigned char) (len >> (56 - 8 * i));
        }

        n = 10;
    }

    if (mask) {
        out[1] |= 0x80;
        memcpy(out + n, mask, 4);
        n += 4;
    }

    return n;
}


void
ngx_http_reverse_mcp_ws_mask(unsigned char *buf, size_t len,
    const unsigned char *key, size_t offset)
{
    ngx_http_reverse_mcp_ws_mask_copy(buf, buf, len, key, offset);
}


/*
 * code 0 (or 1005, "no status", which must not be sent) gives an empty
 * payload; otherwise the reason is cut at a UTF-8 sequence boundary
 */

size_t
ngx_http_reverse_mcp_ws_close_payload(unsigned char *out, int code,
    const char *reason, size_t reason_len)
{
    size_t  n;

    if (code == 0 || code == NGX_HTTP_REVERSE_MCP_WS_CLOSE_NO_STATUS) {
        return 0;
    }

    out[0] = (unsigned char) ((code >> 8) & 0xff);
    out[1] = (unsigned char) (code & 0xff);

    if (reason == NULL) {
        return 2;
    }

    n = reason_len;

    if (n > 123) {
        n = 123;

        /* reason[n] is the first byte cut: do not leave its lead behind */

        while (n > 0 && ((unsigned char) reason[n] & 0xc0) == 0x80) {
            n--;
        }
    }

    memcpy(out + 2, reason, n);

    return 2 + n;
}


int
ngx_http_reverse_mcp_ws_utf8_valid(const unsigned char *buf, size_t len)
{
    uint64_t              w;
    unsigned int          c, c1;
    const unsigned char  *p, *end;

    if (len == 0) {
        return 1;
    }

    p = buf;
    end = buf + len;

    while (p < end) {

        /* ASCII fast path, 8 bytes at a time */

        while (end - p >= 8) {
            memcpy(&w, p, 8);

            if (w & 0x8080808080808080ULL) {
                break;
            }

            p += 8;
        }

        if (p == end) {
            break;
        }

        c = *p;

        if (c < 0x80) {
            p++;
            continue;
        }

        if (c < 0xc2) {
            /* a continuation byte, or an overlong C0 / C1 lead */
            return 0;
        }

        if (c < 0xe0) {
            if (end - p < 2 || (p[1] & 0xc0) != 0x80) {
                return 0;
            }

            p += 2;
            continue;
        }

        if (c < 0xf0) {
            if (end - p < 3) {
                return 0;
            }

            c1 = p[1];

            if ((c1 & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
                || (c == 0xe0 && c1 < 0xa0)      /* overlong */
                || (c == 0xed && c1 >= 0xa0))    /* surrogate */
            {
                return 0;
            }

            p += 3;
            continue;
        }

        if (c < 0xf5) {
            if (end - p < 4) {
                return 0;
            }

            c1 = p[1];

            if ((c1 & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
                || (p[3] & 0xc0) != 0x80
                || (c == 0xf0 && c1 < 0x90)      /* overlong */
                || (c == 0xf4 && c1 >= 0x90))    /* > U+10FFFF */
            {
                return 0;
            }

            p += 4;
            continue;
        }

        /* F5..FF */
        return 0;
    }

    return 1;
}


int
ngx_http_reverse_mcp_ws_close_code_valid(int code)
{
    if (code >= 1000 && code <= 1003) {
        return 1;
    }

    /* 1004 reserved, 1005 and 1006 never on the wire */

    if (code >= 1007 && code <= 1014) {
        return 1;
    }

    /* 1015 never on the wire, 1016-2999 reserved */

    return code >= 3000 && code <= 4999;
}


int
ngx_http_reverse_mcp_ws_accept_key(const unsigned char *key, size_t key_len,
    unsigned char out[28])
{
    size_t          i, n, glen;
    uint32_t        v;
    unsigned char   buf[NGX_HTTP_REVERSE_MCP_WS_MAX_KEY
                        + sizeof(NGX_HTTP_REVERSE_MCP_WS_GUID)];
    unsigned char   md[SHA_DIGEST_LENGTH];

    if (key == NULL || key_len > NGX_HTTP_REVERSE_MCP_WS_MAX_KEY) {
        return -1;
    }

    glen = sizeof(NGX_HTTP_REVERSE_MCP_WS_GUID) - 1;

    memcpy(buf, key, key_len);
    memcpy(buf + key_len, NGX_HTTP_REVERSE_MCP_WS_GUID, glen);

    if (SHA1(buf, key_len + glen, md) == NULL) {
        return -1;
    }

    /* base64 of 20 bytes: 6 groups of 3, then 2 bytes and one "=" */

    n = 0;

    for (i = 0; i < 18; i += 3) {
        v = ((uint32_t) md[i] << 16) | ((uint32_t) md[i + 1] << 8) | md[i + 2];

        out[n++] = ngx_http_reverse_mcp_ws_base64[(v >> 18) & 0x3f];
        out[n++] = ngx_http_reverse_mcp_ws_base64[(v >> 12) & 0x3f];
        out[n++] = ngx_http_reverse_mcp_ws_base64[(v >> 6) & 0x3f];
        out[n++] = ngx_http_reverse_mcp_ws_base64[v & 0x3f];
    }

    v = ((uint32_t) md[18] << 16) | ((uint32_t) md[19] << 8);

    out[n++] = ngx_http_reverse_mcp_ws_base64[(v >> 18) & 0x3f];
    out[n++] = ngx_http_reverse_mcp_ws_base64[(v >> 12) & 0x3f];
    out[n++] = ngx_http_reverse_mcp_ws_base64[(v >> 6) & 0x3f];
    out[n] = '=';

    return 0;
}


int
ngx_http_reverse_mcp_ws_key_valid(const unsigned char *key, size_t len)
{
    size_t  i;

    if (key == NULL || len != 24 || key[22] != '=' || key[23] != '=') {
        return 0;
    }

    for (i = 0; i < 22; i++) {
        if (!((key[i] >= 'A' && key[i] <= 'Z')
              || (key[i] >= 'a' && key[i] <= 'z')
              || (key[i] >= '0' && key[i] <= '9')
              || key[i] == '+' || key[i] == '/'))
        {
            return 0;
        }
    }

    return 1;
}
