"""When each node's kube-proxy applies an endpoint change (npsim/sim/controlplane.py).

kube-proxy's sync loop: a change reaches each node after a propagation delay
plus the node's own ``syncDelay``; kube-proxy syncs no sooner than ``minSyncPeriod``
after its previous sync, coalescing what arrived meanwhile; an iptables sync takes
``syncBase`` + ``syncPerRule`` x (5 + S (2 + 3E)) NAT rules, so it grows with the number
of Services, while other modes take ``syncBase`` only.
"""

from __future__ import annotations

import pytest

from npsim.proxy.iptables import iptables_nat_rules
from npsim.sim.engine import Simulation

from .helpers import client, run_frame, scale, scenario

PROPAGATION = 0.01  # helpers.scenario: constant 10 ms
SYNC_BASE = 0.01  # KubeProxySpec default


def applied(history: list[tuple[float, int]], version: int) -> float:
    times = [t for t, v in history if v == version]
    assert times, f"version {version} never applied: {history}"
    return times[0]


def _two_speed_run(mode: str = "iptables"):  # noqa: ANN202
    scn = scenario(mode=mode, replicas=4, duration="20s",
                   nodes=[{"name": "fast", "syncDelay": "0s"},
                          {"name": "slow", "syncDelay": "5s"}],
                   events=[scale("10s", 2)],
                   clients=[client("via-fast", rate="300/s", entry={"node": "fast"},
                                   connect_timeout="1s"),
                            client("via-slow", rate="300/s", entry={"node": "slow"},
                                   connect_timeout="1s")])
    return run_frame(scn)


def test_each_node_applies_the_change_after_its_own_delay() -> None:
    out, _ = _two_speed_run()
    fast, slow = out.control.nodes
    t_fast, t_slow = applied(fast.history, 1), applied(slow.history, 1)
    assert t_fast == pytest.approx(10.0 + PROPAGATION + fast.sync_duration, abs=1e-9)
    assert t_slow == pytest.approx(15.0 + PROPAGATION + slow.sync_duration, abs=1e-9)
    assert out.control.changes == [(10.0, "scale web to 2")]
    # both end with the same two endpoints
    assert [t.n for p in out.proxies for t in p.tables.values()] == [2, 2]


def test_slow_node_keeps_sending_to_removed_pods_until_it_syncs() -> None:
    out, frame = _two_speed_run()
    fast, slow = out.control.nodes
    t_fast, t_slow = applied(fast.history, 1), applied(slow.history, 1)
    removed = {p.name for p in out.cluster.pods[2:]}  # newest first
    new = frame[frame["new_connection"]]
    to_removed = new[new["pod"].astype(str).isin(removed)]
    last = to_removed.groupby("entry_node", observed=True)["t_start"].max()
    assert 9.9 < last["fast"] <= t_fast
    assert t_slow - 0.5 < last["slow"] <= t_slow
    # and those late connections fail: the pods are gone since t = 10 s
    late = to_removed[to_removed["t_start"] > 10.0]
    assert len(late) > 100
    assert (late["reason"] == "connect_timeout").all()
    assert (late["entry_node"] == "slow").sum() > 10 * (late["entry_node"] == "fast").sum()


def test_history_before_a_run() -> None:
    sim = Simulation(scenario(nodes=2, duration="5s"))
    assert [n.history for n in sim.control.nodes] == [[(0.0, 0)], [(0.0, 0)]]


def _min_sync_run(at: list[str], min_sync: str = "1s") -> Simulation:
    scn = scenario(replicas=5, duration="15s", events=[scale(t, 4 - i) for i, t in enumerate(at)],
                   kube_proxy={"minSyncPeriod": min_sync},
                   clients=[client(rate="50/s")])
    sim = Simulation(scn)
    sim.run()
    return sim


def test_min_sync_period_between_two_changes_0_2s_apart() -> None:
    sim = _min_sync_run(["10s", "10.2s"])
    node = sim.control.nodes[0]
    d = node.sync_duration
    assert node.history == [
        (0.0, 0),
        (pytest.approx(10.0 + PROPAGATION + d), 1),
        # the second change arrived at 10.21 but waits for 1 s after the previous sync
        (pytest.approx(10.0 + PROPAGATION + 1.0 + d), 2),
    ]
    starts = [t - d for t, _ in node.history[1:]]
    assert starts[1] - starts[0] >= 1.0 - 1e-9


def test_changes_inside_the_min_sync_period_are_coalesced() -> None:
    sim = _min_sync_run(["10s", "10.2s", "10.4s"])
    node = sim.control.nodes[0]
    assert [v for _, v in node.history] == [0, 1, 3]  # version 2 is never applied alone
    assert applied(node.history, 3) == pytest.approx(11.0 + PROPAGATION + node.sync_duration)
    assert sim.proxies[0].tables[0].n == 2


def test_short_min_sync_period_applies_each_change() -> None:
    sim = _min_sync_run(["10s", "10.2s"], min_sync="100ms")
    node = sim.control.nodes[0]
    t1, t2 = applied(node.history, 1), applied(node.history, 2)
    assert t2 - t1 == pytest.approx(0.2)


def _sync_duration(mode: str, other: int, endpoints_each: int = 10) -> float:
    scn = scenario(mode=mode, replicas=4, duration="1s",
                   cluster={"otherServices": {"count": other, "endpointsEach": endpoints_each}})
    return Simulation(scn).control.nodes[0].sync_duration


def test_iptables_sync_duration_grows_with_other_services() -> None:
    durations = [_sync_duration("iptables", c) for c in (0, 100, 1_000, 10_000)]
    assert durations == sorted(durations) and len(set(durations)) == 4
    per_rule = 1.5e-6  # KubeProxySpec default
    assert durations[0] == pytest.approx(SYNC_BASE + per_rule * iptables_nat_rules(1, 4))
    services = 10_001
    mean_e = (4 + 10_000 * 10) / services
    assert durations[3] == pytest.approx(
        SYNC_BASE + per_rule * iptables_nat_rules(services, mean_e))
    assert durations[3] > 0.45  # ~ 320k NAT rules: a visible delay
    assert iptables_nat_rules(1, 10) == 37 and iptables_nat_rules(10, 10) == 325


@pytest.mark.parametrize("mode", ["nftables", "ipvs"])
def test_other_modes_sync_in_constant_time(mode: str) -> None:
    assert _sync_duration(mode, 0) == _sync_duration(mode, 10_000) == SYNC_BASE


def test_big_iptables_cluster_applies_changes_later() -> None:
    def when(other: int) -> float:
        scn = scenario(replicas=4, duration="15s", events=[scale("10s", 2)],
                       cluster={"otherServices": {"count": other}},
                       clients=[client(rate="20/s")])
        sim = Simulation(scn)
        sim.run()
        return applied(sim.control.nodes[0].history, 1)

    small, big = when(0), when(10_000)
    rules = iptables_nat_rules(1, 4)
    assert small == pytest.approx(10.0 + PROPAGATION + SYNC_BASE + 1.5e-6 * rules)
    assert big - small > 0.45


def test_mixed_mode_nodes_have_their_own_sync_durations() -> None:
    scn = scenario(mode="iptables", replicas=2, duration="1s",
                   nodes=[{"name": "node-1"}, {"name": "node-2", "proxyMode": "nftables"}],
                   cluster={"otherServices": {"count": 5_000}})
    ipt, nft = Simulation(scn).control.nodes
    assert ipt.proxy.mode == "iptables" and nft.proxy.mode == "nftables"
    assert ipt.sync_duration > 0.2 and nft.sync_duration == SYNC_BASE


def test_change_arriving_during_a_long_sync_waits_for_the_next_one() -> None:
    scn = scenario(replicas=5, duration="15s", events=[scale("10s", 4), scale("10.2s", 3)],
                   cluster={"otherServices": {"count": 10_000}},
                   clients=[client(rate="20/s")])
    sim = Simulation(scn)
    sim.run()
    node = sim.control.nodes[0]
    d = node.sync_duration
    assert d > 0.3  # the second change arrives (10.21 s) while the first sync runs
    assert node.history == [
        (0.0, 0),
        (pytest.approx(10.0 + PROPAGATION + d), 1),
        (pytest.approx(11.0 + PROPAGATION + d), 2),
    ]
