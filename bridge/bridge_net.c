/*
 * reverse-mcp-bridge: addresses and TCP.
 *
 * Owns: parsing the gateway URL (ws:// and wss://, IPv6 literals), the
 * percent-encoding of query values, the HTTP proxy settings from the
 * environment (https_proxy / http_proxy / all_proxy, upper or lower case,
 * user:password for Basic proxy authentication) and the no_proxy matching
 * (host names and domain suffixes, IP literals, CIDR blocks, ports, "*"),
 * name resolution (getaddrinfo, blocking), and non-blocking TCP connects.
 *
 * The CONNECT exchange itself is the WebSocket client's (bridge_ws.c).
 */


#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"


static int
rmb_hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c = tolower(c);

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* host[:port] at s (up to end), into host/port; IPv6 in brackets */

static int
rmb_parse_hostport(const char *s, const char *end, char *host,
    size_t hostlen, char *port, size_t portlen, int *ipv6, char *err,
    size_t errlen)
{
    size_t       n;
    const char  *p, *colon;

    *ipv6 = 0;

    if (s < end && *s == '[') {
        p = memchr(s, ']', (size_t) (end - s));

        if (p == NULL) {
            (void) snprintf(err, errlen, "unterminated \"[\" in the host");
            return RMB_ERROR;
        }

        n = (size_t) (p - s - 1);
        s++;
        p++;
        *ipv6 = 1;

        if (p < end && *p != ':') {
            (void) snprintf(err, errlen, "junk after \"]\" in the host");
            return RMB_ERROR;
        }

        colon = (p < end) ? p : NULL;

    } else {
        colon = memchr(s, ':', (size_t) (end - s));
        n = (size_t) ((colon ? colon : end) - s);
    }

    if (n == 0 || n >= hostlen) {
        (void) snprintf(err, errlen, "%s host name",
                        n ? "too long a" : "no");
        return RMB_ERROR;
    }

    memcpy(host, s, n);
    host[n] = '\0';

    if (colon) {
        p = colon + 1;
        n = (size_t) (end - p);

        if (n == 0 || n >= portlen) {
            (void) snprintf(err, errlen, "invalid port");
            return RMB_ERROR;
        }

        memcpy(port, p, n);
        port[n] = '\0';

        for (p = port; *p; p++) {
            if (*p < '0' || *p > '9') {
                (void) snprintf(err, errlen, "invalid port \"%s\"", port);
                return RMB_ERROR;
            }
        }

        if (atoi(port) < 1 || atoi(port) > 65535) {
            (void) snprintf(err, errlen, "invalid port \"%s\"", port);
            return RMB_ERROR;
        }

    } else {
        port[0] = '\0';
    }

    return RMB_OK;
}


int
rmb_url_parse(rmb_url_t *u, const char *url, char *err, size_t errlen)
{
    size_t          n;
    const char     *p, *end, *path;
    struct in6_addr a6;
    struct in_addr  a4;

    memset(u, 0, sizeof(rmb_url_t));

    if (strncasecmp(url, "wss://", 6) == 0) {
        u->tls = 1;
        p = url + 6;

    } else if (strncasecmp(url, "ws://", 5) == 0) {
        p = url + 5;

    } else if (strncasecmp(url, "https://", 8) == 0) {
        u->tls = 1;
        p = url + 8;

    } else if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;

    } else {
        (void) snprintf(err, errlen, "the URL must start with ws:// or "
                        "wss://");
        return RMB_ERROR;
    }

    end = p + strcspn(p, "/?#");
    path = end;

    if (memchr(p, '@', (size_t) (end - p))) {
        (void) snprintf(err, errlen, "user:password@ is not supported in "
                        "the URL (use --token)");
        return RMB_ERROR;
    }

    if (rmb_parse_hostport(p, end, u->host, sizeof(u->host), u->port,
                           sizeof(u->port), &u->ipv6, err, errlen)
        != RMB_OK)
    {
        return RMB_ERROR;
    }

    if (u->port[0] == '\0') {
        (void) snprintf(u->port, sizeof(u->port), "%s", u->tls ? "443"
                                                               : "80");
    }

    u->portn = atoi(u->port);

    if (u->ipv6) {
        if (inet_pton(AF_INET6, u->host, &a6) != 1) {
            (void) snprintf(err, errlen, "invalid IPv6 address \"%s\"",
                            u->host);
            return RMB_ERROR;
        }

        u->ip = 1;

    } else if (inet_pton(AF_INET, u->host, &a4) == 1) {
        u->ip = 1;
    }

    /* the path and query, without a fragment */

    n = strcspn(path, "#");

    u->path = malloc(n + 2);
    if (u->path == NULL) {
        (void) snprintf(err, errlen, "out of memory");
        return RMB_ERROR;
    }

    if (n == 0 || *path == '?') {
        u->path[0] = '/';
        memcpy(u->path + 1, path, n);
        u->path[n + 1] = '\0';

    } else {
        memcpy(u->path, path, n);
        u->path[n] = '\0';
    }

    for (p = u->path; *p; p++) {
        if ((u_char) *p <= 0x20 || *p == 0x7f) {
            (void) snprintf(err, errlen, "white space or a control "
                            "character in the URL path");
            return RMB_ERROR;
        }
    }

    if ((u->tls && u->portn == 443) || (!u->tls && u->portn == 80)) {
        (void) snprintf(u->hostport, sizeof(u->hostport),
                        u->ipv6 ? "[%s]" : "%s", u->host);

    } else {
        (void) snprintf(u->hostport, sizeof(u->hostport),
                        u->ipv6 ? "[%s]:%s" : "%s:%s", u->host, u->port);
    }

    return RMB_OK;
}


/* percent-encoding of everything but unreserved characters (malloc'd) */

char *
rmb_url_encode(const char *s)
{
    char          *out, *p;
    const u_char  *q;

    static const char  hex[] = "0123456789ABCDEF";

    out = malloc(strlen(s) * 3 + 1);
    if (out == NULL) {
        return NULL;
    }

    p = out;

    for (q = (const u_char *) s; *q; q++) {
        if (isalnum(*q) || *q == '-' || *q == '.' || *q == '_' || *q == '~')
        {
            *p++ = (char) *q;

        } else {
            *p++ = '%';
            *p++ = hex[*q >> 4];
            *p++ = hex[*q & 0xf];
        }
    }

    *p = '\0';

    return out;
}


static void
rmb_url_decode(char *s)
{
    int    h, l;
    char  *p, *q;

    for (p = q = s; *p; p++) {
        if (*p == '%' && (h = rmb_hexval(p[1])) >= 0
            && (l = rmb_hexval(p[2])) >= 0)
        {
            *q++ = (char) (h * 16 + l);
            p += 2;

        } else {
            *q++ = *p;
        }
    }

    *q = '\0';
}


static const char *
rmb_getenv2(const char *lower, const char *upper, const char **name)
{
    const char  *v;

    v = getenv(lower);

    if (v && *v) {
        *name = lower;
        return v;
    }

    v = getenv(upper);

    if (v && *v) {
        *name = upper;
        return v;
    }

    return NULL;
}


/*
 * The proxy for u from the environment.  Returns RMB_OK with p->host set,
 * RMB_AGAIN when no proxy applies (none set, or no_proxy matches), or
 * RMB_ERROR for a setting we cannot use.  *source names the variable.
 */

int
rmb_proxy_from_env(rmb_proxy_t *p, rmb_url_t *u, const char **source,
    char *err, size_t errlen)
{
    int          ipv6;
    char        *cred;
    size_t       n;
    const char  *v, *s, *end, *at, *name, *np;

    memset(p, 0, sizeof(rmb_proxy_t));

    name = NULL;

    v = u->tls ? rmb_getenv2("https_proxy", "HTTPS_PROXY", &name)
               : rmb_getenv2("http_proxy", "HTTP_PROXY", &name);

    if (v == NULL) {
        v = rmb_getenv2("all_proxy", "ALL_PROXY", &name);
    }

    *source = name;

    if (v == NULL) {
        return RMB_AGAIN;
    }

    np = rmb_getenv2("no_proxy", "NO_PROXY", &name);

    if (np && rmb_no_proxy_match(np, u)) {
        return RMB_AGAIN;
    }

    s = v;

    if (strncasecmp(s, "http://", 7) == 0) {
        s += 7;

    } else if (strstr(s, "://")) {
        (void) snprintf(err, errlen, "%s: only http:// proxies are "
                        "supported", *source);
        return RMB_ERROR;
    }

    end = s + strcspn(s, "/?#");

    at = NULL;

    for (v = s; v < end; v++) {
        if (*v == '@') {
            at = v;
        }
    }

    if (at) {
        n = (size_t) (at - s);

        cred = malloc(n + 1);
        if (cred == NULL) {
            (void) snprintf(err, errlen, "out of memory");
            return RMB_ERROR;
        }

        memcpy(cred, s, n);
        cred[n] = '\0';
        rmb_url_decode(cred);

        p->auth = rmb_base64((u_char *) cred, strlen(cred));

        explicit_bzero(cred, n);
        free(cred);

        if (p->auth == NULL) {
            (void) snprintf(err, errlen, "out of memory");
            return RMB_ERROR;
        }

        s = at + 1;
    }

    if (rmb_parse_hostport(s, end, p->host, sizeof(p->host), p->port,
                           sizeof(p->port), &ipv6, err, errlen)
        != RMB_OK)
    {
        free(p->auth);
        p->auth = NULL;
        return RMB_ERROR;
    }

    if (p->port[0] == '\0') {
        /* curl's default */
        (void) snprintf(p->port, sizeof(p->port), "1080");
    }

    (void) snprintf(p->display, sizeof(p->display),
                    ipv6 ? "[%s]:%s" : "%s:%s", p->host, p->port);

    return RMB_OK;
}


/* addr/bits against the IP literal host; -1 if entry is not a CIDR */

static int
rmb_cidr_match(const char *entry, size_t len, rmb_url_t *u)
{
    int             family, bits, max, i;
    char            buf[64], *slash;
    u_char          a[16], h[16];

    if (len >= sizeof(buf)) {
        return -1;
    }

    memcpy(buf, entry, len);
    buf[len] = '\0';

    slash = strchr(buf, '/');
    if (slash == NULL) {
        return -1;
    }

    *slash = '\0';
    bits = atoi(slash + 1);

    if (buf[0] == '[' && slash > buf + 1 && slash[-1] == ']') {
        slash[-1] = '\0';
        memmove(buf, buf + 1, strlen(buf));
    }

    if (inet_pton(AF_INET, buf, a) == 1) {
        family = AF_INET;
        max = 32;

    } else if (inet_pton(AF_INET6, buf, a) == 1) {
        family = AF_INET6;
        max = 128;

    } else {
        return -1;
    }

    if (!u->ip || inet_pton(family, u->host, h) != 1) {
        return 0;
    }

    if (bits < 0 || bits > max) {
        return 0;
    }

    for (i = 0; bits >= 8; i++, bits -= 8) {
        if (a[i] != h[i]) {
            return 0;
        }
    }

    if (bits && ((a[i] ^ h[i]) & (0xff << (8 - bits)) & 0xff)) {
        return 0;
    }

    return 1;
}


/*
 * no_proxy: comma (or space) separated; "*" matches every host; an entry
 * matches the host itself and, for names, its subdomains (".example.com"
 * and "example.com" alike); "host:port" only that port; an IP literal
 * matches that address, "a.b.c.d/n" or "fd00::/8" a block.
 */

int
rmb_no_proxy_match(const char *list, rmb_url_t *u)
{
    int          rc;
    char         ent[300], *colon;
    size_t       n, hlen, elen;
    const char  *p, *end;
    u_char       a[16], h[16];

    p = list;
    hlen = strlen(u->host);

    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t') {
            p++;
        }

        if (*p == '\0') {
            break;
        }

        end = p + strcspn(p, ", \t");
        n = (size_t) (end - p);

        if (n == 1 && *p == '*') {
            return 1;
        }

        if (n >= sizeof(ent)) {
            p = end;
            continue;
        }

        rc = rmb_cidr_match(p, n, u);

        if (rc >= 0) {
            if (rc) {
                return 1;
            }

            p = end;
            continue;
        }

        memcpy(ent, p, n);
        ent[n] = '\0';
        p = end;

        /* [v6]:port, [v6], host:port, bare v6 */

        if (ent[0] == '[') {
            colon = strchr(ent, ']');
            if (colon == NULL) {
                continue;
            }

            if (colon[1] == ':') {
                if (atoi(colon + 2) != u->portn) {
                    continue;
                }

            } else if (colon[1] != '\0') {
                continue;
            }

            *colon = '\0';
            memmove(ent, ent + 1, strlen(ent + 1) + 1);

        } else if ((colon = strchr(ent, ':')) != NULL
                   && strchr(colon + 1, ':') == NULL)
        {
            if (atoi(colon + 1) != u->portn) {
                continue;
            }

            *colon = '\0';
        }

        if (inet_pton(AF_INET6, ent, a) == 1) {
            if (u->ipv6 && inet_pton(AF_INET6, u->host, h) == 1
                && memcmp(a, h, 16) == 0)
            {
                return 1;
            }

            continue;
        }

        if (u->ip) {
            if (strcmp(ent, u->host) == 0) {
                return 1;
            }

            continue;
        }

        colon = ent;
        while (*colon == '.') {
            colon++;
        }

        elen = strlen(colon);

        if (elen == 0) {
            continue;
        }

        if (elen == hlen && strcasecmp(colon, u->host) == 0) {
            return 1;
        }

        if (elen < hlen && u->host[hlen - elen - 1] == '.'
            && strcasecmp(colon, u->host + hlen - elen) == 0)
        {
            return 1;
        }
    }

    return 0;
}


int
rmb_resolve(const char *host, const char *port, struct addrinfo **res,
    char *err, size_t errlen)
{
    int              rc;
    struct addrinfo  hints;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;

    rc = getaddrinfo(host, port, &hints, res);

    if (rc != 0) {
        (void) snprintf(err, errlen, "cannot resolve \"%s\": %s", host,
                        rc == EAI_SYSTEM ? strerror(errno)
                                         : gai_strerror(rc));
        return RMB_ERROR;
    }

    return RMB_OK;
}


/* a non-blocking socket with a connect in progress (or done), or -1 */

int
rmb_tcp_connect(struct addrinfo *ai, char *err, size_t errlen)
{
    int  fd, one;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);

    if (fd == -1) {
        (void) snprintf(err, errlen, "socket() failed: %s", strerror(errno));
        return -1;
    }

    one = 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0
        || setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) != 0)
    {
        (void) snprintf(err, errlen, "setsockopt() failed: %s",
                        strerror(errno));
        (void) close(fd);
        return -1;
    }

    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0
        && errno != EINPROGRESS)
    {
        (void) snprintf(err, errlen, "connect() failed: %s", strerror(errno));
        (void) close(fd);
        return -1;
    }

    return fd;
}


int
rmb_tcp_connected(int fd, char *err, size_t errlen)
{
    int        e;
    socklen_t  len;

    e = 0;
    len = sizeof(e);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) {
        e = errno;
    }

    if (e != 0) {
        (void) snprintf(err, errlen, "connect() failed: %s", strerror(e));
        return RMB_ERROR;
    }

    return RMB_OK;
}
