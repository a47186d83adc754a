"""Requests a hung pod holds for ever (no probe takes it out, no client time-out) are in
flight at the end of the run: the headlines counted none of them, so a run in which a
fifth of the requests never got an answer read "failed none", error ratio 0 and the
users' p99 of the served requests. Those unanswered after twice as long as any request
that ended took count as failed, and at their age in what users see."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import client, exponential, scenario_dict

import npsim
from npsim.results.headline import failure_line
from npsim.sweep.targets import evaluate_checks, parse_target, with_guard


def _hung(hang: bool = True) -> npsim.Result:
    """2 pods on one node, 200/s, no probes, no client time-out; web-1 hangs at 1 s."""
    data = scenario_dict(replicas=2, workers=2, service_time=exponential(5e-3),
                         clients=[client(rate=200.0, source_ips=50)], duration=6.0)
    if hang:
        data["events"] = [{"at": "1s", "podHang": {"pod": "web-1"}}]
    return npsim.run(npsim.scenario_from_dict(data))


@pytest.fixture(scope="module")
def hung() -> npsim.Result:
    return _hung()


def test_requests_held_for_ever_count_as_failed(hung) -> None:
    req = hung.requests
    held = req[(req["outcome"] == "in_flight") & (req["t_start"] < 5.0)]
    assert len(held) > 300  # half the traffic from 1 s on: no answer, ever
    ended = req[req["outcome"].isin(["completed", "failed"])]
    longest = ended["latency"].max()
    end = req["t_start"].max()
    stuck = req[(req["outcome"] == "in_flight") & (end - req["t_start"] > 2 * longest)]
    assert len(stuck) >= len(held)
    assert hung.metric("requests_unanswered") == len(stuck)
    assert hung.metric("error_ratio") == pytest.approx(
        (int((req["outcome"] == "failed").sum()) + len(stuck)) / (len(ended) + len(stuck)))
    assert hung.metric("error_ratio") > 0.3
    # the users' view: every ended request, and the unanswered ones at their age so far
    ages = np.concatenate([ended["latency"].to_numpy(), end - stuck["t_start"].to_numpy()])
    for q in (50, 95, 99):
        assert hung.metric(f"user_latency_p{q}") == pytest.approx(np.quantile(ages, q / 100))
    assert hung.metric("user_latency_p99") > 1.0 > 0.1 > hung.metric("latency_p99")


def test_the_headline_and_a_check_say_so(hung) -> None:
    line = failure_line(hung.summary[hung.summary["scope"] == "all"]
                        .set_index("metric")["value"])
    n = int(hung.metric("requests_unanswered"))
    assert line.startswith(f"failed     {n:,} of ")  # not "failed none"
    assert f"{n:,} of them with no answer" in line and "no answer 100%" in line
    assert "after twice as long as any request that ended took" in line
    checks = evaluate_checks(with_guard([parse_target("user_latency_p99 < 100ms")]),
                             {None: dict(zip(hung.summary.query("scope == 'all'")["metric"],
                                             hung.summary.query("scope == 'all'")["value"],
                                             strict=True))})
    assert [c.passed for c in checks] == [False, False]


def test_a_run_without_a_hang_has_none() -> None:
    """The few requests in flight at a healthy run's end are recent: not counted; nor
    are those of a queue that grows (the shop's first second, overloaded)."""
    result = _hung(hang=False)
    assert result.metric("requests_measured_in_flight") > 0
    assert "requests_unanswered" not in set(result.summary["metric"])
    assert result.metric("error_ratio") == 0.0
    payments = {"address": "payments.example.com:443",
                "latency": {"dist": "constant", "value": "5ms"}}
    shop = npsim.run(npsim.bundled("three-tier-shop").with_changes(
        {"run.duration": "1s", "run.warmup": "0s",
         "workloads.cart.calls": [{"external": payments}]}))
    assert shop.metric("requests_measured_in_flight") > 50
    assert shop.metric("requests_unanswered") == 0


def test_a_hang_nobody_ends_is_not_recovered(hung) -> None:
    """Every time bucket had answers and no failure, so the incident figure said
    "recovered after 0s" (the fault never showed) while a fifth of the requests waited
    for ever: requests held to the end mean the run ended still failing."""
    import math

    assert hung.metric("requests_unanswered") > 0
    assert math.isnan(hung.metric("time_to_recover"))
    assert "not recovered by the end" in hung.report()
