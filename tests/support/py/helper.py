"""Socket situations for netkit's explain tests (BIND-RULES.md rows), one mode per argv[1].

Every mode prints one line "READY <port> [more]" once the situation exists, then holds it
until killed (the tests kill the whole process group), unless it says it exits.
"""
import errno
import os
import socket
import sys
import time


def opts(argv):
    o = {"addr": "127.0.0.1", "port": 0, "ra": False, "rp": False, "v6only": None,
         "proto": "tcp", "ka": False, "sndbuf": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--addr":
            o["addr"] = argv[i + 1]; i += 1
        elif a == "--port":
            o["port"] = int(argv[i + 1]); i += 1
        elif a == "--v6only":
            o["v6only"] = int(argv[i + 1]); i += 1
        elif a == "--sndbuf":
            o["sndbuf"] = int(argv[i + 1]); i += 1
        elif a == "--ra":
            o["ra"] = True
        elif a == "--rp":
            o["rp"] = True
        elif a == "--udp":
            o["proto"] = "udp"
        elif a == "--ka":
            o["ka"] = True
        i += 1
    return o


def make(o):
    fam = socket.AF_INET6 if ":" in o["addr"] else socket.AF_INET
    typ = socket.SOCK_DGRAM if o["proto"] == "udp" else socket.SOCK_STREAM
    s = socket.socket(fam, typ)
    if o["ra"]:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if o["rp"]:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if fam == socket.AF_INET6 and o["v6only"] is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, o["v6only"])
    if o["ka"]:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
    if o["sndbuf"]:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, o["sndbuf"])
    return s


def bind(s, o):
    if ":" in o["addr"]:
        s.bind((o["addr"], o["port"], 0, 0))
    else:
        s.bind((o["addr"], o["port"]))


def ready(*more):
    print("READY", *more, flush=True)


def hold():
    while True:
        time.sleep(3600)


def main():
    mode, o = sys.argv[1], opts(sys.argv[2:])
    if mode == "check":
        # A real bind (+listen for TCP) with the options: prints OK or the errno name.
        s = make(o)
        try:
            bind(s, o)
            if o["proto"] == "tcp":
                s.listen(1)
            print("OK", flush=True)
        except OSError as e:
            print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
        return
    if mode in ("listen", "bound", "udp"):
        if mode == "udp":
            o["proto"] = "udp"
        s = make(o)
        bind(s, o)
        if mode == "listen":
            s.listen(16)
        ready(s.getsockname()[1])
        hold()
    if mode == "udpconn":
        # A UDP socket bound with the options and connected to a peer (rule U4).
        o["proto"] = "udp"
        s = make(o)
        bind(s, o)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        s.connect(peer.getsockname())
        ready(s.getsockname()[1])
        hold()
    if mode == "serve":
        # Listen and hold every accepted connection; say ACCEPTED for each (a test that
        # kills the server must know the connection left the accept queue, or the kernel
        # resets it instead of closing it).
        s = make(o)
        bind(s, o)
        s.listen(16)
        ready(s.getsockname()[1], os.getpid())
        conns = []
        while True:
            c, _ = s.accept()
            conns.append(c)
            print("ACCEPTED", flush=True)
    if mode == "orphan":
        # Accept one connection, close the listener, keep the connection (rule 8).
        s = make(o)
        bind(s, o)
        s.listen(16)
        ready(s.getsockname()[1])
        c, _ = s.accept()
        s.close()
        print("ACCEPTED", flush=True)
        hold()
    if mode == "client":
        # Connect to --addr:--port from an ephemeral port and hold the connection.
        fam = socket.AF_INET6 if ":" in o["addr"] else socket.AF_INET
        c = socket.socket(fam, socket.SOCK_STREAM)
        c.connect((o["addr"], o["port"]))
        ready(c.getsockname()[1])
        hold()
    if mode == "timewait":
        # Server-side TIME_WAIT: the accepted socket closes first (rules 7, 7a, 7b). Exits.
        s = make(o)
        bind(s, o)
        s.listen(16)
        port = s.getsockname()[1]
        caddr = "::1" if ":" in o["addr"] else "127.0.0.1"
        if o["addr"] not in ("0.0.0.0", "::"):
            caddr = o["addr"]
        c = socket.create_connection((caddr, port))
        a, _ = s.accept()
        a.close()
        c.recv(1)
        c.close()
        s.close()
        time.sleep(0.05)
        ready(port)
        return
    if mode == "inherit":
        # The listener is inherited by a forked child; the parent closes its copy (rule 10).
        s = make(o)
        bind(s, o)
        s.listen(16)
        port = s.getsockname()[1]
        pid = os.fork()
        if pid == 0:
            hold()
        s.close()
        ready(port, pid)
        hold()
    if mode == "listen_tw":
        # A live listener that accepted 3 connections and closed them first: 3 server-side
        # TIME_WAITs next to it (issue 8, defect 2; the README's example).
        s = make(o)
        bind(s, o)
        s.listen(16)
        port = s.getsockname()[1]
        caddr = "::1" if ":" in o["addr"] else "127.0.0.1"
        if o["addr"] not in ("0.0.0.0", "::"):
            caddr = o["addr"]
        for _ in range(3):
            c = socket.create_connection((caddr, port))
            a, _ = s.accept()
            a.close()
            c.recv(1)
            c.close()
        time.sleep(0.05)
        ready(port)
        hold()
    if mode == "fork_keep":
        # The listener is shared with a forked child; both keep their copy (rule 10).
        s = make(o)
        bind(s, o)
        s.listen(16)
        port = s.getsockname()[1]
        pid = os.fork()
        if pid == 0:
            hold()
        ready(port, pid)
        hold()
    if mode == "spawn_own":
        # The same program started by itself (an autoreloader): the child opens its OWN
        # listener; the parent holds no socket (issue 8, defect 3).
        import subprocess
        args = [sys.executable, os.path.abspath(__file__), "listen"] + sys.argv[2:]
        child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline().split()
        ready(line[1], child.pid)
        hold()
    raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
