"""``npsim run --check/--json`` for CI, and ``--each-node-down`` on ``run`` and
``sweep``: exit codes, the JSON schema, the worst case named."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import client, exponential, scenario_dict

from npsim.cli import main


def _three_nodes(tmp_path: Path, replicas: int = 5) -> Path:
    """3 nodes, pods 2/2/1, 300/s through a balancer checking every node."""
    users = client("users", rate=300.0, source_ips=100)
    del users["entry"]
    users["balancer"] = {"healthCheck": {"interval": "2s", "timeout": "1s", "fall": 3,
                                         "rise": 2}}
    data = scenario_dict(nodes=3, replicas=replicas, service_time=exponential(5e-3),
                         clients=[users], duration=3.0, warmup=0.5)
    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _npsim(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exc_info)
    return result


def test_checks_exit_0_when_all_hold_and_1_naming_the_one_that_failed(tmp_path) -> None:
    path = _three_nodes(tmp_path)
    ok = _npsim("run", str(path), "--no-save", "--check", "latency_p99 < 10s",
                "--check", "error_ratio < 0.01")
    assert ok.exit_code == 0, ok.output
    assert "check passed: latency_p99 < 10s" in ok.output
    assert "check passed: error_ratio < 0.01" in ok.output
    bad = _npsim("run", str(path), "--no-save", "--check", "latency_p99 < 1us",
                 "--check", "error_ratio < 0.01")
    assert bad.exit_code == 1
    assert "check FAILED: latency_p99 < 1us: " in bad.output
    assert "check passed: error_ratio < 0.01" in bad.output


@pytest.mark.parametrize("check, message", [
    ("latency_p99 about 50ms", "expected METRIC OP VALUE"),
    ("latncy_p99 < 50ms", "did you mean 'latency_p99'"),
    ("latency_p99 < fifty", "--check 'latency_p99 < fifty'"),
    ("error_budget_burn_rate < 1", "needs an SLO"),
])
def test_a_malformed_check_exits_2_before_anything_runs(tmp_path, check, message) -> None:
    path = _three_nodes(tmp_path)
    result = _npsim("run", str(path), "--out", str(tmp_path / "out"), "--check", check)
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and message in result.output
    assert "npsim 0" not in result.output and not (tmp_path / "out").exists()


def test_json_is_the_summary_with_cis_and_checks_on_stdout(tmp_path) -> None:
    path = _three_nodes(tmp_path)
    out = tmp_path / "out"
    result = _npsim("run", str(path), "--out", str(out), "--no-report", "--replications",
                    "3", "--json", "--check", "throughput > 100/s",
                    "--check", "latency_p99 < 1us")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)  # stdout holds the document and nothing else
    assert doc["scenario"] == "test" and doc["seed"] == 1 and doc["replications"] == 3
    p99 = doc["metrics"]["latency_p99"]
    assert p99["ci_low"] < p99["value"] < p99["ci_high"]
    assert doc["metrics"]["error_ratio"]["value"] == 0.0
    summary = pd.read_csv(out / "summary.csv")
    row = summary[(summary["scope"] == "all") & (summary["metric"] == "throughput")].iloc[0]
    assert doc["metrics"]["throughput"]["value"] == pytest.approx(row["value"])
    assert [(c["metric"], c["op"], c["passed"]) for c in doc["checks"]] == [
        ("throughput", ">", True), ("latency_p99", "<", False),
        ("error_ratio", "<", True)]  # implied by the latency check
    assert [c["implied"] for c in doc["checks"]] == [False, False, True]
    assert doc["checks"][1]["threshold"] == pytest.approx(1e-6)
    assert doc["checks"][1]["value"] == pytest.approx(p99["value"])
    assert doc["passed"] is False and doc["folder"] == str(out)
    assert "check FAILED" in result.stderr and "latency" in result.stderr  # readable: stderr


def test_run_each_node_down_reports_the_worst_node_and_checks_against_it(tmp_path) -> None:
    path = _three_nodes(tmp_path)  # pods 2/2/1: node-1 or node-2 down leaves 3
    out = tmp_path / "out"
    result = _npsim("run", str(path), "--out", str(out), "--no-report", "--each-node-down",
                    "--json", "--check", "queue_wait_mean < 1us", "--check",
                    "error_ratio < 0.001")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["each"] == "node" and list(doc["cases"]) == ["node-1", "node-2", "node-3"]
    assert "metrics" not in doc  # no single run: the cases and the worst
    waits = {case: c["metrics"]["queue_wait_mean"]["value"] for case, c in doc["cases"].items()}
    worst = doc["worst"]["queue_wait_mean"]
    assert worst["value"] == max(waits.values()) and worst["down"] in ("node-1", "node-2")
    assert waits[worst["down"]] == worst["value"] and worst["best_down"] == "node-3"
    check = doc["checks"][0]
    assert check["passed"] is False and check["down"] == worst["down"]
    assert doc["checks"][1]["passed"] is True  # the balancer knew: nothing failed
    assert f"with {worst['down']} down" in result.stderr
    for case in doc["cases"]:  # one result folder per case, and the worst table
        assert (out / f"{case}-down" / "summary.csv").is_file()
    table = pd.read_csv(out / "worst.csv")
    assert table.set_index("metric").loc["queue_wait_mean", "case"] == worst["down"]
    again = _npsim("run", str(path), "--out", str(out), "--each-node-down")
    assert again.exit_code == 2 and "already exists" in again.output


def test_each_zone_down_needs_two_zones(tmp_path) -> None:
    path = _three_nodes(tmp_path)
    result = _npsim("run", str(path), "--no-save", "--each-zone-down")
    assert result.exit_code == 2 and "needs nodes in two zones or more" in result.output


def test_sweep_runs_each_variant_per_node_down_and_judges_the_targets(tmp_path) -> None:
    path = _three_nodes(tmp_path)
    out = tmp_path / "sweep"
    result = _npsim("sweep", str(path), "--out", str(out), "--jobs", "1", "--replications",
                    "2", "--each-node-down", "--target", "queue_wait_mean < 1us")
    assert result.exit_code == 0, result.output
    runs = pd.read_parquet(out / "sweep.parquet")
    assert sorted(set(runs["variant"])) == [f"base,down=node-{i}" for i in (1, 2, 3)]
    worst = pd.read_csv(out / "worst.csv").set_index("metric")
    assert worst.loc["queue_wait_mean", "variant"] == "base"
    targets = pd.read_csv(out / "targets.csv")
    assert list(targets["target"]) == ["queue_wait_mean < 1us", "error_ratio < 1%"]
    assert list(targets["variant_verdict"]) == ["fails", "fails"]
    assert targets.iloc[0]["down"] == worst.loc["queue_wait_mean", "case"]
    assert "meeting every target: none" in result.output
    assert max(len(line) for line in result.output.splitlines()
               if "Worst case" in line or line.startswith(("  base ", "base "))) <= 100
    assert not math.isnan(targets.iloc[0]["mean"])


def test_a_latency_check_alone_fails_when_requests_are_shed(tmp_path) -> None:
    """A full queue refuses most requests: the served ones' p99 is low and a latency
    check alone held (exit 0) while a third of the requests failed. As ``plan`` and
    ``sweep`` do, a latency check without a failure check brings ``error_ratio < 1%``,
    printed and in the JSON marked implied; a failure check of the user's turns it off."""
    data = scenario_dict(workers=1, queue_limit=1, service_time=exponential(5e-3),
                         clients=[client(rate=400.0, source_ips=50)], duration=2.0)
    path = tmp_path / "shed.yaml"
    path.write_text(yaml.safe_dump(data))
    shed = _npsim("run", str(path), "--no-save", "--json", "--check", "latency_p99 < 10s")
    assert shed.exit_code == 1, shed.output
    doc = json.loads(shed.stdout)
    assert doc["metrics"]["error_ratio"]["value"] > 0.3
    assert [(c["check"], c["passed"], c["implied"]) for c in doc["checks"]] == [
        ("latency_p99 < 10s", True, False), ("error_ratio < 1%", False, True)]
    assert "check FAILED: error_ratio < 1% (implied by the latency check): " in shed.stderr
    own = _npsim("run", str(path), "--no-save", "--check", "latency_p99 < 10s",
                 "--check", "error_ratio < 0.9")
    assert own.exit_code == 0, own.output
    assert "implied" not in own.output
