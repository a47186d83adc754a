"""sessionAffinity: ClientIP against kube-proxy (iptables recent lists, IPVS persistence,
nftables sets) and the API defaults.

* timeoutSeconds must satisfy 0 < t <= 86400 (the API server's message says "less than
  86400" and still accepts 86400); unset -> 10800.
* Per node and per Service port, keyed on the source address the node sees: a client is
  re-pinned only when its entry is older than the timeout (measured from its last new
  connection), when it was evicted from a full iptables ``recent`` list (100 addresses,
  least recently seen out; nftables sets have no cap), or when its endpoint is gone.
* Consequences: many users behind one NAT or SNAT-ing balancer address share one pin per
  node; a client reaching two nodes may be pinned to two pods.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import npsim
from npsim.proxy.affinity import RECENT_LIST_SIZE, AffinityTable
from npsim.results.skew import stickiness

from .helpers import (
    SCENARIOS,
    Z,
    assert_share,
    completed,
    decided,
    deployment,
    measured,
    population,
    scenario,
    service,
)

TIMEOUT_PATH = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"


def _affinity_scenario(**service_kwargs) -> npsim.Scenario:
    return scenario(nodes=["node-1"],
                    manifests=[service(affinity="ClientIP", **service_kwargs),
                               deployment("web", replicas=2)],
                    clients=[population(rate="10/s")], duration="1s")


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, 86401])
def test_timeout_out_of_range_is_rejected_with_the_api_server_message(timeout):
    with pytest.raises(npsim.ScenarioError) as info:
        _affinity_scenario(timeout=timeout)
    problems = info.value.problems
    assert len(problems) == 1
    assert problems[0].message == (
        f"Invalid value: {timeout}: must be greater than 0 and less than 86400")
    assert problems[0].path.endswith(TIMEOUT_PATH)


def test_timeout_zero_message_is_exactly_the_reference_text():
    with pytest.raises(npsim.ScenarioError) as info:
        _affinity_scenario(timeout=0)
    assert info.value.problems[0].message == (
        "Invalid value: 0: must be greater than 0 and less than 86400")


@pytest.mark.parametrize("timeout", [1, 600, 86400])
def test_timeout_in_range_is_accepted(timeout):
    s = _affinity_scenario(timeout=timeout)
    assert s.services["web"].affinity_timeout == timeout
    assert s.services["web"].session_affinity == "ClientIP"


@pytest.mark.parametrize("config", [None, {}, {"clientIP": {}}])
def test_timeout_defaults_to_10800(config):
    s = _affinity_scenario(config=config)
    assert s.services["web"].affinity_timeout == 10800


def test_config_without_client_ip_affinity_is_accepted_and_ignored():
    s = scenario(nodes=["node-1"],
                 manifests=[service(affinity="None", timeout=600), deployment("web", 2)],
                 clients=[population(rate="10/s")], duration="1s")
    assert s.services["web"].session_affinity == "None"


# --- stickiness within and after the timeout -----------------------------------------


def _sticky(*, users: int = 60, think: object = "200ms", timeout: int | None = None,
            mode: str = "iptables", replicas: int = 4, nodes: int = 1, entry: object = None,
            affinity: str | None = "ClientIP", duration: str = "20s", seed: int = 1,
            **client) -> npsim.Result:
    names = [f"node-{i + 1}" for i in range(nodes)]
    s = scenario(
        nodes=names, mode=mode, seed=seed,
        manifests=[service(affinity=affinity, timeout=timeout),
                   deployment("web", replicas=replicas)],
        clients=[population(users=users, think=think, entry=entry or {"node": "node-1"},
                            **client)],
        duration=duration)
    return npsim.run(s)


def _connections(frame: pd.DataFrame) -> pd.DataFrame:
    conns = frame[(frame["new_connection"] & frame["pod"].notna()).to_numpy()]
    return conns.sort_values(["client_ip", "t_start"])


def _repeat_fraction(frame: pd.DataFrame) -> tuple[float, int]:
    """Share of a client's connections that went to the same pod as its previous one."""
    conns = _connections(frame)
    prev = conns.groupby("client_ip", observed=True)["pod"].shift()
    has_prev = prev.notna().to_numpy()
    same = (prev == conns["pod"]).to_numpy()[has_prev]
    return float(same.mean()), int(has_prev.sum())


def _random_stickiness(frame: pd.DataFrame, n_pods: int, draws: int = 4000) -> float:
    """Expected :func:`stickiness` if every connection picked a pod uniformly at random,
    given each client's number of connections (seeded Monte Carlo)."""
    rng = np.random.default_rng(12345)
    per_client = _connections(frame).groupby("client_ip", observed=True).size()
    expected = {}
    for k in sorted(set(per_client[per_client >= 2])):
        picks = rng.integers(0, n_pods, size=(draws, k))
        top = np.stack([(picks == j).sum(axis=1) for j in range(n_pods)]).max(axis=0)
        expected[k] = float(top.mean() / k)
    return float(np.mean([expected[k] for k in per_client[per_client >= 2]]))


def test_clients_stay_pinned_within_the_timeout():
    r = _sticky()  # default timeout 10800 s, each user reconnects every ~0.2 s
    req = completed(measured(r))
    assert r.scenario.services["web"].affinity_timeout == 10800
    assert req["client_ip"].nunique() == 60
    assert r.metric("client_stickiness") == 1.0
    assert (req.groupby("client_ip", observed=True)["pod"].nunique() == 1).all()
    # the 60 pins themselves are random: every pod has clients
    assert req["pod"].nunique() == 4


def test_without_affinity_the_same_clients_are_not_sticky():
    r = _sticky(affinity=None)
    req = measured(r)
    rate, n = _repeat_fraction(req)
    assert_share(rate, 1 / 4, n, "repeat without affinity")
    assert r.metric("client_stickiness") == pytest.approx(_random_stickiness(req, 4), abs=0.03)


@pytest.mark.parametrize("mode", ["iptables", "nftables", "ipvs"])
def test_after_the_timeout_clients_are_balanced_afresh(mode):
    """timeoutSeconds 1 and 1.5 s between a response and the next connection: every
    connection finds its entry expired, so it repeats its previous pod with
    probability 1/n and stickiness is what random choice gives."""
    r = _sticky(timeout=1, think="1500ms", mode=mode, users=100, duration="60s")
    req = measured(r)
    if mode == "ipvs":  # rr cycles through pods: the repeat rate is not 1/n, only < 1
        assert r.metric("client_stickiness") < 0.6
        return
    rate, n = _repeat_fraction(req)
    assert n > 3000
    assert_share(rate, 1 / 4, n, f"{mode}: repeat after timeout")
    assert r.metric("client_stickiness") == pytest.approx(_random_stickiness(req, 4), abs=0.03)


def test_timer_restarts_on_each_new_connection():
    """Gaps of 0.7 s < timeout 1 s keep a client pinned for the whole run (~28 s), far
    longer than the timeout: the entry is refreshed by every new connection."""
    r = _sticky(timeout=1, think="700ms", users=30, duration="30s")
    assert r.metric("client_stickiness") == 1.0


# --- iptables recent-list cap (scenarios/recent-list-overflow.yaml) -------------------


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_recent_list_overflow_breaks_iptables_affinity_only(mode):
    """500 clients over 2 endpoints: ~250 per list > 100 in iptables; nftables sets have
    no cap, so the same clients stay pinned."""
    s = npsim.load_scenario(SCENARIOS / "recent-list-overflow.yaml")
    s.run.duration = 40
    s.cluster.proxy_mode = mode
    r = npsim.run(s)
    sticky = r.metric("client_stickiness")
    if mode == "iptables":
        rate, n = _repeat_fraction(measured(r))
        assert sticky < 0.85
        assert rate < 0.9
        # ... but not forgotten entirely: survivors and re-pins to the same pod
        assert rate > 0.5 + Z * math.sqrt(0.25 / n)
    else:
        assert sticky == 1.0


def test_under_100_clients_per_endpoint_iptables_keeps_affinity():
    r = _sticky(users=120, replicas=2, think={"dist": "exponential", "mean": "500ms"})
    assert r.metric("client_stickiness") == 1.0


class _Endpoints:
    """Stand-in for an EndpointTable: keys, index_of, and a scripted pick()."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.index_of = {k: i for i, k in enumerate(keys)}
        self.next = 0
        self.picks = 0

    def pick(self, client_ip: int, src_port: int, now: float) -> int:
        self.picks += 1
        return self.next


def test_recent_list_evicts_the_least_recently_seen_client():
    assert RECENT_LIST_SIZE == 100
    table = AffinityTable(timeout=1000.0, cap=100)
    eps = _Endpoints(["10.0.0.2:80", "10.0.0.3:80"])
    for client in range(1, 101):  # clients 1..100 pinned to endpoint 0
        assert table.pick(eps, client, 40000, float(client)) == 0
    assert eps.picks == 100 and table.evictions == 0
    table.pick(eps, 1, 40000, 101.0)  # client 1 seen again: now the most recent
    assert eps.picks == 100  # served from its pin
    eps.next = 1
    for client in range(1000, 1050):  # 50 clients on endpoint 1 do not touch list 0
        table.pick(eps, client, 40000, 102.0)
    assert table.evictions == 0
    eps.next = 0
    table.pick(eps, 101, 40000, 103.0)  # the 101st distinct client on list 0
    assert table.evictions == 1
    assert 2 not in table.pinned  # client 2 was the least recently seen
    assert 1 in table.pinned and 3 in table.pinned
    eps.next = 1
    before = eps.picks
    assert table.pick(eps, 2, 40000, 104.0) == 1  # evicted: balanced afresh
    assert eps.picks == before + 1
    assert table.pick(eps, 3, 40000, 105.0) == 0  # still pinned
    assert eps.picks == before + 1


def test_uncapped_table_never_evicts():
    table = AffinityTable(timeout=1000.0, cap=None)
    eps = _Endpoints(["10.0.0.2:80"])
    for client in range(5000):
        table.pick(eps, client, 40000, 1.0)
    assert table.evictions == 0 and len(table.pinned) == 5000
    assert eps.picks == 5000
    for client in range(5000):
        table.pick(eps, client, 40000, 2.0)
    assert eps.picks == 5000


def test_entry_expires_only_after_the_timeout():
    table = AffinityTable(timeout=10.0, cap=100)
    eps = _Endpoints(["a", "b"])
    table.pick(eps, 7, 1, 0.0)
    eps.next = 1
    assert table.pick(eps, 7, 2, 9.9) == 0  # within 10 s: pinned (and refreshed)
    assert table.pick(eps, 7, 3, 19.8) == 0  # 9.9 s after the refresh: still pinned
    assert table.pick(eps, 7, 4, 30.0) == 1  # 10.2 s later: balanced afresh
    assert eps.picks == 2


# --- pinned endpoint removed ---------------------------------------------------------


def test_pinned_endpoint_removed_rebalances_on_next_connection():
    s = scenario(
        nodes=["node-1"],
        manifests=[service(affinity="ClientIP"), deployment("web", replicas=4)],
        clients=[population(users=100, think="200ms", entry={"node": "node-1"},
                            connectTimeout="1s")],
        events=[{"at": "5s", "scale": {"deployment": "web", "replicas": 2}}],
        kube_proxy={"propagation": {"dist": "constant", "value": "100ms"},
                    "syncBase": "10ms", "syncPerRule": "0s"},
        duration="15s")
    req = measured(npsim.run(s))
    synced = 5.11
    before = req[(req["t_start"] < 5).to_numpy()]
    after = decided(req[(req["t_start"] > synced).to_numpy()])
    assert (before["outcome"] == "completed").all()
    assert (after["outcome"] == "completed").all(), "failures after the sync"
    last_pin = before.groupby("client_ip", observed=True)["pod"].last()
    new_pins = after.groupby("client_ip", observed=True)["pod"].agg(["first", "nunique"])
    assert (new_pins["nunique"] == 1).all()  # sticky again on the new pod
    removed = {"web-2", "web-3"}  # scale-down removes the newest pods
    assert set(new_pins["first"].astype(str)) == {"web-0", "web-1"}
    joined = new_pins.join(last_pin.rename("before"))
    moved = joined["before"].astype(str).isin(removed).to_numpy()
    assert 20 < moved.sum() < 80  # about half the clients lost their pod
    # clients of surviving pods keep them; the others were balanced afresh
    kept = joined[~moved]
    assert (kept["first"].astype(str) == kept["before"].astype(str)).all()
    # the displaced clients are balanced afresh over the two survivors, half each
    fresh = joined[moved]["first"].astype(str)
    assert_share((fresh == "web-0").mean(), 0.5, len(fresh), "re-pinned to web-0")
    # until the node synced, connections pinned to a removed pod timed out
    gap = req[((req["t_start"] >= 5) & (req["t_start"] <= synced)).to_numpy()]
    failed = gap[(gap["outcome"] == "failed").to_numpy()]
    assert set(failed["reason"].astype(str)) <= {"connect_timeout"}


# --- per-node tables, NAT and balancers -----------------------------------------------


def test_a_client_reaching_two_nodes_can_be_pinned_to_two_pods():
    """Each node's kube-proxy pins a client independently, uniformly over 4 endpoints:
    the two pins differ with probability 3/4."""
    r = _sticky(users=200, think="300ms", nodes=2, entry="random", duration="15s")
    req = completed(measured(r))
    per_node = req.groupby(["client_ip", "entry_node"], observed=True)["pod"].nunique()
    assert (per_node == 1).all()
    pins = req.groupby(["client_ip", "entry_node"], observed=True)["pod"].first().unstack()
    pins = pins.dropna()
    assert len(pins) > 190
    differ = (pins["node-1"].astype(str) != pins["node-2"].astype(str)).mean()
    assert_share(differ, 3 / 4, len(pins), "two nodes, two pins")
    assert r.metric("client_stickiness") < 0.9


def test_users_behind_one_nat_address_share_one_pin_per_node():
    r = _sticky(users=300, think="100ms", nodes=2, entry="random", duration="8s",
                natGateways=[{"addresses": 1, "share": 1.0}])
    req = completed(measured(r))
    assert req["client_ip"].nunique() == 300
    assert req["source_ip_at_node"].nunique() == 1
    assert (req.groupby("entry_node", observed=True)["pod"].nunique() == 1).all()
    assert req["pod"].nunique() <= 2  # one pin on each of the two nodes


def test_nat_gateways_concentrate_their_users_on_few_pods():
    """scenarios/affinity-behind-nat.yaml: 80 % of 1000 users behind 3 addresses, all
    entering node-1. Each NAT address is one client: one pod, 1/3 of the NATed traffic."""
    s = npsim.load_scenario(SCENARIOS / "affinity-behind-nat.yaml")
    s.run.duration = 15
    r = npsim.run(s)
    req = completed(measured(r))
    wire = req["source_ip_at_node"].astype(str)
    natted = req[wire.str.startswith("100.64.").to_numpy()]
    assert natted["source_ip_at_node"].nunique() == 3
    assert (natted.groupby("source_ip_at_node", observed=True)["pod"].nunique() == 1).all()
    assert_share(len(natted) / len(req), 0.8, len(req), "NATed users' traffic")
    for _, part in natted.groupby("source_ip_at_node", observed=True):
        assert_share(len(part) / len(natted), 1 / 3, len(natted), "per NAT address")
    assert r.metric("client_stickiness") == 1.0


def test_snat_balancer_makes_every_request_go_to_one_pod_per_node():
    r = _sticky(users=300, think="100ms", nodes=2, entry="random", duration="8s",
                balancer={"snat": True, "addresses": 1})
    req = completed(measured(r))
    assert set(req["source_ip_at_node"].astype(str)) == {"192.0.2.10"}
    assert (req.groupby("entry_node", observed=True)["pod"].nunique() == 1).all()


def test_pass_through_balancer_keeps_per_client_pins():
    r = _sticky(users=300, think="100ms", entry={"node": "node-1"}, duration="8s",
                balancer={"snat": False})
    req = completed(measured(r))
    assert (req["source_ip_at_node"].astype(str) == req["client_ip"].astype(str)).all()
    assert r.metric("client_stickiness") == 1.0
    # 300 pins spread over 4 pods: Binomial(300, 1/4) clients each
    pins = req.groupby("client_ip", observed=True)["pod"].first().astype(str)
    for pod, count in pins.value_counts().items():
        assert_share(count / len(pins), 1 / 4, len(pins), f"clients pinned to {pod}")


# both populations are the same 60 client pods on node-1, calling two ways
SAME_PODS = "10.244.0.190"


def _two_ways(**mode: str):  # noqa: ANN202 - a request frame
    """The same 60 client pods calling the Service's ClusterIP and node-1's NodePort."""
    s = scenario(
        nodes=["node-1", "node-2"], **mode,
        manifests=[service(affinity="ClientIP"), deployment("web", replicas=4)],
        clients=[population("via-clusterip", rate="200/s", source={"pod": "node-1"},
                            target="clusterIP", sourceIPs=60, sourceIPBase=SAME_PODS),
                 population("via-nodeport", rate="200/s", source={"pod": "node-1"},
                            sourceIPs=60, sourceIPBase=SAME_PODS, entry={"node": "node-1"})],
        duration="6s")
    return completed(measured(npsim.run(s)))


def test_ipvs_clusterip_and_nodeport_pins_are_independent():
    req = _two_ways(mode="ipvs")
    pins = req.groupby(["population", "client_ip"], observed=True)["pod"].first().unstack(0)
    same = (pins["via-clusterip"].astype(str) == pins["via-nodeport"].astype(str)).mean()
    assert_share(same, 1 / 4, len(pins), "same pin through both virtual servers")


def test_iptables_clusterip_and_nodeport_share_the_pin():
    """iptables: ClusterIP and NodePort traffic go through the same KUBE-SVC / KUBE-SEP
    chains, hence the same recent lists (pkg/proxy/iptables/proxier.go)."""
    req = _two_ways()
    pins = req.groupby(["population", "client_ip"], observed=True)["pod"].nunique()
    assert (pins == 1).all()
    both = req.groupby("client_ip", observed=True)["pod"].nunique()
    assert len(both) == 60 and (both == 1).all()


def test_stickiness_helper_agrees_with_frames():
    r = _sticky(users=20, duration="5s")
    assert stickiness(measured(r)) == r.metric("client_stickiness") == 1.0
