/*
 * reverse-mcp-bridge: turns a stdio MCP server into a reverse MCP server.
 *
 * Owns: the command line and --help, the single-threaded poll(2) event
 * loop, signals (a self-pipe), and the policy: what is relayed (a child
 * line that is one JSON object or array becomes one text frame, a message
 * of the gateway becomes one line on the child's stdin), backpressure
 * between the two queues, when to connect (exponential backoff with
 * jitter, never while no child runs), when to restart the child (a fresh
 * one for every connection in which the gateway spoke to it; after it
 * exited, per --on-child-exit), and how to stop (close 1000, child
 * terminated, exit 0).
 *
 * The parts: bridge_ws.c (WebSocket client, over the frame codec shared
 * with the nginx module), bridge_tls.c, bridge_net.c, bridge_child.c,
 * bridge_util.c; bridge.h declares them.
 */


#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bridge.h"


#define RMB_MAX_POLL      64
#define RMB_TOKEN_MAX     4096
#define RMB_GROUP_POLL    50


typedef struct {
    rmb_opts_t           opts;
    rmb_url_t            url;
    rmb_proxy_t          proxy;
    SSL_CTX             *ssl_ctx;
    char                 url_display[600];

    rmb_ws_t             ws;
    rmb_ws_handler_t     handler;

    rmb_child_t         *child;
    rmb_child_t         *retired;
    rmb_buf_t            to_child;      /* gateway -> child stdin */

    int                  sig_pipe[2];
    int                  signals;       /* how many stop signals */

    unsigned             stopping:1;
    unsigned             spawned_once:1;

    int                  exit_code;
    int                  conn_fails;
    int                  child_fails;
    rmb_msec_t           reconnect_at;
    rmb_msec_t           respawn_at;    /* -1: none due */

    uint64_t             msgs_in;       /* gateway -> child */
    uint64_t             msgs_out;      /* child -> gateway */
    uint64_t             dropped;
} rmb_main_t;


static rmb_main_t  rmb;


static void rmb_on_open(rmb_ws_t *ws);
static int rmb_on_message(rmb_ws_t *ws, const u_char *p, size_t len);
static void rmb_on_close(rmb_ws_t *ws);
static void rmb_stop(const char *why);


static const char  rmb_help[] =
"NAME\n"
"    reverse-mcp-bridge - serve a stdio MCP server to an nginx reverse MCP\n"
"    gateway over an outgoing WebSocket\n"
"\n"
"SYNOPSIS\n"
"    reverse-mcp-bridge --url URL --name NAME\n"
"                       [--token TOKEN | --token-file FILE] [OPTIONS]\n"
"                       [--] COMMAND [ARGUMENT]...\n"
"\n"
"DESCRIPTION\n"
"    Runs COMMAND, a Model Context Protocol server that speaks\n"
"    newline-delimited JSON-RPC on its stdin and stdout, and connects OUT\n"
"    to the WebSocket connector of a gateway running\n"
"    ngx_http_reverse_mcp_module, which acts as the MCP client. Each line\n"
"    COMMAND writes becomes one text frame; each message of the gateway\n"
"    becomes one line on COMMAND's stdin. COMMAND's stderr goes to the\n"
"    bridge's stderr, each line tagged \"[child PID]\".\n"
"\n"
"    The handshake sends the server name and the token both in the query\n"
"    (?server_name=NAME&token=TOKEN) and in the headers X-MCP-Server-Name\n"
"    and Authorization: Bearer TOKEN; --query-token off keeps the token\n"
"    out of the URL.\n"
"\n"
"    The bridge is a transport and does not interpret MCP. It only checks\n"
"    that a line of COMMAND is one JSON object or array in valid UTF-8 of\n"
"    at most --max-message bytes: any other line is logged (its first 200\n"
"    bytes) and dropped, never forwarded. Empty lines are skipped.\n"
"\n"
"  Reconnecting and the child\n"
"    The gateway starts a new MCP session (initialize, tools/list) on every\n"
"    connection, and an MCP server must not see a second initialize. So\n"
"    every connection gets a fresh child: when a connection ends after the\n"
"    gateway wrote anything to the child, the child is stopped (stdin\n"
"    closed and SIGTERM to its process group, SIGKILL after\n"
"    --kill-timeout) and COMMAND is started again before the next\n"
"    connection. Nothing is replayed. A child that got nothing (the\n"
"    connection failed before the gateway spoke) is kept for the next\n"
"    attempt. No connection is attempted while no child runs; what the\n"
"    gateway sends before the new child is up waits in the bridge.\n"
"\n"
"    Attempts are retried forever. The wait before an attempt doubles after\n"
"    each failure from --backoff-min up to --backoff-max, and is drawn at\n"
"    random between half of that and all of it (jitter); a connection that\n"
"    stayed up for 10 seconds resets it. Only a refusal with HTTP 401 or\n"
"    403 (wrong name or token) ends the bridge, at once, with the status\n"
"    and the gateway's reason in the message; every other refusal (409,\n"
"    503, a proxy error, a TLS error such as a certificate that does not\n"
"    verify) is logged and retried.\n"
"\n"
"    The bridge pings the gateway every --ping-interval; when nothing at\n"
"    all arrives within --ping-timeout of a ping, the connection is\n"
"    dropped and a new one is made (not while the bridge itself stops\n"
"    reading, see Flow control). Gateway pings are answered.\n"
"\n"
"    When COMMAND exits on its own, the exit status is logged and the\n"
"    WebSocket is closed (1000 for status 0, 1011 otherwise); then, with\n"
"    --on-child-exit restart, COMMAND is started again (at once if it ran\n"
"    for 10 seconds or more, else after a backoff as above) and a new\n"
"    connection follows; with --on-child-exit exit, the bridge exits.\n"
"\n"
"  Flow control\n"
"    One thread, one poll(2) loop. The child's stdout is not read while\n"
"    1 MiB waits to be sent to the gateway, and the socket is not read\n"
"    while 1 MiB waits to be written to the child's stdin; one message is\n"
"    always accepted, so each queue holds at most 1 MiB + --max-message.\n"
"    A longer line of the child is dropped as it arrives (not buffered);\n"
"    a longer message of the gateway closes the connection with 1009.\n"
"\n"
"OPTIONS\n"
"    --url URL\n"
"        The connector: ws://HOST[:PORT]/PATH or wss://HOST[:PORT]/PATH,\n"
"        for example wss://gateway.example:9090/ws. Required.\n"
"\n"
"    --name NAME\n"
"        The server name registered on the gateway: 1 to 64 of\n"
"        [A-Za-z0-9_-], without \"__\". Required.\n"
"\n"
"    --token TOKEN\n"
"        The server's token. Visible to every local user in ps(1) and\n"
"        /proc/PID/cmdline (the bridge blanks its copy at start, too late\n"
"        to be safe): prefer --token-file or REVERSE_MCP_TOKEN.\n"
"\n"
"    --token-file FILE\n"
"        Read the token from FILE (trailing white space removed).\n"
"\n"
"    --query-token on|off\n"
"        Also send the token as ?token= (default on, as the seed's clients\n"
"        do). With off it goes only in the Authorization header, which the\n"
"        gateway prefers; use off with \"reverse_mcp_query_token off\".\n"
"\n"
"    --ca-file FILE\n"
"        Verify the gateway's certificate against the CA certificates in\n"
"        FILE (PEM) instead of the system's.\n"
"\n"
"    -k, --insecure\n"
"        Do not verify the gateway's certificate or host name (self-signed\n"
"        development setups only: anyone in the path can impersonate the\n"
"        gateway and read the token).\n"
"\n"
"    --cert FILE, --key FILE\n"
"        Client certificate (PEM, may include its chain) and private key\n"
"        for gateways that require mTLS (ssl_verify_client). --key\n"
"        defaults to --cert.\n"
"\n"
"    --backoff-min TIME, --backoff-max TIME\n"
"        Bounds of the reconnect delay (defaults 500ms and 30s).\n"
"\n"
"    --connect-timeout TIME\n"
"        Limit for TCP connect, proxy, TLS and upgrade together (10s).\n"
"\n"
"    --ping-interval TIME, --ping-timeout TIME\n"
"        WebSocket keepalive (30s and 10s).\n"
"\n"
"    --max-message SIZE\n"
"        The largest message in either direction (16m, the gateway's\n"
"        default reverse_mcp_max_message; at least 1k).\n"
"\n"
"    --on-child-exit restart|exit\n"
"        What to do when COMMAND exits on its own (default restart).\n"
"\n"
"    --kill-timeout TIME\n"
"        How long a child may take to exit after SIGTERM before SIGKILL\n"
"        (5s).\n"
"\n"
"    -v, --verbose\n"
"        Also log debug details (each connection step, message sizes).\n"
"\n"
"    -q, --quiet\n"
"        Log only warnings and errors (and the child's stderr).\n"
"\n"
"    -h, --help\n"
"        This text.\n"
"\n"
"    -V, --version\n"
"        The version.\n"
"\n"
"    TIME is a number with an optional unit: ms, s (the default), m or h,\n"
"    for example 250ms, 1.5s, 2m. SIZE is a number of bytes with an\n"
"    optional k, m or g.\n"
"\n"
"ENVIRONMENT\n"
"    REVERSE_MCP_TOKEN\n"
"        The token, when neither --token nor --token-file is given. It is\n"
"        removed from the environment COMMAND gets.\n"
"\n"
"    https_proxy, HTTPS_PROXY (wss://), http_proxy, HTTP_PROXY (ws://),\n"
"    all_proxy, ALL_PROXY (either, when the former are not set)\n"
"        An HTTP proxy, http://[USER:PASSWORD@]HOST[:PORT] (port 1080 by\n"
"        default), reached with CONNECT; USER:PASSWORD is sent as Basic\n"
"        Proxy-Authorization. TLS and the WebSocket run through the\n"
"        tunnel, so the certificate checks are unchanged.\n"
"\n"
"    no_proxy, NO_PROXY\n"
"        Hosts reached directly: a comma-separated list of host names\n"
"        (which also match their subdomains; a leading dot is optional),\n"
"        IP addresses, CIDR blocks (10.0.0.0/8, fd00::/8), any of these\n"
"        with :PORT, or * for all.\n"
"\n"
"    SSL_CERT_FILE, SSL_CERT_DIR\n"
"        OpenSSL's locations of the system CA certificates (used when\n"
"        --ca-file is not given).\n"
"\n"
"SIGNALS\n"
"    SIGINT, SIGTERM, SIGHUP\n"
"        Close the WebSocket with 1000, stop the child (SIGTERM, then\n"
"        SIGKILL after --kill-timeout), exit 0. A second signal kills the\n"
"        child at once.\n"
"\n"
"EXIT STATUS\n"
"    0   stopped by a signal, or COMMAND exited with status 0 under\n"
"        --on-child-exit exit\n"
"    1   a setup or runtime error: COMMAND cannot be run, a TLS file\n"
"        cannot be loaded, a proxy setting is unusable, out of memory\n"
"    2   invalid command line\n"
"    3   the gateway refused the name or the token (HTTP 401 or 403)\n"
"    4   COMMAND exited with a non-zero status or was killed by a signal,\n"
"        under --on-child-exit exit\n"
"\n"
"EXAMPLES\n"
"    A filesystem server on a home machine, token in a file:\n"
"\n"
"        reverse-mcp-bridge --url wss://gateway.example:9090/ws \\\n"
"            --name home_desktop --token-file /etc/mcp/token \\\n"
"            -- npx -y @modelcontextprotocol/server-filesystem /home/me\n"
"\n"
"    The quickstart gateway (make run) and the demo server of the\n"
"    repository, token from the environment:\n"
"\n"
"        REVERSE_MCP_TOKEN=demo-token reverse-mcp-bridge \\\n"
"            --url ws://127.0.0.1:9090/ws --name demo \\\n"
"            -- node tools/demo-stdio-server.mjs\n"
"\n"
"    A development gateway with a private CA, header token only, exit\n"
"    when the server exits (for a supervisor that restarts the bridge):\n"
"\n"
"        reverse-mcp-bridge --url wss://localhost:9443/ws --name dev \\\n"
"            --token-file token --ca-file build/certs/ca.crt \\\n"
"            --query-token off --on-child-exit exit -- ./my-mcp-server\n";


static void
rmb_usage_error(const char *fmt, const char *arg)
{
    (void) fprintf(stderr, RMB_NAME ": ");
    (void) fprintf(stderr, fmt, arg);
    (void) fprintf(stderr, "\nTry '" RMB_NAME " --help'.\n");
    exit(RMB_EXIT_USAGE);
}


static rmb_msec_t
rmb_opt_msec(const char *name, const char *v, rmb_msec_t min)
{
    rmb_msec_t  ms;

    ms = rmb_parse_msec(v);

    if (ms < 0 || ms < min) {
        (void) fprintf(stderr, RMB_NAME ": invalid --%s \"%s\"%s\n", name, v,
                       ms >= 0 ? ": too small" : "");
        (void) fprintf(stderr, "Try '" RMB_NAME " --help'.\n");
        exit(RMB_EXIT_USAGE);
    }

    return ms;
}


static int
rmb_name_valid(const char *s)
{
    size_t  n;

    n = strlen(s);

    if (n == 0 || n > 64 || strstr(s, "__")) {
        return 0;
    }

    for ( /* void */ ; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
              || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
        {
            return 0;
        }
    }

    return 1;
}


/* header-safe: printable ASCII, no leading or trailing space */

static int
rmb_token_valid(const char *s)
{
    size_t  n;

    n = strlen(s);

    if (n == 0 || n > RMB_TOKEN_MAX || s[0] == ' ' || s[n - 1] == ' ') {
        return 0;
    }

    for ( /* void */ ; *s; s++) {
        if ((u_char) *s < 0x20 || (u_char) *s >= 0x7f) {
            return 0;
        }
    }

    return 1;
}


static char *
rmb_read_token_file(const char *path)
{
    int          fd;
    char        *buf;
    size_t       len;
    ssize_t      n;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        (void) fprintf(stderr, RMB_NAME ": cannot open --token-file \"%s\": "
                       "%s\n", path, strerror(errno));
        exit(RMB_EXIT_ERROR);
    }

    buf = malloc(RMB_TOKEN_MAX + 2);
    if (buf == NULL) {
        (void) fprintf(stderr, RMB_NAME ": out of memory\n");
        exit(RMB_EXIT_ERROR);
    }

    len = 0;

    for ( ;; ) {
        n = read(fd, buf + len, RMB_TOKEN_MAX + 1 - len);

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n < 0) {
            (void) fprintf(stderr, RMB_NAME ": cannot read --token-file "
                           "\"%s\": %s\n", path, strerror(errno));
            exit(RMB_EXIT_ERROR);
        }

        if (n == 0 || len + (size_t) n > RMB_TOKEN_MAX) {
            len += (size_t) n;
            break;
        }

        len += (size_t) n;
    }

    (void) close(fd);

    if (len > RMB_TOKEN_MAX) {
        (void) fprintf(stderr, RMB_NAME ": --token-file \"%s\" is larger "
                       "than %d bytes\n", path, RMB_TOKEN_MAX);
        exit(RMB_EXIT_ERROR);
    }

    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'
                   || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
    {
        len--;
    }

    buf[len] = '\0';

    return buf;
}


static void
rmb_parse_args(int argc, char **argv)
{
    int          c, idx;
    char        *token_arg, *env;
    long long    size;
    const char  *token_file;
    rmb_opts_t  *o;

    enum {
        OPT_URL = 256, OPT_NAME, OPT_TOKEN, OPT_TOKEN_FILE, OPT_QUERY_TOKEN,
        OPT_CA_FILE, OPT_CERT, OPT_KEY, OPT_BACKOFF_MIN, OPT_BACKOFF_MAX,
        OPT_CONNECT_TIMEOUT, OPT_PING_INTERVAL, OPT_PING_TIMEOUT,
        OPT_MAX_MESSAGE, OPT_ON_CHILD_EXIT, OPT_KILL_TIMEOUT
    };

    static const struct option  longopts[] = {
        { "url", required_argument, NULL, OPT_URL },
        { "name", required_argument, NULL, OPT_NAME },
        { "token", required_argument, NULL, OPT_TOKEN },
        { "token-file", required_argument, NULL, OPT_TOKEN_FILE },
        { "query-token", required_argument, NULL, OPT_QUERY_TOKEN },
        { "ca-file", required_argument, NULL, OPT_CA_FILE },
        { "insecure", no_argument, NULL, 'k' },
        { "cert", required_argument, NULL, OPT_CERT },
        { "key", required_argument, NULL, OPT_KEY },
        { "backoff-min", required_argument, NULL, OPT_BACKOFF_MIN },
        { "backoff-max", required_argument, NULL, OPT_BACKOFF_MAX },
        { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
        { "ping-interval", required_argument, NULL, OPT_PING_INTERVAL },
        { "ping-timeout", required_argument, NULL, OPT_PING_TIMEOUT },
        { "max-message", required_argument, NULL, OPT_MAX_MESSAGE },
        { "on-child-exit", required_argument, NULL, OPT_ON_CHILD_EXIT },
        { "kill-timeout", required_argument, NULL, OPT_KILL_TIMEOUT },
        { "verbose", no_argument, NULL, 'v' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };

    o = &rmb.opts;

    o->query_token = 1;
    o->backoff_min = RMB_DEFAULT_BACKOFF_MIN;
    o->backoff_max = RMB_DEFAULT_BACKOFF_MAX;
    o->connect_timeout = RMB_DEFAULT_CONNECT;
    o->ping_interval = RMB_DEFAULT_PING;
    o->ping_timeout = RMB_DEFAULT_PING_WAIT;
    o->kill_timeout = RMB_DEFAULT_KILL;
    o->max_message = RMB_DEFAULT_MAX_MESSAGE;

    token_arg = NULL;
    token_file = NULL;

    opterr = 0;

    while ((c = getopt_long(argc, argv, "+kvqhV", longopts, &idx)) != -1) {

        switch (c) {

        case OPT_URL:
            o->url = optarg;
            break;

        case OPT_NAME:
            o->name = optarg;
            break;

        case OPT_TOKEN:
            token_arg = optarg;
            break;

        case OPT_TOKEN_FILE:
            token_file = optarg;
            break;

        case OPT_QUERY_TOKEN:
            if (strcmp(optarg, "on") == 0) {
                o->query_token = 1;

            } else if (strcmp(optarg, "off") == 0) {
                o->query_token = 0;

            } else {
                rmb_usage_error("--query-token must be on or off, not "
                                "\"%s\"", optarg);
            }

            break;

        case OPT_CA_FILE:
            o->ca_file = optarg;
            break;

        case 'k':
            o->insecure = 1;
            break;

        case OPT_CERT:
            o->cert_file = optarg;
            break;

        case OPT_KEY:
            o->key_file = optarg;
            break;

        case OPT_BACKOFF_MIN:
            o->backoff_min = rmb_opt_msec("backoff-min", optarg, 1);
            break;

        case OPT_BACKOFF_MAX:
            o->backoff_max = rmb_opt_msec("backoff-max", optarg, 1);
            break;

        case OPT_CONNECT_TIMEOUT:
            o->connect_timeout = rmb_opt_msec("connect-timeout", optarg, 10);
            break;

        case OPT_PING_INTERVAL:
            o->ping_interval = rmb_opt_msec("ping-interval", optarg, 10);
            break;

        case OPT_PING_TIMEOUT:
            o->ping_timeout = rmb_opt_msec("ping-timeout", optarg, 10);
            break;

        case OPT_KILL_TIMEOUT:
            o->kill_timeout = rmb_opt_msec("kill-timeout", optarg, 0);
            break;

        case OPT_MAX_MESSAGE:
            size = rmb_parse_size(optarg);

            if (size < 1024 || (unsigned long long) size > SIZE_MAX / 4) {
                rmb_usage_error("invalid --max-message \"%s\" (at least 1k)",
                                optarg);
            }

            o->max_message = (size_t) size;
            break;

        case OPT_ON_CHILD_EXIT:
            if (strcmp(optarg, "restart") == 0) {
                o->exit_on_child_exit = 0;

            } else if (strcmp(optarg, "exit") == 0) {
                o->exit_on_child_exit = 1;

            } else {
                rmb_usage_error("--on-child-exit must be restart or exit, "
                                "not \"%s\"", optarg);
            }

            break;

        case 'v':
            rmb_log_level = RMB_LOG_DEBUG;
            break;

        case 'q':
            rmb_log_level = RMB_LOG_WARN;
            break;

        case 'h':
            (void) fputs(rmb_help, stdout);
            exit(RMB_EXIT_OK);

        case 'V':
            (void) printf(RMB_NAME " " RMB_VERSION " (%s)\n",
                          OpenSSL_version(OPENSSL_VERSION));
            exit(RMB_EXIT_OK);

        case ':':
            rmb_usage_error("option %s needs a value", argv[optind - 1]);
            break;

        default:
            if (optopt) {
                char  opt[3] = { '-', (char) optopt, '\0' };

                rmb_usage_error("unknown option %s", opt);
            }

            rmb_usage_error("unknown or incomplete option %s",
                            argv[optind - 1]);
        }
    }

    if (optind >= argc) {
        rmb_usage_error("%s", "no COMMAND to run (give it after the options, "
                        "or after --)");
    }

    o->argv = argv + optind;

    if (o->url == NULL) {
        rmb_usage_error("%s", "--url is required");
    }

    if (o->name == NULL) {
        rmb_usage_error("%s", "--name is required");
    }

    if (!rmb_name_valid(o->name)) {
        rmb_usage_error("invalid --name \"%s\": use 1-64 of [A-Za-z0-9_-], "
                        "without \"__\"", o->name);
    }

    if (o->backoff_max < o->backoff_min) {
        rmb_usage_error("%s", "--backoff-max is smaller than --backoff-min");
    }

    if (o->key_file && o->cert_file == NULL) {
        rmb_usage_error("%s", "--key needs --cert");
    }

    if ((token_arg != NULL) + (token_file != NULL) > 1) {
        rmb_usage_error("%s", "give either --token or --token-file");
    }

    env = getenv("REVERSE_MCP_TOKEN");

    if (token_arg) {
        o->token = strdup(token_arg);

        /* out of the process title, for what it is worth */
        memset(token_arg, 'x', strlen(token_arg));

    } else if (token_file) {
        o->token = rmb_read_token_file(token_file);

        if (o->token[0] == '\0') {
            (void) fprintf(stderr, RMB_NAME ": --token-file \"%s\" is "
                           "empty\n", token_file);
            exit(RMB_EXIT_ERROR);
        }

    } else if (env && *env) {
        o->token = strdup(env);
    }

    if (env) {
        explicit_bzero(env, strlen(env));
        (void) unsetenv("REVERSE_MCP_TOKEN");
    }

    if ((token_arg || (env && *env && !token_file)) && o->token == NULL) {
        (void) fprintf(stderr, RMB_NAME ": out of memory\n");
        exit(RMB_EXIT_ERROR);
    }

    if (o->token && !rmb_token_valid(o->token)) {
        rmb_usage_error("%s", "invalid token: use printable ASCII, at most "
                        "4096 bytes");
    }
}


/* 0.5 .. 1 times min(max, min * 2^(fails - 1)) */

static rmb_msec_t
rmb_backoff(int fails)
{
    int         i;
    uint32_t    r;
    rmb_msec_t  d;

    d = rmb.opts.backoff_min;

    for (i = 1; i < fails && d < rmb.opts.backoff_max; i++) {
        d *= 2;
    }

    if (d > rmb.opts.backoff_max) {
        d = rmb.opts.backoff_max;
    }

    if (rmb_random(&r, sizeof(r)) != RMB_OK) {
        r = 0;
    }

    return d - (rmb_msec_t) (r % ((uint64_t) d / 2 + 1));
}


/* the command, space-separated, cut with "..." to fit */

static const char *
rmb_command_line(char *buf, size_t size)
{
    char   **a;
    size_t   n, len;

    n = 0;
    buf[0] = '\0';

    for (a = rmb.opts.argv; *a; a++) {
        len = strlen(*a);

        if (n + len + 5 >= size) {
            (void) snprintf(buf + n, size - n, "%s...", n ? " " : "");
            break;
        }

        n += (size_t) snprintf(buf + n, size - n, "%s%s", n ? " " : "", *a);
    }

    return buf;
}


static void
rmb_spawn(void)
{
    int           e;
    char          t[32], cmd[256];
    rmb_child_t  *c;

    c = rmb_child_spawn(rmb.opts.argv, &e);

    if (c == NULL) {
        if (e) {
            rmb_log(RMB_LOG_ERR, "cannot run \"%s\": %s", rmb.opts.argv[0],
                    strerror(e));
        }

        if (!rmb.spawned_once || rmb.opts.exit_on_child_exit) {
            rmb.exit_code = RMB_EXIT_ERROR;
            rmb_stop(NULL);
            return;
        }

        rmb.child_fails++;
        rmb.respawn_at = rmb_now() + rmb_backoff(rmb.child_fails);

        rmb_format_msec(t, sizeof(t), rmb.respawn_at - rmb_now());
        rmb_log(RMB_LOG_NOTICE, "trying again in %s", t);
        return;
    }

    rmb.spawned_once = 1;
    rmb.child = c;
    rmb.respawn_at = -1;

    rmb_log(RMB_LOG_INFO, "started child %d: %s", (int) c->pid,
            rmb_command_line(cmd, sizeof(cmd)));
}


/* the current child goes to the retired list, asked to end */

static void
rmb_retire(const char *why)
{
    rmb_child_t  *c;

    c = rmb.child;

    if (c == NULL) {
        return;
    }

    rmb.child = NULL;

    if (why) {
        rmb_log(RMB_LOG_INFO, "stopping child %d: %s", (int) c->pid, why);
    }

    rmb_child_terminate(c, rmb.opts.kill_timeout);

    c->retired = 1;
    c->next = rmb.retired;
    rmb.retired = c;
}


static void
rmb_stop(const char *why)
{
    if (why) {
        rmb_log(RMB_LOG_NOTICE, "%s", why);
    }

    rmb.stopping = 1;
    rmb.respawn_at = -1;

    if (rmb.ws.state == RMB_WS_OPEN) {
        rmb_ws_close(&rmb.ws, NGX_HTTP_REVERSE_MCP_WS_CLOSE_NORMAL,
                     "reverse-mcp-bridge stopping");

    } else if (rmb.ws.state != RMB_WS_CLOSING) {
        rmb_ws_abort(&rmb.ws, NULL);
    }

    rmb_buf_reset(&rmb.to_child);

    rmb_retire(NULL);
}


static void
rmb_on_open(rmb_ws_t *ws)
{
    rmb_log(RMB_LOG_NOTICE, "connected to %s as \"%s\"%s%s (child %d)",
            rmb.url_display, rmb.opts.name,
            ws->proxy ? " through the proxy " : "",
            ws->proxy ? ws->proxy->display : "",
            rmb.child ? (int) rmb.child->pid : 0);
}


static int
rmb_on_message(rmb_ws_t *ws, const u_char *p, size_t len)
{
    (void) ws;

    if (rmb.stopping) {
        return 0;
    }

    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'
                   || p[len - 1] == ' ' || p[len - 1] == '\t'))
    {
        len--;
    }

    if (len == 0) {
        return 0;
    }

    if (rmb.child && rmb.child->in_fd == -1) {
        rmb.dropped++;
        rmb_log(RMB_LOG_WARN, "the stdin of child %d is closed: a message "
                "of %zu bytes from the gateway is dropped",
                (int) rmb.child->pid, len);
        return 0;
    }

    if (rmb_buf_reserve(&rmb.to_child, len + 1) != RMB_OK) {
        rmb.exit_code = RMB_EXIT_ERROR;
        rmb.dropped++;
        return 1;
    }

    memcpy(rmb.to_child.data + rmb.to_child.last, p, len);
    rmb.to_child.last += len;
    rmb.to_child.data[rmb.to_child.last++] = '\n';

    rmb.msgs_in++;

    rmb_log(RMB_LOG_DEBUG, "gateway -> child: %zu bytes", len);

    return rmb_buf_len(&rmb.to_child) >= RMB_QUEUE_HIGH;
}


static void
rmb_on_close(rmb_ws_t *ws)
{
    char        t[32];
    rmb_msec_t  now, delay;

    now = rmb_now();

    rmb_buf_reset(&rmb.to_child);

    if (ws->fatal) {
        rmb.exit_code = RMB_EXIT_REFUSED;
        rmb_stop(NULL);
        return;
    }

    if (rmb.stopping) {
        return;
    }

    if (ws->was_open) {
        rmb_log(RMB_LOG_INFO, "disconnected after %.1fs (%llu message(s) "
                "to the child, %llu to the gateway)",
                (double) (now - ws->opened_at) / 1000,
                (unsigned long long) rmb.msgs_in,
                (unsigned long long) rmb.msgs_out);

        if (rmb.child && rmb.child->dirty) {
            rmb_retire("the next connection is a new MCP session");
            rmb.respawn_at = now;
        }

        if (now - ws->opened_at >= RMB_STABLE) {
            rmb.conn_fails = 0;
        }
    }

    rmb.msgs_in = 0;
    rmb.msgs_out = 0;

    rmb.conn_fails++;
    delay = rmb_backoff(rmb.conn_fails);
    rmb.reconnect_at = now + delay;

    rmb_format_msec(t, sizeof(t), delay);
    rmb_log(RMB_LOG_NOTICE, "reconnecting in %s", t);
}


/* a line of the child's stdout: forwarded, or logged and dropped */

static void
rmb_forward_line(rmb_child_t *c, u_char *line, size_t len)
{
    char         quote[RMB_QUOTE * 4 + 8];
    size_t       off, i;
    const char  *err;

    if (len && line[len - 1] == '\r') {
        len--;
    }

    for (i = 0; i < len; i++) {
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
            break;
        }
    }

    if (i == len) {
        return;
    }

    if (len > rmb.opts.max_message) {
        (void) rmb_quote(quote, sizeof(quote), line, len, RMB_QUOTE);
        rmb_log(RMB_LOG_ERR, "child %d wrote a line longer than "
                "--max-message (%zu bytes), dropped, not forwarded: \"%s\"",
                (int) c->pid, rmb.opts.max_message, quote);
        rmb.dropped++;
        return;
    }

    err = rmb_json_check(line, len, &off);

    if (err) {
        (void) rmb_quote(quote, sizeof(quote), line, len, RMB_QUOTE);
        rmb_log(RMB_LOG_WARN, "child %d wrote a line that is not a JSON-RPC "
                "message (%s at byte %zu), dropped, not forwarded: \"%s\"",
                (int) c->pid, err, off, quote);
        rmb.dropped++;
        return;
    }

    if (rmb_ws_send(&rmb.ws, NGX_HTTP_REVERSE_MCP_WS_OP_TEXT, line, len)
        != RMB_OK)
    {
        rmb.dropped++;
        return;
    }

    rmb.msgs_out++;

    rmb_log(RMB_LOG_DEBUG, "child -> gateway: %zu bytes", len);
}


static int
rmb_can_forward(rmb_child_t *c)
{
    return c == rmb.child && !rmb.stopping && rmb.ws.state == RMB_WS_OPEN
           && rmb_buf_len(&rmb.ws.out) < RMB_QUEUE_HIGH;
}


/* the child's stdout: complete lines first, then (if readable) more */

static void
rmb_child_stdout(rmb_child_t *c, int readable)
{
    u_char   *line;
    size_t    len;
    ssize_t   n;

    while (rmb_can_forward(c)) {

        if (rmb_child_line(c, &line, &len)) {
            rmb_forward_line(c, line, len);
            rmb_child_line_done(c, len);
            continue;
        }

        if (!readable || c->out_fd == -1) {
            return;
        }

        n = rmb_child_read_stdout(c, rmb.opts.max_message);

        if (n == RMB_AGAIN) {
            return;
        }

        if (n <= 0) {
            if (n == 0) {
                rmb_log(RMB_LOG_INFO, "child %d closed its stdout",
                        (int) c->pid);
            }

            (void) close(c->out_fd);
            c->out_fd = -1;
            return;
        }
    }
}


static void
rmb_child_stdin(rmb_child_t *c)
{
    ssize_t  n;

    while (rmb_buf_len(&rmb.to_child) && c->in_fd != -1) {
        n = rmb_child_write(c, rmb_buf_start(&rmb.to_child),
                            rmb_buf_len(&rmb.to_child));

        if (n == RMB_AGAIN) {
            break;
        }

        if (n < 0) {
            rmb_log(RMB_LOG_WARN, "writing to the stdin of child %d failed: "
                    "%s", (int) c->pid, strerror(errno));
            (void) close(c->in_fd);
            c->in_fd = -1;
            rmb_buf_reset(&rmb.to_child);
            break;
        }

        rmb_buf_consume(&rmb.to_child, (size_t) n);
    }

    if (rmb_buf_len(&rmb.to_child) < RMB_QUEUE_HIGH) {
        rmb_ws_resume(&rmb.ws);
    }
}


/* the current child exited on its own */

static void
rmb_child_exited(rmb_child_t *c, int status)
{
    int         ok;
    char        st[96], reason[120], t[32];
    rmb_msec_t  now, lived;

    now = rmb_now();
    lived = now - c->started;

    (void) rmb_child_read_stderr(c);

    ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;

    rmb_log(ok ? RMB_LOG_NOTICE : RMB_LOG_ERR, "child %d %s after %.1fs",
            (int) c->pid, rmb_child_status(status, st, sizeof(st)),
            (double) lived / 1000);

    rmb_retire(NULL);

    /* what the gateway sent for it has no reader now */
    rmb_buf_reset(&rmb.to_child);

    if (rmb.opts.exit_on_child_exit && !rmb.stopping) {
        rmb.exit_code = ok ? RMB_EXIT_OK : RMB_EXIT_CHILD;
        rmb.stopping = 1;
        rmb_log(RMB_LOG_NOTICE, "--on-child-exit exit: stopping");
    }

    /* the gateway's session was the child's: end it with the reason */

    (void) snprintf(reason, sizeof(reason), "MCP server process %s", st);
    rmb_ws_close(&rmb.ws, ok ? NGX_HTTP_REVERSE_MCP_WS_CLOSE_NORMAL
                             : NGX_HTTP_REVERSE_MCP_WS_CLOSE_INTERNAL,
                 reason);

    if (rmb.stopping) {
        rmb_stop(NULL);
        return;
    }

    if (lived >= RMB_STABLE) {
        rmb.child_fails = 0;
        rmb.respawn_at = now;

    } else {
        rmb.child_fails++;
        rmb.respawn_at = now + rmb_backoff(rmb.child_fails);
    }

    rmb_format_msec(t, sizeof(t), rmb.respawn_at - now);
    rmb_log(RMB_LOG_NOTICE, "restarting the child in %s", t);
}


static void
rmb_reap(void)
{
    int           status;
    char          st[96];
    pid_t         pid;
    rmb_child_t  *r;

    for ( ;; ) {
        pid = waitpid(-1, &status, WNOHANG);

        if (pid <= 0) {
            if (pid < 0 && errno == EINTR) {
                continue;
            }

            return;
        }

        if (rmb.child && rmb.child->pid == pid) {
            rmb.child->exited = 1;
            rmb.child->status = status;
            rmb_child_exited(rmb.child, status);
            continue;
        }

        for (r = rmb.retired; r; r = r->next) {
            if (r->pid == pid) {
                break;
            }
        }

        if (r == NULL) {
            continue;
        }

        r->exited = 1;
        r->status = status;

        (void) rmb_child_read_stderr(r);

        rmb_log(RMB_LOG_INFO, "child %d %s", (int) pid,
                rmb_child_status(status, st, sizeof(st)));

        /* what it started may still run */
        if (r->group_kill && kill(-pid, 0) != 0 && errno == ESRCH) {
            r->group_kill = 0;
        }
    }
}


/* SIGKILL deadlines, and the retired children that are gone for good */

static void
rmb_retired_timers(rmb_msec_t now)
{
    char          t[32];
    rmb_child_t  *r, **prev;

    prev = &rmb.retired;

    while ((r = *prev) != NULL) {

        if (r->group_kill && r->exited
            && kill(-r->pid, 0) != 0 && errno == ESRCH)
        {
            r->group_kill = 0;
        }

        if (r->group_kill && now >= r->kill_at) {
            rmb_format_msec(t, sizeof(t), rmb.opts.kill_timeout);
            rmb_log(RMB_LOG_WARN, "%s %d did not exit within %s of SIGTERM: "
                    "SIGKILL", r->exited ? "the process group of child"
                                         : "child", (int) r->pid, t);
            rmb_child_kill(r);
        }

        if (r->exited && !r->group_kill) {
            (void) rmb_child_read_stderr(r);
            *prev = r->next;
            rmb_child_free(r);
            continue;
        }

        prev = &r->next;
    }
}


static int
rmb_retired_alive(void)
{
    rmb_child_t  *r;

    for (r = rmb.retired; r; r = r->next) {
        if (!r->exited) {
            return 1;
        }
    }

    return 0;
}


static void
rmb_signal_handler(int signo)
{
    int      saved;
    u_char   c;
    ssize_t  n;

    saved = errno;
    c = (u_char) signo;

    n = write(rmb.sig_pipe[1], &c, 1);
    (void) n;

    errno = saved;
}


static int
rmb_signals_init(void)
{
    size_t            i;
    struct sigaction  sa;

    static const int  sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGCHLD };

    if (pipe2(rmb.sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        rmb_log(RMB_LOG_ERR, "pipe2() failed: %s", strerror(errno));
        return RMB_ERROR;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    (void) sigemptyset(&sa.sa_mask);

    if (sigaction(SIGPIPE, &sa, NULL) != 0) {
        rmb_log(RMB_LOG_ERR, "sigaction(SIGPIPE) failed: %s",
                strerror(errno));
        return RMB_ERROR;
    }

    sa.sa_handler = rmb_signal_handler;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;

    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (sigaction(sigs[i], &sa, NULL) != 0) {
            rmb_log(RMB_LOG_ERR, "sigaction(%d) failed: %s", sigs[i],
                    strerror(errno));
            return RMB_ERROR;
        }
    }

    return RMB_OK;
}


static void
rmb_signals(void)
{
    char          why[96];
    u_char        buf[64];
    ssize_t       n, i;
    rmb_child_t  *r;

    for ( ;; ) {
        n = read(rmb.sig_pipe[0], buf, sizeof(buf));

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n <= 0) {
            return;
        }

        for (i = 0; i < n; i++) {

            if (buf[i] == SIGCHLD) {
                rmb_reap();
                continue;
            }

            rmb.signals++;

            if (rmb.signals == 1) {
                (void) snprintf(why, sizeof(why), "got %s: %sstopping the "
                                "child", strsignal(buf[i]),
                                rmb.ws.state == RMB_WS_OPEN
                                ? "closing the WebSocket with 1000, " : "");
                rmb_stop(why);
                continue;
            }

            rmb_log(RMB_LOG_NOTICE, "got %s again: killing the child now",
                    strsignal(buf[i]));

            rmb_ws_abort(&rmb.ws, NULL);

            for (r = rmb.retired; r; r = r->next) {
                rmb_child_kill(r);
            }
        }
    }
}


/* fds 0, 1, 2 open, so that no socket or pipe of ours lands there */

static void
rmb_std_fds(void)
{
    int  fd;

    for ( ;; ) {
        fd = open("/dev/null", O_RDWR);

        if (fd == -1) {
            return;
        }

        if (fd > STDERR_FILENO) {
            (void) close(fd);
            return;
        }
    }
}


static void
rmb_setup(void)
{
    char         err[RMB_ERRLEN];
    const char  *src, *q;
    int          rc;
    size_t       n;

    if (rmb_url_parse(&rmb.url, rmb.opts.url, err, sizeof(err)) != RMB_OK) {
        rmb_usage_error("invalid --url: %s", err);
    }

    q = strchr(rmb.url.path, '?');
    n = q ? (size_t) (q - rmb.url.path) : strlen(rmb.url.path);

    (void) snprintf(rmb.url_display, sizeof(rmb.url_display), "%s://%s%.*s",
                    rmb.url.tls ? "wss" : "ws", rmb.url.hostport, (int) n,
                    rmb.url.path);

    if (!rmb.url.tls
        && (rmb.opts.ca_file || rmb.opts.cert_file || rmb.opts.insecure))
    {
        rmb_log(RMB_LOG_WARN, "--ca-file, --cert and --insecure do nothing "
                "for a ws:// URL");
    }

    if (rmb.url.tls) {
        if (rmb.opts.insecure) {
            rmb_log(RMB_LOG_WARN, "--insecure: the gateway's certificate is "
                    "NOT verified");
        }

        rmb.ssl_ctx = rmb_tls_ctx(&rmb.opts, err, sizeof(err));

        if (rmb.ssl_ctx == NULL) {
            rmb_log(RMB_LOG_ERR, "%s", err);
            exit(RMB_EXIT_ERROR);
        }
    }

    rc = rmb_proxy_from_env(&rmb.proxy, &rmb.url, &src, err, sizeof(err));

    if (rc == RMB_ERROR) {
        rmb_log(RMB_LOG_ERR, "%s", err);
        exit(RMB_EXIT_ERROR);
    }

    if (rc == RMB_OK) {
        rmb_log(RMB_LOG_INFO, "using the proxy %s (%s)", rmb.proxy.display,
                src);
        rmb.ws.proxy = &rmb.proxy;

    } else if (src) {
        rmb_log(RMB_LOG_INFO, "%s is set, but no_proxy matches %s: "
                "connecting directly", src, rmb.url.host);
    }

    if (rmb.opts.token == NULL) {
        rmb_log(RMB_LOG_WARN, "no token (--token, --token-file or "
                "REVERSE_MCP_TOKEN): only a no_auth server will be "
                "accepted");
    }

    rmb.handler.on_open = rmb_on_open;
    rmb.handler.on_message = rmb_on_message;
    rmb.handler.on_close = rmb_on_close;

    rmb.ws.opts = &rmb.opts;
    rmb.ws.url = &rmb.url;
    rmb.ws.ssl_ctx = rmb.ssl_ctx;
    rmb.ws.handler = &rmb.handler;

    rmb_ws_init(&rmb.ws);

    rmb.respawn_at = -1;
}


/* the poll(2) set */

typedef struct {
    int            kind;
    rmb_child_t   *child;
} rmb_pollref_t;

#define RMB_FD_SIGNAL   0
#define RMB_FD_WS       1
#define RMB_FD_STDIN    2
#define RMB_FD_STDOUT   3
#define RMB_FD_STDERR   4


static void
rmb_poll_add(struct pollfd *pfd, rmb_pollref_t *ref, int *n, int fd,
    short events, int kind, rmb_child_t *c)
{
    if (fd == -1 || events == 0 || *n == RMB_MAX_POLL) {
        return;
    }

    pfd[*n].fd = fd;
    pfd[*n].events = events;
    pfd[*n].revents = 0;
    ref[*n].kind = kind;
    ref[*n].child = c;

    (*n)++;
}


static rmb_msec_t
rmb_min_time(rmb_msec_t a, rmb_msec_t b)
{
    if (a < 0) {
        return b;
    }

    if (b < 0) {
        return a;
    }

    return a < b ? a : b;
}


static int
rmb_loop(void)
{
    int             i, n, rc, timeout, ws_ev;
    rmb_msec_t      now, next;
    rmb_child_t    *c, *r;
    struct pollfd   pfd[RMB_MAX_POLL];
    rmb_pollref_t   ref[RMB_MAX_POLL];

    for ( ;; ) {
        now = rmb_now();

        /* timers */

        rmb_ws_timer(&rmb.ws, now);
        rmb_retired_timers(now);

        if (!rmb.stopping && rmb.child == NULL && rmb.respawn_at >= 0
            && now >= rmb.respawn_at && !rmb_retired_alive())
        {
            rmb_spawn();
        }

        if (!rmb.stopping && rmb.ws.state == RMB_WS_IDLE && rmb.child
            && now >= rmb.reconnect_at)
        {
            (void) rmb_ws_connect(&rmb.ws);
        }

        if (rmb.stopping && rmb.ws.state == RMB_WS_IDLE
            && rmb.child == NULL && rmb.retired == NULL)
        {
            return rmb.exit_code;
        }

        /* what to wait for */

        n = 0;
        c = rmb.child;
        ws_ev = 0;

        rmb_poll_add(pfd, ref, &n, rmb.sig_pipe[0], POLLIN, RMB_FD_SIGNAL,
                     NULL);

        if (rmb.ws.state != RMB_WS_IDLE) {
            ws_ev = rmb_ws_events(&rmb.ws);
            rmb_poll_add(pfd, ref, &n, rmb.ws.fd, (short) ws_ev, RMB_FD_WS,
                         NULL);
        }

        if (c) {
            if (rmb_buf_len(&rmb.to_child)) {
                rmb_poll_add(pfd, ref, &n, c->in_fd, POLLOUT, RMB_FD_STDIN,
                             c);
            }

            if (rmb_can_forward(c)) {
                rmb_poll_add(pfd, ref, &n, c->out_fd, POLLIN, RMB_FD_STDOUT,
                             c);
            }

            rmb_poll_add(pfd, ref, &n, c->err_fd, POLLIN, RMB_FD_STDERR, c);
        }

        for (r = rmb.retired; r; r = r->next) {
            rmb_poll_add(pfd, ref, &n, r->err_fd, POLLIN, RMB_FD_STDERR, r);
        }

        next = -1;

        if (rmb.ws.kick) {
            next = now;
        }

        next = rmb_min_time(next, rmb_ws_next_timer(&rmb.ws));

        if (!rmb.stopping && rmb.child == NULL && rmb.respawn_at >= 0) {
            next = rmb_min_time(next, rmb.respawn_at);
        }

        if (!rmb.stopping && rmb.ws.state == RMB_WS_IDLE && rmb.child) {
            next = rmb_min_time(next, rmb.reconnect_at);
        }

        for (r = rmb.retired; r; r = r->next) {
            if (r->group_kill) {
                next = rmb_min_time(next, r->kill_at);

                if (r->exited) {
                    next = rmb_min_time(next, now + RMB_GROUP_POLL);
                }
            }
        }

        if (c && rmb_can_forward(c) && rmb_buf_len(&c->out) > c->scan) {
            /* complete lines wait in the buffer */
            next = now;
        }

        if (next < 0) {
            timeout = -1;

        } else if (next <= now) {
            timeout = 0;

        } else {
            timeout = (next - now > INT_MAX) ? INT_MAX : (int) (next - now);
        }

        rc = poll(pfd, (nfds_t) n, timeout);

        if (rc < 0) {
            if (errno == EINTR) {
                continue;
            }

            rmb_log(RMB_LOG_ERR, "poll() failed: %s", strerror(errno));
            return RMB_EXIT_ERROR;
        }

        /* signals first: SIGCHLD may retire the child */

        if (pfd[0].revents) {
            rmb_signals();
        }

        for (i = 1; i < n; i++) {
            if (pfd[i].revents == 0) {
                continue;
            }

            switch (ref[i].kind) {

            case RMB_FD_WS:
                if (rmb.ws.fd == pfd[i].fd) {
                    rmb_ws_run(&rmb.ws);
                }

                break;

            case RMB_FD_STDIN:
                if (ref[i].child == rmb.child
                    && ref[i].child->in_fd == pfd[i].fd)
                {
                    rmb_child_stdin(ref[i].child);
                }

                break;

            case RMB_FD_STDOUT:
                if (ref[i].child->out_fd == pfd[i].fd) {
                    rmb_child_stdout(ref[i].child, 1);
                }

                break;

            default: /* RMB_FD_STDERR */
                if (ref[i].child->err_fd == pfd[i].fd) {
                    (void) rmb_child_read_stderr(ref[i].child);
                }

                break;
            }
        }

        if (rmb.ws.kick) {
            rmb_ws_run(&rmb.ws);
        }

        if (rmb.child) {
            /* lines already read, once the send queue has room */
            rmb_child_stdout(rmb.child, 0);

            if (rmb_buf_len(&rmb.to_child) == 0) {
                rmb_ws_resume(&rmb.ws);
            }
        }

        if (rmb.ws.kick) {
            rmb_ws_run(&rmb.ws);
        }
    }
}


int
main(int argc, char **argv)
{
    int           code;
    rmb_child_t  *r;

    rmb_std_fds();

    rmb_parse_args(argc, argv);

    rmb_setup();

    if (rmb_signals_init() != RMB_OK) {
        return RMB_EXIT_ERROR;
    }

    rmb_log(RMB_LOG_INFO, RMB_NAME " " RMB_VERSION " serving \"%s\" to %s",
            rmb.opts.name, rmb.url_display);

    rmb_spawn();

    if (rmb.child == NULL) {
        return RMB_EXIT_ERROR;
    }

    rmb.reconnect_at = rmb_now();

    code = rmb_loop();

    /* whatever is left (a poll() failure): make sure nothing lingers */

    if (rmb.child) {
        rmb_child_kill(rmb.child);
    }

    for (r = rmb.retired; r; r = r->next) {
        rmb_child_kill(r);
    }

    if (rmb.opts.token) {
        explicit_bzero(rmb.opts.token, strlen(rmb.opts.token));
    }

    if (rmb.ssl_ctx) {
        SSL_CTX_free(rmb.ssl_ctx);
    }

    rmb_log(RMB_LOG_INFO, "exiting with status %d", code);

    return code;
}
