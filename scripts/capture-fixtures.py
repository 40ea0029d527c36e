#!/usr/bin/env python3
"""Capture the parser fixtures in fixtures/proc_net/ and fixtures/sock_diag/ (see fixtures/README.md).

Each situation runs in its own fresh network namespace (`unshare -n`, so root is needed), which
holds only the sockets the situation makes: the captures are small and every row is explained.
For each situation the script writes, at the same moment:
  fixtures/proc_net/{tcp,tcp6,udp,udp6}/<situation>.txt   the table text, byte for byte
  fixtures/proc_net/{sockstat,sockstat6}/<situation>.txt   the socket counters (alloc is global)
  fixtures/sock_diag/<situation>_{tcp,tcp6,udp,udp6}.hex  raw SOCK_DIAG_BY_FAMILY dump replies,
                                                           one netlink datagram per hex line
Empty tables/dumps are not written. Fixed ports are fine here: the namespace is private.

Usage: sudo scripts/capture-fixtures.py [SITUATION ...]   (default: all)
"""

import os
import socket
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST_DUMP = 0x301
NLMSG_ERROR, NLMSG_DONE = 2, 3
IPPROTO_TCP, IPPROTO_UDP = 6, 17
# All TCP states including bit 13 (TCP_BOUND_INACTIVE, Linux >= 6.8): bound-only sockets.
ALL_STATES = 0xFFFFFFFF


def diag_dump(family, proto):
    """One sock_diag dump; returns the raw datagrams as received."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    s.bind((0, 0))
    # struct inet_diag_req_v2 with an all-zero inet_diag_sockid (48 bytes): no filter.
    req = struct.pack("=BBBxI", family, proto, 0, ALL_STATES) + bytes(48)
    s.send(struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST_DUMP, 1, 0) + req)
    grams = []
    while True:
        d = s.recv(65536)
        grams.append(d)
        off, done = 0, False
        while off + 16 <= len(d):
            ln, typ = struct.unpack_from("=IH", d, off)
            done |= typ in (NLMSG_ERROR, NLMSG_DONE)
            off += (ln + 3) & ~3
        if done:
            break
    s.close()
    return grams


def count_msgs(grams):
    n = 0
    for d in grams:
        off = 0
        while off + 16 <= len(d):
            ln, typ = struct.unpack_from("=IH", d, off)
            n += typ == SOCK_DIAG_BY_FAMILY
            off += (ln + 3) & ~3
    return n


def capture(name, describe):
    tables = {}
    for t in ("tcp", "tcp6", "udp", "udp6", "sockstat", "sockstat6"):
        with open(f"/proc/net/{t}") as f:
            tables[t] = f.read()
    dumps = {
        "tcp": diag_dump(socket.AF_INET, IPPROTO_TCP),
        "tcp6": diag_dump(socket.AF_INET6, IPPROTO_TCP),
        "udp": diag_dump(socket.AF_INET, IPPROTO_UDP),
        "udp6": diag_dump(socket.AF_INET6, IPPROTO_UDP),
    }
    kernel = os.uname().release
    for t, text in tables.items():
        if text.count("\n") > 1 or t.startswith("sockstat"):
            d = os.path.join(ROOT, "fixtures", "proc_net", t)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"{name}.txt"), "w") as f:
                f.write(text)
    for t, grams in dumps.items():
        if count_msgs(grams):
            d = os.path.join(ROOT, "fixtures", "sock_diag")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"{name}_{t}.hex"), "w") as f:
                f.write(f"# {name}: {describe}\n")
                f.write(f"# kernel {kernel}; SOCK_DIAG_BY_FAMILY dump, idiag_states=0xffffffff; one datagram per line\n")
                for g in grams:
                    f.write(g.hex() + "\n")
    print(f"captured {name}")


def tcp_listen(family, addr, port, v6only=None, backlog=128):
    s = socket.socket(family, socket.SOCK_STREAM)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    s.bind((addr, port))
    s.listen(backlog)
    return s


def connect(family, addr, port):
    c = socket.socket(family, socket.SOCK_STREAM)
    c.connect((addr, port))
    return c


def settle():
    # Loopback handshakes and FIN/ACK exchanges finish in well under a millisecond.
    time.sleep(0.2)


def child_listener_as_nobody(addr, port):
    """Forks a child that drops to uid 65534 and listens; returns (pid, pipe write end)."""
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.setgid(65534)
        os.setuid(65534)
        s = tcp_listen(socket.AF_INET, addr, port)
        os.write(ready_w, b"x")
        os.read(r, 1)
        s.close()
        os._exit(0)
    os.close(r)
    os.read(ready_r, 1)
    return pid, w


def situation_listen_6000():
    keep = [
        tcp_listen(socket.AF_INET, "127.0.0.1", 6000),
        tcp_listen(socket.AF_INET6, "::1", 6000, v6only=True),
        tcp_listen(socket.AF_INET6, "::", 6001, v6only=False, backlog=5),
        tcp_listen(socket.AF_INET, "0.0.0.0", 6002),
    ]
    pid, w = child_listener_as_nobody("127.0.0.1", 6005)
    capture("listen_6000", "LISTEN 127.0.0.1:6000 (root, backlog 128), [::1]:6000 v6only, "
            "[::]:6001 dual-stack backlog 5, 0.0.0.0:6002, 127.0.0.1:6005 owned by uid 65534")
    os.close(w)
    os.waitpid(pid, 0)
    del keep


def situation_timewait():
    l4 = tcp_listen(socket.AF_INET, "127.0.0.1", 6000)
    l6 = tcp_listen(socket.AF_INET6, "::1", 6000, v6only=True)
    for lst, fam, addr in ((l4, socket.AF_INET, "127.0.0.1"), (l6, socket.AF_INET6, "::1")):
        for _ in range(2):
            c = connect(fam, addr, 6000)
            conn, _ = lst.accept()
            conn.close()  # the server closes first: the TIME_WAIT lands on the server side
            settle()
            c.close()
    settle()
    capture("timewait", "LISTEN 127.0.0.1:6000 and [::1]:6000, each with two server-side "
            "TIME_WAIT entries (server closed first), captured ~0.2-0.6 s after the close")
    del l4, l6


def situation_v4_mapped():
    l = tcp_listen(socket.AF_INET6, "::", 6000, v6only=False)
    c = connect(socket.AF_INET, "127.0.0.1", 6000)
    conn, _ = l.accept()
    c2 = connect(socket.AF_INET, "127.0.0.1", 6000)
    conn2, _ = l.accept()
    conn2.close()
    settle()
    c2.close()
    settle()
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    u.bind(("::", 5353))
    u.connect(("::ffff:127.0.0.1", 5354))
    capture("v4_mapped", "dual-stack LISTEN [::]:6000 with an IPv4 client: ESTABLISHED "
            "::ffff:127.0.0.1:6000 in tcp6 (client 127.0.0.1 in tcp), a TIME_WAIT on "
            "::ffff:127.0.0.1:6000; UDP [::]:5353 dual-stack connected to ::ffff:127.0.0.1:5354")
    del l, c, conn, u


def situation_fin_wait2_orphan():
    l = tcp_listen(socket.AF_INET, "127.0.0.1", 6000)
    c = connect(socket.AF_INET, "127.0.0.1", 6000)
    conn, _ = l.accept()
    l.close()
    conn.close()  # orphaned, FIN acked by the client (CLOSE_WAIT) -> FIN_WAIT2 timewait sock
    settle()
    capture("fin_wait2_orphan", "server closed its listener and its connection while the "
            "client 127.0.0.1 stays open: orphan FIN_WAIT2 on 127.0.0.1:6000 (uid/inode 0), "
            "client in CLOSE_WAIT")
    del c


def situation_bound_only():
    b4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    b4.bind(("127.0.0.1", 6003))
    b6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    b6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    b6.bind(("::1", 6003))
    l = tcp_listen(socket.AF_INET, "127.0.0.1", 6004)
    capture("bound_only", "TCP 127.0.0.1:6003 and [::1]:6003 bound, never listened (only "
            "sock_diag bit 13 shows them, as state 7); LISTEN 127.0.0.1:6004 for contrast")
    del b4, b6, l


def situation_udp():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 5353))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(("127.0.0.1", 5354))
    b.connect(("127.0.0.1", 5353))
    w = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    w.bind(("0.0.0.0", 5355))
    six = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    six.bind(("::1", 5353))
    auto = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    auto.sendto(b"x", ("127.0.0.1", 5353))  # autobound to an ephemeral port, still unconnected
    capture("udp", "UDP 127.0.0.1:5353 bound (UNCONN, with one queued datagram), 127.0.0.1:5354 "
            "connected to :5353 (ESTABLISHED), 0.0.0.0:5355, [::1]:5353 v6only, and an "
            "autobound sender on an ephemeral port")
    del a, b, w, six, auto


SITUATIONS = {
    "listen_6000": situation_listen_6000,
    "timewait": situation_timewait,
    "v4_mapped": situation_v4_mapped,
    "fin_wait2_orphan": situation_fin_wait2_orphan,
    "bound_only": situation_bound_only,
    "udp": situation_udp,
}


def main():
    names = sys.argv[1:] or list(SITUATIONS)
    if os.environ.get("NETKIT_CAPTURE_IN_NETNS") != "1":
        for n in names:
            env = dict(os.environ, NETKIT_CAPTURE_IN_NETNS="1")
            subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__), n], env=env, check=True)
        return
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for n in names:
        SITUATIONS[n]()


if __name__ == "__main__":
    main()
