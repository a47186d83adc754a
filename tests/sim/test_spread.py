"""How kube-proxy (iptables mode, externalTrafficPolicy Cluster) spreads traffic.

The iptables cascade gives every endpoint exactly 1/n of the
new connections; the fraction of traffic entering node k that takes a node-to-node hop
is 1 - p_k/P; keep-alive balances connections, not requests (section 1.5); a remote pod
sees the entry node's IP, a same-node pod the node's pod-bridge address (kube-proxy
MASQUERADE).
"""

from __future__ import annotations

import ipaddress
import math

import numpy as np
import pytest
from conftest import build, client, constant, exponential, scenario_dict
from scipy import stats

import npsim

P_MIN = 1e-3  # chi-square tests: reject uniformity only below this p-value


def _binomial_ok(hits: int, n: int, p: float, z: float = 4.0) -> bool:
    return abs(hits / n - p) <= z * math.sqrt(p * (1 - p) / n)


# --- (1) uniform spread over endpoints ----------------------------------------------------


@pytest.fixture(scope="module")
def five_pods():
    return npsim.run(build(
        nodes=3, replicas=5, workers=8, service_time=exponential(1e-3),
        clients=[client(rate=5000.0, entry="random")], duration=3.0, seed=101,
    ))


def test_new_connections_are_uniform_over_endpoints(five_pods):
    frame = five_pods.requests
    new = frame[frame["new_connection"]]
    assert len(new) == len(frame)  # requestsPerConnection 1: one connection per request
    counts = new["pod"].value_counts().reindex([f"web-{i}" for i in range(5)]).to_numpy()
    assert counts.sum() > 10_000
    result = stats.chisquare(counts)
    assert result.pvalue > P_MIN, f"per-pod new connections {counts}: p={result.pvalue:.2g}"


def test_each_nodes_proxy_spreads_uniformly(five_pods):
    """Every node's kube-proxy picks on its own, each uniformly over all 5 endpoints
    (Cluster policy: also the pods on other nodes)."""
    frame = five_pods.requests
    for node, part in frame.groupby("entry_node", observed=True):
        counts = part["pod"].value_counts().reindex([f"web-{i}" for i in range(5)]).to_numpy()
        assert counts.min() > 0
        p = stats.chisquare(counts).pvalue
        assert p > P_MIN, f"node {node}: {counts}, p={p:.2g}"


def test_random_entry_is_uniform_over_nodes(five_pods):
    counts = five_pods.requests["entry_node"].value_counts().sort_index().to_numpy()
    assert len(counts) == 3
    assert stats.chisquare(counts).pvalue > P_MIN


def test_pod_frame_counts_match_request_frame(five_pods):
    pods = five_pods.pods.set_index("pod")
    frame = five_pods.requests
    by_pod = frame["pod"].value_counts()
    for pod, row in pods.iterrows():
        assert row["requests"] == by_pod[pod]
        assert row["connections"] == by_pod[pod]
    assert pods["share"].sum() == pytest.approx(1.0)
    # spread placement deals 5 pods to 3 nodes in turn: 2/2/1
    assert pods["node"].value_counts().sort_index().tolist() == [2, 2, 1]


# --- (2) cross-node fraction 1 - p_k / P -------------------------------------------------


@pytest.fixture(scope="module")
def placed():
    """Pods 3 on node-1, 1 on node-2; one population enters node-1, one node-2."""
    return npsim.run(build(
        nodes=2, replicas=4, workers=4, placement={"node-1": 3, "node-2": 1},
        service_time=exponential(1e-3),
        clients=[client("to-node-1", rate=2000.0, entry={"node": "node-1"}),
                 client("to-node-2", rate=2000.0, entry={"node": "node-2"})],
        duration=3.0, seed=102,
    ))


@pytest.mark.parametrize(("population", "node", "expected"),
                         [("to-node-1", "node-1", 1 - 3 / 4), ("to-node-2", "node-2", 1 - 1 / 4)])
def test_cross_node_fraction_is_one_minus_local_share(placed, population, node, expected):
    frame = placed.requests
    part = frame[frame["population"] == population]
    assert (part["entry_node"] == node).all()
    n = len(part)
    crossed = int(part["cross_node"].sum())
    assert n > 4000
    assert _binomial_ok(crossed, n, expected), f"{crossed}/{n} crossed, expected {expected}"
    # cross_node means exactly: the pod lives on another node than the one entered
    assert (part["cross_node"] == (part["pod_node"].astype(str) != node)).all()
    nodes = placed.nodes.set_index("node")
    assert nodes.loc[node, "cross_node_fraction"] == pytest.approx(crossed / n)
    assert nodes.loc[node, "received"] == n
    assert nodes.loc[node, "pods"] == {"node-1": 3, "node-2": 1}[node]


def test_placement_puts_pods_where_asked(placed):
    pods = placed.pods
    assert pods.groupby("node").size().to_dict() == {"node-1": 3, "node-2": 1}
    # and the single pod on node-2 takes 1/4 of all traffic (ETP=Cluster: 1/P per pod)
    frame = placed.requests
    single = int((frame["pod_node"] == "node-2").sum())
    assert _binomial_ok(single, len(frame), 0.25)


def test_cross_node_hop_adds_its_latency():
    """With a constant 300 us same-zone hop and no queueing, a crossed request takes
    exactly rtt + hop longer than its service; a local one rtt (+ 0 same-node)."""
    result = npsim.run(build(
        nodes=2, replicas=2, workers=64, placement={"node-1": 1, "node-2": 1},
        service_time=constant(1e-3),
        clients=[client(rate=500.0, entry={"node": "node-1"}, rtt=constant(2e-4))],
        network={"sameNode": {"dist": "constant", "value": 0}, "sameZone": constant(3e-4),
                 "crossZone": constant(9e-3)},
        duration=2.0, seed=103,
    ))
    frame = result.requests
    done = frame[frame["outcome"] == "completed"]
    expected = 1e-3 + 2e-4 + np.where(done["cross_node"], 3e-4, 0.0)
    assert np.allclose(done["latency"], expected, rtol=0, atol=1e-12)
    assert np.allclose(done["network"], expected - 1e-3, rtol=0, atol=1e-12)
    assert 0 < done["cross_node"].mean() < 1


def test_a_network_link_sets_the_hop_latency_between_its_two_nodes_both_ways():
    """``network.links`` overrides the zone defaults for its pair, in both directions; the
    other pairs keep the same-zone latency."""
    result = npsim.run(build(
        nodes=3, replicas=3, workers=64, service_time=constant(1e-3),
        clients=[client(rate=600.0, entry="random", rtt=constant(0.0))],
        network={"sameNode": {"dist": "constant", "value": 0}, "sameZone": constant(3e-4),
                 "crossZone": constant(9e-3),
                 "links": [{"from": "node-2", "to": "node-1", "latency": constant(5e-3)}]},
        duration=2.0, seed=107,
    ))
    done = result.requests[result.requests["outcome"] == "completed"]
    pair = {frozenset((a, b)) for a, b in zip(done["entry_node"], done["pod_node"],
                                              strict=True)}
    linked = np.array([{a, b} == {"node-1", "node-2"}
                       for a, b in zip(done["entry_node"], done["pod_node"], strict=True)])
    hop = np.where(linked, 5e-3, np.where(done["cross_node"], 3e-4, 0.0))
    assert np.allclose(done["hop"], hop, rtol=0, atol=1e-12)
    both_ways = done[linked]
    assert set(zip(both_ways["entry_node"], both_ways["pod_node"], strict=True)) == {
        ("node-1", "node-2"), ("node-2", "node-1")}
    assert frozenset(("node-1", "node-3")) in pair


# --- (3) keep-alive: balancing per connection, not per request -----------------------------

K = 10
N_PODS = 5


def _keepalive(k: int, seed: int, replications: int = 1, rate: float = 3000.0):
    return npsim.run(build(
        nodes=2, replicas=N_PODS, workers=8, service_time=exponential(5e-4),
        clients=[client(rate=rate, entry="random", requests_per_connection=k,
                        source_ips=50)],
        duration=1.0, seed=seed, replications=replications,
    ))


@pytest.fixture(scope="module")
def keepalive():
    return _keepalive(K, seed=104)


def test_a_connection_keeps_its_pod_entry_node_and_client(keepalive):
    frame = keepalive.requests
    per_conn = frame.groupby("connection").agg(
        pods=("pod", "nunique"), entries=("entry_node", "nunique"),
        clients=("client_ip", "nunique"), n=("request", "size"),
        opened=("new_connection", "sum"))
    assert (per_conn["pods"] == 1).all()
    assert (per_conn["entries"] == 1).all()
    assert (per_conn["clients"] == 1).all()
    assert (per_conn["opened"] == 1).all()
    assert per_conn["n"].max() == K
    # the opening request is the first one on its connection
    first = frame.groupby("connection")["t_start"].idxmin()
    assert frame.loc[first, "new_connection"].all()


def test_connection_count_is_requests_over_k(keepalive):
    """Each client IP opens a connection, uses it for k requests, opens the next:
    exactly sum over clients of ceil(requests / k) connections."""
    frame = keepalive.requests
    per_client = frame.groupby("client_ip", observed=True).size()
    expected = int(np.ceil(per_client / K).sum())
    n_conns = int(frame["new_connection"].sum())
    assert n_conns == expected == frame["connection"].nunique()
    assert len(frame) / K <= n_conns <= len(frame) / K + per_client.size


def test_connections_are_uniform_over_pods(keepalive):
    frame = keepalive.requests
    new = frame[frame["new_connection"]]
    counts = new["pod"].value_counts().reindex([f"web-{i}" for i in range(N_PODS)]).to_numpy()
    assert stats.chisquare(counts).pvalue > P_MIN


def _dispersion(result) -> tuple[float, int]:
    """Sum over replications of the chi-square statistic of per-pod request counts, and
    its degrees of freedom: about 1 per df for independent per-request picks."""
    total, df = 0.0, 0
    for _rep, frame in result.requests.groupby("replication"):
        counts = frame["pod"].value_counts().reindex(
            [f"web-{i}" for i in range(N_PODS)]).to_numpy()
        total += stats.chisquare(counts).statistic
        df += N_PODS - 1
    return total, df


@pytest.mark.slow
def test_keepalive_makes_per_request_spread_lumpier():
    """Per-request counts per pod: with k=1 they are multinomial (dispersion ~1); with
    k=10 whole connections move together, so the variance is about k times larger."""
    one, df = _dispersion(_keepalive(1, seed=105, replications=10, rate=2000.0))
    ten, _ = _dispersion(_keepalive(K, seed=106, replications=10, rate=2000.0))
    assert stats.chi2.sf(one, df) > P_MIN, f"k=1 dispersion {one / df:.2f} per df"
    assert ten / df > 4.0, f"k=10 dispersion {ten / df:.2f} per df (expected ~{K})"
    assert ten / one > 3.0


# --- (4) the source IP a pod sees ------------------------------------------------------------


def test_source_ip_seen_is_entry_node_ip_when_crossing_else_bridge_ip():
    data = scenario_dict(
        nodes=3, replicas=4, workers=8, placement={"node-1": 2, "node-2": 1, "node-3": 1},
        service_time=exponential(1e-3), clients=[client(rate=2000.0, entry="random")],
        duration=1.0, seed=107,
    )
    addresses = ["192.168.7.10", "192.168.7.11", "192.168.7.12"]
    cidrs = ["10.20.0.0/24", "10.20.1.0/24", "10.20.2.0/25"]
    for node, address, cidr in zip(data["cluster"]["nodes"], addresses, cidrs, strict=True):
        node["address"] = address
        node["podCIDR"] = cidr
    result = npsim.run(npsim.scenario_from_dict(data))
    frame = result.requests
    node_ip = dict(zip(["node-1", "node-2", "node-3"], addresses, strict=True))
    bridge = {"node-1": "10.20.0.1", "node-2": "10.20.1.1", "node-3": "10.20.2.1"}
    entry = frame["entry_node"].astype(str)
    expected = np.where(frame["cross_node"], entry.map(node_ip), entry.map(bridge))
    assert (frame["source_ip_seen"].astype(str).to_numpy() == expected).all()
    assert frame["cross_node"].any() and not frame["cross_node"].all()
    # a same-node pod sees its own node's bridge, which is in its own pod CIDR
    local = frame[~frame["cross_node"]]
    assert (local["pod_node"].astype(str) == local["entry_node"].astype(str)).all()
    pods = result.pods.set_index("pod")
    for pod, seen in local.groupby("pod", observed=True)["source_ip_seen"].first().items():
        cidr = ipaddress.ip_network(cidrs[["node-1", "node-2", "node-3"].index(
            pods.loc[pod, "node"])])
        assert ipaddress.ip_address(seen) in cidr
        assert ipaddress.ip_address(pods.loc[pod, "pod_ip"]) in cidr
    # the client's own address is never what the pod sees (SNAT)
    assert not set(frame["client_ip"].astype(str)) & set(frame["source_ip_seen"].astype(str))
