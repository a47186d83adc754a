"""A node crash seen through the front-ends: a health-checking balancer over the
NodePort, LoadBalancer + Local with the healthCheckNodePort, DNS round robin; the
alerts that fire; exact accounting and determinism. Figures are the scenario headers'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import npsim

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
CRASH = 60.0
INTERVAL, FALL, TIMEOUT = 2.0, 3, 1.0


@pytest.fixture(scope="module")
def lb() -> npsim.Result:
    return npsim.run(SCENARIOS / "node-failure-lb.yaml")


@pytest.fixture(scope="module")
def local() -> npsim.Result:
    return npsim.run(SCENARIOS / "node-failure-local.yaml")


def _marks(result: npsim.Result, kind: str, node: str) -> list[float]:
    ev = result.events
    return ev.loc[(ev["kind"] == kind) & (ev["subject"] == node), "time"].tolist()


def test_failures_through_the_dead_node_stop_once_the_checks_fell(lb):
    down = _marks(lb, "lb_mark_down", "node-2")
    assert len(down) == 1 and not _marks(lb, "lb_mark_up", "node-2")
    assert CRASH + (FALL - 1) * INTERVAL + TIMEOUT <= down[0] <= CRASH + FALL * INTERVAL + TIMEOUT
    req = lb.requests
    via2 = req[req["entry_node"] == "node-2"]
    assert via2["t_start"].max() < down[0]  # never again once marked down
    failed = via2[via2["outcome"] == "failed"]
    assert len(failed) == 157 and (failed["reason"] == "connect_timeout").all()
    assert failed["t_start"].min() >= CRASH
    # Cluster policy: healthy nodes keep DNATing to node-2's pod until they sync
    removed = lb.events.loc[lb.events["kind"] == "endpoints_removed", "time"].max()
    others = req[(req["entry_node"] != "node-2") & (req["outcome"] == "failed")]
    assert len(others) == 1228
    assert others["t_start"].min() >= CRASH and others["t_start"].max() <= removed
    ts = lb.node_timeseries
    ts = ts[ts["node"] == "node-2"]
    assert (ts.loc[ts["time"] >= down[0], "lb_up"] == 0).all()
    assert (ts.loc[ts["time"] < CRASH, "lb_up"] == 1).all()


def test_local_never_sends_to_a_node_without_ready_local_endpoint_after_the_fall(local):
    down = _marks(local, "lb_mark_down", "node-2")
    assert len(down) == 1 and down[0] <= CRASH + FALL * INTERVAL + TIMEOUT
    req = local.requests
    assert req.loc[req["entry_node"] == "node-2", "t_start"].max() < down[0]
    failed = req[req["outcome"] == "failed"]
    assert len(failed) == 157 and (failed["entry_node"] == "node-2").all()
    done = req[req["outcome"] == "completed"]
    assert (done["pod_node"] == done["entry_node"]).all()  # Local: no second hop
    assert (done["source_ip_seen"] == done["client_ip"]).all()


def test_alerts_fire_and_resolve_at_rule_evaluations(lb, local):
    for result, resolved in ((lb, 150.0), (local, 105.0)):
        ev = result.events
        firing = ev[ev["kind"] == "alert_firing"].set_index("subject")["time"]
        # the probe at 60 s is the first to fail; true at each evaluation for 30 s
        assert firing["NodePortDown{node=node-2}"] == 90.0
        assert firing["ErrorRatio"] == 75.0
        assert ev.loc[ev["kind"] == "alert_resolved", "time"].tolist() == [resolved]
        assert "NodePortDown{node=node-1}" not in firing.index
        assert result.metric("time_to_detect") == 15.0
    assert lb.metric("time_to_recover") == 54.0
    assert local.metric("time_to_recover") == 8.0
    ratio = lb.metric("error_ratio")
    assert lb.metric("error_budget_burn_rate") == pytest.approx(ratio / 0.001)


def test_dns_clients_keep_the_dead_address_until_the_ttl_runs_out():
    result = npsim.run(SCENARIOS / "node-failure-dns.yaml")
    req = result.requests
    after = req[req["t_start"] > 115.0]
    share = after.groupby("population", observed=True)["outcome"].apply(
        lambda o: (o == "failed").mean())
    assert 0.25 < share["pinning"] < 0.4
    assert share["failover"] < 0.08
    assert np.isnan(result.metric("time_to_recover"))  # DNS never stops the failures
    pinned = req[(req["population"] == "pinning") & (req["t_start"] > CRASH)]
    via2 = pinned[pinned["entry_node"] == "node-2"]
    assert (via2["outcome"] != "completed").all()
    # a client pinned to node-2 stays there at most one TTL (30 s) per resolution
    runs = via2.groupby("client_ip", observed=True)["t_start"].agg(["min", "max"])
    assert ((runs["max"] - runs["min"]) > 0).any()


def test_accounting_is_exact_and_runs_repeat(lb):
    req = lb.requests
    assert len(req) == lb.metric("requests_generated")
    assert (lb.metric("requests_completed") + lb.metric("requests_failed")
            + lb.metric("requests_in_flight")) == len(req)
    ts = lb.timeseries
    assert ts["sent"].sum() == len(req)
    assert ts["completed"].sum() == (req["outcome"] == "completed").sum()
    assert ts["failed"].sum() == (req["outcome"] == "failed").sum()
    again = npsim.run(SCENARIOS / "node-failure-lb.yaml")
    pd.testing.assert_frame_equal(again.requests, req)
    pd.testing.assert_frame_equal(again.events, lb.events)
    pd.testing.assert_frame_equal(again.timeseries, ts)
    pd.testing.assert_frame_equal(again.node_timeseries, lb.node_timeseries)


def test_next_upstream_hides_most_failures_from_users():
    """nginx proxy_next_upstream with 2 more tries: a connect that fails through the
    dead node (or to its pod via a healthy node) is tried on the next node at once."""
    scenario = npsim.load_scenario(SCENARIOS / "node-failure-lb.yaml")
    scenario.spec.clients[0].balancer.next_upstream = 2
    result = npsim.run(scenario)
    req = result.requests
    tries = req[req["attempt"] > 0].set_index("request")
    first = req.set_index("request").loc[tries["retry_of"]]
    assert np.allclose(tries["t_start"].to_numpy(), first["t_end"].to_numpy())  # no backoff
    assert (first["reason"] == "connect_timeout").all() and tries["attempt"].max() == 2
    assert (tries["entry_node"].to_numpy() != first["entry_node"].to_numpy()).all()
    seen = result.metric("requests_failed_after_retries")
    assert seen < 0.25 * 1385  # without next_upstream users see 1,385 failures
