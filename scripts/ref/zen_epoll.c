/* The floor for scripts/bench-lab: the zen server with nothing but the system calls a
 * one-thread epoll server needs (edge-triggered, one recv and one send per request, no
 * timers, no limits, no logging). Not a lab component: it answers as the book's
 * srv_async.py does (when the bytes so far end with '?') and is only here to show how much
 * of a request's cost on loopback is the kernel's, the same for every server.
 * Built by bench-lab with `cc -O2` when a C compiler is there. Listens on 127.0.0.1:PORT
 * (argv[1], 0 = any free port) and prints "Listening at 127.0.0.1:PORT". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 65536
#define MAXREQ 256

static char bufs[MAXFD][MAXREQ];
static int lens[MAXFD];

static const char *answer(const char *q, int n) {
    static const char *pairs[][2] = {{"Beautiful is better than?", "Ugly."},
                                     {"Explicit is better than?", "Implicit."},
                                     {"Simple is better than?", "Complex."}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if ((int)strlen(pairs[i][0]) == n && memcmp(q, pairs[i][0], n) == 0) return pairs[i][1];
    return "Error: unknown aphorism.";
}

int main(int argc, char **argv) {
    int one = 1, l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(argc > 1 ? atoi(argv[1]) : 1060)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) || bind(l, (void *)&a, sizeof a) ||
        listen(l, 1024) || getsockname(l, (void *)&a, &al)) {
        perror("zen_epoll: listen");
        return 2;
    }
    printf("Listening at 127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l}, evs[1024];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    char tmp[4096];
    for (;;) {
        int k = epoll_wait(ep, evs, 1024, -1);
        for (int j = 0; j < k; j++) {
            int fd = evs[j].data.fd;
            if (fd == l) {
                int c;
                while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAXFD) { close(c); continue; }
                    lens[c] = 0;
                    struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                }
                continue;
            }
            for (;;) {
                ssize_t r = recv(fd, tmp, sizeof tmp, 0);
                if (r < 0 && errno == EAGAIN) break;
                if (r <= 0) { close(fd); break; }
                for (ssize_t i = 0; i < r; i++) {
                    if (lens[fd] < MAXREQ) bufs[fd][lens[fd]++] = tmp[i];
                }
                if (bufs[fd][lens[fd] - 1] == '?') {
                    const char *ans = answer(bufs[fd], lens[fd]);
                    send(fd, ans, strlen(ans), MSG_NOSIGNAL);
                    lens[fd] = 0;
                } else if (lens[fd] == MAXREQ) {
                    lens[fd] = 0;
                }
                if (r < (ssize_t)sizeof tmp) break; /* a short read emptied the queue */
            }
        }
    }
}
