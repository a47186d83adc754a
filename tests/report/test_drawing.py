"""The report's figures shared out over processes: the same PNGs, in the report's order,
whichever process drew them, and drawn here when a process failed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_bundled

import npsim
from npsim.cli import main
from npsim.parallel.forked import fork_calls
from npsim.plots import FIGURES
from npsim.report.drawing import ORDER, draw_pngs, figure_names, shares, start_drawing


def test_order_is_the_plots_figures() -> None:
    assert list(ORDER) == list(FIGURES)


def test_shares_deal_every_figure_once_evenly() -> None:
    names = list(ORDER)
    groups = shares(names, 2)
    assert sorted(n for g in groups for n in g) == sorted(names)
    assert len(groups) == 2 and all(len(g) >= 3 for g in groups)
    assert shares(names[:1], 4) == [names[:1]]


@pytest.fixture(scope="module")
def quick() -> npsim.Result:
    return run_bundled("quickstart", 4.0, 1.0)


def test_figures_drawn_on_two_processes_are_those_drawn_here(quick: npsim.Result) -> None:
    here = draw_pngs(quick, figure_names(quick))
    there = start_drawing(quick, 2, fork_calls)()
    assert list(there[0]) == list(here[0]) == list(ORDER)
    assert there == here


def test_a_share_whose_process_failed_is_drawn_here(quick: npsim.Result) -> None:
    def failing(calls: list) -> object:  # every process "died": None for each share
        return lambda: [None] * len(calls)

    assert start_drawing(quick, 2, failing)() == draw_pngs(quick, figure_names(quick))


def test_run_with_two_jobs_or_the_default_writes_the_same_report(tmp_path: Path) -> None:
    """The same page, figures and frames however many processes drew the figures."""
    path = npsim.bundled_path("quickstart")
    pages = []
    for jobs in ("1", "2", "default"):
        out = tmp_path / jobs
        option = [] if jobs == "default" else ["--jobs", jobs]
        result = CliRunner().invoke(main, ["run", str(path), "--out", str(out), *option,
                                           "--set", "run.duration=3s", "--set", "run.warmup=1s"])
        assert result.exit_code == 0, result.output
        pages.append((out / "report.html").read_bytes())
        assert len(list((out / "figures").glob("*.png"))) == len(ORDER)
    assert pages[0] == pages[1] == pages[2]
    for name in ("figures/timeseries.png", "requests.parquet", "pods.parquet", "summary.csv",
                 "timeseries.parquet"):
        assert ((tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()
                == (tmp_path / "default" / name).read_bytes()), name


CHILD = """
import json, sys
import npsim.parallel.pool
from npsim.cli import main

npsim.parallel.pool.default_jobs = lambda: 2  # as on a 2-core machine, whatever this one is
out = sys.argv[1]
main(["run", sys.argv[2], "--out", out, "--jobs", "2", "--set", "run.duration=2s",
      "--set", "run.warmup=0.5s"], standalone_mode=False)
loaded = {"run --jobs 2": sorted({m.split(".")[0] for m in sys.modules}
                                 & {"matplotlib", "networkx"})}
main(["run", sys.argv[2], "--out", out + "-default", "--set", "run.duration=2s",
      "--set", "run.warmup=0.5s"], standalone_mode=False)
import npsim.cli.runs
npsim.cli.runs.STANDBY_BYTES = 0  # frames too big to send: drawn by children forked after
main(["run", sys.argv[2], "--out", out + "-big", "--set", "run.duration=2s",
      "--set", "run.warmup=0.5s"], standalone_mode=False)
loaded["run"] = sorted({m.split(".")[0] for m in sys.modules} & {"matplotlib", "networkx"})
pages = [open(f"{out}{end}/report.html").read() for end in ("", "-default", "-big")]
loaded["same"] = pages[0] == pages[1] == pages[2]
from npsim.plots import figures_for
from npsim.results.result import load_result

figures, _ = figures_for(load_result(out))
loaded["figures"] = sorted({m.split(".")[0] for m in sys.modules} & {"networkx"})
loaded["drawn"] = sorted(figures)
print(json.dumps(loaded))
"""


def test_parent_of_a_two_job_run_loads_no_matplotlib_and_figures_no_networkx(
        tmp_path: Path) -> None:
    """What the parallel drawing saves (matplotlib's import in the parent; by default on
    a machine with 2 cores, the figures are drawn by a process started before the
    simulation) and what the cluster figure no longer needs (networkx: only the call
    graph uses it)."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "run"),
                          str(npsim.bundled_path("quickstart"))],
                         capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"run --jobs 2": [], "run": [], "same": True, "figures": [],
                      "drawn": sorted(ORDER)}


REFUSED = """
import json, os, sys
import npsim.parallel.pool
from npsim.cli import main

npsim.parallel.pool.default_jobs = lambda: 2  # the drawing process is started first
try:
    main(["run", sys.argv[1]], standalone_mode=False)
    code = 0
except SystemExit as exc:
    code = exc.code
try:
    os.waitpid(-1, os.WNOHANG)
    children = True
except ChildProcessError:
    children = False
print(json.dumps({"code": code, "children": children}))
"""


def test_a_refused_run_leaves_no_drawing_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nclients: 3\n")
    out = subprocess.run([sys.executable, "-c", REFUSED, str(bad)], capture_output=True,
                         text=True, check=True, cwd=tmp_path)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"code": 2, "children": False}
    assert "Traceback" not in out.stderr
