"""A node down from the start (``cluster.nodes[].down``): the steady state between a
crash's detection and its pods' eviction, with no detection window to sit through."""

from __future__ import annotations

import pytest
from conftest import client, scenario_dict

import npsim
from npsim.scenario.problems import ScenarioError

HEALTH_CHECK = {"interval": "2s", "timeout": "1s", "fall": 3, "rise": 2}


def _down_scenario(**changes: object) -> dict:
    """3 nodes, 6 pods (2 a node), node-1 down; 'lb' behind a health-checked balancer,
    'direct' aiming at node-1 itself (a 1 s connect timeout)."""
    direct = client("direct", rate=50.0, entry={"node": "node-1"}, source_ips=20)
    direct["connectTimeout"] = "1s"
    lb = client("lb", rate=200.0, source_ips=50)
    del lb["entry"]
    lb["balancer"] = {"healthCheck": dict(HEALTH_CHECK)}
    data = scenario_dict(nodes=3, replicas=6, clients=[direct, lb], duration=8.0, **changes)
    data["cluster"]["nodes"][0]["down"] = True
    return data


def test_a_node_down_from_the_start_is_known_to_balancers_and_kube_proxies() -> None:
    data = _down_scenario()
    data["cluster"]["controlPlane"] = {"tolerationSeconds": "1s"}  # would evict at once
    result = npsim.run(npsim.scenario_from_dict(data))
    req = result.requests
    lb = req[(req["population"] == "lb") & (req["outcome"] != "in_flight")]
    # the balancer never sends to node-1 and no kube-proxy DNATs to its pods: no failure
    assert len(lb) > 1000 and (lb["outcome"] == "completed").all()
    assert set(lb["entry_node"]) == {"node-2", "node-3"}
    assert set(lb["pod_node"]) == {"node-2", "node-3"}
    # a client aiming at the dead node directly sees what it would: a connect timeout
    direct = req[(req["population"] == "direct") & (req["outcome"] != "in_flight")]
    assert len(direct) > 200 and (direct["reason"] == "connect_timeout").all()
    assert direct["latency"].min() == pytest.approx(1.0)
    # the state holds for the run: nobody detects anything (it is known from t = 0),
    # no endpoint changes, no eviction, no replacement pod
    events = result.events
    assert list(zip(events["time"], events["kind"], events["subject"], strict=True)) == [
        (0.0, "node_down", "node-1"), (0.0, "lb_mark_down", "node-1")]
    assert set(result.pods["pod"]) == {f"web-{i}" for i in range(6)}


def test_every_node_down_leaves_the_balancer_nothing_to_send_to() -> None:
    data = _down_scenario()
    for node in data["cluster"]["nodes"]:
        node["down"] = True
    data["clients"] = data["clients"][1:]
    result = npsim.run(npsim.scenario_from_dict(data))
    ended = result.requests[result.requests["outcome"] != "in_flight"]
    assert len(ended) > 1000 and (ended["reason"] == "no_healthy_upstream").all()


def test_a_client_cannot_run_on_a_node_that_is_down() -> None:
    data = _down_scenario()
    data["clients"][0]["source"] = {"pod": "node-1"}
    del data["clients"][0]["entry"]
    with pytest.raises(ScenarioError, match=r"clients\[0\]\.source\.pod: node 'node-1' is "
                                            "down for the whole run"):
        npsim.scenario_from_dict(data)


def test_a_node_down_from_the_start_comes_back_when_an_event_reboots_it() -> None:
    """The state is a declared start, not a special case: a nodeCrash of the same node
    that ends brings it back through the usual path (reboot, Ready, rise checks)."""
    data = _down_scenario()
    data["clients"] = data["clients"][1:]
    data["events"] = [{"at": "0.5s", "until": "1s", "nodeCrash": {"node": "node-1"}}]
    data["run"]["duration"] = "90s"
    result = npsim.run(npsim.scenario_from_dict(data))
    kinds = list(result.events["kind"])
    assert "node_ready" in kinds and "lb_mark_up" in kinds
    late = result.requests[result.requests["t_start"] > 80]
    assert "node-1" in set(late["entry_node"]) and "node-1" in set(late["pod_node"])
