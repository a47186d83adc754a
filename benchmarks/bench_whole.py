"""What a user pays for a whole run: npsim.run in a fresh process, its imports included,
against the plain-SimPy model in a fresh process (issue 23).

Each round starts, in turn, ``python -c "import npsim; npsim.run(...)"`` on the
quick-start traffic (scenarios/quickstart.yaml as a request-count run of ``--requests``,
no warm-up, seed 1; frames, time series and summary built, nothing saved) and
``python benchmarks/plain_simpy.py`` on the same traffic (a process per request, a
Resource per pod; it imports SimPy and the standard library only). A process's cost is
its CPU time as the parent's ``RUSAGE_CHILDREN`` sees it: interpreter start, imports,
the run and the exit. The report gives each side's median and the median of the
per-round ratios (plain / npsim: how many times cheaper the whole npsim run is); load
from other processes falls on both sides of a round. Each side first runs once untimed
with bytecode writing on, and the timed processes read that cache, as an installed
package does (``PYTHONDONTWRITEBYTECODE`` in the caller's environment is dropped for
the children: with it, npsim would be compiled at every start, about 0.1 CPU-s).
``--against DIR`` runs another npsim checkout (e.g. ``git archive main npsim | tar -x -C
DIR``) in the same rounds.

    .venv/bin/python benchmarks/bench_whole.py                      # 500,000 requests, 5 rounds
    .venv/bin/python benchmarks/bench_whole.py --against /tmp/main --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from bench_throughput import npsim_scenario, plain_params
from benchcommon import ROOT, header_lines, npsim_source

PLAIN = ROOT / "benchmarks" / "plain_simpy.py"
SCENARIO = ROOT / "scenarios" / "quickstart.yaml"

# the npsim side, as a user would write it; process_time marks where the CPU went
NPSIM_CHILD = """
import json, sys, time
import npsim
from npsim.scenario.changes import with_changes
scenario = with_changes(npsim.load_scenario(sys.argv[1]), {"run.duration": None,
                        "run.requests": int(sys.argv[2]), "run.warmup": "0s"})
loaded = time.process_time()
import npsim.api  # what npsim.run imports, timed apart from the run
imported = time.process_time()
result = npsim.run(scenario)
ran = time.process_time()
requests, mean_latency = len(result.requests), float(result.requests.latency.mean())
print(json.dumps({"requests": requests, "loaded": loaded,
                  "imported": imported - loaded, "run": ran - imported,
                  "npsim": npsim.__file__, "mean_latency": mean_latency}))
"""


def _child_cpu(cmd: list[str], env: dict[str, str]) -> tuple[float, dict]:
    """CPU seconds (user + system) of one child process, and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env=env, cwd="/", capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, json.loads(proc.stdout.strip().splitlines()[-1])


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment without PYTHONPATH and PYTHONDONTWRITEBYTECODE."""
    drop = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def run_npsim(checkout: Path, requests: int) -> tuple[float, dict]:
    env = _env(PYTHONPATH=str(checkout))
    cpu, row = _child_cpu([sys.executable, "-c", NPSIM_CHILD, str(SCENARIO), str(requests)],
                          env)
    if Path(row["npsim"]).resolve().parent != (checkout / "npsim").resolve():
        raise SystemExit(f"the child imported {row['npsim']}, not {checkout}/npsim")
    return cpu, row


def run_plain(params_json: str, requests: int) -> tuple[float, dict]:
    env = _env()
    return _child_cpu([sys.executable, str(PLAIN), params_json, str(requests)], env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--against", type=Path, default=None, help="another npsim checkout")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    params = plain_params(npsim_scenario(1000)).to_json()
    sides = {"npsim.run (this)": ROOT}
    if args.against is not None:
        sides["npsim.run (other)"] = args.against.resolve()
    for checkout in sides.values():  # untimed: writes the bytecode cache the rounds read
        run_npsim(checkout, 1000)
    run_plain(params, 1000)
    load_start = os.getloadavg()[0]
    cpu: dict[str, list[float]] = {name: [] for name in [*sides, "plain SimPy"]}
    rows: dict[str, list[dict]] = {name: [] for name in cpu}
    for i in range(args.rounds):
        for name, checkout in sides.items():
            c, row = run_npsim(checkout, args.requests)
            cpu[name].append(c)
            rows[name].append(row)
        c, row = run_plain(params, args.requests)
        cpu["plain SimPy"].append(c)
        rows["plain SimPy"].append(row)
        print(f"round {i + 1}/{args.rounds}: " + ", ".join(
            f"{name} {v[-1]:.2f} s" for name, v in cpu.items()), file=sys.stderr)
    load_end = os.getloadavg()[0]
    plain = cpu["plain SimPy"]
    lines = [
        f"## Whole process: npsim.run with its imports against plain SimPy, "
        f"{args.requests:,} requests", "",
        *header_lines(False, npsim_source(), args.note),
        *([f"- other npsim: `{args.against}`"] if args.against else []),
        f"- load average (1 min) at start/end: {load_start:.2f} / {load_end:.2f}",
        f"- {args.rounds} interleaved rounds of fresh processes; CPU time (user + system) "
        "of each process as a whole; ratios are medians of the per-round ratios", "",
        "| process | CPU s (median) | start + load scenario | imports of npsim.run "
        "| npsim.run | frame read, exit | mean latency ms | plain / this (x faster) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, values in cpu.items():
        med = statistics.median(values)
        ratio = statistics.median(p / c for p, c in zip(plain, values, strict=True))
        parts = ["", "", "", ""]
        if name != "plain SimPy":
            parts = [f"{statistics.median(r[k] for r in rows[name]):.2f}"
                     for k in ("loaded", "imported", "run")]
            after = [c - r["loaded"] - r["imported"] - r["run"]  # all that follows the run
                     for c, r in zip(values, rows[name], strict=True)]
            parts.append(f"{statistics.median(after):.2f}")
        lat = statistics.median(r["mean_latency"] for r in rows[name]) * 1e3
        lines.append(f"| {name} | {med:.2f} | {' | '.join(parts)} | {lat:.3f} | "
                     f"{'' if name == 'plain SimPy' else f'{ratio:.2f}'} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
