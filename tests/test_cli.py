"""``npsim run`` and ``npsim validate``: result folders, no overwriting, reproducible runs."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result

from npsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
REPORT = {"figures", "report.html"}  # npsim run writes them unless --no-report
# the report (8 figures) is tested by the first test here and in tests/report; the other
# runs skip it (--no-report), as what they check does not depend on it
FILES = {"requests.parquet", "pods.parquet", "nodes.parquet", "summary.csv",
         "scenario.resolved.yaml", "timeseries.parquet", "pod_timeseries.parquet",
         "node_timeseries.parquet", "events.parquet",
         ".npsim-result"}  # the marker: a folder npsim wrote

QUICK = """\
# The quick start, shortened for tests: 2 s at 200/s.
name: cli-quick
cluster:
  nodes:
    - {name: node-1, zone: zone-a}
    - {name: node-2, zone: zone-a}
    - {name: node-3, zone: zone-b}
manifests:
  - manifests/nginx.yaml
workloads:
  nginx:
    workers: 4
    serviceTime: {dist: exponential, mean: 5ms}
    queueLimit: 200
clients:
  - name: users
    service: nginx-nodeport
    sourceIPs: 50
    arrival: {rate: 200/s}
    rtt: {dist: lognormal, mean: 1ms, cv: 0.5}
run:
  duration: 2s
  warmup: 500ms
  seed: 1
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding quick.yaml and its manifest, made the working directory."""
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "nginx.yaml").write_text(
        (ROOT / "scenarios" / "manifests" / "nginx.yaml").read_text("utf-8"), "utf-8")
    (tmp_path / "quick.yaml").write_text(QUICK, "utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def npsim(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exc_info)
    return result


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def test_run_writes_the_result_folder(project: Path) -> None:
    result = npsim("run", "quick.yaml")
    assert result.exit_code == 0, result.output
    folder = project / "results" / "cli-quick" / "seed-1"
    assert {p.name for p in folder.iterdir()} == FILES | REPORT
    assert f"results    {Path('results/cli-quick/seed-1')}/" in result.output
    assert "scenario cli-quick  seed 1  replications 1" in result.output
    requests = pd.read_parquet(folder / "requests.parquet")
    assert 250 < len(requests) < 550  # about 400 requests in 2 s at 200/s
    assert len(pd.read_parquet(folder / "pods.parquet")) == 4
    assert len(pd.read_parquet(folder / "nodes.parquet")) == 3
    summary = pd.read_csv(folder / "summary.csv")
    assert {"metric", "value"} <= set(summary.columns)
    resolved = yaml.safe_load((folder / "scenario.resolved.yaml").read_text("utf-8"))
    assert resolved["name"] == "cli-quick"
    assert "npsimVersion" in resolved
    # nothing else was left behind (no temporary folders)
    assert sorted(p.name for p in (project / "results" / "cli-quick").iterdir()) == ["seed-1"]


def test_second_run_refuses_and_leaves_the_first_untouched(project: Path) -> None:
    assert npsim("run", "quick.yaml", "--no-report").exit_code == 0
    folder = project / "results" / "cli-quick" / "seed-1"
    before = snapshot(folder)
    result = npsim("run", "quick.yaml", "--no-report")
    assert result.exit_code == 2
    assert "already exists; npsim does not overwrite results" in result.output
    assert "--force" in result.output
    assert "Traceback" not in result.output
    assert snapshot(folder) == before
    # the same with an explicit --out
    again = npsim("run", "quick.yaml", "--out", str(folder), "--no-report")
    assert again.exit_code == 2
    assert snapshot(folder) == before


def test_force_replaces(project: Path) -> None:
    out = project / "out"
    assert npsim("run", "quick.yaml", "--out", str(out), "--no-report").exit_code == 0
    first = (out / "requests.parquet").read_bytes()
    (out / "notes.txt").write_text("kept by hand")
    result = npsim("run", "quick.yaml", "--out", str(out), "--force", "--seed", "2",
                   "--no-report")
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == FILES  # replaced as a whole
    assert (out / "requests.parquet").read_bytes() != first
    assert yaml.safe_load((out / "scenario.resolved.yaml").read_text())["run"]["seed"] == 2
    assert sorted(p.name for p in project.iterdir()) == ["manifests", "out", "quick.yaml"]


def test_resolved_scenario_reproduces_the_run(project: Path) -> None:
    assert npsim("run", "quick.yaml", "--out", "first", "--no-report").exit_code == 0
    result = npsim("run", "first/scenario.resolved.yaml", "--out", "again", "--no-report")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    first = project / "first" / "requests.parquet"
    again = project / "again" / "requests.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(first), pd.read_parquet(again))
    assert first.read_bytes() == again.read_bytes()
    # and resolving the resolved scenario changes nothing (apart from nothing)
    assert ((project / "first" / "scenario.resolved.yaml").read_text()
            == (project / "again" / "scenario.resolved.yaml").read_text())


def test_no_save_writes_nothing(project: Path) -> None:
    result = npsim("run", "quick.yaml", "--no-save")
    assert result.exit_code == 0, result.output
    assert "results" not in {p.name for p in project.iterdir()}


# 4 pods of 1 worker, 5 ms per request, at 800/s: offered load 1.0 per pod
OVERLOADED = QUICK.replace("name: cli-quick", "name: overloaded").replace(
    "workers: 4", "workers: 1").replace("rate: 200/s", "rate: 800/s").replace(
    "duration: 2s", "duration: 1s")


def test_utilisation_at_or_above_one_warns_but_runs(project: Path) -> None:
    (project / "overloaded.yaml").write_text(OVERLOADED, "utf-8")
    validate = npsim("validate", "overloaded.yaml")
    assert validate.exit_code == 0
    assert "1 warnings" in validate.stdout
    result = npsim("run", "overloaded.yaml", "--out", "over", "--no-report")
    assert result.exit_code == 0, result.output
    warning = ("warning: overloaded.yaml:11:3: workloads.nginx: offered load is 1.00 per pod "
               "(>= 1): queues will grow without bound")
    assert warning in result.stderr
    assert "warning" not in result.stdout
    assert {p.name for p in (project / "over").iterdir()} == FILES


def test_just_below_one_does_not_warn(project: Path) -> None:
    (project / "busy.yaml").write_text(
        OVERLOADED.replace("rate: 800/s", "rate: 799/s"), "utf-8")
    result = npsim("validate", "busy.yaml")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_bad_flags_are_usage_errors(project: Path) -> None:
    result = npsim("run", "quick.yaml", "--seed", "-1")
    assert result.exit_code == 2
    assert "Invalid value for '--seed'" in result.output
    assert not (project / "results").exists()


def test_version() -> None:
    result = npsim("--version")
    assert result.exit_code == 0
    assert result.output.startswith("npsim, version ")


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_result_folder_is_not_private(project: Path) -> None:
    assert npsim("run", "quick.yaml", "--out", "out", "--no-report").exit_code == 0
    assert (project / "out").stat().st_mode & 0o077 != 0


def test_compare_refuses_a_damaged_result_folder(project: Path) -> None:
    import shutil

    assert npsim("run", "quick.yaml", "--out", "a", "--no-report").exit_code == 0
    shutil.copytree(project / "a", project / "b")
    (project / "b" / "requests.parquet").write_text("garbage")
    shutil.copytree(project / "a", project / "c")
    (project / "c" / "summary.csv").write_text("scope,metric\nx\n")
    for folder, words in (("b", "not a readable npsim result folder (ArrowInvalid"),
                          ("c", "a summary.csv is not npsim's")):
        result = npsim("compare", "a", folder)
        assert result.exit_code == 2 and words in result.output, result.output


def test_compare_never_replaces_a_folder_it_compares(project: Path) -> None:
    """``--out`` naming an input (or a folder inside one, or one holding one) is refused
    before anything is read or written, even with --force: the input stays whole."""
    import shutil

    assert npsim("run", "quick.yaml", "--out", "a", "--no-report").exit_code == 0
    shutil.copytree(project / "a", project / "runs" / "b")
    before = sorted(p.name for p in (project / "a").iterdir())
    for out in ("a", "a/report", "runs", "./a/"):
        result = npsim("compare", "a", "runs/b", "--out", out, "--force")
        assert result.exit_code == 2 and "never replaces a folder it compares" in (
            result.output), result.output
    assert sorted(p.name for p in (project / "a").iterdir()) == before
    assert not (project / "a" / "report").exists()
    assert npsim("compare", "a", "runs/b", "--out", "cmp").exit_code == 0
