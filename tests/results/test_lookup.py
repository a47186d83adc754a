"""``Result.metric``: a count of a failure that did not happen is 0; a name no run writes
is a KeyError that says what was meant (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

import npsim
from npsim.scenario.changes import with_changes

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def healthy() -> npsim.Result:
    base = npsim.load_scenario(SCENARIOS / "quickstart.yaml")
    return npsim.run(with_changes(base, {"run.duration": "3s", "run.warmup": "1s",
                                         "clients[0].arrival.rate": "300/s"}))


def test_a_failure_that_did_not_happen_counts_zero(healthy) -> None:
    assert not (healthy.summary["metric"] == "failed_queue_full").any()
    assert healthy.metric("failed_queue_full") == 0.0
    assert healthy.metric("failed_share_connect_timeout") == 0.0
    assert healthy.metric("retries") == 0.0
    assert healthy.metric("error_ratio") == 0.0  # written even without monitoring
    # nothing failed: users saw what the completed requests took
    assert healthy.metric("user_latency_p99") == healthy.metric("latency_p99")
    # without retries every failure is final
    assert healthy.metric("requests_failed_after_retries") == healthy.metric("requests_failed")


def test_an_unknown_name_says_what_it_could_mean(healthy) -> None:
    with pytest.raises(KeyError, match="did you mean 'latency_p99'"):
        healthy.metric("latncy_p99")
    with pytest.raises(KeyError, match="did you mean 'failed_queue_full'"):
        healthy.metric("failed_queue_ful")
    with pytest.raises(KeyError, match="no summary metric 'zzz'; see result.summary"):
        healthy.metric("zzz")


def test_a_figure_of_a_fault_or_slo_says_when_it_is_written(healthy) -> None:
    with pytest.raises(KeyError, match="written for runs with an event"):
        healthy.metric("time_to_recover")
    with pytest.raises(KeyError, match=r"written for runs with an SLO \(monitoring.slo\)"):
        healthy.metric("error_budget_burn_rate")
    with pytest.raises(KeyError, match="no population 'nobody'"):
        healthy.metric("latency_p99", population="nobody")
