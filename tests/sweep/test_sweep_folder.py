"""A sweep's folder is guarded as a run's is: never written into a folder npsim did not
make, ``--force`` only for npsim's own, whole or absent whenever the sweep stops, and
resumed by a rerun. Its terminal output fits 100 columns; ``sweep.html`` and the README
account for every file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import descendants, pool_workers, wait_until_gone
from test_sweep import variants_dict

import npsim
from npsim.cli import main
from npsim.results.store import NotAResultError, ResultExistsError, ResultLockedError
from npsim.sweep import store
from npsim.sweep.folder import is_sweep_folder, staging_folder
from npsim.sweep.runner import sweep

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# the npsim under test, whatever the current folder (the installed one may be another)
ENV = {**os.environ, "PYTHONPATH": str(Path(npsim.__file__).resolve().parents[1])}


def small(**overrides) -> npsim.Scenario:
    data = variants_dict(duration=0.3, replications=2, **overrides)
    return npsim.scenario_from_dict(data)


def leftovers(folder: Path) -> list[str]:
    """npsim's hidden working files beside ``folder`` (temporary folders, locks)."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(
        f".{folder.name}.npsim-"))


def cli(*args: str) -> object:
    return CliRunner().invoke(main, list(args))


def test_a_users_folder_is_never_written_into(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my notes")
    (mine / "summary.csv").write_text("my,numbers\n")
    for force in (False, True):
        with pytest.raises(NotAResultError, match="not a folder npsim wrote"):
            sweep(small(), mine, jobs=1, overwrite=force)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(variants_dict(duration=0.5, replications=2)))
    for extra in ([], ["--force"]):
        result = cli("sweep", str(path), "--out", str(mine), "--jobs", "1", *extra)
        assert result.exit_code == 2 and "not a folder npsim wrote" in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["report.md", "summary.csv"]
    assert (mine / "report.md").read_text() == "my notes"
    assert leftovers(mine) == []


def test_a_run_folder_is_replaced_only_with_force(tmp_path: Path) -> None:
    run = tmp_path / "run"
    npsim.run(npsim.scenario_from_dict(variants_dict(duration=0.2))).save(run)
    with pytest.raises(ResultExistsError, match="not a sweep.*--force"):
        sweep(small(), run, jobs=1)
    assert (run / "requests.parquet").is_file()
    replaced = sweep(small(), run, jobs=1, overwrite=True)
    assert is_sweep_folder(run) and not (run / "requests.parquet").exists()
    assert replaced.computed == 4


def test_a_different_scenario_starts_over_only_with_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sweep(small(), out, jobs=1)
    with pytest.raises(store.SweepMismatch, match="different scenario.*--force"):
        sweep(small(seed=7), out, jobs=1)
    again = sweep(small(seed=7), out, jobs=1, overwrite=True)
    assert again.computed == 4 and yaml.safe_load(
        (store.run_folder(out, "fast", 0) / "scenario.resolved.yaml").read_text()
    )["run"]["seed"] == 7


def test_extending_a_sweep_keeps_what_a_user_added_and_the_old_folder_until_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    sweep(small(), out, jobs=1)
    (out / "notes.txt").write_text("kept")
    before = (out / "summary.csv").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as Ctrl-C in the middle of the new runs

    real = store.run_scenario
    monkeypatch.setattr(store, "run_scenario", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep(small().with_changes({"run.replications": 3}), out, jobs=1)
    assert (out / "summary.csv").read_bytes() == before  # the old sweep, whole
    assert staging_folder(out).is_dir()
    monkeypatch.setattr(store, "run_scenario", real)
    more = sweep(small().with_changes({"run.replications": 3}), out, jobs=1)
    assert more.computed == 2 and (out / "notes.txt").read_text() == "kept"
    assert set(pd.read_csv(out / "summary.csv")["runs"]) == {3}
    assert leftovers(out) == []


def test_a_sweep_written_before_markers_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sweep(small(), out, jobs=1)
    (out / ".npsim-result").unlink()  # as npsim wrote sweeps before they had a marker
    assert is_sweep_folder(out)
    assert sweep(small(), out, jobs=1).computed == 0
    assert (out / ".npsim-result").is_file()


def test_a_second_sweep_into_the_same_folder_is_refused_while_one_runs(
        tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "out"
    lock = tmp_path / ".out.npsim-lock"  # as another process holding it would
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ResultLockedError, match="another npsim run"):
            sweep(small(), out, jobs=1)
    assert not out.exists() and not staging_folder(out).exists()


def test_an_interrupted_first_sweep_leaves_no_folder_and_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    real, calls = store.run_scenario, []

    def dies_at_the_third(scenario, replications):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(scenario, replications=replications)

    monkeypatch.setattr(store, "run_scenario", dies_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        sweep(small(), out, jobs=1)
    assert not out.exists()
    assert len(list((staging_folder(out) / "runs").glob("*/rep-*"))) == 2
    monkeypatch.setattr(store, "run_scenario", real)
    resumed = sweep(small(), out, jobs=1)
    assert resumed.computed == 2 and len(resumed.runs["replication"]) > 0
    assert leftovers(out) == []


def test_terminal_output_fits_100_columns(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data = variants_dict(duration=0.5, replications=2)
    data["variants"] = {"grid": {"workloads.web.workers": [1, 2],
                                 "clients[0].arrival.rate": ["250/s", "300/s"]},
                        "report": ["throughput", "latency_p50", "latency_p95", "latency_p99",
                                   "queue_wait_mean", "cross_node_fraction",
                                   "pod_share_max_over_mean", "pod_share_jain",
                                   "source_ip_intact_fraction", "first_packet_p99"]}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    result = cli("sweep", str(path.name), "--out", "out", "--jobs", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    # every metric asked for is there, with its unit, and every variant's mean with a CI
    for label in ("latency_p99 (ms)", "first_packet_p99 (us)", "cross_node_fraction (%)",
                  "throughput (req/s)", "pod_share_jain"):
        assert label in result.output
    assert re.search(r"^rate=250_s,workers=1 \*\s+\d[\d.,]* \[", result.output, re.M)
    assert "difference from rate=250_s,workers=1" in result.output
    assert "report     out/sweep.html" in result.output


def test_sweep_html_holds_the_figure_tables_and_change_sets(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(variants_dict(duration=0.5, replications=2)))
    out = tmp_path / "out"
    assert cli("sweep", str(path), "--out", str(out), "--jobs", "1").exit_code == 0
    page = (out / "sweep.html").read_text()
    assert page.count("data:image/png;base64,") == 1
    assert "workloads.web.serviceTime={dist: exponential, mean: 2ms}" in page
    assert "latency_p99 (ms)" in page and "throughput (req/s)" in page
    assert re.search(r"<td>\d[\d.]* \[[\d.]+, [\d.]+\]</td>", page)  # mean [CI]
    assert re.search(r"<td>[+-][\d.]+ \+-[\d.]+ \(\+-[\d.]+\)</td>", page)  # differences
    assert list(pd.read_csv(out / "variants.csv")["variant"]) == ["slow", "fast"]


def test_the_readme_lists_every_file_a_sweep_writes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sweep(small(), out, jobs=1, extra=npsim.report.write_sweep_report)
    text = README.read_text()
    section = text[text.index("**Variants and sweeps.**"):text.index("**Common random")]
    listed = {name for line in section.splitlines() if line.startswith("| `")
              for name in re.findall(r"`([^`]+)`", line.split("|")[1])}
    optional = {"runs/VARIANT/rep-R.failed/", "worst.csv", "targets.csv"}  # only with flags
    assert {p.name for p in out.iterdir() if p.name != "runs"} | {"runs/VARIANT/rep-R/"} \
        == listed - optional
    assert {p.parent.name for p in (out / "runs").glob("*/rep-*")} == {"slow", "fast"}
    for name in ("metrics.parquet", "scenario.resolved.yaml", "summary.csv", ".npsim-result"):
        assert (store.run_folder(out, "fast", 0) / name).is_file() and f"`{name}`" in section


def test_compare_reads_a_sweep_folder_its_variants_as_columns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    sweep(small(), out, jobs=1)
    run = tmp_path / "run"
    npsim.run(npsim.scenario_from_dict(variants_dict(duration=0.5))).save(run)
    monkeypatch.chdir(tmp_path)
    result = cli("compare", "out")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split() == ["metric", "slow", "fast"]
    assert re.search(r"^replications\s+2\s+2$", result.output, re.M)
    both = cli("compare", "out", "run", "--out", "cmp")
    assert both.exit_code == 0, both.output
    blocks = both.output.split("\n\n")  # 100 columns: the third column in a second block
    assert [h for b in blocks for h in b.splitlines()[0].split()
            if h != "metric"] == ["out:slow", "out:fast", "run"]
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "variant fast: mean over replications; figures from rep-0" in page
    assert page.count("data:image/png;base64,") == 3


def test_compare_force_replaces_only_its_own_output(tmp_path: Path) -> None:
    run = tmp_path / "run"
    npsim.run(npsim.scenario_from_dict(variants_dict(duration=0.2))).save(run)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    refused = cli("compare", str(run), "--out", str(mine), "--force")
    assert refused.exit_code == 2 and "not a result folder npsim wrote" in refused.output
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]
    inside = cli("compare", str(run), "--out", str(run / "cmp"), "--force")
    assert inside.exit_code == 2 and "never replaces a folder it compares" in inside.output
    cmp = tmp_path / "cmp"
    assert cli("compare", str(run), "--out", str(cmp)).exit_code == 0
    assert cli("compare", str(run), "--out", str(cmp), "--force").exit_code == 0
    assert (run / "requests.parquet").is_file() and (cmp / "compare.html").is_file()


def _kill_mid_way(cmd: list[str], ready, timeout: float = 120) -> list[int]:
    """Start ``cmd``, wait until ``ready()`` and its pool's two workers run, SIGKILL it;
    returns every process it had started."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    everything: list[int] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (ready() and len(pool_workers(proc.pid)) == 2):
            time.sleep(0.02)
        assert len(pool_workers(proc.pid)) == 2, "the pool did not start"
        everything = descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return everything
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find processes")
def test_a_killed_sweep_leaves_no_folder_no_process_and_resumes(tmp_path: Path) -> None:
    data = variants_dict(duration=3.0, replications=4)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    runs = staging_folder(out) / "runs"
    started = _kill_mid_way(
        [sys.executable, "-m", "npsim.cli", "sweep", str(path), "--out", str(out), "--jobs", "2"],
        lambda: any(runs.glob("*/rep-*[0-9]")))
    assert wait_until_gone(started) == [], "worker processes outlived the killed sweep"
    assert not out.exists()
    done = len([p for p in runs.glob("*/rep-*[0-9]")])
    result = cli("sweep", str(path), "--out", str(out), "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert f"{8 - done} runs made" in result.output
    assert leftovers(out) == [] and (out / "sweep.html").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find processes")
def test_a_killed_run_leaves_no_folder_no_process_and_reruns(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    data = variants_dict(duration=3.0, replications=2)
    del data["variants"]
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "npsim.cli", "run", str(path), "--out", str(out), "--jobs", "2",
           "--no-report"]
    started = _kill_mid_way(cmd, lambda: True)
    assert wait_until_gone(started) == [], "worker processes outlived the killed run"
    assert not out.exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "requests.parquet").is_file() and leftovers(out) == []
