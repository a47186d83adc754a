"""Throughput and memory of npsim against a minimal plain-SimPy model of the same traffic.

Both sides simulate the quick-start topology (scenarios/quickstart.yaml): Poisson arrivals
at 2000/s, a random entry node per request (one request per connection), a uniformly
random pod among 4 (4 workers each, exponential service, mean 5 ms), a client round trip
(lognormal, mean 1 ms, cv 0.5) and, when the pod lives on another node than the entry,
the node-to-node hop (lognormal, 90 us same zone / 500 us cross zone: 2/3 of requests
cross). The plain model is what a SimPy user would write first: a process per request
and a ``simpy.Resource`` per pod.

Reported: simulated requests per wall-clock second (median of 3 runs; also per CPU
second, which other load on the machine disturbs less), the ratio npsim/plain, SimPy
events scheduled per request, and peak memory per recorded request
(tracemalloc in this process; peak RSS growth in child processes). Targets: npsim >=
0.8x plain and <= 200 bytes per recorded request.

    .venv/bin/python benchmarks/bench_throughput.py            # full: 1M requests, 3 runs
    .venv/bin/python benchmarks/bench_throughput.py --quick    # smoke: 200k requests, 1 run
    .venv/bin/python benchmarks/bench_throughput.py --profile  # cProfile of npsim, 200k
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import simpy
from benchcommon import (
    ROOT,
    header_lines,
    npsim_source,
    publish,
    reset_peak_rss,
    status_bytes,
    trim_heap,
)
from plain_simpy import SEED, PlainParams, plain_model

import npsim
from npsim.cluster.model import build_cluster
from npsim.dists import Constant, Exponential, LogNormal
from npsim.sim.engine import Simulation

SCENARIO = ROOT / "scenarios" / "quickstart.yaml"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
FULL_REQUESTS = 1_000_000
QUICK_REQUESTS = 200_000
PROFILE_REQUESTS = 200_000
TARGET_RATIO = 0.8
TARGET_BYTES = 200.0


# --- the npsim side ---------------------------------------------------------------------


def npsim_scenario(requests: int) -> npsim.Scenario:
    """quickstart.yaml stopped after ``requests`` requests, no warm-up.

    RunSpec validates every assignment and wants exactly one of duration/requests, so no
    order of two assignments passes; change the dict and validate it again instead.
    """
    base = npsim.load_scenario(SCENARIO)
    data = base.to_dict()
    data["run"].update(duration=None, requests=requests, warmup=0)
    return npsim.scenario_from_dict(data, base_dir=base.base_dir, source=str(SCENARIO))


def events_scheduled(env: simpy.Environment) -> int:
    """Events this environment has put on its heap (SimPy numbers them from 0)."""
    return next(env._eid)  # type: ignore[attr-defined]


def npsim_latency(sim: Simulation) -> np.ndarray:
    cols = sim.log.columns()
    return cols["t_end"] - cols["t_start"]


# --- the plain SimPy side ---------------------------------------------------------------


def _lognormal_params(dist: LogNormal) -> tuple[float, float]:
    sigma2 = math.log1p(dist.cv**2)
    return math.log(dist.mean) - sigma2 / 2, math.sqrt(sigma2)


def plain_params(scenario: npsim.Scenario) -> PlainParams:
    spec = scenario.spec
    (client,) = spec.clients
    (workload,) = spec.workloads.values()
    assert client.entry.kind == "random" and client.requests_per_connection == 1
    assert isinstance(workload.service_time, Exponential) and isinstance(client.rtt, LogNormal)
    rate = client.arrival.steps()
    assert len(rate) == 1
    cluster = build_cluster(scenario)
    n = len(cluster.nodes)
    hops = []
    for a in range(n):
        row: list[tuple[float, float] | None] = []
        for b in range(n):
            dist = cluster.hop_latency(a, b)
            if isinstance(dist, Constant):
                assert dist.value == 0.0
                row.append(None)
            else:
                assert isinstance(dist, LogNormal)
                row.append(_lognormal_params(dist))
        hops.append(tuple(row))
    mu, sigma = _lognormal_params(client.rtt)
    return PlainParams(rate[0][1], n, tuple(p.node for p in cluster.pods), workload.workers,
                       workload.service_time.mean, mu, sigma, tuple(hops))




# --- measuring --------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    requests: int
    seconds: list[float]  # wall clock
    cpu: list[float] = field(default_factory=list)  # this process's CPU time
    events: int = 0
    latency_mean: float = math.nan
    latency_p99: float = math.nan

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        return self.requests / self.median

    @property
    def cpu_rate(self) -> float:
        return self.requests / statistics.median(self.cpu)


class _Clock:
    """Wall and CPU time of a block, appended to a Timing."""

    def __init__(self, t: Timing) -> None:
        self.t = t

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.t.seconds.append(time.perf_counter() - self.wall)
        self.t.cpu.append(time.process_time() - self.cpu)


def _fresh() -> None:
    gc.collect()


def time_npsim_sim(scenario: npsim.Scenario, t: Timing) -> None:
    _fresh()
    with _Clock(t):
        sim = Simulation(scenario)
        sim.run()
    assert len(sim.log) == t.requests
    t.events = events_scheduled(sim.env)
    lat = npsim_latency(sim)
    t.latency_mean, t.latency_p99 = float(np.mean(lat)), float(np.quantile(lat, 0.99))


def time_npsim_api(scenario: npsim.Scenario, t: Timing) -> None:
    _fresh()
    with _Clock(t):
        result = npsim.run(scenario)
    assert len(result.requests) == t.requests
    lat = result.requests["latency"].to_numpy()
    t.latency_mean, t.latency_p99 = float(np.nanmean(lat)), float(np.nanquantile(lat, 0.99))


def time_plain(params: PlainParams, t: Timing) -> None:
    _fresh()
    with _Clock(t):
        env, latencies = plain_model(params, t.requests)
    assert len(latencies) == t.requests
    t.events = events_scheduled(env)
    lat = np.asarray(latencies)
    t.latency_mean, t.latency_p99 = float(np.mean(lat)), float(np.quantile(lat, 0.99))


def tracemalloc_npsim(scenario: npsim.Scenario) -> dict[str, float]:
    """Peak and retained bytes allocated while building and running one Simulation."""
    _fresh()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        sim = Simulation(scenario)
        sim.run()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"peak": peak - before, "retained": current - before, "log": sim.log.nbytes(),
            "n": len(sim.log)}


def _peak_rss() -> int:
    """Peak RSS of this process image. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    from the parent through fork and exec, so a child of a big parent starts high."""
    hwm = status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _rss_now() -> int:
    return status_bytes("VmRSS") or _peak_rss()


def child_peak_rss(kind: str, requests: int) -> dict[str, float]:
    """In a fresh interpreter: peak RSS during one run minus the RSS just before it
    (imports, scenario and a 1000-request warm-up run already done)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
           "--requests", str(requests)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_child(kind: str, requests: int) -> None:
    scenario = npsim_scenario(requests)
    params = plain_params(scenario)
    run: Callable[[], object]
    if kind == "npsim-sim":
        def run() -> object:
            return Simulation(scenario).run()
    elif kind == "npsim-api":
        def run() -> object:
            return npsim.run(scenario)
    elif kind == "plain":
        def run() -> object:
            return plain_model(params, requests)
    else:
        raise SystemExit(f"unknown child kind {kind!r}")
    # warm the code paths and the allocator on a tiny run, so the delta is the run's own
    if kind != "plain":
        npsim.run(npsim_scenario(1000))
    else:
        plain_model(params, 1000)
    gc.collect()
    trim_heap()
    before = _rss_now()
    reset = reset_peak_rss()
    keep = run()
    after = _peak_rss()  # the high-water mark: includes transients during the run
    del keep
    print(json.dumps({"before": before, "after": after, "delta": after - before,
                      "n": requests, "reset": reset}))


# --- reporting --------------------------------------------------------------------------


def _ms(x: float) -> str:
    return f"{x * 1e3:.3f}"


def report(args: argparse.Namespace, timings: list[Timing], mem: dict[str, float],
           rss: dict[str, dict[str, float]]) -> str:
    sim, api, plain = timings
    n = sim.requests
    ratio = sim.rate / plain.rate
    per_req = mem["peak"] / mem["n"]
    lines = [
        "# npsim throughput benchmark",
        "",
        *header_lines(args.quick, npsim_source(), args.note),
        f"- load average (1 min) at start/end: {args.load_start:.2f} / {os.getloadavg()[0]:.2f}"
        " (other processes on the machine add noise; the interleaved runs share it)",
        f"- workload: scenarios/quickstart.yaml, {n:,} requests, warm-up 0, seed {SEED}; "
        f"median of {len(sim.seconds)} run(s), runs interleaved in one process",
        "",
        "## Throughput",
        "",
        "| model | wall s (median) | runs, wall s | simulated requests/s (wall) "
        "| CPU s (median) | requests/CPU-s | events/request | mean latency, ms "
        "| p99 latency, ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        runs = ", ".join(f"{s:.2f}" for s in t.seconds)
        events = f"{t.events / t.requests:.2f}" if t.events else "-"
        lines.append(f"| {t.name} | {t.median:.2f} | {runs} | {t.rate:,.0f} "
                     f"| {statistics.median(t.cpu):.2f} | {t.cpu_rate:,.0f} | {events} "
                     f"| {_ms(t.latency_mean)} | {_ms(t.latency_p99)} |")
    frames = statistics.median(api.cpu) - statistics.median(sim.cpu)
    lines += [
        "",
        f"- **npsim / plain = {ratio:.2f}x** (Simulation.run() against the plain model; "
        f"target >= {TARGET_RATIO}x: {'met' if ratio >= TARGET_RATIO else 'NOT met'})",
        f"- the same ratio in CPU time: {sim.cpu_rate / plain.cpu_rate:.2f}x (less sensitive to "
        "other processes competing for the CPUs)",
        f"- npsim.run() (simulation + frames + summary) / plain = {api.rate / plain.rate:.2f}x "
        f"(wall), {api.cpu_rate / plain.cpu_rate:.2f}x (CPU); frames and summary add about "
        f"{frames:.2f} CPU s per {n:,} requests "
        f"({frames / n * 1e6:.2f} us/request)",
        "- events/request: SimPy events scheduled (heap pushes) per simulated request",
        "- latencies are from arrival to the client seeing the response; they should agree "
        "between models (same traffic, different random streams)",
        "",
        "## Memory per recorded request (npsim, Simulation(...).run())",
        "",
        "| measure | total, MB | bytes/request |",
        "|---|---:|---:|",
        f"| tracemalloc peak while building and running the simulation | "
        f"{mem['peak'] / 1e6:.1f} | {per_req:.1f} |",
        f"| tracemalloc retained after the run (the RequestLog and friends) | "
        f"{mem['retained'] / 1e6:.1f} | {mem['retained'] / mem['n']:.1f} |",
        f"| RequestLog.nbytes() (column payload) | {mem['log'] / 1e6:.1f} | "
        f"{mem['log'] / mem['n']:.1f} |",
    ]
    rss_what = "peak RSS during the run minus RSS before it, child process"
    labels = {"npsim-sim": f"{rss_what}: Simulation(...).run()",
              "npsim-api": f"{rss_what}: npsim.run() incl. DataFrames (for information)",
              "plain": f"{rss_what}: plain SimPy, latencies list only (for information)"}
    for kind, r in rss.items():
        lines.append(f"| {labels[kind]} | {r['delta'] / 1e6:.1f} | {r['delta'] / r['n']:.1f} |")
    rss_sim = rss.get("npsim-sim")
    worst = max(per_req, rss_sim["delta"] / rss_sim["n"]) if rss_sim else per_req
    lines += [
        "",
        f"- **peak bytes per recorded request: {per_req:.0f} (tracemalloc)"
        + (f", {rss_sim['delta'] / rss_sim['n']:.0f} (peak RSS)" if rss_sim else "")
        + f"**; target <= {TARGET_BYTES:.0f}: {'met' if worst <= TARGET_BYTES else 'NOT met'}",
        "",
    ]
    return "\n".join(lines)


def profile(requests: int, top: int = 15) -> str:
    scenario = npsim_scenario(requests)
    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.enable()
    Simulation(scenario).run()
    prof.disable()
    wall = time.perf_counter() - started
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    return f"cProfile of Simulation(...).run(), {requests:,} requests, {wall:.2f} s " \
           f"under the profiler\n{buf.getvalue()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke check: {QUICK_REQUESTS:,} requests, 1 run, RESULTS.md untouched")
    ap.add_argument("--requests", type=int, default=None, help="requests per run")
    ap.add_argument("--runs", type=int, default=None, help="runs per model (median reported)")
    ap.add_argument("--output", type=Path, default=None,
                    help="markdown file to write (default benchmarks/RESULTS.md; "
                         "--quick writes none unless given)")
    ap.add_argument("--note", default="", help="a line of context for the report "
                    "(e.g. where the measured npsim came from)")
    ap.add_argument("--no-rss", action="store_true", help="skip the child-process peak-RSS runs")
    ap.add_argument("--profile", action="store_true",
                    help=f"only profile npsim ({PROFILE_REQUESTS:,} requests unless "
                         "--requests), top 15 by tottime")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        run_child(args.child, args.requests)
        return 0
    if args.profile:
        print(profile(args.requests or PROFILE_REQUESTS))
        return 0

    requests = args.requests or (QUICK_REQUESTS if args.quick else FULL_REQUESTS)
    runs = args.runs or (1 if args.quick else 3)
    output = args.output or (None if args.quick else RESULTS)

    args.load_start = os.getloadavg()[0]
    scenario = npsim_scenario(requests)
    params = plain_params(scenario)
    sim = Timing("npsim `Simulation(...).run()`", requests, [])
    api = Timing("npsim `npsim.run()` (sim + frames + summary)", requests, [])
    plain = Timing("plain SimPy (process per request, Resource per pod)", requests, [])
    for i in range(runs):
        for label, step in (("npsim sim", lambda: time_npsim_sim(scenario, sim)),
                            ("plain", lambda: time_plain(params, plain)),
                            ("npsim.run", lambda: time_npsim_api(scenario, api))):
            step()
            last = {"npsim sim": sim, "plain": plain, "npsim.run": api}[label]
            print(f"run {i + 1}/{runs} {label:>9}: {last.seconds[-1]:.2f} s", file=sys.stderr)

    print("memory: tracemalloc ...", file=sys.stderr)
    mem = tracemalloc_npsim(scenario)
    rss: dict[str, dict[str, float]] = {}
    if not args.no_rss:
        for kind in ("npsim-sim", "npsim-api", "plain"):
            print(f"memory: peak RSS, child {kind} ...", file=sys.stderr)
            rss[kind] = child_peak_rss(kind, requests)

    publish(report(args, [sim, api, plain], mem, rss), output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
