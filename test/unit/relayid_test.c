/*
 * Unit tests for the gateway ids of relayed requests
 * (src/ngx_http_reverse_mcp_relayid) using cmocka: the text form, round
 * trips at the limits, and every way an id a caller sends back can be
 * wrong (prefix, parts, signs, leading zeros, overflow, the pid's range).
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ngx_http_reverse_mcp_relayid.h"


static int
parse(const char *s, uint64_t *pid, uint64_t *key, uint64_t *seq)
{
    return ngx_http_reverse_mcp_relayid_parse((const unsigned char *) s,
                                              strlen(s), pid, key, seq);
}


static void
test_format(void **state)
{
    unsigned char  buf[NGX_HTTP_REVERSE_MCP_RELAYID_MAX];
    size_t         n;

    n = ngx_http_reverse_mcp_relayid_format(buf, 1234, 5, 0);
    assert_int_equal(n, strlen("rmcp:1234:5:0"));
    assert_memory_equal(buf, "rmcp:1234:5:0", n);

    n = ngx_http_reverse_mcp_relayid_format(buf,
            NGX_HTTP_REVERSE_MCP_RELAYID_PID_MAX, UINT64_MAX, UINT64_MAX);
    assert_int_equal(n, NGX_HTTP_REVERSE_MCP_RELAYID_MAX);
    assert_memory_equal(buf, "rmcp:2147483647:18446744073709551615:"
                        "18446744073709551615", n);
}


static void
test_round_trip(void **state)
{
    unsigned char  buf[NGX_HTTP_REVERSE_MCP_RELAYID_MAX];
    uint64_t       pid, key, seq, i;
    size_t         n;

    static const uint64_t  v[] = { 0, 1, 9, 10, 99, 4294967296ULL,
                                   9223372036854775807ULL, UINT64_MAX };

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        n = ngx_http_reverse_mcp_relayid_format(buf, i + 1, v[i],
                                                v[sizeof(v) / sizeof(v[0])
                                                  - 1 - i]);
        assert_int_equal(ngx_http_reverse_mcp_relayid_parse(buf, n, &pid,
                                                            &key, &seq), 0);
        assert_true(pid == i + 1);
        assert_true(key == v[i]);
        assert_true(seq == v[sizeof(v) / sizeof(v[0]) - 1 - i]);
    }
}


static void
test_valid(void **state)
{
    uint64_t  pid, key, seq;

    assert_int_equal(parse("rmcp:1:0:0", &pid, &key, &seq), 0);
    assert_true(pid == 1 && key == 0 && seq == 0);

    assert_int_equal(parse("rmcp:2147483647:18446744073709551615:7", &pid,
                           &key, &seq), 0);
    assert_true(pid == 2147483647 && key == UINT64_MAX && seq == 7);
}


static void
test_invalid(void **state)
{
    uint64_t  pid, key, seq;

    static const char  *bad[] = {
        "", "rmcp", "rmcp:", "rmcp::", "rmcp:::", "rmcp:1", "rmcp:1:2",
        "rmcp:1:2:", "rmcp:1:2:3:", "rmcp:1:2:3:4", "rmcp:1::3", "rmcp::2:3",
        "RMCP:1:2:3", "rmcp-1:2:3", " rmcp:1:2:3", "rmcp:1:2:3 ",
        "rmcp:1:2:3\n", "rmcp:+1:2:3", "rmcp:-1:2:3", "rmcp:1:-2:3",
        "rmcp:01:2:3", "rmcp:1:02:3", "rmcp:1:2:00", "rmcp:0:2:3",
        "rmcp:2147483648:2:3", "rmcp:99999999999:2:3",
        "rmcp:1:18446744073709551616:3", "rmcp:1:2:99999999999999999999",
        "rmcp:1:2:184467440737095516150", "rmcp:1:2:3x", "rmcp:1:0x2:3",
        "rmcp:1:2.0:3", "abc", "5"
    };

    size_t  i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pid = key = seq = 42;

        if (parse(bad[i], &pid, &key, &seq) != -1) {
            fail_msg("accepted \"%s\"", bad[i]);
        }

        assert_true(pid == 42 && key == 42 && seq == 42);
    }

    /* a NUL inside the given length */
    assert_int_equal(ngx_http_reverse_mcp_relayid_parse(
                         (const unsigned char *) "rmcp:1:2:3\0", 11, &pid,
                         &key, &seq), -1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
