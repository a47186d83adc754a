"""The node lifecycle controller's zones and rate limits (npsim/sim/eviction.py).

Figures from kube-controller-manager ``pkg/controller/nodelifecycle``:
``ComputeZoneState`` (PartialDisruption: more than 2 not-Ready nodes and at least
``unhealthyZoneThreshold`` 0.55 of the zone; FullDisruption: none Ready),
``setLimiterInZone`` / ``ReducedQPSFunc`` (``nodeEvictionRate`` 0.1/s, 0.01/s in a
partially disrupted zone of more than ``largeClusterSizeThreshold`` 50 nodes, 0 in a
smaller one), ``handleDisruption`` (every zone fully disrupted: no eviction anywhere),
``RateLimitedTimedQueue`` with a burst-1 token bucket (two nodes 1 / 0.1 = 10 s apart),
``processTaintBaseEviction`` (the taint queued one monitor pass after Unknown).
"""

from __future__ import annotations

import pandas as pd
import pytest

import npsim
from npsim.cluster.lifecycle import ControlPlaneTiming, timing_for
from npsim.scenario.loader import scenario_from_dict
from npsim.sim.eviction import TokenBucket, ZoneState, compute_zone_state, zone_rate

CRASH_AT = 10.0


@pytest.mark.parametrize(("ready", "not_ready", "state"), [
    (2, 3, ZoneState.PARTIAL),  # 3 of 5: more than 2 and 60 % >= 55 %
    (3, 2, ZoneState.NORMAL),  # 2 of 5: not more than 2
    (3, 3, ZoneState.NORMAL),  # 50 % < 55 %
    (5, 6, ZoneState.NORMAL),  # 6 / 11 = 54.5 %
    (4, 5, ZoneState.PARTIAL),  # 5 / 9 = 55.6 %
    (0, 2, ZoneState.FULL),  # none Ready, however few
    (0, 0, ZoneState.NORMAL),
])
def test_compute_zone_state(ready: int, not_ready: int, state: ZoneState) -> None:
    """ComputeZoneState with unhealthyZoneThreshold 0.55."""
    assert compute_zone_state(ready, not_ready, 0.55) is state


def test_zone_rates_reduced_qps_func() -> None:
    """setLimiterInZone: HealthyQPSFunc (0.1) for Normal and FullDisruption; ReducedQPSFunc
    for PartialDisruption: 0.01 in a zone of more than 50 nodes, else 0."""
    timing = timing_for("1.32")
    assert zone_rate(ZoneState.NORMAL, 5, timing) == 0.1
    assert zone_rate(ZoneState.FULL, 5, timing) == 0.1
    assert zone_rate(ZoneState.PARTIAL, 5, timing) == 0.0
    assert zone_rate(ZoneState.PARTIAL, 50, timing) == 0.0
    assert zone_rate(ZoneState.PARTIAL, 51, timing) == 0.01
    assert timing_for("1.31") == ControlPlaneTiming(grace_period=40.0)  # same limits


def test_token_bucket_burst_one_and_swap_limiter() -> None:
    """flowcontrol.NewTokenBucketRateLimiter(qps, 1): full at first, then one token per
    1/qps; SwapLimiter drains the new bucket when the old one had no token."""
    bucket = TokenBucket(0.1, 0.0)
    assert bucket.try_accept(100.0) and not bucket.try_accept(100.0)
    assert bucket.next_token(100.0) == pytest.approx(110.0)
    assert not bucket.try_accept(109.9) and bucket.try_accept(110.0)
    drained = bucket.swapped(0.01, 110.0)
    assert drained.next_token(110.0) == pytest.approx(210.0)
    never = bucket.swapped(0.0, 110.0)
    assert not never.try_accept(1e9) and never.next_token(0.0) == float("inf")
    assert never.swapped(0.1, 200.0).next_token(200.0) == pytest.approx(210.0)


def _scenario(zones: dict[str, int], crash: list[str], version: str = "1.32",
              control_plane: dict | None = None, duration: str = "120s") -> npsim.Scenario:
    """Nodes per zone (``a-1``, ``a-2``, ...), one pod on each, a light client; the nodes
    in ``crash`` crash together at 10 s. A 0.5 s lease interval puts every crashed node's
    Unknown in one or two neighbouring monitor passes; toleration 30 s keeps runs short."""
    nodes = [{"name": f"{z}-{i + 1}", "zone": z} for z, n in zones.items() for i in range(n)]
    cp = {"nodeLeaseRenewInterval": "0.5s", "tolerationSeconds": "30s", **(control_plane or {})}
    data = {
        "name": "zones",
        "cluster": {"kubernetesVersion": version, "controlPlane": cp, "nodes": nodes},
        "manifests": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"type": "NodePort", "selector": {"app": "web"},
                      "ports": [{"port": 80, "targetPort": 80, "nodePort": 30080}]}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {"replicas": len(nodes), "selector": {"matchLabels": {"app": "web"}},
                      "template": {"metadata": {"labels": {"app": "web"}},
                                   "spec": {"containers": [{"name": "web",
                                                            "ports": [{"containerPort": 80}]}]}}}}],
        "workloads": {"web": {"serviceTime": {"dist": "constant", "value": "1ms"}}},
        "clients": [{"name": "users", "service": "web", "arrival": {"rate": "5/s"},
                     "entry": {"node": nodes[-1]["name"]}, "connectTimeout": "1s"}],
        "events": [{"at": f"{CRASH_AT:g}s", "nodeCrash": {"node": n}} for n in crash],
        "run": {"duration": duration, "seed": 1},
    }
    return scenario_from_dict(data)


def _events(result: npsim.Result, kind: str) -> pd.DataFrame:
    e = result.events
    return e[e["kind"].astype(str) == kind]


@pytest.mark.parametrize("version", ["1.31", "1.32"])
def test_three_of_five_nodes_of_a_zone_crash_no_eviction(version: str) -> None:
    """3 of zone-a's 5 nodes down: PartialDisruption in a zone of 5 <= 50 nodes, taint
    rate 0 (ReducedQPSFunc): no taint, no eviction, the pods are not crammed onto the two
    survivors. Zone b keeps the cluster out of full-disruption mode."""
    result = npsim.run(_scenario({"a": 5, "b": 2}, ["a-1", "a-2", "a-3"], version))
    assert len(_events(result, "node_unknown")) == 3
    assert _events(result, "taint_added").empty
    assert _events(result, "pod_evicted").empty
    states = _events(result, "zone_state")
    assert list(states["subject"]) == ["a"]
    assert states["detail"].item().startswith("PartialDisruption")


@pytest.mark.parametrize(("version", "grace"), [("1.31", 40.0), ("1.32", 50.0)])
def test_two_nodes_crashing_together_are_evicted_ten_seconds_apart(version: str,
                                                                   grace: float) -> None:
    """2 of 5 down: the zone stays Normal (not more than 2), so both are tainted, 10 s
    apart (nodeEvictionRate 0.1, burst 1), the first one monitor pass after Unknown; each
    node's pods go tolerationSeconds after its taint."""
    result = npsim.run(_scenario({"a": 5}, ["a-1", "a-2"], version))
    unknown = _events(result, "node_unknown")["time"].to_numpy()
    assert len(unknown) == 2
    assert CRASH_AT + grace - 0.5 <= unknown.min() <= CRASH_AT + grace + 5
    taints = _events(result, "taint_added").sort_values("time")
    assert len(taints) == 2 and _events(result, "zone_state").empty
    first, second = taints["time"].to_numpy()
    assert first == pytest.approx(unknown.min() + 5.0)  # the next monitor pass
    assert second - first == pytest.approx(10.0)
    evicted = _events(result, "pod_evicted").sort_values("time")
    assert list(evicted["time"]) == pytest.approx([first + 30.0, second + 30.0])
    scheduled = _events(result, "pod_scheduled")
    assert set(scheduled["detail"]) <= {"a-3", "a-4", "a-5"}


def test_secondary_rate_in_a_partially_disrupted_large_zone() -> None:
    """largeClusterSizeThreshold 4 makes zone-a (5 nodes) "large": PartialDisruption then
    taints at secondaryNodeEvictionRate 0.01/s, 100 s apart (the limiter swapped from a
    used Normal bucket starts drained)."""
    result = npsim.run(_scenario({"a": 5, "b": 1}, ["a-1", "a-2", "a-3"],
                                 control_plane={"largeClusterSizeThreshold": 4},
                                 duration="360s"))
    taints = _events(result, "taint_added")["time"].sort_values().to_numpy()
    assert "rate 0.01/s" in _events(result, "zone_state")["detail"].item()
    assert len(taints) >= 2
    assert taints[1] - taints[0] == pytest.approx(100.0, abs=5.0)


def test_every_zone_fully_disrupted_stops_evictions_one_healthy_zone_does_not() -> None:
    """handleDisruption: with every zone FullDisruption nothing is evicted anywhere; a
    fully disrupted zone next to a healthy one is evicted at the normal rate."""
    alone = npsim.run(_scenario({"a": 2}, ["a-1", "a-2"]))
    assert _events(alone, "pod_evicted").empty and _events(alone, "taint_added").empty
    assert "evictions stopped" in _events(alone, "zone_state")["detail"].iloc[-1]
    beside = npsim.run(_scenario({"a": 2, "b": 1}, ["a-1", "a-2"]))
    taints = _events(beside, "taint_added")["time"].sort_values().to_numpy()
    assert len(taints) == 2 and taints[1] - taints[0] == pytest.approx(10.0)
    assert len(_events(beside, "pod_evicted")) == 2
    assert _events(beside, "zone_state")["detail"].item().startswith("FullDisruption")


def test_zone_outage_scenario_figures() -> None:
    """The bundled zone outage (its header's figures, to 130 s): the balancer takes the
    three dead nodes out at 65 s, the controller finds them Unknown at 110.03 s and zone-a
    in PartialDisruption, and taints none; every failure is a connect timeout between
    the crash and the kube-proxies' syncs."""
    scenario = npsim.bundled("zone-outage").with_changes({"run.duration": "130s"})
    result = npsim.run(scenario)
    assert list(_events(result, "lb_mark_down")["time"]) == pytest.approx([65.0] * 3)
    assert list(_events(result, "node_unknown")["time"]) == pytest.approx([110.03] * 3,
                                                                          abs=0.01)
    state = _events(result, "zone_state")
    assert state["subject"].item() == "zone-a"
    assert state["detail"].item() == "PartialDisruption: taint rate 0/s"
    assert _events(result, "taint_added").empty
    req = result.requests
    failed = req[(req["outcome"].astype(str) == "failed").to_numpy()]
    assert set(failed["reason"].astype(str)) == {"connect_timeout"}
    assert failed["t_start"].min() >= 60.0 and failed["t_start"].max() < 110.2
