"""Helpers shared by the benchmark scripts in this folder.

The scripts run as ``python benchmarks/bench_X.py``, which puts this folder on ``sys.path``,
so they import this module as ``from benchcommon import ...``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import simpy

import npsim

ROOT = Path(__file__).resolve().parent.parent


# --- this process's memory (Linux) ------------------------------------------------------


def _status_kb(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (Linux), None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (Linux), in bytes."""
    kb = _status_kb(field)
    return None if kb is None else kb * 1024


def status_mb(field: str) -> float:
    """A ``kB`` field of /proc/self/status (Linux) in MB, NaN elsewhere."""
    kb = _status_kb(field)
    return math.nan if kb is None else kb / 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS mark (Linux >= 4.0: ``5`` into clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def trim_heap() -> None:
    """Hand free heap pages back to the OS (glibc), so earlier allocations cannot hide the
    memory of the run that follows."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# --- the command line -------------------------------------------------------------------


def report_parser(doc: str, runs: int, before: bool = False) -> argparse.ArgumentParser:
    """The options the report benchmarks share, described by ``doc``'s first paragraph:
    ``--runs`` (rounds; default ``runs``), ``--quick`` (a smoke check, written only with
    ``--output``), ``--output FILE``, and with ``before`` ``--before DIR`` (another npsim
    copy, see :func:`npsim_copies`). A script adds its own options to it."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=runs,
                    help=f"rounds, the median reported (default {runs})")
    if before:
        ap.add_argument("--before", type=Path, default=None, metavar="DIR",
                        help="another npsim copy (a folder holding npsim/) to measure "
                             "alongside")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke check: fewer rounds or a smaller case, not representative, "
                         "written only with --output")
    ap.add_argument("--output", type=Path, default=None, metavar="FILE",
                    help="write the report here (default: the benchmark's own report file; "
                         "with --quick, none)")
    return ap


# --- what was measured, and where -------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git(*args: str) -> str:
    """``git -C ROOT args`` stdout, stripped; "" when git fails or is missing."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                             check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout.strip()


def npsim_source() -> str:
    """Which npsim was measured: the working tree (commit, dirty or not) or another copy."""
    pkg = Path(npsim.__file__).resolve().parent
    if pkg != ROOT / "npsim":
        head = git("rev-parse", "--short", "HEAD")
        return f"`{pkg}` (not this working tree; the repository's HEAD is {head})"
    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = git("status", "--porcelain", "--", "npsim")
    return f"working tree at {commit}" + (" with uncommitted changes in npsim/" if dirty else "")


def command_line() -> str:
    """This process's command line, paths relative to ROOT where they lie below it."""
    exe = Path(sys.executable)
    try:
        exe_text = str(exe.relative_to(ROOT))
    except ValueError:
        exe_text = str(exe)
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(ROOT))
    except ValueError:
        script_text = sys.argv[0]
    env = [f"PYTHONPATH={os.environ['PYTHONPATH']}"] if os.environ.get("PYTHONPATH") else []
    return shlex.join([*env, exe_text, script_text, *sys.argv[1:]])


# --- the report -------------------------------------------------------------------------


def header_lines(quick: bool, measured: str, note: str) -> list[str]:
    """The report's opening bullets, date to CPU; ``measured`` says which npsim ran."""
    return [
        f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- command: `{command_line()}`"
        + (" (quick smoke check: not representative)" if quick else ""),
        f"- python {platform.python_version()}, simpy {simpy.__version__}, "
        f"numpy {np.__version__}, npsim {npsim.__version__}",
        f"- npsim measured: {measured}",
        *([f"- note: {note}"] if note else []),
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical CPUs), {platform.system()} "
        f"{platform.release()}",
    ]


KEEP_MARKER = "<!-- the sections below come from other benchmarks: a rewrite keeps them -->"


def publish(text: str, output: Path | None) -> None:
    """The report to stdout, and into ``output`` unless None. Whatever follows
    ``KEEP_MARKER`` in an existing ``output`` (other benchmarks' sections) is kept."""
    print(text)
    if output is not None:
        kept = ""
        if output.exists():
            old = output.read_text()
            if KEEP_MARKER in old:
                kept = "\n" + KEEP_MARKER + old.split(KEEP_MARKER, 1)[1]
        output.write_text(text.rstrip("\n") + "\n" + kept)
        print(f"written to {output}", file=sys.stderr)


# `npsim` as a child process (`python -P -c CLI args...`), from whichever npsim copy is
# first on its PYTHONPATH
CLI = "import sys; from npsim.cli import main; sys.argv[0] = 'npsim'; main()"
# the run row's child: the same command, with the CPU time of Simulation.run added up and
# printed at exit (SimPy, numpy and the engine load first, as the command loads them anyway)
RUN_CLI = ("import atexit, sys, time; import npsim.sim.engine as e; spent = [0.0]; "
           "run = e.Simulation.run\n"
           "def timed(self, *a, **k):\n"
           "    t = time.process_time(); out = run(self, *a, **k)\n"
           "    spent[0] += time.process_time() - t; return out\n"
           "e.Simulation.run = timed; atexit.register(lambda: print("
           "f'simulation CPU {spent[0]!r}', file=sys.stderr))\n" + CLI)


def npsim_copies(before: Path | None) -> dict[str, Path | None]:
    """The npsim copies a side-by-side benchmark times: this tree ("after", None: first on
    sys.path as it is) and, with ``--before``, another copy (a folder holding npsim/)."""
    if before is None:
        return {"after": None}
    return {"before": before.resolve(), "after": None}
