#!/usr/bin/env python3
"""Benchmark netkit's socket inventory against ss on a loopback socket population.

Run through scripts/bench-inspect (which builds the release binary and raises limits).
Population at --scale 1 (issue 2): 5,000 LISTEN sockets over 500 processes, 10,000
established pairs, 40,000 TIME_WAIT (server side, clients on 127.0.0.2-9 with explicit
ports so every 4-tuple is distinct), 1,000 UDP sockets. TIME_WAIT lasts 60 s, so it is made
last, just before measuring, and counted again after the last measurement.

With --sweep, sizes run one after another in one process: before each size the previous
size's TIME_WAITs must have drained (counted in /proc/net/sockstat; established pairs are
closed with RST, so only the TIME_WAIT maker's entries need the 60 s), the kernel's socket
counts and the load average are recorded at the start and the end of each size, and one
table compares the sizes (ratios, growth factors). Ratios that moved more than 20 % since the
previous run (target/bench-inspect-last.json) are flagged.

Every measurement runs netkit and its ss counterpart alternately (one warm-up each, then
--runs timed runs) and prints medians and the ratio netkit/ss. Peak RSS is measured with GNU
time (/usr/bin/time -f %M). Everything started here is killed on exit (children are in one list
and are also tied to a pipe that closes when this process dies).
"""

import argparse
import json
import os
import signal
import socket
import statistics
import struct
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
        # SO_LINGER {on, 0}: when the holder dies both ends send RST instead of FIN, so
        # tearing a size down leaves no TIME_WAIT behind to pollute the next size.
        linger = struct.pack("ii", 1, 0)
        for _ in range(n):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            c.connect(addr)
            s, _ = lst.accept()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
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


def counts():
    """The kernel's own socket counts in this network namespace (/proc/net/sockstat):
    TCP in use (every non-TIME_WAIT TCP socket), TIME_WAIT, UDP in use."""
    out = {"tcp_inuse": None, "time_wait": None, "udp_inuse": None}
    with open("/proc/net/sockstat") as f:
        for line in f:
            words = line.split()
            if not words:
                continue
            kv = dict(zip(words[1::2], words[2::2]))
            if words[0] == "TCP:":
                out["tcp_inuse"] = int(kv.get("inuse", 0))
                out["time_wait"] = int(kv.get("tw", 0))
            elif words[0] == "UDP:":
                out["udp_inuse"] = int(kv.get("inuse", 0))
    return out


def fmt_counts(c):
    return f"{c['tcp_inuse']} TCP in use, {c['time_wait']} TIME_WAIT, {c['udp_inuse']} UDP"


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


# Seconds between making the TIME_WAITs and the first measurement (they live 60 s).
SETTLE_S = 3

# Targets of issue 15 (ratios netkit / ss, same run).
TARGETS = {"who-owns P": 0.1, "timewait (summary)": 0.3, "inspect --tcp": 0.5}
RSS_TARGET = 1.5
# Time at scale b / time at scale a must stay within this factor of b / a (issue 15: 2.1 for 1→2).
GROWTH_SLACK = 1.05
# A comparison whose paired ratios spread more than this ((max - min) / median) is rerun.
NOISY = 0.4
MAX_ATTEMPTS = 3


def spread(xs):
    m = statistics.median(xs)
    return (max(xs) - min(xs)) / m if m else 0.0


def compare_once(ours, theirs, runs, shell_theirs, tws=None, name=""):
    """One warm-up pair, then `runs` timed pairs. With `tws`, the warm-up says how long the
    timed runs will take, and the TIME_WAITs are made again first if they would not outlive
    them (then the warm-up is repeated on the fresh population)."""
    for _ in range(2):
        wa, _ = run_once(ours)
        wb, _ = run_once(theirs, shell=shell_theirs)
        if tws is None or not tws.ensure((wa + wb) * runs * 1.3 + 1, name):
            break
    a, b, codes = [], [], set()
    for _ in range(runs):
        t, code = run_once(ours)
        a.append(t)
        codes.add(code)
        t, _ = run_once(theirs, shell=shell_theirs)
        b.append(t)
    return a, b, codes


def compare(name, key, ours, theirs, runs, shell_theirs=False, tws=None):
    """netkit and ss alternately, one warm-up each, then `runs` timed pairs. A comparison
    whose paired ratios spread more than NOISY is rerun (up to MAX_ATTEMPTS in all) and the
    calmest attempt is kept; the attempts are reported. With `tws` (the size's TIME_WAITs),
    no attempt's timed runs outlive them, and the age of the oldest at the end is kept."""
    best = None
    attempts = 0
    for _ in range(MAX_ATTEMPTS):
        attempts += 1
        a, b, codes = compare_once(ours, theirs, runs, shell_theirs, tws, name)
        age_end = tws.age() if tws else 0.0
        pair = [x / y for x, y in zip(a, b) if y]
        sp = spread(pair) if pair else 0.0
        if best is None or sp < best[3]:
            best = (a, b, codes, sp, age_end)
        if sp <= NOISY:
            break
        log(f"  {name}: paired ratios spread {sp:.0%} (> {NOISY:.0%}), rerunning")
    a, b, codes, sp, age_end = best
    ma, mb = statistics.median(a), statistics.median(b)
    ratio = ma / mb if mb else float("inf")
    target = TARGETS[key]
    return {
        "name": name,
        "key": key,
        "netkit_ms": ma * 1000,
        "ss_ms": mb * 1000,
        "netkit_min_ms": min(a) * 1000,
        "netkit_max_ms": max(a) * 1000,
        "ss_min_ms": min(b) * 1000,
        "ss_max_ms": max(b) * 1000,
        "ratio": ratio,
        "ratio_spread": sp,
        "attempts": attempts,
        "noisy": sp > NOISY,
        "target": target,
        "exit_codes": sorted(codes),
        "tw_age_end_s": age_end,
        "ok": ratio <= target,
    }


def population(s):
    n_listen, n_procs = max(1, int(5000 * s)), max(1, int(500 * s))
    return {
        "listen": n_listen,
        "processes": n_procs,
        "pairs": int(10000 * s),
        "time_wait": int(40000 * s),
        "udp": int(1000 * s),
    }


def max_tw_buckets():
    """net.ipv4.tcp_max_tw_buckets: past it the kernel closes a socket without TIME_WAIT
    ("TCP: time wait bucket table overflow"), so a larger population cannot be built."""
    try:
        with open("/proc/sys/net/ipv4/tcp_max_tw_buckets") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def tw_cap(wanted):
    """How many TIME_WAIT this size may make: what the kernel holds (tcp_max_tw_buckets)
    minus what this namespace already has and a 2 % margin for the others' entries that
    come and go. Returns (count, reason or None)."""
    limit = max_tw_buckets()
    if limit is None:
        return wanted, None
    room = int(limit * 0.98) - counts()["time_wait"]
    if wanted <= room:
        return wanted, None
    return max(0, room), (f"TIME_WAIT capped at {max(0, room)} of {wanted}: net.ipv4.tcp_max_tw_buckets = {limit} "
                          f"(the kernel would close the rest without TIME_WAIT); this size's TIME_WAIT "
                          f"figures are not {wanted // 1000}k and its growth factor is not comparable")


# At most this many TIME_WAITs of other users may be in the namespace when a run starts
# (the script waits up to --drain-timeout for them to expire; past it, the run says so).
FOREIGN_TW_OK = 1000
FOREIGN_NOTES = []

# Listening ports of the TIME_WAIT makers of earlier sizes: their TIME_WAITs must be gone
# before the next size is measured.
TW_PORTS = []


def time_waits_on(ports):
    """TIME_WAITs whose local port is one of `ports` (ss, the outside view)."""
    if not ports:
        return 0
    expr = " or ".join(f"sport = :{p}" for p in ports)
    out = subprocess.run(["ss", "-Htan", "state", "time-wait", f"( {expr} )"],
                         capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def our_time_waits():
    """TIME_WAITs on the ports of earlier sizes' TIME_WAIT makers (other users of this
    network namespace have their own, which are counted in sockstat but not here)."""
    return time_waits_on(TW_PORTS)


def wait_drained(baseline_tw, slack, timeout):
    """Waits until the TIME_WAITs of earlier sizes are gone (counted on their ports) and the
    namespace's TIME_WAIT count is back near `baseline_tw` (+ slack; other users' entries
    may come and go). Returns the count seen last and whether it drained in time."""
    deadline = time.time() + timeout
    announced = False
    while True:
        tw = counts()["time_wait"]
        ours = our_time_waits()
        if ours == 0 and tw <= baseline_tw + slack:
            return tw, True
        if ours == 0 and time.time() >= deadline:
            log(f"our TIME_WAITs drained; {tw} others' remain in this namespace (baseline {baseline_tw})")
            return tw, True
        if time.time() >= deadline:
            return tw, False
        if not announced:
            log(f"waiting for {ours} TIME_WAIT of earlier sizes/runs to drain ({tw} in the namespace, "
                f"{baseline_tw} at the start; up to {timeout:.0f}s)")
            announced = True
        time.sleep(1)


# A TIME_WAIT lasts 60 s (TCP_TIMEWAIT_LEN, not tunable). A measurement must end before the
# oldest of its population is this old, or it measures a population that is shrinking.
# BENCH_TW_BUDGET_S overrides it (to try the remaking on a small population).
TW_BUDGET_S = float(os.environ.get("BENCH_TW_BUDGET_S", "57"))


class TimeWaits:
    """One size's TIME_WAITs, made last, just before measuring. A comparison whose runs would
    end after TW_BUDGET_S (the previous attempt, or the warm-up, says how long they take)
    first waits for these to expire and makes a fresh set, so that every timed run sees the
    whole population: at scale 2 three attempts of `inspect --tcp` against `ss -tanp` (about
    2 s a pair) outlived the TIME_WAITs made before `who-owns` (a sweep measured scale 2's
    inspect and peak RSS with none left)."""

    def __init__(self, n):
        self.n = n
        self.servers = []
        self.made = 0
        self.born = None
        self.remade = 0
        self.make()

    def make(self):
        t0 = time.time()
        self.servers, self.made = make_time_waits(self.n)
        TW_PORTS.extend(srv.getsockname()[1] for srv in self.servers)
        # The oldest entry is as old as the first connection made.
        self.born = t0
        self.took = time.time() - t0
        # Let the kernel finish with the sockets just closed (RCU frees of tens of thousands
        # of tcp_socks) before timing: the first command measured otherwise walks an
        # established hash still being torn down (who-owns at scale 1: ~29 ms measured
        # first, ~17 ms a few seconds later), a cost ss -ltnp, which skips that hash, never
        # sees.
        time.sleep(SETTLE_S)

    def age(self):
        return time.time() - self.born

    def ports(self):
        return [srv.getsockname()[1] for srv in self.servers]

    def ensure(self, need_s, what):
        """Before `what`, expected to take `need_s` seconds: a fresh set if this one would
        not outlive it. Returns True when the set was made again."""
        if self.age() + need_s <= TW_BUDGET_S:
            return False
        if need_s + self.took + SETTLE_S > TW_BUDGET_S:
            log(f"  {what}: ~{need_s:.0f}s of runs cannot fit in a TIME_WAIT's {TW_BUDGET_S}s; measured as is")
            return False
        log(f"  {what}: ~{need_s:.0f}s of runs would outlive this size's TIME_WAITs "
            f"({self.age():.0f}s old): waiting for them to expire, then making {self.n} again")
        deadline = time.time() + 90
        while time_waits_on(self.ports()) and time.time() < deadline:
            time.sleep(1)
        for srv in self.servers:
            srv.close()
        self.make()
        self.remade += 1
        log(f"  {self.made} TIME_WAIT made again; {sockstat()}")
        return True


def measure_size(nk, s, runs):
    pop = population(s)
    n_listen, n_procs, n_pairs, n_tw, n_udp = (pop[k] for k in ("listen", "processes", "pairs", "time_wait", "udp"))
    log(f"population: {n_listen} LISTEN over {n_procs} processes, {n_pairs} established pairs, "
        f"{n_tw} TIME_WAIT, {n_udp} UDP (scale {s})")
    before = counts()
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

    n_tw, capped = tw_cap(n_tw)
    if capped:
        log(f"scale {s:g}: {capped}")
    tws = TimeWaits(n_tw)
    made = tws.made
    start = counts()
    load_start = os.getloadavg()
    log(f"{made} TIME_WAIT made in {tws.took:.1f}s; {sockstat()}")

    results = [
        compare(f"who-owns {target_port}", "who-owns P", [nk, "who-owns", str(target_port)],
                ["ss", "-ltnp", f"sport = :{target_port}"], runs, tws=tws),
        compare("timewait (summary)", "timewait (summary)", [nk, "timewait"],
                "ss -tan state time-wait | wc -l", runs, shell_theirs=True, tws=tws),
        compare("inspect --tcp", "inspect --tcp", [nk, "inspect", "--tcp"], ["ss", "-tanp"], runs,
                tws=tws),
    ]
    # Peak RSS of both tools, on the whole population too: three runs each.
    inspect_s = (results[2]["netkit_ms"] * 2 + results[2]["ss_ms"]) / 1000
    tws.ensure(3 * inspect_s * 1.3 + 1, "peak RSS")
    rss_ours = peak_rss_kib([nk, "inspect", "--tcp"])
    rss_json = peak_rss_kib([nk, "inspect", "--tcp", "--json"]) or 0
    rss_ss = peak_rss_kib(["ss", "-tanp"])
    tw_left = sockstat()
    end = counts()
    age = tws.age()
    version = sorted(run_once([nk, "--version"])[0] for _ in range(max(20, runs)))
    version_ms = statistics.median(version) * 1000
    spawn = sorted(run_once(["/bin/true"])[0] for _ in range(max(20, runs)))
    spawn_ms = statistics.median(spawn) * 1000
    load_end = os.getloadavg()

    # Today's per-size block, line for line (others read these lines).
    print(f"\nnetkit vs ss — {time.strftime('%Y-%m-%d %H:%M:%S')} — kernel {os.uname().release}, "
          f"{os.cpu_count()} CPUs, load {load_end[0]:.2f}")
    print(f"population: {n_listen} LISTEN / {n_procs} procs, {n_pairs} pairs, {made} TIME_WAIT "
          f"(oldest {age:.0f}s old at the end: {tw_left}), {n_udp} UDP; medians of {runs} runs")
    if tws.remade:
        print(f"TIME_WAIT made again {tws.remade} time(s) so that no timed run outlived them "
              f"(a TIME_WAIT lasts 60 s; each comparison's TIME_WAIT age at its end is in the JSON)")
    stale = [r["name"] for r in results if r["tw_age_end_s"] > 60]
    if stale:
        print(f"NOTE: {', '.join(stale)} ended after the oldest TIME_WAIT had expired: "
              f"measured on a shrinking population")
    print(f"{'command':<22}{'netkit ms':>10}{'ss ms':>9}{'ratio':>7}{'target':>8}  result")
    for r in results:
        print(f"{r['name']:<22}{r['netkit_ms']:>10.1f}{r['ss_ms']:>9.1f}{r['ratio']:>7.2f}"
              f"{'≤' + str(r['target']):>8}  {'ok' if r['ok'] else 'MISSED'}"
              f"  (netkit exit {r['exit_codes']})")
    rss = None
    if rss_ours and rss_ss:
        rss_ratio = rss_ours / rss_ss
        rss = {"netkit_kib": rss_ours, "netkit_json_kib": rss_json, "ss_kib": rss_ss,
               "ratio": rss_ratio, "target": RSS_TARGET, "ok": rss_ratio <= RSS_TARGET}
        print(f"peak RSS (GNU time, max of 3): netkit inspect --tcp {rss_ours / 1024:.1f} MiB, "
              f"--json {rss_json / 1024:.1f} MiB; ss -tanp {rss_ss / 1024:.1f} MiB; "
              f"ratio {rss_ratio:.2f} (target ≤ {RSS_TARGET}) {'ok' if rss['ok'] else 'MISSED'}")
    else:
        print("peak RSS: /usr/bin/time (GNU time) not installed, not measured")
    print(f"netkit --version: {version_ms:.2f} ms median of {len(version)} (target < 3 ms) "
          f"{'ok' if version_ms < 3 else 'MISSED'}; /bin/true takes {spawn_ms:.2f} ms the same way")
    # Added lines: what was really measured, and how calm the machine was.
    if capped:
        print(f"NOTE: {capped}")
    print(f"sockets (kernel, /proc/net/sockstat): before {fmt_counts(before)}; "
          f"at start {fmt_counts(start)}; at end {fmt_counts(end)}")
    print(f"load average (1/5/15 min): start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, "
          f"end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}")
    print("spread (max-min)/median of the paired netkit/ss ratios: " + ", ".join(
        f"{r['key']} {r['ratio_spread']:.0%}"
        + (f" ({r['attempts']} attempts{', still noisy' if r['noisy'] else ''})" if r["attempts"] > 1 else "")
        for r in results))
    sys.stdout.flush()
    remade = tws.remade
    del tws
    return {
        "scale": s,
        "population": pop,
        "time_wait_made": made,
        "time_wait_remade": remade,
        "time_wait_capped": capped,
        "target_port": target_port,
        "counts_before": before,
        "counts_start": start,
        "counts_end": end,
        "oldest_time_wait_age_s": age,
        "load_start": list(load_start),
        "load_end": list(load_end),
        "commands": results,
        "rss": rss,
        "version_ms": version_ms,
        "spawn_ms": spawn_ms,
    }


def growth_rows(sizes):
    rows = []
    for prev, cur in zip(sizes, sizes[1:]):
        factor = cur["scale"] / prev["scale"]
        limit = factor * GROWTH_SLACK
        for rp, rc in zip(prev["commands"], cur["commands"]):
            g = rc["netkit_ms"] / rp["netkit_ms"] if rp["netkit_ms"] else float("inf")
            gs = rc["ss_ms"] / rp["ss_ms"] if rp["ss_ms"] else float("inf")
            capped = bool(cur.get("time_wait_capped") or prev.get("time_wait_capped"))
            rows.append({"command": rc["key"], "from_scale": prev["scale"], "to_scale": cur["scale"],
                         "netkit": g, "ss": gs, "target": round(limit, 2), "ok": g <= limit,
                         "time_wait_capped": capped})
    return rows


def cell(r):
    return f"{r['ratio']:.2f} ({r['netkit_ms']:.0f}/{r['ss_ms']:.0f})"


def summary(sizes, growth, runs, markdown):
    scales = [f"{z['scale']:g}" for z in sizes]
    keys = [r["key"] for r in sizes[0]["commands"]]
    pairs = [(g["from_scale"], g["to_scale"]) for g in growth if g["command"] == keys[0]]
    gcols = [f"growth {a:g}→{b:g}" for a, b in pairs]
    head = ["command"] + [f"scale {x}" for x in scales] + ["target"] + gcols
    rows = []
    for k in keys:
        row = [k]
        for z in sizes:
            r = next(r for r in z["commands"] if r["key"] == k)
            row.append(cell(r) + ("" if r["ok"] else " MISSED"))
        row.append(f"≤ {TARGETS[k]}")
        for a, b in pairs:
            g = next(g for g in growth if g["command"] == k and g["from_scale"] == a and g["to_scale"] == b)
            row.append(f"{g['netkit']:.2f} (ss {g['ss']:.2f})"
                       + (" TIME_WAIT capped" if g.get("time_wait_capped") else "" if g["ok"] else " MISSED"))
        rows.append(row)
    row = ["peak RSS inspect --tcp"]
    for z in sizes:
        r = z["rss"]
        row.append("-" if not r else f"{r['ratio']:.2f} ({r['netkit_kib'] / 1024:.1f}/{r['ss_kib'] / 1024:.1f} MiB)"
                   + ("" if r["ok"] else " MISSED"))
    row.append(f"≤ {RSS_TARGET}")
    row += [""] * len(pairs)
    rows.append(row)
    row = ["load (1 min, start→end)"] + [f"{z['load_start'][0]:.2f}→{z['load_end'][0]:.2f}" for z in sizes]
    row += [""] * (1 + len(pairs))
    rows.append(row)
    print(f"\nsweep — {time.strftime('%Y-%m-%d %H:%M:%S')} — kernel {os.uname().release}, "
          f"{os.cpu_count()} CPUs; ratio netkit/ss (netkit ms / ss ms), medians of {runs}; "
          f"growth = netkit time ÷ time at the previous size (target ≤ {GROWTH_SLACK}× the size factor)")
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
        return
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def moved_vs(previous, sizes):
    """Ratios that moved more than 20 % since the previous run at the same scale."""
    out = []
    if not previous:
        return out
    for z in sizes:
        pz = next((p for p in previous.get("sizes", []) if p.get("scale") == z["scale"]), None)
        if not pz:
            continue
        pairs = [(r["key"], r["ratio"], next((p["ratio"] for p in pz.get("commands", []) if p.get("key") == r["key"]), None))
                 for r in z["commands"]]
        if z["rss"] and pz.get("rss"):
            pairs.append(("peak RSS", z["rss"]["ratio"], pz["rss"]["ratio"]))
        for key, now, before in pairs:
            if before and abs(now / before - 1) > 0.2:
                out.append({"scale": z["scale"], "command": key, "previous": before, "now": now})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--netkit", required=True, help="path of the release binary")
    ap.add_argument("--scale", type=float, default=None, help="population scale (1 = issue 2 numbers)")
    ap.add_argument("--sweep", default=None, help="comma-separated scales run in one go, e.g. 0.25,1,2")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per command (>= 5 for reports)")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON (- = stdout, after the tables)")
    ap.add_argument("--markdown", action="store_true", help="print the sweep table as Markdown (README)")
    ap.add_argument("--previous", default="target/bench-inspect-last.json",
                    help="JSON of the previous run to compare ratios with (written at the end of each run)")
    ap.add_argument("--drain-timeout", type=float, default=90, help="seconds to wait for TIME_WAITs to drain")
    args = ap.parse_args()
    if args.sweep:
        scales = [float(x) for x in args.sweep.split(",") if x.strip()]
    else:
        scales = [args.scale if args.scale is not None else 1.0]
    nk = args.netkit

    try:
        with open(args.previous) as f:
            previous = json.load(f)
    except (OSError, ValueError):
        previous = None
    # A run started within 60 s of the previous one would measure its TIME_WAITs too.
    TW_PORTS.extend((previous or {}).get("time_wait_ports", []))
    # Other users' TIME_WAITs (another benchmark's, up to tcp_max_tw_buckets) are walked and
    # counted by `timewait` too: wait (bounded) until the namespace holds at most a few.
    tw, ok = wait_drained(FOREIGN_TW_OK, 0, args.drain_timeout)
    if our_time_waits():
        log(f"bench-inspect: the previous run's TIME_WAITs are still there after {args.drain_timeout:.0f}s; refusing to measure")
        sys.exit(2)
    baseline = counts()["time_wait"]
    if baseline > FOREIGN_TW_OK:
        FOREIGN_NOTES.append(f"{baseline} TIME_WAIT of other users were in this namespace when the run "
                             f"started (waited {args.drain_timeout:.0f}s); timewait figures include them")
        log(f"NOTE: {FOREIGN_NOTES[-1]}")
    log(f"TIME_WAIT before the run: {baseline}")
    sizes = []
    for s in scales:
        # The previous size's (or an earlier run's) TIME_WAITs would be measured too.
        slack = max(50, int(0.005 * population(s)["time_wait"]))
        tw, ok = wait_drained(baseline, slack, args.drain_timeout)
        if not ok:
            log(f"bench-inspect: {tw} TIME_WAIT still present after {args.drain_timeout:.0f}s "
                f"(baseline {baseline}); refusing to measure scale {s:g}")
            sys.exit(2)
        sizes.append(measure_size(nk, s, args.runs))
        cleanup()
    growth = growth_rows(sizes)
    summary(sizes, growth, args.runs, args.markdown)
    moved = moved_vs(previous, sizes)
    for m in moved:
        print(f"NOTE: {m['command']} at scale {m['scale']:g} moved more than 20% since the previous run "
              f"({m['previous']:.2f} → {m['now']:.2f}): rerun before believing it")
    if previous and not moved:
        print("ratios within 20% of the previous run at every common scale")
    for n in FOREIGN_NOTES:
        print(f"NOTE: {n}")
    doc = {
        "schema_version": 1,
        "command": "bench-inspect",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "targets": {**TARGETS, "peak RSS": RSS_TARGET},
        "sizes": sizes,
        "growth": growth,
        "moved_vs_previous": moved,
        "time_wait_ports": TW_PORTS,
        "notes": FOREIGN_NOTES,
    }
    text = json.dumps(doc, indent=2)
    if args.json == "-":
        print(text)
    elif args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    try:
        os.makedirs(os.path.dirname(args.previous) or ".", exist_ok=True)
        with open(args.previous, "w") as f:
            f.write(text + "\n")
    except OSError as e:
        log(f"could not save {args.previous}: {e}")


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        main()
    finally:
        cleanup()
