/*
 * reverse-mcp-bridge: declarations shared by its source files.
 *
 * Owns: the types every part uses (byte buffers, the options, the child
 * process and WebSocket client objects), the logger, the monotonic clock,
 * randomness, and the limits and defaults that more than one file needs.
 *
 * Files: reverse-mcp-bridge.c (options, --help, event loop, relay and
 * reconnect policy), bridge_util.c (log, buffers, clock, parsing helpers,
 * JSON check), bridge_child.c (the child process), bridge_net.c (URLs,
 * proxy settings, TCP connect), bridge_tls.c (OpenSSL), bridge_ws.c (the
 * WebSocket client on top of the shared frame codec in src/).
 */

#ifndef _RMB_BRIDGE_H_INCLUDED_
#define _RMB_BRIDGE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <netdb.h>

#include <openssl/ssl.h>

#include "ngx_http_reverse_mcp_ws_codec.h"


#define RMB_NAME                "reverse-mcp-bridge"
#define RMB_VERSION             "0.1.0"

#define RMB_OK                  0
#define RMB_ERROR              -1
#define RMB_AGAIN              -2

/* exit status */
#define RMB_EXIT_OK             0
#define RMB_EXIT_ERROR          1     /* setup or runtime failure */
#define RMB_EXIT_USAGE          2     /* bad command line */
#define RMB_EXIT_REFUSED        3     /* 401 / 403 from the gateway */
#define RMB_EXIT_CHILD          4     /* --on-child-exit exit, status != 0 */

/* log levels */
#define RMB_LOG_ERR             0
#define RMB_LOG_WARN            1
#define RMB_LOG_NOTICE          2
#define RMB_LOG_INFO            3
#define RMB_LOG_DEBUG           4

/* defaults */
#define RMB_DEFAULT_MAX_MESSAGE (16 * 1024 * 1024)
#define RMB_DEFAULT_BACKOFF_MIN 500
#define RMB_DEFAULT_BACKOFF_MAX 30000
#define RMB_DEFAULT_CONNECT     10000
#define RMB_DEFAULT_PING        30000
#define RMB_DEFAULT_PING_WAIT   10000
#define RMB_DEFAULT_KILL        5000

/*
 * A queue holding this many bytes stops its producer: the child's stdout
 * is not read while the WebSocket send queue holds this much, the socket
 * is not read while the child's stdin queue does.  One message is always
 * accepted, so a queue holds at most RMB_QUEUE_HIGH + max_message.
 */
#define RMB_QUEUE_HIGH          (1024 * 1024)

/* a connection or a child that lasted this long resets its backoff */
#define RMB_STABLE              10000

/* how long our close frame waits for the gateway's */
#define RMB_CLOSE_WAIT          3000

/* bytes of a bad line quoted in the log */
#define RMB_QUOTE               200

#define RMB_ERRLEN              512


/* u_char comes from <sys/types.h> (glibc, _DEFAULT_SOURCE) */
typedef int64_t  rmb_msec_t;


typedef struct {
    u_char                  *data;
    size_t                   pos;
    size_t                   last;
    size_t                   cap;
} rmb_buf_t;

#define rmb_buf_len(b)       ((b)->last - (b)->pos)
#define rmb_buf_start(b)     ((b)->data + (b)->pos)


typedef struct {
    int                      tls;
    int                      ipv6;          /* host is an IPv6 literal */
    int                      ip;            /* host is an IP literal */
    char                     host[256];     /* without brackets */
    char                     port[8];
    int                      portn;
    char                    *path;          /* "/ws?x=y" (malloc'd) */
    char                     hostport[272]; /* Host header / CONNECT */
} rmb_url_t;


typedef struct {
    char                     host[256];
    char                     port[8];
    char                    *auth;          /* "Basic ..." or NULL */
    char                     display[300];  /* host:port, for the log */
} rmb_proxy_t;


typedef struct {
    const char              *url;
    const char              *name;
    char                    *token;         /* NULL: no token */
    int                      query_token;
    const char              *ca_file;
    const char              *cert_file;
    const char              *key_file;
    int                      insecure;
    int                      exit_on_child_exit;
    rmb_msec_t               backoff_min;
    rmb_msec_t               backoff_max;
    rmb_msec_t               connect_timeout;
    rmb_msec_t               ping_interval;
    rmb_msec_t               ping_timeout;
    rmb_msec_t               kill_timeout;
    size_t                   max_message;
    char                   **argv;          /* the command */
} rmb_opts_t;


/* the child process */

typedef struct rmb_child_s  rmb_child_t;

struct rmb_child_s {
    rmb_child_t             *next;          /* the retired list */
    pid_t                    pid;           /* also its process group */
    int                      in_fd;         /* our ends; -1: closed */
    int                      out_fd;
    int                      err_fd;
    rmb_buf_t                out;           /* stdout not yet split */
    size_t                   scan;          /* out: searched for '\n' */
    size_t                   discarded;     /* of an overlong line */
    rmb_buf_t                err;           /* a partial stderr line */
    unsigned                 dirty:1;       /* we wrote to its stdin */
    unsigned                 exited:1;      /* reaped */
    unsigned                 retired:1;
    unsigned                 discard:1;     /* inside an overlong line */
    unsigned                 group_kill:1;  /* SIGKILL to the group due */
    int                      status;        /* wait status */
    rmb_msec_t               started;
    rmb_msec_t               kill_at;       /* SIGKILL deadline */
};


/* the WebSocket client */

typedef struct rmb_ws_s  rmb_ws_t;

typedef struct {
    void                   (*on_open)(rmb_ws_t *ws);
    /* a complete data message; non-zero pauses reading the socket */
    int                    (*on_message)(rmb_ws_t *ws, const u_char *p,
                                         size_t len);
    /* the connection (or the attempt) is over; the object is idle */
    void                   (*on_close)(rmb_ws_t *ws);
} rmb_ws_handler_t;

#define RMB_WS_IDLE       0
#define RMB_WS_CONNECT    1     /* TCP connect in progress */
#define RMB_WS_PROXY      2     /* CONNECT request / response */
#define RMB_WS_TLS        3     /* TLS handshake */
#define RMB_WS_UPGRADE    4     /* HTTP upgrade request / response */
#define RMB_WS_REFUSED    5     /* reading the body of a refusal */
#define RMB_WS_OPEN       6
#define RMB_WS_CLOSING    7     /* our close frame is queued or sent */

struct rmb_ws_s {
    /* set by the user */
    rmb_opts_t              *opts;
    rmb_url_t               *url;
    rmb_proxy_t             *proxy;         /* NULL: direct */
    SSL_CTX                 *ssl_ctx;       /* NULL for ws:// */
    rmb_ws_handler_t        *handler;

    int                      state;
    int                      fd;
    SSL                     *ssl;
    short                    rd_ev;         /* what a read waits for */
    short                    wr_ev;         /* what a write waits for */
    size_t                   ssl_wretry;    /* SSL_write to repeat */

    struct addrinfo         *addrs;
    struct addrinfo         *addr;          /* being tried */
    char                     peer[300];     /* for the log */

    rmb_buf_t                in;            /* socket bytes not parsed */
    rmb_buf_t                out;           /* bytes to send */
    ngx_http_reverse_mcp_ws_parser_t  parser;

    unsigned                 paused:1;      /* on_message asked */
    unsigned                 kick:1;        /* run without a poll event */
    unsigned                 close_after_flush:1;
    unsigned                 close_received:1;
    unsigned                 ping_out:1;    /* a ping waits for data */

    char                     key[25];       /* Sec-WebSocket-Key */
    size_t                   hdr_scan;

    rmb_msec_t               started;
    rmb_msec_t               deadline;      /* connect, refusal, close */
    rmb_msec_t               opened_at;
    rmb_msec_t               next_ping;
    rmb_msec_t               ping_deadline;
    uint64_t                 pings;

    /* the response of a refused handshake */
    int                      status;
    char                     reason[64];
    long long                content_length;   /* -1: none */
    size_t                   body_start;

    /* the outcome, read by on_close */
    unsigned                 was_open:1;
    unsigned                 fatal:1;       /* 401 / 403 */
    int                      close_code;    /* the gateway's, or 0 */
};


/* bridge_util.c */

extern int  rmb_log_level;

void rmb_log(int level, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
void rmb_log_raw(const char *tag, const u_char *p, size_t len);
size_t rmb_quote(char *out, size_t size, const u_char *p, size_t len,
    size_t max);

rmb_msec_t rmb_now(void);
int rmb_random(void *buf, size_t len);

int rmb_buf_reserve(rmb_buf_t *b, size_t n);
int rmb_buf_append(rmb_buf_t *b, const void *p, size_t n);
void rmb_buf_consume(rmb_buf_t *b, size_t n);
void rmb_buf_reset(rmb_buf_t *b);
void rmb_buf_free(rmb_buf_t *b);

rmb_msec_t rmb_parse_msec(const char *s);
long long rmb_parse_size(const char *s);
void rmb_format_msec(char *out, size_t size, rmb_msec_t ms);

const char *rmb_json_check(const u_char *p, size_t len, size_t *off);

char *rmb_base64(const u_char *p, size_t len);


/* bridge_child.c */

rmb_child_t *rmb_child_spawn(char **argv, int *exec_errno);
ssize_t rmb_child_read_stdout(rmb_child_t *c, size_t max_message);
int rmb_child_line(rmb_child_t *c, u_char **line, size_t *len);
void rmb_child_line_done(rmb_child_t *c, size_t len);
int rmb_child_read_stderr(rmb_child_t *c);
ssize_t rmb_child_write(rmb_child_t *c, const u_char *p, size_t len);
void rmb_child_close_io(rmb_child_t *c);
void rmb_child_terminate(rmb_child_t *c, rmb_msec_t grace);
void rmb_child_kill(rmb_child_t *c);
void rmb_child_free(rmb_child_t *c);
const char *rmb_child_status(int status, char *buf, size_t size);


/* bridge_net.c */

int rmb_url_parse(rmb_url_t *u, const char *url, char *err, size_t errlen);
int rmb_proxy_from_env(rmb_proxy_t *p, rmb_url_t *u, const char **source,
    char *err, size_t errlen);
int rmb_no_proxy_match(const char *list, rmb_url_t *u);
int rmb_resolve(const char *host, const char *port, struct addrinfo **res,
    char *err, size_t errlen);
int rmb_tcp_connect(struct addrinfo *ai, char *err, size_t errlen);
int rmb_tcp_connected(int fd, char *err, size_t errlen);
char *rmb_url_encode(const char *s);


/* bridge_tls.c */

SSL_CTX *rmb_tls_ctx(rmb_opts_t *o, char *err, size_t errlen);
SSL *rmb_tls_new(SSL_CTX *ctx, int fd, rmb_url_t *u, char *err,
    size_t errlen);
int rmb_tls_handshake(SSL *ssl, short *ev, char *err, size_t errlen);
ssize_t rmb_tls_read(SSL *ssl, u_char *buf, size_t len, short *ev,
    char *err, size_t errlen);
ssize_t rmb_tls_write(SSL *ssl, const u_char *buf, size_t len, short *ev,
    char *err, size_t errlen);
void rmb_tls_errors(char *out, size_t size);


/* bridge_ws.c */

void rmb_ws_init(rmb_ws_t *ws);
int rmb_ws_connect(rmb_ws_t *ws);
short rmb_ws_events(rmb_ws_t *ws);
void rmb_ws_run(rmb_ws_t *ws);
void rmb_ws_timer(rmb_ws_t *ws, rmb_msec_t now);
rmb_msec_t rmb_ws_next_timer(rmb_ws_t *ws);
int rmb_ws_send(rmb_ws_t *ws, int opcode, const u_char *p, size_t len);
void rmb_ws_close(rmb_ws_t *ws, int code, const char *reason);
void rmb_ws_abort(rmb_ws_t *ws, const char *why);
void rmb_ws_resume(rmb_ws_t *ws);


#endif /* _RMB_BRIDGE_H_INCLUDED_ */
