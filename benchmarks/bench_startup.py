"""How fast the quick commands start: ``npsim --version``, ``--help`` and ``validate`` of
the quickstart (target: each under 0.3 s), and what ``validate`` imports; and what a
whole ``npsim run`` of the quickstart costs beyond its simulation (issue 23: within
0.5 s; ``--version`` under 0.1 s).

Run: .venv/bin/python benchmarks/bench_startup.py [--runs 9] [--before DIR]

Each command runs in a fresh child process, the commands taking turns (round-robin), so
background load falls on all of them alike; wall time, CPU time (user + system) and peak
RSS come from the child's own rusage. ``python -c pass`` is the interpreter's floor. An
untimed run of each command first lets Python write its bytecode cache (``__pycache__``),
as an installed package has it. ``--before DIR`` also times another copy of npsim (e.g.
``git archive main npsim | tar -x -C DIR``) in the same rounds. ``--uncached`` adds rows
for a copy without bytecode, run with ``PYTHONDONTWRITEBYTECODE=1`` (npsim compiled from
source at every start, as in a checkout where that variable is set). ``-X importtime`` of
``validate`` lists the largest imports and whether any numeric library was loaded.
Writes benchmarks/STARTUP.md (``--output`` to change, ``--quick`` for 3 runs and no file).
The run row is ``npsim run scenarios/quickstart.yaml --out DIR`` (frames, summary and
report written), timed like the others, beside the same with ``--no-report`` and with
``--jobs 2`` (the figures drawn on 2 forked processes while the parent writes the
frames; its CPU time counts those processes too); the "beyond the simulation" column is
the command's wall time minus the simulation's own, which the command prints
("simulated 60s in X s wall"), and its CPU time minus the simulation's CPU time.
``--no-run`` leaves them out.
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
    CLI,
    ROOT,
    RUN_CLI,
    header_lines,
    npsim_copies,
    npsim_source,
    publish,
    report_parser,
)

OUTPUT = ROOT / "benchmarks" / "STARTUP.md"
TARGET_S = 0.3  # issue 11
VERSION_TARGET_S = 0.1  # issue 23
RUN_TARGET_S = 0.5  # issue 23: a quick-start run within 0.5 s of its simulation time
SCENARIO = "scenarios/quickstart.yaml"
RUN_LABEL = f"`npsim run {SCENARIO}`"
JOBS_LABEL = f"`npsim run {SCENARIO} --jobs 2`"
# the same without report.html (what the report's figures cost), and with the figures
# drawn on 2 forked processes while the parent writes the frames
RUNS = {RUN_LABEL: [], f"`npsim run {SCENARIO} --no-report`": ["--no-report"],
        JOBS_LABEL: ["--jobs", "2"]}
COMMANDS = {"`python -c pass`": None, "`npsim --version`": ["--version"],
            "`npsim --help`": ["--help"], f"`npsim validate {SCENARIO}`": ["validate", SCENARIO]}
HEAVY = ("numpy", "pandas", "scipy", "simpy", "networkx", "pyarrow", "matplotlib")


def _argv(args: list[str] | None) -> list[str]:
    """The child's command line; ``-P``: the current folder (the checkout) is not put on
    ``sys.path``, so ``--before`` and the installed package are what gets imported."""
    if args is None:
        return [sys.executable, "-P", "-c", "pass"]
    return [sys.executable, "-P", "-c", CLI, *args]


def _env(copy: Path | None, write_bytecode: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    if copy is not None:
        env["PYTHONPATH"] = str(copy)
    if write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    elif copy is not None and copy.name == "uncached":
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _uncached(copy: Path | None, into: Path) -> Path:
    """A copy of npsim (this tree's, or the one under ``copy``) without ``__pycache__``."""
    folder = into / "uncached"
    folder.mkdir(parents=True)
    shutil.copytree((copy or ROOT) / "npsim", folder / "npsim",
                    ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
    return folder


def _timed(argv: list[str], env: dict[str, str], output: Path | None = None
           ) -> tuple[float, float, float]:
    """Wall s, CPU s and peak RSS MiB of one child process (its stdout and stderr into
    ``output``)."""
    start = time.perf_counter()
    with open(output or os.devnull, "wb") as out:
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                 stderr=out if output else subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{' '.join(argv)} exited with {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _timed_run(env: dict[str, str], scratch: Path, extra: list[str]
               ) -> tuple[float, float, float, float, float]:
    """Wall s, CPU s, peak RSS MiB of a whole quick-start ``npsim run`` into a new folder,
    and its simulation's wall s (the command's first line) and CPU s."""
    folder = Path(tempfile.mkdtemp(dir=scratch))
    printed = folder / "output.txt"
    argv = [sys.executable, "-P", "-c", RUN_CLI, "run", SCENARIO, "--out", str(folder / "out"),
            *extra]
    wall, cpu, rss = _timed(argv, env, printed)
    text = printed.read_text()
    sim_wall = re.search(r"simulated \S+ in ([0-9.]+)s wall", text)
    sim_cpu = re.search(r"simulation CPU ([0-9.e-]+)", text)
    if sim_wall is None or sim_cpu is None:
        raise SystemExit(f"npsim run printed no simulation time: {text[:300]}")
    shutil.rmtree(folder)
    return wall, cpu, rss, float(sim_wall.group(1)), float(sim_cpu.group(1))


def _imports(copy: Path | None) -> tuple[list[tuple[float, str]], list[str]]:
    """The largest top-level imports of ``validate`` (cumulative ms) and the numeric
    libraries it loaded."""
    probe = (CLI.replace("main()", "main(standalone_mode=False)")
             + f"; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-P", "-X", "importtime", "-c", probe, "validate",
                          SCENARIO], cwd=ROOT, env=_env(copy), capture_output=True,
                         text=True, check=True)
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if len(name) - len(name.lstrip()) <= 1:  # imported by the command itself
            rows.append((int(cumulative) / 1000, name.strip()))
    return sorted(rows, reverse=True)[:8], eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own child's list of names


def _rounds(copies: dict[str, Path | None], runs: int, scratch: Path | None
            ) -> dict[tuple[str, str], list[tuple[float, ...]]]:
    """(command, copy) -> (wall, CPU, RSS[, simulation wall]) of each run, every command
    of every copy once per round (the quick-start run too, unless ``scratch`` is None)."""
    times: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for _ in range(runs):
        for label, argv in COMMANDS.items():
            for which, copy in copies.items():
                if argv is None and which != "after":  # the interpreter's floor: once
                    continue
                times.setdefault((label, which), []).append(_timed(_argv(argv), _env(copy)))
        for which, copy in copies.items():
            if scratch is not None and "no bytecode" not in which:
                for label, extra in RUNS.items():
                    times.setdefault((label, which), []).append(
                        _timed_run(_env(copy), scratch, extra))
    return times


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _run_target(label: str, rows: list[tuple[float, ...]]) -> str:
    """The quick-start goal, judged in CPU time (all processes) and in wall time."""
    cpu = statistics.median(r[1] - r[4] for r in rows)
    wall = statistics.median(r[0] - r[3] for r in rows)
    return (f"- {label} within {RUN_TARGET_S} s of its simulation (the whole command beyond "
            "it: imports, frames, summary, parquet and the report's figures; medians): "
            f"CPU {cpu:.3f} s, {_met(cpu < RUN_TARGET_S)}; wall {wall:.3f} s, "
            f"{_met(wall < RUN_TARGET_S)}")


def main() -> None:
    ap = report_parser(__doc__, runs=9, before=True)
    ap.add_argument("--uncached", action="store_true",
                    help="also time copies compiled from source at every start")
    ap.add_argument("--no-run", action="store_true",
                    help="leave out the whole quick-start run")
    args = ap.parse_args()
    runs = 3 if args.quick else args.runs
    copies = npsim_copies(args.before)
    for copy in copies.values():  # bytecode written once, as an installed package has it
        for argv in COMMANDS.values():
            subprocess.run(_argv(argv), cwd=ROOT, env=_env(copy, write_bytecode=True),
                           capture_output=True, check=False)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="npsim-startup-") as scratch:
        if args.uncached:
            for which, copy in list(copies.items()):
                copies[f"{which}, no bytecode"] = _uncached(copy, Path(scratch) / which)
        times = _rounds(copies, runs, None if args.no_run else Path(scratch))
    load_end = os.getloadavg()[0]
    top, heavy = _imports(None)
    lines = [
        "# npsim start-up benchmark", "",
        *header_lines(args.quick, npsim_source(), ""),
        f"- load average (1 min) at start/end: {load_start:.2f} / {load_end:.2f} (other "
        "processes share the CPUs: wall time includes waiting for them)",
        f"- {runs} runs per command, commands taking turns; bytecode cached unless the row "
        "says no bytecode (`PYTHONDONTWRITEBYTECODE=1`, npsim compiled at each start); "
        + (f"before: `{args.before}`, in the same rounds" if args.before else "no before copy"),
        "",
        "| command | | wall s (median) | wall s (min) | CPU s (median) | peak RSS MiB "
        "| beyond the simulation: wall s, CPU s (medians) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (label, which), rows in times.items():
        walls = [r[0] for r in rows]
        beyond = (f"{statistics.median(r[0] - r[3] for r in rows):.3f}, "
                  f"{statistics.median(r[1] - r[4] for r in rows):.3f}" if label in RUNS
                  else "")
        lines.append(f"| {label} | {which} | {statistics.median(walls):.3f} | {min(walls):.3f} "
                     f"| {statistics.median(r[1] for r in rows):.3f} | "
                     f"{statistics.median(r[2] for r in rows):.0f} | {beyond} |")
    after = {label: rows for (label, which), rows in times.items()
             if which == "after" and label not in RUNS}
    worst = max(after, key=lambda label: statistics.median(r[0] for r in after[label]))
    wall = statistics.median(r[0] for r in after[worst])
    cpu = statistics.median(r[1] for r in after[worst])
    lines += [
        "",
        f"- target: each command under {TARGET_S} s (median wall, bytecode cached): "
        + ("met" if wall < TARGET_S else "not met")
        + f"; slowest {worst}: {wall:.3f} s wall, {cpu:.3f} s CPU"
        + (" (the CPU time is the steadier figure when the load average is high)"
           if max(load_start, load_end) > 1.5 else ""),
        f"- `npsim --version` under {VERSION_TARGET_S} s (median wall): "
        + _met(statistics.median(r[0] for r in after["`npsim --version`"]) < VERSION_TARGET_S)
        + f"; its CPU time {statistics.median(r[1] for r in after['`npsim --version`']):.3f} s",
        *[_run_target(label, times[label, "after"]) for label in (RUN_LABEL, JOBS_LABEL)
          if (label, "after") in times],
        "- numeric libraries `validate` imports: " + (", ".join(heavy) or "none"),
        "- largest imports of `validate` (`-X importtime`, cumulative ms, inflated by the "
        "measurement): " + ", ".join(f"{name} {ms:.0f}" for ms, name in top),
    ]
    publish("\n".join(lines) + "\n", args.output or (None if args.quick else OUTPUT))


if __name__ == "__main__":
    main()
