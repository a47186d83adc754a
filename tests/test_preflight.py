"""The pre-run estimate counts what a run simulates and holds besides requests: the
periodic events of monitoring and balancers, and the time series' rows."""

from __future__ import annotations

from pathlib import Path

import pytest

import npsim
from npsim.preflight import preflight
from npsim.scenario.problems import ScenarioError

QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"


@pytest.fixture(scope="module")
def base() -> npsim.Scenario:
    return npsim.load_scenario(QUICKSTART).with_changes({"run.duration": "2s",
                                                         "run.warmup": "0s"})


def refused(scenario: npsim.Scenario) -> str:
    with pytest.raises(ScenarioError) as info:
        preflight(scenario)
    return info.value.report()


def test_a_tiny_time_series_bucket_is_counted_in_memory(base: npsim.Scenario) -> None:
    """A 1 ns bucket over 2 s died allocating 15 GiB after the run."""
    report = refused(base.with_changes({"run.timeseriesBucket": "1ns"}))
    assert "2,000,000,000 time-series rows per replication" in report
    assert "run.timeseriesBucket" in report and "--max-memory" in report
    assert preflight(base.with_changes({"run.timeseriesBucket": "10ms"})).series_rows == 200


def test_periodic_events_count_against_the_request_limit(base: npsim.Scenario) -> None:
    """A 1 ns blackbox probe interval hung the run: 8,000,000,000 probes in 2 s."""
    report = refused(base.with_changes({"monitoring": {
        "evaluationInterval": "1ns", "alerts": [{"name": "down", "probe": {"interval": "1us"}}]}}))
    assert "monitoring.evaluationInterval" in report
    assert "periodic events besides requests (mostly alert rule evaluations" in report
    assert "--max-requests N or run.limits.maxRequests" in report
    report = refused(base.with_changes({"clients[0].balancer": {
        "algorithm": "roundRobin", "healthCheck": {"interval": "10ns", "timeout": "5ns"}}}))
    assert "clients[0].balancer.healthCheck.interval" in report and "health checks" in report
    fine = base.with_changes({"monitoring": {"alerts": [{"name": "down", "probe": {}}]}})
    assert preflight(fine).timers[0] < 100
