"""How npsim's cost grows with the cluster: run speed, build time and memory per request.

Each configuration (nodes / pods) runs in a fresh process (so peak RSS is its own):
one iptables NodePort Service with Cluster policy over ``pods`` pods spread on ``nodes``
nodes in three zones, clients entering at a random node, ``requests`` requests, each
pod at utilisation 0.5. Printed per configuration:

* run speed: requests per CPU-second of the simulation itself (``Simulation.run``);
* build (s): CPU time to build the cluster, kube-proxies and endpoint tables;
* request frame (s): CPU time to build the request DataFrame from the run's columns;
* peak RSS and bytes per request: (peak RSS - RSS after loading the scenario) / requests,
  over one whole ``npsim.run`` (simulation, frames, summary) in its own fresh process;
* with saving: the same process then writes the result folder (``Result.save``, parquet
  frames, no report figures), the way ``npsim run --out DIR --no-report`` does, and the
  peak over both is quoted.

    python benchmarks/bench_scale.py                    # the issue's table, 1M requests
    python benchmarks/bench_scale.py --requests 200000  # quicker
    python benchmarks/bench_scale.py --repeat 5         # median of 5 speed runs each
    python benchmarks/bench_scale.py --compare /path/to/other/checkout   # interleaved A/B
    python benchmarks/bench_scale.py --requests 10000000 --configs 1000/10000 --memory-only
    python benchmarks/bench_scale.py --configs 3/6,1000/10000 --crash --repeat 5  # issue 23

``--crash`` also times each configuration with a node crash (the middle node, from 20% to
60% of the run): printed as its speed and as the median ratio to the run without a crash
timed just before it. The second row gives each configuration's speed against the first
column's (issue 23: 1000 / 10,000 against 3 / 6).

``--compare DIR`` runs every configuration with the npsim found in DIR as well, alternating
(this tree, DIR, this tree, ...), so a loaded machine affects both alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = [(3, 6), (100, 200), (1000, 2000), (1000, 10000)]
ROOT = Path(__file__).resolve().parent.parent


def scenario_data(nodes: int, pods: int, requests: int, crash: bool = False) -> dict:
    """The scale scenario; ``crash``: the node in the middle of the list crashes at 20% of
    the run's expected length and is back at 60% (its pods' connections fail meanwhile)."""
    zones = ["zone-a", "zone-b", "zone-c"]
    events = []
    if crash:
        length = requests / (pods * 400)  # seconds at the offered rate
        events = [{"at": f"{0.2 * length:.6f}s", "until": f"{0.6 * length:.6f}s",
                   "nodeCrash": {"node": f"node-{nodes // 2}"}}]
    return {
        "name": f"scale-{nodes}-{pods}",
        "cluster": {"proxyMode": "iptables",
                    "nodes": [{"name": f"node-{i}", "zone": zones[i % 3]} for i in range(nodes)]},
        "manifests": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"type": "NodePort", "selector": {"app": "web"},
                      "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "web"}},
                      "template": {"metadata": {"labels": {"app": "web"}},
                                   "spec": {"containers": [{"name": "web", "ports": [
                                       {"containerPort": 8080}]}]}}}},
        ],
        "workloads": {"web": {"workers": 4, "serviceTime": {"dist": "exponential",
                                                            "mean": "5ms"}}},
        "clients": [{"name": "users", "service": "web", "sourceIPs": 1000,
                     "arrival": {"rate": f"{pods * 400}/s"}, "entry": "random",
                     "rtt": {"dist": "lognormal", "mean": "1ms", "cv": 0.5}}],
        "events": events,
        "run": {"requests": requests, "seed": 1,
                "limits": {"maxRequests": max(requests, 1), "maxMemory": "64GiB"}},
    }


def rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def one(nodes: int, pods: int, requests: int, crash: bool = False) -> dict:
    """Measure one configuration in this process (called in a child)."""
    import npsim
    from npsim.scenario.schema import RunSpec
    from npsim.sim.engine import Simulation

    data = scenario_data(nodes, pods, requests, crash)
    if "limits" not in RunSpec.model_fields:  # an npsim from before run.limits
        del data["run"]["limits"]
    scenario = npsim.scenario_from_dict(data)
    t0 = time.process_time()
    sim = Simulation(scenario)
    build = time.process_time() - t0
    t0 = time.process_time()
    out = sim.run()
    run = time.process_time() - t0
    t0 = time.process_time()
    from npsim.results.frames import request_frame

    request_frame(out)
    frames = time.process_time() - t0
    if crash:
        return {"crash_speed": requests / run}
    return {"nodes": nodes, "pods": pods, "run_speed": requests / run, "build": build,
            "frames": frames}


def peak(nodes: int, pods: int, requests: int) -> dict:
    """Peak RSS of one whole ``npsim.run`` in a fresh process (called in a child)."""
    import npsim
    import npsim.api  # noqa: F401 - everything a run imports, before the baseline
    import npsim.results.summary  # noqa: F401
    from npsim.scenario.schema import RunSpec

    data = scenario_data(nodes, pods, requests)
    if "limits" not in RunSpec.model_fields:
        del data["run"]["limits"]
    scenario = npsim.scenario_from_dict(data)
    base = rss("VmRSS")
    started = time.perf_counter()
    result = npsim.run(scenario)
    wall = time.perf_counter() - started
    top = rss("VmHWM")
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        result.save(Path(folder) / "result")
        saved = rss("VmHWM")
    return {"requests": len(result.requests), "peak_mb": top / 2**20,
            "bytes_per_request": (top - base) / requests, "run_wall": wall,
            "saved_peak_mb": saved / 2**20, "saved_bytes_per_request": (saved - base) / requests}


def child(mode: str, nodes: int, pods: int, requests: int, npsim_dir: Path | None) -> dict:
    env = dict(os.environ)
    if npsim_dir is not None:
        env["PYTHONPATH"] = str(npsim_dir)
    out = subprocess.run([sys.executable, __file__, mode, str(nodes), str(pods),
                          str(requests)], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(nodes: int, pods: int, requests: int, npsim_dir: Path | None,
            memory_only: bool = False, crash: bool = False) -> dict:
    row = {"nodes": nodes, "pods": pods, "run_speed": math.nan, "build": math.nan,
           "frames": math.nan, "crash_speed": math.nan}
    modes = ("--peak",) if memory_only else ("--one", "--crashed", "--peak") if crash else (
        "--one", "--peak")
    for mode in modes:
        row.update(child(mode, nodes, pods, requests, npsim_dir))
    return row


def median_speeds(rows: list[dict], requests: int, npsim_dir: Path | None,
                  repeat: int, crash: bool = False) -> None:
    """Run the speed measurement ``repeat - 1`` more times, going round the configurations
    (so a busy moment of the machine hits all of them alike), and keep each figure's
    median: one run per configuration is at the mercy of the machine's other work.
    With ``crash``, each round also runs the configuration with its node crash, right
    after the run without one: the crash's cost is the median of those pairs' ratios."""
    keys = ("run_speed", "build", "frames")
    samples = {key: [[r[key]] for r in rows] for key in keys}
    pairs = [[r["crash_speed"] / r["run_speed"]] for r in rows]
    crashes = [[r["crash_speed"]] for r in rows]
    for _ in range(repeat - 1):
        for i, r in enumerate(rows):
            again = child("--one", r["nodes"], r["pods"], requests, npsim_dir)
            for key, values in samples.items():
                values[i].append(again[key])
            if crash:
                crashed = child("--crashed", r["nodes"], r["pods"], requests, npsim_dir)
                pairs[i].append(crashed["crash_speed"] / again["run_speed"])
                crashes[i].append(crashed["crash_speed"])
    for key, values in samples.items():
        for r, vs in zip(rows, values, strict=True):
            r[key] = statistics.median(vs)
    for r, ratios, speeds in zip(rows, pairs, crashes, strict=True):
        r["crash_ratio"] = statistics.median(ratios)
        r["crash_speed"] = statistics.median(speeds)


def table(rows: list[dict], label: str) -> list[str]:
    head = "| nodes / pods | " + " | ".join(f"{r['nodes']} / {r['pods']}" for r in rows) + " |"
    lines = [f"{label}", "", head, "|---|" + "---:|" * len(rows)]
    for r in rows:  # per request, against the first (smallest) configuration
        r["relative"] = r["run_speed"] / rows[0]["run_speed"]
        r.setdefault("crash_ratio", r["crash_speed"] / r["run_speed"])
    for key, name, fmt in (("run_speed", "run speed (requests/CPU-s)", "{:,.0f}"),
                           ("relative", "run speed / first column's", "{:.2f}x"),
                           ("crash_speed", "run speed with a node crash", "{:,.0f}"),
                           ("crash_ratio", "with a crash / without (same round)", "{:.2f}x"),
                           ("build", "build (CPU s)", "{:.2f}"),
                           ("frames", "request frame (CPU s)", "{:.2f}"),
                           ("peak_mb", "peak RSS (MB)", "{:,.0f}"),
                           ("bytes_per_request", "bytes per request", "{:,.0f}"),
                           ("saved_peak_mb", "peak RSS with saving (MB)", "{:,.0f}"),
                           ("saved_bytes_per_request", "bytes per request with saving",
                            "{:,.0f}"),
                           ("run_wall", "npsim.run wall (s)", "{:,.1f}")):
        if all(math.isnan(r[key]) for r in rows):
            continue  # not measured (no --crash, or --memory-only)
        lines.append(f"| {name} | " + " | ".join(fmt.format(r[key]) for r in rows) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--configs", default=",".join(f"{n}/{p}" for n, p in CONFIGS),
                        help="nodes/pods pairs, comma-separated")
    parser.add_argument("--compare", type=Path, default=None,
                        help="another npsim checkout to measure interleaved with this one")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the peak-RSS run (with saving) of each configuration")
    parser.add_argument("--repeat", type=int, default=1,
                        help="speed runs per configuration, round-robin; the median is shown")
    parser.add_argument("--crash", action="store_true",
                        help="also time each configuration with a node crash mid-run")
    parser.add_argument("--one", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--crashed", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--peak", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    if args.crashed:
        print(json.dumps(one(*args.crashed, crash=True)))
        return
    if args.peak:
        print(json.dumps(peak(*args.peak)))
        return
    configs = [tuple(int(x) for x in c.split("/")) for c in args.configs.split(",")]
    mine, theirs = [], []
    for nodes, pods in configs:
        mine.append(measure(nodes, pods, args.requests, ROOT, args.memory_only, args.crash))
        if args.compare is not None:
            theirs.append(measure(nodes, pods, args.requests, args.compare, args.memory_only,
                                  args.crash))
    if args.repeat > 1 and not args.memory_only:
        median_speeds(mine, args.requests, ROOT, args.repeat, args.crash)
        if theirs:
            median_speeds(theirs, args.requests, args.compare, args.repeat, args.crash)
    if args.repeat > 1 and not args.memory_only:
        print(f"speed, build and frame: median of {args.repeat} runs per configuration")
    print(f"{args.requests:,} requests per configuration; load average "
          f"{os.getloadavg()[0]:.1f} at the end\n")
    print("\n".join(table(mine, f"this tree ({ROOT})")))
    if theirs:
        print()
        print("\n".join(table(theirs, f"compared ({args.compare})")))


if __name__ == "__main__":
    main()
