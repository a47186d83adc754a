"""How long ``npsim import`` takes on a large cluster's dump, and ``npsim validate`` on
the scenario it writes.

Run: .venv/bin/python benchmarks/bench_import.py [--nodes 1000] [--services 5000] [--runs 1]

The dump comes from scripts/gen_cluster_dump.py (a v1 List in kubectl's shape). Each
command runs in a child process: wall time and the child's CPU time (user + system) are
reported; on a shared machine CPU time is the steadier of the two. Writes
benchmarks/IMPORT.md (``--output`` to change, ``--quick`` for 100 nodes / 500 Services
and no file).
"""

from __future__ import annotations

import importlib.util
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchcommon import ROOT, header_lines, npsim_source, publish, report_parser

OUTPUT = ROOT / "benchmarks" / "IMPORT.md"
TARGET_S = 30.0  # issue 12: import a 1000-node, 5000-Service dump in under 30 s


def _generator():  # noqa: ANN202 - a module loaded from scripts/
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_cluster_dump.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = report_parser(__doc__, runs=1)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--services", type=int, default=5000)
    args = ap.parse_args()
    if args.quick:
        args.nodes, args.services = 100, 500
    npsim_cli = str(Path(os.sys.executable).parent / "npsim")
    rows = []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "cluster.yaml"
        _generator().write_dump(dump, args.nodes, args.services)
        size = dump.stat().st_size / 1e6
        for run in range(args.runs):
            out = Path(tmp) / f"scenario-{run}.yaml"
            imp = _timed([npsim_cli, "import", str(dump), "--out", str(out)])
            val = _timed([npsim_cli, "validate", str(out)])
            rows.append((imp, val, out.stat().st_size / 1e6))
    load_end = os.getloadavg()[0]
    med = {k: statistics.median(r[i][j] for r in rows)
           for k, (i, j) in {"iw": (0, 0), "ic": (0, 1), "vw": (1, 0), "vc": (1, 1)}.items()}
    lines = [
        "# npsim import benchmark", "",
        *header_lines(args.quick, npsim_source(), ""),
        f"- load average (1 min) at start/end: {load_start:.2f} / {load_end:.2f} (other "
        "processes share the CPUs: wall time includes waiting for them)",
        f"- dump: scripts/gen_cluster_dump.py, {args.nodes} Nodes, {args.services} Services "
        f"({min(2000, args.services)} NodePort), {args.services} EndpointSlices and "
        f"Deployments, 2 pods each, kube-proxy ConfigMap; {size:.1f} MB", "",
        "| step | wall s (median) | CPU s (median) | runs: wall / CPU s |",
        "|---|---:|---:|---|",
        f"| `npsim import` (read, check, plan, write) | {med['iw']:.1f} | {med['ic']:.1f} | "
        + ", ".join(f"{r[0][0]:.1f} / {r[0][1]:.1f}" for r in rows) + " |",
        f"| `npsim validate` of the written scenario ({rows[0][2]:.1f} MB) | {med['vw']:.1f} | "
        f"{med['vc']:.1f} | " + ", ".join(f"{r[1][0]:.1f} / {r[1][1]:.1f}" for r in rows) + " |",
        "",
        f"- target: import under {TARGET_S:.0f} s: "
        + ("met" if med["iw"] < TARGET_S else
           f"wall time not met on this loaded machine; CPU time {med['ic']:.1f} s "
           + ("is under it" if med["ic"] < TARGET_S else "is over it too")),
    ]
    publish("\n".join(lines) + "\n", args.output or (None if args.quick else OUTPUT))


if __name__ == "__main__":
    main()
