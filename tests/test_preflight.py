"""The run's size estimate (npsim.preflight), as the guards use it: requests, memory
(time series included) and the periodic events of monitoring and balancers."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import client, scenario_dict

import npsim
from npsim.preflight import (
    BYTES_PER_BUCKET,
    BYTES_PER_CLIENT_SLOT,
    BYTES_PER_NODE_BUCKET,
    BYTES_PER_POD_BUCKET,
    BYTES_PER_WORKER,
    estimate,
    preflight,
)
from npsim.scenario.problems import ScenarioError

QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"


def test_the_memory_estimate_counts_a_row_per_pod_and_node_per_time_bucket():
    """pod_timeseries and node_timeseries hold every pod and node in every bucket,
    whatever the traffic: an hour of 1 s buckets costs 3,599 rows more per pod and
    node than one bucket of an hour, in each replication."""
    d = scenario_dict(nodes=3, replicas=10, clients=[client(rate=1.0)], duration=3600.0,
                      replications=2)
    d["run"]["timeseriesBucket"] = "1s"
    fine = estimate(npsim.scenario_from_dict(d))
    d["run"]["timeseriesBucket"] = "1h"
    coarse = estimate(npsim.scenario_from_dict(d))
    assert fine.requests == coarse.requests
    assert fine.memory - coarse.memory == 3599 * 2 * (
        BYTES_PER_BUCKET + 10 * BYTES_PER_POD_BUCKET + 3 * BYTES_PER_NODE_BUCKET)
    # a run under a minute without the key: at most 60 buckets (the 1-2-5 step)
    del d["run"]["timeseriesBucket"]
    d["run"]["duration"] = "30s"
    short = estimate(npsim.scenario_from_dict(d))
    d["run"]["timeseriesBucket"] = "1s"
    assert estimate(npsim.scenario_from_dict(d)).memory == short.memory - 30 * 2 * (
        BYTES_PER_BUCKET + 10 * BYTES_PER_POD_BUCKET + 3 * BYTES_PER_NODE_BUCKET)


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


def test_other_services_count_against_the_service_limit(base: npsim.Scenario) -> None:
    report = refused(base.with_changes({"cluster.otherServices": {"count": 10**9}}))
    assert "cluster.otherServices.count: the scenario has 1,000,000,000 other Services" in report
    assert "run.limits.maxServices" in report
    preflight(base.with_changes({"cluster.otherServices": {"count": 9_999}}))


def test_the_guard_counts_the_replications_a_caller_asks_for():
    """``npsim.run(..., replications=[...])`` runs that many, whatever run.replications
    says: the estimate counts those (a list of 10 over a 1-replication scenario went past
    the request limit unseen, and one of 10 was refused for all ten)."""
    d = scenario_dict(nodes=1, replicas=1, clients=[client(rate=1000.0)], duration=10.0,
                      replications=10)  # 10,000 requests a replication
    scenario = npsim.scenario_from_dict(d)
    assert estimate(scenario).requests == pytest.approx(100_000, rel=0.01)
    assert estimate(scenario, 2).requests == pytest.approx(20_000, rel=0.01)
    with pytest.raises(ScenarioError, match=r"x 10 replication\(s\)"):
        npsim.run(scenario, max_requests=50_000)
    with pytest.raises(ScenarioError, match=r"x 6 replication\(s\)"):
        npsim.run(scenario, replications=range(6), max_requests=50_000)
    one = npsim.run(scenario, replications=[7], max_requests=50_000)
    assert set(one.requests["replication"]) == {7}


# --- issue 22: retries, per-pod state, and every command that simulates ---------------

def _retrying(attempts: int, budget: dict | None = None, rate: float = 1000.0):
    d = scenario_dict(nodes=2, replicas=2, clients=[client(rate=rate)], duration=2.0)
    d["clients"][0]["retries"] = {"attempts": attempts, "backoff": {"base": 0}}
    if budget is not None:
        d["clients"][0]["retries"]["budget"] = budget
    return npsim.scenario_from_dict(d)


def test_the_estimate_counts_every_retry_a_failing_run_can_send():
    """Every first attempt may fail and be retried ``attempts`` times with no back-off: a
    billion retries ran without end because the estimate ignored them."""
    est = estimate(_retrying(100))
    assert est.requests == pytest.approx(2000)
    assert est.retries[0] == pytest.approx(2000 * 100)
    assert est.retries[1] == ["clients", 0, "retries", "attempts"]
    with pytest.raises(ScenarioError) as info:
        preflight(_retrying(100), max_requests=100_000)
    (problem,) = info.value.problems
    assert problem.path == "clients[0].retries.attempts"
    assert "202,000 requests counting retries" in problem.message
    # a retry budget bounds them: 0.2 x 2,000 + 10/s x (2 s + a 10 s window)
    budgeted = estimate(_retrying(100, {}))
    assert budgeted.retries[0] == pytest.approx(0.2 * 2000 + 10 * 12)
    preflight(_retrying(100, {}), max_requests=100_000)


def test_the_estimate_counts_each_pods_workers():
    d = scenario_dict(nodes=2, replicas=10, workers=1, clients=[client(rate=1.0)],
                      duration=1.0)
    one = estimate(npsim.scenario_from_dict(d))
    d["workloads"]["web"]["workers"] = 1_000_001
    many = estimate(npsim.scenario_from_dict(d))
    assert many.memory - one.memory == 10 * 1_000_000 * BYTES_PER_WORKER


def test_preflight_until_estimates_only_the_time_simulated():
    d = scenario_dict(nodes=2, replicas=2, clients=[client(rate=1e7)], duration=3600.0)
    scenario = npsim.scenario_from_dict(d)
    with pytest.raises(ScenarioError):
        preflight(scenario)
    assert preflight(scenario, until=1.0).requests == pytest.approx(1e7)


def test_counts_past_a_quadrillion_are_written_short():
    """A 1e300/s rate step printed a 300-digit request count in two problems."""
    d = scenario_dict(nodes=2, replicas=2, clients=[client(schedule=[(0, 1.0), (1.0, 1e300)])],
                      duration=2.0)
    with pytest.raises(ScenarioError) as info:
        preflight(npsim.scenario_from_dict(d))
    assert all(len(p.message) < 400 for p in info.value.problems)
    assert any("1e+300 requests" in p.message for p in info.value.problems)


def test_the_memory_estimate_counts_each_clients_state():
    """A billion sourceIPs allocate their arrays before the first request is sent."""
    d = scenario_dict(nodes=2, replicas=2, clients=[client(rate=1.0)], duration=1.0)
    few = estimate(npsim.scenario_from_dict(d))
    d["clients"][0].update(sourceIPs=10**9, sourceIPBase="1.0.0.0")
    many = estimate(npsim.scenario_from_dict(d))
    assert many.memory - few.memory == (10**9 - 100) * BYTES_PER_CLIENT_SLOT
    with pytest.raises(ScenarioError) as info:
        preflight(npsim.scenario_from_dict(d), max_memory=8 << 30)
    assert "1,000,000,000 client users or sourceIPs" in info.value.problems[0].message
