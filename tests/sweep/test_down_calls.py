"""`--each-node-down` and the planner on a multi-tier scenario (issue 21): a node's loss
reaches the clients' pages through the calls, and the answers count pages, not calls."""

from __future__ import annotations

import pytest

import npsim
from npsim.sweep.planner import plan_search


def shop(**changes: object) -> npsim.Scenario:
    return npsim.bundled("three-tier-shop").with_changes(
        {"run.duration": "4s", "run.warmup": "1s", **changes})


@pytest.mark.slow
def test_a_callee_on_the_lost_node_fails_every_page():
    """redis-cart has one pod, on node-1: with node-1 down every cart call finds no
    endpoint, so no page completes (downstream_failed, or unanswered at node-1); the
    other cases lose capacity only. Every case measures the same pages (common random numbers)."""
    down = npsim.run_each_down(shop(), "node")
    assert set(down.results) == {"node-1", "node-2", "node-3"}
    pages = {}
    for case, result in down.results.items():
        req = result.requests
        measured = req[(req["population"] == "shoppers") & (req["t_start"] >= 1.0)]
        pages[case] = len(measured)
        assert result.metric("requests_measured") == len(measured)  # pages, not calls
    assert len(set(pages.values())) == 1
    lost = down.results["node-1"].requests
    lost = lost[(lost["population"] == "shoppers") & (lost["t_start"] >= 1.0)]
    assert not (lost["outcome"] == "completed").any()
    failed = lost[lost["outcome"] == "failed"]
    assert (failed["reason"].astype(str) == "downstream_failed").all()
    # the rest entered at node-1 itself (SYNs unanswered) or near the end (t = 4 s)
    unended = lost[lost["outcome"] == "in_flight"]
    assert (unended["entry_node"] == "node-1").mean() > 0.7
    assert (unended.loc[unended["entry_node"] != "node-1", "t_start"] > 3.5).all()
    worst = down.worst.set_index("metric")
    assert worst.loc["error_ratio", "case"] == "node-1"
    assert worst.loc["error_ratio", "value"] > 0.95
    # node-3 down loses no page through a live node; the pages sent to node-3 itself
    # (entry: random, no balancer) wait on SYN retries (127 s, the kernel's 6): held
    # unanswered to the end, they count as failed (results/unanswered.py), not as 0
    third = down.results["node-3"]
    req = third.requests
    measured = req[(req["population"] == "shoppers") & (req["t_start"] >= 1.0)]
    assert not (measured["outcome"] == "failed").any()
    held = measured[measured["outcome"] == "in_flight"]
    assert 0 < third.metric("requests_unanswered") <= (held["entry_node"] == "node-3").sum()
    assert third.metric("error_ratio") > 0.2


@pytest.mark.slow
def test_the_planner_sees_a_single_point_of_failure_behind_the_calls():
    """No number of cart pods survives the loss of redis-cart's only node; with two
    redis pods the planner finds cart replicas that hold with any node down. The
    shoppers come through a balancer checking every node: with entry: random a third
    of them would wait on a dead node's SYNs in every case, and no plan holds."""
    target = "user_latency_p99 < 150ms"
    balanced = {"clients[shoppers].balancer": {"healthCheck": {
        "interval": "2s", "timeout": "1s", "fall": 3, "rise": 2}}}
    spof = plan_search(shop(**balanced), target, "deployments.cart.replicas=2..8",
                       replications=2, max_replications=2, each="node", jobs=1)
    assert spof.answer is None
    failing = spof.frame[spof.frame["verdict"] == "fails"]
    assert set(failing["down"]) == {"node-1"}
    # 2..5, not 2..8: the search probes both ends first, and 5 already holds (the answer)
    spared = plan_search(shop(**{"deployments.redis-cart.replicas": 2}, **balanced), target,
                         "deployments.cart.replicas=2..5", replications=3,
                         max_replications=3, each="node", jobs=1)
    assert spared.answer is not None and 2 < spared.answer <= 5
    at_answer = spared.frame[spared.frame["value"] == spared.answer]
    assert set(at_answer["down"]) == {"node-1", "node-2", "node-3"}
    assert (at_answer["verdict"] == "meets").all()
