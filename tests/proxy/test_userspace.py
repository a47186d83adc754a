"""Legacy userspace mode: shuffled round robin, the node as source, dial retries.

kubernetes-semantics.md 4 and research notes (issue 3, section 6): ``roundrobin.go``
shuffles the endpoint list whenever the *set* changes and resets the index to 0, keeps
list and index when an update leaves the set unchanged; the pod always sees the
kube-proxy node as source; a failed dial is retried on the next endpoint with timeouts
250 ms, 500 ms, 1 s, 2 s (``TryConnectEndpoints``), unlike iptables where the connection
fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from npsim.cluster.model import ip_str
from npsim.proxy import UserspaceProxy
from npsim.proxy.userspace import DIAL_TIMEOUTS, RoundRobinTable
from npsim.results.frames import request_frame
from npsim.sim.engine import Simulation

from .helpers import client, endpoints, node, run_frame, scale, scenario, service_port


def program(proxy: UserspaceProxy, eps) -> RoundRobinTable:  # noqa: ANN001
    sp = service_port(endpoints=eps)
    proxy.program(sp, eps)
    table = proxy.tables[sp.index]
    assert isinstance(table, RoundRobinTable)
    return table


def test_round_robin_over_a_shuffled_order() -> None:
    proxy = UserspaceProxy(node(), np.random.default_rng(12))
    table = program(proxy, endpoints(6))
    assert sorted(table.order) == list(range(6))
    assert table.index == 0
    picks = [table.pick(1, 1, 0.0) for _ in range(20)]
    assert picks == [table.order[k % 6] for k in range(20)]


def test_order_and_index_kept_when_the_set_is_unchanged() -> None:
    proxy = UserspaceProxy(node(), np.random.default_rng(12))
    eps = endpoints(5)
    table = program(proxy, eps)
    order = list(table.order)
    first = [table.pick(1, 1, 0.0) for _ in range(3)]
    again = program(proxy, tuple(eps))  # a sync with the same endpoints
    assert again.order == order
    assert again.index == 3
    rest = [again.pick(1, 1, 0.0) for _ in range(7)]
    assert first + rest == [order[k % 5] for k in range(10)]


def test_reshuffled_and_restarted_when_the_set_changes() -> None:
    proxy = UserspaceProxy(node(), np.random.default_rng(3))
    big, small = endpoints(6), endpoints(5)
    orders_big = set()
    for _ in range(15):
        table = program(proxy, big)
        assert table.index == 0
        assert sorted(table.order) == list(range(6))
        orders_big.add(tuple(table.order))
        table.pick(1, 1, 0.0)
        table.pick(1, 1, 0.0)
        table = program(proxy, small)
        assert table.index == 0
        assert sorted(table.order) == list(range(5))
        assert table.keys == [e.key for e in small]
    assert len(orders_big) > 5  # a fresh shuffle every time the set changed


def test_pods_see_the_entry_node_as_source_even_on_the_same_node() -> None:
    scn = scenario(mode="userspace", nodes=2, replicas=4, requests=800,
                   clients=[client(rate="400/s")])
    out, frame = run_frame(scn)
    assert (frame["outcome"] == "completed").all()
    node_ip = {n.name: ip_str(n.ip) for n in out.cluster.nodes}
    expected = frame["entry_node"].astype(str).map(node_ip)
    assert (frame["source_ip_seen"].astype(str) == expected).all()
    assert (~frame["cross_node"]).sum() > 100  # same-node rows are included

    # iptables, same scenario: a same-node pod sees the node's pod-bridge address instead
    scn_ipt = scenario(mode="iptables", nodes=2, replicas=4, requests=800,
                       clients=[client(rate="400/s")])
    out_ipt, frame_ipt = run_frame(scn_ipt)
    same = frame_ipt[~frame_ipt["cross_node"]]
    bridge = {n.name: ip_str(n.bridge_ip) for n in out_ipt.cluster.nodes}
    assert len(same) > 100
    assert (same["source_ip_seen"].astype(str) == same["entry_node"].astype(str).map(bridge)
            ).all()


def test_every_request_passes_the_kube_proxy_process() -> None:
    scn = scenario(mode="userspace", nodes=1, replicas=2, requests=200,
                   clients=[client(rate="100/s", rpc=4)])
    _, frame = run_frame(scn)
    # the relay's latency (default 50 us) is paid by every request, keep-alive or not
    assert (frame["proxy"] >= 50e-6 - 1e-12).all()


def _scale_down(mode: str):  # noqa: ANN202
    """4 pods, scaled to 2 at t=2 s; node-1 learns of it only 5 s later."""
    scn = scenario(mode=mode, nodes=[{"name": "node-1", "syncDelay": "5s"}], replicas=4,
                   duration="10s", events=[scale("2s", 2)],
                   clients=[client(rate="200/s", entry={"node": "node-1"},
                                   connect_timeout="1s")])
    out, frame = run_frame(scn)
    applied = [t for t, version in out.control.nodes[0].history if version == 1]
    assert applied and 7.0 < applied[0] < 7.2
    return out, frame, applied[0]


def test_scale_down_userspace_retries_and_succeeds() -> None:
    out, frame, synced = _scale_down("userspace")
    assert (frame["outcome"] == "completed").sum() > 1500
    assert not (frame["outcome"] == "failed").any()
    retried = frame[frame["proxy"] >= DIAL_TIMEOUTS[0]]
    assert len(retried) > 50
    # only while node-1 still listed the deleted pods
    assert retried["t_start"].min() >= 2.0
    assert retried["t_start"].max() <= synced
    # served by the survivors, after waiting one or more whole dial timeouts
    gone = {p.name for p in out.cluster.pods[2:]}
    assert not retried["pod"].astype(str).isin(gone).any()
    waits = np.cumsum(DIAL_TIMEOUTS)
    extra = retried["proxy"].to_numpy()
    assert np.all(np.min(np.abs(extra[:, None] - waits[None, :]), axis=1) < 0.01)
    # before the change nobody waited
    assert (frame.loc[frame["t_start"] < 2.0, "proxy"] < 0.01).all()


def test_scale_down_iptables_fails_with_connect_timeout() -> None:
    out, frame, synced = _scale_down("iptables")
    failed = frame[frame["outcome"] == "failed"]
    assert len(failed) > 50
    assert (failed["reason"] == "connect_timeout").all()
    gone = {p.name for p in out.cluster.pods[2:]}
    assert failed["pod"].astype(str).isin(gone).all()
    assert failed["t_start"].min() >= 2.0
    assert failed["t_start"].max() <= synced
    # the client waits its connect timeout (1 s)
    assert np.allclose(failed["latency"], 1.0)
    assert (frame.loc[frame["outcome"] == "completed", "proxy"] < 0.01).all()


def _dead_first(n_alive_last: int):  # noqa: ANN202
    """One userspace node, 5 endpoints in rotation order 0..4, the first 5 - k dead."""
    scn = scenario(mode="userspace", nodes=1, replicas=5, requests=1,
                   clients=[client(rate="100/s")])
    sim = Simulation(scn)
    table = sim.proxies[0].tables[0]
    table.order, table.index = [0, 1, 2, 3, 4], 0
    for e in table.endpoints[: 5 - n_alive_last]:
        sim.pods[e.pod].alive = False
        sim.pods[e.pod].silent = True  # gone: a dial gets no answer (a refusal is instant)
    return request_frame(sim.run())


def test_three_dead_endpoints_cost_the_first_three_dial_timeouts() -> None:
    frame = _dead_first(2)
    row = frame.iloc[0]
    assert row["outcome"] == "completed"
    assert row["proxy"] == pytest.approx(0.25 + 0.5 + 1.0, abs=1e-3)


def test_four_dead_endpoints_exhaust_the_four_dials() -> None:
    frame = _dead_first(1)
    row = frame.iloc[0]
    assert row["outcome"] == "failed"
    assert row["reason"] == "dial_failed"
    assert row["latency"] == pytest.approx(3.75, abs=1e-3)
