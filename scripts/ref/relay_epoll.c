/* The floor for scripts/bench-proxy: a TCP relay with nothing but the system calls a
 * one-thread edge-triggered epoll relay needs (accept4, socket, connect, one recv and one
 * send per chunk, shutdown for a half-close, close; no EPOLL_CTL_DEL, no timers, no limits,
 * no logging). Not a lab component: it only shows how much of a relayed request's cost on
 * loopback is the kernel's, the same for every proxy.
 *
 *   relay_epoll LISTEN_PORT UPSTREAM_PORT [copy|splice [PROCS]]     (both on 127.0.0.1)
 *
 * PROCS (default 1) processes share the listener, each with its own epoll (as haproxy's
 * nbthread or netkit's --threads).
 *
 * Built by bench-proxy with `cc -O2` when a C compiler is there. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (64 * 1024)
#define SKIP ((void *)1)

struct dir {
    int src, dst;
    char *buf;
    int pipe[2];
    size_t off, len; /* bytes in buf (or the pipe) not yet sent */
    int eof, done;
};
struct conn {
    struct dir up, down;
    int fds[2];
    struct conn *self[2]; /* epoll data points here: &self[i] names side i */
};

static int use_splice;
static struct sockaddr_in upstream;

static void conn_close(struct conn *c) {
    close(c->fds[0]);
    close(c->fds[1]);
    if (c->up.pipe[0] >= 0) close(c->up.pipe[0]), close(c->up.pipe[1]);
    if (c->down.pipe[0] >= 0) close(c->down.pipe[0]), close(c->down.pipe[1]);
    free(c->up.buf);
    free(c->down.buf);
    free(c);
}

/* Moves src -> dst until EAGAIN on either side. Returns -1 on error, 1 when it stopped
 * after its bounded number of rounds with more to do (the caller re-arms the fds: with
 * edge-triggered epoll no new event would come for bytes already there). */
static int pump(struct dir *d, struct dir *other) {
    for (int round = 0; round < 64; round++) {
        if (d->len > 0) {
            ssize_t m = use_splice
                ? splice(d->pipe[0], NULL, d->dst, NULL, d->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                : send(d->dst, d->buf + d->off, d->len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (m < 0) return errno == EAGAIN ? 0 : -1;
            d->off += m, d->len -= m;
            if (d->len > 0) continue;
            d->off = 0;
        }
        if (d->eof) {
            if (!d->done) {
                d->done = 1;
                if (!other->done) shutdown(d->dst, SHUT_WR);
            }
            return 0;
        }
        ssize_t n = use_splice
            ? splice(d->src, NULL, d->pipe[1], NULL, 1 << 20, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
            : recv(d->src, d->buf, BUF, MSG_DONTWAIT);
        if (n < 0) return errno == EAGAIN ? 0 : -1;
        if (n == 0) d->eof = 1;
        d->len = n;
    }
    return 1;
}

static void dir_init(struct dir *d, int src, int dst) {
    d->src = src, d->dst = dst;
    d->pipe[0] = d->pipe[1] = -1;
    d->buf = NULL;
    if (use_splice) {
        if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) != 0) exit(1);
        fcntl(d->pipe[1], F_SETPIPE_SZ, 1 << 20);
    } else {
        d->buf = malloc(BUF);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    use_splice = argc > 3 && strcmp(argv[3], "splice") == 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    upstream = a;
    upstream.sin_port = htons(atoi(argv[2]));
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1024)) return perror("bind"), 1;
    for (int k = argc > 4 ? atoi(argv[4]) : 1; k > 1; k--)
        if (fork() == 0) {
            /* Dies with the parent (the bench kills only the pid it started). */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() == 1) return 0;
            break;
        }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                for (;;) {
                    int cfd = accept4(l, NULL, NULL, SOCK_NONBLOCK);
                    if (cfd < 0) break;
                    int ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                    if (ufd < 0 || (connect(ufd, (struct sockaddr *)&upstream, sizeof upstream) &&
                                    errno != EINPROGRESS)) {
                        close(cfd);
                        if (ufd >= 0) close(ufd);
                        continue;
                    }
                    struct conn *c = calloc(1, sizeof *c);
                    c->fds[0] = cfd, c->fds[1] = ufd;
                    c->self[0] = c->self[1] = c;
                    dir_init(&c->up, cfd, ufd);
                    dir_init(&c->down, ufd, cfd);
                    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
                    e.data.ptr = &c->self[0];
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &e);
                    e.data.ptr = &c->self[1];
                    epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &e);
                }
                continue;
            }
            if (evs[i].data.ptr == SKIP) continue; /* its connection closed earlier in this batch */
            struct conn *c = *(struct conn **)evs[i].data.ptr;
            int up = pump(&c->up, &c->down), down = up < 0 ? 0 : pump(&c->down, &c->up);
            if (up > 0 || down > 0) {
                /* EPOLL_CTL_MOD re-arms an edge-triggered fd: an event comes again if ready. */
                struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
                e.data.ptr = &c->self[0];
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fds[0], &e);
                e.data.ptr = &c->self[1];
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fds[1], &e);
            }
            if (up < 0 || down < 0 || (c->up.done && c->down.done)) {
                /* Later events of this batch for c must not touch freed memory. */
                for (int j = i + 1; j < n; j++)
                    if (evs[j].data.ptr == &c->self[0] || evs[j].data.ptr == &c->self[1])
                        evs[j].data.ptr = SKIP;
                conn_close(c);
            }
        }
    }
}
