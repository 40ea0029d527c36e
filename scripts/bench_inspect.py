#!/usr/bin/env python3
"""Benchmark netkit's socket inventory against ss on a loopback socket population.

Run through scripts/bench-inspect (which builds the release binary and raises limits).
Population at --scale 1 (issue 2): 5,000 LISTEN sockets over 500 processes, 10,000
established pairs, 40,000 TIME_WAIT (server side, clients on 127.0.0.2-9 with explicit
ports so every 4-tuple is distinct), 1,000 UDP sockets. TIME_WAIT lasts 60 s, so it is made
last, just before measuring, and counted again after the last measurement.

Every measurement runs netkit and its ss counterpart alternately (one warm-up each, then
--runs timed runs) and prints medians and the ratio netkit/ss. Peak RSS is measured with GNU
time (/usr/bin/time -f %M). Everything started here is killed on exit (children are in one list
and are also tied to a pipe that closes when this process dies).
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

CHILDREN = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def hold_forever(release_fd):
    """Blocks until the parent closes its end of the pipe (or dies), then exits."""
    try:
        os.read(release_fd, 1)
    finally:
        os._exit(0)


def fork_holder(make):
    """Forks a child that runs make() (which opens sockets) and then holds them.

    Returns (pid, result sent back by the child as one text line)."""
    release_r, release_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(release_w)
        os.close(ready_r)
        # Drop the write ends of earlier siblings' pipes, so each child sees EOF as soon as
        # the parent dies, not when the last sibling does.
        for _, w in CHILDREN:
            os.close(w)
        try:
            keep, info = make()
            os.write(ready_w, (info + "\n").encode())
        except Exception as e:  # report and exit: the parent sees an error line
            os.write(ready_w, f"error {e}\n".encode())
            os._exit(1)
        hold_forever(release_r)
    os.close(release_r)
    os.close(ready_w)
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(ready_r, 4096)
        if not chunk:
            break
        line += chunk
    os.close(ready_r)
    CHILDREN.append((pid, release_w))
    text = line.decode().strip()
    if not text or text.startswith("error"):
        raise RuntimeError(f"holder {pid} failed: {text!r}")
    return pid, text


def cleanup():
    for pid, w in CHILDREN:
        try:
            os.close(w)
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid, _ in CHILDREN:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    CHILDREN.clear()


def listeners_and_udp(n_listen, n_udp):
    def make():
        keep, ports = [], []
        for _ in range(n_listen):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            keep.append(s)
            ports.append(s.getsockname()[1])
        for _ in range(n_udp):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", 0))
            keep.append(u)
        return keep, " ".join(map(str, ports)) or "-"
    return make


def established_pairs(n):
    def make():
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.bind(("127.0.0.1", 0))
        lst.listen(1024)
        addr = lst.getsockname()
        keep = [lst]
        for _ in range(n):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.connect(addr)
            s, _ = lst.accept()
            keep += [c, s]
        return keep, str(addr[1])
    return make


def make_time_waits(n, n_clients=8, first_port=20000):
    """Server-side TIME_WAITs: the server closes first. Clients bind 127.0.0.{2..} with
    explicit ports so no 4-tuple repeats (a repeat would recycle the TIME_WAIT)."""
    servers = []
    for _ in range(4):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(1024)
        servers.append(s)
    made, tried = 0, 0
    per_client = -(-n // n_clients)
    for ci in range(n_clients):
        caddr = f"127.0.0.{2 + ci}"
        port = first_port
        done_here = 0
        while done_here < per_client and made < n and port < 65000:
            srv = servers[tried % len(servers)]
            tried += 1
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                c.bind((caddr, port))
                c.connect(srv.getsockname())
            except OSError:
                c.close()
                port += 1
                continue
            port += 1
            conn, _ = srv.accept()
            conn.close()
            c.close()
            made += 1
            done_here += 1
    return servers, made


def sockstat():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                return line.strip()
    return "?"


def run_once(argv, shell=False):
    """Runs a command with output discarded; returns (seconds, exit code)."""
    t0 = time.perf_counter()
    p = subprocess.run(argv, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, p.returncode


def peak_rss_kib(argv):
    """Peak RSS of a command in KiB, measured by GNU time (/usr/bin/time -f %M).

    wait4()'s ru_maxrss of a child forked from this Python process includes the pre-exec
    copy of Python itself (~15 MiB), which would hide both tools' real figures, so RSS is
    taken under GNU time (a small process) instead. None when GNU time is missing."""
    if not os.path.exists("/usr/bin/time"):
        return None
    import tempfile
    best = 0
    with tempfile.NamedTemporaryFile("r") as f:
        for _ in range(3):
            subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name, *argv],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            f.seek(0)
            text = f.read().strip().splitlines()
            if text and text[-1].isdigit():
                best = max(best, int(text[-1]))
    return best or None


def compare(name, ours, theirs, runs, target, shell_theirs=False):
    run_once(ours)
    run_once(theirs, shell=shell_theirs)
    a, b, codes = [], [], set()
    for _ in range(runs):
        t, code = run_once(ours)
        a.append(t)
        codes.add(code)
        t, _ = run_once(theirs, shell=shell_theirs)
        b.append(t)
    ma, mb = statistics.median(a), statistics.median(b)
    ratio = ma / mb if mb else float("inf")
    return {
        "name": name,
        "netkit_ms": ma * 1000,
        "ss_ms": mb * 1000,
        "ratio": ratio,
        "target": target,
        "exit_codes": sorted(codes),
        "ok": ratio <= target,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--netkit", required=True, help="path of the release binary")
    ap.add_argument("--scale", type=float, default=1.0, help="population scale (1 = issue 2 numbers)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per command (>= 5 for reports)")
    args = ap.parse_args()
    s = args.scale
    n_listen, n_procs = max(1, int(5000 * s)), max(1, int(500 * s))
    n_pairs, n_tw, n_udp = int(10000 * s), int(40000 * s), int(1000 * s)
    nk = args.netkit

    log(f"population: {n_listen} LISTEN over {n_procs} processes, {n_pairs} established pairs, "
        f"{n_tw} TIME_WAIT, {n_udp} UDP (scale {s})")
    log(f"before: {sockstat()}")
    t0 = time.time()
    ports = []
    for i in range(n_procs):
        nl = n_listen // n_procs + (1 if i < n_listen % n_procs else 0)
        nu = n_udp // n_procs + (1 if i < n_udp % n_procs else 0)
        _, info = fork_holder(listeners_and_udp(nl, nu))
        ports += [int(p) for p in info.split() if p != "-"]
    workers = max(1, min(10, n_pairs // 500))
    for i in range(workers):
        n = n_pairs // workers + (1 if i < n_pairs % workers else 0)
        if n:
            fork_holder(established_pairs(n))
    log(f"listeners/pairs/udp built in {time.time() - t0:.1f}s")
    target_port = ports[len(ports) // 2]

    t1 = time.time()
    tw_servers, made = make_time_waits(n_tw)
    tw_age_start = time.time()
    log(f"{made} TIME_WAIT made in {tw_age_start - t1:.1f}s; {sockstat()}")

    results = []
    results.append(compare(f"who-owns {target_port}", [nk, "who-owns", str(target_port)],
                           ["ss", "-ltnp", f"sport = :{target_port}"], args.runs, 0.25))
    results.append(compare("timewait (summary)", [nk, "timewait"],
                           "ss -tan state time-wait | wc -l", args.runs, 0.5, shell_theirs=True))
    results.append(compare("inspect --tcp", [nk, "inspect", "--tcp"], ["ss", "-tanp"], args.runs, 0.6))
    tw_left = sockstat()
    age = time.time() - tw_age_start
    rss_ours = peak_rss_kib([nk, "inspect", "--tcp"])
    rss_json = peak_rss_kib([nk, "inspect", "--tcp", "--json"]) or 0
    rss_ss = peak_rss_kib(["ss", "-tanp"])
    version = sorted(run_once([nk, "--version"])[0] for _ in range(max(20, args.runs)))
    version_ms = statistics.median(version) * 1000
    spawn = sorted(run_once(["/bin/true"])[0] for _ in range(max(20, args.runs)))
    spawn_ms = statistics.median(spawn) * 1000

    print(f"\nnetkit vs ss — {time.strftime('%Y-%m-%d %H:%M:%S')} — kernel {os.uname().release}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"population: {n_listen} LISTEN / {n_procs} procs, {n_pairs} pairs, {made} TIME_WAIT "
          f"(oldest {age:.0f}s old at the end: {tw_left}), {n_udp} UDP; medians of {args.runs} runs")
    print(f"{'command':<22}{'netkit ms':>10}{'ss ms':>9}{'ratio':>7}{'target':>8}  result")
    for r in results:
        print(f"{r['name']:<22}{r['netkit_ms']:>10.1f}{r['ss_ms']:>9.1f}{r['ratio']:>7.2f}"
              f"{'≤' + str(r['target']):>8}  {'ok' if r['ok'] else 'MISSED'}"
              f"  (netkit exit {r['exit_codes']})")
    if rss_ours and rss_ss:
        rss_ratio = rss_ours / rss_ss
        print(f"peak RSS (GNU time, max of 3): netkit inspect --tcp {rss_ours / 1024:.1f} MiB, "
              f"--json {rss_json / 1024:.1f} MiB; ss -tanp {rss_ss / 1024:.1f} MiB; "
              f"ratio {rss_ratio:.2f} (target ≤ 2) {'ok' if rss_ratio <= 2 else 'MISSED'}")
    else:
        print("peak RSS: /usr/bin/time (GNU time) not installed, not measured")
    print(f"netkit --version: {version_ms:.2f} ms median of {len(version)} (target < 3 ms) "
          f"{'ok' if version_ms < 3 else 'MISSED'}; /bin/true takes {spawn_ms:.2f} ms the same way")
    del tw_servers


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        main()
    finally:
        cleanup()
