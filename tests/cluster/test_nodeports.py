"""The NodePort allocator against the API server's behaviour (portallocator/allocator.go,
allocator/bitmap.go, storage/alloc.go): bands, random start, exhaustion, sharing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from npsim.scenario.nodeports import (
    AlreadyAllocated,
    NodePortAllocator,
    NotInRange,
    PortRange,
    RangeFull,
    allocate_all,
    allocate_scenario,
    range_offset,
    scenario_refusals,
)
from npsim.scenario.objects import Service, ServicePort


def allocator(text: str = "30000-32767", seed: int = 0) -> NodePortAllocator:
    return NodePortAllocator(PortRange.parse(text), np.random.default_rng(seed))


@pytest.mark.parametrize(("text", "static", "dynamic"), [
    ("30000-32767", (30000, 30085), (30086, 32767)),  # fact 5: 2768 // 32 = 86
    ("20000-32767", (20000, 20127), (20128, 32767)),  # fact 6: 399 capped at 128
    ("32567-32767", (32567, 32582), (32583, 32767)),  # fact 7: 6 raised to 16
    ("30000-30015", None, (30000, 30015)),            # fact 8: 16 ports, no static band
    ("30000-30016", (30000, 30015), (30016, 30016)),  # fact 8: 17 ports -> offset 16
    ("30000-30128", (30000, 30015), (30016, 30128)),  # fact 9: 129 ports
])
def test_band_split(text: str, static: tuple[int, int] | None,
                    dynamic: tuple[int, int]) -> None:
    bands = PortRange.parse(text).bands()
    assert bands["static"] == static and bands["dynamic"] == dynamic


def test_range_offset_formula() -> None:
    assert [range_offset(n) for n in (1, 16, 17, 511, 512, 544, 4095, 4096, 65535)] == [
        0, 0, 16, 16, 16, 17, 127, 128, 128]


def test_automatic_ports_stay_in_the_dynamic_band_while_it_has_room() -> None:
    """Fact 5: with dynamic ports free, no automatic port is below 30086; once the 2682
    dynamic ports are gone the static band serves, then 'range is full'."""
    alloc = allocator()
    dynamic = [alloc.allocate_next() for _ in range(2682)]
    assert min(dynamic) == 30086 and max(dynamic) == 32767 and len(set(dynamic)) == 2682
    static = [alloc.allocate_next() for _ in range(86)]
    assert sorted(static) == list(range(30000, 30086))
    with pytest.raises(RangeFull, match="^range is full$"):
        alloc.allocate_next()


def test_exhaustion_at_the_exact_count_of_a_129_port_range() -> None:
    """Fact 9: 113 dynamic ports, then 16 static ones, then the 130th fails."""
    alloc = allocator("30000-30128", seed=7)
    first = [alloc.allocate_next() for _ in range(113)]
    assert min(first) == 30016
    nxt = alloc.allocate_next()
    assert 30000 <= nxt <= 30015
    for _ in range(15):
        alloc.allocate_next()
    assert alloc.free == 0
    with pytest.raises(RangeFull):
        alloc.allocate_next()


def test_random_start_is_uniform_over_the_dynamic_band() -> None:
    """An empty allocator's first automatic port is uniform over 30086-32767 (chi-square
    over 20 equal bins, 40,000 draws)."""
    alloc = allocator(seed=3)
    draws = []
    for _ in range(40_000):
        port = alloc.allocate_next()
        draws.append(port)
        alloc.release(port)
    counts, _ = np.histogram(draws, bins=np.linspace(30086, 32768, 21))
    assert counts.sum() == 40_000
    assert stats.chisquare(counts).pvalue > 0.001


def test_scan_skips_allocated_ports_and_wraps_inside_the_band() -> None:
    alloc = allocator("30000-30031")  # offset 16: dynamic 30016-30031
    for port in range(30016, 30031):
        alloc.allocate(port)
    assert alloc.allocate_next() == 30031  # the one free dynamic port, whatever the start
    assert 30000 <= alloc.allocate_next() <= 30015


def test_explicit_requests() -> None:
    alloc = allocator()
    alloc.allocate(30080)
    with pytest.raises(AlreadyAllocated, match="^provided port is already allocated$"):
        alloc.allocate(30080)
    with pytest.raises(NotInRange, match=r"^provided port is not in the valid range\. The "
                                         r"range of valid ports is 30000-32767$"):
        alloc.allocate(80)
    alloc.release(30080)
    alloc.allocate(30080)


def svc(name: str, *ports: tuple[str, int, int | None], type_: str = "NodePort",
        policy: str = "Cluster", health: int | None = None) -> Service:
    return Service(name, "default", type_,
                   tuple(ServicePort(f"p{i}", proto, port, port, node_port)
                         for i, (proto, port, node_port) in enumerate(ports)),
                   {"app": name}, policy, "test", health_check_node_port=health)


def test_tcp_and_udp_of_one_port_number_share_one_node_port() -> None:
    """Fact 16 and initNodePorts: 53/TCP and 53/UDP get one nodePort, automatic or not."""
    auto = allocate_all([svc("dns", ("TCP", 53, None), ("UDP", 53, None))],
                        PortRange.parse("30000-32767"), np.random.default_rng(1))
    a, b = auto.services["dns"].node_ports
    assert a == b and a >= 30086
    fixed = allocate_all([svc("dns", ("TCP", 53, None), ("UDP", 53, 30053))],
                         PortRange.parse("30000-32767"), np.random.default_rng(1))
    assert fixed.services["dns"].node_ports == [30053, 30053]


def test_a_conflicting_service_is_refused_whole() -> None:
    """Fact 15 and alloc.go: a taken port refuses the Service and frees what it took."""
    out = allocate_all([svc("a", ("TCP", 80, 30080)),
                        svc("b", ("TCP", 81, None), ("TCP", 80, 30080)),
                        svc("c", ("TCP", 80, None))],
                       PortRange.parse("30000-32767"), np.random.default_rng(1))
    assert [str(r) for r in out.rejected] == [
        "spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated"]
    assert set(out.services) == {"a", "c"}
    assert out.services["c"].node_ports[0] != 30080


def test_two_port_numbers_cannot_ask_for_one_node_port() -> None:
    out = allocate_all([svc("a", ("TCP", 80, 30080), ("TCP", 81, 30080))],
                       PortRange.parse("30000-32767"), np.random.default_rng(1))
    assert str(out.rejected[0]).startswith("spec.ports[1].nodePort: Invalid value: 30080: "
                                           "provided port is already allocated")


def test_health_check_node_port_only_for_load_balancer_local() -> None:
    """Fact 18: NodePort + Local gets none; LoadBalancer + Local one more port."""
    rng = np.random.default_rng(2)
    out = allocate_all([svc("np", ("TCP", 80, None), policy="Local"),
                        svc("lb", ("TCP", 80, None), type_="LoadBalancer", policy="Local"),
                        svc("lbc", ("TCP", 80, None), type_="LoadBalancer")],
                       PortRange.parse("30000-32767"), rng)
    assert out.services["np"].health_check_node_port == 0
    assert out.services["lbc"].health_check_node_port == 0
    hc = out.services["lb"].health_check_node_port
    assert 30086 <= hc <= 32767 and hc != out.services["lb"].node_ports[0]


def test_full_range_refuses_with_the_api_servers_words() -> None:
    services = [svc(f"s{i}", ("TCP", 80, None)) for i in range(18)]
    out = allocate_all(services, PortRange.parse("30000-30016"), np.random.default_rng(0))
    assert len(out.services) == 17
    assert [str(r) for r in out.rejected] == ["failed to allocate a nodePort: range is full"]


def test_same_seed_same_ports_and_creation_order_matters() -> None:
    services = [svc(f"s{i}", ("TCP", 80, None)) for i in range(50)]
    run = [allocate_all(services, PortRange.parse("30000-32767"), np.random.default_rng(9))
           for _ in range(2)]
    assert run[0].services == run[1].services
    backwards = allocate_all(services[::-1], PortRange.parse("30000-32767"),
                             np.random.default_rng(9))
    assert backwards.services["s0"] != run[0].services["s0"]


def _random_services(rng: np.random.Generator, count: int) -> list[Service]:
    """Services of a small range (30000-30039: static 30000-30015): automatic ports,
    explicit ones in either band, shared port numbers, health-check ports."""
    out = []
    for i in range(count):
        ports = []
        for _ in range(int(rng.integers(1, 3))):
            explicit = rng.random() < 0.4
            ports.append(("TCP", int(rng.choice([53, 80, 81])),
                          int(rng.integers(29998, 30042)) if explicit else None))
        lb = rng.random() < 0.2
        out.append(svc(f"s{i}", *ports, type_="LoadBalancer" if lb else "NodePort",
                       policy="Local" if lb else "Cluster",
                       health=int(rng.integers(30000, 30040)) if lb and rng.random() < 0.5
                       else None))
    return out


def test_refusals_without_draws_match_the_allocator() -> None:
    """``npsim validate`` finds the refused Services without the random stream when no
    refusal can depend on it, and they are the ones the run's allocation refuses."""
    cluster = type("Cluster", (), {"service_node_port_range": "30000-30039"})()
    rng = np.random.default_rng(5)
    for case in range(300):
        services = _random_services(rng, int(rng.integers(1, 30)))
        drawn = allocate_scenario(services, cluster, seed=case)
        found = scenario_refusals(services, cluster, seed=case)
        assert [str(r) for r in found.rejected] == [str(r) for r in drawn.rejected]
        assert list(found.services) == list(drawn.services)
        for name, ports in found.services.items():  # explicit ports as allocated, else 0
            for got, want in zip(ports.node_ports, drawn.services[name].node_ports,
                                 strict=True):
                assert got in (0, want)
