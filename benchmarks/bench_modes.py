"""Simulation speed per kube-proxy mode, this checkout against another, interleaved.

Each round runs, in fresh child processes and in turn, this checkout and the other one
(``--against DIR``, a checkout of npsim; e.g. a ``git worktree`` of the old main) on
the same cases: the quick-start traffic (scenarios/quickstart.yaml, a request-count run,
no warm-up) under each mode, one request per connection and 20 per connection (keep-alive),
and the node-failure scenario (a node crashes mid-run). A child times only the
simulation (``Simulation(...).run()``, CPU seconds), not the imports or the frames. The
report gives per case the median requests per CPU-second of each side over the rounds
and the median of the per-round ratios (this / other): background load falls on both
sides of a round alike, so the ratio is steadier than the absolute figures.

    .venv/bin/python benchmarks/bench_modes.py --against ../old-main            # 5 rounds
    .venv/bin/python benchmarks/bench_modes.py --against ../old-main --rounds 9 --requests 400000
    .venv/bin/python benchmarks/bench_modes.py --against ../old-main --instructions

On a shared machine single runs of the same code vary by +-30% here. ``--instructions``
counts instead the machine instructions one request costs, with valgrind's callgrind
(the same count for the same code and inputs, whatever else runs): each case is run at
``--requests`` and at three times as many, and the difference divided by the extra
requests is the cost per request (imports and the build cancel out). It takes about
half a minute per run under callgrind; two run at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
MODES = ("iptables", "ipvs", "nftables", "userspace")


def cases(requests: int) -> dict[str, tuple[str, dict[str, object]]]:
    """case -> (bundled scenario file, changes)."""
    count = {"run.duration": None, "run.requests": requests, "run.warmup": "0s"}
    out: dict[str, tuple[str, dict[str, object]]] = {}
    for mode in MODES:
        out[mode] = ("quickstart.yaml", {**count, "cluster.proxyMode": mode})
        out[f"{mode}, 20/connection"] = ("quickstart.yaml", {
            **count, "cluster.proxyMode": mode, "clients[0].requestsPerConnection": 20})
    out["iptables, node crash"] = ("node-failure.yaml", {
        "run.duration": None, "run.requests": requests // 2, "run.warmup": "0s"})
    return out


def child(case: str, requests: int) -> None:
    """Time one case's simulation in this process and print requests per CPU-second."""
    import npsim
    from npsim.scenario.changes import with_changes
    from npsim.sim.engine import Simulation

    file, changes = cases(requests)[case]
    scenario = with_changes(npsim.load_scenario(HERE / "scenarios" / file), changes)
    sim = Simulation(scenario)
    started = time.process_time()
    out = sim.run()
    cpu = time.process_time() - started
    print(json.dumps({"requests": len(out.log.t_start), "cpu": cpu,
                      "npsim": str(Path(npsim.__file__).parent)}))


def measure(checkout: Path, case: str, requests: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", case,
                           "--requests", str(requests)], env=env, cwd="/",
                          capture_output=True, text=True, check=True)
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(row["npsim"]).resolve() != (checkout / "npsim").resolve():
        raise SystemExit(f"the child imported {row['npsim']}, not {checkout}/npsim")
    return row["requests"] / row["cpu"]


def instructions(checkout: Path, case: str, requests: int) -> tuple[int, int]:
    """Instructions callgrind counts for one whole child process of ``case``, and the
    requests the child simulated."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
             sys.executable, str(Path(__file__).resolve()), "--child", case,
             "--requests", str(requests)],
            env=env, cwd="/", capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if match is None:
        raise SystemExit(f"callgrind printed no count for {case!r}:\n{proc.stderr[-2000:]}")
    return int(match.group(1)), json.loads(proc.stdout.strip().splitlines()[-1])["requests"]


def per_request_instructions(checkouts: list[Path], names: list[str],
                             requests: int) -> dict[tuple[Path, str], float]:
    jobs = [(c, n, r) for c in checkouts for n in names for r in (requests, 3 * requests)]
    with ThreadPoolExecutor(2) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: instructions(*job), jobs), strict=True))
    per_request = {}
    for c in checkouts:
        for n in names:
            (small, done_small), (large, done_large) = (counts[(c, n, requests)],
                                                        counts[(c, n, 3 * requests)])
            per_request[(c, n)] = (large - small) / (done_large - done_small)
    return per_request


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", type=Path, help="another npsim checkout")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--only", default="", help="cases whose name contains this")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions per request with valgrind (deterministic)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.requests)
        return 0
    if args.against is None:
        ap.error("--against DIR is required (another npsim checkout)")
    other = args.against.resolve()
    names = [c for c in cases(args.requests) if args.only in c]
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
        requests = args.requests if args.requests != 200_000 else 20_000
        got = per_request_instructions([HERE, other], names, requests)
        print(f"this: {HERE}\nother: {other}\ninstructions per request (callgrind), "
              f"runs of {requests:,} and {3 * requests:,} requests\n")
        print("| case | this | other | speed ratio (other / this: above 1, this does less) |")
        print("|---|---:|---:|---:|")
        for case in names:
            mine, theirs = got[(HERE, case)], got[(other, case)]
            print(f"| {case} | {mine:,.0f} | {theirs:,.0f} | {theirs / mine:.3f} |")
        return 0
    this_rates: dict[str, list[float]] = {c: [] for c in names}
    other_rates: dict[str, list[float]] = {c: [] for c in names}
    load = os.getloadavg()[0]
    for r in range(args.rounds):
        for case in names:
            first, second = (HERE, other) if r % 2 == 0 else (other, HERE)
            a = measure(first, case, args.requests)
            b = measure(second, case, args.requests)
            mine, theirs = (a, b) if first == HERE else (b, a)
            this_rates[case].append(mine)
            other_rates[case].append(theirs)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"this: {HERE}\nother: {other}\n{args.rounds} rounds, {args.requests:,} requests "
          f"per run, load {load:.1f} -> {os.getloadavg()[0]:.1f}\n")
    print("| case | this (req/CPU-s) | other (req/CPU-s) | ratio (median of rounds) | "
          "min-max |")
    print("|---|---:|---:|---:|---:|")
    for case in names:
        ratios = [m / t for m, t in zip(this_rates[case], other_rates[case], strict=True)]
        print(f"| {case} | {statistics.median(this_rates[case]):,.0f} | "
              f"{statistics.median(other_rates[case]):,.0f} | "
              f"{statistics.median(ratios):.3f} | {min(ratios):.3f}-{max(ratios):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
