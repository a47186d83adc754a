"""Topology-aware routing against pkg/proxy/topology.go (KEP-2433, KEP-4444).

kube-proxy filters the Cluster endpoint set by hints: same node if every endpoint has a
node hint and one is for this node, else same zone if every endpoint has a zone hint and
one is for this zone, else everything. ``trafficDistribution: PreferClose`` (alias of
PreferSameZone) hints each endpoint for its own zone, PreferSameNode also for its node;
the ``topology-mode: Auto`` annotation allots endpoints to zones by CPU and sets no hints
with fewer endpoints than zones or an expected overload >= 20 %; the annotation wins
over trafficDistribution.
"""

from __future__ import annotations

import pytest

import npsim

from .helpers import (
    SCENARIOS,
    assert_share,
    assert_shares,
    completed,
    deployment,
    measured,
    pods_on,
    population,
    scenario,
    service,
)

THREE_ZONES = [("n-a", "zone-a"), ("n-b", "zone-b"), ("n-c", "zone-c")]


def _by_entry(result: npsim.Result) -> dict[str, object]:
    served = completed(measured(result))
    return {str(node): part for node, part in served.groupby("entry_node", observed=True)}


@pytest.fixture(scope="module", params=["PreferClose", "PreferSameZone"])
def three_zones(request) -> npsim.Result:
    """Pods: 1 on a-1, 1 on a-2 (zone-a), 2 on b-1 (zone-b), none in zone-c."""
    s = npsim.load_scenario(SCENARIOS / "topology-three-zones.yaml")
    s.run.duration = 20
    s.services["web-near"].traffic_distribution = request.param
    return npsim.run(s)


def test_prefer_close_keeps_traffic_in_zone(three_zones):
    r = three_zones
    where = pods_on(r)
    zone_a = {p for p, n in where.items() if n in ("a-1", "a-2")}
    zone_b = {p for p, n in where.items() if n == "b-1"}
    by_entry = _by_entry(r)
    for node in ("a-1", "a-2"):
        assert_shares(by_entry[node], {p: 1 / len(zone_a) for p in zone_a}, what=node)
    assert_shares(by_entry["b-1"], {p: 1 / len(zone_b) for p in zone_b}, what="b-1")


def test_zone_without_endpoints_falls_back_to_all(three_zones):
    r = three_zones
    pods = list(pods_on(r))
    assert_shares(_by_entry(r)["c-1"], {p: 1 / len(pods) for p in pods}, what="c-1")


def test_only_the_zone_without_pods_crosses_zones(three_zones):
    r = three_zones
    served = completed(measured(r))
    zone = {"a-1": "a", "a-2": "a", "b-1": "b", "c-1": "c"}
    crosses = served["entry_node"].astype(str).map(zone) != served["pod_node"].astype(str).map(
        zone)
    assert set(served.loc[crosses.to_numpy(), "entry_node"].astype(str)) == {"c-1"}
    # pod shares follow where clients enter (a random node each): 5/16 for each zone-a
    # pod (half of two nodes' traffic plus a quarter of c-1's), 3/16 for each zone-b pod
    where = pods_on(r)
    expected = {p: 5 / 16 if where[p].startswith("a-") else 3 / 16 for p in where}
    assert_shares(served, expected, what="pod shares")


def test_prefer_same_node_prefers_the_node_then_the_zone_then_all():
    """zone-a: a-1 (1 pod), a-2 (2 pods), a-3 (none); zone-b: b-1 (1 pod); zone-c: c-1
    (none). A node with pods keeps its own; a-3 falls back to zone-a, c-1 to all."""
    s = scenario(
        nodes=[("a-1", "zone-a"), ("a-2", "zone-a"), ("a-3", "zone-a"), ("b-1", "zone-b"),
               ("c-1", "zone-c")],
        manifests=[service(distribution="PreferSameNode"), deployment("web", replicas=4)],
        placement={"a-1": 1, "a-2": 2, "b-1": 1},
        clients=[population(rate="1000/s", sourceIPs=1000)],
        duration="12s")
    r = npsim.run(s)
    where = pods_on(r)
    on = {node: [p for p, n in where.items() if n == node] for node in ("a-1", "a-2", "b-1")}
    zone_a = on["a-1"] + on["a-2"]
    by_entry = _by_entry(r)
    assert_shares(by_entry["a-1"], {on["a-1"][0]: 1.0}, what="a-1: own node")
    assert_shares(by_entry["a-2"], {p: 0.5 for p in on["a-2"]}, what="a-2: own node")
    assert_shares(by_entry["b-1"], {on["b-1"][0]: 1.0}, what="b-1: own node")
    assert_shares(by_entry["a-3"], {p: 1 / 3 for p in zone_a}, what="a-3: own zone")
    assert_shares(by_entry["c-1"], {p: 1 / 4 for p in where}, what="c-1: all")


def _auto(replicas: int, distribution: str | None = None) -> npsim.Result:
    s = scenario(
        nodes=THREE_ZONES,
        manifests=[service(topology_mode="Auto", distribution=distribution),
                   deployment("web", replicas=replicas)],
        clients=[population(rate="600/s", sourceIPs=1000)],
        duration="10s")
    return npsim.run(s)


@pytest.mark.parametrize("replicas", [2, 4])
def test_auto_without_usable_hints_does_not_filter(replicas):
    """2 endpoints < 3 zones: no hints. 4 endpoints over 3 equal zones: some zone would
    carry 1/3 of the traffic on 1/4 of the endpoints, a 33 % overload >= 20 %: no hints."""
    r = _auto(replicas)
    pods = list(pods_on(r))
    assert len(pods) == replicas
    for node, part in _by_entry(r).items():
        assert_shares(part, {p: 1 / replicas for p in pods}, what=f"Auto, entering {node}")


def test_auto_with_enough_endpoints_is_zone_local():
    r = _auto(6)  # 2 per zone, equal CPU: each zone keeps its own two
    where = pods_on(r)
    for node, part in _by_entry(r).items():
        mine = [p for p, n in where.items() if n == node]
        assert len(mine) == 2
        assert_shares(part, {p: 0.5 for p in mine}, what=f"Auto, entering {node}")
    assert not completed(measured(r))["cross_node"].any()


def test_auto_annotation_wins_over_traffic_distribution():
    """With both set, the annotation decides: 2 endpoints, 3 zones -> no hints at all,
    although PreferClose alone would keep n-a and n-b on their own pod."""
    r = _auto(2, distribution="PreferClose")
    served = completed(measured(r))
    for node, part in _by_entry(r).items():
        if node != "n-c":
            assert_share(part["cross_node"].mean(), 0.5, len(part), f"cross from {node}")
    assert served["cross_node"].mean() > 0.5
