/*
 * libFuzzer target for the gateway ids of relayed requests
 * (src/ngx_http_reverse_mcp_relayid): whatever a caller sends back as an
 * id or a requestState, the parser must not crash, and what it accepts
 * must be the canonical form of its triple (format() writes the same
 * bytes), so no two texts name the same call.  The first 24 bytes also
 * give a triple whose formatted id must parse back to it.
 *
 * Build with -DNGX_HTTP_REVERSE_MCP_FUZZ_MAIN for a plain main() that
 * replays the files given on the command line (no libFuzzer needed).
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_reverse_mcp_relayid.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "relayid_fuzz: invariant failed: %s\n", what);
        abort();
    }
}


static uint64_t
u64(const uint8_t *p)
{
    uint64_t  v;
    int       i;

    v = 0;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }

    return v;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t         n;
    uint64_t       pid, key, seq, p2, k2, s2;
    unsigned char  buf[NGX_HTTP_REVERSE_MCP_RELAYID_MAX];

    if (ngx_http_reverse_mcp_relayid_parse(data, size, &pid, &key, &seq)
        == 0)
    {
        check(pid >= 1 && pid <= NGX_HTTP_REVERSE_MCP_RELAYID_PID_MAX,
              "pid in range");
        n = ngx_http_reverse_mcp_relayid_format(buf, pid, key, seq);
        check(n == size && memcmp(buf, data, n) == 0,
              "an accepted id is canonical");
    }

    if (size >= 24) {
        pid = u64(data) % NGX_HTTP_REVERSE_MCP_RELAYID_PID_MAX + 1;
        key = u64(data + 8);
        seq = u64(data + 16);

        n = ngx_http_reverse_mcp_relayid_format(buf, pid, key, seq);
        check(n <= NGX_HTTP_REVERSE_MCP_RELAYID_MAX, "length");
        check(ngx_http_reverse_mcp_relayid_parse(buf, n, &p2, &k2, &s2) == 0,
              "a formatted id parses");
        check(p2 == pid && k2 == key && s2 == seq, "round trip");
    }

    return 0;
}


#ifdef NGX_HTTP_REVERSE_MCP_FUZZ_MAIN

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

        buf = malloc(len ? len : 1);
        check(buf != NULL, "malloc");
        check(fread(buf, 1, len, fp) == (size_t) len, "fread");
        fclose(fp);

        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
    }

    printf("relayid_fuzz: %d inputs replayed\n", argc - 1);

    return 0;
}

#endif
