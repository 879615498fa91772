/*
 * Unit tests for the WebSocket frame codec (src/ngx_http_reverse_mcp_ws_codec)
 * using cmocka: every protocol violation with its close code, lengths,
 * fragmentation, UTF-8, size limit, close payloads, encoder, handshake keys,
 * chunking equivalence and callback STOP.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ngx_http_reverse_mcp_ws_codec.h"


#define OP_CONT    NGX_HTTP_REVERSE_MCP_WS_OP_CONT
#define OP_TEXT    NGX_HTTP_REVERSE_MCP_WS_OP_TEXT
#define OP_BINARY  NGX_HTTP_REVERSE_MCP_WS_OP_BINARY
#define OP_CLOSE   NGX_HTTP_REVERSE_MCP_WS_OP_CLOSE
#define OP_PING    NGX_HTTP_REVERSE_MCP_WS_OP_PING
#define OP_PONG    NGX_HTTP_REVERSE_MCP_WS_OP_PONG

#define WS_OK      NGX_HTTP_REVERSE_MCP_WS_OK
#define WS_FAIL    NGX_HTTP_REVERSE_MCP_WS_FAIL
#define WS_STOP    NGX_HTTP_REVERSE_MCP_WS_STOP

#define MAX_EVENTS  64

/* length encodings for build_frame() */
#define LEN_AUTO  0
#define LEN_7     7
#define LEN_16    16
#define LEN_64    64


typedef ngx_http_reverse_mcp_ws_parser_t  parser_t;


typedef struct {
    int             control;
    int             opcode;
    size_t          len;
    unsigned char  *data;
    int             null_payload;
} event_t;


typedef struct {
    event_t         ev[MAX_EVENTS];
    size_t          n;
    size_t          stop_at;     /* 1-based event number to stop at, 0 none */
} recorder_t;


static const unsigned char  test_key[4] = { 0x37, 0xfa, 0x21, 0x3d };


/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static int
record(void *data, int control, int opcode, const unsigned char *payload,
    size_t len)
{
    recorder_t  *r = data;
    event_t     *e;

    assert_true(r->n < MAX_EVENTS);

    e = &r->ev[r->n++];
    e->control = control;
    e->opcode = opcode;
    e->len = len;
    e->null_payload = (payload == NULL);
    e->data = malloc(len ? len : 1);
    assert_non_null(e->data);

    if (len) {
        memcpy(e->data, payload, len);
    }

    return r->stop_at != 0 && r->n == r->stop_at;
}


static int
on_message(void *data, int opcode, const unsigned char *payload, size_t len)
{
    return record(data, 0, opcode, payload, len);
}


static int
on_control(void *data, int opcode, const unsigned char *payload, size_t len)
{
    return record(data, 1, opcode, payload, len);
}


static void
recorder_reset(recorder_t *r)
{
    size_t  i;

    for (i = 0; i < r->n; i++) {
        free(r->ev[i].data);
    }

    memset(r, 0, sizeof(recorder_t));
}


static void
parser_setup(parser_t *p, recorder_t *r, int server_side, uint64_t max)
{
    memset(p, 0, sizeof(parser_t));
    memset(r, 0, sizeof(recorder_t));

    p->server_side = server_side ? 1 : 0;
    p->max_message = max;
    p->on_message = on_message;
    p->on_control = on_control;
    p->data = r;

    ngx_http_reverse_mcp_ws_parser_init(p);
}


static void
parser_teardown(parser_t *p, recorder_t *r)
{
    ngx_http_reverse_mcp_ws_parser_free(p);
    recorder_reset(r);
}


/*
 * Append a frame with full control of every header bit: fin, rsv (3 bits),
 * opcode (4 bits), length encoding and the mask key (NULL: unmasked).
 */

static size_t
build_frame_ex(unsigned char *out, int fin, int rsv, int opcode,
    const void *payload, size_t len, uint64_t claimed, int lenmode,
    const unsigned char *mask)
{
    size_t  n;
    int     i;

    out[0] = (unsigned char) ((fin ? 0x80 : 0) | ((rsv & 7) << 4)
                              | (opcode & 0x0f));

    if (lenmode == LEN_AUTO) {
        lenmode = claimed < 126 ? LEN_7 : claimed <= 0xffff ? LEN_16 : LEN_64;
    }

    if (lenmode == LEN_7) {
        out[1] = (unsigned char) claimed;
        n = 2;

    } else if (lenmode == LEN_16) {
        out[1] = 126;
        out[2] = (unsigned char) (claimed >> 8);
        out[3] = (unsigned char) claimed;
        n = 4;

    } else {
        out[1] = 127;
        for (i = 0; i < 8; i++) {
            out[2 + i] = (unsigned char) (claimed >> (56 - 8 * i));
        }
        n = 10;
    }

    if (mask) {
        out[1] |= 0x80;
        memcpy(out + n, mask, 4);
        n += 4;
    }

    if (len) {
        memcpy(out + n, payload, len);

        if (mask) {
            ngx_http_reverse_mcp_ws_mask(out + n, len, mask, 0);
        }
    }

    return n + len;
}


/* a normal frame: claimed length == payload length, minimal encoding */

static size_t
build_frame(unsigned char *out, int fin, int opcode, const void *payload,
    size_t len, const unsigned char *mask)
{
    return build_frame_ex(out, fin, 0, opcode, payload, len, len, LEN_AUTO,
                          mask);
}


/* feed in chunks of "chunk" bytes (0: all at once), resuming after STOP */

static int
feed(parser_t *p, const unsigned char *buf, size_t len, size_t chunk)
{
    int     rc;
    size_t  off, n, used;

    off = 0;

    do {
        n = len - off;
        if (chunk && n > chunk) {
            n = chunk;
        }

        rc = ngx_http_reverse_mcp_ws_parse(p, buf + off, n, &used);

        if (rc == WS_FAIL) {
            return rc;
        }

        if (rc == WS_OK) {
            assert_int_equal(used, n);
        }

        off += used;

    } while (off < len);

    return WS_OK;
}


/* feed a stream to a fresh parser, expect FAIL with code and error */

static void
expect_fail(int server_side, uint64_t max, const unsigned char *buf,
    size_t len, int code, const char *error)
{
    int         rc;
    parser_t    p;
    recorder_t  r;

    parser_setup(&p, &r, server_side, max);

    rc = ngx_http_reverse_mcp_ws_parse(&p, buf, len, NULL);

    assert_int_equal(rc, WS_FAIL);
    assert_int_equal(p.close_code, code);
    assert_non_null(p.error);

    if (error) {
        assert_string_equal(p.error, error);
    }

    /* the failure is sticky */

    rc = ngx_http_reverse_mcp_ws_parse(&p, buf, len, NULL);
    assert_int_equal(rc, WS_FAIL);
    assert_int_equal(p.close_code, code);

    parser_teardown(&p, &r);

    /* and the same when fed byte by byte */

    parser_setup(&p, &r, server_side, max);

    rc = feed(&p, buf, len, 1);

    assert_int_equal(rc, WS_FAIL);
    assert_int_equal(p.close_code, code);

    if (error) {
        assert_string_equal(p.error, error);
    }

    parser_teardown(&p, &r);
}


/* feed a stream to a fresh parser, expect OK and return the events */

static void
expect_ok(int server_side, uint64_t max, const unsigned char *buf,
    size_t len, parser_t *p, recorder_t *r)
{
    int  rc;

    parser_setup(p, r, server_side, max);

    rc = ngx_http_reverse_mcp_ws_parse(p, buf, len, NULL);

    if (rc != WS_OK) {
        fail_msg("parse failed: %d %s", p->close_code,
                 p->error ? p->error : "(null)");
    }
}


static void
assert_event(recorder_t *r, size_t i, int control, int opcode,
    const void *data, size_t len)
{
    assert_true(i < r->n);
    assert_int_equal(r->ev[i].control, control);
    assert_int_equal(r->ev[i].opcode, opcode);
    assert_int_equal(r->ev[i].len, len);
    assert_int_equal(r->ev[i].null_payload, 0);

    if (len) {
        assert_memory_equal(r->ev[i].data, data, len);
    }
}


/* ------------------------------------------------------------------ */
/* handshake helpers                                                   */
/* ------------------------------------------------------------------ */

static void
test_accept_key_rfc(void **state)
{
    unsigned char  out[29];

    memset(out, 'X', sizeof(out));

    assert_int_equal(ngx_http_reverse_mcp_ws_accept_key(
        (const unsigned char *) "dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);

    /* RFC 6455 1.3 (also: printf KEY+GUID | openssl sha1 -binary | base64) */

    assert_memory_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28);
    assert_int_equal(out[28], 'X');   /* no NUL written */
}


static void
test_accept_key_errors(void **state)
{
    unsigned char  out[28], big[200];

    memset(big, 'A', sizeof(big));

    assert_int_equal(ngx_http_reverse_mcp_ws_accept_key(NULL, 0, out), -1);
    assert_int_equal(ngx_http_reverse_mcp_ws_accept_key(big, sizeof(big),
                                                        out), -1);
    assert_int_equal(ngx_http_reverse_mcp_ws_accept_key(big, 0, out), 0);
}


static void
test_key_valid(void **state)
{
#define KV(s)  ngx_http_reverse_mcp_ws_key_valid((const unsigned char *) (s), \
                                                 strlen(s))

    assert_int_equal(KV("dGhlIHNhbXBsZSBub25jZQ=="), 1);
    assert_int_equal(KV("AAAAAAAAAAAAAAAAAAAAAA=="), 1);
    assert_int_equal(KV("+/+/+/+/+/+/+/+/+/+/+/=="), 1);
    assert_int_equal(KV("AAAAAAAAAAAAAAAAAAAAAB=="), 1);  /* non-canonical */

    assert_int_equal(KV(""), 0);
    assert_int_equal(KV("dGhlIHNhbXBsZSBub25jZQ="), 0);
    assert_int_equal(KV("dGhlIHNhbXBsZSBub25jZQ==="), 0);
    assert_int_equal(KV("dGhlIHNhbXBsZSBub25jZQAA"), 0);
    assert_int_equal(KV("dGhlIHNhbXBsZSBub25jZ==="), 0);
    assert_int_equal(KV("dGhlIHNhbXBsZSBub25jZ-=="), 0);
    assert_int_equal(KV("dGhlIHNhbXBsZSBub25j_Q=="), 0);
    assert_int_equal(KV("dGhlIHNhbXBs ZSBub25jZQ="), 0);
    assert_int_equal(ngx_http_reverse_mcp_ws_key_valid(NULL, 24), 0);

#undef KV
}


/* ------------------------------------------------------------------ */
/* UTF-8 and close codes                                               */
/* ------------------------------------------------------------------ */

static void
test_utf8_valid(void **state)
{
    size_t          i;
    unsigned char   big[1000];

#define U8(s)  ngx_http_reverse_mcp_ws_utf8_valid((const unsigned char *) (s), \
                                                  sizeof(s) - 1)

    assert_int_equal(ngx_http_reverse_mcp_ws_utf8_valid(NULL, 0), 1);
    assert_int_equal(U8(""), 1);
    assert_int_equal(U8("hello, world"), 1);
    assert_int_equal(U8("\x00"), 1);
    assert_int_equal(U8("\x7f"), 1);
    assert_int_equal(U8("\xc2\x80"), 1);                 /* U+0080 */
    assert_int_equal(U8("\xdf\xbf"), 1);                 /* U+07FF */
    assert_int_equal(U8("\xe0\xa0\x80"), 1);             /* U+0800 */
    assert_int_equal(U8("\xe2\x82\xac"), 1);             /* euro */
    assert_int_equal(U8("\xed\x9f\xbf"), 1);             /* U+D7FF */
    assert_int_equal(U8("\xee\x80\x80"), 1);             /* U+E000 */
    assert_int_equal(U8("\xef\xbf\xbf"), 1);             /* U+FFFF */
    assert_int_equal(U8("\xf0\x90\x80\x80"), 1);         /* U+10000 */
    assert_int_equal(U8("\xf4\x8f\xbf\xbf"), 1);         /* U+10FFFF */
    assert_int_equal(U8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), 1);
    assert_int_equal(U8("0123456789abcdef\xf0\x9f\x98\x80"
                        "0123456789abcdef"), 1);

    assert_int_equal(U8("\x80"), 0);                     /* lone cont. */
    assert_int_equal(U8("\xbf"), 0);
    assert_int_equal(U8("\xc0\x80"), 0);                 /* overlong NUL */
    assert_int_equal(U8("\xc1\xbf"), 0);                 /* overlong */
    assert_int_equal(U8("\xe0\x80\x80"), 0);             /* overlong */
    assert_int_equal(U8("\xe0\x9f\xbf"), 0);             /* overlong */
    assert_int_equal(U8("\xf0\x80\x80\x80"), 0);         /* overlong */
    assert_int_equal(U8("\xf0\x8f\xbf\xbf"), 0);         /* overlong */
    assert_int_equal(U8("\xed\xa0\x80"), 0);             /* U+D800 */
    assert_int_equal(U8("\xed\xbf\xbf"), 0);             /* U+DFFF */
    assert_int_equal(U8("\xed\xa0\x80\xed\xb0\x80"), 0); /* CESU pair */
    assert_int_equal(U8("\xf4\x90\x80\x80"), 0);         /* U+110000 */
    assert_int_equal(U8("\xf5\x80\x80\x80"), 0);
    assert_int_equal(U8("\xf8\x88\x80\x80\x80"), 0);
    assert_int_equal(U8("\xfe"), 0);
    assert_int_equal(U8("\xff"), 0);
    assert_int_equal(U8("\xc2"), 0);                     /* truncated */
    assert_int_equal(U8("\xe2\x82"), 0);
    assert_int_equal(U8("\xf0\x9f\x98"), 0);
    assert_int_equal(U8("abc\xe2\x82"), 0);
    assert_int_equal(U8("\xc2\x41"), 0);                 /* bad cont. */
    assert_int_equal(U8("\xe2\x28\xa1"), 0);
    assert_int_equal(U8("\xe2\x82\x28"), 0);
    assert_int_equal(U8("\xf0\x9f\x28\x80"), 0);
    assert_int_equal(U8("\xf0\x9f\x98\x28"), 0);
    assert_int_equal(U8("0123456789abcdef0123456789abcdef\x80"), 0);

#undef U8

    /* errors at every position of a long ASCII run (fast path edges) */

    memset(big, 'a', sizeof(big));
    assert_int_equal(ngx_http_reverse_mcp_ws_utf8_valid(big, sizeof(big)), 1);

    for (i = 0; i < 40; i++) {
        big[i] = 0xff;
        assert_int_equal(ngx_http_reverse_mcp_ws_utf8_valid(big, 40), 0);
        assert_int_equal(ngx_http_reverse_mcp_ws_utf8_valid(big, i), 1);
        big[i] = 'a';
    }
}


static void
test_close_code_valid(void **state)
{
    int  code, expect;

    for (code = -1; code <= 70000; code++) {
        expect = (code >= 1000 && code <= 1003)
                 || (code >= 1007 && code <= 1014)
                 || (code >= 3000 && code <= 4999);

        assert_int_equal(ngx_http_reverse_mcp_ws_close_code_valid(code),
                         expect);
    }

    assert_int_equal(ngx_http_reverse_mcp_ws_close_code_valid(1004), 0);
    assert_int_equal(ngx_http_reverse_mcp_ws_close_code_valid(1005), 0);
    assert_int_equal(ngx_http_reverse_mcp_ws_close_code_valid(1006), 0);
    assert_int_equal(ngx_http_reverse_mcp_ws_close_code_valid(1015), 0);
    assert_int_equal(ngx_http_reverse_mcp_ws_close_code_valid(1012), 1);
    assert_int_equal(ngx_http_reverse_mcp_ws_close_code_valid(1013), 1);
    assert_int_equal(ngx_http_reverse_mcp_ws_close_code_valid(1014), 1);
}


/* ------------------------------------------------------------------ */
/* encoder                                                             */
/* ------------------------------------------------------------------ */

static void
test_frame_header(void **state)
{
    size_t         n;
    unsigned char  h[NGX_HTTP_REVERSE_MCP_WS_MAX_HEADER];

    n = ngx_http_reverse_mcp_ws_frame_header(h, OP_TEXT, 0, NULL);
    assert_int_equal(n, 2);
    assert_memory_equal(h, "\x81\x00", 2);

    n = ngx_http_reverse_mcp_ws_frame_header(h, OP_BINARY, 125, NULL);
    assert_int_equal(n, 2);
    assert_memory_equal(h, "\x82\x7d", 2);

    n = ngx_http_reverse_mcp_ws_frame_header(h, OP_TEXT, 126, NULL);
    assert_int_equal(n, 4);
    assert_memory_equal(h, "\x81\x7e\x00\x7e", 4);

    n = ngx_http_reverse_mcp_ws_frame_header(h, OP_TEXT, 65535, NULL);
    assert_int_equal(n, 4);
    assert_memory_equal(h, "\x81\x7e\xff\xff", 4);

    n = ngx_http_reverse_mcp_ws_frame_header(h, OP_TEXT, 65536, NULL);
    assert_int_equal(n, 10);
    assert_memory_equal(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);

    n = ngx_http_reverse_mcp_ws_frame_header(h, OP_BINARY,
                                             0x0102030405060708ULL, NULL);
    assert_int_equal(n, 10);
    assert_memory_equal(h, "\x82\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10);

    n = ngx_http_reverse_mcp_ws_frame_header(h, OP_CLOSE, 2, test_key);
    assert_int_equal(n, 6);
    assert_memory_equal(h, "\x88\x82\x37\xfa\x21\x3d", 6);

    n = ngx_http_reverse_mcp_ws_frame_header(h, OP_PING, 300, test_key);
    assert_int_equal(n, 8);
    assert_memory_equal(h, "\x89\xfe\x01\x2c\x37\xfa\x21\x3d", 8);

    n = ngx_http_reverse_mcp_ws_frame_header(h, OP_TEXT, 70000, test_key);
    assert_int_equal(n, 14);
    assert_memory_equal(h, "\x81\xff\x00\x00\x00\x00\x00\x01\x11\x70"
                           "\x37\xfa\x21\x3d", 14);
}


static void
test_mask(void **state)
{
    size_t         i, off, split;
    unsigned char  buf[100], ref[100], orig[100];

    for (i = 0; i < sizeof(orig); i++) {
        orig[i] = (unsigned char) (i * 7 + 3);
    }

    /* RFC 6455 5.7: masked "Hello" */

    memcpy(buf, "Hello", 5);
    ngx_http_reverse_mcp_ws_mask(buf, 5, test_key, 0);
    assert_memory_equal(buf, "\x7f\x9f\x4d\x51\x58", 5);

    /* masking in two parts with an offset equals masking at once */

    for (off = 0; off < 8; off++) {
        for (split = 0; split <= 37; split++) {
            memcpy(ref, orig, sizeof(orig));
            for (i = 0; i < 37; i++) {
                ref[i] ^= test_key[(off + i) & 3];
            }

            memcpy(buf, orig, sizeof(orig));
            ngx_http_reverse_mcp_ws_mask(buf, split, test_key, off);
            ngx_http_reverse_mcp_ws_mask(buf + split, 37 - split, test_key,
                                         off + split);

            assert_memory_equal(buf, ref, sizeof(buf));
        }
    }
}


static void
test_close_payload_build(void **state)
{
    size_t         n, i;
    char           reason[200];
    unsigned char  out[125];

    n = ngx_http_reverse_mcp_ws_close_payload(out, 1000, "bye", 3);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "\x03\xe8" "bye", 5);

    n = ngx_http_reverse_mcp_ws_close_payload(out, 4999, NULL, 0);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\x13\x87", 2);

    n = ngx_http_reverse_mcp_ws_close_payload(out, 0, "x", 1);
    assert_int_equal(n, 0);

    n = ngx_http_reverse_mcp_ws_close_payload(out, 1005, "x", 1);
    assert_int_equal(n, 0);

    /* ASCII: cut at 123 exactly */

    memset(reason, 'r', sizeof(reason));
    n = ngx_http_reverse_mcp_ws_close_payload(out, 1011, reason, 200);
    assert_int_equal(n, 125);

    n = ngx_http_reverse_mcp_ws_close_payload(out, 1011, reason, 123);
    assert_int_equal(n, 125);

    /*
     * 3-byte sequences from offset 0: 41 fit exactly in 123 bytes;
     * shifted by one or two ASCII bytes, the last one would be cut
     */

    for (i = 0; i + 3 <= sizeof(reason); i += 3) {
        memcpy(reason + i, "\xe2\x82\xac", 3);
    }

    n = ngx_http_reverse_mcp_ws_close_payload(out, 1000, reason, 198);
    assert_int_equal(n, 2 + 123);
    assert_true(ngx_http_reverse_mcp_ws_utf8_valid(out + 2, n - 2));

    reason[0] = 'a';
    for (i = 1; i + 3 <= sizeof(reason); i += 3) {
        memcpy(reason + i, "\xe2\x82\xac", 3);
    }

    n = ngx_http_reverse_mcp_ws_close_payload(out, 1000, reason, 199);
    assert_int_equal(n, 2 + 121);
    assert_true(ngx_http_reverse_mcp_ws_utf8_valid(out + 2, n - 2));

    /* 4-byte sequences: 30 * 4 = 120, the 31st would be cut */

    for (i = 0; i + 4 <= sizeof(reason); i += 4) {
        memcpy(reason + i, "\xf0\x9f\x98\x80", 4);
    }

    n = ngx_http_reverse_mcp_ws_close_payload(out, 1000, reason, 200);
    assert_int_equal(n, 2 + 120);
    assert_true(ngx_http_reverse_mcp_ws_utf8_valid(out + 2, n - 2));
}


/* ------------------------------------------------------------------ */
/* parser: basics and masking policy                                   */
/* ------------------------------------------------------------------ */

static void
test_rfc_examples(void **state)
{
    parser_t    p;
    recorder_t  r;

    /* RFC 6455 5.7 */

    static const unsigned char  unmasked[] = "\x81\x05\x48\x65\x6c\x6c\x6f";
    static const unsigned char  masked[] =
        "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    static const unsigned char  frags[] =
        "\x01\x03\x48\x65\x6c\x80\x02\x6c\x6f";
    static const unsigned char  ping[] =
        "\x89\x05\x48\x65\x6c\x6c\x6f";
    static const unsigned char  pong[] =
        "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";

    expect_ok(0, 0, unmasked, sizeof(unmasked) - 1, &p, &r);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, 0, OP_TEXT, "Hello", 5);
    assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p), 1);
    assert_int_equal(p.frames, 1);
    assert_int_equal(p.messages, 1);
    parser_teardown(&p, &r);

    expect_ok(1, 0, masked, sizeof(masked) - 1, &p, &r);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, 0, OP_TEXT, "Hello", 5);
    parser_teardown(&p, &r);

    expect_ok(0, 0, frags, sizeof(frags) - 1, &p, &r);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, 0, OP_TEXT, "Hello", 5);
    assert_int_equal(p.frames, 2);
    assert_int_equal(p.messages, 1);
    parser_teardown(&p, &r);

    expect_ok(0, 0, ping, sizeof(ping) - 1, &p, &r);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, 1, OP_PING, "Hello", 5);
    parser_teardown(&p, &r);

    expect_ok(1, 0, pong, sizeof(pong) - 1, &p, &r);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, 1, OP_PONG, "Hello", 5);
    parser_teardown(&p, &r);
}


static void
test_mask_policy(void **state)
{
    size_t         n;
    unsigned char  f[64];

    /* server side: an unmasked client frame */

    n = build_frame(f, 1, OP_TEXT, "hi", 2, NULL);
    expect_fail(1, 0, f, n, 1002, "unmasked client frame");

    n = build_frame(f, 1, OP_PING, "", 0, NULL);
    expect_fail(1, 0, f, n, 1002, "unmasked client frame");

    n = build_frame(f, 1, OP_CLOSE, "\x03\xe8", 2, NULL);
    expect_fail(1, 0, f, n, 1002, "unmasked client frame");

    /* client side: a masked server frame */

    n = build_frame(f, 1, OP_TEXT, "hi", 2, test_key);
    expect_fail(0, 0, f, n, 1002, "masked server frame");

    n = build_frame(f, 1, OP_PONG, "", 0, test_key);
    expect_fail(0, 0, f, n, 1002, "masked server frame");
}


static void
test_mask_zero_key(void **state)
{
    size_t                      n;
    parser_t                    p;
    recorder_t                  r;
    unsigned char               f[64];
    static const unsigned char  zero[4] = { 0, 0, 0, 0 };

    /* an all-zero key is still a masked frame */

    n = build_frame(f, 1, OP_TEXT, "hi", 2, zero);
    expect_ok(1, 0, f, n, &p, &r);
    assert_event(&r, 0, 0, OP_TEXT, "hi", 2);
    parser_teardown(&p, &r);
}


static void
test_rsv_bits(void **state)
{
    int            rsv;
    size_t         n;
    unsigned char  f[64];

    for (rsv = 1; rsv < 8; rsv++) {
        n = build_frame_ex(f, 1, rsv, OP_TEXT, "hi", 2, 2, LEN_AUTO,
                           test_key);
        expect_fail(1, 0, f, n, 1002, "RSV bits set");

        n = build_frame_ex(f, 1, rsv, OP_PING, "", 0, 0, LEN_AUTO, NULL);
        expect_fail(0, 0, f, n, 1002, "RSV bits set");
    }
}


static void
test_unknown_opcodes(void **state)
{
    int            op;
    char           err[32];
    size_t         n;
    unsigned char  f[64];

    static const int  bad[] = { 3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf };

    for (op = 0; op < (int) (sizeof(bad) / sizeof(bad[0])); op++) {
        snprintf(err, sizeof(err), "unknown opcode 0x%x", bad[op]);

        n = build_frame(f, 1, bad[op], "x", 1, test_key);
        expect_fail(1, 0, f, n, 1002, err);

        n = build_frame(f, 0, bad[op], "x", 1, NULL);
        expect_fail(0, 0, f, n, 1002, err);
    }
}


/* ------------------------------------------------------------------ */
/* control frames                                                      */
/* ------------------------------------------------------------------ */

static void
test_control_rules(void **state)
{
    size_t         n;
    parser_t       p;
    recorder_t     r;
    unsigned char  f[400], pl[200];

    memset(pl, 'p', sizeof(pl));

    /* FIN = 0 */

    n = build_frame(f, 0, OP_PING, "x", 1, test_key);
    expect_fail(1, 0, f, n, 1002, "fragmented control frame");

    n = build_frame(f, 0, OP_CLOSE, "", 0, NULL);
    expect_fail(0, 0, f, n, 1002, "fragmented control frame");

    /* too long: 126 with 16-bit length, and 64-bit length */

    n = build_frame(f, 1, OP_PING, pl, 126, test_key);
    expect_fail(1, 0, f, n, 1002, "control frame too long");

    n = build_frame_ex(f, 1, 0, OP_PONG, pl, 0, 70000, LEN_64, NULL);
    expect_fail(0, 0, f, n, 1002, "control frame too long");

    /* 125 is fine */

    n = build_frame(f, 1, OP_PING, pl, 125, test_key);
    expect_ok(1, 0, f, n, &p, &r);
    assert_event(&r, 0, 1, OP_PING, pl, 125);
    parser_teardown(&p, &r);

    /* empty ping: non-NULL payload, length 0 */

    n = build_frame(f, 1, OP_PING, "", 0, test_key);
    expect_ok(1, 0, f, n, &p, &r);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, 1, OP_PING, "", 0);
    parser_teardown(&p, &r);
}


static void
test_close_frames(void **state)
{
    int             i;
    size_t          n;
    parser_t        p;
    recorder_t      r;
    unsigned char   f[300], pl[130];

    static const int  good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                 1010, 1011, 1012, 1013, 1014, 3000, 3999,
                                 4000, 4999 };
    static const int  bad[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016,
                                2000, 2999, 5000, 65535 };

    /* empty close */

    n = build_frame(f, 1, OP_CLOSE, "", 0, test_key);
    expect_ok(1, 0, f, n, &p, &r);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, 1, OP_CLOSE, "", 0);
    parser_teardown(&p, &r);

    /* 1 byte */

    n = build_frame(f, 1, OP_CLOSE, "\x03", 1, test_key);
    expect_fail(1, 0, f, n, 1002, "close payload of 1 byte");

    /* codes */

    for (i = 0; i < (int) (sizeof(good) / sizeof(good[0])); i++) {
        pl[0] = (unsigned char) (good[i] >> 8);
        pl[1] = (unsigned char) good[i];
        memcpy(pl + 2, "ok", 2);

        n = build_frame(f, 1, OP_CLOSE, pl, 4, NULL);
        expect_ok(0, 0, f, n, &p, &r);
        assert_event(&r, 0, 1, OP_CLOSE, pl, 4);
        parser_teardown(&p, &r);
    }

    for (i = 0; i < (int) (sizeof(bad) / sizeof(bad[0])); i++) {
        pl[0] = (unsigned char) (bad[i] >> 8);
        pl[1] = (unsigned char) bad[i];

        n = build_frame(f, 1, OP_CLOSE, pl, 2, test_key);
        expect_fail(1, 0, f, n, 1002, "invalid close code");
    }

    /* reason: valid UTF-8 up to the 123-byte maximum */

    pl[0] = 0x03;
    pl[1] = 0xe8;
    memset(pl + 2, 'a', 123);
    memcpy(pl + 2 + 120, "\xe2\x82\xac", 3);

    n = build_frame(f, 1, OP_CLOSE, pl, 125, test_key);
    expect_ok(1, 0, f, n, &p, &r);
    assert_event(&r, 0, 1, OP_CLOSE, pl, 125);
    parser_teardown(&p, &r);

    /* reason: invalid UTF-8 */

    memcpy(pl + 2, "bad \xc0\x80", 6);
    n = build_frame(f, 1, OP_CLOSE, pl, 8, test_key);
    expect_fail(1, 0, f, n, 1007, "invalid UTF-8 in close reason");

    memcpy(pl + 2, "cut \xe2\x82", 6);
    n = build_frame(f, 1, OP_CLOSE, pl, 8, NULL);
    expect_fail(0, 0, f, n, 1007, "invalid UTF-8 in close reason");

    /* an invalid code wins over an invalid reason */

    pl[0] = 0x03;
    pl[1] = 0xed;    /* 1005 */
    n = build_frame(f, 1, OP_CLOSE, pl, 8, NULL);
    expect_fail(0, 0, f, n, 1002, "invalid close code");

    /* the payload built by the encoder passes the parser */

    n = ngx_http_reverse_mcp_ws_close_payload(pl, 1001, "going away", 10);
    n = build_frame(f, 1, OP_CLOSE, pl, n, test_key);
    expect_ok(1, 0, f, n, &p, &r);
    assert_event(&r, 0, 1, OP_CLOSE, "\x03\xe9going away", 12);
    parser_teardown(&p, &r);
}


/* ------------------------------------------------------------------ */
/* lengths                                                             */
/* ------------------------------------------------------------------ */

static void
test_lengths(void **state)
{
    size_t          i, n, k;
    parser_t        p;
    recorder_t      r;
    unsigned char  *f, *pl;

    static const size_t  sizes[] = { 0, 1, 125, 126, 127, 200, 65535, 65536,
                                     70000 };

    pl = malloc(70000);
    f = malloc(70000 + 14);
    assert_non_null(pl);
    assert_non_null(f);

    for (i = 0; i < 70000; i++) {
        pl[i] = (unsigned char) (i * 31 + 7);
    }

    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {

        /* masked, server side */

        n = build_frame(f, 1, OP_BINARY, pl, sizes[k], test_key);
        assert_int_equal(n, sizes[k] + (sizes[k] < 126 ? 6
                                        : sizes[k] <= 0xffff ? 8 : 14));

        expect_ok(1, 0, f, n, &p, &r);
        assert_int_equal(r.n, 1);
        assert_event(&r, 0, 0, OP_BINARY, pl, sizes[k]);

        /* single frame: buffer of exactly the frame size, then dropped */

        if (sizes[k] > 4096) {
            assert_null(p.msg);
            assert_int_equal(p.msg_cap, 0);

        } else {
            assert_int_equal(p.msg_cap, sizes[k]);
        }

        parser_teardown(&p, &r);

        /* unmasked, client side */

        n = build_frame(f, 1, OP_BINARY, pl, sizes[k], NULL);
        expect_ok(0, 0, f, n, &p, &r);
        assert_int_equal(r.n, 1);
        assert_event(&r, 0, 0, OP_BINARY, pl, sizes[k]);
        parser_teardown(&p, &r);
    }

    free(pl);
    free(f);
}


static void
test_nonminimal_lengths(void **state)
{
    size_t         n;
    parser_t       p;
    recorder_t     r;
    unsigned char  f[400], pl[300];

    memset(pl, 'z', sizeof(pl));

    /* 16-bit encoding of 0, 5 and 125 */

    n = build_frame_ex(f, 1, 0, OP_TEXT, pl, 0, 0, LEN_16, test_key);
    expect_fail(1, 0, f, n, 1002, "non-minimal length encoding");

    n = build_frame_ex(f, 1, 0, OP_TEXT, pl, 5, 5, LEN_16, test_key);
    expect_fail(1, 0, f, n, 1002, "non-minimal length encoding");

    n = build_frame_ex(f, 1, 0, OP_BINARY, pl, 125, 125, LEN_16, NULL);
    expect_fail(0, 0, f, n, 1002, "non-minimal length encoding");

    /* 64-bit encoding of 5, 126 and 65535 */

    n = build_frame_ex(f, 1, 0, OP_TEXT, pl, 5, 5, LEN_64, test_key);
    expect_fail(1, 0, f, n, 1002, "non-minimal length encoding");

    n = build_frame_ex(f, 1, 0, OP_TEXT, pl, 126, 126, LEN_64, test_key);
    expect_fail(1, 0, f, n, 1002, "non-minimal length encoding");

    n = build_frame_ex(f, 1, 0, OP_TEXT, pl, 0, 65535, LEN_64, NULL);
    expect_fail(0, 0, f, n, 1002, "non-minimal length encoding");

    /* the minimal boundaries themselves are fine */

    n = build_frame_ex(f, 1, 0, OP_TEXT, pl, 126, 126, LEN_16, test_key);
    expect_ok(1, 0, f, n, &p, &r);
    assert_event(&r, 0, 0, OP_TEXT, pl, 126);
    parser_teardown(&p, &r);

    /* 64-bit length with the most significant bit set */

    n = build_frame_ex(f, 1, 0, OP_BINARY, pl, 0, 0x8000000000000000ULL,
                       LEN_64, test_key);
    expect_fail(1, 0, f, n, 1002, "64-bit length with MSB set");

    n = build_frame_ex(f, 1, 0, OP_BINARY, pl, 0, 0xffffffffffffffffULL,
                       LEN_64, NULL);
    expect_fail(0, 0, f, n, 1002, "64-bit length with MSB set");
}


/* ------------------------------------------------------------------ */
/* fragmentation                                                       */
/* ------------------------------------------------------------------ */

static void
test_fragmentation_rules(void **state)
{
    size_t         n;
    unsigned char  f[400];

    /* continuation without an open message */

    n = build_frame(f, 1, OP_CONT, "x", 1, test_key);
    expect_fail(1, 0, f, n, 1002, "unexpected continuation frame");

    n = build_frame(f, 0, OP_CONT, "x", 1, NULL);
    expect_fail(0, 0, f, n, 1002, "unexpected continuation frame");

    /* after a complete message */

    n = build_frame(f, 1, OP_TEXT, "a", 1, test_key);
    n += build_frame(f + n, 1, OP_CONT, "b", 1, test_key);
    expect_fail(1, 0, f, n, 1002, "unexpected continuation frame");

    /* a new TEXT / BINARY inside a fragmented message */

    n = build_frame(f, 0, OP_TEXT, "a", 1, test_key);
    n += build_frame(f + n, 1, OP_TEXT, "b", 1, test_key);
    expect_fail(1, 0, f, n, 1002, "new data frame inside fragmented message");

    n = build_frame(f, 0, OP_BINARY, "a", 1, NULL);
    n += build_frame(f + n, 0, OP_CONT, "b", 1, NULL);
    n += build_frame(f + n, 1, OP_BINARY, "c", 1, NULL);
    expect_fail(0, 0, f, n, 1002, "new data frame inside fragmented message");

    n = build_frame(f, 0, OP_BINARY, "", 0, NULL);
    n += build_frame(f + n, 1, OP_PING, "", 0, NULL);
    n += build_frame(f + n, 0, OP_TEXT, "c", 1, NULL);
    expect_fail(0, 0, f, n, 1002, "new data frame inside fragmented message");
}


static void
test_fragmentation_interleaved(void **state)
{
    size_t         n;
    parser_t       p;
    recorder_t     r;
    unsigned char  f[400];

    n = build_frame(f, 0, OP_TEXT, "Hel", 3, test_key);
    n += build_frame(f + n, 1, OP_PING, "p1", 2, test_key);
    n += build_frame(f + n, 0, OP_CONT, "lo, ", 4, test_key);
    n += build_frame(f + n, 1, OP_PONG, "", 0, test_key);
    n += build_frame(f + n, 0, OP_CONT, "", 0, test_key);
    n += build_frame(f + n, 1, OP_CLOSE, "\x03\xe8", 2, test_key);
    n += build_frame(f + n, 1, OP_CONT, "world", 5, test_key);
    n += build_frame(f + n, 1, OP_BINARY, "\x00\xff", 2, test_key);

    expect_ok(1, 0, f, n, &p, &r);

    assert_int_equal(r.n, 5);
    assert_event(&r, 0, 1, OP_PING, "p1", 2);
    assert_event(&r, 1, 1, OP_PONG, "", 0);
    assert_event(&r, 2, 1, OP_CLOSE, "\x03\xe8", 2);
    assert_event(&r, 3, 0, OP_TEXT, "Hello, world", 12);
    assert_event(&r, 4, 0, OP_BINARY, "\x00\xff", 2);
    assert_int_equal(p.frames, 8);
    assert_int_equal(p.messages, 2);
    assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p), 1);

    parser_teardown(&p, &r);
}


static void
test_zero_length_messages(void **state)
{
    size_t         n;
    parser_t       p;
    recorder_t     r;
    unsigned char  f[100];

    n = build_frame(f, 1, OP_TEXT, "", 0, test_key);
    n += build_frame(f + n, 1, OP_BINARY, "", 0, test_key);
    n += build_frame(f + n, 0, OP_TEXT, "", 0, test_key);
    n += build_frame(f + n, 0, OP_CONT, "", 0, test_key);
    n += build_frame(f + n, 1, OP_CONT, "", 0, test_key);

    expect_ok(1, 0, f, n, &p, &r);

    /* delivered with a non-NULL payload and no allocation */

    assert_int_equal(r.n, 3);
    assert_event(&r, 0, 0, OP_TEXT, "", 0);
    assert_event(&r, 1, 0, OP_BINARY, "", 0);
    assert_event(&r, 2, 0, OP_TEXT, "", 0);
    assert_null(p.msg);

    parser_teardown(&p, &r);
}


/* ------------------------------------------------------------------ */
/* UTF-8 in text messages                                              */
/* ------------------------------------------------------------------ */

static void
test_text_utf8(void **state)
{
    size_t         n;
    parser_t       p;
    recorder_t     r;
    unsigned char  f[400];

    /* a euro sign and an emoji split across three fragments */

    n = build_frame(f, 0, OP_TEXT, "a\xe2", 2, test_key);
    n += build_frame(f + n, 0, OP_CONT, "\x82", 1, test_key);
    n += build_frame(f + n, 0, OP_CONT, "\xac\xf0\x9f", 3, test_key);
    n += build_frame(f + n, 1, OP_CONT, "\x98\x80z", 3, test_key);

    expect_ok(1, 0, f, n, &p, &r);
    assert_int_equal(r.n, 1);
    assert_event(&r, 0, 0, OP_TEXT, "a\xe2\x82\xac\xf0\x9f\x98\x80z", 9);
    parser_teardown(&p, &r);

#define BAD_TEXT(s)                                                          \
    n = build_frame(f, 1, OP_TEXT, s, sizeof(s) - 1, test_key);              \
    expect_fail(1, 0, f, n, 1007, "invalid UTF-8 in text message");          \
    n = build_frame(f, 1, OP_TEXT, s, sizeof(s) - 1, NULL);                  \
    expect_fail(0, 0, f, n, 1007, "invalid UTF-8 in text message")

    BAD_TEXT("\xc0\x80");
    BAD_TEXT("x\xc1\xbf");
    BAD_TEXT("\xed\xa0\x80");
    BAD_TEXT("\xf4\x90\x80\x80");
    BAD_TEXT("\xe0\x80\xaf");
    BAD_TEXT("\xf0\x82\x82\xac");
    BAD_TEXT("truncated \xe2\x82");
    BAD_TEXT("\xff");
    BAD_TEXT("\x80");

#undef BAD_TEXT

    /* truncated at the end of a fragmented message */

    n = build_frame(f, 0, OP_TEXT, "ok", 2, test_key);
    n += build_frame(f + n, 1, OP_CONT, "\xf0\x9f\x98", 3, test_key);
    expect_fail(1, 0, f, n, 1007, "invalid UTF-8 in text message");

    /* a surrogate split across fragments */

    n = build_frame(f, 0, OP_TEXT, "\xed", 1, NULL);
    n += build_frame(f + n, 1, OP_CONT, "\xa0\x80", 2, NULL);
    expect_fail(0, 0, f, n, 1007, "invalid UTF-8 in text message");

    /* the same bytes in a BINARY message are fine */

    n = build_frame(f, 0, OP_BINARY, "\xed", 1, NULL);
    n += build_frame(f + n, 1, OP_CONT, "\xa0\x80\xc0\x80\xff", 5, NULL);
    expect_ok(0, 0, f, n, &p, &r);
    assert_event(&r, 0, 0, OP_BINARY, "\xed\xa0\x80\xc0\x80\xff", 6);
    parser_teardown(&p, &r);
}


/* ------------------------------------------------------------------ */
/* size limit                                                          */
/* ------------------------------------------------------------------ */

static void
test_size_limit(void **state)
{
    size_t          n;
    parser_t        p;
    recorder_t      r;
    unsigned char   f[2000], pl[1000];

    memset(pl, 'm', sizeof(pl));

    /* exactly at the limit */

    n = build_frame(f, 1, OP_TEXT, pl, 100, test_key);
    expect_ok(1, 100, f, n, &p, &r);
    assert_event(&r, 0, 0, OP_TEXT, pl, 100);
    parser_teardown(&p, &r);

    /* one over: fails on the header, nothing allocated */

    parser_setup(&p, &r, 1, 100);
    n = build_frame(f, 1, OP_TEXT, pl, 101, test_key);
    assert_int_equal(ngx_http_reverse_mcp_ws_parse(&p, f, 8, NULL), WS_FAIL);
    assert_int_equal(p.close_code, 1009);
    assert_string_equal(p.error, "message too big");
    assert_null(p.msg);
    parser_teardown(&p, &r);

    expect_fail(1, 100, f, n, 1009, "message too big");

    /* fragmented: the sum counts */

    n = build_frame(f, 0, OP_BINARY, pl, 60, test_key);
    n += build_frame(f + n, 1, OP_PING, pl, 50, test_key);
    n += build_frame(f + n, 1, OP_CONT, pl, 40, test_key);
    expect_ok(1, 100, f, n, &p, &r);
    assert_int_equal(r.n, 2);
    assert_event(&r, 1, 0, OP_BINARY, pl, 100);
    parser_teardown(&p, &r);

    n = build_frame(f, 0, OP_BINARY, pl, 60, test_key);
    n += build_frame(f + n, 0, OP_CONT, pl, 0, test_key);
    n += build_frame(f + n, 1, OP_CONT, pl, 41, test_key);
    expect_fail(1, 100, f, n, 1009, "message too big");

    /* control frames do not count against the message */

    n = build_frame(f, 1, OP_PING, pl, 125, test_key);
    expect_ok(1, 10, f, n, &p, &r);
    assert_event(&r, 0, 1, OP_PING, pl, 125);
    parser_teardown(&p, &r);

    /* a claimed 2^63 - 1 bytes: rejected before allocating */

    parser_setup(&p, &r, 1, 4096);
    n = build_frame_ex(f, 1, 0, OP_BINARY, pl, 0, 0x7fffffffffffffffULL,
                       LEN_64, test_key);
    assert_int_equal(ngx_http_reverse_mcp_ws_parse(&p, f, n, NULL), WS_FAIL);
    assert_int_equal(p.close_code, 1009);
    assert_null(p.msg);
    assert_int_equal(p.msg_cap, 0);
    parser_teardown(&p, &r);

    /* ... also when it is the second fragment (no overflow of the sum) */

    parser_setup(&p, &r, 0, 0);
    n = build_frame(f, 0, OP_BINARY, pl, 10, NULL);
    n += build_frame_ex(f + n, 1, 0, OP_CONT, pl, 0, 0x7fffffffffffffffULL,
                        LEN_64, NULL);
    assert_int_equal(ngx_http_reverse_mcp_ws_parse(&p, f, n, NULL), WS_FAIL);
    assert_int_equal(p.close_code, 1009);
    assert_int_equal(p.msg_cap, 10);
    parser_teardown(&p, &r);

    /* a huge max_message does not overflow either */

    n = build_frame(f, 0, OP_BINARY, pl, 10, NULL);
    n += build_frame_ex(f + n, 1, 0, OP_CONT, pl, 0, 0x7ffffffffffffffbULL,
                        LEN_64, NULL);
    expect_fail(0, 0x7ffffffffffffffeULL, f, n, 1009, "message too big");
}


static void
test_size_limit_default(void **state)
{
    size_t          n;
    parser_t        p;
    recorder_t      r;
    unsigned char   f[20];

    /* max_message == 0 means 16 MiB: one over fails */

    n = build_frame_ex(f, 1, 0, OP_BINARY, NULL, 0, 16 * 1024 * 1024 + 1,
                       LEN_64, test_key);
    expect_fail(1, 0, f, n, 1009, "message too big");

    /* exactly 16 MiB: the header is accepted, the buffer allocated */

    parser_setup(&p, &r, 1, 0);
    n = build_frame_ex(f, 1, 0, OP_BINARY, NULL, 0, 16 * 1024 * 1024,
                       LEN_64, test_key);
    assert_int_equal(ngx_http_reverse_mcp_ws_parse(&p, f, n, NULL), WS_OK);
    assert_int_equal(p.msg_cap, 16 * 1024 * 1024);
    assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p), 0);
    parser_teardown(&p, &r);
}


static void
test_buffer_retention(void **state)
{
    size_t          n;
    parser_t        p;
    recorder_t      r;
    unsigned char  *f, *pl;

    pl = calloc(1, 10000);
    f = malloc(20000);
    assert_non_null(pl);
    assert_non_null(f);

    parser_setup(&p, &r, 1, 0);

    /* a small message: the buffer is kept and reused */

    n = build_frame(f, 1, OP_BINARY, pl, 4096, test_key);
    assert_int_equal(feed(&p, f, n, 0), WS_OK);
    assert_non_null(p.msg);
    assert_int_equal(p.msg_cap, 4096);

    n = build_frame(f, 1, OP_BINARY, pl, 10, test_key);
    assert_int_equal(feed(&p, f, n, 0), WS_OK);
    assert_int_equal(p.msg_cap, 4096);

    /* a big one: the buffer is released after delivery */

    n = build_frame(f, 1, OP_BINARY, pl, 4097, test_key);
    assert_int_equal(feed(&p, f, n, 0), WS_OK);
    assert_null(p.msg);
    assert_int_equal(p.msg_cap, 0);

    /* fragments grow the buffer; released after a big message */

    n = build_frame(f, 0, OP_BINARY, pl, 3000, test_key);
    n += build_frame(f + n, 0, OP_CONT, pl, 3000, test_key);
    n += build_frame(f + n, 1, OP_CONT, pl, 3000, test_key);
    assert_int_equal(feed(&p, f, n, 0), WS_OK);
    assert_null(p.msg);

    assert_int_equal(r.n, 4);
    assert_int_equal(r.ev[3].len, 9000);
    assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p), 1);

    parser_teardown(&p, &r);
    free(pl);
    free(f);
}


/* ------------------------------------------------------------------ */
/* chunking, idle, STOP                                                */
/* ------------------------------------------------------------------ */

static size_t
build_mixed_stream(unsigned char *f, const unsigned char *mask)
{
    size_t         n;
    unsigned char  pl[70000];

    memset(pl, 0, sizeof(pl));
    memcpy(pl, "\xe2\x82\xac", 3);

    n = build_frame(f, 1, OP_TEXT, "Hello", 5, mask);
    n += build_frame(f + n, 0, OP_TEXT, "fr\xc3", 3, mask);
    n += build_frame(f + n, 1, OP_PING, "ping", 4, mask);
    n += build_frame(f + n, 0, OP_CONT, "", 0, mask);
    n += build_frame(f + n, 1, OP_CONT, "\xa9g", 2, mask);
    n += build_frame(f + n, 1, OP_BINARY, pl, 300, mask);
    n += build_frame(f + n, 0, OP_BINARY, pl, 65536, mask);
    n += build_frame(f + n, 1, OP_PONG, "", 0, mask);
    n += build_frame(f + n, 1, OP_CONT, pl, 1000, mask);
    n += build_frame(f + n, 1, OP_TEXT, pl, 3, mask);
    n += build_frame(f + n, 1, OP_CLOSE, "\x0f\xa0reason", 8, mask);

    return n;
}


static void
compare_recorders(recorder_t *a, recorder_t *b)
{
    size_t  i;

    assert_int_equal(a->n, b->n);

    for (i = 0; i < a->n; i++) {
        assert_int_equal(a->ev[i].control, b->ev[i].control);
        assert_int_equal(a->ev[i].opcode, b->ev[i].opcode);
        assert_int_equal(a->ev[i].len, b->ev[i].len);

        if (a->ev[i].len) {
            assert_memory_equal(a->ev[i].data, b->ev[i].data, a->ev[i].len);
        }
    }
}


static void
test_byte_at_a_time(void **state)
{
    int             side;
    size_t          n, chunk;
    parser_t        p1, p2;
    recorder_t      r1, r2;
    unsigned char  *f;

    static const size_t  chunks[] = { 1, 2, 3, 5, 7, 13, 64, 4096 };

    f = malloc(200000);
    assert_non_null(f);

    for (side = 0; side < 2; side++) {
        n = build_mixed_stream(f, side ? test_key : NULL);

        parser_setup(&p1, &r1, side, 0);
        assert_int_equal(feed(&p1, f, n, 0), WS_OK);
        assert_int_equal(r1.n, 8);
        assert_event(&r1, 0, 0, OP_TEXT, "Hello", 5);
        assert_event(&r1, 1, 1, OP_PING, "ping", 4);
        assert_event(&r1, 2, 0, OP_TEXT, "fr\xc3\xa9g", 5);
        assert_event(&r1, 7, 1, OP_CLOSE, "\x0f\xa0reason", 8);
        assert_int_equal(r1.ev[5].len, 66536);

        for (chunk = 0; chunk < sizeof(chunks) / sizeof(chunks[0]); chunk++) {
            parser_setup(&p2, &r2, side, 0);
            assert_int_equal(feed(&p2, f, n, chunks[chunk]), WS_OK);
            compare_recorders(&r1, &r2);
            assert_int_equal(p1.frames, p2.frames);
            assert_int_equal(p1.messages, p2.messages);
            parser_teardown(&p2, &r2);
        }

        parser_teardown(&p1, &r1);
    }

    free(f);
}


static void
test_byte_at_a_time_failure(void **state)
{
    size_t         n, i;
    parser_t       p;
    recorder_t     r;
    unsigned char  f[400];

    /* events before the failure are the same whatever the chunking */

    n = build_frame(f, 1, OP_TEXT, "one", 3, test_key);
    n += build_frame(f + n, 1, OP_PING, "", 0, test_key);
    n += build_frame(f + n, 1, OP_TEXT, "\xc0\x80", 2, test_key);
    n += build_frame(f + n, 1, OP_TEXT, "never", 5, test_key);

    for (i = 0; i < 2; i++) {
        parser_setup(&p, &r, 1, 0);
        assert_int_equal(feed(&p, f, n, i ? 1 : 0), WS_FAIL);
        assert_int_equal(p.close_code, 1007);
        assert_int_equal(r.n, 2);
        assert_event(&r, 0, 0, OP_TEXT, "one", 3);
        assert_event(&r, 1, 1, OP_PING, "", 0);
        assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p), 0);
        parser_teardown(&p, &r);
    }
}


static void
test_idle(void **state)
{
    size_t         n, i;
    parser_t       p;
    recorder_t     r;
    unsigned char  f[400];

    parser_setup(&p, &r, 1, 0);
    assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p), 1);

    /* partial header, partial payload, complete */

    n = build_frame(f, 1, OP_TEXT, "hello", 5, test_key);

    for (i = 0; i < n; i++) {
        assert_int_equal(ngx_http_reverse_mcp_ws_parse(&p, f + i, 1, NULL),
                         WS_OK);
        assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p),
                         i == n - 1);
    }

    /* an open fragmented message, with a control frame in between */

    n = build_frame(f, 0, OP_TEXT, "a", 1, test_key);
    assert_int_equal(feed(&p, f, n, 0), WS_OK);
    assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p), 0);

    n = build_frame(f, 1, OP_PING, "", 0, test_key);
    assert_int_equal(feed(&p, f, n, 0), WS_OK);
    assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p), 0);

    n = build_frame(f, 1, OP_CONT, "b", 1, test_key);
    assert_int_equal(feed(&p, f, n, 0), WS_OK);
    assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p), 1);

    assert_int_equal(r.n, 3);
    assert_event(&r, 2, 0, OP_TEXT, "ab", 2);

    parser_teardown(&p, &r);
}


static void
test_stop(void **state)
{
    int            rc;
    size_t         n, f1, f2, used;
    parser_t       p;
    recorder_t     r;
    unsigned char  f[400];

    f1 = build_frame(f, 1, OP_TEXT, "one", 3, test_key);
    f2 = build_frame(f + f1, 1, OP_PING, "two", 3, test_key);
    n = f1 + f2;
    n += build_frame(f + n, 1, OP_BINARY, "three", 5, test_key);

    /* stop at the first message */

    parser_setup(&p, &r, 1, 0);
    r.stop_at = 1;

    rc = ngx_http_reverse_mcp_ws_parse(&p, f, n, &used);
    assert_int_equal(rc, WS_STOP);
    assert_int_equal(used, f1);
    assert_int_equal(r.n, 1);
    assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p), 1);

    /* stop at the ping (on_control) */

    r.stop_at = 2;

    rc = ngx_http_reverse_mcp_ws_parse(&p, f + f1, n - f1, &used);
    assert_int_equal(rc, WS_STOP);
    assert_int_equal(used, f2);
    assert_int_equal(r.n, 2);

    /* the rest */

    rc = ngx_http_reverse_mcp_ws_parse(&p, f + f1 + f2, n - f1 - f2, &used);
    assert_int_equal(rc, WS_OK);
    assert_int_equal(used, n - f1 - f2);
    assert_int_equal(r.n, 3);
    assert_event(&r, 0, 0, OP_TEXT, "one", 3);
    assert_event(&r, 1, 1, OP_PING, "two", 3);
    assert_event(&r, 2, 0, OP_BINARY, "three", 5);

    parser_teardown(&p, &r);

    /* STOP with consumed == NULL, and on a zero-length frame */

    n = build_frame(f, 1, OP_TEXT, "", 0, NULL);
    n += build_frame(f + n, 1, OP_TEXT, "x", 1, NULL);

    parser_setup(&p, &r, 0, 0);
    r.stop_at = 1;
    rc = ngx_http_reverse_mcp_ws_parse(&p, f, n, NULL);
    assert_int_equal(rc, WS_STOP);
    assert_int_equal(r.n, 1);

    r.stop_at = 2;
    rc = ngx_http_reverse_mcp_ws_parse(&p, f + 2, n - 2, &used);
    assert_int_equal(rc, WS_STOP);
    assert_int_equal(used, 3);
    assert_int_equal(r.n, 2);
    assert_event(&r, 0, 0, OP_TEXT, "", 0);
    assert_event(&r, 1, 0, OP_TEXT, "x", 1);
    parser_teardown(&p, &r);

    /* STOP when the frame completes in a later chunk */

    n = build_frame(f, 1, OP_TEXT, "abc", 3, test_key);
    n += build_frame(f + n, 1, OP_TEXT, "d", 1, test_key);

    parser_setup(&p, &r, 1, 0);
    r.stop_at = 1;
    assert_int_equal(ngx_http_reverse_mcp_ws_parse(&p, f, 7, &used), WS_OK);
    assert_int_equal(used, 7);
    rc = ngx_http_reverse_mcp_ws_parse(&p, f + 7, n - 7, &used);
    assert_int_equal(rc, WS_STOP);
    assert_int_equal(used, 2);
    rc = ngx_http_reverse_mcp_ws_parse(&p, f + 9, n - 9, &used);
    assert_int_equal(rc, WS_OK);
    assert_int_equal(r.n, 2);
    assert_event(&r, 1, 0, OP_TEXT, "d", 1);
    parser_teardown(&p, &r);
}


static void
test_empty_input_and_no_callbacks(void **state)
{
    size_t         n, used;
    parser_t       p;
    unsigned char  f[100];

    memset(&p, 0, sizeof(p));
    p.server_side = 1;
    ngx_http_reverse_mcp_ws_parser_init(&p);

    used = 99;
    assert_int_equal(ngx_http_reverse_mcp_ws_parse(&p, f, 0, &used), WS_OK);
    assert_int_equal(used, 0);

    /* callbacks are optional */

    n = build_frame(f, 1, OP_TEXT, "x", 1, test_key);
    n += build_frame(f + n, 1, OP_PING, "y", 1, test_key);
    assert_int_equal(ngx_http_reverse_mcp_ws_parse(&p, f, n, &used), WS_OK);
    assert_int_equal(used, n);
    assert_int_equal(p.messages, 1);
    assert_int_equal(p.frames, 2);

    ngx_http_reverse_mcp_ws_parser_free(&p);
}


static void
test_init_keeps_user_fields(void **state)
{
    parser_t    p;
    recorder_t  r;

    memset(&p, 0x5a, sizeof(p));
    p.max_message = 1234;
    p.server_side = 1;
    p.on_message = on_message;
    p.on_control = on_control;
    p.data = &r;

    ngx_http_reverse_mcp_ws_parser_init(&p);

    assert_int_equal(p.max_message, 1234);
    assert_int_equal(p.server_side, 1);
    assert_ptr_equal(p.on_message, on_message);
    assert_ptr_equal(p.on_control, on_control);
    assert_ptr_equal(p.data, &r);
    assert_null(p.msg);
    assert_int_equal(p.close_code, 0);
    assert_null(p.error);
    assert_int_equal(ngx_http_reverse_mcp_ws_parser_idle(&p), 1);

    /* free + init makes a failed parser usable again */

    memset(&r, 0, sizeof(r));
    assert_int_equal(ngx_http_reverse_mcp_ws_parse(&p,
                         (const unsigned char *) "\x81\x00", 2, NULL),
                     WS_FAIL);
    ngx_http_reverse_mcp_ws_parser_free(&p);
    ngx_http_reverse_mcp_ws_parser_init(&p);
    assert_int_equal(ngx_http_reverse_mcp_ws_parse(&p,
                         (const unsigned char *) "\x81\x80\x01\x02\x03\x04",
                         6, NULL),
                     WS_OK);
    assert_int_equal(r.n, 1);
    parser_teardown(&p, &r);
}


/* ------------------------------------------------------------------ */
/* encoder round trip                                                  */
/* ------------------------------------------------------------------ */

static void
test_round_trip(void **state)
{
    int             op;
    size_t          i, k, n, h, len;
    parser_t        p;
    recorder_t      r;
    unsigned char  *f, *pl, key[4];

    static const size_t  sizes[] = { 0, 1, 3, 4, 5, 125, 126, 4095, 65535,
                                     65536, 100001 };

    pl = malloc(100001);
    f = malloc(100001 + NGX_HTTP_REVERSE_MCP_WS_MAX_HEADER);
    assert_non_null(pl);
    assert_non_null(f);

    for (i = 0; i < 100001; i++) {
        pl[i] = (unsigned char) ('a' + i % 26);
    }

    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        len = sizes[k];
        op = (k & 1) ? OP_TEXT : OP_BINARY;

        key[0] = (unsigned char) (k * 13 + 1);
        key[1] = (unsigned char) (k * 7 + 2);
        key[2] = (unsigned char) (k * 5 + 3);
        key[3] = (unsigned char) (k * 3 + 4);

        /* client encodes (masked) ... */

        h = ngx_http_reverse_mcp_ws_frame_header(f, op, len, key);
        memcpy(f + h, pl, len);
        ngx_http_reverse_mcp_ws_mask(f + h, len, key, 0);
        n = h + len;

        /* ... server decodes */

        parser_setup(&p, &r, 1, 0);
        assert_int_equal(feed(&p, f, n, (k * 37) % 1000), WS_OK);
        assert_int_equal(r.n, 1);
        assert_event(&r, 0, 0, op, pl, len);
        parser_teardown(&p, &r);

        /* and the other direction: server encodes, client decodes */

        h = ngx_http_reverse_mcp_ws_frame_header(f, op, len, NULL);
        memcpy(f + h, pl, len);
        n = h + len;

        parser_setup(&p, &r, 0, 0);
        assert_int_equal(feed(&p, f, n, 0), WS_OK);
        assert_int_equal(r.n, 1);
        assert_event(&r, 0, 0, op, pl, len);
        parser_teardown(&p, &r);
    }

    /* control frames */

    h = ngx_http_reverse_mcp_ws_frame_header(f, OP_CLOSE, 0, test_key);
    n = ngx_http_reverse_mcp_ws_close_payload(f + h, 1000, "done", 4);
    ngx_http_reverse_mcp_ws_frame_header(f, OP_CLOSE, n, test_key);
    ngx_http_reverse_mcp_ws_mask(f + h, n, test_key, 0);

    parser_setup(&p, &r, 1, 0);
    assert_int_equal(feed(&p, f, h + n, 1), WS_OK);
    assert_event(&r, 0, 1, OP_CLOSE, "\x03\xe8" "done", 6);
    parser_teardown(&p, &r);

    free(pl);
    free(f);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_accept_key_rfc),
        cmocka_unit_test(test_accept_key_errors),
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_close_code_valid),
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_close_payload_build),
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_mask_policy),
        cmocka_unit_test(test_mask_zero_key),
        cmocka_unit_test(test_rsv_bits),
        cmocka_unit_test(test_unknown_opcodes),
        cmocka_unit_test(test_control_rules),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_nonminimal_lengths),
        cmocka_unit_test(test_fragmentation_rules),
        cmocka_unit_test(test_fragmentation_interleaved),
        cmocka_unit_test(test_zero_length_messages),
        cmocka_unit_test(test_text_utf8),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_size_limit_default),
        cmocka_unit_test(test_buffer_retention),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_byte_at_a_time_failure),
        cmocka_unit_test(test_idle),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_empty_input_and_no_callbacks),
        cmocka_unit_test(test_init_keeps_user_fields),
        cmocka_unit_test(test_round_trip),
    };

    return cmocka_run_group_tests_name("ws_codec", tests, NULL, NULL);
}
