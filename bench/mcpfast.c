/*
 * mcpfast: the load-side tools of `make bench`.
 *
 *   mcpfast serve  --url ws://HOST:PORT/PATH --prefix b --count N [--tools T]
 *                  [--token TOK] [--parallel P] [--src-ips K] [--ready-file F]
 *                  [--max-seconds S]
 *       N fast reverse MCP servers in one process (epoll, one thread).  Each
 *       dials the connector the way the seed's client does
 *       (GET PATH?server_name=NAME&token=TOK, X-MCP-Server-Name and
 *       Authorization: Bearer headers), then answers at once:
 *       initialize, tools/list (T tools: echo, blob, t2..), tools/call
 *       (echo: arguments.text comes back as the text content; blob:
 *       arguments.bytes bytes of text), ping; WebSocket pings get pongs.
 *       When every server has answered tools/list, "ready <n> <ms>" is
 *       written to the ready file.  Stops on SIGTERM/SIGINT or after S
 *       seconds (default 600).
 *       [--churn K --churn-from F] (the soak, bench/soak.py): once ready,
 *       every second K servers of F..N-1 in turn close (WebSocket close
 *       1000) and dial again at once; the last line on stderr counts the
 *       churned ones, those that registered again and every failure.
 *
 *   mcpfast direct --port P [--conc C] [--seconds D] [--warmup W]
 *                  [--blob BYTES] [--max-seconds S]
 *       The "no gateway" baseline: listens on 127.0.0.1:P, accepts ONE
 *       `mcpfast serve --count 1` dialling in (the same server code as
 *       under load), and plays the gateway's part of a tools/call round
 *       trip: C requests in flight on that socket for D seconds, each the
 *       same 300-byte tools/call the HTTP load sends.  Prints one JSON line:
 *       {"rps":..,"p50_us":..,"p99_us":..,"mbps":..,"requests":..}.
 *
 *   mcpfast http   --port P --path /mcp --body FILE [--sid SID] [--conns N]
 *                  [--inflight C] [--seconds D] [--warmup W]
 *       A keep-alive HTTP/1.1 POST load over N connections with C requests
 *       in flight (C <= N; --conns 8 --inflight 1 is "concurrency 1" with
 *       connections on every worker).  When the replies carry X-Pid and
 *       X-Owner headers (add_header ... $pid / $reverse_mcp_owner_pid),
 *       each latency goes to the "local" or the "cross" (another worker
 *       owns the socket) histogram.  Prints one JSON line.
 *
 * Loopback only; every loop is bounded in time.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) { (void) sig; stop_flag = 1; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void die(const char *m) { perror(m); exit(1); }

/* ---------- growable buffer ---------- */

typedef struct { char *p; size_t len, cap, off; } buf_t;

static void buf_reserve(buf_t *b, size_t extra)
{
    if (b->off && b->off == b->len) { b->off = b->len = 0; }
    if (b->len + extra <= b->cap) return;
    if (b->off) {                       /* compact first */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off; b->off = 0;
        if (b->len + extra <= b->cap) return;
    }
    size_t n = b->cap ? b->cap : 2048;
    while (n < b->len + extra) n *= 2;
    b->p = realloc(b->p, n);
    if (!b->p) die("realloc");
    b->cap = n;
}

static void buf_free(buf_t *b) { free(b->p); memset(b, 0, sizeof(*b)); }

/* ---------- minimal JSON: top-level members of an object ---------- */

typedef struct { const char *p; size_t n; } span_t;

#define LIT(s)  { s, sizeof(s) - 1 }

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* returns the end of the JSON value at p, or NULL */
static const char *skip_value(const char *p, const char *e)
{
    p = skip_ws(p, e);
    if (p >= e) return NULL;
    if (*p == '"') {
        for (p++; p < e; p++) {
            if (*p == '\\') { p++; continue; }
            if (*p == '"') return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < e; p++) {
            if (*p == '"') {
                for (p++; p < e && *p != '"'; p++) if (*p == '\\') p++;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') { if (--depth == 0) return p + 1; }
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' '
           && *p != '\n' && *p != '\r' && *p != '\t') p++;
    return p;
}

/* the value of top-level key `key` of the object in [p,e) */
static int json_get(const char *p, const char *e, const char *key, span_t *out)
{
    size_t kl = strlen(key);
    p = skip_ws(p, e);
    if (p >= e || *p != '{') return 0;
    p++;
    for (;;) {
        p = skip_ws(p, e);
        if (p >= e || *p == '}') return 0;
        if (*p != '"') return 0;
        const char *ks = p + 1;
        const char *ke = skip_value(p, e);
        if (!ke) return 0;
        p = skip_ws(ke, e);
        if (p >= e || *p != ':') return 0;
        p = skip_ws(p + 1, e);
        const char *ve = skip_value(p, e);
        if (!ve) return 0;
        if ((size_t) (ke - 1 - ks) == kl && memcmp(ks, key, kl) == 0) {
            out->p = p; out->n = ve - p;
            return 1;
        }
        p = skip_ws(ve, e);
        if (p < e && *p == ',') p++;
    }
}

static int span_is(span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* ---------- WebSocket frames ---------- */

/* append one frame (FIN, opcode) of the pieces to b; masked if mask */
static void ws_frame(buf_t *b, int opcode, int mask, const span_t *pc, int npc)
{
    size_t len = 0;
    for (int i = 0; i < npc; i++) len += pc[i].n;
    buf_reserve(b, len + 14);
    unsigned char *h = (unsigned char *) b->p + b->len;
    size_t hl = 2;
    h[0] = 0x80 | opcode;
    if (len < 126) { h[1] = len; }
    else if (len < 65536) { h[1] = 126; h[2] = len >> 8; h[3] = len; hl = 4; }
    else { h[1] = 127; for (int i = 0; i < 8; i++) h[2 + i] = (uint64_t) len >> (56 - 8 * i); hl = 10; }
    unsigned char key[4] = { 0x5a, 0x3c, 0xa7, 0x19 };
    if (mask) { h[1] |= 0x80; memcpy(h + hl, key, 4); hl += 4; }
    b->len += hl;
    unsigned char *d = (unsigned char *) b->p + b->len;
    for (int i = 0; i < npc; i++) { memcpy(d, pc[i].p, pc[i].n); d += pc[i].n; }
    if (mask) {
        unsigned char *s = (unsigned char *) b->p + b->len;
        uint64_t k8; unsigned char kk[8];
        for (int i = 0; i < 8; i++) kk[i] = key[i & 3];
        memcpy(&k8, kk, 8);
        size_t i = 0;
        for (; i + 8 <= len; i += 8) { uint64_t v; memcpy(&v, s + i, 8); v ^= k8; memcpy(s + i, &v, 8); }
        for (; i < len; i++) s[i] ^= key[i & 3];
    }
    b->len += len;
}

/* parse one frame at the start of [p,e): 0 incomplete, <0 error, else its size */
static long ws_parse(unsigned char *p, size_t avail, int *fin, int *op,
                     unsigned char **payload, size_t *plen)
{
    if (avail < 2) return 0;
    size_t hl = 2, len = p[1] & 0x7f;
    int masked = p[1] & 0x80;
    if (len == 126) { if (avail < 4) return 0; len = (p[2] << 8) | p[3]; hl = 4; }
    else if (len == 127) {
        if (avail < 10) return 0;
        len = 0; for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
        hl = 10;
    }
    unsigned char key[4] = {0};
    if (masked) { if (avail < hl + 4) return 0; memcpy(key, p + hl, 4); hl += 4; }
    if (avail < hl + len) return 0;
    *fin = p[0] & 0x80; *op = p[0] & 0x0f;
    *payload = p + hl; *plen = len;
    if (masked) {
        unsigned char *s = p + hl, kk[8];
        uint64_t k8;
        size_t i = 0;
        for (int j = 0; j < 8; j++) kk[j] = key[j & 3];
        memcpy(&k8, kk, 8);
        for (; i + 8 <= len; i += 8) { uint64_t v; memcpy(&v, s + i, 8); v ^= k8; memcpy(s + i, &v, 8); }
        for (; i < len; i++) s[i] ^= key[i & 3];
    }
    return hl + len;
}

/* ---------- connections ---------- */

enum { ST_CONNECTING, ST_UPGRADING, ST_OPEN, ST_DEAD };

typedef struct conn_s {
    int fd, state, idx, listed, want_out, churned;
    buf_t in, out, msg;
    int msg_op;
} conn_t;

static int epfd;

#define KEEP_BUF  (8u << 20)      /* larger buffers are freed when empty */

static void conn_update(conn_t *c)
{
    int want = c->state == ST_CONNECTING || c->out.len > c->out.off;
    if (want == c->want_out) return;
    struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

static int conn_flush(conn_t *c)
{
    while (c->out.len > c->out.off) {
        ssize_t n = write(c->fd, c->out.p + c->out.off, c->out.len - c->out.off);
        if (n < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            return -1;
        }
        c->out.off += n;
    }
    if (c->out.off == c->out.len) {
        c->out.off = c->out.len = 0;
        if (c->out.cap > KEEP_BUF) buf_free(&c->out);   /* idle: give it back */
    }
    conn_update(c);
    return 0;
}

/* ---------- serve: the reverse MCP server ---------- */

static int g_tools = 5;
static char *g_tools_list;            /* the "result" of tools/list */
static size_t g_tools_list_len;
static int g_mask = 1;                /* client frames are masked */

static void build_tools_list(void)
{
    size_t cap = 256 + (size_t) g_tools * 256;
    char *s = malloc(cap), *p = s;
    p += sprintf(p, "{\"tools\":[");
    for (int i = 0; i < g_tools; i++) {
        if (i) *p++ = ',';
        if (i == 0)
            p += sprintf(p, "{\"name\":\"echo\",\"description\":\"Echo the text back\","
                "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},\"required\":[\"text\"]}}");
        else if (i == 1)
            p += sprintf(p, "{\"name\":\"blob\",\"description\":\"Return a text of N bytes\","
                "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"bytes\":{\"type\":\"integer\"}},\"required\":[\"bytes\"]}}");
        else
            p += sprintf(p, "{\"name\":\"tool_%d\",\"description\":\"Synthetic tool number %d for the benchmark\","
                "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"}}}}", i, i);
    }
    p += sprintf(p, "]}");
    g_tools_list = s; g_tools_list_len = p - s;
}

/* blob results, cached by size */
static struct { long n; char *s; size_t len; } g_blob[8];

static span_t blob_result(long n)
{
    for (int i = 0; i < 8; i++)
        if (g_blob[i].s && g_blob[i].n == n) return (span_t){ g_blob[i].s, g_blob[i].len };
    int slot = 0;
    for (int i = 0; i < 8; i++) if (!g_blob[i].s) { slot = i; break; }
    free(g_blob[slot].s);
    const char *h = "{\"content\":[{\"type\":\"text\",\"text\":\"";
    const char *t = "\"}]}";
    size_t len = strlen(h) + n + strlen(t);
    char *s = malloc(len);
    memcpy(s, h, strlen(h));
    memset(s + strlen(h), 'x', n);
    memcpy(s + strlen(h) + n, t, strlen(t));
    g_blob[slot].n = n; g_blob[slot].s = s; g_blob[slot].len = len;
    return (span_t){ s, len };
}

static long g_listed, g_count, g_failed, g_calls, g_churned, g_relisted;
static double g_t0;
static const char *g_ready_file;

static void write_ready(void)
{
    if (!g_ready_file) return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", g_ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "ready %ld %.1f failed %ld\n", g_listed, (now_s() - g_t0) * 1000, g_failed);
    fclose(f);
    rename(tmp, g_ready_file);
}

static void reply(conn_t *c, span_t id, span_t result)
{
    span_t pc[5] = {
        LIT("{\"jsonrpc\":\"2.0\",\"id\":"), id, LIT(",\"result\":"), result, LIT("}")
    };
    ws_frame(&c->out, 1, g_mask, pc, 5);
}

static void serve_message(conn_t *c, const char *p, size_t n)
{
    const char *e = p + n;
    span_t method, id, params, name, args, v;
    int has_id = json_get(p, e, "id", &id);
    if (!json_get(p, e, "method", &method)) return;     /* a response: ignore */
    if (!has_id) return;                                 /* a notification */

    if (span_is(method, "\"tools/call\"")) {
        g_calls++;
        if (json_get(p, e, "params", &params)
            && json_get(params.p, params.p + params.n, "name", &name)
            && json_get(params.p, params.p + params.n, "arguments", &args))
        {
            const char *nm = name.p + 1; size_t nl = name.n - 2;
            if (nl >= 4 && memcmp(nm + nl - 4, "blob", 4) == 0
                && json_get(args.p, args.p + args.n, "bytes", &v))
            {
                reply(c, id, blob_result(strtol(v.p, NULL, 10)));
                return;
            }
            if (json_get(args.p, args.p + args.n, "text", &v) && v.n >= 2 && v.p[0] == '"') {
                span_t pc[7] = {
                    LIT("{\"jsonrpc\":\"2.0\",\"id\":"), id,
                    LIT(",\"result\":{\"content\":[{\"type\":\"text\",\"text\":"), v,
                    LIT("}]}}")
                };
                ws_frame(&c->out, 1, g_mask, pc, 5);
                return;
            }
        }
        span_t r = LIT("{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}");
        reply(c, id, r);
        return;
    }
    if (span_is(method, "\"initialize\"")) {
        static const char r[] = "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{\"tools\":"
            "{\"listChanged\":true}},\"serverInfo\":{\"name\":\"mcpfast\",\"version\":\"1.0\"}}";
        reply(c, id, (span_t){ r, sizeof(r) - 1 });
        return;
    }
    if (span_is(method, "\"tools/list\"")) {
        reply(c, id, (span_t){ g_tools_list, g_tools_list_len });
        if (!c->listed) {
            c->listed = 1;
            if (c->churned) g_relisted++;
            else if (++g_listed == g_count) write_ready();
        }
        return;
    }
    if (span_is(method, "\"ping\"")) {
        reply(c, id, (span_t)LIT("{}"));
        return;
    }
    span_t pc[3] = {
        LIT("{\"jsonrpc\":\"2.0\",\"id\":"), id,
        LIT(",\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}")
    };
    ws_frame(&c->out, 1, g_mask, pc, 3);
}

typedef void (*msg_handler_t)(conn_t *c, const char *p, size_t n);

static void conn_dead(conn_t *c)
{
    if (c->state == ST_DEAD) return;
    if (c->state != ST_OPEN || !c->listed) g_failed++;
    c->state = ST_DEAD;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    buf_free(&c->in); buf_free(&c->out); buf_free(&c->msg);
}

/* read what is there and handle complete frames; -1: connection gone */
static int conn_read_frames(conn_t *c, msg_handler_t h, int server_side)
{
    for (;;) {
        buf_reserve(&c->in, 16384);
        size_t room = c->in.cap - c->in.len;
        ssize_t n = read(c->fd, c->in.p + c->in.len, room);
        if (n == 0) return -1;
        if (n < 0) { if (errno == EAGAIN) break; if (errno == EINTR) continue; return -1; }
        c->in.len += n;
        if ((size_t) n < room) break;
    }
    for (;;) {
        int fin, op; unsigned char *pl; size_t plen;
        long k = ws_parse((unsigned char *) c->in.p + c->in.off, c->in.len - c->in.off,
                          &fin, &op, &pl, &plen);
        if (k == 0) break;
        if (k < 0) return -1;
        c->in.off += k;
        if (op == 9) {                                   /* ping -> pong */
            span_t pc[1] = { { (char *) pl, plen } };
            ws_frame(&c->out, 10, !server_side && g_mask, pc, 1);
            continue;
        }
        if (op == 10) continue;
        if (op == 8) {
            span_t pc[1] = { { (char *) pl, plen > 2 ? 2 : plen } };
            ws_frame(&c->out, 8, !server_side && g_mask, pc, 1);
            conn_flush(c);
            return -1;
        }
        if (op == 0 || !fin || c->msg.len) {              /* fragments */
            if (op) c->msg_op = op;
            buf_reserve(&c->msg, plen);
            memcpy(c->msg.p + c->msg.len, pl, plen);
            c->msg.len += plen;
            if (!fin) continue;
            h(c, c->msg.p, c->msg.len);
            c->msg.len = 0;
            continue;
        }
        /* one or several newline-delimited messages */
        const char *s = (const char *) pl, *e = s + plen;
        while (s < e) {
            const char *nl = memchr(s, '\n', e - s);
            const char *le = nl ? nl : e;
            if (le > s) h(c, s, le - s);
            s = nl ? nl + 1 : e;
        }
    }
    if (c->in.off == c->in.len) {
        c->in.off = c->in.len = 0;
        if (c->in.cap > KEEP_BUF) buf_free(&c->in);     /* idle: give it back */
    }
    return 0;
}

static struct sockaddr_in g_addr;
static char g_host[256], g_path[1024], g_prefix[64] = "b", g_token[256] = "bench-token";
static int g_src_ips = 8;

static int dial(conn_t *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (g_src_ips > 0 && ntohl(g_addr.sin_addr.s_addr) >> 24 == 127) {
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(0x7f000002 + (c->idx % g_src_ips));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *) &src, sizeof src) < 0) { close(fd); return -1; }
    }
    int r = connect(fd, (struct sockaddr *) &g_addr, sizeof g_addr);
    if (r < 0 && errno != EINPROGRESS) { close(fd); return -1; }
    c->fd = fd; c->state = ST_CONNECTING; c->want_out = 1;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    char name[128];
    snprintf(name, sizeof name, "%s%d", g_prefix, c->idx);
    buf_reserve(&c->out, 1024);
    c->out.len += snprintf(c->out.p + c->out.len, c->out.cap - c->out.len,
        "GET %s%cserver_name=%s&token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nX-MCP-Server-Name: %s\r\nAuthorization: Bearer %s\r\n\r\n",
        g_path, strchr(g_path, '?') ? '&' : '?', name, g_token, g_host, name, g_token);
    return 0;
}

static void serve_event(conn_t *c, uint32_t evs)
{
    if (c->state == ST_CONNECTING) {
        if (evs & (EPOLLERR | EPOLLHUP)) { conn_dead(c); return; }
        if (!(evs & EPOLLOUT)) return;
        c->state = ST_UPGRADING;
        if (conn_flush(c) < 0) { conn_dead(c); return; }
        return;
    }
    if (evs & EPOLLOUT) { if (conn_flush(c) < 0) { conn_dead(c); return; } }
    if (!(evs & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    if (c->state == ST_UPGRADING) {
        buf_reserve(&c->in, 4096);
        ssize_t n = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
        if (n <= 0) { if (n < 0 && errno == EAGAIN) return; conn_dead(c); return; }
        c->in.len += n;
        char *end = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
        if (!end) return;
        if (c->in.len < 12 || memcmp(c->in.p + 9, "101", 3) != 0) {
            fprintf(stderr, "mcpfast: %s%d refused: %.*s\n", g_prefix, c->idx,
                    (int) (strchr(c->in.p, '\r') - c->in.p), c->in.p);
            conn_dead(c); return;
        }
        c->in.off = end + 4 - c->in.p;
        c->state = ST_OPEN;
        /* frames may already follow the headers */
    }
    if (c->state == ST_OPEN) {
        /* frames already buffered after the upgrade response are handled
           by conn_read_frames' parse loop after its read attempt */
        if (conn_read_frames(c, serve_message, 0) < 0) { conn_dead(c); return; }
        if (conn_flush(c) < 0) { conn_dead(c); return; }
    }
}

/* the soak's churn: close one open server cleanly and dial it again */
static void churn_one(conn_t *c)
{
    static const char bye[2] = { 0x03, (char) 0xe8 };       /* 1000 */
    span_t pc[1] = { { bye, 2 } };

    ws_frame(&c->out, 8, g_mask, pc, 1);
    (void) conn_flush(c);
    c->state = ST_DEAD;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    buf_free(&c->in); buf_free(&c->out); buf_free(&c->msg);
    c->listed = 0; c->churned = 1; c->want_out = 0; c->msg_op = 0;
    g_churned++;
    if (dial(c) < 0) { c->state = ST_DEAD; g_failed++; }
}

static int parse_url(const char *url)
{
    if (strncmp(url, "ws://", 5) != 0) return -1;
    const char *h = url + 5, *slash = strchr(h, '/');
    if (!slash) slash = h + strlen(h);
    snprintf(g_host, sizeof g_host, "%.*s", (int) (slash - h), h);
    snprintf(g_path, sizeof g_path, "%s", *slash ? slash : "/");
    char host[256]; int port = 80;
    snprintf(host, sizeof host, "%s", g_host);
    char *colon = strchr(host, ':');
    if (colon) { *colon = 0; port = atoi(colon + 1); }
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    g_addr.sin_family = AF_INET; g_addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &g_addr.sin_addr) != 1) return -1;
    return 0;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
}

static int cmd_serve(int argc, char **argv)
{
    const char *url = "ws://127.0.0.1:9090/ws";
    int parallel = 1000;
    long churn = 0, churn_from = 0, churn_next = 0;
    double max_seconds = 600, churn_at = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url")) url = argv[i + 1];
        else if (!strcmp(argv[i], "--prefix")) snprintf(g_prefix, sizeof g_prefix, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--count")) g_count = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--tools")) g_tools = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--token")) snprintf(g_token, sizeof g_token, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--parallel")) parallel = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--src-ips")) g_src_ips = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ready-file")) g_ready_file = argv[i + 1];
        else if (!strcmp(argv[i], "--max-seconds")) max_seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--churn")) churn = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--churn-from")) churn_from = atol(argv[i + 1]);
        else { fprintf(stderr, "mcpfast serve: unknown option %s\n", argv[i]); return 2; }
    }
    if (g_count <= 0 || g_tools < 1 || parse_url(url) < 0) {
        fprintf(stderr, "mcpfast serve: need --url ws://IP:PORT/PATH --count N (>0) --tools T (>0)\n");
        return 2;
    }
    raise_nofile();
    build_tools_list();
    epfd = epoll_create1(0);
    conn_t *cs = calloc(g_count, sizeof(conn_t));
    long next = 0;
    g_t0 = now_s();
    struct epoll_event evs[512];
    int ready_written = 0;
    while (!stop_flag && now_s() - g_t0 < max_seconds) {
        /* keep up to `parallel` handshakes in progress */
        long inflight = next - g_listed - g_failed;
        while (next < g_count && inflight < parallel) {
            cs[next].idx = next;
            if (dial(&cs[next]) < 0) { cs[next].state = ST_DEAD; g_failed++; }
            next++; inflight++;
        }
        int n = epoll_wait(epfd, evs, 512, 100);
        for (int i = 0; i < n; i++) serve_event(evs[i].data.ptr, evs[i].events);
        if (!ready_written && next == g_count && g_listed + g_failed == g_count) {
            if (g_listed != g_count) write_ready();      /* with failures */
            ready_written = 1;
            churn_at = now_s() + 1;
        }
        if (ready_written && churn > 0 && churn_from < g_count
            && now_s() >= churn_at)
        {
            churn_at += 1;
            for (long k = 0; k < churn; k++) {
                conn_t *c = &cs[churn_from + churn_next];
                churn_next = (churn_next + 1) % (g_count - churn_from);
                if (c->state == ST_OPEN && c->listed) churn_one(c);
            }
        }
    }
    long open = 0;
    for (long i = 0; i < g_count; i++) if (cs[i].state == ST_OPEN) open++;
    fprintf(stderr, "mcpfast serve: %ld listed, %ld failed, %ld open, %ld calls, "
            "%ld churned, %ld relisted\n",
            g_listed, g_failed, open, g_calls, g_churned, g_relisted);
    return 0;
}

/* ---------- direct: the gateway's part, without a gateway ---------- */

#define HIST_MAX 1000000          /* 1 us buckets up to 1 s */
static uint32_t *g_hist;
static long g_hist_n, g_hist_over;

static double hist_pct_of(uint32_t *h, long n, double q)
{
    long want = (long) (q * n + 0.5), acc = 0;
    if (n == 0) return 0;
    if (want < 1) want = 1;
    for (long i = 0; i < HIST_MAX; i++) { acc += h[i]; if (acc >= want) return i; }
    return HIST_MAX;
}

static double hist_pct(double q) { return hist_pct_of(g_hist, g_hist_n, q); }

typedef struct { uint64_t sent_ns; } slot_t;
static slot_t *g_slots;
static int g_conc = 1;
static long g_blob_bytes;
static int g_measuring;
static long g_done, g_bytes;
static char g_req[1024];
static int g_req_len;

static void direct_send(conn_t *c, int slot)
{
    char id[32];
    int idl = snprintf(id, sizeof id, "%d", slot + 1);
    /* g_req contains "\"id\":1," at a fixed place: rebuild around it */
    const char *mark = strstr(g_req, "\"id\":1,");
    span_t pc[3] = {
        { g_req, (size_t) (mark - g_req) + 5 }, { id, (size_t) idl },
        { mark + 6, (size_t) (g_req_len - (mark + 6 - g_req)) }
    };
    g_slots[slot].sent_ns = now_ns();
    ws_frame(&c->out, 1, 0, pc, 3);
}

static void direct_message(conn_t *c, const char *p, size_t n)
{
    span_t id, res;
    if (!json_get(p, p + n, "id", &id)) return;
    int slot = atoi(id.p) - 1;
    if (slot < 0 || slot >= g_conc) return;
    (void) res;
    if (!memmem(p, n < 128 ? n : 128, "\"result\":", 9)) {   /* not scanned further */
        fprintf(stderr, "mcpfast direct: not a result: %.*s\n", (int) (n > 200 ? 200 : n), p);
        stop_flag = 1;
        return;
    }
    if (g_measuring) {
        uint64_t us = (now_ns() - g_slots[slot].sent_ns) / 1000;
        if (us >= HIST_MAX) g_hist_over++; else g_hist[us]++;
        g_hist_n++; g_done++; g_bytes += n;
    }
    direct_send(c, slot);
}

static int cmd_direct(int argc, char **argv)
{
    int port = 0;
    double seconds = 3, warmup = 0.5, max_seconds = 60;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--conc")) g_conc = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--blob")) g_blob_bytes = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-seconds")) max_seconds = atof(argv[i + 1]);
        else { fprintf(stderr, "mcpfast direct: unknown option %s\n", argv[i]); return 2; }
    }
    if (port <= 0 || g_conc < 1) { fprintf(stderr, "mcpfast direct: need --port P\n"); return 2; }
    g_hist = calloc(HIST_MAX, sizeof(uint32_t));
    g_slots = calloc(g_conc, sizeof(slot_t));
    if (g_blob_bytes > 0)
        g_req_len = snprintf(g_req, sizeof g_req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
            "\"params\":{\"name\":\"blob\",\"arguments\":{\"bytes\":%ld}}}", g_blob_bytes);
    else {
        /* the same 300-byte request as bench/mcp.lua sends (tool "b0__echo" there) */
        char text[400];
        int tl = 300 - (int) strlen("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
            "\"params\":{\"name\":\"b0__echo\",\"arguments\":{\"text\":\"\"}}}");
        memset(text, 'a', tl); text[tl] = 0;
        g_req_len = snprintf(g_req, sizeof g_req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
            "\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"%s\"}}}", text);
    }

    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (bind(ls, (struct sockaddr *) &a, sizeof a) < 0 || listen(ls, 16) < 0) die("direct: listen");
    struct timeval tv = { .tv_sec = 20 };
    setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) die("direct: accept (no server dialled in within 20 s)");
    close(ls);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    /* the upgrade, blocking */
    char req[8192]; size_t rl = 0;
    while (!memmem(req, rl, "\r\n\r\n", 4)) {
        ssize_t n = read(fd, req + rl, sizeof req - 1 - rl);
        if (n <= 0) die("direct: upgrade read");
        rl += n;
    }
    req[rl] = 0;
    char *k = strcasestr(req, "Sec-WebSocket-Key:");
    if (!k) { fprintf(stderr, "direct: no key\n"); return 1; }
    k += 18; while (*k == ' ') k++;
    char key[128]; int kl = 0;
    while (k[kl] && k[kl] != '\r' && kl < 100) { key[kl] = k[kl]; kl++; }
    memcpy(key + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36); kl += 36;
    unsigned char sha[20]; SHA1((unsigned char *) key, kl, sha);
    char acc[64]; EVP_EncodeBlock((unsigned char *) acc, sha, 20);
    char resp[512];
    int rsl = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
    if (write(fd, resp, rsl) != rsl) die("direct: upgrade write");
    fcntl(fd, F_SETFL, O_NONBLOCK);

    epfd = epoll_create1(0);
    conn_t c = { .fd = fd, .state = ST_OPEN };
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c };
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    for (int s = 0; s < g_conc; s++) direct_send(&c, s);
    if (conn_flush(&c) < 0) die("direct: write");
    double t0 = now_s(), tm = t0 + warmup, tend = tm + seconds, tstart = 0;
    struct epoll_event evs[4];
    while (!stop_flag) {
        double t = now_s();
        if (!g_measuring && t >= tm) { g_measuring = 1; tstart = t; }
        if (t >= tend || t - t0 > max_seconds) break;
        int n = epoll_wait(epfd, evs, 4, 50);
        for (int i = 0; i < n; i++) {
            if (evs[i].events & EPOLLOUT) if (conn_flush(&c) < 0) die("direct: write");
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (conn_read_frames(&c, direct_message, 1) < 0) { fprintf(stderr, "direct: closed\n"); stop_flag = 1; }
                if (conn_flush(&c) < 0) die("direct: write");
            }
        }
    }
    double el = now_s() - tstart;
    printf("{\"requests\":%ld,\"seconds\":%.3f,\"rps\":%.1f,\"p50_us\":%.0f,\"p99_us\":%.0f,"
           "\"mbps\":%.2f,\"over_1s\":%ld}\n", g_done, el, g_done / el, hist_pct(0.5), hist_pct(0.99),
           g_bytes / el / 1e6, g_hist_over);
    close(fd);
    return g_done > 0 ? 0 : 1;
}

/* ---------- http: keep-alive POST load, latencies by owner ---------- */

typedef struct {
    int fd, busy, want_out;
    uint64_t sent_ns;
    buf_t in, out;
} hconn_t;

static uint32_t *g_hl, *g_hx;          /* local, cross */
static long g_nl, g_nx, g_nu, g_hdone, g_herr;
static char *g_hreq;
static size_t g_hreq_len;

static void hconn_send(hconn_t *h)
{
    buf_reserve(&h->out, g_hreq_len);
    memcpy(h->out.p + h->out.len, g_hreq, g_hreq_len);
    h->out.len += g_hreq_len;
    h->busy = 1;
    h->sent_ns = now_ns();
    while (h->out.off < h->out.len) {
        ssize_t n = write(h->fd, h->out.p + h->out.off, h->out.len - h->out.off);
        if (n < 0) { if (errno == EAGAIN) break; g_herr++; stop_flag = 1; return; }
        h->out.off += n;
    }
    if (h->out.off == h->out.len) h->out.off = h->out.len = 0;
}

static const char *hdr_val(const char *h, const char *end, const char *name, size_t *vl)
{
    size_t nl = strlen(name);
    for (const char *p = h; p < end; ) {
        const char *eol = memmem(p, end - p, "\r\n", 2);
        if (!eol) eol = end;
        if ((size_t) (eol - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && *v == ' ') v++;
            *vl = eol - v;
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* 1: a complete response was consumed */
static int hconn_response(hconn_t *h, int measuring)
{
    char *s = h->in.p + h->in.off;
    size_t avail = h->in.len - h->in.off;
    char *he = memmem(s, avail, "\r\n\r\n", 4);
    if (!he) return 0;
    size_t cl_len = 0, pl = 0, ol = 0;
    const char *cl = hdr_val(s, he, "Content-Length", &cl_len);
    if (!cl) { g_herr++; stop_flag = 1; return 0; }
    size_t blen = strtoul(cl, NULL, 10);
    size_t total = (he + 4 - s) + blen;
    if (avail < total) return 0;
    int ok = avail >= 12 && memcmp(s + 9, "200", 3) == 0
             && memmem(he + 4, blen < 200 ? blen : 200, "\"result\"", 8);
    if (!ok) {
        g_herr++;
        if (g_herr < 3) fprintf(stderr, "mcpfast http: bad reply: %.*s\n", (int) (total < 300 ? total : 300), s);
    }
    if (measuring) {
        uint64_t us = (now_ns() - h->sent_ns) / 1000;
        if (us >= HIST_MAX) us = HIST_MAX - 1;
        const char *pid = hdr_val(s, he, "X-Pid", &pl);
        const char *own = hdr_val(s, he, "X-Owner", &ol);
        g_hist[us]++; g_hist_n++; g_hdone++;
        if (pid && own) {
            if (pl == ol && memcmp(pid, own, pl) == 0) { g_hl[us]++; g_nl++; }
            else { g_hx[us]++; g_nx++; }
        } else g_nu++;
    }
    h->in.off += total;
    if (h->in.off == h->in.len) h->in.off = h->in.len = 0;
    h->busy = 0;
    return 1;
}

static int g_http_port;
static long g_reconnects;

static void hconn_open(hconn_t *h)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(g_http_port) };
    a.sin_addr.s_addr = htonl(0x7f000001);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (connect(fd, (struct sockaddr *) &a, sizeof a) < 0) die("http: connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    h->fd = fd;
    h->in.off = h->in.len = 0;
    h->out.off = h->out.len = 0;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = h };
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int cmd_http(int argc, char **argv)
{
    int port = 0, conns = 1, inflight = 0;
    double seconds = 3, warmup = 0.3;
    const char *path = "/mcp", *sid = NULL, *bodyf = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--path")) path = argv[i + 1];
        else if (!strcmp(argv[i], "--sid")) sid = argv[i + 1];
        else if (!strcmp(argv[i], "--body")) bodyf = argv[i + 1];
        else if (!strcmp(argv[i], "--conns")) conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--inflight")) inflight = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
        else { fprintf(stderr, "mcpfast http: unknown option %s\n", argv[i]); return 2; }
    }
    if (inflight <= 0 || inflight > conns) inflight = conns;
    if (port <= 0 || !bodyf || conns < 1) { fprintf(stderr, "mcpfast http: need --port --body\n"); return 2; }
    FILE *f = fopen(bodyf, "rb");
    if (!f) die("http: body");
    static char body[1 << 16];
    size_t bl = fread(body, 1, sizeof body, f);
    fclose(f);
    g_hreq = malloc(bl + 1024);
    g_hreq_len = snprintf(g_hreq, 1024, "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        "MCP-Protocol-Version: 2025-06-18\r\n%s%s%sContent-Length: %zu\r\n\r\n",
        path, port, sid ? "Mcp-Session-Id: " : "", sid ? sid : "", sid ? "\r\n" : "", bl);
    memcpy(g_hreq + g_hreq_len, body, bl);
    g_hreq_len += bl;
    g_hist = calloc(HIST_MAX, sizeof(uint32_t));
    g_hl = calloc(HIST_MAX, sizeof(uint32_t));
    g_hx = calloc(HIST_MAX, sizeof(uint32_t));

    epfd = epoll_create1(0);
    hconn_t *hs = calloc(conns, sizeof(hconn_t));
    g_http_port = port;
    for (int i = 0; i < conns; i++) {
        hconn_open(&hs[i]);
        usleep(2000);        /* let the accepting workers alternate */
    }
    int next = 0, busy = 0;
    double t0 = now_s(), tm = t0 + warmup, tend = tm + seconds, tstart = t0;
    int measuring = 0;
    struct epoll_event evs[64];
    while (!stop_flag) {
        while (busy < inflight) {                 /* round robin over idle ones */
            for (int k = 0; k < conns; k++) {
                hconn_t *h = &hs[(next + k) % conns];
                if (!h->busy) { hconn_send(h); next = (next + k + 1) % conns; busy++; break; }
            }
        }
        double t = now_s();
        if (!measuring && t >= tm) { measuring = 1; tstart = t; }
        if (t >= tend || t - t0 > seconds + warmup + 30) break;
        int n = epoll_wait(epfd, evs, 64, 50);
        for (int i = 0; i < n; i++) {
            hconn_t *h = evs[i].data.ptr;
            for (;;) {
                buf_reserve(&h->in, 16384);
                ssize_t r = read(h->fd, h->in.p + h->in.len, h->in.cap - h->in.len);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    /* keepalive_requests reached: the reply came before the
                       close; a request still in flight is sent again */
                    while (h->busy && hconn_response(h, measuring)) busy--;
                    epoll_ctl(epfd, EPOLL_CTL_DEL, h->fd, NULL);
                    close(h->fd);
                    g_reconnects++;
                    hconn_open(h);
                    if (h->busy) { h->busy = 0; busy--; }
                    break;
                }
                if (r < 0) break;
                h->in.len += r;
            }
            while (h->busy && hconn_response(h, measuring)) busy--;
        }
    }
    double el = now_s() - tstart;
    printf("{\"requests\":%ld,\"seconds\":%.3f,\"rps\":%.1f,\"p50_us\":%.0f,\"p99_us\":%.0f,"
           "\"errors\":%ld,\"local_n\":%ld,\"local_p50_us\":%.0f,\"local_p99_us\":%.0f,"
           "\"cross_n\":%ld,\"cross_p50_us\":%.0f,\"cross_p99_us\":%.0f,\"unknown_n\":%ld,"
           "\"reconnects\":%ld}\n",
           g_hdone, el, g_hdone / el, hist_pct(0.5), hist_pct(0.99), g_herr,
           g_nl, hist_pct_of(g_hl, g_nl, 0.5), hist_pct_of(g_hl, g_nl, 0.99),
           g_nx, hist_pct_of(g_hx, g_nx, 0.5), hist_pct_of(g_hx, g_nx, 0.99), g_nu,
           g_reconnects);
    return g_hdone > 0 && g_herr == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (argc >= 2 && !strcmp(argv[1], "serve")) return cmd_serve(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "direct")) return cmd_direct(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "http")) return cmd_http(argc, argv);
    fprintf(stderr, "usage: mcpfast serve|direct|http ... (see the comment at the top of bench/mcpfast.c)\n");
    return 2;
}
