/*
 * reverse-mcp-bridge: the child process (the wrapped stdio MCP server).
 *
 * Owns: spawning the command (posix_spawnp, in its own process group, with
 * default signal dispositions and an empty signal mask, stdin/stdout/stderr
 * on pipes whose other ends are ours and non-blocking), reading its stdout
 * into newline-delimited lines with the --max-message limit (an overlong
 * line is dropped up to its newline without being buffered), passing its
 * stderr through to our log line by line, writing to its stdin, and
 * terminating it (stdin closed and SIGTERM to the group, SIGKILL later).
 *
 * Reaping (waitpid) and the decisions (restart, exit) are the event loop's.
 */


#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bridge.h"


#define RMB_CHILD_READ    65536
#define RMB_STDERR_LINE   2048


extern char  **environ;


static int
rmb_nonblock(int fd)
{
    int  flags;

    flags = fcntl(fd, F_GETFL);

    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
        rmb_log(RMB_LOG_ERR, "fcntl(O_NONBLOCK) failed: %s",
                strerror(errno));
        return RMB_ERROR;
    }

    return RMB_OK;
}


static void
rmb_close_pair(int fds[2])
{
    if (fds[0] != -1) {
        (void) close(fds[0]);
        fds[0] = -1;
    }

    if (fds[1] != -1) {
        (void) close(fds[1]);
        fds[1] = -1;
    }
}


/*
 * Returns the child, or NULL: *exec_errno is then the errno of the exec
 * (the command could not be run) or 0 (a failure on our side, logged)
 */

rmb_child_t *
rmb_child_spawn(char **argv, int *exec_errno)
{
    int                          rc, in[2], out[2], err[2];
    pid_t                        pid;
    sigset_t                     all, none;
    rmb_child_t                 *c;
    posix_spawnattr_t            attr;
    posix_spawn_file_actions_t   fa;

    *exec_errno = 0;

    in[0] = in[1] = out[0] = out[1] = err[0] = err[1] = -1;

    if (pipe2(in, O_CLOEXEC) != 0
        || pipe2(out, O_CLOEXEC) != 0
        || pipe2(err, O_CLOEXEC) != 0)
    {
        rmb_log(RMB_LOG_ERR, "pipe2() failed: %s", strerror(errno));
        goto failed;
    }

    rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0) {
        rmb_log(RMB_LOG_ERR, "posix_spawn_file_actions_init() failed: %s",
                strerror(rc));
        goto failed;
    }

    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        rmb_log(RMB_LOG_ERR, "posix_spawnattr_init() failed: %s",
                strerror(rc));
        (void) posix_spawn_file_actions_destroy(&fa);
        goto failed;
    }

    /* fds 0, 1 and 2 are open in the bridge, so the pipes are above them */

    (void) sigfillset(&all);
    (void) sigemptyset(&none);

    if ((rc = posix_spawn_file_actions_adddup2(&fa, in[0], 0)) != 0
        || (rc = posix_spawn_file_actions_adddup2(&fa, out[1], 1)) != 0
        || (rc = posix_spawn_file_actions_adddup2(&fa, err[1], 2)) != 0
        || (rc = posix_spawnattr_setflags(&attr,
                                          POSIX_SPAWN_SETPGROUP
                                          | POSIX_SPAWN_SETSIGDEF
                                          | POSIX_SPAWN_SETSIGMASK)) != 0
        || (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0
        || (rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0
        || (rc = posix_spawnattr_setsigmask(&attr, &none)) != 0)
    {
        rmb_log(RMB_LOG_ERR, "posix_spawn setup failed: %s", strerror(rc));
        (void) posix_spawn_file_actions_destroy(&fa);
        (void) posix_spawnattr_destroy(&attr);
        goto failed;
    }

    rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);

    (void) posix_spawn_file_actions_destroy(&fa);
    (void) posix_spawnattr_destroy(&attr);

    if (rc != 0) {
        *exec_errno = rc;
        goto failed;
    }

    (void) close(in[0]);
    (void) close(out[1]);
    (void) close(err[1]);

    c = calloc(1, sizeof(rmb_child_t));

    if (c == NULL
        || rmb_nonblock(in[1]) != RMB_OK
        || rmb_nonblock(out[0]) != RMB_OK
        || rmb_nonblock(err[0]) != RMB_OK)
    {
        if (c == NULL) {
            rmb_log(RMB_LOG_ERR, "out of memory");
        }

        (void) close(in[1]);
        (void) close(out[0]);
        (void) close(err[0]);
        free(c);

        (void) kill(-pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);

        return NULL;
    }

    c->pid = pid;
    c->in_fd = in[1];
    c->out_fd = out[0];
    c->err_fd = err[0];
    c->started = rmb_now();

    return c;

failed:

    rmb_close_pair(in);
    rmb_close_pair(out);
    rmb_close_pair(err);

    return NULL;
}


/*
 * Reads one chunk of stdout.  Returns the bytes read, 0 at end of file,
 * RMB_AGAIN or RMB_ERROR.  A line longer than max_message is dropped as it
 * arrives (logged once, with its first bytes); only its first
 * max_message + one chunk of bytes are ever held.
 */

ssize_t
rmb_child_read_stdout(rmb_child_t *c, size_t max_message)
{
    char     quote[RMB_QUOTE * 4 + 8];
    size_t   len, skip;
    ssize_t  n;
    u_char  *p, *nl;

    if (c->out_fd == -1) {
        return 0;
    }

    if (rmb_buf_reserve(&c->out, RMB_CHILD_READ) != RMB_OK) {
        return RMB_ERROR;
    }

    do {
        n = read(c->out_fd, c->out.data + c->out.last, RMB_CHILD_READ);
    } while (n < 0 && errno == EINTR);

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return RMB_AGAIN;
        }

        rmb_log(RMB_LOG_ERR, "read() from the stdout of child %d failed: %s",
                (int) c->pid, strerror(errno));
        return RMB_ERROR;
    }

    if (n == 0) {
        return 0;
    }

    p = c->out.data + c->out.last;
    c->out.last += (size_t) n;

    if (c->discard) {
        /* the buffer held nothing else: the overlong line emptied it */

        nl = memchr(p, '\n', (size_t) n);

        if (nl == NULL) {
            c->discarded += (size_t) n;
            c->out.last -= (size_t) n;
            return n;
        }

        skip = (size_t) (nl - p) + 1;
        c->discarded += skip - 1;
        c->discard = 0;

        rmb_log(RMB_LOG_WARN, "child %d: dropped a line of %zu bytes",
                (int) c->pid, c->discarded);

        memmove(p, p + skip, (size_t) n - skip);
        c->out.last -= skip;
        c->scan = 0;
    }

    len = rmb_buf_len(&c->out);

    if (memchr(rmb_buf_start(&c->out) + c->scan, '\n', len - c->scan)
        != NULL)
    {
        return n;
    }

    c->scan = len;

    if (len > max_message) {
        (void) rmb_quote(quote, sizeof(quote), rmb_buf_start(&c->out), len,
                         RMB_QUOTE);

        rmb_log(RMB_LOG_ERR, "child %d wrote a line longer than "
                "--max-message (%zu bytes), dropped, not forwarded: \"%s\"",
                (int) c->pid, max_message, quote);

        c->discard = 1;
        c->discarded = len;
        c->scan = 0;
        rmb_buf_reset(&c->out);
    }

    return n;
}


/* the next complete stdout line, without its '\n': 1, or 0 if none */

int
rmb_child_line(rmb_child_t *c, u_char **line, size_t *len)
{
    size_t   n;
    u_char  *start, *nl;

    n = rmb_buf_len(&c->out);

    if (n == c->scan) {
        return 0;
    }

    start = rmb_buf_start(&c->out);
    nl = memchr(start + c->scan, '\n', n - c->scan);

    if (nl == NULL) {
        c->scan = n;
        return 0;
    }

    *line = start;
    *len = (size_t) (nl - start);

    return 1;
}


void
rmb_child_line_done(rmb_child_t *c, size_t len)
{
    rmb_buf_consume(&c->out, len + 1);
    c->scan = 0;
}


static void
rmb_child_stderr_line(rmb_child_t *c, const u_char *p, size_t len)
{
    char  tag[32];

    if (len && p[len - 1] == '\r') {
        len--;
    }

    (void) snprintf(tag, sizeof(tag), "child %d", (int) c->pid);

    rmb_log_raw(tag, p, len);
}


/*
 * Reads what stderr has and logs it line by line.  Returns RMB_AGAIN when
 * drained, 0 at end of file (the fd is then closed; a partial last line is
 * logged), RMB_ERROR.
 */

int
rmb_child_read_stderr(rmb_child_t *c)
{
    size_t    len;
    ssize_t   n;
    u_char   *p, *nl;

    while (c->err_fd != -1) {

        if (rmb_buf_reserve(&c->err, RMB_STDERR_LINE) != RMB_OK) {
            return RMB_ERROR;
        }

        do {
            n = read(c->err_fd, c->err.data + c->err.last,
                     c->err.cap - c->err.last);
        } while (n < 0 && errno == EINTR);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return RMB_AGAIN;
        }

        if (n <= 0) {
            if (n < 0) {
                rmb_log(RMB_LOG_ERR, "read() from the stderr of child %d "
                        "failed: %s", (int) c->pid, strerror(errno));
            }

            if (rmb_buf_len(&c->err)) {
                rmb_child_stderr_line(c, rmb_buf_start(&c->err),
                                      rmb_buf_len(&c->err));
            }

            rmb_buf_free(&c->err);
            (void) close(c->err_fd);
            c->err_fd = -1;

            return n == 0 ? 0 : RMB_ERROR;
        }

        c->err.last += (size_t) n;

        for ( ;; ) {
            p = rmb_buf_start(&c->err);
            len = rmb_buf_len(&c->err);

            nl = memchr(p, '\n', len);

            if (nl == NULL) {
                if (len >= RMB_STDERR_LINE) {
                    rmb_child_stderr_line(c, p, len);
                    rmb_buf_consume(&c->err, len);
                }

                break;
            }

            rmb_child_stderr_line(c, p, (size_t) (nl - p));
            rmb_buf_consume(&c->err, (size_t) (nl - p) + 1);
        }
    }

    return 0;
}


/* returns bytes written, RMB_AGAIN, or RMB_ERROR (errno set) */

ssize_t
rmb_child_write(rmb_child_t *c, const u_char *p, size_t len)
{
    ssize_t  n;

    if (c->in_fd == -1) {
        errno = EPIPE;
        return RMB_ERROR;
    }

    do {
        n = write(c->in_fd, p, len);
    } while (n < 0 && errno == EINTR);

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return RMB_AGAIN;
        }

        return RMB_ERROR;
    }

    if (n > 0) {
        c->dirty = 1;
    }

    return n;
}


/* stdin and stdout closed; stderr stays open for the last words */

void
rmb_child_close_io(rmb_child_t *c)
{
    if (c->in_fd != -1) {
        (void) close(c->in_fd);
        c->in_fd = -1;
    }

    if (c->out_fd != -1) {
        (void) close(c->out_fd);
        c->out_fd = -1;
    }

    rmb_buf_free(&c->out);
    c->scan = 0;
    c->discard = 0;
}


/*
 * Asks the child (and what it started: its process group) to end: stdin
 * closed (what the MCP stdio transport asks for) and SIGTERM; SIGKILL is
 * due at kill_at.  After the child itself was reaped, only what is left
 * of its group gets the signals.
 */

void
rmb_child_terminate(rmb_child_t *c, rmb_msec_t grace)
{
    rmb_child_close_io(c);

    if (kill(-c->pid, SIGTERM) != 0 && errno != ESRCH) {
        rmb_log(RMB_LOG_WARN, "kill(-%d, SIGTERM) failed: %s",
                (int) c->pid, strerror(errno));
    }

    c->group_kill = 1;
    c->kill_at = rmb_now() + grace;
}


void
rmb_child_kill(rmb_child_t *c)
{
    if (kill(-c->pid, SIGKILL) != 0 && errno != ESRCH) {
        rmb_log(RMB_LOG_WARN, "kill(-%d, SIGKILL) failed: %s",
                (int) c->pid, strerror(errno));
    }

    c->group_kill = 0;
}


void
rmb_child_free(rmb_child_t *c)
{
    rmb_child_close_io(c);

    if (c->err_fd != -1) {
        (void) close(c->err_fd);
    }

    rmb_buf_free(&c->err);
    free(c);
}


const char *
rmb_child_status(int status, char *buf, size_t size)
{
    if (WIFEXITED(status)) {
        (void) snprintf(buf, size, "exited with status %d",
                        WEXITSTATUS(status));

    } else if (WIFSIGNALED(status)) {
        (void) snprintf(buf, size, "was killed by signal %d (%s)%s",
                        WTERMSIG(status), strsignal(WTERMSIG(status)),
                        WCOREDUMP(status) ? ", core dumped" : "");

    } else {
        (void) snprintf(buf, size, "ended with wait status %d", status);
    }

    return buf;
}
