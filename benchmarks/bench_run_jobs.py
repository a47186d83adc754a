"""What ``npsim run`` costs as a whole command beyond its simulation, and what ``--jobs 2``
gains on 4 replications (issue 23: the quick start within 0.5 s of its simulation;
``--jobs 2`` >= 1.7x one job).

Run: .venv/bin/python benchmarks/bench_run_jobs.py [--runs 5] [--before DIR]

Each command runs in a fresh child process, the commands taking turns (round-robin), so
background load falls on all of them alike. Wall time and CPU time (user + system, the
child's and every process it waited for: pool workers, the drawing processes) come from
the child's own rusage. The quick-start rows print the simulation's own wall time (the
command's first line) and CPU time (``Simulation.run`` timed in the child), and "beyond"
is the command minus them. The ``--jobs`` rows run the quick start with 4 replications:
``--jobs 1`` (everything in one process), the default (replications in this process,
the report's figures on the cores it may use) and ``--jobs 2``; the speed-up is the
median over rounds of each round's ratio. ``--before DIR`` (e.g. ``git archive main
npsim | tar -x -C DIR``) times another copy of npsim in the same rounds. The load average
is printed: on a loaded machine the CPU times are the steadier figures.

Writes its section into benchmarks/STARTUP.md, below the part bench_startup.py writes
(``--output`` to change, ``--quick`` for 2 runs and no file).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchcommon import (
    KEEP_MARKER,
    ROOT,
    RUN_CLI,
    header_lines,
    npsim_copies,
    npsim_source,
    report_parser,
)

OUTPUT = ROOT / "benchmarks" / "STARTUP.md"
HEADING = "## `npsim run` beyond its simulation, and `--jobs 2` (bench_run_jobs.py)"
SCENARIO = "scenarios/quickstart.yaml"
RUN_TARGET_S = 0.5
JOBS_TARGET = 1.7
QUICK = {"`npsim run quickstart`": [], "`npsim run quickstart --jobs 1`": ["--jobs", "1"],
         "`npsim run quickstart --no-report`": ["--no-report"]}
REPS = ["--replications", "4"]
JOBS = {"`--replications 4 --jobs 1`": [*REPS, "--jobs", "1"],
        "`--replications 4` (default)": REPS,
        "`--replications 4 --jobs 2`": [*REPS, "--jobs", "2"]}
ONE_JOB, TWO_JOBS = "`--replications 4 --jobs 1`", "`--replications 4 --jobs 2`"


def _timed(copy: Path | None, scratch: Path, extra: list[str]) -> tuple[float, ...]:
    """Wall s, CPU s of one whole ``npsim run`` into a new folder, and its simulation's
    wall s and CPU s (summed over replications run in this process)."""
    folder = Path(tempfile.mkdtemp(dir=scratch))
    printed = folder / "output.txt"
    env = dict(os.environ)
    if copy is not None:
        env["PYTHONPATH"] = str(copy)
    argv = [sys.executable, "-P", "-c", RUN_CLI, "run", SCENARIO, "--out",
            str(folder / "out"), *extra]
    start = time.perf_counter()
    with open(printed, "wb") as out:
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=out)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    text = printed.read_text()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(argv)} failed: {text[-500:]}")
    sim_wall = re.search(r"simulated \S+ in ([0-9.]+)s wall", text)
    sim_cpu = re.search(r"simulation CPU ([0-9.e-]+)", text)
    if sim_wall is None or sim_cpu is None:
        raise SystemExit(f"npsim run printed no simulation time: {text[:300]}")
    shutil.rmtree(folder)
    return (wall, usage.ru_utime + usage.ru_stime, float(sim_wall.group(1)),
            float(sim_cpu.group(1)))


def _rounds(copies: dict[str, Path | None], runs: int, scratch: Path
            ) -> dict[tuple[str, str], list[tuple[float, ...]]]:
    times: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for _ in range(runs):
        for label, extra in {**QUICK, **JOBS}.items():
            for which, copy in copies.items():
                times.setdefault((label, which), []).append(_timed(copy, scratch, extra))
    return times


def _median(rows: list[tuple[float, ...]], at: int) -> float:
    return statistics.median(r[at] for r in rows)


def _speedup(times: dict, which: str, at: int) -> float:
    """The median over rounds of one job's time over two jobs' (wall: at=0, CPU: 1)."""
    return statistics.median(one[at] / two[at] for one, two in
                             zip(times[ONE_JOB, which], times[TWO_JOBS, which], strict=True))


def _section(times: dict, copies: dict[str, Path | None], runs: int, loads: tuple,
             quick: bool, before: Path | None) -> str:
    lines = [HEADING, "", *header_lines(quick, npsim_source(), ""),
             f"- load average (1 min) at start/end: {loads[0]:.2f} / {loads[1]:.2f} (wall "
             "time includes waiting for other processes; CPU time counts every process of "
             "the command)",
             f"- {runs} runs per command, commands taking turns"
             + (f"; before: `{before}`, in the same rounds" if before else ""), "",
             "| command | | wall s (median) | CPU s (median) | simulation wall s, CPU s "
             "| beyond the simulation: wall s, CPU s (medians) |",
             "|---|---|---:|---:|---:|---:|"]
    for (label, which), rows in times.items():
        if label not in QUICK:  # replications elsewhere: no simulation time of its own
            lines.append(f"| {label} | {which} | {_median(rows, 0):.3f} "
                         f"| {_median(rows, 1):.3f} | | |")
            continue
        beyond = (f"{statistics.median(r[0] - r[2] for r in rows):.3f}, "
                  f"{statistics.median(r[1] - r[3] for r in rows):.3f}")
        lines.append(f"| {label} | {which} | {_median(rows, 0):.3f} | {_median(rows, 1):.3f} "
                     f"| {_median(rows, 2):.3f}, {_median(rows, 3):.3f} | {beyond} |")
    lines.append("")
    for which in copies:
        rows = times["`npsim run quickstart`", which]
        wall = statistics.median(r[0] - r[2] for r in rows)
        cpu = statistics.median(r[1] - r[3] for r in rows)
        lines.append(f"- {which}: `npsim run quickstart` beyond its simulation: wall "
                     f"{wall:.3f} s, CPU {cpu:.3f} s (goal {RUN_TARGET_S} s wall: "
                     f"{'met' if wall < RUN_TARGET_S else 'not met'})")
        wall_x, cpu_x = _speedup(times, which, 0), _speedup(times, which, 1)
        lines.append(f"- {which}: `npsim run --jobs 2` on 4 replications over `--jobs 1`: "
                     f"{wall_x:.2f}x wall (goal {JOBS_TARGET}x: "
                     f"{'met' if wall_x >= JOBS_TARGET else 'not met'}); CPU {cpu_x:.2f}x "
                     "(below 1: two processes spend more CPU in all)")
    return "\n".join(lines) + "\n"


def publish_section(heading: str, section: str, output: Path | None) -> None:
    """A benchmark's section (starting with ``heading``), below the marker
    bench_startup.py keeps, replacing the section an earlier run wrote and leaving any
    other."""
    print(section)
    if output is None:
        return
    text = output.read_text() if output.exists() else ""
    if KEEP_MARKER not in text:
        text = text.rstrip("\n") + "\n\n" + KEEP_MARKER + "\n"
    head, kept = text.split(KEEP_MARKER, 1)
    parts = re.split(r"(?m)^(?=## )", kept)
    parts = [p for p in parts if not p.startswith(heading)]
    kept = "".join(parts).rstrip("\n")
    output.write_text(head + KEEP_MARKER + (kept + "\n\n" if kept.strip() else "\n\n")
                      + section)
    print(f"written to {output}", file=sys.stderr)


def main() -> None:
    args = report_parser(__doc__, runs=5, before=True).parse_args()
    runs = 2 if args.quick else args.runs
    copies = npsim_copies(args.before)
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="npsim-jobs-") as scratch:
        for copy in copies.values():  # bytecode written once, as an installed package has it
            _timed(copy, Path(scratch), ["--no-report"])
        times = _rounds(copies, runs, Path(scratch))
    loads.append(os.getloadavg()[0])
    publish_section(HEADING, _section(times, copies, runs, tuple(loads), args.quick,
                                      args.before),
                    args.output or (None if args.quick else OUTPUT))


if __name__ == "__main__":
    main()
