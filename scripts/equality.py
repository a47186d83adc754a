"""Digests of every frame of a fixed set of runs, to prove a refactoring changes nothing.

Runs each bundled scenario and a set of variants (every kube-proxy mode, one userspace
node, queue limits, timed and request-count runs, every fault kind), hashes each frame
(column names, dtypes and every value) and writes one JSON object, case -> frame ->
digest. Compare two checkouts by running it under each and diffing the files::

    PYTHONPATH=/path/to/old .venv/bin/python scripts/equality.py --out old.json
    PYTHONPATH=/path/to/new .venv/bin/python scripts/equality.py --out new.json
    .venv/bin/python scripts/equality.py --compare old.json new.json

``--only SUBSTRING`` runs the cases whose name contains it; ``--jobs N`` in parallel.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

FRAMES = ("requests", "pods", "nodes", "summary", "events", "timeseries",
          "pod_timeseries", "node_timeseries")
SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

# short variants (seconds of simulated time kept small so the whole set runs in minutes)
SHORT = {"run.duration": "20s", "run.warmup": "2s"}
FAULTS = {
    "node_crash": {"at": "5s", "until": "12s", "nodeCrash": {"node": "node-2"}},
    "node_partition": {"at": "5s", "until": "12s", "nodePartition": {"node": "node-3"}},
    "kubelet_stop": {"at": "4s", "until": "15s", "kubeletStop": {"node": "node-1"}},
    "kube_proxy_stop": {"at": "4s", "until": "15s", "kubeProxyStop": {"node": "node-2"}},
    "pod_crash": {"at": "5s", "podCrash": {"pod": "nginx-1"}},
    "pod_crash_loop": {"at": "5s", "until": "15s", "podCrash": {"pod": "nginx-0",
                                                                "runsFor": "2s"}},
    "pod_hang": {"at": "5s", "until": "9s", "podHang": {"pod": "nginx-2"}},
    "pod_slowdown": {"at": "5s", "until": "12s", "podSlowdown": {"pod": "nginx-3",
                                                                 "factor": 4}},
    "rollout": {"at": "6s", "rollout": {"deployment": "nginx"}},
    "scale": {"at": "6s", "scale": {"deployment": "nginx", "replicas": 6}},
}


def cases() -> dict[str, tuple[str, dict]]:
    """case name -> (scenario file, changes)."""
    out: dict[str, tuple[str, dict]] = {}
    for path in sorted(SCENARIOS.glob("*.yaml")):
        out[f"bundled/{path.stem}"] = (path.name, {})
    for mode in ("iptables", "ipvs", "nftables", "userspace"):
        for base in ("quickstart", "node-failure", "affinity-behind-nat", "local-vs-cluster"):
            out[f"mode/{mode}/{base}"] = (f"{base}.yaml",
                                          {**SHORT, "cluster.proxyMode": mode})
    for base in ("quickstart", "node-failure"):
        out[f"one-userspace-node/{base}"] = (
            f"{base}.yaml", {**SHORT, "cluster.nodes[1].proxyMode": "userspace"})
    out["queue-limit/quickstart"] = ("quickstart.yaml", {
        **SHORT, "workloads.nginx.queueLimit": 3, "clients[0].arrival.rate": "3500/s"})
    out["queue-limit/ipvs"] = ("quickstart.yaml", {
        **SHORT, "workloads.nginx.queueLimit": 2, "clients[0].arrival.rate": "3500/s",
        "cluster.proxyMode": "ipvs"})
    out["requests/quickstart"] = ("quickstart.yaml", {
        "run.duration": None, "run.requests": 30000, "run.warmup": "1s"})
    out["requests/node-failure"] = ("node-failure.yaml", {
        "run.duration": None, "run.requests": 60000, "run.warmup": "1s"})
    out["connections/quickstart"] = ("quickstart.yaml", {
        **SHORT, "clients[0].requestsPerConnection": 20})
    for kind, event in FAULTS.items():
        for mode in ("iptables", "ipvs"):
            out[f"fault/{kind}/{mode}"] = ("quickstart.yaml", {
                **SHORT, "events": [event], "cluster.proxyMode": mode,
                "clients[0].requestsPerConnection": 5})
    out["fault/node_crash/userspace"] = ("quickstart.yaml", {
        **SHORT, "events": [FAULTS["node_crash"]], "cluster.proxyMode": "userspace"})
    # timeouts that fire: a client's request timeout under a backed-up queue, and call
    # deadlines that a share of the calls miss (with retries)
    out["timeouts/quickstart"] = ("quickstart.yaml", {
        **SHORT, "clients[0].arrival.rate": "2000/s", "clients[0].requestTimeout": "3ms"})
    out["timeouts/calls"] = ("shop-internal-traffic.yaml", {
        **SHORT, "workloads.frontend.calls[0].timeout": "3ms",
        "workloads.frontend.calls[1].timeout": "4ms"})
    out["replications/quickstart"] = ("quickstart.yaml", {
        **SHORT, "run.replications": 3})
    return out


def frame_digest(frame) -> str:  # noqa: ANN001
    import pandas as pd

    h = hashlib.sha256()
    h.update(repr(list(frame.columns)).encode())
    h.update(repr([str(t) for t in frame.dtypes]).encode())
    h.update(str(len(frame)).encode())
    if len(frame.columns):
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()[:16]


def run_case(name: str, file: str, changes: dict) -> tuple[str, dict[str, str]]:
    import npsim
    from npsim.scenario.changes import with_changes

    scenario = npsim.load_scenario(SCENARIOS / file)
    if changes:
        scenario = with_changes(scenario, changes)
    result = npsim.run(scenario)
    return name, {f: frame_digest(getattr(result, f)) for f in FRAMES}


def compare(old: Path, new: Path) -> int:
    a, b = json.loads(old.read_text()), json.loads(new.read_text())
    bad = 0
    for case in sorted(set(a) | set(b)):
        if case not in a or case not in b:
            print(f"{case}: only in {'new' if case not in a else 'old'}")
            bad += 1
            continue
        diff = [f for f in FRAMES if a[case].get(f) != b[case].get(f)]
        if diff:
            print(f"{case}: differs in {', '.join(diff)}")
            bad += 1
    print(f"{len(set(a) | set(b)) - bad} identical, {bad} different")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", default="")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--compare", nargs=2, type=Path)
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    import npsim

    print(f"npsim from {Path(npsim.__file__).parent}", file=sys.stderr)
    todo = {k: v for k, v in cases().items() if args.only in k}
    digests: dict[str, dict[str, str]] = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_case, name, file, changes)
                   for name, (file, changes) in todo.items()]
        for future in futures:
            name, d = future.result()
            digests[name] = d
            print(name, file=sys.stderr)
    text = json.dumps(dict(sorted(digests.items())), indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
