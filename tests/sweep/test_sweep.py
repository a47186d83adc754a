"""``npsim sweep``: variants x replications, common random numbers, job-count
invariance, resuming, failed runs recorded, tidy tables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import build, client, exponential, pool_workers, scenario_dict

import npsim
from npsim.cli import main
from npsim.sweep import store
from npsim.sweep.folder import staging_folder
from npsim.sweep.runner import sweep
from npsim.sweep.store import SweepMismatch
from npsim.sweep.variants import expand

ARRIVALS = ["replication", "request", "population", "client_ip", "connection", "t_start"]


def variants_dict(**overrides) -> dict:
    """Two nodes, two pods, ~300 requests a run; variants differ in service time only."""
    settings = {"duration": 1.0, "replications": 3, **overrides}
    data = scenario_dict(nodes=2, replicas=2, workers=2, service_time=exponential(4e-3),
                         clients=[client(rate=300.0, source_ips=40)], **settings)
    data["variants"] = {"each": [
        {"name": "slow", "set": {"workloads.web.serviceTime": {"dist": "exponential",
                                                               "mean": "4ms"}}},
        {"name": "fast", "set": {"workloads.web.serviceTime": {"dist": "exponential",
                                                               "mean": "2ms"}}}]}
    return data


@pytest.fixture(scope="module")
def scenario() -> npsim.Scenario:
    return npsim.scenario_from_dict(variants_dict())


@pytest.fixture(scope="module")
def serial(scenario, tmp_path_factory) -> npsim.sweep.runner.SweepResult:
    return sweep(scenario, tmp_path_factory.mktemp("serial"), jobs=1)


def requests_of(result, variant: str, rep: int) -> pd.DataFrame:
    return pd.read_parquet(store.run_folder(result.folder, variant, rep) / "requests.parquet")


def test_variants_share_their_arrivals(serial) -> None:
    """Common random numbers: only the service-time draws' effect differs."""
    for rep in range(3):
        slow, fast = requests_of(serial, "slow", rep), requests_of(serial, "fast", rep)
        pd.testing.assert_frame_equal(slow[ARRIVALS], fast[ARRIVALS])
        assert (slow["service"] > fast["service"]).mean() > 0.95


@pytest.mark.slow
def test_results_do_not_depend_on_the_job_count(scenario, serial, tmp_path) -> None:
    parallel = sweep(scenario, tmp_path, jobs=2)
    assert (parallel.folder / "sweep.parquet").read_bytes() == (
        serial.folder / "sweep.parquet").read_bytes()
    pd.testing.assert_frame_equal(requests_of(parallel, "fast", 2), requests_of(serial, "fast", 2))


def test_tables_are_tidy_and_paired_against_the_baseline(serial) -> None:
    runs = pd.read_parquet(serial.folder / "sweep.parquet")
    assert list(runs.columns) == ["variant", "replication", "metric", "value"]
    assert set(runs["variant"]) == {"slow", "fast"} and set(runs["replication"]) == {0, 1, 2}
    p99 = runs[runs["metric"] == "latency_p99"].pivot(index="replication", columns="variant",
                                                      values="value")
    diffs = p99["fast"] - p99["slow"]
    row = serial.paired.set_index(["variant", "metric"]).loc[("fast", "latency_p99")]
    assert serial.baseline == "slow" and row["difference"] == pytest.approx(diffs.mean())
    assert row["ci_low"] < diffs.mean() < row["ci_high"]
    summary = pd.read_csv(serial.folder / "summary.csv")
    jain = summary[summary["metric"] == "pod_share_jain"]
    assert (jain["ci_high"] <= 1).all() and (jain["ci_low"] >= 0).all()
    assert "| **slow** (baseline) |" in (serial.folder / "report.md").read_text()


def test_a_rerun_recomputes_nothing(scenario, serial) -> None:
    frames = store.run_folder(serial.folder, "fast", 0) / "requests.parquet"
    before = os.stat(frames).st_ino, os.stat(frames).st_mtime_ns
    again = sweep(scenario, serial.folder, jobs=1)
    assert again.computed == 0
    assert (os.stat(frames).st_ino, os.stat(frames).st_mtime_ns) == before  # the same file
    assert again.runs.equals(serial.runs)


def test_more_replications_reuse_the_finished_ones(scenario, serial) -> None:
    more = sweep(scenario.with_changes({"run.replications": 4}), serial.folder, jobs=1)
    assert more.computed == 2  # replication 3 of both variants
    assert more.runs[more.runs["replication"] < 3].reset_index(drop=True).equals(serial.runs)


def test_a_different_scenario_is_not_resumed_over(serial) -> None:
    other = npsim.scenario_from_dict(variants_dict(seed=7))
    with pytest.raises(SweepMismatch, match="different scenario"):
        sweep(other, serial.folder, jobs=1)


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(scenario, tmp_path, monkeypatch) -> None:
    real = store.run_scenario

    def flaky(variant_scenario, replications):
        if variant_scenario.workloads["web"].service_time.mean == 2e-3 and replications == [1]:
            raise RuntimeError("boom")
        return real(variant_scenario, replications=replications)

    monkeypatch.setattr(store, "run_scenario", flaky)
    result = sweep(scenario, tmp_path, jobs=1)
    assert result.failures.to_dict("records") == [
        {"variant": "fast", "replication": 1, "error": "RuntimeError: boom"}]
    failed = store.failed_folder(store.run_folder(tmp_path, "fast", 1))
    assert "RuntimeError: boom" in (failed / "error.txt").read_text()
    assert len(result.runs[result.runs["metric"] == "latency_p99"]) == 5
    monkeypatch.setattr(store, "run_scenario", real)
    retried = sweep(scenario, tmp_path, jobs=1)
    assert retried.computed == 1 and retried.failures.empty and not failed.exists()


def test_grids_name_their_variants_and_bad_variants_name_themselves() -> None:
    data = variants_dict()
    data["variants"] = {"grid": {"cluster.proxyMode": ["iptables", "ipvs"],
                                 "workloads.web.workers": [1, 2]},
                        "baseline": "proxyMode=ipvs,workers=1"}
    variants, baseline = expand(npsim.scenario_from_dict(data))
    assert [v.name for v in variants] == ["proxyMode=iptables,workers=1",
                                          "proxyMode=iptables,workers=2",
                                          "proxyMode=ipvs,workers=1", "proxyMode=ipvs,workers=2"]
    assert baseline == "proxyMode=ipvs,workers=1"
    assert variants[3].scenario.cluster.proxy_mode == "ipvs"
    data["variants"] = {"each": [{"name": "bad", "set": {"workloads.web.workers": 0}}]}
    with pytest.raises(npsim.ScenarioError, match=r"variants: bad: workloads.web.workers"):
        expand(npsim.scenario_from_dict(data))


def test_run_jobs_gives_the_same_result_as_one_process() -> None:
    scenario = build(nodes=2, replicas=2, clients=[client(rate=300.0)], duration=1.0,
                     replications=3)
    one, two = npsim.run(scenario), npsim.run(scenario, jobs=2)
    pd.testing.assert_frame_equal(one.requests, two.requests)
    pd.testing.assert_frame_equal(one.summary, two.summary)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find worker processes")
def test_killing_a_worker_mid_sweep_loses_nothing_that_finished(tmp_path) -> None:
    data = variants_dict(duration=4.0)
    data["run"]["replications"] = 4
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "npsim.cli", "sweep", str(path), "--out", str(out),
           "--jobs", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = staging_folder(out) / "runs"  # the sweep's folder appears when it is complete
    deadline = time.monotonic() + 120
    while not any(runs.glob("*/rep-*[0-9]")) and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = pool_workers(proc.pid)
    assert workers, "no worker process found"
    os.kill(workers[-1], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    done = {f: os.stat(f).st_ino for f in runs.glob("*/rep-*") if f.is_dir()}
    assert proc.returncode == 1, err
    assert "worker process died" in err and "resume" in err
    assert 0 < len(done) < 8
    assert not out.exists()
    resumed = sweep(npsim.load_scenario(path), out, jobs=1)
    assert resumed.computed == 8 - len(done)
    moved = {out / f.relative_to(runs.parent): ino for f, ino in done.items()}
    assert {f: os.stat(f).st_ino for f in moved} == moved  # finished runs untouched
    assert len(resumed.runs[resumed.runs["metric"] == "latency_p99"]) == 8


def test_cli_sweep_writes_the_tables_and_stays_quiet_off_a_terminal(tmp_path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(variants_dict()))
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "o"),
                                       "--jobs", "1", "--replications", "2"])
    assert result.exit_code == 0, result.output
    assert "2 variants x 2 replications  4 runs made" in result.output
    assert "runs" not in result.stderr if hasattr(result, "stderr") else True
    assert {"sweep.parquet", "summary.csv", "paired.csv", "report.md", "comparison.png",
            "sweep.html", "variants.csv", "failures.csv", "runs", ".npsim-result"} == {
        p.name for p in (tmp_path / "o").iterdir()}


def test_a_variant_over_the_limits_is_refused_before_anything_runs(tmp_path) -> None:
    data = variants_dict()
    data["run"]["limits"] = {"maxRequests": 5000}
    data["variants"]["each"].append({"name": "huge", "set": {"run.duration": "10h"}})
    with pytest.raises(npsim.scenario.problems.ScenarioError, match="variants: huge"):
        sweep(npsim.scenario_from_dict(data), tmp_path / "out", jobs=1)
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written
