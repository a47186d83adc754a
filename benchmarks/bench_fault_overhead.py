"""What the fault and control-plane machinery costs a run that schedules no event.

Runs the quick-start scenario (``Simulation(...).run()``, a request budget, seed 1) with
two copies of npsim in fresh child processes, alternating them so that both see the same
machine load: the copy at ``--before`` (e.g. ``git archive main | tar -x -C /tmp/base``)
and this working tree. Prints simulated requests per CPU second and per wall second
(median of the runs) and the ratio after/before. Target (issue 7): at most 5 % lower.

    .venv/bin/python benchmarks/bench_fault_overhead.py --before /tmp/base --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
from npsim.scenario.loader import load_scenario
from npsim.scenario.schema import RunSpec
from npsim.sim.engine import Simulation
scn = load_scenario(sys.argv[1])
scn.spec.run = RunSpec(requests=int(sys.argv[2]), seed=1)
sim = Simulation(scn)
w, c = time.perf_counter(), time.process_time()
sim.run()
print(json.dumps({"wall": time.perf_counter() - w, "cpu": time.process_time() - c,
                  "requests": len(sim.log)}))
"""


def once(source: Path, requests: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(source))
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "scenarios" / "quickstart.yaml"),
                          str(requests)], env=env, check=True, capture_output=True, text=True,
                         cwd=source)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="npsim source tree to compare")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300_000)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.runs):
        for name, source in (("before", args.before), ("after", ROOT)):
            runs[name].append(once(source, args.requests))
    rate = {}
    for name, results in runs.items():
        cpu = [r["requests"] / r["cpu"] for r in results]
        wall = [r["requests"] / r["wall"] for r in results]
        rate[name] = (statistics.median(cpu), statistics.median(wall))
        print(f"{name:6}  requests/CPU-s median {rate[name][0]:,.0f} "
              f"(runs {', '.join(f'{x:,.0f}' for x in cpu)}); "
              f"requests/wall-s median {rate[name][1]:,.0f}")
    print(f"after/before: CPU {rate['after'][0] / rate['before'][0]:.3f}, "
          f"wall {rate['after'][1] / rate['before'][1]:.3f}")


if __name__ == "__main__":
    main()
