"""The idle-machine wall time of ``npsim run`` implied by the CPU time of each of its
processes, phase by phase (issue 23): for a shared machine, where two processes seldom
get two cores and measured wall ratios say nothing of a quiet one.

Run: .venv/bin/python benchmarks/run_phases.py [--runs 5] [--before DIR]

Each configuration runs in a fresh child whose npsim functions are wrapped to print the
CPU time (``time.process_time``) of each phase and process: the parent up to handing
out the figures and up to waiting for them, each replication (in whichever process ran
it), the drawing process's preparation (matplotlib's import) and each share of figures.
The implied wall time puts the phases together as two idle cores would run them: the
parent's serial work; a pool's replications over two workers (with the part of the
drawing process's preparation not done while the parent was still loading); then the
longer of the parent's writing and the drawing shares. The interpreter's start-up before
the child's first line (about 0.03 s) is not counted. ``--before DIR`` runs another copy
of npsim (e.g. ``git archive main npsim | tar -x -C DIR``) in the same rounds.

Writes its section into benchmarks/STARTUP.md below bench_startup.py's part
(``--output`` to change, ``--quick`` for 1 round and no file).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_run_jobs import publish_section
from benchcommon import ROOT, header_lines, npsim_copies, npsim_source, report_parser

OUTPUT = ROOT / "benchmarks" / "STARTUP.md"
HEADING = "## `npsim run`: idle-machine wall time implied by CPU time (run_phases.py)"
SCENARIO = "scenarios/quickstart.yaml"
CONFIGS = {"`npsim run quickstart`": [], "`npsim run quickstart --jobs 1`": ["--jobs", "1"],
           "`--replications 4 --jobs 1`": ["--replications", "4", "--jobs", "1"],
           "`--replications 4 --jobs 2`": ["--replications", "4", "--jobs", "2"]}
ONE_JOB, TWO_JOBS = "`--replications 4 --jobs 1`", "`--replications 4 --jobs 2`"
# the child: npsim's phases wrapped to print their CPU time (works on older copies too)
CHILD = """
import os, sys, time

T0, C0 = time.perf_counter(), time.process_time()


def log(mark):  # a phase mark of the parent: wall and CPU since the first line
    print(f"{time.perf_counter() - T0:7.3f} wall {time.process_time() - C0:6.3f} cpu  {mark}",
          file=sys.stderr)


def say(text):  # a line about one process's own work
    print(f"[{os.getpid()}] {text}", file=sys.stderr)


def timed(what, fn):
    def wrapped(*args, **kwargs):
        start = time.process_time()
        out = fn(*args, **kwargs)
        say(f"{what(*args)} cpu {time.process_time() - start:.3f}")
        return out
    return wrapped


import npsim.report.drawing as drawing

if hasattr(drawing, "prepare"):
    drawing.prepare = timed(lambda: "prepare", drawing.prepare)
draw_pngs = drawing.draw_pngs


def traced_draw(result, names):  # top level: the drawing process gets it pickled
    start = time.process_time()
    out = draw_pngs(result, names)
    say(f"draw {list(names)} cpu {time.process_time() - start:.3f}")
    return out


drawing.draw_pngs = traced_draw
start_drawing = drawing.start_drawing


def traced_start(result, processes=1, fork=None):
    log("send")
    finish = start_drawing(result, processes, fork)
    log("sent")
    if processes <= 1 or fork is None:
        return finish

    def traced_finish():
        log("collect")
        out = finish()
        log("collected")
        return out
    return traced_finish


drawing.start_drawing = traced_start
try:
    import npsim.parallel.standby as standby
    standby_init = standby.Standby.__init__

    def traced_init(self, prepare):
        log("standby")
        standby_init(self, prepare)
    standby.Standby.__init__ = traced_init
except ImportError:  # a copy without a drawing process
    pass


def patch_run():  # after the scenario layer's imports, as the command makes them
    import npsim.api as api
    import npsim.sim.engine as engine
    api._replication = timed(lambda *a: "replication", api._replication)
    engine.Simulation.run = timed(lambda *a: "simulation", engine.Simulation.run)
    # npsim.api imports the pool only for a parallel run (from npsim.parallel.pool)
    import npsim.parallel.pool as pool
    owner = api if hasattr(api, "run_tasks") else pool
    run_tasks = owner.run_tasks

    def traced_tasks(*args, **kwargs):
        log("pool")
        yield from run_tasks(*args, **kwargs)
    owner.run_tasks = traced_tasks


import npsim.cli.runs as runs

if hasattr(runs, "_run_and_save"):
    run_and_save = runs._run_and_save

    def traced_run(*args, **kwargs):
        patch_run()
        return run_and_save(*args, **kwargs)
    runs._run_and_save = traced_run
else:
    patch_run()
from npsim.cli import main

try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    log("end")
"""


def _traced(copy: Path | None, scratch: Path, extra: list[str]) -> str:
    """What one traced ``npsim run`` printed about its phases."""
    env = dict(os.environ)
    if copy is not None:
        env["PYTHONPATH"] = str(copy)
    folder = Path(tempfile.mkdtemp(dir=scratch))
    done = subprocess.run([sys.executable, "-P", "-c", CHILD, "run", SCENARIO, "--out",
                           str(folder / "out"), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    shutil.rmtree(folder)
    if done.returncode:
        raise SystemExit(f"npsim run {' '.join(extra)} failed: {done.stderr[-500:]}")
    return done.stderr


def implied(printed: str) -> tuple[float, float, float]:
    """Implied idle wall s, CPU s of all processes, and the simulation's CPU s (0 when
    the replications ran in workers), from one traced run's lines."""
    marks: dict[str, list[float]] = {}
    for line in printed.splitlines():
        found = re.match(r"\s*[\d.]+ wall\s+(-?[\d.]+) cpu\s+(\S+)", line)
        if found:
            marks.setdefault(found.group(2), []).append(float(found.group(1)))
    draws = [float(x) for x in re.findall(r"draw \[.*?\] cpu ([\d.]+)", printed)]
    prepare = sum(float(x) for x in re.findall(r"prepare cpu ([\d.]+)", printed))
    workers: dict[str, float] = {}
    for pid, cpu in re.findall(r"\[(\d+)\] replication cpu ([\d.]+)", printed):
        workers[pid] = workers.get(pid, 0.0) + float(cpu)
    simulation = sum(float(x) for x in re.findall(r"simulation cpu ([\d.]+)", printed))
    end = marks["end"][-1]
    if "collect" not in marks:  # one process did everything
        return end, end, simulation
    sent, collect = marks["sent"][0], marks["collect"][0]
    serial = sent
    if len(workers) > 1:  # replications on a pool; the parent's CPU does not count them
        started = marks.get("standby", marks["pool"])[0]
        left = max(0.0, prepare - (marks["pool"][0] - started))  # not hidden by loading
        serial += max(max(workers.values()), (sum(workers.values()) + left) / 2)
        simulation = 0.0
    wall = serial + max(collect - sent, *draws) + (end - collect)
    cpu = end + sum(draws) + prepare + (sum(workers.values()) if len(workers) > 1 else 0)
    return wall, cpu, simulation


def main() -> None:
    args = report_parser(__doc__, runs=5, before=True).parse_args()
    runs = 1 if args.quick else args.runs
    copies = npsim_copies(args.before)
    loads = [os.getloadavg()[0]]
    rows: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="npsim-phases-") as scratch:
        for _ in range(runs):
            for label, extra in CONFIGS.items():
                for which, copy in copies.items():
                    rows.setdefault((label, which), []).append(
                        implied(_traced(copy, Path(scratch), extra)))
    loads.append(os.getloadavg()[0])
    lines = [HEADING, "", *header_lines(args.quick, npsim_source(), ""),
             f"- load average (1 min) at start/end: {loads[0]:.2f} / {loads[1]:.2f}",
             f"- {runs} rounds, configurations taking turns"
             + (f"; before: `{args.before}`" if args.before else ""), "",
             "| command | | implied idle wall s | CPU s, all processes | beyond the "
             "simulation (implied wall s) |", "|---|---|---:|---:|---:|"]
    for (label, which), found in rows.items():
        beyond = (f"{statistics.median(w - s for w, _, s in found):.3f}"
                  if all(s > 0 for _, _, s in found) else "")
        lines.append(f"| {label} | {which} | {statistics.median(w for w, _, _ in found):.3f} "
                     f"| {statistics.median(c for _, c, _ in found):.3f} | {beyond} |")
    lines.append("")
    for which in copies:
        ratios = [one[0] / two[0] for one, two in
                  zip(rows[ONE_JOB, which], rows[TWO_JOBS, which], strict=True)]
        lines.append(f"- {which}: `--jobs 2` over `--jobs 1` on 4 replications, implied idle "
                     f"wall: {statistics.median(ratios):.2f}x (median of the rounds' ratios; "
                     f"{min(ratios):.2f}-{max(ratios):.2f}x)")
    publish_section(HEADING, "\n".join(lines) + "\n",
                    args.output or (None if args.quick else OUTPUT))


if __name__ == "__main__":
    main()
