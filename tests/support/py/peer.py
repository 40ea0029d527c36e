"""The other party of netkit's audit tests (often run as `nobody` through setpriv): it does
what the finding says another program could do, and prints what the kernel let it do.

  udp-recv ADDR PORT N   bind UDP ADDR:PORT with SO_REUSEADDR, print READY, count datagrams
                         (up to N; 30 s for the first, then 3 s of silence ends it), print "GOT <count>"
  tcp-take PORT          bind TCP 127.0.0.1:PORT with SO_REUSEADDR and listen(): "OK" or errno
  rp-listen PORT         listen on 127.0.0.1:PORT with SO_REUSEPORT, print READY, then
                         "ACCEPT" per connection
  hold                   listen on 127.0.0.1:0, print "READY <port>", accept and never close
                         (prints "ACCEPTED <n>" after each)
  client PORT            connect to 127.0.0.1:PORT, print "READY <local port>", hold until
                         a stdin line
  timewait N             make N server-side TIME_WAITs on a port (the server closes first),
                         close the listener, print "READY <port>"; on a stdin line, bind()
                         and listen() there without SO_REUSEADDR: "OK" or the errno name
  fill PORT N            listen on 127.0.0.1:PORT, connect N clients to it, print READY; on
                         a stdin line, connect until connect() fails: "ERR <errno> after <k>"
"""
import errno
import socket
import sys


def err_name(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def main():
    mode = sys.argv[1]
    if mode == "udp-recv":
        addr, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
        except OSError as e:
            print("ERR", err_name(e), flush=True)
            return
        print("READY", flush=True)
        # Up to 30 s for the first datagram (the test may run an audit first), then 3 s of
        # silence ends the count.
        s.settimeout(30)
        got = 0
        try:
            while got < n:
                s.recv(100)
                got += 1
                s.settimeout(3)
        except socket.timeout:
            pass
        print("GOT", got, flush=True)
    elif mode == "tcp-take":
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", int(sys.argv[2])))
            s.listen(4)
            print("OK", flush=True)
        except OSError as e:
            print(err_name(e), flush=True)
        sys.stdin.readline()
    elif mode == "rp-listen":
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", int(sys.argv[2])))
        s.listen(64)
        print("READY", flush=True)
        while True:
            c, _ = s.accept()
            c.close()
            print("ACCEPT", flush=True)
    elif mode == "hold":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        print("READY", s.getsockname()[1], flush=True)
        held = []
        while True:
            c, _ = s.accept()
            held.append(c)
            print("ACCEPTED", len(held), flush=True)
    elif mode == "client":
        c = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
        print("READY", c.getsockname()[1], flush=True)
        sys.stdin.readline()
    elif mode == "fill":
        port, n = int(sys.argv[2]), int(sys.argv[3])
        l = socket.socket()
        l.bind(("127.0.0.1", port))
        l.listen(128)
        held = []
        for _ in range(n):
            held.append(socket.create_connection(("127.0.0.1", port)))
        print("READY", flush=True)
        sys.stdin.readline()
        k = 0
        while k < 100000:
            try:
                held.append(socket.create_connection(("127.0.0.1", port)))
                k += 1
            except OSError as e:
                print("ERR", err_name(e), "after", k, flush=True)
                break
        sys.stdin.readline()
    elif mode == "timewait":
        n = int(sys.argv[2])
        l = socket.socket()
        l.bind(("127.0.0.1", 0))
        l.listen(128)
        port = l.getsockname()[1]
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", port))
            a, _ = l.accept()
            a.close()
            c.recv(1)
            c.close()
        l.close()
        print("READY", port, flush=True)
        sys.stdin.readline()
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port))
            t.listen(1)
            print("OK", flush=True)
        except OSError as e:
            print(err_name(e), flush=True)
    else:
        raise SystemExit("unknown mode " + mode)


main()
