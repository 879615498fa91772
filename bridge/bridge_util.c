/*
 * reverse-mcp-bridge: small utilities.
 *
 * Owns: the log (one write(2) per line to stderr, nginx-like timestamps
 * and levels, the child's stderr lines tagged with its pid), quoting of
 * untrusted bytes for the log, the monotonic clock, randomness (OpenSSL's
 * DRBG), growable byte buffers, parsing of durations and sizes from the
 * command line, and the JSON syntax check that decides whether a line the
 * child wrote is forwarded (one JSON object or array, RFC 8259 grammar).
 */


#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "bridge.h"


#define RMB_LOG_MAX        4096
#define RMB_JSON_MAX_DEPTH 1024


int  rmb_log_level = RMB_LOG_INFO;

static const char  *rmb_log_levels[] = {
    "error", "warn", "notice", "info", "debug"
};


static size_t
rmb_log_prefix(char *buf, size_t size, const char *tag)
{
    int         n;
    time_t      now;
    struct tm   tm;

    now = time(NULL);

    if (localtime_r(&now, &tm) == NULL) {
        memset(&tm, 0, sizeof(tm));
    }

    n = snprintf(buf, size, "%04d/%02d/%02d %02d:%02d:%02d [%s] ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, tag);

    if (n < 0) {
        return 0;
    }

    return (size_t) n < size ? (size_t) n : size - 1;
}


static void
rmb_log_write(const char *buf, size_t len)
{
    ssize_t  n;

    while (len > 0) {
        n = write(STDERR_FILENO, buf, len);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }

            /* EAGAIN on a non-blocking stderr, EPIPE...: drop the line */
            return;
        }

        buf += n;
        len -= (size_t) n;
    }
}


void
rmb_log(int level, const char *fmt, ...)
{
    int      n;
    char     buf[RMB_LOG_MAX];
    size_t   len;
    va_list  args;

    if (level > rmb_log_level) {
        return;
    }

    len = rmb_log_prefix(buf, sizeof(buf), rmb_log_levels[level]);

    va_start(args, fmt);
    n = vsnprintf(buf + len, sizeof(buf) - len - 1, fmt, args);
    va_end(args);

    if (n < 0) {
        n = 0;
    }

    if ((size_t) n >= sizeof(buf) - len - 1) {
        len = sizeof(buf) - 5;
        memcpy(buf + len, "...", 3);
        len += 3;

    } else {
        len += (size_t) n;
    }

    buf[len++] = '\n';

    rmb_log_write(buf, len);
}


/* a line of the child's stderr, as it is, control characters replaced */

void
rmb_log_raw(const char *tag, const u_char *p, size_t len)
{
    char    buf[RMB_LOG_MAX];
    size_t  i, n;

    n = rmb_log_prefix(buf, sizeof(buf), tag);

    for (i = 0; i < len && n < sizeof(buf) - 1; i++) {
        buf[n++] = (p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f
                   ? '?' : (char) p[i];
    }

    buf[n++] = '\n';

    rmb_log_write(buf, n);
}


/*
 * At most max bytes of p, printable ASCII as is, the rest as \xNN,
 * with "..." when cut; out is always NUL-terminated
 */

size_t
rmb_quote(char *out, size_t size, const u_char *p, size_t len, size_t max)
{
    size_t  i, n;

    static const char  hex[] = "0123456789abcdef";

    n = 0;

    for (i = 0; i < len && i < max; i++) {

        if (n + 8 >= size) {
            break;
        }

        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
            out[n++] = (char) p[i];

        } else if (p[i] == '\\') {
            out[n++] = '\\';
            out[n++] = '\\';

        } else {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[p[i] >> 4];
            out[n++] = hex[p[i] & 0xf];
        }
    }

    if (i < len && n + 4 < size) {
        memcpy(out + n, "...", 3);
        n += 3;
    }

    out[n] = '\0';

    return n;
}


rmb_msec_t
rmb_now(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }

    return (rmb_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


int
rmb_random(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int) len) != 1) {
        rmb_log(RMB_LOG_ERR, "RAND_bytes() failed");
        return RMB_ERROR;
    }

    return RMB_OK;
}


/* room for n more bytes after last: compact, then grow */

int
rmb_buf_reserve(rmb_buf_t *b, size_t n)
{
    size_t   len, cap;
    u_char  *p;

    if (b->cap - b->last >= n) {
        return RMB_OK;
    }

    len = b->last - b->pos;

    if (b->pos > 0) {
        if (len) {
            memmove(b->data, b->data + b->pos, len);
        }

        b->pos = 0;
        b->last = len;

        if (b->cap - b->last >= n) {
            return RMB_OK;
        }
    }

    if (n > SIZE_MAX / 2 - len) {
        return RMB_ERROR;
    }

    cap = b->cap ? b->cap * 2 : 4096;

    if (cap < len + n) {
        cap = len + n;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        rmb_log(RMB_LOG_ERR, "out of memory (%zu bytes)", cap);
        return RMB_ERROR;
    }

    b->data = p;
    b->cap = cap;

    return RMB_OK;
}


int
rmb_buf_append(rmb_buf_t *b, const void *p, size_t n)
{
    if (rmb_buf_reserve(b, n) != RMB_OK) {
        return RMB_ERROR;
    }

    if (n) {
        memcpy(b->data + b->last, p, n);
        b->last += n;
    }

    return RMB_OK;
}


void
rmb_buf_consume(rmb_buf_t *b, size_t n)
{
    b->pos += n;

    if (b->pos >= b->last) {
        b->pos = 0;
        b->last = 0;

        /* a large message passed: give the memory back */

        if (b->cap > RMB_QUEUE_HIGH) {
            rmb_buf_free(b);
        }
    }
}


void
rmb_buf_reset(rmb_buf_t *b)
{
    b->pos = 0;
    b->last = 0;

    if (b->cap > RMB_QUEUE_HIGH) {
        rmb_buf_free(b);
    }
}


void
rmb_buf_free(rmb_buf_t *b)
{
    free(b->data);

    b->data = NULL;
    b->pos = 0;
    b->last = 0;
    b->cap = 0;
}


/*
 * "250ms", "2s", "1.5s", "3m", "1h"; a bare number is seconds.
 * Returns -1 if invalid.
 */

rmb_msec_t
rmb_parse_msec(const char *s)
{
    char    *end;
    double   v, mul;

    errno = 0;
    v = strtod(s, &end);

    if (end == s || errno || v < 0 || v != v) {
        return -1;
    }

    if (*end == '\0' || strcmp(end, "s") == 0) {
        mul = 1000;

    } else if (strcmp(end, "ms") == 0) {
        mul = 1;

    } else if (strcmp(end, "m") == 0) {
        mul = 60000;

    } else if (strcmp(end, "h") == 0) {
        mul = 3600000;

    } else {
        return -1;
    }

    v *= mul;

    if (v > 1e12) {
        return -1;
    }

    return (rmb_msec_t) (v + 0.5);
}


/* "16m", "512k", "1g", "1048576"; returns -1 if invalid */

long long
rmb_parse_size(const char *s)
{
    char                *end;
    unsigned long long   v, mul;

    if (*s < '0' || *s > '9') {
        return -1;
    }

    errno = 0;
    v = strtoull(s, &end, 10);

    if (errno) {
        return -1;
    }

    mul = 1;

    if (*end == 'k' || *end == 'K') {
        mul = 1024;
        end++;

    } else if (*end == 'm' || *end == 'M') {
        mul = 1024 * 1024;
        end++;

    } else if (*end == 'g' || *end == 'G') {
        mul = 1024 * 1024 * 1024;
        end++;
    }

    if (*end != '\0' || v > (1ULL << 40) / mul) {
        return -1;
    }

    return (long long) (v * mul);
}


void
rmb_format_msec(char *out, size_t size, rmb_msec_t ms)
{
    if (ms < 1000) {
        (void) snprintf(out, size, "%lldms", (long long) ms);

    } else {
        (void) snprintf(out, size, "%.1fs", (double) ms / 1000);
    }
}


/* base64 (malloc'd, NUL-terminated) */

char *
rmb_base64(const u_char *p, size_t len)
{
    char  *out;

    if (len > 1024 * 1024) {
        return NULL;
    }

    out = malloc((len + 2) / 3 * 4 + 1);
    if (out == NULL) {
        return NULL;
    }

    (void) EVP_EncodeBlock((u_char *) out, p, (int) len);

    return out;
}


/* JSON syntax check */

#define RMB_JSON_VALUE   0      /* a value is expected */
#define RMB_JSON_AFTER   1      /* after a value: ',' or a closing */
#define RMB_JSON_KEY     2      /* a member name is expected */
#define RMB_JSON_COLON   3


static const u_char *
rmb_json_ws(const u_char *p, const u_char *end)
{
    while (p < end
           && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


static const char *
rmb_json_string(const u_char **pp, const u_char *end)
{
    int            i;
    const u_char  *p;

    p = *pp + 1;

    for ( ;; ) {

        if (p == end) {
            *pp = p;
            return "unterminated string";
        }

        if (*p == '"') {
            *pp = p + 1;
            return NULL;
        }

        if (*p < 0x20) {
            *pp = p;
            return "control character in a string";
        }

        if (*p != '\\') {
            p++;
            continue;
        }

        p++;

        if (p == end) {
            *pp = p;
            return "unterminated string";
        }

        switch (*p) {

        case '"': case '\\': case '/': case 'b': case 'f': case 'n':
        case 'r': case 't':
            p++;
            break;

        case 'u':
            p++;

            for (i = 0; i < 4; i++, p++) {
                if (p == end
                    || !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')
                         || (*p >= 'A' && *p <= 'F')))
                {
                    *pp = p;
                    return "invalid \\u escape";
                }
            }

            break;

        default:
            *pp = p;
            return "invalid escape in a string";
        }
    }
}


static const char *
rmb_json_number(const u_char **pp, const u_char *end)
{
    const u_char  *p;

    p = *pp;

    if (*p == '-') {
        p++;
    }

    if (p == end || *p < '0' || *p > '9') {
        *pp = p;
        return "invalid number";
    }

    if (*p == '0') {
        p++;

    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && *p == '.') {
        p++;

        if (p == end || *p < '0' || *p > '9') {
            *pp = p;
            return "invalid number";
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            *pp = p;
            return "invalid number";
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    *pp = p;

    return NULL;
}


/*
 * NULL if p is exactly one JSON object or array (white space around it
 * allowed) in valid UTF-8; otherwise why not, *off the byte offset
 */

const char *
rmb_json_check(const u_char *p, size_t len, size_t *off)
{
    int            state;
    size_t         depth, lit;
    const char    *err;
    const u_char  *start, *end;
    u_char         stack[RMB_JSON_MAX_DEPTH];

    start = p;
    end = p + len;
    *off = 0;

    if (!ngx_http_reverse_mcp_ws_utf8_valid(p, len)) {
        return "not valid UTF-8";
    }

    p = rmb_json_ws(p, end);

    if (p == end) {
        return "empty";
    }

    if (*p != '{' && *p != '[') {
        *off = (size_t) (p - start);
        return "not a JSON object or array";
    }

    depth = 0;
    state = RMB_JSON_VALUE;
    err = NULL;

    for ( ;; ) {
        p = rmb_json_ws(p, end);

        if (p == end) {
            err = "unexpected end of the line";
            goto failed;
        }

        switch (state) {

        case RMB_JSON_VALUE:

            switch (*p) {

            case '{':
            case '[':
                if (depth == RMB_JSON_MAX_DEPTH) {
                    err = "nested too deep";
                    goto failed;
                }

                stack[depth++] = *p;
                p = rmb_json_ws(p + 1, end);

                if (p < end && *p == (stack[depth - 1] == '{' ? '}' : ']')) {
                    p++;
                    depth--;
                    state = RMB_JSON_AFTER;
                    break;
                }

                state = (stack[depth - 1] == '{') ? RMB_JSON_KEY
                                                  : RMB_JSON_VALUE;
                break;

            case '"':
                err = rmb_json_string(&p, end);
                if (err) {
                    goto failed;
                }

                state = RMB_JSON_AFTER;
                break;

            case 't':
            case 'f':
            case 'n':
                lit = (*p == 'f') ? 5 : 4;

                if ((size_t) (end - p) < lit
                    || memcmp(p, *p == 't' ? "true"
                                 : *p == 'f' ? "false" : "null", lit) != 0)
                {
                    err = "invalid literal";
                    goto failed;
                }

                p += lit;
                state = RMB_JSON_AFTER;
                break;

            default:
                if (*p == '-' || (*p >= '0' && *p <= '9')) {
                    err = rmb_json_number(&p, end);
                    if (err) {
                        goto failed;
                    }

                    state = RMB_JSON_AFTER;
                    break;
                }

                err = "unexpected character";
                goto failed;
            }

            break;

        case RMB_JSON_KEY:
            if (*p != '"') {
                err = "a member name was expected";
                goto failed;
            }

            err = rmb_json_string(&p, end);
            if (err) {
                goto failed;
            }

            state = RMB_JSON_COLON;
            break;

        case RMB_JSON_COLON:
            if (*p != ':') {
                err = "':' was expected";
                goto failed;
            }

            p++;
            state = RMB_JSON_VALUE;
            break;

        default: /* RMB_JSON_AFTER */

            if (*p == ',') {
                p++;
                state = (stack[depth - 1] == '{') ? RMB_JSON_KEY
                                                  : RMB_JSON_VALUE;
                break;
            }

            if (*p != (stack[depth - 1] == '{' ? '}' : ']')) {
                err = "',' or a closing bracket was expected";
                goto failed;
            }

            p++;
            depth--;
            break;
        }

        if (state == RMB_JSON_AFTER && depth == 0) {
            p = rmb_json_ws(p, end);

            if (p != end) {
                err = "data after the JSON value";
                goto failed;
            }

            return NULL;
        }
    }

failed:

    *off = (size_t) (p - start);

    return err;
}
