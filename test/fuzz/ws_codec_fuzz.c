/*
 * libFuzzer target for the WebSocket frame codec
 * (src/ngx_http_reverse_mcp_ws_codec.c).
 *
 * The input is a raw byte stream fed to the parser in both server_side
 * modes with max_message = 4096: once whole, once byte by byte and once in
 * chunks whose sizes (and callback STOPs) are derived from the input.  All
 * three runs must give the same events and the same result.  Invariants
 * checked: delivered text is valid UTF-8 (against an independent reference
 * decoder), sizes are within limits, close payloads are valid, the buffer
 * never exceeds the limit, FAIL sets a known close code; the helpers
 * (encoder round trip, close payload, accept key) are exercised on the same
 * input.  Leaks are caught by ASan.
 *
 * Build with -DNGX_HTTP_REVERSE_MCP_WS_FUZZ_MAIN for a plain main() that
 * replays the files given on the command line (no libFuzzer needed).
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_reverse_mcp_ws_codec.h"


#define FUZZ_MAX_MESSAGE  4096


typedef struct {
    uint64_t   hash;         /* FNV-1a over every event */
    uint64_t   events;
    uint64_t   stop_seed;    /* 0: never STOP */
    uint64_t   max;
} sink_t;


typedef struct {
    int        rc;
    int        close_code;
    const char *error;
    uint64_t   hash;
    uint64_t   events;
    uint64_t   frames;
    uint64_t   messages;
    int        idle;
} result_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "ws_codec_fuzz: invariant failed: %s\n", what);
        abort();
    }
}


/* independent UTF-8 check: decode code points, then range-check them */

static int
ref_utf8_valid(const uint8_t *s, size_t n)
{
    size_t    i, j, k;
    uint32_t  c, min;

    i = 0;

    while (i < n) {
        c = s[i];

        if (c < 0x80) {
            i++;
            continue;
        }

        if ((c & 0xe0) == 0xc0) {
            k = 1;
            c &= 0x1f;
            min = 0x80;

        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            c &= 0x0f;
            min = 0x800;

        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            c &= 0x07;
            min = 0x10000;

        } else {
            return 0;
        }

        if (n - i - 1 < k) {
            return 0;
        }

        for (j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) {
                return 0;
            }

            c = (c << 6) | (s[i + j] & 0x3f);
        }

        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return 0;
        }

        i += k + 1;
    }

    return 1;
}


static uint64_t
fnv(uint64_t h, const void *buf, size_t len)
{
    size_t          i;
    const uint8_t  *p = buf;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }

    return h;
}


static uint64_t
splitmix(uint64_t *s)
{
    uint64_t  z;

    *s += 0x9e3779b97f4a7c15ULL;
    z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;

    return z ^ (z >> 31);
}


static int
event(sink_t *s, int control, int opcode, const unsigned char *payload,
    size_t len)
{
    uint64_t  seed;
    int       hdr[2];

    check(payload != NULL, "payload is NULL");

    hdr[0] = control;
    hdr[1] = opcode;

    s->hash = fnv(s->hash, hdr, sizeof(hdr));
    s->hash = fnv(s->hash, &len, sizeof(len));
    s->hash = fnv(s->hash, payload, len);
    s->events++;

    if (s->stop_seed == 0) {
        return 0;
    }

    seed = s->stop_seed ^ s->events;

    return (splitmix(&seed) & 3) == 0;
}


static int
on_message(void *data, int opcode, const unsigned char *payload, size_t len)
{
    sink_t  *s = data;

    check(opcode == NGX_HTTP_REVERSE_MCP_WS_OP_TEXT
          || opcode == NGX_HTTP_REVERSE_MCP_WS_OP_BINARY,
          "message opcode");
    check(len <= s->max, "message longer than max_message");

    if (opcode == NGX_HTTP_REVERSE_MCP_WS_OP_TEXT) {
        check(ref_utf8_valid(payload, len), "delivered text is not UTF-8");
    }

    return event(s, 0, opcode, payload, len);
}


static int
on_control(void *data, int opcode, const unsigned char *payload, size_t len)
{
    int      code;
    sink_t  *s = data;

    check(opcode == NGX_HTTP_REVERSE_MCP_WS_OP_PING
          || opcode == NGX_HTTP_REVERSE_MCP_WS_OP_PONG
          || opcode == NGX_HTTP_REVERSE_MCP_WS_OP_CLOSE,
          "control opcode");
    check(len <= 125, "control payload longer than 125");

    if (opcode == NGX_HTTP_REVERSE_MCP_WS_OP_CLOSE && len) {
        check(len >= 2, "close payload of 1 byte delivered");

        code = (payload[0] << 8) | payload[1];

        check((code >= 1000 && code <= 1003)
              || (code >= 1007 && code <= 1014)
              || (code >= 3000 && code <= 4999),
              "invalid close code delivered");
        check(ref_utf8_valid(payload + 2, len - 2),
              "invalid close reason delivered");
    }

    return event(s, 1, opcode, payload, len);
}


static void
parser_start(ngx_http_reverse_mcp_ws_parser_t *p, sink_t *s, int server_side,
    uint64_t stop_seed)
{
    memset(p, 0, sizeof(*p));
    memset(s, 0, sizeof(*s));

    s->hash = 0xcbf29ce484222325ULL;
    s->stop_seed = stop_seed;
    s->max = FUZZ_MAX_MESSAGE;

    p->max_message = FUZZ_MAX_MESSAGE;
    p->server_side = server_side ? 1 : 0;
    p->on_message = on_message;
    p->on_control = on_control;
    p->data = s;

    ngx_http_reverse_mcp_ws_parser_init(p);
}


/* one parse() call with the checks that hold after any call */

static int
parse_checked(ngx_http_reverse_mcp_ws_parser_t *p, const uint8_t *buf,
    size_t len, size_t *used)
{
    int  rc;

    *used = (size_t) -1;

    rc = ngx_http_reverse_mcp_ws_parse(p, buf, len, used);

    check(*used <= len, "consumed > len");
    check(p->msg_cap <= FUZZ_MAX_MESSAGE, "buffer larger than max_message");
    check(p->msg_len <= p->msg_cap, "msg_len > msg_cap");

    switch (rc) {

    case NGX_HTTP_REVERSE_MCP_WS_OK:
        check(*used == len, "OK without consuming everything");
        break;

    case NGX_HTTP_REVERSE_MCP_WS_STOP:
        check(*used > 0 || len == 0, "STOP without progress");
        check(p->hdr_len == 0, "STOP inside a frame");
        break;

    case NGX_HTTP_REVERSE_MCP_WS_FAIL:
        check(p->error != NULL, "FAIL without error");
        check(p->close_code == NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL
              || p->close_code == NGX_HTTP_REVERSE_MCP_WS_CLOSE_BAD_DATA
              || p->close_code == NGX_HTTP_REVERSE_MCP_WS_CLOSE_TOO_BIG,
              "unexpected close code");
        check(!ngx_http_reverse_mcp_ws_parser_idle(p), "idle after FAIL");
        break;

    default:
        check(0, "unknown return code");
    }

    return rc;
}


static void
result_save(result_t *r, int rc, ngx_http_reverse_mcp_ws_parser_t *p,
    sink_t *s)
{
    r->rc = rc;
    r->close_code = (rc == NGX_HTTP_REVERSE_MCP_WS_FAIL) ? p->close_code : 0;
    r->error = (rc == NGX_HTTP_REVERSE_MCP_WS_FAIL) ? p->error : NULL;
    r->hash = s->hash;
    r->events = s->events;
    r->frames = p->frames;
    r->messages = p->messages;
    r->idle = ngx_http_reverse_mcp_ws_parser_idle(p);
}


static void
result_compare(const result_t *a, const result_t *b, const char *what)
{
    if (a->rc != b->rc || a->close_code != b->close_code
        || a->error != b->error || a->hash != b->hash
        || a->events != b->events || a->frames != b->frames
        || a->messages != b->messages || a->idle != b->idle)
    {
        fprintf(stderr, "ws_codec_fuzz: %s differs: rc %d/%d code %d/%d "
                "error \"%s\"/\"%s\" events %llu/%llu frames %llu/%llu\n",
                what, a->rc, b->rc, a->close_code, b->close_code,
                a->error ? a->error : "", b->error ? b->error : "",
                (unsigned long long) a->events,
                (unsigned long long) b->events,
                (unsigned long long) a->frames,
                (unsigned long long) b->frames);
        abort();
    }
}


static void
fuzz_parser(const uint8_t *data, size_t size, int server_side, uint64_t seed)
{
    int                               rc;
    size_t                            off, n, used;
    sink_t                            s;
    result_t                          whole, bytes, chunks;
    uint64_t                          rnd;
    ngx_http_reverse_mcp_ws_parser_t  p;

    /* 1. whole buffer */

    parser_start(&p, &s, server_side, 0);
    rc = parse_checked(&p, data, size, &used);
    check(rc != NGX_HTTP_REVERSE_MCP_WS_STOP, "STOP without a request");
    result_save(&whole, rc, &p, &s);
    ngx_http_reverse_mcp_ws_parser_free(&p);

    /* 2. byte by byte */

    parser_start(&p, &s, server_side, 0);
    rc = NGX_HTTP_REVERSE_MCP_WS_OK;

    for (off = 0; off < size; off++) {
        rc = parse_checked(&p, data + off, 1, &used);
        if (rc != NGX_HTTP_REVERSE_MCP_WS_OK) {
            break;
        }
    }

    result_save(&bytes, rc, &p, &s);
    ngx_http_reverse_mcp_ws_parser_free(&p);
    result_compare(&whole, &bytes, "byte-at-a-time");

    /* 3. input-derived chunks, callbacks asking to STOP now and then */

    parser_start(&p, &s, server_side, seed | 1);
    rc = NGX_HTTP_REVERSE_MCP_WS_OK;
    rnd = seed;
    off = 0;

    while (off < size) {
        rnd = splitmix(&rnd);

        switch (rnd & 3) {
        case 0:
            n = 1 + (rnd >> 8) % 3;
            break;
        case 1:
            n = 1 + (rnd >> 8) % 16;
            break;
        case 2:
            n = 1 + (rnd >> 8) % 200;
            break;
        default:
            n = size - off;
        }

        if (n > size - off) {
            n = size - off;
        }

        rc = parse_checked(&p, data + off, n, &used);

        if (rc == NGX_HTTP_REVERSE_MCP_WS_FAIL) {
            break;
        }

        off += used;
        rc = NGX_HTTP_REVERSE_MCP_WS_OK;
    }

    result_save(&chunks, rc, &p, &s);
    ngx_http_reverse_mcp_ws_parser_free(&p);
    result_compare(&whole, &chunks, "chunked with STOP");

    /* a freed parser can be re-initialised and reused */

    ngx_http_reverse_mcp_ws_parser_init(&p);
    check(ngx_http_reverse_mcp_ws_parser_idle(&p), "not idle after init");
    ngx_http_reverse_mcp_ws_parser_free(&p);
}


/* encode the input as one frame, parse it back on the other side */

static void
fuzz_round_trip(const uint8_t *data, size_t size, int client)
{
    int                               rc, op, hdr[2];
    size_t                            h, used;
    sink_t                            s;
    uint8_t                          *f;
    uint64_t                          want;
    unsigned char                     key[4];
    ngx_http_reverse_mcp_ws_parser_t  p;

    if (size > FUZZ_MAX_MESSAGE + 1) {
        size = FUZZ_MAX_MESSAGE + 1;
    }

    op = ngx_http_reverse_mcp_ws_utf8_valid(data, size)
         ? NGX_HTTP_REVERSE_MCP_WS_OP_TEXT : NGX_HTTP_REVERSE_MCP_WS_OP_BINARY;

    memset(key, 0, sizeof(key));
    memcpy(key, data, size < 4 ? size : 4);

    f = malloc(size + NGX_HTTP_REVERSE_MCP_WS_MAX_HEADER);
    check(f != NULL, "malloc");

    h = ngx_http_reverse_mcp_ws_frame_header(f, op, size, client ? key : NULL);
    check(h >= 2 && h <= NGX_HTTP_REVERSE_MCP_WS_MAX_HEADER, "header size");

    if (size) {
        memcpy(f + h, data, size);
    }

    if (client) {
        ngx_http_reverse_mcp_ws_mask(f + h, size, key, 0);
    }

    parser_start(&p, &s, client, 0);
    rc = parse_checked(&p, f, h + size, &used);

    if (size > FUZZ_MAX_MESSAGE) {
        check(rc == NGX_HTTP_REVERSE_MCP_WS_FAIL
              && p.close_code == NGX_HTTP_REVERSE_MCP_WS_CLOSE_TOO_BIG,
              "round trip: over the limit not rejected");

    } else {
        hdr[0] = 0;
        hdr[1] = op;

        want = 0xcbf29ce484222325ULL;
        want = fnv(want, hdr, sizeof(hdr));
        want = fnv(want, &size, sizeof(size));
        want = fnv(want, data, size);

        check(rc == NGX_HTTP_REVERSE_MCP_WS_OK, "round trip: parse failed");
        check(s.events == 1 && s.hash == want, "round trip: payload differs");
        check(ngx_http_reverse_mcp_ws_parser_idle(&p), "round trip: not idle");
    }

    ngx_http_reverse_mcp_ws_parser_free(&p);
    free(f);
}


static void
fuzz_helpers(const uint8_t *data, size_t size)
{
    int            code;
    size_t         i, n, rlen;
    unsigned char  out[125], acc[28];

    /* UTF-8 validator against the reference */

    check(ngx_http_reverse_mcp_ws_utf8_valid(data, size)
          == ref_utf8_valid(data, size), "utf8_valid disagrees");

    /* close payload: code from the first two bytes, reason the rest */

    if (size >= 2) {
        code = (data[0] << 8) | data[1];
        rlen = size - 2;

        n = ngx_http_reverse_mcp_ws_close_payload(out, code,
                                                  (const char *) data + 2,
                                                  rlen);
        check(n <= 125, "close payload too long");

        if (code == 0 || code == NGX_HTTP_REVERSE_MCP_WS_CLOSE_NO_STATUS) {
            check(n == 0, "close payload for no status");

        } else {
            check(n >= 2 && out[0] == data[0] && out[1] == data[1],
                  "close payload code");
            check(memcmp(out + 2, data + 2, n - 2) == 0,
                  "close payload reason is not a prefix");

            if (rlen <= 123) {
                check(n == 2 + rlen, "short reason was cut");

            } else if (ref_utf8_valid(data + 2, rlen)) {
                check(n >= 2 + 120, "reason cut too much");
                check(ref_utf8_valid(out + 2, n - 2),
                      "reason cut inside a UTF-8 sequence");
            }
        }
    }

    /* handshake helpers */

    if (size <= 128) {
        check(ngx_http_reverse_mcp_ws_accept_key(data, size, acc) == 0,
              "accept_key failed");

        for (i = 0; i < 27; i++) {
            check((acc[i] >= 'A' && acc[i] <= 'Z')
                  || (acc[i] >= 'a' && acc[i] <= 'z')
                  || (acc[i] >= '0' && acc[i] <= '9')
                  || acc[i] == '+' || acc[i] == '/', "accept_key alphabet");
        }

        check(acc[27] == '=', "accept_key padding");
    }

    (void) ngx_http_reverse_mcp_ws_key_valid(data, size);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t  seed;

    seed = fnv(0xcbf29ce484222325ULL, data, size);

    fuzz_parser(data, size, 1, seed);
    fuzz_parser(data, size, 0, seed);

    fuzz_round_trip(data, size, 1);
    fuzz_round_trip(data, size, 0);

    fuzz_helpers(data, size);

    return 0;
}


#ifdef NGX_HTTP_REVERSE_MCP_WS_FUZZ_MAIN

int
main(int argc, char **argv)
{
    int       i;
    FILE     *fp;
    long      len;
    uint8_t  *buf;

    for (i = 1; i < argc; i++) {
        fp = fopen(argv[i], "rb");
        check(fp != NULL, "cannot open input");

        check(fseek(fp, 0, SEEK_END) == 0, "fseek");
        len = ftell(fp);
        check(len >= 0, "ftell");
        rewind(fp);

        buf = malloc(len ? (size_t) len : 1);
        check(buf != NULL, "malloc");
        check(fread(buf, 1, (size_t) len, fp) == (size_t) len, "fread");
        fclose(fp);

        LLVMFuzzerTestOneInput(buf, (size_t) len);
        free(buf);
    }

    printf("ws_codec_fuzz: %d input(s) replayed\n", argc - 1);

    return 0;
}

#endif
