"""Parallel runs: a 32-run sweep on 2 processes against 1, ``npsim run --jobs 2`` against
``--jobs 1`` on 4 replications as a whole command (a fresh process each time: imports,
replications, frames, parquet and the report, whose figures ``--jobs 2`` draws on 2
processes), and a Dask LocalCluster (2 workers) against the local pool. Timings are wall
clock of the whole call (pool start-up included); rounds are interleaved (A B B A ...)
so that other load on the machine hits both sides alike.

Run: .venv/bin/python benchmarks/bench_sweep.py [--rounds N] [--quick] [--output FILE]
(default output benchmarks/SWEEP.md; --quick writes nothing unless --output is given).
The headline figures are quoted in benchmarks/RESULTS.md ("Parallel runs").
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchcommon import ROOT, header_lines, npsim_source, publish

import npsim


def scenario(quick: bool) -> npsim.Scenario:
    """The quick start with 4 variants (workers 3..6) x 8 replications = 32 runs."""
    base = npsim.load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    return base.with_changes({
        "run.duration": "5s" if quick else "30s", "run.warmup": "1s", "run.replications": 8,
        "variants": {"grid": {"workloads.nginx.workers": [3, 4, 5, 6]}}})


def timed(fn) -> tuple[float, float, float]:  # noqa: ANN001
    """Wall s, this process's CPU s, and its (reaped) worker processes' CPU s."""
    cpu0 = os.times()
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    cpu1 = os.times()
    own = cpu1.user - cpu0.user + cpu1.system - cpu0.system
    workers = (cpu1.children_user - cpu0.children_user
               + cpu1.children_system - cpu0.children_system)
    return wall, own, workers


JOBS = {"2 processes": 2, "run --jobs 2": 2}
CPU: dict[str, list[float]] = {}  # CPU s of this process and its reaped children
# idle-machine wall implied by CPU: this process's work runs alone, the workers' in parallel
IDLE: dict[str, list[float]] = {}


def interleave(rounds: int, sides: dict[str, object]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            wall, own, workers = timed(sides[name])
            out[name].append(wall)
            CPU.setdefault(name, []).append(own + workers)
            if COMMAND:  # a whole command: its own process is the serial part
                own, workers = COMMAND.pop()
            IDLE.setdefault(name, []).append(own + workers / JOBS.get(name, 1))
    return out


def fresh_sweep(s: npsim.Scenario, **kw) -> None:  # noqa: ANN003
    out = Path(tempfile.mkdtemp(prefix="npsim-bench-"))
    try:
        npsim.run_sweep(s, out, **kw)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run_command(jobs: int, duration: str) -> None:
    """The whole ``npsim run`` of the quick start with 4 replications in a fresh process:
    imports, replications, frames, summary, parquet and the report (its figures drawn on
    ``jobs`` processes)."""
    out = Path(tempfile.mkdtemp(prefix="npsim-bench-"))
    try:
        done = subprocess.run([sys.executable, "-P", "-c", CLI, "run", "scenarios/quickstart.yaml",
                        "--replications", "4", "--jobs", str(jobs), "--set",
                        f"run.duration={duration}", "--set", "run.warmup=1s", "--out",
                        str(out / "run")], cwd=ROOT,
                       check=True, capture_output=True, text=True)
        own, workers = re.findall(r"command CPU ([0-9.]+) ([0-9.]+)", done.stderr)[-1]
        COMMAND.append((float(own), float(workers)))
    finally:
        shutil.rmtree(out, ignore_errors=True)


# the command, printing at exit its own CPU s and its reaped children's (the pool's
# workers, the processes that drew figures)
CLI = ("import atexit, os, sys; from npsim.cli import main; sys.argv[0] = 'npsim'\n"
       "def spent():\n"
       "    t = os.times()\n"
       "    print(f'command CPU {t.user + t.system} {t.children_user + t.children_system}',"
       " file=sys.stderr)\n"
       "atexit.register(spent); main()")
COMMAND: list[tuple[float, float]] = []  # (own, children) CPU s of the last command


def row(times: dict[str, list[float]]) -> list[str]:
    out = []
    for name, v in times.items():
        cpu = statistics.median(CPU[name])
        cpu_text = f"{cpu:.2f}" if "Dask" not in name else "-"
        out.append(f"| {name} | {statistics.median(v):.2f} | "
                   f"{', '.join(f'{x:.2f}' for x in v)} | {cpu_text} |")
    return out


def projected(one: str, two: str) -> str:
    """Idle-machine speed-up implied by CPU time: the workers' CPU shared by two cores,
    the serial process's own work (variants, tables, figure, frames) not."""
    return f"{statistics.median(IDLE[one]) / statistics.median(IDLE[two]):.2f}x"


def run_line(run_times: dict[str, list[float]]) -> str:
    one, two = run_times["run --jobs 1"], run_times["run --jobs 2"]
    per_round = statistics.median(a / b for a, b in zip(one, two, strict=True))
    return (f"- **`npsim run` of the quick start, 4 replications, the whole command (a fresh "
            f"process: imports, frames, parquet and report), --jobs 2 vs 1: "
            f"{statistics.median(one) / statistics.median(two):.2f}x** (target >= 1.7x); the "
            f"median of the per-round ratios: {per_round:.2f}x; CPU time implies at least "
            f"{projected('run --jobs 1', 'run --jobs 2')} on an idle machine (the command's "
            "own process taken as serial, even while its workers and drawing processes run; "
            "theirs shared by 2 cores)")


def publish_run_only(args: argparse.Namespace, run_times: dict[str, list[float]],
                     load0: float) -> None:
    lines = ["# Parallel runs (benchmarks/bench_sweep.py --run-only)", "",
             *header_lines(args.quick, npsim_source(), ""),
             f"- load average (1 min) at start/end: {load0:.2f} / {os.getloadavg()[0]:.2f}",
             "", "| what | wall s (median) | rounds, wall s | CPU s (median, with workers) |",
             "|---|---:|---|---:|", *row(run_times), "", run_line(run_times)]
    publish("\n".join(lines) + "\n", args.output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--run-only", action="store_true",
                        help="only npsim run --jobs 1 against 2 (no sweep, no Dask)")
    args = parser.parse_args()
    s = scenario(args.quick)
    load0 = os.getloadavg()[0]
    duration = "5s" if args.quick else "60s"
    if args.run_only:
        run_times = interleave(args.rounds, {
            "run --jobs 1": lambda: run_command(1, duration),
            "run --jobs 2": lambda: run_command(2, duration)})
        return publish_run_only(args, run_times, load0)
    # the fork server starts once per process: warm it so both sides pay the same
    fresh_sweep(s.with_changes({"run.replications": 2}), jobs=2)

    sweep_times = interleave(args.rounds, {
        "1 process": lambda: fresh_sweep(s, jobs=1),
        "2 processes": lambda: fresh_sweep(s, jobs=2)})

    run_times = interleave(args.rounds, {
        "run --jobs 1": lambda: run_command(1, duration),
        "run --jobs 2": lambda: run_command(2, duration)})

    from dask.distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    dask_start = time.perf_counter() - start
    fresh_sweep(s.with_changes({"run.replications": 2}), client=client)  # workers import npsim
    dask_times = interleave(args.rounds, {
        "local pool, 2 processes": lambda: fresh_sweep(s, jobs=2),
        "Dask LocalCluster, 2 workers": lambda: fresh_sweep(s, client=client)})
    client.close()
    cluster.close()
    load1 = os.getloadavg()[0]

    med = {k: statistics.median(v) for d in (sweep_times, run_times, dask_times)
           for k, v in d.items()}
    lines = ["# Parallel runs (benchmarks/bench_sweep.py)", "",
             *header_lines(args.quick, npsim_source(), ""),
             f"- load average (1 min) at start/end: {load0:.2f} / {load1:.2f} (above the core "
             "count, other processes take CPU from both sides)",
             f"- sweep: quickstart, 4 variants x 8 replications = 32 runs of "
             f"{s.spec.run.duration:g}s at 2000/s, each run written as a result folder",
             "", "| what | wall s (median) | rounds, wall s | CPU s (median, with workers) |",
             "|---|---:|---|---:|",
             *row(sweep_times), *row(run_times), *row(dask_times), "",
             f"- **32-run sweep, 2 processes vs 1: {med['1 process'] / med['2 processes']:.2f}x**"
             f" (target >= 1.9x); CPU time implies {projected('1 process', '2 processes')} "
             "on an idle machine",
             run_line(run_times),
             f"- **Dask LocalCluster (2 workers) vs local pool: "
             f"{(med['Dask LocalCluster, 2 workers'] / med['local pool, 2 processes'] - 1):+.1%}"
             f" overhead** (target < 10%); starting the cluster took {dask_start:.1f}s (not "
             "counted)"]
    output = args.output or (None if args.quick else ROOT / "benchmarks" / "SWEEP.md")
    publish("\n".join(lines) + "\n", output)


if __name__ == "__main__":
    main()
