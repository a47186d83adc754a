"""``npsim --help``, ``--version`` and ``validate`` import only what checking a scenario
needs: the numeric and simulation libraries (numpy, pandas, scipy, SimPy, ...) load
when a command simulates, so the quick commands start fast. How fast is measured in
benchmarks/bench_startup.py, never here."""

from __future__ import annotations

import json
import subprocess
import sys

from npsim.scenario.bundled import bundled_path

HEAVY = ("numpy", "pandas", "scipy", "simpy", "networkx", "pyarrow", "matplotlib")

CHILD = """
import json, sys
from npsim.cli import main

loaded = {}
for args in json.loads(sys.argv[1]):
    try:
        main(args, standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    loaded[" ".join(args)] = sorted({m.split(".")[0] for m in sys.modules}
                                    & set(json.loads(sys.argv[2])))
print(json.dumps(loaded))
"""


def test_quick_commands_import_no_numeric_library() -> None:
    # the quickstart; a port plan (explicit ports, then automatic ones); a balancer,
    # faults and a rolling update
    scenarios = [str(bundled_path(name)) for name in
                 ("quickstart", "port-plan", "node-failure-lb", "rolling-update")]
    commands = [["--version"], ["--help"], *(["validate", s] for s in scenarios)]
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(commands),
                          json.dumps(HEAVY)],
                         capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {" ".join(c): [] for c in commands}
