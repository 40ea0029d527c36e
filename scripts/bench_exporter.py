#!/usr/bin/env python3
"""Benchmark `netkit exporter` on the inventory benchmark's socket population.

Run through scripts/bench-exporter (release build, fd limits). Builds the population of
scripts/bench_inspect.py (its builders are imported, not copied), then measures:
  1. one scrape over HTTP of a running exporter (GET /metrics, which collects afresh each time
     it is not shared) vs `ss -tanp`, alternately, medians and spread of --runs;
  2. `netkit exporter --once` (process start included) vs `ss -tanp`, the same way;
  3. the exporter's RSS over --scrapes sequential scrapes (VmRSS sampled along the way).
The machine may be shared: every figure is a median with its min-max, and ratios are taken
within one run. Traffic goes to loopback only; every loop is bounded.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_inspect as bi  # noqa: E402  (population builders, cleanup, timing helpers)


def build_population(s):
    n_listen, n_procs = max(1, int(5000 * s)), max(1, int(500 * s))
    n_pairs, n_tw, n_udp = int(10000 * s), int(40000 * s), int(1000 * s)
    bi.log(f"population: {n_listen} LISTEN over {n_procs} processes, {n_pairs} established pairs, "
           f"{n_tw} TIME_WAIT, {n_udp} UDP (scale {s})")
    for i in range(n_procs):
        nl = n_listen // n_procs + (1 if i < n_listen % n_procs else 0)
        nu = n_udp // n_procs + (1 if i < n_udp % n_procs else 0)
        bi.fork_holder(bi.listeners_and_udp(nl, nu))
    workers = max(1, min(10, n_pairs // 500))
    for i in range(workers):
        n = n_pairs // workers + (1 if i < n_pairs % workers else 0)
        if n:
            bi.fork_holder(bi.established_pairs(n))
    servers, made = bi.make_time_waits(n_tw)
    bi.log(f"built: {bi.sockstat()}")
    return servers, (n_listen, n_procs, n_pairs, made, n_udp)


def scrape(url):
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
    return time.perf_counter() - t0, len(body)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def spread(xs):
    return f"{statistics.median(xs) * 1000:.1f} ms (min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--netkit", required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--scrapes", type=int, default=1000)
    args = ap.parse_args()
    nk = args.netkit
    servers, (n_listen, n_procs, n_pairs, made, n_udp) = build_population(args.scale)

    ex = subprocess.Popen([nk, "exporter", "--listen", "127.0.0.1:0"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = ex.stderr.readline().strip()
        url = line.split("serving ", 1)[1]
        # Warm-up, then alternate: one scrape, one ss -tanp.
        scrape(url)
        bi.run_once(["ss", "-tanp"])
        a, b, size = [], [], 0
        for _ in range(args.runs):
            t, size = scrape(url)
            a.append(t)
            b.append(bi.run_once(["ss", "-tanp"])[0])
        once, ss2 = [], []
        for _ in range(args.runs):
            once.append(bi.run_once([nk, "exporter", "--once"])[0])
            ss2.append(bi.run_once(["ss", "-tanp"])[0])

        samples = {}
        t0 = time.time()
        durations = []
        for i in range(1, args.scrapes + 1):
            durations.append(scrape(url)[0])
            if i in (10, 100, 250, 500, 750) or i == args.scrapes:
                samples[i] = rss_kib(ex.pid)
        elapsed = time.time() - t0
    finally:
        ex.send_signal(signal.SIGTERM)
        try:
            ex.wait(timeout=5)
        except subprocess.TimeoutExpired:
            ex.kill()
            ex.wait()

    print(f"\nnetkit exporter vs ss — {time.strftime('%Y-%m-%d %H:%M:%S')} — kernel {os.uname().release}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} (shared machine: other jobs were running)")
    print(f"population: {n_listen} LISTEN / {n_procs} procs, {n_pairs} pairs, {made} TIME_WAIT, "
          f"{n_udp} UDP; host total now {bi.sockstat()}")
    ra = statistics.median(a) / statistics.median(b)
    print(f"HTTP scrape (GET /metrics, {size} bytes): {spread(a)}; ss -tanp: {spread(b)}; "
          f"ratio {ra:.2f} (target <= 0.5) {'ok' if ra <= 0.5 else 'MISSED'}")
    ro = statistics.median(once) / statistics.median(ss2)
    print(f"exporter --once (with process start): {spread(once)}; ss -tanp: {spread(ss2)}; ratio {ro:.2f}")
    first, last = samples[min(samples)], samples[max(samples)]
    print(f"RSS over {args.scrapes} scrapes ({elapsed:.0f} s, scrape median {spread(durations)}): "
          + ", ".join(f"#{k}: {v / 1024:.1f} MiB" for k, v in sorted(samples.items()))
          + f"; growth #{min(samples)}→#{max(samples)} {(last - first) / 1024:+.1f} MiB "
          f"({'steady' if last <= first * 1.1 + 1024 else 'GROWING'})")
    del servers


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, bi.on_signal)
    signal.signal(signal.SIGINT, bi.on_signal)
    try:
        main()
    finally:
        bi.cleanup()
