"""``npsim compare`` prints within 100 columns: columns that do not fit go to a further
block with the metric names repeated (as a sweep's tables), never a line of 150."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import simulate

from npsim.cli import main

LABELS = [f"results/quickstart-with-a-long-name/variant-{i}" for i in range(5)]


def test_compare_of_five_runs_fits_100_columns(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    simulate(duration=0.5, replications=2, nodes=2, replicas=2).save(tmp_path / "run")
    for label in LABELS:
        shutil.copytree(tmp_path / "run", tmp_path / label)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["compare", *LABELS])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 100
    blocks = [b.splitlines() for b in result.output.strip().split("\n\n")]
    assert len(blocks) >= 2  # five columns of "mean [low, high]" do not fit in one
    heads = [h for b in blocks for h in b[0].split()[1:]]
    assert heads == [f"variant-{i}" for i in range(5)]  # each column once, in order
    for block in blocks:  # every metric row in every block, with its unit
        assert block[0].split()[0] == "metric"
        assert [line.split("  ")[0].strip() for line in block[1:]] == [
            line.split("  ")[0].strip() for line in blocks[0][1:]]
        assert any(line.startswith("latency p99 (ms)") for line in block)
    throughput = [line for b in blocks for line in b if line.startswith("throughput")]
    cells = [c for line in throughput for c in line.split("  ")[1:] if c.strip()]
    assert len(cells) == 5 and len({c.strip() for c in cells}) == 1  # same run copied
    assert " .. " in cells[0] and cells[0].endswith(")")  # the CI of two replications, whole
