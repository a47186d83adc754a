"""Calls to a Service's NodePort, externalIP or LoadBalancer VIP, and to a dependency
outside the cluster (npsim/sim/call_targets.py).

Each Service-address path is checked against the in-cluster client population that
takes the same path (``source: {pod: node-1}``, the same ``target``): which node's
kube-proxy picks, the SNAT rule (the address the pod sees), the hop, the spread over
the endpoints. An external call adds its dependency's round trip and service (and
queue), and its failures propagate per ``onFailure``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import assert_matches_theory, constant, exponential
from test_calls import entry_rows, two_tier

import npsim

HOP = 2e-4  # a node-to-node hop (round trip), every other hop 0
NET = {"sameNode": constant(0.0), "sameZone": constant(HOP), "crossZone": constant(HOP)}
NODE_IPS = {"node-1": "172.18.0.2", "node-2": "172.18.0.3", "node-3": "172.18.0.4"}


def three_nodes(call: dict[str, Any], *, service: dict[str, Any] | None = None,
                mode: str = "iptables", twin: dict[str, Any] | None = None,
                duration: float = 3.0, **kw: Any) -> dict[str, Any]:
    """The web pod on node-1 calls a backend of 3 pods, one per node; ``twin``: an
    in-cluster client population on node-1 that takes the same path."""
    d = two_tier(nodes=3, be_replicas=3, rate=300.0, call={"count": 1, **call},
                 duration=duration, warmup=0.0, network=NET, placement={"node-1": 1},
                 proxy_mode=mode, **kw)
    d["workloads"]["backend"]["workers"] = 8
    svc = d["manifests"][2]["spec"]
    svc["type"] = "NodePort"
    svc.update(service or {})
    if twin is not None:
        d["clients"].append({"name": "twin", "service": "backend", "port": 9000,
                             "source": {"pod": "node-1"}, "sourceIPs": 1,
                             "arrival": {"rate": "300/s"}, **twin})
    return d


def run(d: dict[str, Any]) -> Any:
    return npsim.run(npsim.scenario_from_dict(d)).requests


def edge(req: Any, prefix: str = "web>backend") -> Any:
    return req[req["population"].astype(str).str.startswith(prefix)]


def twin_rows(req: Any) -> Any:
    return req[req["population"] == "twin"]


def spread(rows: Any) -> dict[str, float]:
    share = rows["pod"].value_counts(normalize=True)
    return {str(k): float(v) for k, v in share.items() if v > 0}


def seen(rows: Any) -> set[str]:
    return set(rows["source_ip_seen"].astype(str))


def test_nodeport_of_the_callers_own_node_is_caught_there_and_masqueraded():
    """KUBE-NODEPORTS on node-1 (dst-type LOCAL), Cluster policy: KUBE-EXT masquerades;
    any of the three pods serves. The twin population does exactly the same."""
    d = three_nodes({"target": "nodePort"},
                    twin={"target": "nodePort", "entry": {"node": "node-1"}})
    req = run(d)
    calls, twin = edge(req), twin_rows(req)
    assert set(calls["population"].astype(str)) == {"web>backend:9000@nodePort"}
    for rows in (calls, twin):
        assert (rows["outcome"] == "completed").all()
        assert set(rows["entry_node"].astype(str)) == {"node-1"}
        share = spread(rows)
        assert len(share) == 3 and min(share.values()) > 0.25
        # masqueraded: remote pods see node-1's address, the local one its bridge
        remote = rows[rows["cross_node"]]
        assert seen(remote) == {NODE_IPS["node-1"]}
        assert not (rows["source_ip_seen"].astype(str) == rows["client_ip"].astype(str)).any()
        assert np.allclose(remote["hop"], HOP) and np.allclose(remote["network"], HOP)
    assert abs(calls["cross_node"].mean() - twin["cross_node"].mean()) < 0.1


@pytest.mark.parametrize("mode, pods", [("iptables", 3), ("ipvs", 1)])
def test_local_policy_nodeport_short_circuits_pods_in_iptables_not_in_ipvs(mode, pods):
    """externalTrafficPolicy Local: iptables' "pod traffic for ... external
    destinations" rule sends a pod's connection to the Cluster chain without SNAT (all
    three pods); IPVS keeps to node-1's own endpoint. Call and twin agree."""
    d = three_nodes({"target": "nodePort"}, service={"externalTrafficPolicy": "Local"},
                    mode=mode, twin={"target": "nodePort", "entry": {"node": "node-1"}})
    req = run(d)
    for rows in (edge(req), twin_rows(req)):
        assert len(spread(rows)) == pods
        assert (rows["source_ip_seen"].astype(str) == rows["client_ip"].astype(str)).all()


def test_nodeport_of_another_node_is_picked_by_that_nodes_kube_proxy():
    """node: node-2: nothing on node-1 matches (not a local address); the call travels
    to node-2 (one more hop, in ``network``), node-2's KUBE-EXT masquerades it to
    node-2's address and picks among all pods."""
    d = three_nodes({"target": "nodePort", "node": "node-2"},
                    twin={"target": "nodePort", "entry": {"node": "node-2"}})
    req = run(d)
    calls, twin = edge(req), twin_rows(req)
    assert set(calls["population"].astype(str)) == {"web>backend:9000@nodePort/node-2"}
    for rows in (calls, twin):
        assert set(rows["entry_node"].astype(str)) == {"node-2"}
        assert len(spread(rows)) == 3
        assert seen(rows[rows["cross_node"]]) == {NODE_IPS["node-2"]}
        assert (rows["cross_node"] == (rows["pod_node"] != "node-2")).all()
    # the call's network time = the leg node-1 -> node-2 + node-2's hop to the pod
    assert np.allclose(calls["network"], HOP + calls["hop"])
    assert np.allclose(twin["network"], twin["hop"])  # the twin's rtt is its own (0)


def test_another_nodes_nodeport_with_local_policy_in_ipvs_uses_that_nodes_pod():
    d = three_nodes({"target": "nodePort", "node": "node-3"}, mode="ipvs",
                    service={"externalTrafficPolicy": "Local"})
    calls = edge(run(d))
    assert set(calls["pod_node"].astype(str)) == {"node-3"}
    assert set(calls["entry_node"].astype(str)) == {"node-3"}
    assert (calls["source_ip_seen"].astype(str) == calls["client_ip"].astype(str)).all()


def test_a_down_node_s_nodeport_times_the_call_out():
    """node-2 is down: its NodePort answers nothing, so the call's connect gives up
    at the call's deadline and the request fails (onFailure: fail)."""
    d = three_nodes({"target": "nodePort", "node": "node-2", "timeout": "20ms"},
                    duration=1.0)
    d["cluster"]["nodes"][1]["down"] = True
    req = run(d)
    calls = edge(req)
    calls = calls[calls["t_start"] < 0.9]
    assert len(calls) > 50 and set(calls["reason"].astype(str)) == {"connect_timeout"}
    assert np.allclose(calls["latency"], 0.02)
    done = entry_rows(req).query("outcome != 'in_flight'")
    assert (done["reason"].astype(str) == "downstream_failed").all()


@pytest.mark.parametrize("target, service", [
    ("externalIP", {"externalIPs": ["203.0.113.10"]}),
    ("loadBalancerIP", {"type": "LoadBalancer"}),
])
def test_external_addresses_are_short_circuited_on_the_callers_node(target, service):
    """KUBE-SERVICES matches -d <externalIP | LB VIP> on every node: node-1 catches
    the call (entry node-1 even though nothing there is addressed), masquerades it
    (Cluster policy), and with Local sends it to the Cluster chain unNATed."""
    for policy, snat in (("Cluster", True), ("Local", False)):
        d = three_nodes({"target": target}, service={**service,
                                                     "externalTrafficPolicy": policy},
                        twin={"target": target}, duration=1.5)
        if target == "loadBalancerIP":
            d["manifests"][2]["status"] = {"loadBalancer": {"ingress": [{"ip":
                                                                         "203.0.113.20"}]}}
        req = run(d)
        for rows in (edge(req), twin_rows(req)):
            assert set(rows["entry_node"].astype(str)) == {"node-1"}
            assert len(spread(rows)) == 3
            kept = rows["source_ip_seen"].astype(str) == rows["client_ip"].astype(str)
            assert (~kept).all() if snat else kept.all(), (target, policy)


def test_load_balancer_source_ranges_drop_caller_pods_outside_them():
    """KUBE-FW lets only the ranges through to KUBE-EXT: a pod outside them is dropped
    (its connect times out), one inside is served."""
    for ranges, ok in ((["198.51.100.0/24"], False), (["10.244.0.0/16"], True)):
        d = three_nodes({"target": "loadBalancerIP", "timeout": "20ms"},
                        service={"type": "LoadBalancer", "loadBalancerSourceRanges": ranges},
                        duration=0.5)
        d["manifests"][2]["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.20"}]}}
        calls = edge(run(d))
        calls = calls[calls["t_start"] < 0.4]
        reasons = set(calls["reason"].astype(str))
        assert reasons == ({""} if ok else {"firewall_dropped"}), ranges


# --- outside the cluster --------------------------------------------------------------


def external(**spec: Any) -> dict[str, Any]:
    return {"external": {"address": "payments.example.com:443",
                         "latency": constant(0.02), **spec}}


def test_external_call_leaves_through_the_callers_node_and_is_in_the_calls_frame():
    d = three_nodes({}, duration=1.0)
    d["workloads"]["web"]["calls"] = [external(serviceTime=exponential(2e-3))]
    result = npsim.run(npsim.scenario_from_dict(d))
    calls = edge(result.requests, "web>payments")
    assert set(calls["population"].astype(str)) == {"web>payments.example.com:443"}
    calls = calls[calls["t_start"] < 0.9]  # ended before the run did
    assert len(calls) > 100 and (calls["outcome"] == "completed").all()
    assert set(calls["entry_node"].astype(str)) == {"node-1"}  # leaves via its node
    assert calls["pod"].isna().all() and calls["new_connection"].all()
    assert np.allclose(calls["network"], 0.02)
    # the dependency sees the caller's node address (masqueraded on the way out)
    node_ip = result.nodes.set_index("node")["node_ip"].astype(str)["node-1"]
    assert set(calls["source_ip_seen"].astype(str)) == {node_ip}
    # latency = round trip + the dependency's service (no queue: no concurrency limit)
    assert np.allclose(calls["latency"], 0.02 + calls["service"])
    frame = result.calls
    assert frame["external"].all() and set(frame["service"]) == {"payments.example.com:443"}
    assert frame["callee_pod"].isna().all()
    graph = result.call_graph()
    vertex = ("external", "payments.example.com:443")
    assert graph.nodes[vertex]["kind"] == "external"
    assert graph.edges[("service", "web"), vertex]["per_second"] == pytest.approx(300, rel=0.2)
    one_tier = npsim.run(npsim.scenario_from_dict(three_nodes({}, duration=0.5)))
    assert "external_error" not in one_tier.requests["reason"].cat.categories


@pytest.mark.slow
def test_external_dependency_with_one_slot_is_an_mm1_queue_behind_its_round_trip():
    """100 calls/s to a dependency with concurrency 1 and exponential 5 ms service:
    M/M/1 (mu 200/s), W = 1/(mu - lambda) = 10 ms, plus the 20 ms round trip; end to
    end = own work (1 ms) + 30 ms."""
    d = two_tier(rate=100.0, duration=20.0, warmup=1.0, replications=8, seed=7,
                 call=None)
    d["workloads"]["web"]["calls"] = [external(serviceTime=exponential(5e-3),
                                               concurrency=1)]
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    done = req[~req["warmup"] & (req["outcome"] == "completed")]
    calls = edge(done, "web>payments").groupby("replication")["latency"].mean().to_numpy()
    assert_matches_theory(calls, 0.03, rel_tol=0.04, max_rel_half=0.08, what="call W")
    e2e = entry_rows(done).groupby("replication")["latency"].mean().to_numpy()
    assert_matches_theory(e2e, 0.031, rel_tol=0.04, max_rel_half=0.08, what="end to end")


def test_external_latency_adds_to_the_entry_request():
    """No queue at the dependency: each call takes the 20 ms round trip plus its
    exponential 4 ms service; the entry request adds its own 1 ms of work."""
    d = two_tier(rate=100.0, duration=5.0, warmup=0.5, replications=4, seed=11)
    d["workloads"]["web"]["calls"] = [external(serviceTime=exponential(4e-3))]
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    done = req[~req["warmup"] & (req["outcome"] == "completed")]
    calls = edge(done, "web>payments").groupby("replication")["latency"].mean().to_numpy()
    assert_matches_theory(calls, 0.024, rel_tol=0.05, max_rel_half=0.1, what="call")
    e2e = entry_rows(done).groupby("replication")["latency"].mean().to_numpy()
    assert_matches_theory(e2e, 0.025, rel_tol=0.05, max_rel_half=0.1, what="end to end")


def test_external_errors_propagate_per_on_failure_and_are_retried():
    """30% of the dependency's answers are errors: onFailure fail fails that share of
    the entry requests, continue fails none; two retries on external_error leave
    0.3^3 = 2.7% of the calls failed."""
    shares = {}
    for key, call in (("fail", {}), ("continue", {"onFailure": "continue"}),
                      ("retried", {"retries": {"attempts": 2, "retryOn": ["external_error"],
                                               "backoff": {"base": "1ms"}}})):
        d = two_tier(rate=200.0, duration=4.0, warmup=0.0, seed=3)
        d["workloads"]["web"]["calls"] = [{**external(failureProbability=0.3), **call}]
        req = npsim.run(npsim.scenario_from_dict(d)).requests
        entries = entry_rows(req).query("outcome != 'in_flight'")
        shares[key] = float((entries["reason"].astype(str) == "downstream_failed").mean())
        if key == "fail":
            failed = edge(req, "web>payments").query("outcome == 'failed'")
            assert set(failed["reason"].astype(str)) == {"external_error"}
    assert shares["fail"] == pytest.approx(0.3, abs=0.05)
    assert shares["continue"] == 0.0
    assert shares["retried"] == pytest.approx(0.027, abs=0.015)


def test_external_timeout_fails_the_call():
    d = two_tier(rate=100.0, duration=1.0, warmup=0.0)
    d["workloads"]["web"]["calls"] = [{**external(), "timeout": "5ms"}]
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    calls = edge(req, "web>payments")
    calls = calls[calls["t_start"] < 0.95]
    assert set(calls["reason"].astype(str)) == {"request_timeout"}
    assert np.allclose(calls["latency"], 0.005)


def test_calls_naming_one_dependency_share_its_slots():
    """Two edges to one dependency with concurrency 1: while one call is served, the
    other waits (their service spans never overlap)."""
    d = two_tier(rate=100.0, duration=2.0, warmup=0.0)
    dep = external(serviceTime=constant(3e-3), concurrency=1)
    d["workloads"]["web"]["calls"] = [{"parallel": [dep, dep]}]
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    calls = edge(req, "web>payments").dropna(subset=["service_start"]).sort_values(
        "service_start")
    assert set(calls["population"].astype(str)) == {"web>payments.example.com:443",
                                                    "web>payments.example.com:443#2"}
    starts = calls["service_start"].to_numpy()
    assert (np.diff(starts) >= 3e-3 - 1e-12).all()
    assert calls["queue_wait"].max() > 2e-3  # the second of each pair waited


def test_request_count_run_drains_external_and_nodeport_calls():
    """A request-count run counts the clients' requests only and ends once every call
    (in-cluster or outside) has ended."""
    d = three_nodes({"target": "nodePort"}, duration=None, requests=200)
    d["workloads"]["web"]["calls"].append(external(concurrency=2))
    result = npsim.run(npsim.scenario_from_dict(d))
    req = result.requests
    assert len(entry_rows(req)) == 200
    assert len(edge(req, "web>backend")) == 200 and len(edge(req, "web>payments")) == 200
    assert (req["outcome"] == "completed").all()
    assert result.calls.groupby("external").size().to_dict() == {False: 200, True: 200}
