"""What a pod's calls cost: CPU per client request when each makes k calls.

The issue's target (issue 21): a request that makes k calls costs at most about (k + 1)
times a one-tier request (each call is a request of its own through the caller node's
kube-proxy, plus the bookkeeping of the call tree). The one-tier side is the same
frontend with no ``calls:`` (its pods then need not report ends: the fast path with
quiet pods), so the ratio also shows what the calls' pods cost: the calling frontend
is event-driven, the catalog a quiet callee (served at each call's arrival,
npsim/sim/quiet_callee.py). Rounds are interleaved; the median per k is reported.

    .venv/bin/python benchmarks/bench_calls.py            # 3 rounds, 40 s simulated
    .venv/bin/python benchmarks/bench_calls.py --quick    # 1 round, 10 s
    .venv/bin/python benchmarks/bench_calls.py --instructions
    .venv/bin/python benchmarks/bench_calls.py --before /tmp/base   # against another tree

``--before TREE`` measures this tree and the npsim source tree at TREE (e.g. ``git
archive main | tar -x -C /tmp/base``) in child processes, alternating round by round, so
that the machine's load falls on both alike, and prints the after/before ratio of CPU
per request for each k (issue 21: the one-tier k=0 at least 0.97).

``--instructions`` counts instead what callgrind counts (valgrind, the same for the same
code whatever else runs on the machine) while ``Simulation.run`` runs (the child
switches instrumentation on and off around it with ``callgrind_control``), at 1 s and
3 s simulated: the difference over the extra client requests is the cost of one. It
takes about three minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import npsim
from npsim.scenario.bundled import bundled_path
from npsim.sim.engine import Simulation

KS = (0, 1, 2, 4)
ROOT = Path(__file__).resolve().parent.parent


def scenario(k: int, duration: float, events: bool = False) -> npsim.Scenario:
    data = {
        "name": f"calls-{k}",
        "cluster": {"proxyMode": "iptables",
                    "nodes": [{"name": "node-1", "zone": "zone-a"},
                              {"name": "node-2", "zone": "zone-a"},
                              {"name": "node-3", "zone": "zone-b"}]},
        "manifests": [str(bundled_path("three-tier-shop").parent / "manifests"
                           / "shop.yaml")],
        "workloads": {
            "frontend": {"workers": 16, "serviceTime": {"dist": "exponential", "mean": "2ms"},
                         **({"calls": [{"service": "catalog", "port": "grpc", "count": k}]}
                            if k else {})},
            "catalog": {"workers": 8, "serviceTime": {"dist": "exponential", "mean": "1ms"}},
            "cart": {"workers": 1, "serviceTime": {"dist": "exponential", "mean": "1ms"}},
            "redis-cart": {"workers": 1, "serviceTime": {"dist": "exponential",
                                                          "mean": "1ms"}},
        },
        "clients": [{"name": "shoppers", "service": "frontend", "sourceIPs": 500,
                     "arrival": {"rate": "1000/s"}, "entry": "random",
                     # a request timeout makes the pods report ends: event-driven pods
                     **({"requestTimeout": "60s"} if events else {})}],
        "run": {"duration": f"{duration}s", "seed": 1},
    }
    return npsim.scenario_from_dict(data, base_dir="/")


def cpu_per_request(k: int, duration: float, events: bool = False) -> float:
    sim = Simulation(scenario(k, duration, events), 0)
    started = time.process_time()
    out = sim.run()
    spent = time.process_time() - started
    clients = sum(1 for p in out.log.population if p == 0)
    return spent / clients


def _toggle(on: bool) -> None:
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
                   check=True, capture_output=True)


def child(k: int, events: bool, duration: float) -> None:
    """Under callgrind: run with instrumentation on for ``Simulation.run`` only."""
    sim = Simulation(scenario(k, duration, events), 0)
    _toggle(True)
    out = sim.run()
    _toggle(False)
    print(json.dumps({"clients": sum(1 for p in out.log.population if p == 0)}))


def instructions(k: int, events: bool, duration: float) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={tmp}/out", sys.executable, __file__, "--child",
             str(k), str(int(events)), str(duration)],
            # a fixed hash seed: dicts and sets then cost the same in every run
            env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
            check=True)
    count = re.search(r"Collected : (\d+)", proc.stderr)
    if count is None:
        raise SystemExit(f"callgrind printed no count:\n{proc.stderr[-2000:]}")
    return int(count.group(1)), json.loads(proc.stdout.strip().splitlines()[-1])["clients"]


def per_request(k: int, events: bool = False) -> float:
    (small, n_small), (large, n_large) = (instructions(k, events, d) for d in (1.0, 3.0))
    return (large - small) / (n_large - n_small)


def one_round(duration: float) -> dict[str, float]:
    """CPU seconds per client request: the event-driven one-tier ("e") and each k."""
    costs = {"e": cpu_per_request(0, duration, events=True)}
    for k in KS:
        costs[str(k)] = cpu_per_request(k, duration)
    return costs


def round_in(tree: Path, duration: float) -> dict[str, float]:
    """:func:`one_round` in a child process that imports npsim from ``tree``."""
    proc = subprocess.run([sys.executable, __file__, "--round-child", str(duration)],
                          env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def against(before: Path, rounds: int, duration: float) -> None:
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(rounds):
        for name, tree in (("before", before), ("after", ROOT)):
            runs[name].append(round_in(tree, duration))
    print(f"{'case':>12} {'before us':>10} {'after us':>9} {'after/before CPU':>17}"
          f" {'before/after speed':>19}")
    for key, label in (("e", "0 (events)"), *((str(k), str(k)) for k in KS)):
        b = statistics.median(r[key] for r in runs["before"])
        a = statistics.median(r[key] for r in runs["after"])
        print(f"{label:>12} {b * 1e6:10.1f} {a * 1e6:9.1f} {a / b:17.3f} {b / a:19.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--instructions", action="store_true",
                        help="instructions per client request under callgrind")
    parser.add_argument("--before", type=Path,
                        help="npsim source tree to measure against, interleaved")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, --quick 1)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--round-child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1] == "1", float(args.child[2]))
        return
    if args.round_child:
        print(json.dumps(one_round(args.round_child)))
        return
    if args.instructions:
        quiet, event = per_request(0), per_request(0, events=True)
        print(f"one-tier: {quiet:,.0f} instructions/request with quiet pods, "
              f"{event:,.0f} with event-driven pods")
        for k in KS[1:]:
            n = per_request(k)
            print(f"k={k}: {n:,.0f} instructions/request, {n / quiet:.2f}x quiet, "
                  f"{n / event:.2f}x event-driven (target {k + 1})")
        return
    rounds, duration = (1, 10.0) if args.quick else (3, 40.0)
    rounds = args.rounds or rounds
    if args.before is not None:
        against(args.before, rounds, duration)
        return
    costs: dict[int, list[float]] = {k: [] for k in KS}
    evented: list[float] = []
    for _ in range(rounds):
        evented.append(cpu_per_request(0, duration, events=True))
        for k in KS:
            costs[k].append(cpu_per_request(k, duration))
    quiet, event = statistics.median(costs[0]), statistics.median(evented)
    print(f"one-tier: {quiet * 1e6:.1f} us/request with quiet pods (served after the run), "
          f"{event * 1e6:.1f} us with event-driven pods (what pods that call need)")
    print(f"{'k':>3} {'us/request':>11} {'x quiet':>8} {'x event-driven':>15} {'target':>7}")
    for k in KS:
        c = statistics.median(costs[k])
        print(f"{k:>3} {c * 1e6:11.1f} {c / quiet:8.2f} {c / event:15.2f} {k + 1:7d}")


if __name__ == "__main__":
    main()
