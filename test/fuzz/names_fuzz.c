/*
 * libFuzzer target for the tool-name mapping
 * (src/ngx_http_reverse_mcp_names.c).
 *
 * The input is split at NUL bytes: the first part is the separator, the
 * rest are "server\ttool" pairs (a pair without a tab uses the previous
 * server).  Invariants checked: an exposed name is a valid function name
 * and a valid MCP tool name of at most 64 characters, or empty exactly
 * when a part is out of bounds; the same pair always gives the same name;
 * a natural name splits back into its pair at the first separator and is
 * the concatenation; a shortened one has the shortened shape; the rules
 * agree with each other (a valid server name never contains the
 * separator "__"); collision marking marks exactly the names that occur
 * more than once, and the lookup returns the entry itself for every
 * unmarked one and "ambiguous" for every marked one.  Leaks and
 * out-of-bounds accesses are caught by ASan.
 *
 * Build with -DNGX_HTTP_REVERSE_MCP_FUZZ_MAIN for a plain main() that
 * replays the files given on the command line (no libFuzzer needed).
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_reverse_mcp_names.h"


#define FUZZ_MAX_PAIRS  32


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "names_fuzz: invariant failed: %s\n", what);
        abort();
    }
}


static void
check_pair(ngx_http_reverse_mcp_names_entry_t *e, const uint8_t *sep,
    size_t sep_len)
{
    int            shortened, again;
    size_t         len, n;
    unsigned char  out[NGX_HTTP_REVERSE_MCP_NAMES_MAX];

    len = ngx_http_reverse_mcp_names_expose(e->server, e->server_len, sep,
                                            sep_len, e->tool, e->tool_len,
                                            out, &shortened);

    if (e->server_len == 0 || e->server_len > NGX_HTTP_REVERSE_MCP_NAMES_MAX
        || e->tool_len == 0
        || e->tool_len > NGX_HTTP_REVERSE_MCP_NAMES_TOOL_MAX
        || sep_len == 0 || sep_len > NGX_HTTP_REVERSE_MCP_NAMES_SEP_MAX)
    {
        check(len == 0, "a part out of bounds gives no name");
        return;
    }

    check(len > 0 && len <= NGX_HTTP_REVERSE_MCP_NAMES_MAX, "length");
    check(ngx_http_reverse_mcp_names_function_valid(out, len),
          "a function name");
    check(ngx_http_reverse_mcp_names_tool_valid(out, len), "an MCP name");

    check(ngx_http_reverse_mcp_names_expose(e->server, e->server_len, sep,
                                            sep_len, e->tool, e->tool_len,
                                            e->name, &again) == len
          && again == shortened && memcmp(e->name, out, len) == 0,
          "deterministic");

    if (shortened) {
        check(ngx_http_reverse_mcp_names_shortened(out, len),
              "a shortened name has the shape");
        return;
    }

    check(len == e->server_len + sep_len + e->tool_len, "natural length");
    check(ngx_http_reverse_mcp_names_split(out, len, sep, sep_len, &n)
          && n == e->server_len, "a natural name splits back");
    check(memcmp(out, e->server, n) == 0
          && memcmp(out + n, sep, sep_len) == 0
          && memcmp(out + n + sep_len, e->tool, e->tool_len) == 0,
          "a natural name is the concatenation");
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long                                 found;
    size_t                               i, j, n, same, sep_len, marked;
    size_t                               count;
    const uint8_t                       *p, *end, *part, *tab, *sep;
    const uint8_t                       *server;
    size_t                               server_len;
    ngx_http_reverse_mcp_names_entry_t   e[FUZZ_MAX_PAIRS];
    ngx_http_reverse_mcp_names_entry_t  *order[FUZZ_MAX_PAIRS];

    end = data + size;
    p = memchr(data, '\0', size);

    sep = data;
    sep_len = p ? (size_t) (p - data) : size;
    p = p ? p + 1 : end;

    /* the rules agree */
    if (ngx_http_reverse_mcp_names_server_valid(data, size)) {
        check(ngx_http_reverse_mcp_names_function_valid(data, size),
              "a server name is a function name");
        check(!ngx_http_reverse_mcp_names_split(data, size,
                                                (const uint8_t *) "__", 2,
                                                &n),
              "a server name has no \"__\"");
    }

    if (ngx_http_reverse_mcp_names_function_valid(data, size)) {
        check(ngx_http_reverse_mcp_names_tool_valid(data, size),
              "a function name is an MCP tool name");
    }

    n = 0;
    server = (const uint8_t *) "s";
    server_len = 1;

    while (p < end && n < FUZZ_MAX_PAIRS) {
        part = p;
        p = memchr(part, '\0', end - part);
        p = p ? p : end;

        tab = memchr(part, '\t', p - part);

        memset(&e[n], 0, sizeof(e[n]));

        if (tab) {
            server = part;
            server_len = tab - part;
            part = tab + 1;
        }

        e[n].server = server;
        e[n].server_len = server_len;
        e[n].tool = part;
        e[n].tool_len = p - part;

        check_pair(&e[n], sep, sep_len);

        n++;

        if (p < end) {
            p++;
        }
    }

    marked = ngx_http_reverse_mcp_names_mark(e, n, sep, sep_len, order);

    count = 0;

    for (i = 0; i < n; i++) {
        same = 0;

        for (j = 0; j < n; j++) {
            if (e[j].name_len == e[i].name_len
                && memcmp(e[j].name, e[i].name, e[i].name_len) == 0)
            {
                same++;
            }
        }

        check(e[i].collides == (e[i].name_len == 0 || same > 1),
              "marked exactly when the name is not unique");

        count += e[i].collides;

        if (e[i].name_len == 0) {
            continue;
        }

        found = ngx_http_reverse_mcp_names_find(e, n, e[i].name,
                                                e[i].name_len);

        check(e[i].collides ? found == NGX_HTTP_REVERSE_MCP_NAMES_AMBIGUOUS
                            : found == (long) i,
              "the lookup finds the entry, or says it is ambiguous");
    }

    check(count == marked, "the count of marked entries");

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

    printf("names_fuzz: %d inputs replayed\n", argc - 1);

    return 0;
}

#endif
