"""The t quantile of the replication intervals is scipy's, to the bit, without importing
scipy in a run (half a second of start-up per process, for one number)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from npsim.results.student import T975, t975
from npsim.results.summary import confidence_interval


def test_the_table_is_scipys_floats():
    for df, value in enumerate(T975, start=1):
        assert value == float(stats.t.ppf(0.975, df)), df
        assert t975(df) == value and t975(np.int64(df)) == value and t975(float(df)) == value


@pytest.mark.parametrize("df", [len(T975) + 1, 250, 10_000, 2.5, 0.5, 0])
def test_beyond_the_table_it_asks_scipy(df):
    assert t975(df) == pytest.approx(float(stats.t.ppf(0.975, df)), nan_ok=True, rel=0)


def test_interval_as_before():
    values = np.array([1.0, 1.3, 0.9, 1.1])
    mean, low, high = confidence_interval(values)
    half = float(stats.t.ppf(0.975, 3) * values.std(ddof=1) / np.sqrt(4))
    assert (low, high) == (mean - half, mean + half)


def test_a_run_with_replications_imports_no_scipy():
    child = ("import sys, npsim\n"
             "s = npsim.bundled('quickstart')\n"
             "s.spec.run.warmup = 0.5; s.spec.run.duration = 2.0; s.spec.run.replications = 3\n"
             "r = npsim.run(s)\n"
             "assert r.summary['ci_low'].notna().any()\n"
             "print('scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_the_run_command_imports_no_scipy(tmp_path):
    """The command, not only npsim.run: its --check/--each-node-down code is loaded
    either way, and must not pull scipy in for a run that judges nothing."""
    child = ("import sys\n"
             "from click.testing import CliRunner\n"
             "from npsim.cli import main\n"
             "r = CliRunner().invoke(main, ['run', 'scenarios/quickstart.yaml', '--no-save',\n"
             "                              '--set', 'run.duration=2s',\n"
             "                              '--set', 'run.warmup=0.5s'])\n"
             "assert r.exit_code == 0, r.output\n"
             "print('scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"
