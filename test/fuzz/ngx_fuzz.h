/*
 * A minimal nginx runtime for the libFuzzer targets that drive the module's
 * nginx glue (every test/fuzz/NAME_fuzz.c but ws_codec_fuzz.c).
 *
 * Each target is one translation unit that includes this header, then the
 * module .c file under test (so its static functions are reachable), and
 * is linked against the objects of the ASan + UBSan nginx build
 * (test/sanitize/build-asan.sh) and the other module sources.  This header
 * gives them what a worker process would have: ngx_cycle with a pool and a
 * log (to /dev/null, at debug level so every log format is exercised),
 * cached time, an event timer tree, posted event queues, no-op event
 * actions, a small free list of connections whose descriptors are
 * /dev/null, and connections whose recv() and send_chain() are driven by
 * the fuzz input.
 */

#ifndef _NGX_FUZZ_H_INCLUDED_
#define _NGX_FUZZ_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>


#define NGX_FUZZ_CONNECTIONS  64


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* a byte stream read by c->recv in chunks chosen by the input */
typedef struct {
    const u_char  *pos;
    const u_char  *end;
    size_t         chunk;      /* 0: all that is asked */
    ngx_uint_t     again;      /* return NGX_AGAIN once before each chunk */
    ngx_uint_t     again_next;
    ngx_uint_t     error;      /* NGX_ERROR at the end instead of 0 */
    ngx_uint_t     open;       /* NGX_AGAIN at the end: more may come */
} ngx_fuzz_stream_t;


/* what c->send_chain does */
typedef struct {
    size_t         budget;     /* bytes accepted per call; 0: all */
    ngx_uint_t     block;      /* accept nothing (NGX_AGAIN) */
    ngx_uint_t     fail;       /* NGX_CHAIN_ERROR */
    size_t         sent;
} ngx_fuzz_sink_t;


static ngx_log_t         ngx_fuzz_log;
static ngx_open_file_t   ngx_fuzz_log_file;
static ngx_cycle_t       ngx_fuzz_cycle;
static ngx_connection_t  ngx_fuzz_conns[NGX_FUZZ_CONNECTIONS];
static ngx_event_t       ngx_fuzz_revs[NGX_FUZZ_CONNECTIONS];
static ngx_event_t       ngx_fuzz_wevs[NGX_FUZZ_CONNECTIONS];


static void
ngx_fuzz_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "ngx_fuzz: invariant failed: %s\n", what);
        abort();
    }
}


/* event actions: nothing is registered anywhere */

static ngx_int_t
ngx_fuzz_event_op(ngx_event_t *ev, ngx_int_t event, ngx_uint_t flags)
{
    if (event == NGX_READ_EVENT || event == NGX_WRITE_EVENT) {
        ev->active = 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_fuzz_event_del(ngx_event_t *ev, ngx_int_t event, ngx_uint_t flags)
{
    ev->active = 0;
    return NGX_OK;
}


static ngx_int_t
ngx_fuzz_conn_op(ngx_connection_t *c)
{
    return NGX_OK;
}


static ngx_int_t
ngx_fuzz_conn_del(ngx_connection_t *c, ngx_uint_t flags)
{
    c->read->active = 0;
    c->write->active = 0;
    return NGX_OK;
}


static ngx_int_t
ngx_fuzz_notify(ngx_event_handler_pt handler)
{
    return NGX_OK;
}


static ngx_int_t
ngx_fuzz_process(ngx_cycle_t *cycle, ngx_msec_t timer, ngx_uint_t flags)
{
    return NGX_OK;
}


static ngx_int_t
ngx_fuzz_actions_init(ngx_cycle_t *cycle, ngx_msec_t timer)
{
    return NGX_OK;
}


static void
ngx_fuzz_actions_done(ngx_cycle_t *cycle)
{
}


/* c->recv over an ngx_fuzz_stream_t in c->data of the read event's owner */

static ngx_fuzz_stream_t  *ngx_fuzz_streams[NGX_FUZZ_CONNECTIONS];
static ngx_fuzz_sink_t    *ngx_fuzz_sinks[NGX_FUZZ_CONNECTIONS];


static ssize_t
ngx_fuzz_recv(ngx_connection_t *c, u_char *buf, size_t size)
{
    size_t              n;
    ngx_fuzz_stream_t  *s;

    s = ngx_fuzz_streams[c - ngx_fuzz_conns];

    if (s == NULL) {
        return NGX_AGAIN;
    }

    if (s->pos == s->end && s->open) {
        c->read->ready = 0;
        return NGX_AGAIN;
    }

    if (s->pos == s->end) {
        c->read->ready = 0;
        c->read->eof = 1;
        return s->error ? NGX_ERROR : 0;
    }

    if (s->again && s->again_next) {
        s->again_next = 0;
        c->read->ready = 0;
        return NGX_AGAIN;
    }

    s->again_next = 1;

    n = s->end - s->pos;

    if (s->chunk && n > s->chunk) {
        n = s->chunk;
    }

    if (n > size) {
        n = size;
    }

    ngx_memcpy(buf, s->pos, n);
    s->pos += n;

    return n;
}


static ssize_t
ngx_fuzz_send(ngx_connection_t *c, u_char *buf, size_t size)
{
    volatile u_char   sum;
    size_t            i;
    ngx_fuzz_sink_t  *k;

    k = ngx_fuzz_sinks[c - ngx_fuzz_conns];

    if (k && k->fail) {
        return NGX_ERROR;
    }

    if (k && k->block) {
        return NGX_AGAIN;
    }

    sum = 0;

    for (i = 0; i < size; i++) {
        sum += buf[i];       /* every byte sent is read: ASan checks it */
    }

    (void) sum;

    if (k) {
        k->sent += size;
    }

    return size;
}


static ngx_chain_t *
ngx_fuzz_send_chain(ngx_connection_t *c, ngx_chain_t *in, off_t limit)
{
    size_t            n, budget, size, i;
    volatile u_char   sum;
    ngx_fuzz_sink_t  *k;

    k = ngx_fuzz_sinks[c - ngx_fuzz_conns];

    if (k && k->fail) {
        return NGX_CHAIN_ERROR;
    }

    if (k && k->block) {
        c->write->ready = 0;
        return in;
    }

    budget = (k && k->budget) ? k->budget : (size_t) -1;
    sum = 0;

    for ( /* void */ ; in && budget; in = in->next) {

        if (ngx_buf_special(in->buf)) {
            continue;
        }

        size = ngx_buf_size(in->buf);
        n = ngx_min(size, budget);

        for (i = 0; i < n; i++) {
            sum += in->buf->pos[i];
        }

        in->buf->pos += n;
        budget -= n;

        if (k) {
            k->sent += n;
        }

        if (n < size) {
            break;
        }
    }

    (void) sum;

    if (in) {
        c->write->ready = 0;
    }

    return in;
}


/* a connection of the free list, with a /dev/null descriptor */
static ngx_connection_t *
ngx_fuzz_connection(ngx_fuzz_stream_t *in, ngx_fuzz_sink_t *out)
{
    ngx_socket_t       fd;
    ngx_connection_t  *c;

    fd = open("/dev/null", O_RDWR);
    ngx_fuzz_check(fd != -1, "open /dev/null");

    c = ngx_get_connection(fd, &ngx_fuzz_log);
    ngx_fuzz_check(c != NULL, "ngx_get_connection");

    c->log = &ngx_fuzz_log;
    c->read->log = &ngx_fuzz_log;
    c->write->log = &ngx_fuzz_log;
    c->recv = ngx_fuzz_recv;
    c->send = ngx_fuzz_send;
    c->send_chain = ngx_fuzz_send_chain;
    c->write->ready = 1;
    c->read->ready = 1;

    ngx_fuzz_streams[c - ngx_fuzz_conns] = in;
    ngx_fuzz_sinks[c - ngx_fuzz_conns] = out;

    return c;
}


/* every posted event, then every timer, as if the time ran out */
static void
ngx_fuzz_run_posted(void)
{
    ngx_uint_t  n;

    for (n = 0; n < 1000 && !ngx_queue_empty(&ngx_posted_events); n++) {
        ngx_event_process_posted((ngx_cycle_t *) ngx_cycle,
                                 &ngx_posted_events);
    }
}


static void
ngx_fuzz_expire_timers(void)
{
    ngx_uint_t  n;

    for (n = 0; n < 1000; n++) {
        if (ngx_event_timer_rbtree.root == ngx_event_timer_rbtree.sentinel) {
            break;
        }

        ngx_current_msec += 3600 * 1000;
        ngx_event_expire_timers();
        ngx_fuzz_run_posted();
    }
}


/* no timer, posted event or connection may outlive one input */
static void
ngx_fuzz_check_clean(void)
{
    ngx_uint_t  i;

    ngx_fuzz_check(ngx_event_timer_rbtree.root
                   == ngx_event_timer_rbtree.sentinel, "timer left set");
    ngx_fuzz_check(ngx_queue_empty(&ngx_posted_events),
                   "event left posted");

    for (i = 0; i < NGX_FUZZ_CONNECTIONS; i++) {
        ngx_fuzz_check(ngx_fuzz_conns[i].fd == (ngx_socket_t) -1,
                       "connection left open");
    }
}


static void
ngx_fuzz_init(void)
{
    ngx_uint_t        i;
    ngx_connection_t *next;

    static ngx_event_actions_t  actions = {
        ngx_fuzz_event_op, ngx_fuzz_event_del, ngx_fuzz_event_op,
        ngx_fuzz_event_del, ngx_fuzz_conn_op, ngx_fuzz_conn_del,
        ngx_fuzz_notify, ngx_fuzz_process, ngx_fuzz_actions_init,
        ngx_fuzz_actions_done
    };

    ngx_pagesize = getpagesize();
    for (i = ngx_pagesize, ngx_pagesize_shift = 0; i >>= 1;
         ngx_pagesize_shift++) { /* void */ }
    ngx_cacheline_size = NGX_CPU_CACHE_LINE;
    ngx_ncpu = 1;
    ngx_pid = getpid();
    ngx_process = NGX_PROCESS_WORKER;

    ngx_time_init();
    ngx_use_stderr = 0;      /* log lines go to /dev/null only */

    /* NGX_FUZZ_LOG=1: the log on stderr, to see what an input does */
    ngx_fuzz_log_file.fd = getenv("NGX_FUZZ_LOG") ? dup(2)
                                                  : open("/dev/null", O_WRONLY);
    ngx_fuzz_check(ngx_fuzz_log_file.fd != -1, "open /dev/null");
    ngx_str_set(&ngx_fuzz_log_file.name, "/dev/null");

    ngx_fuzz_log.file = &ngx_fuzz_log_file;
    ngx_fuzz_log.log_level = getenv("NGX_FUZZ_QUIET")
                             ? NGX_LOG_EMERG
                             : NGX_LOG_DEBUG_ALL | NGX_LOG_DEBUG;

    ngx_fuzz_cycle.log = &ngx_fuzz_log;
    ngx_fuzz_cycle.new_log.file = &ngx_fuzz_log_file;
    ngx_fuzz_cycle.pool = ngx_create_pool(16384, &ngx_fuzz_log);
    ngx_fuzz_check(ngx_fuzz_cycle.pool != NULL, "cycle pool");
    ngx_str_set(&ngx_fuzz_cycle.prefix, "/tmp/");
    ngx_str_set(&ngx_fuzz_cycle.conf_prefix, "/tmp/");

    /* the connection free list, as ngx_event_process_init() makes it */

    ngx_fuzz_cycle.connection_n = NGX_FUZZ_CONNECTIONS;
    ngx_fuzz_cycle.connections = ngx_fuzz_conns;
    ngx_fuzz_cycle.read_events = ngx_fuzz_revs;
    ngx_fuzz_cycle.write_events = ngx_fuzz_wevs;

    next = NULL;

    for (i = NGX_FUZZ_CONNECTIONS; i > 0; i--) {
        ngx_fuzz_revs[i - 1].closed = 1;
        ngx_fuzz_revs[i - 1].instance = 1;
        ngx_fuzz_wevs[i - 1].closed = 1;
        ngx_fuzz_conns[i - 1].data = next;
        ngx_fuzz_conns[i - 1].read = &ngx_fuzz_revs[i - 1];
        ngx_fuzz_conns[i - 1].write = &ngx_fuzz_wevs[i - 1];
        ngx_fuzz_conns[i - 1].fd = (ngx_socket_t) -1;
        next = &ngx_fuzz_conns[i - 1];
    }

    ngx_fuzz_cycle.free_connections = next;
    ngx_fuzz_cycle.free_connection_n = NGX_FUZZ_CONNECTIONS;
    ngx_queue_init(&ngx_fuzz_cycle.reusable_connections_queue);

    ngx_cycle = &ngx_fuzz_cycle;

    ngx_event_actions = actions;
    ngx_event_flags = NGX_USE_CLEAR_EVENT | NGX_USE_EPOLL_EVENT;

    (void) ngx_event_timer_init(&ngx_fuzz_log);
    ngx_queue_init(&ngx_posted_accept_events);
    ngx_queue_init(&ngx_posted_next_events);
    ngx_queue_init(&ngx_posted_events);

    ngx_current_msec = 1000000;
}


/* input splitting: records separated by "\n---\n" */

typedef struct {
    const u_char  *pos;
    const u_char  *end;
} ngx_fuzz_input_t;


static ngx_int_t
ngx_fuzz_next_record(ngx_fuzz_input_t *in, ngx_str_t *rec)
{
    const u_char  *p;

    if (in->pos == NULL || in->pos > in->end) {
        return NGX_DONE;
    }

    for (p = in->pos; p + 5 <= in->end; p++) {
        if (ngx_strncmp(p, "\n---\n", 5) == 0) {
            rec->data = (u_char *) in->pos;
            rec->len = p - in->pos;
            in->pos = p + 5;
            return NGX_OK;
        }
    }

    rec->data = (u_char *) in->pos;
    rec->len = in->end - in->pos;
    in->pos = in->end + 1;

    return NGX_OK;
}


/* a heap copy of exactly len bytes: reads past it are caught by ASan */
static u_char *
ngx_fuzz_copy(const u_char *data, size_t len)
{
    u_char  *p;

    p = malloc(len ? len : 1);
    ngx_fuzz_check(p != NULL, "malloc");

    if (len) {
        memcpy(p, data, len);
    }

    return p;
}


#endif /* _NGX_FUZZ_H_INCLUDED_ */
