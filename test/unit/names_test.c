/*
 * Unit tests for the tool-name mapping (src/ngx_http_reverse_mcp_names)
 * using cmocka: the name rules at their boundaries, natural and shortened
 * exposed names (expected values computed independently with Perl's
 * Digest::SHA), the split, the shape of shortened names, collision
 * marking and the reverse lookup.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ngx_http_reverse_mcp_names.h"


#define U(s)  ((const unsigned char *) (s))
#define S(s)  U(s), strlen(s)

#define NAMES_MAX  NGX_HTTP_REVERSE_MCP_NAMES_MAX


static char *
repeat(char c, size_t n)
{
    char  *s;

    s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';

    return s;
}


/* the exposed name as a C string; *shortened as an int */
static const char *
expose(const char *server, const char *sep, const char *tool, int *shortened)
{
    size_t                len;
    static char           buf[NAMES_MAX + 1];
    static unsigned char  out[NAMES_MAX + 16];

    memset(out, 0xa5, sizeof(out));

    len = ngx_http_reverse_mcp_names_expose(S(server), S(sep), S(tool), out,
                                            shortened);

    assert_true(len <= NAMES_MAX);

    /* nothing written past the 64 bytes */
    assert_int_equal(out[NAMES_MAX], 0xa5);

    memcpy(buf, out, len);
    buf[len] = '\0';

    return buf;
}


static void
test_tool_valid(void **state)
{
    char  *s;

    assert_true(ngx_http_reverse_mcp_names_tool_valid(S("echo")));
    assert_true(ngx_http_reverse_mcp_names_tool_valid(S("fs.read_file-2")));
    assert_true(ngx_http_reverse_mcp_names_tool_valid(S("a")));
    assert_false(ngx_http_reverse_mcp_names_tool_valid(S("")));
    assert_false(ngx_http_reverse_mcp_names_tool_valid(S("a b")));
    assert_false(ngx_http_reverse_mcp_names_tool_valid(S("a/b")));
    assert_false(ngx_http_reverse_mcp_names_tool_valid(S("caf\xc3\xa9")));
    assert_false(ngx_http_reverse_mcp_names_tool_valid(U("a\0b"), 3));

    s = repeat('x', 128);
    assert_true(ngx_http_reverse_mcp_names_tool_valid(S(s)));
    free(s);

    s = repeat('x', 129);
    assert_false(ngx_http_reverse_mcp_names_tool_valid(S(s)));
    free(s);
}


static void
test_function_valid(void **state)
{
    char  *s;

    assert_true(ngx_http_reverse_mcp_names_function_valid(S("s1__echo")));
    assert_true(ngx_http_reverse_mcp_names_function_valid(S("A-z_0")));
    assert_false(ngx_http_reverse_mcp_names_function_valid(S("s2__x.y")));
    assert_false(ngx_http_reverse_mcp_names_function_valid(S("")));
    assert_false(ngx_http_reverse_mcp_names_function_valid(S("a:b")));

    s = repeat('f', 64);
    assert_true(ngx_http_reverse_mcp_names_function_valid(S(s)));
    free(s);

    s = repeat('f', 65);
    assert_false(ngx_http_reverse_mcp_names_function_valid(S(s)));
    free(s);
}


static void
test_server_valid(void **state)
{
    char  *s;

    assert_true(ngx_http_reverse_mcp_names_server_valid(S("s1")));
    assert_true(ngx_http_reverse_mcp_names_server_valid(S("my_server-2")));
    assert_true(ngx_http_reverse_mcp_names_server_valid(S("_lead")));
    assert_false(ngx_http_reverse_mcp_names_server_valid(S("a__b")));
    assert_false(ngx_http_reverse_mcp_names_server_valid(S("a_")));
    assert_false(ngx_http_reverse_mcp_names_server_valid(S("_")));
    assert_false(ngx_http_reverse_mcp_names_server_valid(S("a.b")));
    assert_false(ngx_http_reverse_mcp_names_server_valid(S("")));

    s = repeat('s', 64);
    assert_true(ngx_http_reverse_mcp_names_server_valid(S(s)));
    free(s);

    s = repeat('s', 65);
    assert_false(ngx_http_reverse_mcp_names_server_valid(S(s)));
    free(s);
}


static void
test_sep_valid(void **state)
{
    assert_true(ngx_http_reverse_mcp_names_sep_valid(S("__")));
    assert_true(ngx_http_reverse_mcp_names_sep_valid(S("-")));
    assert_true(ngx_http_reverse_mcp_names_sep_valid(S("_to_")));
    assert_true(ngx_http_reverse_mcp_names_sep_valid(S("12345678")));
    assert_false(ngx_http_reverse_mcp_names_sep_valid(S("123456789")));
    assert_false(ngx_http_reverse_mcp_names_sep_valid(S(".")));
    assert_false(ngx_http_reverse_mcp_names_sep_valid(S("")));
    assert_false(ngx_http_reverse_mcp_names_sep_valid(S("::")));
}


static void
test_split(void **state)
{
    size_t  n;

    n = 0;
    assert_true(ngx_http_reverse_mcp_names_split(S("s1__echo"), S("__"), &n));
    assert_int_equal(n, 2);

    /* the first separator: the tool keeps its own "__" */
    assert_true(ngx_http_reverse_mcp_names_split(S("s1__a__b"), S("__"), &n));
    assert_int_equal(n, 2);

    /* a tool that starts with "_" */
    assert_true(ngx_http_reverse_mcp_names_split(S("a___x"), S("__"), &n));
    assert_int_equal(n, 1);

    assert_false(ngx_http_reverse_mcp_names_split(S("s1__"), S("__"), &n));
    assert_false(ngx_http_reverse_mcp_names_split(S("__x"), S("__"), &n));
    assert_false(ngx_http_reverse_mcp_names_split(S("echo"), S("__"), &n));
    assert_false(ngx_http_reverse_mcp_names_split(S(""), S("__"), &n));
    assert_false(ngx_http_reverse_mcp_names_split(S("a__b"), U(""), 0, &n));

    assert_true(ngx_http_reverse_mcp_names_split(S("a-b-c"), S("-"), &n));
    assert_int_equal(n, 1);
}


static void
test_expose_natural(void **state)
{
    int    shortened;
    char  *tool, *name;

    assert_string_equal(expose("s1", "__", "echo", &shortened), "s1__echo");
    assert_false(shortened);

    assert_string_equal(expose("s1", "__", "a__b", &shortened), "s1__a__b");
    assert_false(shortened);

    assert_string_equal(expose("s1", "-", "a-b", &shortened), "s1-a-b");
    assert_false(shortened);

    assert_string_equal(expose("a", "__", "_x", &shortened), "a___x");
    assert_false(shortened);

    /* exactly 64 characters stay as they are */
    tool = repeat('t', 64 - 4);
    name = malloc(65);
    assert_non_null(name);
    snprintf(name, 65, "s1__%s", tool);
    assert_string_equal(expose("s1", "__", tool, &shortened), name);
    assert_false(shortened);
    free(tool);
    free(name);
}


static void
test_expose_shortened(void **state)
{
    int          shortened;
    char        *tool;
    const char  *name;

    /* 69 characters: a readable prefix of 53, "_", 10 hex digits */
    name = expose("github", "__",
                  "create_or_update_file_contents_in_repository_with_a_long_"
                  "name", &shortened);
    assert_true(shortened);
    assert_string_equal(name, "github__create_or_update_file_contents_in_"
                              "repository__429df17709");
    assert_int_equal(strlen(name), 64);

    tool = repeat('x', 62);
    assert_string_equal(expose("s", "__", tool, &shortened),
                        "s__xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "_f5513bea4e");
    assert_true(shortened);
    free(tool);

    /* characters outside [A-Za-z0-9_-] */
    assert_string_equal(expose("s2", "__", "x.y", &shortened),
                        "s2__x_y_6f059e97f7");
    assert_true(shortened);

    assert_string_equal(expose("s2", "__", "fs.read", &shortened),
                        "s2__fs_read_e164554d4f");
    assert_true(shortened);

    /* the natural form would split elsewhere: a different pair's name */
    assert_string_equal(expose("a-b", "-", "c", &shortened),
                        "a-b-c_695274f6b8");
    assert_true(shortened);
    assert_string_equal(expose("a", "-", "b-c", &shortened), "a-b-c");
    assert_false(shortened);

    assert_string_equal(expose("a_", "__", "x", &shortened),
                        "a___x_6a0f60c79f");
    assert_true(shortened);

    /* the hash is over the pair, not the separator */
    assert_string_equal(expose("s2", "-", "x.y", &shortened),
                        "s2-x_y_6f059e97f7");
}


static void
test_expose_bounds(void **state)
{
    int             shortened;
    char           *s;
    unsigned char   out[NAMES_MAX];

    assert_int_equal(ngx_http_reverse_mcp_names_expose(U(""), 0, S("__"),
                                                       S("t"), out,
                                                       &shortened), 0);
    assert_int_equal(ngx_http_reverse_mcp_names_expose(S("s"), S("__"),
                                                       U(""), 0, out,
                                                       &shortened), 0);
    assert_int_equal(ngx_http_reverse_mcp_names_expose(S("s"), U(""), 0,
                                                       S("t"), out,
                                                       &shortened), 0);

    s = repeat('x', 129);
    assert_int_equal(ngx_http_reverse_mcp_names_expose(S("s"), S("__"),
                                                       S(s), out,
                                                       &shortened), 0);
    s[128] = '\0';
    assert_int_equal(ngx_http_reverse_mcp_names_expose(S("s"), S("__"),
                                                       S(s), out,
                                                       &shortened), 64);
    assert_true(shortened);

    s[65] = '\0';
    assert_int_equal(ngx_http_reverse_mcp_names_expose(S(s), S("__"),
                                                       S("t"), out,
                                                       &shortened), 0);
    free(s);
}


static void
test_shortened_shape(void **state)
{
    assert_true(ngx_http_reverse_mcp_names_shortened(S("s2__x_y_6f059e97f7")));
    assert_true(ngx_http_reverse_mcp_names_shortened(S("a_0123456789")));
    assert_false(ngx_http_reverse_mcp_names_shortened(S("_0123456789")));
    assert_false(ngx_http_reverse_mcp_names_shortened(S("a_012345678")));
    assert_false(ngx_http_reverse_mcp_names_shortened(S("a_0123456789A")));
    assert_false(ngx_http_reverse_mcp_names_shortened(S("a_ABCDEF0123")));
    assert_false(ngx_http_reverse_mcp_names_shortened(S("s1__echo")));
    assert_false(ngx_http_reverse_mcp_names_shortened(S("")));
}


static void
test_every_name_is_valid_and_maps_back(void **state)
{
    int            shortened;
    char           tool[129], server[65];
    size_t         i, j, len, tlen, slen, n;
    unsigned char  out[NAMES_MAX];
    unsigned int   seed;

    static const char  alphabet[] = "ab_-.Z9 _";

    seed = 1;

    for (i = 0; i < 20000; i++) {
        seed = seed * 1103515245 + 12345;
        slen = 1 + (seed >> 8) % 64;
        seed = seed * 1103515245 + 12345;
        tlen = 1 + (seed >> 8) % 128;

        for (j = 0; j < slen; j++) {
            seed = seed * 1103515245 + 12345;
            server[j] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }

        for (j = 0; j < tlen; j++) {
            seed = seed * 1103515245 + 12345;
            tool[j] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }

        len = ngx_http_reverse_mcp_names_expose(U(server), slen, S("__"),
                                                U(tool), tlen, out,
                                                &shortened);

        assert_true(ngx_http_reverse_mcp_names_function_valid(out, len));
        assert_true(ngx_http_reverse_mcp_names_tool_valid(out, len));

        if (shortened) {
            assert_true(ngx_http_reverse_mcp_names_shortened(out, len));
            continue;
        }

        /* natural: the first split gives the pair back */
        assert_true(ngx_http_reverse_mcp_names_split(out, len, S("__"), &n));
        assert_int_equal(n, slen);
        assert_memory_equal(out, server, slen);
        assert_memory_equal(out + n + 2, tool, tlen);
    }
}


static void
fill(ngx_http_reverse_mcp_names_entry_t *e, const char *server,
    const char *tool)
{
    memset(e, 0, sizeof(*e));
    e->server = U(server);
    e->server_len = strlen(server);
    e->tool = U(tool);
    e->tool_len = strlen(tool);
}


static void
test_mark_and_find(void **state)
{
    ngx_http_reverse_mcp_names_entry_t   e[6], *order[6];

    fill(&e[0], "s1", "echo");
    fill(&e[1], "s2", "echo");
    fill(&e[2], "s2", "x.y");
    fill(&e[3], "a-b", "c");
    fill(&e[4], "a", "b-c");
    fill(&e[5], "s3", "");

    assert_int_equal(ngx_http_reverse_mcp_names_mark(e, 6, S("-"), order),
                     1);

    assert_false(e[0].collides);
    assert_false(e[1].collides);
    assert_false(e[3].collides);
    assert_false(e[4].collides);
    assert_true(e[5].collides);              /* no name */
    assert_true(e[2].shortened);
    assert_false(e[4].shortened);

    assert_int_equal(ngx_http_reverse_mcp_names_find(e, 6, S("s2-echo")), 1);
    assert_int_equal(ngx_http_reverse_mcp_names_find(e, 6,
                                                     S("a-b-c_695274f6b8")),
                     3);
    assert_int_equal(ngx_http_reverse_mcp_names_find(e, 6, S("a-b-c")), 4);
    assert_int_equal(ngx_http_reverse_mcp_names_find(e, 6, S("s2-x.y")),
                     NGX_HTTP_REVERSE_MCP_NAMES_NONE);

    /* the same pair twice: both marked, the lookup is ambiguous */
    fill(&e[0], "s1", "long.name");
    fill(&e[1], "s2", "echo");
    fill(&e[2], "s1", "long.name");
    fill(&e[3], "s1", "echo");

    assert_int_equal(ngx_http_reverse_mcp_names_mark(e, 4, S("__"), order),
                     2);
    assert_true(e[0].collides);
    assert_false(e[1].collides);
    assert_true(e[2].collides);
    assert_false(e[3].collides);
    assert_int_equal(ngx_http_reverse_mcp_names_find(e, 4, e[0].name,
                                                     e[0].name_len),
                     NGX_HTTP_REVERSE_MCP_NAMES_AMBIGUOUS);

    /* three of a kind */
    fill(&e[0], "s", "t.t");
    fill(&e[1], "s", "t.t");
    fill(&e[2], "s", "t.t");
    assert_int_equal(ngx_http_reverse_mcp_names_mark(e, 3, S("__"), order),
                     3);

    /* none and one */
    assert_int_equal(ngx_http_reverse_mcp_names_mark(e, 0, S("__"), order),
                     0);
    assert_int_equal(ngx_http_reverse_mcp_names_mark(e, 1, S("__"), order),
                     0);
    assert_false(e[0].collides);
    assert_int_equal(ngx_http_reverse_mcp_names_find(e, 0, S("x")),
                     NGX_HTTP_REVERSE_MCP_NAMES_NONE);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_tool_valid),
        cmocka_unit_test(test_function_valid),
        cmocka_unit_test(test_server_valid),
        cmocka_unit_test(test_sep_valid),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_expose_natural),
        cmocka_unit_test(test_expose_shortened),
        cmocka_unit_test(test_expose_bounds),
        cmocka_unit_test(test_shortened_shape),
        cmocka_unit_test(test_every_name_is_valid_and_maps_back),
        cmocka_unit_test(test_mark_and_find),
    };

    return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
