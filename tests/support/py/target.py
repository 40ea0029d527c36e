"""A TCP server for netkit's live re-tune tests: the *inside* view.

argv: [--keepalive IDLE] [--user-timeout MS] [--linger S] (set on the listener; accepted
connections inherit them). Listens on 127.0.0.1:0, prints "READY <port> <pid>", accepts and
holds connections. Commands on stdin, one per line:
  dump   -> one JSON line: the options its own sockets report through getsockopt
  close  -> closes every accepted connection, then prints "CLOSED"
  send P -> sends one byte on the connection from peer port P, then prints "SENT"
  burst P N SIZE -> N send() calls of SIZE bytes each, back to back, on the connection from
            peer port P, then prints "BURST <microseconds the N calls took>"
A connection the kernel drops prints "DROPPED <peer port> <errno name>".
"""
import errno
import json
import os
import select
import socket
import struct
import sys
import time


def opts(s):
    g = lambda lvl, opt: s.getsockopt(lvl, opt)
    on, secs = struct.unpack("ii", s.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
    return {
        "keepalive": bool(g(socket.SOL_SOCKET, socket.SO_KEEPALIVE)),
        "keepidle": g(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        "keepintvl": g(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        "keepcnt": g(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        "sndbuf": g(socket.SOL_SOCKET, socket.SO_SNDBUF),
        "rcvbuf": g(socket.SOL_SOCKET, socket.SO_RCVBUF),
        "nodelay": bool(g(socket.IPPROTO_TCP, socket.TCP_NODELAY)),
        "user_timeout": g(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        "linger": secs if on else None,
    }


def main():
    l = socket.socket()
    if "--keepalive" in sys.argv:
        idle = int(sys.argv[sys.argv.index("--keepalive") + 1])
        l.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        l.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    if "--user-timeout" in sys.argv:
        ms = int(sys.argv[sys.argv.index("--user-timeout") + 1])
        l.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, ms)
    if "--linger" in sys.argv:
        secs = int(sys.argv[sys.argv.index("--linger") + 1])
        l.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, secs))
    l.bind(("127.0.0.1", 0))
    l.listen(16)
    print("READY", l.getsockname()[1], os.getpid(), flush=True)
    conns = []
    peers = {}
    while True:
        r, _, _ = select.select([l, sys.stdin] + conns, [], [], 30)
        for s in r:
            if s is l:
                c, peer = l.accept()
                conns.append(c)
                peers[c] = peer[1]
            elif s is sys.stdin:
                cmd = sys.stdin.readline().strip()
                if cmd == "":
                    return
                if cmd == "dump":
                    out = {"listener": opts(l),
                           "conns": [dict(opts(c), peer_port=peers[c]) for c in conns]}
                    print(json.dumps(out), flush=True)
                elif cmd.startswith("send "):
                    for c in conns:
                        if peers[c] == int(cmd.split()[1]):
                            c.send(b"x")
                    print("SENT", flush=True)
                elif cmd.startswith("burst "):
                    _, p, n, size = cmd.split()
                    c = next(c for c in conns if peers[c] == int(p))
                    data = b"x" * int(size)
                    t0 = time.monotonic_ns()
                    for _ in range(int(n)):
                        c.send(data)
                    took = (time.monotonic_ns() - t0) // 1000
                    print("BURST", took, flush=True)
                elif cmd == "close":
                    for c in conns:
                        c.close()
                    conns = []
                    print("CLOSED", flush=True)
            else:
                try:
                    data = s.recv(4096)
                except OSError as e:
                    # The kernel dropped the connection (keepalive or user timeout).
                    print("DROPPED", peers[s], errno.errorcode.get(e.errno, e.errno), flush=True)
                    data = b""
                if not data:
                    s.close()
                    conns.remove(s)


main()
