"""Endpoint choice against the number of endpoints: kube-proxy's pick must not scan them.

One NodePort Service with E endpoints, E in 10 / 100 / 1,000 / 10,000, on 40 nodes (each
with a /22 pod CIDR; placement spread, so 250 pods per node at 10,000), one worker per pod,
exponential service with a mean of 1 ms, Poisson arrivals at 5000/s, a random entry node
per connection and one request per connection (every request makes kube-proxy choose).
Modes: iptables, nftables, IPVS with rr / lc / sed / sh / mh, and userspace.

Measured per mode and E:

* **pick**: ns per new connection for kube-proxy's choice alone, on node 0's programmed
  table (``Simulation(scenario).proxies[0].tables[0]``): ``table.pick(client_ip, src_port,
  now)`` 100,000 times (best of 5), for IPVS followed by ``opened`` and, 32 connections
  later, ``closed`` (the counters lc and sed order by; the engine calls them for every
  IPVS scheduler), with ``now`` stepping 8 ms per connection so that connections pass
  the 120 s FIN timeout and the inactive counters expire during the loop. A Python loop
  around a no-op and a builtin ``min()`` over E counters (what a linear scan per
  connection would cost at least) are measured alongside.
* **run**: ``Simulation(scenario).run()`` with N requests, wall and CPU time, and the CPU
  time per request over the second half of the run (read at the run's progress reports,
  one per simulated second), when every pod has been used at least once: the whole run
  also pays a one-time cost that grows with E (each pod's and each node pair's random
  stream draws its first values when first used), and the peak RSS of the run above the
  RSS before it (Linux).
* **setup**, separately: ``scenario_from_dict`` and ``Simulation(scenario)`` (cluster,
  10,000 pods, 40 kube-proxies each programming its table), and the build of one node's
  table alone (``proxy.make_table``, what one sync costs that node).

    .venv/bin/python benchmarks/bench_endpoints.py           # full: 200k requests per run
    .venv/bin/python benchmarks/bench_endpoints.py --quick   # smoke: 20k requests, 20k picks
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from benchcommon import (
    ROOT,
    git,
    header_lines,
    npsim_source,
    publish,
    reset_peak_rss,
    status_mb,
    trim_heap,
)

import npsim
from npsim.proxy.base import EndpointTable
from npsim.sim.engine import Simulation

OUTPUT = ROOT / "benchmarks" / "ENDPOINTS.md"
SIZES = (10, 100, 1_000, 10_000)
MODES: tuple[tuple[str, str | None], ...] = (
    ("iptables", None), ("nftables", None),
    ("ipvs", "rr"), ("ipvs", "lc"), ("ipvs", "sed"), ("ipvs", "sh"), ("ipvs", "mh"),
    ("userspace", None),
)
NODES = 40
RATE = "5000/s"
SOURCE_IPS = 1000
CLIENT_BASE = 0xC6120000  # 198.18.0.0, as in the scenario's default client addresses
FULL_REQUESTS, QUICK_REQUESTS = 200_000, 20_000
FULL_PICKS, QUICK_PICKS = 100_000, 20_000
PICK_REPEATS = 5
OPEN_WINDOW = 32  # IPVS micro-benchmark: connections open at a time on the node
PICK_STEP = 0.008  # s between connections on the node (40 nodes sharing 5000/s)
SCAN_BUDGET = 2_000_000  # counters the O(n) reference scans per repeat
SEED = 1


def label(mode: str, scheduler: str | None) -> str:
    return f"ipvs {scheduler}" if scheduler else mode


# --- scenarios --------------------------------------------------------------------------


def scenario_dict(endpoints: int, mode: str, scheduler: str | None, requests: int) -> dict:
    """One NodePort Service over ``endpoints`` pods on 40 nodes; units as strings."""
    nodes = [{"name": f"node-{i + 1}", "zone": f"zone-{'abc'[i % 3]}",
              "podCIDR": f"10.244.{4 * i}.0/22"}  # 1021 pods each (a /24 holds 253)
             for i in range(NODES)]
    cluster: dict = {"proxyMode": mode, "nodes": nodes}
    if scheduler:
        cluster["ipvs"] = {"scheduler": scheduler}
    labels = {"app": "web"}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"type": "NodePort", "selector": labels,
                        "ports": [{"port": 80, "targetPort": 80}]}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": endpoints, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels},
                                        "spec": {"containers": [{
                                            "name": "web", "image": "nginx:1.25",
                                            "ports": [{"containerPort": 80}]}]}}}}
    return {
        "name": f"endpoints-{endpoints}-{label(mode, scheduler).replace(' ', '-')}",
        "cluster": cluster,
        "manifests": [service, deployment],
        "workloads": {"web": {"workers": 1, "placement": "spread",
                              "serviceTime": {"dist": "exponential", "mean": "1ms"}}},
        "clients": [{"name": "users", "service": "web", "sourceIPs": SOURCE_IPS,
                     "arrival": {"rate": RATE}, "entry": "random",
                     "requestsPerConnection": 1}],
        "run": {"requests": requests, "warmup": "0s", "seed": SEED},
    }


# --- measuring --------------------------------------------------------------------------


@dataclass
class Row:
    mode: str
    endpoints: int
    scenario_s: float = math.nan  # scenario_from_dict
    build_s: float = math.nan  # Simulation(scenario), fastest of the three builds
    table_ms: float = math.nan  # one node's make_table
    pick_ns: float = math.nan
    distinct: int = 0  # endpoints chosen at least once in the timed picks
    wall_s: float = math.nan
    cpu_s: float = math.nan
    requests: int = 0
    steady_us: float = math.nan  # CPU per request over the second half of the run
    rss_mb: float = math.nan  # peak RSS during the run minus RSS before it

    @property
    def rate(self) -> float:
        return self.requests / self.cpu_s

    @property
    def steady_rate(self) -> float:
        return 1e6 / self.steady_us

    @property
    def fixed_s(self) -> float:
        """CPU of the run above N x the steady per-request cost: one-time work."""
        return self.cpu_s - self.steady_us * 1e-6 * self.requests


def _inputs(n: int, seed: int = 7) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    ips = (CLIENT_BASE + rng.integers(0, SOURCE_IPS, n)).tolist()
    ports = (32768 + rng.integers(0, 28232, n)).tolist()
    return ips, ports


def time_picks(table: EndpointTable, picks: int, counts: bool, start: float,
               repeats: int = PICK_REPEATS) -> tuple[float, int]:
    """Best ns per new connection over ``repeats`` loops, and endpoints hit at least once.

    The table's state carries over from loop to loop (rr positions, IPVS counters), as it
    would in a run; ``now`` keeps increasing.
    """
    ips, ports = _inputs(picks)
    pick, keys = table.pick, table.keys
    opened, closed = table.opened, table.closed
    best = math.inf
    hit: set[int] = set()
    for r in range(repeats):
        nows = (start + PICK_STEP * (r * picks + np.arange(picks))).tolist()
        chosen = [0] * picks
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter_ns()
            if counts:
                window: deque[str] = deque()
                push, pop = window.append, window.popleft
                for i in range(picks):
                    now = nows[i]
                    index = pick(ips[i], ports[i], now)
                    key = keys[index]
                    opened(key, now)
                    push(key)
                    if len(window) > OPEN_WINDOW:
                        closed(pop(), now)
                    chosen[i] = index
                while window:  # close the rest, so the next loop starts alike
                    closed(pop(), nows[-1])
            else:
                for i in range(picks):
                    chosen[i] = pick(ips[i], ports[i], nows[i])
            elapsed = time.perf_counter_ns() - t0
        finally:
            gc.enable()
        best = min(best, elapsed / picks)
        hit.update(chosen)
    return best, len(hit)


def time_loop_overhead(picks: int) -> float:
    """The same loop as :func:`time_picks` around a no-op ``pick``."""

    class Noop:
        keys = [""]

        def pick(self, client_ip: int, src_port: int, now: float) -> int:
            return 0

        def opened(self, key: str, now: float) -> None:
            pass

        def closed(self, key: str, now: float) -> None:
            pass

    return time_picks(Noop(), picks, counts=False, start=0.0)[0]  # type: ignore[arg-type]


def time_scan(endpoints: int) -> float:
    """ns per connection of the cheapest O(n) choice: builtin ``min()`` over E counters."""
    counters = np.random.default_rng(3).integers(0, 1000, endpoints).tolist()
    picks = max(20, min(100_000, SCAN_BUDGET // endpoints))
    best = math.inf
    for _ in range(PICK_REPEATS):
        t0 = time.perf_counter_ns()
        for _ in range(picks):
            min(counters)
        best = min(best, (time.perf_counter_ns() - t0) / picks)
    return best


class Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def build(data: dict) -> tuple[npsim.Scenario, Simulation, float, float]:
    gc.collect()
    with Clock() as c1:
        scenario = npsim.scenario_from_dict(data)
    with Clock() as c2:
        sim = Simulation(scenario)
    return scenario, sim, c1.cpu, c2.cpu


def measure(mode: str, scheduler: str | None, endpoints: int, requests: int,
            picks: int) -> Row:
    row = Row(label(mode, scheduler), endpoints)
    builds = []

    # kube-proxy's choice alone, on node 0's table of a fresh simulation
    _, sim, row.scenario_s, b = build(scenario_dict(endpoints, mode, scheduler, requests))
    builds.append(b)
    proxy = sim.proxies[0]
    table = proxy.tables[0]
    assert table.n == endpoints, (table.n, endpoints)
    sp = sim.cluster.service_ports[0]
    gc.collect()
    t0 = time.process_time()
    proxy.make_table(sp, table.endpoints, None, 0.0)  # a throw-away table, not installed
    row.table_ms = (time.process_time() - t0) * 1e3
    row.pick_ns, row.distinct = time_picks(table, picks, proxy.counts_connections, start=0.0)
    del sim, proxy, table

    # the whole simulation
    _, sim, _, b = build(scenario_dict(endpoints, mode, scheduler, requests))
    builds.append(b)
    marks: list[tuple[int, float]] = []  # (requests sent, CPU s) at each progress report

    def mark(_fraction: float) -> None:
        marks.append((sim.generated, time.process_time()))

    gc.collect()
    trim_heap()
    before = status_mb("VmRSS")
    reset = reset_peak_rss()
    with Clock() as c:
        sim.run(progress=mark)
    if reset:
        row.rss_mb = status_mb("VmHWM") - before
    assert len(sim.log) == requests, (len(sim.log), requests)
    row.wall_s, row.cpu_s, row.requests = c.wall, c.cpu, requests
    half = [m for m in marks if m[0] >= requests // 2]
    if len(half) >= 2 and half[-1][0] > half[0][0]:
        row.steady_us = (half[-1][1] - half[0][1]) / (half[-1][0] - half[0][0]) * 1e6
    row.build_s = min(builds)
    return row


# --- reporting --------------------------------------------------------------------------


def npsim_state() -> str:
    """A fingerprint of npsim/ on disk (commit and uncommitted diff)."""
    return git("rev-parse", "HEAD") + git("status", "--porcelain", "--", "npsim") + git(
        "diff", "--", "npsim")


def growth(sizes: list[int], values: list[float]) -> tuple[float, float]:
    """Ratio last/first and the exponent k of a fit values ~ E^k (0: flat, 1: linear)."""
    k = float(np.polyfit(np.log(sizes), np.log(values), 1)[0])
    return values[-1] / values[0], k


def _n(x: int) -> str:
    return f"{x:,}"


def report(args: argparse.Namespace, rows: list[Row], overhead: float,
           scans: dict[int, float], total_s: float) -> str:
    sizes = sorted({r.endpoints for r in rows})
    modes = list(dict.fromkeys(r.mode for r in rows))
    by = {(r.mode, r.endpoints): r for r in rows}
    lo, hi = sizes[0], sizes[-1]
    requests = rows[0].requests
    measured = args.source + (
        "" if args.state == npsim_state() else
        " (npsim/ changed on disk while the benchmark ran; it measured the code it "
        "imported at the start)")
    lines = [
        "# Endpoint choice against the number of endpoints",
        "",
        *header_lines(args.quick, measured, args.note),
        f"- load average (1 min) at start/end: {args.load_start:.2f} / {os.getloadavg()[0]:.2f}"
        f"; the whole benchmark took {total_s:.0f} s",
        f"- workload: one NodePort Service, E endpoints on {NODES} nodes (spread), 1 worker "
        f"per pod, exponential service mean 1 ms, Poisson {RATE}, random entry node, "
        f"1 request per connection, {SOURCE_IPS} client addresses, seed {SEED}; "
        f"{_n(requests)} requests per run; {_n(args.picks)} picks per loop, best of "
        f"{PICK_REPEATS}",
        "",
        "## kube-proxy's choice per new connection (ns, node 0's table)",
        "",
        "`table.pick(client_ip, src_port, now)`; for IPVS also `opened` and, "
        f"{OPEN_WINDOW} connections later, `closed` (lc and sed keep a tournament tree, "
        "O(log n) per counter change). Growth: the ratio "
        f"{_n(hi)} / {_n(lo)} endpoints and the exponent k of a fit ns ~ E^k "
        "(k = 0 flat, k = 1 a scan of every endpoint).",
        "",
        "| mode | " + " | ".join(f"E = {_n(e)}" for e in sizes)
        + f" | {_n(hi)} / {_n(lo)} | k | endpoints chosen at E = {_n(hi)} |",
        "|---|" + "---:|" * len(sizes) + "---:|---:|---:|",
    ]
    for mode in modes:
        ns = [by[(mode, e)].pick_ns for e in sizes]
        ratio, k = growth(sizes, ns)
        lines.append(f"| {mode} | " + " | ".join(f"{x:,.0f}" for x in ns)
                     + f" | {ratio:.2f}x | {k:.3f} | {_n(by[(mode, hi)].distinct)} |")
    scan = [scans[e] for e in sizes]
    s_ratio, s_k = growth(sizes, scan)
    lines += [
        "| *reference: builtin `min()` over E counters (the cheapest O(n) choice)* | "
        + " | ".join(f"{x:,.0f}" for x in scan) + f" | {s_ratio:,.0f}x | {s_k:.3f} | - |",
        "| *reference: the same loop around a no-op pick* | "
        + " | ".join(f"{overhead:,.0f}" for _ in sizes) + " | - | - | - |",
        "",
        "The figures include the loop (the no-op row). \"Endpoints chosen\": distinct "
        f"endpoints picked in the timed loops on node 0 ({_n(PICK_REPEATS * args.picks)} "
        "connections): sh hashes the source address into 256 buckets and mh into a Maglev "
        "table of 4093 slots, so they reach at most 256 and 4093 endpoints by design.",
        "",
        "## Whole simulation: `Simulation(scenario).run()`, simulated requests per CPU second",
        "",
        f"Whole run of {_n(requests)} requests / its CPU time; in brackets the steady state: "
        "1 / (CPU per request over the second half of the run, when every pod has been "
        "used).",
        "",
        "| mode | " + " | ".join(f"E = {_n(e)}" for e in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for mode in modes:
        lines.append(f"| {mode} | " + " | ".join(
            f"{by[(mode, e)].rate:,.0f} ({by[(mode, e)].steady_rate:,.0f})" for e in sizes)
            + " |")
    lines += [
        "",
        "The gap between the two is one-time work that grows with E (the detail table's "
        "\"one-time CPU\": the run's CPU above N x the steady cost), such as each pod's and "
        "each node pair's random stream drawing its first values when first used; a small "
        "negative figure means the second half ran slower than the average, which is "
        "noise. At low load sed (and nq) keeps choosing the first idle servers in the "
        "kernel's list, so its runs use few pods.",
        "",
        "## Memory of the run: peak RSS during `run()` minus RSS before it (MB)",
        "",
        "Measured in this process after trimming the heap, so memory that earlier runs "
        "left to Python's allocator can make a figure low. It includes the request log "
        "and what the pods and links buffer of their random streams.",
        "",
        "| mode | " + " | ".join(f"E = {_n(e)}" for e in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for mode in modes:
        lines.append(f"| {mode} | " + " | ".join(f"{by[(mode, e)].rss_mb:,.0f}" for e in sizes)
                     + " |")
    lines += [
        "",
        "## Setup (not per connection)",
        "",
        "CPU time of `scenario_from_dict` (s) / `Simulation(scenario)` (s, the faster of 2: "
        f"cluster, pods, {NODES} kube-proxies each programming its table) / one node's "
        "table build alone (`proxy.make_table`, ms: what a sync costs that node).",
        "",
        "| mode | " + " | ".join(f"E = {_n(e)}" for e in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for mode in modes:
        lines.append(f"| {mode} | " + " | ".join(
            f"{by[(mode, e)].scenario_s:.3f} / {by[(mode, e)].build_s:.2f} / "
            f"{by[(mode, e)].table_ms:.1f}" for e in sizes) + " |")
    lines += [
        "",
        "## Detail",
        "",
        "| mode | E | pick ns | run wall s | run CPU s | requests/CPU-s | steady us/request "
        "| one-time CPU s | run peak RSS MB | Simulation() s | table build ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.mode} | {_n(r.endpoints)} | {r.pick_ns:,.0f} | {r.wall_s:.2f} "
                     f"| {r.cpu_s:.2f} | {r.rate:,.0f} | {r.steady_us:.2f} "
                     f"| {r.fixed_s:.2f} | {r.rss_mb:,.0f} | {r.build_s:.2f} "
                     f"| {r.table_ms:.1f} |")
    lines += ["", "## Interpretation", "", interpretation(rows, sizes, scans), ""]
    return "\n".join(lines)


def interpretation(rows: list[Row], sizes: list[int], scans: dict[int, float]) -> str:
    """Two or three sentences with the numbers of this run."""
    by = {(r.mode, r.endpoints): r for r in rows}
    modes = list(dict.fromkeys(r.mode for r in rows))
    lo, hi = sizes[0], sizes[-1]
    ratios = {m: by[(m, hi)].pick_ns / by[(m, lo)].pick_ns for m in modes}
    ks = {m: growth(sizes, [by[(m, e)].pick_ns for e in sizes])[1] for m in modes}
    worst = max(ratios, key=ratios.get)  # type: ignore[arg-type]
    parts = [
        f"From {_n(lo)} to {_n(hi)} endpoints kube-proxy's choice per new connection "
        f"grows at most {ratios[worst]:.2f}x ({worst}; fitted exponents k from "
        f"{min(ks.values()):.2f} to {max(ks.values()):.2f}), while even the cheapest "
        f"scan of every endpoint (builtin `min()`) grows {scans[hi] / scans[lo]:,.0f}x, "
        f"from {scans[lo]:,.0f} to {scans[hi]:,.0f} ns."
    ]
    named = [m for m in ("ipvs lc", "iptables") if (m, hi) in by and (m, lo) in by]
    if named:
        figs = "; ".join(
            f"{m}: {by[(m, hi)].pick_ns:,.0f} ns per choice ({by[(m, lo)].pick_ns:,.0f} at "
            f"{_n(lo)}), {by[(m, hi)].rate:,.0f} simulated requests per CPU second over the "
            f"whole run and {by[(m, hi)].steady_rate:,.0f} in steady state "
            f"({by[(m, lo)].steady_rate:,.0f} at {_n(lo)})" for m in named)
        parts.append(f"At {_n(hi)} endpoints, {figs}.")
    builds = [by[(m, hi)].build_s for m in modes]
    tables = [by[(m, hi)].table_ms for m in modes]
    rss = [by[(m, hi)].rss_mb for m in modes]
    steady = {m: by[(m, hi)].steady_us / by[(m, lo)].steady_us for m in modes}
    flat = min(ratios, key=ratios.get)  # type: ignore[arg-type]


    def one_time_share(m: str) -> float:
        a, b = by[(m, lo)], by[(m, hi)]
        return (b.fixed_s - a.fixed_s) / (b.cpu_s - a.cpu_s)

    extra = ", ".join(f"{one_time_share(m):.0%} for {m}" for m in named or modes[:1])
    parts.append(
        f"Setup is reported apart (building the {_n(hi)}-endpoint simulation takes "
        f"{min(builds):.1f} to {max(builds):.1f} CPU s, {min(tables):.0f} to "
        f"{max(tables):.0f} ms per node's table; one-time work inside the run is {extra} of "
        f"the extra CPU over {_n(lo)} endpoints, and runs peak at most {max(rss):,.0f} MB "
        f"above their starting RSS), and the steady cost per request still rises "
        f"{min(steady.values()):.2f}x to {max(steady.values()):.2f}x, also in modes whose "
        f"choice is flat ({flat}: {steady[flat]:.2f}x), so part of that rise comes from the "
        f"larger working set rather than from the choice.")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke check: {_n(QUICK_REQUESTS)} requests per run, "
                         f"{_n(QUICK_PICKS)} picks; writes no file unless --output")
    ap.add_argument("--requests", type=int, default=None, help="requests per run")
    ap.add_argument("--picks", type=int, default=None, help="picks per timed loop")
    ap.add_argument("--sizes", default=None,
                    help="comma-separated endpoint counts (default 10,100,1000,10000)")
    ap.add_argument("--modes", default=None,
                    help="comma-separated, e.g. 'iptables,ipvs lc' (default: all eight)")
    ap.add_argument("--output", type=Path, default=None,
                    help="markdown file to write (default benchmarks/ENDPOINTS.md; "
                         "--quick writes none unless given)")
    ap.add_argument("--note", default="", help="a line of context for the report")
    args = ap.parse_args(argv)

    requests = args.requests or (QUICK_REQUESTS if args.quick else FULL_REQUESTS)
    args.picks = args.picks or (QUICK_PICKS if args.quick else FULL_PICKS)
    sizes = sorted(int(s) for s in args.sizes.split(",")) if args.sizes else list(SIZES)
    modes = list(MODES)
    if args.modes:
        wanted = [m.strip() for m in args.modes.split(",")]
        modes = [m for m in MODES if label(*m) in wanted]
        unknown = set(wanted) - {label(*m) for m in modes}
        if unknown:
            ap.error(f"unknown modes {sorted(unknown)}; known: {[label(*m) for m in MODES]}")
    if len(sizes) < 2 or requests < 1000:
        ap.error("need at least two sizes and 1000 requests")
    output = args.output or (None if args.quick else OUTPUT)

    args.load_start = os.getloadavg()[0]
    args.source, args.state = npsim_source(), npsim_state()  # what was imported
    started = time.perf_counter()
    overhead = time_loop_overhead(args.picks)
    scans = {e: time_scan(e) for e in sizes}
    rows: list[Row] = []
    for mode, scheduler in modes:
        for e in sizes:
            row = measure(mode, scheduler, e, requests, args.picks)
            rows.append(row)
            print(f"{row.mode:>9} E={e:>6}: pick {row.pick_ns:7,.0f} ns, "
                  f"{row.rate:9,.0f} req/CPU-s ({row.steady_rate:9,.0f} steady), "
                  f"Simulation() {row.build_s:5.2f} s", file=sys.stderr)
    publish(report(args, rows, overhead, scans, time.perf_counter() - started), output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
