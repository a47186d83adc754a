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


VERSION_CHILD = """
import json, sys
from npsim.cli import main

try:
    main(["--version"], standalone_mode=False)
except SystemExit as exc:
    if exc.code:
        raise
print(json.dumps(sorted(sys.modules)))
"""


def test_version_imports_no_subcommand() -> None:
    # ``npsim --version`` prints the version from npsim.version: no subcommand's module,
    # no scenario parsing (yaml, pydantic) and nothing numeric is imported for it
    out = subprocess.run([sys.executable, "-c", VERSION_CHILD],
                         capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "npsim, version " + __import__("npsim").__version__
    loaded = set(json.loads(lines[-1]))
    assert {"npsim.cli", "npsim.version", "click"} <= loaded
    heavy = {m for m in loaded if m.split(".")[0] in {*HEAVY, "yaml", "pydantic"}
             or m.startswith(("npsim.cli.", "npsim.scenario"))}
    assert heavy == set()


def test_every_subcommand_is_listed_and_found() -> None:
    # the lazily imported subcommands answer to the same names --help lists
    from click.testing import CliRunner

    from npsim.cli import COMMANDS, main

    listed = CliRunner().invoke(main, ["--help"]).output
    for name in COMMANDS:
        assert f"\n  {name} " in listed
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0 and f"Usage: main {name}" in result.output
