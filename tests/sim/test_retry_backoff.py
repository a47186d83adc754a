"""Retry back-off grows to its cap and stops there: no float overflow however many
retries (an OverflowError after about 1,000 retries, also through a balancer's
nextUpstream when every node was down; issue 22)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import client, scenario_dict

import npsim
from npsim.scenario.client_spec import BackoffSpec, RetrySpec
from npsim.sim.clients import RetryPolicy


def policy(**backoff: object) -> RetryPolicy:
    spec = RetrySpec(attempts=100, backoff=BackoffSpec(jitter="none", **backoff))
    return RetryPolicy(spec, np.random.default_rng(1))


@pytest.mark.parametrize("base, multiplier, cap", [
    (0.1, 2.0, 10.0), (1e-3, 1.6, 120.0), (0.0, 2.0, 10.0), (0.5, 1.0, 10.0),
    (20.0, 2.0, 10.0), (1e-300, 1.0001, 5.0), (1e-320, 2.0, 3e7)])
def test_backoff_is_min_of_cap_and_exponential_and_never_overflows(
        base: float, multiplier: float, cap: float) -> None:
    p = policy(base=base, multiplier=multiplier, max=cap)
    for attempt in (1, 2, 3, 10, 100, 1025, 5000, 10**6):
        wait = p.backoff(attempt)
        # the exact value, in logarithms where the power alone overflows a float
        log_grown = -math.inf if base == 0 else (math.log(base)
                                                 + (attempt - 1) * math.log(multiplier))
        expected = cap if log_grown >= math.log(cap) else math.exp(log_grown)
        assert wait == pytest.approx(expected, rel=1e-12)
        assert 0 <= wait <= cap


def test_every_node_down_with_the_most_next_upstream_tries_finishes_and_adds_up() -> None:
    d = scenario_dict(nodes=2, replicas=2, clients=[client(rate=20.0)], duration=2.0)
    d["clients"][0]["balancer"] = {"nextUpstream": 100, "connectTimeout": "1ms"}
    d["events"] = [{"at": 0, "nodeCrash": {"node": f"node-{i}"}} for i in (1, 2)]
    result = npsim.run(npsim.scenario_from_dict(d))
    req = result.requests
    assert int(req["attempt"].max()) == 100
    firsts = int((req["attempt"] == 0).sum())
    assert len(req) == firsts * 101  # every first attempt and each of its 100 tries
    assert (req["outcome"] != "ok").all()
