"""externalTrafficPolicy / internalTrafficPolicy against kubernetes-semantics.md 1.4-1.6,
2.4, 8, 9, 10 and measurements.md 2 ("Simple analytic facts").

* Local behind an even balancer over N nodes: a pod on node k gets 1/(N p_k) of the
  traffic (p_k pods there), nothing crosses nodes and the pod sees the client address.
* Cluster: every pod gets 1/P; traffic entering node k crosses with probability
  1 - p_k/P; a remote pod sees the entry node's IP, a same-node pod its bridge (.1).
* Local on a node without endpoints: iptables/nftables DROP (the client times out), IPVS
  forwards unNATed to a remote pod and the reply is lost; no endpoints anywhere: REJECT,
  refused within one round trip.
* Short-circuits: pod traffic to a Local NodePort uses the Cluster endpoints without SNAT;
  the node's own traffic to itself is masqueraded and uses the Cluster endpoints.
* internalTrafficPolicy Local: ClusterIP traffic only to the sending node's endpoints,
  dropped when there are none; NodePort traffic is not affected.
"""

from __future__ import annotations

import pytest

import npsim

from .helpers import (
    SCENARIOS,
    assert_share,
    assert_shares,
    bridge_ip,
    completed,
    decided,
    deployment,
    measured,
    node_table,
    pods_on,
    population,
    scenario,
    service,
)

# --- Local vs Cluster behind an even balancer (scenarios/local-vs-cluster.yaml) -------


@pytest.fixture(scope="module")
def local_vs_cluster() -> npsim.Result:
    s = npsim.load_scenario(SCENARIOS / "local-vs-cluster.yaml")
    s.run.duration = 25  # 20 s measured, ~6000 requests per population
    return npsim.run(s)


def test_local_pod_share_is_one_over_n_times_pods_on_its_node(local_vs_cluster):
    r = local_vs_cluster
    where = pods_on(r)
    per_node = r.pods.groupby("node")["pod"].nunique()
    n_nodes = len(node_table(r))
    expected = {pod: 1 / (n_nodes * per_node[node]) for pod, node in where.items()}
    assert sorted(expected.values()) == [0.25, 0.25, 0.5]  # the AKS example (2+1 pods)
    served = completed(measured(r, "to-local"))
    assert len(served) == len(decided(measured(r, "to-local"))), "Local failed somewhere"
    assert_shares(served, expected, what="ETP Local")


def test_local_never_crosses_nodes_and_pod_sees_client(local_vs_cluster):
    served = completed(measured(local_vs_cluster, "to-local"))
    assert not served["cross_node"].any()
    assert (served["pod_node"].astype(str) == served["entry_node"].astype(str)).all()
    assert (served["source_ip_seen"].astype(str) == served["client_ip"].astype(str)).all()
    assert (served["hop"] == 0).all()


def test_cluster_pod_share_is_one_over_p(local_vs_cluster):
    served = completed(measured(local_vs_cluster, "to-cluster"))
    pods = list(pods_on(local_vs_cluster))
    assert_shares(served, {p: 1 / len(pods) for p in pods}, what="ETP Cluster")


def test_cluster_cross_node_fraction_is_one_minus_pk_over_p(local_vs_cluster):
    r = local_vs_cluster
    served = completed(measured(r, "to-cluster"))
    nodes = node_table(r)
    total = nodes["pods"].sum()
    for node, part in served.groupby("entry_node", observed=True):
        p = 1 - nodes.loc[node, "pods"] / total  # 1/3 from node-1, 2/3 from node-2
        assert_share(part["cross_node"].mean(), p, len(part), f"cross-node from {node}")


def test_cluster_pod_sees_entry_node_ip_or_its_bridge(local_vs_cluster):
    r = local_vs_cluster
    nodes = node_table(r)
    served = completed(measured(r, "to-cluster"))
    entry = served["entry_node"].astype(str)
    seen = served["source_ip_seen"].astype(str)
    remote = served["cross_node"].to_numpy()
    node_ip = entry.map(nodes["node_ip"])
    bridge = entry.map(lambda n: bridge_ip(nodes.loc[n, "pod_cidr"]))
    assert remote.any() and (~remote).any()
    assert (seen[remote] == node_ip[remote]).all()
    assert (seen[~remote] == bridge[~remote]).all()
    assert set(bridge) == {"10.244.0.1", "10.244.1.1"}
    assert (seen != served["client_ip"].astype(str)).all()


# --- Local with a node that has no pod (scenarios/local-node-without-pod.yaml) --------

CONNECT_TIMEOUT = 2.0
RTT = 0.001


def _without_pod(mode: str) -> npsim.Result:
    s = npsim.load_scenario(SCENARIOS / "local-node-without-pod.yaml")
    s.run.duration = 20
    s.cluster.proxy_mode = mode
    s.clients[0].rtt = {"dist": "constant", "value": RTT}
    assert s.clients[0].connect_timeout == CONNECT_TIMEOUT
    return npsim.run(s)


@pytest.fixture(scope="module", params=["iptables", "nftables", "ipvs"])
def without_pod(request) -> tuple[str, npsim.Result]:
    return request.param, _without_pod(request.param)


def test_local_node_without_pod_fails_every_connection_there(without_pod):
    mode, r = without_pod
    req = measured(r)
    # every request sent early enough to have failed (timeout 2 s) has its fate known
    settled = req[(req["t_start"] < r.end_time - CONNECT_TIMEOUT - 0.1).to_numpy()]
    assert (settled["outcome"] != "in_flight").all()
    at3 = settled[(settled["entry_node"] == "node-3").to_numpy()]
    others = settled[(settled["entry_node"] != "node-3").to_numpy()]
    assert (at3["outcome"] == "failed").all()
    assert (others["outcome"] == "completed").all()
    # an even balancer over 3 nodes: a third of all connections land on node-3
    assert_share(len(at3) / len(settled), 1 / 3, len(settled), "entering node-3")
    reason = "reply_lost" if mode == "ipvs" else "dropped_no_local_endpoint"
    assert set(at3["reason"].astype(str)) == {reason}


def test_local_node_without_pod_is_a_timeout_not_a_refusal(without_pod):
    mode, r = without_pod
    failed = measured(r)[(measured(r)["outcome"] == "failed").to_numpy()]
    assert len(failed) > 1000
    waited = (failed["t_end"] - failed["t_start"]).to_numpy()
    assert waited == pytest.approx(CONNECT_TIMEOUT, abs=1e-9)
    assert (waited > 100 * RTT).all()
    if mode == "ipvs":  # forwarded to a remote pod without SNAT; the reply goes astray
        assert failed["pod"].notna().all()
        assert (failed["pod_node"].astype(str) != "node-3").all()
    else:  # dropped before any DNAT
        assert failed["pod"].isna().all()


def test_local_node_without_pod_served_traffic_stays_local(without_pod):
    _, r = without_pod
    served = completed(measured(r))
    assert not served["cross_node"].any()
    assert (served["source_ip_seen"].astype(str) == served["client_ip"].astype(str)).all()
    assert_shares(served, {"web-0": 0.25, "web-1": 0.25, "web-2": 0.5}, what="served")


@pytest.fixture(scope="module")
def ipvs_without_pod() -> npsim.Result:
    return _without_pod("ipvs")


def test_ipvs_reply_lost_is_not_counted_as_served(ipvs_without_pod):
    r = ipvs_without_pod
    assert r.metric("cross_node_fraction") == 0.0
    assert r.metric("source_ip_intact_fraction") == 1.0


def test_ipvs_reply_lost_pod_sees_client_address(ipvs_without_pod):
    req = measured(ipvs_without_pod)
    lost = req[(req["reason"] == "reply_lost").to_numpy()]
    assert len(lost) > 0
    assert (lost["source_ip_seen"].astype(str) == lost["client_ip"].astype(str)).all()


# --- no endpoints anywhere: REJECT --------------------------------------------------


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
@pytest.mark.parametrize("etp", ["Local", "Cluster"])
def test_no_endpoints_anywhere_is_refused_within_one_rtt(mode, etp):
    s = scenario(
        nodes=["node-1", "node-2"], mode=mode,
        manifests=[service(etp=etp, app="nothing"), deployment("web", replicas=2)],
        clients=[population(rate="200/s", rtt={"dist": "lognormal", "mean": "1ms", "cv": 0.5},
                            connectTimeout="2s")],
        duration="5s")
    req = decided(measured(npsim.run(s)))  # the last refusals may land after the end
    assert len(req) > 500
    assert (req["outcome"] == "failed").all()
    assert set(req["reason"].astype(str)) == {"no_endpoints"}
    assert req["pod"].isna().all()
    latency = req["latency"].to_numpy()
    assert latency == pytest.approx(req["network"].to_numpy(), abs=1e-12)  # one round trip
    assert latency.max() < 0.1  # nowhere near the 2 s connect timeout
    assert latency.mean() == pytest.approx(0.001, rel=0.1)


def test_scaled_to_zero_is_refused_after_every_node_synced():
    s = scenario(
        nodes=["node-1", "node-2"],
        manifests=[service(etp="Local"), deployment("web", replicas=2)],
        clients=[population(rate="200/s", rtt="1ms", connectTimeout="2s")],
        events=[{"at": "3s", "scale": {"deployment": "web", "replicas": 0}}],
        kube_proxy={"propagation": {"dist": "constant", "value": "100ms"},
                    "syncBase": "10ms", "syncPerRule": "0s"},
        duration="8s")
    req = measured(npsim.run(s))
    before = req[(req["t_start"] < 3).to_numpy()]
    # at 3.11 s both nodes apply the pods' terminating state (still their fallback while
    # no endpoint is ready, KEP-1669); the pods' removal one minSyncPeriod later
    after = decided(req[(req["t_start"] > 4.2).to_numpy()])
    assert (before["outcome"] == "completed").all()
    assert (after["outcome"] == "failed").all()
    assert set(after["reason"].astype(str)) == {"no_endpoints"}
    assert after["latency"].to_numpy() == pytest.approx(0.001, abs=1e-12)


def test_zero_replicas_run_reports_no_endpoints():
    """Deployments with 0 replicas: every connection refused (this used to crash in
    summarise(); fixed in 13e9647)."""
    s = scenario(nodes=["node-1"], manifests=[service(), deployment("web", replicas=0)],
                 clients=[population(rate="100/s", rtt="1ms")], duration="2s")
    r = npsim.run(s)
    req = decided(measured(r))
    assert len(req) > 100
    assert set(req["reason"].astype(str)) == {"no_endpoints"}
    assert r.metric("requests_completed") == 0


# --- short-circuits: pods and the node itself to a Local NodePort ---------------------


@pytest.fixture(scope="module")
def short_circuits() -> npsim.Result:
    """Pods 2+1 on node-1/node-2, none on node-3; ETP Local."""
    s = scenario(
        nodes=["node-1", "node-2", "node-3"],
        manifests=[service(etp="Local"), deployment("web", replicas=3)],
        placement={"node-1": 2, "node-2": 1},
        clients=[
            population("pod-on-3", rate="300/s", source={"pod": "node-3"}, sourceIPs=5,
                       entry={"node": "node-3"}, connectTimeout="2s"),
            population("host-3", rate="300/s", source={"host": "node-3"},
                       entry={"node": "node-3"}, connectTimeout="2s"),
            population("host-1", rate="300/s", source={"host": "node-1"},
                       entry={"node": "node-1"}, connectTimeout="2s"),
            population("outside-to-3", rate="50/s", entry={"node": "node-3"},
                       connectTimeout="2s"),
        ],
        duration="12s")
    return npsim.run(s)


def test_pod_to_local_nodeport_without_local_endpoint_uses_cluster_endpoints(short_circuits):
    r = short_circuits
    req = decided(measured(r, "pod-on-3"))
    assert (req["outcome"] == "completed").all()
    assert_shares(req, {"web-0": 1 / 3, "web-1": 1 / 3, "web-2": 1 / 3}, what="pod short-circuit")
    # no masquerade: the serving pod sees the client pod's own address (node-3's pod CIDR)
    assert (req["source_ip_seen"].astype(str) == req["client_ip"].astype(str)).all()
    assert req["client_ip"].astype(str).str.startswith("10.244.2.").all()


def test_host_to_own_local_nodeport_is_served_and_masqueraded(short_circuits):
    r = short_circuits
    nodes = node_table(r)
    req = decided(measured(r, "host-3"))
    assert (req["outcome"] == "completed").all()
    assert_shares(req, {"web-0": 1 / 3, "web-1": 1 / 3, "web-2": 1 / 3}, what="host short-circuit")
    assert (req["source_ip_seen"].astype(str) == nodes.loc["node-3", "node_ip"]).all()


def test_host_short_circuit_ignores_local_endpoints(short_circuits):
    """node-1 has local endpoints, yet its own traffic takes the Cluster chain: the pod on
    node-2 gets a third, seen from node-1's IP; same-node pods see node-1's bridge."""
    r = short_circuits
    nodes = node_table(r)
    req = decided(measured(r, "host-1"))
    assert (req["outcome"] == "completed").all()
    assert_shares(req, {"web-0": 1 / 3, "web-1": 1 / 3, "web-2": 1 / 3}, what="host-1")
    remote = req["cross_node"].to_numpy()
    seen = req["source_ip_seen"].astype(str)
    assert (seen[remote] == nodes.loc["node-1", "node_ip"]).all()
    assert (seen[~remote] == bridge_ip(nodes.loc["node-1", "pod_cidr"])).all()


def test_outside_traffic_to_the_same_node_is_still_dropped(short_circuits):
    req = decided(measured(short_circuits, "outside-to-3"))
    assert len(req) > 200
    assert (req["outcome"] == "failed").all()
    assert set(req["reason"].astype(str)) == {"dropped_no_local_endpoint"}


def test_ipvs_pod_to_local_nodeport_with_local_endpoints_stays_local():
    s = scenario(
        nodes=["node-1", "node-2"], mode="ipvs",
        manifests=[service(etp="Local"), deployment("web", replicas=3)],
        placement={"node-1": 2, "node-2": 1},
        clients=[population("pod-on-1", rate="300/s", source={"pod": "node-1"}, sourceIPs=5,
                            entry={"node": "node-1"})],
        duration="5s")
    req = completed(measured(npsim.run(s)))
    assert set(req["pod"].astype(str)) == {"web-0", "web-1"}


# --- internalTrafficPolicy Local (ClusterIP traffic from pods) ------------------------


@pytest.fixture(scope="module")
def internal_local() -> npsim.Result:
    s = scenario(
        nodes=["node-1", "node-2", "node-3"],
        manifests=[service(itp="Local"), deployment("web", replicas=3)],
        placement={"node-1": 2, "node-2": 1},
        clients=[
            population("pods-3", rate="200/s", source={"pod": "node-3"}, target="clusterIP",
                       sourceIPs=5, rtt="1ms", connectTimeout="3s"),
            population("pods-1", rate="300/s", source={"pod": "node-1"}, target="clusterIP",
                       sourceIPs=5),
            population("outside", rate="300/s", entry="random"),
        ],
        duration="12s")
    return npsim.run(s)


def test_internal_local_without_local_endpoint_drops(internal_local):
    req = decided(measured(internal_local, "pods-3"))
    assert len(req) > 1000
    assert (req["outcome"] == "failed").all()
    assert set(req["reason"].astype(str)) == {"dropped_no_local_endpoint"}
    assert (req["t_end"] - req["t_start"]).to_numpy() == pytest.approx(3.0, abs=1e-9)


def test_internal_local_with_local_endpoints_uses_only_them(internal_local):
    req = decided(measured(internal_local, "pods-1"))
    assert (req["outcome"] == "completed").all()
    assert_shares(req, {"web-0": 0.5, "web-1": 0.5}, what="ITP Local on node-1")
    assert not req["cross_node"].any()
    assert (req["source_ip_seen"].astype(str) == req["client_ip"].astype(str)).all()


def test_internal_local_does_not_affect_nodeport_traffic(internal_local):
    """ETP is Cluster: outside traffic entering node-3 (no endpoints) is served."""
    req = decided(measured(internal_local, "outside"))
    assert (req["outcome"] == "completed").all()
    assert_shares(req, {"web-0": 1 / 3, "web-1": 1 / 3, "web-2": 1 / 3}, what="NodePort")
    at3 = req[(req["entry_node"] == "node-3").to_numpy()]
    assert len(at3) > 300 and at3["cross_node"].all()


def test_internal_cluster_from_pods_uses_every_endpoint():
    s = scenario(
        nodes=["node-1", "node-2", "node-3"],
        manifests=[service(itp="Cluster"), deployment("web", replicas=3)],
        placement={"node-1": 2, "node-2": 1},
        clients=[population("pods-3", rate="300/s", source={"pod": "node-3"},
                            target="clusterIP", sourceIPs=5)],
        duration="8s")
    req = decided(measured(npsim.run(s)))
    assert (req["outcome"] == "completed").all()
    assert_shares(req, {"web-0": 1 / 3, "web-1": 1 / 3, "web-2": 1 / 3}, what="ITP Cluster")
    assert (req["source_ip_seen"].astype(str) == req["client_ip"].astype(str)).all()
